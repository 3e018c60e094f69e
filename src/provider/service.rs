//! [`ProviderService`]: a provider translation over an HTTP client, as a model-level service.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{future::Either, FutureExt as _, StreamExt as _};
use http::{HeaderMap, HeaderName};
use http_body::Body;
use http_body_util::{BodyDataStream, BodyExt as _, Full, Limited};
use tower_layer::Layer;
use tower_service::Service;

use super::{Deployment, Provider, SharedProvider};
use crate::{
    error::{BoxError, ErrorKind, LlmError},
    types::{LlmRequest, LlmResponse},
};

/// Largest complete (non-stream) provider body accepted: 64 MiB.
const MAX_RESPONSE_BYTES: usize = 64 << 20;
/// Largest provider error body read: 1 MiB.
const MAX_ERROR_BYTES: usize = 1 << 20;
/// LiteLLM's default request timeout (`request_timeout: 600`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Wraps an HTTP client in a [`ProviderService`] for one deployment.
///
/// See the [module docs](crate::provider) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct ProviderLayer {
    provider: SharedProvider,
    /// The provider name responses carry: the prefix it was registered under.
    provider_name: Arc<str>,
    deployment: Arc<Deployment>,
    default_timeout: Option<Duration>,
}

impl ProviderLayer {
    /// A layer for `deployment`, translating with `provider` (a built-in from
    /// [`lookup`](super::lookup) or [`Providers`](super::Providers), or `Arc::new(MyProvider)`).
    ///
    /// Resolves the deployment for `provider` now (its endpoints, credential and response header
    /// values: see [`provider::resolve`](super::resolve)), so that no call pays for it.
    pub fn new(provider: SharedProvider, deployment: Arc<Deployment>) -> Self {
        deployment.prepare(provider.name());
        Self {
            provider_name: provider.name().into(),
            provider,
            deployment,
            default_timeout: Some(DEFAULT_TIMEOUT),
        }
    }

    /// The provider name responses carry (`LlmResponse::meta.provider`); default
    /// [`Provider::name`]. The gateway sets the prefix the provider was registered under.
    pub fn provider_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.provider_name = name.into();
        self
    }

    /// The timeout when the deployment sets none (default 600 s, as LiteLLM).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = Some(timeout);
        self
    }

    /// No timeout of its own when the deployment sets none: for a stack where a
    /// [`TimeoutLayer`](crate::timeout::TimeoutLayer) above governs (the gateway's). Saves a
    /// timer per call.
    pub fn without_default_timeout(mut self) -> Self {
        self.default_timeout = None;
        self
    }
}

impl<C> Layer<C> for ProviderLayer {
    type Service = ProviderService<C>;

    fn layer(&self, client: C) -> Self::Service {
        ProviderService {
            client,
            target: Arc::new(Target {
                provider: self.provider.clone(),
                provider_name: self.provider_name.clone(),
                deployment: self.deployment.clone(),
            }),
            default_timeout: self.default_timeout,
        }
    }
}

/// A model-level service that calls one deployment through an HTTP client
/// (`Service<http::Request<Full<Bytes>>>`).
///
/// Errors: transport failures become [`ErrorKind::ApiConnection`], an elapsed timeout
/// [`ErrorKind::Timeout`], provider errors whatever [`Provider::classify`] says. The provider's
/// `retry-after` is kept in [`LlmError::retry_after`] and forwarded with its rate-limit headers.
#[derive(Clone)]
pub struct ProviderService<C> {
    client: C,
    /// What a call needs, behind one pointer: a call clones one `Arc` (shared by the serving
    /// threads), not three.
    target: Arc<Target>,
    default_timeout: Option<Duration>,
}

/// The provider, the name its responses carry, and the deployment.
struct Target {
    provider: SharedProvider,
    /// `provider.name()` or the prefix it was registered under, shared by every response's meta.
    provider_name: Arc<str>,
    deployment: Arc<Deployment>,
}

impl<C> fmt::Debug for ProviderService<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderService")
            .field("provider", &self.target.provider.name())
            .field("deployment", &self.target.deployment)
            .finish_non_exhaustive()
    }
}

