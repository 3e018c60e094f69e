//! [`Cache`]: the service, its [`ResponseFuture`], and the stream observer that fills the cache.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderName, HeaderValue};
use pin_project_lite::pin_project;
use serde_json::value::RawValue;
use tower_service::Service;

use super::{
    control::CacheControl,
    entry::{self, Assembler, EntryBody},
    key,
    layer::{CacheLayer, Settings},
    stats::{Counters, Shared, WriteOp},
    store::{CacheBackend, LookupFuture},
};
use crate::{
    error::LlmError,
    types::{
        chat::ChatResponse,
        embeddings::{
            Embedding, EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage,
        },
        ChatStream, ChunkBody, LlmRequest, LlmResponse, Operation, ResponseBody, ResponseMeta,
    },
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
struct Plan {
    shared: Arc<Shared>,
    settings: Arc<Settings>,
    control: CacheControl,
    model: Arc<str>,
    kind: PlanKind,
}

enum PlanKind {
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

struct CachedEmbedding {
    vector: Box<RawValue>,
    tokens: u64,
    model: Option<String>,
}

impl Plan {
    fn ttl(&self) -> Duration {
        self.control.ttl.unwrap_or(self.settings.ttl)
    }

    fn store(&self) -> bool {
        !self.control.no_store
    }

    fn meta_headers(&self, meta: &mut ResponseMeta, status: &'static str) {
        if let PlanKind::Chat { key, .. } = &self.kind {
            if let Ok(v) = HeaderValue::from_str(key) {
                meta.headers.insert(CACHE_KEY_HEADER, v);
            }
        }
        meta.headers
            .insert(CACHE_STATUS_HEADER, HeaderValue::from_static(status));
    }

    fn hit_meta(&self) -> ResponseMeta {
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
    fn read(&self, key: &Arc<str>, value: Option<Bytes>) -> Option<EntryBody> {
        let bytes = value?;
        let Some(e) = entry::decode(&bytes) else {
            Counters::add(&self.shared.counters.corrupt, 1);
            tracing::debug!("corrupt cache entry; deleting it");
            self.shared.write(WriteOp::Delete(key.clone()));
            return None;
        };
        if e.is_stale(entry::now_ms(), self.control.max_age) {
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
            return ResponseFuture::inner(self.inner.call(req), None);
        };
        let lookup_keys: &[Arc<str>] = match &plan.kind {
            PlanKind::Chat { key, bypass, .. } => {
                if *bypass {
                    return ResponseFuture::inner(self.inner.call(req), Some(plan));
                }
                std::slice::from_ref(key)
            }
            PlanKind::Embeddings { keys, bypass, .. } => {
                if *bypass {
                    // Nothing read: every item goes upstream and is stored.
                    return ResponseFuture::inner(self.inner.call(req), Some(plan));
                }
                keys
            }
        };
        let lookup = self.shared.backend.lookup(lookup_keys);
        // The instance that reported ready goes into the future; this one keeps a clone.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            state: State::Lookup {
                lookup,
                inner: Some(inner),
                req: Some(req),
                plan: Some(plan),
            },
        }
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

pin_project! {
    /// The response future of [`Cache`]: a lookup, then either the cached answer or the inner
    /// call (whose answer is stored off the request path).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S>
    where
        S: Service<LlmRequest>,
    {
        #[pin]
        state: State<S, S::Future>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F> {
        Lookup {
            lookup: LookupFuture,
            inner: Option<S>,
            req: Option<LlmRequest>,
            plan: Option<Plan>,
        },
        Inner {
            #[pin]
            fut: F,
            plan: Option<Plan>,
        },
        Done,
    }
}

impl<S: Service<LlmRequest>> fmt::Debug for ResponseFuture<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S: Service<LlmRequest>> ResponseFuture<S> {
    fn inner(fut: S::Future, plan: Option<Plan>) -> Self {
        Self {
            state: State::Inner { fut, plan },
        }
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    type Output = Result<LlmResponse, LlmError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            match this.state.as_mut().project() {
                StateProj::Lookup {
                    lookup,
                    inner,
                    req,
                    plan,
                } => {
                    let found = ready!(Pin::new(lookup).poll(cx));
                    let (Some(mut svc), Some(req), Some(mut plan)) =
                        (inner.take(), req.take(), plan.take())
                    else {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(LlmError::internal(
                            "cache future polled after completion",
                        )));
                    };
                    let values = match found {
                        Ok(v) => v,
                        Err(e) => {
                            plan.shared
                                .counters
                                .store_error(plan.shared.backend.name(), "get", &e);
                            Vec::new()
                        }
                    };
                    match on_lookup(&mut plan, values, req) {
                        Lookup::Hit(resp) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(*resp));
                        }
                        Lookup::Call(req) => {
                            let fut = svc.call(req);
                            this.state.set(State::Inner {
                                fut,
                                plan: Some(plan),
                            });
                        }
                    }
                }
                StateProj::Inner { fut, plan } => {
                    let res = ready!(fut.poll(cx));
                    let plan = plan.take();
                    this.state.set(State::Done);
                    return Poll::Ready(match (res, plan) {
                        (Ok(resp), Some(plan)) => on_answer(&plan, resp),
                        (res, _) => res,
                    });
                }
                StateProj::Done => {
                    return Poll::Ready(Err(LlmError::internal(
                        "cache future polled after completion",
                    )))
                }
            }
        }
    }
}

