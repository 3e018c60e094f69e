//! [`ResponsesBridge`]: OpenAI's Responses API served by any chat provider.
//!
//! The request: `instructions` becomes a system message; `input` (a string, or items: messages
//! with `input_text` / `output_text` / `input_image` / `input_file` parts, `function_call`,
//! `function_call_output`; `reasoning` items are dropped, their encrypted content means nothing to
//! another provider) becomes the chat messages, after the stored conversation of
//! `previous_response_id`; function `tools` and `tool_choice`, `max_output_tokens`,
//! `temperature`, `top_p`, `parallel_tool_calls`, `reasoning.effort`, `text.format` and `user`
//! map to their chat parameters; the function tools of a `namespace` tool become chat functions
//! named `{namespace}__{name}`, and their calls come back as `function_call` items with `name`
//! and `namespace` apart again. Anything else with a meaning the chat model cannot carry (a
//! built-in tool such as `web_search`, an `item_reference`) is a 400 naming it.
//!
//! The answer: a chat completion becomes a `response` object (a `reasoning` item with the
//! provider's reasoning text as its summary, a `message` with `output_text`, one `function_call`
//! per tool call, the usage); a chunk stream becomes the Responses event sequence, one event at a
//! time as the chunks arrive: `response.created`, `response.in_progress`, then per item
//! `response.output_item.added`, `response.content_part.added` /
//! `response.reasoning_summary_part.added`, the deltas (`response.output_text.delta`,
//! `response.reasoning_summary_text.delta`, `response.function_call_arguments.delta`), their
//! `.done` events and `response.output_item.done`, and `response.completed` (or
//! `response.incomplete` when the output token limit cut it) with the usage; every event carries
//! its `sequence_number`.
//!
//! With a [`ResponseStore`](crate::store::responses::ResponseStore) on the request
//! ([`ResponsesContext`]), a response asked to be stored (`store`, default `true`) is kept, owned
//! by the caller's key; the `response` object says `"store": false` when it was not kept.

use std::{
    collections::VecDeque,
    future::Future as _,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{SystemTime, UNIX_EPOCH},
};

use futures_core::Stream;
use serde_json::{json, Map, Value};

use super::Bridge;
use crate::{
    error::{ErrorKind, LlmError},
    store::responses::{SharedResponseStore, StoredResponse},
    types::{
        chat::{ChatRequest, ChatResponse, Usage},
        responses::ResponsesRequest,
        ChatStream, JsonBody, LlmRequest, LlmResponse, Operation, ResponseBody, StreamEvent,
        TokenUsage,
    },
};

/// The bridge of [`OperationKind::Responses`](crate::types::OperationKind::Responses). See the
/// [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct ResponsesBridge;

/// What the edge puts on a Responses request when the gateway keeps responses: the store, the
/// caller's owner id, and the response `previous_response_id` names (when it is the caller's).
#[derive(Clone, Debug)]
pub struct ResponsesContext {
    /// Where responses are kept.
    pub store: SharedResponseStore,
    /// The caller's owner id ([`owner_of`](crate::store::responses::owner_of)).
    pub owner: Arc<str>,
    /// The stored response `previous_response_id` names, if found for this owner.
    pub previous: Option<Arc<StoredResponse>>,
}

fn body_of(req: &LlmRequest) -> Result<&ResponsesRequest, LlmError> {
    match &req.op {
        Operation::Responses(r) => Ok(r),
        _ => Err(LlmError::internal(
            "the Responses bridge was given another operation",
        )),
    }
}

fn unsupported(what: impl std::fmt::Display) -> LlmError {
    LlmError::bad_request(format!(
        "{what} is not supported for this model: it is served through the gateway's chat translation"
    ))
    .with_code("unsupported_parameter")
}

fn parse_raw(raw: Option<&serde_json::value::RawValue>, what: &str) -> Result<Value, LlmError> {
    raw.map_or(Ok(Value::Null), |r| {
        serde_json::from_str(r.get())
            .map_err(|e| LlmError::bad_request(format!("invalid `{what}`: {e}")))
    })
}

/// The input items of a request: a string input is one user message.
pub fn input_items(body: &ResponsesRequest) -> Result<Vec<Value>, LlmError> {
    Ok(match parse_raw(body.input.as_deref(), "input")? {
        Value::Null => Vec::new(),
        Value::String(s) => vec![json!({"type": "message", "role": "user", "content": s})],
        Value::Array(items) => items,
        _ => {
            return Err(LlmError::bad_request(
                "`input` must be a string or an array",
            ))
        }
    })
}

/// The text of a content list's text parts (`input_text`, `output_text`, `text`, `refusal`).
fn parts_text(parts: &[Value]) -> String {
    let mut out = String::new();
    for p in parts {
        if let Some(t) = p
            .get("text")
            .or_else(|| p.get("refusal"))
            .and_then(Value::as_str)
        {
            out.push_str(t);
        }
    }
    out
}

/// A chat content part for a Responses input part.
fn chat_part(part: &Value) -> Result<Value, LlmError> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    Ok(match kind {
        "input_text" | "output_text" | "text" => {
            json!({"type": "text", "text": part.get("text").cloned().unwrap_or(Value::Null)})
        }
        "input_image" => {
            let Some(url) = part.get("image_url").and_then(Value::as_str) else {
                return Err(unsupported("an `input_image` by `file_id`"));
            };
            let mut image = json!({"url": url});
            if let Some(d) = part.get("detail") {
                image["detail"] = d.clone();
            }
            json!({"type": "image_url", "image_url": image})
        }
        "input_file" => {
            let mut file = Map::new();
            for k in ["file_data", "file_id", "filename"] {
                if let Some(v) = part.get(k) {
                    file.insert(k.to_owned(), v.clone());
                }
            }
            json!({"type": "file", "file": file})
        }
        other => {
            return Err(unsupported(format_args!(
                "an input content part of type `{other}`"
            )))
        }
    })
}

