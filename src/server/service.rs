//! [`OpenAiServer`]: the HTTP edge of the model-level stack (routes, the service, its builder
//! methods). The request's way through it is in `handle`; header names in `headers`.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::Method;
use http_body::Body;
use tower_service::Service;

use super::{
    access::{self, AccessLog, Outcome},
    body::ServerBody,
    call_id::call_id,
    dialect::Dialect,
    handle::{
        handle, BodyLimits, Head, LargeBodyHooks, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_MAX_BODY_BYTES,
    },
    json::error_response,
    readiness::Readiness,
    surface::EdgeSettings,
};
use crate::store::responses::SharedResponseStore;
use crate::{
    auth::Admission,
    clock::Timer,
    error::{BoxError, ErrorKind, LlmError},
    passthrough::PassThroughRoutes,
    types::passthrough::Family,
    types::{LlmRequest, LlmResponse},
};

pub use crate::types::extensions::{CacheControlHeader, CallId, ReceivedAt, RequestTimeout};

/// Serves the OpenAI API over a model-level service.
///
/// Routes: `POST /v1/chat/completions` (and `/chat/completions`), `POST /v1/embeddings` (and
/// `/embeddings`), `GET /v1/models` (and `/models`), `GET /health/liveliness`, `GET
/// /health/readiness`, and Anthropic's `POST /v1/messages` (and `/messages`) and `POST
/// /v1/messages/count_tokens`, whose errors are in Anthropic's shape. The body is parsed once into an [`LlmRequest`]; the answer is JSON, or SSE
/// with one frame per chunk and `data: [DONE]`. Every error is the OpenAI error JSON with its status:
/// malformed JSON → 400 saying where it broke, unknown path → 404, wrong method → 405, body over the
/// limit → 413. The service never fails (`Error = Infallible`) and is `Clone + Send + Sync`, so it
/// mounts in hyper-util or axum as is.
///
/// `/health/readiness` answers what its [`Readiness`] reports ([`OpenAiServer::readiness`]). Each
/// request writes one access-log event at `info` (target `llmgate::access`) when its answer is
/// complete, a stream's when it ends; nothing is captured for it while that event is disabled.
///
/// Extensions written into the [`LlmRequest`]: [`PresentedKey`](crate::auth::PresentedKey), [`CallId`], [`ReceivedAt`],
/// [`CacheControlHeader`] (when the client sent `Cache-Control`), [`GatewayControls`](crate::types::controls::GatewayControls) (when the
/// body sent any gateway control; a wrongly typed one is a 400 naming it), [`StreamTally`] (a stream's,
/// while the access log is on).
///
/// [`StreamTally`]: crate::cost::StreamTally
/// The [`ErrorKind`] of an error response is put into the response extensions.
///
/// Requests for any other path go to the fallback service ([`OpenAiServer::with_fallback`]: an
/// axum `Router` with management routes, say); without one they get a 404 error JSON.
pub struct OpenAiServer<S, F = NotFound> {
    inner: S,
    fallback: F,
    max_body_bytes: usize,
    body_read_timeout: Duration,
    timer: Timer,
    admission: Option<Admission>,
    readiness: Readiness,
    large_body: Option<LargeBodyHooks>,
    pass_through: PassThroughRoutes,
    responses: Option<SharedResponseStore>,
    on_refusal: Option<OnRefusal>,
    edge: EdgeSettings,
}

/// Told of each call the edge refuses before the stack (no valid key at admission, a body that
/// does not parse): the route as LiteLLM names it (`/chat/completions`) and the error. The
/// gateway counts them in its metrics.
pub type OnRefusal = std::sync::Arc<dyn Fn(&'static str, &LlmError) + Send + Sync>;

impl<S: Clone, F: Clone> Clone for OpenAiServer<S, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            fallback: self.fallback.clone(),
            max_body_bytes: self.max_body_bytes,
            body_read_timeout: self.body_read_timeout,
            timer: self.timer,
            admission: self.admission.clone(),
            readiness: self.readiness.clone(),
            large_body: self.large_body,
            pass_through: self.pass_through.clone(),
            responses: self.responses.clone(),
            on_refusal: self.on_refusal.clone(),
            edge: self.edge.clone(),
        }
    }
}

/// The default fallback of [`OpenAiServer`]: 404 with the OpenAI error JSON.
#[derive(Clone, Copy, Debug, Default)]
pub struct NotFound;

