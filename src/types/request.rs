//! [`LlmRequest`]: what every model-level service receives.

use std::sync::Arc;

use super::{chat::ChatRequest, embeddings::EmbeddingsRequest};

/// The operation a request asks for, parsed once at the edge.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Operation {
    /// `POST /v1/chat/completions`.
    Chat(Arc<ChatRequest>),
    /// `POST /v1/embeddings`.
    Embeddings(Arc<EmbeddingsRequest>),
    /// `GET /v1/models`: the model groups this caller may use.
    ListModels,
}

/// A provider-neutral request (OpenAI shape) plus what is about the call rather than the body.
///
/// Cheap to clone: the body sits behind an `Arc`, so retries and fallbacks replay it without copying.
/// Layers that change the body use [`Arc::make_mut`] through [`LlmRequest::chat_mut`].
#[derive(Clone, Debug)]
pub struct LlmRequest {
    /// The parsed body.
    pub op: Operation,
    /// Call metadata: the caller's key info, cache controls, deadline, call id, …
    pub extensions: http::Extensions,
}

impl LlmRequest {
    /// A chat request.
    #[must_use]
    pub fn chat(body: ChatRequest) -> Self {
        Self {
            op: Operation::Chat(Arc::new(body)),
            extensions: http::Extensions::new(),
        }
    }

    /// An embeddings request.
    #[must_use]
    pub fn embeddings(body: EmbeddingsRequest) -> Self {
        Self {
            op: Operation::Embeddings(Arc::new(body)),
            extensions: http::Extensions::new(),
        }
    }

    /// The model listing request.
    #[must_use]
    pub fn list_models() -> Self {
        Self {
            op: Operation::ListModels,
            extensions: http::Extensions::new(),
        }
    }

    /// The model (group) the caller asked for (empty for a model listing).
    #[must_use]
    pub fn model(&self) -> &str {
        match &self.op {
            Operation::Chat(c) => &c.model,
            Operation::Embeddings(e) => &e.model,
            Operation::ListModels => "",
        }
    }

    /// Whether the caller wants a stream.
    #[must_use]
    pub fn is_stream(&self) -> bool {
        match &self.op {
            Operation::Chat(c) => c.stream.unwrap_or(false),
            Operation::Embeddings(_) | Operation::ListModels => false,
        }
    }

    /// The chat body, if this is a chat request.
    #[must_use]
    pub fn as_chat(&self) -> Option<&ChatRequest> {
        match &self.op {
            Operation::Chat(c) => Some(c),
            Operation::Embeddings(_) | Operation::ListModels => None,
        }
    }

    /// The chat body for changing (copied only if shared).
    pub fn chat_mut(&mut self) -> Option<&mut ChatRequest> {
        match &mut self.op {
            Operation::Chat(c) => Some(Arc::make_mut(c)),
            Operation::Embeddings(_) | Operation::ListModels => None,
        }
    }

    /// Short name of the operation, for logs and metrics.
    #[must_use]
    pub fn operation_name(&self) -> &'static str {
        match &self.op {
            Operation::Chat(_) => "chat",
            Operation::Embeddings(_) => "embeddings",
            Operation::ListModels => "list_models",
        }
    }
}
