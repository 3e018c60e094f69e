//! Vertex AI credentials: a service-account (or `authorized_user`) JSON exchanged for an OAuth access
//! token at its `token_uri`, cached until shortly before it expires.
//!
//! Where the JSON comes from, as in LiteLLM: `litellm_params.vertex_credentials` as an object, a JSON
//! string, or a file path; else the file named by `GOOGLE_APPLICATION_CREDENTIALS`.
//!
//! A service account is exchanged with the JWT bearer grant (RFC 7523): an RS256-signed assertion
//! `{iss: client_email, scope: cloud-platform, aud: token_uri, iat, exp: iat + 1h}`, signed with
//! `ring` (no OpenSSL). Tokens are cached per credential (a SHA-256 of the JSON text or the path), one
//! fetch at a time per credential, and refreshed [`REFRESH_MARGIN`] before they expire.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::{
    error::{ErrorKind, LlmError},
    provider::{resolve::DeploymentEnv, transport_error, Deployment, HttpClient},
    secret::Secret,
};

/// The OAuth scope requested for Vertex AI.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint, for credentials that do not name one.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// A cached token is refreshed this long before it expires (at most half its lifetime).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Time allowed for one token request.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest token-endpoint answer read.
const MAX_TOKEN_RESPONSE: usize = 64 << 10;

/// Where a deployment's credentials JSON comes from.
#[derive(Clone, Debug)]
pub(crate) enum CredentialSource {
    /// The JSON text itself.
    Inline(String),
    /// A file holding it.
    Path(PathBuf),
}

impl CredentialSource {
    /// The deployment's `vertex_credentials`, else `GOOGLE_APPLICATION_CREDENTIALS` as read when
    /// it was built.
    #[cfg(test)]
    pub(crate) fn from_deployment(dep: &Deployment) -> Option<Self> {
        Self::from_deployment_in(dep, dep.env())
    }

    /// The deployment's `vertex_credentials`, else `GOOGLE_APPLICATION_CREDENTIALS` in `env`.
    pub(crate) fn from_deployment_in(
        dep: &Deployment,
        env: Option<&DeploymentEnv>,
    ) -> Option<Self> {
        match dep.param("vertex_credentials") {
            Some(v @ Value::Object(_)) => return Some(Self::Inline(v.to_string())),
            Some(Value::String(s)) if s.trim_start().starts_with('{') => {
                return Some(Self::Inline(s.clone()))
            }
            Some(Value::String(s)) if !s.trim().is_empty() => {
                return Some(Self::Path(PathBuf::from(s.trim())))
            }
            _ => {}
        }
        env?.var("GOOGLE_APPLICATION_CREDENTIALS")
            .map(|p| Self::Path(PathBuf::from(p)))
    }

    /// The cache key: a SHA-256 of the source (never the secret itself).
    pub(crate) fn key(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        match self {
            Self::Inline(text) => {
                ctx.update(b"inline\0");
                ctx.update(text.as_bytes());
            }
            Self::Path(p) => {
                ctx.update(b"path\0");
                ctx.update(p.as_os_str().as_encoded_bytes());
            }
        }
        ctx.finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn load(&self) -> Result<Credentials, LlmError> {
        let text = match self {
            Self::Inline(t) => std::borrow::Cow::Borrowed(t.as_str()),
            Self::Path(p) => std::borrow::Cow::Owned(std::fs::read_to_string(p).map_err(|e| {
                auth_error(format!(
                    "cannot read the Vertex AI credentials file named by vertex_credentials or GOOGLE_APPLICATION_CREDENTIALS: {e}"
                ))
            })?),
        };
        serde_json::from_str(&text)
            .map_err(|e| auth_error(format!("the Vertex AI credentials are not valid JSON: {e}")))
    }
}

/// The fields of a Google credentials JSON that token exchange reads.
#[derive(Deserialize)]
struct Credentials {
    #[serde(rename = "type")]
    kind: Option<String>,
    project_id: Option<String>,
    quota_project_id: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// Access tokens per credential, plus the project each credential names: one per deployment
/// (created when it is built), shared by its clones.
#[derive(Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<String, Slot>>,
    projects: Mutex<HashMap<String, String>>,
    client: OnceLock<HttpClient>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.slots.lock().map_or(0, |s| s.len());
        f.debug_struct("TokenCache")
            .field("credentials", &n)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// The project the credentials behind `key` name (known once a token was fetched with them).
    pub(crate) fn project_of(&self, key: &str) -> Option<String> {
        self.projects.lock().ok()?.get(key).cloned()
    }

