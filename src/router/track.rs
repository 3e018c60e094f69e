//! Completion tracking: a call's in-flight count, permit and usage held until its response, or
//! its stream, ends (tower's `load::TrackCompletion` idea: the service may respond while other
//! parts are still acting on the request).

use std::{sync::Arc, time::Instant};

use tokio::sync::OwnedSemaphorePermit;

use super::{
    shared::Shared,
    state::TIMEOUT_PENALTY,
    table::{Entry, Inner},
    RouteLog,
};
use crate::{
    error::{ErrorKind, LlmError},
    observe::{End, Flow, Observer},
    types::{ChunkBody, LlmResponse, StreamEvent},
};

/// Bookkeeping of one call to a deployment: in-flight count, permit, start time.
pub(super) struct Tracker {
    pub(super) entry: Arc<Entry>,
    started: Instant,
    _permit: Option<OwnedSemaphorePermit>,
    shared: Option<Shared>,
    /// A test request (`mock_response`): its latency and tokens are not recorded.
    test: bool,
    /// `x-litellm-model-region` for the answer of a call kept in a region.
    region: Option<http::HeaderValue>,
}

impl Tracker {
    pub(super) fn new(
        entry: Arc<Entry>,
        permit: Option<OwnedSemaphorePermit>,
        shared: Option<Shared>,
        test: bool,
    ) -> Self {
        entry
            .state
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(s) = &shared {
            s.busy(entry.deployment.id.clone(), 1);
        }
        Self {
            entry,
            started: Instant::now(),
            _permit: permit,
            shared,
            test,
            region: None,
        }
    }

    /// Stamps the answer with `x-litellm-model-region` (a call kept in a region).
    pub(super) fn region(mut self, region: Option<http::HeaderValue>) -> Self {
        self.region = region;
        self
    }

    pub(super) fn tokens(&self, n: u64) {
        if n == 0 || self.test {
            return;
        }
        self.entry.state.add_tokens(n);
        if let Some(s) = &self.shared {
            s.tokens(self.entry.deployment.id.clone(), n);
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.entry
            .state
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(s) = &self.shared {
            s.busy(self.entry.deployment.id.clone(), -1);
        }
    }
}

/// What the router does with a deployment's answer.
pub(super) fn finish(
    inner: &Inner,
    model: &str,
    log: Option<&RouteLog>,
    tracker: Tracker,
    result: Result<LlmResponse, LlmError>,
) -> Result<LlmResponse, LlmError> {
    let elapsed = tracker.started.elapsed().as_secs_f64();
    let state = &tracker.entry.state;
    let record_latency = |v: f64| {
        if !tracker.test {
            state.record_latency(v);
        }
    };
    match result {
        Ok(mut resp) => {
            if let Some(r) = &tracker.region {
                resp.meta
                    .headers
                    .insert(super::X_LITELLM_MODEL_REGION, r.clone());
            }
            if resp.body.is_stream() {
                // The first-chunk layer hands a stream on once its first chunk arrived: this is
                // the time to first token.
                record_latency(elapsed);
                resp = resp.observe_with(|| Tracked(tracker, None));
            } else {
                let usage = resp.meta.usage.as_ref();
                let out = usage.and_then(|u| u.completion_tokens).unwrap_or(0);
                record_latency(if out > 0 {
                    elapsed / out as f64
                } else {
                    elapsed
                });
                tracker.tokens(usage.and_then(|u| u.total_tokens).unwrap_or(0));
            }
            Ok(resp)
        }
        Err(e) => {
            if e.kind() == ErrorKind::Timeout {
                record_latency(TIMEOUT_PENALTY.as_secs_f64());
            }
            if let Some(log) = log {
                let id = tracker.entry.deployment.id.clone();
                let others = inner.others_available(model, log, &id);
                let available_in = inner.available_in(model);
                log.failed(
                    id,
                    tracker.entry.deployment.max_retries,
                    others,
                    available_in,
                );
            }
            Err(e)
        }
    }
}

/// What the router watches a deployment's stream for: its token usage (from the usage chunk),
/// with the in-flight count held (the [`Tracker`]) until the stream ends, fails or is dropped.
/// A dialect event stream states its usage cumulatively, so the last total is counted at the end.
struct Tracked(Tracker, Option<u64>);

impl Observer for Tracked {
    fn chunk(&mut self, chunk: &mut ChunkBody) -> Flow {
        if let Some(usage) = chunk.usage() {
            self.0.tokens(usage.total_tokens.unwrap_or(0));
        }
        Flow::Pass
    }

    fn event(&mut self, event: &mut StreamEvent) -> Flow {
        if let Some(u) = &event.usage {
            self.1 = Some(u.total());
        }
        Flow::Pass
    }

    fn end(self, _end: End) {
        if let Some(total) = self.1 {
            self.0.tokens(total);
        }
        // Dropping the tracker releases the in-flight count.
    }
}
