//! [`InMemoryStore`]: keys, teams, users, spend totals and spend logs in process memory.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use super::{
    next_reset, BudgetState, KeyRow, KeyStore, Limits, NewKey, SpendFilter, SpendRow, SpendSink,
    SpendTotals, StoreError, StoreFuture, TeamRow, UserRow, PROXY_BUDGET_ID,
};
use crate::{clock::Clock, secret::Secret};

/// A [`KeyStore`] and [`SpendSink`] in process memory, with the SQL [`Store`](super::Store)'s
/// behaviour: keys by hash, budget periods rolled over on read and on write, a spend batch
/// applied at once (one lock, as one transaction), call ids stored once, a retried batch counted
/// once, the proxy-wide budget row.
///
/// For a library user who wants virtual keys and budgets without a database (see
/// `examples/governed_client.rs`), and for tests. Nothing survives the process, and nothing is
/// shared with another process. Cheap to clone (one `Arc`); clones share the data.
///
/// It keeps every spend-log row it is given; a long-running process that does not read them turns
/// them off ([`SpendConfig::logs`](crate::spend::SpendConfig::logs)`(false)`), which keeps only
/// the totals.
///
/// One mutex guards the data. It is held for a few map operations, never across an `await`, and
/// is not on the request path: the [`KeyCache`](crate::auth::KeyCache) reads the store on a miss
/// or a refresh, and the spend writer writes a batch at a time, off the request path.
///
/// ```
/// use llmgate::store::{InMemoryStore, Limits, NewKey};
/// let store = InMemoryStore::new();
/// let (secret, row) = store.create_key(NewKey {
///     key_alias: Some("ci".into()),
///     limits: Limits { max_budget: Some(1.0), ..Limits::default() },
///     ..NewKey::default()
/// })?;
/// assert!(secret.expose().starts_with("sk-"));
/// assert_eq!(store.key(&row.token).map(|k| k.key_alias), Some(Some("ci".to_owned())));
/// # Ok::<_, llmgate::store::StoreError>(())
/// ```
#[derive(Clone, Default)]
pub struct InMemoryStore {
    data: Arc<Mutex<Data>>,
    clock: Clock,
}

impl fmt::Debug for InMemoryStore {
    /// Counts only: the rows may be many, and they are not for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = self.data();
        f.debug_struct("InMemoryStore")
            .field("keys", &data.keys.len())
            .field("teams", &data.teams.len())
            .field("users", &data.users.len())
            .field("spend_logs", &data.logs.len())
            .finish()
    }
}

#[derive(Debug, Default)]
struct Data {
    keys: HashMap<String, KeyRow>,
    teams: HashMap<String, TeamRow>,
    users: HashMap<String, UserRow>,
    logs: Vec<SpendRow>,
    logged: HashSet<String>,
}

/// Which of a batch's rows add their cost to the totals (as in the SQL store).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Count {
    Every,
    StoredNow,
}

/// Rolls a budget period over when it has ended: spend back to 0, the next end set.
fn roll_over(spend: &mut f64, reset_at: &mut Option<i64>, limits: &Limits, now: i64) {
    if reset_at.is_some_and(|r| r <= now) {
        *spend = 0.0;
        *reset_at = next_reset(limits.budget_duration.as_deref(), now);
    }
}

/// Adds `v` to a total, starting the next period with `v` when the current one has ended.
fn add_total(spend: &mut f64, reset_at: &mut Option<i64>, limits: &Limits, v: f64, now: i64) {
    if reset_at.is_some_and(|r| r <= now) {
        *spend = v;
        *reset_at = next_reset(limits.budget_duration.as_deref(), now);
    } else {
        *spend += v;
    }
}

