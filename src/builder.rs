//! [`ServiceBuilderExt`]: one `tower::ServiceBuilder` method per llmgate layer.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//!
//! use llmgate::{
//!     fallback::FallbackLayer, health::{CooldownPolicy, HealthCell}, types::chat::ChatResponse,
//!     LlmError, LlmRequest, LlmResponse, ServiceBuilderExt as _,
//! };
//! use tower::ServiceBuilder;
//!
//! let answer = tower::service_fn(|_req: LlmRequest| async {
//!     Ok::<_, LlmError>(LlmResponse::chat(ChatResponse::default()))
//! });
//! let stack = ServiceBuilder::new()
//!     .fallback(FallbackLayer::new())
//!     .retries(2)
//!     .health(Arc::new(HealthCell::default()), CooldownPolicy::default())
//!     .call_timeout(Duration::from_secs(60))
//!     .service(answer);
//! # let _ = stack;
//! ```
//!
//! The names follow the modules, except where tower's own `ServiceBuilder` has a method of that
//! name behind one of its features (`retry`, `rate_limit`, `timeout`): an inherent method wins
//! over a trait's, so those are [`retries`](ServiceBuilderExt::retries),
//! [`rate_limits`](ServiceBuilderExt::rate_limits) and
//! [`call_timeout`](ServiceBuilderExt::call_timeout).

use std::{sync::Arc, time::Duration};

use tower::ServiceBuilder;
use tower_layer::Stack;

use crate::{
    auth::{AuthLayer, MasterKeyLayer},
    budget::BudgetLayer,
    cache::CacheLayer,
    cost::CostLayer,
    fallback::FallbackLayer,
    health::{CooldownPolicy, HealthCell, HealthLayer},
    provider::{Deployment, Provider, ProviderLayer},
    rate_limit::RateLimitLayer,
    retry::RetryLayer,
    secret::Secret,
    timeout::TimeoutLayer,
};

mod sealed {
    pub trait Sealed<T> {}
}

impl<L> sealed::Sealed<L> for ServiceBuilder<L> {}

/// Adds llmgate's layers to a `tower::ServiceBuilder`, in the order the methods are called (the
/// first is the outermost). Sealed: implemented for `ServiceBuilder` only. See the
/// [crate docs](crate#the-layers-in-stack-order) for the usual order.
pub trait ServiceBuilderExt<L>: sealed::Sealed<L> + Sized {
    /// [`AuthLayer`]: the caller's key (master or virtual) and its model access.
    #[must_use]
    fn auth(self, layer: AuthLayer) -> ServiceBuilder<Stack<AuthLayer, L>>;

    /// [`MasterKeyLayer`]: only the master key passes (`None`: anyone).
    #[must_use]
    fn master_key(self, key: Option<Secret>) -> ServiceBuilder<Stack<MasterKeyLayer, L>>;

    /// [`RateLimitLayer`]: rpm / tpm / parallel-request limits.
    #[must_use]
    fn rate_limits(self, layer: RateLimitLayer) -> ServiceBuilder<Stack<RateLimitLayer, L>>;

    /// [`BudgetLayer`]: refuses callers over their budget.
    #[must_use]
    fn budget(self, layer: BudgetLayer) -> ServiceBuilder<Stack<BudgetLayer, L>>;

    /// [`CostLayer`]: prices each answer.
    #[must_use]
    fn cost(self, layer: CostLayer) -> ServiceBuilder<Stack<CostLayer, L>>;

    /// [`CacheLayer`]: the response cache.
    #[must_use]
    fn cache(self, layer: CacheLayer) -> ServiceBuilder<Stack<CacheLayer, L>>;

    /// [`FallbackLayer`]: other model groups when one fails.
    #[must_use]
    fn fallback(self, layer: FallbackLayer) -> ServiceBuilder<Stack<FallbackLayer, L>>;

    /// [`RetryLayer`] with `num_retries` retries.
    #[must_use]
    fn retries(self, num_retries: u32) -> ServiceBuilder<Stack<RetryLayer, L>>;

    /// [`HealthLayer`]: a deployment's cooldowns, in `cell` (share it with the router:
    /// [`RouterBuilder::health_cell`](crate::router::RouterBuilder::health_cell)).
    #[must_use]
    fn health(
        self,
        cell: Arc<HealthCell>,
        policy: CooldownPolicy,
    ) -> ServiceBuilder<Stack<HealthLayer, L>>;