impl<C> ProviderService<C> {
    /// A service for `deployment` over `client`.
    pub fn new(client: C, provider: SharedProvider, deployment: Arc<Deployment>) -> Self {
        ProviderLayer::new(provider, deployment).layer(client)
    }

    /// The deployment this service calls.
    #[must_use]
    pub fn deployment(&self) -> &Arc<Deployment> {
        &self.target.deployment
    }

    /// The HTTP client.
    pub fn get_ref(&self) -> &C {
        &self.client
    }
}

/// The response future of [`ProviderService`].
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<LlmResponse, LlmError>> + Send>>;

impl<C, B> Service<LlmRequest> for ProviderService<C>
where
    C: Service<http::Request<Full<Bytes>>, Response = http::Response<B>> + Clone + Send + 'static,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = ResponseFuture;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.client
            .poll_ready(cx)
            .map_err(|e| transport_error(e.into()))
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let clone = self.client.clone();
        let client = std::mem::replace(&mut self.client, clone);
        let timeout = self.target.deployment.timeout.or(self.default_timeout);
        Box::pin(call(client, self.target.clone(), timeout, req))
    }
}

/// One call: natively when the provider speaks the operation, else through the operation's
/// [`Bridge`](super::bridge::Bridge) to the provider's chat, else a 400.
async fn call<C, B>(
    client: C,
    target: Arc<Target>,
    timeout: Option<Duration>,
    req: LlmRequest,
) -> Result<LlmResponse, LlmError>
where
    C: Service<http::Request<Full<Bytes>>, Response = http::Response<B>> + Clone,
    C::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let provider: &dyn Provider = &*target.provider;
    let kind = req.kind();
    if kind == crate::types::OperationKind::PassThrough {
        let (name, dep) = (&target.provider_name, &target.deployment);
        return super::passthrough::call(client, provider, name, dep, timeout, req).await;
    }
    if let Some(calls) = split_embeddings(provider, &target.deployment, &req) {
        return call_split(client, &target, timeout, calls).await;
    }
    if provider.supports_for(kind, &target.deployment) {
        return call_native(client, &target, timeout, req).await;
    }
    let bridge = super::bridge::for_kind(kind)
        .filter(|_| provider.supports(crate::types::OperationKind::Chat))
        .ok_or_else(|| super::unsupported(provider, &req))?;
    if let Some(answer) = bridge.answer_locally(&req) {
        return answer.map(|mut r| {
            stamp(&mut r, &target.deployment, &target.provider_name);
            r
        });
    }
    let chat = bridge.chat_request(&req)?;
    let resp = call_native(client, &target, timeout, chat).await?;
    bridge.chat_answer(&req, resp)
}

/// Calls of one embeddings request run at once when its batch is split.
const SPLIT_CONCURRENCY: usize = 8;

/// The calls of an embeddings request with more inputs than the provider takes in one call
/// ([`Provider::embedding_inputs_per_call`]): one request per slice of the inputs, in order.
fn split_embeddings(
    provider: &dyn Provider,
    dep: &Deployment,
    req: &LlmRequest,
) -> Option<Vec<LlmRequest>> {
    use crate::types::{embeddings::EmbeddingInput, Operation};
    let Operation::Embeddings(emb) = &req.op else {
        return None;
    };
    let per_call = provider.embedding_inputs_per_call(dep)?.max(1);
    let EmbeddingInput::Many(texts) = &emb.input else {
        return None;
    };
    if texts.len() <= per_call {
        return None;
    }
    let controls = req.controls().into_owned();
    Some(
        texts
            .chunks(per_call)
            .map(|chunk| {
                let mut part = (**emb).clone();
                part.input = EmbeddingInput::Many(chunk.to_vec());
                let mut call = LlmRequest::new(Operation::Embeddings(Arc::new(part)));
                call.extensions = req.extensions.clone();
                call.set_controls(Some(controls.clone()));
                call
            })
            .collect(),
    )
}

