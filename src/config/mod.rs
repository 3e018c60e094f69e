//! LiteLLM proxy `config.yaml` loading.
//!
//! [`Config::from_path`] (or [`Config::from_yaml_str`]) parses a LiteLLM proxy config into typed
//! structs. Loading never stops at the first problem: every top-level section and every
//! `model_list` entry is deserialized on its own, so all problems are reported together as
//! [`ConfigErrors`], each naming the file and the exact key path (`model_list[3].litellm_params.timeout`).
//! Things that are not errors (unknown keys, unset environment variables) are returned as
//! warnings in [`Loaded::warnings`]; the loader does not log them itself.
//!
//! `os.environ/NAME` string values are resolved at load time, first from the config's own
//! `environment_variables` section, then from the process environment (which is never modified).
//! Resolved values are never logged, and are masked in error messages.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Unexpected, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::secret::Secret;

pub mod keys;

use keys::{KeySpec, Support};

/// The routing strategies LiteLLM's router accepts in `router_settings.routing_strategy`.
pub const ROUTING_STRATEGIES: &[&str] = &[
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
    "cost-based-routing",
];

/// The prefix of a string value that refers to an environment variable.
pub const ENV_PREFIX: &str = "os.environ/";

/// A fallback list: each element maps a model group to the groups to try instead, in order.
pub type Fallbacks = Vec<BTreeMap<String, Vec<String>>>;

// ---------------------------------------------------------------------------------------------
// Errors and results
// ---------------------------------------------------------------------------------------------

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// The file (or other origin) the config came from.
    pub file: String,
    /// The key path of the problem, e.g. `model_list[3].litellm_params.timeout`; empty when the
    /// problem concerns the whole file (unreadable file, invalid YAML).
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    /// A problem at `key` in `file`.
    #[must_use]
    pub fn new(file: impl Into<String>, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// `{file}: {key}: {reason}`, or `{file}: {reason}` when the key is empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found while loading a config (never empty when returned by the loader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A successfully loaded config and the warnings found while loading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// Non-fatal problems (unknown keys, unset environment variables), each starting with the key
    /// path. They never contain secret values.
    pub warnings: Vec<String>,
}

/// Everything a load found, errors included: what `llmgate --check` reports in one run. The
/// config holds what could be read (a section or entry with an error is left out or default).
#[derive(Debug, Clone)]
pub struct Checked {
    /// What could be read.
    pub config: Config,
    /// Problems that stop start-up.
    pub errors: Vec<ConfigError>,
    /// Problems that do not (each starting with the key path; never a secret value).
    pub warnings: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Config types
// ---------------------------------------------------------------------------------------------

/// A LiteLLM proxy config.
#[derive(Clone, Default)]
pub struct Config {
    /// `model_list`: the deployments.
    pub model_list: Vec<ModelEntry>,
    /// `litellm_settings`.
    pub litellm_settings: LitellmSettings,
    /// `router_settings`.
    pub router_settings: RouterSettings,
    /// `general_settings`.
    pub general_settings: GeneralSettings,
    /// `environment_variables`, scalars converted to strings. Used to resolve `os.environ/NAME`;
    /// the process environment is never modified.
    pub environment_variables: BTreeMap<String, String>,
    /// `finetune_settings`, kept as is (after `os.environ/` resolution).
    pub finetune_settings: Option<Value>,
    /// `files_settings`, kept as is (after `os.environ/` resolution).
    pub files_settings: Option<Value>,
    /// `guardrails`, kept as is (after `os.environ/` resolution).
    pub guardrails: Option<Value>,
    /// `credential_list`, kept as is (after `os.environ/` resolution).
    pub credential_list: Option<Value>,
    /// `mcp_servers`, kept as is (after `os.environ/` resolution).
    pub mcp_servers: Option<Value>,
    /// `callback_settings`, kept as is (after `os.environ/` resolution).
    pub callback_settings: Option<Value>,
    /// `assistant_settings`, kept as is (after `os.environ/` resolution).
    pub assistant_settings: Option<Value>,
}

/// One `model_list` entry: a deployment of a model group.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModelEntry {
    /// The model group (public model name) clients ask for.
    #[serde(deserialize_with = "lenient::req_string")]
    pub model_name: String,
    /// How to call the deployment.
    pub litellm_params: LitellmParams,
    /// Free-form metadata (`id`, `mode`, `base_model`, ...). Empty when absent.
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub model_info: Map<String, Value>,
}

/// `litellm_params` of a `model_list` entry.
///
/// Keys that are not typed here are provider-specific and land in [`LitellmParams::other`]
/// without a warning.
#[derive(Clone, Default)]
pub struct LitellmParams {
    /// `provider/model` (or a bare model name for OpenAI); required.
    pub model: String,
    /// Upstream base URL.
    pub api_base: Option<String>,
    /// Upstream credential.
    pub api_key: Option<Secret>,
    /// API version (Azure).
    pub api_version: Option<String>,
    /// Request timeout in seconds.
    pub timeout: Option<f64>,
    /// Timeout in seconds for streaming requests.
    pub stream_timeout: Option<f64>,
    /// Retries for this deployment.
    pub max_retries: Option<u32>,
    /// Requests-per-minute limit.
    pub rpm: Option<u64>,
    /// Tokens-per-minute limit.
    pub tpm: Option<u64>,
    /// Weight for weighted shuffle routing.
    pub weight: Option<f64>,
    /// Priority order (lower first).
    pub order: Option<u32>,
    /// Cost per input token, in dollars.
    pub input_cost_per_token: Option<f64>,
    /// Cost per output token, in dollars.
    pub output_cost_per_token: Option<f64>,
    /// Tags for tag-based routing. Empty when absent.
    pub tags: Vec<String>,
    /// Concurrency limit for this deployment.
    pub max_parallel_requests: Option<u32>,
    /// Every other key (provider-specific: `aws_*`, `vertex_*`, `region_name`, `extra_headers`,
    /// `mock_timeout`, ...).
    pub other: Map<String, Value>,
}

/// `litellm_settings`.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct LitellmSettings {
    /// Drop request params the provider does not support.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub drop_params: Option<bool>,
    /// Retries per request.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub num_retries: Option<u32>,
    /// Request timeout in seconds.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub request_timeout: Option<f64>,
    /// Telemetry switch.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub telemetry: Option<bool>,
    /// Callbacks on success.
    pub success_callback: Option<Vec<String>>,
    /// Callbacks on failure.
    pub failure_callback: Option<Vec<String>>,
    /// Callbacks on both.
    pub callbacks: Option<Vec<String>>,
    /// Fallbacks on any error.
    pub fallbacks: Option<Fallbacks>,
    /// Fallbacks on context-window errors.
    pub context_window_fallbacks: Option<Fallbacks>,
    /// Fallbacks on content-policy errors.
    pub content_policy_fallbacks: Option<Fallbacks>,
    /// Fallbacks for every model group.
    pub default_fallbacks: Option<Vec<String>>,
    /// Response caching switch.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub cache: Option<bool>,
    /// Response cache settings.
    pub cache_params: Option<CacheParams>,
    /// TTL in seconds of the in-memory cache.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub default_in_memory_ttl: Option<f64>,
    /// Verbose logging.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub set_verbose: Option<bool>,
    /// JSON logs.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub json_logs: Option<bool>,
    /// Failures per minute before a deployment cools down.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub allowed_fails: Option<u32>,
    /// Cooldown in seconds.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub cooldown_time: Option<f64>,
    /// Maximum fallbacks tried per request.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub max_fallbacks: Option<u32>,
    /// Let LiteLLM modify params for provider compatibility.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub modify_params: Option<bool>,
    /// Do not log message contents.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub turn_off_message_logging: Option<bool>,
    /// Redact user API key info from logs.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub redact_user_api_key_info: Option<bool>,
    /// Proxy-wide budget in dollars.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub max_budget: Option<f64>,
    /// Budget reset period (`30d`, `1h`, ...).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub budget_duration: Option<String>,
    /// HTTP status of budget errors (LiteLLM's default 422; 429 restores its older one).
    #[serde(deserialize_with = "lenient::opt_num")]
    pub budget_exceeded_status_code: Option<u16>,
    /// Per-team settings (shape varies; may hold credentials).
    pub default_team_settings: Option<Value>,
    /// Preview features switch.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub enable_preview_features: Option<bool>,
    /// Return upstream response headers.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub return_response_headers: Option<bool>,
    /// Upstream TLS verification: `false`, or a CA bundle path (see [`crate::upstream`]).
    pub ssl_verify: Option<Value>,
    /// Upstream TLS client certificate: a PEM file with the certificate and its key.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub ssl_certificate: Option<String>,
}

/// `litellm_settings.cache_params`. Keys not typed here land in [`CacheParams::other`].
#[derive(Clone, Default)]
pub struct CacheParams {
    /// `type`: `local`, `redis`, `redis-semantic`, `s3`, ...
    pub type_: Option<String>,
    /// Cache host.
    pub host: Option<String>,
    /// Cache port (a number or a numeric string).
    pub port: Option<u16>,
    /// Cache password.
    pub password: Option<Secret>,
    /// Cache URL (may embed credentials).
    pub url: Option<Secret>,
    /// Entry TTL in seconds.
    pub ttl: Option<f64>,
    /// Key namespace.
    pub namespace: Option<String>,
    /// Call types that are cached.
    pub supported_call_types: Option<Vec<String>>,
    /// Every other key.
    pub other: Map<String, Value>,
}

/// `router_settings`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RouterSettings {
    /// One of [`ROUTING_STRATEGIES`].
    #[serde(deserialize_with = "lenient::opt_string")]
    pub routing_strategy: Option<String>,
    /// Strategy-specific arguments.
    pub routing_strategy_args: Option<Value>,
    /// Retries per request.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub num_retries: Option<u32>,
    /// Request timeout in seconds.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub timeout: Option<f64>,
    /// Streaming timeout in seconds.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub stream_timeout: Option<f64>,
    /// Longest a stream may run in total, seconds (llmgate; see `docs/reliability.md`).
    #[serde(deserialize_with = "lenient::opt_num")]
    pub stream_max_duration: Option<f64>,
    /// Minimum seconds before a retry.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub retry_after: Option<f64>,
    /// Retries per error class (`AuthenticationErrorRetries`, ...).
    pub retry_policy: Option<BTreeMap<String, u32>>,
    /// Failures per minute before a deployment cools down.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub allowed_fails: Option<u32>,
    /// Allowed failures per error class.
    pub allowed_fails_policy: Option<BTreeMap<String, u32>>,
    /// Cooldown in seconds.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub cooldown_time: Option<f64>,
    /// Disable cooldowns entirely.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub disable_cooldowns: Option<bool>,
    /// Fallbacks on any error.
    pub fallbacks: Option<Fallbacks>,
    /// Fallbacks on context-window errors.
    pub context_window_fallbacks: Option<Fallbacks>,
    /// Fallbacks on content-policy errors.
    pub content_policy_fallbacks: Option<Fallbacks>,
    /// Fallbacks for every model group.
    pub default_fallbacks: Option<Vec<String>>,
    /// Maximum fallbacks tried per request.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub max_fallbacks: Option<u32>,
    /// Check context window / region before picking a deployment.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub enable_pre_call_checks: Option<bool>,
    /// Alias → model group: a string, or `{model: <group>, hidden: <bool>}`.
    pub model_group_alias: Option<BTreeMap<String, Value>>,
    /// Redis host for shared router state.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub redis_host: Option<String>,
    /// Redis port (a number or a numeric string).
    #[serde(deserialize_with = "lenient::opt_num")]
    pub redis_port: Option<u16>,
    /// Redis password.
    #[serde(deserialize_with = "lenient::opt_secret")]
    pub redis_password: Option<Secret>,
    /// Redis URL (may embed credentials).
    #[serde(deserialize_with = "lenient::opt_secret")]
    pub redis_url: Option<Secret>,
    /// Default concurrency limit per deployment.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub default_max_parallel_requests: Option<u32>,
    /// Cache responses in the router.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub cache_responses: Option<bool>,
    /// Per-provider budgets (shape varies).
    pub provider_budget_config: Option<Value>,
    /// Enable tag-based routing.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub enable_tag_filtering: Option<bool>,
    /// With tag filtering, match deployments having any (not all) of the tags.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub tag_filtering_match_any: Option<bool>,
}

