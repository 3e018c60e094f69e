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
    stack(dep, provider, client, health, timeout, None, None)
}

/// The tracer the deployment stacks are traced with, when tracing is on.
#[cfg(feature = "otel")]
pub(super) type Tracing<'a> = Option<&'a crate::telemetry::Otel>;
/// Without the `otel` feature there is no tracer.
#[cfg(not(feature = "otel"))]
pub(super) type Tracing<'a> = Option<&'a std::convert::Infallible>;

/// [`deployment_stack`] with the gateway's optional unpriced guard in front, and with tracing
/// on (`otel`): an attempt span over the whole deployment stack, and the attempt's
/// `traceparent` on the provider request.
pub(super) fn stack<C, B>(
    dep: &Arc<Deployment>,
    provider: SharedProvider,
    client: &C,
    health: HealthLayer,
    timeout: TimeoutLayer,
    guard: Option<UnpricedGuardLayer>,
    otel: Tracing<'_>,
) -> DeploymentService
where
    C: UpstreamClient<B>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut inner = (**dep).clone();
    inner.timeout = None;
    let name = dep.provider.clone();
    // The deployment stack over `$client`, under `$top` (the attempt span, or nothing).
    macro_rules! chain {
        ($top:expr, $client:expr) => {
            under(
                $top,
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
                    .service($client),
            )
        };
    }
    match otel {
        #[cfg(feature = "otel")]
        Some(otel) => chain!(
            otel.attempt_layer(dep),
            crate::telemetry::TraceparentClient::new(client.clone())
        ),
        #[cfg(not(feature = "otel"))]
        Some(never) => match *never {},
        None => chain!(tower::layer::util::Identity::new(), client.clone()),
    }
}

/// `inner` under `top`, boxed once.
fn under<L, S>(top: L, inner: S) -> DeploymentService
where
    L: tower::Layer<S>,
    L::Service: tower::Service<LlmRequest, Response = LlmResponse, Error = LlmError>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower::Service<LlmRequest>>::Future: Send + 'static,
{
    BoxCloneSyncService::new(top.layer(inner))
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