impl InMemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads budget periods and row timestamps on `clock` (default: [`Clock::system`]).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock this store reads.
    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The data, also after a panic elsewhere while it was held (every change is a few map
    /// operations that leave it consistent).
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a key; returns the key (shown once) and the stored row. Fails when the key exists
    /// or no random key can be made.
    pub fn create_key(&self, new: NewKey) -> Result<(Secret, KeyRow), StoreError> {
        let (secret, row) = new.into_row(self.clock.unix_ms())?;
        let mut data = self.data();
        if data.keys.contains_key(&row.token) {
            return Err(StoreError::msg("insert key: the key exists"));
        }
        data.keys.insert(row.token.clone(), row.clone());
        Ok((secret, row))
    }

    /// The key with this hash, as stored (no period roll-over).
    #[must_use]
    pub fn key(&self, token: &str) -> Option<KeyRow> {
        self.data().keys.get(token).cloned()
    }

    /// Replaces a key's row (by `token`); false when there is no such key.
    pub fn update_key(&self, row: &KeyRow) -> bool {
        let mut data = self.data();
        let Some(stored) = data.keys.get_mut(&row.token) else {
            return false;
        };
        *stored = KeyRow {
            updated_at: self.clock.unix_ms(),
            ..row.clone()
        };
        true
    }

    /// Deletes keys by hash; returns the hashes that existed.
    pub fn delete_keys(&self, tokens: &[String]) -> Vec<String> {
        let mut data = self.data();
        tokens
            .iter()
            .filter(|t| data.keys.remove(t.as_str()).is_some())
            .cloned()
            .collect()
    }

    /// Creates a team; fails if the id exists.
    pub fn create_team(&self, team: &TeamRow) -> Result<(), StoreError> {
        let mut data = self.data();
        if data.teams.contains_key(&team.team_id) {
            return Err(StoreError::msg("insert team: the team exists"));
        }
        data.teams.insert(team.team_id.clone(), team.clone());
        Ok(())
    }

    /// Replaces a team's row; false when there is no such team.
    pub fn update_team(&self, team: &TeamRow) -> bool {
        let mut data = self.data();
        let Some(stored) = data.teams.get_mut(&team.team_id) else {
            return false;
        };
        *stored = TeamRow {
            updated_at: self.clock.unix_ms(),
            ..team.clone()
        };
        true
    }

    /// Creates a user; fails if the id exists.
    pub fn create_user(&self, user: &UserRow) -> Result<(), StoreError> {
        let mut data = self.data();
        if data.users.contains_key(&user.user_id) {
            return Err(StoreError::msg("insert user: the user exists"));
        }
        data.users.insert(user.user_id.clone(), user.clone());
        Ok(())
    }

    /// Replaces a user's row; false when there is no such user.
    pub fn update_user(&self, user: &UserRow) -> bool {
        let mut data = self.data();
        let Some(stored) = data.users.get_mut(&user.user_id) else {
            return false;
        };
        *stored = UserRow {
            updated_at: self.clock.unix_ms(),
            ..user.clone()
        };
        true
    }

    /// Spend-log rows, newest first (as [`Store::spend_logs`](super::Store::spend_logs)).
    #[must_use]
    pub fn spend_logs(&self, f: &SpendFilter) -> Vec<SpendRow> {
        let data = self.data();
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        let mut rows: Vec<SpendRow> = data
            .logs
            .iter()
            .filter(|r| {
                eq(&f.api_key, Some(&r.api_key))
                    && eq(&f.user_id, r.user_id.as_deref())
                    && eq(&f.team_id, r.team_id.as_deref())
                    && eq(&f.request_id, Some(&r.request_id))
                    && f.start_ms.is_none_or(|s| r.start_time >= s)
                    && f.end_ms.is_none_or(|e| r.start_time < e)
                    && eq(&f.end_user, r.end_user.as_deref())
                    && eq(&f.model, Some(&r.model_group))
                    && f.status
                        .as_deref()
                        .is_none_or(|st| (st == "success") == (r.status == "success"))
            })
            .cloned()
            .collect();
        rows.sort_by(|a, b| {
            b.start_time
                .cmp(&a.start_time)
                .then_with(|| a.request_id.cmp(&b.request_id))
        });
        let limit = if f.limit > 0 { f.limit } else { 1000 };
        let skip = usize::try_from(f.offset.max(0)).unwrap_or(usize::MAX);
        rows.drain(..skip.min(rows.len()));
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        rows
    }

    /// Number of spend-log rows.
    #[must_use]
    pub fn spend_log_count(&self) -> i64 {
        i64::try_from(self.data().logs.len()).unwrap_or(i64::MAX)
    }

    /// Total spend of all calls logged.
    #[must_use]
    pub fn global_spend(&self) -> f64 {
        self.data().logs.iter().map(|r| r.spend).sum()
    }

    fn key_fresh_now(&self, token: &str) -> Option<KeyRow> {
        let mut data = self.data();
        let k = data.keys.get_mut(token)?;
        roll_over(
            &mut k.spend,
            &mut k.budget_reset_at,
            &k.limits,
            self.clock.unix_ms(),
        );
        Some(k.clone())
    }

    fn team_fresh_now(&self, team_id: &str) -> Option<TeamRow> {
        let mut data = self.data();
        let t = data.teams.get_mut(team_id)?;
        roll_over(
            &mut t.spend,
            &mut t.budget_reset_at,
            &t.limits,
            self.clock.unix_ms(),
        );
        Some(t.clone())
    }

    fn user_fresh_now(&self, user_id: &str) -> Option<UserRow> {
        let mut data = self.data();
        let u = data.users.get_mut(user_id)?;
        roll_over(
            &mut u.spend,
            &mut u.budget_reset_at,
            &u.limits,
            self.clock.unix_ms(),
        );
        Some(u.clone())
    }

    /// One spend batch, as one transaction of the SQL store.
    fn record_spend(&self, rows: &[SpendRow], log: bool, count: Count) -> SpendTotals {
        let mut data = self.data();
        let stored_now = count == Count::StoredNow;
        let mut inserted = HashSet::new();
        if log {
            for r in rows {
                if data.logged.insert(r.request_id.clone()) {
                    data.logs.push(r.clone());
                    inserted.insert(r.request_id.as_str());
                }
            }
        }
        let mut totals = SpendTotals::default();
        for r in rows {
            if r.spend == 0.0 || (stored_now && !inserted.contains(r.request_id.as_str())) {
                continue;
            }
            if !r.api_key.is_empty() {
                *totals.keys.entry(r.api_key.clone()).or_default() += r.spend;
            }
            if let Some(t) = &r.team_id {
                *totals.teams.entry(t.clone()).or_default() += r.spend;
            }
            if let Some(u) = &r.user_id {
                *totals.users.entry(u.clone()).or_default() += r.spend;
            }
            totals.proxy += r.spend;
        }
        let now = self.clock.unix_ms();
        for (token, v) in &totals.keys {
            if let Some(k) = data.keys.get_mut(token) {
                add_total(&mut k.spend, &mut k.budget_reset_at, &k.limits, *v, now);
            }
        }
        // Model-specific key budgets (`model_max_budget`), as the SQL store keeps them.
        for r in rows
            .iter()
            .filter(|r| r.spend != 0.0 && (!stored_now || inserted.contains(r.request_id.as_str())))
        {
            if let Some(k) = data.keys.get_mut(&r.api_key) {
                if let Some(entry) = super::model_budget::add_spend(
                    &mut k.model_max_budget,
                    &mut k.model_spend,
                    &r.model_group,
                    r.spend,
                    now,
                ) {
                    *totals
                        .key_models
                        .entry(r.api_key.clone())
                        .or_default()
                        .entry(entry)
                        .or_default() += r.spend;
                }
            }
        }
        for (id, v) in &totals.teams {
            if let Some(t) = data.teams.get_mut(id) {
                add_total(&mut t.spend, &mut t.budget_reset_at, &t.limits, *v, now);
            }
        }
        for (id, v) in &totals.users {
            if let Some(u) = data.users.get_mut(id) {
                add_total(&mut u.spend, &mut u.budget_reset_at, &u.limits, *v, now);
            }
        }
        if totals.proxy != 0.0 {
            if let Some(p) = data.users.get_mut(PROXY_BUDGET_ID) {
                add_total(
                    &mut p.spend,
                    &mut p.budget_reset_at,
                    &p.limits,
                    totals.proxy,
                    now,
                );
                totals.proxy_budget = Some(BudgetState {
                    spend: p.spend,
                    reset_at: p.budget_reset_at,
                });
            }
        }
        totals
    }

    fn proxy_budget_now(&self, max_budget: f64, budget_duration: Option<&str>) -> BudgetState {
        let mut data = self.data();
        let now = self.clock.unix_ms();
        let Some(u) = data.users.get_mut(PROXY_BUDGET_ID) else {
            let reset_at = next_reset(budget_duration, now);
            data.users.insert(
                PROXY_BUDGET_ID.to_owned(),
                UserRow {
                    user_id: PROXY_BUDGET_ID.to_owned(),
                    limits: Limits {
                        max_budget: Some(max_budget),
                        budget_duration: budget_duration.map(str::to_owned),
                        ..Limits::default()
                    },
                    budget_reset_at: reset_at,
                    created_at: now,
                    updated_at: now,
                    ..UserRow::default()
                },
            );
            return BudgetState {
                spend: 0.0,
                reset_at,
            };
        };
        roll_over(&mut u.spend, &mut u.budget_reset_at, &u.limits, now);
        let (spend, reset_at) = match (budget_duration, u.budget_reset_at) {
            (None, _) => (u.spend, None),
            (Some(_), Some(r)) => (u.spend, Some(r)),
            (Some(d), None) => (0.0, next_reset(Some(d), now)),
        };
        u.limits.max_budget = Some(max_budget);
        u.limits.budget_duration = budget_duration.map(str::to_owned);
        u.budget_reset_at = reset_at;
        u.spend = spend;
        u.updated_at = now;
        BudgetState { spend, reset_at }
    }
}

