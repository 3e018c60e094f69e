//! Response cache: answers a repeated request from memory or Redis instead of the provider.
//!
//! [`Cache`] looks each chat completion and each embeddings input up under a key derived from the
//! request (`docs/caching.md` in the repository lists exactly what is hashed), serves a usable entry as the answer, and otherwise calls the inner
//! service and stores its answer off the request path (a bounded queue and one background task).
//!
//! - **Keys** are a SHA-256 over the model group, every request field that changes the answer
//!   (messages, tools, temperature, max_tokens, response_format, seed, unknown fields …) in a
//!   canonical form (object keys sorted), and the caller's scope. `stream`, `stream_options`,
//!   `user`, `metadata` and the gateway's own controls are left out.
//! - **Scope**: by default entries are private to a tenant: the [`CacheScope`] extension an auth
//!   layer sets (team, else key), else a digest of the presented key. LiteLLM's behaviour of one
//!   cache for everyone is [`CacheLayer::shared_across_tenants`].
//! - **Per-request controls** ([`CacheControl`]): `cache: {"no-cache", "no-store", "ttl",
//!   "s-maxage", "namespace"}` in the body, or the `Cache-Control` header.
//! - **Streams**: a streamed answer is observed by [`CacheFillStream`] on its way to the client and
//!   stored once it ended well; a hit is replayed as a stream to a streaming client and as a whole
//!   response otherwise, always with a fresh id and timestamp.
//! - **Embeddings** are cached per input: a batch with one new input sends only that input
//!   upstream and reassembles the answer in order.
//! - **Signals**: `x-litellm-cache-key` and `x-llmgate-cache: hit | miss | partial | bypass` response
//!   headers; on a hit [`ResponseMeta::cache_hit`](crate::types::ResponseMeta) is `true` and the cost
//!   is zero; [`CacheHandle::stats`] counts hits, misses and errors.
//! - **Faults**: a store that fails or is slow (Redis: 250 ms) makes the request go on uncached; the
//!   error is counted and logged at most every 30 s. A corrupt entry is a miss and is deleted.
//!
//! # Place in the default order
//!
//! `… → Cost → Cache → Fallback → Retry → Router`: inside cost, so that hits are logged at zero
//! cost; outside fallback and retry, so a cached answer costs no retries and an answer from a
//! fallback group is stored under the key of the group the client asked for.
//!
//! Extensions read: [`CacheScope`], [`PresentedKey`](crate::auth::PresentedKey),
//! [`CacheControlHeader`](crate::server::CacheControlHeader). Extensions written: none.
//! Errors produced: none of its own (a store failure is never an error for the client); an
//! embeddings batch whose provider returned the wrong number of vectors is
//! [`ErrorKind::InternalServer`](crate::ErrorKind).
//!
//! # Examples
//!
//! In memory, with the defaults (600 s entries, scoped per tenant, 64 MiB):
//!
//! ```
//! use llmgate::cache::{CacheLayer, MemoryStore, DEFAULT_MEMORY_BYTES};
//! use tower::ServiceBuilder;
//! # use llmgate::{LlmRequest, LlmResponse, LlmError};
//! # let router = tower::service_fn(|_r: LlmRequest| async { Err::<LlmResponse, _>(LlmError::internal("x")) });
//! let cache = CacheLayer::new(MemoryStore::new(DEFAULT_MEMORY_BYTES));
//! let stats = cache.handle();
//! let svc = ServiceBuilder::new().layer(cache).service(router);
//! assert_eq!(stats.stats().hits, 0);
//! ```
//!
//! Shared Redis, one hour entries, a namespace, shared across tenants, chat only:
//!
//! ```
//! use std::time::Duration;
//! use llmgate::cache::{CacheLayer, RedisStore};
//! # use llmgate::{LlmRequest, LlmResponse, LlmError};
//! # let router = tower::service_fn(|_r: LlmRequest| async { Err::<LlmResponse, _>(LlmError::internal("x")) });
//! let store = RedisStore::open("redis://127.0.0.1:6379/0")?.timeout(Duration::from_millis(100));
//! let cache = CacheLayer::new(store)
//!     .ttl(Duration::from_secs(3600))
//!     .namespace("llmgate")
//!     .shared_across_tenants(true)
//!     .operations(true, false);
//! let svc = tower::ServiceBuilder::new().layer(cache).service(router);
//! # Ok::<(), llmgate::cache::RedisUrlError>(())
//! ```
//!
//! In the gateway, `config.yaml` turns it on as in LiteLLM:
//!
//! ```yaml
//! litellm_settings:
//!   cache: true
//!   cache_params:
//!     type: redis          # or local
//!     url: os.environ/REDIS_URL
//!     ttl: 600
//!     namespace: llmgate
//! ```

mod control;
mod embeddings;
mod entry;
mod fill;
mod future;
mod key;
mod layer;
#[cfg(feature = "redis")]
mod redis;
mod service;
mod stats;
mod store;

#[cfg(feature = "redis")]
pub use self::redis::{RedisStore, RedisUrlError, DEFAULT_REDIS_TIMEOUT};
pub use self::{
    control::CacheControl,
    fill::CacheFillStream,
    future::ResponseFuture,
    key::{CacheScope, NOT_HASHED},
    layer::{CacheLayer, DEFAULT_MAX_ENTRY_BYTES, DEFAULT_TTL},
    service::{Cache, CACHE_KEY_HEADER, CACHE_STATUS_HEADER},
    stats::{CacheHandle, CacheStats},
    store::{CacheBackend, CacheError, CacheStore, MemoryStore, DEFAULT_MEMORY_BYTES},
};

/// Hashing, exposed for the benchmark only (not a stable API).
#[doc(hidden)]
pub mod bench {
    use std::sync::Arc;

    use crate::types::LlmRequest;

    /// The cache key of a chat request in the default (per-tenant, no namespace) mode.
    #[must_use]
    pub fn chat_key(req: &LlmRequest) -> Option<Arc<str>> {
        let body = req.as_chat()?;
        let mut h = super::key::chat_hasher(body);
        super::key::hash_scope(&mut h, req);
        Some(super::key::finish(h, None))
    }
}
