//! Users in SQL: create, add a team, read (fresh).

use super::{db, json_list, json_map, litellm, opt_f64, user_row, Schema, Store};
use crate::store::{next_reset, now_ms, StoreError, UserRow};

impl Store {
    /// Creates a user; fails if the id exists.
    pub async fn create_user(&self, u: &UserRow) -> Result<(), StoreError> {
        sqlx::query(
            self.pick(
            "INSERT INTO llmgate_users (user_id, user_email, user_role, models, spend, max_budget, budget_duration, budget_reset_at, tpm_limit, rpm_limit, max_parallel_requests, metadata, teams, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,CAST($6 AS DOUBLE PRECISION),$7,$8,$9,$10,$11,$12,$13,$14,$15)",
            litellm::INSERT_USER,
        ),
        )
        .bind(u.user_id.clone())
        .bind(u.user_email.clone())
        .bind(u.user_role.clone())
        .bind(json_list(&u.models))
        .bind(u.spend)
        .bind(opt_f64(u.limits.max_budget))
        .bind(u.limits.budget_duration.clone())
        .bind(u.budget_reset_at)
        .bind(u.limits.tpm_limit)
        .bind(u.limits.rpm_limit)
        .bind(u.limits.max_parallel_requests)
        .bind(json_map(&u.metadata))
        .bind(json_list(&u.teams))
        .bind(u.created_at)
        .bind(u.updated_at)
        .execute(&self.pool)
        .await
        .map_err(db("insert user"))?;
        Ok(())
    }

    /// Adds a team to a user's `teams` (creating a bare user when missing).
    /// In LiteLLM's schema the user's `LiteLLM_TeamMembership` row is created too.
    pub async fn add_user_team(&self, user_id: &str, team_id: &str) -> Result<(), StoreError> {
        self.set_user_team(user_id, team_id).await?;
        if self.schema == Schema::LiteLlm {
            sqlx::query(litellm::ADD_MEMBERSHIP)
                .bind(user_id.to_owned())
                .bind(team_id.to_owned())
                .execute(&self.pool)
                .await
                .map_err(db("add team membership"))?;
        }
        Ok(())
    }

    async fn set_user_team(&self, user_id: &str, team_id: &str) -> Result<(), StoreError> {
        match self.user(user_id).await? {
            Some(mut u) => {
                if !u.teams.iter().any(|t| t == team_id) {
                    u.teams.push(team_id.to_owned());
                }
                sqlx::query(self.pick(
                    "UPDATE llmgate_users SET teams=$1, updated_at=$2 WHERE user_id=$3",
                    litellm::SET_USER_TEAMS,
                ))
                .bind(json_list(&u.teams))
                .bind(now_ms())
                .bind(user_id.to_owned())
                .execute(&self.pool)
                .await
                .map_err(db("update user"))?;
                Ok(())
            }
            None => {
                let now = now_ms();
                self.create_user(&UserRow {
                    user_id: user_id.to_owned(),
                    teams: vec![team_id.to_owned()],
                    created_at: now,
                    updated_at: now,
                    ..UserRow::default()
                })
                .await
            }
        }
    }

    /// A user, its budget period rolled over first when it ended.
    pub async fn user(&self, user_id: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(self.pick(
            "SELECT * FROM llmgate_users WHERE user_id = $1",
            litellm::USER_BY_ID,
        ))
        .bind(user_id.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(db("read user"))?;
        let Some(mut u) = row.as_ref().map(user_row) else {
            return Ok(None);
        };
        let now = now_ms();
        if u.budget_reset_at.is_some_and(|r| r <= now) {
            let next = next_reset(u.limits.budget_duration.as_deref(), now);
            sqlx::query(self.pick(
            "UPDATE llmgate_users SET spend = 0, budget_reset_at = $1 WHERE user_id = $2 AND budget_reset_at <= $3",
            litellm::RESET_USER,
        ))
                .bind(next)
                .bind(user_id.to_owned())
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(db("reset user budget"))?;
            u.spend = 0.0;
            u.budget_reset_at = next;
        }
        Ok(Some(u))
    }
}
