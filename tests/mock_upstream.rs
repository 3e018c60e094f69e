//! The load benchmark's mock upstream (the `llmgate-mock` binary, run as a child process) behind
//! the gateway, over real loopback sockets: OpenAI and Anthropic answers, paced streams with usage,
//! injected errors with `retry-after`, and connection resets.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::gw;

/// The `llmgate-mock` binary on a free loopback port (its default options), killed on drop.
struct Mock {
    child: std::process::Child,
    url: String,
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the mock and waits for its `listening on http://ADDR` line; returns it with its base URL.
fn start_mock() -> Mock {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_llmgate-mock"))
        .args(["--port", "0", "--threads", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("llmgate-mock said {line:?}"))
        .to_owned();
    Mock { child, url }
}

fn openai(group: &str, api_base: &str) -> String {
    format!(
        "  - model_name: {group}\n    litellm_params:\n      model: openai/llmgate-mock-1\n      api_base: {api_base}\n      api_key: sk-test\n"
    )
}

async fn gateway(mock: &str) -> gw::TestGateway {
    let mut yaml = String::from("model_list:\n");
    yaml += &openai("plain", &format!("{mock}/v1"));
    yaml += &openai(
        "paced",
        &format!("{mock}/mock/chunks=7,chunk_delay_ms=2/v1"),
    );
    yaml += &openai(
        "stamped",
        &format!("{mock}/mock/chunks=4,chunk_delay_ms=3,stamp=1/v1"),
    );
    yaml += &openai("slow", &format!("{mock}/mock/latency_ms=60/v1"));
    yaml += &openai(
        "limited",
        &format!("{mock}/mock/status=429,retry_after=7/v1"),
    );
    yaml += &openai("reset", &format!("{mock}/mock/reset_rate=1/v1"));
    yaml += &format!(
        "  - model_name: claude\n    litellm_params:\n      model: anthropic/claude-test\n      api_base: {mock}/mock/chunks=3\n      api_key: sk-test\n"
    );
    gw::TestGateway::start(&yaml).await
}

fn chat(model: &str, stream: bool) -> serde_json::Value {
    json!({"model": model, "stream": stream, "stream_options": {"include_usage": true},
           "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn openai_answer_and_headers_reach_the_client() {
    let mock = start_mock();
    let gw = gateway(&mock.url).await;
    let a = gw::post_json(&gw.url("/v1/chat/completions"), &chat("plain", false)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "llmgate-mock-1");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .starts_with("This is the mock upstream"));
    assert_eq!(v["usage"]["total_tokens"], 32);
    assert_eq!(a.headers["llm_provider-x-request-id"], "req_llmgate_mock");
}

#[tokio::test]
async fn paced_stream_has_every_chunk_then_usage_then_done() {
    let mock = start_mock();
    let gw = gateway(&mock.url).await;
    let a = gw::post_json(&gw.url("/v1/chat/completions"), &chat("paced", true)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "text/event-stream");
    let data = a.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "tok ".repeat(7));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(chunks[chunks.len() - 1]["usage"]["total_tokens"], 32);
}

/// The load benchmark's per-chunk delay rests on the mock's send stamp reaching the client: the
/// gateway relays it as an unknown chunk field, and the stamps follow the mock's pacing.
#[tokio::test]
async fn send_stamps_reach_the_client_through_the_gateway() {
    let mock = start_mock();
    let gw = gateway(&mock.url).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let a = gw::post_json(&gw.url("/v1/chat/completions"), &chat("stamped", true)).await;
    assert_eq!(a.status, 200);
    let stamps: Vec<u128> = a
        .sse_data()
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .filter_map(|c| c["mock_sent_ns"].as_u64().map(u128::from))
        .collect();
    // The first chunk goes out at once, unstamped; the other three after a 3 ms wait each.
    assert_eq!(stamps.len(), 3, "{:?}", a.sse_data());
    assert!(stamps[0] > before);
    for w in stamps.windows(2) {
        assert!(w[1] - w[0] >= 3_000_000, "{stamps:?}");
    }
}

#[tokio::test]
async fn latency_is_applied_before_the_answer() {
    let mock = start_mock();
    let gw = gateway(&mock.url).await;
    let started = Instant::now();
    let a = gw::post_json(&gw.url("/v1/chat/completions"), &chat("slow", false)).await;
    assert_eq!(a.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(60));
}

#[tokio::test]
async fn injected_rate_limit_is_relayed_with_retry_after() {
    let mock = start_mock();
    let gw = gateway(&mock.url).await;
    let a = gw::post_json(&gw.url("/v1/chat/completions"), &chat("limited", false)).await;
    assert_eq!(a.status, 429);
    let e = a.error();
    assert_eq!(e["type"], "rate_limit_error");
    assert_eq!(e["code"], "rate_limit_exceeded");
    assert_eq!(e["message"], "mock upstream error 429");
    assert_eq!(a.headers["retry-after"], "7");
}

#[tokio::test]
async fn reset_connection_is_an_api_connection_error() {
    let mock = start_mock();
    let gw = gateway(&mock.url).await;
    let a = gw::post_json(&gw.url("/v1/chat/completions"), &chat("reset", false)).await;
    assert_eq!(a.status, 502, "{}", String::from_utf8_lossy(&a.body));
    let e = a.error();
    assert_eq!(e["type"], "api_connection_error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("could not reach the provider"),
        "{e}"
    );
}

#[tokio::test]
async fn anthropic_messages_complete_and_streamed() {
    let mock = start_mock();
    let gw = gateway(&mock.url).await;
    let a = gw::post_json(&gw.url("/v1/chat/completions"), &chat("claude", false)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "This is the mock upstream answering."
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 12);

    let s = gw::post_json(&gw.url("/v1/chat/completions"), &chat("claude", true)).await;
    assert_eq!(s.status, 200);
    let data = s.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let content: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "tok ".repeat(3));
}

#[tokio::test]
async fn responses_relayed_complete_and_streamed() {
    // The mock answers OpenAI's Responses API (the load benchmark's P1 scenario relays it).
    let mock = start_mock();
    let gw = gateway(&mock.url).await;
    let body = |stream: bool| serde_json::json!({"model": "plain", "input": "Say hello.", "stream": stream});
    let a = gw::post_json(&gw.url("/v1/responses"), &body(false)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(
        v["output"][0]["content"][0]["text"],
        "This is the mock upstream answering."
    );
    assert_eq!(v["usage"]["total_tokens"], 32);

    let s = gw::post_json(&gw.url("/v1/responses"), &body(true)).await;
    assert_eq!(s.status, 200);
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&s.body)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"response.created"));
    assert!(kinds.contains(&"response.output_text.delta"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"response.completed"));
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i);
    }
    assert_eq!(
        events.last().unwrap()["response"]["usage"]["output_tokens"],
        20
    );
}
