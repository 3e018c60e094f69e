//! OpenAI chat-completions wire types: request, response and stream chunk.
//!
//! Typed where a layer or a translation reads a field; every other key is kept in `extra` and written
//! back byte-for-byte.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::wire::wire_object;

wire_object! {
    /// The body of `POST /v1/chat/completions`.
    pub struct ChatRequest {
        req /// The model group (or model) the client asked for.
        model: String = "model",
        req /// The conversation.
        messages: Vec<Message> = "messages",
        opt /// Stream the answer as server-sent events.
        stream: bool = "stream",
        opt /// Stream options (`include_usage`).
        stream_options: StreamOptions = "stream_options",
        opt /// Sampling temperature.
        temperature: f64 = "temperature",
        opt /// Nucleus sampling.
        top_p: f64 = "top_p",
        opt /// Legacy output token limit.
        max_tokens: u64 = "max_tokens",
        opt /// Output token limit, reasoning included.
        max_completion_tokens: u64 = "max_completion_tokens",
        opt /// Number of choices.
        n: u32 = "n",
        opt /// Stop sequences.
        stop: Stop = "stop",
        opt /// Sampling seed.
        seed: i64 = "seed",
        opt /// Presence penalty.
        presence_penalty: f64 = "presence_penalty",
        opt /// Frequency penalty.
        frequency_penalty: f64 = "frequency_penalty",
        opt /// End-user id.
        user: String = "user",
        opt /// Tools the model may call.
        tools: Vec<Tool> = "tools",
        opt /// `"none" | "auto" | "required"` or `{"type":"function","function":{"name":..}}`.
        tool_choice: serde_json::Value = "tool_choice",
        opt /// Allow several tool calls in one turn.
        parallel_tool_calls: bool = "parallel_tool_calls",
        opt /// `{"type":"text" | "json_object" | "json_schema", ..}`, kept as sent.
        response_format: Box<RawValue> = "response_format",
        opt /// Reasoning effort for reasoning models.
        reasoning_effort: String = "reasoning_effort",
        opt /// LiteLLM request metadata (tags, trace ids); never sent upstream.
        metadata: serde_json::Value = "metadata",
        opt /// LiteLLM's `mock_response`: answer with this text (or raise this error) without calling
        /// the provider; never sent upstream.
        mock_response: serde_json::Value = "mock_response",
    }
}

/// Declares [`GATEWAY_PARAMS`] and [`is_gateway_param`] from one list, so the two cannot drift.
macro_rules! gateway_params {
    ($($key:literal,)*) => {
        /// Request keys that are LiteLLM / gateway controls: read by layers, never sent to a
        /// provider.
        pub const GATEWAY_PARAMS: &[&str] = &[$($key),*];

        /// Whether `key` is one of [`GATEWAY_PARAMS`]: a `match`, which compiles to a few length and
        /// byte comparisons, where searching the list compares with every entry (this runs for
        /// every top-level key of every relayed request).
        #[must_use]
        pub fn is_gateway_param(key: &str) -> bool {
            matches!(key, $($key)|*)
        }
    };
}

gateway_params! {
    "metadata",
    "litellm_metadata",
    "mock_response",
    "mock_tool_calls",
    "mock_timeout",
    "mock_testing_fallbacks",
    "mock_testing_rate_limit_error",
    "mock_testing_context_fallbacks",
    "mock_testing_content_policy_fallbacks",
    "mock_delay",
    "fallbacks",
    "fastest_response",
    "context_window_fallbacks",
    "content_policy_fallbacks",
    "disable_fallbacks",
    "max_fallbacks",
    "num_retries",
    "max_retries",
    "timeout",
    "request_timeout",
    "stream_timeout",
    "cache",
    "caching",
    "tags",
    "litellm_call_id",
    "litellm_logging_obj",
    "drop_params",
    "additional_drop_params",
    "guardrails",
    "api_key",
    "api_base",
    "base_url",
    "api_version",
    "extra_headers",
}

/// Whether a request key is forwarded to a provider (not a gateway control).
#[must_use]
pub fn is_upstream_param(key: &str) -> bool {
    !is_gateway_param(key)
}

wire_object! {
    /// One message of the conversation (request) or the answer (response).
    pub struct Message {
        req /// `system`, `developer`, `user`, `assistant`, `tool` or `function`.
        role: String = "role",
        opt /// Text or content parts.
        content: Content = "content",
        opt /// Participant name.
        name: String = "name",
        opt /// Tool calls made by the assistant.
        tool_calls: Vec<ToolCall> = "tool_calls",
        opt /// The call this `tool` message answers.
        tool_call_id: String = "tool_call_id",
        opt /// Reasoning text (DeepSeek, Anthropic thinking, Gemini thoughts).
        reasoning_content: String = "reasoning_content",
    }
}

