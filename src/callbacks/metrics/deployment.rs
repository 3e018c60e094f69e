//! Per-deployment metrics: every attempt on a deployment (retries and fallbacks included), its
//! outcome and the cooldowns it caused. A layer over each deployment's stack, with the
//! deployment's labels built once, at build time.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{atomic::Ordering, Arc},
    task::{ready, Context, Poll},
};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    fallback::FallbackTrail,
    registry::{KeyLabels, Metrics},
};
use crate::{
    auth::KeyInfo,
    error::LlmError,
    health::HealthCell,
    provider::Deployment,
    types::{LlmRequest, LlmResponse},
};

/// A deployment's labels, built once per deployment.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct DeploymentLabels {
    pub(super) model_group: Arc<str>,
    pub(super) model: Arc<str>,
    pub(super) model_id: Arc<str>,
    pub(super) api_base: Option<Arc<str>>,
    pub(super) provider: Arc<str>,
}

/// One series of the per-deployment counters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct AttemptKey {
    pub(super) dep: Arc<DeploymentLabels>,
    pub(super) key: Option<Arc<KeyLabels>>,
    /// `None` for a success; the status and class of a failure.
    pub(super) failure: Option<(u16, &'static str)>,
}

/// Counts attempts on one deployment. See [`Metrics::deployment_layer`].
#[derive(Clone)]
#[must_use]
pub struct DeploymentMetricsLayer {
    metrics: Metrics,
    labels: Arc<DeploymentLabels>,
    health: Option<Arc<HealthCell>>,
}

impl fmt::Debug for DeploymentMetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeploymentMetricsLayer")
            .field("deployment", &self.labels.model_id)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// The layer that counts `dep`'s attempts (`litellm_deployment_success_responses`,
    /// `…_failure_responses`, `…_total_requests`) and, given the deployment's health cell, the
    /// cooldowns an attempt started (`litellm_deployment_cooled_down`). Put it over the
    /// deployment's stack (health included).
    pub fn deployment_layer(
        &self,
        dep: &Deployment,
        health: Option<Arc<HealthCell>>,
    ) -> DeploymentMetricsLayer {
        DeploymentMetricsLayer {
            metrics: self.clone(),
            labels: Arc::new(DeploymentLabels {
                model_group: dep.model_group.clone(),
                model: dep.model.clone(),
                model_id: dep.id.clone(),
                api_base: dep.api_base.clone(),
                provider: dep.provider.clone(),
            }),
            health,
        }
    }

    /// The layer for a wildcard deployment (`model_name: openai/*`) made concrete for one call:
    /// the same counters, labelled with the concrete upstream model (`litellm_model_name`). The
    /// labels are interned per (deployment id, model), so a call allocates none after the first.
    pub fn concrete_layer(
        &self,
        dep: &Deployment,
        health: Option<Arc<HealthCell>>,
    ) -> DeploymentMetricsLayer {
        let k = (dep.id.clone(), dep.model.clone());
        let labels = match self.inner.concrete.get(&k) {
            Some(l) => l.clone(),
            None => self
                .inner
                .concrete
                .entry(k)
                .or_insert_with(|| {
                    Arc::new(DeploymentLabels {
                        model_group: dep.model_group.clone(),
                        model: dep.model.clone(),
                        model_id: dep.id.clone(),
                        api_base: dep.api_base.clone(),
                        provider: dep.provider.clone(),
                    })
                })
                .clone(),
        };
        DeploymentMetricsLayer {
            metrics: self.clone(),
            labels,
            health,
        }
    }

    fn count(&self, key: AttemptKey) {
        match self.inner.attempts.get(&key) {
            Some(c) => {
                c.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.inner
                    .attempts
                    .entry(key)
                    .or_default()
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn cooled(&self, dep: &Arc<DeploymentLabels>, status: u16) {
        let k = (dep.clone(), status);
        match self.inner.cooldowns.get(&k) {
            Some(c) => {
                c.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.inner
                    .cooldowns
                    .entry(k)
                    .or_default()
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl<S> Layer<S> for DeploymentMetricsLayer {
    type Service = DeploymentMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeploymentMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`DeploymentMetricsLayer`].
#[derive(Clone, Debug)]
pub struct DeploymentMetrics<S> {
    inner: S,
    layer: DeploymentMetricsLayer,
}

impl<S> Service<LlmRequest> for DeploymentMetrics<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = DeploymentFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let key = req
            .extensions
            .get::<Arc<KeyInfo>>()
            .map(|k| self.layer.metrics.key_labels(k));
        let was_cooling = self.layer.health.as_ref().is_some_and(|h| h.is_cooling());
        let trail = req.extensions.get::<FallbackTrail>().cloned();
        if let Some(t) = &trail {
            t.attempt(
                &self.layer.metrics,
                &self.layer.labels.model_group,
                key.as_ref(),
            );
        }
        DeploymentFuture {
            inner: self.inner.call(req),
            layer: Some((self.layer.clone(), key, was_cooling)),
            trail,
        }
    }
}

pin_project! {
    /// The future of [`DeploymentMetrics`].
    #[must_use = "futures do nothing unless polled"]
    pub struct DeploymentFuture<F> {
        #[pin]
        inner: F,
        layer: Option<(DeploymentMetricsLayer, Option<Arc<KeyLabels>>, bool)>,
        trail: Option<FallbackTrail>,
    }
}

impl<F> fmt::Debug for DeploymentFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeploymentFuture").finish_non_exhaustive()
    }
}

impl<F> Future for DeploymentFuture<F>
where
    F: Future<Output = Result<LlmResponse, LlmError>>,
{
    type Output = Result<LlmResponse, LlmError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        if let Some((layer, key, was_cooling)) = this.layer.take() {
            let failure = out
                .as_ref()
                .err()
                .map(|e| (e.status().as_u16(), e.kind().as_str()));
            if let Some(t) = this.trail.take() {
                t.attempt_ended(&layer.metrics, &layer.labels.model_group, failure);
            }
            if let Ok(resp) = &out {
                layer
                    .metrics
                    .provider_remaining(&layer.labels, key.as_ref(), &resp.meta.headers);
            }
            layer.metrics.count(AttemptKey {
                dep: layer.labels.clone(),
                key,
                failure,
            });
            if let (Some((status, _)), Some(h)) = (failure, &layer.health) {
                if !was_cooling && h.is_cooling() {
                    layer.metrics.cooled(&layer.labels, status);
                }
            }
        }
        Poll::Ready(out)
    }
}
