//! Fallbacks: when a model group fails (after its retries), re-issue the request to other groups.
//!
//! [`FallbackLayer`] sits outside the [retry](crate::retry) layer, so each fallback group gets its
//! own retries. Which groups, by the failing group's error (LiteLLM's order):
//!
//! 1. [`ErrorKind::ContextWindowExceeded`]: `context_window_fallbacks` for the group;
//! 2. [`ErrorKind::ContentPolicyViolation`]: `content_policy_fallbacks` for the group;
//! 3. otherwise, and when 1–2 name nothing: `fallbacks` for the group, else `default_fallbacks`
//!    (a `"*"` entry in `fallbacks` works the same).
//!
//! A request can bring its own lists in the body (`fallbacks`, `context_window_fallbacks`,
//! `content_policy_fallbacks`: either a list of model names, or LiteLLM's `[{"group": [...]}]`),
//! which replace the configured ones, and switch fallbacks off with `"disable_fallbacks": true`.
//! Plain 400 errors (a malformed request) and budget errors never fall back.
//!
//! Model access: with a [`GroupAccess`] ([`FallbackLayer::access`]; the gateway gives it
//! [`ModelAccess`](crate::auth::ModelAccess)), every fallback group is checked before it is tried,
//! whichever list named it; a group the caller may not use is skipped, with an info log naming the
//! group (never the key). The groups a request body names are refused earlier, by
//! [auth](crate::auth), with 401 ([`requested_groups`]).
//!
//! Test-only params ([`MOCK_TESTING_PARAMS`], LiteLLM's): refused with 400 naming them unless
//! [`FallbackLayer::allow_mock_testing`] (`dangerously_allow_mock_testing_request_params`). When
//! allowed, `mock_testing_fallbacks` / `mock_testing_context_fallbacks` /
//! `mock_testing_content_policy_fallbacks` / `mock_testing_rate_limit_error` / `mock_timeout` make
//! the requested group fail with a 500 / context-window / content-policy / 429 / 408 error
//! without calling it (so no deployment counts the failure; `mock_timeout` answers at once rather
//! than after the timeout), and its fallbacks are then called for real, without those params.
//! `mock_delay` (seconds, at most 600) waits before the first call.
//!
//! A fallback group that fails may fall back further, by its own lists; every group is tried at
//! most once per request (the loop guard), and at most `max_fallbacks` fallbacks (default 5) are
//! tried; a request body's `max_fallbacks` can lower that number, never raise it. When all fail, the client gets the original group's error. The fallbacks spent are in
//! [`ResponseMeta::attempted_fallbacks`] (`x-litellm-attempted-fallbacks`).
//!
//! Streams: a stream that fails before its first chunk is an error here and falls back; once a
//! chunk has reached the client, a later failure ends the stream with an error event (an
//! `error` object in the last `data:` frame) and is not retried or re-routed.
//!
//! # Example
//!
//! ```
//! use llmgate::{fallback::FallbackLayer, router::Router};
//! use tower::ServiceBuilder;
//!
//! let layer = FallbackLayer::new()
//!     .fallbacks("gpt-4o", ["claude-sonnet", "gemini-pro"])
//!     .context_window_fallbacks("gpt-4o", ["gpt-4o-128k"])
//!     .default_fallbacks(["mock"])
//!     .max_fallbacks(3);
//! let stack = ServiceBuilder::new().layer(layer).service(Router::builder().build());
//! # let _ = stack;
//! ```
//!
//! Per request:
//!
//! ```json
//! {"model": "gpt-4o", "messages": [...], "fallbacks": ["claude-sonnet"], "disable_fallbacks": false}
//! ```
//!
//! Extensions read: through [`GroupAccess`] only (the gateway's reads `Arc<KeyInfo>`). Errors
//! produced: 400 for test-only params that are not allowed, and the errors they ask for;
//! otherwise none (the original error is returned).
//!
//! [`ResponseMeta::attempted_fallbacks`]: crate::types::ResponseMeta::attempted_fallbacks

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    classify::{Classify as _, LiteLlmClassifier, SharedClassifier},
    error::{ErrorKind, LlmError},
    types::controls::{FallbackList, GatewayControls, RequestFallbacks},
    types::{LlmRequest, LlmResponse, Operation},
};

/// LiteLLM's default `max_fallbacks`: 5.
pub const DEFAULT_MAX_FALLBACKS: u32 = 5;

