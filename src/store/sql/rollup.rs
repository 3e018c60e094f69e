//! Daily spend rollups, as LiteLLM keeps them: per (entity, UTC day, key, model, provider), the
//! tokens, spend and request counts of the calls, for four entities — the user, the team, the
//! end user and each request tag (LiteLLM's `LiteLLM_DailyUserSpend`, `LiteLLM_DailyTeamSpend`,
//! `LiteLLM_DailyEndUserSpend`, `LiteLLM_DailyTagSpend`; llmgate's `llmgate_daily_*_spend`,
//! migration 10).
//!
//! The spend writer adds a batch's rollups in the transaction that stores its log rows
//! ([`Store::write_spend`]), off the request path; a retried batch adds only the rows it stores.
//! Which calls go where follows LiteLLM's writer (`DBSpendUpdateWriter`): every call has a user
//! row and a team row (`''` when the key has no user or team), an end-user row when the call
//! names one, and a row per request tag.
//!
//! `/user/daily/activity`, `/team/daily/activity` and `/global/spend/report` read the rollups
//! ([`Store::daily_spend`], [`Store::spend_report_grouped`]); a report whose filters no single
//! rollup holds (a team *and* an end user, say) reads the log through its indexes.

use std::collections::BTreeMap;

use super::{db, get, litellm, Backend, Schema, Store};
use crate::store::{ReportRow, SpendFilter, SpendRow, StoreError};

/// How `/global/spend/report` groups its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportGroup {
    /// Per day and team (`group_by=team`, the default).
    Team,
    /// Per day and end user (`group_by=customer`).
    Customer,
    /// Per key and model (`group_by=api_key`, or a report narrowed to a key or a user).
    ApiKey,
}

/// The four rollups, in the order of [`Rollups::maps`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Entity {
    User,
    Team,
    EndUser,
    Tag,
}

impl Entity {
    pub(super) const ALL: [Self; 4] = [Self::User, Self::Team, Self::EndUser, Self::Tag];

    /// llmgate's table and its entity column.
    fn ours(self) -> (&'static str, &'static str) {
        match self {
            Self::User => ("llmgate_daily_user_spend", "user_id"),
            Self::Team => ("llmgate_daily_team_spend", "team_id"),
            Self::EndUser => ("llmgate_daily_end_user_spend", "end_user_id"),
            Self::Tag => ("llmgate_daily_tag_spend", "tag"),
        }
    }
}

/// One rollup row's key: (entity, day since 1970-01-01, key hash, model, provider); `''` for
/// none.
pub(super) type DayKey = (String, i64, String, String, String);

/// What one batch adds to one rollup row.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Daily {
    pub(super) model_group: String,
    pub(super) prompt: i64,
    pub(super) completion: i64,
    pub(super) spend: f64,
    pub(super) requests: i64,
    pub(super) ok: i64,
    pub(super) failed: i64,
    /// The last call's id (LiteLLM's tag rows carry one).
    pub(super) request_id: String,
}

/// A batch's rollups, each sorted by key (two writers lock rows in the same order).
#[derive(Debug, Default)]
pub(super) struct Rollups {
    pub(super) maps: [BTreeMap<DayKey, Daily>; 4],
}

