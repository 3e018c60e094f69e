//! Image generation on Imagen (`gemini/imagen-…` and `vertex_ai/imagen-…`): OpenAI's
//! `POST /v1/images/generations` as Imagen's `:predict` call, and its answer as OpenAI's.
//!
//! From Google's references (Gemini API "Generate images using Imagen", Vertex AI "Imagen API"):
//! the request is `{"instances": [{"prompt": …}], "parameters": {"sampleCount": n,
//! "aspectRatio": "1:1" | "3:4" | "4:3" | "9:16" | "16:9"}}` posted to
//! `…/models/{model}:predict` (the model's `generateContent` URL with `:predict` instead); the
//! answer is `{"predictions": [{"bytesBase64Encoded": …, "mimeType": "image/png"}, …]}`.
//! OpenAI's `size` maps to the nearest aspect ratio Imagen has; `quality`, `style` and
//! `response_format` have no Imagen counterpart and are not sent (the answer is always
//! `b64_json`, as LiteLLM's Imagen transformation answers). Any other key of the body that is
//! not a gateway control is sent in `parameters` as written (`negativePrompt`, `personGeneration`,
//! …).

use bytes::{BufMut as _, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{
    error::{ErrorKind, LlmError},
    provider::{openai::invalid_upstream_json, resolve::Endpoint},
    types::{
        media::{parse_size, ImageTier, ImagesRequest},
        JsonBody, LlmResponse, TokenUsage,
    },
};

/// The `:predict` endpoint of a model, from its `:generateContent` one.
pub(crate) fn predict_endpoint(chat: &Endpoint) -> Result<Endpoint, LlmError> {
    let uri = chat.uri();
    let path = uri.path();
    let Some(base) = path.strip_suffix(":generateContent") else {
        return Err(LlmError::internal(
            "the model's URL does not end in :generateContent",
        ));
    };
    let mut url = String::with_capacity(path.len() + 64);
    if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
        url.push_str(scheme);
        url.push_str("://");
        url.push_str(authority.as_str());
    }
    url.push_str(base);
    url.push_str(":predict");
    Endpoint::parse(&url)
}

/// Imagen's aspect ratios, as (name, width / height).
const RATIOS: [(&str, f64); 5] = [
    ("1:1", 1.0),
    ("3:4", 0.75),
    ("4:3", 4.0 / 3.0),
    ("9:16", 9.0 / 16.0),
    ("16:9", 16.0 / 9.0),
];

/// The aspect ratio nearest to OpenAI's `size` (`1792x1024` → `16:9`).
fn aspect_ratio(size: &str) -> Option<&'static str> {
    let (w, h) = parse_size(size)?;
    #[allow(clippy::cast_precision_loss)] // image sides are far below 2^52
    let r = (w as f64 / h as f64).ln();
    RATIOS
        .iter()
        .min_by(|a, b| (a.1.ln() - r).abs().total_cmp(&(b.1.ln() - r).abs()))
        .map(|(name, _)| *name)
}

/// OpenAI keys with no Imagen counterpart, and the typed ones written separately.
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

/// The `:predict` body of an image generation.
pub(crate) fn predict_body(req: &ImagesRequest) -> Result<Bytes, LlmError> {
    let mut params = serde_json::Map::new();
    params.insert("sampleCount".into(), req.count().into());
    if let Some(ratio) = req.size.as_deref().and_then(aspect_ratio) {
        params.insert("aspectRatio".into(), ratio.into());
    }
    for (k, v) in req.extra.iter() {
        if !NOT_SENT.contains(&k) && crate::types::chat::is_upstream_param(k) {
            let v: serde_json::Value = serde_json::from_str(v.get())
                .map_err(|e| LlmError::bad_request(format!("{k}: {e}")))?;
            params.insert(k.to_owned(), v);
        }
    }
    let body = serde_json::json!({
        "instances": [{"prompt": req.prompt}],
        "parameters": params,
    });
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .map_err(|e| LlmError::internal(format!("cannot encode the upstream request: {e}")))
}

#[derive(Deserialize)]
struct PredictResponse<'a> {
    #[serde(default, borrow)]
    predictions: Option<Vec<Prediction<'a>>>,
}

#[derive(Deserialize)]
struct Prediction<'a> {
    /// The image, base64: a JSON string kept as written (no escapes occur in base64).
    #[serde(rename = "bytesBase64Encoded", default, borrow)]
    bytes: Option<&'a RawValue>,
}

/// Imagen's answer as OpenAI's `{"created", "data": [{"b64_json"}]}`, with the images stated
/// for the price per image. Predictions without image bytes (filtered by Imagen's safety
/// settings) are left out.
pub(crate) fn decode(req: &ImagesRequest, body: &[u8]) -> Result<LlmResponse, LlmError> {
    let resp: PredictResponse<'_> =
        serde_json::from_slice(body).map_err(|e| invalid_upstream_json("Imagen answer", &e))?;
    let Some(predictions) = resp.predictions else {
        return Err(LlmError::new(
            ErrorKind::InternalServer,
            "the provider returned an invalid Imagen answer: no predictions (all images filtered?)",
        )
        .with_status(http::StatusCode::BAD_GATEWAY));
    };
    let images: Vec<&RawValue> = predictions.iter().filter_map(|p| p.bytes).collect();
    Ok(b64_answer(&images, req.size.as_deref()))
}

