//! `cohere/` over real sockets against a fake Cohere (issue 21, item 3): chat on Cohere's v2
//! chat API (plain, a tool-call round trip, a stream), embeddings on `/v2/embed`, and errors in
//! OpenAI's shape, called with plain HTTP and with the official OpenAI Python SDK.
//!
//! The SDK test needs `LLMGATE_PYTHON` (set by `bash .ci/test`) or a `python3` that can
//! `import openai`; it fails, never skips, without one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::{
    gw::{post_json, TestGateway},
    process::python,
    FakeUpstream, Reply,
};

fn config(upstream: &str) -> String {
    format!(
        "model_list:\n  - model_name: command\n    litellm_params:\n      model: cohere/command-r-plus-08-2024\n      api_base: {upstream}\n      api_key: co-key\n  - model_name: embed\n    litellm_params:\n      model: cohere/embed-english-v3.0\n      api_base: {upstream}\n      api_key: co-key\nrouter_settings:\n  num_retries: 0\n"
    )
}

fn text_answer(text: &str) -> Value {
    json!({"id": "r-text", "finish_reason": "COMPLETE",
           "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
           "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 3},
                     "tokens": {"input_tokens": 60, "output_tokens": 3}}})
}

fn tool_answer() -> Value {
    json!({"id": "r-tool", "finish_reason": "TOOL_CALL",
           "message": {"role": "assistant", "tool_plan": "I will look it up.",
                       "tool_calls": [{"id": "get_weather_0", "type": "function",
                                       "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
           "usage": {"tokens": {"input_tokens": 80, "output_tokens": 10}}})
}

fn stream_answer() -> String {
    let events = [
        json!({"type": "message-start", "id": "r-stream", "delta": {"message": {"role": "assistant"}}}),
        json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
        json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Sunny "}}}}),
        json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "in Paris."}}}}),
        json!({"type": "content-end", "index": 0}),
        json!({"type": "message-end", "delta": {"finish_reason": "COMPLETE",
               "usage": {"tokens": {"input_tokens": 90, "output_tokens": 4}}}}),
    ];
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn chat_and_embeddings_on_cohere_v2_with_their_wire_shapes() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start(&config(&up.url())).await;

    up.enqueue(Reply::json(200, text_answer("Hello!")));
    let a = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "command", "messages": [{"role": "user", "content": "hi"}],
                "top_p": 0.5, "stop": "END", "user": "u1"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello!");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 60);
    assert_eq!(v["model"], "command-r-plus-08-2024");
    let got = up.last_request().unwrap();
    assert_eq!(got.path(), "/v2/chat");
    assert_eq!(got.header("authorization"), Some("Bearer co-key"));
    assert_eq!(
        got.json(),
        json!({"model": "command-r-plus-08-2024", "messages": [{"role": "user", "content": "hi"}],
               "p": 0.5, "stop_sequences": ["END"]})
    );

    up.enqueue(Reply::json(
        200,
        json!({"id": "e", "embeddings": {"float": [[0.5, 0.25]]}, "texts": ["a"],
               "meta": {"billed_units": {"input_tokens": 1}}}),
    ));
    let a = post_json(
        &gw.url("/v1/embeddings"),
        &json!({"model": "embed", "input": "a"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["data"][0]["embedding"], json!([0.5, 0.25]));
    assert_eq!(v["usage"]["prompt_tokens"], 1);
    let got = up.last_request().unwrap();
    assert_eq!(got.path(), "/v2/embed");
    assert_eq!(
        got.json(),
        json!({"model": "embed-english-v3.0", "texts": ["a"], "input_type": "search_document",
               "embedding_types": ["float"]})
    );

    // Cohere's errors: the status and its message, in OpenAI's shape.
    up.enqueue(Reply::json(429, json!({"message": "trial key rate limit"})));
    let a = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "command", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(a.status, 429);
    assert!(a.error()["message"]
        .as_str()
        .unwrap()
        .contains("trial key rate limit"));
    // A stream cut before message-end is an error the client sees, not a clean end.
    up.enqueue(Reply::sse(
        "event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"x\"}}}}\n\n",
    ));
    let a = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "command", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let text = String::from_utf8_lossy(&a.body);
    assert!(text.contains("\"error\""), "{text}");
}

/// The official OpenAI Python SDK on a `cohere/` deployment: a tool call, the tool result sent
/// back in the history, the final answer streamed, and embeddings.
#[tokio::test]
async fn the_openai_sdk_round_trips_a_tool_call_and_streams_through_cohere() {
    let python = python();
    let up = FakeUpstream::start().await;
    up.enqueue(Reply::json(200, tool_answer()));
    up.enqueue(Reply::sse(stream_answer()));
    up.enqueue(Reply::json(
        200,
        json!({"id": "e", "embeddings": {"float": [[0.1, 0.2], [0.3, 0.4]]},
               "meta": {"billed_units": {"input_tokens": 2}}}),
    ));
    let gw = TestGateway::start(&config(&up.url())).await;
    let script = r#"
import json, sys, openai
c = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)
tools = [{"type": "function", "function": {"name": "get_weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
msgs = [{"role": "user", "content": "Weather in Paris?"}]
r = c.chat.completions.create(model="command", messages=msgs, tools=tools)
call = r.choices[0].message.tool_calls[0]
msgs.append(r.choices[0].message.model_dump(exclude_none=True))
msgs.append({"role": "tool", "tool_call_id": call.id, "content": "sunny"})
s = c.chat.completions.create(model="command", messages=msgs, tools=tools, stream=True,
                              stream_options={"include_usage": True})
text, usage, finish = "", None, None
for ch in s:
    if ch.choices:
        text += ch.choices[0].delta.content or ""
        finish = ch.choices[0].finish_reason or finish
    if ch.usage:
        usage = ch.usage.prompt_tokens
e = c.embeddings.create(model="embed", input=["a", "b"])
print(json.dumps({"finish": r.choices[0].finish_reason, "call": [call.id, call.function.name, call.function.arguments],
                  "text": text, "stream_finish": finish, "usage": usage,
                  "embeddings": [d.embedding for d in e.data]}))
"#;
    let out = tokio::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(gw.url("/v1"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        v,
        json!({"finish": "tool_calls", "call": ["get_weather_0", "get_weather", "{\"city\":\"Paris\"}"],
               "text": "Sunny in Paris.", "stream_finish": "stop", "usage": 90,
               "embeddings": [[0.1, 0.2], [0.3, 0.4]]})
    );
    // The second call carried the tool call and its result in Cohere's v2 history shape.
    let reqs = up.requests();
    assert_eq!(reqs.len(), 3);
    let second = reqs[1].json();
    assert_eq!(second["stream"], true);
    assert!(second.get("stream_options").is_none(), "{second}");
    let msgs = second["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["tool_calls"][0]["id"], "get_weather_0");
    assert_eq!(
        msgs[2],
        json!({"role": "tool", "tool_call_id": "get_weather_0", "content": "sunny"})
    );
    assert_eq!(reqs[2].path(), "/v2/embed");
}
