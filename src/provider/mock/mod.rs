//! `mock/`: a built-in provider that answers without a network.
//!
//! Deterministic: the same request gets the same text. Used by the embedded default config, the
//! tests and the benchmarks. It also implements LiteLLM's `mock_response` request field for every
//! provider:
//!
//! - `"mock_response": "some text"` answers with that text (streamed when `stream` is set);
//! - `"mock_response": "litellm.RateLimitError"` (or any LiteLLM exception name, optionally followed
//!   by `: message`) fails with that error;
//! - `"mock_response": {...}` (a whole chat completion object) answers with that object.
//!
//! Deployment parameters: `mock_response` (default text for the deployment).

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderMap, StatusCode};

use super::{ByteStream, Deployment, Provider};
use crate::{
    error::{ErrorKind, LlmError},
    types::{
        chat::{ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, Delta, Message, Usage},
        embeddings::{
            Embedding, EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage,
        },
        ChatStream, ChunkBody, LlmRequest, LlmResponse, Operation,
    },
};

/// The text the mock answers with when nothing else is configured.
pub const DEFAULT_TEXT: &str =
    "Hello! This is a mock response from llmgate: no provider was called.";

/// The `mock/` provider. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mock;

impl Provider for Mock {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn supports(&self, op: crate::types::OperationKind) -> bool {
        matches!(
            op,
            crate::types::OperationKind::Chat | crate::types::OperationKind::Embeddings
        )
    }

    fn encode(
        &self,
        _req: &LlmRequest,
        _dep: &Deployment,
    ) -> Result<http::Request<Bytes>, LlmError> {
        Err(LlmError::internal(
            "the mock provider makes no HTTP requests",
        ))
    }

    fn decode(
        &self,
        _req: &LlmRequest,
        _resp: http::Response<Bytes>,
        _dep: &Deployment,
    ) -> Result<LlmResponse, LlmError> {
        Err(LlmError::internal(
            "the mock provider makes no HTTP requests",
        ))
    }

    fn decode_stream(
        &self,
        _req: &LlmRequest,
        _parts: http::response::Parts,
        _body: ByteStream,
        _dep: &Deployment,
    ) -> Result<ChatStream, LlmError> {
        Err(LlmError::internal(
            "the mock provider makes no HTTP requests",
        ))
    }

    fn classify(&self, status: StatusCode, _h: &HeaderMap, _b: &[u8], _d: &Deployment) -> LlmError {
        LlmError::new(ErrorKind::from_status(status), "mock provider error")
    }

    fn respond_locally(
        &self,
        req: &LlmRequest,
        dep: &Deployment,
    ) -> Option<Result<LlmResponse, LlmError>> {
        Some(match &req.op {
            Operation::Chat(chat) => {
                let directive = chat
                    .mock_response
                    .clone()
                    .or_else(|| dep.param("mock_response").cloned());
                respond_chat(chat, dep, directive.as_ref())
            }
            Operation::Embeddings(emb) => Ok(respond_embeddings(emb, dep)),
            _ => Err(super::unsupported(self, req)),
        })
    }
}

/// Answers a chat request from a `mock_response` value (the request's, else the deployment's, else
/// the default text).
pub fn respond_chat(
    chat: &ChatRequest,
    dep: &Deployment,
    directive: Option<&serde_json::Value>,
) -> Result<LlmResponse, LlmError> {
    let text = match directive {
        None | Some(serde_json::Value::Null) => DEFAULT_TEXT.to_owned(),
        Some(serde_json::Value::String(s)) => {
            if let Some(err) = error_from_directive(s) {
                return Err(err);
            }
            s.clone()
        }
        Some(obj @ serde_json::Value::Object(_)) => {
            let resp: ChatResponse = serde_json::from_value(obj.clone()).map_err(|e| {
                LlmError::bad_request(format!("mock_response is not a chat completion: {e}"))
                    .with_param("mock_response")
            })?;
            return Ok(finish(LlmResponse::chat(resp), dep));
        }
        Some(other) => other.to_string(),
    };
    let prompt_tokens = estimate_tokens(chat);
    let completion_tokens = text.split_whitespace().count().max(1) as u64;
    let id = format!("chatcmpl-mock-{:016x}", fastrand::u64(..));
    let created = now();
    let model = chat.model.clone();
    let usage = Usage::new(prompt_tokens, completion_tokens);
    if chat.stream.unwrap_or(false) {
        let include_usage = chat
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let stream = MockStream::new(id, created, model, &text, include_usage.then_some(usage));
        return Ok(finish(LlmResponse::stream(Box::pin(stream)), dep));
    }
    let resp = ChatResponse {
        id: Some(id),
        object: Some("chat.completion".into()),
        created: Some(created),
        model: Some(model),
        choices: vec![Choice {
            index: Some(0),
            message: Some(Message::new("assistant", text)),
            finish_reason: Some("stop".into()),
            ..Choice::default()
        }],
        usage: Some(usage),
        ..ChatResponse::default()
    };
    Ok(finish(LlmResponse::chat(resp), dep))
}

