//! Budgets hold (issue 17, item 4), over real sockets against a fake upstream: the proxy-wide
//! `litellm_settings.max_budget` is enforced and resets with `budget_duration` (also across a
//! restart, across gateway instances and in the real binary); wildcard deployments are priced by
//! the model they call; unpriced models cost 0 unless `block_unpriced_models_for_budgeted_keys`
//! refuses them to callers with a budget; the built-in table (LiteLLM's map) prices models and
//! feeds the pre-call context-window check; `LLMGATE_MODEL_PRICES` still overrides it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::suboptimal_flops)]

mod governance_common;
mod support;

use std::{path::Path, time::Duration};

use governance_common::{chat, fresh_pg, get, new_key, post, Gov, Proc, TempDir, MASTER};
use llmgate::{clock::Clock, governance::BuildOptions};
use serde_json::json;
use support::{chat_completion, FakeUpstream, Reply};

/// 1e-3 per input and 2e-3 per output token: a call of 5 + 7 tokens costs 0.019.
const PRICED: &str = "      input_cost_per_token: 0.001\n      output_cost_per_token: 0.002\n";

fn proxy_budget_config(upstream: &str, budget: &str) -> String {
    format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\n{PRICED}litellm_settings:\n  max_budget: 0.03\n{budget}general_settings:\n  master_key: {MASTER}\n"
    )
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn cost(a: &governance_common::Answer) -> f64 {
    a.header("x-litellm-response-cost")
        .unwrap_or_else(|| panic!("no cost header: {}", String::from_utf8_lossy(&a.body)))
        .parse()
        .unwrap()
}

/// The proxy budget's period end, from the running gateway.
fn reset_at(gw: &Gov) -> i64 {
    gw.gateway
        .as_ref()
        .unwrap()
        .governance()
        .unwrap()
        .proxy_budget
        .as_ref()
        .unwrap()
        .reset_at()
        .unwrap()
}

/// Before: `litellm_settings.max_budget` was only reported by `/global/spend`; calls went on
/// after it was spent.
async fn proxy_budget_holds(opts: impl Fn() -> BuildOptions) {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    // The gateway reads a manual clock: the period ends when the test says so, not while a busy
    // machine is still running the first part.
    let clock = Clock::manual();
    let yaml = proxy_budget_config(&up.url(), "  budget_duration: 8s\n");
    let gw = Gov::start(&yaml, opts().clock(clock.clone())).await;
    let base = gw.url("");
    // A key without a budget of its own: only the proxy's applies.
    let (key, _) = new_key(&base, json!({})).await;

    // 0.019, then 0.038 > 0.03: the third call is refused before reaching the upstream, with
    // LiteLLM's BudgetExceededError (default message) as its proxy renders it.
    assert_eq!(chat(&base, &key, "g").await.status, 200);
    assert_eq!(chat(&base, MASTER, "g").await.status, 200);
    let a = chat(&base, &key, "g").await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    let e = a.error();
    assert_eq!(e["type"], "budget_exceeded");
    assert_eq!(e["code"], "422");
    assert_eq!(
        e["message"],
        "Budget has been exceeded! Current cost: 0.038, Max budget: 0.03"
    );
    // Every caller: the master key too, and another key.
    assert_eq!(chat(&base, MASTER, "g").await.status, 422);
    let (other, _) = new_key(&base, json!({})).await;
    assert_eq!(chat(&base, &other, "g").await.status, 422);
    assert_eq!(up.hits(), 2);
    // Listing models is not a spending call.
    assert_eq!(get(&gw.url("/v1/models"), Some(&key)).await.status, 200);

    // Once written, the spend is in LiteLLM's proxy budget row.
    gw.flush().await;
    let row = get(
        &gw.url("/user/info?user_id=litellm-proxy-budget"),
        Some(MASTER),
    )
    .await
    .json();
    let info = &row["user_info"];
    assert!(
        (info["spend"].as_f64().unwrap() - 0.038).abs() < 1e-9,
        "{row}"
    );
    assert_eq!(info["max_budget"], 0.03);
    assert_eq!(info["budget_duration"], "8s");
    assert_eq!(chat(&base, &key, "g").await.status, 422);

    // Up to the period's last millisecond the budget holds.
    let end = reset_at(&gw);
    let left = u64::try_from(end - clock.unix_ms()).unwrap();
    assert!((1..=8_000).contains(&left), "{left}");
    clock.advance(Duration::from_millis(left - 1));
    assert_eq!(chat(&base, &key, "g").await.status, 422);
    // The period ends: spend starts again from 0 (time passing is the behaviour under test).
    clock.advance(Duration::from_millis(1));
    assert_eq!(clock.unix_ms(), end);
    let a = chat(&base, &key, "g").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(up.hits(), 3);
    gw.flush().await;
    let row = get(
        &gw.url("/user/info?user_id=litellm-proxy-budget"),
        Some(MASTER),
    )
    .await
    .json();
    assert!(
        (row["user_info"]["spend"].as_f64().unwrap() - 0.019).abs() < 1e-9,
        "{row}"
    );
}