/// Runs the calls of a split embeddings request ([`SPLIT_CONCURRENCY`] at a time) and joins
/// their answers in order; the first failure fails the request.
async fn call_split<C, B>(
    client: C,
    target: &Arc<Target>,
    timeout: Option<Duration>,
    calls: Vec<LlmRequest>,
) -> Result<LlmResponse, LlmError>
where
    C: Service<http::Request<Full<Bytes>>, Response = http::Response<B>> + Clone,
    C::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    use crate::types::ResponseBody;
    use futures_util::TryStreamExt as _;
    // Each call with its own client, so that the stream holds no reference to `client`.
    let calls: Vec<(C, LlmRequest)> = calls.into_iter().map(|c| (client.clone(), c)).collect();
    let answers: Vec<LlmResponse> = futures_util::stream::iter(calls)
        .map(|(client, call)| call_native(client, target, timeout, call))
        .buffered(SPLIT_CONCURRENCY)
        .try_collect()
        .await?;
    let mut meta = None;
    let mut parts = Vec::with_capacity(answers.len());
    for answer in answers {
        let ResponseBody::Embeddings(body) = answer.body else {
            return Err(LlmError::internal(
                "an embeddings call answered something else",
            ));
        };
        parts.push(*body);
        meta.get_or_insert(answer.meta);
    }
    let mut out = LlmResponse::embeddings(super::bedrock::embed::join(parts));
    if let Some(meta) = meta {
        out.meta = meta;
    }
    Ok(out)
}

/// A call of an operation the provider speaks.
async fn call_native<C, B>(
    mut client: C,
    target: &Arc<Target>,
    timeout: Option<Duration>,
    req: LlmRequest,
) -> Result<LlmResponse, LlmError>
where
    C: Service<http::Request<Full<Bytes>>, Response = http::Response<B>>,
    C::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let provider: &dyn Provider = &*target.provider;
    let name = &target.provider_name;
    let dep = &target.deployment;
    let local = provider.respond_locally(&req, dep).or_else(|| {
        let chat = req.as_chat()?;
        let directive = chat.mock_response.as_ref()?;
        Some(super::mock::respond_chat(chat, dep, Some(directive)))
    });
    if let Some(answer) = local {
        return answer.map(|mut r| {
            stamp(&mut r, dep, name);
            r
        });
    }

    // `additional_drop_params`, and OpenAI parameters the provider cannot take (refused, or
    // dropped with `drop_params`).
    let mut req = match super::params::prepare(provider, &req, dep)? {
        std::borrow::Cow::Borrowed(_) => req,
        std::borrow::Cow::Owned(prepared) => prepared,
    };
    if let Some(token) = provider.access_token(dep) {
        let token = token.await?;
        req.extensions.insert(super::AccessToken(token));
    }
    let http_req = provider.encode(&req, dep)?.map(Full::new);
    let started = Instant::now();
    let deadline = timeout.map(|t| (tokio::time::Instant::now() + t, t));
    let send = client.call(http_req);
    let resp = match within(deadline, send).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => return Err(transport_error(e.into()).with_provider(provider.name())),
        Err(limit) => return Err(timeout_error(limit, provider)),
    };
    let ttfb = started.elapsed();
    let (parts, body) = resp.into_parts();

    if !parts.status.is_success() {
        let bytes = match within(deadline, read_body(body, MAX_ERROR_BYTES)).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) | Err(_) => Bytes::new(),
        };
        let mut err = provider.classify(parts.status, &parts.headers, &bytes, dep);
        if err.headers().is_empty() {
            *err.headers_mut() = forwardable_headers(&parts.headers);
        }
        if err.retry_after().is_none() {
            if let Some(wait) = retry_after(&parts.headers) {
                err = err.with_retry_after(wait);
            }
        }
        return Err(err);
    }

    let forwarded = forwardable_headers(&parts.headers);
    let mut out = if req.is_stream() {
        let stream = BodyDataStream::new(body)
            .map(|r| r.map_err(|e| body_error(e.into())))
            .boxed();
        if req.kind().streams_chunks() {
            LlmResponse::stream(provider.decode_stream(&req, parts, stream, dep)?)
        } else {
            LlmResponse::events(provider.decode_events(&req, parts, stream, dep)?)
        }
    } else {
        let bytes = match within(deadline, read_body(body, MAX_RESPONSE_BYTES)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(body_error(e).with_provider(provider.name())),
            Err(limit) => return Err(timeout_error(limit, provider)),
        };
        provider.decode(&req, http::Response::from_parts(parts, bytes), dep)?
    };
    out.meta.headers = forwarded;
    out.meta.time_to_first_byte = Some(ttfb);
    stamp(&mut out, dep, name);
    Ok(out)
}

