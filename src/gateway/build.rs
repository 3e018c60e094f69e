//! The translation of a LiteLLM [`Config`] onto a [`GatewayBuilder`]: every setting the config
//! can express becomes a typed builder call. Values were validated when the config loaded (see
//! [`config`](crate::config)); what cannot be used here is a warning, as before the builder.

use std::time::Duration;

use super::GatewayBuilder;
use crate::{
    cache::CacheLayer,
    config::{Config, ModelEntry},
    fallback::FallbackLayer,
    health::{CooldownPolicy, PolicyClass},
    provider::{stable_id, Deployment, DEFAULT_TIMEOUT},
    retry::{self, RetryLayer},
    router::Strategy,
    server::DEFAULT_MAX_BODY_BYTES,
};

impl GatewayBuilder {
    /// A builder with every setting of `config` (deployments, router, retries, fallbacks,
    /// timeouts, cache, master key, edge limits, budgets' settings) and its findings as warnings.
    /// What the config cannot say (custom providers, a started
    /// [`Governance`](crate::governance::Governance), a price table) is added with the other
    /// setters.
    pub fn from_config(config: &Config) -> Self {
        let mut warnings = Vec::new();
        let ls = &config.litellm_settings;
        let rs = &config.router_settings;
        let cache = cache_layer(config, &mut warnings);
        let cooldown = cooldown_policy(config, &mut warnings);
        let mut b = Self::default()
            .deployments(config.model_list.iter().map(deployment_from_entry))
            .strategy(strategy(config))
            .pre_call_checks(rs.enable_pre_call_checks.unwrap_or(false))
            .tag_filtering(
                rs.enable_tag_filtering.unwrap_or(false),
                rs.tag_filtering_match_any.unwrap_or(false),
            )
            .default_max_parallel_requests(rs.default_max_parallel_requests)
            .cooldown(cooldown)
            .retry(retry_layer(config))
            .fallback(fallback_layer(config))
            .timeout(
                ls.request_timeout
                    .or(rs.timeout)
                    .filter(|t| t.is_finite() && *t > 0.0)
                    .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64),
            )
            .stream_timeout(
                rs.stream_timeout
                    .filter(|t| t.is_finite() && *t > 0.0)
                    .map(Duration::from_secs_f64),
            )
            .stream_max_duration(
                rs.stream_max_duration
                    .filter(|t| t.is_finite() && *t > 0.0 && *t < 1e9)
                    .map(Duration::from_secs_f64),
            )
            .cache(cache)
            .master_key(config.general_settings.master_key.clone())
            .block_unpriced_models_for_budgeted_keys(
                config
                    .general_settings
                    .block_unpriced_models_for_budgeted_keys
                    == Some(true),
            )
            .max_budget(ls.max_budget)
            .max_body_bytes(max_body_bytes(config))
            .edge_settings(
                crate::server::EdgeSettings::default()
                    .moderation_model(config.general_settings.moderation_model.as_deref())
                    .litellm_exception_prefix(
                        config.general_settings.litellm_exception_prefix == Some(true),
                    ),
            )
            .body_read_timeout(crate::config::body_read_timeout(config));
        if let Some(drop) = ls.drop_params {
            b = b.drop_params(drop);
        }
        if let Some(status) = ls
            .budget_exceeded_status_code
            .and_then(|c| http::StatusCode::from_u16(c).ok())
            .filter(|s| s.is_client_error() || s.is_server_error())
        {
            b = b.budget_exceeded_status(status);
        }
        for (alias, target) in rs.model_group_alias.iter().flatten() {
            let (group, hidden) = match target {
                serde_json::Value::String(g) => (g.clone(), false),
                serde_json::Value::Object(o) => match o.get("model").and_then(|m| m.as_str()) {
                    Some(g) => (
                        g.to_owned(),
                        o.get("hidden")
                            .and_then(serde_json::Value::as_bool)
                            .unwrap_or(false),
                    ),
                    None => {
                        warnings.push(format!(
                            "router_settings.model_group_alias.{alias}: needs `model`; ignored"
                        ));
                        continue;
                    }
                },
                _ => {
                    warnings.push(format!(
                        "router_settings.model_group_alias.{alias}: expected a model group name; ignored"
                    ));
                    continue;
                }
            };
            b = b.alias(alias.clone(), group, hidden);
        }
        if let Some(url) = crate::config::redis_router_url(config) {
            b = b.router_redis(url);
        }
        #[cfg(feature = "otel")]
        if crate::telemetry::wanted(config) {
            match crate::telemetry::global() {
                Some(otel) => b = b.otel(otel.clone()),
                None => warnings.push(crate::telemetry::NO_TRACER_WARNING.to_owned()),
            }
        }
        // Callbacks (`callbacks`, `success_callback`, `failure_callback`): refused names and
        // missing variables already failed the config's load.
        let lookup = |name: &str| {
            config
                .environment_variables
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        };
        match crate::config::CallbackSettings::from_config(config, &lookup) {
            // Its warnings (names accepted under `allow_unsupported_config`) were reported
            // when the config loaded.
            Ok(settings) => match settings.start() {
                Ok(cb) => b = b.callbacks(cb),
                Err(e) => warnings.push(format!("litellm_settings.callbacks: {e}")),
            },
            Err(errs) => warnings.extend(errs.into_iter().map(|(k, e)| format!("{k}: {e}"))),
        }
        b = health_checks(b, config);
        b.warnings_mut().extend(warnings);
        b
    }
}

