//! Model tables that change while the gateway serves: `SIGHUP` re-reads `config.yaml`
//! ([`LiveModels::reload_config`]), and with `store_model_in_db: true` the models kept in the
//! database are polled ([`LiveModels::watch`]) and served by every replica.
//!
//! A change builds a whole new [`Router`] off the request path (each deployment's stack over the
//! gateway's HTTP client, as at start-up) and swaps it into the [`LiveRouter`] at the bottom of
//! the stack: one pointer store. Requests already routed finish on the table they started with;
//! deployments that stay (same id) keep their health cells (cooldowns, failure counts). Writers
//! are serialised by a mutex that no request takes.

use std::{
    fmt,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use bytes::Bytes;

use super::{
    stack::{stack, unsupported_service},
    UpstreamClient,
};
use crate::{
    config::{Config, ModelEntry},
    cost::PriceTable,
    error::BoxError,
    health::{CooldownPolicy, HealthLayer},
    provider::{Deployment, Providers},
    router::{DeploymentService, LiveRouter, LiveService, MakeDeploymentService, Router, Strategy},
    store::{ModelRow, ModelStore, StoreError},
    timeout::TimeoutLayer,
};

/// The routing settings a table is built with (everything but the deployments).
#[derive(Clone)]
pub(crate) struct RouterPlan {
    pub(super) providers: Providers,
    pub(super) strategy: Strategy,
    pub(super) pre_call_checks: bool,
    pub(super) tag_filtering: (bool, bool),
    pub(super) default_max_parallel_requests: Option<u32>,
    pub(super) aliases: Vec<(String, String, bool)>,
    pub(super) router_redis: Option<String>,
    pub(super) cooldown: CooldownPolicy,
    pub(super) timeout: Duration,
    pub(super) stream_timeout: Option<Duration>,
    pub(super) stream_max_duration: Option<Duration>,
    pub(super) drop_params: Option<bool>,
    pub(super) prices: PriceTable,
    pub(super) timer: crate::clock::Timer,
    pub(super) clock: crate::clock::Clock,
    pub(super) guard: Option<bool>,
    /// The layers above the router that routing settings configure (`fallbacks`, retries).
    pub(super) fallback: crate::fallback::FallbackLayer,
    pub(super) retry: crate::retry::RetryLayer,
    /// The tracer of the deployment stacks' attempt spans, when tracing is on.
    #[cfg(feature = "otel")]
    pub(super) otel: Option<crate::telemetry::Otel>,
    /// The Prometheus registry, when metrics are on: each deployment's stack is counted.
    pub(super) metrics: Option<crate::metrics::Metrics>,
}

impl RouterPlan {
    /// The router over `deployments`, each its own stack over `client`; with `previous`, the
    /// health cells and shared state of the table it replaces. Returns the findings as warnings.
    pub(super) fn build<C, B>(
        &self,
        deployments: &[Deployment],
        client: &C,
        previous: Option<&Router>,
    ) -> (Router, Vec<String>)
    where
        C: UpstreamClient<B>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut warnings = Vec::new();
        let mut builder = Router::builder()
            .clock(self.clock.clone())
            .strategy(self.strategy)
            .pre_call_checks(self.pre_call_checks)
            .tag_filtering(self.tag_filtering.0, self.tag_filtering.1)
            .default_max_parallel_requests(self.default_max_parallel_requests);
        for (alias, group, hidden) in &self.aliases {
            builder = builder.alias(alias.clone(), group.clone(), *hidden);
        }
        match previous {
            // The replaced table's Redis connection is kept (not one more per reload).
            Some(prev) => builder = builder.carry_over(prev),
            None => {
                if let Some(url) = &self.router_redis {
                    if let Err(e) = builder.redis(url) {
                        // Building cannot fail for this: say loudly that routing state stays
                        // in-process.
                        warnings.push(format!(
                            "router_settings.redis_*: {e}; routing state is NOT shared between instances"
                        ));
                    }
                }
            }
        }
        let table = &self.prices;
        let policy = &self.cooldown;
        let group_size = |name: &str| {
            deployments
                .iter()
                .filter(|d| &*d.model_group == name)
                .count()
        };
        let guard = self.guard;
        #[cfg(feature = "otel")]
        let otel = self.otel.clone();
        #[cfg(not(feature = "otel"))]
        let otel: Option<std::convert::Infallible> = None;
        for (i, dep) in deployments.iter().enumerate() {
            let mut dep = dep.clone();
            let wildcard = dep.model_group.contains('*');
            // The context window from the price table, unless the deployment gives one.
            if !wildcard
                && !dep.model_info.contains_key("max_input_tokens")
                && !dep.model_info.contains_key("max_tokens")
            {
                if let Some(w) = table.context_window(&dep) {
                    dep.model_info.insert("max_input_tokens".into(), w.into());
                }
            }
            // `drop_params` applies to every deployment that does not say otherwise.
            if let Some(drop) = self.drop_params {
                dep.params
                    .entry("drop_params")
                    .or_insert(serde_json::Value::Bool(drop));
            }
            let dep = Arc::new(dep);
            let cell = builder.health_cell(&dep.id);
            // As LiteLLM: the only deployment of a group never cools down (there is nothing to
            // route to instead; its errors reach the client as they are).
            let sole = group_size(&dep.model_group) == 1;
            // Per-deployment metrics over the whole deployment stack, when metrics are on.
            let dep_metrics = self
                .metrics
                .as_ref()
                .map(|m| m.deployment_layer(&dep, Some(cell.clone())));
            // A wildcard deployment's: labelled with the concrete model of each call.
            let wild_metrics = self
                .metrics
                .clone()
                .filter(|_| wildcard)
                .map(|m| (m, cell.clone()));
            let health =
                HealthLayer::new(cell, policy.clone().disabled(sole || policy.is_disabled()));
            let mut timeout =
                TimeoutLayer::new(dep.timeout.unwrap_or(self.timeout)).timer(self.timer);
            if let Some(st) = dep.stream_timeout.or(self.stream_timeout) {
                timeout = timeout.stream_timeout(st);
            }
            if let Some(total) = self.stream_max_duration {
                timeout = timeout.stream_max_duration(total);
            }
            if wildcard {
                let client = client.clone();
                let providers = self.providers.clone();
                // Only kept when the guard is on: the model each call names is priced then.
                let table = guard.map(|_| table.clone());
                let otel = otel.clone();
                let make: MakeDeploymentService = Arc::new(move |concrete: Arc<Deployment>| {
                    match providers.get(&concrete.provider) {
                        Some(p) => {
                            let g = table
                                .as_ref()
                                .and_then(|t| super::builder::unpriced_guard(t, &concrete, guard));
                            let svc = stack(
                                &concrete,
                                p.clone(),
                                &client,
                                health.clone(),
                                timeout,
                                g,
                                otel.as_ref(),
                            );
                            match &wild_metrics {
                                Some((m, cell)) => {
                                    tower::util::BoxCloneSyncService::new(tower::Layer::layer(
                                        &m.concrete_layer(&concrete, Some(cell.clone())),
                                        svc,
                                    ))
                                }
                                _ => svc,
                            }
                        }
                        None => unsupported_service(&concrete.provider),
                    }
                });
                builder = builder.wildcard(dep, make);
                continue;
            }
            match self.providers.get(&dep.provider) {
                Some(p) => {
                    let g = super::builder::unpriced_guard(table, &dep, guard);
                    let mut svc = stack(&dep, p.clone(), client, health, timeout, g, otel.as_ref());
                    if let Some(m) = dep_metrics {
                        svc = tower::util::BoxCloneSyncService::new(tower::Layer::layer(&m, svc));
                    }
                    builder = builder.deployment(dep, svc);
                }
                None => {
                    warnings.push(format!(
                        "model_list[{i}].litellm_params.model: provider `{}` is not supported yet; calls to `{}` will fail (supported: {})",
                        dep.provider,
                        dep.model_group,
                        self.providers.prefixes().collect::<Vec<_>>().join(", ")
                    ));
                    let svc = unsupported_service(&dep.provider);
                    builder = builder.deployment(dep, svc);
                }
            }
        }
        (builder.build(), warnings)
    }

    /// This plan with the routing settings of `config` (strategy, pre-call checks, tags,
    /// aliases, cooldowns, timeouts, retries, fallbacks, `drop_params`); providers, prices, the
    /// timer, the unpriced guard and the Redis connection stay as they are.
    fn with_config(&self, config: &Config) -> (Self, Vec<Deployment>, Vec<String>) {
        let mut b = super::GatewayBuilder::from_config(config);
        let warnings = std::mem::take(b.warnings_mut());
        let mut next = b.plan(self.guard);
        next.providers = self.providers.clone();
        next.prices = self.prices.clone();
        next.timer = self.timer;
        next.clock = self.clock.clone();
        next.router_redis.clone_from(&self.router_redis);
        let deployments = config
            .model_list
            .iter()
            .map(super::deployment_from_entry)
            .collect();
        (next, deployments, warnings)
    }
}

