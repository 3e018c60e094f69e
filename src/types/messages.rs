//! Anthropic's Messages API: the body of `POST /v1/messages` and `POST /v1/messages/count_tokens`.
//!
//! Typed only where the gateway reads a field: `model` (routing, key access), `stream`,
//! `max_tokens`, and the conversation's parts (`messages`, `system`, `tools`) kept as raw JSON, so
//! that relaying the body to an Anthropic deployment parses nothing it does not need and the
//! [bridge](crate::provider::bridge) reads them only when the provider speaks chat instead. Every
//! other key (`thinking`, `tool_choice`, `stop_sequences`, `metadata`, gateway controls, …) stays in
//! `extra`, as sent.

use http::HeaderValue;
use serde_json::value::RawValue;

use super::{usage::estimate_tokens, wire::wire_object};

wire_object! {
    /// The body of `POST /v1/messages` (and of `/v1/messages/count_tokens`, which takes the same
    /// keys without `max_tokens` and `stream`).
    pub struct MessagesRequest {
        req /// The model group (or model) the client asked for.
        model: String = "model",
        opt /// The conversation, as sent (an array of `{role, content}`).
        messages: Box<RawValue> = "messages",
        opt /// The system prompt: a string or an array of text blocks, as sent.
        system: Box<RawValue> = "system",
        opt /// Output token limit (required by Anthropic on `/v1/messages`).
        max_tokens: u64 = "max_tokens",
        opt /// Stream the answer as Anthropic's server-sent events.
        stream: bool = "stream",
        opt /// Tools the model may call, as sent.
        tools: Box<RawValue> = "tools",
    }
}

impl MessagesRequest {
    /// A cheap estimate of the input tokens: [`estimate_tokens`] of the raw bytes of the
    /// conversation, the system prompt and the tools (their JSON framing included, so it
    /// overestimates a little, which is the safe side for limits).
    #[must_use]
    pub fn estimate_input_tokens(&self) -> u64 {
        let len = |v: &Option<Box<RawValue>>| v.as_ref().map_or(0, |r| r.get().len());
        estimate_tokens(len(&self.messages) + len(&self.system) + len(&self.tools))
    }
}

/// The Anthropic headers a client sent with a Messages request (`anthropic-version`,
/// `anthropic-beta`), kept in the request's extensions by the edge and sent on by the Anthropic
/// provider, so that beta features the client opted into (interleaved thinking, 1M context,
/// tool streaming, …) reach the model.
#[derive(Clone, Debug, Default)]
pub struct AnthropicHeaders {
    /// `anthropic-version`.
    pub version: Option<HeaderValue>,
    /// `anthropic-beta` (every value the client sent, in order).
    pub beta: Vec<HeaderValue>,
}

/// The response header that says where a `count_tokens` answer came from: `provider` (the
/// provider's own count) or `estimate` (the gateway's estimate, for a provider without one).
pub const X_LLMGATE_TOKEN_COUNT: http::HeaderName =
    http::HeaderName::from_static("x-llmgate-token-count");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_unknown_keys_and_estimates_from_raw_bytes() {
        let raw = r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"abcdefgh"}],"thinking":{"type":"enabled","budget_tokens":1024},"system":"sys"}"#;
        let req: MessagesRequest = serde_json::from_str(raw).unwrap();
        assert_eq!(req.model, "m");
        assert_eq!(req.max_tokens, Some(10));
        assert!(req.extra.get("thinking").is_some());
        let bytes = req.messages.as_ref().unwrap().get().len() + 5;
        assert_eq!(req.estimate_input_tokens(), estimate_tokens(bytes));
        assert!(req.stream.is_none());
    }
}
