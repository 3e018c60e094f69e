//! [`Metrics`]: the registry, recorded into from each [`CallRecord`].

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, OnceLock,
    },
};

use dashmap::DashMap;

use super::{
    atomic::{AtomicF64, Histogram, HistogramSnapshot, DEFAULT_BUCKETS},
    deployment::DeploymentLabels,
};
use crate::{
    auth::KeyInfo,
    callbacks::{CallRecord, CallStatus},
    rate_limit::ScopeLimits,
};

/// The labels of a caller, interned per key hash (a call allocates none).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct KeyLabels {
    pub(super) hash: Arc<str>,
    pub(super) alias: Option<Arc<str>>,
    pub(super) team: Option<Arc<str>>,
    pub(super) user: Option<Arc<str>>,
}

impl KeyLabels {
    fn matches(&self, k: &KeyInfo) -> bool {
        self.alias.as_deref() == k.key_alias.as_deref()
            && self.team.as_deref() == k.team_id.as_deref()
            && self.user.as_deref() == k.user_id.as_deref()
    }
}

/// Every label a call's series can carry; each metric renders its own subset, summed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct SeriesKey {
    pub(super) requested_model: Arc<str>,
    pub(super) model: Option<Arc<str>>,
    pub(super) model_id: Option<Arc<str>>,
    pub(super) api_base: Option<Arc<str>>,
    pub(super) provider: Option<Arc<str>>,
    pub(super) key: Option<Arc<KeyLabels>>,
    pub(super) end_user: Option<Arc<str>>,
    pub(super) status: u16,
    pub(super) success: bool,
    pub(super) class: Option<&'static str>,
    pub(super) route: &'static str,
}

/// One label set's atomics.
#[derive(Debug)]
pub(super) struct Series {
    pub(super) requests: AtomicU64,
    pub(super) cache_hits: AtomicU64,
    pub(super) spend: AtomicF64,
    pub(super) input_tokens: AtomicU64,
    pub(super) output_tokens: AtomicU64,
    pub(super) total_tokens: AtomicU64,
    pub(super) cached_tokens: AtomicU64,
    pub(super) total_latency: Histogram,
    pub(super) api_latency: Histogram,
    pub(super) ttft: Histogram,
    pub(super) overhead: Histogram,
    /// `litellm_deployment_latency_per_output_token` (`prometheus_client`'s default buckets).
    pub(super) latency_per_token: Histogram,
}

impl Default for Series {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            spend: AtomicF64::default(),
            input_tokens: AtomicU64::new(0),
            output_tokens: AtomicU64::new(0),
            total_tokens: AtomicU64::new(0),
            cached_tokens: AtomicU64::new(0),
            total_latency: Histogram::default(),
            api_latency: Histogram::default(),
            ttft: Histogram::default(),
            overhead: Histogram::default(),
            latency_per_token: Histogram::with_bounds(&DEFAULT_BUCKETS),
        }
    }
}

/// The labels of the provider rate-limit gauges (`litellm_remaining_requests`, `…_tokens`):
/// the deployment that answered and the caller.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct RemainingKey {
    pub(super) dep: Arc<DeploymentLabels>,
    pub(super) key: Option<Arc<KeyLabels>>,
}

/// "No value" in a [`LimitGauge`] cell.
const UNSET: u64 = u64::MAX;

/// A scope's rate-limit gauges for one model group: the limits and what is left (each unset
/// until a call reported it).
#[derive(Debug)]
pub(super) struct LimitGauge {
    pub(super) remaining_requests: AtomicU64,
    pub(super) remaining_tokens: AtomicU64,
    pub(super) rpm: AtomicU64,
    pub(super) tpm: AtomicU64,
}

impl Default for LimitGauge {
    fn default() -> Self {
        Self {
            remaining_requests: AtomicU64::new(UNSET),
            remaining_tokens: AtomicU64::new(UNSET),
            rpm: AtomicU64::new(UNSET),
            tpm: AtomicU64::new(UNSET),
        }
    }
}

impl LimitGauge {
    fn set(&self, l: &ScopeLimits) {
        for (cell, v) in [
            (&self.remaining_requests, l.remaining_requests),
            (&self.remaining_tokens, l.remaining_tokens),
            (&self.rpm, l.rpm),
            (&self.tpm, l.tpm),
        ] {
            if let Some(v) = v {
                cell.store(v.min(UNSET - 1), Ordering::Relaxed);
            }
        }
    }

