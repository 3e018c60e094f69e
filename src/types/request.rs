//! [`LlmRequest`]: what every model-level service receives.

use std::{borrow::Cow, fmt, sync::Arc};

use bytes::Bytes;

use super::{
    chat::ChatRequest,
    completions::CompletionsRequest,
    controls::{GatewayControls, NO_CONTROLS},
    embeddings::EmbeddingsRequest,
    media::{ImagesRequest, SpeechRequest, UploadRequest},
    messages::MessagesRequest,
    moderations::ModerationsRequest,
    passthrough::PassThroughRequest,
    rerank::RerankRequest,
    responses::{ResponseObjectRequest, ResponsesRequest},
    wire::Extra,
};

/// What kind of operation a request is, without its body: what providers declare support for
/// ([`Provider::supports`](crate::provider::Provider::supports)), and what logs, metrics and the
/// policy layers branch on.
///
/// Adding an operation (completions, responses, messages, images, audio, moderations, rerank,
/// pass-through) is one variant here and in [`Operation`], its facts in the methods below and in
/// [`Operation`]'s, and its support in the providers that have it: the layers read only these
/// facts, never the variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OperationKind {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `GET /v1/models`.
    ListModels,
    /// Any method on `/{provider}/{path}`: relayed to the provider's own API.
    PassThrough,
    /// `POST /v1/completions` (legacy text completion).
    Completions,
    /// `POST /v1/moderations`.
    Moderations,
    /// `POST /v1/messages` (Anthropic's Messages API).
    Messages,
    /// `POST /v1/messages/count_tokens` (Anthropic's token count).
    MessagesCountTokens,
    /// `POST /v1/responses`: OpenAI's Responses API.
    Responses,
    /// `POST /v1/images/generations`.
    ImageGenerations,
    /// `POST /v1/images/edits` (multipart).
    ImageEdits,
    /// `POST /v1/audio/transcriptions` (multipart).
    AudioTranscriptions,
    /// `POST /v1/audio/translations` (multipart).
    AudioTranslations,
    /// `POST /v1/audio/speech`: audio bytes streamed back.
    AudioSpeech,
    /// `POST /v1/rerank` (Cohere's rerank format).
    Rerank,
    /// `GET` / `DELETE /v1/responses/{id}`, its `input_items` and `cancel`, on a response an
    /// OpenAI or Azure deployment made.
    ResponseObject,
}

impl OperationKind {
    /// Every kind.
    pub const ALL: [Self; 16] = [
        Self::Chat,
        Self::Embeddings,
        Self::ListModels,
        Self::PassThrough,
        Self::Completions,
        Self::Moderations,
        Self::Messages,
        Self::MessagesCountTokens,
        Self::Responses,
        Self::ImageGenerations,
        Self::ImageEdits,
        Self::AudioTranscriptions,
        Self::AudioTranslations,
        Self::AudioSpeech,
        Self::Rerank,
        Self::ResponseObject,
    ];

    /// Short name, for logs, metrics and error messages (`chat`, `embeddings`, `list_models`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Embeddings => "embeddings",
            Self::ListModels => "list_models",
            Self::PassThrough => "pass_through",
            Self::Completions => "completions",
            Self::Moderations => "moderations",
            Self::Messages => "messages",
            Self::MessagesCountTokens => "messages_count_tokens",
            Self::Responses => "responses",
            Self::ImageGenerations => "image_generations",
            Self::ImageEdits => "image_edits",
            Self::AudioTranscriptions => "audio_transcriptions",
            Self::AudioTranslations => "audio_translations",
            Self::AudioSpeech => "audio_speech",
            Self::Rerank => "rerank",
            Self::ResponseObject => "response_object",
        }
    }

    /// Whether the operation calls a model: it names a model group, is routed to a deployment,
    /// uses tokens and costs money, so keys' model access, rate limits, budgets and spend apply.
    /// `false` for the gateway's own answers (the model listing).
    #[must_use]
    pub const fn calls_a_model(self) -> bool {
        !matches!(self, Self::ListModels)
    }

    /// Whether an answer may be served from the response cache (given the cache is on for it).
    #[must_use]
    pub const fn is_cacheable(self) -> bool {
        matches!(self, Self::Chat | Self::Embeddings)
    }

    /// Whether a streamed answer of this operation is a stream of chat chunks
    /// ([`ResponseBody::Stream`](super::ResponseBody::Stream)); otherwise it streams events in
    /// its own dialect ([`ResponseBody::Events`](super::ResponseBody::Events)), which a provider
    /// decodes with [`Provider::decode_events`](crate::provider::Provider::decode_events).
    #[must_use]
    pub const fn streams_chunks(self) -> bool {
        matches!(self, Self::Chat | Self::Embeddings | Self::ListModels)
    }

    /// Whether the operation may be sent again after a failure (retries, fallbacks): it changes
    /// nothing upstream, so a second attempt cannot do something twice.
    #[must_use]
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Chat
                | Self::Embeddings
                | Self::Completions
                | Self::Moderations
                | Self::Messages
                | Self::MessagesCountTokens
                | Self::Responses
                | Self::ImageGenerations
                | Self::ImageEdits
                | Self::AudioTranscriptions
                | Self::AudioTranslations
                | Self::AudioSpeech
                | Self::Rerank
        )
    }
}

