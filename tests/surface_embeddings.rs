//! `POST /v1/embeddings` on Bedrock (Titan text, Cohere), Google AI Studio and Vertex AI (issue
//! 21, item 3) over real sockets: the provider's own body and URL, the answer in OpenAI's shape
//! with usage and cost, Titan's one-input-per-call fan-out joined in order, Cohere's 96-text
//! batches, and errors.
//!
//! The upstream here answers each request from its own body (a vector holding each text's
//! length), so that an answer joined out of order is seen.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::suboptimal_flops)]

mod support;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{body::Bytes, extract::State, http::HeaderMap, response::IntoResponse, Router};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde_json::{json, Value};
use support::gw::{post_json, TestGateway};

/// One recorded upstream call.
#[derive(Clone, Debug)]
struct Call {
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Default)]
struct Upstream {
    calls: Mutex<Vec<Call>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// Answer a Titan call for this text with a 400 ValidationException.
    fail_text: Mutex<Option<String>>,
}

fn len_of(text: &Value) -> f64 {
    text.as_str().map_or(0.0, |s| s.chars().count() as f64)
}

async fn answer(
    State(up): State<Arc<Upstream>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_owned();
    up.calls.lock().unwrap().push(Call {
        path: path.clone(),
        headers: headers.clone(),
        body: body.clone(),
    });
    let now = up.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    up.most_in_flight.fetch_max(now, Ordering::SeqCst);
    // Later texts answer sooner, so that arrival order is not input order.
    let delay = 30u64.saturating_sub(len_of(&body["inputText"]) as u64);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    up.in_flight.fetch_sub(1, Ordering::SeqCst);
    let json_reply = |status: u16, v: Value, extra: &[(&str, String)]| {
        let mut resp = (
            axum::http::StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            v.to_string(),
        )
            .into_response();
        for (k, val) in extra {
            resp.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                axum::http::HeaderValue::from_str(val).unwrap(),
            );
        }
        resp
    };
    if path.ends_with("/invoke") {
        if let Some(text) = body.get("inputText") {
            if up.fail_text.lock().unwrap().as_deref() == text.as_str() {
                return json_reply(
                    400,
                    json!({"message": "Malformed input request: bad text"}),
                    &[(
                        "x-amzn-errortype",
                        "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"
                            .to_owned(),
                    )],
                );
            }
            let n = len_of(text);
            return json_reply(
                200,
                json!({"embedding": [n, 0.5], "inputTextTokenCount": n as u64, "embeddingsByType": {"float": [n, 0.5]}}),
                &[],
            );
        }
        let texts = body["texts"].as_array().cloned().unwrap_or_default();
        let vectors: Vec<Value> = texts.iter().map(|t| json!([len_of(t), 1.0])).collect();
        return json_reply(
            200,
            json!({"embeddings": vectors, "id": "e1", "response_type": "embeddings_floats", "texts": texts}),
            &[("x-amzn-bedrock-input-token-count", texts.len().to_string())],
        );
    }
    if path.ends_with(":batchEmbedContents") {
        let reqs = body["requests"].as_array().cloned().unwrap_or_default();
        let embs: Vec<Value> = reqs
            .iter()
            .map(|r| json!({"values": [len_of(&r["content"]["parts"][0]["text"]), -1.0]}))
            .collect();
        return json_reply(200, json!({"embeddings": embs}), &[]);
    }
    if path.ends_with(":predict") {
        let inst = body["instances"].as_array().cloned().unwrap_or_default();
        let preds: Vec<Value> = inst
            .iter()
            .map(|i| {
                let n = len_of(&i["content"]);
                json!({"embeddings": {"values": [n, 2.0], "statistics": {"token_count": n, "truncated": false}}})
            })
            .collect();
        return json_reply(200, json!({"predictions": preds}), &[]);
    }
    json_reply(404, json!({"error": "no such route"}), &[])
}

async fn upstream() -> (Arc<Upstream>, SocketAddr) {
    let up = Arc::new(Upstream::default());
    let app = Router::new().fallback(answer).with_state(Arc::clone(&up));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (up, addr)
}

