//! [`SqlResponseStore`]: the [`ResponseStore`] in the SQL database, shared by every gateway on
//! it and kept across restarts.
//!
//! One table, `llmgate_responses` (migration 0007 in llmgate's schema; on LiteLLM's database,
//! whose tables llmgate does not alter, the same table of llmgate's own is created on first use
//! with `CREATE TABLE IF NOT EXISTS`): a row per response the gateway made through the chat
//! bridge (kind `made`: the response object, this turn's input and output items, the id it
//! continues) and per response an OpenAI or Azure deployment made (kind `relayed`: the
//! deployment and model group). Each row has its owner (the SHA-256 of the key, never the key)
//! and is found for that owner alone, as in the [`MemoryResponseStore`].
//!
//! A row lives [`SqlResponseStore::TTL`] (30 days, as long as OpenAI keeps a response): reads
//! skip expired rows, and a write deletes expired rows at most once a minute, each only once no
//! later turn of its conversation refers to it (so a conversation stays whole while its last
//! turn is alive, as the in-memory store's chain of records does). `DELETE` hides a response at
//! once; its row goes with that clean-up.
//!
//! Writes are bookkeeping (the bridge and the relay finish them off the request path). Until a
//! write has landed, this process answers from the record it is writing (`pending`), so a
//! `previous_response_id` sent right after the answer finds it here; other gateways find it
//! once it is in the database.
//!
//! [`MemoryResponseStore`]: crate::store::responses::MemoryResponseStore

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use serde_json::Value;
use sqlx::any::AnyRow;

use super::{db, get, Schema, Store};
use crate::store::{
    responses::{MemoryResponseStore, RelayedResponse, ResponseStore, StoredResponse},
    StoreError, StoreFuture,
};

const MIGRATION: &str = include_str!("migrations/0007_responses.sql");

const UPSERT: &str = "INSERT INTO llmgate_responses (id, kind, owner, response, input, output, previous_id, deployment, model_group, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id, kind) DO UPDATE SET owner = excluded.owner, response = excluded.response, input = excluded.input, output = excluded.output, previous_id = excluded.previous_id, deployment = excluded.deployment, model_group = excluded.model_group, created_at = excluded.created_at, expires_at = excluded.expires_at";

/// The response `$1` of owner `$2`, alive at `$3`, and every turn before it (which may have
/// expired or been deleted: the later turn still holds them), newest first.
const CHAIN: &str = "WITH RECURSIVE chain (id, owner, response, input, output, previous_id, created_at, depth) AS (SELECT id, owner, response, input, output, previous_id, created_at, CAST(0 AS BIGINT) FROM llmgate_responses WHERE id = $1 AND kind = 'made' AND owner = $2 AND expires_at > $3 UNION ALL SELECT r.id, r.owner, r.response, r.input, r.output, r.previous_id, r.created_at, c.depth + 1 FROM llmgate_responses r JOIN chain c ON r.id = c.previous_id AND r.kind = 'made' AND r.owner = c.owner WHERE c.depth < 100000) SELECT id, owner, response, input, output, previous_id, created_at, depth FROM chain ORDER BY depth";

const HIDE: &str = "UPDATE llmgate_responses SET expires_at = 0 WHERE id = $1 AND kind = 'made' AND owner = $2 AND expires_at > $3";

const RELAYED: &str = "SELECT id, owner, deployment, model_group, created_at FROM llmgate_responses WHERE id = $1 AND kind = 'relayed' AND expires_at > $2";

const DELETE_RELAYED: &str = "DELETE FROM llmgate_responses WHERE id = $1 AND kind = 'relayed' AND owner = $2 AND expires_at > $3";

/// Expired rows no live turn continues.
const PURGE: &str = "DELETE FROM llmgate_responses WHERE expires_at <= $1 AND NOT EXISTS (SELECT 1 FROM llmgate_responses c WHERE c.kind = 'made' AND c.previous_id = llmgate_responses.id AND c.owner = llmgate_responses.owner)";

/// [`ResponseStore`] in the SQL database. See the [module docs](self). Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqlResponseStore {
    store: Store,
    /// Records being written, until they are in the database.
    pending: moka::sync::Cache<Arc<str>, Arc<StoredResponse>>,
    pending_relayed: moka::sync::Cache<Arc<str>, RelayedResponse>,
    /// Ids deleted while their write was under way: deleted again once it lands.
    tombstones: moka::sync::Cache<Arc<str>, ()>,
    /// LiteLLM's schema: the table was created (once per store).
    table: Arc<tokio::sync::OnceCell<()>>,
    /// Unix seconds of the last clean-up.
    last_purge: Arc<AtomicU64>,
}

