//! Hostile clients cannot hold resources (issue 18, item 3): connections that never send a
//! byte, half an HTTP/2 preface, slow bodies and idle kept-alive connections are closed after
//! their timeouts; a client's `num_retries`, `max_fallbacks` and `x-litellm-timeout` are capped
//! by the configuration. Every fault is injected over real loopback sockets; see
//! `docs/reliability.md#hostile-clients`.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use llmgate::{
    config::Config,
    gateway::Gateway,
    provider::HttpClient,
    server::{serve, ServeConfig},
};
use serde_json::json;
use support::{gw, FakeUpstream, Reply};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

/// Serves `yaml` in-process with the server settings the config asks for, as the binary does.
async fn start(yaml: &str) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    start_with(yaml, |c| c).await
}

/// [`start`], with the server settings changed by `tune`.
async fn start_with(
    yaml: &str,
    tune: impl FnOnce(ServeConfig) -> ServeConfig,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let loaded = Config::from_yaml_str(yaml, "test").unwrap_or_else(|e| panic!("config: {e}"));
    let gateway = Gateway::from_config(&loaded.config, &HttpClient::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(
        listener,
        gateway.server(),
        tune(ServeConfig::from_config(&loaded.config).grace_period(Duration::from_secs(1))),
        async {
            let _ = rx.await;
        },
    ));
    (addr, tx)
}

fn config(upstream: &str, extra: &str) -> String {
    format!("{}{extra}", gw::openai_config("m", upstream))
}

/// Reads from `conn` until the server closes it (EOF or reset) and returns what it sent and
/// when it closed; panics if it is still open after `within`.
async fn closed_within(conn: &mut TcpStream, within: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within
            .checked_sub(started.elapsed())
            .unwrap_or_else(|| panic!("connection still open after {within:?}"));
        match tokio::time::timeout(left, conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (got, started.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "connection still open after {within:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_header_timeout() {
    let up = FakeUpstream::start().await;
    let (addr, _stop) = start(&config(
        &up.url(),
        "general_settings:\n  request_header_timeout: 0.3\n",
    ))
    .await;
    // 200 connections that never send a byte, and one that sends half the HTTP/2 preface.
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut half_preface = TcpStream::connect(addr).await.unwrap();
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    // A normal request is served meanwhile.
    let ok = gw::post_json(
        &format!("http://{addr}/v1/chat/completions"),
        &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(ok.status, 200);
    for conn in silent.iter_mut().chain(std::iter::once(&mut half_preface)) {
        let (got, after) = closed_within(conn, Duration::from_secs(5)).await;
        assert!(got.is_empty(), "nothing is answered to a silent connection");
        assert!(after < Duration::from_secs(5));
    }
}

/// An HTTP/2 client that opens its connection and then never answers the server's pings is
/// disconnected once a ping goes unanswered (without keep-alive pings it would stay); one whose
/// request body stalls gets 408.
#[tokio::test]
async fn unresponsive_http2_connections_and_stalled_streams_are_closed() {
    let up = FakeUpstream::start().await;
    let (addr, _stop) = start_with(
        &config(
            &up.url(),
            "general_settings:\n  request_body_timeout: 0.3\n",
        ),
        |c| c.http2_keep_alive(Some(Duration::from_millis(200)), Duration::from_millis(200)),
    )
    .await;
    // The preface and an empty SETTINGS frame, then silence (no SETTINGS ack, no PING ack).
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let (got, after) = closed_within(&mut conn, Duration::from_secs(5)).await;
    assert!(!got.is_empty(), "the server spoke HTTP/2 first");
    assert!(after >= Duration::from_millis(200), "{after:?}");
    // A stream whose body stalls, over a real HTTP/2 client.
    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    tokio::spawn(conn);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<
        Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>,
    >(1);
    tx.send(Ok(http_body::Frame::data(bytes::Bytes::from_static(
        b"{\"model\":",
    ))))
    .await
    .unwrap();
    let body =
        http_body_util::StreamBody::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let req = http::Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let started = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("answered in time")
        .unwrap();
    assert_eq!(resp.status(), 408);
    assert!(started.elapsed() >= Duration::from_millis(250));
    drop(tx);
}

/// An HTTP/2 client that answers pings but sends no request is disconnected after the idle
/// timeout; a request in flight longer than that timeout is not cut.
#[tokio::test]
async fn idle_http2_connections_are_closed_but_busy_ones_are_not() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::default_chat().delay(Duration::from_millis(900)));
    let (addr, _stop) = start_with(&config(&up.url(), ""), |c| {
        c.idle_timeout(Duration::from_millis(300))
    })
    .await;
    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        )))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(
        resp.status(),
        200,
        "a 900 ms call outlives a 300 ms idle timeout"
    );
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(!body.is_empty());
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the idle connection was closed")
        .unwrap()
        .ok();
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn slow_headers_and_idle_keep_alive_are_closed() {
    let up = FakeUpstream::start().await;
    let (addr, _stop) = start(&config(
        &up.url(),
        "general_settings:\n  request_header_timeout: 0.3\n",
    ))
    .await;
    // Headers that never end.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /health/liveliness HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    closed_within(&mut slow, Duration::from_secs(5)).await;
    // A kept-alive connection: answered, then closed once idle for the timeout.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health/liveliness HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (got, _) = closed_within(&mut idle, Duration::from_secs(5)).await;
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed only once idle: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_body_gets_408_and_its_connection_is_closed() {
    let up = FakeUpstream::start().await;
    let (addr, _stop) = start(&config(
        &up.url(),
        "general_settings:\n  request_body_timeout: 0.3\n",
    ))
    .await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"model\": \"m\",",
    )
    .await
    .unwrap();
    let (got, after) = closed_within(&mut conn, Duration::from_secs(5)).await;
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("\"code\":\"request_body_timeout\""), "{got}");
    assert!(after >= Duration::from_millis(250), "{after:?}");
    assert_eq!(up.hits(), 0, "nothing reached the upstream");
    // A body sent in time, in pieces, is read.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let body = br#"{"model": "m", "messages": [{"role": "user", "content": "hi"}]}"#;
    conn.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    for piece in body.chunks(20) {
        tokio::time::sleep(Duration::from_millis(30)).await;
        conn.write_all(piece).await.unwrap();
    }
    let (got, _) = closed_within(&mut conn, Duration::from_secs(5)).await;
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
}

