//! [`Cache`]: the service and its [`Plan`] for a request (what to look up, what to store).
//!
//! The rest of the request's path: [`super::future`] (look up, then answer or call),
//! [`super::embeddings`] (per-input batches), [`super::fill`] (storing a streamed answer).

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde_json::value::RawValue;
use tower_service::Service;

use super::{
    control::CacheControl,
    entry::{self, EntryBody},
    future::ResponseFuture,
    key,
    layer::{CacheLayer, Settings},
    stats::{Counters, Shared, WriteOp},
    store::CacheBackend,
};
use crate::{
    error::LlmError,
    types::{LlmRequest, LlmResponse, Operation, ResponseMeta},
};

/// The response header carrying the cache key (LiteLLM's name).
pub const CACHE_KEY_HEADER: HeaderName = HeaderName::from_static("x-litellm-cache-key");

/// The response header saying what the cache did: `hit`, `miss`, `partial` (embeddings: some
/// items cached) or `bypass` (the request asked not to read the cache).
pub const CACHE_STATUS_HEADER: HeaderName = HeaderName::from_static("x-llmgate-cache");

/// Answers repeated requests from a [`CacheStore`](super::CacheStore). See the
/// [module docs](super) for an example.
pub struct Cache<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
    pub(crate) settings: Arc<Settings>,
}

impl<S: Clone> Clone for Cache<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<S> fmt::Debug for Cache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.shared.backend.name())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<S> Cache<S> {
    /// Wraps `inner` with the cache `layer` describes.
    pub fn new(inner: S, layer: &CacheLayer) -> Self {
        Self {
            inner,
            shared: layer.shared.clone(),
            settings: layer.settings.clone(),
        }
    }

    /// A layer over `backend`, same as [`CacheLayer::new`].
    pub fn layer(backend: impl Into<CacheBackend>) -> CacheLayer {
        CacheLayer::new(backend)
    }

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

/// What to do once the lookup or the inner call is done.
pub(super) struct Plan {
    pub(super) shared: Arc<Shared>,
    pub(super) settings: Arc<Settings>,
    pub(super) control: CacheControl,
    pub(super) model: Arc<str>,
    pub(super) kind: PlanKind,
}

pub(super) enum PlanKind {
    Chat {
        key: Arc<str>,
        stream: bool,
        include_usage: bool,
        bypass: bool,
    },
    Embeddings {
        keys: Vec<Arc<str>>,
        weights: Vec<u64>,
        /// Cached items by position (filled by the lookup).
        hits: Vec<Option<CachedEmbedding>>,
        bypass: bool,
    },
}

pub(super) struct CachedEmbedding {
    pub(super) vector: Box<RawValue>,
    pub(super) tokens: u64,
    pub(super) model: Option<String>,
}

impl Plan {
    pub(super) fn ttl(&self) -> Duration {
        self.control.ttl.unwrap_or(self.settings.ttl)
    }

    pub(super) fn store(&self) -> bool {
        !self.control.no_store
    }

    pub(super) fn meta_headers(&self, meta: &mut ResponseMeta, status: &'static str) {
        if let PlanKind::Chat { key, .. } = &self.kind {
            if let Ok(v) = HeaderValue::from_str(key) {
                meta.headers.insert(CACHE_KEY_HEADER, v);
            }
        }
        meta.headers
            .insert(CACHE_STATUS_HEADER, HeaderValue::from_static(status));
    }

    pub(super) fn hit_meta(&self) -> ResponseMeta {
        let mut meta = ResponseMeta {
            model_group: Some(self.model.clone()),
            cost: Some(0.0),
            cache_hit: true,
            ..ResponseMeta::default()
        };
        self.meta_headers(&mut meta, "hit");
        meta
    }

    /// Reads one looked-up value: a usable entry, or a miss (a corrupt entry is deleted).
    pub(super) fn read(&self, key: &Arc<str>, value: Option<Bytes>) -> Option<EntryBody> {
        let bytes = value?;
        let Some(e) = entry::decode(&bytes) else {
            Counters::add(&self.shared.counters.corrupt, 1);
            tracing::debug!("corrupt cache entry; deleting it");
            self.shared.write(WriteOp::Delete(key.clone()));
            return None;
        };
        if e.is_stale(entry::now_ms(&self.settings.clock), self.control.max_age) {
            return None;
        }
        Some(e.body)
    }
}

impl<S> Service<LlmRequest> for Cache<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError> + Clone,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = ResponseFuture<S>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let Some(plan) = self.plan(&req) else {
            return ResponseFuture::call(&mut self.inner, req, None);
        };
        let lookup_keys: &[Arc<str>] = match &plan.kind {
            PlanKind::Chat { key, bypass, .. } => {
                if *bypass {
                    return ResponseFuture::call(&mut self.inner, req, Some(plan));
                }
                std::slice::from_ref(key)
            }
            PlanKind::Embeddings { keys, bypass, .. } => {
                if *bypass {
                    // Nothing read: every item goes upstream and is stored.
                    return ResponseFuture::call(&mut self.inner, req, Some(plan));
                }
                keys
            }
        };
        let lookup = self.shared.backend.lookup(lookup_keys);
        ResponseFuture::lookup(&mut self.inner, lookup, req, plan)
    }
}

