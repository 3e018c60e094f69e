//! [`Deployment`]: one `model_list` entry after config resolution (the data; what a provider
//! resolves from it at build time is in `provider/deployment.rs` and `provider/resolve.rs`).

use std::{
    any::Any,
    fmt,
    sync::{Arc, OnceLock},
    time::Duration,
};

use http::HeaderValue;

use crate::secret::{redact_url, Secret};

/// What a provider resolves for a deployment, held without naming its type (the provider module
/// owns it; see `provider/resolve.rs`), so that this vocabulary type sits below the providers.
pub(crate) type Erased = Box<dyn Any + Send + Sync>;

/// One deployment of a model group: which provider, which upstream model, where, with which
/// credentials, limits and prices.
///
/// What its calls need that is known before the first one (the provider's environment fallbacks,
/// the parsed upstream URLs, credential and response header values) is worked out once: the
/// environment when it is built ([`Deployment::new`], [`Deployment::with_env`]), the rest when its
/// stack is built ([`ProviderLayer::new`](crate::provider::ProviderLayer::new)) or on its first call (see
/// [`provider::resolve`](crate::provider::resolve)). Set the public fields before that: a deployment does not
/// notice fields changed in place after its first call (the `with_*` methods start over, and a
/// clone starts unresolved, so it may be changed). A clone shares the environment read for the
/// original.
#[derive(Default)]
#[non_exhaustive]
pub struct Deployment {
    /// Stable id (`model_info.id`, else a hash of the entry).
    pub id: Arc<str>,
    /// The model group (`model_name`) this deployment serves.
    pub model_group: Arc<str>,
    /// The provider prefix (`openai`, `anthropic`, `mock`, …).
    pub provider: Arc<str>,
    /// The upstream model id, without the provider prefix.
    pub model: Arc<str>,
    /// Base URL of the provider's API.
    pub api_base: Option<Arc<str>>,
    /// The provider credential.
    pub api_key: Option<Secret>,
    /// API version (Azure and others).
    pub api_version: Option<String>,
    /// Whole-request timeout.
    pub timeout: Option<Duration>,
    /// Time to first chunk / idle time between chunks for streams.
    pub stream_timeout: Option<Duration>,
    /// Retries for this deployment.
    pub max_retries: Option<u32>,
    /// Requests per minute this deployment allows.
    pub rpm: Option<u64>,
    /// Tokens per minute this deployment allows.
    pub tpm: Option<u64>,
    /// Weight for weighted shuffle.
    pub weight: Option<f64>,
    /// Priority tier (lower first).
    pub order: Option<u32>,
    /// Concurrent requests allowed.
    pub max_parallel_requests: Option<u32>,
    /// USD per input token.
    pub input_cost_per_token: Option<f64>,
    /// USD per output token.
    pub output_cost_per_token: Option<f64>,
    /// Routing tags.
    pub tags: Vec<String>,
    /// Every other `litellm_params` key (provider-specific: `aws_*`, `vertex_*`, `extra_headers` …),
    /// with `os.environ/` references resolved.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// `model_info`.
    pub model_info: serde_json::Map<String, serde_json::Value>,
    /// `public_api_base()`, with the `api_base` it was computed from.
    pub(crate) public_base: OnceLock<(Arc<str>, Arc<str>)>,
    /// The provider's environment variables, read when the deployment was built
    /// (`provider::resolve::DeploymentEnv`).
    pub(crate) env: Option<Arc<dyn Any + Send + Sync>>,
    /// Endpoints and header values for the provider's calls (`provider::resolve::Resolved`).
    pub(crate) resolved: OnceLock<Erased>,
    /// The response header values of `id`, `model_group` and `public_api_base()`.
    pub(crate) headers: OnceLock<ResponseHeaders>,
}

/// Header values a response from a deployment carries, each with the string it was made from
/// (held, so no other string can take its address while the value is used).
#[derive(Debug)]
pub(crate) struct ResponseHeaders {
    values: [Option<(Arc<str>, HeaderValue)>; 3],
}

impl ResponseHeaders {
    fn of(dep: &Deployment) -> Self {
        let value = |text: Option<Arc<str>>| {
            let text = text?;
            let v = HeaderValue::from_str(&text).ok()?;
            Some((text, v))
        };
        Self {
            values: [
                value(Some(dep.id.clone())),
                value(Some(dep.model_group.clone())),
                value(dep.public_api_base()),
            ],
        }
    }
}

impl Clone for Deployment {
    /// A copy with the same configuration and environment; what was resolved is not copied, so a
    /// clone may be changed before its first call (as a wildcard deployment's concrete copies are).
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            model_group: self.model_group.clone(),
            provider: self.provider.clone(),
            model: self.model.clone(),
            api_base: self.api_base.clone(),
            api_key: self.api_key.clone(),
            api_version: self.api_version.clone(),
            timeout: self.timeout,
            stream_timeout: self.stream_timeout,
            max_retries: self.max_retries,
            rpm: self.rpm,
            tpm: self.tpm,
            weight: self.weight,
            order: self.order,
            max_parallel_requests: self.max_parallel_requests,
            input_cost_per_token: self.input_cost_per_token,
            output_cost_per_token: self.output_cost_per_token,
            tags: self.tags.clone(),
            params: self.params.clone(),
            model_info: self.model_info.clone(),
            public_base: self.public_base.clone(),
            env: self.env.clone(),
            resolved: OnceLock::new(),
            headers: OnceLock::new(),
        }
    }
}

impl Deployment {
    /// Makes the response header values now (a build step, so that no call pays for it).
    pub(crate) fn prepare_headers(&self) {
        let _ = self.response_headers();
    }

