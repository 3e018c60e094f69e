//! [`CostLayer`] and [`Cost`]: the per-call context, the spend row, and the response future.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{atomic::Ordering, Arc},
    task::{ready, Context, Poll},
    time::Instant,
};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    cut_status, estimate_tokens, stream::CostObserver, Pricing, StreamTally, UsageReport,
    STATUS_CLIENT_CLOSED, STATUS_CUT_AT_SHUTDOWN,
};
use crate::{
    auth::KeyInfo,
    clock::Clock,
    error::LlmError,
    spend::SpendLog,
    store::SpendRow,
    types::extensions::CallId,
    types::{chat::StreamOptions, deployment::Deployment, LlmRequest, LlmResponse, TokenUsage},
};

/// Applies [`Cost`]. See the [module docs](super) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct CostLayer {
    pricing: Arc<Pricing>,
    spend: Option<SpendLog>,
    stream_usage: bool,
    clock: Clock,
}

impl CostLayer {
    /// Prices calls with `pricing`; writes no spend log.
    pub fn new(pricing: Arc<Pricing>) -> Self {
        Self {
            pricing,
            spend: None,
            stream_usage: true,
            clock: Clock::system(),
        }
    }

    /// Stamps spend rows' start and end times on `clock` (default: [`Clock::system`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Whether to ask providers for usage on streams (`stream_options.include_usage`, default
    /// on). Off, a stream is priced only when the client asked for usage itself.
    pub fn stream_usage(mut self, on: bool) -> Self {
        self.stream_usage = on;
        self
    }

    /// Writes one spend-log row per call to `spend`.
    pub fn spend_log(mut self, spend: SpendLog) -> Self {
        self.spend = Some(spend);
        self
    }
}

impl<S> Layer<S> for CostLayer {
    type Service = Cost<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cost {
            inner,
            pricing: self.pricing.clone(),
            spend: self.spend.clone(),
            stream_usage: self.stream_usage,
            clock: self.clock.clone(),
        }
    }
}

/// Prices each call and logs its spend. See the [module docs](super) for an example.
#[derive(Clone, Debug)]
pub struct Cost<S> {
    inner: S,
    pricing: Arc<Pricing>,
    spend: Option<SpendLog>,
    stream_usage: bool,
    clock: Clock,
}

impl<S> Cost<S> {
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

/// What the cost layer remembers about a call until it ends.
pub(super) struct CallCtx {
    pricing: Arc<Pricing>,
    spend: Option<SpendLog>,
    key: Option<Arc<KeyInfo>>,
    call_id: Option<Arc<str>>,
    model_group: String,
    tags: Vec<String>,
    end_user: Option<String>,
    started: Instant,
    started_ms: i64,
    clock: Clock,
    report: Option<UsageReport>,
    tally: Option<StreamTally>,
    /// The prompt's tokens, estimated ([`estimate_prompt_tokens`]), for a call cut short.
    prompt_estimate: u64,
}

impl CallCtx {
    /// The usage of a call cut short: what the upstream reported, else the estimated prompt and
    /// `delivered` bytes of text estimated as tokens (see the [module docs](super)).
    pub(super) fn cut_usage(&self, reported: Option<&TokenUsage>, delivered: usize) -> TokenUsage {
        reported.copied().unwrap_or_else(|| {
            let completion = estimate_tokens(delivered);
            TokenUsage::new(self.prompt_estimate, completion)
        })
    }

    /// Logs the call; returns its cost.
    pub(super) fn finish(
        &self,
        usage: Option<&TokenUsage>,
        meta: &MetaSnapshot,
        status: &str,
    ) -> f64 {
        let cost = if meta.cache_hit {
            0.0
        } else {
            usage.map_or(0.0, |u| {
                let cut = status == STATUS_CLIENT_CLOSED || status == STATUS_CUT_AT_SHUTDOWN;
                if cut && meta.deployment_id.is_none() && meta.deployment.is_none() {
                    // Cut before a deployment answered: the group's dearest price.
                    self.pricing.cost_of_group(&self.model_group, u)
                } else {
                    self.pricing.cost_of(
                        meta.deployment_id.as_deref(),
                        meta.deployment.as_deref(),
                        u,
                    )
                }
            })
        };
        let total = usage.map_or(0, TokenUsage::total);
        if let Some(r) = &self.report {
            r.0.fetch_add(total, Ordering::AcqRel);
        }
        if let Some(t) = &self.tally {
            let _ = t.0.set((usage.copied(), cost));
        }
        if let Some(spend) = &self.spend {
            let to_i64 = |v: Option<u64>| v.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
            // A stated usage's counts; none for a call that failed before any.
            let row = SpendRow {
                request_id: self
                    .call_id
                    .as_deref()
                    .map_or_else(crate::types::extensions::new_call_id, str::to_owned),
                api_key: self
                    .key
                    .as_ref()
                    .map(|k| k.token.to_string())
                    .unwrap_or_default(),
                key_alias: self.key.as_ref().and_then(|k| k.key_alias.clone()),
                team_id: self.key.as_ref().and_then(|k| k.team_id.clone()),
                user_id: self.key.as_ref().and_then(|k| k.user_id.clone()),
                model_group: self.model_group.clone(),
                model: meta.model.clone(),
                model_id: meta.deployment_id.as_deref().map(str::to_owned),
                custom_llm_provider: meta.provider.clone(),
                prompt_tokens: to_i64(usage.map(|u| u.input)),
                completion_tokens: to_i64(usage.map(|u| u.output)),
                total_tokens: i64::try_from(total).unwrap_or(i64::MAX),
                spend: cost,
                start_time: self.started_ms,
                end_time: self.clock.unix_ms(),
                latency_ms: i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX),
                cache_hit: meta.cache_hit,
                status: status.to_owned(),
                request_tags: self.tags.clone(),
                end_user: self.end_user.clone(),
            };
            spend.record(row);
        }
        cost
    }
}

