//! `/spend/logs` and `/global/spend`.

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
use crate::store::SpendFilter;

/// This resource's routes: the admin-only ones behind [`require_admin`].
pub(super) fn routes(state: &Arc<Mgmt>) -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/spend/logs", get(spend_logs))
        .route("/global/spend", get(global_spend))
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
