//! Memory stays flat under a long streamed pass-through upload: a client sends 200 MiB through
//! `/openai/{path}` to an upstream that reads slowly (a pause every 256 KiB), with the process's
//! resident set sampled all along. Were the gateway to buffer the body, the resident set would
//! grow by its size; streamed with backpressure, it holds a few buffers. The only test of its
//! binary, so no other test's memory is counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::gw::TestGateway;

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

/// An upstream that reads a request body slowly (a 2 ms pause every 256 KiB), counts its bytes
/// into `seen`, and answers with the count and the `Content-Length` it was told.
async fn slow_reader(seen: Arc<AtomicU64>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let declared = req
                            .headers()
                            .get("content-length")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("none")
                            .to_owned();
                        let mut body = req.into_body();
                        let mut since_pause = 0usize;
                        while let Some(frame) = body.frame().await {
                            if let Some(d) = frame.unwrap().data_ref() {
                                seen.fetch_add(d.len() as u64, Ordering::Relaxed);
                                since_pause += d.len();
                                if since_pause >= 256 << 10 {
                                    since_pause = 0;
                                    tokio::time::sleep(Duration::from_millis(2)).await;
                                }
                            }
                        }
                        let text = format!(
                            r#"{{"received":{},"content_length":"{declared}"}}"#,
                            seen.load(Ordering::Relaxed)
                        );
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(text)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_upload_passes_through_in_flat_memory() {
    let seen = Arc::new(AtomicU64::new(0));
    let up = slow_reader(seen.clone()).await;
    let yaml = format!(
        "model_list:\n  - model_name: gpt\n    litellm_params:\n      model: openai/gpt-4o\n      api_base: {up}/v1\n      api_key: k\n"
    );
    // The body limit (`max_request_size_mb`) must admit the upload.
    let gw = TestGateway::start_with(&yaml, Some(TOTAL + (1 << 20))).await;

    // One 64 KiB piece sent 3200 times: the pieces share one buffer, so what grows is the
    // gateway's.
    let piece = Bytes::from(vec![b'x'; CHUNK]);
    // What the client has handed to its connection so far: the baseline is taken once 8 MiB
    // have left the client, whatever the gateway does with them (a gateway that buffered the
    // body would have read it all before the upstream saw a byte).
    let sent = Arc::new(AtomicU64::new(0));
    let counted = sent.clone();
    let pieces = std::iter::repeat_n(piece, TOTAL / CHUNK).map(move |p| {
        counted.fetch_add(p.len() as u64, Ordering::Relaxed);
        Ok::<_, Infallible>(Frame::data(p))
    });
    let body = StreamBody::new(futures_util::stream::iter(pieces));
    let req = http::Request::post(gw.url("/openai/v1/uploads/up_1/parts"))
        .header("content-type", "application/octet-stream")
        .header("content-length", TOTAL.to_string())
        .body(body)
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());

    // The resident set, sampled every 5 ms while the upload runs.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sent = sent.clone();
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut baseline = None;
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                let got = sent.load(Ordering::Relaxed);
                if baseline.is_none() && got >= 8 << 20 {
                    baseline = Some(rss_kib());
                }
                if baseline.is_some() {
                    peak = peak.max(rss_kib());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (baseline, peak)
        })
    };
    let started = Instant::now();
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    let answer = resp.into_body().collect().await.unwrap().to_bytes();
    let elapsed = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let (baseline, peak) = sampler.await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["received"], TOTAL as u64, "every byte arrived");
    assert_eq!(answer["content_length"], TOTAL.to_string());
    let baseline = baseline.expect("the upload reached 8 MiB");
    let peak = peak.max(rss_kib());
    let growth_mib = peak.saturating_sub(baseline) as f64 / 1024.0;
    eprintln!(
        "uploaded {} MiB in {:.2} s ({:.0} MiB/s); RSS baseline {} MiB, peak {} MiB, growth {growth_mib:.1} MiB",
        TOTAL >> 20,
        elapsed.as_secs_f64(),
        (TOTAL >> 20) as f64 / elapsed.as_secs_f64(),
        baseline / 1024,
        peak / 1024,
    );
    assert!(
        growth_mib < 24.0,
        "resident memory grew by {growth_mib:.1} MiB while uploading {} MiB",
        TOTAL >> 20
    );
}
