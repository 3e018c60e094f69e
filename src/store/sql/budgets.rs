//! Budgets in SQL (`llmgate_budgets`, or LiteLLM's `LiteLLM_BudgetTable`): create, read, update,
//! delete, list.

use super::{db, get, limits, litellm, opt_f64, Store};
use crate::store::{BudgetRow, StoreError};

fn budget_row(row: &sqlx::any::AnyRow) -> BudgetRow {
    BudgetRow {
        budget_id: get(row, "budget_id").unwrap_or_default(),
        limits: limits(row),
        soft_budget: get(row, "soft_budget"),
        budget_reset_at: get(row, "budget_reset_at"),
        created_by: get(row, "created_by").unwrap_or_default(),
        updated_by: get(row, "updated_by").unwrap_or_default(),
        created_at: get(row, "created_at").unwrap_or(0),
        updated_at: get(row, "updated_at").unwrap_or(0),
    }
}

impl Store {
    /// Creates a budget; fails if the id exists.
    pub async fn create_budget(&self, b: &BudgetRow) -> Result<(), StoreError> {
        sqlx::query(self.pick(
            "INSERT INTO llmgate_budgets (budget_id, max_budget, soft_budget, budget_duration, budget_reset_at, tpm_limit, rpm_limit, max_parallel_requests, created_by, updated_by, created_at, updated_at) VALUES ($1, CAST($2 AS DOUBLE PRECISION), CAST($3 AS DOUBLE PRECISION), $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            litellm::INSERT_BUDGET,
        ))
        .bind(b.budget_id.clone())
        .bind(opt_f64(b.limits.max_budget))
        .bind(opt_f64(b.soft_budget))
        .bind(b.limits.budget_duration.clone())
        .bind(b.budget_reset_at)
        .bind(b.limits.tpm_limit)
        .bind(b.limits.rpm_limit)
        .bind(b.limits.max_parallel_requests)
        .bind(b.created_by.clone())
        .bind(b.updated_by.clone())
        .bind(b.created_at)
        .bind(b.updated_at)
        .execute(&self.pool)
        .await
        .map_err(db("insert budget"))?;
        Ok(())
    }

    /// A budget by id.
    pub async fn budget(&self, budget_id: &str) -> Result<Option<BudgetRow>, StoreError> {
        let row = sqlx::query(self.pick(
            "SELECT * FROM llmgate_budgets WHERE budget_id = $1",
            litellm::BUDGET_BY_ID,
        ))
        .bind(budget_id.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(db("read budget"))?;
        Ok(row.as_ref().map(budget_row))
    }

    /// Replaces a budget's fields; `false` when there is no such budget.
    pub async fn update_budget(&self, b: &BudgetRow) -> Result<bool, StoreError> {
        let res = sqlx::query(self.pick(
            "UPDATE llmgate_budgets SET max_budget = CAST($1 AS DOUBLE PRECISION), soft_budget = CAST($2 AS DOUBLE PRECISION), budget_duration = $3, budget_reset_at = $4, tpm_limit = $5, rpm_limit = $6, max_parallel_requests = $7, updated_by = $8, updated_at = $9 WHERE budget_id = $10",
            litellm::UPDATE_BUDGET,
        ))
        .bind(opt_f64(b.limits.max_budget))
        .bind(opt_f64(b.soft_budget))
        .bind(b.limits.budget_duration.clone())
        .bind(b.budget_reset_at)
        .bind(b.limits.tpm_limit)
        .bind(b.limits.rpm_limit)
        .bind(b.limits.max_parallel_requests)
        .bind(b.updated_by.clone())
        .bind(self.clock.unix_ms())
        .bind(b.budget_id.clone())
        .execute(&self.pool)
        .await
        .map_err(db("update budget"))?;
        Ok(res.rows_affected() > 0)
    }

    /// Deletes budgets; returns the ids that existed. (In LiteLLM's schema, keys, end users and
    /// memberships that used one lose it, as LiteLLM's `ON DELETE SET NULL` does; an
    /// organization's budget cannot be deleted.)
    pub async fn delete_budgets(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut deleted = Vec::new();
        for id in ids {
            let res = sqlx::query(self.pick(
                "DELETE FROM llmgate_budgets WHERE budget_id = $1",
                litellm::DELETE_BUDGET,
            ))
            .bind(id.clone())
            .execute(&self.pool)
            .await
            .map_err(db("delete budget"))?;
            if res.rows_affected() > 0 {
                deleted.push(id.clone());
            }
        }
        Ok(deleted)
    }

    /// All budgets, ordered by creation.
    pub async fn list_budgets(&self) -> Result<Vec<BudgetRow>, StoreError> {
        let rows = sqlx::query(self.pick(
            "SELECT * FROM llmgate_budgets ORDER BY created_at, budget_id",
            litellm::LIST_BUDGETS,
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db("list budgets"))?;
        Ok(rows.iter().map(budget_row).collect())
    }
}