/// Appends the chat messages of Responses `items` to `out`.
fn push_messages(items: &[&Value], out: &mut Vec<Value>) -> Result<(), LlmError> {
    for item in items {
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        match kind {
            "message" => {
                let role = match item.get("role").and_then(Value::as_str) {
                    Some("developer") => "system",
                    Some(r @ ("user" | "assistant" | "system")) => r,
                    Some(other) => {
                        return Err(LlmError::bad_request(format!(
                            "invalid message role `{other}`"
                        )))
                    }
                    None => "user",
                };
                let content = match item.get("content") {
                    Some(Value::String(s)) => Value::String(s.clone()),
                    Some(Value::Array(parts)) if role == "user" => {
                        Value::Array(parts.iter().map(chat_part).collect::<Result<_, _>>()?)
                    }
                    Some(Value::Array(parts)) => Value::String(parts_text(parts)),
                    _ => Value::String(String::new()),
                };
                out.push(json!({"role": role, "content": content}));
            }
            "function_call" => {
                let name = match (
                    item.get("namespace").and_then(Value::as_str),
                    item.get("name").and_then(Value::as_str),
                ) {
                    (Some(ns), Some(name)) => Value::String(flat_name(ns, name)),
                    _ => item.get("name").cloned().unwrap_or(Value::Null),
                };
                let call = json!({
                    "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": item.get("arguments").cloned().unwrap_or_else(|| json!("{}")),
                    },
                });
                // Consecutive calls (and calls after the assistant's text) are one assistant turn.
                let joins = out
                    .last()
                    .is_some_and(|m| m.get("role").and_then(Value::as_str) == Some("assistant"));
                if joins {
                    if let Some(Value::Object(last)) = out.last_mut() {
                        let calls = last.entry("tool_calls").or_insert_with(|| json!([]));
                        if let Value::Array(calls) = calls {
                            calls.push(call);
                        }
                        continue;
                    }
                }
                out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
            }
            "function_call_output" => {
                let output = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => parts_text(parts),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                out.push(json!({
                    "role": "tool",
                    "tool_call_id": item.get("call_id").cloned().unwrap_or(Value::Null),
                    "content": output,
                }));
            }
            // Another provider's reasoning (encrypted or summarised) cannot be given back.
            "reasoning" => {}
            other => return Err(unsupported(format_args!("an input item of type `{other}`"))),
        }
    }
    Ok(())
}

/// The chat function name of the function `name` of the namespace tool `ns`.
fn flat_name(ns: &str, name: &str) -> String {
    format!("{ns}__{name}")
}

/// A Responses function tool as a chat tool (named `{ns}__{name}` inside a namespace).
fn chat_function(t: &Value, ns: Option<&str>) -> Value {
    let mut f = Map::new();
    for k in ["name", "description", "parameters", "strict"] {
        if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
            f.insert(k.to_owned(), v.clone());
        }
    }
    if let (Some(ns), Some(name)) = (ns, t.get("name").and_then(Value::as_str)) {
        f.insert("name".into(), Value::String(flat_name(ns, name)));
    }
    json!({"type": "function", "function": f})
}

/// The chat function names made from namespace tools: `(flat name, namespace, name)`.
fn namespaced_names(tools: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for t in tools.as_array().into_iter().flatten() {
        if t.get("type").and_then(Value::as_str) != Some("namespace") {
            continue;
        }
        let ns = t.get("name").and_then(Value::as_str).unwrap_or("");
        for f in t
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = f.get("name").and_then(Value::as_str) {
                out.push((flat_name(ns, name), ns.to_owned(), name.to_owned()));
            }
        }
    }
    out
}

/// The chat request for a Responses request, after the conversation `history`.
fn to_chat(
    body: &ResponsesRequest,
    history: &[&Value],
    input: &[Value],
) -> Result<ChatRequest, LlmError> {
    let mut messages = Vec::new();
    if let Some(instructions) = &body.instructions {
        messages.push(json!({"role": "system", "content": instructions}));
    }
    push_messages(history, &mut messages)?;
    push_messages(&input.iter().collect::<Vec<_>>(), &mut messages)?;
    let mut chat = Map::new();
    chat.insert("model".into(), json!(body.model));
    chat.insert("messages".into(), Value::Array(messages));
    if body.stream == Some(true) {
        chat.insert("stream".into(), json!(true));
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Value::Array(tools) = parse_raw(body.tools.as_deref(), "tools")? {
        let mut out = Vec::with_capacity(tools.len());
        for t in &tools {
            match t.get("type").and_then(Value::as_str) {
                Some("function") => out.push(chat_function(t, None)),
                // A group of function tools (Codex CLI sends its sub-agent tools so): each is
                // a chat function named `{namespace}__{name}`, split again in the answer.
                Some("namespace") => {
                    let ns = t.get("name").and_then(Value::as_str).unwrap_or("");
                    let Some(Value::Array(inner)) = t.get("tools") else {
                        return Err(LlmError::bad_request(format!(
                            "the namespace tool `{ns}` needs `tools`"
                        )));
                    };
                    for f in inner {
                        match f.get("type").and_then(Value::as_str) {
                            Some("function") => out.push(chat_function(f, Some(ns))),
                            other => {
                                return Err(unsupported(format_args!(
                                    "the tool type `{}` in the namespace `{ns}`",
                                    other.unwrap_or("(none)")
                                )))
                            }
                        }
                    }
                }
                other => {
                    return Err(unsupported(format_args!(
                        "the tool type `{}`",
                        other.unwrap_or("(none)")
                    )))
                }
            }
        }
        if !out.is_empty() {
            chat.insert("tools".into(), Value::Array(out));
        }
    }
    match parse_raw(body.tool_choice.as_deref(), "tool_choice")? {
        Value::Null => {}
        s @ Value::String(_) => {
            chat.insert("tool_choice".into(), s);
        }
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o.get("name").cloned().unwrap_or(Value::Null);
            chat.insert(
                "tool_choice".into(),
                json!({"type": "function", "function": {"name": name}}),
            );
        }
        other => return Err(unsupported(format_args!("the tool_choice `{other}`"))),
    }
    if let Some(n) = body.max_output_tokens {
        chat.insert("max_tokens".into(), json!(n));
    }
    if let Some(t) = body.temperature {
        chat.insert("temperature".into(), json!(t));
    }
    if let Some(p) = body.top_p {
        chat.insert("top_p".into(), json!(p));
    }
    if let Some(p) = body.parallel_tool_calls {
        chat.insert("parallel_tool_calls".into(), json!(p));
    }
    if let Some(u) = &body.user {
        chat.insert("user".into(), json!(u));
    }
    if let Some(effort) = parse_raw(body.reasoning.as_deref(), "reasoning")?
        .get("effort")
        .and_then(Value::as_str)
    {
        chat.insert("reasoning_effort".into(), json!(effort));
    }
    if let Some(format) = parse_raw(body.text.as_deref(), "text")?.get("format") {
        match format.get("type").and_then(Value::as_str) {
            Some("text") | None => {}
            Some("json_object") => {
                chat.insert("response_format".into(), json!({"type": "json_object"}));
            }
            Some("json_schema") => {
                let mut schema = Map::new();
                for k in ["name", "schema", "strict", "description"] {
                    if let Some(v) = format.get(k) {
                        schema.insert(k.to_owned(), v.clone());
                    }
                }
                chat.insert(
                    "response_format".into(),
                    json!({"type": "json_schema", "json_schema": schema}),
                );
            }
            Some(other) => return Err(unsupported(format_args!("the text format `{other}`"))),
        }
    }
    serde_json::from_value(Value::Object(chat))
        .map_err(|e| LlmError::bad_request(format!("cannot translate the request: {e}")))
}

