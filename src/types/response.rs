//! [`LlmResponse`]: what every model-level service answers.

use std::{fmt, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_core::Stream;
use http::HeaderMap;

use super::observe::{Observe, Observer};
use super::{
    chat::{ChatResponse, Usage},
    embeddings::EmbeddingsResponse,
    events::{EventStream, JsonBody},
    models::ModelList,
    relay::{ChatBody, ChunkBody},
    usage::TokenUsage,
};
use crate::error::LlmError;

/// A stream of chat chunks: the one sanctioned box on the response path.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChunkBody, LlmError>> + Send + 'static>>;

/// A complete answer or a stream.
///
/// Every payload is behind a pointer (boxed, or a boxed stream): a response is moved through every
/// layer's future, so the enum stays small.
#[non_exhaustive]
pub enum ResponseBody {
    /// A complete chat completion (typed, or the provider's OpenAI-format bytes).
    Chat(ChatBody),
    /// A complete embeddings response.
    Embeddings(Box<EmbeddingsResponse>),
    /// A chat completion as a stream of chunks.
    Stream(ChatStream),
    /// The model list.
    Models(Box<ModelList>),
    /// A complete answer in the operation's own dialect (Anthropic's Messages, OpenAI's
    /// Responses, …), with its facts.
    Json(Box<JsonBody>),
    /// A stream of server-sent events in the operation's own dialect, each with its facts.
    Events(EventStream),
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Chat(c) => f.debug_tuple("Chat").field(c).finish(),
            Self::Embeddings(e) => f.debug_tuple("Embeddings").field(e).finish(),
            Self::Stream(_) => f.write_str("Stream(..)"),
            Self::Models(m) => f.debug_tuple("Models").field(m).finish(),
            Self::Json(j) => f.debug_tuple("Json").field(j).finish(),
            Self::Events(_) => f.write_str("Events(..)"),
        }
    }
}

impl ResponseBody {
    /// Whether the answer is a stream (its usage arrives with its last chunk).
    #[must_use]
    pub fn is_stream(&self) -> bool {
        matches!(self, Self::Stream(_) | Self::Events(_))
    }

    /// The model the provider says answered, for a complete answer that names one.
    #[must_use]
    pub fn model(&self) -> Option<&str> {
        match self {
            Self::Chat(c) => c.model(),
            Self::Embeddings(e) => e.model.as_deref(),
            Self::Json(j) => j.model.as_deref(),
            Self::Stream(_) | Self::Models(_) | Self::Events(_) => None,
        }
    }

    /// The tokens a complete answer reports (`None` for a stream: its usage comes with its last
    /// chunk; see [`ResponseBody::map_stream`]).
    #[must_use]
    pub fn token_usage(&self) -> Option<TokenUsage> {
        match self {
            Self::Chat(c) => c.usage().map(TokenUsage::from),
            Self::Embeddings(e) => e.usage.as_ref().map(TokenUsage::from),
            Self::Json(j) => j.usage,
            Self::Stream(_) | Self::Models(_) | Self::Events(_) => None,
        }
    }

    /// Wraps a streamed answer's chunks with `f` (an observer of each chunk, a deadline between
    /// chunks, …); a complete answer is returned unchanged. Layers that watch streams use this
    /// rather than matching on the variants, so an operation whose answer streams is observed the
    /// same way.
    #[must_use]
    pub fn map_stream(self, f: impl FnOnce(ChatStream) -> ChatStream) -> Self {
        match self {
            Self::Stream(s) => Self::Stream(f(s)),
            other => other,
        }
    }

    /// Wraps a dialect event stream with `f`; any other answer is returned unchanged (the
    /// counterpart of [`ResponseBody::map_stream`] for [`ResponseBody::Events`]).
    #[must_use]
    pub fn map_events(self, f: impl FnOnce(EventStream) -> EventStream) -> Self {
        match self {
            Self::Events(s) => Self::Events(f(s)),
            other => other,
        }
    }

    /// Watches a streamed answer, whichever kind of stream it is, with the observer `make`
    /// builds ([`Observe`]: chat chunks reach [`Observer::chunk`], dialect events
    /// [`Observer::event`]); a complete answer is returned unchanged and `make` is not called.
    /// This is how the counting layers watch streams without knowing the operation.
    #[must_use]
    pub fn observe_with<O>(self, make: impl FnOnce() -> O) -> Self
    where
        O: Observer + Send + 'static,
    {
        match self {
            Self::Stream(s) => Self::Stream(Box::pin(Observe::new(s, make()))),
            Self::Events(s) => Self::Events(Box::pin(Observe::new(s, make()))),
            other => other,
        }
    }
}

