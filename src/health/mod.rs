//! Per-deployment health: counts failures and cools a deployment down.
//!
//! [`HealthLayer`] wraps one deployment's stack (it sits between the router and the
//! [`timeout`](crate::timeout) layer). Every failed call that says something about the deployment
//! (429, 401, 404, 408 / timeout, 5xx, connection errors) is counted in the current minute. When a
//! deployment fails more than `allowed_fails` times in a minute (or more than the
//! `allowed_fails_policy` allows for that error kind), it is put into cooldown for `cooldown_time`;
//! a 429 cools it down at once (for the provider's `Retry-After` when it sent one). The
//! [router](crate::router) skips cooling deployments; when every deployment of a group is cooling the
//! client gets 429 with a `retry-after`.
//!
//! Other 4xx errors (400, context window, content policy) are the request's fault and are not
//! counted. Connection errors are counted (LiteLLM misses them). Test requests
//! ([`is_test_request`]: a request carrying `mock_response`) are not counted at all, whatever
//! they answer.
//!
//! Streams: a stream counts as a success when it ends and as a failure when it yields an error. The
//! [`FirstChunkLayer`](crate::first_chunk::FirstChunkLayer) below health (in every deployment stack
//! the gateway builds) turns a stream that fails before its first chunk into a failed call, which
//! health then counts like any other.
//!
//! State lives in a [`HealthCell`] shared with the router (atomics only, no lock). With Redis
//! configured, the router mirrors cooldowns through a [`CooldownSink`].
//!
//! # Example
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use llmgate::health::{CooldownPolicy, HealthCell, HealthLayer};
//! use llmgate::{ErrorKind, LlmError, LlmRequest, LlmResponse};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let policy = CooldownPolicy::default().allowed_fails(0).cooldown_time(Duration::from_secs(5));
//! let cell = Arc::new(HealthCell::new());
//! let mut svc = ServiceBuilder::new()
//!     .layer(HealthLayer::new(cell.clone(), policy))
//!     .service_fn(|_req: LlmRequest| async {
//!         Err::<LlmResponse, _>(LlmError::new(ErrorKind::ServiceUnavailable, "down"))
//!     });
//! let req = LlmRequest::list_models();
//! let _ = svc.ready().await.unwrap().call(req).await;
//! assert!(cell.is_cooling());
//! # }
//! ```
//!
//! A customised policy: tolerate five timeouts a minute but cool on the second 5xx.
//!
//! ```
//! use llmgate::{health::CooldownPolicy, ErrorKind};
//! let policy = CooldownPolicy::default()
//!     .allowed_fails(3)
//!     .allowed_fails_for(ErrorKind::Timeout, 5)
//!     .allowed_fails_for(ErrorKind::InternalServer, 1);
//! # let _ = policy;
//! ```
//!
//! Extensions read: none. Errors produced: none (inner errors pass through).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    task::{ready, Context, Poll},
    time::Duration,
};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    classify::{Classify as _, LiteLlmClassifier, SharedClassifier},
    clock::Clock,
    error::{ErrorKind, LlmError},
    observe::{End, Observer},
    types::{LlmRequest, LlmResponse},
};

/// LiteLLM's default cooldown (`DEFAULT_COOLDOWN_TIME_SECONDS`): 5 s.
pub const DEFAULT_COOLDOWN_TIME: Duration = Duration::from_secs(5);
/// Default failures tolerated per minute before a cooldown (LiteLLM's router default): 3.
pub const DEFAULT_ALLOWED_FAILS: u32 = 3;
/// Longest cooldown a provider's `Retry-After` can impose: 60 s.
pub const MAX_RETRY_AFTER_COOLDOWN: Duration = Duration::from_secs(60);

pub use crate::classify::PolicyClass;

/// When a deployment cools down, and for how long. See the [module docs](self).
#[derive(Clone, Debug)]
#[must_use]
pub struct CooldownPolicy {
    classifier: SharedClassifier,
    allowed_fails: u32,
    per_class: [Option<u32>; 6],
    cooldown_time: Duration,
    disabled: bool,
}

