//! `drop_params` and `additional_drop_params` end to end: a client over a real socket, the gateway,
//! and a fake provider over a real socket that records what it was sent.
//!
//! For every translating family: an OpenAI parameter the provider cannot take is a 400 OpenAI error
//! naming it (and the provider never hears of the request); with `drop_params` (request body,
//! deployment, or `litellm_settings`) the request goes through without it; `additional_drop_params`
//! removes named keys for every provider, OpenAI pass-through included.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::{gw, FakeUpstream, Reply};

/// One translating provider: its `litellm_params` (pointed at the fake upstream), a successful
/// upstream answer, and an OpenAI parameter it cannot take.
struct Family {
    name: &'static str,
    params: fn(&str) -> String,
    ok: fn() -> Value,
    unsupported: (&'static str, Value),
}

fn families() -> Vec<Family> {
    vec![
        Family {
            name: "anthropic",
            params: |up| {
                format!("model: anthropic/claude-sonnet-4-5\n      api_base: {up}\n      api_key: sk-ant-test")
            },
            ok: || {
                json!({"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5",
                    "content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,
                    "usage":{"input_tokens":3,"output_tokens":1}})
            },
            unsupported: ("logit_bias", json!({"50256": -100})),
        },
        Family {
            name: "bedrock",
            params: |up| {
                format!("model: bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0\n      api_base: {up}\n      aws_access_key_id: AKIDEXAMPLE\n      aws_secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n      aws_region_name: us-east-1")
            },
            ok: || {
                json!({"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},
                    "stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":1,"totalTokens":4}})
            },
            unsupported: ("seed", json!(42)),
        },
        Family {
            name: "ollama_chat",
            params: |up| format!("model: ollama_chat/llama3.1\n      api_base: {up}"),
            ok: || {
                json!({"model":"llama3.1","created_at":"2025-01-01T00:00:00Z",
                    "message":{"role":"assistant","content":"hi"},"done":true,"done_reason":"stop",
                    "prompt_eval_count":3,"eval_count":1})
            },
            unsupported: ("user", json!("end-user-1")),
        },
        Family {
            name: "gemini",
            params: |up| {
                format!("model: gemini/gemini-2.5-flash\n      api_base: {up}/v1beta\n      api_key: test-key")
            },
            ok: || {
                json!({"candidates":[{"content":{"parts":[{"text":"hi"}],"role":"model"},"finishReason":"STOP","index":0}],
                    "usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1,"totalTokenCount":4}})
            },
            unsupported: ("logprobs", json!(true)),
        },
    ]
}

fn config(family: &Family, up: &str, extra_params: &str, settings: &str) -> String {
    format!(
        "model_list:\n  - model_name: m\n    litellm_params:\n      {}{extra_params}\n{settings}",
        (family.params)(up)
    )
}

fn request(extra: &[(&str, Value)]) -> Value {
    let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hello"}], "temperature": 0.5});
    for (k, v) in extra {
        body[*k] = v.clone();
    }
    body
}

/// Whether `key` appears anywhere in `v` as an object key.
fn has_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| k == key || has_key(v, key)),
        Value::Array(a) => a.iter().any(|v| has_key(v, key)),
        _ => false,
    }
}

#[tokio::test]
async fn unsupported_param_is_a_400_naming_it_and_nothing_is_sent() {
    for family in families() {
        let up = FakeUpstream::start().await;
        let gw = gw::TestGateway::start(&config(&family, &up.url(), "", "")).await;
        let (param, value) = &family.unsupported;
        let answer = gw::post_json(
            &gw.url("/v1/chat/completions"),
            &request(&[(param, value.clone())]),
        )
        .await;
        assert_eq!(answer.status, 400, "{}: {:?}", family.name, answer.body);
        let err = answer.error();
        assert_eq!(err["type"], "invalid_request_error", "{}", family.name);
        assert_eq!(err["param"], *param, "{}", family.name);
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "{} does not support parameters: ['{param}']",
                family.name
            )),
            "{}: {message}",
            family.name
        );
        assert!(message.contains("drop_params"), "{message}");
        assert_eq!(up.hits(), 0, "{}: the provider was called", family.name);
    }
}

