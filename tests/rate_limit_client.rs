//! `RateLimitLayer` without any virtual keys: a global quota and a per-tenant closure policy in a
//! client stack over a real fake upstream, and `per_key` behind `OpenAiServer` served on a
//! loopback socket (no auth layer, no key store). tpm is counted by the rate limiter alone (no
//! cost layer anywhere here).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt as _;
use llmgate::{
    provider::{self, Deployment, HttpClient, ProviderLayer},
    rate_limit::{Bucket, Counters, Quota, RateLimitLayer},
    server::{serve, OpenAiServer, ServeConfig},
    types::{chat::ChatRequest, LlmRequest, LlmResponse, ResponseBody},
    ErrorKind, LlmError,
};
use serde_json::json;
use support::{chat_completion, chat_sse, gw, FakeUpstream, Reply};
use tower::{Service, ServiceBuilder, ServiceExt as _};

/// The OpenAI translation over the pooled HTTP client, pointed at `up`.
fn provider_stack(
    up: &FakeUpstream,
) -> impl Service<LlmRequest, Response = LlmResponse, Error = LlmError, Future = impl Send>
       + Clone
       + Send
       + Sync
       + 'static {
    let dep = Arc::new(
        Deployment::new("m", "openai/fake-model")
            .with_api_base(format!("{}/v1", up.url()))
            .with_api_key("sk-upstream"),
    );
    ServiceBuilder::new()
        .layer(ProviderLayer::new(provider::lookup("openai").unwrap(), dep))
        .service(HttpClient::new())
}

fn chat(stream: bool) -> LlmRequest {
    let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    if stream {
        body["stream"] = json!(true);
    }
    LlmRequest::chat(serde_json::from_value::<ChatRequest>(body).unwrap())
}

#[tokio::test]
async fn a_global_rpm_refuses_the_third_call_with_429_and_never_reaches_upstream() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("ok")));
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::global(Quota::rpm(2)))
        .service(provider_stack(&up));

    let first = svc.clone().oneshot(chat(false)).await.unwrap();
    assert_eq!(first.meta.headers["x-ratelimit-limit-requests"], "2");
    assert_eq!(first.meta.headers["x-ratelimit-remaining-requests"], "1");
    svc.clone().oneshot(chat(false)).await.unwrap();
    let err = svc.clone().oneshot(chat(false)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimit);
    assert_eq!(err.status(), 429);
    assert!(err
        .retry_after()
        .is_some_and(|d| d >= Duration::from_secs(1)));
    assert!(
        err.to_string()
            .contains("Rate limit exceeded for global: requests limit of 2 per minute"),
        "{err}"
    );
    assert_eq!(err.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn tpm_counts_a_whole_answer_without_any_cost_layer() {
    let up = FakeUpstream::start().await;
    // 5 + 7 = 12 tokens per answer.
    up.set_default(Reply::json(200, chat_completion("ok")));
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::global(Quota {
            tpm: Some(12),
            ..Quota::default()
        }))
        .service(provider_stack(&up));

    let first = svc.clone().oneshot(chat(false)).await.unwrap();
    assert_eq!(first.meta.headers["x-ratelimit-remaining-tokens"], "12");
    let err = svc.clone().oneshot(chat(false)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimit);
    assert!(err.to_string().contains("tokens limit of 12"), "{err}");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn tpm_asks_a_stream_for_usage_counts_it_and_hides_it_from_a_client_that_did_not_ask() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::sse(chat_sse(&["Hel", "lo"])));
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::global(Quota::rpm(100).tpm(12)))
        .service(provider_stack(&up));

    let resp = svc.clone().oneshot(chat(true)).await.unwrap();
    let ResponseBody::Stream(stream) = resp.body else {
        panic!("a stream")
    };
    let chunks: Vec<_> = stream.collect().await;
    assert!(!chunks.is_empty());
    for c in &chunks {
        let c = c.as_ref().unwrap();
        assert!(c.usage().is_none(), "the client did not ask for usage");
        assert!(c.has_choices());
    }
    let sent = up.last_request().unwrap().json();
    assert_eq!(sent["stream_options"]["include_usage"], true);

    // The stream's 12 tokens were charged when it ended.
    let err = svc.clone().oneshot(chat(true)).await.unwrap_err();
    assert!(err.to_string().contains("tokens limit of 12"), "{err}");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn a_stream_whose_client_asked_for_usage_keeps_its_usage_chunk() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::sse(chat_sse(&["Hi"])));
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::global(Quota::rpm(100).tpm(1000)))
        .service(provider_stack(&up));
    let mut req = chat(true);
    req.chat_mut().unwrap().stream_options =
        Some(serde_json::from_value(json!({"include_usage": true})).unwrap());
    let resp = svc.oneshot(req).await.unwrap();
    let ResponseBody::Stream(stream) = resp.body else {
        panic!("a stream")
    };
    let usage: Vec<u64> = stream
        .filter_map(|c| async move { c.unwrap().usage().and_then(|u| u.total_tokens) })
        .collect()
        .await;
    assert_eq!(usage, vec![12]);
}

