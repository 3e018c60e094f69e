//! `POST /v1/responses` to OpenAI and Azure deployments (issue 20, item 2): the client's body is
//! relayed byte for byte except `model`, and the provider's answer and events come back as the
//! provider sent them, over real sockets with the fake upstream. Includes the request shape Codex
//! CLI sends (streaming, function tools, `store: false`, `include:
//! ["reasoning.encrypted_content"]`, no `previous_response_id`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use support::{
    gw::{open_stream, post, send, TestGateway},
    FakeUpstream, Reply,
};

const ANSWER: &str = r#"{"id":"resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b","object":"response","created_at":1741476542,"status":"completed","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"gpt-4.1-2025-04-14","output":[{"type":"message","id":"msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b","status":"completed","role":"assistant","content":[{"type":"output_text","text":"In a peaceful grove beneath a silver moon...","annotations":[]}]}],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":true,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":123},"user":null,"metadata":{}}"#;

/// OpenAI's documented stream of a short answer (event names, members and order from the
/// Responses streaming reference).
fn stream_text() -> String {
    let events = [
        (
            "response.created",
            r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","created_at":1741290958,"status":"in_progress","model":"gpt-4.1-2025-04-14","output":[],"usage":null}}"#,
        ),
        (
            "response.in_progress",
            r#"{"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_1","object":"response","created_at":1741290958,"status":"in_progress","model":"gpt-4.1-2025-04-14","output":[],"usage":null}}"#,
        ),
        (
            "response.output_item.added",
            r#"{"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"msg_1","type":"message","status":"in_progress","role":"assistant","content":[]}}"#,
        ),
        (
            "response.content_part.added",
            r#"{"type":"response.content_part.added","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}}"#,
        ),
        (
            "response.output_text.delta",
            r#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi there!"}"#,
        ),
        (
            "response.output_text.done",
            r#"{"type":"response.output_text.done","sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,"text":"Hi there!"}"#,
        ),
        (
            "response.content_part.done",
            r#"{"type":"response.content_part.done","sequence_number":6,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":"Hi there!","annotations":[]}}"#,
        ),
        (
            "response.output_item.done",
            r#"{"type":"response.output_item.done","sequence_number":7,"output_index":0,"item":{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hi there!","annotations":[]}]}}"#,
        ),
        (
            "response.completed",
            r#"{"type":"response.completed","sequence_number":8,"response":{"id":"resp_1","object":"response","created_at":1741290958,"status":"completed","model":"gpt-4.1-2025-04-14","output":[{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hi there!","annotations":[]}]}],"usage":{"input_tokens":37,"input_tokens_details":{"cached_tokens":0},"output_tokens":11,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":48}}}"#,
        ),
    ];
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

fn config(upstream: &str) -> String {
    format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4.1\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\n  - model_name: az\n    litellm_params:\n      model: azure/my-deployment\n      api_base: {upstream}\n      api_key: az-key\n      api_version: 2025-04-01-preview\n"
    )
}

/// The request body Codex CLI sends (its `ResponsesApiRequest`: instructions, input items,
/// function tools, `tool_choice: auto`, `parallel_tool_calls`, reasoning with a summary,
/// `store: false`, `stream: true`, `include: ["reasoning.encrypted_content"]`,
/// `prompt_cache_key`), written the way a client writes JSON (spacing and key order its own).
const CODEX: &str = r#"{"model":"g","instructions":"You are Codex, based on GPT-5. You are running as a coding agent in the Codex CLI on a user's computer.","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"<environment_context>\n  <cwd>/work/app</cwd>\n</environment_context>"}]},{"type":"message","role":"user","content":[{"type":"input_text","text":"list the files"}]},{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"gAAAAABo...opaque"},{"type":"function_call","name":"shell","arguments":"{\"command\":[\"ls\"]}","call_id":"call_1"},{"type":"function_call_output","call_id":"call_1","output":"{\"output\":\"README.md\\n\",\"metadata\":{\"exit_code\":0}}"}],"tools":[{"type":"function","name":"shell","description":"Runs a shell command and returns its output.","strict":false,"parameters":{"type":"object","properties":{"command":{"type":"array","items":{"type":"string"}},"workdir":{"type":"string"}},"required":["command"],"additionalProperties":false}}],"tool_choice":"auto","parallel_tool_calls":false,"reasoning":{"effort":"medium","summary":"auto"},"store":false,"stream":true,"include":["reasoning.encrypted_content"],"prompt_cache_key":"0199a1b2-c3d4"}"#;

