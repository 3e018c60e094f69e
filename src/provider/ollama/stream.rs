//! Ollama's NDJSON stream (one JSON object per line) decoded incrementally into chat chunks.
//!
//! [`NdjsonStream`] keeps a line buffer over the byte stream, so a line split across any number of
//! byte chunks (or several lines in one chunk) is handled; each complete line goes to a
//! [`LineMapper`]. A line longer than [`MAX_EVENT_BYTES`] ends the stream with an error. [`OllamaStreamMapper`] turns Ollama's lines into OpenAI chunks: the role on the
//! first chunk, one chunk per content / thinking / tool-call line, a finish chunk with an empty delta
//! on the `done` line, and, with `stream_options.include_usage`, a final usage chunk.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::BytesMut;
use futures_core::Stream;
use pin_project_lite::pin_project;

use super::decode::{completion_id, finish_reason, OllamaAnswer};
use crate::{
    error::{ErrorKind, LlmError},
    provider::{
        chunk::ChunkHead,
        sse::{event_too_large, MAX_EVENT_BYTES},
        ByteStream,
    },
    types::{chat::Delta, ChunkBody},
};

/// Turns a provider's lines into chat chunks, keeping whatever state the translation needs.
pub trait LineMapper: Send + 'static {
    /// Handles one non-empty line (without its line ending): pushes the chunks it produces into
    /// `out`; returns `Ok(true)` once the provider has said the stream is complete.
    fn on_line(&mut self, line: &[u8], out: &mut VecDeque<ChunkBody>) -> Result<bool, LlmError>;

    /// Called once when the byte stream ends before the mapper said it was complete.
    fn on_end(&mut self, _out: &mut VecDeque<ChunkBody>) -> Result<(), LlmError> {
        Ok(())
    }
}

pin_project! {
    /// Chat chunks decoded from a newline-delimited JSON body. See the [module docs](self).
    #[must_use = "streams do nothing unless polled"]
    pub struct NdjsonStream<M> {
        #[pin]
        body: ByteStream,
        buf: BytesMut,
        // Bytes of `buf` already known to hold no newline.
        scanned: usize,
        mapper: M,
        pending: VecDeque<ChunkBody>,
        body_done: bool,
        finished: bool,
    }
}

impl<M> std::fmt::Debug for NdjsonStream<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonStream")
            .field("buffered", &self.buf.len())
            .field("pending", &self.pending.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<M: LineMapper> NdjsonStream<M> {
    /// Decodes `body` with `mapper`.
    pub fn new(body: ByteStream, mapper: M) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
            scanned: 0,
            mapper,
            pending: VecDeque::new(),
            body_done: false,
            finished: false,
        }
    }
}

fn trim(line: &[u8]) -> &[u8] {
    line.trim_ascii()
}

impl<M: LineMapper> Stream for NdjsonStream<M> {
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
            // A complete line in the buffer, or the last unterminated one once the body ended.
            let newline = this.buf[*this.scanned..]
                .iter()
                .position(|b| *b == b'\n')
                .map(|p| *this.scanned + p);
            let line = match newline {
                Some(end) => {
                    *this.scanned = 0;
                    Some(this.buf.split_to(end + 1))
                }
                None if *this.body_done => {
                    if this.buf.is_empty() {
                        None
                    } else {
                        *this.scanned = 0;
                        Some(this.buf.split())
                    }
                }
                None => {
                    if this.buf.len() > MAX_EVENT_BYTES {
                        // One line over the limit: end here rather than buffer it whole.
                        *this.finished = true;
                        this.buf.clear();
                        return Poll::Ready(Some(Err(event_too_large(MAX_EVENT_BYTES))));
                    }
                    *this.scanned = this.buf.len();
                    None
                }
            };
            if let Some(line) = line {
                let line = trim(&line);
                if line.is_empty() {
                    continue;
                }
                match this.mapper.on_line(line, this.pending) {
                    Ok(done) => *this.finished = done,
                    Err(e) => {
                        *this.finished = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                continue;
            }
            if *this.body_done {
                *this.finished = true;
                if let Err(e) = this.mapper.on_end(this.pending) {
                    return Poll::Ready(Some(Err(e)));
                }
                continue;
            }
            match this.body.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(bytes))) => this.buf.extend_from_slice(&bytes),
                Poll::Ready(Some(Err(e))) => {
                    *this.finished = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => *this.body_done = true,
            }
        }
    }
}

/// Maps Ollama's `/api/chat` and `/api/generate` stream lines to OpenAI chunks.
#[derive(Debug)]
pub struct OllamaStreamMapper {
    provider: &'static str,
    head: ChunkHead,
    tool_calls: u32,
}

impl OllamaStreamMapper {
    /// A mapper whose chunks name `model` (the client's model group); `include_usage` adds the
    /// final usage chunk.
    #[must_use]
    pub fn new(provider: &'static str, model: &str, include_usage: bool) -> Self {
        Self {
            provider,
            head: ChunkHead::new(Some(completion_id()), model.to_owned(), include_usage),
            tool_calls: 0,
        }
    }
}

