//! Build-time resolution: what a deployment's calls need that is known before its first request,
//! worked out once per deployment so that [`Provider::encode`](super::Provider::encode) only reads it.
//!
//! - The provider's **environment fallbacks** (`AZURE_API_KEY`, `OLLAMA_API_BASE`,
//!   `AWS_ACCESS_KEY_ID`, `GOOGLE_APPLICATION_CREDENTIALS`, …) are read when the deployment is built
//!   ([`Deployment::new`], or [`Deployment::with_env`] with a lookup of your own), into a
//!   [`DeploymentEnv`] the deployment carries. The deployment's own parameters still win over them,
//!   as in LiteLLM.
//! - Each upstream URL the deployment calls is parsed once into an [`Endpoint`] (the `Uri`, and the
//!   `Host` header value for `http://`), with the credential header values and `extra_headers`, in a
//!   `Resolved` the deployment keeps. [`ProviderLayer::new`](super::ProviderLayer::new) resolves it
//!   when the stack is built; a deployment used without one resolves on its first call.
//! - A Vertex AI deployment gets its own OAuth token cache when it is built.
//!
//! This module is the one place in `provider/` that reads the process environment
//! ([`process_var`]), and only when a deployment is built.

use std::{
    borrow::Cow,
    fmt,
    sync::{Arc, OnceLock},
};

use http::{uri::Authority, HeaderName, HeaderValue, Uri};

use super::{
    bedrock::AwsCredentials,
    gemini::auth::{CredentialSource, TokenCache},
    Deployment,
};
use crate::{
    error::{ErrorKind, LlmError},
    secret::Secret,
};

/// One upstream URL, parsed once: its `Uri` and, for plain `http://`, the `Host` header value.
///
/// A plain `http://` upstream always speaks HTTP/1.1, and a request that arrives with `Host` set
/// saves the client from formatting it on every call. Over TLS the protocol is chosen by ALPN, and
/// HTTP/2 carries the authority in `:authority`, so `Host` is left to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    uri: Uri,
    host: Option<HeaderValue>,
}

impl Endpoint {
    /// Parses `url`; an invalid one is the deployment's error (400), as it comes from its config.
    pub fn parse(url: &str) -> Result<Self, LlmError> {
        let uri: Uri = url.parse().map_err(|e| {
            LlmError::bad_request(format!("the deployment's api_base is not a valid URL: {e}"))
        })?;
        let host = (uri.scheme() == Some(&http::uri::Scheme::HTTP))
            .then(|| uri.authority())
            .flatten()
            .and_then(host_header);
        Ok(Self { uri, host })
    }

    /// The parsed URL.
    #[must_use]
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The `Host` header value for a plain `http://` URL.
    #[must_use]
    pub fn host(&self) -> Option<&HeaderValue> {
        self.host.as_ref()
    }
}

/// The `Host` header value for `authority`: host and port, without any user info.
#[must_use]
pub fn host_header(authority: &Authority) -> Option<HeaderValue> {
    let text = authority.as_str();
    let host_port = text.rsplit_once('@').map_or(text, |(_, hp)| hp);
    HeaderValue::from_str(host_port).ok()
}

/// Reads one variable of the process environment. The only read of the environment in
/// `provider/`: [`Deployment::new`] calls it (through [`DeploymentEnv::read`]) for the variables its
/// provider knows, never a request.
#[must_use]
pub fn process_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The environment variables a provider family falls back on, taken when a deployment is built.
///
/// Values are kept as [`Secret`]s (most are keys), and only the variables the family reads are
/// looked up. Shared by clones of the deployment (a wildcard deployment's concrete copies), with
/// the Vertex AI token cache.
#[derive(Default)]
pub struct DeploymentEnv {
    provider: Box<str>,
    vars: Box<[(&'static str, Secret)]>,
    tokens: Option<Arc<TokenCache>>,
}

impl DeploymentEnv {
    /// The variables `provider` reads, from `lookup` (empty values count as unset).
    pub fn read(provider: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Self {
        let vars = env_names(provider)
            .filter_map(|name| {
                lookup(name)
                    .filter(|v| !v.is_empty())
                    .map(|v| (name, Secret::new(v)))
            })
            .collect();
        Self {
            provider: provider.into(),
            vars,
            tokens: (provider == "vertex_ai").then(Arc::default),
        }
    }

    /// The provider these variables were read for.
    #[must_use]
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// A variable's value, when it was set and not empty.
    #[must_use]
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.expose())
    }

    /// The first of `names` set to something other than blanks.
    #[must_use]
    pub fn first(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .find_map(|n| self.var(n).filter(|v| !v.trim().is_empty()))
    }

    /// [`first`](Self::first), as the secret it is.
    pub(crate) fn first_secret(&self, names: &[&str]) -> Option<&Secret> {
        names.iter().find_map(|n| {
            self.vars
                .iter()
                .find(|(name, v)| name == n && !v.expose().trim().is_empty())
                .map(|(_, v)| v)
        })
    }

    /// The Vertex AI token cache of the deployment.
    pub(crate) fn tokens(&self) -> Option<&Arc<TokenCache>> {
        self.tokens.as_ref()
    }
}

impl fmt::Debug for DeploymentEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.vars.iter().map(|(n, _)| *n).collect();
        f.debug_struct("DeploymentEnv")
            .field("provider", &self.provider)
            .field("set", &names)
            .finish_non_exhaustive()
    }
}

