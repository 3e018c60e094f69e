//! One request's way through the edge: its head read once, the key checked before the body, the
//! body read under its limits, the call, and the answer (JSON or SSE) with its headers.

use std::{
    future::Future,
    sync::Arc,
    task::Poll,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{future::Either, FutureExt as _, StreamExt as _};
use http::{header, HeaderValue, Method, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use tower_service::Service;

use super::{
    access::{self, AccessLog, Outcome},
    body::ServerBody,
    dialect::Dialect,
    headers::insert_call_id,
    headers::{self, EdgeHeaders, X_ACCEL_BUFFERING},
    json::{error_response, json_response, parse_json, to_json},
    readiness::Readiness,
    service::{CacheControlHeader, CallId, ReceivedAt, RequestTimeout, Route, ServerFuture},
};
use crate::{
    auth::{Admission, PresentedKey},
    error::{BoxError, ErrorKind, LlmError},
    provider::bridge::responses::ResponsesContext,
    secret::Secret,
    store::responses::{owner_of, RelayedResponse, SharedResponseStore},
    types::{
        chat::ChatRequest,
        completions::CompletionsRequest,
        controls::{check_model, GatewayControls, ModelMissing},
        embeddings::EmbeddingsRequest,
        media::{ImagesRequest, SpeechRequest, UploadRequest},
        messages::{AnthropicHeaders, MessagesRequest, X_LLMGATE_TOKEN_COUNT},
        moderations::ModerationsRequest,
        passthrough::{forwarded_headers, split_query_key, Family, PassThroughRequest, RelayHead},
        rerank::RerankRequest,
        responses::{PinnedDeployment, ResponseAction, ResponseObjectRequest, ResponsesRequest},
        LlmRequest, LlmResponse, Operation, ResponseBody, TokenUsage,
    },
};

/// Default request body limit: 32 MiB (room for a few base64 images).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 << 20;

/// Default time allowed to receive a request body, from the end of its headers: 60 s (nginx's
/// `client_body_timeout`).
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// What the edge needs from a request's head, read once and owned.
pub(super) struct Head {
    received: Instant,
    call_id: Arc<str>,
    route: Route,
    content_length: Option<u64>,
    /// HTTP/1.x: a refusal that leaves the body unread says `Connection: close` (HTTP/2 has no
    /// such header; hyper resets the stream instead).
    http1: bool,
    presented_key: Option<Secret>,
    cache_control: Option<HeaderValue>,
    timeout: Option<RequestTimeout>,
    trace_parent: Option<crate::types::extensions::TraceParent>,
    /// The `{model_id}` of `GET /v1/models/{model_id}`, decoded.
    model_id: Option<Box<str>>,
    /// The `{model}` of an Azure-style route (`/openai/deployments/{model}/…`), decoded.
    path_model: Option<Box<str>>,
    /// The `Content-Type` of a multipart upload route (its boundary).
    content_type: Option<HeaderValue>,
    /// `anthropic-version` / `anthropic-beta` on the Messages routes (sent on to Anthropic).
    anthropic: Option<Box<AnthropicHeaders>>,
    /// Boxed: the request future carries the head, and the log is off in benchmarks.
    log: Option<Box<AccessLog>>,
    /// A pass-through route's request line and headers (boxed: other routes carry `None`).
    pass_through: Option<Box<PassThroughHead>>,
    /// The `{id}` of a `/v1/responses/{id}…` route, whether the method is `DELETE`, and the
    /// query string.
    response_id: Option<ResponseIdHead>,
    /// The model every request of the route goes to (`general_settings.moderation_model`).
    server_model: Option<Arc<str>>,
    /// Write LiteLLM's `litellm.<Class>: ` prefix into the call's errors.
    litellm_prefix: bool,
}

/// What a `/v1/responses/{id}…` request keeps of its head.
struct ResponseIdHead {
    id: Box<str>,
    delete: bool,
    query: Option<String>,
}

/// What a pass-through request keeps of its head.
struct PassThroughHead {
    family: Family,
    method: Method,
    path: String,
    query: Option<String>,
    headers: http::HeaderMap,
    group: Arc<str>,
}

impl Head {
    /// The head of a request to a known route, or the answer when the head alone decides it (a
    /// method the route does not take, the health routes).
    pub(super) fn read(
        parts: &http::request::Parts,
        route: Route,
        readiness: &Readiness,
    ) -> Result<Self, ServerFuture> {
        let received = Instant::now();
        let seen = EdgeHeaders::read(&parts.headers);
        let call_id = seen.call_id();
        let log = access::enabled().then(|| {
            Box::new(AccessLog::new(
                parts.method.clone(),
                std::borrow::Cow::Borrowed(route.as_str()),
                call_id.clone(),
                received,
            ))
        });
        let answer = |resp: http::Response<ServerBody>| -> ServerFuture {
            if let Some(log) = &log {
                log.emit(&Outcome {
                    status: resp.status().as_u16(),
                    ..Outcome::default()
                });
            }
            Box::pin(std::future::ready(Ok(resp)))
        };
        if !route.allows(&parts.method) {
            let err = LlmError::new(
                ErrorKind::BadRequest,
                format!(
                    "Method {} is not allowed on {}; use {}",
                    parts.method,
                    parts.uri.path(),
                    route.method()
                ),
            )
            .with_status(StatusCode::METHOD_NOT_ALLOWED)
            .with_code("method_not_allowed");
            let mut resp = route.dialect().error_response(&err, &call_id);
            resp.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static(route.allow_header()),
            );
            return Err(answer(resp));
        }
        match route {
            Route::Liveliness => {
                return Err(answer(json_response(
                    StatusCode::OK,
                    Bytes::from_static(b"\"I'm alive!\""),
                    &call_id,
                )))
            }
            Route::Readiness => {
                let readiness = readiness.clone();
                return Err(Box::pin(async move {
                    let resp = match readiness.check().await {
                        Ok(body) => json_response(StatusCode::OK, body, &call_id),
                        Err(e) => error_response(&e, &call_id),
                    };
                    if let Some(log) = log {
                        log.emit(&Outcome {
                            status: resp.status().as_u16(),
                            ..Outcome::default()
                        });
                    }
                    Ok(resp)
                }));
            }
            _ => {}
        }
        let mut presented_key = None;
        let pass_through = match route {
            Route::PassThrough(family) => {
                let (query, query_key) = if family == Family::Gemini {
                    split_query_key(parts.uri.query())
                } else {
                    (parts.uri.query().map(str::to_owned), None)
                };
                if family == Family::Gemini {
                    // Gemini clients present their key as `?key=` or `x-goog-api-key` (LiteLLM
                    // takes either as the gateway's key on this route).
                    presented_key = query_key.map(Secret::new).or_else(|| {
                        parts
                            .headers
                            .get("x-goog-api-key")
                            .and_then(|v| v.to_str().ok())
                            .map(|v| Secret::new(v.trim()))
                    });
                }
                let path = Family::split_path(parts.uri.path()).map_or("", |(_, p)| p);
                Some(Box::new(PassThroughHead {
                    family,
                    method: parts.method.clone(),
                    path: path.to_owned(),
                    query,
                    headers: forwarded_headers(&parts.headers),
                    group: Arc::from(""),
                }))
            }
            _ => None,
        };
        Ok(Self {
            pass_through,
            received,
            route,
            http1: parts.version <= http::Version::HTTP_11,
            content_length: seen
                .content_length
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.parse::<u64>().ok()),
            presented_key: presented_key.or_else(|| seen.presented_key()),
            cache_control: seen.cache_control.cloned(),
            timeout: seen.timeout.and_then(RequestTimeout::from_header_value),
            trace_parent: seen
                .traceparent
                .map(|v| crate::types::extensions::TraceParent {
                    traceparent: v.clone(),
                    tracestate: seen.tracestate.cloned(),
                }),
            path_model: Route::azure(parts.uri.path())
                .map(|(_, model)| super::surface::percent_decode(model)),
            model_id: matches!(route, Route::Model)
                .then(|| Route::model_id(parts.uri.path()).map(super::surface::percent_decode))
                .flatten(),
            anthropic: matches!(route, Route::Messages | Route::CountTokens)
                .then(|| anthropic_headers(&parts.headers)),
            content_type: route
                .upload_kind()
                .and_then(|_| parts.headers.get(header::CONTENT_TYPE).cloned()),
            call_id,
            log,
            response_id: Route::response_id(parts.uri.path())
                .filter(|_| {
                    matches!(
                        route,
                        Route::ResponseById | Route::ResponseInputItems | Route::ResponseCancel
                    )
                })
                .map(|id| ResponseIdHead {
                    id: id.into(),
                    delete: parts.method == http::Method::DELETE,
                    query: parts.uri.query().map(str::to_owned),
                }),
            server_model: None,
            litellm_prefix: false,
        })
    }

    /// What the edge's settings say for this request.
    pub(super) fn apply(&mut self, edge: &super::surface::EdgeSettings) {
        if matches!(self.route, Route::Moderations) {
            self.server_model.clone_from(&edge.moderation_model);
        }
        self.litellm_prefix = edge.litellm_exception_prefix;
    }

    /// Names the model group a pass-through request's calls go to.
    pub(super) fn set_pass_through_group(&mut self, group: &Arc<str>) {
        if let Some(pt) = &mut self.pass_through {
            pt.group = group.clone();
        }
    }

    /// The pass-through request `bytes` (its body) make with the head.
    fn parse_pass_through(
        &mut self,
        bytes: Bytes,
        upload: Option<crate::types::passthrough::Upload>,
    ) -> Result<LlmRequest, LlmError> {
        let head = self
            .pass_through
            .take()
            .ok_or_else(|| LlmError::internal("a pass-through route without its head"))?;
        let PassThroughHead {
            family,
            method,
            path,
            query,
            headers,
            group,
        } = *head;
        let mut pt = PassThroughRequest::new(family, &*group, method, &path);
        pt.query = query;
        pt.headers = headers;
        pt.body = bytes;
        pt.upload = upload;
        let mut req = LlmRequest::new(Operation::PassThrough(Arc::new(pt)));
        // The body is the provider's: no gateway control is read from it.
        req.set_controls(None);
        Ok(req)
    }

    /// The request a body route's bytes make. A body that names no model (`model` absent,
    /// `null` or `""`) still makes one, with an empty model, marked [`ModelMissing`] and with
    /// fallbacks off: it goes through the stack, whose layers record the failed call (its
    /// spend-log row), and is refused above the router with LiteLLM's invalid-model error. When
    /// not even a placeholder request can be made, that error is answered here.
    fn parse(&self, bytes: &Bytes) -> Result<LlmRequest, LlmError> {
        let (mut req, shown) = match self.parse_body(bytes) {
            Ok(req) if req.model().is_empty() && self.route.upload_kind().is_none() => {
                let shown = super::surface::shown_missing(bytes);
                (req, shown)
            }
            Ok(req) => (req, ""),
            Err(e) => {
                let Some(shown) = super::surface::missing_model(self.route, bytes, &e) else {
                    return Err(e);
                };
                (self.model_less(bytes, shown)?, shown)
            }
        };
        if req.model().is_empty() && !matches!(self.route, Route::PassThrough(_)) {
            req.extensions.insert(ModelMissing(shown));
            let mut controls = req.controls().into_owned();
            controls.disable_fallbacks = Some(true);
            req.set_controls(Some(controls));
        }
        Ok(req)
    }

    /// The request of a body that names no model, with an empty model: the body itself with
    /// `"model": ""`, else the route's least body; a multipart upload keeps none of its parts.
    fn model_less(&self, bytes: &Bytes, shown: &'static str) -> Result<LlmRequest, LlmError> {
        if let Some(kind) = self.route.upload_kind() {
            return Ok(LlmRequest::upload(UploadRequest {
                kind,
                model: String::new(),
                parts: Vec::new(),
            }));
        }
        super::surface::with_empty_model(bytes)
            .and_then(|b| self.parse_body(&b).ok())
            .or_else(|| {
                let least = Bytes::from_static(super::surface::placeholder_body(self.route));
                self.parse_body(&least).ok()
            })
            .ok_or_else(|| super::surface::model_missing_error(self.route, shown))
    }

    fn parse_body(&self, bytes: &Bytes) -> Result<LlmRequest, LlmError> {
        let bytes = bytes.clone();
        // The bytes stay with the request: an OpenAI-format upstream is sent them (see
        // `LlmRequest::raw_body`).
        // The gateway controls are typed here, once: a wrongly typed one is a 400 naming it.
        let (controls, mut req) = if matches!(self.route, Route::Messages | Route::CountTokens) {
            let body: MessagesRequest = parse_json(&bytes)?;
            check_model(&body.model)?;
            if body.messages.is_none() {
                return Err(
                    LlmError::bad_request("messages: Field required").with_param("messages")
                );
            }
            // Anthropic's `metadata` is its own (`user_id`), not the gateway's.
            let controls = GatewayControls::parse(&body.extra, None, None)?;
            let count = matches!(self.route, Route::CountTokens);
            (
                controls,
                LlmRequest::messages_from_bytes(body, bytes, count),
            )
        } else if matches!(self.route, Route::Responses) {
            let body: ResponsesRequest = parse_json(&bytes)?;
            check_model(&body.model)?;
            let controls = GatewayControls::parse(&body.extra, body.metadata.as_ref(), None)?;
            (controls, LlmRequest::responses_from_bytes(body, bytes))
        } else if matches!(self.route, Route::Chat) {
            let body: ChatRequest = parse_json(&bytes)?;
            check_model(&body.model)?;
            let controls = GatewayControls::parse(
                &body.extra,
                body.metadata.as_ref(),
                body.mock_response.as_ref(),
            )?;
            (controls, LlmRequest::chat_from_bytes(body, bytes))
        } else if let Some(kind) = self.route.upload_kind() {
            // Multipart: the parts are kept, not the bytes; no gateway control is read from it.
            let content_type = self
                .content_type
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let body = UploadRequest::parse(kind, content_type, bytes)?;
            (None, LlmRequest::upload(body))
        } else if matches!(self.route, Route::ImageGenerations) {
            let body: ImagesRequest = parse_json(&bytes)?;
            check_model(&body.model)?;
            let controls = GatewayControls::parse(&body.extra, body.metadata.as_ref(), None)?;
            (
                controls,
                LlmRequest::image_generations_from_bytes(body, bytes),
            )
        } else if matches!(self.route, Route::AudioSpeech) {
            let body: SpeechRequest = parse_json(&bytes)?;
            check_model(&body.model)?;
            let controls = GatewayControls::parse(&body.extra, body.metadata.as_ref(), None)?;
            (controls, LlmRequest::speech_from_bytes(body, bytes))
        } else if matches!(self.route, Route::Moderations) {
            let body: ModerationsRequest = parse_json(&bytes)?;
            check_model(body.model_name())?;
            let controls = GatewayControls::parse(&body.extra, body.metadata.as_ref(), None)?;
            (controls, LlmRequest::moderations_from_bytes(body, bytes))
        } else if matches!(self.route, Route::Rerank) {
            let body: RerankRequest = parse_json(&bytes)?;
            check_model(&body.model)?;
            let controls = GatewayControls::parse(&body.extra, body.metadata.as_ref(), None)?;
            (controls, LlmRequest::rerank_from_bytes(body, bytes))
        } else if matches!(self.route, Route::Completions) {
            let body: CompletionsRequest = parse_json(&bytes)?;
            check_model(&body.model)?;
            let controls = GatewayControls::parse(
                &body.extra,
                body.metadata.as_ref(),
                body.mock_response.as_ref(),
            )?;
            (controls, LlmRequest::completions_from_bytes(body, bytes))
        } else {
            let body: EmbeddingsRequest = parse_json(&bytes)?;
            check_model(&body.model)?;
            let controls = GatewayControls::parse(&body.extra, body.metadata.as_ref(), None)?;
            (controls, LlmRequest::embeddings_from_bytes(body, bytes))
        };
        req.set_controls(controls);
        if let Some(model) = self.server_model.as_deref() {
            // LiteLLM's `moderation_model`: the server's model wins over the body's.
            check_model(model)?;
            req.set_model(model);
        }
        if let Some(model) = self.path_model.as_deref() {
            // The deployment named in an Azure-style path wins over the body's `model`.
            check_model(model)?;
            if req.model() != model {
                req.set_model(model);
            }
        }
        Ok(req)
    }

    /// `req` with what the layers read from the head in its extensions.
    fn annotate(self, mut req: LlmRequest) -> LlmRequest {
        if let Some(key) = self.presented_key {
            req.extensions.insert(PresentedKey(key));
        }
        req.extensions.insert(CallId(self.call_id));
        req.extensions.insert(ReceivedAt(self.received));
        if let Some(cc) = self.cache_control {
            req.extensions.insert(CacheControlHeader(cc));
        }
        if let Some(t) = self.timeout {
            req.extensions.insert(t);
        }
        if let Some(t) = self.trace_parent {
            req.extensions.insert(t);
        }
        if let Some(a) = self.anthropic {
            req.extensions.insert(*a);
        }
        req
    }
}

