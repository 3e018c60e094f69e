//! One async-admission future: decide, then call the inner service (or answer at once).
//!
//! Several layers first make a decision that may need I/O (the rate limiter asks Redis, the cache
//! looks the request up, auth looks the key up), and then either answer without going further
//! (refused, served from the cache) or call the inner service, sometimes with something to do
//! with its result (give a parallel slot back, store the answer). [`AdmissionFuture`] is that
//! state machine, written once, after tower-http's `AsyncRequireAuthorization`
//! (`tower-http/src/auth/async_require_authorization.rs`):
//!
//! ```text
//! Deciding(decision future) ──Call(req, after)──▶ Calling(inner future) ──▶ after.on_response(result)
//!          └──────────────────Respond(result)──▶ Ready(result)
//! ```
//!
//! The decision is any future whose output is an [`Admission`]; what happens to the inner
//! result is an [`OnResponse`] (`()` when nothing does). The instance of the inner service that
//! reported ready is the one called: [`AdmissionFuture::decide`] clones the service and moves
//! the ready one into the future (`tower-service`'s "Be careful when cloning inner services").
//! A decision known at once skips the clone ([`AdmissionFuture::call`],
//! [`AdmissionFuture::respond`]).
//!
//! Dropping the future drops what it holds in field order: in `Calling`, the inner future
//! first, then the [`OnResponse`] value, so a guard there sees whatever the inner future's own
//! drop reported.
//!
//! ```
//! use llmgate::admission::{Admission, AdmissionFuture};
//! # use llmgate::{LlmRequest, LlmResponse, LlmError};
//! # async fn f() -> Result<(), LlmError> {
//! let mut inner = tower::service_fn(|_r: LlmRequest| async {
//!     Ok::<_, LlmError>(LlmResponse::chat(Default::default()))
//! });
//! // An async decision (here: always let the call through, with nothing to do afterwards).
//! let req = LlmRequest::list_models();
//! let decision = async move { Admission::Call(req, ()) };
//! let resp = AdmissionFuture::decide(&mut inner, decision).await?;
//! # let _ = resp; Ok(()) }
//! ```

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use pin_project_lite::pin_project;
use tower_service::Service;

use crate::{
    error::LlmError,
    types::{LlmRequest, LlmResponse},
};

/// What an admission decision says.
#[derive(Debug)]
pub enum Admission<A> {
    /// Call the inner service with this request; then hand its result to `A`.
    Call(LlmRequest, A),
    /// Answer with this result without calling the inner service (refused, or served from a
    /// cache).
    Respond(Result<LlmResponse, LlmError>),
}

/// What to do with the inner service's result once it is there (the second half of an
/// admission: label the answer, wrap its stream, store it).
pub trait OnResponse {
    /// Turns the inner result into this layer's result.
    fn on_response(self, result: Result<LlmResponse, LlmError>) -> Result<LlmResponse, LlmError>;
}

impl OnResponse for () {
    #[inline]
    fn on_response(self, result: Result<LlmResponse, LlmError>) -> Result<LlmResponse, LlmError> {
        result
    }
}

impl<A: OnResponse> OnResponse for Option<A> {
    #[inline]
    fn on_response(self, result: Result<LlmResponse, LlmError>) -> Result<LlmResponse, LlmError> {
        match self {
            Some(a) => a.on_response(result),
            None => result,
        }
    }
}

pin_project! {
    /// Decide, then call the inner service. See the [module docs](self).
    #[must_use = "futures do nothing unless polled"]
    pub struct AdmissionFuture<S, D, A>
    where
        S: Service<LlmRequest>,
    {
        #[pin]
        state: State<S, S::Future, D, A>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, D, A> {
        Deciding {
            #[pin]
            decision: D,
            svc: Option<S>,
        },
        Calling {
            // Declared first: dropped before `after`.
            #[pin]
            fut: F,
            after: Option<A>,
        },
        Ready {
            result: Option<Result<LlmResponse, LlmError>>,
        },
    }
}

impl<S, D, A> fmt::Debug for AdmissionFuture<S, D, A>
where
    S: Service<LlmRequest>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmissionFuture").finish_non_exhaustive()
    }
}

const POLLED_AFTER_COMPLETION: &str = "admission future polled after completion";

