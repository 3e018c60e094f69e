//! The response future of [`Cache`](super::Cache): look the request up, then answer from the
//! cache or call the inner service and store its answer (an [`AdmissionFuture`]).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use bytes::Bytes;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{
    embeddings::{embeddings_answer, embeddings_from_cache, missing_only},
    entry::{self, EntryBody},
    fill::{CacheFillStream, Fill},
    service::{CachedEmbedding, Plan, PlanKind},
    stats::{Counters, WriteOp},
    store::LookupFuture,
};
use crate::{
    admission::{Admission, AdmissionFuture, OnResponse},
    error::LlmError,
    types::{LlmRequest, LlmResponse, ResponseBody},
};

pin_project! {
    /// The response future of [`Cache`](super::Cache): a lookup, then either the cached answer or
    /// the inner call (whose answer is stored off the request path).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S>
    where
        S: Service<LlmRequest>,
    {
        #[pin]
        inner: AdmissionFuture<S, Lookup, Option<Plan>>,
    }
}

impl<S: Service<LlmRequest>> fmt::Debug for ResponseFuture<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S> ResponseFuture<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    /// No lookup: calls `svc` now (then stores the answer when there is a plan).
    pub(super) fn call(svc: &mut S, req: LlmRequest, plan: Option<Plan>) -> Self {
        Self {
            inner: AdmissionFuture::call(svc, req, plan),
        }
    }

    /// Waits for `lookup`, then answers from the cache or calls the instance of `svc` that
    /// reported ready.
    pub(super) fn lookup(svc: &mut S, lookup: LookupFuture, req: LlmRequest, plan: Plan) -> Self
    where
        S: Clone,
    {
        Self {
            inner: AdmissionFuture::decide(
                svc,
                Lookup {
                    lookup,
                    pending: Some((req, plan)),
                },
            ),
        }
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    type Output = Result<LlmResponse, LlmError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

/// The cache's admission decision: the store's answer, read into a hit or the request to send.
pub(super) struct Lookup {
    lookup: LookupFuture,
    pending: Option<(LlmRequest, Plan)>,
}

impl Future for Lookup {
    type Output = Admission<Option<Plan>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let found = ready!(Pin::new(&mut self.lookup).poll(cx));
        let Some((req, mut plan)) = self.pending.take() else {
            return Poll::Ready(Admission::Respond(Err(LlmError::internal(
                "cache future polled after completion",
            ))));
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
        Poll::Ready(match on_lookup(&mut plan, values, req) {
            Found::Hit(resp) => Admission::Respond(Ok(*resp)),
            Found::Call(req) => Admission::Call(req, Some(plan)),
        })
    }
}

impl OnResponse for Plan {
    fn on_response(self, result: Result<LlmResponse, LlmError>) -> Result<LlmResponse, LlmError> {
        match result {
            Ok(resp) => on_answer(&self, resp),
            Err(e) => Err(e),
        }
    }
}

enum Found {
    Hit(Box<LlmResponse>),
    Call(LlmRequest),
}

/// Turns looked-up values (empty on a store error) into a cached answer or the request to send.
fn on_lookup(plan: &mut Plan, values: Vec<Option<Bytes>>, req: LlmRequest) -> Found {
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
                        ResponseBody::Stream(entry::replay_stream(
                            resp,
                            *include_usage,
                            entry::now_ms(&plan.settings.clock),
                        ))
                    } else {
                        ResponseBody::Chat(
                            entry::replay_whole(resp, entry::now_ms(&plan.settings.clock)).into(),
                        )
                    };
                    let mut meta = plan.hit_meta();
                    if let ResponseBody::Chat(c) = &body {
                        meta.usage = c.usage().cloned();
                    }
                    Found::Hit(Box::new(LlmResponse {
                        body,
                        meta: Box::new(meta),
                    }))
                }
                _ => {
                    Counters::add(&counters.misses, 1);
                    Found::Call(req)
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
                return Found::Hit(Box::new(embeddings_from_cache(plan)));
            }
            if none_hit {
                return Found::Call(req);
            }
            Found::Call(missing_only(plan, req))
        }
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
                    let now = entry::now_ms(&plan.settings.clock);
                    let encoded = c.typed().ok().and_then(|c| entry::encode_chat(c, ttl, now));
                    if let Some(bytes) = encoded.filter(|b| b.len() <= max) {
                        plan.shared
                            .write(WriteOp::Set(vec![(key.clone(), bytes, ttl)]));
                    }
                }
                ResponseBody::Stream(stream) => {
                    resp.body = ResponseBody::Stream(Box::pin(CacheFillStream::new(
                        stream,
                        Fill::new(
                            key.clone(),
                            ttl,
                            max,
                            plan.shared.clone(),
                            plan.settings.clock.clone(),
                        ),
                    )));
                }
                _ => {}
            }
            Ok(resp)
        }
        PlanKind::Embeddings { .. } => embeddings_answer(plan, resp),
    }
}
