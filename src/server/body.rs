//! The response body of [`OpenAiServer`](super::OpenAiServer): a complete buffer, or SSE frames
//! written as chunks arrive.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt as _};

use crate::{
    error::{BoxError, LlmError},
    types::{ChatStream, ChunkBody},
};

/// The body [`OpenAiServer`](super::OpenAiServer) answers with: complete JSON, or SSE.
pub struct ServerBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Sse(SseBody),
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

impl std::fmt::Debug for ServerBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Full(data) => f
                .debug_struct("ServerBody::Full")
                .field("len", &data.as_ref().map(Bytes::len))
                .finish(),
            Kind::Sse(_) => f.write_str("ServerBody::Sse(..)"),
            Kind::Boxed(_) => f.write_str("ServerBody::Boxed(..)"),
        }
    }
}

impl ServerBody {
    /// A complete body.
    #[must_use]
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        Self {
            kind: Kind::Full((!data.is_empty()).then_some(data)),
        }
    }

    /// Any other body (from a fallback service such as an axum router).
    pub fn boxed<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self {
            kind: Kind::Boxed(body.map_err(Into::into).boxed_unsync()),
        }
    }

    /// An SSE body over a chat stream; `first` is a chunk already taken from it.
    #[must_use]
    pub fn sse(first: Option<ChunkBody>, stream: ChatStream) -> Self {
        Self {
            kind: Kind::Sse(SseBody {
                first: first.map(Box::new),
                stream,
                state: SseState::Streaming,
                buf: BytesMut::with_capacity(1024),
            }),
        }
    }
}

impl http_body::Body for ServerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Sse(inner) => inner.poll_frame(cx).map_err(|never| match never {}),
            Kind::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(data) => data.is_none(),
            Kind::Sse(inner) => matches!(inner.state, SseState::Done),
            Kind::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Sse(_) => SizeHint::default(),
            Kind::Boxed(body) => body.size_hint(),
        }
    }
}

enum SseState {
    Streaming,
    SendDone,
    Done,
}

/// Chat chunks as `data: {json}\n\n` frames, one frame per chunk, ending with `data: [DONE]`.
/// An error mid-stream is sent as `data: {"error": {...}}` before `[DONE]`. Dropping the body
/// (the client went away) drops the upstream stream, which cancels the provider call.
struct SseBody {
    first: Option<Box<ChunkBody>>,
    stream: ChatStream,
    state: SseState,
    buf: BytesMut,
}

const DONE_FRAME: &[u8] = b"data: [DONE]\n\n";

/// Writes one chunk as an SSE `data:` frame into `buf` and returns it (a provider's OpenAI-format
/// chunk as its own bytes, any other serialized).
pub fn encode_chunk(buf: &mut BytesMut, chunk: &ChunkBody) -> Bytes {
    buf.reserve(chunk.wire().map_or(512, |w| w.len() + 8));
    buf.put_slice(b"data: ");
    chunk.write_json(buf);
    buf.put_slice(b"\n\n");
    buf.split().freeze()
}

/// Writes an error as an SSE `data: {"error": {...}}` frame.
pub fn encode_error(buf: &mut BytesMut, err: &LlmError) -> Bytes {
    buf.put_slice(b"data: ");
    buf.put_slice(&err.to_json());
    buf.put_slice(b"\n\n");
    buf.split().freeze()
}

impl SseBody {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        let this = self;
        match this.state {
            SseState::Done => return Poll::Ready(None),
            SseState::SendDone => {
                this.state = SseState::Done;
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(DONE_FRAME)))));
            }
            SseState::Streaming => {}
        }
        if let Some(chunk) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(encode_chunk(&mut this.buf, &chunk)))));
        }
        match this.stream.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                Poll::Ready(Some(Ok(Frame::data(encode_chunk(&mut this.buf, &chunk)))))
            }
            Poll::Ready(Some(Err(err))) => {
                tracing::warn!(kind = err.kind().as_str(), error = %err, "stream ended with an error");
                this.state = SseState::SendDone;
                Poll::Ready(Some(Ok(Frame::data(encode_error(&mut this.buf, &err)))))
            }
            Poll::Ready(None) => {
                this.state = SseState::Done;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(DONE_FRAME)))))
            }
        }
    }
}
