//! The official OpenAI Python SDK against the rest of the request surface (issue 21): text
//! completions (through the chat model, streamed with usage, and natively relayed),
//! `models.retrieve`, `moderations.create`, the `AzureOpenAI` client on the Azure-style routes, and
//! LiteLLM's 400 for an unknown model, over real sockets.
//!
//! `bash .ci/test` sets `LLMGATE_PYTHON` to a venv with the SDK; without it a `python3` that can
//! `import openai` is used, else the test fails saying how to run it (it never skips).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{
    gw,
    process::{python, run_sdk_script},
    FakeUpstream, Reply,
};

#[tokio::test]
async fn official_openai_python_sdk_on_the_request_surface() {
    let python = python();
    let moderation = FakeUpstream::start().await;
    moderation.set_default(Reply::json(
        200,
        json!({"id": "modr-1", "model": "omni-moderation-latest",
               "results": [{"flagged": true, "categories": {"violence": true}, "category_scores": {"violence": 0.9}}]}),
    ));
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(
        200,
        json!({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "gpt-3.5-turbo-instruct",
               "choices": [{"text": " native text", "index": 0, "logprobs": null, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}}),
    ));
    let cfg = format!(
        "{}  - model_name: instruct\n    litellm_params:\n      model: text-completion-openai/gpt-3.5-turbo-instruct\n      api_base: {}/v1\n      api_key: sk-up\n  - model_name: moderation\n    litellm_params:\n      model: openai/omni-moderation-latest\n      api_base: {}/v1\n      api_key: sk-up\n",
        llmgate::gateway::DEFAULT_CONFIG,
        up.url(),
        moderation.url()
    );
    let gw = gw::TestGateway::start(&cfg).await;
    let base = gw.url("/v1");
    let (stdout, stderr) = run_sdk_script(
        &python,
        "surface_sdk_check.py",
        [
            "--base-url",
            &base,
            "--api-key",
            "sk-test",
            "--model",
            "mock",
            "--native-model",
            "instruct",
            "--moderation-model",
            "moderation",
        ],
        String::new,
    )
    .await;
    for check in [
        "ok: completions",
        "ok: completions_stream",
        "ok: completions_native",
        "ok: models_retrieve",
        "ok: moderations",
        "ok: azure",
        "ok: invalid_model",
    ] {
        assert!(
            stdout.contains(check),
            "missing `{check}`:\n{stdout}\n{stderr}"
        );
    }
    let sent = up.last_request().unwrap();
    assert_eq!(sent.path(), "/v1/completions");
    assert_eq!(sent.json()["suffix"], "!");
}

/// LiteLLM's `litellm.<Class>: ` message prefix (with `general_settings.litellm_exception_prefix`)
/// as the OpenAI SDK sees it: the exception class and the message, on an upstream's 429 and 400,
/// `mock_testing_rate_limit_error`, `mock_timeout`, and none on the proxy's own invalid-model
/// error; and the OpenAI client the Azure v1 documentation describes (`base_url`
/// `…/openai/v1/`): chat, stream and embeddings, with a bearer key and with `api-key`.
#[tokio::test]
async fn openai_sdk_sees_litellms_exception_classes_and_the_openai_v1_base() {
    let python = python();
    // OpenAI-compatible hosts that are not `openai/`: with an `openai/` deployment the OpenAI
    // pass-through would be served, and `/openai/v1/…` relayed through it (as LiteLLM does).
    let limited = FakeUpstream::start().await;
    limited.set_default(Reply::json(
        429,
        json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
    ));
    let refusing = FakeUpstream::start().await;
    refusing.set_default(Reply::json(
        400,
        json!({"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error", "param": "temperature", "code": null}}),
    ));
    let cfg = format!(
        "{}  - model_name: limited\n    litellm_params:\n      model: hosted_vllm/limited\n      api_base: {}/v1\n      api_key: sk-up\n  - model_name: refusing\n    litellm_params:\n      model: hosted_vllm/refusing\n      api_base: {}/v1\n      api_key: sk-up\nrouter_settings:\n  num_retries: 0\ngeneral_settings:\n  litellm_exception_prefix: true\n  dangerously_allow_mock_testing_request_params: true\n",
        llmgate::gateway::DEFAULT_CONFIG,
        limited.url(),
        refusing.url()
    );
    let gw = gw::TestGateway::start(&cfg).await;
    let root = gw.url("");
    let (stdout, stderr) = run_sdk_script(
        &python,
        "controls_sdk_check.py",
        [
            "--root",
            &root,
            "--api-key",
            "sk-test",
            "--model",
            "mock",
            "--embedding-model",
            "mock-embedding",
            "--limited-model",
            "limited",
            "--refusing-model",
            "refusing",
        ],
        String::new,
    )
    .await;
    for check in [
        "ok: upstream_429",
        "ok: upstream_400",
        "ok: mock_rate_limit",
        "ok: mock_timeout",
        "ok: invalid_model",
        "ok: v1_chat",
        "ok: v1_stream",
        "ok: v1_embeddings",
        "ok: v1_api_key",
    ] {
        assert!(
            stdout.contains(check),
            "missing `{check}`:\n{stdout}\n{stderr}"
        );
    }
    assert!(limited.hits() >= 1 && refusing.hits() >= 1);
}
