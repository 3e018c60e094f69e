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

criterion_group!(benches, key_hashing, hit_path);
criterion_main!(benches);
