//! [`OpenAiServer`]: the HTTP edge of the model-level stack.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{future::Either, FutureExt as _, StreamExt as _};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::{
    access::{self, AccessLog, Outcome},
    body::ServerBody,
    readiness::Readiness,
};
use crate::{
    auth::{Admission, PresentedKey},
    error::{BoxError, ErrorKind, LlmError},
    secret::Secret,
    types::{
        chat::ChatRequest,
        controls::{check_model, GatewayControls},
        embeddings::EmbeddingsRequest,
        LlmRequest, LlmResponse, ResponseBody,
    },
};

/// Default request body limit: 32 MiB (room for a few base64 images).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 << 20;

/// Default time allowed to receive a request body, from the end of its headers: 60 s (nginx's
/// `client_body_timeout`).
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The call id of a request (`x-litellm-call-id`): taken from the client's header or generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallId(pub Arc<str>);

/// When the gateway received the request, for overhead accounting.
#[derive(Clone, Copy, Debug)]
pub struct ReceivedAt(pub Instant);

/// The request's `Cache-Control` header, as sent (read by the cache layer).
#[derive(Clone, Debug)]
pub struct CacheControlHeader(pub HeaderValue);

/// A per-request timeout from the `x-litellm-timeout` header (seconds), read by the
/// [`timeout`](crate::timeout) layer; it wins over the body's `timeout` and the deployment's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestTimeout(pub std::time::Duration);

impl RequestTimeout {
    /// Parses `x-litellm-timeout` (positive seconds, fractions allowed).
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        Self::from_value(headers.get("x-litellm-timeout")?)
    }

    fn from_value(value: &HeaderValue) -> Option<Self> {
        let secs = value.to_str().ok()?.trim().parse::<f64>().ok()?;
        (secs.is_finite() && secs > 0.0 && secs < 1e9)
            .then(|| Self(std::time::Duration::from_secs_f64(secs)))
    }
}

/// Serves the OpenAI API over a model-level service.
///
/// Routes: `POST /v1/chat/completions` (and `/chat/completions`), `POST /v1/embeddings` (and
/// `/embeddings`), `GET /v1/models` (and `/models`), `GET /health/liveliness`, `GET
/// /health/readiness`. The body is parsed once into an [`LlmRequest`]; the answer is JSON, or SSE
/// with one frame per chunk and `data: [DONE]`. Every error is the OpenAI error JSON with its status:
/// malformed JSON → 400 saying where it broke, unknown path → 404, wrong method → 405, body over the
/// limit → 413. The service never fails (`Error = Infallible`) and is `Clone + Send + Sync`, so it
/// mounts in hyper-util or axum as is.
///
/// `/health/readiness` answers what its [`Readiness`] reports ([`OpenAiServer::readiness`]). Each
/// request writes one access-log event at `info` (target `llmgate::access`) when its answer is
/// complete, a stream's when it ends; nothing is captured for it while that event is disabled.
///
/// Extensions written into the [`LlmRequest`]: [`PresentedKey`], [`CallId`], [`ReceivedAt`],
/// [`CacheControlHeader`] (when the client sent `Cache-Control`), [`GatewayControls`] (when the
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
    admission: Option<Admission>,
    readiness: Readiness,
}

impl<S: Clone, F: Clone> Clone for OpenAiServer<S, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            fallback: self.fallback.clone(),
            max_body_bytes: self.max_body_bytes,
            body_read_timeout: self.body_read_timeout,
            admission: self.admission.clone(),
            readiness: self.readiness.clone(),
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
            admission: None,
            readiness: Readiness::new(),
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
            admission: self.admission,
            readiness: self.readiness,
        }
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

    /// Checks each caller's key on the request headers, before the body is read (the stack's
    /// auth layer's [`Admission`]): a caller without a valid key gets 401 (503 when the key
    /// store is down) and its body is never read; its connection is closed.
    #[must_use]
    pub fn admission(mut self, admission: Option<Admission>) -> Self {
        self.admission = admission;
        self
    }

    /// The model-level service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// The response future of [`OpenAiServer`].
pub type ServerFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<ServerBody>, Infallible>> + Send>>;

#[derive(Clone, Copy)]
enum Route {
    Chat,
    Embeddings,
    Models,
    Liveliness,
    Readiness,
}

