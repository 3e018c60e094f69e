//! `OpenAiServer` inside axum, and axum inside `OpenAiServer` (as the fallback for other paths).

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::{routing::get, Router};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use llmgate::{
    config::Config,
    gateway::{Gateway, DEFAULT_CONFIG},
    provider::HttpClient,
};
use tower::ServiceExt as _;

fn gateway() -> Gateway {
    let config = Config::from_yaml_str(DEFAULT_CONFIG, "default")
        .unwrap()
        .config;
    Gateway::from_config(&config, &HttpClient::new())
}

async fn body_of<B: http_body::Body>(b: B) -> String
where
    B::Error: std::fmt::Debug,
{
    String::from_utf8(b.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn openai_server_in_an_axum_router() {
    let api = gateway().server();
    let app = Router::new()
        .route("/hello", get(|| async { "hi from the app" }))
        .route_service("/v1/chat/completions", api.clone())
        .route_service("/v1/models", api);
    let resp = app
        .clone()
        .oneshot(
            http::Request::get("/hello")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(body_of(resp.into_body()).await, "hi from the app");
    let resp = app
        .oneshot(
            http::Request::post("/v1/chat/completions")
                .body(axum::body::Body::from(
                    r#"{"model":"mock","messages":[{"role":"user","content":"hi"}]}"#,
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(body_of(resp.into_body()).await.contains("chat.completion"));
}

#[tokio::test]
async fn axum_router_as_the_fallback_for_other_paths() {
    let admin = Router::new().route("/admin/ping", get(|| async { "pong" }));
    let server = gateway().server().with_fallback(admin);
    let resp = server
        .clone()
        .oneshot(
            http::Request::get("/admin/ping")
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(body_of(resp.into_body()).await, "pong");
    // The OpenAI routes still go to the model stack.
    let resp = server
        .oneshot(
            http::Request::get("/v1/models")
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(body_of(resp.into_body()).await.contains("\"mock\""));
}