impl LineMapper for OllamaStreamMapper {
    fn on_line(&mut self, line: &[u8], out: &mut VecDeque<ChunkBody>) -> Result<bool, LlmError> {
        let answer: OllamaAnswer = serde_json::from_slice(line).map_err(|e| {
            LlmError::new(
                ErrorKind::InternalServer,
                format!("the provider sent an invalid stream line: {e}"),
            )
            .with_provider(self.provider)
        })?;
        if let Some(message) = answer.error {
            return Err(
                LlmError::new(ErrorKind::InternalServer, message).with_provider(self.provider)
            );
        }
        let text = answer.text();
        let thinking = answer.thinking();
        let calls = answer.tool_calls(Some(self.tool_calls));
        if !text.is_empty()
            || !thinking.is_empty()
            || !calls.is_empty()
            || (!self.head.role_sent() && !answer.done)
        {
            self.tool_calls += calls.len() as u32;
            let delta = Delta {
                content: (!text.is_empty() || (calls.is_empty() && thinking.is_empty()))
                    .then(|| text.to_owned()),
                reasoning_content: (!thinking.is_empty()).then(|| thinking.to_owned()),
                tool_calls: (!calls.is_empty()).then_some(calls),
                ..Delta::default()
            };
            out.push_back(self.head.delta(delta, None).into());
        }
        if !answer.done {
            return Ok(false);
        }
        let finish = finish_reason(answer.done_reason.as_deref(), self.tool_calls > 0);
        out.push_back(self.head.delta(Delta::default(), Some(finish)).into());
        if self.head.include_usage() {
            let mut usage = self.head.chunk(Vec::new());
            usage.usage = Some(answer.usage());
            out.push_back(usage.into());
        }
        Ok(true)
    }

    fn on_end(&mut self, _out: &mut VecDeque<ChunkBody>) -> Result<(), LlmError> {
        Err(LlmError::new(
            ErrorKind::ApiConnection,
            "the provider's stream ended before its final (done) line",
        )
        .with_provider(self.provider))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::StreamExt as _;
    use proptest::prelude::*;

    use super::*;

    const NDJSON: &str = concat!(
        r#"{"model":"m","message":{"role":"assistant","content":"Hel"},"done":false}"#,
        "\n",
        r#"{"model":"m","message":{"role":"assistant","content":"lo ✓"},"done":false}"#,
        "\r\n\n",
        r#"{"model":"m","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},"done":false}"#,
        "\n",
        r#"{"model":"m","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"prompt_eval_count":5,"eval_count":3}"#,
        "\n"
    );

    fn run(pieces: Vec<Bytes>, include_usage: bool) -> Vec<Result<serde_json::Value, String>> {
        let body: ByteStream = Box::pin(futures_util::stream::iter(pieces.into_iter().map(Ok)));
        let stream = NdjsonStream::new(
            body,
            OllamaStreamMapper::new("ollama_chat", "grp", include_usage),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let items: Vec<_> = rt.block_on(stream.collect());
        items
            .into_iter()
            .map(|r| {
                r.map(|c| {
                    let mut v = serde_json::to_value(&c).unwrap();
                    let m = v.as_object_mut().unwrap();
                    m.remove("id");
                    m.remove("created");
                    // Tool-call ids are random.
                    if let Some(calls) = v.pointer_mut("/choices/0/delta/tool_calls/0") {
                        calls.as_object_mut().unwrap().remove("id");
                    }
                    v
                })
                .map_err(|e| e.to_string())
            })
            .collect()
    }

    #[test]
    fn a_line_over_the_event_limit_ends_the_stream() {
        // One line of 17 MiB with no newline, in 1 MiB pieces: an error once 16 MiB are held.
        let first = Bytes::from_static(NDJSON.lines().next().unwrap().as_bytes());
        let mut pieces = vec![first, Bytes::from_static(b"\n")];
        pieces.extend((0..17).map(|_| Bytes::from(vec![b'x'; 1 << 20])));
        let got = run(pieces, false);
        assert!(got[0].is_ok(), "{:?}", got[0]);
        let last = got.last().unwrap().as_ref().unwrap_err();
        assert!(last.contains("larger than 16 MiB"), "{last}");
        assert_eq!(got.len(), 2, "one chunk, then the error");
    }

    #[test]
    fn maps_lines_to_chunks() {
        let got = run(vec![Bytes::from_static(NDJSON.as_bytes())], true);
        let got: Vec<_> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(
            got[0]["choices"][0]["delta"],
            serde_json::json!({"role":"assistant","content":"Hel"})
        );
        assert_eq!(
            got[1]["choices"][0]["delta"],
            serde_json::json!({"content":"lo ✓"})
        );
        assert_eq!(
            got[2]["choices"][0]["delta"],
            serde_json::json!({"tool_calls":[{"index":0,"type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]})
        );
        assert_eq!(got[3]["choices"][0]["delta"], serde_json::json!({}));
        assert_eq!(got[3]["choices"][0]["finish_reason"], "tool_calls");
        assert!(got[3]["usage"].is_null());
        assert_eq!(got[4]["choices"], serde_json::json!([]));
        assert_eq!(got[4]["usage"]["total_tokens"], 8);
    }

    #[test]
    fn cut_stream_and_error_lines_are_errors() {
        let got = run(
            vec![Bytes::from_static(
                br#"{"message":{"content":"a"},"done":false}"#,
            )],
            false,
        );
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok() && got[1].is_err());
        let got = run(vec![Bytes::from_static(b"{\"error\":\"boom\"}\n")], false);
        assert_eq!(got, vec![Err("internal server: boom".to_owned())]);
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_chunks(cuts in proptest::collection::vec(0..NDJSON.len(), 0..12)) {
            let bytes = NDJSON.as_bytes();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for c in cuts {
                pieces.push(Bytes::copy_from_slice(&bytes[start..c]));
                start = c;
            }
            pieces.push(Bytes::copy_from_slice(&bytes[start..]));
            let whole = run(vec![Bytes::from_static(bytes)], true);
            prop_assert_eq!(run(pieces, true), whole);
        }
    }
}