/// How much request body the edge reads, and for how long.
#[derive(Clone, Copy)]
pub(super) struct BodyLimits {
    pub(super) max_bytes: usize,
    pub(super) read_timeout: Duration,
    pub(super) timer: crate::clock::Timer,
    pub(super) large: Option<LargeBodyHooks>,
}

/// What the edge calls around a request whose body is large (at least 1 MiB): `on_read` once the
/// body is read, `after_call` on the same thread once the stack answered (the body is freed by
/// then, unless a stream still holds the request). The `llmgate` binary hands freed memory back
/// to the OS with them (mimalloc's `mi_collect`); a library user's allocator may need nothing.
/// Plain functions: they run on the request path, and a large body is rare.
#[derive(Clone, Copy, Debug)]
pub struct LargeBodyHooks {
    /// Called once a large body has been read.
    pub on_read: fn(),
    /// Called on the serving thread after the call of a request with a large body.
    pub after_call: fn(),
}

pub(super) async fn handle<S, B>(
    mut inner: S,
    admission: Option<Admission>,
    limit: BodyLimits,
    mut head: Head,
    body: B,
    responses: Option<SharedResponseStore>,
    refused: Option<super::service::OnRefusal>,
) -> http::Response<ServerBody>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let call_id = head.call_id.clone();
    let route = head.route;
    let model_id = head.model_id.take();
    let dialect = head.route.dialect();
    // A pass-through, a transcription (text, srt, vtt, …) and speech (audio bytes) are relayed
    // with the upstream's status and content type.
    let relay = matches!(
        head.route,
        Route::PassThrough(_)
            | Route::AudioTranscriptions
            | Route::AudioTranslations
            | Route::AudioSpeech
    )
    .then(RelayHead::new);
    let counted = matches!(head.route, Route::CountTokens);
    let litellm_prefix = head.litellm_prefix;
    let received = head.received;
    let mut log = head.log.take();
    let http1 = head.http1;
    let mut large = false;
    if let Some(admission) = &admission {
        if let Err(e) = admission.check(head.presented_key.as_ref()).await {
            if let Some(f) = &refused {
                f(super::surface::litellm_route(route), &e);
            }
            // The body is never read: the connection ends with this answer.
            let mut resp = failed(&e, dialect, &call_id, log.as_deref());
            if head.http1 {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return resp;
        }
    }
    // A call on a response an OpenAI or Azure deployment made: sent to that deployment.
    let mut relayed_object = None;
    if let Some(rid) = head.response_id.take() {
        // A stored response: answered here, from the gateway's store.
        let owner = owner_of(head.presented_key.as_ref());
        let resp = stored_response(responses.as_ref(), head.route, &rid, &owner).await;
        let resp = match resp {
            Ok(Stored::Relayed(r)) => {
                relayed_object = Some((r, owner));
                None
            }
            Ok(Stored::Answer(bytes)) => Some(Ok(bytes)),
            Err(e) => Some(Err(e)),
        };
        if let Some(resp) = resp {
            return match resp {
                Ok(bytes) => {
                    let resp = json_response(StatusCode::OK, bytes, &call_id);
                    if let Some(log) = &log {
                        log.emit(&Outcome {
                            status: resp.status().as_u16(),
                            ..Outcome::default()
                        });
                    }
                    resp
                }
                Err(e) => failed(&e, dialect, &call_id, log.as_deref()),
            };
        }
    }
    // The caller's owner id for the response store (before the key moves into the request).
    let owner = (matches!(head.route, Route::Responses) && responses.is_some())
        .then(|| owner_of(head.presented_key.as_ref()));
    let parsed = match head.route {
        Route::Chat
        | Route::Embeddings
        | Route::Completions
        | Route::Moderations
        | Route::ImageGenerations
        | Route::ImageEdits
        | Route::AudioTranscriptions
        | Route::AudioTranslations
        | Route::AudioSpeech
        | Route::Rerank
        | Route::Messages
        | Route::CountTokens
        | Route::Responses => read_body(head.content_length, body, limit)
            .await
            .and_then(|bytes| {
                large = bytes.len() >= LARGE_BODY_BYTES;
                head.parse(&bytes)
            }),
        Route::PassThrough(_) => read_pass_through(head.content_length, body, limit)
            .await
            .and_then(|(bytes, upload)| head.parse_pass_through(bytes, upload)),
        // Health routes answer in `Head::read`; `/v1/models` has no body.
        Route::Models | Route::Model | Route::Liveliness | Route::Readiness => {
            Ok(LlmRequest::list_models())
        }
        Route::ResponseById | Route::ResponseInputItems | Route::ResponseCancel => {
            match &relayed_object {
                Some((obj, _)) => Ok(LlmRequest::new(Operation::ResponseObject(Arc::new(
                    obj.request.clone(),
                )))),
                None => Ok(LlmRequest::list_models()),
            }
        }
    };
    let mut llm_req = match parsed {
        Ok(r) => head.annotate(r),
        Err(e) => {
            if let Some(f) = &refused {
                f(super::surface::litellm_route(route), &e);
            }
            let mut resp = failed(&e, dialect, &call_id, log.as_deref());
            if http1 && resp.status() == StatusCode::REQUEST_TIMEOUT {
                // The rest of a late body is not waited for: the connection ends here.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return resp;
        }
    };
    if let Some(relay) = &relay {
        llm_req.extensions.insert(relay.clone());
    }
    if let Some((obj, _)) = &relayed_object {
        llm_req
            .extensions
            .insert(PinnedDeployment(obj.record.deployment.clone()));
    }
    if let (Some(store), Some(owner)) = (&responses, owner) {
        if let Err(e) = attach_response_store(&mut llm_req, store.clone(), owner).await {
            return failed(&e, dialect, &call_id, log.as_deref());
        }
    }
    if let Some(log) = &mut log {
        log.set_model(llm_req.model());
        if llm_req.is_stream() {
            llm_req.extensions.insert(log.tally());
        }
    }

    if let Err(e) = std::future::poll_fn(|cx| inner.poll_ready(cx)).await {
        return failed(&e, dialect, &call_id, log.as_deref());
    }
    // The body, kept (one reference count) for the error that names the model asked for, and
    // the timeout the request set, echoed on a timeout error.
    let asked = llm_req.op.clone();
    let missing = llm_req.extensions.get::<ModelMissing>().map(|m| m.0);
    let asked_timeout = super::surface::requested_timeout(&llm_req);
    let resp = inner.call(llm_req).await;
    if large {
        // The body is freed by now (unless a stream still holds the request): the binary hands
        // this thread's free pages back, for its janitor to return to the OS.
        if let Some(hooks) = limit.large {
            (hooks.after_call)();
        }
    }
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(
                kind = e.kind().as_str(),
                status = e.status().as_u16(),
                "request failed"
            );
            let mut e =
                super::surface::litellm_model_error(route, missing.unwrap_or(asked.model()), e);
            super::surface::echo_timeout(&mut e, asked_timeout);
            if litellm_prefix {
                super::surface::litellm_prefix(&mut e);
            }
            return failed(&e, dialect, &call_id, log.as_deref());
        }
    };
    drop(asked);
    if let (Some((obj, owner)), Some(store)) = (&relayed_object, &responses) {
        if obj.request.action == ResponseAction::Delete {
            // The provider deleted it: forgotten here too.
            if let Err(e) = store.delete_relayed(&obj.record.id, owner).await {
                tracing::warn!(error = %e, "could not forget a deleted relayed response");
            }
        }
    }
    let resp = match model_id {
        Some(id) => match super::surface::retrieve_model(resp, &id) {
            Ok(r) => r,
            Err(e) => return failed(&e, dialect, &call_id, log.as_deref()),
        },
        None => resp,
    };
    let mut out = match relay {
        Some(relay) => respond_relay(resp, &relay, dialect, &call_id, received, log).await,
        None => respond(resp, dialect, &call_id, received, log, litellm_prefix).await,
    };
    if counted && out.status() == StatusCode::OK {
        // The gateway's estimate says so; any other count is the provider's own.
        out.headers_mut()
            .entry(X_LLMGATE_TOKEN_COUNT)
            .or_insert(HeaderValue::from_static("provider"));
    }
    out
}

