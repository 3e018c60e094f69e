//! `/spend/logs`, `/global/spend`, `/user/daily/activity`, `/team/daily/activity`.

use std::sync::Arc;

use axum::{extract::State, middleware::from_fn_with_state, routing::get, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    error::{bad, ApiError, ApiResult},
    extract::{require_admin, Q},
    keys::token_of,
    views::{parse_date, spend_json},
    Mgmt,
};
use crate::store::{DailyBy, DailySpend, SpendFilter};

/// This resource's routes: the admin-only ones behind [`require_admin`].
pub(super) fn routes(state: &Arc<Mgmt>) -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/spend/logs", get(spend_logs))
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
