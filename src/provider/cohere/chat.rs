//! Cohere's v2 chat (`POST {api_base}/v2/chat`) and embed (`POST {api_base}/v2/embed`) APIs,
//! from and to OpenAI's chat and embeddings.
//!
//! Request (chat): Cohere v2 takes OpenAI's messages (`system`, `user`, `assistant` with
//! `tool_calls`, `tool` with `tool_call_id`) and tools (`{"type": "function", "function": …}`)
//! as they are; an assistant message without content loses its `content: null`. The parameters
//! LiteLLM maps are sent under Cohere's names: `max_tokens` (or `max_completion_tokens`),
//! `temperature`, `top_p` → `p`, `stop` → `stop_sequences`, `seed`, `frequency_penalty`,
//! `presence_penalty`, `tools`, `tool_choice` (`required` → `REQUIRED`, `none` → `NONE`, `auto`
//! left out), `response_format`, `stream`. Other keys are not sent.
//!
//! Answer (chat): `message.content[].text` joined → `content`, `message.tool_calls` →
//! `tool_calls`, `finish_reason` (`COMPLETE`, `STOP_SEQUENCE` → `stop`, `MAX_TOKENS` → `length`,
//! `TOOL_CALL` → `tool_calls`, `ERROR` → `stop`), `usage.tokens` → `usage`.
//!
//! Stream (chat): Cohere's SSE events, each to at most one chunk: `message-start` (the id; the
//! role rides on the first chunk), `content-delta` (text), `tool-call-start` (a call's id and
//! name), `tool-call-delta` (an arguments fragment), `message-end` (the finish chunk, then the
//! usage chunk when `stream_options.include_usage` asked for it); `content-start`,
//! `content-end`, `tool-plan-delta`, `tool-call-end`, `citation-*` give none.
//!
//! Embeddings: `input` → `texts`, `input_type` (sent, else `search_document`, LiteLLM's
//! default), `embedding_types: ["float"]`, `dimensions` → `output_dimension`; the answer's
//! `embeddings.float` → OpenAI's `data`, `meta.billed_units.input_tokens` → `usage`.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{
    error::{ErrorKind, LlmError},
    provider::{
        chunk::{created_now, include_usage, ChunkHead},
        openai::invalid_upstream_json,
        sse::{SseEvent, SseMapper},
    },
    types::{
        chat::{
            ChatRequest, ChatResponse, Choice, Content, Delta, FunctionCall, Message, ToolCall,
            Usage,
        },
        embeddings::{EmbeddingInput, EmbeddingsRequest},
        ChunkBody,
    },
};

/// The chat body sent to `/v2/chat`.
pub(super) fn chat_body(chat: &ChatRequest, model: &str) -> Result<Value, LlmError> {
    let mut out = Map::new();
    out.insert("model".into(), Value::from(model));
    let mut messages = Vec::with_capacity(chat.messages.len());
    for m in &chat.messages {
        let mut v = serde_json::to_value(m)
            .map_err(|e| LlmError::internal(format!("cannot encode a message: {e}")))?;
        if let Some(obj) = v.as_object_mut() {
            if obj.get("content").is_some_and(Value::is_null) {
                obj.remove("content");
            }
            obj.remove("reasoning_content");
            // Cohere has no `function` role or `name` on messages.
            obj.remove("name");
        }
        messages.push(v);
    }
    out.insert("messages".into(), Value::Array(messages));
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            out.insert(k.into(), v);
        }
    };
    put("stream", chat.stream.filter(|s| *s).map(Value::from));
    put("temperature", chat.temperature.map(Value::from));
    put(
        "max_tokens",
        chat.max_completion_tokens
            .or(chat.max_tokens)
            .map(Value::from),
    );
    put("p", chat.top_p.map(Value::from));
    put(
        "stop_sequences",
        chat.stop
            .as_ref()
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .map(|v| if v.is_string() { json!([v]) } else { v }),
    );
    put("seed", chat.seed.map(Value::from));
    put("frequency_penalty", chat.frequency_penalty.map(Value::from));
    put("presence_penalty", chat.presence_penalty.map(Value::from));
    if let Some(tools) = &chat.tools {
        put(
            "tools",
            Some(
                serde_json::to_value(tools)
                    .map_err(|e| LlmError::internal(format!("cannot encode the tools: {e}")))?,
            ),
        );
    }
    if let Some(choice) = &chat.tool_choice {
        match choice.as_str() {
            Some("required") => put("tool_choice", Some(Value::from("REQUIRED"))),
            Some("none") => put("tool_choice", Some(Value::from("NONE"))),
            Some("auto") | None => {}
            Some(other) => {
                return Err(LlmError::bad_request(format!(
                    "the cohere provider does not support tool_choice {other:?}"
                ))
                .with_param("tool_choice"))
            }
        }
        if choice.is_object() {
            // A named function: Cohere can only require some tool call.
            put("tool_choice", Some(Value::from("REQUIRED")));
        }
    }
    if let Some(format) = &chat.response_format {
        let v: Value = serde_json::from_str(format.get())
            .map_err(|e| LlmError::bad_request(format!("response_format: {e}")))?;
        put("response_format", Some(v));
    }
    if chat.n.is_some_and(|n| n > 1) {
        return Err(
            LlmError::bad_request("the cohere provider answers one choice (n = 1)").with_param("n"),
        );
    }
    Ok(Value::Object(out))
}

