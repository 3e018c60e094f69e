//! Health probes over sockets (issue 22 item 1): `GET /health` against fake upstreams (one
//! healthy, one failing, one slower than the probe timeout) answers LiteLLM's shape with keys
//! masked, probes with the free model-list call (never a chat), honours `?model=` and the
//! master key; the background mode answers the last report at once and cools a failing
//! deployment; `/health/readiness` keeps LiteLLM's fields with the callbacks in use; `/routes`
//! and `/` answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use std::time::{Duration, Instant};

use governance_common::{chat, get, Gov, MASTER};
use llmgate::{
    config::Config,
    gateway::Gateway,
    governance::BuildOptions,
    provider::HttpClient,
    server::{serve, ServeConfig},
};
use serde_json::{json, Value};
use support::{FakeUpstream, Reply};

const KEY: &str = "sk-upstream-secret-0123456789";

/// An OpenAI deployment of `group` at `upstream`.
fn entry(group: &str, upstream: &str) -> String {
    format!(
        "  - model_name: {group}\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n      api_key: {KEY}\n"
    )
}

/// Serves `gateway.app()` on loopback; returns the base URL and a guard that stops it.
async fn serve_app(gateway: Gateway) -> (String, tokio::sync::oneshot::Sender<()>, Gateway) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(
        listener,
        gateway.app(),
        ServeConfig::default().grace_period(Duration::from_secs(1)),
        async {
            let _ = rx.await;
        },
    ));
    (format!("http://{addr}"), tx, gateway)
}

/// Three upstreams: healthy (200), failing (500), slow (answers after 5 s).
async fn three_upstreams() -> (FakeUpstream, FakeUpstream, FakeUpstream) {
    // Any 2xx answer to the model list is healthy; its default (a chat completion) serves the
    // chats of the background test too.
    let ok = FakeUpstream::start().await;
    let failing = FakeUpstream::start().await;
    failing.set_default(Reply::json(
        500,
        json!({"error": {"message": format!("upstream broke (key {KEY})")}}),
    ));
    let slow = FakeUpstream::start().await;
    slow.set_default(Reply::json(200, json!({"data": []})).delay(Duration::from_secs(5)));
    (ok, failing, slow)
}

fn endpoints(v: &Value, which: &str) -> Vec<Value> {
    v[which].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn health_probes_each_deployment_with_its_model_list_in_parallel() {
    let (ok, failing, slow) = three_upstreams().await;
    let yaml = format!(
        "model_list:\n{}{}{}general_settings:\n  master_key: {MASTER}\n  health_check_timeout: 1\n",
        entry("good", &ok.url()),
        entry("bad", &failing.url()),
        entry("slow", &slow.url()),
    );
    let config = Config::from_yaml_str(&yaml, "t").unwrap().config;
    let (base, _stop, _gw) = serve_app(Gateway::from_config(&config, &HttpClient::new())).await;

    // The master key is required.
    assert_eq!(get(&format!("{base}/health"), None).await.status, 401);
    assert_eq!(
        get(&format!("{base}/health"), Some("sk-wrong"))
            .await
            .status,
        401
    );

    let started = Instant::now();
    let a = get(&format!("{base}/health"), Some(MASTER)).await;
    let took = started.elapsed();
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["healthy_count"], 1, "{v}");
    assert_eq!(v["unhealthy_count"], 2, "{v}");
    // In parallel under the 1 s timeout: not 1 s per slow probe in a row, nor the slow 5 s.
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    let healthy = endpoints(&v, "healthy_endpoints");
    assert_eq!(healthy[0]["model_name"], "good");
    assert_eq!(healthy[0]["model"], "openai/gpt-4o-mini");
    assert_eq!(healthy[0]["health_check_method"], "GET /v1/models");
    let unhealthy = endpoints(&v, "unhealthy_endpoints");
    let by_group = |g: &str| {
        unhealthy
            .iter()
            .find(|e| e["model_name"] == g)
            .cloned()
            .unwrap_or_else(|| panic!("{g} not unhealthy: {v}"))
    };
    let bad = by_group("bad");
    let error = bad["error"].as_str().unwrap();
    assert!(error.starts_with("500 from the provider"), "{error}");
    assert_eq!(by_group("slow")["error"], "Timeout exceeded");
    // Keys are masked everywhere, also where the upstream echoed one in its error.
    let text = v.to_string();
    assert!(!text.contains(KEY), "{text}");
    assert_eq!(bad["api_key"], "sk-…89");

    // Each probe was the free model-list call, with the deployment's key, never a completion.
    for up in [&ok, &failing, &slow] {
        assert!(up.wait_for_hits(1, Duration::from_secs(2)).await);
        for r in up.requests() {
            assert_eq!(r.path(), "/v1/models");
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {KEY}").as_str())
            );
        }
    }

    // `?model=`: the model group (or `provider/model`) narrows the probes.
    let before = ok.hits();
    let v = get(&format!("{base}/health?model=bad"), Some(MASTER))
        .await
        .json();
    assert_eq!(
        (v["healthy_count"].as_u64(), v["unhealthy_count"].as_u64()),
        (Some(0), Some(1)),
        "{v}"
    );
    assert_eq!(ok.hits(), before, "only the asked deployment is probed");
    let v = get(
        &format!("{base}/health?model=nothing-like-it"),
        Some(MASTER),
    )
    .await
    .json();
    assert_eq!(v["healthy_count"], 0);
    assert_eq!(v["unhealthy_count"], 0);
    let a = get(&format!("{base}/health?model_id=unknown-id"), Some(MASTER)).await;
    assert_eq!(a.status, 404);
    a.error();
}

