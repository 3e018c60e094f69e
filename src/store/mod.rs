//! The governance store: keys, teams, users, budgets and spend, behind two traits.
//!
//! The layers never name a database. They read and write through two traits:
//!
//! - [`KeyStore`]: what [`auth`](crate::auth) reads to authenticate a virtual key — the key's row
//!   by hash (its budget period rolled over first), and its team's and user's rows. Behind the
//!   [`KeyCache`](crate::auth::KeyCache), so it is called on a cache miss or a background refresh,
//!   never once per request.
//! - [`SpendSink`]: what the [spend writer](crate::spend) and the
//!   [proxy-wide budget](crate::budget::ProxyBudget) write and read — a batch of spend rows in one
//!   transaction that returns the totals it added, the retry of a batch that counts only what it
//!   stores, totals without rows, and the proxy budget row.
//!
//! Two implementations ship:
//!
//! - [`Store`] (in `store/sql/`, the only code that uses `sqlx`): SQLite or PostgreSQL over an
//!   `sqlx` `Any` pool. SQLite is the embedded default (a file beside the config, created on first
//!   start, or an in-memory database for tests), PostgreSQL when `general_settings.database_url`
//!   (or `DATABASE_URL`) is set. The schema is one portable set of migrations ([`MIGRATIONS`]),
//!   embedded in the binary and run by [`Store::connect`]. It also has what the management API
//!   needs (listing, updating, deleting keys, teams and users; reading spend logs).
//! - [`InMemoryStore`]: the same behaviour in process memory, for a library user who wants keys and
//!   budgets without a database, and for tests. Nothing survives the process.
//!
//! Both pass one behavioural test suite (`store/conformance.rs`: key lookup, expiry and blocking,
//! spend totals, retried batches, budget resets).
//!
//! The traits return boxed futures ([`StoreFuture`]) so that they can be used as trait objects:
//! the layers hold `Arc<dyn KeyStore>` / `Arc<dyn SpendSink>` (see `docs/architecture.md`,
//! "Governance behind traits", for why dyn and not a generic parameter).
//!
//! Virtual keys are never stored: only their SHA-256 ([`hash_key`]).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use llmgate::store::{NewKey, Store};
//! let store = Store::connect("sqlite::memory:").await?;
//! let (secret, row) = store.create_key(NewKey::default()).await?;
//! assert!(secret.expose().starts_with("sk-"));
//! let found = store.key(&row.token).await?.expect("just created");
//! assert_eq!(found.token, row.token);
//! # Ok::<_, llmgate::store::StoreError>(())
//! # }).unwrap();
//! ```
//!
//! The same over the in-memory store, through the trait the auth layer uses:
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use llmgate::store::{InMemoryStore, KeyStore, NewKey};
//! let store = InMemoryStore::new();
//! let (secret, row) = store.create_key(NewKey::default())?;
//! let found = KeyStore::key_fresh(&store, &row.token).await?.expect("just created");
//! assert_eq!(found.token, llmgate::store::hash_key(secret.expose()));
//! # Ok::<_, llmgate::store::StoreError>(())
//! # }).unwrap();
//! ```