/// `general_settings`.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct GeneralSettings {
    /// The proxy's admin key (else `LITELLM_MASTER_KEY` from the environment).
    #[serde(deserialize_with = "lenient::opt_secret")]
    pub master_key: Option<Secret>,
    /// Whether `master_key` came from `LITELLM_MASTER_KEY` (not a config key).
    #[serde(skip)]
    pub master_key_from_env: bool,
    /// Run with config keys llmgate refuses as not supported yet (each is then a warning).
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub allow_unsupported_config: Option<bool>,
    /// Database URL (embeds credentials).
    #[serde(deserialize_with = "lenient::opt_secret")]
    pub database_url: Option<Secret>,
    /// Store models added through the API in the database.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub store_model_in_db: Option<bool>,
    /// Budget rescheduler minimum interval, seconds.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub proxy_budget_rescheduler_min_time: Option<u64>,
    /// Budget rescheduler maximum interval, seconds.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub proxy_budget_rescheduler_max_time: Option<u64>,
    /// Spend batch-write interval, seconds.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub proxy_batch_write_at: Option<u64>,
    /// Database connection pool size.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub database_connection_pool_limit: Option<u32>,
    /// Database connection timeout, seconds.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub database_connection_timeout: Option<f64>,
    /// Pass-through endpoint definitions (headers may hold credentials).
    pub pass_through_endpoints: Option<Value>,
    /// Honour `mock_testing_*` / `mock_timeout` request params.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub dangerously_allow_mock_testing_request_params: Option<bool>,
    /// Full `/health/readiness` details without auth.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub allow_public_health_readiness_details: Option<bool>,
    /// Run health checks in the background.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub background_health_checks: Option<bool>,
    /// Background health check interval, seconds.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub health_check_interval: Option<u64>,
    /// Alerting integrations (`slack`, ...).
    pub alerting: Option<Vec<String>>,
    /// Maximum request body size, MB.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub max_request_size_mb: Option<f64>,
    /// Maximum response body size, MB.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub max_response_size_mb: Option<f64>,
    /// Seconds a client has to send a request's headers (llmgate; see `docs/reliability.md`).
    #[serde(deserialize_with = "lenient::opt_num")]
    pub request_header_timeout: Option<f64>,
    /// Seconds a client has to send a request's body (llmgate; see `docs/reliability.md`).
    #[serde(deserialize_with = "lenient::opt_num")]
    pub request_body_timeout: Option<f64>,
    /// Do not write spend logs.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub disable_spend_logs: Option<bool>,
    /// Routes allowed on the proxy (shape varies).
    pub allowed_routes: Option<Value>,
    /// Admin-only routes (shape varies).
    pub admin_only_routes: Option<Value>,
    /// Require the `user` request param.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub enforce_user_param: Option<bool>,
    /// Custom auth hook (`module.function`).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub custom_auth: Option<String>,
    /// Buffer spend updates in a Redis transaction.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub use_redis_transaction_buffer: Option<bool>,
    /// Slow-request alert threshold, seconds.
    #[serde(deserialize_with = "lenient::opt_num")]
    pub alerting_threshold: Option<f64>,
    /// Infer the model from the key.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub infer_model_from_keys: Option<bool>,
    /// Never return the master key from key endpoints.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub disable_master_key_return: Option<bool>,
    /// Spend log retention (`30d`, ...).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub maximum_spend_logs_retention_period: Option<String>,
    /// Header carrying the end-user id.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub user_header_name: Option<String>,
    /// llmgate: refuse deployments without a known price to callers whose key, team or user has
    /// a `max_budget` (or to every caller, with `litellm_settings.max_budget`), instead of
    /// logging their calls at cost 0. See docs/governance.md.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub block_unpriced_models_for_budgeted_keys: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Debug with redaction
// ---------------------------------------------------------------------------------------------

/// Debug output of free-form values that may hold credentials: structure, keys, numbers and
/// booleans are shown, every string is printed as `*****`.
trait RedactDebug {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

struct Redacted<'a, T: ?Sized>(&'a T);

impl<T: RedactDebug + ?Sized> fmt::Debug for Redacted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_redacted(f)
    }
}

impl RedactDebug for Value {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("null"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::String(_) => f.write_str("\"*****\""),
            Self::Array(items) => f.debug_list().entries(items.iter().map(Redacted)).finish(),
            Self::Object(map) => map.fmt_redacted(f),
        }
    }
}

impl RedactDebug for Map<String, Value> {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (k, Redacted(v))))
            .finish()
    }
}

impl RedactDebug for BTreeMap<String, String> {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.keys().map(|k| (k, "*****")))
            .finish()
    }
}

impl<T: RedactDebug> RedactDebug for Option<T> {
    fn fmt_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Some(v) => {
                f.write_str("Some(")?;
                v.fmt_redacted(f)?;
                f.write_str(")")
            }
            None => f.write_str("None"),
        }
    }
}

/// `Debug` for a struct whose `redact` fields go through [`RedactDebug`]. The destructuring is
/// exhaustive, so adding a field without listing it here does not compile.
macro_rules! redacting_debug {
    ($ty:ident { $($plain:ident),* $(,)? } redact { $($red:ident),* $(,)? }) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let Self { $($plain,)* $($red,)* } = self;
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($plain), $plain))*
                    $(.field(stringify!($red), &Redacted($red)))*
                    .finish()
            }
        }
    };
}

redacting_debug!(Config {
    model_list, litellm_settings, router_settings, general_settings,
} redact {
    environment_variables, finetune_settings, files_settings, guardrails, credential_list,
    mcp_servers, callback_settings, assistant_settings,
});

redacting_debug!(LitellmParams {
    model, api_base, api_key, api_version, timeout, stream_timeout, max_retries, rpm, tpm,
    weight, order, input_cost_per_token, output_cost_per_token, tags, max_parallel_requests,
} redact { other });

redacting_debug!(LitellmSettings {
    drop_params, num_retries, request_timeout, telemetry, success_callback, failure_callback,
    callbacks, fallbacks, context_window_fallbacks, content_policy_fallbacks, default_fallbacks,
    cache, cache_params, default_in_memory_ttl, set_verbose, json_logs, allowed_fails,
    cooldown_time, max_fallbacks, modify_params, turn_off_message_logging,
    redact_user_api_key_info, max_budget, budget_duration, budget_exceeded_status_code,
    enable_preview_features,
    return_response_headers, ssl_verify, ssl_certificate,
} redact { default_team_settings });

redacting_debug!(CacheParams {
    type_, host, port, password, url, ttl, namespace, supported_call_types,
} redact { other });

redacting_debug!(GeneralSettings {
    master_key, master_key_from_env, allow_unsupported_config, database_url, store_model_in_db, proxy_budget_rescheduler_min_time,
    proxy_budget_rescheduler_max_time, proxy_batch_write_at, database_connection_pool_limit,
    database_connection_timeout, dangerously_allow_mock_testing_request_params,
    allow_public_health_readiness_details, background_health_checks, health_check_interval,
    alerting, max_request_size_mb, max_response_size_mb, request_header_timeout,
    request_body_timeout, disable_spend_logs, allowed_routes,
    admin_only_routes, enforce_user_param, custom_auth, use_redis_transaction_buffer,
    alerting_threshold, infer_model_from_keys, disable_master_key_return,
    maximum_spend_logs_retention_period, user_header_name,
    block_unpriced_models_for_budgeted_keys,
} redact { pass_through_endpoints });

// ---------------------------------------------------------------------------------------------
// Lenient deserializers
// ---------------------------------------------------------------------------------------------

/// Field deserializers that accept what LiteLLM (Python) accepts: `True`/`False` strings as
/// booleans, numeric strings as numbers, scalars as strings, and `null` as absent. Error messages
/// never contain the offending string (it may come from an environment variable).
mod lenient {
    use super::{
        de, Deserialize, DeserializeOwned, Deserializer, FromStr, Secret, Unexpected, Value,
    };

    pub(super) fn unexpected(v: &Value) -> Unexpected<'_> {
        match v {
            Value::Null => Unexpected::Unit,
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Unexpected::Unsigned(u)
                } else if let Some(i) = n.as_i64() {
                    Unexpected::Signed(i)
                } else {
                    Unexpected::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(_) => Unexpected::Other("a string"),
            Value::Array(_) => Unexpected::Seq,
            Value::Object(_) => Unexpected::Map,
        }
    }

    pub(super) fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(b)),
            Value::String(s) => {
                let s = s.trim();
                if s.eq_ignore_ascii_case("true") {
                    Ok(Some(true))
                } else if s.eq_ignore_ascii_case("false") {
                    Ok(Some(false))
                } else {
                    Err(de::Error::custom(
                        "expected a boolean (true/false), found another string",
                    ))
                }
            }
            other => Err(de::Error::invalid_type(unexpected(&other), &"a boolean")),
        }
    }

    pub(super) fn opt_num<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr + DeserializeOwned,
    {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::String(s) => s.trim().parse::<T>().map(Some).map_err(|_| {
                de::Error::custom(format!(
                    "expected {}, found a string that is not one",
                    std::any::type_name::<T>()
                ))
            }),
            other => T::deserialize(other).map(Some).map_err(de::Error::custom),
        }
    }

    pub(super) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            Value::Bool(b) => Ok(Some(b.to_string())),
            Value::Number(n) => Ok(Some(n.to_string())),
            other => Err(de::Error::invalid_type(unexpected(&other), &"a string")),
        }
    }

    pub(super) fn req_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        opt_string(d)?.ok_or_else(|| de::Error::invalid_type(Unexpected::Unit, &"a string"))
    }

    pub(super) fn opt_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
        opt_string(d).map(|s| s.map(Secret::new))
    }

    pub(super) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Default + Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Option::unwrap_or_default)
    }

    /// Newtype wrappers for hand-written visitors (`map.next_value::<Num<f64>>()`).
    pub(super) struct Num<T>(pub(super) Option<T>);
    impl<'de, T: FromStr + DeserializeOwned> Deserialize<'de> for Num<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            opt_num(d).map(Self)
        }
    }

    pub(super) struct Str(pub(super) Option<String>);
    impl<'de> Deserialize<'de> for Str {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            opt_string(d).map(Self)
        }
    }

    pub(super) struct Sec(pub(super) Option<Secret>);
    impl<'de> Deserialize<'de> for Sec {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            opt_secret(d).map(Self)
        }
    }
}

