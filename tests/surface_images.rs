//! `POST /v1/images/generations` and `/v1/images/edits` (issue 21, items 1 and 4) over real
//! sockets: relayed to OpenAI-format hosts and Azure with the deployment's model (the JSON body
//! byte for byte otherwise, the multipart parts as sent), the answer byte for byte; missing
//! fields and providers without images are 400s in OpenAI's error shape; each image is priced,
//! written to the spend log, and charged to the key's budget, which then refuses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;
use support::{
    gw::{post, post_json, send, TestGateway},
    FakeUpstream, Reply,
};

const ANSWER: &[u8] = br#"{"created":1700000000,"data":[{"url":"https://img/1.png","revised_prompt":"a cat"},{"url":"https://img/2.png"}]}"#;

fn config(upstream: &str) -> String {
    format!(
        "model_list:
  - model_name: dalle
    litellm_params:
      model: openai/dall-e-3
      api_base: {upstream}/v1
      api_key: sk-up
  - model_name: dalle-az
    litellm_params:
      model: azure/my-dalle
      api_base: {upstream}
      api_key: az-key
      api_version: 2024-10-21
  - model_name: claude
    litellm_params:
      model: anthropic/claude-3-5-haiku-20241022
      api_base: {upstream}
      api_key: sk-up
"
    )
}

/// A multipart body of `parts` (name, file name, bytes) and its content type.
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Bytes) {
    let boundary = "----test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if let Some(f) = file {
            body.extend_from_slice(
                format!("; filename=\"{f}\"\r\nContent-Type: image/png").as_bytes(),
            );
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={boundary}"),
        Bytes::from(body),
    )
}