enum Lookup {
    Hit(Box<LlmResponse>),
    Call(LlmRequest),
}

/// Turns looked-up values (empty on a store error) into a cached answer or the request to send.
fn on_lookup(plan: &mut Plan, values: Vec<Option<Bytes>>, req: LlmRequest) -> Lookup {
    let counters = &plan.shared.counters;
    match &plan.kind {
        PlanKind::Chat {
            key,
            stream,
            include_usage,
            ..
        } => {
            let value = values.into_iter().next().flatten();
            match plan.read(key, value) {
                Some(EntryBody::Chat(resp)) => {
                    Counters::add(&counters.hits, 1);
                    let body = if *stream {
                        ResponseBody::Stream(entry::replay_stream(resp, *include_usage))
                    } else {
                        ResponseBody::Chat(entry::replay_whole(resp).into())
                    };
                    let mut meta = plan.hit_meta();
                    if let ResponseBody::Chat(c) = &body {
                        meta.usage = c.usage().cloned();
                    }
                    Lookup::Hit(Box::new(LlmResponse {
                        body,
                        meta: Box::new(meta),
                    }))
                }
                _ => {
                    Counters::add(&counters.misses, 1);
                    Lookup::Call(req)
                }
            }
        }
        PlanKind::Embeddings { keys, .. } => {
            let mut values = values;
            values.resize(keys.len(), None);
            let hits: Vec<Option<CachedEmbedding>> = keys
                .iter()
                .zip(values)
                .map(|(k, v)| match plan.read(k, v) {
                    Some(EntryBody::Embedding {
                        vector,
                        tokens,
                        model,
                    }) => Some(CachedEmbedding {
                        vector,
                        tokens,
                        model,
                    }),
                    _ => None,
                })
                .collect();
            let n_hit = hits.iter().filter(|h| h.is_some()).count();
            Counters::add(&counters.hits, n_hit as u64);
            Counters::add(&counters.misses, (hits.len() - n_hit) as u64);
            let all_hit = n_hit == hits.len();
            let none_hit = n_hit == 0;
            if let PlanKind::Embeddings { hits: slot, .. } = &mut plan.kind {
                *slot = hits;
            }
            if all_hit {
                return Lookup::Hit(Box::new(embeddings_from_cache(plan)));
            }
            if none_hit {
                return Lookup::Call(req);
            }
            Lookup::Call(missing_only(plan, req))
        }
    }
}

/// The request for the items the cache did not have, in their original order.
fn missing_only(plan: &Plan, mut req: LlmRequest) -> LlmRequest {
    let PlanKind::Embeddings { hits, .. } = &plan.kind else {
        return req;
    };
    if let Operation::Embeddings(body) = &req.op {
        let missing = |i: usize| hits.get(i).is_some_and(Option::is_none);
        let input = match &body.input {
            EmbeddingInput::Many(v) => EmbeddingInput::Many(
                v.iter()
                    .enumerate()
                    .filter(|(i, _)| missing(*i))
                    .map(|(_, s)| s.clone())
                    .collect(),
            ),
            EmbeddingInput::TokenBatches(v) => EmbeddingInput::TokenBatches(
                v.iter()
                    .enumerate()
                    .filter(|(i, _)| missing(*i))
                    .map(|(_, t)| t.clone())
                    .collect(),
            ),
            // A single input is all hit or all miss; never split.
            other => other.clone(),
        };
        let sub = EmbeddingsRequest {
            input,
            ..EmbeddingsRequest::clone(body)
        };
        req.op = Operation::Embeddings(Arc::new(sub));
    }
    req
}

