//! [`Relayed`]: an answer or stream chunk that is typed, or an OpenAI-format provider's own bytes.
//!
//! Most requests need little from an answer: the cost layer reads `model` and `usage`, the
//! routing layers the usage, the OpenAI mapper whether a chunk finished; the edge sends the
//! provider's bytes as they came. Building the typed value (every choice, message and unknown key)
//! is left to the layers that ask for it ([`Relayed::typed`]): the cache when it stores an entry,
//! the library client. A layer that changes the value uses [`Relayed::typed_mut`], which drops the
//! provider's bytes, so changed content is never paired with stale bytes and no layer has a
//! contract to remember.
//!
//! [`ChatBody`] is a complete chat completion, [`ChunkBody`] one chunk of a stream. Translated
//! providers (Anthropic, Gemini, Bedrock, …) build typed values, which the edge serializes.

use std::fmt;

use bytes::{BufMut as _, Bytes, BytesMut};
use http::StatusCode;
use serde::{de::DeserializeOwned, Serialize};

use super::{
    chat::{ChatChunk, ChatResponse, Usage},
    scan,
};
use crate::error::{ErrorKind, LlmError};

/// A complete chat completion, typed or relayed. See the [module docs](self).
pub type ChatBody = Relayed<ChatResponse>;

/// One chunk of a chat stream (the JSON of one `data:` event), typed or relayed. See the
/// [module docs](self).
pub type ChunkBody = Relayed<ChatChunk>;

/// A wire type that can be relayed as bytes: what a summary reads is also on the typed value.
pub trait Relayable: Serialize + DeserializeOwned + fmt::Debug + Clone {
    /// What the value is, for errors ("chat completion", "stream chunk").
    const WHAT: &'static str;
    /// Whether the summary reads each choice (count and finish reasons); else it only checks
    /// that `choices` is a list.
    const READ_CHOICES: bool;
    /// The model that answered.
    fn model(&self) -> Option<&str>;
    /// Token usage.
    fn usage(&self) -> Option<&Usage>;
}

impl Relayable for ChatResponse {
    const WHAT: &'static str = "chat completion";
    const READ_CHOICES: bool = false;
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
    fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}

impl Relayable for ChatChunk {
    const WHAT: &'static str = "stream chunk";
    const READ_CHOICES: bool = true;
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
    fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}

/// A typed value, or the provider's OpenAI-format bytes with a few members read. See the
/// [module docs](self).
#[derive(Clone)]
pub struct Relayed<T>(Repr<T>);

#[derive(Clone)]
enum Repr<T> {
    Typed(Box<T>),
    Wire(Box<Wire<T>>),
}

#[derive(Clone)]
struct Wire<T> {
    bytes: Bytes,
    summary: Summary,
    /// The typed value, once a layer asked for it (the same JSON as `bytes`).
    typed: Option<T>,
}