/// Cohere's `finish_reason` → OpenAI's.
fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "TOOL_CALL" => "tool_calls",
        // COMPLETE, STOP_SEQUENCE, ERROR and anything new.
        _ => "stop",
    }
}

/// Cohere's `usage` (`tokens`, else `billed_units`): OpenAI's usage.
fn usage(v: Option<&Value>) -> Option<Usage> {
    let v = v?;
    let counts = v
        .get("tokens")
        .filter(|t| t.is_object())
        .or_else(|| v.get("billed_units"))?;
    let n = |k: &str| {
        counts
            .get(k)
            .and_then(Value::as_f64)
            .filter(|n| n.is_finite() && *n >= 0.0)
            // Checked: finite and non-negative.
            .map_or(0, |n| {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let c = n.ceil() as u64;
                c
            })
    };
    Some(Usage::new(n("input_tokens"), n("output_tokens")))
}

/// A Cohere tool call (`{id, type, function: {name, arguments}}`) as OpenAI's.
fn tool_call(v: &Value, index: Option<u32>) -> ToolCall {
    let f = v.get("function");
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    ToolCall {
        index,
        id: s(v.get("id")),
        kind_name: Some("function".into()),
        function: Some(FunctionCall {
            name: s(f.and_then(|f| f.get("name"))),
            arguments: s(f.and_then(|f| f.get("arguments"))),
            ..FunctionCall::default()
        }),
        ..ToolCall::default()
    }
}

#[derive(Deserialize)]
struct ChatAnswer {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
    message: Value,
    #[serde(default)]
    usage: Option<Value>,
}

/// A complete `/v2/chat` answer as an OpenAI chat completion for `model`.
pub(super) fn decode_chat(body: &[u8], model: &str) -> Result<ChatResponse, LlmError> {
    let a: ChatAnswer = serde_json::from_slice(body)
        .map_err(|e| invalid_upstream_json("Cohere chat answer", &e))?;
    let text: String = a
        .message
        .get("content")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let calls: Vec<ToolCall> = a
        .message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|c| c.iter().map(|c| tool_call(c, None)).collect())
        .unwrap_or_default();
    let mut message = Message {
        role: "assistant".into(),
        content: (!text.is_empty()).then_some(Content::Text(text)),
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..Message::default()
    };
    message.set_explicit_null("content", message.content.is_none());
    Ok(ChatResponse {
        id: a.id,
        object: Some("chat.completion".into()),
        created: Some(created_now()),
        model: Some(model.to_owned()),
        choices: vec![Choice {
            index: Some(0),
            message: Some(message),
            finish_reason: Some(
                finish_reason(a.finish_reason.as_deref().unwrap_or("COMPLETE")).to_owned(),
            ),
            ..Choice::default()
        }],
        usage: usage(a.usage.as_ref()),
        ..ChatResponse::default()
    })
}