/// `general_settings.background_health_checks`, `health_check_interval`,
/// `health_check_timeout`, `health_check_cooldown`.
fn health_checks(mut b: GatewayBuilder, config: &Config) -> GatewayBuilder {
    let gs = &config.general_settings;
    if gs.background_health_checks == Some(true) {
        let every = gs
            .health_check_interval
            .filter(|s| *s > 0)
            .map_or(crate::probe::DEFAULT_INTERVAL, Duration::from_secs);
        b = b.background_health_checks(Some(every));
    }
    if let Some(t) = gs
        .health_check_timeout
        .filter(|t| t.is_finite() && *t > 0.0 && *t < 1e6)
    {
        b = b.health_check_timeout(Duration::from_secs_f64(t));
    }
    b.health_check_cooldown(gs.health_check_cooldown == Some(true))
}

/// Seconds between reads of the database's models (`general_settings.model_poll_interval`,
/// default 5).
pub(super) fn model_poll_interval(config: &Config) -> Duration {
    config
        .general_settings
        .model_poll_interval
        .filter(|t| t.is_finite() && *t > 0.0 && *t < 1e6)
        .map_or(Duration::from_secs(5), Duration::from_secs_f64)
}

/// `router_settings.routing_strategy` and `routing_strategy_args.lowest_latency_buffer`.
fn strategy(config: &Config) -> Strategy {
    let rs = &config.router_settings;
    let mut strategy = rs
        .routing_strategy
        .as_deref()
        .and_then(|s| s.parse::<Strategy>().ok())
        .unwrap_or_default();
    if let Strategy::LatencyBased { buffer } = &mut strategy {
        *buffer = rs
            .routing_strategy_args
            .as_ref()
            .and_then(|a| a.get("lowest_latency_buffer"))
            .and_then(serde_json::Value::as_f64)
            .filter(|b| b.is_finite() && *b >= 0.0)
            .unwrap_or(0.0);
    }
    strategy
}

// ---------------------------------------------------------------------------------------------
// Cache (`litellm_settings.cache`, `cache_params`, `default_in_memory_ttl`)
// ---------------------------------------------------------------------------------------------