impl Default for CooldownPolicy {
    fn default() -> Self {
        Self {
            classifier: Arc::new(LiteLlmClassifier),
            allowed_fails: DEFAULT_ALLOWED_FAILS,
            per_class: [None; 6],
            cooldown_time: DEFAULT_COOLDOWN_TIME,
            disabled: false,
        }
    }
}

impl CooldownPolicy {
    /// Which errors count toward a cooldown, and their policy class (default:
    /// [`LiteLlmClassifier`]).
    pub fn classifier(mut self, classifier: SharedClassifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// Failures per minute tolerated before a cooldown (default 3).
    pub fn allowed_fails(mut self, n: u32) -> Self {
        self.allowed_fails = n;
        self
    }

    /// Failures per minute tolerated for one error class (`allowed_fails_policy`).
    pub fn allowed_fails_for(mut self, kind: ErrorKind, n: u32) -> Self {
        if let Some(class) = PolicyClass::of(kind) {
            self.per_class[class.index()] = Some(n);
        }
        self
    }

    /// Failures per minute tolerated for one policy class.
    pub fn allowed_fails_for_class(mut self, class: PolicyClass, n: u32) -> Self {
        self.per_class[class.index()] = Some(n);
        self
    }

    /// How long a deployment cools down (default 5 s).
    pub fn cooldown_time(mut self, d: Duration) -> Self {
        self.cooldown_time = d;
        self
    }

    /// Turns cooldowns off (`disable_cooldowns`): failures are still counted.
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }

    /// Whether cooldowns are off.
    #[must_use]
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// The cooldown duration.
    #[must_use]
    pub fn cooldown(&self) -> Duration {
        self.cooldown_time
    }
}

/// Whether `req` is a test request: it carries `mock_response`, so the gateway answers it without
/// calling the deployment. Its outcome (an error it asked for, its latency, its tokens) says
/// nothing about the deployment, so neither health nor the [router](crate::router)'s latency and
/// usage statistics count it. (The `mock_testing_*` params never reach a deployment: the
/// [fallback](crate::fallback) layer answers them.)
#[must_use]
pub fn is_test_request(req: &LlmRequest) -> bool {
    req.op.mock_response().is_some()
}

/// Whether an error says something about the deployment (and so counts toward its cooldown), by
/// the default classifier ([`LiteLlmClassifier`]); a [`CooldownPolicy`] may carry another.
#[must_use]
pub fn counts_as_failure(err: &LlmError) -> bool {
    LiteLlmClassifier.classify(err).counts_as_failure
}

/// Told when a deployment enters cooldown, to share it with other instances (the router's Redis
/// mirror implements it).
pub trait CooldownSink: Send + Sync + 'static {
    /// `deployment_id` cools down for `duration`.
    fn on_cooldown(&self, deployment_id: &str, duration: Duration);
}

/// One deployment's health: failures in the current minute and the end of its cooldown.
/// Atomics only; shared between the [`Health`] service and the router.
#[derive(Default)]
pub struct HealthCell {
    clock: Clock,
    cool_until_ms: AtomicU64,
    minute: AtomicU64,
    fails: AtomicU32,
    class_fails: [AtomicU32; 6],
    successes: AtomicU32,
}

