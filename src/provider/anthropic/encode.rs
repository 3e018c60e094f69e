//! Anthropic request encoding: an OpenAI chat body → a Messages API request.

use bytes::{BufMut, Bytes, BytesMut};
use serde::ser::{SerializeMap, Serializer as _};
use serde_json::{json, value::RawValue, Map, Value};

use super::{DEFAULT_API_BASE, JSON_TOOL_NAME};
use crate::{
    error::LlmError,
    provider::{
        openai::{join_url, resolved_head},
        params::{drop_params, is_openai_chat_param},
        resolve::{credential_header, endpoint, Resolved},
        Deployment,
    },
    types::{
        chat::{is_upstream_param, ChatRequest, Content, ContentPart, Message, PartKind, Tool},
        wire::Extra,
    },
};

/// The `anthropic-version` header sent with every request.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Output tokens added to the thinking budget when the client gives no `max_tokens` (LiteLLM's
/// `DEFAULT_MAX_TOKENS`).
const THINKING_HEADROOM: u64 = 4096;

/// The default output limit for a model whose limit is not known.
const FALLBACK_MAX_TOKENS: u64 = 4096;

/// Request keys this translation reads itself (never copied from `extra`).
const HANDLED_EXTRA: &[&str] = &["thinking"];

/// The OpenAI chat parameters this translation maps beyond
/// [`CORE_PARAMS`](crate::provider::params::CORE_PARAMS) (LiteLLM's `AnthropicConfig` list, less
/// what is not mapped here); the others are refused, or dropped with `drop_params` (see
/// [`params`](crate::provider::params)).
pub const SUPPORTED_PARAMS: &[&str] = &[
    "user",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
];

/// Resolves an Anthropic deployment: the Messages URL under its base (default
/// `https://api.anthropic.com`) and its `x-api-key` value.
pub(crate) fn resolve(dep: &Deployment, r: &mut Resolved) {
    let base = dep.api_base.as_deref().unwrap_or(DEFAULT_API_BASE);
    let base = base.trim_end_matches('/');
    let url = if base.ends_with("/v1/messages") {
        base.to_owned()
    } else if base.ends_with("/v1") {
        join_url(base, "messages")
    } else {
        join_url(base, "v1/messages")
    };
    r.chat = endpoint(&url);
    r.chat_stream = r.chat.clone();
    if let Some(key) = dep.api_key.as_ref().filter(|k| !k.is_empty()) {
        r.credential = Some(credential_header(X_API_KEY, key.expose(), "api_key"));
    }
}

pub(super) const X_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");

/// Builds the `POST /v1/messages` request for a chat body.
pub fn encode_messages(
    chat: &ChatRequest,
    dep: &Deployment,
) -> Result<http::Request<Bytes>, LlmError> {
    let r = dep.resolved("anthropic");
    let endpoint = r.chat_endpoint(false)?;
    let (body, uses_files) = messages_body(chat, dep)?;
    let mut head = resolved_head(endpoint, &r)?;
    let headers = head.headers_mut();
    if !headers.contains_key("anthropic-version") {
        headers.append(
            http::HeaderName::from_static("anthropic-version"),
            http::HeaderValue::from_static(ANTHROPIC_VERSION),
        );
    }
    if uses_files && !headers.contains_key("anthropic-beta") {
        headers.append(
            http::HeaderName::from_static("anthropic-beta"),
            http::HeaderValue::from_static("files-api-2025-04-14"),
        );
    }
    if !headers.contains_key(X_API_KEY) {
        r.add_credential(headers)?;
    }
    Ok(head.map(|()| body))
}

