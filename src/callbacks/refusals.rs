//! [`AuthRefusalLayer`]: counts the calls auth answered itself, which never reach the
//! [`CallRecorder`](super::CallRecorder) inside it.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{layer::route_of, Callbacks};
use crate::{
    auth::AuthRefusal,
    error::LlmError,
    metrics::Metrics,
    types::{LlmRequest, LlmResponse},
};

/// Counts the errors auth answered itself (marked [`AuthRefusal`]: an unknown, blocked or
/// expired key, a model the key may not call, a blocked end user, the key store out of reach)
/// in `litellm_proxy_total_requests_metric` and `litellm_proxy_failed_requests_metric`, as
/// LiteLLM's `async_post_call_failure_hook` counts its auth failures: the requested model, the
/// caller's key when auth knew it, the route, the status and the error class. Put it just
/// outside auth ([`CallRecordLayer::auth_refusals`](super::CallRecordLayer::auth_refusals));
/// errors from inside auth pass through uncounted (the recorder counted them).
///
/// A call costs one lookup of its model name among the interned names (no allocation), and only
/// when Prometheus is on.
#[derive(Clone, Debug)]
#[must_use]
pub struct AuthRefusalLayer {
    callbacks: Callbacks,
}

impl super::CallRecordLayer {
    /// The layer that counts the calls auth refused, for the same consumers; put it just outside
    /// auth, this layer inside.
    pub fn auth_refusals(&self) -> AuthRefusalLayer {
        AuthRefusalLayer {
            callbacks: self.callbacks().clone(),
        }
    }
}

impl<S> Layer<S> for AuthRefusalLayer {
    type Service = AuthRefusals<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthRefusals {
            inner,
            metrics: self.callbacks.metrics_registry().cloned(),
            callbacks: self.callbacks.clone(),
        }
    }
}

/// See [`AuthRefusalLayer`].
#[derive(Clone, Debug)]
pub struct AuthRefusals<S> {
    inner: S,
    metrics: Option<Metrics>,
    callbacks: Callbacks,
}

impl<S> AuthRefusals<S> {
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

impl<S> Service<LlmRequest> for AuthRefusals<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = AuthRefusalFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let kind = req.kind();
        let watch = match &self.metrics {
            Some(m) if kind.calls_a_model() => Some((
                m.clone(),
                route_of(kind),
                self.callbacks.intern_group(req.model()),
            )),
            _ => None,
        };
        AuthRefusalFuture {
            inner: self.inner.call(req),
            watch,
        }
    }
}

pin_project! {
    /// The future of [`AuthRefusals`].
    #[must_use = "futures do nothing unless polled"]
    pub struct AuthRefusalFuture<F> {
        #[pin]
        inner: F,
        watch: Option<(Metrics, &'static str, Arc<str>)>,
    }
}

impl<F> fmt::Debug for AuthRefusalFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRefusalFuture").finish_non_exhaustive()
    }
}

impl<F> Future for AuthRefusalFuture<F>
where
    F: Future<Output = Result<LlmResponse, LlmError>>,
{
    type Output = Result<LlmResponse, LlmError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        if let (Err(e), Some((metrics, route, model))) = (&out, this.watch.take()) {
            if let Some(r) = AuthRefusal::of(e) {
                metrics.refused_by_auth(route, model, r.key.as_deref(), e);
            }
        }
        Poll::Ready(out)
    }
}

#[cfg(test)]
mod tests {
    use tower::{Layer as _, ServiceExt as _};

    use super::*;
    use crate::{
        auth::{AuthLayer, KeyCache},
        callbacks::CallRecordLayer,
        secret::Secret,
        store::{InMemoryStore, NewKey},
    };

    fn chat(model: &str, key: &str) -> LlmRequest {
        let mut req = LlmRequest::chat(
            serde_json::from_str(&format!(
                r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#
            ))
            .unwrap(),
        );
        req.extensions
            .insert(crate::auth::PresentedKey(Secret::new(key)));
        req
    }

    #[tokio::test]
    async fn auths_refusals_are_counted_once_with_the_key_and_the_model() {
        let store = InMemoryStore::new();
        let (key, _) = store
            .create_key(NewKey {
                key_alias: Some("narrow".into()),
                models: vec!["allowed".into()],
                ..NewKey::default()
            })
            .unwrap();
        let metrics = Metrics::new();
        let record = CallRecordLayer::new(Callbacks::new().metrics(metrics.clone()));
        let inner = tower::service_fn(|_r: LlmRequest| async {
            Err::<LlmResponse, _>(LlmError::new(crate::ErrorKind::RateLimit, "inner"))
        });
        let auth = AuthLayer::new(
            Some(Secret::new("sk-master")),
            Some(KeyCache::new(store, std::time::Duration::from_secs(10))),
        );
        let svc = record
            .auth_refusals()
            .layer(auth.layer(record.layer(inner)));
        // A model the key may not call: 401 from auth, counted here with the key's labels.
        let e = svc
            .clone()
            .oneshot(chat("other", key.expose()))
            .await
            .unwrap_err();
        assert_eq!(e.status(), 401);
        assert!(AuthRefusal::of(&e).is_some_and(|r| r.key.is_some()));
        // An unknown key: 401, no key labels.
        let e = svc
            .clone()
            .oneshot(chat("allowed", "sk-nobody"))
            .await
            .unwrap_err();
        assert!(AuthRefusal::of(&e).is_some_and(|r| r.key.is_none()));
        // Admitted, then refused inside (the recorder counts it; this layer does not again).
        let e = svc
            .oneshot(chat("allowed", key.expose()))
            .await
            .unwrap_err();
        assert!(AuthRefusal::of(&e).is_none());
        let text = metrics.render();
        let total: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("litellm_proxy_total_requests_metric_total{"))
            .collect();
        assert_eq!(total.len(), 3, "{text}");
        let denied = total
            .iter()
            .find(|l| l.contains("requested_model=\"other\""))
            .unwrap();
        for part in [
            "api_key_alias=\"narrow\"",
            "status_code=\"401\"",
            "route=\"/chat/completions\"",
        ] {
            assert!(denied.contains(part), "{part} not in {denied}");
        }
        assert!(denied.ends_with(" 1.0"));
        assert!(text.contains("hashed_api_key=\"\",api_key_alias=\"\",requested_model=\"allowed\",team=\"\",team_alias=\"\",user=\"\",user_email=\"\",exception_status=\"401\",exception_class=\"authentication\""), "{text}");
        assert!(text.contains("exception_status=\"429\",exception_class=\"rate_limit\""));
    }
}
