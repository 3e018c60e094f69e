//! Rate limits: requests per minute (`rpm_limit`), tokens per minute (`tpm_limit`) and concurrent
//! calls (`max_parallel_requests`) per key, team and user.
//!
//! Two backends, chosen by config:
//!
//! - [`Counters::memory`] (one gateway): `rpm` is a GCRA limiter per key/team/user from
//!   `governor` (a burst of `rpm` calls, then one call every `60/rpm` s); `tpm` a counter per
//!   minute; parallel calls an atomic counter.
//! - [`Counters::redis`] (many gateways): one Lua script checks every scope and takes its share
//!   atomically, in fixed one-minute windows on the Redis clock, so `N` gateways together allow
//!   `rpm` calls, not `N × rpm`. Every Redis call has a short deadline and a circuit breaker
//!   ([`crate::redis_guard`]): when Redis fails, times out or is marked down, the call is counted
//!   by in-process counters instead (the limits hold per process, so `N` gateways allow up to
//!   `N × rpm` until Redis answers again); the outage is logged once. A Redis that is down at
//!   start fails the start.
//!
//! `tpm` is charged from the call's actual usage when the response ends (the stream's usage chunk,
//! through the [`UsageReport`] the cost layer fills): a call is refused when the minute's tokens
//! already reached the limit, so one call can overshoot by its own size. Parallel slots are
//! released when the response (or stream) ends or is dropped.
//!
//! Every response carries `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`,
//! `x-ratelimit-limit-tokens` and `x-ratelimit-remaining-tokens` (for the most constrained scope
//! that has such a limit); a refused call gets 429 ([`ErrorKind::RateLimit`]) with `retry-after`.
//!
//! Place in the default order: after auth (it needs the key), before budget and cost.
//!
//! Extensions read: `Arc<KeyInfo>`; written: [`UsageReport`]. Errors: `RateLimit`.
//!
//! ```
//! use llmgate::rate_limit::{Counters, RateLimitLayer};
//! # use llmgate::{LlmRequest, LlmResponse, LlmError};
//! # let inner = tower::service_fn(|_r: LlmRequest| async { Err::<LlmResponse, _>(LlmError::internal("x")) });
//! // One gateway: in-process counters.
//! let svc = tower::ServiceBuilder::new()
//!     .layer(RateLimitLayer::new(Counters::memory()))
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

use std::{
    fmt,
    future::Future,
    num::NonZeroU32,
    pin::Pin,
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc,
    },
    task::{ready, Context, Poll},
    time::Duration,
};

use dashmap::DashMap;
use futures_core::Stream;
use governor::{
    clock::{Clock as _, DefaultClock},
    middleware::StateInformationMiddleware,
    state::{InMemoryState, NotKeyed},
    Quota, RateLimiter,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    auth::KeyInfo,
    cost::UsageReport,
    error::{ErrorKind, LlmError},
    redis_guard::Breaker,
    types::{ChatStream, ChunkBody, LlmRequest, LlmResponse, Operation, ResponseBody},
};

type Gcra = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// One scope's limits for a call.
#[derive(Clone, Debug)]
struct ScopeLimit {
    /// `key`, `team` or `user`.
    kind: &'static str,
    /// `kind:id`, the counter name.
    name: String,
    rpm: Option<u64>,
    tpm: Option<u64>,
    parallel: Option<u64>,
}

fn pos(v: Option<i64>) -> Option<u64> {
    v.and_then(|n| u64::try_from(n).ok())
}

fn scopes(info: &KeyInfo) -> Vec<ScopeLimit> {
    let mut out = Vec::with_capacity(3);
    let mut push = |kind: &'static str, id: &str, l: &crate::store::Limits| {
        let s = ScopeLimit {
            kind,
            name: format!("{kind}:{id}"),
            rpm: pos(l.rpm_limit),
            tpm: pos(l.tpm_limit),
            parallel: pos(l.max_parallel_requests),
        };
        if s.rpm.is_some() || s.tpm.is_some() || s.parallel.is_some() {
            out.push(s);
        }
    };
    push("key", &info.token, &info.key.limits);
    if let Some(t) = &info.team {
        push("team", &t.id, &t.limits);
    }
    if let Some(u) = &info.user {
        push("user", &u.id, &u.limits);
    }
    out
}

/// The outcome of an admission check.
#[derive(Clone, Debug, Default)]
struct Decision {
    /// Refused: (scope kind, `requests` | `tokens` | `parallel requests`, limit, retry after).
    refused: Option<(&'static str, &'static str, u64, Duration)>,
    limit_requests: Option<u64>,
    remaining_requests: Option<u64>,
    limit_tokens: Option<u64>,
    remaining_tokens: Option<u64>,
    /// Counted by the in-process fallback (Redis was down): released there too.
    local: bool,
}

