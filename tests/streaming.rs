//! Streaming at the edge: SSE framing, errors before and after the first chunk, and a client
//! disconnect that cancels the upstream call.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http_body_util::BodyExt as _;
use serde_json::json;
use support::{gw, FakeUpstream, Reply};

fn stream_req(model: &str) -> serde_json::Value {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn client_disconnect_mid_stream_cancels_the_upstream_call() {
    let up = FakeUpstream::start().await;
    let first = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n";
    up.enqueue(Reply::sse_then_hang(first));
    let gw = gw::TestGateway::start(&gw::openai_config("g", &up.url())).await;
    let resp = gw::open_stream(&gw.url("/v1/chat/completions"), &stream_req("g")).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // Read the first chunk, then hang up.
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first chunk in time")
        .expect("a frame")
        .expect("no error");
    let data = frame.into_data().expect("data frame");
    assert!(String::from_utf8_lossy(&data).contains("Hel"));
    drop(body);
    assert!(
        up.wait_for_disconnect(Duration::from_secs(5)).await,
        "the upstream never saw the connection drop"
    );
}

#[tokio::test]
async fn error_before_the_first_chunk_is_an_http_error() {
    let up = FakeUpstream::start().await;
    // A stream whose first event is an error object.
    up.enqueue(Reply::sse("data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n"));
    // One exchange: with retries on, the retry would meet the fake's default reply instead.
    let cfg = format!(
        "{}router_settings:\n  num_retries: 0\n",
        gw::openai_config("g", &up.url())
    );
    let gw = gw::TestGateway::start(&cfg).await;
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &stream_req("g")).await;
    assert_eq!(ans.status, 500);
    assert_eq!(ans.error()["message"], "overloaded");
}

#[tokio::test]
async fn error_after_the_first_chunk_is_an_error_event_then_done() {
    let up = FakeUpstream::start().await;
    let sse = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"partial\"},\"finish_reason\":null}]}\n\n",
        "data: {\"error\":{\"message\":\"upstream broke\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
    );
    up.enqueue(Reply::sse(sse));
    let gw = gw::TestGateway::start(&gw::openai_config("g", &up.url())).await;
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &stream_req("g")).await;
    assert_eq!(ans.status, 200);
    let data = ans.sse_data();
    assert_eq!(data.len(), 3, "{data:?}");
    assert!(data[0].contains("partial"));
    let err: serde_json::Value = serde_json::from_str(&data[1]).unwrap();
    assert_eq!(err["error"]["message"], "upstream broke");
    assert_eq!(data[2], "[DONE]");
}

#[tokio::test]
async fn cut_upstream_stream_ends_with_an_error_event() {
    let up = FakeUpstream::start().await;
    // The upstream sends half an event and closes without [DONE].
    up.enqueue(Reply::raw(
        200,
        "text/event-stream",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":null}]}\n\ndata: {\"id\":",
    ));
    let gw = gw::TestGateway::start(&gw::openai_config("g", &up.url())).await;
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &stream_req("g")).await;
    let data = ans.sse_data();
    assert_eq!(data.len(), 3, "{data:?}");
    assert!(data[0].contains("\"ok\""), "{data:?}");
    let err: serde_json::Value = serde_json::from_str(&data[1]).unwrap();
    assert_eq!(err["error"]["type"], "api_connection_error", "{data:?}");
    assert_eq!(data[2], "[DONE]");
}

/// A streamed answer hands its upstream connection back once the provider has said `[DONE]`:
/// the next calls reuse it instead of opening one per stream (the SSE reader stops at `[DONE]`
/// and never asks for the chunked body's end; the pool still gets the connection).
#[tokio::test]
async fn sequential_streams_reuse_one_upstream_connection() {
    let up = FakeUpstream::start().await;
    let events = |word: &str| {
        format!(
            "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{word}\"}},\"finish_reason\":null}}]}}\n\n\
             data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n\
             data: [DONE]\n\n"
        )
    };
    for word in ["one", "two", "three"] {
        up.enqueue(Reply::chunked(
            200,
            "text/event-stream",
            vec![bytes::Bytes::from(events(word))],
            Duration::ZERO,
        ));
    }
    let gw = gw::TestGateway::start(&gw::openai_config("g", &up.url())).await;
    for word in ["one", "two", "three"] {
        let ans = gw::post_json(&gw.url("/v1/chat/completions"), &stream_req("g")).await;
        assert_eq!(ans.status, 200);
        let data = ans.sse_data();
        assert!(data[0].contains(word), "{data:?}");
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    }
    assert_eq!(up.hits(), 3);
    assert_eq!(
        up.connections(),
        1,
        "each stream opened its own upstream connection"
    );
}
