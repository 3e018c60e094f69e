//! The trace layers: [`RequestTrace`] (one server span per request, at the top of the stack),
//! [`AttemptTrace`] (one client span per attempt, at the top of each deployment's stack) and
//! [`TraceparentClient`] (the attempt's W3C `traceparent` on the provider request).

use std::{
    borrow::Cow,
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    task::{ready, Context as TaskContext, Poll},
};

use bytes::Bytes;
use http_body_util::Full;
use opentelemetry::{
    context::FutureExt as _,
    propagation::{Extractor, TextMapPropagator},
    trace::{SpanKind, Status, TraceContextExt, Tracer as _},
    Array, Context, KeyValue, StringValue, Value,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::Otel;
use crate::{
    error::LlmError,
    observe::{End, Flow, Observer},
    provider::Deployment,
    types::{
        extensions::{CallId, TraceParent},
        ChunkBody, LlmRequest, LlmResponse, ResponseBody, StreamEvent, TokenUsage,
    },
};

/// The request span's name, as LiteLLM names it (dashboards filter on it).
pub const REQUEST_SPAN_NAME: &str = "litellm_request";

/// What an attempt span needs from its request span, carried in the request's extensions
/// (clones of a retried request share it).
#[derive(Clone)]
struct RequestSpan(Arc<RequestSpanState>);

struct RequestSpanState {
    cx: Context,
    attempts: AtomicU32,
    /// The model group of the first attempt, and the attempt that began the current group.
    /// Uncontended: a request's attempts run one after another.
    groups: Mutex<Option<(Arc<str>, Arc<str>, u32)>>,
}

/// One attempt's place in its request: its number, its retry number within its model group, and
/// whether the group is a fallback.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Place {
    attempt: u32,
    retry: u32,
    fallback: bool,
}

impl RequestSpanState {
    fn next(&self, group: &Arc<str>) -> Place {
        let attempt = self.attempts.fetch_add(1, Ordering::Relaxed);
        let mut g = self
            .groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (first, current, start) =
            g.get_or_insert_with(|| (group.clone(), group.clone(), attempt));
        if **current != **group {
            *current = group.clone();
            *start = attempt;
        }
        Place {
            attempt,
            retry: attempt.saturating_sub(*start),
            fallback: **first != **group,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The request span
// ---------------------------------------------------------------------------------------------

/// Starts one span per request ([`RequestTrace`]). See [`Otel::request_layer`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RequestTraceLayer {
    otel: Otel,
}

impl RequestTraceLayer {
    /// A layer starting spans with `otel`'s tracer.
    pub fn new(otel: Otel) -> Self {
        Self { otel }
    }
}

impl<S> Layer<S> for RequestTraceLayer {
    type Service = RequestTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTrace {
            inner,
            otel: self.otel.clone(),
        }
    }
}

/// One `litellm_request` span (kind server) per request: a child of the client's
/// `traceparent` when it sent one; GenAI attributes from the request and the response; error
/// status on failure. A stream's span ends with the stream.
#[derive(Clone, Debug)]
pub struct RequestTrace<S> {
    inner: S,
    otel: Otel,
}

impl<S> RequestTrace<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<LlmRequest> for RequestTrace<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = TraceFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: LlmRequest) -> Self::Future {
        let parent = req
            .extensions
            .get::<TraceParent>()
            .map_or_else(Context::new, |tp| {
                TraceContextPropagator::new().extract(&TraceParentCarrier(tp))
            });
        let mut attrs = Vec::with_capacity(5);
        attrs.push(KeyValue::new("gen_ai.operation.name", req.operation_name()));
        attrs.push(KeyValue::new(
            "gen_ai.request.model",
            req.model().to_owned(),
        ));
        attrs.push(KeyValue::new("llm.is_streaming", req.is_stream()));
        if let Some(CallId(id)) = req.extensions.get::<CallId>() {
            attrs.push(KeyValue::new(
                "litellm.call_id",
                StringValue::from(id.clone()),
            ));
        }
        let tracer = self.otel.tracer();
        let span = tracer
            .span_builder(REQUEST_SPAN_NAME)
            .with_kind(SpanKind::Server)
            .with_attributes(attrs)
            .start_with_context(tracer, &parent);
        let cx = parent.with_span(span);
        req.extensions
            .insert(RequestSpan(Arc::new(RequestSpanState {
                cx: cx.clone(),
                attempts: AtomicU32::new(0),
                groups: Mutex::new(None),
            })));
        TraceFuture {
            inner: self.inner.call(req),
            cx: Some(cx),
            role: Role::Request,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The attempt span
// ---------------------------------------------------------------------------------------------

/// Starts one span per attempt on one deployment ([`AttemptTrace`]). See
/// [`Otel::attempt_layer`].
#[derive(Clone)]
#[must_use]
pub struct AttemptTraceLayer {
    otel: Otel,
    dep: Arc<DeploymentAttrs>,
}

impl fmt::Debug for AttemptTraceLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptTraceLayer")
            .field("deployment", &self.dep.id)
            .finish_non_exhaustive()
    }
}