/// What is read from a wire answer or chunk up front.
impl<T: Relayable> Wire<T> {
    /// The typed value: the one parsed before (taken out), else parsed from the bytes now.
    fn take_typed(&mut self) -> Result<T, LlmError> {
        match self.typed.take() {
            Some(t) => Ok(t),
            None => parse::<T>(&self.bytes),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Summary {
    model: Option<String>,
    usage: Option<Usage>,
    /// How many choices.
    choices: u32,
    /// Whether any choice has a non-null `finish_reason`.
    finished: bool,
    /// Bytes of text the choices' deltas carry (see [`Relayed::delta_text_bytes`]).
    text_bytes: usize,
}

impl<T: Relayable> Relayed<T> {
    /// The provider's OpenAI-format bytes, kept: UTF-8 and the JSON structure are checked
    /// (`choices` a list of objects), `model` and `usage` are parsed (see `types::scan`);
    /// everything else is parsed only on demand.
    ///
    /// # Errors
    /// When the bytes are not such a value (a `502`, as a failed decode). An OpenAI stream's
    /// mid-stream error object is such a payload: the stream mapper looks for one then.
    pub fn from_wire(bytes: Bytes) -> Result<Self, LlmError> {
        if let Err(e) = std::str::from_utf8(&bytes) {
            return Err(invalid::<T>(&e));
        }
        Self::from_utf8_wire(bytes).map_err(|(e, _)| e)
    }

    /// [`from_wire`](Self::from_wire) for text that is UTF-8 already (an SSE event's data, which
    /// the event parser checked): no second check, no copy. On error the bytes come back, for a
    /// caller that looks at them another way (a mid-stream error object).
    pub(crate) fn from_wire_text(text: String) -> Result<Self, (LlmError, Bytes)> {
        Self::from_utf8_wire(Bytes::from(text))
    }

    fn from_utf8_wire(bytes: Bytes) -> Result<Self, (LlmError, Bytes)> {
        match summarize(&bytes, T::READ_CHOICES) {
            Ok(summary) => Ok(Self(Repr::Wire(Box::new(Wire {
                bytes,
                summary,
                typed: None,
            })))),
            Err(e) => Err((invalid::<T>(&e), bytes)),
        }
    }

    /// The model that answered, as the value says.
    #[must_use]
    pub fn model(&self) -> Option<&str> {
        match &self.0 {
            Repr::Typed(t) => t.model(),
            Repr::Wire(w) => w.summary.model.as_deref(),
        }
    }

    /// Token usage (a chunk has it on the last chunk, with `stream_options.include_usage`).
    #[must_use]
    pub fn usage(&self) -> Option<&Usage> {
        match &self.0 {
            Repr::Typed(t) => t.usage(),
            Repr::Wire(w) => w.summary.usage.as_ref(),
        }
    }

    /// The provider's own bytes, when the value is in OpenAI's wire format and unchanged.
    #[must_use]
    pub fn wire(&self) -> Option<&Bytes> {
        match &self.0 {
            Repr::Typed(_) => None,
            Repr::Wire(w) => Some(&w.bytes),
        }
    }

    /// The typed value, parsed from the provider's bytes on first use (which are kept).
    ///
    /// # Errors
    /// When the provider's bytes do not parse as `T` (a `502`).
    pub fn typed(&mut self) -> Result<&T, LlmError> {
        match &mut self.0 {
            Repr::Typed(t) => Ok(t),
            Repr::Wire(w) => {
                let typed = w.take_typed()?;
                Ok(w.typed.insert(typed))
            }
        }
    }

    /// The typed value for changing; the provider's bytes are dropped (the edge then serializes
    /// the changed value).
    ///
    /// # Errors
    /// As [`Relayed::typed`].
    pub fn typed_mut(&mut self) -> Result<&mut T, LlmError> {
        if let Repr::Wire(w) = &mut self.0 {
            let typed = w.take_typed()?;
            self.0 = Repr::Typed(Box::new(typed));
        }
        match &mut self.0 {
            Repr::Typed(t) => Ok(t),
            Repr::Wire(_) => Err(invalid::<T>(&"not typed")),
        }
    }

    /// The typed value, by value.
    ///
    /// # Errors
    /// As [`Relayed::typed`].
    pub fn into_typed(self) -> Result<T, LlmError> {
        match self.0 {
            Repr::Typed(t) => Ok(*t),
            Repr::Wire(mut w) => w.take_typed(),
        }
    }

    /// The value as JSON bytes: the provider's own when unchanged, else the typed value
    /// serialized.
    ///
    /// # Errors
    /// When serializing the typed value fails.
    pub fn to_bytes(&self) -> Result<Bytes, LlmError> {
        match &self.0 {
            Repr::Wire(w) => Ok(w.bytes.clone()),
            Repr::Typed(t) => serde_json::to_vec(&**t)
                .map(Bytes::from)
                .map_err(|e| LlmError::internal(format!("cannot encode the {}: {e}", T::WHAT))),
        }
    }

    /// Appends the value's JSON to `buf` (as [`Relayed::to_bytes`], without the extra buffer).
    pub fn write_json(&self, buf: &mut BytesMut) {
        match &self.0 {
            Repr::Wire(w) => buf.extend_from_slice(&w.bytes),
            // Serializing a wire type into memory cannot fail.
            Repr::Typed(t) => {
                let _ = serde_json::to_writer(buf.writer(), &**t);
            }
        }
    }
}

impl Relayed<ChatChunk> {
    /// Whether the chunk has any choice (the usage-only chunk has none).
    #[must_use]
    pub fn has_choices(&self) -> bool {
        match &self.0 {
            Repr::Typed(c) => !c.choices.is_empty(),
            Repr::Wire(w) => w.summary.choices > 0,
        }
    }

    /// Bytes of generated text in the chunk's deltas: `content`, `reasoning_content`, `refusal`
    /// and the tool calls (on a typed chunk, their names and arguments). On the provider's bytes
    /// it is measured as sent (a string's escapes as written, the tool calls with their JSON
    /// framing), so it never counts less than the text; the cost layer estimates the tokens of a
    /// stream cut short from it.
    #[must_use]
    pub fn delta_text_bytes(&self) -> usize {
        match &self.0 {
            Repr::Typed(c) => c
                .choices
                .iter()
                .filter_map(|c| c.delta.as_ref())
                .map(|d| {
                    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
                    let tools: usize = d.tool_calls.as_ref().map_or(0, |calls| {
                        calls
                            .iter()
                            .filter_map(|t| t.function.as_ref())
                            .map(|f| text(&f.name) + text(&f.arguments))
                            .sum()
                    });
                    text(&d.content) + text(&d.reasoning_content) + tools
                })
                .sum(),
            Repr::Wire(w) => w.summary.text_bytes,
        }
    }

    /// Whether any choice of the chunk carries a finish reason.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        match &self.0 {
            Repr::Typed(c) => c.choices.iter().any(|c| c.finish_reason.is_some()),
            Repr::Wire(w) => w.summary.finished,
        }
    }
}

impl<T> From<T> for Relayed<T> {
    fn from(t: T) -> Self {
        Self(Repr::Typed(Box::new(t)))
    }
}

/// Serializes the value as JSON (a wire value through its typed form; the edge writes a wire
/// value's own bytes with [`Relayed::write_json`] instead).
impl<T: Relayable> Serialize for Relayed<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Typed(t) => t.serialize(serializer),
            Repr::Wire(w) => match &w.typed {
                Some(t) => t.serialize(serializer),
                None => parse::<T>(&w.bytes)
                    .map_err(serde::ser::Error::custom)?
                    .serialize(serializer),
            },
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Relayed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Typed(t) => f.debug_tuple("Relayed").field(t).finish(),
            Repr::Wire(w) => f
                .debug_struct("Relayed")
                .field("wire_bytes", &w.bytes.len())
                .field("summary", &w.summary)
                .finish_non_exhaustive(),
        }
    }
}

