//! Image generation on Bedrock: OpenAI's `POST /v1/images/generations` as InvokeModel
//! (`POST {endpoint}/model/{modelId}/invoke`, SigV4-signed like every Bedrock call) with each
//! vendor's body, answered in OpenAI's shape (`{"created", "data": [{"b64_json"}]}`, always
//! base64, as LiteLLM answers).
//!
//! - **Amazon Titan Image Generator v1/v2 and Nova Canvas** (`amazon.titan-image-generator-*`,
//!   `amazon.nova-canvas-*`): `{"taskType": "TEXT_IMAGE", "textToImageParams": {"text",
//!   "negativeText"?}, "imageGenerationConfig": {"numberOfImages", "width", "height", "quality",
//!   "cfgScale"?, "seed"?}}`; `n` → `numberOfImages`, `size` → `width`/`height`, `quality`
//!   `hd`/`high`/`premium` → `premium`, `standard`/`medium`/`low` → `standard` (LiteLLM's
//!   mapping). A body's own `imageGenerationConfig` object is merged over the mapped one, and any
//!   other key that is not a gateway control (`cfgScale`, `seed`, …) goes into it as written. The
//!   answer is `{"images": [base64, …], "error"?}`.
//! - **Stability AI** SD3 / SD3.5 Large, Stable Image Core and Ultra (`stability.sd3-*`,
//!   `stability.stable-image-*`): `{"prompt", "aspect_ratio"?, …}`, one image a call. `size` maps
//!   to the nearest aspect ratio the model has (LiteLLM sends none); other non-gateway keys
//!   (`negative_prompt`, `seed`, `output_format`, `mode`) are sent as written. `n` above 1 is a
//!   400. The answer is `{"images": [...], "finish_reasons": [null | reason], "seeds"}`; a
//!   reason (a filtered image) is a 400 with it, as LiteLLM raises.
//!
//! `quality` has no Stability counterpart, and `style` and `response_format` none on either, so
//! they are not sent. SDXL (`stability.stable-diffusion-xl-*`, legacy on Bedrock) and other
//! models are a 400 naming the supported ones.
//!
//! References: <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-image.html>,
//! <https://docs.aws.amazon.com/nova/latest/userguide/image-gen-req-resp-structure.html>,
//! <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-diffusion-3-text-image.html>,
//! <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-diffusion-stable-ultra-text-image-request-response.html>;
//! LiteLLM's `llms/bedrock/image/`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, value::RawValue, Map, Value};

use crate::{
    error::{ErrorKind, LlmError},
    provider::openai::invalid_upstream_json,
    types::{
        media::{parse_size, ImagesRequest},
        LlmResponse,
    },
};

/// Which body a Bedrock image model takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFamily {
    /// Amazon Titan Image Generator and Nova Canvas (`taskType` / `textToImageParams`).
    Amazon,
    /// Stability AI's SD3, SD3.5, Stable Image Core and Ultra (`prompt`, `aspect_ratio`).
    Stability,
}

/// The image family of a Bedrock model id (a region prefix such as `us.` is allowed).
#[must_use]
pub fn family(model_id: &str) -> Option<ImageFamily> {
    let id = model_id.rsplit('/').next().unwrap_or(model_id);
    let has = |vendor: &str| {
        id.starts_with(vendor)
            || id
                .split_once('.')
                .is_some_and(|(_, rest)| rest.starts_with(vendor))
    };
    if has("amazon.titan-image") || has("amazon.nova-canvas") {
        return Some(ImageFamily::Amazon);
    }
    if has("stability.sd3") || has("stability.stable-image") {
        return Some(ImageFamily::Stability);
    }
    None
}

/// The aspect ratios Stability's Bedrock models take, as (name, width / height).
const STABILITY_RATIOS: [(&str, f64); 9] = [
    ("1:1", 1.0),
    ("16:9", 16.0 / 9.0),
    ("21:9", 21.0 / 9.0),
    ("2:3", 2.0 / 3.0),
    ("3:2", 1.5),
    ("4:5", 0.8),
    ("5:4", 1.25),
    ("9:16", 9.0 / 16.0),
    ("9:21", 9.0 / 21.0),
];

/// The aspect ratio nearest to `(w, h)`.
fn nearest_ratio(w: u64, h: u64) -> &'static str {
    #[allow(clippy::cast_precision_loss)] // image sides are far below 2^52
    let r = (w as f64 / h as f64).ln();
    STABILITY_RATIOS
        .iter()
        .min_by(|a, b| (a.1.ln() - r).abs().total_cmp(&(b.1.ln() - r).abs()))
        .map_or("1:1", |(name, _)| *name)
}

/// Keys of the OpenAI body written separately, or with no Bedrock counterpart.
const NOT_SENT: [&str; 8] = [
    "model",
    "prompt",
    "n",
    "size",
    "quality",
    "style",
    "response_format",
    "user",
];