#[tokio::test]
async fn drop_params_in_the_request_body_drops_it() {
    for family in families() {
        let up = FakeUpstream::start().await;
        up.set_default(Reply::json(200, (family.ok)()));
        let gw = gw::TestGateway::start(&config(&family, &up.url(), "", "")).await;
        let (param, value) = &family.unsupported;
        let answer = gw::post_json(
            &gw.url("/v1/chat/completions"),
            &request(&[(param, value.clone()), ("drop_params", json!(true))]),
        )
        .await;
        assert_eq!(answer.status, 200, "{}: {:?}", family.name, answer.body);
        assert_eq!(
            answer.json()["choices"][0]["message"]["content"],
            "hi",
            "{}",
            family.name
        );
        let sent = up.last_request().unwrap().json();
        assert!(!has_key(&sent, param), "{}: {sent}", family.name);
        assert!(!has_key(&sent, "drop_params"), "{}: {sent}", family.name);
        // What the provider maps still arrives.
        assert!(
            sent.to_string().contains("0.5"),
            "{}: temperature lost: {sent}",
            family.name
        );
    }
}

#[tokio::test]
async fn drop_params_in_the_deployment_and_in_litellm_settings_drop_it() {
    for family in families() {
        for (extra_params, settings) in [
            ("\n      drop_params: true", ""),
            ("", "litellm_settings:\n  drop_params: true\n"),
        ] {
            let up = FakeUpstream::start().await;
            up.set_default(Reply::json(200, (family.ok)()));
            let gw =
                gw::TestGateway::start(&config(&family, &up.url(), extra_params, settings)).await;
            let (param, value) = &family.unsupported;
            let answer = gw::post_json(
                &gw.url("/v1/chat/completions"),
                &request(&[(param, value.clone())]),
            )
            .await;
            assert_eq!(
                answer.status, 200,
                "{} {extra_params:?} {settings:?}: {:?}",
                family.name, answer.body
            );
            let sent = up.last_request().unwrap().json();
            assert!(!has_key(&sent, param), "{}: {sent}", family.name);
        }
    }
}

#[tokio::test]
async fn a_deployment_saying_false_overrides_litellm_settings() {
    let family = &families()[0];
    let up = FakeUpstream::start().await;
    let gw = gw::TestGateway::start(&config(
        family,
        &up.url(),
        "\n      drop_params: false",
        "litellm_settings:\n  drop_params: true\n",
    ))
    .await;
    let (param, value) = &family.unsupported;
    let answer = gw::post_json(
        &gw.url("/v1/chat/completions"),
        &request(&[(param, value.clone())]),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.error()["param"], *param);
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn additional_drop_params_removes_keys_for_translated_providers() {
    for family in families() {
        let up = FakeUpstream::start().await;
        up.set_default(Reply::json(200, (family.ok)()));
        // `top_k` is a provider-specific key each family forwards today; `temperature` a mapped one.
        let gw = gw::TestGateway::start(&config(
            &family,
            &up.url(),
            "\n      additional_drop_params: [\"top_k\", \"temperature\"]",
            "",
        ))
        .await;
        let (param, value) = &family.unsupported;
        let answer = gw::post_json(
            &gw.url("/v1/chat/completions"),
            &request(&[
                ("top_k", json!(7)),
                (param, value.clone()),
                ("additional_drop_params", json!([param])),
            ]),
        )
        .await;
        assert_eq!(answer.status, 200, "{}: {:?}", family.name, answer.body);
        let sent = up.last_request().unwrap().json();
        for gone in [
            "top_k",
            "topK",
            "temperature",
            param,
            "additional_drop_params",
        ] {
            assert!(!has_key(&sent, gone), "{}: {gone} in {sent}", family.name);
        }
    }
}

#[tokio::test]
async fn additional_drop_params_removes_keys_for_openai_passthrough() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::default_chat());
    let yaml = format!(
        "{}      additional_drop_params: [\"logit_bias\", \"tools[*].input_examples\"]\n",
        gw::openai_config("m", &up.url())
    );
    let gw = gw::TestGateway::start(&yaml).await;
    let answer = gw::post_json(
        &gw.url("/v1/chat/completions"),
        &request(&[
            ("logit_bias", json!({"1": 2})),
            ("x_vendor", json!("gone")),
            ("seed", json!(3)),
            (
                "tools",
                json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}, "input_examples": [{"a": 1}]}]),
            ),
            ("additional_drop_params", json!(["x_vendor"])),
            ("drop_params", json!(true)),
        ]),
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let sent = up.last_request().unwrap().json();
    for gone in [
        "logit_bias",
        "x_vendor",
        "input_examples",
        "additional_drop_params",
        "drop_params",
    ] {
        assert!(!has_key(&sent, gone), "{gone} in {sent}");
    }
    assert_eq!(sent["seed"], 3);
    assert_eq!(sent["temperature"], 0.5);
    assert_eq!(sent["tools"][0]["function"]["name"], "f");
}

