//! [`GatewayBuilder`]: the whole gateway stack from typed settings.
//!
//! Everything `config.yaml` can express has a typed setter here; [`Gateway::from_config`] and
//! [`Gateway::build`] only translate a [`Config`](crate::config::Config) onto this builder
//! (see `gateway/build.rs`). The builder knows nothing of YAML.

use std::{error::Error as StdError, fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use tower::{util::BoxCloneSyncService, ServiceBuilder};

use super::{live::RouterPlan, Gateway, UpstreamClient};
use crate::{
    auth::{AuthLayer, MasterKeyLayer, ModelAccess, ModelCatalog},
    budget::{BudgetLayer, UnpricedGuardLayer},
    cache::CacheLayer,
    cost::{CostLayer, PriceTable, Pricing},
    error::BoxError,
    fallback::FallbackLayer,
    governance::Governance,
    health::CooldownPolicy,
    provider::{Deployment, Provider, Providers, SharedProvider, DEFAULT_TIMEOUT},
    rate_limit::RateLimitLayer,
    retry::{self, RetryLayer},
    router::{Router, Strategy},
    secret::Secret,
    server::DEFAULT_MAX_BODY_BYTES,
};

/// A setting [`GatewayBuilder::build`] refused: which one, and why.
#[derive(Debug)]
pub struct GatewayError {
    setting: String,
    reason: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl GatewayError {
    fn new(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// The builder setting at fault (`max_body_bytes`, `custom_provider(mycorp)`, …).
    #[must_use]
    pub fn setting(&self) -> &str {
        &self.setting
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.reason)
    }
}

impl StdError for GatewayError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// A `model_group_alias` row: alias → group, hidden from `/v1/models` or not.
#[derive(Clone, Debug)]
struct Alias {
    alias: String,
    group: String,
    hidden: bool,
}

/// Builds a [`Gateway`] from typed settings. Start with [`Gateway::builder`].
///
/// Order of the stack, outermost first: auth (master key, or master key + virtual keys with
/// [`governance`](Self::governance)) → rate limit → budget (governed only) → cost → cache →
/// fallback → retry → router → per deployment: health → timeout → provider → HTTP client.
///
/// ```
/// use std::time::Duration;
/// use llmgate::{gateway::Gateway, provider::{Deployment, HttpClient}, retry::RetryLayer};
///
/// let gateway = Gateway::builder()
///     .deployment(Deployment::new("chat", "mock/echo"))
///     .retry(RetryLayer::new(2))
///     .timeout(Duration::from_secs(30))
///     .build(&HttpClient::new())
///     .expect("valid settings");
/// assert_eq!(gateway.router().model_names(), ["chat"]);
/// ```
#[must_use]
pub struct GatewayBuilder {
    providers: Providers,
    custom: Vec<(Arc<str>, SharedProvider)>,
    deployments: Vec<Deployment>,
    strategy: Strategy,
    pre_call_checks: bool,
    tag_filtering: (bool, bool),
    default_max_parallel_requests: Option<u32>,
    aliases: Vec<Alias>,
    router_redis: Option<String>,
    cooldown: CooldownPolicy,
    retry: RetryLayer,
    fallback: FallbackLayer,
    timeout: Duration,
    stream_timeout: Option<Duration>,
    stream_max_duration: Option<Duration>,
    drop_params: Option<bool>,
    cache: Option<CacheLayer>,
    prices: PriceTable,
    stream_usage: Option<bool>,
    master_key: Option<Secret>,
    governance: Option<Governance>,
    budget_exceeded_status: Option<http::StatusCode>,
    block_unpriced: bool,
    max_budget: Option<f64>,
    edge: crate::server::EdgeSettings,
    max_body_bytes: usize,
    body_read_timeout: Duration,
    timer: crate::clock::Timer,
    clock: crate::clock::Clock,
    #[cfg(feature = "otel")]
    otel: Option<crate::telemetry::Otel>,
    callbacks: crate::callbacks::Callbacks,
    warnings: Vec<String>,
    ops: OpsSettings,
}

/// Health probes, model store and callbacks (`docs/operations.md`).
#[derive(Clone, Default)]
struct OpsSettings {
    callbacks: Vec<String>,
    background_health: Option<Duration>,
    health_timeout: Option<Duration>,
    health_cooldown: bool,
    model_store: Option<(Arc<dyn crate::store::ModelStore>, Duration)>,
}

impl fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("providers", &self.providers)
            .field("deployments", &self.deployments.len())
            .field("strategy", &self.strategy)
            .field("governed", &self.governance.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for GatewayBuilder {
    fn default() -> Self {
        Self {
            providers: Providers::builtin(),
            custom: Vec::new(),
            deployments: Vec::new(),
            strategy: Strategy::default(),
            pre_call_checks: false,
            tag_filtering: (false, false),
            default_max_parallel_requests: None,
            aliases: Vec::new(),
            router_redis: None,
            cooldown: CooldownPolicy::default(),
            retry: RetryLayer::new(retry::DEFAULT_NUM_RETRIES),
            fallback: FallbackLayer::new(),
            timeout: DEFAULT_TIMEOUT,
            stream_timeout: None,
            stream_max_duration: None,
            drop_params: None,
            cache: None,
            prices: PriceTable::builtin(),
            stream_usage: None,
            master_key: None,
            governance: None,
            budget_exceeded_status: None,
            block_unpriced: false,
            max_budget: None,
            edge: crate::server::EdgeSettings::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_read_timeout: crate::server::DEFAULT_BODY_READ_TIMEOUT,
            timer: crate::clock::Timer::current(),
            clock: crate::clock::Clock::system(),
            #[cfg(feature = "otel")]
            otel: None,
            callbacks: crate::callbacks::Callbacks::new(),
            warnings: Vec::new(),
            ops: OpsSettings::default(),
        }
    }
}

impl GatewayBuilder {
    // -- providers and deployments ---------------------------------------------------------

    /// The provider registry deployments are resolved in (default: [`Providers::builtin`]).
    pub fn providers(mut self, providers: Providers) -> Self {
        self.providers = providers;
        self
    }

    /// Registers a custom provider under its [`Provider::name`]: deployments
    /// `model: {name}/…` are served by it. A built-in prefix or a duplicate is an error at
    /// [`build`](Self::build) (to replace a built-in on purpose, use
    /// [`Providers::replace_builtin`] and [`providers`](Self::providers)).
    pub fn custom_provider(self, provider: impl Provider) -> Self {
        let prefix = provider.name();
        self.custom_provider_as(prefix, Arc::new(provider))
    }

    /// Registers `provider` under `prefix` (see [`Providers::register_as`]).
    pub fn custom_provider_as(
        mut self,
        prefix: impl Into<Arc<str>>,
        provider: SharedProvider,
    ) -> Self {
        self.custom.push((prefix.into(), provider));
        self
    }

    /// Adds a deployment. A model group name with `*` is a wildcard group: each call's model
    /// gets its own deployment stack.
    pub fn deployment(mut self, deployment: Deployment) -> Self {
        self.deployments.push(deployment);
        self
    }

    /// Adds deployments.
    pub fn deployments(mut self, deployments: impl IntoIterator<Item = Deployment>) -> Self {
        self.deployments.extend(deployments);
        self
    }

    /// `litellm_settings.drop_params`: applies to every deployment whose params do not say.
    pub fn drop_params(mut self, drop: bool) -> Self {
        self.drop_params = Some(drop);
        self
    }

    // -- router ----------------------------------------------------------------------------

    /// `router_settings.routing_strategy` (and `routing_strategy_args`).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// `router_settings.enable_pre_call_checks`.
    pub fn pre_call_checks(mut self, on: bool) -> Self {
        self.pre_call_checks = on;
        self
    }

    /// `router_settings.enable_tag_filtering` and `tag_filtering_match_any`.
    pub fn tag_filtering(mut self, on: bool, match_any: bool) -> Self {
        self.tag_filtering = (on, match_any);
        self
    }

    /// `router_settings.default_max_parallel_requests`.
    pub fn default_max_parallel_requests(mut self, n: Option<u32>) -> Self {
        self.default_max_parallel_requests = n;
        self
    }

    /// A `router_settings.model_group_alias` row.
    pub fn alias(
        mut self,
        alias: impl Into<String>,
        group: impl Into<String>,
        hidden: bool,
    ) -> Self {
        self.aliases.push(Alias {
            alias: alias.into(),
            group: group.into(),
            hidden,
        });
        self
    }

    /// Shares routing state (usage, cooldowns) through Redis at `url` (`router_settings.redis_*`).
    /// A URL the router cannot use is a warning: routing state then stays in-process.
    pub fn router_redis(mut self, url: impl Into<String>) -> Self {
        self.router_redis = Some(url.into());
        self
    }

    /// Cooldowns: `allowed_fails`, `allowed_fails_policy`, `cooldown_time`, `disable_cooldowns`.
    /// (The only deployment of a group never cools down, as in LiteLLM.)
    pub fn cooldown(mut self, policy: CooldownPolicy) -> Self {
        self.cooldown = policy;
        self
    }

    // -- reliability -----------------------------------------------------------------------

    /// Retries: `num_retries`, `retry_policy`, `retry_after`.
    pub fn retry(mut self, layer: RetryLayer) -> Self {
        self.retry = layer;
        self
    }

    /// Fallbacks of every kind (`fallbacks`, `context_window_fallbacks`,
    /// `content_policy_fallbacks`, `default_fallbacks`, `max_fallbacks`) and the mock-testing
    /// request params (`FallbackLayer::allow_mock_testing`).
    pub fn fallback(mut self, layer: FallbackLayer) -> Self {
        self.fallback = layer;
        self
    }

    /// The default per-call timeout (`request_timeout` / `router_settings.timeout`; default
    /// 600 s); a deployment's own [`Deployment::timeout`] wins. Zero is an error.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The default time to a stream's first chunk (`router_settings.stream_timeout`).
    pub fn stream_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.stream_timeout = timeout;
        self
    }

    /// The longest a stream may last (`router_settings.stream_max_duration`).
    pub fn stream_max_duration(mut self, total: Option<Duration>) -> Self {
        self.stream_max_duration = total;
        self
    }

    // -- cache, cost -----------------------------------------------------------------------

    /// The response cache (`litellm_settings.cache` / `cache_params`); none by default.
    pub fn cache(mut self, cache: Option<CacheLayer>) -> Self {
        self.cache = cache;
        self
    }

    /// The price table (default: the built-in one).
    pub fn price_table(mut self, table: PriceTable) -> Self {
        self.prices = table;
        self
    }

    /// Whether streams ask the provider for usage (`stream_options.include_usage`) so that they
    /// are priced. Default: on with [`governance`](Self::governance), off without (the
    /// database-free stack sends upstream exactly what the client sent).
    pub fn stream_usage(mut self, on: bool) -> Self {
        self.stream_usage = Some(on);
        self
    }

    // -- auth and governance ---------------------------------------------------------------

    /// `general_settings.master_key`.
    pub fn master_key(mut self, key: Option<Secret>) -> Self {
        self.master_key = key;
        self
    }

    /// Keys, limits, budgets and spend: a started [`Governance`] (key store, rate-limit counters,
    /// spend writer, proxy budget; see [`governance::start`](crate::governance::start)). With it
    /// the stack gets virtual keys, rate limits, budgets, spend logs and the management API.
    pub fn governance(mut self, governance: Governance) -> Self {
        self.governance = Some(governance);
        self
    }

    /// `litellm_settings.budget_exceeded_status_code` (governed only). Must be 4xx or 5xx.
    pub fn budget_exceeded_status(mut self, status: http::StatusCode) -> Self {
        self.budget_exceeded_status = Some(status);
        self
    }

    /// `general_settings.block_unpriced_models_for_budgeted_keys` (governed only).
    pub fn block_unpriced_models_for_budgeted_keys(mut self, on: bool) -> Self {
        self.block_unpriced = on;
        self
    }

    /// `litellm_settings.max_budget`, as the management API reports it (governed only; the
    /// budget itself is the [`Governance`]'s proxy budget).
    pub fn max_budget(mut self, max: Option<f64>) -> Self {
        self.max_budget = max;
        self
    }

    // -- edge ------------------------------------------------------------------------------

    /// The edge's `general_settings` (`moderation_model`, `litellm_exception_prefix`).
    pub fn edge_settings(mut self, settings: crate::server::EdgeSettings) -> Self {
        self.edge = settings;
        self
    }

    /// Request body limit (`general_settings.max_request_size_mb`). Zero is an error.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Time allowed to receive a request body (`general_settings.request_body_timeout`).
    pub fn body_read_timeout(mut self, limit: Duration) -> Self {
        self.body_read_timeout = limit;
        self
    }

    /// Where the per-request deadlines are armed (the timeout layer's, the edge's body read
    /// timeout): tokio's timer on the calling runtime by default; the binary passes
    /// [`Timer::dedicated`](crate::clock::Timer::dedicated).
    pub fn timer(mut self, timer: crate::clock::Timer) -> Self {
        self.timer = timer;
        self
    }

    /// The clock every layer, store and router of the gateway reads (rate-limit windows, budget
    /// periods, cooldowns, readiness, spend timestamps): [`Clock::system`](crate::clock::Clock::system)
    /// by default; a test over real sockets passes [`Clock::manual`](crate::clock::Clock::manual)
    /// and steps it. A [`governance`](Self::governance) given here reads the clock it was
    /// started with ([`BuildOptions::clock`](crate::governance::BuildOptions::clock)): give both the
    /// same handle.
    pub fn clock(mut self, clock: crate::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Adds a non-fatal finding to the built gateway's [`Gateway::warnings`].
    pub fn warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }

    pub(super) fn warnings_mut(&mut self) -> &mut Vec<String> {
        &mut self.warnings
    }

    // -- operations ------------------------------------------------------------------------

    /// Traces every request with `otel`: a request span at the top of the stack, an attempt
    /// span at the top of each deployment's stack, the attempt's `traceparent` on provider
    /// requests (see [`telemetry`](crate::telemetry)). Off by default: the layers are then not
    /// in the stack.
    #[cfg(feature = "otel")]
    pub fn otel(mut self, otel: crate::telemetry::Otel) -> Self {
        self.otel = Some(otel);
        self
    }

    /// Who gets each call's record: the Prometheus registry (`GET /metrics`) and the logging
    /// sinks (default: none; the record layer is then left out of the stack).
    pub fn callbacks(mut self, callbacks: crate::callbacks::Callbacks) -> Self {
        self.callbacks = callbacks;
        self
    }

    /// The callbacks `/health/readiness` lists (`success_callbacks`). Default: the ones in use
    /// (`prometheus` when metrics are on, each logging sink's name, `otel` when traced).
    pub fn readiness_callbacks(
        mut self,
        names: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.ops.callbacks = names.into_iter().map(Into::into).collect();
        self
    }

    /// `general_settings.background_health_checks` with `health_check_interval`: probes run
    /// every `interval` in the background and `GET /health` answers the last report at once.
    /// `None` (the default): `/health` probes when it is called.
    pub fn background_health_checks(mut self, interval: Option<Duration>) -> Self {
        self.ops.background_health = interval;
        self
    }

    /// The time a health probe may take (`general_settings.health_check_timeout`; default 60 s).
    pub fn health_check_timeout(mut self, timeout: Duration) -> Self {
        self.ops.health_timeout = Some(timeout);
        self
    }

    /// Whether a failed background probe cools the deployment down until the next probe
    /// (`general_settings.health_check_cooldown`; default off).
    pub fn health_check_cooldown(mut self, on: bool) -> Self {
        self.ops.health_cooldown = on;
        self
    }

    /// Models kept in `store` (`store_model_in_db: true`): `/model/new`, `/model/update` and
    /// `/model/delete` write there, and the table is read every `poll` (from the first await of
    /// the runtime the gateway is built on) so that every replica serves each change.
    pub fn model_store(mut self, store: Arc<dyn crate::store::ModelStore>, poll: Duration) -> Self {
        self.ops.model_store = Some((store, poll));
        self
    }

    // -- build -----------------------------------------------------------------------------

    /// Checks every setting, then builds the stack over `client` (any HTTP client service,
    /// usually [`HttpClient`](crate::provider::HttpClient)).
    ///
    /// # Errors
    /// A [`GatewayError`] naming the first invalid setting: a custom provider under a built-in
    /// or duplicate prefix, a zero timeout or body limit, a deployment without a model group, a
    /// budget status that is not 4xx/5xx.
    pub fn build<C, B>(mut self, client: &C) -> Result<Gateway, GatewayError>
    where
        C: UpstreamClient<B>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.check()?;
        Ok(self.assemble(client))
    }

    /// Registers the custom providers and checks the typed values.
    pub(super) fn check(&mut self) -> Result<(), GatewayError> {
        for (prefix, provider) in std::mem::take(&mut self.custom) {
            let providers = std::mem::take(&mut self.providers);
            self.providers = providers
                .register_as(prefix.clone(), provider)
                .map_err(|e| GatewayError {
                    setting: format!("custom_provider({prefix})"),
                    reason: e.to_string(),
                    source: Some(Box::new(e)),
                })?;
        }
        if self.timeout.is_zero() {
            return Err(GatewayError::new("timeout", "must be more than zero"));
        }
        if self.max_body_bytes == 0 {
            return Err(GatewayError::new(
                "max_body_bytes",
                "must be more than zero",
            ));
        }
        if let Some(dep) = self
            .deployments
            .iter()
            .find(|d| d.model_group.trim().is_empty())
        {
            return Err(GatewayError::new(
                "deployment",
                format!("`{}/{}` has no model group", dep.provider, dep.model),
            ));
        }
        if let Some(s) = self
            .budget_exceeded_status
            .filter(|s| !(s.is_client_error() || s.is_server_error()))
        {
            return Err(GatewayError::new(
                "budget_exceeded_status",
                format!("{} is not a 4xx or 5xx status", s.as_u16()),
            ));
        }
        Ok(())
    }

    /// The one stack chain. Infallible: [`check`](Self::check) ran (or, for a config, its
    /// findings became warnings).
    pub(super) fn assemble<C, B>(mut self, client: &C) -> Gateway
    where
        C: UpstreamClient<B>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let governed = self.governance.is_some();
        let proxy_budget = self
            .governance
            .as_ref()
            .is_some_and(|g| g.proxy_budget.is_some());
        let block_unpriced = governed && self.block_unpriced;
        let guard = block_unpriced.then_some(proxy_budget);
        let plan = self.plan(guard);
        let (router, models) = self.router(client, guard);
        let ops = std::mem::take(&mut self.ops);
        let mut prober = crate::probe::Prober::new(
            models.router().clone(),
            crate::probe::probe_client(client),
            self.providers.clone(),
        )
        .cool_failed(ops.health_cooldown);
        if let Some(t) = ops.health_timeout {
            prober = prober.timeout(t);
        }
        if let Some(every) = ops.background_health {
            prober = prober.interval(every);
            if !prober.start() {
                self.warnings.push(
                    "general_settings.background_health_checks: no tokio runtime; /health probes when called".to_owned(),
                );
            }
        }
        let model_store = ops.model_store.as_ref().map(|(s, _)| s.clone());
        if let Some((store, every)) = &ops.model_store {
            if !models.watch(store.clone(), *every) {
                self.warnings.push(
                    "general_settings.store_model_in_db: no tokio runtime; the database's models are not read".to_owned(),
                );
            }
        }
        let mut warnings = std::mem::take(&mut self.warnings);
        let cache_handle = self.cache.as_ref().map(CacheLayer::handle);

        let gov = self.governance;
        let (master_auth, key_auth, rate_limit, budget, spend_log, management) = match &gov {
            None => (
                Some(MasterKeyLayer::new(self.master_key.clone())),
                None,
                None,
                None,
                None,
                crate::management::not_found_router(),
            ),
            Some(g) => (
                None,
                Some(AuthLayer::new(
                    self.master_key.clone(),
                    Some(g.keys.clone()),
                )),
                Some(RateLimitLayer::new(g.counters.clone())),
                Some(
                    BudgetLayer::new(Some(g.spend.log().ledger().clone()))
                        .proxy_budget(g.proxy_budget.clone())
                        .status(self.budget_exceeded_status)
                        .clock(self.clock.clone()),
                ),
                Some(g.spend.log()),
                crate::management::router(self.master_key.clone(), g.keys.clone(), self.max_budget),
            ),
        };
        let keys = gov.as_ref().map(|g| g.keys.clone());
        let keys_for_ui = keys.clone();
        let management = super::ops::ops_router(
            super::ops::Ops::new(
                self.master_key.clone(),
                keys,
                prober.clone(),
                models.clone(),
                model_store,
            ),
            management,
        );
        let management = crate::ui::router(self.master_key.clone(), keys_for_ui).merge(management);
        #[cfg(feature = "otel")]
        let request_trace = self
            .otel
            .as_ref()
            .map(crate::telemetry::Otel::request_layer);
        #[cfg(not(feature = "otel"))]
        let request_trace: Option<tower::layer::util::Identity> = None;
        let callbacks = std::mem::take(&mut self.callbacks);
        let mut callback_names = ops.callbacks.clone();
        if callback_names.is_empty() {
            if callbacks.metrics_registry().is_some() {
                callback_names.push("prometheus".to_owned());
            }
            callback_names.extend(callbacks.sinks().iter().map(|s| s.name().to_owned()));
            if request_trace.is_some() {
                callback_names.push("otel".to_owned());
            }
        }
        let record = (!callbacks.is_empty())
            .then(|| crate::callbacks::CallRecordLayer::new(callbacks.clone()));
        let parts = StackParts {
            request_trace,
            record,
            master_auth,
            key_auth,
            rate_limit,
            budget,
            spend_log,
            stream_usage: self.stream_usage.unwrap_or(governed),
            cache: self.cache.map(|c| c.clock(self.clock.clone())),
            governed,
            block_unpriced,
            prices: self.prices.clone(),
            clock: self.clock.clone(),
        };
        // The stack as built: its catalog (model access) and prices from the deployments.
        let first = parts.stack(&router, &models.all_deployments(), &plan);
        warnings.extend(first.warnings);
        let unpriced = first.unpriced;
        let admission = parts
            .master_auth
            .as_ref()
            .map(MasterKeyLayer::admission)
            .or_else(|| first.key_auth.as_ref().map(AuthLayer::admission));
        // Each model change rebuilds the stack over the new table (new prices, new catalog).
        let mut management = management;
        if let Some(m) = callbacks.metrics_registry() {
            let states = router.clone();
            m.deployment_states(move || crate::metrics::deployment_states_of(&states));
            management = crate::metrics::router(m.clone(), admission.clone()).merge(management);
        }
        let stack = models.attach_stack(first.stack, move |router, deps, plan| {
            let built = parts.stack(router, deps, plan);
            for w in &built.warnings {
                tracing::warn!("{w}");
            }
            built.stack
        });
        // The database's response store when there is one (shared by every gateway on it, kept
        // across restarts); the in-memory one otherwise.
        let responses: crate::store::responses::SharedResponseStore = match gov
            .as_ref()
            .and_then(|g| g.store.clone())
        {
            Some(store) => std::sync::Arc::new(crate::store::SqlResponseStore::new(store)),
            None => std::sync::Arc::new(crate::store::responses::MemoryResponseStore::default()),
        };
        Gateway {
            stack,
            router,
            models,
            prober,
            callback_names,
            callbacks,
            warnings,
            unpriced,
            max_body_bytes: self.max_body_bytes,
            body_read_timeout: self.body_read_timeout,
            edge: self.edge,
            timer: self.timer,
            clock: self.clock.clone(),
            admission,
            cache: cache_handle,
            governance: gov,
            management,
            responses,
        }
    }

    /// The routing settings, for the router built now and for every table that replaces it
    /// ([`LiveModels`](super::LiveModels)). `guard` (`Some(proxy_budget)`) puts
    /// [`UnpricedGuardLayer`] before deployments without a price.
    pub(super) fn plan(&self, guard: Option<bool>) -> RouterPlan {
        RouterPlan {
            providers: self.providers.clone(),
            strategy: self.strategy,
            pre_call_checks: self.pre_call_checks,
            tag_filtering: self.tag_filtering,
            default_max_parallel_requests: self.default_max_parallel_requests,
            aliases: self
                .aliases
                .iter()
                .map(|a| (a.alias.clone(), a.group.clone(), a.hidden))
                .collect(),
            router_redis: self.router_redis.clone(),
            cooldown: self.cooldown.clone(),
            timeout: self.timeout,
            stream_timeout: self.stream_timeout,
            stream_max_duration: self.stream_max_duration,
            drop_params: self.drop_params,
            prices: self.prices.clone(),
            timer: self.timer,
            clock: self.clock.clone(),
            guard,
            fallback: self.fallback.clone(),
            retry: self.retry.clone(),
            #[cfg(feature = "otel")]
            otel: self.otel.clone(),
            metrics: self.callbacks.metrics_registry().cloned(),
        }
    }

    /// The router over every deployment, each its own stack over `client`, and the rebuild
    /// handle that swaps in new tables later.
    fn router<C, B>(&mut self, client: &C, guard: Option<bool>) -> (Router, super::LiveModels)
    where
        C: UpstreamClient<B>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let plan = self.plan(guard);
        let deployments = std::mem::take(&mut self.deployments);
        let (router, warnings) = plan.build(&deployments, client, None);
        self.warnings.extend(warnings);
        let live = super::LiveModels::new(router.clone(), plan, deployments, client);
        (router, live)
    }
}

