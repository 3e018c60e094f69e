//! Routing and reliability over real sockets: fake upstream deployments that fail on command, the
//! full gateway stack (fallback → retry → router → health → timeout → provider) in front.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{sync::Arc, time::Duration};

use http_body_util::BodyExt as _;
use llmgate::{
    clock::Clock,
    provider::Deployment,
    router::{Router, Strategy},
    types::chat::{ChatRequest, ChatResponse, Message},
    LlmError, LlmRequest, LlmResponse,
};
use serde_json::json;
use support::{chat_completion, chat_sse, gw, FakeUpstream, Reply};

const WAIT: Duration = Duration::from_secs(10);

/// One `model_list` entry pointing at `up`, with extra `litellm_params` lines.
fn entry(group: &str, model: &str, up: &FakeUpstream, extra: &str) -> String {
    let mut s = format!(
        "  - model_name: {group}\n    litellm_params:\n      model: openai/{model}\n      api_base: {}/v1\n      api_key: sk-up\n",
        up.url()
    );
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        s.push_str("      ");
        s.push_str(line.trim());
        s.push('\n');
    }
    s
}

fn config(entries: &[String], settings: &str) -> String {
    format!("model_list:\n{}{settings}", entries.concat())
}

fn chat(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn err_500() -> Reply {
    Reply::json(
        500,
        json!({"error": {"message": "boom", "type": "server_error", "param": null, "code": null}}),
    )
    .header("retry-after-ms", "1")
}

fn id_of(router: &Router, group: &str, model: &str) -> String {
    router
        .deployments(group)
        .find(|d| &*d.model == model)
        .map(|d| d.id.to_string())
        .unwrap()
}

fn router_of(yaml: &str) -> Router {
    let cfg = llmgate::config::Config::from_yaml_str(yaml, "t")
        .unwrap()
        .config;
    llmgate::gateway::Gateway::from_config(&cfg, &llmgate::provider::HttpClient::new())
        .router()
        .clone()
}

#[tokio::test]
async fn failover_to_a_healthy_deployment_with_headers() {
    let bad = FakeUpstream::start().await;
    bad.set_default(err_500());
    let good = FakeUpstream::start().await;
    let cfg = config(
        &[
            entry("g", "bad", &bad, "order: 1"),
            entry("g", "good", &good, "order: 2"),
        ],
        "router_settings:\n  num_retries: 2\n",
    );
    let gw = gw::TestGateway::start(&cfg).await;
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
    assert_eq!(ans.status, 200, "{}", String::from_utf8_lossy(&ans.body));
    assert_eq!((bad.hits(), good.hits()), (1, 1));
    let h = &ans.headers;
    assert_eq!(h["x-litellm-attempted-retries"], "1");
    assert_eq!(h["x-litellm-attempted-fallbacks"], "0");
    assert_eq!(h["x-litellm-model-group"], "g");
    assert_eq!(
        h["x-litellm-model-id"],
        id_of(&router_of(&cfg), "g", "good").as_str()
    );
    assert_eq!(
        h["x-litellm-model-api-base"],
        format!("{}/v1", good.url()).as_str()
    );
    assert!(h.contains_key("x-litellm-call-id"));
    let overhead: f64 = h["x-litellm-overhead-duration-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(overhead >= 0.0);
    assert_eq!(good.last_request().unwrap().json()["model"], "good");
}

#[tokio::test]
async fn exact_retry_counts_per_kind() {
    for (reply, settings, expected_hits, status) in [
        (err_500(), "  num_retries: 3\n", 4, 500),
        (
            Reply::json(429, json!({"error": {"message": "slow down", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}))
                .header("retry-after-ms", "1"),
            "  num_retries: 3\n  retry_policy:\n    RateLimitErrorRetries: 1\n",
            2,
            429,
        ),
        (
            Reply::json(400, json!({"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": null}})),
            "  num_retries: 3\n",
            1,
            400,
        ),
        (
            Reply::json(404, json!({"error": {"message": "no such model", "type": "invalid_request_error", "param": null, "code": "model_not_found"}})),
            "  num_retries: 3\n",
            1,
            404,
        ),
        (
            Reply::json(408, json!({"error": {"message": "slow", "type": "timeout", "param": null, "code": null}}))
                .header("retry-after-ms", "1"),
            "  num_retries: 1\n",
            2,
            408,
        ),
    ] {
        let up = FakeUpstream::start().await;
        up.set_default(reply);
        let cfg = config(&[entry("g", "m", &up, "")], &format!("router_settings:\n{settings}"));
        let gw = gw::TestGateway::start(&cfg).await;
        let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
        assert_eq!(ans.status, status, "{settings}");
        assert_eq!(up.hits(), expected_hits, "{settings} status {status}");
        assert_eq!(
            ans.headers["x-litellm-attempted-retries"],
            (expected_hits - 1).to_string().as_str()
        );
        ans.error();
    }
}

#[tokio::test]
async fn request_num_retries_and_connection_errors_retry() {
    // Nothing listens on this port: connection refused, an ApiConnection error, retried.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let good = FakeUpstream::start().await;
    let cfg = format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/dead\n      api_base: http://127.0.0.1:{port}/v1\n      api_key: sk-up\n      order: 1\n{}router_settings:\n  num_retries: 1\n",
        entry("g", "good", &good, "order: 2")
    );
    let gw = gw::TestGateway::start(&cfg).await;
    // The body asks for no retries (fewer than configured: honoured): the connection error
    // reaches the client.
    let mut body = chat("g");
    body["num_retries"] = json!(0);
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(ans.status, 502);
    assert_eq!(ans.error()["type"], "api_connection_error");
    // The body asks for 5, capped at the configured 1: the retry goes to the healthy deployment
    // at once.
    let mut body = chat("g");
    body["num_retries"] = json!(5);
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(ans.status, 200);
    assert_eq!(ans.headers["x-litellm-attempted-retries"], "1");
    assert_eq!(good.hits(), 1);
}

#[tokio::test]
async fn fallback_order_max_fallbacks_and_body_fallbacks() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let c = FakeUpstream::start().await;
    a.set_default(err_500());
    b.set_default(err_500());
    let entries = [
        entry("a", "a", &a, ""),
        entry("b", "b", &b, ""),
        entry("c", "c", &c, ""),
    ];
    let settings = "router_settings:\n  num_retries: 1\n  fallbacks: [{\"a\": [\"b\", \"c\"]}]\n";
    let gw = gw::TestGateway::start(&config(&entries, settings)).await;
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("a")).await;
    assert_eq!(ans.status, 200);
    // Each group gets its own retries: a twice, b twice, then c.
    assert_eq!((a.hits(), b.hits(), c.hits()), (2, 2, 1));
    assert_eq!(ans.headers["x-litellm-attempted-fallbacks"], "2");
    assert_eq!(ans.headers["x-litellm-model-group"], "c");
    assert_eq!(c.last_request().unwrap().json()["model"], "c");

    // max_fallbacks 1: only b is tried; the client gets a's error.
    let settings = "router_settings:\n  num_retries: 0\n  max_fallbacks: 1\n  fallbacks: [{\"a\": [\"b\", \"c\"]}]\n";
    let gw2 = gw::TestGateway::start(&config(&entries, settings)).await;
    let (a0, b0, c0) = (a.hits(), b.hits(), c.hits());
    let ans = gw::post_json(&gw2.url("/v1/chat/completions"), &chat("a")).await;
    assert_eq!(ans.status, 500);
    assert_eq!(ans.error()["message"], "boom");
    assert_eq!(ans.headers["x-litellm-attempted-fallbacks"], "1");
    assert_eq!((a.hits() - a0, b.hits() - b0, c.hits() - c0), (1, 1, 0));

    // Body fallbacks replace the config's; disable_fallbacks turns them off.
    let mut body = chat("a");
    body["fallbacks"] = json!(["c"]);
    let ans = gw::post_json(&gw2.url("/v1/chat/completions"), &body).await;
    assert_eq!(ans.status, 200);
    assert_eq!(b.hits() - b0, 1);
    let mut body = chat("a");
    body["disable_fallbacks"] = json!(true);
    let ans = gw::post_json(&gw2.url("/v1/chat/completions"), &body).await;
    assert_eq!(ans.status, 500);
    assert_eq!(ans.headers["x-litellm-attempted-fallbacks"], "0");
}

