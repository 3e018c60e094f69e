//! Memory stays flat under a long streamed pass-through: 200 MiB of server-sent events relayed
//! from a fake upstream through `/anthropic/{path}` to a client that reads as it goes, with the
//! process's resident set sampled all along. The only test of its binary, so no other test's
//! memory is counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use support::{
    gw::{client, TestGateway},
    FakeUpstream, Reply,
};

/// Resident set size of this process, in KiB (`VmRSS` in `/proc/self/status`).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

const CHUNK: usize = 64 << 10;
const TOTAL: usize = 200 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_stream_passes_through_in_flat_memory() {
    // One 64 KiB piece of SSE events, sent 3200 times: the fake upstream holds it once (the
    // pieces share one buffer), so what grows is the gateway's or the client's.
    let event = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}\n\n";
    let mut piece = String::with_capacity(CHUNK);
    while piece.len() + event.len() <= CHUNK {
        piece.push_str(event);
    }
    while piece.len() < CHUNK {
        piece.push('\n');
    }
    let piece = Bytes::from(piece);
    let pieces = vec![piece; TOTAL / CHUNK];

    let up = FakeUpstream::start().await;
    up.enqueue(Reply::chunked(
        200,
        "text/event-stream",
        pieces,
        Duration::ZERO,
    ));
    let yaml = format!(
        "model_list:\n  - model_name: claude\n    litellm_params:\n      model: anthropic/claude-x\n      api_base: {}\n      api_key: k\n",
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;

    let req = http::Request::post(gw.url("/anthropic/v1/messages"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"claude-x","stream":true,"max_tokens":1,"messages":[]}"#,
        )))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // The baseline once the stream runs (connections, buffers and the runtime are set up).
    let mut received = 0usize;
    let mut baseline = None;
    let mut peak = 0;
    let started = Instant::now();
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            received += data.len();
        }
        if baseline.is_none() && received >= 8 << 20 {
            baseline = Some(rss_kib());
        }
        if received % (4 << 20) < CHUNK {
            peak = peak.max(rss_kib());
        }
    }
    let elapsed = started.elapsed();
    peak = peak.max(rss_kib());
    let baseline = baseline.expect("the stream reached 8 MiB");
    assert_eq!(received, TOTAL, "every byte arrived");
    let growth_mib = peak.saturating_sub(baseline) as f64 / 1024.0;
    eprintln!(
        "passed {} MiB in {:.2} s ({:.0} MiB/s); RSS baseline {} MiB, peak {} MiB, growth {growth_mib:.1} MiB",
        TOTAL >> 20,
        elapsed.as_secs_f64(),
        (TOTAL >> 20) as f64 / elapsed.as_secs_f64(),
        baseline / 1024,
        peak / 1024,
    );
    assert!(
        growth_mib < 24.0,
        "resident memory grew by {growth_mib:.1} MiB while streaming {} MiB",
        TOTAL >> 20
    );
}
