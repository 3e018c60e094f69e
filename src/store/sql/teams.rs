//! Teams in SQL: create, read (fresh), update, delete, list.

use super::{db, json_list, json_map, litellm, opt_f64, team_row, Store};
use crate::store::{next_reset, StoreError, TeamRow};

impl Store {
    /// Creates a team; fails if the id exists.
    pub async fn create_team(&self, t: &TeamRow) -> Result<(), StoreError> {
        sqlx::query(
            self.pick(
            "INSERT INTO llmgate_teams (team_id, team_alias, models, spend, max_budget, budget_duration, budget_reset_at, tpm_limit, rpm_limit, max_parallel_requests, metadata, members, blocked, created_at, updated_at, organization_id) VALUES ($1,$2,$3,$4,CAST($5 AS DOUBLE PRECISION),$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)",
            litellm::INSERT_TEAM,
        ),
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
        .bind(t.organization_id.clone())
        .execute(&self.pool)
        .await
        .map_err(db("insert team"))?;
        Ok(())
    }

    /// A team, its budget period rolled over first when it ended.
    pub async fn team(&self, team_id: &str) -> Result<Option<TeamRow>, StoreError> {
        let row = sqlx::query(self.pick(
            "SELECT * FROM llmgate_teams WHERE team_id = $1",
            litellm::TEAM_BY_ID,
        ))
        .bind(team_id.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(db("read team"))?;
        let Some(mut t) = row.as_ref().map(team_row) else {
            return Ok(None);
        };
        let now = self.clock.unix_ms();
        if t.budget_reset_at.is_some_and(|r| r <= now) {
            let next = next_reset(t.limits.budget_duration.as_deref(), now);
            sqlx::query(self.pick(
            "UPDATE llmgate_teams SET spend = 0, budget_reset_at = $1 WHERE team_id = $2 AND budget_reset_at <= $3",
            litellm::RESET_TEAM,
        ))
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
            self.pick(
            "UPDATE llmgate_teams SET team_alias=$1, models=$2, max_budget=CAST($3 AS DOUBLE PRECISION), budget_duration=$4, budget_reset_at=$5, tpm_limit=$6, rpm_limit=$7, max_parallel_requests=$8, metadata=$9, members=$10, blocked=$11, updated_at=$12, organization_id=$14 WHERE team_id=$13",
            litellm::UPDATE_TEAM,
        ),
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
        .bind(self.clock.unix_ms())
        .bind(t.team_id.clone())
        .bind(t.organization_id.clone())
        .execute(&self.pool)
        .await
        .map_err(db("update team"))?;
        Ok(res.rows_affected() > 0)
    }

    /// Deletes teams; returns the ids that existed.
    pub async fn delete_teams(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut deleted = Vec::new();
        for id in ids {
            let res = sqlx::query(self.pick(
                "DELETE FROM llmgate_teams WHERE team_id = $1",
                litellm::DELETE_TEAM,
            ))
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
        let rows = sqlx::query(self.pick(
            "SELECT * FROM llmgate_teams ORDER BY created_at, team_id",
            litellm::LIST_TEAMS,
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db("list teams"))?;
        Ok(rows.iter().map(team_row).collect())
    }
}
