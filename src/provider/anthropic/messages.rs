//! Anthropic's Messages API spoken natively: a `/v1/messages` (or `/v1/messages/count_tokens`)
//! request from a client of the same dialect is relayed, not translated.
//!
//! - The request body is the client's bytes with only the top-level `model` replaced by the
//!   deployment's model and the gateway's own controls (`fallbacks`, `num_retries`, …) cut out;
//!   Anthropic's `metadata` is kept. Thinking signatures, `cache_control`, citations, server tools
//!   and fields added later reach the provider as sent.
//! - The client's `anthropic-version` (default [`ANTHROPIC_VERSION`]) and every `anthropic-beta`
//!   value are sent on ([`AnthropicHeaders`]), with the deployment's key as `x-api-key`.
//! - The answer is the provider's bytes as they came; its facts (model, usage with cache reads and
//!   writes) are read once for the layers that count.
//! - A stream is cut into its events at the blank lines that end them, each event's bytes relayed as
//!   they came ([`RelayEvents`]); `message_start` states the input tokens (cache included),
//!   `message_delta` the output tokens, both cumulative; an upstream `error` event ends the stream
//!   with that error (written back in Anthropic's shape by the edge).

use std::{
    borrow::Cow,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{BufMut, Bytes, BytesMut};
use futures_core::Stream;
use serde::{ser::SerializeMap as _, ser::Serializer as _, Deserialize};

use super::{encode::X_API_KEY, error_from_anthropic, ANTHROPIC_VERSION};
use crate::{
    error::{ErrorKind, LlmError},
    provider::{
        openai::{resolved_head, splice_model},
        resolve::Endpoint,
        sse::{event_too_large, MAX_EVENT_BYTES},
        ByteStream, Deployment,
    },
    types::{
        chat::is_upstream_param,
        messages::{AnthropicHeaders, MessagesRequest},
        EventStream, JsonBody, LlmRequest, LlmResponse, StreamEvent, TokenUsage,
    },
    wire::WireObject,
};

/// Whether a top-level key of a Messages body goes to Anthropic: everything but the gateway's
/// controls, and Anthropic's own `metadata` (`user_id`), which shares a name with LiteLLM's.
fn keep_key(key: &[u8]) -> bool {
    key == b"metadata" || std::str::from_utf8(key).map_or(true, is_upstream_param)
}

/// Builds the upstream request of a Messages (`count_tokens`: token count) call.
pub(super) fn encode_relay(
    req: &LlmRequest,
    body: &MessagesRequest,
    count_tokens: bool,
    dep: &Deployment,
) -> Result<http::Request<Bytes>, LlmError> {
    let r = dep.resolved("anthropic");
    let messages = r.chat_endpoint(false)?;
    let counted;
    let endpoint = if count_tokens {
        let base = messages.uri().to_string();
        counted = Endpoint::parse(&format!("{}/count_tokens", base.trim_end_matches('/')))?;
        &counted
    } else {
        messages
    };
    let bytes = match req
        .raw_body()
        .and_then(|raw| splice_model(raw, &dep.model, &keep_key))
    {
        Some(b) => b,
        None => serialize_with_model(body, &dep.model)?,
    };
    let mut head = resolved_head(endpoint, &r)?;
    let headers = head.headers_mut();
    let sent = req.extensions.get::<AnthropicHeaders>();
    if !headers.contains_key("anthropic-version") {
        let version = sent
            .and_then(|h| h.version.clone())
            .unwrap_or(http::HeaderValue::from_static(ANTHROPIC_VERSION));
        headers.append(http::HeaderName::from_static("anthropic-version"), version);
    }
    if let Some(sent) = sent {
        for beta in &sent.beta {
            headers.append(
                http::HeaderName::from_static("anthropic-beta"),
                beta.clone(),
            );
        }
    }
    if !headers.contains_key(X_API_KEY) {
        r.add_credential(headers)?;
    }
    Ok(head.map(|()| bytes))
}

/// `body` serialized with `model` first and the gateway's controls left out (when the client's
/// bytes are gone: a layer changed the body).
fn serialize_with_model(body: &MessagesRequest, model: &str) -> Result<Bytes, LlmError> {
    let mut w = BytesMut::with_capacity(1024).writer();
    let mut ser = serde_json::Serializer::new(&mut w);
    let res = (|| {
        let mut map = ser.serialize_map(None)?;
        map.serialize_entry("model", model)?;
        body.serialize_fields(&mut map, &|k| k != "model" && keep_key(k.as_bytes()))?;
        map.end()
    })();
    res.map_err(|e| LlmError::internal(format!("cannot encode the upstream request: {e}")))?;
    Ok(w.into_inner().freeze())
}

/// Anthropic's `usage` object (every count optional: `message_delta` may carry only some).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct AnthropicUsage {
    /// Input tokens not read from or written to the cache.
    pub input_tokens: Option<u64>,
    /// Output tokens (thinking included).
    pub output_tokens: Option<u64>,
    /// Input tokens written to the cache.
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the cache.
    pub cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Takes every count `later` states (a stream's `message_delta` after its `message_start`).
    pub fn update(&mut self, later: &Self) {
        let take = |a: &mut Option<u64>, b: Option<u64>| {
            if b.is_some() {
                *a = b;
            }
        };
        take(&mut self.input_tokens, later.input_tokens);
        take(&mut self.output_tokens, later.output_tokens);
        take(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        take(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
    }

    /// The counts as the layers read them: `input` is every input token, cache reads and
    /// writes included.
    #[must_use]
    pub fn token_usage(&self) -> TokenUsage {
        let cache_read = self.cache_read_input_tokens.unwrap_or(0);
        let cache_write = self.cache_creation_input_tokens.unwrap_or(0);
        let input = self
            .input_tokens
            .unwrap_or(0)
            .saturating_add(cache_read)
            .saturating_add(cache_write);
        let output = self.output_tokens.unwrap_or(0);
        TokenUsage {
            input,
            output,
            cache_read,
            cache_write,
            reasoning: 0,
            total: input.saturating_add(output),
            ..TokenUsage::default()
        }
    }
}

/// What the gateway reads of a Messages answer (or of `message_start`'s `message`).
#[derive(Deserialize)]
struct MessageFacts<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

/// Decodes a complete relayed answer: the provider's bytes, with their facts.
pub(crate) fn decode_relay(body: &Bytes, count_tokens: bool) -> Result<LlmResponse, LlmError> {
    if count_tokens {
        // `{"input_tokens": n}`: nothing was generated, nothing to charge.
        return Ok(LlmResponse::json(JsonBody::new(body.clone())));
    }
    // The answer is relayed as its bytes: only `model` and `usage` are read. The members are
    // found by a structural scan (the content, however long, is skipped by its structure, as the
    // chat relay does), and only those two values are parsed.
    let invalid = |what: &str| {
        LlmError::new(
            ErrorKind::InternalServer,
            format!("the provider's Messages answer is not valid JSON: {what}"),
        )
        .with_status(http::StatusCode::BAD_GATEWAY)
    };
    let (mut model_raw, mut usage_raw) = (None, None);
    crate::types::scan::for_each_member(body, 0, |m| match (m.escaped, m.key) {
        (false, b"model") => model_raw = Some(m.value.clone()),
        (false, b"usage") => usage_raw = Some(m.value.clone()),
        _ => {}
    })
    .filter(|&end| crate::types::scan::only_ws_after(body, end))
    .ok_or_else(|| invalid("not a JSON object"))?;
    let model = match model_raw {
        Some(r) => serde_json::from_slice::<Option<Cow<'_, str>>>(&body[r])
            .map_err(|e| invalid(&e.to_string()))?
            .map(|m| Arc::<str>::from(&*m)),
        None => None,
    };
    let usage = match usage_raw {
        Some(r) => serde_json::from_slice::<Option<AnthropicUsage>>(&body[r])
            .map_err(|e| invalid(&e.to_string()))?
            .map(|u| u.token_usage()),
        None => None,
    };
    Ok(LlmResponse::json(
        JsonBody::new(body.clone())
            .with_usage(usage)
            .with_model(model),
    ))
}

/// What the gateway reads of one streamed event's `data`.
#[derive(Deserialize)]
struct EventFacts<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    message: Option<MessageFacts<'a>>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    #[serde(borrow, default)]
    delta: Option<DeltaFacts<'a>>,
    #[serde(borrow, default)]
    error: Option<ErrorFacts<'a>>,
}

#[derive(Deserialize)]
struct DeltaFacts<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ErrorFacts<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

/// An Anthropic event stream relayed event by event. See the module docs.
pub struct RelayEvents {
    body: ByteStream,
    buf: BytesMut,
    /// Bytes of `buf` already scanned for the blank line that ends an event.
    scanned: usize,
    /// Bytes of the line being scanned.
    line: usize,
    /// The previous byte was a CR.
    after_cr: bool,
    usage: AnthropicUsage,
    stopped: bool,
    done: bool,
}

impl std::fmt::Debug for RelayEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayEvents")
            .field("buffered", &self.buf.len())
            .field("usage", &self.usage)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl RelayEvents {
    /// Relays `body`.
    #[must_use]
    pub fn new(body: ByteStream) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
            scanned: 0,
            line: 0,
            after_cr: false,
            usage: AnthropicUsage::default(),
            stopped: false,
            done: false,
        }
    }

    /// As an [`EventStream`].
    #[must_use]
    pub fn boxed(self) -> EventStream {
        Box::pin(self)
    }

    /// The end of the next complete event in `buf`, if one has arrived.
    fn next_frame_end(&mut self) -> Option<usize> {
        let start = self.scanned;
        for (i, &b) in self.buf[start..].iter().enumerate() {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    if self.line == 0 {
                        self.scanned = 0;
                        return Some(start + i + 1);
                    }
                    self.line = 0;
                }
                _ => {
                    self.after_cr = false;
                    self.line += 1;
                }
            }
        }
        self.scanned = self.buf.len();
        None
    }

    /// The event a frame is, with its facts; an upstream `error` event is the error it states.
    fn event(&mut self, frame: Bytes) -> Result<StreamEvent, LlmError> {
        let data = frame_data(&frame);
        let Some(data) = data else {
            return Ok(StreamEvent::new(frame));
        };
        let Ok(facts) = serde_json::from_slice::<EventFacts<'_>>(&data) else {
            return Ok(StreamEvent::new(frame));
        };
        match &*facts.kind {
            "message_start" => {
                let message = facts.message;
                if let Some(u) = message.as_ref().and_then(|m| m.usage.as_ref()) {
                    self.usage.update(u);
                }
                let model = message.and_then(|m| m.model).map(|m| Arc::<str>::from(&*m));
                Ok(StreamEvent::new(frame)
                    .with_usage(Some(self.usage.token_usage()))
                    .with_model(model))
            }
            "message_delta" => {
                if let Some(u) = &facts.usage {
                    self.usage.update(u);
                }
                Ok(StreamEvent::new(frame).with_usage(Some(self.usage.token_usage())))
            }
            "content_block_delta" => {
                let n = facts.delta.map_or(0, |d| {
                    let len = |s: &Option<Cow<'_, str>>| s.as_ref().map_or(0, |s| s.len());
                    len(&d.text) + len(&d.partial_json) + len(&d.thinking)
                });
                Ok(StreamEvent::new(frame).with_text_bytes(n))
            }
            "message_stop" => {
                self.stopped = true;
                Ok(StreamEvent::new(frame).final_event())
            }
            "error" => {
                let e = facts.error;
                let kind = e.as_ref().and_then(|e| e.kind.as_deref());
                let message = e
                    .as_ref()
                    .and_then(|e| e.message.as_deref())
                    .unwrap_or("the provider's stream failed");
                Err(error_from_anthropic(kind, message, None))
            }
            _ => Ok(StreamEvent::new(frame)),
        }
    }
}