/// The UTC day of a Unix-ms time, as days since 1970-01-01.
pub(super) fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (LiteLLM's `date` column).
pub(super) fn days_of_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Sums `rows` into the four rollups, as LiteLLM's writer files them: a user and a team row for
/// every call (`''` when none), an end-user row when the call names one, a row per tag.
pub(super) fn roll_up<'a>(rows: impl Iterator<Item = &'a SpendRow>) -> Rollups {
    let mut out = Rollups::default();
    for r in rows {
        let day = day_of(r.start_time);
        let model = r.model.clone().unwrap_or_default();
        let provider = r.custom_llm_provider.clone().unwrap_or_default();
        let mut add = |which: Entity, id: &str| {
            let d = out.maps[which as usize]
                .entry((
                    id.to_owned(),
                    day,
                    r.api_key.clone(),
                    model.clone(),
                    provider.clone(),
                ))
                .or_default();
            d.model_group.clone_from(&r.model_group);
            d.prompt += r.prompt_tokens;
            d.completion += r.completion_tokens;
            d.spend += r.spend;
            d.requests += 1;
            if r.status == "success" {
                d.ok += 1;
            } else {
                d.failed += 1;
            }
            d.request_id.clone_from(&r.request_id);
        };
        add(Entity::User, r.user_id.as_deref().unwrap_or(""));
        add(Entity::Team, r.team_id.as_deref().unwrap_or(""));
        if let Some(e) = r.end_user.as_deref().filter(|e| !e.is_empty()) {
            add(Entity::EndUser, e);
        }
        let mut tags: Vec<&str> = r
            .request_tags
            .iter()
            .map(String::as_str)
            .filter(|t| !t.is_empty())
            .collect();
        tags.sort_unstable();
        tags.dedup();
        for t in tags {
            add(Entity::Tag, t);
        }
    }
    out
}

/// Rows per rollup upsert statement, largest first (14 parameters a row).
const UPSERT_SIZES: [usize; 4] = [64, 16, 4, 1];

/// `INSERT … VALUES (…) × n ON CONFLICT (key) DO UPDATE SET col = col + excluded.col` into one
/// of llmgate's rollup tables.
fn upsert_sql(which: Entity, n: usize, backend: Backend) -> String {
    use std::fmt::Write as _;
    const COLS: usize = 14;
    let (table, col) = which.ours();
    let mut sql = String::with_capacity(600 + n * COLS * 5);
    let _ = write!(
        sql,
        "INSERT INTO {table} ({col}, day, api_key, model, custom_llm_provider, model_group, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests, created_at, updated_at) VALUES "
    );
    for row in 0..n {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for c in 0..COLS {
            if c > 0 {
                sql.push(',');
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${}", row * COLS + c + 1);
                }
            }
        }
        sql.push(')');
    }
    let _ = write!(
        sql,
        " ON CONFLICT ({col}, day, api_key, model, custom_llm_provider) DO UPDATE SET model_group = excluded.model_group"
    );
    for c in [
        "prompt_tokens",
        "completion_tokens",
        "spend",
        "api_requests",
        "successful_requests",
        "failed_requests",
    ] {
        let _ = write!(sql, ", {c} = {table}.{c} + excluded.{c}");
    }
    sql.push_str(", updated_at = excluded.updated_at");
    sql
}

impl Store {
    /// Adds a batch's rollups to llmgate's tables inside the batch's transaction.
    pub(super) async fn write_rollups(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        rollups: &Rollups,
        now: i64,
    ) -> Result<(), StoreError> {
        for which in Entity::ALL {
            let entries: Vec<(&DayKey, &Daily)> = rollups.maps[which as usize].iter().collect();
            let mut rest = entries.as_slice();
            while !rest.is_empty() {
                let n = UPSERT_SIZES
                    .iter()
                    .copied()
                    .find(|n| *n <= rest.len())
                    .unwrap_or(1);
                let (chunk, tail) = rest.split_at(n);
                rest = tail;
                let mut q = sqlx::query(sqlx::AssertSqlSafe(upsert_sql(which, n, self.backend)));
                for ((id, day, key, model, provider), d) in chunk {
                    q = q
                        .bind(id.clone())
                        .bind(*day)
                        .bind(key.clone())
                        .bind(model.clone())
                        .bind(provider.clone())
                        .bind(d.model_group.clone())
                        .bind(d.prompt)
                        .bind(d.completion)
                        .bind(d.spend)
                        .bind(d.requests)
                        .bind(d.ok)
                        .bind(d.failed)
                        .bind(now)
                        .bind(now);
                }
                q.execute(&mut **tx).await.map_err(db("spend: daily"))?;
            }
        }
        Ok(())
    }