impl Route {
    fn from_path(path: &str) -> Option<Self> {
        let path = path.strip_suffix('/').unwrap_or(path);
        Some(match path {
            "/v1/chat/completions" | "/chat/completions" => Self::Chat,
            "/v1/embeddings" | "/embeddings" => Self::Embeddings,
            "/v1/models" | "/models" => Self::Models,
            "/health/liveliness" | "/health/liveness" => Self::Liveliness,
            "/health/readiness" => Self::Readiness,
            _ => return None,
        })
    }

    /// The route as the access log names it.
    fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "/v1/chat/completions",
            Self::Embeddings => "/v1/embeddings",
            Self::Models => "/v1/models",
            Self::Liveliness => "/health/liveliness",
            Self::Readiness => "/health/readiness",
        }
    }

    fn method(self) -> Method {
        match self {
            Self::Chat | Self::Embeddings => Method::POST,
            Self::Models | Self::Liveliness | Self::Readiness => Method::GET,
        }
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

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let Some(route) = Route::from_path(req.uri().path()) else {
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
            Ok(head) => {
                drop(parts);
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let limits = BodyLimits {
                    max_bytes: self.max_body_bytes,
                    read_timeout: self.body_read_timeout,
                };
                let admission = self.admission.clone();
                Box::pin(handle(inner, admission, limits, head, body).map(Ok))
            }
            Err(answered) => answered,
        }
    }
}

/// What the edge needs from a request's head, read once and owned.
struct Head {
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
    /// Boxed: the request future carries the head, and the log is off in benchmarks.
    log: Option<Box<AccessLog>>,
}

impl Head {
    /// The head of a request to a known route, or the answer when the head alone decides it (a
    /// method the route does not take, the health routes).
    fn read(
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
        let allowed = parts.method == route.method()
            || (parts.method == Method::HEAD && route.method() == Method::GET);
        if !allowed {
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
            let mut resp = error_response(&err, &call_id);
            resp.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static(if route.method() == Method::POST {
                    "POST"
                } else {
                    "GET, HEAD"
                }),
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
        Ok(Self {
            received,
            route,
            http1: parts.version <= http::Version::HTTP_11,
            content_length: seen
                .content_length
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.parse::<u64>().ok()),
            presented_key: seen.presented_key(),
            cache_control: seen.cache_control.cloned(),
            timeout: seen.timeout.and_then(RequestTimeout::from_value),
            call_id,
            log,
        })
    }

    /// The request a body route's bytes make (chat, or embeddings).
    fn parse(&self, bytes: Bytes) -> Result<LlmRequest, LlmError> {
        // The bytes stay with the request: an OpenAI-format upstream is sent them (see
        // `LlmRequest::raw_body`).
        // The gateway controls are typed here, once: a wrongly typed one is a 400 naming it.
        let (controls, mut req) = if matches!(self.route, Route::Chat) {
            let body: ChatRequest = parse_json(&bytes)?;
            check_model(&body.model)?;
            let controls = GatewayControls::parse(
                &body.extra,
                body.metadata.as_ref(),
                body.mock_response.as_ref(),
            )?;
            (controls, LlmRequest::chat_from_bytes(body, bytes))
        } else {
            let body: EmbeddingsRequest = parse_json(&bytes)?;
            check_model(&body.model)?;
            let controls = GatewayControls::parse(&body.extra, body.metadata.as_ref(), None)?;
            (controls, LlmRequest::embeddings_from_bytes(body, bytes))
        };
        if let Some(c) = controls {
            req.extensions.insert(c);
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
        req
    }
}

/// How much request body the edge reads, and for how long.
#[derive(Clone, Copy)]
struct BodyLimits {
    max_bytes: usize,
    read_timeout: Duration,
}

async fn handle<S, B>(
    mut inner: S,
    admission: Option<Admission>,
    limit: BodyLimits,
    mut head: Head,
    body: B,
) -> http::Response<ServerBody>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    let call_id = head.call_id.clone();
    let received = head.received;
    let mut log = head.log.take();
    let http1 = head.http1;
    let mut large = false;
    if let Some(admission) = &admission {
        if let Err(e) = admission.check(head.presented_key.as_ref()).await {
            // The body is never read: the connection ends with this answer.
            let mut resp = failed(&e, &call_id, log.as_deref());
            if head.http1 {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return resp;
        }
    }
    let parsed = match head.route {
        Route::Chat | Route::Embeddings => read_body(head.content_length, body, limit)
            .await
            .and_then(|bytes| {
                large = bytes.len() >= LARGE_BODY_BYTES;
                head.parse(bytes)
            }),
        // Health routes answer in `Head::read`; `/v1/models` has no body.
        Route::Models | Route::Liveliness | Route::Readiness => Ok(LlmRequest::list_models()),
    };
    let mut llm_req = match parsed {
        Ok(r) => head.annotate(r),
        Err(e) => {
            let mut resp = failed(&e, &call_id, log.as_deref());
            if http1 && resp.status() == StatusCode::REQUEST_TIMEOUT {
                // The rest of a late body is not waited for: the connection ends here.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return resp;
        }
    };
    if let Some(log) = &mut log {
        log.set_model(llm_req.model());
        if llm_req.is_stream() {
            llm_req.extensions.insert(log.tally());
        }
    }

    if let Err(e) = std::future::poll_fn(|cx| inner.poll_ready(cx)).await {
        return failed(&e, &call_id, log.as_deref());
    }
    let resp = inner.call(llm_req).await;
    if large {
        // The body is freed by now (unless a stream still holds the request): hand this
        // thread's free pages back, for the janitor to return to the OS (see `crate::alloc`).
        crate::alloc::collect_this_thread();
    }
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(
                kind = e.kind().as_str(),
                status = e.status().as_u16(),
                "request failed"
            );
            return failed(&e, &call_id, log.as_deref());
        }
    };
    respond(resp, &call_id, received, log).await
}

