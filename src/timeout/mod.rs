//! Per-deployment timeouts: a whole-call timeout, and for streams a time-to-first-chunk and an idle
//! timeout between chunks.
//!
//! [`TimeoutLayer`] sits under [`health`](crate::health) in each deployment's stack, so a timed-out
//! call counts toward that deployment's cooldown. When the time is up the inner future (or stream)
//! is dropped, which cancels the upstream HTTP call, and the caller gets [`ErrorKind::Timeout`]
//! (408, `timeout_error`).
//!
//! Which limit applies, first match wins (LiteLLM's order):
//!
//! | call | limit |
//! | --- | --- |
//! | any | the request's [`RequestTimeout`] extension (the `x-litellm-timeout` header) |
//! | stream | body `stream_timeout`, then the deployment's `stream_timeout`, then the layer's |
//! | any | body `timeout` / `request_timeout`, then the deployment's `timeout`, then the layer's (600 s) |
//!
//! A limit the client sets (the header or a body field) only shortens the configured one: it is
//! capped at the deployment's `stream_timeout` (streams) or `timeout`, else the layer's.
//!
//! With [`TimeoutLayer::stream_max_duration`] (`router_settings.stream_max_duration`), a stream
//! also ends, with a timeout error event, once it has run that long in total, however steadily
//! it sends.
//!
//! For a stream, the limit bounds the time until the first chunk and every gap between chunks; a
//! stream that stalls after its first chunk ends with a timeout error event.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use llmgate::{timeout::TimeoutLayer, ErrorKind, LlmRequest, LlmResponse, LlmError};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let mut svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_millis(10)))
//!     .service_fn(|_req: LlmRequest| async {
//!         tokio::time::sleep(Duration::from_secs(60)).await;
//!         Ok::<LlmResponse, LlmError>(LlmResponse::chat(Default::default()))
//!     });
//! let err = svc.ready().await.unwrap().call(LlmRequest::list_models()).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Timeout);
//! # }
//! ```
//!
//! Customised: a separate stream limit.
//!
//! ```
//! use std::time::Duration;
//! use llmgate::timeout::TimeoutLayer;
//! let layer = TimeoutLayer::new(Duration::from_secs(600)).stream_timeout(Duration::from_secs(30));
//! # let _ = layer;
//! ```
//!
//! Extensions read: [`RequestTimeout`]. Errors produced: [`ErrorKind::Timeout`].

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};

use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

use crate::clock::Timer;
pub use crate::types::extensions::RequestTimeout;
use crate::{
    error::{ErrorKind, LlmError},
    types::{ChunkBody, LlmRequest, LlmResponse},
};

/// LiteLLM's default request timeout: 600 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Adds [`Timeout`] to a deployment's stack. See the [module docs](self) for an example.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct TimeoutLayer {
    timer: Timer,
    timeout: Duration,
    stream_timeout: Option<Duration>,
    stream_max_duration: Option<Duration>,
}

impl TimeoutLayer {
    /// Arms the deadlines on `timer` (default: [`Timer::current`], tokio's timer on the runtime
    /// that calls). The binary passes [`Timer::dedicated`].
    pub fn timer(mut self, timer: Timer) -> Self {
        self.timer = timer;
        self
    }

    /// Calls time out after `timeout` (streams too, unless [`stream_timeout`](Self::stream_timeout)).
    pub fn new(timeout: Duration) -> Self {
        Self {
            timer: Timer::current(),
            timeout,
            stream_timeout: None,
            stream_max_duration: None,
        }
    }

    /// The limit for time to first chunk and idle time between chunks of a stream.
    pub fn stream_timeout(mut self, d: Duration) -> Self {
        self.stream_timeout = Some(d);
        self
    }

    /// The longest a stream may run in total, from the call to its last chunk (default: no
    /// limit; `router_settings.stream_max_duration`). A stream still running then ends with a
    /// timeout error event. It costs no timer of its own: the idle deadline is clamped to it.
    pub fn stream_max_duration(mut self, d: Duration) -> Self {
        self.stream_max_duration = Some(d);
        self
    }
}

impl Default for TimeoutLayer {
    fn default() -> Self {
        Self::new(DEFAULT_TIMEOUT)
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            layer: *self,
        }
    }
}

/// Applies timeouts to a deployment's calls. See the [module docs](self) for an example.
#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
    layer: TimeoutLayer,
}

