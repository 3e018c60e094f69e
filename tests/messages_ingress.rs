//! Anthropic's Messages API on the gateway (issue 20, item 1), over real sockets: the `llmgate`
//! stack served on loopback, fake upstreams (real hyper servers) behind it.
//!
//! - To an `anthropic/` deployment the request and the answer are relayed byte for byte (only
//!   `model` replaced in the request), streams at any split included, with `anthropic-version` /
//!   `anthropic-beta` passed on and the deployment's key as `x-api-key`; usage with cache reads
//!   and writes is priced.
//! - To an OpenAI deployment the request is translated to chat and the answer (complete or
//!   streamed) back into Anthropic's shape and event sequence, tools included.
//! - Errors are Anthropic's `{"type":"error","error":{..}}` with the right status, before and
//!   during a stream; `count_tokens` is the provider's count or the gateway's estimate, said in
//!   `x-llmgate-token-count`.
//! - Claude Code's request shapes (a streamed turn with tools and `anthropic-beta` headers, its
//!   `count_tokens` calls, `x-api-key` auth with a gateway key) work against both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};
use support::{
    chat_completion, chat_sse,
    gw::{send, Answer, TestGateway},
    random_cuts, FakeUpstream, Reply,
};

const MASTER: &str = "sk-master-msg-1234";

/// A config with group `claude` on an Anthropic deployment and group `gpt` on an OpenAI one.
fn config(anthropic: &str, openai: &str, extra: &str) -> String {
    format!(
        "model_list:\n  - model_name: claude\n    litellm_params:\n      model: anthropic/claude-sonnet-4-5\n      api_base: {anthropic}\n      api_key: sk-ant-upstream\n      input_cost_per_token: 0.000003\n      output_cost_per_token: 0.000015\n      cache_read_input_token_cost: 0.0000003\n      cache_creation_input_token_cost: 0.00000375\n  - model_name: gpt\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {openai}/v1\n      api_key: sk-oai-upstream\nrouter_settings:\n  num_retries: 0\n{extra}"
    )
}

async fn post_messages(url: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = http::Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await
}

/// The Anthropic error object of an answer, checking the envelope.
fn anthropic_error(a: &Answer) -> Value {
    let v = a.json();
    assert_eq!(v["type"], "error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    v["error"].clone()
}

/// `(event name, data)` of each event of an SSE body.
fn events(body: &[u8]) -> Vec<(String, Value)> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (name, serde_json::from_str(&data).unwrap_or(Value::Null))
        })
        .collect()
}

const ANTHROPIC_ANSWER: &str = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"thinking","thinking":"hm","signature":"EqQBCgIYAhIM"},{"type":"text","text":"Hi!","citations":null}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":1000,"cache_read_input_tokens":2000,"output_tokens":20,"service_tier":"standard"}}"#;

const ANTHROPIC_STREAM: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_02\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":300,\"output_tokens\":1}}}\n\n",
    "event: ping\n",
    "data: {\"type\": \"ping\"}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me check.\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"Bash\",\"input\":{}}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"command\\\": \\\"ls\\\"}\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":42}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

