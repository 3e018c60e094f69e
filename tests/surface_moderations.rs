//! `POST /v1/moderations` (issue 21, item 4) over real sockets: relayed to an OpenAI-format
//! host's `/moderations` with the deployment's model, the answer byte for byte; a body without a
//! model, and a provider without a moderation API, are 400s in OpenAI's error shape.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{
    gw::{post, post_json, TestGateway},
    FakeUpstream, Reply,
};

fn config(upstream: &str) -> String {
    format!(
        "model_list:\n  - model_name: mod\n    litellm_params:\n      model: openai/omni-moderation-latest\n      api_base: {upstream}/v1\n      api_key: sk-up\n  - model_name: claude\n    litellm_params:\n      model: anthropic/claude-3-5-haiku-20241022\n      api_base: {upstream}\n      api_key: sk-up\n"
    )
}

#[tokio::test]
async fn moderations_are_relayed_to_the_openai_format_host() {
    let up = FakeUpstream::start().await;
    let answer = br#"{"id":"modr-1","model":"omni-moderation-latest","results":[{"flagged":true,"categories":{"violence":true},"category_scores":{"violence":0.9}}]}"#;
    up.set_default(Reply::raw(200, "application/json", &answer[..]));
    let gw = TestGateway::start(&config(&up.url())).await;
    let sent = r#"{"model":"mod","input":["I will hurt you", "hello"],"metadata":{"tag":"x"}}"#;
    for path in ["/v1/moderations", "/moderations"] {
        let r = post(&gw.url(path), sent).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(&r.body[..], &answer[..]);
        assert!(r.headers.contains_key("x-litellm-call-id"));
        assert_eq!(r.headers.get("x-litellm-model-group").unwrap(), "mod");
        let got = up.last_request().unwrap();
        assert_eq!(got.path(), "/v1/moderations");
        assert_eq!(got.header("authorization"), Some("Bearer sk-up"));
        assert_eq!(
            got.body_str(),
            r#"{"model":"omni-moderation-latest","input":["I will hurt you", "hello"]}"#
        );
    }
}

#[tokio::test]
async fn moderations_without_a_model_or_on_a_provider_without_them_are_400s() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start(&config(&up.url())).await;
    let r = post_json(&gw.url("/v1/moderations"), &json!({"input": "x"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error()["message"],
        "/moderations: Invalid model name passed in model=. Call `/v1/models` to view available models for your key."
    );
    let r = post_json(
        &gw.url("/v1/moderations"),
        &json!({"input": "x", "model": "claude"}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.error()["message"]
        .as_str()
        .unwrap()
        .contains("does not support moderations"));
    let r = post_json(&gw.url("/v1/moderations"), &json!({"model": "mod"})).await;
    assert_eq!(r.status, 400);
    assert!(r.error()["message"].as_str().unwrap().contains("input"));
    assert_eq!(up.hits(), 0);
}