impl Bridge for ResponsesBridge {
    fn chat_request(&self, req: &LlmRequest) -> Result<LlmRequest, LlmError> {
        let body = body_of(req)?;
        let ctx = req.extensions.get::<ResponsesContext>();
        let previous = ctx.and_then(|c| c.previous.as_ref());
        let history = match (&body.previous_response_id, previous) {
            (None, _) => Vec::new(),
            (Some(_), Some(p)) => p.conversation(),
            (Some(id), None) if ctx.is_some() => {
                return Err(LlmError::new(
                    ErrorKind::BadRequest,
                    format!("Previous response with id '{id}' not found."),
                )
                .with_status(http::StatusCode::NOT_FOUND)
                .with_code("previous_response_not_found"))
            }
            (Some(_), None) => {
                return Err(LlmError::bad_request(
                    "`previous_response_id` needs the gateway's response store for this model \
                     (served through the chat translation), and none is configured; send the \
                     whole conversation in `input` instead",
                )
                .with_code("unsupported_parameter"))
            }
        };
        let input = input_items(body)?;
        let chat = to_chat(body, &history, &input)?;
        let mut out = LlmRequest::new(Operation::Chat(Arc::new(chat)));
        out.extensions = req.extensions.clone();
        out.set_controls(Some(req.controls().into_owned()));
        Ok(out)
    }

    fn chat_answer(&self, req: &LlmRequest, resp: LlmResponse) -> Result<LlmResponse, LlmError> {
        let body = body_of(req)?;
        let LlmResponse { body: answer, meta } = resp;
        let mut shape = Shape::new(body, req.extensions.get::<ResponsesContext>())?;
        let body = match answer {
            ResponseBody::Chat(c) => {
                let chat = c.into_typed()?;
                ResponseBody::Json(Box::new(shape.complete(chat)))
            }
            ResponseBody::Stream(stream) => {
                ResponseBody::Events(Box::pin(ChunkEvents::new(stream, shape)))
            }
            other => {
                return Err(LlmError::internal(format!(
                    "the Responses bridge cannot translate a {other:?} answer"
                )))
            }
        };
        Ok(LlmResponse { body, meta })
    }
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:032x}", fastrand::u128(..))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The chat usage as Responses' usage object.
fn usage_json(u: &Usage) -> Value {
    let t = TokenUsage::from(u);
    json!({
        "input_tokens": t.input,
        "input_tokens_details": {"cached_tokens": t.cache_read},
        "output_tokens": t.output,
        "output_tokens_details": {"reasoning_tokens": t.reasoning},
        "total_tokens": t.total,
    })
}

/// What every response object of one request repeats, and where it is kept.
struct Shape {
    id: Arc<str>,
    created_at: u64,
    model: String,
    /// The request's echoed members (instructions, tools, …).
    echo: Map<String, Value>,
    /// This turn's input items, with ids (for `input_items`).
    input: Vec<Value>,
    /// The store and owner, when this response is kept.
    keep: Option<(SharedResponseStore, Arc<str>, Option<Arc<StoredResponse>>)>,
    /// The chat names of the request's namespaced functions: `(flat name, namespace, name)`.
    namespaced: Vec<(String, String, String)>,
}

