//! Spend in SQL: batches of spend rows with their totals in one transaction, the proxy budget
//! row, and spend-log reads.

use std::collections::HashMap;

use super::{db, get, json_list, litellm, rollup, spend_row, Backend, Schema, Store};
use crate::store::{
    next_reset, BudgetState, DailyBy, DailySpend, Limits, ReportRow, SpendFilter, SpendRow,
    SpendTotals, StoreError, UserRow, PROXY_BUDGET_ID,
};

/// The filters of `/spend/logs` over `llmgate_spend_logs` (parameters `$1`-`$6`, `$8`-`$10`; see
/// [`Store::spend_query`]).
macro_rules! ours_spend_where {
    () => {
        " WHERE (CAST($1 AS TEXT) IS NULL OR api_key = $1) AND (CAST($2 AS TEXT) IS NULL OR user_id = $2) AND (CAST($3 AS TEXT) IS NULL OR team_id = $3) AND (CAST($4 AS TEXT) IS NULL OR request_id = $4) AND (CAST($5 AS BIGINT) IS NULL OR start_time >= $5) AND (CAST($6 AS BIGINT) IS NULL OR start_time < $6) AND (CAST($8 AS TEXT) IS NULL OR end_user = $8) AND (CAST($9 AS TEXT) IS NULL OR model_group = $9) AND (CAST($10 AS TEXT) IS NULL OR (CAST($10 AS TEXT) = 'success') = (status = 'success'))"
    };
}

/// Rows per spend INSERT statement, largest first: a batch is cut into these sizes. 64 rows of
/// 20 parameters stay far below SQLite's (32 766) and PostgreSQL's (65 535) limits.
const SPEND_INSERT_SIZES: [usize; 4] = [64, 16, 4, 1];

/// Which of a batch's rows add their cost to the totals.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Count {
    /// Every row (a first attempt; rows without a log).
    Every,
    /// The rows this transaction stores (a retry).
    StoredNow,
}

/// `INSERT … VALUES (…), (…) … ON CONFLICT DO NOTHING` for `n` rows, with `RETURNING request_id`
/// when `returning` (a retry counts only the rows it stores).
///
/// SQLite gets anonymous `?` parameters: it resolves each named one (`$7`) by a linear search of
/// the names seen so far, which makes a statement with thousands of them quadratic to parse and
/// bind. PostgreSQL takes only `$n`.
fn spend_insert_sql(n: usize, backend: Backend, returning: bool) -> String {
    use std::fmt::Write as _;
    const COLS: usize = 20;
    let mut sql = String::with_capacity(400 + n * COLS * 5);
    sql.push_str("INSERT INTO llmgate_spend_logs (request_id, api_key, key_alias, team_id, user_id, model_group, model, model_id, custom_llm_provider, prompt_tokens, completion_tokens, total_tokens, spend, start_time, end_time, latency_ms, cache_hit, status, request_tags, end_user) VALUES ");
    for row in 0..n {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..COLS {
            if col > 0 {
                sql.push(',');
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${}", row * COLS + col + 1);
                }
            }
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (request_id) DO NOTHING");
    if returning {
        sql.push_str(" RETURNING request_id");
    }
    sql
}

/// What `rows` add to the key, team, user and proxy-wide totals (rows that cost nothing add
/// nothing).
pub(super) fn totals_of<'a>(rows: impl Iterator<Item = &'a SpendRow>) -> SpendTotals {
    let mut totals = SpendTotals::default();
    for r in rows.filter(|r| r.spend != 0.0) {
        if !r.api_key.is_empty() {
            *totals.keys.entry(r.api_key.clone()).or_default() += r.spend;
        }
        if let Some(t) = &r.team_id {
            *totals.teams.entry(t.clone()).or_default() += r.spend;
        }
        if let Some(u) = &r.user_id {
            *totals.users.entry(u.clone()).or_default() += r.spend;
        }
        if let Some(e) = &r.end_user {
            *totals.end_users.entry(e.clone()).or_default() += r.spend;
        }
        if let (Some(t), Some(u)) = (&r.team_id, &r.user_id) {
            *totals
                .team_members
                .entry((t.clone(), u.clone()))
                .or_default() += r.spend;
        }
        totals.proxy += r.spend;
    }
    totals
}

