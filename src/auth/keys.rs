//! Virtual keys: [`KeyInfo`], the [`KeyCache`] over the store, and the [`Auth`] layer.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{ready, Context, Poll},
    time::{Duration, Instant},
};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{access::ModelCatalog, PresentedKey};
use crate::{
    error::{ErrorKind, LlmError},
    secret::Secret,
    store::{hash_key, next_reset, now_ms, KeyStore, Limits, SpendTotals, StoreError},
    types::{LlmRequest, LlmResponse, Operation, ResponseBody},
};

/// The model name that, in a key's or team's `models`, allows every model the gateway serves.
pub const ALL_PROXY_MODELS: &str = "all-proxy-models";

/// Limits and spend of one scope (the key, its team or its user) as loaded from the store.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// The key hash, team id or user id.
    pub id: String,
    /// Limits and budget.
    pub limits: Limits,
    /// Spend stored for the current budget period (pending spend is in the spend ledger).
    pub spend: f64,
    /// When the budget period ends (Unix ms).
    pub budget_reset_at: Option<i64>,
}

/// The caller's identity, put into the request extensions as `Arc<KeyInfo>` by [`Auth`].
///
/// Layers after auth read it: rate limits and budgets (per key, team and user), cost (the spend row's
/// key hash, team and user), and the cache (tenant scoping by `team_id` or `token`). A master-key
/// caller gets a `KeyInfo` too, with [`KeyInfo::is_master`] set and no limits.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct KeyInfo {
    /// SHA-256 of the key, hex: LiteLLM's `token`, the key's id everywhere after auth.
    pub token: Arc<str>,
    /// The key's alias.
    pub key_alias: Option<String>,
    /// The key's team.
    pub team_id: Option<String>,
    /// The key's user.
    pub user_id: Option<String>,
    /// Models the key may call (empty: whatever its team allows).
    pub models: Vec<String>,
    /// Models its team allows (empty: all).
    pub team_models: Vec<String>,
    /// Models its user allows (empty: all).
    pub user_models: Vec<String>,
    /// The master key.
    pub is_master: bool,
    /// May use the management API (master key, or a `proxy_admin` user's key).
    pub is_admin: bool,
    /// Expiry (Unix ms).
    pub expires: Option<i64>,
    /// Refused while set (the key's or its team's `blocked`).
    pub blocked: bool,
    /// The key's limits and spend.
    pub key: Scope,
    /// The team's limits and spend.
    pub team: Option<Scope>,
    /// The user's limits and spend.
    pub user: Option<Scope>,
}

impl KeyInfo {
    /// The caller with the master key.
    #[must_use]
    pub fn master(master: &Secret) -> Self {
        let token: Arc<str> = hash_key(master.expose()).into();
        Self {
            key: Scope {
                id: token.to_string(),
                ..Scope::default()
            },
            token,
            key_alias: Some("master_key".to_owned()),
            is_master: true,
            is_admin: true,
            ..Self::default()
        }
    }

    /// Whether the key (and its team and user) may call `model`, by name, wildcard pattern or
    /// `all-proxy-models` (access groups and aliases need the gateway's [`ModelCatalog`]: see
    /// [`ModelCatalog::allows`]).
    #[must_use]
    pub fn allows_model(&self, model: &str) -> bool {
        ModelCatalog::new().allows(self, model)
    }

    /// Loads a key, its team and its user from a [`KeyStore`] (budget periods rolled over).
    pub async fn load(store: &dyn KeyStore, token: &str) -> Result<Option<Self>, StoreError> {
        let Some(k) = store.key_fresh(token).await? else {
            return Ok(None);
        };
        let team = match &k.team_id {
            Some(t) => store.team(t).await?,
            None => None,
        };
        let user = match &k.user_id {
            Some(u) => store.user(u).await?,
            None => None,
        };
        let is_admin = user
            .as_ref()
            .and_then(|u| u.user_role.as_deref())
            .is_some_and(|r| r == "proxy_admin");
        Ok(Some(Self {
            token: k.token.clone().into(),
            key_alias: k.key_alias.clone(),
            team_id: k.team_id.clone(),
            user_id: k.user_id.clone(),
            models: k.models.clone(),
            team_models: team.as_ref().map(|t| t.models.clone()).unwrap_or_default(),
            user_models: user.as_ref().map(|u| u.models.clone()).unwrap_or_default(),
            is_master: false,
            is_admin,
            expires: k.expires,
            blocked: k.blocked || team.as_ref().is_some_and(|t| t.blocked),
            key: Scope {
                id: k.token.clone(),
                limits: k.limits.clone(),
                spend: k.spend,
                budget_reset_at: k.budget_reset_at,
            },
            team: team.map(|t| Scope {
                id: t.team_id,
                limits: t.limits,
                spend: t.spend,
                budget_reset_at: t.budget_reset_at,
            }),
            user: user.map(|u| Scope {
                id: u.user_id,
                limits: u.limits,
                spend: u.spend,
                budget_reset_at: u.budget_reset_at,
            }),
        }))
    }