    /// `/global/spend/report`'s groups for calls that started on the UTC days of
    /// `[start_ms, end_ms)`, from the daily rollup that holds every filter of `f` and the
    /// grouping asked for (the team rollup for teams and keys, the user rollup for one user's
    /// keys, the end-user rollup for end users); from the spend log when none does. Rows come
    /// sorted by day, team or end user, key and model.
    pub async fn spend_report_grouped(
        &self,
        start_ms: i64,
        end_ms: i64,
        f: &SpendFilter,
        group: ReportGroup,
    ) -> Result<Vec<ReportRow>, StoreError> {
        let Some(source) = report_source(f, group) else {
            return self.spend_report(start_ms, end_ms, f).await;
        };
        let (first, last) = (day_of(start_ms), day_of(end_ms.saturating_sub(1)));
        let (sql, id) = match (self.schema, source) {
            (Schema::Llmgate, Entity::Team) => (REPORT_TEAM, f.team_id.clone()),
            (Schema::Llmgate, Entity::User) => (REPORT_USER, f.user_id.clone()),
            (Schema::Llmgate, _) => (REPORT_END_USER, f.end_user.clone()),
            (Schema::LiteLlm, Entity::Team) => (litellm::REPORT_TEAM, f.team_id.clone()),
            (Schema::LiteLlm, Entity::User) => (litellm::REPORT_USER, f.user_id.clone()),
            (Schema::LiteLlm, _) => (litellm::REPORT_END_USER, f.end_user.clone()),
        };
        let q = sqlx::query(sql);
        let q = match self.schema {
            Schema::Llmgate => q.bind(first).bind(last),
            Schema::LiteLlm => q
                .bind(litellm::day(first.saturating_mul(86_400_000)))
                .bind(litellm::day(last.saturating_mul(86_400_000))),
        };
        let rows = q
            .bind(id)
            .bind(f.api_key.clone())
            .fetch_all(&self.pool)
            .await
            .map_err(db("spend report"))?;
        let mut out: Vec<ReportRow> = rows
            .iter()
            .map(|r| {
                let prompt: i64 = get(r, "prompt_tokens").unwrap_or(0);
                let completion: i64 = get(r, "completion_tokens").unwrap_or(0);
                let entity = get::<String>(r, "entity").filter(|s| !s.is_empty());
                let day = get::<i64>(r, "day")
                    .or_else(|| get::<String>(r, "date").and_then(|d| days_of_date(&d)))
                    .unwrap_or(0);
                ReportRow {
                    day,
                    team_id: if source == Entity::Team {
                        entity.clone()
                    } else {
                        None
                    },
                    team_alias: get(r, "team_alias"),
                    end_user: if source == Entity::EndUser {
                        entity
                    } else {
                        None
                    },
                    api_key: get(r, "api_key").unwrap_or_default(),
                    model: get(r, "model").unwrap_or_default(),
                    spend: get(r, "spend").unwrap_or(0.0),
                    prompt_tokens: prompt,
                    completion_tokens: completion,
                    total_tokens: prompt.saturating_add(completion),
                }
            })
            .collect();
        // The rollup's `model` and provider are two columns; the report has one row per model.
        out.sort_by(|a, b| {
            (a.day, &a.team_id, &a.end_user, &a.api_key, &a.model).cmp(&(
                b.day,
                &b.team_id,
                &b.end_user,
                &b.api_key,
                &b.model,
            ))
        });
        out.dedup_by(|b, a| {
            let same = (a.day, &a.team_id, &a.end_user, &a.api_key, &a.model)
                == (b.day, &b.team_id, &b.end_user, &b.api_key, &b.model);
            if same {
                a.spend += b.spend;
                a.prompt_tokens += b.prompt_tokens;
                a.completion_tokens += b.completion_tokens;
                a.total_tokens += b.total_tokens;
            }
            same
        });
        Ok(out)
    }
}