#[tokio::test]
async fn proxy_budget_refuses_once_spent_and_resets_sqlite() {
    proxy_budget_holds(|| BuildOptions::default().database_url("sqlite::memory:")).await;
}

#[tokio::test]
async fn proxy_budget_refuses_once_spent_and_resets_postgres() {
    let url = fresh_pg().await;
    proxy_budget_holds(move || BuildOptions::default().database_url(url.clone())).await;
}

/// Before: a restart or a second instance started from 0.
#[tokio::test]
async fn proxy_budget_survives_a_restart_and_is_shared_by_instances() {
    let dir = TempDir::new();
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let yaml = proxy_budget_config(&up.url(), "  budget_duration: 1h\n");
    let opts = || {
        BuildOptions::default()
            .config_dir(&dir.0)
            .key_cache_ttl(Duration::from_millis(200))
    };
    let a = Gov::start(&yaml, opts()).await;
    let b = Gov::start(&yaml, opts()).await;
    // Two calls through A spend 0.038.
    assert_eq!(chat(&a.url(""), MASTER, "g").await.status, 200);
    assert_eq!(chat(&a.url(""), MASTER, "g").await.status, 200);
    a.flush().await;
    // B sees A's spend once it re-reads the budget row (every key-cache ttl).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = chat(&b.url(""), MASTER, "g").await.status;
        if s == 422 {
            break;
        }
        assert_eq!(s, 200);
        assert!(
            std::time::Instant::now() < deadline,
            "B never saw A's spend"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.flush().await;
    drop(a);
    drop(b);
    // A restart over the same database keeps the period and its spend.
    let c = Gov::start(&yaml, opts()).await;
    let a = chat(&c.url(""), MASTER, "g").await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
}

/// The real binary, configured only by its config file.
#[tokio::test]
async fn binary_enforces_the_proxy_budget() {
    let dir = TempDir::new();
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let cfg = write(
        &dir.0,
        "config.yaml",
        &proxy_budget_config(&up.url(), "  budget_duration: 30d\n"),
    );
    let p = Proc::start(&cfg, &[]);
    let base = p.base();
    assert_eq!(chat(&base, MASTER, "g").await.status, 200);
    assert_eq!(chat(&base, MASTER, "g").await.status, 200);
    let a = chat(&base, MASTER, "g").await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.error()["type"], "budget_exceeded");
    assert_eq!(up.hits(), 2);
    let log = p.stop();
    assert!(!log.contains("sk-upstream-key"), "{log}");
}