/// The layers above the router, kept to build the stack again over a new deployment table.
#[derive(Clone)]
struct StackParts {
    #[cfg(feature = "otel")]
    request_trace: Option<crate::telemetry::RequestTraceLayer>,
    #[cfg(not(feature = "otel"))]
    request_trace: Option<tower::layer::util::Identity>,
    record: Option<crate::callbacks::CallRecordLayer>,
    master_auth: Option<MasterKeyLayer>,
    key_auth: Option<AuthLayer>,
    rate_limit: Option<RateLimitLayer>,
    budget: Option<BudgetLayer>,
    spend_log: Option<crate::spend::SpendLog>,
    stream_usage: bool,
    cache: Option<CacheLayer>,
    governed: bool,
    block_unpriced: bool,
    prices: PriceTable,
    clock: crate::clock::Clock,
}

/// A stack built by [`StackParts::stack`], with what building it found.
struct Built {
    stack: crate::router::DeploymentService,
    key_auth: Option<AuthLayer>,
    unpriced: Vec<String>,
    warnings: Vec<String>,
}

impl StackParts {
    /// The one stack chain over `router`: model access from `deps` and the plan's aliases,
    /// each deployment's price from the price table, the plan's fallbacks and retries.
    fn stack(&self, router: &Router, deps: &[Deployment], plan: &RouterPlan) -> Built {
        let catalog = Arc::new(catalog_of(&plan.aliases, deps));
        let mut warnings = Vec::new();
        let pricing = pricing(&self.prices, router, &mut warnings, self.block_unpriced);
        let unpriced = pricing.unpriced().to_vec();
        let mut cost = CostLayer::new(pricing)
            .stream_usage(self.stream_usage)
            .clock(self.clock.clone());
        if let Some(log) = &self.spend_log {
            cost = cost.spend_log(log.clone());
        }
        let key_auth = self.key_auth.clone().map(|a| a.catalog(catalog.clone()));
        let fallback = if self.governed {
            plan.fallback
                .clone()
                .access(Arc::new(ModelAccess::new(catalog)))
        } else {
            plan.fallback.clone()
        };
        let stack = ServiceBuilder::new()
            // Outermost: the request span covers every refusal too.
            .option_layer(self.request_trace.clone())
            .option_layer(
                self.record
                    .as_ref()
                    .map(crate::callbacks::CallRecordLayer::auth_refusals),
            )
            .option_layer(self.master_auth.clone())
            .option_layer(key_auth.clone())
            // `"model": "a,b"`: under the key check (the whole list), over everything per call.
            .layer(crate::fanout::FanOutLayer::new())
            // Inside auth (it reads the caller), outside everything that may refuse or spend.
            .option_layer(self.record.clone())
            .option_layer(self.rate_limit.clone())
            .option_layer(self.budget.clone())
            .layer(cost)
            .option_layer(self.cache.clone())
            // Routing and reliability: each model group gets its retries before a fallback.
            .layer(fallback)
            .layer(plan.retry.clone())
            .service(router.clone());
        Built {
            stack: BoxCloneSyncService::new(stack),
            key_auth,
            unpriced,
            warnings,
        }
    }
}

