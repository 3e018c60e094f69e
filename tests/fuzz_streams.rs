//! Fuzzing every provider's response decoders: the stream decoders (SSE for OpenAI, Anthropic and
//! Gemini, NDJSON for Ollama, the AWS event-stream for Bedrock), the decoders of whole answers and
//! the error classifiers, through the public [`Provider`] trait of every built-in provider.
//!
//! Properties: no input panics or loops; every error is an `LlmError` that renders as OpenAI error
//! JSON with a 4xx/5xx status; nothing follows a stream's error; and a stream gives the same
//! chunks and errors however its bytes are split into body chunks.
//!
//! Cases per property: `PROPTEST_CASES` (256 when unset). A long run:
//! `PROPTEST_CASES=20000 cargo test --test fuzz_streams` (see docs/reliability.md).

#![allow(clippy::unwrap_used)]

use std::sync::LazyLock;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use futures_util::StreamExt as _;
use http::StatusCode;
use llmgate::{
    provider::{known_prefixes, lookup, ByteStream, Deployment},
    types::chat::ChatRequest,
    LlmError, LlmRequest,
};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Most items a stream may yield for these inputs before it counts as a runaway loop.
const MAX_ITEMS: usize = 20_000;

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

fn chat_request(stream: bool, include_usage: bool) -> LlmRequest {
    let body: ChatRequest = serde_json::from_value(json!({
        "model": "g",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
        "stream_options": {"include_usage": include_usage},
    }))
    .unwrap();
    LlmRequest::chat(body)
}

fn deployment(provider: &str) -> Deployment {
    Deployment::new("g", &format!("{provider}/m"))
}

/// `bytes` cut at `cuts` (taken modulo the length) into body chunks.
fn split(bytes: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    let mut pieces = Vec::new();
    let mut start = 0;
    for c in at {
        pieces.push(Bytes::copy_from_slice(&bytes[start..c]));
        start = c;
    }
    pieces.push(Bytes::copy_from_slice(&bytes[start..]));
    pieces
}

/// What a stream yielded, comparable across runs: each chunk as JSON without the per-stream
/// `id`s and `created`, each error as its kind, status and message.
#[derive(Debug, PartialEq)]
enum Item {
    Chunk(Value),
    Error(String),
}

fn strip_ids(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("id");
            m.remove("created");
            m.values_mut().for_each(strip_ids);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_ids),
        _ => {}
    }
}

/// Checks that `err` is a well-formed error: a 4xx/5xx status and OpenAI error JSON.
fn check_error(err: &LlmError) -> Result<(), TestCaseError> {
    let status = err.status();
    prop_assert!(
        status.is_client_error() || status.is_server_error(),
        "status {status} for {err}"
    );
    let body: Value = serde_json::from_slice(&err.to_json()).unwrap();
    prop_assert!(body["error"]["message"].is_string(), "{body}");
    // `type` is the gateway's string, or an OpenAI-format provider's own value relayed as sent
    // (Azure sends `null`): only its presence is checked.
    prop_assert!(body["error"].get("type").is_some(), "{body}");
    Ok(())
}

/// Runs `provider`'s stream decoder over `pieces`; checks the items and returns them.
fn run_stream(
    provider: &str,
    include_usage: bool,
    pieces: Vec<Bytes>,
) -> Result<Vec<Item>, TestCaseError> {
    let p = lookup(provider).unwrap();
    let req = chat_request(true, include_usage);
    let parts = http::Response::new(()).into_parts().0;
    let body: ByteStream = Box::pin(futures_util::stream::iter(pieces.into_iter().map(Ok)));
    let stream = match p.decode_stream(&req, parts, body, &deployment(provider)) {
        Ok(s) => s,
        Err(e) => {
            check_error(&e)?;
            return Ok(vec![Item::Error(describe(&e))]);
        }
    };
    let got: Vec<_> = RT.block_on(stream.take(MAX_ITEMS + 1).collect());
    prop_assert!(got.len() <= MAX_ITEMS, "{provider}: a runaway stream");
    let mut items = Vec::with_capacity(got.len());
    for (i, r) in got.into_iter().enumerate() {
        if let Some(Item::Error(_)) = items.last() {
            prop_assert!(false, "{provider}: item {i} follows an error");
        }
        items.push(match r {
            Ok(chunk) => {
                // What the edge writes: a relayed chunk's own bytes, else its serialization.
                let mut buf = bytes::BytesMut::new();
                chunk.write_json(&mut buf);
                match serde_json::from_slice::<Value>(&buf) {
                    Ok(mut v) => {
                        strip_ids(&mut v);
                        Item::Chunk(v)
                    }
                    // A relayed chunk's bytes are passed on as they came (see types::scan).
                    Err(_) => {
                        Item::Chunk(Value::String(String::from_utf8_lossy(&buf).into_owned()))
                    }
                }
            }
            Err(e) => {
                check_error(&e)?;
                Item::Error(describe(&e))
            }
        });
    }
    Ok(items)
}

