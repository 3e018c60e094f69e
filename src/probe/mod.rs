//! Health probes: is each deployment reachable with its credentials, at the lowest cost the
//! provider allows. What `GET /health` answers (see `docs/operations.md`, "Health").
//!
//! Each deployment gets its provider's cheapest probe (`plan`):
//!
//! | provider | probe | cost |
//! | --- | --- | --- |
//! | OpenAI and OpenAI-compatible hosts | `GET {api_base}/models` | free |
//! | Anthropic | `GET /v1/models` | free |
//! | Gemini (AI Studio) | `models.list` (`GET /v1beta/models?pageSize=1`) | free |
//! | Ollama | `GET /api/tags` | free |
//! | Azure OpenAI | `GET {endpoint}/openai/models?api-version=…` | free |
//! | Bedrock, Vertex AI, Cohere, custom providers | chat with `max_tokens: 1` (`mode: embedding`: one word; `mode: rerank`: a one-document rerank) | one short prompt, one output token |
//! | Jina AI, Voyage, Infinity (rerank only) | a one-document rerank | one query |
//! | `mock` | a chat answered in process | free |
//!
//! The probes of all deployments run at once, each under a timeout (`model_info.health_check_timeout`,
//! else the prober's, 60 s as in LiteLLM); one that does not answer in time is unhealthy with
//! LiteLLM's error text `Timeout exceeded`. A probe never streams and never asks for more than
//! one output token, whatever the model (a reasoning model is asked through its model list, or
//! with `max_tokens: 1`).
//!
//! In the background ([`Prober::start`]) the probes run every `health_check_interval` and
//! `/health` answers the last report at once. With `cool_failed` on, a deployment whose probe
//! fails is cooled down in the router (its [`HealthCell`](crate::health::HealthCell)) until the
//! next probe, which lifts that cooldown when it succeeds; the only deployment of a group is never
//! cooled (as the router's own cooldowns).

mod plan;

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use serde_json::{json, Map, Value};
use tower::ServiceExt as _;

use crate::{
    error::{BoxError, LlmError},
    provider::{Deployment, Providers},
    router::{LiveRouter, Router},
    secret::redact_url,
    types::{
        chat::{ChatRequest, Message},
        embeddings::{EmbeddingInput, EmbeddingsRequest},
        LlmRequest,
    },
};

/// LiteLLM's `HEALTH_CHECK_TIMEOUT_SECONDS`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// LiteLLM's default `health_check_interval` (seconds).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// The most of an upstream error body an `error` text quotes.
const ERROR_SNIPPET: usize = 300;

/// A probe's HTTP call: status and (at most 64 KiB of) body.
pub type ProbeFuture =
    Pin<Box<dyn Future<Output = Result<(http::StatusCode, Bytes), BoxError>> + Send>>;

/// The HTTP client model-list probes go through (the gateway's upstream client, type-erased).
pub type ProbeClient = Arc<dyn Fn(http::Request<Full<Bytes>>) -> ProbeFuture + Send + Sync>;

/// `client` (any upstream client service) as a [`ProbeClient`].
pub fn probe_client<C, B>(client: &C) -> ProbeClient
where
    C: crate::upstream::UpstreamClient<B>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let client = client.clone();
    Arc::new(move |req| {
        let client = client.clone();
        Box::pin(async move {
            let resp = client.oneshot(req).await.map_err(Into::into)?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), 64 << 10)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            Ok((status, body))
        })
    })
}

/// One deployment's probe result.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The deployment probed.
    pub deployment: Arc<Deployment>,
    /// Which probe ran (`GET /v1/models`, `chat (max_tokens 1)`, …).
    pub probe: &'static str,
    /// `None` when healthy; else why not (credentials never quoted).
    pub error: Option<String>,
    /// How long the probe took.
    pub latency: Duration,
    /// Whether this probe cooled the deployment down.
    pub cooled: bool,
}

