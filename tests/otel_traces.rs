//! OpenTelemetry traces (issue 22, item 3): real requests over sockets through the gateway, their
//! spans exported over OTLP to a real receiver in the test (HTTP/protobuf: a hyper server that
//! decodes `ExportTraceServiceRequest`; gRPC: the generated tonic `TraceService` served over
//! h2c), and the tree checked: the client's trace id kept, the request span a child of the
//! client's `traceparent`, one attempt span per attempt under it, GenAI attributes, error
//! status, and the upstream's `traceparent` naming the attempt span.

#![cfg(all(feature = "otel", feature = "gateway"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use llmgate::{
    config::Config,
    gateway::GatewayBuilder,
    provider::HttpClient,
    server::{serve, ServeConfig},
    telemetry::{Otel, OtelConfig},
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        trace_service_server::{TraceService, TraceServiceServer},
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    },
    common::v1::any_value::Value as AnyValue,
    trace::v1::{span::SpanKind, status::StatusCode, Span},
};
use prost::Message as _;
use serde_json::json;
use support::{chat_completion, chat_sse, gw, FakeUpstream, Reply};

// ---------------------------------------------------------------------------------------------
// The OTLP receivers
// ---------------------------------------------------------------------------------------------

/// What a receiver got: every span, the resource attributes of the last export, and the
/// headers of the last export request.
#[derive(Clone, Default)]
struct Received {
    inner: Arc<Mutex<ReceivedInner>>,
}

#[derive(Default)]
struct ReceivedInner {
    spans: Vec<Span>,
    resource: HashMap<String, String>,
    headers: http::HeaderMap,
    exports: usize,
}

impl Received {
    fn record(&self, req: ExportTraceServiceRequest, headers: http::HeaderMap) {
        let mut g = self.inner.lock().unwrap();
        g.exports += 1;
        g.headers = headers;
        for rs in req.resource_spans {
            if let Some(r) = rs.resource {
                for kv in r.attributes {
                    g.resource.insert(kv.key.clone(), text(&kv.value));
                }
            }
            for ss in rs.scope_spans {
                g.spans.extend(ss.spans);
            }
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.inner.lock().unwrap().spans.clone()
    }

    /// Waits until at least `n` spans arrived (the binary exports on its own schedule).
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Span> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let spans = self.spans();
            if spans.len() >= n || tokio::time::Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// An attribute value as text (arrays joined with `,`).
fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(AnyValue::ArrayValue(a)) => a
            .values
            .iter()
            .map(|v| text(&Some(v.clone())))
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| text(&kv.value))
}

/// An OTLP/HTTP receiver: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
async fn http_receiver() -> (SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let sink = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let sink = sink.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let bytes = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let status = if parts.uri.path() != "/v1/traces"
                                || parts.headers.get("content-type").map(|v| v.as_bytes())
                                    != Some(b"application/x-protobuf")
                            {
                                404
                            } else {
                                match ExportTraceServiceRequest::decode(bytes) {
                                    Ok(req) => {
                                        sink.record(req, parts.headers);
                                        200
                                    }
                                    Err(_) => 400,
                                }
                            };
                            let body = ExportTraceServiceResponse::default().encode_to_vec();
                            Ok::<_, Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/x-protobuf")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, received)
}

/// The gRPC receiver: the generated `TraceService`.
struct GrpcReceiver(Received);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        self.0.record(request.into_inner(), headers);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC receiver over h2c.
async fn grpc_receiver() -> (SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let svc = TraceServiceServer::new(GrpcReceiver(received.clone()));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let svc = svc.clone();
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .http2_only()
                    .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    (addr, received)
}

// ---------------------------------------------------------------------------------------------
// The gateway
// ---------------------------------------------------------------------------------------------

