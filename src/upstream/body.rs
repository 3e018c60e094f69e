//! [`UpstreamBody`]: the body of a response from [`HttpClient`](super::HttpClient).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::h1_pool::Return;

pin_project_lite::pin_project! {
    /// The body of a response from [`HttpClient`](super::HttpClient): hyper's, and for a pooled
    /// plain-HTTP connection the way back to the pool once the body has ended.
    pub struct UpstreamBody {
        #[pin]
        inner: Inner,
    }
}

pin_project_lite::pin_project! {
    #[project = InnerProj]
    enum Inner {
        Plain { #[pin] body: Incoming },
        Pooled { #[pin] body: Incoming, back: Option<Return> },
    }
}

impl UpstreamBody {
    /// A body with no connection to return (hyper-util's pool manages its own).
    pub(crate) fn plain(body: Incoming) -> Self {
        Self {
            inner: Inner::Plain { body },
        }
    }

    /// A body whose connection goes back to its pool through `back` once the body has ended.
    pub(crate) fn pooled(body: Incoming, back: Option<Return>) -> Self {
        Self {
            inner: Inner::Pooled { body, back },
        }
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody").finish_non_exhaustive()
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.project().inner.project() {
            InnerProj::Plain { body } => body.poll_frame(cx),
            InnerProj::Pooled { mut body, back } => {
                let frame = std::task::ready!(body.as_mut().poll_frame(cx));
                match &frame {
                    // The whole response is read: the connection can take the next request.
                    None => drop(back.take()),
                    Some(Ok(_)) if body.is_end_stream() => drop(back.take()),
                    Some(Ok(_)) => {}
                    Some(Err(_)) => {
                        if let Some(back) = back.take() {
                            back.discard();
                        }
                    }
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Plain { body } | Inner::Pooled { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Plain { body } | Inner::Pooled { body, .. } => body.size_hint(),
        }
    }
}