/// A body as Claude Code sends it: system blocks with `cache_control`, tools, a tool result
/// turn, thinking, metadata, streamed. Spacing and key order are the client's own.
const CLAUDE_CODE_TURN: &str = r#"{"model": "claude", "max_tokens": 32000, "stream": true,
 "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
 "messages": [{"role": "user", "content": [{"type": "text", "text": "list files"}]},
  {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_00", "name": "Bash", "input": {"command": "pwd"}}]},
  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_00", "content": "/repo"}, {"type": "text", "text": "go on", "cache_control": {"type": "ephemeral"}}]}],
 "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}],
 "metadata": {"user_id": "user_abc_account__session_1"},
 "temperature": 1}"#;

#[tokio::test]
async fn relay_to_anthropic_is_byte_exact_with_headers_passed_on_and_cache_priced() {
    let ant = FakeUpstream::start().await;
    ant.enqueue(Reply::raw(200, "application/json", ANTHROPIC_ANSWER));
    let gw = TestGateway::start(&config(&ant.url(), "http://127.0.0.1:9", "")).await;
    let body = r#"{"model":"claude", "max_tokens":1024,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral","ttl":"1h"}}]}],"thinking":{"type":"enabled","budget_tokens":1024},"future_field":{"x":1.50},"num_retries":0}"#;
    let a = post_messages(
        &gw.url("/v1/messages"),
        body,
        &[
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "interleaved-thinking-2025-05-14"),
            ("anthropic-beta", "extended-cache-ttl-2025-04-11"),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(&a.body[..], ANTHROPIC_ANSWER.as_bytes());
    assert_eq!(a.headers["content-type"], "application/json");
    let up = ant.last_request().unwrap();
    assert_eq!(up.path(), "/v1/messages");
    // The client's bytes, `model` replaced and the gateway's control cut out.
    assert_eq!(
        up.body_str(),
        r#"{"model":"claude-sonnet-4-5", "max_tokens":1024,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral","ttl":"1h"}}]}],"thinking":{"type":"enabled","budget_tokens":1024},"future_field":{"x":1.50}}"#
    );
    assert_eq!(up.header("x-api-key"), Some("sk-ant-upstream"));
    assert_eq!(up.header("anthropic-version"), Some("2023-06-01"));
    let betas: Vec<&str> = up
        .headers
        .get_all("anthropic-beta")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        betas,
        [
            "interleaved-thinking-2025-05-14",
            "extended-cache-ttl-2025-04-11"
        ]
    );
    // 10 input at 3e-6, 1000 cache writes at 3.75e-6, 2000 cache reads at 3e-7, 20 output at 1.5e-5.
    let cost: f64 = a.headers["x-litellm-response-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let want: f64 = [
        (10.0, 3e-6),
        (1000.0, 3.75e-6),
        (2000.0, 3e-7),
        (20.0, 1.5e-5),
    ]
    .iter()
    .map(|(n, price)| n * price)
    .sum();
    assert!((cost - want).abs() < 1e-12, "cost {cost} != {want}");
}

#[tokio::test]
async fn relayed_streams_are_byte_exact_at_any_split() {
    let ant = FakeUpstream::start().await;
    let gw = TestGateway::start(&config(&ant.url(), "http://127.0.0.1:9", "")).await;
    for seed in 1..=6 {
        let cuts = random_cuts(ANTHROPIC_STREAM.len(), seed, 12);
        ant.enqueue(Reply::split_at(
            200,
            "text/event-stream",
            ANTHROPIC_STREAM,
            &cuts,
        ));
        let a = post_messages(
            &gw.url("/v1/messages"),
            CLAUDE_CODE_TURN,
            &[("anthropic-beta", "fine-grained-tool-streaming-2025-05-14")],
        )
        .await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.headers["content-type"], "text/event-stream");
        assert_eq!(
            String::from_utf8_lossy(&a.body),
            ANTHROPIC_STREAM,
            "seed {seed}"
        );
    }
    let up = ant.last_request().unwrap();
    assert_eq!(up.json()["model"], "claude-sonnet-4-5");
    assert_eq!(
        up.json()["metadata"]["user_id"],
        "user_abc_account__session_1"
    );
    assert_eq!(
        up.header("anthropic-beta"),
        Some("fine-grained-tool-streaming-2025-05-14")
    );
    // Without a client version, Anthropic's is sent.
    assert_eq!(up.header("anthropic-version"), Some("2023-06-01"));
}

