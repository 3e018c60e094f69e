//! [`LlmResponse`]: what every model-level service answers.

use std::{fmt, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderMap, StatusCode};

use super::{
    chat::{ChatChunk, ChatResponse, Usage},
    embeddings::EmbeddingsResponse,
    models::ModelList,
    scan,
};
use crate::error::{ErrorKind, LlmError};

/// A stream of chat chunks: the one sanctioned box on the response path.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChunkBody, LlmError>> + Send + 'static>>;

/// A complete answer or a stream.
///
/// Complete bodies are kept inline: a response is moved a handful of times, never copied per chunk.
#[non_exhaustive]
#[allow(clippy::large_enum_variant)]
pub enum ResponseBody {
    /// A complete chat completion (typed, or the provider's OpenAI-format bytes).
    Chat(ChatBody),
    /// A complete embeddings response.
    Embeddings(EmbeddingsResponse),
    /// A chat completion as a stream of chunks.
    Stream(ChatStream),
    /// The model list.
    Models(ModelList),
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Chat(c) => f.debug_tuple("Chat").field(c).finish(),
            Self::Embeddings(e) => f.debug_tuple("Embeddings").field(e).finish(),
            Self::Stream(_) => f.write_str("Stream(..)"),
            Self::Models(m) => f.debug_tuple("Models").field(m).finish(),
        }
    }
}

/// What is known about the call that produced a response.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ResponseMeta {
    /// The model group the client asked for.
    pub model_group: Option<Arc<str>>,
    /// The id of the deployment that answered.
    pub deployment_id: Option<Arc<str>>,
    /// The provider prefix (`openai`, `anthropic`, …).
    pub provider: Option<Arc<str>>,
    /// The upstream base URL (without credentials).
    pub api_base: Option<Arc<str>>,
    /// Usage, when known before the body is read (complete responses).
    pub usage: Option<Usage>,
    /// Cost in USD, once a cost layer computed it.
    pub cost: Option<f64>,
    /// Whether the answer came from the cache.
    pub cache_hit: bool,
    /// Provider headers worth forwarding (`x-request-id`, `x-ratelimit-*`).
    pub headers: HeaderMap,
    /// Time until the provider's response headers (or first chunk) arrived.
    pub time_to_first_byte: Option<Duration>,
    /// Retries spent before this answer.
    pub attempted_retries: u32,
    /// Fallbacks spent before this answer.
    pub attempted_fallbacks: u32,
}

/// A model-level response: the body plus [`ResponseMeta`].
#[derive(Debug)]
pub struct LlmResponse {
    /// The answer.
    pub body: ResponseBody,
    /// About the call.
    pub meta: ResponseMeta,
}

impl LlmResponse {
    /// A complete chat response.
    #[must_use]
    pub fn chat(body: ChatResponse) -> Self {
        Self {
            body: ResponseBody::Chat(ChatBody::from(body)),
            meta: ResponseMeta::default(),
        }
    }

    /// A complete chat response kept as the provider's OpenAI-format bytes (see [`ChatBody::from_wire`]).
    pub fn chat_wire(bytes: Bytes) -> Result<Self, LlmError> {
        Ok(Self {
            body: ResponseBody::Chat(ChatBody::from_wire(bytes)?),
            meta: ResponseMeta::default(),
        })
    }

    /// An embeddings response.
    #[must_use]
    pub fn embeddings(body: EmbeddingsResponse) -> Self {
        Self {
            body: ResponseBody::Embeddings(body),
            meta: ResponseMeta::default(),
        }
    }

    /// A streamed chat response.
    #[must_use]
    pub fn stream(stream: ChatStream) -> Self {
        Self {
            body: ResponseBody::Stream(stream),
            meta: ResponseMeta::default(),
        }
    }
}