/// The response cache, when `litellm_settings.cache` is true.
///
/// `cache_params.type`: `local` (moka, in memory) or `redis`; without a type, Redis when any
/// Redis address is known (`cache_params.url` / `host`, `router_settings.redis_*`, or the
/// `REDIS_URL` / `REDIS_HOST` environment variables, as LiteLLM reads them), else `local`.
/// `ttl` (else `default_in_memory_ttl` for `local`, else 600 s), `namespace` and
/// `supported_call_types` as in LiteLLM; llmgate's own keys: `scope: tenant | shared`
/// (default `tenant`), `max_memory_bytes` (default 64 MiB), `max_size_per_item` (KiB, default
/// 1024), `timeout` (Redis operation timeout in seconds, default 0.25). Values are validated when
/// the config loads (see `config`), so what fails here is only reported.
fn cache_layer(config: &Config, warnings: &mut Vec<String>) -> Option<CacheLayer> {
    use crate::cache::{CacheBackend, MemoryStore, DEFAULT_MEMORY_BYTES, DEFAULT_TTL};
    let ls = &config.litellm_settings;
    if ls.cache != Some(true) {
        return None;
    }
    let default = crate::config::CacheParams::default();
    let p = ls.cache_params.as_ref().unwrap_or(&default);
    let other_num = |key: &str| p.other.get(key).and_then(serde_json::Value::as_f64);
    let secs = |s: Option<f64>| {
        s.filter(|t| t.is_finite() && *t >= 0.0)
            .map(Duration::from_secs_f64)
    };
    let rs = &config.router_settings;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let url = p
        .url
        .as_ref()
        .map(|s| s.expose().to_owned())
        .or_else(|| {
            p.host
                .is_none()
                .then(|| rs.redis_url.as_ref().map(|s| s.expose().to_owned()))
                .flatten()
        })
        .or_else(|| {
            (p.host.is_none() && rs.redis_host.is_none())
                .then(|| env("REDIS_URL"))
                .flatten()
        });
    let host = p
        .host
        .clone()
        .or_else(|| rs.redis_host.clone())
        .or_else(|| env("REDIS_HOST"));
    let kind = match p.type_.as_deref() {
        Some(t) => t,
        None if url.is_some() || host.is_some() => "redis",
        None => "local",
    };
    let mut ttl = secs(p.ttl);
    let backend: CacheBackend = match kind {
        "local" => {
            ttl = ttl.or_else(|| secs(ls.default_in_memory_ttl));
            let bytes = other_num("max_memory_bytes")
                .filter(|b| *b >= 1.0)
                .map_or(DEFAULT_MEMORY_BYTES, |b| b as u64);
            MemoryStore::new(bytes).into()
        }
        #[cfg(feature = "redis")]
        "redis" => {
            use crate::cache::{RedisStore, DEFAULT_REDIS_TIMEOUT};
            let store = if let Some(url) = url {
                RedisStore::open(&url)
            } else {
                let port = p
                    .port
                    .or(rs.redis_port)
                    .or_else(|| env("REDIS_PORT").and_then(|s| s.parse().ok()))
                    .unwrap_or(6379);
                let password = p
                    .password
                    .as_ref()
                    .or(rs.redis_password.as_ref())
                    .map(|s| s.expose().to_owned())
                    .or_else(|| env("REDIS_PASSWORD"));
                RedisStore::open(&crate::redis_url::from_parts(
                    host.as_deref().unwrap_or("127.0.0.1"),
                    port,
                    password.as_deref(),
                ))
            };
            match store {
                Ok(s) => s
                    .timeout(secs(other_num("timeout")).unwrap_or(DEFAULT_REDIS_TIMEOUT))
                    .into(),
                Err(e) => {
                    warnings.push(format!(
                        "litellm_settings.cache_params: {e}; caching is off"
                    ));
                    return None;
                }
            }
        }
        other => {
            warnings.push(format!(
                "litellm_settings.cache_params.type: `{other}` is not supported by this build; caching is off"
            ));
            return None;
        }
    };
    let mut layer = CacheLayer::new(backend)
        .ttl(ttl.unwrap_or(DEFAULT_TTL))
        .shared_across_tenants(p.other.get("scope").and_then(|v| v.as_str()) == Some("shared"));
    if let Some(ns) = &p.namespace {
        layer = layer.namespace(ns.as_str());
    }
    if let Some(types) = &p.supported_call_types {
        let has = |names: &[&str]| types.iter().any(|t| names.contains(&t.as_str()));
        layer = layer.operations(
            has(&["completion", "acompletion"]),
            has(&["embedding", "aembedding"]),
        );
    }
    if let Some(kib) = other_num("max_size_per_item").filter(|k| *k > 0.0) {
        layer = layer.max_entry_bytes((kib * 1024.0) as usize);
    }
    Some(layer)
}

fn max_body_bytes(config: &Config) -> usize {
    config
        .general_settings
        .max_request_size_mb
        .filter(|mb| mb.is_finite() && *mb > 0.0)
        .map_or(DEFAULT_MAX_BODY_BYTES, |mb| (mb * 1024.0 * 1024.0) as usize)
}

// ---------------------------------------------------------------------------------------------
// Routing and reliability (router, retry, fallback, health, timeout)
// ---------------------------------------------------------------------------------------------

/// `router_settings.X`, else `litellm_settings.X`.
macro_rules! setting {
    ($config:expr, $key:ident) => {
        $config
            .router_settings
            .$key
            .clone()
            .or_else(|| $config.litellm_settings.$key.clone())
    };
}

