//! Calls refused for an unknown model (issue 21, item 2): LiteLLM's 400 with the call id, and a
//! spend-log row with status `failure`, the call id as its request id and the key, as LiteLLM
//! writes for a failed call. (A body naming no model is refused at the edge before any layer,
//! and gets no row yet: see docs/endpoints.md.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use governance_common::{call, config, get, new_key, Gov, MASTER};
use llmgate::governance::BuildOptions;
use serde_json::json;
use support::FakeUpstream;

#[tokio::test]
async fn an_unknown_model_gets_a_failure_spend_row_with_the_call_id_and_key() {
    let up = FakeUpstream::start().await;
    let gw = Gov::start(
        &config("g", &up.url(), ""),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let (key, token) = new_key(&gw.url(""), json!({})).await;
    let mut ids = Vec::new();
    for body in [
        json!({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "other-unknown", "messages": [{"role": "user", "content": "hi"}], "stream": true}),
    ] {
        let r = call(
            "POST",
            &gw.url("/v1/chat/completions"),
            Some(&key),
            Some(&body),
        )
        .await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        assert!(r.error()["message"]
            .as_str()
            .unwrap()
            .contains("Invalid model name"));
        ids.push(r.header("x-litellm-call-id").unwrap().to_owned());
    }
    assert_eq!(up.hits(), 0);
    gw.flush().await;
    let rows = get(&gw.url(&format!("/spend/logs?api_key={key}")), Some(MASTER))
        .await
        .json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for id in &ids {
        let row = rows
            .iter()
            .find(|r| r["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no row for {id}: {rows:?}"));
        assert_eq!(row["status"], "failure", "{row}");
        assert_eq!(row["api_key"], token.as_str(), "{row}");
        assert_eq!(row["spend"].as_f64().unwrap(), 0.0, "{row}");
    }
}