/// A complete chat completion: typed, or the bytes of an answer already in OpenAI's wire format
/// (OpenAI, Azure, the OpenAI-compatible hosts) of which only `model` and `usage` were read.
///
/// Most requests need nothing else from an answer: the cost layer reads `model` and `usage`, the
/// edge sends the provider's bytes as they came. Building the typed [`ChatResponse`] (every choice,
/// message and unknown key) is left to the layers that ask for it ([`ChatBody::typed`]): the cache
/// when it stores an entry, the library client. A layer that changes the answer uses
/// [`ChatBody::typed_mut`], which drops the provider's bytes, so changed content is never paired
/// with stale bytes.
#[derive(Clone)]
pub struct ChatBody(Repr);

#[derive(Clone)]
enum Repr {
    Typed(Box<ChatResponse>),
    Wire(Box<Wire>),
}

#[derive(Clone)]
struct Wire {
    bytes: Bytes,
    model: Option<String>,
    usage: Option<Usage>,
    /// The typed answer, once a layer asked for it (the same JSON as `bytes`).
    typed: Option<ChatResponse>,
}

/// What is read from a wire answer or chunk up front.
#[derive(Default)]
struct Summary {
    model: Option<String>,
    usage: Option<Usage>,
    /// `None` when there is no `choices` list.
    choices: Option<u32>,
    /// Whether any choice has a non-null `finish_reason`.
    finished: bool,
}

/// Reads `model`, `usage` and the choices (count, finish reasons) of an OpenAI-format answer or
/// chunk with a structural scan (see [`super::scan`]); the two values read are parsed by serde.
/// Members are matched by their raw key text: a key written with escapes is not one of these
/// names as far as the scan goes, and is relayed like any other member.
fn summarize(bytes: &[u8]) -> Result<Summary, String> {
    let mut summary = Summary::default();
    let mut error: Option<String> = None;
    let end = scan::for_each_member(bytes, 0, |m| {
        let value = &bytes[m.value.clone()];
        match m.key {
            b"model" if value != b"null" => match serde_json::from_slice(value) {
                Ok(model) => summary.model = Some(model),
                Err(e) => error = Some(format!("model: {e}")),
            },
            b"usage" if value != b"null" => match serde_json::from_slice(value) {
                Ok(usage) => summary.usage = Some(usage),
                Err(e) => error = Some(format!("usage: {e}")),
            },
            b"choices" => {
                let mut count = 0_u32;
                let mut finished = false;
                let mut objects = true;
                let listed = scan::for_each_element(bytes, m.value.start, |choice| {
                    count = count.saturating_add(1);
                    let seen = scan::for_each_member(bytes, choice.start, |c| {
                        if c.key == b"finish_reason" && &bytes[c.value] != b"null" {
                            finished = true;
                        }
                    });
                    objects &= seen.is_some();
                });
                if listed.is_some() && objects {
                    summary.choices = Some(count);
                    summary.finished = finished;
                } else {
                    error = Some("choices is not a list of objects".to_owned());
                }
            }
            _ => {}
        }
    });
    if let Some(e) = error {
        return Err(e);
    }
    match end {
        Some(end) if scan::only_ws_after(bytes, end) => {}
        _ => return Err("not a JSON object".to_owned()),
    }
    if summary.choices.is_none() {
        return Err("no choices list".to_owned());
    }
    Ok(summary)
}

impl ChatBody {
    /// The provider's OpenAI-format answer, kept as bytes: UTF-8 and the JSON structure are checked
    /// (`choices` a list of objects), `model` and `usage` are parsed; everything else is parsed only
    /// on demand.
    ///
    /// # Errors
    /// When the bytes are not a chat completion (a `502`).
    pub fn from_wire(bytes: Bytes) -> Result<Self, LlmError> {
        if let Err(e) = std::str::from_utf8(&bytes) {
            return Err(invalid_answer(&e));
        }
        let summary = summarize(&bytes).map_err(|e| invalid_answer(&e))?;
        Ok(Self(Repr::Wire(Box::new(Wire {
            bytes,
            model: summary.model,
            usage: summary.usage,
            typed: None,
        }))))
    }

