//! [`CacheStore`]: where entries live. [`MemoryStore`] (moka, bounded by bytes) and, with the
//! `redis` feature, [`RedisStore`](super::RedisStore); [`CacheBackend`] picks one by config.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;

/// Why a store operation did not complete. The cache layer treats every error as a miss (reads)
/// or a skipped write; a request never fails because of its cache.
#[derive(Debug)]
#[non_exhaustive]
pub enum CacheError {
    /// The store did not answer within its timeout.
    Timeout,
    /// The store is marked down after a recent failure; not tried.
    Unavailable,
    /// The store answered with an error (connection refused, protocol error, …).
    Backend(String),
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("cache store timed out"),
            Self::Unavailable => f.write_str("cache store unavailable (recent failure)"),
            Self::Backend(e) => write!(f, "cache store error: {e}"),
        }
    }
}

impl std::error::Error for CacheError {}

/// A key-value store of cache entries with a time to live.
///
/// Methods return `impl Future + Send` (no `async-trait` box); an in-process store answers with
/// a ready future.
pub trait CacheStore: Clone + Send + Sync + 'static {
    /// The values of `keys`, in order (`None` for a missing key).
    fn get_many(
        &self,
        keys: &[Arc<str>],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>, CacheError>> + Send;

    /// Stores each `(key, value, ttl)`.
    fn set_many(
        &self,
        entries: Vec<(Arc<str>, Bytes, Duration)>,
    ) -> impl Future<Output = Result<(), CacheError>> + Send;

    /// Removes `key`.
    fn delete(&self, key: Arc<str>) -> impl Future<Output = Result<(), CacheError>> + Send;
}

/// Default bound of the in-memory store: 64 MiB of keys and values.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 << 20;

/// Per-entry overhead counted by the in-memory store's weigher (map node, `Arc`s, expiry).
const ENTRY_OVERHEAD: usize = 96;

#[derive(Clone)]
struct MemValue {
    bytes: Bytes,
    ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<Arc<str>, MemValue> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &Arc<str>,
        value: &MemValue,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &Arc<str>,
        value: &MemValue,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// In-process store: a moka cache bounded by the bytes of its keys and values (not by entry
/// count), each entry with its own time to live. Lookups never wait on a lock.
///
/// ```
/// use llmgate::cache::{CacheStore, MemoryStore};
/// # tokio_test_block_on(async {
/// let store = MemoryStore::new(1 << 20);
/// store.set_many(vec![("k".into(), "v".into(), std::time::Duration::from_secs(60))]).await.unwrap();
/// let got = store.get_many(&["k".into()]).await.unwrap();
/// assert_eq!(got[0].as_deref(), Some(&b"v"[..]));
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: moka::sync::Cache<Arc<str>, MemValue>,
    max_bytes: u64,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("max_bytes", &self.max_bytes)
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store holding at most `max_bytes` of keys and values (plus a small per-entry overhead).
    #[must_use]
    pub fn new(max_bytes: u64) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &Arc<str>, v: &MemValue| {
                u32::try_from(k.len() + v.bytes.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        Self { cache, max_bytes }
    }

    /// The bound in bytes.
    #[must_use]
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The bytes held now (after pending maintenance; approximate while writes are in flight).
    #[must_use]
    pub fn weighted_size(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }

    fn get_now(&self, keys: &[Arc<str>]) -> Vec<Option<Bytes>> {
        keys.iter()
            .map(|k| self.cache.get(k).map(|v| v.bytes))
            .collect()
    }

    fn set_now(&self, entries: Vec<(Arc<str>, Bytes, Duration)>) {
        for (k, bytes, ttl) in entries {
            self.cache.insert(k, MemValue { bytes, ttl });
        }
    }
}

impl CacheStore for MemoryStore {
    fn get_many(
        &self,
        keys: &[Arc<str>],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>, CacheError>> + Send {
        std::future::ready(Ok(self.get_now(keys)))
    }

    fn set_many(
        &self,
        entries: Vec<(Arc<str>, Bytes, Duration)>,
    ) -> impl Future<Output = Result<(), CacheError>> + Send {
        self.set_now(entries);
        std::future::ready(Ok(()))
    }

    fn delete(&self, key: Arc<str>) -> impl Future<Output = Result<(), CacheError>> + Send {
        self.cache.invalidate(&key);
        std::future::ready(Ok(()))
    }
}

/// The built-in stores, chosen by config (`cache_params.type`): static dispatch, no box.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CacheBackend {
    /// In-process ([`MemoryStore`]).
    Memory(MemoryStore),
    /// Redis ([`RedisStore`](super::RedisStore)).
    #[cfg(feature = "redis")]
    Redis(super::RedisStore),
}

impl CacheBackend {
    /// Short name for logs and metrics (`memory`, `redis`).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            #[cfg(feature = "redis")]
            Self::Redis(_) => "redis",
        }
    }

    /// A lookup that resolves at once for the memory store and boxes only the Redis round trip.
    pub(crate) fn lookup(&self, keys: &[Arc<str>]) -> LookupFuture {
        match self {
            Self::Memory(m) => LookupFuture::Ready(Some(Ok(m.get_now(keys)))),
            #[cfg(feature = "redis")]
            Self::Redis(r) => {
                let r = r.clone();
                let keys = keys.to_vec();
                LookupFuture::Boxed(Box::pin(async move { r.get_many(&keys).await }))
            }
        }
    }
}

