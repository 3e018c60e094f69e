//! OpenAI chat request → Bedrock Converse request body.
//!
//! - `system` / `developer` messages → `system: [{text}]`;
//! - user and assistant content → content blocks: `{text}`, `{image: {format, source: {bytes}}}`
//!   (from `data:` URLs only: Converse takes image bytes, and `encode` makes no network call);
//! - assistant `tool_calls` → `{toolUse: {toolUseId, name, input}}`;
//! - `tool` messages → a user message with `{toolResult: {toolUseId, content: [{text}]}}`;
//! - consecutive messages with the same Bedrock role are merged (Converse requires the roles to
//!   alternate, and tool results of one turn go back in one user message);
//! - `max_completion_tokens` / `max_tokens`, `temperature`, `top_p`, `stop` → `inferenceConfig`;
//! - `tools` → `toolConfig.tools[].toolSpec` with `inputSchema.json`; `tool_choice` `auto` →
//!   `{auto: {}}`, `required` → `{any: {}}`, a named function → `{tool: {name}}`; `none` sends no
//!   `toolChoice` (Converse has no such choice; the tools stay declared so that a history with tool
//!   calls remains valid);
//! - request keys that are not OpenAI parameters (`top_k`, `thinking`, …) →
//!   `additionalModelRequestFields`, as sent (LiteLLM does the same); the deployment's
//!   `guardrailConfig` is passed on.
//!
//! OpenAI parameters without a Converse field (`n` > 1, `seed`, penalties, `logprobs`, `logit_bias`,
//! `response_format`, `reasoning_effort`, `user`, …) are refused with a 400, or dropped with
//! `drop_params` ([`SUPPORTED_PARAMS`], [`params`](crate::provider::params)).

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::{
    error::LlmError,
    provider::{params::is_openai_chat_param, Deployment},
    types::chat::{is_upstream_param, ChatRequest, Content, ContentPart, Message, PartKind, Tool},
};

#[derive(Serialize)]
struct ConverseRequest<'a> {
    messages: Vec<BedrockMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<Block<'a>>,
    #[serde(
        rename = "inferenceConfig",
        skip_serializing_if = "InferenceConfig::is_empty"
    )]
    inference_config: InferenceConfig,
    #[serde(rename = "toolConfig", skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(
        rename = "additionalModelRequestFields",
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_pairs"
    )]
    additional_model_request_fields: Option<Vec<(&'a str, &'a RawValue)>>,
    #[serde(rename = "guardrailConfig", skip_serializing_if = "Option::is_none")]
    guardrail_config: Option<&'a serde_json::Value>,
}

#[derive(Serialize)]
struct BedrockMessage<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum Block<'a> {
    Text(&'a str),
    Image(ImageBlock<'a>),
    ToolUse(ToolUse<'a>),
    ToolResult(ToolResult<'a>),
}

#[derive(Serialize)]
struct ImageBlock<'a> {
    format: &'a str,
    source: ImageSource<'a>,
}

#[derive(Serialize)]
struct ImageSource<'a> {
    /// Base64, as the JSON protocol carries blobs: the data URL's payload as it is.
    bytes: &'a str,
}

#[derive(Serialize)]
struct ToolUse<'a> {
    #[serde(rename = "toolUseId")]
    tool_use_id: &'a str,
    name: &'a str,
    input: Box<RawValue>,
}

#[derive(Serialize)]
struct ToolResult<'a> {
    #[serde(rename = "toolUseId")]
    tool_use_id: &'a str,
    content: Vec<Block<'a>>,
}

#[derive(Default, Serialize)]
struct InferenceConfig {
    #[serde(rename = "maxTokens", skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(rename = "topP", skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(rename = "stopSequences", skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<String>,
}

impl InferenceConfig {
    fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
    }
}

#[derive(Serialize)]
struct ToolConfig<'a> {
    tools: Vec<ToolEntry<'a>>,
    #[serde(rename = "toolChoice", skip_serializing_if = "Option::is_none")]
    tool_choice: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct ToolEntry<'a> {
    #[serde(rename = "toolSpec")]
    tool_spec: ToolSpec<'a>,
}

#[derive(Serialize)]
struct ToolSpec<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(rename = "inputSchema")]
    input_schema: InputSchema<'a>,
}