    /// The model that answered, as the answer says.
    #[must_use]
    pub fn model(&self) -> Option<&str> {
        match &self.0 {
            Repr::Typed(c) => c.model.as_deref(),
            Repr::Wire(w) => w.model.as_deref(),
        }
    }

    /// The answer's token usage.
    #[must_use]
    pub fn usage(&self) -> Option<&Usage> {
        match &self.0 {
            Repr::Typed(c) => c.usage.as_ref(),
            Repr::Wire(w) => w.usage.as_ref(),
        }
    }

    /// The provider's own bytes, when the answer is in OpenAI's wire format and unchanged.
    #[must_use]
    pub fn wire(&self) -> Option<&Bytes> {
        match &self.0 {
            Repr::Typed(_) => None,
            Repr::Wire(w) => Some(&w.bytes),
        }
    }

    /// The typed answer, parsed from the provider's bytes on first use (which are kept).
    ///
    /// # Errors
    /// When the provider's bytes are not a chat completion (a `502`, as a failed decode).
    pub fn typed(&mut self) -> Result<&ChatResponse, LlmError> {
        match &mut self.0 {
            Repr::Typed(c) => Ok(c),
            Repr::Wire(w) => {
                if w.typed.is_none() {
                    w.typed = Some(parse_wire(&w.bytes)?);
                }
                match &w.typed {
                    Some(c) => Ok(c),
                    None => Err(invalid_answer(&"no answer")),
                }
            }
        }
    }

    /// The typed answer for changing; the provider's bytes are dropped (the edge then serializes
    /// the changed answer).
    ///
    /// # Errors
    /// As [`ChatBody::typed`].
    pub fn typed_mut(&mut self) -> Result<&mut ChatResponse, LlmError> {
        if let Repr::Wire(w) = &mut self.0 {
            let typed = match w.typed.take() {
                Some(c) => c,
                None => parse_wire(&w.bytes)?,
            };
            self.0 = Repr::Typed(Box::new(typed));
        }
        match &mut self.0 {
            Repr::Typed(c) => Ok(c),
            Repr::Wire(_) => Err(invalid_answer(&"no answer")),
        }
    }

    /// The typed answer, by value.
    ///
    /// # Errors
    /// As [`ChatBody::typed`].
    pub fn into_typed(self) -> Result<ChatResponse, LlmError> {
        match self.0 {
            Repr::Typed(c) => Ok(*c),
            Repr::Wire(w) => match w.typed {
                Some(c) => Ok(c),
                None => parse_wire(&w.bytes),
            },
        }
    }

    /// The answer as JSON bytes: the provider's own when unchanged, else the typed answer
    /// serialized.
    ///
    /// # Errors
    /// When serializing the typed answer fails.
    pub fn to_bytes(&self) -> Result<Bytes, LlmError> {
        match &self.0 {
            Repr::Wire(w) => Ok(w.bytes.clone()),
            Repr::Typed(c) => serde_json::to_vec(&**c)
                .map(Bytes::from)
                .map_err(|e| LlmError::internal(format!("cannot encode the chat completion: {e}"))),
        }
    }
}

impl From<ChatResponse> for ChatBody {
    fn from(c: ChatResponse) -> Self {
        Self(Repr::Typed(Box::new(c)))
    }
}

impl fmt::Debug for ChatBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Typed(c) => f.debug_tuple("ChatBody").field(c).finish(),
            Repr::Wire(w) => f
                .debug_struct("ChatBody")
                .field("wire_bytes", &w.bytes.len())
                .field("model", &w.model)
                .field("usage", &w.usage)
                .finish_non_exhaustive(),
        }
    }
}