/// Before: a wildcard deployment (`openai/*`) had no price of its own, so its calls cost 0 and
/// budgets never saw them.
#[tokio::test]
async fn wildcard_calls_are_priced_by_the_model_called() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let yaml = format!(
        "model_list:\n  - model_name: \"openai/*\"\n    litellm_params:\n      model: \"openai/*\"\n      api_base: {}/v1\n      api_key: sk-upstream-key\ngeneral_settings:\n  master_key: {MASTER}\n",
        up.url()
    );
    let gw = Gov::start(
        &yaml,
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let gateway = gw.gateway.as_ref().unwrap();
    assert!(gateway.unpriced().is_empty(), "{:?}", gateway.unpriced());
    let base = gw.url("");
    // LiteLLM's prices: gpt-4o 2.5e-6 / 1e-5, gpt-4o-mini 1.5e-7 / 6e-7 per token.
    let a = chat(&base, MASTER, "openai/gpt-4o").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert!(
        (cost(&a) - (5.0 * 2.5e-6 + 7.0 * 1e-5)).abs() < 1e-15,
        "{}",
        cost(&a)
    );
    assert_eq!(up.last_request().unwrap().json()["model"], "gpt-4o");
    let a = chat(&base, MASTER, "openai/gpt-4o-mini").await;
    assert!(
        (cost(&a) - (5.0 * 1.5e-7 + 7.0 * 6e-7)).abs() < 1e-15,
        "{}",
        cost(&a)
    );

    // So a key's budget holds on a wildcard group: 0.0000825 per gpt-4o call.
    let (key, token) = new_key(&base, json!({"max_budget": 0.0001})).await;
    assert_eq!(chat(&base, &key, "openai/gpt-4o").await.status, 200);
    assert_eq!(chat(&base, &key, "openai/gpt-4o").await.status, 200);
    let a = chat(&base, &key, "openai/gpt-4o").await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    gw.flush().await;
    let info = get(&gw.url(&format!("/key/info?key={token}")), Some(MASTER))
        .await
        .json();
    assert!(
        (info["info"]["spend"].as_f64().unwrap() - 2.0 * 8.25e-5).abs() < 1e-12,
        "{info}"
    );

    // A stream is priced the same way, from its usage chunk.
    let (streamer, token) = new_key(&base, json!({})).await;
    up.enqueue(Reply::sse(support::chat_sse(&["he", "llo"])));
    let a = post(
        &gw.url("/v1/chat/completions"),
        Some(&streamer),
        &json!({"model": "openai/gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(a.status, 200);
    gw.flush().await;
    let info = get(&gw.url(&format!("/key/info?key={token}")), Some(MASTER))
        .await
        .json();
    assert!(
        (info["info"]["spend"].as_f64().unwrap() - 8.25e-5).abs() < 1e-12,
        "{info}"
    );
}

fn unpriced_config(upstream: &str, general: &str) -> String {
    format!(
        "model_list:\n  - model_name: house\n    litellm_params:\n      model: openai/house-model\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\n  - model_name: \"hosted/*\"\n    litellm_params:\n      model: \"openai/*\"\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\ngeneral_settings:\n  master_key: {MASTER}\n{general}"
    )
}

/// Before: an unpriced model was free for everyone, so a key with a budget could spend without
/// limit through it. Now it is still logged at cost 0 by default (as LiteLLM), listed in
/// `Gateway::unpriced`, and refused to budgeted callers when the setting asks.
#[tokio::test]
async fn unpriced_models_cost_zero_unless_refused_to_budgeted_keys() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let sqlite = || BuildOptions::default().database_url("sqlite::memory:");

    // Default: logged at cost 0 for every caller.
    let gw = Gov::start(&unpriced_config(&up.url(), ""), sqlite()).await;
    let gateway = gw.gateway.as_ref().unwrap();
    assert_eq!(gateway.unpriced(), ["openai/house-model"]);
    assert!(gateway
        .warnings()
        .iter()
        .any(|w| w.contains("`openai/house-model`") && w.contains("cost 0")));
    let (budgeted, _) = new_key(&gw.url(""), json!({"max_budget": 1.0})).await;
    let a = chat(&gw.url(""), &budgeted, "house").await;
    assert_eq!(a.status, 200);
    assert!(cost(&a).abs() < f64::EPSILON);
    drop(gw);

    // Refused to callers with a budget.
    let gw = Gov::start(
        &unpriced_config(
            &up.url(),
            "  block_unpriced_models_for_budgeted_keys: true\n",
        ),
        sqlite(),
    )
    .await;
    let base = gw.url("");
    up.reset();
    up.set_default(Reply::json(200, chat_completion("hello")));
    let (budgeted, _) = new_key(&base, json!({"max_budget": 1.0})).await;
    let a = chat(&base, &budgeted, "house").await;
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    let e = a.error();
    assert_eq!(e["param"], "model");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("`openai/house-model` has no known price"),
        "{e}"
    );
    // A team budget counts too.
    let t = post(
        &gw.url("/team/new"),
        Some(MASTER),
        &json!({"team_id": "capped", "max_budget": 5.0}),
    )
    .await;
    assert_eq!(t.status, 200);
    let (team_key, _) = new_key(&base, json!({"team_id": "capped"})).await;
    assert_eq!(chat(&base, &team_key, "house").await.status, 400);
    // A model a wildcard deployment calls is checked per call: unknown → refused, known → served.
    assert_eq!(
        chat(&base, &budgeted, "hosted/unknown-thing").await.status,
        400
    );
    assert_eq!(chat(&base, &budgeted, "hosted/gpt-4o").await.status, 200);
    assert_eq!(up.hits(), 1);
    // Callers without a budget are served, at cost 0.
    let (free, _) = new_key(&base, json!({})).await;
    let a = chat(&base, &free, "house").await;
    assert_eq!(a.status, 200);
    assert!(cost(&a).abs() < f64::EPSILON);
    assert_eq!(chat(&base, MASTER, "house").await.status, 200);
}

/// Before: the pre-call check knew only `model_info.max_input_tokens` set in the config; now the
/// price table's context window applies, so an oversized prompt never reaches the upstream.
#[tokio::test]
async fn context_windows_from_the_price_table_feed_pre_call_checks() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    // gpt-4: 8192 input tokens in LiteLLM's map.
    let yaml = format!(
        "model_list:\n  - model_name: small\n    litellm_params:\n      model: openai/gpt-4\n      api_base: {}/v1\n      api_key: sk-upstream-key\nrouter_settings:\n  enable_pre_call_checks: true\ngeneral_settings:\n  master_key: {MASTER}\n",
        up.url()
    );
    let gw = Gov::start(
        &yaml,
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let big = "word ".repeat(10_000);
    let a = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER),
        &json!({"model": "small", "messages": [{"role": "user", "content": big}]}),
    )
    .await;
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.error()["code"], "context_length_exceeded");
    assert_eq!(up.hits(), 0);
    assert_eq!(chat(&gw.url(""), MASTER, "small").await.status, 200);
    assert_eq!(up.hits(), 1);
}