impl std::fmt::Display for OperationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operation a request asks for, parsed once at the edge.
///
/// Layers do not match on the variants: they read the operation-neutral facts (its
/// [`kind`](Operation::kind), [`model`](Operation::model), whether it streams, its gateway
/// controls, an estimate of its input tokens) so that an operation added later passes through
/// every layer unchanged. Only the translations (providers), the edge, and the cache's key
/// (which hashes the body) open the body itself.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Operation {
    /// `POST /v1/chat/completions`.
    Chat(Arc<ChatRequest>),
    /// `POST /v1/embeddings`.
    Embeddings(Arc<EmbeddingsRequest>),
    /// `GET /v1/models`: the model groups this caller may use.
    ListModels,
    /// A provider pass-through (`/{provider}/{path}`), relayed as it is.
    PassThrough(Arc<PassThroughRequest>),
    /// `POST /v1/completions`.
    Completions(Arc<CompletionsRequest>),
    /// `POST /v1/moderations`.
    Moderations(Arc<ModerationsRequest>),
    /// `POST /v1/messages`.
    Messages(Arc<MessagesRequest>),
    /// `POST /v1/messages/count_tokens`.
    MessagesCountTokens(Arc<MessagesRequest>),
    /// `POST /v1/responses`.
    Responses(Arc<ResponsesRequest>),
    /// `POST /v1/images/generations`.
    ImageGenerations(Arc<ImagesRequest>),
    /// A multipart upload: `POST /v1/images/edits`, `/v1/audio/transcriptions` or
    /// `/v1/audio/translations` (its [`UploadRequest::kind`]).
    Upload(Arc<UploadRequest>),
    /// `POST /v1/audio/speech`.
    AudioSpeech(Arc<SpeechRequest>),
    /// `POST /v1/rerank`.
    Rerank(Arc<RerankRequest>),
    /// A call on a stored response an OpenAI or Azure deployment made.
    ResponseObject(Arc<ResponseObjectRequest>),
}

impl Operation {
    /// What kind of operation this is.
    #[must_use]
    pub fn kind(&self) -> OperationKind {
        match self {
            Self::Chat(_) => OperationKind::Chat,
            Self::Embeddings(_) => OperationKind::Embeddings,
            Self::ListModels => OperationKind::ListModels,
            Self::PassThrough(_) => OperationKind::PassThrough,
            Self::Completions(_) => OperationKind::Completions,
            Self::Moderations(_) => OperationKind::Moderations,
            Self::Messages(_) => OperationKind::Messages,
            Self::MessagesCountTokens(_) => OperationKind::MessagesCountTokens,
            Self::Responses(_) => OperationKind::Responses,
            Self::ImageGenerations(_) => OperationKind::ImageGenerations,
            Self::Upload(u) => u.kind,
            Self::AudioSpeech(_) => OperationKind::AudioSpeech,
            Self::Rerank(_) => OperationKind::Rerank,
            Self::ResponseObject(_) => OperationKind::ResponseObject,
        }
    }

