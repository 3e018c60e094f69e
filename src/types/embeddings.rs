//! OpenAI embeddings wire types.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::wire::wire_object;

wire_object! {
    /// The body of `POST /v1/embeddings`.
    pub struct EmbeddingsRequest {
        req /// The model group.
        model: String = "model",
        req /// One input or a batch.
        input: EmbeddingInput = "input",
        opt /// `float` or `base64`.
        encoding_format: String = "encoding_format",
        opt /// Output dimensions.
        dimensions: u32 = "dimensions",
        opt /// End-user id.
        user: String = "user",
        opt /// LiteLLM request metadata; never sent upstream.
        metadata: serde_json::Value = "metadata",
    }
}

/// Embeddings input: text or tokens, one or a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    One(String),
    /// A batch of texts.
    Many(Vec<String>),
    /// One token array.
    Tokens(Vec<u32>),
    /// A batch of token arrays.
    TokenBatches(Vec<Vec<u32>>),
}

impl Default for EmbeddingInput {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl EmbeddingInput {
    /// How many embeddings this input asks for.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::One(_) | Self::Tokens(_) => 1,
            Self::Many(v) => v.len(),
            Self::TokenBatches(v) => v.len(),
        }
    }

    /// Whether the batch is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The input's tokens, estimated: a token array counts exactly, text four bytes a token.
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
}

wire_object! {
    /// The embeddings response (`object: "list"`).
    pub struct EmbeddingsResponse {
        req /// One embedding per input.
        data: Vec<Embedding> = "data",
        opt /// `list`.
        object: String = "object",
        opt /// The model that answered.
        model: String = "model",
        opt /// Token usage.
        usage: EmbeddingsUsage = "usage",
    }
}

wire_object! {
    /// One embedding.
    pub struct Embedding {
        opt /// `embedding`.
        object: String = "object",
        opt /// Index of the input.
        index: u32 = "index",
        opt /// The vector (array of floats, or a base64 string), kept as sent.
        embedding: Box<RawValue> = "embedding",
    }
}

wire_object! {
    /// Embeddings usage.
    pub struct EmbeddingsUsage {
        opt /// Input tokens.
        prompt_tokens: u64 = "prompt_tokens",
        opt /// Total tokens.
        total_tokens: u64 = "total_tokens",
    }
}
