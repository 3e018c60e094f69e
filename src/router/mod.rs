//! Model groups and their deployments: picks the deployment that serves a request.
//!
//! A [`Router`] holds the deployment table (the sanctioned box: each deployment is a
//! `BoxCloneSyncService` stack of its own). It answers `GET /v1/models` with the groups it serves and
//! turns an unknown model into [`ErrorKind::NotFound`] naming the model and the models available.
//!
//! Strategy: the first deployment of a group, until the routing strategies land.
//!
//! Extensions read: none yet. Extensions written: [`SelectedDeployment`].

use std::{
    collections::HashMap,
    fmt,
    sync::Arc,
    task::{Context, Poll},
    time::{SystemTime, UNIX_EPOCH},
};

use futures_util::future::{self, Either, Ready};
use tower::util::BoxCloneSyncService;
use tower_service::Service;

use crate::{
    error::{ErrorKind, LlmError},
    provider::Deployment,
    types::{models::ModelList, LlmRequest, LlmResponse, Operation},
};

/// A deployment's model-level stack, boxed once.
pub type DeploymentService = BoxCloneSyncService<LlmRequest, LlmResponse, LlmError>;

/// The deployment the router chose, put into the request's extensions.
#[derive(Clone, Debug)]
pub struct SelectedDeployment(pub Arc<Deployment>);

#[derive(Clone)]
struct Entry {
    deployment: Arc<Deployment>,
    service: DeploymentService,
}

/// Routes a request to a deployment of its model group. See the [module docs](self).
#[derive(Clone)]
pub struct Router {
    groups: Arc<HashMap<String, Vec<Entry>>>,
    names: Arc<[String]>,
    created: u64,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("groups", &self.names)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Router`].
#[derive(Default)]
#[must_use]
pub struct RouterBuilder {
    groups: HashMap<String, Vec<Entry>>,
    order: Vec<String>,
}

impl fmt::Debug for RouterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterBuilder")
            .field("groups", &self.order)
            .finish_non_exhaustive()
    }
}

impl RouterBuilder {
    /// Adds a deployment to its model group (`deployment.model_group`).
    pub fn deployment<S>(mut self, deployment: Arc<Deployment>, service: S) -> Self
    where
        S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let group = deployment.model_group.to_string();
        if !self.groups.contains_key(&group) {
            self.order.push(group.clone());
        }
        self.groups.entry(group).or_default().push(Entry {
            deployment,
            service: BoxCloneSyncService::new(service),
        });
        self
    }

    /// Builds the router.
    pub fn build(self) -> Router {
        Router {
            groups: Arc::new(self.groups),
            names: self.order.into(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

impl Router {
    /// A builder.
    pub fn builder() -> RouterBuilder {
        RouterBuilder::default()
    }

    /// The model groups served, in config order.
    #[must_use]
    pub fn model_names(&self) -> &[String] {
        &self.names
    }

    /// The deployments of a group.
    pub fn deployments(&self, group: &str) -> impl Iterator<Item = &Arc<Deployment>> {
        self.groups
            .get(group)
            .into_iter()
            .flat_map(|v| v.iter().map(|e| &e.deployment))
    }

    fn unknown_model(&self, model: &str) -> LlmError {
        let mut available = self.names.join(", ");
        if available.is_empty() {
            available.push_str("none");
        }
        LlmError::new(
            ErrorKind::NotFound,
            format!(
                "The model `{model}` does not exist or you do not have access to it. Models available: {available}"
            ),
        )
        .with_param("model")
        .with_code("model_not_found")
    }
}

impl Service<LlmRequest> for Router {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = Either<
        Ready<Result<LlmResponse, LlmError>>,
        <DeploymentService as Service<LlmRequest>>::Future,
    >;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is per deployment and driven inside the call, once a deployment is picked.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: LlmRequest) -> Self::Future {
        if matches!(req.op, Operation::ListModels) {
            let list = ModelList::new(self.names.iter().cloned(), self.created);
            return Either::Left(future::ready(Ok(LlmResponse {
                body: crate::types::ResponseBody::Models(list),
                meta: crate::types::ResponseMeta::default(),
            })));
        }
        let Some(entry) = self.groups.get(req.model()).and_then(|v| v.first()) else {
            return Either::Left(future::ready(Err(self.unknown_model(req.model()))));
        };
        req.extensions
            .insert(SelectedDeployment(entry.deployment.clone()));
        let mut svc = entry.service.clone();
        Either::Right(svc.call(req))
    }
}
