//! Retries with LiteLLM's semantics, on tower's retry machinery ([`tower::retry::Policy`]).
//!
//! [`RetryLayer`] sits between the [fallback](crate::fallback) layer and the
//! [router](crate::router), so every model group (the original and each fallback) gets its own
//! retries, and every retry goes through the router again, which picks another deployment.
//!
//! - **What is retried**: errors worth another try: 408, 409, 429, 5xx and connection errors
//!   (`Timeout`, `RateLimit`, `InternalServer`, `ServiceUnavailable`, `ApiConnection`), and
//!   authentication errors while another deployment of the group is healthy. Never 400, 404,
//!   context-window or content-policy errors, and never a refusal of the router itself (every
//!   deployment cooling down or at its limit: there is nothing to call).
//! - **How many**: the failing deployment's `max_retries`, else the layer's (`num_retries`, default
//!   2 as LiteLLM); a `retry_policy` entry for the error's class (`RateLimitErrorRetries: 4`, …)
//!   overrides it for that class. The request body's `num_retries` (or `max_retries`) can lower
//!   that number, never raise it: a caller cannot multiply upstream calls past the configuration.
//! - **When**: at once when another healthy deployment of the group is left; otherwise after the
//!   provider's `Retry-After` (when it is at most 60 s), else exponential backoff with jitter
//!   (0.5 s · 2ⁿ, at most 8 s, minus up to 25 %); never sooner than `retry_after`. When the failure
//!   left every deployment of the group cooling for longer than that wait, the error is returned
//!   at once (a retry would only meet the router's "no deployments available").
//! - **Streams**: a stream is only returned once its first chunk arrived (the
//!   [health](crate::health) layer waits for it), so an error before the first byte is retried and
//!   an answer that started streaming is never retried.
//!
//! The number of retries spent is set in [`ResponseMeta::attempted_retries`] (the
//! `x-litellm-attempted-retries` header), and on an error that ends the retries as the same header.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use llmgate::{retry::RetryLayer, router::Router};
//! use tower::ServiceBuilder;
//!
//! let stack = ServiceBuilder::new()
//!     .layer(RetryLayer::new(3))
//!     .service(Router::builder().build());
//! # let _ = stack;
//! ```
//!
//! Customised: retry rate limits more often, never time-outs, and wait at least a second.
//!
//! ```
//! use std::time::Duration;
//! use llmgate::{retry::RetryLayer, ErrorKind};
//! let layer = RetryLayer::new(2)
//!     .retries_for(ErrorKind::RateLimit, 5)
//!     .retries_for(ErrorKind::Timeout, 0)
//!     .min_wait(Duration::from_secs(1));
//! # let _ = layer;
//! ```
//!
//! Extensions written: [`AttemptLog`] (read back after each attempt). Errors produced: none (the
//! last error is returned).
//!
//! [`ResponseMeta::attempted_retries`]: crate::types::ResponseMeta::attempted_retries

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::future::{self, Either, Ready};
use tokio::time::Sleep;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    classify::{self, Classify as _, LiteLlmClassifier, PolicyClass, SharedClassifier},
    error::{ErrorKind, LlmError},
    types::{controls::ModelMissing, extensions::AttemptLog, LlmRequest, LlmResponse},
};

/// LiteLLM's default number of retries (the OpenAI SDK's `DEFAULT_MAX_RETRIES`): 2.
pub const DEFAULT_NUM_RETRIES: u32 = 2;
/// First backoff step: 0.5 s.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest backoff step: 8 s.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// The longest `Retry-After` honoured; longer waits fall back to backoff: 60 s.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
struct Config {
    classifier: SharedClassifier,
    num_retries: u32,
    per_class: [Option<u32>; 6],
    min_wait: Duration,
}

/// Adds [`Retry`]. See the [module docs](self) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct RetryLayer {
    config: Arc<Config>,
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new(DEFAULT_NUM_RETRIES)
    }
}

impl RetryLayer {
    /// Retries up to `num_retries` times.
    pub fn new(num_retries: u32) -> Self {
        Self {
            config: Arc::new(Config {
                classifier: Arc::new(LiteLlmClassifier),
                num_retries,
                per_class: [None; 6],
                min_wait: Duration::ZERO,
            }),
        }
    }

