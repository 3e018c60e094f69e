//! The official OpenAI Python SDK sees the error class it expects when every deployment, retry and
//! fallback of a model group failed behind the gateway.
//!
//! Uses `LLMGATE_PYTHON` (set by `bash .ci/test`), else a `python3` that can `import openai`;
//! otherwise the test fails and says how to run it: it never skips silently.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{
    gw,
    process::{python, run_sdk_script},
    FakeUpstream, Reply,
};

fn entry(group: &str, up: &FakeUpstream, extra: &str) -> String {
    format!(
        "  - model_name: {group}\n    litellm_params:\n      model: openai/m\n      api_base: {}/v1\n      api_key: sk-up\n{extra}",
        up.url()
    )
}

#[tokio::test]
async fn sdk_sees_the_final_error_class_when_everything_fails() {
    let python = python();
    let down1 = FakeUpstream::start().await;
    let down2 = FakeUpstream::start().await;
    let backup = FakeUpstream::start().await;
    for up in [&down1, &down2, &backup] {
        up.set_default(
            Reply::json(503, json!({"error": {"message": "overloaded", "type": "server_error", "param": null, "code": null}}))
                .header("retry-after-ms", "1"),
        );
    }
    let limited = FakeUpstream::start().await;
    let limited2 = FakeUpstream::start().await;
    for up in [&limited, &limited2] {
        up.set_default(
            Reply::json(429, json!({"error": {"message": "Rate limit reached", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}))
                .header("retry-after", "30"),
        );
    }
    let slow = FakeUpstream::start().await;
    slow.set_default(
        Reply::json(200, support::chat_completion("late")).delay(std::time::Duration::from_secs(5)),
    );
    let small = FakeUpstream::start().await;
    let cfg = format!(
        "model_list:\n{}{}{}{}{}{}{}router_settings:\n  num_retries: 1\n  enable_pre_call_checks: true\n  fallbacks: [{{\"down\": [\"backup\"]}}]\n",
        entry("down", &down1, ""),
        entry("down", &down2, ""),
        entry("backup", &backup, ""),
        entry("limited", &limited, ""),
        entry("limited", &limited2, ""),
        entry("slow", &slow, "      timeout: 0.2\n"),
        entry("small", &small, "    model_info:\n      max_input_tokens: 1\n"),
    );
    let gw = gw::TestGateway::start(&cfg).await;
    let (stdout, stderr) = run_sdk_script(
        &python,
        "routing_sdk_check.py",
        [
            "--base-url",
            &gw.url("/v1"),
            "--api-key",
            "sk-test",
            "--expect",
            "down=InternalServerError:503",
            "--expect",
            "limited=RateLimitError:429",
            "--expect",
            "slow=APIStatusError:408",
            "--expect",
            "small=BadRequestError:400",
        ],
        String::new,
    )
    .await;
    for model in ["down", "limited", "slow", "small"] {
        assert!(
            stdout.contains(&format!("ok: {model}")),
            "{stdout}\n{stderr}"
        );
    }
    // Every group really was tried: both `down` deployments, then the `backup` fallback.
    assert!(down1.hits() >= 1 && down2.hits() >= 1 && backup.hits() >= 1);
    assert_eq!(
        small.hits(),
        0,
        "the pre-call check kept the long prompt off `small`"
    );
}
