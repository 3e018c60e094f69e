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

use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use super::{
    openai::{bearer, chat_body, embeddings_body, join_url, json_request, openai_shaped_responses},
    AccessToken, Deployment, Provider,
};
use crate::{
    error::{ErrorKind, LlmError},
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

/// Azure settings from the environment, read once.
#[derive(Default)]
struct AzureEnv {
    api_base: Option<String>,
    api_key: Option<Secret>,
    api_version: Option<String>,
    ad_token: Option<Secret>,
}

fn env() -> &'static AzureEnv {
    static ENV: OnceLock<AzureEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        AzureEnv {
            api_base: var("AZURE_API_BASE"),
            api_key: var("AZURE_API_KEY").map(Secret::new),
            api_version: var("AZURE_API_VERSION"),
            ad_token: var("AZURE_AD_TOKEN").map(Secret::new),
        }
    })
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

fn sensitive(value: &str, what: &str) -> Result<HeaderValue, LlmError> {
    let mut v = HeaderValue::try_from(value).map_err(|_| {
        LlmError::new(
            ErrorKind::Authentication,
            format!("the deployment's {what} contains characters not allowed in a header"),
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

impl Provider for Azure {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn supports(&self, op: crate::types::OperationKind) -> bool {
        matches!(
            op,
            crate::types::OperationKind::Chat | crate::types::OperationKind::Embeddings
        )
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        let env = env();
        let base = dep
            .api_base
            .as_deref()
            .or(env.api_base.as_deref())
            .ok_or_else(|| {
                LlmError::bad_request(
                    "the azure provider needs an api_base (https://<resource>.openai.azure.com), in litellm_params or AZURE_API_BASE",
                )
            })?;
        let version = dep
            .api_version
            .as_deref()
            .or(env.api_version.as_deref())
            .unwrap_or(DEFAULT_API_VERSION);
        if dep.model.contains(['/', '?', '#']) || version.contains(['&', '#', ' ']) {
            return Err(LlmError::bad_request(
                "the azure deployment name or api_version contains characters not allowed in a URL",
            ));
        }
        let (path, body) = match &req.op {
            Operation::Chat(chat) => (
                "chat/completions",
                chat_body(chat, req.raw_body().map(|b| &b[..]), &dep.model)?,
            ),
            Operation::Embeddings(emb) => (
                "embeddings",
                embeddings_body(emb, req.raw_body().map(|b| &b[..]), &dep.model)?,
            ),
            Operation::ListModels => return Err(super::unsupported(self, req)),
        };
        let mut head = json_request(&deployment_url(base, &dep.model, path, version), dep)?;
        let headers = head.headers_mut();
        let key = dep
            .api_key
            .as_ref()
            .filter(|k| !k.is_empty())
            .or(env.api_key.as_ref());
        if let Some(key) = key {
            headers.append(API_KEY, sensitive(key.expose(), "api_key")?);
        } else if let Some(token) = dep.param_str("azure_ad_token").filter(|t| !t.is_empty()) {
            headers.append(http::header::AUTHORIZATION, bearer(token)?);
        } else if let Some(AccessToken(token)) = req.extensions.get::<AccessToken>() {
            headers.append(http::header::AUTHORIZATION, bearer(token.expose())?);
        } else if let Some(token) = &env.ad_token {
            headers.append(http::header::AUTHORIZATION, bearer(token.expose())?);
        }
        Ok(head.map(|()| body))
    }

    openai_shaped_responses!();
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, StatusCode};

    use super::*;

    fn dep() -> Deployment {
        let mut d = Deployment::new("gpt-4o", "azure/my-deployment")
            .with_api_base("https://myres.openai.azure.com/")
            .with_api_key("test-key");
        d.api_version = Some("2024-10-21".into());
        d
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
        let mut d = dep();
        d.api_key = None;
        d.params
            .insert("azure_ad_token".into(), serde_json::Value::from("tok"));
        let req =
            LlmRequest::chat(serde_json::from_str(r#"{"model":"gpt-4o","messages":[]}"#).unwrap());
        if env().api_key.is_none() {
            let out = Azure.encode(&req, &d).unwrap();
            assert_eq!(out.headers()[http::header::AUTHORIZATION], "Bearer tok");
            assert!(!out.headers().contains_key("api-key"));
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