impl Decision {
    fn note_requests(&mut self, limit: u64, remaining: u64) {
        if self.remaining_requests.is_none_or(|r| remaining < r) {
            self.limit_requests = Some(limit);
            self.remaining_requests = Some(remaining);
        }
    }

    fn note_tokens(&mut self, limit: u64, remaining: u64) {
        if self.remaining_tokens.is_none_or(|r| remaining < r) {
            self.limit_tokens = Some(limit);
            self.remaining_tokens = Some(remaining);
        }
    }

    fn headers(&self, h: &mut HeaderMap) {
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

    fn error(&self) -> Option<LlmError> {
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

/// In-process counters.
#[derive(Default)]
pub struct MemoryCounters {
    rpm: DashMap<String, (u64, Arc<Gcra>)>,
    tpm: DashMap<String, (u64, u64)>,
    parallel: DashMap<String, Arc<AtomicI64>>,
}

impl fmt::Debug for MemoryCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCounters")
            .field("scopes", &self.rpm.len())
            .finish_non_exhaustive()
    }
}

fn minute() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

fn to_next_minute() -> Duration {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Duration::from_secs(60 - secs % 60)
}

impl MemoryCounters {
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
                RateLimiter::direct(Quota::per_minute(burst))
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
        let now = minute();
        self.tpm
            .get(name)
            .map_or(0, |e| if e.0 == now { e.1 } else { 0 })
    }

    fn admit(&self, scopes: &[ScopeLimit]) -> Decision {
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
                    d.note_tokens(tpm, 0);
                    d.refused = Some((s.kind, "tokens", tpm, to_next_minute()));
                    return d;
                }
                d.note_tokens(tpm, tpm - used);
            }
        }
        for s in scopes {
            if let Some(rpm) = s.rpm {
                let lim = self.limiter(&s.name, rpm);
                match lim.check() {
                    Ok(snap) => d.note_requests(rpm, u64::from(snap.remaining_burst_capacity())),
                    Err(not_until) => {
                        give_back(&taken);
                        d.note_requests(rpm, 0);
                        let wait = not_until.wait_time_from(DefaultClock::default().now());
                        d.refused = Some((s.kind, "requests", rpm, wait));
                        return d;
                    }
                }
            }
        }
        d
    }

    fn release(&self, scopes: &[ScopeLimit], tokens: u64) {
        let now = minute();
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

const ADMIT_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1])
local win = math.floor(now / 60)
local retry = 60 - (now % 60)
local n = tonumber(ARGV[1])
for i = 1, n do
  local b = KEYS[i]
  local rpm = tonumber(ARGV[2 + (i - 1) * 3])
  local tpm = tonumber(ARGV[3 + (i - 1) * 3])
  local par = tonumber(ARGV[4 + (i - 1) * 3])
  if par >= 0 then
    local c = tonumber(redis.call('GET', b .. ':par') or '0')
    if c + 1 > par then return {0, i, 3, 1} end
  end
  if tpm >= 0 then
    local c = tonumber(redis.call('GET', b .. ':tpm:' .. win) or '0')
    if c >= tpm then return {0, i, 2, retry} end
  end
  if rpm >= 0 then
    local c = tonumber(redis.call('GET', b .. ':rpm:' .. win) or '0')
    if c + 1 > rpm then return {0, i, 1, retry} end
  end
end
local out = {1, 0, 0, 0}
for i = 1, n do
  local b = KEYS[i]
  local rpm = tonumber(ARGV[2 + (i - 1) * 3])
  local tpm = tonumber(ARGV[3 + (i - 1) * 3])
  local par = tonumber(ARGV[4 + (i - 1) * 3])
  local rem_r = -1
  local rem_t = -1
  if rpm >= 0 then
    local k = b .. ':rpm:' .. win
    local c = redis.call('INCR', k)
    if c == 1 then redis.call('EXPIRE', k, 120) end
    rem_r = rpm - c
  end
  if tpm >= 0 then
    rem_t = tpm - tonumber(redis.call('GET', b .. ':tpm:' .. win) or '0')
  end
  if par >= 0 then
    redis.call('INCR', b .. ':par')
    redis.call('EXPIRE', b .. ':par', 3600)
  end
  table.insert(out, rem_r)
  table.insert(out, rem_t)
end
return out
";

