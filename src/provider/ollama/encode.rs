//! Ollama request encoding: `/api/chat` (messages), `/api/generate` (LiteLLM's `ollama_pt` prompt)
//! and `/api/embed`.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde_json::{value::RawValue, Map, Value};

use crate::{
    error::LlmError,
    provider::params::is_openai_chat_param,
    types::{
        chat::{is_upstream_param, ChatRequest, Content, Message, PartKind, Tool},
        embeddings::EmbeddingsRequest,
    },
};

/// Ollama top-level request keys a client may send as they are.
const OLLAMA_TOP_LEVEL: &[&str] = &["keep_alive", "think"];

/// The OpenAI chat parameters Ollama maps beyond [`CORE_PARAMS`](crate::provider::params::CORE_PARAMS)
/// (LiteLLM's `OllamaChatConfig` list, plus `presence_penalty`, which Ollama's `options` take).
/// `tool_choice` is accepted and not sent, as LiteLLM does: Ollama has no such field and always
/// lets the model choose (`auto`). `/api/generate` (`ollama/`) refuses `tools` itself.
pub const CHAT_PARAMS: &[&str] = &[
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "response_format",
    "reasoning_effort",
    "tools",
    "tool_choice",
];

/// The OpenAI embeddings parameters `/api/embed` maps (`encoding_format: base64` is produced from
/// Ollama's floats).
pub const EMBEDDINGS_PARAMS: &[&str] = &["dimensions", "encoding_format"];

#[derive(Serialize)]
struct ChatBody<'a> {
    model: &'a str,
    messages: Vec<OllamaMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a [Tool]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    options: Map<String, Value>,
    stream: bool,
    #[serde(flatten)]
    top_level: Map<String, Value>,
}

#[derive(Serialize)]
struct GenerateBody<'a> {
    model: &'a str,
    prompt: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    options: Map<String, Value>,
    stream: bool,
    #[serde(flatten)]
    top_level: Map<String, Value>,
}

#[derive(Serialize)]
struct OllamaMessage<'a> {
    role: &'a str,
    content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OllamaToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<&'a str>,
}

#[derive(Serialize)]
struct OllamaToolCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    function: OllamaFunction<'a>,
}

#[derive(Serialize)]
struct OllamaFunction<'a> {
    name: &'a str,
    arguments: Box<RawValue>,
}

fn to_bytes<T: Serialize>(value: &T, size_hint: usize) -> Result<Bytes, LlmError> {
    let mut w = BytesMut::with_capacity(size_hint).writer();
    serde_json::to_writer(&mut w, value)
        .map_err(|e| LlmError::internal(format!("cannot encode the upstream request: {e}")))?;
    Ok(w.into_inner().freeze())
}

/// The bare base64 of a `data:` image URL (what Ollama's `images` takes).
fn image_base64(url: &str) -> Result<&str, LlmError> {
    url.strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
        .map(|(_, data)| data)
        .ok_or_else(|| {
            LlmError::bad_request(
                "ollama takes images as base64 data: URLs (data:image/png;base64,...); remote image URLs are not fetched",
            )
        })
}

/// The base64 images of a message's `image_url` parts.
fn images(content: Option<&Content>) -> Result<Vec<&str>, LlmError> {
    let mut out = Vec::new();
    if let Some(Content::Parts(parts)) = content {
        for p in parts {
            if p.kind() == PartKind::ImageUrl {
                if let Some(img) = &p.image_url {
                    out.push(image_base64(&img.url)?);
                }
            }
        }
    }
    Ok(out)
}

/// `options` and top-level keys from the OpenAI parameters.
fn options_and_top_level(
    chat: &ChatRequest,
    model: &str,
) -> Result<(Map<String, Value>, Map<String, Value>), LlmError> {
    let mut options = Map::new();
    let mut top = Map::new();
    let mut put = |k: &str, v: Value| {
        options.insert(k.to_owned(), v);
    };
    if let Some(t) = chat.temperature {
        put("temperature", Value::from(t));
    }
    if let Some(p) = chat.top_p {
        put("top_p", Value::from(p));
    }
    if let Some(n) = chat.max_tokens.or(chat.max_completion_tokens) {
        put("num_predict", Value::from(n));
    }
    if let Some(s) = chat.seed {
        put("seed", Value::from(s));
    }
    if let Some(stop) = &chat.stop {
        put("stop", Value::from(stop.to_vec()));
    }
    if let Some(f) = chat.frequency_penalty {
        put("frequency_penalty", Value::from(f));
    }
    if let Some(p) = chat.presence_penalty {
        put("presence_penalty", Value::from(p));
    }
    if let Some(effort) = &chat.reasoning_effort {
        // LiteLLM: effort levels for gpt-oss, on/off for other thinking models.
        let think = match effort.as_str() {
            "none" | "disable" => Value::Bool(false),
            level if model.starts_with("gpt-oss") => Value::from(level),
            _ => Value::Bool(true),
        };
        top.insert("think".to_owned(), think);
    }
    for (k, raw) in chat.extra.iter() {
        if !is_upstream_param(k) || is_openai_chat_param(k) {
            continue;
        }
        let v: Value = serde_json::from_str(raw.get())
            .map_err(|e| LlmError::bad_request(format!("invalid value for `{k}`: {e}")))?;
        if k == "options" {
            if let Value::Object(m) = v {
                options.extend(m);
            }
        } else if OLLAMA_TOP_LEVEL.contains(&k) {
            top.insert(k.to_owned(), v);
        } else if !v.is_null() {
            // Ollama options sent at the top level (`top_k`, `num_ctx`, `repeat_penalty`, …) and
            // other provider-specific keys go under `options`, as LiteLLM sends them.
            options.insert(k.to_owned(), v);
        }
    }
    Ok((options, top))
}

