//! The text exposition format (Prometheus 0.0.4): LiteLLM's metric names, types, labels.

use std::{fmt::Write as _, sync::Arc};

use dashmap::DashMap;

use super::{
    atomic::HistogramSnapshot,
    registry::{
        aggregate, hist, BudgetGauge, LimitGauge, Metrics, RemainingKey, Series, SeriesKey,
    },
};

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn label<'a>(k: &'a SeriesKey, name: &str) -> &'a str {
    let key = k.key.as_deref();
    match name {
        "end_user" => k.end_user.as_deref().unwrap_or(""),
        "hashed_api_key" => key.map_or("", |l| &l.hash),
        "api_key_alias" => key.and_then(|l| l.alias.as_deref()).unwrap_or(""),
        "team" => key.and_then(|l| l.team.as_deref()).unwrap_or(""),
        "user" => key.and_then(|l| l.user.as_deref()).unwrap_or(""),
        "requested_model" | "model_group" => &k.requested_model,
        "model" | "litellm_model_name" => k.model.as_deref().unwrap_or(""),
        "model_id" => k.model_id.as_deref().unwrap_or(""),
        "api_base" => k.api_base.as_deref().unwrap_or(""),
        "api_provider" => k.provider.as_deref().unwrap_or(""),
        "status_code" | "exception_status" => status_str(k.status),
        "exception_class" => k.class.unwrap_or(""),
        "route" => k.route,
        // team_alias, user_email: not known to llmgate's key info.
        _ => "",
    }
}

fn status_str(s: u16) -> &'static str {
    // Every status a call can end with, rendered once.
    static CODES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let codes = CODES.get_or_init(|| (100..600).map(|c: u16| c.to_string()).collect());
    s.checked_sub(100)
        .and_then(|i| codes.get(usize::from(i)))
        .map_or("", String::as_str)
}

const KEY: [&str; 8] = [
    "end_user",
    "hashed_api_key",
    "api_key_alias",
    "model",
    "team",
    "team_alias",
    "user",
    "user_email",
];

fn escape(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn labels_text(names: &[&str], values: &[&str], extra: Option<(&str, &str)>, out: &mut String) {
    out.push('{');
    let mut first = true;
    for (n, v) in names.iter().zip(values).map(|(n, v)| (*n, *v)).chain(extra) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(n);
        out.push_str("=\"");
        escape(v, out);
        out.push('"');
    }
    out.push('}');
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A float as Python's `prometheus_client` writes it (`5.0`, `0.005`, `+Inf`), so that `le`
/// labels match LiteLLM's exactly (a dashboard may select `le="5.0"`).
fn num(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if v.is_nan() {
        "NaN".to_owned()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

struct Family<'a> {
    series: &'a [(SeriesKey, std::sync::Arc<Series>)],
    out: &'a mut String,
}

impl Family<'_> {
    fn counter(
        &mut self,
        name: &str,
        help: &str,
        names: &[&str],
        keep: impl Fn(&SeriesKey) -> bool,
        value: impl Fn(&Series) -> f64,
    ) {
        header(self.out, name, "counter", help);
        let rows = aggregate(
            self.series,
            keep,
            |k| names.iter().map(|n| label(k, n)).collect(),
            |acc: &mut f64, s| *acc += value(s),
        );
        for (values, v) in rows {
            self.out.push_str(name);
            self.out.push_str("_total");
            labels_text(names, &values, None, self.out);
            let _ = writeln!(self.out, " {}", num(v));
        }
    }

    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        names: &[&str],
        pick: impl Fn(&Series) -> &super::atomic::Histogram,
    ) {
        header(self.out, name, "histogram", help);
        let rows = aggregate(
            self.series,
            |k| k.success,
            |k| names.iter().map(|n| label(k, n)).collect(),
            |acc: &mut HistogramSnapshot, s| hist(acc, pick(s)),
        );
        for (values, h) in rows {
            let count = h.count();
            if count == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (i, b) in h.buckets.iter().enumerate() {
                cumulative += b;
                let le = h
                    .bounds
                    .get(i)
                    .map_or_else(|| "+Inf".to_owned(), |b| num(*b));
                let _ = write!(self.out, "{name}_bucket");
                labels_text(names, &values, Some(("le", &le)), self.out);
                let _ = writeln!(self.out, " {cumulative}");
            }
            let _ = write!(self.out, "{name}_count");
            labels_text(names, &values, None, self.out);
            let _ = writeln!(self.out, " {count}");
            let _ = write!(self.out, "{name}_sum");
            labels_text(names, &values, None, self.out);
            let _ = writeln!(self.out, " {}", num(h.sum));
        }
    }
}