fn parse<T: Relayable>(bytes: &[u8]) -> Result<T, LlmError> {
    serde_json::from_slice(bytes).map_err(|e| invalid::<T>(&e))
}

/// The error for a provider body that is not a `T` (as a failed decode: `502`).
fn invalid<T: Relayable>(e: &dyn fmt::Display) -> LlmError {
    LlmError::new(
        ErrorKind::InternalServer,
        format!("the provider returned an invalid {}: {e}", T::WHAT),
    )
    .with_status(StatusCode::BAD_GATEWAY)
}

/// Reads `model`, `usage` and (with `read_choices`) the choices' count and finish reasons of an
/// OpenAI-format answer or chunk with a structural scan; `model` and `usage` are read directly in
/// their plain shapes, else by serde. Members are matched by their raw key text: a key written
/// with escapes is not one of these names as far as the scan goes, and is relayed like any other
/// member.
fn summarize(bytes: &[u8], read_choices: bool) -> Result<Summary, String> {
    let mut summary = Summary::default();
    let mut choices_seen = false;
    let mut error: Option<String> = None;
    // A chunk's choices are read while the scan finds where the list ends (one pass over them).
    let mut choices = 0_u32;
    let mut finished = false;
    let mut text_bytes = 0_usize;
    let mut listed_objects = true;
    let mut read_list = |value_at: usize| {
        let listed = scan::walk_elements(
            bytes,
            value_at,
            |choice_at| {
                choices = choices.saturating_add(1);
                // The delta's text is counted while the scan finds where the delta ends.
                let end = scan::walk_members(
                    bytes,
                    choice_at,
                    |key, value_at| {
                        if key == b"delta" {
                            scan::for_each_member(bytes, value_at, |d| {
                                text_bytes = text_bytes
                                    .saturating_add(delta_member_bytes(d.key, &bytes[d.value]));
                            })
                            .or_else(|| scan::skip_value(bytes, value_at))
                        } else {
                            scan::skip_value(bytes, value_at)
                        }
                    },
                    |c| {
                        if c.key == b"finish_reason" && &bytes[c.value] != b"null" {
                            finished = true;
                        }
                    },
                );
                // Not an object: noted, and passed over as any value.
                end.or_else(|| {
                    listed_objects = false;
                    scan::skip_value(bytes, choice_at)
                })
            },
            |_| {},
        );
        listed.or_else(|| {
            listed_objects = false;
            scan::skip_value(bytes, value_at)
        })
    };
    let end = scan::walk_members(
        bytes,
        0,
        |key, value_at| {
            if read_choices && key == b"choices" {
                read_list(value_at)
            } else {
                scan::skip_value(bytes, value_at)
            }
        },
        |m| {
            let value = &bytes[m.value.clone()];
            match m.key {
                b"model" if value != b"null" => match plain_string(value)
                    .map_or_else(|| serde_json::from_slice(value), |s| Ok(s.to_owned()))
                {
                    Ok(model) => summary.model = Some(model),
                    Err(e) => error = Some(format!("model: {e}")),
                },
                b"usage" if value != b"null" => {
                    match counts_only_usage(value).map_or_else(|| serde_json::from_slice(value), Ok)
                    {
                        Ok(usage) => summary.usage = Some(usage),
                        Err(e) => error = Some(format!("usage: {e}")),
                    }
                }
                // The scan has already checked the list's structure (and for a chunk read it).
                b"choices" if value.first() == Some(&b'[') => choices_seen = true,
                b"choices" => error = Some("choices is not a list".to_owned()),
                _ => {}
            }
        },
    );
    if read_choices {
        if !listed_objects {
            error.get_or_insert_with(|| "choices is not a list of objects".to_owned());
        }
        summary.choices = choices;
        summary.finished = finished;
        summary.text_bytes = text_bytes;
    }
    if let Some(e) = error {
        return Err(e);
    }
    match end {
        Some(end) if scan::only_ws_after(bytes, end) => {}
        _ => return Err("not a JSON object".to_owned()),
    }
    if !choices_seen {
        return Err("no choices list".to_owned());
    }
    Ok(summary)
}