#[tokio::test]
async fn upstream_errors_and_stream_errors_are_anthropics_shape() {
    let ant = FakeUpstream::start().await;
    let gw = TestGateway::start(&config(&ant.url(), "http://127.0.0.1:9", "")).await;
    let body = r#"{"model":"claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    ant.enqueue(Reply::json(
        429,
        json!({"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}),
    ));
    let a = post_messages(&gw.url("/v1/messages"), body, &[]).await;
    assert_eq!(a.status, 429);
    let e = anthropic_error(&a);
    assert_eq!(e["type"], "rate_limit_error");
    assert!(e["message"].as_str().unwrap().contains("slow down"));

    ant.enqueue(Reply::json(
        401,
        json!({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}),
    ));
    let a = post_messages(&gw.url("/v1/messages"), body, &[]).await;
    assert_eq!(a.status, 401);
    assert_eq!(anthropic_error(&a)["type"], "authentication_error");

    // An error event mid-stream ends the stream with Anthropic's `event: error`.
    let cut = ANTHROPIC_STREAM.find("event: content_block_stop").unwrap();
    let failing = format!(
        "{}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n",
        &ANTHROPIC_STREAM[..cut]
    );
    ant.enqueue(Reply::sse(failing));
    let stream_body = r#"{"model":"claude","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let a = post_messages(&gw.url("/v1/messages"), stream_body, &[]).await;
    assert_eq!(a.status, 200);
    let evs = events(&a.body);
    let (name, data) = evs.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(data["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Overloaded"));
    assert_eq!(evs[3].0, "content_block_delta");
}

