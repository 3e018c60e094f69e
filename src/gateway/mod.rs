//! The gateway: the whole stack from typed settings ([`Gateway::builder`]) or from a LiteLLM
//! [`Config`] ([`Gateway::from_config`], [`Gateway::build`]).
//!
//! Layers never see the config: `build.rs` translates it onto a [`GatewayBuilder`], which maps
//! typed settings to [`Deployment`](crate::provider::Deployment)s, provider services, the
//! [`Router`] and the auth layer, and returns the model-level stack and the HTTP edge.
//!
//! Order (outermost first): `Auth → RateLimit → Budget → Cost → Cache → Fallback → Retry →
//! Router → (per deployment) Health → Timeout → Provider → HttpClient`, one `ServiceBuilder`
//! chain where governance's layers are optional: with a started
//! [`Governance`](crate::governance::Governance) ([`Gateway::build`]: store, Redis, spend
//! writer) the auth layer checks virtual keys too; without (the database-free
//! [`Gateway::from_config`]) the stack is `MasterKey → Cost → Cache → Fallback → Retry → Router → …`.
//! With a tracer ([`GatewayBuilder::otel`], `callbacks: ["otel"]`), the request span's layer is
//! outermost and each deployment's stack starts with its attempt span's layer (see `telemetry`).

mod build;
mod builder;
mod live;
mod ops;
mod stack;

use std::time::Duration;

use bytes::Bytes;

pub use self::{
    build::deployment_from_entry,
    builder::{GatewayBuilder, GatewayError},
    live::{parse_model_entry, LiveModels},
    stack::deployment_stack,
};
use crate::{
    cache::CacheHandle,
    config::Config,
    cost::PriceTable,
    error::BoxError,
    governance::{BuildError, BuildOptions},
    provider::Providers,
    router::Router,
    server::OpenAiServer,
};

/// The embedded default config: a `mock` chat model group and a `mock-embedding` group, served by
/// the built-in mock provider (no account, no network).
pub const DEFAULT_CONFIG: &str = include_str!("../default_config.yaml");

/// The model-level stack the gateway serves: boxed once at this seam so that each concern's layer
/// can be added (or left out by config) without changing the type, behind the pointer a model
/// change swaps ([`LiveService`](crate::router::LiveService)).
pub type GatewayStack = crate::router::LiveService;

/// The built gateway: the model-level stack, the HTTP edge, and what building it found worth a
/// warning. Built by [`Gateway::builder`], [`Gateway::from_config`] or [`Gateway::build`].
#[derive(Debug)]
pub struct Gateway {
    stack: GatewayStack,
    router: Router,
    models: LiveModels,
    prober: crate::probe::Prober,
    /// The callbacks `/health/readiness` lists.
    callback_names: Vec<String>,
    warnings: Vec<String>,
    unpriced: Vec<String>,
    max_body_bytes: usize,
    body_read_timeout: Duration,
    edge: crate::server::EdgeSettings,
    timer: crate::clock::Timer,
    clock: crate::clock::Clock,
    admission: Option<crate::auth::Admission>,
    cache: Option<CacheHandle>,
    governance: Option<crate::governance::Governance>,
    management: axum::Router,
    callbacks: crate::callbacks::Callbacks,
    /// The Responses API answers made through the chat translation (one store for every
    /// serving thread).
    responses: crate::store::responses::SharedResponseStore,
}

pub use crate::upstream::UpstreamClient;

