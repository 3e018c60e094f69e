//! LiteLLM's request controls and their response headers (issue 21, item 2) over real sockets:
//! `x-litellm-max-retries` (with `x-litellm-attempted-retries`) on answers and errors,
//! `x-litellm-timeout` echoed on a timeout error, per-request `num_retries` and `fallbacks`, and
//! `mock_testing_rate_limit_error` / `mock_testing_fallbacks` / `mock_timeout`, on chat and on
//! text completions alike.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http_body_util::Full;
use serde_json::{json, Value};
use support::{
    chat_completion,
    gw::{post_json, send, TestGateway},
    FakeUpstream, Reply,
};

/// Groups `g` (the fake upstream, `num_retries` 3 configured) and `backup` (the mock provider).
fn config(upstream: &str) -> String {
    format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n      api_key: sk-up\n  - model_name: backup\n    litellm_params:\n      model: mock/backup\n      mock_response: from backup\nrouter_settings:\n  num_retries: 3\n  retry_after: 0\ngeneral_settings:\n  dangerously_allow_mock_testing_request_params: true\n"
    )
}

fn server_error() -> Reply {
    Reply::json(
        500,
        json!({"error": {"message": "upstream down", "type": "server_error"}}),
    )
}

fn chat(extra: &Value) -> Value {
    let mut b = json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

fn completion(extra: &Value) -> Value {
    let mut b = json!({"model": "g", "prompt": "hi"});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

fn header<'a>(h: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn max_retries_is_on_answers_and_errors() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("ok")));
    let gw = TestGateway::start(&config(&up.url())).await;
    for (path, body) in [
        ("/v1/chat/completions", chat(&json!({}))),
        ("/v1/completions", completion(&json!({}))),
    ] {
        let a = post_json(&gw.url(path), &body).await;
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(
            header(&a.headers, "x-litellm-max-retries"),
            Some("3"),
            "{path}"
        );
        assert_eq!(header(&a.headers, "x-litellm-attempted-retries"), Some("0"));
    }
    // The request's num_retries lowers it (never raises it above the configured 3).
    let a = post_json(
        &gw.url("/v1/chat/completions"),
        &chat(&json!({"num_retries": 1})),
    )
    .await;
    assert_eq!(header(&a.headers, "x-litellm-max-retries"), Some("1"));
    let a = post_json(
        &gw.url("/v1/chat/completions"),
        &chat(&json!({"num_retries": 30})),
    )
    .await;
    assert_eq!(header(&a.headers, "x-litellm-max-retries"), Some("3"));

    // An error after the retries: both headers, and exactly 1 + num_retries upstream calls.
    for (path, body) in [
        ("/v1/chat/completions", chat(&json!({"num_retries": 2}))),
        ("/v1/completions", completion(&json!({"num_retries": 2}))),
    ] {
        up.reset();
        up.set_default(server_error());
        let a = post_json(&gw.url(path), &body).await;
        assert_eq!(a.status, 500, "{path}");
        assert_eq!(
            header(&a.headers, "x-litellm-max-retries"),
            Some("2"),
            "{path}"
        );
        assert_eq!(
            header(&a.headers, "x-litellm-attempted-retries"),
            Some("2"),
            "{path}"
        );
        assert_eq!(up.hits(), 3, "{path}");
        a.error();
    }
}

#[tokio::test]
async fn per_request_fallbacks_and_mock_testing_params() {
    let up = FakeUpstream::start().await;
    up.set_default(server_error());
    let gw = TestGateway::start(&config(&up.url())).await;
    // The body's fallbacks: g fails (no retries asked), backup answers.
    for (path, body) in [
        (
            "/v1/chat/completions",
            chat(&json!({"num_retries": 0, "fallbacks": ["backup"]})),
        ),
        (
            "/v1/completions",
            completion(&json!({"num_retries": 0, "fallbacks": ["backup"]})),
        ),
    ] {
        let a = post_json(&gw.url(path), &body).await;
        assert_eq!(
            a.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(
            header(&a.headers, "x-litellm-attempted-fallbacks"),
            Some("1")
        );
        assert_eq!(header(&a.headers, "x-litellm-model-group"), Some("backup"));
    }
    let hits = up.hits();
    // mock_testing_fallbacks fails g without calling it; the fallback answers.
    let a = post_json(
        &gw.url("/v1/completions"),
        &completion(&json!({"mock_testing_fallbacks": true, "fallbacks": ["backup"]})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["choices"][0]["text"], "from backup");
    // mock_testing_rate_limit_error without fallbacks: LiteLLM's 429.
    let a = post_json(
        &gw.url("/v1/chat/completions"),
        &chat(&json!({"mock_testing_rate_limit_error": true})),
    )
    .await;
    assert_eq!(a.status, 429);
    a.error();
    // mock_timeout: a 408 timeout error.
    let a = post_json(
        &gw.url("/v1/completions"),
        &completion(&json!({"mock_timeout": true})),
    )
    .await;
    assert_eq!(a.status, 408, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        up.hits(),
        hits,
        "the mock_testing params called no deployment"
    );
}

#[tokio::test]
async fn a_timeout_error_echoes_the_requested_timeout() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("late")).delay(Duration::from_secs(3)));
    let gw = TestGateway::start(&config(&up.url())).await;
    // The body's timeout.
    let a = post_json(
        &gw.url("/v1/chat/completions"),
        &chat(&json!({"timeout": 0.2, "num_retries": 0})),
    )
    .await;
    assert_eq!(a.status, 408, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(header(&a.headers, "x-litellm-timeout"), Some("0.2"));
    a.error();
    // The x-litellm-timeout header, on a text completion.
    let a = send(
        http::Request::post(gw.url("/v1/completions"))
            .header("content-type", "application/json")
            .header("x-litellm-timeout", "0.3")
            .body(Full::new(bytes::Bytes::from(
                serde_json::to_vec(&completion(&json!({"num_retries": 0}))).unwrap(),
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 408);
    assert_eq!(header(&a.headers, "x-litellm-timeout"), Some("0.3"));
    // No timeout header on other errors.
    up.set_default(server_error());
    let a = post_json(
        &gw.url("/v1/chat/completions"),
        &chat(&json!({"timeout": 5, "num_retries": 0})),
    )
    .await;
    assert_eq!(a.status, 500);
    assert!(a.headers.get("x-litellm-timeout").is_none());
}

/// `general_settings.moderation_model`: every `/v1/moderations` call goes to that group, as
/// LiteLLM's proxy sets `data["model"]` from it (a body without a model is served; a body's
/// model is replaced), with the group's deployment model sent upstream.
#[tokio::test]
async fn moderation_model_serves_every_moderation() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(
        200,
        json!({"id": "modr-1", "model": "omni-moderation-latest",
               "results": [{"flagged": false, "categories": {}, "category_scores": {}}]}),
    ));
    let yaml = format!(
        "model_list:\n  - model_name: mod\n    litellm_params:\n      model: openai/omni-moderation-latest\n      api_base: {}/v1\n      api_key: sk-up\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {}/v1\n      api_key: sk-up\ngeneral_settings:\n  moderation_model: mod\n",
        up.url(),
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    for body in [
        json!({"input": "hello"}),
        json!({"model": null, "input": "hello"}),
        json!({"model": "g", "input": "hello"}),
        json!({"model": "unknown", "input": "hello"}),
    ] {
        up.reset();
        up.set_default(Reply::json(
            200,
            json!({"id": "modr-1", "model": "omni-moderation-latest",
                   "results": [{"flagged": false, "categories": {}, "category_scores": {}}]}),
        ));
        let a = post_json(&gw.url("/v1/moderations"), &body).await;
        assert_eq!(
            a.status,
            200,
            "{body}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(a.json()["results"][0]["flagged"], false);
        assert_eq!(header(&a.headers, "x-litellm-model-group"), Some("mod"));
        let sent = up.last_request().unwrap();
        assert_eq!(sent.path(), "/v1/moderations");
        assert_eq!(sent.json()["model"], "omni-moderation-latest", "{body}");
    }
}

/// Without `moderation_model`, a moderation that names no model is LiteLLM's invalid-model 400
/// (LiteLLM would send it to OpenAI with its own key, outside the router: see
/// docs/endpoints.md).
#[tokio::test]
async fn a_moderation_without_a_model_and_no_default_is_a_400() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start(&config(&up.url())).await;
    let a = post_json(&gw.url("/v1/moderations"), &json!({"input": "hello"})).await;
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.error()["message"],
        "/moderations: Invalid model name passed in model=. Call `/v1/models` to view available models for your key."
    );
    assert_eq!(up.hits(), 0);
}
