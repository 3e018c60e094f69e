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

pub(crate) mod auth;
mod decode;
pub mod embed;
mod encode;
mod error;
pub(crate) mod images;
pub(crate) mod passthrough;
mod stream;
pub(crate) mod vertex_claude;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use self::{auth::CredentialSource, decode::GenerateContentResponse};
pub use self::{
    auth::{CLOUD_PLATFORM_SCOPE, DEFAULT_TOKEN_URI, REFRESH_MARGIN},
    encode::generate_content_body,
    error::{classify_google_error, error_from_status_object},
    stream::GeminiStreamMapper,
};
use super::{
    openai::{bearer, invalid_upstream_json, join_url, resolved_head},
    params::Endpoint,
    resolve::{
        bearer_header, credential_header, endpoint, reached, DeploymentEnv, Endpoint as Upstream,
        Refusal, Resolved, VertexState,
    },
    sse::SseStream,
    AccessToken, ByteStream, Deployment, Provider, TokenFuture,
};
use crate::{
    error::{ErrorKind, LlmError},
    types::{
        chat::ChatRequest, ChatStream, EventStream, LlmRequest, LlmResponse, Operation,
        OperationKind,
    },
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
/// Stateless: each deployment gets its own OAuth token cache for service-account credentials when
/// it is built (see [`provider::resolve`](crate::provider::resolve)).
#[derive(Debug, Default)]
pub struct VertexAi;

impl VertexAi {
    /// The provider.
    #[must_use]
    pub const fn new() -> Self {
        Self
    }
}

/// The environment variable Vertex AI deployments fall back on for credentials.
pub(crate) const VERTEX_ENV: &[&str] = &["GOOGLE_APPLICATION_CREDENTIALS"];

/// `generateContent`, or its streaming form.
fn method_for(stream: bool) -> &'static str {
    if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    }
}

/// Resolves a Google AI Studio deployment: both URLs of its model and its `x-goog-api-key`.
pub(crate) fn resolve_gemini(dep: &Deployment, r: &mut Resolved) {
    let base = dep.api_base.as_deref().unwrap_or(DEFAULT_API_BASE);
    let model_url = join_url(base, &format!("models/{}", dep.model));
    r.chat = endpoint(&format!("{model_url}:{}", method_for(false)));
    r.chat_stream = endpoint(&format!("{model_url}:{}", method_for(true)));
    r.embeddings = endpoint(&format!("{model_url}:batchEmbedContents"));
    if let Some(key) = dep.api_key.as_ref().filter(|k| !k.is_empty()) {
        r.credential = Some(credential_header(
            http::HeaderName::from_static("x-goog-api-key"),
            key.expose(),
            "api_key",
        ));
    }
}

/// Resolves a Vertex AI deployment: its URLs when its project is known without credentials, the
/// credentials source (`vertex_credentials`, else `GOOGLE_APPLICATION_CREDENTIALS`), its token
/// cache, and an `api_key` taken as an access token.
pub(crate) fn resolve_vertex(dep: &Deployment, env: &DeploymentEnv, r: &mut Resolved) {
    let at = |method| {
        vertex_url(dep, None, method)
            .map_err(Refusal::from)
            .and_then(|url| endpoint(&url))
    };
    r.chat = at(method_for(false));
    r.chat_stream = at(method_for(true));
    r.embeddings = at("predict");
    if let Some(key) = dep.api_key.as_ref().filter(|k| !k.is_empty()) {
        r.credential = Some(bearer_header(key.expose()));
    }
    let credentials = CredentialSource::from_deployment_in(dep, Some(env)).map(|source| {
        let key = source.key();
        Arc::new((source, key))
    });
    r.vertex = Some(VertexState {
        tokens: env.tokens().cloned().unwrap_or_default(),
        credentials,
        project_endpoints: OnceLock::new(),
    });
}

/// The regional (or global) `generateContent` / `streamGenerateContent` URL; `project` is the one
/// the credentials name, used when the deployment sets no `vertex_project`.
fn vertex_url(dep: &Deployment, project: Option<&str>, method: &str) -> Result<String, LlmError> {
    vertex_model_url(dep, project, "google", method)
}

