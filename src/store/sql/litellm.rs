//! The SQL of [`Schema::LiteLlm`](super::Schema::LiteLlm): the store's operations over LiteLLM's
//! own PostgreSQL tables, as LiteLLM's Prisma migrations (the `litellm-proxy-extras` package)
//! create them. Nothing here creates or alters a table.
//!
//! Each statement takes the same parameters, in the same order and of the same Rust types, as
//! the statement of llmgate's schema it stands for, and each `SELECT` names its columns as
//! llmgate's tables do (times as Unix milliseconds, lists and maps as JSON text, booleans as
//! 0/1), so the row decoders and the binding code are shared. The conversions happen in SQL:
//!
//! | LiteLLM | llmgate |
//! | --- | --- |
//! | `TIMESTAMP(3)` (UTC, no zone) | Unix ms: `EXTRACT(EPOCH FROM t) * 1000`; written with `to_timestamp(ms / 1000.0) AT TIME ZONE 'UTC'` |
//! | `TEXT[]` | JSON text: `array_to_json`; written with `ARRAY(SELECT jsonb_array_elements_text(…))` |
//! | `JSONB` | JSON text |
//! | `BOOLEAN` | 0/1 |
//!
//! A key's limits are its own columns, else those of its `budget_id`'s `LiteLLM_BudgetTable` row
//! (LiteLLM's `litellm_budget_table`), as LiteLLM reads them.

use std::collections::HashMap;

use super::{
    db, get,
    rollup::{roll_up, Entity},
    Store,
};
use crate::store::{next_reset, BudgetState, SpendRow, SpendTotals, StoreError};

/// Unix milliseconds of a timestamp column (`NULL` stays `NULL`).
macro_rules! ms {
    ($col:literal) => {
        concat!("CAST(EXTRACT(EPOCH FROM ", $col, ") * 1000 AS BIGINT)")
    };
}

/// A timestamp (UTC, no zone, as Prisma stores `DateTime`) from a Unix-ms parameter.
macro_rules! ts {
    ($p:literal) => {
        concat!(
            "(to_timestamp(CAST(",
            $p,
            " AS BIGINT) / 1000.0) AT TIME ZONE 'UTC')"
        )
    };
}

/// A `TEXT[]` from a JSON-list parameter (`NULL` for `NULL`).
macro_rules! arr {
    ($p:literal) => {
        concat!(
            "CASE WHEN CAST(",
            $p,
            " AS TEXT) IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(CAST(",
            $p,
            " AS JSONB))) END"
        )
    };
}

/// A `TEXT[]` column as a JSON list (`[]` for `NULL`).
macro_rules! list {
    ($col:literal) => {
        concat!("COALESCE(CAST(array_to_json(", $col, ") AS TEXT), '[]')")
    };
}

macro_rules! key_select {
    () => {
        concat!(
            "SELECT v.token, v.key_name, v.key_alias, ",
            list!("v.models"),
            " AS models, v.spend, COALESCE(v.max_budget, b.max_budget) AS max_budget, COALESCE(v.budget_duration, b.budget_duration) AS budget_duration, ",
            ms!("v.budget_reset_at"),
            " AS budget_reset_at, CAST(COALESCE(v.tpm_limit, b.tpm_limit) AS BIGINT) AS tpm_limit, CAST(COALESCE(v.rpm_limit, b.rpm_limit) AS BIGINT) AS rpm_limit, CAST(COALESCE(v.max_parallel_requests, b.max_parallel_requests) AS BIGINT) AS max_parallel_requests, CAST(v.metadata AS TEXT) AS metadata, v.team_id, v.user_id, ",
            ms!("v.expires"),
            " AS expires, CAST(CASE WHEN v.blocked THEN 1 ELSE 0 END AS BIGINT) AS blocked, ",
            ms!("v.created_at"),
            " AS created_at, ",
            ms!("v.updated_at"),
            " AS updated_at, CAST(v.model_max_budget AS TEXT) AS model_max_budget, CAST(v.model_spend AS TEXT) AS model_spend FROM \"LiteLLM_VerificationToken\" v LEFT JOIN \"LiteLLM_BudgetTable\" b ON b.budget_id = v.budget_id"
        )
    };
}

macro_rules! team_select {
    () => {
        concat!(
            "SELECT t.team_id, t.team_alias, ",
            list!("t.models"),
            " AS models, t.spend, t.max_budget, t.budget_duration, ",
            ms!("t.budget_reset_at"),
            " AS budget_reset_at, CAST(t.tpm_limit AS BIGINT) AS tpm_limit, CAST(t.rpm_limit AS BIGINT) AS rpm_limit, CAST(t.max_parallel_requests AS BIGINT) AS max_parallel_requests, CAST(t.metadata AS TEXT) AS metadata, CAST(t.members_with_roles AS TEXT) AS members, CAST(CASE WHEN t.blocked THEN 1 ELSE 0 END AS BIGINT) AS blocked, t.organization_id, ",
            ms!("t.created_at"),
            " AS created_at, ",
            ms!("t.updated_at"),
            " AS updated_at FROM \"LiteLLM_TeamTable\" t"
        )
    };
}