fn small_cache<V: Clone + Send + Sync + 'static>() -> moka::sync::Cache<Arc<str>, V> {
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(Duration::from_secs(120))
        .build()
}

fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn json_text(v: &impl serde::Serialize) -> Option<String> {
    serde_json::to_string(v).ok()
}

fn parse_items(s: Option<String>) -> Vec<Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

impl SqlResponseStore {
    /// How long a response is kept: 30 days.
    pub const TTL: Duration = MemoryResponseStore::RELAYED_TTL;
    /// The least time between two clean-ups of expired rows.
    const PURGE_EVERY: u64 = 60;

    /// The response store over `store`'s database.
    #[must_use]
    pub fn new(store: Store) -> Self {
        Self {
            store,
            pending: small_cache(),
            pending_relayed: small_cache(),
            tombstones: small_cache(),
            table: Arc::new(tokio::sync::OnceCell::new()),
            last_purge: Arc::new(AtomicU64::new(0)),
        }
    }

    fn now(&self) -> u64 {
        self.store.clock().unix_secs()
    }

    fn expires(&self) -> i64 {
        secs(self.now().saturating_add(Self::TTL.as_secs()))
    }

    /// In llmgate's schema the migration made the table; in LiteLLM's it is made here, once.
    async fn ensure_table(&self) -> Result<(), StoreError> {
        if self.store.schema() != Schema::LiteLlm {
            return Ok(());
        }
        self.table
            .get_or_try_init(|| async {
                let sql: String = MIGRATION
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n");
                for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    sqlx::query(sqlx::AssertSqlSafe(stmt))
                        .execute(&self.store.pool)
                        .await
                        .map_err(db("create llmgate_responses"))?;
                }
                Ok::<_, StoreError>(())
            })
            .await
            .map(drop)
    }

    async fn upsert(&self, r: &StoredResponse) -> Result<(), StoreError> {
        self.ensure_table().await?;
        sqlx::query(UPSERT)
            .bind(r.id.to_string())
            .bind("made")
            .bind(r.owner.to_string())
            .bind(json_text(&r.response))
            .bind(json_text(&r.input))
            .bind(json_text(&r.output))
            .bind(r.previous.as_ref().map(|p| p.id.to_string()))
            .bind(None::<String>)
            .bind(None::<String>)
            .bind(secs(r.created_at))
            .bind(self.expires())
            .execute(&self.store.pool)
            .await
            .map_err(db("keep a response"))?;
        Ok(())
    }

    async fn upsert_relayed(&self, r: &RelayedResponse) -> Result<(), StoreError> {
        self.ensure_table().await?;
        sqlx::query(UPSERT)
            .bind(r.id.to_string())
            .bind("relayed")
            .bind(r.owner.to_string())
            .bind(None::<String>)
            .bind(None::<String>)
            .bind(None::<String>)
            .bind(None::<String>)
            .bind(r.deployment.to_string())
            .bind(r.group.to_string())
            .bind(secs(r.created_at))
            .bind(self.expires())
            .execute(&self.store.pool)
            .await
            .map_err(db("record a relayed response"))?;
        Ok(())
    }

    /// Deletes expired rows no live turn continues, at most once a [`Self::PURGE_EVERY`].
    async fn purge(&self) -> Result<(), StoreError> {
        let now = self.now();
        let last = self.last_purge.load(Ordering::Relaxed);
        if now.saturating_sub(last) < Self::PURGE_EVERY
            || self
                .last_purge
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        sqlx::query(PURGE)
            .bind(secs(now))
            .execute(&self.store.pool)
            .await
            .map_err(db("delete expired responses"))?;
        Ok(())
    }

    async fn load(&self, id: &str, owner: &str) -> Result<Option<Arc<StoredResponse>>, StoreError> {
        self.ensure_table().await?;
        let rows = sqlx::query(CHAIN)
            .bind(id.to_owned())
            .bind(owner.to_owned())
            .bind(secs(self.now()))
            .fetch_all(&self.store.pool)
            .await
            .map_err(db("read a response"))?;
        let Some(oldest) = rows.last() else {
            return Ok(None);
        };
        // A turn before the oldest row found may still be being written by this process.
        let mut previous = get::<String>(oldest, "previous_id")
            .and_then(|p| self.pending.get(p.as_str()))
            .filter(|p| *p.owner == *owner);
        for row in rows.iter().rev() {
            previous = Some(Arc::new(stored(row, previous)));
        }
        Ok(previous)
    }

    async fn relayed(&self, id: &str) -> Result<Option<RelayedResponse>, StoreError> {
        if let Some(r) = self.pending_relayed.get(id) {
            return Ok(Some(r));
        }
        self.ensure_table().await?;
        let row = sqlx::query(RELAYED)
            .bind(id.to_owned())
            .bind(secs(self.now()))
            .fetch_optional(&self.store.pool)
            .await
            .map_err(db("read a relayed response"))?;
        Ok(row.map(|row| RelayedResponse {
            id: Arc::from(get::<String>(&row, "id").unwrap_or_default()),
            owner: Arc::from(get::<String>(&row, "owner").unwrap_or_default()),
            deployment: Arc::from(get::<String>(&row, "deployment").unwrap_or_default()),
            group: Arc::from(get::<String>(&row, "model_group").unwrap_or_default()),
            created_at: get::<i64>(&row, "created_at")
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0),
        }))
    }
}

