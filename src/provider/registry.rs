//! The provider registry: which [`Provider`] serves which model prefix.
//!
//! [`Providers`] is a value (cheap to clone) holding every built-in provider and any custom one a
//! user registers, each as an [`Arc<dyn Provider>`](SharedProvider). The gateway builder and
//! [`Gateway::from_config`](crate::gateway::Gateway::from_config) take one, so that a deployment
//! `model: mycorp/some-model` is served by the provider registered under `mycorp`, as LiteLLM's
//! `custom_provider_map` does. [`lookup`] and [`known_prefixes`] read the built-in registry.

use std::{fmt, sync::Arc, sync::LazyLock};

use http::{HeaderMap, StatusCode};

use super::{
    anthropic, azure, bedrock, cohere, compat, gemini, mock, ollama, openai, params, rerank,
    ByteStream, Deployment, Provider, TokenFuture,
};
use crate::{
    error::LlmError,
    types::{ChatStream, LlmRequest, LlmResponse},
};

/// A provider shared by every deployment (and every request) that uses it.
pub type SharedProvider = Arc<dyn Provider>;

/// Every built-in provider, by prefix.
static PROVIDERS: &[&dyn Provider] = &[
    &openai::OpenAi,
    &openai::completions::TextCompletionOpenAi,
    &mock::Mock,
    &anthropic::Anthropic,
    &azure::Azure,
    &ollama::Ollama,
    &ollama::OllamaChat,
    &gemini::Gemini,
    &VERTEX_AI,
    &bedrock::Bedrock,
    &cohere::Cohere,
    &rerank::JinaAi,
    &rerank::Infinity,
    &rerank::Voyage,
    &rerank::AzureAi,
];

/// The built-in `vertex_ai` provider: one instance, so every deployment shares its token cache.
static VERTEX_AI: gemini::VertexAi = gemini::VertexAi::new();

/// Built-in providers, then the OpenAI-compatible hosts table.
fn all_providers() -> impl Iterator<Item = &'static dyn Provider> {
    PROVIDERS
        .iter()
        .copied()
        .chain(compat::HOSTS.iter().map(|h| h as &dyn Provider))
}

/// The built-in registry, built once.
static BUILTIN: LazyLock<Providers> = LazyLock::new(|| Providers {
    entries: Arc::new(
        all_providers()
            .map(|p| Entry {
                prefix: Arc::from(p.name()),
                provider: Arc::new(p) as SharedProvider,
                builtin: true,
            })
            .collect(),
    ),
});

/// The provider for a built-in model prefix.
#[must_use]
pub fn lookup(prefix: &str) -> Option<SharedProvider> {
    BUILTIN.get(prefix).cloned()
}

/// The prefixes of every built-in provider.
pub fn known_prefixes() -> impl Iterator<Item = &'static str> {
    all_providers().map(|p| p.name())
}

#[derive(Clone)]
struct Entry {
    prefix: Arc<str>,
    provider: SharedProvider,
    builtin: bool,
}

/// The providers a gateway can route to, by model prefix: the built-in ones and any custom
/// [`Provider`] registered with [`Providers::register`].
///
/// A custom provider may not silently take a built-in prefix: [`Providers::register`] refuses
/// it ([`RegisterError::Builtin`]); [`Providers::replace_builtin`] says so explicitly.
///
/// ```
/// use llmgate::provider::Providers;
///
/// let providers = Providers::builtin();
/// assert!(providers.get("openai").is_some());
/// assert!(providers.get("mycorp").is_none());
/// ```
#[derive(Clone)]
pub struct Providers {
    /// In registration order (built-ins first); looked up by a linear scan at build time only.
    entries: Arc<Vec<Entry>>,
}

impl Default for Providers {
    fn default() -> Self {
        Self::builtin()
    }
}

impl fmt::Debug for Providers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.prefixes()).finish()
    }
}

/// Why [`Providers::register`] refused a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegisterError {
    /// The prefix is empty, or contains `/` or whitespace (a model is `prefix/model`).
    InvalidPrefix(String),
    /// The prefix is a built-in provider's; use [`Providers::replace_builtin`] to mean it.
    Builtin(String),
    /// A custom provider is already registered under the prefix.
    Duplicate(String),
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPrefix(p) => write!(
                f,
                "provider prefix {p:?} is invalid: it must be non-empty, without `/` or whitespace"
            ),
            Self::Builtin(p) => write!(
                f,
                "provider prefix `{p}` is a built-in provider's; use Providers::replace_builtin to replace it"
            ),
            Self::Duplicate(p) => write!(f, "a custom provider is already registered as `{p}`"),
        }
    }
}

