//! The official OpenAI Python SDK calls tools through the real `llmgate` binary, once non-streamed
//! and once streamed, for every provider wire family: openai, azure, anthropic, gemini, vertex_ai,
//! bedrock (Converse; the AWS event-stream framing), ollama_chat (NDJSON) and an OpenAI-compatible
//! host (deepseek).
//!
//! Each family has its own fake upstream (a real hyper server on loopback) that replays the
//! family's tool-calling conformance cases (`tests/conformance/`): the non-streamed answer in one
//! piece, the streamed one cut at seeded random byte boundaries and written piece by piece. One
//! `llmgate` process serves a config with one model group per call (the deployment of the case
//! whose upstream URL the call must hit, `api_base` on the fake upstream);
//! `.ci/providers_sdk_check.py` makes the calls with the SDK and prints what it parsed. The test checks the SDK's tool calls
//! (id, name, arguments), finish reason, content and usage against the cases' expected OpenAI
//! answers, the stream's deltas (index/id/name first, arguments reassembled) and the SDK's own
//! stream accumulator, and what each upstream received (path, credential, tool definitions; for
//! Bedrock the SigV4 signature of the request as it arrived).
//!
//! Where the corpus has no tool case for a family, the family replays the answers of the wire
//! format it shares, behind its own URL and credentials: azure and deepseek the openai tool cases
//! (OpenAI format), vertex_ai the gemini ones; ollama's streamed tool call is built from
//! `ollama/chat_tools` as Ollama streams it (the call in a `done: false` line, then the `done`
//! line with the counts; <https://ollama.com/blog/streaming-tool>).
//!
//! Uses `LLMGATE_PYTHON` (set by `bash .ci/test`), else a `python3` that can `import openai`;
//! otherwise the test fails and says how to run it: it never skips silently.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};
use support::{
    aws::parse_amz_date,
    process::{python, run_sdk_script, Binary, TempFile},
    FakeUpstream, Recorded, Reply,
};

// ------------------------------------------------------------------------------------------------
// The families and their cases
// ------------------------------------------------------------------------------------------------

/// Where a streamed exchange's answer comes from.
#[derive(Clone, Copy)]
enum StreamSource {
    /// A streamed conformance case.
    Case(&'static str),
    /// `ollama/chat_tools` streamed as NDJSON (see the module docs).
    OllamaFromChatTools,
}

struct Family {
    /// The family's name: the prefix of its labels and model groups.
    name: &'static str,
    /// Conformance case whose answer the non-streamed call gets.
    nonstream: &'static str,
    /// Where the streamed call's answer comes from.
    stream: StreamSource,
    /// Cases whose `deployment`, upstream URL and headers apply (non-stream, stream).
    route: (&'static str, &'static str),
    /// `api_base` path when the deployment sets none (the provider's default base has one).
    default_base_path: &'static str,
    /// Upstream body keys that carry the tool definitions.
    tool_keys: &'static [&'static str],
    /// OpenAI-format upstream: answers are relayed, so arguments strings compare byte for byte.
    openai_format: bool,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "sdk-openai",
        nonstream: "openai/tools_nonstream",
        stream: StreamSource::Case("openai/tools_stream"),
        route: ("openai/tools_nonstream", "openai/tools_stream"),
        default_base_path: "",
        tool_keys: &["tools", "tool_choice", "parallel_tool_calls"],
        openai_format: true,
    },
    Family {
        name: "sdk-azure",
        nonstream: "openai/tools_nonstream",
        stream: StreamSource::Case("openai/tools_stream"),
        route: ("azure/chat_basic", "azure/stream"),
        default_base_path: "",
        tool_keys: &["tools", "tool_choice", "parallel_tool_calls"],
        openai_format: true,
    },
    Family {
        name: "sdk-anthropic",
        nonstream: "anthropic/tools_auto",
        stream: StreamSource::Case("anthropic/stream_tool_use"),
        route: ("anthropic/tools_auto", "anthropic/stream_tool_use"),
        default_base_path: "",
        tool_keys: &["tools", "tool_choice", "stream"],
        openai_format: false,
    },
    Family {
        name: "sdk-gemini",
        nonstream: "gemini/tools_auto_function_call",
        stream: StreamSource::Case("gemini/stream_function_call"),
        route: (
            "gemini/tools_auto_function_call",
            "gemini/stream_function_call",
        ),
        default_base_path: "/v1beta",
        tool_keys: &["tools", "toolConfig"],
        openai_format: false,
    },
    Family {
        name: "sdk-vertex",
        nonstream: "gemini/tools_auto_function_call",
        stream: StreamSource::Case("gemini/stream_function_call"),
        route: ("vertex_ai/text_regional", "vertex_ai/stream_regional"),
        default_base_path: "",
        tool_keys: &["tools", "toolConfig"],
        openai_format: false,
    },
    Family {
        name: "sdk-bedrock",
        nonstream: "bedrock/converse_tools",
        stream: StreamSource::Case("bedrock/stream_text_tool_use"),
        route: ("bedrock/converse_tools", "bedrock/stream_text_tool_use"),
        default_base_path: "",
        tool_keys: &["toolConfig"],
        openai_format: false,
    },
    Family {
        name: "sdk-ollama",
        nonstream: "ollama/chat_tools",
        stream: StreamSource::OllamaFromChatTools,
        route: ("ollama/chat_tools", "ollama/chat_tools"),
        default_base_path: "",
        tool_keys: &["tools", "stream"],
        openai_format: false,
    },
    Family {
        name: "sdk-deepseek",
        nonstream: "openai/tools_nonstream",
        stream: StreamSource::Case("openai/tools_stream"),
        route: (
            "openai_compatible/deepseek_reasoning",
            "openai_compatible/deepseek_reasoning_stream",
        ),
        default_base_path: "",
        tool_keys: &["tools", "tool_choice", "parallel_tool_calls"],
        openai_format: true,
    },
];

