//! Gemini `GenerateContentResponse` → OpenAI chat completion.

use serde::Deserialize;

use crate::types::chat::{
    ChatResponse, Choice, CompletionTokensDetails, FunctionCall, Message, PromptTokensDetails,
    ToolCall, Usage,
};

/// One `generateContent` answer (also one `streamGenerateContent` event).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateContentResponse {
    #[serde(default)]
    pub(crate) candidates: Vec<Candidate>,
    pub(crate) prompt_feedback: Option<PromptFeedback>,
    pub(crate) usage_metadata: Option<UsageMetadata>,
    pub(crate) response_id: Option<String>,
    /// A stream's mid-way error event.
    pub(crate) error: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate {
    pub(crate) content: Option<CandidateContent>,
    pub(crate) finish_reason: Option<String>,
    pub(crate) index: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CandidateContent {
    #[serde(default)]
    pub(crate) parts: Vec<Part>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Part {
    pub(crate) text: Option<String>,
    #[serde(default)]
    pub(crate) thought: bool,
    pub(crate) function_call: Option<GeminiFunctionCall>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct GeminiFunctionCall {
    #[serde(default)]
    pub(crate) name: String,
    pub(crate) args: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback {
    pub(crate) block_reason: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageMetadata {
    pub(crate) prompt_token_count: Option<u64>,
    pub(crate) candidates_token_count: Option<u64>,
    pub(crate) thoughts_token_count: Option<u64>,
    pub(crate) cached_content_token_count: Option<u64>,
    pub(crate) total_token_count: Option<u64>,
}

impl UsageMetadata {
    /// Whether any count is present (Vertex's first stream event may carry only `trafficType`).
    pub(crate) fn has_counts(&self) -> bool {
        self.prompt_token_count.is_some()
            || self.candidates_token_count.is_some()
            || self.total_token_count.is_some()
    }

    /// OpenAI usage: completion = candidates + thoughts; cached and reasoning details always present.
    pub(crate) fn to_usage(&self) -> Usage {
        let prompt = self.prompt_token_count.unwrap_or(0);
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        let completion = self.candidates_token_count.unwrap_or(0) + thoughts;
        Usage {
            prompt_tokens: Some(prompt),
            completion_tokens: Some(completion),
            total_tokens: Some(self.total_token_count.unwrap_or(prompt + completion)),
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: Some(self.cached_content_token_count.unwrap_or(0)),
                ..PromptTokensDetails::default()
            }),
            completion_tokens_details: Some(CompletionTokensDetails {
                reasoning_tokens: Some(thoughts),
                ..CompletionTokensDetails::default()
            }),
            ..Usage::default()
        }
    }
}

/// Whether a Gemini finish reason means the content was filtered.
pub(crate) fn is_filtered(reason: &str) -> bool {
    matches!(
        reason,
        "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
    )
}

/// Gemini finish reason → OpenAI: `MAX_TOKENS` → `length`, filters → `content_filter`, a turn that
/// called a function → `tool_calls`, anything else → `stop`.
pub(crate) fn finish_reason(reason: &str, called_function: bool) -> &'static str {
    if reason == "MAX_TOKENS" {
        "length"
    } else if is_filtered(reason) {
        "content_filter"
    } else if called_function {
        "tool_calls"
    } else {
        "stop"
    }
}

/// A tool-call id for a Gemini function call (Gemini sends none).
pub(crate) fn new_call_id() -> String {
    format!("call_{:016x}{:08x}", fastrand::u64(..), fastrand::u32(..))
}

/// An OpenAI tool call for a Gemini function call; `arguments` is the compact JSON of `args`.
pub(crate) fn tool_call(call: &GeminiFunctionCall, index: Option<u32>) -> ToolCall {
    let arguments = call
        .args
        .as_ref()
        .map_or_else(|| "{}".to_owned(), serde_json::Value::to_string);
    ToolCall {
        index,
        id: Some(new_call_id()),
        kind_name: Some("function".into()),
        function: Some(FunctionCall {
            name: Some(call.name.clone()),
            arguments: Some(arguments),
            ..FunctionCall::default()
        }),
        ..ToolCall::default()
    }
}

/// A completion id: `chatcmpl-` + Gemini's response id when it sent one.
pub(crate) fn completion_id(response_id: Option<&str>) -> String {
    match response_id {
        Some(id) if !id.is_empty() => format!("chatcmpl-{id}"),
        _ => format!("chatcmpl-{:016x}", fastrand::u64(..)),
    }
}

/// The OpenAI chat completion for a Gemini answer, `model` being the name the client asked for.
///
/// A blocked prompt (no candidates, `promptFeedback.blockReason`) and a first candidate stopped by a
/// filter are one choice with `content: null` and `finish_reason: content_filter` (LiteLLM's
/// behaviour: the partial text of a filtered answer is dropped).
pub(crate) fn chat_response(resp: GenerateContentResponse, model: &str) -> ChatResponse {
    let usage = resp
        .usage_metadata
        .as_ref()
        .map(UsageMetadata::to_usage)
        .unwrap_or_else(|| UsageMetadata::default().to_usage());
    let first_filtered = resp
        .candidates
        .first()
        .and_then(|c| c.finish_reason.as_deref())
        .is_some_and(is_filtered);
    let choices = if resp.candidates.is_empty() || first_filtered {
        vec![filtered_choice(0)]
    } else {
        resp.candidates
            .into_iter()
            .enumerate()
            .map(|(i, c)| candidate_choice(c, i as u32))
            .collect()
    };
    ChatResponse {
        id: Some(completion_id(resp.response_id.as_deref())),
        object: Some("chat.completion".into()),
        created: Some(crate::provider::chunk::created_now()),
        model: Some(model.to_owned()),
        choices,
        usage: Some(usage),
        ..ChatResponse::default()
    }
}

fn filtered_choice(index: u32) -> Choice {
    let mut message = Message {
        role: "assistant".into(),
        ..Message::default()
    };
    message.set_explicit_null("content", true);
    Choice {
        index: Some(index),
        message: Some(message),
        finish_reason: Some("content_filter".into()),
        ..Choice::default()
    }
}

fn candidate_choice(c: Candidate, position: u32) -> Choice {
    let index = c.index.unwrap_or(position);
    if c.finish_reason.as_deref().is_some_and(is_filtered) {
        return filtered_choice(index);
    }
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for part in c.content.into_iter().flat_map(|c| c.parts) {
        if let Some(call) = &part.function_call {
            calls.push(tool_call(call, None));
        } else if let Some(t) = part.text {
            if part.thought {
                reasoning.push_str(&t);
            } else {
                text.push_str(&t);
            }
        }
    }
    let mut message = Message {
        role: "assistant".into(),
        ..Message::default()
    };
    if text.is_empty() {
        message.set_explicit_null("content", true);
    } else {
        message.content = Some(crate::types::chat::Content::Text(text));
    }
    if !reasoning.is_empty() {
        message.reasoning_content = Some(reasoning);
    }
    let called = !calls.is_empty();
    if called {
        message.tool_calls = Some(calls);
    }
    Choice {
        index: Some(index),
        message: Some(message),
        finish_reason: Some(
            finish_reason(c.finish_reason.as_deref().unwrap_or("STOP"), called).into(),
        ),
        ..Choice::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(v: serde_json::Value) -> serde_json::Value {
        let r: GenerateContentResponse = serde_json::from_value(v).unwrap();
        serde_json::to_value(chat_response(r, "m")).unwrap()
    }

    #[test]
    fn maps_finish_reasons() {
        assert_eq!(finish_reason("STOP", false), "stop");
        assert_eq!(finish_reason("STOP", true), "tool_calls");
        assert_eq!(finish_reason("MAX_TOKENS", true), "length");
        assert_eq!(finish_reason("SPII", false), "content_filter");
        assert_eq!(finish_reason("OTHER", false), "stop");
    }

    #[test]
    fn later_filtered_candidate_maps_alone() {
        let v = decode(serde_json::json!({"candidates":[
            {"content":{"parts":[{"text":"a"}]},"finishReason":"STOP","index":0},
            {"content":{"parts":[{"text":"b"}]},"finishReason":"SAFETY","index":1}]}));
        assert_eq!(v["choices"][0]["message"]["content"], "a");
        assert_eq!(v["choices"][1]["finish_reason"], "content_filter");
        assert!(v["choices"][1]["message"]["content"].is_null());
    }

    #[test]
    fn usage_counts_thoughts_and_cache() {
        let u = UsageMetadata {
            prompt_token_count: Some(10),
            candidates_token_count: Some(5),
            thoughts_token_count: Some(7),
            cached_content_token_count: Some(4),
            total_token_count: Some(22),
        }
        .to_usage();
        assert_eq!(u.completion_tokens, Some(12));
        assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, Some(4));
        assert_eq!(
            u.completion_tokens_details.unwrap().reasoning_tokens,
            Some(7)
        );
    }
}
