//! `/spend/logs`, `/global/spend`, `/user/daily/activity`, `/team/daily/activity`.

use std::sync::Arc;

use axum::{extract::State, middleware::from_fn_with_state, routing::get, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    error::{bad, ApiError, ApiResult},
    extract::{require_admin, Q},
    keys::token_of,
    views::{iso, parse_date, spend_json},
    Mgmt,
};
use crate::store::{DailyBy, DailySpend, ReportGroup, ReportRow, SpendFilter};

/// This resource's routes: the admin-only ones behind [`require_admin`].
pub(super) fn routes(state: &Arc<Mgmt>) -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/spend/logs", get(spend_logs))
        .route("/spend/logs/v2", get(spend_logs_v2))
        .route("/spend/logs/ui", get(spend_logs_v2))
        .route("/global/spend/report", get(global_spend_report))
        .route("/global/spend", get(global_spend))
        .route("/user/daily/activity", get(user_daily_activity))
        .route("/team/daily/activity", get(team_daily_activity))
        .route_layer(from_fn_with_state(state.clone(), require_admin))
}

#[derive(Debug, Deserialize)]
struct SpendQuery {
    api_key: Option<String>,
    user_id: Option<String>,
    team_id: Option<String>,
    request_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    limit: Option<i64>,
}

async fn spend_logs(State(m): State<Arc<Mgmt>>, Q(q): Q<SpendQuery>) -> ApiResult {
    let date = |name: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        v.as_deref()
            .map(|s| {
                parse_date(s)
                    .ok_or_else(|| bad(name, format!("{name} must be a date (YYYY-MM-DD)")))
            })
            .transpose()
    };
    let start_ms = date("start_date", &q.start_date)?;
    // The end date is inclusive: everything before the next midnight.
    let end_ms = date("end_date", &q.end_date)?.map(|e| e + 86_400_000);
    let rows = m
        .store()
        .spend_logs(&SpendFilter {
            api_key: q.api_key.as_deref().map(token_of),
            user_id: q.user_id,
            team_id: q.team_id,
            request_id: q.request_id,
            start_ms,
            end_ms,
            limit: q.limit.unwrap_or(1000).clamp(1, 10_000),
            ..SpendFilter::default()
        })
        .await?;
    Ok(Json(Value::Array(rows.iter().map(spend_json).collect())))
}

async fn global_spend(State(m): State<Arc<Mgmt>>) -> ApiResult {
    let spend = m.store().global_spend().await?;
    Ok(Json(
        json!({"spend": spend, "max_budget": m.max_budget.unwrap_or(0.0)}),
    ))
}

#[derive(Debug, Deserialize)]
struct ActivityQuery {
    start_date: Option<String>,
    end_date: Option<String>,
    user_id: Option<String>,
    team_ids: Option<String>,
    model: Option<String>,
    api_key: Option<String>,
}

/// `GET /user/daily/activity?start_date=&end_date=[&user_id=&model=&api_key=]`.
async fn user_daily_activity(State(m): State<Arc<Mgmt>>, Q(q): Q<ActivityQuery>) -> ApiResult {
    let ids = q.user_id.clone().map(|u| vec![u]);
    daily_activity(&m, DailyBy::User, ids, &q).await
}

/// `GET /team/daily/activity?start_date=&end_date=[&team_ids=a,b&model=&api_key=]`.
async fn team_daily_activity(State(m): State<Arc<Mgmt>>, Q(q): Q<ActivityQuery>) -> ApiResult {
    let ids = q.team_ids.as_deref().map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    daily_activity(&m, DailyBy::Team, ids, &q).await
}

/// The metrics LiteLLM's daily activity reports, summed over rows.
fn metrics<'a>(rows: impl Iterator<Item = &'a DailySpend>) -> Value {
    let (mut spend, mut p, mut c, mut n, mut ok, mut failed) = (0.0, 0, 0, 0, 0, 0);
    for r in rows {
        spend += r.spend;
        p += r.prompt_tokens;
        c += r.completion_tokens;
        n += r.api_requests;
        ok += r.successful_requests;
        failed += r.failed_requests;
    }
    json!({
        "spend": spend,
        "prompt_tokens": p,
        "completion_tokens": c,
        "total_tokens": p + c,
        "api_requests": n,
        "successful_requests": ok,
        "failed_requests": failed,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    })
}