    /// The model (group) the body asks for; empty for the model listing.
    #[must_use]
    pub fn model(&self) -> &str {
        match self {
            Self::Chat(c) => &c.model,
            Self::Embeddings(e) => &e.model,
            Self::Completions(c) => &c.model,
            Self::Moderations(m) => m.model_name(),
            Self::Messages(m) | Self::MessagesCountTokens(m) => &m.model,
            Self::ListModels => "",
            Self::PassThrough(p) => &p.group,
            Self::Responses(r) => &r.model,
            Self::ImageGenerations(i) => &i.model,
            Self::Upload(u) => &u.model,
            Self::AudioSpeech(s) => &s.model,
            Self::Rerank(r) => &r.model,
            Self::ResponseObject(r) => &r.model,
        }
    }

    /// Names another model (group): what a fallback or a wildcard route sends. Copies the body
    /// only if it is shared.
    pub fn set_model(&mut self, model: &str) {
        match self {
            Self::Chat(c) => model.clone_into(&mut Arc::make_mut(c).model),
            Self::Embeddings(e) => model.clone_into(&mut Arc::make_mut(e).model),
            Self::Completions(c) => model.clone_into(&mut Arc::make_mut(c).model),
            Self::Moderations(m) => Arc::make_mut(m).model = Some(model.to_owned()),
            Self::Messages(m) | Self::MessagesCountTokens(m) => {
                model.clone_into(&mut Arc::make_mut(m).model);
            }
            Self::ListModels => {}
            Self::PassThrough(p) => model.clone_into(&mut Arc::make_mut(p).group),
            Self::Responses(r) => model.clone_into(&mut Arc::make_mut(r).model),
            Self::ImageGenerations(i) => model.clone_into(&mut Arc::make_mut(i).model),
            Self::Upload(u) => model.clone_into(&mut Arc::make_mut(u).model),
            Self::AudioSpeech(s) => model.clone_into(&mut Arc::make_mut(s).model),
            Self::Rerank(r) => model.clone_into(&mut Arc::make_mut(r).model),
            Self::ResponseObject(r) => model.clone_into(&mut Arc::make_mut(r).model),
        }
    }

    /// Whether the caller wants the answer as a stream.
    #[must_use]
    pub fn is_stream(&self) -> bool {
        match self {
            Self::Chat(c) => c.stream.unwrap_or(false),
            Self::Embeddings(_)
            | Self::ListModels
            | Self::Moderations(_)
            | Self::Rerank(_)
            | Self::ResponseObject(_)
            | Self::MessagesCountTokens(_) => false,
            Self::PassThrough(p) => p.looks_streamed(),
            Self::Completions(c) => c.stream.unwrap_or(false),
            Self::Messages(m) => m.stream.unwrap_or(false),
            Self::Responses(r) => r.stream.unwrap_or(false),
            // Speech is streamed back as the provider sends it; the others are complete answers.
            Self::AudioSpeech(_) => true,
            Self::ImageGenerations(_) | Self::Upload(_) => false,
        }
    }

    /// The body's keys that are not typed fields (where the gateway controls are), if it has a
    /// body.
    #[must_use]
    pub fn extra(&self) -> Option<&Extra> {
        match self {
            Self::Chat(c) => Some(&c.extra),
            Self::Embeddings(e) => Some(&e.extra),
            Self::ListModels | Self::PassThrough(_) | Self::ResponseObject(_) => None,
            Self::Completions(c) => Some(&c.extra),
            Self::Moderations(m) => Some(&m.extra),
            Self::Messages(m) | Self::MessagesCountTokens(m) => Some(&m.extra),
            Self::Responses(r) => Some(&r.extra),
            Self::ImageGenerations(i) => Some(&i.extra),
            Self::AudioSpeech(s) => Some(&s.extra),
            Self::Upload(_) => None,
            Self::Rerank(r) => Some(&r.extra),
        }
    }