fn corpus_dir() -> PathBuf {
    std::env::var_os("LLMGATE_CONFORMANCE_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance"),
        PathBuf::from,
    )
}

fn case(id: &str) -> Value {
    let path = corpus_dir().join(format!("{id}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ignore_paths(case: &Value) -> Vec<String> {
    case["compare"]["ignore"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `https://host/a/b?q` → `/a/b?q` (`""` for a bare origin).
fn path_and_query(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("", |i| &rest[i..])
}

/// One tool call as the client must see it.
#[derive(Debug)]
struct ExpectedCall {
    /// `None` where the case leaves the id open (the gateway makes one up).
    id: Option<String>,
    name: String,
    arguments: String,
}

/// One SDK call and what it must produce.
struct Exchange {
    /// `sdk-openai:stream`: the key of the SDK script's result.
    label: String,
    /// The family's name (`sdk-openai`).
    family: &'static str,
    /// The model group of this exchange: its own deployment (`sdk-openai-stream`).
    group: String,
    /// The deployment's `litellm_params` (from the route case, `api_base` on the fake upstream).
    params: Value,
    stream: bool,
    /// OpenAI request body (no `model`, no `stream`).
    client_body: Value,
    reply: Reply,
    /// Upstream path and query the gateway must call.
    path: String,
    /// Upstream headers that must be present with these values.
    headers: Vec<(String, String)>,
    /// The case's expected upstream body (ignored paths removed) and the paths to remove from the
    /// actual one.
    upstream_body: Value,
    upstream_ignore: Vec<String>,
    tool_keys: &'static [&'static str],
    calls: Vec<ExpectedCall>,
    content: Option<String>,
    usage: Option<Value>,
    /// Paths (below `usage`) left out of the usage comparison.
    usage_ignore: Vec<String>,
    /// Complete arguments strings compare byte for byte (else as parsed JSON).
    exact_arguments: bool,
    openai_format: bool,
    notes: String,
}

fn expected_calls_from_message(message: &Value, id_open: bool) -> Vec<ExpectedCall> {
    message["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| ExpectedCall {
                    id: (!id_open).then(|| c["id"].as_str().unwrap().to_owned()),
                    name: c["function"]["name"].as_str().unwrap().to_owned(),
                    arguments: c["function"]["arguments"].as_str().unwrap().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Tool calls, text and usage reassembled from a list of chunks (expected or as the SDK parsed
/// them), by tool-call index.
fn reassemble(chunks: &[Value]) -> (Vec<(u64, ExpectedCall)>, String, Option<Value>) {
    let mut calls: Vec<(u64, ExpectedCall)> = Vec::new();
    let mut content = String::new();
    let mut usage = None;
    for chunk in chunks {
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            usage = Some(u.clone());
        }
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            let delta = &choice["delta"];
            if let Some(text) = delta["content"].as_str() {
                content.push_str(text);
            }
            for tc in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = tc["index"].as_u64().expect("tool call delta without index");
                let pos = calls.iter().position(|(i, _)| *i == index);
                let pos = pos.unwrap_or_else(|| {
                    calls.push((
                        index,
                        ExpectedCall {
                            id: None,
                            name: String::new(),
                            arguments: String::new(),
                        },
                    ));
                    calls.len() - 1
                });
                let call = &mut calls[pos].1;
                if let Some(id) = tc["id"].as_str() {
                    call.id.get_or_insert_with(|| id.to_owned());
                }
                if let Some(name) = tc["function"]["name"].as_str() {
                    call.name.push_str(name);
                }
                if let Some(args) = tc["function"]["arguments"].as_str() {
                    call.arguments.push_str(args);
                }
            }
        }
    }
    (calls, content, usage)
}

/// The reply for a case's upstream response: whole, or cut at seeded random byte boundaries.
fn reply_for(up: &Value, body: Vec<u8>, split_seed: Option<u64>) -> Reply {
    let status = up["status"].as_u64().unwrap_or(200) as u16;
    let headers = up["headers"].as_object().cloned().unwrap_or_default();
    let content_type = headers
        .get("content-type")
        .and_then(Value::as_str)
        .unwrap_or("application/json")
        .to_owned();
    let mut reply = match split_seed {
        Some(seed) => {
            let n = (body.len() / 12).clamp(8, 64);
            let cuts = support::random_cuts(body.len(), seed, n);
            Reply::split_at(status, &content_type, body, &cuts)
        }
        None => Reply::raw(status, &content_type, body),
    };
    for (k, v) in &headers {
        if k != "content-type" {
            reply = reply.header(k, v.as_str().unwrap_or_default());
        }
    }
    reply
}

fn upstream_bytes(up: &Value) -> Vec<u8> {
    if let Some(s) = up["sse"].as_str() {
        return s.as_bytes().to_vec();
    }
    if let Some(b64) = up["eventstream_base64"].as_str() {
        return base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("valid base64");
    }
    serde_json::to_vec(&up["body"]).unwrap()
}

fn strip(v: &mut Value, paths: &[String]) {
    for p in paths {
        remove_path(v, p);
    }
}

/// Removes a dotted path with `[i]` indexes (`tools[0].type`) from a JSON value.
fn remove_path(v: &mut Value, path: &str) {
    let mut cur = v;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let (name, idx) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (*part, None),
        };
        match (last, idx) {
            (true, None) => {
                if let Value::Object(m) = cur {
                    m.remove(name);
                }
                return;
            }
            (_, idx) => {
                let Some(next) = cur.get_mut(name) else {
                    return;
                };
                cur = match idx {
                    Some(i) => match next.get_mut(i) {
                        Some(n) => n,
                        None => return,
                    },
                    None => next,
                };
                if last {
                    *cur = Value::Null;
                    return;
                }
            }
        }
    }
}

fn exchanges(family: &Family, up_url: &str, seed: u64) -> Vec<Exchange> {
    let mut out = Vec::new();
    for stream in [false, true] {
        let route = case(if stream {
            family.route.1
        } else {
            family.route.0
        });
        let (answer, reply) = match (stream, family.stream) {
            (false, _) => {
                let c = case(family.nonstream);
                let up = &c["upstream_response"];
                let reply = reply_for(up, upstream_bytes(up), None);
                (c, reply)
            }
            (true, StreamSource::Case(id)) => {
                let c = case(id);
                let up = &c["upstream_response"];
                let reply = reply_for(up, upstream_bytes(up), Some(seed));
                (c, reply)
            }
            (true, StreamSource::OllamaFromChatTools) => {
                let c = case("ollama/chat_tools");
                let mut answer = c["upstream_response"]["body"].clone();
                let message = answer["message"].clone();
                let call_line = json!({
                    "model": answer["model"],
                    "created_at": answer["created_at"],
                    "message": message,
                    "done": false,
                });
                answer["message"] = json!({"role": "assistant", "content": ""});
                let ndjson = format!("{call_line}\n{answer}\n");
                let up =
                    json!({"status": 200, "headers": {"content-type": "application/x-ndjson"}});
                let reply = reply_for(&up, ndjson.into_bytes(), Some(seed));
                (c, reply)
            }
        };
        let ignore = ignore_paths(&answer);
        let id_open = ignore
            .iter()
            .any(|p| p.contains("tool_calls") && p.ends_with(".id"));
        let upstream_ignore: Vec<String> = ignore
            .iter()
            .filter_map(|p| p.strip_prefix("upstream_request.body.").map(str::to_owned))
            .collect();
        let usage_ignore: Vec<String> = ignore
            .iter()
            .filter_map(|p| p.strip_prefix("usage.").map(str::to_owned))
            .collect();
        let expected = &answer["client_response"];
        let (calls, content, usage, exact_arguments) =
            if let Some(chunks) = expected["chunks"].as_array() {
                let (calls, content, usage) = reassemble(chunks);
                let calls = calls
                    .into_iter()
                    .map(|(_, mut c)| {
                        if id_open {
                            c.id = None;
                        }
                        c
                    })
                    .collect();
                // Streamed fragments are relayed exactly, whatever the family.
                (calls, Some(content), usage, true)
            } else {
                let body = &expected["body"];
                let message = &body["choices"][0]["message"];
                let calls = expected_calls_from_message(message, id_open);
                let content = message["content"].as_str().map(str::to_owned);
                let usage = body.get("usage").cloned();
                (calls, content, usage, family.openai_format)
            };
        let mut client_body = answer["client_request"]["body"].clone();
        let mut upstream_body = answer["upstream_request"]["body"].clone();
        if matches!(family.stream, StreamSource::OllamaFromChatTools) && stream {
            client_body["stream_options"] = json!({"include_usage": true});
            upstream_body["stream"] = json!(true);
        }
        let obj = client_body.as_object_mut().unwrap();
        obj.remove("model");
        obj.remove("stream");
        strip(&mut upstream_body, &upstream_ignore);
        let headers = route["upstream_request"]["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let mode = if stream { "stream" } else { "nonstream" };
        out.push(Exchange {
            label: format!("{}:{mode}", family.name),
            family: family.name,
            group: format!("{}-{mode}", family.name),
            params: litellm_params(&route, family.default_base_path, up_url),
            stream,
            client_body,
            reply,
            path: path_and_query(route["upstream_request"]["url"].as_str().unwrap()).to_owned(),
            headers,
            upstream_body,
            upstream_ignore,
            tool_keys: family.tool_keys,
            calls,
            content,
            usage,
            usage_ignore,
            exact_arguments,
            openai_format: family.openai_format,
            notes: answer["compare"]["notes"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        });
    }
    out
}

/// A route case's deployment as `litellm_params`: `api_base` on the fake upstream `up_url` (keeping
/// the path of the case's own base, else `default_base_path`), the case's injected bearer token
/// (Vertex) as `api_key`.
fn litellm_params(route: &Value, default_base_path: &str, up_url: &str) -> Value {
    let mut params = route["deployment"].clone();
    let base_path = params["api_base"]
        .as_str()
        .map_or(default_base_path, path_and_query)
        .to_owned();
    params["api_base"] = format!("{up_url}{base_path}").into();
    if let Some(token) = route["auth"]["bearer_token"].as_str() {
        params["api_key"] = token.into();
    }
    params
}

// ------------------------------------------------------------------------------------------------
// Checks
// ------------------------------------------------------------------------------------------------

/// `expected` ⊆ `actual`; keys only on the actual side must be `null` or named in `notes`
/// (never, with `strict`).
fn diff(
    expected: &Value,
    actual: &Value,
    path: &str,
    strict: bool,
    notes: &str,
    out: &mut Vec<String>,
) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => diff(ev, av, &format!("{path}.{k}"), strict, notes, out),
                    None => out.push(format!("{path}.{k}: missing (expected {ev})")),
                }
            }
            for (k, av) in a {
                if !e.contains_key(k) && (strict || !(av.is_null() || notes.contains(k.as_str()))) {
                    out.push(format!("{path}.{k}: unexpected {av}"));
                }
            }
        }
        (e, a) if e != a => out.push(format!("{path}: {a} != expected {e}")),
        _ => {}
    }
}

