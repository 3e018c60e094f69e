//! Every error is the OpenAI error JSON with the right status: errors from the upstream, and bad
//! input at the edge. No panic on any input.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;
use support::{gw, FakeUpstream, Reply};

fn chat(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

/// The config with retries off, so one queued upstream reply is what the client sees (the retry
/// layer's own behaviour is tested in tests/routing.rs).
fn no_retries(cfg: &str) -> String {
    format!("{cfg}router_settings:\n  num_retries: 0\n")
}

#[tokio::test]
async fn upstream_401_is_authentication() {
    let up = FakeUpstream::start().await;
    up.enqueue(Reply::json(401, json!({"error": {"message": "Incorrect API key provided: sk-up***", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})));
    let gw = gw::TestGateway::start(&gw::openai_config("g", &up.url())).await;
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
    assert_eq!(ans.status, 401);
    let e = ans.error();
    assert_eq!(e["code"], "invalid_api_key");
    assert_eq!(e["type"], "invalid_request_error");
    assert!(e["param"].is_null());
}

#[tokio::test]
async fn upstream_429_keeps_retry_after() {
    let up = FakeUpstream::start().await;
    up.enqueue(
        Reply::json(429, json!({"error": {"message": "Rate limit reached", "type": "tokens", "param": null, "code": "rate_limit_exceeded"}}))
            .header("retry-after", "20")
            .header("x-ratelimit-remaining-tokens", "0"),
    );
    let gw = gw::TestGateway::start(&no_retries(&gw::openai_config("g", &up.url()))).await;
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
    assert_eq!(ans.status, 429);
    assert_eq!(ans.headers["retry-after"], "20");
    assert_eq!(ans.headers["x-ratelimit-remaining-tokens"], "0");
    let e = ans.error();
    assert_eq!(e["code"], "rate_limit_exceeded");
    assert_eq!(e["type"], "tokens");
}

#[tokio::test]
async fn upstream_500_and_non_json_bodies() {
    let up = FakeUpstream::start().await;
    up.enqueue(Reply::json(500, json!({"error": {"message": "The server had an error", "type": "server_error", "param": null, "code": null}})));
    up.enqueue(Reply::raw(502, "text/html", "<html>bad gateway</html>"));
    let gw = gw::TestGateway::start(&no_retries(&gw::openai_config("g", &up.url()))).await;
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
    assert_eq!(ans.status, 500);
    assert_eq!(ans.error()["type"], "server_error");
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
    assert_eq!(ans.status, 502);
    assert!(ans.error()["message"]
        .as_str()
        .unwrap()
        .contains("bad gateway"));
}

#[tokio::test]
async fn upstream_context_length_exceeded_keeps_its_code() {
    let up = FakeUpstream::start().await;
    up.enqueue(Reply::json(400, json!({"error": {"message": "This model's maximum context length is 128000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})));
    let gw = gw::TestGateway::start(&gw::openai_config("g", &up.url())).await;
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
    assert_eq!(ans.status, 400);
    let e = ans.error();
    assert_eq!(e["code"], "context_length_exceeded");
    assert_eq!(e["param"], "messages");
}

#[tokio::test]
async fn unreachable_upstream_is_api_connection_error() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw =
        gw::TestGateway::start(&gw::openai_config("g", &format!("http://127.0.0.1:{port}"))).await;
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
    assert_eq!(ans.status, 502);
    let e = ans.error();
    assert_eq!(e["type"], "api_connection_error");
    assert!(!e["message"].as_str().unwrap().contains("sk-upstream-key"));
}

#[tokio::test]
async fn slow_upstream_times_out() {
    let up = FakeUpstream::start().await;
    up.enqueue(Reply::json(200, support::chat_completion("late")).delay(Duration::from_secs(5)));
    let cfg = format!("{}      timeout: 0.3\n", gw::openai_config("g", &up.url()));
    let gw = gw::TestGateway::start(&no_retries(&cfg)).await;
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
    assert_eq!(ans.status, 408);
    assert_eq!(ans.error()["type"], "timeout_error");
}

#[tokio::test]
async fn mock_response_error_string_produces_that_error() {
    let gw = gw::TestGateway::start(llmgate::gateway::DEFAULT_CONFIG).await;
    for (name, status) in [
        ("RateLimitError", 429),
        ("ContextWindowExceededError", 400),
        ("InternalServerError", 500),
        ("AuthenticationError", 401),
    ] {
        let ans = gw::post_json(
            &gw.url("/v1/chat/completions"),
            &json!({"model": "mock", "mock_response": format!("litellm.{name}"), "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(ans.status, status, "{name}");
        assert!(ans.error()["message"].as_str().unwrap().contains(name));
    }
}

#[tokio::test]
async fn malformed_bodies_get_clear_400s() {
    let gw = gw::TestGateway::start(llmgate::gateway::DEFAULT_CONFIG).await;
    let url = gw.url("/v1/chat/completions");
    let cases: Vec<(&str, Bytes, &str)> = vec![
        (
            "truncated",
            Bytes::from_static(br#"{"model":"mock","messages":[{"role":"user","#),
            "EOF",
        ),
        (
            "wrong type",
            Bytes::from_static(br#"{"model":"mock","messages":[{"role":"user","content":42}]}"#),
            "messages[0].content",
        ),
        (
            "wrong top type",
            Bytes::from_static(br#"{"model":"mock","messages":"hello"}"#),
            "messages",
        ),
        (
            "missing messages",
            Bytes::from_static(br#"{"model":"mock"}"#),
            "messages",
        ),
        ("not an object", Bytes::from_static(b"[1,2,3]"), "Invalid"),
        ("empty", Bytes::new(), "empty"),
        (
            "invalid utf-8",
            Bytes::from_static(
                b"{\"model\":\"mock\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}",
            ),
            "Invalid",
        ),
        (
            "trailing garbage",
            Bytes::from_static(br#"{"model":"mock","messages":[]} xx"#),
            "trailing",
        ),
    ];
    for (name, body, needle) in cases {
        let ans = gw::post(&url, body).await;
        assert_eq!(
            ans.status,
            400,
            "{name}: {}",
            String::from_utf8_lossy(&ans.body)
        );
        let e = ans.error();
        assert_eq!(e["type"], "invalid_request_error", "{name}");
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{name}: {msg:?} lacks {needle:?}");
    }
}

#[tokio::test]
async fn ten_megabyte_body_over_the_limit_is_413() {
    let gw = gw::TestGateway::start_with(llmgate::gateway::DEFAULT_CONFIG, Some(4 << 20)).await;
    let big = format!(
        r#"{{"model":"mock","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(10 << 20)
    );
    let ans = gw::post(&gw.url("/v1/chat/completions"), big.clone()).await;
    assert_eq!(ans.status, 413);
    assert_eq!(ans.error()["code"], "request_too_large");
    // The same body without a content-length (chunked) is cut off at the limit too.
    let (mut tx, body) =
        http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(4);
    let req = http::Request::post(gw.url("/v1/chat/completions"))
        .body(body)
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let sender = tokio::spawn(async move {
        for piece in big.as_bytes().chunks(1 << 20) {
            if tx.send_data(Bytes::copy_from_slice(piece)).await.is_err() {
                break;
            }
        }
    });
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 413);
    sender.abort();
    // Within the default limit, a 10 MB body is accepted.
    let gw = gw::TestGateway::start(llmgate::gateway::DEFAULT_CONFIG).await;
    let ten_mb = format!(
        r#"{{"model":"mock","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(10 << 20)
    );
    assert_eq!(
        gw::post(&gw.url("/v1/chat/completions"), ten_mb)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn wrong_method_unknown_path_and_model() {
    let gw = gw::TestGateway::start(llmgate::gateway::DEFAULT_CONFIG).await;
    let ans = gw::send(
        http::Request::get(gw.url("/v1/chat/completions"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(ans.status, 405);
    assert_eq!(ans.headers["allow"], "POST");
    ans.error();
    let ans = gw::send(
        http::Request::post(gw.url("/v1/models"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(ans.status, 405);
    let ans = gw::send(
        http::Request::get(gw.url("/v1/nothing"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(ans.status, 404);
    ans.error();
    // LiteLLM's answer to an unknown model (issue 21): 400 and its invalid-model text.
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("gpt-9")).await;
    assert_eq!(ans.status, 400);
    let e = ans.error();
    let msg = e["message"].as_str().unwrap();
    assert_eq!(
        msg,
        "/chat/completions: Invalid model name passed in model=gpt-9. Call `/v1/models` to view available models for your key."
    );
    assert_eq!(e["code"], "model_not_found");
}

#[tokio::test]
async fn health_endpoints() {
    let gw = gw::TestGateway::start(llmgate::gateway::DEFAULT_CONFIG).await;
    let live = gw::send(
        http::Request::get(gw.url("/health/liveliness"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(live.status, 200);
    assert_eq!(live.json(), json!("I'm alive!"));
    let ready = gw::send(
        http::Request::get(gw.url("/health/readiness"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "healthy");
}

#[tokio::test]
async fn master_key_is_required_when_set() {
    let cfg = format!(
        "{}general_settings:\n  master_key: sk-master-1234\n",
        llmgate::gateway::DEFAULT_CONFIG
    );
    let gw = gw::TestGateway::start(&cfg).await;
    let url = gw.url("/v1/chat/completions");
    let body = Bytes::from(serde_json::to_vec(&chat("mock")).unwrap());
    let no_key = gw::post(&url, body.clone()).await;
    assert_eq!(no_key.status, 401);
    no_key.error();
    for (header, value) in [
        ("authorization", "Bearer sk-wrong"),
        ("api-key", "sk-master-12345"),
    ] {
        let ans = gw::send(
            http::Request::post(&url)
                .header(header, value)
                .body(Full::new(body.clone()))
                .unwrap(),
        )
        .await;
        assert_eq!(ans.status, 401, "{header}");
        assert!(
            !String::from_utf8_lossy(&ans.body).contains("sk-master"),
            "key leaked"
        );
    }
    for (header, value) in [
        ("authorization", "Bearer sk-master-1234"),
        ("x-api-key", "sk-master-1234"),
        ("x-litellm-api-key", "sk-master-1234"),
        ("api-key", "sk-master-1234"),
    ] {
        let ans = gw::send(
            http::Request::post(&url)
                .header(header, value)
                .body(Full::new(body.clone()))
                .unwrap(),
        )
        .await;
        assert_eq!(ans.status, 200, "{header}");
    }
    let models = gw::send(
        http::Request::get(gw.url("/v1/models"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(models.status, 401);
}

/// An upstream that answers a redirect (a misconfigured `api_base`) is a 502 with the OpenAI
/// error JSON, never a 3xx relayed to the client (found by tests/fuzz_streams.rs).
#[tokio::test]
async fn upstream_redirect_is_a_bad_gateway() {
    let up = FakeUpstream::start().await;
    for status in [302, 307] {
        up.enqueue(
            Reply::raw(status, "text/html", "<a href=\"/v2\">moved</a>")
                .header("location", "http://127.0.0.1:1/v2"),
        );
    }
    let gw = gw::TestGateway::start(&no_retries(&gw::openai_config("g", &up.url()))).await;
    for _ in 0..2 {
        let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
        assert_eq!(ans.status, 502);
        assert!(!ans.headers.contains_key("location"));
        assert!(ans.error()["message"].as_str().unwrap().contains("moved"));
    }
}
