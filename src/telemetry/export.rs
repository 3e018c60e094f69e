//! The tracer and its exporter: OTLP over HTTP/protobuf or gRPC, or JSON lines on standard
//! output, behind the SDK's batch span processor (its own thread: spans are queued on the
//! request path and exported in batches off it).

use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry::{trace::TracerProvider as _, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::{
    error::{OTelSdkError, OTelSdkResult},
    trace::{SdkTracerProvider, SpanData, SpanExporter, Tracer},
    Resource,
};
use tower::ServiceExt;

use super::config::{Exporter, OtelConfig};
use crate::upstream::HttpClient;

/// How long one export may take (the OTLP default).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest collector answer read.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// A started tracer: spans made by [`RequestTraceLayer`](super::RequestTraceLayer) and
/// [`AttemptTraceLayer`](super::AttemptTraceLayer) are queued to its batch processor and
/// exported off the request path. Cheap to clone (one `Arc`).
///
/// Call [`Otel::shutdown`] before the process exits, so the last batch is sent.
#[derive(Clone)]
pub struct Otel {
    inner: Arc<Inner>,
}

struct Inner {
    provider: SdkTracerProvider,
    tracer: Tracer,
    exporter: Exporter,
}

impl fmt::Debug for Otel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Otel")
            .field("exporter", &self.inner.exporter)
            .finish_non_exhaustive()
    }
}

/// The tracer could not be started or stopped.
#[derive(Debug)]
pub struct OtelError(String);

impl fmt::Display for OtelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OtelError {}

impl Otel {
    /// Starts the exporter `config` names behind a batch span processor (its queue, batch size
    /// and delay follow the standard `OTEL_BSP_*` variables; defaults 2048 spans, 512 per
    /// batch, every 5 s).
    ///
    /// Must be called inside a Tokio runtime that outlives the tracer: exports run on it (the
    /// HTTP client's requests and the gRPC channel's connection).
    ///
    /// # Errors
    /// No runtime, or the exporter cannot be built (an endpoint that does not parse).
    pub fn start(config: &OtelConfig) -> Result<Self, OtelError> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| OtelError("OpenTelemetry must start inside a Tokio runtime".into()))?;
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new(
                "deployment.environment",
                config.environment.clone(),
            ))
            .build();
        let builder = SdkTracerProvider::builder().with_resource(resource);
        let builder = match config.exporter {
            Exporter::Console => builder.with_batch_exporter(ConsoleExporter),
            Exporter::OtlpHttp => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(SpawnedClient {
                        client: HttpClient::new(),
                        rt,
                    })
                    .with_endpoint(config.endpoint.clone())
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(EXPORT_TIMEOUT)
                    .with_headers(config.headers.iter().cloned().collect())
                    .build()
                    .map_err(|e| OtelError(format!("OTLP/HTTP exporter: {e}")))?;
                builder.with_batch_exporter(exporter)
            }
            Exporter::OtlpGrpc => {
                let mut headers = http::HeaderMap::new();
                for (name, value) in &config.headers {
                    let name = http::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| OtelError(format!("OTLP header `{name}`: not a name")))?;
                    let value = http::HeaderValue::from_str(value).map_err(|_| {
                        OtelError(format!("OTLP header `{name}`: not a header value"))
                    })?;
                    headers.insert(name, value);
                }
                let metadata =
                    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers);
                let mut exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(config.endpoint.clone())
                    .with_timeout(EXPORT_TIMEOUT)
                    .with_metadata(metadata);
                if config.endpoint.starts_with("https://") {
                    exporter = exporter.with_tls_config(
                        opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new()
                            .with_webpki_roots(),
                    );
                }
                let exporter = exporter
                    .build()
                    .map_err(|e| OtelError(format!("OTLP/gRPC exporter: {e}")))?;
                builder.with_batch_exporter(exporter)
            }
        };
        let provider = builder.build();
        let tracer = provider.tracer("llmgate");
        Ok(Self {
            inner: Arc::new(Inner {
                provider,
                tracer,
                exporter: config.exporter,
            }),
        })
    }

    /// The tracer the layers start spans with.
    pub(super) fn tracer(&self) -> &Tracer {
        &self.inner.tracer
    }

    /// Which exporter runs.
    #[must_use]
    pub fn exporter(&self) -> Exporter {
        self.inner.exporter
    }

    /// Exports every span ended so far and waits for the collector's answer (on a blocking
    /// thread: the export itself runs on the runtime).
    ///
    /// # Errors
    /// The export failed or timed out.
    pub async fn flush(&self) -> Result<(), OtelError> {
        let provider = self.inner.provider.clone();
        run_blocking(move || provider.force_flush()).await
    }

    /// Exports what is left and stops the exporter; spans ended later are dropped. Waits at
    /// most `timeout`.
    ///
    /// # Errors
    /// The last export failed, or took longer than `timeout`.
    pub async fn shutdown(&self, timeout: Duration) -> Result<(), OtelError> {
        let provider = self.inner.provider.clone();
        run_blocking(move || provider.shutdown_with_timeout(timeout)).await
    }
}

