//! [`ModelStore`] in SQL: table `llmgate_models`, created on first use (`CREATE TABLE IF NOT
//! EXISTS`, so it needs no migration number of its own), `litellm_params` and `model_info` as
//! JSON text.

use sqlx::any::AnyRow;

use super::{db, get, parse_map, proxy_models, Store};
use crate::store::{ModelRow, ModelStore, StoreError, StoreFuture};

const CREATE: &str = "CREATE TABLE IF NOT EXISTS llmgate_models (model_id TEXT PRIMARY KEY, model_name TEXT NOT NULL, litellm_params TEXT NOT NULL, model_info TEXT NOT NULL, created_by TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)";

fn model_row(row: &AnyRow) -> ModelRow {
    ModelRow {
        model_id: get(row, "model_id").unwrap_or_default(),
        model_name: get(row, "model_name").unwrap_or_default(),
        litellm_params: parse_map(get(row, "litellm_params")),
        model_info: parse_map(get(row, "model_info")),
        created_by: get(row, "created_by"),
        created_at: get(row, "created_at").unwrap_or(0),
        updated_at: get(row, "updated_at").unwrap_or(0),
    }
}

impl Store {
    async fn models_table(&self) -> Result<(), StoreError> {
        // LiteLLM's schema: its migrations made `LiteLLM_ProxyModelTable`; nothing is created.
        if self.schema() == super::Schema::LiteLlm {
            return Ok(());
        }
        self.create_own_tables(CREATE, "create llmgate_models")
            .await?;
        Ok(())
    }

    async fn list_model_rows(&self) -> Result<Vec<ModelRow>, StoreError> {
        self.models_table().await?;
        let rows = sqlx::query(self.pick(
            "SELECT model_id, model_name, litellm_params, model_info, created_by, created_at, updated_at FROM llmgate_models ORDER BY created_at, model_id",
            proxy_models::LIST,
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db("list models"))?;
        Ok(rows.iter().map(model_row).collect())
    }

    async fn insert_model_row(&self, r: &ModelRow) -> Result<(), StoreError> {
        self.models_table().await?;
        sqlx::query(self.pick("INSERT INTO llmgate_models (model_id, model_name, litellm_params, model_info, created_by, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7)", proxy_models::INSERT))
            .bind(r.model_id.clone())
            .bind(r.model_name.clone())
            .bind(serde_json::Value::Object(r.litellm_params.clone()).to_string())
            .bind(serde_json::Value::Object(r.model_info.clone()).to_string())
            .bind(r.created_by.clone())
            .bind(r.created_at)
            .bind(r.updated_at)
            .execute(&self.pool)
            .await
            .map_err(db("insert model"))?;
        Ok(())
    }

    async fn update_model_row(&self, r: &ModelRow) -> Result<bool, StoreError> {
        self.models_table().await?;
        let done = sqlx::query(self.pick("UPDATE llmgate_models SET model_name=$1, litellm_params=$2, model_info=$3, updated_at=$4 WHERE model_id=$5", proxy_models::UPDATE))
            .bind(r.model_name.clone())
            .bind(serde_json::Value::Object(r.litellm_params.clone()).to_string())
            .bind(serde_json::Value::Object(r.model_info.clone()).to_string())
            .bind(r.updated_at)
            .bind(r.model_id.clone())
            .execute(&self.pool)
            .await
            .map_err(db("update model"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_model_row(&self, id: &str) -> Result<bool, StoreError> {
        self.models_table().await?;
        let done = sqlx::query(self.pick(
            "DELETE FROM llmgate_models WHERE model_id=$1",
            proxy_models::DELETE,
        ))
        .bind(id.to_owned())
        .execute(&self.pool)
        .await
        .map_err(db("delete model"))?;
        Ok(done.rows_affected() > 0)
    }
}

impl ModelStore for Store {
    fn list_models(&self) -> StoreFuture<'_, Vec<ModelRow>> {
        Box::pin(self.list_model_rows())
    }
    fn insert_model<'a>(&'a self, row: &'a ModelRow) -> StoreFuture<'a, ()> {
        Box::pin(self.insert_model_row(row))
    }
    fn update_model<'a>(&'a self, row: &'a ModelRow) -> StoreFuture<'a, bool> {
        Box::pin(self.update_model_row(row))
    }
    fn delete_model<'a>(&'a self, model_id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(self.delete_model_row(model_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_models_behave() {
        let store = Store::connect("sqlite::memory:").await.expect("connects");
        crate::store::models::conformance(&store).await;
    }

    /// Against the PostgreSQL of `LLMGATE_TEST_DATABASE_URL` when it is set.
    #[tokio::test]
    async fn postgres_models_behave() {
        let Ok(url) = std::env::var("LLMGATE_TEST_DATABASE_URL") else {
            return;
        };
        let store = Store::connect(&url).await.expect("connects");
        crate::store::models::conformance(&store).await;
    }
}