/// A gateway for `yaml`, traced with `otel` when given, served on loopback until dropped.
async fn gateway(
    yaml: &str,
    otel: Option<&Otel>,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let loaded = Config::from_yaml_str(yaml, "test").unwrap();
    let mut b = GatewayBuilder::from_config(&loaded.config);
    if let Some(o) = otel {
        b = b.otel(o.clone());
    }
    let gateway = b.build(&HttpClient::new()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(
        listener,
        gateway.server(),
        ServeConfig::default().grace_period(Duration::from_secs(2)),
        async {
            let _ = rx.await;
        },
    ));
    (addr, tx)
}

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn chat(
    addr: SocketAddr,
    body: &serde_json::Value,
    traceparent: bool,
) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json");
    if traceparent {
        req = req.header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"));
    }
    req.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

fn config(upstream: &str, extra: &str) -> String {
    format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/up-model\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key-0123\n{extra}"
    )
}

/// The request span and its attempt spans (by start time).
fn tree(spans: &[Span]) -> (Span, Vec<Span>) {
    let requests: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "litellm_request")
        .collect();
    assert_eq!(requests.len(), 1, "one request span: {spans:#?}");
    let request = requests[0].clone();
    let mut attempts: Vec<Span> = spans
        .iter()
        .filter(|s| s.parent_span_id == request.span_id)
        .cloned()
        .collect();
    attempts.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(
        attempts.len() + 1,
        spans.len(),
        "every other span is an attempt under the request span: {spans:#?}"
    );
    (request, attempts)
}

