//! [`ResponseStore`]: the Responses API answers the gateway made itself (through the chat
//! bridge), kept for `previous_response_id`, `GET /v1/responses/{id}`, its `input_items` and
//! `DELETE`.
//!
//! A response is owned by the key that created it ([`owner_of`]: the SHA-256 of the presented
//! key, never the key): looking up or deleting it with another key finds nothing (the same 404 as
//! an unknown id, so ids do not leak across keys). Responses an OpenAI or Azure deployment made
//! natively are kept by that provider; the store keeps only a [`RelayedResponse`] for each: the
//! provider's id (unchanged), its owner, and the deployment (and model group) that made it, so
//! that `GET`/`DELETE`/`input_items`/`cancel` go to that deployment, for its owner alone.
//!
//! [`MemoryResponseStore`] keeps them in process memory, bounded by size and age: each stored
//! response holds the one it continues, so a conversation of `n` turns is `n` records sharing
//! their history, not `n²` copies.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::{StoreError, StoreFuture};
use crate::secret::Secret;

/// One stored response.
#[derive(Debug)]
#[non_exhaustive]
pub struct StoredResponse {
    /// `resp_…`.
    pub id: Arc<str>,
    /// [`owner_of`] the key that created it.
    pub owner: Arc<str>,
    /// The response object as the client got it.
    pub response: serde_json::Value,
    /// This turn's input items (with their ids), as `input_items` lists them.
    pub input: Vec<serde_json::Value>,
    /// This turn's output items.
    pub output: Vec<serde_json::Value>,
    /// The response this one continues (`previous_response_id`).
    pub previous: Option<Arc<Self>>,
    /// Unix seconds.
    pub created_at: u64,
}

impl StoredResponse {
    /// A record of `response` (its `input` and `output` items) owned by `owner`.
    #[must_use]
    pub fn new(
        id: Arc<str>,
        owner: Arc<str>,
        response: serde_json::Value,
        input: Vec<serde_json::Value>,
        output: Vec<serde_json::Value>,
        previous: Option<Arc<Self>>,
    ) -> Self {
        Self {
            id,
            owner,
            response,
            input,
            output,
            previous,
            created_at: now_secs(),
        }
    }

    /// The whole conversation up to and including this response, oldest first: each turn's
    /// input items, then its output items.
    #[must_use]
    pub fn conversation(&self) -> Vec<&serde_json::Value> {
        let mut turns = Vec::new();
        let mut at = Some(self);
        // Bounded by the chain's length; a chain is acyclic (a record holds only older ones).
        while let Some(r) = at {
            turns.push(r);
            at = r.previous.as_deref();
        }
        turns
            .into_iter()
            .rev()
            .flat_map(|r| r.input.iter().chain(r.output.iter()))
            .collect()
    }

    /// Approximate bytes held by this record alone (for the memory bound).
    fn weight(&self) -> u32 {
        let items: usize = self
            .input
            .iter()
            .chain(self.output.iter())
            .map(approx_len)
            .sum();
        u32::try_from(approx_len(&self.response) + items + 256).unwrap_or(u32::MAX)
    }
}

fn approx_len(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.len() + 2,
        serde_json::Value::Array(a) => a.iter().map(approx_len).sum::<usize>() + 2,
        serde_json::Value::Object(o) => o
            .iter()
            .map(|(k, v)| k.len() + 4 + approx_len(v))
            .sum::<usize>()
            .saturating_add(2),
        _ => 8,
    }
}

/// A response an OpenAI or Azure deployment made, relayed: who may reach it and where it lives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayedResponse {
    /// The provider's id, byte for byte.
    pub id: Arc<str>,
    /// [`owner_of`] the key whose call made it.
    pub owner: Arc<str>,
    /// The id of the deployment that made it.
    pub deployment: Arc<str>,
    /// The model group the call went through.
    pub group: Arc<str>,
    /// Unix seconds.
    pub created_at: u64,
}