    /// The body's `mock_response`, if it asks for a canned answer (a test request: see
    /// [`crate::health::is_test_request`]).
    #[must_use]
    pub fn mock_response(&self) -> Option<&serde_json::Value> {
        match self {
            Self::Chat(c) => c.mock_response.as_ref().filter(|v| !v.is_null()),
            Self::Embeddings(_)
            | Self::ListModels
            | Self::Messages(_)
            | Self::MessagesCountTokens(_)
            | Self::PassThrough(_)
            | Self::Moderations(_)
            | Self::Responses(_)
            | Self::ImageGenerations(_)
            | Self::Upload(_)
            | Self::AudioSpeech(_)
            | Self::Rerank(_)
            | Self::ResponseObject(_) => None,
            Self::Completions(c) => c.mock_response.as_ref().filter(|v| !v.is_null()),
        }
    }

    /// A cheap estimate of the input tokens (about four bytes a token), for usage-based routing and
    /// for pricing a call cut short before the provider reported usage.
    #[must_use]
    pub fn estimate_input_tokens(&self) -> u64 {
        match self {
            Self::Chat(c) => super::chat::estimate_prompt_tokens(&c.messages),
            Self::Embeddings(e) => e.input.estimate_tokens(),
            Self::Completions(c) => c.prompt.estimate_tokens(),
            Self::Moderations(m) => m.estimate_tokens(),
            Self::Messages(m) | Self::MessagesCountTokens(m) => m.estimate_input_tokens(),
            Self::ListModels | Self::ResponseObject(_) => 0,
            Self::PassThrough(p) => p.estimate_input_tokens(),
            Self::Responses(r) => r.estimate_input_tokens(),
            Self::ImageGenerations(i) => i.estimate_tokens(),
            Self::Upload(u) => u.estimate_tokens(),
            Self::AudioSpeech(s) => s.estimate_tokens(),
            Self::Rerank(r) => r.estimate_tokens(),
        }
    }

    /// The end user the call is made for, as LiteLLM reads it from the body: the `user` field
    /// (OpenAI), else `litellm_metadata.user`, else `metadata.user_id` (Anthropic's). `None`
    /// when the body names none (an empty string names none). For per-end-user limits
    /// ([`PerEndUser`](crate::rate_limit::PerEndUser)) and spend attribution.
    #[must_use]
    pub fn end_user(&self) -> Option<Cow<'_, str>> {
        let (user, metadata, extra) = match self {
            Self::Chat(c) => (c.user.as_deref(), c.metadata.as_ref(), &c.extra),
            Self::Embeddings(e) => (e.user.as_deref(), e.metadata.as_ref(), &e.extra),
            // A pass-through body is the provider's own, read by no layer.
            Self::ListModels | Self::PassThrough(_) | Self::ResponseObject(_) => return None,
            Self::Completions(c) => (c.user.as_deref(), c.metadata.as_ref(), &c.extra),
            Self::Moderations(m) => (None, m.metadata.as_ref(), &m.extra),
            Self::Rerank(r) => (None, r.metadata.as_ref(), &r.extra),
            // Anthropic's `metadata.user_id` is in the kept keys.
            Self::Responses(r) => (r.user.as_deref(), None, &r.extra),
            Self::ImageGenerations(i) => (i.user.as_deref(), i.metadata.as_ref(), &i.extra),
            Self::AudioSpeech(s) => (s.user.as_deref(), s.metadata.as_ref(), &s.extra),
            Self::Upload(_) => return None,
            Self::Messages(m) | Self::MessagesCountTokens(m) => {
                let meta = m.extra.get_as::<serde_json::Value>("metadata");
                let id = meta
                    .as_ref()
                    .and_then(|v| v.get("user_id"))
                    .and_then(serde_json::Value::as_str)
                    .filter(|u| !u.is_empty());
                if let Some(id) = id {
                    return Some(Cow::Owned(id.to_owned()));
                }
                (None, None, &m.extra)
            }
        };
        if let Some(u) = user.filter(|u| !u.is_empty()) {
            return Some(Cow::Borrowed(u));
        }
        let named = |v: &serde_json::Value, key: &str| -> Option<String> {
            match v.get(key)? {
                serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        extra
            .get_as::<serde_json::Value>("litellm_metadata")
            .and_then(|m| named(&m, "user"))
            .or_else(|| metadata.and_then(|m| named(m, "user_id")))
            .map(Cow::Owned)
    }

    /// Whether `self` and `other` are the very same parsed body (the same allocation).
    fn same_body(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Chat(a), Self::Chat(b)) => Arc::ptr_eq(a, b),
            (Self::Embeddings(a), Self::Embeddings(b)) => Arc::ptr_eq(a, b),
            (Self::PassThrough(a), Self::PassThrough(b)) => Arc::ptr_eq(a, b),
            (Self::Completions(a), Self::Completions(b)) => Arc::ptr_eq(a, b),
            (Self::Moderations(a), Self::Moderations(b)) => Arc::ptr_eq(a, b),
            (Self::Messages(a), Self::Messages(b))
            | (Self::MessagesCountTokens(a), Self::MessagesCountTokens(b)) => Arc::ptr_eq(a, b),
            (Self::Responses(a), Self::Responses(b)) => Arc::ptr_eq(a, b),
            (Self::ImageGenerations(a), Self::ImageGenerations(b)) => Arc::ptr_eq(a, b),
            (Self::Upload(a), Self::Upload(b)) => Arc::ptr_eq(a, b),
            (Self::AudioSpeech(a), Self::AudioSpeech(b)) => Arc::ptr_eq(a, b),
            (Self::Rerank(a), Self::Rerank(b)) => Arc::ptr_eq(a, b),
            (Self::ResponseObject(a), Self::ResponseObject(b)) => Arc::ptr_eq(a, b),
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
    /// The typed gateway controls, once parsed (see [`LlmRequest::controls`]).
    controls: Controls,
}

/// Where a request's gateway controls stand.
#[derive(Clone, Debug, Default)]
enum Controls {
    /// Not parsed yet (a request a library user built): [`LlmRequest::controls`] reads the body.
    #[default]
    Unparsed,
    /// Parsed: the request sent none.
    None,
    /// Parsed.
    Some(Arc<GatewayControls>),
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

