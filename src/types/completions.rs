//! OpenAI legacy text-completion wire types (`POST /v1/completions`).
//!
//! Typed where a layer or a translation reads a field (the model, the prompt for the input
//! estimate and the bridge to chat, streaming and its options, the fields the chat bridge maps);
//! every other key (`echo`, `suffix`, `logprobs`, `best_of`, `logit_bias`, …) is kept in `extra`
//! and relayed byte for byte to a provider that speaks the API natively.

use serde::{Deserialize, Serialize};

use super::{
    chat::{Stop, StreamOptions},
    wire::wire_object,
};

wire_object! {
    /// The body of `POST /v1/completions`.
    pub struct CompletionsRequest {
        req /// The model group.
        model: String = "model",
        req /// The prompt: a text, a batch of texts, tokens, or a batch of token arrays.
        prompt: Prompt = "prompt",
        opt /// Stream the answer as server-sent events.
        stream: bool = "stream",
        opt /// Stream options (`include_usage`).
        stream_options: StreamOptions = "stream_options",
        opt /// Output token limit.
        max_tokens: u64 = "max_tokens",
        opt /// Sampling temperature.
        temperature: f64 = "temperature",
        opt /// Nucleus sampling.
        top_p: f64 = "top_p",
        opt /// Number of choices.
        n: u32 = "n",
        opt /// Stop sequences.
        stop: Stop = "stop",
        opt /// Sampling seed.
        seed: i64 = "seed",
        opt /// Presence penalty.
        presence_penalty: f64 = "presence_penalty",
        opt /// Frequency penalty.
        frequency_penalty: f64 = "frequency_penalty",
        opt /// End-user id.
        user: String = "user",
        opt /// LiteLLM request metadata; never sent upstream.
        metadata: serde_json::Value = "metadata",
        opt /// LiteLLM's `mock_response` (served through the chat model); never sent upstream.
        mock_response: serde_json::Value = "mock_response",
    }
}

/// A completion prompt, in the four shapes OpenAI takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// One text.
    One(String),
    /// A batch of texts.
    Many(Vec<String>),
    /// One token array.
    Tokens(Vec<u32>),
    /// A batch of token arrays.
    TokenBatches(Vec<Vec<u32>>),
}

impl Default for Prompt {
    fn default() -> Self {
        Self::One(String::new())
    }
}

impl Prompt {
    /// The prompt's tokens, estimated: a token array counts exactly, text four bytes a token.
    #[must_use]
    pub fn estimate_tokens(&self) -> u64 {
        let text = |s: &String| super::usage::estimate_tokens(s.len());
        let tokens = |v: &Vec<u32>| u64::try_from(v.len()).unwrap_or(u64::MAX);
        match self {
            Self::One(s) => text(s),
            Self::Many(v) => v.iter().map(text).sum(),
            Self::Tokens(t) => tokens(t),
            Self::TokenBatches(v) => v.iter().map(tokens).sum(),
        }
    }

    /// The prompt's texts, for a translation that needs text (`None` for token prompts, which
    /// only a provider with the model's tokenizer can read).
    #[must_use]
    pub fn texts(&self) -> Option<&[String]> {
        match self {
            Self::One(s) => Some(std::slice::from_ref(s)),
            Self::Many(v) => Some(v),
            Self::Tokens(_) | Self::TokenBatches(_) => None,
        }
    }
}

impl CompletionsRequest {
    /// Whether the caller asked for the usage chunk at the end of a stream.
    #[must_use]
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_prompt_shape_and_keeps_unknown_keys() {
        let r: CompletionsRequest = serde_json::from_str(
            r#"{"model":"m","prompt":"Say hi","echo":true,"suffix":"!","stream":true,
                "stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        assert_eq!(r.prompt, Prompt::One("Say hi".into()));
        assert!(r.include_usage());
        assert_eq!(r.extra.get("echo").map(|v| v.get()), Some("true"));
        assert_eq!(r.extra.get("suffix").map(|v| v.get()), Some("\"!\""));
        for (raw, shape) in [
            (r#"["a","b"]"#, Prompt::Many(vec!["a".into(), "b".into()])),
            ("[1,2,3]", Prompt::Tokens(vec![1, 2, 3])),
            (
                "[[1],[2,3]]",
                Prompt::TokenBatches(vec![vec![1], vec![2, 3]]),
            ),
        ] {
            let r: CompletionsRequest =
                serde_json::from_str(&format!(r#"{{"model":"m","prompt":{raw}}}"#)).unwrap();
            assert_eq!(r.prompt, shape, "{raw}");
        }
        assert!(serde_json::from_str::<CompletionsRequest>(r#"{"model":"m"}"#).is_err());
        assert!(
            serde_json::from_str::<CompletionsRequest>(r#"{"model":"m","prompt":{}}"#).is_err()
        );
    }

    #[test]
    fn estimates_text_and_counts_tokens() {
        assert_eq!(Prompt::One("12345678".into()).estimate_tokens(), 2);
        assert_eq!(
            Prompt::Many(vec!["1234".into(), "1".into()]).estimate_tokens(),
            2
        );
        assert_eq!(Prompt::Tokens(vec![1, 2, 3]).estimate_tokens(), 3);
        assert_eq!(
            Prompt::TokenBatches(vec![vec![1], vec![2, 3]]).estimate_tokens(),
            3
        );
        assert!(Prompt::Tokens(vec![1]).texts().is_none());
        assert_eq!(
            Prompt::One("x".into()).texts().map(<[String]>::len),
            Some(1)
        );
    }
}