/// What every attempt span of one deployment says, built once.
struct DeploymentAttrs {
    id: Arc<str>,
    group: Arc<str>,
    model: Arc<str>,
    attrs: Vec<KeyValue>,
    /// `chat {model}`, the span name of the commonest operation (built once; another
    /// operation's name is formatted per attempt).
    chat_name: String,
}

impl AttemptTraceLayer {
    /// A layer starting spans for attempts on `dep` with `otel`'s tracer.
    pub fn new(otel: Otel, dep: &Deployment) -> Self {
        let attrs = vec![
            KeyValue::new("gen_ai.system", StringValue::from(dep.provider.clone())),
            KeyValue::new("gen_ai.request.model", StringValue::from(dep.model.clone())),
            KeyValue::new("llmgate.deployment.id", StringValue::from(dep.id.clone())),
            KeyValue::new(
                "llmgate.model_group",
                StringValue::from(dep.model_group.clone()),
            ),
        ];
        Self {
            otel,
            dep: Arc::new(DeploymentAttrs {
                id: dep.id.clone(),
                group: dep.model_group.clone(),
                model: dep.model.clone(),
                attrs,
                chat_name: format!("chat {}", dep.model),
            }),
        }
    }
}

impl<S> Layer<S> for AttemptTraceLayer {
    type Service = AttemptTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AttemptTrace {
            inner,
            layer: self.clone(),
        }
    }
}

/// One span (kind client, named `{operation} {upstream model}`) per attempt on a deployment: a
/// child of the request span, with the deployment, the provider (`gen_ai.system`), the attempt's
/// number, its retry number within its model group and whether the group is a fallback. The
/// inner call runs with the span as the current context, for [`TraceparentClient`].
#[derive(Clone, Debug)]
pub struct AttemptTrace<S> {
    inner: S,
    layer: AttemptTraceLayer,
}

impl<S> AttemptTrace<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<LlmRequest> for AttemptTrace<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = TraceFuture<opentelemetry::context::WithContext<S::Future>>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let dep = &self.layer.dep;
        let (parent, place) = match req.extensions.get::<RequestSpan>() {
            Some(RequestSpan(state)) => (state.cx.clone(), state.next(&dep.group)),
            None => (Context::new(), Place::default()),
        };
        let op = req.operation_name();
        let mut attrs = Vec::with_capacity(dep.attrs.len() + 4);
        attrs.extend(dep.attrs.iter().cloned());
        attrs.push(KeyValue::new("gen_ai.operation.name", op));
        attrs.push(KeyValue::new("llmgate.attempt", i64::from(place.attempt)));
        attrs.push(KeyValue::new("llmgate.retry", i64::from(place.retry)));
        attrs.push(KeyValue::new("llmgate.fallback", place.fallback));
        let tracer = self.layer.otel.tracer();
        let span = tracer
            .span_builder(if op == "chat" {
                dep.chat_name.clone()
            } else {
                format!("{op} {}", dep.model)
            })
            .with_kind(SpanKind::Client)
            .with_attributes(attrs)
            .start_with_context(tracer, &parent);
        let cx = parent.with_span(span);
        let inner = {
            // The inner services' `call` runs with the attempt current too.
            let _attached = cx.clone().attach();
            self.inner.call(req)
        };
        TraceFuture {
            inner: inner.with_context(cx.clone()),
            cx: Some(cx),
            role: Role::Attempt,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The answer: attributes, status, the end of a stream
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Request,
    Attempt,
}

