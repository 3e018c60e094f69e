//! One deployment's stack: health (cooldown) → timeout → provider → HTTP client.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future;
use tower::{util::BoxCloneSyncService, ServiceBuilder};

use super::UpstreamClient;
use crate::{
    budget::UnpricedGuardLayer,
    error::{BoxError, LlmError},
    health::HealthLayer,
    provider::{Deployment, ProviderLayer, SharedProvider},
    router::DeploymentService,
    timeout::TimeoutLayer,
    types::{LlmRequest, LlmResponse},
};

/// A deployment's stack as the gateway builds it: health (cooldown) → timeout → provider →
/// `client`, boxed for [`RouterBuilder::deployment`](crate::router::RouterBuilder::deployment).
/// The provider's own timeout is lifted: `timeout` governs (so a request's own `timeout` can
/// be longer). Responses name `dep.provider` (the prefix the provider was registered under).
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use llmgate::{gateway, health::{CooldownPolicy, HealthLayer}, provider::{self, Deployment, HttpClient},
///     router::Router, timeout::TimeoutLayer};
///
/// let dep = Arc::new(Deployment::new("chat", "mock/echo"));
/// let mut router = Router::builder();
/// let health = HealthLayer::new(router.health_cell(&dep.id), CooldownPolicy::default());
/// let provider = provider::lookup("mock").expect("built in");
/// let svc = gateway::deployment_stack(&dep, provider, &HttpClient::new(), health,
///     TimeoutLayer::new(Duration::from_secs(30)));
/// let router = router.deployment(dep, svc).build();
/// assert_eq!(router.model_names(), ["chat"]);
/// ```
pub fn deployment_stack<C, B>(
    dep: &Arc<Deployment>,
    provider: SharedProvider,
    client: &C,
    health: HealthLayer,
    timeout: TimeoutLayer,
) -> DeploymentService
where
    C: UpstreamClient<B>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    stack(dep, provider, client, health, timeout, None)
}

/// [`deployment_stack`] with the gateway's optional unpriced guard in front.
pub(super) fn stack<C, B>(
    dep: &Arc<Deployment>,
    provider: SharedProvider,
    client: &C,
    health: HealthLayer,
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
    let name = dep.provider.clone();
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            // Before health: a refusal is not the deployment's failure.
            .option_layer(guard)
            .layer(health)
            .layer(crate::first_chunk::FirstChunkLayer::new())
            .layer(timeout)
            .layer(
                ProviderLayer::new(provider, Arc::new(inner))
                    .provider_name(name)
                    .without_default_timeout(),
            )
            .service(client.clone()),
    )
}

/// The service of a deployment whose provider is not registered: every call is a 400.
pub(super) fn unsupported_service(name: &str) -> DeploymentService {
    let name = name.to_owned();
    BoxCloneSyncService::new(tower::service_fn(move |_req: LlmRequest| {
        future::ready(Err::<LlmResponse, _>(LlmError::bad_request(format!(
            "provider `{name}` is not supported by llmgate yet"
        ))))
    }))
}