macro_rules! user_select {
    () => {
        concat!(
            "SELECT u.user_id, u.user_email, u.user_role, ",
            list!("u.models"),
            " AS models, u.spend, u.max_budget, u.budget_duration, ",
            ms!("u.budget_reset_at"),
            " AS budget_reset_at, CAST(u.tpm_limit AS BIGINT) AS tpm_limit, CAST(u.rpm_limit AS BIGINT) AS rpm_limit, CAST(u.max_parallel_requests AS BIGINT) AS max_parallel_requests, CAST(u.metadata AS TEXT) AS metadata, ",
            list!("u.teams"),
            " AS teams, ",
            ms!("u.created_at"),
            " AS created_at, ",
            ms!("u.updated_at"),
            " AS updated_at FROM \"LiteLLM_UserTable\" u"
        )
    };
}

macro_rules! spend_select {
    () => {
        concat!(
            "SELECT s.request_id, s.api_key, CAST(s.metadata->>'user_api_key_alias' AS TEXT) AS key_alias, s.team_id, NULLIF(s.\"user\", '') AS user_id, COALESCE(s.model_group, '') AS model_group, NULLIF(s.model, '') AS model, NULLIF(s.model_id, '') AS model_id, NULLIF(s.custom_llm_provider, '') AS custom_llm_provider, CAST(s.prompt_tokens AS BIGINT) AS prompt_tokens, CAST(s.completion_tokens AS BIGINT) AS completion_tokens, CAST(s.total_tokens AS BIGINT) AS total_tokens, s.spend, ",
            ms!("s.\"startTime\""),
            " AS start_time, ",
            ms!("s.\"endTime\""),
            " AS end_time, CAST(COALESCE(s.request_duration_ms, EXTRACT(EPOCH FROM (s.\"endTime\" - s.\"startTime\")) * 1000) AS BIGINT) AS latency_ms, CAST(CASE WHEN s.cache_hit = 'True' THEN 1 ELSE 0 END AS BIGINT) AS cache_hit, COALESCE(CAST(s.metadata->>'llmgate_status' AS TEXT), s.status, CAST(s.metadata->>'status' AS TEXT), 'success') AS status, COALESCE(CAST(s.request_tags AS TEXT), '[]') AS request_tags, NULLIF(s.end_user, '') AS end_user FROM \"LiteLLM_SpendLogs\" s"
        )
    };
}

// ---- keys (parameters as in keys.rs) ----

pub(super) const INSERT_KEY: &str = concat!(
    "INSERT INTO \"LiteLLM_VerificationToken\" (token, key_name, key_alias, models, spend, max_budget, budget_duration, budget_reset_at, tpm_limit, rpm_limit, max_parallel_requests, metadata, team_id, user_id, expires, blocked, created_at, updated_at) VALUES ($1, $2, $3, ",
    arr!("$4"),
    ", $5, CAST($6 AS DOUBLE PRECISION), $7, ",
    ts!("$8"),
    ", $9, $10, CAST($11 AS INTEGER), CAST($12 AS JSONB), $13, $14, ",
    ts!("$15"),
    ", CAST($16 AS BIGINT) <> 0, ",
    ts!("$17"),
    ", ",
    ts!("$18"),
    ")"
);
pub(super) const KEY_BY_TOKEN: &str = concat!(key_select!(), " WHERE v.token = $1");
pub(super) const RESET_KEY: &str = concat!(
    "UPDATE \"LiteLLM_VerificationToken\" SET spend = 0, budget_reset_at = ",
    ts!("$1"),
    " WHERE token = $2 AND budget_reset_at <= ",
    ts!("$3")
);
pub(super) const UPDATE_KEY: &str = concat!(
    "UPDATE \"LiteLLM_VerificationToken\" SET key_alias = $1, models = ",
    arr!("$2"),
    ", spend = $3, max_budget = CAST($4 AS DOUBLE PRECISION), budget_duration = $5, budget_reset_at = ",
    ts!("$6"),
    ", tpm_limit = $7, rpm_limit = $8, max_parallel_requests = CAST($9 AS INTEGER), metadata = CAST($10 AS JSONB), team_id = $11, user_id = $12, expires = ",
    ts!("$13"),
    ", blocked = CAST($14 AS BIGINT) <> 0, updated_at = ",
    ts!("$15"),
    " WHERE token = $16"
);
pub(super) const REGENERATE_KEY: &str = concat!(
    "UPDATE \"LiteLLM_VerificationToken\" SET token = $1, key_name = $2, updated_at = ",
    ts!("$3"),
    ", last_rotation_at = ",
    ts!("$3"),
    ", rotation_count = COALESCE(rotation_count, 0) + 1 WHERE token = $4"
);
pub(super) const DELETE_KEY: &str = "DELETE FROM \"LiteLLM_VerificationToken\" WHERE token = $1";
pub(super) const TOKENS_BY_ALIAS: &str =
    "SELECT token FROM \"LiteLLM_VerificationToken\" WHERE key_alias = $1";
pub(super) const COUNT_KEYS: &str = "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM \"LiteLLM_VerificationToken\" WHERE (CAST($1 AS TEXT) IS NULL OR team_id = $1) AND (CAST($2 AS TEXT) IS NULL OR user_id = $2)";
pub(super) const LIST_KEYS: &str = concat!(
    key_select!(),
    " WHERE (CAST($1 AS TEXT) IS NULL OR v.team_id = $1) AND (CAST($2 AS TEXT) IS NULL OR v.user_id = $2) ORDER BY v.created_at, v.token LIMIT $3 OFFSET $4"
);

// ---- teams (parameters as in teams.rs) ----