/// `LLMGATE_MODEL_PRICES` (here [`BuildOptions::prices_file`]) still overrides the built-in table.
#[tokio::test]
async fn a_price_file_overrides_the_builtin_table() {
    let dir = TempDir::new();
    let prices = write(
        &dir.0,
        "prices.json",
        r#"{"gpt-4o-mini": {"input_cost_per_token": 0.01, "output_cost_per_token": 0.02, "litellm_provider": "openai", "mode": "chat"}}"#,
    );
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let yaml = format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {}/v1\n      api_key: sk-upstream-key\ngeneral_settings:\n  master_key: {MASTER}\n",
        up.url()
    );
    let gw = Gov::start(
        &yaml,
        BuildOptions::default()
            .database_url("sqlite::memory:")
            .prices_file(&prices),
    )
    .await;
    let a = chat(&gw.url(""), MASTER, "g").await;
    assert!(
        (cost(&a) - (5.0 * 0.01 + 7.0 * 0.02)).abs() < 1e-12,
        "{}",
        cost(&a)
    );
}

/// `--check` (the real binary) names every deployment without a price, and only those.
#[test]
fn check_lists_unpriced_deployments() {
    let dir = TempDir::new();
    let cfg = write(
        &dir.0,
        "config.yaml",
        &unpriced_config("http://127.0.0.1:9", ""),
    );
    let out = std::process::Command::new(governance_common::BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("--check")
        .env("NO_COLOR", "1")
        .env_remove("LLMGATE_MODEL_PRICES")
        .output()
        .unwrap();
    // The report (stdout) lists the problems; nothing is on stderr for a valid config.
    let stderr = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: no price known for `openai/house-model`"),
        "{stderr}"
    );
    // The wildcard deployment is priced per call, not listed.
    assert!(
        !stderr.contains("no price known for `openai/*`"),
        "{stderr}"
    );
    assert!(!stderr.contains("sk-upstream-key"), "{stderr}");
}