fn describe(e: &LlmError) -> String {
    format!("{:?} {} {}", e.kind(), e.status(), e.message())
}

/// Every built-in provider prefix.
fn provider() -> impl Strategy<Value = &'static str> {
    let all: Vec<&'static str> = known_prefixes().collect();
    proptest::sample::select(all)
}

/// Text a model might send: plain, awkward for JSON and SSE (quotes, backslashes, newlines,
/// `data:` inside), or any Unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z ]{0,12}",
        "[\"\\\\\r\n:{}\\[\\] ]{0,8}(data: |\\[DONE\\])?",
        any::<String>(),
    ]
}

fn usage_json() -> impl Strategy<Value = Value> {
    (any::<u32>(), any::<u32>())
        .prop_map(|(p, c)| json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": u64::from(p) + u64::from(c)}))
}

/// One SSE event around `data`, with a random line ending, maybe a named event and a comment.
fn sse_event(event: Option<&str>, data: &str, eol: &str, comment: bool) -> String {
    let mut out = String::new();
    if comment {
        out.push_str(": keep-alive");
        out.push_str(eol);
    }
    if let Some(e) = event {
        out.push_str("event: ");
        out.push_str(e);
        out.push_str(eol);
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push_str(eol);
    }
    out.push_str(eol);
    out
}

fn eol() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec!["\n", "\r\n", "\r"])
}

/// An OpenAI-format chat completion stream: chunks, maybe usage, maybe `[DONE]`.
fn openai_sse() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(
            (
                text(),
                proptest::option::of(proptest::sample::select(vec!["stop", "length", "tool_calls"])),
                any::<bool>(),
            ),
            0..6,
        ),
        proptest::option::of(usage_json()),
        any::<bool>(),
        eol(),
    )
        .prop_map(|(chunks, usage, done, eol)| {
            let mut out = String::new();
            for (content, finish, comment) in chunks {
                let chunk = json!({
                    "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
                });
                out.push_str(&sse_event(None, &chunk.to_string(), eol, comment));
            }
            if let Some(u) = usage {
                let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
                    "model": "m", "choices": [], "usage": u});
                out.push_str(&sse_event(None, &chunk.to_string(), eol, false));
            }
            if done {
                out.push_str(&sse_event(None, "[DONE]", eol, false));
            }
            out.into_bytes()
        })
}

/// An Anthropic Messages stream: any sequence of its event types, well-formed or not.
fn anthropic_sse() -> impl Strategy<Value = Vec<u8>> {
    let event = prop_oneof![
        Just(("message_start", json!({"type": "message_start", "message": {"id": "m", "model": "claude", "role": "assistant", "usage": {"input_tokens": 3, "output_tokens": 1}}}))),
        (0_u32..3, proptest::sample::select(vec!["text", "thinking", "tool_use", "redacted_thinking", "other"]), text())
            .prop_map(|(i, kind, name)| ("content_block_start", json!({"type": "content_block_start", "index": i, "content_block": {"type": kind, "text": "", "id": "t", "name": name, "input": {}}}))),
        (0_u32..3, proptest::sample::select(vec!["text_delta", "thinking_delta", "input_json_delta", "signature_delta"]), text())
            .prop_map(|(i, kind, t)| ("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": kind, "text": t, "thinking": t, "partial_json": t, "signature": t}}))),
        (0_u32..3).prop_map(|i| ("content_block_stop", json!({"type": "content_block_stop", "index": i}))),
        (proptest::sample::select(vec!["end_turn", "max_tokens", "tool_use", "stop_sequence"]), any::<u32>())
            .prop_map(|(r, n)| ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": r}, "usage": {"output_tokens": n}}))),
        Just(("message_stop", json!({"type": "message_stop"}))),
        Just(("ping", json!({"type": "ping"}))),
        text().prop_map(|m| ("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": m}}))),
    ];
    (
        proptest::collection::vec((event, any::<bool>()), 0..10),
        eol(),
    )
        .prop_map(|(events, eol)| {
            let mut out = String::new();
            for ((name, data), comment) in events {
                out.push_str(&sse_event(Some(name), &data.to_string(), eol, comment));
            }
            out.into_bytes()
        })
}

