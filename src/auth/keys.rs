//! The virtual-key layer: [`AuthLayer`], [`Auth`] and the edge's [`Admission`] check, over a
//! [`KeyCache`].

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tower_layer::Layer;
use tower_service::Service;

use super::{
    access::ModelCatalog,
    key_cache::{Hit, KeyCache},
    key_info::auth_error,
    EndUserInfo, KeyInfo, PresentedKey,
};
use crate::{
    admission::{Admission as Decided, AdmissionFuture, OnResponse},
    error::{ErrorKind, LlmError},
    secret::Secret,
    store::{hash_key, StoreError},
    types::{LlmRequest, LlmResponse, ResponseBody},
};

/// Applies [`Auth`]. See the [module docs](super) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct AuthLayer {
    master: Option<Master>,
    keys: Option<KeyCache>,
    catalog: Arc<ModelCatalog>,
}

/// The master key and the caller it stands for, built once (hashing it per call would cost a
/// SHA-256 per request).
#[derive(Clone, Debug)]
struct Master {
    key: Arc<Secret>,
    info: Arc<KeyInfo>,
}

impl Master {
    fn new(key: Option<Secret>) -> Option<Self> {
        key.filter(|k| !k.is_empty()).map(|key| Self {
            info: Arc::new(KeyInfo::master(&key)),
            key: Arc::new(key),
        })
    }
}

impl AuthLayer {
    /// The master key (`None`: the gateway is open) and, optionally, virtual keys from `keys`.
    pub fn new(master: Option<Secret>, keys: Option<KeyCache>) -> Self {
        Self {
            master: Master::new(master),
            keys,
            catalog: Arc::default(),
        }
    }

    /// This layer's key check, for the edge to run before it reads a body (see [`Admission`]).
    #[must_use]
    pub fn admission(&self) -> Admission {
        Admission {
            master: self.master.clone(),
            keys: self.keys.clone(),
        }
    }

    /// The gateway's aliases and access groups, for model access (default: none).
    pub fn catalog(mut self, catalog: Arc<ModelCatalog>) -> Self {
        self.catalog = catalog;
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            master: self.master.clone(),
            keys: self.keys.clone(),
            catalog: self.catalog.clone(),
        }
    }
}

/// Authenticates the master key and virtual keys, checks model access, and filters `GET /v1/models`.
/// See the [module docs](super) for an example.
#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    master: Option<Master>,
    keys: Option<KeyCache>,
    catalog: Arc<ModelCatalog>,
}

impl<S> Auth<S> {
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

/// What `GET /v1/models` is filtered by: the caller and the catalog.
type Filter = Option<(Arc<KeyInfo>, Arc<ModelCatalog>)>;

/// Unix ms now on the clock of `keys` (the gateway's).
fn now_of(keys: Option<&KeyCache>) -> i64 {
    keys.map_or_else(
        || crate::clock::Clock::system().unix_ms(),
        |k| k.clock().unix_ms(),
    )
}

/// Marks an error that auth answered itself (a refusal, or a key store out of reach), as the
/// error's [`source`](std::error::Error::source), with the caller's key when it was known (a
/// blocked or expired key, a model it may not call, a blocked end user): the call never reached
/// the layers inside auth, so the metrics count it from this ([`AuthRefusal::of`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct AuthRefusal {
    /// The caller's key, when auth knew it.
    pub key: Option<Arc<KeyInfo>>,
}

impl AuthRefusal {
    /// The mark on `e`, when auth answered it.
    #[must_use]
    pub fn of(e: &LlmError) -> Option<&Self> {
        std::error::Error::source(e)?.downcast_ref()
    }
}

impl std::fmt::Display for AuthRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("answered by auth")
    }
}

impl std::error::Error for AuthRefusal {}

fn refused(e: LlmError, key: Option<&Arc<KeyInfo>>) -> LlmError {
    e.with_source(AuthRefusal { key: key.cloned() })
}

/// A loaded key that may be used at `now`: known, not blocked, not expired.
fn usable(info: Option<Arc<KeyInfo>>, now: i64) -> Result<Arc<KeyInfo>, LlmError> {
    let Some(info) = info else {
        return Err(refused(auth_error(
            "Authentication Error, Invalid proxy server token passed. Unable to find token in cache or the database.",
        ), None));
    };
    match info.refusal(now) {
        Some(e) => Err(refused(e, Some(&info))),
        None => Ok(info),
    }
}

