//! Usage read from a relayed answer as it passes: the token counts a provider states in its own
//! JSON (Anthropic's and OpenAI's `usage`, the Responses API's, Gemini's `usageMetadata`,
//! Bedrock's Converse `usage`, Ollama's `prompt_eval_count` / `eval_count`), in a complete JSON
//! document or in the events of a stream (SSE `data:` lines, or JSON lines).
//!
//! The scanner never holds the answer: a stream is read line by line (one line at most
//! [`MAX_LINE`] long is kept, a longer one is skipped), and only a line that names usage is
//! parsed; a complete JSON document is kept up to [`MAX_DOCUMENT`] to be parsed at its end (a
//! larger one states no usage to the gateway). Anthropic's stream states its counts in parts —
//! input (with cache reads and writes) in `message_start`, output in `message_delta` — which add
//! up here into one cumulative [`TokenUsage`].

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use crate::types::TokenUsage;

/// Longest stream line kept for parsing: 1 MiB.
pub const MAX_LINE: usize = 1 << 20;
/// Largest complete JSON answer kept for parsing: 4 MiB.
pub const MAX_DOCUMENT: usize = 4 << 20;

/// How an answer's body is read for usage, by its content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `text/event-stream` or JSON lines: one event per line.
    Lines,
    /// A JSON document, parsed at its end.
    Document,
    /// Anything else: not read.
    Opaque,
}

impl Shape {
    /// The shape of a body of `content_type`.
    #[must_use]
    pub fn of(content_type: Option<&str>) -> Self {
        let Some(ct) = content_type.map(str::to_ascii_lowercase) else {
            return Self::Opaque;
        };
        if ct.starts_with("text/event-stream")
            || ct.contains("ndjson")
            || ct.contains("jsonl")
            || ct.contains("json-seq")
        {
            Self::Lines
        } else if ct.contains("json") {
            Self::Document
        } else {
            Self::Opaque
        }
    }
}

/// Token counts in parts, as one event states them (a missing field keeps what was known).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Parts {
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
    reasoning: Option<u64>,
    total: Option<u64>,
}

impl Parts {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Reads usage from a relayed body as it passes. See the [module docs](self).
#[derive(Debug)]
pub struct UsageScanner {
    shape: Shape,
    /// The current incomplete line (`Lines`), or the document so far (`Document`).
    buf: BytesMut,
    /// The current line, or the document, outgrew its limit: skipped.
    skipping: bool,
    known: Parts,
    seen: bool,
    /// The model the answer names, once read (with its usage).
    model: Option<Arc<str>>,
    /// Whether `model` was read since [`UsageScanner::take_model`] last took it.
    model_new: bool,
}

impl UsageScanner {
    /// A scanner for a body of `shape`.
    #[must_use]
    pub fn new(shape: Shape) -> Self {
        Self {
            shape,
            buf: BytesMut::new(),
            skipping: false,
            known: Parts::default(),
            seen: false,
            model: None,
            model_new: false,
        }
    }

    /// Reads a piece of the body; the cumulative usage when this piece stated some.
    pub fn feed(&mut self, chunk: &Bytes) -> Option<TokenUsage> {
        match self.shape {
            Shape::Opaque => None,
            Shape::Document => {
                if !self.skipping {
                    if self.buf.len() + chunk.len() > MAX_DOCUMENT {
                        self.skipping = true;
                        self.buf = BytesMut::new();
                    } else {
                        self.buf.extend_from_slice(chunk);
                    }
                }
                None
            }
            Shape::Lines => {
                let changed = self.feed_lines(chunk);
                changed.then(|| self.usage()).flatten()
            }
        }
    }

    /// Reads the complete lines of a stream piece; keeps the incomplete last one. Lines that
    /// name no usage key (nearly all of them) are passed over in one search of the piece.
    fn feed_lines(&mut self, chunk: &[u8]) -> bool {
        let Some(last) = memchr::memrchr(b'\n', chunk) else {
            self.keep(chunk);
            return false;
        };
        let mut changed = false;
        // The line that began in an earlier piece.
        let first = memchr::memchr(b'\n', chunk).unwrap_or(last);
        if self.skipping {
            self.skipping = false;
        } else if self.buf.is_empty() {
            changed |= self.line(&chunk[..first]);
        } else {
            let mut line = std::mem::take(&mut self.buf);
            if line.len() + first <= MAX_LINE {
                line.extend_from_slice(&chunk[..first]);
                changed |= self.line(&line);
            }
            line.clear();
            self.buf = line;
        }
        // Every other complete line, searched only when the piece names usage somewhere.
        let middle = &chunk[first..last];
        if names_usage(middle) {
            for line in middle.split(|&b| b == b'\n') {
                changed |= self.line(line);
            }
        }
        self.keep(&chunk[last + 1..]);
        changed
    }