impl RelayedResponse {
    /// A record of response `id`, made by `deployment` of `group` for `owner`, now.
    #[must_use]
    pub fn new(id: Arc<str>, owner: Arc<str>, deployment: Arc<str>, group: Arc<str>) -> Self {
        Self {
            id,
            owner,
            deployment,
            group,
            created_at: now_secs(),
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The owner id of a presented key (its SHA-256, hex; `""` for a caller without a key).
#[must_use]
pub fn owner_of(key: Option<&Secret>) -> Arc<str> {
    key.map_or_else(|| Arc::from(""), |k| Arc::from(super::hash_key(k.expose())))
}

/// Where the gateway keeps the responses it made. See the [module docs](self).
pub trait ResponseStore: fmt::Debug + Send + Sync + 'static {
    /// Keeps `response`. The write is done (visible to [`ResponseStore::get`]) by the time the
    /// future resolves; an in-memory store does it before it returns.
    fn put(&self, response: Arc<StoredResponse>) -> StoreFuture<'_, ()>;

    /// The response `id` if `owner` owns it.
    fn get<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
    ) -> StoreFuture<'a, Option<Arc<StoredResponse>>>;

    /// Deletes the response `id` if `owner` owns it; whether it did.
    fn delete<'a>(&'a self, id: &'a str, owner: &'a str) -> StoreFuture<'a, bool>;

    /// Records a response a provider made (relayed). Visible to
    /// [`ResponseStore::get_relayed`] once the future resolves.
    fn put_relayed(&self, response: RelayedResponse) -> StoreFuture<'_, ()>;

    /// The relayed response `id` if `owner` owns it.
    fn get_relayed<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
    ) -> StoreFuture<'a, Option<RelayedResponse>>;

    /// Whether a relayed response `id` is recorded for a key other than `owner` (so that a
    /// `previous_response_id` naming it is refused rather than passed to the provider).
    fn relayed_elsewhere<'a>(&'a self, id: &'a str, owner: &'a str) -> StoreFuture<'a, bool>;

    /// Forgets the relayed response `id` if `owner` owns it (after the provider deleted it);
    /// whether it did.
    fn delete_relayed<'a>(&'a self, id: &'a str, owner: &'a str) -> StoreFuture<'a, bool>;
}

/// A shared [`ResponseStore`].
pub type SharedResponseStore = Arc<dyn ResponseStore>;

/// [`ResponseStore`] in process memory, bounded by total size and by age (moka: no lock on the
/// read path). See the [module docs](self).
#[derive(Clone)]
pub struct MemoryResponseStore {
    cache: moka::sync::Cache<Arc<str>, Arc<StoredResponse>>,
    relayed: moka::sync::Cache<Arc<str>, RelayedResponse>,
}

impl fmt::Debug for MemoryResponseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryResponseStore")
            .field("entries", &self.cache.entry_count())
            .field("relayed", &self.relayed.entry_count())
            .finish()
    }
}

impl Default for MemoryResponseStore {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_BYTES, Self::DEFAULT_TTL)
    }
}

impl MemoryResponseStore {
    /// Default bound on the bytes kept: 64 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
    /// Default age after which a response is forgotten: 24 hours.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

    /// Default bound on the relayed responses remembered (about 200 bytes each).
    pub const DEFAULT_MAX_RELAYED: u64 = 200_000;
    /// How long a relayed response is remembered: 30 days, as long as OpenAI keeps one.
    pub const RELAYED_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

    /// A store keeping at most about `max_bytes` of responses, each for `ttl` (and up to
    /// [`Self::DEFAULT_MAX_RELAYED`] relayed responses for [`Self::RELAYED_TTL`]).
    #[must_use]
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, r: &Arc<StoredResponse>| r.weight())
                .time_to_live(ttl)
                .build(),
            relayed: moka::sync::Cache::builder()
                .max_capacity(Self::DEFAULT_MAX_RELAYED)
                .time_to_live(Self::RELAYED_TTL)
                .build(),
        }
    }

    fn owned(&self, id: &str, owner: &str) -> Option<Arc<StoredResponse>> {
        self.cache.get(id).filter(|r| &*r.owner == owner)
    }
}

