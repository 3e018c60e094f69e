//! [`CallRecordLayer`] and [`CallRecorder`]: build one [`CallRecord`] per call and hand it to the
//! [`Callbacks`].

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::{Duration, Instant, SystemTime},
};

use futures_core::Stream;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{CallRecord, CallStatus, Callbacks};
use crate::{
    auth::KeyInfo,
    cost::StreamTally,
    error::{ErrorKind, LlmError},
    rate_limit::LimitReport,
    types::{
        extensions::{CallId, ReceivedAt},
        usage::TokenUsage,
        ChunkBody, LlmRequest, LlmResponse, OperationKind, ResponseBody, ResponseMeta, StreamEvent,
    },
};

/// HTTP status LiteLLM's proxy answers a client that disconnected with (nginx's "client closed
/// request").
pub const STATUS_CLIENT_CLOSED: u16 = 499;

/// Applies [`CallRecorder`]: one [`CallRecord`] per call, handed to `callbacks` when the call
/// ends. Place it just inside auth (it reads the caller's `Arc<KeyInfo>`), outside rate limits,
/// budgets and cost (their refusals are calls too, and a stream's usage and cost are read from
/// the cost layer's [`StreamTally`]).
#[derive(Clone, Debug)]
#[must_use]
pub struct CallRecordLayer {
    callbacks: Callbacks,
}

impl CallRecordLayer {
    /// Records every call that calls a model for `callbacks`.
    pub fn new(callbacks: Callbacks) -> Self {
        Self { callbacks }
    }

    pub(super) fn callbacks(&self) -> &Callbacks {
        &self.callbacks
    }
}

impl<S> Layer<S> for CallRecordLayer {
    type Service = CallRecorder<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallRecorder {
            inner,
            callbacks: self.callbacks.clone(),
        }
    }
}

/// Builds one [`CallRecord`] per call. See [`CallRecordLayer`].
#[derive(Clone, Debug)]
pub struct CallRecorder<S> {
    inner: S,
    callbacks: Callbacks,
}

impl<S> CallRecorder<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes this, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// What the recorder keeps about a call until it ends.
struct Ctx {
    callbacks: Callbacks,
    call_id: Option<Arc<str>>,
    operation: &'static str,
    route: &'static str,
    model_group: Arc<str>,
    key: Option<Arc<KeyInfo>>,
    end_user: Option<Arc<str>>,
    stream: bool,
    started: Instant,
    started_wall: SystemTime,
    tally: Option<StreamTally>,
    messages: Option<serde_json::Value>,
    /// The request's model groups, for the fallback counters (metrics on).
    trail: Option<crate::metrics::FallbackTrail>,
    /// The rate-limit layer's numbers for the caller's key and team (metrics on, and the key or
    /// its team has an rpm or tpm limit).
    limits: Option<LimitReport>,
}

/// The facts of [`ResponseMeta`] a record needs (copied: `Arc`s and numbers, no allocation).
#[derive(Default)]
struct Facts {
    deployment: Option<Arc<crate::provider::Deployment>>,
    provider: Option<Arc<str>>,
    api_base: Option<Arc<str>>,
    cache_hit: bool,
    retries: u32,
    fallbacks: u32,
}

impl Facts {
    fn of(meta: &ResponseMeta) -> Self {
        Self {
            deployment: meta.deployment.clone(),
            provider: meta
                .provider
                .clone()
                .or_else(|| meta.deployment.as_ref().map(|d| d.provider.clone())),
            api_base: meta
                .api_base
                .clone()
                .or_else(|| meta.deployment.as_ref().and_then(|d| d.api_base.clone())),
            cache_hit: meta.cache_hit,
            retries: meta.attempted_retries,
            fallbacks: meta.attempted_fallbacks,
        }
    }
}

/// What the response told (kept for a stream until its end).
#[derive(Default)]
struct Answer {
    facts: Facts,
    usage: Option<TokenUsage>,
    cost: f64,
    ttft: Option<Duration>,
    overhead: Option<Duration>,
    text: Option<String>,
}

/// Whether the caller's key or team has an rpm or tpm limit (the rate-limit gauges' scopes).
fn has_rate_limits(k: &KeyInfo) -> bool {
    let set = |l: &crate::store::Limits| {
        l.rpm_limit.is_some_and(|v| v >= 0) || l.tpm_limit.is_some_and(|v| v >= 0)
    };
    set(&k.key.limits) || k.team.as_ref().is_some_and(|t| set(&t.limits))
}