/// The error response, logged.
fn failed(
    err: &LlmError,
    call_id: &Arc<str>,
    log: Option<&AccessLog>,
) -> http::Response<ServerBody> {
    let resp = error_response(err, call_id);
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
    call_id: &Arc<str>,
    received: Instant,
    log: Option<Box<AccessLog>>,
) -> http::Response<ServerBody> {
    let LlmResponse { body, meta } = resp;
    // Complete answers are logged here; a stream when it ends (see `ServerBody::sse`).
    let mut log_now = None;
    // The body's usage, when the layers left none in `meta` (read only for the log).
    let mut body_usage = None;
    let mut out = match body {
        ResponseBody::Chat(c) => match c.to_bytes() {
            Ok(bytes) => {
                if log.is_some() && meta.usage.is_none() {
                    body_usage = c.usage().cloned();
                }
                log_now = log;
                json_response(StatusCode::OK, bytes, call_id)
            }
            Err(e) => return failed(&e, call_id, log.as_deref()),
        },
        ResponseBody::Embeddings(e) => {
            log_now = log;
            json_response(StatusCode::OK, to_json(&e), call_id)
        }
        ResponseBody::Models(m) => {
            log_now = log;
            json_response(StatusCode::OK, to_json(&m), call_id)
        }
        ResponseBody::Stream(mut stream) => {
            // Wait for the first chunk so that an error before any output is a proper HTTP error.
            let first = match stream.next().await {
                Some(Ok(chunk)) => Some(chunk),
                Some(Err(e)) => return failed(&e, call_id, log.as_deref()),
                None => None,
            };
            let body = match log {
                Some(log) => ServerBody::sse(first, stream).with_access_log(log, &meta),
                None => ServerBody::sse(first, stream),
            };
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
    };
    let h = out.headers_mut();
    for (name, value) in &meta.headers {
        h.append(name.clone(), value.clone());
    }
    let dep = meta.deployment.as_deref();
    for (name, text) in [
        (X_LITELLM_MODEL_ID, &meta.deployment_id),
        (X_LITELLM_MODEL_GROUP, &meta.model_group),
        (X_LITELLM_MODEL_API_BASE, &meta.api_base),
    ] {
        if let Some(v) = text.as_ref().and_then(|t| deployment_header(t, dep)) {
            h.insert(name, v);
        }
    }
    if let Some(v) = meta.cost.and_then(cost_header) {
        h.insert(X_LITELLM_RESPONSE_COST, v);
    }
    // Routing: what the reliability layers spent, and the gateway's own time (total minus the
    // provider's time to first byte).
    let overhead = received
        .elapsed()
        .saturating_sub(meta.time_to_first_byte.unwrap_or_default());
    h.insert(X_LITELLM_OVERHEAD_DURATION_MS, millis_header(overhead));
    h.insert(
        X_LITELLM_ATTEMPTED_RETRIES,
        count_header(meta.attempted_retries),
    );
    h.insert(
        X_LITELLM_ATTEMPTED_FALLBACKS,
        count_header(meta.attempted_fallbacks),
    );
    if let Some(log) = log_now {
        log.emit(&Outcome {
            status: out.status().as_u16(),
            model_group: meta.model_group.as_deref(),
            deployment: meta.deployment_id.as_deref(),
            usage: meta.usage.as_ref().or(body_usage.as_ref()),
            cost: meta.cost,
            cache_hit: Some(meta.cache_hit),
            stream: None,
        });
    }
    out
}

/// A count as a header value: a static one for 0–9 (nearly every response: no retry, no
/// fallback), where `HeaderValue::from(u32)` formats into a new allocation.
fn count_header(n: u32) -> HeaderValue {
    static DIGITS: [HeaderValue; 10] = [
        HeaderValue::from_static("0"),
        HeaderValue::from_static("1"),
        HeaderValue::from_static("2"),
        HeaderValue::from_static("3"),
        HeaderValue::from_static("4"),
        HeaderValue::from_static("5"),
        HeaderValue::from_static("6"),
        HeaderValue::from_static("7"),
        HeaderValue::from_static("8"),
        HeaderValue::from_static("9"),
    ];
    usize::try_from(n)
        .ok()
        .and_then(|i| DIGITS.get(i))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from(n))
}