impl Message {
    /// A message with a role and text content.
    #[must_use]
    pub fn new(role: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: Some(Content::Text(text.into())),
            ..Self::default()
        }
    }

    /// All text of the content joined (parts of type `text` only).
    #[must_use]
    pub fn text(&self) -> String {
        self.content.as_ref().map(Content::text).unwrap_or_default()
    }
}

/// Message content: a string, or typed parts.
#[derive(Clone, Debug)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts (text, image_url, input_audio, file, and unknown kinds kept as sent).
    Parts(Vec<ContentPart>),
}

impl Default for Content {
    fn default() -> Self {
        Self::Text(String::new())
    }
}

impl Content {
    /// All text joined: the string, or the `text` parts concatenated.
    #[must_use]
    pub fn text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join(""),
        }
    }
}

impl Serialize for Content {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(t) => s.serialize_str(t),
            Self::Parts(p) => p.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Content;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Content, E> {
                Ok(Content::Text(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Content, E> {
                Ok(Content::Text(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Content, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(p) = seq.next_element()? {
                    parts.push(p);
                }
                Ok(Content::Parts(parts))
            }
        }
        d.deserialize_any(V)
    }
}

/// What kind a content part is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PartKind {
    /// `{"type":"text","text":..}`
    Text,
    /// `{"type":"image_url","image_url":{"url":..,"detail":..}}`
    ImageUrl,
    /// `{"type":"input_audio","input_audio":{"data":..,"format":..}}`
    InputAudio,
    /// `{"type":"file","file":{"file_id"|"file_data"|"filename":..}}`
    File,
    /// Any other `type`, kept as sent.
    Other,
}

wire_object! {
    /// One content part.
    pub struct ContentPart {
        req /// The part's `type`.
        kind_name: String = "type",
        opt /// Text of a `text` part.
        text: String = "text",
        opt /// Image of an `image_url` part.
        image_url: ImageUrl = "image_url",
        opt /// Audio of an `input_audio` part.
        input_audio: InputAudio = "input_audio",
        opt /// File of a `file` part.
        file: FileRef = "file",
    }
}

impl ContentPart {
    /// A text part.
    #[must_use]
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            kind_name: "text".into(),
            text: Some(text.into()),
            ..Self::default()
        }
    }

    /// The part's kind.
    #[must_use]
    pub fn kind(&self) -> PartKind {
        match self.kind_name.as_str() {
            "text" => PartKind::Text,
            "image_url" => PartKind::ImageUrl,
            "input_audio" => PartKind::InputAudio,
            "file" => PartKind::File,
            _ => PartKind::Other,
        }
    }
}

wire_object! {
    /// An image reference: an https URL or a `data:` URL.
    pub struct ImageUrl {
        req /// The URL.
        url: String = "url",
        opt /// `low`, `high` or `auto`.
        detail: String = "detail",
        opt /// MIME type hint (LiteLLM extension).
        format: String = "format",
    }
}

wire_object! {
    /// Base64 audio input.
    pub struct InputAudio {
        req /// Base64 audio.
        data: String = "data",
        req /// `wav` or `mp3`.
        format: String = "format",
    }
}

wire_object! {
    /// A file reference or inline file.
    pub struct FileRef {
        opt /// An uploaded file id.
        file_id: String = "file_id",
        opt /// A `data:` URL with the file.
        file_data: String = "file_data",
        opt /// The file name.
        filename: String = "filename",
    }
}

wire_object! {
    /// A tool call (complete in a message, partial in a stream delta).
    pub struct ToolCall {
        opt /// Position of the call (stream deltas).
        index: u32 = "index",
        opt /// Call id.
        id: String = "id",
        opt /// Always `function` today.
        kind_name: String = "type",
        opt /// The function called.
        function: FunctionCall = "function",
    }
}

wire_object! {
    /// The function of a tool call.
    pub struct FunctionCall {
        opt /// Function name.
        name: String = "name",
        opt /// Arguments as a JSON string (or a fragment of it in a stream).
        arguments: String = "arguments",
    }
}

wire_object! {
    /// A tool the model may call.
    pub struct Tool {
        req /// `function` (other kinds are kept as sent).
        kind_name: String = "type",
        opt /// The function definition.
        function: FunctionDef = "function",
    }
}

wire_object! {
    /// A function definition.
    pub struct FunctionDef {
        req /// Function name.
        name: String = "name",
        opt /// What the function does.
        description: String = "description",
        opt /// JSON Schema of the arguments, kept as sent.
        parameters: Box<RawValue> = "parameters",
        opt /// Strict schema adherence.
        strict: bool = "strict",
    }
}

wire_object! {
    /// `stream_options`.
    pub struct StreamOptions {
        opt /// Send a final chunk with usage.
        include_usage: bool = "include_usage",
    }
}

/// `stop`: one sequence or several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop sequence.
    One(String),
    /// Several stop sequences.
    Many(Vec<String>),
}