impl fmt::Debug for HealthCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCell")
            .field("cooling_for", &self.cooling_for())
            .field("fails_this_minute", &self.fails.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl HealthCell {
    /// A healthy cell.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A healthy cell whose cooldowns and failure minutes run on `clock`.
    #[must_use]
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            clock,
            ..Self::default()
        }
    }

    /// The clock this cell reads.
    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The monotonic reading the cell compares with, in milliseconds
    /// ([`Clock::monotonic_ms`]): read it once for many cells of one clock
    /// ([`HealthCell::is_cooling_at`]).
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        self.clock.monotonic_ms()
    }

    /// Whether the deployment is cooling down now.
    #[must_use]
    pub fn is_cooling(&self) -> bool {
        self.is_cooling_at(self.now_ms())
    }

    /// Whether the deployment is cooling down at `now` (from [`HealthCell::now_ms`]).
    #[must_use]
    pub fn is_cooling_at(&self, now: u64) -> bool {
        self.cool_until_ms.load(Ordering::Relaxed) > now
    }

    /// How much longer the deployment cools down (`None` when it does not).
    #[must_use]
    pub fn cooling_for(&self) -> Option<Duration> {
        let until = self.cool_until_ms.load(Ordering::Relaxed);
        let now = self.now_ms();
        (until > now).then(|| Duration::from_millis(until - now))
    }

    /// Starts (or extends) a cooldown of `duration` from now.
    pub fn cool_down(&self, duration: Duration) {
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
        self.cool_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// Ends a cooldown now.
    pub fn clear(&self) {
        self.cool_until_ms.store(0, Ordering::Relaxed);
    }

    fn roll_minute(&self) {
        let minute = self.now_ms() / 60_000;
        let seen = self.minute.load(Ordering::Relaxed);
        if seen != minute
            && self
                .minute
                .compare_exchange(seen, minute, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.fails.store(0, Ordering::Relaxed);
            self.successes.store(0, Ordering::Relaxed);
            for c in &self.class_fails {
                c.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Failures counted in the current minute.
    #[must_use]
    pub fn fails_this_minute(&self) -> u32 {
        self.roll_minute();
        self.fails.load(Ordering::Relaxed)
    }

    /// Records a success.
    pub fn record_success(&self) {
        self.roll_minute();
        self.successes.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a failure under `policy`; returns the cooldown it started, if any.
    pub fn record_failure(&self, err: &LlmError, policy: &CooldownPolicy) -> Option<Duration> {
        let classification = policy.classifier.classify(err);
        if !classification.counts_as_failure {
            return None;
        }
        self.roll_minute();
        let fails = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
        let class = classification.policy;
        let class_fails =
            class.map(|c| self.class_fails[c.index()].fetch_add(1, Ordering::Relaxed) + 1);
        if policy.disabled {
            return None;
        }
        let class_limit = class.and_then(|c| policy.per_class[c.index()]);
        let cool = match (class_limit, class_fails) {
            (Some(limit), Some(n)) => n > limit,
            // A 429 means "not now" from this deployment: cool it at once.
            _ if err.kind() == ErrorKind::RateLimit => true,
            _ => fails > policy.allowed_fails,
        };
        if !cool {
            return None;
        }
        let duration = match err.retry_after() {
            Some(wait) if err.kind() == ErrorKind::RateLimit && !wait.is_zero() => {
                wait.min(MAX_RETRY_AFTER_COOLDOWN)
            }
            _ => policy.cooldown_time,
        };
        self.cool_down(duration);
        Some(duration)
    }
}

/// Adds [`Health`] to a deployment's stack. See the [module docs](self) for an example.
#[derive(Clone)]
#[must_use]
pub struct HealthLayer {
    shared: Arc<Shared>,
}

struct Shared {
    cell: Arc<HealthCell>,
    policy: CooldownPolicy,
    deployment_id: Arc<str>,
    sink: Option<Arc<dyn CooldownSink>>,
}

impl fmt::Debug for HealthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthLayer")
            .field("policy", &self.shared.policy)
            .field("cell", &self.shared.cell)
            .finish_non_exhaustive()
    }
}

impl HealthLayer {
    /// Tracks health into `cell` under `policy`.
    pub fn new(cell: Arc<HealthCell>, policy: CooldownPolicy) -> Self {
        Self {
            shared: Arc::new(Shared {
                cell,
                policy,
                deployment_id: Arc::from(""),
                sink: None,
            }),
        }
    }

    /// Also tells `sink` when deployment `id` enters cooldown.
    pub fn with_sink(self, id: Arc<str>, sink: Arc<dyn CooldownSink>) -> Self {
        let s = &self.shared;
        Self {
            shared: Arc::new(Shared {
                cell: s.cell.clone(),
                policy: s.policy.clone(),
                deployment_id: id,
                sink: Some(sink),
            }),
        }
    }
}

impl<S> Layer<S> for HealthLayer {
    type Service = Health<S>;

    fn layer(&self, inner: S) -> Health<S> {
        Health {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Counts a deployment's failures and cools it down. See the [module docs](self) for an example.
#[derive(Clone)]
pub struct Health<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> fmt::Debug for Health<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("cell", &self.shared.cell)
            .finish_non_exhaustive()
    }
}

impl<S> Health<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, layer: &HealthLayer) -> Self {
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

impl Shared {
    fn failed(&self, err: &LlmError) {
        if let Some(d) = self.cell.record_failure(err, &self.policy) {
            tracing::info!(
                deployment = %self.deployment_id,
                kind = err.kind().as_str(),
                cooldown_ms = d.as_millis() as u64,
                "deployment cooling down"
            );
            if let Some(sink) = &self.sink {
                sink.on_cooldown(&self.deployment_id, d);
            }
        }
    }
}

impl<S> Service<LlmRequest> for Health<S>
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

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        // A test request's outcome says nothing about the deployment: it is not counted.
        let shared = (!is_test_request(&req)).then(|| self.shared.clone());
        ResponseFuture {
            fut: self.inner.call(req),
            shared,
        }
    }
}

pin_project! {
    /// The response future of [`Health`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        fut: F,
        shared: Option<Arc<Shared>>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("health::ResponseFuture")
            .finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<LlmResponse, LlmError>>,
{
    type Output = Result<LlmResponse, LlmError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.fut.poll(cx));
        let shared = this.shared.take();
        Poll::Ready(match out {
            Err(e) => {
                if let Some(s) = &shared {
                    s.failed(&e);
                }
                Err(e)
            }
            Ok(resp) if resp.body.is_stream() => {
                // Counted when the stream ends: a success at its end, a failure at an error.
                let LlmResponse { body, meta } = resp;
                Ok(LlmResponse {
                    body: body.observe_with(|| Watched(shared)),
                    meta,
                })
            }
            Ok(resp) => {
                if let Some(s) = &shared {
                    s.cell.record_success();
                }
                Ok(resp)
            }
        })
    }
}

