//! Rate limits: requests per minute (`rpm`), tokens per minute (`tpm`) and calls in flight
//! (`max_parallel`), counted in buckets that a [`RateLimitPolicy`] picks for each call.
//!
//! # Policies
//!
//! A policy looks at the request (its extensions) and yields the [`Bucket`]s that apply, each with
//! a [`Quota`]; a call is admitted only when all of them have room ([`policy`]):
//!
//! - [`RateLimitLayer::new`] ([`KeyInfoLimits`]): the gateway's behaviour, the `rpm_limit`,
//!   `tpm_limit` and `max_parallel_requests` of the caller's virtual key, team and user, from the
//!   `Arc<KeyInfo>` auth puts into the extensions.
//! - [`RateLimitLayer::per_key`] ([`PerKey`]): one quota per caller key, no key store needed.
//! - [`RateLimitLayer::global`] ([`Global`]): one quota for every call, e.g. a client stack that
//!   must stay under a provider's account limit.
//! - [`RateLimitLayer::with_policy`]: any [`RateLimitPolicy`], including a closure
//!   `Fn(&LlmRequest) -> Vec<Bucket>`.
//!
//! Model listings are never limited.
//!
//! # Backends
//!
//! Two, chosen by config:
//!
//! - [`Counters::memory`] (one gateway): `rpm` is a GCRA limiter per bucket from `governor` (a
//!   burst of `rpm` calls, then one call every `60/rpm` s); `tpm` a counter per minute; parallel
//!   calls an atomic counter.
//! - [`Counters::redis`] (many gateways): one Lua script checks every bucket and takes its share
//!   atomically, in fixed one-minute windows on the Redis clock, so `N` gateways together allow
//!   `rpm` calls, not `N × rpm`. Every Redis call has a short deadline and a circuit breaker
//!   ([`crate::redis_guard`]): when Redis fails, times out or is marked down, the call is counted
//!   by in-process counters instead (the limits hold per process, so `N` gateways allow up to
//!   `N × rpm` until Redis answers again); the outage is logged once. A Redis that is down at
//!   start fails the start.
//!
//! # Tokens
//!
//! `tpm` is counted by this layer itself, from the call's own answer, so it does not depend on
//! any other layer: the usage of a whole answer ([`ResponseMeta::usage`](crate::types::ResponseMeta),
//! else the body's), and on a stream the usage chunk. When a bucket has a `tpm` limit and a
//! streaming client did not ask for usage, the layer asks for it
//! (`stream_options.include_usage`) and leaves the usage chunk out of what the client receives.
//! A call cut short (the client went away, the stream failed, the response future was dropped)
//! without reported usage is charged the estimated prompt plus the text delivered
//! ([`estimate_prompt_tokens`](crate::cost::estimate_prompt_tokens),
//! [`estimate_tokens`](crate::cost::estimate_tokens): the cost layer's estimate); a call that
//! failed before answering is charged nothing. An inner layer may also report a count through
//! the [`UsageReport`](crate::cost::UsageReport) extension this layer inserts (the cost layer
//! does); the larger count is charged. Tokens are charged when the response ends; a call is
//! refused when the minute's tokens already reached the limit, so one call can overshoot by its
//! own size. Parallel slots are released when the response (or stream) ends or is dropped.
//!
//! Every response carries `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`,
//! `x-ratelimit-limit-tokens` and `x-ratelimit-remaining-tokens` (for the most constrained bucket
//! that has such a limit); a refused call gets 429 ([`ErrorKind::RateLimit`]) with `retry-after`.
//!
//! The numbers of the caller's `key` and `team` buckets also go, as typed numbers, into a
//! [`LimitReport`] when a layer outside put one into the request extensions (the call recorder
//! does when Prometheus is on: `litellm_remaining_api_key_requests_for_model` and its kin read it,
//! never the headers, which may be the provider's).
//!
//! Place in the default order: after auth (it needs the key), before budget and cost.
//!
//! Extensions read: `Arc<KeyInfo>` ([`KeyInfoLimits`], [`PerKey`]),
//! [`PresentedKey`](crate::auth::PresentedKey) ([`PerKey`]), whatever a custom policy reads;
//! written: [`UsageReport`](crate::cost::UsageReport), and a [`LimitReport`] found there. Errors:
//! `RateLimit`.
//!
//! # Examples
//!
//! The gateway's limits, one gateway: in-process counters.
//!
//! ```
//! use llmgate::rate_limit::{Counters, RateLimitLayer};
//! # use llmgate::{LlmRequest, LlmResponse, LlmError};
//! # let inner = tower::service_fn(|_r: LlmRequest| async { Err::<LlmResponse, _>(LlmError::internal("x")) });
//! let svc = tower::ServiceBuilder::new()
//!     .layer(RateLimitLayer::new(Counters::memory()))
//!     .service(inner);
//! # let _ = svc;
//! ```
//!
//! A client stack without virtual keys: 60 calls and 100k tokens a minute in all, and at most
//! 8 in flight per tenant, the tenant being an extension the application sets:
//!
//! ```
//! use llmgate::rate_limit::{Bucket, Counters, Quota, RateLimitLayer};
//! use llmgate::LlmRequest;
//! # use llmgate::{LlmResponse, LlmError};
//! # let inner = tower::service_fn(|_r: LlmRequest| async { Err::<LlmResponse, _>(LlmError::internal("x")) });
//! #[derive(Clone)]
//! struct Tenant(String);
//!
//! let by_tenant = |req: &LlmRequest| match req.extensions.get::<Tenant>() {
//!     Some(t) => vec![Bucket::new("tenant", &t.0, Quota::default().max_parallel(8))],
//!     None => Vec::new(),
//! };
//! let svc = tower::ServiceBuilder::new()
//!     .layer(RateLimitLayer::global(Quota::rpm(60).tpm(100_000)))
//!     .layer(RateLimitLayer::with_policy(Counters::memory(), by_tenant))
//!     .service(inner);
//! # let _ = svc;
//! ```
//!
//! Many gateways sharing limits through Redis:
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use llmgate::rate_limit::{Counters, RateLimitLayer};
//! let layer = RateLimitLayer::new(Counters::redis("redis://127.0.0.1:6379", "llmgate").await?);
//! # let _ = layer; Ok(()) }
//! ```