/// The request body, and whether it refers to uploaded files (Files API beta).
fn messages_body(chat: &ChatRequest, dep: &Deployment) -> Result<(Bytes, bool), LlmError> {
    // Unsupported OpenAI parameters were refused or dropped before encoding (`params::prepare`);
    // `drop_params` still lets empty stop sequences (which Anthropic refuses) go.
    let drop_params = drop_params(&chat.extra, dep);

    let mut conv = Conversation::default();
    conv.translate(&chat.messages)?;

    let thinking: Option<Value> = match chat.extra.get_as::<Value>("thinking") {
        Some(t) if !t.is_null() => Some(t),
        _ => match chat.reasoning_effort.as_deref() {
            Some(effort) => reasoning_budget(effort)?
                .map(|budget| json!({"type": "enabled", "budget_tokens": budget})),
            None => None,
        },
    };
    let thinking_on = thinking
        .as_ref()
        .is_some_and(|t| t.get("type").and_then(Value::as_str) == Some("enabled"));

    let max_tokens = match chat.max_completion_tokens.or(chat.max_tokens) {
        Some(n) => n,
        None => match dep.param("max_tokens").and_then(Value::as_u64) {
            Some(n) => n,
            None => match thinking
                .as_ref()
                .and_then(|t| t.get("budget_tokens"))
                .and_then(Value::as_u64)
            {
                Some(budget) if thinking_on => budget + THINKING_HEADROOM,
                _ => default_max_tokens(&dep.model),
            },
        },
    };

    let mut tools: Vec<Value> = match &chat.tools {
        Some(tools) => tools.iter().map(tool).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let mut tool_choice = map_tool_choice(chat.tool_choice.as_ref(), chat.parallel_tool_calls)?;
    if let Some(tool) = json_mode_tool(chat)? {
        tools.push(tool);
        if !thinking_on {
            tool_choice = Some(json!({"type": "tool", "name": JSON_TOOL_NAME}));
        }
    }

    let stop = chat.stop.as_ref().map(|s| {
        s.to_vec()
            .into_iter()
            .filter(|v| !(drop_params && v.trim().is_empty()))
            .collect::<Vec<_>>()
    });
    let user_id = chat
        .user
        .as_deref()
        .filter(|u| !u.is_empty() && valid_user_id(u));

    let mut w = BytesMut::with_capacity(512 + chat.messages.len() * 128).writer();
    let mut ser = serde_json::Serializer::new(&mut w);
    let res = (|| {
        let mut map = ser.serialize_map(None)?;
        map.serialize_entry("model", &*dep.model)?;
        map.serialize_entry("messages", &conv.turns)?;
        if !conv.system.is_empty() {
            map.serialize_entry("system", &conv.system)?;
        }
        map.serialize_entry("max_tokens", &max_tokens)?;
        if let Some(t) = chat.temperature {
            map.serialize_entry("temperature", &t)?;
        }
        if let Some(p) = chat.top_p {
            map.serialize_entry("top_p", &p)?;
        }
        if let Some(stop) = stop.as_ref().filter(|s| !s.is_empty()) {
            map.serialize_entry("stop_sequences", stop)?;
        }
        if chat.stream == Some(true) {
            map.serialize_entry("stream", &true)?;
        }
        if let Some(user_id) = user_id {
            map.serialize_entry("metadata", &json!({ "user_id": user_id }))?;
        }
        if !tools.is_empty() {
            map.serialize_entry("tools", &tools)?;
        }
        if let Some(choice) = &tool_choice {
            map.serialize_entry("tool_choice", choice)?;
        }
        if let Some(thinking) = &thinking {
            map.serialize_entry("thinking", thinking)?;
        }
        chat.extra.serialize_into(&mut map, &|k| {
            is_upstream_param(k) && !HANDLED_EXTRA.contains(&k) && !is_openai_chat_param(k)
        })?;
        map.end()
    })();
    res.map_err(|e| LlmError::internal(format!("cannot encode the upstream request: {e}")))?;
    Ok((w.into_inner().freeze(), conv.uses_files))
}

/// The thinking budget for an OpenAI `reasoning_effort` (LiteLLM's table); `None` turns thinking off.
pub fn reasoning_budget(effort: &str) -> Result<Option<u64>, LlmError> {
    match effort {
        "minimal" | "low" => Ok(Some(1024)),
        "medium" => Ok(Some(2048)),
        "high" => Ok(Some(4096)),
        "none" | "disable" => Ok(None),
        other => Err(LlmError::bad_request(format!(
            "reasoning_effort must be one of minimal, low, medium, high, none; got {other:?}"
        ))
        .with_param("reasoning_effort")),
    }
}

/// The output limit sent when nobody chose one: the model's maximum output tokens (as LiteLLM's
/// model map says), 4096 for a model not known here.
#[must_use]
pub fn default_max_tokens(model: &str) -> u64 {
    const TABLE: &[(&str, u64)] = &[
        ("opus-4-5", 64_000),
        ("opus-4", 32_000),
        ("sonnet-4", 64_000),
        ("haiku-4", 64_000),
        ("3-7-sonnet", 64_000),
        ("3-5-sonnet", 8_192),
        ("3-5-haiku", 8_192),
        ("3-opus", 4_096),
        ("3-sonnet", 4_096),
        ("3-haiku", 4_096),
    ];
    TABLE
        .iter()
        .find(|(needle, _)| model.contains(needle))
        .map_or(FALLBACK_MAX_TOKENS, |(_, n)| *n)
}

/// Whether a `user` value may go to `metadata.user_id`: Anthropic refuses e-mail addresses and phone
/// numbers there.
fn valid_user_id(user: &str) -> bool {
    let looks_like_email = user.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.contains('@') && domain.contains('.') && !user.contains(' ')
    });
    let digits = user.chars().filter(char::is_ascii_digit).count();
    let looks_like_phone = digits >= 7
        && user
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || " ()-".contains(c) || (i == 0 && c == '+'));
    !looks_like_email && !looks_like_phone
}