/// Fallbacks: `fallbacks`, `context_window_fallbacks`, `content_policy_fallbacks`,
/// `default_fallbacks`, `max_fallbacks`; the test-only request params when
/// `general_settings.dangerously_allow_mock_testing_request_params` is true.
fn fallback_layer(config: &Config) -> FallbackLayer {
    let mut layer = FallbackLayer::new().allow_mock_testing(
        config
            .general_settings
            .dangerously_allow_mock_testing_request_params
            == Some(true),
    );
    for map in setting!(config, fallbacks).unwrap_or_default() {
        for (group, to) in map {
            layer = layer.fallbacks(group, to);
        }
    }
    for map in setting!(config, context_window_fallbacks).unwrap_or_default() {
        for (group, to) in map {
            layer = layer.context_window_fallbacks(group, to);
        }
    }
    for map in setting!(config, content_policy_fallbacks).unwrap_or_default() {
        for (group, to) in map {
            layer = layer.content_policy_fallbacks(group, to);
        }
    }
    if let Some(d) = setting!(config, default_fallbacks) {
        layer = layer.default_fallbacks(d);
    }
    if let Some(n) = setting!(config, max_fallbacks) {
        layer = layer.max_fallbacks(n);
    }
    layer
}

/// Retries: `num_retries`, `retry_policy`, `retry_after`.
fn retry_layer(config: &Config) -> RetryLayer {
    let rs = &config.router_settings;
    let mut layer =
        RetryLayer::new(setting!(config, num_retries).unwrap_or(retry::DEFAULT_NUM_RETRIES));
    for (key, n) in rs.retry_policy.iter().flatten() {
        match PolicyClass::from_key(key, "Retries") {
            Some(class) => layer = layer.retries_for_class(class, *n),
            None => {
                tracing::warn!("router_settings.retry_policy.{key}: unknown error class; ignored")
            }
        }
    }
    if let Some(secs) = rs.retry_after.filter(|s| s.is_finite() && *s > 0.0) {
        layer = layer.min_wait(Duration::from_secs_f64(secs.min(3600.0)));
    }
    layer
}

/// Cooldowns: `allowed_fails`, `allowed_fails_policy`, `cooldown_time`, `disable_cooldowns`.
fn cooldown_policy(config: &Config, warnings: &mut Vec<String>) -> CooldownPolicy {
    let rs = &config.router_settings;
    let mut policy = CooldownPolicy::default().disabled(rs.disable_cooldowns.unwrap_or(false));
    if let Some(n) = setting!(config, allowed_fails) {
        policy = policy.allowed_fails(n);
    }
    if let Some(secs) = setting!(config, cooldown_time).filter(|s| s.is_finite() && *s >= 0.0) {
        policy = policy.cooldown_time(Duration::from_secs_f64(secs.min(86_400.0)));
    }
    for (key, n) in rs.allowed_fails_policy.iter().flatten() {
        match PolicyClass::from_key(key, "AllowedFails") {
            Some(class) => policy = policy.allowed_fails_for_class(class, *n),
            None => warnings.push(format!(
                "router_settings.allowed_fails_policy.{key}: unknown error class; ignored"
            )),
        }
    }
    policy
}

/// A [`Deployment`] from a `model_list` entry.
#[must_use]
pub fn deployment_from_entry(entry: &ModelEntry) -> Deployment {
    let p = &entry.litellm_params;
    // `custom_llm_provider` names the provider of a `model` without a prefix, as in LiteLLM's
    // `get_llm_provider` (a prefix equal to it is not repeated).
    let mut dep = match p
        .other
        .get("custom_llm_provider")
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        Some(provider) => {
            let model = p
                .model
                .strip_prefix(provider)
                .and_then(|m| m.strip_prefix('/'))
                .unwrap_or(&p.model);
            Deployment::new(&entry.model_name, &format!("{provider}/{model}"))
        }
        None => Deployment::new(&entry.model_name, &p.model),
    };
    let id = entry
        .model_info
        .get("id")
        .and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| {
            stable_id(
                &entry.model_name,
                &p.model,
                p.api_base.as_deref().unwrap_or(""),
            )
        });
    dep.id = id.into();
    dep.api_base = p.api_base.as_deref().map(Into::into);
    dep.api_key.clone_from(&p.api_key);
    dep.api_version.clone_from(&p.api_version);
    let secs = |s: Option<f64>| {
        s.filter(|t| t.is_finite() && *t > 0.0)
            .map(Duration::from_secs_f64)
    };
    dep.timeout = secs(p.timeout);
    dep.stream_timeout = secs(p.stream_timeout);
    dep.max_retries = p.max_retries;
    dep.rpm = p.rpm;
    dep.tpm = p.tpm;
    dep.weight = p.weight;
    dep.order = p.order;
    dep.max_parallel_requests = p.max_parallel_requests;
    dep.input_cost_per_token = p.input_cost_per_token;
    dep.output_cost_per_token = p.output_cost_per_token;
    dep.tags.clone_from(&p.tags);
    dep.params.clone_from(&p.other);
    dep.model_info.clone_from(&entry.model_info);
    dep
}