    /// A valid access token for `source`: the cached one, or a fresh one from the token endpoint.
    /// Concurrent callers with the same credentials wait for one fetch.
    pub(crate) async fn token(
        &self,
        source: &CredentialSource,
        key: &str,
    ) -> Result<Secret, LlmError> {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .map_err(|_| LlmError::internal("the Vertex AI token cache is poisoned"))?;
            match slots.get(key) {
                Some(slot) => slot.clone(),
                None => slots.entry(key.to_owned()).or_default().clone(),
            }
        };
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let creds = source.load()?;
        if let Some(project) = creds
            .project_id
            .as_ref()
            .or(creds.quota_project_id.as_ref())
        {
            if let Ok(mut p) = self.projects.lock() {
                p.insert(key.to_owned(), project.clone());
            }
        }
        let client = self.client.get_or_init(HttpClient::new);
        let fetched_at = Instant::now();
        let (token, lifetime) = fetch_token(client, &creds).await?;
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        *cached = Some(CachedToken {
            token: token.clone(),
            refresh_at: fetched_at + lifetime - margin,
        });
        Ok(token)
    }
}

/// Exchanges credentials for an access token and its lifetime.
async fn fetch_token(
    client: &HttpClient,
    creds: &Credentials,
) -> Result<(Secret, Duration), LlmError> {
    let token_uri = creds.token_uri.as_deref().unwrap_or(DEFAULT_TOKEN_URI);
    let form = match creds.kind.as_deref() {
        Some("service_account") | None => {
            let assertion = jwt_assertion(creds, token_uri, unix_now())?;
            format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}")
        }
        Some("authorized_user") => {
            let field = |v: &Option<String>, name: &str| {
                v.as_deref()
                    .ok_or_else(|| auth_error(format!("the authorized_user credentials lack {name}")))
                    .map(form_encode)
            };
            format!(
                "grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
                field(&creds.client_id, "client_id")?,
                field(&creds.client_secret, "client_secret")?,
                field(&creds.refresh_token, "refresh_token")?,
            )
        }
        Some(other) => {
            return Err(auth_error(format!(
                "Vertex AI credentials of type `{other}` are not supported (use a service_account or authorized_user JSON, or an access token as api_key)"
            )))
        }
    };
    let req = http::Request::post(token_uri)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| auth_error(format!("the credentials' token_uri is not usable: {e}")))?;
    let exchange = async {
        let resp = client
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| token_endpoint_unreachable(transport_error(e)))?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_TOKEN_RESPONSE)
            .collect()
            .await
            .map_err(|e| {
                token_endpoint_unreachable(LlmError::new(ErrorKind::ApiConnection, e.to_string()))
            })?
            .to_bytes();
        Ok::<_, LlmError>((parts.status, body))
    };
    let (status, body) = tokio::time::timeout(TOKEN_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            LlmError::new(
                ErrorKind::Timeout,
                "the Google token endpoint did not answer in time",
            )
        })??;
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        let what = [answer.get("error"), answer.get("error_description")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(": ");
        let kind = if status.is_server_error() {
            ErrorKind::ServiceUnavailable
        } else {
            ErrorKind::Authentication
        };
        return Err(LlmError::new(
            kind,
            format!(
                "the Google token endpoint refused the Vertex AI credentials ({status}): {what}"
            ),
        )
        .with_provider("vertex_ai"));
    }
    let token = answer
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| auth_error("the Google token endpoint answered without an access_token"))?;
    let lifetime = answer
        .get("expires_in")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(3600);
    Ok((Secret::new(token), Duration::from_secs(lifetime)))
}

