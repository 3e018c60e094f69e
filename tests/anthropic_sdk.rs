//! The official Anthropic Python SDK against the real `llmgate` binary's `/v1/messages` (issue 20,
//! item 5): messages create and stream with tools, for every provider family (anthropic relayed;
//! openai, gemini, bedrock and ollama translated through chat), extended thinking, count_tokens
//! (the provider's count, and the gateway's estimate), and errors raising the SDK's own exception
//! classes (`RateLimitError` from a relayed and a translated 429, `BadRequestError` (LiteLLM's 400) for an unknown
//! model, `AuthenticationError` for a wrong gateway key given as `x-api-key`).
//!
//! Each family's fake upstream replays the tool-calling conformance cases of `tests/conformance/`
//! (the non-streamed answer whole, the streamed one cut at seeded random byte boundaries). The
//! SDK's parse of each answer (blocks, tool names and inputs, stop reason, usage; for streams its
//! own accumulator's final message) is checked against the case's expected chat answer.
//!
//! Uses `LLMGATE_PYTHON` (set by `bash .ci/test`, which installs `anthropic` into its venv);
//! without it the test fails and says how to run it: it never skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};
use support::{
    process::{run_sdk_script, Binary, TempFile},
    random_cuts, FakeUpstream, Reply,
};

const MASTER: &str = "sk-master-anthropic-sdk";

