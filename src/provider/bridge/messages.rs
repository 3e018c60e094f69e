//! Anthropic's Messages API served by a provider that speaks chat: the request becomes a chat
//! request, the chat answer a Messages answer, a chunk stream Anthropic's event sequence.
//!
//! Request: `system` (a string or text blocks) → a `system` message; `text` → text parts (with
//! `cache_control` kept), `image` (base64 or URL) → `image_url`, a base64 PDF `document` →
//! a `file` part, a plain-text `document` → text; assistant `tool_use` → `tool_calls`, `thinking`
//! → `reasoning_content` (`redacted_thinking` is dropped), user `tool_result` → `tool` messages
//! ahead of the rest of the turn; `tools` (custom tools) → function tools, `tool_choice` auto /
//! any / tool / none → `auto` / `required` / named / `none` (`disable_parallel_tool_use` →
//! `parallel_tool_calls: false`); `max_tokens`, `temperature`, `top_p` as they are,
//! `stop_sequences` → `stop`, `metadata.user_id` → `user`, `thinking` with a budget →
//! `reasoning_effort` (under 2048 tokens `low`, under 8192 `medium`, else `high`); a stream asks
//! for usage. The chat request says `drop_params: true` (unless the client sent `drop_params`), so
//! a provider that cannot take `user`, `parallel_tool_calls` or `reasoning_effort` goes without
//! rather than refusing the call. `top_k` has no chat equivalent and is left out. What only Anthropic can do —
//! server tools (web search, code execution, computer use, …), `mcp_servers`, `container`,
//! search results, document URLs, images inside tool results — is a 400 in Anthropic's error shape
//! naming it.
//!
//! Answer: `reasoning_content` → a `thinking` block (without a signature: none exists), text →
//! a `text` block, `tool_calls` → `tool_use` blocks (arguments parsed into `input`),
//! `finish_reason` stop / length / tool_calls / content_filter → `end_turn` / `max_tokens` /
//! `tool_use` / `refusal`, usage with `input_tokens` net of cache reads and writes (Anthropic's
//! convention) and the cache counts apart.
//!
//! Stream: `message_start`, `ping`, then per block `content_block_start`, its deltas
//! (`thinking_delta`, `text_delta`, `input_json_delta`) and `content_block_stop`, and at the end
//! `message_delta` (stop reason and usage) and `message_stop`, each written as its chunk arrives.
//! A chat stream that ends without a finish reason ends with an error event (it was cut).

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_core::Stream;
use serde_json::{json, Map, Value};

use super::Bridge;
use crate::{
    error::{ErrorKind, LlmError},
    types::{
        chat::{ChatChunk, ChatRequest, ChatResponse, Content},
        messages::{MessagesRequest, X_LLMGATE_TOKEN_COUNT},
        ChatStream, JsonBody, LlmRequest, LlmResponse, ResponseBody, StreamEvent, TokenUsage,
    },
};

/// The bridge of `POST /v1/messages`.
pub(super) struct MessagesBridge;

/// The bridge of `POST /v1/messages/count_tokens`: the gateway's estimate, answered locally.
pub(super) struct CountTokensBridge;

impl Bridge for MessagesBridge {
    fn chat_request(&self, req: &LlmRequest) -> Result<LlmRequest, LlmError> {
        let m = req
            .as_messages()
            .ok_or_else(|| LlmError::internal("the Messages bridge got another operation"))?;
        // Written once and parsed from those bytes, which the request keeps: an OpenAI-format
        // provider sends them as they are (with its model spliced in) instead of serializing the
        // parse again.
        let bytes = serde_json::to_vec(&to_chat(m)?)
            .map_err(|e| LlmError::internal(format!("cannot write the chat request: {e}")))?;
        let chat: ChatRequest = serde_json::from_slice(&bytes).map_err(|e| {
            LlmError::bad_request(format!(
                "the Messages request cannot be translated to chat: {e}"
            ))
        })?;
        let mut out = LlmRequest::chat_from_bytes(chat, Bytes::from(bytes));
        out.extensions = req.extensions.clone();
        out.set_controls(Some(req.controls().into_owned()));
        Ok(out)
    }

