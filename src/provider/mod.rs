//! Provider translation: the bottom bridge between the model level and a provider's HTTP API.
//!
//! A [`Provider`] is a set of pure functions for one wire family: [`Provider::encode`] turns an
//! [`LlmRequest`] into an `http::Request`, [`Provider::decode`] and [`Provider::decode_stream`] turn
//! the provider's answer into an [`LlmResponse`], and [`Provider::classify`] turns a provider error into
//! an [`LlmError`] with the right [`ErrorKind`](crate::ErrorKind). Pure functions mean the conformance
//! corpus tests every translation without a network.
//!
//! [`ProviderService`] (made by [`ProviderLayer`]) puts a provider on top of any HTTP client
//! `tower::Service<http::Request<Full<Bytes>>>`, such as [`HttpClient`].
//!
//! Providers are chosen by the model prefix, as in LiteLLM (`openai/gpt-4o`, `gemini/gemini-2.5-flash`,
//! `vertex_ai/gemini-2.5-flash`, `mock/anything`); see
//! [`lookup`].

pub mod anthropic;
pub(crate) mod audio;
pub mod azure;
pub mod bedrock;
pub mod bridge;
pub(crate) mod chunk;
pub mod cohere;
pub mod compat;
mod deployment;
pub mod gemini;
pub mod mock;
pub mod ollama;
pub mod openai;
pub mod params;
pub(crate) mod passthrough;
mod registry;
pub mod rerank;
pub mod resolve;
mod service;
pub mod sse;

use std::{fmt, pin::Pin};

use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderMap, StatusCode};

pub use self::{
    deployment::{split_provider, stable_id, Deployment},
    registry::{known_prefixes, lookup, Providers, RegisterError, SharedProvider},
    service::{
        forwardable_headers, retry_after, transport_error, ProviderLayer, ProviderService,
        ResponseFuture, DEFAULT_TIMEOUT,
    },
};
/// The one URL redaction, re-exported where deployments are ([`crate::secret::redact_url`]).
pub use crate::secret::redact_url;
/// The HTTP-client level, re-exported from its new home ([`crate::upstream`]) so that code written
/// against `provider::HttpClient` keeps compiling.
pub use crate::upstream::{HttpClient, HttpClientBuilder, HttpFuture, UpstreamBody};
use crate::{
    error::LlmError,
    secret::Secret,
    types::{ChatStream, EventStream, LlmRequest, LlmResponse, OperationKind},
};

/// A credential being fetched by [`Provider::access_token`].
pub type TokenFuture = Pin<Box<dyn std::future::Future<Output = Result<Secret, LlmError>> + Send>>;

/// A credential fetched by [`Provider::access_token`], handed to [`Provider::encode`] in the
/// request's extensions.
#[derive(Clone, Debug)]
pub struct AccessToken(pub Secret);

/// A provider's response body as a stream of byte chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, LlmError>> + Send + 'static>>;

