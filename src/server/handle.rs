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
use http::{header, HeaderValue, StatusCode};
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
    store::responses::{owner_of, SharedResponseStore},
    types::Operation,
    types::{
        chat::ChatRequest,
        controls::{check_model, GatewayControls},
        embeddings::EmbeddingsRequest,
        responses::ResponsesRequest,
        LlmRequest, LlmResponse, ResponseBody, TokenUsage,
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
    /// Boxed: the request future carries the head, and the log is off in benchmarks.
    log: Option<Box<AccessLog>>,
    /// The `{id}` of a `/v1/responses/{id}…` route, and whether the method is `DELETE`.
    response_id: Option<(Box<str>, bool)>,
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
            timeout: seen.timeout.and_then(RequestTimeout::from_header_value),
            call_id,
            log,
            response_id: Route::response_id(parts.uri.path())
                .filter(|_| {
                    matches!(
                        route,
                        Route::ResponseById | Route::ResponseInputItems | Route::ResponseCancel
                    )
                })
                .map(|id| (id.into(), parts.method == http::Method::DELETE)),
        })
    }

    /// The request a body route's bytes make (chat, or embeddings).
    fn parse(&self, bytes: Bytes) -> Result<LlmRequest, LlmError> {
        // The bytes stay with the request: an OpenAI-format upstream is sent them (see
        // `LlmRequest::raw_body`).
        // The gateway controls are typed here, once: a wrongly typed one is a 400 naming it.
        let (controls, mut req) = if matches!(self.route, Route::Responses) {
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
        } else {
            let body: EmbeddingsRequest = parse_json(&bytes)?;
            check_model(&body.model)?;
            let controls = GatewayControls::parse(&body.extra, body.metadata.as_ref(), None)?;
            (controls, LlmRequest::embeddings_from_bytes(body, bytes))
        };
        req.set_controls(controls);
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
) -> http::Response<ServerBody>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    let call_id = head.call_id.clone();
    let dialect = head.route.dialect();
    let received = head.received;
    let mut log = head.log.take();
    let http1 = head.http1;
    let mut large = false;
    if let Some(admission) = &admission {
        if let Err(e) = admission.check(head.presented_key.as_ref()).await {
            // The body is never read: the connection ends with this answer.
            let mut resp = failed(&e, dialect, &call_id, log.as_deref());
            if head.http1 {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return resp;
        }
    }
    if let Some((id, delete)) = head.response_id.take() {
        // A stored response: answered here, from the gateway's store.
        let owner = owner_of(head.presented_key.as_ref());
        let resp = stored_response(responses.as_ref(), head.route, &id, delete, &owner).await;
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
    // The caller's owner id for the response store (before the key moves into the request).
    let owner = (matches!(head.route, Route::Responses) && responses.is_some())
        .then(|| owner_of(head.presented_key.as_ref()));
    let parsed = match head.route {
        Route::Chat | Route::Embeddings | Route::Responses => {
            read_body(head.content_length, body, limit)
                .await
                .and_then(|bytes| {
                    large = bytes.len() >= LARGE_BODY_BYTES;
                    head.parse(bytes)
                })
        }
        // Health routes answer in `Head::read`; `/v1/models` has no body.
        Route::Models
        | Route::Liveliness
        | Route::Readiness
        | Route::ResponseById
        | Route::ResponseInputItems
        | Route::ResponseCancel => Ok(LlmRequest::list_models()),
    };
    let mut llm_req = match parsed {
        Ok(r) => head.annotate(r),
        Err(e) => {
            let mut resp = failed(&e, dialect, &call_id, log.as_deref());
            if http1 && resp.status() == StatusCode::REQUEST_TIMEOUT {
                // The rest of a late body is not waited for: the connection ends here.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return resp;
        }
    };
    if let (Some(store), Some(owner)) = (responses, owner) {
        if let Err(e) = attach_response_store(&mut llm_req, store, owner).await {
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
            return failed(&e, dialect, &call_id, log.as_deref());
        }
    };
    respond(resp, dialect, &call_id, received, log).await
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
    let previous = match previous_id {
        Some(id) => store.get(&id, &owner).await.map_err(store_down)?,
        None => None,
    };
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

/// The answer of `GET` / `DELETE /v1/responses/{id}`, `GET …/input_items` and `POST …/cancel`
/// from the gateway's store: only the key that created a response finds it.
async fn stored_response(
    store: Option<&SharedResponseStore>,
    route: Route,
    id: &str,
    delete: bool,
    owner: &str,
) -> Result<Bytes, LlmError> {
    let Some(store) = store else {
        return Err(LlmError::new(
            ErrorKind::NotFound,
            format!(
                "Response with id '{id}' not found: this gateway keeps no responses (no response \
                 store is configured)"
            ),
        ));
    };
    if delete {
        return if store.delete(id, owner).await.map_err(store_down)? {
            Ok(to_json(
                &serde_json::json!({"id": id, "object": "response", "deleted": true}),
            ))
        } else {
            Err(response_not_found(id))
        };
    }
    let Some(stored) = store.get(id, owner).await.map_err(store_down)? else {
        return Err(response_not_found(id));
    };
    match route {
        Route::ResponseInputItems => {
            // Newest first, as OpenAI lists them by default.
            let data: Vec<&serde_json::Value> = stored.input.iter().rev().collect();
            let item_id = |v: Option<&&serde_json::Value>| {
                v.and_then(|i| i.get("id")).cloned().unwrap_or_default()
            };
            Ok(to_json(&serde_json::json!({
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
        _ => Ok(to_json(&stored.response)),
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
                Some(Err(e)) => return failed(&e, dialect, call_id, log.as_deref()),
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
                Some(Err(e)) => return failed(&e, dialect, call_id, log.as_deref()),
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