/// The answer when the key store cannot be reached: 503.
fn store_unavailable(e: &StoreError) -> LlmError {
    tracing::error!(error = %e, "key lookup failed");
    refused(
        LlmError::new(
            ErrorKind::ServiceUnavailable,
            "Authentication Error - the key store is unavailable; try again",
        )
        .with_code("503"),
        None,
    )
}

/// Whose a presented key is, as far as it can be told without waiting.
enum Identified {
    /// No master key: the gateway is open.
    Open,
    /// The master key.
    Master(Arc<KeyInfo>),
    /// A virtual key the cache holds (or knows not to exist).
    Cached(Hit),
    /// A virtual key to look up in the store (its hash).
    Lookup(KeyCache, Arc<str>),
}

/// The first step of authentication, shared by [`Auth`] and [`Admission`]: the master key, or a
/// virtual key's cache entry; `Err` when no key was presented, or no virtual keys exist.
fn identify(
    master: Option<&Master>,
    keys: Option<&KeyCache>,
    presented: Option<&Secret>,
) -> Result<Identified, LlmError> {
    let Some(master) = master else {
        // Open gateway (no master key), as LiteLLM's proxy without one.
        return Ok(Identified::Open);
    };
    let Some(presented) = presented else {
        return Err(auth_error(
            "Authentication Error, no API key passed in. Pass it as `Authorization: Bearer <key>`",
        ));
    };
    if master.key.matches(presented.expose()) {
        return Ok(Identified::Master(master.info.clone()));
    }
    let Some(keys) = keys else {
        return Err(auth_error("Authentication Error, invalid API key"));
    };
    let token: Arc<str> = hash_key(presented.expose()).into();
    Ok(match keys.cached(&token) {
        Some(hit) => Identified::Cached(hit),
        None => Identified::Lookup(keys.clone(), token),
    })
}

/// The key check of an [`AuthLayer`] or a [`MasterKeyLayer`](super::MasterKeyLayer), run by
/// [`OpenAiServer`](crate::server::OpenAiServer) on a request's headers before it reads the body:
/// a caller without a valid key (none, wrong, unknown, blocked, expired) is refused at the cost
/// of its headers. The layer itself checks again, with the body (model access), so a stack
/// mounted without the edge is just as closed. A virtual key looked up here is cached, so the
/// layer's check finds it without a second lookup.
#[derive(Clone, Debug)]
pub struct Admission {
    master: Option<Master>,
    keys: Option<KeyCache>,
}

impl Admission {
    /// A check of the master key alone (`None`: everyone is admitted).
    #[must_use]
    pub fn master_key(master: Option<Secret>) -> Self {
        Self {
            master: Master::new(master),
            keys: None,
        }
    }

    /// Whether the caller presenting `presented` may send a request body.
    pub async fn check(&self, presented: Option<&Secret>) -> Result<(), LlmError> {
        match identify(self.master.as_ref(), self.keys.as_ref(), presented)? {
            Identified::Open | Identified::Master(_) => Ok(()),
            Identified::Cached(hit) => usable(hit, now_of(self.keys.as_ref())).map(drop),
            Identified::Lookup(keys, token) => match keys.fetch(&token).await {
                Ok(info) => usable(info, keys.clock().unix_ms()).map(drop),
                Err(e) => Err(store_unavailable(&e)),
            },
        }
    }
}

/// Checks a loaded key against the request: its model and every fallback group the body names
/// (LiteLLM's 401 before any upstream call). On success puts the key into the extensions.
fn admit(
    info: Option<Arc<KeyInfo>>,
    req: &mut LlmRequest,
    catalog: &Arc<ModelCatalog>,
    now: i64,
) -> Result<Filter, LlmError> {
    let info = usable(info, now)?;
    let list = !req.kind().calls_a_model();
    if !list {
        let denied = |e| refused(e, Some(&info));
        // A team model alias (`model_aliases`) calls the group it names: allowed when the alias
        // or that group is, as a `model_group_alias`.
        let target = info
            .team_model_aliases
            .as_ref()
            .and_then(|a| a.get(req.model()))
            .cloned();
        match target {
            Some(group) => {
                if catalog.check(&info, req.model()).is_err() {
                    catalog.check(&info, &group).map_err(denied)?;
                }
                req.set_model(&group);
            }
            None => catalog.check(&info, req.model()).map_err(denied)?,
        }
        for group in req.requested_fallback_groups() {
            catalog.check(&info, &group).map_err(denied)?;
        }
    }
    let filter = list.then(|| (info.clone(), catalog.clone()));
    // Cached answers are shared within a team, else within one key, never across tenants.
    req.extensions.insert(match &info.team_id {
        Some(team) => crate::types::extensions::CacheScope::team(team),
        None => crate::types::extensions::CacheScope::key(&info.token),
    });
    req.extensions.insert(info);
    Ok(filter)
}

