//! A streamed Messages relay is charged with everything it used (issue 20, item 1: "usage and cost
//! count cache reads and writes; budgets charge them"), over real sockets, with virtual keys in an
//! in-memory SQLite store: the key's spend after one streamed `/v1/messages` call through an
//! `anthropic/` deployment is the price of its input, cache reads, cache writes and output tokens
//! (read from `message_start` and `message_delta` as they passed), and the key's budget, which
//! that spend exceeds only when the cache tokens are counted, then refuses the next call in
//! Anthropic's error shape, presented as `x-api-key`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use std::time::Duration;

use governance_common::{call_with, get, new_key, Gov, MASTER};
use llmgate::governance::BuildOptions;
use serde_json::{json, Value};
use support::{FakeUpstream, Reply};

const STREAM: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":10,\"cache_read_input_tokens\":300,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":42}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

/// 12 input at 1e-3, 10 cache writes at 2e-3, 300 cache reads at 1e-4, 42 output at 1e-3.
const COST: f64 = 12.0 * 1e-3 + 10.0 * 2e-3 + 300.0 * 1e-4 + 42.0 * 1e-3;

#[tokio::test]
async fn a_streamed_relay_is_charged_its_cache_tokens_and_the_budget_holds() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::sse(STREAM));
    let yaml = format!(
        "model_list:\n  - model_name: claude\n    litellm_params:\n      model: anthropic/claude-sonnet-4-5\n      api_base: {}\n      api_key: sk-ant-upstream\n      input_cost_per_token: 0.001\n      output_cost_per_token: 0.001\n      cache_read_input_token_cost: 0.0001\n      cache_creation_input_token_cost: 0.002\ngeneral_settings:\n  master_key: {MASTER}\n",
        up.url()
    );
    let gw = Gov::start(
        &yaml,
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    // Without the cache tokens the call would cost 0.054, under the budget; with them 0.104.
    let (key, _) = new_key(&base, json!({"max_budget": 0.08})).await;
    let body = json!({"model": "claude", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let url = gw.url("/v1/messages");
    let a = call_with("POST", &url, None, Some(&body), &[("x-api-key", &key)]).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(String::from_utf8_lossy(&a.body), STREAM);
    gw.flush().await;

    let info = get(&format!("{base}/key/info?key={key}"), Some(MASTER)).await;
    assert_eq!(info.status, 200, "{}", String::from_utf8_lossy(&info.body));
    let spend = info.json()["info"]["spend"].as_f64().unwrap();
    assert!((spend - COST).abs() < 1e-9, "spend {spend} != {COST}");

    // The budget is spent: the next call is refused before the provider, in Anthropic's shape.
    let hits = up.hits();
    let mut refused: Option<Value> = None;
    for _ in 0..20 {
        let a = call_with("POST", &url, None, Some(&body), &[("x-api-key", &key)]).await;
        if a.status != 200 {
            assert!(
                a.status == 422 || a.status == 429 || a.status == 400,
                "{}",
                a.status
            );
            refused = Some(a.json());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = refused.expect("the spent budget refuses the next call");
    assert_eq!(v["type"], "error", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("Budget"),
        "{v}"
    );
    assert_eq!(up.hits(), hits, "a refused call never reaches the provider");
}
