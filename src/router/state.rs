//! Per-deployment routing state: in-flight count, concurrency permits, recent latency and
//! per-minute usage. Atomics only; the pick path never takes a lock.

use std::{
    fmt,
    sync::{
        atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::sync::Semaphore;

use crate::health::HealthCell;

/// How many recent latency samples the latency strategy averages (LiteLLM keeps 10).
pub(crate) const LATENCY_SAMPLES: usize = 10;

/// Routing state of one deployment.
pub(crate) struct DeploymentState {
    pub(crate) health: Arc<HealthCell>,
    pub(crate) in_flight: AtomicU32,
    pub(crate) permits: Option<Arc<Semaphore>>,
    latencies: [AtomicU64; LATENCY_SAMPLES],
    latency_count: AtomicU64,
    minute: AtomicU64,
    rpm_used: AtomicU64,
    tpm_used: AtomicU64,
    /// Values last read from Redis (many instances): in-flight, rpm, tpm this minute.
    pub(crate) remote_in_flight: AtomicI64,
    pub(crate) remote_rpm: AtomicU64,
    pub(crate) remote_tpm: AtomicU64,
    pub(crate) remote_minute: AtomicU64,
}

impl fmt::Debug for DeploymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeploymentState")
            .field("in_flight", &self.in_flight.load(Ordering::Relaxed))
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl DeploymentState {
    pub(crate) fn new(health: Arc<HealthCell>, max_parallel: Option<u32>) -> Self {
        Self {
            health,
            in_flight: AtomicU32::new(0),
            permits: max_parallel.map(|n| Arc::new(Semaphore::new(n.max(1) as usize))),
            latencies: Default::default(),
            latency_count: AtomicU64::new(0),
            minute: AtomicU64::new(0),
            rpm_used: AtomicU64::new(0),
            tpm_used: AtomicU64::new(0),
            remote_in_flight: AtomicI64::new(0),
            remote_rpm: AtomicU64::new(0),
            remote_tpm: AtomicU64::new(0),
            remote_minute: AtomicU64::new(0),
        }
    }

    /// Whether a concurrency permit is free now.
    pub(crate) fn has_capacity(&self) -> bool {
        self.permits
            .as_ref()
            .is_none_or(|s| s.available_permits() > 0)
    }

    /// Adds a latency sample (seconds, or seconds per output token).
    pub(crate) fn record_latency(&self, value: f64) {
        if !value.is_finite() || value < 0.0 {
            return;
        }
        let n = self.latency_count.fetch_add(1, Ordering::Relaxed);
        let slot = (n % LATENCY_SAMPLES as u64) as usize;
        self.latencies[slot].store(value.to_bits(), Ordering::Relaxed);
    }

    /// The mean of the recent latency samples; `None` before the first.
    pub(crate) fn latency(&self) -> Option<f64> {
        let n = self.latency_count.load(Ordering::Relaxed);
        if n == 0 {
            return None;
        }
        let k = n.min(LATENCY_SAMPLES as u64) as usize;
        let sum: f64 = self.latencies[..k]
            .iter()
            .map(|a| f64::from_bits(a.load(Ordering::Relaxed)))
            .sum();
        Some(sum / k as f64)
    }

    fn roll(&self, minute: u64) {
        let seen = self.minute.load(Ordering::Relaxed);
        if seen != minute
            && self
                .minute
                .compare_exchange(seen, minute, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.rpm_used.store(0, Ordering::Relaxed);
            self.tpm_used.store(0, Ordering::Relaxed);
        }
    }

    /// Requests and tokens used this minute (the Redis view when `shared`).
    pub(crate) fn usage(&self, shared: bool, minute: u64) -> (u64, u64) {
        if shared && self.remote_minute.load(Ordering::Relaxed) == minute {
            return (
                self.remote_rpm.load(Ordering::Relaxed),
                self.remote_tpm.load(Ordering::Relaxed),
            );
        }
        self.roll(minute);
        (
            self.rpm_used.load(Ordering::Relaxed),
            self.tpm_used.load(Ordering::Relaxed),
        )
    }

    /// Counts one request this minute; `false` (and nothing counted) if that would pass `limit`.
    pub(crate) fn reserve_request(&self, limit: Option<u64>) -> bool {
        self.roll(self.health.clock().unix_minute());
        let n = self.rpm_used.fetch_add(1, Ordering::Relaxed) + 1;
        if limit.is_some_and(|l| n > l) {
            self.rpm_used.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Counts tokens this minute.
    pub(crate) fn add_tokens(&self, tokens: u64) {
        self.roll(self.health.clock().unix_minute());
        self.tpm_used.fetch_add(tokens, Ordering::Relaxed);
    }

    /// In-flight requests (the Redis view when `shared`, which includes ours).
    pub(crate) fn busy(&self, shared: bool) -> i64 {
        let local = i64::from(self.in_flight.load(Ordering::Relaxed));
        if shared {
            self.remote_in_flight.load(Ordering::Relaxed).max(local)
        } else {
            local
        }
    }
}

/// A latency penalty recorded for a timed-out call, so the latency strategy avoids the deployment
/// (LiteLLM records 1000 s).
pub(crate) const TIMEOUT_PENALTY: Duration = Duration::from_secs(1000);