impl Shape {
    fn new(body: &ResponsesRequest, ctx: Option<&ResponsesContext>) -> Result<Self, LlmError> {
        let keep = ctx
            .filter(|_| body.wants_store())
            .map(|c| (c.store.clone(), c.owner.clone(), c.previous.clone()));
        let mut echo = Map::new();
        let raw = |r: Option<&serde_json::value::RawValue>, what: &str| parse_raw(r, what);
        echo.insert("instructions".into(), json!(body.instructions));
        echo.insert("max_output_tokens".into(), json!(body.max_output_tokens));
        echo.insert(
            "parallel_tool_calls".into(),
            json!(body.parallel_tool_calls.unwrap_or(true)),
        );
        echo.insert(
            "previous_response_id".into(),
            json!(body.previous_response_id),
        );
        let reasoning = raw(body.reasoning.as_deref(), "reasoning")?;
        echo.insert(
            "reasoning".into(),
            if reasoning.is_null() {
                json!({"effort": null, "summary": null})
            } else {
                reasoning
            },
        );
        echo.insert("store".into(), json!(keep.is_some()));
        echo.insert("temperature".into(), json!(body.temperature.unwrap_or(1.0)));
        let text = raw(body.text.as_deref(), "text")?;
        echo.insert(
            "text".into(),
            if text.is_null() {
                json!({"format": {"type": "text"}})
            } else {
                text
            },
        );
        let choice = raw(body.tool_choice.as_deref(), "tool_choice")?;
        echo.insert(
            "tool_choice".into(),
            if choice.is_null() {
                json!("auto")
            } else {
                choice
            },
        );
        let tools = raw(body.tools.as_deref(), "tools")?;
        let namespaced = namespaced_names(&tools);
        echo.insert(
            "tools".into(),
            if tools.is_null() { json!([]) } else { tools },
        );
        echo.insert("top_p".into(), json!(body.top_p.unwrap_or(1.0)));
        echo.insert("truncation".into(), json!("disabled"));
        echo.insert("user".into(), json!(body.user));
        echo.insert("metadata".into(), json!({}));
        let input = input_items(body)?
            .into_iter()
            .map(|mut item| {
                if let Value::Object(o) = &mut item {
                    o.entry("id").or_insert_with(|| json!(new_id("msg")));
                }
                item
            })
            .collect();
        Ok(Self {
            id: new_id("resp").into(),
            created_at: now_secs(),
            model: body.model.clone(),
            echo,
            input,
            keep,
            namespaced,
        })
    }

    /// A `function_call` item for the chat tool call `chat_name`, with `namespace` when the
    /// name is one of the request's namespaced functions.
    fn call_item(
        &self,
        id: &str,
        call_id: &str,
        chat_name: &str,
        args: &str,
        status: &str,
    ) -> Value {
        let mut item = json!({"type": "function_call", "id": id, "call_id": call_id,
            "name": chat_name, "arguments": args, "status": status});
        if let Some((_, ns, name)) = self
            .namespaced
            .iter()
            .find(|(flat, _, _)| flat == chat_name)
        {
            item["name"] = json!(name);
            item["namespace"] = json!(ns);
        }
        item
    }

    /// The response object with `status`, `output` and `usage`.
    fn object(
        &self,
        status: &str,
        output: &[Value],
        usage: Option<&Usage>,
        incomplete: Option<&str>,
    ) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), json!(&*self.id));
        o.insert("object".into(), json!("response"));
        o.insert("created_at".into(), json!(self.created_at));
        o.insert("status".into(), json!(status));
        o.insert("error".into(), Value::Null);
        o.insert(
            "incomplete_details".into(),
            incomplete.map_or(Value::Null, |r| json!({"reason": r})),
        );
        o.insert("model".into(), json!(self.model));
        o.insert("output".into(), Value::Array(output.to_vec()));
        for (k, v) in &self.echo {
            o.insert(k.clone(), v.clone());
        }
        o.insert("usage".into(), usage.map_or(Value::Null, usage_json));
        Value::Object(o)
    }

    /// Keeps the finished response when asked.
    fn keep(&mut self, response: &Value, output: &[Value]) {
        if let Some((store, owner, previous)) = self.keep.take() {
            let record = Arc::new(StoredResponse::new(
                self.id.clone(),
                owner,
                response.clone(),
                std::mem::take(&mut self.input),
                output.to_vec(),
                previous,
            ));
            let mut put = Box::pin(async move {
                if let Err(e) = store.put(record).await {
                    tracing::warn!(error = %e, "could not keep a Responses answer");
                }
            });
            // Polled once here: a store that writes at once (the in-memory one) has written it
            // before the client sees the answer, so a `GET` right after finds it. A store that
            // waits (a database) finishes off the request path.
            let mut cx = Context::from_waker(std::task::Waker::noop());
            if put.as_mut().poll(&mut cx).is_pending() {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(put);
                }
            }
        }
    }

    /// A complete chat answer as a response object.
    fn complete(&mut self, chat: ChatResponse) -> JsonBody {
        if let Some(m) = &chat.model {
            self.model.clone_from(m);
        }
        let mut output = Vec::new();
        let mut finish = None;
        if let Some(choice) = chat.choices.into_iter().next() {
            finish = choice.finish_reason;
            if let Some(msg) = choice.message {
                if let Some(r) = msg.reasoning_content.filter(|r| !r.is_empty()) {
                    output.push(json!({
                        "type": "reasoning", "id": new_id("rs"),
                        "summary": [{"type": "summary_text", "text": r}],
                    }));
                }
                let text = msg.content.map(|c| c.text()).unwrap_or_default();
                if !text.is_empty() {
                    output.push(message_item(&new_id("msg"), "completed", &text));
                }
                for call in msg.tool_calls.unwrap_or_default() {
                    let f = call.function.unwrap_or_default();
                    output.push(self.call_item(
                        &new_id("fc"),
                        call.id.as_deref().unwrap_or(""),
                        f.name.as_deref().unwrap_or(""),
                        f.arguments.as_deref().unwrap_or(""),
                        "completed",
                    ));
                }
            }
        }
        let (status, incomplete) = status_of(finish.as_deref());
        let response = self.object(status, &output, chat.usage.as_ref(), incomplete);
        self.keep(&response, &output);
        let bytes = serde_json::to_vec(&response).unwrap_or_default();
        JsonBody::new(bytes.into())
            .with_usage(chat.usage.as_ref().map(TokenUsage::from))
            .with_model(Some(Arc::from(self.model.as_str())))
    }
}