    /// Why this key may not be used now, if it may not.
    #[must_use]
    pub fn refusal(&self) -> Option<LlmError> {
        if self.blocked {
            return Some(auth_error(
                "Authentication Error - Key is blocked. Update via `/key/unblock` if you're admin.",
            ));
        }
        if let Some(exp) = self.expires {
            let now = now_ms();
            if exp <= now {
                return Some(auth_error(format!(
                    "Authentication Error - Expired Key. Key Expiry time {exp} and current time {now}"
                )));
            }
        }
        None
    }
}

fn auth_error(msg: impl Into<String>) -> LlmError {
    LlmError::new(ErrorKind::Authentication, msg)
        .with_type("auth_error")
        .with_code("401")
}

/// A cache hit: the key, or `None` for a key known not to exist.
type Hit = Option<Arc<KeyInfo>>;

struct Cached {
    info: Option<Arc<KeyInfo>>,
    fetched: Instant,
    refreshing: AtomicBool,
}

/// Key lookups cached in memory: entries are fresh for `ttl`, then served while a background
/// refresh runs (so a slow or down database does not slow calls with known keys), and dropped on
/// update ([`KeyCache::invalidate`]). Unknown keys are cached too (for `ttl`), so a flood of bad
/// keys does not reach the database.
#[derive(Clone)]
pub struct KeyCache {
    store: Arc<dyn KeyStore>,
    cache: moka::sync::Cache<Arc<str>, Arc<Cached>>,
    ttl: Duration,
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("ttl", &self.ttl)
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    /// A cache over `store` (the SQL [`Store`](crate::store::Store), an
    /// [`InMemoryStore`](crate::store::InMemoryStore) or any [`KeyStore`]); entries are fresh for
    /// `ttl` (default in the gateway: 10 s) and kept for at most an hour as a fallback while the
    /// store is unreachable.
    #[must_use]
    pub fn new(store: impl KeyStore, ttl: Duration) -> Self {
        Self::shared(Arc::new(store), ttl)
    }

