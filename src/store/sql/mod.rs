//! [`Store`]: the SQL implementation of [`KeyStore`] and [`SpendSink`], on SQLite or PostgreSQL.
//!
//! One [`Store`] over an `sqlx` `Any` pool. This folder is the only place that uses `sqlx` (and
//! holds the migrations), so that it can sit behind a cargo feature. The schema is one portable
//! set of migrations ([`MIGRATIONS`]), embedded in the binary and run by [`Store::connect`]; they
//! only use types both databases share (`TEXT`, `BIGINT`, `DOUBLE PRECISION`), with timestamps as
//! Unix milliseconds and lists and maps as JSON text.
//!
//! - `mod.rs`: connecting, migrations, row decoding, the trait impls;
//! - `keys.rs`, `teams.rs`, `users.rs`: their rows (create, read, update, delete, list);
//! - `spend.rs`: spend batches, the proxy budget row, spend-log reads;
//! - `litellm.rs`: the same operations over LiteLLM's own PostgreSQL schema ([`Schema::LiteLlm`]).
//!
//! Which schema ([`SchemaChoice`], `general_settings.database_schema`): llmgate's own tables
//! (`llmgate_*`, the default and the only one on SQLite) or LiteLLM's (`"LiteLLM_*"`, made by
//! LiteLLM's Prisma migrations, never altered by llmgate). With `auto` (the default) a PostgreSQL
//! database that has LiteLLM's `LiteLLM_VerificationToken` table and no `llmgate_keys` table is
//! used in LiteLLM's schema; a database with both is ambiguous and refused (set the choice); any
//! other database gets llmgate's migrations.

use std::{fmt, time::Duration};

use serde_json::{Map, Value};

use crate::clock::Clock;
use sqlx::{
    any::{AnyPoolOptions, AnyRow},
    AnyPool, Row,
};

pub use self::{responses::SqlResponseStore, rollup::ReportGroup};

use super::{
    BudgetState, EndUserRow, KeyRow, KeyStore, Limits, OrgRow, SpendRow, SpendSink, SpendTotals,
    StoreError, StoreFuture, TeamMemberRow, TeamRow, UserRow,
};

mod budgets;
mod end_users;
mod keys;
mod litellm;
mod models;
mod orgs;
mod proxy_models;
mod responses;
mod rollup;
mod spend;
mod teams;
mod users;

/// Embedded migrations, applied in order by [`Store::connect`]: `(version, statements)`.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_budgets.sql")),
    (3, include_str!("migrations/0003_spend_log_indexes.sql")),
    (4, include_str!("migrations/0004_organizations.sql")),
    (5, include_str!("migrations/0005_end_users.sql")),
    (7, include_str!("migrations/0007_responses.sql")),
    (8, include_str!("migrations/0008_model_budgets.sql")),
    (
        9,
        include_str!("migrations/0009_team_members_and_aliases.sql"),
    ),
    (10, include_str!("migrations/0010_daily_spend.sql")),
];

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

/// Which tables a [`Store`] reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    /// llmgate's own tables (`llmgate_keys`, …), created by [`MIGRATIONS`].
    Llmgate,
    /// LiteLLM's tables (`"LiteLLM_VerificationToken"`, …), made by LiteLLM's own migrations
    /// (the `litellm-proxy-extras` package); llmgate alters none of them (its one own table
    /// there is `llmgate_responses`, see [`SqlResponseStore`]).
    LiteLlm,
}

/// Which schema to use when connecting (`general_settings.database_schema`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SchemaChoice {
    /// LiteLLM's when the PostgreSQL database has LiteLLM's tables and not llmgate's; llmgate's
    /// when it has neither (or is SQLite); refused when it has both.
    #[default]
    Auto,
    /// llmgate's own tables (migrated at start).
    Llmgate,
    /// LiteLLM's tables: they must exist (PostgreSQL only).
    LiteLlm,
}

impl SchemaChoice {
    /// Parses `auto`, `llmgate` or `litellm`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Some(Self::Auto),
            "llmgate" => Some(Self::Llmgate),
            "litellm" => Some(Self::LiteLlm),
            _ => None,
        }
    }
}

/// The store. Cheap to clone (a pool handle). See the [module docs](crate::store).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    schema: Schema,
    clock: Clock,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// An optional float bound as text and cast in SQL: sqlx 0.9's `Any` driver declares a NULL
