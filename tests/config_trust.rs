//! Start-up fails closed and every config key acts or is refused, with the real binary:
//! a master key that resolves to nothing stops it, `LITELLM_MASTER_KEY` guards it, a gateway
//! without authentication says so, refused keys stop it unless the operator accepts the risk,
//! `include:` and `litellm_params` defaults act, and `--check` lists every problem in one run.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Output};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;
use support::{
    gw,
    process::{Binary, TempFile},
    FakeUpstream, Reply,
};

const BIN: &str = env!("CARGO_BIN_EXE_llmgate");

fn config(text: &str) -> TempFile {
    TempFile::new("llmgate-trust", "yaml", text)
}

/// Runs the binary to its exit (start-up that must fail, or `--check`), polling with a thread
/// sleep: the binary exits within milliseconds, and nothing else runs on the caller's thread.
#[allow(clippy::disallowed_methods)]
fn run(cfg: &TempFile, args: &[&str], env: &[(&str, &str)]) -> Output {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(&cfg.0)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("DATABASE_URL")
        .env_remove("LITELLM_MASTER_KEY")
        .envs(env.iter().copied());
    // A start-up that wrongly succeeds would serve forever: bound the wait.
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "llmgate did not exit: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn chat(bin: &Binary, key: Option<&str>, model: &str) -> gw::Answer {
    let mut req = http::Request::post(bin.url("/v1/chat/completions"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    gw::send(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await
}

#[test]
fn a_master_key_that_resolves_to_nothing_stops_start_up() {
    let cfg = config(
        "model_list:\n  - model_name: mock\n    litellm_params: {model: mock/x}\n\
         general_settings:\n  master_key: os.environ/LLMGATE_TEST_NO_SUCH_MASTER\n",
    );
    // Before: the key was "treated as absent" and the gateway served everyone.
    let out = run(&cfg, &[], &[]);
    assert!(!out.status.success(), "started open: {}", text(&out));
    let all = text(&out);
    assert!(all.contains("general_settings.master_key"), "{all}");
    assert!(all.contains("LLMGATE_TEST_NO_SUCH_MASTER"), "{all}");
    assert!(!all.contains("llmgate listening"), "{all}");
    // Set but empty: the same.
    let out = run(&cfg, &[], &[("LLMGATE_TEST_NO_SUCH_MASTER", "")]);
    assert!(!out.status.success(), "started open: {}", text(&out));
    // --check reports it as an error, not a warning.
    let out = run(&cfg, &["--check"], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("error: general_settings.master_key"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn litellm_master_key_from_the_environment_guards_every_call() {
    let cfg = config("model_list:\n  - model_name: mock\n    litellm_params: {model: mock/x}\n");
    let bin = Binary::spawn_env(
        &cfg.0,
        &[("LITELLM_MASTER_KEY", "sk-env-master-4242")],
        &["AUTHENTICATION IS OFF"],
    );
    assert_eq!(chat(&bin, None, "mock").await.status, 401);
    assert_eq!(chat(&bin, Some("sk-wrong"), "mock").await.status, 401);
    let ok = chat(&bin, Some("sk-env-master-4242"), "mock").await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let log = bin.log();
    assert!(
        log.contains("auth=\"LITELLM_MASTER_KEY\"") || log.contains("auth=LITELLM_MASTER_KEY"),
        "{log}"
    );
    assert!(!log.contains("sk-env-master-4242"), "{log}");
}

#[tokio::test]
async fn the_config_master_key_wins_over_the_environment() {
    let cfg = config(
        "model_list:\n  - model_name: mock\n    litellm_params: {model: mock/x}\n\
         general_settings:\n  master_key: sk-config-master\n",
    );
    let bin = Binary::spawn_env(&cfg.0, &[("LITELLM_MASTER_KEY", "sk-env-master")], &[]);
    assert_eq!(chat(&bin, Some("sk-env-master"), "mock").await.status, 401);
    assert_eq!(
        chat(&bin, Some("sk-config-master"), "mock").await.status,
        200
    );
}

#[tokio::test]
async fn a_gateway_without_authentication_says_so() {
    let cfg = config("model_list:\n  - model_name: mock\n    litellm_params: {model: mock/x}\n");
    let bin = Binary::spawn(&cfg.0, &[]);
    assert_eq!(chat(&bin, None, "mock").await.status, 200);
    let log = bin.log();
    assert!(log.contains("AUTHENTICATION IS OFF"), "{log}");
    assert!(log.contains("no master key is configured"), "{log}");
    assert!(
        log.contains("auth=\"none\"") || log.contains("auth=none"),
        "{log}"
    );
}

#[tokio::test]
async fn a_refused_key_stops_start_up_unless_the_operator_accepts_it() {
    let text_of = |allow: &str| {
        format!(
            "model_list:\n  - model_name: mock\n    litellm_params: {{model: mock/x}}\n\
             guardrails:\n  - guardrail_name: pii-mask\n    litellm_params: {{guardrail: presidio, mode: pre_call}}\n\
             litellm_settings:\n  success_callback: [datadog]\n\
             general_settings:\n  allowed_routes: [/chat/completions]\n{allow}"
        )
    };
    // Before: "config OK", and no guardrail, callback or route restriction ran.
    let cfg = config(&text_of(""));
    let out = run(&cfg, &[], &[]);
    assert!(!out.status.success(), "started: {}", text(&out));
    let all = text(&out);
    for key in [
        "guardrails",
        "litellm_settings.success_callback",
        "general_settings.allowed_routes",
    ] {
        assert!(
            all.contains(&format!("{key}: not supported by llmgate yet")),
            "{key}: {all}"
        );
    }
    let cfg = config(&text_of("  allow_unsupported_config: true\n"));
    let bin = Binary::spawn(&cfg.0, &[]);
    assert_eq!(chat(&bin, None, "mock").await.status, 200);
    let log = bin.log();
    assert!(
        log.contains("guardrails: not supported by llmgate yet")
            && log.contains("allow_unsupported_config is true"),
        "{log}"
    );
}

#[test]
fn check_lists_every_problem_in_one_run() {
    let dir = std::env::temp_dir().join(format!(
        "llmgate-check-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        "include: [models-missing.yaml]\n\
         model_list:\n\
         \x20 - model_name: gpt\n    litellm_params: {model: openai/gpt-4o, temprature: 0.1}\n\
         \x20 - model_name: house\n    litellm_params: {model: openai/house-model-x, api_base: 'http://127.0.0.1:9/v1'}\n\
         litellm_settings:\n  callbacks: [otel, datadog]\n  fallbacks: [{gpt: [claude]}]\n\
         router_settings:\n  model_group_alias: {big: nothing}\n  routing_strategy: fastest\n\
         general_settings:\n  master_key: hunter2\n",
    )
    .unwrap();
    let cfg = TempFile(path);
    let out = run(&cfg, &["--check"], &[]);
    assert!(!out.status.success());
    let all = text(&out);
    for needle in [
        // errors
        "error: include[0]: cannot read included file",
        "models-missing.yaml",
        "error: litellm_settings.callbacks: not supported by llmgate yet",
        "error: router_settings.routing_strategy",
        // warnings
        "warning: model_list[0].litellm_params.temprature: unknown key; ignored (did you mean `temperature`?)",
        "warning: litellm_settings.fallbacks[0].gpt: the fallback \"claude\" is not a model group",
        "warning: router_settings.model_group_alias.big: the alias points at \"nothing\"",
        "no price known for `openai/house-model-x`",
        "weak master key",
    ] {
        assert!(all.contains(needle), "--check lacks {needle:?}:\n{all}");
    }
    // In the user's words: no Rust type names.
    for rust in ["Option<", "f64", "u32", "serde", "ConfigError"] {
        assert!(!all.contains(rust), "{rust} in:\n{all}");
    }
    assert!(!all.contains("hunter2"), "{all}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn include_and_litellm_params_defaults_act() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, support::chat_completion("fine")));
    let dir = std::env::temp_dir().join(format!(
        "llmgate-include-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(
        dir.join("conf.d/models.yaml"),
        format!(
            "model_list:\n  - model_name: included\n    litellm_params:\n      model: openai/gpt-4o\n      api_base: {}/v1\n      api_key: sk-up\n      temperature: 0.25\n      max_tokens: 77\n",
            up.url()
        ),
    )
    .unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        "include: [conf.d/models.yaml]\nmodel_list:\n  - model_name: mock\n    litellm_params: {model: mock/x}\n",
    )
    .unwrap();
    let bin = Binary::spawn(&path, &[]);
    let answer = chat(&bin, None, "included").await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let sent = up.last_request().unwrap().json();
    assert_eq!(sent["temperature"], json!(0.25));
    assert_eq!(sent["max_tokens"], json!(77));
    // The request's own value wins over the deployment's default.
    let req = http::Request::post(bin.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({"model": "included", "temperature": 0.9, "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
        )))
        .unwrap();
    assert_eq!(gw::send(req).await.status, 200);
    let sent = up.last_request().unwrap().json();
    assert_eq!(sent["temperature"], json!(0.9));
    assert_eq!(sent["max_tokens"], json!(77));
    drop(bin);
    let _ = std::fs::remove_dir_all(&dir);
}
