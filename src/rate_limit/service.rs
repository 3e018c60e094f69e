//! [`RateLimitLayer`], the [`RateLimit`] service, its [`ResponseFuture`], and the token count of
//! each call.

use std::{
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use tower_layer::Layer;
use tower_service::Service;

use super::{
    policy::{Bucket, Global, KeyInfoLimits, PerKey, PolicyName, Quota, RateLimitPolicy},
    Counters, Decision, LimitReport,
};
use crate::{
    admission::{Admission, AdmissionFuture, OnResponse},
    cost::{estimate_tokens, UsageReport},
    error::LlmError,
    observe::{End, Flow, Observer},
    types::{chat::StreamOptions, ChunkBody, LlmRequest, LlmResponse, StreamEvent},
};

/// Applies [`RateLimit`]. See the [module docs](super) for an example.
#[must_use]
pub struct RateLimitLayer<P = KeyInfoLimits> {
    counters: Counters,
    policy: Arc<P>,
}

impl<P> Clone for RateLimitLayer<P> {
    fn clone(&self) -> Self {
        Self {
            counters: self.counters.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<P> fmt::Debug for RateLimitLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("counters", &self.counters)
            .field("policy", &PolicyName::<P>(PhantomData))
            .finish()
    }
}

impl RateLimitLayer {
    /// The gateway's limits ([`KeyInfoLimits`]: the caller's virtual key, team and user),
    /// counted in `counters`.
    pub fn new(counters: Counters) -> Self {
        Self::with_policy(counters, KeyInfoLimits)
    }
}

impl RateLimitLayer<PerKey> {
    /// `quota` for each caller key ([`PerKey`]), in in-process counters
    /// ([`RateLimitLayer::counters`] changes that).
    pub fn per_key(quota: Quota) -> Self {
        Self::with_policy(Counters::memory(), PerKey(quota))
    }
}

impl RateLimitLayer<Global> {
    /// One `quota` for every call through the layer ([`Global`]), in in-process counters
    /// ([`RateLimitLayer::counters`] changes that).
    pub fn global(quota: Quota) -> Self {
        Self::with_policy(Counters::memory(), Global(quota))
    }
}

impl<P: RateLimitPolicy> RateLimitLayer<P> {
    /// The buckets `policy` yields, counted in `counters`.
    pub fn with_policy(counters: Counters, policy: P) -> Self {
        Self {
            counters,
            policy: Arc::new(policy),
        }
    }
}

impl<P> RateLimitLayer<P> {
    /// Counts in `counters` instead.
    pub fn counters(mut self, counters: Counters) -> Self {
        self.counters = counters;
        self
    }
}

impl<S, P> Layer<S> for RateLimitLayer<P> {
    type Service = RateLimit<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            counters: self.counters.clone(),
            policy: self.policy.clone(),
        }
    }
}

/// Enforces rpm, tpm and parallel limits. See the [module docs](super) for an example.
pub struct RateLimit<S, P = KeyInfoLimits> {
    inner: S,
    counters: Counters,
    policy: Arc<P>,
}

impl<S: Clone, P> Clone for RateLimit<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            counters: self.counters.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<S: fmt::Debug, P> fmt::Debug for RateLimit<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("counters", &self.counters)
            .field("policy", &PolicyName::<P>(PhantomData))
            .finish()
    }
}

impl<S> RateLimit<S> {
    /// Wraps `inner` with the gateway's limits ([`RateLimitLayer::new`]).
    pub fn new(inner: S, counters: Counters) -> Self {
        RateLimitLayer::new(counters).layer(inner)
    }

    /// Same as [`RateLimitLayer::new`].
    pub fn layer(counters: Counters) -> RateLimitLayer {
        RateLimitLayer::new(counters)
    }
}

