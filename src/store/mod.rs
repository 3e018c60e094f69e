//! The governance store: keys, teams, users, budgets and spend, on SQLite or PostgreSQL.
//!
//! One [`Store`] over an `sqlx` `Any` pool: SQLite is the embedded default (a file beside the config,
//! created on first start, or an in-memory database for tests), PostgreSQL when
//! `general_settings.database_url` (or `DATABASE_URL`) is set. The schema is one portable set of
//! migrations ([`MIGRATIONS`]), embedded in the binary and run by [`Store::connect`]; they only use
//! types both databases share (`TEXT`, `BIGINT`, `DOUBLE PRECISION`), with timestamps as Unix
//! milliseconds and lists and maps as JSON text.
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

use std::{
    collections::HashMap,
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::{
    any::{AnyPoolOptions, AnyRow},
    AnyPool, Row,
};

use crate::secret::Secret;

/// Embedded migrations, applied in order by [`Store::connect`]: `(version, statements)`.
pub const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("migrations/0001_init.sql"))];

/// A store failure (connection, query, migration).
#[derive(Debug)]
pub struct StoreError(String);

impl StoreError {
    fn new(context: &str, e: impl fmt::Display) -> Self {
        Self(format!("{context}: {e}"))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

fn db(context: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::new(context, e)
}

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (file or memory).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The SHA-256 of a virtual key, hex: the only form in which keys are stored, logged or returned
/// after creation (LiteLLM's `token`).
#[must_use]
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
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

/// Unix milliseconds now.
#[must_use]
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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

/// Limits shared by keys, teams and users.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Spend cap in USD.
    pub max_budget: Option<f64>,
    /// Budget period (`30d`, `1h`, …); spend resets when it ends.
    pub budget_duration: Option<String>,
    /// Tokens per minute.
    pub tpm_limit: Option<i64>,
    /// Requests per minute.
    pub rpm_limit: Option<i64>,
    /// Concurrent requests.
    pub max_parallel_requests: Option<i64>,
}

/// A virtual key as stored (never the key itself).
#[derive(Clone, Debug, Default, Serialize)]
pub struct KeyRow {
    /// SHA-256 of the key (hex).
    pub token: String,
    /// The masked key (`sk-…Ab`).
    pub key_name: Option<String>,
    /// A human name.
    pub key_alias: Option<String>,
    /// Model groups the key may call (empty: all the team allows).
    pub models: Vec<String>,
    /// Spend so far in this budget period, USD.
    pub spend: f64,
    /// Limits and budget.
    #[serde(flatten)]
    pub limits: Limits,
    /// When the budget period ends (Unix ms).
    pub budget_reset_at: Option<i64>,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// Owning team.
    pub team_id: Option<String>,
    /// Owning user.
    pub user_id: Option<String>,
    /// Expiry (Unix ms).
    pub expires: Option<i64>,
    /// Refused while set.
    pub blocked: bool,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

/// A team.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TeamRow {
    /// Id.
    pub team_id: String,
    /// Human name.
    pub team_alias: Option<String>,
    /// Model groups members' keys may call (empty: all).
    pub models: Vec<String>,
    /// Spend this period.
    pub spend: f64,
    /// Limits and budget.
    #[serde(flatten)]
    pub limits: Limits,
    /// When the budget period ends (Unix ms).
    pub budget_reset_at: Option<i64>,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// `[{"user_id","role"}]`.
    pub members_with_roles: Vec<Value>,
    /// Refused while set.
    pub blocked: bool,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

/// A user.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UserRow {
    /// Id.
    pub user_id: String,
    /// Email.
    pub user_email: Option<String>,
    /// `proxy_admin`, `internal_user`, …; `proxy_admin` may use the management API.
    pub user_role: Option<String>,
    /// Model groups (empty: all).
    pub models: Vec<String>,
    /// Spend this period.
    pub spend: f64,
    /// Limits and budget.
    #[serde(flatten)]
    pub limits: Limits,
    /// When the budget period ends (Unix ms).
    pub budget_reset_at: Option<i64>,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// Teams the user belongs to.
    pub teams: Vec<String>,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

/// Fields of a key to create ([`Store::create_key`]).
#[derive(Clone, Debug, Default)]
pub struct NewKey {
    /// A caller-chosen key (LiteLLM's `key`); generated when `None`.
    pub key: Option<Secret>,
    /// Alias.
    pub key_alias: Option<String>,
    /// Allowed models.
    pub models: Vec<String>,
    /// Limits.
    pub limits: Limits,
    /// Metadata.
    pub metadata: Map<String, Value>,
    /// Team.
    pub team_id: Option<String>,
    /// User.
    pub user_id: Option<String>,
    /// Validity (`duration`).
    pub duration: Option<Duration>,
    /// Start blocked.
    pub blocked: bool,
}

/// One spend-log row: one per call.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SpendRow {
    /// The call id (`x-litellm-call-id`).
    pub request_id: String,
    /// SHA-256 of the caller's key (empty when the gateway is open).
    pub api_key: String,
    /// Key alias.
    pub key_alias: Option<String>,
    /// Team.
    pub team_id: Option<String>,
    /// User.
    pub user_id: Option<String>,
    /// The model group the client asked for.
    pub model_group: String,
    /// The upstream model of the deployment that answered.
    pub model: Option<String>,
    /// The deployment id.
    pub model_id: Option<String>,
    /// Provider prefix.
    pub custom_llm_provider: Option<String>,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// Sum.
    pub total_tokens: i64,
    /// Cost in USD.
    pub spend: f64,
    /// Start (Unix ms).
    pub start_time: i64,
    /// End (Unix ms).
    pub end_time: i64,
    /// Latency in ms.
    pub latency_ms: i64,
    /// Served from the cache.
    pub cache_hit: bool,
    /// `success` or `failure`.
    pub status: String,
    /// Request tags.
    pub request_tags: Vec<String>,
}

/// Filters of [`Store::spend_logs`] (`/spend/logs`).
#[derive(Clone, Debug, Default)]
pub struct SpendFilter {
    /// By key hash.
    pub api_key: Option<String>,
    /// By user.
    pub user_id: Option<String>,
    /// By team.
    pub team_id: Option<String>,
    /// By call id.
    pub request_id: Option<String>,
    /// From (Unix ms, inclusive).
    pub start_ms: Option<i64>,
    /// To (Unix ms, exclusive).
    pub end_ms: Option<i64>,
    /// At most this many rows (newest first).
    pub limit: i64,
}

/// Spend to add, per key, team and user, from rows that were inserted.
#[derive(Clone, Debug, Default)]
pub struct SpendTotals {
    /// Per key hash.
    pub keys: HashMap<String, f64>,
    /// Per team.
    pub teams: HashMap<String, f64>,
    /// Per user.
    pub users: HashMap<String, f64>,
    /// Added to the proxy-wide budget row ([`PROXY_BUDGET_ID`]): every counted row's cost.
    pub proxy: f64,
    /// The proxy-wide budget row after this batch, when it exists.
    pub proxy_budget: Option<BudgetState>,
}

/// The user id of the row that holds the proxy-wide budget (`litellm_settings.max_budget`) and
/// the spend counted against it: LiteLLM's `litellm_proxy_budget_name`.
pub const PROXY_BUDGET_ID: &str = "litellm-proxy-budget";

/// A budget row's spend in its current period and when that period ends.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BudgetState {
    /// Spend this period, USD.
    pub spend: f64,
    /// End of the period (Unix ms); `None`: the budget never resets.
    pub reset_at: Option<i64>,
}

