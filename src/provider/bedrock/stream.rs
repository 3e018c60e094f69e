//! ConverseStream: the AWS event-stream body, decoded incrementally into chat chunks.
//!
//! [`EventStreamDecoder`] frames the byte stream with `aws-smithy-eventstream` (prelude and message
//! CRCs checked; a frame may be split across any number of body chunks) and hands each message to
//! an [`EventMapper`]. [`ConverseStreamMapper`] turns Converse events into OpenAI chunks:
//!
//! | event | chunk |
//! | --- | --- |
//! | `messageStart` | nothing; the role goes on the first chunk |
//! | `contentBlockDelta` `{text}` | `delta.content` |
//! | `contentBlockDelta` `{reasoningContent: {text}}` | `delta.reasoning_content` |
//! | `contentBlockStart` `{toolUse: {toolUseId, name}}` | a tool call: `index`, `id`, `name`, `arguments: ""` |
//! | `contentBlockDelta` `{toolUse: {input}}` | an argument fragment of that call |
//! | `messageStop` `{stopReason}` | empty delta with `finish_reason` |
//! | `metadata` `{usage}` | with `stream_options.include_usage`: `choices: []` and `usage` |
//! | `:message-type: exception` (`throttlingException`, …) | an error, classified like HTTP errors |
//!
//! OpenAI's tool-call `index` counts tool calls, not Bedrock's `contentBlockIndex`.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::BytesMut;
use futures_core::Stream;
use pin_project_lite::pin_project;
use serde::Deserialize;

use super::{
    decode::{completion_id, finish_reason, usage, BedrockUsage, ReasoningContent},
    error::bedrock_error,
};
use crate::{
    error::{ErrorKind, LlmError},
    provider::{chunk::ChunkHead, ByteStream},
    types::{
        chat::{Delta, FunctionCall, ToolCall},
        ChunkBody,
    },
};

/// Largest event-stream frame buffered: 24 MiB (AWS caps a message at 16 MiB).
const MAX_FRAME_BYTES: usize = 24 << 20;

/// Turns event-stream messages into chat chunks, keeping whatever state the translation needs.
pub trait EventMapper: Send + 'static {
    /// Handles one message: pushes the chunks it produces into `out`; returns `Ok(true)` once the
    /// stream is complete.
    fn on_message(
        &mut self,
        message: &Message,
        out: &mut VecDeque<ChunkBody>,
    ) -> Result<bool, LlmError>;

    /// Called once when the body ends after whole frames; may flush chunks or report a cut stream.
    fn on_end(&mut self, _out: &mut VecDeque<ChunkBody>) -> Result<(), LlmError> {
        Ok(())
    }
}

pin_project! {
    /// Chat chunks decoded from an AWS event-stream body. See the [module docs](self).
    #[must_use = "streams do nothing unless polled"]
    pub struct EventStreamDecoder<M> {
        #[pin]
        body: ByteStream,
        buf: BytesMut,
        frames: MessageFrameDecoder,
        // A frame has been started (its prelude may already be consumed from `buf`).
        in_frame: bool,
        mapper: M,
        pending: VecDeque<ChunkBody>,
        finished: bool,
    }
}