/// What is known about the call that produced a response.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ResponseMeta {
    /// The model group the client asked for.
    pub model_group: Option<Arc<str>>,
    /// The id of the deployment that answered.
    pub deployment_id: Option<Arc<str>>,
    /// The deployment that answered, as called: for a wildcard deployment (`openai/*`), the
    /// concrete one with the upstream model the request named (the cost layer prices by it).
    pub deployment: Option<Arc<super::deployment::Deployment>>,
    /// The provider prefix (`openai`, `anthropic`, …).
    pub provider: Option<Arc<str>>,
    /// The upstream base URL (without credentials).
    pub api_base: Option<Arc<str>>,
    /// Usage, when known before the body is read (complete responses).
    pub usage: Option<Usage>,
    /// Cost in USD, once a cost layer computed it.
    pub cost: Option<f64>,
    /// Whether the answer came from the cache.
    pub cache_hit: bool,
    /// Provider headers worth forwarding (`x-request-id`, `x-ratelimit-*`).
    pub headers: HeaderMap,
    /// Time until the provider's response headers (or first chunk) arrived.
    pub time_to_first_byte: Option<Duration>,
    /// Retries spent before this answer.
    pub attempted_retries: u32,
    /// Fallbacks spent before this answer.
    pub attempted_fallbacks: u32,
}

/// A model-level response: the body plus [`ResponseMeta`].
#[derive(Debug)]
pub struct LlmResponse {
    /// The answer.
    pub body: ResponseBody,
    /// About the call (boxed: a response is moved through every layer's future, and the metadata
    /// is most of its size).
    pub meta: Box<ResponseMeta>,
}

impl LlmResponse {
    /// A complete chat response.
    #[must_use]
    pub fn chat(body: ChatResponse) -> Self {
        Self {
            body: ResponseBody::Chat(ChatBody::from(body)),
            meta: Box::default(),
        }
    }

    /// A complete chat response kept as the provider's OpenAI-format bytes (see [`ChatBody::from_wire`]).
    pub fn chat_wire(bytes: Bytes) -> Result<Self, LlmError> {
        Ok(Self {
            body: ResponseBody::Chat(ChatBody::from_wire(bytes)?),
            meta: Box::default(),
        })
    }

    /// An embeddings response.
    #[must_use]
    pub fn embeddings(body: EmbeddingsResponse) -> Self {
        Self {
            body: ResponseBody::Embeddings(Box::new(body)),
            meta: Box::default(),
        }
    }

    /// The tokens this answer reports: [`ResponseMeta::usage`] when a layer set it, else the
    /// complete body's (`None` for a stream until it ends).
    #[must_use]
    pub fn token_usage(&self) -> Option<TokenUsage> {
        self.meta
            .usage
            .as_ref()
            .map(TokenUsage::from)
            .or_else(|| self.body.token_usage())
    }

    /// This response with its stream's chunks wrapped by `f` (see [`ResponseBody::map_stream`]).
    #[must_use]
    pub fn map_stream(self, f: impl FnOnce(ChatStream) -> ChatStream) -> Self {
        Self {
            body: self.body.map_stream(f),
            meta: self.meta,
        }
    }

    /// This response with its dialect event stream wrapped by `f` (see
    /// [`ResponseBody::map_events`]).
    #[must_use]
    pub fn map_events(self, f: impl FnOnce(EventStream) -> EventStream) -> Self {
        Self {
            body: self.body.map_events(f),
            meta: self.meta,
        }
    }

    /// This response with its stream, of either kind, watched (see
    /// [`ResponseBody::observe_with`]).
    #[must_use]
    pub fn observe_with<O>(self, make: impl FnOnce() -> O) -> Self
    where
        O: Observer + Send + 'static,
    {
        Self {
            body: self.body.observe_with(make),
            meta: self.meta,
        }
    }

    /// A dialect's event stream (see [`ResponseBody::Events`]).
    #[must_use]
    pub fn events(stream: EventStream) -> Self {
        Self {
            body: ResponseBody::Events(stream),
            meta: Box::default(),
        }
    }

    /// A complete answer in a dialect's JSON (see [`ResponseBody::Json`]).
    #[must_use]
    pub fn json(body: JsonBody) -> Self {
        Self {
            body: ResponseBody::Json(Box::new(body)),
            meta: Box::default(),
        }
    }

    /// A streamed chat response.
    #[must_use]
    pub fn stream(stream: ChatStream) -> Self {
        Self {
            body: ResponseBody::Stream(stream),
            meta: Box::default(),
        }
    }
}