/// The store. Cheap to clone (a pool handle). See the [module docs](self).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// An optional float bound as text and cast in SQL: sqlx 0.9's `Any` driver declares a NULL
/// `f64` as `float4` on PostgreSQL, which breaks the statement for the next non-NULL value.
fn opt_f64(v: Option<f64>) -> Option<String> {
    v.map(|f| f.to_string())
}

/// Rows per spend INSERT statement, largest first: a batch is cut into these sizes. 64 rows of
/// 19 parameters stay far below SQLite's (32 766) and PostgreSQL's (65 535) limits.
const SPEND_INSERT_SIZES: [usize; 4] = [64, 16, 4, 1];

/// Which of a batch's rows add their cost to the totals.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Count {
    /// Every row (a first attempt; rows without a log).
    Every,
    /// The rows this transaction stores (a retry).
    StoredNow,
}

/// `INSERT … VALUES (…), (…) … ON CONFLICT DO NOTHING` for `n` rows, with `RETURNING request_id`
/// when `returning` (a retry counts only the rows it stores).
///
/// SQLite gets anonymous `?` parameters: it resolves each named one (`$7`) by a linear search of
/// the names seen so far, which makes a statement with thousands of them quadratic to parse and
/// bind. PostgreSQL takes only `$n`.
fn spend_insert_sql(n: usize, backend: Backend, returning: bool) -> String {
    use std::fmt::Write as _;
    const COLS: usize = 19;
    let mut sql = String::with_capacity(400 + n * COLS * 5);
    sql.push_str("INSERT INTO llmgate_spend_logs (request_id, api_key, key_alias, team_id, user_id, model_group, model, model_id, custom_llm_provider, prompt_tokens, completion_tokens, total_tokens, spend, start_time, end_time, latency_ms, cache_hit, status, request_tags) VALUES ");
    for row in 0..n {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..COLS {
            if col > 0 {
                sql.push(',');
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${}", row * COLS + col + 1);
                }
            }
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (request_id) DO NOTHING");
    if returning {
        sql.push_str(" RETURNING request_id");
    }
    sql
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

fn json_map(v: &Map<String, Value>) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".to_owned())
}

fn parse_list(s: Option<String>) -> Vec<String> {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

fn parse_map(s: Option<String>) -> Map<String, Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

fn get<'r, T>(row: &'r AnyRow, col: &str) -> Option<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get::<Option<T>, _>(col).ok().flatten()
}

fn limits(row: &AnyRow) -> Limits {
    Limits {
        max_budget: get(row, "max_budget"),
        budget_duration: get(row, "budget_duration"),
        tpm_limit: get(row, "tpm_limit"),
        rpm_limit: get(row, "rpm_limit"),
        max_parallel_requests: get(row, "max_parallel_requests"),
    }
}

fn key_row(row: &AnyRow) -> KeyRow {
    KeyRow {
        token: get(row, "token").unwrap_or_default(),
        key_name: get(row, "key_name"),
        key_alias: get(row, "key_alias"),
        models: parse_list(get(row, "models")),
        spend: get(row, "spend").unwrap_or(0.0),
        limits: limits(row),
        budget_reset_at: get(row, "budget_reset_at"),
        metadata: parse_map(get(row, "metadata")),
        team_id: get(row, "team_id"),
        user_id: get(row, "user_id"),
        expires: get(row, "expires"),
        blocked: get::<i64>(row, "blocked").unwrap_or(0) != 0,
        created_at: get(row, "created_at").unwrap_or(0),
        updated_at: get(row, "updated_at").unwrap_or(0),
    }
}

fn team_row(row: &AnyRow) -> TeamRow {
    TeamRow {
        team_id: get(row, "team_id").unwrap_or_default(),
        team_alias: get(row, "team_alias"),
        models: parse_list(get(row, "models")),
        spend: get(row, "spend").unwrap_or(0.0),
        limits: limits(row),
        budget_reset_at: get(row, "budget_reset_at"),
        metadata: parse_map(get(row, "metadata")),
        members_with_roles: get::<String>(row, "members")
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
        blocked: get::<i64>(row, "blocked").unwrap_or(0) != 0,
        created_at: get(row, "created_at").unwrap_or(0),
        updated_at: get(row, "updated_at").unwrap_or(0),
    }
}

