//! Model access is a hard boundary on every path a request can take, over real sockets: a governed
//! gateway (SQLite in memory) in front of fake upstreams, one per kind of group, so each test can
//! see which group was reached.
//!
//! - a request body's `fallbacks`, `context_window_fallbacks` and `content_policy_fallbacks`
//!   naming a group the key may not use: 401 (LiteLLM's wording) before any upstream call;
//! - configured `fallbacks`, `context_window_fallbacks`, `content_policy_fallbacks` and
//!   `default_fallbacks` naming such a group (directly, through an alias or a wildcard group):
//!   skipped;
//! - comma-separated models, access groups, wildcard patterns in `models`, team and user lists.
//!
//! Each test also sends the same request with the master key (or shows the key's upstream counts)
//! to prove the forbidden group is really reachable: the request that got through before is the
//! one refused now.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use governance_common::{chat, get, new_key, post, Answer, Gov, MASTER};
use llmgate::governance::BuildOptions;
use serde_json::{json, Value};
use support::{chat_completion, FakeUpstream, Reply};

/// Upstreams: `primary` (fails unless told otherwise), `ok` (allowed groups), `secret` (groups
/// the test keys may not use; it must never be reached by them).
struct Env {
    primary: FakeUpstream,
    ok: FakeUpstream,
    secret: FakeUpstream,
    gw: Gov,
}

fn err_500() -> Reply {
    Reply::json(
        500,
        json!({"error": {"message": "primary is down", "type": "server_error"}}),
    )
}

async fn env() -> Env {
    let primary = FakeUpstream::start().await;
    primary.set_default(err_500());
    let ok = FakeUpstream::start().await;
    ok.set_default(Reply::json(200, chat_completion("from ok")));
    let secret = FakeUpstream::start().await;
    secret.set_default(Reply::json(200, chat_completion("from secret")));
    let (p, o, s) = (primary.url(), ok.url(), secret.url());
    let dep = |name: &str, model: &str, base: &str, extra: &str| {
        format!("  - model_name: \"{name}\"\n    litellm_params:\n      model: \"{model}\"\n      api_base: {base}/v1\n      api_key: sk-upstream\n{extra}")
    };
    let yaml = [
        "model_list:\n".to_owned(),
        dep("primary", "openai/up-primary", &p, ""),
        dep("plain", "openai/up-plain", &p, ""),
        dep("allowed", "openai/up-allowed", &o, ""),
        dep(
            "beta-model",
            "openai/up-beta",
            &o,
            "    model_info:\n      access_groups: [beta]\n",
        ),
        dep("secret", "openai/up-secret", &s, ""),
        dep("vendor/*", "openai/*", &s, ""),
        format!(
            "router_settings:\n  num_retries: 0\n  model_group_alias:\n    smart: secret\n  fallbacks:\n    - primary: [secret, smart, \"vendor/x\", allowed]\n  context_window_fallbacks:\n    - primary: [secret]\n  content_policy_fallbacks:\n    - primary: [smart]\n  default_fallbacks: [secret]\ngeneral_settings:\n  master_key: {MASTER}\n"
        ),
    ]
    .concat();
    let gw = Gov::start(
        &yaml,
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    Env {
        primary,
        ok,
        secret,
        gw,
    }
}

async fn chat_with(base: &str, key: &str, body: Value) -> Answer {
    let mut b = json!({"messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in body.as_object().unwrap() {
        b[k] = v.clone();
    }
    post(&format!("{base}/v1/chat/completions"), Some(key), &b).await
}

fn upstream_models(up: &FakeUpstream) -> Vec<String> {
    up.requests()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn assert_denied(a: &Answer, whose: &str, tried: &str) {
    assert_eq!(a.status, 401, "{}", String::from_utf8_lossy(&a.body));
    let e = a.error();
    assert_eq!(e["type"], format!("{whose}_model_access_denied"));
    assert_eq!(e["param"], "model");
    assert_eq!(e["code"], "401");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "{whose} not allowed to access model. This {whose} can only access models="
        )) && msg.ends_with(&format!("Tried to access {tried}")),
        "{msg}"
    );
}

