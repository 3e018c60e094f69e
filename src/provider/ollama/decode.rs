//! Ollama response decoding: `/api/chat` and `/api/generate` answers (complete or one NDJSON line)
//! into OpenAI shapes.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{
    error::{ErrorKind, LlmError},
    types::{
        chat::{ChatResponse, Choice, Content, FunctionCall, Message, ToolCall, Usage},
        embeddings::{Embedding, EmbeddingsResponse, EmbeddingsUsage},
    },
};

/// One Ollama answer: a complete response, or one line of a stream.
#[derive(Debug, Default, Deserialize)]
pub(super) struct OllamaAnswer {
    /// `/api/chat`: the message (or its increment).
    #[serde(default)]
    pub(super) message: Option<OllamaMessage>,
    /// `/api/generate`: the text (or its increment).
    #[serde(default)]
    pub(super) response: Option<String>,
    /// `/api/generate`: thinking text.
    #[serde(default)]
    pub(super) thinking: Option<String>,
    #[serde(default)]
    pub(super) done: bool,
    #[serde(default)]
    pub(super) done_reason: Option<String>,
    #[serde(default)]
    pub(super) prompt_eval_count: Option<u64>,
    #[serde(default)]
    pub(super) eval_count: Option<u64>,
    /// A mid-stream error line.
    #[serde(default)]
    pub(super) error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct OllamaMessage {
    #[serde(default)]
    pub(super) content: Option<String>,
    #[serde(default)]
    pub(super) thinking: Option<String>,
    #[serde(default)]
    pub(super) tool_calls: Option<Vec<OllamaToolCall>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct OllamaToolCall {
    #[serde(default)]
    id: Option<String>,
    function: OllamaFunction,
}

#[derive(Debug, Deserialize)]
struct OllamaFunction {
    name: String,
    #[serde(default)]
    arguments: Option<Box<RawValue>>,
}

impl OllamaAnswer {
    /// The text increment (chat message content or generate response).
    pub(super) fn text(&self) -> &str {
        self.message
            .as_ref()
            .and_then(|m| m.content.as_deref())
            .or(self.response.as_deref())
            .unwrap_or("")
    }

    /// The thinking increment.
    pub(super) fn thinking(&self) -> &str {
        self.message
            .as_ref()
            .and_then(|m| m.thinking.as_deref())
            .or(self.thinking.as_deref())
            .unwrap_or("")
    }

    /// The tool calls, in OpenAI form; stream deltas number them from `first_index`.
    pub(super) fn tool_calls(&self, first_index: Option<u32>) -> Vec<ToolCall> {
        let Some(calls) = self.message.as_ref().and_then(|m| m.tool_calls.as_ref()) else {
            return Vec::new();
        };
        calls
            .iter()
            .zip(first_index.unwrap_or(0)..)
            .map(|(c, index)| ToolCall {
                index: first_index.map(|_| index),
                id: Some(
                    c.id.clone()
                        .unwrap_or_else(|| format!("call_{}", short_id())),
                ),
                kind_name: Some("function".to_owned()),
                function: Some(FunctionCall {
                    name: Some(c.function.name.clone()),
                    arguments: Some(arguments_string(c.function.arguments.as_deref())),
                    ..FunctionCall::default()
                }),
                ..ToolCall::default()
            })
            .collect()
    }

    /// Usage from the eval counts.
    pub(super) fn usage(&self) -> Usage {
        Usage::new(
            self.prompt_eval_count.unwrap_or(0),
            self.eval_count.unwrap_or(0),
        )
    }
}

/// Ollama's arguments (a JSON object) as OpenAI's JSON string; a string is taken as it is.
fn arguments_string(raw: Option<&RawValue>) -> String {
    match raw {
        None => "{}".to_owned(),
        Some(r) => match serde_json::from_str::<String>(r.get()) {
            Ok(s) => s,
            Err(_) => r.get().to_owned(),
        },
    }
}

/// `done_reason` → OpenAI `finish_reason`; any tool call makes it `tool_calls`.
pub(super) fn finish_reason(done_reason: Option<&str>, had_tool_calls: bool) -> &'static str {
    if had_tool_calls {
        return "tool_calls";
    }
    match done_reason {
        Some("length") => "length",
        _ => "stop",
    }
}

/// A random id body in the UUID v4 layout.
fn short_id() -> String {
    let v = fastrand::u128(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (v >> 96) as u32,
        (v >> 80) as u16,
        (v >> 64) as u16 & 0x0fff,
        ((v >> 48) as u16 & 0x3fff) | 0x8000,
        v as u64 & 0xffff_ffff_ffff
    )
}

/// A completion id: `chatcmpl-<uuid>`, as LiteLLM.
pub(super) fn completion_id() -> String {
    format!("chatcmpl-{}", short_id())
}

fn invalid(what: &str, e: &serde_json::Error) -> LlmError {
    LlmError::new(
        ErrorKind::InternalServer,
        format!("the provider returned an invalid {what}: {e}"),
    )
    .with_status(http::StatusCode::BAD_GATEWAY)
}

/// A complete `/api/chat` or `/api/generate` answer as a chat completion for `model`.
pub fn chat_response(body: &[u8], model: &str) -> Result<ChatResponse, LlmError> {
    let answer: OllamaAnswer =
        serde_json::from_slice(body).map_err(|e| invalid("Ollama response", &e))?;
    if let Some(err) = answer.error {
        return Err(LlmError::new(ErrorKind::InternalServer, err).with_provider("ollama"));
    }
    let tool_calls = answer.tool_calls(None);
    let thinking = answer.thinking();
    let message = Message {
        role: "assistant".to_owned(),
        content: Some(Content::Text(answer.text().to_owned())),
        reasoning_content: (!thinking.is_empty()).then(|| thinking.to_owned()),
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        ..Message::default()
    };
    let had_tools = message.tool_calls.is_some();
    Ok(ChatResponse {
        choices: vec![Choice {
            index: Some(0),
            finish_reason: Some(finish_reason(answer.done_reason.as_deref(), had_tools).to_owned()),
            message: Some(message),
            ..Choice::default()
        }],
        id: Some(completion_id()),
        object: Some("chat.completion".to_owned()),
        created: Some(crate::provider::chunk::created_now()),
        model: Some(model.to_owned()),
        usage: Some(answer.usage()),
        ..ChatResponse::default()
    })
}

#[derive(Deserialize)]
struct EmbedAnswer {
    embeddings: Vec<Box<RawValue>>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
}

/// A float vector as OpenAI's `encoding_format: base64`: the little-endian f32 bytes, base64.
fn base64_vector(raw: &RawValue) -> Result<Box<RawValue>, LlmError> {
    use base64::{engine::general_purpose::STANDARD, Engine as _};
    let floats: Vec<f32> =
        serde_json::from_str(raw.get()).map_err(|e| invalid("Ollama embedding", &e))?;
    let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
    serde_json::value::to_raw_value(&STANDARD.encode(bytes))
        .map_err(|e| LlmError::internal(e.to_string()))
}

/// An `/api/embed` answer as an OpenAI embeddings list for `model`; vectors as base64 when
/// `base64` (the client's `encoding_format`), else as the floats Ollama sent.
pub fn embeddings_response(
    body: &[u8],
    model: &str,
    base64: bool,
) -> Result<EmbeddingsResponse, LlmError> {
    let answer: EmbedAnswer =
        serde_json::from_slice(body).map_err(|e| invalid("Ollama embeddings response", &e))?;
    let tokens = answer.prompt_eval_count.unwrap_or(0);
    Ok(EmbeddingsResponse {
        data: answer
            .embeddings
            .into_iter()
            .zip(0..)
            .map(|(embedding, index)| {
                let embedding = if base64 {
                    base64_vector(&embedding)?
                } else {
                    embedding
                };
                Ok(Embedding {
                    object: Some("embedding".to_owned()),
                    index: Some(index),
                    embedding: Some(embedding),
                    ..Embedding::default()
                })
            })
            .collect::<Result<_, LlmError>>()?,
        object: Some("list".to_owned()),
        model: Some(model.to_owned()),
        usage: Some(EmbeddingsUsage {
            prompt_tokens: Some(tokens),
            total_tokens: Some(tokens),
            ..EmbeddingsUsage::default()
        }),
        ..EmbeddingsResponse::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_become_openai_tool_calls() {
        let body = br#"{"model":"m","message":{"role":"assistant","content":"","tool_calls":[{"function":{"index":0,"name":"f","arguments":{"city":"Paris"}}}]},"done_reason":"stop","done":true,"prompt_eval_count":3,"eval_count":4}"#;
        let r = chat_response(body, "grp").unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function");
        assert!(call["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
        assert_eq!(v["usage"]["total_tokens"], 7);
        assert_eq!(v["model"], "grp");
    }

    #[test]
    fn length_and_generate_text() {
        let body = br#"{"response":"hi","done":true,"done_reason":"length","eval_count":1}"#;
        let v = serde_json::to_value(chat_response(body, "g").unwrap()).unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["choices"][0]["message"]["content"], "hi");
        assert_eq!(v["usage"]["prompt_tokens"], 0);
    }

    #[test]
    fn ids_look_like_uuids() {
        let id = completion_id();
        assert_eq!(id.len(), "chatcmpl-".len() + 36, "{id}");
    }

    #[test]
    fn base64_embeddings_are_little_endian_f32() {
        let body = br#"{"embeddings":[[1.0,-2.5]],"prompt_eval_count":3}"#;
        let plain = embeddings_response(body, "m", false).unwrap();
        assert_eq!(
            plain.data[0].embedding.as_ref().unwrap().get(),
            "[1.0,-2.5]"
        );
        let b64 = embeddings_response(body, "m", true).unwrap();
        let s: String =
            serde_json::from_str(b64.data[0].embedding.as_ref().unwrap().get()).unwrap();
        use base64::{engine::general_purpose::STANDARD, Engine as _};
        let bytes = STANDARD.decode(s).unwrap();
        let mut want = 1.0f32.to_le_bytes().to_vec();
        want.extend((-2.5f32).to_le_bytes());
        assert_eq!(bytes, want);
    }
}
