//! Prometheus metrics (issue 22 item 2): a real Prometheus server (Debian's `prometheus`)
//! scrapes llmgate's `GET /metrics` every second, with the bearer key that
//! `require_auth_for_metrics_endpoint` asks for, while the test sends known traffic over
//! sockets; PromQL answers from Prometheus's HTTP API must match what was sent.
//!
//! The server binary: `LLMGATE_TEST_PROMETHEUS` (set by `.ci/test`, where a missing binary is a
//! failure), else `prometheus` on `PATH`; without either the Prometheus test says so and
//! returns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use governance_common::{call_with, free_port, get, new_key, post, Gov, TempDir, MASTER};
use llmgate::governance::BuildOptions;
use serde_json::{json, Value};
use support::{chat_completion, chat_sse, FakeUpstream, Reply};

fn config(upstream: &str) -> String {
    format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\ngeneral_settings:\n  master_key: {MASTER}\nlitellm_settings:\n  num_retries: 0\n  callbacks: [prometheus]\n  require_auth_for_metrics_endpoint: true\n"
    )
}

/// The Prometheus binary, or `None` (with a note) when this machine has none and CI did not
/// name one.
fn prometheus_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("LLMGATE_TEST_PROMETHEUS") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "LLMGATE_TEST_PROMETHEUS={} is not a file",
            p.display()
        );
        return Some(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("prometheus"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!(
            "prometheus not installed and LLMGATE_TEST_PROMETHEUS not set: skipping (CI sets it)"
        );
    }
    found
}