/// Whether the caller of a request may use a model group: asked for every fallback group before
/// it is tried. The [auth](crate::auth) module implements it ([`ModelAccess`]) from the caller's
/// key, team and user `models`; this layer knows nothing of keys.
///
/// [`ModelAccess`]: crate::auth::ModelAccess
pub trait GroupAccess: fmt::Debug + Send + Sync + 'static {
    /// Whether the caller of `req` may use model group `group`.
    fn allows(&self, req: &LlmRequest, group: &str) -> bool;
}

#[derive(Clone, Debug, Default)]
struct Config {
    general: HashMap<String, Vec<String>>,
    context_window: HashMap<String, Vec<String>>,
    content_policy: HashMap<String, Vec<String>>,
    default: Vec<String>,
    max_fallbacks: Option<u32>,
    access: Option<Arc<dyn GroupAccess>>,
    allow_mock_testing: bool,
    /// `None`: [`LiteLlmClassifier`].
    classifier: Option<SharedClassifier>,
}

impl Config {
    /// Whether a request for `group` with `over` has any fallback to go to: when it has none, the
    /// layer passes it through without a plan.
    fn may_fall_back(&self, over: &Overrides, group: &str) -> bool {
        if over.disabled || over.max.or(self.max_fallbacks) == Some(0) {
            return false;
        }
        over.general().is_some()
            || over.context_window().is_some()
            || over.content_policy().is_some()
            || !self.default.is_empty()
            || self.general.contains_key(group)
            || self.general.contains_key("*")
            || self.context_window.contains_key(group)
            || self.content_policy.contains_key(group)
    }
}

/// Adds [`Fallback`]. See the [module docs](self) for an example.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct FallbackLayer {
    config: Arc<Config>,
}

fn list<I, S>(groups: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    groups.into_iter().map(Into::into).collect()
}

impl FallbackLayer {
    /// No fallbacks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Groups to try, in order, when `group` fails (`fallbacks`; `"*"` means every group).
    pub fn fallbacks<I, S>(mut self, group: impl Into<String>, to: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Arc::make_mut(&mut self.config)
            .general
            .insert(group.into(), list(to));
        self
    }

    /// Groups to try when `group` fails with a context-window error.
    pub fn context_window_fallbacks<I, S>(mut self, group: impl Into<String>, to: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Arc::make_mut(&mut self.config)
            .context_window
            .insert(group.into(), list(to));
        self
    }

    /// Groups to try when `group` fails with a content-policy error.
    pub fn content_policy_fallbacks<I, S>(mut self, group: impl Into<String>, to: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Arc::make_mut(&mut self.config)
            .content_policy
            .insert(group.into(), list(to));
        self
    }

    /// Groups to try for any group without `fallbacks` of its own (`default_fallbacks`).
    pub fn default_fallbacks<I, S>(mut self, to: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Arc::make_mut(&mut self.config).default = list(to);
        self
    }

    /// Which errors may fall back (default: [`LiteLlmClassifier`]: all but a bad request and a
    /// spent budget).
    pub fn classifier(mut self, classifier: SharedClassifier) -> Self {
        Arc::make_mut(&mut self.config).classifier = Some(classifier);
        self
    }

    /// At most this many fallbacks per request (default 5).
    pub fn max_fallbacks(mut self, n: u32) -> Self {
        Arc::make_mut(&mut self.config).max_fallbacks = Some(n);
        self
    }

    /// Asks `access` before trying each fallback group: a group the caller may not use is skipped
    /// (logged at info, naming the group, never the key). Default: every group may be used.
    pub fn access(mut self, access: Arc<dyn GroupAccess>) -> Self {
        Arc::make_mut(&mut self.config).access = Some(access);
        self
    }

    /// Honours the test-only request params ([`MOCK_TESTING_PARAMS`]); when off (the default, as
    /// LiteLLM's `general_settings.dangerously_allow_mock_testing_request_params`), a request
    /// carrying any of them is refused with 400.
    pub fn allow_mock_testing(mut self, allow: bool) -> Self {
        Arc::make_mut(&mut self.config).allow_mock_testing = allow;
        self
    }
}

impl<S> Layer<S> for FallbackLayer {
    type Service = Fallback<S>;

    fn layer(&self, inner: S) -> Fallback<S> {
        Fallback {
            inner,
            config: self.config.clone(),
        }
    }
}

