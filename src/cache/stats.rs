//! Counters of the cache layer (atomics), the warn-once-per-interval throttle, and the
//! background writer that keeps cache fills off the request path.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use tracing::Instrument as _;

use super::store::{CacheBackend, CacheError, CacheStore};

/// How often a failing store is reported in the log (every failure is counted).
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(30);

/// Queued writes beyond this are dropped (and counted) rather than queued without bound.
const WRITE_QUEUE: usize = 1024;

/// A snapshot of the cache counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Answers served from the cache (an embeddings batch counts once per cached item).
    pub hits: u64,
    /// Lookups that found nothing usable (per embeddings item).
    pub misses: u64,
    /// Store failures and timeouts (reads and writes); each left the request uncached.
    pub errors: u64,
    /// Entries that could not be decoded; each was treated as a miss and deleted.
    pub corrupt: u64,
    /// Entries written.
    pub stores: u64,
    /// Writes dropped because the write queue was full.
    pub dropped_writes: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) corrupt: AtomicU64,
    pub(crate) stores: AtomicU64,
    pub(crate) dropped: AtomicU64,
    /// Writes queued and writes finished, for [`CacheHandle::flushed`].
    queued: AtomicU64,
    done: AtomicU64,
    flushed: Notify,
    /// Milliseconds since `epoch` of the last warning (0: never).
    last_warn: AtomicU64,
    epoch: OnceLock<Instant>,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a store error and logs it, at most once per [`WARN_INTERVAL`].
    pub(crate) fn store_error(&self, backend: &'static str, op: &'static str, err: &CacheError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if matches!(err, CacheError::Unavailable) {
            // Redis is marked down: its breaker logged the outage once.
            return;
        }
        let epoch = *self.epoch.get_or_init(Instant::now);
        let now = u64::try_from(epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let last = self.last_warn.load(Ordering::Relaxed);
        let interval = u64::try_from(WARN_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if (last == 0 || now.saturating_sub(last) >= interval)
            && self
                .last_warn
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                backend,
                op,
                error = %err,
                errors_total = self.errors.load(Ordering::Relaxed),
                "response cache unavailable; requests go on uncached (logged once per {}s)",
                WARN_INTERVAL.as_secs()
            );
        }
    }

    fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            stores: self.stores.load(Ordering::Relaxed),
            dropped_writes: self.dropped.load(Ordering::Relaxed),
        }
    }

    fn write_done(&self) {
        self.done.fetch_add(1, Ordering::AcqRel);
        self.flushed.notify_waiters();
    }
}

/// A write for the background writer.
pub(crate) enum WriteOp {
    Set(Vec<(Arc<str>, Bytes, Duration)>),
    Delete(Arc<str>),
}

/// The cache's shared state: the store, the counters and the writer queue.
pub(crate) struct Shared {
    pub(crate) backend: CacheBackend,
    pub(crate) counters: Counters,
    tx: OnceLock<mpsc::Sender<WriteOp>>,
}

impl Shared {
    pub(crate) fn new(backend: CacheBackend) -> Self {
        Self {
            backend,
            counters: Counters::default(),
            tx: OnceLock::new(),
        }
    }

    /// Queues a write for the background writer (started on first use, on the current tokio
    /// runtime). Never waits: a full queue drops the write and counts it.
    pub(crate) fn write(self: &Arc<Self>, op: WriteOp) {
        let tx = match self.tx.get() {
            Some(tx) => tx,
            None => {
                let Ok(handle) = tokio::runtime::Handle::try_current() else {
                    Counters::add(&self.counters.dropped, 1);
                    return;
                };
                let (tx, rx) = mpsc::channel(WRITE_QUEUE);
                if self.tx.set(tx).is_ok() {
                    // Holds a weak reference: the writer ends once the layer is gone.
                    handle.spawn(
                        writer(Arc::downgrade(self), rx).instrument(tracing::Span::current()),
                    );
                }
                match self.tx.get() {
                    Some(tx) => tx,
                    None => return,
                }
            }
        };
        self.counters.queued.fetch_add(1, Ordering::AcqRel);
        if tx.try_send(op).is_err() {
            Counters::add(&self.counters.dropped, 1);
            self.counters.write_done();
        }
    }
}

async fn writer(shared: std::sync::Weak<Shared>, mut rx: mpsc::Receiver<WriteOp>) {
    while let Some(op) = rx.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let backend = shared.backend.name();
        match op {
            WriteOp::Set(entries) => {
                let n = entries.len() as u64;
                match shared.backend.set_many(entries).await {
                    Ok(()) => Counters::add(&shared.counters.stores, n),
                    Err(e) => shared.counters.store_error(backend, "set", &e),
                }
            }
            WriteOp::Delete(key) => {
                if let Err(e) = shared.backend.delete(key).await {
                    shared.counters.store_error(backend, "delete", &e);
                }
            }
        }
        shared.counters.write_done();
    }
}

/// A handle on a cache layer's state: its counters, and a way to wait for queued writes.
///
/// Get it from [`CacheLayer::handle`](super::CacheLayer::handle) (or `Gateway::cache`).
#[derive(Clone)]
pub struct CacheHandle {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for CacheHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheHandle")
            .field("backend", &self.shared.backend.name())
            .field("stats", &self.stats())
            .finish()
    }
}

impl CacheHandle {
    /// The counters now.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.shared.counters.snapshot()
    }

    /// The backend's name (`memory`, `redis`).
    #[must_use]
    pub fn backend(&self) -> &'static str {
        self.shared.backend.name()
    }

    /// The breaker guarding the Redis backend, if the backend is Redis.
    #[must_use]
    pub fn redis_breaker(&self) -> Option<&crate::redis_guard::Breaker> {
        match &self.shared.backend {
            #[cfg(feature = "redis")]
            super::CacheBackend::Redis(r) => Some(r.breaker()),
            _ => None,
        }
    }

    /// Resolves once every write queued so far has been written (or has failed): for tests and
    /// graceful shutdown.
    pub async fn flushed(&self) {
        let c = &self.shared.counters;
        let target = c.queued.load(Ordering::Acquire);
        loop {
            let notified = c.flushed.notified();
            if c.done.load(Ordering::Acquire) >= target {
                return;
            }
            notified.await;
        }
    }
}
