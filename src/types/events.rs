//! The answer shapes of operations other than chat and embeddings: a JSON document
//! ([`JsonBody`]) and a stream of server-sent events ([`EventStream`] of [`StreamEvent`]s).
//!
//! An operation in another dialect (Anthropic's Messages, OpenAI's Responses, legacy
//! completions, …) answers in its own wire shape, which the gateway relays byte for byte when
//! the provider speaks the same dialect, or which a bridge writes from the chat model. Either way
//! the layers that count and decide (cost, rate limit tpm, budgets, router usage, metrics) read
//! only the facts each item carries — the token usage known so far, the model, the text bytes
//! delivered — never the dialect's JSON. The producer (the provider's decoder, or the bridge)
//! states the facts once, when it has parsed the item anyway, so observers parse nothing.

use std::{fmt, pin::Pin, sync::Arc};

use bytes::Bytes;
use futures_core::Stream;

use super::usage::TokenUsage;
use crate::error::LlmError;

/// A complete answer as one JSON document in the operation's own dialect, with its facts.
#[derive(Clone)]
#[non_exhaustive]
pub struct JsonBody {
    /// The document, as the client gets it.
    pub bytes: Bytes,
    /// The usage the document states.
    pub usage: Option<TokenUsage>,
    /// The model the document names.
    pub model: Option<Arc<str>>,
}

impl JsonBody {
    /// A document with no facts stated (nothing to count).
    #[must_use]
    pub fn new(bytes: Bytes) -> Self {
        Self {
            bytes,
            usage: None,
            model: None,
        }
    }

    /// States the usage.
    #[must_use]
    pub fn with_usage(mut self, usage: Option<TokenUsage>) -> Self {
        self.usage = usage;
        self
    }

    /// States the model.
    #[must_use]
    pub fn with_model(mut self, model: Option<Arc<str>>) -> Self {
        self.model = model;
        self
    }
}

impl fmt::Debug for JsonBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonBody")
            .field("len", &self.bytes.len())
            .field("usage", &self.usage)
            .field("model", &self.model)
            .finish()
    }
}

/// One server-sent event of an [`EventStream`]: the complete frame the client gets (`event:` and
/// `data:` lines and the blank line that ends it), and the facts the layers read.
#[derive(Clone)]
#[non_exhaustive]
pub struct StreamEvent {
    /// The whole frame, written to the client as is.
    pub frame: Bytes,
    /// The usage known after this event, cumulative (the producer adds up what the dialect
    /// reports in parts, such as Anthropic's input tokens in `message_start` and output tokens in
    /// `message_delta`); `None` when this event states none.
    pub usage: Option<TokenUsage>,
    /// Bytes of generated text (or tool arguments) this event delivers, for estimating a stream
    /// cut before it reported usage.
    pub text_bytes: usize,
    /// The model, on the event that names it.
    pub model: Option<Arc<str>>,
    /// Whether this event is the dialect's end of a successful answer (`message_stop`,
    /// `response.completed`, …).
    pub is_final: bool,
}

impl StreamEvent {
    /// An event with no facts stated (`ping`, say).
    #[must_use]
    pub fn new(frame: Bytes) -> Self {
        Self {
            frame,
            usage: None,
            text_bytes: 0,
            model: None,
            is_final: false,
        }
    }

    /// A frame `event: {name}\ndata: {data}\n\n`.
    #[must_use]
    pub fn sse(name: &str, data: &[u8]) -> Self {
        let mut frame = Vec::with_capacity(name.len() + data.len() + 16);
        frame.extend_from_slice(b"event: ");
        frame.extend_from_slice(name.as_bytes());
        frame.extend_from_slice(b"\ndata: ");
        frame.extend_from_slice(data);
        frame.extend_from_slice(b"\n\n");
        Self::new(Bytes::from(frame))
    }

    /// States the cumulative usage.
    #[must_use]
    pub fn with_usage(mut self, usage: Option<TokenUsage>) -> Self {
        self.usage = usage;
        self
    }

    /// States the text bytes delivered.
    #[must_use]
    pub fn with_text_bytes(mut self, n: usize) -> Self {
        self.text_bytes = n;
        self
    }

    /// States the model.
    #[must_use]
    pub fn with_model(mut self, model: Option<Arc<str>>) -> Self {
        self.model = model;
        self
    }

    /// Marks the dialect's end of a successful answer.
    #[must_use]
    pub fn final_event(mut self) -> Self {
        self.is_final = true;
        self
    }
}

impl fmt::Debug for StreamEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamEvent")
            .field("frame", &String::from_utf8_lossy(&self.frame))
            .field("usage", &self.usage)
            .field("text_bytes", &self.text_bytes)
            .field("model", &self.model)
            .field("is_final", &self.is_final)
            .finish()
    }
}

/// A stream of server-sent events in an operation's own dialect.
///
/// An error item ends the stream; the edge writes it in the route's dialect (Anthropic's
/// `event: error`, say).
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, LlmError>> + Send + 'static>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_frames_an_event() {
        let e = StreamEvent::sse("ping", br#"{"type":"ping"}"#);
        assert_eq!(&e.frame[..], b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
        assert!(e.usage.is_none() && !e.is_final && e.text_bytes == 0);
    }
}