pub(super) const INSERT_TEAM: &str = concat!(
    // `admins` and `members` have no default in LiteLLM's schema (Prisma writes `{}`); LiteLLM's
    // `LiteLLM_TeamTable` type refuses NULL lists.
    "INSERT INTO \"LiteLLM_TeamTable\" (team_id, team_alias, models, spend, max_budget, budget_duration, budget_reset_at, tpm_limit, rpm_limit, max_parallel_requests, metadata, members_with_roles, blocked, created_at, updated_at, organization_id, admins, members) VALUES ($1, $2, ",
    arr!("$3"),
    ", $4, CAST($5 AS DOUBLE PRECISION), $6, ",
    ts!("$7"),
    ", $8, $9, CAST($10 AS INTEGER), CAST($11 AS JSONB), CAST($12 AS JSONB), CAST($13 AS BIGINT) <> 0, ",
    ts!("$14"),
    ", ",
    ts!("$15"),
    ", $16, ARRAY[]::text[], ARRAY[]::text[])"
);
pub(super) const TEAM_BY_ID: &str = concat!(team_select!(), " WHERE t.team_id = $1");
pub(super) const RESET_TEAM: &str = concat!(
    "UPDATE \"LiteLLM_TeamTable\" SET spend = 0, budget_reset_at = ",
    ts!("$1"),
    " WHERE team_id = $2 AND budget_reset_at <= ",
    ts!("$3")
);
pub(super) const UPDATE_TEAM: &str = concat!(
    "UPDATE \"LiteLLM_TeamTable\" SET team_alias = $1, models = ",
    arr!("$2"),
    ", max_budget = CAST($3 AS DOUBLE PRECISION), budget_duration = $4, budget_reset_at = ",
    ts!("$5"),
    ", tpm_limit = $6, rpm_limit = $7, max_parallel_requests = CAST($8 AS INTEGER), metadata = CAST($9 AS JSONB), members_with_roles = CAST($10 AS JSONB), blocked = CAST($11 AS BIGINT) <> 0, updated_at = ",
    ts!("$12"),
    ", organization_id = $14 WHERE team_id = $13"
);
pub(super) const DELETE_TEAM: &str = "DELETE FROM \"LiteLLM_TeamTable\" WHERE team_id = $1";
pub(super) const LIST_TEAMS: &str = concat!(team_select!(), " ORDER BY t.created_at, t.team_id");

/// A team's memberships (`$1`) or one of them (`$2`: the user), with their budget rows' limits.
pub(super) const TEAM_MEMBERS: &str =
    "SELECT m.user_id, m.team_id, COALESCE(m.spend, 0) AS spend, m.budget_id, b.max_budget, b.budget_duration, CAST(b.tpm_limit AS BIGINT) AS tpm_limit, CAST(b.rpm_limit AS BIGINT) AS rpm_limit, CAST(b.max_parallel_requests AS BIGINT) AS max_parallel_requests FROM \"LiteLLM_TeamMembership\" m LEFT JOIN \"LiteLLM_BudgetTable\" b ON b.budget_id = m.budget_id WHERE m.team_id = $1 AND (CAST($2 AS TEXT) IS NULL OR m.user_id = $2) ORDER BY m.user_id";
/// A membership with its budget row (`$3`), made or re-pointed.
pub(super) const PUT_MEMBER_BUDGET: &str = "INSERT INTO \"LiteLLM_TeamMembership\" (user_id, team_id, budget_id) VALUES ($1, $2, $3) ON CONFLICT (user_id, team_id) DO UPDATE SET budget_id = excluded.budget_id";
/// A team's model aliases: the `aliases` of the `LiteLLM_ModelTable` row its `model_id` names.
pub(super) const TEAM_ALIASES: &str = "SELECT CAST(m.aliases AS TEXT) AS aliases FROM \"LiteLLM_TeamTable\" t JOIN \"LiteLLM_ModelTable\" m ON m.id = t.model_id WHERE t.team_id = $1";
/// Replaces the aliases of the team's existing `LiteLLM_ModelTable` row (`$1` JSON, `$2` who,
/// `$3` the team).
pub(super) const UPDATE_TEAM_ALIASES: &str = "UPDATE \"LiteLLM_ModelTable\" SET aliases = CAST($1 AS JSONB), updated_by = $2, updated_at = (now() AT TIME ZONE 'UTC') WHERE id = (SELECT model_id FROM \"LiteLLM_TeamTable\" WHERE team_id = $3)";
/// Makes the team's `LiteLLM_ModelTable` row (as LiteLLM's `/team/new` does) and links it.
pub(super) const INSERT_TEAM_ALIASES: &str = "WITH m AS (INSERT INTO \"LiteLLM_ModelTable\" (aliases, created_by, updated_by) VALUES (CAST($1 AS JSONB), $2, $2) RETURNING id) UPDATE \"LiteLLM_TeamTable\" SET model_id = (SELECT id FROM m) WHERE team_id = $3";

// ---- users (parameters as in users.rs) ----

