//! A streaming load client for the S1 scenario of the load benchmark (`benches/load/`).
//!
//! oha and wrk time whole responses; S1 needs the time to the first SSE event and the gap between
//! consecutive events. This client keeps `--concurrency` HTTP/1.1 connections busy with streamed
//! chat completions for `--duration` seconds, splits each body into SSE events as bytes arrive
//! (events split across reads or coalesced in one read are handled), and prints one JSON object:
//! requests/s, time-to-first-event and inter-event gap percentiles (µs), completed and failed
//! streams, and stalls (a gap longer than `--stall-ms`, or a stream that never finished).
//!
//! When events carry `"mock_sent_ns"` (the mock upstream's `stamp` option: its wall clock when it
//! sent the event), it also reports each event's trip from the mock to this client (`delay_us`)
//! and how much that trip changed from one event to the next in a stream (`jitter_us`: the
//! arrival gap minus the send gap, as an absolute value). Both leave out the mock timer's own
//! jitter, which dominates the raw gap at millisecond delays.
//!
//! ```sh
//! cargo run --release --example stream_client -- --url http://127.0.0.1:4000/v1/chat/completions \
//!     --concurrency 128 --duration 10 --header 'authorization: Bearer sk-1234'
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[derive(Default)]
struct Stats {
    ttft_us: Vec<u64>,
    gap_us: Vec<u64>,
    /// Per stamped event: arrival minus send time, in ns.
    delay_ns: Vec<u64>,
    /// Per stamped event after a stream's first: change of `delay_ns` from the previous one.
    jitter_ns: Vec<u64>,
    ok: u64,
    failed: u64,
    stalls: u64,
}

struct Job {
    uri: http::Uri,
    host: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    stall: Duration,
    deadline: Instant,
}