/// One chunk of a chat stream: typed, or the `data:` payload of a provider's OpenAI-format
/// server-sent event, of which only `model`, `usage` and the choices' count and finish reasons
/// were read.
///
/// As with [`ChatBody`], layers read what they need ([`ChunkBody::usage`], …) and the edge sends a
/// wire chunk's bytes as they came; [`ChunkBody::typed`] parses on demand (the cache, which
/// assembles the answer) and [`ChunkBody::typed_mut`] drops the bytes of a chunk that changes.
#[derive(Clone)]
pub struct ChunkBody(ChunkRepr);

#[derive(Clone)]
enum ChunkRepr {
    Typed(Box<ChatChunk>),
    Wire(Box<WireChunk>),
}

#[derive(Clone)]
struct WireChunk {
    bytes: Bytes,
    model: Option<String>,
    usage: Option<Usage>,
    choices: u32,
    finished: bool,
    typed: Option<ChatChunk>,
}

impl ChunkBody {
    /// A provider's OpenAI-format chunk (the JSON of one `data:` event), kept as bytes.
    ///
    /// The JSON structure is checked and the members read are parsed (see [`ChatBody::from_wire`]);
    /// the bytes are already text (they come from a decoded event).
    ///
    /// # Errors
    /// What is wrong, when the payload is not a chat chunk (not an object, no `choices` list): the
    /// caller decides (an OpenAI stream's mid-stream error object is such a payload).
    pub fn from_wire(bytes: Bytes) -> Result<Self, String> {
        let summary = summarize(&bytes)?;
        Ok(Self(ChunkRepr::Wire(Box::new(WireChunk {
            bytes,
            model: summary.model,
            usage: summary.usage,
            choices: summary.choices.unwrap_or(0),
            finished: summary.finished,
            typed: None,
        }))))
    }

    /// The model that answered, as the chunk says.
    #[must_use]
    pub fn model(&self) -> Option<&str> {
        match &self.0 {
            ChunkRepr::Typed(c) => c.model.as_deref(),
            ChunkRepr::Wire(w) => w.model.as_deref(),
        }
    }

    /// The chunk's usage (the last chunk, with `stream_options.include_usage`).
    #[must_use]
    pub fn usage(&self) -> Option<&Usage> {
        match &self.0 {
            ChunkRepr::Typed(c) => c.usage.as_ref(),
            ChunkRepr::Wire(w) => w.usage.as_ref(),
        }
    }

    /// Whether the chunk has any choice (the usage-only chunk has none).
    #[must_use]
    pub fn has_choices(&self) -> bool {
        match &self.0 {
            ChunkRepr::Typed(c) => !c.choices.is_empty(),
            ChunkRepr::Wire(w) => w.choices > 0,
        }
    }