#[tokio::test]
async fn client_num_retries_and_max_fallbacks_are_capped() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(
        500,
        json!({"error": {"message": "boom", "type": "server_error"}}),
    ));
    let yaml = format!(
        "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/x\n      api_base: {u}/v1\n      api_key: sk-up\n  - model_name: f1\n    litellm_params:\n      model: openai/x\n      api_base: {u}/v1\n      api_key: sk-up\n  - model_name: f2\n    litellm_params:\n      model: openai/x\n      api_base: {u}/v1\n      api_key: sk-up\nrouter_settings:\n  num_retries: 1\n  max_fallbacks: 1\n  allowed_fails: 1000\n  fallbacks:\n    - m: [f1, f2]\n",
        u = up.url()
    );
    let (addr, _stop) = start(&yaml).await;
    let answer = gw::post_json(
        &format!("http://{addr}/v1/chat/completions"),
        &json!({
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "num_retries": 30,
            "max_fallbacks": 10,
        }),
    )
    .await;
    assert_eq!(
        answer.status,
        500,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.error();
    // Two groups (m and one fallback), each called once plus one retry: 4 calls, not 31 × 3.
    assert_eq!(up.hits(), 4);
    assert_eq!(answer.headers["x-litellm-attempted-fallbacks"], "1");
}

