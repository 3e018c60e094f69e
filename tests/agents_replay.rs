//! Claude Code and Codex CLI, replayed (issue 20: "Claude Code and Codex CLI users must be able to
//! point their tool at llmgate and work").
//!
//! The fixtures in `tests/agents_fixtures/` are the requests the real tools sent (Claude Code
//! 2.1.197 `claude -p "say hi"`, Codex CLI 0.171.0 `codex exec "say hi"`, captured by a
//! recording fake upstream; method, path with query, every header, the body byte for byte). Only
//! the key (`{GATEWAY_KEY}`), the machine's ids and paths were replaced. Each test replays them
//! over real sockets against the gateway with fake upstreams behind it, to the relay and to the
//! chat translation, and checks what the upstream got and what the tool gets back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};
use support::{
    chat_sse,
    gw::{send, Answer, TestGateway},
    FakeUpstream, Reply,
};

const MASTER: &str = "sk-master-agents-1234";

/// One captured request.
struct Captured {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Captured {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn fixture(name: &str) -> Vec<Captured> {
    let path = format!(
        "{}/tests/agents_fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Captured {
                method: v["method"].as_str().unwrap().to_owned(),
                path: v["path"].as_str().unwrap().to_owned(),
                headers: v["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| {
                        (
                            h[0].as_str().unwrap().to_owned(),
                            h[1].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect(),
                body: v["body"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

/// Sends `c` to the gateway as the tool did, with the gateway key in place of `{GATEWAY_KEY}`.
async fn replay(gw: &TestGateway, c: &Captured, body: Option<String>) -> Answer {
    let mut req = http::Request::builder()
        .method(c.method.as_str())
        .uri(gw.url(&c.path));
    for (k, v) in &c.headers {
        req = req.header(k.as_str(), v.replace("{GATEWAY_KEY}", MASTER));
    }
    let body = body.unwrap_or_else(|| c.body.clone());
    send(req.body(Full::new(Bytes::from(body))).unwrap()).await
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

fn names(body: &[u8]) -> Vec<String> {
    events(body).into_iter().map(|(n, _)| n).collect()
}

const ANTHROPIC_SSE: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-opus-4-8\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\ndata: {\"type\":\"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi from fake\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":3}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

/// OpenAI's Responses stream for a one-message answer.
fn responses_sse(model: &str) -> String {
    let resp = json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "in_progress", "model": model, "output": []});
    let item = json!({"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": "hi from fake", "annotations": []}]});
    let mut done = resp.clone();
    done["status"] = json!("completed");
    done["output"] = json!([item]);
    done["usage"] = json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 13});
    let evs = [
        ("response.created", json!({"response": resp})),
        ("response.in_progress", json!({"response": resp})),
        (
            "response.output_item.added",
            json!({"output_index": 0, "item": {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
        ),
        (
            "response.output_text.delta",
            json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "hi from fake"}),
        ),
        (
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        ),
        ("response.completed", json!({"response": done})),
    ];
    let mut out = String::new();
    for (i, (kind, mut data)) in evs.into_iter().enumerate() {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(i);
        out.push_str(&format!("event: {kind}\ndata: {data}\n\n"));
    }
    out
}

/// A config where `group` is served by `model` at `api_base`.
fn config(group: &str, model: &str, api_base: &str) -> String {
    format!(
        "model_list:\n  - model_name: {group}\n    litellm_params:\n      model: {model}\n      api_base: {api_base}\n      api_key: sk-upstream-secret\nrouter_settings:\n  num_retries: 0\ngeneral_settings:\n  master_key: {MASTER}\n"
    )
}

#[tokio::test]
async fn claude_code_relayed_to_anthropic_gets_the_stream_and_the_provider_its_exact_body() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::sse(ANTHROPIC_SSE));
    let gw = TestGateway::start(&config(
        "claude-opus-4-8",
        "anthropic/claude-opus-4-8",
        &up.url(),
    ))
    .await;
    let reqs = fixture("claude_code_2.1.197.jsonl");
    // Claude Code probes the base URL with `HEAD /` first (it carries no key); any answer will
    // do (checked with the real tool against an upstream answering 404): the `llmgate` binary
    // answers 200, a library server with no route there 404. It never reaches the provider.
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("HEAD", "/")
    );
    let probe = replay(&gw, &reqs[0], None).await;
    assert!(
        probe.status == 200 || probe.status == 404,
        "HEAD / answered {}",
        probe.status
    );
    assert!(probe.body.is_empty());
    let turn = &reqs[1];
    assert_eq!(turn.path, "/v1/messages?beta=true");
    let a = replay(&gw, turn, None).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // Relayed event for event.
    assert_eq!(a.body, Bytes::from(ANTHROPIC_SSE));
    let got = up.last_request().unwrap();
    assert_eq!(got.path(), "/v1/messages");
    // The model names the group as the deployment does: the body is the tool's, byte for byte.
    assert_eq!(got.body_str(), turn.body);
    assert_eq!(got.header("anthropic-beta"), turn.header("anthropic-beta"));
    assert_eq!(got.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(got.header("x-api-key"), Some("sk-upstream-secret"));
    assert!(got.header("authorization").is_none());
    assert_eq!(up.hits(), 1, "HEAD / is answered by the gateway");
}

#[tokio::test]
async fn claude_code_translated_to_an_openai_model_keeps_its_mid_conversation_system_turns() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::sse(chat_sse(&["hi ", "from fake"])));
    let gw = TestGateway::start(&config(
        "claude-opus-4-8",
        "openai/gpt-5",
        &format!("{}/v1", up.url()),
    ))
    .await;
    let turn = &fixture("claude_code_2.1.197.jsonl")[1];
    let sent = turn.json();
    // The real request has a `system` turn inside `messages` (beta
    // `mid-conversation-system-2026-04-07`), which the translation once refused with a 400.
    assert!(sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["role"] == "system"));
    let a = replay(&gw, turn, None).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        names(&a.body),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let chat = up.last_request().unwrap();
    assert_eq!(chat.path(), "/v1/chat/completions");
    let chat = chat.json();
    let roles: Vec<&str> = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    let sent_roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    // The top-level system prompt, then the turns in their order.
    assert_eq!(roles[0], "system");
    assert_eq!(roles[1..], sent_roles[..]);
    assert_eq!(
        chat["tools"].as_array().unwrap().len(),
        sent["tools"].as_array().unwrap().len()
    );
    assert_eq!(chat["stream"], true);
}

