//! [`RedisStore`]: entries in Redis, shared by every gateway instance.

use std::{
    fmt,
    sync::{Arc, OnceLock},
    time::Duration,
};

use bytes::Bytes;
use redis::aio::ConnectionManager;

use super::store::{CacheError, CacheStore};
use crate::{
    redis_guard::{Breaker, Skipped},
    secret::redact_url,
};

/// Default time a Redis operation may take before the request goes on uncached.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// A Redis-backed store over one multiplexed connection (redis' `ConnectionManager`, which
/// reconnects by itself), connected lazily on first use.
///
/// Every operation is bounded by a short timeout ([`DEFAULT_REDIS_TIMEOUT`] unless changed with
/// [`RedisStore::timeout`]) and goes through a circuit breaker ([`crate::redis_guard`]): after a
/// failure, operations fail at once with [`CacheError::Unavailable`] until a background `PING`
/// sees Redis answer again, so a dead or hung Redis costs requests nothing but the cache.
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
    conn: Arc<Lazy>,
    timeout: Duration,
    breaker: Breaker,
    /// Where it points, without credentials (for logs).
    display: String,
}

/// The client and its connection, made on first use.
struct Lazy {
    client: redis::Client,
    conn: OnceLock<ConnectionManager>,
    timeout: Duration,
}

impl Lazy {
    fn connection(&self) -> Result<ConnectionManager, CacheError> {
        if let Some(c) = self.conn.get() {
            return Ok(c.clone());
        }
        let conn = self
            .client
            .get_connection_manager_lazy(crate::redis_guard::manager_config(self.timeout))
            .map_err(|e| CacheError::Backend(e.category().to_owned()))?;
        Ok(self.conn.get_or_init(|| conn).clone())
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("addr", &self.inner.display)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// A Redis URL this build cannot use. Its message names the URL without its password and the
/// kind of problem. It keeps no source: the Redis client's own error text can quote the URL it
/// was given, password included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisUrlError {
    url: String,
    reason: String,
}

impl std::fmt::Display for RedisUrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid Redis URL ({}): {}", self.url, self.reason)
    }
}

impl std::error::Error for RedisUrlError {}

impl RedisStore {
    /// A store for `url` (`redis://[user:password@]host:port[/db]`). Only checks the URL; the
    /// connection is made on first use.
    ///
    /// # Errors
    /// The URL is not a Redis URL this build supports (the message never contains the password).
    pub fn open(url: &str) -> Result<Self, RedisUrlError> {
        let client = redis::Client::open(url).map_err(|e| RedisUrlError {
            url: redact_url(url),
            reason: e.category().to_owned(),
        })?;
        Ok(Self::from_client(client, redact_url(url)))
    }

    /// A store for `host:port`, with an optional password (the URL is
    /// [`crate::redis_url::from_parts`]).
    ///
    /// # Errors
    /// The host is not usable.
    pub fn with_host(host: &str, port: u16, password: Option<&str>) -> Result<Self, RedisUrlError> {
        Self::open(&crate::redis_url::from_parts(host, port, password))
    }

    fn from_client(client: redis::Client, display: String) -> Self {
        Self {
            inner: Arc::new(Inner::new(client, display, DEFAULT_REDIS_TIMEOUT)),
        }
    }

    /// The time an operation may take (default [`DEFAULT_REDIS_TIMEOUT`]). This returns a new
    /// store with a connection of its own.
    #[must_use]
    pub fn timeout(self, timeout: Duration) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner::new(
                inner.conn.client.clone(),
                inner.display.clone(),
                timeout,
            )),
        }
    }

    /// The breaker guarding this Redis (for readiness).
    #[must_use]
    pub fn breaker(&self) -> &Breaker {
        &self.inner.breaker
    }

    /// Where the store points (host and port, never credentials).
    #[must_use]
    pub fn address(&self) -> &str {
        &self.inner.display
    }

    /// Runs `cmd` through the breaker (within the timeout, unless Redis is marked down).
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, CacheError> {
        if self.inner.breaker.skip() {
            return Err(CacheError::Unavailable);
        }
        let mut conn = self.inner.conn.connection()?;
        let res = self
            .inner
            .breaker
            .run(async { cmd.query_async::<T>(&mut conn).await.map_err(Described) })
            .await;
        res.map_err(cache_error)
    }
}

impl Inner {
    fn new(client: redis::Client, display: String, timeout: Duration) -> Self {
        let conn = Arc::new(Lazy {
            client,
            conn: OnceLock::new(),
            timeout,
        });
        let probe_conn = conn.clone();
        let breaker = Breaker::new("cache", timeout, move || {
            let c = probe_conn.connection();
            async move {
                match c {
                    Ok(c) => crate::redis_guard::ping(c)().await,
                    Err(_) => false,
                }
            }
        });
        Self {
            conn,
            timeout,
            breaker,
            display,
        }
    }
}

/// A Redis error shown by its category and detail, never the URL (which may hold a password).
struct Described(redis::RedisError);

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.detail() {
            Some(d) => write!(f, "{}: {d}", self.0.category()),
            None => f.write_str(self.0.category()),
        }
    }
}

fn cache_error(s: Skipped) -> CacheError {
    match s {
        Skipped::Open => CacheError::Unavailable,
        Skipped::Timeout => CacheError::Timeout,
        Skipped::Failed(e) => CacheError::Backend(e),
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
        if self.inner.breaker.skip() {
            return Err(CacheError::Unavailable);
        }
        let mut conn = self.inner.conn.connection()?;
        self.inner
            .breaker
            .run(async { pipe.query_async::<()>(&mut conn).await.map_err(Described) })
            .await
            .map_err(cache_error)
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
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(err.to_string().starts_with("invalid Redis URL"), "{err}");
        let s = RedisStore::with_host("h", 7, Some("p@ss:w/rd")).unwrap();
        assert_eq!(s.address(), "redis://h:7");
        assert!(!format!("{s:?}").contains("ss:w"));
    }
}