/// OpenAI's `{"created", "data": [{"b64_json"}, …]}` from base64 images (each a JSON string as
/// the provider wrote it), with the images and the pixels of each (from `size`, else
/// 1024×1024) stated for the price per image or pixel. Shared by Imagen and Bedrock's image
/// models.
pub(crate) fn b64_answer(images: &[&RawValue], size: Option<&str>) -> LlmResponse {
    let bytes: usize = images.iter().map(|b| b.get().len() + 16).sum();
    let mut out = BytesMut::with_capacity(bytes + 48);
    let created = crate::provider::chunk::created_now();
    out.put_slice(b"{\"created\":");
    out.put_slice(created.to_string().as_bytes());
    out.put_slice(b",\"data\":[");
    for (i, b) in images.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(b"{\"b64_json\":");
        out.put_slice(b.get().as_bytes());
        out.put_u8(b'}');
    }
    out.put_slice(b"]}");
    let usage = TokenUsage {
        images: u64::try_from(images.len()).unwrap_or(u64::MAX),
        image_pixels: size
            .and_then(parse_size)
            .map_or(1024 * 1024, |(w, h)| w.saturating_mul(h)),
        image_tier: ImageTier::new(size, None),
        ..TokenUsage::default()
    };
    LlmResponse::json(JsonBody::new(out.freeze()).with_usage(Some(usage)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_sizes_to_imagen_aspect_ratios() {
        assert_eq!(aspect_ratio("1024x1024"), Some("1:1"));
        assert_eq!(aspect_ratio("1792x1024"), Some("16:9"));
        assert_eq!(aspect_ratio("1024x1792"), Some("9:16"));
        assert_eq!(aspect_ratio("1536x1024"), Some("4:3"));
        assert_eq!(aspect_ratio("auto"), None);
    }

    #[test]
    fn writes_the_predict_body_and_reads_the_answer() {
        let req: ImagesRequest = serde_json::from_str(
            r#"{"model":"m","prompt":"a \"cat\"","n":2,"size":"1792x1024","quality":"hd","negativePrompt":"dogs","metadata":{"a":1},"fallbacks":["x"]}"#,
        )
        .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&predict_body(&req).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"instances": [{"prompt": "a \"cat\""}],
                "parameters": {"sampleCount": 2, "aspectRatio": "16:9", "negativePrompt": "dogs"}})
        );
        let answer = br#"{"predictions":[{"bytesBase64Encoded":"iVBORw0KGgo=","mimeType":"image/png"},{"raiFilteredReason":"x"},{"mimeType":"image/png","bytesBase64Encoded":"AAAA"}]}"#;
        let r = decode(&req, answer).unwrap();
        let u = r.token_usage().unwrap();
        assert_eq!((u.images, u.image_pixels), (2, 1792 * 1024));
        let crate::types::ResponseBody::Json(j) = r.body else {
            panic!("json")
        };
        let v: serde_json::Value = serde_json::from_slice(&j.bytes).unwrap();
        assert_eq!(
            v["data"],
            serde_json::json!([{"b64_json": "iVBORw0KGgo="}, {"b64_json": "AAAA"}])
        );
        assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
        assert!(decode(&req, b"{}").is_err());
        assert!(decode(&req, b"[").is_err());
    }

    /// `vertex_ai/imagen-…`: the regional `:predict` URL of the publisher model, with the
    /// access token as a bearer.
    #[test]
    fn vertex_posts_to_the_regional_predict_url() {
        let vertex = crate::provider::lookup("vertex_ai").unwrap();
        let mut dep = crate::provider::Deployment::new("i", "vertex_ai/imagen-3.0-generate-002")
            .with_api_key("ya29.t");
        dep.params = serde_json::json!({"vertex_project": "p", "vertex_location": "us-central1"})
            .as_object()
            .unwrap()
            .clone();
        let req = crate::types::LlmRequest::image_generations_from_bytes(
            serde_json::from_str(r#"{"model":"i","prompt":"a cat"}"#).unwrap(),
            Bytes::new(),
        );
        let out = vertex.encode(&req, &dep).unwrap();
        assert_eq!(
            out.uri().to_string(),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google/models/imagen-3.0-generate-002:predict"
        );
        assert_eq!(out.headers()["authorization"], "Bearer ya29.t");
        let body: serde_json::Value = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(body["instances"][0]["prompt"], "a cat");
        assert_eq!(body["parameters"]["sampleCount"], 1);
    }

    #[test]
    fn the_predict_endpoint_replaces_generate_content() {
        let e = Endpoint::parse(
            "https://generativelanguage.googleapis.com/v1beta/models/imagen-3.0-generate-002:generateContent",
        )
        .unwrap();
        assert_eq!(
            predict_endpoint(&e).unwrap().uri().to_string(),
            "https://generativelanguage.googleapis.com/v1beta/models/imagen-3.0-generate-002:predict"
        );
        let e = Endpoint::parse("http://h/x:streamGenerateContent?alt=sse").unwrap();
        assert!(predict_endpoint(&e).is_err());
    }
}
