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

/// [`ResponseStore`] in the SQL database: bridged conversations and relayed-response records in
/// one table, `llmgate_responses`, owner-checked and kept 30 days. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqlResponseStore {
    store: Store,
    /// Records being written, until they are in the database.
    pending: moka::sync::Cache<Arc<str>, Arc<StoredResponse>>,
    pending_relayed: moka::sync::Cache<Arc<str>, RelayedResponse>,
    /// Ids deleted while their write was under way: deleted again once it lands.
    tombstones: moka::sync::Cache<Arc<str>, ()>,
    tombstones_relayed: moka::sync::Cache<Arc<str>, ()>,
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
            tombstones_relayed: small_cache(),
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
            .get_or_try_init(|| {
                self.store
                    .create_own_tables(MIGRATION, "create llmgate_responses")
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
            if self.tombstones_relayed.remove(&response.id).is_some() {
                sqlx::query(DELETE_RELAYED)
                    .bind(response.id.to_string())
                    .bind(response.owner.to_string())
                    .bind(secs(self.now()))
                    .execute(&self.store.pool)
                    .await
                    .map_err(db("forget a relayed response"))?;
            }
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
            let pending = self.pending_relayed.get(id).filter(|r| *r.owner == *owner);
            if let Some(r) = &pending {
                self.tombstones_relayed.insert(r.id.clone(), ());
                self.pending_relayed.invalidate(id);
            }
            self.ensure_table().await?;
            let res = sqlx::query(DELETE_RELAYED)
                .bind(id.to_owned())
                .bind(owner.to_owned())
                .bind(secs(self.now()))
                .execute(&self.store.pool)
                .await
                .map_err(db("forget a relayed response"))?;
            Ok(res.rows_affected() > 0 || pending.is_some())
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::clock::Clock;

    fn record(id: &str, owner: &str, prev: Option<Arc<StoredResponse>>) -> Arc<StoredResponse> {
        Arc::new(StoredResponse::new(
            id.into(),
            owner.into(),
            json!({"id": id, "object": "response"}),
            vec![json!({"role": "user", "content": id})],
            vec![json!({"type": "message", "content": [{"type": "output_text", "text": id}]})],
            prev,
        ))
    }

    /// Two stores on one database, as two gateways: what one writes, the other reads.
    async fn two(clock: &Clock) -> (SqlResponseStore, SqlResponseStore) {
        let store = Store::connect("sqlite::memory:")
            .await
            .unwrap()
            .with_clock(clock.clone());
        (
            SqlResponseStore::new(store.clone()),
            SqlResponseStore::new(store),
        )
    }

    async fn rows(s: &SqlResponseStore) -> i64 {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM llmgate_responses")
            .fetch_one(&s.store.pool)
            .await
            .unwrap();
        get::<i64>(&row, "n").unwrap()
    }

    #[tokio::test]
    async fn the_owner_alone_reads_and_deletes_across_gateways() {
        let (a, b) = two(&Clock::system()).await;
        a.put(record("resp_1", "alice", None)).await.unwrap();
        assert!(a.pending.get("resp_1").is_none(), "written, not pending");
        let got = b.get("resp_1", "alice").await.unwrap().unwrap();
        assert_eq!(got.response["id"], "resp_1");
        assert_eq!(&*got.owner, "alice");
        assert!(b.get("resp_1", "bob").await.unwrap().is_none());
        assert!(!b.delete("resp_1", "bob").await.unwrap());
        assert!(a.get("resp_1", "alice").await.unwrap().is_some());
        assert!(b.delete("resp_1", "alice").await.unwrap());
        assert!(a.get("resp_1", "alice").await.unwrap().is_none());
        assert!(!a.delete("resp_1", "alice").await.unwrap());
        assert!(b.get("resp_unknown", "alice").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_conversation_is_read_whole_by_another_gateway() {
        let (a, b) = two(&Clock::system()).await;
        let one = record("r1", "o", None);
        a.put(one.clone()).await.unwrap();
        let two = record("r2", "o", Some(one));
        a.put(two.clone()).await.unwrap();
        a.put(record("r3", "o", Some(two))).await.unwrap();
        let three = b.get("r3", "o").await.unwrap().unwrap();
        let texts: Vec<String> = three.conversation().iter().map(|v| v.to_string()).collect();
        assert_eq!(texts.len(), 6, "{texts:?}");
        assert!(texts[0].contains("\"r1\""), "{texts:?}");
        assert!(texts[3].contains("\"r2\""), "{texts:?}");
        assert!(texts[5].contains("\"r3\""), "{texts:?}");
        // Deleting an earlier turn hides it, not the conversation that continues it.
        assert!(b.delete("r1", "o").await.unwrap());
        assert!(a.get("r1", "o").await.unwrap().is_none());
        assert_eq!(
            a.get("r3", "o")
                .await
                .unwrap()
                .unwrap()
                .conversation()
                .len(),
            6
        );
    }

    #[tokio::test]
    async fn a_write_under_way_is_seen_by_its_gateway_and_a_delete_wins() {
        let (a, b) = two(&Clock::system()).await;
        let put = a.put(record("r1", "o", None));
        // Not polled yet: nothing is in the database, but this gateway finds it.
        assert!(a.get("r1", "o").await.unwrap().is_some());
        assert!(a.get("r1", "x").await.unwrap().is_none());
        assert!(a.delete("r1", "o").await.unwrap());
        put.await.unwrap();
        assert!(a.get("r1", "o").await.unwrap().is_none());
        assert!(b.get("r1", "o").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_relayed_response_is_its_owners_alone() {
        let (a, b) = two(&Clock::system()).await;
        let r = RelayedResponse::new("resp_x".into(), "alice".into(), "dep1".into(), "g".into());
        a.put_relayed(r.clone()).await.unwrap();
        assert_eq!(b.get_relayed("resp_x", "alice").await.unwrap(), Some(r));
        assert_eq!(b.get_relayed("resp_x", "bob").await.unwrap(), None);
        assert!(b.relayed_elsewhere("resp_x", "bob").await.unwrap());
        assert!(!b.relayed_elsewhere("resp_x", "alice").await.unwrap());
        assert!(!b.relayed_elsewhere("resp_unknown", "bob").await.unwrap());
        // Not a response the gateway made itself.
        assert!(b.get("resp_x", "alice").await.unwrap().is_none());
        assert!(!b.delete_relayed("resp_x", "bob").await.unwrap());
        assert!(b.delete_relayed("resp_x", "alice").await.unwrap());
        assert_eq!(a.get_relayed("resp_x", "alice").await.unwrap(), None);
        assert!(!a.relayed_elsewhere("resp_x", "bob").await.unwrap());
    }

    /// Fail closed: a database that cannot answer is an error (the route's 503), never "not
    /// found" (which would pass another key's relayed id on to the provider).
    #[tokio::test]
    async fn an_unreachable_database_is_an_error_not_an_absence() {
        let (a, _) = two(&Clock::system()).await;
        a.store.pool.close().await;
        assert!(a.get("r1", "o").await.is_err());
        assert!(a.get_relayed("r1", "o").await.is_err());
        assert!(a.relayed_elsewhere("r1", "o").await.is_err());
        assert!(a.delete("r1", "o").await.is_err());
        assert!(a.put(record("r1", "o", None)).await.is_err());
        // A failed write is not kept as pending either.
        assert!(a.pending.get("r1").is_none());
    }

    #[tokio::test]
    async fn responses_expire_after_30_days_and_are_cleaned_up_once_no_turn_needs_them() {
        let clock = Clock::manual();
        let (a, b) = two(&clock).await;
        let one = record("r1", "o", None);
        a.put(one.clone()).await.unwrap();
        a.put_relayed(RelayedResponse::new(
            "rx".into(),
            "o".into(),
            "d".into(),
            "g".into(),
        ))
        .await
        .unwrap();
        clock.advance(Duration::from_secs(20 * 86_400));
        a.put(record("r2", "o", Some(one))).await.unwrap();
        clock.advance(Duration::from_secs(15 * 86_400));
        // r1 and rx are 35 days old: gone; r2 (15 days) still holds r1 as its first turn.
        assert!(b.get("r1", "o").await.unwrap().is_none());
        assert!(b.get_relayed("rx", "o").await.unwrap().is_none());
        let r2 = b.get("r2", "o").await.unwrap().unwrap();
        assert_eq!(r2.conversation().len(), 4);
        // A write cleans up: rx goes, r1 stays (r2 continues it).
        b.put(record("r3", "o", None)).await.unwrap();
        assert_eq!(rows(&b).await, 3);
        // 31 days on, r2 and r3 expire and go; then r1, which nothing continues any more.
        clock.advance(Duration::from_secs(31 * 86_400));
        assert!(b.get("r2", "o").await.unwrap().is_none());
        b.put(record("r4", "o", None)).await.unwrap();
        clock.advance(Duration::from_secs(61));
        b.put(record("r5", "o", None)).await.unwrap();
        assert_eq!(rows(&b).await, 2, "r4 and r5 remain");
    }
}
