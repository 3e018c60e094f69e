//! The OpenAI path over real sockets: client → llmgate → fake upstream (a real hyper server).

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{gw, FakeUpstream, Reply};

#[tokio::test]
async fn non_stream_chat_is_relayed_and_rewrites_model_and_key() {
    let up = FakeUpstream::start().await;
    up.enqueue(
        Reply::json(200, support::chat_completion("Hi there"))
            .header("x-request-id", "req_42")
            .header("x-ratelimit-remaining-requests", "99"),
    );
    let gw = gw::TestGateway::start(&gw::openai_config("my-gpt", &up.url())).await;
    let ans = gw::post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "my-gpt", "messages": [{"role": "user", "content": "hello"}], "temperature": 0.5}),
    )
    .await;
    assert_eq!(ans.status, 200, "{:?}", ans.body);
    let v = ans.json();
    assert_eq!(v["choices"][0]["message"]["content"], "Hi there");
    assert_eq!(ans.headers["content-type"], "application/json");
    assert_eq!(ans.headers["x-litellm-model-group"], "my-gpt");
    assert_eq!(ans.headers["x-ratelimit-remaining-requests"], "99");
    assert_eq!(ans.headers["llm_provider-x-request-id"], "req_42");
    assert!(ans.headers.contains_key("x-litellm-call-id"));
    assert!(ans.headers["x-litellm-model-api-base"]
        .to_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));

    let rec = up.last_request().unwrap();
    assert_eq!(rec.path(), "/v1/chat/completions");
    assert_eq!(rec.header("authorization"), Some("Bearer sk-upstream-key"));
    let body = rec.json();
    assert_eq!(body["model"], "upstream-model");
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["messages"][0]["content"], "hello");
}

#[tokio::test]
async fn unknown_fields_pass_through_byte_for_byte() {
    let up = FakeUpstream::start().await;
    let gw = gw::TestGateway::start(&gw::openai_config("g", &up.url())).await;
    // Made-up fields at the top level, inside a message and inside a content part, with number
    // formatting and key order a re-serialization would change.
    let top = r#""x_top":{"b":1.50,"a":[1e3,-0.0,"\u00e9"]}"#;
    let in_msg = r#""x_msg":{"nested":{"z":true,"y":null}}"#;
    let in_part = r#""x_part":[10.250,{"k":"v"}]"#;
    let image_extra = r#""x_img":7.0"#;
    let raw = format!(
        r#"{{"model":"g",{top},"messages":[{{"role":"user",{in_msg},"content":[{{"type":"text","text":"hi",{in_part}}},{{"type":"image_url","image_url":{{"url":"https://x/y.png","detail":"low",{image_extra}}}}},{{"type":"x_future_part","payload":{{"q":1.0}}}}]}}],"metadata":{{"tags":["t"]}},"disable_fallbacks":false}}"#
    );
    let ans = gw::post(&gw.url("/v1/chat/completions"), raw.clone()).await;
    assert_eq!(ans.status, 200, "{}", String::from_utf8_lossy(&ans.body));
    let sent = up.last_request().unwrap();
    let sent = sent.body_str();
    for needle in [
        top,
        in_msg,
        in_part,
        image_extra,
        r#"{"type":"x_future_part","payload":{"q":1.0}}"#,
    ] {
        assert!(
            sent.contains(needle),
            "upstream body lacks {needle}: {sent}"
        );
    }
    // Gateway controls never reach the provider.
    assert!(
        !sent.contains("metadata") && !sent.contains("disable_fallbacks"),
        "{sent}"
    );
}

/// An OpenAI-format answer reaches the client as the provider sent it: key order, spacing,
/// number formatting and unknown fields untouched (the edge relays the bytes it parsed).
/// The upstream request is the client's bytes with only `model` replaced (in place) and gateway
/// controls cut out: spacing, key order and number spelling a serializer would change stay.
#[tokio::test]
async fn upstream_request_is_the_clients_bytes() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, support::chat_completion("ok")));
    let gw = gw::TestGateway::start(&gw::openai_config("g", &up.url())).await;
    let raw = "{ \"messages\" : [ {\"content\": \"hi } \\\" ,\", \"role\": \"user\", \"model\": \"in-msg\"} ],\n  \"temperature\": 1.50,\"metadata\": {\"tags\": [\"t\"]} ,\"model\" :  \"g\",\t\"x_top\": [1e3, -0.0, \"\\u00e9\"]\n}";
    let want = "{ \"messages\" : [ {\"content\": \"hi } \\\" ,\", \"role\": \"user\", \"model\": \"in-msg\"} ],\n  \"temperature\": 1.50,\"model\" :  \"upstream-model\",\t\"x_top\": [1e3, -0.0, \"\\u00e9\"]\n}";
    let ans = gw::post(&gw.url("/v1/chat/completions"), raw).await;
    assert_eq!(ans.status, 200, "{}", String::from_utf8_lossy(&ans.body));
    let rec = up.last_request().unwrap();
    assert_eq!(rec.body_str(), want);

    // Embeddings alike.
    up.set_default(Reply::json(
        200,
        json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}], "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}}),
    ));
    let raw = r#"{"input": ["a"],  "dimensions":1,"model":"g","metadata":{"k":1},"x_e":2.50}"#;
    let ans = gw::post(&gw.url("/v1/embeddings"), raw).await;
    assert_eq!(ans.status, 200, "{}", String::from_utf8_lossy(&ans.body));
    assert_eq!(
        up.last_request().unwrap().body_str(),
        r#"{"input": ["a"],  "dimensions":1,"model":"upstream-model","x_e":2.50}"#
    );
}

