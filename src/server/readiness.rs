//! [`Readiness`]: what `GET /health/readiness` reports, in LiteLLM's shape.

use std::{
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use serde_json::json;

use crate::{
    clock::Clock,
    error::{ErrorKind, LlmError},
    redis_guard::Breaker,
    store::KeyStore,
};

/// How long a successful database check is reused (readiness is unauthenticated: a flood of
/// probes must not take the pool from key lookups).
const FRESH_MS: i64 = 1_000;

/// How long a database check may take before the gateway counts as not ready.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// What `GET /health/readiness` reports: LiteLLM's fields `status`, `db`, `cache`,
/// `litellm_version` (llmgate's version), `success_callbacks` (the callbacks in use, given with
/// [`Readiness::callbacks`]; none by default) and `use_aiohttp_transport` (always `false`: a
/// Python-only setting, kept for clients that read it).
///
/// Without a database: `{"status": "healthy", "db": "Not connected", ...}`. With one, the database
/// is asked (`SELECT 1`, reused for 1 s): when it answers, `db` is `"connected"` and, as LiteLLM's
/// answer reads, `status` is `"connected"` with `last_updated` (when it last answered); when it
/// does not (within 3 s), the answer is 503 with the OpenAI error JSON. `cache` is `"redis"`,
/// `"local"` or `null`.
///
/// With Redis in use ([`Readiness::redis`]), `redis` is `"connected"`, or `"degraded"` while any
/// of its users' breakers ([`crate::redis_guard`]) is open; then `redis_degraded` lists them
/// (`"rate limits"`, `"router"`, `"cache"`) and `redis_degraded_seconds` says for how long. A
/// Redis outage does not make the gateway unready (the status stays 200): it serves, with limits
/// per process and cooldowns local, until Redis answers again.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    database: Option<Arc<dyn KeyStore>>,
    cache: Option<&'static str>,
    /// The breakers of Redis' users.
    redis: Vec<Breaker>,
    /// The callbacks in use (`success_callbacks`).
    callbacks: Vec<String>,
    /// Unix ms of the last successful database check (0: none yet).
    last_ok: AtomicI64,
    /// Judges the last check's age.
    clock: Clock,
}

impl Readiness {
    /// Readiness with neither database nor cache.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reports `store` (checked on each probe, see the type docs) and `cache` (`"redis"` or
    /// `"local"`).
    #[must_use]
    pub fn with(store: Option<Arc<dyn KeyStore>>, cache: Option<&'static str>) -> Self {
        Self {
            inner: Arc::new(Inner {
                database: store,
                cache,
                redis: Vec::new(),
                callbacks: Vec::new(),
                last_ok: AtomicI64::new(0),
                clock: Clock::system(),
            }),
        }
    }

