//! [`Breaker`]: a deadline on every Redis operation of the request path, and a circuit breaker
//! that skips Redis while it is down or hung.
//!
//! Redis serves three users: the rate-limit counters ([`crate::rate_limit`]), the router's shared
//! state ([`crate::router`]) and the response cache ([`crate::cache`]). Each owns one `Breaker`:
//!
//! - every operation runs under a deadline ([`DEFAULT_DEADLINE`], or the `REDIS_SOCKET_TIMEOUT`
//!   environment variable in seconds, LiteLLM's name for the same setting);
//! - the first failure or timeout *opens* the breaker: from then on the operation is skipped at the
//!   cost of one atomic load, and the caller uses its in-process state (limits enforced per
//!   process, cooldowns and usage local, the cache missed);
//! - a background task probes Redis after a back-off (200 ms, doubling, capped at 2 s) with
//!   `PING` (the rate limiter loads its scripts instead, which a restarted Redis has lost) and
//!   *closes* the breaker when Redis answers; Redis is then shared again;
//! - one warning is logged when an outage starts and one line when it ends, never one per request.
//!
//! `/health/readiness` reports an open breaker as `"redis": "degraded"` (status stays 200: the
//! gateway serves).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Weak,
    },
    time::Duration,
};

// Tokio's clock (the std clock at run time), so tests with a paused clock see outages last.
use tokio::time::Instant;

/// The deadline of one Redis operation when `REDIS_SOCKET_TIMEOUT` is not set (LiteLLM's
/// default, 0.1 s).
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(100);

/// The environment variable holding the deadline, in seconds (LiteLLM's name).
pub const DEADLINE_ENV: &str = "REDIS_SOCKET_TIMEOUT";

/// The first wait before probing a Redis that failed.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between two probes.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A probe may take at least this long (a reconnect takes a handshake more than a command).
const MIN_PROBE_DEADLINE: Duration = Duration::from_millis(250);

/// The deadline from `REDIS_SOCKET_TIMEOUT` (seconds), else [`DEFAULT_DEADLINE`].
#[must_use]
pub fn deadline_from_env() -> Duration {
    parse_deadline(std::env::var(DEADLINE_ENV).ok().as_deref())
}

/// A deadline in seconds: a positive finite number, clamped to 1 ms ..= 60 s; anything else
/// gives [`DEFAULT_DEADLINE`].
fn parse_deadline(v: Option<&str>) -> Duration {
    v.and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DEFAULT_DEADLINE, |s| {
            Duration::from_secs_f64(s.clamp(0.001, 60.0))
        })
}

/// The connection manager settings for a breaker with `deadline`: connects and answers within the
/// deadline (at least the probe's), one reconnect attempt per failure.
pub(crate) fn manager_config(deadline: Duration) -> redis::aio::ConnectionManagerConfig {
    let t = deadline.max(MIN_PROBE_DEADLINE);
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(t))
        .set_response_timeout(Some(t))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500))
}

/// A probe: `PING` through `conn`, true when Redis answers `PONG`.
pub(crate) fn ping(
    conn: redis::aio::ConnectionManager,
) -> impl Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync + 'static {
    move || {
        let mut c = conn.clone();
        Box::pin(async move {
            redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok_and(|s| s == "PONG")
        })
    }
}

/// Why an operation did not reach Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skipped {
    /// The breaker is open: Redis was not asked.
    Open,
    /// Redis did not answer within the deadline (the breaker is now open).
    Timeout,
    /// Redis answered with an error, or the connection failed (the breaker is now open). The text
    /// never holds a URL.
    Failed(String),
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open => f.write_str("Redis is marked down"),
            Self::Timeout => f.write_str("Redis did not answer in time"),
            Self::Failed(e) => write!(f, "Redis failed: {e}"),
        }
    }
}

type Probe = Box<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// A deadline and a circuit breaker for one user of Redis. Cheap to clone (one `Arc`). See the
/// [module docs](self).
#[derive(Clone)]
pub struct Breaker {
    inner: Arc<Inner>,
}

