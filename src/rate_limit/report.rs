//! [`LimitReport`]: what the rate-limit layer tells the layers outside it about the caller's key
//! and team limits, as typed numbers (never through the `x-ratelimit-*` headers, which also carry
//! the provider's).

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

/// A scope's limits and what is left of them, as the rate-limit layer last saw them for a call.
/// `None`: the scope has no such limit (or it was not checked: a call refused by an earlier
/// bucket).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScopeLimits {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Requests left in the minute after this call.
    pub remaining_requests: Option<u64>,
    /// Tokens per minute.
    pub tpm: Option<u64>,
    /// Tokens left in the minute after this call's tokens were charged.
    pub remaining_tokens: Option<u64>,
}

impl ScopeLimits {
    /// Whether nothing is known.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none()
    }

    /// Keeps the tighter of two buckets of the same kind.
    pub(super) fn note_requests(&mut self, limit: u64, remaining: u64) {
        if self.remaining_requests.is_none_or(|r| remaining < r) {
            self.rpm = Some(limit);
            self.remaining_requests = Some(remaining);
        }
    }

    pub(super) fn note_tokens(&mut self, limit: u64, remaining: u64) {
        if self.remaining_tokens.is_none_or(|r| remaining < r) {
            self.tpm = Some(limit);
            self.remaining_tokens = Some(remaining);
        }
    }
}

/// "Not known" in a cell.
const NONE: u64 = u64::MAX;

#[derive(Debug)]
struct Cells([AtomicU64; 4]);

impl Default for Cells {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(NONE)))
    }
}

impl Cells {
    fn store(&self, s: &ScopeLimits) {
        for (cell, v) in self
            .0
            .iter()
            .zip([s.rpm, s.remaining_requests, s.tpm, s.remaining_tokens])
        {
            if let Some(v) = v {
                cell.store(v.min(NONE - 1), Ordering::Relaxed);
            }
        }
    }

    fn load(&self) -> Option<ScopeLimits> {
        let get = |i: usize| {
            self.0
                .get(i)
                .map(|c| c.load(Ordering::Relaxed))
                .filter(|v| *v != NONE)
        };
        let s = ScopeLimits {
            rpm: get(0),
            remaining_requests: get(1),
            tpm: get(2),
            remaining_tokens: get(3),
        };
        (!s.is_empty()).then_some(s)
    }

    /// Takes `tokens` off the remaining tokens, once the call's tokens are charged.
    fn charge(&self, tokens: u64) {
        if let Some(cell) = self.0.get(3) {
            let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                (v != NONE).then(|| v.saturating_sub(tokens))
            });
        }
    }
}

/// The remaining requests and tokens of the caller's `key` and `team` buckets, per call: put
/// into the request extensions by a layer outside the rate limits that wants them (the
/// [call recorder](crate::callbacks::CallRecordLayer) does when Prometheus is on), filled by
/// the [`RateLimit`](super::RateLimit) layer when it admits (or refuses) the call, and brought
/// up to date when the call's tokens are charged (at its end: a stream's when it ends). Read it
/// once the call ended. Cheap to clone (one `Arc` of atomics); the rate-limit layer writes it
/// with relaxed stores and nothing else.
///
/// ```
/// use llmgate::rate_limit::{LimitReport, Quota, RateLimitLayer};
/// # use llmgate::{LlmRequest, LlmResponse, LlmError};
/// # use tower::{Layer as _, ServiceExt as _};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # let inner = tower::service_fn(|_r: LlmRequest| async { Ok::<_, LlmError>(LlmResponse::chat(Default::default())) });
/// let svc = RateLimitLayer::per_key(Quota::rpm(10)).layer(inner);
/// let mut req = LlmRequest::chat(serde_json::from_str(r#"{"model":"m","messages":[]}"#).unwrap());
/// let report = LimitReport::default();
/// req.extensions.insert(report.clone());
/// svc.oneshot(req).await.unwrap();
/// let key = report.key().unwrap();
/// assert_eq!((key.rpm, key.remaining_requests), (Some(10), Some(9)));
/// assert!(report.team().is_none());
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct LimitReport(Arc<[Cells; 2]>);

impl LimitReport {
    /// The caller's key's bucket (kind `key`), when it has an rpm or tpm limit.
    #[must_use]
    pub fn key(&self) -> Option<ScopeLimits> {
        self.0[0].load()
    }

    /// The caller's team's bucket (kind `team`), when it has an rpm or tpm limit.
    #[must_use]
    pub fn team(&self) -> Option<ScopeLimits> {
        self.0[1].load()
    }

    pub(super) fn store(&self, key: &ScopeLimits, team: &ScopeLimits) {
        self.0[0].store(key);
        self.0[1].store(team);
    }

    pub(super) fn charge(&self, tokens: u64) {
        if tokens > 0 {
            for c in self.0.iter() {
                c.charge(tokens);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_until_stored_then_charged_without_going_below_zero() {
        let r = LimitReport::default();
        assert_eq!((r.key(), r.team()), (None, None));
        let mut key = ScopeLimits::default();
        key.note_requests(10, 7);
        key.note_requests(5, 9); // a looser bucket of the same kind: ignored
        key.note_tokens(100, 40);
        let mut team = ScopeLimits::default();
        team.note_requests(3, 0);
        r.store(&key, &team);
        r.charge(15);
        let k = r.key().unwrap();
        assert_eq!(
            (k.rpm, k.remaining_requests, k.tpm, k.remaining_tokens),
            (Some(10), Some(7), Some(100), Some(25))
        );
        // The team has no tpm: charging leaves it unknown.
        let t = r.team().unwrap();
        assert_eq!((t.remaining_requests, t.remaining_tokens), (Some(0), None));
        r.charge(1_000);
        assert_eq!(r.key().unwrap().remaining_tokens, Some(0));
        // A second, partial picture (refused before tpm was read) keeps what it does not know.
        let mut again = ScopeLimits::default();
        again.note_requests(10, 0);
        r.store(&again, &ScopeLimits::default());
        let k = r.key().unwrap();
        assert_eq!(
            (k.remaining_requests, k.remaining_tokens),
            (Some(0), Some(0))
        );
    }
}