#[tokio::test]
async fn the_edge_refuses_in_anthropics_shape() {
    let gw = TestGateway::start_with(
        &config("http://127.0.0.1:9", "http://127.0.0.1:9", ""),
        Some(4096),
    )
    .await;
    let url = gw.url("/v1/messages");
    let a = post_messages(&url, "{not json", &[]).await;
    assert_eq!(a.status, 400);
    assert_eq!(anthropic_error(&a)["type"], "invalid_request_error");
    let a = post_messages(&url, r#"{"model":"claude","max_tokens":5}"#, &[]).await;
    assert_eq!(a.status, 400);
    assert!(anthropic_error(&a)["message"]
        .as_str()
        .unwrap()
        .contains("messages"));
    let a = post_messages(
        &url,
        &format!(
            r#"{{"model":"claude","messages":[],"x":"{}"}}"#,
            "a".repeat(5000)
        ),
        &[],
    )
    .await;
    assert_eq!(a.status, 413);
    assert_eq!(anthropic_error(&a)["type"], "request_too_large");
    let a = post_messages(
        &url,
        r#"{"model":"nope","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
        &[],
    )
    .await;
    assert!(a.status == 400 || a.status == 404, "{}", a.status);
    let e = anthropic_error(&a);
    assert!(e["type"] == "invalid_request_error" || e["type"] == "not_found_error");
    let a = send(
        http::Request::get(&url)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 405);
    assert_eq!(anthropic_error(&a)["type"], "invalid_request_error");
    // A server tool cannot be served by a chat provider: a clear 400.
    let a = post_messages(
        &url,
        r#"{"model":"gpt","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":3}]}"#,
        &[],
    )
    .await;
    assert_eq!(a.status, 400);
    let e = anthropic_error(&a);
    assert_eq!(e["type"], "invalid_request_error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("web_search_20250305"),
        "{e}"
    );
}

#[tokio::test]
async fn gateway_keys_are_read_from_x_api_key_and_refusals_are_anthropics() {
    let ant = FakeUpstream::start().await;
    ant.set_default(Reply::raw(200, "application/json", ANTHROPIC_ANSWER));
    let gw = TestGateway::start(&config(
        &ant.url(),
        "http://127.0.0.1:9",
        &format!("general_settings:\n  master_key: {MASTER}\n"),
    ))
    .await;
    let body = r#"{"model":"claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    let url = gw.url("/v1/messages");
    let a = post_messages(&url, body, &[]).await;
    assert_eq!(a.status, 401);
    assert_eq!(anthropic_error(&a)["type"], "authentication_error");
    let a = post_messages(&url, body, &[("x-api-key", "sk-wrong")]).await;
    assert_eq!(a.status, 401);
    assert_eq!(anthropic_error(&a)["type"], "authentication_error");
    let a = post_messages(&url, body, &[("x-api-key", MASTER)]).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let auth = format!("Bearer {MASTER}");
    let a = post_messages(&url, body, &[("authorization", &auth)]).await;
    assert_eq!(a.status, 200);
    // The gateway key never reaches the provider; the deployment's does.
    for r in ant.requests() {
        assert_eq!(r.header("x-api-key"), Some("sk-ant-upstream"));
        assert!(r.header("authorization").is_none());
    }
}

#[tokio::test]
async fn count_tokens_is_the_providers_or_an_estimate_and_says_which() {
    let ant = FakeUpstream::start().await;
    let oai = FakeUpstream::start().await;
    ant.enqueue(Reply::json(200, json!({"input_tokens": 2095})));
    let gw = TestGateway::start(&config(&ant.url(), &oai.url(), "")).await;
    let body = |model: &str| {
        format!(
            r#"{{"model":"{model}","system":"You are Claude Code.","messages":[{{"role":"user","content":"count these words please"}}],"tools":[{{"name":"Bash","input_schema":{{"type":"object"}}}}]}}"#
        )
    };
    let a = post_messages(
        &gw.url("/v1/messages/count_tokens"),
        &body("claude"),
        &[("anthropic-beta", "token-counting-2024-11-01")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json(), json!({"input_tokens": 2095}));
    assert_eq!(a.headers["x-llmgate-token-count"], "provider");
    let up = ant.last_request().unwrap();
    assert_eq!(up.path(), "/v1/messages/count_tokens");
    assert_eq!(up.json()["model"], "claude-sonnet-4-5");
    assert_eq!(
        up.header("anthropic-beta"),
        Some("token-counting-2024-11-01")
    );

    let a = post_messages(&gw.url("/v1/messages/count_tokens"), &body("gpt"), &[]).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.headers["x-llmgate-token-count"], "estimate");
    let n = a.json()["input_tokens"].as_u64().unwrap();
    assert!((10..200).contains(&n), "{n}");
    assert_eq!(oai.hits(), 0, "an estimate calls no provider");
}

#[tokio::test]
async fn translated_to_openai_complete_answer_with_tools() {
    let oai = FakeUpstream::start().await;
    oai.enqueue(Reply::json(
        200,
        json!({
            "id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}]}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 9, "total_tokens": 59, "prompt_tokens_details": {"cached_tokens": 32}}
        }),
    ));
    let gw = TestGateway::start(&config("http://127.0.0.1:9", &oai.url(), "")).await;
    let body = CLAUDE_CODE_TURN
        .replace("\"model\": \"claude\"", "\"model\": \"gpt\"")
        .replace("\"stream\": true", "\"stream\": false");
    let a = post_messages(
        &gw.url("/v1/messages"),
        &body,
        &[("x-api-key", "ignored-without-auth")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(
        v["content"],
        json!([{"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}}])
    );
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 18, "output_tokens": 9, "cache_read_input_tokens": 32, "cache_creation_input_tokens": 0})
    );
    let up = oai.last_request().unwrap();
    assert_eq!(up.path(), "/v1/chat/completions");
    assert_eq!(up.header("authorization"), Some("Bearer sk-oai-upstream"));
    let chat = up.json();
    assert_eq!(chat["model"], "gpt-4o-mini");
    assert_eq!(chat["max_tokens"], 32000);
    assert_eq!(chat["messages"][0]["role"], "system");
    assert_eq!(
        chat["messages"][2]["tool_calls"][0]["function"]["name"],
        "Bash"
    );
    assert_eq!(
        chat["messages"][3],
        json!({"role": "tool", "tool_call_id": "toolu_00", "content": "/repo"})
    );
    assert_eq!(chat["messages"][4]["content"][0]["text"], "go on");
    assert_eq!(chat["tools"][0]["function"]["name"], "Bash");
    assert_eq!(chat["user"], "user_abc_account__session_1");
}

#[tokio::test]
async fn translated_to_openai_stream_is_anthropics_event_sequence() {
    let oai = FakeUpstream::start().await;
    let gw = TestGateway::start(&config("http://127.0.0.1:9", &oai.url(), "")).await;
    let sse = chat_sse(&["Hel", "lo"]);
    for seed in [0_u64, 3, 9] {
        let reply = if seed == 0 {
            Reply::sse(sse.clone())
        } else {
            Reply::split_at(
                200,
                "text/event-stream",
                sse.clone(),
                &random_cuts(sse.len(), seed, 10),
            )
        };
        oai.enqueue(reply);
        let body = CLAUDE_CODE_TURN.replace("\"model\": \"claude\"", "\"model\": \"gpt\"");
        let a = post_messages(&gw.url("/v1/messages"), &body, &[("anthropic-beta", "x")]).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.headers["content-type"], "text/event-stream");
        let evs = events(&a.body);
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ],
            "seed {seed}"
        );
        for (name, data) in &evs {
            assert_eq!(&data["type"], name, "each event's data names it");
        }
        assert_eq!(evs[0].1["message"]["role"], "assistant");
        assert_eq!(
            evs[3].1["delta"],
            json!({"type": "text_delta", "text": "Hel"})
        );
        assert_eq!(evs[6].1["delta"]["stop_reason"], "end_turn");
        assert_eq!(evs[6].1["usage"]["output_tokens"], 7);
        assert_eq!(evs[6].1["usage"]["input_tokens"], 5);
        let chat = oai.last_request().unwrap().json();
        assert_eq!(chat["stream"], true);
        assert_eq!(chat["stream_options"]["include_usage"], true);
    }
}