pub(super) const INSERT_USER: &str = concat!(
    "INSERT INTO \"LiteLLM_UserTable\" (user_id, user_email, user_role, models, spend, max_budget, budget_duration, budget_reset_at, tpm_limit, rpm_limit, max_parallel_requests, metadata, teams, created_at, updated_at) VALUES ($1, $2, $3, ",
    arr!("$4"),
    ", $5, CAST($6 AS DOUBLE PRECISION), $7, ",
    ts!("$8"),
    ", $9, $10, CAST($11 AS INTEGER), CAST($12 AS JSONB), ",
    arr!("$13"),
    ", ",
    ts!("$14"),
    ", ",
    ts!("$15"),
    ")"
);
pub(super) const USER_BY_ID: &str = concat!(user_select!(), " WHERE u.user_id = $1");
pub(super) const RESET_USER: &str = concat!(
    "UPDATE \"LiteLLM_UserTable\" SET spend = 0, budget_reset_at = ",
    ts!("$1"),
    " WHERE user_id = $2 AND budget_reset_at <= ",
    ts!("$3")
);
pub(super) const SET_USER_TEAMS: &str = concat!(
    "UPDATE \"LiteLLM_UserTable\" SET teams = ",
    arr!("$1"),
    ", updated_at = ",
    ts!("$2"),
    " WHERE user_id = $3"
);
/// LiteLLM keeps a membership row per (user, team) for per-member spend and budgets.
pub(super) const ADD_MEMBERSHIP: &str = "INSERT INTO \"LiteLLM_TeamMembership\" (user_id, team_id) VALUES ($1, $2) ON CONFLICT (user_id, team_id) DO NOTHING";
pub(super) const UPDATE_USER: &str = concat!(
    "UPDATE \"LiteLLM_UserTable\" SET user_email = $1, user_role = $2, models = ",
    arr!("$3"),
    ", max_budget = CAST($4 AS DOUBLE PRECISION), budget_duration = $5, budget_reset_at = ",
    ts!("$6"),
    ", tpm_limit = $7, rpm_limit = $8, max_parallel_requests = CAST($9 AS INTEGER), metadata = CAST($10 AS JSONB), teams = ",
    arr!("$11"),
    ", updated_at = ",
    ts!("$12"),
    " WHERE user_id = $13"
);
pub(super) const DELETE_USER: &str = "DELETE FROM \"LiteLLM_UserTable\" WHERE user_id = $1";
pub(super) const DELETE_MEMBERSHIPS_OF_USER: &str =
    "DELETE FROM \"LiteLLM_TeamMembership\" WHERE user_id = $1";
pub(super) const DELETE_MEMBERSHIP: &str =
    "DELETE FROM \"LiteLLM_TeamMembership\" WHERE user_id = $1 AND team_id = $2";
pub(super) const COUNT_USERS: &str = "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM \"LiteLLM_UserTable\" WHERE user_id <> 'litellm-proxy-budget' AND (CAST($1 AS TEXT) IS NULL OR user_role = $1)";
pub(super) const LIST_USERS: &str = concat!(
    user_select!(),
    " WHERE u.user_id <> 'litellm-proxy-budget' AND (CAST($1 AS TEXT) IS NULL OR u.user_role = $1) ORDER BY u.created_at, u.user_id LIMIT $2 OFFSET $3"
);
pub(super) const UPDATE_PROXY_BUDGET: &str = concat!(
    "UPDATE \"LiteLLM_UserTable\" SET max_budget = CAST($1 AS DOUBLE PRECISION), budget_duration = $2, budget_reset_at = ",
    ts!("$3"),
    ", spend = $4, updated_at = ",
    ts!("$5"),
    " WHERE user_id = $6"
);

// ---- budgets (parameters as in budgets.rs) ----

macro_rules! budget_select {
    () => {
        concat!(
            "SELECT b.budget_id, b.max_budget, b.soft_budget, b.budget_duration, ",
            ms!("b.budget_reset_at"),
            " AS budget_reset_at, CAST(b.tpm_limit AS BIGINT) AS tpm_limit, CAST(b.rpm_limit AS BIGINT) AS rpm_limit, CAST(b.max_parallel_requests AS BIGINT) AS max_parallel_requests, b.created_by, b.updated_by, ",
            ms!("b.created_at"),
            " AS created_at, ",
            ms!("b.updated_at"),
            " AS updated_at FROM \"LiteLLM_BudgetTable\" b"
        )
    };
}

pub(super) const INSERT_BUDGET: &str = concat!(
    "INSERT INTO \"LiteLLM_BudgetTable\" (budget_id, max_budget, soft_budget, budget_duration, budget_reset_at, tpm_limit, rpm_limit, max_parallel_requests, created_by, updated_by, created_at, updated_at) VALUES ($1, CAST($2 AS DOUBLE PRECISION), CAST($3 AS DOUBLE PRECISION), $4, ",
    ts!("$5"),
    ", $6, $7, CAST($8 AS INTEGER), $9, $10, ",
    ts!("$11"),
    ", ",
    ts!("$12"),
    ")"
);
pub(super) const BUDGET_BY_ID: &str = concat!(budget_select!(), " WHERE b.budget_id = $1");
pub(super) const UPDATE_BUDGET: &str = concat!(
    "UPDATE \"LiteLLM_BudgetTable\" SET max_budget = CAST($1 AS DOUBLE PRECISION), soft_budget = CAST($2 AS DOUBLE PRECISION), budget_duration = $3, budget_reset_at = ",
    ts!("$4"),
    ", tpm_limit = $5, rpm_limit = $6, max_parallel_requests = CAST($7 AS INTEGER), updated_by = $8, updated_at = ",
    ts!("$9"),
    " WHERE budget_id = $10"
);
pub(super) const DELETE_BUDGET: &str = "DELETE FROM \"LiteLLM_BudgetTable\" WHERE budget_id = $1";
pub(super) const LIST_BUDGETS: &str =
    concat!(budget_select!(), " ORDER BY b.created_at, b.budget_id");

// ---- spend (parameters as in spend.rs) ----

