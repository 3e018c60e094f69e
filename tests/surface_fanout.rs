//! LiteLLM's comma-separated fan-out on chat completions (`"model": "a,b"`, issue 21 item 1)
//! over real sockets: the list of answers in the order named, `fastest_response` (first success
//! wins, the header says so), each model's access checked against the caller's key, one spend row
//! per call, and the refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use std::time::{Duration, Instant};

use governance_common::{call, get, new_key, Gov, MASTER};
use llmgate::governance::BuildOptions;
use serde_json::{json, Value};
use support::{chat_completion, FakeUpstream, Reply};

fn two_groups(a: &str, b: &str) -> String {
    format!(
        "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {a}/v1\n      api_key: sk-up-a\n  - model_name: b\n    litellm_params:\n      model: openai/gpt-4o\n      api_base: {b}/v1\n      api_key: sk-up-b\ngeneral_settings:\n  master_key: {MASTER}\n"
    )
}

fn chat(model: &str, extra: Value) -> Value {
    let mut v = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

async fn start() -> (FakeUpstream, FakeUpstream, Gov) {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let gw = Gov::start(
        &two_groups(&a.url(), &b.url()),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    (a, b, gw)
}

#[tokio::test]
async fn a_list_of_answers_in_the_order_named_one_spend_row_each() {
    let (a, b, gw) = start().await;
    // b answers first; the list still follows the order named.
    a.enqueue(Reply::json(200, chat_completion("from a")).delay(Duration::from_millis(150)));
    b.enqueue(Reply::json(200, chat_completion("from b")));
    let (key, _) = new_key(&gw.url(""), json!({"models": ["a", "b"]})).await;
    let r = call(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(&key),
        Some(&chat("a, b", json!({}))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("x-litellm-call-id").is_some());
    let list = r.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["choices"][0]["message"]["content"], "from a");
    assert_eq!(list[1]["choices"][0]["message"]["content"], "from b");
    assert_eq!(a.last_request().unwrap().json()["model"], "gpt-4o-mini");
    assert_eq!(b.last_request().unwrap().json()["model"], "gpt-4o");
    // Neither upstream saw the comma list or a gateway key.
    assert!(b
        .last_request()
        .unwrap()
        .json()
        .get("fastest_response")
        .is_none());

    gw.flush().await;
    let rows = get(&gw.url(&format!("/spend/logs?api_key={key}")), Some(MASTER))
        .await
        .json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let mut groups: Vec<&str> = rows
        .iter()
        .map(|r| r["model_group"].as_str().unwrap_or_default())
        .collect();
    groups.sort_unstable();
    assert_eq!(groups, vec!["a", "b"], "{rows:?}");
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn fastest_response_takes_the_first_success_and_says_so() {
    let (a, b, gw) = start().await;
    a.enqueue(Reply::json(200, chat_completion("slow a")).delay(Duration::from_secs(2)));
    b.enqueue(Reply::json(200, chat_completion("fast b")));
    let started = Instant::now();
    let r = call(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(MASTER),
        Some(&chat("a,b", json!({"fastest_response": true}))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(r.json()["choices"][0]["message"]["content"], "fast b");
    assert_eq!(
        r.header("x-litellm-fastest_response_batch_completion"),
        Some("True")
    );
    // The slow call was not waited for (it is dropped with the rest of the fan-out).
    assert_eq!(a.hits(), 1);

    // A failing model does not win; the other does.
    a.enqueue(Reply::json(
        500,
        json!({"error": {"message": "boom", "type": "server_error"}}),
    ));
    b.enqueue(Reply::json(200, chat_completion("b again")).delay(Duration::from_millis(100)));
    let r = call(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(MASTER),
        Some(&chat(
            "a,b",
            json!({"fastest_response": true, "num_retries": 0}),
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["choices"][0]["message"]["content"], "b again");
}

/// The key check reads the whole list first, as LiteLLM's `can_key_call_model`: one name the key
/// may not use denies the request, and no model is called.
#[tokio::test]
async fn one_model_the_key_may_not_use_denies_the_request() {
    let (a, b, gw) = start().await;
    a.set_default(Reply::json(200, chat_completion("from a")));
    let (key, _) = new_key(&gw.url(""), json!({"models": ["a"]})).await;
    for model in ["a,b", "b,a", "b,b"] {
        let r = call(
            "POST",
            &gw.url("/v1/chat/completions"),
            Some(&key),
            Some(&chat(model, json!({"fastest_response": true}))),
        )
        .await;
        assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["error"]["type"], "key_model_access_denied");
    }
    assert_eq!(a.hits(), 0);
    assert_eq!(b.hits(), 0);
    // A list of models the key may use is served.
    let r = call(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(&key),
        Some(&chat("a,a", json!({}))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    assert_eq!(a.hits(), 2);
}

/// A model that fails holds its error object in its place in the list.
#[tokio::test]
async fn a_failed_model_holds_its_error_in_the_list() {
    let (a, b, gw) = start().await;
    a.enqueue(Reply::json(200, chat_completion("from a")));
    b.set_default(Reply::json(
        400,
        json!({"error": {"message": "bad request for b", "type": "invalid_request_error", "param": null, "code": null}}),
    ));
    let r = call(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(MASTER),
        Some(&chat("a,b", json!({}))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let list = r.json();
    assert_eq!(list[0]["choices"][0]["message"]["content"], "from a");
    assert_eq!(list[1]["error"]["message"], "bad request for b", "{list}");
}

#[tokio::test]
async fn refusals() {
    let (_a, _b, gw) = start().await;
    for (body, param) in [
        (chat("a,b", json!({"stream": true})), "stream"),
        (chat("a,,b", json!({})), "model"),
        (chat(&vec!["a"; 17].join(","), json!({})), "model"),
    ] {
        let r = call(
            "POST",
            &gw.url("/v1/chat/completions"),
            Some(MASTER),
            Some(&body),
        )
        .await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.error()["param"], param);
    }
}