/// The `data:` lines of an SSE frame, joined with `\n`; `None` without any.
fn frame_data(frame: &[u8]) -> Option<Cow<'_, [u8]>> {
    let mut out: Option<Cow<'_, [u8]>> = None;
    for line in frame.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(rest) = line.strip_prefix(b"data:") else {
            continue;
        };
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        out = Some(match out {
            None => Cow::Borrowed(rest),
            Some(prev) => {
                let mut v = prev.into_owned();
                v.push(b'\n');
                v.extend_from_slice(rest);
                Cow::Owned(v)
            }
        });
    }
    out
}

impl Stream for RelayEvents {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(end) = this.next_frame_end() {
                let frame = this.buf.split_to(end).freeze();
                let ev = this.event(frame);
                if ev.is_err() {
                    this.done = true;
                }
                return Poll::Ready(Some(ev));
            }
            if this.buf.len() > MAX_EVENT_BYTES {
                this.done = true;
                return Poll::Ready(Some(Err(event_too_large(MAX_EVENT_BYTES))));
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
                    // An event the provider did not end with a blank line.
                    if this.buf.iter().any(|b| !b.is_ascii_whitespace()) {
                        let frame = this.buf.split().freeze();
                        let ev = this.event(frame);
                        if ev.is_err() || this.stopped {
                            return Poll::Ready(Some(ev));
                        }
                    }
                    if this.stopped {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(LlmError::new(
                        ErrorKind::ApiConnection,
                        "the provider's stream ended before message_stop",
                    )
                    .with_provider("anthropic"))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;

    #[test]
    fn a_relayed_answer_states_its_top_level_model_and_usage_only() {
        // A tool input holding `usage` and `model` keys must not be read as the answer's.
        let body = Bytes::from_static(
            br#"{"id":"m","content":[{"type":"tool_use","input":{"model":"x","usage":{"input_tokens":999}}}],"model":"claude-x","usage":{"input_tokens":10,"cache_read_input_tokens":100,"cache_creation_input_tokens":5,"output_tokens":7}}"#,
        );
        let resp = decode_relay(&body, false).unwrap();
        let crate::types::ResponseBody::Json(j) = &resp.body else {
            panic!("a JSON answer")
        };
        assert_eq!(j.bytes, body, "relayed byte for byte");
        assert_eq!(j.model.as_deref(), Some("claude-x"));
        let u = j.usage.unwrap();
        assert_eq!(
            (u.input, u.output, u.cache_read, u.cache_write),
            (115, 7, 100, 5)
        );
        // Not an object, trailing bytes, a malformed usage: a 502, never a panic.
        for bad in [
            &b"[1]"[..],
            b"{\"model\":\"m\"} x",
            b"{\"usage\":{\"input_tokens\":\"ten\"}}",
            b"",
        ] {
            let e = decode_relay(&Bytes::copy_from_slice(bad), false).unwrap_err();
            assert_eq!(e.status(), http::StatusCode::BAD_GATEWAY, "{e}");
        }
    }

    const STREAM: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":5,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    fn body_in(pieces: Vec<Bytes>) -> ByteStream {
        futures_util::stream::iter(pieces.into_iter().map(Ok)).boxed()
    }

    async fn relay(pieces: Vec<Bytes>) -> Vec<Result<StreamEvent, LlmError>> {
        RelayEvents::new(body_in(pieces)).collect().await
    }

    #[tokio::test]
    async fn relays_every_byte_at_any_split_with_cumulative_usage() {
        let all = STREAM.as_bytes();
        for cut in [1, 7, 50, 200, 333, all.len() - 3] {
            let pieces = vec![
                Bytes::copy_from_slice(&all[..cut]),
                Bytes::copy_from_slice(&all[cut..]),
            ];
            let events = relay(pieces).await;
            let events: Vec<StreamEvent> = events.into_iter().map(Result::unwrap).collect();
            let joined: Vec<u8> = events.iter().flat_map(|e| e.frame.to_vec()).collect();
            assert_eq!(joined, all, "cut at {cut}");
            assert_eq!(events.len(), 7);
            let start = events[0].usage.unwrap();
            assert_eq!(
                (start.input, start.cache_read, start.cache_write),
                (115, 100, 5)
            );
            assert_eq!(events[0].model.as_deref(), Some("claude-x"));
            assert_eq!(events[3].text_bytes, 5);
            let end = events[5].usage.unwrap();
            assert_eq!((end.input, end.output, end.total), (115, 7, 122));
            assert!(events[6].is_final && !events[5].is_final);
        }
    }

    #[tokio::test]
    async fn an_error_event_or_a_cut_stream_fails() {
        let err = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let events = relay(vec![Bytes::from_static(err.as_bytes())]).await;
        assert_eq!(events.len(), 1);
        let e = events.into_iter().next().unwrap().unwrap_err();
        assert!(e.message().contains("Overloaded"), "{e}");

        let cut = &STREAM[..STREAM.find("event: message_delta").unwrap()];
        let events = relay(vec![Bytes::from(cut.to_owned())]).await;
        let last = events.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.kind(), ErrorKind::ApiConnection);
    }