/// LiteLLM's `SpendAnalyticsPaginatedResponse`: per day, the metrics and their breakdown by
/// model, key, provider and (user or team) entity; totals in `metadata`. One page holds every
/// day asked for.
async fn daily_activity(
    m: &Mgmt,
    by: DailyBy,
    ids: Option<Vec<String>>,
    q: &ActivityQuery,
) -> ApiResult {
    let date = |name: &str, v: &Option<String>| -> Result<i64, ApiError> {
        let s = v
            .as_deref()
            .ok_or_else(|| bad(name, "Please provide start_date and end_date"))?;
        parse_date(s).ok_or_else(|| bad(name, format!("{name} must be a date (YYYY-MM-DD)")))
    };
    let start = date("start_date", &q.start_date)?;
    let end = date("end_date", &q.end_date)?.saturating_add(86_400_000);
    if end <= start {
        return Err(bad("end_date", "end_date is before start_date"));
    }
    let mut rows = Vec::new();
    match ids {
        Some(ids) => {
            for id in ids {
                rows.extend(m.store().daily_spend(by, Some(&id), start, end).await?);
            }
        }
        None => rows = m.store().daily_spend(by, None, start, end).await?,
    }
    let key = q.api_key.as_deref().map(token_of);
    rows.retain(|r| {
        q.model.as_deref().is_none_or(|x| r.model == x)
            && key.as_deref().is_none_or(|k| r.api_key == k)
    });
    rows.sort_by(|a, b| a.date.cmp(&b.date));
    let mut results = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let day = rows[i].date.clone();
        let j = rows[i..]
            .iter()
            .position(|r| r.date != day)
            .map_or(rows.len(), |n| i + n);
        let day_rows = &rows[i..j];
        let group = |field: fn(&DailySpend) -> &str| -> Value {
            let mut names: Vec<&str> = day_rows.iter().map(field).collect();
            names.sort_unstable();
            names.dedup();
            let map: serde_json::Map<String, Value> = names
                .into_iter()
                .map(|n| {
                    (
                        n.to_owned(),
                        json!({"metrics": metrics(day_rows.iter().filter(|r| field(r) == n))}),
                    )
                })
                .collect();
            Value::Object(map)
        };
        let entity_key = match by {
            DailyBy::User => "users",
            DailyBy::Team => "entities",
        };
        let mut breakdown = json!({
            "models": group(|r| &r.model),
            "api_keys": group(|r| &r.api_key),
            "providers": group(|r| &r.custom_llm_provider),
        });
        breakdown[entity_key] = group(|r| &r.entity);
        results.push(json!({
            "date": day,
            "metrics": metrics(day_rows.iter()),
            "breakdown": breakdown,
        }));
        i = j;
    }
    let total = metrics(rows.iter());
    Ok(Json(json!({
        "results": results,
        "metadata": {
            "total_spend": total["spend"],
            "total_prompt_tokens": total["prompt_tokens"],
            "total_completion_tokens": total["completion_tokens"],
            "total_tokens": total["total_tokens"],
            "total_api_requests": total["api_requests"],
            "total_successful_requests": total["successful_requests"],
            "total_failed_requests": total["failed_requests"],
            "total_cache_read_input_tokens": 0,
            "total_cache_creation_input_tokens": 0,
            "page": 1,
            "total_pages": 1,
            "has_more": false,
        },
    })))
}

/// A `start_date` / `end_date`: `YYYY-MM-DD` (a whole day: the end date is inclusive) or
/// `YYYY-MM-DD HH:MM:SS` (`T` also; UTC; exact). `(from, until)` in Unix ms.
fn date_or_time(name: &str, v: &str) -> Result<(i64, i64), ApiError> {
    let err = || {
        bad(
            name,
            format!("Invalid date format: {v}. Expected: YYYY-MM-DD or YYYY-MM-DD HH:MM:SS"),
        )
    };
    let day = parse_date(v).ok_or_else(err)?;
    let rest = v.get(10..).unwrap_or("");
    if rest.is_empty() {
        return Ok((day, day + 86_400_000));
    }
    let t = rest
        .strip_prefix(' ')
        .or_else(|| rest.strip_prefix('T'))
        .ok_or_else(err)?;
    let t = t.strip_suffix('Z').unwrap_or(t);
    let mut parts = t.split(':');
    let mut field = |max: i64| -> Result<i64, ApiError> {
        let n: i64 = parts.next().ok_or_else(err)?.parse().map_err(|_| err())?;
        if (0..max).contains(&n) {
            Ok(n)
        } else {
            Err(err())
        }
    };
    let (h, m, sec) = (field(24)?, field(60)?, field(60)?);
    if parts.next().is_some() {
        return Err(err());
    }
    let at = day + ((h * 60 + m) * 60 + sec) * 1000;
    Ok((at, at + 1000))
}

