//! End users in SQL (`llmgate_end_users`, or LiteLLM's `LiteLLM_EndUserTable`): create, read
//! (fresh), update, block, delete, list, and their share of a spend batch.
//!
//! An end user's limits are its budget row's (`budget_id`), as LiteLLM keeps them; its budget
//! period is the budget row's `budget_reset_at`: when it has passed, the end user's spend starts
//! again from 0 and the budget row's next period end is set.

use std::collections::HashMap;

use sqlx::{any::AnyRow, AnyConnection};

use super::{db, get, limits, Store};
use crate::store::{next_reset, EndUserRow, StoreError};

/// Unix ms of a LiteLLM timestamp column.
macro_rules! ms {
    ($col:literal) => {
        concat!("CAST(EXTRACT(EPOCH FROM ", $col, ") * 1000 AS BIGINT)")
    };
}

macro_rules! ours_select {
    () => {
        "SELECT e.user_id, e.alias, e.spend, e.allowed_model_region, e.default_model, e.budget_id, e.blocked, b.max_budget, b.budget_duration, b.budget_reset_at, b.tpm_limit, b.rpm_limit, b.max_parallel_requests FROM llmgate_end_users e LEFT JOIN llmgate_budgets b ON b.budget_id = e.budget_id"
    };
}

macro_rules! litellm_select {
    () => {
        concat!(
            "SELECT e.user_id, e.alias, e.spend, e.allowed_model_region, e.default_model, e.budget_id, CAST(CASE WHEN e.blocked THEN 1 ELSE 0 END AS BIGINT) AS blocked, b.max_budget, b.budget_duration, ",
            ms!("b.budget_reset_at"),
            " AS budget_reset_at, CAST(b.tpm_limit AS BIGINT) AS tpm_limit, CAST(b.rpm_limit AS BIGINT) AS rpm_limit, CAST(b.max_parallel_requests AS BIGINT) AS max_parallel_requests FROM \"LiteLLM_EndUserTable\" e LEFT JOIN \"LiteLLM_BudgetTable\" b ON b.budget_id = e.budget_id"
        )
    };
}

fn end_user_row(row: &AnyRow) -> EndUserRow {
    EndUserRow {
        user_id: get(row, "user_id").unwrap_or_default(),
        alias: get(row, "alias"),
        spend: get(row, "spend").unwrap_or(0.0),
        allowed_model_region: get(row, "allowed_model_region"),
        default_model: get(row, "default_model"),
        budget_id: get(row, "budget_id"),
        limits: limits(row),
        budget_reset_at: get(row, "budget_reset_at"),
        blocked: get::<i64>(row, "blocked").unwrap_or(0) != 0,
    }
}

impl Store {
    /// Creates an end user (its budget row, if any, must exist); fails if the id exists.
    pub async fn create_end_user(&self, e: &EndUserRow) -> Result<(), StoreError> {
        sqlx::query(self.pick(
            "INSERT INTO llmgate_end_users (user_id, alias, spend, allowed_model_region, default_model, budget_id, blocked) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            "INSERT INTO \"LiteLLM_EndUserTable\" (user_id, alias, spend, allowed_model_region, default_model, budget_id, blocked) VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS BIGINT) <> 0)",
        ))
        .bind(e.user_id.clone())
        .bind(e.alias.clone())
        .bind(e.spend)
        .bind(e.allowed_model_region.clone())
        .bind(e.default_model.clone())
        .bind(e.budget_id.clone())
        .bind(i64::from(e.blocked))
        .execute(&self.pool)
        .await
        .map_err(db("insert end user"))?;
        Ok(())
    }

