//! `POST /v1/completions` (issue 21, item 1) over real sockets: natively to an OpenAI-format host
//! (`text-completion-openai/`, `openai/` with a model that is not an OpenAI chat model), through
//! the chat model to every other chat provider (an OpenAI chat model, Anthropic, the mock
//! provider), complete and streamed, with and without `stream_options.include_usage`, and priced.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use support::{
    chat_completion, chat_sse,
    gw::{open_stream, post, post_json, TestGateway},
    FakeUpstream, Reply,
};

/// A config with group `g` served by `model` at the fake upstream (`api_base` `{upstream}{path}`).
fn config(model: &str, upstream: &str, path: &str) -> String {
    format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: {model}\n      api_base: {upstream}{path}\n      api_key: sk-upstream-key-0123\n"
    )
}

fn text_completion() -> Value {
    json!({
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1_700_000_000,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"text": " there", "index": 0, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    })
}

/// A native text-completion stream: two text chunks, the usage chunk, `[DONE]`.
fn text_sse() -> String {
    let chunk = |choices: Value, usage: Value| {
        let mut v = json!({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "gpt-3.5-turbo-instruct", "choices": choices});
        if !usage.is_null() {
            v["usage"] = usage;
        }
        format!("data: {v}\n\n")
    };
    let mut out = chunk(
        json!([{"text": "Hel", "index": 0, "logprobs": null, "finish_reason": null}]),
        Value::Null,
    );
    out.push_str(&chunk(
        json!([{"text": "lo", "index": 0, "logprobs": null, "finish_reason": "stop"}]),
        Value::Null,
    ));
    out.push_str(&chunk(
        json!([]),
        json!({"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}),
    ));
    out.push_str("data: [DONE]\n\n");
    out
}

/// The `data:` payloads of an SSE body, in order.
fn data_of(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|ev| ev.strip_prefix("data: ").map(str::to_owned))
        .collect()
}

async fn stream_body(url: &str, body: &Value) -> (http::HeaderMap, Vec<String>) {
    let resp = open_stream(url, body).await;
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "text/event-stream");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (headers, data_of(&bytes))
}