async fn post_multipart(url: &str, content_type: &str, body: Bytes) -> support::gw::Answer {
    send(
        http::Request::post(url)
            .header("content-type", content_type)
            .body(Full::new(body))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn generations_are_relayed_to_openai_and_azure() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::raw(200, "application/json", ANSWER));
    let gw = TestGateway::start(&config(&up.url())).await;
    let sent = r#"{"model":"dalle", "prompt":"a cat","n":2,"size":"1024x1024","quality":"hd","metadata":{"tags":["x"]}}"#;
    for path in ["/v1/images/generations", "/images/generations"] {
        let r = post(&gw.url(path), sent).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(&r.body[..], ANSWER);
        assert!(r.headers.contains_key("x-litellm-call-id"));
        let got = up.last_request().unwrap();
        assert_eq!(got.path(), "/v1/images/generations");
        assert_eq!(got.header("authorization"), Some("Bearer sk-up"));
        // The client's bytes, `model` replaced, the gateway's `metadata` cut out.
        assert_eq!(
            got.body_str(),
            r#"{"model":"dall-e-3", "prompt":"a cat","n":2,"size":"1024x1024","quality":"hd"}"#
        );
    }
    // Azure: the deployment's path and api-version, its key in `api-key`; the Azure-style route
    // names the model group.
    let r = post(
        &gw.url("/openai/deployments/dalle-az/images/generations?api-version=2024-02-01"),
        r#"{"model":"ignored-by-azure","prompt":"a dog"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], ANSWER);
    let got = up.last_request().unwrap();
    assert_eq!(
        got.uri.path_and_query().unwrap().as_str(),
        "/openai/deployments/my-dalle/images/generations?api-version=2024-10-21"
    );
    assert_eq!(got.header("api-key"), Some("az-key"));
    assert_eq!(got.json(), json!({"model": "my-dalle", "prompt": "a dog"}));
}

#[tokio::test]
async fn generation_errors_are_openai_errors() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start(&config(&up.url())).await;
    let url = gw.url("/v1/images/generations");
    let r = post_json(&url, &json!({"prompt": "x"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error()["message"],
        "/images/generations: Invalid model name passed in model=. Call `/v1/models` to view available models for your key."
    );
    let r = post_json(&url, &json!({"model": "dalle"})).await;
    assert_eq!(r.status, 400);
    assert!(r.error()["message"].as_str().unwrap().contains("prompt"));
    let r = post_json(&url, &json!({"model": "claude", "prompt": "x"})).await;
    assert_eq!(r.status, 400);
    assert!(r.error()["message"]
        .as_str()
        .unwrap()
        .contains("does not support image_generations"));
    assert_eq!(up.hits(), 0);
    // The provider's own refusal, relayed with its status in OpenAI's shape.
    up.set_default(Reply::json(
        400,
        json!({"error": {"message": "Your request was rejected by the safety system.",
                         "type": "invalid_request_error", "param": null, "code": "content_policy_violation"}}),
    ));
    let r = post_json(&url, &json!({"model": "dalle", "prompt": "x"})).await;
    assert_eq!(r.status, 400);
    let e = r.error();
    assert_eq!(e["code"], "content_policy_violation");
    assert!(e["message"].as_str().unwrap().contains("safety system"));
    // Not an image answer: a 502, not a relayed page.
    up.set_default(Reply::raw(200, "text/html", "<html>hi</html>"));
    let r = post_json(&url, &json!({"model": "dalle", "prompt": "x"})).await;
    assert_eq!(r.status, 502);
    r.error();
}

#[tokio::test]
async fn edits_relay_the_multipart_parts_with_the_deployments_model() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::raw(200, "application/json", ANSWER));
    let gw = TestGateway::start(&config(&up.url())).await;
    let png: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let mask = b"\x89PNG mask \r\n-- not a boundary";
    let (ct, body) = multipart(&[
        ("image", Some("cat.png"), &png),
        ("mask", Some("mask.png"), mask),
        ("prompt", None, b"add a hat"),
        ("model", None, b"dalle"),
        ("n", None, b"2"),
    ]);
    for path in [
        "/v1/images/edits",
        "/openai/deployments/dalle-az/images/edits?api-version=x",
    ] {
        let r = post_multipart(&gw.url(path), &ct, body.clone()).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(&r.body[..], ANSWER);
        let got = up.last_request().unwrap();
        let (want_path, want_model) = if path.starts_with("/v1") {
            ("/v1/images/edits", "dall-e-3")
        } else {
            ("/openai/deployments/my-dalle/images/edits", "my-dalle")
        };
        assert_eq!(got.path(), want_path);
        let sent_ct = got.header("content-type").unwrap().to_owned();
        assert!(
            sent_ct.starts_with("multipart/form-data; boundary="),
            "{sent_ct}"
        );
        // Parsed back as a form: every part as sent, `model` replaced.
        let boundary = sent_ct.split("boundary=").nth(1).unwrap();
        let parts = split_form(&got.body, boundary);
        let find = |n: &str| {
            parts
                .iter()
                .find(|p| p.0 == n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        assert_eq!(find("model").2, want_model.as_bytes());
        assert_eq!(find("image").2, &png[..]);
        assert_eq!(find("image").1.as_deref(), Some("cat.png"));
        assert_eq!(find("mask").2, &mask[..]);
        assert_eq!(find("prompt").2, b"add a hat");
        assert_eq!(find("n").2, b"2");
        assert_eq!(parts.iter().filter(|p| p.0 == "model").count(), 1);
    }
    let hits = up.hits();
    // No model, no image, not multipart: 400s that name what is missing.
    let (ct, body) = multipart(&[("image", Some("cat.png"), b"png"), ("prompt", None, b"p")]);
    let r = post_multipart(&gw.url("/v1/images/edits"), &ct, body).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error()["param"], "model");
    let (ct, body) = multipart(&[("model", None, b"dalle"), ("prompt", None, b"p")]);
    let r = post_multipart(&gw.url("/v1/images/edits"), &ct, body).await;
    assert_eq!(r.status, 400);
    assert!(r.error()["message"].as_str().unwrap().contains("image"));
    let r = post(&gw.url("/v1/images/edits"), r#"{"model":"dalle"}"#).await;
    assert_eq!(r.status, 400);
    assert!(r.error()["message"].as_str().unwrap().contains("multipart"));
    assert_eq!(up.hits(), hits);
}

/// The parts of a multipart body: (name, file name, data). A test reader, strict enough for the
/// bodies the gateway writes.
fn split_form(body: &[u8], boundary: &str) -> Vec<(String, Option<String>, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let text = body;
    let mut out = Vec::new();
    let mut at = find(text, delim.as_bytes(), 0).expect("first boundary");
    loop {
        let start = at + delim.len();
        if text[start..].starts_with(b"--") {
            break;
        }
        let head_end = find(text, b"\r\n\r\n", start).expect("part head");
        let head = String::from_utf8_lossy(&text[start..head_end]).into_owned();
        let next = find(text, format!("\r\n{delim}").as_bytes(), head_end + 4).expect("next");
        let data = text[head_end + 4..next].to_vec();
        let param = |k: &str| {
            head.split(';').find_map(|p| {
                p.trim().strip_prefix(&format!("{k}=\"")).map(|v| {
                    v.trim_end_matches(['"', '\r', '\n'])
                        .split('"')
                        .next()
                        .unwrap()
                        .to_owned()
                })
            })
        };
        out.push((param("name").unwrap(), param("filename"), data));
        at = next + 2;
    }
    out
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// Each image is priced at the deployment's `input_cost_per_image`, the call's spend row holds
/// that cost, and the key's budget, spent, refuses the next call before the provider.
#[tokio::test]
async fn images_are_priced_per_image_and_the_budget_refuses() {
    use governance_common::{get, new_key, post as gpost, Gov, MASTER};
    use llmgate::governance::BuildOptions;
    let up = FakeUpstream::start().await;
    up.set_default(Reply::raw(200, "application/json", ANSWER));
    let yaml = format!(
        "model_list:\n  - model_name: dalle\n    litellm_params:\n      model: openai/dall-e-3\n      api_base: {}/v1\n      api_key: sk-up\n      input_cost_per_image: 0.04\ngeneral_settings:\n  master_key: {MASTER}\n",
        up.url()
    );
    let gw = Gov::start(
        &yaml,
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    let (key, _) = new_key(&base, json!({"max_budget": 0.05})).await;
    let url = gw.url("/v1/images/generations");
    let body = json!({"model": "dalle", "prompt": "a cat", "n": 2});
    let a = gpost(&url, Some(&key), &body).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    gw.flush().await;
    let rows = get(&gw.url(&format!("/spend/logs?api_key={key}")), Some(MASTER))
        .await
        .json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    // Two images at 0.04.
    let spend = rows[0]["spend"].as_f64().unwrap();
    assert!((spend - 0.08).abs() < 1e-9, "{rows:?}");
    assert_eq!(rows[0]["model_group"], "dalle", "{rows:?}");
    let hits = up.hits();
    let mut refused = None;
    for _ in 0..20 {
        let a = gpost(&url, Some(&key), &body).await;
        if a.status != 200 {
            refused = Some(a);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let a = refused.expect("the spent budget refuses the next call");
    assert!(matches!(a.status, 400 | 422 | 429), "{}", a.status);
    assert!(a.error()["message"].as_str().unwrap().contains("Budget"));
    assert_eq!(up.hits(), hits, "a refused call never reaches the provider");
}

/// The official OpenAI Python SDK: `images.generate`, `images.edit` (multipart), and the
/// `AzureOpenAI` client's `images.generate` on the Azure-style route.
#[tokio::test]
async fn official_openai_python_sdk_images() {
    use support::process::{python, run_sdk_script};
    let python = python();
    let up = FakeUpstream::start().await;
    up.set_default(Reply::raw(200, "application/json", ANSWER));
    let gw = TestGateway::start(&config(&up.url())).await;
    let base = gw.url("/v1");
    let (stdout, stderr) = run_sdk_script(
        &python,
        "media_sdk_check.py",
        [
            "--base-url",
            &base,
            "--api-key",
            "sk-test",
            "--only",
            "images",
            "--image-model",
            "dalle",
            "--azure-image-model",
            "dalle-az",
        ],
        String::new,
    )
    .await;
    for check in [
        "ok: images.generate",
        "ok: images.edit",
        "ok: azure.images.generate",
    ] {
        assert!(
            stdout.contains(check),
            "missing `{check}`:\n{stdout}\n{stderr}"
        );
    }
    let sent = up.requests();
    let paths: Vec<&str> = sent.iter().map(support::Recorded::path).collect();
    assert_eq!(
        paths,
        [
            "/v1/images/generations",
            "/v1/images/edits",
            "/openai/deployments/my-dalle/images/generations"
        ]
    );
    assert_eq!(sent[0].json()["model"], "dall-e-3");
    assert!(sent[1]
        .header("content-type")
        .unwrap()
        .starts_with("multipart/form-data"));
    assert_eq!(sent[2].header("api-key"), Some("az-key"));
}

/// `gemini/imagen-…`: OpenAI's request as Imagen's `:predict` call with the key in
/// `x-goog-api-key`, and Imagen's predictions as OpenAI's `data[].b64_json`, priced per image.
#[tokio::test]
async fn imagen_on_gemini_answers_in_openais_shape() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(
        200,
        json!({"predictions": [
            {"bytesBase64Encoded": "iVBORw0KGgo=", "mimeType": "image/png"},
            {"bytesBase64Encoded": "AAAA", "mimeType": "image/png"}
        ]}),
    ));
    let yaml = format!(
        "model_list:\n  - model_name: imagen\n    litellm_params:\n      model: gemini/imagen-3.0-generate-002\n      api_base: {}/v1beta\n      api_key: g-key\n",
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let r = post_json(
        &gw.url("/v1/images/generations"),
        &json!({"model": "imagen", "prompt": "a cat", "n": 2, "size": "1792x1024", "metadata": {"a": 1}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(
        v["data"],
        json!([{"b64_json": "iVBORw0KGgo="}, {"b64_json": "AAAA"}])
    );
    assert!(v["created"].as_u64().unwrap() > 0);
    let got = up.last_request().unwrap();
    assert_eq!(got.path(), "/v1beta/models/imagen-3.0-generate-002:predict");
    assert_eq!(got.header("x-goog-api-key"), Some("g-key"));
    assert_eq!(
        got.json(),
        json!({"instances": [{"prompt": "a cat"}], "parameters": {"sampleCount": 2, "aspectRatio": "16:9"}})
    );
    // Imagen's error, relayed in OpenAI's shape with its status.
    up.set_default(Reply::json(
        400,
        json!({"error": {"code": 400, "message": "Image generation failed: prompt blocked", "status": "INVALID_ARGUMENT"}}),
    ));
    let r = post_json(
        &gw.url("/v1/images/generations"),
        &json!({"model": "imagen", "prompt": "x"}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.error()["message"]
        .as_str()
        .unwrap()
        .contains("prompt blocked"));
}

/// Bedrock's image models over a real socket: Nova Canvas's and Stability's InvokeModel bodies,
/// SigV4-signed, answered in OpenAI's shape and priced per image from the built-in price map;
/// Bedrock's own error relayed with its status.
#[tokio::test]
async fn bedrock_image_models_answer_in_openais_shape_and_are_priced_per_image() {
    use governance_common::{new_key, post as gpost, Gov, MASTER};
    use llmgate::governance::BuildOptions;
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(
        200,
        json!({"images": ["iVBORw0KGgo=", "AAAA"], "error": null}),
    ));
    let creds = "      aws_access_key_id: AKIDEXAMPLE\n      aws_secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n      aws_region_name: us-east-1\n";
    let yaml = format!(
        "model_list:\n  - model_name: canvas\n    litellm_params:\n      model: bedrock/amazon.nova-canvas-v1:0\n      api_base: {u}\n{creds}  - model_name: sd35\n    litellm_params:\n      model: bedrock/stability.sd3-5-large-v1:0\n      api_base: {u}\n{creds}  - model_name: claude\n    litellm_params:\n      model: bedrock/anthropic.claude-3-haiku-20240307-v1:0\n      api_base: {u}\n{creds}general_settings:\n  master_key: {MASTER}\n",
        u = up.url()
    );
    let gw = Gov::start(
        &yaml,
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let (key, _) = new_key(&gw.url(""), json!({})).await;
    let url = gw.url("/v1/images/generations");
    let a = gpost(
        &url,
        Some(&key),
        &json!({"model": "canvas", "prompt": "a cat", "n": 2, "size": "1024x1024", "quality": "hd", "seed": 3}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(
        v["data"],
        json!([{"b64_json": "iVBORw0KGgo="}, {"b64_json": "AAAA"}])
    );
    // Two images at Nova Canvas's $0.06 (LiteLLM's map, `output_cost_per_image`).
    let cost: f64 = a
        .header("x-litellm-response-cost")
        .unwrap()
        .parse()
        .unwrap();
    assert!((cost - 0.12).abs() < 1e-9, "{cost}");
    let got = up.last_request().unwrap();
    assert_eq!(got.path(), "/model/amazon.nova-canvas-v1%3A0/invoke");
    let auth = got.header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            && auth.contains("/us-east-1/bedrock/aws4_request"),
        "{auth}"
    );
    assert!(got.header("x-amz-date").is_some());
    assert_eq!(
        got.json(),
        json!({"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a cat"},
            "imageGenerationConfig": {"numberOfImages": 2, "width": 1024, "height": 1024,
                "quality": "premium", "seed": 3}})
    );
    // Stability SD3.5: the size as an aspect ratio, one image.
    up.set_default(Reply::json(
        200,
        json!({"seeds": [1], "finish_reasons": [null], "images": ["QUJD"]}),
    ));
    let a = gpost(
        &url,
        Some(&key),
        &json!({"model": "sd35", "prompt": "a dog", "size": "1024x1792", "negative_prompt": "cats"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let cost: f64 = a
        .header("x-litellm-response-cost")
        .unwrap()
        .parse()
        .unwrap();
    assert!((cost - 0.08).abs() < 1e-9, "{cost}");
    let got = up.last_request().unwrap();
    assert_eq!(got.path(), "/model/stability.sd3-5-large-v1%3A0/invoke");
    assert_eq!(
        got.json(),
        json!({"prompt": "a dog", "aspect_ratio": "9:16", "negative_prompt": "cats"})
    );
    // Bedrock's error: its status, its message, OpenAI's shape.
    up.set_default(
        Reply::json(
            400,
            json!({"message": "The prompt was blocked by content filters."}),
        )
        .header(
            "x-amzn-errortype",
            "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
        ),
    );
    let a = gpost(&url, Some(&key), &json!({"model": "canvas", "prompt": "x"})).await;
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    let e: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("blocked by content filters"));
    // A Bedrock model that draws nothing: a 400 naming the models that do, no call made.
    let hits = up.hits();
    let a = gpost(&url, Some(&key), &json!({"model": "claude", "prompt": "x"})).await;
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    assert!(String::from_utf8_lossy(&a.body).contains("amazon.nova-canvas"));
    assert_eq!(up.hits(), hits);
}

/// Image edits on Imagen (`gemini/`, `vertex_ai/`) are not translated: a 400 in OpenAI's shape
/// naming the provider and the operation, with no upstream call.
#[tokio::test]
async fn imagen_edits_are_a_400_naming_provider_and_operation() {
    let up = FakeUpstream::start().await;
    let yaml = format!(
        "model_list:\n  - model_name: imagen\n    litellm_params:\n      model: gemini/imagen-3.0-generate-002\n      api_base: {u}/v1beta\n      api_key: g-key\n  - model_name: imagen-v\n    litellm_params:\n      model: vertex_ai/imagen-3.0-capability-001\n      api_base: {u}\n      api_key: ya29.t\n      vertex_project: p\n      vertex_location: us-central1\n",
        u = up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    for (group, provider) in [("imagen", "gemini"), ("imagen-v", "vertex_ai")] {
        let (ct, body) = multipart(&[
            ("model", None, group.as_bytes()),
            ("prompt", None, b"add a hat"),
            ("image", Some("cat.png"), b"\x89PNG\r\n\x1a\nfake"),
        ]);
        let r = post_multipart(&gw.url("/v1/images/edits"), &ct, body).await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        let e = r.error();
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.contains(provider) && msg.contains("image_edits"),
            "{msg}"
        );
    }
    assert_eq!(up.hits(), 0);
}