/// The URL of `method` on the deployment's model of `publisher` (`google`, `anthropic`).
fn vertex_model_url(
    dep: &Deployment,
    project: Option<&str>,
    publisher: &str,
    method: &str,
) -> Result<String, LlmError> {
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
    let project = dep
        .param_str("vertex_project")
        .filter(|p| !p.is_empty())
        .or(project)
        .ok_or_else(|| {
            LlmError::bad_request(
                "vertex_ai needs a project: set vertex_project in litellm_params (or use credentials with a project_id)",
            )
        })?;
    let host = match dep.api_base.as_deref() {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None if location == "global" => "https://aiplatform.googleapis.com".to_owned(),
        None => format!("https://{location}-aiplatform.googleapis.com"),
    };
    Ok(format!(
        "{host}/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{}:{method}",
        dep.model
    ))
}

fn chat_of<'a>(provider: &dyn Provider, req: &'a LlmRequest) -> Result<&'a ChatRequest, LlmError> {
    match &req.op {
        Operation::Chat(chat) => Ok(chat),
        _ => Err(super::unsupported(provider, req)),
    }
}

fn classify(provider: &str, status: StatusCode, _headers: &HeaderMap, body: &[u8]) -> LlmError {
    classify_google_error(provider, status, body)
}

fn decode_chat(req: &LlmRequest, body: &[u8]) -> Result<LlmResponse, LlmError> {
    if let Operation::ImageGenerations(i) = &req.op {
        return images::decode(i, body);
    }
    if let Operation::Embeddings(emb) = &req.op {
        return embed::embeddings_answer(emb, body).map(LlmResponse::embeddings);
    }
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
            Some(match endpoint {
                Endpoint::Chat => SUPPORTED_PARAMS,
                Endpoint::Embeddings => embed::EMBEDDINGS_PARAMS,
            })
        }

        super::delegate_responses!(decode_chat, stream_chat, classify);
    };
}

impl Provider for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn supports(&self, op: OperationKind) -> bool {
        matches!(
            op,
            OperationKind::Chat | OperationKind::Embeddings | OperationKind::ImageGenerations
        )
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        if let Operation::ImageGenerations(i) = &req.op {
            // Imagen: `:predict` beside the model's `generateContent`.
            let r = dep.resolved(self.name());
            let endpoint = images::predict_endpoint(reached(&r.chat)?)?;
            let mut head = resolved_head(&endpoint, &r)?;
            r.add_credential(head.headers_mut())?;
            return images::predict_body(i).map(|body| head.map(|()| body));
        }
        if let Operation::Embeddings(emb) = &req.op {
            let r = dep.resolved(self.name());
            let mut head = resolved_head(reached(&r.embeddings)?, &r)?;
            r.add_credential(head.headers_mut())?;
            let body = embed::batch_embed_body(emb, &dep.model, dep)?;
            return Ok(head.map(|()| body));
        }
        let chat = chat_of(self, req)?;
        let r = dep.resolved(self.name());
        let mut head = resolved_head(r.chat_endpoint(req.is_stream())?, &r)?;
        r.add_credential(head.headers_mut())?;
        generate_content_body(chat, &dep.model).map(|body| head.map(|()| body))
    }

    gemini_shared!();

    fn embedding_inputs_per_call(&self, _dep: &Deployment) -> Option<usize> {
        Some(embed::GEMINI_MAX_INPUTS)
    }
}

impl VertexAi {
    /// The `:rawPredict` / `:streamRawPredict` request of a Messages call to Claude.
    fn encode_claude(
        &self,
        req: &LlmRequest,
        dep: &Deployment,
    ) -> Result<http::Request<Bytes>, LlmError> {
        let r = dep.resolved(self.name());
        let auth = match req.extensions.get::<AccessToken>() {
            Some(AccessToken(token)) if !token.is_empty() => bearer(token.expose())?,
            Some(_) => return Err(no_credentials()),
            None => match &r.credential {
                Some(c) => reached(c)?.1.clone(),
                None => return Err(no_credentials()),
            },
        };
        let project = r.vertex.as_ref().and_then(credentials_project);
        let url = vertex_model_url(
            dep,
            project.as_deref(),
            "anthropic",
            vertex_claude::method(req.is_stream()),
        )?;
        let raw = req
            .raw_body()
            .ok_or_else(|| LlmError::internal("a Messages request without its body"))?;
        let mut up = http::Request::new(vertex_claude::body(raw)?);
        *up.method_mut() = http::Method::POST;
        *up.uri_mut() = Upstream::parse(&url)?.uri().clone();
        let headers = up.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(http::header::AUTHORIZATION, auth);
        vertex_claude::add_betas(req, headers);
        for (name, value) in &*reached(&r.extra_headers)?.list {
            up.headers_mut().append(name.clone(), value.clone());
        }
        Ok(up)
    }