/// The filters of `/spend/logs` (parameters as in spend.rs: `$1`-`$6`, `$8`-`$10`).
macro_rules! spend_where {
    () => {
        concat!(
            " WHERE (CAST($1 AS TEXT) IS NULL OR s.api_key = $1) AND (CAST($2 AS TEXT) IS NULL OR s.\"user\" = $2) AND (CAST($3 AS TEXT) IS NULL OR s.team_id = $3) AND (CAST($4 AS TEXT) IS NULL OR s.request_id = $4) AND (CAST($5 AS BIGINT) IS NULL OR s.\"startTime\" >= ",
            ts!("$5"),
            ") AND (CAST($6 AS BIGINT) IS NULL OR s.\"startTime\" < ",
            ts!("$6"),
            ") AND (CAST($8 AS TEXT) IS NULL OR s.end_user = $8) AND (CAST($9 AS TEXT) IS NULL OR s.model_group = $9) AND (CAST($10 AS TEXT) IS NULL OR (CAST($10 AS TEXT) = 'success') = (s.status = 'success'))"
        )
    };
}

pub(super) const SPEND_LOGS: &str = concat!(
    spend_select!(),
    spend_where!(),
    " ORDER BY s.\"startTime\" DESC, s.request_id LIMIT $7 OFFSET $11"
);
/// The rows `SPEND_LOGS` pages through (`$7` and `$11` are bound and unused).
pub(super) const COUNT_SPEND_LOGS_WHERE: &str = concat!(
    "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM \"LiteLLM_SpendLogs\" s",
    spend_where!(),
    " AND CAST($7 AS BIGINT) IS NOT NULL AND CAST($11 AS BIGINT) IS NOT NULL"
);
/// `/global/spend/report` (parameters as in spend.rs).
pub(super) const SPEND_REPORT: &str = concat!(
    "SELECT CAST(FLOOR(EXTRACT(EPOCH FROM s.\"startTime\") / 86400) AS BIGINT) AS day, s.team_id, t.team_alias, NULLIF(s.end_user, '') AS end_user, s.api_key, COALESCE(s.model, '') AS model, CAST(SUM(s.spend) AS DOUBLE PRECISION) AS spend, CAST(SUM(s.prompt_tokens) AS BIGINT) AS prompt_tokens, CAST(SUM(s.completion_tokens) AS BIGINT) AS completion_tokens, CAST(SUM(s.total_tokens) AS BIGINT) AS total_tokens FROM \"LiteLLM_SpendLogs\" s LEFT JOIN \"LiteLLM_TeamTable\" t ON t.team_id = s.team_id WHERE s.\"startTime\" >= ",
    ts!("$1"),
    " AND s.\"startTime\" < ",
    ts!("$2"),
    " AND (CAST($3 AS TEXT) IS NULL OR s.api_key = $3) AND (CAST($4 AS TEXT) IS NULL OR s.\"user\" = $4) AND (CAST($5 AS TEXT) IS NULL OR s.team_id = $5) AND (CAST($6 AS TEXT) IS NULL OR s.end_user = $6) GROUP BY 1, s.team_id, t.team_alias, 4, s.api_key, 6 ORDER BY 1, 2, 4, 5, 6"
);
pub(super) const GLOBAL_SPEND: &str =
    "SELECT CAST(COALESCE(SUM(spend), 0) AS DOUBLE PRECISION) AS s FROM \"LiteLLM_SpendLogs\"";
pub(super) const COUNT_SPEND_LOGS: &str =
    "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM \"LiteLLM_SpendLogs\"";

pub(super) const DAILY_USER: &str = "SELECT date, user_id AS entity, api_key, COALESCE(model, '') AS model, COALESCE(custom_llm_provider, '') AS provider, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests FROM \"LiteLLM_DailyUserSpend\" WHERE user_id IS NOT NULL AND user_id <> '' AND (CAST($1 AS TEXT) IS NULL OR user_id = $1) AND date >= $2 AND date <= $3 ORDER BY date, user_id, api_key, model";
pub(super) const DAILY_TEAM: &str = "SELECT date, team_id AS entity, api_key, COALESCE(model, '') AS model, COALESCE(custom_llm_provider, '') AS provider, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests FROM \"LiteLLM_DailyTeamSpend\" WHERE team_id IS NOT NULL AND team_id <> '' AND (CAST($1 AS TEXT) IS NULL OR team_id = $1) AND date >= $2 AND date <= $3 ORDER BY date, team_id, api_key, model";
/// `/global/spend/report` from LiteLLM's team rollup (as [`super::rollup`]'s): `$1`, `$2` first
/// and last date, `$3` team, `$4` key.
pub(super) const REPORT_TEAM: &str = "SELECT d.date, d.team_id AS entity, t.team_alias, d.api_key, COALESCE(d.model, '') AS model, CAST(SUM(d.spend) AS DOUBLE PRECISION) AS spend, CAST(SUM(d.prompt_tokens) AS BIGINT) AS prompt_tokens, CAST(SUM(d.completion_tokens) AS BIGINT) AS completion_tokens FROM \"LiteLLM_DailyTeamSpend\" d LEFT JOIN \"LiteLLM_TeamTable\" t ON t.team_id = d.team_id WHERE d.date >= $1 AND d.date <= $2 AND (CAST($3 AS TEXT) IS NULL OR d.team_id = $3) AND (CAST($4 AS TEXT) IS NULL OR d.api_key = $4) GROUP BY d.date, d.team_id, t.team_alias, d.api_key, 5";
/// The same from the user rollup (`$3` user).
pub(super) const REPORT_USER: &str = "SELECT d.date, d.user_id AS entity, d.api_key, COALESCE(d.model, '') AS model, CAST(SUM(d.spend) AS DOUBLE PRECISION) AS spend, CAST(SUM(d.prompt_tokens) AS BIGINT) AS prompt_tokens, CAST(SUM(d.completion_tokens) AS BIGINT) AS completion_tokens FROM \"LiteLLM_DailyUserSpend\" d WHERE d.date >= $1 AND d.date <= $2 AND (CAST($3 AS TEXT) IS NULL OR d.user_id = $3) AND (CAST($4 AS TEXT) IS NULL OR d.api_key = $4) GROUP BY d.date, d.user_id, d.api_key, 4";
/// The same from the end-user rollup (`$3` end user).
pub(super) const REPORT_END_USER: &str = "SELECT d.date, d.end_user_id AS entity, d.api_key, COALESCE(d.model, '') AS model, CAST(SUM(d.spend) AS DOUBLE PRECISION) AS spend, CAST(SUM(d.prompt_tokens) AS BIGINT) AS prompt_tokens, CAST(SUM(d.completion_tokens) AS BIGINT) AS completion_tokens FROM \"LiteLLM_DailyEndUserSpend\" d WHERE d.date >= $1 AND d.date <= $2 AND (CAST($3 AS TEXT) IS NULL OR d.end_user_id = $3) AND (CAST($4 AS TEXT) IS NULL OR d.api_key = $4) GROUP BY d.date, d.end_user_id, d.api_key, 4";