/// The bytes of generated text a member of a chunk's `delta` carries, as sent: a string's text
/// between its quotes (escapes as written) for `content`, `reasoning_content` and `refusal`, the
/// whole value for `tool_calls` (arguments with their framing), 0 for anything else.
fn delta_member_bytes(key: &[u8], value: &[u8]) -> usize {
    match key {
        b"content" | b"reasoning_content" | b"refusal" if value.first() == Some(&b'"') => {
            value.len().saturating_sub(2)
        }
        b"tool_calls" if value != b"null" => value.len(),
        _ => 0,
    }
}

/// The text of a JSON string with no escapes and no control characters (what serde would read
/// it as), else `None`. `value` is a slice of bytes already checked to be UTF-8, cut at ASCII
/// quotes, so the text between them is UTF-8 too.
fn plain_string(value: &[u8]) -> Option<&str> {
    let inner = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.iter().any(|&b| b == b'\\' || b == b'"' || b < 0x20) {
        return None;
    }
    std::str::from_utf8(inner).ok()
}

/// `usage` when it is the common shape — only `prompt_tokens`, `completion_tokens` and
/// `total_tokens`, each a plain non-negative integer — read without serde. Anything else (details,
/// nulls, other keys, exotic numbers) is `None`, and serde reads it.
fn counts_only_usage(value: &[u8]) -> Option<Usage> {
    let mut usage = Usage::default();
    let mut plain = true;
    scan::for_each_member(value, 0, |m| {
        let n = plain_u64(&value[m.value.clone()]);
        let slot = match m.key {
            b"prompt_tokens" => &mut usage.prompt_tokens,
            b"completion_tokens" => &mut usage.completion_tokens,
            b"total_tokens" => &mut usage.total_tokens,
            _ => {
                plain = false;
                return;
            }
        };
        match n {
            Some(n) if slot.is_none() => *slot = Some(n),
            _ => plain = false,
        }
    })?;
    plain.then_some(usage)
}

