//! `streamGenerateContent?alt=sse` → OpenAI chunks, one event at a time.
//!
//! Each `data:` event is a whole `GenerateContentResponse` holding the next piece of each candidate.
//! Text parts become `content` deltas (thought parts `reasoning_content`), a `functionCall` part one
//! complete tool-call delta (Gemini never splits a call), and a `finishReason` its own empty-delta
//! chunk after the text. Usage is taken from the last event that carries counts and, with
//! `stream_options.include_usage`, sent in a final chunk with no choices.

use std::collections::VecDeque;

use crate::{
    error::{ErrorKind, LlmError},
    provider::{
        chunk::{choice, ChunkHead},
        sse::{SseEvent, SseMapper},
    },
    types::{
        chat::{Delta, Usage},
        ChunkBody,
    },
};

use super::{
    decode::{completion_id, finish_reason, tool_call, GenerateContentResponse},
    error::error_from_status_object,
};

/// Per-candidate stream state.
#[derive(Debug, Default)]
struct CandidateState {
    index: u32,
    role_sent: bool,
    tool_calls: u32,
    finished: bool,
}

/// Maps Gemini SSE events to chat chunks. See the [module docs](crate::provider::gemini).
#[derive(Debug)]
pub struct GeminiStreamMapper {
    provider: &'static str,
    head: ChunkHead,
    candidates: Vec<CandidateState>,
    usage: Option<Usage>,
    any_event: bool,
    blocked: bool,
}

impl GeminiStreamMapper {
    /// A mapper for `provider`'s stream, answering as `model` (the name the client asked for).
    #[must_use]
    pub fn new(provider: &'static str, model: String, include_usage: bool) -> Self {
        Self {
            provider,
            head: ChunkHead::new(None, model, include_usage),
            candidates: Vec::new(),
            usage: None,
            any_event: false,
            blocked: false,
        }
    }

    fn state(&mut self, index: u32) -> &mut CandidateState {
        let pos = match self.candidates.iter().position(|c| c.index == index) {
            Some(p) => p,
            None => {
                self.candidates.push(CandidateState {
                    index,
                    ..CandidateState::default()
                });
                self.candidates.len() - 1
            }
        };
        &mut self.candidates[pos]
    }
}

impl SseMapper for GeminiStreamMapper {
    fn on_event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChunkBody>,
    ) -> Result<bool, LlmError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(false);
        }
        let resp: GenerateContentResponse = serde_json::from_str(data).map_err(|e| {
            LlmError::new(
                ErrorKind::InternalServer,
                format!("the provider sent an invalid stream event: {e}"),
            )
            .with_provider(self.provider)
        })?;
        if let Some(err) = &resp.error {
            return Err(error_from_status_object(self.provider, None, err));
        }
        self.any_event = true;
        if !self.head.has_id() {
            self.head
                .set_id(Some(completion_id(resp.response_id.as_deref())));
        }
        if let Some(u) = resp.usage_metadata.as_ref().filter(|u| u.has_counts()) {
            self.usage = Some(u.to_usage());
        }
        if resp.candidates.is_empty() {
            if resp
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
                && !self.blocked
            {
                self.blocked = true;
                let delta = Delta {
                    role: Some("assistant".into()),
                    ..Delta::default()
                };
                out.push_back(
                    self.head
                        .chunk(vec![choice(0, delta, Some("content_filter"))])
                        .into(),
                );
            }
            return Ok(false);
        }
        for (pos, cand) in resp.candidates.into_iter().enumerate() {
            let index = cand.index.unwrap_or(pos as u32);
            let mut delta = Delta::default();
            let mut text = String::new();
            let mut reasoning = String::new();
            let mut calls = Vec::new();
            let state = self.state(index);
            for part in cand.content.into_iter().flat_map(|c| c.parts) {
                if let Some(call) = &part.function_call {
                    calls.push(tool_call(call, Some(state.tool_calls)));
                    state.tool_calls += 1;
                } else if let Some(t) = part.text {
                    if part.thought {
                        reasoning.push_str(&t);
                    } else {
                        text.push_str(&t);
                    }
                }
            }
            let has_delta = !text.is_empty() || !reasoning.is_empty() || !calls.is_empty();
            if has_delta || (cand.finish_reason.is_some() && !state.role_sent) {
                if !state.role_sent {
                    delta.role = Some("assistant".into());
                    state.role_sent = true;
                }
                if !text.is_empty() {
                    delta.content = Some(text);
                }
                if !reasoning.is_empty() {
                    delta.reasoning_content = Some(reasoning);
                }
                if !calls.is_empty() {
                    delta.tool_calls = Some(calls);
                }
            }
            let finish = cand.finish_reason.as_deref().map(|r| {
                state.finished = true;
                finish_reason(r, state.tool_calls > 0)
            });
            let has_role_only = delta.role.is_some() && !has_delta;
            if has_delta {
                let c = self.head.chunk(vec![choice(index, delta, None)]);
                out.push_back(c.into());
            }
            if let Some(reason) = finish {
                let d = if has_role_only {
                    delta_with_role()
                } else {
                    Delta::default()
                };
                let c = self.head.chunk(vec![choice(index, d, Some(reason))]);
                out.push_back(c.into());
            }
        }
        Ok(false)
    }

    fn on_end(&mut self, out: &mut VecDeque<ChunkBody>) -> Result<(), LlmError> {
        let finished = self.blocked
            || (!self.candidates.is_empty() && self.candidates.iter().all(|c| c.finished));
        if !finished {
            return Err(LlmError::new(
                ErrorKind::ApiConnection,
                if self.any_event {
                    "the provider's stream ended before a finish reason"
                } else {
                    "the provider's stream ended without any event"
                },
            )
            .with_provider(self.provider));
        }
        if self.head.include_usage() {
            let mut c = self.head.chunk(Vec::new());
            c.usage = Some(
                self.usage
                    .take()
                    .unwrap_or_else(|| super::decode::UsageMetadata::default().to_usage()),
            );
            out.push_back(c.into());
        }
        Ok(())
    }
}

fn delta_with_role() -> Delta {
    Delta {
        role: Some("assistant".into()),
        ..Delta::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(events: &[&str], include_usage: bool) -> Result<Vec<serde_json::Value>, LlmError> {
        let mut m = GeminiStreamMapper::new("gemini", "m".into(), include_usage);
        let mut out = VecDeque::new();
        for e in events {
            m.on_event(
                SseEvent {
                    event: String::new(),
                    data: (*e).to_owned(),
                },
                &mut out,
            )?;
        }
        m.on_end(&mut out)?;
        Ok(out
            .into_iter()
            .map(|c| serde_json::to_value(c).unwrap())
            .collect())
    }

    #[test]
    fn thoughts_become_reasoning_deltas() {
        let chunks = run(
            &[
                r#"{"candidates":[{"content":{"parts":[{"text":"hmm","thought":true}]}}]}"#,
                r#"{"candidates":[{"content":{"parts":[{"text":"ok"}]},"finishReason":"MAX_TOKENS"}]}"#,
            ],
            false,
        )
        .unwrap();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0]["choices"][0]["delta"]["reasoning_content"], "hmm");
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "ok");
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "length");
        assert!(chunks[0].get("usage").is_none());
    }

    #[test]
    fn cut_stream_is_an_error() {
        let err = run(
            &[r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}"#],
            true,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ApiConnection);
    }

    #[test]
    fn error_event_is_classified() {
        let err = run(
            &[r#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#],
            true,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimit);
    }
}