    /// Also reports Redis through `breakers` (see the type docs).
    #[must_use]
    pub fn redis(self, breakers: impl IntoIterator<Item = Breaker>) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                database: inner.database.clone(),
                cache: inner.cache,
                redis: inner.redis.iter().cloned().chain(breakers).collect(),
                callbacks: inner.callbacks.clone(),
                last_ok: AtomicI64::new(inner.last_ok.load(Ordering::Relaxed)),
                clock: inner.clock.clone(),
            }),
        }
    }

    /// Judges how old the last database check is on `clock` (default: [`Clock::system`]).
    #[must_use]
    pub fn clock(self, clock: Clock) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                database: inner.database.clone(),
                cache: inner.cache,
                redis: inner.redis.clone(),
                callbacks: inner.callbacks.clone(),
                last_ok: AtomicI64::new(inner.last_ok.load(Ordering::Relaxed)),
                clock,
            }),
        }
    }

    /// Reports `names` as the callbacks in use (`success_callbacks`; default none).
    #[must_use]
    pub fn callbacks(self, names: impl IntoIterator<Item = String>) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                database: inner.database.clone(),
                cache: inner.cache,
                redis: inner.redis.clone(),
                callbacks: names.into_iter().collect(),
                last_ok: AtomicI64::new(inner.last_ok.load(Ordering::Relaxed)),
                clock: inner.clock.clone(),
            }),
        }
    }

    /// The answer: the JSON body, or the error when the database does not answer.
    pub async fn check(&self) -> Result<Bytes, LlmError> {
        let inner = &self.inner;
        let mut body = json!({
            "status": "healthy",
            "db": "Not connected",
            "cache": inner.cache,
            "litellm_version": env!("CARGO_PKG_VERSION"),
            "success_callbacks": inner.callbacks,
            "use_aiohttp_transport": false,
        });
        if !inner.redis.is_empty() {
            let open: Vec<&Breaker> = inner.redis.iter().filter(|b| b.is_open()).collect();
            if open.is_empty() {
                body["redis"] = "connected".into();
            } else {
                body["redis"] = "degraded".into();
                body["redis_degraded"] = open.iter().map(|b| b.what()).collect::<Vec<_>>().into();
                let secs = open
                    .iter()
                    .filter_map(|b| b.degraded_for())
                    .max()
                    .unwrap_or_default()
                    .as_secs();
                body["redis_degraded_seconds"] = secs.into();
            }
        }
        if let Some(store) = &inner.database {
            let now = inner.clock.unix_ms();
            let last = inner.last_ok.load(Ordering::Relaxed);
            let fresh = last > 0 && now.saturating_sub(last) < FRESH_MS;
            if !fresh {
                let ok = tokio::time::timeout(CHECK_TIMEOUT, store.ping())
                    .await
                    .unwrap_or(false);
                if !ok {
                    return Err(LlmError::new(
                        ErrorKind::ServiceUnavailable,
                        "Service Unhealthy (the database does not answer)",
                    )
                    .with_code("503"));
                }
                inner.last_ok.store(now, Ordering::Relaxed);
            }
            body["status"] = "connected".into();
            body["db"] = "connected".into();
            body["last_updated"] = super::iso(inner.last_ok.load(Ordering::Relaxed)).into();
        }
        Ok(Bytes::from(body.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn json(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[tokio::test]
    async fn without_a_database_it_is_healthy_and_not_connected() {
        let v = json(&Readiness::new().check().await.unwrap());
        assert_eq!(v["status"], "healthy");
        assert_eq!(v["db"], "Not connected");
        assert_eq!(v["cache"], Value::Null);
        assert_eq!(v["success_callbacks"], json!([]));
        let v = json(&Readiness::with(None, Some("redis")).check().await.unwrap());
        assert_eq!(v["cache"], "redis");
    }

    #[tokio::test]
    async fn redis_is_reported_connected_or_degraded_and_stays_ready() {
        let v = json(&Readiness::new().check().await.unwrap());
        assert!(v.get("redis").is_none(), "{v}");
        let up = Breaker::new("router", Duration::from_millis(20), || async { true });
        let down = Breaker::new("rate limits", Duration::from_millis(20), || async { false });
        let r = Readiness::new().redis([up.clone(), down.clone()]);
        let v = json(&r.check().await.unwrap());
        assert_eq!(v["redis"], "connected");
        assert!(v.get("redis_degraded").is_none());
        let failed: Result<(), _> = down.run(async { Err::<(), _>("refused") }).await;
        assert!(failed.is_err());
        // Degraded, and still a 200 answer: the gateway serves meanwhile.
        let v = json(&r.check().await.unwrap());
        assert_eq!(v["status"], "healthy");
        assert_eq!(v["redis"], "degraded");
        assert_eq!(v["redis_degraded"], json!(["rate limits"]));
        assert_eq!(v["redis_degraded_seconds"], 0);
    }

    #[tokio::test]
    async fn a_database_that_answers_is_connected_and_the_check_is_reused() {
        let store = crate::store::Store::connect("sqlite::memory:")
            .await
            .unwrap();
        let r = Readiness::with(Some(Arc::new(store)), Some("local"));
        let v = json(&r.check().await.unwrap());
        assert_eq!(
            (v["status"].as_str(), v["db"].as_str()),
            (Some("connected"), Some("connected"))
        );
        assert_eq!(v["cache"], "local");
        let first = r.inner.last_ok.load(Ordering::Relaxed);
        assert!(first > 0);
        // Within a second the last check is reused: `last_updated` does not move.
        let again = json(&r.check().await.unwrap());
        assert_eq!(again["last_updated"], v["last_updated"]);
        assert_eq!(r.inner.last_ok.load(Ordering::Relaxed), first);
    }
}