/// The messages and the system prompt being built.
#[derive(Default)]
struct Conversation {
    system: Vec<Value>,
    turns: Vec<Turn>,
    uses_files: bool,
}

#[derive(serde::Serialize)]
struct Turn {
    role: &'static str,
    content: Vec<Value>,
}

impl Conversation {
    fn translate(&mut self, messages: &[Message]) -> Result<(), LlmError> {
        let leading = messages.iter().take_while(|m| is_system(&m.role)).count();
        for m in &messages[..leading] {
            let blocks = self.blocks(m.content.as_ref(), cache_control(&m.extra), "system")?;
            self.system.extend(blocks);
        }
        for (i, m) in messages.iter().enumerate().skip(leading) {
            let cc = cache_control(&m.extra);
            match m.role.as_str() {
                "user" => {
                    let blocks = self.blocks(m.content.as_ref(), cc, "user")?;
                    self.push("user", blocks);
                }
                r if is_system(r) => {
                    let blocks = self.blocks(m.content.as_ref(), cc, "user")?;
                    self.push("user", blocks);
                }
                "assistant" => {
                    let blocks = self.assistant_blocks(m, i)?;
                    if !blocks.is_empty() {
                        self.push("assistant", blocks);
                    }
                }
                "tool" | "function" => {
                    let id = m
                        .tool_call_id
                        .as_deref()
                        .or(m.name.as_deref())
                        .unwrap_or_default();
                    let content = match &m.content {
                        None => Value::String(String::new()),
                        Some(Content::Text(s)) => Value::String(s.clone()),
                        Some(c @ Content::Parts(_)) => {
                            Value::Array(self.blocks(Some(c), None, "tool")?)
                        }
                    };
                    let mut block =
                        json!({"type": "tool_result", "tool_use_id": id, "content": content});
                    set_cache_control(&mut block, cc);
                    self.push("user", vec![block]);
                }
                other => {
                    return Err(LlmError::bad_request(format!(
                        "messages[{i}]: role {other:?} is not supported by anthropic"
                    ))
                    .with_param("messages"))
                }
            }
        }
        Ok(())
    }