    /// A text-completion request parsed from `bytes` (see [`LlmRequest::chat_from_bytes`]).
    #[must_use]
    pub fn completions_from_bytes(body: CompletionsRequest, bytes: Bytes) -> Self {
        Self::new(Operation::Completions(Arc::new(body))).with_raw(bytes)
    }

    /// A moderation request parsed from `bytes` (see [`LlmRequest::chat_from_bytes`]).
    #[must_use]
    pub fn moderations_from_bytes(body: ModerationsRequest, bytes: Bytes) -> Self {
        Self::new(Operation::Moderations(Arc::new(body))).with_raw(bytes)
    }

    /// An image-generation request parsed from `bytes` (see [`LlmRequest::chat_from_bytes`]).
    #[must_use]
    pub fn image_generations_from_bytes(body: ImagesRequest, bytes: Bytes) -> Self {
        Self::new(Operation::ImageGenerations(Arc::new(body))).with_raw(bytes)
    }

    /// A speech request parsed from `bytes` (see [`LlmRequest::chat_from_bytes`]).
    #[must_use]
    pub fn speech_from_bytes(body: SpeechRequest, bytes: Bytes) -> Self {
        Self::new(Operation::AudioSpeech(Arc::new(body))).with_raw(bytes)
    }

    /// A multipart upload (image edit, transcription, translation).
    #[must_use]
    pub fn upload(body: UploadRequest) -> Self {
        Self::new(Operation::Upload(Arc::new(body)))
    }

    /// A rerank request parsed from `bytes` (see [`LlmRequest::chat_from_bytes`]).
    #[must_use]
    pub fn rerank_from_bytes(body: RerankRequest, bytes: Bytes) -> Self {
        Self::new(Operation::Rerank(Arc::new(body))).with_raw(bytes)
    }

    /// The rerank body, if this is a rerank request.
    #[must_use]
    pub fn as_rerank(&self) -> Option<&RerankRequest> {
        match &self.op {
            Operation::Rerank(r) => Some(r),
            _ => None,
        }
    }

    /// The text-completion body, if this is a text-completion request.
    #[must_use]
    pub fn as_completions(&self) -> Option<&CompletionsRequest> {
        match &self.op {
            Operation::Completions(c) => Some(c),
            _ => None,
        }
    }

