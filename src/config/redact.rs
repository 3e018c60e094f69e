//! `Debug` for the config types without their secrets: free-form values print their structure
//! with every string as `*****`.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::model::{CacheParams, Config, GeneralSettings, LitellmParams, LitellmSettings};

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
    require_auth_for_metrics_endpoint, redact_user_api_key_info, max_budget, budget_duration, budget_exceeded_status_code,
    enable_preview_features,
    return_response_headers, ssl_verify, ssl_certificate,
} redact { default_team_settings });

redacting_debug!(CacheParams {
    type_, host, port, password, url, ttl, namespace, supported_call_types,
} redact { other });

redacting_debug!(GeneralSettings {
    master_key, master_key_from_env, allow_unsupported_config, database_url, store_model_in_db, proxy_budget_rescheduler_min_time,
    proxy_budget_rescheduler_max_time, proxy_batch_write_at, database_connection_pool_limit, database_schema,
    database_connection_timeout, dangerously_allow_mock_testing_request_params,
    allow_public_health_readiness_details, background_health_checks, health_check_interval,
    health_check_cooldown, health_check_timeout, model_poll_interval,
    alerting, max_request_size_mb, max_response_size_mb, request_header_timeout,
    request_body_timeout, disable_spend_logs, allowed_routes,
    admin_only_routes, enforce_user_param, custom_auth, use_redis_transaction_buffer,
    alerting_threshold, infer_model_from_keys, disable_master_key_return,
    maximum_spend_logs_retention_period, user_header_name,
    block_unpriced_models_for_budgeted_keys, moderation_model, litellm_exception_prefix,
} redact { pass_through_endpoints });