    /// A cell's value, when set.
    pub(super) fn get(cell: &AtomicU64) -> Option<u64> {
        Some(cell.load(Ordering::Relaxed)).filter(|v| *v != UNSET)
    }
}

/// A budget gauge: the remaining budget and the maximum.
#[derive(Debug, Default)]
pub(super) struct BudgetGauge {
    pub(super) alias: OnceLock<Option<Arc<str>>>,
    pub(super) remaining: AtomicF64,
    pub(super) max: AtomicF64,
}

/// A deployment as `litellm_deployment_state` reads it at scrape time.
pub(crate) type DeploymentStates = Arc<dyn Fn() -> Vec<DeploymentState> + Send + Sync>;

/// One deployment's state at scrape time.
#[derive(Clone, Debug)]
pub struct DeploymentState {
    /// The upstream model (`litellm_model_name`).
    pub model: Arc<str>,
    /// The deployment id.
    pub model_id: Arc<str>,
    /// Its base URL.
    pub api_base: Option<Arc<str>>,
    /// Its provider.
    pub provider: Arc<str>,
    /// 0 healthy, 1 failures this minute (partial outage), 2 cooling down (complete outage).
    pub state: u8,
}

pub(super) struct Inner {
    pub(super) series: DashMap<SeriesKey, Arc<Series>>,
    pub(super) keys: DashMap<Arc<str>, Arc<KeyLabels>>,
    pub(super) key_budgets: DashMap<Arc<str>, BudgetGauge>,
    pub(super) team_budgets: DashMap<Arc<str>, BudgetGauge>,
    pub(super) remaining_requests: DashMap<RemainingKey, AtomicF64>,
    pub(super) remaining_tokens: DashMap<RemainingKey, AtomicF64>,
    /// The key rate-limit gauges, by (key, model group).
    pub(super) key_limits: DashMap<(Arc<KeyLabels>, Arc<str>), LimitGauge>,
    /// The team rate-limit gauges, by (team id, model group).
    pub(super) team_limits: DashMap<(Arc<str>, Arc<str>), LimitGauge>,
    pub(super) deployments: OnceLock<DeploymentStates>,
    pub(super) attempts: DashMap<super::deployment::AttemptKey, AtomicU64>,
    pub(super) cooldowns: DashMap<(Arc<super::deployment::DeploymentLabels>, u16), AtomicU64>,
    pub(super) fallbacks: DashMap<super::fallback::FallbackKey, AtomicU64>,
    /// The labels of wildcard deployments made concrete, by (deployment id, upstream model).
    pub(super) concrete: DashMap<(Arc<str>, Arc<str>), Arc<super::deployment::DeploymentLabels>>,
    /// The empty `requested_model` of refused calls (shared: a refusal allocates nothing).
    pub(super) no_model: Arc<str>,
    pub(super) require_auth: bool,
}

