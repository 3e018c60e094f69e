//! Anthropic's Messages API relayed to Claude on Bedrock (InvokeModel), instead of through the
//! chat translation and Converse.
//!
//! A `bedrock/anthropic.claude-*` deployment (also `bedrock/invoke/…` and the cross-region ids
//! `us.anthropic.claude-*`, `eu.…`, `apac.…`, `global.…`; not `bedrock/converse/…`, which asks for
//! Converse) is called at `{endpoint}/model/{modelId}/invoke` (a stream:
//! `/invoke-with-response-stream`), signed as every Bedrock call. The body is the client's, as
//! Bedrock's Claude takes it: `model` and `stream` removed (the URL says them), the gateway's
//! controls removed, `anthropic_version: "bedrock-2023-05-31"` set, and the client's
//! `anthropic-beta` header values as the `anthropic_beta` array.
//!
//! The answer is Anthropic's message, relayed as its bytes. A stream is AWS event-stream framing
//! whose `chunk` events carry `{"bytes": "<base64 of one Anthropic event>"}`: each is decoded and
//! re-emitted as Anthropic's SSE (`event: {type}` / `data: {json}`), then relayed as an
//! `anthropic/` stream is (usage from `message_start` and `message_delta`). An exception message
//! of the stream ends it with that error.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
    time::SystemTime,
};

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use base64::Engine as _;
use bytes::{BufMut as _, Bytes, BytesMut};
use futures_core::Stream;
use percent_encoding::utf8_percent_encode;
use serde_json::{Map, Value};

use super::{
    endpoint, error::bedrock_error, sign::sign, stream::header_str, ByteStream, Deployment, SEGMENT,
};
use crate::{
    error::{ErrorKind, LlmError},
    provider::resolve::{reached, BedrockAuth, Endpoint},
    types::{chat::is_upstream_param, messages::AnthropicHeaders, EventStream, LlmRequest},
};

/// The `anthropic_version` Bedrock's Claude models take.
pub(crate) const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// Largest event-stream frame buffered (AWS caps a message at 16 MiB).
const MAX_FRAME_BYTES: usize = 24 << 20;

/// The model id of a Claude deployment served by InvokeModel, if `dep` is one.
pub(crate) fn claude_model_id(dep: &Deployment) -> Option<&str> {
    let model = dep.model.as_ref();
    if model.starts_with("converse/") {
        return None;
    }
    let id = model.strip_prefix("invoke/").unwrap_or(model);
    let bare = match id.split_once('.') {
        Some(("us" | "eu" | "apac" | "global" | "jp" | "au", rest)) => rest,
        _ => id,
    };
    bare.starts_with("anthropic.claude").then_some(id)
}

/// The body Bedrock's Claude takes for a Messages body: see the [module docs](self).
fn invoke_body(raw: &[u8], beta: &[http::HeaderValue]) -> Result<Bytes, LlmError> {
    let mut body: Map<String, Value> = serde_json::from_slice(raw)
        .map_err(|e| LlmError::bad_request(format!("invalid Messages request: {e}")))?;
    body.retain(|k, _| k != "model" && k != "stream" && (k == "metadata" || is_upstream_param(k)));
    body.insert(
        "anthropic_version".into(),
        Value::String(BEDROCK_ANTHROPIC_VERSION.into()),
    );
    let betas: Vec<Value> = beta
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|b| Value::String(b.to_owned()))
        .collect();
    if !betas.is_empty() {
        body.insert("anthropic_beta".into(), Value::Array(betas));
    }
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .map_err(|e| LlmError::internal(format!("cannot encode the upstream request: {e}")))
}

/// The signed InvokeModel (or InvokeModelWithResponseStream) request of a Messages call.
pub(crate) fn encode(
    req: &LlmRequest,
    raw: &[u8],
    model_id: &str,
    dep: &Deployment,
) -> Result<http::Request<Bytes>, LlmError> {
    let r = dep.resolved("bedrock");
    let state = r
        .bedrock
        .as_ref()
        .ok_or_else(|| LlmError::internal("the Bedrock deployment was not resolved"))?;
    let stream = req.is_stream();
    let op = if stream {
        "invoke-with-response-stream"
    } else {
        "invoke"
    };
    let url = format!(
        "{}/model/{}/{op}",
        endpoint(dep, &state.region),
        utf8_percent_encode(model_id, SEGMENT)
    );
    let uri = Endpoint::parse(&url)?.uri().clone();
    let beta = req
        .extensions
        .get::<AnthropicHeaders>()
        .map_or(&[][..], |h| &h.beta[..]);
    let mut up = http::Request::new(invoke_body(raw, beta)?);
    *up.method_mut() = http::Method::POST;
    *up.uri_mut() = uri;
    let headers = up.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static(if stream {
            "application/vnd.amazon.eventstream"
        } else {
            "application/json"
        }),
    );
    for (name, value) in &*reached(&r.extra_headers)?.list {
        up.headers_mut().append(name.clone(), value.clone());
    }
    match reached(&state.auth)? {
        BedrockAuth::SigV4(creds) => sign(&mut up, creds, &state.region, SystemTime::now())?,
        BedrockAuth::Bearer(value) => {
            up.headers_mut()
                .insert(http::header::AUTHORIZATION, value.clone());
        }
    }
    Ok(up)
}