impl<S, P> RateLimit<S, P> {
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

/// Gives back a call's parallel slot and charges its tokens, once, when dropped.
struct Release {
    counters: Counters,
    buckets: Arc<[Bucket]>,
    /// Tokens this layer counted (see [`Tokens`]).
    tokens: u64,
    /// What an inner layer reported (the cost layer fills it); the larger count is charged.
    report: UsageReport,
    /// Taken from the in-process fallback of the Redis counters.
    local: bool,
    /// Where the key and team numbers go, when a layer outside asked for them.
    limits: Option<LimitReport>,
}

impl Drop for Release {
    fn drop(&mut self) {
        let tokens = self.tokens.max(self.report.total_tokens());
        self.counters.release(&self.buckets, tokens, self.local);
        if let Some(l) = &self.limits {
            l.charge(tokens);
        }
    }
}

/// What the call does once admitted: label the answer with the limits, count its tokens, and
/// release its slot (see [`OnResponse`]).
pub(super) struct Admitted {
    release: Release,
    decision: Decision,
    /// This layer asked for the stream's usage chunk (the client did not): leave it out.
    strip_usage: bool,
    /// The prompt's estimated tokens, charged for a call cut short without reported usage.
    prompt_estimate: u64,
}

impl OnResponse for Admitted {
    fn on_response(self, result: Result<LlmResponse, LlmError>) -> Result<LlmResponse, LlmError> {
        let Self {
            mut release,
            decision,
            strip_usage,
            prompt_estimate,
        } = self;
        match result {
            Err(mut e) => {
                // No answer: nothing used (a failure that streamed is counted by its stream).
                release.tokens = 0;
                decision.headers(e.headers_mut());
                Err(e)
            }
            Ok(mut resp) => {
                decision.headers(&mut resp.meta.headers);
                if resp.body.is_stream() {
                    let tokens = Tokens {
                        release,
                        usage: None,
                        delivered: 0,
                        strip_usage,
                        prompt_estimate,
                    };
                    resp = resp.observe_with(|| tokens);
                } else {
                    release.tokens = resp.token_usage().map_or(0, |u| u.total());
                }
                Ok(resp)
            }
        }
    }
}

/// Counts a stream's tokens: its usage chunk, or, for a stream cut short or failed without one,
/// the estimated prompt plus the text delivered (the cost layer's estimate, so both agree).
struct Tokens {
    release: Release,
    usage: Option<u64>,
    /// Bytes of generated text passed on so far.
    delivered: usize,
    strip_usage: bool,
    prompt_estimate: u64,
}

impl Observer for Tokens {
    fn chunk(&mut self, chunk: &mut ChunkBody) -> Flow {
        if let Some(u) = chunk.usage() {
            self.usage = Some(crate::types::TokenUsage::from(u).total());
            if self.strip_usage {
                if !chunk.has_choices() {
                    return Flow::Skip;
                }
                // Usage on a chunk that also carries choices: remove just the usage.
                match chunk.typed_mut() {
                    Ok(c) => c.usage = None,
                    Err(e) => return Flow::Fail(e),
                }
            }
        }
        self.delivered = self.delivered.saturating_add(chunk.delta_text_bytes());
        Flow::Pass
    }

    fn event(&mut self, event: &mut StreamEvent) -> Flow {
        if let Some(u) = &event.usage {
            self.usage = Some(u.total());
        }
        self.delivered = self.delivered.saturating_add(event.text_bytes);
        Flow::Pass
    }

