//! The response body of [`OpenAiServer`](super::OpenAiServer): a complete buffer, or SSE frames
//! written as chunks arrive.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt as _};

use std::sync::Arc;

use super::access::{AccessLog, Outcome};
use crate::{
    error::{BoxError, LlmError},
    types::{ChatStream, ChunkBody, EventStream, ResponseMeta, StreamEvent, TokenUsage},
};

/// The body [`OpenAiServer`](super::OpenAiServer) answers with: complete JSON, or SSE.
pub struct ServerBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Sse(SseBody),
    Events(EventsBody),
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
            Kind::Events(_) => f.write_str("ServerBody::Events(..)"),
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
                log: None,
            }),
        }
    }

    /// A body over a dialect's event stream; `first` is an event already taken from it, and
    /// `error_frame` writes an error that ends the stream in the route's dialect.
    #[must_use]
    pub(crate) fn events(
        first: Option<StreamEvent>,
        stream: EventStream,
        error_frame: ErrorFrame,
    ) -> Self {
        Self {
            kind: Kind::Events(EventsBody {
                first,
                stream,
                error_frame,
                done: false,
                buf: BytesMut::new(),
                log: None,
            }),
        }
    }

    /// Logs the stream's access-log line when it ends, fails or is dropped (a streamed body
    /// only; any other body is returned as it is).
    #[must_use]
    pub(crate) fn with_access_log(mut self, log: Box<AccessLog>, meta: &ResponseMeta) -> Self {
        let slot = match &mut self.kind {
            Kind::Sse(sse) => &mut sse.log,
            Kind::Events(ev) => &mut ev.log,
            Kind::Full(_) | Kind::Boxed(_) => return self,
        };
        *slot = Some(Box::new(StreamLog {
            log,
            model_group: meta.model_group.clone(),
            deployment: meta.deployment_id.clone(),
            cache_hit: meta.cache_hit,
            usage: meta.usage.as_ref().map(TokenUsage::from),
            failed: false,
        }));
        self
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
            Kind::Events(inner) => inner.poll_frame(cx).map_err(|never| match never {}),
            Kind::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(data) => data.is_none(),
            Kind::Sse(inner) => matches!(inner.state, SseState::Done),
            Kind::Events(inner) => inner.done,
            Kind::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Sse(_) | Kind::Events(_) => SizeHint::default(),
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
    log: Option<Box<StreamLog>>,
}

/// A stream's access-log line, written once: at its end, or when the body is dropped before.
struct StreamLog {
    log: Box<AccessLog>,
    model_group: Option<Arc<str>>,
    deployment: Option<Arc<str>>,
    cache_hit: bool,
    /// The last usage a chunk or event carried (with `stream_options.include_usage`).
    usage: Option<TokenUsage>,
    failed: bool,
}

impl StreamLog {
    fn emit(&self, stream: &'static str) {
        // The cost layer's totals (it also sees the usage chunk it strips for the client), else
        // the last usage a chunk carried here.
        let (usage, cost) = match self.log.stream_totals() {
            Some((usage, cost)) => (usage.or(self.usage), Some(cost)),
            None => (self.usage, None),
        };
        self.log.emit(&Outcome {
            status: 200,
            model_group: self.model_group.as_deref(),
            deployment: self.deployment.as_deref(),
            usage,
            cost,
            cache_hit: Some(self.cache_hit),
            stream: Some(stream),
        });
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            // Drop the stream first: the cost layer's stream reports its totals when dropped.
            self.stream = Box::pin(futures_util::stream::empty());
            log.emit("client_closed");
        }
    }
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
    #[inline]
    fn note_usage(&mut self, chunk: &ChunkBody) {
        if let Some(log) = &mut self.log {
            if let Some(u) = chunk.usage() {
                log.usage = Some(TokenUsage::from(u));
            }
        }
    }

    /// The stream is over: its log line, once.
    fn finish(&mut self) {
        if let Some(log) = self.log.take() {
            log.emit(if log.failed { "error" } else { "complete" });
        }
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        let this = self;
        match this.state {
            SseState::Done => return Poll::Ready(None),
            SseState::SendDone => {
                this.state = SseState::Done;
                this.finish();
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(DONE_FRAME)))));
            }
            SseState::Streaming => {}
        }
        if let Some(chunk) = this.first.take() {
            this.note_usage(&chunk);
            return Poll::Ready(Some(Ok(Frame::data(encode_chunk(&mut this.buf, &chunk)))));
        }
        match this.stream.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                this.note_usage(&chunk);
                Poll::Ready(Some(Ok(Frame::data(encode_chunk(&mut this.buf, &chunk)))))
            }
            Poll::Ready(Some(Err(err))) => {
                tracing::warn!(kind = err.kind().as_str(), error = %err, "stream ended with an error");
                this.state = SseState::SendDone;
                if let Some(log) = &mut this.log {
                    log.failed = true;
                }
                Poll::Ready(Some(Ok(Frame::data(encode_error(&mut this.buf, &err)))))
            }
            Poll::Ready(None) => {
                this.state = SseState::Done;
                this.finish();
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(DONE_FRAME)))))
            }
        }
    }
}

/// Writes an error as the last frame of a dialect event stream (the route's dialect decides the
/// frame: Anthropic's `event: error`, say).
pub(crate) type ErrorFrame = fn(&mut BytesMut, &LlmError) -> Bytes;

/// A dialect's event stream, each event's frame written as it is (no `[DONE]`: the dialect
/// says where it ends). An error mid-stream is written with the route's [`ErrorFrame`] and ends
/// the body. Dropping the body drops the upstream stream, which cancels the provider call.
struct EventsBody {
    first: Option<StreamEvent>,
    stream: EventStream,
    error_frame: ErrorFrame,
    done: bool,
    buf: BytesMut,
    log: Option<Box<StreamLog>>,
}

impl EventsBody {
    fn note(&mut self, event: &StreamEvent) {
        if let (Some(log), Some(u)) = (&mut self.log, event.usage) {
            log.usage = Some(u);
        }
    }

    fn finish(&mut self) {
        if let Some(log) = self.log.take() {
            log.emit(if log.failed { "error" } else { "complete" });
        }
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(event) = self.first.take() {
            self.note(&event);
            return Poll::Ready(Some(Ok(Frame::data(event.frame))));
        }
        match self.stream.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(event))) => {
                self.note(&event);
                Poll::Ready(Some(Ok(Frame::data(event.frame))))
            }
            Poll::Ready(Some(Err(err))) => {
                tracing::warn!(kind = err.kind().as_str(), error = %err, "stream ended with an error");
                self.done = true;
                if let Some(log) = &mut self.log {
                    log.failed = true;
                }
                self.finish();
                let frame = (self.error_frame)(&mut self.buf, &err);
                Poll::Ready(Some(Ok(Frame::data(frame))))
            }
            Poll::Ready(None) => {
                self.done = true;
                self.finish();
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for EventsBody {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            // Drop the stream first: the cost layer's stream reports its totals when dropped.
            self.stream = Box::pin(futures_util::stream::empty());
            log.emit("client_closed");
        }
    }
}
