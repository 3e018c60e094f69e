//! The one build step from a LiteLLM [`Config`] to the gateway's service stack.
//!
//! Layers never see the config: this module maps it to [`Deployment`]s, provider services, the
//! [`Router`] and the auth layer, and returns the model-level stack and the HTTP edge.
//!
//! Default order (outermost first): `Auth → RateLimit → Budget → Cost → Router → (per deployment)
//! Provider → HttpClient`, built by the async [`Gateway::build`] (store, Redis, spend writer);
//! [`Gateway::from_config`] builds the database-free stack `MasterKey → Cost → Router → …`.

use std::{sync::Arc, time::Duration};

use futures_util::future;
use tower::{util::BoxCloneSyncService, ServiceBuilder};
use tower_layer::Layer as _;

use bytes::Bytes;
use http_body_util::Full;

use crate::{
    auth::{AuthLayer, MasterKeyLayer},
    budget::BudgetLayer,
    config::{Config, ModelEntry},
    cost::{CostLayer, PriceTable, Pricing},
    error::{BoxError, LlmError},
    governance::{BuildError, BuildOptions},
    provider::{self, stable_id, Deployment, ProviderLayer, DEFAULT_TIMEOUT},
    rate_limit::RateLimitLayer,
    router::Router,
    server::{OpenAiServer, DEFAULT_MAX_BODY_BYTES},
    types::{LlmRequest, LlmResponse},
};

/// The embedded default config: a `mock` chat model group and a `mock-embedding` group, served by
/// the built-in mock provider (no account, no network).
pub const DEFAULT_CONFIG: &str = include_str!("default_config.yaml");

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
    /// Request body limit.
    pub max_body_bytes: usize,
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
    /// Order, outermost first: auth → (rate limit → budget → cost → cache → fallback → retry, as
    /// those layers land) → router → per deployment: provider → HTTP client.
    #[must_use]
    pub fn from_config<C, B>(config: &Config, client: &C) -> Self
    where
        C: UpstreamClient<B>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut warnings = Vec::new();
        let router = build_router(config, client, &mut warnings);
        let pricing = pricing(&PriceTable::builtin(), &router, &mut warnings);
        // No stream-usage injection here: the database-free stack sends upstream exactly what
        // the client sent (the conformance corpus checks it).
        let stack = ServiceBuilder::new()
            .layer(auth_layer(config))
            .layer(CostLayer::new(pricing).stream_usage(false))
            .service(router.clone());
        Self {
            stack: BoxCloneSyncService::new(stack),
            router,
            warnings,
            max_body_bytes: max_body_bytes(config),
            governance: None,
            management: crate::management::not_found_router(),
        }
    }

    /// Builds the governed stack for `config` over `client`: connects the store (SQLite or
    /// PostgreSQL, migrations run), Redis for shared limits when configured, and starts the spend
    /// writer. See [`governance`](crate::governance) for how each is chosen.
    ///
    /// Order, outermost first: auth (master key + virtual keys) → rate limit → budget → cost →
    /// router → per deployment: provider → HTTP client.
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
        let router = build_router(config, client, &mut warnings);
        let table = crate::governance::price_table(&opts)?;
        let pricing = pricing(&table, &router, &mut warnings);
        let gov = crate::governance::start(config, &opts).await?;
        let master = config.general_settings.master_key.clone();
        let stack = ServiceBuilder::new()
            .layer(AuthLayer::new(master.clone(), Some(gov.keys.clone())))
            .layer(RateLimitLayer::new(gov.counters.clone()))
            .layer(BudgetLayer::new(Some(gov.spend.log().ledger().clone())))
            .layer(CostLayer::new(pricing).spend_log(gov.spend.log()))
            .service(router.clone());
        let management =
            crate::management::router(master, gov.keys.clone(), config.litellm_settings.max_budget);
        Ok(Self {
            stack: BoxCloneSyncService::new(stack),
            router,
            warnings,
            max_body_bytes: max_body_bytes(config),
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
        OpenAiServer::new(self.stack.clone()).max_body_bytes(self.max_body_bytes)
    }
}

fn max_body_bytes(config: &Config) -> usize {
    config
        .general_settings
        .max_request_size_mb
        .filter(|mb| mb.is_finite() && *mb > 0.0)
        .map_or(DEFAULT_MAX_BODY_BYTES, |mb| (mb * 1024.0 * 1024.0) as usize)
}

/// Each deployment's price; deployments without one are a warning (they cost 0).
fn pricing(table: &PriceTable, router: &Router, warnings: &mut Vec<String>) -> Arc<Pricing> {
    let deps: Vec<Arc<Deployment>> = router
        .model_names()
        .iter()
        .flat_map(|g| router.deployments(g).cloned().collect::<Vec<_>>())
        .collect();
    let pricing = Pricing::new(table, deps.iter().map(|d| &**d));
    for m in pricing.unpriced() {
        if !m.starts_with("mock/") {
            warnings.push(format!(
                "no price known for `{m}`: its calls are logged at cost 0 (set input_cost_per_token / output_cost_per_token in litellm_params)"
            ));
        }
    }
    Arc::new(pricing)
}

/// Auth: the master key (`general_settings.master_key`).
fn auth_layer(config: &Config) -> MasterKeyLayer {
    MasterKeyLayer::new(config.general_settings.master_key.clone())
}

/// The router over every `model_list` entry, each deployment its own stack over `client`.
fn build_router<C, B>(config: &Config, client: &C, warnings: &mut Vec<String>) -> Router
where
    C: UpstreamClient<B>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let default_timeout = config
        .litellm_settings
        .request_timeout
        .or(config.router_settings.timeout)
        .filter(|t| t.is_finite() && *t > 0.0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64);
    let mut builder = Router::builder();
    let global_drop_params = config.litellm_settings.drop_params;
    for (i, entry) in config.model_list.iter().enumerate() {
        let mut dep = deployment_from_entry(entry);
        // `litellm_settings.drop_params` applies to every deployment that does not say otherwise.
        if let Some(drop) = global_drop_params {
            dep.params
                .entry("drop_params")
                .or_insert(serde_json::Value::Bool(drop));
        }
        let dep = Arc::new(dep);
        match provider::lookup(&dep.provider) {
            Some(p) => {
                let svc = ProviderLayer::new(p, dep.clone())
                    .default_timeout(default_timeout)
                    .layer(client.clone());
                builder = builder.deployment(dep, svc);
            }
            None => {
                warnings.push(format!(
                    "model_list[{i}].litellm_params.model: provider `{}` is not supported yet; calls to `{}` will fail (supported: {})",
                    dep.provider,
                    dep.model_group,
                    provider::known_prefixes().collect::<Vec<_>>().join(", ")
                ));
                let name = dep.provider.clone();
                let svc = tower::service_fn(move |_req: LlmRequest| {
                    future::ready(Err::<LlmResponse, _>(LlmError::bad_request(format!(
                        "provider `{name}` is not supported by llmgate yet"
                    ))))
                });
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
    let mut dep = Deployment::new(&entry.model_name, &p.model);
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