    fn response_headers(&self) -> &ResponseHeaders {
        self.headers.get_or_init(|| ResponseHeaders::of(self))
    }

    /// `text` as a header value when it is this deployment's `id`, `model_group` or
    /// `public_api_base()` (the very `Arc`, as the provider service stamps it on a response):
    /// made once per deployment. `None` for any other string, or one that is no header value.
    #[must_use]
    pub fn header_value(&self, text: &Arc<str>) -> Option<HeaderValue> {
        self.response_headers()
            .values
            .iter()
            .flatten()
            .find(|(source, _)| Arc::ptr_eq(source, text))
            .map(|(_, v)| v.clone())
    }

    /// Sets the base URL (and forgets what was resolved).
    #[must_use]
    pub fn with_api_base(mut self, api_base: impl Into<Arc<str>>) -> Self {
        self.api_base = Some(api_base.into());
        self.unresolve();
        self
    }

    /// Sets the credential (and forgets what was resolved).
    #[must_use]
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key));
        self.unresolve();
        self
    }

    /// Forgets the endpoints and header values worked out from the fields.
    pub(crate) fn unresolve(&mut self) {
        self.resolved = OnceLock::new();
        self.headers = OnceLock::new();
    }

    /// A provider-specific string parameter from `litellm_params`.
    #[must_use]
    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.params.get(key).and_then(serde_json::Value::as_str)
    }

    /// A provider-specific parameter from `litellm_params`.
    #[must_use]
    pub fn param(&self, key: &str) -> Option<&serde_json::Value> {
        self.params.get(key)
    }

    /// The base URL without credentials or query secrets ([`redact_url`]), for headers and logs
    /// (computed once per `api_base` value).
    #[must_use]
    pub fn public_api_base(&self) -> Option<Arc<str>> {
        let base = self.api_base.as_ref()?;
        if let Some((source, public)) = self.public_base.get() {
            // Valid while `api_base` is the very value it was computed from: the cache holds that
            // `Arc`, so a replaced `api_base` can never share its address.
            if Arc::ptr_eq(source, base) {
                return Some(public.clone());
            }
        }
        let public: Arc<str> = redact_url(base).into();
        let _ = self.public_base.set((base.clone(), public.clone()));
        Some(public)
    }
}

/// Splits `provider/model` at the first `/`; a bare model name belongs to `openai` (LiteLLM infers
/// OpenAI for its GPT models; any other provider needs its prefix).
#[must_use]
pub fn split_provider(model: &str) -> (&str, &str) {
    match model.split_once('/') {
        Some((prefix, rest)) => (prefix, rest),
        None => ("openai", model),
    }
}

/// A short, stable id for an entry without `model_info.id` (FNV-1a over its identity).
#[must_use]
pub fn stable_id(model_group: &str, model: &str, api_base: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in model_group
        .bytes()
        .chain([0])
        .chain(model.bytes())
        .chain([0])
        .chain(api_base.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<&String> = self.params.keys().collect();
        f.debug_struct("Deployment")
            .field("id", &self.id)
            .field("model_group", &self.model_group)
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("api_base", &self.public_api_base())
            .field("api_key", &self.api_key)
            .field("param_keys", &params)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_provider_prefix() {
        assert_eq!(split_provider("openai/gpt-4o"), ("openai", "gpt-4o"));
        assert_eq!(split_provider("gpt-4o"), ("openai", "gpt-4o"));
        assert_eq!(
            split_provider("openrouter/anthropic/claude"),
            ("openrouter", "anthropic/claude")
        );
    }

    #[test]
    fn public_api_base_has_no_credentials() {
        let d = Deployment::new("g", "openai/m")
            .with_api_base("https://user:pass@host/v1?api-version=1&key=k");
        let public = d.public_api_base().unwrap();
        assert_eq!(&*public, "https://host/v1?api-version=1&key=*****");
        // Computed once per value.
        assert!(Arc::ptr_eq(&public, &d.public_api_base().unwrap()));
        assert!(!format!("{d:?}").contains("pass"));
    }

    #[test]
    fn header_values_are_made_once_and_only_for_the_deployments_own_strings() {
        let d = Deployment::new("grp", "openai/m").with_api_base("http://u:p@h:1/v1");
        let base = d.public_api_base().unwrap();
        assert_eq!(d.header_value(&d.id).unwrap(), &*d.id);
        assert_eq!(d.header_value(&d.model_group).unwrap(), "grp");
        assert_eq!(d.header_value(&base).unwrap(), "http://h:1/v1");
        // The same text in another `Arc` is not the deployment's.
        let copy: Arc<str> = "grp".into();
        assert!(d.header_value(&copy).is_none());
        // A value no header can carry: none.
        let mut bad = Deployment::new("line\nbreak", "openai/m");
        bad.api_base = None;
        assert!(bad.header_value(&bad.model_group.clone()).is_none());
    }

    #[test]
    fn clones_start_unresolved_and_share_the_environment() {
        let d = Deployment::new("g", "openai/m")
            .with_env(|n| (n == "OPENAI_API_KEY").then(|| "sk-from-env".to_owned()));
        d.prepare("openai");
        let mut c = d.clone();
        assert!(c.resolved.get().is_none() && c.headers.get().is_none());
        assert!(d.resolved.get().is_some() && d.headers.get().is_some());
        assert_eq!(c.env_var("OPENAI_API_KEY"), Some("sk-from-env"));
        c.model_group = "other".into();
        assert_eq!(c.header_value(&c.model_group.clone()).unwrap(), "other");
    }

    #[test]
    fn debug_hides_key() {
        let d = Deployment::new("g", "openai/gpt-4o").with_api_key("sk-secret-value-123");
        assert!(!format!("{d:?}").contains("sk-secret"));
    }
}