struct Inner {
    /// Who uses Redis through this breaker (`rate limits`, `router`, `cache`), for logs and
    /// readiness.
    what: &'static str,
    deadline: Duration,
    open: AtomicBool,
    epoch: Instant,
    /// Milliseconds since `epoch` when the current outage began.
    since_ms: AtomicU64,
    /// Operations skipped because the breaker was open (all outages).
    skipped: AtomicU64,
    /// Outages so far.
    outages: AtomicU64,
    probe: Probe,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("what", &self.inner.what)
            .field("deadline", &self.inner.deadline)
            .field("open", &self.is_open())
            .finish_non_exhaustive()
    }
}

impl Breaker {
    /// A closed breaker for `what`, whose operations get `deadline` each, and which `probe`
    /// closes again once it returns true.
    pub fn new<F, Fut>(what: &'static str, deadline: Duration, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self {
            inner: Arc::new(Inner {
                what,
                deadline,
                open: AtomicBool::new(false),
                epoch: Instant::now(),
                since_ms: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
                outages: AtomicU64::new(0),
                probe: Box::new(move || Box::pin(probe())),
            }),
        }
    }

    /// Who uses Redis through this breaker.
    #[must_use]
    pub fn what(&self) -> &'static str {
        self.inner.what
    }

    /// The deadline of one operation.
    #[must_use]
    pub fn deadline(&self) -> Duration {
        self.inner.deadline
    }

    /// Whether Redis is being skipped (an outage is in progress).
    #[inline]
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.inner.open.load(Ordering::Acquire)
    }

    /// Whether to skip Redis now (the breaker is open); a skip is counted. For callers that
    /// would prepare work for [`Breaker::run`] only to see it skipped.
    #[inline]
    #[must_use]
    pub fn skip(&self) -> bool {
        let open = self.is_open();
        if open {
            self.inner.skipped.fetch_add(1, Ordering::Relaxed);
        }
        open
    }

    /// How many outages there were, and how many operations were skipped in them.
    #[must_use]
    pub fn counts(&self) -> (u64, u64) {
        (
            self.inner.outages.load(Ordering::Relaxed),
            self.inner.skipped.load(Ordering::Relaxed),
        )
    }

    /// How long the current outage has lasted (`None` when Redis is in use).
    #[must_use]
    pub fn degraded_for(&self) -> Option<Duration> {
        self.is_open().then(|| {
            let since = self.inner.since_ms.load(Ordering::Relaxed);
            Duration::from_millis(self.inner.now_ms().saturating_sub(since))
        })
    }

    /// Runs `op` within the deadline, unless the breaker is open. A failure or timeout opens it.
    ///
    /// # Errors
    /// Why Redis was not used; the caller falls back to its in-process state.
    pub async fn run<T, E, F>(&self, op: F) -> Result<T, Skipped>
    where
        F: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        if self.skip() {
            return Err(Skipped::Open);
        }
        let err = match tokio::time::timeout(self.inner.deadline, op).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => Skipped::Failed(e.to_string()),
            Err(_) => Skipped::Timeout,
        };
        self.trip(&err);
        Err(err)
    }

    /// Opens the breaker (once per outage: logs, starts the probe).
    fn trip(&self, why: &Skipped) {
        let inner = &self.inner;
        if inner
            .open
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        inner.since_ms.store(inner.now_ms(), Ordering::Relaxed);
        inner.outages.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            redis_user = inner.what,
            error = %why,
            deadline_ms = u64::try_from(inner.deadline.as_millis()).unwrap_or(u64::MAX),
            "Redis unavailable: {} use this process's own state until it answers again",
            inner.what,
        );
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(probe_loop(Arc::downgrade(inner)));
            }
            // No runtime to probe from: stay closed, the next operation tries again.
            Err(_) => inner.open.store(false, Ordering::Release),
        }
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Probes until Redis answers (then closes the breaker) or the breaker is dropped.
async fn probe_loop(weak: Weak<Inner>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        tokio::time::sleep(backoff).await;
        let Some(inner) = weak.upgrade() else { return };
        let deadline = inner.deadline.max(MIN_PROBE_DEADLINE);
        let ok = tokio::time::timeout(deadline, (inner.probe)())
            .await
            .unwrap_or(false);
        if ok {
            let lasted = inner
                .now_ms()
                .saturating_sub(inner.since_ms.load(Ordering::Relaxed));
            inner.open.store(false, Ordering::Release);
            tracing::warn!(
                redis_user = inner.what,
                outage_ms = lasted,
                skipped = inner.skipped.load(Ordering::Relaxed),
                "Redis answers again: {} shared through Redis again",
                inner.what,
            );
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn breaker(deadline_ms: u64, up: Arc<AtomicBool>) -> Breaker {
        Breaker::new("test", Duration::from_millis(deadline_ms), move || {
            let up = up.clone();
            async move { up.load(Ordering::SeqCst) }
        })
    }

    #[test]
    fn deadline_parses_seconds_and_falls_back() {
        assert_eq!(parse_deadline(None), DEFAULT_DEADLINE);
        assert_eq!(parse_deadline(Some("0.05")), Duration::from_millis(50));
        assert_eq!(parse_deadline(Some(" 2 ")), Duration::from_secs(2));
        assert_eq!(parse_deadline(Some("1000")), Duration::from_secs(60));
        for bad in ["", "x", "0", "-1", "NaN", "inf"] {
            assert_eq!(parse_deadline(Some(bad)), DEFAULT_DEADLINE, "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_call_costs_the_deadline_once_then_nothing_until_the_probe_closes_it() {
        let up = Arc::new(AtomicBool::new(false));
        let b = breaker(50, up.clone());
        let t = tokio::time::Instant::now();
        let r: Result<(), _> = b.run(std::future::pending::<Result<(), String>>()).await;
        assert_eq!(r, Err(Skipped::Timeout));
        assert_eq!(t.elapsed(), Duration::from_millis(50));
        assert!(b.is_open());
        // Open: skipped at once, the operation is not even polled.
        let t = tokio::time::Instant::now();
        let polled = AtomicBool::new(false);
        let r = b
            .run(async {
                polled.store(true, Ordering::SeqCst);
                Ok::<u8, String>(1)
            })
            .await;
        assert_eq!(r, Err(Skipped::Open));
        assert!(!polled.load(Ordering::SeqCst));
        assert_eq!(t.elapsed(), Duration::ZERO);
        assert_eq!(b.counts(), (1, 1));
        // Probes fail while Redis is down: 200, 400, 800, 1600 ms...
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(b.is_open());
        assert!(b
            .degraded_for()
            .is_some_and(|d| d >= Duration::from_secs(3)));
        up.store(true, Ordering::SeqCst);
        // The next probe (at most MAX_BACKOFF later) closes it.
        tokio::time::sleep(MAX_BACKOFF + Duration::from_millis(300)).await;
        assert!(!b.is_open());
        assert_eq!(b.degraded_for(), None);
        let r: Result<u8, Skipped> = b.run(async { Ok::<u8, String>(7) }).await;
        assert_eq!(r, Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_opens_it_and_one_outage_is_counted_once() {
        let up = Arc::new(AtomicBool::new(false));
        let b = breaker(100, up);
        let r: Result<(), _> = b.run(async { Err::<(), _>("connection refused") }).await;
        assert_eq!(r, Err(Skipped::Failed("connection refused".into())));
        for _ in 0..10 {
            let r: Result<(), _> = b.run(async { Ok::<(), String>(()) }).await;
            assert_eq!(r, Err(Skipped::Open));
        }
        assert_eq!(b.counts(), (1, 10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_probe_stops_when_the_breaker_is_dropped() {
        let probes = Arc::new(AtomicU64::new(0));
        let p = probes.clone();
        let b = Breaker::new("test", Duration::from_millis(10), move || {
            p.fetch_add(1, Ordering::SeqCst);
            async { false }
        });
        let _: Result<(), _> = b.run(async { Err::<(), _>("down") }).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let seen = probes.load(Ordering::SeqCst);
        assert!(seen >= 2, "{seen}");
        drop(b);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(probes.load(Ordering::SeqCst) <= seen + 1);
    }
}