/// A body's fallbacks naming a group the key may not use: 401 before any upstream call, for
/// every list and every way of naming the group (plain, alias, wildcard group).
#[tokio::test]
async fn body_fallbacks_outside_the_key_are_refused_before_any_call() {
    let env = env().await;
    let base = env.gw.url("");
    let (key, _) = new_key(&base, json!({"models": ["primary", "allowed"]})).await;

    // The hole: with the master key, the body's fallback reaches the secret group.
    let a = chat_with(
        &base,
        MASTER,
        json!({"model": "primary", "fallbacks": ["secret"]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(upstream_models(&env.secret), ["up-secret"]);
    env.primary.reset();
    env.secret.reset();

    for (body, tried) in [
        (json!({"fallbacks": ["secret"]}), "secret"),
        (json!({"fallbacks": ["allowed", "smart"]}), "smart"),
        (json!({"fallbacks": ["vendor/x"]}), "vendor/x"),
        (json!({"fallbacks": [{"primary": ["secret"]}]}), "secret"),
        (
            json!({"context_window_fallbacks": [{"primary": ["secret"]}]}),
            "secret",
        ),
        (json!({"content_policy_fallbacks": ["smart"]}), "smart"),
        // Switched off, the list is still a request for the group.
        (
            json!({"fallbacks": ["secret"], "disable_fallbacks": true}),
            "secret",
        ),
    ] {
        let mut body = body;
        body["model"] = json!("primary");
        let a = chat_with(&base, &key, body.clone()).await;
        assert_denied(&a, "key", tried);
    }
    assert_eq!(env.primary.hits(), 0, "refused before any upstream call");
    assert_eq!(env.secret.hits(), 0);

    // A body fallback the key may use works.
    let a = chat_with(
        &base,
        &key,
        json!({"model": "primary", "fallbacks": ["allowed"]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("x-litellm-attempted-fallbacks"), Some("1"));
    assert_eq!(upstream_models(&env.ok), ["up-allowed"]);
    assert_eq!(env.secret.hits(), 0);
}

/// Configured `fallbacks`, `context_window_fallbacks`, `content_policy_fallbacks` and
/// `default_fallbacks` skip the groups the key may not use (plain, alias, wildcard group).
#[tokio::test]
async fn configured_fallbacks_outside_the_key_are_skipped() {
    let env = env().await;
    let base = env.gw.url("");
    let (key, _) = new_key(&base, json!({"models": ["primary", "plain", "allowed"]})).await;

    // The hole: with the master key, `primary`'s fallbacks go to the secret group first.
    let a = chat(&base, MASTER, "primary").await;
    assert_eq!(a.status, 200);
    assert_eq!(upstream_models(&env.secret), ["up-secret"]);
    env.secret.reset();

    // fallbacks: secret, smart (→ secret), vendor/x (wildcard) are skipped; allowed answers.
    let a = chat(&base, &key, "primary").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.json()["choices"][0]["message"]["content"],
        "from ok",
        "answered by the allowed group"
    );
    assert_eq!(a.header("x-litellm-attempted-fallbacks"), Some("1"));
    assert_eq!(upstream_models(&env.ok), ["up-allowed"]);

    // context_window_fallbacks: [secret] is skipped; the original error comes back.
    env.primary.enqueue(Reply::json(
        400,
        json!({"error": {"message": "This model's maximum context length is 8192 tokens", "type": "invalid_request_error", "code": "context_length_exceeded"}}),
    ));
    let a = chat(&base, &key, "primary").await;
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.error()["code"], "context_length_exceeded");
    assert_eq!(a.header("x-litellm-attempted-fallbacks"), Some("0"));

    // content_policy_fallbacks: [smart] (→ secret) is skipped.
    env.primary.enqueue(Reply::json(
        400,
        json!({"error": {"message": "flagged", "type": "invalid_request_error", "code": "content_policy_violation"}}),
    ));
    let a = chat(&base, &key, "primary").await;
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.error()["code"], "content_policy_violation");
    assert_eq!(a.header("x-litellm-attempted-fallbacks"), Some("0"));

    // default_fallbacks: [secret] is skipped for a group without fallbacks of its own.
    let a = chat(&base, &key, "plain").await;
    assert_eq!(a.status, 500, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.error()["message"], "primary is down");
    assert_eq!(a.header("x-litellm-attempted-fallbacks"), Some("0"));

    assert_eq!(env.secret.hits(), 0, "{:?}", upstream_models(&env.secret));
    // Same for the master key: default_fallbacks do reach the secret group.
    let a = chat(&base, MASTER, "plain").await;
    assert_eq!(a.status, 200);
    assert_eq!(upstream_models(&env.secret), ["up-secret"]);
}

/// Access groups (`model_info.access_groups`), wildcard patterns in a key's `models`, aliases
/// and comma-separated models.
#[tokio::test]
async fn access_groups_patterns_aliases_and_comma_lists() {
    let env = env().await;
    let base = env.gw.url("");

    // An access group and a wildcard pattern.
    let (key, _) = new_key(&base, json!({"models": ["beta", "vendor/*"]})).await;
    let a = chat(&base, &key, "beta-model").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = chat(&base, &key, "vendor/some-model").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(upstream_models(&env.secret), ["some-model"]);
    assert_denied(&chat(&base, &key, "primary").await, "key", "primary");
    assert_denied(&chat(&base, &key, "allowed").await, "key", "allowed");
    let listed: Vec<Value> = get(&env.gw.url("/v1/models"), Some(&key)).await.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(listed, [json!("beta-model"), json!("vendor/*")]);

    // An alias is allowed by its own name or its group's.
    let (by_group, _) = new_key(&base, json!({"models": ["secret"]})).await;
    assert_eq!(chat(&base, &by_group, "smart").await.status, 200);
    let (by_alias, _) = new_key(&base, json!({"models": ["smart"]})).await;
    assert_eq!(chat(&base, &by_alias, "smart").await.status, 200);
    assert_denied(&chat(&base, &by_alias, "secret").await, "key", "secret");

    // A comma-separated model: every name must be allowed (a pattern cannot span two names).
    let (wide, _) = new_key(&base, json!({"models": ["primary", "vendor/*"]})).await;
    assert_denied(
        &chat(&base, &wide, "primary,secret").await,
        "key",
        "primary,secret",
    );
    assert_denied(
        &chat(&base, &wide, "vendor/a,secret").await,
        "key",
        "vendor/a,secret",
    );
    assert_eq!(env.primary.hits(), 0);
}

/// The team's and the user's `models` bound every path too.
#[tokio::test]
async fn team_and_user_models_bound_fallbacks() {
    let env = env().await;
    let base = env.gw.url("");
    let a = post(
        &env.gw.url("/team/new"),
        Some(MASTER),
        &json!({"team_id": "t-1", "models": ["primary", "allowed"]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let (team_key, _) = new_key(&base, json!({"team_id": "t-1"})).await;
    assert_denied(
        &chat_with(
            &base,
            &team_key,
            json!({"model": "primary", "fallbacks": ["secret"]}),
        )
        .await,
        "team",
        "secret",
    );
    let a = chat(&base, &team_key, "primary").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(upstream_models(&env.ok), ["up-allowed"]);

    let a = post(
        &env.gw.url("/user/new"),
        Some(MASTER),
        &json!({"user_id": "u-1", "models": ["primary"]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let (user_key, _) = new_key(&base, json!({"user_id": "u-1"})).await;
    assert_denied(&chat(&base, &user_key, "allowed").await, "user", "allowed");
    // Every configured fallback of `primary` is outside the user's list: the original error.
    let a = chat(&base, &user_key, "primary").await;
    assert_eq!(a.status, 500, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("x-litellm-attempted-fallbacks"), Some("0"));
    assert_eq!(env.secret.hits(), 0);
    assert_eq!(env.ok.hits(), 1);
}