mod memory;
pub mod policy;
mod redis;
mod report;
mod service;

use std::{sync::Arc, time::Duration};

use http::{HeaderMap, HeaderName, HeaderValue};

pub use self::{
    memory::MemoryCounters,
    policy::{Bucket, Global, KeyInfoLimits, PerEndUser, PerKey, Quota, RateLimitPolicy},
    redis::RedisCounters,
    report::{LimitReport, ScopeLimits},
    service::{RateLimit, RateLimitLayer, ResponseFuture},
};
use crate::{
    error::{ErrorKind, LlmError},
    redis_guard::Breaker,
};

/// The outcome of an admission check.
#[derive(Clone, Debug, Default)]
pub(super) struct Decision {
    /// Refused: (scope kind, `requests` | `tokens` | `parallel requests`, limit, retry after).
    pub(super) refused: Option<(&'static str, &'static str, u64, Duration)>,
    limit_requests: Option<u64>,
    remaining_requests: Option<u64>,
    limit_tokens: Option<u64>,
    remaining_tokens: Option<u64>,
    /// Counted by the in-process fallback (Redis was down): released there too.
    pub(super) local: bool,
    /// The `key` buckets' numbers, for [`LimitReport`].
    key: ScopeLimits,
    /// The `team` buckets' numbers, for [`LimitReport`].
    team: ScopeLimits,
}

impl Decision {
    fn scope(&mut self, kind: &str) -> Option<&mut ScopeLimits> {
        match kind {
            "key" => Some(&mut self.key),
            "team" => Some(&mut self.team),
            _ => None,
        }
    }

    /// A bucket of `kind` with `limit` requests a minute has `remaining` left.
    fn note_requests(&mut self, kind: &str, limit: u64, remaining: u64) {
        if let Some(s) = self.scope(kind) {
            s.note_requests(limit, remaining);
        }
        if self.remaining_requests.is_none_or(|r| remaining < r) {
            self.limit_requests = Some(limit);
            self.remaining_requests = Some(remaining);
        }
    }

    /// A bucket of `kind` with `limit` tokens a minute has `remaining` left.
    fn note_tokens(&mut self, kind: &str, limit: u64, remaining: u64) {
        if let Some(s) = self.scope(kind) {
            s.note_tokens(limit, remaining);
        }
        if self.remaining_tokens.is_none_or(|r| remaining < r) {
            self.limit_tokens = Some(limit);
            self.remaining_tokens = Some(remaining);
        }
    }

