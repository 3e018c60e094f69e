//! `anthropic/`: Anthropic's Messages API (`POST {api_base}/v1/messages`).
//!
//! The OpenAI chat body is translated, not forwarded:
//!
//! - the leading run of `system` / `developer` messages becomes the top-level `system` array of text
//!   blocks (later ones become user text); every message's content becomes an array of blocks, and
//!   consecutive turns of one role are merged, since Anthropic wants user and assistant to alternate;
//! - assistant `tool_calls` become `tool_use` blocks (arguments parsed into `input`), `tool` messages
//!   become `tool_result` blocks of one user turn, `image_url` parts become `image` blocks (base64 for
//!   `data:` URLs, `url` sources for https URLs), `cache_control` is passed on to the block it marks;
//! - `max_tokens` (or `max_completion_tokens`) is required upstream: when the client gives none, the
//!   deployment's `max_tokens`, else `thinking.budget_tokens + 4096` when thinking is on, else the
//!   model's output limit (see [`default_max_tokens`]);
//! - `stop` → `stop_sequences`, `user` → `metadata.user_id` (skipped when it looks like an e-mail
//!   address or a phone number), `tools` → `tools` with `input_schema`, `tool_choice` auto / required
//!   / none / named → `auto` / `any` / `none` / `tool`, `parallel_tool_calls: false` →
//!   `disable_parallel_tool_use`, `reasoning_effort` → `thinking` (LiteLLM's budgets), a
//!   `response_format` JSON schema → a forced `json_tool_call` tool whose input comes back as the
//!   message text;
//! - OpenAI parameters Anthropic has no equivalent for (`n` > 1, `seed`, penalties, `logprobs`, …)
//!   fail with a 400 unless `drop_params` is set on the deployment or the request, as in LiteLLM;
//!   unknown keys (Anthropic's own, such as `top_k`) are sent as they came.
//!
//! Responses map text → `content`, `tool_use` → `tool_calls`, `thinking` blocks → `reasoning_content`
//! and `thinking_blocks`, `stop_reason` → `finish_reason`, and usage with prompt caching
//! (`prompt_tokens` = input + cache writes + cache reads; `cached_tokens` = cache reads). Streams are
//! translated event by event (see [`AnthropicStreamMapper`]). Errors are classified by Anthropic's
//! error `type` (see [`classify_anthropic_error`]).
//!
//! Anthropic's own Messages API (`POST /v1/messages`, `/v1/messages/count_tokens` on the gateway)
//! is relayed, not translated: the client's bytes with the model replaced, the provider's answer
//! and events as they came, with their facts read for the layers (see `messages`).
//!
//! Deployment parameters: `api_base` (default `https://api.anthropic.com`), `api_key` (sent as
//! `x-api-key`), `max_tokens` (the default output limit), `drop_params`, `extra_headers`.

mod decode;
mod encode;
mod error;
pub(crate) mod messages;
pub(crate) mod passthrough;
mod stream;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

pub(crate) use self::encode::resolve;
pub use self::{
    decode::{decode_messages, finish_reason, usage_from},
    encode::{
        default_max_tokens, encode_messages, reasoning_budget, ANTHROPIC_VERSION, SUPPORTED_PARAMS,
    },
    error::{classify_anthropic_error, error_from_anthropic},
    messages::{AnthropicUsage, RelayEvents},
    stream::AnthropicStreamMapper,
};
use super::{params::Endpoint, sse::SseStream, ByteStream, Deployment, Provider};
use crate::{
    error::LlmError,
    types::{ChatStream, EventStream, LlmRequest, LlmResponse, Operation, OperationKind},
};

/// Anthropic's default base URL.
pub const DEFAULT_API_BASE: &str = "https://api.anthropic.com";

/// The name of the tool that carries a `response_format` JSON answer (LiteLLM's name).
pub const JSON_TOOL_NAME: &str = "json_tool_call";

/// The `anthropic/` provider. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Anthropic;

impl Provider for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    /// Chat (translated), and Anthropic's own Messages and token count (relayed: see
    /// `messages`).
    fn supports(&self, op: OperationKind) -> bool {
        matches!(
            op,
            OperationKind::Chat | OperationKind::Messages | OperationKind::MessagesCountTokens
        )
    }

    fn supported_params(&self, endpoint: Endpoint) -> Option<&'static [&'static str]> {
        // No embeddings here: `encode` refuses them before any parameter matters.
        (endpoint == Endpoint::Chat).then_some(SUPPORTED_PARAMS)
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        match &req.op {
            Operation::Chat(chat) => encode_messages(chat, dep),
            Operation::Messages(m) => messages::encode_relay(req, m, false, dep),
            Operation::MessagesCountTokens(m) => messages::encode_relay(req, m, true, dep),
            _ => Err(super::unsupported(self, req)),
        }
    }

    fn decode(
        &self,
        req: &LlmRequest,
        resp: http::Response<Bytes>,
        _dep: &Deployment,
    ) -> Result<LlmResponse, LlmError> {
        match &req.op {
            Operation::Chat(chat) => decode_messages(chat, resp.body()).map(LlmResponse::chat),
            Operation::Messages(_) => messages::decode_relay(resp.body(), false),
            Operation::MessagesCountTokens(_) => messages::decode_relay(resp.body(), true),
            _ => Err(super::unsupported(self, req)),
        }
    }

    fn decode_stream(
        &self,
        req: &LlmRequest,
        _parts: http::response::Parts,
        body: ByteStream,
        _dep: &Deployment,
    ) -> Result<ChatStream, LlmError> {
        let Some(chat) = req.as_chat() else {
            return Err(super::unsupported(self, req));
        };
        Ok(Box::pin(SseStream::new(
            body,
            AnthropicStreamMapper::new(chat),
        )))
    }

    fn decode_events(
        &self,
        req: &LlmRequest,
        _parts: http::response::Parts,
        body: ByteStream,
        _dep: &Deployment,
    ) -> Result<EventStream, LlmError> {
        match &req.op {
            Operation::Messages(_) => Ok(RelayEvents::new(body).boxed()),
            _ => Err(super::unsupported(self, req)),
        }
    }

    fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        _dep: &Deployment,
    ) -> LlmError {
        classify_anthropic_error(status, headers, body)
    }
}
