//! [`MemoryCounters`]: the in-process backend (one gateway, or the fallback while Redis is down).
//!
//! `rpm` is a GCRA limiter per bucket from `governor` (a burst of `rpm` calls, then one call
//! every `60/rpm` s); `tpm` a counter per minute; parallel calls an atomic counter.

use std::{
    fmt,
    num::NonZeroU32,
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::Duration,
};

use dashmap::DashMap;
use governor::{
    middleware::StateInformationMiddleware,
    state::{InMemoryState, NotKeyed},
    Quota, RateLimiter,
};

use super::{policy::Bucket, Decision};
use crate::clock::Clock;

type Gcra = RateLimiter<NotKeyed, InMemoryState, Clock, StateInformationMiddleware>;

/// In-process counters: the rpm limiters and the tpm minutes run on `clock`.
#[derive(Default)]
pub struct MemoryCounters {
    rpm: DashMap<String, (u64, Arc<Gcra>)>,
    tpm: DashMap<String, (u64, u64)>,
    parallel: DashMap<String, Arc<AtomicI64>>,
    clock: Clock,
}

impl fmt::Debug for MemoryCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCounters")
            .field("scopes", &self.rpm.len())
            .finish_non_exhaustive()
    }
}

impl MemoryCounters {
    /// Empty counters on `clock`.
    pub(super) fn with_clock(clock: Clock) -> Self {
        Self {
            clock,
            ..Self::default()
        }
    }

    fn minute(&self) -> u64 {
        self.clock.unix_minute()
    }