/// Re-issues failed requests to fallback model groups. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Fallback<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Fallback<S> {
    /// Wraps `inner` with `layer`'s fallbacks.
    pub fn new(inner: S, layer: &FallbackLayer) -> Self {
        layer.layer(inner)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Fallback controls a request brought in its body (typed once at the edge:
/// [`LlmRequest::controls`]).
#[derive(Debug, Default)]
struct Overrides {
    lists: Option<Arc<RequestFallbacks>>,
    disabled: bool,
    max: Option<u32>,
}

impl Overrides {
    fn general(&self) -> Option<&FallbackList> {
        self.lists.as_ref()?.general.as_ref()
    }

    fn context_window(&self) -> Option<&FallbackList> {
        self.lists.as_ref()?.context_window.as_ref()
    }

    fn content_policy(&self) -> Option<&FallbackList> {
        self.lists.as_ref()?.content_policy.as_ref()
    }
}

fn overrides(controls: &GatewayControls) -> Overrides {
    Overrides {
        lists: controls.fallbacks.clone(),
        disabled: controls.disable_fallbacks.unwrap_or(false),
        max: controls.max_fallbacks,
    }
}

/// Every fallback group a request's body names (`fallbacks`, `context_window_fallbacks`,
/// `content_policy_fallbacks`, plain or per group): what the caller asks to reach beyond its
/// model. Empty (and no allocation) for a body without them.
#[must_use]
pub fn requested_groups(req: &LlmRequest) -> Vec<String> {
    req.requested_fallback_groups()
}

pub use crate::types::controls::{MAX_MOCK_DELAY, MOCK_TESTING_PARAMS};

/// What a request's test-only params ask for.
#[derive(Debug, Default)]
struct MockTesting {
    /// The error the requested group fails with, without being called.
    error: Option<LlmError>,
    /// Wait this long before the first call.
    delay: Option<Duration>,
}

/// What the test-only params of `req` ask for. A request carrying any of them while they are not
/// allowed is refused (400 naming them, LiteLLM's wording), so a fallback drill never passes
/// without having run.
fn mock_testing(
    req: &LlmRequest,
    controls: &GatewayControls,
    allowed: bool,
) -> Result<MockTesting, LlmError> {
    let Some(params) = controls.mock_testing.as_deref() else {
        return Ok(MockTesting::default());
    };
    let present = &params.present;
    if present.is_empty() {
        return Ok(MockTesting::default());
    }
    if !allowed {
        return Err(LlmError::bad_request(format!(
            "Mock testing request params are disabled on this proxy: {}. An admin can enable them by setting `general_settings.dangerously_allow_mock_testing_request_params: true` in config.yaml. This setting cannot be changed from the Admin UI or the API.",
            present.join(", ")
        ))
        .with_param(present[0]));
    }
    let on = params.on;
    let delay = params.delay;
    let group = req.model();
    let mock = |kind: ErrorKind, what: &str| {
        LlmError::new(
            kind,
            format!("This is a mock exception for model={group}, to trigger {what}."),
        )
    };
    // LiteLLM's order: fallbacks, context window, content policy, then rate limit and timeout.
    let mut error = if on[0] {
        Some(mock(ErrorKind::InternalServer, "a fallback"))
    } else if on[1] {
        Some(mock(
            ErrorKind::ContextWindowExceeded,
            "a context window fallback",
        ))
    } else if on[2] {
        Some(mock(
            ErrorKind::ContentPolicyViolation,
            "a content policy fallback",
        ))
    } else if on[3] {
        Some(mock(ErrorKind::RateLimit, "a rate limit error"))
    } else if on[4] {
        Some(LlmError::new(
            ErrorKind::Timeout,
            "This is a mock timeout error",
        ))
    } else {
        None
    };
    if let Some(e) = &mut error {
        // LiteLLM raises these as its exception classes, as a provider's error would be.
        e.meta_mut().raised_by_call = true;
    }
    Ok(MockTesting { error, delay })
}

/// The request without its test-only params: what a fallback group is sent.
fn without_mock_testing(mut req: LlmRequest) -> LlmRequest {
    let mut controls = req.controls().into_owned();
    if let Operation::Chat(c) = &mut req.op {
        let c = Arc::make_mut(c);
        for p in MOCK_TESTING_PARAMS {
            c.extra.remove(p);
        }
    }
    controls.mock_testing = None;
    req.set_controls((controls != GatewayControls::default()).then_some(controls));
    req
}

fn set_model(req: &mut LlmRequest, model: &str) {
    req.set_model(model);
}

/// Whether an error may fall back at all, by `classifier` (else the default one).
fn falls_back(classifier: Option<&SharedClassifier>, err: &LlmError) -> bool {
    match classifier {
        Some(c) => c.classify(err).falls_back,
        None => LiteLlmClassifier.classify(err).falls_back,
    }
}

/// The per-request fallback plan.
struct Plan {
    config: Arc<Config>,
    over: Overrides,
    original: String,
    /// Groups still to try, next first.
    queue: Vec<String>,
    /// Groups tried (the loop guard).
    tried: Vec<String>,
    spent: u32,
    first_error: Option<LlmError>,
    template: LlmRequest,
}

impl Plan {
    fn max(&self) -> u32 {
        // The caller's `max_fallbacks` can lower the configured number, never raise it.
        let configured = self.config.max_fallbacks.unwrap_or(DEFAULT_MAX_FALLBACKS);
        self.over
            .max
            .map_or(configured, |asked| asked.min(configured))
    }

    /// The fallbacks of `group` for `err`.
    fn groups_for(&self, group: &str, err: &LlmError) -> Vec<String> {
        let cfg = &self.config;
        let pick = |over: Option<&FallbackList>, table: &HashMap<String, Vec<String>>| {
            match over {
                Some(l) => l.for_group(group, &self.original),
                None => table.get(group).cloned(),
            }
            .filter(|v| !v.is_empty())
        };
        let specific = match err.kind() {
            ErrorKind::ContextWindowExceeded => {
                pick(self.over.context_window(), &cfg.context_window)
            }
            ErrorKind::ContentPolicyViolation => {
                pick(self.over.content_policy(), &cfg.content_policy)
            }
            _ => None,
        };
        specific
            .or_else(|| match self.over.general() {
                Some(l) => l.for_group(group, &self.original),
                None => cfg
                    .general
                    .get(group)
                    .or_else(|| cfg.general.get("*"))
                    .cloned(),
            })
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| cfg.default.clone())
    }

    /// After `group` failed with `err`: the next request to send, if any.
    fn next(&mut self, group: &str, err: LlmError) -> Result<LlmRequest, LlmError> {
        if self.over.disabled || !falls_back(self.config.classifier.as_ref(), &err) {
            return Err(self.finish(err));
        }
        let mut more = self.groups_for(group, &err);
        more.retain(|g| !self.tried.contains(g));
        if let Some(access) = &self.config.access {
            more.retain(|g| {
                let ok = access.allows(&self.template, g);
                if !ok {
                    tracing::info!(
                        from = group,
                        skipped = %g,
                        "fallback skipped: the caller may not use this model group"
                    );
                }
                ok
            });
        }
        // Depth first: the failed group's fallbacks go before what was queued.
        for g in more.into_iter().rev() {
            self.queue.retain(|q| q != &g);
            self.queue.insert(0, g);
        }
        if self.first_error.is_none() {
            self.first_error = Some(err);
        }
        if self.spent >= self.max() || self.queue.is_empty() {
            let e = self
                .first_error
                .take()
                .unwrap_or_else(|| LlmError::internal("fallback lost its error"));
            return Err(self.finish(e));
        }
        let next = self.queue.remove(0);
        tracing::info!(from = group, to = %next, "falling back");
        self.tried.push(next.clone());
        self.spent += 1;
        let mut req = self.template.clone();
        set_model(&mut req, &next);
        Ok(req)
    }

    fn finish(&mut self, mut err: LlmError) -> LlmError {
        if self.spent > 0 {
            // The original group's error, saying where else the request went.
            if let Some(first) = self.first_error.take() {
                err = first;
            }
        }
        err.meta_mut().attempted_fallbacks = Some(self.spent);
        err
    }
}

impl<S> Service<LlmRequest> for Fallback<S>
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
        let controls = req.controls();
        let mock = match mock_testing(&req, &controls, self.config.allow_mock_testing) {
            Ok(m) => m,
            Err(e) => {
                return ResponseFuture {
                    state: State::Failed { err: Some(e) },
                    inner: None,
                    plan: None,
                }
            }
        };
        let over = overrides(&controls);
        drop(controls);
        let original = req.model();
        let testing = mock.error.is_some() || mock.delay.is_some();
        if !testing && (!req.kind().is_retryable() || !self.config.may_fall_back(&over, original)) {
            // Nothing to fall back to: no plan, no copy of the request, no second service.
            return ResponseFuture {
                state: State::Calling {
                    fut: self.inner.call(req),
                },
                inner: None,
                plan: None,
            };
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let original = original.to_owned();
        let template = if mock.error.is_some() {
            without_mock_testing(req.clone())
        } else {
            req.clone()
        };
        let mut plan = Plan {
            config: self.config.clone(),
            over,
            tried: vec![original.clone()],
            original,
            queue: Vec::new(),
            spent: 0,
            first_error: None,
            template,
        };
        let delay = |req: LlmRequest, d: Duration| State::Delay {
            sleep: Box::pin(tokio::time::sleep(d)),
            req: Some(req),
        };
        let state = match (mock.error, mock.delay) {
            // A test-only failure: the requested group fails without being called (no deployment
            // sees it, so none counts it); its fallbacks are called for real.
            (Some(err), d) => {
                let group = plan.original.clone();
                match plan.next(&group, err) {
                    Ok(next) => match d {
                        Some(d) => delay(next, d),
                        None => State::Ready { req: Some(next) },
                    },
                    Err(e) => State::Failed { err: Some(e) },
                }
            }
            (None, Some(d)) => delay(req, d),
            (None, None) => State::Calling {
                fut: inner.call(req),
            },
        };
        ResponseFuture {
            state,
            inner: Some(inner),
            plan: Some(Box::new(plan)),
        }
    }
}