    /// Appends blocks to the last turn when it has the same role, else starts a turn.
    fn push(&mut self, role: &'static str, blocks: Vec<Value>) {
        match self.turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => self.turns.push(Turn {
                role,
                content: blocks,
            }),
        }
    }

    fn assistant_blocks(&mut self, m: &Message, i: usize) -> Result<Vec<Value>, LlmError> {
        let mut blocks = Vec::new();
        if let Some(Value::Array(thinking)) = m.extra.get_as::<Value>("thinking_blocks") {
            blocks.extend(thinking.into_iter().filter(Value::is_object));
        }
        let text_blocks = self.blocks(m.content.as_ref(), cache_control(&m.extra), "assistant")?;
        blocks.extend(text_blocks.into_iter().filter(|b| {
            b.get("type").and_then(Value::as_str) != Some("text")
                || b.get("text")
                    .and_then(Value::as_str)
                    .is_some_and(|t| !t.is_empty())
        }));
        for (j, call) in m.tool_calls.iter().flatten().enumerate() {
            let f = call.function.as_ref();
            let args = f.and_then(|f| f.arguments.as_deref()).unwrap_or("");
            let input: Value = if args.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(args).map_err(|e| {
                    LlmError::bad_request(format!(
                        "messages[{i}].tool_calls[{j}].function.arguments is not JSON: {e}"
                    ))
                    .with_param("messages")
                })?
            };
            let mut block = json!({
                "type": "tool_use",
                "id": call.id.as_deref().unwrap_or_default(),
                "name": f.and_then(|f| f.name.as_deref()).unwrap_or_default(),
                "input": input,
            });
            set_cache_control(&mut block, cache_control(&call.extra));
            blocks.push(block);
        }
        Ok(blocks)
    }

    /// Content → blocks. `cc` is a message-level `cache_control`, put on the last block.
    fn blocks(
        &mut self,
        content: Option<&Content>,
        cc: Option<Value>,
        role: &str,
    ) -> Result<Vec<Value>, LlmError> {
        let mut out = match content {
            None => Vec::new(),
            Some(Content::Text(s)) => vec![json!({"type": "text", "text": s})],
            Some(Content::Parts(parts)) => parts
                .iter()
                .map(|p| self.part(p, role))
                .collect::<Result<_, _>>()?,
        };
        if let Some(last) = out.last_mut() {
            if last.get("cache_control").is_none() {
                set_cache_control(last, cc);
            }
        }
        Ok(out)
    }

    fn part(&mut self, p: &ContentPart, role: &str) -> Result<Value, LlmError> {
        let mut block = match p.kind() {
            PartKind::Text => {
                json!({"type": "text", "text": p.text.as_deref().unwrap_or_default()})
            }
            PartKind::ImageUrl if role != "system" => {
                let url = p.image_url.as_ref().map_or("", |u| u.url.as_str());
                let hint = p.image_url.as_ref().and_then(|u| u.format.as_deref());
                media_block(url, hint)?
            }
            PartKind::File if role != "system" => {
                let f = p.file.as_ref();
                if let Some(id) = f.and_then(|f| f.file_id.as_deref()) {
                    self.uses_files = true;
                    json!({"type": "document", "source": {"type": "file", "file_id": id}})
                } else if let Some(data) = f.and_then(|f| f.file_data.as_deref()) {
                    media_block(data, None)?
                } else {
                    return Err(
                        LlmError::bad_request("a file part needs file_id or file_data")
                            .with_param("messages"),
                    );
                }
            }
            PartKind::InputAudio => {
                return Err(
                    LlmError::bad_request("anthropic does not accept input_audio content")
                        .with_param("messages"),
                )
            }
            PartKind::Other if role != "system" => {
                // Anthropic's own block kinds (document, search_result, …) go as sent.
                return serde_json::to_value(p).map_err(|e| {
                    LlmError::bad_request(format!("cannot encode a content part: {e}"))
                });
            }
            _ => {
                return Err(LlmError::bad_request(format!(
                    "anthropic accepts only text in {role} messages, got a {} part",
                    p.kind_name
                ))
                .with_param("messages"))
            }
        };
        set_cache_control(&mut block, cache_control(&p.extra));
        Ok(block)
    }
}

fn is_system(role: &str) -> bool {
    role == "system" || role == "developer"
}

fn cache_control(extra: &Extra) -> Option<Value> {
    extra
        .get_as::<Value>("cache_control")
        .filter(|v| !v.is_null())
}

fn set_cache_control(block: &mut Value, cc: Option<Value>) {
    if let (Some(cc), Value::Object(m)) = (cc, block) {
        m.insert("cache_control".into(), cc);
    }
}