/// The router's "no such model group" (no provider named it), which the edge answers as
/// LiteLLM's 400 invalid-model error.
fn is_unknown_model(e: &LlmError) -> bool {
    e.kind() == ErrorKind::NotFound && e.code() == Some("model_not_found") && e.provider().is_none()
}

pub(super) fn route_of(kind: OperationKind) -> &'static str {
    if kind == OperationKind::Chat {
        "/chat/completions"
    } else if kind == OperationKind::Embeddings {
        "/embeddings"
    } else {
        "/models"
    }
}

impl Ctx {
    fn finish(self, status: CallStatus, http_status: u16, err: Option<&LlmError>, answer: Answer) {
        let total = self.started.elapsed();
        if let (Some(t), Some(m)) = (&self.trail, self.callbacks.metrics_registry()) {
            t.call_ended(m, status == CallStatus::Success);
        }
        // The router's unknown model reaches the client as LiteLLM's 400 (`server::surface`);
        // count it as the client saw it.
        let (http_status, error_class) = match err {
            Some(e) if is_unknown_model(e) => (400, Some(ErrorKind::BadRequest.as_str())),
            Some(e) => (http_status, Some(e.kind().as_str())),
            None => (http_status, None),
        };
        let meta = answer.facts;
        let upstream = answer.overhead.map(|o| total.saturating_sub(o));
        let record = CallRecord {
            call_id: self
                .call_id
                .unwrap_or_else(|| crate::types::extensions::new_call_id().into()),
            operation: self.operation,
            route: self.route,
            model_group: self.model_group,
            deployment: meta.deployment,
            provider: meta.provider,
            api_base: meta.api_base,
            key: self.key,
            end_user: self.end_user,
            stream: self.stream,
            status,
            http_status,
            error_class,
            // Only sinks write messages (no allocation for metrics alone).
            error_message: err
                .filter(|_| !self.callbacks.sinks().is_empty())
                .map(|e| Arc::from(e.message())),
            usage: answer.usage.unwrap_or_default(),
            cost: answer.cost,
            total_latency: total,
            upstream_latency: upstream,
            time_to_first_token: answer.ttft,
            overhead: answer.overhead,
            cache_hit: meta.cache_hit,
            retries: meta.retries,
            fallbacks: meta.fallbacks,
            key_limits: self.limits.as_ref().and_then(LimitReport::key),
            team_limits: self.limits.as_ref().and_then(LimitReport::team),
            start_time: self.started_wall,
            end_time: SystemTime::now(),
            messages: self.messages,
            response_text: answer.text,
        };
        self.callbacks.dispatch(record);
    }
}

impl<S> Service<LlmRequest> for CallRecorder<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: LlmRequest) -> Self::Future {
        let kind = req.kind();
        if !kind.calls_a_model() || self.callbacks.is_empty() {
            return ResponseFuture {
                inner: self.inner.call(req),
                ctx: None,
            };
        }
        let started = req
            .extensions
            .get::<ReceivedAt>()
            .map_or_else(Instant::now, |r| r.0);
        let started_wall = SystemTime::now()
            .checked_sub(started.elapsed())
            .unwrap_or_else(SystemTime::now);
        let stream = req.is_stream();
        // A stream's usage and cost come from the cost layer when the stream ends.
        let tally = stream.then(|| {
            req.extensions
                .get::<StreamTally>()
                .cloned()
                .unwrap_or_else(|| {
                    let t = StreamTally::default();
                    req.extensions.insert(t.clone());
                    t
                })
        });
        let messages = if self.callbacks.wants_content() {
            req.as_chat()
                .and_then(|c| serde_json::to_value(&c.messages).ok())
        } else {
            None
        };
        let trail = self.callbacks.metrics_registry().map(|_| {
            let t = crate::metrics::FallbackTrail::default();
            req.extensions.insert(t.clone());
            t
        });
        let key = req.extensions.get::<Arc<KeyInfo>>().cloned();
        let limits = (self.callbacks.metrics_registry().is_some()
            && key.as_deref().is_some_and(has_rate_limits))
        .then(|| {
            let l = LimitReport::default();
            req.extensions.insert(l.clone());
            l
        });
        let ctx = Ctx {
            trail,
            limits,
            model_group: self.callbacks.intern_group(req.model()),
            callbacks: self.callbacks.clone(),
            call_id: req.extensions.get::<CallId>().map(|c| c.0.clone()),
            operation: kind.as_str(),
            route: route_of(kind),
            key,
            end_user: req
                .as_chat()
                .and_then(|c| c.user.as_deref())
                .filter(|u| !u.is_empty())
                .map(Arc::from),
            stream,
            started,
            started_wall,
            tally,
            messages,
        };
        ResponseFuture {
            inner: self.inner.call(req),
            ctx: Some(ctx),
        }
    }
}