fn user_row(row: &AnyRow) -> UserRow {
    UserRow {
        user_id: get(row, "user_id").unwrap_or_default(),
        user_email: get(row, "user_email"),
        user_role: get(row, "user_role"),
        models: parse_list(get(row, "models")),
        spend: get(row, "spend").unwrap_or(0.0),
        limits: limits(row),
        budget_reset_at: get(row, "budget_reset_at"),
        metadata: parse_map(get(row, "metadata")),
        teams: parse_list(get(row, "teams")),
        created_at: get(row, "created_at").unwrap_or(0),
        updated_at: get(row, "updated_at").unwrap_or(0),
    }
}

fn spend_row(row: &AnyRow) -> SpendRow {
    SpendRow {
        request_id: get(row, "request_id").unwrap_or_default(),
        api_key: get(row, "api_key").unwrap_or_default(),
        key_alias: get(row, "key_alias"),
        team_id: get(row, "team_id"),
        user_id: get(row, "user_id"),
        model_group: get(row, "model_group").unwrap_or_default(),
        model: get(row, "model"),
        model_id: get(row, "model_id"),
        custom_llm_provider: get(row, "custom_llm_provider"),
        prompt_tokens: get(row, "prompt_tokens").unwrap_or(0),
        completion_tokens: get(row, "completion_tokens").unwrap_or(0),
        total_tokens: get(row, "total_tokens").unwrap_or(0),
        spend: get(row, "spend").unwrap_or(0.0),
        start_time: get(row, "start_time").unwrap_or(0),
        end_time: get(row, "end_time").unwrap_or(0),
        latency_ms: get(row, "latency_ms").unwrap_or(0),
        cache_hit: get::<i64>(row, "cache_hit").unwrap_or(0) != 0,
        status: get(row, "status").unwrap_or_default(),
        request_tags: parse_list(get(row, "request_tags")),
    }
}