    /// Keeps the start of an incomplete line (or skips a line that outgrew [`MAX_LINE`]).
    fn keep(&mut self, part: &[u8]) {
        if self.skipping || part.is_empty() {
            return;
        }
        if self.buf.len() + part.len() > MAX_LINE {
            self.skipping = true;
            self.buf = BytesMut::new();
        } else {
            self.buf.extend_from_slice(part);
        }
    }

    /// The body ended: the usage a complete document states (or a last line without its
    /// newline), when that is new.
    pub fn finish(&mut self) -> Option<TokenUsage> {
        if self.skipping {
            return None;
        }
        let buf = std::mem::take(&mut self.buf);
        let changed = match self.shape {
            Shape::Opaque => false,
            Shape::Lines => !buf.is_empty() && self.line(&buf),
            Shape::Document => serde_json::from_slice::<Value>(&buf)
                .ok()
                .is_some_and(|doc| {
                    self.note_model(&doc);
                    self.merge(parts_of(&doc))
                }),
        };
        changed.then(|| self.usage()).flatten()
    }

    /// The model the answer names (read where its usage is: Anthropic's `message_start`, an
    /// OpenAI chunk or answer, the Responses API's `response`), the first time it is known.
    pub fn take_model(&mut self) -> Option<Arc<str>> {
        if std::mem::take(&mut self.model_new) {
            self.model.clone()
        } else {
            None
        }
    }

    /// The usage known so far.
    #[must_use]
    pub fn usage(&self) -> Option<TokenUsage> {
        if !self.seen {
            return None;
        }
        let k = &self.known;
        let input = k.input.unwrap_or(0);
        let output = k.output.unwrap_or(0);
        Some(TokenUsage {
            input,
            output,
            cache_read: k.cache_read.unwrap_or(0),
            cache_write: k.cache_write.unwrap_or(0),
            reasoning: k.reasoning.unwrap_or(0),
            total: k
                .total
                .filter(|t| *t >= input.saturating_add(output))
                .unwrap_or_else(|| input.saturating_add(output)),
            search_units: 0,
        })
    }

    /// One line of a stream; whether it stated usage.
    fn line(&mut self, line: &[u8]) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let payload = match line.strip_prefix(b"data:") {
            Some(p) => p.trim_ascii_start(),
            None if line.first() == Some(&b'{') => line,
            None => return false,
        };
        if !names_usage(payload) {
            return false;
        }
        match serde_json::from_slice::<Value>(payload) {
            Ok(doc) => {
                self.note_model(&doc);
                self.merge(parts_of(&doc))
            }
            Err(_) => false,
        }
    }

    fn note_model(&mut self, doc: &Value) {
        if self.model.is_some() {
            return;
        }
        let model = doc
            .get("model")
            .or_else(|| doc.get("message").and_then(|m| m.get("model")))
            .or_else(|| doc.get("response").and_then(|r| r.get("model")))
            .or_else(|| doc.get("modelVersion"))
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty() && m.len() <= 256);
        if let Some(m) = model {
            self.model = Some(m.into());
            self.model_new = true;
        }
    }

    fn merge(&mut self, parts: Parts) -> bool {
        if parts.is_empty() {
            return false;
        }
        let k = &mut self.known;
        // A total stated with other counts belongs to them; a later part without one does not
        // keep a stale total.
        k.total = parts.total;
        for (slot, v) in [
            (&mut k.input, parts.input),
            (&mut k.output, parts.output),
            (&mut k.cache_read, parts.cache_read),
            (&mut k.cache_write, parts.cache_write),
            (&mut k.reasoning, parts.reasoning),
        ] {
            if v.is_some() {
                *slot = v;
            }
        }
        self.seen = true;
        true
    }
}

/// Whether a payload mentions a usage key at all (the cheap test before a parse).
fn names_usage(payload: &[u8]) -> bool {
    // `usage"`, `usageMetadata"`, `prompt_eval_count"` / `eval_count"`.
    [&b"usage\""[..], b"usageMetadata\"", b"eval_count\""]
        .iter()
        .any(|k| memchr::memmem::find(payload, k).is_some())
}