impl<S> Timeout<S> {
    /// Wraps `inner` with a whole-call `timeout`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        TimeoutLayer::new(timeout).layer(inner)
    }

    /// A layer.
    pub fn layer(timeout: Duration) -> TimeoutLayer {
        TimeoutLayer::new(timeout)
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

fn secs(v: f64) -> Option<Duration> {
    (v.is_finite() && v > 0.0 && v < 1e9).then(|| Duration::from_secs_f64(v))
}

/// The limit for `req` under `layer`. What the client asks for (the header, the body's
/// `stream_timeout`, `timeout` or `request_timeout`) can shorten the operator's limit, never
/// lengthen it: a caller cannot hold a deployment's call past the configured time.
fn limit_for(req: &LlmRequest, layer: &TimeoutLayer) -> Duration {
    let controls = req.controls();
    let body = |v: Option<f64>| v.and_then(secs);
    let header = req
        .extensions
        .get::<RequestTimeout>()
        .map(|RequestTimeout(d)| *d);
    let body_stream = if req.is_stream() {
        body(controls.stream_timeout)
    } else {
        None
    };
    let (asked, operator) = if body_stream.is_some()
        || (req.is_stream() && layer.stream_timeout.is_some())
    {
        (
            header.or(body_stream),
            layer.stream_timeout.unwrap_or(layer.timeout),
        )
    } else {
        (
            header.or_else(|| body(controls.timeout).or_else(|| body(controls.request_timeout))),
            layer.timeout,
        )
    };
    asked.map_or(operator, |d| d.min(operator))
}

/// The error of an elapsed timeout.
#[must_use]
pub fn timeout_error(limit: Duration, what: &str) -> LlmError {
    LlmError::new(
        ErrorKind::Timeout,
        format!(
            "Request timed out: {what} took longer than {:.3}s",
            limit.as_secs_f64()
        ),
    )
}

impl<S> Service<LlmRequest> for Timeout<S>
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
        let limit = limit_for(&req, &self.layer);
        let stream = req.is_stream();
        let ends_at = self
            .layer
            .stream_max_duration
            .filter(|_| stream)
            .map(|d| Instant::now() + d);
        ResponseFuture {
            inner: self.inner.call(req),
            sleep: self.layer.timer.sleep(limit),
            timer: self.layer.timer,
            limit,
            stream,
            ends_at,
        }
    }
}

pin_project! {
    /// The response future of [`Timeout`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        timer: Timer,
        limit: Duration,
        stream: bool,
        // When a stream must be over (`stream_max_duration`).
        ends_at: Option<Instant>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("timeout::ResponseFuture")
            .field("limit", &self.limit)
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
        if let Poll::Ready(out) = this.inner.poll(cx) {
            let limit = *this.limit;
            let ends_at = *this.ends_at;
            let first_deadline = this.sleep.deadline();
            let timer = *this.timer;
            return Poll::Ready(out.map(|resp| {
                // The first chunk is due by the call's own deadline.
                let due = ends_at.map_or(first_deadline, |end| end.min(first_deadline));
                resp.map_stream(|s| Box::pin(TimeoutStream::new(s, timer, due, limit, ends_at)))
                    .map_events(|s| Box::pin(TimeoutStream::new(s, timer, due, limit, ends_at)))
            }));
        }
        ready!(this.sleep.poll(cx));
        let what = if *this.stream {
            "the first chunk"
        } else {
            "the call"
        };
        Poll::Ready(Err(timeout_error(*this.limit, what)))
    }
}

/// A boxed stream of `T`s: a [`ChatStream`](crate::types::ChatStream) or an
/// [`EventStream`](crate::types::EventStream).
type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, LlmError>> + Send + 'static>>;

pin_project! {
    /// A stream with a deadline for its first item and an idle limit between items: chat chunks
    /// ([`ChunkBody`], the default) or a dialect's events
    /// ([`StreamEvent`](crate::types::StreamEvent)).
    #[must_use = "streams do nothing unless polled"]
    pub struct TimeoutStream<T = ChunkBody> {
        inner: Boxed<T>,
        #[pin]
        sleep: Sleep,
        idle: Duration,
        first: bool,
        // The total limit's deadline, when there is one: no idle deadline goes past it.
        ends_at: Option<Instant>,
    }
}

impl<T> TimeoutStream<T> {
    fn new(
        inner: Boxed<T>,
        timer: Timer,
        first_due: Instant,
        idle: Duration,
        ends_at: Option<Instant>,
    ) -> Self {
        Self {
            inner,
            sleep: timer.sleep_until(first_due),
            idle,
            first: true,
            ends_at,
        }
    }
}

