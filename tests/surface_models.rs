//! `GET /v1/models/{id}` filtered by the caller's access, and LiteLLM's 400 for an unknown or
//! missing model on every model route (issue 21, item 2), over real sockets against a governed
//! gateway (SQLite in memory) with virtual keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use governance_common::{config, get, new_key, post, Gov, MASTER};
use llmgate::governance::BuildOptions;
use serde_json::json;
use support::FakeUpstream;

async fn gateway(upstream: &FakeUpstream) -> Gov {
    Gov::start(
        &config("g", &upstream.url(), ""),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await
}

#[tokio::test]
async fn retrieve_answers_the_models_a_key_may_use_and_404_for_the_others() {
    let up = FakeUpstream::start().await;
    let gw = gateway(&up).await;
    let base = gw.url("");
    let (key, _) = new_key(&base, json!({"models": ["g"]})).await;

    let a = get(&gw.url("/v1/models/g"), Some(&key)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(
        (v["id"].as_str(), v["object"].as_str()),
        (Some("g"), Some("model"))
    );
    assert!(
        v["created"].as_u64().is_some() && v["owned_by"].is_string(),
        "{v}"
    );
    assert!(a.header("x-litellm-call-id").is_some());
    // Also without /v1.
    assert_eq!(get(&gw.url("/models/g"), Some(&key)).await.status, 200);

    // A group the key may not use, and one that does not exist: OpenAI's 404 shape.
    for id in ["other", "nope"] {
        let a = get(&gw.url(&format!("/v1/models/{id}")), Some(&key)).await;
        assert_eq!(a.status, 404, "{id}");
        let e = a.error();
        assert_eq!(e["code"], "model_not_found");
        assert_eq!(
            e["message"],
            format!("The model `{id}` does not exist or is not accessible")
        );
        assert!(a.header("x-litellm-call-id").is_some());
    }
    // The master key may use every group.
    assert_eq!(
        get(&gw.url("/v1/models/other"), Some(MASTER)).await.status,
        200
    );
    // No key: 401 before anything else.
    assert_eq!(get(&gw.url("/v1/models/g"), None).await.status, 401);
    // Percent-encoded ids are decoded.
    assert_eq!(get(&gw.url("/v1/models/%67"), Some(&key)).await.status, 200);
    // Only GET (and HEAD).
    let a = post(&gw.url("/v1/models/g"), Some(&key), &json!({})).await;
    assert_eq!(a.status, 405);
}

#[tokio::test]
async fn an_unknown_or_missing_model_is_litellms_400_on_every_route() {
    let up = FakeUpstream::start().await;
    let gw = gateway(&up).await;
    let cases = [
        (
            "/v1/chat/completions",
            json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}),
            "/chat/completions: Invalid model name passed in model=gpt-9. Call `/v1/models` to view available models for your key.",
        ),
        (
            "/v1/completions",
            json!({"model": "gpt-9", "prompt": "x"}),
            "/completions: Invalid model name passed in model=gpt-9. Call `/v1/models` to view available models for your key.",
        ),
        (
            "/v1/embeddings",
            json!({"model": "gpt-9", "input": "x"}),
            "/embeddings: Invalid model name passed in model=gpt-9. Call `/v1/models` to view available models for your key.",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "/chat/completions: Invalid model name passed in model=. Call `/v1/models` to view available models for your key.",
        ),
        (
            "/v1/completions",
            json!({"model": "", "prompt": "x"}),
            "/completions: Invalid model name passed in model=. Call `/v1/models` to view available models for your key.",
        ),
    ];
    for (path, body, message) in cases {
        let a = post(&gw.url(path), Some(MASTER), &body).await;
        assert_eq!(a.status, 400, "{path} {body}");
        let e = a.error();
        assert_eq!(e["message"], message, "{path} {body}");
        assert_eq!(e["param"], "model");
        assert!(a.header("x-litellm-call-id").is_some(), "{path}");
    }
    assert_eq!(up.hits(), 0);
}
