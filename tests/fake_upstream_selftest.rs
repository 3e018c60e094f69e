//! Self-tests for the fake upstream in `tests/support/mod.rs`.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{chat_sse, random_cuts, FakeUpstream, Reply};

const T: Duration = Duration::from_secs(5);

fn h1_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn h2_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

fn post(url: String, body: &str) -> Request<Full<Bytes>> {
    Request::post(url)
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-upstream")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("valid request")
}

/// Sends `req` and returns status, headers and every body frame separately.
async fn send_frames(
    client: &Client<HttpConnector, Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, Vec<Bytes>) {
    let resp = client.request(req).await.expect("request sent");
    let (parts, mut body) = resp.into_parts();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        // Skip empty frames (HTTP/2 may end a stream with an empty DATA frame).
        if let Ok(data) = frame.expect("body frame").into_data() {
            if !data.is_empty() {
                frames.push(data);
            }
        }
    }
    (parts.status, parts.headers, frames)
}

fn concat(frames: &[Bytes]) -> Vec<u8> {
    frames.iter().flat_map(|b| b.iter().copied()).collect()
}

#[tokio::test]
async fn json_reply_and_recorded_request() {
    let up = FakeUpstream::start().await;
    assert!(up.url().starts_with("http://127.0.0.1:"));
    assert_eq!(up.url(), format!("http://{}", up.addr()));
    up.enqueue(Reply::json(200, json!({"ok": true})).header("x-request-id", "abc"));

    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"héllo"}]}"#;
    let (status, headers, frames) = send_frames(
        &h1_client(),
        post(format!("{}/v1/chat/completions?x=1", up.url()), body),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-request-id"], "abc");
    assert_eq!(concat(&frames), br#"{"ok":true}"#);

    assert_eq!(up.hits(), 1);
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, http::Method::POST);
    assert_eq!(r.path(), "/v1/chat/completions");
    assert_eq!(r.uri.query(), Some("x=1"));
    assert_eq!(r.version, Version::HTTP_11);
    assert_eq!(r.header("authorization"), Some("Bearer sk-upstream"));
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.body_str(), body);
    assert_eq!(r.json()["messages"][0]["content"], "héllo");
    assert_eq!(up.last_request().unwrap().body, r.body);
}

#[tokio::test]
#[should_panic(expected = "is not valid JSON")]
async fn recorded_json_panics_clearly() {
    let up = FakeUpstream::start().await;
    send_frames(&h1_client(), post(up.url(), "not json")).await;
    let _ = up.requests()[0].json();
}

