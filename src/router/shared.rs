//! Router state shared through Redis, so that several gateway processes agree on cooldowns, usage
//! counters (rpm / tpm per minute) and in-flight counts.
//!
//! Keys (all under `llmgate:router:`, with the deployment id, which is stable across processes):
//! `cool:{id}` (set with a TTL for the cooldown), `busy:{id}` (in-flight count), `rpm:{id}:{minute}`
//! and `tpm:{id}:{minute}` (expire after two minutes).
//!
//! Before each pick the router reads its group's keys in one pipelined round trip. A request under
//! an `rpm` limit reserves its slot with an atomic `INCR` before the call, so the limit holds across
//! processes. A cooldown is written before the failed call's error is returned. In-flight and token
//! counts are written by a background task fed through a bounded channel.
//!
//! Every Redis call has a short deadline and a circuit breaker ([`crate::redis_guard`]). When
//! Redis fails or hangs, the breaker opens (one warning) and, until its background probe sees
//! Redis answer again, the router skips Redis: it routes on this instance's state (cooldowns,
//! usage and in-flight counts of this process only, `rpm` limits per process), and writes nothing.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use super::Entry;
use crate::{clock::Clock, redis_guard::Breaker};

const PREFIX: &str = "llmgate:router:";
const USAGE_TTL_SECS: i64 = 120;
const BUSY_TTL_SECS: i64 = 600;
const QUEUE: usize = 4096;

enum Write {
    Busy(Arc<str>, i64),
    /// A deployment, its tokens and the minute they were used in.
    Tokens(Arc<str>, u64, u64),
}

/// A handle to the Redis-backed router state. Cheap to clone. The background writer ends when the
/// last handle is dropped.
#[derive(Clone)]
pub(crate) struct Shared {
    conn: Arc<Conn>,
    tx: mpsc::Sender<Write>,
    dropped: Arc<AtomicU64>,
    /// The minute windows of the usage keys are on this clock (the router's).
    pub(crate) clock: Clock,
}

/// The connection (made on first use and reconnected by the connection manager) and its breaker.
struct Conn {
    conn: ConnectionManager,
    breaker: Breaker,
    errors: AtomicU64,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .field("errors", &self.conn.errors.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Why [`RouterBuilder::redis`](super::RouterBuilder::redis) could not set up the shared state.
/// Its `source` is the Redis client's error, when there is one.
#[derive(Debug)]
pub struct SharedStateError {
    kind: ErrorKind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[derive(Debug, Clone, Copy)]
enum ErrorKind {
    /// The URL does not parse.
    InvalidUrl,
    /// No tokio runtime to run the background writer on.
    NoRuntime,
    /// The Redis client could not be set up.
    Client,
}

impl SharedStateError {
    fn new(kind: ErrorKind, source: Option<redis::RedisError>) -> Self {
        Self {
            kind,
            source: source.map(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
        }
    }
}

impl fmt::Display for SharedStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, &self.source) {
            (ErrorKind::InvalidUrl, Some(e)) => write!(f, "invalid Redis URL: {e}"),
            (ErrorKind::InvalidUrl, None) => f.write_str("invalid Redis URL"),
            (ErrorKind::NoRuntime, _) => f.write_str("shared router state needs a tokio runtime"),
            (ErrorKind::Client, Some(e)) => match e.downcast_ref::<redis::RedisError>() {
                // The category only: the client's message may quote the URL and its password.
                Some(r) => write!(f, "Redis client: {}", r.category()),
                None => f.write_str("Redis client error"),
            },
            (ErrorKind::Client, None) => f.write_str("Redis client error"),
        }
    }
}

impl std::error::Error for SharedStateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

fn key(kind: &str, id: &str) -> String {
    format!("{PREFIX}{kind}:{id}")
}

fn minute_key(kind: &str, id: &str, minute: u64) -> String {
    format!("{PREFIX}{kind}:{id}:{minute}")
}

impl Shared {
    /// Opens a client for `url` (no connection yet) and starts the background writer. Must run in
    /// a tokio runtime.
    pub(crate) fn open(url: &str) -> Result<Self, SharedStateError> {
        let client = redis::Client::open(url)
            .map_err(|e| SharedStateError::new(ErrorKind::InvalidUrl, Some(e)))?;
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| SharedStateError::new(ErrorKind::NoRuntime, None))?;
        let deadline = crate::redis_guard::deadline_from_env();
        let manager = client
            .get_connection_manager_lazy(crate::redis_guard::manager_config(deadline))
            .map_err(|e| SharedStateError::new(ErrorKind::Client, Some(e)))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let conn = Arc::new(Conn {
            breaker: Breaker::new(
                "router",
                deadline,
                crate::redis_guard::ping(manager.clone()),
            ),
            conn: manager,
            errors: AtomicU64::new(0),
        });
        handle.spawn(write_loop(conn.clone(), rx));
        Ok(Self {
            conn,
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            clock: Clock::system(),
        })
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Pipeline) -> Option<T> {
        self.conn.run(cmd).await
    }

    /// The breaker guarding this Redis (for readiness).
    pub(crate) fn breaker(&self) -> &Breaker {
        &self.conn.breaker
    }
}