fn same_arguments(expected: &str, actual: &str, exact: bool) -> bool {
    if exact {
        return expected == actual;
    }
    match (
        serde_json::from_str::<Value>(expected),
        serde_json::from_str::<Value>(actual),
    ) {
        (Ok(e), Ok(a)) => e == a,
        _ => false,
    }
}

/// Compares tool calls `got` (`(id, name, arguments)`) with the expected ones.
fn check_calls(
    what: &str,
    x: &Exchange,
    got: &[(Option<String>, String, String)],
    problems: &mut Vec<String>,
) {
    if got.len() != x.calls.len() {
        problems.push(format!(
            "{what}: {} tool calls, expected {}: {got:?}",
            got.len(),
            x.calls.len()
        ));
    }
    for (i, (want, (id, name, args))) in x.calls.iter().zip(got).enumerate() {
        match (&want.id, id) {
            (_, None) => problems.push(format!("{what}[{i}]: no id")),
            (_, Some(id)) if id.is_empty() => problems.push(format!("{what}[{i}]: empty id")),
            (Some(w), Some(id)) if w != id => {
                problems.push(format!("{what}[{i}]: id {id:?} != expected {w:?}"));
            }
            _ => {}
        }
        if *name != want.name {
            problems.push(format!(
                "{what}[{i}]: name {name:?} != expected {:?}",
                want.name
            ));
        }
        if !same_arguments(&want.arguments, args, x.exact_arguments) {
            problems.push(format!(
                "{what}[{i}]: arguments {args:?} != expected {:?}{}",
                want.arguments,
                if x.exact_arguments {
                    " (byte for byte)"
                } else {
                    " (as JSON)"
                }
            ));
        }
    }
}