/// A pass-through's answer: the upstream's status and headers, and its body streamed as it
/// comes (an error mid-body ends the connection, so the client sees a cut body, not a rewritten
/// one).
async fn respond_relay(
    resp: LlmResponse,
    relay: &RelayHead,
    dialect: Dialect,
    call_id: &Arc<str>,
    received: Instant,
    log: Option<Box<AccessLog>>,
) -> http::Response<ServerBody> {
    let LlmResponse { body, meta } = resp;
    let stream = match body {
        ResponseBody::Events(stream) => stream,
        // An answer made by a layer (none does today): written as any other.
        other => {
            let resp = LlmResponse { body: other, meta };
            return respond(resp, dialect, call_id, received, log, false).await;
        }
    };
    let frames = stream.filter_map(|item| {
        std::future::ready(match item {
            Ok(event) if event.frame.is_empty() => None,
            Ok(event) => Some(Ok(http_body::Frame::data(event.frame))),
            Err(e) => Some(Err(BoxError::from(e))),
        })
    });
    let mut out = http::Response::new(ServerBody::boxed(http_body_util::StreamBody::new(frames)));
    if let Some(head) = relay.get() {
        *out.status_mut() = head.status;
        *out.headers_mut() = head.headers.clone();
    }
    let h = out.headers_mut();
    insert_call_id(h, call_id);
    let overhead = received
        .elapsed()
        .saturating_sub(meta.time_to_first_byte.unwrap_or_default());
    headers::insert_meta(h, &meta, overhead);
    if let Some(log) = log {
        log.emit(&Outcome {
            status: out.status().as_u16(),
            model_group: meta.model_group.as_deref(),
            deployment: meta.deployment_id.as_deref(),
            usage: None,
            cost: None,
            cache_hit: Some(false),
            stream: None,
        });
    }
    out
}