/// `f64` as `float4` on PostgreSQL, which breaks the statement for the next non-NULL value.
fn opt_f64(v: Option<f64>) -> Option<String> {
    v.map(|f| f.to_string())
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
        model_max_budget: parse_map(get(row, "model_max_budget")),
        model_spend: parse_map(get(row, "model_spend")),
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
        organization_id: get(row, "organization_id"),
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
        end_user: get(row, "end_user"),
    }
}

impl Store {
    /// Connects to `url` (`sqlite:…`, `sqlite::memory:`, `postgres://…`) and runs the embedded
    /// migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, 10).await
    }

    /// [`Store::connect`] with a pool size (`general_settings.database_connection_pool_limit`).
    pub async fn connect_with(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        Self::connect_schema(url, pool_size, SchemaChoice::Llmgate).await
    }

    /// [`Store::connect_with`] choosing the schema (see the module docs): LiteLLM's
    /// tables are used as they are; llmgate's are migrated.
    ///
    /// # Errors
    /// The database cannot be reached; `LiteLlm` on SQLite or on a database without LiteLLM's
    /// tables; `Auto` on a database with both schemas.
    pub async fn connect_schema(
        url: &str,
        pool_size: u32,
        choice: SchemaChoice,
    ) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::msg(
                "database_url: expected a `postgres://…` or `sqlite:…` URL",
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
        let mut store = Self {
            pool,
            backend,
            schema: Schema::Llmgate,
            clock: Clock::system(),
        };
        store.schema = store.pick_schema(choice).await?;
        if store.schema == Schema::Llmgate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Reads budget periods, expiries and row timestamps on `clock` (default: [`Clock::system`]).
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

    /// Which database this is.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `ours` in llmgate's schema, `litellm` (the same parameters) in LiteLLM's.
    fn pick(&self, ours: &'static str, litellm: &'static str) -> &'static str {
        match self.schema {
            Schema::Llmgate => ours,
            Schema::LiteLlm => litellm,
        }
    }

    /// Which tables this store uses.
    #[must_use]
    pub fn schema(&self) -> Schema {
        self.schema
    }

    /// Whether the database has a table of this name (PostgreSQL: in the connection's schema
    /// search path).
    async fn has_table(&self, name: &str) -> Result<bool, StoreError> {
        let sql = match self.backend {
            Backend::Postgres => "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM pg_catalog.pg_tables WHERE schemaname = ANY(current_schemas(false)) AND tablename = $1",
            Backend::Sqlite => "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = $1",
        };
        let row = sqlx::query(sql)
            .bind(name.to_owned())
            .fetch_one(&self.pool)
            .await
            .map_err(db("read the database's tables"))?;
        Ok(get::<i64>(&row, "n").unwrap_or(0) > 0)
    }

    async fn pick_schema(&self, choice: SchemaChoice) -> Result<Schema, StoreError> {
        if self.backend == Backend::Sqlite {
            return match choice {
                SchemaChoice::LiteLlm => Err(StoreError::msg(
                    "database_schema: litellm needs PostgreSQL (LiteLLM's schema is PostgreSQL's)",
                )),
                _ => Ok(Schema::Llmgate),
            };
        }
        let litellm = self.has_table("LiteLLM_VerificationToken").await?;
        let ours = self.has_table("llmgate_keys").await?;
        match (choice, litellm, ours) {
            (SchemaChoice::Llmgate, ..) => Ok(Schema::Llmgate),
            (SchemaChoice::LiteLlm, true, _) | (SchemaChoice::Auto, true, false) => {
                Ok(Schema::LiteLlm)
            }
            (SchemaChoice::LiteLlm, false, _) => Err(StoreError::msg(
                "database_schema: litellm, but the database has no LiteLLM_VerificationToken table (run LiteLLM's migrations first: `litellm-proxy-extras`)",
            )),
            (SchemaChoice::Auto, true, true) => Err(StoreError::msg(
                "database_schema: the database holds both LiteLLM's tables and llmgate's; set general_settings.database_schema to `litellm` or `llmgate`",
            )),
            (SchemaChoice::Auto, false, _) => Ok(Schema::Llmgate),
        }
    }

    /// Runs `sql` (statements split at `;`, `--` comment lines dropped): the DDL of a table of
    /// llmgate's own made on first use (on LiteLLM's schema, where no migration runs). On
    /// PostgreSQL under the migrations' advisory lock: two gateways (or two stores) making the
    /// same table at once would otherwise race in the catalogue (`CREATE TABLE IF NOT EXISTS` is
    /// not atomic there: "duplicate key value violates pg_type_typname_nsp_index").
    async fn create_own_tables(&self, sql: &str, context: &'static str) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db(context))?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_lock(7207007)")
                .execute(&mut *conn)
                .await
                .map_err(db(context))?;
        }
        let result = async {
            let sql: String = sql
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(sqlx::AssertSqlSafe(stmt))
                    .execute(&mut *conn)
                    .await
                    .map_err(db(context))?;
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
            // Every migration not applied yet, not only those above the highest applied: the
            // numbers are assigned to branches, so a database may have 10 before 6.
            let done: std::collections::HashSet<i64> =
                sqlx::query("SELECT CAST(version AS BIGINT) AS v FROM llmgate_migrations")
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db("migrations"))?
                    .iter()
                    .filter_map(|r| get::<i64>(r, "v"))
                    .collect();
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| !done.contains(v)) {
                let sql: String = sql
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n");
                for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    sqlx::query(sqlx::AssertSqlSafe(stmt))
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| StoreError::new(format!("migration {version}"), e))?;
                }
                sqlx::query("INSERT INTO llmgate_migrations (version, applied_at) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING")
                    .bind(*version)
                    .bind(self.clock.unix_ms())
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
}