impl Outcome {
    /// Whether the deployment answered.
    #[must_use]
    pub fn healthy(&self) -> bool {
        self.error.is_none()
    }

    /// The endpoint as LiteLLM lists it: the deployment's `litellm_params` without secrets (the
    /// key masked), plus `error` when unhealthy.
    #[must_use]
    pub fn endpoint(&self) -> Value {
        let mut v = display_params(&self.deployment);
        v.insert("model_name".into(), (*self.deployment.model_group).into());
        v.insert("model_id".into(), (*self.deployment.id).into());
        v.insert("health_check_method".into(), self.probe.into());
        v.insert(
            "latency_ms".into(),
            u64::try_from(self.latency.as_millis())
                .unwrap_or(u64::MAX)
                .into(),
        );
        if let Some(e) = &self.error {
            v.insert("error".into(), e.clone().into());
        }
        Value::Object(v)
    }
}

/// A deployment's `litellm_params` for display: `model` as configured, `api_base` without
/// credentials, `api_key` masked, other secret-looking params masked.
#[must_use]
pub fn display_params(dep: &Deployment) -> Map<String, Value> {
    let mut v = Map::new();
    v.insert(
        "model".into(),
        format!("{}/{}", dep.provider, dep.model).into(),
    );
    if let Some(base) = &dep.api_base {
        v.insert("api_base".into(), redact_url(base).into());
    }
    if let Some(key) = dep.api_key.as_ref().filter(|k| !k.is_empty()) {
        v.insert("api_key".into(), key.masked().into());
    }
    if let Some(version) = &dep.api_version {
        v.insert("api_version".into(), version.clone().into());
    }
    let num = |x: Option<u64>| x.map(Value::from);
    for (k, x) in [("rpm", num(dep.rpm)), ("tpm", num(dep.tpm))] {
        if let Some(x) = x {
            v.insert(k.into(), x);
        }
    }
    if let Some(t) = dep.timeout {
        v.insert("timeout".into(), t.as_secs_f64().into());
    }
    for (k, x) in &dep.params {
        let secret = is_secret_name(k);
        v.insert(
            k.clone(),
            match x {
                Value::String(s) if secret => crate::secret::mask(s).into(),
                _ if secret => "*****".into(),
                other => other.clone(),
            },
        );
    }
    v
}

/// Whether a parameter name looks like it holds a credential.
#[must_use]
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["key", "secret", "token", "password", "credential", "auth"]
        .iter()
        .any(|w| n.contains(w))
}

/// Every probe of one run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// One outcome per deployment, in table order.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// LiteLLM's `/health` answer: `healthy_endpoints`, `unhealthy_endpoints`, `healthy_count`,
    /// `unhealthy_count`, for the deployments `keep` keeps.
    #[must_use]
    pub fn to_json(&self, keep: &dyn Fn(&Deployment) -> bool) -> Value {
        let (healthy, unhealthy): (Vec<&Outcome>, Vec<&Outcome>) = self
            .outcomes
            .iter()
            .filter(|o| keep(&o.deployment))
            .partition(|o| o.healthy());
        json!({
            "healthy_endpoints": healthy.iter().map(|o| o.endpoint()).collect::<Vec<_>>(),
            "unhealthy_endpoints": unhealthy.iter().map(|o| o.endpoint()).collect::<Vec<_>>(),
            "healthy_count": healthy.len(),
            "unhealthy_count": unhealthy.len(),
        })
    }
}

/// Whether `dep` is what `/health?model=` asks for: LiteLLM matches `litellm_params.model`
/// first, then the model group.
#[must_use]
pub fn matches_model(deps: &[Arc<Deployment>], model: &str) -> Vec<Arc<str>> {
    let by_model: Vec<Arc<str>> = deps
        .iter()
        .filter(|d| format!("{}/{}", d.provider, d.model) == model)
        .map(|d| d.id.clone())
        .collect();
    if !by_model.is_empty() {
        return by_model;
    }
    deps.iter()
        .filter(|d| &*d.model_group == model)
        .map(|d| d.id.clone())
        .collect()
}

