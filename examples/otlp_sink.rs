//! A minimal OTLP/HTTP receiver for the load benchmark (`scripts/ab-otel.sh`): answers
//! `POST /v1/traces` with 200 after decoding the `ExportTraceServiceRequest`, and counts the
//! spans; `GET /count` answers the count, so a run can compare it with the requests it sent.
//!
//! `cargo run --example otlp_sink -- 4318`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(4318);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let spans = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let spans = spans.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let spans = spans.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let bytes = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let (status, body) = match (parts.method.as_str(), parts.uri.path()) {
                            ("POST", "/v1/traces") => {
                                match ExportTraceServiceRequest::decode(bytes) {
                                    Ok(req) => {
                                        let n: usize = req
                                            .resource_spans
                                            .iter()
                                            .flat_map(|r| &r.scope_spans)
                                            .map(|s| s.spans.len())
                                            .sum();
                                        spans.fetch_add(n as u64, Ordering::Relaxed);
                                        (
                                            200,
                                            Bytes::from(
                                                ExportTraceServiceResponse::default()
                                                    .encode_to_vec(),
                                            ),
                                        )
                                    }
                                    Err(_) => (400, Bytes::new()),
                                }
                            }
                            ("GET", "/count") => {
                                (200, Bytes::from(spans.load(Ordering::Relaxed).to_string()))
                            }
                            _ => (404, Bytes::new()),
                        };
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .status(status)
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(body))
                                .unwrap(),
                        )
                    }
                });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}