/// `fut`'s output, or its time limit when `deadline` (the instant and the limit it came from)
/// passes first. Without a deadline no timer is armed.
///
/// Combinators rather than `async fn`s here: an `async fn` keeps its argument (`fut`, `body`)
/// as well as the future it is moved into (rust-lang/rust#62958), and these futures are part of
/// every call's.
fn within<F: Future>(
    deadline: Option<(tokio::time::Instant, Duration)>,
    fut: F,
) -> impl Future<Output = Result<F::Output, Duration>> {
    match deadline {
        Some((at, limit)) => {
            Either::Left(tokio::time::timeout_at(at, fut).map(move |r| r.map_err(|_| limit)))
        }
        None => Either::Right(fut.map(Ok)),
    }
}

/// The whole of `body`, at most `limit` bytes (over it: a
/// [`LengthLimitError`](http_body_util::LengthLimitError)).
fn read_body<B>(body: B, limit: usize) -> impl Future<Output = Result<Bytes, BoxError>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    Limited::new(body, limit)
        .collect()
        .map(|collected| Ok(collected?.to_bytes()))
}

fn stamp(resp: &mut LlmResponse, dep: &Arc<Deployment>, provider: &Arc<str>) {
    let meta = &mut resp.meta;
    meta.deployment_id = Some(dep.id.clone());
    meta.deployment = Some(dep.clone());
    meta.model_group = Some(dep.model_group.clone());
    meta.provider = Some(provider.clone());
    if let Some(base) = dep.public_api_base() {
        meta.api_base = Some(base);
    }
    if meta.usage.is_none() {
        if let crate::types::ResponseBody::Chat(c) = &resp.body {
            meta.usage = c.usage().cloned();
        }
    }
}

fn timeout_error(timeout: Duration, provider: &dyn Provider) -> LlmError {
    LlmError::new(
        ErrorKind::Timeout,
        format!(
            "the provider did not answer within {:.3}s",
            timeout.as_secs_f64()
        ),
    )
    .with_provider(provider.name())
}

/// Maps a transport error from the HTTP client to `ApiConnection`, with its cause chain in the message.
#[must_use]
pub fn transport_error(e: BoxError) -> LlmError {
    let mut message = String::from("could not reach the provider: ");
    message.push_str(&e.to_string());
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    LlmError::new(ErrorKind::ApiConnection, message).with_source(e)
}

fn body_error(e: BoxError) -> LlmError {
    if e.is::<http_body_util::LengthLimitError>() {
        return LlmError::new(
            ErrorKind::InternalServer,
            "the provider's response is too large",
        )
        .with_status(http::StatusCode::BAD_GATEWAY);
    }
    LlmError::new(
        ErrorKind::ApiConnection,
        format!("the provider's response was cut: {e}"),
    )
    .with_source(e)
}