/// `format` from `response_format`: `json_object` → `"json"`, `json_schema` → the schema itself.
fn format(chat: &ChatRequest) -> Result<Option<Value>, LlmError> {
    let Some(raw) = &chat.response_format else {
        return Ok(None);
    };
    let rf: Value = serde_json::from_str(raw.get())
        .map_err(|e| LlmError::bad_request(format!("invalid response_format: {e}")))?;
    Ok(match rf.get("type").and_then(Value::as_str) {
        Some("json_object") => Some(Value::from("json")),
        Some("json_schema") => rf
            .get("json_schema")
            .and_then(|s| s.get("schema"))
            .cloned()
            .or_else(|| Some(Value::from("json"))),
        _ => None,
    })
}

/// OpenAI tool calls (arguments as a JSON string) → Ollama's (arguments as an object).
fn tool_calls(msg: &Message) -> Result<Vec<OllamaToolCall<'_>>, LlmError> {
    let Some(calls) = &msg.tool_calls else {
        return Ok(Vec::new());
    };
    calls
        .iter()
        .filter_map(|c| c.function.as_ref().map(|f| (c, f)))
        .map(|(c, f)| {
            let args = f.arguments.as_deref().unwrap_or("").trim();
            let arguments = if args.is_empty() {
                RawValue::from_string("{}".to_owned())
            } else {
                RawValue::from_string(args.to_owned())
            }
            .map_err(|e| {
                LlmError::bad_request(format!("tool call arguments are not valid JSON: {e}"))
            })?;
            Ok(OllamaToolCall {
                id: c.id.as_deref(),
                function: OllamaFunction {
                    name: f.name.as_deref().unwrap_or_default(),
                    arguments,
                },
            })
        })
        .collect()
}

/// The `/api/chat` body.
pub fn chat_body(chat: &ChatRequest, model: &str) -> Result<Bytes, LlmError> {
    // Tool messages name the function they answer (Ollama's `tool_name`).
    let mut names: HashMap<&str, &str> = HashMap::new();
    for m in &chat.messages {
        for c in m.tool_calls.iter().flatten() {
            if let (Some(id), Some(name)) = (
                c.id.as_deref(),
                c.function.as_ref().and_then(|f| f.name.as_deref()),
            ) {
                names.insert(id, name);
            }
        }
    }
    let messages = chat
        .messages
        .iter()
        .map(|m| {
            Ok(OllamaMessage {
                role: &m.role,
                content: m.text(),
                images: images(m.content.as_ref())?,
                tool_calls: tool_calls(m)?,
                tool_name: m
                    .tool_call_id
                    .as_deref()
                    .and_then(|id| names.get(id).copied()),
                thinking: m.reasoning_content.as_deref().filter(|t| !t.is_empty()),
            })
        })
        .collect::<Result<Vec<_>, LlmError>>()?;
    let (options, top_level) = options_and_top_level(chat, model)?;
    let body = ChatBody {
        model,
        messages,
        tools: chat.tools.as_deref().filter(|t| !t.is_empty()),
        format: format(chat)?,
        options,
        stream: chat.stream.unwrap_or(false),
        top_level,
    };
    to_bytes(&body, 512 + chat.messages.len() * 128)
}

/// LiteLLM's `ollama_pt`: the conversation flattened into one prompt, in runs of user (and tool)
/// turns, then system turns, then assistant turns, each run under a `### Role:` heading.
#[must_use]
pub fn ollama_prompt(messages: &[Message]) -> String {
    let mut prompt = String::new();
    let mut i = 0;
    while i < messages.len() {
        let start = i;
        let mut user = String::new();
        while let Some(m) = messages.get(i) {
            if !matches!(m.role.as_str(), "user" | "tool" | "function") {
                break;
            }
            user.push_str(&m.text());
            i += 1;
        }
        if !user.is_empty() {
            prompt.push_str("### User:\n");
            prompt.push_str(&user);
            prompt.push_str("\n\n");
        }
        let mut system = String::new();
        while let Some(m) = messages.get(i) {
            if !matches!(m.role.as_str(), "system" | "developer") {
                break;
            }
            system.push_str(&m.text());
            i += 1;
        }
        if !system.is_empty() {
            prompt.push_str("### System:\n");
            prompt.push_str(&system);
            prompt.push_str("\n\n");
        }
        let mut assistant = String::new();
        while let Some(m) = messages.get(i) {
            if m.role != "assistant" {
                break;
            }
            assistant.push_str(&m.text());
            if let Some(calls) = m.tool_calls.as_ref().filter(|c| !c.is_empty()) {
                assistant.push_str("Tool Calls: ");
                assistant.push_str(&tool_calls_text(calls));
            }
            i += 1;
        }
        if !assistant.is_empty() {
            prompt.push_str("### Assistant:\n");
            prompt.push_str(&assistant);
            prompt.push_str("\n\n");
        }
        if i == start {
            // A role none of the runs takes: its text as a user turn, so nothing is lost.
            prompt.push_str("### User:\n");
            prompt.push_str(&messages[i].text());
            prompt.push_str("\n\n");
            i += 1;
        }
    }
    prompt
}

