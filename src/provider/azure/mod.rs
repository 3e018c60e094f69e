//! `azure/`: Azure OpenAI deployments.
//!
//! The wire format is OpenAI's, so the body, responses, stream chunks and error objects come from the
//! [`openai`](super::openai) module; Azure differs in where and how it is called:
//!
//! - URL: `{api_base}/openai/deployments/{deployment}/chat/completions?api-version={api_version}`
//!   (and `/embeddings`), where the deployment is the model after `azure/`. The body's `model` is the
//!   deployment name too, as LiteLLM (through the AzureOpenAI SDK) sends it.
//! - `api_version`: the deployment's, else `AZURE_API_VERSION`, else LiteLLM's default
//!   ([`DEFAULT_API_VERSION`]).
//! - `api_base`: the deployment's, else `AZURE_API_BASE`.
//! - Auth: the `api-key` header with the deployment key (else `AZURE_API_KEY`); without a key, an
//!   `azure_ad_token` from `litellm_params` (else `AZURE_AD_TOKEN`) as `Authorization: Bearer`, or the
//!   [`AccessToken`] a credential hook fetched.
//! - Content filtering: `prompt_filter_results`, per-choice `content_filter_results` and the first
//!   stream event with empty `choices` are relayed unchanged; a `finish_reason` of `content_filter`
//!   is a success. An error with code `content_filter` is
//!   [`ContentPolicyViolation`](crate::ErrorKind::ContentPolicyViolation), relayed with its
//!   `innererror`. Azure's bare `{code, message}` errors (429) become the OpenAI error JSON.
//! - **The v1 API** (Azure's `/openai/v1/…`, no deployment in the path): chosen by an `api_base`
//!   whose path holds `/openai/v1` (`https://x.openai.azure.com/openai/v1`), or by `api_version`
//!   `v1`, `latest` or `preview` (LiteLLM's `_is_azure_v1_api_version`). Calls go to
//!   `{resource}/openai/v1/chat/completions`, `/openai/v1/embeddings` and `/openai/v1/responses`
//!   with the deployment as the body's `model`, and no `api-version` query, except
//!   `api-version=preview` when `api_version` is `preview` (Azure's preview features). Auth as
//!   above (`api-key`, or `Authorization: Bearer` with an Entra ID token).

pub(crate) mod passthrough;
use bytes::Bytes;
use http::HeaderName;

use super::{
    openai::{
        bearer, chat_body, embeddings_body, join_url, openai_shaped_responses, resolved_head,
    },
    resolve::{
        bearer_header, credential_header, endpoint, reached, DeploymentEnv, Refusal, Resolved,
    },
    AccessToken, Deployment, Provider,
};
use crate::{
    error::LlmError,
    secret::Secret,
    types::{LlmRequest, Operation},
};

/// Azure's key header.
const API_KEY: HeaderName = HeaderName::from_static("api-key");

/// LiteLLM's `AZURE_DEFAULT_API_VERSION`, used when neither the deployment nor `AZURE_API_VERSION`
/// sets one.
pub const DEFAULT_API_VERSION: &str = "2025-02-01-preview";

/// The `azure/` provider. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Azure;

/// The environment variables Azure deployments fall back on.
pub(crate) const ENV: &[&str] = &[
    "AZURE_API_BASE",
    "AZURE_API_KEY",
    "AZURE_API_VERSION",
    "AZURE_AD_TOKEN",
];