fn message_calls(message: &Value) -> Vec<(Option<String>, String, String)> {
    message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["id"].as_str().map(str::to_owned),
                c["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                c["function"]["arguments"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn check_usage(what: &str, x: &Exchange, got: Option<&Value>, problems: &mut Vec<String>) {
    let Some(want) = &x.usage else {
        return;
    };
    let Some(got) = got.filter(|u| !u.is_null()) else {
        problems.push(format!("{what}: no usage, expected {want}"));
        return;
    };
    let (mut want, mut got) = (want.clone(), got.clone());
    strip(&mut want, &x.usage_ignore);
    strip(&mut got, &x.usage_ignore);
    diff(&want, &got, what, x.openai_format, &x.notes, problems);
}

fn check_nonstream(x: &Exchange, r: &Value, problems: &mut Vec<String>) {
    let message = &r["message"];
    let classes = r["class"].as_array().map_or(0, Vec::len);
    if classes != x.calls.len() {
        problems.push(format!("SDK parsed {classes} tool-call objects: {r}"));
    }
    check_calls("message.tool_calls", x, &message_calls(message), problems);
    for tc in message["tool_calls"].as_array().into_iter().flatten() {
        if tc["type"] != "function" {
            problems.push(format!("tool call type {} != \"function\"", tc["type"]));
        }
    }
    if r["finish_reason"] != "tool_calls" {
        problems.push(format!(
            "finish_reason {} != \"tool_calls\"",
            r["finish_reason"]
        ));
    }
    if message["content"].as_str() != x.content.as_deref() {
        problems.push(format!(
            "content {} != expected {:?}",
            message["content"], x.content
        ));
    }
    check_usage("usage", x, r.get("usage"), problems);
}

fn check_stream(x: &Exchange, r: &Value, problems: &mut Vec<String>) {
    let Some(chunks) = r["chunks"].as_array() else {
        problems.push(format!("no chunks: {r}"));
        return;
    };
    // The first delta of each tool call carries its index, id, type and name; later ones only
    // argument fragments (an id or name repeated must not change).
    let mut seen: Vec<(u64, String, String)> = Vec::new();
    let mut last_finish = Value::Null;
    for chunk in chunks {
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            if !choice["finish_reason"].is_null() {
                last_finish = choice["finish_reason"].clone();
            }
            for tc in choice["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let Some(index) = tc["index"].as_u64() else {
                    problems.push(format!("tool call delta without index: {tc}"));
                    continue;
                };
                let id = tc["id"].as_str();
                let name = tc["function"]["name"].as_str();
                match seen.iter().find(|(i, _, _)| *i == index) {
                    None => {
                        match (id, name) {
                            (Some(id), Some(name)) if !id.is_empty() && !name.is_empty() => {
                                seen.push((index, id.to_owned(), name.to_owned()));
                            }
                            _ => problems.push(format!(
                                "first delta of tool call {index} lacks its id or name: {tc}"
                            )),
                        }
                        if tc["type"] != "function" {
                            problems.push(format!(
                                "first delta of tool call {index}: type {}",
                                tc["type"]
                            ));
                        }
                    }
                    Some((_, first_id, first_name)) => {
                        if id.is_some_and(|id| id != first_id)
                            || name.is_some_and(|n| !n.is_empty() && n != first_name)
                        {
                            problems.push(format!("tool call {index} changed id or name: {tc}"));
                        }
                    }
                }
            }
        }
    }
    if last_finish != "tool_calls" {
        problems.push(format!(
            "last finish_reason {last_finish} != \"tool_calls\""
        ));
    }
    let (calls, content, usage) = reassemble(chunks);
    let got: Vec<_> = calls
        .into_iter()
        .map(|(_, c)| (c.id, c.name, c.arguments))
        .collect();
    check_calls("reassembled deltas", x, &got, problems);
    if Some(&content) != x.content.as_ref() {
        problems.push(format!(
            "streamed content {content:?} != expected {:?}",
            x.content
        ));
    }
    check_usage("stream usage", x, usage.as_ref(), problems);
    // The SDK's own accumulator (what `client.chat.completions.stream()` users get).
    let final_choice = &r["final"]["choices"][0];
    check_calls(
        "SDK accumulated message.tool_calls",
        x,
        &message_calls(&final_choice["message"]),
        problems,
    );
    if final_choice["finish_reason"] != "tool_calls" {
        problems.push(format!(
            "SDK accumulated finish_reason {} != \"tool_calls\"",
            final_choice["finish_reason"]
        ));
    }
}

