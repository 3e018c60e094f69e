//! [`Deployment`]: one `model_list` entry after config resolution.

use std::{fmt, sync::Arc, time::Duration};

use crate::secret::{redact_url, Secret};

/// One deployment of a model group: which provider, which upstream model, where, with which
/// credentials, limits and prices.
#[derive(Clone, Default)]
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
    public_base: std::sync::OnceLock<(Arc<str>, Arc<str>)>,
}

impl Deployment {
    /// A deployment of `model` (`provider/upstream-model`) serving `model_group`.
    #[must_use]
    pub fn new(model_group: &str, model: &str) -> Self {
        let (provider, upstream) = split_provider(model);
        Self {
            id: stable_id(model_group, model, "").into(),
            model_group: model_group.into(),
            provider: provider.into(),
            model: upstream.into(),
            ..Self::default()
        }
    }

    /// Sets the base URL.
    #[must_use]
    pub fn with_api_base(mut self, api_base: impl Into<Arc<str>>) -> Self {
        self.api_base = Some(api_base.into());
        self
    }

    /// Sets the credential.
    #[must_use]
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key));
        self
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
    fn debug_hides_key() {
        let d = Deployment::new("g", "openai/gpt-4o").with_api_key("sk-secret-value-123");
        assert!(!format!("{d:?}").contains("sk-secret"));
    }
}