    /// Which errors are worth a retry, and their policy class (default: [`LiteLlmClassifier`]).
    pub fn classifier(mut self, classifier: SharedClassifier) -> Self {
        Arc::make_mut(&mut self.config).classifier = classifier;
        self
    }

    /// Retries for one error class (`retry_policy`).
    pub fn retries_for(mut self, kind: ErrorKind, n: u32) -> Self {
        if let Some(c) = PolicyClass::of(kind) {
            Arc::make_mut(&mut self.config).per_class[c as usize] = Some(n);
        }
        self
    }

    /// Retries for one policy class.
    pub fn retries_for_class(mut self, class: PolicyClass, n: u32) -> Self {
        Arc::make_mut(&mut self.config).per_class[class as usize] = Some(n);
        self
    }

    /// The shortest wait before a retry that cannot go to another deployment (`retry_after`).
    pub fn min_wait(mut self, d: Duration) -> Self {
        Arc::make_mut(&mut self.config).min_wait = d;
        self
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner: tower::retry::Retry::new(
                RetryPolicy {
                    config: self.config.clone(),
                    attempts: 0,
                },
                RequireModel(inner),
            ),
        }
    }
}

/// The per-request retry policy (a [`tower::retry::Policy`]).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    config: Arc<Config>,
    attempts: u32,
}

/// Whether an error is worth another attempt by the default classifier ([`LiteLlmClassifier`]):
/// 408, 409, 429, 5xx, connection.
#[must_use]
pub fn is_retryable(err: &LlmError) -> bool {
    LiteLlmClassifier.classify(err).retry == classify::Retry::Yes
}

/// The backoff before retry `n` (0-based): `0.5 s · 2ⁿ`, at most 8 s, minus up to 25 % jitter.
#[must_use]
pub fn backoff(n: u32) -> Duration {
    let base = INITIAL_BACKOFF
        .saturating_mul(1u32 << n.min(16))
        .min(MAX_BACKOFF);
    base.mul_f64(0.25f64.mul_add(-fastrand::f64(), 1.0))
}

/// The retries the caller asked for (`num_retries`, else `max_retries`).
fn request_retries(req: &LlmRequest) -> Option<u32> {
    req.controls().num_retries
}

impl RetryPolicy {
    fn limit(&self, req: &LlmRequest, class: Option<PolicyClass>, max_retries: Option<u32>) -> u32 {
        let class = class.and_then(|c| self.config.per_class[c.index()]);
        // The operator's number caps the caller's: `num_retries: 30` in a body cannot make 31
        // upstream calls against a configured 2.
        let configured = class.or(max_retries).unwrap_or(self.config.num_retries);
        request_retries(req).map_or(configured, |asked| asked.min(configured))
    }

    fn wait(&self, err: &LlmError, others: bool) -> Duration {
        if others {
            return Duration::ZERO;
        }
        let wait = match err.retry_after() {
            Some(w) if !w.is_zero() && w <= MAX_RETRY_AFTER => w,
            _ => backoff(self.attempts.saturating_sub(1)),
        };
        wait.max(self.config.min_wait)
    }
}

/// Records the retries on the error that ends them, and whether the call raised it (not the
/// router refusing: no deployment available, or an unknown model).
fn stamp_error(err: &mut LlmError, attempts: u32, limit: u32, refused: bool) {
    let raised_by_call = err.provider().is_some()
        || (!refused
            && !matches!(
                err.code(),
                Some("no_deployments_available" | "model_not_found")
            ));
    let meta = err.meta_mut();
    meta.attempted_retries = Some(attempts);
    meta.max_retries = Some(limit);
    meta.raised_by_call = raised_by_call;
}

impl tower::retry::Policy<LlmRequest, LlmResponse, LlmError> for RetryPolicy {
    type Future = Either<Ready<()>, Sleep>;