impl<'de> Deserialize<'de> for LitellmParams {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LitellmParams;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of litellm_params")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LitellmParams, A::Error> {
                use lenient::{Num, Sec, Str};
                let mut p = LitellmParams::default();
                let mut model = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "model" => model = map.next_value::<Str>()?.0,
                        "api_base" => p.api_base = map.next_value::<Str>()?.0,
                        "api_key" => p.api_key = map.next_value::<Sec>()?.0,
                        "api_version" => p.api_version = map.next_value::<Str>()?.0,
                        "timeout" => p.timeout = map.next_value::<Num<_>>()?.0,
                        "stream_timeout" => p.stream_timeout = map.next_value::<Num<_>>()?.0,
                        "max_retries" => p.max_retries = map.next_value::<Num<_>>()?.0,
                        "rpm" => p.rpm = map.next_value::<Num<_>>()?.0,
                        "tpm" => p.tpm = map.next_value::<Num<_>>()?.0,
                        "weight" => p.weight = map.next_value::<Num<_>>()?.0,
                        "order" => p.order = map.next_value::<Num<_>>()?.0,
                        "input_cost_per_token" => {
                            p.input_cost_per_token = map.next_value::<Num<_>>()?.0;
                        }
                        "output_cost_per_token" => {
                            p.output_cost_per_token = map.next_value::<Num<_>>()?.0;
                        }
                        "tags" => {
                            p.tags = map.next_value::<Option<Vec<String>>>()?.unwrap_or_default();
                        }
                        "max_parallel_requests" => {
                            p.max_parallel_requests = map.next_value::<Num<_>>()?.0;
                        }
                        _ => {
                            let v: Value = map.next_value()?;
                            p.other.insert(key, v);
                        }
                    }
                }
                p.model = model.ok_or_else(|| de::Error::missing_field("model"))?;
                Ok(p)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for CacheParams {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CacheParams;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of cache_params")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CacheParams, A::Error> {
                use lenient::{Num, Sec, Str};
                let mut p = CacheParams::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "type" => p.type_ = map.next_value::<Str>()?.0,
                        "host" => p.host = map.next_value::<Str>()?.0,
                        "port" => p.port = map.next_value::<Num<_>>()?.0,
                        "password" => p.password = map.next_value::<Sec>()?.0,
                        "url" => p.url = map.next_value::<Sec>()?.0,
                        "ttl" => p.ttl = map.next_value::<Num<_>>()?.0,
                        "namespace" => p.namespace = map.next_value::<Str>()?.0,
                        "supported_call_types" => p.supported_call_types = map.next_value()?,
                        _ => {
                            let v: Value = map.next_value()?;
                            p.other.insert(key, v);
                        }
                    }
                }
                Ok(p)
            }
        }
        d.deserialize_map(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Reads and loads the config at `path`, resolving `os.environ/NAME` from the config's
    /// `environment_variables` and then the process environment. Errors name `path` as the file.
    pub fn from_path(path: &Path) -> Result<Loaded, ConfigErrors> {
        Self::from_path_with_env(path, &process_env)
    }

    /// [`Config::from_path`] with an injected environment lookup instead of the process
    /// environment.
    pub fn from_path_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Loaded, ConfigErrors> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::load_with(&text, &file, base_dir_of(path), env),
            Err(e) => Err(ConfigErrors(vec![ConfigError::new(
                file,
                "",
                format!("cannot read the config file: {e}"),
            )])),
        }
    }

    /// Loads a config from YAML text; `origin` names the source in errors. `os.environ/NAME`
    /// resolves from the config's `environment_variables`, then the process environment.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Loaded, ConfigErrors> {
        Self::from_yaml_str_with_env(text, origin, &process_env)
    }

    /// Loads a config from YAML text with an injected environment lookup: `os.environ/NAME`
    /// resolves from the config's `environment_variables`, then `env(NAME)`.
    pub fn from_yaml_str_with_env(
        text: &str,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Loaded, ConfigErrors> {
        Self::load_with(text, origin, PathBuf::from("."), env)
    }

    /// Loads `path` (or, with `None`, `default` named `origin`) and returns every problem found,
    /// errors and warnings together, with what could be read: for `llmgate --check`.
    #[must_use]
    pub fn check(path: Option<&Path>, default: &str, origin: &str) -> Checked {
        let (text, file, base_dir) = match path {
            Some(path) => {
                let file = path.display().to_string();
                match std::fs::read_to_string(path) {
                    Ok(text) => (text, file, base_dir_of(path)),
                    Err(e) => {
                        return Checked {
                            config: Self::default(),
                            errors: vec![ConfigError::new(
                                file,
                                "",
                                format!("cannot read the config file: {e}"),
                            )],
                            warnings: Vec::new(),
                        }
                    }
                }
            }
            None => (default.to_owned(), origin.to_owned(), PathBuf::from(".")),
        };
        Self::run_loader(&text, &file, base_dir, &process_env)
    }

    /// Loads YAML text whose `include:` paths are relative to `base_dir`.
    fn load_with(
        text: &str,
        origin: &str,
        base_dir: PathBuf,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Loaded, ConfigErrors> {
        let checked = Self::run_loader(text, origin, base_dir, env);
        if checked.errors.is_empty() {
            Ok(Loaded {
                config: checked.config,
                warnings: checked.warnings,
            })
        } else {
            Err(ConfigErrors(checked.errors))
        }
    }

    fn run_loader(
        text: &str,
        origin: &str,
        base_dir: PathBuf,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Checked {
        let mut loader = Loader {
            file: origin,
            base_dir,
            errors: Vec::new(),
            warnings: Vec::new(),
            resolved: Vec::new(),
            unset: Vec::new(),
            allow_unsupported: false,
        };
        let config = loader.load(text, env);
        loader.redact_errors();
        tracing::debug!(
            origin,
            models = config.model_list.len(),
            warnings = loader.warnings.len(),
            errors = loader.errors.len(),
            "parsed LiteLLM config"
        );
        Checked {
            config,
            errors: loader.errors,
            warnings: loader.warnings,
        }
    }

    /// The entries of model group `name`, in config order.
    pub fn deployments<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ModelEntry> + 'a {
        self.model_list.iter().filter(move |m| m.model_name == name)
    }
}

/// The directory of a config file (`include:` paths are relative to it).
fn base_dir_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

struct Loader<'a> {
    file: &'a str,
    /// The directory `include:` paths are relative to (the config file's).
    base_dir: PathBuf,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
    /// (key path, value) of every resolved `os.environ/` reference, to mask them in errors.
    resolved: Vec<(String, String)>,
    /// (key path, variable) of every `os.environ/` reference whose variable is unset.
    unset: Vec<(String, String)>,
    /// `general_settings.allow_unsupported_config`: refused keys become warnings.
    allow_unsupported: bool,
}

/// Appends a map key to a path: `.key`, or `["key"]` when the key would be ambiguous.
/// A mapping key that is not a scalar, as YAML on one line (at most 60 characters): how an
/// error names it (found by tests/fuzz_config.rs: such a key at the top level had no name).
fn shown_yaml_key(key: &serde_yaml_ng::Value) -> String {
    let text = serde_yaml_ng::to_string(key).unwrap_or_default();
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None if line.is_empty() => "?".to_owned(),
        None => line,
    }
}

fn push_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '*' | ':' | '@'));
    let seg = if plain {
        key.to_owned()
    } else {
        format!("[{}]", Value::String(key.to_owned()))
    };
    if path.is_empty() {
        seg
    } else if plain {
        format!("{path}.{seg}")
    } else {
        format!("{path}{seg}")
    }
}

fn push_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

fn tracked_path(prefix: &str, path: &serde_path_to_error::Path) -> String {
    let mut out = prefix.to_owned();
    for seg in path {
        out = match seg {
            serde_path_to_error::Segment::Seq { index } => push_index(&out, *index),
            serde_path_to_error::Segment::Map { key } => push_key(&out, key),
            serde_path_to_error::Segment::Enum { variant } => push_key(&out, variant),
            serde_path_to_error::Segment::Unknown => push_key(&out, "?"),
        };
    }
    out
}

fn ignored_path(prefix: &str, path: &serde_ignored::Path<'_>) -> String {
    match path {
        serde_ignored::Path::Root => prefix.to_owned(),
        serde_ignored::Path::Seq { parent, index } => {
            push_index(&ignored_path(prefix, parent), *index)
        }
        serde_ignored::Path::Map { parent, key } => push_key(&ignored_path(prefix, parent), key),
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_path(prefix, parent),
    }
}

/// Sort key of an error: sections in the usual file order, `model_list` entries by index.
fn error_rank(key: &str) -> (usize, usize) {
    const ORDER: &[&str] = &[
        "",
        "include",
        "environment_variables",
        "model_list",
        "litellm_settings",
        "router_settings",
        "general_settings",
    ];
    let end = key.find(['.', '[']).unwrap_or(key.len());
    let section = &key[..end];
    let rank = ORDER
        .iter()
        .position(|s| *s == section)
        .unwrap_or(ORDER.len());
    let index = key[end..]
        .strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (rank, index)
}

/// The field name of serde's "missing field `x`" message.
fn missing_field(reason: &str) -> Option<&str> {
    reason.strip_prefix("missing field `")?.strip_suffix('`')
}

/// Whether a value turns nothing on: null, `false`, an empty string, list or mapping.
fn is_inert(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.trim().is_empty() || s.eq_ignore_ascii_case("false"),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(true) | Value::Number(_) => false,
    }
}

fn yaml_error_reason(e: &serde_yaml_ng::Error) -> String {
    let msg = e.to_string();
    match e.location() {
        Some(loc) if !msg.contains("line ") => {
            format!(
                "invalid YAML: {msg} at line {} column {}",
                loc.line(),
                loc.column()
            )
        }
        _ => format!("invalid YAML: {msg}"),
    }
}

