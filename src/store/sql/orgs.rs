//! Organizations in SQL (`llmgate_organizations` and `llmgate_organization_members`, or LiteLLM's
//! `LiteLLM_OrganizationTable` and `LiteLLM_OrganizationMembership`): create, read (fresh),
//! update, delete, list, members, and the organizations' share of a spend batch.
//!
//! An organization's limits are its budget row's (`budget_id`, as LiteLLM keeps them); its budget
//! period is the budget row's `budget_reset_at`: when it has passed, the organization's spend
//! starts again from 0 and the budget row's next period end is set.

use std::collections::HashMap;

use sqlx::{any::AnyRow, AnyConnection};

use super::{db, get, json_list, json_map, limits, parse_list, parse_map, Schema, Store};
use crate::store::{next_reset, OrgMemberRow, OrgRow, StoreError};

/// Unix ms of a LiteLLM timestamp column.
macro_rules! ms {
    ($col:literal) => {
        concat!("CAST(EXTRACT(EPOCH FROM ", $col, ") * 1000 AS BIGINT)")
    };
}

/// A LiteLLM timestamp from a Unix-ms parameter.
macro_rules! ts {
    ($p:literal) => {
        concat!(
            "(to_timestamp(CAST(",
            $p,
            " AS BIGINT) / 1000.0) AT TIME ZONE 'UTC')"
        )
    };
}

macro_rules! litellm_select {
    () => {
        concat!(
            "SELECT o.organization_id, o.organization_alias, o.budget_id, COALESCE(CAST(array_to_json(o.models) AS TEXT), '[]') AS models, o.spend, CAST(o.metadata AS TEXT) AS metadata, o.created_by, o.updated_by, ",
            ms!("o.created_at"),
            " AS created_at, ",
            ms!("o.updated_at"),
            " AS updated_at, b.max_budget, b.budget_duration, ",
            ms!("b.budget_reset_at"),
            " AS budget_reset_at, CAST(b.tpm_limit AS BIGINT) AS tpm_limit, CAST(b.rpm_limit AS BIGINT) AS rpm_limit, CAST(b.max_parallel_requests AS BIGINT) AS max_parallel_requests FROM \"LiteLLM_OrganizationTable\" o LEFT JOIN \"LiteLLM_BudgetTable\" b ON b.budget_id = o.budget_id"
        )
    };
}

const OURS_BY_ID: &str = "SELECT o.organization_id, o.organization_alias, o.budget_id, o.models, o.spend, o.metadata, o.created_by, o.updated_by, o.created_at, o.updated_at, b.max_budget, b.budget_duration, b.budget_reset_at, b.tpm_limit, b.rpm_limit, b.max_parallel_requests FROM llmgate_organizations o LEFT JOIN llmgate_budgets b ON b.budget_id = o.budget_id WHERE o.organization_id = $1";
const LITELLM_BY_ID: &str = concat!(litellm_select!(), " WHERE o.organization_id = $1");

const OURS_INSERT: &str = "INSERT INTO llmgate_organizations (organization_id, organization_alias, budget_id, models, spend, metadata, created_by, updated_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const LITELLM_INSERT: &str = concat!(
    "INSERT INTO \"LiteLLM_OrganizationTable\" (organization_id, organization_alias, budget_id, models, spend, metadata, created_by, updated_by, created_at, updated_at) VALUES ($1, $2, $3, ARRAY(SELECT jsonb_array_elements_text(CAST($4 AS JSONB))), $5, CAST($6 AS JSONB), $7, $8, ",
    ts!("$9"),
    ", ",
    ts!("$10"),
    ")"
);

const OURS_UPDATE: &str = "UPDATE llmgate_organizations SET organization_alias = $1, models = $2, metadata = $3, updated_by = $4, updated_at = $5 WHERE organization_id = $6";
const LITELLM_UPDATE: &str = concat!(
    "UPDATE \"LiteLLM_OrganizationTable\" SET organization_alias = $1, models = ARRAY(SELECT jsonb_array_elements_text(CAST($2 AS JSONB))), metadata = CAST($3 AS JSONB), updated_by = $4, updated_at = ",
    ts!("$5"),
    " WHERE organization_id = $6"
);

