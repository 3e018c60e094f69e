//! [`RedisStore`]: entries in Redis, shared by every gateway instance.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::store::{CacheError, CacheStore};
use crate::secret::redact_url;

/// Default time a Redis operation may take before the request goes on uncached.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// How long the store stays marked down after a failure before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A Redis-backed store over one multiplexed connection (redis' `ConnectionManager`, which
/// reconnects by itself), connected lazily on first use.
///
/// Every operation is bounded by a short timeout ([`DEFAULT_REDIS_TIMEOUT`] unless changed with
/// [`RedisStore::timeout`]). After a failure the store is marked down for one second: operations
/// in that window fail at once with [`CacheError::Unavailable`] instead of waiting, so a dead
/// Redis costs requests nothing but the cache.
///
/// ```
/// use llmgate::cache::RedisStore;
/// let store = RedisStore::open("redis://127.0.0.1:6379/0").unwrap()
///     .timeout(std::time::Duration::from_millis(100));
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    conn: OnceLock<ConnectionManager>,
    timeout: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` until which the store is considered down.
    down_until: AtomicU64,
    /// Where it points, without credentials (for logs).
    display: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("addr", &self.inner.display)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `url` (`redis://[user:password@]host:port[/db]`). Only checks the URL; the
    /// connection is made on first use.
    ///
    /// # Errors
    /// The URL is not a Redis URL this build supports (the message never contains the password).
    pub fn open(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url)
            .map_err(|e| format!("invalid Redis URL ({}): {}", redact_url(url), e.category()))?;
        Ok(Self::from_client(client, redact_url(url)))
    }

    /// A store for `host:port`, with an optional password (the URL is
    /// [`crate::redis_url::from_parts`]).
    ///
    /// # Errors
    /// The host is not usable.
    pub fn with_host(host: &str, port: u16, password: Option<&str>) -> Result<Self, String> {
        Self::open(&crate::redis_url::from_parts(host, port, password))
    }

    fn from_client(client: redis::Client, display: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                conn: OnceLock::new(),
                timeout: DEFAULT_REDIS_TIMEOUT,
                epoch: Instant::now(),
                down_until: AtomicU64::new(0),
                display,
            }),
        }
    }

    /// The time an operation may take (default [`DEFAULT_REDIS_TIMEOUT`]). On a store that is
    /// already shared, this returns a new store with a connection of its own.
    #[must_use]
    pub fn timeout(self, timeout: Duration) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| shared.clone_fresh());
        inner.timeout = timeout;
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Where the store points (host and port, never credentials).
    #[must_use]
    pub fn address(&self) -> &str {
        &self.inner.display
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn connection(&self) -> Result<ConnectionManager, CacheError> {
        if let Some(c) = self.inner.conn.get() {
            return Ok(c.clone());
        }
        let t = self.inner.timeout;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(t))
            .set_response_timeout(Some(t))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = self
            .inner
            .client
            .get_connection_manager_lazy(config)
            .map_err(|e| CacheError::Backend(e.category().to_owned()))?;
        Ok(self.inner.conn.get_or_init(|| conn).clone())
    }

    /// Runs `cmd` within the timeout, unless the store is marked down; marks it down on failure.
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, CacheError> {
        if self.now_ms() < self.inner.down_until.load(Ordering::Relaxed) {
            return Err(CacheError::Unavailable);
        }
        let mut conn = self.connection()?;
        let res = tokio::time::timeout(self.inner.timeout, cmd.query_async::<T>(&mut conn)).await;
        let err = match res {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => CacheError::Backend(describe(&e)),
            Err(_) => CacheError::Timeout,
        };
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(RETRY_AFTER.as_millis()).unwrap_or(u64::MAX));
        self.inner.down_until.store(until, Ordering::Relaxed);
        Err(err)
    }
}

impl Inner {
    /// A copy with the same client and settings and no connection yet.
    fn clone_fresh(&self) -> Self {
        Self {
            client: self.client.clone(),
            conn: OnceLock::new(),
            timeout: self.timeout,
            epoch: Instant::now(),
            down_until: AtomicU64::new(0),
            display: self.display.clone(),
        }
    }
}

fn describe(e: &redis::RedisError) -> String {
    // The error's category and detail, never the URL (which may hold a password).
    match e.detail() {
        Some(d) => format!("{}: {d}", e.category()),
        None => e.category().to_owned(),
    }
}

impl CacheStore for RedisStore {
    async fn get_many(&self, keys: &[Arc<str>]) -> Result<Vec<Option<Bytes>>, CacheError> {
        match keys {
            [] => Ok(Vec::new()),
            [one] => {
                let mut cmd = redis::cmd("GET");
                cmd.arg(&**one);
                let v: Option<Vec<u8>> = self.run(cmd).await?;
                Ok(vec![v.map(Bytes::from)])
            }
            many => {
                let mut cmd = redis::cmd("MGET");
                for k in many {
                    cmd.arg(&**k);
                }
                let v: Vec<Option<Vec<u8>>> = self.run(cmd).await?;
                if v.len() != many.len() {
                    return Err(CacheError::Backend("MGET answered a wrong count".into()));
                }
                Ok(v.into_iter().map(|o| o.map(Bytes::from)).collect())
            }
        }
    }

    async fn set_many(&self, entries: Vec<(Arc<str>, Bytes, Duration)>) -> Result<(), CacheError> {
        // One round trip per entry is fine off the request path; a batch of embeddings is
        // written as a single MULTI-less pipeline of SETs.
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (k, v, ttl) in &entries {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            pipe.cmd("SET")
                .arg(&**k)
                .arg(v.as_ref())
                .arg("PX")
                .arg(ms)
                .ignore();
        }
        if self.now_ms() < self.inner.down_until.load(Ordering::Relaxed) {
            return Err(CacheError::Unavailable);
        }
        let mut conn = self.connection()?;
        let res = tokio::time::timeout(self.inner.timeout, pipe.query_async::<()>(&mut conn)).await;
        let err = match res {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => CacheError::Backend(describe(&e)),
            Err(_) => CacheError::Timeout,
        };
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(RETRY_AFTER.as_millis()).unwrap_or(u64::MAX));
        self.inner.down_until.store(until, Ordering::Relaxed);
        Err(err)
    }

    async fn delete(&self, key: Arc<str>) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(&*key);
        self.run::<()>(cmd).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("redis://user:pw@host:6379/0"),
            "redis://host:6379/0"
        );
        assert_eq!(redact_url("redis://host:1"), "redis://host:1");
        let err = RedisStore::open("http://:secret@x").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
        let s = RedisStore::with_host("h", 7, Some("p@ss:w/rd")).unwrap();
        assert_eq!(s.address(), "redis://h:7");
        assert!(!format!("{s:?}").contains("ss:w"));
    }
}