impl<M> std::fmt::Debug for EventStreamDecoder<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStreamDecoder")
            .field("buffered", &self.buf.len())
            .field("pending", &self.pending.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<M: EventMapper> EventStreamDecoder<M> {
    /// Decodes `body` with `mapper`.
    pub fn new(body: ByteStream, mapper: M) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
            frames: MessageFrameDecoder::new(),
            in_frame: false,
            mapper,
            pending: VecDeque::new(),
            finished: false,
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

impl<M: EventMapper> Stream for EventStreamDecoder<M> {
    type Item = Result<ChunkBody, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(chunk) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(chunk)));
            }
            if *this.finished {
                return Poll::Ready(None);
            }
            // Every whole frame already buffered, before reading more.
            let before = this.buf.len();
            match this.frames.decode_frame(&mut *this.buf) {
                Ok(DecodedFrame::Complete(message)) => {
                    *this.in_frame = false;
                    match this.mapper.on_message(&message, this.pending) {
                        Ok(done) => *this.finished = done,
                        Err(e) => {
                            *this.finished = true;
                            this.pending.clear();
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                    continue;
                }
                Ok(DecodedFrame::Incomplete) => {
                    *this.in_frame |= this.buf.len() < before || !this.buf.is_empty();
                }
                Err(e) => {
                    *this.finished = true;
                    return Poll::Ready(Some(Err(malformed(e))));
                }
            }
            if this.buf.len() > MAX_FRAME_BYTES {
                *this.finished = true;
                return Poll::Ready(Some(Err(malformed("a frame is larger than 24 MiB"))));
            }
            match this.body.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(bytes))) => this.buf.extend_from_slice(&bytes),
                Poll::Ready(Some(Err(e))) => {
                    *this.finished = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    *this.finished = true;
                    if *this.in_frame || !this.buf.is_empty() {
                        return Poll::Ready(Some(Err(LlmError::new(
                            ErrorKind::ApiConnection,
                            "the provider's stream was cut in the middle of an event",
                        )
                        .with_provider("bedrock"))));
                    }
                    if let Err(e) = this.mapper.on_end(this.pending) {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
        }
    }
}

/// A string header of an event-stream message.
#[must_use]
pub fn header_str<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}

#[derive(Deserialize)]
struct EventPayload {
    #[serde(rename = "contentBlockIndex", default)]
    content_block_index: Option<u64>,
    #[serde(default)]
    start: Option<BlockStart>,
    #[serde(default)]
    delta: Option<BlockDelta>,
    #[serde(rename = "stopReason", default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<BedrockUsage>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct BlockStart {
    #[serde(rename = "toolUse", default)]
    tool_use: Option<ToolUseStart>,
}

#[derive(Deserialize)]
struct ToolUseStart {
    #[serde(rename = "toolUseId")]
    tool_use_id: String,
    name: String,
}

#[derive(Deserialize)]
struct BlockDelta {
    #[serde(default)]
    text: Option<String>,
    #[serde(rename = "toolUse", default)]
    tool_use: Option<ToolUseDelta>,
    #[serde(rename = "reasoningContent", default)]
    reasoning_content: Option<ReasoningContent>,
}

#[derive(Deserialize)]
struct ToolUseDelta {
    #[serde(default)]
    input: String,
}

/// Maps ConverseStream events to OpenAI chunks. See the [module docs](self).
#[derive(Debug)]
pub struct ConverseStreamMapper {
    head: ChunkHead,
    stopped: bool,
    /// `(contentBlockIndex, tool-call index)` of the tool calls begun so far.
    tool_blocks: Vec<(u64, u32)>,
}

impl ConverseStreamMapper {
    /// A mapper answering as `model`; `include_usage` adds the final usage chunk.
    #[must_use]
    pub fn new(model: impl Into<String>, include_usage: bool) -> Self {
        Self {
            head: ChunkHead::new(Some(completion_id()), model.into(), include_usage),
            stopped: false,
            tool_blocks: Vec::new(),
        }
    }

    fn tool_index(&self, block: Option<u64>) -> Option<u32> {
        let block = block?;
        self.tool_blocks
            .iter()
            .find(|(b, _)| *b == block)
            .map(|(_, i)| *i)
    }