impl KeyStore for InMemoryStore {
    fn key_fresh<'a>(&'a self, token: &'a str) -> StoreFuture<'a, Option<KeyRow>> {
        let row = self.key_fresh_now(token);
        Box::pin(async move { Ok(row) })
    }

    fn team<'a>(&'a self, team_id: &'a str) -> StoreFuture<'a, Option<TeamRow>> {
        let row = self.team_fresh_now(team_id);
        Box::pin(async move { Ok(row) })
    }

    fn user<'a>(&'a self, user_id: &'a str) -> StoreFuture<'a, Option<UserRow>> {
        let row = self.user_fresh_now(user_id);
        Box::pin(async move { Ok(row) })
    }
}

impl SpendSink for InMemoryStore {
    fn write_spend<'a>(&'a self, rows: &'a [SpendRow]) -> StoreFuture<'a, SpendTotals> {
        let totals = self.record_spend(rows, true, Count::Every);
        Box::pin(async move { Ok(totals) })
    }

    fn rewrite_spend<'a>(&'a self, rows: &'a [SpendRow]) -> StoreFuture<'a, SpendTotals> {
        let totals = self.record_spend(rows, true, Count::StoredNow);
        Box::pin(async move { Ok(totals) })
    }

    fn add_spend<'a>(&'a self, rows: &'a [SpendRow]) -> StoreFuture<'a, SpendTotals> {
        let totals = self.record_spend(rows, false, Count::Every);
        Box::pin(async move { Ok(totals) })
    }

