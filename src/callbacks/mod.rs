//! Callbacks: one [`CallRecord`] per call, fanned out to every consumer without blocking the
//! request.
//!
//! [`CallRecordLayer`] sits just inside auth. When a call ends (a stream's when it ends, fails or
//! is dropped) it builds one [`CallRecord`] from the operation-neutral facts of the stack and
//! hands it to [`Callbacks`]:
//!
//! - the Prometheus registry ([`Metrics`]) records it with atomics, on
//!   the spot (no lock, no allocation beyond the label lookup);
//! - each logging sink ([`Sink`]) gets the same record behind one `Arc`, pushed into its
//!   bounded queue with `try_send`: a full queue drops the record and counts it; the sink's task
//!   batches and writes off the request path.
//!
//! With no consumer the layer is a pass-through.
//!
//! Configured as LiteLLM configures them: `litellm_settings.callbacks`, `success_callback` and
//! `failure_callback` (see [`CallbackSettings`](crate::config::CallbackSettings) and docs/operations.md).

mod layer;
pub mod metrics;
mod record;
mod refusals;
pub mod sinks;

use std::{fmt, sync::Arc};

use self::metrics::Metrics;
pub use self::{
    layer::{CallRecordLayer, CallRecorder, ResponseFuture, STATUS_CLIENT_CLOSED},
    record::{CallRecord, CallStatus},
    refusals::{AuthRefusalFuture, AuthRefusalLayer, AuthRefusals},
};

/// A consumer of call records that must not block: it queues the record and returns.
pub trait Sink: fmt::Debug + Send + Sync + 'static {
    /// Takes one record; never blocks (a full queue drops it and counts the drop).
    fn offer(&self, record: &Arc<CallRecord>);

    /// Whether the sink logs message content (it is captured only then).
    fn wants_content(&self) -> bool {
        false
    }

    /// Whether failed calls reach this sink (`failure_callback`), besides successes.
    fn on_failure(&self) -> bool {
        true
    }

    /// Whether successful calls reach this sink (`success_callback`).
    fn on_success(&self) -> bool {
        true
    }

    /// The sink's name (`langfuse`, `generic_api`, `jsonl`, …).
    fn name(&self) -> &str;

    /// The sink's counters (queued, dropped, written, failed), when it keeps them.
    fn stats(&self) -> Option<Arc<crate::sinks::SinkStats>> {
        None
    }
}

/// Every consumer of call records: the Prometheus registry and the logging sinks. Cheap to
/// clone.
#[derive(Clone, Debug, Default)]
pub struct Callbacks {
    metrics: Option<Metrics>,
    sinks: Arc<[Arc<dyn Sink>]>,
    content: bool,
    groups: Arc<dashmap::DashMap<Arc<str>, ()>>,
}

/// Model-group names kept for records (interned so that a call allocates none); past this many
/// distinct names a call's group is allocated instead.
const MAX_INTERNED_GROUPS: usize = 4096;

impl Callbacks {
    /// No consumer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records into `metrics` too.
    #[must_use]
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Hands records to `sink` too.
    #[must_use]
    pub fn sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.content |= sink.wants_content();
        let mut sinks = self.sinks.to_vec();
        sinks.push(sink);
        self.sinks = sinks.into();
        self
    }

    /// The Prometheus registry, when metrics are on.
    #[must_use]
    pub fn metrics_registry(&self) -> Option<&Metrics> {
        self.metrics.as_ref()
    }

    /// The logging sinks.
    #[must_use]
    pub fn sinks(&self) -> &[Arc<dyn Sink>] {
        &self.sinks
    }

    /// No consumer at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.metrics.is_none() && self.sinks.is_empty()
    }

    /// Records queued in the sinks and not yet written (or counted as failed).
    #[must_use]
    pub fn pending(&self) -> u64 {
        self.sinks
            .iter()
            .filter_map(|s| s.stats())
            .map(|s| {
                s.queued()
                    .saturating_sub(s.written().saturating_add(s.failed()))
            })
            .sum()
    }

    /// Waits until every queued record has been written (or failed), for at most `limit`: what
    /// a graceful shutdown calls after the server stopped taking requests, so the last calls
    /// reach the sinks. Returns whether everything was written in time; what is left is counted
    /// in the log.
    pub async fn drain(&self, limit: std::time::Duration) -> bool {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let pending = self.pending();
            if pending == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                tracing::warn!(pending, "logging sinks: records left unwritten at shutdown");
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Whether some sink logs message content.
    #[must_use]
    pub fn wants_content(&self) -> bool {
        self.content
    }

    /// Hands `record` to every consumer.
    pub fn dispatch(&self, record: CallRecord) {
        if let Some(m) = &self.metrics {
            m.record(&record);
        }
        if self.sinks.is_empty() {
            return;
        }
        let success = record.status == CallStatus::Success;
        let record = Arc::new(record);
        for s in self.sinks.iter() {
            if (success && s.on_success()) || (!success && s.on_failure()) {
                s.offer(&record);
            }
        }
    }

    pub(crate) fn intern_group(&self, group: &str) -> Arc<str> {
        if let Some(e) = self.groups.get(group) {
            return e.key().clone();
        }
        let name: Arc<str> = Arc::from(group);
        if self.groups.len() < MAX_INTERNED_GROUPS {
            self.groups.insert(name.clone(), ());
        }
        name
    }
}