/// Runs the probes. Cheap to clone.
#[derive(Clone)]
pub struct Prober {
    inner: Arc<Inner>,
}

struct Inner {
    router: LiveRouter,
    client: ProbeClient,
    providers: Providers,
    timeout: Duration,
    cool_failed: bool,
    interval: Duration,
    last: ArcSwapOption<Report>,
    background: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for Prober {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prober")
            .field("timeout", &self.inner.timeout)
            .field("interval", &self.inner.interval)
            .field("cool_failed", &self.inner.cool_failed)
            .finish_non_exhaustive()
    }
}

impl Prober {
    /// Probes the deployments `router` serves (at the time of each run), model lists through
    /// `client`, other probes through each deployment's stack. `providers` says which prefixes
    /// are built in (custom providers get a 1-token call).
    #[must_use]
    pub fn new(router: LiveRouter, client: ProbeClient, providers: Providers) -> Self {
        Self {
            inner: Arc::new(Inner {
                router,
                client,
                providers,
                timeout: DEFAULT_TIMEOUT,
                cool_failed: false,
                interval: DEFAULT_INTERVAL,
                last: ArcSwapOption::empty(),
                background: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut Inner)) -> Self {
        let old = &self.inner;
        let mut inner = Inner {
            router: old.router.clone(),
            client: old.client.clone(),
            providers: old.providers.clone(),
            timeout: old.timeout,
            cool_failed: old.cool_failed,
            interval: old.interval,
            last: ArcSwapOption::new(old.last.load_full()),
            background: std::sync::atomic::AtomicBool::new(false),
        };
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The time each probe may take (default 60 s; a deployment's
    /// `model_info.health_check_timeout` wins).
    #[must_use]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with(|i| i.timeout = timeout)
    }

    /// How often background probes run (default 300 s, LiteLLM's `health_check_interval`).
    #[must_use]
    pub fn interval(self, interval: Duration) -> Self {
        self.with(|i| i.interval = interval.max(Duration::from_millis(100)))
    }

    /// Whether a failed background probe cools the deployment down until the next probe.
    #[must_use]
    pub fn cool_failed(self, on: bool) -> Self {
        self.with(|i| i.cool_failed = on)
    }

    /// Whether probes run in the background ([`Prober::start`] was called).
    #[must_use]
    pub fn is_background(&self) -> bool {
        self.inner
            .background
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The last background report (`None` before the first run ends).
    #[must_use]
    pub fn last(&self) -> Option<Arc<Report>> {
        self.inner.last.load_full()
    }

    /// Starts the background probes on the current tokio runtime: one run now, then one every
    /// interval, until the last handle of this prober is dropped. Without a runtime, nothing
    /// starts and `false` is returned.
    pub fn start(&self) -> bool {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        self.inner
            .background
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let every = self.inner.interval;
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let prober = Self { inner };
                let report = prober.run_cooling(None).await;
                prober.inner.last.store(Some(Arc::new(report)));
            }
        });
        true
    }

    /// Probes the deployments whose ids are in `only` (all when `None`), in parallel.
    pub async fn run(&self, only: Option<&[Arc<str>]>) -> Report {
        let router = self.inner.router.current();
        let deps: Vec<Arc<Deployment>> = router
            .all_deployments()
            .filter(|d| only.is_none_or(|ids| ids.contains(&d.id)))
            .cloned()
            .collect();
        let runs = deps.iter().map(|d| self.probe(&router, d.clone()));
        Report {
            outcomes: futures_util::future::join_all(runs).await,
        }
    }

    /// [`Prober::run`], then the cooldowns of a background run.
    async fn run_cooling(&self, only: Option<&[Arc<str>]>) -> Report {
        let mut report = self.run(only).await;
        let router = self.inner.router.current();
        let previous = self.last();
        let cooled_before = |id: &str| {
            previous.as_ref().is_some_and(|r| {
                r.outcomes
                    .iter()
                    .any(|o| o.cooled && &*o.deployment.id == id)
            })
        };
        for o in &mut report.outcomes {
            let Some(cell) = router.health(&o.deployment.id) else {
                continue;
            };
            if o.healthy() {
                if cooled_before(&o.deployment.id) {
                    cell.clear();
                }
            } else if self.inner.cool_failed
                && router.deployments(&o.deployment.model_group).count() > 1
            {
                // Until the next probe has had its time to answer.
                cell.cool_down(self.inner.interval + self.inner.timeout);
                o.cooled = true;
            }
        }
        report
    }

    /// One deployment's probe, under its timeout.
    async fn probe(&self, router: &Router, dep: Arc<Deployment>) -> Outcome {
        let timeout = dep
            .model_info
            .get("health_check_timeout")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite() && *t > 0.0 && *t < 1e6)
            .map_or(self.inner.timeout, Duration::from_secs_f64);
        let builtin = crate::provider::known_prefixes().any(|p| p == &*dep.provider)
            && !self.inner.providers.is_custom(&dep.provider);
        let started = Instant::now();
        let (probe, result) = match plan::plan(&dep, builtin) {
            plan::Plan::Broken(e) => ("none", Err(e.message().to_owned())),
            plan::Plan::List { name, request } => {
                let call = (self.inner.client)(*request);
                let result = match tokio::time::timeout(timeout, call).await {
                    Err(_) => Err("Timeout exceeded".to_owned()),
                    Ok(Err(e)) => Err(format!("cannot reach the provider: {e}")),
                    Ok(Ok((status, _))) if status.is_success() => Ok(()),
                    Ok(Ok((status, body))) => Err(format!(
                        "{} from the provider: {}",
                        status.as_u16(),
                        snippet(&body)
                    )),
                };
                (name, result)
            }
            plan::Plan::Call => {
                let mode = dep.model_info.get("mode").and_then(Value::as_str);
                let embedding = mode == Some("embedding");
                // Rerank-only providers, and `mode: rerank` (as LiteLLM's health check reads it).
                let rerank = mode == Some("rerank")
                    || matches!(&*dep.provider, "jina_ai" | "voyage" | "infinity");
                let name = if embedding {
                    "embedding (one word)"
                } else if rerank {
                    "rerank (one document)"
                } else {
                    "chat (max_tokens 1)"
                };
                let result = match service_for(router, &dep) {
                    Err(e) => Err(e),
                    Ok(svc) => {
                        let req = if rerank {
                            rerank_probe(&dep)
                        } else {
                            probe_request(&dep, embedding)
                        };
                        match tokio::time::timeout(timeout, svc.oneshot(req)).await {
                            Err(_) => Err("Timeout exceeded".to_owned()),
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err(e)) => Err(error_text(&e)),
                        }
                    }
                };
                (name, result)
            }
        };
        let error = result.err().map(|e| scrub(&e, &dep));
        Outcome {
            deployment: dep,
            probe,
            error,
            latency: started.elapsed(),
            cooled: false,
        }
    }
}

