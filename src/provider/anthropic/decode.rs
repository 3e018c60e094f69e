//! Anthropic response decoding: a Messages API `message` → an OpenAI chat completion.

use serde::Deserialize;
use serde_json::Value;

use super::{encode::is_json_mode, JSON_TOOL_NAME};
use crate::{
    error::LlmError,
    provider::openai::invalid_upstream_json,
    types::chat::{
        ChatRequest, ChatResponse, Choice, CompletionTokensDetails, Content, FunctionCall, Message,
        PromptTokensDetails, ToolCall, Usage,
    },
};

/// Anthropic's `usage` object (every count may be absent or `null`).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub(super) struct AnthropicUsage {
    pub(super) input_tokens: Option<u64>,
    pub(super) output_tokens: Option<u64>,
    pub(super) cache_creation_input_tokens: Option<u64>,
    pub(super) cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Overwrites the counts `newer` reports (a `message_delta` carries cumulative counts).
    pub(super) fn update(&mut self, newer: &Self) {
        let pick = |old: &mut Option<u64>, new: Option<u64>| {
            if new.is_some() {
                *old = new;
            }
        };
        pick(&mut self.input_tokens, newer.input_tokens);
        pick(&mut self.output_tokens, newer.output_tokens);
        pick(
            &mut self.cache_creation_input_tokens,
            newer.cache_creation_input_tokens,
        );
        pick(
            &mut self.cache_read_input_tokens,
            newer.cache_read_input_tokens,
        );
    }
}

#[derive(Deserialize)]
struct MessagesResponse {
    id: Option<String>,
    #[serde(default)]
    content: Vec<Value>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// OpenAI usage from Anthropic's counts: `prompt_tokens` counts every input token (uncached, cache
/// writes and cache reads), `cached_tokens` the cache reads; `reasoning_tokens` is an estimate
/// (Anthropic counts thinking in `output_tokens` without a split), made from the thinking text's
/// length.
#[must_use]
pub fn usage_from(
    input: u64,
    output: u64,
    cache_creation: u64,
    cache_read: u64,
    reasoning_chars: usize,
) -> Usage {
    let prompt = input + cache_creation + cache_read;
    let mut usage = Usage::new(prompt, output);
    usage.prompt_tokens_details = Some(PromptTokensDetails {
        cached_tokens: Some(cache_read),
        ..PromptTokensDetails::default()
    });
    usage.completion_tokens_details = Some(CompletionTokensDetails {
        reasoning_tokens: Some((reasoning_chars as u64).div_ceil(4)),
        ..CompletionTokensDetails::default()
    });
    // Cache writes are priced apart from plain input: keep Anthropic's counts (as LiteLLM does) so
    // that cost accounting can tell them apart.
    if cache_creation > 0 || cache_read > 0 {
        let _ = usage
            .extra
            .insert("cache_creation_input_tokens", &cache_creation);
        let _ = usage.extra.insert("cache_read_input_tokens", &cache_read);
    }
    usage
}

impl AnthropicUsage {
    pub(super) fn to_openai(self, reasoning_chars: usize) -> Usage {
        usage_from(
            self.input_tokens.unwrap_or(0),
            self.output_tokens.unwrap_or(0),
            self.cache_creation_input_tokens.unwrap_or(0),
            self.cache_read_input_tokens.unwrap_or(0),
            reasoning_chars,
        )
    }
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
#[must_use]
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything new.
        _ => "stop",
    }
}

/// Decodes a complete Messages API response for `chat`.
pub fn decode_messages(chat: &ChatRequest, body: &[u8]) -> Result<ChatResponse, LlmError> {
    let resp: MessagesResponse =
        serde_json::from_slice(body).map_err(|e| invalid_upstream_json("message", &e))?;
    let json_mode = is_json_mode(chat);

    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    let mut json_answer = None;
    for block in resp.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => {
                let name = block.get("name").and_then(Value::as_str).unwrap_or("");
                let input = block.get("input").cloned().unwrap_or(Value::Null);
                let arguments = serde_json::to_string(&input).unwrap_or_default();
                if json_mode && name == JSON_TOOL_NAME {
                    json_answer = Some(arguments);
                    continue;
                }
                tool_calls.push(ToolCall {
                    id: block.get("id").and_then(Value::as_str).map(str::to_owned),
                    kind_name: Some("function".into()),
                    function: Some(FunctionCall {
                        name: Some(name.to_owned()),
                        arguments: Some(arguments),
                        ..FunctionCall::default()
                    }),
                    ..ToolCall::default()
                });
            }
            Some("thinking") => {
                reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or(""));
                thinking_blocks.push(block);
            }
            Some("redacted_thinking") => thinking_blocks.push(block),
            _ => {}
        }
    }
    let mut stop = resp.stop_reason.as_deref().map_or("stop", finish_reason);
    if let Some(answer) = json_answer {
        if tool_calls.is_empty() {
            text = answer;
            stop = "stop";
        }
    }

    let mut message = Message {
        role: "assistant".into(),
        content: (!text.is_empty()).then_some(Content::Text(text)),
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        reasoning_content: (!thinking_blocks.is_empty()).then(|| reasoning.clone()),
        ..Message::default()
    };
    message.set_explicit_null("content", message.content.is_none());
    if !thinking_blocks.is_empty() {
        // Parsed JSON values always serialize.
        let _ = message.extra.insert("thinking_blocks", &thinking_blocks);
    }

    Ok(ChatResponse {
        id: resp.id,
        object: Some("chat.completion".into()),
        created: Some(crate::provider::chunk::created_now()),
        model: Some(chat.model.clone()),
        choices: vec![Choice {
            index: Some(0),
            message: Some(message),
            finish_reason: Some(stop.to_owned()),
            ..Choice::default()
        }],
        usage: Some(resp.usage.to_openai(reasoning.len())),
        ..ChatResponse::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(s: &str) -> ChatRequest {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn json_mode_answer_becomes_text() {
        let c = chat(r#"{"model":"g","messages":[],"response_format":{"type":"json_object"}}"#);
        let body = br#"{"id":"m","content":[{"type":"tool_use","id":"t","name":"json_tool_call","input":{"a":1}}],"stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":4}}"#;
        let r = decode_messages(&c, body).unwrap();
        let m = r.choices[0].message.as_ref().unwrap();
        assert_eq!(m.text(), r#"{"a":1}"#);
        assert!(m.tool_calls.is_none());
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn null_counts_and_missing_usage_are_zero() {
        let c = chat(r#"{"model":"g","messages":[]}"#);
        let body = br#"{"id":"m","content":[],"stop_reason":null,"usage":{"input_tokens":null,"output_tokens":2}}"#;
        let r = decode_messages(&c, body).unwrap();
        let u = r.usage.unwrap();
        assert_eq!((u.prompt_tokens, u.total_tokens), (Some(0), Some(2)));
        let v = serde_json::to_value(&r.choices[0].message).unwrap();
        assert_eq!(v["content"], Value::Null);
    }

    #[test]
    fn stop_reasons_map() {
        assert_eq!(finish_reason("end_turn"), "stop");
        assert_eq!(finish_reason("stop_sequence"), "stop");
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("tool_use"), "tool_calls");
        assert_eq!(finish_reason("refusal"), "content_filter");
    }
}