/// The response status for a chat finish reason, and why it is incomplete.
fn status_of(finish: Option<&str>) -> (&'static str, Option<&'static str>) {
    match finish {
        Some("length") => ("incomplete", Some("max_output_tokens")),
        Some("content_filter") => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

fn message_item(id: &str, status: &str, text: &str) -> Value {
    json!({
        "type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    })
}

/// An output item being streamed.
enum Open {
    Reasoning {
        id: String,
        index: usize,
        text: String,
    },
    Message {
        id: String,
        index: usize,
        text: String,
    },
}

/// A function call being streamed (by the chat tool call's `index`).
struct OpenCall {
    chat_index: u32,
    id: String,
    index: usize,
    call_id: String,
    name: String,
    arguments: String,
}

/// A chat chunk stream as Responses events. See the [module docs](self).
struct ChunkEvents {
    inner: ChatStream,
    shape: Shape,
    pending: VecDeque<StreamEvent>,
    seq: u64,
    started: bool,
    finished: bool,
    /// Finished items, by output index.
    output: Vec<Value>,
    open: Option<Open>,
    calls: Vec<OpenCall>,
    usage: Option<Usage>,
    finish: Option<String>,
}

impl ChunkEvents {
    fn new(inner: ChatStream, shape: Shape) -> Self {
        Self {
            inner,
            shape,
            pending: VecDeque::new(),
            seq: 0,
            started: false,
            finished: false,
            output: Vec::new(),
            open: None,
            calls: Vec::new(),
            usage: None,
            finish: None,
        }
    }

    /// Queues the event `kind` with `fields` and its sequence number.
    fn emit(&mut self, kind: &str, mut fields: Map<String, Value>) -> &mut StreamEvent {
        fields.insert("type".into(), json!(kind));
        fields.insert("sequence_number".into(), json!(self.seq));
        self.seq += 1;
        let data = serde_json::to_vec(&Value::Object(fields)).unwrap_or_default();
        self.pending.push_back(StreamEvent::sse(kind, &data));
        let last = self.pending.len() - 1;
        &mut self.pending[last]
    }

    fn next_index(&self) -> usize {
        self.output.len() + usize::from(self.open.is_some()) + self.calls.len()
    }

    fn start(&mut self) {
        self.started = true;
        let r = self.shape.object("in_progress", &[], None, None);
        let model: Arc<str> = Arc::from(self.shape.model.as_str());
        let e = self.emit("response.created", fields([("response", r.clone())]));
        e.model = Some(model);
        self.emit("response.in_progress", fields([("response", r)]));
    }

    /// Closes the open text or reasoning item.
    fn close_open(&mut self) {
        match self.open.take() {
            None => {}
            Some(Open::Reasoning { id, index, text }) => {
                let part = json!({"type": "summary_text", "text": text});
                self.emit(
                    "response.reasoning_summary_text.done",
                    fields([
                        ("item_id", json!(id)),
                        ("output_index", json!(index)),
                        ("summary_index", json!(0)),
                        ("text", json!(text)),
                    ]),
                );
                self.emit(
                    "response.reasoning_summary_part.done",
                    fields([
                        ("item_id", json!(id)),
                        ("output_index", json!(index)),
                        ("summary_index", json!(0)),
                        ("part", part.clone()),
                    ]),
                );
                let item = json!({"type": "reasoning", "id": id, "summary": [part]});
                self.emit(
                    "response.output_item.done",
                    fields([("output_index", json!(index)), ("item", item.clone())]),
                );
                self.output.push(item);
            }
            Some(Open::Message { id, index, text }) => {
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                self.emit(
                    "response.output_text.done",
                    fields([
                        ("item_id", json!(id)),
                        ("output_index", json!(index)),
                        ("content_index", json!(0)),
                        ("text", json!(text)),
                    ]),
                );
                self.emit(
                    "response.content_part.done",
                    fields([
                        ("item_id", json!(id)),
                        ("output_index", json!(index)),
                        ("content_index", json!(0)),
                        ("part", part),
                    ]),
                );
                let item = message_item(&id, "completed", &text);
                self.emit(
                    "response.output_item.done",
                    fields([("output_index", json!(index)), ("item", item.clone())]),
                );
                self.output.push(item);
            }
        }
    }

    fn close_calls(&mut self) {
        for call in std::mem::take(&mut self.calls) {
            self.emit(
                "response.function_call_arguments.done",
                fields([
                    ("item_id", json!(call.id)),
                    ("output_index", json!(call.index)),
                    ("arguments", json!(call.arguments)),
                ]),
            );
            let item = self.shape.call_item(
                &call.id,
                &call.call_id,
                &call.name,
                &call.arguments,
                "completed",
            );
            self.emit(
                "response.output_item.done",
                fields([("output_index", json!(call.index)), ("item", item.clone())]),
            );
            self.output.push(item);
        }
    }

    fn reasoning_delta(&mut self, delta: &str) {
        if !matches!(self.open, Some(Open::Reasoning { .. })) {
            self.close_open();
            self.close_calls();
            let (id, index) = (new_id("rs"), self.next_index());
            self.emit(
                "response.output_item.added",
                fields([
                    ("output_index", json!(index)),
                    (
                        "item",
                        json!({"type": "reasoning", "id": id, "summary": []}),
                    ),
                ]),
            );
            self.emit(
                "response.reasoning_summary_part.added",
                fields([
                    ("item_id", json!(id)),
                    ("output_index", json!(index)),
                    ("summary_index", json!(0)),
                    ("part", json!({"type": "summary_text", "text": ""})),
                ]),
            );
            self.open = Some(Open::Reasoning {
                id,
                index,
                text: String::new(),
            });
        }
        if let Some(Open::Reasoning { id, index, text }) = &mut self.open {
            text.push_str(delta);
            let f = fields([
                ("item_id", json!(id)),
                ("output_index", json!(*index)),
                ("summary_index", json!(0)),
                ("delta", json!(delta)),
            ]);
            self.emit("response.reasoning_summary_text.delta", f)
                .text_bytes = delta.len();
        }
    }

    fn text_delta(&mut self, delta: &str) {
        if !matches!(self.open, Some(Open::Message { .. })) {
            self.close_open();
            self.close_calls();
            let (id, index) = (new_id("msg"), self.next_index());
            self.emit(
                "response.output_item.added",
                fields([
                    ("output_index", json!(index)),
                    (
                        "item",
                        json!({"type": "message", "id": id, "status": "in_progress",
                                "role": "assistant", "content": []}),
                    ),
                ]),
            );
            self.emit(
                "response.content_part.added",
                fields([
                    ("item_id", json!(id)),
                    ("output_index", json!(index)),
                    ("content_index", json!(0)),
                    (
                        "part",
                        json!({"type": "output_text", "text": "", "annotations": []}),
                    ),
                ]),
            );
            self.open = Some(Open::Message {
                id,
                index,
                text: String::new(),
            });
        }
        if let Some(Open::Message { id, index, text }) = &mut self.open {
            text.push_str(delta);
            let f = fields([
                ("item_id", json!(id)),
                ("output_index", json!(*index)),
                ("content_index", json!(0)),
                ("delta", json!(delta)),
            ]);
            self.emit("response.output_text.delta", f).text_bytes = delta.len();
        }
    }

    fn call_delta(
        &mut self,
        chat_index: u32,
        call_id: Option<String>,
        name: Option<String>,
        args: &str,
    ) {
        self.close_open();
        let at = match self.calls.iter().position(|c| c.chat_index == chat_index) {
            Some(at) => at,
            None => {
                let (id, index) = (new_id("fc"), self.next_index());
                let call_id = call_id.unwrap_or_else(|| new_id("call"));
                let name = name.unwrap_or_default();
                self.emit(
                    "response.output_item.added",
                    fields([
                        ("output_index", json!(index)),
                        (
                            "item",
                            self.shape
                                .call_item(&id, &call_id, &name, "", "in_progress"),
                        ),
                    ]),
                );
                self.calls.push(OpenCall {
                    chat_index,
                    id,
                    index,
                    call_id,
                    name,
                    arguments: String::new(),
                });
                self.calls.len() - 1
            }
        };
        if args.is_empty() {
            return;
        }
        let call = &mut self.calls[at];
        call.arguments.push_str(args);
        let f = fields([
            ("item_id", json!(call.id)),
            ("output_index", json!(call.index)),
            ("delta", json!(args)),
        ]);
        self.emit("response.function_call_arguments.delta", f)
            .text_bytes = args.len();
    }

    fn on_chunk(&mut self, chunk: crate::types::chat::ChatChunk) {
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        if let Some(m) = chunk.model.filter(|m| !m.is_empty()) {
            self.shape.model = m;
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return;
        };
        if let Some(f) = choice.finish_reason {
            self.finish = Some(f);
        }
        let Some(delta) = choice.delta else { return };
        if let Some(r) = delta.reasoning_content.filter(|r| !r.is_empty()) {
            self.reasoning_delta(&r);
        }
        if let Some(t) = delta.content.filter(|t| !t.is_empty()) {
            self.text_delta(&t);
        }
        for call in delta.tool_calls.unwrap_or_default() {
            let f = call.function.unwrap_or_default();
            let args = f.arguments.unwrap_or_default();
            self.call_delta(call.index.unwrap_or(0), call.id, f.name, &args);
        }
    }

    fn on_end(&mut self) {
        self.close_open();
        self.close_calls();
        let (status, incomplete) = status_of(self.finish.as_deref());
        let output = std::mem::take(&mut self.output);
        let response = self
            .shape
            .object(status, &output, self.usage.as_ref(), incomplete);
        self.shape.keep(&response, &output);
        let usage = self.usage.as_ref().map(TokenUsage::from);
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        let e = self.emit(kind, fields([("response", response)]));
        e.usage = usage;
        e.is_final = true;
    }
}

fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

impl Stream for ChunkEvents {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(e) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(e)));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => match chunk.into_typed() {
                    Ok(c) => {
                        if !this.started {
                            if let Some(m) = c.model.as_ref().filter(|m| !m.is_empty()) {
                                this.shape.model.clone_from(m);
                            }
                            this.start();
                        }
                        this.on_chunk(c);
                    }
                    Err(e) => {
                        this.finished = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.finished = true;
                    if !this.started {
                        this.start();
                    }
                    this.on_end();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::StreamExt as _;

    use super::*;
    use crate::types::ChunkBody;

    #[allow(clippy::needless_pass_by_value)] // called with `json!(..)`
    fn request(body: Value) -> LlmRequest {
        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap());
        LlmRequest::responses_from_bytes(serde_json::from_slice(&bytes).unwrap(), bytes)
    }

    fn chat_of(req: &LlmRequest) -> Value {
        let chat = ResponsesBridge.chat_request(req).unwrap();
        serde_json::to_value(chat.as_chat().unwrap()).unwrap()
    }

    #[test]
    fn a_request_becomes_the_chat_request_that_means_the_same() {
        let chat = chat_of(&request(json!({
            "model": "g", "instructions": "Be brief.", "stream": true,
            "input": [
                {"role": "developer", "content": "Use metric units."},
                {"role": "user", "content": [
                    {"type": "input_text", "text": "What is in this image?"},
                    {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
                {"type": "function_call", "call_id": "c1", "name": "zoom", "arguments": "{\"x\":1}"},
                {"type": "function_call", "call_id": "c2", "name": "zoom", "arguments": "{\"x\":2}"},
                {"type": "function_call_output", "call_id": "c1", "output": "big"},
                {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "bigger"}]}
            ],
            "tools": [{"type": "function", "name": "zoom", "parameters": {"type": "object"}, "strict": true}],
            "tool_choice": {"type": "function", "name": "zoom"},
            "max_output_tokens": 100, "temperature": 0.2, "top_p": 0.9, "parallel_tool_calls": false,
            "reasoning": {"effort": "high", "summary": "auto"},
            "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}},
            "store": false, "include": ["reasoning.encrypted_content"], "user": "u1"
        })));
        assert_eq!(
            chat,
            json!({
                "model": "g",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "system", "content": "Use metric units."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "What is in this image?"},
                        {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}}]},
                    {"role": "assistant", "content": "Let me look.", "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "zoom", "arguments": "{\"x\":1}"}},
                        {"id": "c2", "type": "function", "function": {"name": "zoom", "arguments": "{\"x\":2}"}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "big"},
                    {"role": "tool", "tool_call_id": "c2", "content": "bigger"}
                ],
                "stream": true, "stream_options": {"include_usage": true},
                "temperature": 0.2, "top_p": 0.9, "max_tokens": 100, "user": "u1",
                "tools": [{"type": "function", "function": {"name": "zoom", "parameters": {"type": "object"}, "strict": true}}],
                "tool_choice": {"type": "function", "function": {"name": "zoom"}},
                "parallel_tool_calls": false,
                "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}},
                "reasoning_effort": "high"
            })
        );
    }

    #[test]
    fn previous_response_id_without_a_store_is_refused_clearly() {
        let err = ResponsesBridge
            .chat_request(&request(
                json!({"model": "g", "input": "x", "previous_response_id": "resp_1"}),
            ))
            .unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        assert!(
            err.message().contains("response store"),
            "{}",
            err.message()
        );
    }

    #[allow(clippy::needless_pass_by_value)] // called with `json!(..)`
    fn chunk(v: Value) -> Result<ChunkBody, LlmError> {
        ChunkBody::from_wire(Bytes::from(v.to_string()))
    }

    async fn events_of(chunks: Vec<Value>) -> Vec<StreamEvent> {
        let req = request(json!({"model": "g", "input": "x", "stream": true}));
        let stream: ChatStream =
            Box::pin(futures_util::stream::iter(chunks.into_iter().map(chunk)));
        let resp = ResponsesBridge
            .chat_answer(&req, LlmResponse::stream(stream))
            .unwrap();
        let ResponseBody::Events(events) = resp.body else {
            panic!("not an event stream")
        };
        events.map(Result::unwrap).collect().await
    }

    fn data(e: &StreamEvent) -> Value {
        let text = std::str::from_utf8(&e.frame).unwrap();
        let line = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        serde_json::from_str(line).unwrap()
    }

    #[tokio::test]
    async fn reasoning_text_and_two_calls_stream_as_items_in_order_with_their_facts() {
        let c = |delta: Value, finish: Value| {
            json!({"id": "c", "object": "chat.completion.chunk", "model": "m-1",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let evs = events_of(vec![
            c(json!({"role": "assistant", "reasoning_content": "Think"}), Value::Null),
            c(json!({"content": "Hel"}), Value::Null),
            c(json!({"content": "lo"}), Value::Null),
            c(json!({"tool_calls": [{"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\""}}]}), Value::Null),
            c(json!({"tool_calls": [{"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}), Value::Null),
            c(json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}), json!("tool_calls")),
            json!({"id": "c", "object": "chat.completion.chunk", "model": "m-1", "choices": [],
                   "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
                             "prompt_tokens_details": {"cached_tokens": 4}}}),
        ])
        .await;
        let kinds: Vec<String> = evs
            .iter()
            .map(|e| data(e)["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, e) in evs.iter().enumerate() {
            assert_eq!(data(e)["sequence_number"], json!(i));
        }
        assert_eq!(evs[0].model.as_deref(), Some("m-1"));
        let text: usize = evs.iter().map(|e| e.text_bytes).sum();
        assert_eq!(
            text,
            "Think".len() + "Hello".len() + "{\"x\":1}".len() + "{}".len()
        );
        let last = evs.last().unwrap();
        assert!(last.is_final);
        let u = last.usage.unwrap();
        assert_eq!((u.input, u.output, u.cache_read, u.total), (10, 7, 4, 17));
        let r = &data(last)["response"];
        assert_eq!(r["status"], "completed");
        assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 4);
        let out = r["output"].as_array().unwrap();
        assert_eq!(out.len(), 4);
        assert_eq!(out[0]["summary"][0]["text"], "Think");
        assert_eq!(out[1]["content"][0]["text"], "Hello");
        assert_eq!(
            (out[2]["call_id"].as_str(), out[2]["arguments"].as_str()),
            (Some("a"), Some("{\"x\":1}"))
        );
        assert_eq!(
            (out[3]["call_id"].as_str(), out[3]["name"].as_str()),
            (Some("b"), Some("g"))
        );
    }

    #[tokio::test]
    async fn a_cut_answer_is_incomplete_and_an_empty_stream_still_completes() {
        let evs = events_of(vec![json!({"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "length"}]})]).await;
        let last = data(evs.last().unwrap());
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        let evs = events_of(Vec::new()).await;
        let kinds: Vec<Value> = evs.iter().map(|e| data(e)["type"].clone()).collect();
        assert_eq!(
            kinds,
            [
                json!("response.created"),
                json!("response.in_progress"),
                json!("response.completed")
            ]
        );
    }

    #[tokio::test]
    async fn an_error_mid_stream_ends_the_events_with_it() {
        let req = request(json!({"model": "g", "input": "x", "stream": true}));
        let items = vec![
            chunk(json!({"choices": [{"index": 0, "delta": {"content": "a"}}]})),
            Err(LlmError::new(ErrorKind::ApiConnection, "cut")),
        ];
        let stream: ChatStream = Box::pin(futures_util::stream::iter(items));
        let ResponseBody::Events(events) = ResponsesBridge
            .chat_answer(&req, LlmResponse::stream(stream))
            .unwrap()
            .body
        else {
            panic!()
        };
        let items: Vec<_> = events.collect().await;
        assert!(items.last().unwrap().is_err());
        assert!(items[..items.len() - 1].iter().all(Result::is_ok));
    }

    /// The in-memory store has the response by the time the answer is returned (no task to wait
    /// for: this test has no runtime), owned by the caller.
    #[test]
    fn a_kept_response_is_stored_before_the_answer_returns() {
        use crate::store::responses::{MemoryResponseStore, ResponseStore as _};
        let store = Arc::new(MemoryResponseStore::default());
        let mut req = request(json!({"model": "g", "input": "x"}));
        req.extensions.insert(ResponsesContext {
            store: store.clone(),
            owner: "alice".into(),
            previous: None,
        });
        let chat: ChatResponse = serde_json::from_value(json!({
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}]
        }))
        .unwrap();
        let resp = ResponsesBridge
            .chat_answer(&req, LlmResponse::chat(chat))
            .unwrap();
        let ResponseBody::Json(j) = resp.body else {
            panic!()
        };
        let r: Value = serde_json::from_slice(&j.bytes).unwrap();
        assert_eq!(r["store"], true);
        let id = r["id"].as_str().unwrap();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let Poll::Ready(Ok(Some(kept))) = store.get(id, "alice").as_mut().poll(&mut cx) else {
            panic!("not kept")
        };
        assert_eq!(kept.response, r);
        assert_eq!(kept.input.len(), 1);
        let Poll::Ready(Ok(None)) = store.get(id, "bob").as_mut().poll(&mut cx) else {
            panic!("found by another owner")
        };
    }

    #[tokio::test]
    async fn namespace_tools_are_chat_functions_and_their_calls_say_the_namespace() {
        // Codex CLI 0.171 groups its sub-agent tools in a `namespace` tool.
        let tools = json!([{"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
            {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.", "tools": [
                {"type": "function", "name": "close_agent", "description": "Close.", "strict": false,
                 "parameters": {"type": "object", "properties": {"target": {"type": "string"}}}}]}]);
        let body = json!({"model": "g", "tools": tools, "input": [
            {"type": "message", "role": "user", "content": "close it"},
            {"type": "function_call", "call_id": "c0", "namespace": "multi_agent_v1", "name": "close_agent", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c0", "output": "ok"}]});
        let req = request(body.clone());
        let chat = chat_of(&req);
        let names: Vec<&str> = chat["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["exec_command", "multi_agent_v1__close_agent"]);
        assert_eq!(chat["tools"][1]["function"]["description"], "Close.");
        assert_eq!(
            chat["messages"][1]["tool_calls"][0]["function"]["name"],
            "multi_agent_v1__close_agent"
        );
        let answer: ChatResponse = serde_json::from_value(json!({
            "id": "c", "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null, "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "multi_agent_v1__close_agent", "arguments": "{\"target\":\"a\"}"}},
                    {"id": "t2", "type": "function", "function": {"name": "exec_command", "arguments": "{}"}}]}}]
        }))
        .unwrap();
        let resp = ResponsesBridge
            .chat_answer(&req, LlmResponse::chat(answer))
            .unwrap();
        let ResponseBody::Json(j) = resp.body else {
            panic!()
        };
        let r: Value = serde_json::from_slice(&j.bytes).unwrap();
        assert_eq!(r["output"][0]["name"], "close_agent");
        assert_eq!(r["output"][0]["namespace"], "multi_agent_v1");
        assert_eq!(r["output"][1]["name"], "exec_command");
        assert!(r["output"][1].get("namespace").is_none());
        // Streamed: the item added and the item done both name the namespace.
        let mut body = body;
        body["stream"] = json!(true);
        let req = request(body);
        let stream: ChatStream = Box::pin(futures_util::stream::iter(
            [json!({"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [{"index": 0,
                "delta": {"tool_calls": [{"index": 0, "id": "t1", "type": "function",
                    "function": {"name": "multi_agent_v1__close_agent", "arguments": "{}"}}]},
                "finish_reason": "tool_calls"}]})]
            .into_iter()
            .map(chunk),
        ));
        let resp = ResponsesBridge
            .chat_answer(&req, LlmResponse::stream(stream))
            .unwrap();
        let ResponseBody::Events(events) = resp.body else {
            panic!()
        };
        let evs: Vec<StreamEvent> = events.map(Result::unwrap).collect().await;
        let items: Vec<Value> = evs
            .iter()
            .map(data)
            .filter(|d| {
                d["type"]
                    .as_str()
                    .unwrap()
                    .starts_with("response.output_item.")
            })
            .map(|d| d["item"].clone())
            .collect();
        assert_eq!(items.len(), 2);
        for item in items {
            assert_eq!(item["namespace"], "multi_agent_v1", "{item}");
            assert_eq!(item["name"], "close_agent", "{item}");
        }
        let e = ResponsesBridge
            .chat_request(&request(json!({"model": "g", "input": "x", "tools": [
                {"type": "namespace", "name": "n", "tools": [{"type": "custom", "name": "c"}]}]})))
            .unwrap_err();
        assert!(e.message().contains("`custom` in the namespace `n`"), "{e}");
    }

    #[test]
    fn a_complete_answer_is_a_response_object_with_its_facts() {
        let req = request(
            json!({"model": "g", "input": "x", "tools": [{"type": "function", "name": "f"}]}),
        );
        let chat: ChatResponse = serde_json::from_value(json!({
            "id": "c", "model": "m-2", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "ok", "reasoning_content": "hmm",
                "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8,
                      "completion_tokens_details": {"reasoning_tokens": 2}}
        }))
        .unwrap();
        let resp = ResponsesBridge
            .chat_answer(&req, LlmResponse::chat(chat))
            .unwrap();
        let u = resp.token_usage().unwrap();
        assert_eq!((u.input, u.output, u.reasoning), (3, 5, 2));
        let ResponseBody::Json(j) = resp.body else {
            panic!()
        };
        assert_eq!(j.model.as_deref(), Some("m-2"));
        let r: Value = serde_json::from_slice(&j.bytes).unwrap();
        assert_eq!(r["object"], "response");
        assert_eq!(
            r["store"], false,
            "no store on the request: not kept, and it says so"
        );
        let kinds: Vec<&str> = r["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["reasoning", "message", "function_call"]);
        assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 2);
        assert_eq!(r["tools"][0]["name"], "f");
    }
}
