//! The request-extension vocabulary: every type one layer puts into
//! [`LlmRequest::extensions`](super::LlmRequest) for another to read, in one place at the bottom of
//! the import graph, so that no layer imports another layer (or the HTTP edge) for a word.
//!
//! Each type says who writes it and who reads it. A layer that finds an extension missing behaves
//! as documented there (usually: as if the writer were not in the stack), so every layer also
//! works alone in a client stack.
//!
//! | extension | written by | read by |
//! | --- | --- | --- |
//! | [`PresentedKey`] | the edge (`Authorization`, `x-api-key`, …) | auth, cache (scope when no [`CacheScope`]) |
//! | [`CallId`] | the edge (`x-litellm-call-id` or generated) | cost / spend log, access log |
//! | [`ReceivedAt`] | the edge | cost (overhead), access log |
//! | [`CacheControlHeader`] | the edge (`Cache-Control`) | cache |
//! | [`RequestTimeout`] | the edge (`x-litellm-timeout`) | timeout |
//! | [`CacheScope`] | auth (from the key's team or id) | cache |
//! | [`SelectedDeployment`] | router | the deployment stack (provider, health, timeout) |
//! | [`AttemptLog`] | retry (inserts), router (writes) | retry |
//! | [`UsageReport`] | rate limit (inserts), cost (fills) | rate limit (tpm) |
//! | [`TraceParent`] | the edge (W3C `traceparent`, `tracestate`) | telemetry (the request span's parent) |
//!
//! The identity of the caller is `Arc<auth::KeyInfo>`, written by auth and read by the governance
//! layers; the typed per-request controls are [`GatewayControls`](super::controls::GatewayControls),
//! kept on the request itself.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use http::HeaderValue;

use super::deployment::Deployment;
use crate::secret::Secret;

/// The key the caller presented, as read from the request headers.
///
/// Written by the edge; read by the auth layers (to look it up) and by the cache (as the scope of a
/// caller without a resolved [`CacheScope`]: the key only enters a digest, it is never stored).
#[derive(Clone, Debug)]
pub struct PresentedKey(pub Secret);

/// The call id of a request (`x-litellm-call-id`): taken from the client's header or generated.
///
/// Written by the edge; read by the cost layer (spend-log rows are keyed by it) and the access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallId(pub Arc<str>);

/// The client's W3C trace context (`traceparent`, and `tracestate` when sent), as received.
///
/// Written by the edge when the request has a `traceparent` header; read by the telemetry
/// layer, whose request span becomes its child. Without the layer nothing reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// The `traceparent` header.
    pub traceparent: HeaderValue,
    /// The `tracestate` header.
    pub tracestate: Option<HeaderValue>,
}

/// A new call id: a UUID v7 string (RFC 9562: Unix milliseconds, then random bits).
#[must_use]
pub fn new_call_id() -> String {
    let mut buf = [0u8; 36];
    write_uuid(&mut buf).to_owned()
}

/// Writes a UUID v7 into `buf` (hex digits by hand: `format!` cost more than the rest of the
/// call-id handling together).
///
/// Version 7 rather than 4: the call id is the spend log's primary key, and ids that grow with
/// time land at the right edge of that index. Random v4 ids put each row on a random index page,
/// so a batch of 500 rows rewrote hundreds of pages (in SQLite's WAL, or PostgreSQL's). 74 random
/// bits per millisecond keep ids unique.
pub(crate) fn write_uuid(buf: &mut [u8; 36]) -> &str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Where each byte's two digits go in `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut bytes = fastrand::u128(..).to_be_bytes();
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = (bytes[6] & 0x0f) | 0x70; // version 7
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
    for (b, at) in bytes.iter().zip(AT) {
        buf[at] = HEX[usize::from(b >> 4)];
        buf[at + 1] = HEX[usize::from(b & 0xf)];
    }
    for dash in [8, 13, 18, 23] {
        buf[dash] = b'-';
    }
    // Only ASCII hex digits and dashes were written.
    std::str::from_utf8(buf).unwrap_or_default()
}

/// When the gateway received the request, for overhead accounting.
///
/// Written by the edge; read by the cost layer and the access log.
#[derive(Clone, Copy, Debug)]
pub struct ReceivedAt(pub Instant);

/// The request's `Cache-Control` header, as sent.
///
/// Written by the edge; read by the cache layer.
#[derive(Clone, Debug)]
pub struct CacheControlHeader(pub HeaderValue);

/// A per-request timeout the client asked for in a header (seconds); it wins over the body's
/// `timeout` and the deployment's, but never lengthens the operator's limit.
///
/// Written by the edge (from `x-litellm-timeout`); read by the [timeout](crate::timeout) layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestTimeout(pub Duration);

impl RequestTimeout {
    /// Parses a header value of positive seconds (fractions allowed); `None` for anything else.
    #[must_use]
    pub fn from_header_value(value: &HeaderValue) -> Option<Self> {
        let secs = value.to_str().ok()?.trim().parse::<f64>().ok()?;
        (secs.is_finite() && secs > 0.0 && secs < 1e9).then(|| Self(Duration::from_secs_f64(secs)))
    }
}

/// Which cache entries a request may read and write.
///
/// Written by the auth layer once it resolved the caller's virtual key (its team, else the key);
/// read by the [cache](crate::cache). Without it the cache scopes by the [`PresentedKey`], else
/// the anonymous tenant. A [`CacheLayer`](crate::cache::CacheLayer) in shared mode ignores scopes
/// altogether.
///
/// ```
/// use llmgate::types::extensions::CacheScope;
/// # let mut req = llmgate::LlmRequest::list_models();
/// // What an auth layer does once it resolved the caller's virtual key:
/// req.extensions.insert(CacheScope::team("team-42"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheScope(Arc<str>);