use std::{any::Any, fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use sha2::{Digest, Sha256};

use crate::secret::Secret;

#[cfg(test)]
mod conformance;
mod error;
mod memory;
pub mod model_budget;
mod model_crypto;
mod models;
pub mod responses;
mod rows;
#[cfg(feature = "gateway")]
mod sql;

/// The SQL store (SQLite or PostgreSQL, sqlx): part of the application (`gateway` feature).
#[cfg(feature = "gateway")]
pub use self::sql::{
    Backend, ReportGroup, Schema, SchemaChoice, SqlResponseStore, Store, MIGRATIONS,
};
pub use self::{
    error::StoreError,
    memory::InMemoryStore,
    model_crypto::{literal_secret, SaltKey, SealError},
    models::{EncryptedModels, InMemoryModels, ModelRow, ModelStore},
    rows::{
        BudgetRow, BudgetState, DailyBy, DailySpend, EndUserRow, KeyRow, Limits, NewKey,
        OrgMemberRow, OrgRow, ReportRow, SpendFilter, SpendRow, SpendTotals, TeamMemberRow,
        TeamRow, UserRow, PROXY_BUDGET_ID,
    },
};

/// What a store method returns: a boxed, `Send` future of a result, borrowing the store and the
/// arguments for `'a`. Boxed so that [`KeyStore`] and [`SpendSink`] can be trait objects.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What authentication reads: a virtual key's row by hash, and the rows of its team and user.
///
/// Each read rolls the row's budget period over first when it has ended (spend back to 0, the
/// next period end set), so a caller sees the spend of the current period.
/// [`KeyInfo::load`](crate::auth::KeyInfo::load) builds the caller's identity from these three
/// reads; the [`KeyCache`](crate::auth::KeyCache) in front of it keeps the store off the request
/// path.
///
/// `Any` is a supertrait so that a holder of `Arc<dyn KeyStore>` can get the concrete store back
/// ([`KeyCache::store_as`](crate::auth::KeyCache::store_as)), as the management API does for the
/// SQL [`Store`].
pub trait KeyStore: Any + Send + Sync + fmt::Debug {
    /// The key with this hash (`token`), its budget period rolled over first when it ended.
    fn key_fresh<'a>(&'a self, token: &'a str) -> StoreFuture<'a, Option<KeyRow>>;

    /// A team, its budget period rolled over first when it ended.
    fn team<'a>(&'a self, team_id: &'a str) -> StoreFuture<'a, Option<TeamRow>>;

    /// A user, its budget period rolled over first when it ended.
    fn user<'a>(&'a self, user_id: &'a str) -> StoreFuture<'a, Option<UserRow>>;

    /// An organization (a team's `organization_id`), its budget period rolled over first when it
    /// ended. Default: none (a store without organizations, such as [`InMemoryStore`]).
    fn organization<'a>(&'a self, organization_id: &'a str) -> StoreFuture<'a, Option<OrgRow>> {
        let _ = organization_id;
        Box::pin(std::future::ready(Ok(None)))
    }

    /// An end user (a request's `user`) with its budget row's limits, its budget period rolled
    /// over first when it ended. Default: none (a store without end users, such as
    /// [`InMemoryStore`]).
    fn end_user<'a>(&'a self, user_id: &'a str) -> StoreFuture<'a, Option<EndUserRow>> {
        let _ = user_id;
        Box::pin(std::future::ready(Ok(None)))
    }

    /// A user's membership of a team with its budget row's limits (per-member team budgets).
    /// Default: none (a store without memberships, such as [`InMemoryStore`]).
    fn team_member<'a>(
        &'a self,
        team_id: &'a str,
        user_id: &'a str,
    ) -> StoreFuture<'a, Option<TeamMemberRow>> {
        let _ = (team_id, user_id);
        Box::pin(std::future::ready(Ok(None)))
    }

    /// A team's model aliases (alias -> model group, `model_aliases`). Default: none.
    fn team_model_aliases<'a>(
        &'a self,
        team_id: &'a str,
    ) -> StoreFuture<'a, std::collections::HashMap<String, String>> {
        let _ = team_id;
        Box::pin(std::future::ready(Ok(std::collections::HashMap::new())))
    }

    /// Whether the store answers now (`/health/readiness`). Default: always (a store in memory).
    fn ping(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        Box::pin(std::future::ready(true))
    }
}

/// Where spend goes: batches of spend rows, added to the key, team, user and proxy-wide totals in
/// one transaction, and the proxy-wide budget row.
///
/// Every write adds a row's `spend` to its key (by `api_key`, when not empty), its team and its
/// user, and all rows' spend to the proxy budget row ([`PROXY_BUDGET_ID`]) when that row exists;
/// a total whose budget period has ended starts the next period with this spend. The
/// [`SpendTotals`] returned are what the write added (and the proxy row's state after it).
pub trait SpendSink: Send + Sync + fmt::Debug + 'static {
    /// Stores the rows (a row whose `request_id` is already stored is not stored again) and adds
    /// every row's cost to the totals: a client may reuse a call id, and every call is paid for.
    fn write_spend<'a>(&'a self, rows: &'a [SpendRow]) -> StoreFuture<'a, SpendTotals>;

    /// [`SpendSink::write_spend`] again for a batch whose earlier attempt failed, maybe after it
    /// was stored: only the rows this call stores add to the totals, so a batch is not counted
    /// twice.
    fn rewrite_spend<'a>(&'a self, rows: &'a [SpendRow]) -> StoreFuture<'a, SpendTotals>;

    /// Adds the rows' cost to the totals without storing the rows
    /// (`general_settings.disable_spend_logs`).
    fn add_spend<'a>(&'a self, rows: &'a [SpendRow]) -> StoreFuture<'a, SpendTotals>;

    /// Creates or updates the proxy-wide budget row with `max_budget` and `budget_duration`, as
    /// LiteLLM does at start, and returns its state. An existing period is kept; a row without
    /// one starts a period now, from 0; without a duration the budget never resets.
    fn proxy_budget<'a>(
        &'a self,
        max_budget: f64,
        budget_duration: Option<&'a str>,
    ) -> StoreFuture<'a, BudgetState>;

    /// The proxy-wide budget row's state (its period rolled over first when it ended); `None`
    /// when there is no such row.
    fn proxy_budget_state(&self) -> StoreFuture<'_, Option<BudgetState>>;
}

