//! [`KeyCache`]: key lookups over a [`KeyStore`], cached in memory.

use std::{
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use super::{EndUserInfo, KeyInfo, Scope};
use crate::{
    clock::Clock,
    store::{next_reset, KeyStore, SpendTotals, StoreError},
};

/// A cache hit: the key, or `None` for a key known not to exist.
pub(super) type Hit = Option<Arc<KeyInfo>>;

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
    /// End users (a request's `user`) by id: the row (or `None`: no row) and when it was read.
    end_users: moka::sync::Cache<Arc<str>, (Option<Arc<EndUserInfo>>, Instant)>,
    ttl: Duration,
    clock: Clock,
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
            end_users: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600).max(ttl))
                .build(),
            ttl,
            clock: Clock::system(),
        }
    }

    /// The end user `id` if its cached entry is fresh (`Some(None)`: it has no row); `None` when
    /// it must be read ([`KeyCache::end_user`]).
    #[allow(clippy::option_option)] // outer: fresh in the cache or not; inner: row or not
    pub(super) fn end_user_cached(&self, id: &str) -> Option<Option<Arc<EndUserInfo>>> {
        self.end_users
            .get(id)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(info, _)| info)
    }

    /// Reads the end user `id` from the store and caches it. When the store cannot be reached,
    /// a stale entry is served (as for keys); without one, the error.
    pub(super) async fn end_user(&self, id: &str) -> Result<Option<Arc<EndUserInfo>>, StoreError> {
        match self.store.end_user(id).await {
            Ok(row) => {
                let info = row.map(|e| {
                    Arc::new(EndUserInfo {
                        blocked: e.blocked,
                        allowed_model_region: e.allowed_model_region,
                        scope: Scope {
                            id: e.user_id,
                            limits: e.limits,
                            spend: e.spend,
                            budget_reset_at: e.budget_reset_at,
                        },
                    })
                });
                self.end_users
                    .insert(id.into(), (info.clone(), Instant::now()));
                Ok(info)
            }
            Err(e) => match self.end_users.get(id) {
                Some((info, _)) => {
                    tracing::warn!(error = %e, "end-user refresh failed; serving the cached entry");
                    Ok(info)
                }
                None => Err(e),
            },
        }
    }

    /// Forgets an end user (after it changed).
    pub fn invalidate_end_user(&self, id: &str) {
        self.end_users.invalidate(id);
    }

    /// Budget periods and key expiries are judged on `clock` (default: [`Clock::system`]); the
    /// gateway gives its store's clock. How long a lookup stays fresh is real time.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock budget periods and expiries are judged on.
    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.clock
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
            let o = info
                .organization_id
                .as_ref()
                .and_then(|o| totals.orgs.get(o))
                .copied()
                .unwrap_or(0.0);
            let m = match (&info.team_id, &info.user_id) {
                (Some(t), Some(u)) if info.team_member.is_some() => totals
                    .team_members
                    .get(&(t.clone(), u.clone()))
                    .copied()
                    .unwrap_or(0.0),
                _ => 0.0,
            };
            if k == 0.0 && t == 0.0 && u == 0.0 && o == 0.0 && m == 0.0 {
                return None;
            }
            let mut next = KeyInfo::clone(info);
            let now = self.clock.unix_ms();
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
            if let Some(s) = next.organization.as_mut() {
                add(s, o);
            }
            // The key's model-specific budgets (`model_max_budget`).
            for (model, v) in totals.key_models.get(token).into_iter().flatten() {
                if let Some(b) = next.model_budgets.iter_mut().find(|b| &b.model == model) {
                    crate::store::model_budget::add_loaded_spend(b, *v, now);
                }
            }
            if let Some(s) = next.team_member.as_mut() {
                s.spend += m;
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
        for (id, v) in &totals.end_users {
            let Some((Some(info), at)) = self.end_users.get(id.as_str()) else {
                continue;
            };
            if at >= written_at {
                continue;
            }
            let mut next = EndUserInfo::clone(&info);
            let now = self.clock.unix_ms();
            if next.scope.budget_reset_at.is_some_and(|r| r <= now) {
                next.scope.spend = *v;
                next.scope.budget_reset_at =
                    next_reset(next.scope.limits.budget_duration.as_deref(), now);
            } else {
                next.scope.spend += v;
            }
            self.end_users
                .insert(id.as_str().into(), (Some(Arc::new(next)), at));
        }
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
    pub(super) fn cached(&self, token: &Arc<str>) -> Option<Hit> {
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

    pub(super) async fn fetch(&self, token: &Arc<str>) -> Result<Option<Arc<KeyInfo>>, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{hash_key, InMemoryStore, KeyRow, NewKey, SpendTotals, Store};

    fn cache() -> (InMemoryStore, KeyCache) {
        let store = InMemoryStore::new();
        let keys = KeyCache::new(store.clone(), Duration::from_secs(60));
        (store, keys)
    }

    #[tokio::test]
    async fn serves_from_the_cache_until_invalidated() {
        let (store, keys) = cache();
        let (_, row) = store.create_key(NewKey::default()).unwrap();
        let first = keys.get(&row.token).await.unwrap().unwrap();
        assert!(!first.blocked);
        // A change in the store is not seen while the entry is fresh…
        assert!(store.update_key(&KeyRow {
            blocked: true,
            ..row.clone()
        }));
        assert!(!keys.get(&row.token).await.unwrap().unwrap().blocked);
        // …and is once the entry is dropped.
        keys.invalidate(&row.token);
        assert!(keys.get(&row.token).await.unwrap().unwrap().blocked);
        // An unknown key is cached as unknown: creating it later needs an invalidation.
        let unknown = hash_key("sk-later");
        assert!(keys.get(&unknown).await.unwrap().is_none());
        store
            .create_key(NewKey {
                key: Some(crate::secret::Secret::new("sk-later")),
                ..NewKey::default()
            })
            .unwrap();
        assert!(keys.get(&unknown).await.unwrap().is_none());
        keys.invalidate_all();
        assert!(keys.get(&unknown).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn written_spend_is_added_to_entries_loaded_before_it() {
        let (store, keys) = cache();
        let (_, row) = store.create_key(NewKey::default()).unwrap();
        keys.get(&row.token).await.unwrap();
        let mut totals = SpendTotals::default();
        totals.keys.insert(row.token.clone(), 0.25);
        // Written before the entry was loaded: already in it.
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now);
        keys.add_spend(&totals, long_ago);
        let info = keys.get(&row.token).await.unwrap().unwrap();
        assert!(info.key.spend.abs() < 1e-12);
        // Written after: added.
        keys.add_spend(&totals, Instant::now());
        let info = keys.get(&row.token).await.unwrap().unwrap();
        assert!((info.key.spend - 0.25).abs() < 1e-12);
    }

    #[test]
    fn the_concrete_store_can_be_had_back() {
        let (_, keys) = cache();
        assert!(keys.store_as::<InMemoryStore>().is_some());
        assert!(keys.store_as::<Store>().is_none());
    }
}