#[tokio::test]
async fn a_mock_deployment_is_probed_with_a_one_token_call() {
    let yaml = "model_list:\n  - model_name: m\n    litellm_params:\n      model: mock/echo\n";
    let config = Config::from_yaml_str(yaml, "t").unwrap().config;
    let (base, _stop, _gw) = serve_app(Gateway::from_config(&config, &HttpClient::new())).await;
    // No master key: /health is open, as LiteLLM's without one.
    let v = get(&format!("{base}/health"), None).await.json();
    assert_eq!(v["healthy_count"], 1, "{v}");
    assert_eq!(
        v["healthy_endpoints"][0]["health_check_method"],
        "chat (max_tokens 1)"
    );
}

#[tokio::test]
async fn background_checks_answer_the_last_report_and_cool_a_failing_deployment() {
    let (ok, failing, _slow) = three_upstreams().await;
    // One group, two deployments: the failing one is cooled by its failed probe.
    let yaml = format!(
        "model_list:\n{}{}general_settings:\n  master_key: {MASTER}\n  background_health_checks: true\n  health_check_interval: 1\n  health_check_cooldown: true\n  health_check_timeout: 1\n",
        entry("g", &ok.url()),
        entry("g", &failing.url()),
    );
    let config = Config::from_yaml_str(&yaml, "t").unwrap().config;
    let (base, _stop, gw) = serve_app(Gateway::from_config(&config, &HttpClient::new())).await;
    assert!(gw.prober().is_background());
    // The first background run reports within the interval.
    let deadline = Instant::now() + Duration::from_secs(5);
    let v = loop {
        let v = get(&format!("{base}/health"), Some(MASTER)).await.json();
        if v["healthy_count"].as_u64().unwrap_or(0) + v["unhealthy_count"].as_u64().unwrap_or(0)
            == 2
        {
            break v;
        }
        assert!(Instant::now() < deadline, "no background report: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(v["unhealthy_count"], 1, "{v}");
    // Answered from the last report: no probe per call.
    let hits = ok.hits() + failing.hits();
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(
            get(&format!("{base}/health"), Some(MASTER)).await.status,
            200
        );
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(
        ok.hits() + failing.hits() <= hits + 2,
        "at most one more background run"
    );
    // The failing deployment is cooled: chat goes to the healthy one only.
    for _ in 0..6 {
        let a = chat(&base, MASTER, "g").await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    }
    assert!(
        failing.requests().iter().all(|r| r.path() == "/v1/models"),
        "the cooled deployment got a chat"
    );
    assert!(
        ok.requests()
            .iter()
            .filter(|r| r.path() == "/v1/chat/completions")
            .count()
            >= 6
    );
    // The background runs go on.
    let seen = failing.hits();
    assert!(
        failing
            .wait_for_hits(seen + 1, Duration::from_secs(3))
            .await
    );
}

#[tokio::test]
async fn readiness_keeps_litellm_fields_with_the_callbacks_in_use() {
    let gw = Gateway::builder()
        .deployment(llmgate::provider::Deployment::new("m", "mock/echo"))
        .readiness_callbacks(["prometheus", "otel"])
        .build(&HttpClient::new())
        .unwrap();
    let (base, _stop, _gw) = serve_app(gw).await;
    let v = get(&format!("{base}/health/readiness"), None).await.json();
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["db"], "Not connected");
    assert_eq!(v["cache"], Value::Null);
    assert_eq!(v["litellm_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["success_callbacks"], json!(["prometheus", "otel"]));
    assert_eq!(v["use_aiohttp_transport"], false);
    for path in ["/health/liveliness", "/health/liveness"] {
        let a = get(&format!("{base}{path}"), None).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.json(), json!("I'm alive!"));
    }
}

#[tokio::test]
async fn routes_and_root_answer_and_list_what_is_served() {
    let up = FakeUpstream::start().await;
    let gov = Gov::start(
        &format!(
            "model_list:\n{}general_settings:\n  master_key: {MASTER}\n",
            entry("g", &up.url())
        ),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let v = get(&gov.url("/routes"), None).await.json();
    let paths: Vec<&str> = v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    for p in [
        "/v1/chat/completions",
        "/health",
        "/model/new",
        "/key/generate",
        "/health/readiness",
    ] {
        assert!(paths.contains(&p), "{p} not in {paths:?}");
    }
    let first = &v["routes"][0];
    assert_eq!(first["methods"], json!(["POST"]));
    assert!(first["name"].is_string() && first["endpoint"].is_string());
    let a = get(&gov.url("/"), None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["name"], "llmgate");
    // `/health` lists every endpoint: a plain virtual key is refused, the master key is not.
    let (key, _) = governance_common::new_key(&format!("http://{}", gov.addr), json!({})).await;
    let a = get(&gov.url("/health"), Some(&key)).await;
    assert_eq!(a.status, 403);
    a.error();
    assert_eq!(get(&gov.url("/health"), Some(MASTER)).await.status, 200);
    // Without governance the key routes are not listed (they are not served).
    let config = Config::from_yaml_str(
        "model_list:\n  - model_name: m\n    litellm_params: {model: mock/echo}\n",
        "t",
    )
    .unwrap()
    .config;
    let (base, _stop, _gw) = serve_app(Gateway::from_config(&config, &HttpClient::new())).await;
    let v = get(&format!("{base}/routes"), None).await.json();
    assert!(!v.to_string().contains("/key/generate"), "{v}");
    assert_eq!(get(&format!("{base}/key/generate"), None).await.status, 404);
}
