//! A custom provider registered by value, beside a built-in one, over real sockets: the setup of
//! `examples/custom_provider.rs` (included here as a module), and the same from a config.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/custom_provider.rs"]
mod example;

use std::time::Duration;

use llmgate::{
    config::Config,
    gateway::Gateway,
    provider::{HttpClient, Providers, RegisterError},
    server::{serve, ServeConfig},
};
use serde_json::json;

mod support;
use support::gw::post_json;

/// Serves `gateway` on a loopback port until the returned sender is dropped.
async fn start(gateway: &Gateway) -> (String, tokio::sync::oneshot::Sender<()>) {
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
    (format!("http://{addr}"), tx)
}

fn chat(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]})
}

/// Both providers answer; the custom one's answer comes from its API, named as `mycorp`.
async fn both_answer(base: &str) {
    let corp = post_json(&format!("{base}/v1/chat/completions"), &chat("corp")).await;
    assert_eq!(corp.status, 200, "{:?}", corp.body);
    let v = corp.json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "mycorp says: hello there"
    );
    assert_eq!(
        corp.headers
            .get("x-litellm-model-api-base")
            .and_then(|h| h.to_str().ok())
            .map(|b| b.starts_with("http://127.0.0.1:")),
        Some(true),
        "{:?}",
        corp.headers
    );

    let mock = post_json(&format!("{base}/v1/chat/completions"), &chat("mock")).await;
    assert_eq!(mock.status, 200, "{:?}", mock.body);
    assert!(mock.json()["choices"][0]["message"]["content"]
        .as_str()
        .is_some_and(|t| !t.is_empty() && !t.starts_with("mycorp says")));
}

/// An operation the custom provider does not implement: a clear 400 naming both.
async fn unsupported_is_400(base: &str) {
    let embed = post_json(
        &format!("{base}/v1/embeddings"),
        &json!({"model": "corp", "input": "hello"}),
    )
    .await;
    assert_eq!(embed.status, 400, "{:?}", embed.body);
    let err = embed.error();
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("mycorp") && msg.contains("embeddings"),
        "{msg}"
    );
}

#[tokio::test]
async fn builder_gateway_serves_custom_and_builtin_providers() {
    let api = example::mycorp_api().await.unwrap();
    let gateway = example::gateway(&format!("http://{api}")).expect("valid settings");
    assert!(
        gateway
            .warnings()
            .iter()
            .all(|w| !w.contains("not supported")),
        "{:?}",
        gateway.warnings()
    );
    let (base, _stop) = start(&gateway).await;
    both_answer(&base).await;
    unsupported_is_400(&base).await;
}

#[tokio::test]
async fn config_deployments_use_a_registered_custom_provider() {
    let api = example::mycorp_api().await.unwrap();
    let yaml = format!(
        "model_list:\n\
         - model_name: corp\n  litellm_params: {{model: mycorp/corp-large, api_base: 'http://{api}'}}\n\
         - model_name: mock\n  litellm_params: {{model: mock/echo}}\n"
    );
    let config = Config::from_yaml_str(&yaml, "t.yaml").unwrap().config;
    let providers = Providers::builtin().register(example::MyCorp).unwrap();
    let gateway = Gateway::from_config_with(&config, &HttpClient::new(), providers);
    assert!(
        gateway
            .warnings()
            .iter()
            .all(|w| !w.contains("not supported")),
        "{:?}",
        gateway.warnings()
    );
    let (base, _stop) = start(&gateway).await;
    both_answer(&base).await;
    unsupported_is_400(&base).await;
}

#[tokio::test]
async fn unknown_prefix_still_fails_with_the_current_message() {
    // Without the registration, `mycorp/…` is an unknown provider, as before.
    let yaml = "model_list:\n- model_name: corp\n  litellm_params: {model: mycorp/corp-large}\n";
    let config = Config::from_yaml_str(yaml, "t.yaml").unwrap().config;
    let gateway = Gateway::from_config(&config, &HttpClient::new());
    assert!(
        gateway.warnings().iter().any(|w| w.contains(
            "model_list[0].litellm_params.model: provider `mycorp` is not supported yet"
        )),
        "{:?}",
        gateway.warnings()
    );
    let (base, _stop) = start(&gateway).await;
    let a = post_json(&format!("{base}/v1/chat/completions"), &chat("corp")).await;
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert!(a.error()["message"]
        .as_str()
        .is_some_and(|m| m.contains("provider `mycorp` is not supported")));
}

#[test]
fn a_builtin_prefix_is_not_silently_shadowed() {
    // Registering MyCorp's translation under `openai` is refused by the registry and the builder.
    let err = Providers::builtin()
        .register_as("openai", std::sync::Arc::new(example::MyCorp))
        .unwrap_err();
    assert_eq!(err, RegisterError::Builtin("openai".into()));
    let err = Gateway::builder()
        .custom_provider_as("openai", std::sync::Arc::new(example::MyCorp))
        .build(&HttpClient::new())
        .unwrap_err();
    assert_eq!(err.setting(), "custom_provider(openai)");
    assert!(std::error::Error::source(&err).is_some());
}
