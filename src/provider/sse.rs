//! Server-sent events from a provider, decoded incrementally into chat chunks.
//!
//! [`SseStream`] parses the byte stream with `eventsource-stream` (any byte split, comments such as
//! `: keep-alive` skipped) and hands each event to an [`SseMapper`], which turns it into zero or more
//! [`ChatChunk`]s. Nothing is buffered beyond the event being parsed.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use eventsource_stream::{EventStream, Eventsource};
use futures_core::Stream;
use pin_project_lite::pin_project;

use super::ByteStream;
use crate::{
    error::{ErrorKind, LlmError},
    types::chat::ChatChunk,
};

/// One server-sent event.
#[derive(Clone, Debug, Default)]
pub struct SseEvent {
    /// The `event:` field (empty for the default `message`).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Turns a provider's events into chat chunks, keeping whatever state the translation needs.
pub trait SseMapper: Send + 'static {
    /// Handles one event: pushes the chunks it produces into `out`; returns `Ok(true)` once the
    /// provider has said the stream is complete (e.g. `data: [DONE]`).
    fn on_event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<bool, LlmError>;

    /// Called once when the byte stream ends; may flush pending chunks or report a cut stream.
    fn on_end(&mut self, _out: &mut VecDeque<ChatChunk>) -> Result<(), LlmError> {
        Ok(())
    }
}

pin_project! {
    /// Chat chunks decoded from a provider's SSE body. See the [module docs](self).
    #[must_use = "streams do nothing unless polled"]
    pub struct SseStream<M> {
        #[pin]
        events: EventStream<ByteStream>,
        mapper: M,
        pending: VecDeque<ChatChunk>,
        finished: bool,
    }
}

impl<M> std::fmt::Debug for SseStream<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream")
            .field("pending", &self.pending.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<M: SseMapper> SseStream<M> {
    /// Decodes `body` with `mapper`.
    pub fn new(body: ByteStream, mapper: M) -> Self {
        Self {
            events: body.eventsource(),
            mapper,
            pending: VecDeque::new(),
            finished: false,
        }
    }
}

impl<M: SseMapper> Stream for SseStream<M> {
    type Item = Result<ChatChunk, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(chunk) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(chunk)));
            }
            if *this.finished {
                return Poll::Ready(None);
            }
            match this.events.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(ev))) => {
                    let ev = SseEvent {
                        event: ev.event,
                        data: ev.data,
                    };
                    match this.mapper.on_event(ev, this.pending) {
                        Ok(done) => *this.finished = done,
                        Err(e) => {
                            *this.finished = true;
                            this.pending.clear();
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    *this.finished = true;
                    let err = match e {
                        eventsource_stream::EventStreamError::Transport(e) => e,
                        other => LlmError::new(
                            ErrorKind::InternalServer,
                            format!("malformed event stream from provider: {other}"),
                        ),
                    };
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(None) => {
                    *this.finished = true;
                    if let Err(e) = this.mapper.on_end(this.pending) {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
        }
    }
}