impl<T: KeyStore + ?Sized> KeyStore for Arc<T> {
    fn key_fresh<'a>(&'a self, token: &'a str) -> StoreFuture<'a, Option<KeyRow>> {
        (**self).key_fresh(token)
    }

    fn team<'a>(&'a self, team_id: &'a str) -> StoreFuture<'a, Option<TeamRow>> {
        (**self).team(team_id)
    }

    fn user<'a>(&'a self, user_id: &'a str) -> StoreFuture<'a, Option<UserRow>> {
        (**self).user(user_id)
    }

    fn organization<'a>(&'a self, organization_id: &'a str) -> StoreFuture<'a, Option<OrgRow>> {
        (**self).organization(organization_id)
    }

    fn end_user<'a>(&'a self, user_id: &'a str) -> StoreFuture<'a, Option<EndUserRow>> {
        (**self).end_user(user_id)
    }

    fn team_member<'a>(
        &'a self,
        team_id: &'a str,
        user_id: &'a str,
    ) -> StoreFuture<'a, Option<TeamMemberRow>> {
        (**self).team_member(team_id, user_id)
    }

    fn team_model_aliases<'a>(
        &'a self,
        team_id: &'a str,
    ) -> StoreFuture<'a, std::collections::HashMap<String, String>> {
        (**self).team_model_aliases(team_id)
    }

    fn ping(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        (**self).ping()
    }
}

impl<T: SpendSink + ?Sized> SpendSink for Arc<T> {
    fn write_spend<'a>(&'a self, rows: &'a [SpendRow]) -> StoreFuture<'a, SpendTotals> {
        (**self).write_spend(rows)
    }

    fn rewrite_spend<'a>(&'a self, rows: &'a [SpendRow]) -> StoreFuture<'a, SpendTotals> {
        (**self).rewrite_spend(rows)
    }

    fn add_spend<'a>(&'a self, rows: &'a [SpendRow]) -> StoreFuture<'a, SpendTotals> {
        (**self).add_spend(rows)
    }

    fn proxy_budget<'a>(
        &'a self,
        max_budget: f64,
        budget_duration: Option<&'a str>,
    ) -> StoreFuture<'a, BudgetState> {
        (**self).proxy_budget(max_budget, budget_duration)
    }

    fn proxy_budget_state(&self) -> StoreFuture<'_, Option<BudgetState>> {
        (**self).proxy_budget_state()
    }
}

/// The SHA-256 of a virtual key, hex: the only form in which keys are stored, logged or returned
/// after creation (LiteLLM's `token`).
#[must_use]
pub fn hash_key(key: &str) -> String {
    // Every request with a virtual key hashes it (twice: at the edge and in the auth layer), so
    // encode into a stack buffer: `hex::encode` collects 64 `char`s one by one.
    let mut out = [0u8; 64];
    let digest = Sha256::digest(key.as_bytes());
    // 32 bytes always fit 64 hex digits, and hex digits are ASCII.
    match hex::encode_to_slice(digest, &mut out) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => hex::encode(digest),
    }
}

/// A new random virtual key: `sk-` and 22 random URL-safe characters (~131 bits).
#[must_use]
pub fn generate_key() -> Secret {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut buf = [0u8; 22];
    // `ring`'s system RNG: keys must not come from a non-cryptographic generator.
    let rng = ring::rand::SystemRandom::new();
    if ring::rand::SecureRandom::fill(&rng, &mut buf).is_err() {
        // The OS RNG failing is not recoverable; fall back to fastrand seeded from the OS clock
        // would be weak, so make the key unusable rather than guessable.
        return Secret::new(String::new());
    }
    let s: String = buf
        .iter()
        .map(|b| ALPHABET[usize::from(*b & 63)] as char)
        .collect();
    Secret::new(format!("sk-{s}"))
}

/// Parses a LiteLLM duration: a number followed by `s`, `m`, `h`, `d`, `w` or `mo` (30 days).
#[must_use]
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "mo" => 30 * 86_400,
        _ => return None,
    };
    n.checked_mul(secs).map(Duration::from_secs)
}

/// The next end of a budget period starting now, or `None` without a (valid) duration.
#[must_use]
pub fn next_reset(budget_duration: Option<&str>, now: i64) -> Option<i64> {
    let d = parse_duration(budget_duration?)?;
    Some(now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1w"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("1mo"), Some(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("1y"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
    }

    #[test]
    fn keys_are_random_and_hashed() {
        let a = generate_key();
        let b = generate_key();
        assert!(a.expose().starts_with("sk-") && a.expose().len() == 25);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(hash_key(a.expose()).len(), 64);
    }

    #[test]
    fn key_hash_is_lowercase_sha256_hex() {
        // FIPS 180-2's test vector: LiteLLM's `hash_token` gives the same lowercase hex.
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
