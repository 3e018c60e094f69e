//! Model groups and their deployments: picks the deployment that serves a request.
//!
//! A [`Router`] holds the deployment table (the sanctioned box: each deployment is a
//! `BoxCloneSyncService` stack of its own, usually [`health`](crate::health) →
//! [`timeout`](crate::timeout) → provider). It answers `GET /v1/models` with the groups it serves and
//! turns an unknown model into [`ErrorKind::NotFound`] naming the model and the models available.
//!
//! # Picking a deployment
//!
//! Filters run in LiteLLM's order, each on what the previous one left:
//!
//! 1. **Model name**: the group named `model`; else a `model_group_alias`; else the first wildcard
//!    group whose pattern matches (`openai/*`, `claude-*`, `*`; more literal characters first).
//!    A wildcard deployment calls the upstream model the request named: `model_name: openai/*` with
//!    `model: openai/*` serves `openai/gpt-4o` as `gpt-4o` on OpenAI.
//! 2. **Cooldown**: deployments cooling down ([`HealthCell`]) are skipped. When all are, the
//!    client gets 429 with `retry-after` (the shortest remaining cooldown) and a message naming the
//!    group. Deployments that already failed this request (see [`RouteLog`]) are skipped while
//!    others remain.
//! 3. **Context window** (`enable_pre_call_checks`): deployments whose `model_info.max_input_tokens`
//!    is below the request's estimated prompt tokens (characters / 4) are skipped; when none is left
//!    the error is [`ErrorKind::ContextWindowExceeded`], so `context_window_fallbacks` apply.
//!    The gateway fills `max_input_tokens` in from the price table when the config does not set
//!    it (see [`PriceTable::context_window`](crate::cost::PriceTable::context_window)).
//! 4. **Tags** (`enable_tag_filtering`): a request's `tags` (or `metadata.tags`) keep the
//!    deployments having all of them (any of them with `tag_filtering_match_any`); without a match,
//!    or without request tags, deployments tagged `default` serve; else 400.
//! 5. **Usage** (`usage-based-routing-v2`, or any strategy with pre-call checks): deployments at
//!    their `rpm` / `tpm` for the current minute are skipped; when none is left the client gets 429.
//! 6. **Order**: only the lowest `order` tier is used while any of it is healthy.
//! 7. **Concurrency**: deployments with a free `max_parallel_requests` permit are preferred; when
//!    none has one, the request waits for the picked deployment's permit (as LiteLLM's semaphore).
//! 8. **Strategy** ([`Strategy`]).
//!
//! The pick reads atomics only: no lock, no await. With Redis configured
//! ([`RouterBuilder::redis`]), one pipelined Redis read refreshes the group's cooldowns, in-flight
//! and usage counts before the pick, and an `rpm` reservation is an atomic `INCR`.
//!
//! A test request ([`is_test_request`](crate::health::is_test_request): it carries
//! `mock_response`) is routed like any other, but reserves no `rpm` and records neither tokens
//! nor latency: it says nothing about the deployment.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use llmgate::{provider::Deployment, router::Router, LlmRequest, LlmResponse, LlmError};
//! use llmgate::types::chat::{ChatRequest, ChatResponse, Message};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let answer = |_req: LlmRequest| async { Ok::<_, LlmError>(LlmResponse::chat(ChatResponse::default())) };
//! let router = Router::builder()
//!     .deployment(Arc::new(Deployment::new("gpt", "openai/gpt-4o")), tower::service_fn(answer))
//!     .deployment(Arc::new(Deployment::new("gpt", "azure/gpt-4o")), tower::service_fn(answer))
//!     .build();
//! let req = LlmRequest::chat(ChatRequest {
//!     model: "gpt".into(),
//!     messages: vec![Message::new("user", "hi")],
//!     ..ChatRequest::default()
//! });
//! let resp = router.oneshot(req).await.unwrap();
//! # let _ = resp;
//! # }
//! ```
//!
//! Customised: least-busy routing with pre-call checks and an alias.
//!
//! ```
//! use llmgate::router::{Router, Strategy};
//! let builder = Router::builder()
//!     .strategy(Strategy::LeastBusy)
//!     .pre_call_checks(true)
//!     .alias("gpt-4", "gpt-4o", false);
//! # let _ = builder.build();
//! ```
//!
//! Extensions read: [`RouteLog`] (written by the [retry layer](crate::retry)). Extensions written:
//! [`SelectedDeployment`]. Errors produced: [`ErrorKind::NotFound`], [`ErrorKind::RateLimit`] (all
//! cooling / at their limits), [`ErrorKind::ContextWindowExceeded`], [`ErrorKind::BadRequest`]
//! (no deployment for the tags).

mod shared;
mod state;
mod strategy;

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::sync::OwnedSemaphorePermit;
use tower::util::BoxCloneSyncService;
use tower_service::Service;

pub use self::strategy::{Strategy, UnknownStrategy};
use self::{
    shared::Shared,
    state::{DeploymentState, TIMEOUT_PENALTY},
};
use crate::{
    error::{ErrorKind, LlmError},
    health::HealthCell,
    provider::{split_provider, Deployment},
    types::{
        models::ModelList, ChatStream, ChunkBody, LlmRequest, LlmResponse, Operation, ResponseBody,
    },
};

/// A deployment's model-level stack, boxed once.
pub type DeploymentService = BoxCloneSyncService<LlmRequest, LlmResponse, LlmError>;