/// Resolves an Azure deployment: its URLs (base and version from the deployment, else the
/// environment) and its credential (`api-key`, else `azure_ad_token`, else `AZURE_AD_TOKEN` after
/// a fetched [`AccessToken`]).
pub(crate) fn resolve(dep: &Deployment, env: &DeploymentEnv, r: &mut Resolved) {
    let asked = dep
        .api_version
        .as_deref()
        .or_else(|| env.first(&["AZURE_API_VERSION"]));
    let version = asked.unwrap_or(DEFAULT_API_VERSION);
    let base = match dep.api_base.as_deref().or_else(|| env.first(&["AZURE_API_BASE"])) {
        None => Err(LlmError::bad_request(
            "the azure provider needs an api_base (https://<resource>.openai.azure.com), in litellm_params or AZURE_API_BASE",
        )),
        Some(_) if dep.model.contains(['/', '?', '#']) || version.contains(['&', '#', ' ']) => {
            Err(LlmError::bad_request(
                "the azure deployment name or api_version contains characters not allowed in a URL",
            ))
        }
        Some(base) => Ok(base),
    };
    match base {
        Ok(base) if is_v1(base, asked) => {
            r.chat = endpoint(&v1_url(base, "chat/completions", asked));
            r.chat_stream = r.chat.clone();
            r.embeddings = endpoint(&v1_url(base, "embeddings", asked));
        }
        Ok(base) => {
            r.chat = endpoint(&deployment_url(
                base,
                &dep.model,
                "chat/completions",
                version,
            ));
            r.chat_stream = r.chat.clone();
            r.embeddings = endpoint(&deployment_url(base, &dep.model, "embeddings", version));
        }
        Err(e) => {
            let refusal = Refusal::from(e);
            r.chat = Err(refusal.clone());
            r.chat_stream = Err(refusal.clone());
            r.embeddings = Err(refusal);
        }
    }
    let key = dep
        .api_key
        .as_ref()
        .filter(|k| !k.is_empty())
        .map(Secret::expose)
        .or_else(|| env.first(&["AZURE_API_KEY"]));
    if let Some(key) = key {
        r.credential = Some(credential_header(API_KEY, key, "api_key"));
    } else if let Some(token) = dep.param_str("azure_ad_token").filter(|t| !t.is_empty()) {
        r.credential = Some(bearer_header(token));
    } else if let Some(token) = env.first(&["AZURE_AD_TOKEN"]) {
        r.fallback_credential = Some(bearer_header(token));
    }
}

/// The oldest Azure `api-version` with the Responses API.
const RESPONSES_API_VERSION: &str = "2025-03-01-preview";

/// Azure's Responses endpoint for a deployment whose chat endpoint is `chat`:
/// `{api_base}/openai/responses?api-version={api_version}` (the deployment is named by the body's
/// `model`). A dated `api_version` older than the Responses API's first one is raised to it.
fn responses_endpoint(
    chat: &super::resolve::Endpoint,
) -> Result<super::resolve::Endpoint, LlmError> {
    let uri = chat.uri();
    let path = uri.path();
    let Some(at) = path.find("/openai/deployments/") else {
        return super::openai::sibling_endpoint(chat);
    };
    let version = uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("api-version=")))
        .unwrap_or(RESPONSES_API_VERSION);
    let dated = version.as_bytes().first().is_some_and(u8::is_ascii_digit);
    let version = if dated && version < RESPONSES_API_VERSION {
        RESPONSES_API_VERSION
    } else {
        version
    };
    let mut url = String::with_capacity(path.len() + 64);
    if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
        url.push_str(scheme);
        url.push_str("://");
        url.push_str(authority.as_str());
    }
    url.push_str(&path[..at]);
    url.push_str("/openai/responses?api-version=");
    url.push_str(version);
    super::resolve::Endpoint::parse(&url)
}

/// Whether a deployment calls Azure's v1 API: its `api_base` path holds `/openai/v1`, or its
/// `api_version` is `v1`, `latest` or `preview`.
fn is_v1(base: &str, api_version: Option<&str>) -> bool {
    let path = base.split_once("://").map_or(base, |(_, rest)| {
        rest.find('/').map_or("", |at| &rest[at..])
    });
    path.trim_end_matches('/').ends_with("/openai/v1")
        || path.contains("/openai/v1/")
        || matches!(api_version, Some("v1" | "latest" | "preview"))
}

/// The v1 API URL for `path` (`chat/completions`, `embeddings`): `{resource}/openai/v1/{path}`,
/// with `?api-version=preview` only for the `preview` version.
fn v1_url(base: &str, path: &str, api_version: Option<&str>) -> String {
    let base = base.trim_end_matches('/');
    let root = base
        .strip_suffix("/openai/v1")
        .or_else(|| base.strip_suffix("/openai"))
        .unwrap_or(base);
    let mut url = join_url(root, "openai/v1/");
    url.push_str(path);
    if api_version == Some("preview") {
        url.push_str("?api-version=preview");
    }
    url
}