fn finish(mut resp: LlmResponse, dep: &Deployment) -> LlmResponse {
    resp.meta.provider = Some(dep.provider.clone());
    resp.meta.deployment_id = Some(dep.id.clone());
    resp.meta.model_group = Some(dep.model_group.clone());
    resp
}

/// A LiteLLM exception name (`litellm.RateLimitError`, optionally `: message`) as an error.
#[must_use]
pub fn error_from_directive(s: &str) -> Option<LlmError> {
    let rest = s.strip_prefix("litellm.")?;
    let (name, message) = match rest.split_once(':') {
        Some((n, m)) => (n.trim(), m.trim()),
        None => (rest.trim(), ""),
    };
    let kind = match name {
        "BadRequestError" | "UnprocessableEntityError" | "UnsupportedParamsError" => {
            ErrorKind::BadRequest
        }
        "AuthenticationError" => ErrorKind::Authentication,
        "PermissionDeniedError" => ErrorKind::PermissionDenied,
        "NotFoundError" => ErrorKind::NotFound,
        "RateLimitError" => ErrorKind::RateLimit,
        "ContextWindowExceededError" => ErrorKind::ContextWindowExceeded,
        "ContentPolicyViolationError" => ErrorKind::ContentPolicyViolation,
        "Timeout" | "APITimeoutError" => ErrorKind::Timeout,
        "APIConnectionError" => ErrorKind::ApiConnection,
        "ServiceUnavailableError" => ErrorKind::ServiceUnavailable,
        "InternalServerError" | "APIError" => ErrorKind::InternalServer,
        "BudgetExceededError" => ErrorKind::BudgetExceeded,
        _ => return None,
    };
    let message = if message.is_empty() {
        format!("litellm.{name}: mock_response asked for this error")
    } else {
        format!("litellm.{name}: {message}")
    };
    Some(LlmError::new(kind, message).with_provider("mock"))
}

/// A rough token count of the prompt: four characters a token, as LiteLLM's fallback counter.
#[must_use]
pub fn estimate_tokens(chat: &ChatRequest) -> u64 {
    let chars: usize = chat
        .messages
        .iter()
        .map(|m| m.content.as_ref().map_or(0, |c| c.text().len()) + 4)
        .sum();
    (chars as u64).div_ceil(4).max(1)
}

fn now() -> u64 {
    crate::clock::Clock::system().unix_secs()
}

/// Answers an embeddings request with deterministic unit vectors derived from each input.
#[must_use]
pub fn respond_embeddings(req: &EmbeddingsRequest, dep: &Deployment) -> LlmResponse {
    let dims = req.dimensions.unwrap_or(16).clamp(1, 4096) as usize;
    let seeds: Vec<(u64, usize)> = match &req.input {
        EmbeddingInput::One(s) => vec![(fnv(s.as_bytes()), s.len())],
        EmbeddingInput::Many(v) => v.iter().map(|s| (fnv(s.as_bytes()), s.len())).collect(),
        EmbeddingInput::Tokens(t) => vec![(fnv(&tokens_bytes(t)), t.len() * 4)],
        EmbeddingInput::TokenBatches(b) => b
            .iter()
            .map(|t| (fnv(&tokens_bytes(t)), t.len() * 4))
            .collect(),
    };
    let mut total = 0u64;
    let data = seeds
        .iter()
        .enumerate()
        .map(|(i, (seed, len))| {
            total += (*len as u64).div_ceil(4).max(1);
            let mut state = seed | 1;
            let mut v: Vec<f64> = (0..dims)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 2001) as f64 / 1000.0 - 1.0
                })
                .collect();
            let norm = v
                .iter()
                .map(|x| x * x)
                .sum::<f64>()
                .sqrt()
                .max(f64::EPSILON);
            v.iter_mut().for_each(|x| *x /= norm);
            Embedding {
                object: Some("embedding".into()),
                index: Some(i as u32),
                embedding: serde_json::value::to_raw_value(&v).ok(),
                ..Embedding::default()
            }
        })
        .collect();
    let resp = EmbeddingsResponse {
        data,
        object: Some("list".into()),
        model: Some(req.model.clone()),
        usage: Some(EmbeddingsUsage {
            prompt_tokens: Some(total),
            total_tokens: Some(total),
            ..EmbeddingsUsage::default()
        }),
        ..EmbeddingsResponse::default()
    };
    finish(LlmResponse::embeddings(resp), dep)
}