/// The assistant's tool calls as pretty JSON, as `ollama_pt` writes them into the prompt.
fn tool_calls_text(calls: &[crate::types::chat::ToolCall]) -> String {
    let list: Vec<Value> = calls
        .iter()
        .map(|c| {
            let f = c.function.as_ref();
            let args = f
                .and_then(|f| f.arguments.as_deref())
                .and_then(|a| serde_json::from_str::<Value>(a).ok())
                .unwrap_or_else(|| Value::Object(Map::new()));
            serde_json::json!({
                "id": c.id,
                "type": "function",
                "function": {"name": f.and_then(|f| f.name.as_deref()), "arguments": args},
            })
        })
        .collect();
    serde_json::to_string_pretty(&list).unwrap_or_default()
}

/// The `/api/generate` body: the `ollama_pt` prompt, images from user turns.
pub fn generate_body(chat: &ChatRequest, model: &str) -> Result<Bytes, LlmError> {
    if chat.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(LlmError::bad_request(
            "the ollama/ provider (/api/generate) does not take tools; use ollama_chat/ for tool calling",
        ));
    }
    let mut imgs = Vec::new();
    for m in &chat.messages {
        if matches!(m.role.as_str(), "user" | "tool" | "function") {
            imgs.extend(images(m.content.as_ref())?);
        }
    }
    let (options, top_level) = options_and_top_level(chat, model)?;
    let body = GenerateBody {
        model,
        prompt: ollama_prompt(&chat.messages),
        images: imgs,
        format: format(chat)?,
        options,
        stream: chat.stream.unwrap_or(false),
        top_level,
    };
    to_bytes(&body, 512 + chat.messages.len() * 128)
}

#[derive(Serialize)]
struct EmbedBody<'a> {
    model: &'a str,
    input: &'a crate::types::embeddings::EmbeddingInput,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
}

/// The `/api/embed` body.
pub fn embed_body(req: &EmbeddingsRequest, model: &str) -> Result<Bytes, LlmError> {
    to_bytes(
        &EmbedBody {
            model,
            input: &req.input,
            dimensions: req.dimensions,
        },
        256,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(raw: &str) -> ChatRequest {
        serde_json::from_str(raw).unwrap()
    }

    fn json(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn maps_options_and_drops_tool_choice() {
        let chat = req(
            r#"{"model":"g","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"max_tokens":64,
            "stop":"\n\n","seed":1,"tool_choice":"auto","top_k":40,"keep_alive":"5m","metadata":{"a":1},"n":1}"#,
        );
        let v = json(&chat_body(&chat, "llama3.1").unwrap());
        assert_eq!(
            v,
            serde_json::json!({"model":"llama3.1","messages":[{"role":"user","content":"hi"}],
                "options":{"temperature":0.2,"num_predict":64,"seed":1,"stop":["\n\n"],"top_k":40},
                "stream":false,"keep_alive":"5m"})
        );
    }

    #[test]
    fn assistant_tool_calls_get_object_arguments_and_tool_names() {
        let chat = req(r#"{"model":"g","messages":[
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"42"}]}"#);
        let v = json(&chat_body(&chat, "m").unwrap());
        assert_eq!(
            v["messages"],
            serde_json::json!([
                {"role":"assistant","content":"","tool_calls":[{"id":"c1","function":{"name":"f","arguments":{"a":1}}}]},
                {"role":"tool","content":"42","tool_name":"f"}])
        );
    }

    #[test]
    fn remote_images_are_refused() {
        let chat = req(
            r#"{"model":"g","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#,
        );
        assert!(chat_body(&chat, "m").is_err());
    }

    #[test]
    fn ollama_pt_layout() {
        let chat = req(
            r#"{"model":"g","messages":[{"role":"system","content":"S"},{"role":"user","content":"U1"},
            {"role":"user","content":[{"type":"text","text":"U2"}]},{"role":"assistant","content":"A"},
            {"role":"user","content":"U3"}]}"#,
        );
        assert_eq!(
            ollama_prompt(&chat.messages),
            "### System:\nS\n\n### User:\nU1U2\n\n### Assistant:\nA\n\n### User:\nU3\n\n"
        );
    }

    #[test]
    fn json_object_format() {
        let chat = req(r#"{"model":"g","messages":[],"response_format":{"type":"json_object"}}"#);
        assert_eq!(json(&generate_body(&chat, "m").unwrap())["format"], "json");
    }
}