/// One spend-log row as LiteLLM writes it (`LiteLLM_SpendLogs`).
const INSERT_SPEND: &str = concat!(
    "INSERT INTO \"LiteLLM_SpendLogs\" (request_id, call_type, api_key, spend, total_tokens, prompt_tokens, completion_tokens, \"startTime\", \"endTime\", model, model_id, model_group, custom_llm_provider, api_base, \"user\", metadata, cache_hit, cache_key, request_tags, team_id, status, request_duration_ms, litellm_call_id, end_user) VALUES ($1, $2, $3, $4, CAST($5 AS INTEGER), CAST($6 AS INTEGER), CAST($7 AS INTEGER), ",
    ts!("$8"),
    ", ",
    ts!("$9"),
    ", $10, $11, $12, $13, '', $14, CAST($15 AS JSONB), $16, '', CAST($17 AS JSONB), $18, $19, CAST($20 AS INTEGER), $1, $21) ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
);

/// The daily rollups LiteLLM's UI, `/user/daily/activity`, `/team/daily/activity` and
/// `/global/spend/report` read (user, team, end user, tag: [`Entity`] order): add to an existing
/// (entity, date, key, model, provider) row …
const DAILY_UPDATE: [&str; 4] = [
    "UPDATE \"LiteLLM_DailyUserSpend\" SET prompt_tokens = prompt_tokens + $6, completion_tokens = completion_tokens + $7, spend = spend + $8, api_requests = api_requests + $9, successful_requests = successful_requests + $10, failed_requests = failed_requests + $11, updated_at = (now() AT TIME ZONE 'UTC') WHERE user_id = $1 AND date = $2 AND api_key = $3 AND model IS NOT DISTINCT FROM $4 AND custom_llm_provider IS NOT DISTINCT FROM $5 AND mcp_namespaced_tool_name IS NULL AND endpoint IS NULL",
    "UPDATE \"LiteLLM_DailyTeamSpend\" SET prompt_tokens = prompt_tokens + $6, completion_tokens = completion_tokens + $7, spend = spend + $8, api_requests = api_requests + $9, successful_requests = successful_requests + $10, failed_requests = failed_requests + $11, updated_at = (now() AT TIME ZONE 'UTC') WHERE team_id = $1 AND date = $2 AND api_key = $3 AND model IS NOT DISTINCT FROM $4 AND custom_llm_provider IS NOT DISTINCT FROM $5 AND mcp_namespaced_tool_name IS NULL AND endpoint IS NULL",
    "UPDATE \"LiteLLM_DailyEndUserSpend\" SET prompt_tokens = prompt_tokens + $6, completion_tokens = completion_tokens + $7, spend = spend + $8, api_requests = api_requests + $9, successful_requests = successful_requests + $10, failed_requests = failed_requests + $11, updated_at = (now() AT TIME ZONE 'UTC') WHERE end_user_id = $1 AND date = $2 AND api_key = $3 AND model IS NOT DISTINCT FROM $4 AND custom_llm_provider IS NOT DISTINCT FROM $5 AND mcp_namespaced_tool_name IS NULL AND endpoint IS NULL",
    "UPDATE \"LiteLLM_DailyTagSpend\" SET prompt_tokens = prompt_tokens + $6, completion_tokens = completion_tokens + $7, spend = spend + $8, api_requests = api_requests + $9, successful_requests = successful_requests + $10, failed_requests = failed_requests + $11, updated_at = (now() AT TIME ZONE 'UTC') WHERE tag = $1 AND date = $2 AND api_key = $3 AND model IS NOT DISTINCT FROM $4 AND custom_llm_provider IS NOT DISTINCT FROM $5 AND mcp_namespaced_tool_name IS NULL AND endpoint IS NULL",
];
/// … or create it (`id` is a UUID, as Prisma's `@default(uuid())`).
const DAILY_INSERT: [&str; 4] = [
    "INSERT INTO \"LiteLLM_DailyUserSpend\" (id, user_id, date, api_key, model, model_group, custom_llm_provider, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests, updated_at) VALUES (CAST(gen_random_uuid() AS TEXT), $1, $2, $3, $4, $12, $5, $6, $7, $8, $9, $10, $11, (now() AT TIME ZONE 'UTC'))",
    "INSERT INTO \"LiteLLM_DailyTeamSpend\" (id, team_id, date, api_key, model, model_group, custom_llm_provider, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests, updated_at) VALUES (CAST(gen_random_uuid() AS TEXT), $1, $2, $3, $4, $12, $5, $6, $7, $8, $9, $10, $11, (now() AT TIME ZONE 'UTC'))",
    "INSERT INTO \"LiteLLM_DailyEndUserSpend\" (id, end_user_id, date, api_key, model, model_group, custom_llm_provider, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests, updated_at) VALUES (CAST(gen_random_uuid() AS TEXT), $1, $2, $3, $4, $12, $5, $6, $7, $8, $9, $10, $11, (now() AT TIME ZONE 'UTC'))",
    "INSERT INTO \"LiteLLM_DailyTagSpend\" (id, tag, date, api_key, model, model_group, custom_llm_provider, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests, updated_at, request_id) VALUES (CAST(gen_random_uuid() AS TEXT), $1, $2, $3, $4, $12, $5, $6, $7, $8, $9, $10, $11, (now() AT TIME ZONE 'UTC'), $13)",
];