fn status(span: &Span) -> i32 {
    span.status.as_ref().map_or(0, |s| s.code)
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_receiver_gets_the_request_and_attempt_spans_under_the_clients_trace() {
    let (collector, received) = http_receiver().await;
    let otel = Otel::start(
        &OtelConfig::otlp_http(format!("http://{collector}/v1/traces"))
            .service_name("otel-test")
            .header("x-collector-key", "k-123"),
    )
    .unwrap();
    let up = FakeUpstream::start().await;
    let (addr, _stop) = gateway(&config(&up.url(), ""), Some(&otel)).await;

    let body = json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]});
    let answer = gw::send(chat(addr, &body, true)).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    otel.flush().await.unwrap();

    let spans = received.spans();
    let (request, attempts) = tree(&spans);
    // The client's trace is kept; the request span is a child of its span.
    assert_eq!(hex::encode(&request.trace_id), CLIENT_TRACE);
    assert_eq!(hex::encode(&request.parent_span_id), CLIENT_SPAN);
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(
        attr(&request, "gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert_eq!(attr(&request, "gen_ai.request.model").as_deref(), Some("g"));
    assert_eq!(attr(&request, "gen_ai.system").as_deref(), Some("openai"));
    assert_eq!(
        attr(&request, "gen_ai.response.model").as_deref(),
        Some("fake-model")
    );
    assert_eq!(
        attr(&request, "gen_ai.usage.input_tokens").as_deref(),
        Some("5")
    );
    assert_eq!(
        attr(&request, "gen_ai.usage.output_tokens").as_deref(),
        Some("7")
    );
    assert_eq!(
        attr(&request, "gen_ai.response.finish_reasons").as_deref(),
        Some("stop")
    );
    assert_eq!(
        attr(&request, "llmgate.attempted_retries").as_deref(),
        Some("0")
    );
    assert_ne!(status(&request), StatusCode::Error as i32);

    assert_eq!(attempts.len(), 1);
    let attempt = &attempts[0];
    assert_eq!(attempt.name, "chat up-model");
    assert_eq!(attempt.trace_id, request.trace_id);
    assert_eq!(attempt.kind, SpanKind::Client as i32);
    assert_eq!(attr(attempt, "gen_ai.system").as_deref(), Some("openai"));
    assert_eq!(
        attr(attempt, "gen_ai.request.model").as_deref(),
        Some("up-model")
    );
    assert_eq!(
        attr(attempt, "gen_ai.response.model").as_deref(),
        Some("fake-model")
    );
    assert_eq!(
        attr(attempt, "gen_ai.usage.output_tokens").as_deref(),
        Some("7")
    );
    assert_eq!(attr(attempt, "llmgate.model_group").as_deref(), Some("g"));
    assert_eq!(attr(attempt, "llmgate.retry").as_deref(), Some("0"));
    assert_eq!(attr(attempt, "llmgate.fallback").as_deref(), Some("false"));
    assert!(attempt.start_time_unix_nano >= request.start_time_unix_nano);
    assert!(attempt.end_time_unix_nano <= request.end_time_unix_nano);

    // The upstream was called with the attempt span as parent.
    let sent = up.last_request().unwrap();
    assert_eq!(
        sent.header("traceparent").unwrap(),
        format!("00-{CLIENT_TRACE}-{}-01", hex::encode(&attempt.span_id))
    );
    // The resource and the export's own headers.
    let g = received.inner.lock().unwrap();
    assert_eq!(
        g.resource.get("service.name").map(String::as_str),
        Some("otel-test")
    );
    assert_eq!(g.headers.get("x-collector-key").unwrap(), "k-123");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_traceparent_starts_a_trace_and_the_upstream_continues_it() {
    let (collector, received) = http_receiver().await;
    let otel = Otel::start(&OtelConfig::otlp_http(format!(
        "http://{collector}/v1/traces"
    )))
    .unwrap();
    let up = FakeUpstream::start().await;
    let (addr, _stop) = gateway(&config(&up.url(), ""), Some(&otel)).await;
    let body = json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(gw::send(chat(addr, &body, false)).await.status, 200);
    otel.flush().await.unwrap();
    let spans = received.spans();
    let (request, attempts) = tree(&spans);
    assert!(request.parent_span_id.is_empty(), "a root span");
    assert_ne!(hex::encode(&request.trace_id), CLIENT_TRACE);
    let tp = up
        .last_request()
        .unwrap()
        .header("traceparent")
        .unwrap()
        .to_owned();
    assert_eq!(
        tp,
        format!(
            "00-{}-{}-01",
            hex::encode(&request.trace_id),
            hex::encode(&attempts[0].span_id)
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_shows_two_attempt_spans_the_failed_one_with_error_status() {
    let (collector, received) = http_receiver().await;
    let otel = Otel::start(&OtelConfig::otlp_http(format!(
        "http://{collector}/v1/traces"
    )))
    .unwrap();
    let up = FakeUpstream::start().await;
    up.enqueue(Reply::json(
        500,
        json!({"error": {"message": "upstream broke", "type": "server_error"}}),
    ));
    up.enqueue(Reply::json(200, chat_completion("second time lucky")));
    let (addr, _stop) = gateway(
        &config(&up.url(), "router_settings:\n  num_retries: 1\n"),
        Some(&otel),
    )
    .await;
    let body = json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]});
    let answer = gw::send(chat(addr, &body, true)).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    otel.flush().await.unwrap();

    let spans = received.spans();
    let (request, attempts) = tree(&spans);
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(status(&attempts[0]), StatusCode::Error as i32);
    assert_eq!(
        attr(&attempts[0], "error.type").as_deref(),
        Some("internal_server")
    );
    assert_eq!(
        attr(&attempts[0], "http.response.status_code").as_deref(),
        Some("500")
    );
    assert!(attempts[0]
        .status
        .as_ref()
        .is_some_and(|s| s.message.contains("upstream broke")));
    assert_eq!(attr(&attempts[0], "llmgate.retry").as_deref(), Some("0"));
    assert_eq!(attr(&attempts[1], "llmgate.retry").as_deref(), Some("1"));
    assert_eq!(attr(&attempts[1], "llmgate.attempt").as_deref(), Some("1"));
    assert_ne!(status(&attempts[1]), StatusCode::Error as i32);
    assert_ne!(status(&request), StatusCode::Error as i32);
    assert_eq!(
        attr(&request, "llmgate.attempted_retries").as_deref(),
        Some("1")
    );
    // Each upstream call carried its own attempt's span id.
    let sent = up.requests();
    assert_eq!(sent.len(), 2);
    for (req, attempt) in sent.iter().zip(&attempts) {
        assert_eq!(
            req.header("traceparent").unwrap(),
            format!("00-{CLIENT_TRACE}-{}-01", hex::encode(&attempt.span_id))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_attempt_is_marked_and_a_failed_request_has_error_status() {
    let (collector, received) = http_receiver().await;
    let otel = Otel::start(&OtelConfig::otlp_http(format!(
        "http://{collector}/v1/traces"
    )))
    .unwrap();
    let bad = FakeUpstream::start().await;
    bad.set_default(Reply::json(503, json!({"error": {"message": "down"}})));
    let good = FakeUpstream::start().await;
    let yaml = format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/up-model\n      api_base: {}/v1\n      api_key: sk-a\n  - model_name: g2\n    litellm_params:\n      model: openai/other-model\n      api_base: {}/v1\n      api_key: sk-b\nrouter_settings:\n  num_retries: 0\n  fallbacks: [{{g: [g2]}}]\n",
        bad.url(),
        good.url()
    );
    let (addr, _stop) = gateway(&yaml, Some(&otel)).await;
    let body = json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(gw::send(chat(addr, &body, false)).await.status, 200);
    otel.flush().await.unwrap();
    let spans = received.spans();
    let (request, attempts) = tree(&spans);
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(
        attr(&attempts[0], "llmgate.fallback").as_deref(),
        Some("false")
    );
    assert_eq!(
        attr(&attempts[0], "llmgate.model_group").as_deref(),
        Some("g")
    );
    assert_eq!(
        attr(&attempts[1], "llmgate.fallback").as_deref(),
        Some("true")
    );
    assert_eq!(
        attr(&attempts[1], "llmgate.model_group").as_deref(),
        Some("g2")
    );
    assert_eq!(
        attr(&attempts[1], "gen_ai.request.model").as_deref(),
        Some("other-model")
    );
    assert_eq!(
        attr(&request, "llmgate.attempted_fallbacks").as_deref(),
        Some("1")
    );

    // Every deployment failing: the request span has error status too.
    good.set_default(Reply::json(
        400,
        json!({"error": {"message": "bad input", "type": "invalid_request_error"}}),
    ));
    let before = received.spans().len();
    let answer = gw::send(chat(addr, &body, false)).await;
    assert!(answer.status >= 400, "{}", answer.status);
    otel.flush().await.unwrap();
    let spans: Vec<Span> = received.spans().into_iter().skip(before).collect();
    let (request, attempts) = tree(&spans);
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert!(attempts
        .iter()
        .all(|a| status(a) == StatusCode::Error as i32));
    // The request span says what the client got.
    assert_eq!(status(&request), StatusCode::Error as i32);
    assert_eq!(
        attr(&request, "http.response.status_code"),
        Some(answer.status.to_string())
    );
    let kind = attr(&request, "error.type").unwrap();
    assert!(
        ["service_unavailable", "bad_request"].contains(&kind.as_str()),
        "{kind}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streams_spans_end_when_the_stream_ends() {
    let (collector, received) = http_receiver().await;
    let otel = Otel::start(&OtelConfig::otlp_http(format!(
        "http://{collector}/v1/traces"
    )))
    .unwrap();
    let up = FakeUpstream::start().await;
    let sse = chat_sse(&["a", "b", "c"]);
    let events: Vec<Bytes> = sse
        .split_inclusive("\n\n")
        .map(|e| Bytes::from(e.to_owned()))
        .collect();
    let gap = Duration::from_millis(100);
    let n = events.len();
    up.enqueue(Reply::chunked(200, "text/event-stream", events, gap));
    let (addr, _stop) = gateway(&config(&up.url(), ""), Some(&otel)).await;
    let body =
        json!({"model": "g", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let answer = gw::send(chat(addr, &body, true)).await;
    assert_eq!(answer.status, 200);
    assert!(answer.sse_data().iter().any(|d| d == "[DONE]"));
    otel.flush().await.unwrap();

    let spans = received.spans();
    let (request, attempts) = tree(&spans);
    assert_eq!(attempts.len(), 1);
    assert_eq!(attr(&request, "llm.is_streaming").as_deref(), Some("true"));
    let min = u64::try_from((gap * u32::try_from(n - 1).unwrap()).as_nanos()).unwrap();
    for span in [&request, &attempts[0]] {
        let lasted = span.end_time_unix_nano - span.start_time_unix_nano;
        assert!(
            lasted >= min,
            "{} lasted {lasted} ns < {min} ns: it ended before the stream",
            span.name
        );
        assert_eq!(
            attr(span, "gen_ai.response.model").as_deref(),
            Some("fake-model")
        );
        assert_eq!(
            attr(span, "gen_ai.response.finish_reasons").as_deref(),
            Some("stop")
        );
        assert_eq!(
            attr(span, "gen_ai.usage.input_tokens").as_deref(),
            Some("5")
        );
        assert_eq!(
            attr(span, "gen_ai.usage.output_tokens").as_deref(),
            Some("7")
        );
        assert_eq!(attr(span, "llmgate.cancelled"), None);
    }
    assert!(attempts[0].end_time_unix_nano <= request.end_time_unix_nano);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_receiver_gets_the_same_tree() {
    let (collector, received) = grpc_receiver().await;
    let otel = Otel::start(
        &OtelConfig::otlp_grpc(format!("http://{collector}")).header("x-collector-key", "k-9"),
    )
    .unwrap();
    let up = FakeUpstream::start().await;
    let (addr, _stop) = gateway(&config(&up.url(), ""), Some(&otel)).await;
    let body = json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(gw::send(chat(addr, &body, true)).await.status, 200);
    otel.flush().await.unwrap();
    let spans = received.spans();
    let (request, attempts) = tree(&spans);
    assert_eq!(hex::encode(&request.trace_id), CLIENT_TRACE);
    assert_eq!(hex::encode(&request.parent_span_id), CLIENT_SPAN);
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        attr(&attempts[0], "gen_ai.usage.input_tokens").as_deref(),
        Some("5")
    );
    assert_eq!(
        up.last_request().unwrap().header("traceparent").unwrap(),
        format!("00-{CLIENT_TRACE}-{}-01", hex::encode(&attempts[0].span_id))
    );
    assert_eq!(
        received
            .inner
            .lock()
            .unwrap()
            .headers
            .get("x-collector-key")
            .unwrap(),
        "k-9"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tracing_nothing_is_added_upstream() {
    let up = FakeUpstream::start().await;
    let (addr, _stop) = gateway(&config(&up.url(), ""), None).await;
    let body = json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]});
    // The client's own traceparent is not forwarded either: without the layer nothing reads it.
    assert_eq!(gw::send(chat(addr, &body, true)).await.status, 200);
    assert_eq!(up.last_request().unwrap().header("traceparent"), None);
}

/// The binary, configured as LiteLLM is (`callbacks: ["otel"]` and its `OTEL_*` variables),
/// exports over OTLP/HTTP; spans still queued at SIGTERM are flushed before it exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exports_with_litellm_variables_and_flushes_at_shutdown() {
    let (collector, received) = http_receiver().await;
    let up = FakeUpstream::start().await;
    let cfg = support::process::TempFile::new(
        "otel",
        "yaml",
        &config(&up.url(), "litellm_settings:\n  callbacks: [\"otel\"]\n"),
    );
    let endpoint = format!("http://{collector}");
    let mut bin = support::process::Binary::spawn_env(
        &cfg.0,
        &[
            ("OTEL_EXPORTER", "otlp_http"),
            ("OTEL_ENDPOINT", &endpoint),
            ("OTEL_HEADERS", "x-collector-key=sekret-1"),
            ("OTEL_SERVICE_NAME", "gw-from-env"),
            // No periodic export within the test: what arrives was flushed at shutdown.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ],
        &["panicked"],
    );
    let body = json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]});
    let addr: SocketAddr = bin.addr.parse().unwrap();
    assert_eq!(gw::send(chat(addr, &body, true)).await.status, 200);
    assert!(received.spans().is_empty(), "exported before shutdown");
    let pid = bin.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let spans = received.wait_for(2, Duration::from_secs(15)).await;
    let exit = bin.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}\n{}", bin.log());
    let (request, attempts) = tree(&spans);
    assert_eq!(hex::encode(&request.trace_id), CLIENT_TRACE);
    assert_eq!(attempts.len(), 1);
    let g = received.inner.lock().unwrap();
    assert_eq!(
        g.resource.get("service.name").map(String::as_str),
        Some("gw-from-env")
    );
    assert_eq!(g.headers.get("x-collector-key").unwrap(), "sekret-1");
    assert!(
        !bin.log().contains("sekret-1"),
        "the header value was logged"
    );
}

/// A variable that cannot be used stops start-up (the config asks for traces; running without
/// them would be silent), naming the variable and never echoing a header value.
#[test]
fn the_binary_refuses_to_start_with_unusable_otel_variables() {
    let cfg = support::process::TempFile::new(
        "otel-bad",
        "yaml",
        "model_list:\n  - model_name: g\n    litellm_params: {model: mock/x}\nlitellm_settings:\n  callbacks: [otel]\n",
    );
    for (var, value, named) in [
        ("OTEL_EXPORTER", "zipkin", "OTEL_EXPORTER"),
        ("OTEL_ENDPOINT", "collector:4318", "OTEL_ENDPOINT"),
        ("OTEL_HEADERS", "x-key:hunter2", "OTEL_HEADERS"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_llmgate"))
            .arg("--config")
            .arg(&cfg.0)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
            .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
            .env("OTEL_EXPORTER", "otlp_http")
            .env(var, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value} started:\n{stderr}");
        assert!(stderr.contains(named), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

/// `--check` reports unusable `OTEL_*` variables as start-up would, and no "not started" warning
/// for a usable setup.
#[test]
fn check_reports_the_otel_variables() {
    let cfg = support::process::TempFile::new(
        "otel-check",
        "yaml",
        "model_list:\n  - model_name: g\n    litellm_params: {model: mock/x}\nlitellm_settings:\n  callbacks: [otel]\n",
    );
    let run = |exporter: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_llmgate"))
            .arg("--config")
            .arg(&cfg.0)
            .arg("--check")
            .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
            .env("OTEL_EXPORTER", exporter)
            .output()
            .unwrap()
    };
    let ok = run("otlp_grpc");
    let out =
        String::from_utf8_lossy(&ok.stdout).into_owned() + &String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{out}");
    assert!(
        out.contains("config OK") && !out.contains("tracer"),
        "{out}"
    );
    let bad = run("zipkin");
    let out =
        String::from_utf8_lossy(&bad.stdout).into_owned() + &String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "{out}");
    assert!(
        out.contains("error: litellm_settings.callbacks: otel: OTEL_EXPORTER"),
        "{out}"
    );
}

/// The default sampler is parent-based: a client's unsampled `traceparent` (flags `00`) is
/// respected, nothing is exported, and the upstream continues the trace unsampled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_client_trace_is_not_recorded_but_still_propagated() {
    let (collector, received) = http_receiver().await;
    let otel = Otel::start(&OtelConfig::otlp_http(format!(
        "http://{collector}/v1/traces"
    )))
    .unwrap();
    let up = FakeUpstream::start().await;
    let (addr, _stop) = gateway(&config(&up.url(), ""), Some(&otel)).await;
    let body = json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]});
    let mut req = chat(addr, &body, false);
    req.headers_mut().insert(
        "traceparent",
        http::HeaderValue::from_str(&format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-00")).unwrap(),
    );
    assert_eq!(gw::send(req).await.status, 200);
    otel.flush().await.unwrap();
    assert!(received.spans().is_empty(), "{:#?}", received.spans());
    let tp = up
        .last_request()
        .unwrap()
        .header("traceparent")
        .unwrap()
        .to_owned();
    assert!(
        tp.starts_with(&format!("00-{CLIENT_TRACE}-")) && tp.ends_with("-00"),
        "{tp}"
    );
}