    fn proxy_budget<'a>(
        &'a self,
        max_budget: f64,
        budget_duration: Option<&'a str>,
    ) -> StoreFuture<'a, BudgetState> {
        let state = self.proxy_budget_now(max_budget, budget_duration);
        Box::pin(async move { Ok(state) })
    }

    fn proxy_budget_state(&self) -> StoreFuture<'_, Option<BudgetState>> {
        let state = self.user_fresh_now(PROXY_BUDGET_ID).map(|u| BudgetState {
            spend: u.spend,
            reset_at: u.budget_reset_at,
        });
        Box::pin(async move { Ok(state) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_counts_not_rows() {
        let s = InMemoryStore::new();
        let (_, row) = s.create_key(NewKey::default()).unwrap();
        let shown = format!("{s:?}");
        assert!(shown.contains("keys: 1"), "{shown}");
        assert!(!shown.contains(&row.token), "{shown}");
    }

    #[test]
    fn spend_logs_filter_order_and_limit_as_the_sql_store() {
        let s = InMemoryStore::new();
        let row = |id: &str, key: &str, start: i64| SpendRow {
            request_id: id.to_owned(),
            api_key: key.to_owned(),
            start_time: start,
            spend: 0.5,
            ..SpendRow::default()
        };
        s.record_spend(
            &[row("a", "k1", 10), row("b", "k1", 30), row("c", "k2", 20)],
            true,
            Count::Every,
        );
        let ids = |f: &SpendFilter| -> Vec<String> {
            s.spend_logs(f).into_iter().map(|r| r.request_id).collect()
        };
        assert_eq!(ids(&SpendFilter::default()), ["b", "c", "a"]);
        let k1 = SpendFilter {
            api_key: Some("k1".into()),
            ..SpendFilter::default()
        };
        assert_eq!(ids(&k1), ["b", "a"]);
        let window = SpendFilter {
            start_ms: Some(10),
            end_ms: Some(30),
            limit: 1,
            ..SpendFilter::default()
        };
        assert_eq!(ids(&window), ["c"]);
        assert!((s.global_spend() - 1.5).abs() < 1e-12);
    }
}
