//! The one build step from a LiteLLM [`Config`] to the gateway's service stack.
//!
//! Layers never see the config: this module maps it to [`Deployment`]s, provider services, the
//! [`Router`] and the auth layer, and returns the model-level stack and the HTTP edge.
//!
//! Default order (outermost first): `Auth → RateLimit → Budget → Cost → Cache → Fallback → Retry →
//! Router → (per deployment) Health → Timeout → Provider → HttpClient`, built by the async
//! [`Gateway::build`] (store, Redis, spend writer). [`Gateway::from_config`] builds the
//! database-free stack `MasterKey → Cost → Cache → Fallback → Retry → Router → …`.

use std::{sync::Arc, time::Duration};

use futures_util::future;
use tower::{util::BoxCloneSyncService, ServiceBuilder};

use bytes::Bytes;
use http_body_util::Full;

use crate::{
    auth::{AuthLayer, MasterKeyLayer, ModelAccess, ModelCatalog},
    budget::{BudgetLayer, UnpricedGuardLayer},
    cache::{CacheHandle, CacheLayer},
    config::{Config, ModelEntry},
    cost::{CostLayer, PriceTable, Pricing},
    error::{BoxError, LlmError},
    fallback::FallbackLayer,
    governance::{BuildError, BuildOptions},
    health::{CooldownPolicy, HealthLayer, PolicyClass},
    provider::{self, stable_id, Deployment, ProviderLayer, DEFAULT_TIMEOUT},
    rate_limit::RateLimitLayer,
    retry::{self, RetryLayer},
    router::{DeploymentService, MakeDeploymentService, Router, Strategy},
    server::{OpenAiServer, DEFAULT_MAX_BODY_BYTES},
    timeout::TimeoutLayer,
    types::{LlmRequest, LlmResponse},
};

/// The embedded default config: a `mock` chat model group and a `mock-embedding` group, served by
/// the built-in mock provider (no account, no network).
pub const DEFAULT_CONFIG: &str = include_str!("../default_config.yaml");

/// The model-level stack the gateway serves, boxed once at this seam so that each concern's layer
/// can be added (or left out by config) without changing the type.
pub type GatewayStack = BoxCloneSyncService<LlmRequest, LlmResponse, LlmError>;

/// The built gateway: the model-level stack, the HTTP edge, and what building it found worth a
/// warning.
#[derive(Debug)]
pub struct Gateway {
    /// The model-level stack (every layer, outermost first, ending in the router).
    pub stack: GatewayStack,
    /// The router at the bottom of the stack (model groups, deployments).
    pub router: Router,
    /// Non-fatal findings (unsupported providers, …).
    pub warnings: Vec<String>,
    /// Deployments without a known price, as `provider/model` (each once; wildcard deployments
    /// are priced per call and not listed). Their calls are logged at cost 0, or refused to
    /// callers with a budget under `general_settings.block_unpriced_models_for_budgeted_keys`.
    pub unpriced: Vec<String>,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// Time allowed to receive a request body (`general_settings.request_body_timeout`).
    pub body_read_timeout: std::time::Duration,
    /// The auth layer's key check, run by the edge before it reads a body.
    pub admission: Option<crate::auth::Admission>,
    /// The response cache's counters, when `litellm_settings.cache` is on.
    pub cache: Option<CacheHandle>,
    /// Keys, budgets, limits and spend ([`Gateway::build`] only).
    pub governance: Option<crate::governance::Governance>,
    /// The management API routes (404 for everything without governance).
    pub management: axum::Router,
}

/// Bounds of an HTTP client service the gateway can call providers through.
pub trait UpstreamClient<B>:
    tower_service::Service<
        http::Request<Full<Bytes>>,
        Response = http::Response<B>,
        Error: Into<BoxError>,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<C, B> UpstreamClient<B> for C where
    C: tower_service::Service<
            http::Request<Full<Bytes>>,
            Response = http::Response<B>,
            Error: Into<BoxError>,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

