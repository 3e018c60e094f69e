//! [`RouterBuilder`]: the deployments, options and shared state of a [`Router`].

use std::{collections::HashMap, fmt, sync::Arc};

use tower::util::BoxCloneSyncService;
use tower_service::Service;

use super::{
    shared::{Shared, SharedStateError},
    state::DeploymentState,
    table::{Entry, EntryService, Inner, Options, PatternGroup},
    MakeDeploymentService, Router, Strategy,
};
use crate::{
    clock::Clock,
    health::HealthCell,
    provider::Deployment,
    types::{LlmRequest, LlmResponse},
    LlmError,
};

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
    clock: Clock,
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

    /// Adds a deployment whose stack `make` builds around the deployment's health cell (the one
    /// the router's cooldown filter reads), so a [`HealthLayer`](crate::health::HealthLayer) in
    /// it and the router agree:
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    ///
    /// use llmgate::{
    ///     health::{CooldownPolicy, HealthLayer}, provider::Deployment, router::Router,
    ///     timeout::TimeoutLayer, types::chat::ChatResponse, LlmError, LlmRequest, LlmResponse,
    /// };
    /// use tower::ServiceBuilder;
    ///
    /// let answer = tower::service_fn(|_req: LlmRequest| async {
    ///     Ok::<_, LlmError>(LlmResponse::chat(ChatResponse::default()))
    /// });
    /// let router = Router::builder()
    ///     .deployment_with(Arc::new(Deployment::new("gpt", "openai/gpt-4o")), |health| {
    ///         ServiceBuilder::new()
    ///             .layer(HealthLayer::new(health, CooldownPolicy::default()))
    ///             .layer(TimeoutLayer::new(Duration::from_secs(60)))
    ///             .service(answer)
    ///     })
    ///     .build();
    /// # let _ = router;
    /// ```
    pub fn deployment_with<F, S>(mut self, deployment: Arc<Deployment>, make: F) -> Self
    where
        F: FnOnce(Arc<HealthCell>) -> S,
        S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let service = make(self.health_cell(&deployment.id));
        self.deployment(deployment, service)
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
        let clock = &self.clock;
        self.cells
            .entry(id.clone())
            .or_insert_with(|| Arc::new(HealthCell::with_clock(clock.clone())))
            .clone()
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
    pub fn redis(&mut self, url: &str) -> Result<&mut Self, SharedStateError> {
        let mut shared = Shared::open(url)?;
        shared.clock = self.clock.clone();
        self.shared = Some(shared);
        Ok(self)
    }

    /// The clock cooldowns, failure minutes and usage windows run on (default:
    /// [`Clock::system`]). Set it before [`RouterBuilder::health_cell`] hands out cells.
    pub fn clock(mut self, clock: Clock) -> Self {
        if let Some(s) = &mut self.shared {
            s.clock = clock.clone();
        }
        self.clock = clock;
        self
    }

    /// Starts from `previous`'s state: the health cells of its deployments (a deployment added
    /// again with the same id keeps its cooldown and failure counts) and its Redis-shared state
    /// (when this builder has none of its own). For a table that replaces `previous` in a
    /// [`LiveRouter`](super::LiveRouter).
    pub fn carry_over(mut self, previous: &Router) -> Self {
        let inner = &previous.inner;
        let entries = inner
            .groups
            .values()
            .flatten()
            .chain(inner.patterns.iter().flat_map(|p| p.entries.iter()));
        for e in entries {
            self.cells
                .entry(e.deployment.id.clone())
                .or_insert_with(|| e.state.health.clone());
        }
        if self.shared.is_none() {
            self.shared.clone_from(&inner.shared);
        }
        self
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
                created: self.clock.unix_secs(),
                clock: self.clock,
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
