//! The binary's tracer: started from the `OTEL_*` variables when the config lists `otel` in
//! `litellm_settings.callbacks`, flushed at shutdown.

#[cfg(feature = "otel")]
use std::time::Duration;

use llmgate::config::Config;

/// How long shutdown waits for the last spans to be exported.
#[cfg(feature = "otel")]
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The started tracer (also installed as the process's, for the gateway build), when the config
/// asks for one.
#[cfg(feature = "otel")]
pub(crate) type Started = Option<llmgate::telemetry::Otel>;
#[cfg(not(feature = "otel"))]
pub(crate) type Started = Option<std::convert::Infallible>;

/// Starts the tracer `config` asks for. Must run inside the runtime that outlives serving.
#[cfg(feature = "otel")]
pub(crate) fn start(config: &Config) -> Result<Started, String> {
    use llmgate::telemetry::{self, Otel, OtelConfig};
    if !telemetry::wanted(config) {
        return Ok(None);
    }
    let cfg =
        OtelConfig::from_env().map_err(|e| format!("litellm_settings.callbacks: otel: {e}"))?;
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let otel = Otel::start(&cfg).map_err(|e| format!("litellm_settings.callbacks: otel: {e}"))?;
    telemetry::set_global(otel.clone());
    tracing::info!(
        exporter = cfg.exporter.as_str(),
        endpoint = %llmgate::secret::redact_url(&cfg.endpoint),
        service = %cfg.service_name,
        "OpenTelemetry traces on"
    );
    Ok(Some(otel))
}

/// `--check`: whether the `OTEL_*` variables can be used, when `config` asks for traces.
#[cfg(feature = "otel")]
pub(crate) fn check(config: &Config) -> Result<(), String> {
    if llmgate::telemetry::wanted(config) {
        llmgate::telemetry::OtelConfig::from_env()
            .map_err(|e| format!("litellm_settings.callbacks: otel: {e}"))?;
    }
    Ok(())
}

#[cfg(not(feature = "otel"))]
pub(crate) fn check(_config: &Config) -> Result<(), String> {
    Ok(())
}

/// Whether `w` is the gateway's warning that no tracer was started (`--check` builds the
/// gateway without starting one).
#[cfg(feature = "otel")]
pub(crate) fn is_not_started_warning(w: &str) -> bool {
    w == llmgate::telemetry::NO_TRACER_WARNING
}

#[cfg(not(feature = "otel"))]
pub(crate) fn is_not_started_warning(_w: &str) -> bool {
    false
}

/// Without the `otel` feature a config asking for traces was refused when it loaded.
#[cfg(not(feature = "otel"))]
pub(crate) fn start(_config: &Config) -> Result<Started, String> {
    Ok(None)
}

/// Exports the last spans (at most [`FLUSH_TIMEOUT`]).
#[cfg(feature = "otel")]
pub(crate) async fn shutdown(otel: Started) {
    if let Some(otel) = otel {
        if let Err(e) = otel.shutdown(FLUSH_TIMEOUT).await {
            tracing::warn!(error = %e, "the last spans may be lost");
        }
    }
}

#[cfg(not(feature = "otel"))]
pub(crate) async fn shutdown(_otel: Started) {}