#[tokio::test]
async fn openai_passthrough_takes_every_openai_param_without_drop_params() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::default_chat());
    let gw = gw::TestGateway::start(&gw::openai_config("m", &up.url())).await;
    let answer = gw::post_json(
        &gw.url("/v1/chat/completions"),
        &request(&[("logit_bias", json!({"1": 2})), ("seed", json!(1))]),
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let sent = up.last_request().unwrap().json();
    assert_eq!(sent["logit_bias"], json!({"1": 2}));
    assert_eq!(sent["seed"], 1);
}

#[tokio::test]
async fn ollama_embeddings_refuse_user_and_answer_base64() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(
        200,
        json!({"model": "nomic-embed-text", "embeddings": [[1.0, -2.5]], "prompt_eval_count": 2}),
    ));
    let yaml = format!(
        "model_list:\n  - model_name: e\n    litellm_params:\n      model: ollama/nomic-embed-text\n      api_base: {}\n",
        up.url()
    );
    let gw = gw::TestGateway::start(&yaml).await;
    let url = gw.url("/v1/embeddings");

    let refused = gw::post_json(&url, &json!({"model": "e", "input": "hi", "user": "u1"})).await;
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert_eq!(refused.error()["param"], "user");
    assert_eq!(up.hits(), 0);

    // The OpenAI SDK asks for base64 by default: the floats come back encoded, as OpenAI does.
    let answer = gw::post_json(
        &url,
        &json!({"model": "e", "input": "hi", "encoding_format": "base64", "dimensions": 2}),
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let sent = up.last_request().unwrap().json();
    assert_eq!(sent["dimensions"], 2);
    assert!(sent.get("encoding_format").is_none(), "{sent}");
    let b64 = answer.json()["data"][0]["embedding"]
        .as_str()
        .expect("a base64 string")
        .to_owned();
    let mut want = 1.0f32.to_le_bytes().to_vec();
    want.extend((-2.5f32).to_le_bytes());
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
        want
    );
}

#[tokio::test]
async fn a_stream_request_is_refused_before_any_stream_starts() {
    let family = &families()[1];
    let up = FakeUpstream::start().await;
    let gw = gw::TestGateway::start(&config(family, &up.url(), "", "")).await;
    let (param, value) = &family.unsupported;
    let answer = gw::post_json(
        &gw.url("/v1/chat/completions"),
        &request(&[("stream", json!(true)), (param, value.clone())]),
    )
    .await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    assert_eq!(answer.error()["param"], *param);
    assert_eq!(up.hits(), 0);
}
