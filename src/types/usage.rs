//! [`TokenUsage`]: the operation-neutral token counts that the counting layers (rate limit tpm,
//! budgets, cost, router usage statistics, metrics) read, whatever the operation's wire shape.

use super::{chat::Usage, embeddings::EmbeddingsUsage};

/// Tokens estimated from `bytes` of text: `ceil(bytes / 4)` (LiteLLM's fallback counter). Every
/// estimate of the crate (prompts, embeddings input, text delivered by a stream cut short) uses it.
#[must_use]
pub fn estimate_tokens(bytes: usize) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX).div_ceil(4)
}

/// Tokens a call used, in the shape every operation can give: chat's `prompt_tokens` /
/// `completion_tokens`, embeddings' `prompt_tokens`, and (for operations added later) Anthropic's
/// `input_tokens` / `output_tokens` with cache reads and writes map onto the same fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenUsage {
    /// Input (prompt) tokens, cache reads and writes included.
    pub input: u64,
    /// Output (completion) tokens, reasoning included.
    pub output: u64,
    /// Of `input`: tokens read from the provider's prompt cache.
    pub cache_read: u64,
    /// Of `input`: tokens written to the provider's prompt cache.
    pub cache_write: u64,
    /// Of `output`: reasoning (thinking) tokens.
    pub reasoning: u64,
    /// Every token of the call as the provider counted it (its `total_tokens`), else
    /// `input + output`.
    pub total: u64,
    /// Images the call made (image generations and edits), for a price per image.
    pub images: u64,
    /// Pixels of each of those images (width × height; 0 when not known), for a price per
    /// pixel.
    pub image_pixels: u64,
    /// Milliseconds of audio the call took in (a transcription or translation), for a price per
    /// second.
    pub audio_ms: u64,
    /// Characters of text the call spoke (speech), for a price per character.
    pub characters: u64,
    /// Search units billed (Cohere's rerank `meta.billed_units.search_units`), priced at
    /// `input_cost_per_query`; 0 for every other call.
    pub search_units: u64,
    /// The size and quality of the images made, for size- and quality-specific prices.
    pub image_tier: Option<super::media::ImageTier>,
}

impl TokenUsage {
    /// Counts of `input` and `output` tokens.
    #[must_use]
    pub const fn new(input: u64, output: u64) -> Self {
        Self {
            input,
            output,
            cache_read: 0,
            cache_write: 0,
            reasoning: 0,
            total: input.saturating_add(output),
            images: 0,
            image_pixels: 0,
            audio_ms: 0,
            characters: 0,
            search_units: 0,
            image_tier: None,
        }
    }

    /// Every token of the call: what tpm limits and token budgets charge.
    #[must_use]
    pub const fn total(&self) -> u64 {
        self.total
    }
}

impl From<&Usage> for TokenUsage {
    fn from(u: &Usage) -> Self {
        let input = u.prompt_tokens.unwrap_or(0);
        // A provider that reports only the total: the rest is output.
        let output = u
            .completion_tokens
            .or_else(|| u.total_tokens.map(|t| t.saturating_sub(input)))
            .unwrap_or(0);
        Self {
            input,
            output,
            search_units: 0,
            total: u
                .total_tokens
                .unwrap_or_else(|| input.saturating_add(u.completion_tokens.unwrap_or(0))),
            cache_read: u
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            // Anthropic's prompt-cache writes, as its decoder states them on the usage.
            cache_write: u
                .extra
                .get_as::<u64>("cache_creation_input_tokens")
                .unwrap_or(0),
            reasoning: u
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            ..Self::default()
        }
    }
}

impl From<&Self> for TokenUsage {
    fn from(u: &Self) -> Self {
        *u
    }
}

impl From<&EmbeddingsUsage> for TokenUsage {
    fn from(u: &EmbeddingsUsage) -> Self {
        let input = u.prompt_tokens.or(u.total_tokens).unwrap_or(0);
        Self {
            total: u.total_tokens.unwrap_or(input),
            ..Self::new(input, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_usage_maps_with_details() {
        let u: Usage = serde_json::from_str(
            r#"{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,
                "prompt_tokens_details":{"cached_tokens":4},
                "completion_tokens_details":{"reasoning_tokens":2}}"#,
        )
        .unwrap();
        let t = TokenUsage::from(&u);
        assert_eq!((t.input, t.output, t.total()), (10, 5, 15));
        assert_eq!((t.cache_read, t.reasoning), (4, 2));
    }

    #[test]
    fn a_total_only_usage_counts_the_rest_as_output() {
        let u: Usage = serde_json::from_str(r#"{"prompt_tokens":10,"total_tokens":25}"#).unwrap();
        assert_eq!(TokenUsage::from(&u), TokenUsage::new(10, 15));
        let e: EmbeddingsUsage = serde_json::from_str(r#"{"total_tokens":7}"#).unwrap();
        assert_eq!(TokenUsage::from(&e).total(), 7);
    }
}