fn config(entries: &[(&str, &str, &str)]) -> String {
    let mut out = String::from("model_list:\n");
    for (group, model, extra) in entries {
        out.push_str(&format!(
            "  - model_name: {group}\n    litellm_params:\n      model: {model}\n{extra}"
        ));
    }
    out
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn cost(headers: &http::HeaderMap) -> f64 {
    headers["x-litellm-response-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn titan_sends_one_input_a_call_and_joins_the_answers_in_order_priced() {
    let (up, addr) = upstream().await;
    let yaml = config(&[(
        "titan",
        "bedrock/amazon.titan-embed-text-v2:0",
        &format!("      api_base: http://{addr}\n      api_key: br-test-key\n"),
    )]);
    let gw = TestGateway::start(&yaml).await;
    // Twelve texts of lengths 1..=12: the upstream answers longer texts sooner.
    let texts: Vec<String> = (1..=12).map(|n| "x".repeat(n)).collect();
    let r = post_json(
        &gw.url("/v1/embeddings"),
        &json!({"model": "titan", "input": texts, "dimensions": 256}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "titan");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 12);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["object"], "embedding");
        assert_eq!(floats(&item["embedding"]), vec![(i + 1) as f64, 0.5]);
    }
    // Tokens: 1 + 2 + … + 12.
    assert_eq!(body["usage"]["prompt_tokens"], 78);
    assert_eq!(body["usage"]["total_tokens"], 78);
    // amazon.titan-embed-text-v2:0 costs 2e-8 a token in the price map.
    assert!(
        (cost(&r.headers) - 78.0 * 2e-8).abs() < 1e-15,
        "{}",
        cost(&r.headers)
    );

    let calls = up.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 12);
    for call in &calls {
        assert_eq!(call.path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
        assert_eq!(call.headers["authorization"], "Bearer br-test-key");
        let keys: Vec<&String> = call.body.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 2, "{:?}", call.body);
        assert_eq!(call.body["dimensions"], 256);
        assert!(call.body["inputText"].is_string());
    }
    let mut sent: Vec<usize> = calls
        .iter()
        .map(|c| c.body["inputText"].as_str().unwrap().len())
        .collect();
    sent.sort_unstable();
    assert_eq!(sent, (1..=12).collect::<Vec<_>>());
    // Concurrently, but bounded.
    let most = up.most_in_flight.load(Ordering::SeqCst);
    assert!((2..=8).contains(&most), "most in flight: {most}");
}

