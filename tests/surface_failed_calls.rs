//! Failed calls at the edge (issue 21, item 2), over real sockets.
//!
//! - An unknown or missing `model` on every endpoint: LiteLLM's 400 invalid-model error in the
//!   route's dialect, with the call id, and a spend-log row with status `failure`, the call id as
//!   its request id and the key, as LiteLLM writes for a failed call; a body naming no model too.
//! - `x-litellm-attempted-retries` and `x-litellm-max-retries` on every answer and every error,
//!   also those raised above the retry layer (key, limits, budget, parse errors, unknown model),
//!   and `x-litellm-timeout` on a timeout error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use std::time::Duration;

use bytes::Bytes;
use governance_common::{call, call_with, config, get, new_key, Answer, Gov, MASTER};
use http_body_util::{BodyExt as _, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use llmgate::governance::BuildOptions;
use serde_json::{json, Value};
use support::{chat_completion, FakeUpstream, Reply};

#[tokio::test]
async fn an_unknown_model_gets_a_failure_spend_row_with_the_call_id_and_key() {
    let up = FakeUpstream::start().await;
    let gw = Gov::start(
        &config("g", &up.url(), ""),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let (key, token) = new_key(&gw.url(""), json!({})).await;
    let mut ids = Vec::new();
    for body in [
        json!({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "other-unknown", "messages": [{"role": "user", "content": "hi"}], "stream": true}),
    ] {
        let r = call(
            "POST",
            &gw.url("/v1/chat/completions"),
            Some(&key),
            Some(&body),
        )
        .await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        assert!(r.error()["message"]
            .as_str()
            .unwrap()
            .contains("Invalid model name"));
        ids.push(r.header("x-litellm-call-id").unwrap().to_owned());
    }
    assert_eq!(up.hits(), 0);
    gw.flush().await;
    let rows = get(&gw.url(&format!("/spend/logs?api_key={key}")), Some(MASTER))
        .await
        .json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for id in &ids {
        let row = rows
            .iter()
            .find(|r| r["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no row for {id}: {rows:?}"));
        assert_eq!(row["status"], "failure", "{row}");
        assert_eq!(row["api_key"], token.as_str(), "{row}");
        assert_eq!(row["spend"].as_f64().unwrap(), 0.0, "{row}");
    }
}

/// How a request body is sent.
enum Body {
    Json(Value),
    /// A multipart form: `(name, file name, bytes)` per part.
    Form(Vec<(&'static str, Option<&'static str>, &'static [u8])>),
}

const BOUNDARY: &str = "llmgate-test-boundary";

fn form_bytes(parts: &[(&str, Option<&str>, &[u8])]) -> Bytes {
    let mut out = Vec::new();
    for (name, file, data) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file {
            Some(f) => out.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    Bytes::from(out)
}

async fn send(url: &str, key: &str, body: &Body) -> Answer {
    let (content_type, bytes) = match body {
        Body::Json(v) => (
            "application/json".to_owned(),
            Bytes::from(serde_json::to_vec(v).unwrap()),
        ),
        Body::Form(parts) => (
            format!("multipart/form-data; boundary={BOUNDARY}"),
            form_bytes(parts),
        ),
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::post(url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", content_type)
        .body(Full::new(bytes))
        .unwrap();
    let resp = client.request(req).await.expect("gateway reachable");
    let (parts, body) = resp.into_parts();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// LiteLLM's invalid-model message.
fn invalid(route: &str, model: &str) -> String {
    format!(
        "{route}: Invalid model name passed in model={model}. Call `/v1/models` to view available models for your key."
    )
}

/// `body` (a JSON object) with `model` set to `model` (`None`: removed).
fn with_model(body: &Value, model: Option<&Value>) -> Value {
    let mut b = body.clone();
    let map = b.as_object_mut().unwrap();
    match model {
        Some(m) => {
            map.insert("model".into(), m.clone());
        }
        None => {
            map.remove("model");
        }
    }
    b
}

/// Every model endpoint, with an unknown model and with none: LiteLLM's 400 in the route's
/// dialect (`litellm.BadRequestError` is what an OpenAI SDK raises for it), with the call id,
/// and one failure row in the spend log per call, with the key and the call id.
#[tokio::test]
async fn an_unknown_or_missing_model_is_litellms_400_with_a_spend_row_on_every_endpoint() {
    let up = FakeUpstream::start().await;
    let gw = Gov::start(
        &config("g", &up.url(), ""),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let (key, token) = new_key(&gw.url(""), json!({})).await;
    let msgs = json!([{"role": "user", "content": "hi"}]);
    // (path, the route as LiteLLM's message names it, the body with `model: "nope"`, dialect)
    let json_routes: Vec<(&str, &str, Value, &str)> = vec![
        (
            "/v1/chat/completions",
            "/chat/completions",
            json!({"model": "nope", "messages": msgs}),
            "openai",
        ),
        (
            "/chat/completions",
            "/chat/completions",
            json!({"model": "nope", "messages": msgs, "stream": true}),
            "openai",
        ),
        (
            "/v1/completions",
            "/completions",
            json!({"model": "nope", "prompt": "hi"}),
            "openai",
        ),
        (
            "/v1/embeddings",
            "/embeddings",
            json!({"model": "nope", "input": "hi"}),
            "openai",
        ),
        (
            "/v1/images/generations",
            "/images/generations",
            json!({"model": "nope", "prompt": "a cat"}),
            "openai",
        ),
        (
            "/v1/audio/speech",
            "/audio/speech",
            json!({"model": "nope", "input": "hi", "voice": "alloy"}),
            "openai",
        ),
        (
            "/v1/moderations",
            "/moderations",
            json!({"model": "nope", "input": "hi"}),
            "openai",
        ),
        (
            "/v1/rerank",
            "/rerank",
            json!({"model": "nope", "query": "q", "documents": ["a", "b"]}),
            "openai",
        ),
        (
            "/v2/rerank",
            "/rerank",
            json!({"model": "nope", "query": "q", "documents": ["a"]}),
            "openai",
        ),
        (
            "/v1/messages",
            "/v1/messages",
            json!({"model": "nope", "max_tokens": 5, "messages": msgs}),
            "anthropic",
        ),
        (
            "/v1/responses",
            "/v1/responses",
            json!({"model": "nope", "input": "hi"}),
            "openai",
        ),
    ];
    let mut cases: Vec<(String, String, Body, &str, &str)> = Vec::new();
    for (path, route, body, dialect) in &json_routes {
        cases.push((
            (*path).to_owned(),
            invalid(route, "nope"),
            Body::Json(body.clone()),
            dialect,
            "unknown",
        ));
        for (model, shown, what) in [
            (None, "", "absent"),
            (Some(json!(null)), "None", "null"),
            (Some(json!("")), "", "empty"),
        ] {
            cases.push((
                (*path).to_owned(),
                invalid(route, shown),
                Body::Json(with_model(body, model.as_ref())),
                dialect,
                what,
            ));
        }
    }
    // Multipart uploads, with an unknown model and without one.
    for (path, route, file_field) in [
        ("/v1/images/edits", "/images/edits", "image"),
        ("/v1/audio/transcriptions", "/audio/transcriptions", "file"),
        ("/v1/audio/translations", "/audio/translations", "file"),
    ] {
        cases.push((
            path.to_owned(),
            invalid(route, "nope"),
            Body::Form(vec![
                ("model", None, b"nope"),
                (file_field, Some("a.bin"), b"0123456789"),
            ]),
            "openai",
            "unknown",
        ));
        cases.push((
            path.to_owned(),
            invalid(route, ""),
            Body::Form(vec![(file_field, Some("a.bin"), b"0123456789")]),
            "openai",
            "absent",
        ));
    }
    // Azure-style routes: the path names the (unknown) deployment.
    for (path, route, body) in [
        (
            "/openai/deployments/nope/chat/completions?api-version=2024-06-01",
            "/chat/completions",
            json!({"messages": msgs}),
        ),
        (
            "/openai/deployments/nope/embeddings?api-version=2024-06-01",
            "/embeddings",
            json!({"input": "hi"}),
        ),
        (
            "/openai/deployments/nope/completions?api-version=2024-06-01",
            "/completions",
            json!({"prompt": "hi"}),
        ),
        (
            "/engines/nope/chat/completions",
            "/chat/completions",
            json!({"model": "g", "messages": msgs}),
        ),
    ] {
        cases.push((
            path.to_owned(),
            invalid(route, "nope"),
            Body::Json(body),
            "openai",
            "azure path",
        ));
    }

    let mut ids = Vec::new();
    for (path, message, body, dialect, what) in &cases {
        let a = send(&gw.url(path), &key, body).await;
        let text = String::from_utf8_lossy(&a.body);
        assert_eq!(a.status, 400, "{path} ({what}): {text}");
        let v = a.json();
        match *dialect {
            "anthropic" => {
                assert_eq!(v["type"], "error", "{path} ({what}): {v}");
                assert_eq!(v["error"]["type"], "invalid_request_error", "{path}: {v}");
                assert_eq!(v["error"]["message"], message.as_str(), "{path} ({what})");
            }
            _ => {
                let e = a.error();
                assert_eq!(e["message"], message.as_str(), "{path} ({what})");
                assert_eq!(e["type"], "invalid_request_error", "{path} ({what})");
                assert_eq!(e["param"], "model", "{path} ({what})");
                assert_eq!(e["code"], "model_not_found", "{path} ({what})");
            }
        }
        let id = a
            .header("x-litellm-call-id")
            .unwrap_or_else(|| panic!("{path} ({what}): no call id"))
            .to_owned();
        ids.push((id, path.clone(), *what));
    }
    assert_eq!(up.hits(), 0, "no call went upstream");
    gw.flush().await;
    let rows = get(&gw.url(&format!("/spend/logs?api_key={key}")), Some(MASTER))
        .await
        .json();
    let rows = rows.as_array().unwrap();
    for (id, path, what) in &ids {
        let row = rows
            .iter()
            .find(|r| r["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{path} ({what}): no spend row for {id}"));
        assert_eq!(row["status"], "failure", "{path} ({what}): {row}");
        assert_eq!(row["api_key"], token.as_str(), "{path} ({what}): {row}");
        assert_eq!(
            row["spend"].as_f64().unwrap(),
            0.0,
            "{path} ({what}): {row}"
        );
    }
    assert_eq!(rows.len(), ids.len(), "one row per call");
}

/// A `*` group serves any model name, but never a request that names none.
#[tokio::test]
async fn a_wildcard_group_never_serves_a_body_without_a_model() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("served")));
    let yaml = format!(
        "model_list:\n  - model_name: \"*\"\n    litellm_params:\n      model: openai/*\n      api_base: {}/v1\n      api_key: sk-up\n",
        up.url()
    );
    let gw = Gov::start(&yaml, BuildOptions::default()).await;
    let served = call(
        "POST",
        &gw.url("/v1/chat/completions"),
        None,
        Some(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(
        served.status,
        200,
        "{}",
        String::from_utf8_lossy(&served.body)
    );
    for body in [
        json!({"messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "", "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": null, "messages": [{"role": "user", "content": "hi"}], "fallbacks": ["gpt-4o"]}),
    ] {
        let a = call("POST", &gw.url("/v1/chat/completions"), None, Some(&body)).await;
        assert_eq!(
            a.status,
            400,
            "{body}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert!(a.error()["message"]
            .as_str()
            .unwrap()
            .contains("Invalid model name passed in model="));
    }
    assert_eq!(up.hits(), 1, "only the named model was served");
}

fn header(a: &Answer, name: &str) -> String {
    a.header(name)
        .unwrap_or_else(|| panic!("no {name} on a {}", a.status))
        .to_owned()
}

/// `x-litellm-attempted-retries` / `x-litellm-max-retries` on every answer and error, by what
/// answered (the values are the closing note's table).
#[tokio::test]
async fn retry_headers_are_on_every_answer_and_error() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("ok")));
    let gw = Gov::start(
        &config(
            "g",
            &up.url(),
            "router_settings:\n  num_retries: 1\n  retry_after: 0\n",
        ),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let (key, _) = new_key(&gw.url(""), json!({})).await;
    let (limited, _) = new_key(&gw.url(""), json!({"rpm_limit": 1})).await;
    let (broke, _) = new_key(&gw.url(""), json!({"max_budget": 0.000_000_1})).await;
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let url = gw.url("/v1/chat/completions");
    let mut seen: Vec<(&str, u16, String, String, Option<String>)> = Vec::new();
    let mut note = |what: &'static str, a: &Answer| {
        seen.push((
            what,
            a.status,
            header(a, "x-litellm-attempted-retries"),
            header(a, "x-litellm-max-retries"),
            a.header("x-litellm-timeout").map(str::to_owned),
        ));
    };

    note(
        "success",
        &call("POST", &url, Some(&key), Some(&chat("g"))).await,
    );
    note(
        "success, num_retries 0",
        &call(
            "POST",
            &url,
            Some(&key),
            Some(&json!({"model": "g", "num_retries": 0, "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await,
    );
    note(
        "models listing",
        &call("GET", &gw.url("/v1/models"), Some(&key), None).await,
    );
    note(
        "wrong key",
        &call("POST", &url, Some("sk-wrong"), Some(&chat("g"))).await,
    );
    note("no key", &call("POST", &url, None, Some(&chat("g"))).await);
    note(
        "malformed JSON",
        &call_with("POST", &url, Some(&key), None, &[]).await,
    );
    note(
        "unknown model",
        &call("POST", &url, Some(&key), Some(&chat("nope"))).await,
    );
    note(
        "no model",
        &call(
            "POST",
            &url,
            Some(&key),
            Some(&json!({"messages": [{"role": "user", "content": "hi"}]})),
        )
        .await,
    );
    note("wrong method", &call("GET", &url, Some(&key), None).await);
    let first = call("POST", &url, Some(&limited), Some(&chat("g"))).await;
    assert_eq!(first.status, 200);
    note(
        "key rpm limit",
        &call("POST", &url, Some(&limited), Some(&chat("g"))).await,
    );
    let first = call("POST", &url, Some(&broke), Some(&chat("g"))).await;
    assert_eq!(first.status, 200);
    note(
        "key budget",
        &call("POST", &url, Some(&broke), Some(&chat("g"))).await,
    );
    up.set_default(Reply::json(
        500,
        json!({"error": {"message": "upstream down", "type": "server_error"}}),
    ));
    note(
        "upstream 500 after retries",
        &call("POST", &url, Some(&key), Some(&chat("g"))).await,
    );
    up.set_default(Reply::json(200, chat_completion("late")).delay(Duration::from_secs(3)));
    note(
        "timeout (body timeout 0.2)",
        &call(
            "POST",
            &url,
            Some(&key),
            Some(&json!({"model": "g", "timeout": 0.2, "num_retries": 0, "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await,
    );

    for row in &seen {
        eprintln!("{row:?}");
    }
    let want: Vec<(&str, u16, &str, &str, Option<&str>)> = vec![
        ("success", 200, "0", "1", None),
        ("success, num_retries 0", 200, "0", "0", None),
        ("models listing", 200, "0", "1", None),
        ("wrong key", 401, "0", "0", None),
        ("no key", 401, "0", "0", None),
        ("malformed JSON", 400, "0", "0", None),
        ("unknown model", 400, "0", "1", None),
        ("no model", 400, "0", "1", None),
        ("wrong method", 405, "0", "0", None),
        ("key rpm limit", 429, "0", "0", None),
        ("key budget", 422, "0", "0", None),
        ("upstream 500 after retries", 500, "1", "1", None),
        ("timeout (body timeout 0.2)", 408, "0", "0", Some("0.2")),
    ];
    let got: Vec<(&str, u16, &str, &str, Option<&str>)> = seen
        .iter()
        .map(|(w, s, a, m, t)| (*w, *s, a.as_str(), m.as_str(), t.as_deref()))
        .collect();
    assert_eq!(got, want);
}
