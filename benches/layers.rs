//! Criterion micro-benchmarks of each layer's per-request cost on the hot path, without a network:
//!
//! - `layer/*`: a model-level layer over an inner service that answers at once, against the bare
//!   inner service (`layer/bare`); the difference is the layer's cost.
//! - `provider/*`: the translation functions (encode a request, decode an answer) for the OpenAI and
//!   Anthropic wire families (`openai_encode` serializes a request built from a struct,
//!   `openai_encode_spliced` splices `model` into the bytes of one built from bytes, as the edge
//!   does), and `ProviderService` over an in-memory HTTP client (encode, call,
//!   collect, decode, stamp).
//! - `edge/*`: `OpenAiServer` alone (parse the HTTP request, call, serialize the answer).
//!
//! The load benchmark (`benches/load/`) measures the same path over real sockets.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use futures_util::future::{self, Ready};
use http_body_util::{BodyExt as _, Full};
use llmgate::{
    auth::{KeyInfo, MasterKeyLayer, PresentedKey},
    cache::{CacheLayer, MemoryStore},
    provider::{self, Deployment, ProviderLayer},
    rate_limit::{Counters, RateLimitLayer},
    router::Router,
    secret::Secret,
    server::OpenAiServer,
    types::chat::{ChatRequest, ChatResponse},
    LlmError, LlmRequest, LlmResponse,
};
use tower::{Layer as _, Service, ServiceExt as _};

const REQUEST: &str = r#"{"model":"bench","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello."}],"max_tokens":32,"temperature":0.2,"metadata":{"tags":["bench"]}}"#;

const OPENAI_RESPONSE: &str = r#"{"id":"chatcmpl-llmgatemock0000000000000001","object":"chat.completion","created":1751980800,"model":"llmgate-mock-1","choices":[{"index":0,"message":{"role":"assistant","content":"This is the mock upstream answering. It says nothing useful, quickly.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":20,"total_tokens":32},"system_fingerprint":"fp_llmgate_mock"}"#;

const ANTHROPIC_RESPONSE: &str = r#"{"id":"msg_llmgatemock000000000001","type":"message","role":"assistant","model":"llmgate-mock-1","content":[{"type":"text","text":"This is the mock upstream answering."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":20}}"#;

/// An inner model-level service that answers at once with a prepared completion.
#[derive(Clone)]
struct Instant(Arc<ChatResponse>);

impl Service<LlmRequest> for Instant {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = Ready<Result<LlmResponse, LlmError>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), LlmError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: LlmRequest) -> Self::Future {
        future::ready(Ok(LlmResponse::chat((*self.0).clone())))
    }
}

fn chat_request(with_key: bool) -> LlmRequest {
    let mut req = LlmRequest::chat(serde_json::from_str::<ChatRequest>(REQUEST).unwrap());
    if with_key {
        req.extensions
            .insert(PresentedKey(Secret::new("sk-bench-master")));
    }
    req
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_util::FutureExt::now_or_never(f).expect("the bench services answer at once")
}

fn layers(c: &mut Criterion) {
    let inner = Instant(Arc::new(serde_json::from_str(OPENAI_RESPONSE).unwrap()));
    let mut g = c.benchmark_group("layer");
    g.bench_function("bare", |b| {
        let mut svc = inner.clone();
        b.iter(|| black_box(block_on(svc.call(chat_request(true))).unwrap()));
    });
    g.bench_function("master_key", |b| {
        let mut svc =
            MasterKeyLayer::new(Some(Secret::new("sk-bench-master"))).layer(inner.clone());
        b.iter(|| black_box(block_on(svc.call(chat_request(true))).unwrap()));
    });
    g.bench_function("router_pick", |b| {
        let mut svc = Router::builder()
            .deployment(
                Arc::new(Deployment::new("bench", "openai/llmgate-mock-1")),
                inner.clone(),
            )
            .build();
        b.iter(|| black_box(block_on(svc.call(chat_request(true))).unwrap()));
    });
    rate_limit_and_cache(&mut g, &inner);
    g.finish();
}