impl<B> Service<http::Request<B>> for NotFound {
    type Response = http::Response<ServerBody>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let err = LlmError::new(
            ErrorKind::NotFound,
            format!("Unknown path: {}", req.uri().path()),
        )
        .with_code("unknown_url");
        std::future::ready(Ok(error_response(&err, &call_id(req.headers()))))
    }
}

impl<S, F> fmt::Debug for OpenAiServer<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiServer")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl<S> OpenAiServer<S> {
    /// Serves `inner`, a `Service<LlmRequest, Response = LlmResponse, Error = LlmError>`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            fallback: NotFound,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            timer: Timer::current(),
            admission: None,
            readiness: Readiness::new(),
            large_body: None,
            pass_through: PassThroughRoutes::none(),
            responses: None,
            on_refusal: None,
            edge: EdgeSettings::default(),
        }
    }
}

impl<S, F> OpenAiServer<S, F> {
    /// Sends requests for paths this server does not serve to `fallback` (any
    /// `Service<http::Request<B>>` that never fails, such as an axum `Router`).
    pub fn with_fallback<G>(self, fallback: G) -> OpenAiServer<S, G> {
        OpenAiServer {
            inner: self.inner,
            fallback,
            max_body_bytes: self.max_body_bytes,
            body_read_timeout: self.body_read_timeout,
            timer: self.timer,
            admission: self.admission,
            readiness: self.readiness,
            large_body: self.large_body,
            pass_through: self.pass_through,
            responses: self.responses,
            on_refusal: self.on_refusal,
            edge: self.edge,
        }
    }

    /// Serves the provider pass-through routes (`/anthropic/{path}`, `/openai/{path}`, …: see
    /// [`crate::passthrough`]) of the families `routes` names, each with its model group; the
    /// path of a family without a route goes to the fallback service (default: none).
    #[must_use]
    pub fn pass_through(mut self, routes: PassThroughRoutes) -> Self {
        self.pass_through = routes;
        self
    }

    /// Keeps the Responses API answers the gateway makes through its chat translation in
    /// `store`, for `previous_response_id` and `GET` / `DELETE /v1/responses/{id}` (default: none;
    /// then those are refused for a model served through the translation with a clear error).
    /// See [`crate::store::responses`].
    #[must_use]
    pub fn response_store(mut self, store: Option<SharedResponseStore>) -> Self {
        self.responses = store;
        self
    }

    /// What `/health/readiness` reports (default: no database, no cache).
    #[must_use]
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// The request body limit (default [`DEFAULT_MAX_BODY_BYTES`]); larger bodies get 413.
    #[must_use]
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// The time allowed to receive a request body (default [`DEFAULT_BODY_READ_TIMEOUT`]); a
    /// body still incomplete then gets 408 and its connection is closed.
    #[must_use]
    pub fn body_read_timeout(mut self, limit: Duration) -> Self {
        self.body_read_timeout = limit;
        self
    }

    /// Where the body read deadline is armed (default: the calling runtime's timer).
    #[must_use]
    pub fn timer(mut self, timer: Timer) -> Self {
        self.timer = timer;
        self
    }

    /// Checks each caller's key on the request headers, before the body is read (the stack's
    /// auth layer's [`Admission`]): a caller without a valid key gets 401 (503 when the key
    /// store is down) and its body is never read; its connection is closed.
    #[must_use]
    pub fn admission(mut self, admission: Option<Admission>) -> Self {
        self.admission = admission;
        self
    }

    /// The settings of the edge LiteLLM reads from `general_settings` ([`EdgeSettings`]: the
    /// default moderation model, LiteLLM's exception-class prefix; default: neither).
    #[must_use]
    pub fn edge_settings(mut self, settings: EdgeSettings) -> Self {
        self.edge = settings;
        self
    }

    /// Tells `hook` of each call the edge refuses before the stack ([`OnRefusal`]).
    #[must_use]
    pub fn on_refusal(mut self, hook: Option<OnRefusal>) -> Self {
        self.on_refusal = hook;
        self
    }

    /// What to call around requests with a body of 1 MiB or more (default: nothing); the
    /// `llmgate` binary returns freed memory to the OS with them.
    #[must_use]
    pub fn large_body_hooks(mut self, hooks: Option<LargeBodyHooks>) -> Self {
        self.large_body = hooks;
        self
    }