#[tokio::test]
async fn codex_relayed_to_openai_gets_the_stream_and_the_provider_its_exact_body() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::sse(responses_sse("gpt-5")));
    let gw = TestGateway::start(&config(
        "gpt-5",
        "openai/gpt-5",
        &format!("{}/v1", up.url()),
    ))
    .await;
    let turn = &fixture("codex_0.171.0.jsonl")[0];
    assert_eq!(
        (turn.method.as_str(), turn.path.as_str()),
        ("POST", "/v1/responses")
    );
    let a = replay(&gw, turn, None).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.body, Bytes::from(responses_sse("gpt-5")));
    let got = up.last_request().unwrap();
    assert_eq!(got.path(), "/v1/responses");
    assert_eq!(got.body_str(), turn.body);
    assert_eq!(
        got.header("authorization"),
        Some("Bearer sk-upstream-secret")
    );
}

#[tokio::test]
async fn codex_translated_to_anthropic_works_with_its_namespace_tools_and_names_web_search() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::sse(ANTHROPIC_SSE));
    let gw = TestGateway::start(&config("gpt-5", "anthropic/claude-opus-4-8", &up.url())).await;
    // Codex's default tools include the hosted `web_search`: a 400 naming it, in OpenAI's shape
    // (Codex prints it), before anything reaches the provider.
    let turn = &fixture("codex_0.171.0.jsonl")[0];
    let a = replay(&gw, turn, None).await;
    assert_eq!(a.status, 400);
    let e = a.error();
    assert!(
        e["message"].as_str().unwrap().contains("`web_search`"),
        "{e}"
    );
    assert_eq!(up.hits(), 0);

    // Without it (`web_search = "disabled"`), the `namespace` tool of its sub-agents is served.
    let mut body = turn.json();
    body["tools"]
        .as_array_mut()
        .unwrap()
        .retain(|t| t["type"] != "web_search");
    let a = replay(&gw, turn, Some(body.to_string())).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let n = names(&a.body);
    assert_eq!(n.first().map(String::as_str), Some("response.created"));
    assert_eq!(n.last().map(String::as_str), Some("response.completed"));
    let msg = up.last_request().unwrap().json();
    let tools: Vec<&str> = msg["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"exec_command"), "{tools:?}");
    assert!(
        tools.iter().any(|t| t.starts_with("multi_agent_v1__")),
        "{tools:?}"
    );

    // Codex with `web_search = "disabled"` and `features.multi_agent = false`: function tools only.
    let plain = &fixture("codex_0.171.0_function_tools_only.jsonl")[0];
    let a = replay(&gw, plain, None).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let ev = events(&a.body);
    let done = &ev.last().unwrap().1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "hi from fake");
    assert_eq!(done["usage"]["output_tokens"], 3);
    let msg = up.last_request().unwrap();
    assert_eq!(msg.path(), "/v1/messages");
    assert_eq!(msg.header("x-api-key"), Some("sk-upstream-secret"));
    let msg = msg.json();
    assert_eq!(msg["stream"], true);
    // Codex's developer messages are the system prompt.
    assert!(
        msg["system"].to_string().contains("Codex CLI"),
        "{}",
        msg["system"]
    );
}