/// `YYYY-MM-DD` (UTC) of a Unix-ms time, as LiteLLM's `date` column.
pub(crate) fn day(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The `metadata` of a spend-log row: the fields LiteLLM's own rows carry that llmgate knows,
/// plus `llmgate_status` when the call was cut short (`client_closed`, `cut_at_shutdown`).
fn spend_metadata(r: &SpendRow) -> String {
    let mut m = serde_json::Map::new();
    m.insert("user_api_key".into(), r.api_key.clone().into());
    m.insert("user_api_key_alias".into(), r.key_alias.clone().into());
    m.insert("user_api_key_team_id".into(), r.team_id.clone().into());
    m.insert("user_api_key_user_id".into(), r.user_id.clone().into());
    m.insert("status".into(), litellm_status(&r.status).into());
    if litellm_status(&r.status) != r.status {
        m.insert("llmgate_status".into(), r.status.clone().into());
    }
    serde_json::Value::Object(m).to_string()
}

/// LiteLLM's two statuses: `success`, and `failure` for everything else (a call cut short
/// included; its own reason goes to `metadata.llmgate_status`).
fn litellm_status(s: &str) -> &'static str {
    if s == "success" {
        "success"
    } else {
        "failure"
    }
}

impl Store {
    /// [`Store::write_spend`] and friends over LiteLLM's tables: `LiteLLM_SpendLogs` rows, the
    /// key, team, user, team-membership and proxy-budget totals, and the daily rollups
    /// (`LiteLLM_DailyUserSpend`, `LiteLLM_DailyTeamSpend`), in one transaction.
    pub(super) async fn litellm_record_spend(
        &self,
        rows: &[SpendRow],
        log: bool,
        stored_now: bool,
    ) -> Result<SpendTotals, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("spend: begin"))?;
        let mut inserted = std::collections::HashSet::new();
        if log {
            for r in rows {
                let got = sqlx::query(INSERT_SPEND)
                    .bind(r.request_id.clone())
                    // As `/spend/logs` reports every row (the row does not record the operation).
                    .bind("acompletion")
                    .bind(r.api_key.clone())
                    .bind(r.spend)
                    .bind(r.total_tokens)
                    .bind(r.prompt_tokens)
                    .bind(r.completion_tokens)
                    .bind(r.start_time)
                    .bind(r.end_time)
                    .bind(r.model.clone().unwrap_or_default())
                    .bind(r.model_id.clone().unwrap_or_default())
                    .bind(r.model_group.clone())
                    .bind(r.custom_llm_provider.clone().unwrap_or_default())
                    .bind(r.user_id.clone().unwrap_or_default())
                    .bind(spend_metadata(r))
                    .bind(if r.cache_hit { "True" } else { "False" })
                    .bind(serde_json::to_string(&r.request_tags).unwrap_or_else(|_| "[]".into()))
                    .bind(r.team_id.clone())
                    .bind(litellm_status(&r.status))
                    .bind(r.latency_ms.clamp(0, i64::from(i32::MAX)))
                    .bind(r.end_user.clone().unwrap_or_default())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db("spend: insert"))?;
                if got.is_some() {
                    inserted.insert(r.request_id.clone());
                }
            }
        }
        let counted = |r: &SpendRow| !stored_now || inserted.contains(&r.request_id);
        let totals = super::spend::totals_of(rows.iter().filter(|r| counted(r)));
        let now = self.clock.unix_ms();
        // Totals: the budget period rolls over first where it has ended.
        for (table, id_col, map) in [
            ("\"LiteLLM_VerificationToken\"", "token", &totals.keys),
            ("\"LiteLLM_TeamTable\"", "team_id", &totals.teams),
            ("\"LiteLLM_UserTable\"", "user_id", &totals.users),
        ] {
            for (id, v) in map {
                add_total(&mut tx, table, id_col, id, *v, now).await?;
            }
        }
        if totals.proxy != 0.0 {
            add_total(
                &mut tx,
                "\"LiteLLM_UserTable\"",
                "user_id",
                crate::store::PROXY_BUDGET_ID,
                totals.proxy,
                now,
            )
            .await?;
        }
        // Per-member team spend, as LiteLLM keeps it.
        let mut members: HashMap<(&str, &str), f64> = HashMap::new();
        for r in rows.iter().filter(|r| counted(r) && r.spend != 0.0) {
            if let (Some(t), Some(u)) = (&r.team_id, &r.user_id) {
                *members.entry((t.as_str(), u.as_str())).or_default() += r.spend;
            }
        }
        for ((team, user), v) in members {
            sqlx::query("UPDATE \"LiteLLM_TeamMembership\" SET spend = spend + $1, total_spend = total_spend + $1 WHERE team_id = $2 AND user_id = $3")
                .bind(v)
                .bind(team.to_owned())
                .bind(user.to_owned())
                .execute(&mut *tx)
                .await
                .map_err(db("spend: team member"))?;
        }
        // Daily rollups: every counted call, also one that cost nothing. LiteLLM's unique
        // indexes take in two columns llmgate leaves NULL (`mcp_namespaced_tool_name`,
        // `endpoint`), so ON CONFLICT cannot find the row: update it, else insert it.
        let rollups = roll_up(rows.iter().filter(|r| counted(r)));
        for which in Entity::ALL {
            for ((id, days, key, model, provider), d) in &rollups.maps[which as usize] {
                let date = day(days.saturating_mul(86_400_000));
                let mut done = false;
                for sql in [DAILY_UPDATE[which as usize], DAILY_INSERT[which as usize]] {
                    if done {
                        break;
                    }
                    let mut q = sqlx::query(sql)
                        .bind(id.clone())
                        .bind(date.clone())
                        .bind(key.clone())
                        .bind(model.clone())
                        .bind(provider.clone())
                        .bind(d.prompt)
                        .bind(d.completion)
                        .bind(d.spend)
                        .bind(d.requests)
                        .bind(d.ok)
                        .bind(d.failed);
                    if sql == DAILY_INSERT[which as usize] {
                        q = q.bind(d.model_group.clone());
                        if which == Entity::Tag {
                            q = q.bind(d.request_id.clone());
                        }
                    }
                    let res = q.execute(&mut *tx).await.map_err(db("spend: daily"))?;
                    done = res.rows_affected() > 0;
                }
            }
        }
        let mut totals = totals;
        // Each team's organization is charged its teams' spend; end users with a row theirs.
        totals.orgs = self.charge_orgs(&mut tx, &totals.teams).await?;
        self.charge_end_users(&mut tx, &totals.end_users).await?;
        totals.key_models = self
            .charge_model_budgets(&mut tx, rows.iter().filter(|r| counted(r)))
            .await?;
        if totals.proxy != 0.0 {
            let row = sqlx::query(concat!(
                "SELECT spend, ",
                ms!("budget_reset_at"),
                " AS budget_reset_at FROM \"LiteLLM_UserTable\" WHERE user_id = $1"
            ))
            .bind(crate::store::PROXY_BUDGET_ID)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("spend: read proxy budget"))?;
            totals.proxy_budget = row.map(|r| BudgetState {
                spend: get(&r, "spend").unwrap_or(0.0),
                reset_at: get(&r, "budget_reset_at"),
            });
        }
        tx.commit().await.map_err(db("spend: commit"))?;
        Ok(totals)
    }
}

