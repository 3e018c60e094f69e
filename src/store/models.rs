//! Models kept in the database (`general_settings.store_model_in_db: true`): [`ModelStore`] and
//! its rows, with an in-memory implementation ([`InMemoryModels`]); the SQL one is in
//! `store/sql/models.rs` (table `llmgate_models`, created on first use).
//!
//! A row is a `model_list` entry as `/model/new` received it (`litellm_params` with its
//! `os.environ/` references unresolved: every replica resolves them in its own environment),
//! under a `model_id`. Replicas read the whole table every few seconds
//! ([`LiveModels::watch`](crate::gateway::LiveModels::watch)): the table is small and the read is
//! off the request path.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Map, Value};

use super::{
    model_crypto::{literal_secret, seal, SaltKey, SealError},
    StoreError, StoreFuture,
};

/// One model kept in the database.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ModelRow {
    /// The deployment id (`model_info.id`).
    pub model_id: String,
    /// The model group.
    pub model_name: String,
    /// `litellm_params`, as given (secrets included: the API answers mask them).
    pub litellm_params: Map<String, Value>,
    /// `model_info`, as given.
    pub model_info: Map<String, Value>,
    /// Who added it (the caller's user id, or `default_user_id` for the master key).
    pub created_by: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// Where the models of `store_model_in_db` are kept. Boxed futures so it can be a trait object.
pub trait ModelStore: Send + Sync + std::fmt::Debug + 'static {
    /// Every model, ordered by creation (then id).
    fn list_models(&self) -> StoreFuture<'_, Vec<ModelRow>>;

    /// Adds `row`; an existing `model_id` is an error.
    fn insert_model<'a>(&'a self, row: &'a ModelRow) -> StoreFuture<'a, ()>;

    /// Replaces the row with `row.model_id`; `false` when there is none.
    fn update_model<'a>(&'a self, row: &'a ModelRow) -> StoreFuture<'a, bool>;

    /// Deletes the row; `false` when there is none.
    fn delete_model<'a>(&'a self, model_id: &'a str) -> StoreFuture<'a, bool>;

    /// Whether `params` can be stored: [`EncryptedModels`] refuses a literal credential when it
    /// has no key to encrypt it with. Every `litellm_params` is accepted by default.
    ///
    /// # Errors
    /// The parameter that cannot be stored, and why.
    fn check_params(&self, params: &Map<String, Value>) -> Result<(), SealError> {
        let _ = params;
        Ok(())
    }
}

impl<T: ModelStore + ?Sized> ModelStore for Arc<T> {
    fn list_models(&self) -> StoreFuture<'_, Vec<ModelRow>> {
        (**self).list_models()
    }
    fn insert_model<'a>(&'a self, row: &'a ModelRow) -> StoreFuture<'a, ()> {
        (**self).insert_model(row)
    }
    fn update_model<'a>(&'a self, row: &'a ModelRow) -> StoreFuture<'a, bool> {
        (**self).update_model(row)
    }
    fn delete_model<'a>(&'a self, model_id: &'a str) -> StoreFuture<'a, bool> {
        (**self).delete_model(model_id)
    }
    fn check_params(&self, params: &Map<String, Value>) -> Result<(), SealError> {
        (**self).check_params(params)
    }
}

/// A [`ModelStore`] whose rows keep `litellm_params` encrypted as LiteLLM keeps them (see
/// `store::model_crypto`): every string value sealed on the way in, opened on the way out (a
/// value that is no box, such as a row stored before, is read as it is). Without a key, a row
/// with a literal credential is refused (fail closed); one with only `os.environ/` references
/// is stored as it is.
#[derive(Debug)]
pub struct EncryptedModels<S> {
    inner: S,
    key: Option<SaltKey>,
}

impl<S: ModelStore> EncryptedModels<S> {
    /// `inner` with `key` (`None`: no salt key and no master key).
    pub fn new(inner: S, key: Option<SaltKey>) -> Self {
        Self { inner, key }
    }

    fn sealed(&self, row: &ModelRow) -> Result<ModelRow, StoreError> {
        let litellm_params = seal(self.key.as_ref(), &row.litellm_params)
            .map_err(|e| StoreError::msg(e.to_string()))?;
        Ok(ModelRow {
            litellm_params,
            ..row.clone()
        })
    }
}

impl<S: ModelStore> ModelStore for EncryptedModels<S> {
    fn list_models(&self) -> StoreFuture<'_, Vec<ModelRow>> {
        Box::pin(async move {
            let mut rows = self.inner.list_models().await?;
            if let Some(k) = &self.key {
                for r in &mut rows {
                    r.litellm_params = k.open_params(&r.litellm_params);
                }
            }
            Ok(rows)
        })
    }

    fn insert_model<'a>(&'a self, row: &'a ModelRow) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let sealed = self.sealed(row)?;
            self.inner.insert_model(&sealed).await
        })
    }

    fn update_model<'a>(&'a self, row: &'a ModelRow) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let sealed = self.sealed(row)?;
            self.inner.update_model(&sealed).await
        })
    }

    fn delete_model<'a>(&'a self, model_id: &'a str) -> StoreFuture<'a, bool> {
        self.inner.delete_model(model_id)
    }

    fn check_params(&self, params: &Map<String, Value>) -> Result<(), SealError> {
        match &self.key {
            Some(_) => Ok(()),
            None => literal_secret(params).map_or(Ok(()), |param| Err(SealError { param })),
        }
    }
}

/// [`ModelStore`] in process memory (tests, a library user without a database).
#[derive(Debug, Default)]
pub struct InMemoryModels {
    rows: Mutex<Vec<ModelRow>>,
    clock: crate::clock::Clock,
}