    /// [`KeyCache::new`] over a store already behind an `Arc`.
    #[must_use]
    pub fn shared(store: Arc<dyn KeyStore>, ttl: Duration) -> Self {
        Self {
            store,
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600).max(ttl))
                .build(),
            ttl,
        }
    }

    /// The store behind the cache.
    #[must_use]
    pub fn key_store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    /// The store behind the cache as its concrete type `T`, when it is one (the management API
    /// takes the SQL [`Store`](crate::store::Store) this way); `None` for another store.
    #[must_use]
    pub fn store_as<T: KeyStore>(&self) -> Option<&T> {
        let any: &dyn std::any::Any = &*self.store;
        any.downcast_ref::<T>()
    }

    /// Forgets a key (after it changed).
    pub fn invalidate(&self, token: &str) {
        self.cache.invalidate(token);
    }

    /// Forgets every key of a team or user (after the team or user changed or spent).
    pub fn invalidate_where(&self, pred: impl Fn(&KeyInfo) -> bool) {
        for (k, v) in &self.cache {
            if v.info.as_deref().is_some_and(&pred) {
                self.cache.invalidate(&**k);
            }
        }
    }

    /// Adds spend just written to the database to the cached keys loaded before `written_at`
    /// (entries loaded later already include it), so budgets stay exact without reloading — and
    /// without a database round trip, which matters while the database is down.
    pub fn add_spend(&self, totals: &SpendTotals, written_at: Instant) {
        let bump = |token: &str, entry: &Cached| -> Option<Arc<KeyInfo>> {
            let info = entry.info.as_ref()?;
            if entry.fetched >= written_at {
                return None;
            }
            let k = totals.keys.get(token).copied().unwrap_or(0.0);
            let t = info
                .team_id
                .as_ref()
                .and_then(|t| totals.teams.get(t))
                .copied()
                .unwrap_or(0.0);
            let u = info
                .user_id
                .as_ref()
                .and_then(|u| totals.users.get(u))
                .copied()
                .unwrap_or(0.0);
            if k == 0.0 && t == 0.0 && u == 0.0 {
                return None;
            }
            let mut next = KeyInfo::clone(info);
            let now = now_ms();
            let add = |s: &mut Scope, v: f64| {
                if s.budget_reset_at.is_some_and(|r| r <= now) {
                    // The period ended: the store starts the new one with this spend.
                    s.spend = v;
                    s.budget_reset_at = next_reset(s.limits.budget_duration.as_deref(), now);
                } else {
                    s.spend += v;
                }
            };
            add(&mut next.key, k);
            if let Some(s) = next.team.as_mut() {
                add(s, t);
            }
            if let Some(s) = next.user.as_mut() {
                add(s, u);
            }
            Some(Arc::new(next))
        };
        let update = |token: Arc<str>, entry: &Cached| {
            if let Some(info) = bump(&token, entry) {
                self.cache.insert(
                    token,
                    Arc::new(Cached {
                        info: Some(info),
                        fetched: entry.fetched,
                        refreshing: AtomicBool::new(false),
                    }),
                );
            }
        };
        if totals.teams.is_empty() && totals.users.is_empty() {
            for token in totals.keys.keys() {
                let token: Arc<str> = token.as_str().into();
                if let Some(e) = self.cache.get(&token) {
                    update(token, &e);
                }
            }
        } else {
            for (token, e) in &self.cache {
                update(Arc::clone(&token), &e);
            }
        }
    }

    /// Forgets everything.
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// The cached entry if fresh, or stale while a refresh starts; `None` on a miss.
    #[allow(clippy::option_option)] // outer: cached or not; inner: key exists or not
    fn cached(&self, token: &Arc<str>) -> Option<Hit> {
        let entry = self.cache.get(token)?;
        if entry.fetched.elapsed() >= self.ttl
            && !entry.refreshing.swap(true, Ordering::AcqRel)
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let this = self.clone();
            let token = token.clone();
            tokio::spawn(async move {
                match this.fetch(&token).await {
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "key refresh failed; serving the cached entry");
                        if let Some(e) = this.cache.get(&token) {
                            e.refreshing.store(false, Ordering::Release);
                        }
                    }
                }
            });
        }
        Some(entry.info.clone())
    }

    async fn fetch(&self, token: &Arc<str>) -> Result<Option<Arc<KeyInfo>>, StoreError> {
        let info = KeyInfo::load(&*self.store, token).await?.map(Arc::new);
        self.cache.insert(
            token.clone(),
            Arc::new(Cached {
                info: info.clone(),
                fetched: Instant::now(),
                refreshing: AtomicBool::new(false),
            }),
        );
        Ok(info)
    }

    /// The key with this hash, from the cache or the store.
    pub async fn get(&self, token: &str) -> Result<Option<Arc<KeyInfo>>, StoreError> {
        let token: Arc<str> = token.into();
        if let Some(hit) = self.cached(&token) {
            return Ok(hit);
        }
        self.fetch(&token).await
    }
}

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

/// A loaded key that may be used now: known, not blocked, not expired.
fn usable(info: Option<Arc<KeyInfo>>) -> Result<Arc<KeyInfo>, LlmError> {
    let Some(info) = info else {
        return Err(auth_error(
            "Authentication Error, Invalid proxy server token passed. Unable to find token in cache or the database.",
        ));
    };
    match info.refusal() {
        Some(e) => Err(e),
        None => Ok(info),
    }
}