/// Builds the stack of a wildcard deployment for the concrete model a request names.
pub type MakeDeploymentService = Arc<dyn Fn(Arc<Deployment>) -> DeploymentService + Send + Sync>;

pub use crate::types::extensions::{
    AttemptLog, AttemptLog as RouteLog, LastAttempt, SelectedDeployment,
};

enum EntryService {
    Fixed(DeploymentService),
    Pattern(MakeDeploymentService),
}

/// One deployment in the table.
pub(crate) struct Entry {
    pub(crate) deployment: Arc<Deployment>,
    pub(crate) state: DeploymentState,
    service: EntryService,
}

fn info_f64(dep: &Deployment, key: &str) -> Option<f64> {
    dep.model_info.get(key).and_then(serde_json::Value::as_f64)
}

impl Entry {
    /// Price per input + output token; unknown prices sort last.
    pub(crate) fn price(&self) -> f64 {
        let d = &self.deployment;
        let input = d
            .input_cost_per_token
            .or_else(|| info_f64(d, "input_cost_per_token"));
        let output = d
            .output_cost_per_token
            .or_else(|| info_f64(d, "output_cost_per_token"));
        match (input, output) {
            (None, None) => f64::INFINITY,
            (i, o) => i.unwrap_or(0.0) + o.unwrap_or(0.0),
        }
    }

    fn max_input_tokens(&self) -> Option<u64> {
        let d = &self.deployment;
        d.model_info
            .get("max_input_tokens")
            .or_else(|| d.model_info.get("max_tokens"))
            .and_then(serde_json::Value::as_u64)
    }
}

struct PatternGroup {
    name: String,
    prefix: String,
    suffix: String,
    entries: Vec<Arc<Entry>>,
}

impl PatternGroup {
    fn capture<'a>(&self, model: &'a str) -> Option<&'a str> {
        let rest = model.strip_prefix(self.prefix.as_str())?;
        let mid = rest.strip_suffix(self.suffix.as_str())?;
        (!mid.is_empty()).then_some(mid)
    }
}

/// Routing options (from `router_settings`).
#[derive(Clone, Debug, Default)]
struct Options {
    strategy: Strategy,
    pre_call_checks: bool,
    tag_filtering: bool,
    tag_match_any: bool,
}

struct Inner {
    groups: HashMap<String, Vec<Arc<Entry>>>,
    patterns: Vec<PatternGroup>,
    aliases: HashMap<String, String>,
    names: Arc<[String]>,
    listed: Vec<String>,
    options: Options,
    shared: Option<Shared>,
    created: u64,
}