type Rebuild =
    Arc<dyn Fn(&RouterPlan, &[Deployment], &Router) -> (Router, Vec<String>) + Send + Sync>;

/// The gateway's model table, changeable at runtime. Cheap to clone. See the
/// module docs.
#[derive(Clone)]
pub struct LiveModels {
    inner: Arc<Inner>,
}

struct Inner {
    router: LiveRouter,
    rebuild: Rebuild,
    state: Mutex<State>,
    /// The whole stack, and how to build it over a new table ([`LiveModels::attach_stack`]).
    stack: std::sync::OnceLock<(LiveService, Restack)>,
}

/// Builds the stack above the router for a table: the router, every deployment, the plan.
type Restack = Box<dyn Fn(&Router, &[Deployment], &RouterPlan) -> DeploymentService + Send + Sync>;

struct State {
    plan: RouterPlan,
    /// The deployments of `config.yaml` (or of the builder).
    base: Vec<Deployment>,
    /// The models kept in the database, as last read.
    rows: Vec<ModelRow>,
    /// Their deployments (rows that do not load are left out, with a warning).
    db: Vec<Deployment>,
}

impl fmt::Debug for LiveModels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveModels")
            .field("router", &self.inner.router)
            .finish_non_exhaustive()
    }
}

impl LiveModels {
    pub(super) fn new<C, B>(
        router: Router,
        plan: RouterPlan,
        base: Vec<Deployment>,
        client: &C,
    ) -> Self
    where
        C: UpstreamClient<B>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let client = client.clone();
        let rebuild: Rebuild = Arc::new(
            move |plan: &RouterPlan, deps: &[Deployment], prev: &Router| {
                plan.build(deps, &client, Some(prev))
            },
        );
        Self {
            inner: Arc::new(Inner {
                router: LiveRouter::new(router),
                rebuild,
                state: Mutex::new(State {
                    plan,
                    base,
                    rows: Vec::new(),
                    db: Vec::new(),
                }),
                stack: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The router at the bottom of the stack.
    #[must_use]
    pub fn router(&self) -> &LiveRouter {
        &self.inner.router
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A writer that panicked left a consistent state (each field is replaced whole).
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Builds the table from `state` and swaps it in (and the stack over it, when one is
    /// attached); returns the build's warnings.
    fn apply(&self, state: &State) -> Vec<String> {
        let all: Vec<Deployment> = state.base.iter().chain(&state.db).cloned().collect();
        let prev = self.inner.router.current();
        let (router, warnings) = (self.inner.rebuild)(&state.plan, &all, &prev);
        if let Some((live, restack)) = self.inner.stack.get() {
            // Requests take the stack, and through it this very table: one swap serves both.
            live.swap(restack(&router, &all, &state.plan));
        }
        self.inner.router.swap(router);
        warnings
    }

    /// Every deployment served (the config's, then the database's), as configured.
    #[must_use]
    pub fn all_deployments(&self) -> Vec<Deployment> {
        let state = self.state();
        state.base.iter().chain(&state.db).cloned().collect()
    }

    /// Puts the whole stack (`first`, built over the current table) behind a [`LiveService`]
    /// that each change replaces with `restack`'s stack over the new table. Once.
    pub(super) fn attach_stack(
        &self,
        first: DeploymentService,
        restack: impl Fn(&Router, &[Deployment], &RouterPlan) -> DeploymentService
            + Send
            + Sync
            + 'static,
    ) -> LiveService {
        let live = LiveService::new(first);
        let _ = self.inner.stack.set((live.clone(), Box::new(restack)));
        live
    }

    /// Serves `config`'s `model_list` and routing settings (strategy, pre-call checks, tag
    /// filtering, aliases, cooldowns, timeouts, retries, fallbacks; `drop_params`) from the next
    /// request on, with the database's models. Other settings need a restart. Returns the
    /// findings (warnings) of the new table.
    pub fn reload_config(&self, config: &Config) -> Vec<String> {
        let mut state = self.state();
        let (plan, base, mut warnings) = state.plan.with_config(config);
        state.plan = plan;
        state.base = base;
        warnings.extend(self.apply(&state));
        warnings
    }

    /// Serves the database's models `rows` (with the config's) when they differ from the last
    /// rows seen. Returns whether the table changed, and the rows that did not load.
    pub fn set_db_models(&self, rows: Vec<ModelRow>) -> (bool, Vec<String>) {
        let mut state = self.state();
        if state.rows == rows {
            return (false, Vec::new());
        }
        let mut warnings = Vec::new();
        let mut db = Vec::with_capacity(rows.len());
        for row in &rows {
            match row_deployment(row) {
                Ok(d) => db.push(d),
                Err(e) => warnings.push(format!("model `{}` in the database: {e}", row.model_id)),
            }
        }
        state.rows = rows;
        state.db = db;
        warnings.extend(self.apply(&state));
        (true, warnings)
    }

    /// The models kept in the database, as last read.
    #[must_use]
    pub fn db_rows(&self) -> Vec<ModelRow> {
        self.state().rows.clone()
    }

    /// The price table's entry for `dep` (for `/model/info`).
    #[must_use]
    pub fn price(&self, dep: &Deployment) -> Option<crate::cost::ModelPrice> {
        self.state().plan.prices.for_deployment(dep)
    }

    /// The provider registry deployments are resolved in.
    #[must_use]
    pub fn providers(&self) -> Providers {
        self.state().plan.providers.clone()
    }

    /// Whether deployment `id` comes from the database.
    #[must_use]
    pub fn is_db_model(&self, id: &str) -> bool {
        self.state().rows.iter().any(|r| r.model_id == id)
    }

    /// Reads the models of `store` now and serves them.
    ///
    /// # Errors
    /// The store did not answer (the table served stays).
    pub async fn refresh_from(&self, store: &dyn ModelStore) -> Result<bool, StoreError> {
        let rows = store.list_models().await?;
        let (changed, warnings) = self.set_db_models(rows);
        for w in warnings {
            tracing::warn!("{w}");
        }
        Ok(changed)
    }

    /// Reads the models of `store` every `every` (the first time at once) and serves each
    /// change, on the current tokio runtime, until the last handle of these models is dropped.
    /// Returns `false` (and starts nothing) without a runtime.
    pub fn watch(&self, store: Arc<dyn ModelStore>, every: Duration) -> bool {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let every = every.max(Duration::from_millis(100));
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let models = Self { inner };
                match models.refresh_from(&*store).await {
                    Ok(true) => tracing::info!(
                        groups = ?models.router().current().model_names(),
                        "models changed in the database: now serving the new table"
                    ),
                    Ok(false) => {}
                    // The last table keeps serving; the next tick tries again.
                    Err(e) => tracing::warn!("cannot read the models in the database: {e}"),
                }
            }
        });
        true
    }
}

/// Parses a model entry written as JSON (`model_name`, `litellm_params`, `model_info`) with the
/// config's rules: `os.environ/` references resolved, keys checked, values validated.
///
/// # Errors
/// Every problem the config loader finds, joined.
pub fn parse_model_entry(entry: &serde_json::Value) -> Result<ModelEntry, String> {
    let doc = serde_json::json!({ "model_list": [entry] });
    match Config::from_yaml_str(&doc.to_string(), "model") {
        Ok(loaded) => loaded
            .config
            .model_list
            .into_iter()
            .next()
            .ok_or_else(|| "no model entry".to_owned()),
        Err(errors) => Err(errors
            .0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

/// The deployment of a database row (its `model_id` as the deployment id).
fn row_deployment(row: &ModelRow) -> Result<Deployment, String> {
    let mut info = row.model_info.clone();
    info.insert("id".into(), row.model_id.clone().into());
    let entry = serde_json::json!({
        "model_name": row.model_name,
        "litellm_params": row.litellm_params,
        "model_info": info,
    });
    parse_model_entry(&entry).map(|e| super::deployment_from_entry(&e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{
        client::Client,
        gateway::Gateway,
        provider::HttpClient,
        store::InMemoryModels,
        types::chat::{ChatRequest, Message},
    };

    fn hello(model: &str) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            messages: vec![Message::new("user", "hello")],
            ..ChatRequest::default()
        }
    }

    fn config(yaml: &str) -> Config {
        Config::from_yaml_str(yaml, "t").unwrap().config
    }

    #[tokio::test]
    async fn a_reload_serves_the_new_models_and_routing_settings_through_the_same_stack() {
        let gw = Gateway::from_config(
            &config("model_list:\n  - model_name: a\n    litellm_params: {model: mock/a}\n"),
            &HttpClient::new(),
        );
        let stack = gw.stack().clone();
        assert!(Client::new(stack.clone()).chat(hello("b")).await.is_err());
        let warnings = gw.models().reload_config(&config(
            "model_list:\n  - model_name: b\n    litellm_params: {model: mock/b}\nrouter_settings:\n  model_group_alias: {alias-b: b}\n",
        ));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(gw.models().router().current().model_names(), ["b"]);
        // The stack handed out before the reload serves the new table (and alias).
        for model in ["b", "alias-b"] {
            Client::new(stack.clone()).chat(hello(model)).await.unwrap();
        }
        let err = Client::new(stack).chat(hello("a")).await.unwrap_err();
        assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
        // The table as built is kept for `Gateway::router`.
        assert_eq!(gw.router().model_names(), ["a"]);
    }

    #[tokio::test]
    async fn database_rows_join_the_config_models_and_bad_rows_are_reported() {
        let gw = Gateway::from_config(
            &config("model_list:\n  - model_name: a\n    litellm_params: {model: mock/a}\n"),
            &HttpClient::new(),
        );
        let store = InMemoryModels::new();
        let row = |id: &str, params: serde_json::Value| ModelRow {
            model_id: id.into(),
            model_name: "db".into(),
            litellm_params: params.as_object().cloned().unwrap(),
            ..ModelRow::default()
        };
        store
            .insert_model(&row("m1", serde_json::json!({"model": "mock/db"})))
            .await
            .unwrap();
        store
            .insert_model(&row("m2", serde_json::json!({"api_base": "http://x"})))
            .await
            .unwrap();
        let rows = store.list_models().await.unwrap();
        let (changed, warnings) = gw.models().set_db_models(rows.clone());
        assert!(changed);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("m2"), "{warnings:?}");
        assert_eq!(gw.models().router().current().model_names(), ["a", "db"]);
        assert!(gw.models().is_db_model("m1") && !gw.models().is_db_model("x"));
        // The same rows again change nothing.
        assert!(!gw.models().set_db_models(rows).0);
        Client::new(gw.stack().clone())
            .chat(hello("db"))
            .await
            .unwrap();
    }
}