impl Stop {
    /// The sequences as a list.
    #[must_use]
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

wire_object! {
    /// A complete chat completion (`object: "chat.completion"`).
    pub struct ChatResponse {
        req /// The choices.
        choices: Vec<Choice> = "choices",
        opt /// Completion id.
        id: String = "id",
        opt /// `chat.completion`.
        object: String = "object",
        opt /// Unix seconds.
        created: u64 = "created",
        opt /// The model that answered.
        model: String = "model",
        opt /// Token usage.
        usage: Usage = "usage",
        opt /// Backend fingerprint.
        system_fingerprint: String = "system_fingerprint",
    }
}

wire_object! {
    /// One choice of a complete response.
    pub struct Choice {
        opt /// Choice index.
        index: u32 = "index",
        opt /// The answer.
        message: Message = "message",
        opt /// `stop`, `length`, `tool_calls`, `content_filter`, `function_call`.
        finish_reason: String = "finish_reason",
    }
}

wire_object! {
    /// Token usage.
    pub struct Usage {
        opt /// Input tokens.
        prompt_tokens: u64 = "prompt_tokens",
        opt /// Output tokens.
        completion_tokens: u64 = "completion_tokens",
        opt /// Sum.
        total_tokens: u64 = "total_tokens",
        opt /// Input details (cached tokens).
        prompt_tokens_details: PromptTokensDetails = "prompt_tokens_details",
        opt /// Output details (reasoning tokens).
        completion_tokens_details: CompletionTokensDetails = "completion_tokens_details",
    }
}

impl Usage {
    /// Usage with prompt and completion counts and their sum.
    #[must_use]
    pub fn new(prompt: u64, completion: u64) -> Self {
        Self {
            prompt_tokens: Some(prompt),
            completion_tokens: Some(completion),
            total_tokens: Some(prompt + completion),
            ..Self::default()
        }
    }
}

wire_object! {
    /// `usage.prompt_tokens_details`.
    pub struct PromptTokensDetails {
        opt /// Tokens read from the provider's prompt cache.
        cached_tokens: u64 = "cached_tokens",
        opt /// Audio input tokens.
        audio_tokens: u64 = "audio_tokens",
    }
}

wire_object! {
    /// `usage.completion_tokens_details`.
    pub struct CompletionTokensDetails {
        opt /// Reasoning tokens.
        reasoning_tokens: u64 = "reasoning_tokens",
        opt /// Audio output tokens.
        audio_tokens: u64 = "audio_tokens",
    }
}

wire_object! {
    /// One streamed chunk (`object: "chat.completion.chunk"`).
    pub struct ChatChunk {
        req /// The choices' deltas (empty on the final usage chunk).
        choices: Vec<ChunkChoice> = "choices",
        opt /// Completion id (the same on every chunk).
        id: String = "id",
        opt /// `chat.completion.chunk`.
        object: String = "object",
        opt /// Unix seconds.
        created: u64 = "created",
        opt /// The model that answered.
        model: String = "model",
        opt /// Backend fingerprint.
        system_fingerprint: String = "system_fingerprint",
        opt /// Usage (on the last chunk with `include_usage`; `null` on others).
        usage: Usage = "usage",
    }
}

wire_object! {
    /// One choice of a chunk.
    pub struct ChunkChoice {
        opt /// Choice index.
        index: u32 = "index",
        opt /// What this chunk adds.
        delta: Delta = "delta",
        opt /// Set on the choice's last chunk.
        finish_reason: String = "finish_reason",
    }
}

wire_object! {
    /// The increment of a streamed message.
    pub struct Delta {
        opt /// Set on the first chunk.
        role: String = "role",
        opt /// Text increment.
        content: String = "content",
        opt /// Reasoning text increment.
        reasoning_content: String = "reasoning_content",
        opt /// Tool-call increments.
        tool_calls: Vec<ToolCall> = "tool_calls",
    }
}

/// A chat request's prompt tokens, estimated: [`estimate_tokens`](super::usage::estimate_tokens) of its messages' text (string
/// content, text parts, tool-call names and arguments) plus 3 per message. Reads lengths only:
/// no allocation, no scan of the text.
#[must_use]
pub fn estimate_prompt_tokens(messages: &[crate::types::chat::Message]) -> u64 {
    use Content;
    let len = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let bytes: usize = messages
        .iter()
        .map(|m| {
            let content = match &m.content {
                Some(Content::Text(t)) => t.len(),
                Some(Content::Parts(parts)) => parts.iter().map(|p| len(&p.text)).sum(),
                None => 0,
            };
            let tools: usize = m.tool_calls.as_ref().map_or(0, |calls| {
                calls
                    .iter()
                    .filter_map(|t| t.function.as_ref())
                    .map(|f| len(&f.name) + len(&f.arguments))
                    .sum()
            });
            content + tools + len(&m.reasoning_content)
        })
        .sum();
    let framing = u64::try_from(messages.len())
        .unwrap_or(u64::MAX)
        .saturating_mul(3);
    super::usage::estimate_tokens(bytes).saturating_add(framing)
}