pin_project! {
    /// The response future of [`Fallback`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S: Service<LlmRequest>> {
        #[pin]
        state: State<S::Future>,
        // The service and the plan, when the request has somewhere to fall back to.
        inner: Option<S>,
        plan: Option<Box<Plan>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] fut: F },
        Ready { req: Option<LlmRequest> },
        Delay { sleep: Pin<Box<tokio::time::Sleep>>, req: Option<LlmRequest> },
        Failed { err: Option<LlmError> },
    }
}

impl<S: Service<LlmRequest>> fmt::Debug for ResponseFuture<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("fallback::ResponseFuture")
            .field("spent", &self.plan.as_ref().map_or(0, |p| p.spent))
            .finish_non_exhaustive()
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    type Output = Result<LlmResponse, LlmError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { fut } => {
                    let result = ready!(fut.poll(cx));
                    let Some(plan) = this.plan.as_mut() else {
                        return Poll::Ready(result.map_err(no_fallbacks));
                    };
                    match result {
                        Ok(mut resp) => {
                            resp.meta.attempted_fallbacks = plan.spent;
                            return Poll::Ready(Ok(resp));
                        }
                        Err(e) => {
                            let group = plan.tried.last().cloned().unwrap_or_default();
                            match plan.next(&group, e) {
                                Ok(req) => this.state.set(State::Ready { req: Some(req) }),
                                Err(e) => return Poll::Ready(Err(e)),
                            }
                        }
                    }
                }
                StateProj::Delay { sleep, req } => {
                    ready!(sleep.as_mut().poll(cx));
                    let req = req.take();
                    this.state.set(State::Ready { req });
                }
                StateProj::Failed { err } => {
                    return Poll::Ready(Err(err.take().unwrap_or_else(|| {
                        LlmError::internal("fallback future polled after completion")
                    })));
                }
                StateProj::Ready { req } => {
                    let Some(inner) = this.inner.as_mut() else {
                        return Poll::Ready(Err(LlmError::internal(
                            "fallback future lost its service",
                        )));
                    };
                    if let Err(e) = ready!(inner.poll_ready(cx)) {
                        return Poll::Ready(Err(e));
                    }
                    let Some(r) = req.take() else {
                        return Poll::Ready(Err(LlmError::internal(
                            "fallback future lost its request",
                        )));
                    };
                    let fut = inner.call(r);
                    this.state.set(State::Calling { fut });
                }
            }
        }
    }
}