impl std::error::Error for RegisterError {}

impl Providers {
    /// Every built-in provider (the same instances as [`lookup`]).
    #[must_use]
    pub fn builtin() -> Self {
        BUILTIN.clone()
    }

    /// The provider registered under `prefix`.
    #[must_use]
    pub fn get(&self, prefix: &str) -> Option<&SharedProvider> {
        self.entries
            .iter()
            .find(|e| &*e.prefix == prefix)
            .map(|e| &e.provider)
    }

    /// Every registered prefix, built-ins first, in registration order.
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| &*e.prefix)
    }

    /// Whether `prefix` is served by a custom (registered) provider.
    #[must_use]
    pub fn is_custom(&self, prefix: &str) -> bool {
        self.entries
            .iter()
            .any(|e| &*e.prefix == prefix && !e.builtin)
    }

    /// Registers `provider` under its [`Provider::name`]. See [`Providers::register_as`].
    ///
    /// # Errors
    /// As [`Providers::register_as`].
    pub fn register(self, provider: impl Provider) -> Result<Self, RegisterError> {
        let prefix = provider.name();
        self.register_as(prefix, Arc::new(provider))
    }

    /// Registers `provider` under `prefix`: deployments `model: {prefix}/…` are served by it, and
    /// responses name `prefix` as their provider. The provider's own [`Provider::name`] is still
    /// what its error messages say.
    ///
    /// # Errors
    /// [`RegisterError::InvalidPrefix`] for an empty prefix or one with `/` or whitespace,
    /// [`RegisterError::Builtin`] for a built-in provider's prefix (see
    /// [`Providers::replace_builtin`]), [`RegisterError::Duplicate`] for a prefix already
    /// registered.
    pub fn register_as(
        mut self,
        prefix: impl Into<Arc<str>>,
        provider: SharedProvider,
    ) -> Result<Self, RegisterError> {
        let prefix = prefix.into();
        if prefix.is_empty() || prefix.contains(|c: char| c == '/' || c.is_whitespace()) {
            return Err(RegisterError::InvalidPrefix(prefix.to_string()));
        }
        if let Some(e) = self.entries.iter().find(|e| e.prefix == prefix) {
            return Err(if e.builtin {
                RegisterError::Builtin(prefix.to_string())
            } else {
                RegisterError::Duplicate(prefix.to_string())
            });
        }
        Arc::make_mut(&mut self.entries).push(Entry {
            prefix,
            provider,
            builtin: false,
        });
        Ok(self)
    }

    /// Replaces the built-in provider of `prefix` with `provider`, on purpose (a patched
    /// translation). Adds it when `prefix` is not built in.
    ///
    /// # Errors
    /// [`RegisterError::InvalidPrefix`] as [`Providers::register_as`].
    pub fn replace_builtin(
        mut self,
        prefix: impl Into<Arc<str>>,
        provider: SharedProvider,
    ) -> Result<Self, RegisterError> {
        let prefix: Arc<str> = prefix.into();
        let entries = Arc::make_mut(&mut self.entries);
        entries.retain(|e| e.prefix != prefix);
        self.register_as(prefix, provider)
    }
}