/// The RS256-signed JWT bearer assertion for a service account.
fn jwt_assertion(creds: &Credentials, token_uri: &str, now: u64) -> Result<String, LlmError> {
    let email = creds
        .client_email
        .as_deref()
        .ok_or_else(|| auth_error("the service account credentials lack client_email"))?;
    let pem = creds
        .private_key
        .as_deref()
        .ok_or_else(|| auth_error("the service account credentials lack private_key"))?;
    let key = rsa_key(pem)?;
    let mut header = json!({ "alg": "RS256", "typ": "JWT" });
    if let Some(kid) = &creds.private_key_id {
        header["kid"] = kid.as_str().into();
    }
    let claims = json!({
        "iss": email,
        "scope": CLOUD_PLATFORM_SCOPE,
        "aud": token_uri,
        "iat": now,
        "exp": now + 3600,
    });
    let mut jwt = URL_SAFE_NO_PAD.encode(header.to_string());
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        jwt.as_bytes(),
        &mut signature,
    )
    .map_err(|_| auth_error("cannot sign the service account assertion"))?;
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(jwt)
}

/// An RSA key from a PEM private key (PKCS#8 as Google issues them, or PKCS#1).
fn rsa_key(pem: &str) -> Result<ring::signature::RsaKeyPair, LlmError> {
    use rustls_pki_types::{pem::PemObject as _, PrivateKeyDer};
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        auth_error(format!(
            "the service account private_key is not a PEM private key: {e}"
        ))
    })?;
    let key = match &der {
        PrivateKeyDer::Pkcs8(k) => ring::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => ring::signature::RsaKeyPair::from_der(k.secret_pkcs1_der()),
        _ => {
            return Err(auth_error(
                "the service account private_key is not an RSA key",
            ))
        }
    };
    key.map_err(|e| auth_error(format!("the service account private_key is rejected: {e}")))
}

/// `application/x-www-form-urlencoded` value encoding.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char);
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn auth_error(message: impl Into<String>) -> LlmError {
    LlmError::new(ErrorKind::Authentication, message).with_provider("vertex_ai")
}

fn token_endpoint_unreachable(e: LlmError) -> LlmError {
    LlmError::new(
        e.kind(),
        format!("cannot reach the Google token endpoint: {}", e.message()),
    )
    .with_provider("vertex_ai")
    .with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_form_values() {
        assert_eq!(form_encode("a b/c+d=é"), "a%20b%2Fc%2Bd%3D%C3%A9");
    }

    #[test]
    fn source_forms() {
        let mut dep = Deployment::new("g", "vertex_ai/gemini-2.5-flash");
        dep.params.insert(
            "vertex_credentials".into(),
            json!({"type": "service_account"}),
        );
        assert!(matches!(
            CredentialSource::from_deployment(&dep),
            Some(CredentialSource::Inline(_))
        ));
        dep.params
            .insert("vertex_credentials".into(), json!(" {\"type\":\"x\"}"));
        assert!(matches!(
            CredentialSource::from_deployment(&dep),
            Some(CredentialSource::Inline(_))
        ));
        dep.params
            .insert("vertex_credentials".into(), json!("/etc/sa.json"));
        let src = CredentialSource::from_deployment(&dep).unwrap();
        assert!(matches!(src, CredentialSource::Path(_)));
        assert_eq!(src.key().len(), 64);
    }

    #[test]
    fn rejects_a_non_pem_key() {
        let e = rsa_key("not a key").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication);
    }
}