#[tokio::test]
async fn a_complete_answer_is_relayed_byte_for_byte_with_only_the_model_replaced() {
    let upstream = FakeUpstream::start().await;
    upstream.enqueue(Reply::raw(200, "application/json", ANSWER));
    let gw = TestGateway::start(&config(&upstream.url())).await;
    let body = r#"{"model": "g",  "input": "Tell me a three sentence bedtime story about a unicorn.", "max_output_tokens": 200, "truncation": "auto", "fallbacks": ["other"]}"#;
    let a = post(&gw.url("/v1/responses"), body).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.body, ANSWER.as_bytes(), "the provider's bytes, unchanged");
    assert_eq!(a.headers["content-type"], "application/json");
    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.path(), "/v1/responses");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-upstream-key"));
    // The client's bytes: spacing, key order, unknown keys; only `model` changed and the gateway
    // control `fallbacks` cut.
    assert_eq!(
        sent.body_str(),
        r#"{"model": "gpt-4.1",  "input": "Tell me a three sentence bedtime story about a unicorn.", "max_output_tokens": 200, "truncation": "auto"}"#
    );
}

#[tokio::test]
async fn a_stream_is_relayed_event_for_event() {
    let upstream = FakeUpstream::start().await;
    let sse = stream_text();
    upstream.enqueue(Reply::sse(sse.clone()));
    let gw = TestGateway::start(&config(&upstream.url())).await;
    let resp = open_stream(
        &gw.url("/v1/responses"),
        &json!({"model": "g", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8_lossy(&body), sse);
}

#[tokio::test]
async fn codex_cli_requests_are_relayed_untouched_to_openai_and_azure() {
    let upstream = FakeUpstream::start().await;
    let sse = stream_text();
    upstream.enqueue(Reply::sse(sse.clone()));
    upstream.enqueue(Reply::sse(sse.clone()));
    let gw = TestGateway::start(&config(&upstream.url())).await;

    let a = post(&gw.url("/v1/responses"), CODEX).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(String::from_utf8_lossy(&a.body), sse);
    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.path(), "/v1/responses");
    assert_eq!(
        sent.body_str(),
        CODEX.replacen(r#""model":"g""#, r#""model":"gpt-4.1""#, 1)
    );

    // Codex's Azure provider: the same body at `/openai/responses` with the `api-key` header.
    let azure = CODEX.replacen(r#""model":"g""#, r#""model":"az""#, 1);
    let a = post(&gw.url("/responses"), azure.clone()).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.path(), "/openai/responses");
    assert_eq!(sent.uri.query(), Some("api-version=2025-04-01-preview"));
    assert_eq!(sent.header("api-key"), Some("az-key"));
    assert_eq!(
        sent.body_str(),
        azure.replacen(r#""model":"az""#, r#""model":"my-deployment""#, 1)
    );
}

#[tokio::test]
async fn provider_errors_and_bad_requests_are_openai_error_json() {
    let upstream = FakeUpstream::start().await;
    upstream.enqueue(Reply::json(
        400,
        json!({"error": {"message": "Unsupported parameter: 'foo'.", "type": "invalid_request_error", "param": "foo", "code": "unsupported_parameter"}}),
    ));
    let gw = TestGateway::start(&config(&upstream.url())).await;
    let a = post(
        &gw.url("/v1/responses"),
        r#"{"model":"g","input":"x","foo":1}"#,
    )
    .await;
    assert_eq!(a.status, 400);
    let e = a.error();
    assert_eq!(e["param"], "foo");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("Unsupported parameter"));

    let a = post(&gw.url("/v1/responses"), "{not json").await;
    assert_eq!(a.status, 400);
    a.error();
    let a = post(&gw.url("/v1/responses"), r#"{"input":"no model"}"#).await;
    assert_eq!(a.status, 400);
    a.error();
    let a = send(
        http::Request::put(gw.url("/v1/responses"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 405);
    assert_eq!(a.headers["allow"], "POST");
    a.error();
}

/// A stream cut before `response.completed` ends with Responses' `error` event, not silently.
#[tokio::test]
async fn a_cut_stream_ends_with_an_error_event() {
    let upstream = FakeUpstream::start().await;
    let sse = stream_text();
    let cut = &sse[..sse.find("event: response.completed").unwrap()];
    upstream.enqueue(Reply::sse(cut.to_owned()));
    let gw = TestGateway::start(&config(&upstream.url())).await;
    let resp = open_stream(
        &gw.url("/v1/responses"),
        &json!({"model": "g", "input": "hi", "stream": true}),
    )
    .await;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with(cut), "{text}");
    let last = text[cut.len()..].to_owned();
    assert!(last.starts_with("event: error\ndata: "), "{last}");
    let data: Value = serde_json::from_str(last["event: error\ndata: ".len()..].trim()).unwrap();
    assert_eq!(data["type"], "error");
    assert!(
        data["message"].as_str().unwrap().contains("ended before"),
        "{data}"
    );
}

// ---- Calls on a relayed response: `GET` / `DELETE /v1/responses/{id}`, `input_items`, `cancel`
// go to the deployment that made it, for the key that made it alone.

const ID: &str = "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b";

fn with_key(
    method: http::Method,
    url: &str,
    key: &str,
    body: &str,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_owned(),
        )))
        .unwrap()
}

async fn create(gw: &TestGateway, key: &str, model: &str) -> support::gw::Answer {
    let body = format!(r#"{{"model":"{model}","input":"hi"}}"#);
    send(with_key(
        http::Method::POST,
        &gw.url("/v1/responses"),
        key,
        &body,
    ))
    .await
}

#[tokio::test]
async fn retrieve_delete_input_items_and_cancel_reach_the_deployment_that_made_the_response() {
    let upstream = FakeUpstream::start().await;
    upstream.enqueue(Reply::raw(200, "application/json", ANSWER));
    let gw = TestGateway::start(&config(&upstream.url())).await;
    let a = create(&gw, "sk-alice", "g").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));

    // Retrieve: the provider's bytes, from `GET {base}/responses/{id}` with the deployment's key.
    upstream.enqueue(Reply::raw(200, "application/json", ANSWER));
    let url = gw.url(&format!(
        "/v1/responses/{ID}?include[]=reasoning.encrypted_content"
    ));
    let a = send(with_key(http::Method::GET, &url, "sk-alice", "")).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.body, ANSWER.as_bytes());
    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.method, http::Method::GET);
    assert_eq!(sent.path(), format!("/v1/responses/{ID}"));
    assert_eq!(
        sent.uri.query(),
        Some("include[]=reasoning.encrypted_content")
    );
    assert_eq!(sent.header("authorization"), Some("Bearer sk-upstream-key"));
    assert_eq!(sent.body_str(), "");

    // Input items, with the client's paging.
    let items = json!({"object": "list", "data": [{"id": "msg_1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}], "first_id": "msg_1", "last_id": "msg_1", "has_more": false});
    upstream.enqueue(Reply::json(200, items.clone()));
    let url = gw.url(&format!("/v1/responses/{ID}/input_items?limit=2&order=asc"));
    let a = send(with_key(http::Method::GET, &url, "sk-alice", "")).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json(), items);
    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.path(), format!("/v1/responses/{ID}/input_items"));
    assert_eq!(sent.uri.query(), Some("limit=2&order=asc"));

    // Cancel: `POST …/cancel`; the provider's refusal is relayed as an OpenAI error with its status.
    upstream.enqueue(Reply::json(
        400,
        json!({"error": {"message": "Only responses created with background=true can be cancelled.", "type": "invalid_request_error", "param": null, "code": null}}),
    ));
    let url = gw.url(&format!("/v1/responses/{ID}/cancel"));
    let a = send(with_key(http::Method::POST, &url, "sk-alice", "")).await;
    assert_eq!(a.status, 400);
    assert!(a.error()["message"]
        .as_str()
        .unwrap()
        .contains("background"));
    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.method, http::Method::POST);
    assert_eq!(sent.path(), format!("/v1/responses/{ID}/cancel"));

    // Another key: 404 as for an unknown id, and the provider is not asked.
    let hits = upstream.hits();
    for (method, path) in [
        (http::Method::GET, format!("/v1/responses/{ID}")),
        (http::Method::DELETE, format!("/v1/responses/{ID}")),
        (http::Method::GET, format!("/v1/responses/{ID}/input_items")),
        (http::Method::POST, format!("/v1/responses/{ID}/cancel")),
    ] {
        let a = send(with_key(method, &gw.url(&path), "sk-bob", "")).await;
        assert_eq!(a.status, 404, "{path}");
        assert!(a.error()["message"].as_str().unwrap().contains(ID));
    }
    assert_eq!(
        upstream.hits(),
        hits,
        "another key's calls never reach the provider"
    );
    // Nor can another key continue the conversation.
    let body = format!(r#"{{"model":"g","input":"more","previous_response_id":"{ID}"}}"#);
    let a = send(with_key(
        http::Method::POST,
        &gw.url("/v1/responses"),
        "sk-bob",
        &body,
    ))
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.error()["code"], "previous_response_not_found");
    assert_eq!(upstream.hits(), hits);

    // Delete: relayed, then forgotten (the next call is the gateway's 404).
    let deleted = json!({"id": ID, "object": "response", "deleted": true});
    upstream.enqueue(Reply::json(200, deleted.clone()));
    let url = gw.url(&format!("/v1/responses/{ID}"));
    let a = send(with_key(http::Method::DELETE, &url, "sk-alice", "")).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json(), deleted);
    assert_eq!(
        upstream.last_request().unwrap().method,
        http::Method::DELETE
    );
    let hits = upstream.hits();
    let a = send(with_key(http::Method::GET, &url, "sk-alice", "")).await;
    assert_eq!(a.status, 404);
    assert_eq!(upstream.hits(), hits);
}