    fn limiter(&self, name: &str, rpm: u64) -> Arc<Gcra> {
        if let Some(e) = self.rpm.get(name) {
            if e.0 == rpm {
                return e.1.clone();
            }
        }
        let make = || {
            let burst =
                NonZeroU32::new(u32::try_from(rpm).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
            Arc::new(
                RateLimiter::direct_with_clock(Quota::per_minute(burst), self.clock.clone())
                    .with_middleware::<StateInformationMiddleware>(),
            )
        };
        // Under the entry's lock: calls arriving together for a new scope share one limiter
        // (a check-then-insert would give each of them a fresh burst).
        let mut e = self
            .rpm
            .entry(name.to_owned())
            .or_insert_with(|| (rpm, make()));
        if e.0 != rpm {
            *e = (rpm, make());
        }
        e.1.clone()
    }

    fn tokens_used(&self, name: &str) -> u64 {
        let now = self.minute();
        self.tpm
            .get(name)
            .map_or(0, |e| if e.0 == now { e.1 } else { 0 })
    }

    pub(super) fn admit(&self, scopes: &[Bucket]) -> Decision {
        let mut d = Decision::default();
        // Parallel slots first: they are the only thing to give back on a refusal.
        let mut taken: Vec<Arc<AtomicI64>> = Vec::new();
        let give_back = |taken: &[Arc<AtomicI64>]| {
            for c in taken {
                c.fetch_sub(1, Ordering::AcqRel);
            }
        };
        for s in scopes {
            if let Some(max) = s.parallel {
                let c = self.parallel.entry(s.name.clone()).or_default().clone();
                let now = c.fetch_add(1, Ordering::AcqRel) + 1;
                taken.push(c);
                if u64::try_from(now).unwrap_or(0) > max {
                    give_back(&taken);
                    d.refused = Some((s.kind, "parallel requests", max, Duration::from_secs(1)));
                    return d;
                }
            }
        }
        for s in scopes {
            if let Some(tpm) = s.tpm {
                let used = self.tokens_used(&s.name);
                if used >= tpm {
                    give_back(&taken);
                    d.note_tokens(s.kind, tpm, 0);
                    d.refused = Some((s.kind, "tokens", tpm, self.clock.to_next_minute()));
                    return d;
                }
                d.note_tokens(s.kind, tpm, tpm - used);
            }
        }
        for s in scopes {
            if let Some(rpm) = s.rpm {
                let lim = self.limiter(&s.name, rpm);
                match lim.check() {
                    Ok(snap) => {
                        d.note_requests(s.kind, rpm, u64::from(snap.remaining_burst_capacity()));
                    }
                    Err(not_until) => {
                        give_back(&taken);
                        d.note_requests(s.kind, rpm, 0);
                        let wait =
                            not_until.wait_time_from(governor::clock::Clock::now(&self.clock));
                        d.refused = Some((s.kind, "requests", rpm, wait));
                        return d;
                    }
                }
            }
        }
        d
    }

    pub(super) fn release(&self, scopes: &[Bucket], tokens: u64) {
        let now = self.minute();
        for s in scopes {
            if s.parallel.is_some() {
                if let Some(c) = self.parallel.get(&s.name) {
                    c.fetch_sub(1, Ordering::AcqRel);
                }
            }
            if s.tpm.is_some() && tokens > 0 {
                let mut e = self.tpm.entry(s.name.clone()).or_insert((now, 0));
                if e.0 != now {
                    *e = (now, 0);
                }
                e.1 = e.1.saturating_add(tokens);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        auth::KeyInfo,
        rate_limit::{KeyInfoLimits, RateLimitPolicy as _},
        store::Limits,
        types::LlmRequest,
    };

    fn buckets(info: KeyInfo) -> Vec<Bucket> {
        let mut req = LlmRequest::list_models();
        req.extensions.insert(Arc::new(info));
        KeyInfoLimits.buckets(&req)
    }

    fn info(rpm: i64) -> KeyInfo {
        let mut i = KeyInfo {
            token: "t".into(),
            ..KeyInfo::default()
        };
        i.key.limits = Limits {
            rpm_limit: Some(rpm),
            ..Limits::default()
        };
        i
    }

    #[test]
    fn memory_rpm_allows_exactly_the_burst() {
        let m = MemoryCounters::default();
        let sc = buckets(info(3));
        let ok = (0..10).filter(|_| m.admit(&sc).refused.is_none()).count();
        assert_eq!(ok, 3);
    }

    #[test]
    fn memory_rpm_holds_when_a_new_scope_is_hit_by_many_threads_at_once() {
        for _ in 0..200 {
            let m = Arc::new(MemoryCounters::default());
            let sc: Arc<[Bucket]> = buckets(info(3)).into();
            let start = Arc::new(std::sync::Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (m, sc, start) = (m.clone(), sc.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        (0..4).filter(|_| m.admit(&sc).refused.is_none()).count()
                    })
                })
                .collect();
            let ok: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
            assert_eq!(ok, 3);
        }
    }

    #[test]
    fn memory_rpm_refills_on_the_counters_clock() {
        let clock = Clock::manual();
        let m = MemoryCounters::with_clock(clock.clone());
        let sc = buckets(info(3));
        let ok = (0..10).filter(|_| m.admit(&sc).refused.is_none()).count();
        assert_eq!(ok, 3);
        // 3 a minute: one more every 20 s, on this clock and no other.
        let refused = m.admit(&sc).refused.expect("over the limit");
        assert_eq!(refused.3, Duration::from_secs(20));
        crate::clock::let_real_time_pass(Duration::from_millis(20));
        assert!(
            m.admit(&sc).refused.is_some(),
            "the wall clock moved, not ours"
        );
        clock.advance(Duration::from_millis(19_999));
        let refused = m.admit(&sc).refused.expect("a millisecond early");
        assert_eq!(refused.3, Duration::from_millis(1));
        clock.advance(Duration::from_millis(1));
        assert!(m.admit(&sc).refused.is_none());
        assert!(m.admit(&sc).refused.is_some());
    }

    #[test]
    fn memory_parallel_is_released() {
        let m = MemoryCounters::default();
        let mut i = KeyInfo::default();
        i.key.limits.max_parallel_requests = Some(1);
        let sc = buckets(i);
        assert!(m.admit(&sc).refused.is_none());
        assert!(m.admit(&sc).refused.is_some());
        m.release(&sc, 0);
        assert!(m.admit(&sc).refused.is_none());
    }
}
