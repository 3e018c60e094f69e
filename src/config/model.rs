//! The config's typed sections (`model_list`, `litellm_settings`, `router_settings`,
//! `general_settings`, …). Their `Debug` is in `redact.rs`, their lenient field deserializers in
//! `lenient.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{lenient, Fallbacks};
use crate::secret::Secret;

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
    /// Require a key (master or virtual) on `GET /metrics`.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub require_auth_for_metrics_endpoint: Option<bool>,
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
    /// One of [`ROUTING_STRATEGIES`](super::ROUTING_STRATEGIES).
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
    /// Which tables the database holds: `auto` (default), `llmgate` or `litellm` (LiteLLM's own
    /// PostgreSQL schema); see `store::SchemaChoice`.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub database_schema: Option<String>,
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
    /// A failed background probe cools the deployment down until the next probe (llmgate).
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub health_check_cooldown: Option<bool>,
    /// Seconds a health probe may take (llmgate; default 60, LiteLLM's constant).
    #[serde(deserialize_with = "lenient::opt_num")]
    pub health_check_timeout: Option<f64>,
    /// Seconds between reads of the models kept in the database (llmgate; default 5).
    #[serde(deserialize_with = "lenient::opt_num")]
    pub model_poll_interval: Option<f64>,
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
    /// The model group every `/v1/moderations` call goes to (LiteLLM's server default).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub moderation_model: Option<String>,
    /// llmgate: write LiteLLM's `litellm.<Class>: ` prefix into the message of the errors the
    /// model call raised (docs/endpoints.md).
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub litellm_exception_prefix: Option<bool>,
}
