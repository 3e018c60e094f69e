//! The official OpenAI Python SDK's `responses` API against the gateway (issue 20, item 5):
//! create, stream (the SDK's accumulating `responses.stream` and `create(stream=True)`), function
//! calls and their outputs, retrieve, input items, cancel and delete of the responses OpenAI keeps
//! (each call sent to the deployment that made the response, for its key alone), and, where the
//! gateway keeps the responses (every provider reached through the chat translation), retrieve,
//! input items, delete and `previous_response_id`; for
//! each provider family (OpenAI relayed, Anthropic, Gemini, Bedrock translated), over real
//! sockets with the fake upstream. The script is `.ci/responses_sdk_check.py`.
//!
//! `bash .ci/test` provides the SDK (`LLMGATE_PYTHON`); without it the test fails and says how to
//! run it: it never skips silently.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};
use support::{
    gw::TestGateway,
    process::{python, run_sdk_script},
    FakeUpstream, Reply,
};

fn case_reply(name: &str) -> Reply {
    let path = format!(
        "{}/tests/conformance/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let case: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let up = &case["upstream_response"];
    let body: Vec<u8> = if let Some(s) = up["sse"].as_str() {
        s.as_bytes().to_vec()
    } else if let Some(b) = up["eventstream_base64"].as_str() {
        base64::engine::general_purpose::STANDARD.decode(b).unwrap()
    } else {
        serde_json::to_vec(&up["body"]).unwrap()
    };
    let ct = up["headers"]["content-type"]
        .as_str()
        .unwrap_or("application/json");
    Reply::raw(200, ct, Bytes::from(body))
}

/// OpenAI's answer with a function call (the Responses reference's function calling example).
fn openai_call_answer() -> Reply {
    Reply::json(
        200,
        json!({"id": "resp_fc1", "object": "response", "created_at": 1741294021, "status": "completed",
               "error": null, "incomplete_details": null, "instructions": null, "max_output_tokens": null,
               "model": "gpt-4.1-2025-04-14",
               "output": [{"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
                           "arguments": "{\"location\":\"Paris, France\"}", "status": "completed"}],
               "parallel_tool_calls": true, "previous_response_id": null, "reasoning": {"effort": null, "summary": null},
               "store": true, "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
               "tools": [], "top_p": 1.0, "truncation": "disabled",
               "usage": {"input_tokens": 291, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 23,
                         "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 314},
               "user": null, "metadata": {}}),
    )
}

/// OpenAI's streamed function call (event sequence of the streaming reference).
fn openai_call_stream() -> Reply {
    let r = |status: &str, output: Value, usage: Value| {
        json!({"id": "resp_fc2", "object": "response", "created_at": 1741294021, "status": status,
               "model": "gpt-4.1-2025-04-14", "output": output, "tools": [], "usage": usage,
               "parallel_tool_calls": true, "tool_choice": "auto", "text": {"format": {"type": "text"}}})
    };
    let item = json!({"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "get_weather",
                      "arguments": "{\"location\":\"Rome\"}", "status": "completed"});
    let events = [
        json!({"type": "response.created", "response": r("in_progress", json!([]), Value::Null)}),
        json!({"type": "response.in_progress", "response": r("in_progress", json!([]), Value::Null)}),
        json!({"type": "response.output_item.added", "output_index": 0,
               "item": {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "get_weather", "arguments": "", "status": "in_progress"}}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_2", "output_index": 0, "delta": "{\"location\":"}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_2", "output_index": 0, "delta": "\"Rome\"}"}),
        json!({"type": "response.function_call_arguments.done", "item_id": "fc_2", "output_index": 0, "arguments": "{\"location\":\"Rome\"}"}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
        json!({"type": "response.completed", "response": r("completed", json!([item]),
               json!({"input_tokens": 50, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 9,
                      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 59}))}),
    ];
    let text: String = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut e = e.clone();
            e["sequence_number"] = json!(i);
            format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap())
        })
        .collect();
    Reply::sse(text)
}