/// The deployment URL for `path` (`chat/completions`, `embeddings`).
fn deployment_url(base: &str, deployment: &str, path: &str, api_version: &str) -> String {
    let mut url = join_url(base, "openai/deployments/");
    url.push_str(deployment);
    url.push('/');
    url.push_str(path);
    url.push_str("?api-version=");
    url.push_str(api_version);
    url
}

impl Provider for Azure {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn supports(&self, op: crate::types::OperationKind) -> bool {
        matches!(
            op,
            crate::types::OperationKind::Chat
                | crate::types::OperationKind::Embeddings
                | crate::types::OperationKind::Responses
                | crate::types::OperationKind::ResponseObject
        ) || super::openai::media::is_media(op)
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        let r = dep.resolved(self.name());
        let responses;
        let media_endpoint;
        let mut content_type = None;
        let (endpoint, body) = match &req.op {
            Operation::ImageGenerations(_) | Operation::Upload(_) | Operation::AudioSpeech(_) => {
                // Beside the deployment's chat endpoint, with its api-version.
                media_endpoint = super::openai::media::sibling(reached(&r.chat)?, req.kind())?;
                let (body, ct) = super::openai::media::body(req, &dep.model)?;
                content_type = ct;
                (&media_endpoint, body)
            }
            Operation::ResponseObject(_) => {
                responses = responses_endpoint(reached(&r.chat)?)?;
                (&responses, Bytes::new())
            }
            Operation::Responses(body) => {
                responses = responses_endpoint(reached(&r.chat)?)?;
                (
                    &responses,
                    super::openai::responses_body(
                        body,
                        req.raw_body().map(|b| &b[..]),
                        &dep.model,
                    )?,
                )
            }
            Operation::Chat(chat) => (
                r.chat_endpoint(req.is_stream())?,
                chat_body(chat, req.raw_body().map(|b| &b[..]), &dep.model)?,
            ),
            Operation::Embeddings(emb) => (
                reached(&r.embeddings)?,
                embeddings_body(emb, req.raw_body().map(|b| &b[..]), &dep.model)?,
            ),
            _ => return Err(super::unsupported(self, req)),
        };
        let mut head = match &req.op {
            // A call on a response this deployment made: `…/openai/responses/{id}…`.
            Operation::ResponseObject(obj) => {
                super::openai::object_request(endpoint, obj, &r)?.map(|_| ())
            }
            _ => resolved_head(endpoint, &r)?,
        };
        let headers = head.headers_mut();
        if let Some(ct) = content_type {
            headers.insert(http::header::CONTENT_TYPE, ct);
        }
        if r.credential.is_some() {
            r.add_credential(headers)?;
        } else if let Some(AccessToken(token)) = req.extensions.get::<AccessToken>() {
            headers.append(http::header::AUTHORIZATION, bearer(token.expose())?);
        } else if let Some(fallback) = &r.fallback_credential {
            let (name, value) = reached(fallback)?;
            headers.append(name.clone(), value.clone());
        }
        Ok(head.map(|()| body))
    }