/// A Gemini `streamGenerateContent?alt=sse` stream.
fn gemini_sse() -> impl Strategy<Value = Vec<u8>> {
    let part = prop_oneof![
        text().prop_map(|t| json!({"text": t})),
        text().prop_map(|t| json!({"text": t, "thought": true})),
        text().prop_map(|n| json!({"functionCall": {"name": n, "args": {"a": 1}}})),
    ];
    let chunk = (
        proptest::collection::vec(part, 0..3),
        proptest::option::of(proptest::sample::select(vec!["STOP", "MAX_TOKENS", "SAFETY", "OTHER"])),
        proptest::option::of((any::<u32>(), any::<u32>())),
        0_u32..2,
    )
        .prop_map(|(parts, finish, usage, index)| {
            let mut c = json!({"candidates": [{"content": {"role": "model", "parts": parts}, "index": index}], "responseId": "r"});
            if let Some(f) = finish {
                c["candidates"][0]["finishReason"] = json!(f);
            }
            if let Some((p, o)) = usage {
                c["usageMetadata"] = json!({"promptTokenCount": p, "candidatesTokenCount": o, "totalTokenCount": u64::from(p) + u64::from(o)});
            }
            c
        });
    (proptest::collection::vec(chunk, 0..6), eol()).prop_map(|(chunks, eol)| {
        let mut out = String::new();
        for c in chunks {
            out.push_str(&sse_event(None, &c.to_string(), eol, false));
        }
        out.into_bytes()
    })
}