impl Gateway {
    /// Builds the stack for `config` over `client`, any HTTP client service (usually
    /// [`HttpClient`](crate::provider::HttpClient); a test double in tests).
    ///
    /// Order, outermost first: auth → (rate limit → budget → cost → cache, as those layers land) →
    /// fallback → retry → router → per deployment: health → timeout → provider → HTTP client.
    #[must_use]
    pub fn from_config<C, B>(config: &Config, client: &C) -> Self
    where
        C: UpstreamClient<B>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut warnings = Vec::new();
        // `LLMGATE_MODEL_PRICES` applies here too (the cost header, `--check`'s unpriced list).
        let table = crate::governance::price_table(&crate::governance::BuildOptions::default())
            .unwrap_or_else(|e| {
                warnings.push(format!("{e}; using the built-in price table"));
                PriceTable::builtin()
            });
        let router = build_router(config, client, &mut warnings, &table, None);
        let pricing = pricing(&table, &router, &mut warnings, false);
        let unpriced = pricing.unpriced().to_vec();
        let cache = cache_layer(config, &mut warnings);
        let cache_handle = cache.as_ref().map(CacheLayer::handle);
        // No stream-usage injection here: the database-free stack sends upstream exactly what
        // the client sent (the conformance corpus checks it).
        let auth = auth_layer(config);
        let admission = Some(auth.admission());
        let stack = ServiceBuilder::new()
            .layer(auth)
            .layer(CostLayer::new(pricing).stream_usage(false))
            .option_layer(cache)
            // Routing and reliability: each model group gets its retries before a fallback.
            .layer(fallback_layer(config))
            .layer(retry_layer(config))
            .service(router.clone());
        Self {
            stack: BoxCloneSyncService::new(stack),
            router,
            warnings,
            unpriced,
            max_body_bytes: max_body_bytes(config),
            body_read_timeout: crate::server::body_read_timeout(config),
            admission,
            cache: cache_handle,
            governance: None,
            management: crate::management::not_found_router(),
        }
    }

    /// Builds the governed stack for `config` over `client`: connects the store (SQLite or
    /// PostgreSQL, migrations run), Redis for shared limits when configured, and starts the spend
    /// writer. See [`governance`](crate::governance) for how each is chosen.
    ///
    /// Order, outermost first: auth (master key + virtual keys) → rate limit → budget → cost →
    /// cache → fallback → retry → router → per deployment: health → timeout → provider → HTTP
    /// client.
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
        let mut warnings = Vec::new();
        let table = crate::governance::price_table(&opts)?;
        let ls = &config.litellm_settings;
        let proxy_budget = ls.max_budget.is_some_and(|m| m > 0.0);
        if proxy_budget && ls.budget_duration.as_deref().is_none_or(str::is_empty) {
            warnings.push("litellm_settings.max_budget without budget_duration: the proxy budget never resets (LiteLLM refuses to start without budget_duration)".to_owned());
        }
        let block_unpriced = config
            .general_settings
            .block_unpriced_models_for_budgeted_keys
            == Some(true);
        let guard = block_unpriced.then_some(proxy_budget);
        let router = build_router(config, client, &mut warnings, &table, guard);
        let pricing = pricing(&table, &router, &mut warnings, block_unpriced);
        let unpriced = pricing.unpriced().to_vec();
        let gov = crate::governance::start(config, &opts).await?;
        let cache = cache_layer(config, &mut warnings);
        let cache_handle = cache.as_ref().map(CacheLayer::handle);
        let master = config.general_settings.master_key.clone();
        let catalog = Arc::new(model_catalog(config));
        let auth = AuthLayer::new(master.clone(), Some(gov.keys.clone())).catalog(catalog.clone());
        let admission = Some(auth.admission());
        let stack = ServiceBuilder::new()
            .layer(auth)
            .layer(RateLimitLayer::new(gov.counters.clone()))
            .layer(
                BudgetLayer::new(Some(gov.spend.log().ledger().clone()))
                    .proxy_budget(gov.proxy_budget.clone())
                    .status(
                        ls.budget_exceeded_status_code
                            .and_then(|c| http::StatusCode::from_u16(c).ok()),
                    ),
            )
            .layer(CostLayer::new(pricing).spend_log(gov.spend.log()))
            .option_layer(cache)
            .layer(fallback_layer(config).access(Arc::new(ModelAccess::new(catalog))))
            .layer(retry_layer(config))
            .service(router.clone());
        let management =
            crate::management::router(master, gov.keys.clone(), config.litellm_settings.max_budget);
        Ok(Self {
            stack: BoxCloneSyncService::new(stack),
            router,
            warnings,
            unpriced,
            max_body_bytes: max_body_bytes(config),
            body_read_timeout: crate::server::body_read_timeout(config),
            admission,
            cache: cache_handle,
            governance: Some(gov),
            management,
        })
    }

    /// The HTTP edge over the stack with the management API for every other path.
    #[must_use]
    pub fn app(&self) -> OpenAiServer<GatewayStack, axum::Router> {
        self.server().with_fallback(self.management.clone())
    }

    /// Stops the governance services after `serve` returned: writes every queued spend row
    /// (retrying for up to `timeout`). Returns the spend writer's counters.
    pub async fn shutdown(self, timeout: Duration) -> Option<crate::spend::SpendStats> {
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
            .admission(self.admission.clone())
            .readiness(self.readiness())
    }

    /// What `/health/readiness` reports: the database ([`Gateway::build`] only), the cache and
    /// the state of Redis.
    #[must_use]
    pub fn readiness(&self) -> crate::server::Readiness {
        crate::server::Readiness::with(
            self.governance.as_ref().map(|g| g.store.clone()),
            self.cache.as_ref().map(|c| {
                if c.backend() == "redis" {
                    "redis"
                } else {
                    "local"
                }
            }),
        )
        .redis(self.redis_breakers())
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

/// Auth: the master key (`general_settings.master_key`).
fn auth_layer(config: &Config) -> MasterKeyLayer {
    MasterKeyLayer::new(config.general_settings.master_key.clone())
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

/// Model access's view of the config: `model_group_alias` targets and each group's
/// `model_info.access_groups`. (Malformed aliases are reported by [`build_router`].)
fn model_catalog(config: &Config) -> ModelCatalog {
    let mut catalog = ModelCatalog::new();
    for (alias, target) in config.router_settings.model_group_alias.iter().flatten() {
        let group = match target {
            serde_json::Value::String(g) => Some(g.as_str()),
            serde_json::Value::Object(o) => o.get("model").and_then(|m| m.as_str()),
            _ => None,
        };
        if let Some(g) = group {
            catalog = catalog.alias(alias.clone(), g);
        }
    }
    for entry in &config.model_list {
        catalog = catalog.group(entry.model_name.clone());
        let groups = entry
            .model_info
            .get("access_groups")
            .and_then(serde_json::Value::as_array);
        for g in groups.into_iter().flatten().filter_map(|g| g.as_str()) {
            catalog = catalog.access_group(entry.model_name.clone(), g);
        }
    }
    catalog
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

/// A deployment's stack: health (cooldown) → timeout → provider → HTTP client. The provider's own
/// timeout is lifted: the timeout layer governs (so a request's own `timeout` can be longer).
fn deployment_stack<C, B>(
    dep: &Arc<Deployment>,
    provider: &'static dyn provider::Provider,
    client: &C,
    health: &HealthLayer,
    timeout: TimeoutLayer,
    guard: Option<UnpricedGuardLayer>,
) -> DeploymentService
where
    C: UpstreamClient<B>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut inner = (**dep).clone();
    inner.timeout = None;
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            // Before health: a refusal is not the deployment's failure.
            .option_layer(guard)
            .layer(health.clone())
            .layer(timeout)
            .layer(ProviderLayer::new(provider, Arc::new(inner)).without_default_timeout())
            .service(client.clone()),
    )
}

fn unsupported_service(name: &str) -> DeploymentService {
    let name = name.to_owned();
    BoxCloneSyncService::new(tower::service_fn(move |_req: LlmRequest| {
        future::ready(Err::<LlmResponse, _>(LlmError::bad_request(format!(
            "provider `{name}` is not supported by llmgate yet"
        ))))
    }))
}

/// The unpriced guard for `dep` when `guard` is on (`Some(proxy_budget)`) and `table` has no
/// price for it.
fn unpriced_guard(
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

/// The router over every `model_list` entry, each deployment its own stack over `client`.
/// `table` fills in context windows (`model_info.max_input_tokens`) for the pre-call checks;
/// `guard` (`Some(proxy_budget)`) puts [`UnpricedGuardLayer`] before deployments without a price.
fn build_router<C, B>(
    config: &Config,
    client: &C,
    warnings: &mut Vec<String>,
    table: &PriceTable,
    guard: Option<bool>,
) -> Router
where
    C: UpstreamClient<B>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let rs = &config.router_settings;
    let default_timeout = config
        .litellm_settings
        .request_timeout
        .or(rs.timeout)
        .filter(|t| t.is_finite() && *t > 0.0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64);
    let default_stream_timeout = rs
        .stream_timeout
        .filter(|t| t.is_finite() && *t > 0.0)
        .map(Duration::from_secs_f64);
    let stream_max_duration = rs
        .stream_max_duration
        .filter(|t| t.is_finite() && *t > 0.0 && *t < 1e9)
        .map(Duration::from_secs_f64);
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
    let policy = cooldown_policy(config, warnings);
    let mut builder = Router::builder()
        .strategy(strategy)
        .pre_call_checks(rs.enable_pre_call_checks.unwrap_or(false))
        .tag_filtering(
            rs.enable_tag_filtering.unwrap_or(false),
            rs.tag_filtering_match_any.unwrap_or(false),
        )
        .default_max_parallel_requests(rs.default_max_parallel_requests);
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
        builder = builder.alias(alias.clone(), group, hidden);
    }
    if let Some(url) = crate::redis_url::router(config) {
        if let Err(e) = builder.redis(&url) {
            // `from_config` cannot fail: say loudly that routing state stays in-process.
            warnings.push(format!(
                "router_settings.redis_*: {e}; routing state is NOT shared between instances"
            ));
        }
    }
    let global_drop_params = config.litellm_settings.drop_params;
    let group_size = |name: &str| {
        config
            .model_list
            .iter()
            .filter(|e| e.model_name == name)
            .count()
    };
    for (i, entry) in config.model_list.iter().enumerate() {
        let mut dep = deployment_from_entry(entry);
        // The context window from the price table, unless the entry gives one.
        if !entry.model_name.contains('*')
            && !dep.model_info.contains_key("max_input_tokens")
            && !dep.model_info.contains_key("max_tokens")
        {
            if let Some(w) = table.context_window(&dep) {
                dep.model_info.insert("max_input_tokens".into(), w.into());
            }
        }
        // `litellm_settings.drop_params` applies to every deployment that does not say otherwise.
        if let Some(drop) = global_drop_params {
            dep.params
                .entry("drop_params")
                .or_insert(serde_json::Value::Bool(drop));
        }
        let dep = Arc::new(dep);
        let cell = builder.health_cell(&dep.id);
        // As LiteLLM: the only deployment of a group never cools down (there is nothing to
        // route to instead; its errors reach the client as they are).
        let sole = group_size(&entry.model_name) == 1;
        let health = HealthLayer::new(cell, policy.clone().disabled(sole || policy.is_disabled()));
        let mut timeout = TimeoutLayer::new(dep.timeout.unwrap_or(default_timeout));
        if let Some(st) = dep.stream_timeout.or(default_stream_timeout) {
            timeout = timeout.stream_timeout(st);
        }
        if let Some(total) = stream_max_duration {
            timeout = timeout.stream_max_duration(total);
        }
        if entry.model_name.contains('*') {
            let client = client.clone();
            // Only kept when the guard is on: the model each call names is priced then.
            let table = guard.map(|_| table.clone());
            let make: MakeDeploymentService = Arc::new(move |concrete: Arc<Deployment>| {
                match provider::lookup(&concrete.provider) {
                    Some(p) => {
                        let g = table
                            .as_ref()
                            .and_then(|t| unpriced_guard(t, &concrete, guard));
                        deployment_stack(&concrete, p, &client, &health, timeout, g)
                    }
                    None => unsupported_service(&concrete.provider),
                }
            });
            builder = builder.wildcard(dep, make);
            continue;
        }
        match provider::lookup(&dep.provider) {
            Some(p) => {
                let g = unpriced_guard(table, &dep, guard);
                let svc = deployment_stack(&dep, p, client, &health, timeout, g);
                builder = builder.deployment(dep, svc);
            }
            None => {
                warnings.push(format!(
                    "model_list[{i}].litellm_params.model: provider `{}` is not supported yet; calls to `{}` will fail (supported: {})",
                    dep.provider,
                    dep.model_group,
                    provider::known_prefixes().collect::<Vec<_>>().join(", ")
                ));
                let svc = unsupported_service(&dep.provider);
                builder = builder.deployment(dep, svc);
            }
        }
    }
    builder.build()
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

#[cfg(test)]
mod tests {
    use super::*;
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
