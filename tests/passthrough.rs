//! Provider pass-through routes (`/anthropic/{path}`, `/openai/{path}`, `/gemini/{path}`,
//! `/vertex_ai/{path}`, `/bedrock/{path}`, `/azure/{path}`, `/ollama/{path}`) over real sockets:
//! a gateway on loopback in front of a fake upstream, called over HTTP.
//!
//! What is checked: the client's method, path, query, headers and bytes reach the provider
//! unchanged except for the credentials (the gateway's key is taken out, the deployment's put
//! in: API keys, SigV4 re-verified, a bearer token); the upstream's status, headers and body come
//! back as they were; gateway auth (virtual keys, `x-api-key`, Gemini's `?key=` and
//! `x-goog-api-key`), budgets, rate limits and spend rows with the usage the answer states.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use bytes::Bytes;
use governance_common::{call_with, fresh_pg, get, new_key, Gov, MASTER};
use http_body_util::Full;
use llmgate::governance::BuildOptions;
use serde_json::{json, Value};
use support::{
    aws::parse_amz_date,
    gw::{send, Answer, TestGateway},
    FakeUpstream, Recorded, Reply,
};

/// An Anthropic answer with usage (10 input + 5 cache reads, 7 output), as the provider writes it
/// (spacing kept: the relay must not re-serialize it).
const ANTHROPIC_MESSAGE: &str = r#"{"id":"msg_1", "type":"message","role":"assistant","model":"claude-x-20250101","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":7}}"#;

/// An Anthropic stream: input in `message_start`, output in `message_delta`.
const ANTHROPIC_STREAM: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"usage\":{\"input_tokens\":20,\"cache_creation_input_tokens\":4,\"output_tokens\":1}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"yo\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

fn anthropic_config(upstream: &str, extra: &str) -> String {
    format!(
        "model_list:\n  - model_name: claude\n    litellm_params:\n      model: anthropic/claude-x\n      api_base: {upstream}\n      api_key: sk-ant-upstream\n      input_cost_per_token: 0.001\n      output_cost_per_token: 0.002\ngeneral_settings:\n  master_key: {MASTER}\n{extra}"
    )
}