const RELEASE_LUA: &str = r"
local t = redis.call('TIME')
local win = math.floor(tonumber(t[1]) / 60)
local tokens = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
for i = 1, n do
  local b = KEYS[i]
  local par = tonumber(ARGV[2 + (i - 1) * 2 + 1])
  local tpm = tonumber(ARGV[2 + (i - 1) * 2 + 2])
  if par >= 0 then
    local c = redis.call('DECR', b .. ':par')
    if c < 0 then redis.call('SET', b .. ':par', 0) end
  end
  if tpm >= 0 and tokens > 0 then
    local k = b .. ':tpm:' .. win
    redis.call('INCRBY', k, tokens)
    redis.call('EXPIRE', k, 120)
  end
end
return 1
";

/// Counters shared through Redis, with in-process counters for when Redis is down.
#[derive(Clone)]
pub struct RedisCounters {
    conn: redis::aio::ConnectionManager,
    prefix: Arc<str>,
    admit: Arc<redis::Script>,
    release: Arc<redis::Script>,
    errors: Arc<AtomicU64>,
    breaker: Breaker,
    local: Arc<MemoryCounters>,
}

impl fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCounters")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn lim(v: Option<u64>) -> i64 {
    v.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

impl RedisCounters {
    /// The breaker guarding this Redis (for readiness).
    #[must_use]
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Counts the call in process (Redis is down).
    fn admit_locally(&self, scopes: &[ScopeLimit]) -> Decision {
        let mut d = self.local.admit(scopes);
        d.local = true;
        d
    }

    async fn admit(&self, scopes: &[ScopeLimit]) -> Decision {
        if self.breaker.skip() {
            return self.admit_locally(scopes);
        }
        let mut inv = self.admit.prepare_invoke();
        inv.arg(scopes.len());
        for s in scopes {
            inv.key(format!("{}:rl:{}", self.prefix, s.name));
            inv.arg(lim(s.rpm)).arg(lim(s.tpm)).arg(lim(s.parallel));
        }
        let mut conn = self.conn.clone();
        let out: Vec<i64> = match self
            .breaker
            .run(inv.invoke_async::<Vec<i64>>(&mut conn))
            .await
        {
            Ok(v) => v,
            Err(_) => {
                // The breaker logged the outage; count the call here meanwhile.
                self.errors.fetch_add(1, Ordering::Relaxed);
                return self.admit_locally(scopes);
            }
        };
        let mut d = Decision::default();
        let get = |i: usize| out.get(i).copied().unwrap_or(-1);
        if get(0) == 0 {
            let idx = usize::try_from(get(1) - 1).unwrap_or(0);
            let Some(s) = scopes.get(idx) else {
                return d;
            };
            let wait = Duration::from_secs(u64::try_from(get(3)).unwrap_or(1).max(1));
            d.refused = Some(match get(2) {
                1 => {
                    let l = s.rpm.unwrap_or(0);
                    d.note_requests(l, 0);
                    (s.kind, "requests", l, wait)
                }
                2 => {
                    let l = s.tpm.unwrap_or(0);
                    d.note_tokens(l, 0);
                    (s.kind, "tokens", l, wait)
                }
                _ => (s.kind, "parallel requests", s.parallel.unwrap_or(0), wait),
            });
            return d;
        }
        for (i, s) in scopes.iter().enumerate() {
            if let Some(l) = s.rpm {
                d.note_requests(l, u64::try_from(get(4 + 2 * i)).unwrap_or(0));
            }
            if let Some(l) = s.tpm {
                d.note_tokens(l, u64::try_from(get(5 + 2 * i)).unwrap_or(0));
            }
        }
        d
    }

