//! Keys in SQL: create, read (fresh), update, regenerate, delete, list.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::{db, get, json_list, json_map, key_row, litellm, opt_f64, parse_map, Store};
use crate::{
    secret::Secret,
    store::{generate_key, hash_key, next_reset, KeyRow, NewKey, SpendRow, StoreError},
};

impl Store {
    /// Creates a key; returns the key (shown once) and the stored row.
    pub async fn create_key(&self, new: NewKey) -> Result<(Secret, KeyRow), StoreError> {
        let (secret, row) = new.into_row(self.clock.unix_ms())?;
        self.insert_key(&row).await?;
        Ok((secret, row))
    }

    async fn insert_key(&self, r: &KeyRow) -> Result<(), StoreError> {
        sqlx::query(
            self.pick(
            "INSERT INTO llmgate_keys (token, key_name, key_alias, models, spend, max_budget, budget_duration, budget_reset_at, tpm_limit, rpm_limit, max_parallel_requests, metadata, team_id, user_id, expires, blocked, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,CAST($6 AS DOUBLE PRECISION),$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)",
            litellm::INSERT_KEY,
        ),
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
        let row = sqlx::query(self.pick(
            "SELECT * FROM llmgate_keys WHERE token = $1",
            litellm::KEY_BY_TOKEN,
        ))
        .bind(token.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(db("read key"))?;
        Ok(row.as_ref().map(key_row))
    }

    /// The key with this hash, its budget period rolled over first when it ended.
    pub async fn key_fresh(&self, token: &str) -> Result<Option<KeyRow>, StoreError> {
        let now = self.clock.unix_ms();
        let Some(mut k) = self.key(token).await? else {
            return Ok(None);
        };
        if k.budget_reset_at.is_some_and(|t| t <= now) {
            let next = next_reset(k.limits.budget_duration.as_deref(), now);
            sqlx::query(self.pick(
            "UPDATE llmgate_keys SET spend = 0, budget_reset_at = $1 WHERE token = $2 AND budget_reset_at <= $3",
            litellm::RESET_KEY,
        ))
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
            self.pick(
            "UPDATE llmgate_keys SET key_alias=$1, models=$2, spend=$3, max_budget=CAST($4 AS DOUBLE PRECISION), budget_duration=$5, budget_reset_at=$6, tpm_limit=$7, rpm_limit=$8, max_parallel_requests=$9, metadata=$10, team_id=$11, user_id=$12, expires=$13, blocked=$14, updated_at=$15 WHERE token=$16",
            litellm::UPDATE_KEY,
        ),
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
        .bind(self.clock.unix_ms())
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
            return Err(StoreError::msg(
                "cannot generate a key: no system randomness",
            ));
        }
        let new_token = hash_key(secret.expose());
        let res = sqlx::query(self.pick(
            "UPDATE llmgate_keys SET token=$1, key_name=$2, updated_at=$3 WHERE token=$4",
            litellm::REGENERATE_KEY,
        ))
        .bind(new_token.clone())
        .bind(secret.masked())
        .bind(self.clock.unix_ms())
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
            let res = sqlx::query(self.pick(
                "DELETE FROM llmgate_keys WHERE token = $1",
                litellm::DELETE_KEY,
            ))
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

    /// Sets a key's model-specific budgets (LiteLLM's `model_max_budget`, as
    /// [`crate::store::model_budget::normalize`] stores it); the spend of models no longer in it is
    /// dropped from `model_spend`.
    pub async fn set_key_model_budgets(
        &self,
        token: &str,
        model_max_budget: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<bool, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("model budgets: begin"))?;
        let row = sqlx::query(self.pick(
            "SELECT model_spend FROM llmgate_keys WHERE token = $1",
            "SELECT CAST(model_spend AS TEXT) AS model_spend FROM \"LiteLLM_VerificationToken\" WHERE token = $1",
        ))
        .bind(token.to_owned())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("model budgets: read"))?;
        let Some(row) = row else { return Ok(false) };
        let mut spend = parse_map(get(&row, "model_spend"));
        spend.retain(|m, _| model_max_budget.contains_key(m));
        sqlx::query(self.pick(
            "UPDATE llmgate_keys SET model_max_budget = $1, model_spend = $2 WHERE token = $3",
            "UPDATE \"LiteLLM_VerificationToken\" SET model_max_budget = CAST($1 AS JSONB), model_spend = CAST($2 AS JSONB) WHERE token = $3",
        ))
        .bind(json_map(model_max_budget))
        .bind(json_map(&spend))
        .bind(token.to_owned())
        .execute(&mut *tx)
        .await
        .map_err(db("model budgets: write"))?;
        tx.commit().await.map_err(db("model budgets: commit"))?;
        Ok(true)
    }

    /// Adds a spend batch's cost to the `model_spend` of the keys with a budget for the model
    /// (see [`crate::store::model_budget::add_spend`]): part of the batch's transaction.
    pub(super) async fn charge_model_budgets<'a>(
        &self,
        conn: &mut AnyConnection,
        rows: impl Iterator<Item = &'a SpendRow>,
    ) -> Result<HashMap<String, HashMap<String, f64>>, StoreError> {
        let mut per_key: HashMap<&str, HashMap<&str, f64>> = HashMap::new();
        for r in rows.filter(|r| r.spend != 0.0 && !r.api_key.is_empty()) {
            *per_key
                .entry(r.api_key.as_str())
                .or_default()
                .entry(r.model_group.as_str())
                .or_default() += r.spend;
        }
        let now = self.clock.unix_ms();
        let mut charged: HashMap<String, HashMap<String, f64>> = HashMap::new();
        for (token, models) in per_key {
            let row = sqlx::query(self.pick(
                "SELECT model_max_budget, model_spend FROM llmgate_keys WHERE token = $1",
                "SELECT CAST(model_max_budget AS TEXT) AS model_max_budget, CAST(model_spend AS TEXT) AS model_spend FROM \"LiteLLM_VerificationToken\" WHERE token = $1",
            ))
            .bind(token.to_owned())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db("spend: read model budgets"))?;
            let Some(row) = row else { continue };
            let mut budgets = parse_map(get(&row, "model_max_budget"));
            if budgets.is_empty() {
                continue;
            }
            let mut spend = parse_map(get(&row, "model_spend"));
            let mut changed = false;
            for (model, v) in models {
                if let Some(entry) =
                    crate::store::model_budget::add_spend(&mut budgets, &mut spend, model, v, now)
                {
                    *charged
                        .entry(token.to_owned())
                        .or_default()
                        .entry(entry)
                        .or_default() += v;
                    changed = true;
                }
            }
            if changed {
                sqlx::query(self.pick(
                    "UPDATE llmgate_keys SET model_max_budget = $1, model_spend = $2 WHERE token = $3",
                    "UPDATE \"LiteLLM_VerificationToken\" SET model_max_budget = CAST($1 AS JSONB), model_spend = CAST($2 AS JSONB) WHERE token = $3",
                ))
                .bind(json_map(&budgets))
                .bind(json_map(&spend))
                .bind(token.to_owned())
                .execute(&mut *conn)
                .await
                .map_err(db("spend: model budgets"))?;
            }
        }
        Ok(charged)
    }

    /// Key hashes by alias.
    pub async fn tokens_by_alias(&self, alias: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(self.pick(
            "SELECT token FROM llmgate_keys WHERE key_alias = $1",
            litellm::TOKENS_BY_ALIAS,
        ))
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
            self.pick(
            "SELECT COUNT(*) AS n FROM llmgate_keys WHERE ($1 IS NULL OR team_id = $1) AND ($2 IS NULL OR user_id = $2)",
            litellm::COUNT_KEYS,
        ),
        )
        .bind(team.clone())
        .bind(user.clone())
        .fetch_one(&self.pool)
        .await
        .map_err(db("count keys"))?
        .try_get("n")
        .map_err(db("count keys"))?;
        let rows = sqlx::query(
            self.pick(
            "SELECT * FROM llmgate_keys WHERE ($1 IS NULL OR team_id = $1) AND ($2 IS NULL OR user_id = $2) ORDER BY created_at, token LIMIT $3 OFFSET $4",
            litellm::LIST_KEYS,
        ),
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
}