/// An error of a request that had nothing to fall back to: it says no fallback was attempted.
fn no_fallbacks(mut err: LlmError) -> LlmError {
    err.meta_mut().attempted_fallbacks = Some(0);
    err
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("tried", &self.tried)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tower::{ServiceBuilder, ServiceExt as _};

    use super::*;
    use crate::types::chat::{ChatRequest, ChatResponse};

    /// A service answering per model: `ok` models succeed, others fail with `kind`.
    fn svc(
        ok: &'static [&'static str],
        kind: ErrorKind,
        seen: Arc<Mutex<Vec<String>>>,
    ) -> impl Service<
        LlmRequest,
        Response = LlmResponse,
        Error = LlmError,
        Future = std::future::Ready<Result<LlmResponse, LlmError>>,
    > + Clone {
        tower::service_fn(move |r: LlmRequest| {
            let m = r.model().to_owned();
            seen.lock().unwrap().push(m.clone());
            std::future::ready(if ok.contains(&m.as_str()) {
                Ok(LlmResponse::chat(ChatResponse::default()))
            } else {
                Err(LlmError::new(kind, format!("{m} failed")))
            })
        })
    }

    fn req(model: &str) -> LlmRequest {
        LlmRequest::chat(ChatRequest {
            model: model.into(),
            ..ChatRequest::default()
        })
    }

    #[tokio::test]
    async fn order_depth_and_loop_guard() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let layer = FallbackLayer::new()
            .fallbacks("a", ["b", "c"])
            .fallbacks("b", ["a", "d"])
            .fallbacks("d", ["b"]);
        let s = ServiceBuilder::new().layer(layer).service(svc(
            &["c"],
            ErrorKind::InternalServer,
            seen.clone(),
        ));
        let resp = s.oneshot(req("a")).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), ["a", "b", "d", "c"]);
        assert_eq!(resp.meta.attempted_fallbacks, 3);
    }

    /// A group with nothing to fall back to goes straight through: one call, and its error says
    /// no fallback was attempted, as a planned request's would.
    #[tokio::test]
    async fn nothing_to_fall_back_to_passes_straight_through() {
        for layer in [
            FallbackLayer::new(),
            FallbackLayer::new().fallbacks("other", ["b"]),
            FallbackLayer::new().fallbacks("a", ["b"]).max_fallbacks(0),
        ] {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let s = ServiceBuilder::new().layer(layer).service(svc(
                &[],
                ErrorKind::ServiceUnavailable,
                seen.clone(),
            ));
            let e = s.oneshot(req("a")).await.unwrap_err();
            assert_eq!(*seen.lock().unwrap(), ["a"]);
            assert_eq!(e.meta().attempted_fallbacks, Some(0));
        }
        // A wildcard or a default list does plan.
        for layer in [
            FallbackLayer::new().fallbacks("*", ["b"]),
            FallbackLayer::new().default_fallbacks(["b"]),
        ] {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let s = ServiceBuilder::new().layer(layer).service(svc(
                &["b"],
                ErrorKind::ServiceUnavailable,
                seen.clone(),
            ));
            let resp = s.oneshot(req("a")).await.unwrap();
            assert_eq!(*seen.lock().unwrap(), ["a", "b"]);
            assert_eq!(resp.meta.attempted_fallbacks, 1);
        }
    }

    #[tokio::test]
    async fn max_fallbacks_and_original_error() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let layer = FallbackLayer::new()
            .fallbacks("a", ["b", "c", "d"])
            .max_fallbacks(2);
        let s = ServiceBuilder::new().layer(layer).service(svc(
            &[],
            ErrorKind::ServiceUnavailable,
            seen.clone(),
        ));
        let e = s.oneshot(req("a")).await.unwrap_err();
        assert_eq!(*seen.lock().unwrap(), ["a", "b", "c"]);
        assert_eq!(e.message(), "a failed");
        assert_eq!(e.meta().attempted_fallbacks, Some(2));
    }

    #[tokio::test]
    async fn body_max_fallbacks_is_capped_by_the_layer() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let layer = FallbackLayer::new()
            .fallbacks("a", ["b", "c", "d"])
            .max_fallbacks(2);
        let s = ServiceBuilder::new().layer(layer).service(svc(
            &[],
            ErrorKind::ServiceUnavailable,
            seen.clone(),
        ));
        let mut r = req("a");
        r.chat_mut()
            .unwrap()
            .extra
            .insert("max_fallbacks", &10)
            .unwrap();
        let e = s.clone().oneshot(r).await.unwrap_err();
        assert_eq!(*seen.lock().unwrap(), ["a", "b", "c"]);
        assert_eq!(e.meta().attempted_fallbacks, Some(2));
        seen.lock().unwrap().clear();
        // Fewer than configured is honoured.
        let mut r = req("a");
        r.chat_mut()
            .unwrap()
            .extra
            .insert("max_fallbacks", &1)
            .unwrap();
        let _ = s.oneshot(r).await.unwrap_err();
        assert_eq!(*seen.lock().unwrap(), ["a", "b"]);
    }

    #[tokio::test]
    async fn kinds_pick_their_lists_and_bad_request_stays() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let layer = FallbackLayer::new()
            .fallbacks("a", ["general"])
            .context_window_fallbacks("a", ["big"])
            .default_fallbacks(["dflt"]);
        let s = ServiceBuilder::new().layer(layer.clone()).service(svc(
            &["big", "general", "dflt"],
            ErrorKind::ContextWindowExceeded,
            seen.clone(),
        ));
        s.oneshot(req("a")).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), ["a", "big"]);
        seen.lock().unwrap().clear();
        let s = ServiceBuilder::new().layer(layer.clone()).service(svc(
            &["big", "general", "dflt"],
            ErrorKind::RateLimit,
            seen.clone(),
        ));
        s.oneshot(req("zzz")).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), ["zzz", "dflt"]);
        seen.lock().unwrap().clear();
        let s = ServiceBuilder::new().layer(layer).service(svc(
            &["general"],
            ErrorKind::BadRequest,
            seen.clone(),
        ));
        assert!(s.oneshot(req("a")).await.is_err());
        assert_eq!(*seen.lock().unwrap(), ["a"]);
    }

    #[tokio::test]
    async fn request_body_overrides_and_disable() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let layer = FallbackLayer::new().fallbacks("a", ["cfg"]);
        let s = ServiceBuilder::new().layer(layer).service(svc(
            &["cfg", "body"],
            ErrorKind::InternalServer,
            seen.clone(),
        ));
        let mut r = req("a");
        r.chat_mut()
            .unwrap()
            .extra
            .insert("fallbacks", &["body"])
            .unwrap();
        s.clone().oneshot(r).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), ["a", "body"]);
        seen.lock().unwrap().clear();
        let mut r = req("a");
        r.chat_mut()
            .unwrap()
            .extra
            .insert("disable_fallbacks", &true)
            .unwrap();
        let e = s.oneshot(r).await.unwrap_err();
        assert_eq!(e.meta().attempted_fallbacks, Some(0));
        assert_eq!(*seen.lock().unwrap(), ["a"]);
    }

    /// A [`GroupAccess`] allowing only the groups listed.
    #[derive(Debug)]
    struct Only(&'static [&'static str]);

    impl GroupAccess for Only {
        fn allows(&self, _req: &LlmRequest, group: &str) -> bool {
            self.0.contains(&group)
        }
    }

    #[tokio::test]
    async fn groups_the_caller_may_not_use_are_skipped() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let layer = FallbackLayer::new()
            .fallbacks("a", ["secret", "b"])
            .fallbacks("b", ["hidden", "c"])
            .default_fallbacks(["dflt"])
            .access(Arc::new(Only(&["a", "b", "c"])));
        let s = ServiceBuilder::new().layer(layer).service(svc(
            &[],
            ErrorKind::ServiceUnavailable,
            seen.clone(),
        ));
        let e = s.oneshot(req("a")).await.unwrap_err();
        assert_eq!(*seen.lock().unwrap(), ["a", "b", "c"]);
        assert_eq!(e.message(), "a failed");
        assert_eq!(e.meta().attempted_fallbacks, Some(2));
    }

    /// A log sink for one test.
    #[derive(Clone, Default)]
    struct LogBuf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for LogBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_skipped_group_is_logged_by_name() {
        let buf = LogBuf::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let layer = FallbackLayer::new()
            .fallbacks("a", ["secret"])
            .access(Arc::new(Only(&["a"])));
        let s = ServiceBuilder::new().layer(layer).service(svc(
            &[],
            ErrorKind::ServiceUnavailable,
            seen.clone(),
        ));
        s.oneshot(req("a")).await.unwrap_err();
        assert_eq!(*seen.lock().unwrap(), ["a"]);
        let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(
            log.contains("fallback skipped: the caller may not use this model group")
                && log.contains("from=\"a\"")
                && log.contains("skipped=secret"),
            "{log}"
        );
    }

    fn with(model: &str, params: &[(&str, serde_json::Value)]) -> LlmRequest {
        let mut r = req(model);
        for (k, v) in params {
            r.chat_mut().unwrap().extra.insert(k, v).unwrap();
        }
        r
    }

    #[tokio::test]
    async fn mock_testing_params_are_refused_unless_allowed() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = ServiceBuilder::new()
            .layer(FallbackLayer::new().fallbacks("a", ["b"]))
            .service(svc(&["a", "b"], ErrorKind::InternalServer, seen.clone()));
        let e = s
            .oneshot(with(
                "a",
                &[
                    ("mock_testing_fallbacks", true.into()),
                    ("mock_timeout", true.into()),
                ],
            ))
            .await
            .unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(
            e.message().starts_with(
                "Mock testing request params are disabled on this proxy: mock_testing_fallbacks, mock_timeout."
            ),
            "{}",
            e.message()
        );
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn mock_testing_errors_fail_the_group_without_calling_it() {
        for (param, kind, to) in [
            (
                "mock_testing_fallbacks",
                ErrorKind::InternalServer,
                "general",
            ),
            (
                "mock_testing_context_fallbacks",
                ErrorKind::ContextWindowExceeded,
                "big",
            ),
            (
                "mock_testing_content_policy_fallbacks",
                ErrorKind::ContentPolicyViolation,
                "safe",
            ),
            (
                "mock_testing_rate_limit_error",
                ErrorKind::RateLimit,
                "general",
            ),
            ("mock_timeout", ErrorKind::Timeout, "general"),
        ] {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let layer = FallbackLayer::new()
                .fallbacks("a", ["general"])
                .context_window_fallbacks("a", ["big"])
                .content_policy_fallbacks("a", ["safe"])
                .allow_mock_testing(true);
            let s = ServiceBuilder::new()
                .layer(layer)
                .service(tower::service_fn({
                    let seen = seen.clone();
                    move |r: LlmRequest| {
                        let chat = r.as_chat().unwrap();
                        // The fallback is sent without the test-only params.
                        assert!(chat.extra.iter().all(|(k, _)| !k.starts_with("mock_")));
                        seen.lock().unwrap().push(r.model().to_owned());
                        std::future::ready(Ok::<_, LlmError>(LlmResponse::chat(
                            ChatResponse::default(),
                        )))
                    }
                }));
            let resp = s
                .oneshot(with("a", &[(param, "True".into())]))
                .await
                .unwrap();
            assert_eq!(*seen.lock().unwrap(), [to], "{param}");
            assert_eq!(resp.meta.attempted_fallbacks, 1);
            // Without fallbacks the mock error itself is the answer.
            let seen = Arc::new(Mutex::new(Vec::new()));
            let s = ServiceBuilder::new()
                .layer(FallbackLayer::new().allow_mock_testing(true))
                .service(svc(&["a"], ErrorKind::InternalServer, seen.clone()));
            let e = s
                .oneshot(with("a", &[(param, true.into())]))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), kind, "{param}");
            assert_eq!(e.meta().attempted_fallbacks, Some(0));
            assert!(seen.lock().unwrap().is_empty());
        }
        // `false` asks for nothing; `mock_delay` waits, then calls.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = ServiceBuilder::new()
            .layer(FallbackLayer::new().allow_mock_testing(true))
            .service(svc(&["a"], ErrorKind::InternalServer, seen.clone()));
        s.clone()
            .oneshot(with("a", &[("mock_testing_fallbacks", false.into())]))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        s.oneshot(with("a", &[("mock_delay", 0.2.into())]))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(*seen.lock().unwrap(), ["a", "a"]);
    }

    #[test]
    fn requested_groups_reads_every_body_list() {
        let r = with(
            "a",
            &[
                ("fallbacks", serde_json::json!(["x", "y"])),
                (
                    "context_window_fallbacks",
                    serde_json::json!([{"a": ["z"]}]),
                ),
                ("content_policy_fallbacks", serde_json::json!("nonsense")),
            ],
        );
        let mut got = requested_groups(&r);
        got.sort();
        assert_eq!(got, ["x", "y", "z"]);
        assert!(requested_groups(&req("a")).is_empty());
    }
}
