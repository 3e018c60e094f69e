//! `/budget/*`: new, update, info, list, delete (LiteLLM's `LiteLLM_BudgetTable` rows).
//!
//! In LiteLLM's schema a key whose `budget_id` names a budget takes its limits from it (see
//! `docs/governance.md`); llmgate's own keys do not link to budgets yet.

use std::sync::Arc;

use axum::{
    extract::State,
    middleware::from_fn_with_state,
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    error::{bad, not_found, ApiError, ApiResult},
    extract::{require_admin, ApiJson},
    limits::LimitFields,
    views::{iso, opt_iso},
    Mgmt,
};
use crate::store::{next_reset, BudgetRow, Limits};

/// Who LiteLLM records as the creator of rows the master key makes (`litellm_proxy_admin_name`).
const PROXY_ADMIN_NAME: &str = "default_user_id";

pub(super) fn routes(state: &Arc<Mgmt>) -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/budget/new", post(budget_new))
        .route("/budget/update", post(budget_update))
        .route("/budget/info", post(budget_info))
        .route("/budget/list", get(budget_list))
        .route("/budget/delete", post(budget_delete))
        .route_layer(from_fn_with_state(state.clone(), require_admin))
}

/// A budget as LiteLLM answers it.
pub(super) fn budget_json(b: &BudgetRow) -> Value {
    json!({
        "budget_id": b.budget_id,
        "max_budget": b.limits.max_budget,
        "soft_budget": b.soft_budget,
        "max_parallel_requests": b.limits.max_parallel_requests,
        "tpm_limit": b.limits.tpm_limit,
        "rpm_limit": b.limits.rpm_limit,
        "model_max_budget": null,
        "budget_duration": b.limits.budget_duration,
        "budget_reset_at": opt_iso(b.budget_reset_at),
        "created_at": iso(b.created_at),
        "created_by": b.created_by,
        "updated_at": iso(b.updated_at),
        "updated_by": b.updated_by,
    })
}

#[derive(Debug, Default, Deserialize)]
struct BudgetBody {
    budget_id: Option<String>,
    max_budget: Option<f64>,
    soft_budget: Option<f64>,
    max_parallel_requests: Option<i64>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
    budget_duration: Option<String>,
    model_max_budget: Option<Value>,
}

impl BudgetBody {
    fn limits(&self) -> LimitFields {
        LimitFields {
            max_budget: self.max_budget,
            budget_duration: self.budget_duration.clone(),
            tpm_limit: self.tpm_limit,
            rpm_limit: self.rpm_limit,
            max_parallel_requests: self.max_parallel_requests,
        }
    }

    fn check(&self) -> Result<(), super::ApiError> {
        self.limits().validate()?;
        if self.soft_budget.is_some_and(|s| !s.is_finite() || s < 0.0) {
            return Err(bad("soft_budget", "soft_budget must be a number ≥ 0"));
        }
        if self.model_max_budget.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(bad(
                "model_max_budget",
                "`model_max_budget`: model-specific budgets are not supported by llmgate yet",
            ));
        }
        Ok(())
    }
}

async fn budget_new(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<BudgetBody>) -> ApiResult {
    b.check()?;
    let id = b
        .budget_id
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(crate::server::new_call_id);
    if m.store().budget(&id).await?.is_some() {
        return Err(bad("budget_id", format!("Budget id = {id} already exists")));
    }
    let now = m.keys.clock().unix_ms();
    let mut limits = Limits::default();
    b.limits().apply(&mut limits);
    let row = BudgetRow {
        budget_id: id,
        budget_reset_at: next_reset(limits.budget_duration.as_deref(), now),
        limits,
        soft_budget: b.soft_budget,
        created_by: PROXY_ADMIN_NAME.into(),
        updated_by: PROXY_ADMIN_NAME.into(),
        created_at: now,
        updated_at: now,
    };
    m.store().create_budget(&row).await?;
    Ok(Json(budget_json(&row)))
}

async fn budget_update(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<BudgetBody>) -> ApiResult {
    b.check()?;
    let Some(id) = b.budget_id.as_deref().filter(|s| !s.is_empty()) else {
        return Err(bad("budget_id", "budget_id is required"));
    };
    let mut row = m
        .store()
        .budget(id)
        .await?
        .ok_or_else(|| not_found(format!("Budget not found, passed budget_id={id}")))?;
    if b.limits().apply(&mut row.limits) {
        row.budget_reset_at = next_reset(
            row.limits.budget_duration.as_deref(),
            m.keys.clock().unix_ms(),
        );
    }
    if b.soft_budget.is_some() {
        row.soft_budget = b.soft_budget;
    }
    row.updated_by = PROXY_ADMIN_NAME.into();
    m.store().update_budget(&row).await?;
    row.updated_at = m.keys.clock().unix_ms();
    // Keys that take their limits from this budget re-read them.
    m.keys.invalidate_where(|_| true);
    Ok(Json(budget_json(&row)))
}

/// Applies a body's budget fields to the budget row behind an organization or an end user and
/// stores it (`/organization/update`, `/customer/update`): new limits start a new period, as
/// LiteLLM resets `budget_reset_at`. `by` is who changed it.
pub(super) async fn save_budget_fields(
    m: &Mgmt,
    mut budget: BudgetRow,
    limits: &LimitFields,
    soft_budget: Option<f64>,
    by: &str,
) -> Result<(), ApiError> {
    if limits.apply(&mut budget.limits) {
        budget.budget_reset_at = next_reset(
            budget.limits.budget_duration.as_deref(),
            m.keys.clock().unix_ms(),
        );
    }
    if soft_budget.is_some() {
        budget.soft_budget = soft_budget;
    }
    budget.updated_by = by.into();
    m.store().update_budget(&budget).await?;
    Ok(())
}

#[derive(Debug, Deserialize)]
struct BudgetIds {
    budgets: Vec<String>,
}

/// `POST /budget/info` (LiteLLM's method): `{"budgets": [ids]}` → the rows that exist.
async fn budget_info(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<BudgetIds>) -> ApiResult {
    if b.budgets.is_empty() {
        return Err(bad(
            "budgets",
            "Specify list of budget id's to query. Passed in=[]",
        ));
    }
    let mut out = Vec::new();
    for id in &b.budgets {
        if let Some(row) = m.store().budget(id).await? {
            out.push(budget_json(&row));
        }
    }
    Ok(Json(Value::Array(out)))
}

async fn budget_list(State(m): State<Arc<Mgmt>>) -> ApiResult {
    let rows = m.store().list_budgets().await?;
    Ok(Json(Value::Array(rows.iter().map(budget_json).collect())))
}

#[derive(Debug, Deserialize)]
struct BudgetDelete {
    id: String,
}

/// `POST /budget/delete`: `{"id": budget_id}` → the deleted row; 404 when there is none.
async fn budget_delete(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<BudgetDelete>) -> ApiResult {
    let row = m
        .store()
        .budget(&b.id)
        .await?
        .ok_or_else(|| not_found(format!("Budget not found, passed id={}", b.id)))?;
    m.store()
        .delete_budgets(std::slice::from_ref(&b.id))
        .await?;
    m.keys.invalidate_where(|_| true);
    Ok(Json(budget_json(&row)))
}
