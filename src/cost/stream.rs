//! The stream observer of the cost layer: reads the usage chunk (and strips it when the client
//! did not ask for it), counts the text delivered, and logs the call once, at the end of the
//! stream, on an error, or when the stream is dropped.

use std::{
    pin::Pin,
    task::{ready, Context, Poll},
};

use futures_core::Stream;
use pin_project_lite::pin_project;

use super::{
    cut_status,
    service::{CallCtx, MetaSnapshot},
};
use crate::{
    error::LlmError,
    types::{chat::Usage, ChatStream, ChunkBody},
};

pin_project! {
    /// A chat stream that reads the usage chunk, strips it for clients that did not ask for it, and
    /// logs the call's cost once when the stream ends or is dropped.
    pub(super) struct CostStream {
        pub(super) inner: ChatStream,
        pub(super) ctx: Option<CallCtx>,
        pub(super) meta: MetaSnapshot,
        pub(super) usage: Option<Usage>,
        // Bytes of generated text passed on so far (`Relayed::delta_text_bytes`).
        pub(super) delivered: usize,
        pub(super) strip_usage: bool,
    }

    impl PinnedDrop for CostStream {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(ctx) = this.ctx.take() {
                // Dropped before its end: paid for what it delivered.
                let usage = ctx.cut_usage(this.usage.as_ref(), *this.delivered);
                ctx.finish(Some(&usage), this.meta, cut_status());
            }
        }
    }
}

impl Stream for CostStream {
    type Item = Result<ChunkBody, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        loop {
            match ready!(this.inner.as_mut().poll_next(cx)) {
                Some(Ok(mut chunk)) => {
                    if this.meta.model.is_none() {
                        this.meta.model = chunk.model().map(str::to_owned);
                    }
                    if let Some(u) = chunk.usage() {
                        *this.usage = Some(u.clone());
                        if *this.strip_usage {
                            if !chunk.has_choices() {
                                continue;
                            }
                            // Usage on a chunk that also carries choices: remove just the usage.
                            match chunk.typed_mut() {
                                Ok(c) => c.usage = None,
                                Err(e) => return Poll::Ready(Some(Err(e))),
                            }
                        }
                    }
                    *this.delivered = this.delivered.saturating_add(chunk.delta_text_bytes());
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Some(Err(e)) => {
                    if let Some(ctx) = this.ctx.take() {
                        // Failed mid-stream: paid for what it delivered, as a cut stream is.
                        let usage = ctx.cut_usage(this.usage.as_ref(), *this.delivered);
                        ctx.finish(Some(&usage), this.meta, "failure");
                    }
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    if let Some(ctx) = this.ctx.take() {
                        ctx.finish(this.usage.as_ref(), this.meta, "success");
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}