/// The Prometheus registry of llmgate's `litellm_*` metrics. Cheap to clone; recording is a
/// sharded-map lookup and atomic adds (see the [module docs](super)).
#[derive(Clone)]
pub struct Metrics {
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("series", &self.inner.series.len())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn arc_opt(s: Option<&String>) -> Option<Arc<str>> {
    s.map(|s| Arc::from(s.as_str()))
}

impl Metrics {
    /// An empty registry; `/metrics` open to anyone.
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                series: DashMap::new(),
                keys: DashMap::new(),
                key_budgets: DashMap::new(),
                team_budgets: DashMap::new(),
                remaining_requests: DashMap::new(),
                remaining_tokens: DashMap::new(),
                key_limits: DashMap::new(),
                team_limits: DashMap::new(),
                deployments: OnceLock::new(),
                attempts: DashMap::new(),
                cooldowns: DashMap::new(),
                fallbacks: DashMap::new(),
                concrete: DashMap::new(),
                no_model: Arc::from(""),
                require_auth: false,
            }),
        }
    }

    /// Whether `GET /metrics` asks for a key (`require_auth_for_metrics_endpoint`). Set before
    /// the registry is shared.
    #[must_use]
    pub fn require_auth(mut self, on: bool) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.require_auth = on;
        }
        self
    }

    /// Whether `GET /metrics` asks for a key.
    #[must_use]
    pub fn requires_auth(&self) -> bool {
        self.inner.require_auth
    }

    /// Where `litellm_deployment_state` reads the deployments from at scrape time (the
    /// gateway's router). Only the first call counts.
    pub fn deployment_states(&self, f: impl Fn() -> Vec<DeploymentState> + Send + Sync + 'static) {
        let _ = self.inner.deployments.set(Arc::new(f));
    }

    pub(super) fn key_labels(&self, k: &KeyInfo) -> Arc<KeyLabels> {
        if let Some(e) = self.inner.keys.get(&*k.token) {
            if e.matches(k) {
                return e.clone();
            }
        }
        let labels = Arc::new(KeyLabels {
            hash: k.token.clone(),
            alias: arc_opt(k.key_alias.as_ref()),
            team: arc_opt(k.team_id.as_ref()),
            user: arc_opt(k.user_id.as_ref()),
        });
        self.inner.keys.insert(k.token.clone(), labels.clone());
        labels
    }

    /// Counts a call the edge refused before it reached the stack (a missing or invalid key,
    /// a body that does not parse, a missing model): `litellm_proxy_total_requests_metric` and
    /// `litellm_proxy_failed_requests_metric`, as LiteLLM's `async_post_call_failure_hook`
    /// counts them, with the `route` LiteLLM names (`/chat/completions`), the status and the
    /// error class. Nothing else is known about such a call (its body is not read, or did not
    /// parse): the other labels are empty.
    pub fn refused(&self, route: &'static str, status: u16, class: &'static str) {
        self.count_refusal(route, self.inner.no_model.clone(), None, status, class);
    }

    /// Counts a call that the edge refused, as [`refused`](Self::refused), with the caller's key
    /// labels when auth knew the key ([`AuthRefusal`](crate::auth::AuthRefusal): a blocked or
    /// expired key).
    pub fn refused_error(&self, route: &'static str, e: &crate::error::LlmError) {
        let key = crate::auth::AuthRefusal::of(e).and_then(|r| r.key.as_deref());
        let model = self.inner.no_model.clone();
        self.count_refusal(route, model, key, e.status().as_u16(), e.kind().as_str());
    }

    /// Counts a call that auth refused inside the stack (it never reached the
    /// [`CallRecorder`](crate::callbacks::CallRecorder)): `litellm_proxy_total_requests_metric`
    /// and `litellm_proxy_failed_requests_metric` with the model the request named, the caller's
    /// key when auth knew it, the route, the status and the error class.
    pub fn refused_by_auth(
        &self,
        route: &'static str,
        model: Arc<str>,
        key: Option<&KeyInfo>,
        e: &crate::error::LlmError,
    ) {
        self.count_refusal(route, model, key, e.status().as_u16(), e.kind().as_str());
    }

    fn count_refusal(
        &self,
        route: &'static str,
        requested_model: Arc<str>,
        key: Option<&KeyInfo>,
        status: u16,
        class: &'static str,
    ) {
        let sk = SeriesKey {
            requested_model,
            model: None,
            model_id: None,
            api_base: None,
            provider: None,
            key: key.map(|k| self.key_labels(k)),
            end_user: None,
            status,
            success: false,
            class: Some(class),
            route,
        };
        match self.inner.series.get(&sk) {
            Some(s) => s.requests.fetch_add(1, Ordering::Relaxed),
            None => self
                .inner
                .series
                .entry(sk)
                .or_default()
                .requests
                .fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Records one call.
    pub fn record(&self, r: &CallRecord) {
        let key = r.key.as_deref().map(|k| self.key_labels(k));
        let success = r.status == CallStatus::Success;
        let sk = SeriesKey {
            requested_model: r.model_group.clone(),
            model: r.deployment.as_ref().map(|d| d.model.clone()),
            model_id: r.deployment.as_ref().map(|d| d.id.clone()),
            api_base: r.api_base.clone(),
            provider: r.provider.clone(),
            key: key.clone(),
            end_user: r.end_user.clone(),
            status: r.http_status,
            success,
            class: r.error_class,
            route: r.route,
        };
        let series = match self.inner.series.get(&sk) {
            Some(s) => s.clone(),
            None => self.inner.series.entry(sk).or_default().clone(),
        };
        series.requests.fetch_add(1, Ordering::Relaxed);
        if success {
            if r.cache_hit {
                series.cache_hits.fetch_add(1, Ordering::Relaxed);
            }
            series.spend.add(r.cost);
            series
                .input_tokens
                .fetch_add(r.usage.input, Ordering::Relaxed);
            series
                .output_tokens
                .fetch_add(r.usage.output, Ordering::Relaxed);
            series
                .total_tokens
                .fetch_add(r.usage.total, Ordering::Relaxed);
            series
                .cached_tokens
                .fetch_add(r.usage.cache_read, Ordering::Relaxed);
            series.total_latency.observe(r.total_latency.as_secs_f64());
            if let Some(u) = r.upstream_latency {
                series.api_latency.observe(u.as_secs_f64());
            }
            if let Some(t) = r.time_to_first_token {
                series.ttft.observe(t.as_secs_f64());
            }
            if let Some(o) = r.overhead {
                series.overhead.observe(o.as_secs_f64());
            }
            // As LiteLLM: a stream's time to first token, else the call's latency (the
            // upstream's share), over the output tokens.
            if r.usage.output > 0 && r.deployment.is_some() && !r.cache_hit {
                let latency = if r.stream {
                    r.time_to_first_token
                } else {
                    None
                }
                .or(r.upstream_latency)
                .unwrap_or(r.total_latency);
                series
                    .latency_per_token
                    .observe(latency.as_secs_f64() / r.usage.output as f64);
            }
        }
        if let Some(k) = r.key.as_deref() {
            self.budgets(k, key.as_ref(), r.cost);
        }
        self.rate_limits(r, key);
    }

    /// The key and team rate-limit gauges, from the rate-limit layer's numbers for this call
    /// (`litellm_remaining_api_key_requests_for_model`, …; labelled with the model group).
    fn rate_limits(&self, r: &CallRecord, key: Option<Arc<KeyLabels>>) {
        let Some(key) = key else { return };
        if let Some(l) = &r.key_limits {
            let k = (key.clone(), r.model_group.clone());
            match self.inner.key_limits.get(&k) {
                Some(g) => g.set(l),
                None => self.inner.key_limits.entry(k).or_default().set(l),
            }
        }
        if let (Some(l), Some(team)) = (&r.team_limits, &key.team) {
            let k = (team.clone(), r.model_group.clone());
            match self.inner.team_limits.get(&k) {
                Some(g) => g.set(l),
                None => self.inner.team_limits.entry(k).or_default().set(l),
            }
        }
    }

    /// The provider's rate-limit headers of an attempt `dep` answered
    /// (`litellm_remaining_requests`, `litellm_remaining_tokens`), read where nothing but the
    /// provider wrote them: the deployment's own stack.
    pub(super) fn provider_remaining(
        &self,
        dep: &Arc<DeploymentLabels>,
        key: Option<&Arc<KeyLabels>>,
        headers: &http::HeaderMap,
    ) {
        let requests = header_num(headers, "x-ratelimit-remaining-requests");
        let tokens = header_num(headers, "x-ratelimit-remaining-tokens");
        if requests.is_none() && tokens.is_none() {
            return;
        }
        let rk = RemainingKey {
            dep: dep.clone(),
            key: key.cloned(),
        };
        for (map, v) in [
            (&self.inner.remaining_requests, requests),
            (&self.inner.remaining_tokens, tokens),
        ] {
            if let Some(v) = v {
                match map.get(&rk) {
                    Some(g) => g.set(v),
                    None => map.entry(rk.clone()).or_default().set(v),
                }
            }
        }
    }

    /// The remaining-budget gauges of the caller's key and team, as LiteLLM computes them: the
    /// budget minus the spend known at auth plus this call's cost.
    fn budgets(&self, k: &KeyInfo, labels: Option<&Arc<KeyLabels>>, cost: f64) {
        if let Some(max) = k.key.limits.max_budget {
            let set = |g: &BudgetGauge| {
                let _ = g.alias.get_or_init(|| labels.and_then(|l| l.alias.clone()));
                g.max.set(max);
                g.remaining.set(max - (k.key.spend + cost));
            };
            match self.inner.key_budgets.get(&*k.token) {
                Some(g) => set(&g),
                None => set(&self.inner.key_budgets.entry(k.token.clone()).or_default()),
            }
        }
        if let (Some(team), Some(id)) = (&k.team, labels.and_then(|l| l.team.clone())) {
            if let Some(max) = team.limits.max_budget {
                let set = |g: &BudgetGauge| {
                    let _ = g.alias.get_or_init(|| None);
                    g.max.set(max);
                    g.remaining.set(max - (team.spend + cost));
                };
                match self.inner.team_budgets.get(&id) {
                    Some(g) => set(&g),
                    None => set(&self.inner.team_budgets.entry(id).or_default()),
                }
            }
        }
    }

    /// The series, copied out of the map (scrape time).
    pub(super) fn snapshot(&self) -> Vec<(SeriesKey, Arc<Series>)> {
        self.inner
            .series
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }
}

fn header_num(headers: &http::HeaderMap, name: &str) -> Option<f64> {
    headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// Sums `value` over the series that `labels` maps to the same label values.
pub(super) fn aggregate<'a, V: Default>(
    series: &'a [(SeriesKey, Arc<Series>)],
    keep: impl Fn(&SeriesKey) -> bool,
    labels: impl Fn(&'a SeriesKey) -> Vec<&'a str>,
    mut add: impl FnMut(&mut V, &Series),
) -> BTreeMap<Vec<&'a str>, V> {
    let mut out: BTreeMap<Vec<&str>, V> = BTreeMap::new();
    for (k, s) in series {
        if keep(k) {
            add(out.entry(labels(k)).or_default(), s);
        }
    }
    out
}

/// A histogram read from one series.
pub(super) fn hist(into: &mut HistogramSnapshot, h: &Histogram) {
    h.add_into(into);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::{callbacks::CallRecord, provider::Deployment, types::usage::TokenUsage};

    fn record(key: &Arc<KeyInfo>, status: u16, stream: bool) -> CallRecord {
        let dep = Arc::new(Deployment::new("g", "openai/gpt-4o-mini"));
        let ok = status == 200;
        CallRecord {
            call_id: "c".into(),
            operation: "chat",
            route: "/chat/completions",
            model_group: "g".into(),
            deployment: ok.then(|| dep.clone()),
            provider: Some("openai".into()),
            api_base: None,
            key: Some(key.clone()),
            end_user: None,
            stream,
            status: if ok {
                CallStatus::Success
            } else {
                CallStatus::Failure
            },
            http_status: status,
            error_class: (!ok).then_some("rate_limit"),
            error_message: None,
            usage: if ok {
                TokenUsage::new(5, 7)
            } else {
                TokenUsage::default()
            },
            cost: if ok { 0.5 } else { 0.0 },
            total_latency: Duration::from_millis(300),
            upstream_latency: Some(Duration::from_millis(200)),
            time_to_first_token: stream.then_some(Duration::from_millis(40)),
            overhead: Some(Duration::from_millis(100)),
            cache_hit: false,
            retries: 0,
            fallbacks: 0,
            key_limits: None,
            team_limits: None,
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            messages: None,
            response_text: None,
        }
    }

    fn sample<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn series_sum_onto_each_metrics_labels() {
        let m = Metrics::new();
        let mut k = KeyInfo {
            token: "abc".into(),
            key_alias: Some("alpha".into()),
            ..KeyInfo::default()
        };
        k.key.limits.max_budget = Some(10.0);
        k.key.spend = 2.0;
        let k = Arc::new(k);
        m.record(&record(&k, 200, false));
        m.record(&record(&k, 200, true));
        m.record(&record(&k, 429, false));
        let text = m.render();
        // Three calls, in two status series.
        let total = sample(&text, "litellm_proxy_total_requests_metric_total{");
        assert_eq!(total.len(), 2, "{text}");
        assert!(total
            .iter()
            .any(|l| l.contains("status_code=\"200\"") && l.ends_with(" 2.0")));
        let failed = sample(&text, "litellm_proxy_failed_requests_metric_total{");
        assert_eq!(failed.len(), 1);
        assert!(failed[0].contains("exception_status=\"429\",exception_class=\"rate_limit\""));
        // Successes only: 2 × 12 tokens, 2 × 0.5 USD.
        assert_eq!(
            sample(&text, "litellm_total_tokens_metric_total{"),
            ["litellm_total_tokens_metric_total{end_user=\"\",hashed_api_key=\"abc\",api_key_alias=\"alpha\",model=\"gpt-4o-mini\",team=\"\",team_alias=\"\",user=\"\",user_email=\"\",requested_model=\"g\"} 24.0"]
        );
        assert!(sample(&text, "litellm_spend_metric_total{")[0].ends_with(" 1.0"));
        // Histograms: cumulative buckets, LiteLLM's `le` spelling, count and sum.
        assert!(text.contains("litellm_llm_api_time_to_first_token_metric_bucket{model=\"gpt-4o-mini\",hashed_api_key=\"abc\",api_key_alias=\"alpha\",team=\"\",team_alias=\"\",le=\"0.05\"} 1"));
        assert!(text.contains("litellm_request_total_latency_metric_bucket{end_user=\"\",hashed_api_key=\"abc\",api_key_alias=\"alpha\",requested_model=\"g\",team=\"\",team_alias=\"\",user=\"\",model=\"gpt-4o-mini\",le=\"0.1\"} 0"));
        assert!(text.contains("le=\"0.5\"} 2"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert!(text.contains("litellm_request_total_latency_metric_count{end_user=\"\",hashed_api_key=\"abc\",api_key_alias=\"alpha\",requested_model=\"g\",team=\"\",team_alias=\"\",user=\"\",model=\"gpt-4o-mini\"} 2"));
        // Budget: 10 − (2 + 0) after the failure (cost 0) was recorded last.
        assert!(text.contains("litellm_remaining_api_key_budget_metric{hashed_api_key=\"abc\",api_key_alias=\"alpha\"} 8.0"), "{text}");
        assert!(text.contains("litellm_api_key_max_budget_metric{hashed_api_key=\"abc\",api_key_alias=\"alpha\"} 10.0"));
    }

    #[test]
    fn latency_per_output_token_is_the_upstreams_share_or_the_first_token_over_output_tokens() {
        let m = Metrics::new();
        let k = Arc::new(KeyInfo {
            token: "h".into(),
            ..KeyInfo::default()
        });
        // 200 ms upstream / 7 tokens ≈ 0.0286 s (le=0.05); a stream: 40 ms / 7 ≈ 0.0057 (le=0.01).
        m.record(&record(&k, 200, false));
        m.record(&record(&k, 200, true));
        m.record(&record(&k, 500, false));
        let text = m.render();
        let name = "litellm_deployment_latency_per_output_token";
        assert!(text.contains(&format!("# TYPE {name} histogram")));
        let id = Deployment::new("g", "openai/gpt-4o-mini").id;
        let labels = format!("litellm_model_name=\"gpt-4o-mini\",model_id=\"{id}\",api_base=\"\",api_provider=\"openai\",hashed_api_key=\"h\",api_key_alias=\"\",team=\"\",team_alias=\"\"");
        let bucket = |le: &str| {
            let prefix = format!("{name}_bucket{{{labels},le=\"{le}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .map(str::to_owned)
        };
        // prometheus_client's default buckets, not LiteLLM's latency ones.
        assert_eq!(bucket("0.005").as_deref(), Some("0"), "{text}");
        assert_eq!(bucket("0.01").as_deref(), Some("1"));
        assert_eq!(bucket("0.05").as_deref(), Some("2"));
        assert_eq!(bucket("0.075").as_deref(), Some("2"));
        assert_eq!(bucket("+Inf").as_deref(), Some("2"));
        assert_eq!(bucket("0.00625"), None);
        assert!(text.contains(&format!("{name}_count{{{labels}}} 2")));
    }

    #[test]
    fn refused_calls_count_in_total_and_failed_requests_only() {
        let m = Metrics::new();
        m.refused("/chat/completions", 401, "authentication");
        m.refused("/chat/completions", 401, "authentication");
        m.refused("/embeddings", 400, "bad_request");
        let text = m.render();
        assert!(text.contains("litellm_proxy_total_requests_metric_total{end_user=\"\",hashed_api_key=\"\",api_key_alias=\"\",requested_model=\"\",team=\"\",team_alias=\"\",user=\"\",status_code=\"401\",user_email=\"\",route=\"/chat/completions\"} 2.0"), "{text}");
        assert!(text.contains("litellm_proxy_failed_requests_metric_total{end_user=\"\",hashed_api_key=\"\",api_key_alias=\"\",requested_model=\"\",team=\"\",team_alias=\"\",user=\"\",user_email=\"\",exception_status=\"400\",exception_class=\"bad_request\",route=\"/embeddings\"} 1.0"));
        // Not a call of a model: no success counters, no latency.
        assert!(sample(&text, "litellm_requests_metric_total{").is_empty());
        assert!(sample(&text, "litellm_request_total_latency_metric_count{").is_empty());
    }

    #[test]
    fn key_and_team_rate_limit_gauges_come_from_the_limit_report_not_the_headers() {
        let m = Metrics::new();
        let mut k = KeyInfo {
            token: "h1".into(),
            key_alias: Some("alpha".into()),
            team_id: Some("t1".into()),
            ..KeyInfo::default()
        };
        k.team = Some(crate::auth::Scope {
            id: "t1".into(),
            ..Default::default()
        });
        let k = Arc::new(k);
        let mut r = record(&k, 200, false);
        r.key_limits = Some(ScopeLimits {
            rpm: Some(10),
            remaining_requests: Some(7),
            tpm: Some(1000),
            remaining_tokens: Some(640),
        });
        r.team_limits = Some(ScopeLimits {
            rpm: Some(4),
            remaining_requests: Some(1),
            ..ScopeLimits::default()
        });
        m.record(&r);
        let text = m.render();
        assert!(text.contains("# TYPE litellm_remaining_api_key_requests_for_model gauge"));
        assert_eq!(
            sample(&text, "litellm_remaining_api_key_requests_for_model{"),
            ["litellm_remaining_api_key_requests_for_model{hashed_api_key=\"h1\",api_key_alias=\"alpha\",model=\"g\"} 7.0"]
        );
        assert_eq!(
            sample(&text, "litellm_remaining_api_key_tokens_for_model{"),
            ["litellm_remaining_api_key_tokens_for_model{hashed_api_key=\"h1\",api_key_alias=\"alpha\",model=\"g\"} 640.0"]
        );
        assert_eq!(
            sample(&text, "litellm_remaining_team_requests_for_model{"),
            ["litellm_remaining_team_requests_for_model{team=\"t1\",team_alias=\"\",model=\"g\"} 1.0"]
        );
        assert_eq!(
            sample(&text, "litellm_team_rpm_limit{"),
            ["litellm_team_rpm_limit{team=\"t1\",team_alias=\"\",model=\"g\"} 4.0"]
        );
        // The team has no tpm limit: no tokens series.
        assert!(sample(&text, "litellm_remaining_team_tokens_for_model{").is_empty());
        assert!(sample(&text, "litellm_team_tpm_limit{").is_empty());
        // The gateway's numbers never reach the provider gauges.
        assert!(
            sample(&text, "litellm_remaining_requests{").is_empty(),
            "{text}"
        );
        // A later call moves the gauge.
        r.key_limits = Some(ScopeLimits {
            rpm: Some(10),
            remaining_requests: Some(6),
            ..ScopeLimits::default()
        });
        r.team_limits = None;
        m.record(&r);
        assert!(
            sample(&m.render(), "litellm_remaining_api_key_requests_for_model{")[0]
                .ends_with(" 6.0")
        );
    }

    #[test]
    fn provider_headers_feed_the_provider_gauges_per_deployment() {
        let m = Metrics::new();
        let dep = Arc::new(DeploymentLabels {
            model_group: "g".into(),
            model: "gpt-4o-mini".into(),
            model_id: "d1".into(),
            api_base: Some("http://up/v1".into()),
            provider: "openai".into(),
        });
        let mut h = http::HeaderMap::new();
        h.insert("x-ratelimit-remaining-requests", "99".parse().unwrap());
        h.insert("x-ratelimit-remaining-tokens", "nonsense".parse().unwrap());
        m.provider_remaining(&dep, None, &h);
        let text = m.render();
        assert_eq!(
            sample(&text, "litellm_remaining_requests{"),
            ["litellm_remaining_requests{model_group=\"g\",api_provider=\"openai\",api_base=\"http://up/v1\",litellm_model_name=\"gpt-4o-mini\",hashed_api_key=\"\",api_key_alias=\"\"} 99.0"]
        );
        assert!(sample(&text, "litellm_remaining_tokens{").is_empty());
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        let k = KeyInfo {
            token: "t".into(),
            key_alias: Some("a\"b\\c\nd".into()),
            ..KeyInfo::default()
        };
        m.record(&record(&Arc::new(k), 200, false));
        assert!(m.render().contains("api_key_alias=\"a\\\"b\\\\c\\nd\""));
    }
}