#[tokio::test]
async fn context_window_fallback_from_pre_call_check() {
    let small = FakeUpstream::start().await;
    let big = FakeUpstream::start().await;
    let entries = [
        format!(
            "{}    model_info:\n      max_input_tokens: 10\n",
            entry("small", "s", &small, "")
        ),
        entry("big", "b", &big, ""),
    ];
    let settings = "router_settings:\n  enable_pre_call_checks: true\n  context_window_fallbacks: [{\"small\": [\"big\"]}]\n";
    let gw = gw::TestGateway::start(&config(&entries, settings)).await;
    let long =
        json!({"model": "small", "messages": [{"role": "user", "content": "word ".repeat(200)}]});
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &long).await;
    assert_eq!(ans.status, 200);
    assert_eq!((small.hits(), big.hits()), (0, 1));
    assert_eq!(ans.headers["x-litellm-attempted-fallbacks"], "1");
    // Short prompts stay on the small group.
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("small")).await;
    assert_eq!(ans.status, 200);
    assert_eq!(small.hits(), 1);
}

#[tokio::test]
async fn cooldown_skips_a_rate_limited_deployment_then_all_cooling_is_429() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    a.set_default(
        Reply::json(429, json!({"error": {"message": "slow down", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}))
            .header("retry-after", "30"),
    );
    let cfg = config(
        &[
            entry("g", "a", &a, "order: 1"),
            entry("g", "b", &b, "order: 2"),
        ],
        "router_settings:\n  num_retries: 1\n  allowed_fails: 0\n  cooldown_time: 30\n",
    );
    let gw = gw::TestGateway::start(&cfg).await;
    for _ in 0..5 {
        let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
        assert_eq!(ans.status, 200);
    }
    // a answered 429 once and cooled down at once; order 1 would otherwise always pick it.
    assert_eq!((a.hits(), b.hits()), (1, 5));

    // Now b fails too (allowed_fails 0): it cools, and the whole group is cooling.
    b.set_default(err_500());
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
    assert_eq!(ans.status, 500);
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
    assert_eq!(ans.status, 429);
    let e = ans.error();
    assert_eq!(e["type"], "rate_limit_error");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("model=g"), "{msg}");
    let retry_after: u64 = ans.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(a.hits(), 1, "cooling deployments get no traffic");
}