/// The answer when the key store cannot be reached: 503.
fn store_unavailable(e: &StoreError) -> LlmError {
    tracing::error!(error = %e, "key lookup failed");
    LlmError::new(
        ErrorKind::ServiceUnavailable,
        "Authentication Error - the key store is unavailable; try again",
    )
    .with_code("503")
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
            Identified::Cached(hit) => usable(hit).map(drop),
            Identified::Lookup(keys, token) => match keys.fetch(&token).await {
                Ok(info) => usable(info).map(drop),
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
) -> Result<Filter, LlmError> {
    let info = usable(info)?;
    let list = matches!(req.op, Operation::ListModels);
    if !list {
        catalog.check(&info, req.model())?;
        for group in crate::fallback::requested_groups(req) {
            catalog.check(&info, &group)?;
        }
    }
    let filter = list.then(|| (info.clone(), catalog.clone()));
    // Cached answers are shared within a team, else within one key, never across tenants.
    req.extensions.insert(match &info.team_id {
        Some(team) => crate::cache::CacheScope::team(team),
        None => crate::cache::CacheScope::key(&info.token),
    });
    req.extensions.insert(info);
    Ok(filter)
}

type LookupFuture = Pin<Box<dyn Future<Output = Result<Option<Arc<KeyInfo>>, StoreError>> + Send>>;

impl<S> Service<LlmRequest> for Auth<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError> + Clone,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = ResponseFuture<S, S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: LlmRequest) -> Self::Future {
        let presented = req.extensions.get::<PresentedKey>().map(|p| &p.0);
        let (keys, token) = match identify(self.master.as_ref(), self.keys.as_ref(), presented) {
            Err(e) => return ResponseFuture::error(e),
            Ok(Identified::Open) => return ResponseFuture::inner(self.inner.call(req), None),
            Ok(Identified::Master(info)) => {
                req.extensions.insert(info);
                return ResponseFuture::inner(self.inner.call(req), None);
            }
            Ok(Identified::Cached(hit)) => {
                return match admit(hit, &mut req, &self.catalog) {
                    Ok(filter) => ResponseFuture::inner(self.inner.call(req), filter),
                    Err(e) => ResponseFuture::error(e),
                };
            }
            Ok(Identified::Lookup(keys, token)) => (keys, token),
        };
        let lookup: LookupFuture = Box::pin(async move { keys.fetch(&token).await });
        let clone = self.inner.clone();
        let svc = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            state: State::Lookup {
                lookup,
                svc: Some(svc),
                req: Some(req),
                catalog: self.catalog.clone(),
            },
        }
    }
}

pin_project! {
    /// The response future of [`Auth`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, F> {
        #[pin]
        state: State<S, F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F> {
        Error { err: Option<LlmError> },
        Lookup { lookup: LookupFuture, svc: Option<S>, req: Option<LlmRequest>, catalog: Arc<ModelCatalog> },
        Inner { #[pin] fut: F, filter: Filter },
    }
}

impl<S, F> ResponseFuture<S, F> {
    fn inner(fut: F, filter: Filter) -> Self {
        Self {
            state: State::Inner { fut, filter },
        }
    }

    fn error(err: LlmError) -> Self {
        Self {
            state: State::Error { err: Some(err) },
        }
    }
}

impl<S, F> fmt::Debug for ResponseFuture<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("auth::ResponseFuture")
            .finish_non_exhaustive()
    }
}

impl<S> Future for ResponseFuture<S, S::Future>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    type Output = Result<LlmResponse, LlmError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            match this.state.as_mut().project() {
                StateProj::Error { err } => {
                    return Poll::Ready(Err(err.take().unwrap_or_else(|| {
                        LlmError::internal("auth future polled after completion")
                    })));
                }
                StateProj::Lookup {
                    lookup,
                    svc,
                    req,
                    catalog,
                } => {
                    let found = ready!(lookup.as_mut().poll(cx));
                    let (Some(mut svc), Some(mut req)) = (svc.take(), req.take()) else {
                        return Poll::Ready(Err(LlmError::internal(
                            "auth future polled after completion",
                        )));
                    };
                    let next = match found {
                        Err(e) => State::Error {
                            err: Some(store_unavailable(&e)),
                        },
                        Ok(info) => match admit(info, &mut req, catalog) {
                            Ok(filter) => State::Inner {
                                fut: svc.call(req),
                                filter,
                            },
                            Err(e) => State::Error { err: Some(e) },
                        },
                    };
                    this.state.set(next);
                }
                StateProj::Inner { fut, filter } => {
                    let mut resp = ready!(fut.poll(cx))?;
                    if let (Some((info, catalog)), ResponseBody::Models(list)) =
                        (filter.as_ref(), &mut resp.body)
                    {
                        list.data.retain(|m| catalog.allows(info, &m.id));
                    }
                    return Poll::Ready(Ok(resp));
                }
            }
        }
    }
}
