//! Criterion benchmarks of provider translation cost, per wire family, through the public
//! [`Provider`] API, with the OpenAI pass-through as the baseline measured in the same run:
//!
//! - `encode/<family>`: OpenAI chat request with tools → the provider's HTTP request (URL, headers,
//!   body; Bedrock includes SigV4 signing).
//! - `decode/<family>`: the provider's tool-calling answer (the conformance corpus's
//!   `upstream_response` for that family) → OpenAI `ChatResponse`.
//! - `stream/<family>` and `stream_x64/<family>`: `decode_stream` over the family's text stream from
//!   the corpus (each upstream event its own body chunk, as it comes off the wire), driven to the
//!   end; `stream_x64` repeats one content-delta event 64 more times, so
//!   `(stream_x64 - stream) / 64` is the cost of one more stream event.
//!
//! The request is a realistic chat with tools: a system prompt, a user turn, an earlier assistant
//! tool call and its result, two function tools, `tool_choice: auto`, `max_tokens`, `temperature`.
//! Azure and the OpenAI-compatible host (`deepseek`) speak the OpenAI format, so their decode
//! input is the openai case's answer.
//!
//! Anthropic's Messages API (issue 20), in group `messages`:
//!
//! - `messages/relay_encode`: a Messages request (the same conversation and tools, in Anthropic's
//!   form) → the `anthropic/` relay request (the client's bytes with `model` spliced in); compare
//!   `encode/openai`, the chat relay.
//! - `messages/bridge_encode/<family>`: the same request through the Messages bridge to chat and
//!   the family's chat encode (the translated path).
//! - `messages/relay_stream`: `decode_events` over Anthropic's text stream (each event relayed as
//!   its bytes, its facts read); compare `stream/anthropic`, the same stream translated to chat.
//! - `messages/bridge_decode/openai` and `messages/bridge_stream/openai`: the OpenAI answer and
//!   stream decoded and translated into the Messages answer and Anthropic's events.
//!
//! `benches/layers.rs` keeps its `provider/*` benches (plain chat, no tools, openai and anthropic
//! only), which `docs/benchmarks.md` already quotes.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use base64::Engine as _;
use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use futures_util::StreamExt as _;
use llmgate::{
    provider::{self, bridge, ByteStream, Deployment, Provider},
    types::{chat::ChatRequest, messages::MessagesRequest, OperationKind, ResponseBody},
    LlmRequest, LlmResponse,
};
use serde_json::{json, Value};

const EXTRA_EVENTS: usize = 64;

/// How a family's stream is framed.
#[derive(Clone, Copy)]
enum Framing {
    /// `text/event-stream`: events end with a blank line (`\n\n` or `\r\n\r\n`).
    Sse,
    /// `application/x-ndjson`: one JSON object per line.
    Ndjson,
    /// `application/vnd.amazon.eventstream`: length-prefixed binary messages.
    EventStream,
}