pin_project! {
    /// The response future of [`CallRecorder`]. Dropped before its response (the client went
    /// away), it records the call as cut.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        ctx: Option<Ctx>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(ctx) = this.project().ctx.take() {
                ctx.finish(CallStatus::Cut, STATUS_CLIENT_CLOSED, None, Answer::default());
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("callbacks::ResponseFuture")
            .finish_non_exhaustive()
    }
}

/// The first choice's message text of a complete chat answer.
fn answer_text(body: &ResponseBody) -> Option<String> {
    let ResponseBody::Chat(c) = body else {
        return None;
    };
    let bytes = c.to_bytes().ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.pointer("/choices/0/message/content")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<LlmResponse, LlmError>>,
{
    type Output = Result<LlmResponse, LlmError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let Some(ctx) = this.ctx.take() else {
            return Poll::Ready(result);
        };
        match result {
            Err(e) => {
                ctx.finish(
                    CallStatus::Failure,
                    e.status().as_u16(),
                    Some(&e),
                    Answer::default(),
                );
                Poll::Ready(Err(e))
            }
            Ok(resp) => {
                let at = ctx.started.elapsed();
                // Gateway time: until the answer (a stream's first chunk: the deployment stack
                // hands a stream on once its first chunk arrived) minus the provider's share.
                let overhead = resp
                    .meta
                    .time_to_first_byte
                    .map(|ttfb| at.saturating_sub(ttfb))
                    .or_else(|| resp.meta.cache_hit.then_some(at));
                if resp.body.is_stream() {
                    let answer = Answer {
                        facts: Facts::of(&resp.meta),
                        ttft: Some(at),
                        overhead,
                        text: ctx.callbacks.wants_content().then(String::new),
                        ..Answer::default()
                    };
                    // Either kind of stream: chat chunks, or a dialect's events.
                    let mut ctx = Some(ctx);
                    let mut answer = Some(answer);
                    let resp = resp.map_stream(|inner| {
                        Box::pin(RecordStream {
                            inner: Some(inner),
                            ctx: ctx.take(),
                            answer: answer.take().unwrap_or_default(),
                        })
                    });
                    Poll::Ready(Ok(resp.map_events(|inner| {
                        Box::pin(RecordStream {
                            inner: Some(inner),
                            ctx: ctx.take(),
                            answer: answer.take().unwrap_or_default(),
                        })
                    })))
                } else {
                    let text = if ctx.callbacks.wants_content() {
                        answer_text(&resp.body)
                    } else {
                        None
                    };
                    let answer = Answer {
                        facts: Facts::of(&resp.meta),
                        usage: resp.token_usage(),
                        cost: resp.meta.cost.unwrap_or(0.0),
                        ttft: None,
                        overhead,
                        text,
                    };
                    ctx.finish(CallStatus::Success, 200, None, answer);
                    Poll::Ready(Ok(resp))
                }
            }
        }
    }
}

/// A streamed answer on its way to the client: the call is recorded at its end, its first
/// error, or when it is dropped. The inner stream (and with it the cost layer's observer, which
/// fills the [`StreamTally`]) is dropped before the record is built.
struct RecordStream<T> {
    inner: Option<Boxed<T>>,
    ctx: Option<Ctx>,
    answer: Answer,
}

/// A boxed stream of `T`s: a [`ChatStream`](crate::types::ChatStream) or an [`EventStream`](crate::types::EventStream).
type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, LlmError>> + Send + 'static>>;

/// An item of a recorded stream: the message text it carries, for sinks that log content.
trait Recorded {
    fn append_text(&self, text: &mut String);
}

impl Recorded for ChunkBody {
    fn append_text(&self, text: &mut String) {
        if let Ok(bytes) = self.to_bytes() {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                if let Some(t) = v
                    .pointer("/choices/0/delta/content")
                    .and_then(serde_json::Value::as_str)
                {
                    text.push_str(t);
                }
            }
        }
    }
}

impl Recorded for StreamEvent {
    /// A dialect's text deltas: Anthropic's `delta.text`, the Responses API's `delta`.
    fn append_text(&self, text: &mut String) {
        let Some(data) = self
            .frame
            .split(|b| *b == b'\n')
            .find_map(|line| line.strip_prefix(b"data: "))
        else {
            return;
        };
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
            let t = v
                .pointer("/delta/text")
                .or_else(|| v.get("delta").filter(|d| d.is_string()))
                .and_then(serde_json::Value::as_str);
            if let Some(t) = t {
                text.push_str(t);
            }
        }
    }
}

