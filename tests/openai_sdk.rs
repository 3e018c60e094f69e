//! The official OpenAI Python SDK against the gateway: chat, stream, an upstream 429 raising
//! `openai.RateLimitError`, and the model list.
//!
//! The README's test command (`bash .ci/test`) installs the SDK into a throw-away venv and sets
//! `LLMGATE_PYTHON`. Without it, a `python3` that can `import openai` is used; otherwise the test
//! fails and says how to run it: it never skips silently.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{
    gw,
    process::{python, run_sdk_script},
    FakeUpstream, Reply,
};

#[tokio::test]
async fn official_openai_python_sdk() {
    let python = python();
    let up = FakeUpstream::start().await;
    up.set_default(
        Reply::json(429, json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}))
            .header("retry-after", "1"),
    );
    let cfg = format!(
        "{}  - model_name: limited\n    litellm_params:\n      model: openai/limited\n      api_base: {}/v1\n      api_key: sk-up\n",
        llmgate::gateway::DEFAULT_CONFIG,
        up.url()
    );
    let gw = gw::TestGateway::start(&cfg).await;
    let base = gw.url("/v1");
    let (stdout, stderr) = run_sdk_script(
        &python,
        "openai_sdk_check.py",
        [
            "--base-url",
            &base,
            "--api-key",
            "sk-test",
            "--model",
            "mock",
            "--rate-limited-model",
            "limited",
        ],
        String::new,
    )
    .await;
    for check in ["ok: chat", "ok: stream", "ok: rate_limit", "ok: models"] {
        assert!(
            stdout.contains(check),
            "missing `{check}`:\n{stdout}\n{stderr}"
        );
    }
    assert!(up.hits() >= 1, "the 429 came from the upstream");
}
