//! Teams in SQL: create, read (fresh), update, delete, list.

use std::collections::HashMap;

use serde_json::Value;

use super::{db, get, json_list, json_map, limits, litellm, opt_f64, team_row, Schema, Store};
use crate::store::{next_reset, BudgetRow, Limits, SpendRow, StoreError, TeamMemberRow, TeamRow};

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

/// llmgate's statements for memberships and aliases (LiteLLM's are in litellm.rs).
const OURS_MEMBERS: &str = "SELECT m.user_id, m.team_id, m.spend, m.budget_id, b.max_budget, b.budget_duration, b.tpm_limit, b.rpm_limit, b.max_parallel_requests FROM llmgate_team_members m LEFT JOIN llmgate_budgets b ON b.budget_id = m.budget_id WHERE m.team_id = $1 AND (CAST($2 AS TEXT) IS NULL OR m.user_id = $2) ORDER BY m.user_id";
const OURS_PUT_MEMBER_BUDGET: &str = "INSERT INTO llmgate_team_members (user_id, team_id, spend, budget_id) VALUES ($1, $2, 0, $3) ON CONFLICT (user_id, team_id) DO UPDATE SET budget_id = excluded.budget_id";
const OURS_ALIASES: &str = "SELECT aliases FROM llmgate_team_model_aliases WHERE team_id = $1";
const OURS_PUT_ALIASES: &str = "INSERT INTO llmgate_team_model_aliases (team_id, aliases) VALUES ($1, $2) ON CONFLICT (team_id) DO UPDATE SET aliases = excluded.aliases";

fn member_row(row: &sqlx::any::AnyRow) -> TeamMemberRow {
    TeamMemberRow {
        user_id: get(row, "user_id").unwrap_or_default(),
        team_id: get(row, "team_id").unwrap_or_default(),
        spend: get(row, "spend").unwrap_or(0.0),
        budget_id: get(row, "budget_id"),
        limits: limits(row),
    }
}

/// Aliases as stored: a JSON object of strings; LiteLLM's `/team/new` may have stored the
/// object as a JSON string (`json.dumps`), which is read through. Anything else is no alias.
pub(super) fn parse_aliases(text: Option<&str>) -> HashMap<String, String> {
    let mut v: Value = text
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null);
    if let Value::String(s) = &v {
        v = serde_json::from_str(s).unwrap_or(Value::Null);
    }
    match v {
        Value::Object(m) => m
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) if !k.is_empty() && !s.is_empty() => Some((k, s)),
                _ => None,
            })
            .collect(),
        _ => HashMap::new(),
    }
}

impl Store {
    /// A team's memberships (or, with `user_id`, that one), with their budget rows' limits.
    pub async fn team_members(
        &self,
        team_id: &str,
        user_id: Option<&str>,
    ) -> Result<Vec<TeamMemberRow>, StoreError> {
        let rows = sqlx::query(self.pick(OURS_MEMBERS, litellm::TEAM_MEMBERS))
            .bind(team_id.to_owned())
            .bind(user_id.map(str::to_owned))
            .fetch_all(&self.pool)
            .await
            .map_err(db("read team members"))?;
        Ok(rows.iter().map(member_row).collect())
    }

    /// One membership with its budget row's limits.
    pub async fn team_member(
        &self,
        team_id: &str,
        user_id: &str,
    ) -> Result<Option<TeamMemberRow>, StoreError> {
        Ok(self
            .team_members(team_id, Some(user_id))
            .await?
            .into_iter()
            .next())
    }