fn embeddings_from_cache(plan: &Plan) -> LlmResponse {
    let PlanKind::Embeddings { hits, .. } = &plan.kind else {
        return LlmResponse::embeddings(EmbeddingsResponse::default());
    };
    let mut tokens = 0;
    let mut model = None;
    let data = hits
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let h = h.as_ref()?;
            tokens += h.tokens;
            if model.is_none() {
                model.clone_from(&h.model);
            }
            Some(embedding(i, h.vector.clone()))
        })
        .collect();
    LlmResponse {
        body: ResponseBody::Embeddings(Box::new(EmbeddingsResponse {
            data,
            object: Some("list".to_owned()),
            model,
            usage: Some(EmbeddingsUsage {
                prompt_tokens: Some(tokens),
                total_tokens: Some(tokens),
                ..EmbeddingsUsage::default()
            }),
            ..EmbeddingsResponse::default()
        })),
        meta: Box::new(plan.hit_meta()),
    }
}

fn embedding(index: usize, vector: Box<RawValue>) -> Embedding {
    Embedding {
        object: Some("embedding".to_owned()),
        index: Some(u32::try_from(index).unwrap_or(u32::MAX)),
        embedding: Some(vector),
        ..Embedding::default()
    }
}

/// Stores the inner service's answer (complete now, or when its stream ends) and labels it.
fn on_answer(plan: &Plan, mut resp: LlmResponse) -> Result<LlmResponse, LlmError> {
    match &plan.kind {
        PlanKind::Chat { key, bypass, .. } => {
            plan.meta_headers(&mut resp.meta, if *bypass { "bypass" } else { "miss" });
            if !plan.store() {
                return Ok(resp);
            }
            let ttl = plan.ttl();
            let max = plan.settings.max_entry_bytes;
            match resp.body {
                ResponseBody::Chat(ref mut c) => {
                    // An answer that is not a chat completion is relayed as it came, not stored.
                    let encoded = c.typed().ok().and_then(|c| entry::encode_chat(c, ttl));
                    if let Some(bytes) = encoded.filter(|b| b.len() <= max) {
                        plan.shared
                            .write(WriteOp::Set(vec![(key.clone(), bytes, ttl)]));
                    }
                }
                ResponseBody::Stream(stream) => {
                    resp.body = ResponseBody::Stream(Box::pin(CacheFillStream {
                        inner: stream,
                        fill: Some(Fill {
                            asm: Assembler::default(),
                            key: key.clone(),
                            ttl,
                            max,
                            shared: plan.shared.clone(),
                        }),
                    }));
                }
                _ => {}
            }
            Ok(resp)
        }
        PlanKind::Embeddings { .. } => embeddings_answer(plan, resp),
    }
}

fn embeddings_answer(plan: &Plan, mut resp: LlmResponse) -> Result<LlmResponse, LlmError> {
    let PlanKind::Embeddings {
        keys,
        weights,
        hits,
        bypass,
    } = &plan.kind
    else {
        return Ok(resp);
    };
    let ResponseBody::Embeddings(upstream) = &mut resp.body else {
        return Ok(resp);
    };
    let missing: Vec<usize> = (0..keys.len())
        .filter(|i| hits.get(*i).is_none_or(Option::is_none))
        .collect();
    let partial = missing.len() < keys.len();
    // Upstream data by its `index` (position in the sub-request), else by position.
    let mut fresh: Vec<Option<Box<RawValue>>> = vec![None; missing.len()];
    for (pos, e) in upstream.data.iter_mut().enumerate() {
        let at = e.index.map_or(pos, |i| i as usize);
        if let (Some(slot), Some(v)) = (fresh.get_mut(at), e.embedding.take()) {
            *slot = Some(v);
        }
    }
    if fresh.iter().any(Option::is_none) || upstream.data.len() != missing.len() {
        if partial {
            return Err(LlmError::internal(format!(
                "the provider returned {} embeddings for {} inputs",
                upstream.data.len(),
                missing.len()
            )));
        }
        // Put back what was taken and pass the answer on unchanged (nothing stored).
        for (pos, e) in upstream.data.iter_mut().enumerate() {
            let at = e.index.map_or(pos, |i| i as usize);
            if let Some(v) = fresh.get_mut(at).and_then(Option::take) {
                e.embedding = Some(v);
            }
        }
        plan.meta_headers(&mut resp.meta, if *bypass { "bypass" } else { "miss" });
        return Ok(resp);
    }
    let fresh: Vec<Box<RawValue>> = fresh.into_iter().flatten().collect();

    // Share the batch's prompt tokens among the new items by their length.
    let paid = upstream.usage.as_ref().and_then(|u| u.prompt_tokens);
    let item_tokens = share(paid.unwrap_or(0), missing.iter().map(|i| weights[*i]));
    if plan.store() {
        let ttl = plan.ttl();
        let model = upstream.model.as_deref();
        let writes: Vec<_> = missing
            .iter()
            .zip(&fresh)
            .zip(&item_tokens)
            .filter_map(|((i, v), tok)| {
                let bytes = entry::encode_embedding(v, *tok, model, ttl)?;
                (bytes.len() <= plan.settings.max_entry_bytes)
                    .then(|| (keys[*i].clone(), bytes, ttl))
            })
            .collect();
        if !writes.is_empty() {
            plan.shared.write(WriteOp::Set(writes));
        }
    }

    // Reassemble in the original order.
    let mut fresh = fresh.into_iter();
    let mut tokens = 0;
    let data = (0..keys.len())
        .map(|i| match hits.get(i).and_then(Option::as_ref) {
            Some(h) => {
                tokens += h.tokens;
                embedding(i, h.vector.clone())
            }
            None => embedding(i, fresh.next().unwrap_or_else(null_raw)),
        })
        .collect();
    tokens += paid.unwrap_or(0);
    upstream.data = data;
    if partial {
        upstream.usage = Some(EmbeddingsUsage {
            prompt_tokens: Some(tokens),
            total_tokens: Some(tokens),
            ..EmbeddingsUsage::default()
        });
    }
    let label = match (partial, *bypass) {
        (true, _) => "partial",
        (false, true) => "bypass",
        (false, false) => "miss",
    };
    plan.meta_headers(&mut resp.meta, label);
    Ok(resp)
}