/// A proxy budget whose period is not a duration would never reset: `--check` and the start
/// refuse it, naming the key.
#[test]
fn a_budget_duration_that_is_not_a_duration_is_refused() {
    let dir = TempDir::new();
    let cfg = write(
        &dir.0,
        "config.yaml",
        &proxy_budget_config("http://127.0.0.1:9", "  budget_duration: monthly\n"),
    );
    let out = std::process::Command::new(governance_common::BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("--check")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("litellm_settings.budget_duration"),
        "{stderr}"
    );
}

/// LiteLLM's `litellm_settings.budget_exceeded_status_code` (429 restores its pre-422 status)
/// is honoured for key and proxy budgets; `code` follows the status.
#[tokio::test]
async fn budget_status_code_is_configurable() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let yaml = proxy_budget_config(
        &up.url(),
        "  budget_duration: 1h\n  budget_exceeded_status_code: 429\n",
    );
    let gw = Gov::start(
        &yaml,
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    let (key, _) = new_key(&base, json!({"max_budget": 0.01})).await;
    assert_eq!(chat(&base, &key, "g").await.status, 200);
    let a = chat(&base, &key, "g").await;
    assert_eq!(a.status, 429, "{}", String::from_utf8_lossy(&a.body));
    let e = a.error();
    assert_eq!(e["type"], "budget_exceeded");
    assert_eq!(e["code"], "429");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .starts_with("Budget has been exceeded! Key=key"));
    // The proxy budget (0.03): 0.038 after one more call.
    assert_eq!(chat(&base, MASTER, "g").await.status, 200);
    let a = chat(&base, MASTER, "g").await;
    assert_eq!(a.status, 429);
    assert_eq!(
        a.error()["message"],
        "Budget has been exceeded! Current cost: 0.038, Max budget: 0.03"
    );
}

/// A gateway without a `master_key` (open, as LiteLLM without one) still holds its proxy budget.
#[tokio::test]
async fn proxy_budget_holds_on_an_open_gateway() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let yaml = format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {}/v1\n      api_key: sk-upstream-key\n{PRICED}litellm_settings:\n  max_budget: 0.03\n  budget_duration: 1h\n",
        up.url()
    );
    let gw = Gov::start(
        &yaml,
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let url = gw.url("/v1/chat/completions");
    let body = json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(post(&url, None, &body).await.status, 200);
    assert_eq!(post(&url, None, &body).await.status, 200);
    let a = post(&url, None, &body).await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(up.hits(), 2);
}

// ---- issue 23: model-specific key budgets and limits, organization and end-user rate limits

/// Two priced groups, `g` and `other`: a call costs 0.019 on either.
fn two_groups(upstream: &str) -> String {
    format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\n{PRICED}  - model_name: other\n    litellm_params:\n      model: openai/gpt-4o\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\n{PRICED}general_settings:\n  master_key: {MASTER}\n"
    )
}

