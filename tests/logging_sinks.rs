//! Logging sinks (issue 22 item 4): Langfuse's ingestion API, LiteLLM's generic webhook and a
//! JSON-lines file get one record per call, batched off the request path; real HTTP
//! receivers, one fast, one slow and one dead: no request is slowed, drops are counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use governance_common::{free_port, post, TempDir};
use llmgate::{
    callbacks::Callbacks,
    config::Config,
    gateway::Gateway,
    provider::{Deployment, HttpClient},
    server::{serve, ServeConfig},
    sinks::{GenericApiWriter, JsonlWriter, LangfuseWriter, QueueOptions, QueuedSink},
};
use serde_json::{json, Value};
use support::{chat_completion, chat_sse, FakeUpstream, Reply};

/// Serves `gateway.app()` on loopback; returns its base URL and a stop handle.
async fn serve_app(gateway: &Gateway) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(
        listener,
        gateway.app(),
        ServeConfig::default().grace_period(Duration::from_secs(2)),
        async {
            let _ = rx.await;
        },
    ));
    (format!("http://{addr}"), tx)
}

fn chat(stream: bool, text: &str) -> Value {
    json!({"model": "g", "stream": stream, "user": "end-7",
           "messages": [{"role": "user", "content": text}]})
}

fn config(upstream: &str, receiver: &str, log: &str, extra: &str) -> String {
    format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\nenvironment_variables:\n  LANGFUSE_PUBLIC_KEY: pk-lf-test\n  LANGFUSE_SECRET_KEY: sk-lf-test\n  LANGFUSE_HOST: {receiver}\n  GENERIC_LOGGER_ENDPOINT: {receiver}/generic\n  GENERIC_LOGGER_HEADERS: x-team=ops,authorization=Bearer hook-secret\n  LLMGATE_CALLBACK_LOG_FILE: {log}\nlitellm_settings:\n  num_retries: 0\n  success_callback: [langfuse, generic_api, jsonl]\n  failure_callback: [generic_api]\n{extra}"
    )
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sink_stats(gw: &Gateway, name: &str) -> Arc<llmgate::sinks::SinkStats> {
    gw.callbacks()
        .sinks()
        .iter()
        .find(|s| s.name() == name)
        .and_then(|s| s.stats())
        .unwrap_or_else(|| panic!("sink {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn langfuse_generic_api_and_jsonl_get_every_call_in_their_shapes() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("the answer")));
    let receiver = FakeUpstream::start().await;
    receiver.set_default(Reply::json(207, json!({"successes": [], "errors": []})));
    let dir = TempDir::new();
    let log = dir.0.join("calls.jsonl");
    let yaml = config(&up.url(), &receiver.url(), &log.display().to_string(), "");
    let loaded = Config::from_yaml_str(&yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    let gw = Gateway::from_config(&loaded.config, &HttpClient::new());
    assert!(gw.warnings().is_empty(), "{:?}", gw.warnings());
    let (base, _stop) = serve_app(&gw).await;
    let url = format!("{base}/v1/chat/completions");

    // Two complete answers, one stream, one upstream failure.
    for i in 0..2 {
        assert_eq!(
            post(&url, None, &chat(false, &format!("question {i}")))
                .await
                .status,
            200
        );
    }
    up.enqueue(Reply::sse(chat_sse(&["str", "eamed"])));
    let r = post(&url, None, &chat(true, "stream please")).await;
    assert_eq!(r.status, 200);
    up.enqueue(Reply::json(
        400,
        json!({"error": {"message": "nope", "type": "invalid_request_error"}}),
    ));
    assert_eq!(post(&url, None, &chat(false, "fail")).await.status, 400);

    // generic_api: 3 successes and the failure; langfuse: the 3 successes; jsonl: 3.
    let generic = || -> Vec<Value> {
        receiver
            .requests()
            .iter()
            .filter(|r| r.path() == "/generic")
            .flat_map(|r| r.json().as_array().cloned().unwrap_or_default())
            .collect()
    };
    let langfuse = || -> Vec<Value> {
        receiver
            .requests()
            .iter()
            .filter(|r| r.path() == "/api/public/ingestion")
            .flat_map(|r| r.json()["batch"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    wait_until("generic_api's 4 records", || generic().len() == 4).await;
    wait_until("langfuse's 6 events", || langfuse().len() == 6).await;
    wait_until("3 jsonl lines", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() == 3)
    })
    .await;

    // The webhook: LiteLLM's StandardLoggingPayload, with the configured headers.
    let hook = receiver
        .requests()
        .into_iter()
        .find(|r| r.path() == "/generic")
        .unwrap();
    assert_eq!(hook.header("x-team"), Some("ops"));
    assert_eq!(hook.header("authorization"), Some("Bearer hook-secret"));
    let records = generic();
    let ok: Vec<&Value> = records
        .iter()
        .filter(|r| r["status"] == "success")
        .collect();
    assert_eq!(ok.len(), 3);
    for r in &ok {
        assert_eq!(r["model_group"], "g");
        assert_eq!(r["model"], "gpt-4o-mini");
        assert_eq!(r["custom_llm_provider"], "openai");
        assert_eq!(r["total_tokens"], 12);
        assert_eq!(r["prompt_tokens"], 5);
        assert_eq!(r["completion_tokens"], 7);
        assert_eq!(r["end_user"], "end-7");
        assert!(
            (r["response_cost"].as_f64().unwrap() - 4.95e-6).abs() < 1e-12,
            "{r}"
        );
        assert!(r["startTime"].as_f64().unwrap() <= r["endTime"].as_f64().unwrap());
        // Message content: on by default.
        assert_eq!(r["messages"][0]["role"], "user");
    }
    let stream = ok
        .iter()
        .find(|r| r["stream"] == true)
        .expect("the stream's record");
    assert_eq!(stream["response"], "streamed");
    assert_eq!(stream["messages"][0]["content"], "stream please");
    let failed = records.iter().find(|r| r["status"] == "failure").unwrap();
    assert_eq!(failed["error_information"]["error_code"], "400");
    assert_eq!(failed["error_information"]["error_class"], "bad_request");

    // Langfuse: basic auth with the keys, a trace and a generation per call.
    let ingest = receiver
        .requests()
        .into_iter()
        .find(|r| r.path() == "/api/public/ingestion")
        .unwrap();
    // base64("pk-lf-test:sk-lf-test")
    assert_eq!(
        ingest.header("authorization"),
        Some("Basic cGstbGYtdGVzdDpzay1sZi10ZXN0")
    );
    let events = langfuse();
    let traces: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "trace-create")
        .collect();
    let gens: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "generation-create")
        .collect();
    assert_eq!((traces.len(), gens.len()), (3, 3));
    for g in &gens {
        let b = &g["body"];
        assert!(traces.iter().any(|t| t["body"]["id"] == b["traceId"]));
        assert_eq!(b["model"], "gpt-4o-mini");
        assert_eq!(b["usage"]["input"], 5);
        assert_eq!(b["usage"]["output"], 7);
        assert_eq!(b["level"], "DEFAULT");
        assert!(b["startTime"].as_str().unwrap().ends_with('Z'));
    }
    assert!(gens.iter().any(|g| g["body"]["output"] == "the answer"));

    // The file: one StandardLoggingPayload per line.
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines
        .iter()
        .all(|l| l["status"] == "success" && l["total_tokens"] == 12));
    for name in ["langfuse", "generic_api", "jsonl"] {
        let s = sink_stats(&gw, name);
        assert_eq!((s.dropped(), s.failed()), (0, 0), "{name}");
    }
    assert_eq!(sink_stats(&gw, "generic_api").written(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_off_message_logging_keeps_content_out() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("secret answer")));
    let receiver = FakeUpstream::start().await;
    receiver.set_default(Reply::json(200, json!({})));
    let dir = TempDir::new();
    let log = dir.0.join("calls.jsonl");
    let yaml = config(
        &up.url(),
        &receiver.url(),
        &log.display().to_string(),
        "  turn_off_message_logging: true\n",
    );
    let loaded = Config::from_yaml_str(&yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    let gw = Gateway::from_config(&loaded.config, &HttpClient::new());
    let (base, _stop) = serve_app(&gw).await;
    let url = format!("{base}/v1/chat/completions");
    assert_eq!(
        post(&url, None, &chat(false, "secret question"))
            .await
            .status,
        200
    );
    wait_until("the webhook and langfuse", || {
        receiver.requests().len() >= 2
    })
    .await;
    wait_until("the file", || {
        std::fs::read_to_string(&log).is_ok_and(|t| !t.is_empty())
    })
    .await;
    let mut all = String::new();
    for r in receiver.requests() {
        all.push_str(r.body_str());
    }
    all.push_str(&std::fs::read_to_string(&log).unwrap());
    assert!(all.contains("gpt-4o-mini"), "records were written: {all}");
    assert!(!all.contains("secret"), "content logged: {all}");
}

#[tokio::test]
async fn an_unknown_callback_or_a_sink_without_its_variables_is_refused() {
    let Err(err) = Config::from_yaml_str(
        "model_list: []\nlitellm_settings:\n  success_callback: [datadog]\n",
        "t.yaml",
    ) else {
        panic!("an unknown callback loaded");
    };
    assert!(err.to_string().contains("datadog"), "{err}");
    let Err(err) = Config::from_yaml_str(
        "model_list: []\nlitellm_settings:\n  callbacks: [langfuse]\n",
        "t.yaml",
    ) else {
        panic!("langfuse without its keys loaded");
    };
    assert!(err.to_string().contains("LANGFUSE_PUBLIC_KEY"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_dead_receivers_slow_no_request_and_drops_are_counted() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hi")));
    let fast = FakeUpstream::start().await;
    fast.set_default(Reply::json(200, json!({})));
    let slow = FakeUpstream::start().await;
    slow.set_default(Reply::json(200, json!({})).delay(Duration::from_secs(3)));
    let dead = format!("http://127.0.0.1:{}", free_port());
    let dir = TempDir::new();

    // Small queues and batches, so that the slow receiver fills its queue quickly.
    let small = QueueOptions {
        capacity: 4,
        batch: 2,
        flush: Duration::from_millis(20),
    };
    let fast_sink = Arc::new(QueuedSink::start(
        "fast",
        GenericApiWriter::new(format!("{}/hook", fast.url()), Vec::new()),
        QueueOptions::default(),
    ));
    let slow_sink = Arc::new(QueuedSink::start(
        "slow",
        GenericApiWriter::new(format!("{}/hook", slow.url()), Vec::new()),
        small,
    ));
    let dead_sink = Arc::new(QueuedSink::start(
        "dead",
        LangfuseWriter::new(
            &dead,
            &llmgate::secret::Secret::new("pk"),
            &llmgate::secret::Secret::new("sk"),
        ),
        small,
    ));
    let file_sink = Arc::new(QueuedSink::start(
        "file",
        JsonlWriter::new(dir.0.join("x.jsonl")),
        QueueOptions::default(),
    ));
    let callbacks = Callbacks::new()
        .sink(fast_sink.clone())
        .sink(slow_sink.clone())
        .sink(dead_sink.clone())
        .sink(file_sink.clone());
    let mut dep = Deployment::new("g", "openai/gpt-4o-mini");
    dep.api_base = Some(format!("{}/v1", up.url()).into());
    dep.api_key = Some(llmgate::secret::Secret::new("sk-up"));

    // The same traffic through a gateway without sinks, then with: the slowest request with
    // sinks stays far below the slow receiver's 3 s, and near the no-sink baseline.
    let plain = Gateway::builder()
        .deployment(dep.clone())
        .build(&HttpClient::new())
        .unwrap();
    let with = Gateway::builder()
        .deployment(dep)
        .callbacks(callbacks)
        .build(&HttpClient::new())
        .unwrap();
    let (plain_base, _s1) = serve_app(&plain).await;
    let (with_base, _s2) = serve_app(&with).await;
    const N: u64 = 40;
    let mut worst = [Duration::ZERO; 2];
    for (i, base) in [&plain_base, &with_base].into_iter().enumerate() {
        let url = format!("{base}/v1/chat/completions");
        for _ in 0..N {
            let t = Instant::now();
            assert_eq!(post(&url, None, &chat(false, "hi")).await.status, 200);
            worst[i] = worst[i].max(t.elapsed());
        }
    }
    eprintln!(
        "slowest request: without sinks {:?}, with sinks {:?}",
        worst[0], worst[1]
    );
    assert!(
        worst[1] < Duration::from_millis(500),
        "a request waited on a sink: {:?}",
        worst[1]
    );

    // Every record offered was queued or dropped; the slow one dropped most, counted.
    let slow_stats = slow_sink.counters();
    assert_eq!(slow_stats.queued() + slow_stats.dropped(), N);
    assert!(slow_stats.dropped() > 0, "{slow_stats:?}");
    // The dead receiver: batches fail (connection refused), counted.
    let dead_stats = dead_sink.counters();
    assert_eq!(dead_stats.queued() + dead_stats.dropped(), N);
    wait_until("the dead receiver's failures", || dead_stats.failed() > 0).await;
    assert_eq!(dead_stats.written(), 0);
    // The fast one and the file got everything.
    let fast_stats = fast_sink.counters();
    wait_until("the fast receiver's records", || fast_stats.written() == N).await;
    assert_eq!(fast_stats.dropped(), 0);
    let received: usize = fast
        .requests()
        .iter()
        .map(|r| r.json().as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(received as u64, N);
    let file_stats = file_sink.counters();
    wait_until("the file's records", || file_stats.written() == N).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_what_the_sinks_still_hold() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("answer")));
    let receiver = FakeUpstream::start().await;
    receiver.set_default(Reply::json(200, json!({})));
    let dir = TempDir::new();
    let log = dir.0.join("calls.jsonl");
    let yaml = config(&up.url(), &receiver.url(), &log.display().to_string(), "");
    let loaded = Config::from_yaml_str(&yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    let gw = Gateway::from_config(&loaded.config, &HttpClient::new());
    let (base, stop) = serve_app(&gw).await;
    let url = format!("{base}/v1/chat/completions");
    for i in 0..3 {
        let r = post(&url, None, &chat(false, &format!("q{i}"))).await;
        assert_eq!(r.status, 200);
    }
    // Straight to shutdown: the sinks batch for up to a second, so the records are still queued.
    let _ = stop.send(());
    let generic = sink_stats(&gw, "generic_api");
    let t0 = Instant::now();
    gw.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        generic.written(),
        3,
        "every queued record written before shutdown returned"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(lines.lines().count(), 3, "{lines}");
}
