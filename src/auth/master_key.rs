//! [`MasterKey`]: the master key alone (no virtual keys).

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::future::{self, Either, Ready};
use tower_layer::Layer;
use tower_service::Service;

use super::{Admission, PresentedKey};
use crate::{
    error::{ErrorKind, LlmError},
    secret::Secret,
    types::{LlmRequest, LlmResponse},
};

/// Applies [`MasterKey`]. See the [module docs](super) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct MasterKeyLayer {
    key: Option<Arc<Secret>>,
}

impl MasterKeyLayer {
    /// Requires `key` when it is `Some`; lets everything through when `None`.
    pub fn new(key: Option<Secret>) -> Self {
        Self {
            key: key.filter(|k| !k.is_empty()).map(Arc::new),
        }
    }
}

impl MasterKeyLayer {
    /// This layer's key check, for the edge to run before it reads a body (see [`Admission`]).
    pub fn admission(&self) -> Admission {
        Admission::master_key(self.key.as_deref().cloned())
    }
}

impl<S> Layer<S> for MasterKeyLayer {
    type Service = MasterKey<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MasterKey {
            inner,
            key: self.key.clone(),
        }
    }
}

/// Refuses requests without the master key. See the [module docs](super) for an example.
#[derive(Clone, Debug)]
pub struct MasterKey<S> {
    inner: S,
    key: Option<Arc<Secret>>,
}

impl<S> MasterKey<S> {
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

impl<S> Service<LlmRequest> for MasterKey<S>
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
        if let Some(master) = &self.key {
            let ok = req
                .extensions
                .get::<PresentedKey>()
                .is_some_and(|p| master.matches(p.0.expose()));
            if !ok {
                let presented = req.extensions.get::<PresentedKey>().is_some();
                let msg = if presented {
                    "Authentication Error, invalid API key"
                } else {
                    "Authentication Error, no API key passed in. Pass it as `Authorization: Bearer <key>`"
                };
                return Either::Left(future::ready(Err(LlmError::new(
                    ErrorKind::Authentication,
                    msg,
                )
                .with_type("auth_error")
                .with_code("401"))));
            }
        }
        Either::Right(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt as _;

    use super::*;

    fn ok_service(
    ) -> impl Service<LlmRequest, Response = LlmResponse, Error = LlmError, Future = impl Send> + Clone
    {
        tower::service_fn(|_r: LlmRequest| async {
            Ok::<_, LlmError>(LlmResponse::chat(
                crate::types::chat::ChatResponse::default(),
            ))
        })
    }

    #[tokio::test]
    async fn refuses_missing_and_wrong_keys() {
        let svc = MasterKeyLayer::new(Some(Secret::new("sk-1234"))).layer(ok_service());
        let err = svc
            .clone()
            .oneshot(LlmRequest::list_models())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Authentication);
        let mut wrong = LlmRequest::list_models();
        wrong
            .extensions
            .insert(PresentedKey(Secret::new("sk-9999")));
        assert_eq!(svc.clone().oneshot(wrong).await.unwrap_err().status(), 401);
        let mut right = LlmRequest::list_models();
        right
            .extensions
            .insert(PresentedKey(Secret::new("sk-1234")));
        assert!(svc.oneshot(right).await.is_ok());
    }

    #[tokio::test]
    async fn open_without_master_key() {
        let svc = MasterKeyLayer::new(None).layer(ok_service());
        assert!(svc.oneshot(LlmRequest::list_models()).await.is_ok());
    }
}