    /// [`TimeoutLayer`]: the call's deadline.
    #[must_use]
    fn call_timeout(self, timeout: Duration) -> ServiceBuilder<Stack<TimeoutLayer, L>>;

    /// [`ProviderLayer`]: `deployment` in `provider`'s wire format, over an HTTP client service.
    #[must_use]
    fn provider(
        self,
        provider: Arc<dyn Provider>,
        deployment: Arc<Deployment>,
    ) -> ServiceBuilder<Stack<ProviderLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn auth(self, layer: AuthLayer) -> ServiceBuilder<Stack<AuthLayer, L>> {
        self.layer(layer)
    }

    fn master_key(self, key: Option<Secret>) -> ServiceBuilder<Stack<MasterKeyLayer, L>> {
        self.layer(MasterKeyLayer::new(key))
    }

    fn rate_limits(self, layer: RateLimitLayer) -> ServiceBuilder<Stack<RateLimitLayer, L>> {
        self.layer(layer)
    }

    fn budget(self, layer: BudgetLayer) -> ServiceBuilder<Stack<BudgetLayer, L>> {
        self.layer(layer)
    }

    fn cost(self, layer: CostLayer) -> ServiceBuilder<Stack<CostLayer, L>> {
        self.layer(layer)
    }

    fn cache(self, layer: CacheLayer) -> ServiceBuilder<Stack<CacheLayer, L>> {
        self.layer(layer)
    }

    fn fallback(self, layer: FallbackLayer) -> ServiceBuilder<Stack<FallbackLayer, L>> {
        self.layer(layer)
    }

    fn retries(self, num_retries: u32) -> ServiceBuilder<Stack<RetryLayer, L>> {
        self.layer(RetryLayer::new(num_retries))
    }

    fn health(
        self,
        cell: Arc<HealthCell>,
        policy: CooldownPolicy,
    ) -> ServiceBuilder<Stack<HealthLayer, L>> {
        self.layer(HealthLayer::new(cell, policy))
    }

    fn call_timeout(self, timeout: Duration) -> ServiceBuilder<Stack<TimeoutLayer, L>> {
        self.layer(TimeoutLayer::new(timeout))
    }

    fn provider(
        self,
        provider: Arc<dyn Provider>,
        deployment: Arc<Deployment>,
    ) -> ServiceBuilder<Stack<ProviderLayer, L>> {
        self.layer(ProviderLayer::new(provider, deployment))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tower::ServiceExt as _;

    use super::*;
    use crate::{
        types::chat::{ChatRequest, ChatResponse, Message},
        ErrorKind, LlmError, LlmRequest, LlmResponse,
    };

    fn chat() -> LlmRequest {
        LlmRequest::chat(ChatRequest {
            model: "m".into(),
            messages: vec![Message::new("user", "hi")],
            ..ChatRequest::default()
        })
    }

    /// The methods stack the layers they name: the master key refuses a caller without it, and
    /// the retry layer calls a failing service again.
    #[tokio::test]
    async fn methods_add_their_layers_in_order() {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let flaky = tower::service_fn(move |_req: LlmRequest| {
            let n = seen.fetch_add(1, Ordering::Relaxed);
            async move {
                if n == 0 {
                    Err(LlmError::new(ErrorKind::ServiceUnavailable, "try again"))
                } else {
                    Ok(LlmResponse::chat(ChatResponse::default()))
                }
            }
        });
        let stack = ServiceBuilder::new()
            .retries(1)
            .call_timeout(Duration::from_secs(5))
            .service(flaky.clone());
        let resp = stack.oneshot(chat()).await;
        assert!(resp.is_ok(), "{resp:?}");
        assert_eq!(calls.load(Ordering::Relaxed), 2);

        let guarded = ServiceBuilder::new()
            .master_key(Some(Secret::new("sk-master")))
            .service(flaky);
        let err = guarded.oneshot(chat()).await.err().map(|e| e.kind());
        assert_eq!(err, Some(ErrorKind::Authentication));
        assert_eq!(
            calls.load(Ordering::Relaxed),
            2,
            "refused before the inner service"
        );
    }
}