fn null_raw() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| Box::<RawValue>::default())
}

/// Splits `total` into parts proportional to `weights`, summing exactly to `total`.
fn share(total: u64, weights: impl Iterator<Item = u64> + Clone) -> Vec<u64> {
    let sum: u64 = weights.clone().sum::<u64>().max(1);
    let mut out: Vec<u64> = weights
        .map(|w| ((u128::from(total) * u128::from(w)) / u128::from(sum)) as u64)
        .collect();
    let given: u64 = out.iter().sum();
    if let Some(last) = out.last_mut() {
        *last += total.saturating_sub(given);
    }
    out
}

struct Fill {
    asm: Assembler,
    key: Arc<str>,
    ttl: Duration,
    max: usize,
    shared: Arc<Shared>,
}

pin_project! {
    /// Observes a streamed answer on its way to the client and stores it once the stream ended
    /// well. Each chunk is passed on as it arrives (the client never waits for the fill); a
    /// stream that fails, is cut, or grows past the entry limit is not stored.
    #[must_use = "streams do nothing unless polled"]
    pub struct CacheFillStream {
        #[pin]
        inner: ChatStream,
        fill: Option<Fill>,
    }
}

impl fmt::Debug for CacheFillStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheFillStream")
            .field("filling", &self.fill.is_some())
            .finish_non_exhaustive()
    }
}

impl Stream for CacheFillStream {
    type Item = Result<ChunkBody, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let mut item = ready!(this.inner.poll_next(cx));
        match &mut item {
            Some(Ok(chunk)) => {
                if let Some(fill) = this.fill {
                    // The entry needs the typed chunk; a chunk that does not parse is relayed,
                    // and this answer is not stored.
                    match chunk.typed() {
                        Ok(c) => {
                            fill.asm.push(c);
                            if fill.asm.size() > fill.max {
                                *this.fill = None;
                            }
                        }
                        Err(_) => *this.fill = None,
                    }
                }
            }
            Some(Err(_)) => *this.fill = None,
            None => {
                if let Some(fill) = this.fill.take() {
                    fill.finish();
                }
            }
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl Fill {
    fn finish(self) {
        let resp: ChatResponse = self.asm.finish();
        // A stream that ended without any finish reason was cut short upstream.
        if !resp.choices.iter().any(|c| c.finish_reason.is_some()) {
            return;
        }
        if let Some(bytes) = entry::encode_chat(&resp, self.ttl).filter(|b| b.len() <= self.max) {
            self.shared
                .write(WriteOp::Set(vec![(self.key, bytes, self.ttl)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;
    use tower::ServiceExt as _;
    use tower_layer::Layer as _;

    use super::*;
    use crate::cache::MemoryStore;

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

    #[test]
    fn share_sums_exactly() {
        assert_eq!(share(10, [1, 1, 1].into_iter()), vec![3, 3, 4]);
        assert_eq!(share(0, [5, 1].into_iter()), vec![0, 0]);
        assert_eq!(share(7, [0, 0].into_iter()), vec![0, 7]);
    }
}
