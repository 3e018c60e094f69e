//! Azure OpenAI's v1 API (issue 21, item 3) over real sockets: a deployment whose `api_base` is
//! `…/openai/v1` (or whose `api_version` is `v1` / `preview`) calls `/openai/v1/chat/completions`
//! and `/openai/v1/embeddings` with the deployment as the body's model and no deployment path;
//! and llmgate serving `/openai/v1/…` as an OpenAI client with `base_url` `…/openai/v1` calls it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{
    chat_completion,
    gw::{post_json, TestGateway},
    FakeUpstream, Reply,
};

fn azure(group: &str, base: &str, version: Option<&str>) -> String {
    let version = version.map_or(String::new(), |v| format!("      api_version: {v}\n"));
    format!(
        "  - model_name: {group}\n    litellm_params:\n      model: azure/my-dep\n      api_base: {base}\n      api_key: az-test-key\n{version}"
    )
}

#[tokio::test]
async fn a_v1_base_calls_openai_v1_with_the_deployment_in_the_body() {
    let up = FakeUpstream::start().await;
    let yaml = format!(
        "model_list:\n{}{}",
        azure("v1", &format!("{}/openai/v1", up.url()), None),
        azure("preview", &up.url(), Some("preview")),
    );
    let gw = TestGateway::start(&yaml).await;

    up.enqueue(Reply::json(200, chat_completion("hello")));
    let r = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "v1", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["choices"][0]["message"]["content"], "hello");
    let rec = up.last_request().unwrap();
    assert_eq!(rec.path(), "/openai/v1/chat/completions");
    assert_eq!(rec.uri.query(), None);
    assert_eq!(rec.header("api-key"), Some("az-test-key"));
    assert_eq!(rec.json()["model"], "my-dep");

    up.enqueue(Reply::json(
        200,
        json!({"object": "list", "model": "my-dep", "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}], "usage": {"prompt_tokens": 1, "total_tokens": 1}}),
    ));
    let r = post_json(
        &gw.url("/v1/embeddings"),
        &json!({"model": "v1", "input": "x"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rec = up.last_request().unwrap();
    assert_eq!(rec.path(), "/openai/v1/embeddings");
    assert_eq!(rec.json()["model"], "my-dep");

    // api_version: preview on a resource base: the v1 path with api-version=preview.
    up.enqueue(Reply::json(200, chat_completion("p")));
    let r = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "preview", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rec = up.last_request().unwrap();
    assert_eq!(rec.path(), "/openai/v1/chat/completions");
    assert_eq!(rec.uri.query(), Some("api-version=preview"));
}

/// The OpenAI SDK with `base_url="http://gw/openai/v1"` calls `/openai/v1/chat/completions`,
/// `/openai/v1/embeddings` and `/openai/v1/models`: the plain routes, from the model list (no
/// `openai/` deployment here, so no OpenAI pass-through is served).
#[tokio::test]
async fn openai_v1_paths_are_the_plain_routes_without_an_openai_pass_through() {
    let up = FakeUpstream::start().await;
    let yaml = format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: hosted_vllm/gpt-4o\n      api_base: {}/v1\n      api_key: sk-up\n",
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    up.enqueue(Reply::json(200, chat_completion("served")));
    let r = post_json(
        &gw.url("/openai/v1/chat/completions?api-version=preview"),
        &json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["choices"][0]["message"]["content"], "served");
    assert!(r.headers.contains_key("x-litellm-call-id"));
    let rec = up.last_request().unwrap();
    assert_eq!(rec.path(), "/v1/chat/completions");
    assert_eq!(rec.json()["model"], "gpt-4o");

    // An unknown model gets the plain route's invalid-model error.
    let r = post_json(
        &gw.url("/openai/v1/chat/completions"),
        &json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error()["message"]
        .as_str()
        .unwrap()
        .starts_with("/chat/completions: Invalid model name"));

    let client = support::gw::client();
    let req = http::Request::get(gw.url("/openai/v1/models"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["data"][0]["id"], "g");

    // Not a model route: not served here (no pass-through configured).
    let r = post_json(&gw.url("/openai/v1/files"), &json!({})).await;
    assert_eq!(r.status, 404);
}