/// An image or document block from a `data:` URL or an http(s) URL.
fn media_block(url: &str, format_hint: Option<&str>) -> Result<Value, LlmError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').ok_or_else(|| {
            LlmError::bad_request("a data: URL has no ',' before its data").with_param("messages")
        })?;
        let Some(media_type) = meta.strip_suffix(";base64") else {
            return Err(
                LlmError::bad_request("only base64 data: URLs are supported")
                    .with_param("messages"),
            );
        };
        let media_type = format_hint.unwrap_or(media_type);
        let kind = if media_type.starts_with("image/") {
            "image"
        } else {
            "document"
        };
        return Ok(json!({
            "type": kind,
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        let path = url.split(['?', '#']).next().unwrap_or(url);
        let kind = if path.to_ascii_lowercase().ends_with(".pdf") {
            "document"
        } else {
            "image"
        };
        return Ok(json!({"type": kind, "source": {"type": "url", "url": url}}));
    }
    Err(
        LlmError::bad_request("an image_url must be an http(s) URL or a base64 data: URL")
            .with_param("messages"),
    )
}

/// An OpenAI tool → an Anthropic tool. Tools already in Anthropic's shape (with `input_schema`, or
/// a server tool type such as `web_search_20250305`) go as sent.
fn tool(t: &Tool) -> Result<Value, LlmError> {
    let raw = || {
        serde_json::to_value(t)
            .map_err(|e| LlmError::bad_request(format!("cannot encode a tool: {e}")))
    };
    if t.extra.get("input_schema").is_some() {
        return raw();
    }
    match (t.kind_name.as_str(), &t.function) {
        ("function" | "custom", Some(f)) => {
            let schema: Value = match &f.parameters {
                Some(p) => serde_json::from_str(p.get()).map_err(|e| {
                    LlmError::bad_request(format!("tool parameters are not JSON: {e}"))
                })?,
                None => json!({"type": "object", "properties": {}}),
            };
            let mut out = Map::new();
            out.insert("name".into(), Value::String(f.name.clone()));
            out.insert("input_schema".into(), schema);
            if let Some(d) = &f.description {
                out.insert("description".into(), Value::String(d.clone()));
            }
            if let Some(cc) = cache_control(&t.extra).or_else(|| cache_control(&f.extra)) {
                out.insert("cache_control".into(), cc);
            }
            Ok(Value::Object(out))
        }
        ("function" | "custom", None) => {
            Err(LlmError::bad_request("a function tool needs a function").with_param("tools"))
        }
        _ => raw(),
    }
}

/// OpenAI `tool_choice` and `parallel_tool_calls` → Anthropic `tool_choice`.
fn map_tool_choice(
    choice: Option<&Value>,
    parallel: Option<bool>,
) -> Result<Option<Value>, LlmError> {
    let mut out = match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "required" | "any" => Some(json!({"type": "any"})),
            "none" => Some(json!({"type": "none"})),
            other => {
                return Err(LlmError::bad_request(format!(
                    "tool_choice {other:?} is not one of auto, required, none"
                ))
                .with_param("tool_choice"))
            }
        },
        Some(Value::Object(m)) => match m.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = m
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        LlmError::bad_request("tool_choice.function.name is required")
                            .with_param("tool_choice")
                    })?;
                Some(json!({"type": "tool", "name": name}))
            }
            // Anthropic's own shape (`auto`, `any`, `tool`, `none`) goes as sent.
            _ => Some(Value::Object(m.clone())),
        },
        Some(_) => {
            return Err(
                LlmError::bad_request("tool_choice must be a string or an object")
                    .with_param("tool_choice"),
            )
        }
    };
    if let Some(parallel) = parallel {
        match &mut out {
            Some(Value::Object(m)) if m.get("type").and_then(Value::as_str) == Some("none") => {}
            Some(Value::Object(m)) => {
                m.insert("disable_parallel_tool_use".into(), Value::Bool(!parallel));
            }
            _ => out = Some(json!({"type": "auto", "disable_parallel_tool_use": !parallel})),
        }
    }
    Ok(out)
}

/// The forced tool that carries a `response_format` answer, when the client asked for JSON.
fn json_mode_tool(chat: &ChatRequest) -> Result<Option<Value>, LlmError> {
    let Some(raw) = chat.response_format.as_deref() else {
        return Ok(None);
    };
    let format: Value = serde_json::from_str(RawValue::get(raw))
        .map_err(|e| LlmError::bad_request(format!("response_format is not JSON: {e}")))?;
    let schema = match format.get("type").and_then(Value::as_str) {
        None | Some("text") => return Ok(None),
        Some("json_schema") => format
            .get("json_schema")
            .and_then(|s| s.get("schema"))
            .cloned(),
        Some(_) => format.get("response_schema").cloned(),
    };
    let schema = schema.unwrap_or_else(
        || json!({"type": "object", "properties": {}, "additionalProperties": true}),
    );
    Ok(Some(
        json!({"name": JSON_TOOL_NAME, "input_schema": schema}),
    ))
}