fn check_upstream(x: &Exchange, rec: &Recorded, problems: &mut Vec<String>) {
    let got_path = rec
        .uri
        .path_and_query()
        .map_or_else(|| rec.path().to_owned(), |p| p.as_str().to_owned());
    if rec.method != http::Method::POST || got_path != x.path {
        problems.push(format!(
            "upstream request {} {got_path}, expected POST {}",
            rec.method, x.path
        ));
    }
    for (name, value) in &x.headers {
        // Bedrock's clock-dependent SigV4 headers are checked by re-signing (`check_sigv4`).
        if x.family == "sdk-bedrock" && matches!(name.as_str(), "authorization" | "x-amz-date") {
            continue;
        }
        if rec.header(name) != Some(value.as_str()) {
            problems.push(format!(
                "upstream header {name}: {:?}, expected {value:?}",
                rec.header(name)
            ));
        }
    }
    let mut body: Value = match serde_json::from_slice(&rec.body) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!(
                "upstream body is not JSON ({e}): {}",
                rec.body_str()
            ));
            return;
        }
    };
    strip(&mut body, &x.upstream_ignore);
    for key in x.tool_keys {
        let want = &x.upstream_body[*key];
        let got = &body[*key];
        if want.is_null() && got.is_null() {
            continue;
        }
        let mut p = Vec::new();
        diff(
            want,
            got,
            &format!("upstream body.{key}"),
            x.openai_format,
            "",
            &mut p,
        );
        problems.extend(p);
    }
    if x.family == "sdk-bedrock" {
        check_sigv4(rec, problems);
    }
}