/// The Anthropic headers a client sent.
fn anthropic_headers(h: &http::HeaderMap) -> Box<AnthropicHeaders> {
    Box::new(AnthropicHeaders {
        version: h.get("anthropic-version").cloned(),
        beta: h.get_all("anthropic-beta").iter().cloned().collect(),
    })
}

/// Puts the response store, the caller's owner id and the stored response the request continues
/// (`previous_response_id`, when it is the caller's) on a Responses request.
async fn attach_response_store(
    req: &mut LlmRequest,
    store: SharedResponseStore,
    owner: Arc<str>,
) -> Result<(), LlmError> {
    let previous_id = match &req.op {
        Operation::Responses(r) => r.previous_response_id.clone(),
        _ => return Ok(()),
    };
    let previous = match &previous_id {
        Some(id) => store.get(id, &owner).await.map_err(store_down)?,
        None => None,
    };
    if let (Some(id), None) = (&previous_id, &previous) {
        // A response an OpenAI or Azure deployment made for this key: continued on that very
        // deployment (another account would not know the id).
        if let Some(r) = store.get_relayed(id, &owner).await.map_err(store_down)? {
            if *r.group == *req.model() {
                req.extensions.insert(PinnedDeployment(r.deployment));
            }
        } else if store
            .relayed_elsewhere(id, &owner)
            .await
            .map_err(store_down)?
        {
            // Another key's response: as unknown to this key as any other id.
            return Err(LlmError::new(
                ErrorKind::BadRequest,
                format!("Previous response with id '{id}' not found."),
            )
            .with_status(StatusCode::NOT_FOUND)
            .with_param("previous_response_id")
            .with_code("previous_response_not_found"));
        }
    }
    req.extensions.insert(ResponsesContext {
        store,
        owner,
        previous,
    });
    Ok(())
}

