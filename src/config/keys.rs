//! The inventory of LiteLLM's config keys: what llmgate does with each.
//!
//! Every key LiteLLM's proxy config accepts (its config reference and `proxy_server_config.yaml`)
//! is listed here with one [`Support`] status. The loader checks every key a config holds against
//! this table:
//!
//! - [`Support::Implemented`]: acts as documented in `docs/configuration.md`;
//! - [`Support::Ignored`]: accepted on purpose, because it has no meaning in llmgate (the reason
//!   is in the table and in the docs);
//! - [`Support::Pending`]: not implemented yet, and running without it is no less safe and costs
//!   no money: a start-up warning says it is ignored;
//! - [`Support::Refused`]: not implemented yet, and it would change security, privacy or money
//!   (guardrails, audit callbacks, route restrictions, budgets): start-up and `--check` fail with
//!   a message naming it, unless `general_settings.allow_unsupported_config: true` accepts the
//!   risk (then a warning).
//!
//! A key in no table is unknown: a warning names it and the nearest known key (a misspelling).
//! Keys of `litellm_params` that are OpenAI request parameters (`temperature`, `max_tokens`, …)
//! are default request parameters of the deployment (see `provider::params`).

/// What llmgate does with one config key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Acts as documented.
    Implemented,
    /// Accepted and ignored on purpose: it has no meaning here. The reason says why.
    Ignored(&'static str),
    /// Not implemented yet; ignoring it is harmless (a warning).
    Pending,
    /// Not implemented yet, and running without it would be less safe, less private or more
    /// expensive than the config says: refused. The text says what it would have done.
    Refused(&'static str),
}

/// One key of a section.
#[derive(Clone, Copy, Debug)]
pub struct KeySpec {
    /// The key as written in `config.yaml`.
    pub name: &'static str,
    /// What llmgate does with it.
    pub support: Support,
}

const fn key(name: &'static str, support: Support) -> KeySpec {
    KeySpec { name, support }
}

use Support::{Ignored, Implemented, Pending, Refused};

const NO_UI: &str = "llmgate has no admin UI";
const RUST_LOG: &str = "logging is set with RUST_LOG";
const NO_PYTHON: &str = "Python-only: llmgate loads no Python code";
const SDK_ONLY: &str = "a LiteLLM SDK (Router object) setting with no proxy meaning";
const NO_PRISMA: &str = "llmgate runs its own embedded migrations, not Prisma";
const CALLBACKS: &str = "logging and audit callbacks (Langfuse, OpenTelemetry, Datadog, S3, …): running without them would silently drop the audit trail the config asks for";

/// The top-level sections.
pub const TOP_LEVEL: &[KeySpec] = &[
    key("model_list", Implemented),
    key("litellm_settings", Implemented),
    key("router_settings", Implemented),
    key("general_settings", Implemented),
    key("environment_variables", Implemented),
    key("include", Implemented),
    key(
        "guardrails",
        Refused("guardrails (PII masking, prompt-injection and content checks)"),
    ),
    key(
        "mcp_servers",
        Refused("MCP servers and the tool access rules that come with them"),
    ),
    key(
        "mcp_tools",
        Refused("MCP tools and the tool access rules that come with them"),
    ),
    key("callback_settings", Refused(CALLBACKS)),
    key("credential_list", Pending),
    key("finetune_settings", Pending),
    key("files_settings", Pending),
    key("assistant_settings", Pending),
    key("vector_store_registry", Pending),
    key("search_tools", Pending),
    key("prompts", Pending),
    key("agent_list", Pending),
    key("default_vertex_config", Pending),
];

/// `litellm_settings`. LiteLLM sets any key here as a module attribute; these are the ones its
/// proxy documents or its sample configs use.
pub const LITELLM_SETTINGS: &[KeySpec] = &[
    key("drop_params", Implemented),
    key("num_retries", Implemented),
    key("request_timeout", Implemented),
    key("fallbacks", Implemented),
    key("context_window_fallbacks", Implemented),
    key("content_policy_fallbacks", Implemented),
    key("default_fallbacks", Implemented),
    key("allowed_fails", Implemented),
    key("cooldown_time", Implemented),
    key("max_fallbacks", Implemented),
    key("cache", Implemented),
    key("cache_params", Implemented),
    key("default_in_memory_ttl", Implemented),
    key("max_budget", Implemented),
    key("budget_duration", Implemented),
    key("budget_exceeded_status_code", Implemented),
    key("json_logs", Implemented),
    // Implemented for the names in `config::KNOWN_CALLBACKS`; any other name is refused
    // when the config loads (`config::CallbackSettings::from_config`).
    key("success_callback", Implemented),
    key("failure_callback", Implemented),
    key("callbacks", Implemented),
    key("require_auth_for_metrics_endpoint", Implemented),
    key("service_callbacks", Refused(CALLBACKS)),
    key(
        "guardrails",
        Refused("guardrails (PII masking, prompt-injection and content checks)"),
    ),
    key(
        "default_team_settings",
        Refused("per-team provider credentials and callbacks"),
    ),
    key(
        "key_generation_settings",
        Refused("restrictions on who may generate keys"),
    ),
    key(
        "default_key_generate_params",
        Refused("defaults (models, budgets) for every generated key"),
    ),
    key(
        "upperbound_key_generate_params",
        Refused("upper bounds on the budgets and limits of generated keys"),
    ),
    key(
        "default_internal_user_params",
        Refused("defaults (models, budgets) for new internal users"),
    ),
    key(
        "max_internal_user_budget",
        Refused("a budget for every internal user"),
    ),
    key(
        "internal_user_budget_duration",
        Refused("the reset period of internal users' budgets"),
    ),
    key(
        "max_end_user_budget",
        Refused("a budget for every end user"),
    ),
    key(
        "redact_messages_in_exceptions",
        Refused("keeping message content out of error messages"),
    ),
    key("turn_off_message_logging", Implemented),
    key(
        "redact_user_api_key_info",
        Ignored("llmgate never logs keys; logs name a key by its alias only"),
    ),
    key("set_verbose", Ignored(RUST_LOG)),
    key("telemetry", Ignored("llmgate sends no telemetry")),
    key(
        "enable_preview_features",
        Ignored("llmgate has no preview switches"),
    ),
    key(
        "disable_copilot_system_to_assistant",
        Ignored("llmgate has no GitHub Copilot provider"),
    ),
    key(
        "disable_hf_tokenizer_download",
        Ignored("llmgate downloads no tokenizers"),
    ),
    key(
        "disable_add_transform_inline_image_block",
        Ignored("llmgate has no Fireworks AI image rewriting"),
    ),
    key("modify_params", Pending),
    key("return_response_headers", Pending),
    key("force_ipv4", Pending),
    key("ssl_verify", Implemented),
    key("ssl_certificate", Implemented),
    key("langfuse_default_tags", Pending),
    key("mcp_aliases", Pending),
    key("disable_end_user_cost_tracking", Pending),
    key("disable_end_user_cost_tracking_prometheus_only", Pending),
    key("enable_json_schema_validation", Pending),
    key("public_model_groups", Pending),
    key("public_model_groups_links", Pending),
    key("cache_control", Pending),
];

/// `router_settings`.
pub const ROUTER_SETTINGS: &[KeySpec] = &[
    key("routing_strategy", Implemented),
    key("routing_strategy_args", Implemented),
    key("num_retries", Implemented),
    key("timeout", Implemented),
    key("stream_timeout", Implemented),
    key("stream_max_duration", Implemented),
    key("retry_after", Implemented),
    key("retry_policy", Implemented),
    key("allowed_fails", Implemented),
    key("allowed_fails_policy", Implemented),
    key("cooldown_time", Implemented),
    key("disable_cooldowns", Implemented),
    key("fallbacks", Implemented),
    key("context_window_fallbacks", Implemented),
    key("content_policy_fallbacks", Implemented),
    key("default_fallbacks", Implemented),
    key("max_fallbacks", Implemented),
    key("enable_pre_call_checks", Implemented),
    key("model_group_alias", Implemented),
    key("redis_host", Implemented),
    key("redis_port", Implemented),
    key("redis_password", Implemented),
    key("redis_url", Implemented),
    key("default_max_parallel_requests", Implemented),
    key("enable_tag_filtering", Implemented),
    key("tag_filtering_match_any", Implemented),
    key(
        "provider_budget_config",
        Refused("spending limits per provider"),
    ),
    key(
        "optional_pre_call_checks",
        Refused("pre-call checks such as per-provider and per-deployment budget limits"),
    ),
    key("set_verbose", Ignored(RUST_LOG)),
    key("debug_level", Ignored(RUST_LOG)),
    key("alerting_config", Ignored(SDK_ONLY)),
    key("assistants_config", Ignored(SDK_ONLY)),
    key("router_general_settings", Ignored(SDK_ONLY)),
    key("model_group_retry_policy", Ignored(SDK_ONLY)),
    key(
        "client_ttl",
        Ignored("llmgate's upstream clients are pooled connections, not cached client objects"),
    ),
    key("cache_responses", Pending),
    key("cache_kwargs", Pending),
    key("caching_groups", Pending),
    key("default_priority", Pending),
    key("polling_interval", Pending),
    key("default_litellm_params", Pending),
    key("ignore_invalid_deployments", Pending),
    key("search_tools", Pending),
];

/// `general_settings`.
pub const GENERAL_SETTINGS: &[KeySpec] = &[
    key("master_key", Implemented),
    key("database_url", Implemented),
    key("database_connection_pool_limit", Implemented),
    key("database_schema", Implemented),
    key("max_request_size_mb", Implemented),
    key("request_header_timeout", Implemented),
    key("request_body_timeout", Implemented),
    key("disable_spend_logs", Implemented),
    key("proxy_batch_write_at", Implemented),
    key("dangerously_allow_mock_testing_request_params", Implemented),
    key("allow_unsupported_config", Implemented),
    key("block_unpriced_models_for_budgeted_keys", Implemented),
    key("litellm_exception_prefix", Implemented),
    key("store_model_in_db", Implemented),
    key(
        "supported_db_objects",
        Refused("which objects (models, MCP servers, guardrails) come from the database"),
    ),
    key("background_health_checks", Implemented),
    key("health_check_cooldown", Implemented),
    key("health_check_timeout", Implemented),
    key("model_poll_interval", Implemented),
    key(
        "enforce_user_param",
        Refused("requiring the `user` field on every request"),
    ),
    key(
        "allowed_routes",
        Refused("restricting the routes a key may call"),
    ),
    key("admin_only_routes", Refused("routes only admins may call")),
    key("public_routes", Refused("routes open without a key")),
    key("allowed_ips", Refused("an IP allow-list")),
    key("custom_auth", Refused("a custom authentication function")),
    key(
        "custom_auth_settings",
        Refused("a custom authentication function"),
    ),
    key(
        "enable_jwt_auth",
        Refused("JWT authentication and its role rules"),
    ),
    key(
        "litellm_jwtauth",
        Refused("JWT authentication and its role rules"),
    ),
    key("enable_oauth2_auth", Refused("OAuth2 authentication")),
    key(
        "enable_oauth2_proxy_auth",
        Refused("OAuth2 proxy authentication"),
    ),
    key("oauth2_config_mappings", Refused("OAuth2 authentication")),
    key(
        "allow_requests_on_db_unavailable",
        Refused("admitting unverified keys while the database is down"),
    ),
    key(
        "enforced_params",
        Refused("parameters every request must carry"),
    ),
    key(
        "reject_clientside_metadata_tags",
        Refused("refusing client-set tags that budgets are keyed on"),
    ),
    key(
        "global_max_parallel_requests",
        Refused("a limit on parallel requests for the whole proxy"),
    ),
    key(
        "max_parallel_requests",
        Refused("a limit on parallel requests per deployment"),
    ),
    key(
        "disable_reset_budget",
        Refused("keeping budgets from resetting"),
    ),
    key(
        "custom_key_generate",
        Refused("a custom key-generation check"),
    ),
    key("custom_sso", Refused("single sign-on")),
    key("role_permissions", Refused("per-role route permissions")),
    key(
        "default_team_disabled",
        Refused("forbidding keys without a team"),
    ),
    key(
        "service_account_settings",
        Refused("rules for service-account keys"),
    ),
    key(
        "key_management_system",
        Refused("keys and secrets in a key-management service"),
    ),
    key(
        "key_management_settings",
        Refused("keys and secrets in a key-management service"),
    ),
    key(
        "use_azure_key_vault",
        Refused("secrets from Azure Key Vault"),
    ),
    key("use_google_kms", Refused("secrets from Google KMS")),
    key(
        "maximum_spend_logs_retention_period",
        Refused("deleting spend logs after a retention period"),
    ),
    key(
        "maximum_spend_logs_retention_interval",
        Refused("deleting spend logs after a retention period"),
    ),
    key(
        "disable_master_key_return",
        Ignored("llmgate never returns the master key"),
    ),
    key(
        "disable_adding_master_key_hash_to_db",
        Ignored("llmgate keeps no master-key row in the database"),
    ),
    key(
        "proxy_budget_rescheduler_min_time",
        Ignored("budgets reset when their period ends, checked on each call"),
    ),
    key(
        "proxy_budget_rescheduler_max_time",
        Ignored("budgets reset when their period ends, checked on each call"),
    ),
    key(
        "proxy_batch_polling_interval",
        Ignored("llmgate has no batches API"),
    ),
    key("ui_access_mode", Ignored(NO_UI)),
    key("ui_username", Ignored(NO_UI)),
    key("ui_password", Ignored(NO_UI)),
    key("disable_prisma_schema_update", Ignored(NO_PRISMA)),
    key(
        "litellm_license",
        Ignored("llmgate has no licensed features"),
    ),
    key("allow_user_auth", Ignored("deprecated in LiteLLM")),
    key("custom_tokenizer", Ignored(NO_PYTHON)),
    key("database_connection_timeout", Pending),
    key("allow_public_health_readiness_details", Pending),
    key("health_check_interval", Implemented),
    key("health_check_details", Pending),
    key("alerting", Pending),
    key("alerting_threshold", Pending),
    key("alerting_args", Pending),
    key("alert_types", Pending),
    key("alert_to_webhook_url", Pending),
    key("spend_report_frequency", Pending),
    key("max_response_size_mb", Pending),
    key("pass_through_endpoints", Pending),
    key("use_client_credentials_pass_through_routes", Pending),
    key("allow_client_side_credentials", Pending),
    key("forward_client_headers_to_llm_api", Pending),
    key("forward_openai_org_id", Pending),
    key("store_prompts_in_spend_logs", Pending),
    key("disable_spend_updates", Pending),
    key("disable_retry_on_max_parallel_request_limit_error", Pending),
    key("disable_responses_id_security", Pending),
    key("completion_model", Pending),
    key("embedding_model", Pending),
    key("image_generation_model", Pending),
    key("moderation_model", Implemented),
    key("infer_model_from_keys", Pending),
    key("use_redis_transaction_buffer", Pending),
    key("user_api_key_cache_ttl", Pending),
    key("user_header_name", Pending),
    key("use_x_forwarded_for", Pending),
    key("litellm_key_header_name", Pending),
    key("mcp_client_side_auth_header_name", Pending),
];

/// `model_list[].litellm_params` keys llmgate types or reads, beyond the OpenAI request
/// parameters (which are the deployment's default request parameters).
pub const LITELLM_PARAMS: &[KeySpec] = &[
    key("model", Implemented),
    key("api_base", Implemented),
    key("api_key", Implemented),
    key("api_version", Implemented),
    key("timeout", Implemented),
    key("stream_timeout", Implemented),
    key("max_retries", Implemented),
    key("rpm", Implemented),
    key("tpm", Implemented),
    key("weight", Implemented),
    key("order", Implemented),
    key("max_parallel_requests", Implemented),
    key("tags", Implemented),
    key("input_cost_per_token", Implemented),
    key("output_cost_per_token", Implemented),
    key("cache_read_input_token_cost", Implemented),
    key("output_cost_per_reasoning_token", Implemented),
    key("input_cost_per_image", Implemented),
    key("output_cost_per_image", Implemented),
    key("input_cost_per_pixel", Implemented),
    key("input_cost_per_character", Implemented),
    key("input_cost_per_query", Implemented),
    key("drop_params", Implemented),
    key("additional_drop_params", Implemented),
    key("extra_headers", Implemented),
    key("mock_response", Implemented),
    key("mock_timeout", Pending),
    key("custom_llm_provider", Implemented),
    key("vertex_project", Implemented),
    key("vertex_location", Implemented),
    key("vertex_region", Implemented),
    key("vertex_credentials", Implemented),
    key("aws_access_key_id", Implemented),
    key("aws_secret_access_key", Implemented),
    key("aws_session_token", Implemented),
    key("aws_region_name", Implemented),
    key("aws_bedrock_runtime_endpoint", Implemented),
    key("azure_ad_token", Implemented),
    key("guardrailConfig", Implemented),
    key("dimensions", Implemented),
    key("encoding_format", Implemented),
    key("ssl_verify", Implemented),
    key("ssl_certificate", Implemented),
    key(
        "input_cost_per_second",
        Refused("pricing by the second (the call would be logged at the token price or $0)"),
    ),
    key(
        "output_cost_per_second",
        Refused("pricing by the second (the call would be logged at the token price or $0)"),
    ),
    key("max_budget", Refused("a budget for this deployment")),
    key("budget_duration", Refused("a budget for this deployment")),
    key(
        "configurable_clientside_auth_params",
        Refused("letting clients send their own provider credentials"),
    ),
    key(
        "litellm_credential_name",
        Refused("the deployment's credential from `credential_list`"),
    ),
    key("region_name", Implemented),
    key("organization", Pending),
    key("aws_profile_name", Pending),
    key("aws_role_name", Pending),
    key("aws_session_name", Pending),
    key("aws_web_identity_token", Pending),
    key("aws_sts_endpoint", Pending),
    key("watsonx_region_name", Pending),
    key("num_retries", Pending),
    key("max_file_size_mb", Pending),
    key("use_in_pass_through", Implemented),
    key("use_litellm_proxy", Pending),
    key("merge_reasoning_content_in_choices", Pending),
    key(
        "litellm_trace_id",
        Ignored("call ids come from x-litellm-call-id"),
    ),
    key(
        "model_info",
        Ignored("model_info is read from the entry, not from litellm_params"),
    ),
    key("auto_router_config_path", Pending),
    key("auto_router_config", Pending),
    key("auto_router_default_model", Pending),
    key("auto_router_embedding_model", Pending),
];

/// `litellm_settings.callbacks` values llmgate implements. A list of only these asks for nothing
/// refused; a list with any other value is refused as before.
pub const IMPLEMENTED_CALLBACKS: &[&str] = &[
    // The call-record consumers (`config::KNOWN_CALLBACKS`).
    "prometheus",
    "langfuse",
    "generic_api",
    "jsonl",
    // OpenTelemetry traces over OTLP (`telemetry`; LiteLLM's `OTEL_*` variables).
    #[cfg(feature = "otel")]
    "otel",
];

/// The values of the list-valued key `section.name` that llmgate implements (see
/// [`IMPLEMENTED_CALLBACKS`]); empty for every other key.
#[must_use]
pub fn implemented_values(section: &str, name: &str) -> &'static [&'static str] {
    match (section, name) {
        ("litellm_settings", "callbacks") => IMPLEMENTED_CALLBACKS,
        _ => &[],
    }
}