/// The cost in USD as `Display` writes it (`0.000123`), formatted into the header's own buffer
/// instead of a `String` that grows while it is written and is then copied.
fn cost_header(cost: f64) -> Option<HeaderValue> {
    use std::fmt::Write as _;
    let mut out = BytesMut::with_capacity(32);
    write!(out, "{cost}").ok()?;
    HeaderValue::from_maybe_shared(out.freeze()).ok()
}

/// `text` (a deployment's id, model group or public api base) as a header value: the one the
/// deployment made when it was built when `text` is that deployment's own string (as
/// `ProviderService` stamps it), else checked and copied now.
///
/// Checking and copying each string into a new `HeaderValue` cost about 250 instructions per header
/// per response; the deployment's values are made once and cloned (a reference count).
fn deployment_header(
    text: &Arc<str>,
    dep: Option<&crate::provider::Deployment>,
) -> Option<HeaderValue> {
    dep.and_then(|d| d.header_value(text))
        .or_else(|| HeaderValue::from_str(text).ok())
}

/// `d` in milliseconds with three decimals (`0.173`), from integer microseconds: `itoa` and
/// three digits by hand, where `write!` with integer and float formatting cost about 1 k
/// instructions per response.
fn millis_header(d: Duration) -> HeaderValue {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let mut int = itoa::Buffer::new();
    let int = int.format(micros / 1000).as_bytes();
    let frac = micros % 1000;
    let mut out = BytesMut::with_capacity(int.len() + 4);
    out.extend_from_slice(int);
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
    // Digits and a dot are valid header bytes.
    HeaderValue::from_maybe_shared(out.freeze()).unwrap_or(HeaderValue::from_static("0.000"))
}

fn to_json<T: serde::Serialize>(value: &T) -> Bytes {
    let mut w = BytesMut::with_capacity(1024).writer();
    // Serializing wire types into memory cannot fail.
    let _ = serde_json::to_writer(&mut w, value);
    w.into_inner().freeze()
}

fn json_response(
    status: StatusCode,
    body: Bytes,
    call_id: &Arc<str>,
) -> http::Response<ServerBody> {
    let mut r = http::Response::new(ServerBody::full(body));
    *r.status_mut() = status;
    // Room for the provider's forwarded headers and the x-litellm-* ones without growing.
    *r.headers_mut() = HeaderMap::with_capacity(24);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    insert_call_id(r.headers_mut(), call_id);
    r
}

/// The OpenAI error JSON response for an error, with its status and forwarded headers.
#[must_use]
pub fn error_response(err: &LlmError, call_id: &Arc<str>) -> http::Response<ServerBody> {
    let (status, headers, body) = err.to_http_parts();
    let mut r = http::Response::new(ServerBody::full(body));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    insert_call_id(r.headers_mut(), call_id);
    r.extensions_mut().insert(err.kind());
    r
}