#[tokio::test]
async fn a_failed_titan_call_fails_the_request_with_the_providers_error() {
    let (up, addr) = upstream().await;
    *up.fail_text.lock().unwrap() = Some("bad".to_owned());
    let yaml = config(&[(
        "titan",
        "bedrock/amazon.titan-embed-text-v2:0",
        &format!("      api_base: http://{addr}\n      api_key: br-test-key\n"),
    )]);
    let gw = TestGateway::start(&yaml).await;
    let r = post_json(
        &gw.url("/v1/embeddings"),
        &json!({"model": "titan", "input": ["good", "bad", "fine"]}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let err = r.error();
    assert!(
        err["message"].as_str().unwrap().contains("Malformed input"),
        "{err}"
    );
    assert!(r.headers.contains_key("x-litellm-call-id"));
}

#[tokio::test]
async fn cohere_on_bedrock_batches_96_texts_a_call_with_input_type() {
    let (up, addr) = upstream().await;
    let yaml = config(&[(
        "cohere",
        "bedrock/cohere.embed-english-v3",
        &format!("      api_base: http://{addr}\n      api_key: br-test-key\n"),
    )]);
    let gw = TestGateway::start(&yaml).await;
    let texts: Vec<String> = (1..=100).map(|n| "y".repeat(n)).collect();
    let r = post_json(
        &gw.url("/v1/embeddings"),
        &json!({"model": "cohere", "input": texts}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 100);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(floats(&item["embedding"]), vec![(i + 1) as f64, 1.0]);
    }
    // The token count header of each call (one a text here), summed.
    assert_eq!(body["usage"]["prompt_tokens"], 100);
    assert!((cost(&r.headers) - 100.0 * 1e-7).abs() < 1e-15);
    let calls = up.calls.lock().unwrap().clone();
    let mut sizes: Vec<usize> = calls
        .iter()
        .map(|c| c.body["texts"].as_array().unwrap().len())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![4, 96]);
    for c in &calls {
        assert_eq!(c.path, "/model/cohere.embed-english-v3/invoke");
        assert_eq!(c.body["input_type"], "search_document");
    }

    // The client's input_type is sent.
    let r = post_json(
        &gw.url("/v1/embeddings"),
        &json!({"model": "cohere", "input": "q", "input_type": "search_query"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let last = up.calls.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        last.body,
        json!({"texts": ["q"], "input_type": "search_query"})
    );
}

#[tokio::test]
async fn gemini_batch_embed_contents_with_base64_answers() {
    let (up, addr) = upstream().await;
    let yaml = config(&[(
        "gemini-embed",
        "gemini/gemini-embedding-001",
        &format!("      api_base: http://{addr}/v1beta\n      api_key: g-test-key\n"),
    )]);
    let gw = TestGateway::start(&yaml).await;
    let r = post_json(
        &gw.url("/v1/embeddings"),
        &json!({"model": "gemini-embed", "input": ["ab", "abcd"], "dimensions": 2}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(floats(&body["data"][0]["embedding"]), vec![2.0, -1.0]);
    assert_eq!(floats(&body["data"][1]["embedding"]), vec![4.0, -1.0]);
    // No count in the answer: the estimate, four bytes a token, at least one a text.
    assert_eq!(body["usage"]["prompt_tokens"], 2);
    assert!(cost(&r.headers) > 0.0);
    let call = up.calls.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        call.path,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(call.headers["x-goog-api-key"], "g-test-key");
    assert_eq!(
        call.body["requests"][1],
        json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "abcd"}]}, "outputDimensionality": 2})
    );

    // encoding_format base64: the little-endian f32 bytes.
    let r = post_json(
        &gw.url("/v1/embeddings"),
        &json!({"model": "gemini-embed", "input": "abc", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let b64 = r.json()["data"][0]["embedding"]
        .as_str()
        .unwrap()
        .to_owned();
    let bytes = STANDARD.decode(b64).unwrap();
    let mut want = 3.0f32.to_le_bytes().to_vec();
    want.extend((-1.0f32).to_le_bytes());
    assert_eq!(bytes, want);

    // Token arrays: a 400 in OpenAI's error shape, nothing sent.
    let before = up.calls.lock().unwrap().len();
    let r = post_json(
        &gw.url("/v1/embeddings"),
        &json!({"model": "gemini-embed", "input": [1, 2, 3]}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error()["message"]
        .as_str()
        .unwrap()
        .contains("token arrays"));
    assert_eq!(up.calls.lock().unwrap().len(), before);
}

#[tokio::test]
async fn vertex_predict_with_token_counts_and_one_instance_for_gemini_embedding() {
    let (up, addr) = upstream().await;
    let extra = format!(
        "      api_base: http://{addr}\n      api_key: ya29.test-token\n      vertex_project: p1\n      vertex_location: europe-west4\n"
    );
    let yaml = config(&[
        ("vx", "vertex_ai/text-embedding-005", &extra),
        ("vx-gemini", "vertex_ai/gemini-embedding-001", &extra),
    ]);
    let gw = TestGateway::start(&yaml).await;
    let r = post_json(
        &gw.url("/v1/embeddings"),
        &json!({"model": "vx", "input": ["abc", "de"], "task_type": "RETRIEVAL_QUERY"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(floats(&body["data"][1]["embedding"]), vec![2.0, 2.0]);
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    // text-embedding-005: 1e-7 a token.
    assert!((cost(&r.headers) - 5.0 * 1e-7).abs() < 1e-15);
    let call = up.calls.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        call.path,
        "/v1/projects/p1/locations/europe-west4/publishers/google/models/text-embedding-005:predict"
    );
    assert_eq!(call.headers["authorization"], "Bearer ya29.test-token");
    assert_eq!(
        call.body,
        json!({"instances": [{"content": "abc", "task_type": "RETRIEVAL_QUERY"}, {"content": "de", "task_type": "RETRIEVAL_QUERY"}]})
    );

    // gemini-embedding-001 on Vertex takes one instance a call.
    let before = up.calls.lock().unwrap().len();
    let r = post_json(
        &gw.url("/v1/embeddings"),
        &json!({"model": "vx-gemini", "input": ["a", "bb", "ccc"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    let got: Vec<f64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| floats(&d["embedding"])[0])
        .collect();
    assert_eq!(got, vec![1.0, 2.0, 3.0]);
    assert_eq!(body["usage"]["prompt_tokens"], 6);
    let calls = up.calls.lock().unwrap().clone();
    assert_eq!(calls.len() - before, 3);
    for c in &calls[before..] {
        assert_eq!(c.body["instances"].as_array().unwrap().len(), 1);
    }
}