pin_project! {
    /// The response future of [`RequestTrace`] and [`AttemptTrace`]: records the answer on the
    /// span, and ends it (a stream's at the stream's end). Dropped before its answer (the client
    /// went away), it ends the span marked `llmgate.cancelled`.
    pub struct TraceFuture<F> {
        #[pin]
        inner: F,
        cx: Option<Context>,
        role: Role,
    }

    impl<F> PinnedDrop for TraceFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(cx) = this.project().cx.take() {
                let span = cx.span();
                span.set_attribute(KeyValue::new("llmgate.cancelled", true));
                span.end();
            }
        }
    }
}

impl<F> fmt::Debug for TraceFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceFuture")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl<F> Future for TraceFuture<F>
where
    F: Future<Output = Result<LlmResponse, LlmError>>,
{
    type Output = Result<LlmResponse, LlmError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let Some(span_cx) = this.cx.take() else {
            return Poll::Ready(result);
        };
        Poll::Ready(match result {
            // A span the sampler left out records nothing: the answer is not read for it.
            Ok(resp) if !span_cx.span().is_recording() => Ok(resp),
            Ok(mut resp) => {
                record_response(&span_cx, &mut resp, *this.role);
                if resp.body.is_stream() {
                    Ok(resp.observe_with(|| StreamSpan::new(span_cx)))
                } else {
                    span_cx.span().end();
                    Ok(resp)
                }
            }
            Err(e) => {
                record_error(&span_cx, &e);
                span_cx.span().end();
                Err(e)
            }
        })
    }
}

fn record_response(cx: &Context, resp: &mut LlmResponse, role: Role) {
    let span = cx.span();
    let meta = &resp.meta;
    if let Some(p) = &meta.provider {
        span.set_attribute(KeyValue::new("gen_ai.system", StringValue::from(p.clone())));
    }
    if role == Role::Request {
        if let Some(id) = &meta.deployment_id {
            span.set_attribute(KeyValue::new(
                "llmgate.deployment.id",
                StringValue::from(id.clone()),
            ));
        }
        if let Some(g) = &meta.model_group {
            span.set_attribute(KeyValue::new(
                "llmgate.model_group",
                StringValue::from(g.clone()),
            ));
        }
        span.set_attribute(KeyValue::new(
            "llmgate.attempted_retries",
            i64::from(meta.attempted_retries),
        ));
        span.set_attribute(KeyValue::new(
            "llmgate.attempted_fallbacks",
            i64::from(meta.attempted_fallbacks),
        ));
        span.set_attribute(KeyValue::new("llmgate.cache_hit", meta.cache_hit));
        if let Some(cost) = meta.cost {
            span.set_attribute(KeyValue::new("llmgate.response_cost", cost));
        }
    }
    if let Some(model) = resp.body.model() {
        span.set_attribute(KeyValue::new("gen_ai.response.model", model.to_owned()));
    }
    if let Some(usage) = resp.body.token_usage() {
        record_usage(cx, usage);
    }
    if let ResponseBody::Chat(chat) = &mut resp.body {
        // The provider's bytes are scanned for the choices' finish reasons (no parse of the
        // messages); a value already typed (a translated provider) is read as it is.
        let reasons = match chat.wire() {
            Some(raw) => wire_finish_reasons(raw),
            None => chat.typed().map_or_else(
                |_| Vec::new(),
                |typed| {
                    typed
                        .choices
                        .iter()
                        .filter_map(|c| c.finish_reason.as_deref())
                        .map(reason_value)
                        .collect()
                },
            ),
        };
        record_finish_reasons(cx, reasons);
    }
}

