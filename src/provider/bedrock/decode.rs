//! Bedrock Converse response → OpenAI chat completion, and the shared mappings (stop reason, usage).

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{
    error::{ErrorKind, LlmError},
    provider::chunk::created_now,
    types::chat::{
        ChatResponse, Choice, CompletionTokensDetails, FunctionCall, Message, PromptTokensDetails,
        ToolCall, Usage,
    },
};

#[derive(Deserialize)]
struct ConverseResponse {
    #[serde(default)]
    output: Option<Output>,
    #[serde(rename = "stopReason", default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<BedrockUsage>,
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    message: Option<OutMessage>,
}

#[derive(Deserialize)]
struct OutMessage {
    #[serde(default)]
    content: Vec<OutBlock>,
}

#[derive(Deserialize)]
struct OutBlock {
    #[serde(default)]
    text: Option<String>,
    #[serde(rename = "toolUse", default)]
    tool_use: Option<OutToolUse>,
    #[serde(rename = "reasoningContent", default)]
    reasoning_content: Option<ReasoningContent>,
}

#[derive(Deserialize)]
struct OutToolUse {
    #[serde(rename = "toolUseId")]
    tool_use_id: String,
    name: String,
    input: Box<RawValue>,
}

#[derive(Deserialize)]
pub(super) struct ReasoningContent {
    #[serde(rename = "reasoningText", default)]
    reasoning_text: Option<ReasoningText>,
    /// Streaming deltas carry the text directly.
    #[serde(default)]
    pub(super) text: Option<String>,
}

#[derive(Deserialize)]
struct ReasoningText {
    #[serde(default)]
    text: Option<String>,
}

/// Converse `usage` (also the stream's `metadata.usage`).
#[derive(Deserialize, Default)]
pub(super) struct BedrockUsage {
    #[serde(rename = "inputTokens", default)]
    input_tokens: u64,
    #[serde(rename = "outputTokens", default)]
    output_tokens: u64,
    #[serde(rename = "totalTokens", default)]
    total_tokens: Option<u64>,
    #[serde(rename = "cacheReadInputTokens", default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(rename = "cacheWriteInputTokens", default)]
    cache_write_input_tokens: Option<u64>,
}

/// OpenAI usage from Bedrock's: `prompt_tokens` counts cache reads and writes too (LiteLLM's
/// choice), `cached_tokens` the reads; `total_tokens` is Bedrock's own total.
pub(super) fn usage(u: &BedrockUsage) -> Usage {
    let read = u.cache_read_input_tokens.unwrap_or(0);
    let write = u.cache_write_input_tokens.unwrap_or(0);
    let prompt = u.input_tokens + read + write;
    Usage {
        prompt_tokens: Some(prompt),
        completion_tokens: Some(u.output_tokens),
        total_tokens: Some(u.total_tokens.unwrap_or(prompt + u.output_tokens)),
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: Some(read),
            ..PromptTokensDetails::default()
        }),
        completion_tokens_details: Some(CompletionTokensDetails {
            reasoning_tokens: Some(0),
            ..CompletionTokensDetails::default()
        }),
        ..Usage::default()
    }
}

/// OpenAI `finish_reason` for a Converse `stopReason`.
#[must_use]
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        // end_turn, stop_sequence, and anything new.
        _ => "stop",
    }
}

/// A fresh `chatcmpl-…` id.
pub(super) fn completion_id() -> String {
    format!(
        "chatcmpl-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

/// Decodes a Converse body into a chat completion answering as `model`.
pub fn decode_converse(body: &[u8], model: &str) -> Result<ChatResponse, LlmError> {
    let resp: ConverseResponse = serde_json::from_slice(body).map_err(|e| {
        LlmError::new(
            ErrorKind::InternalServer,
            format!("the provider returned an invalid Converse response: {e}"),
        )
        .with_status(http::StatusCode::BAD_GATEWAY)
        .with_provider("bedrock")
    })?;
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut tool_calls = Vec::new();
    let blocks = resp
        .output
        .and_then(|o| o.message)
        .map(|m| m.content)
        .unwrap_or_default();
    for block in blocks {
        if let Some(t) = block.text {
            text.get_or_insert_with(String::new).push_str(&t);
        }
        if let Some(r) = block
            .reasoning_content
            .and_then(|r| r.reasoning_text.and_then(|t| t.text).or(r.text))
        {
            reasoning.get_or_insert_with(String::new).push_str(&r);
        }
        if let Some(tu) = block.tool_use {
            tool_calls.push(ToolCall {
                id: Some(tu.tool_use_id),
                kind_name: Some("function".into()),
                function: Some(FunctionCall {
                    name: Some(tu.name),
                    arguments: Some(tu.input.get().to_owned()),
                    ..FunctionCall::default()
                }),
                ..ToolCall::default()
            });
        }
    }
    let mut message = Message {
        role: "assistant".into(),
        content: text.map(crate::types::chat::Content::Text),
        reasoning_content: reasoning,
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        ..Message::default()
    };
    if message.content.is_none() {
        message.set_explicit_null("content", true);
    }
    let usage = resp.usage.as_ref().map(usage);
    Ok(ChatResponse {
        id: Some(completion_id()),
        object: Some("chat.completion".into()),
        created: Some(created_now()),
        model: Some(model.to_owned()),
        choices: vec![Choice {
            index: Some(0),
            message: Some(message),
            finish_reason: Some(
                finish_reason(resp.stop_reason.as_deref().unwrap_or("end_turn")).into(),
            ),
            ..Choice::default()
        }],
        usage,
        ..ChatResponse::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_stop_reasons() {
        assert_eq!(finish_reason("end_turn"), "stop");
        assert_eq!(finish_reason("stop_sequence"), "stop");
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("tool_use"), "tool_calls");
        assert_eq!(finish_reason("guardrail_intervened"), "content_filter");
        assert_eq!(finish_reason("content_filtered"), "content_filter");
    }

    #[test]
    fn tool_only_answer_has_null_content_and_reasoning() {
        let body = br#"{"output":{"message":{"role":"assistant","content":[
            {"reasoningContent":{"reasoningText":{"text":"think","signature":"s"}}},
            {"toolUse":{"toolUseId":"t1","name":"f","input":{"a":1}}}]}},
            "stopReason":"tool_use","usage":{"inputTokens":3,"outputTokens":4}}"#;
        let r = decode_converse(body, "g").unwrap();
        let v = serde_json::to_value(&r).unwrap();
        let msg = &v["choices"][0]["message"];
        assert!(msg["content"].is_null() && msg.get("content").is_some());
        assert_eq!(msg["reasoning_content"], "think");
        assert_eq!(msg["tool_calls"][0]["function"]["arguments"], r#"{"a":1}"#);
        assert_eq!(v["usage"]["total_tokens"], 7);
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    }
}
