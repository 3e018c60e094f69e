//! [`CacheLayer`]: the cache's configuration.

use std::{fmt, sync::Arc, time::Duration};

use tower_layer::Layer;

use super::{
    service::Cache,
    stats::{CacheHandle, Shared},
    store::CacheBackend,
};

/// Default time to live of an entry: 600 s (LiteLLM's in-memory default).
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);

/// Default largest entry stored: 1 MiB (LiteLLM's `max_size_per_item`).
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 1 << 20;

/// Settings shared by every clone of the service.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) ttl: Duration,
    pub(crate) namespace: Option<Arc<str>>,
    pub(crate) shared_scope: bool,
    pub(crate) chat: bool,
    pub(crate) embeddings: bool,
    pub(crate) max_entry_bytes: usize,
    /// Stamps entries (stored, expires) and judges their age.
    pub(crate) clock: crate::clock::Clock,
}

/// Applies [`Cache`]. See the [module docs](super) for an example.
///
/// Defaults: entries live [`DEFAULT_TTL`]; no namespace; scoped per tenant; chat completions and
/// embeddings cached; entries up to [`DEFAULT_MAX_ENTRY_BYTES`].
#[derive(Clone)]
#[must_use]
pub struct CacheLayer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) settings: Arc<Settings>,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("backend", &self.shared.backend.name())
            .field("settings", &self.settings)
            .finish()
    }
}

impl CacheLayer {
    /// A cache over `backend` (a [`MemoryStore`](super::MemoryStore), a
    /// [`RedisStore`](super::RedisStore) or a [`CacheBackend`]).
    pub fn new(backend: impl Into<CacheBackend>) -> Self {
        Self {
            shared: Arc::new(Shared::new(backend.into())),
            settings: Arc::new(Settings {
                ttl: DEFAULT_TTL,
                namespace: None,
                shared_scope: false,
                chat: true,
                embeddings: true,
                max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
                clock: crate::clock::Clock::system(),
            }),
        }
    }

    fn settings_mut(&mut self) -> &mut Settings {
        Arc::make_mut(&mut self.settings)
    }

    /// Stamps entries and judges their age (`ttl`, `max-age`) on `clock` (default:
    /// [`Clock::system`](crate::clock::Clock::system)). A backend's own expiry (Redis `EX`,
    /// the memory store's) stays real time.
    pub fn clock(mut self, clock: crate::clock::Clock) -> Self {
        self.settings_mut().clock = clock;
        self
    }

    /// How long entries live unless a request says otherwise (`cache: {"ttl": N}`).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.settings_mut().ttl = ttl;
        self
    }

    /// A namespace written in front of every key (`namespace:hash`); a request's own
    /// `namespace` replaces it.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        let ns: String = namespace.into();
        self.settings_mut().namespace = (!ns.is_empty()).then(|| ns.into());
        self
    }

    /// Share entries across tenants (LiteLLM's behaviour) instead of scoping them per team or
    /// key. Only for gateways whose callers may see each other's answers.
    pub fn shared_across_tenants(mut self, shared: bool) -> Self {
        self.settings_mut().shared_scope = shared;
        self
    }

    /// Which operations are cached (both by default).
    pub fn operations(mut self, chat: bool, embeddings: bool) -> Self {
        let s = self.settings_mut();
        s.chat = chat;
        s.embeddings = embeddings;
        self
    }

    /// The largest entry stored, in bytes; larger answers are served but not kept.
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.settings_mut().max_entry_bytes = bytes;
        self
    }

    /// The counters of this cache, and a way to wait for its queued writes.
    #[must_use]
    pub fn handle(&self) -> CacheHandle {
        CacheHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cache {
            inner,
            shared: self.shared.clone(),
            settings: self.settings.clone(),
        }
    }
}
