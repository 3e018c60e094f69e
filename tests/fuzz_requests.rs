//! Fuzzing the request parsers at the edge: `parse_json` into the chat and embeddings bodies,
//! `LlmRequest::chat_from_bytes`, the relayed-answer reader (`Relayed::from_wire`), and the whole
//! of `OpenAiServer` (route, method, headers, body) in front of a model stack that answers.
//!
//! Properties: no input panics; a body is either a request whose fields read back as the JSON
//! says, or a 400 with OpenAI error JSON; the edge answers every request with a 2xx or a 4xx
//! carrying OpenAI error JSON (the stack behind it never fails, so a 5xx would be the edge's own).
//!
//! Cases per property: `PROPTEST_CASES` (256 when unset). A long run:
//! `PROPTEST_CASES=20000 cargo test --test fuzz_requests` (see docs/reliability.md).

#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, sync::LazyLock};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, Full};
use llmgate::{
    server::{parse_json, OpenAiServer},
    types::{
        chat::{ChatChunk, ChatRequest, ChatResponse},
        embeddings::EmbeddingsRequest,
        ChatBody, ChunkBody,
    },
    LlmError, LlmRequest, LlmResponse,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::{Service, ServiceExt as _};

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

/// Any JSON value, nested a few levels, with the request's own keys likely.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[a-z_]{0,10}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "model",
            "messages",
            "role",
            "content",
            "type",
            "text",
            "image_url",
            "url",
            "stream",
            "stream_options",
            "include_usage",
            "tools",
            "tool_choice",
            "function",
            "name",
            "arguments",
            "tool_calls",
            "max_tokens",
            "temperature",
            "n",
            "stop",
            "user",
            "metadata",
            "input",
            "encoding_format",
            "dimensions",
            "response_format",
            "caching",
            "mock_response",
            "fallbacks",
            "num_retries",
            "timeout",
            "api_key",
            "extra_body",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

/// A chat request that parses, with optional members of any shape mixed in.
fn chat_body() -> impl Strategy<Value = Value> {
    (
        any::<String>(),
        proptest::collection::vec(
            (
                proptest::sample::select(vec!["user", "system", "assistant", "tool", "developer"]),
                prop_oneof![
                    any::<String>().prop_map(Value::from),
                    any::<String>().prop_map(|t| json!([{"type": "text", "text": t}])),
                    Just(json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}])),
                    Just(Value::Null),
                ],
            ),
            0..4,
        ),
        proptest::collection::btree_map(key(), json_value(), 0..4),
    )
        .prop_map(|(model, messages, extra)| {
            let mut body = json!({
                "model": model,
                "messages": messages.into_iter().map(|(r, c)| json!({"role": r, "content": c})).collect::<Vec<_>>(),
            });
            for (k, v) in extra {
                body[k] = v;
            }
            body
        })
}

fn embeddings_body() -> impl Strategy<Value = Value> {
    (
        any::<String>(),
        prop_oneof![
            any::<String>().prop_map(Value::from),
            proptest::collection::vec(any::<String>(), 0..3).prop_map(Value::from),
            proptest::collection::vec(any::<u32>(), 0..3).prop_map(Value::from),
            json_value(),
        ],
        proptest::collection::btree_map(key(), json_value(), 0..3),
    )
        .prop_map(|(model, input, extra)| {
            let mut body = json!({"model": model, "input": input});
            for (k, v) in extra {
                body[k] = v;
            }
            body
        })
}

/// `raw` with a few bytes inserted, removed or replaced.
fn mutate(mut raw: Vec<u8>, edits: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(op, at, byte) in edits {
        let i = at % (raw.len() + 1);
        match op % 3 {
            0 => raw.insert(i, byte),
            1 if i < raw.len() => {
                raw.remove(i);
            }
            _ if i < raw.len() => raw[i] = byte,
            _ => {}
        }
    }
    raw
}

/// Request bodies: arbitrary bytes, valid requests, and valid requests with bytes changed.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    let edits = proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..5);
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        chat_body().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        embeddings_body().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        (chat_body(), edits.clone()).prop_map(|(v, e)| mutate(serde_json::to_vec(&v).unwrap(), &e)),
        (embeddings_body(), edits).prop_map(|(v, e)| mutate(serde_json::to_vec(&v).unwrap(), &e)),
    ]
}