#[tokio::test]
async fn cooldown_expires() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    a.enqueue(err_500());
    let cfg = config(
        &[
            entry("g", "a", &a, "order: 1"),
            entry("g", "b", &b, "order: 2"),
        ],
        "router_settings:\n  num_retries: 0\n  allowed_fails: 0\n  cooldown_time: 0.3\n",
    );
    let clock = Clock::manual();
    let gw = gw::TestGateway::start_on(&cfg, &clock).await;
    assert_eq!(
        gw::post_json(&gw.url("/v1/chat/completions"), &chat("g"))
            .await
            .status,
        500
    );
    assert_eq!(
        gw::post_json(&gw.url("/v1/chat/completions"), &chat("g"))
            .await
            .status,
        200
    );
    assert_eq!((a.hits(), b.hits()), (1, 1));
    // The gateway's clock is a manual one (real sockets rule out tokio's paused clock): until it
    // moves, a stays cooled however long the test takes.
    clock.advance(Duration::from_millis(299));
    assert_eq!(
        gw::post_json(&gw.url("/v1/chat/completions"), &chat("g"))
            .await
            .status,
        200
    );
    assert_eq!((a.hits(), b.hits()), (1, 2), "a is still cooling");
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        gw::post_json(&gw.url("/v1/chat/completions"), &chat("g"))
            .await
            .status,
        200
    );
    assert_eq!((a.hits(), b.hits()), (2, 2));
}