    fn chat_answer(&self, req: &LlmRequest, resp: LlmResponse) -> Result<LlmResponse, LlmError> {
        let LlmResponse { body, meta } = resp;
        let fallback_model = req.model();
        let mut out = match body {
            ResponseBody::Chat(c) => {
                let chat = c.into_typed()?;
                LlmResponse::json(message_from_chat(&chat, fallback_model))
            }
            ResponseBody::Stream(s) => {
                LlmResponse::events(Box::pin(EventsFromChunks::new(s, fallback_model)))
            }
            _ => {
                return Err(LlmError::internal(
                    "the provider's chat answer is neither a completion nor a stream",
                ))
            }
        };
        out.meta = meta;
        Ok(out)
    }
}

impl Bridge for CountTokensBridge {
    fn chat_request(&self, req: &LlmRequest) -> Result<LlmRequest, LlmError> {
        Err(LlmError::internal(format!(
            "{} is answered by the gateway's estimate, not through chat",
            req.operation_name()
        )))
    }

    fn chat_answer(&self, _req: &LlmRequest, resp: LlmResponse) -> Result<LlmResponse, LlmError> {
        Ok(resp)
    }

    fn answer_locally(&self, req: &LlmRequest) -> Option<Result<LlmResponse, LlmError>> {
        let m = req.as_messages()?;
        let body = format!(r#"{{"input_tokens":{}}}"#, m.estimate_input_tokens());
        let mut resp = LlmResponse::json(JsonBody::new(Bytes::from(body)));
        resp.meta.headers.insert(
            X_LLMGATE_TOKEN_COUNT,
            http::HeaderValue::from_static("estimate"),
        );
        Some(Ok(resp))
    }
}

/// A 400 for content only Anthropic serves.
fn unsupported(what: &str) -> LlmError {
    LlmError::bad_request(format!(
        "{what} is not supported when the model is not served by Anthropic"
    ))
    .with_param("messages")
}

fn invalid(what: &str) -> LlmError {
    LlmError::bad_request(format!("Invalid Messages request: {what}"))
}

fn parse_raw(raw: &serde_json::value::RawValue, what: &str) -> Result<Value, LlmError> {
    serde_json::from_str(raw.get()).map_err(|e| invalid(&format!("{what}: {e}")))
}

/// The chat body for a Messages body.
fn to_chat(m: &MessagesRequest) -> Result<Value, LlmError> {
    let mut out = Map::new();
    out.insert("model".into(), Value::String(m.model.clone()));
    let mut messages = Vec::new();
    if let Some(system) = &m.system {
        match parse_raw(system, "system")? {
            Value::String(s) => messages.push(json!({"role": "system", "content": s})),
            Value::Array(blocks) => {
                let parts = blocks
                    .iter()
                    .map(|b| match block_type(b) {
                        "text" => Ok(text_part(b)),
                        other => Err(unsupported(&format!("a `{other}` block in `system`"))),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                messages.push(json!({"role": "system", "content": parts}));
            }
            Value::Null => {}
            _ => return Err(invalid("`system` must be a string or an array of blocks")),
        }
    }
    let Some(raw) = &m.messages else {
        return Err(invalid("`messages` is required").with_param("messages"));
    };
    let Value::Array(turns) = parse_raw(raw, "messages")? else {
        return Err(invalid("`messages` must be an array"));
    };
    for turn in &turns {
        translate_turn(turn, &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(n) = m.max_tokens {
        out.insert("max_tokens".into(), n.into());
    }
    if m.stream == Some(true) {
        out.insert("stream".into(), true.into());
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = &m.tools {
        let Value::Array(tools) = parse_raw(tools, "tools")? else {
            return Err(invalid("`tools` must be an array"));
        };
        let tools = tools.iter().map(tool).collect::<Result<Vec<_>, _>>()?;
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools));
        }
    }
    for (key, raw) in m.extra.iter() {
        let v = || parse_raw(raw, key);
        match key {
            "temperature" | "top_p" => {
                out.insert(key.into(), v()?);
            }
            "stop_sequences" => {
                out.insert("stop".into(), v()?);
            }
            "metadata" => {
                if let Some(user) = v()?.get("user_id").and_then(Value::as_str) {
                    out.insert("user".into(), user.into());
                }
            }
            "tool_choice" => tool_choice(&v()?, &mut out)?,
            "thinking" => {
                let t = v()?;
                let enabled = t.get("type").and_then(Value::as_str) == Some("enabled");
                if let Some(budget) = t.get("budget_tokens").and_then(Value::as_u64) {
                    if enabled {
                        let effort = match budget {
                            0..=2047 => "low",
                            2048..=8191 => "medium",
                            _ => "high",
                        };
                        out.insert("reasoning_effort".into(), effort.into());
                    }
                }
            }
            "mcp_servers" | "container" => {
                return Err(unsupported(&format!("`{key}`")));
            }
            // The gateway's controls that the provider's chat translation reads.
            "drop_params" | "additional_drop_params" => {
                out.insert(key.into(), v()?);
            }
            _ => {}
        }
    }
    // What the bridge maps beyond the core parameters (`user`, `parallel_tool_calls`,
    // `reasoning_effort`) is a translation, not something the client asked of the provider in
    // OpenAI's terms: a provider that cannot take it goes without (unless the client says
    // `drop_params: false`).
    out.entry("drop_params").or_insert(Value::Bool(true));
    Ok(Value::Object(out))
}

fn block_type(b: &Value) -> &str {
    b.get("type").and_then(Value::as_str).unwrap_or("")
}

/// A text block as a chat text part (`cache_control` kept).
fn text_part(b: &Value) -> Value {
    let mut part =
        json!({"type": "text", "text": b.get("text").cloned().unwrap_or(Value::from(""))});
    if let Some(cc) = b.get("cache_control") {
        part["cache_control"] = cc.clone();
    }
    part
}

/// The text of a tool result's content (a string, or text blocks).
fn tool_result_text(content: Option<&Value>) -> Result<String, LlmError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut text = String::new();
            for b in blocks {
                match block_type(b) {
                    "text" => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
                    other => {
                        return Err(unsupported(&format!("a `{other}` block in a tool result")))
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(invalid(
            "a tool result's content must be a string or blocks",
        )),
    }
}

fn media_source(b: &Value, what: &str) -> Result<(String, String), LlmError> {
    let source = b
        .get("source")
        .ok_or_else(|| invalid(&format!("an `{what}` block needs a `source`")))?;
    let s = |k: &str| {
        source
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    Ok((block_type(source).to_owned(), {
        match block_type(source) {
            "base64" => format!("data:{};base64,{}", s("media_type"), s("data")),
            "url" => s("url"),
            "text" => s("data"),
            other => {
                return Err(unsupported(&format!(
                    "an `{what}` source of type `{other}`"
                )))
            }
        }
    }))
}

fn translate_turn(turn: &Value, out: &mut Vec<Value>) -> Result<(), LlmError> {
    let role = turn.get("role").and_then(Value::as_str).unwrap_or("");
    if role == "system" {
        // A system message inside the conversation (Claude Code sends them with the beta
        // `mid-conversation-system-2026-04-07`): a chat `system` message in its place.
        let content = match turn.get("content") {
            Some(Value::String(s)) => Value::String(s.clone()),
            Some(Value::Array(blocks)) => Value::Array(
                blocks
                    .iter()
                    .map(|b| match block_type(b) {
                        "text" => Ok(text_part(b)),
                        other => Err(unsupported(&format!(
                            "a `{other}` block in a system message"
                        ))),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            _ => return Err(invalid("a message's content must be a string or blocks")),
        };
        out.push(json!({"role": "system", "content": content}));
        return Ok(());
    }
    if role != "user" && role != "assistant" {
        return Err(invalid(&format!(
            "a message's role must be `user`, `assistant` or `system`, not `{role}`"
        )));
    }
    let blocks = match turn.get("content") {
        Some(Value::String(s)) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Some(Value::Array(b)) => b,
        _ => return Err(invalid("a message's content must be a string or blocks")),
    };
    if role == "assistant" {
        let mut text = String::new();
        let mut reasoning = String::new();
        let mut calls = Vec::new();
        for b in blocks {
            match block_type(b) {
                "text" => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
                "thinking" => {
                    reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or(""));
                }
                "redacted_thinking" => {}
                "tool_use" => calls.push(json!({
                    "id": b.get("id").cloned().unwrap_or(Value::from("")),
                    "type": "function",
                    "function": {
                        "name": b.get("name").cloned().unwrap_or(Value::from("")),
                        "arguments": b.get("input").map_or_else(|| "{}".to_owned(), Value::to_string),
                    },
                })),
                other => {
                    return Err(unsupported(&format!(
                        "a `{other}` block in an assistant message"
                    )))
                }
            }
        }
        let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
        if !calls.is_empty() {
            msg["tool_calls"] = Value::Array(calls);
        }
        if !reasoning.is_empty() {
            msg["reasoning_content"] = Value::String(reasoning);
        }
        out.push(msg);
        return Ok(());
    }
    let mut parts = Vec::new();
    for b in blocks {
        match block_type(b) {
            "text" => parts.push(text_part(b)),
            "image" => {
                let (_, url) = media_source(b, "image")?;
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            "document" => match media_source(b, "document")? {
                (kind, data) if kind == "base64" => {
                    parts.push(json!({"type": "file", "file": {"file_data": data}}));
                }
                (kind, text) if kind == "text" => parts.push(json!({"type": "text", "text": text})),
                _ => return Err(unsupported("a `document` given by URL")),
            },
            "tool_result" => {
                let mut text = tool_result_text(b.get("content"))?;
                if b.get("is_error").and_then(Value::as_bool) == Some(true) && text.is_empty() {
                    text.push_str("error");
                }
                out.push(json!({
                    "role": "tool",
                    "tool_call_id": b.get("tool_use_id").cloned().unwrap_or(Value::from("")),
                    "content": text,
                }));
            }
            other => return Err(unsupported(&format!("a `{other}` block in a user message"))),
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

fn tool(t: &Value) -> Result<Value, LlmError> {
    match t.get("type").and_then(Value::as_str) {
        None | Some("custom") => {}
        Some(server) => return Err(unsupported(&format!("the server tool `{server}`"))),
    }
    let mut f = json!({
        "name": t.get("name").cloned().unwrap_or(Value::from("")),
        "parameters": t.get("input_schema").cloned().unwrap_or(json!({"type": "object"})),
    });
    if let Some(d) = t.get("description") {
        f["description"] = d.clone();
    }
    Ok(json!({"type": "function", "function": f}))
}

fn tool_choice(c: &Value, out: &mut Map<String, Value>) -> Result<(), LlmError> {
    let choice = match block_type(c) {
        "auto" => Value::from("auto"),
        "any" => Value::from("required"),
        "none" => Value::from("none"),
        "tool" => {
            json!({"type": "function", "function": {"name": c.get("name").cloned().unwrap_or(Value::from(""))}})
        }
        other => return Err(invalid(&format!("unknown tool_choice type `{other}`"))),
    };
    out.insert("tool_choice".into(), choice);
    if c.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
        out.insert("parallel_tool_calls".into(), false.into());
    }
    Ok(())
}

/// Anthropic's stop reason for a chat finish reason.
fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic's usage object for the counts: `input_tokens` net of the cache.
fn usage_json(u: &TokenUsage) -> Value {
    json!({
        "input_tokens": u.input.saturating_sub(u.cache_read).saturating_sub(u.cache_write),
        "output_tokens": u.output,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cache_read,
    })
}

fn message_id(chat_id: Option<&str>) -> String {
    match chat_id {
        Some(id) if id.starts_with("msg_") => id.to_owned(),
        Some(id) if !id.is_empty() => format!("msg_{id}"),
        _ => "msg_llmgate".to_owned(),
    }
}

fn tool_input(arguments: Option<&str>) -> Value {
    match arguments.map(str::trim) {
        None | Some("") => json!({}),
        Some(a) => serde_json::from_str(a).unwrap_or_else(|_| json!({})),
    }
}

/// A complete chat answer as a Messages answer, with its facts.
fn message_from_chat(chat: &ChatResponse, fallback_model: &str) -> JsonBody {
    let choice = chat.choices.first();
    let msg = choice.and_then(|c| c.message.as_ref());
    let mut content = Vec::new();
    if let Some(r) = msg
        .and_then(|m| m.reasoning_content.as_deref())
        .filter(|r| !r.is_empty())
    {
        content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
    }
    let text = msg
        .and_then(|m| m.content.as_ref())
        .map(Content::text)
        .unwrap_or_default();
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in msg
        .and_then(|m| m.tool_calls.as_ref())
        .into_iter()
        .flatten()
    {
        let f = call.function.as_ref();
        content.push(json!({
            "type": "tool_use",
            "id": call.id.clone().unwrap_or_default(),
            "name": f.and_then(|f| f.name.clone()).unwrap_or_default(),
            "input": tool_input(f.and_then(|f| f.arguments.as_deref())),
        }));
    }
    let finish = choice
        .and_then(|c| c.finish_reason.as_deref())
        .unwrap_or("stop");
    let usage = chat.usage.as_ref().map(TokenUsage::from);
    let model = chat.model.as_deref().unwrap_or(fallback_model);
    let body = json!({
        "id": message_id(chat.id.as_deref()),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": null,
        "usage": usage_json(&usage.unwrap_or_default()),
    });
    JsonBody::new(Bytes::from(body.to_string()))
        .with_usage(usage)
        .with_model(Some(Arc::from(model)))
}

/// The event `name` with `data`.
fn sse(name: &str, data: &Value) -> StreamEvent {
    StreamEvent::sse(name, data.to_string().as_bytes())
}

/// The block open in a translated stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool(u32),
}

/// A chat chunk stream as Anthropic's event sequence. See the [module docs](self).
struct EventsFromChunks {
    inner: ChatStream,
    pending: VecDeque<Result<StreamEvent, LlmError>>,
    model: String,
    started: bool,
    open: Option<Open>,
    /// The index of the open block (the next block's is one more).
    index: u32,
    opened_any: bool,
    finish: Option<String>,
    usage: Option<TokenUsage>,
    done: bool,
}

impl EventsFromChunks {
    fn new(inner: ChatStream, model: &str) -> Self {
        Self {
            inner,
            pending: VecDeque::new(),
            model: model.to_owned(),
            started: false,
            open: None,
            index: 0,
            opened_any: false,
            finish: None,
            usage: None,
            done: false,
        }
    }

    fn push(&mut self, ev: StreamEvent) {
        self.pending.push_back(Ok(ev));
    }

    fn start(&mut self, id: Option<&str>, model: Option<&str>) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(m) = model.filter(|m| !m.is_empty()) {
            m.clone_into(&mut self.model);
        }
        let model = self.model.clone();
        let data = json!({"type": "message_start", "message": {
            "id": message_id(id), "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }});
        self.push(sse("message_start", &data).with_model(Some(Arc::from(model.as_str()))));
        self.push(sse("ping", &json!({"type": "ping"})));
    }

    fn close(&mut self) {
        if self.open.take().is_some() {
            let index = self.index;
            self.push(sse(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    /// Opens a block of `kind` unless it is the open one.
    fn open(&mut self, kind: Open, block: impl FnOnce() -> Value) {
        if self.open == Some(kind) {
            return;
        }
        self.close();
        if self.opened_any {
            self.index += 1;
        }
        self.opened_any = true;
        self.open = Some(kind);
        let index = self.index;
        self.push(sse(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block()}),
        ));
    }

    fn delta(&mut self, delta: &Value, text_bytes: usize) {
        let index = self.index;
        self.push(
            sse(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            )
            .with_text_bytes(text_bytes),
        );
    }

    fn on_chunk(&mut self, chunk: &ChatChunk) {
        self.start(chunk.id.as_deref(), chunk.model.as_deref());
        if let Some(u) = &chunk.usage {
            self.usage = Some(TokenUsage::from(u));
        }
        let Some(choice) = chunk.choices.first() else {
            return;
        };
        if let Some(d) = &choice.delta {
            if let Some(r) = d.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
                self.open(
                    Open::Thinking,
                    || json!({"type": "thinking", "thinking": "", "signature": ""}),
                );
                self.delta(&json!({"type": "thinking_delta", "thinking": r}), r.len());
            }
            if let Some(t) = d.content.as_deref().filter(|t| !t.is_empty()) {
                self.open(Open::Text, || json!({"type": "text", "text": ""}));
                self.delta(&json!({"type": "text_delta", "text": t}), t.len());
            }
            for call in d.tool_calls.iter().flatten() {
                let i = call.index.unwrap_or(0);
                let f = call.function.as_ref();
                let id = call.id.clone().unwrap_or_else(|| format!("toolu_{i}"));
                let name = f.and_then(|f| f.name.clone()).unwrap_or_default();
                self.open(
                    Open::Tool(i),
                    || json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                );
                if let Some(a) = f
                    .and_then(|f| f.arguments.as_deref())
                    .filter(|a| !a.is_empty())
                {
                    self.delta(
                        &json!({"type": "input_json_delta", "partial_json": a}),
                        a.len(),
                    );
                }
            }
        }
        if let Some(f) = &choice.finish_reason {
            self.finish = Some(f.clone());
        }
    }

    fn on_end(&mut self) {
        self.start(None, None);
        self.close();
        let Some(finish) = self.finish.take() else {
            self.pending.push_back(Err(LlmError::new(
                ErrorKind::ApiConnection,
                "the provider's stream ended before its answer was complete",
            )));
            return;
        };
        let usage = self.usage;
        let data = json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(&finish), "stop_sequence": null},
            "usage": usage_json(&usage.unwrap_or_default()),
        });
        self.push(sse("message_delta", &data).with_usage(usage));
        self.push(sse("message_stop", &json!({"type": "message_stop"})).final_event());
    }
}

impl Stream for EventsFromChunks {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(ev) = this.pending.pop_front() {
                return Poll::Ready(Some(ev));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(mut chunk))) => match chunk.typed() {
                    Ok(c) => this.on_chunk(c),
                    Err(e) => {
                        this.done = true;
                        this.pending.push_back(Err(e));
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    this.pending.push_back(Err(e));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    this.on_end();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;
    use crate::types::ChunkBody;

    fn messages(raw: &str) -> LlmRequest {
        let body: MessagesRequest = serde_json::from_str(raw).unwrap();
        LlmRequest::messages_from_bytes(body, Bytes::from(raw.to_owned()), false)
    }

    fn chat_of(raw: &str) -> Value {
        let req = MessagesBridge.chat_request(&messages(raw)).unwrap();
        serde_json::to_value(req.as_chat().unwrap()).unwrap()
    }

    #[test]
    fn a_conversation_with_tools_becomes_chat() {
        let v = chat_of(
            r#"{"model":"g","max_tokens":100,"stream":true,"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],
            "messages":[{"role":"user","content":[{"type":"text","text":"weather?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]},
            {"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"sig"},{"type":"text","text":"calling"},{"type":"tool_use","id":"toolu_1","name":"get","input":{"city":"Paris"}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"sunny"}]},{"type":"text","text":"thanks"}]}],
            "tools":[{"name":"get","description":"weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
            "tool_choice":{"type":"any","disable_parallel_tool_use":true},"stop_sequences":["X"],"metadata":{"user_id":"u1"},
            "thinking":{"type":"enabled","budget_tokens":4096},"top_k":3,"num_retries":1}"#,
        );
        assert_eq!(v["messages"][0]["role"], "system");
        assert_eq!(
            v["messages"][0]["content"][0]["cache_control"]["type"],
            "ephemeral"
        );
        assert_eq!(
            v["messages"][1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,AAAA"
        );
        let a = &v["messages"][2];
        assert_eq!(
            a["tool_calls"][0]["function"]["arguments"],
            r#"{"city":"Paris"}"#
        );
        assert_eq!(a["reasoning_content"], "hm");
        assert_eq!(a["content"], "calling");
        assert_eq!(
            v["messages"][3],
            json!({"role":"tool","tool_call_id":"toolu_1","content":"sunny"})
        );
        assert_eq!(v["messages"][4]["content"][0]["text"], "thanks");
        assert_eq!(v["tools"][0]["function"]["parameters"]["type"], "object");
        assert_eq!(v["tool_choice"], "required");
        assert_eq!(v["parallel_tool_calls"], false);
        assert_eq!(v["stop"], json!(["X"]));
        assert_eq!(v["user"], "u1");
        assert_eq!(v["reasoning_effort"], "medium");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert!(v.get("top_k").is_none() && v.get("num_retries").is_none());
        assert_eq!(v["drop_params"], true);
    }

    #[test]
    fn what_only_anthropic_serves_is_a_clear_400() {
        for raw in [
            r#"{"model":"g","messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}"#,
            r#"{"model":"g","messages":[{"role":"user","content":[{"type":"search_result","source":"s"}]}]}"#,
            r#"{"model":"g","messages":[{"role":"user","content":[{"type":"document","source":{"type":"url","url":"https://x/a.pdf"}}]}]}"#,
            r#"{"model":"g","messages":[{"role":"user","content":"x"}],"mcp_servers":[]}"#,
        ] {
            let e = MessagesBridge.chat_request(&messages(raw)).unwrap_err();
            assert_eq!(e.status(), http::StatusCode::BAD_REQUEST, "{raw}");
            assert!(e.message().contains("not served by Anthropic"), "{e}");
        }
        let e = MessagesBridge
            .chat_request(&messages(
                r#"{"model":"g","messages":[{"role":"tool","content":"x"}]}"#,
            ))
            .unwrap_err();
        assert!(e.message().contains("role"), "{e}");
    }

    #[test]
    fn a_system_turn_inside_the_conversation_is_a_chat_system_message() {
        // Claude Code 2.1 sends these (beta `mid-conversation-system-2026-04-07`).
        let v = chat_of(
            r#"{"model":"g","max_tokens":10,"system":"top","messages":[{"role":"user","content":"hi"},
            {"role":"system","content":"agents: a, b"},{"role":"system","content":[{"type":"text","text":"more","cache_control":{"type":"ephemeral"}}]},
            {"role":"user","content":"go"}]}"#,
        );
        let m = v["messages"].as_array().unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[2], json!({"role": "system", "content": "agents: a, b"}));
        assert_eq!(m[3]["role"], "system");
        assert_eq!(m[3]["content"][0]["text"], "more");
        assert_eq!(m[4]["content"], "go");
        let e = MessagesBridge
            .chat_request(&messages(
                r#"{"model":"g","messages":[{"role":"system","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA"}}]}]}"#,
            ))
            .unwrap_err();
        assert!(e.message().contains("system message"), "{e}");
    }

    #[test]
    fn a_chat_answer_becomes_a_message() {
        let chat: ChatResponse = serde_json::from_value(json!({
            "id": "c1", "model": "gpt-x", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "ok", "reasoning_content": "think",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"a\":1}"}}]}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120, "prompt_tokens_details": {"cached_tokens": 60}}
        }))
        .unwrap();
        let j = message_from_chat(&chat, "g");
        let v: Value = serde_json::from_slice(&j.bytes).unwrap();
        assert_eq!(v["id"], "msg_c1");
        assert_eq!(v["content"][0]["type"], "thinking");
        assert_eq!(v["content"][1], json!({"type": "text", "text": "ok"}));
        assert_eq!(v["content"][2]["input"], json!({"a": 1}));
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(v["usage"]["input_tokens"], 40);
        assert_eq!(v["usage"]["cache_read_input_tokens"], 60);
        let u = j.usage.unwrap();
        assert_eq!((u.input, u.output, u.cache_read), (100, 20, 60));
    }

    fn chunk(v: Value) -> Result<ChunkBody, LlmError> {
        Ok(ChunkBody::from(
            serde_json::from_value::<ChatChunk>(v).unwrap(),
        ))
    }

    async fn events_of(
        chunks: Vec<Result<ChunkBody, LlmError>>,
    ) -> Vec<Result<StreamEvent, LlmError>> {
        let s: ChatStream = Box::pin(futures_util::stream::iter(chunks));
        EventsFromChunks::new(s, "g").collect().await
    }

    fn names(events: &[Result<StreamEvent, LlmError>]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Ok(e) => String::from_utf8_lossy(&e.frame)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("event: ")
                    .to_owned(),
                Err(_) => "ERR".to_owned(),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_chunk_stream_becomes_the_event_sequence() {
        let events = events_of(vec![
            chunk(json!({"id": "c", "model": "gpt-x", "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "hm"}}]})),
            chunk(json!({"id": "c", "choices": [{"index": 0, "delta": {"content": "Hi"}}]})),
            chunk(json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": ""}}]}}]})),
            chunk(json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}}]})),
            chunk(json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]})),
            chunk(json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})),
            chunk(json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}})),
        ])
        .await;
        assert_eq!(
            names(&events),
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        let ok: Vec<StreamEvent> = events.into_iter().map(Result::unwrap).collect();
        assert_eq!(ok[0].model.as_deref(), Some("gpt-x"));
        let data = |e: &StreamEvent| -> Value {
            let text = String::from_utf8_lossy(&e.frame).into_owned();
            serde_json::from_str(text.split("data: ").nth(1).unwrap().trim()).unwrap()
        };
        assert_eq!(data(&ok[8])["content_block"]["id"], "call_1");
        assert_eq!(data(&ok[8])["index"], 2);
        assert_eq!(data(&ok[9])["delta"]["partial_json"], "{\"a\":");
        assert_eq!(ok[9].text_bytes, 5);
        assert_eq!(data(&ok[12])["delta"]["stop_reason"], "tool_use");
        assert_eq!(data(&ok[12])["usage"]["output_tokens"], 4);
        assert_eq!(ok[12].usage.unwrap().total(), 13);
        assert!(ok[13].is_final);
    }

    #[tokio::test]
    async fn a_cut_stream_ends_with_an_error() {
        let events = events_of(vec![chunk(
            json!({"id": "c", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}),
        )])
        .await;
        assert_eq!(names(&events).last().unwrap(), "ERR");
        let events = events_of(vec![Err(LlmError::internal("boom"))]).await;
        assert_eq!(names(&events), ["ERR"]);
    }

    #[test]
    fn count_tokens_is_estimated_and_says_so() {
        let body: MessagesRequest = serde_json::from_str(
            r#"{"model":"g","messages":[{"role":"user","content":"hello there"}]}"#,
        )
        .unwrap();
        let n = body.estimate_input_tokens();
        let req = LlmRequest::messages_from_bytes(body, Bytes::new(), true);
        let resp = CountTokensBridge.answer_locally(&req).unwrap().unwrap();
        assert_eq!(resp.meta.headers[X_LLMGATE_TOKEN_COUNT], "estimate");
        let ResponseBody::Json(j) = resp.body else {
            panic!("not JSON")
        };
        assert_eq!(
            serde_json::from_slice::<Value>(&j.bytes).unwrap()["input_tokens"],
            n
        );
        assert!(n > 0);
    }
}
