//! Keys, cost, spend and budgets apply to `POST /v1/responses` as to chat (issue 20): a virtual
//! key is required, the relayed and the translated answers are priced from the usage they state
//! (complete answers in `x-litellm-response-cost`, streams from `response.completed`), the key's
//! spend adds up, and a key over its budget is refused on this route in OpenAI's error shape.
//! Real sockets, SQLite in memory, the fake upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::suboptimal_flops)]

mod governance_common;
mod support;

use std::time::Duration;

use governance_common::{get, new_key, post, Gov, MASTER};
use llmgate::governance::BuildOptions;
use serde_json::{json, Value};
use support::{FakeUpstream, Reply};

/// 1e-3 per input and 2e-3 per output token.
const PRICED: &str = "      input_cost_per_token: 0.001\n      output_cost_per_token: 0.002\n";

fn config(up: &str) -> String {
    format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4.1\n      api_base: {up}/v1\n      api_key: sk-up\n{PRICED}  - model_name: c\n    litellm_params:\n      model: anthropic/claude-sonnet-4-5-20250929\n      api_base: {up}\n      api_key: test-key\n{PRICED}general_settings:\n  master_key: {MASTER}\n"
    )
}

fn anthropic_text() -> Reply {
    let path = format!(
        "{}/tests/conformance/anthropic/text_basic.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let case: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    Reply::json(200, case["upstream_response"]["body"].clone())
}

/// A Responses answer of 36 input and 87 output tokens.
fn openai_answer() -> Reply {
    Reply::json(
        200,
        json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": "gpt-4.1",
               "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                           "content": [{"type": "output_text", "text": "Hi", "annotations": []}]}],
               "usage": {"input_tokens": 36, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 87,
                         "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 123}}),
    )
}

/// A Responses stream whose `response.completed` states 37 input and 11 output tokens.
fn openai_stream() -> Reply {
    let done = json!({"type": "response.completed", "sequence_number": 1, "response": {"id": "resp_2", "object": "response",
        "status": "completed", "model": "gpt-4.1", "output": [],
        "usage": {"input_tokens": 37, "output_tokens": 11, "total_tokens": 48}}});
    Reply::sse(format!(
        "event: response.created\ndata: {}\n\nevent: response.completed\ndata: {done}\n\n",
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_2", "object": "response", "status": "in_progress", "model": "gpt-4.1", "output": []}})
    ))
}

fn cost(a: &governance_common::Answer) -> f64 {
    a.header("x-litellm-response-cost")
        .unwrap_or_else(|| panic!("no cost header: {}", String::from_utf8_lossy(&a.body)))
        .parse()
        .unwrap()
}

async fn key_spend(gw: &Gov, key: &str) -> f64 {
    let info = get(&gw.url(&format!("/key/info?key={key}")), Some(MASTER)).await;
    assert_eq!(info.status, 200, "{}", String::from_utf8_lossy(&info.body));
    info.json()["info"]["spend"].as_f64().unwrap_or(0.0)
}

#[tokio::test]
async fn responses_calls_are_keyed_priced_spent_and_budgeted() {
    let up = FakeUpstream::start().await;
    let gw = Gov::start(
        &config(&up.url()),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    let url = gw.url("/v1/responses");

    // No key, a wrong key: 401 in OpenAI's shape, nothing sent.
    let a = post(&url, None, &json!({"model": "g", "input": "hi"})).await;
    assert_eq!(a.status, 401);
    a.error();
    let a = post(
        &url,
        Some("sk-wrong"),
        &json!({"model": "g", "input": "hi"}),
    )
    .await;
    assert_eq!(a.status, 401);
    assert_eq!(up.hits(), 0);

    let (key, _) = new_key(&base, json!({"max_budget": 0.3})).await;

    // Relayed: 36 × 0.001 + 87 × 0.002 = 0.21.
    up.enqueue(openai_answer());
    let a = post(&url, Some(&key), &json!({"model": "g", "input": "hi"})).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert!((cost(&a) - 0.21).abs() < 1e-9, "{}", cost(&a));

    // Translated: Anthropic's 21 input and 5 output tokens: 0.031.
    up.enqueue(anthropic_text());
    let a = post(
        &url,
        Some(&key),
        &json!({"model": "c", "input": "Say hello."}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["usage"]["input_tokens"], 21);
    assert!((cost(&a) - 0.031).abs() < 1e-9, "{}", cost(&a));

    // Relayed stream: 37 × 0.001 + 11 × 0.002 = 0.059, counted from `response.completed`.
    up.enqueue(openai_stream());
    let a = post(
        &url,
        Some(&key),
        &json!({"model": "g", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(a.status, 200);

    // The key's spend adds up (written off the request path: wait for it).
    let want = 0.21 + 0.031 + 0.059;
    let mut spent = 0.0;
    for _ in 0..100 {
        spent = key_spend(&gw, &key).await;
        if (spent - want).abs() < 1e-9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!((spent - want).abs() < 1e-9, "spend {spent} != {want}");

    // Over its budget (0.3): refused before the provider, in OpenAI's error shape.
    let hits = up.hits();
    let a = post(&url, Some(&key), &json!({"model": "c", "input": "again"})).await;
    assert!(a.status == 400 || a.status == 422, "{}", a.status);
    let e = a.error();
    assert!(e["message"].as_str().unwrap().contains("udget"), "{e}");
    assert_eq!(up.hits(), hits);
}
