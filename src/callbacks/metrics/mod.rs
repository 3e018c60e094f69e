//! Prometheus metrics: LiteLLM's `litellm_*` metric names, types, labels and buckets, served at
//! `GET /metrics` in the text exposition format.
//!
//! On with `litellm_settings.callbacks: ["prometheus"]` (or `success_callback`), as in LiteLLM;
//! `litellm_settings.require_auth_for_metrics_endpoint: true` asks for a key (the master key or
//! a valid virtual key) on `/metrics`. The metrics, their types and labels are listed in
//! docs/operations.md ("Metrics").
//!
//! # Cost on the request path
//!
//! The [`CallRecordLayer`](crate::callbacks::CallRecordLayer) hands each call's
//! [`CallRecord`](crate::callbacks::CallRecord) to [`Metrics::record`]: one lookup in a sharded
//! map (`dashmap`, read lock of one shard) keyed by the call's label values, all `Arc`s and
//! integers taken from the record (the caller's labels are interned per key hash, so no string
//! is allocated), then `fetch_add`s on that series' counters and histogram buckets. A label set
//! seen for the first time allocates its series once. Each series carries the union of the
//! labels; a scrape sums the series onto each metric's own label set, so the request path does
//! one lookup for all fifteen call metrics instead of one per metric.
//!
//! Own atomics rather than the `prometheus-client` crate: its label families keep a
//! `RwLock<HashMap>` per metric, so a call would take ten locks and ten lookups; and LiteLLM's
//! metric set (fifteen families sharing most labels) suits one union series well.

mod atomic;
mod deployment;
mod expose;
mod fallback;
mod registry;
#[cfg(feature = "gateway")]
mod route;

#[cfg(feature = "gateway")]
pub use self::route::{deployment_states_of, router};
pub use self::{
    atomic::LATENCY_BUCKETS,
    deployment::{DeploymentFuture, DeploymentMetrics, DeploymentMetricsLayer},
    expose::CONTENT_TYPE,
    fallback::FallbackTrail,
    registry::{DeploymentState, Metrics},
};