#[tokio::test]
async fn disable_cooldowns_keeps_failing_deployment_in_rotation() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    a.set_default(err_500());
    let cfg = config(
        &[
            entry("g", "a", &a, "order: 1"),
            entry("g", "b", &b, "order: 2"),
        ],
        "router_settings:\n  num_retries: 0\n  allowed_fails: 0\n  disable_cooldowns: true\n",
    );
    let gw = gw::TestGateway::start(&cfg).await;
    for _ in 0..3 {
        assert_eq!(
            gw::post_json(&gw.url("/v1/chat/completions"), &chat("g"))
                .await
                .status,
            500
        );
    }
    assert_eq!((a.hits(), b.hits()), (3, 0));
}

#[tokio::test]
async fn timeout_cancels_upstream_and_stream_idle_timeout_ends_with_error_event() {
    let up = FakeUpstream::start().await;
    // A body that starts and then stalls for far longer than the timeout.
    up.enqueue(Reply::chunked(
        200,
        "application/json",
        vec!["{\"id\":".into(), "\"x\"}".into()],
        Duration::from_secs(30),
    ));
    let cfg = config(
        &[entry("g", "m", &up, "timeout: 0.3\nstream_timeout: 0.3")],
        "router_settings:\n  num_retries: 0\n",
    );
    let gw = gw::TestGateway::start(&cfg).await;
    let started = std::time::Instant::now();
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
    assert_eq!(ans.status, 408);
    assert_eq!(ans.error()["type"], "timeout_error");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        up.wait_for_disconnect(WAIT).await,
        "the upstream call was cancelled"
    );

    // A stream that sends one chunk and hangs: the client gets the chunk, then an error event.
    let first = chat_sse(&["Hel"]).split("\n\n").next().unwrap().to_owned() + "\n\n";
    up.enqueue(Reply::sse_then_hang(first));
    let mut body = chat("g");
    body["stream"] = json!(true);
    let resp = gw::open_stream(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(resp.status(), 200);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("chat.completion.chunk"), "{text}");
    assert!(text.contains("timeout"), "{text}");
    assert!(up.wait_for_disconnects(2, WAIT).await);
}

#[tokio::test]
async fn stream_failing_before_first_byte_falls_back() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    // a sends the stream's headers and then nothing: time-to-first-chunk runs out.
    a.set_default(Reply::sse_then_hang(": keep-alive\n\n"));
    b.set_default(Reply::sse(chat_sse(&["from ", "b"])));
    let cfg = config(
        &[
            entry("a", "a", &a, "stream_timeout: 0.3"),
            entry("b", "b", &b, ""),
        ],
        "router_settings:\n  num_retries: 0\n  fallbacks: [{\"a\": [\"b\"]}]\n",
    );
    let gw = gw::TestGateway::start(&cfg).await;
    let mut body = chat("a");
    body["stream"] = json!(true);
    let resp = gw::open_stream(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-litellm-attempted-fallbacks"], "1");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("from ") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    assert_eq!((a.hits(), b.hits()), (1, 1));
}