/// A finish reason as a span value: the reasons OpenAI defines are `&'static str`s (no
/// allocation), any other is copied.
fn reason_value(r: &str) -> StringValue {
    match r {
        "stop" => StringValue::from("stop"),
        "length" => StringValue::from("length"),
        "tool_calls" => StringValue::from("tool_calls"),
        "content_filter" => StringValue::from("content_filter"),
        "function_call" => StringValue::from("function_call"),
        other => StringValue::from(other.to_owned()),
    }
}

/// The `finish_reason` strings of the `choices` of an OpenAI-format answer or chunk, read from
/// its bytes by a structural scan (`types::scan`: values are skipped, not parsed). A reason
/// written with escapes, or bytes that are not such an object, give what was found so far.
fn wire_finish_reasons(raw: &[u8]) -> Vec<StringValue> {
    use crate::types::scan::{for_each_member, skip_value, walk_elements, walk_members};
    let mut reasons = Vec::new();
    let _ = walk_members(
        raw,
        0,
        |key, at| {
            if key != b"choices" {
                return skip_value(raw, at);
            }
            walk_elements(
                raw,
                at,
                |el| {
                    for_each_member(raw, el, |m| {
                        if m.key == b"finish_reason" && !m.escaped {
                            let v = raw.get(m.value).unwrap_or_default();
                            if let Some(text) = v
                                .strip_prefix(b"\"")
                                .and_then(|t| t.strip_suffix(b"\""))
                                .filter(|t| !t.contains(&b'\\'))
                                .and_then(|t| std::str::from_utf8(t).ok())
                            {
                                reasons.push(reason_value(text));
                            }
                        }
                    })
                },
                |_| {},
            )
        },
        |_| {},
    );
    reasons
}

fn record_usage(cx: &Context, usage: TokenUsage) {
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        "gen_ai.usage.input_tokens",
        i64::try_from(usage.input).unwrap_or(i64::MAX),
    ));
    span.set_attribute(KeyValue::new(
        "gen_ai.usage.output_tokens",
        i64::try_from(usage.output).unwrap_or(i64::MAX),
    ));
}

fn record_finish_reasons(cx: &Context, reasons: Vec<StringValue>) {
    if !reasons.is_empty() {
        cx.span().set_attribute(KeyValue::new(
            "gen_ai.response.finish_reasons",
            Value::Array(Array::String(reasons)),
        ));
    }
}

/// Error status, `error.type` (the error's kind) and the HTTP status it answers with. The
/// message is the client-facing one (no keys, no credentialed URLs), cut to 256 bytes.
fn record_error(cx: &Context, e: &LlmError) {
    let span = cx.span();
    span.set_attribute(KeyValue::new("error.type", e.kind().as_str()));
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(e.status().as_u16()),
    ));
    let msg = e.message();
    let mut end = msg.len().min(256);
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    span.set_status(Status::Error {
        description: Cow::Owned(msg[..end].to_owned()),
    });
}

/// Watches a streamed answer for its span: the model, usage and finish reasons the chunks carry;
/// ends the span with the stream (error status on a failed stream, `llmgate.cancelled` on one
/// dropped before its end).
struct StreamSpan {
    cx: Context,
    model_seen: bool,
    usage: Option<TokenUsage>,
    reasons: Vec<StringValue>,
}

impl StreamSpan {
    fn new(cx: Context) -> Self {
        Self {
            cx,
            model_seen: false,
            usage: None,
            reasons: Vec::new(),
        }
    }
}

impl Observer for StreamSpan {
    fn chunk(&mut self, chunk: &mut ChunkBody) -> Flow {
        if !self.model_seen {
            if let Some(model) = chunk.model() {
                self.cx
                    .span()
                    .set_attribute(KeyValue::new("gen_ai.response.model", model.to_owned()));
                self.model_seen = true;
            }
        }
        if let Some(u) = chunk.usage() {
            self.usage = Some(TokenUsage::from(u));
        }
        if chunk.is_finished() {
            match chunk.wire() {
                Some(raw) => self.reasons.extend(wire_finish_reasons(raw)),
                None => {
                    if let Ok(typed) = chunk.typed() {
                        self.reasons.extend(
                            typed
                                .choices
                                .iter()
                                .filter_map(|c| c.finish_reason.as_deref())
                                .map(reason_value),
                        );
                    }
                }
            }
        }
        Flow::Pass
    }

