//! Response cache over the in-memory store (moka), through the gateway on loopback, with the
//! fake upstream counting the requests that reach the provider.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cache_support/mod.rs"]
mod cache_support;
mod support;

use cache_support as s;

const LOCAL: &str = "{type: local}";

#[tokio::test]
async fn memory_hit_and_miss() {
    s::hit_and_miss(LOCAL).await;
}

#[tokio::test]
async fn memory_ttl_expiry() {
    s::ttl_expiry(LOCAL).await;
}

#[tokio::test]
async fn memory_no_cache_and_no_store() {
    s::no_cache_and_no_store(LOCAL).await;
}

#[tokio::test]
async fn memory_namespaces() {
    s::namespaces(LOCAL).await;
}

#[tokio::test]
async fn memory_tenant_isolation() {
    s::tenant_isolation(LOCAL, "{type: local, scope: shared}").await;
}

#[tokio::test]
async fn memory_stream_replay() {
    s::stream_replay(LOCAL).await;
}

#[tokio::test]
async fn memory_cut_stream_not_stored() {
    s::cut_stream_not_stored(LOCAL).await;
}

#[tokio::test]
async fn memory_embeddings_per_item() {
    s::embeddings_per_item(LOCAL).await;
}

#[tokio::test]
async fn supported_call_types_limit_what_is_cached() {
    // `supported_call_types` without embeddings: embeddings pass through untouched.
    let up = support::FakeUpstream::start().await;
    let gw = s::CacheGateway::start(
        &up.url(),
        "{type: local, supported_call_types: [acompletion, completion]}",
    )
    .await;
    up.enqueue(support::Reply::json(
        200,
        serde_json::json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [1.0]}], "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}}),
    ));
    let a = gw
        .post(
            "/v1/embeddings",
            &serde_json::json!({"model": "e", "input": "x"}),
            &[],
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(s::header(&a, "x-llmgate-cache"), None);
}

#[test]
fn bad_cache_params_fail_at_load_naming_the_key() {
    for (params, key) in [
        ("{type: s3}", "litellm_settings.cache_params.type"),
        (
            "{type: local, scope: everyone}",
            "litellm_settings.cache_params.scope",
        ),
        (
            "{type: redis, url: \"http://:pw@host\"}",
            "litellm_settings.cache_params.url",
        ),
    ] {
        let yaml =
            format!("model_list: []\nlitellm_settings:\n  cache: true\n  cache_params: {params}\n");
        let errs = llmgate::config::Config::from_yaml_str(&yaml, "c.yaml").unwrap_err();
        let text = errs.to_string();
        assert!(text.contains(key), "{params}: {text}");
        assert!(!text.contains("pw@"), "the password is never shown: {text}");
    }
}

#[tokio::test]
async fn cache_true_alone_is_local_and_off_without_it() {
    let on = llmgate::config::Config::from_yaml_str(
        "model_list: []\nlitellm_settings:\n  cache: true\n",
        "c.yaml",
    )
    .unwrap();
    let gw =
        llmgate::gateway::Gateway::from_config(&on.config, &llmgate::provider::HttpClient::new());
    assert_eq!(gw.cache().map(|c| c.backend()), Some("memory"));
    let off = llmgate::config::Config::from_yaml_str(
        "model_list: []\nlitellm_settings:\n  cache_params: {type: local}\n",
        "c.yaml",
    )
    .unwrap();
    let gw =
        llmgate::gateway::Gateway::from_config(&off.config, &llmgate::provider::HttpClient::new());
    assert!(gw.cache().is_none());
}