    /// Sets a member's budget in the team (`max_budget_in_team`): its budget row's `max_budget`,
    /// the row made (and the membership pointed at it) when it has none, as LiteLLM does.
    /// Returns the membership as stored after.
    pub async fn set_team_member_budget(
        &self,
        team_id: &str,
        user_id: &str,
        max_budget: f64,
        by: &str,
    ) -> Result<Option<TeamMemberRow>, StoreError> {
        let now = self.clock.unix_ms();
        let current = self.team_member(team_id, user_id).await?;
        let existing = match current.as_ref().and_then(|m| m.budget_id.clone()) {
            Some(id) => self.budget(&id).await?,
            None => None,
        };
        if let Some(mut b) = existing {
            b.limits.max_budget = Some(max_budget);
            b.updated_by = by.to_owned();
            b.updated_at = now;
            self.update_budget(&b).await?;
        } else {
            let b = BudgetRow {
                budget_id: crate::types::extensions::new_call_id(),
                limits: Limits {
                    max_budget: Some(max_budget),
                    ..Limits::default()
                },
                created_by: by.to_owned(),
                updated_by: by.to_owned(),
                created_at: now,
                updated_at: now,
                ..BudgetRow::default()
            };
            self.create_budget(&b).await?;
            sqlx::query(self.pick(OURS_PUT_MEMBER_BUDGET, litellm::PUT_MEMBER_BUDGET))
                .bind(user_id.to_owned())
                .bind(team_id.to_owned())
                .bind(b.budget_id.clone())
                .execute(&self.pool)
                .await
                .map_err(db("team member budget"))?;
        }
        self.team_member(team_id, user_id).await
    }

    /// A team's model aliases (alias -> model group); none when it has none.
    pub async fn team_model_aliases(
        &self,
        team_id: &str,
    ) -> Result<HashMap<String, String>, StoreError> {
        let row = sqlx::query(self.pick(OURS_ALIASES, litellm::TEAM_ALIASES))
            .bind(team_id.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read team model aliases"))?;
        Ok(parse_aliases(
            row.as_ref()
                .and_then(|r| get::<String>(r, "aliases"))
                .as_deref(),
        ))
    }

    /// Replaces a team's model aliases (on LiteLLM's schema: its `LiteLLM_ModelTable` row, made
    /// and linked to the team when it has none).
    pub async fn set_team_model_aliases(
        &self,
        team_id: &str,
        aliases: &HashMap<String, String>,
        by: &str,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(aliases).unwrap_or_else(|_| "{}".into());
        let run = |sql: &'static str| {
            sqlx::query(sql)
                .bind(json.clone())
                .bind(by.to_owned())
                .bind(team_id.to_owned())
        };
        if self.schema == Schema::LiteLlm {
            let res = run(litellm::UPDATE_TEAM_ALIASES)
                .execute(&self.pool)
                .await
                .map_err(db("update team model aliases"))?;
            if res.rows_affected() == 0 {
                run(litellm::INSERT_TEAM_ALIASES)
                    .execute(&self.pool)
                    .await
                    .map_err(db("insert team model aliases"))?;
            }
        } else {
            sqlx::query(OURS_PUT_ALIASES)
                .bind(team_id.to_owned())
                .bind(json.clone())
                .execute(&self.pool)
                .await
                .map_err(db("team model aliases"))?;
        }
        Ok(())
    }

    /// Adds the cost of counted spend rows to their (team, user) memberships on llmgate's
    /// tables (LiteLLM's path does the same for `LiteLLM_TeamMembership`).
    pub(super) async fn charge_team_members<'r>(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        rows: impl Iterator<Item = &'r SpendRow>,
    ) -> Result<(), StoreError> {
        let mut members: HashMap<(&str, &str), f64> = HashMap::new();
        for r in rows.filter(|r| r.spend != 0.0) {
            if let (Some(t), Some(u)) = (&r.team_id, &r.user_id) {
                *members.entry((t.as_str(), u.as_str())).or_default() += r.spend;
            }
        }
        for ((team, user), v) in members {
            sqlx::query("UPDATE llmgate_team_members SET spend = spend + $1 WHERE team_id = $2 AND user_id = $3")
                .bind(v)
                .bind(team.to_owned())
                .bind(user.to_owned())
                .execute(&mut **tx)
                .await
                .map_err(db("spend: team member"))?;
        }
        Ok(())
    }
}