impl<T> fmt::Debug for TimeoutStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutStream")
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Stream for TimeoutStream<T> {
    type Item = Result<T, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if let Poll::Ready(item) = this.inner.as_mut().poll_next(cx) {
            *this.first = false;
            let next = Instant::now() + *this.idle;
            this.sleep
                .as_mut()
                .reset(this.ends_at.map_or(next, |end| end.min(next)));
            return Poll::Ready(item);
        }
        ready!(this.sleep.as_mut().poll(cx));
        let err = match *this.ends_at {
            Some(end) if Instant::now() >= end => LlmError::new(
                ErrorKind::Timeout,
                "Request timed out: the stream ran longer than router_settings.stream_max_duration",
            ),
            _ if *this.first => timeout_error(*this.idle, "the first chunk"),
            _ => timeout_error(*this.idle, "the wait for the next chunk"),
        };
        // End the stream after the error: drop the upstream by replacing it with an empty one.
        *this.inner = Box::pin(futures_util::stream::empty());
        this.sleep
            .as_mut()
            .reset(Instant::now() + Duration::from_secs(86_400 * 365));
        Poll::Ready(Some(Err(err)))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;
    use tower::{ServiceBuilder, ServiceExt as _};

    use super::*;
    use crate::types::{chat::ChatRequest, ResponseBody};

    fn chunk() -> ChunkBody {
        crate::types::chat::ChatChunk::default().into()
    }

    #[tokio::test(start_paused = true)]
    async fn request_extension_overrides_layer() {
        let svc = ServiceBuilder::new()
            .layer(TimeoutLayer::new(Duration::from_secs(600)))
            .service_fn(|_req: LlmRequest| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, LlmError>(LlmResponse::chat(Default::default()))
            });
        let mut req = LlmRequest::list_models();
        req.extensions
            .insert(RequestTimeout(Duration::from_secs(1)));
        let started = Instant::now();
        let err = svc.oneshot(req).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn client_limits_cannot_exceed_the_configured_one() {
        let svc = ServiceBuilder::new()
            .layer(TimeoutLayer::new(Duration::from_secs(3)))
            .service_fn(|_req: LlmRequest| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, LlmError>(LlmResponse::chat(Default::default()))
            });
        // The header asks for 12 s, the body for 30 s: both are held to the configured 3 s.
        let mut header = LlmRequest::list_models();
        header
            .extensions
            .insert(RequestTimeout(Duration::from_secs(12)));
        let mut body = ChatRequest::default();
        body.extra.insert("timeout", &30.0).unwrap();
        body.extra.insert("stream_timeout", &30.0).unwrap();
        body.stream = Some(true);
        for req in [header, LlmRequest::chat(body)] {
            let started = Instant::now();
            let err = svc.clone().oneshot(req).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Timeout);
            assert_eq!(started.elapsed(), Duration::from_secs(3));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn body_timeout_is_read() {
        let svc = ServiceBuilder::new()
            .layer(TimeoutLayer::new(Duration::from_secs(600)))
            .service_fn(|_req: LlmRequest| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, LlmError>(LlmResponse::chat(Default::default()))
            });
        let mut body = ChatRequest::default();
        body.extra.insert("timeout", &2.5).unwrap();
        let started = Instant::now();
        let err = svc.oneshot(LlmRequest::chat(body)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(started.elapsed(), Duration::from_millis(2_500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_ends_at_the_total_limit() {
        let svc = ServiceBuilder::new()
            .layer(
                TimeoutLayer::new(Duration::from_secs(600))
                    .stream_timeout(Duration::from_secs(2))
                    .stream_max_duration(Duration::from_millis(5_500)),
            )
            .service_fn(|_req: LlmRequest| async {
                // A chunk every second, forever: never idle.
                let s = futures_util::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Some((Ok(chunk()), ()))
                });
                Ok::<_, LlmError>(LlmResponse::stream(Box::pin(s)))
            });
        let body = ChatRequest {
            stream: Some(true),
            ..ChatRequest::default()
        };
        let started = Instant::now();
        let resp = svc.oneshot(LlmRequest::chat(body)).await.unwrap();
        let ResponseBody::Stream(s) = resp.body else {
            panic!("not a stream")
        };
        let items: Vec<_> = s.collect().await;
        assert_eq!(started.elapsed(), Duration::from_millis(5_500));
        assert_eq!(items.len(), 6, "five chunks, then the error");
        let e = items.last().unwrap().as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.message().contains("stream_max_duration"), "{e:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn stream_idle_timeout_ends_with_error() {
        let svc = ServiceBuilder::new()
            .layer(
                TimeoutLayer::new(Duration::from_secs(600)).stream_timeout(Duration::from_secs(2)),
            )
            .service_fn(|_req: LlmRequest| async {
                let s = futures_util::stream::once(async { Ok(chunk()) })
                    .chain(futures_util::stream::pending());
                Ok::<_, LlmError>(LlmResponse::stream(Box::pin(s)))
            });
        let body = ChatRequest {
            stream: Some(true),
            ..ChatRequest::default()
        };
        let resp = svc.oneshot(LlmRequest::chat(body)).await.unwrap();
        let ResponseBody::Stream(mut s) = resp.body else {
            panic!("not a stream")
        };
        assert!(s.next().await.unwrap().is_ok());
        let started = Instant::now();
        let e = s.next().await.unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(s.next().await.is_none());
    }
}