/// A raw request to the gateway.
async fn raw(method: &str, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Answer {
    let mut b = http::Request::builder().method(method).uri(url);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    send(b.body(Full::new(body.into())).unwrap()).await
}

fn spend_rows(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

async fn anthropic_governed(opts: BuildOptions) {
    let up = FakeUpstream::start().await;
    let gw = Gov::start(&anthropic_config(&up.url(), ""), opts).await;
    let base = gw.url("");
    let (key, token) = new_key(&base, json!({"key_alias": "agent"})).await;

    // A complete answer: the client's bytes go up unchanged, the answer comes back unchanged.
    up.enqueue(
        Reply::raw(200, "application/json", ANTHROPIC_MESSAGE)
            .header("request-id", "req_up_1")
            .header("anthropic-ratelimit-tokens-remaining", "999"),
    );
    let sent = r#"{"model":"claude-x",  "max_tokens":5,"messages":[{"role":"user","content":"hi"}],"thinking":{"type":"enabled","budget_tokens":1024},"new_field":[1,2]}"#;
    let a = raw(
        "POST",
        &gw.url("/anthropic/v1/messages?beta=true"),
        &[
            ("x-api-key", &key),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "interleaved-thinking-2025-05-14"),
            ("content-type", "application/json"),
        ],
        sent,
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(&a.body[..], ANTHROPIC_MESSAGE.as_bytes());
    assert_eq!(a.headers["anthropic-ratelimit-tokens-remaining"], "999");
    assert_eq!(a.headers["request-id"], "req_up_1");
    assert_eq!(a.headers["content-type"], "application/json");
    let call_1 = a.headers["x-litellm-call-id"].to_str().unwrap().to_owned();
    let rec = up.last_request().unwrap();
    assert_eq!(rec.method, http::Method::POST);
    assert_eq!(rec.path(), "/v1/messages");
    assert_eq!(rec.uri.query(), Some("beta=true"));
    assert_eq!(rec.body_str(), sent);
    assert_eq!(rec.header("x-api-key"), Some("sk-ant-upstream"));
    assert_eq!(rec.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        rec.header("anthropic-beta"),
        Some("interleaved-thinking-2025-05-14")
    );
    assert!(rec.header("authorization").is_none());
    assert!(
        !format!("{:?}", rec.headers).contains(&key),
        "the gateway key leaked upstream"
    );

    // A stream, relayed byte for byte (the fake writes it in pieces at random cuts).
    let cuts = support::random_cuts(ANTHROPIC_STREAM.len(), 7, 6);
    up.enqueue(Reply::split_at(
        200,
        "text/event-stream",
        ANTHROPIC_STREAM,
        &cuts,
    ));
    let a = raw(
        "POST",
        &gw.url("/anthropic/v1/messages"),
        &[
            ("authorization", &format!("Bearer {key}")),
            ("content-type", "application/json"),
        ],
        r#"{"model":"claude-x","stream":true,"max_tokens":5,"messages":[]}"#,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "text/event-stream");
    assert_eq!(String::from_utf8_lossy(&a.body), ANTHROPIC_STREAM);
    let call_2 = a.headers["x-litellm-call-id"].to_str().unwrap().to_owned();

    // The upstream's error is relayed with its status and body.
    let err = r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
    up.enqueue(Reply::raw(429, "application/json", err).header("retry-after", "7"));
    let a = raw(
        "POST",
        &gw.url("/anthropic/v1/messages"),
        &[("x-api-key", &key)],
        "{}",
    )
    .await;
    assert_eq!(a.status, 429);
    assert_eq!(&a.body[..], err.as_bytes());
    assert_eq!(a.headers["retry-after"], "7");

    // Any method and path: a GET with no body.
    up.enqueue(Reply::raw(200, "application/json", r#"{"data":[]}"#));
    let a = raw(
        "GET",
        &gw.url("/anthropic/v1/models?limit=1"),
        &[("x-api-key", &key)],
        "",
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(&a.body[..], br#"{"data":[]}"#);
    let rec = up.last_request().unwrap();
    assert_eq!((rec.method.as_str(), rec.path()), ("GET", "/v1/models"));
    assert_eq!(rec.uri.query(), Some("limit=1"));
    let hits = up.hits();

    // Gateway auth: no key, a wrong key: 401 in Anthropic's error shape (the route's dialect),
    // nothing sent upstream.
    for headers in [vec![], vec![("x-api-key", "sk-wrong")]] {
        let a = raw("POST", &gw.url("/anthropic/v1/messages"), &headers, "{}").await;
        assert_eq!(a.status, 401, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.error_in("anthropic")["type"], "authentication_error");
    }
    assert_eq!(up.hits(), hits);

    // Spend rows: one per call, with the usage the answers stated and its cost.
    gw.flush().await;
    let rows = get(&gw.url(&format!("/spend/logs?api_key={key}")), Some(MASTER)).await;
    assert_eq!(rows.status, 200);
    let rows = spend_rows(&rows.json());
    assert_eq!(rows.len(), 4, "{rows:?}");
    let row = |id: &str| {
        rows.iter()
            .find(|r| r["request_id"] == id)
            .cloned()
            .unwrap()
    };
    let r1 = row(&call_1);
    assert_eq!(r1["api_key"], token.as_str());
    assert_eq!(r1["model_group"], "claude");
    // The model the answer names.
    assert_eq!(r1["model"], "claude-x-20250101", "{r1}");
    assert_eq!(
        (
            r1["prompt_tokens"].as_u64(),
            r1["completion_tokens"].as_u64()
        ),
        (Some(15), Some(7)),
        "{r1}"
    );
    let want = 0.029; // 15 input tokens at 0.001, 7 output at 0.002
    assert!((r1["spend"].as_f64().unwrap() - want).abs() < 1e-6, "{r1}");
    let r2 = row(&call_2);
    assert_eq!(
        (
            r2["prompt_tokens"].as_u64(),
            r2["completion_tokens"].as_u64()
        ),
        (Some(24), Some(9)),
        "{r2}"
    );
    assert!(r2["spend"].as_f64().unwrap() > 0.0, "{r2}");
}

#[tokio::test]
async fn anthropic_pass_through_with_virtual_keys_and_spend_rows_sqlite() {
    anthropic_governed(BuildOptions::default().database_url("sqlite::memory:")).await;
}

#[tokio::test]
async fn anthropic_pass_through_with_virtual_keys_and_spend_rows_postgres() {
    anthropic_governed(BuildOptions::default().database_url(fresh_pg().await)).await;
}

#[tokio::test]
async fn budgets_and_rate_limits_apply_to_pass_through_calls() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::raw(200, "application/json", ANTHROPIC_MESSAGE));
    let gw = Gov::start(
        &anthropic_config(&up.url(), ""),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    // One call costs 0.029: the second is over the budget.
    let (key, _) = new_key(&base, json!({"max_budget": 0.02})).await;
    let call = |k: String| {
        let url = gw.url("/anthropic/v1/messages");
        async move { raw("POST", &url, &[("x-api-key", &k)], "{}").await }
    };
    assert_eq!(call(key.clone()).await.status, 200);
    let a = call(key.clone()).await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    // Anthropic's shape on `/anthropic/`: a budget refusal is its `invalid_request_error`.
    let e = a.error_in("anthropic");
    assert_eq!(e["type"], "invalid_request_error");
    assert!(e["message"].as_str().unwrap().contains("Budget"), "{e}");
    assert_eq!(up.hits(), 1);

    // A key limited to one request a minute: the second is refused.
    let (limited, _) = new_key(&base, json!({"rpm_limit": 1})).await;
    assert_eq!(call(limited.clone()).await.status, 200);
    let a = call(limited).await;
    assert_eq!(a.status, 429, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(up.hits(), 2);

    // A key with a tpm limit: the first answer's 22 tokens use it up, the next call is refused.
    let (tpm, _) = new_key(&base, json!({"tpm_limit": 20})).await;
    assert_eq!(call(tpm.clone()).await.status, 200);
    let a = call(tpm).await;
    assert_eq!(a.status, 429, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(up.hits(), 3);

    // A key without access to the route's model group.
    let (other, _) = new_key(&base, json!({"models": ["some-other-group"]})).await;
    let a = call(other).await;
    assert_eq!(a.status, 401, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(up.hits(), 3);
}

/// Every family's deployment at one fake upstream, with a master key.
fn families_config(up: &str) -> String {
    format!(
        "model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o
      api_base: {up}/v1
      api_key: sk-openai-up
  - model_name: az
    litellm_params:
      model: azure/my-deployment
      api_base: {up}
      api_key: az-key-up
      api_version: 2024-10-21
  - model_name: gem
    litellm_params:
      model: gemini/gemini-2.5-flash
      api_base: {up}/v1beta
      api_key: gem-key-up
  - model_name: llama
    litellm_params:
      model: ollama_chat/llama3
      api_base: {up}
  - model_name: br
    litellm_params:
      model: bedrock/anthropic.claude-x
      api_base: {up}
      aws_access_key_id: AKIDEXAMPLE
      aws_secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
      aws_region_name: us-east-1
  - model_name: vx
    litellm_params:
      model: vertex_ai/gemini-2.5-flash
      api_base: {up}
      api_key: ya29.vertex-token
      vertex_project: proj
      vertex_location: us-central1
general_settings:
  master_key: {MASTER}
"
    )
}

#[tokio::test]
async fn openai_azure_and_ollama_get_their_credentials_and_relay_as_is() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start(&families_config(&up.url())).await;
    let auth = format!("Bearer {MASTER}");
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}], "odd":  true}"#;

    // OpenAI: `/openai/v1/…` and `/openai/…` both land on `{api_base}/…` once.
    for path in ["/openai/v1/chat/completions", "/openai/chat/completions"] {
        let answer = r#"{"id":"c","object":"chat.completion","usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        up.enqueue(Reply::raw(200, "application/json", answer).header("x-request-id", "up-1"));
        let a = raw(
            "POST",
            &gw.url(path),
            &[("authorization", &auth), ("openai-beta", "assistants=v2")],
            body,
        )
        .await;
        assert_eq!(
            a.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(&a.body[..], answer.as_bytes());
        assert_eq!(a.headers["x-request-id"], "up-1");
        let rec = up.last_request().unwrap();
        assert_eq!(rec.path(), "/v1/chat/completions", "{path}");
        assert_eq!(rec.header("authorization"), Some("Bearer sk-openai-up"));
        assert_eq!(rec.header("openai-beta"), Some("assistants=v2"));
        assert_eq!(rec.body_str(), body);
    }
    // A DELETE with a path parameter.
    up.enqueue(Reply::raw(200, "application/json", r#"{"deleted":true}"#));
    let a = raw(
        "DELETE",
        &gw.url("/openai/v1/files/file-abc"),
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(a.status, 200);
    let rec = up.last_request().unwrap();
    assert_eq!(
        (rec.method.as_str(), rec.path()),
        ("DELETE", "/v1/files/file-abc")
    );

    // Azure: `api-key`, and the deployment's api-version when the client sent none.
    up.enqueue(Reply::raw(200, "application/json", "{}"));
    let a = raw(
        "POST",
        &gw.url("/azure/openai/deployments/my-deployment/chat/completions"),
        &[("api-key", MASTER)],
        body,
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let rec = up.last_request().unwrap();
    assert_eq!(
        rec.path(),
        "/openai/deployments/my-deployment/chat/completions"
    );
    assert_eq!(rec.uri.query(), Some("api-version=2024-10-21"));
    assert_eq!(rec.header("api-key"), Some("az-key-up"));
    up.enqueue(Reply::raw(200, "application/json", "{}"));
    raw(
        "POST",
        &gw.url("/azure/openai/deployments/d/embeddings?api-version=2025-01-01"),
        &[("api-key", MASTER)],
        body,
    )
    .await;
    assert_eq!(
        up.last_request().unwrap().uri.query(),
        Some("api-version=2025-01-01")
    );

    // Ollama: NDJSON streamed back as it came; no credential (the deployment has none).
    let ndjson = "{\"message\":{\"content\":\"a\"},\"done\":false}\n{\"message\":{\"content\":\"b\"},\"done\":true,\"prompt_eval_count\":4,\"eval_count\":2}\n";
    up.enqueue(Reply::split_at(
        200,
        "application/x-ndjson",
        ndjson,
        &[5, 30, 50],
    ));
    let a = raw(
        "POST",
        &gw.url("/ollama/api/chat"),
        &[("authorization", &auth)],
        r#"{"model":"llama3"}"#,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(String::from_utf8_lossy(&a.body), ndjson);
    assert_eq!(a.headers["content-type"], "application/x-ndjson");
    let rec = up.last_request().unwrap();
    assert_eq!(rec.path(), "/api/chat");
    assert!(rec.header("authorization").is_none());
}

#[tokio::test]
async fn gemini_takes_the_gateway_key_from_the_query_or_its_header() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start(&families_config(&up.url())).await;
    let answer = r#"{"candidates":[],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1,"totalTokenCount":4}}"#;
    let path = "/gemini/v1beta/models/gemini-2.5-flash:generateContent";

    up.enqueue(Reply::raw(200, "application/json", answer));
    let a = raw(
        "POST",
        &gw.url(&format!("{path}?key={MASTER}&alt=json")),
        &[],
        "{}",
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(&a.body[..], answer.as_bytes());
    let rec = up.last_request().unwrap();
    assert_eq!(
        rec.path(),
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    // The gateway's key is not sent on; the deployment's goes in its header.
    assert_eq!(rec.uri.query(), Some("alt=json"));
    assert_eq!(rec.header("x-goog-api-key"), Some("gem-key-up"));

    up.enqueue(Reply::raw(200, "application/json", answer));
    let a = raw("POST", &gw.url(path), &[("x-goog-api-key", MASTER)], "{}").await;
    assert_eq!(a.status, 200);
    assert_eq!(up.last_request().unwrap().uri.query(), None);

    let hits = up.hits();
    for url in [format!("{path}?key=sk-wrong"), path.to_owned()] {
        let a = raw("POST", &gw.url(&url), &[], "{}").await;
        assert_eq!(a.status, 401, "{url}");
        // Google's error shape on `/gemini/`.
        assert_eq!(a.error_in("google")["type"], "UNAUTHENTICATED");
    }
    assert_eq!(up.hits(), hits);
}

/// Re-signs the recorded request with the deployment's credentials at its `x-amz-date`; the
/// signature must be the one sent.
fn check_sigv4(rec: &Recorded) {
    use llmgate::provider::bedrock::{sign, AwsCredentials};
    let auth = rec.header("authorization").expect("authorization");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{auth}"
    );
    assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
    let signed = auth
        .split(", ")
        .find_map(|p| p.strip_prefix("SignedHeaders="))
        .expect("SignedHeaders");
    let time = parse_amz_date(rec.header("x-amz-date").expect("x-amz-date")).expect("date");
    let creds = AwsCredentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
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
    sign(&mut req, &creds, "us-east-1", time).unwrap();
    assert_eq!(req.headers()["authorization"].to_str().unwrap(), auth);
}

#[tokio::test]
async fn bedrock_is_signed_with_sigv4_and_vertex_gets_its_bearer_token() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start(&families_config(&up.url())).await;
    let auth = format!("Bearer {MASTER}");

    let answer = r#"{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"usage":{"inputTokens":5,"outputTokens":2,"totalTokens":7}}"#;
    up.enqueue(Reply::raw(200, "application/json", answer));
    let body = r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#;
    let a = raw(
        "POST",
        &gw.url("/bedrock/model/anthropic.claude-x/converse"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("x-amz-date", "20000101T000000Z"),
        ],
        body,
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(&a.body[..], answer.as_bytes());
    let rec = up.last_request().unwrap();
    assert_eq!(rec.path(), "/model/anthropic.claude-x/converse");
    assert_eq!(rec.body_str(), body);
    assert_ne!(
        rec.header("x-amz-date"),
        Some("20000101T000000Z"),
        "the client's signing headers are not sent"
    );
    check_sigv4(&rec);

    up.enqueue(Reply::raw(200, "application/json", "{}"));
    let path = "/vertex_ai/v1/projects/proj/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent";
    let a = raw("POST", &gw.url(path), &[("authorization", &auth)], "{}").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let rec = up.last_request().unwrap();
    assert_eq!(rec.path(), &path["/vertex_ai".len()..]);
    assert_eq!(
        rec.header("authorization"),
        Some("Bearer ya29.vertex-token")
    );
}

#[tokio::test]
async fn a_family_without_a_deployment_is_not_served() {
    let up = FakeUpstream::start().await;
    let yaml = format!(
        "model_list:\n  - model_name: gpt\n    litellm_params:\n      model: openai/gpt-4o\n      api_base: {}/v1\n      api_key: k\n",
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    for path in [
        "/anthropic/v1/messages",
        "/bedrock/model/x/converse",
        "/cohere/v1/chat",
    ] {
        let a = raw("POST", &gw.url(path), &[], "{}").await;
        assert_eq!(a.status, 404, "{path}");
        a.error();
    }
    assert_eq!(up.hits(), 0);
    // The served family works without a master key configured.
    up.enqueue(Reply::raw(200, "application/json", "{}"));
    assert_eq!(
        raw("GET", &gw.url("/openai/v1/models"), &[], "")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_deployment_marked_use_in_pass_through_is_used() {
    let first = FakeUpstream::start().await;
    let marked = FakeUpstream::start().await;
    let yaml = format!(
        "model_list:
  - model_name: claude-a
    litellm_params:
      model: anthropic/claude-a
      api_base: {}
      api_key: key-a
  - model_name: claude-b
    litellm_params:
      model: anthropic/claude-b
      api_base: {}
      api_key: key-b
      use_in_pass_through: true
",
        first.url(),
        marked.url()
    );
    let gw = TestGateway::start(&yaml).await;
    marked.enqueue(Reply::raw(200, "application/json", "{}"));
    let a = raw("POST", &gw.url("/anthropic/v1/messages"), &[], "{}").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!((first.hits(), marked.hits()), (0, 1));
    assert_eq!(
        marked.last_request().unwrap().header("x-api-key"),
        Some("key-b")
    );
    let _ = call_with;
}

#[tokio::test]
async fn a_client_that_goes_away_mid_stream_ends_the_upstream_call_and_gets_a_row() {
    let up = FakeUpstream::start().await;
    let gw = Gov::start(
        &anthropic_config(&up.url(), ""),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let (key, _) = new_key(&gw.url(""), json!({})).await;
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":30,\"output_tokens\":1}}}\n\n";
    up.enqueue(Reply::sse_then_hang(start));
    let req = http::Request::post(gw.url("/anthropic/v1/messages"))
        .header("x-api-key", &key)
        .body(Full::new(Bytes::from_static(br#"{"stream":true}"#)))
        .unwrap();
    let resp = support::gw::client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // The first event arrives as soon as the upstream wrote it, before the upstream's end.
    let first = http_body_util::BodyExt::frame(&mut body)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.data_ref().map(|d| &d[..]), Some(start.as_bytes()));
    drop(body);
    assert!(
        up.wait_for_disconnect(std::time::Duration::from_secs(5))
            .await,
        "the upstream call was not ended"
    );
    gw.flush().await;
    let rows = get(&gw.url(&format!("/spend/logs?api_key={key}")), Some(MASTER))
        .await
        .json();
    let rows = spend_rows(&rows);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["prompt_tokens"], 30, "{rows:?}");
    assert_ne!(rows[0]["status"], "success", "{rows:?}");
}

#[tokio::test]
async fn an_unreachable_upstream_is_the_gateways_error_json() {
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let yaml = format!(
        "model_list:\n  - model_name: claude\n    litellm_params:\n      model: anthropic/claude-x\n      api_base: http://{dead}\n      api_key: k\n"
    );
    let gw = TestGateway::start(&yaml).await;
    let a = raw("POST", &gw.url("/anthropic/v1/messages"), &[], "{}").await;
    assert!(
        a.status >= 500,
        "{}: {}",
        a.status,
        String::from_utf8_lossy(&a.body)
    );
    let e = a.error_in("anthropic");
    assert_eq!(e["type"], "api_error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("could not reach the provider"),
        "{e}"
    );
}

#[tokio::test]
async fn gateway_errors_are_in_the_dialect_of_the_routes_provider() {
    let up = FakeUpstream::start().await;
    let yaml = families_config(&up.url()).replace(
        "general_settings:",
        "  - model_name: claude\n    litellm_params:\n      model: anthropic/claude-x\n      api_base: UP\n      api_key: k\ngeneral_settings:",
    ).replace("UP", &up.url());
    let gw = Gov::start(
        &yaml,
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    // No key: 401 in each provider's own error shape, as its SDK parses it.
    for (path, dialect, kind) in [
        ("/anthropic/v1/messages", "anthropic", "authentication_error"),
        ("/gemini/v1beta/models/gemini-2.5-flash:generateContent", "google", "UNAUTHENTICATED"),
        (
            "/vertex_ai/v1/projects/proj/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent",
            "google",
            "UNAUTHENTICATED",
        ),
        ("/bedrock/model/anthropic.claude-x/converse", "bedrock", "UnrecognizedClientException"),
        ("/ollama/api/chat", "ollama", ""),
        ("/openai/v1/chat/completions", "openai", "auth_error"),
        ("/azure/openai/deployments/my-deployment/chat/completions", "openai", "auth_error"),
    ] {
        let a = raw("POST", &gw.url(path), &[], "{}").await;
        assert_eq!(a.status, 401, "{path}: {}", String::from_utf8_lossy(&a.body));
        assert_eq!(
            a.headers["content-type"], "application/json",
            "{path}"
        );
        let e = a.error_in(dialect);
        if !kind.is_empty() {
            assert_eq!(e["type"], kind, "{path}");
        }
    }
    // A key without access to the route's group: 401 too, Google's shape on `/gemini/`.
    let base = gw.url("");
    let (key, _) = new_key(&base, json!({"models": ["gpt"]})).await;
    let a = raw(
        "POST",
        &gw.url("/gemini/v1beta/models/gemini-2.5-flash:generateContent"),
        &[("x-goog-api-key", &key)],
        "{}",
    )
    .await;
    assert!(a.status == 401 || a.status == 403, "{}", a.status);
    let e = a.error_in("google");
    assert!(
        e["type"] == "UNAUTHENTICATED" || e["type"] == "PERMISSION_DENIED",
        "{e}"
    );
    let a = raw(
        "POST",
        &gw.url("/bedrock/model/anthropic.claude-x/converse"),
        &[("authorization", &format!("Bearer {key}"))],
        "{}",
    )
    .await;
    assert!(a.status == 401 || a.status == 403, "{}", a.status);
    a.error_in("bedrock");
    assert_eq!(up.hits(), 0);
}

/// A body of `len` bytes in 64 KiB frames, with no declared length when `declare` is false
/// (chunked), sent by a client that streams it.
fn streamed_body(
    len: usize,
) -> http_body_util::StreamBody<
    impl futures_util::Stream<Item = Result<http_body::Frame<Bytes>, std::convert::Infallible>>,
> {
    let pieces: Vec<Bytes> = (0..len.div_ceil(64 << 10))
        .map(|i| {
            let n = (64 << 10).min(len - i * (64 << 10));
            Bytes::from(vec![b'a' + (i % 26) as u8; n])
        })
        .collect();
    http_body_util::StreamBody::new(futures_util::stream::iter(
        pieces.into_iter().map(|p| Ok(http_body::Frame::data(p))),
    ))
}

async fn send_streamed(
    url: &str,
    headers: &[(&str, &str)],
    len: usize,
    declare: bool,
) -> (u16, Bytes) {
    use http_body_util::BodyExt as _;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let mut b = http::Request::post(url);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    if declare {
        b = b.header("content-length", len.to_string());
    }
    let resp = client.request(b.body(streamed_body(len)).unwrap()).await;
    match resp {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.into_body().collect().await.unwrap().to_bytes())
        }
        // The gateway answered before reading the whole body and closed: no status to read.
        Err(e) => panic!("the request failed: {e}"),
    }
}

/// A body past the edge's buffer (1 MiB) streams to the provider: every byte arrives in order,
/// with the client's `Content-Length`; on Bedrock it is collected and signed (SigV4 hashes the
/// payload); past the body limit a chunked upload is cut and answered 413 in the route's dialect.
#[tokio::test]
async fn large_bodies_stream_to_the_provider_whole_and_under_the_limit() {
    let up = FakeUpstream::start().await;
    let gw = TestGateway::start_with(&families_config(&up.url()), Some(8 << 20)).await;
    let auth = format!("Bearer {MASTER}");
    let len = 3 << 20;
    let expected: Vec<u8> = (0..len).map(|i| b'a' + ((i >> 16) % 26) as u8).collect();

    for declare in [true, false] {
        up.enqueue(Reply::raw(200, "application/json", r#"{"id":"file-1"}"#));
        let (status, body) = send_streamed(
            &gw.url("/openai/v1/files"),
            &[
                ("authorization", &auth),
                ("content-type", "application/octet-stream"),
            ],
            len,
            declare,
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(&body[..], br#"{"id":"file-1"}"#);
        let rec = up.last_request().unwrap();
        assert_eq!(rec.path(), "/v1/files");
        assert_eq!(rec.header("authorization"), Some("Bearer sk-openai-up"));
        assert_eq!(rec.body.len(), len, "declared: {declare}");
        assert!(rec.body[..] == expected[..], "the bytes arrive in order");
        if declare {
            assert_eq!(rec.header("content-length"), Some("3145728"));
        }
    }

    // Bedrock: collected, then signed over the whole payload.
    up.enqueue(Reply::raw(200, "application/json", "{}"));
    let (status, body) = send_streamed(
        &gw.url("/bedrock/model/anthropic.claude-x/invoke"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        len,
        true,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let rec = up.last_request().unwrap();
    assert_eq!(rec.body.len(), len);
    check_sigv4(&rec);

    // Past the limit, declared: refused before the body is read, nothing sent upstream.
    let hits = up.hits();
    let (status, body) = send_streamed(
        &gw.url("/openai/v1/files"),
        &[("authorization", &auth)],
        9 << 20,
        true,
    )
    .await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert_eq!(up.hits(), hits);
    // Past the limit, chunked (no length to check first): cut while streaming, 413 in the
    // route's dialect.
    up.enqueue(Reply::raw(200, "application/json", "{}"));
    let (status, body) = send_streamed(
        &gw.url("/azure/openai/files?api-version=2024-10-21"),
        &[("authorization", &auth)],
        9 << 20,
        false,
    )
    .await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("larger than the limit")),
        "{err}"
    );
}