#[tokio::test]
async fn x_litellm_timeout_header_wins() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("late")).delay(Duration::from_secs(5)));
    let cfg = config(
        &[entry("g", "m", &up, "")],
        "router_settings:\n  num_retries: 0\n",
    );
    let gw = gw::TestGateway::start(&cfg).await;
    let started = std::time::Instant::now();
    let ans = gw::send(
        http::Request::post(gw.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .header("x-litellm-timeout", "0.2")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                serde_json::to_vec(&chat("g")).unwrap(),
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(ans.status, 408);
    assert!(started.elapsed() < Duration::from_secs(3));
    // The body's `timeout` works the same.
    let mut body = chat("g");
    body["timeout"] = json!(0.2);
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(ans.status, 408);
}

#[tokio::test]
async fn aliases_and_wildcards() {
    let up = FakeUpstream::start().await;
    let cfg = format!(
        "model_list:\n  - model_name: openai/*\n    litellm_params:\n      model: openai/*\n      api_base: {0}/v1\n      api_key: sk-up\n{1}router_settings:\n  model_group_alias: {{\"gpt-4\": \"gpt-4o\", \"hidden\": {{\"model\": \"gpt-4o\", \"hidden\": true}}}}\n",
        up.url(),
        entry("gpt-4o", "gpt-4o-2024", &up, "")
    );
    let gw = gw::TestGateway::start(&cfg).await;
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("openai/o3-mini")).await;
    assert_eq!(ans.status, 200);
    assert_eq!(up.last_request().unwrap().json()["model"], "o3-mini");
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("gpt-4")).await;
    assert_eq!(ans.status, 200);
    assert_eq!(up.last_request().unwrap().json()["model"], "gpt-4o-2024");
    let models = gw::send(
        http::Request::get(gw.url("/v1/models"))
            .body(Default::default())
            .unwrap(),
    )
    .await;
    let ids: Vec<String> = models.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        ids.contains(&"gpt-4".to_owned()) && !ids.contains(&"hidden".to_owned()),
        "{ids:?}"
    );
    // An unknown model: LiteLLM's 400 and invalid-model text (issue 21).
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("nope")).await;
    assert_eq!(ans.status, 400);
    assert!(ans.error()["message"]
        .as_str()
        .unwrap()
        .contains("Invalid model name passed in model=nope."));
}

#[tokio::test]
async fn least_busy_picks_the_idle_deployment() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let slow = Reply::json(200, chat_completion("slow")).delay(Duration::from_millis(800));
    a.set_default(slow.clone());
    b.set_default(slow);
    let cfg = config(
        &[entry("g", "a", &a, ""), entry("g", "b", &b, "")],
        "router_settings:\n  routing_strategy: least-busy\n",
    );
    let gw = Arc::new(gw::TestGateway::start(&cfg).await);
    for _ in 0..3 {
        let (a0, b0) = (a.hits(), b.hits());
        let g1 = gw.clone();
        let first = tokio::spawn(async move {
            gw::post_json(&g1.url("/v1/chat/completions"), &chat("g")).await
        });
        // Wait until the first request is in flight at one deployment.
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        while a.hits() + b.hits() == a0 + b0 {
            tick.tick().await;
        }
        let first_on_a = a.hits() > a0;
        let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
        assert_eq!(ans.status, 200);
        assert_eq!(first.await.unwrap().status, 200);
        // The second went to the other one.
        if first_on_a {
            assert_eq!(b.hits(), b0 + 1);
        } else {
            assert_eq!(a.hits(), a0 + 1);
        }
    }
}

#[tokio::test]
async fn latency_based_prefers_the_fast_deployment() {
    let slow = FakeUpstream::start().await;
    let fast = FakeUpstream::start().await;
    slow.set_default(Reply::json(200, chat_completion("slow")).delay(Duration::from_millis(150)));
    let cfg = config(
        &[entry("g", "slow", &slow, ""), entry("g", "fast", &fast, "")],
        "router_settings:\n  routing_strategy: latency-based-routing\n",
    );
    let gw = gw::TestGateway::start(&cfg).await;
    // Deployments without samples are tried first, so both get measured.
    for _ in 0..20 {
        if slow.hits() > 0 && fast.hits() > 0 {
            break;
        }
        assert_eq!(
            gw::post_json(&gw.url("/v1/chat/completions"), &chat("g"))
                .await
                .status,
            200
        );
    }
    assert!(slow.hits() > 0 && fast.hits() > 0);
    let before = slow.hits();
    for _ in 0..10 {
        assert_eq!(
            gw::post_json(&gw.url("/v1/chat/completions"), &chat("g"))
                .await
                .status,
            200
        );
    }
    assert_eq!(
        slow.hits(),
        before,
        "all later requests went to the fast deployment"
    );
}