#[derive(Serialize)]
struct InputSchema<'a> {
    json: &'a RawValue,
}

/// The OpenAI chat parameters the Converse translation maps beyond
/// [`CORE_PARAMS`](crate::provider::params::CORE_PARAMS); the others are refused, or dropped
/// with `drop_params` (see [`params`](crate::provider::params)).
pub const SUPPORTED_PARAMS: &[&str] = &["tools", "tool_choice"];

/// Request keys that are neither OpenAI parameters nor gateway controls: model-specific fields
/// for `additionalModelRequestFields`.
fn additional_fields(chat: &ChatRequest) -> Option<Vec<(&str, &RawValue)>> {
    let fields: Vec<(&str, &RawValue)> = chat
        .extra
        .iter()
        .filter(|(k, _)| is_upstream_param(k) && !is_openai_chat_param(k))
        .collect();
    (!fields.is_empty()).then_some(fields)
}

fn serialize_pairs<S: serde::Serializer>(
    pairs: &Option<Vec<(&str, &RawValue)>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let pairs = pairs.as_deref().unwrap_or_default();
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// The schema sent for a function without `parameters`.
const EMPTY_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

/// The Converse body for `chat`.
pub fn converse_body(chat: &ChatRequest, dep: &Deployment) -> Result<Bytes, LlmError> {
    let empty_schema: Box<RawValue> = RawValue::from_string(EMPTY_SCHEMA.to_owned())
        .map_err(|e| LlmError::internal(e.to_string()))?;
    let mut system = Vec::new();
    let mut messages: Vec<BedrockMessage<'_>> = Vec::with_capacity(chat.messages.len());
    for (i, msg) in chat.messages.iter().enumerate() {
        let (role, blocks) = match msg.role.as_str() {
            "system" | "developer" => {
                text_blocks(msg, i, &mut system)?;
                continue;
            }
            "user" => {
                let mut blocks = Vec::new();
                content_blocks(msg.content.as_ref(), i, &mut blocks)?;
                ("user", blocks)
            }
            "assistant" => ("assistant", assistant_blocks(msg, i)?),
            "tool" => {
                let id = msg.tool_call_id.as_deref().ok_or_else(|| {
                    LlmError::bad_request(format!(
                        "messages[{i}]: a tool message needs tool_call_id"
                    ))
                    .with_param(format!("messages[{i}].tool_call_id"))
                })?;
                let mut content = Vec::new();
                content_blocks(msg.content.as_ref(), i, &mut content)?;
                if content.is_empty() {
                    content.push(Block::Text(""));
                }
                (
                    "user",
                    vec![Block::ToolResult(ToolResult {
                        tool_use_id: id,
                        content,
                    })],
                )
            }
            other => {
                return Err(LlmError::bad_request(format!(
                    "messages[{i}]: role {other:?} is not supported by Bedrock Converse"
                ))
                .with_param(format!("messages[{i}].role")))
            }
        };
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(BedrockMessage {
                role,
                content: blocks,
            }),
        }
    }

    let inference_config = InferenceConfig {
        max_tokens: chat.max_completion_tokens.or(chat.max_tokens),
        temperature: chat.temperature,
        top_p: chat.top_p,
        stop_sequences: chat.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
    };

    let tool_config = match chat.tools.as_deref() {
        Some(tools) if !tools.is_empty() => Some(ToolConfig {
            tools: tools
                .iter()
                .enumerate()
                .map(|(i, t)| tool_entry(t, i, &empty_schema))
                .collect::<Result<_, _>>()?,
            tool_choice: tool_choice(chat.tool_choice.as_ref())?,
        }),
        _ => None,
    };

    let additional = additional_fields(chat);

    let body = ConverseRequest {
        messages,
        system,
        inference_config,
        tool_config,
        additional_model_request_fields: additional,
        guardrail_config: dep.param("guardrailConfig"),
    };
    let mut w = BytesMut::with_capacity(256 + chat.messages.len() * 128).writer();
    serde_json::to_writer(&mut w, &body)
        .map_err(|e| LlmError::internal(format!("cannot encode the Bedrock request: {e}")))?;
    Ok(w.into_inner().freeze())
}

