//! [`Router`]: the service, its accessors and its call.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::OwnedSemaphorePermit;
use tower_service::Service;

use super::{
    future::{Call, ResponseFuture, RouteState},
    select::Selection,
    shared::Shared,
    table::Inner,
    track::{finish, Tracker},
    RouteLog, RouterBuilder, SelectedDeployment, Strategy,
};
use crate::{
    error::LlmError,
    health::HealthCell,
    provider::Deployment,
    types::{LlmRequest, LlmResponse, Operation},
};

/// Routes a request to a deployment of its model group. See the [module docs](super).
#[derive(Clone)]
pub struct Router {
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("groups", &self.inner.names)
            .field("strategy", &self.inner.options.strategy)
            .field("shared", &self.inner.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl Router {
    /// A builder.
    pub fn builder() -> RouterBuilder {
        RouterBuilder::default()
    }

    /// The breaker guarding the shared state's Redis ([`RouterBuilder::redis`]), if any.
    #[must_use]
    pub fn redis_breaker(&self) -> Option<&crate::redis_guard::Breaker> {
        self.inner.shared.as_ref().map(Shared::breaker)
    }

    /// The model groups served, in config order.
    #[must_use]
    pub fn model_names(&self) -> &[String] {
        &self.inner.names
    }

    /// The deployments of a group.
    pub fn deployments<'a>(
        &'a self,
        group: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Deployment>> + 'a {
        let fixed = self.inner.groups.get(group).into_iter().flatten();
        let wild = self
            .inner
            .patterns
            .iter()
            .filter(move |p| p.name == group)
            .flat_map(|p| p.entries.iter());
        fixed.chain(wild).map(|e| &e.deployment)
    }

    /// The routing strategy.
    #[must_use]
    pub fn strategy(&self) -> Strategy {
        self.inner.options.strategy
    }

    /// Runs the filters and the strategy for `req` on this instance's state and returns the
    /// deployment it would call (counting the request toward that deployment's usage this minute).
    ///
    /// # Errors
    ///
    /// As the router's call: unknown model, all cooling, no deployment fits.
    pub fn select(&self, req: &LlmRequest) -> Result<Arc<Deployment>, LlmError> {
        self.inner.select(req, None).map(|s| s.deployment)
    }

    /// Every deployment, group by group in config order (a wildcard group's deployment as
    /// configured, with its `*`).
    pub fn all_deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> + '_ {
        self.inner
            .names
            .iter()
            .flat_map(move |g| self.deployments(g))
    }

    /// The model-level stack of deployment `id` (health → timeout → provider, as built), for a
    /// call that must reach that very deployment (a health probe). A wildcard deployment's stack
    /// is made for `concrete` (its upstream model filled in); `None` when `id` is unknown.
    #[must_use]
    pub fn deployment_service(
        &self,
        id: &str,
        concrete: Option<Arc<Deployment>>,
    ) -> Option<super::DeploymentService> {
        let entry = self
            .inner
            .groups
            .values()
            .flatten()
            .chain(self.inner.patterns.iter().flat_map(|p| p.entries.iter()))
            .find(|e| &*e.deployment.id == id)?;
        match &entry.service {
            super::table::EntryService::Fixed(s) => Some(s.clone()),
            super::table::EntryService::Pattern(make) => concrete.map(|c| make(c)),
        }
    }

    /// The health cell of a deployment (to inspect or clear its cooldown).
    #[must_use]
    pub fn health(&self, deployment_id: &str) -> Option<&Arc<HealthCell>> {
        self.inner
            .groups
            .values()
            .flatten()
            .chain(self.inner.patterns.iter().flat_map(|p| p.entries.iter()))
            .find(|e| &*e.deployment.id == deployment_id)
            .map(|e| &e.state.health)
    }
}

impl Service<LlmRequest> for Router {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = ResponseFuture;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is per deployment and driven inside the call, once a deployment is picked.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        route(self.inner.clone(), req)
    }
}