/// Maps Cohere's v2 chat SSE events to OpenAI chunks. See the [module docs](self).
#[derive(Debug)]
pub(super) struct CohereStreamMapper {
    head: ChunkHead,
    done: bool,
}

impl CohereStreamMapper {
    pub(super) fn new(chat: &ChatRequest, model: &str) -> Self {
        Self {
            head: ChunkHead::new(None, model.to_owned(), include_usage(chat)),
            done: false,
        }
    }
}

/// `v[path…]`.
fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

impl SseMapper for CohereStreamMapper {
    fn on_event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChunkBody>,
    ) -> Result<bool, LlmError> {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(data == "[DONE]");
        }
        let v: Value =
            serde_json::from_str(data).map_err(|e| invalid_upstream_json("Cohere event", &e))?;
        let index = v
            .get("index")
            .and_then(Value::as_u64)
            .and_then(|i| u32::try_from(i).ok());
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "message-start" => {
                self.head
                    .set_id(v.get("id").and_then(Value::as_str).map(str::to_owned));
            }
            "content-delta" => {
                let text = at(&v, &["delta", "message", "content", "text"])
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !text.is_empty() {
                    let delta = Delta {
                        content: Some(text.to_owned()),
                        ..Delta::default()
                    };
                    out.push_back(ChunkBody::from(self.head.delta(delta, None)));
                }
            }
            "tool-call-start" => {
                if let Some(call) = at(&v, &["delta", "message", "tool_calls"]) {
                    let mut call = tool_call(call, Some(index.unwrap_or(0)));
                    if let Some(f) = call.function.as_mut() {
                        f.arguments.get_or_insert_with(String::new);
                    }
                    let delta = Delta {
                        tool_calls: Some(vec![call]),
                        ..Delta::default()
                    };
                    out.push_back(ChunkBody::from(self.head.delta(delta, None)));
                }
            }
            "tool-call-delta" => {
                let args = at(
                    &v,
                    &["delta", "message", "tool_calls", "function", "arguments"],
                )
                .and_then(Value::as_str)
                .unwrap_or("");
                if !args.is_empty() {
                    let delta = Delta {
                        tool_calls: Some(vec![ToolCall {
                            index: Some(index.unwrap_or(0)),
                            function: Some(FunctionCall {
                                arguments: Some(args.to_owned()),
                                ..FunctionCall::default()
                            }),
                            ..ToolCall::default()
                        }]),
                        ..Delta::default()
                    };
                    out.push_back(ChunkBody::from(self.head.delta(delta, None)));
                }
            }
            "message-end" => {
                let reason = at(&v, &["delta", "finish_reason"])
                    .and_then(Value::as_str)
                    .unwrap_or("COMPLETE");
                if reason == "ERROR" {
                    let msg = at(&v, &["delta", "error"])
                        .and_then(Value::as_str)
                        .unwrap_or("the provider ended the stream with an error");
                    return Err(
                        LlmError::new(ErrorKind::InternalServer, msg).with_provider("cohere")
                    );
                }
                out.push_back(ChunkBody::from(
                    self.head
                        .delta(Delta::default(), Some(finish_reason(reason))),
                ));
                if self.head.include_usage() {
                    let u = usage(at(&v, &["delta", "usage"])).unwrap_or_else(|| Usage::new(0, 0));
                    let mut c = self.head.chunk(Vec::new());
                    c.usage = Some(u);
                    out.push_back(ChunkBody::from(c));
                }
                self.done = true;
                return Ok(true);
            }
            // content-start, content-end, tool-plan-delta, tool-call-end, citation-*, debug.
            _ => {}
        }
        Ok(false)
    }

    fn on_end(&mut self, _out: &mut VecDeque<ChunkBody>) -> Result<(), LlmError> {
        if self.done {
            Ok(())
        } else {
            Err(LlmError::new(
                ErrorKind::InternalServer,
                "the provider's stream ended before message-end",
            )
            .with_provider("cohere"))
        }
    }
}