/// A `&'static` provider (a `static` or a unit struct) is a provider: the built-ins are
/// registered this way, and `Arc::new(&MY_STATIC)` shares a static instance.
impl<P: Provider + ?Sized> Provider for &'static P {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn supports(&self, op: crate::types::OperationKind) -> bool {
        (**self).supports(op)
    }

    fn supports_for(&self, op: crate::types::OperationKind, dep: &Deployment) -> bool {
        (**self).supports_for(op, dep)
    }

    fn decode_events(
        &self,
        req: &LlmRequest,
        parts: http::response::Parts,
        body: ByteStream,
        dep: &Deployment,
    ) -> Result<crate::types::EventStream, LlmError> {
        (**self).decode_events(req, parts, body, dep)
    }

    fn encode(
        &self,
        req: &LlmRequest,
        dep: &Deployment,
    ) -> Result<http::Request<bytes::Bytes>, LlmError> {
        (**self).encode(req, dep)
    }

    fn decode(
        &self,
        req: &LlmRequest,
        resp: http::Response<bytes::Bytes>,
        dep: &Deployment,
    ) -> Result<LlmResponse, LlmError> {
        (**self).decode(req, resp, dep)
    }

    fn decode_stream(
        &self,
        req: &LlmRequest,
        parts: http::response::Parts,
        body: ByteStream,
        dep: &Deployment,
    ) -> Result<ChatStream, LlmError> {
        (**self).decode_stream(req, parts, body, dep)
    }

    fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        dep: &Deployment,
    ) -> LlmError {
        (**self).classify(status, headers, body, dep)
    }

    fn access_token(&self, dep: &Deployment) -> Option<TokenFuture> {
        (**self).access_token(dep)
    }

    fn supported_params(&self, endpoint: params::Endpoint) -> Option<&'static [&'static str]> {
        (**self).supported_params(endpoint)
    }

    fn embedding_inputs_per_call(&self, dep: &Deployment) -> Option<usize> {
        (**self).embedding_inputs_per_call(dep)
    }

    fn respond_locally(
        &self,
        req: &LlmRequest,
        dep: &Deployment,
    ) -> Option<Result<LlmResponse, LlmError>> {
        (**self).respond_locally(req, dep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Custom;

    impl Provider for Custom {
        fn name(&self) -> &'static str {
            "mycorp"
        }
        fn encode(
            &self,
            req: &LlmRequest,
            _: &Deployment,
        ) -> Result<http::Request<bytes::Bytes>, LlmError> {
            Err(super::super::unsupported(self, req))
        }
        fn decode(
            &self,
            req: &LlmRequest,
            _: http::Response<bytes::Bytes>,
            _: &Deployment,
        ) -> Result<LlmResponse, LlmError> {
            Err(super::super::unsupported(self, req))
        }
        fn decode_stream(
            &self,
            req: &LlmRequest,
            _: http::response::Parts,
            _: ByteStream,
            _: &Deployment,
        ) -> Result<ChatStream, LlmError> {
            Err(super::super::unsupported(self, req))
        }
        fn classify(
            &self,
            status: StatusCode,
            _: &HeaderMap,
            _: &[u8],
            _: &Deployment,
        ) -> LlmError {
            LlmError::bad_request(format!("{status}"))
        }
    }

    #[test]
    fn builtins_are_the_lookup_instances() {
        let p = Providers::builtin();
        let a = p.get("vertex_ai").expect("built in");
        let b = lookup("vertex_ai").expect("built in");
        assert!(Arc::ptr_eq(a, &b));
        assert_eq!(
            p.prefixes().collect::<Vec<_>>(),
            known_prefixes().collect::<Vec<_>>()
        );
    }

    #[test]
    fn custom_provider_registers_under_its_name() {
        let p = Providers::builtin().register(Custom).expect("registers");
        assert_eq!(p.get("mycorp").map(|p| p.name()), Some("mycorp"));
        assert!(p.is_custom("mycorp"));
        assert!(!p.is_custom("openai"));
        // The built-in registry is a value: not changed by registering on a copy.
        assert!(Providers::builtin().get("mycorp").is_none());
        assert!(lookup("mycorp").is_none());
    }

    #[test]
    fn builtin_prefix_is_not_silently_shadowed() {
        let err = Providers::builtin()
            .register_as("openai", Arc::new(Custom))
            .unwrap_err();
        assert_eq!(err, RegisterError::Builtin("openai".into()));
        assert!(err.to_string().contains("replace_builtin"), "{err}");
        let p = Providers::builtin()
            .replace_builtin("openai", Arc::new(Custom))
            .expect("explicit override");
        assert_eq!(p.get("openai").map(|p| p.name()), Some("mycorp"));
        assert_eq!(p.prefixes().filter(|x| *x == "openai").count(), 1);
    }

    #[test]
    fn duplicate_and_invalid_prefixes_are_refused() {
        let p = Providers::builtin().register(Custom).expect("registers");
        assert_eq!(
            p.clone().register(Custom).unwrap_err(),
            RegisterError::Duplicate("mycorp".into())
        );
        for bad in ["", "a/b", "a b"] {
            assert_eq!(
                p.clone().register_as(bad, Arc::new(Custom)).unwrap_err(),
                RegisterError::InvalidPrefix(bad.into())
            );
        }
    }
}