#[tokio::test]
async fn a_streamed_response_and_an_azure_response_are_reachable_too() {
    let upstream = FakeUpstream::start().await;
    upstream.enqueue(Reply::sse(stream_text()));
    let gw = TestGateway::start(&config(&upstream.url())).await;
    let body = r#"{"model":"az","input":"hi","stream":true}"#;
    let a = send(with_key(
        http::Method::POST,
        &gw.url("/v1/responses"),
        "sk-alice",
        body,
    ))
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(String::from_utf8_lossy(&a.body), stream_text());

    // `resp_1` (named by `response.created`) lives on the Azure deployment.
    upstream.enqueue(Reply::json(
        200,
        json!({"id": "resp_1", "object": "response", "status": "completed"}),
    ));
    let a = send(with_key(
        http::Method::GET,
        &gw.url("/v1/responses/resp_1"),
        "sk-alice",
        "",
    ))
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["id"], "resp_1");
    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.method, http::Method::GET);
    assert_eq!(sent.path(), "/openai/responses/resp_1");
    assert_eq!(sent.uri.query(), Some("api-version=2025-04-01-preview"));
    assert_eq!(sent.header("api-key"), Some("az-key"));

    // The provider's own 404 (it forgot the response) is relayed as a 404.
    upstream.enqueue(Reply::json(
        404,
        json!({"error": {"message": "Response with id 'resp_1' not found.", "type": "invalid_request_error", "param": null, "code": null}}),
    ));
    let a = send(with_key(
        http::Method::GET,
        &gw.url("/v1/responses/resp_1"),
        "sk-alice",
        "",
    ))
    .await;
    assert_eq!(a.status, 404);
    a.error();

    // A stored response is not streamed back.
    let a = send(with_key(
        http::Method::GET,
        &gw.url("/v1/responses/resp_1?stream=true"),
        "sk-alice",
        "",
    ))
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.error()["param"], "stream");

    // `store: false`: the provider keeps nothing, so neither does the gateway.
    upstream.enqueue(Reply::raw(200, "application/json", ANSWER));
    let body = r#"{"model":"g","input":"hi","store":false}"#;
    let a = send(with_key(
        http::Method::POST,
        &gw.url("/v1/responses"),
        "sk-alice",
        body,
    ))
    .await;
    assert_eq!(a.status, 200);
    let hits = upstream.hits();
    let a = send(with_key(
        http::Method::GET,
        &gw.url(&format!("/v1/responses/{ID}")),
        "sk-alice",
        "",
    ))
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(upstream.hits(), hits);
}