/// The relayed events of an InvokeModelWithResponseStream body.
pub(crate) fn events(body: ByteStream) -> EventStream {
    crate::provider::anthropic::messages::RelayEvents::new(Box::pin(InvokeSse::new(body))).boxed()
}

/// An InvokeModelWithResponseStream body as Anthropic's SSE bytes, one event per `chunk`.
struct InvokeSse {
    body: ByteStream,
    buf: BytesMut,
    frames: MessageFrameDecoder,
    out: VecDeque<Result<Bytes, LlmError>>,
    done: bool,
}

impl InvokeSse {
    fn new(body: ByteStream) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
            frames: MessageFrameDecoder::new(),
            out: VecDeque::new(),
            done: false,
        }
    }
}

fn malformed(what: impl std::fmt::Display) -> LlmError {
    LlmError::new(
        ErrorKind::InternalServer,
        format!("malformed event stream from the provider: {what}"),
    )
    .with_status(http::StatusCode::BAD_GATEWAY)
    .with_provider("bedrock")
}

/// `{"bytes": "<base64>"}` of a `chunk` event as `event: {type}\ndata: {json}\n\n`.
fn sse_of_chunk(payload: &[u8]) -> Result<Bytes, LlmError> {
    #[derive(serde::Deserialize)]
    struct Chunk<'a> {
        #[serde(borrow)]
        bytes: std::borrow::Cow<'a, str>,
    }
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    let chunk: Chunk<'_> = serde_json::from_slice(payload)
        .map_err(|e| malformed(format!("a chunk is not {{\"bytes\": …}}: {e}")))?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(chunk.bytes.as_bytes())
        .map_err(|e| malformed(format!("a chunk's bytes are not base64: {e}")))?;
    let kind: Kind<'_> = serde_json::from_slice(&data)
        .map_err(|e| malformed(format!("a chunk is not an Anthropic event: {e}")))?;
    if kind.kind.contains(['\r', '\n']) {
        return Err(malformed("an event type with a line break"));
    }
    let kind = kind.kind.into_owned();
    // One `data:` line: the JSON is re-serialized only if it spans lines.
    let data = if data.contains(&b'\n') || data.contains(&b'\r') {
        let v: Value = serde_json::from_slice(&data).map_err(|e| malformed(e.to_string()))?;
        serde_json::to_vec(&v).map_err(|e| malformed(e.to_string()))?
    } else {
        data
    };
    let mut out = BytesMut::with_capacity(data.len() + kind.len() + 16);
    out.put_slice(b"event: ");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\ndata: ");
    out.put_slice(&data);
    out.put_slice(b"\n\n");
    Ok(out.freeze())
}

impl InvokeSse {
    /// Handles one decoded message; `false` once the stream ended with an error.
    fn on_message(&mut self, message: &aws_smithy_types::event_stream::Message) -> bool {
        match header_str(message, ":message-type").unwrap_or("event") {
            "event" => {
                if header_str(message, ":event-type") == Some("chunk") {
                    let frame = sse_of_chunk(message.payload());
                    let ok = frame.is_ok();
                    self.out.push_back(frame);
                    return ok;
                }
                true
            }
            "exception" => {
                let name = header_str(message, ":exception-type");
                let text = serde_json::from_slice::<Value>(message.payload())
                    .ok()
                    .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_else(|| String::from_utf8_lossy(message.payload()).into_owned());
                self.out.push_back(Err(bedrock_error(name, &text, None)));
                false
            }
            _ => {
                let code = header_str(message, ":error-code");
                let text = header_str(message, ":error-message").unwrap_or("stream error");
                self.out.push_back(Err(bedrock_error(code, text, None)));
                false
            }
        }
    }
}

