//! Test-only request fields cannot hurt real traffic, over real sockets: a governed gateway in
//! front of a fake upstream.
//!
//! - `mock_testing_fallbacks`, `mock_testing_context_fallbacks`,
//!   `mock_testing_content_policy_fallbacks`, `mock_testing_rate_limit_error`, `mock_timeout` and
//!   `mock_delay` are refused (400, LiteLLM's wording) unless
//!   `general_settings.dangerously_allow_mock_testing_request_params` is true; before, they were
//!   dropped silently and the request went upstream, so a fallback drill "passed" without running;
//! - when allowed, the failure they ask for is the requested group's, without calling any of its
//!   deployments: no deployment counts it, and the fallbacks are called for real;
//! - `mock_response` answers are routed to a deployment but never count toward its failures,
//!   cooldowns, rpm or tokens: before, a `mock_response: "litellm.RateLimitError"` cooled real
//!   deployments down and mock answers used up their rpm.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use governance_common::{new_key, post, Answer, Gov, MASTER};
use llmgate::governance::BuildOptions;
use serde_json::{json, Value};
use support::{chat_completion, FakeUpstream, Reply};

async fn start(allow: bool) -> (FakeUpstream, Gov) {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("real answer")));
    let u = up.url();
    let dep = |name: &str, model: &str, id: &str, extra: &str| {
        format!("  - model_name: {name}\n    litellm_params:\n      model: openai/{model}\n      api_base: {u}/v1\n      api_key: sk-upstream\n{extra}    model_info:\n      id: {id}\n")
    };
    let yaml = [
        "model_list:\n".to_owned(),
        dep("primary", "up-primary", "primary-1", ""),
        dep("primary", "up-primary", "primary-2", ""),
        dep("backup", "up-backup", "backup-1", ""),
        dep("big", "up-big", "big-1", ""),
        dep("safe", "up-safe", "safe-1", ""),
        dep("pair", "up-pair", "pair-1", ""),
        dep("pair", "up-pair", "pair-2", ""),
        dep("limited", "up-limited", "limited-1", "      rpm: 2\n"),
        format!(
            "router_settings:\n  num_retries: 0\n  allowed_fails: 0\n  cooldown_time: 60\n  routing_strategy: usage-based-routing-v2\n  fallbacks:\n    - primary: [backup]\n  context_window_fallbacks:\n    - primary: [big]\n  content_policy_fallbacks:\n    - primary: [safe]\ngeneral_settings:\n  master_key: {MASTER}\n  dangerously_allow_mock_testing_request_params: {allow}\n"
        ),
    ]
    .concat();
    let gw = Gov::start(
        &yaml,
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    (up, gw)
}