/// Whether the request asked for a JSON answer through `response_format` (see [`json_mode_tool`]).
pub(super) fn is_json_mode(chat: &ChatRequest) -> bool {
    chat.response_format.as_deref().is_some_and(|raw| {
        serde_json::from_str::<Value>(raw.get())
            .ok()
            .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
            .is_some_and(|t| t != "text")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn body(chat: &str, dep: &Deployment) -> Value {
        let chat: ChatRequest = serde_json::from_str(chat).unwrap();
        let (b, _) = messages_body(&chat, dep).unwrap();
        serde_json::from_slice(&b).unwrap()
    }

    fn dep() -> Deployment {
        Deployment::new("c", "anthropic/claude-sonnet-4-5-20250929")
    }

    #[test]
    fn later_system_messages_become_user_text_and_merge() {
        let b = body(
            r#"{"model":"c","messages":[{"role":"user","content":"a"},{"role":"system","content":"b"}]}"#,
            &dep(),
        );
        assert_eq!(
            b["messages"],
            json!([{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}])
        );
        assert!(b.get("system").is_none());
    }

    #[test]
    fn replays_thinking_tool_calls_and_rich_tool_results() {
        let b = body(
            r#"{"model":"c","messages":[
                {"role":"user","content":"q","cache_control":{"type":"ephemeral"}},
                {"role":"assistant","content":null,
                 "thinking_blocks":[{"type":"thinking","thinking":"t","signature":"s"}],
                 "tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":""}}]},
                {"role":"tool","tool_call_id":"a","content":[{"type":"text","text":"r"}]}
            ],"thinking":{"type":"enabled","budget_tokens":2000}}"#,
            &dep(),
        );
        assert_eq!(
            b["messages"],
            json!([
                {"role":"user","content":[{"type":"text","text":"q","cache_control":{"type":"ephemeral"}}]},
                {"role":"assistant","content":[
                    {"type":"thinking","thinking":"t","signature":"s"},
                    {"type":"tool_use","id":"a","name":"f","input":{}}
                ]},
                {"role":"user","content":[
                    {"type":"tool_result","tool_use_id":"a","content":[{"type":"text","text":"r"}]}
                ]}
            ])
        );
        assert_eq!(
            b["thinking"],
            json!({"type":"enabled","budget_tokens":2000})
        );
        assert_eq!(b["max_tokens"], json!(6096));
    }

    #[test]
    fn bad_input_is_a_bad_request() {
        for chat in [
            r#"{"model":"c","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x"}}]}]}"#,
            r#"{"model":"c","messages":[{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f","arguments":"{"}}]}]}"#,
            r#"{"model":"c","messages":[{"role":"user","content":"a"}],"reasoning_effort":"extreme"}"#,
            r#"{"model":"c","messages":[{"role":"user","content":"a"}],"tool_choice":"sometimes"}"#,
        ] {
            let chat: ChatRequest = serde_json::from_str(chat).unwrap();
            let err = messages_body(&chat, &dep()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadRequest, "{chat:?}");
        }
    }

    #[test]
    fn unknown_keys_pass_and_openai_only_keys_never_do() {
        let b = body(
            r#"{"model":"c","messages":[{"role":"user","content":"a"}],"top_k":5,"metadata":{"x":1},"logit_bias":null}"#,
            &dep(),
        );
        assert_eq!(b["top_k"], json!(5));
        assert!(b.get("metadata").is_none());
        // An OpenAI parameter left in the body (an explicit null) is never sent as an Anthropic field.
        assert!(b.get("logit_bias").is_none());
    }

    #[test]
    fn json_mode_forces_the_json_tool() {
        let b = body(
            r#"{"model":"c","messages":[{"role":"user","content":"a"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}}}"#,
            &dep(),
        );
        assert_eq!(
            b["tools"],
            json!([{"name":"json_tool_call","input_schema":{"type":"object"}}])
        );
        assert_eq!(
            b["tool_choice"],
            json!({"type":"tool","name":"json_tool_call"})
        );
    }

    #[test]
    fn parallel_flag_without_choice_uses_auto() {
        assert_eq!(
            map_tool_choice(None, Some(false)).unwrap(),
            Some(json!({"type":"auto","disable_parallel_tool_use":true}))
        );
        assert_eq!(
            map_tool_choice(Some(&json!("none")), Some(false)).unwrap(),
            Some(json!({"type":"none"}))
        );
    }

    #[test]
    fn user_ids_that_look_personal_are_skipped() {
        assert!(valid_user_id("user-123"));
        assert!(!valid_user_id("a@b.com"));
        assert!(!valid_user_id("+1 (555) 123-4567"));
    }

    #[test]
    fn default_max_tokens_by_model() {
        assert_eq!(default_max_tokens("claude-sonnet-4-5-20250929"), 64_000);
        assert_eq!(default_max_tokens("claude-opus-4-1-20250805"), 32_000);
        assert_eq!(default_max_tokens("claude-3-5-haiku-20241022"), 8_192);
        assert_eq!(default_max_tokens("something-new"), 4_096);
    }

    #[test]
    fn url_building_accepts_common_bases() {
        for base in [
            "https://h",
            "https://h/",
            "https://h/v1",
            "https://h/v1/messages",
        ] {
            let chat: ChatRequest =
                serde_json::from_str(r#"{"model":"c","messages":[{"role":"user","content":"a"}]}"#)
                    .unwrap();
            let req = encode_messages(&chat, &dep().with_api_base(base)).unwrap();
            assert_eq!(req.uri(), "https://h/v1/messages");
        }
    }
}
