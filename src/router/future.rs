//! [`ResponseFuture`]: the router's call once a deployment is picked (fast path), or the boxed
//! slow path (waiting for a permit, Redis-shared state).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use pin_project_lite::pin_project;
use tower_service::Service;

use super::{
    table::Inner,
    track::{finish, Tracker},
    DeploymentService, RouteLog,
};
use crate::{
    error::LlmError,
    types::{LlmRequest, LlmResponse, Operation},
};

type BoxFuture = Pin<Box<dyn Future<Output = Result<LlmResponse, LlmError>> + Send>>;

pin_project! {
    /// The response future of [`Router`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture {
        #[pin]
        pub(super) state: RouteState,
    }
}

pin_project! {
    #[project = RouteProj]
    pub(super) enum RouteState {
        Done { result: Option<Result<LlmResponse, LlmError>> },
        Ready {
            svc: DeploymentService,
            req: Option<LlmRequest>,
            call: Option<Call>,
        },
        Calling {
            #[pin]
            fut: <DeploymentService as Service<LlmRequest>>::Future,
            call: Option<Call>,
        },
        Slow { fut: BoxFuture },
    }
}

/// What the fast path needs to finish a call.
pub(super) struct Call {
    pub(super) inner: Arc<Inner>,
    /// The request's body (an `Arc`), for the model group it asked for.
    pub(super) op: Operation,
    pub(super) log: Option<RouteLog>,
    pub(super) tracker: Tracker,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("router::ResponseFuture")
            .finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<LlmResponse, LlmError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                RouteProj::Done { result } => {
                    return Poll::Ready(result.take().unwrap_or_else(|| {
                        Err(LlmError::internal("router future polled after completion"))
                    }));
                }
                RouteProj::Slow { fut } => return fut.as_mut().poll(cx),
                RouteProj::Ready { svc, req, call } => {
                    if let Err(e) = ready!(svc.poll_ready(cx)) {
                        let result = match call.take() {
                            Some(c) => {
                                finish(&c.inner, c.op.model(), c.log.as_ref(), c.tracker, Err(e))
                            }
                            None => Err(e),
                        };
                        this.state.set(RouteState::Done {
                            result: Some(result),
                        });
                        continue;
                    }
                    let Some(r) = req.take() else {
                        return Poll::Ready(Err(LlmError::internal(
                            "router future lost its request",
                        )));
                    };
                    let fut = svc.call(r);
                    let call = call.take();
                    this.state.set(RouteState::Calling { fut, call });
                }
                RouteProj::Calling { fut, call } => {
                    let result = ready!(fut.poll(cx));
                    return Poll::Ready(match call.take() {
                        Some(c) => {
                            finish(&c.inner, c.op.model(), c.log.as_ref(), c.tracker, result)
                        }
                        None => result,
                    });
                }
            }
        }
    }
}