#[derive(Debug, Deserialize)]
struct SpendPageQuery {
    api_key: Option<String>,
    user_id: Option<String>,
    team_id: Option<String>,
    request_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
    status_filter: Option<String>,
    model: Option<String>,
    end_user: Option<String>,
}

/// `GET /spend/logs/v2` (and `/spend/logs/ui`): LiteLLM's paged spend logs, newest first:
/// `{"data", "total", "page", "page_size", "total_pages"}`; `page` from 1, `page_size` 1–100
/// (default 50).
async fn spend_logs_v2(State(m): State<Arc<Mgmt>>, Q(q): Q<SpendPageQuery>) -> ApiResult {
    let page = q.page.unwrap_or(1);
    if !(1..=1_000_000_000).contains(&page) {
        return Err(bad("page", "page must be ≥ 1"));
    }
    let page_size = q.page_size.unwrap_or(50);
    if !(1..=100).contains(&page_size) {
        return Err(bad("page_size", "page_size must be between 1 and 100"));
    }
    if let Some(s) = q.status_filter.as_deref() {
        if !matches!(s, "success" | "failure") {
            return Err(bad(
                "status_filter",
                "status_filter must be `success` or `failure`",
            ));
        }
    }
    let start_ms = q
        .start_date
        .as_deref()
        .map(|v| date_or_time("start_date", v).map(|(from, _)| from))
        .transpose()?;
    let end_ms = q
        .end_date
        .as_deref()
        .map(|v| date_or_time("end_date", v).map(|(_, until)| until))
        .transpose()?;
    let f = SpendFilter {
        api_key: q.api_key.as_deref().map(token_of),
        user_id: q.user_id,
        team_id: q.team_id,
        request_id: q.request_id,
        start_ms,
        end_ms,
        limit: page_size,
        offset: (page - 1).saturating_mul(page_size),
        end_user: q.end_user,
        model: q.model,
        status: q.status_filter,
    };
    let total = m.store().count_spend_logs(&f).await?;
    let rows = if f.offset < total {
        m.store().spend_logs(&f).await?
    } else {
        Vec::new()
    };
    Ok(Json(json!({
        "data": rows.iter().map(spend_json).collect::<Vec<_>>(),
        "total": total,
        "page": page,
        "page_size": page_size,
        "total_pages": (total + page_size - 1) / page_size,
    })))
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    start_date: Option<String>,
    end_date: Option<String>,
    group_by: Option<String>,
    api_key: Option<String>,
    internal_user_id: Option<String>,
    team_id: Option<String>,
    customer_id: Option<String>,
}