    /// The model-level service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The model-level service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The model-level service, taken out.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The response future of [`OpenAiServer`].
pub type ServerFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<ServerBody>, Infallible>> + Send>>;

#[derive(Clone, Copy)]
pub(super) enum Route {
    Chat,
    Embeddings,
    Models,
    /// `POST /v1/completions` (legacy text completion).
    Completions,
    /// `GET /v1/models/{model_id}` (OpenAI's `models.retrieve`).
    Model,
    /// `POST /v1/moderations`.
    Moderations,
    /// `POST /v1/images/generations`.
    ImageGenerations,
    /// `POST /v1/images/edits` (multipart).
    ImageEdits,
    /// `POST /v1/audio/transcriptions` (multipart).
    AudioTranscriptions,
    /// `POST /v1/audio/translations` (multipart).
    AudioTranslations,
    /// `POST /v1/audio/speech`.
    AudioSpeech,
    /// `POST /v1/rerank` (also `/v2/rerank`, `/rerank`): Cohere's rerank format.
    Rerank,
    Liveliness,
    Readiness,
    /// `/{family}/{path}`, any method.
    PassThrough(Family),
    /// `POST /v1/messages` (Anthropic's Messages API).
    Messages,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `POST /v1/responses`.
    Responses,
    /// `GET` / `DELETE /v1/responses/{id}`.
    ResponseById,
    /// `GET /v1/responses/{id}/input_items`.
    ResponseInputItems,
    /// `POST /v1/responses/{id}/cancel`.
    ResponseCancel,
}

impl Route {
    /// The id of a `/v1/responses/{id}…` path (with or without `/v1`).
    pub(super) fn response_id(path: &str) -> Option<&str> {
        let rest = path
            .strip_prefix("/v1/responses/")
            .or_else(|| path.strip_prefix("/responses/"))?;
        let id = rest.split('/').next().unwrap_or("");
        (!id.is_empty()).then_some(id)
    }

    /// The route of a `/v1/responses/{id}…` path.
    fn response_item(path: &str) -> Option<Self> {
        let id = Self::response_id(path)?;
        let rest = path
            .strip_prefix("/v1/responses/")
            .or_else(|| path.strip_prefix("/responses/"))?;
        Some(match &rest[id.len()..] {
            "" => Self::ResponseById,
            "/input_items" => Self::ResponseInputItems,
            "/cancel" => Self::ResponseCancel,
            _ => return None,
        })
    }

    /// Whether the route takes `method` (its [`Route::method`], `HEAD` for a `GET` route, and
    /// `DELETE` on a stored response).
    pub(super) fn allows(self, method: &Method) -> bool {
        self.any_method()
            || *method == self.method()
            || (*method == Method::HEAD && self.method() == Method::GET)
            || (*method == Method::DELETE && matches!(self, Self::ResponseById))
    }

    /// The `Allow` header of the route.
    pub(super) fn allow_header(self) -> &'static str {
        match self {
            Self::ResponseById => "GET, HEAD, DELETE",
            _ if self.method() == Method::POST => "POST",
            _ => "GET, HEAD",
        }
    }

    pub(super) fn from_path(path: &str) -> Option<Self> {
        let path = path.strip_suffix('/').unwrap_or(path);
        Some(match path {
            "/v1/chat/completions" | "/chat/completions" => Self::Chat,
            "/v1/embeddings" | "/embeddings" => Self::Embeddings,
            "/v1/models" | "/models" => Self::Models,
            "/v1/completions" | "/completions" => Self::Completions,
            "/v1/moderations" | "/moderations" => Self::Moderations,
            "/v1/images/generations" | "/images/generations" => Self::ImageGenerations,
            "/v1/images/edits" | "/images/edits" => Self::ImageEdits,
            "/v1/audio/transcriptions" | "/audio/transcriptions" => Self::AudioTranscriptions,
            "/v1/audio/translations" | "/audio/translations" => Self::AudioTranslations,
            "/v1/audio/speech" | "/audio/speech" => Self::AudioSpeech,
            "/v1/rerank" | "/v2/rerank" | "/rerank" => Self::Rerank,
            "/health/liveliness" | "/health/liveness" => Self::Liveliness,
            "/health/readiness" => Self::Readiness,
            "/v1/messages" | "/messages" => Self::Messages,
            "/v1/messages/count_tokens" | "/messages/count_tokens" => Self::CountTokens,
            "/v1/responses" | "/responses" => Self::Responses,
            _ if Self::model_id(path).is_some() => Self::Model,
            _ => {
                if let Some(item) = Self::response_item(path) {
                    return Some(item);
                }
                // Azure-style routes first: `/openai/deployments/…` is not a pass-through.
                if let Some((route, _)) = Self::azure(path) {
                    return Some(route);
                }
                return Family::split_path(path).map(|(f, _)| Self::PassThrough(f));
            }
        })
    }