fn store_down(e: crate::store::StoreError) -> LlmError {
    LlmError::new(
        ErrorKind::ServiceUnavailable,
        format!("the response store is unavailable: {e}"),
    )
    .with_source(e)
}

fn response_not_found(id: &str) -> LlmError {
    LlmError::new(
        ErrorKind::NotFound,
        format!("Response with id '{id}' not found."),
    )
}

/// A response a provider made, found for its owner: the call to send to its deployment.
struct RelayedObject {
    record: RelayedResponse,
    request: ResponseObjectRequest,
}

/// What the store knows of a `/v1/responses/{id}…` call.
enum Stored {
    /// The answer, made here (a response the gateway made).
    Answer(Bytes),
    /// A response an OpenAI or Azure deployment made: the call goes to it.
    Relayed(Box<RelayedObject>),
}

/// The answer of `GET` / `DELETE /v1/responses/{id}`, `GET …/input_items` and `POST …/cancel`
/// from the gateway's store, or the call to relay for a response a provider made: only the key
/// that created a response finds it.
async fn stored_response(
    store: Option<&SharedResponseStore>,
    route: Route,
    head: &ResponseIdHead,
    owner: &str,
) -> Result<Stored, LlmError> {
    let (id, delete) = (&*head.id, head.delete);
    let Some(store) = store else {
        return Err(LlmError::new(
            ErrorKind::NotFound,
            format!(
                "Response with id '{id}' not found: this gateway keeps no responses (no response \
                 store is configured)"
            ),
        ));
    };
    if delete && store.delete(id, owner).await.map_err(store_down)? {
        return Ok(Stored::Answer(to_json(
            &serde_json::json!({"id": id, "object": "response", "deleted": true}),
        )));
    }
    let made_here = if delete {
        None
    } else {
        store.get(id, owner).await.map_err(store_down)?
    };
    let Some(stored) = made_here else {
        let Some(record) = store.get_relayed(id, owner).await.map_err(store_down)? else {
            return Err(response_not_found(id));
        };
        let action = match route {
            _ if delete => ResponseAction::Delete,
            Route::ResponseInputItems => ResponseAction::InputItems,
            Route::ResponseCancel => ResponseAction::Cancel,
            _ => ResponseAction::Retrieve,
        };
        let streamed = head
            .query
            .as_deref()
            .is_some_and(|q| q.split('&').any(|p| p == "stream=true"));
        if streamed {
            return Err(LlmError::bad_request(
                "`stream=true` on a stored response is not supported by the gateway: retrieve it without `stream`",
            )
            .with_param("stream"));
        }
        let request =
            ResponseObjectRequest::new(&*record.group, id, action).with_query(head.query.clone());
        return Ok(Stored::Relayed(Box::new(RelayedObject { record, request })));
    };
    let answer = |bytes| Ok(Stored::Answer(bytes));
    match route {
        Route::ResponseInputItems => {
            // Newest first, as OpenAI lists them by default.
            let data: Vec<&serde_json::Value> = stored.input.iter().rev().collect();
            let item_id = |v: Option<&&serde_json::Value>| {
                v.and_then(|i| i.get("id")).cloned().unwrap_or_default()
            };
            answer(to_json(&serde_json::json!({
                "object": "list",
                "data": data,
                "first_id": item_id(data.first()),
                "last_id": item_id(data.last()),
                "has_more": false,
            })))
        }
        Route::ResponseCancel => Err(LlmError::bad_request(
            "Only responses created with background=true can be cancelled; this response is complete.",
        )),
        _ => answer(to_json(&stored.response)),
    }
}