async fn chat_with(gw: &Gov, key: &str, body: Value) -> Answer {
    let mut b = json!({"messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in body.as_object().unwrap() {
        b[k] = v.clone();
    }
    post(&gw.url("/v1/chat/completions"), Some(key), &b).await
}

fn upstream_models(up: &FakeUpstream) -> Vec<String> {
    up.requests()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Cooling state and failures this minute of deployment `id`.
fn health(gw: &Gov, id: &str) -> (bool, u32) {
    let cell = gw.gateway.as_ref().unwrap().router().health(id).unwrap();
    (cell.is_cooling(), cell.fails_this_minute())
}

const PARAMS: [(&str, Value); 6] = [
    ("mock_testing_fallbacks", Value::Bool(true)),
    ("mock_testing_context_fallbacks", Value::Bool(true)),
    ("mock_testing_content_policy_fallbacks", Value::Bool(true)),
    ("mock_testing_rate_limit_error", Value::Bool(true)),
    ("mock_timeout", Value::Bool(true)),
    ("mock_delay", Value::Bool(true)),
];

/// Off (the default): every test-only param is refused, for every caller, before any upstream
/// call. Before, the param was dropped and the request answered by the upstream (200).
#[tokio::test]
async fn mock_testing_params_are_refused_unless_allowed() {
    let (up, gw) = start(false).await;
    let (key, _) = new_key(&gw.url(""), json!({})).await;
    for (param, value) in PARAMS {
        for caller in [key.as_str(), MASTER] {
            let a = chat_with(&gw, caller, json!({"model": "primary", param: value})).await;
            assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
            let e = a.error();
            assert_eq!(e["type"], "invalid_request_error");
            assert_eq!(e["param"], param);
            assert_eq!(
                e["message"],
                format!("Mock testing request params are disabled on this proxy: {param}. An admin can enable them by setting `general_settings.dangerously_allow_mock_testing_request_params: true` in config.yaml. This setting cannot be changed from the Admin UI or the API.")
            );
        }
    }
    assert_eq!(up.hits(), 0);
    // A request without them is served as usual.
    let a = chat_with(&gw, &key, json!({"model": "primary"})).await;
    assert_eq!(a.status, 200);
}

/// On: the requested group fails as asked without being called; the right fallbacks are called
/// for real; no deployment counts the failure or spends its rpm on it.
#[tokio::test]
async fn allowed_mock_testing_fails_the_group_without_touching_its_deployments() {
    let (up, gw) = start(true).await;
    let (key, _) = new_key(&gw.url(""), json!({})).await;
    for (param, to) in [
        ("mock_testing_fallbacks", "up-backup"),
        ("mock_testing_context_fallbacks", "up-big"),
        ("mock_testing_content_policy_fallbacks", "up-safe"),
        ("mock_testing_rate_limit_error", "up-backup"),
        ("mock_timeout", "up-backup"),
    ] {
        up.reset();
        let a = chat_with(&gw, &key, json!({"model": "primary", param: true})).await;
        assert_eq!(
            a.status,
            200,
            "{param}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(a.header("x-litellm-attempted-fallbacks"), Some("1"));
        assert_eq!(upstream_models(&up), [to], "{param}");
        // The fallback is sent without the test-only param.
        assert!(up.requests()[0].json().get(param).is_none());
    }
    for id in ["primary-1", "primary-2"] {
        assert_eq!(health(&gw, id), (false, 0), "{id}");
    }

    // Without fallbacks the asked-for error is the answer, and `limited` keeps its rpm.
    up.reset();
    for (param, status) in [
        ("mock_testing_rate_limit_error", 429),
        ("mock_timeout", 408),
        ("mock_testing_fallbacks", 500),
    ] {
        let a = chat_with(&gw, &key, json!({"model": "limited", param: "true"})).await;
        assert_eq!(
            a.status,
            status,
            "{param}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(a.header("x-litellm-attempted-fallbacks"), Some("0"));
    }
    assert_eq!(up.hits(), 0);
    assert_eq!(health(&gw, "limited-1"), (false, 0));
    for _ in 0..2 {
        assert_eq!(
            chat_with(&gw, &key, json!({"model": "limited"}))
                .await
                .status,
            200
        );
    }
}

/// `mock_response` answers never count toward a deployment's failures, cooldowns or rpm.
#[tokio::test]
async fn mock_responses_do_not_count_against_deployments() {
    let (up, gw) = start(false).await;
    let (key, _) = new_key(&gw.url(""), json!({})).await;

    // A mocked 429 on each deployment of `pair` (allowed_fails 0: a real 429 cools at once).
    for _ in 0..4 {
        let a = chat_with(
            &gw,
            &key,
            json!({"model": "pair", "mock_response": "litellm.RateLimitError"}),
        )
        .await;
        assert_eq!(a.status, 429, "{}", String::from_utf8_lossy(&a.body));
    }
    for id in ["pair-1", "pair-2"] {
        assert_eq!(health(&gw, id), (false, 0), "{id}");
    }
    let a = chat_with(&gw, &key, json!({"model": "pair"})).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));

    // Mock answers do not use `limited`'s rpm (2 a minute): both real calls still fit.
    for _ in 0..3 {
        let a = chat_with(
            &gw,
            &key,
            json!({"model": "limited", "mock_response": "mocked"}),
        )
        .await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.json()["choices"][0]["message"]["content"], "mocked");
    }
    for _ in 0..2 {
        let a = chat_with(&gw, &key, json!({"model": "limited"})).await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    }
    let a = chat_with(&gw, &key, json!({"model": "limited"})).await;
    assert_eq!(a.status, 429, "the third real call is over the rpm");
    assert_eq!(
        upstream_models(&up),
        ["up-pair", "up-limited", "up-limited"]
    );

    // A real upstream 429 still cools a deployment down.
    up.enqueue(Reply::json(
        429,
        json!({"error": {"message": "slow down", "type": "rate_limit_error"}}),
    ));
    let a = chat_with(&gw, &key, json!({"model": "pair"})).await;
    assert_eq!(a.status, 429);
    let cooling = ["pair-1", "pair-2"]
        .iter()
        .filter(|id| health(&gw, id).0)
        .count();
    assert_eq!(cooling, 1);
}