fn num(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// The counts one JSON document (a complete answer or one event) states, in any of the shapes
/// the pass-through families use.
fn parts_of(doc: &Value) -> Parts {
    // Gemini and Vertex: `usageMetadata`.
    if let Some(u) = doc.get("usageMetadata") {
        let candidates = num(u, "candidatesTokenCount");
        let thoughts = num(u, "thoughtsTokenCount");
        let output = match (candidates, thoughts) {
            (None, None) => None,
            (c, t) => Some(c.unwrap_or(0).saturating_add(t.unwrap_or(0))),
        };
        return Parts {
            input: num(u, "promptTokenCount"),
            output,
            cache_read: num(u, "cachedContentTokenCount"),
            reasoning: thoughts,
            total: num(u, "totalTokenCount"),
            ..Parts::default()
        };
    }
    // Ollama: the last line (or the answer) of `/api/chat`, `/api/generate`.
    if doc.get("eval_count").is_some() || doc.get("prompt_eval_count").is_some() {
        return Parts {
            input: num(doc, "prompt_eval_count"),
            output: num(doc, "eval_count"),
            ..Parts::default()
        };
    }
    // Anthropic's `message_start` (`message.usage`), the Responses API's events
    // (`response.usage`), else the document's own `usage`.
    let usage = doc
        .get("usage")
        .or_else(|| doc.get("message").and_then(|m| m.get("usage")))
        .or_else(|| doc.get("response").and_then(|r| r.get("usage")));
    usage.map_or_else(Parts::default, usage_object)
}

/// A `usage` object: OpenAI chat / embeddings (`prompt_tokens`), the Responses API
/// (`input_tokens` with `input_tokens_details`), Anthropic (`input_tokens` plus cache creation
/// and reads, which Anthropic counts apart), Bedrock Converse (`inputTokens`).
fn usage_object(u: &Value) -> Parts {
    if u.get("prompt_tokens").is_some() || u.get("completion_tokens").is_some() {
        return Parts {
            input: num(u, "prompt_tokens"),
            output: num(u, "completion_tokens"),
            cache_read: u
                .get("prompt_tokens_details")
                .and_then(|d| num(d, "cached_tokens")),
            reasoning: u
                .get("completion_tokens_details")
                .and_then(|d| num(d, "reasoning_tokens")),
            total: num(u, "total_tokens"),
            ..Parts::default()
        };
    }
    if u.get("inputTokens").is_some() || u.get("outputTokens").is_some() {
        let read = num(u, "cacheReadInputTokens");
        let write = num(u, "cacheWriteInputTokens");
        let input = num(u, "inputTokens").map(|i| {
            i.saturating_add(read.unwrap_or(0))
                .saturating_add(write.unwrap_or(0))
        });
        return Parts {
            input,
            output: num(u, "outputTokens"),
            cache_read: read,
            cache_write: write,
            total: num(u, "totalTokens"),
            ..Parts::default()
        };
    }
    if u.get("input_tokens_details").is_some() || u.get("output_tokens_details").is_some() {
        // The Responses API: `input_tokens` already counts the cached ones.
        return Parts {
            input: num(u, "input_tokens"),
            output: num(u, "output_tokens"),
            cache_read: u
                .get("input_tokens_details")
                .and_then(|d| num(d, "cached_tokens")),
            reasoning: u
                .get("output_tokens_details")
                .and_then(|d| num(d, "reasoning_tokens")),
            total: num(u, "total_tokens"),
            ..Parts::default()
        };
    }
    // Anthropic: `input_tokens` excludes cache creation and reads; `TokenUsage.input` counts all.
    let base = num(u, "input_tokens");
    let write = num(u, "cache_creation_input_tokens");
    let read = num(u, "cache_read_input_tokens");
    let input = if base.is_none() && write.is_none() && read.is_none() {
        None
    } else {
        Some(
            base.unwrap_or(0)
                .saturating_add(write.unwrap_or(0))
                .saturating_add(read.unwrap_or(0)),
        )
    };
    Parts {
        input,
        output: num(u, "output_tokens"),
        cache_read: read,
        cache_write: write,
        ..Parts::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_lines(pieces: &[&str]) -> (Vec<Option<TokenUsage>>, Option<TokenUsage>) {
        let mut s = UsageScanner::new(Shape::Lines);
        let seen = pieces
            .iter()
            .map(|p| s.feed(&Bytes::copy_from_slice(p.as_bytes())))
            .collect();
        let _ = s.finish();
        (seen, s.usage())
    }

    #[test]
    fn anthropic_stream_adds_up_input_with_cache_and_output() {
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":5,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\n";
        let delta = "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":42}}\n\n";
        // Split mid-line, at random places.
        let joined = format!("{start}event: ping\ndata: {{\"type\":\"ping\"}}\n\n{delta}");
        for cut in [1, 7, 60, start.len(), start.len() + 3, joined.len() - 2] {
            let (a, b) = joined.split_at(cut);
            let (_, usage) = scan_lines(&[a, b]);
            let u = usage.unwrap();
            assert_eq!(
                (u.input, u.cache_write, u.cache_read, u.output, u.total),
                (115, 5, 100, 42, 157),
                "cut at {cut}"
            );
        }
        let mut s = UsageScanner::new(Shape::Lines);
        s.feed(&Bytes::from_static(
            b"data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":1}}}\n",
        ));
        assert_eq!(s.take_model().as_deref(), Some("claude-x"));
        assert_eq!(s.take_model(), None, "taken once");
        let (seen, _) = scan_lines(&[start, "event: ping\n\n", delta]);
        assert_eq!(seen[0].unwrap().output, 1);
        assert!(seen[1].is_none());
        assert_eq!(seen[2].unwrap().output, 42);
    }

    #[test]
    fn openai_chat_responses_gemini_and_ollama_shapes() {
        let chat = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":2},\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\ndata: [DONE]\n\n";
        let u = scan_lines(&[chat]).1.unwrap();
        assert_eq!(
            (u.input, u.output, u.cache_read, u.reasoning, u.total),
            (7, 3, 2, 1, 10)
        );

        let resp = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":20,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":9,\"output_tokens_details\":{\"reasoning_tokens\":5},\"total_tokens\":29}}}\n\n";
        let u = scan_lines(&[resp]).1.unwrap();
        assert_eq!(
            (u.input, u.output, u.cache_read, u.reasoning, u.total),
            (20, 9, 4, 5, 29)
        );

        let gem = "data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":4,\"thoughtsTokenCount\":2,\"totalTokenCount\":14}}\r\n\r\n";
        let u = scan_lines(&[gem]).1.unwrap();
        assert_eq!((u.input, u.output, u.reasoning, u.total), (8, 6, 2, 14));

        let ollama = "{\"message\":{\"content\":\"a\"},\"done\":false}\n{\"done\":true,\"prompt_eval_count\":11,\"eval_count\":6}";
        let u = scan_lines(&[ollama]).1.unwrap();
        assert_eq!((u.input, u.output), (11, 6));
    }

    #[test]
    fn complete_documents_state_their_usage_at_the_end() {
        let mut s = UsageScanner::new(Shape::of(Some("application/json; charset=utf-8")));
        let doc = br#"{"type":"message","usage":{"input_tokens":3,"output_tokens":4}}"#;
        assert!(s.feed(&Bytes::from_static(&doc[..10])).is_none());
        assert!(s.feed(&Bytes::from_static(&doc[10..])).is_none());
        let u = s.finish().unwrap();
        assert_eq!((u.input, u.output, u.total), (3, 4, 7));

        let mut b = UsageScanner::new(Shape::Document);
        b.feed(&Bytes::from_static(
            br#"{"output":{},"usage":{"inputTokens":5,"outputTokens":2,"cacheReadInputTokens":10,"totalTokens":17}}"#,
        ));
        let u = b.finish().unwrap();
        assert_eq!((u.input, u.cache_read, u.output, u.total), (15, 10, 2, 17));

        // No usage, not JSON, opaque: nothing, and no panic.
        for (shape, body) in [
            (Shape::Document, &b"{\"data\":[]}"[..]),
            (Shape::Document, b"{not json"),
            (Shape::Opaque, b"{\"usage\":{\"prompt_tokens\":1}}"),
            (Shape::Lines, b"data: {\"usage\": oops}\n\n"),
        ] {
            let mut s = UsageScanner::new(shape);
            s.feed(&Bytes::copy_from_slice(body));
            assert!(s.finish().is_none() && s.usage().is_none());
        }
    }

    #[test]
    fn oversized_lines_and_documents_are_skipped_not_kept() {
        let mut s = UsageScanner::new(Shape::Lines);
        let big = Bytes::from(vec![b'x'; MAX_LINE]);
        s.feed(&Bytes::from_static(b"data: {\"usage\":"));
        s.feed(&big);
        assert!(s.buf.is_empty(), "an oversized line is not kept");
        // The next line is read again.
        let u = s.feed(&Bytes::from_static(
            b"\ndata: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n",
        ));
        assert_eq!(u.unwrap().total, 3);

        let mut d = UsageScanner::new(Shape::Document);
        for _ in 0..5 {
            d.feed(&big);
        }
        assert!(d.buf.len() <= MAX_DOCUMENT);
        assert!(d.finish().is_none());
    }

    #[test]
    fn shapes_by_content_type() {
        assert_eq!(Shape::of(Some("text/event-stream")), Shape::Lines);
        assert_eq!(Shape::of(Some("application/x-ndjson")), Shape::Lines);
        assert_eq!(Shape::of(Some("application/json")), Shape::Document);
        assert_eq!(Shape::of(Some("application/octet-stream")), Shape::Opaque);
        assert_eq!(Shape::of(None), Shape::Opaque);
    }
}