#[tokio::test]
async fn text_completion_openai_is_relayed_natively_byte_for_byte() {
    let up = FakeUpstream::start().await;
    let answer = serde_json::to_vec(&text_completion()).unwrap();
    up.enqueue(Reply::raw(200, "application/json", answer.clone()));
    let gw = TestGateway::start(&config(
        "text-completion-openai/gpt-3.5-turbo-instruct",
        &up.url(),
        "/v1",
    ))
    .await;
    // Unknown and completion-only keys reach the provider as sent; gateway controls do not.
    let sent = r#"{"model":"g","prompt":"Say hi","echo":true,"suffix":"!","logprobs":2,"max_tokens":5,"metadata":{"tags":["t"]}}"#;
    let r = post(&gw.url("/v1/completions"), sent).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], &answer[..], "the answer is relayed as sent");
    assert!(r.headers.contains_key("x-litellm-call-id"));
    // Priced from the price map (gpt-3.5-turbo-instruct: 1.5e-6 in, 2e-6 out).
    let cost: f64 = r.headers["x-litellm-response-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected = 4.0f64.mul_add(1.5e-6, 2.0 * 2e-6);
    assert!((cost - expected).abs() < 1e-12, "{cost}");
    let got = up.last_request().unwrap();
    assert_eq!(got.path(), "/v1/completions");
    assert_eq!(
        got.header("authorization"),
        Some("Bearer sk-upstream-key-0123")
    );
    assert_eq!(
        got.body_str(),
        r#"{"model":"gpt-3.5-turbo-instruct","prompt":"Say hi","echo":true,"suffix":"!","logprobs":2,"max_tokens":5}"#
    );
    // LiteLLM's mock_response is answered without calling the provider, natively routed or not.
    let hits = up.hits();
    let r = post_json(
        &gw.url("/v1/completions"),
        &json!({"model": "g", "prompt": "x", "mock_response": "canned"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["choices"][0]["text"], "canned");
    assert_eq!(r.json()["object"], "text_completion");
    assert_eq!(up.hits(), hits, "a mock_response reached the provider");
    // Without /v1 too.
    up.enqueue(Reply::json(200, text_completion()));
    let r = post_json(
        &gw.url("/completions"),
        &json!({"model": "g", "prompt": "x"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["choices"][0]["text"], " there");
    // A chat request to a text-completion-only deployment names the provider.
    let r = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.error()["message"]
        .as_str()
        .unwrap()
        .contains("text-completion-openai"));
    assert_eq!(up.hits(), 2, "the refused call reached no provider");
}

#[tokio::test]
async fn a_native_stream_is_relayed_and_counted_with_or_without_include_usage() {
    let up = FakeUpstream::start().await;
    // openai/ with a model that is not an OpenAI chat model: native /completions, as LiteLLM.
    let gw = TestGateway::start(&config("openai/my-vllm-model", &up.url(), "/v1")).await;
    up.enqueue(Reply::split_at(
        200,
        "text/event-stream",
        text_sse(),
        &[7, 50, 120],
    ));
    let (headers, data) = stream_body(
        &gw.url("/v1/completions"),
        &json!({"model": "g", "prompt": "Say hello", "stream": true}),
    )
    .await;
    assert!(headers.contains_key("x-litellm-call-id"));
    assert_eq!(data.len(), 3, "{data:?}");
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["object"], "text_completion");
    assert_eq!(first["choices"][0]["text"], "Hel");
    assert_eq!(data[2], "[DONE]");
    // The provider was asked for usage although the client was not given it.
    let sent = up.last_request().unwrap();
    assert_eq!(sent.path(), "/v1/completions");
    let sent = sent.json();
    assert_eq!(sent["model"], "my-vllm-model");
    assert_eq!(sent["stream_options"]["include_usage"], true);

    up.enqueue(Reply::sse(text_sse()));
    let (_, data) = stream_body(
        &gw.url("/v1/completions"),
        &json!({"model": "g", "prompt": "Say hello", "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(data.len(), 4, "{data:?}");
    let usage: Value = serde_json::from_str(&data[2]).unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 6);
    assert_eq!(data[3], "[DONE]");
}

#[tokio::test]
async fn an_openai_chat_model_is_served_through_chat() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start(&config("openai/gpt-4o-mini", &up.url(), "/v1")).await;
    up.enqueue(Reply::json(200, chat_completion("Hello there")));
    let r = post_json(
        &gw.url("/v1/completions"),
        &json!({"model": "g", "prompt": ["first", "second"], "max_tokens": 9, "temperature": 0.1}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["id"], "chatcmpl-fake");
    assert_eq!(v["choices"][0]["text"], "Hello there");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["total_tokens"], 12);
    // gpt-4o-mini is priced: 5 prompt and 7 completion tokens.
    let cost: f64 = r.headers["x-litellm-response-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cost > 0.0, "{cost}");
    let sent = up.last_request().unwrap();
    assert_eq!(sent.path(), "/v1/chat/completions");
    let sent = sent.json();
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "first"}, {"role": "user", "content": "second"}])
    );
    assert_eq!(sent["max_tokens"], 9);
    assert!(sent.get("prompt").is_none());

    // Streamed: chunk by chunk, the usage chunk only when asked for, then [DONE].
    up.enqueue(Reply::split_at(
        200,
        "text/event-stream",
        chat_sse(&["Hel", "lo"]),
        &[10, 200],
    ));
    let (_, data) = stream_body(
        &gw.url("/v1/completions"),
        &json!({"model": "g", "prompt": "hi", "stream": true}),
    )
    .await;
    let texts: Vec<String> = data
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| {
            let v: Value = serde_json::from_str(d).unwrap();
            assert_eq!(v["object"], "text_completion");
            assert!(v.get("usage").is_none(), "{v}");
            v["choices"][0]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(texts.concat(), "Hello");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(
        up.last_request().unwrap().json()["stream_options"]["include_usage"],
        true
    );

    up.enqueue(Reply::sse(chat_sse(&["a"])));
    let (_, data) = stream_body(
        &gw.url("/v1/completions"),
        &json!({"model": "g", "prompt": "hi", "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 12);
    assert_eq!(usage["choices"], json!([]));
}

#[tokio::test]
async fn anthropic_and_the_mock_provider_answer_through_chat() {
    let up = FakeUpstream::start().await;
    up.enqueue(Reply::json(
        200,
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
               "content": [{"type": "text", "text": "Bonjour"}], "stop_reason": "end_turn",
               "usage": {"input_tokens": 5, "output_tokens": 2}}),
    ));
    let gw = TestGateway::start(&config(
        "anthropic/claude-3-5-haiku-20241022",
        &up.url(),
        "",
    ))
    .await;
    let r = post_json(
        &gw.url("/v1/completions"),
        &json!({"model": "g", "prompt": "Say hello in French", "max_tokens": 20}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["choices"][0]["text"], "Bonjour");
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens"], 2);
    let sent = up.last_request().unwrap();
    assert_eq!(sent.path(), "/v1/messages");
    assert!(
        sent.json()["messages"][0]["content"]
            .to_string()
            .contains("Say hello in French"),
        "{}",
        sent.body_str()
    );

    let mock = TestGateway::start(
        "model_list:\n  - model_name: m\n    litellm_params:\n      model: mock/any\n",
    )
    .await;
    let r = post_json(
        &mock.url("/v1/completions"),
        &json!({"model": "m", "prompt": "x", "mock_response": "canned"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["choices"][0]["text"], "canned");
    let (_, data) = stream_body(
        &mock.url("/v1/completions"),
        &json!({"model": "m", "prompt": "x", "stream": true, "mock_response": "streamed text"}),
    )
    .await;
    let text: String = data
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| {
            let v: Value = serde_json::from_str(d).unwrap();
            v["choices"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "streamed text");
}

#[tokio::test]
async fn bad_requests_get_the_openai_error_json() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start(&config("openai/gpt-4o-mini", &up.url(), "/v1")).await;
    for (body, needle) in [
        (json!({"model": "g"}), "prompt"),
        (json!({"model": "g", "prompt": {"a": 1}}), "prompt"),
        (json!({"model": "g", "prompt": [1, 2]}), "token prompt"),
        (json!({"model": "g", "prompt": "x", "echo": true}), "echo"),
        (
            json!({"model": "g", "prompt": "x", "best_of": 3}),
            "best_of",
        ),
    ] {
        let r = post_json(&gw.url("/v1/completions"), &body).await;
        assert_eq!(r.status, 400, "{body}");
        let e = r.error();
        assert!(
            e["message"].as_str().unwrap().contains(needle),
            "{body}: {e}"
        );
        assert!(r.headers.contains_key("x-litellm-call-id"));
    }
    let r = post(&gw.url("/v1/completions"), "{not json").await;
    assert_eq!(r.status, 400);
    r.error();
    assert_eq!(up.hits(), 0, "no bad request reached the provider");
    // A provider error keeps its status, in OpenAI's error shape.
    up.enqueue(Reply::json(
        429,
        json!({"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}),
    ));
    let r = post_json(
        &gw.url("/v1/completions"),
        &json!({"model": "g", "prompt": "x", "num_retries": 0}),
    )
    .await;
    assert_eq!(r.status, 429);
    assert!(r.error()["message"].as_str().unwrap().contains("slow down"));
}
