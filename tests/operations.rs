//! Operations tell the truth (issue 17 item 8): `/health/readiness` reports the database (SQLite,
//! PostgreSQL) and the cache in LiteLLM's shape and fails when the database is gone; the real
//! binary writes one access-log line per request (method, route, model group, deployment, status,
//! latency, tokens, cost, call id; never a key), as JSON lines with `json_logs: true` or
//! `JSON_LOGS`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use std::time::Duration;

use governance_common::{call_with, fresh_pg, get, pg_url, Gov, Proc, TempDir, MASTER};
use llmgate::{clock::Clock, governance::BuildOptions};
use serde_json::{json, Value};
use sqlx::Connection as _;
use support::{chat_completion, chat_sse, gw::TestGateway, FakeUpstream, Reply};

/// A chat request (the streamed one asks something else, so the response cache cannot answer it
/// from the complete one).
fn chat_body(stream: bool) -> Value {
    let content = if stream { "stream it" } else { "hi" };
    json!({"model": "g", "stream": stream, "messages": [{"role": "user", "content": content}]})
}

/// A config: group `g` at the fake upstream, with `extra` appended.
fn config(upstream: &str, extra: &str) -> String {
    format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key-0123\n{extra}"
    )
}

async fn readiness_of(url: &str) -> Value {
    let r = get(url, None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

#[tokio::test]
async fn readiness_without_a_database_says_so() {
    let gw = TestGateway::start(&config("http://127.0.0.1:9", "")).await;
    let v = readiness_of(&gw.url("/health/readiness")).await;
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["db"], "Not connected");
    assert_eq!(v["cache"], Value::Null);
    assert_eq!(v["litellm_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["success_callbacks"], json!([]));
    assert!(v.get("last_updated").is_none(), "{v}");
    // The cache is named when it is on.
    let gw = TestGateway::start(&config(
        "http://127.0.0.1:9",
        "litellm_settings:\n  cache: true\n  cache_params: {type: local}\n",
    ))
    .await;
    assert_eq!(
        readiness_of(&gw.url("/health/readiness")).await["cache"],
        "local"
    );
}

#[tokio::test]
async fn readiness_reports_a_connected_sqlite_database_and_the_cache() {
    let gw = Gov::start(
        &config(
            "http://127.0.0.1:9",
            &format!(
                "general_settings:\n  master_key: {MASTER}\nlitellm_settings:\n  cache: true\n  cache_params: {{type: local}}\n"
            ),
        ),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let v = readiness_of(&gw.url("/health/readiness")).await;
    assert_eq!(v["db"], "connected", "{v}");
    // LiteLLM's answer carries the database check's own `status` and `last_updated`.
    assert_eq!(v["status"], "connected", "{v}");
    assert!(
        v["last_updated"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{v}"
    );
    assert_eq!(v["cache"], "local");
    assert_eq!(v["litellm_version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn readiness_follows_a_postgres_database_that_goes_away() {
    let url = fresh_pg().await;
    let name = url.rsplit_once('/').unwrap().1.to_owned();
    let clock = Clock::manual();
    let gw = Gov::start(
        &config(
            "http://127.0.0.1:9",
            &format!("general_settings:\n  master_key: {MASTER}\n"),
        ),
        BuildOptions::default()
            .database_url(&url)
            .clock(clock.clone()),
    )
    .await;
    let v = readiness_of(&gw.url("/health/readiness")).await;
    assert_eq!(v["db"], "connected", "{v}");
    assert_eq!(v["cache"], Value::Null);

    // The database is dropped under the gateway: once the last good check is stale (1 s), the
    // probe fails with 503 and the OpenAI error JSON.
    let mut admin = sqlx::postgres::PgConnection::connect(&pg_url())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    // Within a second of the last good check the probe answers from it, without the database.
    clock.advance(Duration::from_millis(999));
    let v = readiness_of(&gw.url("/health/readiness")).await;
    assert_eq!(v["db"], "connected", "{v}");
    clock.advance(Duration::from_millis(1));
    let r = get(&gw.url("/health/readiness"), None).await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    let e = r.error();
    assert!(e["message"].as_str().unwrap().contains("database"), "{e}");
    assert!(!String::from_utf8_lossy(&r.body).contains(&name));
}

/// The JSON objects of a log, failing on any line that is not one.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// The access-log event of `call_id`; exactly one.
fn access_line<'a>(events: &'a [Value], call_id: &str) -> &'a Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| e["message"] == "request" && e["call_id"] == call_id)
        .collect();
    assert_eq!(found.len(), 1, "access lines for {call_id}: {found:?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_one_json_line_per_request_and_never_a_key() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let dir = TempDir::new();
    let path = dir.0.join("config.yaml");
    std::fs::write(
        &path,
        config(
            &up.url(),
            &format!(
                "general_settings:\n  master_key: {MASTER}\nlitellm_settings:\n  json_logs: true\n  cache: true\n  cache_params: {{type: local}}\n"
            ),
        ),
    )
    .unwrap();
    let proc = Proc::start(&path, &[("RUST_LOG", "info")]);
    let base = proc.base();
    let chat = format!("{base}/v1/chat/completions");

    let a = call_with(
        "POST",
        &chat,
        Some(MASTER),
        Some(&chat_body(false)),
        &[("x-litellm-call-id", "call-complete")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    // The same request again, until the response cache answers it (the cache is filled in the
    // background).
    let mut cached = String::new();
    for i in 0..100 {
        cached = format!("call-cached-{i}");
        let a = call_with(
            "POST",
            &chat,
            Some(MASTER),
            Some(&chat_body(false)),
            &[("x-litellm-call-id", cached.as_str())],
        )
        .await;
        assert_eq!(a.status, 200);
        if a.header("x-llmgate-cache") == Some("hit") {
            break;
        }
        assert!(i < 99, "never served from the cache");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    up.enqueue(Reply::sse(chat_sse(&["hel", "lo"])));
    let a = call_with(
        "POST",
        &chat,
        Some(MASTER),
        Some(&chat_body(true)),
        &[("x-litellm-call-id", "call-stream")],
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(String::from_utf8_lossy(&a.body).contains("[DONE]"));
    let wrong = "sk-wrong-key-0123456789";
    let a = call_with(
        "POST",
        &chat,
        Some(wrong),
        Some(&chat_body(false)),
        &[("x-litellm-call-id", "call-401")],
    )
    .await;
    assert_eq!(a.status, 401);
    let a = call_with(
        "GET",
        &format!("{base}/health/readiness"),
        None,
        None,
        &[("x-litellm-call-id", "call-ready")],
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json()["db"],
        "connected",
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let in_path = "sk-key-in-the-path-0123456789";
    let a = call_with(
        "POST",
        &format!("{base}/key/{in_path}/regenerate"),
        Some(MASTER),
        None,
        &[("x-litellm-call-id", "call-mgmt")],
    )
    .await;
    assert_eq!(a.status, 404, "{}", String::from_utf8_lossy(&a.body));

    let log = proc.stop();
    let events = json_lines(&log);
    assert!(
        events.iter().any(|e| e["message"] == "llmgate listening"),
        "{log}"
    );
    for e in &events {
        for field in ["timestamp", "level", "message"] {
            assert!(e.get(field).is_some(), "{field} missing: {e}");
        }
    }

    let c = access_line(&events, &cached);
    assert_eq!(c["cache_hit"], true, "{c}");
    assert_eq!(c["total_tokens"], 12, "{c}");
    assert_eq!(c["cost"].as_f64(), Some(0.0), "{c}");

    let e = access_line(&events, "call-complete");
    assert_eq!(e["level"], "INFO");
    assert_eq!(e["method"], "POST");
    assert_eq!(e["route"], "/v1/chat/completions");
    assert_eq!(e["model_group"], "g");
    assert!(
        e["deployment"].as_str().is_some_and(|d| !d.is_empty()),
        "{e}"
    );
    assert_eq!(e["status"], 200);
    assert!(e["latency_ms"].as_f64().is_some_and(|l| l > 0.0), "{e}");
    assert_eq!(
        (
            e["prompt_tokens"].as_u64(),
            e["completion_tokens"].as_u64(),
            e["total_tokens"].as_u64()
        ),
        (Some(5), Some(7), Some(12)),
        "{e}"
    );
    assert!(e["cost"].as_f64().is_some_and(|c| c > 0.0), "{e}");
    assert_eq!(e["cache_hit"], false);
    assert!(e.get("stream").is_none(), "{e}");

    // The stream's line comes when it ends, with the tokens and cost the cost layer saw (the
    // client did not ask for the usage chunk).
    let s = access_line(&events, "call-stream");
    assert_eq!(s["stream"], "complete");
    assert_eq!(s["status"], 200);
    assert_eq!(s["deployment"], e["deployment"]);
    assert_eq!(
        (s["prompt_tokens"].as_u64(), s["completion_tokens"].as_u64()),
        (Some(5), Some(7)),
        "{s}"
    );
    assert!(s["cost"].as_f64().is_some_and(|c| c > 0.0), "{s}");

    // Refused: the status, no deployment, and no model either: a caller without a valid key is
    // refused on its headers, before its body (and the model in it) is read.
    let r = access_line(&events, "call-401");
    assert_eq!(r["status"], 401);
    assert!(r.get("model_group").is_none(), "{r}");
    assert!(r.get("deployment").is_none(), "{r}");

    let h = access_line(&events, "call-ready");
    assert_eq!(
        (
            h["method"].as_str(),
            h["route"].as_str(),
            h["status"].as_u64()
        ),
        (Some("GET"), Some("/health/readiness"), Some(200))
    );
    let m = access_line(&events, "call-mgmt");
    assert_eq!(m["route"], "/key/{key}/regenerate");
    assert_eq!(m["status"], 404);

    // No key, in any form, anywhere in the log.
    for secret in [MASTER, wrong, in_path, "sk-upstream-key-0123"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_env_switches_the_format_and_text_is_the_default() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let dir = TempDir::new();
    let path = dir.0.join("config.yaml");
    std::fs::write(&path, config(&up.url(), "")).unwrap();
    for json_logs in [Some("true"), Some("false"), None] {
        let mut env = vec![("RUST_LOG", "info")];
        if let Some(v) = json_logs {
            env.push(("JSON_LOGS", v));
        }
        let proc = Proc::start(&path, &env);
        let a = call_with(
            "POST",
            &format!("{}/v1/chat/completions", proc.base()),
            None,
            Some(&chat_body(false)),
            &[("x-litellm-call-id", "call-env")],
        )
        .await;
        assert_eq!(a.status, 200);
        if json_logs == Some("true") {
            // A client that leaves mid-stream still gets its line, once the body is dropped.
            up.enqueue(Reply::sse_then_hang(
                "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n",
            ));
            let resp = support::gw::open_stream(
                &format!("{}/v1/chat/completions", proc.base()),
                &chat_body(true),
            )
            .await;
            assert_eq!(resp.status(), 200);
            drop(resp);
            assert!(up.wait_for_disconnects(1, Duration::from_secs(10)).await);
            // The line follows the disconnect: wait for it before stopping the binary.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !proc.stderr.lock().unwrap().contains("client_closed") {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no client_closed line"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let log = proc.stop();
        if json_logs == Some("true") {
            let events = json_lines(&log);
            let e = access_line(&events, "call-env");
            assert_eq!(e["status"], 200);
            assert_eq!(e["total_tokens"], 12);
            let closed: Vec<&Value> = events
                .iter()
                .filter(|e| e["message"] == "request" && e["stream"] == "client_closed")
                .collect();
            assert_eq!(closed.len(), 1, "{log}");
            assert_eq!(closed[0]["status"], 200);
            assert_eq!(closed[0]["model_group"], "g");
        } else {
            assert!(
                log.lines()
                    .all(|l| serde_json::from_str::<Value>(l).is_err()),
                "{log}"
            );
            let line = log
                .lines()
                .find(|l| l.contains("call-env"))
                .unwrap_or_else(|| panic!("no access line:\n{log}"));
            for part in [
                " INFO ",
                "request",
                "method=\"POST\"",
                "route=\"/v1/chat/completions\"",
                "model_group=\"g\"",
                "status=200",
                "total_tokens=12",
                "latency_ms=",
            ] {
                assert!(line.contains(part), "{part} not in {line}");
            }
        }
    }
}