/// Before: `model_max_budget` on `/key/generate` was a 400 ("not supported yet"). Now a key's
/// budget on one model is enforced as LiteLLM enforces it (spend > budget, its message), the
/// other models stay callable, the spend per model is written by the spend writer into the
/// key's `model_spend`, and the model's period restarts after its `budget_duration`.
async fn model_max_budget_holds(opts: BuildOptions) {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let clock = Clock::manual();
    let gw = Gov::start(&two_groups(&up.url()), opts.clock(clock.clone())).await;
    let base = gw.url("");
    let (key, token) = new_key(
        &base,
        json!({"key_alias": "per-model", "model_max_budget": {"g": {"max_budget": 0.03, "budget_duration": "1d"}}}),
    )
    .await;
    // 0.019, then 0.038 > 0.03: the third call on `g` is refused before the upstream sees it.
    assert_eq!(chat(&base, &key, "g").await.status, 200);
    assert_eq!(chat(&base, &key, "g").await.status, 200);
    let a = chat(&base, &key, "g").await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    let e = a.error();
    assert_eq!(e["type"], "budget_exceeded");
    assert_eq!(
        e["message"],
        format!("LiteLLM Virtual Key: {token}, key_alias: per-model, exceeded budget for model=g")
    );
    assert_eq!(up.hits(), 2);
    // Another model has no budget of its own.
    assert_eq!(chat(&base, &key, "other").await.status, 200);
    // Written off the request path into LiteLLM's `model_spend`; still refused once written.
    gw.flush().await;
    let info = get(&gw.url(&format!("/key/info?key={token}")), Some(MASTER))
        .await
        .json();
    let stored = info["info"]["model_spend"]["g"].as_f64().unwrap();
    assert!((stored - 0.038).abs() < 1e-9, "{info}");
    assert!(info["info"]["model_spend"].get("other").is_none(), "{info}");
    assert_eq!(info["info"]["model_max_budget"]["g"]["max_budget"], 0.03);
    assert_eq!(
        info["info"]["model_max_budget"]["g"]["budget_duration"],
        "1d"
    );
    assert!((info["info"]["spend"].as_f64().unwrap() - 0.057).abs() < 1e-9);
    // Read back fresh from the store (the key cache dropped), the budget still holds.
    let r = post(
        &gw.url("/key/update"),
        Some(MASTER),
        &json!({"key": token, "metadata": {"touched": true}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(chat(&base, &key, "g").await.status, 422);
    // A day later the model's period has ended: `g` is callable again, its spend restarts.
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(chat(&base, &key, "g").await.status, 200);
    gw.flush().await;
    let info = get(&gw.url(&format!("/key/info?key={token}")), Some(MASTER))
        .await
        .json();
    let stored = info["info"]["model_spend"]["g"].as_f64().unwrap();
    assert!((stored - 0.019).abs() < 1e-9, "{info}");
    // Raising the budget lets the key call again at once.
    assert_eq!(chat(&base, &key, "g").await.status, 200);
    assert_eq!(chat(&base, &key, "g").await.status, 422);
    let r = post(
        &gw.url("/key/update"),
        Some(MASTER),
        &json!({"key": token, "model_max_budget": {"g": {"budget_limit": "1.0", "time_period": "1d"}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(chat(&base, &key, "g").await.status, 200);
}

#[tokio::test]
async fn model_max_budget_is_enforced_per_model_sqlite() {
    model_max_budget_holds(BuildOptions::default().database_url("sqlite::memory:")).await;
}

#[tokio::test]
async fn model_max_budget_is_enforced_per_model_postgres() {
    model_max_budget_holds(BuildOptions::default().database_url(fresh_pg().await)).await;
}

/// A key's rpm on one model (`model_max_budget`'s `rpm_limit`, or the metadata's
/// `model_rpm_limit`) limits that model only; a malformed `model_max_budget` is a 400 naming it.
#[tokio::test]
async fn model_specific_key_limits_and_bad_input() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(
        &two_groups(&up.url()),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    for body in [
        json!({"model_max_budget": {"g": {"rpm_limit": 1}}}),
        json!({"metadata": {"model_rpm_limit": {"g": 1}}}),
        // LiteLLM's top-level field, kept in the metadata as LiteLLM keeps it.
        json!({"model_rpm_limit": {"g": 1}}),
    ] {
        let (key, _) = new_key(&base, body.clone()).await;
        assert_eq!(chat(&base, &key, "g").await.status, 200, "{body}");
        let a = chat(&base, &key, "g").await;
        assert_eq!(
            a.status,
            429,
            "{body}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert!(
            a.error()["message"]
                .as_str()
                .unwrap()
                .starts_with("Rate limit exceeded for model_per_key: requests limit of 1"),
            "{}",
            a.error()
        );
        assert_eq!(a.error()["type"], "rate_limit_error");
        assert!(a.header("retry-after").is_some());
        assert_eq!(chat(&base, &key, "other").await.status, 200, "{body}");
    }
    for bad in [
        json!([1]),
        json!({"g": 5}),
        json!({"g": {"max_budget": -1}}),
        json!({"g": {"budget_duration": "0s"}}),
        json!({"g": {"rpm_limit": "many"}}),
    ] {
        let a = post(
            &gw.url("/key/generate"),
            Some(MASTER),
            &json!({"model_max_budget": bad}),
        )
        .await;
        assert_eq!(a.status, 400, "{bad}: {}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.error()["param"], "model_max_budget", "{bad}");
    }
    let (_, token) = new_key(&base, json!({"model_tpm_limit": {"g": 50}})).await;
    let info = get(&gw.url(&format!("/key/info?key={token}")), Some(MASTER))
        .await
        .json();
    assert_eq!(info["info"]["metadata"]["model_tpm_limit"]["g"], 50);
    // LiteLLM key fields that would restrict a key and that llmgate does not enforce are
    // refused, naming the field, never dropped; their empty values pass.
    for (field, value) in [
        ("allowed_routes", json!(["/chat/completions"])),
        ("permissions", json!({"get_spend_routes": false})),
        ("enforced_params", json!(["user"])),
        ("key_type", json!("read_only")),
        ("guardrails", json!(["pii"])),
        ("model_rpm_limit", json!({"g": -1})),
    ] {
        let a = post(
            &gw.url("/key/generate"),
            Some(MASTER),
            &json!({ field: value }),
        )
        .await;
        assert_eq!(
            a.status,
            400,
            "{field}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(a.error()["param"], field);
    }
    new_key(
        &base,
        json!({"allowed_routes": [], "permissions": {}, "key_type": "default", "guardrails": null, "soft_budget": null}),
    )
    .await;
}

/// A chat call for the end user `user`.
async fn chat_for(base: &str, key: &str, model: &str, user: &str) -> governance_common::Answer {
    post(
        &format!("{base}/v1/chat/completions"),
        Some(key),
        &json!({"model": model, "user": user, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
}

/// Before: an organization's and an end user's `rpm_limit` / `tpm_limit` were stored in their
/// budget rows and not enforced. Now they are counted as LiteLLM counts them (scopes
/// `organization`, shared by every key of its teams, and `end_user`), on the same counters as
/// key and team limits: in process, or in Redis.
async fn org_and_end_user_limits_hold(opts: BuildOptions) {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(&two_groups(&up.url()), opts).await;
    let base = gw.url("");
    // Ids unique to this run: the Redis counters are shared with other tests.
    let run = format!("{:08x}", fastrand::u32(..));
    let (org, team, cust) = (format!("o-{run}"), format!("t-{run}"), format!("c-{run}"));
    let a = post(
        &gw.url("/organization/new"),
        Some(MASTER),
        &json!({"organization_id": org, "organization_alias": "acme", "rpm_limit": 2}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = post(
        &gw.url("/team/new"),
        Some(MASTER),
        &json!({"team_id": team, "organization_id": org}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let (k1, _) = new_key(&base, json!({"team_id": team})).await;
    let (k2, _) = new_key(&base, json!({"team_id": team})).await;
    let (outside, _) = new_key(&base, json!({})).await;
    // Two calls a minute for the whole organization, whichever key of its teams calls.
    assert_eq!(chat(&base, &k1, "g").await.status, 200);
    assert_eq!(chat(&base, &k2, "other").await.status, 200);
    let a = chat(&base, &k2, "g").await;
    assert_eq!(a.status, 429, "{}", String::from_utf8_lossy(&a.body));
    let e = a.error();
    assert_eq!(e["type"], "rate_limit_error");
    assert_eq!(e["code"], "429");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("Rate limit exceeded for organization: requests limit of 2 per minute"),
        "{e}"
    );
    assert!(a.header("retry-after").is_some());
    assert_eq!(chat(&base, &k1, "g").await.status, 429);
    // A key outside the organization is not counted there.
    assert_eq!(chat(&base, &outside, "g").await.status, 200);

    // An end user with a row and a budget row's rpm_limit of 1.
    let a = post(
        &gw.url("/customer/new"),
        Some(MASTER),
        &json!({"user_id": cust, "rpm_limit": 1}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(chat_for(&base, &outside, "g", &cust).await.status, 200);
    let a = chat_for(&base, &outside, "other", &cust).await;
    assert_eq!(a.status, 429, "{}", String::from_utf8_lossy(&a.body));
    assert!(
        a.error()["message"]
            .as_str()
            .unwrap()
            .starts_with("Rate limit exceeded for end_user: requests limit of 1 per minute"),
        "{}",
        a.error()
    );
    // The limit is the end user's, whichever key calls for it; the id never appears.
    let (another, _) = new_key(&base, json!({})).await;
    let a = chat_for(&base, &another, "g", &cust).await;
    assert_eq!(a.status, 429);
    assert!(!String::from_utf8_lossy(&a.body).contains(&cust));
    // Other end users, and calls naming none, are not limited by it.
    assert_eq!(
        chat_for(&base, &outside, "g", &format!("{cust}-2"))
            .await
            .status,
        200
    );
    assert_eq!(chat(&base, &outside, "g").await.status, 200);
    // A token limit on the end user: counted from the calls' usage (12 tokens a call).
    let tpm = format!("{cust}-tpm");
    let a = post(
        &gw.url("/customer/new"),
        Some(MASTER),
        &json!({"user_id": tpm, "tpm_limit": 20}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(chat_for(&base, &outside, "g", &tpm).await.status, 200);
    assert_eq!(chat_for(&base, &outside, "g", &tpm).await.status, 200);
    let a = chat_for(&base, &outside, "g", &tpm).await;
    assert_eq!(a.status, 429, "{}", String::from_utf8_lossy(&a.body));
    assert!(
        a.error()["message"]
            .as_str()
            .unwrap()
            .contains("end_user: tokens limit of 20"),
        "{}",
        a.error()
    );
}

#[tokio::test]
async fn organization_and_end_user_rate_limits_memory() {
    org_and_end_user_limits_hold(BuildOptions::default().database_url("sqlite::memory:")).await;
}

#[tokio::test]
async fn organization_and_end_user_rate_limits_redis() {
    org_and_end_user_limits_hold(
        BuildOptions::default()
            .database_url("sqlite::memory:")
            .redis_url(governance_common::redis_url()),
    )
    .await;
}

/// `max_parallel_requests` holds for a team's and a user's keys together, not only per key: a
/// second call of another key of the same team (or user) while the first is in flight is a 429,
/// and the slot comes back when the first ends.
#[tokio::test]
async fn max_parallel_requests_holds_for_teams_and_users() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(
        &two_groups(&up.url()),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    let a = post(
        &gw.url("/team/new"),
        Some(MASTER),
        &json!({"team_id": "par-team", "max_parallel_requests": 1}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = post(
        &gw.url("/user/new"),
        Some(MASTER),
        &json!({"user_id": "par-user", "max_parallel_requests": 1, "auto_create_key": false}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    for (scope, owner) in [
        ("team", json!({"team_id": "par-team"})),
        ("user", json!({"user_id": "par-user"})),
    ] {
        let (k1, _) = new_key(&base, owner.clone()).await;
        let (k2, _) = new_key(&base, owner.clone()).await;
        let before = up.hits();
        up.enqueue(Reply::json(200, chat_completion("slow")).delay(Duration::from_secs(2)));
        let slow = tokio::spawn({
            let base = base.clone();
            async move { chat(&base, &k1, "g").await.status }
        });
        assert!(up.wait_for_hits(before + 1, Duration::from_secs(10)).await);
        let a = chat(&base, &k2, "other").await;
        assert_eq!(
            a.status,
            429,
            "{scope}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(
            a.error()["message"],
            format!("Rate limit exceeded for {scope}: parallel requests limit of 1 reached. Retry after 1s.")
        );
        assert_eq!(slow.await.unwrap(), 200);
        assert_eq!(chat(&base, &k2, "g").await.status, 200, "{scope}");
    }
}
