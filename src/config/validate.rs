//! Semantic validation after loading: numbers in range, budgets and durations that parse,
//! references between sections (fallbacks, aliases) that resolve, cache parameters the cache can
//! use ([`check_params`]).

use std::collections::HashMap;

use serde_json::Value;

use super::load::{push_index, push_key, Loader};
use super::{CacheParams, Config, ModelEntry, ROUTING_STRATEGIES};

impl Loader<'_> {
    // --- semantic validation ---------------------------------------------------------------

    pub(super) fn non_negative(&mut self, key: &str, value: Option<f64>) {
        match value {
            Some(v) if v.is_nan() => self.error(key, "must be a number, not NaN"),
            Some(v) if v.is_infinite() => self.error(key, "must be a finite number"),
            Some(v) if v < 0.0 => self.error(key, format!("must not be negative (got {v})")),
            _ => {}
        }
    }

    /// A limit (a timeout, a TTL, a size) where 0 would switch the limit off or be replaced by
    /// the default without a word: it must be > 0 (leave the key out for the default).
    pub(super) fn positive(&mut self, key: &str, value: Option<f64>) {
        match value {
            Some(0.0) => self.error(
                key,
                "must be greater than 0 (0 is no usable limit; leave the key out for the default)",
            ),
            _ => self.non_negative(key, value),
        }
    }

    /// A budget period: a duration longer than 0 (`0s` would reset the budget on every request).
    pub(super) fn budget_period(&mut self, key: &str, value: Option<&str>) {
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
    pub(super) fn validate_entry(
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

    pub(super) fn validate(&mut self, config: &Config) {
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
            for (key, reason) in check_params(cp) {
                self.error(push_key("litellm_settings.cache_params", key), reason);
            }
        }

        // Callbacks: unknown names and sinks without their variables fail the load.
        let env = |name: &str| {
            config
                .environment_variables
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        };
        match crate::config::CallbackSettings::from_config(config, &env) {
            Ok(settings) => self.warnings.extend(settings.warnings),
            Err(errs) => {
                for (key, reason) in errs {
                    self.error(key, reason);
                }
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
    pub(super) fn references(&mut self, config: &Config) {
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
}

/// Checks `litellm_settings.cache_params` for values the cache cannot use: an unknown `type`
/// or `scope`, a Redis URL that does not parse. Returns `(key, reason)` pairs; the config loader
/// reports them with the file name, so a bad cache config fails at start-up.
#[must_use]
pub fn check_params(p: &CacheParams) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    const TYPES: &[&str] = if cfg!(feature = "redis") {
        &["local", "redis"]
    } else {
        &["local"]
    };
    if let Some(t) = &p.type_ {
        if !TYPES.contains(&t.as_str()) {
            out.push((
                "type",
                format!(
                    "cache type {t:?} is not supported by llmgate; expected one of: {}",
                    TYPES.join(", ")
                ),
            ));
        }
    }
    match p.other.get("scope") {
        None => {}
        Some(serde_json::Value::String(s)) if s == "tenant" || s == "shared" => {}
        Some(v) => out.push(("scope", format!("must be `tenant` or `shared` (got {v})"))),
    }
    #[cfg(feature = "redis")]
    if let Some(url) = &p.url {
        if let Err(e) = crate::cache::RedisStore::open(url.expose()).map_err(|e| e.to_string()) {
            out.push(("url", e));
        }
    }
    out
}