/// JSON equality where two floats are the same when a unit or two in the last place apart:
/// serde_json's default float parser may read back a float it wrote one unit away (its
/// `float_roundtrip` feature, not enabled here, trades speed for exactness).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => {
                    x == y
                        || (x.is_sign_negative() == y.is_sign_negative()
                            && x.to_bits().abs_diff(y.to_bits()) <= 2)
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn check_bad_request(e: &LlmError) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{}", e);
    let body: Value = serde_json::from_slice(&e.to_json()).unwrap();
    prop_assert!(body["error"]["message"].is_string(), "{}", body);
    Ok(())
}

/// The model stack behind the edge: answers every request (echoing its model), never fails.
#[derive(Clone, Debug)]
struct Answers;

impl Service<LlmRequest> for Answers {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = std::future::Ready<Result<LlmResponse, LlmError>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), LlmError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let model = req.model().to_owned();
        let choice = json!({"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"});
        let resp = if req.is_stream() {
            let chunk: ChatChunk = serde_json::from_value(json!({
                "id": "c", "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}],
            }))
            .unwrap();
            let items: Vec<Result<ChunkBody, LlmError>> = vec![Ok(ChunkBody::from(chunk))];
            LlmResponse::stream(Box::pin(futures_util::stream::iter(items)))
        } else if req.as_chat().is_some() {
            let body: ChatResponse = serde_json::from_value(json!({
                "id": "r", "object": "chat.completion", "created": 1, "model": model,
                "choices": [choice],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }))
            .unwrap();
            LlmResponse::chat(body)
        } else {
            return std::future::ready(Err(LlmError::bad_request(format!(
                "{} is not served here",
                req.operation_name()
            ))));
        };
        std::future::ready(Ok(resp))
    }
}

