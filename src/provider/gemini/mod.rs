//! `gemini/` (Google AI Studio) and `vertex_ai/` (Vertex AI): one wire family, two providers.
//!
//! Both speak Gemini's `generateContent` / `streamGenerateContent?alt=sse`; they differ in the URL and
//! the credential.
//!
//! | | `gemini/` | `vertex_ai/` |
//! | --- | --- | --- |
//! | URL | `{api_base}/models/{model}:{method}`, `api_base` defaulting to `https://generativelanguage.googleapis.com/v1beta` | `https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{method}` (`aiplatform.googleapis.com` for `global`) |
//! | credential | `api_key` in `x-goog-api-key` | `Authorization: Bearer`: `api_key` taken as an access token, else `vertex_credentials` (service account JSON: object, JSON string or file path; else `GOOGLE_APPLICATION_CREDENTIALS`) exchanged for an OAuth token, cached until shortly before it expires |
//!
//! Vertex's `litellm_params`: `vertex_project` (else the credentials' `project_id`),
//! `vertex_location` (or `vertex_region`; default `us-central1`). An `api_base` replaces the host;
//! one that already holds a model path (`…/models/{model}`, LiteLLM's custom-proxy form) is used
//! as-is before `:{method}`.
//!
//! ```yaml
//! model_list:
//!   - model_name: gemini-flash
//!     litellm_params:
//!       model: gemini/gemini-2.5-flash
//!       api_key: os.environ/GEMINI_API_KEY
//!   - model_name: vertex-flash
//!     litellm_params:
//!       model: vertex_ai/gemini-2.5-flash
//!       vertex_project: my-project
//!       vertex_location: europe-west4
//!       vertex_credentials: /secrets/service-account.json
//! ```
//!
//! Translation (see [`generate_content_body`]): system messages → `systemInstruction`; assistant →
//! role `model`; consecutive same-role turns merged; tool calls and results → `functionCall` /
//! `functionResponse` parts; `data:` images → `inlineData`, other URLs → `fileData`; sampling
//! parameters, `response_format` (→ `responseMimeType` / `responseJsonSchema`) and
//! `reasoning_effort` (→ `thinkingConfig`) → `generationConfig`. Answers: thought parts →
//! `reasoning_content`; `STOP` → `stop` (or `tool_calls` after a function call), `MAX_TOKENS` →
//! `length`, safety-type reasons and a blocked prompt → `content_filter` with `content: null`;
//! usage counts thoughts as completion (reasoning) tokens and cached content as cached tokens.
//! Errors are classified by [`classify_google_error`].

mod auth;
mod decode;
mod encode;
mod error;
mod stream;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use self::{
    auth::{CredentialSource, TokenCache},
    decode::GenerateContentResponse,
};
pub use self::{
    auth::{CLOUD_PLATFORM_SCOPE, DEFAULT_TOKEN_URI, REFRESH_MARGIN},
    encode::generate_content_body,
    error::{classify_google_error, error_from_status_object},
    stream::GeminiStreamMapper,
};
use super::{
    openai::{bearer, invalid_upstream_json, join_url, json_request},
    params::Endpoint,
    sse::SseStream,
    AccessToken, ByteStream, Deployment, Provider, TokenFuture,
};
use crate::{
    error::{ErrorKind, LlmError},
    types::{chat::ChatRequest, ChatStream, LlmRequest, LlmResponse, Operation},
};

/// Google AI Studio's default base URL.
pub const DEFAULT_API_BASE: &str = "https://generativelanguage.googleapis.com/v1beta";
/// Vertex AI's default location.
pub const DEFAULT_VERTEX_LOCATION: &str = "us-central1";

/// The `gemini/` provider (Google AI Studio). See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Gemini;

/// The `vertex_ai/` provider. See the [module docs](self).
///
/// Holds the OAuth token cache for service-account credentials; the built-in instance behind
/// [`lookup("vertex_ai")`](crate::provider::lookup) is shared by every deployment.
#[derive(Debug, Default)]
pub struct VertexAi {
    tokens: OnceLock<Arc<TokenCache>>,
}