/// A JSON integer of ASCII digits without a leading zero that fits a `u64`.
fn plain_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || (text.len() > 1 && text[0] == b'0') {
        return None;
    }
    text.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ANSWER: &[u8] = br#"{"id":"c1","choices":[{"index":0,"message":{"role":"assistant","content":"hi","x_new":[1.50]},"finish_reason":"stop"}],"model":"gpt-4o-2024","usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"x_u":true},"x_top":{"a":null}}"#;

    proptest::proptest! {
        /// The summary (with its one-pass read of a chunk's choices) is total on any bytes, and
        /// on a chunk-shaped object counts the choices serde sees.
        #[test]
        fn summary_is_total_and_counts_choices(
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            finishes in proptest::collection::vec(proptest::option::of("[a-z]{1,6}"), 0..4),
        ) {
            let _ = summarize(&raw, true);
            let _ = summarize(&raw, false);
            let choices: Vec<_> = finishes
                .iter()
                .enumerate()
                .map(|(i, f)| serde_json::json!({"index": i, "delta": {"content": "x"}, "finish_reason": f}))
                .collect();
            let chunk = serde_json::json!({"id": "c", "choices": choices, "model": "m"}).to_string();
            let s = summarize(chunk.as_bytes(), true).unwrap();
            proptest::prop_assert_eq!(s.choices as usize, finishes.len());
            proptest::prop_assert_eq!(s.finished, finishes.iter().any(Option::is_some));
            // One byte of content per choice.
            proptest::prop_assert_eq!(s.text_bytes, finishes.len());
        }
    }

    #[test]
    fn delta_text_bytes_count_what_the_deltas_carry() {
        // Content, reasoning and a refusal as their text; role, finish and usage not at all.
        let chunk = br#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"hello","reasoning_content":"abc"},"finish_reason":null},{"index":1,"delta":{"refusal":"no"}}],"model":"m","usage":null}"#;
        let wire = ChunkBody::from_wire(Bytes::from_static(chunk)).unwrap();
        assert_eq!(wire.delta_text_bytes(), 5 + 3 + 2);
        // The typed form counts content and reasoning the same way.
        let mut typed = wire;
        typed.typed_mut().unwrap();
        assert!(typed.wire().is_none());
        assert_eq!(typed.delta_text_bytes(), 5 + 3);
        // Tool calls: the whole value on the wire (never less than the arguments' text), the
        // name and arguments when typed.
        let chunk = br#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}"#;
        let wire = ChunkBody::from_wire(Bytes::from_static(chunk)).unwrap();
        let mut typed = wire.clone();
        typed.typed_mut().unwrap();
        assert_eq!(typed.delta_text_bytes(), 1 + 7);
        assert!(wire.delta_text_bytes() > typed.delta_text_bytes());
        // Nothing to count: a usage-only chunk, a null delta, escaped text counted as written.
        for (chunk, n) in [
            (&br#"{"choices":[],"usage":{"prompt_tokens":1}}"#[..], 0),
            (br#"{"choices":[{"delta":null}]}"#, 0),
            (br#"{"choices":[{"delta":{"content":null}}]}"#, 0),
            (br#"{"choices":[{"delta":{"content":"a\nb"}}]}"#, 4),
        ] {
            let c = ChunkBody::from_wire(Bytes::copy_from_slice(chunk)).unwrap();
            assert_eq!(
                c.delta_text_bytes(),
                n,
                "{}",
                String::from_utf8_lossy(chunk)
            );
        }
    }

    #[test]
    fn the_fast_reads_agree_with_serde_and_defer_to_it_on_anything_else() {
        let usages = [
            r#"{"prompt_tokens":12,"completion_tokens":20,"total_tokens":32}"#,
            r#"{ "total_tokens" : 0 , "prompt_tokens":18446744073709551615 }"#,
            r#"{}"#,
            r#"{"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":0}}"#,
            r#"{"prompt_tokens":null,"completion_tokens":1}"#,
            r#"{"prompt_tokens":1.0}"#,
            r#"{"prompt_tokens":01}"#,
            r#"{"prompt_tokens":-1}"#,
            r#"{"prompt_tokens":1,"prompt_tokens":2}"#,
            r#"{"x":true}"#,
        ];
        for u in usages {
            let fast = counts_only_usage(u.as_bytes());
            let serde = serde_json::from_str::<Usage>(u);
            if let Some(fast) = fast {
                let serde = serde.unwrap();
                assert_eq!(
                    serde_json::to_string(&fast).unwrap(),
                    serde_json::to_string(&serde).unwrap(),
                    "{u}"
                );
            } else {
                assert!(
                    u.contains("details")
                        || u.contains("null")
                        || u.contains('.')
                        || u.contains("01")
                        || u.contains('-')
                        || u.contains("\"x\"")
                        || u.matches("prompt_tokens").count() > 1,
                    "fast path refused a plain usage: {u}"
                );
            }
        }
        assert_eq!(plain_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(plain_u64(b"99999999999999999999"), None);
        assert_eq!(plain_string(br#""gpt-4o""#), Some("gpt-4o"));
        assert_eq!(plain_string("\"modèle\"".as_bytes()), Some("modèle"));
        assert_eq!(plain_string(br#""a\"b""#), None);
        assert_eq!(plain_string(br#""a\u0041""#), None);
        assert_eq!(plain_string(b"42"), None);
    }

    #[test]
    fn wire_answer_reads_model_and_usage_and_keeps_the_bytes() {
        let mut body = ChatBody::from_wire(Bytes::from_static(ANSWER)).unwrap();
        assert_eq!(body.model(), Some("gpt-4o-2024"));
        let usage = body.usage().unwrap();
        assert_eq!(
            (usage.prompt_tokens, usage.completion_tokens),
            (Some(3), Some(1))
        );
        assert_eq!(body.wire().unwrap().as_ref(), ANSWER);
        // Parsing on demand keeps the bytes; the typed answer is the same JSON.
        let typed = body.typed().unwrap();
        assert_eq!(typed.choices[0].message.as_ref().unwrap().text(), "hi");
        assert_eq!(body.to_bytes().unwrap().as_ref(), ANSWER);
        let a: serde_json::Value = serde_json::from_slice(ANSWER).unwrap();
        let b: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(body.typed().unwrap()).unwrap()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn changing_the_answer_drops_the_provider_bytes() {
        let mut body = ChatBody::from_wire(Bytes::from_static(ANSWER)).unwrap();
        body.typed_mut().unwrap().model = Some("other".into());
        assert!(body.wire().is_none());
        assert_eq!(body.model(), Some("other"));
        let out: serde_json::Value = serde_json::from_slice(&body.to_bytes().unwrap()).unwrap();
        assert_eq!(out["model"], "other");
        assert_eq!(out["x_top"], serde_json::json!({"a": null}));
        assert_eq!(body.into_typed().unwrap().id.as_deref(), Some("c1"));
    }

    #[test]
    fn answers_that_are_not_chat_completions_are_bad_gateway() {
        for bad in [
            &br#"{"choices":"nope"}"#[..],
            br#"{"model":"m"}"#,
            br#"{"choices":[],"usage":{"prompt_tokens":"x"}}"#,
            br#"{"choices":[]"#,
            b"[1]",
            b"",
            b"{\"choices\":[],\"model\":\"\xff\"}",
        ] {
            let err = ChatBody::from_wire(Bytes::copy_from_slice(bad)).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_GATEWAY, "{bad:?}");
        }
        // Valid at the top level, not a chat completion inside: refused when parsed, not before.
        let mut body =
            ChatBody::from_wire(Bytes::from_static(br#"{"choices":[{"message":7}]}"#)).unwrap();
        assert_eq!(body.typed().unwrap_err().status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn wire_chunks_read_finish_usage_and_choices_and_keep_their_bytes() {
        let delta = br#"{"id":"c","choices":[{"index":0,"delta":{"content":"a \"}\" b"},"finish_reason":null,"x":{"y":[1]}}],"model":"m1","usage":null}"#;
        let mut chunk = ChunkBody::from_wire(Bytes::from_static(delta)).unwrap();
        assert!(chunk.has_choices() && !chunk.is_finished());
        assert_eq!(chunk.model(), Some("m1"));
        assert!(chunk.usage().is_none());
        let mut out = bytes::BytesMut::new();
        chunk.write_json(&mut out);
        assert_eq!(&out[..], delta);
        let typed = chunk.typed().unwrap();
        assert_eq!(
            typed.choices[0].delta.as_ref().unwrap().content.as_deref(),
            Some("a \"}\" b")
        );

        let stop = br#"{"choices":[{"index":0,"delta":{}},{"index":1,"delta":{},"finish_reason":"stop"}]}"#;
        let chunk = ChunkBody::from_wire(Bytes::from_static(stop)).unwrap();
        assert!(chunk.is_finished());

        let usage =
            br#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;
        let mut chunk = ChunkBody::from_wire(Bytes::from_static(usage)).unwrap();
        assert!(!chunk.has_choices() && !chunk.is_finished());
        assert_eq!(chunk.usage().and_then(|u| u.total_tokens), Some(3));
        // Changing a chunk drops the provider's bytes: what is written is the change.
        chunk.typed_mut().unwrap().usage = None;
        assert!(chunk.wire().is_none() && chunk.usage().is_none());
        let mut out = bytes::BytesMut::new();
        chunk.write_json(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, serde_json::json!({"choices": []}));
    }

    #[test]
    fn payloads_that_are_not_chunks_are_refused() {
        for bad in [
            &br#"{"error":{"message":"overloaded"}}"#[..],
            br#"{"choices":[1]}"#,
            br#"{"choices":{}}"#,
            br#"{"choices":[],"usage":{"prompt_tokens":"x"}}"#,
            br#"{"choices":[],"model":7}"#,
            br#"{"choices":[] "#,
            br#"{"choices":[]} x"#,
        ] {
            assert!(
                ChunkBody::from_wire(Bytes::copy_from_slice(bad)).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