#[tokio::test]
async fn a_failed_translated_answer_is_an_anthropic_error() {
    let oai = FakeUpstream::start().await;
    oai.enqueue(Reply::json(
        429,
        json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
    ));
    let gw = TestGateway::start(&config("http://127.0.0.1:9", &oai.url(), "")).await;
    let a = post_messages(
        &gw.url("/messages"),
        r#"{"model":"gpt","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
        &[],
    )
    .await;
    assert_eq!(a.status, 429);
    assert_eq!(anthropic_error(&a)["type"], "rate_limit_error");
    // Chat still answers in OpenAI's shape on its own route.
    oai.enqueue(Reply::json(200, chat_completion("ok")));
    let a = support::gw::post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "gpt", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["choices"][0]["message"]["content"], "ok");
}

#[tokio::test]
async fn malformed_messages_bodies_are_400s_never_a_crash() {
    let oai = FakeUpstream::start().await;
    oai.set_default(Reply::json(200, chat_completion("ok")));
    let gw = TestGateway::start(&config("http://127.0.0.1:9", &oai.url(), "")).await;
    let url = gw.url("/v1/messages");
    for body in [
        r#"{"model":"gpt","messages":5}"#,
        r#"{"model":"gpt","messages":[5]}"#,
        r#"{"model":"gpt","messages":[{"role":"user","content":{}}]}"#,
        r#"{"model":"gpt","messages":[{"role":"user","content":[1,null,"x"]}]}"#,
        r#"{"model":"gpt","messages":[{"role":"tool","content":"x"}]}"#,
        r#"{"model":"gpt","messages":[{"role":"user","content":[{"type":"image"}]}]}"#,
        r#"{"model":"gpt","messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}"#,
        r#"{"model":"gpt","messages":[{"role":"user","content":"x"}],"system":[1]}"#,
        r#"{"model":"gpt","messages":[{"role":"user","content":"x"}],"system":7}"#,
        r#"{"model":"gpt","messages":[{"role":"user","content":"x"}],"tools":"x"}"#,
        r#"{"model":"gpt","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"sometimes"}}"#,
        r#"{"model":"gpt","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#,
        r#"{"model":"gpt","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
        r#"{"model":7,"messages":[]}"#,
        r#"[]"#,
        "",
    ] {
        let a = post_messages(&url, body, &[]).await;
        assert_eq!(
            a.status,
            400,
            "{body}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(
            anthropic_error(&a)["type"],
            "invalid_request_error",
            "{body}"
        );
    }
    assert_eq!(oai.hits(), 0, "nothing malformed reaches the provider");
    // Odd but valid content still goes through.
    let a = post_messages(
        &url,
        r#"{"model":"gpt","max_tokens":5,"messages":[{"role":"user","content":[]},{"role":"assistant","content":[{"type":"redacted_thinking","data":"x"}]},{"role":"user","content":"x"}]}"#,
        &[],
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
}