/// Per key: its models' cost and tokens, most expensive key first (LiteLLM's `group_by=api_key`
/// answer, also for `api_key` or `internal_user_id`).
fn report_by_key(rows: &[ReportRow]) -> Value {
    let mut keys: Vec<(String, f64, i64, i64, Vec<(String, f64, i64, i64)>)> = Vec::new();
    for r in rows {
        let i = match keys.iter().position(|k| k.0 == r.api_key) {
            Some(i) => i,
            None => {
                keys.push((r.api_key.clone(), 0.0, 0, 0, Vec::new()));
                keys.len() - 1
            }
        };
        let k = &mut keys[i];
        k.1 += r.spend;
        k.2 += r.prompt_tokens;
        k.3 += r.completion_tokens;
        match k.4.iter_mut().find(|m| m.0 == r.model) {
            Some(m) => {
                m.1 += r.spend;
                m.2 += r.prompt_tokens;
                m.3 += r.completion_tokens;
            }
            None => k.4.push((
                r.model.clone(),
                r.spend,
                r.prompt_tokens,
                r.completion_tokens,
            )),
        }
    }
    keys.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Value::Array(
        keys.into_iter()
            .map(|(key, cost, input, output, models)| {
                json!({
                    "api_key": key,
                    "total_cost": cost,
                    "total_input_tokens": input,
                    "total_output_tokens": output,
                    "model_details": models.into_iter().map(|(model, c, i, o)| json!({
                        "model": model,
                        "total_cost": c,
                        "total_input_tokens": i,
                        "total_output_tokens": o,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// Per day, per team (its alias, else `Unassigned Team`) or end user: its spend and the
/// (model, key) rows behind it (LiteLLM's `group_by=team` / `customer` answer).
fn report_by_day(rows: &[ReportRow], customers: bool) -> Value {
    let (list, name) = if customers {
        ("customers", "customer")
    } else {
        ("teams", "team_name")
    };
    let mut days: Vec<(i64, Vec<(Value, f64, Vec<Value>)>)> = Vec::new();
    for r in rows {
        if days.last().is_none_or(|d| d.0 != r.day) {
            days.push((r.day, Vec::new()));
        }
        let Some((_, groups)) = days.last_mut() else {
            continue;
        };
        let who = if customers {
            r.end_user.clone().map_or(Value::Null, Value::String)
        } else {
            Value::String(
                r.team_alias
                    .clone()
                    .unwrap_or_else(|| "Unassigned Team".to_owned()),
            )
        };
        let i = match groups.iter().position(|g| g.0 == who) {
            Some(i) => i,
            None => {
                groups.push((who, 0.0, Vec::new()));
                groups.len() - 1
            }
        };
        let g = &mut groups[i];
        g.1 += r.spend;
        g.2.push(json!({
            "model": r.model,
            "api_key": r.api_key,
            "spend": r.spend,
            "total_tokens": r.total_tokens,
        }));
    }
    Value::Array(
        days.into_iter()
            .map(|(day, groups)| {
                let mut v = serde_json::Map::new();
                v.insert(
                    "group_by_day".into(),
                    iso(day.saturating_mul(86_400_000)).into(),
                );
                v.insert(
                    list.into(),
                    groups
                        .into_iter()
                        .map(|(who, spend, metadata)| {
                            json!({ name: who, "total_spend": spend, "metadata": metadata })
                        })
                        .collect(),
                );
                Value::Object(v)
            })
            .collect(),
    )
}

/// `GET /global/spend/report?start_date=&end_date=&group_by=team|customer|api_key`: spend per
/// day and team or end user, or per key (LiteLLM's shapes), from the daily rollups (the spend
/// log when no rollup holds the filters); narrowed by `api_key`, `internal_user_id`, `team_id`,
/// `customer_id`.
async fn global_spend_report(State(m): State<Arc<Mgmt>>, Q(q): Q<ReportQuery>) -> ApiResult {
    let (Some(start), Some(end)) = (q.start_date.as_deref(), q.end_date.as_deref()) else {
        return Err(bad(
            if q.start_date.is_none() {
                "start_date"
            } else {
                "end_date"
            },
            "Please provide start_date and end_date",
        ));
    };
    let from = parse_date(start)
        .filter(|_| start.len() == 10)
        .ok_or_else(|| bad("start_date", "start_date must be a date (YYYY-MM-DD)"))?;
    let until = parse_date(end)
        .filter(|_| end.len() == 10)
        .ok_or_else(|| bad("end_date", "end_date must be a date (YYYY-MM-DD)"))?
        + 86_400_000;
    let group_by = q.group_by.as_deref().unwrap_or("team");
    if !matches!(group_by, "team" | "customer" | "api_key") {
        return Err(bad(
            "group_by",
            "group_by must be one of `team`, `customer`, `api_key`",
        ));
    }
    let f = SpendFilter {
        api_key: q.api_key.as_deref().map(token_of),
        user_id: q.internal_user_id.clone(),
        team_id: q.team_id.clone(),
        end_user: q.customer_id.clone(),
        ..SpendFilter::default()
    };
    let group = if group_by == "api_key" || q.api_key.is_some() || q.internal_user_id.is_some() {
        ReportGroup::ApiKey
    } else if group_by == "customer" {
        ReportGroup::Customer
    } else {
        ReportGroup::Team
    };
    let rows = m
        .store()
        .spend_report_grouped(from, until, &f, group)
        .await?;
    Ok(Json(match group {
        ReportGroup::ApiKey => report_by_key(&rows),
        ReportGroup::Customer => report_by_day(&rows, true),
        ReportGroup::Team => report_by_day(&rows, false),
    }))
}
