//! Server-sent events from a provider, decoded incrementally into chat chunks.
//!
//! [`SseStream`] parses the byte stream with `eventsource-stream2` (any byte split, comments such as
//! `: keep-alive` skipped) and hands each event to an [`SseMapper`], which turns it into zero or more
//! [`ChatChunk`](crate::types::chat::ChatChunk)s. Nothing is buffered beyond the event being parsed, and that event is at most
//! [`MAX_EVENT_BYTES`]: a provider that sends a longer one (a 300 MB line, say) ends the stream
//! with an error instead of growing the gateway's memory.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use eventsource_stream2::{EventStream, Eventsource};
use futures_core::Stream;
use pin_project_lite::pin_project;

use super::ByteStream;
use crate::{
    error::{ErrorKind, LlmError},
    types::ChunkBody,
};

/// The largest streamed event (an SSE event, an NDJSON line) read from a provider: 16 MiB. A whole
/// answer may be 64 MiB; one event of a stream carries a delta, a few KiB at most in practice
/// (an image delta a few MiB).
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// The error of a streamed event over [`MAX_EVENT_BYTES`].
pub(crate) fn event_too_large(limit: usize) -> LlmError {
    LlmError::new(
        ErrorKind::InternalServer,
        format!(
            "malformed event stream from provider: one event is larger than {} MiB",
            limit >> 20
        ),
    )
}

/// Counts the bytes of the event being received (bytes since the last blank line).
#[derive(Clone, Copy, Debug)]
struct EventCounter {
    limit: usize,
    // Bytes of the event being received, and of its current line.
    event: usize,
    line: usize,
    // The previous byte was a CR (so a following LF ends no further line).
    after_cr: bool,
}

impl EventCounter {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            event: 0,
            line: 0,
            after_cr: false,
        }
    }

    /// Counts `bytes`; `false` once an event is over the limit.
    fn admit(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    if self.line == 0 {
                        // A blank line ends the event.
                        self.event = 0;
                    }
                    self.line = 0;
                    self.after_cr = b == b'\r';
                }
                _ => {
                    self.line += 1;
                    self.event += 1;
                    self.after_cr = false;
                    if self.event > self.limit {
                        return false;
                    }
                }
            }
        }
        true
    }
}

pin_project! {
    /// The provider's bytes, ended with an error once one event exceeds its limit; counted as
    /// they pass, nothing is copied.
    pub(crate) struct Bounded {
        #[pin]
        body: ByteStream,
        counter: EventCounter,
        failed: bool,
    }
}

/// The SSE events of `body`, each at most `limit` bytes (a longer one ends the stream with an
/// error): for a dialect event stream relayed event by event.
pub(crate) fn bounded_events(body: ByteStream, limit: usize) -> EventStream<Bounded> {
    Bounded {
        body,
        counter: EventCounter::new(limit),
        failed: false,
    }
    .eventsource()
}

impl Stream for Bounded {
    type Item = Result<bytes::Bytes, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        match this.body.poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                if this.counter.admit(&bytes) {
                    Poll::Ready(Some(Ok(bytes)))
                } else {
                    *this.failed = true;
                    Poll::Ready(Some(Err(event_too_large(this.counter.limit))))
                }
            }
            other => other,
        }
    }
}

/// `body`, ended with an error once one event is over `limit` bytes: for a decoder that parses
/// the events itself (a dialect's event stream) rather than through [`SseStream`].
pub(crate) fn bounded(body: ByteStream, limit: usize) -> ByteStream {
    Box::pin(Bounded {
        body,
        counter: EventCounter::new(limit),
        failed: false,
    })
}

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
        out: &mut VecDeque<ChunkBody>,
    ) -> Result<bool, LlmError>;

    /// Called once when the byte stream ends; may flush pending chunks or report a cut stream.
    fn on_end(&mut self, _out: &mut VecDeque<ChunkBody>) -> Result<(), LlmError> {
        Ok(())
    }
}

pin_project! {
    /// Chat chunks decoded from a provider's SSE body. See the [module docs](self).
    #[must_use = "streams do nothing unless polled"]
    pub struct SseStream<M> {
        #[pin]
        events: EventStream<Bounded>,
        mapper: M,
        pending: VecDeque<ChunkBody>,
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
        Self::with_limit(body, mapper, MAX_EVENT_BYTES)
    }

    /// Decodes `body` with `mapper`, with events of at most `limit` bytes.
    pub fn with_limit(body: ByteStream, mapper: M, limit: usize) -> Self {
        let body = Bounded {
            body,
            counter: EventCounter::new(limit),
            failed: false,
        };
        Self {
            events: body.eventsource(),
            mapper,
            pending: VecDeque::new(),
            finished: false,
        }
    }
}