/// `size` as width and height: `None` for no size or `auto`, a 400 for anything unreadable.
fn size_of(req: &ImagesRequest) -> Result<Option<(u64, u64)>, LlmError> {
    match req.size.as_deref() {
        None | Some("auto") => Ok(None),
        Some(s) => parse_size(s).map(Some).ok_or_else(|| {
            LlmError::bad_request(format!("size: `{s}` is not WIDTHxHEIGHT")).with_param("size")
        }),
    }
}

/// The body's other keys (not gateway controls, not written separately), parsed.
fn extras(req: &ImagesRequest) -> Result<Vec<(&str, Value)>, LlmError> {
    req.extra
        .iter()
        .filter(|(k, _)| !NOT_SENT.contains(k) && crate::types::chat::is_upstream_param(k))
        .map(|(k, v)| {
            serde_json::from_str(v.get())
                .map(|v| (k, v))
                .map_err(|e| LlmError::bad_request(format!("{k}: {e}")).with_param(k))
        })
        .collect()
}

/// The InvokeModel body of an image generation for a model of `family`.
pub fn invoke_body(req: &ImagesRequest, family: ImageFamily) -> Result<Bytes, LlmError> {
    let size = size_of(req)?;
    let body = match family {
        ImageFamily::Amazon => {
            let mut text = Map::new();
            text.insert("text".into(), json!(req.prompt));
            let mut config = Map::new();
            config.insert("numberOfImages".into(), json!(req.count()));
            if let Some((w, h)) = size {
                config.insert("width".into(), json!(w));
                config.insert("height".into(), json!(h));
            }
            match req.quality.as_deref() {
                Some("hd" | "high" | "premium") => {
                    config.insert("quality".into(), json!("premium"));
                }
                Some("standard" | "medium" | "low") => {
                    config.insert("quality".into(), json!("standard"));
                }
                _ => {}
            }
            let mut task = json!("TEXT_IMAGE");
            let mut own_config = None;
            for (k, v) in extras(req)? {
                match k {
                    "negativeText" => {
                        text.insert(k.into(), v);
                    }
                    "taskType" => task = v,
                    "imageGenerationConfig" => own_config = Some(v),
                    "textToImageParams" => {
                        if let Value::Object(m) = v {
                            text.extend(m);
                        }
                    }
                    _ => {
                        config.insert(k.into(), v);
                    }
                }
            }
            if task != "TEXT_IMAGE" {
                return Err(LlmError::bad_request(
                    "taskType: only TEXT_IMAGE is served on /v1/images/generations",
                )
                .with_param("taskType"));
            }
            match own_config {
                Some(Value::Object(m)) => config.extend(m),
                Some(_) => {
                    return Err(
                        LlmError::bad_request("imageGenerationConfig: must be an object")
                            .with_param("imageGenerationConfig"),
                    )
                }
                None => {}
            }
            json!({
                "taskType": "TEXT_IMAGE",
                "textToImageParams": text,
                "imageGenerationConfig": config,
            })
        }
        ImageFamily::Stability => {
            if req.count() > 1 {
                return Err(LlmError::bad_request(
                    "n: Stability models on Bedrock make one image a call",
                )
                .with_param("n"));
            }
            let mut body = Map::new();
            body.insert("prompt".into(), json!(req.prompt));
            if let Some((w, h)) = size {
                body.insert("aspect_ratio".into(), json!(nearest_ratio(w, h)));
            }
            for (k, v) in extras(req)? {
                body.insert(k.into(), v);
            }
            Value::Object(body)
        }
    };
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .map_err(|e| LlmError::internal(format!("cannot encode the upstream request: {e}")))
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(default, borrow)]
    images: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    finish_reasons: Option<Vec<Option<String>>>,
}