#[tokio::test]
async fn official_openai_python_sdk_responses_api_with_every_family() {
    let python = python();
    let up = FakeUpstream::start().await;
    let u = up.url();
    let list = json!([
        {"model_name": "oai", "litellm_params": {"model": "openai/gpt-4.1", "api_base": format!("{u}/v1"), "api_key": "sk-up"}},
        {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-sonnet-4-5-20250929", "api_base": u, "api_key": "test-key"}},
        {"model_name": "gem", "litellm_params": {"model": "gemini/gemini-2.5-flash", "api_base": format!("{u}/v1beta"), "api_key": "test-key"}},
        {"model_name": "bed", "litellm_params": {"model": "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", "api_base": u,
            "aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "aws_region_name": "us-east-1"}},
    ]);
    let gw = TestGateway::start(&format!("model_list: {list}\n")).await;
    let base = gw.url("/v1");

    // Relayed to OpenAI: the provider keeps its responses; the SDK's retrieve, input items,
    // cancel and delete go to the deployment that made the response (see docs/agents.md).
    up.enqueue(openai_call_answer());
    up.enqueue(openai_call_stream());
    up.enqueue(openai_call_stream());
    up.enqueue(openai_call_answer());
    up.enqueue(openai_call_answer());
    up.enqueue(Reply::json(
        200,
        json!({"object": "list", "data": [{"id": "msg_1", "type": "message", "role": "user", "status": "completed",
               "content": [{"type": "input_text", "text": "What's the weather like in Paris?"}]}],
               "first_id": "msg_1", "last_id": "msg_1", "has_more": false}),
    ));
    up.enqueue(Reply::json(
        200,
        json!({"id": "resp_fc1", "object": "response", "created_at": 1741294021, "status": "cancelled",
               "model": "gpt-4.1-2025-04-14", "output": [], "tools": [], "parallel_tool_calls": true,
               "tool_choice": "auto", "usage": null}),
    ));
    up.enqueue(Reply::json(
        200,
        json!({"id": "resp_fc1", "object": "response", "deleted": true}),
    ));
    up.enqueue(Reply::json(
        404,
        json!({"error": {"message": "Previous response with id 'resp_unknown' not found.", "type": "invalid_request_error",
                         "param": "previous_response_id", "code": "previous_response_not_found"}}),
    ));
    let (stdout, stderr) = run_sdk_script(
        &python,
        "responses_sdk_check.py",
        [
            "--base-url",
            &base,
            "--api-key",
            "sk-a",
            "--model",
            "oai",
            "--tool",
            "get_weather",
            "--relayed",
        ],
        String::new,
    )
    .await;
    for check in [
        "ok: create",
        "ok: stream",
        "ok: create_stream",
        "ok: function_call_output",
        "ok: relayed_retrieve_cancel_delete",
        "ok: errors",
    ] {
        assert!(
            stdout.contains(check),
            "oai: missing `{check}`:\n{stdout}\n{stderr}"
        );
    }
    assert_eq!(
        up.hits(),
        9,
        "the other key's and the deleted response's calls stay in the gateway"
    );
    let calls: Vec<(String, String)> = up
        .requests()
        .iter()
        .map(|r| (r.method.to_string(), r.path().to_owned()))
        .collect();
    let want: Vec<(String, String)> = [
        ("POST", "/v1/responses"),
        ("POST", "/v1/responses"),
        ("POST", "/v1/responses"),
        ("POST", "/v1/responses"),
        ("GET", "/v1/responses/resp_fc1"),
        ("GET", "/v1/responses/resp_fc1/input_items"),
        ("POST", "/v1/responses/resp_fc1/cancel"),
        ("DELETE", "/v1/responses/resp_fc1"),
        ("POST", "/v1/responses"),
    ]
    .iter()
    .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
    .collect();
    assert_eq!(calls, want);

    for (group, json_case, stream_case, tool) in [
        (
            "claude",
            "anthropic/tools_auto",
            "anthropic/stream_tool_use",
            "get_weather",
        ),
        (
            "gem",
            "gemini/tools_auto_function_call",
            "gemini/stream_function_call",
            "get_weather",
        ),
        (
            "bed",
            "bedrock/converse_tools",
            "bedrock/stream_text_tool_use",
            "top_song",
        ),
    ] {
        up.reset();
        for name in [json_case, stream_case, stream_case, json_case, json_case] {
            up.enqueue(case_reply(name));
        }
        let (stdout, stderr) = run_sdk_script(
            &python,
            "responses_sdk_check.py",
            [
                "--base-url",
                &base,
                "--api-key",
                "sk-a",
                "--model",
                group,
                "--tool",
                tool,
                "--stored",
            ],
            String::new,
        )
        .await;
        for check in [
            "ok: create",
            "ok: stream",
            "ok: create_stream",
            "ok: function_call_output",
            "ok: retrieve_delete",
            "ok: previous_response_id",
            "ok: errors",
        ] {
            assert!(
                stdout.contains(check),
                "{group}: missing `{check}`:\n{stdout}\n{stderr}"
            );
        }
        assert_eq!(up.hits(), 5, "{group}");
    }
}