fn remaining_label<'a>(k: &'a RemainingKey, name: &str) -> &'a str {
    match name {
        "model_group" => &k.dep.model_group,
        "api_provider" => &k.dep.provider,
        "api_base" => k.dep.api_base.as_deref().unwrap_or(""),
        "litellm_model_name" => &k.dep.model,
        "hashed_api_key" => k.key.as_deref().map_or("", |l| &l.hash),
        "api_key_alias" => k
            .key
            .as_deref()
            .and_then(|l| l.alias.as_deref())
            .unwrap_or(""),
        _ => "",
    }
}

impl Metrics {
    /// Renders every metric in the text exposition format (off the request path: the scrape
    /// reads the atomics and sums series to each metric's labels).
    #[must_use]
    pub fn render(&self) -> String {
        let series = self.snapshot();
        let mut out = String::with_capacity(16 * 1024);
        let mut f = Family {
            series: &series,
            out: &mut out,
        };
        f.counter(
            "litellm_proxy_total_requests_metric",
            "Total number of requests made to the proxy server - track number of client side requests",
            &[
                "end_user",
                "hashed_api_key",
                "api_key_alias",
                "requested_model",
                "team",
                "team_alias",
                "user",
                "status_code",
                "user_email",
                "route",
            ],
            |_| true,
            |s| s.requests.load(std::sync::atomic::Ordering::Relaxed) as f64,
        );
        f.counter(
            "litellm_proxy_failed_requests_metric",
            "Total number of failed responses from proxy - the client did not get a success response from litellm proxy",
            &[
                "end_user",
                "hashed_api_key",
                "api_key_alias",
                "requested_model",
                "team",
                "team_alias",
                "user",
                "user_email",
                "exception_status",
                "exception_class",
                "route",
            ],
            |k| !k.success,
            |s| s.requests.load(std::sync::atomic::Ordering::Relaxed) as f64,
        );
        let load =
            |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed) as f64;
        f.counter(
            "litellm_requests_metric",
            "deprecated - use litellm_proxy_total_requests_metric. Total number of LLM calls to litellm - track total per API Key, team, user",
            &KEY,
            |k| k.success,
            |s| load(&s.requests),
        );
        f.counter(
            "litellm_spend_metric",
            "Total spend on LLM requests",
            &KEY,
            |k| k.success,
            |s| s.spend.get(),
        );
        let key_req = [
            "end_user",
            "hashed_api_key",
            "api_key_alias",
            "model",
            "team",
            "team_alias",
            "user",
            "user_email",
            "requested_model",
        ];
        f.counter(
            "litellm_total_tokens_metric",
            "Total number of input + output tokens from LLM requests",
            &key_req,
            |k| k.success,
            |s| load(&s.total_tokens),
        );
        f.counter(
            "litellm_input_tokens_metric",
            "Total number of input tokens from LLM requests",
            &key_req,
            |k| k.success,
            |s| load(&s.input_tokens),
        );
        f.counter(
            "litellm_output_tokens_metric",
            "Total number of output tokens from LLM requests",
            &key_req,
            |k| k.success,
            |s| load(&s.output_tokens),
        );
        let cache = [
            "model",
            "hashed_api_key",
            "api_key_alias",
            "team",
            "team_alias",
            "requested_model",
        ];
        f.counter(
            "litellm_cache_hits_metric",
            "Total number of calls answered from the response cache",
            &cache,
            |k| k.success,
            |s| load(&s.cache_hits),
        );
        f.counter(
            "litellm_cached_tokens_metric",
            "Total number of input tokens read from the provider's prompt cache",
            &cache,
            |k| k.success,
            |s| load(&s.cached_tokens),
        );
        f.histogram(
            "litellm_request_total_latency_metric",
            "Total latency (seconds) for a request to LiteLLM",
            &[
                "end_user",
                "hashed_api_key",
                "api_key_alias",
                "requested_model",
                "team",
                "team_alias",
                "user",
                "model",
            ],
            |s| &s.total_latency,
        );
        f.histogram(
            "litellm_llm_api_latency_metric",
            "Total latency (seconds) for a models LLM API call",
            &[
                "model",
                "hashed_api_key",
                "api_key_alias",
                "team",
                "team_alias",
                "requested_model",
                "end_user",
                "user",
            ],
            |s| &s.api_latency,
        );
        f.histogram(
            "litellm_llm_api_time_to_first_token_metric",
            "Time to first token for a models LLM API call",
            &[
                "model",
                "hashed_api_key",
                "api_key_alias",
                "team",
                "team_alias",
            ],
            |s| &s.ttft,
        );
        f.histogram(
            "litellm_overhead_latency_metric",
            "Latency overhead (seconds) added by LiteLLM processing",
            &[
                "model_group",
                "api_provider",
                "api_base",
                "litellm_model_name",
                "hashed_api_key",
                "api_key_alias",
            ],
            |s| &s.overhead,
        );
        f.histogram(
            "litellm_deployment_latency_per_output_token",
            "LLM Deployment Analytics - Latency per output token",
            &[
                "litellm_model_name",
                "model_id",
                "api_base",
                "api_provider",
                "hashed_api_key",
                "api_key_alias",
                "team",
                "team_alias",
            ],
            |s| &s.latency_per_token,
        );
        self.render_deployments(&mut out);
        self.render_fallbacks(&mut out);
        self.render_gauges(&mut out);
        out
    }

    /// The per-deployment counters, from [`DeploymentMetricsLayer`](super::DeploymentMetricsLayer)
    /// (every attempt, retries and fallbacks included).
    fn render_deployments(&self, out: &mut String) {
        use std::{collections::BTreeMap, sync::atomic::Ordering};
        let attempts: Vec<_> = self
            .inner
            .attempts
            .iter()
            .map(|e| (e.key().clone(), e.value().load(Ordering::Relaxed)))
            .collect();
        let names = [
            "requested_model",
            "litellm_model_name",
            "model_id",
            "api_base",
            "api_provider",
            "hashed_api_key",
            "api_key_alias",
            "team",
            "team_alias",
        ];
        let values = |k: &super::deployment::AttemptKey| -> Vec<String> {
            let key = k.key.as_deref();
            vec![
                k.dep.model_group.to_string(),
                k.dep.model.to_string(),
                k.dep.model_id.to_string(),
                k.dep.api_base.as_deref().unwrap_or("").to_owned(),
                k.dep.provider.to_string(),
                key.map_or("", |l| &l.hash).to_owned(),
                key.and_then(|l| l.alias.as_deref())
                    .unwrap_or("")
                    .to_owned(),
                key.and_then(|l| l.team.as_deref()).unwrap_or("").to_owned(),
                String::new(),
            ]
        };
        let mut fail_names = names.to_vec();
        fail_names.extend(["exception_status", "exception_class"]);
        for (name, help, pick) in [
            (
                "litellm_deployment_success_responses",
                "LLM Deployment Analytics - Total number of successful LLM API calls via litellm",
                0u8,
            ),
            (
                "litellm_deployment_failure_responses",
                "LLM Deployment Analytics - Total number of failed LLM API calls for a specific LLM deployment. exception_status is the status of the exception from the llm api",
                1,
            ),
            (
                "litellm_deployment_total_requests",
                "LLM Deployment Analytics - Total number of LLM API calls via litellm - success + failure",
                2,
            ),
        ] {
            header(out, name, "counter", help);
            let mut rows: BTreeMap<Vec<String>, u64> = BTreeMap::new();
            for (k, n) in &attempts {
                let mut v = values(k);
                match (pick, k.failure) {
                    (0, None) | (2, _) => {}
                    (1, Some((status, class))) => {
                        v.push(status_str(status).to_owned());
                        v.push(class.to_owned());
                    }
                    _ => continue,
                }
                *rows.entry(v).or_default() += n;
            }
            let label_names: &[&str] = if pick == 1 { &fail_names } else { &names };
            for (v, n) in rows {
                let v: Vec<&str> = v.iter().map(String::as_str).collect();
                out.push_str(name);
                out.push_str("_total");
                labels_text(label_names, &v, None, out);
                let _ = writeln!(out, " {}", num(n as f64));
            }
        }
        header(
            out,
            "litellm_deployment_cooled_down",
            "counter",
            "LLM Deployment Analytics - Number of times a deployment has been cooled down by LiteLLM load balancing logic. exception_status is the status of the exception that caused the deployment to be cooled down",
        );
        let names = [
            "litellm_model_name",
            "model_id",
            "api_base",
            "api_provider",
            "exception_status",
        ];
        for e in &self.inner.cooldowns {
            let (dep, status) = e.key();
            let v = [
                &*dep.model,
                &*dep.model_id,
                dep.api_base.as_deref().unwrap_or(""),
                &*dep.provider,
                status_str(*status),
            ];
            out.push_str("litellm_deployment_cooled_down_total");
            labels_text(&names, &v, None, out);
            let _ = writeln!(out, " {}", num(e.value().load(Ordering::Relaxed) as f64));
        }
    }

    /// `litellm_deployment_successful_fallbacks` / `…_failed_fallbacks` (one event per fallback
    /// group tried).
    fn render_fallbacks(&self, out: &mut String) {
        use std::{collections::BTreeMap, sync::atomic::Ordering};
        let names = [
            "requested_model",
            "fallback_model",
            "hashed_api_key",
            "api_key_alias",
            "team",
            "team_alias",
            "exception_status",
            "exception_class",
        ];
        for (name, help, success) in [
            (
                "litellm_deployment_successful_fallbacks",
                "LLM Deployment Analytics - Number of successful fallback requests from primary model -> fallback model",
                true,
            ),
            (
                "litellm_deployment_failed_fallbacks",
                "LLM Deployment Analytics - Number of failed fallback requests from primary model -> fallback model",
                false,
            ),
        ] {
            header(out, name, "counter", help);
            let mut rows: BTreeMap<Vec<&str>, u64> = BTreeMap::new();
            let entries: Vec<_> = self
                .inner
                .fallbacks
                .iter()
                .filter(|e| e.key().success == success)
                .map(|e| (e.key().clone(), e.value().load(Ordering::Relaxed)))
                .collect();
            for (k, n) in &entries {
                let key = k.key.as_deref();
                let v = vec![
                    &*k.requested,
                    &*k.fallback,
                    key.map_or("", |l| &l.hash),
                    key.and_then(|l| l.alias.as_deref()).unwrap_or(""),
                    key.and_then(|l| l.team.as_deref()).unwrap_or(""),
                    "",
                    k.original.map_or("", |(s, _)| status_str(s)),
                    k.original.map_or("", |(_, c)| c),
                ];
                *rows.entry(v).or_default() += n;
            }
            for (v, n) in rows {
                out.push_str(name);
                out.push_str("_total");
                labels_text(&names, &v, None, out);
                let _ = writeln!(out, " {}", num(n as f64));
            }
        }
    }

    fn render_gauges(&self, out: &mut String) {
        let inner = &self.inner;
        // The key and team budget gauges: one table, one loop.
        let budgets: [(&str, &str, [&str; 2], &DashMap<Arc<str>, BudgetGauge>, bool); 4] = [
            (
                "litellm_remaining_api_key_budget_metric",
                "Remaining budget for api key",
                ["hashed_api_key", "api_key_alias"],
                &inner.key_budgets,
                false,
            ),
            (
                "litellm_api_key_max_budget_metric",
                "Maximum budget set for api key",
                ["hashed_api_key", "api_key_alias"],
                &inner.key_budgets,
                true,
            ),
            (
                "litellm_remaining_team_budget_metric",
                "Remaining budget for team",
                ["team", "team_alias"],
                &inner.team_budgets,
                false,
            ),
            (
                "litellm_team_max_budget_metric",
                "Maximum budget set for team",
                ["team", "team_alias"],
                &inner.team_budgets,
                true,
            ),
        ];
        for (name, help, names, map, max) in budgets {
            header(out, name, "gauge", help);
            for e in map {
                // A team's alias is not known to llmgate's key info: always empty.
                let alias = e.alias.get().cloned().flatten();
                let values = [&**e.key(), alias.as_deref().unwrap_or("")];
                out.push_str(name);
                labels_text(&names, &values, None, out);
                let v = if max { e.max.get() } else { e.remaining.get() };
                let _ = writeln!(out, " {}", num(v));
            }
        }
        self.render_rate_limits(out);
        let names = [
            "model_group",
            "api_provider",
            "api_base",
            "litellm_model_name",
            "hashed_api_key",
            "api_key_alias",
        ];
        for (name, help, map) in [
            (
                "litellm_remaining_requests",
                "LLM Deployment Analytics - remaining requests for model, returned from LLM API Provider",
                &inner.remaining_requests,
            ),
            (
                "litellm_remaining_tokens",
                "remaining tokens for model, returned from LLM API Provider",
                &inner.remaining_tokens,
            ),
        ] {
            header(out, name, "gauge", help);
            for e in map {
                let values: Vec<&str> = names.iter().map(|n| remaining_label(e.key(), n)).collect();
                out.push_str(name);
                labels_text(&names, &values, None, out);
                let _ = writeln!(out, " {}", num(e.value().get()));
            }
        }
        header(
            out,
            "litellm_deployment_state",
            "gauge",
            "LLM Deployment Analytics - The state of the deployment: 0 = healthy, 1 = partial outage, 2 = complete outage",
        );
        if let Some(states) = inner.deployments.get() {
            let names = ["litellm_model_name", "model_id", "api_base", "api_provider"];
            for d in states() {
                let values = [
                    &*d.model,
                    &*d.model_id,
                    d.api_base.as_deref().unwrap_or(""),
                    &*d.provider,
                ];
                out.push_str("litellm_deployment_state");
                labels_text(&names, &values, None, out);
                let _ = writeln!(out, " {}", d.state);
            }
        }
    }
}