    /// An end user with its budget row's limits, its budget period rolled over first when it
    /// ended.
    pub async fn end_user(&self, id: &str) -> Result<Option<EndUserRow>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db("read end user"))?;
        Ok(self
            .end_user_fresh(&mut conn, id, 0.0)
            .await?
            .map(|(e, _)| e))
    }

    /// Reads an end user, starting its next budget period first when the current one has ended
    /// (the new period's spend is `carry`). The flag tells whether this call started it.
    async fn end_user_fresh(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        carry: f64,
    ) -> Result<Option<(EndUserRow, bool)>, StoreError> {
        let row = sqlx::query(self.pick(
            concat!(ours_select!(), " WHERE e.user_id = $1"),
            concat!(litellm_select!(), " WHERE e.user_id = $1"),
        ))
        .bind(id.to_owned())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("read end user"))?;
        let Some(mut e) = row.as_ref().map(end_user_row) else {
            return Ok(None);
        };
        let now = self.clock.unix_ms();
        let mut started = false;
        if let (Some(budget), true) = (
            e.budget_id.clone(),
            e.budget_reset_at.is_some_and(|r| r <= now),
        ) {
            let next = next_reset(e.limits.budget_duration.as_deref(), now);
            if self.roll_budget(conn, &budget, next, now).await? {
                sqlx::query(self.pick(
                    "UPDATE llmgate_end_users SET spend = $1 WHERE user_id = $2",
                    "UPDATE \"LiteLLM_EndUserTable\" SET spend = $1 WHERE user_id = $2",
                ))
                .bind(carry)
                .bind(id.to_owned())
                .execute(&mut *conn)
                .await
                .map_err(db("reset end user spend"))?;
                e.spend = carry;
                started = true;
            }
            e.budget_reset_at = next;
        }
        Ok(Some((e, started)))
    }

    /// Sets an end user's alias, region, default model, budget row and `blocked`; `false` when
    /// there is no such end user.
    pub async fn update_end_user(&self, e: &EndUserRow) -> Result<bool, StoreError> {
        let res = sqlx::query(self.pick(
            "UPDATE llmgate_end_users SET alias = $1, allowed_model_region = $2, default_model = $3, budget_id = $4, blocked = $5 WHERE user_id = $6",
            "UPDATE \"LiteLLM_EndUserTable\" SET alias = $1, allowed_model_region = $2, default_model = $3, budget_id = $4, blocked = CAST($5 AS BIGINT) <> 0 WHERE user_id = $6",
        ))
        .bind(e.alias.clone())
        .bind(e.allowed_model_region.clone())
        .bind(e.default_model.clone())
        .bind(e.budget_id.clone())
        .bind(i64::from(e.blocked))
        .bind(e.user_id.clone())
        .execute(&self.pool)
        .await
        .map_err(db("update end user"))?;
        Ok(res.rows_affected() > 0)
    }

    /// Deletes end users; returns how many existed.
    pub async fn delete_end_users(&self, ids: &[String]) -> Result<u64, StoreError> {
        let mut n = 0;
        for id in ids {
            n += sqlx::query(self.pick(
                "DELETE FROM llmgate_end_users WHERE user_id = $1",
                "DELETE FROM \"LiteLLM_EndUserTable\" WHERE user_id = $1",
            ))
            .bind(id.clone())
            .execute(&self.pool)
            .await
            .map_err(db("delete end user"))?
            .rows_affected();
        }
        Ok(n)
    }

    /// All end users, by id.
    pub async fn list_end_users(&self) -> Result<Vec<EndUserRow>, StoreError> {
        let rows = sqlx::query(self.pick(
            concat!(ours_select!(), " ORDER BY e.user_id"),
            concat!(litellm_select!(), " ORDER BY e.user_id"),
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db("list end users"))?;
        Ok(rows.iter().map(end_user_row).collect())
    }

    /// Starts a budget row's next period when it has still ended (two gateways do not both
    /// start it); whether this call did.
    pub(super) async fn roll_budget(
        &self,
        conn: &mut AnyConnection,
        budget_id: &str,
        next: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query(self.pick(
            "UPDATE llmgate_budgets SET budget_reset_at = $1 WHERE budget_id = $2 AND budget_reset_at <= $3",
            "UPDATE \"LiteLLM_BudgetTable\" SET budget_reset_at = (to_timestamp(CAST($1 AS BIGINT) / 1000.0) AT TIME ZONE 'UTC') WHERE budget_id = $2 AND budget_reset_at <= (to_timestamp(CAST($3 AS BIGINT) / 1000.0) AT TIME ZONE 'UTC')",
        ))
        .bind(next)
        .bind(budget_id.to_owned())
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db("reset budget period"))?;
        Ok(res.rows_affected() > 0)
    }

    /// Charges end users with a row their share of a batch, inside the batch's transaction.
    pub(super) async fn charge_end_users(
        &self,
        conn: &mut AnyConnection,
        end_users: &HashMap<String, f64>,
    ) -> Result<(), StoreError> {
        for (id, v) in end_users {
            if let Some((_, false)) = self.end_user_fresh(conn, id, *v).await? {
                sqlx::query(self.pick(
                    "UPDATE llmgate_end_users SET spend = spend + $1 WHERE user_id = $2",
                    "UPDATE \"LiteLLM_EndUserTable\" SET spend = spend + $1 WHERE user_id = $2",
                ))
                .bind(*v)
                .bind(id.clone())
                .execute(&mut *conn)
                .await
                .map_err(db("spend: end user"))?;
            }
        }
        Ok(())
    }
}