    /// An Anthropic Messages request (`count_tokens`: a `/v1/messages/count_tokens` one) parsed
    /// from `bytes`, which are kept for a same-dialect relay ([`LlmRequest::raw_body`]).
    #[must_use]
    pub fn messages_from_bytes(body: MessagesRequest, bytes: Bytes, count_tokens: bool) -> Self {
        let body = Arc::new(body);
        let op = if count_tokens {
            Operation::MessagesCountTokens(body)
        } else {
            Operation::Messages(body)
        };
        Self::new(op).with_raw(bytes)
    }

    /// The Messages body, if this is a Messages (or Messages token count) request.
    #[must_use]
    pub fn as_messages(&self) -> Option<&MessagesRequest> {
        match &self.op {
            Operation::Messages(m) | Operation::MessagesCountTokens(m) => Some(m),
            _ => None,
        }
    }

    /// A Responses API request parsed from `bytes` (see [`LlmRequest::chat_from_bytes`]).
    #[must_use]
    pub fn responses_from_bytes(body: ResponsesRequest, bytes: Bytes) -> Self {
        Self::new(Operation::Responses(Arc::new(body))).with_raw(bytes)
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
            controls: Controls::Unparsed,
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

    /// The gateway controls the request sent (`num_retries`, `timeout`, `fallbacks`, `caching`,
    /// the test-only params, …), typed.
    ///
    /// The edge parses them once, strictly (a wrongly typed control is a 400 there), and sets them
    /// with [`LlmRequest::set_controls`]; the layers read them here and never parse the body for
    /// them. For a request built in code and never given its controls, they are read from the body
    /// here, leniently (a wrongly typed control counts as absent), each time.
    #[must_use]
    pub fn controls(&self) -> Cow<'_, GatewayControls> {
        match &self.controls {
            Controls::Some(c) => Cow::Borrowed(c),
            Controls::None => Cow::Borrowed(&NO_CONTROLS),
            Controls::Unparsed => {
                let parsed = self.op.extra().and_then(GatewayControls::parse_lenient);
                parsed.map_or(Cow::Borrowed(&NO_CONTROLS), Cow::Owned)
            }
        }
    }

    /// Every fallback group the body's fallback lists name (`fallbacks`,
    /// `context_window_fallbacks`, `content_policy_fallbacks`): what the caller asks to reach
    /// beyond its model. Empty (and no allocation) without them.
    #[must_use]
    pub fn requested_fallback_groups(&self) -> Vec<String> {
        self.controls()
            .fallbacks
            .as_deref()
            .map(|f| f.groups().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Sets the request's parsed gateway controls (`None`: it sent none); see
    /// [`LlmRequest::controls`]. A layer that removes controls from the body sets what is left.
    pub fn set_controls(&mut self, controls: Option<GatewayControls>) {
        self.controls = controls.map_or(Controls::None, |c| Controls::Some(Arc::new(c)));
    }

    /// The model (group) the caller asked for (empty for a model listing).
    #[must_use]
    pub fn model(&self) -> &str {
        self.op.model()
    }

    /// Whether the caller wants a stream.
    #[must_use]
    pub fn is_stream(&self) -> bool {
        self.op.is_stream()
    }

    /// The end user the call is made for ([`Operation::end_user`]).
    #[must_use]
    pub fn end_user(&self) -> Option<Cow<'_, str>> {
        self.op.end_user()
    }

    /// What kind of operation this is.
    #[must_use]
    pub fn kind(&self) -> OperationKind {
        self.op.kind()
    }

    /// Names another model (group) (see [`Operation::set_model`]).
    pub fn set_model(&mut self, model: &str) {
        self.op.set_model(model);
    }

    /// The chat body, if this is a chat request.
    #[must_use]
    pub fn as_chat(&self) -> Option<&ChatRequest> {
        match &self.op {
            Operation::Chat(c) => Some(c),
            _ => None,
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
            _ => None,
        }
    }

    /// Short name of the operation, for logs and metrics.
    #[must_use]
    pub fn operation_name(&self) -> &'static str {
        self.op.kind().as_str()
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