impl ResponseStore for MemoryResponseStore {
    fn put(&self, response: Arc<StoredResponse>) -> StoreFuture<'_, ()> {
        self.cache.insert(response.id.clone(), response);
        Box::pin(std::future::ready(Ok(())))
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
    ) -> StoreFuture<'a, Option<Arc<StoredResponse>>> {
        Box::pin(std::future::ready(Ok(self.owned(id, owner))))
    }

    fn delete<'a>(&'a self, id: &'a str, owner: &'a str) -> StoreFuture<'a, bool> {
        let found = self.owned(id, owner).is_some();
        if found {
            self.cache.invalidate(id);
        }
        Box::pin(std::future::ready(Ok::<_, StoreError>(found)))
    }

    fn put_relayed(&self, response: RelayedResponse) -> StoreFuture<'_, ()> {
        self.relayed.insert(response.id.clone(), response);
        Box::pin(std::future::ready(Ok(())))
    }

    fn get_relayed<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
    ) -> StoreFuture<'a, Option<RelayedResponse>> {
        let found = self.relayed.get(id).filter(|r| &*r.owner == owner);
        Box::pin(std::future::ready(Ok(found)))
    }

    fn relayed_elsewhere<'a>(&'a self, id: &'a str, owner: &'a str) -> StoreFuture<'a, bool> {
        let other = self.relayed.get(id).is_some_and(|r| &*r.owner != owner);
        Box::pin(std::future::ready(Ok::<_, StoreError>(other)))
    }

    fn delete_relayed<'a>(&'a self, id: &'a str, owner: &'a str) -> StoreFuture<'a, bool> {
        let found = self.relayed.get(id).is_some_and(|r| &*r.owner == owner);
        if found {
            self.relayed.invalidate(id);
        }
        Box::pin(std::future::ready(Ok::<_, StoreError>(found)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(id: &str, owner: &str, prev: Option<Arc<StoredResponse>>) -> Arc<StoredResponse> {
        Arc::new(StoredResponse::new(
            id.into(),
            owner.into(),
            json!({"id": id}),
            vec![json!({"role": "user", "content": id})],
            vec![json!({"type": "message", "content": [{"type": "output_text", "text": id}]})],
            prev,
        ))
    }

    #[tokio::test]
    async fn the_owner_alone_reads_and_deletes() {
        let store = MemoryResponseStore::default();
        store.put(record("resp_1", "alice", None)).await.unwrap();
        assert!(store.get("resp_1", "alice").await.unwrap().is_some());
        assert!(store.get("resp_1", "bob").await.unwrap().is_none());
        assert!(!store.delete("resp_1", "bob").await.unwrap());
        assert!(store.get("resp_1", "alice").await.unwrap().is_some());
        assert!(store.delete("resp_1", "alice").await.unwrap());
        assert!(store.get("resp_1", "alice").await.unwrap().is_none());
        assert!(!store.delete("resp_1", "alice").await.unwrap());
    }

    #[tokio::test]
    async fn a_relayed_response_is_its_owners_alone() {
        let store = MemoryResponseStore::default();
        let r = RelayedResponse::new("resp_x".into(), "alice".into(), "dep1".into(), "g".into());
        store.put_relayed(r.clone()).await.unwrap();
        assert_eq!(store.get_relayed("resp_x", "alice").await.unwrap(), Some(r));
        assert_eq!(store.get_relayed("resp_x", "bob").await.unwrap(), None);
        assert!(store.relayed_elsewhere("resp_x", "bob").await.unwrap());
        assert!(!store.relayed_elsewhere("resp_x", "alice").await.unwrap());
        assert!(!store
            .relayed_elsewhere("resp_unknown", "bob")
            .await
            .unwrap());
        // Not a response the gateway made itself.
        assert!(store.get("resp_x", "alice").await.unwrap().is_none());
        assert!(!store.delete_relayed("resp_x", "bob").await.unwrap());
        assert!(store.delete_relayed("resp_x", "alice").await.unwrap());
        assert_eq!(store.get_relayed("resp_x", "alice").await.unwrap(), None);
    }

    #[test]
    fn a_conversation_is_every_turn_oldest_first() {
        let one = record("a", "o", None);
        let two = record("b", "o", Some(one));
        let three = record("c", "o", Some(two));
        let texts: Vec<String> = three.conversation().iter().map(|v| v.to_string()).collect();
        assert_eq!(texts.len(), 6);
        assert!(
            texts[0].contains("\"a\"") && texts[5].contains("\"c\""),
            "{texts:?}"
        );
    }

    #[test]
    fn owners_are_key_hashes_and_differ_by_key() {
        let a = owner_of(Some(&Secret::new("sk-a")));
        let b = owner_of(Some(&Secret::new("sk-b")));
        assert_ne!(a, b);
        assert!(!a.contains("sk-a"));
        assert_eq!(&*owner_of(None), "");
    }

    #[test]
    fn the_memory_bound_evicts() {
        let store = MemoryResponseStore::new(4096, Duration::from_secs(60));
        for i in 0..200 {
            store.cache.insert(
                Arc::from(format!("r{i}")),
                record(&format!("r{i}"), "o", None),
            );
        }
        store.cache.run_pending_tasks();
        assert!(
            store.cache.weighted_size() <= 4096,
            "{}",
            store.cache.weighted_size()
        );
    }
}