impl<T> RecordStream<T> {
    fn end(&mut self, status: CallStatus, http_status: u16, err: Option<&LlmError>) {
        // A dropped stream: drop the inner one first, so that the cost layer's observer (which
        // writes the tally when it ends) has ended.
        if status == CallStatus::Cut {
            self.inner = None;
        }
        let Some(ctx) = self.ctx.take() else {
            return;
        };
        let mut answer = std::mem::take(&mut self.answer);
        if let Some((usage, cost)) = ctx.tally.as_ref().and_then(StreamTally::get) {
            answer.usage = usage;
            answer.cost = cost;
        }
        ctx.finish(status, http_status, err, answer);
    }

    fn collect_text(&mut self, item: &T)
    where
        T: Recorded,
    {
        if let Some(text) = self.answer.text.as_mut() {
            item.append_text(text);
        }
    }
}

impl<T: Recorded> Stream for RecordStream<T> {
    type Item = Result<T, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let item = ready!(inner.as_mut().poll_next(cx));
        if self.ctx.is_some() {
            match &item {
                Some(Ok(chunk)) => self.collect_text(chunk),
                Some(Err(e)) => {
                    let status = e.status().as_u16();
                    // The cost layer below has seen the error and written the tally.
                    self.end(CallStatus::Failure, status, Some(e));
                    return Poll::Ready(item);
                }
                None => {
                    self.end(CallStatus::Success, 200, None);
                }
            }
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.as_ref().map_or((0, Some(0)), |s| s.size_hint())
    }
}

