//! A custom provider: your own API behind llmgate, next to a built-in provider.
//!
//! `MyCorp` implements [`Provider`] for a made-up company API (`POST {api_base}/generate` with
//! `{"model", "prompt"}`, answering `{"text"}`). It is registered by value under its prefix
//! `mycorp`, so a deployment `mycorp/corp-large` is served by it, as LiteLLM's
//! `custom_provider_map` does; the `mock` group is served by the built-in mock provider.
//!
//! `cargo run --example custom_provider`, then
//! `curl localhost:4000/v1/chat/completions -d '{"model":"corp","messages":[{"role":"user","content":"hi"}]}'`
//! (the custom provider), the same with `"model":"mock"` (built in), and
//! `curl localhost:4000/v1/embeddings -d '{"model":"corp","input":"hi"}'` (a 400: the custom
//! provider does no embeddings).
//!
//! `tests/custom_provider.rs` runs this setup over sockets.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use llmgate::{
    error::{ErrorKind, LlmError},
    gateway::{Gateway, GatewayError},
    provider::{self, ByteStream, Deployment, HttpClient, Provider},
    server::{serve, ServeConfig},
    types::{chat::ChatResponse, ChatStream, LlmRequest, LlmResponse},
};
use serde_json::json;

/// The translation for MyCorp's API: pure functions from and to the OpenAI shapes.
#[derive(Debug)]
pub(crate) struct MyCorp;

impl Provider for MyCorp {
    fn name(&self) -> &'static str {
        "mycorp"
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        // Chat only: any other operation is a 400 naming the provider and the operation.
        let Some(chat) = req.as_chat() else {
            return Err(provider::unsupported(self, req));
        };
        if req.is_stream() {
            return Err(LlmError::bad_request(
                "the mycorp provider does not support streaming",
            ));
        }
        let base = dep
            .api_base
            .as_deref()
            .ok_or_else(|| LlmError::bad_request("the mycorp provider needs an api_base"))?;
        let prompt: Vec<String> = chat.messages.iter().map(|m| m.text()).collect();
        let body = json!({"model": &*dep.model, "prompt": prompt.join("\n")});
        http::Request::post(format!("{}/generate", base.trim_end_matches('/')))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Bytes::from(body.to_string()))
            .map_err(|e| LlmError::bad_request(format!("mycorp request: {e}")))
    }

    fn decode(
        &self,
        req: &LlmRequest,
        resp: http::Response<Bytes>,
        dep: &Deployment,
    ) -> Result<LlmResponse, LlmError> {
        let answer: serde_json::Value = serde_json::from_slice(resp.body()).map_err(|e| {
            LlmError::new(ErrorKind::InternalServer, format!("mycorp answer: {e}"))
                .with_provider(self.name())
        })?;
        let text = answer["text"].as_str().unwrap_or_default();
        let model = req.as_chat().map_or(&*dep.model, |c| c.model.as_str());
        let chat: ChatResponse = serde_json::from_value(json!({
            "id": "chatcmpl-mycorp",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
        }))
        .map_err(|e| LlmError::new(ErrorKind::InternalServer, e.to_string()))?;
        Ok(LlmResponse::chat(chat))
    }

    fn decode_stream(
        &self,
        req: &LlmRequest,
        _parts: http::response::Parts,
        _body: ByteStream,
        _dep: &Deployment,
    ) -> Result<ChatStream, LlmError> {
        // `encode` refuses streams, so there is never one to decode.
        Err(provider::unsupported(self, req))
    }

    fn classify(
        &self,
        status: StatusCode,
        _headers: &HeaderMap,
        body: &[u8],
        _dep: &Deployment,
    ) -> LlmError {
        let kind = match status.as_u16() {
            401 => ErrorKind::Authentication,
            429 => ErrorKind::RateLimit,
            500.. => ErrorKind::ServiceUnavailable,
            _ => ErrorKind::BadRequest,
        };
        LlmError::new(kind, String::from_utf8_lossy(body).into_owned()).with_provider(self.name())
    }
}

/// The gateway: a `corp` group on MyCorp's API at `mycorp_base`, and a built-in `mock` group.
///
/// # Errors
/// A refused setting (here: none).
pub(crate) fn gateway(mycorp_base: &str) -> Result<Gateway, GatewayError> {
    Gateway::builder()
        .custom_provider(MyCorp)
        .deployment(Deployment::new("corp", "mycorp/corp-large").with_api_base(mycorp_base))
        .deployment(Deployment::new("mock", "mock/echo"))
        .timeout(Duration::from_secs(30))
        .build(&HttpClient::new())
}

/// A stand-in for MyCorp's API on a loopback port: `POST /generate` answers
/// `{"text": "mycorp says: <prompt>"}`.
///
/// # Errors
/// The port cannot be bound.
pub(crate) async fn mycorp_api() -> std::io::Result<SocketAddr> {
    use axum::{routing::post, Json, Router};
    let app = Router::new().route(
        "/generate",
        post(|Json(body): Json<serde_json::Value>| async move {
            let prompt = body["prompt"].as_str().unwrap_or_default().to_owned();
            Json(json!({"text": format!("mycorp says: {prompt}")}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

#[allow(dead_code)] // The test includes this file as a module and has its own entry point.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let api = mycorp_api().await?;
    let gateway = gateway(&format!("http://{api}"))?;
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:4000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{addr} (MyCorp's stand-in API on http://{api})");
    serve(
        listener,
        gateway.app(),
        ServeConfig::default(),
        llmgate::server::shutdown_signal(),
    )
    .await?;
    Ok(())
}