/// The environment variables a built-in provider family reads.
fn env_names(provider: &str) -> impl Iterator<Item = &'static str> {
    const NONE: &[&str] = &[];
    let (first, second): (&'static [&'static str], &'static [&'static str]) = match provider {
        "azure" => (super::azure::ENV, NONE),
        "ollama" | "ollama_chat" => (super::ollama::ENV, NONE),
        "vertex_ai" => (super::gemini::VERTEX_ENV, NONE),
        "bedrock" => (super::bedrock::ENV, NONE),
        p @ ("cohere" | "jina_ai" | "voyage" | "infinity") => {
            super::rerank::spec(p).map_or((NONE, NONE), |s| (s.base_env, s.key_env))
        }
        p => super::compat::spec(p).map_or((NONE, NONE), |s| (s.base_env, s.key_env)),
    };
    first.iter().chain(second).copied()
}

/// An error worked out at build time and returned by every call that needs the value (a missing
/// `api_base`, a key that is no header value): the deployment keeps loading, as in LiteLLM, and
/// its calls fail with the error its config earns.
#[derive(Clone, Debug)]
pub(crate) struct Refusal {
    kind: ErrorKind,
    message: Box<str>,
    provider: Option<Box<str>>,
}

impl Refusal {
    /// The error, for one call.
    pub(crate) fn error(&self) -> LlmError {
        let e = LlmError::new(self.kind, &*self.message);
        match &self.provider {
            Some(p) => e.with_provider(&**p),
            None => e,
        }
    }
}

impl From<LlmError> for Refusal {
    fn from(e: LlmError) -> Self {
        Self {
            kind: e.kind(),
            message: e.message().into(),
            provider: e.provider().map(Into::into),
        }
    }
}

/// A resolved value, or the error every call that needs it returns.
pub(crate) type Target<T = Endpoint> = Result<T, Refusal>;

/// `r` as a call's result.
#[inline]
pub(crate) fn reached<T>(r: &Target<T>) -> Result<&T, LlmError> {
    r.as_ref().map_err(Refusal::error)
}

/// The deployment's `extra_headers` as header values, and whether they set `Host`.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExtraHeaders {
    pub(crate) list: Box<[(HeaderName, HeaderValue)]>,
    pub(crate) sets_host: bool,
}

impl ExtraHeaders {
    /// The deployment's `extra_headers` (string values; others are ignored, as before).
    pub(crate) fn of(dep: &Deployment) -> Result<Self, LlmError> {
        let mut out = Vec::new();
        let mut sets_host = false;
        if let Some(serde_json::Value::Object(extra)) = dep.param("extra_headers") {
            for (name, value) in extra {
                if let Some(v) = value.as_str() {
                    let name = HeaderName::try_from(name.as_str()).map_err(|e| {
                        LlmError::bad_request(format!(
                            "cannot build upstream request: extra_headers name {name:?}: {e}"
                        ))
                    })?;
                    let v = HeaderValue::try_from(v).map_err(|e| {
                        LlmError::bad_request(format!(
                            "cannot build upstream request: extra_headers value of {name}: {e}"
                        ))
                    })?;
                    sets_host |= name == http::header::HOST;
                    out.push((name, v));
                }
            }
        }
        Ok(Self {
            list: out.into(),
            sets_host,
        })
    }
}

