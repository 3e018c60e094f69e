//! The `llmgate` binary: `--check`, serving a config, and graceful shutdown on SIGTERM that lets an
//! in-flight stream finish.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{process::Command, time::Duration};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use serde_json::json;
use support::{
    gw,
    process::{Binary, TempFile},
    FakeUpstream, Reply,
};

const BIN: &str = env!("CARGO_BIN_EXE_llmgate");

fn write_config(text: &str) -> TempFile {
    TempFile::new("llmgate-test", "yaml", text)
}

#[test]
fn check_accepts_a_valid_config() {
    let cfg = write_config(llmgate::gateway::DEFAULT_CONFIG);
    let out = Command::new(BIN)
        .args(["--config"])
        .arg(&cfg.0)
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("config OK"));
}

#[test]
fn check_lists_every_problem_and_fails() {
    let cfg = write_config(
        "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      timeout: -1\n  - model_name: b\n    litellm_params:\n      api_base: http://x\nrouter_settings:\n  routing_strategy: fastest-please\n",
    );
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg.0)
        .arg("--check")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "model_list[0].litellm_params.timeout",
        "model_list[1].litellm_params.model",
        "router_settings.routing_strategy",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle}: {err}");
    }
    assert!(
        err.contains(&cfg.0.display().to_string()),
        "the file is named: {err}"
    );
}

#[test]
fn check_does_not_print_secrets() {
    let cfg = write_config("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      api_key: sk-super-secret-value\n      timeout: nope\ngeneral_settings:\n  master_key: sk-master-secret\n");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg.0)
        .arg("--check")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains("sk-super-secret-value") && !all.contains("sk-master-secret"),
        "{all}"
    );
}

#[tokio::test]
async fn serves_and_drains_a_stream_on_sigterm() {
    let up = FakeUpstream::start().await;
    let sse = support::chat_sse(&["one ", "two ", "three ", "four"]);
    let pieces: Vec<Bytes> = sse
        .split_inclusive("\n\n")
        .map(|s| Bytes::from(s.to_owned()))
        .collect();
    up.enqueue(Reply::chunked(
        200,
        "text/event-stream",
        pieces,
        Duration::from_millis(250),
    ));
    let cfg = write_config(&gw::openai_config("g", &up.url()));
    let bin = Binary::spawn(&cfg.0, &[]);
    let addr = bin.addr.clone();

    let resp = gw::open_stream(
        &format!("http://{addr}/v1/chat/completions"),
        &json!({"model": "g", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("data: "));

    // SIGTERM while the stream is in flight.
    let status = Command::new("kill")
        .args(["-TERM", &bin.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let mut rest = Vec::from(first.as_ref());
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            rest.extend_from_slice(&data);
        }
    }
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("four"), "the stream was cut: {text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    let exit = tokio::task::spawn_blocking(move || {
        let mut bin = bin;
        bin.child.wait()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    // It no longer accepts connections.
    assert!(std::net::TcpStream::connect(&addr).is_err());
}

/// A config without a master key or a database runs LiteLLM's database-free proxy: no store, no
/// spend log, nothing written beside the config.
#[tokio::test]
async fn no_master_key_no_database_writes_nothing() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, support::chat_completion("fine")));
    let dir = std::env::temp_dir().join(format!(
        "llmgate-nodb-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.yaml");
    std::fs::write(&cfg, gw::openai_config("g", &up.url())).unwrap();
    let bin = Binary::spawn(&cfg, &[]);
    let addr = bin.addr.clone();
    let answer = gw::post_json(
        &format!("http://{addr}/v1/chat/completions"),
        &json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert!(answer.headers.contains_key("x-litellm-response-cost"));
    // Key management needs a master key.
    let keys = gw::post_json(&format!("http://{addr}/key/generate"), &json!({})).await;
    assert!(keys.status >= 400, "{}", keys.status);
    drop(bin);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(files, vec![std::ffi::OsString::from("config.yaml")]);
}

/// The binary serves on `serve_per_thread`, whose per-request deadlines live on a shared timer
/// thread (`src/timer.rs`) rather than on each serving thread's runtime: a call timeout, the
/// `x-litellm-timeout` header and a stream's idle timeout still fire there, and a request that
/// answers in time is not cut.
#[tokio::test]
async fn timeouts_fire_on_the_serving_threads() {
    let up = FakeUpstream::start().await;
    let cfg = write_config(&format!(
        "{}      timeout: 1.0\n      stream_timeout: 0.3\nrouter_settings:\n  num_retries: 0\n",
        gw::openai_config("g", &up.url())
    ));
    let bin = Binary::spawn(&cfg.0, &[]);
    let url = format!("http://{}/v1/chat/completions", bin.addr);
    let chat = json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]});

    // In time: answered.
    up.enqueue(
        Reply::json(200, support::chat_completion("quick")).delay(Duration::from_millis(50)),
    );
    let ans = gw::post_json(&url, &chat).await;
    assert_eq!(ans.status, 200, "{:?}", ans.body);

    // The deployment's timeout.
    up.enqueue(Reply::json(200, support::chat_completion("late")).delay(Duration::from_secs(5)));
    let started = std::time::Instant::now();
    let ans = gw::post_json(&url, &chat).await;
    let took = started.elapsed();
    assert_eq!(ans.status, 408, "{:?}", ans.body);
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(4),
        "{took:?}"
    );

    // The header's, shorter than the deployment's.
    up.enqueue(Reply::json(200, support::chat_completion("late")).delay(Duration::from_secs(5)));
    let started = std::time::Instant::now();
    let ans = gw::send(
        http::Request::post(&url)
            .header("content-type", "application/json")
            .header("x-litellm-timeout", "0.1")
            .body(http_body_util::Full::new(Bytes::from(chat.to_string())))
            .unwrap(),
    )
    .await;
    assert_eq!(ans.status, 408, "{:?}", ans.body);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // A stream that sends one chunk and hangs: the chunk, then a timeout error event.
    let first = support::chat_sse(&["Hel"])
        .split("\n\n")
        .next()
        .unwrap()
        .to_owned()
        + "\n\n";
    up.enqueue(Reply::sse_then_hang(first));
    let mut body = chat.clone();
    body["stream"] = json!(true);
    let resp = gw::open_stream(&url, &body).await;
    assert_eq!(resp.status(), 200);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("chat.completion.chunk"), "{text}");
    assert!(text.contains("timeout"), "{text}");
}