/// One wire family's translation, as pure functions.
pub trait Provider: fmt::Debug + Send + Sync + 'static {
    /// The model prefix that selects this provider (`openai`, `anthropic`, …).
    fn name(&self) -> &'static str;

    /// Whether this family implements `op`. A request for an operation it does not support gets a
    /// 400 naming the provider and the operation ([`unsupported`]) before anything is encoded.
    /// Default: chat only.
    fn supports(&self, op: OperationKind) -> bool {
        op == OperationKind::Chat
    }

    /// Whether this family implements `op` for the deployment `dep` (a family that serves an
    /// operation natively for some models only: OpenAI's text completions, for models that are
    /// not chat models). [`ProviderService`] asks this; an operation not supported here goes
    /// through its [`bridge`] when the family supports chat. Default: [`Provider::supports`].
    fn supports_for(&self, op: OperationKind, _dep: &Deployment) -> bool {
        self.supports(op)
    }

    /// Builds the upstream HTTP request.
    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError>;

    /// Decodes a complete, successful upstream response.
    fn decode(
        &self,
        req: &LlmRequest,
        resp: http::Response<Bytes>,
        dep: &Deployment,
    ) -> Result<LlmResponse, LlmError>;

    /// Decodes a successful streaming response incrementally: one chunk as soon as its event arrives.
    fn decode_stream(
        &self,
        req: &LlmRequest,
        parts: http::response::Parts,
        body: ByteStream,
        dep: &Deployment,
    ) -> Result<ChatStream, LlmError>;

    /// Decodes a successful streaming response of an operation that streams in its own dialect
    /// (Anthropic's Messages, OpenAI's Responses, …, see [`OperationKind::streams_chunks`]) into
    /// events that state their facts ([`StreamEvent`](crate::types::StreamEvent)): for a
    /// same-dialect relay, each upstream event as it came. Default: unsupported (a provider that
    /// `supports` such an operation implements it).
    fn decode_events(
        &self,
        req: &LlmRequest,
        _parts: http::response::Parts,
        _body: ByteStream,
        _dep: &Deployment,
    ) -> Result<EventStream, LlmError> {
        Err(unsupported_by(self.name(), req))
    }

    /// Turns an upstream error response into an [`LlmError`].
    fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        dep: &Deployment,
    ) -> LlmError;

    /// Fetches the credential `encode` needs when it cannot be read from the deployment directly
    /// (an OAuth token exchanged from a service account, cached by the provider until it expires).
    /// [`ProviderService`] awaits it before `encode` and puts it into the request as
    /// [`AccessToken`]. Default: none.
    fn access_token(&self, _dep: &Deployment) -> Option<TokenFuture> {
        None
    }

    /// The OpenAI parameters of `endpoint` this family maps beyond [`params::CORE_PARAMS`] (LiteLLM's
    /// `get_supported_openai_params`); any other OpenAI parameter in a request is refused with a 400,
    /// or dropped with `drop_params` (see [`params`]). `None` (the default): the family forwards the
    /// OpenAI body as it is, so every parameter is supported.
    fn supported_params(&self, _endpoint: params::Endpoint) -> Option<&'static [&'static str]> {
        None
    }

    /// How many inputs one upstream call of an embeddings request to `dep` may carry (Bedrock's
    /// Titan: one; Cohere: 96). A larger batch is sent as several calls, concurrently, and their
    /// answers joined in order ([`ProviderService`]). Default: `None`, no limit.
    fn embedding_inputs_per_call(&self, _dep: &Deployment) -> Option<usize> {
        None
    }

    /// Answers without any network call when the provider is local (the `mock` provider).
    fn respond_locally(
        &self,
        _req: &LlmRequest,
        _dep: &Deployment,
    ) -> Option<Result<LlmResponse, LlmError>> {
        None
    }
}

/// `decode`, `decode_stream` and `classify` for an `impl Provider` block, delegating to a wire
/// family's functions: `$decode(req, body)`, `$stream(provider_name, req, body)` and
/// `$classify(provider_name, status, headers, body)`.
macro_rules! delegate_responses {
    ($decode:path, $stream:path, $classify:path) => {
        fn decode(
            &self,
            req: &$crate::types::LlmRequest,
            resp: ::http::Response<::bytes::Bytes>,
            _dep: &$crate::provider::Deployment,
        ) -> Result<$crate::types::LlmResponse, $crate::error::LlmError> {
            $decode(req, resp.body())
        }

        fn decode_stream(
            &self,
            req: &$crate::types::LlmRequest,
            _parts: ::http::response::Parts,
            body: $crate::provider::ByteStream,
            _dep: &$crate::provider::Deployment,
        ) -> Result<$crate::types::ChatStream, $crate::error::LlmError> {
            Ok($stream(self.name(), req, body))
        }

        fn classify(
            &self,
            status: ::http::StatusCode,
            headers: &::http::HeaderMap,
            body: &[u8],
            _dep: &$crate::provider::Deployment,
        ) -> $crate::error::LlmError {
            $classify(self.name(), status, headers, body)
        }
    };
}

pub(crate) use delegate_responses;

/// The error for an operation a provider does not implement.
#[must_use]
pub fn unsupported(provider: &dyn Provider, req: &LlmRequest) -> LlmError {
    unsupported_by(provider.name(), req)
}

fn unsupported_by(provider: &str, req: &LlmRequest) -> LlmError {
    LlmError::bad_request(format!(
        "the {provider} provider does not support {} requests",
        req.operation_name()
    ))
}