impl<T> Drop for RecordStream<T> {
    fn drop(&mut self) {
        if self.ctx.is_some() {
            self.end(CallStatus::Cut, STATUS_CLIENT_CLOSED, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures_util::StreamExt as _;
    use tower::{Layer as _, ServiceExt as _};

    use super::*;
    use crate::{
        callbacks::Sink,
        cost::{CostLayer, PriceTable, Pricing},
        error::ErrorKind,
        provider::Deployment,
        types::ChatStream,
    };

    #[derive(Debug, Default)]
    struct Collect(Mutex<Vec<Arc<CallRecord>>>);

    impl Sink for Collect {
        fn offer(&self, record: &Arc<CallRecord>) {
            self.0.lock().unwrap().push(record.clone());
        }
        fn wants_content(&self) -> bool {
            true
        }
        fn name(&self) -> &str {
            "collect"
        }
    }

    const USAGE_CHUNK: &str =
        r#"{"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":50,"total_tokens":150}}"#;

    /// Record layer → cost layer → a deployment answering `reply`.
    fn stack(
        reply: fn() -> Result<LlmResponse, LlmError>,
    ) -> (
        impl Service<LlmRequest, Response = LlmResponse, Error = LlmError, Future: Send> + Clone,
        Arc<Collect>,
    ) {
        let dep = Deployment::new("g", "openai/gpt-4o-mini");
        let pricing = Arc::new(Pricing::new(&PriceTable::builtin(), [&dep]));
        let dep = Arc::new(dep);
        let inner = tower::service_fn(move |_req: LlmRequest| {
            let dep = dep.clone();
            async move {
                let mut resp = reply()?;
                resp.meta.deployment_id = Some(dep.id.clone());
                resp.meta.deployment = Some(dep);
                resp.meta.time_to_first_byte = Some(Duration::from_millis(1));
                Ok::<_, LlmError>(resp)
            }
        });
        let sink = Arc::new(Collect::default());
        let callbacks = Callbacks::new().sink(sink.clone());
        let svc = CallRecordLayer::new(callbacks).layer(CostLayer::new(pricing).layer(inner));
        (svc, sink)
    }

    fn req(stream: bool) -> LlmRequest {
        let mut body = crate::types::chat::ChatRequest {
            model: "g".into(),
            messages: vec![crate::types::chat::Message::new("user", "hi there")],
            ..Default::default()
        };
        body.stream = Some(stream);
        body.user = Some("end-1".into());
        LlmRequest::chat(body)
    }

    fn chunks(items: Vec<&'static str>) -> ChatStream {
        let items: Vec<Result<ChunkBody, LlmError>> = items
            .into_iter()
            .map(|c| ChunkBody::from_wire(bytes::Bytes::from_static(c.as_bytes())))
            .collect();
        Box::pin(futures_util::stream::iter(items))
    }

    #[tokio::test]
    async fn a_complete_answer_is_one_success_record_with_usage_cost_and_content() {
        let (svc, sink) = stack(|| {
            Ok(LlmResponse::chat_wire(bytes::Bytes::from_static(
                br#"{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30}}"#,
            ))
            .unwrap())
        });
        svc.oneshot(req(false)).await.unwrap();
        let recs = sink.0.lock().unwrap().clone();
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!(r.status, CallStatus::Success);
        assert_eq!(r.http_status, 200);
        assert_eq!((r.usage.input, r.usage.output, r.usage.total), (10, 20, 30));
        assert!(
            (r.cost - 10.0f64.mul_add(1.5e-7, 20.0 * 6e-7)).abs() < 1e-15,
            "{}",
            r.cost
        );
        assert_eq!(r.model(), Some("gpt-4o-mini"));
        assert_eq!(&*r.model_group, "g");
        assert_eq!(r.end_user.as_deref(), Some("end-1"));
        assert_eq!(r.route, "/chat/completions");
        assert!(r.time_to_first_token.is_none());
        assert!(r.overhead.is_some() && r.upstream_latency.is_some());
        assert_eq!(r.messages.as_ref().unwrap()[0]["content"], "hi there");
        assert_eq!(r.response_text.as_deref(), Some("hello"));
    }

    #[tokio::test]
    async fn an_error_is_one_failure_record_with_its_status_and_class() {
        let (svc, sink) = stack(|| Err(LlmError::new(ErrorKind::RateLimit, "slow down")));
        let err = svc.oneshot(req(false)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimit);
        let recs = sink.0.lock().unwrap().clone();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].status, CallStatus::Failure);
        assert_eq!(recs[0].http_status, 429);
        assert_eq!(recs[0].error_class, Some("rate_limit"));
        assert_eq!(recs[0].cost, 0.0);
    }

    #[tokio::test]
    async fn a_stream_is_recorded_at_its_end_with_the_cost_layers_usage() {
        let (svc, sink) = stack(|| {
            Ok(LlmResponse::stream(chunks(vec![
                r#"{"choices":[{"index":0,"delta":{"content":"ab"}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"content":"cd"}}]}"#,
                USAGE_CHUNK,
            ])))
        });
        let resp = svc.oneshot(req(true)).await.unwrap();
        let ResponseBody::Stream(mut s) = resp.body else {
            panic!("not a stream");
        };
        assert!(sink.0.lock().unwrap().is_empty(), "not before its end");
        while let Some(c) = s.next().await {
            c.unwrap();
        }
        let recs = sink.0.lock().unwrap().clone();
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!(r.status, CallStatus::Success);
        assert_eq!((r.usage.input, r.usage.output), (100, 50));
        assert!(r.cost > 0.0);
        assert!(r.time_to_first_token.is_some());
        assert_eq!(r.response_text.as_deref(), Some("abcd"));
        drop(s);
        assert_eq!(sink.0.lock().unwrap().len(), 1, "recorded once");
    }

    #[tokio::test]
    async fn a_dropped_stream_is_recorded_as_cut_with_the_estimated_usage() {
        let (svc, sink) = stack(|| {
            let first = chunks(vec![
                r#"{"choices":[{"index":0,"delta":{"content":"0123456789abcdef"}}]}"#,
            ]);
            Ok(LlmResponse::stream(Box::pin(
                first.chain(futures_util::stream::pending()),
            )))
        });
        let resp = svc.oneshot(req(true)).await.unwrap();
        let ResponseBody::Stream(mut s) = resp.body else {
            panic!("not a stream");
        };
        s.next().await.unwrap().unwrap();
        drop(s);
        let recs = sink.0.lock().unwrap().clone();
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!(r.status, CallStatus::Cut);
        assert_eq!(r.http_status, STATUS_CLIENT_CLOSED);
        // The cost layer ended first: 16 bytes delivered = 4 tokens; "hi there" = 2 + 3.
        assert_eq!((r.usage.input, r.usage.output), (5, 4));
        assert!(r.cost > 0.0);
    }

    #[tokio::test]
    async fn no_consumer_means_no_record_and_no_change() {
        let svc = CallRecordLayer::new(Callbacks::new()).layer(tower::service_fn(
            |_r: LlmRequest| async { Err::<LlmResponse, _>(LlmError::internal("x")) },
        ));
        assert!(svc.oneshot(req(false)).await.is_err());
    }
}