/// `Retry-After` (seconds) or `retry-after-ms`, when present and sane (≤ 1 day).
#[must_use]
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let ms = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .map(|ms| ms / 1000.0);
    let secs = ms.or_else(|| {
        headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
    })?;
    (secs.is_finite() && (0.0..=86_400.0).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

const LLM_PROVIDER_X_REQUEST_ID: HeaderName = HeaderName::from_static("llm_provider-x-request-id");
const LLM_PROVIDER_REQUEST_ID: HeaderName = HeaderName::from_static("llm_provider-request-id");
const LLM_PROVIDER_OPENAI_PROCESSING_MS: HeaderName =
    HeaderName::from_static("llm_provider-openai-processing-ms");

/// Provider headers a client may use: `retry-after`, `x-ratelimit-*` as they are, and the provider's
/// request id as `llm_provider-x-request-id` (LiteLLM's naming).
#[must_use]
pub fn forwardable_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let n = name.as_str();
        if n == "retry-after" || n == "retry-after-ms" || n.starts_with("x-ratelimit-") {
            out.append(name.clone(), value.clone());
            continue;
        }
        // The common request-id headers have static prefixed names (no allocation per response).
        let prefixed = match n {
            "x-request-id" => LLM_PROVIDER_X_REQUEST_ID,
            "request-id" => LLM_PROVIDER_REQUEST_ID,
            "openai-processing-ms" => LLM_PROVIDER_OPENAI_PROCESSING_MS,
            _ => continue,
        };
        out.append(prefixed, value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn parses_retry_after() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("20"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(20)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut bad = HeaderMap::new();
        bad.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&bad), None);
    }

    /// A body sent as several frames, then as one.
    #[tokio::test]
    async fn reads_a_body_whole_in_one_or_many_frames_and_enforces_the_limit() {
        use http_body_util::StreamBody;
        let framed = |parts: &[&'static str]| {
            let frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = parts
                .iter()
                .map(|p| Ok(http_body::Frame::data(Bytes::from_static(p.as_bytes()))))
                .collect();
            StreamBody::new(futures_util::stream::iter(frames))
        };
        let one = read_body(framed(&["{\"a\":1}"]), 64).await.unwrap();
        assert_eq!(one, "{\"a\":1}");
        let many = read_body(framed(&["{\"a\"", ":", "1", "}"]), 64)
            .await
            .unwrap();
        assert_eq!(many, "{\"a\":1}");
        assert_eq!(read_body(framed(&[]), 64).await.unwrap(), "");
        let err = read_body(framed(&["0123", "4567", "89"]), 8)
            .await
            .unwrap_err();
        assert!(err.is::<http_body_util::LengthLimitError>(), "{err}");
    }

    #[test]
    fn forwards_rate_limit_headers_only() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-remaining-tokens",
            HeaderValue::from_static("0"),
        );
        h.insert("x-request-id", HeaderValue::from_static("req_1"));
        h.insert("set-cookie", HeaderValue::from_static("a=b"));
        let f = forwardable_headers(&h);
        assert_eq!(f["x-ratelimit-remaining-tokens"], "0");
        assert_eq!(f["llm_provider-x-request-id"], "req_1");
        assert!(!f.contains_key("set-cookie"));
    }

    /// An operation the provider does not implement is a 400 naming provider and operation, and
    /// nothing is sent (the client here would panic if called).
    #[tokio::test]
    async fn an_unsupported_operation_is_a_400_naming_provider_and_operation() {
        use tower::ServiceExt as _;

        use crate::types::{embeddings::EmbeddingsRequest, OperationKind};

        let provider = super::super::lookup("anthropic").unwrap();
        assert!(provider.supports(OperationKind::Chat));
        assert!(!provider.supports(OperationKind::Embeddings));
        let never = tower::service_fn(|_: http::Request<Full<Bytes>>| async {
            unreachable!("nothing may be sent");
            #[allow(unreachable_code)]
            Ok::<http::Response<Full<Bytes>>, std::convert::Infallible>(http::Response::new(
                Full::new(Bytes::new()),
            ))
        });
        let dep = Arc::new(Deployment::new("g", "anthropic/claude"));
        let err = ProviderService::new(never, provider, dep)
            .oneshot(LlmRequest::embeddings(EmbeddingsRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        assert_eq!(
            err.message(),
            "the anthropic provider does not support embeddings requests"
        );
        for name in ["openai", "azure", "mock", "ollama"] {
            let p = super::super::lookup(name).unwrap();
            assert!(p.supports(OperationKind::Embeddings), "{name}");
        }
    }
}