    fn release(&self, scopes: &[ScopeLimit], tokens: u64, local: bool) {
        if local {
            self.local.release(scopes, tokens);
            return;
        }
        if !scopes
            .iter()
            .any(|s| s.parallel.is_some() || (s.tpm.is_some() && tokens > 0))
        {
            return;
        }
        let keys: Vec<String> = scopes
            .iter()
            .map(|s| format!("{}:rl:{}", self.prefix, s.name))
            .collect();
        let args: Vec<i64> = scopes
            .iter()
            .flat_map(|s| [lim(s.parallel), lim(s.tpm)])
            .collect();
        let script = self.release.clone();
        let mut conn = self.conn.clone();
        let errors = self.errors.clone();
        let breaker = self.breaker.clone();
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        tokio::spawn(async move {
            let mut inv = script.prepare_invoke();
            inv.arg(tokens).arg(keys.len());
            for k in &keys {
                inv.key(k);
            }
            for a in &args {
                inv.arg(*a);
            }
            // A slot that cannot be given back expires with its key (one hour); the breaker
            // logged the outage.
            if breaker
                .run(inv.invoke_async::<i64>(&mut conn))
                .await
                .is_err()
            {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        });
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

impl Counters {
    /// In-process counters.
    #[must_use]
    pub fn memory() -> Self {
        Self::Memory(Arc::default())
    }

    /// Counters in Redis at `url` (`redis://[:password@]host:port[/db]`), under `prefix`. Fails
    /// when Redis cannot be reached now.
    ///
    /// Each Redis call then gets [`crate::redis_guard::deadline_from_env`] (`REDIS_SOCKET_TIMEOUT`,
    /// default 100 ms); see the [module docs](self) for what happens when Redis is down later.
    pub async fn redis(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let deadline = crate::redis_guard::deadline_from_env();
        let client = redis::Client::open(url)?;
        let conn = redis::aio::ConnectionManager::new_with_config(
            client,
            crate::redis_guard::manager_config(deadline),
        )
        .await?;
        let admit = Arc::new(redis::Script::new(ADMIT_LUA));
        let release = Arc::new(redis::Script::new(RELEASE_LUA));
        let load = {
            let (conn, admit, release) = (conn.clone(), admit.clone(), release.clone());
            // Loads both scripts: at start, and when a Redis that came back may have lost them,
            // so the first calls after an outage need no extra round trip.
            move || {
                let (mut c, admit, release) = (conn.clone(), admit.clone(), release.clone());
                async move {
                    admit.load_async(&mut c).await.is_ok()
                        && release.load_async(&mut c).await.is_ok()
                }
            }
        };
        let mut probe = conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut probe).await?;
        admit.load_async(&mut probe).await?;
        release.load_async(&mut probe).await?;
        Ok(Self::Redis(RedisCounters {
            breaker: Breaker::new("rate limits", deadline, load),
            conn,
            prefix: prefix.into(),
            admit,
            release,
            errors: Arc::default(),
            local: Arc::default(),
        }))
    }

    /// The breaker guarding Redis, for [`Counters::Redis`].
    #[must_use]
    pub fn breaker(&self) -> Option<&Breaker> {
        match self {
            Self::Memory(_) => None,
            Self::Redis(r) => Some(r.breaker()),
        }
    }

    fn release(&self, scopes: &[ScopeLimit], tokens: u64, local: bool) {
        match self {
            Self::Memory(m) => m.release(scopes, tokens),
            Self::Redis(r) => r.release(scopes, tokens, local),
        }
    }
}

/// Applies [`RateLimit`]. See the [module docs](self) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct RateLimitLayer {
    counters: Counters,
}

impl RateLimitLayer {
    /// Limits calls with `counters`.
    pub fn new(counters: Counters) -> Self {
        Self { counters }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            counters: self.counters.clone(),
        }
    }
}

/// Enforces rpm, tpm and parallel limits. See the [module docs](self) for an example.
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    counters: Counters,
}

impl<S> RateLimit<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes this, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Gives back a call's parallel slot and charges its tokens, once, when dropped.
struct Release {
    counters: Counters,
    scopes: Arc<[ScopeLimit]>,
    report: UsageReport,
    /// Whether a slot was taken (a refused call has nothing to give back).
    armed: bool,
    /// Taken from the in-process fallback of [`RedisCounters`].
    local: bool,
}

impl Drop for Release {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.counters
            .release(&self.scopes, self.report.total_tokens(), self.local);
    }
}

type AdmitFuture = Pin<Box<dyn Future<Output = Decision> + Send>>;

impl<S> Service<LlmRequest> for RateLimit<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError> + Clone,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = ResponseFuture<S, S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: LlmRequest) -> Self::Future {
        let scopes: Vec<ScopeLimit> = match req.extensions.get::<Arc<KeyInfo>>() {
            Some(info) if !matches!(req.op, Operation::ListModels) => scopes(info),
            _ => Vec::new(),
        };
        if scopes.is_empty() {
            return ResponseFuture {
                state: State::Inner {
                    fut: self.inner.call(req),
                    release: None,
                    decision: None,
                },
            };
        }
        let report = UsageReport::default();
        req.extensions.insert(report.clone());
        let scopes: Arc<[ScopeLimit]> = scopes.into();
        let release = Release {
            counters: self.counters.clone(),
            scopes: scopes.clone(),
            report,
            armed: true,
            local: false,
        };
        match &self.counters {
            Counters::Memory(m) => {
                let d = m.admit(&scopes);
                if let Some(e) = d.error() {
                    let mut release = release;
                    release.armed = false;
                    return ResponseFuture {
                        state: State::Refused { err: Some(e) },
                    };
                }
                ResponseFuture {
                    state: State::Inner {
                        fut: self.inner.call(req),
                        release: Some(release),
                        decision: Some(d),
                    },
                }
            }
            Counters::Redis(r) => {
                let r = r.clone();
                let sc = scopes;
                let admit: AdmitFuture = Box::pin(async move { r.admit(&sc).await });
                let clone = self.inner.clone();
                let svc = std::mem::replace(&mut self.inner, clone);
                ResponseFuture {
                    state: State::Admit {
                        admit,
                        svc: Some(svc),
                        req: Some(req),
                        release: Some(release),
                    },
                }
            }
        }
    }
}