/// The rate limiter (in-process counters) with and without limits on the caller's key, and the
/// in-memory cache answering a hit.
fn rate_limit_and_cache(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    inner: &Instant,
) {
    let keyed = |limited: bool| {
        let mut info = KeyInfo::default();
        info.token = "bench-token".into();
        if limited {
            // Limits high enough never to refuse during the run.
            info.key.limits.rpm_limit = Some(i64::from(u32::MAX));
            info.key.limits.tpm_limit = Some(i64::MAX / 2);
            info.key.limits.max_parallel_requests = Some(1_000_000);
        }
        let info = Arc::new(info);
        move || {
            let mut req = chat_request(true);
            req.extensions.insert(info.clone());
            req
        }
    };
    g.bench_function("rate_limit_memory_no_limits", |b| {
        let mut svc = RateLimitLayer::new(Counters::memory()).layer(inner.clone());
        let make = keyed(false);
        b.iter(|| black_box(block_on(svc.call(make())).unwrap()));
    });
    g.bench_function("rate_limit_memory_key_limits", |b| {
        let mut svc = RateLimitLayer::new(Counters::memory()).layer(inner.clone());
        let make = keyed(true);
        b.iter(|| black_box(block_on(svc.call(make())).unwrap()));
    });
    g.bench_function("cache_memory_hit", |b| {
        let cache = CacheLayer::new(MemoryStore::new(1 << 24));
        let handle = cache.handle();
        let mut svc = cache.layer(inner.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // The first call is a miss; its answer is stored off the request path.
        rt.block_on(async {
            black_box(svc.clone().oneshot(chat_request(true)).await.unwrap());
            handle.flushed().await;
        });
        b.iter(|| {
            let resp = rt.block_on(svc.call(chat_request(true))).unwrap();
            assert!(resp.meta.cache_hit);
            black_box(resp)
        });
    });
}

fn providers(c: &mut Criterion) {
    let openai = provider::lookup("openai").unwrap();
    let anthropic = provider::lookup("anthropic").unwrap();
    let dep = Deployment::new("bench", "openai/llmgate-mock-1")
        .with_api_base("http://127.0.0.1:8000/v1")
        .with_api_key("sk-bench");
    let adep = Deployment::new("bench", "anthropic/claude-sonnet-4-5")
        .with_api_base("http://127.0.0.1:8000")
        .with_api_key("sk-bench");
    let req = chat_request(false);
    let mut g = c.benchmark_group("provider");
    g.bench_function("openai_encode", |b| {
        b.iter(|| black_box(openai.encode(black_box(&req), &dep).unwrap()));
    });
    // As the edge builds it: with the client's bytes, which are spliced rather than re-serialized.
    let from_bytes = LlmRequest::chat_from_bytes(
        serde_json::from_str::<ChatRequest>(REQUEST).unwrap(),
        Bytes::from_static(REQUEST.as_bytes()),
    );
    g.bench_function("openai_encode_spliced", |b| {
        b.iter(|| black_box(openai.encode(black_box(&from_bytes), &dep).unwrap()));
    });
    g.bench_function("openai_decode", |b| {
        b.iter(|| {
            let resp = http::Response::new(Bytes::from_static(OPENAI_RESPONSE.as_bytes()));
            black_box(openai.decode(&req, resp, &dep).unwrap())
        });
    });
    g.bench_function("anthropic_encode", |b| {
        b.iter(|| black_box(anthropic.encode(black_box(&req), &adep).unwrap()));
    });
    g.bench_function("anthropic_decode", |b| {
        b.iter(|| {
            let resp = http::Response::new(Bytes::from_static(ANTHROPIC_RESPONSE.as_bytes()));
            black_box(anthropic.decode(&req, resp, &adep).unwrap())
        });
    });

    // ProviderService over an HTTP client that answers from memory.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = tower::service_fn(|_req: http::Request<Full<Bytes>>| {
        let mut resp =
            http::Response::new(Full::new(Bytes::from_static(OPENAI_RESPONSE.as_bytes())));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        future::ready(Ok::<_, Infallible>(resp))
    });
    let svc = ProviderLayer::new(openai, Arc::new(dep.clone())).layer(client);
    g.bench_function("openai_service_in_memory", |b| {
        b.iter(|| {
            rt.block_on(async {
                black_box(svc.clone().oneshot(chat_request(false)).await.unwrap());
            })
        });
    });
    g.finish();
}

fn edge(c: &mut Criterion) {
    let inner = Instant(Arc::new(serde_json::from_str(OPENAI_RESPONSE).unwrap()));
    let server = OpenAiServer::new(inner);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = Bytes::from_static(REQUEST.as_bytes());
    c.bench_function("edge/openai_server_chat", |b| {
        b.iter(|| {
            rt.block_on(async {
                let req = http::Request::post("/v1/chat/completions")
                    .header("authorization", "Bearer sk-bench-master")
                    .body(Full::new(body.clone()))
                    .unwrap();
                let resp = server.clone().oneshot(req).await.unwrap();
                black_box(resp.into_body().collect().await.unwrap().to_bytes());
            })
        });
    });
}

criterion_group!(benches, layers, providers, edge);
criterion_main!(benches);