/// The parts of `ResponseMeta` a spend row needs.
#[derive(Clone, Default)]
pub(super) struct MetaSnapshot {
    deployment_id: Option<Arc<str>>,
    /// The deployment that answered (concrete for a wildcard one).
    deployment: Option<Arc<Deployment>>,
    provider: Option<String>,
    pub(super) model: Option<String>,
    cache_hit: bool,
}

fn request_tags(req: &LlmRequest) -> Vec<String> {
    let Some(chat) = req.as_chat() else {
        return Vec::new();
    };
    let from = |v: Option<&serde_json::Value>| -> Vec<String> {
        v.and_then(serde_json::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut tags = from(chat.metadata.as_ref().and_then(|m| m.get("tags")));
    tags.extend(from(
        chat.extra.get_as::<serde_json::Value>("tags").as_ref(),
    ));
    tags
}

impl<S> Service<LlmRequest> for Cost<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: LlmRequest) -> Self::Future {
        if !req.kind().calls_a_model() {
            return ResponseFuture {
                inner: self.inner.call(req),
                ctx: None,
                strip_usage: false,
            };
        }
        // Strip the usage chunk only when this layer asked for it on the client's behalf.
        let mut strip_usage = false;
        let is_stream = req.is_stream();
        if is_stream {
            if let Some(chat) = req.chat_mut() {
                let client_asked = chat
                    .stream_options
                    .as_ref()
                    .and_then(|o| o.include_usage)
                    .unwrap_or(false);
                if !client_asked && self.stream_usage {
                    strip_usage = true;
                    let mut opts = chat
                        .stream_options
                        .clone()
                        .unwrap_or_else(StreamOptions::default);
                    opts.include_usage = Some(true);
                    chat.stream_options = Some(opts);
                }
            }
        }
        let ctx = CallCtx {
            pricing: self.pricing.clone(),
            spend: self.spend.clone(),
            key: req.extensions.get::<Arc<KeyInfo>>().cloned(),
            call_id: req.extensions.get::<CallId>().map(|c| c.0.clone()),
            model_group: req.model().to_owned(),
            tags: request_tags(&req),
            end_user: req.end_user().map(|u| u.chars().take(1024).collect()),
            started: Instant::now(),
            started_ms: self.clock.unix_ms(),
            clock: self.clock.clone(),
            report: req.extensions.get::<UsageReport>().cloned(),
            tally: if is_stream {
                req.extensions.get::<StreamTally>().cloned()
            } else {
                None
            },
            prompt_estimate: req.op.estimate_input_tokens(),
        };
        ResponseFuture {
            inner: self.inner.call(req),
            ctx: Some(ctx),
            strip_usage,
        }
    }
}

pin_project! {
    /// The response future of [`Cost`]. Dropped before its response (the client went away, or
    /// the shutdown grace period ended), it logs the call with its estimated prompt.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        ctx: Option<CallCtx>,
        strip_usage: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(ctx) = this.ctx.take() {
                let usage = ctx.cut_usage(None, 0);
                ctx.finish(Some(&usage), &MetaSnapshot::default(), cut_status());
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("cost::ResponseFuture")
            .finish_non_exhaustive()
    }
}

fn snapshot(meta: &crate::types::ResponseMeta, pricing_model: Option<String>) -> MetaSnapshot {
    MetaSnapshot {
        deployment_id: meta.deployment_id.clone(),
        deployment: meta.deployment.clone(),
        provider: meta.provider.as_deref().map(str::to_owned),
        model: pricing_model,
        cache_hit: meta.cache_hit,
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<LlmResponse, LlmError>>,
{
    type Output = Result<LlmResponse, LlmError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let Some(ctx) = this.ctx.take() else {
            return Poll::Ready(result);
        };
        match result {
            Err(e) => {
                ctx.finish(None, &MetaSnapshot::default(), "failure");
                Poll::Ready(Err(e))
            }
            Ok(mut resp) => {
                let body_model = resp.body.model().map(str::to_owned);
                let snap = snapshot(&resp.meta, body_model);
                if resp.body.is_stream() {
                    let strip_usage = *this.strip_usage;
                    resp = resp.observe_with(|| CostObserver {
                        ctx,
                        meta: snap,
                        usage: None,
                        delivered: 0,
                        strip_usage,
                    });
                } else {
                    // Priced from the chat usage's details (cached tokens); see `Pricing`.
                    let usage = resp.token_usage();
                    let cost = ctx.finish(usage.as_ref(), &snap, "success");
                    resp.meta.cost = Some(cost);
                }
                Poll::Ready(Ok(resp))
            }
        }
    }
}