/// A Prometheus server scraping `target` every second; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Prometheus {
    fn start(bin: &PathBuf, target: &str, bearer: &str) -> Self {
        let dir = TempDir::new();
        let port = free_port();
        let cfg = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: llmgate\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n    metrics_path: /metrics\n    authorization:\n      type: Bearer\n      credentials: {bearer}\n    static_configs:\n      - targets: ['{target}']\n"
        );
        let cfg_path = dir.0.join("prometheus.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(dir.0.join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_ready(&self) {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Full<bytes::Bytes>>();
            let ok = match client.get(self.url("/-/ready").parse().unwrap()).await {
                Ok(r) => r.status() == 200,
                Err(_) => false,
            };
            if ok {
                return;
            }
            assert!(Instant::now() < until, "prometheus not ready in 30s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The instant-query result vector of `promql`.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", promql)
            .finish();
        let a = get(&self.url(&format!("/api/v1/query?{q}")), None).await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        let v = a.json();
        assert_eq!(v["status"], "success", "{v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of `promql` (a scalar aggregation), if any.
    async fn value(&self, promql: &str) -> Option<f64> {
        let r = self.query(promql).await;
        r.first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|s| s.parse().ok())
    }

    /// Waits until `promql` equals `want` (Prometheus scrapes every second).
    async fn expect(&self, promql: &str, want: f64) {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.value(promql).await;
            if got.is_some_and(|g| (g - want).abs() <= want.abs().mul_add(1e-9, 1e-12)) {
                return;
            }
            assert!(
                Instant::now() < until,
                "{promql}: Prometheus says {got:?}, the test sent {want}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chat(stream: bool, user: Option<&str>) -> Value {
    let mut v =
        json!({"model": "g", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    if let Some(u) = user {
        v["user"] = json!(u);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_needs_a_key_when_asked_and_speaks_the_text_format() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(
        &config(&up.url()),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    // No key, a wrong key: 401 with the OpenAI error JSON.
    let a = get(&gw.url("/metrics"), None).await;
    assert_eq!(a.status, 401, "{}", String::from_utf8_lossy(&a.body));
    assert!(a.json()["error"]["message"].is_string());
    assert_eq!(get(&gw.url("/metrics"), Some("sk-wrong")).await.status, 401);
    // One call, then the exposition has it.
    let (key, token) = new_key(&base, json!({"key_alias": "alpha", "max_budget": 1.0})).await;
    let r = post(
        &gw.url("/v1/chat/completions"),
        Some(&key),
        &chat(false, Some("end-1")),
    )
    .await;
    assert_eq!(r.status, 200);
    // A virtual key may scrape too.
    let m = get(&gw.url("/metrics"), Some(&key)).await;
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    let text = String::from_utf8(m.body.to_vec()).unwrap();
    assert!(
        text.contains("# TYPE litellm_proxy_total_requests_metric counter"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("litellm_proxy_total_requests_metric_total{"))
        .expect("a total requests sample");
    for part in [
        "end_user=\"end-1\"",
        &format!("hashed_api_key=\"{token}\""),
        "api_key_alias=\"alpha\"",
        "requested_model=\"g\"",
        "status_code=\"200\"",
        "route=\"/chat/completions\"",
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
    assert!(line.ends_with(" 1.0"), "{line}");
    assert!(text.contains("# TYPE litellm_request_total_latency_metric histogram"));
    assert!(text.contains("litellm_request_total_latency_metric_bucket{"));
    assert!(text.contains("le=\"0.00625\""), "LiteLLM's buckets");
    // The remaining budget: 1.0 minus this call's cost.
    let budget = text
        .lines()
        .find(|l| l.starts_with("litellm_remaining_api_key_budget_metric{"))
        .expect("a budget gauge");
    let v: f64 = budget.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(v < 1.0 && v > 0.99, "{budget}");
    // The deployment's state, from the router.
    assert!(
        text.lines()
            .any(|l| l.starts_with("litellm_deployment_state{")
                && l.contains("litellm_model_name=\"gpt-4o-mini\"")
                && l.ends_with(" 0")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_what_the_traffic_was() {
    let Some(bin) = prometheus_bin() else {
        return;
    };
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(
        &config(&up.url()),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    let prom = Prometheus::start(&bin, &gw.addr.to_string(), MASTER);
    prom.wait_ready().await;

    let (alpha, _) = new_key(&base, json!({"key_alias": "alpha"})).await;
    let (beta, _) = new_key(&base, json!({"key_alias": "beta"})).await;
    let url = gw.url("/v1/chat/completions");
    // Known traffic: 5 complete answers for alpha, 3 for beta, 2 streams for beta, 4 upstream
    // 400s for alpha, 1 call refused by auth at the edge (counted as LiteLLM counts it: a
    // failed request with status 401).
    for _ in 0..5 {
        assert_eq!(
            post(&url, Some(&alpha), &chat(false, None)).await.status,
            200
        );
    }
    for _ in 0..3 {
        assert_eq!(
            post(&url, Some(&beta), &chat(false, None)).await.status,
            200
        );
    }
    for _ in 0..2 {
        up.enqueue(Reply::sse(chat_sse(&["a", "b", "c"])));
        let r = call_with("POST", &url, Some(&beta), Some(&chat(true, None)), &[]).await;
        assert_eq!(r.status, 200);
        assert!(String::from_utf8_lossy(&r.body).contains("[DONE]"));
    }
    for _ in 0..4 {
        up.enqueue(Reply::json(
            400,
            json!({"error": {"message": "bad thing", "type": "invalid_request_error"}}),
        ));
        assert_eq!(
            post(&url, Some(&alpha), &chat(false, None)).await.status,
            400
        );
    }
    assert_eq!(
        post(&url, Some("sk-nope"), &chat(false, None)).await.status,
        401
    );

    prom.expect("up{job=\"llmgate\"}", 1.0).await;
    prom.expect("sum(litellm_proxy_total_requests_metric_total)", 15.0)
        .await;
    prom.expect(
        "sum(litellm_proxy_failed_requests_metric_total{exception_status=\"401\",route=\"/chat/completions\"})",
        1.0,
    )
    .await;
    prom.expect(
        "sum(litellm_proxy_total_requests_metric_total{api_key_alias=\"alpha\"})",
        9.0,
    )
    .await;
    prom.expect(
        "sum(litellm_proxy_failed_requests_metric_total{exception_status=\"400\",exception_class=\"bad_request\"})",
        4.0,
    )
    .await;
    prom.expect(
        "sum(litellm_requests_metric_total{api_key_alias=\"beta\",model=\"gpt-4o-mini\"})",
        5.0,
    )
    .await;
    // 10 successes × 12 tokens (5 in, 7 out).
    prom.expect("sum(litellm_total_tokens_metric_total)", 120.0)
        .await;
    prom.expect("sum(litellm_input_tokens_metric_total)", 50.0)
        .await;
    prom.expect(
        "sum(litellm_output_tokens_metric_total{requested_model=\"g\"})",
        70.0,
    )
    .await;
    // gpt-4o-mini: 5 × 1.5e-7 + 7 × 6e-7 per call.
    prom.expect("sum(litellm_spend_metric_total)", 10.0 * 4.95e-6)
        .await;
    prom.expect("sum(litellm_request_total_latency_metric_count)", 10.0)
        .await;
    prom.expect("sum(litellm_llm_api_latency_metric_count)", 10.0)
        .await;
    prom.expect("sum(litellm_overhead_latency_metric_count)", 10.0)
        .await;
    // Time to first token: the streams only.
    prom.expect("sum(litellm_llm_api_time_to_first_token_metric_count)", 2.0)
        .await;
    prom.expect(
        "sum(litellm_deployment_success_responses_total{litellm_model_name=\"gpt-4o-mini\",api_provider=\"openai\"})",
        10.0,
    )
    .await;
    // Per attempt on the deployment: the 4 upstream 400s, and every call.
    prom.expect(
        "sum(litellm_deployment_failure_responses_total{exception_status=\"400\",api_key_alias=\"alpha\"})",
        4.0,
    )
    .await;
    prom.expect("sum(litellm_deployment_total_requests_total)", 14.0)
        .await;
    // Every request was well under 5 s: the le="5.0" bucket holds them all.
    prom.expect(
        "sum(litellm_request_total_latency_metric_bucket{le=\"5.0\"})",
        10.0,
    )
    .await;
    prom.expect("sum(litellm_deployment_state)", 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_deployment_is_counted_per_attempt_and_its_cooldown_shows() {
    let good = FakeUpstream::start().await;
    good.set_default(Reply::json(200, chat_completion("fine")));
    let bad = FakeUpstream::start().await;
    bad.set_default(Reply::json(
        500,
        json!({"error": {"message": "boom", "type": "server_error"}}),
    ));
    // Two deployments; the bad one cools down after its first failure; one retry each call.
    let yaml = format!(
        "model_list:\n  - model_name: g\n    litellm_params: {{model: openai/gpt-4o-mini, api_base: {}/v1, api_key: k, order: 1}}\n  - model_name: g\n    litellm_params: {{model: openai/gpt-4o, api_base: {}/v1, api_key: k, order: 2}}\ngeneral_settings:\n  master_key: {MASTER}\nlitellm_settings:\n  num_retries: 1\n  allowed_fails: 0\n  cooldown_time: 60\n  callbacks: [prometheus]\n",
        bad.url(),
        good.url()
    );
    let gw = Gov::start(
        &yaml,
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let url = gw.url("/v1/chat/completions");
    for _ in 0..3 {
        assert_eq!(
            post(&url, Some(MASTER), &chat(false, None)).await.status,
            200
        );
    }
    let text = String::from_utf8(get(&gw.url("/metrics"), None).await.body.to_vec()).unwrap();
    let line = |prefix: &str, parts: &[&str]| -> Option<String> {
        text.lines()
            .find(|l| l.starts_with(prefix) && parts.iter().all(|p| l.contains(p)))
            .map(str::to_owned)
    };
    // The bad deployment failed once (then cooled down: not tried again), the good one
    // answered all three calls.
    let fail = line(
        "litellm_deployment_failure_responses_total{",
        &[
            "litellm_model_name=\"gpt-4o-mini\"",
            "exception_status=\"500\"",
        ],
    )
    .expect(&text);
    assert!(fail.ends_with(" 1.0"), "{fail}");
    let ok = line(
        "litellm_deployment_success_responses_total{",
        &["litellm_model_name=\"gpt-4o\""],
    )
    .expect(&text);
    assert!(ok.ends_with(" 3.0"), "{ok}");
    let cooled = line(
        "litellm_deployment_cooled_down_total{",
        &[
            "litellm_model_name=\"gpt-4o-mini\"",
            "exception_status=\"500\"",
        ],
    )
    .expect(&text);
    assert!(cooled.ends_with(" 1.0"), "{cooled}");
    let state = line(
        "litellm_deployment_state{",
        &["litellm_model_name=\"gpt-4o-mini\""],
    )
    .expect(&text);
    assert!(state.ends_with(" 2"), "{state}");
    // The client saw three successes: the proxy-level counters say so.
    let total = line(
        "litellm_proxy_total_requests_metric_total{",
        &["status_code=\"200\""],
    )
    .expect(&text);
    assert!(total.ends_with(" 3.0"), "{total}");
    assert!(
        line("litellm_proxy_failed_requests_metric_total{", &[]).is_none(),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_refusals_fallbacks_and_wildcard_deployments_reach_prometheus() {
    let Some(bin) = prometheus_bin() else {
        return;
    };
    let good = FakeUpstream::start().await;
    good.set_default(Reply::json(200, chat_completion("fine")));
    let limited = FakeUpstream::start().await;
    limited.set_default(Reply::json(
        429,
        json!({"error": {"message": "slow down", "type": "rate_limit_error"}}),
    ));
    let broken = FakeUpstream::start().await;
    broken.set_default(Reply::json(
        500,
        json!({"error": {"message": "boom", "type": "server_error"}}),
    ));
    let (g, l, b) = (good.url(), limited.url(), broken.url());
    // primary (429s) falls back to backup (answers); doomed (500s) falls back to also-doomed
    // (500s); `openai/*` is a wildcard deployment on the good upstream.
    let yaml = format!(
        "model_list:\n  - model_name: primary\n    litellm_params: {{model: openai/gpt-4o-mini, api_base: {l}/v1, api_key: k}}\n  - model_name: backup\n    litellm_params: {{model: openai/gpt-4o, api_base: {g}/v1, api_key: k}}\n  - model_name: doomed\n    litellm_params: {{model: openai/gpt-4o-mini, api_base: {b}/v1, api_key: k}}\n  - model_name: also-doomed\n    litellm_params: {{model: openai/gpt-4o, api_base: {b}/v1, api_key: k}}\n  - model_name: \"openai/*\"\n    litellm_params: {{model: \"openai/*\", api_base: {g}/v1, api_key: k}}\nrouter_settings:\n  num_retries: 0\n  fallbacks:\n    - primary: [backup]\n    - doomed: [also-doomed]\ngeneral_settings:\n  master_key: {MASTER}\nlitellm_settings:\n  callbacks: [prometheus]\n"
    );
    let gw = Gov::start(
        &yaml,
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let prom = Prometheus::start(&bin, &gw.addr.to_string(), MASTER);
    prom.wait_ready().await;
    let url = gw.url("/v1/chat/completions");
    let ask =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..2 {
        let r = post(&url, Some(MASTER), &ask("primary")).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("x-litellm-attempted-fallbacks"), Some("1"));
    }
    assert_eq!(post(&url, Some(MASTER), &ask("doomed")).await.status, 500);
    for _ in 0..3 {
        let r = post(&url, Some(MASTER), &ask("openai/gpt-4.1-nano")).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    // Refused at the edge: no key (401, body never read), a body that is not a request (400).
    assert_eq!(post(&url, None, &ask("primary")).await.status, 401);
    assert_eq!(post(&url, Some(MASTER), &json!([1, 2])).await.status, 400);
    // A model nobody serves: LiteLLM's 400, counted as the client saw it.
    assert_eq!(post(&url, Some(MASTER), &ask("no-such")).await.status, 400);

    prom.expect("up{job=\"llmgate\"}", 1.0).await;
    prom.expect(
        "sum(litellm_deployment_successful_fallbacks_total{requested_model=\"primary\",fallback_model=\"backup\",exception_status=\"429\",exception_class=\"rate_limit\"})",
        2.0,
    )
    .await;
    prom.expect(
        "sum(litellm_deployment_failed_fallbacks_total{requested_model=\"doomed\",fallback_model=\"also-doomed\",exception_status=\"500\"})",
        1.0,
    )
    .await;
    prom.expect("sum(litellm_deployment_failed_fallbacks_total)", 1.0)
        .await;
    prom.expect("sum(litellm_deployment_successful_fallbacks_total)", 2.0)
        .await;
    // The wildcard deployment's attempts, labelled with the model each call named.
    prom.expect(
        "sum(litellm_deployment_success_responses_total{litellm_model_name=\"gpt-4.1-nano\",api_provider=\"openai\"})",
        3.0,
    )
    .await;
    prom.expect(
        "sum(litellm_deployment_total_requests_total{litellm_model_name=\"gpt-4.1-nano\"})",
        3.0,
    )
    .await;
    // Latency per output token: each success on a deployment with output tokens (2 + 3).
    prom.expect(
        "sum(litellm_deployment_latency_per_output_token_count)",
        5.0,
    )
    .await;
    prom.expect(
        "sum(litellm_deployment_latency_per_output_token_bucket{le=\"+Inf\"})",
        5.0,
    )
    .await;
    // Edge refusals: in the proxy-level counters, with LiteLLM's route.
    prom.expect(
        "sum(litellm_proxy_failed_requests_metric_total{exception_status=\"401\",exception_class=\"authentication\",route=\"/chat/completions\"})",
        1.0,
    )
    .await;
    prom.expect(
        "sum(litellm_proxy_failed_requests_metric_total{exception_status=\"400\",requested_model=\"\"})",
        1.0,
    )
    .await;
    prom.expect(
        "sum(litellm_proxy_failed_requests_metric_total{exception_status=\"400\",requested_model=\"no-such\",exception_class=\"bad_request\"})",
        1.0,
    )
    .await;
    // 2 + 1 + 3 calls that reached the stack, 2 refused at the edge, 1 unknown model.
    prom.expect("sum(litellm_proxy_total_requests_metric_total)", 9.0)
        .await;
}

/// Issue 22's rate-limit gauges per key and team: a key with rpm and tpm limits in a team with an
/// rpm limit, a few calls, then PromQL on LiteLLM's gauges. The fake provider sends its own
/// `x-ratelimit-remaining-requests`; the provider gauge shows the provider's number and the key
/// gauges the gateway's, although both travel in headers of the same name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_and_team_rate_limit_gauges_reach_prometheus_apart_from_the_providers() {
    let Some(bin) = prometheus_bin() else {
        return;
    };
    let up = FakeUpstream::start().await;
    up.set_default(
        Reply::json(200, chat_completion("hello"))
            .header("x-ratelimit-remaining-requests", "4321")
            .header("x-ratelimit-remaining-tokens", "765432"),
    );
    let gw = Gov::start(
        &config(&up.url()),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    let prom = Prometheus::start(&bin, &gw.addr.to_string(), MASTER);
    prom.wait_ready().await;
    let team = post(
        &gw.url("/team/new"),
        Some(MASTER),
        &json!({"team_id": "t-lim", "rpm_limit": 5}),
    )
    .await;
    assert_eq!(team.status, 200, "{}", String::from_utf8_lossy(&team.body));
    let (key, token) = new_key(
        &base,
        json!({"key_alias": "limited", "team_id": "t-lim", "rpm_limit": 10, "tpm_limit": 1000}),
    )
    .await;
    let (free, _) = new_key(&base, json!({"key_alias": "free"})).await;
    let url = gw.url("/v1/chat/completions");
    // 4 calls of 12 tokens (5 in, 7 out); the client sees the gateway's tightest bucket (the
    // team's: 5 − 4 = 1), never the provider's 4321.
    for i in 1..=4 {
        let r = post(&url, Some(&key), &chat(false, None)).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let left = (5 - i).to_string();
        assert_eq!(
            r.header("x-ratelimit-remaining-requests"),
            Some(left.as_str())
        );
    }
    // A key without limits: no rate-limit series of its own.
    assert_eq!(
        post(&url, Some(&free), &chat(false, None)).await.status,
        200
    );

    let k = format!("hashed_api_key=\"{token}\",api_key_alias=\"limited\",model=\"g\"");
    prom.expect(
        &format!("litellm_remaining_api_key_requests_for_model{{{k}}}"),
        6.0,
    )
    .await;
    prom.expect(
        &format!("litellm_remaining_api_key_tokens_for_model{{{k}}}"),
        952.0, // 1000 − 4 × 12
    )
    .await;
    let t = "team=\"t-lim\",model=\"g\"";
    prom.expect(
        &format!("litellm_remaining_team_requests_for_model{{{t}}}"),
        1.0,
    )
    .await;
    prom.expect(&format!("litellm_team_rpm_limit{{{t}}}"), 5.0)
        .await;
    // One series per limited scope; no tpm on the team; nothing for the free key.
    prom.expect("count(litellm_remaining_api_key_requests_for_model)", 1.0)
        .await;
    prom.expect("count(litellm_remaining_team_requests_for_model)", 1.0)
        .await;
    assert!(prom.query("litellm_team_tpm_limit").await.is_empty());
    assert!(prom
        .query("litellm_remaining_team_tokens_for_model")
        .await
        .is_empty());
    // The provider's own numbers, per deployment and caller.
    prom.expect(
        &format!("litellm_remaining_requests{{model_group=\"g\",api_provider=\"openai\",hashed_api_key=\"{token}\"}}"),
        4321.0,
    )
    .await;
    prom.expect("max(litellm_remaining_tokens)", 765_432.0)
        .await;
    prom.expect("min(litellm_remaining_requests)", 4321.0).await;

    // The team's fifth call is its last; the sixth is refused, and the gauge says 0.
    assert_eq!(post(&url, Some(&key), &chat(false, None)).await.status, 200);
    let r = post(&url, Some(&key), &chat(false, None)).await;
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    prom.expect(
        &format!("litellm_remaining_team_requests_for_model{{{t}}}"),
        0.0,
    )
    .await;
    prom.expect(
        &format!("litellm_remaining_api_key_tokens_for_model{{{k}}}"),
        940.0, // 1000 − 5 × 12
    )
    .await;
}

/// Issue 22: refusals made by auth inside the stack (a model the key may not call), at the edge
/// with a known key (a blocked key), and by the budget layer are counted in
/// `litellm_proxy_total_requests_metric` / `litellm_proxy_failed_requests_metric` with the
/// caller's key, the model asked for, the status and the error class.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_budget_refusals_reach_prometheus_with_the_callers_key() {
    let Some(bin) = prometheus_bin() else {
        return;
    };
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(
        &config(&up.url()),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    let prom = Prometheus::start(&bin, &gw.addr.to_string(), MASTER);
    prom.wait_ready().await;
    let url = gw.url("/v1/chat/completions");
    let ask =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});

    // A key for another model group: LiteLLM's 401 key_model_access_denied, twice.
    let (narrow, narrow_token) =
        new_key(&base, json!({"key_alias": "narrow", "models": ["other"]})).await;
    for _ in 0..2 {
        let r = post(&url, Some(&narrow), &ask("g")).await;
        assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["error"]["type"], "key_model_access_denied");
    }
    // A blocked key: refused at the edge, its labels known.
    let (blocked, blocked_token) = new_key(&base, json!({"key_alias": "blocked"})).await;
    let b = post(
        &gw.url("/key/block"),
        Some(MASTER),
        &json!({"key": blocked}),
    )
    .await;
    assert_eq!(b.status, 200, "{}", String::from_utf8_lossy(&b.body));
    assert_eq!(post(&url, Some(&blocked), &ask("g")).await.status, 401);
    // A key over its budget: the first call spends past it, the second is refused.
    let (poor, poor_token) = new_key(
        &base,
        json!({"key_alias": "poor", "max_budget": 0.000_000_1}),
    )
    .await;
    assert_eq!(post(&url, Some(&poor), &ask("g")).await.status, 200);
    let refused = post(&url, Some(&poor), &ask("g")).await;
    let budget_status = refused.status;
    assert!(
        (400..500).contains(&budget_status),
        "{budget_status}: {}",
        String::from_utf8_lossy(&refused.body)
    );

    prom.expect("up{job=\"llmgate\"}", 1.0).await;
    prom.expect(
        &format!("sum(litellm_proxy_failed_requests_metric_total{{hashed_api_key=\"{narrow_token}\",api_key_alias=\"narrow\",requested_model=\"g\",exception_status=\"401\",exception_class=\"authentication\",route=\"/chat/completions\"}})"),
        2.0,
    )
    .await;
    prom.expect(
        &format!("sum(litellm_proxy_total_requests_metric_total{{hashed_api_key=\"{narrow_token}\",status_code=\"401\"}})"),
        2.0,
    )
    .await;
    prom.expect(
        &format!("sum(litellm_proxy_failed_requests_metric_total{{hashed_api_key=\"{blocked_token}\",api_key_alias=\"blocked\",exception_status=\"401\"}})"),
        1.0,
    )
    .await;
    prom.expect(
        &format!("sum(litellm_proxy_failed_requests_metric_total{{hashed_api_key=\"{poor_token}\",requested_model=\"g\",exception_status=\"{budget_status}\"}})"),
        1.0,
    )
    .await;
    // 2 + 1 + 2 calls, one success among them.
    prom.expect("sum(litellm_proxy_total_requests_metric_total)", 5.0)
        .await;
    prom.expect("sum(litellm_proxy_failed_requests_metric_total)", 4.0)
        .await;
}