/// Which rollup answers a report, or `None` (the log) when no single one holds its filters.
fn report_source(f: &SpendFilter, group: ReportGroup) -> Option<Entity> {
    let (user, team, end_user) = (
        f.user_id.is_some(),
        f.team_id.is_some(),
        f.end_user.is_some(),
    );
    match group {
        ReportGroup::ApiKey => match (user, team, end_user) {
            (false, _, false) => Some(Entity::Team),
            (true, false, false) => Some(Entity::User),
            (false, false, true) => Some(Entity::EndUser),
            _ => None,
        },
        ReportGroup::Team => (!user && !end_user).then_some(Entity::Team),
        ReportGroup::Customer => (!user && !team).then_some(Entity::EndUser),
    }
}

/// The report from llmgate's team rollup: `$1`, `$2` first and last day, `$3` team, `$4` key.
const REPORT_TEAM: &str = "SELECT d.day, d.team_id AS entity, t.team_alias, d.api_key, d.model, CAST(SUM(d.spend) AS DOUBLE PRECISION) AS spend, CAST(SUM(d.prompt_tokens) AS BIGINT) AS prompt_tokens, CAST(SUM(d.completion_tokens) AS BIGINT) AS completion_tokens FROM llmgate_daily_team_spend d LEFT JOIN llmgate_teams t ON t.team_id = d.team_id WHERE d.day >= $1 AND d.day <= $2 AND (CAST($3 AS TEXT) IS NULL OR d.team_id = $3) AND (CAST($4 AS TEXT) IS NULL OR d.api_key = $4) GROUP BY d.day, d.team_id, t.team_alias, d.api_key, d.model";
/// The same from the user rollup (`$3` user).
const REPORT_USER: &str = "SELECT d.day, d.user_id AS entity, d.api_key, d.model, CAST(SUM(d.spend) AS DOUBLE PRECISION) AS spend, CAST(SUM(d.prompt_tokens) AS BIGINT) AS prompt_tokens, CAST(SUM(d.completion_tokens) AS BIGINT) AS completion_tokens FROM llmgate_daily_user_spend d WHERE d.day >= $1 AND d.day <= $2 AND (CAST($3 AS TEXT) IS NULL OR d.user_id = $3) AND (CAST($4 AS TEXT) IS NULL OR d.api_key = $4) GROUP BY d.day, d.user_id, d.api_key, d.model";
/// The same from the end-user rollup (`$3` end user).
const REPORT_END_USER: &str = "SELECT d.day, d.end_user_id AS entity, d.api_key, d.model, CAST(SUM(d.spend) AS DOUBLE PRECISION) AS spend, CAST(SUM(d.prompt_tokens) AS BIGINT) AS prompt_tokens, CAST(SUM(d.completion_tokens) AS BIGINT) AS completion_tokens FROM llmgate_daily_end_user_spend d WHERE d.day >= $1 AND d.day <= $2 AND (CAST($3 AS TEXT) IS NULL OR d.end_user_id = $3) AND (CAST($4 AS TEXT) IS NULL OR d.api_key = $4) GROUP BY d.day, d.end_user_id, d.api_key, d.model";

