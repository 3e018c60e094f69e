//! What every translated chat stream shares: the chunk head and the `created` stamp.
//!
//! Each provider's stream mapper (Anthropic, Bedrock Converse, Cohere, Gemini, Ollama) answers
//! with OpenAI chunks that carry one `id`, `object`, `created` and `model`, an explicit
//! `"usage": null` on every chunk before the last when the client asked for
//! `stream_options.include_usage`, `finish_reason: null` until the end, and `role: "assistant"` on
//! the first delta only. [`ChunkHead`] holds those rules once; a mapper keeps only its dialect's
//! state machine.

use crate::{
    clock::Clock,
    types::chat::{ChatChunk, ChatRequest, ChunkChoice, Delta},
};

/// The `created` stamp (Unix seconds) of an answer the gateway writes for a provider that states
/// none. Wall time by design: it describes the answer to the client, and no decision (limits,
/// budgets, expiry, cooldowns) reads it, so it is not on the injected clock of
/// [`crate::clock`].
#[must_use]
pub(crate) fn created_now() -> u64 {
    Clock::system().unix_secs()
}

/// Whether `chat` asked for the usage chunk at the end of its stream.
#[must_use]
pub(crate) fn include_usage(chat: &ChatRequest) -> bool {
    chat.stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false)
}

/// The fields every chunk of one stream shares, and the role-on-the-first-delta rule.
#[derive(Debug)]
pub(crate) struct ChunkHead {
    id: Option<String>,
    model: String,
    created: u64,
    include_usage: bool,
    role_sent: bool,
}

impl ChunkHead {
    /// A head answering as `model`, `created` now; `id` may come later ([`ChunkHead::set_id`]).
    pub(crate) fn new(id: Option<String>, model: String, include_usage: bool) -> Self {
        Self {
            id,
            model,
            created: created_now(),
            include_usage,
            role_sent: false,
        }
    }

    /// Sets the id the provider stated (e.g. in its first event).
    pub(crate) fn set_id(&mut self, id: Option<String>) {
        self.id = id;
    }

    /// Whether a delta (with the role) went out yet.
    pub(crate) fn role_sent(&self) -> bool {
        self.role_sent
    }

    /// Whether a chunk has an id yet.
    pub(crate) fn has_id(&self) -> bool {
        self.id.is_some()
    }

    /// Whether the client asked for the usage chunk.
    pub(crate) fn include_usage(&self) -> bool {
        self.include_usage
    }

    /// A chunk with this head and `choices` (no usage; `"usage": null` when the client asked for
    /// the usage chunk, so that clients see the field on every chunk as OpenAI sends it).
    pub(crate) fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatChunk {
        let mut c = ChatChunk {
            id: self.id.clone(),
            object: Some("chat.completion.chunk".into()),
            created: Some(self.created),
            model: Some(self.model.clone()),
            choices,
            ..ChatChunk::default()
        };
        if self.include_usage {
            c.set_explicit_null("usage", true);
        }
        c
    }

    /// A chunk of choice 0 with `delta` (and `role: "assistant"` if it is the first delta).
    pub(crate) fn delta(&mut self, mut delta: Delta, finish: Option<&str>) -> ChatChunk {
        if !self.role_sent {
            self.role_sent = true;
            delta.role = Some("assistant".into());
        }
        self.chunk(vec![choice(0, delta, finish)])
    }
}

/// A choice with `delta`, and `finish_reason` explicitly `null` until there is one.
pub(crate) fn choice(index: u32, delta: Delta, finish: Option<&str>) -> ChunkChoice {
    let mut c = ChunkChoice {
        index: Some(index),
        delta: Some(delta),
        finish_reason: finish.map(str::to_owned),
        ..ChunkChoice::default()
    };
    c.set_explicit_null("finish_reason", finish.is_none());
    c
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn value(c: &ChatChunk) -> Value {
        serde_json::to_value(c).unwrap_or_default()
    }

    #[test]
    fn the_first_delta_carries_the_role_and_nulls_are_explicit() {
        let mut head = ChunkHead::new(Some("chatcmpl-1".into()), "m".into(), true);
        let first = value(&head.delta(
            Delta {
                content: Some("a".into()),
                ..Delta::default()
            },
            None,
        ));
        assert_eq!(first["id"], "chatcmpl-1");
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(first["model"], "m");
        assert!(first["created"].as_u64().is_some_and(|t| t > 1_700_000_000));
        assert_eq!(first["usage"], Value::Null);
        assert!(first.as_object().is_some_and(|o| o.contains_key("usage")));
        assert_eq!(
            first["choices"][0]["delta"],
            json!({"role": "assistant", "content": "a"})
        );
        assert!(first["choices"][0]
            .as_object()
            .is_some_and(|o| o.get("finish_reason") == Some(&Value::Null)));
        let last = value(&head.delta(Delta::default(), Some("stop")));
        assert_eq!(last["choices"][0]["delta"], json!({}));
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn without_include_usage_no_usage_field() {
        let head = ChunkHead::new(None, "m".into(), false);
        let c = value(&head.chunk(Vec::new()));
        assert!(
            c.as_object().is_some_and(|o| !o.contains_key("usage")),
            "{c}"
        );
        assert!(c.as_object().is_some_and(|o| !o.contains_key("id")), "{c}");
    }
}