/// The deployment's stack; a wildcard deployment's made for `model_info.health_check_model`.
fn service_for(
    router: &Router,
    dep: &Arc<Deployment>,
) -> Result<crate::router::DeploymentService, String> {
    let concrete = if dep.model_group.contains('*') || dep.model.contains('*') {
        let Some(model) = dep
            .model_info
            .get("health_check_model")
            .and_then(Value::as_str)
        else {
            return Err(
                "a wildcard deployment is probed with model_info.health_check_model; none is set"
                    .to_owned(),
            );
        };
        let (provider, upstream) = crate::provider::split_provider(model);
        let mut d = (**dep).clone();
        d.provider = provider.into();
        d.model = upstream.into();
        Some(Arc::new(d))
    } else {
        None
    };
    router
        .deployment_service(&dep.id, concrete)
        .ok_or_else(|| "the deployment is no longer served".to_owned())
}

/// The 1-token chat (or one-word embedding) a probe sends.
fn probe_request(dep: &Deployment, embedding: bool) -> LlmRequest {
    if embedding {
        return LlmRequest::embeddings(EmbeddingsRequest {
            model: dep.model_group.to_string(),
            input: EmbeddingInput::One("ping".to_owned()),
            ..EmbeddingsRequest::default()
        });
    }
    LlmRequest::chat(ChatRequest {
        model: dep.model_group.to_string(),
        messages: vec![Message::new("user", "ping")],
        max_tokens: Some(1),
        ..ChatRequest::default()
    })
}

