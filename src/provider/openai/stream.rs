//! OpenAI SSE stream decoding: each `data:` event is a chunk, relayed as sent; `[DONE]` ends it.

use std::collections::VecDeque;

use crate::{
    error::{ErrorKind, LlmError},
    provider::sse::{SseEvent, SseMapper},
    types::ChunkBody,
};

use super::error::error_from_object;

/// Maps OpenAI-format SSE events to chunks (also used by every OpenAI-shaped provider).
#[derive(Clone, Debug)]
pub struct OpenAiStreamMapper {
    provider: &'static str,
    saw_finish: bool,
}

impl OpenAiStreamMapper {
    /// A mapper for `provider`'s stream.
    #[must_use]
    pub fn new(provider: &'static str) -> Self {
        Self {
            provider,
            saw_finish: false,
        }
    }
}

impl SseMapper for OpenAiStreamMapper {
    fn on_event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChunkBody>,
    ) -> Result<bool, LlmError> {
        let trimmed = event.data.trim();
        if trimmed == "[DONE]" {
            return Ok(true);
        }
        if trimmed.is_empty() {
            return Ok(false);
        }
        // Kept as the provider's bytes (no copy unless the payload had surrounding whitespace).
        let text = if trimmed.len() == event.data.len() {
            event.data
        } else {
            trimmed.to_owned()
        };
        match ChunkBody::from_wire_text(text) {
            Ok(chunk) => {
                if chunk.is_finished() {
                    self.saw_finish = true;
                }
                out.push_back(chunk);
                Ok(false)
            }
            Err((parse_err, data)) => {
                // A mid-stream error event: `data: {"error": {...}}`.
                if let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_slice(&data) {
                    if let Some(err) = obj.remove("error") {
                        return Err(error_from_object(
                            self.provider,
                            http::StatusCode::INTERNAL_SERVER_ERROR,
                            &err,
                        ));
                    }
                }
                Err(parse_err.with_provider(self.provider))
            }
        }
    }

    /// A stream that ends without `[DONE]` and without any finish reason was cut: report it, so
    /// that the client (and any cache) does not take a partial answer for a whole one.
    fn on_end(&mut self, _out: &mut VecDeque<ChunkBody>) -> Result<(), LlmError> {
        if self.saw_finish {
            return Ok(());
        }
        Err(LlmError::new(
            ErrorKind::ApiConnection,
            "the provider's stream ended before it finished (no finish_reason, no [DONE])",
        )
        .with_provider(self.provider))
    }
}