impl<S> Service<LlmRequest> for Auth<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError> + Clone,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = ResponseFuture<S>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: LlmRequest) -> Self::Future {
        let presented = req.extensions.get::<PresentedKey>().map(|p| &p.0);
        let (keys, token) = match identify(self.master.as_ref(), self.keys.as_ref(), presented) {
            Err(e) => return AdmissionFuture::respond(Err(refused(e, None))),
            Ok(Identified::Open) => {
                return AdmissionFuture::call(&mut self.inner, req, ModelFilter(None))
            }
            Ok(Identified::Master(info)) => {
                req.extensions.insert(info);
                return self.with_end_user(req, None);
            }
            Ok(Identified::Cached(hit)) => {
                let now = now_of(self.keys.as_ref());
                return match admit(hit, &mut req, &self.catalog, now) {
                    Ok(filter) => self.with_end_user(req, filter),
                    Err(e) => AdmissionFuture::respond(Err(e)),
                };
            }
            Ok(Identified::Lookup(keys, token)) => (keys, token),
        };
        // A cache miss: look the key up, then call with the request it admitted, or answer.
        let catalog = self.catalog.clone();
        let decision: Decision = Box::pin(async move {
            match keys.fetch(&token).await {
                Err(e) => Decided::Respond(Err(store_unavailable(&e))),
                Ok(info) => match admit(info, &mut req, &catalog, keys.clock().unix_ms()) {
                    Ok(filter) => match end_user_id(&req) {
                        Some(id) => match keys.end_user(&id).await {
                            Err(e) => Decided::Respond(Err(store_unavailable(&e))),
                            Ok(eu) => match admit_end_user(eu, &mut req) {
                                Ok(()) => Decided::Call(req, ModelFilter(filter)),
                                Err(e) => Decided::Respond(Err(e)),
                            },
                        },
                        None => Decided::Call(req, ModelFilter(filter)),
                    },
                    Err(e) => Decided::Respond(Err(e)),
                },
            }
        });
        AdmissionFuture::decide(&mut self.inner, decision)
    }
}

impl<S> Auth<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError> + Clone,
{
    /// Calls with an admitted request after the check of its end user (the body's `user`): a
    /// blocked end user is refused; one with a row goes into the extensions for the budget
    /// layer. Cached: no await; otherwise the end user is read first.
    fn with_end_user(&mut self, mut req: LlmRequest, filter: Filter) -> ResponseFuture<S> {
        let (Some(keys), Some(id)) = (self.keys.as_ref(), end_user_id(&req)) else {
            return AdmissionFuture::call(&mut self.inner, req, ModelFilter(filter));
        };
        if let Some(eu) = keys.end_user_cached(&id) {
            return match admit_end_user(eu, &mut req) {
                Ok(()) => AdmissionFuture::call(&mut self.inner, req, ModelFilter(filter)),
                Err(e) => AdmissionFuture::respond(Err(e)),
            };
        }
        let keys = keys.clone();
        let decision: Decision = Box::pin(async move {
            match keys.end_user(&id).await {
                Err(e) => Decided::Respond(Err(store_unavailable(&e))),
                Ok(eu) => match admit_end_user(eu, &mut req) {
                    Ok(()) => Decided::Call(req, ModelFilter(filter)),
                    Err(e) => Decided::Respond(Err(e)),
                },
            }
        });
        AdmissionFuture::decide(&mut self.inner, decision)
    }
}