impl From<MemoryStore> for CacheBackend {
    fn from(m: MemoryStore) -> Self {
        Self::Memory(m)
    }
}

#[cfg(feature = "redis")]
impl From<super::RedisStore> for CacheBackend {
    fn from(r: super::RedisStore) -> Self {
        Self::Redis(r)
    }
}

impl CacheStore for CacheBackend {
    fn get_many(
        &self,
        keys: &[Arc<str>],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>, CacheError>> + Send {
        self.lookup(keys)
    }

    async fn set_many(&self, entries: Vec<(Arc<str>, Bytes, Duration)>) -> Result<(), CacheError> {
        match self {
            Self::Memory(m) => m.set_many(entries).await,
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.set_many(entries).await,
        }
    }

    async fn delete(&self, key: Arc<str>) -> Result<(), CacheError> {
        match self {
            Self::Memory(m) => m.delete(key).await,
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.delete(key).await,
        }
    }
}

type BoxLookup =
    Pin<Box<dyn Future<Output = Result<Vec<Option<Bytes>>, CacheError>> + Send + 'static>>;

/// The lookup future of [`CacheBackend`]: ready for memory, boxed for a network store.
pub(crate) enum LookupFuture {
    Ready(Option<Result<Vec<Option<Bytes>>, CacheError>>),
    #[allow(dead_code)]
    Boxed(BoxLookup),
}

impl Future for LookupFuture {
    type Output = Result<Vec<Option<Bytes>>, CacheError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Ready(v) => Poll::Ready(
                v.take()
                    .unwrap_or_else(|| Err(CacheError::Backend("lookup polled twice".into()))),
            ),
            Self::Boxed(f) => f.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_is_bounded_by_bytes() {
        let store = MemoryStore::new(10_000);
        let value = Bytes::from(vec![b'x'; 1000]);
        let entries = (0..100)
            .map(|i| {
                (
                    Arc::<str>::from(format!("k{i}")),
                    value.clone(),
                    Duration::from_secs(60),
                )
            })
            .collect();
        store.set_many(entries).await.unwrap();
        assert!(store.weighted_size() <= 10_000, "{}", store.weighted_size());
        assert!(store.weighted_size() > 5_000);
        store.delete("k99".into()).await.unwrap();
        assert_eq!(store.get_many(&["k99".into()]).await.unwrap(), vec![None]);
    }
}