fn insert_call_id(h: &mut HeaderMap, call_id: &Arc<str>) {
    if let Ok(v) = HeaderValue::from_str(call_id) {
        h.insert(X_LITELLM_CALL_ID, v);
    }
}

const X_LITELLM_CALL_ID: HeaderName = HeaderName::from_static("x-litellm-call-id");
const X_LITELLM_MODEL_ID: HeaderName = HeaderName::from_static("x-litellm-model-id");
const X_LITELLM_MODEL_GROUP: HeaderName = HeaderName::from_static("x-litellm-model-group");
const X_LITELLM_MODEL_API_BASE: HeaderName = HeaderName::from_static("x-litellm-model-api-base");
const X_LITELLM_RESPONSE_COST: HeaderName = HeaderName::from_static("x-litellm-response-cost");
const X_LITELLM_ATTEMPTED_RETRIES: HeaderName =
    HeaderName::from_static("x-litellm-attempted-retries");
const X_LITELLM_ATTEMPTED_FALLBACKS: HeaderName =
    HeaderName::from_static("x-litellm-attempted-fallbacks");
const X_LITELLM_OVERHEAD_DURATION_MS: HeaderName =
    HeaderName::from_static("x-litellm-overhead-duration-ms");
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

fn call_id(headers: &HeaderMap) -> Arc<str> {
    EdgeHeaders::read(headers).call_id()
}

/// The request headers the edge reads, found in one pass over the request's headers: a
/// `HeaderMap::get` hashes the name and probes the table, and the edge asks for eight names,
/// mostly absent, on every request.
#[derive(Default)]
struct EdgeHeaders<'a> {
    call_id: Option<&'a HeaderValue>,
    litellm_api_key: Option<&'a HeaderValue>,
    authorization: Option<&'a HeaderValue>,
    api_key: Option<&'a HeaderValue>,
    x_api_key: Option<&'a HeaderValue>,
    cache_control: Option<&'a HeaderValue>,
    timeout: Option<&'a HeaderValue>,
    content_length: Option<&'a HeaderValue>,
}

impl<'a> EdgeHeaders<'a> {
    /// The first value of each header the edge reads (what `HeaderMap::get` returns).
    fn read(headers: &'a HeaderMap) -> Self {
        let mut seen = Self::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "content-length" => &mut seen.content_length,
                "authorization" => &mut seen.authorization,
                "cache-control" => &mut seen.cache_control,
                "x-litellm-call-id" => &mut seen.call_id,
                "x-litellm-api-key" => &mut seen.litellm_api_key,
                "x-litellm-timeout" => &mut seen.timeout,
                "api-key" => &mut seen.api_key,
                "x-api-key" => &mut seen.x_api_key,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        seen
    }

    /// The client's `x-litellm-call-id` when it is usable, else a new one.
    fn call_id(&self) -> Arc<str> {
        match self
            .call_id
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty() && s.len() <= 128)
        {
            Some(id) => id.into(),
            None => {
                let mut buf = [0u8; 36];
                Arc::from(write_uuid(&mut buf))
            }
        }
    }

    /// See [`presented_key`].
    fn presented_key(&self) -> Option<Secret> {
        fn text(v: Option<&HeaderValue>) -> Option<&str> {
            v.and_then(|v| v.to_str().ok())
        }
        if let Some(v) = text(self.litellm_api_key).or_else(|| text(self.authorization)) {
            return Some(Secret::new(strip_bearer(v)));
        }
        text(self.api_key)
            .or_else(|| text(self.x_api_key))
            .map(|v| Secret::new(v.trim()))
    }
}

/// A new call id: a UUID v7 string (RFC 9562: Unix milliseconds, then random bits).
#[must_use]
pub fn new_call_id() -> String {
    let mut buf = [0u8; 36];
    write_uuid(&mut buf).to_owned()
}

/// Writes a UUID v7 into `buf` (hex digits by hand: `format!` cost more than the rest of the
/// call-id handling together).
///
/// Version 7 rather than 4: the call id is the spend log's primary key, and ids that grow with
/// time land at the right edge of that index. Random v4 ids put each row on a random index page,
/// so a batch of 500 rows rewrote hundreds of pages (in SQLite's WAL, or PostgreSQL's). 74 random
/// bits per millisecond keep ids unique.
fn write_uuid(buf: &mut [u8; 36]) -> &str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Where each byte's two digits go in `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut bytes = fastrand::u128(..).to_be_bytes();
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = (bytes[6] & 0x0f) | 0x70; // version 7
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
    for (b, at) in bytes.iter().zip(AT) {
        buf[at] = HEX[usize::from(b >> 4)];
        buf[at + 1] = HEX[usize::from(b & 0xf)];
    }
    for dash in [8, 13, 18, 23] {
        buf[dash] = b'-';
    }
    // Only ASCII hex digits and dashes were written.
    std::str::from_utf8(buf).unwrap_or_default()
}