/// Starts an organization's next budget period: its budget row's next end (only when the period
/// has still ended: two gateways do not both reset it) …
const OURS_ROLL_BUDGET: &str = "UPDATE llmgate_budgets SET budget_reset_at = $1 WHERE budget_id = $2 AND budget_reset_at <= $3";
const LITELLM_ROLL_BUDGET: &str = concat!(
    "UPDATE \"LiteLLM_BudgetTable\" SET budget_reset_at = ",
    ts!("$1"),
    " WHERE budget_id = $2 AND budget_reset_at <= ",
    ts!("$3")
);
/// … and the organization's spend from `$1`.
const OURS_SET_SPEND: &str =
    "UPDATE llmgate_organizations SET spend = $1 WHERE organization_id = $2";
const LITELLM_SET_SPEND: &str =
    "UPDATE \"LiteLLM_OrganizationTable\" SET spend = $1 WHERE organization_id = $2";
const OURS_ADD_SPEND: &str =
    "UPDATE llmgate_organizations SET spend = spend + $1 WHERE organization_id = $2";
const LITELLM_ADD_SPEND: &str =
    "UPDATE \"LiteLLM_OrganizationTable\" SET spend = spend + $1 WHERE organization_id = $2";

fn org_row(row: &AnyRow) -> OrgRow {
    OrgRow {
        organization_id: get(row, "organization_id").unwrap_or_default(),
        organization_alias: get(row, "organization_alias").unwrap_or_default(),
        budget_id: get(row, "budget_id").unwrap_or_default(),
        models: parse_list(get(row, "models")),
        spend: get(row, "spend").unwrap_or(0.0),
        limits: limits(row),
        budget_reset_at: get(row, "budget_reset_at"),
        metadata: parse_map(get(row, "metadata")),
        created_by: get(row, "created_by").unwrap_or_default(),
        updated_by: get(row, "updated_by").unwrap_or_default(),
        created_at: get(row, "created_at").unwrap_or(0),
        updated_at: get(row, "updated_at").unwrap_or(0),
    }
}

fn member_row(row: &AnyRow) -> OrgMemberRow {
    OrgMemberRow {
        user_id: get(row, "user_id").unwrap_or_default(),
        organization_id: get(row, "organization_id").unwrap_or_default(),
        user_role: get(row, "user_role"),
        spend: get(row, "spend").unwrap_or(0.0),
        budget_id: get(row, "budget_id"),
        created_at: get(row, "created_at").unwrap_or(0),
        updated_at: get(row, "updated_at").unwrap_or(0),
    }
}

impl Store {
    /// Creates an organization (its budget row must exist); fails if the id exists.
    pub async fn create_org(&self, o: &OrgRow) -> Result<(), StoreError> {
        sqlx::query(self.pick(OURS_INSERT, LITELLM_INSERT))
            .bind(o.organization_id.clone())
            .bind(o.organization_alias.clone())
            .bind(o.budget_id.clone())
            .bind(json_list(&o.models))
            .bind(o.spend)
            .bind(json_map(&o.metadata))
            .bind(o.created_by.clone())
            .bind(o.updated_by.clone())
            .bind(o.created_at)
            .bind(o.updated_at)
            .execute(&self.pool)
            .await
            .map_err(db("insert organization"))?;
        Ok(())
    }