/// An Ollama NDJSON stream (`/api/chat` and `/api/generate` fields both), maybe cut short.
fn ollama_ndjson() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        text().prop_map(|t| json!({"model": "m", "message": {"role": "assistant", "content": t}, "done": false})),
        text().prop_map(|t| json!({"model": "m", "response": t, "done": false})),
        text().prop_map(|t| json!({"model": "m", "message": {"role": "assistant", "content": "", "thinking": t}, "done": false})),
        text().prop_map(|n| json!({"model": "m", "message": {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": n, "arguments": {"a": 1}}}]}, "done": false})),
        (proptest::sample::select(vec!["stop", "length", "load"]), any::<u32>(), any::<u32>())
            .prop_map(|(r, p, e)| json!({"model": "m", "done": true, "done_reason": r, "prompt_eval_count": p, "eval_count": e})),
        text().prop_map(|e| json!({"error": e})),
    ];
    (
        proptest::collection::vec(line, 0..8),
        proptest::sample::select(vec!["\n", "\r\n", "\n\n"]),
    )
        .prop_map(|(lines, eol)| {
            let mut out = String::new();
            for l in lines {
                out.push_str(&l.to_string());
                out.push_str(eol);
            }
            out.into_bytes()
        })
}

fn aws_frame(message_type: &str, event_type: &str, payload: &[u8]) -> Vec<u8> {
    let type_header = if message_type == "exception" {
        ":exception-type"
    } else {
        ":event-type"
    };
    let msg = Message::new(Bytes::copy_from_slice(payload))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String(message_type.to_owned().into()),
        ))
        .add_header(Header::new(
            type_header,
            HeaderValue::String(event_type.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ));
    let mut out = Vec::new();
    write_message_to(&msg, &mut out).unwrap();
    out
}

/// A Bedrock ConverseStream body: AWS event-stream frames of Converse events and exceptions.
fn bedrock_event_stream() -> impl Strategy<Value = Vec<u8>> {
    let frame = prop_oneof![
        Just(aws_frame("event", "messageStart", br#"{"role":"assistant"}"#)),
        (0_u32..3, text()).prop_map(|(i, t)| aws_frame("event", "contentBlockDelta", json!({"contentBlockIndex": i, "delta": {"text": t}}).to_string().as_bytes())),
        (0_u32..3, text()).prop_map(|(i, t)| aws_frame("event", "contentBlockDelta", json!({"contentBlockIndex": i, "delta": {"reasoningContent": {"text": t}}}).to_string().as_bytes())),
        (0_u32..3, text()).prop_map(|(i, n)| aws_frame("event", "contentBlockStart", json!({"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": "t", "name": n}}}).to_string().as_bytes())),
        (0_u32..3, text()).prop_map(|(i, t)| aws_frame("event", "contentBlockDelta", json!({"contentBlockIndex": i, "delta": {"toolUse": {"input": t}}}).to_string().as_bytes())),
        (0_u32..3).prop_map(|i| aws_frame("event", "contentBlockStop", json!({"contentBlockIndex": i}).to_string().as_bytes())),
        proptest::sample::select(vec!["end_turn", "max_tokens", "tool_use", "guardrail_intervened"])
            .prop_map(|r| aws_frame("event", "messageStop", json!({"stopReason": r}).to_string().as_bytes())),
        (any::<u32>(), any::<u32>()).prop_map(|(i, o)| aws_frame("event", "metadata", json!({"usage": {"inputTokens": i, "outputTokens": o, "totalTokens": u64::from(i) + u64::from(o)}}).to_string().as_bytes())),
        (proptest::sample::select(vec!["throttlingException", "validationException", "internalServerException", "modelStreamErrorException"]), text())
            .prop_map(|(e, m)| aws_frame("exception", e, json!({"message": m}).to_string().as_bytes())),
        (text(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(e, payload)| aws_frame("event", &e, &payload)),
    ];
    proptest::collection::vec(frame, 0..8).prop_map(|f| f.concat())
}

/// A provider and a body in its own wire format.
fn provider_and_body() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    prop_oneof![
        (
            proptest::sample::select(vec!["openai", "azure", "mock"]),
            openai_sse()
        ),
        openai_sse().prop_map(|b| ("openai", b)),
        anthropic_sse().prop_map(|b| ("anthropic", b)),
        (
            proptest::sample::select(vec!["gemini", "vertex_ai"]),
            gemini_sse()
        ),
        (
            proptest::sample::select(vec!["ollama", "ollama_chat"]),
            ollama_ndjson()
        ),
        bedrock_event_stream().prop_map(|b| ("bedrock", b)),
    ]
    .prop_filter("a built-in provider", |(p, _)| lookup(p).is_some())
}

/// A wire-format body with a few bytes changed: a valid stream gone slightly wrong.
fn mutated(
    (provider, mut body): (&'static str, Vec<u8>),
    edits: &[(usize, u8)],
) -> (&'static str, Vec<u8>) {
    for &(at, byte) in edits {
        if !body.is_empty() {
            let i = at % body.len();
            body[i] = byte;
        }
    }
    (provider, body)
}

proptest! {
    /// Any bytes, split anywhere, to any provider's stream decoder: no panic, no runaway, errors
    /// well-formed and last.
    #[test]
    fn any_bytes_to_any_stream_decoder(
        provider in provider(),
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        include_usage in any::<bool>(),
    ) {
        run_stream(provider, include_usage, split(&bytes, &cuts))?;
    }

    /// A provider's own wire format (and that format with bytes changed) gives the same chunks
    /// and errors whether it arrives whole, split at random points, or one byte at a time.
    #[test]
    fn stream_decoders_give_the_same_items_at_any_split(
        pb in provider_and_body(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        cuts in proptest::collection::vec(any::<usize>(), 1..12),
        include_usage in any::<bool>(),
    ) {
        let (provider, body) = mutated(pb, &edits);
        let whole = run_stream(provider, include_usage, vec![Bytes::from(body.clone())])?;
        let split_up = run_stream(provider, include_usage, split(&body, &cuts))?;
        prop_assert_eq!(&whole, &split_up, "{} cut at {:?}", provider, cuts);
        let bytewise = run_stream(provider, include_usage, body.iter().map(|b| Bytes::copy_from_slice(&[*b])).collect())?;
        prop_assert_eq!(&whole, &bytewise, "{} one byte at a time", provider);
    }

    /// Any bytes, and any JSON, as a provider's whole answer: an answer or a well-formed error.
    #[test]
    fn any_answer_to_any_decoder(
        provider in provider(),
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            json_value().prop_map(|v| serde_json::to_vec(&json!({"choices": [{"message": v}], "candidates": [{"content": v}], "content": [v], "output": {"message": {"content": [v]}}, "message": v, "usage": v})).unwrap()),
        ],
        stream in any::<bool>(),
    ) {
        let p = lookup(provider).unwrap();
        let req = chat_request(stream, false);
        let resp = http::Response::new(Bytes::from(body));
        if let Err(e) = p.decode(&req, resp, &deployment(provider)) {
            check_error(&e)?;
        }
    }

    /// Any error body with any status to any provider's error classifier: a well-formed error
    /// (never a success status).
    #[test]
    fn any_error_body_to_any_classifier(
        provider in provider(),
        status in 100_u16..600,
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            json_value().prop_map(|v| serde_json::to_vec(&json!({"error": v, "message": v, "type": v, "code": v})).unwrap()),
            json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        ],
        retry_after in proptest::option::of("[0-9a-zA-Z ,:.-]{0,12}"),
    ) {
        let p = lookup(provider).unwrap();
        let status = StatusCode::from_u16(status).unwrap();
        let mut headers = http::HeaderMap::new();
        if let Some(v) = retry_after.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
            headers.insert(http::header::RETRY_AFTER, v);
        }
        let e = p.classify(status, &headers, &body, &deployment(provider));
        check_error(&e)?;
    }
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(
                proptest::sample::select(vec![
                    "role",
                    "content",
                    "text",
                    "type",
                    "message",
                    "error",
                    "code",
                    "parts",
                    "functionCall",
                    "tool_calls",
                    "usage",
                    "finishReason",
                    "stop_reason",
                    "x",
                ])
                .prop_map(str::to_owned),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
