//! [`UpstreamBody`]: the body of a response from [`HttpClient`](super::HttpClient);
//! [`RequestBody`]: the body of a request it sends.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt as _, Full};
use hyper::body::Incoming;

use crate::error::BoxError;

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

/// The body of a request [`HttpClient`](super::HttpClient) sends: complete bytes (every provider
/// call the gateway encodes itself), or a stream of frames (a pass-through client's upload, sent
/// on as it arrives).
///
/// Complete bytes cost what `Full<Bytes>` costs: one enum check per frame. A stream is polled only
/// as fast as the upstream connection takes it, so a slow upstream slows the client's upload
/// (backpressure) instead of filling memory.
pub struct RequestBody {
    inner: RequestInner,
}

enum RequestInner {
    Full(Full<Bytes>),
    Streamed {
        body: UnsyncBoxBody<Bytes, BoxError>,
        /// The exact length, when the client declared it (sent on as `Content-Length`).
        len: Option<u64>,
    },
}

impl RequestBody {
    /// A complete body.
    #[must_use]
    pub fn full(data: Bytes) -> Self {
        Self {
            inner: RequestInner::Full(Full::new(data)),
        }
    }

    /// A body that streams `body`'s frames; `len` is its exact length when known.
    pub fn streamed<B>(body: B, len: Option<u64>) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self {
            inner: RequestInner::Streamed {
                body: body.map_err(Into::into).boxed_unsync(),
                len,
            },
        }
    }

    /// Whether the body streams.
    #[must_use]
    pub fn is_streamed(&self) -> bool {
        matches!(self.inner, RequestInner::Streamed { .. })
    }
}

impl From<Full<Bytes>> for RequestBody {
    #[inline]
    fn from(full: Full<Bytes>) -> Self {
        Self {
            inner: RequestInner::Full(full),
        }
    }
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            RequestInner::Full(full) => f
                .debug_struct("RequestBody::Full")
                .field("len", &full.size_hint().exact())
                .finish(),
            RequestInner::Streamed { len, .. } => f
                .debug_struct("RequestBody::Streamed")
                .field("len", len)
                .finish(),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().inner {
            RequestInner::Full(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never| match never {}),
            RequestInner::Streamed { body, .. } => Pin::new(body).poll_frame(cx),
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match &self.inner {
            RequestInner::Full(full) => full.is_end_stream(),
            RequestInner::Streamed { body, .. } => body.is_end_stream(),
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            RequestInner::Full(full) => full.size_hint(),
            RequestInner::Streamed { body, len } => match len {
                Some(n) => SizeHint::with_exact(*n),
                None => body.size_hint(),
            },
        }
    }
}

/// A streamed request body riding on a `http::Request<Full<Bytes>>` as a request extension.
///
/// The client services the gateway is generic over ([`UpstreamClient`](super::UpstreamClient))
/// take `http::Request<Full<Bytes>>`, so every provider encoder and test double stays as it is;
/// the one caller that streams (a pass-through upload) leaves the `Full` body empty and puts its
/// stream here. [`HttpClient`](super::HttpClient) takes it out and sends it as the body. The
/// stream is taken once: a second send of the same request (which a pass-through never makes)
/// finds it gone and fails rather than send an empty body.
#[derive(Clone)]
pub struct StreamedBody(Arc<Mutex<Option<RequestBody>>>);

impl StreamedBody {
    /// An extension holding `body`.
    #[must_use]
    pub fn new(body: RequestBody) -> Self {
        Self(Arc::new(Mutex::new(Some(body))))
    }

    /// The body, the first time; `None` after.
    #[must_use]
    pub fn take(&self) -> Option<RequestBody> {
        // A poisoned lock only means another taker panicked: the slot is still an `Option`.
        match self.0.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }
}

impl std::fmt::Debug for StreamedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamedBody(..)")
    }
}

/// The body `req` is sent with: its bytes, or the stream its [`StreamedBody`] extension holds.
///
/// # Errors
///
/// A request that carries both bytes and a stream, or whose stream was already taken (sent once
/// before), is refused rather than sent with part of its body.
pub(crate) fn request_body(
    req: http::Request<Full<Bytes>>,
) -> Result<http::Request<RequestBody>, BoxError> {
    let (mut parts, full) = req.into_parts();
    let Some(streamed) = parts.extensions.remove::<StreamedBody>() else {
        return Ok(http::Request::from_parts(parts, RequestBody::from(full)));
    };
    if full.size_hint().exact() != Some(0) {
        return Err("a request carries both a body and a streamed body".into());
    }
    let body = streamed
        .take()
        .ok_or("the streamed request body was already sent once; it cannot be sent again")?;
    Ok(http::Request::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_bytes_and_streams_are_sent_whole() {
        let b = RequestBody::from(Full::new(Bytes::from_static(b"hello")));
        assert!(!b.is_streamed());
        assert_eq!(b.size_hint().exact(), Some(5));
        assert_eq!(&b.collect().await.unwrap().to_bytes()[..], b"hello");
        let empty = RequestBody::from(Full::new(Bytes::new()));
        assert!(empty.is_end_stream());

        let chunks = futures_util::stream::iter(
            [&b"ab"[..], b"cd", b"e"].map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from(c)))),
        );
        let s = RequestBody::streamed(http_body_util::StreamBody::new(chunks), Some(5));
        assert!(s.is_streamed());
        assert_eq!(s.size_hint().exact(), Some(5));
        assert_eq!(&s.collect().await.unwrap().to_bytes()[..], b"abcde");
    }

    #[tokio::test]
    async fn a_streamed_extension_is_taken_once_and_never_mixed_with_bytes() {
        let chunks =
            futures_util::stream::iter([Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"up")))]);
        let ext = StreamedBody::new(RequestBody::streamed(
            http_body_util::StreamBody::new(chunks),
            None,
        ));
        let mut req = http::Request::new(Full::new(Bytes::new()));
        req.extensions_mut().insert(ext.clone());
        let again = req.extensions().clone();
        let sent = request_body(req).unwrap();
        assert!(sent.body().is_streamed());
        assert_eq!(
            &sent.into_body().collect().await.unwrap().to_bytes()[..],
            b"up"
        );
        // The same stream a second time: refused, not sent empty.
        let mut req = http::Request::new(Full::new(Bytes::new()));
        *req.extensions_mut() = again;
        assert!(request_body(req).is_err());
        // Bytes and a stream together: refused.
        let mut req = http::Request::new(Full::new(Bytes::from_static(b"x")));
        req.extensions_mut()
            .insert(StreamedBody::new(RequestBody::full(Bytes::from_static(
                b"y",
            ))));
        assert!(request_body(req).is_err());
        // No extension: the bytes.
        let plain = request_body(http::Request::new(Full::new(Bytes::from_static(b"z")))).unwrap();
        assert!(!plain.body().is_streamed());
    }
}