/// In a group of two deployments (two accounts), the calls on a response, and the turn that
/// continues it, go to the deployment that made it, whichever the router would pick.
#[tokio::test]
async fn calls_on_a_response_are_held_to_its_deployment() {
    let one = FakeUpstream::start().await;
    let two = FakeUpstream::start().await;
    let yaml = format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4.1\n      api_base: {}/v1\n      api_key: sk-one\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4.1\n      api_base: {}/v1\n      api_key: sk-two\n",
        one.url(),
        two.url()
    );
    for u in [&one, &two] {
        u.set_default(Reply::raw(200, "application/json", ANSWER));
    }
    let gw = TestGateway::start(&yaml).await;
    let a = create(&gw, "sk-alice", "g").await;
    assert_eq!(a.status, 200);
    let (maker, other) = if one.hits() == 1 {
        (&one, &two)
    } else {
        (&two, &one)
    };
    assert_eq!(maker.hits(), 1);
    let url = gw.url(&format!("/v1/responses/{ID}"));
    for _ in 0..6 {
        let a = send(with_key(http::Method::GET, &url, "sk-alice", "")).await;
        assert_eq!(a.status, 200);
    }
    let body = format!(r#"{{"model":"g","input":"more","previous_response_id":"{ID}"}}"#);
    for _ in 0..4 {
        let a = send(with_key(
            http::Method::POST,
            &gw.url("/v1/responses"),
            "sk-alice",
            &body,
        ))
        .await;
        assert_eq!(a.status, 200);
    }
    assert_eq!(
        maker.hits(),
        11,
        "every call went to the deployment that made the response"
    );
    assert_eq!(other.hits(), 0);
}