impl CacheScope {
    /// Entries shared by every key of a team.
    #[must_use]
    pub fn team(team_id: &str) -> Self {
        Self(format!("team:{team_id}").into())
    }

    /// Entries private to one key. Pass a stable, non-secret id of the key (its hashed token),
    /// never the key itself.
    #[must_use]
    pub fn key(key_id: &str) -> Self {
        Self(format!("key:{key_id}").into())
    }

    /// Entries shared with every caller that is also in the shared scope.
    #[must_use]
    pub fn shared() -> Self {
        Self(Arc::from(""))
    }

    /// The scope as a string (part of the cache key).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The deployment the router chose for this attempt.
///
/// Written by the [router](crate::router) before it calls a deployment's stack; read by that
/// stack's layers (provider, health, timeout) and by outer layers' tests.
#[derive(Clone, Debug)]
pub struct SelectedDeployment(pub Arc<Deployment>);

/// What the router learned about one request's attempts, shared between the clones of a request.
///
/// Inserted by the [retry](crate::retry) layer, written by the [router](crate::router) after each
/// attempt, read back by retry to decide how to retry (another deployment at once, or wait).
/// Uncontended: one per request.
#[derive(Clone, Debug, Default)]
pub struct AttemptLog(Arc<Mutex<AttemptLogInner>>);

#[derive(Debug, Default)]
struct AttemptLogInner {
    failed: Vec<Arc<str>>,
    others_available: bool,
    refused: bool,
    max_retries: Option<u32>,
    available_in: Option<Duration>,
}

/// A snapshot of an [`AttemptLog`] after an attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastAttempt {
    /// Another healthy deployment of the group is left to try at once.
    pub others_available: bool,
    /// The router refused the attempt itself (all cooling, at limits): there was nothing to call.
    pub refused: bool,
    /// The failing deployment's `max_retries`, if it sets one.
    pub max_retries: Option<u32>,
    /// Deployments that failed this request so far.
    pub failures: usize,
    /// When every deployment of the group was cooling after the failure: how soon the first one
    /// is back (`None`: one is available now).
    pub available_in: Option<Duration>,
}

impl AttemptLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, AttemptLogInner> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the last attempt left behind.
    #[must_use]
    pub fn last_attempt(&self) -> LastAttempt {
        let g = self.lock();
        LastAttempt {
            others_available: g.others_available,
            refused: g.refused,
            max_retries: g.max_retries,
            failures: g.failed.len(),
            available_in: g.available_in,
        }
    }

    /// An attempt starts.
    pub fn begin(&self) {
        self.lock().refused = false;
    }

    /// The router refused the attempt itself: nothing was called.
    pub fn refused(&self) {
        let mut g = self.lock();
        g.refused = true;
        g.others_available = false;
    }

    /// Deployment `id` failed; `others` says whether another one is available at once, else
    /// `available_in` how soon one is.
    pub fn failed(
        &self,
        id: Arc<str>,
        max_retries: Option<u32>,
        others: bool,
        available_in: Option<Duration>,
    ) {
        let mut g = self.lock();
        if !g.failed.contains(&id) {
            g.failed.push(id);
        }
        g.max_retries = max_retries;
        g.others_available = others;
        g.available_in = available_in;
    }

    /// Whether deployment `id` already failed this request.
    #[must_use]
    pub fn has_failed(&self, id: &str) -> bool {
        self.lock().failed.iter().any(|f| &**f == id)
    }
}

/// The total tokens of a call, filled when its response ends.
///
/// Inserted by the [rate limit](crate::rate_limit) layer (tpm), filled by the
/// [cost](crate::cost) layer from the usage it priced; read back by the rate limit.
#[derive(Clone, Debug, Default)]
pub struct UsageReport(pub Arc<AtomicU64>);

impl UsageReport {
    /// Total tokens reported so far.
    #[must_use]
    pub fn total_tokens(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Adds `tokens` to the report.
    pub fn add(&self, tokens: u64) {
        self.0.fetch_add(tokens, Ordering::AcqRel);
    }
}

/// Set once a server's shutdown grace period has run out (see [`grace_over`]).
static GRACE_OVER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a shutdown grace period of a [server](crate::server::serve) in this process has run
/// out: the requests still in flight are then being cut by the server, not abandoned by their
/// clients. Written by the server; read by the cost layer when a call is dropped before its end,
/// to mark its spend row ([`STATUS_CUT_AT_SHUTDOWN`](crate::cost::STATUS_CUT_AT_SHUTDOWN)).
/// Process-wide and never reset: it is meant for a process that is exiting.
#[must_use]
pub fn grace_over() -> bool {
    GRACE_OVER.load(Ordering::Relaxed)
}

/// Marks the shutdown grace period as over (see [`grace_over`]).
pub(crate) fn set_grace_over() {
    GRACE_OVER.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_uuid_v7() {
        let a = new_call_id();
        // The next id from a later millisecond (the first 13 characters are the timestamp).
        let b = loop {
            let b = new_call_id();
            if b[..13] != a[..13] {
                break b;
            }
        };
        // Time-ordered: a later id sorts after an earlier one.
        assert!(a < b, "{a} {b}");
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let stamp = u128::from_str_radix(&b.replace('-', "")[..12], 16).unwrap();
        assert!(stamp <= millis && millis - stamp < 60_000, "{b}");
        assert_ne!(a, b);
        for id in [&a, &b] {
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(id
                .chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
            assert_eq!(&parts[2][..1], "7", "{id}");
            assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
        }
    }
}