    #[tokio::test]
    async fn an_endless_event_is_refused() {
        let big = Bytes::from(vec![b'a'; MAX_EVENT_BYTES + 10]);
        let events = relay(vec![big]).await;
        assert!(events.last().unwrap().is_err());
    }

    #[test]
    fn the_answer_states_usage_with_the_cache() {
        let body = Bytes::from_static(br#"{"id":"m","model":"claude-x","content":[],"usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":10,"cache_creation_input_tokens":2}}"#);
        let resp = decode_relay(&body, false).unwrap();
        let u = resp.token_usage().unwrap();
        assert_eq!(
            (u.input, u.output, u.cache_read, u.cache_write),
            (15, 4, 10, 2)
        );
        assert!(decode_relay(&Bytes::from_static(b"nope"), false).is_err());
        assert!(
            decode_relay(&Bytes::from_static(br#"{"input_tokens":3}"#), true)
                .unwrap()
                .token_usage()
                .is_none()
        );
    }

    #[test]
    fn the_body_keeps_every_key_but_the_gateways() {
        let raw = br#"{"model":"grp","max_tokens":5,"metadata":{"user_id":"u"},"num_retries":2,"thinking":{"type":"enabled","budget_tokens":1024,"x":1.50}}"#;
        let out = splice_model(raw, "claude-x", &keep_key).unwrap();
        assert_eq!(
            &out[..],
            &br#"{"model":"claude-x","max_tokens":5,"metadata":{"user_id":"u"},"thinking":{"type":"enabled","budget_tokens":1024,"x":1.50}}"#[..]
        );
        let parsed: MessagesRequest = serde_json::from_slice(raw).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&serialize_with_model(&parsed, "claude-x").unwrap()).unwrap();
        assert_eq!(v["model"], "claude-x");
        assert!(v.get("num_retries").is_none() && v["metadata"]["user_id"] == "u");
    }
}
