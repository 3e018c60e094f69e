//! Mount `OpenAiServer` in an axum Router beside the application's own routes.
//!
//! `cargo run --example axum_embed`, then
//! `curl localhost:3000/v1/chat/completions -d '{"model":"mock","messages":[{"role":"user","content":"hi"}]}'`
//! and `curl localhost:3000/hello`.

use axum::{routing::get, Router};
use llmgate::{
    config::Config,
    gateway::{Gateway, DEFAULT_CONFIG},
    provider::HttpClient,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let config = Config::from_yaml_str(DEFAULT_CONFIG, "default")?.config;
    let gateway = Gateway::from_config(&config, &HttpClient::new());
    let api = gateway.server();

    let app = Router::new()
        .route("/hello", get(|| async { "the app's own route\n" }))
        // The OpenAI API, served by llmgate, next to the app's routes.
        .route_service("/v1/chat/completions", api.clone())
        .route_service("/v1/embeddings", api.clone())
        .route_service("/v1/models", api);

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(llmgate::server::shutdown_signal())
        .await?;
    Ok(())
}