#[tokio::test]
async fn usage_based_rpm_limits_and_cost_based_cheapest() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let cfg = config(
        &[entry("g", "a", &a, "rpm: 2"), entry("g", "b", &b, "rpm: 1")],
        "router_settings:\n  routing_strategy: usage-based-routing-v2\n  num_retries: 0\n",
    );
    let gw = gw::TestGateway::start(&cfg).await;
    for _ in 0..3 {
        assert_eq!(
            gw::post_json(&gw.url("/v1/chat/completions"), &chat("g"))
                .await
                .status,
            200
        );
    }
    assert_eq!((a.hits(), b.hits()), (2, 1));
    let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
    assert_eq!(ans.status, 429);
    assert!(ans.error()["message"].as_str().unwrap().contains("rpm"));
    assert!(ans.headers.contains_key("retry-after"));

    let cheap = FakeUpstream::start().await;
    let dear = FakeUpstream::start().await;
    let cfg = config(
        &[
            entry(
                "c",
                "dear",
                &dear,
                "input_cost_per_token: 0.00001\noutput_cost_per_token: 0.00003",
            ),
            entry(
                "c",
                "cheap",
                &cheap,
                "input_cost_per_token: 0.0000001\noutput_cost_per_token: 0.0000003",
            ),
        ],
        "router_settings:\n  routing_strategy: cost-based-routing\n",
    );
    let gw = gw::TestGateway::start(&cfg).await;
    for _ in 0..5 {
        assert_eq!(
            gw::post_json(&gw.url("/v1/chat/completions"), &chat("c"))
                .await
                .status,
            200
        );
    }
    assert_eq!((cheap.hits(), dear.hits()), (5, 0));
}

fn ok_service() -> impl tower::Service<
    LlmRequest,
    Response = LlmResponse,
    Error = LlmError,
    Future = std::future::Ready<Result<LlmResponse, LlmError>>,
> + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(|_r: LlmRequest| {
        std::future::ready(Ok(LlmResponse::chat(ChatResponse::default())))
    })
}

#[test]
fn weighted_shuffle_distribution_within_bounds() {
    let dep = |m: &str, w: f64| {
        let mut d = Deployment::new("g", m);
        d.weight = Some(w);
        Arc::new(d)
    };
    let router = Router::builder()
        .strategy(Strategy::SimpleShuffle)
        .deployment(dep("openai/a", 1.0), ok_service())
        .deployment(dep("openai/b", 3.0), ok_service())
        .build();
    let req = LlmRequest::chat(ChatRequest {
        model: "g".into(),
        messages: vec![Message::new("user", "hi")],
        ..ChatRequest::default()
    });
    let n = 20_000;
    let a = (0..n)
        .filter(|_| &*router.select(&req).unwrap().model == "a")
        .count();
    // Binomial(20000, 0.25): sd ≈ 61; 6 sd either side.
    assert!((4_634..=5_366).contains(&a), "a picked {a} of {n}");

    // rpm weights when no weight is set.
    let dep = |m: &str, rpm: u64| {
        let mut d = Deployment::new("g", m);
        d.rpm = Some(rpm);
        Arc::new(d)
    };
    let router = Router::builder()
        .deployment(dep("openai/a", 900), ok_service())
        .deployment(dep("openai/b", 100), ok_service())
        .build();
    let a = (0..n)
        .filter(|_| &*router.select(&req).unwrap().model == "a")
        .count();
    // Binomial(20000, 0.9): sd ≈ 42.
    assert!((17_745..=18_255).contains(&a), "a picked {a} of {n}");
}