/// The next end of a budget period starting now, or `None` without a (valid) duration.
#[must_use]
pub fn next_reset(budget_duration: Option<&str>, now: i64) -> Option<i64> {
    let d = parse_duration(budget_duration?)?;
    Some(now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

impl Store {
    /// Connects to `url` (`sqlite:…`, `sqlite::memory:`, `postgres://…`) and runs the embedded
    /// migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, 10).await
    }

    /// [`Store::connect`] with a pool size (`general_settings.database_connection_pool_limit`).
    pub async fn connect_with(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError(
                "database_url: expected a `postgres://…` or `sqlite:…` URL".to_owned(),
            ));
        };
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut opts = AnyPoolOptions::new()
            .max_connections(if memory { 1 } else { pool_size.max(2) })
            .acquire_timeout(Duration::from_secs(3));
        if memory {
            // One connection that lives as long as the pool: the in-memory database is per connection.
            opts = opts
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        if backend == Backend::Sqlite {
            // WAL (set in `migrate`) with `synchronous=NORMAL`: a commit appends to the WAL without
            // an fsync; the WAL is synced at checkpoints. The database cannot be corrupted this
            // way; a power loss (not a crash of the process) may undo the last commits. The
            // default (FULL) fsyncs every commit, which was most of the spend writer's CPU (kernel
            // time) in the full-stack benchmark. The setting is per connection.
            opts = opts.after_connect(|conn, _meta| {
                Box::pin(async move {
                    sqlx::query("PRAGMA synchronous=NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA temp_store=MEMORY")
                        .execute(&mut *conn)
                        .await
                        .map(drop)
                })
            });
        }
        let pool = opts
            .connect(url)
            .await
            .map_err(|e| StoreError::new("cannot connect to the database", e))?;
        let store = Self { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    /// Which database this is.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db("migrations"))?;
        if self.backend == Backend::Postgres {
            // Two gateways starting at once must not run the same DDL concurrently.
            sqlx::query("SELECT pg_advisory_lock(7207007)")
                .execute(&mut *conn)
                .await
                .map_err(db("migrations: advisory lock"))?;
        } else {
            // Readers do not block the spend writer; ignored for in-memory databases.
            let _ = sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&mut *conn)
                .await;
        }
        let result = async {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS llmgate_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .execute(&mut *conn)
            .await
            .map_err(db("migrations"))?;
            let done: i64 = sqlx::query("SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) AS v FROM llmgate_migrations")
                .fetch_one(&mut *conn)
                .await
                .map_err(db("migrations"))?
                .try_get("v")
                .map_err(db("migrations"))?;
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > done) {
                let sql: String = sql
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n");
                for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    sqlx::query(sqlx::AssertSqlSafe(stmt))
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| StoreError::new(&format!("migration {version}"), e))?;
                }
                sqlx::query("INSERT INTO llmgate_migrations (version, applied_at) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING")
                    .bind(*version)
                    .bind(now_ms())
                    .execute(&mut *conn)
                    .await
                    .map_err(db("migrations"))?;
            }
            Ok(())
        }
        .await;
        if self.backend == Backend::Postgres {
            let _ = sqlx::query("SELECT pg_advisory_unlock(7207007)")
                .execute(&mut *conn)
                .await;
        }
        result
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    // ----------------------------------------------------------------------------------- keys

    /// Creates a key; returns the key (shown once) and the stored row.
    pub async fn create_key(&self, new: NewKey) -> Result<(Secret, KeyRow), StoreError> {
        let secret = new.key.clone().unwrap_or_else(generate_key);
        if secret.is_empty() {
            return Err(StoreError(
                "cannot generate a key: no system randomness".into(),
            ));
        }
        let now = now_ms();
        let row = KeyRow {
            token: hash_key(secret.expose()),
            key_name: Some(secret.masked()),
            key_alias: new.key_alias,
            models: new.models,
            spend: 0.0,
            budget_reset_at: next_reset(new.limits.budget_duration.as_deref(), now),
            limits: new.limits,
            metadata: new.metadata,
            team_id: new.team_id,
            user_id: new.user_id,
            expires: new
                .duration
                .map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
            blocked: new.blocked,
            created_at: now,
            updated_at: now,
        };
        self.insert_key(&row).await?;
        Ok((secret, row))
    }

    async fn insert_key(&self, r: &KeyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO llmgate_keys (token, key_name, key_alias, models, spend, max_budget, budget_duration, budget_reset_at, tpm_limit, rpm_limit, max_parallel_requests, metadata, team_id, user_id, expires, blocked, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,CAST($6 AS DOUBLE PRECISION),$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)",
        )
        .bind(r.token.clone())
        .bind(r.key_name.clone())
        .bind(r.key_alias.clone())
        .bind(json_list(&r.models))
        .bind(r.spend)
        .bind(opt_f64(r.limits.max_budget))
        .bind(r.limits.budget_duration.clone())
        .bind(r.budget_reset_at)
        .bind(r.limits.tpm_limit)
        .bind(r.limits.rpm_limit)
        .bind(r.limits.max_parallel_requests)
        .bind(json_map(&r.metadata))
        .bind(r.team_id.clone())
        .bind(r.user_id.clone())
        .bind(r.expires)
        .bind(i64::from(r.blocked))
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(&self.pool)
        .await
        .map_err(db("insert key"))?;
        Ok(())
    }

    /// The key with this hash.
    pub async fn key(&self, token: &str) -> Result<Option<KeyRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM llmgate_keys WHERE token = $1")
            .bind(token.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read key"))?;
        Ok(row.as_ref().map(key_row))
    }

    /// The key with this hash, its budget period rolled over first when it ended.
    pub async fn key_fresh(&self, token: &str) -> Result<Option<KeyRow>, StoreError> {
        let now = now_ms();
        let Some(mut k) = self.key(token).await? else {
            return Ok(None);
        };
        if k.budget_reset_at.is_some_and(|t| t <= now) {
            let next = next_reset(k.limits.budget_duration.as_deref(), now);
            sqlx::query("UPDATE llmgate_keys SET spend = 0, budget_reset_at = $1 WHERE token = $2 AND budget_reset_at <= $3")
                .bind(next)
                .bind(token.to_owned())
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(db("reset key budget"))?;
            k.spend = 0.0;
            k.budget_reset_at = next;
        }
        Ok(Some(k))
    }

    /// Replaces a key's row (by `token`).
    pub async fn update_key(&self, r: &KeyRow) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE llmgate_keys SET key_alias=$1, models=$2, spend=$3, max_budget=CAST($4 AS DOUBLE PRECISION), budget_duration=$5, budget_reset_at=$6, tpm_limit=$7, rpm_limit=$8, max_parallel_requests=$9, metadata=$10, team_id=$11, user_id=$12, expires=$13, blocked=$14, updated_at=$15 WHERE token=$16",
        )
        .bind(r.key_alias.clone())
        .bind(json_list(&r.models))
        .bind(r.spend)
        .bind(opt_f64(r.limits.max_budget))
        .bind(r.limits.budget_duration.clone())
        .bind(r.budget_reset_at)
        .bind(r.limits.tpm_limit)
        .bind(r.limits.rpm_limit)
        .bind(r.limits.max_parallel_requests)
        .bind(json_map(&r.metadata))
        .bind(r.team_id.clone())
        .bind(r.user_id.clone())
        .bind(r.expires)
        .bind(i64::from(r.blocked))
        .bind(now_ms())
        .bind(r.token.clone())
        .execute(&self.pool)
        .await
        .map_err(db("update key"))?;
        Ok(res.rows_affected() > 0)
    }

    /// Replaces a key's secret: the row moves to the new hash. Returns the new key and row.
    pub async fn regenerate_key(
        &self,
        token: &str,
        new_key: Option<Secret>,
    ) -> Result<Option<(Secret, KeyRow)>, StoreError> {
        let Some(mut row) = self.key(token).await? else {
            return Ok(None);
        };
        let secret = new_key.unwrap_or_else(generate_key);
        if secret.is_empty() {
            return Err(StoreError(
                "cannot generate a key: no system randomness".into(),
            ));
        }
        let new_token = hash_key(secret.expose());
        let res = sqlx::query(
            "UPDATE llmgate_keys SET token=$1, key_name=$2, updated_at=$3 WHERE token=$4",
        )
        .bind(new_token.clone())
        .bind(secret.masked())
        .bind(now_ms())
        .bind(token.to_owned())
        .execute(&self.pool)
        .await
        .map_err(db("regenerate key"))?;
        if res.rows_affected() == 0 {
            return Ok(None);
        }
        row.token = new_token;
        row.key_name = Some(secret.masked());
        Ok(Some((secret, row)))
    }

    /// Deletes keys by hash; returns the hashes that existed.
    pub async fn delete_keys(&self, tokens: &[String]) -> Result<Vec<String>, StoreError> {
        let mut deleted = Vec::new();
        for t in tokens {
            let res = sqlx::query("DELETE FROM llmgate_keys WHERE token = $1")
                .bind(t.clone())
                .execute(&self.pool)
                .await
                .map_err(db("delete key"))?;
            if res.rows_affected() > 0 {
                deleted.push(t.clone());
            }
        }
        Ok(deleted)
    }

    /// Key hashes by alias.
    pub async fn tokens_by_alias(&self, alias: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT token FROM llmgate_keys WHERE key_alias = $1")
            .bind(alias.to_owned())
            .fetch_all(&self.pool)
            .await
            .map_err(db("read keys"))?;
        Ok(rows.iter().filter_map(|r| get(r, "token")).collect())
    }

    /// Keys, optionally of one team or user, ordered by creation, one page.
    pub async fn list_keys(
        &self,
        team_id: Option<&str>,
        user_id: Option<&str>,
        page: i64,
        size: i64,
    ) -> Result<(Vec<KeyRow>, i64), StoreError> {
        let team = team_id.map(str::to_owned);
        let user = user_id.map(str::to_owned);
        let total: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM llmgate_keys WHERE ($1 IS NULL OR team_id = $1) AND ($2 IS NULL OR user_id = $2)",
        )
        .bind(team.clone())
        .bind(user.clone())
        .fetch_one(&self.pool)
        .await
        .map_err(db("count keys"))?
        .try_get("n")
        .map_err(db("count keys"))?;
        let rows = sqlx::query(
            "SELECT * FROM llmgate_keys WHERE ($1 IS NULL OR team_id = $1) AND ($2 IS NULL OR user_id = $2) ORDER BY created_at, token LIMIT $3 OFFSET $4",
        )
        .bind(team)
        .bind(user)
        .bind(size)
        // Saturating: a page far past the end (`?page=9223372036854775807`) is an empty page,
        // not an overflow (found by tests/fuzz_management.rs).
        .bind(page.saturating_sub(1).max(0).saturating_mul(size.max(0)))
        .fetch_all(&self.pool)
        .await
        .map_err(db("list keys"))?;
        Ok((rows.iter().map(key_row).collect(), total))
    }

    // ---------------------------------------------------------------------------------- teams

    /// Creates a team; fails if the id exists.
    pub async fn create_team(&self, t: &TeamRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO llmgate_teams (team_id, team_alias, models, spend, max_budget, budget_duration, budget_reset_at, tpm_limit, rpm_limit, max_parallel_requests, metadata, members, blocked, created_at, updated_at) VALUES ($1,$2,$3,$4,CAST($5 AS DOUBLE PRECISION),$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)",
        )
        .bind(t.team_id.clone())
        .bind(t.team_alias.clone())
        .bind(json_list(&t.models))
        .bind(t.spend)
        .bind(opt_f64(t.limits.max_budget))
        .bind(t.limits.budget_duration.clone())
        .bind(t.budget_reset_at)
        .bind(t.limits.tpm_limit)
        .bind(t.limits.rpm_limit)
        .bind(t.limits.max_parallel_requests)
        .bind(json_map(&t.metadata))
        .bind(serde_json::to_string(&t.members_with_roles).unwrap_or_else(|_| "[]".into()))
        .bind(i64::from(t.blocked))
        .bind(t.created_at)
        .bind(t.updated_at)
        .execute(&self.pool)
        .await
        .map_err(db("insert team"))?;
        Ok(())
    }

    /// A team, its budget period rolled over first when it ended.
    pub async fn team(&self, team_id: &str) -> Result<Option<TeamRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM llmgate_teams WHERE team_id = $1")
            .bind(team_id.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read team"))?;
        let Some(mut t) = row.as_ref().map(team_row) else {
            return Ok(None);
        };
        let now = now_ms();
        if t.budget_reset_at.is_some_and(|r| r <= now) {
            let next = next_reset(t.limits.budget_duration.as_deref(), now);
            sqlx::query("UPDATE llmgate_teams SET spend = 0, budget_reset_at = $1 WHERE team_id = $2 AND budget_reset_at <= $3")
                .bind(next)
                .bind(team_id.to_owned())
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(db("reset team budget"))?;
            t.spend = 0.0;
            t.budget_reset_at = next;
        }
        Ok(Some(t))
    }

    /// Replaces a team's row.
    pub async fn update_team(&self, t: &TeamRow) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE llmgate_teams SET team_alias=$1, models=$2, max_budget=CAST($3 AS DOUBLE PRECISION), budget_duration=$4, budget_reset_at=$5, tpm_limit=$6, rpm_limit=$7, max_parallel_requests=$8, metadata=$9, members=$10, blocked=$11, updated_at=$12 WHERE team_id=$13",
        )
        .bind(t.team_alias.clone())
        .bind(json_list(&t.models))
        .bind(opt_f64(t.limits.max_budget))
        .bind(t.limits.budget_duration.clone())
        .bind(t.budget_reset_at)
        .bind(t.limits.tpm_limit)
        .bind(t.limits.rpm_limit)
        .bind(t.limits.max_parallel_requests)
        .bind(json_map(&t.metadata))
        .bind(serde_json::to_string(&t.members_with_roles).unwrap_or_else(|_| "[]".into()))
        .bind(i64::from(t.blocked))
        .bind(now_ms())
        .bind(t.team_id.clone())
        .execute(&self.pool)
        .await
        .map_err(db("update team"))?;
        Ok(res.rows_affected() > 0)
    }

    /// Deletes teams; returns the ids that existed.
    pub async fn delete_teams(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut deleted = Vec::new();
        for id in ids {
            let res = sqlx::query("DELETE FROM llmgate_teams WHERE team_id = $1")
                .bind(id.clone())
                .execute(&self.pool)
                .await
                .map_err(db("delete team"))?;
            if res.rows_affected() > 0 {
                deleted.push(id.clone());
            }
        }
        Ok(deleted)
    }

    /// All teams.
    pub async fn list_teams(&self) -> Result<Vec<TeamRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM llmgate_teams ORDER BY created_at, team_id")
            .fetch_all(&self.pool)
            .await
            .map_err(db("list teams"))?;
        Ok(rows.iter().map(team_row).collect())
    }

    // ---------------------------------------------------------------------------------- users

    /// Creates a user; fails if the id exists.
    pub async fn create_user(&self, u: &UserRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO llmgate_users (user_id, user_email, user_role, models, spend, max_budget, budget_duration, budget_reset_at, tpm_limit, rpm_limit, max_parallel_requests, metadata, teams, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,CAST($6 AS DOUBLE PRECISION),$7,$8,$9,$10,$11,$12,$13,$14,$15)",
        )
        .bind(u.user_id.clone())
        .bind(u.user_email.clone())
        .bind(u.user_role.clone())
        .bind(json_list(&u.models))
        .bind(u.spend)
        .bind(opt_f64(u.limits.max_budget))
        .bind(u.limits.budget_duration.clone())
        .bind(u.budget_reset_at)
        .bind(u.limits.tpm_limit)
        .bind(u.limits.rpm_limit)
        .bind(u.limits.max_parallel_requests)
        .bind(json_map(&u.metadata))
        .bind(json_list(&u.teams))
        .bind(u.created_at)
        .bind(u.updated_at)
        .execute(&self.pool)
        .await
        .map_err(db("insert user"))?;
        Ok(())
    }

    /// Adds a team to a user's `teams` (creating a bare user when missing).
    pub async fn add_user_team(&self, user_id: &str, team_id: &str) -> Result<(), StoreError> {
        match self.user(user_id).await? {
            Some(mut u) => {
                if !u.teams.iter().any(|t| t == team_id) {
                    u.teams.push(team_id.to_owned());
                }
                sqlx::query("UPDATE llmgate_users SET teams=$1, updated_at=$2 WHERE user_id=$3")
                    .bind(json_list(&u.teams))
                    .bind(now_ms())
                    .bind(user_id.to_owned())
                    .execute(&self.pool)
                    .await
                    .map_err(db("update user"))?;
                Ok(())
            }
            None => {
                let now = now_ms();
                self.create_user(&UserRow {
                    user_id: user_id.to_owned(),
                    teams: vec![team_id.to_owned()],
                    created_at: now,
                    updated_at: now,
                    ..UserRow::default()
                })
                .await
            }
        }
    }

    /// A user, its budget period rolled over first when it ended.
    pub async fn user(&self, user_id: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM llmgate_users WHERE user_id = $1")
            .bind(user_id.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read user"))?;
        let Some(mut u) = row.as_ref().map(user_row) else {
            return Ok(None);
        };
        let now = now_ms();
        if u.budget_reset_at.is_some_and(|r| r <= now) {
            let next = next_reset(u.limits.budget_duration.as_deref(), now);
            sqlx::query("UPDATE llmgate_users SET spend = 0, budget_reset_at = $1 WHERE user_id = $2 AND budget_reset_at <= $3")
                .bind(next)
                .bind(user_id.to_owned())
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(db("reset user budget"))?;
            u.spend = 0.0;
            u.budget_reset_at = next;
        }
        Ok(Some(u))
    }

    // ---------------------------------------------------------------------------------- spend

    /// Writes spend rows in one transaction and adds their cost to the key, team and user totals.
    /// Every row counts, also one whose `request_id` is already stored: a client may send the same
    /// `x-litellm-call-id` twice, and the log then keeps the first row while the key pays for both
    /// calls. Returns the totals added.
    pub async fn write_spend(&self, rows: &[SpendRow]) -> Result<SpendTotals, StoreError> {
        self.record_spend(rows, true, Count::Every).await
    }

    /// [`Store::write_spend`] again for a batch whose earlier attempt failed, maybe after its
    /// commit: only the rows this transaction stores add to the totals, so a batch is not counted
    /// twice. (A row whose id another call stored is not counted here; missing it takes both a
    /// failed commit and a reused call id.)
    pub async fn rewrite_spend(&self, rows: &[SpendRow]) -> Result<SpendTotals, StoreError> {
        self.record_spend(rows, true, Count::StoredNow).await
    }

    /// Adds the rows' cost to the key, team and user totals in one transaction without storing
    /// the rows (`general_settings.disable_spend_logs`). Without stored rows there is nothing to
    /// recognise a retried batch by: a batch whose commit succeeded but was reported as failed
    /// counts twice.
    pub async fn add_spend(&self, rows: &[SpendRow]) -> Result<SpendTotals, StoreError> {
        self.record_spend(rows, false, Count::Every).await
    }

    async fn record_spend(
        &self,
        rows: &[SpendRow],
        log: bool,
        count: Count,
    ) -> Result<SpendTotals, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("spend: begin"))?;
        let mut totals = SpendTotals::default();
        // Many rows per statement: one round trip to the database per chunk, not per row.
        let mut inserted = std::collections::HashSet::new();
        let stored_now = count == Count::StoredNow;
        let mut rest = if log { rows } else { &[] };
        while !rest.is_empty() {
            // A few fixed statement sizes, so each is parsed once and then reused from the
            // statement cache.
            let n = SPEND_INSERT_SIZES
                .iter()
                .copied()
                .find(|n| *n <= rest.len())
                .unwrap_or(1);
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let sql = spend_insert_sql(n, self.backend, stored_now);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(r.request_id.clone())
                    .bind(r.api_key.clone())
                    .bind(r.key_alias.clone())
                    .bind(r.team_id.clone())
                    .bind(r.user_id.clone())
                    .bind(r.model_group.clone())
                    .bind(r.model.clone())
                    .bind(r.model_id.clone())
                    .bind(r.custom_llm_provider.clone())
                    .bind(r.prompt_tokens)
                    .bind(r.completion_tokens)
                    .bind(r.total_tokens)
                    .bind(r.spend)
                    .bind(r.start_time)
                    .bind(r.end_time)
                    .bind(r.latency_ms)
                    .bind(i64::from(r.cache_hit))
                    .bind(r.status.clone())
                    .bind(json_list(&r.request_tags));
            }
            if stored_now {
                // RETURNING lists only the rows inserted now: a retried batch's stored rows are
                // skipped by ON CONFLICT and not counted twice.
                for row in q.fetch_all(&mut *tx).await.map_err(db("spend: insert"))? {
                    if let Some(id) = get::<String>(&row, "request_id") {
                        inserted.insert(id);
                    }
                }
            } else {
                q.execute(&mut *tx).await.map_err(db("spend: insert"))?;
            }
        }
        for r in rows {
            if r.spend == 0.0 || (stored_now && !inserted.contains(&r.request_id)) {
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
        // The proxy-wide budget row takes every row's cost (nothing happens when it does not
        // exist: no `litellm_settings.max_budget`).
        let proxy: HashMap<String, f64> = (totals.proxy != 0.0)
            .then(|| (PROXY_BUDGET_ID.to_owned(), totals.proxy))
            .into_iter()
            .collect();
        // Add each total, starting a new budget period first where the old one has ended.
        let now = now_ms();
        for (table, id_col, map) in [
            ("llmgate_keys", "token", &totals.keys),
            ("llmgate_teams", "team_id", &totals.teams),
            ("llmgate_users", "user_id", &totals.users),
            ("llmgate_users", "user_id", &proxy),
        ] {
            for (id, v) in map {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT budget_duration, budget_reset_at FROM {table} WHERE {id_col} = $1"
                )))
                .bind(id.clone())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("spend: read period"))?;
                let Some(row) = row else { continue };
                let duration: Option<String> = get(&row, "budget_duration");
                let reset_at: Option<i64> = get(&row, "budget_reset_at");
                if reset_at.is_some_and(|r| r <= now) {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE {table} SET spend = $1, budget_reset_at = $2 WHERE {id_col} = $3"
                    )))
                    .bind(*v)
                    .bind(next_reset(duration.as_deref(), now))
                    .bind(id.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(db("spend: new period"))?;
                } else {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE {table} SET spend = spend + $1 WHERE {id_col} = $2"
                    )))
                    .bind(*v)
                    .bind(id.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(db("spend: total"))?;
                }
            }
        }
        if !proxy.is_empty() {
            let row =
                sqlx::query("SELECT spend, budget_reset_at FROM llmgate_users WHERE user_id = $1")
                    .bind(PROXY_BUDGET_ID)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db("spend: read proxy budget"))?;
            totals.proxy_budget = row.map(|r| BudgetState {
                spend: get(&r, "spend").unwrap_or(0.0),
                reset_at: get(&r, "budget_reset_at"),
            });
        }
        tx.commit().await.map_err(db("spend: commit"))?;
        Ok(totals)
    }

    /// Creates or updates the proxy-wide budget row ([`PROXY_BUDGET_ID`]) with `max_budget` and
    /// `budget_duration`, as LiteLLM does at start, and returns its state. An existing period
    /// is kept (a restart does not move it); a row without one (made before a duration was set)
    /// starts a period now, from 0, as LiteLLM's back-fill does; without a duration the budget
    /// never resets.
    pub async fn proxy_budget(
        &self,
        max_budget: f64,
        budget_duration: Option<&str>,
    ) -> Result<BudgetState, StoreError> {
        let now = now_ms();
        let u = match self.user(PROXY_BUDGET_ID).await? {
            Some(u) => u,
            None => {
                let reset_at = next_reset(budget_duration, now);
                let row = UserRow {
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
                };
                match self.create_user(&row).await {
                    Ok(()) => {
                        return Ok(BudgetState {
                            spend: 0.0,
                            reset_at,
                        })
                    }
                    // Another instance starting at the same time created it first.
                    Err(e) => self.user(PROXY_BUDGET_ID).await?.ok_or(e)?,
                }
            }
        };
        let (spend, reset_at) = match (budget_duration, u.budget_reset_at) {
            (None, _) => (u.spend, None),
            (Some(_), Some(r)) => (u.spend, Some(r)),
            (Some(d), None) => (0.0, next_reset(Some(d), now)),
        };
        sqlx::query("UPDATE llmgate_users SET max_budget = CAST($1 AS DOUBLE PRECISION), budget_duration = $2, budget_reset_at = $3, spend = $4, updated_at = $5 WHERE user_id = $6")
            .bind(max_budget)
            .bind(budget_duration.map(str::to_owned))
            .bind(reset_at)
            .bind(spend)
            .bind(now)
            .bind(PROXY_BUDGET_ID)
            .execute(&self.pool)
            .await
            .map_err(db("update proxy budget"))?;
        Ok(BudgetState { spend, reset_at })
    }

    /// The proxy-wide budget row's state (its period rolled over first when it ended); `None`
    /// when there is no such row.
    pub async fn proxy_budget_state(&self) -> Result<Option<BudgetState>, StoreError> {
        Ok(self.user(PROXY_BUDGET_ID).await?.map(|u| BudgetState {
            spend: u.spend,
            reset_at: u.budget_reset_at,
        }))
    }

    /// Spend-log rows, newest first.
    pub async fn spend_logs(&self, f: &SpendFilter) -> Result<Vec<SpendRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM llmgate_spend_logs WHERE ($1 IS NULL OR api_key = $1) AND ($2 IS NULL OR user_id = $2) AND ($3 IS NULL OR team_id = $3) AND ($4 IS NULL OR request_id = $4) AND ($5 IS NULL OR start_time >= $5) AND ($6 IS NULL OR start_time < $6) ORDER BY start_time DESC, request_id LIMIT $7",
        )
        .bind(f.api_key.clone())
        .bind(f.user_id.clone())
        .bind(f.team_id.clone())
        .bind(f.request_id.clone())
        .bind(f.start_ms)
        .bind(f.end_ms)
        .bind(if f.limit > 0 { f.limit } else { 1000 })
        .fetch_all(&self.pool)
        .await
        .map_err(db("read spend logs"))?;
        Ok(rows.iter().map(spend_row).collect())
    }

    /// Total spend of all calls ever logged.
    pub async fn global_spend(&self) -> Result<f64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(spend), 0) AS DOUBLE PRECISION) AS s FROM llmgate_spend_logs",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("global spend"))?;
        Ok(get(&row, "s").unwrap_or(0.0))
    }

    /// Number of spend-log rows.
    pub async fn spend_log_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM llmgate_spend_logs")
            .fetch_one(&self.pool)
            .await
            .map_err(db("count spend logs"))?;
        Ok(get(&row, "n").unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A successful call's spend row for the key with hash `api_key`.
    fn paid(request_id: impl Into<String>, api_key: &str, spend: f64) -> SpendRow {
        SpendRow {
            request_id: request_id.into(),
            api_key: api_key.to_owned(),
            spend,
            status: "success".into(),
            ..SpendRow::default()
        }
    }

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

    #[tokio::test]
    async fn sqlite_memory_round_trip() {
        let s = Store::connect("sqlite::memory:").await.unwrap();
        let (k, row) = s
            .create_key(NewKey {
                key_alias: Some("a".into()),
                models: vec!["m".into()],
                ..NewKey::default()
            })
            .await
            .unwrap();
        let got = s.key(&hash_key(k.expose())).await.unwrap().unwrap();
        assert_eq!(got.models, ["m"]);
        assert_eq!(got.token, row.token);
        let spend = paid("r1", &row.token, 0.5);
        s.write_spend(std::slice::from_ref(&spend)).await.unwrap();
        // Retried batch: not counted twice.
        s.rewrite_spend(&[spend]).await.unwrap();
        assert!((s.key(&row.token).await.unwrap().unwrap().spend - 0.5).abs() < 1e-12);
        assert_eq!(s.spend_log_count().await.unwrap(), 1);
        assert!((s.global_spend().await.unwrap() - 0.5).abs() < 1e-12);
    }

    /// Found by fuzzing the management API: `/key/list?page=<i64::MAX>` overflowed the offset.
    #[tokio::test]
    async fn a_page_far_past_the_end_is_empty() {
        let s = Store::connect("sqlite::memory:").await.unwrap();
        s.create_key(NewKey::default()).await.unwrap();
        for (page, size) in [(i64::MAX, 100), (i64::MAX, i64::MAX), (2, 1)] {
            let (rows, total) = s.list_keys(None, None, page, size).await.unwrap();
            assert!(rows.is_empty(), "page {page} size {size}");
            assert_eq!(total, 1);
        }
        // A page before the first is the first.
        let (rows, _) = s.list_keys(None, None, i64::MIN, 10).await.unwrap();
        assert_eq!(rows.len(), 1);
    }

    #[tokio::test]
    async fn sqlite_connections_use_wal_without_a_sync_per_commit() {
        let dir = std::env::temp_dir().join(format!("llmgate-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("s.db").display());
        let s = Store::connect(&url).await.unwrap();
        // Every connection of the pool, not only the first: hold two at once.
        let mut a = s.pool.acquire().await.unwrap();
        let mut b = s.pool.acquire().await.unwrap();
        for conn in [&mut a, &mut b] {
            let row = sqlx::query("PRAGMA synchronous")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            // 1 = NORMAL (2 = FULL, the default).
            assert_eq!(row.try_get::<i64, _>(0).unwrap(), 1);
            let row = sqlx::query("PRAGMA journal_mode")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(row.try_get::<String, _>(0).unwrap(), "wal");
        }
        drop((a, b));
        s.pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_reused_request_id_is_logged_once_and_paid_every_time() {
        let s = Store::connect("sqlite::memory:").await.unwrap();
        let (_, key) = s.create_key(NewKey::default()).await.unwrap();
        let row = paid("client-id", &key.token, 0.5);
        // Twice in one batch, then once more in the next.
        s.write_spend(&[row.clone(), row.clone()]).await.unwrap();
        let t = s.write_spend(std::slice::from_ref(&row)).await.unwrap();
        assert!((t.keys[&key.token] - 0.5).abs() < 1e-12);
        let stored = s.key(&key.token).await.unwrap().unwrap().spend;
        assert!((stored - 1.5).abs() < 1e-12);
        assert_eq!(s.spend_log_count().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn spend_without_logs_adds_totals_only() {
        let s = Store::connect("sqlite::memory:").await.unwrap();
        let (_, key) = s.create_key(NewKey::default()).await.unwrap();
        let rows: Vec<SpendRow> = (0..3)
            .map(|i| paid(format!("r{i}"), &key.token, 0.25))
            .collect();
        let t = s.add_spend(&rows).await.unwrap();
        assert!((t.keys[&key.token] - 0.75).abs() < 1e-12);
        let stored = s.key(&key.token).await.unwrap().unwrap().spend;
        assert!((stored - 0.75).abs() < 1e-12);
        assert_eq!(s.spend_log_count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn spend_batches_span_several_statements_and_count_new_rows_only() {
        let s = Store::connect("sqlite::memory:").await.unwrap();
        let (_, key) = s.create_key(NewKey::default()).await.unwrap();
        let rows: Vec<SpendRow> = (0..(SPEND_INSERT_SIZES[0] * 2 + 55))
            .map(|i| SpendRow {
                request_tags: vec![format!("t{i}")],
                ..paid(format!("r{i}"), &key.token, 0.25)
            })
            .collect();
        let first = SPEND_INSERT_SIZES[0] + 30;
        let t1 = s.write_spend(&rows[..first]).await.unwrap();
        let cost = |n: usize| 0.25 * n as f64;
        assert!((t1.keys[&key.token] - cost(first)).abs() < 1e-9);
        // The whole batch again, as after a failed commit: only the new rows count.
        let t2 = s.rewrite_spend(&rows).await.unwrap();
        let new = rows.len() - first;
        assert!((t2.keys[&key.token] - cost(new)).abs() < 1e-9);
        assert_eq!(s.spend_log_count().await.unwrap(), rows.len() as i64);
        let stored = s.key(&key.token).await.unwrap().unwrap().spend;
        assert!((stored - cost(rows.len())).abs() < 1e-9);
    }
}