async fn run_blocking(f: impl FnOnce() -> OTelSdkResult + Send + 'static) -> Result<(), OtelError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(OtelError(format!("OpenTelemetry export: {e}"))),
        Err(e) => Err(OtelError(format!("OpenTelemetry export: {e}"))),
    }
}

/// The OTLP/HTTP exporter's client: llmgate's own pooled client (rustls, the same proxies and
/// roots as upstream calls), each request run on the runtime the tracer started on, since the
/// batch processor exports from a thread of its own.
#[derive(Clone)]
struct SpawnedClient {
    client: HttpClient,
    rt: tokio::runtime::Handle,
}

impl fmt::Debug for SpawnedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnedClient").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for SpawnedClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let send = async move {
            let resp = client.oneshot(request.map(Full::new)).await?;
            let (parts, body) = resp.into_parts();
            let bytes = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(parts, bytes))
        };
        // The timer is made on the runtime too: the batch processor's thread has none.
        let on_runtime = async move { tokio::time::timeout(EXPORT_TIMEOUT, send).await };
        match self.rt.spawn(on_runtime).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("OTLP export timed out".into()),
            Err(e) => Err(Box::new(e)),
        }
    }
}

/// LiteLLM's `console` exporter: one JSON line per span on standard output.
#[derive(Debug)]
struct ConsoleExporter;

impl SpanExporter for ConsoleExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        use std::io::Write as _;
        std::io::stdout()
            .lock()
            .write_all(&console_lines(&batch))
            .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))
    }
}

/// One JSON object per span, a line each.
fn console_lines(batch: &[SpanData]) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch.len() * 512);
    for span in batch {
        let attrs: serde_json::Map<String, serde_json::Value> = span
            .attributes
            .iter()
            .map(|kv| {
                (
                    kv.key.to_string(),
                    serde_json::Value::String(kv.value.to_string()),
                )
            })
            .collect();
        let line = serde_json::json!({
            "name": span.name,
            "trace_id": span.span_context.trace_id().to_string(),
            "span_id": span.span_context.span_id().to_string(),
            "parent_span_id": span.parent_span_id.to_string(),
            "kind": format!("{:?}", span.span_kind),
            "start_time_unix_nano": unix_nanos(span.start_time),
            "end_time_unix_nano": unix_nanos(span.end_time),
            "status": format!("{:?}", span.status),
            "attributes": attrs,
        });
        if serde_json::to_writer(&mut out, &line).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

/// Unix nanoseconds.
fn unix_nanos(t: std::time::SystemTime) -> u128 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };

    use super::*;

    #[test]
    fn console_lines_are_json_per_span() {
        let span = SpanData {
            span_context: SpanContext::new(
                TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
                SpanId::from_hex("00f067aa0ba902b7").unwrap(),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "litellm_request".into(),
            start_time: std::time::UNIX_EPOCH + Duration::from_secs(1),
            end_time: std::time::UNIX_EPOCH + Duration::from_secs(2),
            attributes: vec![KeyValue::new("gen_ai.request.model", "g")],
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        };
        let out = console_lines(&[span.clone(), span]);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["name"], "litellm_request");
        assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["attributes"]["gen_ai.request.model"], "g");
        assert_eq!(v["end_time_unix_nano"], 2_000_000_000u64);
    }

    #[tokio::test]
    async fn start_needs_a_runtime_and_parses_endpoints() {
        let bad = OtelConfig::otlp_http("http://[::1");
        assert!(Otel::start(&bad).is_err());
        let ok = Otel::start(&OtelConfig::otlp_grpc("http://127.0.0.1:1")).unwrap();
        assert_eq!(ok.exporter(), Exporter::OtlpGrpc);
        let no_rt = std::thread::spawn(|| {
            Otel::start(&OtelConfig::otlp_http("http://127.0.0.1:1/v1/traces")).is_err()
        })
        .join()
        .unwrap();
        assert!(no_rt);
    }
}
