//! OpenTelemetry traces over OTLP (HTTP/protobuf or gRPC), configured as LiteLLM configures them
//! (`callbacks: ["otel"]` with `OTEL_EXPORTER`, `OTEL_ENDPOINT`, `OTEL_HEADERS`,
//! `OTEL_SERVICE_NAME`) or with the standard `OTEL_EXPORTER_OTLP_*` variables.
//!
//! - [`RequestTraceLayer`] at the top of the stack: one `litellm_request` span (kind server) per
//!   request, a child of the client's W3C `traceparent` when it sent one;
//! - [`AttemptTraceLayer`] at the top of each deployment's stack: one span (kind client) per
//!   attempt, a child of the request span, with the deployment, retry number and fallback flag;
//! - [`TraceparentClient`] under the provider: the attempt span's `traceparent` on the upstream
//!   request.
//!
//! Both spans carry the GenAI semantic conventions (`gen_ai.operation.name`, `gen_ai.system`,
//! `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.usage.input_tokens` /
//! `output_tokens`, `gen_ai.response.finish_reasons`) and an error status on failure. Ended
//! spans go to the SDK's batch span processor, which exports them from a thread of its own: the
//! request path only queues them. With tracing off the layers are not in the stack.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use llmgate::telemetry::{Otel, OtelConfig};
//! let otel = Otel::start(&OtelConfig::otlp_http("http://127.0.0.1:4318/v1/traces"))?;
//! let gateway = llmgate::gateway::Gateway::builder()
//!     .otel(otel.clone())
//!     .build(&llmgate::provider::HttpClient::new())?;
//! # let _ = gateway;
//! // … serve …
//! otel.shutdown(std::time::Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

mod config;
mod export;
mod layer;

use std::sync::OnceLock;

pub use self::{
    config::{Exporter, OtelConfig, OtelConfigError, DEFAULT_GRPC_ENDPOINT, DEFAULT_HTTP_ENDPOINT},
    export::{Otel, OtelError},
    layer::{
        AttemptTrace, AttemptTraceLayer, RequestTrace, RequestTraceLayer, TraceFuture,
        TraceparentClient, REQUEST_SPAN_NAME,
    },
};

impl Otel {
    /// The request-span layer for the top of a stack.
    pub fn request_layer(&self) -> RequestTraceLayer {
        RequestTraceLayer::new(self.clone())
    }

    /// The attempt-span layer for the top of `dep`'s stack.
    pub fn attempt_layer(&self, dep: &crate::provider::Deployment) -> AttemptTraceLayer {
        AttemptTraceLayer::new(self.clone(), dep)
    }
}

static GLOBAL: OnceLock<Otel> = OnceLock::new();

/// The warning of a gateway built from a config with `callbacks: ["otel"]` when no tracer was
/// installed with [`set_global`].
pub const NO_TRACER_WARNING: &str = "litellm_settings.callbacks: otel: no tracer is started (the llmgate binary starts one from the OTEL_* variables; in a program call telemetry::set_global or GatewayBuilder::otel); requests are not traced";

/// Makes `otel` the process's tracer, which a config with `callbacks: ["otel"]` uses
/// ([`GatewayBuilder::from_config`](crate::gateway::GatewayBuilder::from_config)). The
/// `llmgate` binary calls it at start-up. Only the first call counts; `false` when one was set
/// already.
pub fn set_global(otel: Otel) -> bool {
    GLOBAL.set(otel).is_ok()
}

/// The tracer [`set_global`] installed.
#[must_use]
pub fn global() -> Option<&'static Otel> {
    GLOBAL.get()
}

/// Whether `config` asks for traces: `otel` in `litellm_settings.callbacks`.
#[cfg(feature = "gateway")]
#[must_use]
pub fn wanted(config: &crate::config::Config) -> bool {
    config
        .litellm_settings
        .callbacks
        .iter()
        .flatten()
        .any(|c| c.trim().eq_ignore_ascii_case("otel"))
}
