//! Users in SQL: create, add a team, read (fresh).

use sqlx::Row as _;

use super::{db, get, json_list, json_map, litellm, opt_f64, user_row, Schema, Store};
use crate::store::{next_reset, StoreError, UserRow};

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

    /// The ids of the users with this e-mail (LiteLLM finds members by e-mail).
    pub async fn user_ids_by_email(&self, email: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(self.pick(
            "SELECT user_id FROM llmgate_users WHERE user_email = $1 ORDER BY user_id LIMIT 2",
            "SELECT user_id FROM \"LiteLLM_UserTable\" WHERE user_email = $1 ORDER BY user_id LIMIT 2",
        ))
        .bind(email.to_owned())
        .fetch_all(&self.pool)
        .await
        .map_err(db("read user by email"))?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>("user_id").ok())
            .collect())
    }

    /// Adds a team to a user's `teams` (creating a bare user when missing).
    /// The user's membership row is created too (`llmgate_team_members`, LiteLLM's
    /// `LiteLLM_TeamMembership`), where its spend in the team and its team budget live.
    pub async fn add_user_team(&self, user_id: &str, team_id: &str) -> Result<(), StoreError> {
        self.set_user_team(user_id, team_id).await?;
        {
            sqlx::query(self.pick(
                "INSERT INTO llmgate_team_members (user_id, team_id, spend) VALUES ($1, $2, 0) ON CONFLICT (user_id, team_id) DO NOTHING",
                litellm::ADD_MEMBERSHIP,
            ))
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
                .bind(self.clock.unix_ms())
                .bind(user_id.to_owned())
                .execute(&self.pool)
                .await
                .map_err(db("update user"))?;
                Ok(())
            }
            None => {
                let now = self.clock.unix_ms();
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
        let now = self.clock.unix_ms();
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

impl Store {
    /// Replaces a user's fields (not its spend); `false` when there is no such user.
    pub async fn update_user(&self, u: &UserRow) -> Result<bool, StoreError> {
        let res = sqlx::query(self.pick(
            "UPDATE llmgate_users SET user_email=$1, user_role=$2, models=$3, max_budget=CAST($4 AS DOUBLE PRECISION), budget_duration=$5, budget_reset_at=$6, tpm_limit=$7, rpm_limit=$8, max_parallel_requests=$9, metadata=$10, teams=$11, updated_at=$12 WHERE user_id=$13",
            litellm::UPDATE_USER,
        ))
        .bind(u.user_email.clone())
        .bind(u.user_role.clone())
        .bind(json_list(&u.models))
        .bind(opt_f64(u.limits.max_budget))
        .bind(u.limits.budget_duration.clone())
        .bind(u.budget_reset_at)
        .bind(u.limits.tpm_limit)
        .bind(u.limits.rpm_limit)
        .bind(u.limits.max_parallel_requests)
        .bind(json_map(&u.metadata))
        .bind(json_list(&u.teams))
        .bind(self.clock.unix_ms())
        .bind(u.user_id.clone())
        .execute(&self.pool)
        .await
        .map_err(db("update user"))?;
        Ok(res.rows_affected() > 0)
    }

    /// Deletes users; returns the ids that existed. Their keys stay (LiteLLM deletes them
    /// too: the management API does that first).
    pub async fn delete_users(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut deleted = Vec::new();
        for id in ids {
            sqlx::query(self.pick(
                "DELETE FROM llmgate_team_members WHERE user_id = $1",
                litellm::DELETE_MEMBERSHIPS_OF_USER,
            ))
            .bind(id.clone())
            .execute(&self.pool)
            .await
            .map_err(db("delete user"))?;
            let res = sqlx::query(self.pick(
                "DELETE FROM llmgate_users WHERE user_id = $1",
                litellm::DELETE_USER,
            ))
            .bind(id.clone())
            .execute(&self.pool)
            .await
            .map_err(db("delete user"))?;
            if res.rows_affected() > 0 {
                deleted.push(id.clone());
            }
        }
        Ok(deleted)
    }

    /// Users (optionally of one role), ordered by creation, one page; and how many there are.
    /// The proxy-budget row is not a user and is not listed.
    pub async fn list_users(
        &self,
        role: Option<&str>,
        page: i64,
        size: i64,
    ) -> Result<(Vec<UserRow>, i64), StoreError> {
        let role = role.map(str::to_owned);
        let total: i64 = sqlx::query(self.pick(
            "SELECT COUNT(*) AS n FROM llmgate_users WHERE user_id <> 'litellm-proxy-budget' AND (CAST($1 AS TEXT) IS NULL OR user_role = $1)",
            litellm::COUNT_USERS,
        ))
        .bind(role.clone())
        .fetch_one(&self.pool)
        .await
        .map_err(db("count users"))?
        .try_get("n")
        .map_err(db("count users"))?;
        let rows = sqlx::query(self.pick(
            "SELECT * FROM llmgate_users WHERE user_id <> 'litellm-proxy-budget' AND (CAST($1 AS TEXT) IS NULL OR user_role = $1) ORDER BY created_at, user_id LIMIT $2 OFFSET $3",
            litellm::LIST_USERS,
        ))
        .bind(role)
        .bind(size)
        .bind(page.saturating_sub(1).max(0).saturating_mul(size.max(0)))
        .fetch_all(&self.pool)
        .await
        .map_err(db("list users"))?;
        Ok((rows.iter().map(user_row).collect(), total))
    }

    /// Takes a team out of a user's `teams` and drops the membership row.
    pub async fn remove_user_team(&self, user_id: &str, team_id: &str) -> Result<(), StoreError> {
        if let Some(mut u) = self.user(user_id).await? {
            u.teams.retain(|t| t != team_id);
            sqlx::query(self.pick(
                "UPDATE llmgate_users SET teams=$1, updated_at=$2 WHERE user_id=$3",
                litellm::SET_USER_TEAMS,
            ))
            .bind(json_list(&u.teams))
            .bind(self.clock.unix_ms())
            .bind(user_id.to_owned())
            .execute(&self.pool)
            .await
            .map_err(db("update user"))?;
        }
        {
            sqlx::query(self.pick(
                "DELETE FROM llmgate_team_members WHERE user_id = $1 AND team_id = $2",
                litellm::DELETE_MEMBERSHIP,
            ))
            .bind(user_id.to_owned())
            .bind(team_id.to_owned())
            .execute(&self.pool)
            .await
            .map_err(db("delete team membership"))?;
        }
        Ok(())
    }

    /// A user's `password` column on LiteLLM's tables (LiteLLM's UI password: the SHA-256 hex of
    /// the password, or, as LiteLLM's `/user/update` may leave it, the password itself). `None`
    /// on llmgate's tables, where the password is an Argon2id hash in `metadata`.
    pub async fn user_password(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        if self.schema != Schema::LiteLlm {
            return Ok(None);
        }
        let row = sqlx::query("SELECT password FROM \"LiteLLM_UserTable\" WHERE user_id = $1")
            .bind(user_id.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read user password"))?;
        Ok(row
            .as_ref()
            .and_then(|r| get::<String>(r, "password"))
            .filter(|p| !p.is_empty()))
    }

    /// Writes a user's `password` column on LiteLLM's tables (no-op on llmgate's).
    pub async fn set_user_password(&self, user_id: &str, value: &str) -> Result<(), StoreError> {
        if self.schema != Schema::LiteLlm {
            return Ok(());
        }
        sqlx::query("UPDATE \"LiteLLM_UserTable\" SET password = $1 WHERE user_id = $2")
            .bind(value.to_owned())
            .bind(user_id.to_owned())
            .execute(&self.pool)
            .await
            .map_err(db("write user password"))?;
        Ok(())
    }
}