#[tokio::test]
async fn non_stream_answer_is_relayed_byte_for_byte() {
    let up = FakeUpstream::start().await;
    let body = "{\"usage\": {\"total_tokens\": 12, \"prompt_tokens\": 5, \"completion_tokens\": 7},\n \"choices\": [{\"finish_reason\": \"stop\", \"index\": 0, \"message\": {\"content\": \"hi\", \"role\": \"assistant\", \"x_msg\": 1.50}}],\n \"object\": \"chat.completion\", \"model\": \"m\", \"created\": 1700000000, \"id\": \"c1\", \"x_top\": [1e3, -0.0]}";
    up.set_default(Reply::raw(200, "application/json", body));
    let gw = gw::TestGateway::start(&gw::openai_config("g", &up.url())).await;
    let ans = gw::post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(ans.status, 200);
    assert_eq!(String::from_utf8_lossy(&ans.body), body);
    // The layers still read it: the cost header is there.
    assert!(ans.headers.contains_key("x-litellm-response-cost"));
}

#[tokio::test]
async fn stream_is_relayed_chunk_for_chunk_at_any_byte_split() {
    let sse = support::chat_sse(&["Hel", "lo ", "wörld", " 🎉"]);
    for seed in 1..=5u64 {
        let up = FakeUpstream::start().await;
        let cuts = support::random_cuts(sse.len(), seed, 12);
        up.enqueue(Reply::split_at(
            200,
            "text/event-stream",
            sse.clone(),
            &cuts,
        ));
        let gw = gw::TestGateway::start(&gw::openai_config("g", &up.url())).await;
        let ans = gw::post_json(
            &gw.url("/v1/chat/completions"),
            &json!({"model": "g", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(ans.status, 200);
        assert_eq!(ans.headers["content-type"], "text/event-stream");
        let data = ans.sse_data();
        assert_eq!(
            data.last().map(String::as_str),
            Some("[DONE]"),
            "seed {seed}: {data:?}"
        );
        let expected: Vec<String> = sse
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_owned)
            .collect();
        assert_eq!(data.len(), expected.len(), "seed {seed}");
        for (got, want) in data.iter().zip(&expected) {
            if want == "[DONE]" {
                assert_eq!(got, want);
                continue;
            }
            let g: serde_json::Value = serde_json::from_str(got).unwrap();
            let w: serde_json::Value = serde_json::from_str(want).unwrap();
            assert_eq!(g, w, "seed {seed}");
        }
        let text: String = data
            .iter()
            .filter(|d| *d != "[DONE]")
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(text, "Hello wörld 🎉");
    }
}

#[tokio::test]
async fn embeddings_and_models() {
    let up = FakeUpstream::start().await;
    up.enqueue(Reply::json(
        200,
        json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.25]}], "model": "text-embedding-3-small", "usage": {"prompt_tokens": 2, "total_tokens": 2}}),
    ));
    let gw = gw::TestGateway::start(&gw::openai_config("emb", &up.url())).await;
    let ans = gw::post_json(
        &gw.url("/v1/embeddings"),
        &json!({"model": "emb", "input": "hello", "dimensions": 2}),
    )
    .await;
    assert_eq!(ans.status, 200);
    assert_eq!(ans.json()["data"][0]["embedding"], json!([0.1, -0.25]));
    let rec = up.last_request().unwrap();
    assert_eq!(rec.path(), "/v1/embeddings");
    assert_eq!(
        rec.json(),
        json!({"model": "upstream-model", "input": "hello", "dimensions": 2})
    );

    let models = gw::send(
        http::Request::get(gw.url("/v1/models"))
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(models.status, 200);
    assert_eq!(models.json()["data"][0]["id"], "emb");
    let models = gw::send(
        http::Request::get(gw.url("/models"))
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(models.json()["object"], "list");
}

#[tokio::test]
async fn mock_model_answers_offline_and_streams() {
    let gw = gw::TestGateway::start(llmgate::gateway::DEFAULT_CONFIG).await;
    let ans = gw::post_json(
        &gw.url("/chat/completions"),
        &json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(ans.status, 200);
    assert_eq!(
        ans.json()["choices"][0]["message"]["content"],
        llmgate::provider::mock::DEFAULT_TEXT
    );
    let ans = gw::post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "mock", "stream": true, "mock_response": "one two three", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let data = ans.sse_data();
    assert_eq!(data.len(), 1 + 3 + 1 + 1, "{data:?}"); // role, 3 words, finish, [DONE]
    assert_eq!(data.last().unwrap(), "[DONE]");
}
