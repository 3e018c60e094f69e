//! Fuzzing the served gateway over a real socket: raw HTTP/1.1 request bytes (request lines,
//! headers, framing and bodies, well-formed or not, and arbitrary bytes) written to a gateway
//! serving the `mock/` provider on loopback.
//!
//! Properties: whatever a client writes, an answer that comes back is HTTP/1.x with a 2xx or a
//! 4xx (the `mock/` provider never fails), a gateway 4xx carries OpenAI error JSON, and the
//! gateway still answers a valid request afterwards.
//!
//! Cases: `PROPTEST_CASES`, or 64 when unset (each case opens two connections). A long run:
//! `PROPTEST_CASES=5000 cargo test --test fuzz_socket` (see docs/reliability.md).

#![allow(clippy::unwrap_used)]

mod support;

use std::{net::SocketAddr, sync::LazyLock, time::Duration};

use proptest::prelude::*;
use serde_json::{json, Value};
use support::gw::TestGateway;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

/// The gateway: one `mock/` model group, kept for the whole test binary.
static GATEWAY: LazyLock<SocketAddr> = LazyLock::new(|| {
    RT.block_on(async {
        let gw = TestGateway::start_with(
            "model_list:\n  - model_name: m\n    litellm_params: {model: mock/x}\n",
            Some(4096),
        )
        .await;
        // Served until the process ends.
        Box::leak(Box::new(gw)).addr
    })
});

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// Writes `bytes` and reads what comes back until the server closes, or for `wait` (a request
/// whose body never fully arrives is waited for by the server). The write half stays open: the
/// server, as hyper's default, drops a connection whose client half-closes mid-request.
async fn exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may close first (a refused head): a failed write is not the property's concern.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    out
}

/// The status and body of the first final response in `raw` (after any `100 Continue`), if
/// there is one.
fn first_response(mut raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    while raw.starts_with(b"HTTP/1.1 100 ") {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        raw = &raw[end + 4..];
    }
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..head_end]).ok()?;
    let status_line = head.lines().next()?;
    let mut parts = status_line.split(' ');
    let version = parts.next();
    assert!(
        matches!(version, Some("HTTP/1.1" | "HTTP/1.0")),
        "{status_line}"
    );
    let status: u16 = parts.next()?.parse().ok()?;
    let len = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let body = &raw[head_end + 4..];
    let body = len.map_or(body, |n| &body[..n.min(body.len())]);
    Some((status, body.to_vec()))
}

fn request_bytes() -> impl Strategy<Value = Vec<u8>> {
    // Mostly well-formed heads, so that most requests reach the gateway, not only hyper.
    let method = prop_oneof![
        8 => proptest::sample::select(vec!["POST", "GET", "HEAD"]),
        1 => proptest::sample::select(vec!["PUT", "OPTIONS", "PO ST", ""]),
    ];
    let path = prop_oneof![
        6 => proptest::sample::select(vec![
            "/v1/chat/completions", "/chat/completions", "/v1/embeddings", "/v1/models",
            "/health/liveliness", "*", "http://x/v1/models", "/v1/chat/completions?x=%zz",
        ])
        .prop_map(str::to_owned),
        1 => "/[!-~]{0,24}",
        1 => "[ -~]{0,24}",
    ];
    let version = prop_oneof![
        8 => Just("HTTP/1.1"),
        1 => proptest::sample::select(vec!["HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x", ""]),
    ];
    let header = prop_oneof![
        6 => proptest::sample::select(vec![
            "Content-Type: application/json", "Transfer-Encoding: chunked",
            "Transfer-Encoding: gzip, chunked", "Content-Length: 0", "Content-Length: 5",
            "Content-Length: 99999999999999999999", "Content-Length: -1", "Content-Length: 1, 2",
            "Expect: 100-continue", "Authorization: Bearer sk-x", "x-litellm-timeout: 0.001",
            "x-litellm-call-id: \u{7f}", "Cache-Control: no-cache", "Host: x", "Host:", ": x",
            "Connection: keep-alive", "Upgrade: h2c",
        ])
        .prop_map(str::to_owned),
        2 => "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,12}: [ -~]{0,24}",
        1 => "[!-9;-~]{1,12}: [ -~]{0,24}",
    ];
    let body = prop_oneof![
        (any::<String>(), any::<bool>()).prop_map(|(content, stream)| serde_json::to_vec(&json!({
            "model": "m", "stream": stream, "messages": [{"role": "user", "content": content}],
        }))
        .unwrap()),
        Just(br#"{"model":"m","input":["a","b"]}"#.to_vec()),
        Just(b"5\r\nhello\r\n0\r\n\r\n".to_vec()),
        Just(b"zz\r\nhello\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..256),
    ];
    let structured = (
        method,
        path,
        version,
        proptest::collection::vec(header, 0..4),
        body,
        any::<bool>(),
    )
        .prop_map(|(method, path, version, headers, body, with_length)| {
            let mut out =
                format!("{method} {path} {version}\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
            if with_length {
                out.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            for h in headers {
                out.push_str(&h);
                out.push_str("\r\n");
            }
            out.push_str("\r\n");
            let mut out = out.into_bytes();
            out.extend_from_slice(&body);
            out
        });
    prop_oneof![
        4 => structured,
        1 => proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Any bytes from a client: a 2xx or 4xx answer (OpenAI error JSON when the gateway made
    /// it), or a closed connection; and the gateway answers the next client.
    #[test]
    fn any_request_bytes_over_a_socket(bytes in request_bytes()) {
        let addr = *GATEWAY;
        let raw = RT.block_on(exchange(addr, &bytes, Duration::from_millis(300)));
        if let Some((status, body)) = first_response(&raw) {
            prop_assert!((200..300).contains(&status) || (400..500).contains(&status), "{}: {}", status, String::from_utf8_lossy(&raw));
            // hyper's own refusals (a malformed head) have no body; the gateway's are JSON.
            if status >= 400 && !body.is_empty() {
                let v: Value = serde_json::from_slice(&body).map_err(|e| TestCaseError::fail(format!("{status}: {e}: {}", String::from_utf8_lossy(&raw))))?;
                prop_assert!(v["error"]["message"].is_string(), "{}", v);
            }
        }
        let ok = RT.block_on(exchange(addr, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", Duration::from_secs(5)));
        prop_assert_eq!(first_response(&ok).map(|(s, _)| s), Some(200), "{}", String::from_utf8_lossy(&ok));
    }
}