impl VertexAi {
    /// A provider with an empty token cache.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            tokens: OnceLock::new(),
        }
    }

    fn tokens(&self) -> &Arc<TokenCache> {
        self.tokens.get_or_init(Arc::default)
    }
}

fn chat_of<'a>(provider: &dyn Provider, req: &'a LlmRequest) -> Result<&'a ChatRequest, LlmError> {
    match &req.op {
        Operation::Chat(chat) => Ok(chat),
        _ => Err(super::unsupported(provider, req)),
    }
}

fn method(req: &LlmRequest) -> &'static str {
    if req.is_stream() {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    }
}

fn classify(provider: &str, status: StatusCode, _headers: &HeaderMap, body: &[u8]) -> LlmError {
    classify_google_error(provider, status, body)
}

fn decode_chat(req: &LlmRequest, body: &[u8]) -> Result<LlmResponse, LlmError> {
    let resp: GenerateContentResponse = serde_json::from_slice(body)
        .map_err(|e| invalid_upstream_json("generateContent response", &e))?;
    Ok(LlmResponse::chat(decode::chat_response(resp, req.model())))
}

fn stream_chat(provider: &'static str, req: &LlmRequest, body: ByteStream) -> ChatStream {
    let include_usage = req
        .as_chat()
        .and_then(|c| c.stream_options.as_ref())
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    Box::pin(SseStream::new(
        body,
        GeminiStreamMapper::new(provider, req.model().to_owned(), include_usage),
    ))
}

/// The OpenAI chat parameters the `generateContent` translation maps beyond
/// [`CORE_PARAMS`](super::params::CORE_PARAMS) (LiteLLM's Gemini list, less what is not mapped
/// here: `logprobs`, `modalities`, `audio`, `web_search_options`, …).
pub const SUPPORTED_PARAMS: &[&str] = &[
    "n",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "reasoning_effort",
    "tools",
    "tool_choice",
];

/// What `gemini/` and `vertex_ai/` share (one wire family): supported parameters, `decode`,
/// `decode_stream`, `classify`. Used inside an `impl Provider` block.
macro_rules! gemini_shared {
    () => {
        fn supported_params(&self, endpoint: Endpoint) -> Option<&'static [&'static str]> {
            // No embeddings here: `encode` refuses them before any parameter matters.
            (endpoint == Endpoint::Chat).then_some(SUPPORTED_PARAMS)
        }

        super::delegate_responses!(decode_chat, stream_chat, classify);
    };
}

impl Provider for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        let chat = chat_of(self, req)?;
        let base = dep.api_base.as_deref().unwrap_or(DEFAULT_API_BASE);
        let url = format!(
            "{}:{}",
            join_url(base, &format!("models/{}", dep.model)),
            method(req)
        );
        let mut head = json_request(&url, dep)?;
        if let Some(key) = dep.api_key.as_ref().filter(|k| !k.is_empty()) {
            let mut v = http::HeaderValue::try_from(key.expose()).map_err(|_| {
                LlmError::new(
                    ErrorKind::Authentication,
                    "the deployment's api_key contains characters not allowed in a header",
                )
            })?;
            v.set_sensitive(true);
            head.headers_mut()
                .append(http::HeaderName::from_static("x-goog-api-key"), v);
        }
        generate_content_body(chat, &dep.model).map(|body| head.map(|()| body))
    }

    gemini_shared!();
}

impl VertexAi {
    /// The regional (or global) `generateContent` / `streamGenerateContent` URL.
    fn url(&self, req: &LlmRequest, dep: &Deployment) -> Result<String, LlmError> {
        let method = method(req);
        if let Some(base) = dep.api_base.as_deref() {
            if base.contains("/models/") {
                return Ok(format!("{}:{method}", base.trim_end_matches('/')));
            }
        }
        let location = dep
            .param_str("vertex_location")
            .or_else(|| dep.param_str("vertex_region"))
            .filter(|l| !l.is_empty())
            .unwrap_or(DEFAULT_VERTEX_LOCATION);
        let project = match dep.param_str("vertex_project").filter(|p| !p.is_empty()) {
            Some(p) => p.to_owned(),
            None => CredentialSource::from_deployment(dep)
                .and_then(|s| self.tokens().project_of(&s.key()))
                .ok_or_else(|| {
                    LlmError::bad_request(
                        "vertex_ai needs a project: set vertex_project in litellm_params (or use credentials with a project_id)",
                    )
                })?,
        };
        let host = match dep.api_base.as_deref() {
            Some(base) => base.trim_end_matches('/').to_owned(),
            None if location == "global" => "https://aiplatform.googleapis.com".to_owned(),
            None => format!("https://{location}-aiplatform.googleapis.com"),
        };
        Ok(format!(
            "{host}/v1/projects/{project}/locations/{location}/publishers/google/models/{}:{method}",
            dep.model
        ))
    }
}