fn tokens_bytes(t: &[u32]) -> Vec<u8> {
    t.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The mock's stream: a role chunk, one chunk per word, a finish chunk, and a usage chunk when asked.
#[derive(Debug)]
struct MockStream {
    chunks: VecDeque<ChunkBody>,
}

impl MockStream {
    fn new(id: String, created: u64, model: String, text: &str, usage: Option<Usage>) -> Self {
        let base = ChatChunk {
            id: Some(id),
            object: Some("chat.completion.chunk".into()),
            created: Some(created),
            model: Some(model),
            ..ChatChunk::default()
        };
        let delta_chunk = |delta: Delta, finish: Option<&str>| {
            let mut c = base.clone();
            let mut choice = ChunkChoice {
                index: Some(0),
                delta: Some(delta),
                finish_reason: finish.map(str::to_owned),
                ..ChunkChoice::default()
            };
            choice.set_explicit_null("finish_reason", finish.is_none());
            c.choices = vec![choice];
            c
        };
        let mut chunks = VecDeque::new();
        chunks.push_back(delta_chunk(
            Delta {
                role: Some("assistant".into()),
                content: Some(String::new()),
                ..Delta::default()
            },
            None,
        ));
        for piece in text.split_inclusive(' ') {
            chunks.push_back(delta_chunk(
                Delta {
                    content: Some(piece.to_owned()),
                    ..Delta::default()
                },
                None,
            ));
        }
        chunks.push_back(delta_chunk(Delta::default(), Some("stop")));
        if let Some(usage) = usage {
            let mut c = base;
            c.usage = Some(usage);
            chunks.push_back(c);
        }
        Self {
            chunks: chunks.into_iter().map(ChunkBody::from).collect(),
        }
    }
}

impl Stream for MockStream {
    type Item = Result<ChunkBody, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.chunks.pop_front().map(Ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> ChatRequest {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn error_directive_maps_to_kind() {
        let e = error_from_directive("litellm.RateLimitError: slow").unwrap();
        assert_eq!(e.kind(), ErrorKind::RateLimit);
        assert_eq!(e.message(), "litellm.RateLimitError: slow");
        assert!(error_from_directive("just text").is_none());
    }

    #[test]
    fn deterministic_text_and_usage() {
        let c = chat(r#"{"model":"m","messages":[{"role":"user","content":"hello there"}]}"#);
        let dep = Deployment::new("m", "mock/m");
        let r = respond_chat(&c, &dep, None).unwrap();
        let ResponseBodyChat(resp) = ResponseBodyChat::from(r);
        assert_eq!(
            resp.choices[0].message.as_ref().unwrap().text(),
            DEFAULT_TEXT
        );
        let u = resp.usage.unwrap();
        assert_eq!(
            u.total_tokens,
            Some(u.prompt_tokens.unwrap() + u.completion_tokens.unwrap())
        );
    }

    struct ResponseBodyChat(ChatResponse);
    impl From<LlmResponse> for ResponseBodyChat {
        fn from(r: LlmResponse) -> Self {
            match r.body {
                crate::types::ResponseBody::Chat(c) => Self(c.into_typed().unwrap()),
                other => panic!("expected a complete chat, got {other:?}"),
            }
        }
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let req: EmbeddingsRequest =
            serde_json::from_str(r#"{"model":"e","input":["a","b"],"dimensions":8}"#).unwrap();
        let dep = Deployment::new("e", "mock/e");
        let a = serde_json::to_string(&respond_embeddings(&req, &dep).body_embeddings()).unwrap();
        let b = serde_json::to_string(&respond_embeddings(&req, &dep).body_embeddings()).unwrap();
        assert_eq!(a, b);
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        let vec: Vec<f64> = serde_json::from_value(v["data"][0]["embedding"].clone()).unwrap();
        assert_eq!(vec.len(), 8);
        let norm: f64 = vec.iter().map(|x| x * x).sum::<f64>();
        assert!((norm - 1.0).abs() < 1e-9);
    }

    impl LlmResponse {
        fn body_embeddings(self) -> EmbeddingsResponse {
            match self.body {
                crate::types::ResponseBody::Embeddings(e) => *e,
                other => panic!("expected embeddings, got {other:?}"),
            }
        }
    }
}