#[tokio::test]
async fn client_timeout_header_is_capped_by_the_deployment_timeout() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::default_chat().delay(Duration::from_secs(10)));
    let (addr, _stop) = start(&format!(
        "{}      timeout: 0.5\nrouter_settings:\n  num_retries: 0\n",
        gw::openai_config("m", &up.url())
    ))
    .await;
    let started = Instant::now();
    let answer = gw::send(
        http::Request::post(format!("http://{addr}/v1/chat/completions"))
            .header("content-type", "application/json")
            .header("x-litellm-timeout", "12")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "timeout": 30})
                    .to_string(),
            )))
            .unwrap(),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(
        answer.status,
        408,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.error();
    assert!(took < Duration::from_secs(3), "held {took:?} against 0.5 s");
}

/// A line of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The real binary with at most 128 file descriptors (`prlimit` on the running process): 300
/// connections that never send a byte fill its table, and normal requests queued behind them
/// are answered within seconds with the default 30 s header timeout, because a failing `accept`
/// sheds the connections that have sent nothing (and idle keep-alive ones), backs off and retries.
/// Before, every normal request waited for the header timeout (all 4 timed out at 15 s).
#[tokio::test]
async fn silent_connections_cannot_starve_the_binary_of_descriptors() {
    let up = FakeUpstream::start().await;
    let cfg = support::process::TempFile::new("llmgate-hostile", "yaml", &config(&up.url(), ""));
    let bin = support::process::Binary::spawn(&cfg.0, &[]);
    let pid = bin.child.id();
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=128:128"])
        .status()
        .unwrap();
    assert!(limited.success(), "prlimit failed");
    let addr: SocketAddr = bin.addr.parse().unwrap();
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let url = bin.url("/v1/chat/completions");
    let started = Instant::now();
    let normal = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move {
            let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            tokio::time::timeout(Duration::from_secs(15), async {
                loop {
                    let req = http::Request::post(&url)
                        .header("content-type", "application/json")
                        .body(http_body_util::Full::new(bytes::Bytes::from(
                            body.to_string(),
                        )))
                        .unwrap();
                    match gw::client().request(req).await {
                        Ok(resp) => break resp.status().as_u16(),
                        // While the table is full the server sheds new connections (a reset):
                        // a client tries again, and must get through.
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            })
            .await
        })
    });
    for (i, answer) in futures_util::future::join_all(normal)
        .await
        .into_iter()
        .enumerate()
    {
        let status = answer
            .unwrap()
            .unwrap_or_else(|_| panic!("request {i} timed out\n{}", bin.log()));
        assert_eq!(status, 200, "request {i}");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "{took:?}");
    // Every silent connection is closed by the server, none answered: shed under pressure, or
    // at the (default, 30 s) header timeout once the table had room again.
    for conn in &mut silent {
        let (got, _) = closed_within(conn, Duration::from_secs(40)).await;
        assert!(got.is_empty());
    }
    assert!(
        bin.log().contains("accept failed"),
        "the descriptor table was full: {}",
        bin.log()
    );
}

/// The real binary streams from an upstream that sends one 100 MiB SSE line: the stream ends
/// with an error event and the process's peak memory stays far below the line's size.
#[tokio::test]
async fn one_huge_streamed_event_is_cut_off_without_holding_it() {
    let up = FakeUpstream::start().await;
    let mib = bytes::Bytes::from(vec![b'x'; 1 << 20]);
    let mut pieces = vec![bytes::Bytes::from_static(b"data: ")];
    pieces.extend(std::iter::repeat_n(mib, 100));
    up.set_default(Reply::chunked(
        200,
        "text/event-stream",
        pieces,
        Duration::ZERO,
    ));
    let cfg = support::process::TempFile::new(
        "llmgate-hostile",
        "yaml",
        &gw::openai_config("m", &up.url()),
    );
    let bin = support::process::Binary::spawn(&cfg.0, &[]);
    let pid = bin.child.id();
    let before = status_kib(pid, "VmRSS");
    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        gw::post_json(
            &bin.url("/v1/chat/completions"),
            &json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        ),
    )
    .await
    .expect("the stream ends");
    let text = String::from_utf8_lossy(&answer.body);
    assert!(text.contains("larger than 16 MiB"), "{text}");
    let peak = status_kib(pid, "VmHWM");
    assert!(
        peak < before + 64 * 1024,
        "peak RSS {peak} KiB against {before} KiB before a 100 MiB event"
    );
}

