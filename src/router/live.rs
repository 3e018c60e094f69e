//! [`LiveRouter`]: a [`Router`] whose deployment table can be replaced while it serves.
//!
//! Each call reads the current table with one lock-free pointer load ([`arc_swap`]) and keeps it
//! (an `Arc`) until the call ends: a request that started before a swap finishes on the
//! deployments it started with, and the next request sees the new table. Writers (a config
//! reload, the model poller, `/model/new`) build a whole new [`Router`] off the request path and
//! swap it in; [`RouterBuilder::carry_over`](super::RouterBuilder::carry_over) keeps the health
//! cells (cooldowns, failure counts) of the deployments that stay, and the Redis-shared state.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use arc_swap::ArcSwap;
use tower_service::Service;

use super::{service::route, table::Inner, DeploymentService, ResponseFuture, Router};
use crate::{
    error::LlmError,
    types::{LlmRequest, LlmResponse},
};

/// A [`Router`] whose table is swapped at runtime. Cheap to clone (clones share the table).
///
/// ```
/// use std::sync::Arc;
/// use llmgate::{provider::Deployment, router::{LiveRouter, Router}, LlmRequest, LlmResponse, LlmError};
/// use llmgate::types::chat::ChatResponse;
///
/// let answer = |_req: LlmRequest| async { Ok::<_, LlmError>(LlmResponse::chat(ChatResponse::default())) };
/// let live = LiveRouter::new(Router::builder()
///     .deployment(Arc::new(Deployment::new("a", "mock/a")), tower::service_fn(answer))
///     .build());
/// assert_eq!(live.current().model_names(), ["a"]);
/// let next = Router::builder()
///     .carry_over(&live.current())
///     .deployment(Arc::new(Deployment::new("b", "mock/b")), tower::service_fn(answer))
///     .build();
/// live.swap(next);
/// assert_eq!(live.current().model_names(), ["b"]);
/// ```
#[derive(Clone)]
pub struct LiveRouter {
    current: Arc<ArcSwap<Inner>>,
}

impl fmt::Debug for LiveRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveRouter")
            .field("groups", &self.current.load().names)
            .finish_non_exhaustive()
    }
}

impl LiveRouter {
    /// Serves `router`'s table until the next [`swap`](Self::swap).
    #[must_use]
    pub fn new(router: Router) -> Self {
        Self {
            current: Arc::new(ArcSwap::new(router.inner)),
        }
    }

    /// The table served now, as a [`Router`] (a snapshot: a later swap does not change it).
    #[must_use]
    pub fn current(&self) -> Router {
        Router {
            inner: self.current.load_full(),
        }
    }

    /// Serves `next` from the next request on; returns the table it replaced. Requests already
    /// routed finish on the old table.
    #[allow(clippy::needless_pass_by_value)]
    pub fn swap(&self, next: Router) -> Router {
        Router {
            inner: self.current.swap(next.inner),
        }
    }
}

impl From<Router> for LiveRouter {
    fn from(router: Router) -> Self {
        Self::new(router)
    }
}

impl Service<LlmRequest> for LiveRouter {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = ResponseFuture;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: LlmRequest) -> Self::Future {
        route(self.current.load_full(), req)
    }
}

/// A boxed model-level service that can be replaced while it serves: each call clones the
/// current one (as any boxed service is cloned per request) after one lock-free pointer load.
/// The gateway's whole stack is one: a model change swaps in a stack built over the new table
/// (its prices and model access included). Cheap to clone.
#[derive(Clone)]
pub struct LiveService {
    current: Arc<ArcSwap<DeploymentService>>,
}

impl fmt::Debug for LiveService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveService").finish_non_exhaustive()
    }
}

impl LiveService {
    /// Serves `service` until the next [`swap`](Self::swap).
    #[must_use]
    pub fn new(service: DeploymentService) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(service)),
        }
    }

    /// Serves `next` from the next call on; calls already made finish on the one they cloned.
    pub fn swap(&self, next: DeploymentService) {
        self.current.store(Arc::new(next));
    }
}