impl Conn {
    /// Runs `cmd` through the breaker: `None` when Redis is marked down, fails or is too slow
    /// (the breaker logs the outage once; errors are counted here).
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Pipeline) -> Option<T> {
        if self.breaker.skip() {
            return None;
        }
        let mut conn = self.conn.clone();
        match self.breaker.run(cmd.query_async::<T>(&mut conn)).await {
            Ok(v) => Some(v),
            Err(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

impl Shared {
    /// Reads cooldowns, in-flight counts and this minute's usage of `entries` into their state.
    pub(crate) async fn refresh(&self, entries: &[Arc<Entry>]) {
        if entries.is_empty() {
            return;
        }
        let minute = self.clock.unix_minute();
        let mut p = redis::pipe();
        for e in entries {
            let id = &e.deployment.id;
            p.cmd("PTTL").arg(key("cool", id));
            p.cmd("GET").arg(key("busy", id));
            p.cmd("GET").arg(minute_key("rpm", id, minute));
            p.cmd("GET").arg(minute_key("tpm", id, minute));
        }
        let Some(values) = self.run::<Vec<Option<i64>>>(p).await else {
            return;
        };
        for (e, v) in entries.iter().zip(values.chunks(4)) {
            let get = |i: usize| v.get(i).copied().flatten().unwrap_or(0);
            let ttl = get(0);
            if ttl > 0 {
                e.state.health.cool_down(Duration::from_millis(ttl as u64));
            }
            let s = &e.state;
            s.remote_in_flight.store(get(1).max(0), Ordering::Relaxed);
            s.remote_rpm.store(get(2).max(0) as u64, Ordering::Relaxed);
            s.remote_tpm.store(get(3).max(0) as u64, Ordering::Relaxed);
            s.remote_minute.store(minute, Ordering::Relaxed);
        }
    }

    /// Atomically counts one request against `id`'s rpm this minute; the new count, or `None`
    /// when Redis is unavailable.
    pub(crate) async fn reserve_request(&self, id: &str) -> Option<u64> {
        let k = minute_key("rpm", id, self.clock.unix_minute());
        let mut p = redis::pipe();
        p.cmd("INCR").arg(&k);
        p.cmd("EXPIRE").arg(&k).arg(USAGE_TTL_SECS).ignore();
        let (n,): (i64,) = self.run(p).await?;
        Some(n.max(0) as u64)
    }

    /// Gives back a reservation that was refused.
    pub(crate) async fn release_request(&self, id: &str) {
        let mut p = redis::pipe();
        p.cmd("DECR")
            .arg(minute_key("rpm", id, self.clock.unix_minute()))
            .ignore();
        let _: Option<()> = self.run(p).await;
    }

    /// Shares a cooldown of `id` for `duration`.
    pub(crate) async fn cool_down(&self, id: &str, duration: Duration) {
        let ms = u64::try_from(duration.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut p = redis::pipe();
        p.cmd("SET")
            .arg(key("cool", id))
            .arg(1)
            .arg("PX")
            .arg(ms)
            .ignore();
        let _: Option<()> = self.run(p).await;
    }

    fn send(&self, w: Write) {
        if self.tx.try_send(w).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() || n == 0 {
                tracing::warn!(
                    dropped = n + 1,
                    "router: Redis write queue full; usage update dropped"
                );
            }
        }
    }

    /// A request to `id` started (+1) or ended (-1).
    pub(crate) fn busy(&self, id: Arc<str>, delta: i64) {
        self.send(Write::Busy(id, delta));
    }

    /// `id` used `tokens` this minute.
    pub(crate) fn tokens(&self, id: Arc<str>, tokens: u64) {
        self.send(Write::Tokens(id, tokens, self.clock.unix_minute()));
    }
}

async fn write_loop(conn: Arc<Conn>, mut rx: mpsc::Receiver<Write>) {
    {
        let mut batch = Vec::with_capacity(64);
        loop {
            if rx.recv_many(&mut batch, 256).await == 0 {
                return;
            }
            let mut p = redis::pipe();
            for w in batch.drain(..) {
                match w {
                    Write::Busy(id, delta) => {
                        let k = key("busy", &id);
                        p.cmd("INCRBY").arg(&k).arg(delta).ignore();
                        p.cmd("EXPIRE").arg(&k).arg(BUSY_TTL_SECS).ignore();
                    }
                    Write::Tokens(id, n, minute) => {
                        let k = minute_key("tpm", &id, minute);
                        p.cmd("INCRBY").arg(&k).arg(n).ignore();
                        p.cmd("EXPIRE").arg(&k).arg(USAGE_TTL_SECS).ignore();
                    }
                }
            }
            let _: Option<()> = conn.run(p).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn setup_errors_say_what_failed_and_keep_their_source() {
        let e = Shared::open("nope://x").err().unwrap();
        assert!(e.to_string().starts_with("invalid Redis URL: "), "{e}");
        assert!(e.source().is_some());
        // A valid URL outside a tokio runtime.
        let e = Shared::open("redis://127.0.0.1:1").err().unwrap();
        assert_eq!(e.to_string(), "shared router state needs a tokio runtime");
        assert!(e.source().is_none());
    }
}