impl Gateway {
    /// A builder for the whole stack from typed settings.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    /// Builds the stack for `config` over `client`, any HTTP client service (usually
    /// [`HttpClient`](crate::provider::HttpClient); a test double in tests), with the built-in
    /// providers. See [`Gateway::from_config_with`].
    #[must_use]
    pub fn from_config<C, B>(config: &Config, client: &C) -> Self
    where
        C: UpstreamClient<B>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self::from_config_with(config, client, Providers::builtin())
    }

    /// Builds the database-free stack for `config` over `client`, resolving deployments in
    /// `providers` (built-ins and custom ones): master key → cost → cache → fallback → retry →
    /// router → per deployment: health → timeout → provider → HTTP client.
    ///
    /// Cannot fail: what the config says that cannot be used is in [`Gateway::warnings`] (a
    /// deployment of an unknown provider answers 400).
    #[must_use]
    pub fn from_config_with<C, B>(config: &Config, client: &C, providers: Providers) -> Self
    where
        C: UpstreamClient<B>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self::from_config_opts(config, client, &BuildOptions::default(), providers)
    }

    /// [`Gateway::from_config_with`] with the build options that apply without a database (the
    /// price file, the [`Timer`](crate::clock::Timer)).
    #[must_use]
    pub fn from_config_opts<C, B>(
        config: &Config,
        client: &C,
        opts: &BuildOptions,
        providers: Providers,
    ) -> Self
    where
        C: UpstreamClient<B>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut builder = GatewayBuilder::from_config(config)
            .providers(providers)
            .timer(opts.timer)
            .clock(opts.clock.clone());
        // `LLMGATE_MODEL_PRICES` applies here too (the cost header, `--check`'s unpriced list).
        match crate::governance::price_table(opts) {
            Ok(table) => builder = builder.price_table(table),
            Err(e) => {
                builder = builder
                    .warning(format!("{e}; using the built-in price table"))
                    .price_table(PriceTable::builtin());
            }
        }
        if config.general_settings.store_model_in_db == Some(true) {
            builder = builder.warning("general_settings.store_model_in_db needs the database (a master key or database_url): /model/new, /model/update and /model/delete answer 500");
        }
        // The config's values were checked when it loaded; anything left is reported.
        if let Err(e) = builder.check() {
            builder = builder.warning(e.to_string());
        }
        builder.assemble(client)
    }

    /// Builds the governed stack for `config` over `client` with the built-in providers. See
    /// [`Gateway::build_with`].
    ///
    /// # Errors
    /// As [`Gateway::build_with`].
    pub async fn build<C, B>(
        config: &Config,
        client: &C,
        opts: BuildOptions,
    ) -> Result<Self, BuildError>
    where
        C: UpstreamClient<B>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self::build_with(config, client, opts, Providers::builtin()).await
    }

    /// Builds the governed stack for `config` over `client`: connects the store (SQLite or
    /// PostgreSQL, migrations run), Redis for shared limits when configured, and starts the spend
    /// writer (see [`governance`](crate::governance) for how each is chosen), then hands the
    /// started [`Governance`](crate::governance::Governance) to the [`GatewayBuilder`].
    ///
    /// Order, outermost first: auth (master key + virtual keys) → rate limit → budget → cost →
    /// cache → fallback → retry → router → per deployment: health → timeout → provider → HTTP
    /// client.
    ///
    /// # Errors
    /// The price table, store or Redis cannot be used, or a builder setting is refused.
    pub async fn build_with<C, B>(
        config: &Config,
        client: &C,
        opts: BuildOptions,
        providers: Providers,
    ) -> Result<Self, BuildError>
    where
        C: UpstreamClient<B>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let table = crate::governance::price_table(&opts)?;
        let ls = &config.litellm_settings;
        let mut builder = GatewayBuilder::from_config(config)
            .providers(providers)
            .price_table(table)
            .timer(opts.timer)
            .clock(opts.clock.clone());
        if ls.max_budget.is_some_and(|m| m > 0.0)
            && ls.budget_duration.as_deref().is_none_or(str::is_empty)
        {
            builder = builder.warning("litellm_settings.max_budget without budget_duration: the proxy budget never resets (LiteLLM refuses to start without budget_duration)");
        }
        let gov = crate::governance::start(config, &opts).await?;
        let model_store: Option<std::sync::Arc<dyn crate::store::ModelStore>> =
            if config.general_settings.store_model_in_db == Some(true) {
                // Rows keep their `litellm_params` encrypted as LiteLLM's do (LITELLM_SALT_KEY,
                // else the master key).
                let salt = crate::store::SaltKey::from_env_or(
                    config
                        .general_settings
                        .master_key
                        .as_ref()
                        .map(crate::secret::Secret::expose),
                );
                gov.keys.store_as::<crate::store::Store>().map(|s| {
                    std::sync::Arc::new(crate::store::EncryptedModels::new(s.clone(), salt)) as _
                })
            } else {
                None
            };
        if let Some(store) = &model_store {
            builder = builder.model_store(store.clone(), build::model_poll_interval(config));
        }
        let gateway = builder
            .governance(gov)
            .build(client)
            .map_err(|e| BuildError {
                key: e.setting().to_owned(),
                reason: e.to_string(),
            })?;
        // Start with the database's models (the poller keeps them current).
        if let Some(store) = &model_store {
            gateway
                .models
                .refresh_from(&**store)
                .await
                .map_err(|e| BuildError {
                    key: "general_settings.store_model_in_db".to_owned(),
                    reason: e.to_string(),
                })?;
        }
        Ok(gateway)
    }

    /// The model-level stack (every layer, outermost first, ending in the router).
    #[must_use]
    pub fn stack(&self) -> &GatewayStack {
        &self.stack
    }

    /// The router at the bottom of the stack (model groups, deployments) as it was built. A
    /// reload or a change of the database's models serves a new table: see
    /// [`Gateway::models`] for the one served now.
    #[must_use]
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The model table served now, and what changes it at runtime (`SIGHUP`, the database's
    /// models).
    #[must_use]
    pub fn models(&self) -> &LiveModels {
        &self.models
    }

    /// The health probes `GET /health` answers with.
    #[must_use]
    pub fn prober(&self) -> &crate::probe::Prober {
        &self.prober
    }

    /// Non-fatal findings (unsupported providers, …).
    #[must_use]
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Deployments without a known price, as `provider/model` (each once; wildcard deployments
    /// are priced per call and not listed). Their calls are logged at cost 0, or refused to
    /// callers with a budget under `general_settings.block_unpriced_models_for_budgeted_keys`.
    #[must_use]
    pub fn unpriced(&self) -> &[String] {
        &self.unpriced
    }

    /// Request body limit.
    #[must_use]
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Time allowed to receive a request body (`general_settings.request_body_timeout`).
    #[must_use]
    pub fn body_read_timeout(&self) -> Duration {
        self.body_read_timeout
    }

    /// The auth layer's key check, run by the edge before it reads a body.
    #[must_use]
    pub fn admission(&self) -> Option<&crate::auth::Admission> {
        self.admission.as_ref()
    }

    /// The response cache's counters, when a cache is on.
    #[must_use]
    pub fn cache(&self) -> Option<&CacheHandle> {
        self.cache.as_ref()
    }

    /// Keys, budgets, limits and spend ([`Gateway::build`] or
    /// [`GatewayBuilder::governance`] only).
    #[must_use]
    pub fn governance(&self) -> Option<&crate::governance::Governance> {
        self.governance.as_ref()
    }

    /// The consumers of call records: the Prometheus registry and the logging sinks.
    #[must_use]
    pub fn callbacks(&self) -> &crate::callbacks::Callbacks {
        &self.callbacks
    }

    /// The management API routes (404 for everything without governance).
    pub fn management(&self) -> &axum::Router {
        &self.management
    }

    /// The HTTP edge over the stack with the management API for every other path.
    #[must_use]
    pub fn app(&self) -> OpenAiServer<GatewayStack, axum::Router> {
        self.server().with_fallback(self.management.clone())
    }

    /// Stops the background services after `serve` returned: lets the logging sinks write
    /// what is queued, then writes every queued spend row (each retrying for up to `timeout`).
    /// Returns the spend writer's counters.
    pub async fn shutdown(self, timeout: Duration) -> Option<crate::spend::SpendStats> {
        self.callbacks.drain(timeout).await;
        match self.governance {
            Some(g) => Some(g.shutdown(timeout).await),
            None => None,
        }
    }

    /// The HTTP edge over the stack.
    #[must_use]
    pub fn server(&self) -> OpenAiServer<GatewayStack> {
        OpenAiServer::new(self.stack.clone())
            .max_body_bytes(self.max_body_bytes)
            .body_read_timeout(self.body_read_timeout)
            .edge_settings(self.edge.clone())
            .timer(self.timer)
            .admission(self.admission.clone())
            .on_refusal(self.callbacks.metrics_registry().map(|m| {
                let m = m.clone();
                let hook: crate::server::OnRefusal = std::sync::Arc::new(move |route, e| {
                    m.refused_error(route, e);
                });
                hook
            }))
            .readiness(self.readiness())
            .response_store(Some(self.responses.clone()))
            .pass_through(self.pass_through_routes())
    }

    /// The provider pass-through routes of this gateway's model list (see
    /// [`crate::passthrough`]).
    #[must_use]
    pub fn pass_through_routes(&self) -> crate::passthrough::PassThroughRoutes {
        let router = &self.router;
        crate::passthrough::PassThroughRoutes::from_groups(
            router
                .model_names()
                .iter()
                .map(|g| (g.as_str(), router.deployments(g))),
        )
    }

    /// What `/health/readiness` reports: the database ([`Gateway::build`] only), the cache and
    /// the state of Redis.
    #[must_use]
    pub fn readiness(&self) -> crate::server::Readiness {
        crate::server::Readiness::with(
            self.governance.as_ref().map(|g| g.keys.key_store().clone()),
            self.cache.as_ref().map(|c| {
                if c.backend() == "redis" {
                    "redis"
                } else {
                    "local"
                }
            }),
        )
        .redis(self.redis_breakers())
        .callbacks(self.callback_names.iter().cloned())
        .clock(self.clock.clone())
    }

    /// The clock this gateway reads ([`GatewayBuilder::clock`]).
    #[must_use]
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.clock
    }

    /// The breakers of every user of Redis (rate limits, router, cache), for readiness.
    fn redis_breakers(&self) -> Vec<crate::redis_guard::Breaker> {
        let limits = self.governance.as_ref().and_then(|g| g.counters.breaker());
        let cache = self.cache.as_ref().and_then(|c| c.redis_breaker());
        [limits, self.router.redis_breaker(), cache]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Deployment;
    use crate::provider::HttpClient;

    fn assert_send_sync_clone<T: Clone + Send + Sync + 'static>() {}

    #[test]
    fn stack_and_server_are_clone_send_sync() {
        assert_send_sync_clone::<GatewayStack>();
        assert_send_sync_clone::<OpenAiServer<GatewayStack>>();
    }

    #[test]
    fn custom_llm_provider_names_the_provider() {
        let config = Config::from_yaml_str(
            "model_list:\n\
             - model_name: a\n  litellm_params: {model: gpt-4o, custom_llm_provider: azure, api_base: https://x.openai.azure.com}\n\
             - model_name: b\n  litellm_params: {model: azure/gpt-4o, custom_llm_provider: azure}\n\
             - model_name: c\n  litellm_params: {model: gpt-4o}\n",
            "t.yaml",
        )
        .expect("loads")
        .config;
        let deps: Vec<Deployment> = config
            .model_list
            .iter()
            .map(deployment_from_entry)
            .collect();
        assert_eq!((&*deps[0].provider, &*deps[0].model), ("azure", "gpt-4o"));
        assert_eq!((&*deps[1].provider, &*deps[1].model), ("azure", "gpt-4o"));
        assert_eq!((&*deps[2].provider, &*deps[2].model), ("openai", "gpt-4o"));
    }

    #[test]
    fn global_drop_params_reaches_deployments() {
        let yaml = "model_list:\n  - model_name: a\n    litellm_params:\n      model: anthropic/claude\n  - model_name: b\n    litellm_params:\n      model: anthropic/claude\n      drop_params: false\nlitellm_settings:\n  drop_params: true\n";
        let cfg = Config::from_yaml_str(yaml, "t").unwrap().config;
        let gw = Gateway::from_config(&cfg, &HttpClient::new());
        let router = &gw.router;
        let a = router.deployments("a").next().unwrap();
        let b = router.deployments("b").next().unwrap();
        assert_eq!(a.param("drop_params"), Some(&serde_json::Value::Bool(true)));
        assert_eq!(
            b.param("drop_params"),
            Some(&serde_json::Value::Bool(false))
        );
    }

    #[test]
    fn default_config_builds_mock_groups() {
        let loaded = Config::from_yaml_str(DEFAULT_CONFIG, "default").unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let gw = Gateway::from_config(&loaded.config, &HttpClient::new());
        assert!(gw.warnings.is_empty());
        assert_eq!(gw.router.model_names(), ["mock", "mock-embedding"]);
    }
}