impl<M: SseMapper> Stream for SseStream<M> {
    type Item = Result<ChunkBody, LlmError>;

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
                    // The only other error: bytes that are not UTF-8.
                    let err = e.into_transport().unwrap_or_else(|| {
                        LlmError::new(
                            ErrorKind::InternalServer,
                            "malformed event stream from provider: not UTF-8",
                        )
                    });
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use futures_util::StreamExt as _;

    use super::*;
    use crate::types::chat::ChatChunk;

    /// Records every event as one chunk whose `id` is `event|data`.
    struct Record;

    impl SseMapper for Record {
        fn on_event(
            &mut self,
            event: SseEvent,
            out: &mut VecDeque<ChunkBody>,
        ) -> Result<bool, LlmError> {
            out.push_back(
                ChatChunk {
                    id: Some(format!("{}|{}", event.event, event.data)),
                    ..ChatChunk::default()
                }
                .into(),
            );
            Ok(false)
        }
    }

    async fn events(parts: Vec<Bytes>) -> Vec<String> {
        let body: ByteStream = Box::pin(futures_util::stream::iter(
            parts.into_iter().map(Ok::<_, LlmError>),
        ));
        SseStream::new(body, Record)
            .map(|c| c.unwrap().into_typed().unwrap().id.unwrap())
            .collect()
            .await
    }

    /// Many events, each under the limit, pass whatever their total; one event over it (a long
    /// line, or many data lines without a blank line) ends the stream with an error, without
    /// buffering the rest, at any byte split.
    #[tokio::test]
    async fn one_event_over_the_limit_ends_the_stream() {
        let limit = 64;
        let run = |parts: Vec<Bytes>| async move {
            let body: ByteStream = Box::pin(futures_util::stream::iter(
                parts.into_iter().map(Ok::<_, LlmError>),
            ));
            SseStream::with_limit(body, Record, limit)
                .collect::<Vec<_>>()
                .await
        };
        let small = "data: 0123456789012345678901234567890123456789\r\n\r\n".repeat(100);
        let out = run(vec![Bytes::from(small.clone())]).await;
        assert_eq!(out.len(), 100);
        assert!(out.iter().all(Result::is_ok));
        for big in [
            format!("data: {}\n\n", "x".repeat(100)),
            "data: 0123456789\n".repeat(10),
        ] {
            let raw = format!("data: ok\n\n{big}data: never\n\n");
            for cut in [1, 7, 20, raw.len() / 2] {
                let out = run(vec![
                    Bytes::copy_from_slice(&raw.as_bytes()[..cut]),
                    Bytes::copy_from_slice(&raw.as_bytes()[cut..]),
                ])
                .await;
                let last = out.last().unwrap().as_ref().unwrap_err();
                assert!(last.message().contains("larger than"), "{last:?}");
                assert!(out.len() <= 2, "nothing after the error: {}", out.len());
            }
        }
        assert_eq!(MAX_EVENT_BYTES, 16 << 20);
    }

    /// The event-stream format (WHATWG HTML, "interpreting an event stream"), whatever the byte
    /// split: LF, CRLF and CR line ends, comments, multi-line data, a leading BOM, `event:` names,
    /// a field without a space, an event without data (not dispatched).
    #[tokio::test]
    async fn parses_the_event_stream_format_at_any_split() {
        let raw: &[u8] = b"\xEF\xBB\xBF: keep-alive\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\ndata:x\rdata: y\r\rid: 7\n\nevent: ping\ndata\n\ndata: [DONE]\n\n";
        let want = vec![
            "message_start|{\"a\":1}".to_owned(),
            "message|x\ny".to_owned(),
            "ping|".to_owned(),
            "message|[DONE]".to_owned(),
        ];
        assert_eq!(events(vec![Bytes::from_static(raw)]).await, want);
        for cut in 1..raw.len() {
            let parts = vec![
                Bytes::copy_from_slice(&raw[..cut]),
                Bytes::copy_from_slice(&raw[cut..]),
            ];
            assert_eq!(events(parts).await, want, "split at {cut}");
        }
        let bytes: Vec<Bytes> = raw.iter().map(|b| Bytes::copy_from_slice(&[*b])).collect();
        assert_eq!(events(bytes).await, want, "one byte at a time");
    }
}