pin_project! {
    /// The response future of [`RateLimit`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, F> {
        #[pin]
        state: State<S, F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F> {
        Refused { err: Option<LlmError> },
        Admit { admit: AdmitFuture, svc: Option<S>, req: Option<LlmRequest>, release: Option<Release> },
        Inner { #[pin] fut: F, release: Option<Release>, decision: Option<Decision> },
    }
}

impl<S, F> fmt::Debug for ResponseFuture<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("rate_limit::ResponseFuture")
            .finish_non_exhaustive()
    }
}

impl<S> Future for ResponseFuture<S, S::Future>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    type Output = Result<LlmResponse, LlmError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            match this.state.as_mut().project() {
                StateProj::Refused { err } => {
                    return Poll::Ready(Err(err.take().unwrap_or_else(|| {
                        LlmError::internal("rate-limit future polled after completion")
                    })));
                }
                StateProj::Admit {
                    admit,
                    svc,
                    req,
                    release,
                } => {
                    let d = ready!(admit.as_mut().poll(cx));
                    let (Some(mut svc), Some(req), Some(rel)) =
                        (svc.take(), req.take(), release.take())
                    else {
                        return Poll::Ready(Err(LlmError::internal(
                            "rate-limit future polled after completion",
                        )));
                    };
                    let mut rel = rel;
                    rel.local = d.local;
                    let next = match d.error() {
                        Some(e) => {
                            // Nothing was taken: the script (and the in-process fallback)
                            // takes all scopes or none.
                            rel.armed = false;
                            State::Refused { err: Some(e) }
                        }
                        None => State::Inner {
                            fut: svc.call(req),
                            release: Some(rel),
                            decision: Some(d),
                        },
                    };
                    this.state.set(next);
                }
                StateProj::Inner {
                    fut,
                    release,
                    decision,
                } => {
                    let result = ready!(fut.poll(cx));
                    let release = release.take();
                    let decision = decision.take();
                    return Poll::Ready(match result {
                        Err(mut e) => {
                            if let Some(d) = &decision {
                                d.headers(e.headers_mut());
                            }
                            Err(e)
                        }
                        Ok(mut resp) => {
                            if let Some(d) = &decision {
                                d.headers(&mut resp.meta.headers);
                            }
                            if let Some(rel) = release {
                                if rel.report.total_tokens() == 0 {
                                    if let Some(u) = &resp.meta.usage {
                                        rel.report.0.fetch_add(
                                            u.total_tokens.unwrap_or(0),
                                            Ordering::AcqRel,
                                        );
                                    }
                                }
                                if let ResponseBody::Stream(s) = resp.body {
                                    resp.body = ResponseBody::Stream(Box::pin(Guarded {
                                        inner: s,
                                        _release: rel,
                                    }));
                                }
                            }
                            Ok(resp)
                        }
                    });
                }
            }
        }
    }
}

/// A stream that holds its call's [`Release`] until it ends or is dropped.
struct Guarded {
    inner: ChatStream,
    _release: Release,
}

impl Stream for Guarded {
    type Item = Result<ChunkBody, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Limits;

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
        let sc = scopes(&info(3));
        let ok = (0..10).filter(|_| m.admit(&sc).refused.is_none()).count();
        assert_eq!(ok, 3);
    }

    #[test]
    fn memory_rpm_holds_when_a_new_scope_is_hit_by_many_threads_at_once() {
        for _ in 0..200 {
            let m = Arc::new(MemoryCounters::default());
            let sc: Arc<[ScopeLimit]> = scopes(&info(3)).into();
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
    fn memory_parallel_is_released() {
        let m = MemoryCounters::default();
        let mut i = KeyInfo::default();
        i.key.limits.max_parallel_requests = Some(1);
        let sc = scopes(&i);
        assert!(m.admit(&sc).refused.is_none());
        assert!(m.admit(&sc).refused.is_some());
        m.release(&sc, 0);
        assert!(m.admit(&sc).refused.is_none());
    }
}