/// Sends the headers of a chat request announcing a 31 MiB body (and none of it) with `key`;
/// returns what the server answered before it closed the connection.
async fn headers_only(addr: SocketAddr, key: Option<&str>) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let auth = key.map_or(String::new(), |k| format!("authorization: Bearer {k}\r\n"));
    conn.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            31 << 20
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (got, _) = closed_within(&mut conn, Duration::from_secs(5)).await;
    String::from_utf8_lossy(&got).into_owned()
}

/// A caller without a valid key (none, wrong, unknown virtual key) is answered 401 on its
/// headers alone: the body is never waited for, and the connection is closed. A valid key's
/// body is read as before.
#[tokio::test]
async fn a_request_without_a_valid_key_costs_its_headers_only() {
    use governance_common::{new_key, Gov, MASTER};
    let up = FakeUpstream::start().await;
    let gov = Gov::start(
        &governance_common::config("m", &up.url(), ""),
        llmgate::governance::BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let (virtual_key, _) = new_key(&gov.url(""), json!({})).await;
    for key in [
        None,
        Some("sk-wrong"),
        Some("sk-unknown-virtual-key-0123456789"),
    ] {
        let got = headers_only(gov.addr, key).await;
        assert!(got.starts_with("HTTP/1.1 401"), "{key:?}: {got}");
        assert!(got.contains("auth_error"), "{got}");
        assert!(
            got.to_ascii_lowercase().contains("connection: close"),
            "{got}"
        );
    }
    assert_eq!(up.hits(), 0);
    // Valid keys (master and virtual) send their body and are answered.
    for key in [MASTER, virtual_key.as_str()] {
        let answer = governance_common::chat(&gov.url(""), key, "m").await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    // The database-free stack (master key only) refuses at the edge too.
    let (addr, _stop) = start(&config(
        &up.url(),
        "general_settings:\n  master_key: sk-master-only-0123456789\n",
    ))
    .await;
    let got = headers_only(addr, Some("sk-wrong")).await;
    assert!(got.starts_with("HTTP/1.1 401"), "{got}");
}

/// The real binary with a master key: 24 concurrent 31 MiB bodies without a key leave its
/// peak memory far below what buffering them would take (24 × 31 MiB = 744 MiB).
#[tokio::test]
async fn unauthenticated_bodies_are_not_buffered_by_the_binary() {
    let up = FakeUpstream::start().await;
    // The SQLite store goes beside the config, in a directory of its own.
    let dir = governance_common::TempDir::new();
    let cfg = dir.0.join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "{}general_settings:\n  master_key: sk-master-0123456789\n",
            gw::openai_config("m", &up.url()),
        ),
    )
    .unwrap();
    let bin = support::process::Binary::spawn(&cfg, &[]);
    let pid = bin.child.id();
    let before = status_kib(pid, "VmRSS");
    let addr: SocketAddr = bin.addr.parse().unwrap();
    let body = bytes::Bytes::from(vec![b'a'; 31 << 20]);
    let senders = (0..24).map(|_| {
        let body = body.clone();
        tokio::spawn(async move {
            let mut conn = TcpStream::connect(addr).await.unwrap();
            conn.write_all(
                format!(
                    "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
            // The server may close before all of it is written: that is the point.
            let _ = conn.write_all(&body).await;
            let mut head = [0u8; 12];
            let _ = conn.read(&mut head).await;
        })
    });
    tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::future::join_all(senders),
    )
    .await
    .expect("every sender finished");
    let peak = status_kib(pid, "VmHWM");
    assert!(
        peak < before + 128 * 1024,
        "peak RSS {peak} KiB against {before} KiB before 24 unauthenticated 31 MiB bodies"
    );
}