impl Provider for VertexAi {
    fn name(&self) -> &'static str {
        "vertex_ai"
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        let chat = chat_of(self, req)?;
        let token = req
            .extensions
            .get::<AccessToken>()
            .map(|t| &t.0)
            .or(dep.api_key.as_ref())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                LlmError::new(
                    ErrorKind::Authentication,
                    "vertex_ai needs credentials: vertex_credentials (a service account JSON, or its path), GOOGLE_APPLICATION_CREDENTIALS, or an access token as api_key",
                )
                .with_provider(self.name())
            })?;
        let mut head = json_request(&self.url(req, dep)?, dep)?;
        head.headers_mut()
            .append(http::header::AUTHORIZATION, bearer(token.expose())?);
        generate_content_body(chat, &dep.model).map(|body| head.map(|()| body))
    }

    gemini_shared!();

    /// The service-account token when the deployment has no ready access token (`api_key`).
    fn access_token(&self, dep: &Deployment) -> Option<TokenFuture> {
        if dep.api_key.as_ref().is_some_and(|k| !k.is_empty()) {
            return None;
        }
        let source = CredentialSource::from_deployment(dep)?;
        let tokens = self.tokens().clone();
        Some(Box::pin(async move { tokens.token(source).await }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_req(stream: bool) -> LlmRequest {
        LlmRequest::chat(
            serde_json::from_value(serde_json::json!({
                "model": "g", "messages": [{"role": "user", "content": "hi"}], "stream": stream
            }))
            .unwrap(),
        )
    }

    fn vertex_dep(params: serde_json::Value) -> Deployment {
        let mut dep = Deployment::new("g", "vertex_ai/gemini-2.5-flash").with_api_key("ya29.t");
        let serde_json::Value::Object(params) = params else {
            panic!("params must be an object")
        };
        dep.params = params;
        dep
    }

    #[test]
    fn vertex_urls() {
        let v = VertexAi::new();
        let dep =
            vertex_dep(serde_json::json!({"vertex_project": "p", "vertex_location": "global"}));
        assert_eq!(
            v.url(&chat_req(false), &dep).unwrap(),
            "https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-flash:generateContent"
        );
        let dep = vertex_dep(serde_json::json!({"vertex_project": "p"}));
        assert_eq!(
            v.url(&chat_req(true), &dep).unwrap(),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        let dep = vertex_dep(serde_json::json!({"vertex_project": "p"}))
            .with_api_base("https://gw.example/v1/acct/google-vertex-ai/v1/projects/p/locations/l/publishers/google/models/m");
        assert_eq!(
            v.url(&chat_req(false), &dep).unwrap(),
            "https://gw.example/v1/acct/google-vertex-ai/v1/projects/p/locations/l/publishers/google/models/m:generateContent"
        );
        let dep = vertex_dep(serde_json::json!({}));
        assert_eq!(
            v.url(&chat_req(false), &dep).unwrap_err().kind(),
            ErrorKind::BadRequest
        );
    }

    #[test]
    fn vertex_without_credentials_is_an_auth_error() {
        let mut dep = vertex_dep(serde_json::json!({"vertex_project": "p"}));
        dep.api_key = None;
        let err = VertexAi::new().encode(&chat_req(false), &dep).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Authentication);
    }

    #[test]
    fn gemini_key_header_is_sensitive() {
        let dep = Deployment::new("g", "gemini/gemini-2.5-flash").with_api_key("k");
        let req = Gemini.encode(&chat_req(false), &dep).unwrap();
        assert!(req.headers()["x-goog-api-key"].is_sensitive());
        assert_eq!(
            req.uri().to_string(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
    }
}
