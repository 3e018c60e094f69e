//! LiteLLM's comma-separated fan-out on chat completions: `"model": "a,b"`.
//!
//! As LiteLLM's proxy routes it (`route_llm_request.py`, `Router.abatch_completion` and
//! `abatch_completion_fastest_response`):
//!
//! - without `fastest_response`, the request goes to every model group named, at once, and the
//!   answer is a JSON **list** with one chat completion per model, in the order named
//!   (`asyncio.gather`). A model whose call failed holds its error object
//!   (`{"error": {...}}`, llmgate's choice: LiteLLM puts the exception object in the list);
//!   when every call failed, the answer is the first one's error. A stream asks for one answer,
//!   so `stream: true` needs `fastest_response`;
//! - with `"fastest_response": true`, the first successful answer wins (a stream: the first whose
//!   stream started), the other calls are dropped (cancelled), and the answer carries
//!   `x-litellm-fastest_response_batch_completion: True`; when every call failed, a 500 `All
//!   tasks failed` naming each model's error.
//!
//! [`FanOutLayer`] sits right under the key check, which checks the whole list first (every name
//! must be allowed, as LiteLLM's `can_key_call_model` splits on commas: one denied name denies the
//! request, and nothing is called). Below it, each model's call is a whole call through the
//! rest of the stack: rate limits, budgets, retries, fallbacks, cost and a spend row apply per
//! call. Each call's id is the request's call
//! id with `-{n}` (n counting the models from 0), so that each gets its own spend row; the
//! answer carries the request's call id.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{BufMut as _, Bytes, BytesMut};
use futures_util::{future::Either, stream::FuturesUnordered, StreamExt as _};
use http::HeaderValue;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    error::{ErrorKind, LlmError},
    types::{extensions::CallId, JsonBody, LlmRequest, LlmResponse, Operation, ResponseBody},
};

/// Most model groups one request may fan out to.
pub const MAX_MODELS: usize = 16;

/// The header a fastest-response answer carries.
pub const FASTEST_HEADER: &str = "x-litellm-fastest_response_batch_completion";

/// The model groups of a chat request naming several (`"a, b"`), trimmed, or `None` for any
/// other request.
fn models(req: &LlmRequest) -> Option<Vec<String>> {
    let Operation::Chat(chat) = &req.op else {
        return None;
    };
    if !chat.model.contains(',') {
        return None;
    }
    Some(chat.model.split(',').map(|m| m.trim().to_owned()).collect())
}

/// Whether the request asked for the fastest answer (`fastest_response: true`, or LiteLLM's
/// string `"true"`).
fn fastest(req: &LlmRequest) -> bool {
    req.op
        .extra()
        .and_then(|e| e.get("fastest_response"))
        .is_some_and(|raw| matches!(raw.get().trim(), "true" | "\"true\"" | "\"True\""))
}

/// Serves `"model": "a,b"` on chat completions as LiteLLM does (see the [module docs](self));
/// any other request passes through untouched.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct FanOutLayer;

impl FanOutLayer {
    /// The layer.
    pub const fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for FanOutLayer {
    type Service = FanOut<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FanOut { inner }
    }
}

/// The service of [`FanOutLayer`].
#[derive(Clone, Debug)]
pub struct FanOut<S> {
    inner: S,
}

/// A fan-out's future.
type FanOutFuture = Pin<Box<dyn Future<Output = Result<LlmResponse, LlmError>> + Send>>;

impl<S> Service<LlmRequest> for FanOut<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = Either<S::Future, FanOutFuture>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: LlmRequest) -> Self::Future {
        match models(&req) {
            None => Either::Left(self.inner.call(req)),
            Some(models) => {
                // The ready service answers this call; a clone serves the fan-out's.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Either::Right(Box::pin(async move { call(&mut inner, req, models).await }))
            }
        }
    }
}