/// The error response, logged.
fn failed(
    err: &LlmError,
    dialect: Dialect,
    call_id: &Arc<str>,
    log: Option<&AccessLog>,
) -> http::Response<ServerBody> {
    let resp = dialect.error_response(err, call_id);
    if let Some(log) = log {
        log.emit(&Outcome {
            status: resp.status().as_u16(),
            ..Outcome::default()
        });
    }
    resp
}

async fn respond(
    resp: LlmResponse,
    dialect: Dialect,
    call_id: &Arc<str>,
    received: Instant,
    log: Option<Box<AccessLog>>,
    litellm_prefix: bool,
) -> http::Response<ServerBody> {
    // An error before a stream's first chunk is the call's error, answered as one.
    let call_failed = |mut e: LlmError, log: Option<Box<AccessLog>>| {
        if litellm_prefix {
            super::surface::litellm_prefix(&mut e);
        }
        failed(&e, dialect, call_id, log.as_deref())
    };
    let LlmResponse { body, meta } = resp;
    // Complete answers are logged here; a stream when it ends (see `ServerBody::sse`).
    let mut log_now = None;
    // The body's usage, when the layers left none in `meta` (read only for the log).
    let mut body_usage = None;
    let mut out = match body {
        ResponseBody::Chat(c) => match c.to_bytes() {
            Ok(bytes) => {
                if log.is_some() && meta.usage.is_none() {
                    body_usage = c.usage().map(TokenUsage::from);
                }
                log_now = log;
                json_response(StatusCode::OK, bytes, call_id)
            }
            Err(e) => return failed(&e, dialect, call_id, log.as_deref()),
        },
        ResponseBody::Embeddings(e) => {
            log_now = log;
            json_response(StatusCode::OK, to_json(&e), call_id)
        }
        ResponseBody::Models(m) => {
            log_now = log;
            json_response(StatusCode::OK, to_json(&m), call_id)
        }
        ResponseBody::Json(j) => {
            if log.is_some() && meta.usage.is_none() {
                body_usage = j.usage;
            }
            log_now = log;
            json_response(StatusCode::OK, j.bytes, call_id)
        }
        ResponseBody::Stream(mut stream) => {
            // Wait for the first chunk so that an error before any output is a proper HTTP error.
            let first = match stream.next().await {
                Some(Ok(chunk)) => Some(chunk),
                Some(Err(e)) => return call_failed(e, log),
                None => None,
            };
            let body = match log {
                Some(log) => ServerBody::sse(first, stream).with_access_log(log, &meta),
                None => ServerBody::sse(first, stream),
            };
            sse_response(body, call_id)
        }
        ResponseBody::Events(mut stream) => {
            // As for chat: an error before the first event is a proper HTTP error.
            let first = match stream.next().await {
                Some(Ok(event)) => Some(event),
                Some(Err(e)) => return call_failed(e, log),
                None => None,
            };
            let body = ServerBody::events(first, stream, dialect.error_frame());
            let body = match log {
                Some(log) => body.with_access_log(log, &meta),
                None => body,
            };
            sse_response(body, call_id)
        }
    };
    let h = out.headers_mut();
    for (name, value) in &meta.headers {
        h.append(name.clone(), value.clone());
    }
    // Routing: what the reliability layers spent, and the gateway's own time (total minus the
    // provider's time to first byte).
    let overhead = received
        .elapsed()
        .saturating_sub(meta.time_to_first_byte.unwrap_or_default());
    headers::insert_meta(h, &meta, overhead);
    if let Some(log) = log_now {
        log.emit(&Outcome {
            status: out.status().as_u16(),
            model_group: meta.model_group.as_deref(),
            deployment: meta.deployment_id.as_deref(),
            usage: meta.usage.as_ref().map(TokenUsage::from).or(body_usage),
            cost: meta.cost,
            cache_hit: Some(meta.cache_hit),
            stream: None,
        });
    }
    out
}