impl KeyStore for Store {
    fn key_fresh<'a>(&'a self, token: &'a str) -> StoreFuture<'a, Option<KeyRow>> {
        Box::pin(Self::key_fresh(self, token))
    }

    fn team<'a>(&'a self, team_id: &'a str) -> StoreFuture<'a, Option<TeamRow>> {
        Box::pin(Self::team(self, team_id))
    }

    fn user<'a>(&'a self, user_id: &'a str) -> StoreFuture<'a, Option<UserRow>> {
        Box::pin(Self::user(self, user_id))
    }

    fn organization<'a>(&'a self, organization_id: &'a str) -> StoreFuture<'a, Option<OrgRow>> {
        Box::pin(Self::organization(self, organization_id))
    }

    fn end_user<'a>(&'a self, user_id: &'a str) -> StoreFuture<'a, Option<EndUserRow>> {
        Box::pin(Self::end_user(self, user_id))
    }

    fn team_member<'a>(
        &'a self,
        team_id: &'a str,
        user_id: &'a str,
    ) -> StoreFuture<'a, Option<TeamMemberRow>> {
        Box::pin(Self::team_member(self, team_id, user_id))
    }

    fn team_model_aliases<'a>(
        &'a self,
        team_id: &'a str,
    ) -> StoreFuture<'a, std::collections::HashMap<String, String>> {
        Box::pin(Self::team_model_aliases(self, team_id))
    }

    fn ping(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        Box::pin(Self::ping(self))
    }
}

impl SpendSink for Store {
    fn write_spend<'a>(&'a self, rows: &'a [SpendRow]) -> StoreFuture<'a, SpendTotals> {
        Box::pin(Self::write_spend(self, rows))
    }

    fn rewrite_spend<'a>(&'a self, rows: &'a [SpendRow]) -> StoreFuture<'a, SpendTotals> {
        Box::pin(Self::rewrite_spend(self, rows))
    }

    fn add_spend<'a>(&'a self, rows: &'a [SpendRow]) -> StoreFuture<'a, SpendTotals> {
        Box::pin(Self::add_spend(self, rows))
    }

    fn proxy_budget<'a>(
        &'a self,
        max_budget: f64,
        budget_duration: Option<&'a str>,
    ) -> StoreFuture<'a, BudgetState> {
        Box::pin(Self::proxy_budget(self, max_budget, budget_duration))
    }

    fn proxy_budget_state(&self) -> StoreFuture<'_, Option<BudgetState>> {
        Box::pin(Self::proxy_budget_state(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{hash_key, NewKey};

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

    /// Migration numbers are assigned per branch, so a database may hold a higher one before a
    /// lower one exists: every migration not recorded runs, not only those above the highest.
    #[tokio::test]
    async fn a_migration_below_the_highest_applied_still_runs() {
        let dir = std::env::temp_dir().join(format!("llmgate-mig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("m.db").display());
        let s = Store::connect(&url).await.unwrap();
        // As if migration 3 came from a branch merged after this database reached 10.
        sqlx::query("DELETE FROM llmgate_migrations WHERE version = 3")
            .execute(&s.pool)
            .await
            .unwrap();
        sqlx::query("DROP INDEX llmgate_spend_logs_user_start")
            .execute(&s.pool)
            .await
            .unwrap();
        s.pool.close().await;
        let s = Store::connect(&url).await.unwrap();
        let row = sqlx::query("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'index' AND name = 'llmgate_spend_logs_user_start'")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(get::<i64>(&row, "n"), Some(1));
        s.pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
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
}
