//! Response cache over Redis: the shared scenarios against the Redis that `bash .ci/test` starts
//! (`LLMGATE_TEST_REDIS_URL`), plus faults: a corrupt entry, Redis down from the start, and a
//! Redis of our own killed mid-test.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cache_support/mod.rs"]
mod cache_support;
mod support;

use std::time::{Duration, Instant};

use cache_support as s;
use serde_json::json;
use support::FakeUpstream;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn redis_url() -> String {
    match std::env::var("LLMGATE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "LLMGATE_TEST_REDIS_URL is not set: these tests need a Redis; run them with `bash .ci/test`, which starts one"
        ),
    }
}

/// `cache_params` for the test Redis, with a namespace of the test's own.
fn params(test: &str, extra: &str) -> String {
    format!(
        "{{type: redis, url: \"{}\", namespace: {}{extra}}}",
        redis_url(),
        s::unique_ns(test)
    )
}

#[tokio::test]
async fn redis_hit_and_miss() {
    s::hit_and_miss(&params("hit", "")).await;
}

#[tokio::test]
async fn redis_ttl_expiry() {
    s::ttl_expiry(&params("ttl", "")).await;
}

#[tokio::test]
async fn redis_no_cache_and_no_store() {
    s::no_cache_and_no_store(&params("nocache", "")).await;
}

#[tokio::test]
async fn redis_namespaces() {
    s::namespaces(&params("ns", "")).await;
}

#[tokio::test]
async fn redis_tenant_isolation() {
    s::tenant_isolation(&params("tenant", ""), &params("shared", ", scope: shared")).await;
}

#[tokio::test]
async fn redis_stream_replay() {
    s::stream_replay(&params("stream", "")).await;
}

#[tokio::test]
async fn redis_cut_stream_not_stored() {
    s::cut_stream_not_stored(&params("cut", "")).await;
}

#[tokio::test]
async fn redis_embeddings_per_item() {
    s::embeddings_per_item(&params("emb", "")).await;
}

/// Sends one RESP command to `addr` and returns the raw reply.
async fn redis_cmd(addr: &str, args: &[&[u8]]) -> Vec<u8> {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    conn.write_all(&out).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("redis answers")
        .unwrap();
    buf.truncate(n);
    buf
}

fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn redis_corrupt_entry_is_a_miss_and_deleted() {
    let up = FakeUpstream::start().await;
    let gw = s::CacheGateway::start(&up.url(), &params("corrupt", "")).await;
    let q = json!({"model": "g", "messages": [{"role": "user", "content": "corrupt me"}]});
    let a = gw.chat(&q).await;
    assert_eq!(s::status(&a), "miss");
    let key = s::header(&a, "x-litellm-cache-key").unwrap().to_owned();
    gw.cache.flushed().await;
    assert_eq!(s::status(&gw.chat(&q).await), "hit");

    let addr = host_port(&redis_url());
    let reply = redis_cmd(&addr, &[b"SET", key.as_bytes(), b"{not an entry"]).await;
    assert_eq!(reply, b"+OK\r\n");
    let b = gw.chat(&q).await;
    assert_eq!((b.status, s::status(&b)), (200, "miss"));
    gw.cache.flushed().await;
    assert_eq!(gw.cache.stats().corrupt, 1);
    assert_eq!(up.hits(), 2);
    // The corrupt value was deleted, and the fresh answer stored in its place.
    assert_eq!(s::status(&gw.chat(&q).await), "hit");
    assert_eq!(gw.cache.stats().errors, 0);
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn redis_down_from_the_start_requests_go_on_uncached() {
    let up = FakeUpstream::start().await;
    let port = free_port();
    let gw = s::CacheGateway::start(
        &up.url(),
        &format!("{{type: redis, host: 127.0.0.1, port: {port}}}"),
    )
    .await;
    for i in 0..3 {
        let t = Instant::now();
        let a = gw
            .chat(&json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}))
            .await;
        assert_eq!(a.status, 200, "request {i}");
        assert_eq!(s::status(&a), "miss");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
    gw.cache.flushed().await;
    assert_eq!(up.hits(), 3);
    assert!(gw.cache.stats().errors >= 1, "{:?}", gw.cache.stats());
}

/// A redis-server child process of this test's own, killed when dropped.
struct OwnRedis {
    child: tokio::process::Child,
    port: u16,
}

impl OwnRedis {
    async fn start() -> Self {
        let port = free_port();
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed (Debian: apt-get install redis-server)");
        // Wait until it answers PING (an external process: poll its port, not our own work).
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = tokio::net::TcpStream::connect(&addr).await {
                if c.write_all(b"PING\r\n").await.is_ok() {
                    let mut buf = [0u8; 16];
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(1), c.read(&mut buf)).await
                    {
                        if buf[..n].starts_with(b"+PONG") {
                            break;
                        }
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, port }
    }
}

#[tokio::test]
async fn redis_killed_mid_test_traffic_continues() {
    let mut redis = OwnRedis::start().await;
    let up = FakeUpstream::start().await;
    let gw = s::CacheGateway::start(
        &up.url(),
        &format!("{{type: redis, host: 127.0.0.1, port: {}}}", redis.port),
    )
    .await;
    let q =
        |n: u32| json!({"model": "g", "messages": [{"role": "user", "content": format!("q{n}")}]});
    assert_eq!(s::status(&gw.chat(&q(1)).await), "miss");
    gw.cache.flushed().await;
    assert_eq!(s::status(&gw.chat(&q(1)).await), "hit");
    assert_eq!(up.hits(), 1);

    redis.child.kill().await.unwrap();

    for n in 0..6 {
        let t = Instant::now();
        let a = gw.chat(&q(n % 2 + 1)).await;
        assert_eq!(a.status, 200, "request {n} after the kill");
        assert_eq!(s::status(&a), "miss", "request {n}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "request {n} took {:?}",
            t.elapsed()
        );
    }
    gw.cache.flushed().await;
    assert_eq!(up.hits(), 7);
    let stats = gw.cache.stats();
    assert!(stats.errors >= 1, "{stats:?}");
    assert_eq!(stats.hits, 1);
}