    fn event(&mut self, event: &mut StreamEvent) -> Flow {
        if !self.model_seen {
            if let Some(model) = &event.model {
                self.cx.span().set_attribute(KeyValue::new(
                    "gen_ai.response.model",
                    StringValue::from(model.clone()),
                ));
                self.model_seen = true;
            }
        }
        if let Some(u) = event.usage {
            self.usage = Some(u);
        }
        Flow::Pass
    }

    fn error(&mut self, err: &LlmError) {
        record_error(&self.cx, err);
    }

    fn end(self, end: End) {
        if let Some(u) = self.usage {
            record_usage(&self.cx, u);
        }
        record_finish_reasons(&self.cx, self.reasons);
        let span = self.cx.span();
        if end == End::Dropped {
            span.set_attribute(KeyValue::new("llmgate.cancelled", true));
        }
        span.end();
    }
}

// ---------------------------------------------------------------------------------------------
// W3C trace context in and out
// ---------------------------------------------------------------------------------------------

struct TraceParentCarrier<'a>(&'a TraceParent);

impl Extractor for TraceParentCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.0.traceparent.to_str().ok(),
            "tracestate" => self.0.tracestate.as_ref().and_then(|v| v.to_str().ok()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// The propagator's view of a header map (the tests compare [`inject`] with the propagator).
#[cfg(test)]
struct HeaderInjector<'a>(&'a mut http::HeaderMap);

#[cfg(test)]
impl opentelemetry::propagation::Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// An HTTP client wrapper that puts the current span's W3C `traceparent` (and `tracestate`) on
/// each request: under [`AttemptTrace`], the attempt span's. Without a current span the request
/// goes as it is.
#[derive(Clone, Debug)]
pub struct TraceparentClient<C> {
    inner: C,
}

impl<C> TraceparentClient<C> {
    /// Wraps `inner`.
    pub fn new(inner: C) -> Self {
        Self { inner }
    }

    /// The inner client.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// The inner client, unwrapped.
    pub fn into_inner(self) -> C {
        self.inner
    }
}

impl<C> Service<http::Request<Full<Bytes>>> for TraceparentClient<C>
where
    C: Service<http::Request<Full<Bytes>>>,
{
    type Response = C::Response;
    type Error = C::Error;
    type Future = C::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Full<Bytes>>) -> Self::Future {
        let cx = Context::current();
        inject(&cx, req.headers_mut());
        self.inner.call(req)
    }
}

const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

/// Lower-case hex of `bytes` into `out` (two digits a byte).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
}