/// Model access's view: aliases and each group's `model_info.access_groups`.
fn catalog_of(aliases: &[(String, String, bool)], deps: &[Deployment]) -> ModelCatalog {
    let mut catalog = ModelCatalog::new();
    for (alias, group, _) in aliases {
        catalog = catalog.alias(alias.clone(), group.as_str());
    }
    for dep in deps {
        let group = dep.model_group.to_string();
        catalog = catalog.group(group.clone());
        let groups = dep
            .model_info
            .get("access_groups")
            .and_then(serde_json::Value::as_array);
        for g in groups.into_iter().flatten().filter_map(|g| g.as_str()) {
            catalog = catalog.access_group(group.clone(), g);
        }
    }
    catalog
}

/// The unpriced guard for `dep` when `guard` is on (`Some(proxy_budget)`) and `table` has no
/// price for it.
pub(super) fn unpriced_guard(
    table: &PriceTable,
    dep: &Deployment,
    guard: Option<bool>,
) -> Option<UnpricedGuardLayer> {
    let proxy_budget = guard?;
    table.for_deployment(dep).is_none().then(|| {
        UnpricedGuardLayer::new(format!("{}/{}", dep.provider, dep.model))
            .proxy_budget(proxy_budget)
    })
}

/// Each deployment's price; deployments without one are a warning (they cost 0, or are refused
/// to callers with a budget when `block` is on).
fn pricing(
    table: &PriceTable,
    router: &Router,
    warnings: &mut Vec<String>,
    block: bool,
) -> Arc<Pricing> {
    let deps: Vec<Arc<Deployment>> = router
        .model_names()
        .iter()
        .flat_map(|g| router.deployments(g).cloned().collect::<Vec<_>>())
        .collect();
    let pricing = Pricing::new(table, deps.iter().map(|d| &**d));
    for m in pricing.unpriced() {
        let what = if block {
            "refused to callers with a budget (general_settings.block_unpriced_models_for_budgeted_keys), logged at cost 0 for the others"
        } else {
            "its calls are logged at cost 0"
        };
        warnings.push(format!(
            "no price known for `{m}`: {what} (set input_cost_per_token / output_cost_per_token in litellm_params)"
        ));
    }
    Arc::new(pricing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        client::Client,
        config::Config,
        gateway::Gateway,
        provider::HttpClient,
        types::chat::{ChatRequest, Message},
    };

    fn hello(model: &str) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            messages: vec![Message::new("user", "hello")],
            mock_response: Some(serde_json::json!("the same answer")),
            ..ChatRequest::default()
        }
    }

    const YAML: &str = "model_list:\n\
        - model_name: chat\n  litellm_params: {model: mock/a}\n\
        - model_name: chat\n  litellm_params: {model: mock/b}\n\
        - model_name: other\n  litellm_params: {model: mock/c}\n\
        router_settings:\n  routing_strategy: least-busy\n  num_retries: 1\n  model_group_alias: {alias: chat}\n";

    fn from_builder() -> Gateway {
        Gateway::builder()
            .deployment(Deployment::new("chat", "mock/a"))
            .deployment(Deployment::new("chat", "mock/b"))
            .deployment(Deployment::new("other", "mock/c"))
            .strategy("least-busy".parse().expect("a strategy"))
            .retry(RetryLayer::new(1))
            .alias("alias", "chat", false)
            .build(&HttpClient::new())
            .expect("valid settings")
    }

    #[tokio::test]
    async fn builder_gateway_answers_like_the_config_gateway() {
        let config = Config::from_yaml_str(YAML, "t.yaml").expect("loads").config;
        let by_config = Gateway::from_config(&config, &HttpClient::new());
        let by_builder = from_builder();
        assert_eq!(
            by_config.router().model_names(),
            by_builder.router().model_names()
        );
        assert_eq!(
            by_config.router().strategy(),
            by_builder.router().strategy()
        );
        assert_eq!(by_config.max_body_bytes(), by_builder.max_body_bytes());
        assert_eq!(
            by_config.body_read_timeout(),
            by_builder.body_read_timeout()
        );
        for model in ["chat", "alias", "other"] {
            let a = Client::new(by_config.stack().clone())
                .chat(hello(model))
                .await
                .expect("config gateway answers");
            let b = Client::new(by_builder.stack().clone())
                .chat(hello(model))
                .await
                .expect("builder gateway answers");
            let text = |r: &crate::types::chat::ChatResponse| {
                r.choices[0].message.as_ref().map(Message::text)
            };
            assert_eq!(text(&a), text(&b), "{model}");
            assert_eq!(text(&a).as_deref(), Some("the same answer"));
        }
        let missing = |gw: &Gateway| {
            let stack = gw.stack().clone();
            async move {
                Client::new(stack)
                    .chat(hello("nope"))
                    .await
                    .expect_err("unknown group")
                    .status()
            }
        };
        assert_eq!(missing(&by_config).await, missing(&by_builder).await);
    }

    #[tokio::test]
    async fn master_key_is_enforced_by_both() {
        let config = Config::from_yaml_str(
            "model_list:\n- model_name: chat\n  litellm_params: {model: mock/a}\ngeneral_settings: {master_key: sk-test-1}\n",
            "t.yaml",
        )
        .expect("loads")
        .config;
        let by_config = Gateway::from_config(&config, &HttpClient::new());
        let by_builder = Gateway::builder()
            .deployment(Deployment::new("chat", "mock/a"))
            .master_key(Some(Secret::new("sk-test-1")))
            .build(&HttpClient::new())
            .expect("valid settings");
        for gw in [&by_config, &by_builder] {
            assert!(gw.admission().is_some());
            let err = Client::new(gw.stack().clone())
                .chat(hello("chat"))
                .await
                .expect_err("no key presented");
            assert_eq!(err.status(), http::StatusCode::UNAUTHORIZED, "{err}");
        }
    }

    #[test]
    fn invalid_settings_are_errors_naming_them() {
        let build = |b: GatewayBuilder| b.build(&HttpClient::new()).map(|_| ()).unwrap_err();
        let err = build(Gateway::builder().timeout(Duration::ZERO));
        assert_eq!(err.setting(), "timeout");
        let err = build(Gateway::builder().max_body_bytes(0));
        assert_eq!(err.setting(), "max_body_bytes");
        let err = build(Gateway::builder().budget_exceeded_status(http::StatusCode::OK));
        assert_eq!(err.setting(), "budget_exceeded_status");
        assert!(err.to_string().contains("200"), "{err}");
        let err = build(Gateway::builder().deployment(Deployment::new(" ", "mock/a")));
        assert_eq!(err.setting(), "deployment");
        let mock = crate::provider::lookup("mock").expect("built in");
        let err = build(Gateway::builder().custom_provider_as("mock", mock));
        assert_eq!(err.setting(), "custom_provider(mock)");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn unknown_provider_is_a_warning_with_the_current_message() {
        let gw = Gateway::builder()
            .deployment(Deployment::new("corp", "mycorp/x"))
            .build(&HttpClient::new())
            .expect("builds");
        assert!(
            gw.warnings().iter().any(|w| w.starts_with(
                "model_list[0].litellm_params.model: provider `mycorp` is not supported yet"
            )),
            "{:?}",
            gw.warnings()
        );
    }
}