    fn retry(
        &mut self,
        req: &mut LlmRequest,
        result: &mut Result<LlmResponse, LlmError>,
    ) -> Option<Self::Future> {
        let err = match result {
            Ok(resp) => {
                resp.meta.attempted_retries = self.attempts;
                // LiteLLM's `x-litellm-max-retries`: the retries this call was allowed.
                resp.meta.headers.insert(
                    crate::server::headers::X_LITELLM_MAX_RETRIES,
                    crate::server::headers::count_header(self.limit(req, None, None)),
                );
                return None;
            }
            Err(e) => e,
        };
        let last = req
            .extensions
            .get::<AttemptLog>()
            .map(AttemptLog::last_attempt)
            .unwrap_or_default();
        let class = self.config.classifier.classify(err);
        let worth = !last.refused
            && req.kind().is_retryable()
            && match class.retry {
                classify::Retry::Yes => true,
                classify::Retry::Elsewhere => last.others_available,
                _ => false,
            };
        let limit = self.limit(req, class.policy, last.max_retries);
        if !worth || self.attempts >= limit {
            stamp_error(err, self.attempts, limit, last.refused);
            return None;
        }
        self.attempts += 1;
        let wait = self.wait(err, last.others_available);
        if last.available_in.is_some_and(|soonest| soonest > wait) {
            // Every deployment of the group cooled down and none is back by then: the router
            // would refuse, so the client gets this (more telling) error now.
            self.attempts -= 1;
            stamp_error(err, self.attempts, limit, last.refused);
            return None;
        }
        tracing::debug!(
            attempt = self.attempts,
            kind = err.kind().as_str(),
            wait_ms = wait.as_millis() as u64,
            "retrying"
        );
        Some(if wait.is_zero() {
            Either::Left(future::ready(()))
        } else {
            Either::Right(tokio::time::sleep(wait))
        })
    }

    fn clone_request(&mut self, req: &LlmRequest) -> Option<LlmRequest> {
        Some(req.clone())
    }
}

/// Retries a model group's failed calls. See the [module docs](self) for an example.
#[derive(Clone, Debug)]
pub struct Retry<S> {
    inner: tower::retry::Retry<RetryPolicy, RequireModel<S>>,
}

/// The service the retry machinery calls: `S`, except for a request the edge marked as naming
/// no model ([`ModelMissing`]), which is refused here with the router's unknown-model error
/// (404 `model_not_found`, no provider), so that no group serves it (a `*` wildcard would
/// capture an empty name) while the layers above still see a failed call.
#[derive(Clone, Debug)]
pub struct RequireModel<S>(S);

impl<S> Service<LlmRequest> for RequireModel<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = Either<Ready<Result<LlmResponse, LlmError>>, S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        if req.extensions.get::<ModelMissing>().is_some() {
            return Either::Left(future::ready(Err(LlmError::new(
                ErrorKind::NotFound,
                "The request names no model",
            )
            .with_param("model")
            .with_code("model_not_found"))));
        }
        Either::Right(self.0.call(req))
    }
}

impl<S> Retry<S> {
    /// Wraps `inner` with up to `num_retries` retries.
    pub fn new(inner: S, num_retries: u32) -> Self {
        RetryLayer::new(num_retries).layer(inner)
    }

    /// A layer.
    pub fn layer(num_retries: u32) -> RetryLayer {
        RetryLayer::new(num_retries)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner.get_ref().0
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner.get_mut().0
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner.into_inner().0
    }
}

/// The response future of [`Retry`].
pub type ResponseFuture<S> =
    tower::retry::future::ResponseFuture<RetryPolicy, RequireModel<S>, LlmRequest>;

impl<S> Service<LlmRequest> for Retry<S>
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

    fn call(&mut self, mut req: LlmRequest) -> Self::Future {
        // A fresh log per model group: the fallback layer calls again with another group.
        req.extensions.insert(AttemptLog::default());
        self.inner.call(req)
    }
}