impl<S, D, A> AdmissionFuture<S, D, A>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError> + Clone,
{
    /// Waits for `decision`, then calls the instance of `svc` that reported ready (a clone takes
    /// its place in `svc`).
    pub fn decide(svc: &mut S, decision: D) -> Self {
        let clone = svc.clone();
        let ready = std::mem::replace(svc, clone);
        Self {
            state: State::Deciding {
                decision,
                svc: Some(ready),
            },
        }
    }
}

impl<S, D, A> AdmissionFuture<S, D, A>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    /// Admitted at once: calls `svc` now, then hands its result to `after`.
    pub fn call(svc: &mut S, req: LlmRequest, after: A) -> Self {
        Self {
            state: State::Calling {
                fut: svc.call(req),
                after: Some(after),
            },
        }
    }

    /// Answers with `result` without calling the inner service.
    pub fn respond(result: Result<LlmResponse, LlmError>) -> Self {
        Self {
            state: State::Ready {
                result: Some(result),
            },
        }
    }
}

impl<S, D, A> Future for AdmissionFuture<S, D, A>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
    D: Future<Output = Admission<A>>,
    A: OnResponse,
{
    type Output = Result<LlmResponse, LlmError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            match this.state.as_mut().project() {
                StateProj::Deciding { decision, svc } => {
                    let admission = ready!(decision.poll(cx));
                    let next = match (admission, svc.take()) {
                        (Admission::Call(req, after), Some(mut svc)) => State::Calling {
                            fut: svc.call(req),
                            after: Some(after),
                        },
                        (Admission::Respond(result), _) => State::Ready {
                            result: Some(result),
                        },
                        (Admission::Call(..), None) => State::Ready {
                            result: Some(Err(LlmError::internal(POLLED_AFTER_COMPLETION))),
                        },
                    };
                    this.state.set(next);
                }
                StateProj::Calling { fut, after } => {
                    let result = ready!(fut.poll(cx));
                    return Poll::Ready(match after.take() {
                        Some(after) => after.on_response(result),
                        None => Err(LlmError::internal(POLLED_AFTER_COMPLETION)),
                    });
                }
                StateProj::Ready { result } => {
                    return Poll::Ready(
                        result
                            .take()
                            .unwrap_or_else(|| Err(LlmError::internal(POLLED_AFTER_COMPLETION))),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use super::*;
    use crate::error::ErrorKind;

    fn counting(
        calls: Arc<AtomicUsize>,
    ) -> impl Service<LlmRequest, Response = LlmResponse, Error = LlmError, Future = impl Send> + Clone
    {
        tower::service_fn(move |_r: LlmRequest| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, LlmError>(LlmResponse::chat(Default::default())) }
        })
    }

    struct Label(&'static str);

    impl OnResponse for Label {
        fn on_response(
            self,
            result: Result<LlmResponse, LlmError>,
        ) -> Result<LlmResponse, LlmError> {
            result.map(|mut r| {
                r.meta
                    .headers
                    .insert("x-label", http::HeaderValue::from_static(self.0));
                r
            })
        }
    }

    #[tokio::test]
    async fn a_call_decision_calls_inner_once_and_runs_on_response() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut svc = counting(calls.clone());
        let req = LlmRequest::list_models();
        let fut = AdmissionFuture::decide(&mut svc, async move {
            tokio::task::yield_now().await;
            Admission::Call(req, Label("after"))
        });
        let resp = fut.await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(resp.meta.headers["x-label"], "after");
    }

    #[tokio::test]
    async fn a_respond_decision_never_calls_inner() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut svc = counting(calls.clone());
        let fut = AdmissionFuture::decide(&mut svc, async {
            Admission::<()>::Respond(Err(LlmError::new(ErrorKind::RateLimit, "no")))
        });
        assert_eq!(fut.await.unwrap_err().kind(), ErrorKind::RateLimit);
        fn respond<S>(
            _like: &S,
            result: Result<LlmResponse, LlmError>,
        ) -> AdmissionFuture<S, std::future::Pending<Admission<()>>, ()>
        where
            S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
        {
            AdmissionFuture::respond(result)
        }
        let fut = respond(&svc, Err(LlmError::new(ErrorKind::RateLimit, "no")));
        assert_eq!(fut.await.unwrap_err().kind(), ErrorKind::RateLimit);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_decision_dropped_before_it_ends_calls_nothing() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut svc = counting(calls.clone());
        let fut: AdmissionFuture<_, _, ()> =
            AdmissionFuture::decide(&mut svc, std::future::pending::<Admission<()>>());
        drop(fut);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