    /// An Azure-style route, as the `AzureOpenAI` SDK calls it (and LiteLLM serves it):
    /// `/openai/deployments/{model}/chat/completions`, `…/completions`, `…/embeddings`, also
    /// under `/engines/{model}/…`; the route and the `{model}` it names (which wins over the
    /// body's `model`). Matched before anything the fallback service serves (a pass-through
    /// `/openai/{path}` route included).
    pub(super) fn azure(path: &str) -> Option<(Self, &str)> {
        let path = path.strip_suffix('/').unwrap_or(path);
        let rest = path
            .strip_prefix("/openai/deployments/")
            .or_else(|| path.strip_prefix("/openai/engines/"))
            .or_else(|| path.strip_prefix("/engines/"))?;
        let (route, model) = if let Some(m) = rest.strip_suffix("/chat/completions") {
            (Self::Chat, m)
        } else if let Some(m) = rest.strip_suffix("/completions") {
            (Self::Completions, m)
        } else if let Some(m) = rest.strip_suffix("/embeddings") {
            (Self::Embeddings, m)
        } else if let Some(m) = rest.strip_suffix("/images/generations") {
            (Self::ImageGenerations, m)
        } else if let Some(m) = rest.strip_suffix("/images/edits") {
            (Self::ImageEdits, m)
        } else if let Some(m) = rest.strip_suffix("/audio/transcriptions") {
            (Self::AudioTranscriptions, m)
        } else if let Some(m) = rest.strip_suffix("/audio/translations") {
            (Self::AudioTranslations, m)
        } else if let Some(m) = rest.strip_suffix("/audio/speech") {
            (Self::AudioSpeech, m)
        } else {
            return None;
        };
        (!model.is_empty()).then_some((route, model))
    }

    /// The `{model_id}` of `/v1/models/{model_id}` (or `/models/{model_id}`), as the path spells
    /// it (percent-encoded): everything after the prefix, slashes included (`openai/gpt-4o`).
    pub(super) fn model_id(path: &str) -> Option<&str> {
        let path = path.strip_suffix('/').unwrap_or(path);
        path.strip_prefix("/v1/models/")
            .or_else(|| path.strip_prefix("/models/"))
            .filter(|id| !id.is_empty())
    }

    /// The route as the access log names it.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "/v1/chat/completions",
            Self::Embeddings => "/v1/embeddings",
            Self::Models => "/v1/models",
            Self::Completions => "/v1/completions",
            Self::Model => "/v1/models/{model_id}",
            Self::Moderations => "/v1/moderations",
            Self::ImageGenerations => "/v1/images/generations",
            Self::ImageEdits => "/v1/images/edits",
            Self::AudioTranscriptions => "/v1/audio/transcriptions",
            Self::AudioTranslations => "/v1/audio/translations",
            Self::AudioSpeech => "/v1/audio/speech",
            Self::Rerank => "/v1/rerank",
            Self::Liveliness => "/health/liveliness",
            Self::Readiness => "/health/readiness",
            Self::PassThrough(f) => f.route(),
            Self::Messages => "/v1/messages",
            Self::CountTokens => "/v1/messages/count_tokens",
            Self::Responses => "/v1/responses",
            Self::ResponseById => "/v1/responses/{id}",
            Self::ResponseInputItems => "/v1/responses/{id}/input_items",
            Self::ResponseCancel => "/v1/responses/{id}/cancel",
        }
    }

    /// The wire dialect the route speaks (how its errors are written).
    pub(super) fn dialect(self) -> Dialect {
        match self {
            Self::Chat
            | Self::Embeddings
            | Self::Models
            | Self::Completions
            | Self::Model
            | Self::Moderations
            | Self::ImageGenerations
            | Self::ImageEdits
            | Self::AudioTranscriptions
            | Self::AudioTranslations
            | Self::AudioSpeech
            | Self::Rerank
            | Self::Liveliness
            | Self::Readiness
            | Self::PassThrough(Family::OpenAi | Family::Azure) => Dialect::OpenAi,
            Self::PassThrough(Family::Anthropic) => Dialect::Anthropic,
            Self::PassThrough(Family::Gemini | Family::VertexAi) => Dialect::Google,
            Self::PassThrough(Family::Bedrock) => Dialect::Bedrock,
            Self::PassThrough(Family::Ollama) => Dialect::Ollama,
            Self::Messages | Self::CountTokens => Dialect::Anthropic,
            Self::Responses => Dialect::Responses,
            Self::ResponseById | Self::ResponseInputItems | Self::ResponseCancel => Dialect::OpenAi,
        }
    }

    pub(super) fn method(self) -> Method {
        match self {
            Self::Chat
            | Self::Embeddings
            | Self::Completions
            | Self::Moderations
            | Self::ImageGenerations
            | Self::ImageEdits
            | Self::AudioTranscriptions
            | Self::AudioTranslations
            | Self::AudioSpeech
            | Self::Rerank
            | Self::Messages
            | Self::CountTokens
            | Self::Responses
            | Self::ResponseCancel
            | Self::PassThrough(_) => Method::POST,
            Self::Models
            | Self::Model
            | Self::Liveliness
            | Self::Readiness
            | Self::ResponseById
            | Self::ResponseInputItems => Method::GET,
        }
    }

    /// The operation of a multipart upload route.
    pub(super) fn upload_kind(self) -> Option<crate::types::OperationKind> {
        use crate::types::OperationKind as K;
        match self {
            Self::ImageEdits => Some(K::ImageEdits),
            Self::AudioTranscriptions => Some(K::AudioTranscriptions),
            Self::AudioTranslations => Some(K::AudioTranslations),
            _ => None,
        }
    }

    /// Whether the route takes any method (the pass-through routes).
    pub(super) fn any_method(self) -> bool {
        matches!(self, Self::PassThrough(_))
    }
}