/// Routes a request to a deployment of its model group. See the [module docs](self).
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("groups", &self.inner.names)
            .field("strategy", &self.inner.options.strategy)
            .field("shared", &self.inner.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Router`].
#[derive(Default)]
#[must_use]
pub struct RouterBuilder {
    entries: Vec<(Arc<Deployment>, EntryService)>,
    cells: HashMap<Arc<str>, Arc<HealthCell>>,
    aliases: Vec<(String, String, bool)>,
    options: Options,
    default_max_parallel: Option<u32>,
    shared: Option<Shared>,
}

impl fmt::Debug for RouterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterBuilder")
            .field("deployments", &self.entries.len())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RouterBuilder {
    /// Adds a deployment to its model group (`deployment.model_group`). A group whose name contains
    /// `*` is a wildcard group: use [`RouterBuilder::wildcard`] for it.
    pub fn deployment<S>(mut self, deployment: Arc<Deployment>, service: S) -> Self
    where
        S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.entries.push((
            deployment,
            EntryService::Fixed(BoxCloneSyncService::new(service)),
        ));
        self
    }

    /// Adds a wildcard deployment (`model_name: openai/*`): `make` builds its stack for the concrete
    /// deployment of each request (the upstream model replaced by what the `*` matched).
    pub fn wildcard(mut self, deployment: Arc<Deployment>, make: MakeDeploymentService) -> Self {
        self.entries.push((deployment, EntryService::Pattern(make)));
        self
    }

    /// The health cell of deployment `id`, shared by its [`HealthLayer`](crate::health::HealthLayer)
    /// and the router's cooldown filter. Call it before building the deployment's stack.
    pub fn health_cell(&mut self, id: &Arc<str>) -> Arc<HealthCell> {
        self.cells.entry(id.clone()).or_default().clone()
    }

    /// The strategy (default [`Strategy::SimpleShuffle`]).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.options.strategy = strategy;
        self
    }

    /// Context-window and usage checks before the pick (`enable_pre_call_checks`, default off).
    pub fn pre_call_checks(mut self, on: bool) -> Self {
        self.options.pre_call_checks = on;
        self
    }

    /// Tag routing (`enable_tag_filtering`, default off); `match_any` keeps deployments having any
    /// (rather than all) of the request's tags.
    pub fn tag_filtering(mut self, on: bool, match_any: bool) -> Self {
        self.options.tag_filtering = on;
        self.options.tag_match_any = match_any;
        self
    }

    /// Concurrency limit for deployments that set neither `max_parallel_requests`, `rpm` nor `tpm`.
    pub fn default_max_parallel_requests(mut self, n: Option<u32>) -> Self {
        self.default_max_parallel = n;
        self
    }

    /// `alias` names `group` (`model_group_alias`); hidden aliases are not listed in `/v1/models`.
    pub fn alias(
        mut self,
        alias: impl Into<String>,
        group: impl Into<String>,
        hidden: bool,
    ) -> Self {
        self.aliases.push((alias.into(), group.into(), hidden));
        self
    }

    /// Shares cooldowns, usage and in-flight counts through Redis at `url`
    /// (`redis://[:password@]host:port[/db]`). Must be called inside a tokio runtime. The
    /// connection is made on first use; while Redis is unreachable the router routes on its own
    /// state and logs a warning.
    ///
    /// # Errors
    ///
    /// The URL is invalid, or there is no tokio runtime.
    pub fn redis(&mut self, url: &str) -> Result<&mut Self, String> {
        self.shared = Some(Shared::open(url)?);
        Ok(self)
    }

    /// Builds the router.
    pub fn build(mut self) -> Router {
        let mut groups: HashMap<String, Vec<Arc<Entry>>> = HashMap::new();
        let mut patterns: Vec<PatternGroup> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let default_max = self.default_max_parallel;
        for (dep, service) in std::mem::take(&mut self.entries) {
            let cell = self.health_cell(&dep.id);
            let entry = Arc::new(Entry {
                state: DeploymentState::new(cell, max_parallel(&dep, default_max)),
                deployment: dep.clone(),
                service,
            });
            let name = dep.model_group.to_string();
            if !names.contains(&name) {
                names.push(name.clone());
            }
            match (name.split_once('*'), &entry.service) {
                (Some((prefix, suffix)), EntryService::Pattern(_)) => {
                    if let Some(p) = patterns.iter_mut().find(|p| p.name == name) {
                        p.entries.push(entry);
                    } else {
                        patterns.push(PatternGroup {
                            prefix: prefix.to_owned(),
                            suffix: suffix.replace('*', ""),
                            name,
                            entries: vec![entry],
                        });
                    }
                }
                _ => groups.entry(name).or_default().push(entry),
            }
        }
        // Most specific pattern first (more literal characters), config order among equals.
        patterns.sort_by_key(|p| std::cmp::Reverse(p.prefix.len() + p.suffix.len()));
        let mut listed = names.clone();
        let mut aliases = HashMap::new();
        for (alias, group, hidden) in self.aliases {
            if !hidden && !listed.contains(&alias) {
                listed.push(alias.clone());
            }
            aliases.insert(alias, group);
        }
        Router {
            inner: Arc::new(Inner {
                groups,
                patterns,
                aliases,
                names: names.into(),
                listed,
                options: self.options,
                shared: self.shared,
                created: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            }),
        }
    }
}

/// LiteLLM's `calculate_max_parallel_requests`: `max_parallel_requests`, else `rpm`, else
/// `tpm / 1000 / 6` (at least 1), else the default.
fn max_parallel(dep: &Deployment, default: Option<u32>) -> Option<u32> {
    if let Some(n) = dep.max_parallel_requests {
        return Some(n);
    }
    if let Some(rpm) = dep.rpm {
        return Some(u32::try_from(rpm).unwrap_or(u32::MAX));
    }
    if let Some(tpm) = dep.tpm {
        return Some(u32::try_from(tpm / 1000 / 6).unwrap_or(u32::MAX).max(1));
    }
    default
}

/// A rough prompt token count: 4 characters per token plus 4 per message (enough to keep a request
/// off a deployment whose window it clearly exceeds).
#[must_use]
pub fn estimate_prompt_tokens(req: &LlmRequest) -> u64 {
    match &req.op {
        Operation::Chat(c) => c
            .messages
            .iter()
            .map(|m| (m.text().chars().count() as u64).div_ceil(4) + 4)
            .sum(),
        Operation::Embeddings(e) => {
            let s = serde_json::to_string(&e.input).map_or(0, |s| s.len() as u64);
            s.div_ceil(4)
        }
        Operation::ListModels => 0,
    }
}

/// The request's tags: body `tags`, else `metadata.tags`.
fn request_tags(req: &LlmRequest) -> Vec<String> {
    let Some(chat) = req.as_chat() else {
        return Vec::new();
    };
    chat.extra
        .get_as::<Vec<String>>("tags")
        .or_else(|| {
            chat.metadata
                .as_ref()
                .and_then(|m| m.get("tags"))
                .and_then(|t| serde_json::from_value(t.clone()).ok())
        })
        .unwrap_or_default()
}

/// The picked deployment and its stack.
struct Selection {
    entry: Arc<Entry>,
    deployment: Arc<Deployment>,
}

impl Selection {
    fn service(&self) -> DeploymentService {
        match &self.entry.service {
            EntryService::Fixed(s) => s.clone(),
            EntryService::Pattern(make) => make(self.deployment.clone()),
        }
    }
}

fn next_minute_wait() -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(60 - now.as_secs() % 60)
}

impl Inner {
    fn resolve<'a>(
        &'a self,
        model: &'a str,
    ) -> Option<(&'a [Arc<Entry>], Option<&'a str>, &'a str)> {
        if let Some(v) = self.groups.get(model) {
            return Some((v, None, model));
        }
        let target = self.aliases.get(model).map_or(model, String::as_str);
        if let Some(v) = self.groups.get(target) {
            return Some((v, None, target));
        }
        self.patterns
            .iter()
            .find_map(|p| p.capture(target).map(|c| (&p.entries[..], Some(c), target)))
    }

    fn unknown_model(&self, model: &str) -> LlmError {
        let mut available = self.listed.join(", ");
        if available.is_empty() {
            available.push_str("none");
        }
        LlmError::new(
            ErrorKind::NotFound,
            format!(
                "The model `{model}` does not exist or you do not have access to it. Models available: {available}"
            ),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    fn usage_checks(&self) -> bool {
        self.options.pre_call_checks || self.options.strategy == Strategy::UsageBased
    }

    /// Runs the filters and the strategy (no await, no lock).
    fn select(&self, req: &LlmRequest, log: Option<&RouteLog>) -> Result<Selection, LlmError> {
        let model = req.model();
        let Some((entries, capture, group)) = self.resolve(model) else {
            return Err(self.unknown_model(model));
        };
        // While Redis is marked down, usage and rpm limits are this instance's own.
        let shared = self.shared.as_ref().is_some_and(|s| !s.breaker().is_open());
        // A test request (`mock_response`) is not counted toward the deployment's usage.
        let test = crate::health::is_test_request(req);
        let mut cands: Vec<&Entry> = entries.iter().map(AsRef::as_ref).collect();

        // Cooldown.
        let now = crate::health::now_ms();
        cands.retain(|e| !e.state.health.is_cooling_at(now));
        if cands.is_empty() {
            let wait = entries
                .iter()
                .filter_map(|e| e.state.health.cooling_for())
                .min()
                .unwrap_or(Duration::from_secs(1));
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(LlmError::new(
                ErrorKind::RateLimit,
                format!(
                    "No deployments available for selected model, Try again in {secs} seconds. Passed model={group}. All {} deployments of model group `{group}` are cooling down after failures.",
                    entries.len()
                ),
            )
            .with_code("no_deployments_available")
            .with_retry_after(wait));
        }
        // Deployments that already failed this request, while others remain.
        if let Some(log) = log {
            if cands.iter().any(|e| !log.has_failed(&e.deployment.id)) {
                cands.retain(|e| !log.has_failed(&e.deployment.id));
            }
        }

        // Context window.
        let prompt_tokens = if self.options.pre_call_checks || self.usage_checks() {
            estimate_prompt_tokens(req)
        } else {
            0
        };
        if self.options.pre_call_checks {
            let before = cands.len();
            cands.retain(|e| e.max_input_tokens().is_none_or(|max| prompt_tokens <= max));
            if cands.is_empty() && before > 0 {
                return Err(LlmError::new(
                    ErrorKind::ContextWindowExceeded,
                    format!(
                        "The request needs about {prompt_tokens} input tokens, more than any deployment of model group `{group}` accepts (model_info.max_input_tokens)"
                    ),
                )
                .with_param("messages"));
            }
        }

        // Tags.
        if self.options.tag_filtering {
            let tags = request_tags(req);
            let has = |e: &&Entry, t: &str| e.deployment.tags.iter().any(|d| d == t);
            let matching: Vec<&Entry> = if tags.is_empty() {
                Vec::new()
            } else if self.options.tag_match_any {
                cands
                    .iter()
                    .copied()
                    .filter(|e| tags.iter().any(|t| has(e, t)))
                    .collect()
            } else {
                cands
                    .iter()
                    .copied()
                    .filter(|e| tags.iter().all(|t| has(e, t)))
                    .collect()
            };
            if !matching.is_empty() {
                cands = matching;
            } else {
                let defaults: Vec<&Entry> = cands
                    .iter()
                    .copied()
                    .filter(|e| has(e, "default"))
                    .collect();
                if !defaults.is_empty() {
                    cands = defaults;
                } else if !tags.is_empty() {
                    return Err(LlmError::bad_request(format!(
                        "No deployment of model group `{group}` has the tags {tags:?}, and none is tagged `default`"
                    ))
                    .with_param("tags"));
                }
            }
        }

        // Usage limits this minute.
        if self.usage_checks() {
            let minute = state::wall_minute();
            cands.retain(|e| {
                let (rpm, tpm) = e.state.usage(shared, minute);
                e.deployment.rpm.is_none_or(|l| rpm < l)
                    && e.deployment.tpm.is_none_or(|l| tpm + prompt_tokens <= l)
            });
            if cands.is_empty() {
                let wait = next_minute_wait();
                return Err(LlmError::new(
                    ErrorKind::RateLimit,
                    format!(
                        "No deployments available for selected model, Try again in {} seconds. Passed model={group}. Every deployment of model group `{group}` is at its rpm / tpm limit for this minute.",
                        wait.as_secs()
                    ),
                )
                .with_code("no_deployments_available")
                .with_retry_after(wait));
            }
        }

        // Order tiers.
        if let Some(min) = cands.iter().filter_map(|e| e.deployment.order).min() {
            cands.retain(|e| e.deployment.order == Some(min));
        }

        // Free concurrency first.
        if cands.iter().any(|e| e.state.has_capacity()) {
            cands.retain(|e| e.state.has_capacity());
        }

        loop {
            let i = strategy::pick(self.options.strategy, &cands, shared);
            let entry = cands[i];
            let limit = (self.usage_checks() && !shared)
                .then_some(entry.deployment.rpm)
                .flatten();
            if !test && !entry.state.reserve_request(limit) {
                // Another request took the last slot since the filter ran.
                cands.swap_remove(i);
                if cands.is_empty() {
                    let wait = next_minute_wait();
                    return Err(LlmError::new(
                        ErrorKind::RateLimit,
                        format!("No deployments available for selected model, Try again in {} seconds. Passed model={group}. Every deployment of model group `{group}` is at its rpm limit for this minute.", wait.as_secs()),
                    )
                    .with_code("no_deployments_available")
                    .with_retry_after(wait));
                }
                continue;
            }
            let Some(entry) = entries.iter().find(|e| std::ptr::eq(e.as_ref(), entry)) else {
                return Err(LlmError::internal("router lost its pick"));
            };
            let deployment = match capture {
                Some(c) => concrete(&entry.deployment, model, c),
                None => entry.deployment.clone(),
            };
            return Ok(Selection {
                entry: entry.clone(),
                deployment,
            });
        }
    }

    /// Whether the group of `failed` has another deployment that is neither cooling nor failed.
    fn others_available(&self, model: &str, log: &RouteLog, failed: &str) -> bool {
        self.resolve(model).is_some_and(|(entries, _, _)| {
            entries.iter().any(|e| {
                *e.deployment.id != *failed
                    && !e.state.health.is_cooling()
                    && !log.has_failed(&e.deployment.id)
            })
        })
    }

    /// `None` when a deployment of the group is not cooling; else the soonest end of a cooldown.
    fn available_in(&self, model: &str) -> Option<Duration> {
        let (entries, _, _) = self.resolve(model)?;
        let mut soonest: Option<Duration> = None;
        for e in entries {
            match e.state.health.cooling_for() {
                None => return None,
                Some(d) => soonest = Some(soonest.map_or(d, |s| s.min(d))),
            }
        }
        soonest
    }

    fn list(&self) -> LlmResponse {
        LlmResponse {
            body: ResponseBody::Models(Box::new(ModelList::new(
                self.listed.iter().cloned(),
                self.created,
            ))),
            meta: Box::default(),
        }
    }
}

/// A wildcard deployment made concrete for `requested`, `capture` being what the `*` matched.
fn concrete(dep: &Deployment, requested: &str, capture: &str) -> Arc<Deployment> {
    let full = format!("{}/{}", dep.provider, dep.model);
    let model = if full.contains('*') {
        full.replacen('*', capture, 1)
    } else {
        full
    };
    let (provider, upstream) = split_provider(&model);
    let mut d = dep.clone();
    d.provider = provider.into();
    d.model = upstream.into();
    d.model_group = requested.into();
    Arc::new(d)
}

impl Router {
    /// A builder.
    pub fn builder() -> RouterBuilder {
        RouterBuilder::default()
    }

    /// The breaker guarding the shared state's Redis ([`RouterBuilder::redis`]), if any.
    #[must_use]
    pub fn redis_breaker(&self) -> Option<&crate::redis_guard::Breaker> {
        self.inner.shared.as_ref().map(Shared::breaker)
    }

    /// The model groups served, in config order.
    #[must_use]
    pub fn model_names(&self) -> &[String] {
        &self.inner.names
    }

    /// The deployments of a group.
    pub fn deployments<'a>(
        &'a self,
        group: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Deployment>> + 'a {
        let fixed = self.inner.groups.get(group).into_iter().flatten();
        let wild = self
            .inner
            .patterns
            .iter()
            .filter(move |p| p.name == group)
            .flat_map(|p| p.entries.iter());
        fixed.chain(wild).map(|e| &e.deployment)
    }

    /// The routing strategy.
    #[must_use]
    pub fn strategy(&self) -> Strategy {
        self.inner.options.strategy
    }

    /// Runs the filters and the strategy for `req` on this instance's state and returns the
    /// deployment it would call (counting the request toward that deployment's usage this minute).
    ///
    /// # Errors
    ///
    /// As the router's call: unknown model, all cooling, no deployment fits.
    pub fn select(&self, req: &LlmRequest) -> Result<Arc<Deployment>, LlmError> {
        self.inner.select(req, None).map(|s| s.deployment)
    }

    /// The health cell of a deployment (to inspect or clear its cooldown).
    #[must_use]
    pub fn health(&self, deployment_id: &str) -> Option<&Arc<HealthCell>> {
        self.inner
            .groups
            .values()
            .flatten()
            .chain(self.inner.patterns.iter().flat_map(|p| p.entries.iter()))
            .find(|e| &*e.deployment.id == deployment_id)
            .map(|e| &e.state.health)
    }
}

/// Bookkeeping of one call to a deployment: in-flight count, permit, start time.
struct Tracker {
    entry: Arc<Entry>,
    started: Instant,
    _permit: Option<OwnedSemaphorePermit>,
    shared: Option<Shared>,
    /// A test request (`mock_response`): its latency and tokens are not recorded.
    test: bool,
}

impl Tracker {
    fn new(
        entry: Arc<Entry>,
        permit: Option<OwnedSemaphorePermit>,
        shared: Option<Shared>,
        test: bool,
    ) -> Self {
        entry
            .state
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(s) = &shared {
            s.busy(entry.deployment.id.clone(), 1);
        }
        Self {
            entry,
            started: Instant::now(),
            _permit: permit,
            shared,
            test,
        }
    }

    fn tokens(&self, n: u64) {
        if n == 0 || self.test {
            return;
        }
        self.entry.state.add_tokens(n);
        if let Some(s) = &self.shared {
            s.tokens(self.entry.deployment.id.clone(), n);
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.entry
            .state
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(s) = &self.shared {
            s.busy(self.entry.deployment.id.clone(), -1);
        }
    }
}

/// What the router does with a deployment's answer.
fn finish(
    inner: &Inner,
    model: &str,
    log: Option<&RouteLog>,
    tracker: Tracker,
    result: Result<LlmResponse, LlmError>,
) -> Result<LlmResponse, LlmError> {
    let elapsed = tracker.started.elapsed().as_secs_f64();
    let state = &tracker.entry.state;
    let record_latency = |v: f64| {
        if !tracker.test {
            state.record_latency(v);
        }
    };
    match result {
        Ok(mut resp) => {
            if let ResponseBody::Stream(_) = &resp.body {
                // The health layer hands a stream on once its first chunk arrived: this is the
                // time to first token.
                record_latency(elapsed);
                let LlmResponse { body, meta } = resp;
                let body = match body {
                    ResponseBody::Stream(s) => ResponseBody::Stream(Box::pin(TrackedStream {
                        inner: s,
                        tracker: Some(tracker),
                    })),
                    other => other,
                };
                resp = LlmResponse { body, meta };
            } else {
                let usage = resp.meta.usage.as_ref();
                let out = usage.and_then(|u| u.completion_tokens).unwrap_or(0);
                record_latency(if out > 0 {
                    elapsed / out as f64
                } else {
                    elapsed
                });
                tracker.tokens(usage.and_then(|u| u.total_tokens).unwrap_or(0));
            }
            Ok(resp)
        }
        Err(e) => {
            if e.kind() == ErrorKind::Timeout {
                record_latency(TIMEOUT_PENALTY.as_secs_f64());
            }
            if let Some(log) = log {
                let id = tracker.entry.deployment.id.clone();
                let others = inner.others_available(model, log, &id);
                let available_in = inner.available_in(model);
                log.failed(
                    id,
                    tracker.entry.deployment.max_retries,
                    others,
                    available_in,
                );
            }
            Err(e)
        }
    }
}

pin_project! {
    /// A deployment's stream with its in-flight count held until it ends or is dropped, and its
    /// token usage counted from the usage chunk.
    struct TrackedStream {
        inner: ChatStream,
        tracker: Option<Tracker>,
    }
}

impl Stream for TrackedStream {
    type Item = Result<ChunkBody, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = ready!(this.inner.as_mut().poll_next(cx));
        match &item {
            Some(Ok(chunk)) => {
                if let (Some(usage), Some(t)) = (chunk.usage(), this.tracker.as_ref()) {
                    t.tokens(usage.total_tokens.unwrap_or(0));
                }
            }
            Some(Err(_)) | None => {
                this.tracker.take();
            }
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<LlmResponse, LlmError>> + Send>>;

pin_project! {
    /// The response future of [`Router`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture {
        #[pin]
        state: RouteState,
    }
}

pin_project! {
    #[project = RouteProj]
    enum RouteState {
        Done { result: Option<Result<LlmResponse, LlmError>> },
        Ready {
            svc: DeploymentService,
            req: Option<LlmRequest>,
            call: Option<Call>,
        },
        Calling {
            #[pin]
            fut: <DeploymentService as Service<LlmRequest>>::Future,
            call: Option<Call>,
        },
        Slow { fut: BoxFuture },
    }
}

/// What the fast path needs to finish a call.
struct Call {
    inner: Arc<Inner>,
    /// The request's body (an `Arc`), for the model group it asked for.
    op: Operation,
    log: Option<RouteLog>,
    tracker: Tracker,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("router::ResponseFuture")
            .finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<LlmResponse, LlmError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                RouteProj::Done { result } => {
                    return Poll::Ready(result.take().unwrap_or_else(|| {
                        Err(LlmError::internal("router future polled after completion"))
                    }));
                }
                RouteProj::Slow { fut } => return fut.as_mut().poll(cx),
                RouteProj::Ready { svc, req, call } => {
                    if let Err(e) = ready!(svc.poll_ready(cx)) {
                        let result = match call.take() {
                            Some(c) => {
                                finish(&c.inner, c.op.model(), c.log.as_ref(), c.tracker, Err(e))
                            }
                            None => Err(e),
                        };
                        this.state.set(RouteState::Done {
                            result: Some(result),
                        });
                        continue;
                    }
                    let Some(r) = req.take() else {
                        return Poll::Ready(Err(LlmError::internal(
                            "router future lost its request",
                        )));
                    };
                    let fut = svc.call(r);
                    let call = call.take();
                    this.state.set(RouteState::Calling { fut, call });
                }
                RouteProj::Calling { fut, call } => {
                    let result = ready!(fut.poll(cx));
                    return Poll::Ready(match call.take() {
                        Some(c) => {
                            finish(&c.inner, c.op.model(), c.log.as_ref(), c.tracker, result)
                        }
                        None => result,
                    });
                }
            }
        }
    }
}

impl Service<LlmRequest> for Router {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = ResponseFuture;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is per deployment and driven inside the call, once a deployment is picked.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let inner = self.inner.clone();
        if matches!(req.op, Operation::ListModels) {
            return ResponseFuture {
                state: RouteState::Done {
                    result: Some(Ok(inner.list())),
                },
            };
        }
        let log = req.extensions.get::<RouteLog>().cloned();
        if let Some(l) = &log {
            l.begin();
        }
        if inner.shared.is_some() {
            return ResponseFuture {
                state: RouteState::Slow {
                    fut: Box::pin(call_shared(inner, req, log)),
                },
            };
        }
        let sel = match inner.select(&req, log.as_ref()) {
            Ok(s) => s,
            Err(e) => {
                if let Some(l) = &log {
                    l.refused();
                }
                return ResponseFuture {
                    state: RouteState::Done {
                        result: Some(Err(e)),
                    },
                };
            }
        };
        let permit = match &sel.entry.state.permits {
            None => None,
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    // Every candidate is at its concurrency limit: wait for this one's permit.
                    let sem = sem.clone();
                    return ResponseFuture {
                        state: RouteState::Slow {
                            fut: Box::pin(async move {
                                let permit = sem.acquire_owned().await.ok();
                                call_selected(inner, req, log, sel, permit).await
                            }),
                        },
                    };
                }
            },
        };
        let op = req.op.clone();
        let mut req = req;
        req.extensions
            .insert(SelectedDeployment(sel.deployment.clone()));
        let svc = sel.service();
        let test = crate::health::is_test_request(&req);
        let tracker = Tracker::new(sel.entry, permit, None, test);
        ResponseFuture {
            state: RouteState::Ready {
                svc,
                req: Some(req),
                call: Some(Call {
                    inner,
                    op,
                    log,
                    tracker,
                }),
            },
        }
    }
}

/// Calls the selected deployment (slow path).
async fn call_selected(
    inner: Arc<Inner>,
    mut req: LlmRequest,
    log: Option<RouteLog>,
    sel: Selection,
    permit: Option<OwnedSemaphorePermit>,
) -> Result<LlmResponse, LlmError> {
    let op = req.op.clone();
    req.extensions
        .insert(SelectedDeployment(sel.deployment.clone()));
    let mut svc = sel.service();
    let was_cooling = sel.entry.state.health.is_cooling();
    let entry = sel.entry.clone();
    let test = crate::health::is_test_request(&req);
    let tracker = Tracker::new(sel.entry, permit, inner.shared.clone(), test);
    let result = match std::future::poll_fn(|cx| svc.poll_ready(cx)).await {
        Ok(()) => svc.call(req).await,
        Err(e) => Err(e),
    };
    if result.is_err() && !was_cooling {
        if let (Some(shared), Some(d)) = (&inner.shared, entry.state.health.cooling_for()) {
            // Written before the error is returned, so other instances skip it from now on.
            shared.cool_down(&entry.deployment.id, d).await;
        }
    }
    finish(&inner, op.model(), log.as_ref(), tracker, result)
}

/// The router's call with Redis-shared state: refresh the group, pick, reserve, call.
async fn call_shared(
    inner: Arc<Inner>,
    req: LlmRequest,
    log: Option<RouteLog>,
) -> Result<LlmResponse, LlmError> {
    let Some(shared) = inner.shared.clone() else {
        return Err(LlmError::internal("shared router state missing"));
    };
    if let Some((entries, _, _)) = inner.resolve(req.model()) {
        shared.refresh(entries).await;
    }
    let refuse = |e: LlmError| {
        if let Some(l) = &log {
            l.refused();
        }
        Err(e)
    };
    let mut tried_full: Vec<Arc<str>> = Vec::new();
    let sel = loop {
        let sel = match inner.select(&req, log.as_ref()) {
            Ok(s) => s,
            Err(e) => return refuse(e),
        };
        let limit = (inner.usage_checks() && !crate::health::is_test_request(&req))
            .then_some(sel.deployment.rpm)
            .flatten();
        let Some(limit) = limit else { break sel };
        match shared.reserve_request(&sel.entry.deployment.id).await {
            Some(n) if n > limit => {
                // Over the limit across instances: remember, and pick again.
                shared.release_request(&sel.entry.deployment.id).await;
                sel.entry
                    .state
                    .remote_rpm
                    .store(limit, std::sync::atomic::Ordering::Relaxed);
                let id = sel.entry.deployment.id.clone();
                if tried_full.contains(&id) {
                    return refuse(LlmError::internal("router could not reserve a deployment"));
                }
                tried_full.push(id);
            }
            _ => break sel,
        }
    };
    let permit = match &sel.entry.state.permits {
        Some(sem) => sem.clone().acquire_owned().await.ok(),
        None => None,
    };
    call_selected(inner, req, log, sel, permit).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::chat::{ChatRequest, ChatResponse, Message};

    fn ok_svc() -> impl Service<
        LlmRequest,
        Response = LlmResponse,
        Error = LlmError,
        Future = std::future::Ready<Result<LlmResponse, LlmError>>,
    > + Clone
           + Send
           + Sync
           + 'static {
        tower::service_fn(|_r: LlmRequest| {
            std::future::ready(Ok(LlmResponse::chat(ChatResponse::default())))
        })
    }

    fn chat(model: &str) -> LlmRequest {
        LlmRequest::chat(ChatRequest {
            model: model.into(),
            messages: vec![Message::new("user", "hello there")],
            ..ChatRequest::default()
        })
    }

    fn dep(group: &str, model: &str, f: impl FnOnce(&mut Deployment)) -> Arc<Deployment> {
        let mut d = Deployment::new(group, model);
        f(&mut d);
        Arc::new(d)
    }

    #[test]
    fn alias_and_wildcard_resolve() {
        let make: MakeDeploymentService = Arc::new(|_d| BoxCloneSyncService::new(ok_svc()));
        let r = Router::builder()
            .deployment(dep("gpt-4o", "openai/gpt-4o", |_| {}), ok_svc())
            .wildcard(dep("openai/*", "openai/*", |_| {}), make.clone())
            .wildcard(dep("*", "anthropic/*", |_| {}), make)
            .alias("gpt-4", "gpt-4o", false)
            .alias("secret", "gpt-4o", true)
            .build();
        assert_eq!(&*r.select(&chat("gpt-4")).unwrap().model, "gpt-4o");
        let d = r.select(&chat("openai/o3-mini")).unwrap();
        assert_eq!((&*d.provider, &*d.model), ("openai", "o3-mini"));
        assert_eq!(&*d.model_group, "openai/o3-mini");
        let d = r.select(&chat("claude-x")).unwrap();
        assert_eq!((&*d.provider, &*d.model), ("anthropic", "claude-x"));
        assert_eq!(r.inner.listed, ["gpt-4o", "openai/*", "*", "gpt-4"]);
    }

    #[test]
    fn order_tiers_and_tags() {
        let r = Router::builder()
            .deployment(dep("g", "openai/a", |d| d.order = Some(2)), ok_svc())
            .deployment(dep("g", "openai/b", |d| d.order = Some(1)), ok_svc())
            .build();
        for _ in 0..20 {
            assert_eq!(&*r.select(&chat("g")).unwrap().model, "b");
        }
        let r = Router::builder()
            .tag_filtering(true, false)
            .deployment(
                dep("g", "openai/free", |d| d.tags = vec!["free".into()]),
                ok_svc(),
            )
            .deployment(
                dep("g", "openai/paid", |d| {
                    d.tags = vec!["paid".into(), "default".into()]
                }),
                ok_svc(),
            )
            .build();
        let mut tagged = chat("g");
        tagged
            .chat_mut()
            .unwrap()
            .extra
            .insert("tags", &["free"])
            .unwrap();
        for _ in 0..20 {
            assert_eq!(&*r.select(&tagged).unwrap().model, "free");
            assert_eq!(&*r.select(&chat("g")).unwrap().model, "paid");
        }
    }

    #[test]
    fn context_window_check() {
        let r = Router::builder()
            .pre_call_checks(true)
            .deployment(
                dep("g", "openai/small", |d| {
                    d.model_info.insert("max_input_tokens".into(), 5.into());
                }),
                ok_svc(),
            )
            .build();
        let mut big = chat("g");
        big.chat_mut().unwrap().messages = vec![Message::new("user", "x".repeat(400))];
        assert_eq!(
            r.select(&big).unwrap_err().kind(),
            ErrorKind::ContextWindowExceeded
        );
    }

    #[test]
    fn usage_based_respects_rpm_and_picks_least_used() {
        let r = Router::builder()
            .strategy(Strategy::UsageBased)
            .deployment(dep("g", "openai/a", |d| d.rpm = Some(2)), ok_svc())
            .deployment(dep("g", "openai/b", |d| d.rpm = Some(1)), ok_svc())
            .build();
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(r.select(&chat("g")).unwrap().model.to_string());
        }
        seen.sort();
        assert_eq!(seen, ["a", "a", "b"]);
        let e = r.select(&chat("g")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimit);
        assert!(e.message().contains("Passed model=g"));
    }

    /// A `mock_response` request is routed and answered, but counts toward neither the
    /// deployment's rpm nor its tokens nor its latency.
    #[tokio::test]
    async fn test_requests_leave_usage_and_latency_alone() {
        use tower::ServiceExt as _;
        let answer = tower::service_fn(|_r: LlmRequest| {
            let mut resp = LlmResponse::chat(ChatResponse::default());
            resp.meta.usage = Some(crate::types::chat::Usage {
                prompt_tokens: Some(5),
                completion_tokens: Some(5),
                total_tokens: Some(10),
                ..Default::default()
            });
            std::future::ready(Ok::<_, LlmError>(resp))
        });
        let r = Router::builder()
            .strategy(Strategy::UsageBased)
            .deployment(dep("g", "openai/a", |d| d.rpm = Some(1)), answer)
            .build();
        let state = &r.inner.groups["g"][0].state;
        for _ in 0..3 {
            let mut mocked = chat("g");
            mocked.chat_mut().unwrap().mock_response = Some(serde_json::json!("hi"));
            r.clone().oneshot(mocked).await.unwrap();
        }
        assert_eq!(state.usage(false, state::wall_minute()), (0, 0));
        assert!(state.latency().is_none());
        // The one real request this minute is counted.
        r.clone().oneshot(chat("g")).await.unwrap();
        assert_eq!(state.usage(false, state::wall_minute()), (1, 10));
        assert!(state.latency().is_some());
        assert_eq!(
            r.oneshot(chat("g")).await.unwrap_err().kind(),
            ErrorKind::RateLimit
        );
    }

    #[test]
    fn cost_based_picks_cheapest() {
        let r = Router::builder()
            .strategy(Strategy::CostBased)
            .deployment(
                dep("g", "openai/dear", |d| d.input_cost_per_token = Some(1e-5)),
                ok_svc(),
            )
            .deployment(
                dep("g", "openai/cheap", |d| d.input_cost_per_token = Some(1e-7)),
                ok_svc(),
            )
            .deployment(dep("g", "openai/unknown", |_| {}), ok_svc())
            .build();
        for _ in 0..20 {
            assert_eq!(&*r.select(&chat("g")).unwrap().model, "cheap");
        }
    }

    #[test]
    fn cooling_everywhere_is_429_naming_group() {
        let r = Router::builder()
            .deployment(dep("grp", "openai/a", |_| {}), ok_svc())
            .build();
        r.health(&r.deployments("grp").next().unwrap().id)
            .unwrap()
            .cool_down(Duration::from_secs(3));
        let e = r.select(&chat("grp")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimit);
        assert!(e.message().contains("model=grp"), "{}", e.message());
        assert!(e.retry_after().unwrap() <= Duration::from_secs(3));
    }
}