/// The router's call over one deployment table (`inner`): the request finishes on this table
/// even when a [`LiveRouter`](super::LiveRouter) swaps in another meanwhile.
pub(super) fn route(inner: Arc<Inner>, req: LlmRequest) -> ResponseFuture {
    if matches!(req.op, Operation::ListModels) {
        return ResponseFuture {
            state: RouteState::Done {
                result: Some(Ok(inner.list())),
            },
        };
    }
    let log = req.extensions.get::<RouteLog>().cloned();
    if let Some(l) = &log {
        l.begin();
    }
    if inner.shared.is_some() {
        return ResponseFuture {
            state: RouteState::Slow {
                fut: Box::pin(call_shared(inner, req, log)),
            },
        };
    }
    let sel = match inner.select(&req, log.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            if let Some(l) = &log {
                l.refused();
            }
            return ResponseFuture {
                state: RouteState::Done {
                    result: Some(Err(e)),
                },
            };
        }
    };
    let permit = match &sel.entry.state.permits {
        None => None,
        Some(sem) => match sem.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                // Every candidate is at its concurrency limit: wait for this one's permit.
                let sem = sem.clone();
                return ResponseFuture {
                    state: RouteState::Slow {
                        fut: Box::pin(async move {
                            let permit = sem.acquire_owned().await.ok();
                            call_selected(inner, req, log, sel, permit).await
                        }),
                    },
                };
            }
        },
    };
    let op = req.op.clone();
    let mut req = req;
    req.extensions
        .insert(SelectedDeployment(sel.deployment.clone()));
    let svc = sel.service();
    let test = crate::health::is_test_request(&req);
    let tracker = Tracker::new(sel.entry, permit, None, test).region(super::region::header(&req));
    ResponseFuture {
        state: RouteState::Ready {
            svc,
            req: Some(req),
            call: Some(Call {
                inner,
                op,
                log,
                tracker,
            }),
        },
    }
}

/// Calls the selected deployment (slow path).
async fn call_selected(
    inner: Arc<Inner>,
    mut req: LlmRequest,
    log: Option<RouteLog>,
    sel: Selection,
    permit: Option<OwnedSemaphorePermit>,
) -> Result<LlmResponse, LlmError> {
    let op = req.op.clone();
    req.extensions
        .insert(SelectedDeployment(sel.deployment.clone()));
    let mut svc = sel.service();
    let was_cooling = sel.entry.state.health.is_cooling();
    let entry = sel.entry.clone();
    let test = crate::health::is_test_request(&req);
    let tracker = Tracker::new(sel.entry, permit, inner.shared.clone(), test)
        .region(super::region::header(&req));
    let result = match std::future::poll_fn(|cx| svc.poll_ready(cx)).await {
        Ok(()) => svc.call(req).await,
        Err(e) => Err(e),
    };
    if result.is_err() && !was_cooling {
        if let (Some(shared), Some(d)) = (&inner.shared, entry.state.health.cooling_for()) {
            // Written before the error is returned, so other instances skip it from now on.
            shared.cool_down(&entry.deployment.id, d).await;
        }
    }
    finish(&inner, op.model(), log.as_ref(), tracker, result)
}

/// The router's call with Redis-shared state: refresh the group, pick, reserve, call.
async fn call_shared(
    inner: Arc<Inner>,
    req: LlmRequest,
    log: Option<RouteLog>,
) -> Result<LlmResponse, LlmError> {
    let Some(shared) = inner.shared.clone() else {
        return Err(LlmError::internal("shared router state missing"));
    };
    if let Some((entries, _, _)) = inner.resolve(req.model()) {
        shared.refresh(entries).await;
    }
    let refuse = |e: LlmError| {
        if let Some(l) = &log {
            l.refused();
        }
        Err(e)
    };
    let mut tried_full: Vec<Arc<str>> = Vec::new();
    let sel = loop {
        let sel = match inner.select(&req, log.as_ref()) {
            Ok(s) => s,
            Err(e) => return refuse(e),
        };
        let limit = (inner.usage_checks() && !crate::health::is_test_request(&req))
            .then_some(sel.deployment.rpm)
            .flatten();
        let Some(limit) = limit else { break sel };
        match shared.reserve_request(&sel.entry.deployment.id).await {
            Some(n) if n > limit => {
                // Over the limit across instances: remember, and pick again.
                shared.release_request(&sel.entry.deployment.id).await;
                sel.entry
                    .state
                    .remote_rpm
                    .store(limit, std::sync::atomic::Ordering::Relaxed);
                let id = sel.entry.deployment.id.clone();
                if tried_full.contains(&id) {
                    return refuse(LlmError::internal("router could not reserve a deployment"));
                }
                tried_full.push(id);
            }
            _ => break sel,
        }
    };
    let permit = match &sel.entry.state.permits {
        Some(sem) => sem.clone().acquire_owned().await.ok(),
        None => None,
    };
    call_selected(inner, req, log, sel, permit).await
}
