//! [`LlmRequest`]: what every model-level service receives.

use std::{fmt, sync::Arc};

use bytes::Bytes;

use super::{chat::ChatRequest, embeddings::EmbeddingsRequest};

/// The operation a request asks for, parsed once at the edge.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Operation {
    /// `POST /v1/chat/completions`.
    Chat(Arc<ChatRequest>),
    /// `POST /v1/embeddings`.
    Embeddings(Arc<EmbeddingsRequest>),
    /// `GET /v1/models`: the model groups this caller may use.
    ListModels,
}

impl Operation {
    /// The model (group) the body asks for; empty for the model listing.
    #[must_use]
    pub fn model(&self) -> &str {
        match self {
            Self::Chat(c) => &c.model,
            Self::Embeddings(e) => &e.model,
            Self::ListModels => "",
        }
    }

    /// Whether `self` and `other` are the very same parsed body (the same allocation).
    fn same_body(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Chat(a), Self::Chat(b)) => Arc::ptr_eq(a, b),
            (Self::Embeddings(a), Self::Embeddings(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// The client's body as it came over the wire, with the parse made from it.
///
/// `parsed` is a second strong reference to the body's `Arc`. While it lives, that allocation can
/// neither be changed in place ([`Arc::make_mut`] copies a shared `Arc`, [`Arc::get_mut`] refuses)
/// nor freed and reused for another body, so "`op` is the same `Arc` as `parsed`" means "`op` is
/// still exactly the parse of `bytes`".
#[derive(Clone)]
struct RawBody {
    bytes: Bytes,
    parsed: Operation,
}

impl fmt::Debug for RawBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawBody")
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// A provider-neutral request (OpenAI shape) plus what is about the call rather than the body.
///
/// Cheap to clone: the body sits behind an `Arc`, so retries and fallbacks replay it without copying.
/// Layers that change the body use [`Arc::make_mut`] through [`LlmRequest::chat_mut`].
///
/// A request built at the edge also keeps the client's bytes ([`LlmRequest::raw_body`]), which the
/// OpenAI-format providers forward with only `model` rewritten and gateway controls removed, as long
/// as no layer changed the body. No layer has to do anything for that: see [`LlmRequest::raw_body`].
#[derive(Clone, Debug)]
pub struct LlmRequest {
    /// The parsed body.
    pub op: Operation,
    /// Call metadata: the caller's key info, cache controls, deadline, call id, …
    pub extensions: http::Extensions,
    /// The bytes `op` was parsed from, while `op` is still that parse (see [`LlmRequest::raw_body`]).
    raw: Option<RawBody>,
}

impl LlmRequest {
    /// A chat request.
    #[must_use]
    pub fn chat(body: ChatRequest) -> Self {
        Self::new(Operation::Chat(Arc::new(body)))
    }

    /// A chat request parsed from `bytes`, which are kept for the upstream body
    /// ([`LlmRequest::raw_body`]).
    ///
    /// `bytes` must be the JSON object `body` was deserialized from: the OpenAI-format providers send
    /// them (with `model` rewritten and gateway controls removed) instead of serializing `body`.
    #[must_use]
    pub fn chat_from_bytes(body: ChatRequest, bytes: Bytes) -> Self {
        Self::new(Operation::Chat(Arc::new(body))).with_raw(bytes)
    }

    /// An embeddings request.
    #[must_use]
    pub fn embeddings(body: EmbeddingsRequest) -> Self {
        Self::new(Operation::Embeddings(Arc::new(body)))
    }

    /// An embeddings request parsed from `bytes` (see [`LlmRequest::chat_from_bytes`]).
    #[must_use]
    pub fn embeddings_from_bytes(body: EmbeddingsRequest, bytes: Bytes) -> Self {
        Self::new(Operation::Embeddings(Arc::new(body))).with_raw(bytes)
    }

    /// The model listing request.
    #[must_use]
    pub fn list_models() -> Self {
        Self::new(Operation::ListModels)
    }

    /// A request for `op`, with no call metadata and no raw body.
    #[must_use]
    pub fn new(op: Operation) -> Self {
        Self {
            op,
            extensions: http::Extensions::new(),
            raw: None,
        }
    }

    /// Pairs the current body with the bytes it was parsed from.
    fn with_raw(mut self, bytes: Bytes) -> Self {
        self.raw = Some(RawBody {
            bytes,
            parsed: self.op.clone(),
        });
        self
    }

    /// The client's bytes, if this request was built from them and its body is still exactly their
    /// parse; `None` otherwise (built from a struct, or the body was changed or replaced since).
    ///
    /// Sound without any rule for layers: the request holds a second strong reference to the parsed
    /// body's `Arc`, so changing the body through [`Arc::make_mut`] directly on `op` copies it into a
    /// new allocation, and a body put in `op` is a different allocation too (the parsed one cannot be
    /// freed and reused while it is held). The bytes are returned only while `op` is that very
    /// allocation ([`Arc::ptr_eq`]), so a changed body is never paired with stale bytes.
    /// [`LlmRequest::chat_mut`] drops the bytes before it opens the body.
    #[must_use]
    pub fn raw_body(&self) -> Option<&Bytes> {
        self.raw
            .as_ref()
            .filter(|raw| raw.parsed.same_body(&self.op))
            .map(|raw| &raw.bytes)
    }

    /// The model (group) the caller asked for (empty for a model listing).
    #[must_use]
    pub fn model(&self) -> &str {
        self.op.model()
    }

    /// Whether the caller wants a stream.
    #[must_use]
    pub fn is_stream(&self) -> bool {
        match &self.op {
            Operation::Chat(c) => c.stream.unwrap_or(false),
            Operation::Embeddings(_) | Operation::ListModels => false,
        }
    }

    /// The chat body, if this is a chat request.
    #[must_use]
    pub fn as_chat(&self) -> Option<&ChatRequest> {
        match &self.op {
            Operation::Chat(c) => Some(c),
            Operation::Embeddings(_) | Operation::ListModels => None,
        }
    }

    /// The chat body for changing (copied only if shared).
    ///
    /// This gives up the client's bytes ([`LlmRequest::raw_body`]) first, so a body this request
    /// alone holds is changed in place rather than copied.
    pub fn chat_mut(&mut self) -> Option<&mut ChatRequest> {
        match &mut self.op {
            Operation::Chat(c) => {
                self.raw = None;
                Some(Arc::make_mut(c))
            }
            Operation::Embeddings(_) | Operation::ListModels => None,
        }
    }

    /// Short name of the operation, for logs and metrics.
    #[must_use]
    pub fn operation_name(&self) -> &'static str {
        match &self.op {
            Operation::Chat(_) => "chat",
            Operation::Embeddings(_) => "embeddings",
            Operation::ListModels => "list_models",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = r#"{"model":"g","messages":[]}"#;

    fn from_bytes() -> LlmRequest {
        LlmRequest::chat_from_bytes(
            serde_json::from_str(RAW).unwrap(),
            Bytes::from_static(RAW.as_bytes()),
        )
    }

    #[test]
    #[allow(clippy::redundant_clone)] // clones sharing the body are what is tested
    fn raw_body_only_while_the_body_is_the_parse() {
        let req = from_bytes();
        assert_eq!(req.raw_body().map(|b| &b[..]), Some(RAW.as_bytes()));
        assert!(req.clone().raw_body().is_some());
        assert!(LlmRequest::chat(serde_json::from_str(RAW).unwrap())
            .raw_body()
            .is_none());

        let mut opened = req.clone();
        assert!(opened.chat_mut().is_some());
        assert!(opened.raw_body().is_none());
        assert!(req.raw_body().is_some());

        let mut direct = req.clone();
        if let Operation::Chat(c) = &mut direct.op {
            Arc::make_mut(c).model = "other".to_owned();
        }
        assert!(direct.raw_body().is_none());

        // The same body put back (a clone of the op, as a fallback replaying it would) still pairs.
        let mut same = req.clone();
        same.op = req.op.clone();
        assert!(same.raw_body().is_some());
        same.op = Operation::ListModels;
        assert!(same.raw_body().is_none());

        let emb = LlmRequest::embeddings_from_bytes(
            serde_json::from_str(r#"{"model":"e","input":"x"}"#).unwrap(),
            Bytes::from_static(br#"{"model":"e","input":"x"}"#),
        );
        assert!(emb.raw_body().is_some());
    }

    #[test]
    fn chat_mut_changes_a_body_held_once_in_place() {
        let mut req = from_bytes();
        let before = match &req.op {
            Operation::Chat(c) => Arc::as_ptr(c),
            _ => unreachable!(),
        };
        req.chat_mut().unwrap().temperature = Some(0.5);
        let after = match &req.op {
            Operation::Chat(c) => Arc::as_ptr(c),
            _ => unreachable!(),
        };
        assert_eq!(
            before, after,
            "the body was copied although nothing else held it"
        );
    }

    #[test]
    fn debug_shows_the_length_not_the_bytes() {
        let s = format!("{:?}", from_bytes());
        assert!(s.contains("len: 27"), "{s}");
        assert!(!s.contains(r#"{"model":"g""#), "{s}");
    }
}
