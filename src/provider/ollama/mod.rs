//! `ollama/` and `ollama_chat/`: a local or remote Ollama server's native API.
//!
//! - `ollama_chat/<model>` calls `POST {api_base}/api/chat` with the messages: text parts joined into
//!   `content`, `data:` image URLs as bare base64 in `images`, assistant tool calls with object
//!   arguments, tool results named by `tool_name`.
//! - `ollama/<model>` calls `POST {api_base}/api/generate` with the conversation flattened into one
//!   `prompt` by LiteLLM's `ollama_pt` layout (`### User:` / `### System:` / `### Assistant:` runs),
//!   images from user turns in `images`. Tools need `ollama_chat/`.
//! - Both: sampling parameters move under `options` (`temperature`, `top_p`, `max_tokens` →
//!   `num_predict`, `seed`, `stop` as an array, `frequency_penalty`, `presence_penalty`, and Ollama
//!   options such as `top_k` or `num_ctx` sent at the top level); `reasoning_effort` → `think`;
//!   `response_format` → `format` (`json_schema` → the schema, `json_object` → `"json"`); `tools`
//!   forwarded as they are; `tool_choice` accepted and not sent (as LiteLLM); `stream_options` read by
//!   the gateway; other OpenAI parameters (`n` > 1, `user`, `logprobs`, …) refused with a 400, or
//!   dropped with `drop_params` ([`CHAT_PARAMS`], [`params`](super::params)); `stream` always
//!   explicit.
//! - Answers: `done_reason` → `finish_reason` (`tool_calls` when the model called a tool),
//!   `prompt_eval_count` / `eval_count` → usage, Ollama tool calls → OpenAI tool calls (arguments as
//!   a JSON string). Streams are NDJSON, decoded line by line ([`NdjsonStream`]).
//! - Errors (`{"error": "model 'x' not found"}`) keep their status and become the OpenAI error JSON
//!   with Ollama's text as the message.
//! - `api_base` defaults to `OLLAMA_API_BASE`, else `http://localhost:11434`. A key (deployment or
//!   `OLLAMA_API_KEY`) is sent as `Authorization: Bearer`, for Ollama behind a proxy. Both variables
//!   are read when the deployment is built ([`Deployment::with_env`] reads them from elsewhere).
//! - Embeddings (either prefix) call `/api/embed` (`dimensions` sent; `encoding_format: base64`
//!   answered by encoding Ollama's floats as little-endian f32, as OpenAI does).

mod decode;
mod encode;
mod stream;

use bytes::Bytes;

pub use self::{
    decode::{chat_response, embeddings_response},
    encode::{chat_body, embed_body, generate_body, ollama_prompt, CHAT_PARAMS, EMBEDDINGS_PARAMS},
    stream::{LineMapper, NdjsonStream, OllamaStreamMapper},
};
use super::{
    openai::{classify_openai_error, join_url, resolved_head},
    params::Endpoint,
    resolve::{bearer_header, endpoint, reached, DeploymentEnv, Resolved},
    ByteStream, Deployment, Provider,
};
use crate::{
    error::LlmError,
    secret::Secret,
    types::{ChatStream, LlmRequest, LlmResponse, Operation},
};

/// Ollama's default address.
pub const DEFAULT_API_BASE: &str = "http://localhost:11434";

/// The `ollama/` provider (`/api/generate`). See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ollama;

/// The `ollama_chat/` provider (`/api/chat`). See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct OllamaChat;

/// The environment variables Ollama deployments fall back on.
pub(crate) const ENV: &[&str] = &["OLLAMA_API_BASE", "OLLAMA_API_KEY"];

/// Resolves an Ollama deployment: `/api/chat` (or `/api/generate`) and `/api/embed` under its base,
/// and its key.
pub(crate) fn resolve(
    dep: &Deployment,
    env: &DeploymentEnv,
    chat_endpoint: bool,
    r: &mut Resolved,
) {
    let base = dep
        .api_base
        .as_deref()
        .or_else(|| env.first(&["OLLAMA_API_BASE"]))
        .unwrap_or(DEFAULT_API_BASE);
    let chat = if chat_endpoint {
        "api/chat"
    } else {
        "api/generate"
    };
    r.chat = endpoint(&join_url(base, chat));
    r.chat_stream = r.chat.clone();
    r.embeddings = endpoint(&join_url(base, "api/embed"));
    let key = dep
        .api_key
        .as_ref()
        .map(Secret::expose)
        .or_else(|| env.first(&["OLLAMA_API_KEY"]));
    r.credential = key.filter(|k| !k.is_empty()).map(bearer_header);
}