/// How a Bedrock deployment authenticates.
#[derive(Clone, Debug)]
pub(crate) enum BedrockAuth {
    /// SigV4 with these credentials (signed per request: the signature covers the time).
    SigV4(AwsCredentials),
    /// A Bedrock API key, as the `Authorization: Bearer` value.
    Bearer(HeaderValue),
}

/// What a Bedrock deployment resolves to beyond its endpoints.
#[derive(Clone, Debug)]
pub(crate) struct BedrockState {
    pub(crate) region: Box<str>,
    pub(crate) auth: Target<BedrockAuth>,
}

/// What a Vertex AI deployment resolves to beyond its endpoints.
#[derive(Clone, Debug)]
pub(crate) struct VertexState {
    /// The deployment's token cache (shared by its clones).
    pub(crate) tokens: Arc<TokenCache>,
    /// `vertex_credentials`, else `GOOGLE_APPLICATION_CREDENTIALS`, with its cache key.
    pub(crate) credentials: Option<Arc<(CredentialSource, String)>>,
    /// The endpoints when the project comes from the credentials: known after the first token.
    pub(crate) project_endpoints: OnceLock<(Endpoint, Endpoint)>,
}

/// Everything a deployment's calls need that is known when it is built. See the
/// [module docs](self).
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    /// The provider family this was resolved for.
    pub(crate) family: Box<str>,
    /// The chat endpoint (non-streaming).
    pub(crate) chat: Target,
    /// The chat endpoint for streams (the same URL for most families).
    pub(crate) chat_stream: Target,
    /// The embeddings endpoint.
    pub(crate) embeddings: Target,
    /// The credential header, when the deployment (or its environment) has a credential.
    pub(crate) credential: Option<Target<(HeaderName, HeaderValue)>>,
    /// A credential used only when the request carries no [`AccessToken`](super::AccessToken)
    /// (Azure's `AZURE_AD_TOKEN`).
    pub(crate) fallback_credential: Option<Target<(HeaderName, HeaderValue)>>,
    /// `extra_headers`.
    pub(crate) extra_headers: Target<ExtraHeaders>,
    pub(crate) vertex: Option<VertexState>,
    pub(crate) bedrock: Option<BedrockState>,
}

impl Resolved {
    /// The endpoint of a chat call.
    #[inline]
    pub(crate) fn chat_endpoint(&self, stream: bool) -> Result<&Endpoint, LlmError> {
        reached(if stream {
            &self.chat_stream
        } else {
            &self.chat
        })
    }

    /// Appends the credential header, if any.
    #[inline]
    pub(crate) fn add_credential(&self, headers: &mut http::HeaderMap) -> Result<(), LlmError> {
        if let Some(c) = &self.credential {
            let (name, value) = reached(c)?;
            headers.append(name.clone(), value.clone());
        }
        Ok(())
    }
}

fn unresolved() -> Target {
    Err(Refusal::from(LlmError::internal(
        "the deployment has no endpoint for this call",
    )))
}

/// Resolves `dep` for the provider family `family` (a built-in prefix; any other name gets the
/// family-independent parts only). `env` is the deployment's environment when it was read for this
/// family; else the process environment is read now.
pub(crate) fn resolve(dep: &Deployment, family: &str, env: Option<&DeploymentEnv>) -> Resolved {
    let read;
    let env = match env.filter(|e| e.provider() == family) {
        Some(env) => env,
        None => {
            read = DeploymentEnv::read(family, &process_var);
            &read
        }
    };
    let mut r = Resolved {
        family: family.into(),
        chat: unresolved(),
        chat_stream: unresolved(),
        embeddings: unresolved(),
        credential: None,
        fallback_credential: None,
        extra_headers: ExtraHeaders::of(dep).map_err(Refusal::from),
        vertex: None,
        bedrock: None,
    };
    match family {
        "azure" => super::azure::resolve(dep, env, &mut r),
        "ollama" => super::ollama::resolve(dep, env, false, &mut r),
        "ollama_chat" => super::ollama::resolve(dep, env, true, &mut r),
        "anthropic" => super::anthropic::resolve(dep, &mut r),
        "gemini" => super::gemini::resolve_gemini(dep, &mut r),
        "vertex_ai" => super::gemini::resolve_vertex(dep, env, &mut r),
        "bedrock" => super::bedrock::resolve(dep, env, &mut r),
        other => {
            if let Some(spec) = super::compat::spec(other) {
                spec.resolve(dep, env, &mut r);
            }
        }
    }
    r
}