async fn worker(job: std::sync::Arc<Job>) -> Stats {
    let mut stats = Stats::default();
    'connect: while Instant::now() < job.deadline {
        let Ok(tcp) = tokio::net::TcpStream::connect(&job.host).await else {
            stats.failed += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let Ok((mut send, conn)) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await
        else {
            stats.failed += 1;
            continue;
        };
        tokio::spawn(conn);
        while Instant::now() < job.deadline {
            let mut req = http::Request::post(job.uri.clone())
                .header(http::header::HOST, job.host.as_str())
                .header(http::header::CONTENT_TYPE, "application/json");
            for (k, v) in &job.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            let req = req
                .body(Full::new(job.body.clone()))
                .expect("valid request");
            if send.ready().await.is_err() {
                stats.failed += 1;
                continue 'connect;
            }
            let started = Instant::now();
            let Ok(resp) = send.send_request(req).await else {
                stats.failed += 1;
                continue 'connect;
            };
            if !resp.status().is_success() {
                stats.failed += 1;
                let _ = resp.into_body().collect().await;
                continue;
            }
            let mut body = resp.into_body();
            let mut pending: Vec<u8> = Vec::with_capacity(4096);
            let mut last: Option<Instant> = None;
            let mut last_delay: Option<u64> = None;
            let mut done = false;
            let mut stalled = false;
            loop {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        let now = Instant::now();
                        let wall = wall_ns();
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        pending.extend_from_slice(&data);
                        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
                            let event: Vec<u8> = pending.drain(..end + 2).collect();
                            if event.starts_with(b"data: [DONE]") {
                                done = true;
                                continue;
                            }
                            if !event.windows(5).any(|w| w == b"data:") {
                                continue;
                            }
                            match last {
                                None => stats
                                    .ttft_us
                                    .push(now.duration_since(started).as_micros() as u64),
                                Some(prev) => {
                                    let gap = now.duration_since(prev);
                                    if gap > job.stall {
                                        stalled = true;
                                    }
                                    stats.gap_us.push(gap.as_micros() as u64);
                                }
                            }
                            last = Some(now);
                            if let Some(sent) = sent_ns(&event) {
                                let delay = wall.saturating_sub(sent);
                                stats.delay_ns.push(delay);
                                if let Some(prev) = last_delay {
                                    stats.jitter_ns.push(delay.abs_diff(prev));
                                }
                                last_delay = Some(delay);
                            }
                        }
                    }
                    Some(Err(_)) => break,
                    None => break,
                }
            }
            if done {
                stats.ok += 1;
            } else {
                stats.failed += 1;
                stalled = true;
            }
            if stalled {
                stats.stalls += 1;
            }
        }
    }
    stats
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The `"mock_sent_ns":<digits>` stamp of an event, if it has one.
fn sent_ns(event: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"mock_sent_ns\":";
    let at = event.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = event[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&event[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// Percentiles of nanosecond samples, in µs with one decimal.
fn pct_us(sorted: &[u64]) -> serde_json::Value {
    let us = |p| (pct(sorted, p) as f64 / 100.0).round() / 10.0;
    serde_json::json!({"p50": us(0.5), "p99": us(0.99), "p999": us(0.999), "n": sorted.len()})
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url =
        arg(&args, "--url").unwrap_or_else(|| "http://127.0.0.1:4000/v1/chat/completions".into());
    let concurrency: usize = arg(&args, "--concurrency")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let duration: f64 = arg(&args, "--duration")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let stall_ms: u64 = arg(&args, "--stall-ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let model = arg(&args, "--model").unwrap_or_else(|| "bench".into());
    let body = arg(&args, "--body").unwrap_or_else(|| {
        format!(r#"{{"model":"{model}","stream":true,"messages":[{{"role":"user","content":"Stream me fifty chunks."}}]}}"#)
    });
    let headers: Vec<(String, String)> = args
        .iter()
        .enumerate()
        .filter(|(_, a)| *a == "--header")
        .filter_map(|(i, _)| args.get(i + 1))
        .filter_map(|h| h.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let uri: http::Uri = url.parse().expect("--url must be a URL");
    let host = format!(
        "{}:{}",
        uri.host().expect("--url needs a host"),
        uri.port_u16().unwrap_or(80)
    );
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = arg(&args, "--threads").and_then(|n| n.parse().ok()) {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build().expect("runtime");
    let started = Instant::now();
    // Origin-form request target (`/v1/...`): some servers (uvicorn) refuse the absolute form.
    let path: http::Uri = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .expect("valid path");
    let job = std::sync::Arc::new(Job {
        uri: path,
        host,
        headers,
        body: Bytes::from(body),
        stall: Duration::from_millis(stall_ms),
        deadline: started + Duration::from_secs_f64(duration),
    });
    let all = rt.block_on(async {
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| tokio::spawn(worker(job.clone())))
            .collect();
        let mut all = Stats::default();
        for t in tasks {
            let s = t.await.expect("worker");
            all.ttft_us.extend(s.ttft_us);
            all.gap_us.extend(s.gap_us);
            all.delay_ns.extend(s.delay_ns);
            all.jitter_ns.extend(s.jitter_ns);
            all.ok += s.ok;
            all.failed += s.failed;
            all.stalls += s.stalls;
        }
        all
    });
    let elapsed = started.elapsed().as_secs_f64();
    let (mut ttft, mut gap) = (all.ttft_us, all.gap_us);
    ttft.sort_unstable();
    gap.sort_unstable();
    let (mut delay, mut jitter) = (all.delay_ns, all.jitter_ns);
    delay.sort_unstable();
    jitter.sort_unstable();
    println!(
        "{}",
        serde_json::json!({
            "concurrency": concurrency,
            "seconds": elapsed,
            "streams_ok": all.ok,
            "streams_failed": all.failed,
            "stalls": all.stalls,
            "streams_per_s": all.ok as f64 / elapsed,
            "ttft_us": {"p50": pct(&ttft, 0.5), "p99": pct(&ttft, 0.99), "p999": pct(&ttft, 0.999), "n": ttft.len()},
            "gap_us": {"p50": pct(&gap, 0.5), "p99": pct(&gap, 0.99), "p999": pct(&gap, 0.999), "n": gap.len()},
            "delay_us": pct_us(&delay),
            "jitter_us": pct_us(&jitter),
        })
    );
}