    fn end(mut self, end: End) {
        self.release.tokens = match (end, self.usage) {
            (_, Some(u)) => u,
            (End::Complete, None) => 0,
            (End::Failed | End::Dropped, None) => {
                self.prompt_estimate + estimate_tokens(self.delivered)
            }
        };
        // `self.release` is dropped here: the slot is given back and the tokens charged.
    }
}

/// Asks a stream for its usage chunk when the caller did not; returns whether it did.
fn ask_for_usage(req: &mut LlmRequest) -> bool {
    if !req.is_stream() {
        return false;
    }
    let Some(chat) = req.chat_mut() else {
        return false;
    };
    let asked = chat
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    if asked {
        return false;
    }
    let mut opts = chat
        .stream_options
        .clone()
        .unwrap_or_else(StreamOptions::default);
    opts.include_usage = Some(true);
    chat.stream_options = Some(opts);
    true
}

impl<S, P> Service<LlmRequest> for RateLimit<S, P>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError> + Clone,
    P: RateLimitPolicy,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = ResponseFuture<S>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: LlmRequest) -> Self::Future {
        let mut buckets = if !req.kind().calls_a_model() {
            Vec::new()
        } else {
            self.policy.buckets(&req)
        };
        buckets.retain(|b| !b.quota().is_unlimited());
        if buckets.is_empty() {
            return ResponseFuture {
                inner: AdmissionFuture::call(&mut self.inner, req, None),
            };
        }
        // tpm counts the usage chunk itself: make sure the stream has one.
        let strip_usage = buckets.iter().any(|b| b.tpm.is_some()) && ask_for_usage(&mut req);
        let report = UsageReport::default();
        req.extensions.insert(report.clone());
        let limits = req.extensions.get::<LimitReport>().cloned();
        let prompt_estimate = req.op.estimate_input_tokens();
        let buckets: Arc<[Bucket]> = buckets.into();
        match &self.counters {
            Counters::Memory(m) => {
                let decision = m.admit(&buckets);
                if let Some(l) = &limits {
                    decision.report(l);
                }
                if let Some(e) = decision.error() {
                    // Nothing was taken.
                    return ResponseFuture {
                        inner: AdmissionFuture::respond(Err(e)),
                    };
                }
                let admitted = Admitted {
                    release: Release {
                        counters: self.counters.clone(),
                        buckets,
                        tokens: prompt_estimate,
                        report,
                        local: false,
                        limits,
                    },
                    decision,
                    strip_usage,
                    prompt_estimate,
                };
                ResponseFuture {
                    inner: AdmissionFuture::call(&mut self.inner, req, Some(admitted)),
                }
            }
            Counters::Redis(r) => {
                let (r, sc) = (r.clone(), buckets.clone());
                let decide = Decide {
                    admit: Box::pin(async move { r.admit(&sc).await }),
                    pending: Some(Pending {
                        req,
                        counters: self.counters.clone(),
                        buckets,
                        report,
                        strip_usage,
                        prompt_estimate,
                        limits,
                    }),
                };
                ResponseFuture {
                    inner: AdmissionFuture::decide(&mut self.inner, decide),
                }
            }
        }
    }
}

/// The Redis admission: the script's answer, then the call or the refusal.
pub(super) struct Decide {
    admit: Pin<Box<dyn Future<Output = Decision> + Send>>,
    pending: Option<Pending>,
}

struct Pending {
    req: LlmRequest,
    counters: Counters,
    buckets: Arc<[Bucket]>,
    report: UsageReport,
    strip_usage: bool,
    prompt_estimate: u64,
    limits: Option<LimitReport>,
}

impl Drop for Decide {
    fn drop(&mut self) {
        // Dropped before the script's answer was read: it may have taken a parallel slot, so
        // give one back (the script clamps a count that would go below zero), charging nothing.
        if let Some(p) = self.pending.take() {
            drop(Release {
                counters: p.counters,
                buckets: p.buckets,
                tokens: 0,
                report: p.report,
                local: false,
                limits: None,
            });
        }
    }
}