fn text_blocks<'a>(msg: &'a Message, i: usize, out: &mut Vec<Block<'a>>) -> Result<(), LlmError> {
    match msg.content.as_ref() {
        None => Ok(()),
        Some(Content::Text(t)) => {
            if !t.is_empty() {
                out.push(Block::Text(t));
            }
            Ok(())
        }
        Some(Content::Parts(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                match (p.kind(), p.text.as_deref()) {
                    (PartKind::Text, Some(t)) if !t.is_empty() => out.push(Block::Text(t)),
                    (PartKind::Text, _) => {}
                    _ => {
                        return Err(LlmError::bad_request(format!(
                            "messages[{i}].content[{j}]: a system message takes text only"
                        ))
                        .with_param(format!("messages[{i}].content")))
                    }
                }
            }
            Ok(())
        }
    }
}

fn content_blocks<'a>(
    content: Option<&'a Content>,
    i: usize,
    out: &mut Vec<Block<'a>>,
) -> Result<(), LlmError> {
    match content {
        // Converse rejects blank text blocks.
        Some(Content::Text(t)) if !t.is_empty() => out.push(Block::Text(t)),
        None | Some(Content::Text(_)) => {}
        Some(Content::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                if let Some(block) = part_block(part, i, j)? {
                    out.push(block);
                }
            }
        }
    }
    Ok(())
}

fn part_block<'a>(
    part: &'a ContentPart,
    i: usize,
    j: usize,
) -> Result<Option<Block<'a>>, LlmError> {
    let unsupported = |what: &str| {
        LlmError::bad_request(format!(
            "messages[{i}].content[{j}]: {what} is not supported by Bedrock Converse"
        ))
        .with_param(format!("messages[{i}].content"))
    };
    match part.kind() {
        PartKind::Text => Ok(part
            .text
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(Block::Text)),
        PartKind::ImageUrl => {
            let url = part
                .image_url
                .as_ref()
                .map(|u| u.url.as_str())
                .ok_or_else(|| unsupported("an image_url part without a url"))?;
            let (mime, data) = parse_data_url(url).ok_or_else(|| {
                unsupported(
                    "an image URL that is not a base64 data: URL (Converse takes image bytes)",
                )
            })?;
            let format = mime
                .strip_prefix("image/")
                .filter(|f| matches!(*f, "png" | "jpeg" | "gif" | "webp"))
                .ok_or_else(|| unsupported(&format!("an image of type {mime:?}")))?;
            Ok(Some(Block::Image(ImageBlock {
                format,
                source: ImageSource { bytes: data },
            })))
        }
        PartKind::InputAudio => Err(unsupported("input_audio")),
        PartKind::File => Err(unsupported("a file part")),
        PartKind::Other => Err(unsupported(&format!("a {:?} part", part.kind_name))),
    }
}

/// Splits `data:<mime>;base64,<data>` into the MIME type and the base64 payload.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    let mime = mime.split(';').next().unwrap_or(mime);
    Some((mime, data))
}

fn assistant_blocks(msg: &Message, i: usize) -> Result<Vec<Block<'_>>, LlmError> {
    let mut blocks = Vec::new();
    content_blocks(msg.content.as_ref(), i, &mut blocks)?;
    for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
        let param = || format!("messages[{i}].tool_calls[{j}]");
        let f = call.function.as_ref();
        let name = f.and_then(|f| f.name.as_deref()).ok_or_else(|| {
            LlmError::bad_request(format!("{}: a tool call needs a function name", param()))
                .with_param(param())
        })?;
        let id = call.id.as_deref().ok_or_else(|| {
            LlmError::bad_request(format!("{}: a tool call needs an id", param()))
                .with_param(param())
        })?;
        let args = f
            .and_then(|f| f.arguments.as_deref())
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .unwrap_or("{}");
        let input = RawValue::from_string(args.to_owned())
            .ok()
            .filter(|raw| raw.get().starts_with('{'))
            .ok_or_else(|| {
                LlmError::bad_request(format!(
                    "{}: function.arguments must be a JSON object",
                    param()
                ))
                .with_param(param())
            })?;
        blocks.push(Block::ToolUse(ToolUse {
            tool_use_id: id,
            name,
            input,
        }));
    }
    Ok(blocks)
}