impl<S, F, FB, B> Service<http::Request<B>> for OpenAiServer<S, F>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError> + Clone + Send + 'static,
    S::Future: Send + 'static,
    F: Service<http::Request<B>, Response = http::Response<FB>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    F::Future: Send + 'static,
    FB: Body<Data = Bytes> + Send + 'static,
    FB::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<ServerBody>;
    type Error = Infallible;
    type Future = ServerFuture;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // `/openai/v1/{route}` (an OpenAI client pointed at `…/openai/v1`) is the plain route.
        // With the OpenAI pass-through served, only the Responses routes (as LiteLLM).
        if req.uri().path().starts_with("/openai/v1/") {
            let passes = Family::split_path(req.uri().path())
                .is_some_and(|(f, _)| self.pass_through.group(f).is_some());
            let plain = super::surface::openai_v1_route(req.uri().path(), passes)
                .and_then(|p| super::surface::with_path(req.uri(), p));
            if let Some(uri) = plain {
                *req.uri_mut() = uri;
            }
        }
        // A pass-through family without a route is not served here.
        let pass_through = &self.pass_through;
        let route = Route::from_path(req.uri().path()).filter(|r| match r {
            Route::PassThrough(f) => pass_through.group(*f).is_some(),
            _ => true,
        });
        let Some(route) = route else {
            let clone = self.fallback.clone();
            let mut fallback = std::mem::replace(&mut self.fallback, clone);
            let log = access::enabled().then(|| {
                AccessLog::for_path(
                    req.method().clone(),
                    req.uri().path(),
                    call_id(req.headers()),
                )
            });
            return Box::pin(async move {
                std::future::poll_fn(|cx| fallback.poll_ready(cx)).await?;
                let resp = fallback.call(req).await?;
                if let Some(log) = log {
                    log.emit(&Outcome {
                        status: resp.status().as_u16(),
                        ..Outcome::default()
                    });
                }
                Ok(resp.map(ServerBody::boxed))
            });
        };
        // The head is read here, before any await: the future keeps only what the call needs
        // (an `async fn` taking the request would hold it twice, as its argument and as the
        // parts it was split into; rust-lang/rust#62958).
        let (parts, body) = req.into_parts();
        match Head::read(&parts, route, &self.readiness) {
            Ok(mut head) => {
                head.apply(&self.edge);
                if let Route::PassThrough(f) = route {
                    if let Some(group) = self.pass_through.group(f) {
                        head.set_pass_through_group(group);
                    }
                }
                drop(parts);
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let limits = BodyLimits {
                    max_bytes: self.max_body_bytes,
                    read_timeout: self.body_read_timeout,
                    timer: self.timer,
                    large: self.large_body,
                };
                let admission = self.admission.clone();
                let responses = self.responses.clone();
                let refused = self.on_refusal.clone();
                Box::pin(handle(inner, admission, limits, head, body, responses, refused).map(Ok))
            }
            Err(answered) => answered,
        }
    }
}