/// The key a caller presented: `Authorization: Bearer`, `api-key`, `x-api-key` or
/// `x-litellm-api-key`.
#[must_use]
pub fn presented_key(headers: &HeaderMap) -> Option<Secret> {
    EdgeHeaders::read(headers).presented_key()
}

fn strip_bearer(v: &str) -> &str {
    let v = v.trim();
    match v.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => v[7..].trim(),
        _ => v,
    }
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
                    // Its memory goes back to the OS once freed (see `crate::alloc`).
                    crate::alloc::note_large();
                }
                Ok(bytes)
            }
            Err(e) if e.is::<LengthLimitError>() => Err(too_large()),
            Err(e) => Err(LlmError::bad_request(format!(
                "Could not read the request body: {e}"
            ))),
        });
    let read_timeout = limits.read_timeout;
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
            () = crate::timer::sleep(read_timeout) => Err(body_timeout(read_timeout)),
        }
    })
}

/// The body read timeout a config asks for (`general_settings.request_body_timeout`, seconds),
/// else [`DEFAULT_BODY_READ_TIMEOUT`].
#[must_use]
pub fn body_read_timeout(config: &crate::config::Config) -> Duration {
    super::serve::timeout_setting(config.general_settings.request_body_timeout)
        .unwrap_or(DEFAULT_BODY_READ_TIMEOUT)
}

/// A body this large makes the binary return freed memory to the OS soon after
/// ([`crate::alloc::release_after_large`]): 1 MiB.
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