#[tokio::test]
async fn queue_is_fifo_then_default() {
    let up = FakeUpstream::start().await;
    up.enqueue(Reply::json(201, json!({"n": 1})));
    up.enqueue(Reply::raw(503, "text/plain", "busy"));
    let c = h1_client();

    let (s1, _, b1) = send_frames(&c, post(up.url(), "{}")).await;
    let (s2, h2, b2) = send_frames(&c, post(up.url(), "{}")).await;
    let (s3, _, b3) = send_frames(&c, post(up.url(), "{}")).await;
    assert_eq!((s1.as_u16(), concat(&b1)), (201, br#"{"n":1}"#.to_vec()));
    assert_eq!((s2.as_u16(), concat(&b2)), (503, b"busy".to_vec()));
    assert_eq!(h2["content-type"], "text/plain");
    assert_eq!(s3, 200);
    let v: serde_json::Value = serde_json::from_slice(&concat(&b3)).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .len()
            > 1
    );
    assert_eq!(v["usage"]["total_tokens"], 12);

    up.set_default(Reply::raw(418, "text/plain", "teapot"));
    let (s4, _, b4) = send_frames(&c, post(up.url(), "{}")).await;
    assert_eq!((s4.as_u16(), concat(&b4)), (418, b"teapot".to_vec()));
    assert_eq!(up.hits(), 4);
    assert_eq!(up.connections(), 1, "the pooled h1 connection is reused");

    up.reset();
    assert_eq!((up.hits(), up.requests().len()), (0, 0));
}

#[tokio::test]
async fn delay_holds_back_headers() {
    let up = FakeUpstream::start().await;
    up.enqueue(Reply::raw(200, "text/plain", "late").delay(Duration::from_millis(300)));
    let start = Instant::now();
    let (status, _, body) = send_frames(&h1_client(), post(up.url(), "{}")).await;
    assert_eq!(status, 200);
    assert_eq!(concat(&body), b"late");
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn split_at_delivers_exact_bytes_in_pieces() {
    let up = FakeUpstream::start().await;
    let text = chat_sse(&["Hé", "llo, ", "wörld ", "🦀", "!"]);
    let len = text.len();
    // Offsets inside the 4-byte crab and right after the first byte of "é" are included.
    let crab = text.find('🦀').unwrap();
    let e_acute = text.find('é').unwrap();
    let mut cuts = random_cuts(len, 7, 25);
    cuts.extend([crab + 1, crab + 2, e_acute + 1, 0, len, len + 10]);
    up.enqueue(Reply::split_at(
        200,
        "text/event-stream",
        text.clone(),
        &cuts,
    ));

    for client in [h1_client(), h2_client()] {
        if up.hits() == 1 {
            up.enqueue(Reply::split_at(
                200,
                "text/event-stream",
                text.clone(),
                &cuts,
            ));
        }
        let (status, headers, frames) = send_frames(&client, post(up.url(), "{}")).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "text/event-stream");
        assert!(headers.get("content-length").is_none());
        assert_eq!(concat(&frames), text.as_bytes(), "exact bytes");
        assert!(
            frames.len() > 5,
            "pieces arrive separately: {}",
            frames.len()
        );
        assert!(
            frames.iter().any(|f| std::str::from_utf8(f).is_err()),
            "some piece ends mid-UTF-8"
        );
    }
    assert_eq!(up.disconnects(), 0);
}

#[tokio::test]
async fn chunked_writes_each_chunk_with_gap() {
    let up = FakeUpstream::start().await;
    let chunks = vec![
        Bytes::from_static(b"data: 1\n\n"),
        Bytes::from_static(b"data: 2\n\n"),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ];
    up.enqueue(Reply::chunked(
        200,
        "text/event-stream",
        chunks.clone(),
        Duration::from_millis(60),
    ));
    let start = Instant::now();
    let (_, _, frames) = send_frames(&h1_client(), post(up.url(), "{}")).await;
    assert!(start.elapsed() >= Duration::from_millis(120));
    assert_eq!(frames, chunks);
}

#[tokio::test]
async fn sse_whole_text_and_h2c() {
    let up = FakeUpstream::start().await;
    let text = chat_sse(&["a", "b"]);
    up.enqueue(Reply::sse(text.clone()));
    let (status, headers, frames) = send_frames(&h2_client(), post(up.url(), "{}")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(concat(&frames), text.as_bytes());
    let r = up.last_request().unwrap();
    assert_eq!(r.version, Version::HTTP_2);
    assert_eq!(r.path(), "/");
    assert!(text.ends_with("data: [DONE]\n\n"));
    // A stream read to its end is not a disconnect.
    assert!(!up.wait_for_disconnect(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn wait_for_hits_wakes_and_times_out() {
    let up = FakeUpstream::start().await;
    assert!(!up.wait_for_hits(1, Duration::from_millis(50)).await);
    let waiter = {
        let up = up.clone();
        tokio::spawn(async move { up.wait_for_hits(2, T).await })
    };
    let c = h1_client();
    send_frames(&c, post(up.url(), "{}")).await;
    send_frames(&c, post(up.url(), "{}")).await;
    assert!(waiter.await.unwrap());
    assert!(up.wait_for_hits(2, Duration::ZERO).await, "already reached");
}

#[tokio::test]
async fn disconnect_detected_h1_raw_tcp() {
    let up = FakeUpstream::start().await;
    up.enqueue(Reply::sse_then_hang("data: first\n\n"));
    let mut sock = TcpStream::connect(up.addr()).await.unwrap();
    sock.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("data: first") {
        let n = tokio::time::timeout(T, sock.read(&mut buf))
            .await
            .expect("first event within 5s")
            .unwrap();
        assert!(
            n > 0,
            "server closed early: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&got).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(up.wait_for_hits(1, T).await);
    // Still streaming: no disconnect yet.
    assert!(!up.wait_for_disconnect(Duration::from_millis(100)).await);

    drop(sock);
    assert!(up.wait_for_disconnect(T).await, "disconnect seen within 5s");
    assert_eq!(up.disconnects(), 1);
}

#[tokio::test]
async fn disconnect_detected_h2_stream_reset() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::sse_then_hang("data: first\n\n"));
    let client = h2_client();
    let resp = client.request(post(up.url(), "{}")).await.unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "data: first\n\n");
    assert_eq!(up.disconnects(), 0);

    drop(body); // RST_STREAM(CANCEL); the connection itself stays up.
    assert!(up.wait_for_disconnect(T).await);

    // Two more hanging streams on the same connection, both cancelled.
    let r1 = client.request(post(up.url(), "{}")).await.unwrap();
    let r2 = client.request(post(up.url(), "{}")).await.unwrap();
    drop((r1, r2));
    assert!(up.wait_for_disconnects(3, T).await);
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn server_stops_when_last_handle_drops() {
    let up = FakeUpstream::start().await;
    let addr = up.addr();
    let clone = up.clone();
    drop(up);
    TcpStream::connect(addr)
        .await
        .expect("still up while a clone lives");
    drop(clone);
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "listener closed after the last handle dropped");
}

#[test]
fn random_cuts_are_deterministic_sorted_unique_in_range() {
    let a = random_cuts(1000, 42, 30);
    assert_eq!(a, random_cuts(1000, 42, 30));
    assert_ne!(a, random_cuts(1000, 43, 30));
    assert_eq!(a.len(), 30);
    assert!(a.windows(2).all(|w| w[0] < w[1]));
    assert!(a.iter().all(|&c| (1..1000).contains(&c)));
    assert_eq!(random_cuts(5, 0, 100), vec![1, 2, 3, 4]);
    assert!(random_cuts(1, 0, 3).is_empty());
    assert!(random_cuts(0, 0, 3).is_empty());
    assert!(random_cuts(100, 9, 0).is_empty());
}
