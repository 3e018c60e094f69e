//! Governance over HTTP against SQLite and real PostgreSQL (`LLMGATE_TEST_DATABASE_URL`, started by
//! `bash .ci/test`): key lifecycle, model access, budgets, rpm under concurrent load, spend rows
//! that match usage and the price table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::suboptimal_flops)]

mod governance_common;
mod support;

use std::time::Duration;

use governance_common::{call, call_with, chat, config, fresh_pg, get, new_key, post, Gov, MASTER};
use llmgate::{clock::Clock, governance::BuildOptions, store::hash_key};
use serde_json::json;
use support::{chat_completion, chat_sse, FakeUpstream, Reply};

fn sqlite() -> BuildOptions {
    BuildOptions::default().database_url("sqlite::memory:")
}

async fn pg() -> BuildOptions {
    BuildOptions::default().database_url(fresh_pg().await)
}

async fn key_lifecycle(opts: BuildOptions) {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(&config("g", &up.url(), ""), opts).await;
    let base = gw.url("");

    // Management needs a key: none → 401, a non-admin key → 403.
    let a = post(&gw.url("/key/generate"), None, &json!({})).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.error()["type"], "auth_error");

    // Malformed input → 400 naming the field.
    let a = post(
        &gw.url("/key/generate"),
        Some(MASTER),
        &json!({"max_budget": "lots"}),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.error()["param"], "max_budget");
    let a = post(
        &gw.url("/key/generate"),
        Some(MASTER),
        &json!({"duration": "5x"}),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.error()["param"], "duration");
    let a = post(
        &gw.url("/key/generate"),
        Some(MASTER),
        &json!({"team_id": "nope"}),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.error()["param"], "team_id");

    // Generate: the key is shown once; the token is its SHA-256.
    let a = post(
        &gw.url("/key/generate"),
        Some(MASTER),
        &json!({"key_alias": "app-1", "models": ["g"], "max_budget": 10.0, "rpm_limit": 100, "metadata": {"env": "test"}, "duration": "1h"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    let key = v["key"].as_str().unwrap().to_owned();
    let token = v["token"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-") && key.len() > 20);
    assert_eq!(token, hash_key(&key));
    assert_eq!(v["key_alias"], "app-1");
    assert_eq!(v["models"], json!(["g"]));
    assert_eq!(v["max_budget"], 10.0);
    assert!(v["expires"].is_string());

    // A non-admin key may not manage.
    let a = post(&gw.url("/key/generate"), Some(&key), &json!({})).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.error()["type"], "auth_error");

    // It works for its model, is refused for another, and lists only its models.
    let a = chat(&base, &key, "g").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = chat(&base, &key, "other").await;
    assert_eq!(a.status, 401);
    let e = a.error();
    assert_eq!(e["type"], "key_model_access_denied");
    assert_eq!(e["param"], "model");
    assert_eq!(up.hits(), 1);
    let models = get(&gw.url("/v1/models"), Some(&key)).await;
    assert_eq!(models.status, 200);
    let ids: Vec<_> = models.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, [json!("g")]);
    let all = get(&gw.url("/v1/models"), Some(MASTER)).await.json();
    assert_eq!(all["data"].as_array().unwrap().len(), 2);

    // Info (by key or by token).
    let info = get(&gw.url(&format!("/key/info?key={key}")), Some(MASTER)).await;
    assert_eq!(info.status, 200);
    let info = info.json();
    assert_eq!(info["key"], token.as_str());
    assert_eq!(info["info"]["key_alias"], "app-1");
    assert_eq!(info["info"]["metadata"], json!({"env": "test"}));
    assert!(!String::from_utf8_lossy(&serde_json::to_vec(&info).unwrap()).contains(&key));
    let a = get(&gw.url("/key/info?key=sk-does-not-exist"), Some(MASTER)).await;
    assert_eq!(a.status, 404);

    // Update: all-proxy-models opens every model at once (the cache is invalidated).
    let a = post(
        &gw.url("/key/update"),
        Some(MASTER),
        &json!({"key": token, "models": ["all-proxy-models"]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(chat(&base, &key, "other").await.status, 200);
    let a = post(
        &gw.url("/key/update"),
        Some(MASTER),
        &json!({"key": key, "rpm_limit": -1}),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.error()["param"], "rpm_limit");

    // Block / unblock.
    assert_eq!(
        post(&gw.url("/key/block"), Some(MASTER), &json!({"key": key}))
            .await
            .status,
        200
    );
    let a = chat(&base, &key, "g").await;
    assert_eq!(a.status, 401);
    assert!(a.error()["message"].as_str().unwrap().contains("blocked"));
    let a = post(&gw.url("/key/unblock"), Some(MASTER), &json!({"key": key})).await;
    assert_eq!(a.json()["blocked"], false);
    assert_eq!(chat(&base, &key, "g").await.status, 200);

    // List.
    let l = get(&gw.url("/key/list?page=1&size=10"), Some(MASTER))
        .await
        .json();
    assert!(l["keys"].as_array().unwrap().contains(&json!(token)));
    assert_eq!(l["current_page"], 1);
    assert!(l["total_count"].as_i64().unwrap() >= 1);
    assert_eq!(
        get(&gw.url("/key/list?size=0"), Some(MASTER)).await.status,
        400
    );

    // Regenerate: the old key stops working, the new one works with the same settings.
    let a = post(
        &gw.url("/key/regenerate"),
        Some(MASTER),
        &json!({"key": key}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    let new = v["key"].as_str().unwrap().to_owned();
    assert_ne!(new, key);
    assert_eq!(v["key_alias"], "app-1");
    assert_eq!(chat(&base, &key, "g").await.status, 401);
    assert_eq!(chat(&base, &new, "g").await.status, 200);
    let a = post(
        &gw.url(&format!("/key/{new}/regenerate")),
        Some(MASTER),
        &json!({}),
    )
    .await;
    assert_eq!(a.status, 200);
    let newer = a.json()["key"].as_str().unwrap().to_owned();

    // Delete.
    let a = post(
        &gw.url("/key/delete"),
        Some(MASTER),
        &json!({"keys": [newer]}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["deleted_keys"], json!([hash_key(&newer)]));
    assert_eq!(chat(&base, &newer, "g").await.status, 401);
    let a = post(
        &gw.url("/key/delete"),
        Some(MASTER),
        &json!({"keys": [newer]}),
    )
    .await;
    assert_eq!(a.status, 404);

    // Expired keys are refused.
    let (short, short_token) = new_key(&base, json!({"duration": "1s"})).await;
    let a = post(
        &gw.url("/key/update"),
        Some(MASTER),
        &json!({"key": short_token, "duration": "0s"}),
    )
    .await;
    assert_eq!(a.status, 200);
    let a = chat(&base, &short, "g").await;
    assert_eq!(a.status, 401);
    assert!(a.error()["message"].as_str().unwrap().contains("Expired"));

    // Teams: models and membership; a team key is limited by the team's models.
    let a = post(
        &gw.url("/team/new"),
        Some(MASTER),
        &json!({"team_alias": "eng", "models": ["g"], "max_budget": 5.0, "budget_duration": "30d"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let team_id = a.json()["team_id"].as_str().unwrap().to_owned();
    let a = post(
        &gw.url("/team/new"),
        Some(MASTER),
        &json!({"team_id": team_id}),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.error()["param"], "team_id");
    let (tk, _) = new_key(&base, json!({"team_id": team_id})).await;
    assert_eq!(chat(&base, &tk, "g").await.status, 200);
    let a = chat(&base, &tk, "other").await;
    assert_eq!(a.status, 401);
    assert_eq!(a.error()["type"], "team_model_access_denied");
    let a = post(
        &gw.url("/team/member_add"),
        Some(MASTER),
        &json!({"team_id": team_id, "member": {"user_id": "u-1", "role": "user"}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["members_with_roles"][0]["user_id"], "u-1");
    let a = post(
        &gw.url("/team/update"),
        Some(MASTER),
        &json!({"team_id": team_id, "models": ["g", "other"]}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["data"]["models"], json!(["g", "other"]));
    assert_eq!(chat(&base, &tk, "other").await.status, 200);
    let info = get(
        &gw.url(&format!("/team/info?team_id={team_id}")),
        Some(MASTER),
    )
    .await
    .json();
    assert_eq!(info["team_info"]["team_alias"], "eng");
    assert_eq!(info["keys"].as_array().unwrap().len(), 1);
    let list = get(&gw.url("/team/list"), Some(MASTER)).await.json();
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["team_id"] == team_id.as_str()));
    let user = get(&gw.url("/user/info?user_id=u-1"), Some(MASTER))
        .await
        .json();
    assert_eq!(user["user_info"]["teams"], json!([team_id]));
    // Blocking the team blocks its keys.
    let a = post(
        &gw.url("/team/update"),
        Some(MASTER),
        &json!({"team_id": team_id, "blocked": true}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(chat(&base, &tk, "g").await.status, 401);
    let a = post(
        &gw.url("/team/delete"),
        Some(MASTER),
        &json!({"team_ids": [team_id]}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        get(
            &gw.url(&format!("/team/info?team_id={team_id}")),
            Some(MASTER)
        )
        .await
        .status,
        404
    );

    // Users: /user/new makes a key; a proxy_admin user's key may manage.
    let a = post(
        &gw.url("/user/new"),
        Some(MASTER),
        &json!({"user_id": "admin-1", "user_role": "proxy_admin"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let admin_key = a.json()["key"].as_str().unwrap().to_owned();
    assert_eq!(
        post(&gw.url("/key/generate"), Some(&admin_key), &json!({}))
            .await
            .status,
        200
    );
    let a = post(
        &gw.url("/user/new"),
        Some(MASTER),
        &json!({"user_role": "emperor"}),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.error()["param"], "user_role");
    assert_eq!(
        get(&gw.url("/user/info?user_id=nobody"), Some(MASTER))
            .await
            .status,
        404
    );

    // Unknown management path → 404 error JSON.
    let a = call("GET", &gw.url("/key/unknown"), Some(MASTER), None).await;
    assert_eq!(a.status, 404);
    a.error();
}

#[tokio::test]
async fn key_lifecycle_sqlite() {
    key_lifecycle(sqlite()).await;
}

#[tokio::test]
async fn key_lifecycle_postgres() {
    key_lifecycle(pg().await).await;
}

/// A price of 1e-3 per input and 2e-3 per output token: 5 + 7 tokens cost 0.019.
const PRICED: &str = "      input_cost_per_token: 0.001\n      output_cost_per_token: 0.002\n";

fn priced_config(upstream: &str) -> String {
    format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\n{PRICED}general_settings:\n  master_key: {MASTER}\n"
    )
}

async fn budget_refusal(opts: BuildOptions) {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    // The gateway's clock moves only when the test steps it (budget periods below).
    let clock = Clock::manual();
    let gw = Gov::start(&priced_config(&up.url()), opts.clock(clock.clone())).await;
    let base = gw.url("");
    let (key, token) = new_key(&base, json!({"max_budget": 0.03})).await;

    // 0.019 spent, then 0.038 ≥ 0.03: the third call is refused before reaching the upstream.
    let a = chat(&base, &key, "g").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-litellm-response-cost"), Some("0.019"));
    assert_eq!(chat(&base, &key, "g").await.status, 200);
    // LiteLLM 1.110's BudgetExceededError as its proxy renders it: 422, type `budget_exceeded`,
    // code "422", the key's message.
    let a = chat(&base, &key, "g").await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    let e = a.error();
    assert_eq!(e["type"], "budget_exceeded");
    assert_eq!(e["code"], "422");
    assert!(e["param"].is_null());
    assert_eq!(
        e["message"],
        "Budget has been exceeded! Key=key Current cost: 0.038, Max budget: 0.03"
    );
    assert_eq!(up.hits(), 2);

    // Still refused once the spend is in the database (cache reloaded from it).
    gw.flush().await;
    let info = get(&gw.url(&format!("/key/info?key={token}")), Some(MASTER))
        .await
        .json();
    assert!(
        (info["info"]["spend"].as_f64().unwrap() - 0.038).abs() < 1e-9,
        "{info}"
    );
    assert_eq!(chat(&base, &key, "g").await.status, 422);

    // Raising the budget lets it through again.
    let a = post(
        &gw.url("/key/update"),
        Some(MASTER),
        &json!({"key": key, "max_budget": 1.0}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(chat(&base, &key, "g").await.status, 200);

    // A team budget applies to all its keys.
    let a = post(
        &gw.url("/team/new"),
        Some(MASTER),
        &json!({"team_id": format!("t-{}", fastrand::u32(..)), "max_budget": 0.01}),
    )
    .await;
    let team = a.json()["team_id"].as_str().unwrap().to_owned();
    let (k1, _) = new_key(&base, json!({"team_id": team})).await;
    let (k2, _) = new_key(&base, json!({"team_id": team})).await;
    assert_eq!(chat(&base, &k1, "g").await.status, 200);
    let a = chat(&base, &k2, "g").await;
    assert_eq!(a.status, 422);
    assert_eq!(
        a.error()["message"],
        format!("Budget has been exceeded! Team={team} Current cost: 0.019, Max budget: 0.01")
    );

    // A budget period resets: a 1 s period over a spent key.
    let (pk, ptoken) = new_key(&base, json!({"max_budget": 0.01, "budget_duration": "1s"})).await;
    assert_eq!(chat(&base, &pk, "g").await.status, 200);
    assert_eq!(chat(&base, &pk, "g").await.status, 422);
    gw.flush().await;
    // Until the period ends the key stays refused, however long the machine takes.
    clock.advance(Duration::from_millis(999));
    assert_eq!(chat(&base, &pk, "g").await.status, 422);
    // The period ends (time passing is the behaviour under test).
    clock.advance(Duration::from_millis(1));
    assert_eq!(chat(&base, &pk, "g").await.status, 200);
    // Reloaded from the store, the period has rolled over there too: spend is 0 before this
    // period's call is written.
    let info = get(&gw.url(&format!("/key/info?key={ptoken}")), Some(MASTER))
        .await
        .json();
    assert!(info["info"]["spend"].as_f64().unwrap() < 0.02, "{info}");
}

#[tokio::test]
async fn budget_refuses_spent_key_sqlite() {
    budget_refusal(sqlite()).await;
}

#[tokio::test]
async fn budget_refuses_spent_key_postgres() {
    budget_refusal(pg().await).await;
}

async fn rpm_exact(opts: BuildOptions) {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(&config("g", &up.url(), ""), opts).await;
    let base = gw.url("");
    let (key, _) = new_key(&base, json!({"rpm_limit": 7})).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (b, k) = (base.clone(), key.clone());
        set.spawn(async move { chat(&b, &k, "g").await });
    }
    let mut ok = 0;
    let mut limited = 0;
    while let Some(a) = set.join_next().await {
        let a = a.unwrap();
        assert_eq!(a.header("x-ratelimit-limit-requests"), Some("7"));
        assert!(a.header("x-ratelimit-remaining-requests").is_some());
        match a.status {
            200 => ok += 1,
            429 => {
                limited += 1;
                let e = a.error();
                assert_eq!(e["type"], "rate_limit_error");
                let wait: u64 = a.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=60).contains(&wait));
                assert_eq!(a.header("x-ratelimit-remaining-requests"), Some("0"));
            }
            s => panic!("unexpected {s}: {}", String::from_utf8_lossy(&a.body)),
        }
    }
    assert_eq!((ok, limited), (7, 33));
    assert_eq!(up.hits(), 7);
}

#[tokio::test]
async fn rpm_limit_exact_under_concurrent_load_memory() {
    rpm_exact(sqlite()).await;
}

#[tokio::test]
async fn rpm_limit_exact_under_concurrent_load_redis() {
    rpm_exact(sqlite().redis_url(governance_common::redis_url())).await;
}

#[tokio::test]
async fn tpm_and_parallel_limits() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(&config("g", &up.url(), ""), sqlite()).await;
    let base = gw.url("");
    // 12 tokens per call: a 20-token minute allows two calls (the second overshoots by its size).
    let (key, _) = new_key(&base, json!({"tpm_limit": 20})).await;
    let a = chat(&base, &key, "g").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-ratelimit-limit-tokens"), Some("20"));
    assert_eq!(a.header("x-ratelimit-remaining-tokens"), Some("20"));
    assert_eq!(
        chat(&base, &key, "g")
            .await
            .header("x-ratelimit-remaining-tokens"),
        Some("8")
    );
    let a = chat(&base, &key, "g").await;
    assert_eq!(a.status, 429);
    assert!(a.error()["message"].as_str().unwrap().contains("tokens"));

    // One parallel call: a second while the first streams is refused, then allowed after.
    up.enqueue(Reply::sse_then_hang(
        chat_sse(&["a"]).split("\n\n").next().unwrap().to_owned() + "\n\n",
    ));
    let (pk, _) = new_key(&base, json!({"max_parallel_requests": 1})).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(gw.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {pk}"))
        .body(http_body_util::Full::new(bytes::Bytes::from(
            serde_json::to_vec(&json!({"model": "g", "stream": true, "messages": [{"role": "user", "content": "hi"}]})).unwrap(),
        )))
        .unwrap();
    let streaming = client.request(req).await.unwrap();
    assert_eq!(streaming.status(), 200);
    let a = chat(&base, &pk, "g").await;
    assert_eq!(a.status, 429);
    assert!(a.error()["message"].as_str().unwrap().contains("parallel"));
    drop(streaming);
    assert!(up.wait_for_disconnect(Duration::from_secs(5)).await);
    // The slot comes back when the stream is dropped (the gateway notices the disconnect).
    let mut status = 0;
    for _ in 0..100 {
        status = chat(&base, &pk, "g").await.status;
        if status == 200 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(status, 200);
}

async fn spend_rows_match(opts: BuildOptions) {
    let up = FakeUpstream::start().await;
    let gw = Gov::start(&priced_config(&up.url()), opts).await;
    let base = gw.url("");
    let (key, token) = new_key(&base, json!({"key_alias": "spender"})).await;

    // A complete call.
    up.enqueue(Reply::json(200, chat_completion("hello")));
    let a = post(
        &gw.url("/v1/chat/completions"),
        Some(&key),
        &json!({"model": "g", "messages": [{"role": "user", "content": "hi"}], "metadata": {"tags": ["batch-7"]}}),
    )
    .await;
    assert_eq!(a.status, 200);
    let call_1 = a.header("x-litellm-call-id").unwrap().to_owned();

    // A stream whose client did not ask for usage: the gateway asks upstream and strips it.
    up.enqueue(Reply::sse(chat_sse(&["he", "llo"])));
    let a = post(
        &gw.url("/v1/chat/completions"),
        Some(&key),
        &json!({"model": "g", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(a.status, 200);
    let call_2 = a.header("x-litellm-call-id").unwrap().to_owned();
    let body = String::from_utf8_lossy(&a.body).to_string();
    assert!(
        !body.contains("prompt_tokens"),
        "usage chunk reached the client: {body}"
    );
    assert!(body.contains("data: [DONE]"));
    let sent = up.last_request().unwrap().json();
    assert_eq!(sent["stream_options"]["include_usage"], true);

    // A stream whose client asked: the usage chunk is kept.
    up.enqueue(Reply::sse(chat_sse(&["x"])));
    let a = post(
        &gw.url("/v1/chat/completions"),
        Some(&key),
        &json!({"model": "g", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert!(String::from_utf8_lossy(&a.body).contains("\"prompt_tokens\":5"));

    // A failed call gets a row too, at no cost.
    up.enqueue(Reply::json(
        400,
        json!({"error": {"message": "bad", "type": "invalid_request_error"}}),
    ));
    assert_eq!(chat(&base, &key, "g").await.status, 400);

    gw.flush().await;
    let rows = get(&gw.url(&format!("/spend/logs?api_key={key}")), Some(MASTER)).await;
    assert_eq!(rows.status, 200);
    let rows = rows.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    let expected = 5.0 * 0.001 + 7.0 * 0.002;
    for id in [&call_1, &call_2] {
        let r = rows
            .iter()
            .find(|r| r["request_id"] == id.as_str())
            .unwrap();
        assert_eq!(r["api_key"], token.as_str());
        assert_eq!(r["key_alias"], "spender");
        assert_eq!(r["model_group"], "g");
        assert_eq!(r["prompt_tokens"], 5);
        assert_eq!(r["completion_tokens"], 7);
        assert_eq!(r["total_tokens"], 12);
        assert_eq!(r["status"], "success");
        assert!(
            (r["spend"].as_f64().unwrap() - expected).abs() < 1e-12,
            "{r}"
        );
        assert!(r["model_id"].is_string());
    }
    let r1 = rows
        .iter()
        .find(|r| r["request_id"] == call_1.as_str())
        .unwrap();
    assert_eq!(r1["request_tags"], json!(["batch-7"]));
    assert_eq!(rows.iter().filter(|r| r["status"] == "failure").count(), 1);

    // Totals follow the rows.
    let info = get(&gw.url(&format!("/key/info?key={token}")), Some(MASTER))
        .await
        .json();
    assert!(
        (info["info"]["spend"].as_f64().unwrap() - 3.0 * expected).abs() < 1e-9,
        "{info}"
    );
    let global = get(&gw.url("/global/spend"), Some(MASTER)).await.json();
    assert!(global["spend"].as_f64().unwrap() >= 3.0 * expected - 1e-9);
    let one = get(
        &gw.url(&format!("/spend/logs?request_id={call_1}")),
        Some(MASTER),
    )
    .await
    .json();
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(
        get(&gw.url("/spend/logs?start_date=yesterday"), Some(MASTER))
            .await
            .status,
        400
    );

    // Shutdown writes everything queued; nothing was dropped.
    assert_eq!(chat(&base, &key, "g").await.status, 200);
    let stats = gw.shutdown().await;
    assert_eq!(stats.dropped, 0);
    assert!(stats.written >= 5);
}

#[tokio::test]
async fn spend_rows_match_usage_and_prices_sqlite() {
    spend_rows_match(sqlite()).await;
}

#[tokio::test]
async fn spend_rows_match_usage_and_prices_postgres() {
    spend_rows_match(pg().await).await;
}

/// `disable_spend_logs: true`: budgets and key spend still count every call, the log has no rows.
async fn spend_without_logs(opts: BuildOptions) {
    let up = FakeUpstream::start().await;
    let yaml = priced_config(&up.url()).replace(
        "general_settings:\n",
        "general_settings:\n  disable_spend_logs: true\n",
    );
    assert!(yaml.contains("disable_spend_logs: true"), "{yaml}");
    let gw = Gov::start(&yaml, opts).await;
    let base = gw.url("");
    let (key, token) = new_key(&base, json!({"key_alias": "quiet"})).await;
    for _ in 0..2 {
        up.enqueue(Reply::json(200, chat_completion("hello")));
        assert_eq!(chat(&base, &key, "g").await.status, 200);
    }
    gw.flush().await;
    let rows = get(&gw.url(&format!("/spend/logs?api_key={key}")), Some(MASTER)).await;
    assert_eq!(rows.status, 200);
    assert_eq!(rows.json(), json!([]));
    let info = get(&gw.url(&format!("/key/info?key={token}")), Some(MASTER))
        .await
        .json();
    let expected = 2.0 * (5.0 * 0.001 + 7.0 * 0.002);
    assert!(
        (info["info"]["spend"].as_f64().unwrap() - expected).abs() < 1e-9,
        "{info}"
    );
    let stats = gw.shutdown().await;
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.written, 2);
}

/// A client may send its own `x-litellm-call-id`, and send the same one twice. The spend log
/// keeps one row per id, but the key pays for every call: reusing an id is no way around a budget.
async fn reused_call_id_still_pays(opts: BuildOptions) {
    let up = FakeUpstream::start().await;
    let gw = Gov::start(&priced_config(&up.url()), opts).await;
    let base = gw.url("");
    let (key, token) = new_key(&base, json!({"key_alias": "reuser"})).await;
    let body = json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..3 {
        up.enqueue(Reply::json(200, chat_completion("hello")));
        let a = call_with(
            "POST",
            &gw.url("/v1/chat/completions"),
            Some(&key),
            Some(&body),
            &[("x-litellm-call-id", "same-id-every-time")],
        )
        .await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("x-litellm-call-id"), Some("same-id-every-time"));
        // One batch per call, so that the later rows meet the stored one.
        gw.flush().await;
    }
    let rows = get(&gw.url(&format!("/spend/logs?api_key={key}")), Some(MASTER))
        .await
        .json();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    let info = get(&gw.url(&format!("/key/info?key={token}")), Some(MASTER))
        .await
        .json();
    let expected = 3.0 * (5.0 * 0.001 + 7.0 * 0.002);
    assert!(
        (info["info"]["spend"].as_f64().unwrap() - expected).abs() < 1e-9,
        "{info}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn reused_call_id_still_pays_sqlite() {
    reused_call_id_still_pays(sqlite()).await;
}

#[tokio::test]
async fn reused_call_id_still_pays_postgres() {
    reused_call_id_still_pays(pg().await).await;
}

#[tokio::test]
async fn spend_without_logs_sqlite() {
    spend_without_logs(sqlite()).await;
}

#[tokio::test]
async fn spend_without_logs_postgres() {
    spend_without_logs(pg().await).await;
}

#[tokio::test]
async fn builtin_prices_apply_without_overrides() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(&config("g", &up.url(), ""), sqlite()).await;
    // gpt-4o-mini: 1.5e-7 in, 6e-7 out.
    let a = chat(&gw.url(""), MASTER, "g").await;
    let cost: f64 = a
        .header("x-litellm-response-cost")
        .unwrap()
        .parse()
        .unwrap();
    assert!((cost - (5.0 * 1.5e-7 + 7.0 * 6e-7)).abs() < 1e-15, "{cost}");
}

#[tokio::test]
async fn sqlite_file_is_created_beside_the_config() {
    let dir = governance_common::TempDir::new();
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let opts = BuildOptions::default().config_dir(&dir.0);
    let gw = Gov::start(&config("g", &up.url(), ""), opts).await;
    let (key, _) = new_key(&gw.url(""), json!({})).await;
    assert!(dir.0.join("llmgate.db").exists());
    drop(gw);
    // A second start over the same file (migrations already applied) still knows the key.
    let gw = Gov::start(
        &config("g", &up.url(), ""),
        BuildOptions::default().config_dir(&dir.0),
    )
    .await;
    assert_eq!(chat(&gw.url(""), &key, "g").await.status, 200);
}