/// `/user/daily/activity` (`Team`: `/team/daily/activity`) from llmgate's rollups: `$1` the
/// user or team (all when `NULL`), `$2`, `$3` first and last day. Calls without one are left out.
pub(super) const DAILY_USER: &str = "SELECT day AS d, user_id AS entity, api_key, model, custom_llm_provider AS provider, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests FROM llmgate_daily_user_spend WHERE user_id <> '' AND (CAST($1 AS TEXT) IS NULL OR user_id = $1) AND day >= $2 AND day <= $3 ORDER BY day, user_id, api_key, model";
/// See [`DAILY_USER`].
pub(super) const DAILY_TEAM: &str = "SELECT day AS d, team_id AS entity, api_key, model, custom_llm_provider AS provider, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests FROM llmgate_daily_team_spend WHERE team_id <> '' AND (CAST($1 AS TEXT) IS NULL OR team_id = $1) AND day >= $2 AND day <= $3 ORDER BY day, team_id, api_key, model";

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str, user: Option<&str>, team: Option<&str>, status: &str) -> SpendRow {
        SpendRow {
            request_id: id.into(),
            api_key: "k".into(),
            user_id: user.map(Into::into),
            team_id: team.map(Into::into),
            model: Some("m".into()),
            model_group: "g".into(),
            prompt_tokens: 3,
            completion_tokens: 4,
            spend: 0.5,
            start_time: 86_400_000 * 3 + 5,
            status: status.into(),
            ..SpendRow::default()
        }
    }

    #[test]
    fn calls_are_filed_as_litellms_writer_files_them() {
        let mut a = call("a", Some("u"), None, "success");
        a.end_user = Some("cust".into());
        a.request_tags = vec!["x".into(), "y".into(), "x".into(), String::new()];
        let b = call("b", Some("u"), Some("t"), "failure");
        let r = roll_up([&a, &b].into_iter());
        let user = &r.maps[Entity::User as usize];
        assert_eq!(user.len(), 1);
        let d = &user[&("u".into(), 3, "k".into(), "m".into(), String::new())];
        assert_eq!((d.requests, d.ok, d.failed), (2, 1, 1));
        assert_eq!((d.prompt, d.completion), (6, 8));
        assert!((d.spend - 1.0).abs() < 1e-12);
        // Every call has a team row: '' without a team.
        let teams: Vec<&str> = r.maps[Entity::Team as usize]
            .keys()
            .map(|k| k.0.as_str())
            .collect();
        assert_eq!(teams, ["", "t"]);
        // An end-user row only when the call names one; one row per distinct tag.
        assert_eq!(r.maps[Entity::EndUser as usize].len(), 1);
        let tags: Vec<&str> = r.maps[Entity::Tag as usize]
            .keys()
            .map(|k| k.0.as_str())
            .collect();
        assert_eq!(tags, ["x", "y"]);
    }

    #[test]
    fn dates_and_days_agree() {
        for ms in [0, 951_782_400_000, 1_767_225_599_999, 1_767_225_600_000, -1] {
            let date = litellm::day(ms);
            assert_eq!(days_of_date(&date), Some(day_of(ms)), "{date}");
        }
        for bad in [
            "",
            "2024-13-01",
            "2024-01-32",
            "2024/01/01",
            "20240101xx",
            "2024-1-011",
        ] {
            assert_eq!(days_of_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn reports_read_the_rollup_that_holds_their_filters() {
        let f = |user: bool, team: bool, end_user: bool| SpendFilter {
            user_id: user.then(|| "u".into()),
            team_id: team.then(|| "t".into()),
            end_user: end_user.then(|| "e".into()),
            api_key: Some("k".into()),
            ..SpendFilter::default()
        };
        use ReportGroup::*;
        assert_eq!(
            report_source(&f(false, false, false), Team),
            Some(Entity::Team)
        );
        assert_eq!(
            report_source(&f(false, true, false), Team),
            Some(Entity::Team)
        );
        assert_eq!(report_source(&f(false, false, true), Team), None);
        assert_eq!(
            report_source(&f(false, false, true), Customer),
            Some(Entity::EndUser)
        );
        assert_eq!(report_source(&f(false, true, false), Customer), None);
        assert_eq!(
            report_source(&f(true, false, false), ApiKey),
            Some(Entity::User)
        );
        assert_eq!(
            report_source(&f(false, true, false), ApiKey),
            Some(Entity::Team)
        );
        assert_eq!(report_source(&f(true, true, false), ApiKey), None);
    }

    #[test]
    fn upserts_add_to_the_row_they_meet() {
        let sql = upsert_sql(Entity::Team, 2, Backend::Postgres);
        assert!(sql.contains("($15,"), "{sql}");
        assert!(sql.contains("spend = llmgate_daily_team_spend.spend + excluded.spend"));
        assert!(sql.contains("ON CONFLICT (team_id, day, api_key, model, custom_llm_provider)"));
        assert_eq!(
            upsert_sql(Entity::Tag, 3, Backend::Sqlite)
                .matches('?')
                .count(),
            42
        );
    }
}