#[derive(Clone)]
struct Tenant(&'static str);

#[tokio::test]
async fn a_closure_policy_holds_one_stream_per_tenant_until_it_is_dropped() {
    let up = FakeUpstream::start().await;
    let first_chunk = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fake-model\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"a\"}}]}\n\n";
    up.set_default(Reply::sse_then_hang(first_chunk));
    let by_tenant = |req: &LlmRequest| match req.extensions.get::<Tenant>() {
        Some(t) => vec![Bucket::new("tenant", t.0, Quota::default().max_parallel(1))],
        None => Vec::new(),
    };
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::with_policy(Counters::memory(), by_tenant))
        .service(provider_stack(&up));
    let for_tenant = |t: &'static str| {
        let mut r = chat(true);
        r.extensions.insert(Tenant(t));
        r
    };

    let held = svc.clone().oneshot(for_tenant("acme")).await.unwrap();
    let ResponseBody::Stream(mut held) = held.body else {
        panic!("a stream")
    };
    assert!(held.next().await.unwrap().is_ok());

    let err = svc.clone().oneshot(for_tenant("acme")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimit);
    assert!(
        err.to_string()
            .contains("Rate limit exceeded for tenant: parallel requests limit of 1"),
        "{err}"
    );
    // Another tenant, and a call with no tenant, are not held back.
    let other = svc.clone().oneshot(for_tenant("globex")).await.unwrap();
    drop(other);
    let untagged = svc.clone().oneshot(chat(true)).await.unwrap();
    drop(untagged);

    // Dropping the stream gives the slot back.
    drop(held);
    assert!(up.wait_for_disconnect(Duration::from_secs(5)).await);
    let again = svc.clone().oneshot(for_tenant("acme")).await.unwrap();
    drop(again);
}

#[tokio::test]
async fn per_key_behind_openai_server_limits_each_presented_key_without_a_key_store() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("ok")));
    let stack = ServiceBuilder::new()
        .layer(RateLimitLayer::per_key(Quota::rpm(1)))
        .service(provider_stack(&up));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        OpenAiServer::new(stack),
        ServeConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let url = format!("http://{addr}/v1/chat/completions");
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let call = |key: &'static str| {
        let body = bytes::Bytes::from(serde_json::to_vec(&body).unwrap());
        let url = url.clone();
        async move {
            gw::send(
                http::Request::post(url)
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {key}"))
                    .body(http_body_util::Full::new(body))
                    .unwrap(),
            )
            .await
        }
    };

    assert_eq!(call("sk-alice").await.status, 200);
    let refused = call("sk-alice").await;
    assert_eq!(refused.status, 429);
    let e = refused.error();
    assert_eq!(e["type"], "rate_limit_error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("Rate limit exceeded for key: requests limit of 1 per minute"),
        "{e}"
    );
    assert!(
        !e["message"].as_str().unwrap().contains("sk-alice"),
        "never the key"
    );
    assert!(refused.headers.contains_key("retry-after"));
    assert_eq!(call("sk-bob").await.status, 200);
    assert_eq!(up.hits(), 2);

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

fn chat_for(user: &str) -> LlmRequest {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "user": user});
    LlmRequest::chat(serde_json::from_value::<ChatRequest>(body).unwrap())
}

#[tokio::test]
async fn per_end_user_quotas_count_each_end_user_apart() {
    use llmgate::rate_limit::PerEndUser;
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("ok")));
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::with_policy(
            Counters::memory(),
            PerEndUser(Quota::rpm(1)),
        ))
        .service(provider_stack(&up));

    svc.clone().oneshot(chat_for("alice")).await.unwrap();
    let err = svc.clone().oneshot(chat_for("alice")).await.unwrap_err();
    assert_eq!(err.status(), 429);
    assert!(err.to_string().contains("end_user"), "{err}");
    // Another end user has a quota of its own; a call naming none is not counted here.
    svc.clone().oneshot(chat_for("bob")).await.unwrap();
    svc.clone().oneshot(chat(false)).await.unwrap();
    svc.clone().oneshot(chat(false)).await.unwrap();
    assert_eq!(up.hits(), 4);
}
