//! Storing a streamed answer: [`CacheFillStream`] watches the stream on its way to the client
//! (an [`Observe`] with a [`Fill`] observer) and stores it once it ended well.

use std::{
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures_core::Stream;
use pin_project_lite::pin_project;

use super::{
    entry::{self, Assembler},
    stats::{Shared, WriteOp},
};
use crate::{
    error::LlmError,
    observe::{End, Flow, Observe, Observer},
    types::{chat::ChatResponse, ChatStream, ChunkBody},
};

/// Assembles a streamed answer and stores it when the stream completes.
pub(super) struct Fill {
    /// `None` once the answer is known not to be stored (a chunk that does not parse, too big).
    asm: Option<Assembler>,
    key: Arc<str>,
    ttl: Duration,
    max: usize,
    shared: Arc<Shared>,
    clock: crate::clock::Clock,
}

impl Fill {
    pub(super) fn new(
        key: Arc<str>,
        ttl: Duration,
        max: usize,
        shared: Arc<Shared>,
        clock: crate::clock::Clock,
    ) -> Self {
        Self {
            asm: Some(Assembler::default()),
            key,
            ttl,
            max,
            shared,
            clock,
        }
    }
}

impl Observer for Fill {
    fn chunk(&mut self, chunk: &mut ChunkBody) -> Flow {
        if let Some(asm) = &mut self.asm {
            // The entry needs the typed chunk; a chunk that does not parse is relayed, and this
            // answer is not stored.
            match chunk.typed() {
                Ok(c) => {
                    asm.push(c);
                    if asm.size() > self.max {
                        self.asm = None;
                    }
                }
                Err(_) => self.asm = None,
            }
        }
        Flow::Pass
    }

    fn end(self, end: End) {
        // A stream that fails or is cut is not stored.
        if end != End::Complete {
            return;
        }
        let Some(asm) = self.asm else {
            return;
        };
        let resp: ChatResponse = asm.finish();
        // A stream that ended without any finish reason was cut short upstream.
        if !resp.choices.iter().any(|c| c.finish_reason.is_some()) {
            return;
        }
        if let Some(bytes) = entry::encode_chat(&resp, self.ttl, entry::now_ms(&self.clock))
            .filter(|b| b.len() <= self.max)
        {
            self.shared
                .write(WriteOp::Set(vec![(self.key, bytes, self.ttl)]));
        }
    }
}

pin_project! {
    /// Observes a streamed answer on its way to the client and stores it once the stream ended
    /// well. Each chunk is passed on as it arrives (the client never waits for the fill); a
    /// stream that fails, is cut, or grows past the entry limit is not stored.
    #[must_use = "streams do nothing unless polled"]
    pub struct CacheFillStream {
        #[pin]
        inner: Observe<ChatStream, Fill>,
    }
}

impl CacheFillStream {
    pub(super) fn new(inner: ChatStream, fill: Fill) -> Self {
        Self {
            inner: Observe::new(inner, fill),
        }
    }
}

impl fmt::Debug for CacheFillStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheFillStream")
            .field("observing", &self.inner.is_observing())
            .finish_non_exhaustive()
    }
}

impl Stream for CacheFillStream {
    type Item = Result<ChunkBody, LlmError>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().inner.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}