/// The one-document rerank a rerank deployment's probe sends.
fn rerank_probe(dep: &Deployment) -> LlmRequest {
    LlmRequest::new(crate::types::Operation::Rerank(std::sync::Arc::new(
        crate::types::rerank::RerankRequest {
            model: dep.model_group.to_string(),
            query: "ping".to_owned(),
            documents: vec![crate::types::rerank::RerankDocument::Text(
                "ping".to_owned(),
            )],
            top_n: Some(1),
            ..crate::types::rerank::RerankRequest::default()
        },
    )))
}

fn error_text(e: &LlmError) -> String {
    format!("{}: {}", e.status().as_u16(), e.message())
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(ERROR_SNIPPET) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// `text` with the deployment's key (if an upstream echoed it) masked.
fn scrub(text: &str, dep: &Deployment) -> String {
    match dep.api_key.as_ref().filter(|k| k.expose().len() >= 4) {
        Some(k) if text.contains(k.expose()) => text.replace(k.expose(), &k.masked()),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_for_display() {
        let mut d = Deployment::new("g", "openai/gpt-4o");
        d.api_key = Some(crate::secret::Secret::new("sk-abcdefghijklmnop"));
        d.api_base = Some("https://user:pw@host/v1?key=zzz".into());
        d.params
            .insert("aws_secret_access_key".into(), "AKIASECRETSECRET".into());
        d.params.insert("temperature".into(), 0.5.into());
        let v = display_params(&d);
        assert_eq!(v["api_key"], "sk-…op");
        assert_eq!(v["api_base"], "https://host/v1?key=*****");
        assert_eq!(v["aws_secret_access_key"], "AKI…ET");
        assert_eq!(v["temperature"], 0.5);
        let text = serde_json::to_string(&v).unwrap();
        assert!(!text.contains("abcdefghijklmnop") && !text.contains("SECRETSECRET"));
    }

    #[test]
    fn an_echoed_key_is_scrubbed_from_errors() {
        let mut d = Deployment::new("g", "openai/gpt-4o");
        d.api_key = Some(crate::secret::Secret::new("sk-abcdefghijklmnop"));
        let e = scrub("401: bad key sk-abcdefghijklmnop", &d);
        assert_eq!(e, "401: bad key sk-…op");
    }

    #[test]
    fn model_filter_matches_the_model_then_the_group() {
        let a = Arc::new(Deployment::new("chat", "openai/gpt-4o"));
        let b = Arc::new(Deployment::new("gpt-4o", "anthropic/claude"));
        let deps = [a.clone(), b.clone()];
        assert_eq!(
            matches_model(&deps, "openai/gpt-4o"),
            std::slice::from_ref(&a.id)
        );
        assert_eq!(matches_model(&deps, "gpt-4o"), std::slice::from_ref(&b.id));
        assert_eq!(matches_model(&deps, "chat"), std::slice::from_ref(&a.id));
        assert!(matches_model(&deps, "nope").is_empty());
    }
}