/// Which cell of a [`LimitGauge`] a rate-limit gauge shows.
#[derive(Clone, Copy)]
enum Cell {
    RemainingRequests,
    RemainingTokens,
    Rpm,
    Tpm,
}

impl Cell {
    fn of(self, g: &LimitGauge) -> Option<u64> {
        LimitGauge::get(match self {
            Self::RemainingRequests => &g.remaining_requests,
            Self::RemainingTokens => &g.remaining_tokens,
            Self::Rpm => &g.rpm,
            Self::Tpm => &g.tpm,
        })
    }
}

impl Metrics {
    /// The key and team rate-limit gauges (LiteLLM's
    /// `litellm_remaining_api_key_requests_for_model` and `…_tokens_for_model`, and the team
    /// gauges `litellm_remaining_team_requests_for_model`, `…_tokens_for_model`,
    /// `litellm_team_rpm_limit`, `litellm_team_tpm_limit`): a series appears once a call reported
    /// that limit.
    fn render_rate_limits(&self, out: &mut String) {
        let inner = &self.inner;
        let key_names = ["hashed_api_key", "api_key_alias", "model"];
        for (name, help, cell) in [
            (
                "litellm_remaining_api_key_requests_for_model",
                "Remaining Requests API Key can make for model (model based rpm limit on key)",
                Cell::RemainingRequests,
            ),
            (
                "litellm_remaining_api_key_tokens_for_model",
                "Remaining Tokens API Key can make for model (model based tpm limit on key)",
                Cell::RemainingTokens,
            ),
        ] {
            header(out, name, "gauge", help);
            for e in &inner.key_limits {
                let Some(v) = cell.of(e.value()) else {
                    continue;
                };
                let (key, model) = e.key();
                let values = [&*key.hash, key.alias.as_deref().unwrap_or(""), &**model];
                out.push_str(name);
                labels_text(&key_names, &values, None, out);
                let _ = writeln!(out, " {}", num(v as f64));
            }
        }
        let team_names = ["team", "team_alias", "model"];
        for (name, help, cell) in [
            (
                "litellm_remaining_team_requests_for_model",
                "Remaining Requests Team can make for model (rpm limit on team)",
                Cell::RemainingRequests,
            ),
            (
                "litellm_remaining_team_tokens_for_model",
                "Remaining Tokens Team can make for model (tpm limit on team)",
                Cell::RemainingTokens,
            ),
            (
                "litellm_team_rpm_limit",
                "Requests per minute limit of the team",
                Cell::Rpm,
            ),
            (
                "litellm_team_tpm_limit",
                "Tokens per minute limit of the team",
                Cell::Tpm,
            ),
        ] {
            header(out, name, "gauge", help);
            for e in &inner.team_limits {
                let Some(v) = cell.of(e.value()) else {
                    continue;
                };
                let (team, model) = e.key();
                let values = [&**team, "", &**model];
                out.push_str(name);
                labels_text(&team_names, &values, None, out);
                let _ = writeln!(out, " {}", num(v as f64));
            }
        }
    }
}