    /// The URL of a call, as a string (the project from the credentials once a token named it).
    #[cfg(test)]
    fn url(&self, req: &LlmRequest, dep: &Deployment) -> Result<String, LlmError> {
        let r = dep.resolved(self.name());
        let project = r.vertex.as_ref().and_then(credentials_project);
        vertex_url(dep, project.as_deref(), method_for(req.is_stream()))
    }

    /// The endpoint of a call: resolved with the deployment, or, when its project comes from the
    /// credentials, made once the first token named it.
    fn endpoint<'a>(
        &self,
        r: &'a Resolved,
        dep: &Deployment,
        stream: bool,
    ) -> Result<&'a Upstream, LlmError> {
        let target = if stream { &r.chat_stream } else { &r.chat };
        let (Err(_), Some(v)) = (target, r.vertex.as_ref()) else {
            return reached(target);
        };
        if v.project_endpoints.get().is_none() {
            let Some(project) = credentials_project(v) else {
                return reached(target);
            };
            let parse = |stream| {
                vertex_url(dep, Some(&project), method_for(stream))
                    .and_then(|u| Upstream::parse(&u))
            };
            let _ = v.project_endpoints.set((parse(false)?, parse(true)?));
        }
        match v.project_endpoints.get() {
            Some((chat, streamed)) => Ok(if stream { streamed } else { chat }),
            None => reached(target),
        }
    }
}

/// The project the deployment's credentials name (known once a token was fetched with them).
fn credentials_project(v: &VertexState) -> Option<String> {
    let (_, key) = &**v.credentials.as_ref()?;
    v.tokens.project_of(key)
}

fn no_credentials() -> LlmError {
    LlmError::new(
        ErrorKind::Authentication,
        "vertex_ai needs credentials: vertex_credentials (a service account JSON, or its path), GOOGLE_APPLICATION_CREDENTIALS, or an access token as api_key",
    )
    .with_provider("vertex_ai")
}