impl<S> Cache<S> {
    /// The plan for `req`, or `None` when the cache stays out of it.
    fn plan(&self, req: &LlmRequest) -> Option<Plan> {
        let settings = &self.settings;
        let control = match &req.op {
            Operation::Chat(_) if settings.chat => CacheControl::from_request(req),
            Operation::Embeddings(_) if settings.embeddings => CacheControl::from_request(req),
            _ => return None,
        };
        if control.no_cache && control.no_store {
            return None;
        }
        let namespace = control
            .namespace
            .as_deref()
            .or(settings.namespace.as_deref());
        let scope = |h: &mut sha2::Sha256| {
            if !settings.shared_scope {
                key::hash_scope(h, req);
            }
        };
        let kind = match &req.op {
            Operation::Chat(body) => {
                let mut h = key::chat_hasher(body);
                scope(&mut h);
                PlanKind::Chat {
                    key: key::finish(h, namespace),
                    stream: body.stream.unwrap_or(false),
                    include_usage: body
                        .stream_options
                        .as_ref()
                        .and_then(|o| o.include_usage)
                        .unwrap_or(false),
                    bypass: control.no_cache,
                }
            }
            Operation::Embeddings(body) => {
                // Without reading the cache there is nothing to split; let the batch through
                // whole and store its items.
                let items = key::embedding_items(&body.input);
                if items.is_empty() {
                    return None;
                }
                let mut base = key::embeddings_hasher(body);
                scope(&mut base);
                let keys = items
                    .iter()
                    .map(|item| {
                        let mut h = base.clone();
                        key::hash_embedding_item(&mut h, *item);
                        key::finish(h, namespace)
                    })
                    .collect();
                PlanKind::Embeddings {
                    keys,
                    weights: items.iter().map(|i| i.weight()).collect(),
                    hits: Vec::new(),
                    bypass: control.no_cache,
                }
            }
            _ => return None,
        };
        Some(Plan {
            shared: self.shared.clone(),
            settings: self.settings.clone(),
            control,
            model: req.model().into(),
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;
    use tower::ServiceExt as _;
    use tower_layer::Layer as _;

    use super::*;
    use crate::{
        cache::MemoryStore,
        types::{chat::ChatResponse, ChunkBody, ResponseBody},
    };

    fn chunk(json: &str) -> Result<ChunkBody, LlmError> {
        Ok(serde_json::from_str::<crate::types::chat::ChatChunk>(json)
            .unwrap()
            .into())
    }

    /// A service answering every call with a three-chunk stream, counting calls.
    fn streaming(
        calls: Arc<std::sync::atomic::AtomicUsize>,
    ) -> impl Service<LlmRequest, Response = LlmResponse, Error = LlmError, Future = impl Send> + Clone
    {
        tower::service_fn(move |_req: LlmRequest| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async {
                let chunks = vec![
                    chunk(
                        r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"a"}}]}"#,
                    ),
                    chunk(r#"{"id":"c","choices":[{"index":0,"delta":{"content":"b"}}]}"#),
                    chunk(
                        r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
                    ),
                ];
                Ok(LlmResponse::stream(Box::pin(futures_util::stream::iter(
                    chunks,
                ))))
            }
        })
    }

    fn stream_req() -> LlmRequest {
        LlmRequest::chat(
            serde_json::from_str(
                r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#,
            )
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn a_stream_dropped_midway_is_not_stored_and_a_finished_one_is() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let layer = CacheLayer::new(MemoryStore::new(1 << 20));
        let handle = layer.handle();
        let svc = layer.layer(streaming(calls.clone()));

        let resp = svc.clone().oneshot(stream_req()).await.unwrap();
        let ResponseBody::Stream(mut s) = resp.body else {
            panic!("stream")
        };
        assert!(
            s.next().await.unwrap().is_ok(),
            "first chunk passes at once"
        );
        drop(s);
        handle.flushed().await;
        assert_eq!(handle.stats().stores, 0);

        let resp = svc.clone().oneshot(stream_req()).await.unwrap();
        let ResponseBody::Stream(s) = resp.body else {
            panic!("stream")
        };
        assert_eq!(s.count().await, 3);
        handle.flushed().await;
        assert_eq!(handle.stats().stores, 1);

        let hit = svc.oneshot(stream_req()).await.unwrap();
        assert!(hit.meta.cache_hit);
        assert_eq!(hit.meta.cost, Some(0.0));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn entries_age_on_the_layers_clock() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let clock = crate::clock::Clock::manual();
        let layer = CacheLayer::new(MemoryStore::new(1 << 20))
            .ttl(std::time::Duration::from_secs(60))
            .clock(clock.clone());
        let handle = layer.handle();
        let svc = layer.layer(streaming(calls.clone()));
        let fill = |svc: Cache<_>| async move {
            let resp = svc.oneshot(stream_req()).await.unwrap();
            let ResponseBody::Stream(s) = resp.body else {
                panic!("stream")
            };
            s.count().await
        };
        assert_eq!(fill(svc.clone()).await, 3);
        handle.flushed().await;
        // Stamped on the layer's clock: 60 s later, to the millisecond, it is no longer served.
        clock.advance(std::time::Duration::from_millis(59_999));
        assert!(
            svc.clone()
                .oneshot(stream_req())
                .await
                .unwrap()
                .meta
                .cache_hit
        );
        clock.advance(std::time::Duration::from_millis(1));
        let again = svc.clone().oneshot(stream_req()).await.unwrap();
        assert!(!again.meta.cache_hit);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn model_listing_and_errors_pass_through() {
        let layer = CacheLayer::new(MemoryStore::new(1 << 20));
        let handle = layer.handle();
        let svc = layer.layer(tower::service_fn(|req: LlmRequest| async move {
            match req.op {
                Operation::ListModels => Ok(LlmResponse::chat(ChatResponse::default())),
                _ => Err(LlmError::new(crate::ErrorKind::RateLimit, "slow down")),
            }
        }));
        assert!(svc.clone().oneshot(LlmRequest::list_models()).await.is_ok());
        let err = svc.clone().oneshot(stream_req()).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::RateLimit);
        handle.flushed().await;
        let s = handle.stats();
        assert_eq!((s.hits, s.misses, s.stores), (0, 1, 0));
    }
}