    fn on_event(
        &mut self,
        event_type: &str,
        payload: EventPayload,
        out: &mut VecDeque<ChunkBody>,
    ) -> Result<(), LlmError> {
        match event_type {
            "contentBlockStart" => {
                if let Some(tu) = payload.start.and_then(|s| s.tool_use) {
                    let index = self.tool_blocks.len() as u32;
                    self.tool_blocks
                        .push((payload.content_block_index.unwrap_or(u64::MAX), index));
                    let call = ToolCall {
                        index: Some(index),
                        id: Some(tu.tool_use_id),
                        kind_name: Some("function".into()),
                        function: Some(FunctionCall {
                            name: Some(tu.name),
                            arguments: Some(String::new()),
                            ..FunctionCall::default()
                        }),
                        ..ToolCall::default()
                    };
                    let c = self.head.delta(
                        Delta {
                            tool_calls: Some(vec![call]),
                            ..Delta::default()
                        },
                        None,
                    );
                    out.push_back(c.into());
                }
            }
            "contentBlockDelta" => {
                let Some(delta) = payload.delta else {
                    return Ok(());
                };
                if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                    let c = self.head.delta(
                        Delta {
                            content: Some(text),
                            ..Delta::default()
                        },
                        None,
                    );
                    out.push_back(c.into());
                }
                if let Some(text) = delta
                    .reasoning_content
                    .and_then(|r| r.text)
                    .filter(|t| !t.is_empty())
                {
                    let c = self.head.delta(
                        Delta {
                            reasoning_content: Some(text),
                            ..Delta::default()
                        },
                        None,
                    );
                    out.push_back(c.into());
                }
                if let Some(tu) = delta.tool_use.filter(|t| !t.input.is_empty()) {
                    let index = self
                        .tool_index(payload.content_block_index)
                        .ok_or_else(|| malformed("a toolUse delta for a block never started"))?;
                    let call = ToolCall {
                        index: Some(index),
                        function: Some(FunctionCall {
                            arguments: Some(tu.input),
                            ..FunctionCall::default()
                        }),
                        ..ToolCall::default()
                    };
                    let c = self.head.delta(
                        Delta {
                            tool_calls: Some(vec![call]),
                            ..Delta::default()
                        },
                        None,
                    );
                    out.push_back(c.into());
                }
            }
            "messageStop" => {
                self.stopped = true;
                let reason = finish_reason(payload.stop_reason.as_deref().unwrap_or("end_turn"));
                let c = self.head.delta(Delta::default(), Some(reason));
                out.push_back(c.into());
            }
            "metadata" if self.head.include_usage() => {
                if let Some(u) = payload.usage.as_ref() {
                    let mut c = self.head.chunk(Vec::new());
                    c.usage = Some(usage(u));
                    out.push_back(c.into());
                }
            }
            // messageStart, contentBlockStop, metadata without include_usage, and later events.
            _ => {}
        }
        Ok(())
    }
}

impl EventMapper for ConverseStreamMapper {
    fn on_message(
        &mut self,
        message: &Message,
        out: &mut VecDeque<ChunkBody>,
    ) -> Result<bool, LlmError> {
        let payload = || -> Result<EventPayload, LlmError> {
            serde_json::from_slice(message.payload())
                .map_err(|e| malformed(format!("an event payload is not the JSON expected: {e}")))
        };
        match header_str(message, ":message-type").unwrap_or("event") {
            "event" => {
                let event_type = header_str(message, ":event-type").unwrap_or_default();
                self.on_event(event_type, payload()?, out)?;
                Ok(false)
            }
            "exception" => {
                let name = header_str(message, ":exception-type");
                let text = payload()
                    .ok()
                    .and_then(|p| p.message)
                    .unwrap_or_else(|| String::from_utf8_lossy(message.payload()).into_owned());
                Err(bedrock_error(name, &text, None))
            }
            _ => {
                let code = header_str(message, ":error-code");
                let text = header_str(message, ":error-message").unwrap_or("stream error");
                Err(bedrock_error(code, text, None))
            }
        }
    }