struct Family {
    name: &'static str,
    model: &'static str,
    /// Case whose answer `decode` gets.
    answer_case: &'static str,
    /// Text stream case for `decode_stream`.
    stream_case: &'static str,
    framing: Framing,
    /// A byte string found only in the content-delta event that `stream_x64` repeats.
    delta_marker: &'static str,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "openai",
        model: "openai/gpt-4o-mini",
        answer_case: "openai/tools_nonstream",
        stream_case: "openai/stream_include_usage",
        framing: Framing::Sse,
        delta_marker: r#""delta":{"content":"Hello"}"#,
    },
    Family {
        name: "azure",
        model: "azure/my-deployment",
        answer_case: "openai/tools_nonstream",
        stream_case: "azure/stream",
        framing: Framing::Sse,
        delta_marker: r#""delta":{"content":"Hello"}"#,
    },
    Family {
        name: "deepseek",
        model: "deepseek/deepseek-chat",
        answer_case: "openai/tools_nonstream",
        stream_case: "openai_compatible/deepseek_reasoning_stream",
        framing: Framing::Sse,
        delta_marker: r#""delta":{"content":"9.8""#,
    },
    Family {
        name: "anthropic",
        model: "anthropic/claude-sonnet-4-5-20250929",
        answer_case: "anthropic/tools_auto",
        stream_case: "anthropic/stream_text",
        framing: Framing::Sse,
        delta_marker: r#""text":"Hello""#,
    },
    Family {
        name: "gemini",
        model: "gemini/gemini-2.5-flash",
        answer_case: "gemini/tools_auto_function_call",
        stream_case: "gemini/stream_text",
        framing: Framing::Sse,
        delta_marker: r#""text":"The capital""#,
    },
    Family {
        name: "vertex_ai",
        model: "vertex_ai/gemini-2.5-flash",
        answer_case: "gemini/tools_auto_function_call",
        stream_case: "vertex_ai/stream_regional",
        framing: Framing::Sse,
        delta_marker: r#""text":"Bonjour""#,
    },
    Family {
        name: "bedrock",
        model: "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
        answer_case: "bedrock/converse_tools",
        stream_case: "bedrock/stream_text_tool_use",
        framing: Framing::EventStream,
        delta_marker: r#""text":"Let me""#,
    },
    Family {
        name: "ollama_chat",
        model: "ollama_chat/llama3.1",
        answer_case: "ollama/chat_tools",
        stream_case: "ollama/chat_stream_ndjson",
        framing: Framing::Ndjson,
        delta_marker: r#""content":"Because""#,
    },
];

fn case(id: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/conformance/{id}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn chat_request(stream: bool) -> LlmRequest {
    let weather = json!({"type": "function", "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
        }, "required": ["location"]}
    }});
    let forecast = json!({"type": "function", "function": {
        "name": "get_forecast",
        "description": "Get a multi-day weather forecast for a location",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string", "description": "The city and state"},
            "days": {"type": "integer", "minimum": 1, "maximum": 10}
        }, "required": ["location", "days"]}
    }});
    let mut body = json!({
        "model": "bench",
        "messages": [
            {"role": "system", "content": "You are a helpful weather assistant. Use the tools when the user asks about weather."},
            {"role": "user", "content": "What's the weather like in Boston today?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\"location\":\"Boston, MA\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature\":22,\"unit\":\"celsius\",\"conditions\":\"sunny\"}"},
            {"role": "user", "content": "And the forecast for the next three days?"}
        ],
        "tools": [weather, forecast],
        "tool_choice": "auto",
        "max_tokens": 512,
        "temperature": 0.2
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    LlmRequest::chat(serde_json::from_value::<ChatRequest>(body).unwrap())
}

fn deployment(f: &Family) -> Deployment {
    let mut dep = Deployment::new("bench", f.model)
        .with_api_base(match f.name {
            "gemini" => "http://127.0.0.1:8000/v1beta",
            "openai" | "deepseek" => "http://127.0.0.1:8000/v1",
            _ => "http://127.0.0.1:8000",
        })
        .with_api_key("sk-bench");
    match f.name {
        "azure" => dep.api_version = Some("2024-10-21".to_owned()),
        "vertex_ai" => {
            dep.params
                .insert("vertex_project".into(), json!("my-project"));
            dep.params
                .insert("vertex_location".into(), json!("us-central1"));
        }
        "bedrock" => {
            dep.api_key = None;
            dep.params
                .insert("aws_access_key_id".into(), json!("AKIDEXAMPLE"));
            dep.params.insert(
                "aws_secret_access_key".into(),
                json!("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            );
            dep.params
                .insert("aws_region_name".into(), json!("us-east-1"));
        }
        "ollama_chat" => dep.api_key = None,
        _ => {}
    }
    dep
}

fn response_headers(up: &Value) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (k, v) in up["headers"].as_object().into_iter().flatten() {
        headers.insert(
            http::HeaderName::try_from(k.as_str()).unwrap(),
            http::HeaderValue::try_from(v.as_str().unwrap()).unwrap(),
        );
    }
    headers
}

fn answer(up: &Value) -> http::Response<Bytes> {
    let mut resp = http::Response::new(Bytes::from(serde_json::to_vec(&up["body"]).unwrap()));
    *resp.headers_mut() = response_headers(up);
    resp
}

/// The stream body split into its events, each with its terminator.
fn events(up: &Value, framing: Framing) -> Vec<Bytes> {
    let raw: Vec<u8> = match up["eventstream_base64"].as_str() {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
        None => up["sse"].as_str().unwrap().as_bytes().to_vec(),
    };
    let mut out = Vec::new();
    let mut rest = raw.as_slice();
    while !rest.is_empty() {
        let end = match framing {
            Framing::EventStream => u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize,
            Framing::Ndjson => rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1),
            Framing::Sse => {
                let find = |pat: &[u8]| {
                    rest.windows(pat.len())
                        .position(|w| w == pat)
                        .map(|i| i + pat.len())
                };
                match (find(b"\n\n"), find(b"\r\n\r\n")) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => rest.len(),
                }
            }
        };
        out.push(Bytes::copy_from_slice(&rest[..end]));
        rest = &rest[end..];
    }
    out
}