impl Store {
    /// Writes spend rows in one transaction and adds their cost to the key, team and user totals.
    /// Every row counts, also one whose `request_id` is already stored: a client may send the same
    /// `x-litellm-call-id` twice, and the log then keeps the first row while the key pays for both
    /// calls. Returns the totals added.
    pub async fn write_spend(&self, rows: &[SpendRow]) -> Result<SpendTotals, StoreError> {
        self.record_spend(rows, true, Count::Every).await
    }

    /// [`Store::write_spend`] again for a batch whose earlier attempt failed, maybe after its
    /// commit: only the rows this transaction stores add to the totals, so a batch is not counted
    /// twice. (A row whose id another call stored is not counted here; missing it takes both a
    /// failed commit and a reused call id.)
    pub async fn rewrite_spend(&self, rows: &[SpendRow]) -> Result<SpendTotals, StoreError> {
        self.record_spend(rows, true, Count::StoredNow).await
    }

    /// Adds the rows' cost to the key, team and user totals in one transaction without storing
    /// the rows (`general_settings.disable_spend_logs`). Without stored rows there is nothing to
    /// recognise a retried batch by: a batch whose commit succeeded but was reported as failed
    /// counts twice.
    pub async fn add_spend(&self, rows: &[SpendRow]) -> Result<SpendTotals, StoreError> {
        self.record_spend(rows, false, Count::Every).await
    }

