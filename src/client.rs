//! [`Client`]: typed helpers over any model-level service, for applications that call providers
//! directly, without a gateway server.
//!
//! ```no_run
//! use std::sync::Arc;
//! use llmgate::{client::Client, provider::{self, Deployment, HttpClient, ProviderLayer}};
//! use llmgate::types::chat::{ChatRequest, Message};
//! use tower::ServiceBuilder;
//!
//! # async fn run() -> Result<(), llmgate::LlmError> {
//! let dep = Arc::new(Deployment::new("gpt", "openai/gpt-4o-mini").with_api_key("sk-..."));
//! let openai = provider::lookup("openai").expect("built in");
//! let stack = ServiceBuilder::new()
//!     .layer(ProviderLayer::new(openai, dep))
//!     .service(HttpClient::new());
//! let client = Client::new(stack);
//! let answer = client
//!     .chat(ChatRequest {
//!         model: "gpt".into(),
//!         messages: vec![Message::new("user", "Say hi")],
//!         ..Default::default()
//!     })
//!     .await?;
//! println!("{}", answer.choices[0].message.as_ref().map(|m| m.text()).unwrap_or_default());
//! # Ok(()) }
//! ```

use std::fmt;

use tower::ServiceExt as _;
use tower_service::Service;

use crate::{
    error::{ErrorKind, LlmError},
    types::{
        chat::{ChatRequest, ChatResponse, StreamOptions},
        embeddings::{EmbeddingsRequest, EmbeddingsResponse},
        models::ModelList,
        ChatStream, LlmRequest, LlmResponse, ResponseBody,
    },
};

/// Typed calls over a model-level service. Cloning clones the service.
#[derive(Clone)]
pub struct Client<S> {
    inner: S,
}

impl<S> fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl<S> Client<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError> + Clone,
{
    /// A client over `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// Sends a request as is and returns the model-level response.
    pub async fn send(&self, req: LlmRequest) -> Result<LlmResponse, LlmError> {
        self.inner.clone().oneshot(req).await
    }

    /// A complete chat completion (`stream` is forced off).
    pub async fn chat(&self, mut req: ChatRequest) -> Result<ChatResponse, LlmError> {
        req.stream = None;
        req.stream_options = None;
        match self.send(LlmRequest::chat(req)).await?.body {
            ResponseBody::Chat(c) => c.into_typed(),
            other => Err(unexpected("a chat completion", &other)),
        }
    }

    /// A streamed chat completion (`stream` is forced on, with usage on the last chunk).
    pub async fn chat_stream(&self, mut req: ChatRequest) -> Result<ChatStream, LlmError> {
        req.stream = Some(true);
        if req.stream_options.is_none() {
            req.stream_options = Some(StreamOptions {
                include_usage: Some(true),
                ..StreamOptions::default()
            });
        }
        match self.send(LlmRequest::chat(req)).await?.body {
            ResponseBody::Stream(s) => Ok(s),
            other => Err(unexpected("a stream", &other)),
        }
    }

    /// Embeddings.
    pub async fn embed(&self, req: EmbeddingsRequest) -> Result<EmbeddingsResponse, LlmError> {
        match self.send(LlmRequest::embeddings(req)).await?.body {
            ResponseBody::Embeddings(e) => Ok(*e),
            other => Err(unexpected("embeddings", &other)),
        }
    }

    /// The model groups the service serves.
    pub async fn models(&self) -> Result<ModelList, LlmError> {
        match self.send(LlmRequest::list_models()).await?.body {
            ResponseBody::Models(m) => Ok(*m),
            other => Err(unexpected("a model list", &other)),
        }
    }
}

fn unexpected(wanted: &str, got: &ResponseBody) -> LlmError {
    let got = match got {
        ResponseBody::Chat(_) => "a chat completion",
        ResponseBody::Embeddings(_) => "embeddings",
        ResponseBody::Stream(_) => "a stream",
        ResponseBody::Models(_) => "a model list",
        ResponseBody::Json(_) => "a dialect's JSON answer",
        ResponseBody::Events(_) => "a dialect's event stream",
    };
    LlmError::new(
        ErrorKind::InternalServer,
        format!("expected {wanted} from the service, got {got}"),
    )
}

#[cfg(all(test, feature = "gateway"))]
#[allow(clippy::unwrap_used)] // clippy's allow-unwrap-in-tests sees only a plain `cfg(test)`
mod tests {
    use futures_util::StreamExt as _;

    use super::*;
    use crate::{config::Config, gateway::Gateway, provider::HttpClient, types::chat::Message};

    fn client() -> Client<crate::gateway::GatewayStack> {
        let cfg = Config::from_yaml_str(crate::gateway::DEFAULT_CONFIG, "default")
            .unwrap()
            .config;
        Client::new(
            Gateway::from_config(&cfg, &HttpClient::new())
                .stack()
                .clone(),
        )
    }

    fn hello() -> ChatRequest {
        ChatRequest {
            model: "mock".into(),
            messages: vec![Message::new("user", "hello")],
            ..ChatRequest::default()
        }
    }

    #[tokio::test]
    async fn chat_stream_and_embed_over_the_mock() {
        let c = client();
        let full = c.chat(hello()).await.unwrap();
        let text = full.choices[0].message.as_ref().unwrap().text();
        let mut stream = c.chat_stream(hello()).await.unwrap();
        let mut streamed = String::new();
        let mut usage = None;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap().into_typed().unwrap();
            for ch in &chunk.choices {
                if let Some(t) = ch.delta.as_ref().and_then(|d| d.content.as_deref()) {
                    streamed.push_str(t);
                }
            }
            usage = usage.or(chunk.usage);
        }
        assert_eq!(streamed, text);
        assert!(usage.is_some_and(|u| u.total_tokens.unwrap_or(0) > 0));
        let emb = c
            .embed(EmbeddingsRequest {
                model: "mock-embedding".into(),
                input: crate::types::embeddings::EmbeddingInput::Many(vec!["a".into(), "b".into()]),
                ..EmbeddingsRequest::default()
            })
            .await
            .unwrap();
        assert_eq!(emb.data.len(), 2);
        let models = c.models().await.unwrap();
        assert_eq!(models.data[0].id, "mock");
    }

    #[tokio::test]
    async fn unknown_model_is_not_found() {
        let mut req = hello();
        req.model = "nope".into();
        let err = client().chat(req).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.message().contains("nope") && err.message().contains("mock"));
    }
}