impl fmt::Display for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "retry up to {} times", self.config.num_retries)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tower::{ServiceBuilder, ServiceExt as _};

    use super::*;
    use crate::types::chat::ChatRequest;

    fn counting(
        kind: ErrorKind,
        hits: Arc<AtomicU32>,
    ) -> impl Service<
        LlmRequest,
        Response = LlmResponse,
        Error = LlmError,
        Future = Ready<Result<LlmResponse, LlmError>>,
    > + Clone {
        tower::service_fn(move |_r: LlmRequest| {
            hits.fetch_add(1, Ordering::SeqCst);
            future::ready(Err(LlmError::new(kind, "no")))
        })
    }

    #[tokio::test(start_paused = true)]
    async fn retry_counts_per_kind() {
        for (kind, expected) in [
            (ErrorKind::InternalServer, 3),
            (ErrorKind::RateLimit, 6),
            (ErrorKind::BadRequest, 1),
            (ErrorKind::NotFound, 1),
            (ErrorKind::ContextWindowExceeded, 1),
            (ErrorKind::Timeout, 1),
        ] {
            let hits = Arc::new(AtomicU32::new(0));
            let svc = ServiceBuilder::new()
                .layer(
                    RetryLayer::new(2)
                        .retries_for(ErrorKind::RateLimit, 5)
                        .retries_for(ErrorKind::Timeout, 0),
                )
                .service(counting(kind, hits.clone()));
            let err = svc
                .oneshot(LlmRequest::chat(ChatRequest::default()))
                .await
                .unwrap_err();
            assert_eq!(hits.load(Ordering::SeqCst), expected, "{kind:?}");
            assert_eq!(err.meta().attempted_retries, Some(expected - 1));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn body_num_retries_is_capped_by_the_layer() {
        // Asking for fewer retries than configured is honoured...
        let hits = Arc::new(AtomicU32::new(0));
        let svc = ServiceBuilder::new()
            .layer(RetryLayer::new(5))
            .service(counting(ErrorKind::ServiceUnavailable, hits.clone()));
        let mut body = ChatRequest::default();
        body.extra.insert("num_retries", &1).unwrap();
        let _ = svc.oneshot(LlmRequest::chat(body)).await;
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        // ...asking for more is held to the configured number.
        let hits = Arc::new(AtomicU32::new(0));
        let svc = ServiceBuilder::new()
            .layer(RetryLayer::new(2))
            .service(counting(ErrorKind::ServiceUnavailable, hits.clone()));
        let mut body = ChatRequest::default();
        body.extra.insert("num_retries", &30).unwrap();
        let _ = svc.oneshot(LlmRequest::chat(body)).await;
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows() {
        let hits = Arc::new(AtomicU32::new(0));
        let svc = ServiceBuilder::new()
            .layer(RetryLayer::new(3))
            .service(counting(ErrorKind::ServiceUnavailable, hits.clone()));
        let body = ChatRequest::default();
        let started = tokio::time::Instant::now();
        let _ = svc.oneshot(LlmRequest::chat(body)).await;
        assert_eq!(hits.load(Ordering::SeqCst), 4);
        // 0.5 + 1 + 2 s, each minus up to 25 %.
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(2_625) && waited <= Duration::from_millis(3_500),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_and_min_wait() {
        let svc = ServiceBuilder::new()
            .layer(RetryLayer::new(1).min_wait(Duration::from_secs(2)))
            .service(tower::service_fn(|_r: LlmRequest| {
                future::ready(Err::<LlmResponse, _>(
                    LlmError::new(ErrorKind::RateLimit, "slow")
                        .with_retry_after(Duration::from_secs(7)),
                ))
            }));
        let started = tokio::time::Instant::now();
        let _ = svc.oneshot(LlmRequest::chat(ChatRequest::default())).await;
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test]
    async fn a_request_naming_no_model_never_reaches_the_router() {
        let hits = Arc::new(AtomicU32::new(0));
        let svc = ServiceBuilder::new()
            .layer(RetryLayer::new(2))
            .service(counting(ErrorKind::InternalServer, hits.clone()));
        let mut req = LlmRequest::chat(ChatRequest::default());
        req.extensions.insert(ModelMissing(""));
        let err = svc.oneshot(req).await.unwrap_err();
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.code(), Some("model_not_found"));
        assert_eq!(err.meta().attempted_retries, Some(0));
        assert!(!err.meta().raised_by_call, "the gateway's own refusal");
    }

    #[tokio::test(start_paused = true)]
    async fn an_upstream_error_is_marked_as_raised_by_the_call() {
        let hits = Arc::new(AtomicU32::new(0));
        let svc = ServiceBuilder::new()
            .layer(RetryLayer::new(1))
            .service(counting(ErrorKind::RateLimit, hits.clone()));
        let err = svc
            .oneshot(LlmRequest::chat(ChatRequest::default()))
            .await
            .unwrap_err();
        assert!(err.meta().raised_by_call);
        assert_eq!(err.meta().max_retries, Some(1));
    }

    #[test]
    fn backoff_bounds() {
        for n in 0..10 {
            let b = backoff(n);
            let base = INITIAL_BACKOFF.saturating_mul(1 << n).min(MAX_BACKOFF);
            assert!(b <= base && b >= base.mul_f64(0.75), "{n}: {b:?}");
        }
    }
}