fn stored(row: &AnyRow, previous: Option<Arc<StoredResponse>>) -> StoredResponse {
    StoredResponse {
        id: Arc::from(get::<String>(row, "id").unwrap_or_default()),
        owner: Arc::from(get::<String>(row, "owner").unwrap_or_default()),
        response: get::<String>(row, "response")
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null),
        input: parse_items(get(row, "input")),
        output: parse_items(get(row, "output")),
        previous,
        created_at: get::<i64>(row, "created_at")
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(0),
    }
}

impl ResponseStore for SqlResponseStore {
    fn put(&self, response: Arc<StoredResponse>) -> StoreFuture<'_, ()> {
        // Visible to this process at once; to every gateway once the row is written.
        self.pending.insert(response.id.clone(), response.clone());
        Box::pin(async move {
            let written = self.upsert(&response).await;
            self.pending.invalidate(&response.id);
            if self.tombstones.remove(&response.id).is_some() {
                sqlx::query(HIDE)
                    .bind(response.id.to_string())
                    .bind(response.owner.to_string())
                    .bind(secs(self.now()))
                    .execute(&self.store.pool)
                    .await
                    .map_err(db("delete a response"))?;
            }
            written?;
            self.purge().await
        })
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
    ) -> StoreFuture<'a, Option<Arc<StoredResponse>>> {
        Box::pin(async move {
            if let Some(r) = self.pending.get(id) {
                return Ok((*r.owner == *owner).then_some(r));
            }
            self.load(id, owner).await
        })
    }

    fn delete<'a>(&'a self, id: &'a str, owner: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            if let Some(r) = self.pending.get(id) {
                if *r.owner != *owner {
                    return Ok(false);
                }
                self.tombstones.insert(r.id.clone(), ());
                self.pending.invalidate(id);
                return Ok(true);
            }
            self.ensure_table().await?;
            let res = sqlx::query(HIDE)
                .bind(id.to_owned())
                .bind(owner.to_owned())
                .bind(secs(self.now()))
                .execute(&self.store.pool)
                .await
                .map_err(db("delete a response"))?;
            Ok(res.rows_affected() > 0)
        })
    }

    fn put_relayed(&self, response: RelayedResponse) -> StoreFuture<'_, ()> {
        self.pending_relayed
            .insert(response.id.clone(), response.clone());
        Box::pin(async move {
            let written = self.upsert_relayed(&response).await;
            self.pending_relayed.invalidate(&response.id);
            written?;
            self.purge().await
        })
    }

    fn get_relayed<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
    ) -> StoreFuture<'a, Option<RelayedResponse>> {
        Box::pin(async move { Ok(self.relayed(id).await?.filter(|r| *r.owner == *owner)) })
    }

    fn relayed_elsewhere<'a>(&'a self, id: &'a str, owner: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move { Ok(self.relayed(id).await?.is_some_and(|r| *r.owner != *owner)) })
    }

    fn delete_relayed<'a>(&'a self, id: &'a str, owner: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let pending = self
                .pending_relayed
                .get(id)
                .is_some_and(|r| *r.owner == *owner);
            self.ensure_table().await?;
            let res = sqlx::query(DELETE_RELAYED)
                .bind(id.to_owned())
                .bind(owner.to_owned())
                .bind(secs(self.now()))
                .execute(&self.store.pool)
                .await
                .map_err(db("forget a relayed response"))?;
            Ok(res.rows_affected() > 0 || pending)
        })
    }
}
