//! Criterion benchmarks of the response cache: key hashing (small and large chat requests), and
//! the in-memory hit path through the cache layer against a direct call of the service below it
//! (the ratio is the cost of answering from the cache instead of the next layer).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use llmgate::{
    cache::{bench::chat_key, CacheLayer, MemoryStore},
    types::{
        chat::{ChatRequest, ChatResponse},
        LlmRequest, LlmResponse,
    },
    LlmError,
};
use tower::{Service as _, ServiceExt as _};
use tower_layer::Layer as _;

fn small_request() -> String {
    r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about Rust and tower layers."}],"temperature":0.7,"max_tokens":256,"stream":false,"user":"u-123","metadata":{"tags":["bench"]}}"#.to_owned()
}

fn large_request() -> String {
    let mut msgs = Vec::new();
    for i in 0..40 {
        msgs.push(format!(
            r#"{{"role":"{}","content":"{} {}"}}"#,
            if i % 2 == 0 { "user" } else { "assistant" },
            "lorem ipsum dolor sit amet ".repeat(20),
            i
        ));
    }
    format!(
        r#"{{"model":"gpt-4o","messages":[{}],"tools":[{{"type":"function","function":{{"name":"get_weather","description":"Weather","parameters":{{"type":"object","properties":{{"city":{{"type":"string"}}}},"required":["city"]}}}}}}],"tool_choice":"auto"}}"#,
        msgs.join(",")
    )
}

fn answer() -> ChatResponse {
    serde_json::from_str(
        r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Layers wrap layers / a future polls another / the borrow checks out"},"finish_reason":"stop"}],"usage":{"prompt_tokens":30,"completion_tokens":17,"total_tokens":47}}"#,
    )
    .unwrap()
}

fn key_hashing(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_key");
    for (name, body) in [("small", small_request()), ("large", large_request())] {
        let req = LlmRequest::chat(serde_json::from_str::<ChatRequest>(&body).unwrap());
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| b.iter(|| chat_key(black_box(&req))));
    }
    g.finish();
}

fn hit_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The service below the cache answers at once with a prepared response: the baseline is the
    // cheapest possible miss, so the ratio overstates the hit path's relative cost.
    let prepared = answer();
    let inner = tower::service_fn(move |_req: LlmRequest| {
        let r = prepared.clone();
        async move { Ok::<_, LlmError>(LlmResponse::chat(r)) }
    });
    let layer = CacheLayer::new(MemoryStore::new(64 << 20));
    let handle = layer.handle();
    let mut cached = layer.layer(inner.clone());
    let req = LlmRequest::chat(serde_json::from_str::<ChatRequest>(&small_request()).unwrap());
    // Fill the entry once.
    rt.block_on(async {
        cached
            .ready()
            .await
            .unwrap()
            .call(req.clone())
            .await
            .unwrap();
        handle.flushed().await;
    });

    let mut g = c.benchmark_group("cache_hit_path");
    g.bench_function("direct_inner_call", |b| {
        let mut svc = inner.clone();
        b.iter(|| {
            rt.block_on(async { svc.ready().await.unwrap().call(req.clone()).await.unwrap() })
        });
    });
    g.bench_function("memory_hit", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = cached
                    .ready()
                    .await
                    .unwrap()
                    .call(req.clone())
                    .await
                    .unwrap();
                assert!(r.meta.cache_hit);
                r
            })
        });
    });
    g.finish();
}

/// A whole request through `OpenAiServer` (parse, stack, JSON out): the built-in mock provider
/// without a cache, against a cache hit for the same request.
fn server_round_trip(c: &mut Criterion) {
    use http_body_util::{BodyExt as _, Full};
    use llmgate::{
        config::Config,
        gateway::{Gateway, DEFAULT_CONFIG},
        provider::HttpClient,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let plain = Config::from_yaml_str(DEFAULT_CONFIG, "default")
        .unwrap()
        .config;
    let cached_yaml = format!(
        "{DEFAULT_CONFIG}\nlitellm_settings:\n  cache: true\n  cache_params: {{type: local}}\n"
    );
    let cached = Config::from_yaml_str(&cached_yaml, "cached")
        .unwrap()
        .config;
    let body = bytes::Bytes::from(
        r#"{"model":"mock","messages":[{"role":"user","content":"hi"}],"temperature":0.2}"#,
    );
    let mut g = c.benchmark_group("server_round_trip");
    for (name, config) in [
        ("mock_provider_no_cache", plain),
        ("memory_cache_hit", cached),
    ] {
        let gateway = rt.block_on(async { Gateway::from_config(&config, &HttpClient::new()) });
        let server = gateway.server();
        let send = || async {
            let req = http::Request::post("/v1/chat/completions")
                .body(Full::new(body.clone()))
                .unwrap();
            let resp = server.clone().oneshot(req).await.unwrap();
            let hit = resp.headers().get("x-llmgate-cache").cloned();
            black_box(resp.into_body().collect().await.unwrap().to_bytes());
            hit
        };
        rt.block_on(async {
            send().await;
            if let Some(cache) = gateway.cache() {
                cache.flushed().await;
                assert_eq!(send().await.unwrap(), "hit");
            }
        });
        g.bench_function(name, |b| b.iter(|| rt.block_on(send())));
    }
    g.finish();
}

criterion_group!(benches, key_hashing, hit_path, server_round_trip);
criterion_main!(benches);