/// `events` with the one holding `marker` repeated `extra` more times in place.
fn with_repeats(events: &[Bytes], marker: &str, extra: usize) -> Vec<Bytes> {
    let hits: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.windows(marker.len()).any(|w| w == marker.as_bytes()))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "marker {marker:?} must match exactly one event"
    );
    let at = hits[0];
    let mut out = events[..=at].to_vec();
    out.extend(std::iter::repeat_n(events[at].clone(), extra));
    out.extend_from_slice(&events[at + 1..]);
    out
}

/// Runs `decode_stream` over `events` to the end; returns the number of chunks.
async fn drain(
    p: &dyn Provider,
    req: &LlmRequest,
    dep: &Deployment,
    headers: &http::HeaderMap,
    events: &[Bytes],
) -> usize {
    let mut resp = http::Response::new(());
    *resp.headers_mut() = headers.clone();
    let (parts, ()) = resp.into_parts();
    let body: ByteStream = Box::pin(futures_util::stream::iter(
        events.iter().cloned().map(Ok).collect::<Vec<_>>(),
    ));
    let mut stream = p.decode_stream(req, parts, body, dep).unwrap();
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        black_box(chunk.unwrap());
        n += 1;
    }
    n
}

fn translation(c: &mut Criterion) {
    let req = chat_request(false);
    let stream_req = chat_request(true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let families: Vec<_> = FAMILIES
        .iter()
        .map(|f| {
            let p = provider::lookup(f.model.split('/').next().unwrap()).unwrap();
            let dep = deployment(f);
            let up = case(f.answer_case)["upstream_response"].clone();
            let stream_up = case(f.stream_case)["upstream_response"].clone();
            let evs = events(&stream_up, f.framing);
            let more = with_repeats(&evs, f.delta_marker, EXTRA_EVENTS);
            let headers = response_headers(&stream_up);
            // Sanity: every family translates these inputs, and each extra event is one more chunk.
            p.encode(&req, &dep).unwrap();
            match p.decode(&req, answer(&up), &dep).unwrap().body {
                ResponseBody::Chat(r) => assert!(
                    r.into_typed().unwrap().choices[0]
                        .message
                        .as_ref()
                        .is_some_and(|m| m.tool_calls.is_some()),
                    "{}: no tool call decoded",
                    f.name
                ),
                _ => panic!("{}: not a chat answer", f.name),
            }
            let n0 = rt.block_on(drain(&*p, &stream_req, &dep, &headers, &evs));
            let n1 = rt.block_on(drain(&*p, &stream_req, &dep, &headers, &more));
            assert_eq!(
                n1 - n0,
                EXTRA_EVENTS,
                "{}: one chunk per extra event",
                f.name
            );
            (f, p, dep, up, evs, more, headers)
        })
        .collect();

    let mut g = c.benchmark_group("encode");
    for (f, p, dep, ..) in &families {
        g.bench_function(f.name, |b| {
            b.iter(|| black_box(p.encode(black_box(&req), dep).unwrap()))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("decode");
    for (f, p, dep, up, ..) in &families {
        g.bench_function(f.name, |b| {
            b.iter_batched(
                || answer(up),
                |resp| black_box(p.decode(&req, resp, dep).unwrap()),
                criterion::BatchSize::SmallInput,
            );
        });
    }
    g.finish();

    for (group, extra) in [("stream", false), ("stream_x64", true)] {
        let mut g = c.benchmark_group(group);
        for (f, p, dep, _, evs, more, headers) in &families {
            let body = if extra { more } else { evs };
            g.bench_function(f.name, |b| {
                b.iter(|| rt.block_on(drain(&**p, &stream_req, dep, headers, body)));
            });
        }
        g.finish();
    }
}

/// The conversation of [`chat_request`] as Anthropic's Messages request, from its bytes.
fn messages_request(stream: bool) -> LlmRequest {
    let tool = |name: &str, description: &str, schema: Value| json!({"name": name, "description": description, "input_schema": schema});
    let mut body = json!({
        "model": "bench",
        "system": "You are a helpful weather assistant. Use the tools when the user asks about weather.",
        "messages": [
            {"role": "user", "content": "What's the weather like in Boston today?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_current_weather", "input": {"location": "Boston, MA"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "{\"temperature\":22,\"unit\":\"celsius\",\"conditions\":\"sunny\"}"},
                {"type": "text", "text": "And the forecast for the next three days?"}
            ]}
        ],
        "tools": [
            tool("get_current_weather", "Get the current weather in a given location", json!({"type": "object", "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
            }, "required": ["location"]})),
            tool("get_forecast", "Get a multi-day weather forecast for a location", json!({"type": "object", "properties": {
                "location": {"type": "string", "description": "The city and state"},
                "days": {"type": "integer", "minimum": 1, "maximum": 10}
            }, "required": ["location", "days"]}))
        ],
        "tool_choice": {"type": "auto"},
        "max_tokens": 512,
        "temperature": 0.2
    });
    if stream {
        body["stream"] = json!(true);
    }
    let bytes = Bytes::from(serde_json::to_vec(&body).unwrap());
    let parsed: MessagesRequest = serde_json::from_slice(&bytes).unwrap();
    LlmRequest::messages_from_bytes(parsed, bytes, false)
}

fn family(name: &str) -> &'static Family {
    FAMILIES.iter().find(|f| f.name == name).unwrap()
}

fn provider_of(f: &Family) -> provider::SharedProvider {
    provider::lookup(f.model.split('/').next().unwrap()).unwrap()
}

/// Drains an answer's event stream; returns the number of events.
async fn drain_events(resp: LlmResponse) -> usize {
    let ResponseBody::Events(mut s) = resp.body else {
        panic!("not an event stream")
    };
    let mut n = 0;
    while let Some(e) = s.next().await {
        black_box(e.unwrap());
        n += 1;
    }
    n
}

fn stream_parts(headers: &http::HeaderMap) -> http::response::Parts {
    let mut resp = http::Response::new(());
    *resp.headers_mut() = headers.clone();
    resp.into_parts().0
}

fn body_of(events: &[Bytes]) -> ByteStream {
    Box::pin(futures_util::stream::iter(
        events.iter().cloned().map(Ok).collect::<Vec<_>>(),
    ))
}

fn messages(c: &mut Criterion) {
    let req = messages_request(false);
    let stream_req = messages_request(true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bridge = bridge::for_kind(OperationKind::Messages).unwrap();
    let mut g = c.benchmark_group("messages");

    let anthropic = family("anthropic");
    let ant = provider_of(anthropic);
    let ant_dep = deployment(anthropic);
    ant.encode(&req, &ant_dep).unwrap();
    g.bench_function("relay_encode", |b| {
        b.iter(|| black_box(ant.encode(black_box(&req), &ant_dep).unwrap()))
    });

    for name in ["openai", "gemini", "bedrock"] {
        let f = family(name);
        let p = provider_of(f);
        let dep = deployment(f);
        p.encode(&bridge.chat_request(&req).unwrap(), &dep).unwrap();
        g.bench_function(format!("bridge_encode/{name}"), |b| {
            b.iter(|| {
                let chat = bridge.chat_request(black_box(&req)).unwrap();
                black_box(p.encode(&chat, &dep).unwrap())
            })
        });
    }

    let ant_up = case(anthropic.stream_case)["upstream_response"].clone();
    let ant_events = events(&ant_up, anthropic.framing);
    let ant_headers = response_headers(&ant_up);
    let relay = |evs: &[Bytes]| {
        let s = ant
            .decode_events(
                &stream_req,
                stream_parts(&ant_headers),
                body_of(evs),
                &ant_dep,
            )
            .unwrap();
        drain_events(LlmResponse::events(s))
    };
    assert_eq!(rt.block_on(relay(&ant_events)), ant_events.len());
    g.bench_function("relay_stream", |b| {
        b.iter(|| rt.block_on(relay(&ant_events)))
    });

    let openai = family("openai");
    let oai = provider_of(openai);
    let oai_dep = deployment(openai);
    let oai_answer = case(openai.answer_case)["upstream_response"].clone();
    let chat_req = bridge.chat_request(&req).unwrap();
    let chat_stream_req = bridge.chat_request(&stream_req).unwrap();
    g.bench_function("bridge_decode/openai", |b| {
        b.iter_batched(
            || answer(&oai_answer),
            |resp| {
                let chat = oai.decode(&chat_req, resp, &oai_dep).unwrap();
                black_box(bridge.chat_answer(&req, chat).unwrap())
            },
            criterion::BatchSize::SmallInput,
        );
    });
    let oai_up = case(openai.stream_case)["upstream_response"].clone();
    let oai_events = events(&oai_up, openai.framing);
    let oai_headers = response_headers(&oai_up);
    let bridged = |evs: &[Bytes]| {
        let s = oai
            .decode_stream(
                &chat_stream_req,
                stream_parts(&oai_headers),
                body_of(evs),
                &oai_dep,
            )
            .unwrap();
        let resp = bridge
            .chat_answer(&stream_req, LlmResponse::stream(s))
            .unwrap();
        drain_events(resp)
    };
    assert!(rt.block_on(bridged(&oai_events)) >= 5);
    g.bench_function("bridge_stream/openai", |b| {
        b.iter(|| rt.block_on(bridged(&oai_events)))
    });
    g.finish();
}

/// The conversation of [`chat_request`] as a Responses API request, as a client's bytes.
fn responses_request(stream: bool) -> LlmRequest {
    let body = json!({
        "model": "bench",
        "instructions": "You are a helpful weather assistant. Use the tools when the user asks about weather.",
        "input": [
            {"role": "user", "content": "What's the weather like in Boston today?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_current_weather", "arguments": "{\"location\":\"Boston, MA\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "{\"temperature\":22,\"unit\":\"celsius\",\"conditions\":\"sunny\"}"},
            {"role": "user", "content": [{"type": "input_text", "text": "And the forecast for the next three days?"}]}
        ],
        "tools": [
            {"type": "function", "name": "get_current_weather", "description": "Get the current weather in a given location",
             "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["location"]}},
            {"type": "function", "name": "get_forecast", "description": "Get a multi-day weather forecast for a location",
             "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "days": {"type": "integer"}}, "required": ["location", "days"]}}
        ],
        "tool_choice": "auto", "max_output_tokens": 512, "temperature": 0.2, "stream": stream,
        "store": false, "include": ["reasoning.encrypted_content"]
    });
    let bytes = Bytes::from(serde_json::to_vec(&body).unwrap());
    LlmRequest::responses_from_bytes(serde_json::from_slice(&bytes).unwrap(), bytes)
}

fn responses(c: &mut Criterion) {
    use llmgate::provider::bridge::{responses::ResponsesBridge, Bridge as _};
    use llmgate::types::{chat::ChatResponse, LlmResponse};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let req = responses_request(false);
    let stream_req = responses_request(true);
    let chat_stream_req = chat_request(true);
    let openai = provider::lookup("openai").unwrap();
    let openai_dep = Deployment::new("bench", "openai/gpt-4.1")
        .with_api_base("https://api.openai.com/v1")
        .with_api_key("sk-bench");
    let anthropic_family = FAMILIES.iter().find(|f| f.name == "anthropic").unwrap();
    let anthropic = provider::lookup("anthropic").unwrap();
    let anthropic_dep = deployment(anthropic_family);
    let stream_up = case(anthropic_family.stream_case)["upstream_response"].clone();
    let anthropic_events = events(&stream_up, anthropic_family.framing);
    let anthropic_headers = response_headers(&stream_up);
    // OpenAI's Responses stream of a short answer (one frame per body chunk).
    let openai_events: Vec<Bytes> = [
        r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","model":"gpt-4.1","output":[],"usage":null}}"#,
        r#"{"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":"msg_1","type":"message","status":"in_progress","role":"assistant","content":[]}}"#,
        r#"{"type":"response.output_text.delta","sequence_number":2,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Sunny, "}"#,
        r#"{"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"22 degrees."}"#,
        r#"{"type":"response.completed","sequence_number":4,"response":{"id":"resp_1","object":"response","model":"gpt-4.1","output":[],"usage":{"input_tokens":80,"output_tokens":6,"total_tokens":86}}}"#,
    ]
    .iter()
    .map(|d| {
        let kind = serde_json::from_str::<Value>(d).unwrap()["type"].as_str().unwrap().to_owned();
        Bytes::from(format!("event: {kind}\ndata: {d}\n\n"))
    })
    .collect();
    let chat_answer: ChatResponse = serde_json::from_value(json!({
        "id": "c", "model": "claude", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me check.",
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "get_forecast", "arguments": "{\"location\":\"Boston, MA\",\"days\":3}"}}]}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}
    }))
    .unwrap();

    let drain_events = |p: &dyn Provider, events: &[Bytes]| {
        let (parts, ()) = http::Response::new(()).into_parts();
        let body: ByteStream = Box::pin(futures_util::stream::iter(
            events.iter().cloned().map(Ok).collect::<Vec<_>>(),
        ));
        let stream = p
            .decode_events(&stream_req, parts, body, &openai_dep)
            .unwrap();
        rt.block_on(stream.map(|e| black_box(e.unwrap())).count())
    };
    let bridged_stream = |events: &[Bytes]| {
        let mut resp = http::Response::new(());
        *resp.headers_mut() = anthropic_headers.clone();
        let (parts, ()) = resp.into_parts();
        let body: ByteStream = Box::pin(futures_util::stream::iter(
            events.iter().cloned().map(Ok).collect::<Vec<_>>(),
        ));
        let chunks = anthropic
            .decode_stream(&chat_stream_req, parts, body, &anthropic_dep)
            .unwrap();
        let answer = ResponsesBridge
            .chat_answer(&stream_req, LlmResponse::stream(chunks))
            .unwrap();
        let ResponseBody::Events(events) = answer.body else {
            panic!("not an event stream")
        };
        rt.block_on(events.map(|e| black_box(e.unwrap())).count())
    };
    // Sanity: every path translates these inputs.
    assert_eq!(drain_events(&*openai, &openai_events), 5);
    assert!(bridged_stream(&anthropic_events) > 5);
    ResponsesBridge.chat_request(&req).unwrap();

    let mut g = c.benchmark_group("responses");
    g.bench_function("relay_encode_openai", |b| {
        b.iter(|| black_box(openai.encode(black_box(&req), &openai_dep).unwrap()))
    });
    g.bench_function("relay_events_openai", |b| {
        b.iter(|| drain_events(&*openai, &openai_events))
    });
    g.bench_function("bridge_request", |b| {
        b.iter(|| black_box(ResponsesBridge.chat_request(black_box(&req)).unwrap()))
    });
    g.bench_function("bridge_answer", |b| {
        b.iter_batched(
            || LlmResponse::chat(chat_answer.clone()),
            |resp| black_box(ResponsesBridge.chat_answer(&req, resp).unwrap()),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("bridge_stream_anthropic", |b| {
        b.iter(|| bridged_stream(&anthropic_events))
    });
    g.finish();
}

criterion_group!(benches, translation, messages, responses);
criterion_main!(benches);