/// Serves a fan-out request: one call per model group through `inner`.
async fn call<S>(
    inner: &mut S,
    req: LlmRequest,
    models: Vec<String>,
) -> Result<LlmResponse, LlmError>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    if models.iter().any(String::is_empty) {
        return Err(
            LlmError::bad_request("`model` names an empty model group between its commas")
                .with_param("model"),
        );
    }
    if models.len() > MAX_MODELS {
        return Err(LlmError::bad_request(format!(
            "`model` names {} model groups; a fan-out takes at most {MAX_MODELS}",
            models.len()
        ))
        .with_param("model"));
    }
    let fastest = fastest(&req);
    if req.is_stream() && !fastest {
        return Err(LlmError::bad_request(
            "a stream to several models needs `fastest_response: true` (one answer streams)",
        )
        .with_param("stream"));
    }
    let parent = req.extensions.get::<CallId>().map(|c| Arc::clone(&c.0));
    let mut calls = Vec::with_capacity(models.len());
    for (n, model) in models.iter().enumerate() {
        let mut one = req.clone();
        one.set_model(model);
        if let Some(parent) = &parent {
            one.extensions
                .insert(CallId(Arc::from(format!("{parent}-{n}"))));
        }
        std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
        calls.push(inner.call(one));
    }
    drop(req);
    if fastest {
        first_success(calls, &models).await
    } else {
        all_answers(calls).await
    }
}

/// The first successful answer; the other calls are dropped.
async fn first_success<F>(calls: Vec<F>, models: &[String]) -> Result<LlmResponse, LlmError>
where
    F: std::future::Future<Output = Result<LlmResponse, LlmError>>,
{
    let mut pending: FuturesUnordered<_> = calls
        .into_iter()
        .enumerate()
        .map(|(n, f)| async move { (n, f.await) })
        .collect();
    let mut errors: Vec<(usize, LlmError)> = Vec::new();
    while let Some((n, result)) = pending.next().await {
        match result {
            Ok(mut resp) => {
                resp.meta
                    .headers
                    .insert(FASTEST_HEADER, HeaderValue::from_static("True"));
                return Ok(resp);
            }
            Err(e) => errors.push((n, e)),
        }
    }
    errors.sort_by_key(|(n, _)| *n);
    let detail: Vec<String> = errors
        .iter()
        .map(|(n, e)| {
            format!(
                "{}: {}",
                models.get(*n).map_or("?", String::as_str),
                e.message()
            )
        })
        .collect();
    Err(LlmError::new(
        ErrorKind::InternalServer,
        format!("All tasks failed ({})", detail.join("; ")),
    ))
}

/// Every answer, in the order the models were named, as one JSON list.
async fn all_answers<F>(calls: Vec<F>) -> Result<LlmResponse, LlmError>
where
    F: std::future::Future<Output = Result<LlmResponse, LlmError>>,
{
    let results = futures_util::future::join_all(calls).await;
    if results.iter().all(Result::is_err) {
        if let Some(Err(first)) = results.into_iter().next() {
            return Err(first);
        }
        return Err(LlmError::internal("a fan-out without models"));
    }
    let mut buf = BytesMut::with_capacity(1024);
    buf.put_u8(b'[');
    for (n, result) in results.into_iter().enumerate() {
        if n > 0 {
            buf.put_u8(b',');
        }
        match result.and_then(answer_bytes) {
            Ok(bytes) => buf.put_slice(&bytes),
            Err(e) => buf.put_slice(&e.to_json()),
        }
    }
    buf.put_u8(b']');
    // Each call was counted (usage, cost, spend) by the stack already: the list states nothing.
    Ok(LlmResponse::json(JsonBody::new(buf.freeze())))
}

/// A complete chat answer's bytes.
fn answer_bytes(resp: LlmResponse) -> Result<Bytes, LlmError> {
    match resp.body {
        ResponseBody::Chat(c) => c.to_bytes(),
        ResponseBody::Json(j) => Ok(j.bytes),
        _ => Err(LlmError::internal(
            "a fan-out call answered something other than a chat completion",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(v: &serde_json::Value) -> LlmRequest {
        let bytes = Bytes::from(v.to_string());
        LlmRequest::chat_from_bytes(serde_json::from_slice(&bytes).unwrap(), bytes)
    }

    #[test]
    fn splits_models_and_reads_fastest() {
        let r = chat(&serde_json::json!({"model": "a, b ,c", "messages": []}));
        assert_eq!(models(&r).unwrap(), vec!["a", "b", "c"]);
        assert!(!fastest(&r));
        let r = chat(&serde_json::json!({"model": "a", "messages": []}));
        assert!(models(&r).is_none());
        let r =
            chat(&serde_json::json!({"model": "a,b", "messages": [], "fastest_response": true}));
        assert!(fastest(&r));
        let r =
            chat(&serde_json::json!({"model": "a,b", "messages": [], "fastest_response": "true"}));
        assert!(fastest(&r));
        let r =
            chat(&serde_json::json!({"model": "a,b", "messages": [], "fastest_response": false}));
        assert!(!fastest(&r));
    }
}
