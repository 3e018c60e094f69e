//! Azure-style routes (issue 21, item 4) over real sockets: `/openai/deployments/{model}/…`
//! (and `/engines/{model}/…`) for chat, text completions and embeddings, the `{model}` in the
//! path naming the group, a virtual key in the `api-key` header, as the `AzureOpenAI` SDK calls
//! them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use governance_common::{call_with, config, new_key, Gov};
use llmgate::governance::BuildOptions;
use serde_json::json;
use support::{chat_completion, FakeUpstream, Reply};

#[tokio::test]
async fn azure_style_routes_take_the_model_from_the_path_and_the_key_from_api_key() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("from g")));
    let gw = Gov::start(
        &config("g", &up.url(), ""),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let (key, _) = new_key(&gw.url(""), json!({"models": ["g"]})).await;
    let api_key = [("api-key", key.as_str())];

    let chat =
        json!({"model": "ignored-by-azure", "messages": [{"role": "user", "content": "hi"}]});
    for path in [
        "/openai/deployments/g/chat/completions?api-version=2024-10-21",
        "/engines/g/chat/completions",
    ] {
        let a = call_with("POST", &gw.url(path), None, Some(&chat), &api_key).await;
        assert_eq!(
            a.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(a.json()["choices"][0]["message"]["content"], "from g");
        assert_eq!(a.header("x-litellm-model-group"), Some("g"));
        let sent = up.last_request().unwrap();
        assert_eq!(sent.path(), "/v1/chat/completions");
        assert_eq!(sent.json()["model"], "gpt-4o-mini");
    }
    // A text completion through the chat model.
    let a = call_with(
        "POST",
        &gw.url("/openai/deployments/g/completions?api-version=2024-10-21"),
        None,
        Some(&json!({"prompt": "hi", "model": "g"})),
        &api_key,
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["choices"][0]["text"], "from g");
    // Embeddings.
    up.enqueue(Reply::json(
        200,
        json!({"object": "list", "model": "gpt-4o-mini", "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
               "usage": {"prompt_tokens": 1, "total_tokens": 1}}),
    ));
    let a = call_with(
        "POST",
        &gw.url("/openai/deployments/g/embeddings"),
        None,
        Some(&json!({"input": "x", "model": "g"})),
        &api_key,
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(up.last_request().unwrap().path(), "/v1/embeddings");

    // The key's model list holds for the path's model: `other` is refused, the upstream untouched.
    let hits = up.hits();
    let a = call_with(
        "POST",
        &gw.url("/openai/deployments/other/chat/completions"),
        None,
        Some(&json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]})),
        &api_key,
    )
    .await;
    assert!(a.status == 401 || a.status == 403, "{}", a.status);
    a.error();
    // No key: 401.
    let a = call_with(
        "POST",
        &gw.url("/openai/deployments/g/chat/completions"),
        None,
        Some(&chat),
        &[],
    )
    .await;
    assert_eq!(a.status, 401);
    assert_eq!(up.hits(), hits);
}