/// Adds `v` to one row's `spend` (`table` and `id_col` are constants), starting the next budget
/// period first when this one ended. A row that does not exist is left alone.
async fn add_total(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    id_col: &str,
    id: &str,
    v: f64,
    now: i64,
) -> Result<(), StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT budget_duration, {} AS budget_reset_at FROM {table} WHERE {id_col} = $1",
        ms!("budget_reset_at")
    )))
    .bind(id.to_owned())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db("spend: read period"))?;
    let Some(row) = row else { return Ok(()) };
    let duration: Option<String> = get(&row, "budget_duration");
    let reset_at: Option<i64> = get(&row, "budget_reset_at");
    if reset_at.is_some_and(|r| r <= now) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET spend = $1, budget_reset_at = {} WHERE {id_col} = $3",
            ts!("$2")
        )))
        .bind(v)
        .bind(next_reset(duration.as_deref(), now))
        .bind(id.to_owned())
        .execute(&mut **tx)
        .await
        .map_err(db("spend: new period"))?;
    } else {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET spend = spend + $1 WHERE {id_col} = $2"
        )))
        .bind(v)
        .bind(id.to_owned())
        .execute(&mut **tx)
        .await
        .map_err(db("spend: total"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(951_782_400_000), "2000-02-29");
        assert_eq!(day(1_767_225_599_999), "2025-12-31");
        assert_eq!(day(1_767_225_600_000), "2026-01-01");
        assert_eq!(day(-1), "1969-12-31");
    }

    #[test]
    fn statuses_are_litellms_two() {
        assert_eq!(litellm_status("success"), "success");
        assert_eq!(litellm_status("failure"), "failure");
        assert_eq!(litellm_status("client_closed"), "failure");
        let m: serde_json::Value = serde_json::from_str(&spend_metadata(&SpendRow {
            status: "client_closed".into(),
            api_key: "h".into(),
            ..SpendRow::default()
        }))
        .unwrap_or_default();
        assert_eq!(m["llmgate_status"], "client_closed");
        assert_eq!(m["status"], "failure");
        assert_eq!(m["user_api_key"], "h");
    }
}
