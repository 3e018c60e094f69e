//! [`FirstChunk`]: hands a streamed answer on only once its first chunk arrived.
//!
//! A stream whose first item is an error resolves the call as that error, so that the layers above
//! (health counts it, [retry](crate::retry) and [fallback](crate::fallback) act on it) see a failed
//! call rather than a stream that fails after the client got its headers: nothing has reached the
//! client yet. A stream that ends without any item resolves as an empty stream. Complete answers
//! pass through untouched.
//!
//! Place: in each deployment's stack, below [`Health`](crate::health::Health) and above the
//! [timeout](crate::timeout) layer (whose first-chunk deadline then bounds the wait). It is its own
//! layer so that retry's "a stream fails before its first byte like a call does" holds in any
//! stack, with or without health tracking.
//!
//! ```
//! use futures_util::stream;
//! use llmgate::{first_chunk::FirstChunkLayer, ErrorKind, LlmError, LlmRequest, LlmResponse};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(FirstChunkLayer::new())
//!     .service_fn(|_req: LlmRequest| async {
//!         // A provider that accepted the call, then failed before the first token.
//!         let failing = stream::iter([Err(LlmError::new(ErrorKind::ServiceUnavailable, "overloaded"))]);
//!         Ok::<_, LlmError>(LlmResponse::stream(Box::pin(failing)))
//!     });
//! let err = svc.oneshot(LlmRequest::list_models()).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::ServiceUnavailable);
//! # }
//! ```
//!
//! Extensions: none. Errors produced: none (the stream's first error is returned as the call's).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use futures_core::Stream;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    error::LlmError,
    types::{ChunkBody, LlmRequest, LlmResponse, ResponseBody, StreamEvent},
};

/// Adds [`FirstChunk`]. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct FirstChunkLayer;

impl FirstChunkLayer {
    /// The layer.
    pub const fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for FirstChunkLayer {
    type Service = FirstChunk<S>;

    fn layer(&self, inner: S) -> FirstChunk<S> {
        FirstChunk { inner }
    }
}

/// Resolves a streamed answer once its first chunk arrived. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct FirstChunk<S> {
    inner: S,
}

impl<S> FirstChunk<S> {
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

impl<S> Service<LlmRequest> for FirstChunk<S>
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
        ResponseFuture {
            state: State::Calling {
                fut: self.inner.call(req),
            },
        }
    }
}

pin_project! {
    /// The response future of [`FirstChunk`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] fut: F },
        Waiting { resp: Option<LlmResponse> },
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("first_chunk::ResponseFuture")
            .finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<LlmResponse, LlmError>>,
{
    type Output = Result<LlmResponse, LlmError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { fut } => match ready!(fut.poll(cx)) {
                    Ok(resp) if resp.body.is_stream() => {
                        this.state.set(State::Waiting { resp: Some(resp) });
                    }
                    other => return Poll::Ready(other),
                },
                StateProj::Waiting { resp } => {
                    let Some(r) = resp.as_mut() else {
                        return Poll::Ready(Err(LlmError::internal(
                            "first-chunk future polled after completion",
                        )));
                    };
                    let first = match &mut r.body {
                        ResponseBody::Stream(s) => {
                            ready!(s.as_mut().poll_next(cx)).map(|i| i.map(First::Chunk))
                        }
                        ResponseBody::Events(s) => {
                            ready!(s.as_mut().poll_next(cx)).map(|i| i.map(First::Event))
                        }
                        _ => {
                            return Poll::Ready(Err(LlmError::internal(
                                "first-chunk future lost its stream",
                            )))
                        }
                    };
                    let Some(r) = resp.take() else {
                        return Poll::Ready(Err(LlmError::internal(
                            "first-chunk future lost its stream",
                        )));
                    };
                    return Poll::Ready(match first {
                        Some(Err(e)) => Err(e),
                        Some(Ok(First::Chunk(chunk))) => Ok(r.map_stream(|inner| {
                            Box::pin(Replay {
                                first: Some(chunk),
                                inner,
                            })
                        })),
                        Some(Ok(First::Event(event))) => Ok(r.map_events(|inner| {
                            Box::pin(Replay {
                                first: Some(event),
                                inner,
                            })
                        })),
                        // Ended before any chunk: the (finished) stream as it is.
                        None => Ok(r),
                    });
                }
            }
        }
    }
}

/// The first item of either kind of stream.
enum First {
    Chunk(ChunkBody),
    Event(StreamEvent),
}

/// A boxed stream of `T`s: a [`ChatStream`](crate::types::ChatStream) or an
/// [`EventStream`](crate::types::EventStream).
type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, LlmError>> + Send + 'static>>;

pin_project! {
    /// A stream with its first item put back in front.
    struct Replay<T> {
        first: Option<T>,
        inner: Boxed<T>,
    }
}

impl<T> Stream for Replay<T> {
    type Item = Result<T, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if let Some(chunk) = this.first.take() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        this.inner.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self.inner.size_hint();
        let extra = usize::from(self.first.is_some());
        (
            lo.saturating_add(extra),
            hi.and_then(|h| h.checked_add(extra)),
        )
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{stream, StreamExt as _};
    use tower::{ServiceBuilder, ServiceExt as _};

    use super::*;
    use crate::{
        types::chat::{ChatChunk, ChatResponse},
        ErrorKind,
    };

    fn chunk(id: &str) -> ChunkBody {
        ChunkBody::from(ChatChunk {
            id: Some(id.into()),
            ..ChatChunk::default()
        })
    }

    async fn answer(items: Vec<Result<ChunkBody, LlmError>>) -> Result<LlmResponse, LlmError> {
        let items = std::sync::Mutex::new(Some(items));
        ServiceBuilder::new()
            .layer(FirstChunkLayer::new())
            .service_fn(move |_req: LlmRequest| {
                let items = items.lock().unwrap().take().unwrap_or_default();
                async move { Ok::<_, LlmError>(LlmResponse::stream(Box::pin(stream::iter(items)))) }
            })
            .oneshot(LlmRequest::list_models())
            .await
    }

    #[tokio::test]
    async fn a_first_error_is_the_calls_error() {
        let err = answer(vec![Err(LlmError::new(ErrorKind::RateLimit, "slow down"))])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimit);
    }

    #[tokio::test]
    async fn the_first_chunk_is_put_back_and_later_errors_stay_in_the_stream() {
        let resp = answer(vec![
            Ok(chunk("a")),
            Ok(chunk("b")),
            Err(LlmError::new(ErrorKind::InternalServer, "cut")),
        ])
        .await
        .unwrap();
        let ResponseBody::Stream(s) = resp.body else {
            panic!("not a stream")
        };
        let items: Vec<_> = s.collect().await;
        assert_eq!(items.len(), 3);
        assert!(items[2].is_err());
        let ids: Vec<String> = items
            .into_iter()
            .take(2)
            .filter_map(Result::ok)
            .filter_map(|mut c| c.typed().ok().and_then(|t| t.id.clone()))
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[tokio::test]
    async fn an_empty_stream_and_a_complete_answer_pass() {
        let resp = answer(Vec::new()).await.unwrap();
        assert!(resp.body.is_stream());
        let whole = ServiceBuilder::new()
            .layer(FirstChunkLayer::new())
            .service_fn(|_req: LlmRequest| async {
                Ok::<_, LlmError>(LlmResponse::chat(ChatResponse::default()))
            })
            .oneshot(LlmRequest::list_models())
            .await
            .unwrap();
        assert!(!whole.body.is_stream());
    }
}