/// Parses a request body, with an error that says where the JSON broke.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, LlmError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(LlmError::bad_request(
            "Request body is empty; send a JSON object",
        ));
    }
    match serde_json::from_slice::<T>(bytes) {
        Ok(v) => Ok(v),
        Err(_) => {
            // Slow path only on error: parse again while tracking the path of the failing field.
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let Err(err) = serde_path_to_error::deserialize::<_, T>(&mut de) else {
                return Err(match de.end() {
                    Err(e) => LlmError::bad_request(format!("Invalid JSON body: {e}")),
                    Ok(()) => LlmError::bad_request("Invalid JSON body"),
                });
            };
            let path = err.path().to_string();
            let inner = err.into_inner();
            let mut e = if path == "." || inner.is_syntax() || inner.is_eof() {
                LlmError::bad_request(format!("Invalid JSON body: {inner}"))
            } else {
                LlmError::bad_request(format!("Invalid request body at `{path}`: {inner}"))
                    .with_param(path.as_str())
            };
            if e.param().is_none() {
                let msg = inner.to_string();
                if let Some(field) = msg
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.split('`').next())
                {
                    let param = if path == "." {
                        field.to_owned()
                    } else {
                        format!("{path}.{field}")
                    };
                    e = e.with_param(param);
                }
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overhead_is_milliseconds_with_three_decimals() {
        for (micros, text) in [
            (0, "0.000"),
            (7, "0.007"),
            (173, "0.173"),
            (1_050, "1.050"),
            (12_345_678, "12345.678"),
        ] {
            assert_eq!(millis_header(Duration::from_micros(micros)), text);
        }
        assert_eq!(
            millis_header(Duration::MAX),
            format!("{}.{:03}", u64::MAX / 1000, u64::MAX % 1000).as_str()
        );
    }

    #[test]
    fn call_ids_are_uuid_v7() {
        let a = new_call_id();
        // The next id from a later millisecond (the first 13 characters are the timestamp).
        let b = loop {
            let b = new_call_id();
            if b[..13] != a[..13] {
                break b;
            }
        };
        // Time-ordered: a later id sorts after an earlier one.
        assert!(a < b, "{a} {b}");
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let stamp = u128::from_str_radix(&b.replace('-', "")[..12], 16).unwrap();
        assert!(stamp <= millis && millis - stamp < 60_000, "{b}");
        assert_ne!(a, b);
        for id in [&a, &b] {
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(id
                .chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
            assert_eq!(&parts[2][..1], "7", "{id}");
            assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
        }
    }

    #[test]
    fn counts_and_costs_read_as_before() {
        for n in [0, 1, 9, 10, 42, u32::MAX] {
            assert_eq!(count_header(n), HeaderValue::from(n), "{n}");
        }
        for c in [0.0, 0.000_123, 1.5, 12_345.678_9, 1e-12, 3e21] {
            assert_eq!(cost_header(c).unwrap(), c.to_string().as_str(), "{c}");
        }
        // NaN and infinities are ASCII too; the header says what the cost layer computed.
        assert_eq!(cost_header(f64::NAN).unwrap(), "NaN");
    }

    #[test]
    fn deployment_headers_come_from_the_deployment_by_arc_not_by_text() {
        let a: Arc<str> = "http://h:1/v1".into();
        let b: Arc<str> = "http://h:2/v1".into();
        assert_eq!(deployment_header(&a, None).unwrap(), "http://h:1/v1");
        assert_eq!(deployment_header(&b, None).unwrap(), "http://h:2/v1");
        assert_eq!(deployment_header(&a, None).unwrap(), "http://h:1/v1");
        // Same text, another `Arc`: same value.
        let a2: Arc<str> = "http://h:1/v1".into();
        assert_eq!(deployment_header(&a2, None).unwrap(), "http://h:1/v1");
        // Not a valid header value: none.
        let bad: Arc<str> = "line\nbreak".into();
        assert!(deployment_header(&bad, None).is_none());
        for i in 0..67 {
            let s: Arc<str> = format!("d{i}").into();
            assert_eq!(deployment_header(&s, None).unwrap(), s.as_ref());
        }
        // The deployment's own strings: its values, made once (the same bytes each time).
        let dep =
            crate::provider::Deployment::new("grp", "openai/m").with_api_base("http://h:3/v1");
        let base = dep.public_api_base().unwrap();
        let v1 = deployment_header(&dep.model_group, Some(&dep)).unwrap();
        let v2 = deployment_header(&dep.model_group, Some(&dep)).unwrap();
        assert_eq!(v1, "grp");
        assert_eq!(v1.as_bytes().as_ptr(), v2.as_bytes().as_ptr());
        assert_eq!(
            deployment_header(&base, Some(&dep)).unwrap(),
            "http://h:3/v1"
        );
        assert_eq!(deployment_header(&dep.id, Some(&dep)).unwrap(), &*dep.id);
        // A string a layer put in place of the deployment's is answered as it is.
        let other: Arc<str> = "other-group".into();
        assert_eq!(
            deployment_header(&other, Some(&dep)).unwrap(),
            "other-group"
        );
    }

    #[test]
    fn edge_headers_keep_the_first_value_and_the_key_order() {
        let mut h = HeaderMap::new();
        h.append("x-api-key", HeaderValue::from_static("sk-x"));
        assert_eq!(presented_key(&h).unwrap().expose(), "sk-x");
        h.append("api-key", HeaderValue::from_static("sk-a"));
        assert_eq!(presented_key(&h).unwrap().expose(), "sk-a");
        h.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-1"),
        );
        h.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-2"),
        );
        assert_eq!(presented_key(&h).unwrap().expose(), "sk-1");
        h.append("x-litellm-api-key", HeaderValue::from_static(" sk-l "));
        assert_eq!(presented_key(&h).unwrap().expose(), "sk-l");
        h.append("x-litellm-timeout", HeaderValue::from_static("2.5"));
        h.append(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        let seen = EdgeHeaders::read(&h);
        assert_eq!(
            seen.timeout.and_then(RequestTimeout::from_value),
            Some(RequestTimeout(Duration::from_millis(2500)))
        );
        assert_eq!(seen.cache_control.unwrap(), "no-cache");
        assert_eq!(seen.content_length.unwrap(), "12");
        assert!(seen.call_id.is_none());
        assert!(presented_key(&HeaderMap::new()).is_none());
    }

    #[test]
    fn call_id_prefers_the_clients_header() {
        let mut h = HeaderMap::new();
        h.insert(X_LITELLM_CALL_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(&*call_id(&h), "abc-123");
        assert_eq!(call_id(&HeaderMap::new()).len(), 36);
    }
}