impl Provider for VertexAi {
    fn name(&self) -> &'static str {
        "vertex_ai"
    }

    fn supports(&self, op: OperationKind) -> bool {
        matches!(
            op,
            OperationKind::Chat | OperationKind::Embeddings | OperationKind::ImageGenerations
        )
    }

    /// Also Anthropic's Messages relayed to a Claude model (`:rawPredict`: see `vertex_claude`).
    fn supports_for(&self, op: OperationKind, dep: &Deployment) -> bool {
        self.supports(op) || (op == OperationKind::Messages && vertex_claude::is_claude(dep))
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        if let Operation::Messages(_) = &req.op {
            return self.encode_claude(req, dep);
        }
        let r = dep.resolved(self.name());
        // A fetched token, else the deployment's api_key as an access token.
        let auth = match req.extensions.get::<AccessToken>() {
            Some(AccessToken(token)) if !token.is_empty() => bearer(token.expose())?,
            Some(_) => return Err(no_credentials()),
            None => match &r.credential {
                Some(c) => reached(c)?.1.clone(),
                None => return Err(no_credentials()),
            },
        };
        if let Operation::ImageGenerations(i) = &req.op {
            // Imagen: `:predict` beside the model's `generateContent`.
            let endpoint = self.endpoint(&r, dep, false)?;
            let mut head = resolved_head(&images::predict_endpoint(endpoint)?, &r)?;
            head.headers_mut().append(http::header::AUTHORIZATION, auth);
            return images::predict_body(i).map(|body| head.map(|()| body));
        }
        if let Operation::Embeddings(emb) = &req.op {
            // The project from the credentials, when the deployment names none.
            let from_credentials;
            let target = match (
                &r.embeddings,
                r.vertex.as_ref().and_then(credentials_project),
            ) {
                (Err(_), Some(project)) => {
                    from_credentials =
                        Upstream::parse(&vertex_url(dep, Some(&project), "predict")?)?;
                    &from_credentials
                }
                (target, _) => reached(target)?,
            };
            let mut head = resolved_head(target, &r)?;
            head.headers_mut().append(http::header::AUTHORIZATION, auth);
            let body = embed::predict_body(emb, dep)?;
            return Ok(head.map(|()| body));
        }
        let chat = chat_of(self, req)?;
        let mut head = resolved_head(self.endpoint(&r, dep, req.is_stream())?, &r)?;
        head.headers_mut().append(http::header::AUTHORIZATION, auth);
        generate_content_body(chat, &dep.model).map(|body| head.map(|()| body))
    }

    fn supported_params(&self, endpoint: Endpoint) -> Option<&'static [&'static str]> {
        // No embeddings here: `encode` refuses them before any parameter matters.
        (endpoint == Endpoint::Chat).then_some(SUPPORTED_PARAMS)
    }

    fn decode(
        &self,
        req: &LlmRequest,
        resp: http::Response<Bytes>,
        _dep: &Deployment,
    ) -> Result<LlmResponse, LlmError> {
        match &req.op {
            Operation::Messages(_) => super::anthropic::messages::decode_relay(resp.body(), false),
            _ => decode_chat(req, resp.body()),
        }
    }

    fn decode_stream(
        &self,
        req: &LlmRequest,
        _parts: http::response::Parts,
        body: ByteStream,
        _dep: &Deployment,
    ) -> Result<ChatStream, LlmError> {
        Ok(stream_chat(self.name(), req, body))
    }

    fn decode_events(
        &self,
        req: &LlmRequest,
        _parts: http::response::Parts,
        body: ByteStream,
        _dep: &Deployment,
    ) -> Result<EventStream, LlmError> {
        match &req.op {
            Operation::Messages(_) => {
                Ok(super::anthropic::messages::RelayEvents::new(body).boxed())
            }
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
        classify(self.name(), status, headers, body)
    }

    fn embedding_inputs_per_call(&self, dep: &Deployment) -> Option<usize> {
        Some(embed::vertex_inputs_per_call(&dep.model))
    }

    /// The service-account token when the deployment has no ready access token (`api_key`), from
    /// the deployment's own token cache.
    fn access_token(&self, dep: &Deployment) -> Option<TokenFuture> {
        if dep.api_key.as_ref().is_some_and(|k| !k.is_empty()) {
            return None;
        }
        let r = dep.resolved(self.name());
        let v = r.vertex.as_ref()?;
        let credentials = v.credentials.clone()?;
        let tokens = v.tokens.clone();
        Some(Box::pin(async move {
            let (source, key) = &*credentials;
            tokens.token(source, key).await
        }))
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

    /// Each deployment has its own token cache, shared by its clones (a wildcard's concrete
    /// copies), and the credentials file named by the environment it was built with.
    #[test]
    fn token_cache_per_deployment_and_credentials_from_its_environment() {
        let env =
            |n: &str| (n == "GOOGLE_APPLICATION_CREDENTIALS").then(|| "/etc/sa.json".to_owned());
        let mut a = vertex_dep(serde_json::json!({"vertex_project": "p"})).with_env(env);
        a.api_key = None;
        let b = a.clone();
        let c = vertex_dep(serde_json::json!({"vertex_project": "p"})).with_env(env);
        let cache = |d: &Deployment| {
            d.resolved("vertex_ai")
                .vertex
                .as_ref()
                .unwrap()
                .tokens
                .clone()
        };
        assert!(Arc::ptr_eq(&cache(&a), &cache(&b)));
        assert!(!Arc::ptr_eq(&cache(&a), &cache(&c)));
        let r = a.resolved("vertex_ai");
        let (source, _) = &**r.vertex.as_ref().unwrap().credentials.as_ref().unwrap();
        assert!(matches!(source, CredentialSource::Path(p) if p.to_str() == Some("/etc/sa.json")));
        assert!(VertexAi::new().access_token(&a).is_some());
        // A ready access token needs no exchange.
        assert!(VertexAi::new().access_token(&c).is_none());
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