/// The embed body sent to `/v2/embed`.
pub(super) fn embed_body(e: &EmbeddingsRequest, model: &str) -> Result<Value, LlmError> {
    let texts = match &e.input {
        EmbeddingInput::One(t) => vec![t.clone()],
        EmbeddingInput::Many(t) => t.clone(),
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => {
            return Err(
                LlmError::bad_request("the cohere provider embeds texts, not token arrays")
                    .with_param("input"),
            )
        }
    };
    let input_type = e
        .extra
        .get_as::<String>("input_type")
        .unwrap_or_else(|| "search_document".to_owned());
    let mut out = json!({
        "model": model,
        "texts": texts,
        "input_type": input_type,
        "embedding_types": ["float"],
    });
    if let Some(d) = e.dimensions {
        out["output_dimension"] = Value::from(d);
    }
    Ok(out)
}

/// A `/v2/embed` answer as OpenAI's embeddings list for `model`.
pub(super) fn decode_embed(body: &[u8], model: &str) -> Result<Value, LlmError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| invalid_upstream_json("Cohere embed answer", &e))?;
    let vectors = at(&v, &["embeddings", "float"])
        .and_then(Value::as_array)
        .ok_or_else(|| {
            LlmError::new(
                ErrorKind::InternalServer,
                "the provider returned an invalid embeddings response: no embeddings.float",
            )
            .with_status(http::StatusCode::BAD_GATEWAY)
        })?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"object": "embedding", "index": i, "embedding": e}))
        .collect();
    let tokens = at(&v, &["meta", "billed_units", "input_tokens"])
        .or_else(|| at(&v, &["meta", "tokens", "input_tokens"]))
        .and_then(Value::as_f64)
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map_or(0, |n| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let c = n.ceil() as u64;
            c
        });
    Ok(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(s: &str) -> ChatRequest {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn chat_bodies_rename_cohere_params_and_keep_tool_history() {
        let c = chat(
            r#"{"model":"g","messages":[
                {"role":"system","content":"be brief"},
                {"role":"user","content":"weather in Paris?"},
                {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
                {"role":"tool","tool_call_id":"c1","content":"sunny"}],
              "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],
              "tool_choice":"required","top_p":0.5,"stop":"END","max_completion_tokens":10,
              "user":"u1","metadata":{"a":1}}"#,
        );
        let b = chat_body(&c, "command-r").unwrap();
        assert_eq!(b["model"], "command-r");
        assert_eq!(b["p"], 0.5);
        assert_eq!(b["stop_sequences"], json!(["END"]));
        assert_eq!(b["max_tokens"], 10);
        assert_eq!(b["tool_choice"], "REQUIRED");
        assert!(b.get("user").is_none() && b.get("metadata").is_none());
        let m = &b["messages"];
        assert!(m[2].get("content").is_none());
        assert_eq!(m[2]["tool_calls"][0]["function"]["name"], "get_weather");
        assert_eq!(
            m[3],
            json!({"role":"tool","content":"sunny","tool_call_id":"c1"})
        );
        assert_eq!(b["tools"][0]["function"]["name"], "get_weather");
        assert!(chat_body(&chat(r#"{"model":"g","messages":[],"n":2}"#), "m").is_err());
    }

    #[test]
    fn answers_with_text_or_tool_calls() {
        let body = br#"{"id":"r1","finish_reason":"COMPLETE","message":{"role":"assistant","content":[{"type":"text","text":"Hi"},{"type":"text","text":" there"}]},"usage":{"billed_units":{"input_tokens":5,"output_tokens":2},"tokens":{"input_tokens":70,"output_tokens":2}}}"#;
        let r = decode_chat(body, "command-r").unwrap();
        let m = r.choices[0].message.as_ref().unwrap();
        assert_eq!(m.text(), "Hi there");
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("stop"));
        let u = r.usage.unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (Some(70), Some(2)));
        let body = br#"{"id":"r2","finish_reason":"TOOL_CALL","message":{"role":"assistant","tool_plan":"I will call it","tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}}"#;
        let r = decode_chat(body, "m").unwrap();
        let m = r.choices[0].message.as_ref().unwrap();
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        let call = &m.tool_calls.as_ref().unwrap()[0];
        assert_eq!(call.id.as_deref(), Some("c1"));
        assert_eq!(
            call.function.as_ref().unwrap().arguments.as_deref(),
            Some(r#"{"city":"Paris"}"#)
        );
        assert!(decode_chat(b"{}", "m").is_err());
        assert!(decode_chat(b"nope", "m").is_err());
    }

    fn events(mapper: &mut CohereStreamMapper, lines: &[&str]) -> Vec<Value> {
        let mut out = VecDeque::new();
        for l in lines {
            let _ = mapper
                .on_event(
                    SseEvent {
                        data: (*l).to_owned(),
                        ..SseEvent::default()
                    },
                    &mut out,
                )
                .unwrap();
        }
        out.into_iter()
            .map(|c| serde_json::to_value(&c).unwrap())
            .collect()
    }

    #[test]
    fn stream_events_become_chunks() {
        let c = chat(
            r#"{"model":"g","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#,
        );
        let mut m = CohereStreamMapper::new(&c, "command-r");
        let out = events(
            &mut m,
            &[
                r#"{"type":"message-start","id":"s1","delta":{"message":{"role":"assistant"}}}"#,
                r#"{"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}}"#,
                r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"Hel"}}}}"#,
                r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"lo"}}}}"#,
                r#"{"type":"tool-plan-delta","delta":{"message":{"tool_plan":"x"}}}"#,
                r#"{"type":"tool-call-start","index":0,"delta":{"message":{"tool_calls":{"id":"c1","type":"function","function":{"name":"f","arguments":""}}}}}"#,
                r#"{"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"{\"a\":"}}}}}"#,
                r#"{"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"1}"}}}}}"#,
                r#"{"type":"tool-call-end","index":0}"#,
                r#"{"type":"message-end","delta":{"finish_reason":"TOOL_CALL","usage":{"tokens":{"input_tokens":9,"output_tokens":4}}}}"#,
            ],
        );
        assert_eq!(out.len(), 7, "{out:#?}");
        assert_eq!(out[0]["id"], "s1");
        assert_eq!(out[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(out[0]["choices"][0]["delta"]["content"], "Hel");
        assert_eq!(out[1]["choices"][0]["delta"]["content"], "lo");
        let call = &out[2]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(call["id"], "c1");
        assert_eq!(call["function"]["name"], "f");
        assert_eq!(
            out[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":"
        );
        assert_eq!(out[5]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out[6]["choices"], json!([]));
        assert_eq!(out[6]["usage"]["prompt_tokens"], 9);
        assert!(m.on_end(&mut VecDeque::new()).is_ok());
        // Cut before message-end: an error, not a silent end.
        let mut cut = CohereStreamMapper::new(&c, "m");
        let _ = events(
            &mut cut,
            &[r#"{"type":"content-delta","delta":{"message":{"content":{"text":"x"}}}}"#],
        );
        assert!(cut.on_end(&mut VecDeque::new()).is_err());
    }

    #[test]
    fn embed_bodies_and_answers() {
        let e: EmbeddingsRequest =
            serde_json::from_str(r#"{"model":"g","input":["a","b"],"input_type":"search_query"}"#)
                .unwrap();
        let b = embed_body(&e, "embed-english-v3.0").unwrap();
        assert_eq!(
            b,
            json!({"model":"embed-english-v3.0","texts":["a","b"],"input_type":"search_query","embedding_types":["float"]})
        );
        let e: EmbeddingsRequest = serde_json::from_str(r#"{"model":"g","input":"a"}"#).unwrap();
        assert_eq!(
            embed_body(&e, "m").unwrap()["input_type"],
            "search_document"
        );
        let body = br#"{"id":"e","embeddings":{"float":[[0.1,0.2],[0.3,0.4]]},"texts":["a","b"],"meta":{"billed_units":{"input_tokens":2}}}"#;
        let v = decode_embed(body, "m").unwrap();
        assert_eq!(v["data"][1]["embedding"], json!([0.3, 0.4]));
        assert_eq!(v["data"][1]["index"], 1);
        assert_eq!(v["usage"]["prompt_tokens"], 2);
        assert!(decode_embed(br#"{"embeddings":{}}"#, "m").is_err());
    }
}