/// Puts `cx`'s span context on `headers` as the W3C trace-context propagator writes it
/// (`00-{trace id}-{span id}-{flags & sampled}`, and `tracestate` when the context has one), but
/// hex-encoded into a stack buffer: the propagator formats through `Display` into a new `String`
/// per id, which cost about 4 500 instructions per provider request under callgrind. An empty
/// `tracestate` is left out (the propagator sent an empty header).
fn inject(cx: &Context, headers: &mut http::HeaderMap) {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return;
    }
    // `00-` + 32 hex digits + `-` + 16 + `-` + 2.
    let mut buf = [b'-'; 55];
    hex_into(&mut buf[0..2], &[0]);
    hex_into(&mut buf[3..35], &sc.trace_id().to_bytes());
    hex_into(&mut buf[36..52], &sc.span_id().to_bytes());
    hex_into(
        &mut buf[53..55],
        &[(sc.trace_flags() & opentelemetry::trace::TraceFlags::SAMPLED).to_u8()],
    );
    if let Ok(v) = http::HeaderValue::from_bytes(&buf) {
        headers.insert(TRACEPARENT, v);
    }
    let state = sc.trace_state().header();
    if !state.is_empty() {
        if let Ok(v) = http::HeaderValue::from_str(&state) {
            headers.insert(TRACESTATE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(raw: &str) -> Vec<String> {
        wire_finish_reasons(raw.as_bytes())
            .into_iter()
            .map(|r| r.as_str().to_owned())
            .collect()
    }

    #[test]
    fn finish_reasons_are_read_from_the_wire_without_a_parse() {
        let answer = r#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"a \"finish_reason\": \"no\"","finish_reason":"decoy"},"finish_reason":"stop"},{"index":1,"finish_reason":"length","message":{}}],"usage":{"prompt_tokens":1}}"#;
        assert_eq!(reasons(answer), ["stop", "length"]);
        // A chunk: null reasons are left out; an unknown reason is kept as written.
        assert_eq!(
            reasons(
                r#"{"choices":[{"delta":{},"finish_reason":null},{"delta":{},"finish_reason":"my_reason"}]}"#
            ),
            ["my_reason"]
        );
        // No choices, malformed bytes, escaped reasons: nothing invented, no panic.
        assert!(reasons(r#"{"choices":[]}"#).is_empty());
        assert!(reasons(r#"{"object":"list"}"#).is_empty());
        assert!(reasons(r#"{"choices":[{"finish_reason":"st\u006fp"}]}"#).is_empty());
        for bad in [
            "",
            "[",
            "{\"choices\":",
            "{\"choices\":[{\"finish_reason\":\"stop\"",
            "null",
            "{\"choices\":{}}",
        ] {
            let _ = reasons(bad);
        }
        // The OpenAI reasons are static strings (no allocation).
        assert!(matches!(reason_value("stop"), v if v.as_str() == "stop"));
    }

    #[test]
    fn places_count_retries_per_group_and_mark_fallbacks() {
        let state = RequestSpanState {
            cx: Context::new(),
            attempts: AtomicU32::new(0),
            groups: Mutex::new(None),
        };
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        let seen: Vec<Place> = [&a, &a, &b, &b, &b]
            .into_iter()
            .map(|g| state.next(g))
            .collect();
        let want = [
            (0, 0, false),
            (1, 1, false),
            (2, 0, true),
            (3, 1, true),
            (4, 2, true),
        ];
        for (p, (attempt, retry, fallback)) in seen.iter().zip(want) {
            assert_eq!(
                *p,
                Place {
                    attempt,
                    retry,
                    fallback
                }
            );
        }
    }

    #[test]
    fn extracts_and_injects_w3c_context() {
        let tp = TraceParent {
            traceparent: http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            tracestate: Some(http::HeaderValue::from_static("vendor=x")),
        };
        let cx = TraceContextPropagator::new().extract(&TraceParentCarrier(&tp));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let mut headers = http::HeaderMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(&mut headers));
        assert_eq!(headers["traceparent"], tp.traceparent);
        assert_eq!(headers["tracestate"], "vendor=x");
        // The client's own writer writes what the propagator writes.
        let mut ours = http::HeaderMap::new();
        inject(&cx, &mut ours);
        assert_eq!(ours, headers);
        // Another context (unsampled, no state): the propagator's traceparent, no empty
        // tracestate.
        let other = TraceParent {
            traceparent: http::HeaderValue::from_static(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
            ),
            tracestate: None,
        };
        let cx2 = TraceContextPropagator::new().extract(&TraceParentCarrier(&other));
        let mut theirs = http::HeaderMap::new();
        TraceContextPropagator::new().inject_context(&cx2, &mut HeaderInjector(&mut theirs));
        let mut ours = http::HeaderMap::new();
        inject(&cx2, &mut ours);
        assert_eq!(ours["traceparent"], theirs["traceparent"]);
        assert_eq!(ours["traceparent"], other.traceparent);
        assert!(!ours.contains_key("tracestate"));
        // No valid span: nothing written.
        let mut none = http::HeaderMap::new();
        inject(&Context::new(), &mut none);
        assert!(none.is_empty());
        // A malformed header is no parent (a new trace), never an error.
        let bad = TraceParent {
            traceparent: http::HeaderValue::from_static("00-zz-00-01"),
            tracestate: None,
        };
        let cx = TraceContextPropagator::new().extract(&TraceParentCarrier(&bad));
        assert!(!cx.span().span_context().is_valid());
    }
}
