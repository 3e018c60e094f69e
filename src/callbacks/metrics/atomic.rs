//! Lock-free counters and histograms: what a call costs the hot path is a few `fetch_add`s.

use std::sync::atomic::{AtomicU64, Ordering};

/// LiteLLM's latency buckets (seconds; `+Inf` is implied).
pub const LATENCY_BUCKETS: [f64; 35] = [
    0.005, 0.00625, 0.0125, 0.025, 0.05, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
    5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 15.0, 20.0, 25.0, 30.0, 60.0, 120.0, 180.0,
    240.0, 300.0,
];

/// An `f64` added to atomically (compare-and-swap on its bits).
#[derive(Debug, Default)]
pub(crate) struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub(crate) fn add(&self, v: f64) {
        if v == 0.0 || !v.is_finite() {
            return;
        }
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    pub(crate) fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Release);
    }

    pub(crate) fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Acquire))
    }
}

/// `prometheus_client`'s default buckets (LiteLLM's histograms created without buckets:
/// `litellm_deployment_latency_per_output_token`).
pub(crate) const DEFAULT_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// A histogram over fixed bucket bounds ([`LATENCY_BUCKETS`] unless built
/// [`with_bounds`](Self::with_bounds)): per-bucket counts (not cumulative; summed when
/// rendered), the sum and the count. The buckets are allocated once, with the series.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    sum: AtomicF64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::with_bounds(&LATENCY_BUCKETS)
    }
}

impl Histogram {
    pub(crate) fn with_bounds(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicF64::default(),
        }
    }

    pub(crate) fn observe(&self, secs: f64) {
        if !secs.is_finite() || secs < 0.0 {
            return;
        }
        let i = self.bounds.partition_point(|b| *b < secs);
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.add(secs);
    }

    /// Adds this histogram's counts into `into` (cumulative bucket counts are built there).
    pub(crate) fn add_into(&self, into: &mut HistogramSnapshot) {
        if into.buckets.is_empty() {
            into.bounds = self.bounds;
            into.buckets = vec![0; self.buckets.len()];
        }
        for (acc, b) in into.buckets.iter_mut().zip(self.buckets.iter()) {
            *acc += b.load(Ordering::Relaxed);
        }
        into.sum += self.sum.get();
    }
}

/// A histogram read for rendering.
#[derive(Clone, Debug, Default)]
pub(crate) struct HistogramSnapshot {
    pub(crate) bounds: &'static [f64],
    pub(crate) buckets: Vec<u64>,
    pub(crate) sum: f64,
}

impl HistogramSnapshot {
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_le_buckets() {
        let h = Histogram::default();
        h.observe(0.005); // le=0.005
        h.observe(0.3); // le=0.5
        h.observe(1000.0); // +Inf
        h.observe(f64::NAN); // ignored
        let mut s = HistogramSnapshot::default();
        h.add_into(&mut s);
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[6], 1);
        assert_eq!(s.buckets[35], 1);
        assert_eq!(s.count(), 3);
        assert!((s.sum - 1000.305).abs() < 1e-9);
        let f = AtomicF64::default();
        f.add(0.25);
        f.add(0.5);
        assert!((f.get() - 0.75).abs() < 1e-12);
    }

    #[test]
    fn other_bounds_have_their_own_buckets() {
        let h = Histogram::with_bounds(&DEFAULT_BUCKETS);
        h.observe(0.01); // le=0.01
        h.observe(0.2); // le=0.25
        h.observe(11.0); // +Inf
        let mut s = HistogramSnapshot::default();
        h.add_into(&mut s);
        assert_eq!(s.bounds, &DEFAULT_BUCKETS);
        assert_eq!(s.buckets.len(), 15);
        assert_eq!((s.buckets[1], s.buckets[6], s.buckets[14]), (1, 1, 1));
        assert_eq!(s.count(), 3);
    }
}
