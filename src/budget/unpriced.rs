//! Refusing deployments without a price for callers with a budget
//! (`general_settings.block_unpriced_models_for_budgeted_keys`).
//!
//! A deployment with no known price is logged at cost 0, as LiteLLM does: its calls never count
//! against a budget. With the setting on, the gateway puts [`UnpricedGuard`] in front of each such
//! deployment (and of each model a wildcard deployment calls that has no price), and it refuses
//! a call whose key, team or user has a `max_budget` — or every call, when the proxy-wide budget
//! is set — with 400 naming the model. Callers without a budget are served as before.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::future::{self, Either, Ready};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    auth::KeyInfo,
    error::{ErrorKind, LlmError},
    types::{LlmRequest, LlmResponse},
};

/// Applies [`UnpricedGuard`] to the stack of one unpriced deployment.
#[derive(Clone, Debug)]
#[must_use]
pub struct UnpricedGuardLayer {
    model: Arc<str>,
    proxy_budget: bool,
}

impl UnpricedGuardLayer {
    /// A guard for the unpriced deployment that calls `model` (`provider/model`, for the error).
    pub fn new(model: impl Into<Arc<str>>) -> Self {
        Self {
            model: model.into(),
            proxy_budget: false,
        }
    }

    /// Whether a proxy-wide budget is set: then every call has a budget.
    pub fn proxy_budget(mut self, on: bool) -> Self {
        self.proxy_budget = on;
        self
    }
}

impl<S> Layer<S> for UnpricedGuardLayer {
    type Service = UnpricedGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UnpricedGuard {
            inner,
            model: self.model.clone(),
            proxy_budget: self.proxy_budget,
        }
    }
}

/// Refuses callers with a budget. See the [budget module docs](crate::budget).
#[derive(Clone, Debug)]
pub struct UnpricedGuard<S> {
    inner: S,
    model: Arc<str>,
    proxy_budget: bool,
}

impl<S> UnpricedGuard<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes this, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Whether a budget applies to the caller's calls.
fn has_budget(info: &KeyInfo) -> bool {
    let set = |s: &crate::auth::Scope| s.limits.max_budget.is_some();
    set(&info.key) || info.team.as_ref().is_some_and(set) || info.user.as_ref().is_some_and(set)
}

/// The refusal for a call to `model`.
#[must_use]
fn unpriced_error(model: &str) -> LlmError {
    LlmError::new(
        ErrorKind::BadRequest,
        format!(
            "model `{model}` has no known price, and general_settings.block_unpriced_models_for_budgeted_keys refuses unpriced models to callers with a budget (set input_cost_per_token / output_cost_per_token on the deployment, or add the model to LLMGATE_MODEL_PRICES)"
        ),
    )
    .with_param("model")
    .with_code("model_not_priced")
}

impl<S> Service<LlmRequest> for UnpricedGuard<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = Either<Ready<Result<LlmResponse, LlmError>>, S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let budgeted = self.proxy_budget
            || req
                .extensions
                .get::<Arc<KeyInfo>>()
                .is_some_and(|i| has_budget(i));
        if budgeted && req.kind().calls_a_model() {
            return Either::Left(future::ready(Err(unpriced_error(&self.model))));
        }
        Either::Right(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{store::Limits, types::chat::ChatRequest};
    use tower::ServiceExt;

    fn request(info: Option<KeyInfo>) -> LlmRequest {
        let mut req = LlmRequest::chat(ChatRequest {
            model: "g".into(),
            ..ChatRequest::default()
        });
        if let Some(i) = info {
            req.extensions.insert(Arc::new(i));
        }
        req
    }

    #[tokio::test]
    async fn refuses_only_callers_with_a_budget() {
        let ok = tower::service_fn(|_r: LlmRequest| async {
            Ok::<_, LlmError>(LlmResponse::chat(Default::default()))
        });
        let guard = UnpricedGuardLayer::new("openai/house").layer(ok);
        assert!(guard.clone().oneshot(request(None)).await.is_ok());
        assert!(guard
            .clone()
            .oneshot(request(Some(KeyInfo::default())))
            .await
            .is_ok());
        let info = KeyInfo {
            team: Some(crate::auth::Scope {
                limits: Limits {
                    max_budget: Some(5.0),
                    ..Limits::default()
                },
                ..Default::default()
            }),
            ..KeyInfo::default()
        };
        let e = guard
            .clone()
            .oneshot(request(Some(info)))
            .await
            .unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message().contains("`openai/house`"), "{}", e.message());
        assert_eq!(e.param(), Some("model"));
        // With a proxy-wide budget every call has one.
        let guard = UnpricedGuardLayer::new("openai/house")
            .proxy_budget(true)
            .layer(ok);
        assert!(guard.oneshot(request(None)).await.is_err());
    }
}