    openai_shaped_responses!();
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, StatusCode};

    use super::*;
    use crate::error::ErrorKind;

    fn dep() -> Deployment {
        let mut d = Deployment::new("gpt-4o", "azure/my-deployment")
            .with_api_base("https://myres.openai.azure.com/")
            .with_api_key("test-key");
        d.api_version = Some("2024-10-21".into());
        d
    }

    /// A Responses request goes to `/openai/responses` with an api-version that has it, as the
    /// client's bytes with the deployment as `model`.
    #[test]
    fn relays_a_responses_request_to_the_responses_endpoint() {
        let raw = br#"{"model":"gpt-4o", "input":"hi","store":false,"fallbacks":["x"]}"#;
        let req = LlmRequest::responses_from_bytes(
            serde_json::from_slice(raw).unwrap(),
            bytes::Bytes::from_static(raw),
        );
        let out = Azure.encode(&req, &dep()).unwrap();
        assert_eq!(
            out.uri().to_string(),
            "https://myres.openai.azure.com/openai/responses?api-version=2025-03-01-preview"
        );
        assert_eq!(
            out.body(),
            &br#"{"model":"my-deployment", "input":"hi","store":false}"#[..]
        );
        assert_eq!(out.headers()["api-key"], "test-key");
        let mut newer = dep();
        newer.api_version = Some("2025-04-01-preview".into());
        let out = Azure.encode(&req, &newer).unwrap();
        assert!(out
            .uri()
            .to_string()
            .ends_with("api-version=2025-04-01-preview"));
    }

    /// Azure's v1 API: by an `/openai/v1` base or a v1 `api_version`; no deployment path, the
    /// deployment as the body's model, no dated api-version.
    #[test]
    fn v1_api_urls() {
        let chat = |base: &str, version: Option<&str>| {
            let mut d = Deployment::new("gpt-4o", "azure/my-deployment")
                .with_api_base(base)
                .with_api_key("test-key");
            d.api_version = version.map(Into::into);
            let req = LlmRequest::chat(
                serde_json::from_str(
                    r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
                )
                .unwrap(),
            );
            let out = Azure.encode(&req, &d).unwrap();
            let body: serde_json::Value = serde_json::from_slice(out.body()).unwrap();
            assert_eq!(body["model"], "my-deployment");
            assert_eq!(out.headers()["api-key"], "test-key");
            out.uri().to_string()
        };
        assert_eq!(
            chat("https://x.openai.azure.com/openai/v1", None),
            "https://x.openai.azure.com/openai/v1/chat/completions"
        );
        assert_eq!(
            chat("https://x.openai.azure.com/openai/v1/", Some("2024-10-21")),
            "https://x.openai.azure.com/openai/v1/chat/completions"
        );
        assert_eq!(
            chat("https://x.openai.azure.com", Some("v1")),
            "https://x.openai.azure.com/openai/v1/chat/completions"
        );
        assert_eq!(
            chat("https://x.openai.azure.com/openai", Some("preview")),
            "https://x.openai.azure.com/openai/v1/chat/completions?api-version=preview"
        );
        assert_eq!(
            chat("https://x.openai.azure.com", Some("latest")),
            "https://x.openai.azure.com/openai/v1/chat/completions"
        );
        // A dated version on a plain base: the deployment route, as before.
        assert_eq!(
            chat("https://x.openai.azure.com", Some("2024-10-21")),
            "https://x.openai.azure.com/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21"
        );
        assert!(!is_v1("https://openai.example/v1beta", None));
    }

    #[test]
    fn builds_deployment_url_and_api_key_header() {
        let req = LlmRequest::chat(
            serde_json::from_str(
                r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
            )
            .unwrap(),
        );
        let out = Azure.encode(&req, &dep()).unwrap();
        assert_eq!(
            out.uri().to_string(),
            "https://myres.openai.azure.com/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(out.headers()["api-key"], "test-key");
        assert!(out.headers()["api-key"].is_sensitive());
        assert!(!out.headers().contains_key(http::header::AUTHORIZATION));
    }

    /// A request built from the client's bytes is sent as those bytes, `model` replaced by the
    /// deployment name and gateway controls removed.
    #[test]
    fn sends_the_clients_bytes() {
        let raw = r#"{"messages":[],  "model":"gpt-4o","x":1.50,"metadata":{}}"#;
        let req = LlmRequest::chat_from_bytes(
            serde_json::from_str(raw).unwrap(),
            Bytes::from_static(raw.as_bytes()),
        );
        let out = Azure.encode(&req, &dep()).unwrap();
        assert_eq!(
            &out.body()[..],
            br#"{"messages":[],  "model":"my-deployment","x":1.50}"#
        );
        let raw = r#"{"input":"a" ,"model":"e"}"#;
        let req = LlmRequest::embeddings_from_bytes(
            serde_json::from_str(raw).unwrap(),
            Bytes::from_static(raw.as_bytes()),
        );
        let out = Azure.encode(&req, &dep()).unwrap();
        assert_eq!(
            &out.body()[..],
            br#"{"input":"a" ,"model":"my-deployment"}"#
        );
    }

    #[test]
    fn ad_token_becomes_bearer() {
        // No AZURE_API_KEY in the environment the deployment was built with.
        let mut d = dep().with_env(|_| None);
        d.api_key = None;
        d.params
            .insert("azure_ad_token".into(), serde_json::Value::from("tok"));
        let req =
            LlmRequest::chat(serde_json::from_str(r#"{"model":"gpt-4o","messages":[]}"#).unwrap());
        let out = Azure.encode(&req, &d).unwrap();
        assert_eq!(out.headers()[http::header::AUTHORIZATION], "Bearer tok");
        assert!(!out.headers().contains_key("api-key"));
    }

    /// `AZURE_API_BASE` / `AZURE_API_KEY` / `AZURE_API_VERSION` / `AZURE_AD_TOKEN` as read when the
    /// deployment was built, each losing to the deployment's own value.
    #[test]
    fn environment_fallbacks_in_litellms_order() {
        let req =
            LlmRequest::chat(serde_json::from_str(r#"{"model":"gpt-4o","messages":[]}"#).unwrap());
        let env = |n: &str| {
            Some(
                match n {
                    "AZURE_API_BASE" => "https://envres.openai.azure.com",
                    "AZURE_API_KEY" => "env-key",
                    "AZURE_API_VERSION" => "2024-06-01",
                    "AZURE_AD_TOKEN" => "env-ad",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let bare = Deployment::new("g", "azure/dep1").with_env(env);
        let out = Azure.encode(&req, &bare).unwrap();
        assert_eq!(
            out.uri().to_string(),
            "https://envres.openai.azure.com/openai/deployments/dep1/chat/completions?api-version=2024-06-01"
        );
        assert_eq!(out.headers()["api-key"], "env-key");
        // The deployment's own values win.
        let own = dep().with_env(env);
        let out = Azure.encode(&req, &own).unwrap();
        assert_eq!(
            out.uri().to_string(),
            "https://myres.openai.azure.com/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(out.headers()["api-key"], "test-key");
        // Without a key, AZURE_AD_TOKEN is the last resort: after a fetched access token.
        let only_ad = Deployment::new("g", "azure/dep1").with_env(|n| match n {
            "AZURE_API_BASE" => Some("https://r.openai.azure.com".to_owned()),
            "AZURE_AD_TOKEN" => Some("env-ad".to_owned()),
            _ => None,
        });
        let out = Azure.encode(&req, &only_ad).unwrap();
        assert_eq!(out.headers()[http::header::AUTHORIZATION], "Bearer env-ad");
        let mut fetched = req.clone();
        fetched
            .extensions
            .insert(AccessToken(Secret::new("fetched")));
        let out = Azure.encode(&fetched, &only_ad).unwrap();
        assert_eq!(out.headers()[http::header::AUTHORIZATION], "Bearer fetched");
        // No base anywhere: a 400 naming AZURE_API_BASE, on every call.
        let none = Deployment::new("g", "azure/dep1").with_env(|_| None);
        for _ in 0..2 {
            let err = Azure.encode(&req, &none).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadRequest);
            assert!(err.message().contains("AZURE_API_BASE"), "{err}");
        }
    }

    #[test]
    fn content_filter_error_is_policy_violation_and_relayed() {
        let body = br#"{"error":{"message":"filtered","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"jailbreak":{"filtered":true,"detected":true}}}}}"#;
        let err = Azure.classify(StatusCode::BAD_REQUEST, &HeaderMap::new(), body, &dep());
        assert_eq!(err.kind(), ErrorKind::ContentPolicyViolation);
        let v: serde_json::Value = serde_json::from_slice(&err.to_json()).unwrap();
        let sent: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v, sent);
    }

    #[test]
    fn bare_rate_limit_error_gets_openai_shape() {
        let body = br#"{"error":{"code":"429","message":"slow down"}}"#;
        let err = Azure.classify(
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            body,
            &dep(),
        );
        assert_eq!(err.kind(), ErrorKind::RateLimit);
        let v: serde_json::Value = serde_json::from_slice(&err.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":"429"}})
        );
    }
}