impl InMemoryModels {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Stamps `updated_at` on `clock` (default: [`Clock::system`](crate::clock::Clock::system)).
    #[must_use]
    pub fn with_clock(mut self, clock: crate::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Vec<ModelRow>> {
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ModelStore for InMemoryModels {
    fn list_models(&self) -> StoreFuture<'_, Vec<ModelRow>> {
        let rows = self.rows().clone();
        Box::pin(async move { Ok(rows) })
    }

    fn insert_model<'a>(&'a self, row: &'a ModelRow) -> StoreFuture<'a, ()> {
        let result = {
            let mut rows = self.rows();
            if rows.iter().any(|r| r.model_id == row.model_id) {
                Err(StoreError::msg("a model with this id exists"))
            } else {
                rows.push(row.clone());
                Ok(())
            }
        };
        Box::pin(async move { result })
    }

    fn update_model<'a>(&'a self, row: &'a ModelRow) -> StoreFuture<'a, bool> {
        let found = {
            let mut rows = self.rows();
            match rows.iter_mut().find(|r| r.model_id == row.model_id) {
                Some(r) => {
                    *r = ModelRow {
                        updated_at: self.clock.unix_ms(),
                        ..row.clone()
                    };
                    true
                }
                None => false,
            }
        };
        Box::pin(async move { Ok(found) })
    }

    fn delete_model<'a>(&'a self, model_id: &'a str) -> StoreFuture<'a, bool> {
        let found = {
            let mut rows = self.rows();
            let before = rows.len();
            rows.retain(|r| r.model_id != model_id);
            rows.len() != before
        };
        Box::pin(async move { Ok(found) })
    }
}

/// The behaviour both implementations share (ids unique per run: a shared database may hold
/// other rows).
#[cfg(test)]
pub(super) async fn conformance(store: &dyn ModelStore) {
    let run = format!("{:016x}", fastrand::u64(..));
    let (id1, id2) = (format!("m1-{run}"), format!("m2-{run}"));
    let row = |id: &str, name: &str| ModelRow {
        model_id: id.to_owned(),
        model_name: name.to_owned(),
        litellm_params: serde_json::json!({"model": "mock/x", "api_key": "sk-secret-123456"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        model_info: Map::new(),
        created_by: Some("admin".to_owned()),
        created_at: 1,
        updated_at: 1,
    };
    let mine = |rows: Vec<ModelRow>| -> Vec<ModelRow> {
        rows.into_iter()
            .filter(|r| r.model_id.ends_with(&run))
            .collect()
    };
    store.insert_model(&row(&id1, "a")).await.expect("insert");
    assert!(
        store.insert_model(&row(&id1, "b")).await.is_err(),
        "duplicate id"
    );
    store.insert_model(&row(&id2, "b")).await.expect("insert");
    let all = mine(store.list_models().await.expect("list"));
    assert_eq!(all.len(), 2);
    let m1 = all.iter().find(|r| r.model_id == id1).expect("m1 listed");
    assert_eq!(m1.litellm_params["api_key"], "sk-secret-123456");
    assert_eq!(m1.created_by.as_deref(), Some("admin"));
    let mut changed = row(&id1, "renamed");
    changed.updated_at = 2;
    assert!(store.update_model(&changed).await.expect("update"));
    assert!(!store
        .update_model(&row(&format!("nope-{run}"), "x"))
        .await
        .expect("update"));
    let all = mine(store.list_models().await.expect("list"));
    let m1 = all.iter().find(|r| r.model_id == id1).expect("m1 listed");
    assert_eq!(m1.model_name, "renamed");
    assert!(store.delete_model(&id1).await.expect("delete"));
    assert!(!store.delete_model(&id1).await.expect("delete"));
    assert_eq!(mine(store.list_models().await.expect("list")).len(), 1);
    assert!(store.delete_model(&id2).await.expect("delete"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_models_behave() {
        conformance(&InMemoryModels::new()).await;
        conformance(&EncryptedModels::new(
            InMemoryModels::new(),
            Some(SaltKey::new("s")),
        ))
        .await;
    }

    #[tokio::test]
    async fn encrypted_models_keep_no_plaintext_and_refuse_literals_without_a_key() {
        let inner = Arc::new(InMemoryModels::new());
        let store = EncryptedModels::new(inner.clone(), Some(SaltKey::new("salt")));
        let row = ModelRow {
            model_id: "m".into(),
            model_name: "g".into(),
            litellm_params: serde_json::json!({"model": "openai/x", "api_key": "sk-secret-999"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..ModelRow::default()
        };
        store.insert_model(&row).await.expect("insert");
        let raw = inner.list_models().await.expect("list");
        let text = serde_json::to_string(&raw).expect("json");
        assert!(
            !text.contains("sk-secret-999") && !text.contains("openai/x"),
            "{text}"
        );
        assert_eq!(store.list_models().await.expect("list"), vec![row.clone()]);
        // No key: the literal is refused, a reference is stored.
        let keyless = EncryptedModels::new(InMemoryModels::new(), None);
        assert!(keyless.check_params(&row.litellm_params).is_err());
        assert!(keyless.insert_model(&row).await.is_err());
        assert!(keyless.list_models().await.expect("list").is_empty());
        let mut by_ref = row.clone();
        by_ref
            .litellm_params
            .insert("api_key".into(), "os.environ/OPENAI_API_KEY".into());
        assert!(keyless.check_params(&by_ref.litellm_params).is_ok());
        keyless
            .insert_model(&by_ref)
            .await
            .expect("a reference is stored");
    }
}