    /// An organization with its budget row's limits, its budget period rolled over first when
    /// it ended.
    pub async fn organization(&self, id: &str) -> Result<Option<OrgRow>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db("read organization"))?;
        Ok(self.org_fresh(&mut conn, id, 0.0).await?.map(|(o, _)| o))
    }

    /// Reads an organization, starting its next budget period first when the current one has
    /// ended (the new period's spend is `carry`; callers that add spend pass what they add).
    /// The flag tells whether this call started the new period.
    async fn org_fresh(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        carry: f64,
    ) -> Result<Option<(OrgRow, bool)>, StoreError> {
        let row = sqlx::query(self.pick(OURS_BY_ID, LITELLM_BY_ID))
            .bind(id.to_owned())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db("read organization"))?;
        let Some(mut o) = row.as_ref().map(org_row) else {
            return Ok(None);
        };
        let now = self.clock.unix_ms();
        let mut started = false;
        if o.budget_reset_at.is_some_and(|r| r <= now) {
            let next = next_reset(o.limits.budget_duration.as_deref(), now);
            let rolled = sqlx::query(self.pick(OURS_ROLL_BUDGET, LITELLM_ROLL_BUDGET))
                .bind(next)
                .bind(o.budget_id.clone())
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(db("reset organization budget"))?;
            if rolled.rows_affected() > 0 {
                sqlx::query(self.pick(OURS_SET_SPEND, LITELLM_SET_SPEND))
                    .bind(carry)
                    .bind(id.to_owned())
                    .execute(&mut *conn)
                    .await
                    .map_err(db("reset organization spend"))?;
                o.spend = carry;
                started = true;
            }
            o.budget_reset_at = next;
        }
        Ok(Some((o, started)))
    }

    /// Replaces an organization's alias, models and metadata (its limits are its budget row's).
    pub async fn update_org(&self, o: &OrgRow) -> Result<bool, StoreError> {
        let res = sqlx::query(self.pick(OURS_UPDATE, LITELLM_UPDATE))
            .bind(o.organization_alias.clone())
            .bind(json_list(&o.models))
            .bind(json_map(&o.metadata))
            .bind(o.updated_by.clone())
            .bind(self.clock.unix_ms())
            .bind(o.organization_id.clone())
            .execute(&self.pool)
            .await
            .map_err(db("update organization"))?;
        Ok(res.rows_affected() > 0)
    }

    /// Deletes an organization as LiteLLM does: its teams, its memberships (and, in LiteLLM's
    /// schema, the keys that name it), then the organization, in one transaction. `false` when
    /// there is no such organization.
    pub async fn delete_org(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("delete organization"))?;
        let stmts: &[&str] = match self.schema {
            Schema::Llmgate => &[
                "DELETE FROM llmgate_teams WHERE organization_id = $1",
                "DELETE FROM llmgate_organization_members WHERE organization_id = $1",
                "DELETE FROM llmgate_organizations WHERE organization_id = $1",
            ],
            Schema::LiteLlm => &[
                "DELETE FROM \"LiteLLM_TeamTable\" WHERE organization_id = $1",
                "DELETE FROM \"LiteLLM_OrganizationMembership\" WHERE organization_id = $1",
                "DELETE FROM \"LiteLLM_VerificationToken\" WHERE organization_id = $1",
                "DELETE FROM \"LiteLLM_OrganizationTable\" WHERE organization_id = $1",
            ],
        };
        let mut last = 0;
        for sql in stmts {
            last = sqlx::query(*sql)
                .bind(id.to_owned())
                .execute(&mut *tx)
                .await
                .map_err(db("delete organization"))?
                .rows_affected();
        }
        tx.commit().await.map_err(db("delete organization"))?;
        Ok(last > 0)
    }

    /// All organizations, ordered by creation.
    pub async fn list_orgs(&self) -> Result<Vec<OrgRow>, StoreError> {
        let rows = sqlx::query(self.pick(
            "SELECT o.organization_id, o.organization_alias, o.budget_id, o.models, o.spend, o.metadata, o.created_by, o.updated_by, o.created_at, o.updated_at, b.max_budget, b.budget_duration, b.budget_reset_at, b.tpm_limit, b.rpm_limit, b.max_parallel_requests FROM llmgate_organizations o LEFT JOIN llmgate_budgets b ON b.budget_id = o.budget_id ORDER BY o.created_at, o.organization_id",
            concat!(litellm_select!(), " ORDER BY o.created_at, o.organization_id"),
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db("list organizations"))?;
        Ok(rows.iter().map(org_row).collect())
    }

    /// The members of an organization (`org = Some`) or the memberships of a user.
    pub async fn org_members(
        &self,
        org: Option<&str>,
        user: Option<&str>,
    ) -> Result<Vec<OrgMemberRow>, StoreError> {
        let sql = match self.schema {
            Schema::Llmgate => "SELECT user_id, organization_id, user_role, spend, budget_id, created_at, updated_at FROM llmgate_organization_members WHERE (CAST($1 AS TEXT) IS NULL OR organization_id = $1) AND (CAST($2 AS TEXT) IS NULL OR user_id = $2) ORDER BY created_at, user_id",
            Schema::LiteLlm => concat!(
                "SELECT user_id, organization_id, user_role, COALESCE(spend, 0) AS spend, budget_id, ",
                ms!("created_at"),
                " AS created_at, ",
                ms!("updated_at"),
                " AS updated_at FROM \"LiteLLM_OrganizationMembership\" WHERE (CAST($1 AS TEXT) IS NULL OR organization_id = $1) AND (CAST($2 AS TEXT) IS NULL OR user_id = $2) ORDER BY created_at, user_id"
            ),
        };
        let rows = sqlx::query(sql)
            .bind(org.map(str::to_owned))
            .bind(user.map(str::to_owned))
            .fetch_all(&self.pool)
            .await
            .map_err(db("read organization members"))?;
        Ok(rows.iter().map(member_row).collect())
    }

    /// One membership.
    pub async fn org_member(
        &self,
        org: &str,
        user: &str,
    ) -> Result<Option<OrgMemberRow>, StoreError> {
        let sql = match self.schema {
            Schema::Llmgate => "SELECT user_id, organization_id, user_role, spend, budget_id, created_at, updated_at FROM llmgate_organization_members WHERE organization_id = $1 AND user_id = $2",
            Schema::LiteLlm => concat!(
                "SELECT user_id, organization_id, user_role, COALESCE(spend, 0) AS spend, budget_id, ",
                ms!("created_at"),
                " AS created_at, ",
                ms!("updated_at"),
                " AS updated_at FROM \"LiteLLM_OrganizationMembership\" WHERE organization_id = $1 AND user_id = $2"
            ),
        };
        let row = sqlx::query(sql)
            .bind(org.to_owned())
            .bind(user.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read organization member"))?;
        Ok(row.as_ref().map(member_row))
    }

    /// Adds a membership, or sets the role and budget of an existing one.
    pub async fn put_org_member(&self, m: &OrgMemberRow) -> Result<(), StoreError> {
        let sql = match self.schema {
            Schema::Llmgate => "INSERT INTO llmgate_organization_members (user_id, organization_id, user_role, spend, budget_id, created_at, updated_at) VALUES ($1, $2, $3, 0, $4, $5, $5) ON CONFLICT (user_id, organization_id) DO UPDATE SET user_role = excluded.user_role, budget_id = excluded.budget_id, updated_at = excluded.updated_at",
            Schema::LiteLlm => concat!(
                "INSERT INTO \"LiteLLM_OrganizationMembership\" (user_id, organization_id, user_role, spend, budget_id, created_at, updated_at) VALUES ($1, $2, $3, 0, $4, ",
                ts!("$5"),
                ", ",
                ts!("$5"),
                ") ON CONFLICT (user_id, organization_id) DO UPDATE SET user_role = excluded.user_role, budget_id = excluded.budget_id, updated_at = excluded.updated_at"
            ),
        };
        sqlx::query(sql)
            .bind(m.user_id.clone())
            .bind(m.organization_id.clone())
            .bind(m.user_role.clone())
            .bind(m.budget_id.clone())
            .bind(self.clock.unix_ms())
            .execute(&self.pool)
            .await
            .map_err(db("write organization member"))?;
        Ok(())
    }

    /// Removes a membership; `false` when there was none.
    pub async fn delete_org_member(&self, org: &str, user: &str) -> Result<bool, StoreError> {
        let res = sqlx::query(self.pick(
            "DELETE FROM llmgate_organization_members WHERE organization_id = $1 AND user_id = $2",
            "DELETE FROM \"LiteLLM_OrganizationMembership\" WHERE organization_id = $1 AND user_id = $2",
        ))
        .bind(org.to_owned())
        .bind(user.to_owned())
        .execute(&self.pool)
        .await
        .map_err(db("delete organization member"))?;
        Ok(res.rows_affected() > 0)
    }

    /// Charges the teams' spend of a batch to their organizations, inside the batch's
    /// transaction; returns what each organization was charged.
    pub(super) async fn charge_orgs(
        &self,
        conn: &mut AnyConnection,
        teams: &HashMap<String, f64>,
    ) -> Result<HashMap<String, f64>, StoreError> {
        let mut orgs: HashMap<String, f64> = HashMap::new();
        for (team, v) in teams {
            let row = sqlx::query(self.pick(
                "SELECT organization_id FROM llmgate_teams WHERE team_id = $1",
                "SELECT organization_id FROM \"LiteLLM_TeamTable\" WHERE team_id = $1",
            ))
            .bind(team.clone())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db("spend: team organization"))?;
            if let Some(org) = row
                .as_ref()
                .and_then(|r| get::<String>(r, "organization_id"))
            {
                *orgs.entry(org).or_default() += *v;
            }
        }
        for (org, v) in &orgs {
            // A period that ended starts again with this spend; otherwise it is added.
            if let Some((_, false)) = self.org_fresh(conn, org, *v).await? {
                sqlx::query(self.pick(OURS_ADD_SPEND, LITELLM_ADD_SPEND))
                    .bind(*v)
                    .bind(org.clone())
                    .execute(&mut *conn)
                    .await
                    .map_err(db("spend: organization"))?;
            }
        }
        Ok(orgs)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::{BudgetRow, EndUserRow, Limits, SpendRow, TeamRow};

    fn budget(id: &str, max: f64, reset_at: Option<i64>) -> BudgetRow {
        BudgetRow {
            budget_id: id.into(),
            limits: Limits {
                max_budget: Some(max),
                budget_duration: Some("1d".into()),
                ..Limits::default()
            },
            budget_reset_at: reset_at,
            ..BudgetRow::default()
        }
    }

    /// A team's calls charge its organization and an end user with a row; a budget period that
    /// ended starts again from the spend of the batch that finds it ended, and the budget row's
    /// next end is set.
    #[tokio::test]
    async fn organizations_and_end_users_are_charged_and_roll_over() {
        let s = Store::connect("sqlite::memory:").await.unwrap();
        s.create_budget(&budget(
            "ob",
            10.0,
            Some(crate::clock::Clock::system().unix_ms() + 3_600_000),
        ))
        .await
        .unwrap();
        s.create_org(&OrgRow {
            organization_id: "o".into(),
            organization_alias: "O".into(),
            budget_id: "ob".into(),
            ..OrgRow::default()
        })
        .await
        .unwrap();
        s.create_team(&TeamRow {
            team_id: "t".into(),
            organization_id: Some("o".into()),
            ..TeamRow::default()
        })
        .await
        .unwrap();
        s.create_budget(&budget(
            "eb",
            1.0,
            Some(crate::clock::Clock::system().unix_ms() - 1),
        ))
        .await
        .unwrap();
        s.create_end_user(&EndUserRow {
            user_id: "cust".into(),
            spend: 7.0,
            budget_id: Some("eb".into()),
            ..EndUserRow::default()
        })
        .await
        .unwrap();
        let row = |id: &str, team: Option<&str>, end_user: Option<&str>, spend: f64| SpendRow {
            request_id: id.into(),
            team_id: team.map(str::to_owned),
            end_user: end_user.map(str::to_owned),
            spend,
            status: "success".into(),
            ..SpendRow::default()
        };
        let totals = s
            .write_spend(&[
                row("a", Some("t"), Some("cust"), 0.25),
                row("b", Some("t"), None, 0.5),
                row("c", None, Some("nobody"), 2.0),
            ])
            .await
            .unwrap();
        assert_eq!(totals.orgs.get("o").copied(), Some(0.75));
        assert_eq!(totals.end_users.get("cust").copied(), Some(0.25));
        let o = s.organization("o").await.unwrap().unwrap();
        assert!((o.spend - 0.75).abs() < 1e-12, "{o:?}");
        assert_eq!(o.limits.max_budget, Some(10.0));
        // The end user's period had ended: the batch's spend starts the new one.
        let e = s.end_user("cust").await.unwrap().unwrap();
        assert!((e.spend - 0.25).abs() < 1e-12, "{e:?}");
        assert!(e.budget_reset_at.unwrap() > crate::clock::Clock::system().unix_ms());
        assert!(s.end_user("nobody").await.unwrap().is_none());
        // An organization whose period ended reads as 0, and its budget row moves on.
        let mut b = s.budget("ob").await.unwrap().unwrap();
        b.budget_reset_at = Some(crate::clock::Clock::system().unix_ms() - 1);
        s.update_budget(&b).await.unwrap();
        let o = s.organization("o").await.unwrap().unwrap();
        assert!(o.spend.abs() < 1e-12, "{o:?}");
        assert!(
            s.budget("ob")
                .await
                .unwrap()
                .unwrap()
                .budget_reset_at
                .unwrap()
                > crate::clock::Clock::system().unix_ms()
        );
        // Deleting the organization takes its team and memberships (LiteLLM's way).
        s.put_org_member(&OrgMemberRow {
            user_id: "u".into(),
            organization_id: "o".into(),
            user_role: Some("org_admin".into()),
            ..OrgMemberRow::default()
        })
        .await
        .unwrap();
        assert_eq!(s.org_members(Some("o"), None).await.unwrap().len(), 1);
        assert!(s.delete_org("o").await.unwrap());
        assert!(s.team("t").await.unwrap().is_none());
        assert!(s.org_members(Some("o"), None).await.unwrap().is_empty());
        assert!(!s.delete_org("o").await.unwrap());
    }
}