impl Future for Decide {
    type Output = Admission<Option<Admitted>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let decision = ready!(self.admit.as_mut().poll(cx));
        let Some(p) = self.pending.take() else {
            return Poll::Ready(Admission::Respond(Err(LlmError::internal(
                "rate-limit future polled after completion",
            ))));
        };
        if let Some(l) = &p.limits {
            decision.report(l);
        }
        if let Some(e) = decision.error() {
            // Nothing was taken: the script (and the in-process fallback) takes all buckets or
            // none.
            return Poll::Ready(Admission::Respond(Err(e)));
        }
        let admitted = Admitted {
            release: Release {
                counters: p.counters,
                buckets: p.buckets,
                tokens: p.prompt_estimate,
                report: p.report,
                local: decision.local,
                limits: p.limits,
            },
            decision,
            strip_usage: p.strip_usage,
            prompt_estimate: p.prompt_estimate,
        };
        Poll::Ready(Admission::Call(p.req, Some(admitted)))
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RateLimit`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S>
    where
        S: Service<LlmRequest>,
    {
        #[pin]
        inner: AdmissionFuture<S, Decide, Option<Admitted>>,
    }
}

impl<S: Service<LlmRequest>> fmt::Debug for ResponseFuture<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("rate_limit::ResponseFuture")
            .finish_non_exhaustive()
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

#[cfg(test)]
mod tests {
    use tower::ServiceExt as _;

    use super::*;
    use crate::error::ErrorKind;

    fn chat() -> LlmRequest {
        LlmRequest::chat(
            serde_json::from_str(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn a_call_dropped_before_its_answer_gives_its_slot_back_and_pays_its_prompt() {
        // "hi" is estimated at ceil(2 / 4) + 3 = 4 tokens.
        let layer = RateLimitLayer::global(Quota::default().max_parallel(1).tpm(4));
        let mut svc = layer.layer(tower::service_fn(|_r: LlmRequest| {
            std::future::pending::<Result<LlmResponse, LlmError>>()
        }));
        let held = svc.ready().await.unwrap().call(chat());
        let err = svc.ready().await.unwrap().call(chat()).await.unwrap_err();
        assert!(
            err.to_string().contains("parallel requests limit of 1"),
            "{err}"
        );
        drop(held);
        let err = svc.ready().await.unwrap().call(chat()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimit);
        assert!(err.to_string().contains("tokens limit of 4"), "{err}");
    }

    #[tokio::test]
    async fn a_failed_call_pays_nothing_and_keeps_the_limit_headers() {
        let layer = RateLimitLayer::global(Quota::rpm(10).tpm(1));
        let svc = layer.layer(tower::service_fn(|_r: LlmRequest| async {
            Err::<LlmResponse, _>(LlmError::new(ErrorKind::ServiceUnavailable, "down"))
        }));
        for _ in 0..3 {
            let err = svc.clone().oneshot(chat()).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ServiceUnavailable);
            assert_eq!(err.headers()["x-ratelimit-limit-tokens"], "1");
            assert_eq!(err.headers()["x-ratelimit-remaining-tokens"], "1");
        }
    }

    #[tokio::test]
    async fn the_key_and_team_numbers_reach_a_limit_report_with_the_tokens_charged() {
        let layer = RateLimitLayer::with_policy(Counters::memory(), |_: &LlmRequest| {
            vec![
                Bucket::new("key", "k", Quota::rpm(5).tpm(100)),
                Bucket::new("team", "t", Quota::rpm(3)),
                Bucket::new("user", "u", Quota::rpm(1_000)),
            ]
        });
        let svc = layer.layer(tower::service_fn(|_r: LlmRequest| async {
            LlmResponse::chat_wire(bytes::Bytes::from_static(
                br#"{"id":"x","object":"chat.completion","model":"m","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30}}"#,
            ))
        }));
        for (requests_left, tokens_left) in [(4, 70), (3, 40)] {
            let report = LimitReport::default();
            let mut req = chat();
            req.extensions.insert(report.clone());
            let resp = svc.clone().oneshot(req).await.unwrap();
            let key = report.key().unwrap();
            assert_eq!(
                (
                    key.rpm,
                    key.remaining_requests,
                    key.tpm,
                    key.remaining_tokens
                ),
                (Some(5), Some(requests_left), Some(100), Some(tokens_left))
            );
            let team = report.team().unwrap();
            assert_eq!(
                (team.rpm, team.remaining_requests, team.tpm),
                (Some(3), Some(requests_left - 2), None)
            );
            // The headers are the tightest bucket's (the team's rpm), not the report's.
            assert_eq!(
                resp.meta.headers["x-ratelimit-remaining-requests"],
                (requests_left - 2).to_string().as_str()
            );
        }
        // The team's third call was its last: the fourth is refused, and the report says 0.
        let _ = svc.clone().oneshot(chat()).await.unwrap();
        let report = LimitReport::default();
        let mut req = chat();
        req.extensions.insert(report.clone());
        let err = svc.clone().oneshot(req).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimit);
        assert_eq!(report.team().unwrap().remaining_requests, Some(0));
        // Without a report asked for, nothing is written anywhere else.
        assert!(svc.oneshot(chat()).await.is_err());
    }

    #[tokio::test]
    async fn model_listings_and_unlimited_buckets_are_not_counted() {
        let layer = RateLimitLayer::with_policy(Counters::memory(), |_: &LlmRequest| {
            vec![Bucket::new("nobody", "x", Quota::default())]
        });
        let svc = layer.layer(tower::service_fn(|_r: LlmRequest| async {
            Ok::<_, LlmError>(LlmResponse::chat(Default::default()))
        }));
        let resp = svc.clone().oneshot(chat()).await.unwrap();
        assert!(!resp.meta.headers.contains_key("x-ratelimit-limit-requests"));
        let one = RateLimitLayer::global(Quota::rpm(1)).layer(svc);
        for _ in 0..3 {
            assert!(one.clone().oneshot(LlmRequest::list_models()).await.is_ok());
        }
        assert!(one.clone().oneshot(chat()).await.is_ok());
        assert!(one.oneshot(chat()).await.is_err());
    }
}