/// The Bedrock request as it arrived carries the SigV4 signature of its own method, URL, signed
/// headers and body bytes (re-signed here at its `x-amz-date` with the deployment's key).
fn check_sigv4(rec: &Recorded, problems: &mut Vec<String>) {
    use llmgate::provider::bedrock::{sign, AwsCredentials};
    let (Some(auth), Some(date)) = (rec.header("authorization"), rec.header("x-amz-date")) else {
        problems.push("bedrock request not signed (authorization / x-amz-date)".to_owned());
        return;
    };
    let Some(signed) = auth
        .split(", ")
        .find_map(|p| p.strip_prefix("SignedHeaders="))
    else {
        problems.push(format!("no SignedHeaders in {auth:?}"));
        return;
    };
    let Some(time) = parse_amz_date(date) else {
        problems.push(format!("x-amz-date {date:?} is not YYYYMMDDTHHMMSSZ"));
        return;
    };
    let deployment = case("bedrock/converse_tools")["deployment"].clone();
    let creds = AwsCredentials::new(
        deployment["aws_access_key_id"].as_str().unwrap(),
        deployment["aws_secret_access_key"].as_str().unwrap(),
        None,
    );
    let host = rec.header("host").unwrap_or_default();
    let url = format!(
        "http://{host}{}",
        rec.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut req = http::Request::builder().method(rec.method.clone()).uri(url);
    for name in signed.split(';') {
        if !matches!(name, "host" | "x-amz-date" | "x-amz-security-token") {
            req = req.header(name, rec.header(name).unwrap_or_default());
        }
    }
    let mut req = req.body(Bytes::clone(&rec.body)).unwrap();
    let region = deployment["aws_region_name"].as_str().unwrap();
    if let Err(e) = sign(&mut req, &creds, region, time) {
        problems.push(format!("re-signing failed: {e}"));
        return;
    }
    let want = req.headers()["authorization"].to_str().unwrap();
    if want != auth {
        problems.push(format!(
            "bedrock authorization {auth:?} is not the signature of the request received ({want:?})"
        ));
    }
}

// ------------------------------------------------------------------------------------------------
// The test
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_calls_tools_through_every_provider_family() {
    let python = python();
    let mut upstreams = Vec::new();
    let mut model_list = Vec::new();
    let mut all = Vec::new();
    for (i, family) in FAMILIES.iter().enumerate() {
        let up = FakeUpstream::start().await;
        let xs = exchanges(family, &up.url(), 0x5eed_0000 + i as u64);
        for x in &xs {
            up.enqueue(x.reply.clone());
            model_list.push(json!({"model_name": x.group, "litellm_params": x.params}));
        }
        // Anything past the two queued answers is a test failure, loudly.
        up.set_default(Reply::json(
            500,
            json!({"error": {"message": "fake upstream: unexpected extra request"}}),
        ));
        upstreams.push(up);
        all.push(xs);
    }
    let config = json!({"model_list": model_list, "router_settings": {"num_retries": 0}});
    let config = TempFile::new("llmgate-providers-sdk", "yaml", &config.to_string());
    let gw = Binary::spawn(&config.0, &[]);

    let calls: Vec<Value> = all
        .iter()
        .flatten()
        .map(|x| {
            json!({"label": x.label, "model": x.group, "stream": x.stream, "body": x.client_body})
        })
        .collect();
    let calls = TempFile::new(
        "llmgate-providers-sdk",
        "json",
        &Value::Array(calls).to_string(),
    );
    let base = format!("http://{}/v1", gw.addr);
    let (stdout, stderr) = run_sdk_script(
        &python,
        "providers_sdk_check.py",
        [
            "--base-url".as_ref(),
            base.as_ref(),
            "--api-key".as_ref(),
            "sk-client".as_ref(),
            "--calls".as_ref(),
            calls.0.as_os_str(),
        ],
        || format!("gateway log:\n{}", gw.log()),
    )
    .await;
    let results: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("script output is not JSON ({e}):\n{stdout}\n{stderr}"));

    let mut failures = Vec::new();
    for (xs, up) in all.iter().zip(&upstreams) {
        let recorded = up.requests();
        for (i, x) in xs.iter().enumerate() {
            let mut problems = Vec::new();
            let r = &results[&x.label];
            if let Some(e) = r.get("error") {
                problems.push(format!("the SDK call raised {e}"));
            } else if x.stream {
                check_stream(x, r, &mut problems);
            } else {
                check_nonstream(x, r, &mut problems);
            }
            match recorded.get(i) {
                Some(rec) => check_upstream(x, rec, &mut problems),
                None => problems.push("the upstream saw no request".to_owned()),
            }
            if !problems.is_empty() {
                failures.push(format!("{}:\n    {}", x.label, problems.join("\n    ")));
            }
        }
        if recorded.len() > xs.len() {
            failures.push(format!(
                "{}: {} upstream requests, expected {}",
                xs[0].family,
                recorded.len(),
                xs.len()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} SDK calls failed:\n{}\nSDK results: {results}",
        failures.len(),
        all.iter().flatten().count(),
        failures.join("\n")
    );
}

/// The checks themselves catch what they are for (a tool call with other arguments, a stream
/// whose first delta lacks the name, a missing usage), so a pass above means something.
#[test]
fn checks_catch_wrong_answers() {
    let family = &FAMILIES[0];
    let xs = exchanges(family, "http://127.0.0.1:9", 1);
    let (nonstream, stream) = (&xs[0], &xs[1]);

    let good = json!({
        "class": ["ChatCompletionMessageFunctionToolCall"],
        "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "call_abc123XyZ0987654321qwer", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\"location\":\"Boston, MA\"}"}}]},
        "finish_reason": "tool_calls",
        "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99, "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    });
    let mut p = Vec::new();
    check_nonstream(nonstream, &good, &mut p);
    assert!(p.is_empty(), "{p:?}");

    let mut spaced = good.clone();
    spaced["message"]["tool_calls"][0]["function"]["arguments"] =
        "{\"location\": \"Boston, MA\"}".into();
    let mut p = Vec::new();
    check_nonstream(nonstream, &spaced, &mut p);
    assert!(p.iter().any(|m| m.contains("byte for byte")), "{p:?}");

    let mut no_usage = good.clone();
    no_usage["usage"] = Value::Null;
    no_usage["finish_reason"] = "stop".into();
    let mut p = Vec::new();
    check_nonstream(nonstream, &no_usage, &mut p);
    assert_eq!(p.len(), 2, "{p:?}");

    // The expected chunks themselves pass as a stream; without the name in the first delta, or
    // with a fragment lost, they do not.
    let chunks = case("openai/tools_stream")["client_response"]["chunks"].clone();
    let final_ = json!({"choices": [{"finish_reason": "tool_calls", "message": {"tool_calls": [
        {"id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Boston, MA\"}"}},
        {"id": "call_Vt5bQ3nR8sK2wL6yH1jF4mP0", "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Tokyo, JP\"}"}}
    ]}}]});
    let r = json!({"chunks": chunks, "final": final_});
    let mut p = Vec::new();
    check_stream(stream, &r, &mut p);
    assert!(p.is_empty(), "{p:?}");

    let mut nameless = r.clone();
    nameless["chunks"][0]["choices"][0]["delta"]["tool_calls"][0]["function"]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let mut p = Vec::new();
    check_stream(stream, &nameless, &mut p);
    assert!(
        p.iter().any(|m| m.contains("lacks its id or name")),
        "{p:?}"
    );

    let mut lost = r;
    lost["chunks"].as_array_mut().unwrap().remove(2);
    let mut p = Vec::new();
    check_stream(stream, &lost, &mut p);
    assert!(p.iter().any(|m| m.contains("reassembled deltas")), "{p:?}");
}
