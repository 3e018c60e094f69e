//! Build a client from layers over the HTTP client and call a local upstream.
//!
//! The "upstream" here is llmgate's own gateway on its embedded mock config, started on a free
//! loopback port, so the example runs offline: `cargo run --example client_stack`.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt as _;
use llmgate::{
    client::Client,
    config::Config,
    gateway::{Gateway, DEFAULT_CONFIG},
    provider::{self, Deployment, HttpClient, ProviderLayer},
    server::{serve, ServeConfig},
    types::chat::{ChatRequest, Message},
};
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // 1. A local OpenAI-compatible upstream: llmgate serving its mock model group.
    let config = Config::from_yaml_str(DEFAULT_CONFIG, "default")?.config;
    let upstream = Gateway::from_config(&config, &HttpClient::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        upstream.server(),
        ServeConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));

    // 2. The client stack: the OpenAI provider translation over the pooled HTTP client, with a
    //    tower timeout on top. Any tower layer composes here.
    let deployment = Arc::new(
        Deployment::new("my-model", "openai/mock")
            .with_api_base(format!("http://{addr}/v1"))
            .with_api_key("sk-local"),
    );
    let openai = provider::lookup("openai").ok_or("openai provider is built in")?;
    let stack = ServiceBuilder::new()
        .map_err(|e: llmgate::LlmError| e)
        .layer(ProviderLayer::new(openai, deployment).default_timeout(Duration::from_secs(30)))
        .service(HttpClient::new());
    let client = Client::new(stack);

    // 3. Call it.
    let request = ChatRequest {
        model: "my-model".into(),
        messages: vec![Message::new("user", "Say hello")],
        ..ChatRequest::default()
    };
    let answer = client.chat(request.clone()).await?;
    println!(
        "complete: {}",
        answer.choices[0]
            .message
            .as_ref()
            .map(Message::text)
            .unwrap_or_default()
    );
    let mut stream = client.chat_stream(request).await?;
    print!("streamed: ");
    while let Some(chunk) = stream.next().await {
        // A chunk relayed from an OpenAI-format provider is parsed only when asked for.
        for choice in &chunk?.into_typed()?.choices {
            if let Some(text) = choice.delta.as_ref().and_then(|d| d.content.as_deref()) {
                print!("{text}");
            }
        }
    }
    println!();

    let _ = stop.send(());
    server.await??;
    Ok(())
}