    /// Hands the key and team numbers to `report`.
    pub(super) fn report(&self, report: &LimitReport) {
        report.store(&self.key, &self.team);
    }

    pub(super) fn headers(&self, h: &mut HeaderMap) {
        const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
        const REMAINING_REQUESTS: HeaderName =
            HeaderName::from_static("x-ratelimit-remaining-requests");
        const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
        const REMAINING_TOKENS: HeaderName =
            HeaderName::from_static("x-ratelimit-remaining-tokens");
        let mut put = |name: HeaderName, v: Option<u64>| {
            if let Some(v) = v {
                h.insert(name, HeaderValue::from(v));
            }
        };
        put(LIMIT_REQUESTS, self.limit_requests);
        put(REMAINING_REQUESTS, self.remaining_requests);
        put(LIMIT_TOKENS, self.limit_tokens);
        put(REMAINING_TOKENS, self.remaining_tokens);
    }

    pub(super) fn error(&self) -> Option<LlmError> {
        let (kind, what, limit, wait) = self.refused?;
        let mut e = LlmError::new(
            ErrorKind::RateLimit,
            format!(
                "Rate limit exceeded for {kind}: {what} limit of {limit}{} reached. Retry after {}s.",
                if what == "parallel requests" { "" } else { " per minute" },
                wait.as_secs().max(1)
            ),
        )
        .with_type("rate_limit_error")
        .with_code("429")
        .with_retry_after(wait.max(Duration::from_secs(1)));
        self.headers(e.headers_mut());
        Some(e)
    }
}

/// Where the counters live. See the [module docs](self).
#[derive(Clone, Debug)]
pub enum Counters {
    /// In this process.
    Memory(Arc<MemoryCounters>),
    /// In Redis, shared by every gateway using the same Redis and prefix.
    Redis(RedisCounters),
}

/// Redis could not be reached for the rate-limit counters; the Redis client's error is the
/// [`source`](std::error::Error::source).
#[derive(Debug)]
pub struct RedisConnectError(crate::error::BoxError);

impl std::fmt::Display for RedisConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for RedisConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl Counters {
    /// In-process counters.
    #[must_use]
    pub fn memory() -> Self {
        Self::Memory(Arc::default())
    }

    /// These counters with their in-process windows (rpm limiters, tpm minutes, and the
    /// fallback counters while Redis is down) on `clock` (default: [`Clock::system`](crate::clock::Clock::system)).
    /// For building: the in-process counts start again. The shared Redis windows stay on the
    /// Redis server's clock, which every gateway sharing them agrees on.
    #[must_use]
    pub fn with_clock(self, clock: crate::clock::Clock) -> Self {
        match self {
            Self::Memory(_) => Self::Memory(Arc::new(MemoryCounters::with_clock(clock))),
            Self::Redis(r) => Self::Redis(r.with_local_clock(clock)),
        }
    }

    /// Counters in Redis at `url` (`redis://[:password@]host:port[/db]`), under `prefix`. Fails
    /// when Redis cannot be reached now.
    ///
    /// Each Redis call then gets [`crate::redis_guard::deadline_from_env`] (`REDIS_SOCKET_TIMEOUT`,
    /// default 100 ms); see the [module docs](self) for what happens when Redis is down later.
    ///
    /// # Errors
    /// Redis cannot be reached at `url` ([`RedisConnectError`], the client's error as its source).
    pub async fn redis(url: &str, prefix: &str) -> Result<Self, RedisConnectError> {
        RedisCounters::connect(url, prefix)
            .await
            .map(Self::Redis)
            .map_err(|e| RedisConnectError(Box::new(e)))
    }

    /// The breaker guarding Redis, for [`Counters::Redis`].
    #[must_use]
    pub fn breaker(&self) -> Option<&Breaker> {
        match self {
            Self::Memory(_) => None,
            Self::Redis(r) => Some(r.breaker()),
        }
    }

    pub(super) fn release(&self, scopes: &[Bucket], tokens: u64, local: bool) {
        match self {
            Self::Memory(m) => m.release(scopes, tokens),
            Self::Redis(r) => r.release(scopes, tokens, local),
        }
    }
}