impl Loader<'_> {
    fn error(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(ConfigError::new(self.file, key, reason));
    }

    fn load(&mut self, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Config {
        let mut config = Config::default();
        let mut yaml: serde_yaml_ng::Value = match serde_yaml_ng::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.error("", yaml_error_reason(&e));
                return config;
            }
        };
        if let Err(e) = yaml.apply_merge() {
            self.error("", format!("invalid YAML merge key (<<): {e}"));
            return config;
        }
        let mut root = match self.yaml_to_json(yaml, "") {
            Value::Null => return config,
            Value::Object(map) => map,
            _ => {
                self.error(
                    "",
                    "the top level must be a mapping of sections (model_list, ...)",
                );
                return config;
            }
        };

        if let Some(v) = root.remove("include") {
            let mut seen = Vec::new();
            self.include(&mut root, v, "include", &mut seen);
        }
        if let Some(v) = root.remove("environment_variables") {
            config.environment_variables = self.environment_variables(v, env);
        }
        let section_env = config.environment_variables.clone();
        let lookup = |name: &str| section_env.get(name).cloned().or_else(|| env(name));
        for (key, value) in &mut root {
            self.resolve(value, key, &lookup);
        }

        // Every key either acts, is ignored on purpose, or is refused (see `keys`).
        self.allow_unsupported = root
            .get("general_settings")
            .and_then(|g| g.get("allow_unsupported_config"))
            .is_some_and(|v| {
                matches!(v, Value::Bool(true))
                    || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
            });
        for (name, value) in &root {
            self.check_key("", name, value, keys::TOP_LEVEL, &[]);
        }
        for (section, table) in [
            ("litellm_settings", keys::LITELLM_SETTINGS),
            ("router_settings", keys::ROUTER_SETTINGS),
            ("general_settings", keys::GENERAL_SETTINGS),
        ] {
            if let Some(Value::Object(map)) = root.get(section) {
                for (name, value) in map {
                    self.check_key(section, name, value, table, &[]);
                }
            }
        }
        let master_present = root
            .get("general_settings")
            .and_then(Value::as_object)
            .is_some_and(|g| g.contains_key("master_key"));

        if let Some(v) = root.remove("model_list") {
            config.model_list = self.model_list(&v);
        }
        if let Some(v) = root.remove("litellm_settings") {
            config.litellm_settings = self.section(&v, "litellm_settings").unwrap_or_default();
        }
        if let Some(v) = root.remove("router_settings") {
            config.router_settings = self.section(&v, "router_settings").unwrap_or_default();
        }
        if let Some(v) = root.remove("general_settings") {
            config.general_settings = self.section(&v, "general_settings").unwrap_or_default();
        }
        for (key, value) in root {
            match key.as_str() {
                "finetune_settings" => config.finetune_settings = Some(value),
                "files_settings" => config.files_settings = Some(value),
                "guardrails" => config.guardrails = Some(value),
                "credential_list" => config.credential_list = Some(value),
                "mcp_servers" => config.mcp_servers = Some(value),
                "callback_settings" => config.callback_settings = Some(value),
                "assistant_settings" => config.assistant_settings = Some(value),
                // Checked above: refused, pending or unknown (each with its message).
                _ => {}
            }
        }
        self.master_key(&mut config, master_present, &lookup);
        self.validate(&config);
        // Report in file-section order (model entries by index); discovery order otherwise.
        self.errors.sort_by_key(|e| error_rank(&e.key));
        config
    }

    /// YAML → JSON: non-string keys are stringified, tags dropped, non-finite floats become the
    /// strings `NaN`/`inf`/`-inf` (rejected later where a number is expected).
    fn yaml_to_json(&mut self, v: serde_yaml_ng::Value, path: &str) -> Value {
        use serde_yaml_ng::Value as Y;
        match v {
            Y::Null => Value::Null,
            Y::Bool(b) => Value::Bool(b),
            Y::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Value::from(u)
                } else if let Some(i) = n.as_i64() {
                    Value::from(i)
                } else {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    match serde_json::Number::from_f64(f) {
                        Some(num) => Value::Number(num),
                        None if f.is_nan() => Value::String("NaN".to_owned()),
                        None if f > 0.0 => Value::String("inf".to_owned()),
                        None => Value::String("-inf".to_owned()),
                    }
                }
            }
            Y::String(s) => Value::String(s),
            Y::Sequence(seq) => Value::Array(
                seq.into_iter()
                    .enumerate()
                    .map(|(i, item)| self.yaml_to_json(item, &push_index(path, i)))
                    .collect(),
            ),
            Y::Mapping(mapping) => {
                let mut out = Map::new();
                for (k, item) in mapping {
                    let key = match k {
                        Y::String(s) => s,
                        Y::Bool(b) => b.to_string(),
                        Y::Number(n) => n.to_string(),
                        Y::Null => "null".to_owned(),
                        _ => {
                            // Named as written, so that even a top-level one has a key.
                            self.error(
                                push_key(path, &shown_yaml_key(&k)),
                                "a mapping key must be a string, number, boolean or null, not a list, a mapping or a tagged value",
                            );
                            continue;
                        }
                    };
                    let child = push_key(path, &key);
                    let value = self.yaml_to_json(item, &child);
                    out.insert(key, value);
                }
                Value::Object(out)
            }
            Y::Tagged(tagged) => self.yaml_to_json(tagged.value, path),
        }
    }

    fn environment_variables(
        &mut self,
        value: Value,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let map = match value {
            Value::Null => return out,
            Value::Object(map) => map,
            _ => {
                self.error("environment_variables", "must be a mapping of NAME: value");
                return out;
            }
        };
        for (name, v) in map {
            let path = push_key("environment_variables", &name);
            let s = match v {
                Value::String(s) => match s.strip_prefix(ENV_PREFIX) {
                    Some(var) => match self.lookup(var, &path, env) {
                        Some(resolved) => resolved,
                        None => continue,
                    },
                    None => s,
                },
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                Value::Null => {
                    self.warnings.push(format!("{path}: no value; ignored"));
                    continue;
                }
                Value::Array(_) | Value::Object(_) => {
                    self.error(path, "must be a string, number or boolean");
                    continue;
                }
            };
            out.insert(name, s);
        }
        out
    }

    /// Looks up `var`, recording the resolution (for masking) or a warning when unset.
    fn lookup(
        &mut self,
        var: &str,
        path: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<String> {
        let found = if var.is_empty() { None } else { env(var) };
        match found {
            Some(value) => {
                self.resolved.push((path.to_owned(), value.clone()));
                Some(value)
            }
            None => {
                self.unset.push((path.to_owned(), var.to_owned()));
                self.warnings.push(format!(
                    "{path}: environment variable {var:?} (from {ENV_PREFIX}{var}) is not set; the key is treated as absent"
                ));
                None
            }
        }
    }

    /// Replaces every `os.environ/NAME` string in `value` (at `path`) by the variable's value,
    /// or null when it is unset.
    fn resolve(&mut self, value: &mut Value, path: &str, env: &dyn Fn(&str) -> Option<String>) {
        match value {
            Value::String(s) => {
                if let Some(var) = s.strip_prefix(ENV_PREFIX) {
                    let var = var.trim().to_owned();
                    *value = self
                        .lookup(&var, path, env)
                        .map_or(Value::Null, Value::String);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.resolve(item, &push_index(path, i), env);
                }
            }
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    self.resolve(item, &push_key(path, k), env);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// Deserializes `value` as `T`, recording the first type error (with its exact key path) and
    /// every unknown key (as a warning). `prefix` is the key path of `value`.
    fn typed<T: DeserializeOwned>(&mut self, value: &Value, prefix: &str) -> Option<T> {
        let mut track = serde_path_to_error::Track::new();
        let mut unknown = Vec::new();
        let result: Result<T, serde_json::Error> = {
            let de = serde_path_to_error::Deserializer::new(value, &mut track);
            serde_ignored::deserialize(de, |p| unknown.push(ignored_path(prefix, &p)))
        };
        let inventoried = matches!(
            prefix,
            "litellm_settings" | "router_settings" | "general_settings"
        );
        for key in unknown {
            // Keys directly in an inventoried section were checked against `keys` already.
            let direct = key
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|rest| !rest.contains(['.', '[']));
            if inventoried && direct {
                continue;
            }
            self.warnings.push(format!("{key}: unknown key; ignored"));
        }
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                let key = tracked_path(prefix, &track.path());
                let reason = e.to_string();
                match missing_field(&reason) {
                    Some(field) => self.error(push_key(&key, field), "required key is missing"),
                    None => self.error(key, reason),
                }
                None
            }
        }
    }

    /// Deserializes a mapping section (or model entry); null is the default, anything but a
    /// mapping is an error (serde would otherwise accept a list as a positional struct).
    fn section<T: DeserializeOwned + Default>(&mut self, value: &Value, name: &str) -> Option<T> {
        match value {
            Value::Null => Some(T::default()),
            Value::Object(_) => self.typed(value, name),
            _ => {
                self.error(name, "must be a mapping");
                None
            }
        }
    }

    fn model_list(&mut self, value: &Value) -> Vec<ModelEntry> {
        match value {
            Value::Null => Vec::new(),
            Value::Array(items) => {
                // id → index of the first entry using it
                let mut ids: HashMap<String, usize> = HashMap::new();
                let mut entries = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let at = push_index("model_list", i);
                    if item.is_null() {
                        self.error(at, "empty model entry");
                        continue;
                    }
                    if let Some(Value::Object(params)) = item.get("litellm_params") {
                        let params_at = push_key(&at, "litellm_params");
                        for (name, value) in params {
                            self.check_key(
                                &params_at,
                                name,
                                value,
                                keys::LITELLM_PARAMS,
                                crate::provider::params::OPENAI_CHAT_PARAMS,
                            );
                        }
                    }
                    if let Some(entry) = self.section::<ModelEntry>(item, &at) {
                        self.validate_entry(&entry, &at, i, &mut ids);
                        entries.push(entry);
                    }
                }
                entries
            }
            _ => {
                self.error("model_list", "must be a list of model entries");
                Vec::new()
            }
        }
    }

    /// Merges the files named by `include` (a list of paths relative to the config file) into
    /// `root`, as LiteLLM does: a list extends the list already there, any other value replaces
    /// it. Included files may include others; a file included twice is an error.
    fn include(
        &mut self,
        root: &mut Map<String, Value>,
        list: Value,
        at: &str,
        seen: &mut Vec<PathBuf>,
    ) {
        let items = match list {
            Value::Null => return,
            Value::Array(items) => items,
            _ => {
                self.error(at, "must be a list of file paths");
                return;
            }
        };
        for (i, item) in items.into_iter().enumerate() {
            let key = push_index(at, i);
            let Value::String(name) = item else {
                self.error(key, "must be a file path");
                continue;
            };
            let path = self.base_dir.join(&name);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    self.error(
                        key,
                        format!("cannot read included file {}: {e}", path.display()),
                    );
                    continue;
                }
            };
            let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if seen.contains(&canonical) || seen.len() >= 16 {
                self.error(
                    key,
                    format!(
                        "{} is included more than once (an include cycle?)",
                        path.display()
                    ),
                );
                continue;
            }
            seen.push(canonical);
            let yaml = match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) {
                Ok(mut v) => match v.apply_merge() {
                    Ok(()) => v,
                    Err(e) => {
                        self.error(
                            key,
                            format!("{}: invalid YAML merge key (<<): {e}", path.display()),
                        );
                        continue;
                    }
                },
                Err(e) => {
                    self.error(
                        key,
                        format!("{}: {}", path.display(), yaml_error_reason(&e)),
                    );
                    continue;
                }
            };
            let map = match self.yaml_to_json(yaml, &key) {
                Value::Null => continue,
                Value::Object(map) => map,
                _ => {
                    self.error(
                        key,
                        format!("{} must hold a mapping of sections", path.display()),
                    );
                    continue;
                }
            };
            for (name, value) in map {
                if name == "include" {
                    self.include(root, value, &push_key(&key, "include"), seen);
                    continue;
                }
                match (root.get_mut(&name), value) {
                    (Some(Value::Array(mine)), Value::Array(more)) => mine.extend(more),
                    (_, value) => {
                        root.insert(name, value);
                    }
                }
            }
        }
    }

    /// Checks one key of a section against the inventory: a refused key is an error (a warning
    /// with `allow_unsupported_config`), a pending one a warning, an unknown one a warning naming
    /// the nearest known key. `extra` are further known names (OpenAI request parameters).
    fn check_key(
        &mut self,
        section: &str,
        name: &str,
        value: &Value,
        table: &[KeySpec],
        extra: &[&str],
    ) {
        let path = push_key(section, name);
        match keys::find(table, name) {
            Some(Support::Implemented | Support::Ignored(_)) => {}
            // A value that turns nothing on (`false`, `[]`, `{}`, null) asks for nothing.
            Some(Support::Refused(_) | Support::Pending) if is_inert(value) => {}
            Some(Support::Refused(what)) => {
                if self.allow_unsupported {
                    self.warnings.push(format!(
                        "{path}: not supported by llmgate yet ({what}); running without it because general_settings.allow_unsupported_config is true"
                    ));
                } else {
                    self.error(
                        path,
                        format!(
                            "not supported by llmgate yet: {what}. llmgate refuses to run without what this key asks for; remove the key, or set general_settings.allow_unsupported_config: true to run without it"
                        ),
                    );
                }
            }
            Some(Support::Pending) => self
                .warnings
                .push(format!("{path}: not supported by llmgate yet; ignored")),
            None if extra.contains(&name) => {}
            None => {
                let what = if section.is_empty() {
                    "unknown top-level section"
                } else {
                    "unknown key"
                };
                let hint = keys::nearest(name, table, extra)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                self.warnings.push(format!("{path}: {what}; ignored{hint}"));
            }
        }
    }

    /// `general_settings.master_key`, failing closed: a key that is present but resolves to
    /// nothing stops start-up; without one, `LITELLM_MASTER_KEY` is the master key (as in
    /// LiteLLM, the config wins when both are set).
    fn master_key(
        &mut self,
        config: &mut Config,
        present: bool,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) {
        const KEY: &str = "general_settings.master_key";
        const ENV: &str = "LITELLM_MASTER_KEY";
        if present {
            if let Some((_, var)) = self.unset.iter().find(|(p, _)| p == KEY) {
                let var = var.clone();
                let own = format!("{KEY}:");
                self.warnings.retain(|w| !w.starts_with(&own));
                self.error(
                    KEY,
                    format!(
                        "refers to the environment variable {var:?} ({ENV_PREFIX}{var}), which is not set; llmgate does not start without the authentication the config asks for"
                    ),
                );
                return;
            }
            match &config.general_settings.master_key {
                None => self.error(
                    KEY,
                    "has no value; set a key (sk-...), or remove master_key to run without authentication",
                ),
                Some(k) if k.expose().trim().is_empty() => self.error(
                    KEY,
                    "is empty; set a key (sk-...), or remove master_key to run without authentication",
                ),
                Some(_) => {}
            }
        } else if let Some(v) = lookup(ENV) {
            if v.trim().is_empty() {
                self.error(
                    KEY,
                    format!("{ENV} is set but empty; set a key (sk-...) or unset {ENV} to run without authentication"),
                );
            } else {
                config.general_settings.master_key = Some(Secret::new(v));
                config.general_settings.master_key_from_env = true;
            }
        }
        if let Some(k) = &config.general_settings.master_key {
            if !k.expose().trim().is_empty() && !k.expose().starts_with("sk-") {
                let source = if config.general_settings.master_key_from_env {
                    ENV
                } else {
                    KEY
                };
                self.warnings.push(format!(
                    "{KEY}: weak master key: the key from {source} does not start with `sk-` (LiteLLM's keys do; key scanners and clients recognise them by it)"
                ));
            }
        }
    }

    // --- semantic validation ---------------------------------------------------------------

    fn non_negative(&mut self, key: &str, value: Option<f64>) {
        match value {
            Some(v) if v.is_nan() => self.error(key, "must be a number, not NaN"),
            Some(v) if v.is_infinite() => self.error(key, "must be a finite number"),
            Some(v) if v < 0.0 => self.error(key, format!("must not be negative (got {v})")),
            _ => {}
        }
    }

    /// A limit (a timeout, a TTL, a size) where 0 would switch the limit off or be replaced by
    /// the default without a word: it must be > 0 (leave the key out for the default).
    fn positive(&mut self, key: &str, value: Option<f64>) {
        match value {
            Some(0.0) => self.error(
                key,
                "must be greater than 0 (0 is no usable limit; leave the key out for the default)",
            ),
            _ => self.non_negative(key, value),
        }
    }

    /// A budget period: a duration longer than 0 (`0s` would reset the budget on every request).
    fn budget_period(&mut self, key: &str, value: Option<&str>) {
        let Some(d) = value.filter(|d| !d.is_empty()) else {
            return;
        };
        match crate::store::parse_duration(d) {
            None => self.error(
                key,
                format!("`{d}` is not a duration (30s, 5m, 1h, 1d, 1w, 1mo)"),
            ),
            Some(p) if p.is_zero() => self.error(
                key,
                format!("`{d}` is no time: the budget would reset on every request; use e.g. 30d"),
            ),
            Some(_) => {}
        }
    }

    /// Checks model entry `i` (at key `at`); `ids` collects `model_info.id`s.
    fn validate_entry(
        &mut self,
        entry: &ModelEntry,
        at: &str,
        i: usize,
        ids: &mut HashMap<String, usize>,
    ) {
        if entry.model_name.trim().is_empty() {
            self.error(push_key(at, "model_name"), "must not be empty");
        }
        let lp = &entry.litellm_params;
        let params = push_key(at, "litellm_params");
        if lp.model.trim().is_empty() {
            self.error(push_key(&params, "model"), "must not be empty");
        }
        if let Some(base) = &lp.api_base {
            let lower = base.trim().to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                self.error(
                    push_key(&params, "api_base"),
                    format!(
                        "must start with http:// or https:// (got {:?})",
                        crate::secret::redact_url(base)
                    ),
                );
            }
        }
        for (name, v) in [
            ("timeout", lp.timeout),
            ("stream_timeout", lp.stream_timeout),
        ] {
            self.positive(&push_key(&params, name), v);
        }
        for (name, v) in [
            ("weight", lp.weight),
            ("input_cost_per_token", lp.input_cost_per_token),
            ("output_cost_per_token", lp.output_cost_per_token),
        ] {
            self.non_negative(&push_key(&params, name), v);
        }
        // Read per request by `provider::params`; a wrong shape would silently do nothing there.
        match lp.other.get("additional_drop_params") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
            Some(_) => self.error(
                push_key(&params, "additional_drop_params"),
                "must be a list of parameter names (`logit_bias`, `tools[*].input_examples`)",
            ),
        }
        match lp.other.get("drop_params") {
            None | Some(Value::Null | Value::Bool(_)) => {}
            Some(Value::String(s))
                if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {}
            Some(_) => self.error(push_key(&params, "drop_params"), "must be true or false"),
        }
        if let Some(id) = entry.model_info.get("id") {
            let key = push_key(&push_key(at, "model_info"), "id");
            let id = match id {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Null => None,
                _ => {
                    self.error(key.as_str(), "must be a string or a number");
                    None
                }
            };
            if let Some(id) = id {
                if let Some(first) = ids.get(&id) {
                    self.error(
                        key,
                        format!("duplicate id {id:?} (already used by model_list[{first}])"),
                    );
                } else {
                    ids.insert(id, i);
                }
            }
        }
    }

    fn validate(&mut self, config: &Config) {
        let ls = &config.litellm_settings;
        for (name, v) in [
            ("request_timeout", ls.request_timeout),
            ("default_in_memory_ttl", ls.default_in_memory_ttl),
        ] {
            self.positive(&push_key("litellm_settings", name), v);
        }
        for (name, v) in [
            ("cooldown_time", ls.cooldown_time),
            ("max_budget", ls.max_budget),
        ] {
            self.non_negative(&push_key("litellm_settings", name), v);
        }
        if let Some(code) = ls.budget_exceeded_status_code {
            if !(400..=599).contains(&code) {
                self.error(
                    "litellm_settings.budget_exceeded_status_code",
                    format!("{code} is not an error status (400–599)"),
                );
            }
        }
        // The proxy budget's period (see `crate::budget::ProxyBudget`).
        self.budget_period(
            "litellm_settings.budget_duration",
            ls.budget_duration.as_deref(),
        );
        if let Some(cp) = &ls.cache_params {
            self.positive("litellm_settings.cache_params.ttl", cp.ttl);
            // Response cache values (the cache layer's own check; see `crate::cache`).
            for (key, reason) in crate::cache::check_params(cp) {
                self.error(push_key("litellm_settings.cache_params", key), reason);
            }
        }

        let rs = &config.router_settings;
        if let Some(strategy) = &rs.routing_strategy {
            if !ROUTING_STRATEGIES.contains(&strategy.as_str()) {
                self.error(
                    "router_settings.routing_strategy",
                    format!(
                        "unknown routing strategy {strategy:?}; expected one of: {}",
                        ROUTING_STRATEGIES.join(", ")
                    ),
                );
            }
        }
        for (name, v) in [
            ("timeout", rs.timeout),
            ("stream_timeout", rs.stream_timeout),
            ("stream_max_duration", rs.stream_max_duration),
        ] {
            self.positive(&push_key("router_settings", name), v);
        }
        for (name, v) in [
            ("retry_after", rs.retry_after),
            ("cooldown_time", rs.cooldown_time),
        ] {
            self.non_negative(&push_key("router_settings", name), v);
        }
        if let Some(aliases) = &rs.model_group_alias {
            for (alias, target) in aliases {
                let ok = match target {
                    Value::String(s) => !s.is_empty(),
                    Value::Object(m) => {
                        matches!(m.get("model"), Some(Value::String(s)) if !s.is_empty())
                            && matches!(m.get("hidden"), None | Some(Value::Bool(_) | Value::Null))
                    }
                    _ => false,
                };
                if !ok {
                    self.error(
                        push_key("router_settings.model_group_alias", alias),
                        "must be a model group name or {model: <name>, hidden: <bool>}",
                    );
                }
            }
        }

        let gs = &config.general_settings;
        for (name, v) in [
            (
                "database_connection_timeout",
                gs.database_connection_timeout,
            ),
            ("alerting_threshold", gs.alerting_threshold),
        ] {
            self.non_negative(&push_key("general_settings", name), v);
        }
        for (name, v) in [
            ("max_request_size_mb", gs.max_request_size_mb),
            ("max_response_size_mb", gs.max_response_size_mb),
            ("request_header_timeout", gs.request_header_timeout),
            ("request_body_timeout", gs.request_body_timeout),
        ] {
            self.positive(&push_key("general_settings", name), v);
        }
        self.references(config);
    }

    /// Fallbacks, `default_fallbacks` and aliases that name a model group no deployment serves
    /// (neither a `model_name`, an alias, nor a match of a wildcard group): warnings, as a
    /// LiteLLM config with such a reference still runs (the reference is never reachable).
    fn references(&mut self, config: &Config) {
        let aliases = config.router_settings.model_group_alias.as_ref();
        let exists = |name: &str| {
            config.model_list.iter().any(|m| {
                m.model_name == name
                    || m.model_name.split_once('*').is_some_and(|(pre, post)| {
                        name.len() >= pre.len() + post.len()
                            && name.starts_with(pre)
                            && name.ends_with(post)
                    })
            }) || aliases.is_some_and(|a| a.contains_key(name))
        };
        let mut found = Vec::new();
        for (section, lists, default) in [
            (
                "litellm_settings",
                [
                    ("fallbacks", &config.litellm_settings.fallbacks),
                    (
                        "context_window_fallbacks",
                        &config.litellm_settings.context_window_fallbacks,
                    ),
                    (
                        "content_policy_fallbacks",
                        &config.litellm_settings.content_policy_fallbacks,
                    ),
                ],
                &config.litellm_settings.default_fallbacks,
            ),
            (
                "router_settings",
                [
                    ("fallbacks", &config.router_settings.fallbacks),
                    (
                        "context_window_fallbacks",
                        &config.router_settings.context_window_fallbacks,
                    ),
                    (
                        "content_policy_fallbacks",
                        &config.router_settings.content_policy_fallbacks,
                    ),
                ],
                &config.router_settings.default_fallbacks,
            ),
        ] {
            for (kind, list) in lists {
                for (i, map) in list.iter().flatten().enumerate() {
                    for (from, targets) in map {
                        let at = push_key(&push_index(&push_key(section, kind), i), from);
                        if from != "*" && !exists(from) {
                            found.push(format!(
                                "{at}: {from:?} is not a model group in model_list; these fallbacks are never used"
                            ));
                        }
                        for to in targets.iter().filter(|t| !exists(t)) {
                            found.push(format!(
                                "{at}: the fallback {to:?} is not a model group in model_list; it is skipped"
                            ));
                        }
                    }
                }
            }
            for to in default.iter().flatten().filter(|t| !exists(t)) {
                found.push(format!(
                    "{section}.default_fallbacks: {to:?} is not a model group in model_list; it is skipped"
                ));
            }
        }
        for (alias, target) in aliases.into_iter().flatten() {
            let group = match target {
                Value::String(s) => s.as_str(),
                Value::Object(m) => m.get("model").and_then(Value::as_str).unwrap_or(""),
                _ => "",
            };
            if !group.is_empty() && !exists(group) {
                found.push(format!(
                    "{}: the alias points at {group:?}, which is not a model group in model_list",
                    push_key("router_settings.model_group_alias", alias)
                ));
            }
        }
        self.warnings.extend(found);
    }

    /// Masks resolved environment values in error reasons: always at the key the value was
    /// resolved for (and below it), anywhere for values long enough not to be ambiguous.
    fn redact_errors(&mut self) {
        if self.resolved.is_empty() {
            return;
        }
        for e in &mut self.errors {
            for (path, value) in &self.resolved {
                if value.is_empty() {
                    continue;
                }
                let here = e.key == *path
                    || e.key.starts_with(&format!("{path}."))
                    || e.key.starts_with(&format!("{path}["));
                if (here || value.len() >= 4) && e.reason.contains(value.as_str()) {
                    e.reason = e.reason.replace(value.as_str(), "*****");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfigErrors> {
        Config::from_yaml_str_with_env(text, "test.yaml", &env_of(env))
    }

    fn load_ok(text: &str, env: &[(&str, &str)]) -> Loaded {
        match load(text, env) {
            Ok(l) => l,
            Err(e) => panic!("unexpected errors:\n{e}"),
        }
    }

    fn load_err(text: &str) -> Vec<ConfigError> {
        match load(text, &[]) {
            Ok(l) => panic!("expected errors, got {:?}", l.config),
            Err(e) => e.0,
        }
    }

    fn ci_template() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/configs/litellm-ci.template.yaml"
        );
        std::fs::read_to_string(path)
            .expect("CI template")
            .replace("@MOCK@", "http://127.0.0.1:18001")
            .replace("@DEAD@", "http://127.0.0.1:1")
    }

    /// Found by tests/fuzz_config.rs: a tagged, list or mapping key (here at the top level)
    /// gave an error with no key.
    #[test]
    fn a_key_that_is_not_a_scalar_is_named() {
        for (text, key) in [
            ("!tag litellm_settings: {}\n", "[\"!tag litellm_settings\"]"),
            ("[a, b]: 1\n", "[\"- a - b\"]"),
            (
                "litellm_settings:\n  ? {x: 1}\n  : 2\n",
                "litellm_settings[\"x: 1\"]",
            ),
        ] {
            let errors = load_err(text);
            assert_eq!(errors.len(), 1, "{text}: {errors:?}");
            assert_eq!(errors[0].key, key, "{text}");
            assert!(errors[0]
                .reason
                .contains("not a list, a mapping or a tagged value"));
        }
    }

    #[test]
    fn litellm_ci_config_loads() {
        let text = ci_template();
        let entries = text
            .lines()
            .filter(|l| l.trim_start().starts_with("- model_name:"))
            .count();
        assert!(entries > 20, "template has {entries} entries");
        // LiteLLM's own CI config asks for three things llmgate does not do yet, each of which
        // changes money or auditing: refused by name, all three in one run.
        let env = [("OPENAI_API_KEY", "sk-openai-from-env")];
        let refused = match load(&text, &env) {
            Ok(_) => panic!("refused keys loaded"),
            Err(e) => e.0,
        };
        let keys: Vec<&str> = refused.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "model_list[5].litellm_params.input_cost_per_second",
                "litellm_settings.success_callback",
                "general_settings.store_model_in_db",
            ]
        );
        assert!(refused
            .iter()
            .all(|e| e.reason.starts_with("not supported by llmgate yet: ")
                && e.reason.contains("allow_unsupported_config")));
        // The operator accepts the risk: each becomes a warning.
        let text = text.replace(
            "general_settings:\n",
            "general_settings:\n  allow_unsupported_config: true\n",
        );
        let loaded = load_ok(&text, &env);
        for key in keys {
            assert!(
                loaded
                    .warnings
                    .iter()
                    .any(|w| w.starts_with(key) && w.contains("allow_unsupported_config is true")),
                "{key}: {:?}",
                loaded.warnings
            );
        }
        let c = &loaded.config;
        assert_eq!(c.model_list.len(), entries);

        let first = &c.model_list[0];
        assert_eq!(first.model_name, "gpt-3.5-turbo-end-user-test");
        assert_eq!(first.litellm_params.model, "gpt-3.5-turbo");
        assert_eq!(
            first.litellm_params.api_base.as_deref(),
            Some("http://127.0.0.1:18001/v1")
        );
        assert_eq!(
            first.litellm_params.api_key.as_ref().map(Secret::expose),
            Some("sk-openai-from-env")
        );
        assert_eq!(
            first.litellm_params.other.get("region_name"),
            Some(&Value::from("eu"))
        );
        assert_eq!(first.model_info.get("id"), Some(&Value::from("1")));

        let large = c.deployments("gpt-3.5-turbo-large").next().expect("large");
        assert_eq!(large.litellm_params.rpm, Some(480));
        assert_eq!(large.litellm_params.timeout, Some(300.0));
        assert_eq!(large.litellm_params.stream_timeout, Some(60.0));

        let bad = c.deployments("bad-model").next().expect("bad-model");
        assert_eq!(
            bad.litellm_params.other.get("mock_timeout"),
            Some(&Value::Bool(true))
        );
        let fake4 = c
            .deployments("fake-openai-endpoint-4")
            .next()
            .expect("fake4");
        assert_eq!(
            fake4.litellm_params.other.get("num_retries"),
            Some(&Value::from(50))
        );
        assert_eq!(c.deployments("fake-openai-endpoint-3").count(), 2);

        // Unset provider keys warn and become absent; the AWS entry keeps its other keys.
        let anthropic = c.deployments("anthropic/*").next().expect("anthropic");
        assert!(anthropic.litellm_params.api_key.is_none());
        assert!(loaded
            .warnings
            .iter()
            .any(|w| w.contains("litellm_params.api_key") && w.contains("ANTHROPIC_API_KEY")));
        let bedrock = c.deployments("bedrock/*").next().expect("bedrock");
        assert_eq!(
            bedrock
                .litellm_params
                .other
                .get("aws_bedrock_runtime_endpoint"),
            Some(&Value::from("http://127.0.0.1:1"))
        );
        assert_eq!(
            bedrock.litellm_params.other.get("aws_access_key_id"),
            Some(&Value::Null)
        );

        let ls = &c.litellm_settings;
        assert_eq!(ls.drop_params, Some(true));
        assert_eq!(ls.telemetry, Some(false));
        assert_eq!(ls.num_retries, Some(5));
        assert_eq!(ls.request_timeout, Some(600.0));
        assert_eq!(
            ls.success_callback.as_deref(),
            Some(&["prometheus".to_owned()][..])
        );
        let cwf = ls.context_window_fallbacks.as_ref().expect("cwf");
        assert_eq!(
            cwf[0]["gpt-3.5-turbo"],
            vec!["gpt-3.5-turbo-large".to_owned()]
        );

        let rs = &c.router_settings;
        assert_eq!(
            rs.routing_strategy.as_deref(),
            Some("usage-based-routing-v2")
        );
        assert_eq!(rs.enable_pre_call_checks, Some(true));
        assert_eq!(
            rs.model_group_alias
                .as_ref()
                .and_then(|m| m.get("my-special-fake-model-alias-name")),
            Some(&Value::from("fake-openai-endpoint-3"))
        );

        let gs = &c.general_settings;
        assert_eq!(gs.master_key.as_ref().map(Secret::expose), Some("sk-1234"));
        assert!(gs
            .master_key
            .as_ref()
            .expect("master key")
            .matches("sk-1234"));
        assert_eq!(gs.store_model_in_db, Some(true));
        assert_eq!(gs.proxy_budget_rescheduler_min_time, Some(60));
        assert_eq!(gs.proxy_budget_rescheduler_max_time, Some(64));
        assert_eq!(gs.proxy_batch_write_at, Some(1));
        assert_eq!(gs.database_connection_pool_limit, Some(10));
        assert_eq!(gs.dangerously_allow_mock_testing_request_params, Some(true));
        assert_eq!(gs.allow_public_health_readiness_details, Some(true));
        let pte = gs.pass_through_endpoints.as_ref().expect("pass-through");
        assert_eq!(pte[0]["path"], "/v1/rerank");

        let ft = c.finetune_settings.as_ref().expect("finetune_settings");
        assert_eq!(ft[0]["api_key"], "sk-openai-from-env");
        assert!(c.files_settings.is_some());
        // Known sections and provider-specific params never produce unknown-key warnings.
        assert!(
            loaded.warnings.iter().all(|w| !w.contains("unknown")),
            "{:?}",
            loaded.warnings
        );

        // Secrets never appear in Debug output.
        let debug = format!("{c:?}");
        assert!(!debug.contains("sk-1234"), "{debug}");
        assert!(!debug.contains("sk-openai-from-env"));
        assert!(!debug.contains("my-fake-key"));
        assert!(debug.contains("gpt-3.5-turbo-large"));
    }

    #[test]
    fn from_path_reads_and_names_the_file() {
        let dir = std::env::temp_dir().join(format!("llmgate-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("config.yaml");
        let allowed = ci_template().replace(
            "general_settings:\n",
            "general_settings:\n  allow_unsupported_config: true\n",
        );
        std::fs::write(&path, allowed).expect("write");
        let loaded =
            Config::from_path_with_env(&path, &env_of(&[("OPENAI_API_KEY", "k")])).expect("loads");
        assert!(!loaded.config.model_list.is_empty());

        std::fs::write(&path, "model_list: [{model_name: x}]\n").expect("write");
        let errs = Config::from_path(&path).expect_err("missing litellm_params");
        assert_eq!(errs.0[0].file, path.display().to_string());
        assert_eq!(errs.0[0].key, "model_list[0].litellm_params");

        let missing = dir.join("nope.yaml");
        let errs = Config::from_path(&missing).expect_err("no file");
        assert_eq!(errs.0.len(), 1);
        assert_eq!(errs.0[0].key, "");
        assert!(errs.0[0].reason.contains("cannot read"));
        assert!(errs.to_string().starts_with(&missing.display().to_string()));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn master_key_fails_closed() {
        // An os.environ reference to an unset variable stops start-up, naming key and variable.
        let text = "general_settings:\n  master_key: os.environ/MY_MASTER\n";
        let errs = match load(text, &[]) {
            Ok(_) => panic!("an unset master key loaded"),
            Err(e) => e.0,
        };
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].key, "general_settings.master_key");
        assert!(
            errs[0].reason.contains("\"MY_MASTER\""),
            "{}",
            errs[0].reason
        );
        assert!(errs[0].reason.contains("not set"), "{}", errs[0].reason);
        // Set but empty, a literal empty string, or no value at all: the same.
        for (text, env) in [
            (text, vec![("MY_MASTER", "")]),
            ("general_settings:\n  master_key: \"\"\n", vec![]),
            ("general_settings:\n  master_key:\n", vec![]),
        ] {
            let errs = match load(text, &env) {
                Ok(_) => panic!("{text:?} loaded"),
                Err(e) => e.0,
            };
            assert_eq!(errs[0].key, "general_settings.master_key", "{text:?}");
        }
        let loaded = load_ok(text, &[("MY_MASTER", "sk-from-env")]);
        assert_eq!(
            loaded
                .config
                .general_settings
                .master_key
                .as_ref()
                .map(Secret::expose),
            Some("sk-from-env")
        );
    }

    #[test]
    fn litellm_master_key_from_the_environment() {
        let loaded = load_ok("model_list: []\n", &[("LITELLM_MASTER_KEY", "sk-env")]);
        let gs = &loaded.config.general_settings;
        assert_eq!(gs.master_key.as_ref().map(Secret::expose), Some("sk-env"));
        assert!(gs.master_key_from_env);
        // The config wins when both are set.
        let loaded = load_ok(
            "general_settings:\n  master_key: sk-config\n",
            &[("LITELLM_MASTER_KEY", "sk-env")],
        );
        let gs = &loaded.config.general_settings;
        assert_eq!(
            gs.master_key.as_ref().map(Secret::expose),
            Some("sk-config")
        );
        assert!(!gs.master_key_from_env);
        // Set but empty: refused rather than open.
        let errs = match load("model_list: []\n", &[("LITELLM_MASTER_KEY", " ")]) {
            Ok(_) => panic!("empty LITELLM_MASTER_KEY loaded"),
            Err(e) => e.0,
        };
        assert!(errs[0].reason.contains("LITELLM_MASTER_KEY"), "{errs:?}");
        // A master key that does not look like one is a warning.
        let loaded = load_ok("general_settings:\n  master_key: hunter2\n", &[]);
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("weak master key")),
            "{:?}",
            loaded.warnings
        );
        assert!(!loaded.warnings.iter().any(|w| w.contains("hunter2")));
    }

    #[test]
    fn every_key_acts_or_is_refused() {
        let text = "guardrails: [{guardrail_name: pii}]\n\
                    litellm_settings:\n  callbacks: [otel]\n  force_ipv4: true\n  set_verbose: true\n  drop_parms: true\n\
                    router_settings:\n  provider_budget_config: {openai: {budget_limit: 1}}\n  routing_stratgy: least-busy\n\
                    general_settings:\n  allowed_routes: [/chat/completions]\n  enforce_user_param: false\n\
                    model_list:\n  - model_name: a\n    litellm_params: {model: openai/a, temperature: 0.2, temprature: 1, vertex_project: p}\n";
        let errs = match load(text, &[]) {
            Ok(_) => panic!("refused keys loaded"),
            Err(e) => e.0,
        };
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        // Every refused key in one run; `enforce_user_param: false` asks for nothing.
        assert_eq!(
            keys,
            [
                "litellm_settings.callbacks",
                "router_settings.provider_budget_config",
                "general_settings.allowed_routes",
                "guardrails",
            ]
        );
        assert!(errs
            .iter()
            .all(|e| e.reason.contains("not supported by llmgate yet")));
        let text = text.replace(
            "general_settings:\n",
            "general_settings:\n  allow_unsupported_config: true\n",
        );
        let loaded = load_ok(&text, &[]);
        let w = &loaded.warnings;
        let has =
            |prefix: &str, text: &str| w.iter().any(|w| w.starts_with(prefix) && w.contains(text));
        assert!(
            has("guardrails:", "allow_unsupported_config is true"),
            "{w:?}"
        );
        assert!(
            has(
                "litellm_settings.force_ipv4:",
                "not supported by llmgate yet; ignored"
            ),
            "{w:?}"
        );
        assert!(
            has(
                "litellm_settings.drop_parms:",
                "did you mean `drop_params`?"
            ),
            "{w:?}"
        );
        assert!(
            has(
                "router_settings.routing_stratgy:",
                "did you mean `routing_strategy`?"
            ),
            "{w:?}"
        );
        assert!(
            has(
                "model_list[0].litellm_params.temprature:",
                "did you mean `temperature`?"
            ),
            "{w:?}"
        );
        // Ignored on purpose (documented), request defaults and provider parameters: no warning.
        assert!(!w.iter().any(|w| w.contains("set_verbose")), "{w:?}");
        assert!(!w.iter().any(|w| w.contains(".temperature")), "{w:?}");
        assert!(!w.iter().any(|w| w.contains("vertex_project")), "{w:?}");
        assert_eq!(w.len(), 8, "{w:?}");
    }

    #[test]
    fn include_merges_files_relative_to_the_config() {
        let dir = std::env::temp_dir().join(format!("llmgate-include-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("more")).expect("dir");
        std::fs::write(
            dir.join("more/models.yaml"),
            "model_list:\n  - model_name: b\n    litellm_params: {model: openai/b}\ninclude: [settings.yaml]\n",
        )
        .expect("write");
        // Nested includes are relative to the first file's directory, as in LiteLLM.
        std::fs::write(
            dir.join("settings.yaml"),
            "litellm_settings: {num_retries: 7}\n",
        )
        .expect("write");
        let path = dir.join("config.yaml");
        std::fs::write(
            &path,
            "include: [more/models.yaml]\nmodel_list:\n  - model_name: a\n    litellm_params: {model: openai/a}\n",
        )
        .expect("write");
        let loaded = Config::from_path_with_env(&path, &env_of(&[])).expect("loads");
        let names: Vec<&str> = loaded
            .config
            .model_list
            .iter()
            .map(|m| m.model_name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(loaded.config.litellm_settings.num_retries, Some(7));

        // A missing include is an error naming the file, listed with every other problem.
        std::fs::write(
            &path,
            "include: [nope.yaml]\nrouter_settings: {routing_strategy: fastest}\n",
        )
        .expect("write");
        let errs = Config::from_path_with_env(&path, &env_of(&[])).expect_err("missing include");
        let keys: Vec<&str> = errs.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["include[0]", "router_settings.routing_strategy"]);
        assert!(errs.0[0].reason.contains("nope.yaml"), "{:?}", errs.0[0]);
        // A cycle is an error, not a hang.
        std::fs::write(&path, "include: [config.yaml]\n").expect("write");
        let errs = Config::from_path_with_env(&path, &env_of(&[])).expect_err("cycle");
        assert!(errs.0[0].reason.contains("more than once"), "{:?}", errs.0);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn empty_file_is_an_empty_config() {
        for text in ["", "\n", "# only a comment\n", "---\n"] {
            let loaded = load_ok(text, &[]);
            assert!(loaded.config.model_list.is_empty());
            assert!(loaded.warnings.is_empty());
        }
        let loaded = load_ok("model_list:\nlitellm_settings:\nrouter_settings:\n", &[]);
        assert!(loaded.config.model_list.is_empty());
    }

    #[test]
    fn unknown_keys_warn_with_their_path() {
        let loaded = load_ok(
            "model_list:\n  - model_name: a\n    litellm_params: {model: openai/a, aws_region_name: x}\n    modle_info: {}\n\
             router_settings:\n  foo_bar: 1\n  routing_strategy: simple-shuffle\n\
             litellm_settings:\n  nested_unknown: {a: 1}\n\
             general_settings:\n  master_key: sk-1\n  weird: true\n\
             some_new_section: {}\n",
            &[],
        );
        let w = &loaded.warnings;
        assert!(
            w.iter().any(|w| w.starts_with("router_settings.foo_bar:")),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|w| w.starts_with("litellm_settings.nested_unknown:")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|w| w.starts_with("general_settings.weird:")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|w| w.starts_with("model_list[0].modle_info:")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|w| w.starts_with("some_new_section:")),
            "{w:?}"
        );
        // Provider-specific litellm_params keys are not warned about.
        assert!(!w.iter().any(|w| w.contains("aws_region_name")), "{w:?}");
        assert_eq!(w.len(), 5, "{w:?}");
        assert_eq!(
            loaded.config.model_list[0]
                .litellm_params
                .other
                .get("aws_region_name"),
            Some(&Value::from("x"))
        );
    }

    #[test]
    fn every_bad_entry_is_reported() {
        let errs = load_err(
            "model_list:\n\
             - model_name: a\n  litellm_params: {model: openai/a, timeout: soon}\n\
             - model_name: b\n  litellm_params: {model: openai/b}\n\
             - model_name: c\n  litellm_params: {model: openai/c}\n\
             - model_name: d\n  litellm_params: {model: openai/d, rpm: -5}\n\
             - litellm_params: {model: openai/e}\n\
             - model_name: f\n  litellm_params: {api_base: http://x}\n\
             router_settings:\n  num_retries: many\n\
             general_settings:\n  disable_spend_logs: maybe\n",
        );
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "model_list[0].litellm_params.timeout",
                "model_list[3].litellm_params.rpm",
                "model_list[4].model_name",
                "model_list[5].litellm_params.model",
                "router_settings.num_retries",
                "general_settings.disable_spend_logs",
            ],
            "{errs:?}"
        );
        assert!(errs.iter().all(|e| e.file == "test.yaml"));
        assert_eq!(errs[2].reason, "required key is missing");
        let text = ConfigErrors(errs.clone()).to_string();
        assert_eq!(text.lines().count(), errs.len());
        assert!(
            text.starts_with("test.yaml: model_list[0].litellm_params.timeout: "),
            "{text}"
        );
    }

    #[test]
    fn semantic_errors_keep_the_entry_index_after_a_bad_entry() {
        let errs = load_err(
            "model_list:\n\
             - {model_name: a, litellm_params: {model: x, timeout: abc}}\n\
             - {model_name: b, litellm_params: {model: y, api_base: localhost}, model_info: {id: 7}}\n\
             - {model_name: c, litellm_params: {model: z}, model_info: {id: '7'}}\n",
        );
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "model_list[0].litellm_params.timeout",
                "model_list[1].litellm_params.api_base",
                "model_list[2].model_info.id",
            ]
        );
    }

    #[test]
    fn semantic_errors() {
        let errs = load_err(
            "model_list:\n\
             - model_name: a\n  litellm_params: {model: openai/a, timeout: -1, weight: .nan}\n  model_info: {id: x1}\n\
             - model_name: ''\n  litellm_params: {model: openai/b, api_base: ftp://host}\n  model_info: {id: x1}\n\
             - model_name: c\n  litellm_params: {model: openai/c, stream_timeout: '-0.5'}\n\
             litellm_settings:\n  request_timeout: -3\n  cooldown_time: NaN\n\
             router_settings:\n  model_group_alias: {ok: a, ok2: {model: a, hidden: true}, bad: 3}\n",
        );
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        for k in [
            "model_list[0].litellm_params.timeout",
            "model_list[0].litellm_params.weight",
            "model_list[1].model_name",
            "model_list[1].litellm_params.api_base",
            "model_list[1].model_info.id",
            "model_list[2].litellm_params.stream_timeout",
            "litellm_settings.request_timeout",
            "litellm_settings.cooldown_time",
            "router_settings.model_group_alias.bad",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert_eq!(errs.len(), 9, "{errs:?}");
        let dup = errs
            .iter()
            .find(|e| e.key == "model_list[1].model_info.id")
            .expect("dup");
        assert!(dup.reason.contains("model_list[0]"), "{}", dup.reason);
    }

    #[test]
    fn values_that_switch_a_limit_off_are_refused() {
        let errs = load_err(
            "model_list:\n\
             - model_name: a\n  litellm_params: {model: openai/a, timeout: 0, stream_timeout: 0}\n\
             litellm_settings:\n  request_timeout: 0\n  default_in_memory_ttl: 0\n  budget_duration: 0s\n  cache_params: {ttl: 0}\n\
             router_settings:\n  timeout: 0\n  stream_timeout: 0.0\n\
             general_settings:\n  max_request_size_mb: 0\n  max_response_size_mb: 0\n",
        );
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        for k in [
            "model_list[0].litellm_params.timeout",
            "model_list[0].litellm_params.stream_timeout",
            "litellm_settings.request_timeout",
            "litellm_settings.default_in_memory_ttl",
            "litellm_settings.budget_duration",
            "litellm_settings.cache_params.ttl",
            "router_settings.timeout",
            "router_settings.stream_timeout",
            "general_settings.max_request_size_mb",
            "general_settings.max_response_size_mb",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert!(errs.iter().all(|e| e.reason.contains("0")), "{errs:?}");
        // `0d` is no time either; a real period, a zero budget and zero cooldown are fine.
        let errs = load_err("litellm_settings:\n  budget_duration: 0d\n  request_timeout: 0\n");
        assert!(
            errs.iter()
                .any(|e| e.key == "litellm_settings.budget_duration" && e.reason.contains("`0d`")),
            "{errs:?}"
        );
        let ok = load_ok(
            "litellm_settings:\n  budget_duration: 30d\n  max_budget: 0\n  cooldown_time: 0\n",
            &[],
        );
        assert_eq!(
            ok.config.litellm_settings.budget_duration.as_deref(),
            Some("30d")
        );
    }

    #[test]
    fn invalid_yaml_reports_line() {
        let errs = load_err("model_list:\n  - model_name: a\n    litellm_params: [unclosed\n");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].key, "");
        assert!(errs[0].reason.contains("line"), "{}", errs[0].reason);
        let errs = load_err("model_list:\n  - model_name: a\n bad indent: x\n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].reason.contains("line 3"), "{}", errs[0].reason);
        assert!(errs[0].to_string().starts_with("test.yaml: invalid YAML"));
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        let errs = load_err("- a\n- b\n");
        assert_eq!(errs.len(), 1);
        let errs = load_err("model_list: {a: 1}\nrouter_settings: [1]\n");
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["model_list", "router_settings"]);
    }

    #[test]
    fn unset_env_var_warns_and_is_absent() {
        let loaded = load_ok(
            "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/a\n      api_key: os.environ/MISSING_KEY\n\
             general_settings:\n  master_key: os.environ/MASTER\n",
            &[("MASTER", "sk-master-secret-value")],
        );
        let lp = &loaded.config.model_list[0].litellm_params;
        assert!(lp.api_key.is_none());
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        let w = &loaded.warnings[0];
        assert!(
            w.starts_with("model_list[0].litellm_params.api_key:"),
            "{w}"
        );
        assert!(w.contains("MISSING_KEY"), "{w}");
        let mk = loaded
            .config
            .general_settings
            .master_key
            .as_ref()
            .expect("mk");
        assert_eq!(mk.expose(), "sk-master-secret-value");
        assert!(loaded
            .warnings
            .iter()
            .all(|w| !w.contains("sk-master-secret-value")));
    }

    #[test]
    fn environment_variables_section_takes_precedence() {
        let text = "environment_variables:\n  OPENAI_API_KEY: from-section\n  REDIS_PORT: 6380\n  FLAG: True\n\
                    model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/a\n      api_key: os.environ/OPENAI_API_KEY\n\
                    router_settings:\n  redis_port: os.environ/REDIS_PORT\n  redis_host: os.environ/REDIS_HOST\n  enable_tag_filtering: os.environ/FLAG\n";
        let loaded = load_ok(
            text,
            &[
                ("OPENAI_API_KEY", "from-process"),
                ("REDIS_HOST", "redis.local"),
            ],
        );
        let c = &loaded.config;
        assert_eq!(
            c.model_list[0]
                .litellm_params
                .api_key
                .as_ref()
                .map(Secret::expose),
            Some("from-section")
        );
        assert_eq!(
            c.environment_variables
                .get("REDIS_PORT")
                .map(String::as_str),
            Some("6380")
        );
        assert_eq!(
            c.environment_variables.get("FLAG").map(String::as_str),
            Some("true")
        );
        assert_eq!(c.router_settings.redis_port, Some(6380));
        assert_eq!(c.router_settings.redis_host.as_deref(), Some("redis.local"));
        assert_eq!(c.router_settings.enable_tag_filtering, Some(true));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        // Environment variable values are masked in Debug output too.
        assert!(!format!("{c:?}").contains("from-section"));
    }

    #[test]
    fn invalid_routing_strategy_is_an_error() {
        let errs = load_err("router_settings:\n  routing_strategy: fastest-please\n");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].key, "router_settings.routing_strategy");
        for s in ROUTING_STRATEGIES {
            assert!(errs[0].reason.contains(s), "{}", errs[0].reason);
        }
        for s in ROUTING_STRATEGIES {
            let loaded = load_ok(&format!("router_settings:\n  routing_strategy: {s}\n"), &[]);
            assert_eq!(
                loaded.config.router_settings.routing_strategy.as_deref(),
                Some(*s)
            );
        }
    }

    #[test]
    fn master_key_never_in_debug() {
        let loaded = load_ok(
            "general_settings:\n  master_key: sk-super-secret-master\n  database_url: postgres://u:dbpass@h/db\n  \
             pass_through_endpoints: [{path: /x, headers: {Authorization: bearer-pt-secret}}]\n\
             litellm_settings:\n  cache: true\n  cache_params: {type: redis, password: redis-pw-secret, port: '6379', ssl: true}\n\
             router_settings:\n  redis_password: router-redis-secret\n",
            &[],
        );
        let debug = format!("{:?}", loaded.config);
        for secret in [
            "sk-super-secret-master",
            "dbpass",
            "bearer-pt-secret",
            "redis-pw-secret",
            "router-redis-secret",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        let cp = loaded
            .config
            .litellm_settings
            .cache_params
            .as_ref()
            .expect("cache_params");
        assert_eq!(cp.type_.as_deref(), Some("redis"));
        assert_eq!(cp.port, Some(6379));
        assert_eq!(
            cp.password.as_ref().map(Secret::expose),
            Some("redis-pw-secret")
        );
        assert_eq!(cp.other.get("ssl"), Some(&Value::Bool(true)));
    }

    #[test]
    fn lenient_scalars() {
        let loaded = load_ok(
            "litellm_settings:\n  drop_params: 'True'\n  telemetry: 'false'\n  num_retries: '3'\n  set_verbose: False\n\
             model_list:\n  - model_name: 42\n    litellm_params: {model: openai/a, rpm: '100', timeout: 2.5, tags: [a, b], api_version: 2024-02-01}\n",
            &[],
        );
        let c = &loaded.config;
        assert_eq!(c.litellm_settings.drop_params, Some(true));
        assert_eq!(c.litellm_settings.telemetry, Some(false));
        assert_eq!(c.litellm_settings.set_verbose, Some(false));
        assert_eq!(c.litellm_settings.num_retries, Some(3));
        let lp = &c.model_list[0].litellm_params;
        assert_eq!(lp.rpm, Some(100));
        assert_eq!(lp.timeout, Some(2.5));
        assert_eq!(lp.tags, ["a", "b"]);
        assert_eq!(lp.api_version.as_deref(), Some("2024-02-01"));

        let errs = load_err("litellm_settings:\n  drop_params: perhaps\n");
        assert_eq!(errs[0].key, "litellm_settings.drop_params");
        let errs = load_err("litellm_settings:\n  cache_params: {port: 70000}\n");
        assert_eq!(errs[0].key, "litellm_settings.cache_params.port");
        let errs = load_err("litellm_settings:\n  fallbacks: [{gpt-4: [a, 3]}]\n");
        assert_eq!(
            errs[0].key, "litellm_settings.fallbacks[0].gpt-4[1]",
            "{errs:?}"
        );
    }

    #[test]
    fn drop_params_keys_per_deployment() {
        let loaded = load_ok(
            "model_list:\n  - model_name: a\n    litellm_params:\n      model: anthropic/claude\n      drop_params: true\n      additional_drop_params: [\"logit_bias\", \"tools[*].input_examples\"]\n",
            &[],
        );
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let other = &loaded.config.model_list[0].litellm_params.other;
        assert_eq!(
            other["additional_drop_params"],
            serde_json::json!(["logit_bias", "tools[*].input_examples"])
        );
        assert_eq!(other["drop_params"], Value::Bool(true));
        let errs = load_err(
            "model_list:\n  - model_name: a\n    litellm_params:\n      model: anthropic/claude\n      additional_drop_params: logit_bias\n      drop_params: maybe\n",
        );
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert!(
            keys.contains(&"model_list[0].litellm_params.additional_drop_params"),
            "{keys:?}"
        );
        assert!(
            keys.contains(&"model_list[0].litellm_params.drop_params"),
            "{keys:?}"
        );
    }

    #[test]
    fn resolved_values_are_masked_in_errors() {
        let errs = match load(
            "model_list:\n  - model_name: a\n    litellm_params: {model: openai/a, api_base: os.environ/BASE, rpm: os.environ/RPM}\n",
            &[("BASE", "not-a-url-secretish"), ("RPM", "secret-rpm-value")],
        ) {
            Err(e) => e.0,
            Ok(_) => panic!("expected errors"),
        };
        let text = ConfigErrors(errs).to_string();
        assert!(text.contains("model_list[0].litellm_params.rpm"), "{text}");
        assert!(!text.contains("not-a-url-secretish"), "{text}");
        assert!(!text.contains("secret-rpm-value"), "{text}");
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let deep = format!("a: {}{}\n", "[".repeat(5000), "]".repeat(5000));
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n\
                    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
        let inputs = [
            deep.as_str(),
            bomb,
            "\u{0}\u{1}binary",
            "? [complex, key]\n: value\n",
            "model_list: !custom [ {model_name: !x a, litellm_params: {model: b}} ]\n",
            "model_list:\n  - [a, b]\n  - 3\n  - \n",
            "general_settings: {master_key: [1]}\nrouter_settings: {redis_port: '99999999999'}\n",
            "litellm_settings: {cache_params: [1, 2]}\nenvironment_variables: [a]\n",
            "---\na: 1\n---\nb: 2\n",
            "model_list:\n  - model_name: a\n    litellm_params: {model: b, timeout: .inf, weight: -.inf}\n",
            "router_settings: {model_group_alias: {a: {hidden: true}}}\n",
            "model_list: [{model_name: a, litellm_params: {model: b}, model_info: {id: [1]}}]\n",
            "model_list: [{model_name: a, litellm_params: {model: os.environ/}}]\n",
        ];
        for text in inputs {
            // Any outcome but a panic is fine; errors must carry the origin.
            if let Err(e) = load(text, &[]) {
                assert!(!e.0.is_empty());
                assert!(e.0.iter().all(|e| e.file == "test.yaml"));
            }
        }
        assert_eq!(
            load("model_list:\n  - [a, b]\n", &[])
                .expect_err("list entry")
                .0[0]
                .key,
            "model_list[0]"
        );
        let errs = load_err("model_list:\n  - model_name: a\n    litellm_params: {model: b, timeout: .inf, weight: .nan}\n");
        assert_eq!(errs.len(), 2, "{errs:?}");
        let loaded = load_ok(
            "model_list: !custom [ {model_name: !x a, litellm_params: {model: b}} ]\n",
            &[],
        );
        assert_eq!(loaded.config.model_list[0].model_name, "a");
    }

    #[test]
    fn yaml_merge_keys_and_odd_keys() {
        let loaded = load_ok(
            "base: &base {model: openai/a, api_base: 'http://h'}\n\
             model_list:\n  - model_name: a\n    litellm_params:\n      <<: *base\n      rpm: 5\n\
             router_settings:\n  retry_policy: {AuthenticationErrorRetries: 0}\n  model_group_alias: {1: a}\n",
            &[],
        );
        let lp = &loaded.config.model_list[0].litellm_params;
        assert_eq!(lp.model, "openai/a");
        assert_eq!(lp.rpm, Some(5));
        assert!(loaded.warnings.iter().any(|w| w.starts_with("base:")));
        let alias = loaded
            .config
            .router_settings
            .model_group_alias
            .as_ref()
            .expect("alias");
        assert!(alias.contains_key("1"));
    }
}