impl Service<LlmRequest> for LiveService {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = tower::util::Oneshot<DeploymentService, LlmRequest>;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each call clones the current service and drives its readiness in the returned future.
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: LlmRequest) -> Self::Future {
        tower::util::Oneshot::new(DeploymentService::clone(&self.current.load()), req)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use tower::ServiceExt as _;

    use super::*;
    use crate::{
        provider::Deployment,
        types::chat::{ChatRequest, ChatResponse, Message},
    };

    fn named(
        name: &'static str,
    ) -> impl Fn(LlmRequest) -> std::future::Ready<Result<LlmResponse, LlmError>>
           + Clone
           + Send
           + Sync
           + 'static {
        move |_req| {
            let r = ChatResponse {
                model: Some(name.into()),
                ..ChatResponse::default()
            };
            std::future::ready(Ok(LlmResponse::chat(r)))
        }
    }

    fn chat(model: &str) -> LlmRequest {
        LlmRequest::chat(ChatRequest {
            model: model.into(),
            messages: vec![Message::new("user", "hi")],
            ..ChatRequest::default()
        })
    }

    fn model_of(r: &LlmResponse) -> String {
        match &r.body {
            crate::types::ResponseBody::Chat(c) => c.model().unwrap_or_default().to_owned(),
            _ => String::new(),
        }
    }

    #[tokio::test]
    async fn a_swap_serves_the_new_table_and_keeps_kept_cells() {
        let dep = Arc::new(Deployment::new("g", "mock/a"));
        let first = Router::builder()
            .deployment(dep.clone(), tower::service_fn(named("old")))
            .build();
        let live = LiveRouter::new(first);
        let r = live.clone().oneshot(chat("g")).await.unwrap();
        assert_eq!(model_of(&r), "old");
        let cell = live.current().health(&dep.id).unwrap().clone();
        cell.cool_down(Duration::from_secs(30));
        let mut b = Router::builder().carry_over(&live.current());
        let next = b.health_cell(&dep.id);
        assert!(
            Arc::ptr_eq(&cell, &next),
            "a kept deployment keeps its health cell"
        );
        let added = Arc::new(Deployment::new("h", "mock/b"));
        let second = b
            .deployment(dep.clone(), tower::service_fn(named("new")))
            .deployment(added, tower::service_fn(named("added")))
            .build();
        let old = live.swap(second);
        assert_eq!(old.model_names(), ["g"]);
        assert_eq!(live.current().model_names(), ["g", "h"]);
        // The kept deployment is still cooling down (the only one of its group: routed anyway
        // is not the router's business; the cell is what matters).
        assert!(live.current().health(&dep.id).unwrap().is_cooling());
        let r = live.clone().oneshot(chat("h")).await.unwrap();
        assert_eq!(model_of(&r), "added");
    }

    #[tokio::test]
    async fn an_in_flight_call_finishes_on_its_table() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
        let slow = tower::service_fn(move |_req: LlmRequest| {
            let rx = rx.clone();
            async move {
                if let Some(rx) = rx.lock().await.take() {
                    let _ = rx.await;
                }
                let r = ChatResponse {
                    model: Some("old".into()),
                    ..ChatResponse::default()
                };
                Ok::<_, LlmError>(LlmResponse::chat(r))
            }
        });
        let live = LiveRouter::new(
            Router::builder()
                .deployment(Arc::new(Deployment::new("g", "mock/a")), slow)
                .build(),
        );
        let pending = tokio::spawn(live.clone().oneshot(chat("g")));
        tokio::task::yield_now().await;
        live.swap(
            Router::builder()
                .deployment(
                    Arc::new(Deployment::new("g", "mock/b")),
                    tower::service_fn(named("new")),
                )
                .build(),
        );
        let r = live.clone().oneshot(chat("g")).await.unwrap();
        assert_eq!(model_of(&r), "new");
        tx.send(()).unwrap();
        let r = pending.await.unwrap().unwrap();
        assert_eq!(
            model_of(&r),
            "old",
            "the call started before the swap ends on its table"
        );
    }
}