fn case(id: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance")
        .join(format!("{id}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The case's upstream answer as the fake upstream sends it (a stream cut at `seed`'s offsets).
fn reply(c: &Value, seed: Option<u64>) -> Reply {
    let up = &c["upstream_response"];
    let body: Vec<u8> = if let Some(s) = up["sse"].as_str() {
        s.as_bytes().to_vec()
    } else if let Some(b) = up["eventstream_base64"].as_str() {
        base64::engine::general_purpose::STANDARD.decode(b).unwrap()
    } else {
        serde_json::to_vec(&up["body"]).unwrap()
    };
    let ct = up["headers"]["content-type"]
        .as_str()
        .unwrap_or("application/json")
        .to_owned();
    let status = up["status"].as_u64().unwrap_or(200) as u16;
    match seed {
        Some(seed) => {
            let cuts = random_cuts(body.len(), seed, (body.len() / 12).clamp(8, 64));
            Reply::split_at(status, &ct, body, &cuts)
        }
        None => Reply::raw(status, &ct, body),
    }
}

/// The case's deployment with `api_base` on `up` (keeping the path of its own base, else
/// `default_path`).
fn params(c: &Value, up: &str, default_path: &str) -> Value {
    let mut p = c["deployment"].clone();
    let path = p["api_base"].as_str().map_or(default_path.to_owned(), |b| {
        let rest = b.split_once("://").map_or(b, |(_, r)| r);
        rest.find('/')
            .map_or(String::new(), |i| rest[i..].to_owned())
    });
    p["api_base"] = format!("{up}{path}").into();
    // The Bedrock cases are Converse exchanges: name Converse (a plain `bedrock/anthropic.claude-*`
    // deployment relays Messages natively through InvokeModel, see tests/agents_replay.rs).
    if let Some(m) = p["model"].as_str().and_then(|m| m.strip_prefix("bedrock/")) {
        if !m.starts_with("converse/") {
            p["model"] = format!("bedrock/converse/{m}").into();
        }
    }
    p
}

/// The first tool call (name, parsed arguments), the number of tool calls and the output tokens
/// of a case's expected chat answer.
fn expected_call(c: &Value) -> (String, Value, usize, Option<u64>) {
    let resp = &c["client_response"];
    if let Some(chunks) = resp["chunks"].as_array() {
        let mut name = String::new();
        let mut args = String::new();
        let mut calls = std::collections::BTreeSet::new();
        let mut out = None;
        for ch in chunks {
            for tc in ch["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let index = tc["index"].as_u64().unwrap_or(0);
                calls.insert(index);
                if index != 0 {
                    continue;
                }
                if let Some(n) = tc["function"]["name"].as_str() {
                    if name.is_empty() {
                        n.clone_into(&mut name);
                    }
                }
                args.push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
            }
            if let Some(n) = ch["usage"]["completion_tokens"].as_u64() {
                out = Some(n);
            }
        }
        return (name, serde_json::from_str(&args).unwrap(), calls.len(), out);
    }
    let calls = &resp["body"]["choices"][0]["message"]["tool_calls"];
    let call = &calls[0]["function"];
    (
        call["name"].as_str().unwrap().to_owned(),
        serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap(),
        calls.as_array().map_or(0, Vec::len),
        resp["body"]["usage"]["completion_tokens"].as_u64(),
    )
}

struct Family {
    name: &'static str,
    nonstream: &'static str,
    stream: Option<&'static str>,
    default_path: &'static str,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "anthropic",
        nonstream: "anthropic/tools_auto",
        stream: Some("anthropic/stream_tool_use"),
        default_path: "",
    },
    Family {
        name: "openai",
        nonstream: "openai/tools_nonstream",
        stream: Some("openai/tools_stream"),
        default_path: "",
    },
    Family {
        name: "gemini",
        nonstream: "gemini/tools_auto_function_call",
        stream: Some("gemini/stream_function_call"),
        default_path: "/v1beta",
    },
    Family {
        name: "bedrock",
        nonstream: "bedrock/converse_tools",
        stream: Some("bedrock/stream_text_tool_use"),
        default_path: "",
    },
    Family {
        name: "ollama",
        nonstream: "ollama/chat_tools",
        stream: None,
        default_path: "",
    },
];

#[tokio::test]
async fn official_anthropic_python_sdk_through_every_provider_family() {
    let python = match std::env::var("LLMGATE_PYTHON") {
        Ok(p) => p,
        Err(_) => {
            let ok = std::process::Command::new("python3")
                .args(["-c", "import anthropic"])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(ok, "this test needs Python with the `anthropic` package: run `bash .ci/test` (it makes a venv), or set LLMGATE_PYTHON");
            "python3".to_owned()
        }
    };
    let mut ups = Vec::new();
    let mut model_list = Vec::new();
    let mut calls = Vec::new();
    // (label, case) of the tool calls to check.
    let mut checks = Vec::new();
    for (i, f) in FAMILIES.iter().enumerate() {
        let mut groups = vec![(f.name.to_owned(), f.nonstream, None, "create")];
        if let Some(s) = f.stream {
            groups.push((
                format!("{}-stream", f.name),
                s,
                Some(0x5eed + i as u64),
                "stream",
            ));
        }
        for (group, id, seed, kind) in groups {
            let c = case(id);
            let up = FakeUpstream::start().await;
            up.set_default(reply(&c, seed));
            model_list.push(json!({"model_name": group, "litellm_params": params(&c, &up.url(), f.default_path)}));
            let tool = c["client_request"]["body"]["tools"][0]["function"]["name"].clone();
            calls.push(json!({"label": group, "model": group, "kind": kind, "tool": tool}));
            checks.push((group, c));
            ups.push(up);
        }
    }
    // Thinking, relayed: the signature must survive.
    let thinking = case("anthropic/thinking_reasoning_effort");
    let up = FakeUpstream::start().await;
    up.set_default(reply(&thinking, None));
    model_list
        .push(json!({"model_name": "thinker", "litellm_params": params(&thinking, &up.url(), "")}));
    calls.push(json!({"label": "thinking", "model": "thinker", "kind": "thinking"}));
    ups.push(up);
    // count_tokens: the provider's (Anthropic's endpoint), and the gateway's estimate.
    let counter = FakeUpstream::start().await;
    counter.set_default(Reply::json(200, json!({"input_tokens": 1234})));
    model_list.push(json!({"model_name": "counter", "litellm_params": {"model": "anthropic/claude-sonnet-4-5", "api_base": counter.url(), "api_key": "k"}}));
    calls.push(json!({"label": "count-anthropic", "model": "counter", "kind": "count"}));
    calls.push(json!({"label": "count-openai", "model": "openai", "kind": "count"}));
    // Errors.
    let limited = FakeUpstream::start().await;
    limited.set_default(Reply::json(429, json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}})).header("retry-after", "1"));
    model_list.push(json!({"model_name": "limited", "litellm_params": {"model": "anthropic/claude-sonnet-4-5", "api_base": limited.url(), "api_key": "k"}}));
    let limited_oai = FakeUpstream::start().await;
    limited_oai.set_default(Reply::json(429, json!({"error": {"message": "Rate limit reached", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})));
    model_list.push(json!({"model_name": "limited-gpt", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": format!("{}/v1", limited_oai.url()), "api_key": "k"}}));
    calls.push(json!({"label": "rate-limited", "model": "limited", "kind": "RateLimitError"}));
    calls.push(
        json!({"label": "rate-limited-gpt", "model": "limited-gpt", "kind": "RateLimitError"}),
    );
    calls.push(
        json!({"label": "unknown-model", "model": "no-such-model", "kind": "BadRequestError"}),
    );
    calls.push(json!({"label": "bad-key", "model": "anthropic", "kind": "AuthenticationError", "bad_key": true}));

    let config = json!({
        "model_list": model_list,
        "router_settings": {"num_retries": 0},
        "general_settings": {"master_key": MASTER},
    });
    let config = TempFile::new("llmgate-anthropic-sdk", "yaml", &config.to_string());
    let gw = Binary::spawn(&config.0, &[]);
    let calls_file = TempFile::new(
        "llmgate-anthropic-sdk",
        "json",
        &Value::Array(calls).to_string(),
    );
    let base = format!("http://{}", gw.addr);
    let (stdout, stderr) = run_sdk_script(
        &python,
        "anthropic_sdk_check.py",
        [
            "--base-url".as_ref(),
            base.as_ref(),
            "--api-key".as_ref(),
            MASTER.as_ref(),
            "--calls".as_ref(),
            calls_file.0.as_os_str(),
        ],
        || format!("gateway log:\n{}", gw.log()),
    )
    .await;
    let r: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("script output is not JSON ({e}):\n{stdout}\n{stderr}"));

    println!("SDK results: {r}");
    let mut failures = Vec::new();
    for (label, c) in &checks {
        let got = &r[label];
        if got.get("error").is_some() {
            failures.push(format!("{label}: {got}"));
            continue;
        }
        let (name, args, n_calls, out) = expected_call(c);
        let tool_use: Vec<&Value> = got["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "tool_use")
            .collect();
        let ok = got["stop_reason"] == "tool_use"
            && tool_use.len() == n_calls
            && tool_use[0]["name"] == name.as_str()
            && tool_use[0]["input"] == args
            && tool_use[0]["id"].as_str().is_some_and(|s| !s.is_empty())
            && out.is_none_or(|n| got["usage"]["output_tokens"] == n);
        if !ok {
            failures.push(format!(
                "{label}: expected {name}({args}), {out:?} output tokens; the SDK parsed {got}"
            ));
        }
        if let Some(events) = got.get("events") {
            let names: Vec<&str> = events
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            for must in [
                "message_start",
                "content_block_start",
                "input_json",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ] {
                if !names.contains(&must) {
                    failures.push(format!("{label}: the SDK saw no `{must}` event: {names:?}"));
                }
            }
        }
    }
    let t = &r["thinking"];
    let signed = t["content"][0]["type"] == "thinking"
        && t["content"][0]["signature"]
            .as_str()
            .is_some_and(|s| !s.is_empty());
    if !signed {
        failures.push(format!("thinking: no signed thinking block: {t}"));
    }
    if r["count-anthropic"] != json!({"input_tokens": 1234, "source": "provider"}) {
        failures.push(format!("count-anthropic: {}", r["count-anthropic"]));
    }
    if r["count-openai"]["source"] != "estimate"
        || r["count-openai"]["input_tokens"]
            .as_u64()
            .is_none_or(|n| n == 0)
    {
        failures.push(format!("count-openai: {}", r["count-openai"]));
    }
    for (label, class, status) in [
        ("rate-limited", "RateLimitError", 429),
        ("rate-limited-gpt", "RateLimitError", 429),
        // LiteLLM's answer to a model it does not serve, on every route: 400 (`BadRequestError`).
        ("unknown-model", "BadRequestError", 400),
        ("bad-key", "AuthenticationError", 401),
    ] {
        let e = &r[label];
        if e["raised"] != class || e["status"] != status || e["body"]["type"] != "error" {
            failures.push(format!(
                "{label}: expected {class} ({status}) with Anthropic's error body: {e}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}\nall results: {r}\ngateway log:\n{}",
        failures.len(),
        failures.join("\n"),
        gw.log()
    );
}