impl Stream for InvokeSse {
    type Item = Result<Bytes, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.out.pop_front() {
                return Poll::Ready(Some(item));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match this.frames.decode_frame(&mut this.buf) {
                Ok(DecodedFrame::Complete(message)) => {
                    if !this.on_message(&message) {
                        this.done = true;
                    }
                    continue;
                }
                Ok(DecodedFrame::Incomplete) => {}
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(malformed(e))));
                }
            }
            if this.buf.len() > MAX_FRAME_BYTES {
                this.done = true;
                return Poll::Ready(Some(Err(malformed("a frame is larger than 24 MiB"))));
            }
            match this.body.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(bytes))) => this.buf.extend_from_slice(&bytes),
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    // Bytes of a frame left over: the stream was cut (RelayEvents reports a
                    // stream that ended before `message_stop`).
                    if !this.buf.is_empty() {
                        return Poll::Ready(Some(Err(LlmError::new(
                            ErrorKind::ApiConnection,
                            "the provider's stream was cut in the middle of an event",
                        )
                        .with_provider("bedrock"))));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    use futures_util::StreamExt as _;

    use super::*;

    fn frame(event_type: &str, payload: &[u8]) -> Vec<u8> {
        let m = Message::new(payload.to_vec())
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            ))
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String(event_type.to_owned().into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ));
        let mut out = Vec::new();
        write_message_to(&m, &mut out).unwrap();
        out
    }

    fn chunk(event: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(event);
        frame("chunk", format!(r#"{{"bytes":"{b64}"}}"#).as_bytes())
    }

    #[test]
    fn claude_models_are_found_with_their_prefixes() {
        for (model, id) in [
            (
                "anthropic.claude-sonnet-4-5-20250929-v1:0",
                Some("anthropic.claude-sonnet-4-5-20250929-v1:0"),
            ),
            (
                "invoke/anthropic.claude-3-5-haiku-20241022-v1:0",
                Some("anthropic.claude-3-5-haiku-20241022-v1:0"),
            ),
            (
                "us.anthropic.claude-opus-4-1-20250805-v1:0",
                Some("us.anthropic.claude-opus-4-1-20250805-v1:0"),
            ),
            ("converse/anthropic.claude-3-haiku-20240307-v1:0", None),
            ("amazon.nova-pro-v1:0", None),
            ("meta.llama3-70b-instruct-v1:0", None),
        ] {
            let dep = Deployment::new("g", &format!("bedrock/{model}"));
            assert_eq!(claude_model_id(&dep), id, "{model}");
        }
    }

    #[test]
    fn the_body_loses_model_and_stream_and_gains_the_version_and_betas() {
        let raw = br#"{"model":"claude","stream":true,"max_tokens":5,"num_retries":2,"metadata":{"user_id":"u"},"messages":[{"role":"user","content":"hi"}]}"#;
        let beta = [http::HeaderValue::from_static("a-1, b-2")];
        let v: Value = serde_json::from_slice(&invoke_body(raw, &beta).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"anthropic_version": "bedrock-2023-05-31", "anthropic_beta": ["a-1", "b-2"],
                "max_tokens": 5, "metadata": {"user_id": "u"}, "messages": [{"role": "user", "content": "hi"}]})
        );
        let v: Value = serde_json::from_slice(&invoke_body(raw, &[]).unwrap()).unwrap();
        assert!(v.get("anthropic_beta").is_none());
    }

    #[tokio::test]
    async fn chunks_become_anthropic_sse_at_any_split_and_usage_is_read() {
        let mut bytes = Vec::new();
        for e in [
            r#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"claude","content":[],"usage":{"input_tokens":9,"output_tokens":1}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}"#,
            r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":9}}"#,
        ] {
            bytes.extend(chunk(e));
        }
        for split in [1, 7, 64, bytes.len()] {
            let pieces: Vec<Result<Bytes, LlmError>> = bytes
                .chunks(split)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let evs: Vec<_> = events(Box::pin(futures_util::stream::iter(pieces)))
                .collect()
                .await;
            let evs: Vec<_> = evs.into_iter().map(Result::unwrap).collect();
            let text: String = evs
                .iter()
                .map(|e| String::from_utf8_lossy(&e.frame).into_owned())
                .collect();
            assert!(
                text.starts_with("event: message_start\ndata: {\"type\":\"message_start\""),
                "{text}"
            );
            assert!(
                text.contains("event: content_block_delta\ndata: "),
                "{text}"
            );
            assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\",\"amazon-bedrock-invocationMetrics\":{\"inputTokenCount\":9}}\n\n"), "{text}");
            let usage = evs.iter().rev().find_map(|e| e.usage).unwrap();
            assert_eq!((usage.input, usage.output), (9, 4));
        }
    }

    #[tokio::test]
    async fn an_exception_ends_the_stream_with_its_error() {
        let mut bytes =
            chunk(r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":1}}}"#);
        let m = Message::new(br#"{"message":"Too many requests"}"#.to_vec())
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("exception".into()),
            ))
            .add_header(Header::new(
                ":exception-type",
                HeaderValue::String("throttlingException".into()),
            ));
        write_message_to(&m, &mut bytes).unwrap();
        let evs: Vec<_> = events(Box::pin(futures_util::stream::iter([Ok(Bytes::from(
            bytes,
        ))])))
        .collect()
        .await;
        let err = evs.into_iter().find_map(Result::err).unwrap();
        assert_eq!(err.status().as_u16(), 429, "{err}");
    }
}