fn tool_entry<'a>(
    tool: &'a Tool,
    i: usize,
    empty_schema: &'a RawValue,
) -> Result<ToolEntry<'a>, LlmError> {
    let f = tool
        .function
        .as_ref()
        .filter(|_| tool.kind_name == "function")
        .ok_or_else(|| {
            LlmError::bad_request(format!(
                "tools[{i}]: only function tools are supported by Bedrock Converse"
            ))
            .with_param(format!("tools[{i}]"))
        })?;
    Ok(ToolEntry {
        tool_spec: ToolSpec {
            name: &f.name,
            description: f.description.as_deref().filter(|d| !d.is_empty()),
            input_schema: InputSchema {
                json: f.parameters.as_deref().unwrap_or(empty_schema),
            },
        },
    })
}

fn tool_choice(choice: Option<&serde_json::Value>) -> Result<Option<serde_json::Value>, LlmError> {
    use serde_json::{json, Value};
    Ok(match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"auto": {}})),
            "required" | "any" => Some(json!({"any": {}})),
            "none" => None,
            other => {
                return Err(LlmError::bad_request(format!(
                    "tool_choice {other:?} is not one of none, auto, required"
                ))
                .with_param("tool_choice"))
            }
        },
        Some(obj @ Value::Object(_)) => {
            let name = obj
                .pointer("/function/name")
                .or_else(|| obj.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    LlmError::bad_request("tool_choice needs function.name")
                        .with_param("tool_choice")
                })?;
            Some(json!({"tool": {"name": name}}))
        }
        Some(_) => {
            return Err(
                LlmError::bad_request("tool_choice must be a string or an object")
                    .with_param("tool_choice"),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn encode(body: Value) -> Result<Value, LlmError> {
        let chat: ChatRequest = serde_json::from_value(body).unwrap();
        let dep = Deployment::new("g", "bedrock/m");
        converse_body(&chat, &dep).map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn merges_consecutive_tool_results_into_one_user_turn() {
        let v = encode(json!({"model": "g", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": ""}},
                {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]},
            {"role": "tool", "tool_call_id": "a", "content": "1"},
            {"role": "tool", "tool_call_id": "b", "content": "2"}
        ]}))
        .unwrap();
        let msgs = v["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[1]["content"][0]["toolUse"]["input"], json!({}));
        assert_eq!(msgs[1]["content"][1]["toolUse"]["input"], json!({"x": 1}));
        assert_eq!(msgs[2]["role"], "user");
        assert_eq!(msgs[2]["content"].as_array().unwrap().len(), 2);
        assert_eq!(msgs[2]["content"][1]["toolResult"]["toolUseId"], "b");
        assert!(v.get("inferenceConfig").is_none());
    }

    #[test]
    fn tool_choice_forms() {
        let base = |choice: Value| {
            encode(
                json!({"model": "g", "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice}),
            )
        };
        let v = base(json!({"type": "function", "function": {"name": "f"}})).unwrap();
        assert_eq!(
            v["toolConfig"]["toolChoice"],
            json!({"tool": {"name": "f"}})
        );
        assert_eq!(
            v["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
            json!({"type": "object", "properties": {}})
        );
        let v = base(json!("none")).unwrap();
        assert!(v["toolConfig"].get("toolChoice").is_none());
        assert!(base(json!("sometimes")).is_err());
    }

    #[test]
    fn passes_model_specific_fields_on() {
        let v = encode(
            json!({"model": "g", "messages": [{"role": "user", "content": "hi"}],
            "top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 1024},
            "metadata": {"tags": ["a"]}, "logit_bias": {"1": 2}}),
        )
        .unwrap();
        assert_eq!(
            v["additionalModelRequestFields"],
            json!({"top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 1024}})
        );
    }

    #[test]
    fn rejects_remote_images() {
        let err = encode(
            json!({"model": "g", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}),
        )
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::BadRequest);
    }

    #[test]
    fn parses_data_urls() {
        assert_eq!(
            parse_data_url("data:image/jpeg;base64,AAAA"),
            Some(("image/jpeg", "AAAA"))
        );
        assert_eq!(parse_data_url("data:image/jpeg,AAAA"), None);
    }
}