/// `url` parsed, as a target.
pub(crate) fn endpoint(url: &str) -> Target {
    Endpoint::parse(url).map_err(Refusal::from)
}

/// A sensitive header value for a credential; `what` names it in the error.
pub(crate) fn credential_value(value: &[u8], what: &str) -> Target<HeaderValue> {
    let mut v = HeaderValue::from_bytes(value).map_err(|_| {
        Refusal::from(LlmError::new(
            ErrorKind::Authentication,
            format!("the deployment's {what} contains characters not allowed in a header"),
        ))
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// `name: value` for a credential.
pub(crate) fn credential_header(
    name: HeaderName,
    value: &str,
    what: &str,
) -> Target<(HeaderName, HeaderValue)> {
    credential_value(value.as_bytes(), what).map(|v| (name, v))
}

/// `Authorization: Bearer <token>`.
pub(crate) fn bearer_header(token: &str) -> Target<(HeaderName, HeaderValue)> {
    super::openai::bearer(token)
        .map(|v| (http::header::AUTHORIZATION, v))
        .map_err(Refusal::from)
}

/// The deployment's resolution for `family`: the one it keeps when it was resolved for that
/// family, else one worked out now (and kept, when the deployment had none).
pub(crate) fn resolved_for<'a>(
    dep: &'a Deployment,
    slot: &'a OnceLock<crate::types::deployment::Erased>,
    env: Option<&DeploymentEnv>,
    family: &str,
) -> Cow<'a, Resolved> {
    let r = slot
        .get_or_init(|| Box::new(resolve(dep, family, env)))
        .downcast_ref::<Resolved>();
    match r {
        Some(r) if &*r.family == family => Cow::Borrowed(r),
        _ => Cow::Owned(resolve(dep, family, env)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_once_with_host_for_plain_http_only() {
        let e = Endpoint::parse("http://h:1/v1/chat/completions").unwrap();
        assert_eq!(e.uri().path(), "/v1/chat/completions");
        assert_eq!(e.host().unwrap(), "h:1");
        let e = Endpoint::parse("http://user:pw@h.example:8080/v1").unwrap();
        assert_eq!(e.host().unwrap(), "h.example:8080");
        assert!(Endpoint::parse("https://h.example/v1")
            .unwrap()
            .host()
            .is_none());
        let err = Endpoint::parse("http://h:1/v1/x y").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest);
    }

    #[test]
    fn env_reads_only_the_familys_variables_and_skips_empty_ones() {
        let seen = std::sync::Mutex::new(Vec::new());
        let lookup = |n: &str| {
            seen.lock().unwrap().push(n.to_owned());
            match n {
                "AZURE_API_KEY" => Some("sk-env-secret".to_owned()),
                "AZURE_API_BASE" => Some(String::new()),
                "AZURE_API_VERSION" => Some("  ".to_owned()),
                _ => None,
            }
        };
        let env = DeploymentEnv::read("azure", &lookup);
        assert_eq!(env.var("AZURE_API_KEY"), Some("sk-env-secret"));
        assert_eq!(env.var("AZURE_API_BASE"), None);
        // Blank is kept as set, but `first` (what the fallbacks use) skips it.
        assert_eq!(env.var("AZURE_API_VERSION"), Some("  "));
        assert_eq!(
            env.first(&["AZURE_API_VERSION", "AZURE_API_KEY"]),
            Some("sk-env-secret")
        );
        let seen = seen.into_inner().unwrap();
        assert!(seen.iter().all(|n| n.starts_with("AZURE_")), "{seen:?}");
        assert!(!format!("{env:?}").contains("sk-env"));
        // A family without environment fallbacks reads nothing.
        let none = DeploymentEnv::read("anthropic", &|_| panic!("no variable is read"));
        assert_eq!(none.var("ANTHROPIC_API_KEY"), None);
        assert!(DeploymentEnv::read("vertex_ai", &|_| None)
            .tokens()
            .is_some());
    }

    #[test]
    fn refusals_return_the_same_error_each_time() {
        let r = Refusal::from(
            LlmError::new(ErrorKind::Authentication, "no key").with_provider("vertex_ai"),
        );
        for _ in 0..2 {
            let e = r.error();
            assert_eq!(e.kind(), ErrorKind::Authentication);
            assert_eq!(e.message(), "no key");
            assert_eq!(e.provider(), Some("vertex_ai"));
        }
    }
}