/// The end user a model call is made for, when it names one (ids longer than 1 KiB are no end
/// user's: the management API stores none).
fn end_user_id(req: &LlmRequest) -> Option<String> {
    if !req.kind().calls_a_model() {
        return None;
    }
    req.end_user()
        .filter(|u| !u.is_empty() && u.len() <= 1024)
        .map(std::borrow::Cow::into_owned)
}

/// Refuses a blocked end user; puts one with a row into the extensions.
fn admit_end_user(eu: Option<Arc<EndUserInfo>>, req: &mut LlmRequest) -> Result<(), LlmError> {
    let Some(eu) = eu else { return Ok(()) };
    if let Some(e) = eu.refusal() {
        return Err(refused(e, req.extensions.get::<Arc<KeyInfo>>()));
    }
    req.extensions.insert(eu);
    Ok(())
}

/// The key lookup of a cache miss, deciding whether (and with which request) to call the inner
/// service.
type Decision = Pin<Box<dyn Future<Output = Decided<ModelFilter>> + Send>>;

/// The response future of [`Auth`]: the shared [`AdmissionFuture`] (a key lookup when the key is
/// not cached, then the inner call), with the model listing filtered for the caller.
pub type ResponseFuture<S> = AdmissionFuture<S, Decision, ModelFilter>;

/// What auth does with the inner answer: a model listing keeps only the groups the caller may use.
#[derive(Debug)]
pub struct ModelFilter(Filter);

impl OnResponse for ModelFilter {
    fn on_response(self, result: Result<LlmResponse, LlmError>) -> Result<LlmResponse, LlmError> {
        let mut resp = result?;
        if let (Some((info, catalog)), ResponseBody::Models(list)) =
            (self.0.as_ref(), &mut resp.body)
        {
            list.data.retain(|m| catalog.allows(info, &m.id));
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::ServiceExt as _;

    use super::*;
    use crate::store::{InMemoryStore, KeyRow, KeyStore, NewKey, StoreFuture, TeamRow, UserRow};

    /// A key store that cannot be reached.
    #[derive(Debug)]
    struct Down;

    impl KeyStore for Down {
        fn key_fresh<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<KeyRow>> {
            Box::pin(async { Err(StoreError::msg("connection refused")) })
        }
        fn team<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<TeamRow>> {
            Box::pin(async { Err(StoreError::msg("connection refused")) })
        }
        fn user<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<UserRow>> {
            Box::pin(async { Err(StoreError::msg("connection refused")) })
        }
    }

    fn ok_service(
    ) -> impl Service<LlmRequest, Response = LlmResponse, Error = LlmError, Future = impl Send> + Clone
    {
        tower::service_fn(|_r: LlmRequest| async {
            Ok::<_, LlmError>(LlmResponse::chat(
                crate::types::chat::ChatResponse::default(),
            ))
        })
    }

    fn request(key: &str) -> LlmRequest {
        let mut req = LlmRequest::chat(crate::types::chat::ChatRequest {
            model: "m".into(),
            ..Default::default()
        });
        req.extensions.insert(PresentedKey(Secret::new(key)));
        req
    }

    #[tokio::test]
    async fn virtual_keys_over_the_memory_store() {
        let store = InMemoryStore::new();
        let (secret, _) = store
            .create_key(NewKey {
                models: vec!["m".into()],
                ..NewKey::default()
            })
            .unwrap();
        let keys = KeyCache::new(store, Duration::from_secs(10));
        let svc = AuthLayer::new(Some(Secret::new("sk-master")), Some(keys)).layer(ok_service());
        assert!(svc.clone().oneshot(request(secret.expose())).await.is_ok());
        let e = svc.oneshot(request("sk-unknown")).await.unwrap_err();
        assert_eq!(e.status(), 401);
    }

    #[tokio::test]
    async fn a_store_that_cannot_be_reached_is_a_503() {
        let keys = KeyCache::new(Down, Duration::from_secs(10));
        let layer = AuthLayer::new(Some(Secret::new("sk-master")), Some(keys));
        let e = layer
            .layer(ok_service())
            .oneshot(request("sk-any"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ServiceUnavailable);
        assert_eq!(e.status(), 503);
        // The edge's check answers the same.
        let e = layer
            .admission()
            .check(Some(&Secret::new("sk-any")))
            .await
            .unwrap_err();
        assert_eq!(e.status(), 503);
    }
}