    async fn record_spend(
        &self,
        rows: &[SpendRow],
        log: bool,
        count: Count,
    ) -> Result<SpendTotals, StoreError> {
        if self.schema == Schema::LiteLlm {
            return self
                .litellm_record_spend(rows, log, count == Count::StoredNow)
                .await;
        }
        let mut tx = self.pool.begin().await.map_err(db("spend: begin"))?;
        // Many rows per statement: one round trip to the database per chunk, not per row.
        let mut inserted = std::collections::HashSet::new();
        let stored_now = count == Count::StoredNow;
        let mut rest = if log { rows } else { &[] };
        while !rest.is_empty() {
            // A few fixed statement sizes, so each is parsed once and then reused from the
            // statement cache.
            let n = SPEND_INSERT_SIZES
                .iter()
                .copied()
                .find(|n| *n <= rest.len())
                .unwrap_or(1);
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let sql = spend_insert_sql(n, self.backend, stored_now);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(r.request_id.clone())
                    .bind(r.api_key.clone())
                    .bind(r.key_alias.clone())
                    .bind(r.team_id.clone())
                    .bind(r.user_id.clone())
                    .bind(r.model_group.clone())
                    .bind(r.model.clone())
                    .bind(r.model_id.clone())
                    .bind(r.custom_llm_provider.clone())
                    .bind(r.prompt_tokens)
                    .bind(r.completion_tokens)
                    .bind(r.total_tokens)
                    .bind(r.spend)
                    .bind(r.start_time)
                    .bind(r.end_time)
                    .bind(r.latency_ms)
                    .bind(i64::from(r.cache_hit))
                    .bind(r.status.clone())
                    .bind(json_list(&r.request_tags))
                    .bind(r.end_user.clone());
            }
            if stored_now {
                // RETURNING lists only the rows inserted now: a retried batch's stored rows are
                // skipped by ON CONFLICT and not counted twice.
                for row in q.fetch_all(&mut *tx).await.map_err(db("spend: insert"))? {
                    if let Some(id) = get::<String>(&row, "request_id") {
                        inserted.insert(id);
                    }
                }
            } else {
                q.execute(&mut *tx).await.map_err(db("spend: insert"))?;
            }
        }
        let counted = |r: &&SpendRow| !stored_now || inserted.contains(&r.request_id);
        let mut totals = totals_of(rows.iter().filter(counted));
        // The daily rollups: every counted call, also one that cost nothing.
        self.write_rollups(
            &mut tx,
            &rollup::roll_up(rows.iter().filter(counted)),
            self.clock.unix_ms(),
        )
        .await?;
        // The proxy-wide budget row takes every row's cost (nothing happens when it does not
        // exist: no `litellm_settings.max_budget`).
        let proxy: HashMap<String, f64> = (totals.proxy != 0.0)
            .then(|| (PROXY_BUDGET_ID.to_owned(), totals.proxy))
            .into_iter()
            .collect();
        // Add each total, starting a new budget period first where the old one has ended.
        let now = self.clock.unix_ms();
        for (table, id_col, map) in [
            ("llmgate_keys", "token", &totals.keys),
            ("llmgate_teams", "team_id", &totals.teams),
            ("llmgate_users", "user_id", &totals.users),
            ("llmgate_users", "user_id", &proxy),
        ] {
            for (id, v) in map {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT budget_duration, budget_reset_at FROM {table} WHERE {id_col} = $1"
                )))
                .bind(id.clone())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("spend: read period"))?;
                let Some(row) = row else { continue };
                let duration: Option<String> = get(&row, "budget_duration");
                let reset_at: Option<i64> = get(&row, "budget_reset_at");
                if reset_at.is_some_and(|r| r <= now) {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE {table} SET spend = $1, budget_reset_at = $2 WHERE {id_col} = $3"
                    )))
                    .bind(*v)
                    .bind(next_reset(duration.as_deref(), now))
                    .bind(id.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(db("spend: new period"))?;
                } else {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE {table} SET spend = spend + $1 WHERE {id_col} = $2"
                    )))
                    .bind(*v)
                    .bind(id.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(db("spend: total"))?;
                }
            }
        }
        // Each team's organization is charged its teams' spend; end users with a row theirs.
        totals.orgs = self.charge_orgs(&mut tx, &totals.teams).await?;
        self.charge_end_users(&mut tx, &totals.end_users).await?;
        totals.key_models = self
            .charge_model_budgets(
                &mut tx,
                rows.iter()
                    .filter(|r| !stored_now || inserted.contains(&r.request_id)),
            )
            .await?;
        Self::charge_team_members(
            &mut tx,
            rows.iter()
                .filter(|r| !stored_now || inserted.contains(&r.request_id)),
        )
        .await?;
        if !proxy.is_empty() {
            let row =
                sqlx::query("SELECT spend, budget_reset_at FROM llmgate_users WHERE user_id = $1")
                    .bind(PROXY_BUDGET_ID)
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

    /// Creates or updates the proxy-wide budget row ([`PROXY_BUDGET_ID`]) with `max_budget` and
    /// `budget_duration`, as LiteLLM does at start, and returns its state. An existing period
    /// is kept (a restart does not move it); a row without one (made before a duration was set)
    /// starts a period now, from 0, as LiteLLM's back-fill does; without a duration the budget
    /// never resets.
    pub async fn proxy_budget(
        &self,
        max_budget: f64,
        budget_duration: Option<&str>,
    ) -> Result<BudgetState, StoreError> {
        let now = self.clock.unix_ms();
        let u = match self.user(PROXY_BUDGET_ID).await? {
            Some(u) => u,
            None => {
                let reset_at = next_reset(budget_duration, now);
                let row = UserRow {
                    user_id: PROXY_BUDGET_ID.to_owned(),
                    limits: Limits {
                        max_budget: Some(max_budget),
                        budget_duration: budget_duration.map(str::to_owned),
                        ..Limits::default()
                    },
                    budget_reset_at: reset_at,
                    created_at: now,
                    updated_at: now,
                    ..UserRow::default()
                };
                match self.create_user(&row).await {
                    Ok(()) => {
                        return Ok(BudgetState {
                            spend: 0.0,
                            reset_at,
                        })
                    }
                    // Another instance starting at the same time created it first.
                    Err(e) => self.user(PROXY_BUDGET_ID).await?.ok_or(e)?,
                }
            }
        };
        let (spend, reset_at) = match (budget_duration, u.budget_reset_at) {
            (None, _) => (u.spend, None),
            (Some(_), Some(r)) => (u.spend, Some(r)),
            (Some(d), None) => (0.0, next_reset(Some(d), now)),
        };
        sqlx::query(self.pick(
            "UPDATE llmgate_users SET max_budget = CAST($1 AS DOUBLE PRECISION), budget_duration = $2, budget_reset_at = $3, spend = $4, updated_at = $5 WHERE user_id = $6",
            litellm::UPDATE_PROXY_BUDGET,
        ))
            .bind(max_budget)
            .bind(budget_duration.map(str::to_owned))
            .bind(reset_at)
            .bind(spend)
            .bind(now)
            .bind(PROXY_BUDGET_ID)
            .execute(&self.pool)
            .await
            .map_err(db("update proxy budget"))?;
        Ok(BudgetState { spend, reset_at })
    }

    /// The proxy-wide budget row's state (its period rolled over first when it ended); `None`
    /// when there is no such row.
    pub async fn proxy_budget_state(&self) -> Result<Option<BudgetState>, StoreError> {
        Ok(self.user(PROXY_BUDGET_ID).await?.map(|u| BudgetState {
            spend: u.spend,
            reset_at: u.budget_reset_at,
        }))
    }

    /// Spend-log rows, newest first, from `f.offset`.
    pub async fn spend_logs(&self, f: &SpendFilter) -> Result<Vec<SpendRow>, StoreError> {
        let rows = self
            .spend_query(
                f,
                concat!(
                    "SELECT * FROM llmgate_spend_logs",
                    ours_spend_where!(),
                    " ORDER BY start_time DESC, request_id LIMIT $7 OFFSET $11"
                ),
                litellm::SPEND_LOGS,
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db("read spend logs"))?;
        Ok(rows.iter().map(spend_row).collect())
    }

    /// How many spend-log rows `f`'s filters select (its `limit` and `offset` aside).
    pub async fn count_spend_logs(&self, f: &SpendFilter) -> Result<i64, StoreError> {
        let row = self
            .spend_query(
                f,
                concat!(
                    "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM llmgate_spend_logs",
                    ours_spend_where!(),
                    " AND CAST($7 AS BIGINT) IS NOT NULL AND CAST($11 AS BIGINT) IS NOT NULL"
                ),
                litellm::COUNT_SPEND_LOGS_WHERE,
            )
            .fetch_one(&self.pool)
            .await
            .map_err(db("count spend logs"))?;
        Ok(get(&row, "n").unwrap_or(0))
    }

    fn spend_query(
        &self,
        f: &SpendFilter,
        ours: &'static str,
        theirs: &'static str,
    ) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
        sqlx::query(self.pick(ours, theirs))
            .bind(f.api_key.clone())
            .bind(f.user_id.clone())
            .bind(f.team_id.clone())
            .bind(f.request_id.clone())
            .bind(f.start_ms)
            .bind(f.end_ms)
            .bind(if f.limit > 0 { f.limit } else { 1000 })
            .bind(f.end_user.clone())
            .bind(f.model.clone())
            .bind(f.status.clone())
            .bind(f.offset.max(0))
    }

    /// Spend from `start_ms` (inclusive) to `end_ms` (exclusive) per UTC day, team, end user,
    /// key and model (`/global/spend/report`), narrowed to one key, user, team or end user.
    pub async fn spend_report(
        &self,
        start_ms: i64,
        end_ms: i64,
        f: &SpendFilter,
    ) -> Result<Vec<ReportRow>, StoreError> {
        let rows = sqlx::query(self.pick(
            "SELECT CAST(s.start_time / 86400000 AS BIGINT) AS day, s.team_id, t.team_alias, s.end_user, s.api_key, COALESCE(s.model, '') AS model, CAST(SUM(s.spend) AS DOUBLE PRECISION) AS spend, CAST(SUM(s.prompt_tokens) AS BIGINT) AS prompt_tokens, CAST(SUM(s.completion_tokens) AS BIGINT) AS completion_tokens, CAST(SUM(s.total_tokens) AS BIGINT) AS total_tokens FROM llmgate_spend_logs s LEFT JOIN llmgate_teams t ON t.team_id = s.team_id WHERE s.start_time >= $1 AND s.start_time < $2 AND (CAST($3 AS TEXT) IS NULL OR s.api_key = $3) AND (CAST($4 AS TEXT) IS NULL OR s.user_id = $4) AND (CAST($5 AS TEXT) IS NULL OR s.team_id = $5) AND (CAST($6 AS TEXT) IS NULL OR s.end_user = $6) GROUP BY CAST(s.start_time / 86400000 AS BIGINT), s.team_id, t.team_alias, s.end_user, s.api_key, COALESCE(s.model, '') ORDER BY 1, 2, 4, 5, 6",
            litellm::SPEND_REPORT,
        ))
        .bind(start_ms)
        .bind(end_ms)
        .bind(f.api_key.clone())
        .bind(f.user_id.clone())
        .bind(f.team_id.clone())
        .bind(f.end_user.clone())
        .fetch_all(&self.pool)
        .await
        .map_err(db("spend report"))?;
        Ok(rows
            .iter()
            .map(|r| ReportRow {
                day: get(r, "day").unwrap_or(0),
                team_id: get(r, "team_id"),
                team_alias: get(r, "team_alias"),
                end_user: get::<String>(r, "end_user").filter(|s| !s.is_empty()),
                api_key: get(r, "api_key").unwrap_or_default(),
                model: get(r, "model").unwrap_or_default(),
                spend: get(r, "spend").unwrap_or(0.0),
                prompt_tokens: get(r, "prompt_tokens").unwrap_or(0),
                completion_tokens: get(r, "completion_tokens").unwrap_or(0),
                total_tokens: get(r, "total_tokens").unwrap_or(0),
            })
            .collect())
    }

    /// Total spend of all calls ever logged.
    pub async fn global_spend(&self) -> Result<f64, StoreError> {
        let row = sqlx::query(self.pick(
            "SELECT CAST(COALESCE(SUM(spend), 0) AS DOUBLE PRECISION) AS s FROM llmgate_spend_logs",
            litellm::GLOBAL_SPEND,
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(db("global spend"))?;
        Ok(get(&row, "s").unwrap_or(0.0))
    }

    /// Spend per day (UTC) and user or team (`id`, else all), key, model and provider, for calls
    /// that started on the UTC days of `[start_ms, end_ms)`, from the daily rollups (LiteLLM's
    /// daily tables in its schema, `llmgate_daily_*_spend` in llmgate's). Calls without a user
    /// (team) are not listed.
    pub async fn daily_spend(
        &self,
        by: DailyBy,
        id: Option<&str>,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<DailySpend>, StoreError> {
        let id = id.map(str::to_owned);
        let rows = if self.schema == Schema::LiteLlm {
            sqlx::query(match by {
                DailyBy::User => litellm::DAILY_USER,
                DailyBy::Team => litellm::DAILY_TEAM,
            })
            .bind(id)
            .bind(litellm::day(start_ms))
            .bind(litellm::day(end_ms.saturating_sub(1)))
            .fetch_all(&self.pool)
            .await
        } else {
            sqlx::query(match by {
                DailyBy::User => rollup::DAILY_USER,
                DailyBy::Team => rollup::DAILY_TEAM,
            })
            .bind(id)
            .bind(rollup::day_of(start_ms))
            .bind(rollup::day_of(end_ms.saturating_sub(1)))
            .fetch_all(&self.pool)
            .await
        }
        .map_err(db("read daily spend"))?;
        Ok(rows
            .iter()
            .map(|r| {
                let requests: i64 = get(r, "api_requests").unwrap_or(0);
                let ok: i64 = get(r, "successful_requests").unwrap_or(0);
                DailySpend {
                    date: get::<String>(r, "date").unwrap_or_else(|| {
                        litellm::day(get::<i64>(r, "d").unwrap_or(0).saturating_mul(86_400_000))
                    }),
                    entity: get(r, "entity").unwrap_or_default(),
                    api_key: get(r, "api_key").unwrap_or_default(),
                    model: get(r, "model").unwrap_or_default(),
                    custom_llm_provider: get(r, "provider").unwrap_or_default(),
                    prompt_tokens: get(r, "prompt_tokens").unwrap_or(0),
                    completion_tokens: get(r, "completion_tokens").unwrap_or(0),
                    spend: get(r, "spend").unwrap_or(0.0),
                    api_requests: requests,
                    successful_requests: ok,
                    failed_requests: get(r, "failed_requests").unwrap_or(requests - ok),
                }
            })
            .collect())
    }

    /// Number of spend-log rows.
    pub async fn spend_log_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(self.pick(
            "SELECT COUNT(*) AS n FROM llmgate_spend_logs",
            litellm::COUNT_SPEND_LOGS,
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(db("count spend logs"))?;
        Ok(get(&row, "n").unwrap_or(0))
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewKey;

    /// A successful call's spend row for the key with hash `api_key`.
    fn paid(request_id: impl Into<String>, api_key: &str, spend: f64) -> SpendRow {
        SpendRow {
            request_id: request_id.into(),
            api_key: api_key.to_owned(),
            spend,
            status: "success".into(),
            ..SpendRow::default()
        }
    }

    #[tokio::test]
    async fn a_reused_request_id_is_logged_once_and_paid_every_time() {
        let s = Store::connect("sqlite::memory:").await.unwrap();
        let (_, key) = s.create_key(NewKey::default()).await.unwrap();
        let row = paid("client-id", &key.token, 0.5);
        // Twice in one batch, then once more in the next.
        s.write_spend(&[row.clone(), row.clone()]).await.unwrap();
        let t = s.write_spend(std::slice::from_ref(&row)).await.unwrap();
        assert!((t.keys[&key.token] - 0.5).abs() < 1e-12);
        let stored = s.key(&key.token).await.unwrap().unwrap().spend;
        assert!((stored - 1.5).abs() < 1e-12);
        assert_eq!(s.spend_log_count().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn spend_without_logs_adds_totals_only() {
        let s = Store::connect("sqlite::memory:").await.unwrap();
        let (_, key) = s.create_key(NewKey::default()).await.unwrap();
        let rows: Vec<SpendRow> = (0..3)
            .map(|i| paid(format!("r{i}"), &key.token, 0.25))
            .collect();
        let t = s.add_spend(&rows).await.unwrap();
        assert!((t.keys[&key.token] - 0.75).abs() < 1e-12);
        let stored = s.key(&key.token).await.unwrap().unwrap().spend;
        assert!((stored - 0.75).abs() < 1e-12);
        assert_eq!(s.spend_log_count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn spend_batches_span_several_statements_and_count_new_rows_only() {
        let s = Store::connect("sqlite::memory:").await.unwrap();
        let (_, key) = s.create_key(NewKey::default()).await.unwrap();
        let rows: Vec<SpendRow> = (0..(SPEND_INSERT_SIZES[0] * 2 + 55))
            .map(|i| SpendRow {
                request_tags: vec![format!("t{i}")],
                ..paid(format!("r{i}"), &key.token, 0.25)
            })
            .collect();
        let first = SPEND_INSERT_SIZES[0] + 30;
        let t1 = s.write_spend(&rows[..first]).await.unwrap();
        let cost = |n: usize| 0.25 * n as f64;
        assert!((t1.keys[&key.token] - cost(first)).abs() < 1e-9);
        // The whole batch again, as after a failed commit: only the new rows count.
        let t2 = s.rewrite_spend(&rows).await.unwrap();
        let new = rows.len() - first;
        assert!((t2.keys[&key.token] - cost(new)).abs() < 1e-9);
        assert_eq!(s.spend_log_count().await.unwrap(), rows.len() as i64);
        let stored = s.key(&key.token).await.unwrap().unwrap().spend;
        assert!((stored - cost(rows.len())).abs() < 1e-9);
    }
}