    fn on_end(&mut self, _out: &mut VecDeque<ChunkBody>) -> Result<(), LlmError> {
        if self.stopped {
            Ok(())
        } else {
            Err(LlmError::new(
                ErrorKind::ApiConnection,
                "the provider's stream ended before messageStop",
            )
            .with_provider("bedrock"))
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::Header;
    use bytes::Bytes;
    use futures_util::StreamExt as _;

    use super::*;

    fn frame(event_type: &str, payload: &str) -> Vec<u8> {
        let msg = Message::new(Bytes::from(payload.to_owned()))
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
        write_message_to(&msg, &mut out).unwrap();
        out
    }

    fn body(pieces: Vec<Vec<u8>>) -> ByteStream {
        Box::pin(futures_util::stream::iter(
            pieces.into_iter().map(|p| Ok(Bytes::from(p))),
        ))
    }

    async fn collect(pieces: Vec<Vec<u8>>) -> Vec<Result<ChunkBody, LlmError>> {
        EventStreamDecoder::new(body(pieces), ConverseStreamMapper::new("g", true))
            .collect()
            .await
    }

    fn sample() -> Vec<u8> {
        [
            frame("messageStart", r#"{"role":"assistant"}"#),
            frame(
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
            ),
            frame("messageStop", r#"{"stopReason":"end_turn"}"#),
            frame(
                "metadata",
                r#"{"usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3}}"#,
            ),
        ]
        .concat()
    }

    #[tokio::test]
    async fn decodes_at_every_byte_split() {
        let all = sample();
        let whole = collect(vec![all.clone()]).await;
        assert_eq!(whole.len(), 3);
        assert!(whole.iter().all(Result::is_ok));
        // One byte at a time.
        let bytes = collect(all.iter().map(|b| vec![*b]).collect()).await;
        assert_eq!(bytes.len(), 3);
        for cut in 1..all.len() {
            let got = collect(vec![all[..cut].to_vec(), all[cut..].to_vec()]).await;
            assert_eq!(got.len(), 3, "split at {cut}");
            assert!(got.iter().all(Result::is_ok), "split at {cut}");
        }
    }

    /// The chunks as JSON without the per-stream `id` and `created`.
    fn normalized(chunks: Vec<Result<ChunkBody, LlmError>>) -> Vec<serde_json::Value> {
        chunks
            .into_iter()
            .map(|c| {
                let mut v = match c {
                    Ok(c) => serde_json::to_value(&c).unwrap(),
                    Err(e) => serde_json::json!({"error": e.to_string()}),
                };
                if let Some(m) = v.as_object_mut() {
                    m.remove("id");
                    m.remove("created");
                }
                v
            })
            .collect()
    }

    fn collect_now(pieces: Vec<Vec<u8>>) -> Vec<Result<ChunkBody, LlmError>> {
        use futures_util::FutureExt as _;
        collect(pieces)
            .now_or_never()
            .expect("an in-memory body is always ready")
    }

    proptest::proptest! {
        #[test]
        fn any_split_yields_the_same_chunks(
            cuts in proptest::collection::vec(0usize..10_000, 0..24)
        ) {
            let all = [
                sample(),
                frame("contentBlockStart", r#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"t","name":"f"}}}"#),
                frame("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"a\":"}}}"#),
            ]
            .concat();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % all.len()).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut pieces = Vec::new();
            let mut start = 0;
            for c in cuts {
                pieces.push(all[start..c].to_vec());
                start = c;
            }
            pieces.push(all[start..].to_vec());
            let whole = normalized(collect_now(vec![all]));
            let split = normalized(collect_now(pieces));
            proptest::prop_assert_eq!(whole, split);
        }
    }

    #[tokio::test]
    async fn reports_a_cut_stream() {
        let all = sample();
        let got = collect(vec![all[..all.len() - 5].to_vec()]).await;
        let err = got.last().unwrap().as_ref().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ApiConnection);
    }

    #[tokio::test]
    async fn reports_a_bad_checksum() {
        let mut all = sample();
        let n = all.len();
        all[n - 1] ^= 0xff;
        let got = collect(vec![all]).await;
        assert!(got.last().unwrap().is_err());
    }
}