/// One AWS event-stream `chunk` event carrying `event` (an Anthropic event's JSON), as
/// InvokeModelWithResponseStream frames it.
fn invoke_chunk(event: &str) -> Vec<u8> {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    use base64::Engine as _;
    let payload = format!(
        r#"{{"bytes":"{}"}}"#,
        base64::engine::general_purpose::STANDARD.encode(event)
    );
    let m = Message::new(payload.into_bytes())
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ))
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String("chunk".into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ));
    let mut out = Vec::new();
    write_message_to(&m, &mut out).unwrap();
    out
}

#[tokio::test]
async fn claude_code_relayed_to_claude_on_bedrock_through_invoke_with_response_stream() {
    let up = FakeUpstream::start().await;
    let events: Vec<&str> = ANTHROPIC_SSE
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .collect();
    let mut stream = Vec::new();
    for e in &events {
        stream.extend(invoke_chunk(e));
    }
    // Framed at awkward places, as a network would.
    let pieces: Vec<Bytes> = stream.chunks(37).map(Bytes::copy_from_slice).collect();
    up.set_default(Reply::chunked(
        200,
        "application/vnd.amazon.eventstream",
        pieces,
        std::time::Duration::ZERO,
    ));
    let yaml = format!(
        "model_list:\n  - model_name: claude-opus-4-8\n    litellm_params:\n      model: bedrock/us.anthropic.claude-opus-4-1-20250805-v1:0\n      api_base: {}\n      aws_access_key_id: AKIDEXAMPLE\n      aws_secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n      aws_region_name: us-east-1\nrouter_settings:\n  num_retries: 0\ngeneral_settings:\n  master_key: {MASTER}\n",
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let turn = &fixture("claude_code_2.1.197.jsonl")[1];
    let a = replay(&gw, turn, None).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    // Anthropic's SSE, event for event, as the model wrote it.
    assert_eq!(a.body, Bytes::from(ANTHROPIC_SSE));
    let got = up.last_request().unwrap();
    assert_eq!(
        got.path(),
        "/model/us.anthropic.claude-opus-4-1-20250805-v1%3A0/invoke-with-response-stream"
    );
    assert!(got
        .header("authorization")
        .unwrap()
        .starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
    let body = got.json();
    let sent = turn.json();
    assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
    assert!(body.get("model").is_none() && body.get("stream").is_none());
    let betas: Vec<&str> = turn.header("anthropic-beta").unwrap().split(',').collect();
    assert_eq!(body["anthropic_beta"], json!(betas));
    // Everything else is the tool's: messages, system, tools, thinking, context_management, …
    for key in [
        "messages",
        "system",
        "tools",
        "thinking",
        "context_management",
        "output_config",
        "metadata",
        "max_tokens",
    ] {
        assert_eq!(body[key], sent[key], "{key}");
    }
}

#[tokio::test]
async fn claude_code_relayed_to_claude_on_vertex_through_stream_raw_predict() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::sse(ANTHROPIC_SSE));
    let yaml = format!(
        "model_list:\n  - model_name: claude-opus-4-8\n    litellm_params:\n      model: vertex_ai/claude-opus-4-1@20250805\n      api_base: {}\n      vertex_project: proj\n      vertex_location: us-east5\n      api_key: ya29.vertex-token\nrouter_settings:\n  num_retries: 0\ngeneral_settings:\n  master_key: {MASTER}\n",
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let turn = &fixture("claude_code_2.1.197.jsonl")[1];
    let a = replay(&gw, turn, None).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.body, Bytes::from(ANTHROPIC_SSE));
    let got = up.last_request().unwrap();
    assert_eq!(
        got.path(),
        "/v1/projects/proj/locations/us-east5/publishers/anthropic/models/claude-opus-4-1@20250805:streamRawPredict"
    );
    assert_eq!(
        got.header("authorization"),
        Some("Bearer ya29.vertex-token")
    );
    assert_eq!(got.header("anthropic-beta"), turn.header("anthropic-beta"));
    let body = got.json();
    let sent = turn.json();
    assert_eq!(body["anthropic_version"], "vertex-2023-10-16");
    assert!(body.get("model").is_none());
    assert_eq!(body["stream"], true);
    for key in [
        "messages",
        "system",
        "tools",
        "thinking",
        "metadata",
        "max_tokens",
    ] {
        assert_eq!(body[key], sent[key], "{key}");
    }
}
