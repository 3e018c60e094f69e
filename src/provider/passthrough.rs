//! The provider level of a pass-through call (see [`crate::passthrough`]): the upstream request
//! built by the family's encoder (`{family}/passthrough.rs`), sent once, and its answer relayed —
//! status and headers through the request's [`RelayHead`], the body as an
//! [`EventStream`](crate::types::EventStream) of the upstream's own byte chunks, each stating the
//! usage read from the answer so far ([`UsageScanner`]), so that the counting layers (cost and
//! spend, tpm, budgets, router usage) count it as they count any stream.
//!
//! An upstream error status is relayed as it is, not turned into the gateway's error: the client
//! of a pass-through route speaks the provider's API and reads its errors.

use std::{
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_core::Stream;
use http::header::CONTENT_TYPE;
use http_body::Body;
use http_body_util::{BodyDataStream, BodyExt as _, Full};
use tower_service::Service;

use super::{resolve::reached, transport_error, AccessToken, Deployment, Provider};
use crate::{
    error::{BoxError, ErrorKind, LlmError},
    passthrough::usage::{Shape, UsageScanner},
    types::{
        passthrough::{
            relayed_headers, Family, PassThroughRequest, RelayHead, RelayedHead, Upload,
        },
        LlmRequest, LlmResponse, Operation, StreamEvent,
    },
    upstream::StreamedBody,
};

/// Adds the deployment's `extra_headers` and its credential header (as resolved for `family`) to
/// an upstream pass-through request.
pub(crate) fn with_credentials(
    up: &mut http::Request<Bytes>,
    dep: &Deployment,
    family: &str,
) -> Result<(), LlmError> {
    let r = dep.resolved(family);
    let extra = reached(&r.extra_headers)?;
    let headers = up.headers_mut();
    for (name, value) in &*extra.list {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(c) = &r.credential {
        let (name, value) = reached(c)?;
        headers.insert(name.clone(), value.clone());
    }
    Ok(())
}

/// The upstream request of a pass-through call to `dep` (a deployment of `provider`).
fn encode(
    req: &PassThroughRequest,
    provider: &str,
    dep: &Deployment,
    token: Option<&crate::secret::Secret>,
) -> Result<http::Request<Bytes>, LlmError> {
    match req.family {
        Family::Anthropic => super::anthropic::passthrough::encode(req, dep),
        Family::OpenAi => super::openai::passthrough::encode(req, dep),
        Family::Azure => super::azure::passthrough::encode(req, dep),
        Family::Gemini => super::gemini::passthrough::encode_gemini(req, dep),
        Family::VertexAi => super::gemini::passthrough::encode_vertex(req, dep, token),
        Family::Bedrock => super::bedrock::passthrough::encode(req, dep),
        Family::Ollama => super::ollama::passthrough::encode(req, dep, provider),
    }
}

/// The upstream request of a pass-through whose body streams (`upload`): its bytes ride as a
/// [`StreamedBody`] beside an empty `Full` body, so the client's frames go to the provider as they
/// arrive. Bedrock signs the payload's SHA-256 (SigV4 for `bedrock-runtime` takes no
/// `UNSIGNED-PAYLOAD`), so there the body is collected first, under the same limit.
async fn streamed(
    pt: &PassThroughRequest,
    upload: &Upload,
    provider: &str,
    dep: &Deployment,
    token: Option<&crate::secret::Secret>,
) -> Result<http::Request<Full<Bytes>>, LlmError> {
    let body = upload
        .take_body(pt.body.clone())
        .ok_or_else(|| LlmError::internal("the streamed request body was already sent"))?;
    if pt.family == Family::Bedrock {
        let bytes = body
            .collect()
            .await
            .map_err(|e| {
                if upload.exceeded() {
                    too_large()
                } else {
                    LlmError::bad_request(format!("Could not read the request body: {e}"))
                }
            })?
            .to_bytes();
        let mut whole = pt.clone();
        whole.body = bytes;
        whole.upload = None;
        return Ok(encode(&whole, provider, dep, token)?.map(Full::new));
    }
    // The head is encoded with no body (the stream carries it all): credentials and URL as for
    // any call.
    let mut bare = pt.clone();
    bare.body = Bytes::new();
    bare.upload = None;
    let up = encode(&bare, provider, dep, token)?;
    let (mut parts, _) = up.into_parts();
    parts.extensions.insert(StreamedBody::new(body));
    Ok(http::Request::from_parts(parts, Full::new(Bytes::new())))
}

/// The error of a body larger than the limit (413, as the edge answers it).
fn too_large() -> LlmError {
    LlmError::new(
        ErrorKind::BadRequest,
        "Request body is larger than the limit of the gateway",
    )
    .with_status(http::StatusCode::PAYLOAD_TOO_LARGE)
    .with_code("request_too_large")
}

/// One pass-through call: `req` (an [`Operation::PassThrough`]) to `dep` through `client`.
/// `timeout` bounds the wait for the upstream's response head.
pub(crate) async fn call<C, B>(
    mut client: C,
    provider: &dyn Provider,
    provider_name: &Arc<str>,
    dep: &Arc<Deployment>,
    timeout: Option<Duration>,
    req: LlmRequest,
) -> Result<LlmResponse, LlmError>
where
    C: Service<http::Request<Full<Bytes>>, Response = http::Response<B>>,
    C::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let Operation::PassThrough(pt) = &req.op else {
        return Err(LlmError::internal("not a pass-through request"));
    };
    if !pt.family.serves(provider.name()) {
        return Err(LlmError::new(
            ErrorKind::BadRequest,
            format!(
                "the /{} pass-through route uses model group {:?}, whose deployment {} is a {} deployment",
                pt.family,
                pt.group,
                dep.id,
                provider.name()
            ),
        )
        .with_code("pass_through_misconfigured"));
    }
    let token = match provider.access_token(dep) {
        Some(fut) => Some(fut.await?),
        None => req.extensions.get::<AccessToken>().map(|t| t.0.clone()),
    };
    let up = match &pt.upload {
        None => encode(pt, provider.name(), dep, token.as_ref())?.map(Full::new),
        Some(upload) => streamed(pt, upload, provider.name(), dep, token.as_ref()).await?,
    };
    let started = Instant::now();
    let send = client.call(up);
    let sent = match timeout {
        Some(t) => tokio::time::timeout(t, send).await.map_err(|_| {
            LlmError::new(
                ErrorKind::Timeout,
                format!("the provider did not answer within {:.3}s", t.as_secs_f64()),
            )
            .with_provider(provider.name())
        })?,
        None => send.await,
    };
    let resp = sent.map_err(|e| match &pt.upload {
        Some(upload) if upload.exceeded() => too_large(),
        _ => transport_error(e.into()).with_provider(provider.name()),
    })?;
    let ttfb = started.elapsed();
    let (parts, body) = resp.into_parts();
    let shape = Shape::of(
        parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    // Usage is read from successful answers only: an error states none worth charging.
    let shape = if parts.status.is_success() {
        shape
    } else {
        Shape::Opaque
    };
    if let Some(slot) = req.extensions.get::<RelayHead>() {
        slot.set(RelayedHead {
            status: parts.status,
            headers: relayed_headers(&parts.headers),
        });
    }
    let stream = Relay {
        body: BodyDataStream::new(body),
        scanner: UsageScanner::new(shape),
        done: false,
    };
    let mut out = LlmResponse::events(Box::pin(stream));
    out.meta.time_to_first_byte = Some(ttfb);
    out.meta.deployment_id = Some(dep.id.clone());
    out.meta.deployment = Some(dep.clone());
    out.meta.model_group = Some(dep.model_group.clone());
    out.meta.provider = Some(provider_name.clone());
    if let Some(base) = dep.public_api_base() {
        out.meta.api_base = Some(base);
    }
    Ok(out)
}

pin_project_lite::pin_project! {
    /// The upstream's body as events: each byte chunk as it came, with the usage read so far.
    struct Relay<B> {
        #[pin]
        body: BodyDataStream<B>,
        scanner: UsageScanner,
        done: bool,
    }
}

impl<B> Stream for Relay<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match ready!(this.body.poll_next(cx)) {
            Some(Ok(bytes)) => {
                let usage = this.scanner.feed(&bytes);
                let model = this.scanner.take_model();
                Poll::Ready(Some(Ok(StreamEvent::new(bytes)
                    .with_usage(usage)
                    .with_model(model))))
            }
            Some(Err(e)) => {
                *this.done = true;
                let e: BoxError = e.into();
                Poll::Ready(Some(Err(LlmError::new(
                    ErrorKind::ApiConnection,
                    format!("the provider's response was cut: {e}"),
                )
                .with_source(e))))
            }
            None => {
                *this.done = true;
                // A complete document states its usage at its end: an empty event carries it.
                let usage = this.scanner.finish();
                let model = this.scanner.take_model();
                Poll::Ready(usage.map(|u| {
                    Ok(StreamEvent::new(Bytes::new())
                        .with_usage(Some(u))
                        .with_model(model)
                        .final_event())
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;
    use http_body_util::StreamBody;

    use super::*;

    #[tokio::test]
    async fn relays_chunks_as_they_come_and_states_usage_at_the_end() {
        let chunks: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = [
            &br#"{"type":"message","#[..],
            br#""usage":{"input_tokens":2,"output_tokens":3}}"#,
        ]
        .iter()
        .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
        .collect();
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        let relay = Relay {
            body: BodyDataStream::new(body),
            scanner: UsageScanner::new(Shape::Document),
            done: false,
        };
        let events: Vec<_> = relay.collect().await;
        assert_eq!(events.len(), 3);
        let frames: Vec<u8> = events
            .iter()
            .flat_map(|e| e.as_ref().unwrap().frame.to_vec())
            .collect();
        assert_eq!(
            frames,
            br#"{"type":"message","usage":{"input_tokens":2,"output_tokens":3}}"#
        );
        let last = events[2].as_ref().unwrap();
        assert!(last.frame.is_empty() && last.is_final);
        assert!(last.model.is_none(), "the answer names no model");
        assert_eq!(last.usage.unwrap().total, 5);
    }
}