/// A streamed answer's response: `text/event-stream`, uncached, unbuffered by proxies.
fn sse_response(body: ServerBody, call_id: &Arc<str>) -> http::Response<ServerBody> {
    let mut r = http::Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    insert_call_id(h, call_id);
    r
}

fn read_body<B>(
    declared: Option<u64>,
    body: B,
    limits: BodyLimits,
) -> impl Future<Output = Result<Bytes, LlmError>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let limit = limits.max_bytes;
    let large_hooks = limits.large;
    // A combinator rather than an `async fn`, which would keep `body` twice (see `call`).
    let too_large = move || {
        LlmError::new(
            ErrorKind::BadRequest,
            format!("Request body is larger than the limit of {limit} bytes"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
        .with_code("request_too_large")
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Either::Left(std::future::ready(Err(too_large())));
    }
    let collect = Limited::new(body, limit)
        .collect()
        .map(move |collected| match collected {
            Ok(c) => {
                let bytes = c.to_bytes();
                if bytes.len() >= LARGE_BODY_BYTES {
                    // Its memory goes back to the OS once freed (see `LargeBodyHooks`).
                    if let Some(hooks) = large_hooks {
                        (hooks.on_read)();
                    }
                }
                Ok(bytes)
            }
            Err(e) if e.is::<LengthLimitError>() => Err(too_large()),
            Err(e) => Err(LlmError::bad_request(format!(
                "Could not read the request body: {e}"
            ))),
        });
    let read_timeout = limits.read_timeout;
    let timer = limits.timer;
    Either::Right(async move {
        let mut collect = std::pin::pin!(collect);
        // A body that has already arrived (the usual case) arms no deadline.
        if let Poll::Ready(r) =
            std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await
        {
            return r;
        }
        tokio::select! {
            biased;
            r = collect => r,
            () = timer.sleep(read_timeout) => Err(body_timeout(read_timeout)),
        }
    })
}

/// A pass-through body: read whole when it ends within 1 MiB, else its start and the rest as an
/// upload streamed to the provider (see `passthrough::upload`). The start is read under the same
/// deadline as any body.
async fn read_pass_through<B>(
    declared: Option<u64>,
    body: B,
    limits: BodyLimits,
) -> Result<(Bytes, Option<crate::types::passthrough::Upload>), LlmError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    use crate::passthrough::upload::{read, ReadError, BUFFER_BYTES};
    let limit = limits.max_bytes;
    let read = read(body, declared, limit, BUFFER_BYTES);
    let read = tokio::select! {
        biased;
        r = read => r,
        () = limits.timer.sleep(limits.read_timeout) => return Err(body_timeout(limits.read_timeout)),
    };
    read.map_err(|e| match e {
        ReadError::TooLarge => LlmError::new(
            ErrorKind::BadRequest,
            format!("Request body is larger than the limit of {limit} bytes"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
        .with_code("request_too_large"),
        ReadError::Read(e) => {
            LlmError::bad_request(format!("Could not read the request body: {e}"))
        }
    })
}

/// A body this large calls the [`LargeBodyHooks`] (the binary returns freed memory to the OS
/// soon after): 1 MiB.
const LARGE_BODY_BYTES: usize = 1 << 20;

/// The error of a request body that did not arrive in time.
fn body_timeout(limit: Duration) -> LlmError {
    LlmError::new(
        ErrorKind::Timeout,
        format!(
            "The request body did not arrive within {:.1} s",
            limit.as_secs_f64()
        ),
    )
    .with_status(StatusCode::REQUEST_TIMEOUT)
    .with_code("request_body_timeout")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::Full;
    use tower::ServiceExt as _;

    use super::LARGE_BODY_BYTES;
    use crate::{
        server::{LargeBodyHooks, OpenAiServer},
        types::chat::ChatResponse,
        LlmError, LlmRequest, LlmResponse,
    };

    static READ: AtomicUsize = AtomicUsize::new(0);
    static AFTER: AtomicUsize = AtomicUsize::new(0);

    fn on_read() {
        READ.fetch_add(1, Ordering::SeqCst);
    }

    fn after_call() {
        AFTER.fetch_add(1, Ordering::SeqCst);
    }

    fn chat_body(text_len: usize) -> String {
        format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
            "x".repeat(text_len)
        )
    }

    /// The hooks run once each for a body of 1 MiB or more, and not for a small one.
    #[tokio::test]
    async fn large_bodies_call_the_hooks_small_ones_do_not() {
        let answer = tower::service_fn(|_req: LlmRequest| async {
            Ok::<_, LlmError>(LlmResponse::chat(ChatResponse::default()))
        });
        let server = OpenAiServer::new(answer).large_body_hooks(Some(LargeBodyHooks {
            on_read,
            after_call,
        }));
        for (len, calls) in [(10, 0), (LARGE_BODY_BYTES, 1), (100, 1)] {
            let req = http::Request::post("/v1/chat/completions")
                .header("content-type", "application/json")
                .body(Full::new(bytes::Bytes::from(chat_body(len))))
                .unwrap();
            let resp = server.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), http::StatusCode::OK, "body of {len}");
            assert_eq!(READ.load(Ordering::SeqCst), calls, "on_read after {len}");
            assert_eq!(
                AFTER.load(Ordering::SeqCst),
                calls,
                "after_call after {len}"
            );
        }
    }
}
