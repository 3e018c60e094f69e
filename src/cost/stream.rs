//! The stream observer of the cost layer: reads the usage chunk (and strips it when the client
//! did not ask for it), counts the text delivered, and logs the call once, at the end of the
//! stream, on an error, or when the stream is dropped. It runs on the shared stream driver
//! ([`Observe`](crate::observe::Observe)), which calls [`Observer::end`] exactly once.

use super::{
    cut_status,
    service::{CallCtx, MetaSnapshot},
};
use crate::{
    observe::{End, Flow, Observer},
    types::{ChunkBody, StreamEvent, TokenUsage},
};

/// What the cost layer watches a stream for.
pub(super) struct CostObserver {
    pub(super) ctx: CallCtx,
    pub(super) meta: MetaSnapshot,
    pub(super) usage: Option<TokenUsage>,
    /// Bytes of generated text passed on so far (`Relayed::delta_text_bytes`).
    pub(super) delivered: usize,
    pub(super) strip_usage: bool,
}

impl Observer for CostObserver {
    fn chunk(&mut self, chunk: &mut ChunkBody) -> Flow {
        if self.meta.model.is_none() {
            self.meta.model = chunk.model().map(str::to_owned);
        }
        if let Some(u) = chunk.usage() {
            self.usage = Some(TokenUsage::from(u));
            if self.strip_usage {
                if !chunk.has_choices() {
                    return Flow::Skip;
                }
                // Usage on a chunk that also carries choices: remove just the usage.
                match chunk.typed_mut() {
                    Ok(c) => c.usage = None,
                    Err(e) => return Flow::Fail(e),
                }
            }
        }
        self.delivered = self.delivered.saturating_add(chunk.delta_text_bytes());
        Flow::Pass
    }

    fn event(&mut self, event: &mut StreamEvent) -> Flow {
        if self.meta.model.is_none() {
            self.meta.model = event.model.as_deref().map(str::to_owned);
        }
        if let Some(u) = event.usage {
            self.usage = Some(u);
        }
        self.delivered = self.delivered.saturating_add(event.text_bytes);
        Flow::Pass
    }

    fn end(self, end: End) {
        match end {
            End::Complete => {
                self.ctx.finish(self.usage.as_ref(), &self.meta, "success");
            }
            // Failed mid-stream, or dropped before its end (by its client, or cut at shutdown):
            // paid for what it delivered.
            End::Failed | End::Dropped => {
                let usage = self.ctx.cut_usage(self.usage.as_ref(), self.delivered);
                let status = if matches!(end, End::Failed) {
                    "failure"
                } else {
                    cut_status()
                };
                self.ctx.finish(Some(&usage), &self.meta, status);
            }
        }
    }
}