    /// Whether any choice of the chunk carries a finish reason.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        match &self.0 {
            ChunkRepr::Typed(c) => c.choices.iter().any(|c| c.finish_reason.is_some()),
            ChunkRepr::Wire(w) => w.finished,
        }
    }

    /// The provider's own bytes, when the chunk is in OpenAI's wire format and unchanged.
    #[must_use]
    pub fn wire(&self) -> Option<&Bytes> {
        match &self.0 {
            ChunkRepr::Typed(_) => None,
            ChunkRepr::Wire(w) => Some(&w.bytes),
        }
    }

    /// The typed chunk, parsed from the provider's bytes on first use (which are kept).
    ///
    /// # Errors
    /// When the provider's bytes are not a chat chunk (`502`).
    pub fn typed(&mut self) -> Result<&ChatChunk, LlmError> {
        match &mut self.0 {
            ChunkRepr::Typed(c) => Ok(c),
            ChunkRepr::Wire(w) => {
                if w.typed.is_none() {
                    w.typed = Some(parse_chunk(&w.bytes)?);
                }
                match &w.typed {
                    Some(c) => Ok(c),
                    None => Err(invalid_chunk(&"no chunk")),
                }
            }
        }
    }

    /// The typed chunk for changing; the provider's bytes are dropped.
    ///
    /// # Errors
    /// As [`ChunkBody::typed`].
    pub fn typed_mut(&mut self) -> Result<&mut ChatChunk, LlmError> {
        if let ChunkRepr::Wire(w) = &mut self.0 {
            let typed = match w.typed.take() {
                Some(c) => c,
                None => parse_chunk(&w.bytes)?,
            };
            self.0 = ChunkRepr::Typed(Box::new(typed));
        }
        match &mut self.0 {
            ChunkRepr::Typed(c) => Ok(c),
            ChunkRepr::Wire(_) => Err(invalid_chunk(&"no chunk")),
        }
    }

    /// The typed chunk, by value.
    ///
    /// # Errors
    /// As [`ChunkBody::typed`].
    pub fn into_typed(self) -> Result<ChatChunk, LlmError> {
        match self.0 {
            ChunkRepr::Typed(c) => Ok(*c),
            ChunkRepr::Wire(w) => match w.typed {
                Some(c) => Ok(c),
                None => parse_chunk(&w.bytes),
            },
        }
    }

    /// Appends the chunk's JSON to `buf`: the provider's bytes when unchanged, else the typed
    /// chunk serialized.
    pub fn write_json(&self, buf: &mut bytes::BytesMut) {
        match &self.0 {
            ChunkRepr::Wire(w) => buf.extend_from_slice(&w.bytes),
            ChunkRepr::Typed(c) => {
                use bytes::BufMut as _;
                // Serializing a wire type into memory cannot fail.
                let _ = serde_json::to_writer(buf.writer(), &**c);
            }
        }
    }
}

/// Serializes the chunk as JSON (a wire chunk through its typed form; the edge writes a wire
/// chunk's own bytes with [`ChunkBody::write_json`] instead).
impl serde::Serialize for ChunkBody {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            ChunkRepr::Typed(c) => c.serialize(serializer),
            ChunkRepr::Wire(w) => match &w.typed {
                Some(c) => c.serialize(serializer),
                None => parse_chunk(&w.bytes)
                    .map_err(serde::ser::Error::custom)?
                    .serialize(serializer),
            },
        }
    }
}

impl From<ChatChunk> for ChunkBody {
    fn from(c: ChatChunk) -> Self {
        Self(ChunkRepr::Typed(Box::new(c)))
    }
}

impl fmt::Debug for ChunkBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ChunkRepr::Typed(c) => f.debug_tuple("ChunkBody").field(c).finish(),
            ChunkRepr::Wire(w) => f
                .debug_struct("ChunkBody")
                .field("wire_bytes", &w.bytes.len())
                .field("usage", &w.usage)
                .field("choices", &w.choices)
                .field("finished", &w.finished)
                .finish_non_exhaustive(),
        }
    }
}

fn parse_chunk(bytes: &[u8]) -> Result<ChatChunk, LlmError> {
    serde_json::from_slice(bytes).map_err(|e| invalid_chunk(&e))
}

fn invalid_chunk(e: &dyn fmt::Display) -> LlmError {
    LlmError::new(
        ErrorKind::InternalServer,
        format!("the provider sent an invalid stream chunk: {e}"),
    )
    .with_status(StatusCode::BAD_GATEWAY)
}

fn parse_wire(bytes: &[u8]) -> Result<ChatResponse, LlmError> {
    serde_json::from_slice(bytes).map_err(|e| invalid_answer(&e))
}

/// The error for a provider body that is not a chat completion (as a failed decode: `502`).
fn invalid_answer(e: &dyn fmt::Display) -> LlmError {
    LlmError::new(
        ErrorKind::InternalServer,
        format!("the provider returned an invalid chat completion: {e}"),
    )
    .with_status(StatusCode::BAD_GATEWAY)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ANSWER: &[u8] = br#"{"id":"c1","choices":[{"index":0,"message":{"role":"assistant","content":"hi","x_new":[1.50]},"finish_reason":"stop"}],"model":"gpt-4o-2024","usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"x_u":true},"x_top":{"a":null}}"#;

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