/// The spec of `name` in `table`.
#[must_use]
pub fn find(table: &[KeySpec], name: &str) -> Option<Support> {
    table.iter().find(|k| k.name == name).map(|k| k.support)
}

/// The known key of `table` (and `extra`) nearest to the misspelt `name`, when one is close enough
/// to be a likely misspelling.
#[must_use]
pub fn nearest<'a>(name: &str, table: &'a [KeySpec], extra: &'a [&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    table
        .iter()
        .map(|k| k.name)
        .chain(extra.iter().copied())
        .map(|k| {
            (
                k,
                strsim::damerau_levenshtein(&lower, &k.to_ascii_lowercase()),
            )
        })
        .filter(|(k, d)| *d <= (k.len().max(lower.len()) / 3).max(1))
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_listed_twice() {
        for (section, table) in [
            ("top level", TOP_LEVEL),
            ("litellm_settings", LITELLM_SETTINGS),
            ("router_settings", ROUTER_SETTINGS),
            ("general_settings", GENERAL_SETTINGS),
            ("litellm_params", LITELLM_PARAMS),
        ] {
            let mut seen = std::collections::HashSet::new();
            for k in table {
                assert!(seen.insert(k.name), "{section}: {} listed twice", k.name);
            }
        }
    }

    #[test]
    fn misspellings_find_their_key() {
        assert_eq!(
            nearest("master_kye", GENERAL_SETTINGS, &[]),
            Some("master_key")
        );
        assert_eq!(
            nearest("routing_stratgy", ROUTER_SETTINGS, &[]),
            Some("routing_strategy")
        );
        assert_eq!(
            nearest("temprature", LITELLM_PARAMS, &["temperature"]),
            Some("temperature")
        );
        assert_eq!(nearest("zzzzzzzzzzzz", GENERAL_SETTINGS, &[]), None);
    }

    /// docs/configuration.md lists every key with its status: the table and the docs agree.
    #[test]
    fn every_key_is_documented() {
        let doc = include_str!("../../docs/configuration.md");
        let mut missing = Vec::new();
        for (section, table) in [
            ("top level", TOP_LEVEL),
            ("litellm_settings", LITELLM_SETTINGS),
            ("router_settings", ROUTER_SETTINGS),
            ("general_settings", GENERAL_SETTINGS),
            ("litellm_params", LITELLM_PARAMS),
        ] {
            for k in table {
                if !doc.contains(&format!("`{}`", k.name)) {
                    missing.push(format!("{section}.{}", k.name));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "not in docs/configuration.md: {missing:?}"
        );
    }
}