/// An InvokeModel image answer as OpenAI's.
pub fn invoke_answer(req: &ImagesRequest, body: &[u8]) -> Result<LlmResponse, LlmError> {
    let answer: Answer<'_> = serde_json::from_slice(body)
        .map_err(|e| invalid_upstream_json("Bedrock image answer", &e))?;
    let reasons: Vec<String> = answer
        .finish_reasons
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .filter(|r| !r.is_empty())
        .collect();
    if !reasons.is_empty() {
        return Err(LlmError::bad_request(reasons.join("; ")).with_provider("bedrock"));
    }
    let images = answer.images.unwrap_or_default();
    if images.is_empty() {
        let why = answer
            .error
            .unwrap_or_else(|| "the answer holds no images".to_owned());
        return Err(LlmError::new(
            ErrorKind::InternalServer,
            format!("the provider returned an invalid Bedrock image answer: {why}"),
        )
        .with_status(http::StatusCode::BAD_GATEWAY));
    }
    if images.iter().any(|i| !i.get().starts_with('"')) {
        return Err(LlmError::new(
            ErrorKind::InternalServer,
            "the provider returned an invalid Bedrock image answer: an image is not a string",
        )
        .with_status(http::StatusCode::BAD_GATEWAY));
    }
    let size = req.size.as_deref().filter(|s| *s != "auto");
    Ok(crate::provider::gemini::images::b64_answer(&images, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> ImagesRequest {
        serde_json::from_str(json).unwrap()
    }

    fn body(r: &ImagesRequest, f: ImageFamily) -> Value {
        serde_json::from_slice(&invoke_body(r, f).unwrap()).unwrap()
    }

    #[test]
    fn families_by_model_id() {
        use ImageFamily::*;
        assert_eq!(family("amazon.titan-image-generator-v2:0"), Some(Amazon));
        assert_eq!(family("amazon.titan-image-generator-v1"), Some(Amazon));
        assert_eq!(family("us.amazon.nova-canvas-v1:0"), Some(Amazon));
        assert_eq!(family("stability.sd3-5-large-v1:0"), Some(Stability));
        assert_eq!(
            family("us.stability.stable-image-ultra-v1:1"),
            Some(Stability)
        );
        assert_eq!(family("stability.stable-image-core-v1:1"), Some(Stability));
        assert_eq!(family("stability.stable-diffusion-xl-v1"), None);
        assert_eq!(family("anthropic.claude-3"), None);
    }

    #[test]
    fn titan_and_nova_bodies_map_n_size_quality_and_extras() {
        let r = req(
            r#"{"model":"m","prompt":"a cat","n":2,"size":"1024x512","quality":"hd",
                "negativeText":"dogs","seed":7,"metadata":{"x":1},"style":"vivid",
                "imageGenerationConfig":{"cfgScale":6.5}}"#,
        );
        assert_eq!(
            body(&r, ImageFamily::Amazon),
            json!({"taskType": "TEXT_IMAGE",
                "textToImageParams": {"text": "a cat", "negativeText": "dogs"},
                "imageGenerationConfig": {"numberOfImages": 2, "width": 1024, "height": 512,
                    "quality": "premium", "seed": 7, "cfgScale": 6.5}})
        );
        let r = req(r#"{"model":"m","prompt":"p","quality":"low","size":"auto"}"#);
        assert_eq!(
            body(&r, ImageFamily::Amazon)["imageGenerationConfig"],
            json!({"numberOfImages": 1, "quality": "standard"})
        );
        let bad = req(r#"{"model":"m","prompt":"p","taskType":"INPAINTING"}"#);
        let e = invoke_body(&bad, ImageFamily::Amazon).unwrap_err();
        assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
        let bad = req(r#"{"model":"m","prompt":"p","size":"big"}"#);
        assert_eq!(
            invoke_body(&bad, ImageFamily::Amazon).unwrap_err().status(),
            http::StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn stability_bodies_take_an_aspect_ratio_and_one_image() {
        let r = req(
            r#"{"model":"m","prompt":"a cat","size":"1792x1024","quality":"hd",
                "negative_prompt":"dogs","output_format":"png","fallbacks":["x"]}"#,
        );
        assert_eq!(
            body(&r, ImageFamily::Stability),
            json!({"prompt": "a cat", "aspect_ratio": "16:9", "negative_prompt": "dogs",
                "output_format": "png"})
        );
        assert_eq!(nearest_ratio(1024, 1024), "1:1");
        assert_eq!(nearest_ratio(1024, 1536), "2:3");
        assert_eq!(nearest_ratio(2100, 900), "21:9");
        let two = req(r#"{"model":"m","prompt":"p","n":2}"#);
        let e = invoke_body(&two, ImageFamily::Stability).unwrap_err();
        assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn answers_become_openai_images_or_errors() {
        let r = req(r#"{"model":"m","prompt":"p","size":"512x512"}"#);
        let out = invoke_answer(&r, br#"{"images":["iVBORw0KGgo=","AAAA"],"error":null}"#).unwrap();
        let u = out.token_usage().unwrap();
        assert_eq!((u.images, u.image_pixels), (2, 512 * 512));
        let crate::types::ResponseBody::Json(j) = out.body else {
            panic!("json")
        };
        let v: Value = serde_json::from_slice(&j.bytes).unwrap();
        assert_eq!(
            v["data"],
            json!([{"b64_json": "iVBORw0KGgo="}, {"b64_json": "AAAA"}])
        );
        // Stability: a finish reason is the image filtered.
        let e = invoke_answer(
            &r,
            br#"{"seeds":[1],"finish_reasons":["Filter reason: prompt"],"images":[]}"#,
        )
        .unwrap_err();
        assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("Filter reason: prompt"), "{e}");
        let ok = invoke_answer(
            &r,
            br#"{"seeds":[1],"finish_reasons":[null],"images":["QQ=="]}"#,
        )
        .unwrap();
        assert_eq!(ok.token_usage().unwrap().images, 1);
        for bad in [
            &br#"{"images":[]}"#[..],
            br#"{"images":[{"x":1}]}"#,
            b"[",
            b"{}",
        ] {
            let e = invoke_answer(&r, bad).unwrap_err();
            assert!(e.status().is_server_error(), "{e}");
        }
    }
}
