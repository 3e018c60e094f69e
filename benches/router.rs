//! Criterion benchmarks of routing: the router's pick (filters + strategy) for 1, 10 and 100
//! deployments per strategy, and one in-process call through the full reliability stack
//! (fallback → retry → router → health → timeout) against the router alone, boxed, and boxed behind
//! the gateway's swappable pointer ([`LiveService`]).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use llmgate::{
    fallback::FallbackLayer,
    health::{CooldownPolicy, HealthLayer},
    provider::Deployment,
    retry::RetryLayer,
    router::{LiveService, Router, Strategy},
    timeout::TimeoutLayer,
    types::chat::{ChatRequest, ChatResponse, Message},
    LlmError, LlmRequest, LlmResponse,
};
use tower::{util::BoxCloneSyncService, ServiceBuilder, ServiceExt as _};

fn answer() -> impl tower::Service<
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

fn request() -> LlmRequest {
    LlmRequest::chat(ChatRequest {
        model: "g".into(),
        messages: vec![Message::new(
            "user",
            "Write a haiku about Rust and tower layers.",
        )],
        ..ChatRequest::default()
    })
}

fn router(n: usize, strategy: Strategy, full_stack: bool) -> Router {
    let mut b = Router::builder().strategy(strategy);
    for i in 0..n {
        let mut d = Deployment::new("g", &format!("openai/m{i}"));
        d.api_base = Some(format!("http://10.0.0.{i}/v1").into());
        d.id = format!("dep-{i}").into();
        d.weight = Some(1.0 + (i % 3) as f64);
        d.input_cost_per_token = Some(1e-6 * (1 + i % 7) as f64);
        d.output_cost_per_token = Some(3e-6);
        d.rpm = Some(u64::MAX / 2);
        let d = Arc::new(d);
        if full_stack {
            let cell = b.health_cell(&d.id);
            let svc = ServiceBuilder::new()
                .layer(HealthLayer::new(cell, CooldownPolicy::default()))
                .layer(TimeoutLayer::new(Duration::from_secs(600)))
                .service(answer());
            b = b.deployment(d, svc);
        } else {
            b = b.deployment(d, answer());
        }
    }
    b.build()
}

fn pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("router_pick");
    let req = request();
    for strategy in [
        Strategy::SimpleShuffle,
        Strategy::LeastBusy,
        Strategy::LatencyBased { buffer: 0.1 },
        Strategy::UsageBased,
        Strategy::CostBased,
    ] {
        for n in [1usize, 10, 100] {
            let r = router(n, strategy, false);
            g.bench_with_input(BenchmarkId::new(strategy.name(), n), &n, |b, _| {
                b.iter(|| black_box(r.select(black_box(&req)).unwrap()));
            });
        }
    }
    g.finish();
}

fn stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("reliability_stack");
    let bare = router(10, Strategy::SimpleShuffle, false);
    g.bench_function("router_only", |b| {
        b.iter(|| rt.block_on(bare.clone().oneshot(request())).unwrap());
    });
    let full = ServiceBuilder::new()
        .layer(FallbackLayer::new().default_fallbacks(["other"]))
        .layer(RetryLayer::new(2))
        .service(router(10, Strategy::SimpleShuffle, true));
    g.bench_function("fallback_retry_router_health_timeout", |b| {
        b.iter(|| rt.block_on(full.clone().oneshot(request())).unwrap());
    });
    // The gateway's seam: the stack boxed once (one allocation per clone), and the same box
    // behind the pointer a model change swaps (one more atomic load per call).
    let boxed = BoxCloneSyncService::new(full.clone());
    g.bench_function("boxed_stack", |b| {
        b.iter(|| rt.block_on(boxed.clone().oneshot(request())).unwrap());
    });
    let live = LiveService::new(BoxCloneSyncService::new(full));
    g.bench_function("live_stack", |b| {
        b.iter(|| rt.block_on(live.clone().oneshot(request())).unwrap());
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = pick, stack
}
criterion_main!(benches);
