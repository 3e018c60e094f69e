//! `POST /v1/responses` to providers that do not speak the Responses API (issue 20, item 2):
//! Anthropic, Gemini and Bedrock answer through the chat translation, with the Responses
//! `response` object and event sequence; `previous_response_id` / `store` through the gateway's
//! response store, owned by the key that created the response; what cannot be translated is a
//! clear 400. Real sockets: the gateway on a loopback port, the fake upstream answering with the
//! conformance corpus' official provider answers (streams cut at random byte boundaries).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};
use support::{
    gw::{send, Answer, TestGateway},
    FakeUpstream, Reply,
};

fn case(name: &str) -> Value {
    let path = format!(
        "{}/tests/conformance/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The case's upstream answer, cut at random places when `seed` is given.
fn reply(name: &str, seed: Option<u64>) -> Reply {
    let up = &case(name)["upstream_response"];
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
    match seed {
        Some(seed) => {
            let cuts = support::random_cuts(body.len(), seed, (body.len() / 12).clamp(8, 64));
            Reply::split_at(200, &ct, Bytes::from(body), &cuts)
        }
        None => Reply::raw(200, &ct, body),
    }
}

/// Groups `claude` (anthropic), `gem` (gemini) and `bed` (bedrock), all at the fake upstream.
fn config(up: &str) -> String {
    let list = json!([
        {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-sonnet-4-5-20250929", "api_base": up, "api_key": "test-key"}},
        {"model_name": "gem", "litellm_params": {"model": "gemini/gemini-2.5-flash", "api_base": format!("{up}/v1beta"), "api_key": "test-key"}},
        {"model_name": "bed", "litellm_params": {"model": "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", "api_base": up,
            "aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "aws_region_name": "us-east-1"}},
    ]);
    // JSON is YAML.
    format!("model_list: {list}\n")
}

fn weather_tool() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "Get the current weather in a given location",
           "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["location"]}})
}

async fn call(
    gw: &TestGateway,
    path: &str,
    method: http::Method,
    key: &str,
    body: Option<&Value>,
) -> Answer {
    let bytes = body
        .map(|b| Bytes::from(serde_json::to_vec(b).unwrap()))
        .unwrap_or_default();
    send(
        http::Request::builder()
            .method(method)
            .uri(gw.url(path))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {key}"))
            .body(Full::new(bytes))
            .unwrap(),
    )
    .await
}

async fn create(gw: &TestGateway, key: &str, body: &Value) -> Answer {
    call(gw, "/v1/responses", http::Method::POST, key, Some(body)).await
}

/// The events of a Responses SSE body: (event name, data).
fn events(body: &[u8]) -> Vec<(String, Value)> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|frame| {
            let mut name = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            let data = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {frame}"));
            (name, data)
        })
        .collect()
}

/// Checks the Responses streaming contract on `evs` and returns the final response object.
fn check_sequence(evs: &[(String, Value)]) -> Value {
    assert!(evs.len() >= 3, "{evs:?}");
    assert_eq!(evs[0].0, "response.created");
    assert_eq!(evs[1].0, "response.in_progress");
    assert_eq!(evs[0].1["response"]["status"], "in_progress");
    let mut added = Vec::new();
    let mut done = Vec::new();
    let mut text_deltas = String::new();
    let mut arg_deltas = std::collections::BTreeMap::<String, String>::new();
    for (i, (name, data)) in evs.iter().enumerate() {
        assert_eq!(&data["type"], name, "event name and type agree");
        assert_eq!(
            data["sequence_number"],
            json!(i),
            "sequence numbers count up: {data}"
        );
        match name.as_str() {
            "response.output_item.added" => added.push(data["output_index"].as_u64().unwrap()),
            "response.output_item.done" => done.push(data["output_index"].as_u64().unwrap()),
            "response.output_text.delta" => text_deltas.push_str(data["delta"].as_str().unwrap()),
            "response.output_text.done" => {
                assert_eq!(data["text"], json!(text_deltas));
                text_deltas.clear();
            }
            "response.function_call_arguments.delta" => arg_deltas
                .entry(data["item_id"].as_str().unwrap().to_owned())
                .or_default()
                .push_str(data["delta"].as_str().unwrap()),
            "response.function_call_arguments.done" => {
                let id = data["item_id"].as_str().unwrap();
                assert_eq!(
                    data["arguments"].as_str().unwrap(),
                    arg_deltas.get(id).map_or("", String::as_str)
                );
            }
            _ => {}
        }
    }
    added.sort_unstable();
    done.sort_unstable();
    assert_eq!(added, done, "every item added is done");
    let (last, data) = evs.last().unwrap();
    assert!(
        last == "response.completed" || last == "response.incomplete",
        "{last}"
    );
    let r = data["response"].clone();
    assert_eq!(r["output"].as_array().unwrap().len(), added.len());
    r
}

fn function_call(response: &Value) -> Value {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap_or_else(|| panic!("no function_call in {response}"))
        .clone()
}

#[tokio::test]
async fn complete_answers_of_every_family_are_response_objects() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start(&config(&up.url())).await;
    for (group, case_name, path_end, tool) in [
        (
            "claude",
            "anthropic/tools_auto",
            "/v1/messages",
            "get_weather",
        ),
        (
            "gem",
            "gemini/tools_auto_function_call",
            ":generateContent",
            "get_weather",
        ),
        ("bed", "bedrock/converse_tools", "/converse", "top_song"),
    ] {
        up.enqueue(reply(case_name, None));
        let a = create(
            &gw,
            "sk-a",
            &json!({"model": group, "instructions": "Be brief.",
                    "input": [{"role": "user", "content": [{"type": "input_text", "text": "What's the weather like in San Francisco?"}]}],
                    "tools": [weather_tool()], "max_output_tokens": 1024}),
        )
        .await;
        assert_eq!(
            a.status,
            200,
            "{group}: {}",
            String::from_utf8_lossy(&a.body)
        );
        let r = a.json();
        assert_eq!(r["object"], "response", "{group}");
        assert!(r["id"].as_str().unwrap().starts_with("resp_"), "{group}");
        assert_eq!(r["status"], "completed", "{group}: {r}");
        let call = function_call(&r);
        assert_eq!(call["name"], tool, "{group}");
        assert!(
            call["call_id"].as_str().is_some_and(|c| !c.is_empty()),
            "{group}"
        );
        let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert!(
            args.as_object().is_some_and(|a| !a.is_empty()),
            "{group}: {args}"
        );
        assert!(
            r["usage"]["input_tokens"].as_u64().unwrap() > 0,
            "{group}: {r}"
        );
        assert!(
            r["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{group}: {r}"
        );
        let sent = up.last_request().unwrap();
        assert!(sent.path().ends_with(path_end), "{group}: {}", sent.path());
        let text = sent.body_str();
        assert!(
            text.contains("get_weather") && text.contains("Be brief."),
            "{group}: {text}"
        );
    }
}

#[tokio::test]
async fn streams_of_every_family_follow_the_responses_event_sequence() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start(&config(&up.url())).await;
    for seed in [1_u64, 7, 42] {
        for (group, case_name, tool) in [
            ("claude", "anthropic/stream_tool_use", "get_weather"),
            ("gem", "gemini/stream_function_call", "get_weather"),
            ("bed", "bedrock/stream_text_tool_use", "top_song"),
        ] {
            up.enqueue(reply(case_name, Some(seed)));
            let a = create(
                &gw,
                "sk-a",
                &json!({"model": group, "input": "What's the weather like?", "tools": [weather_tool()], "stream": true}),
            )
            .await;
            assert_eq!(a.status, 200, "{group}");
            assert_eq!(a.headers["content-type"], "text/event-stream");
            let evs = events(&a.body);
            let r = check_sequence(&evs);
            assert_eq!(r["status"], "completed", "{group}: {r}");
            let call = function_call(&r);
            assert_eq!(call["name"], tool, "{group}");
            serde_json::from_str::<Value>(call["arguments"].as_str().unwrap())
                .unwrap_or_else(|e| panic!("{group} seed {seed}: {e}: {call}"));
            assert!(
                evs.iter()
                    .any(|(n, _)| n == "response.function_call_arguments.delta"),
                "{group}"
            );
            // The chat request asked for usage, and the answer states it.
            let sent = up.last_request().unwrap().json();
            if group == "claude" {
                assert_eq!(sent["stream"], true);
                assert!(r["usage"]["input_tokens"].as_u64().unwrap() > 0, "{r}");
            }
        }
    }
}

#[tokio::test]
async fn the_store_keeps_a_conversation_for_the_key_that_made_it() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start(&config(&up.url())).await;
    up.enqueue(reply("anthropic/text_basic", None));
    let first = create(
        &gw,
        "sk-a",
        &json!({"model": "claude", "input": "Say hello."}),
    )
    .await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let first = first.json();
    assert_eq!(first["store"], true);
    let id = first["id"].as_str().unwrap().to_owned();

    // The follow-up sends the whole conversation upstream.
    up.enqueue(reply("anthropic/text_basic", None));
    let second = create(
        &gw,
        "sk-a",
        &json!({"model": "claude", "input": "Again, in French.", "previous_response_id": id}),
    )
    .await;
    assert_eq!(
        second.status,
        200,
        "{}",
        String::from_utf8_lossy(&second.body)
    );
    assert_eq!(second.json()["previous_response_id"], json!(id));
    let sent = up.last_request().unwrap().json();
    let msgs = sent["messages"].to_string();
    let (a, b, c) = (
        msgs.find("Say hello.").unwrap(),
        msgs.find("Hello!").unwrap(),
        msgs.find("Again, in French.").unwrap(),
    );
    assert!(a < b && b < c, "{msgs}");

    // Another key finds nothing, neither to read nor to continue nor to delete.
    let path = format!("/v1/responses/{id}");
    let other = call(&gw, &path, http::Method::GET, "sk-b", None).await;
    assert_eq!(other.status, 404);
    other.error();
    let other = create(
        &gw,
        "sk-b",
        &json!({"model": "claude", "input": "x", "previous_response_id": id}),
    )
    .await;
    assert_eq!(other.status, 404);
    assert_eq!(other.error()["code"], "previous_response_not_found");
    assert_eq!(
        call(&gw, &path, http::Method::DELETE, "sk-b", None)
            .await
            .status,
        404
    );

    // The owner reads it, its input items, and deletes it.
    let got = call(&gw, &path, http::Method::GET, "sk-a", None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), first);
    let items = call(
        &gw,
        &format!("{path}/input_items"),
        http::Method::GET,
        "sk-a",
        None,
    )
    .await;
    assert_eq!(items.status, 200);
    let items = items.json();
    assert_eq!(items["object"], "list");
    assert_eq!(items["data"][0]["content"], "Say hello.");
    assert_eq!(items["first_id"], items["data"][0]["id"]);
    let cancel = call(
        &gw,
        &format!("{path}/cancel"),
        http::Method::POST,
        "sk-a",
        None,
    )
    .await;
    assert_eq!(cancel.status, 400);
    cancel.error();
    let del = call(&gw, &path, http::Method::DELETE, "sk-a", None).await;
    assert_eq!(del.status, 200);
    assert_eq!(
        del.json(),
        json!({"id": id, "object": "response", "deleted": true})
    );
    assert_eq!(
        call(&gw, &path, http::Method::GET, "sk-a", None)
            .await
            .status,
        404
    );
    // Without `/v1` too.
    assert_eq!(
        call(
            &gw,
            &format!("/responses/{id}"),
            http::Method::GET,
            "sk-a",
            None
        )
        .await
        .status,
        404
    );

    // `store: false` keeps nothing, and says so.
    up.enqueue(reply("anthropic/text_basic", None));
    let unstored = create(
        &gw,
        "sk-a",
        &json!({"model": "claude", "input": "x", "store": false}),
    )
    .await;
    let unstored = unstored.json();
    assert_eq!(unstored["store"], false);
    let path = format!("/v1/responses/{}", unstored["id"].as_str().unwrap());
    assert_eq!(
        call(&gw, &path, http::Method::GET, "sk-a", None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_streamed_response_is_stored_when_it_completes() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start(&config(&up.url())).await;
    up.enqueue(reply("anthropic/stream_tool_use", Some(3)));
    let a = create(
        &gw,
        "sk-a",
        &json!({"model": "claude", "input": "Weather?", "tools": [weather_tool()], "stream": true}),
    )
    .await;
    let r = check_sequence(&events(&a.body));
    let id = r["id"].as_str().unwrap();
    let got = call(
        &gw,
        &format!("/v1/responses/{id}"),
        http::Method::GET,
        "sk-a",
        None,
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), r);

    // The tool's result continues the conversation: call and result go upstream as tool_use and
    // tool_result.
    up.enqueue(reply("anthropic/text_basic", None));
    let call_id = function_call(&r)["call_id"].clone();
    let a = create(
        &gw,
        "sk-a",
        &json!({"model": "claude", "previous_response_id": id,
                "input": [{"type": "function_call_output", "call_id": call_id, "output": "{\"temp\":18}"}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let sent = up.last_request().unwrap().body_str().to_owned();
    assert!(
        sent.contains("tool_use") && sent.contains("tool_result"),
        "{sent}"
    );
}

/// Codex CLI's request shape (`store: false`, `include: ["reasoning.encrypted_content"]`,
/// reasoning items from an earlier turn, function calls and their outputs, no
/// `previous_response_id`) works against a bridged provider.
#[tokio::test]
async fn codex_cli_requests_work_through_the_chat_translation() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start(&config(&up.url())).await;
    up.enqueue(reply("anthropic/stream_tool_use", Some(5)));
    let body = json!({
        "model": "claude",
        "instructions": "You are Codex, running as a coding agent in the Codex CLI.",
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list the files"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAABo-opaque"},
            {"type": "function_call", "name": "shell", "arguments": "{\"command\":[\"ls\"]}", "call_id": "call_1"},
            {"type": "function_call_output", "call_id": "call_1", "output": "README.md\n"}
        ],
        "tools": [{"type": "function", "name": "shell", "description": "Runs a shell command.", "strict": false,
                   "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}, "required": ["command"]}}],
        "tool_choice": "auto", "parallel_tool_calls": false,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false, "stream": true, "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199a1b2-c3d4"
    });
    let a = create(&gw, "sk-a", &body).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let r = check_sequence(&events(&a.body));
    assert_eq!(r["store"], false);
    let sent = up.last_request().unwrap().json();
    let text = sent.to_string();
    assert!(
        text.contains("tool_use") && text.contains("tool_result"),
        "{text}"
    );
    assert!(
        !text.contains("gAAAAABo"),
        "another provider's reasoning is not sent: {text}"
    );
    assert!(text.contains("Codex CLI"), "{text}");
}

#[tokio::test]
async fn what_cannot_be_translated_is_a_clear_400_and_nothing_is_sent() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start(&config(&up.url())).await;
    for (body, needle) in [
        (
            json!({"model": "claude", "input": "x", "tools": [{"type": "web_search"}]}),
            "web_search",
        ),
        (
            json!({"model": "claude", "input": [{"type": "item_reference", "id": "msg_1"}]}),
            "item_reference",
        ),
        (json!({"model": "claude", "input": 42}), "input"),
        (
            json!({"model": "gem", "input": "x", "text": {"format": {"type": "grammar"}}}),
            "grammar",
        ),
    ] {
        let a = create(&gw, "sk-a", &body).await;
        assert_eq!(a.status, 400, "{body}");
        let e = a.error();
        assert!(e["message"].as_str().unwrap().contains(needle), "{e}");
    }
    assert_eq!(up.hits(), 0);
}

/// The `mock/` provider (no network) answers Responses requests through the translation too,
/// complete and streamed.
#[tokio::test]
async fn the_mock_provider_answers_through_the_translation() {
    let gw = TestGateway::start(llmgate::gateway::DEFAULT_CONFIG).await;
    let a = create(&gw, "sk-a", &json!({"model": "mock", "input": "hi"})).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let r = a.json();
    assert_eq!(r["status"], "completed");
    assert_eq!(r["output"][0]["type"], "message");
    assert!(
        r["output"][0]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{r}"
    );
    let a = create(
        &gw,
        "sk-a",
        &json!({"model": "mock", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(a.status, 200);
    let r = check_sequence(&events(&a.body));
    assert_eq!(r["status"], "completed");
}