proptest! {
    /// A chat body is a request whose model and stream flag read back as its JSON says, or a
    /// 400 with an OpenAI error.
    #[test]
    fn chat_bodies_parse_or_are_refused(raw in body_bytes()) {
        match parse_json::<ChatRequest>(&raw) {
            Ok(body) => {
                let json: Value = serde_json::from_slice(&raw).unwrap();
                let req = LlmRequest::chat_from_bytes(body, Bytes::from(raw.clone()));
                prop_assert_eq!(Some(req.model()), json["model"].as_str());
                prop_assert_eq!(req.is_stream(), json["stream"].as_bool() == Some(true));
                prop_assert_eq!(req.raw_body().map(|b| &b[..]), Some(&raw[..]));
                // What is parsed serializes, and reads back as the same request.
                let chat = req.as_chat().unwrap();
                let again = serde_json::to_vec(chat).unwrap();
                let back: ChatRequest = serde_json::from_slice(&again).unwrap();
                let (back, chat) = (serde_json::to_value(&back).unwrap(), serde_json::to_value(chat).unwrap());
                prop_assert!(same(&back, &chat), "{} != {}", back, chat);
            }
            Err(e) => check_bad_request(&e)?,
        }
    }

    /// The same for embeddings bodies.
    #[test]
    fn embeddings_bodies_parse_or_are_refused(raw in body_bytes()) {
        match parse_json::<EmbeddingsRequest>(&raw) {
            Ok(body) => {
                let json: Value = serde_json::from_slice(&raw).unwrap();
                let req = LlmRequest::embeddings_from_bytes(body, Bytes::from(raw.clone()));
                prop_assert_eq!(Some(req.model()), json["model"].as_str());
                let Some(llmgate::types::Operation::Embeddings(e)) = Some(&req.op) else {
                    return Err(TestCaseError::fail("not an embeddings request"));
                };
                let again = serde_json::to_vec(&**e).unwrap();
                let back: EmbeddingsRequest = serde_json::from_slice(&again).unwrap();
                let (back, e) = (serde_json::to_value(&back).unwrap(), serde_json::to_value(&**e).unwrap());
                prop_assert!(same(&back, &e), "{} != {}", back, e);
            }
            Err(e) => check_bad_request(&e)?,
        }
    }

    /// A provider's OpenAI-format answer read by the structural scan: an error, or a body whose
    /// model and usage are what serde reads.
    #[test]
    fn relayed_answers_read_like_serde(
        raw in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            (any::<String>(), json_value(), json_value(), proptest::collection::vec(json_value(), 0..3))
                .prop_map(|(m, u, c, extra)| serde_json::to_vec(&json!({"model": m, "usage": u, "choices": [c], "x": extra})).unwrap()),
            (any::<String>(), any::<u32>(), proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 0..4))
                .prop_map(|(m, n, e)| mutate(serde_json::to_vec(&json!({"id": "r", "model": m, "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": n, "completion_tokens": 1, "total_tokens": 2}})).unwrap(), &e)),
        ],
    ) {
        match ChatBody::from_wire(Bytes::from(raw.clone())) {
            Ok(mut relayed) => {
                let model = relayed.model().map(str::to_owned);
                let usage = relayed.usage().map(|u| serde_json::to_value(u).unwrap());
                if let Ok(typed) = serde_json::from_slice::<ChatResponse>(&raw) {
                    prop_assert_eq!(model, typed.model);
                    prop_assert_eq!(usage, typed.usage.map(|u| serde_json::to_value(u).unwrap()));
                }
                // Reading it typed later is an answer or an error, never a panic.
                if let Err(e) = relayed.typed() {
                    prop_assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
                }
            }
            Err(e) => prop_assert_eq!(e.status(), StatusCode::BAD_GATEWAY),
        }
        match ChunkBody::from_wire(Bytes::from(raw)) {
            Ok(mut chunk) => { let _ = chunk.typed(); }
            Err(e) => prop_assert_eq!(e.status(), StatusCode::BAD_GATEWAY),
        }
    }

    /// Any request to the edge (method, path, the headers it reads, any body) is answered with a
    /// 2xx, or a 4xx carrying OpenAI error JSON and a call id.
    #[test]
    fn the_edge_answers_every_request(
        method in proptest::sample::select(vec![Method::POST, Method::GET, Method::HEAD, Method::PUT, Method::DELETE, Method::OPTIONS]),
        path in prop_oneof![
            proptest::sample::select(vec![
                "/v1/chat/completions", "/chat/completions", "/v1/embeddings", "/embeddings",
                "/v1/models", "/models", "/health/liveliness", "/v1/chat/completions/",
            ]).prop_map(str::to_owned),
            "/[a-z/]{0,20}",
        ],
        headers in proptest::collection::vec(
            (
                proptest::sample::select(vec![
                    "authorization", "api-key", "x-api-key", "x-litellm-api-key", "content-type",
                    "content-length", "cache-control", "x-litellm-timeout", "x-litellm-call-id",
                    "accept", "x-other",
                ]),
                prop_oneof![
                    "[ -~]{0,40}",
                    "Bearer [ -~]{0,20}",
                    "[0-9]{1,25}",
                    "-?[0-9]{0,4}\\.?[0-9]{0,3}(e[0-9]{1,3})?",
                    "(no-cache|no-store|max-age=[0-9]{0,12}|s-maxage=-?[0-9]{0,5}|namespace=[a-z]*)(, ?[a-z-]*=?[0-9a-z]*){0,3}",
                ],
            ),
            0..6,
        ),
        body in body_bytes(),
        stream in any::<bool>(),
        limit in prop_oneof![Just(1_usize << 20), 0_usize..300],
    ) {
        let body = if stream {
            // A request that parses, asking for a stream.
            let mut v: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({"model": "m", "messages": []}));
            if v.is_object() {
                v["stream"] = json!(true);
            }
            serde_json::to_vec(&v).unwrap()
        } else {
            body
        };
        let mut req = http::Request::builder().method(method.clone()).uri(path.as_str());
        for (name, value) in &headers {
            if let Ok(v) = http::HeaderValue::from_str(value) {
                req = req.header(*name, v);
            }
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let server = OpenAiServer::new(Answers).max_body_bytes(limit);
        let resp = RT.block_on(async move {
            let resp = server.oneshot(req).await.unwrap_or_else(|e: Infallible| match e {});
            let (parts, body) = resp.into_parts();
            let bytes = body.collect().await.map(http_body_util::Collected::to_bytes);
            (parts, bytes)
        });
        let (parts, bytes) = resp;
        let status = parts.status;
        prop_assert!(status.is_success() || status.is_client_error(), "{} {} -> {}", method, path, status);
        let bytes = bytes.map_err(|e| TestCaseError::fail(format!("body error: {e}")))?;
        if status.is_client_error() {
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| TestCaseError::fail(format!("{status}: {e}: {bytes:?}")))?;
            prop_assert!(v["error"]["message"].is_string(), "{}", v);
            prop_assert!(parts.headers.contains_key("x-litellm-call-id") || status == StatusCode::NOT_FOUND, "{:?}", parts.headers);
        }
    }
}