fn encode(
    provider: &dyn Provider,
    chat_endpoint: bool,
    req: &LlmRequest,
    dep: &Deployment,
) -> Result<http::Request<Bytes>, LlmError> {
    let r = dep.resolved(provider.name());
    let (endpoint, body) = match &req.op {
        Operation::Chat(chat) if chat_endpoint => (
            r.chat_endpoint(req.is_stream())?,
            chat_body(chat, &dep.model)?,
        ),
        Operation::Chat(chat) => (
            r.chat_endpoint(req.is_stream())?,
            generate_body(chat, &dep.model)?,
        ),
        Operation::Embeddings(emb) => (reached(&r.embeddings)?, embed_body(emb, &dep.model)?),
        Operation::ListModels | Operation::Responses(_) => {
            return Err(super::unsupported(provider, req))
        }
    };
    let mut head = resolved_head(endpoint, &r)?;
    r.add_credential(head.headers_mut())?;
    Ok(head.map(|()| body))
}

fn decode(req: &LlmRequest, body: &[u8]) -> Result<LlmResponse, LlmError> {
    match &req.op {
        Operation::Chat(_) => chat_response(body, req.model()).map(LlmResponse::chat),
        Operation::Embeddings(emb) => {
            let base64 = emb.encoding_format.as_deref() == Some("base64");
            embeddings_response(body, req.model(), base64).map(LlmResponse::embeddings)
        }
        Operation::ListModels | Operation::Responses(_) => {
            Err(super::unsupported_by("ollama", req))
        }
    }
}

fn decode_stream(provider: &'static str, req: &LlmRequest, body: ByteStream) -> ChatStream {
    let include_usage = req
        .as_chat()
        .and_then(|c| c.stream_options.as_ref())
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    Box::pin(NdjsonStream::new(
        body,
        OllamaStreamMapper::new(provider, req.model(), include_usage),
    ))
}

macro_rules! ollama_provider {
    ($ty:ty, $name:literal, $chat_endpoint:literal) => {
        impl Provider for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn supports(&self, op: crate::types::OperationKind) -> bool {
                matches!(
                    op,
                    crate::types::OperationKind::Chat | crate::types::OperationKind::Embeddings
                )
            }

            fn supported_params(&self, endpoint: Endpoint) -> Option<&'static [&'static str]> {
                Some(match endpoint {
                    Endpoint::Chat => CHAT_PARAMS,
                    Endpoint::Embeddings => EMBEDDINGS_PARAMS,
                })
            }

            fn encode(
                &self,
                req: &LlmRequest,
                dep: &Deployment,
            ) -> Result<http::Request<Bytes>, LlmError> {
                encode(self, $chat_endpoint, req, dep)
            }

            // `{"error": "..."}`: the text becomes the message, the status is kept.
            super::delegate_responses!(decode, decode_stream, classify_openai_error);
        }
    };
}

ollama_provider!(Ollama, "ollama", false);
ollama_provider!(OllamaChat, "ollama_chat", true);

#[cfg(test)]
mod tests {
    use http::{HeaderMap, StatusCode};

    use super::*;
    use crate::ErrorKind;

    #[test]
    fn model_not_found_keeps_status_and_text() {
        let dep = Deployment::new("m", "ollama_chat/llama3.1");
        let err = OllamaChat.classify(
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            br#"{"error":"model 'llama3.1' not found"}"#,
            &dep,
        );
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
        assert_eq!(err.message(), "model 'llama3.1' not found");
    }

    #[test]
    fn endpoints_by_prefix() {
        let req = LlmRequest::chat(
            serde_json::from_str(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
                .unwrap(),
        );
        let dep = Deployment::new("m", "ollama/llama3.1").with_api_base("http://h:1/");
        assert_eq!(
            Ollama.encode(&req, &dep).unwrap().uri().to_string(),
            "http://h:1/api/generate"
        );
        assert_eq!(
            OllamaChat.encode(&req, &dep).unwrap().uri().to_string(),
            "http://h:1/api/chat"
        );
    }

    #[test]
    fn ollama_api_base_and_key_from_the_deployments_environment() {
        let req = LlmRequest::chat(
            serde_json::from_str(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
                .unwrap(),
        );
        let dep = Deployment::new("m", "ollama_chat/llama3.1").with_env(|n| match n {
            "OLLAMA_API_BASE" => Some("http://gpu-box:11434".to_owned()),
            "OLLAMA_API_KEY" => Some("ok-env".to_owned()),
            _ => None,
        });
        let out = OllamaChat.encode(&req, &dep).unwrap();
        assert_eq!(out.uri().to_string(), "http://gpu-box:11434/api/chat");
        assert_eq!(out.headers()[http::header::HOST], "gpu-box:11434");
        assert_eq!(out.headers()[http::header::AUTHORIZATION], "Bearer ok-env");
        let bare = Deployment::new("m", "ollama_chat/llama3.1").with_env(|_| None);
        let out = OllamaChat.encode(&req, &bare).unwrap();
        assert_eq!(out.uri().to_string(), "http://localhost:11434/api/chat");
        assert!(!out.headers().contains_key(http::header::AUTHORIZATION));
    }
}