/// What health watches a deployment's stream for: an error counts as a failure, the end as a
/// success (a stream dropped before its end counts as neither).
struct Watched(Option<Arc<Shared>>);

impl Observer for Watched {
    fn error(&mut self, err: &LlmError) {
        if let Some(s) = self.0.take() {
            s.failed(err);
        }
    }

    fn end(self, end: End) {
        if let (End::Complete, Some(s)) = (end, self.0) {
            s.cell.record_success();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ErrorKind) -> LlmError {
        LlmError::new(kind, "x")
    }

    #[tokio::test(start_paused = true)]
    async fn cools_after_allowed_fails_and_expires() {
        let cell = HealthCell::new();
        let p = CooldownPolicy::default()
            .allowed_fails(2)
            .cooldown_time(Duration::from_secs(5));
        assert!(cell
            .record_failure(&err(ErrorKind::InternalServer), &p)
            .is_none());
        assert!(cell
            .record_failure(&err(ErrorKind::InternalServer), &p)
            .is_none());
        assert!(!cell.is_cooling());
        assert_eq!(
            cell.record_failure(&err(ErrorKind::InternalServer), &p),
            Some(Duration::from_secs(5))
        );
        assert!(cell.is_cooling());
        tokio::time::advance(Duration::from_millis(4_900)).await;
        assert!(cell.is_cooling());
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(!cell.is_cooling());
    }

    #[test]
    fn a_cell_cools_on_its_own_clock() {
        let clock = Clock::manual();
        let cell = HealthCell::with_clock(clock.clone());
        let p = CooldownPolicy::default()
            .allowed_fails(0)
            .cooldown_time(Duration::from_secs(5));
        assert!(cell
            .record_failure(&err(ErrorKind::InternalServer), &p)
            .is_some());
        assert_eq!(cell.cooling_for(), Some(Duration::from_secs(5)));
        crate::clock::let_real_time_pass(Duration::from_millis(20));
        assert_eq!(
            cell.cooling_for(),
            Some(Duration::from_secs(5)),
            "the wall clock moved, not ours"
        );
        clock.advance(Duration::from_millis(4_999));
        assert!(cell.is_cooling());
        assert_eq!(cell.cooling_for(), Some(Duration::from_millis(1)));
        clock.advance(Duration::from_millis(1));
        assert!(!cell.is_cooling());
        // The failure minute rolls on the same clock: a minute later, the count starts again.
        let p = CooldownPolicy::default().allowed_fails(5);
        assert!(cell
            .record_failure(&err(ErrorKind::InternalServer), &p)
            .is_none());
        assert!(cell.fails_this_minute() >= 1);
        clock.advance(Duration::from_secs(60));
        assert_eq!(cell.fails_this_minute(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_cools_at_once_for_retry_after() {
        let cell = HealthCell::new();
        let p = CooldownPolicy::default();
        let e = err(ErrorKind::RateLimit).with_retry_after(Duration::from_secs(2));
        assert_eq!(cell.record_failure(&e, &p), Some(Duration::from_secs(2)));
        tokio::time::advance(Duration::from_millis(2_100)).await;
        assert!(!cell.is_cooling());
    }

    #[tokio::test(start_paused = true)]
    async fn bad_requests_do_not_count_and_policy_per_class_wins() {
        let cell = HealthCell::new();
        let p = CooldownPolicy::default()
            .allowed_fails(0)
            .allowed_fails_for(ErrorKind::RateLimit, 2);
        assert!(cell
            .record_failure(&err(ErrorKind::BadRequest), &p)
            .is_none());
        assert!(cell
            .record_failure(&err(ErrorKind::ContextWindowExceeded), &p)
            .is_none());
        assert_eq!(cell.fails_this_minute(), 0);
        assert!(cell
            .record_failure(&err(ErrorKind::RateLimit), &p)
            .is_none());
        assert!(cell
            .record_failure(&err(ErrorKind::RateLimit), &p)
            .is_none());
        assert!(cell
            .record_failure(&err(ErrorKind::RateLimit), &p)
            .is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn window_resets_each_minute_and_disabled_never_cools() {
        let cell = HealthCell::new();
        let p = CooldownPolicy::default().allowed_fails(1);
        assert!(cell.record_failure(&err(ErrorKind::Timeout), &p).is_none());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(cell.record_failure(&err(ErrorKind::Timeout), &p).is_none());
        let off = CooldownPolicy::default().allowed_fails(0).disabled(true);
        assert!(cell
            .record_failure(&err(ErrorKind::ApiConnection), &off)
            .is_none());
        assert!(!cell.is_cooling());
    }

    /// A request carrying `mock_response` asked for its answer: its failure is not the
    /// deployment's, so it never counts or cools the deployment down; the same failure of a real
    /// request does.
    #[tokio::test]
    async fn test_requests_are_not_counted() {
        use tower::{Service as _, ServiceExt as _};
        let cell = Arc::new(HealthCell::new());
        let policy = CooldownPolicy::default().allowed_fails(0);
        let mut svc = tower::ServiceBuilder::new()
            .layer(HealthLayer::new(cell.clone(), policy))
            .service_fn(|_req: LlmRequest| async {
                Err::<LlmResponse, _>(LlmError::new(ErrorKind::RateLimit, "mock 429"))
            });
        let mut mocked = LlmRequest::chat(crate::types::chat::ChatRequest {
            model: "g".into(),
            ..Default::default()
        });
        mocked.chat_mut().unwrap().mock_response =
            Some(serde_json::json!("litellm.RateLimitError"));
        assert!(is_test_request(&mocked));
        let e = svc.ready().await.unwrap().call(mocked).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimit);
        assert_eq!(cell.fails_this_minute(), 0);
        assert!(!cell.is_cooling());
        let real = LlmRequest::chat(crate::types::chat::ChatRequest {
            model: "g".into(),
            ..Default::default()
        });
        assert!(!is_test_request(&real));
        let _ = svc.ready().await.unwrap().call(real).await;
        assert_eq!(cell.fails_this_minute(), 1);
        assert!(cell.is_cooling());
    }
}
