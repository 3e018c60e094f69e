//! `/customer/*` and their `/end_user/*` aliases: new, info, update, delete, list, block,
//! unblock (LiteLLM's `LiteLLM_EndUserTable`). An end user is the `user` a request names; its
//! limits are a budget row's (`budget_id`), made from the body's `max_budget`,
//! `budget_duration`, `tpm_limit`, `rpm_limit`, `max_parallel_requests`, `soft_budget` when the
//! body does not name one, as LiteLLM does. Admin routes (`proxy_admin_viewer` reads).
//!
//! On the request path ([`Auth`](crate::auth::Auth) and the [budget](crate::budget) layer): a
//! blocked end user is refused (400, `User blocked from making LLM API Calls. User=…`), one over
//! its budget too (422, `ExceededBudget: End User=… over budget. …`), and its calls' cost is added
//! to its `spend`.

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
    budgets::budget_json,
    error::{bad, ApiError, ApiResult},
    extract::{require_admin, ApiJson, Q},
    limits::LimitFields,
    Mgmt,
};
use crate::{
    error::{ErrorKind, LlmError},
    store::{next_reset, BudgetRow, EndUserRow, Limits},
};

/// Who LiteLLM records as the creator of rows the master key makes (`litellm_proxy_admin_name`).
const PROXY_ADMIN_NAME: &str = "default_user_id";

/// LiteLLM's `AllowedModelRegion`.
const REGIONS: &[&str] = &["eu", "us"];

pub(super) fn routes(state: &Arc<Mgmt>) -> Router<Arc<Mgmt>> {
    let mut r = Router::new();
    for prefix in ["/customer", "/end_user"] {
        r = r
            .route(&format!("{prefix}/new"), post(new))
            .route(&format!("{prefix}/info"), get(info))
            .route(&format!("{prefix}/update"), post(update))
            .route(&format!("{prefix}/delete"), post(delete))
            .route(&format!("{prefix}/list"), get(list))
            .route(&format!("{prefix}/block"), post(block))
            .route(&format!("{prefix}/unblock"), post(unblock));
    }
    r.route_layer(from_fn_with_state(state.clone(), require_admin))
}

/// An end user as LiteLLM answers it, with its budget row under `litellm_budget_table`.
async fn end_user_json(m: &Mgmt, e: &EndUserRow) -> Result<Value, ApiError> {
    let budget = match &e.budget_id {
        Some(id) => m.store().budget(id).await?,
        None => None,
    };
    Ok(json!({
        "user_id": e.user_id,
        "alias": e.alias,
        "spend": e.spend,
        "allowed_model_region": e.allowed_model_region,
        "default_model": e.default_model,
        "budget_id": e.budget_id,
        "blocked": e.blocked,
        "litellm_budget_table": budget.as_ref().map_or(Value::Null, budget_json),
    }))
}

#[derive(Debug, Default, Deserialize)]
struct Body {
    user_id: Option<String>,
    alias: Option<String>,
    blocked: Option<bool>,
    budget_id: Option<String>,
    allowed_model_region: Option<String>,
    default_model: Option<String>,
    max_budget: Option<f64>,
    soft_budget: Option<f64>,
    budget_duration: Option<String>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
    max_parallel_requests: Option<i64>,
}

impl Body {
    fn limits(&self) -> LimitFields {
        LimitFields {
            max_budget: self.max_budget,
            budget_duration: self.budget_duration.clone(),
            tpm_limit: self.tpm_limit,
            rpm_limit: self.rpm_limit,
            max_parallel_requests: self.max_parallel_requests,
        }
    }

    fn sets_budget(&self) -> bool {
        self.max_budget.is_some()
            || self.soft_budget.is_some()
            || self.budget_duration.is_some()
            || self.tpm_limit.is_some()
            || self.rpm_limit.is_some()
            || self.max_parallel_requests.is_some()
    }

    fn check(&self) -> Result<String, ApiError> {
        self.limits().validate()?;
        if self.soft_budget.is_some_and(|s| !s.is_finite() || s < 0.0) {
            return Err(bad("soft_budget", "soft_budget must be a number ≥ 0"));
        }
        if let Some(r) = &self.allowed_model_region {
            if !REGIONS.contains(&r.as_str()) {
                return Err(bad(
                    "allowed_model_region",
                    format!("allowed_model_region must be one of {REGIONS:?}"),
                ));
            }
        }
        self.user_id
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("user_id", "missing field `user_id`"))
    }

    /// The budget row this body names (it must exist), or `None`.
    async fn named_budget(&self, m: &Mgmt) -> Result<Option<String>, ApiError> {
        let Some(id) = self.budget_id.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        if m.store().budget(id).await?.is_none() {
            return Err(bad(
                "budget_id",
                format!("Budget not found, passed budget_id={id}"),
            ));
        }
        Ok(Some(id.to_owned()))
    }

    /// A new budget row from the body's budget fields.
    async fn new_budget(&self, m: &Mgmt) -> Result<String, ApiError> {
        let now = m.keys.clock().unix_ms();
        let mut limits = Limits::default();
        self.limits().apply(&mut limits);
        let row = BudgetRow {
            budget_id: crate::server::new_call_id(),
            budget_reset_at: next_reset(limits.budget_duration.as_deref(), now),
            limits,
            soft_budget: self.soft_budget,
            created_by: PROXY_ADMIN_NAME.into(),
            updated_by: PROXY_ADMIN_NAME.into(),
            created_at: now,
            updated_at: now,
        };
        m.store().create_budget(&row).await?;
        Ok(row.budget_id)
    }
}

async fn new(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<Body>) -> ApiResult {
    let id = b.check()?;
    if m.store().end_user(&id).await?.is_some() {
        return Err(bad(
            "user_id",
            format!("Customer already exists, passed user_id={id}. Please pass a new user_id."),
        ));
    }
    let budget_id = if b.sets_budget() {
        Some(b.new_budget(&m).await?)
    } else {
        b.named_budget(&m).await?
    };
    let row = EndUserRow {
        user_id: id.clone(),
        alias: b.alias.clone(),
        allowed_model_region: b.allowed_model_region.clone(),
        default_model: b.default_model.clone(),
        budget_id,
        blocked: b.blocked.unwrap_or(false),
        ..EndUserRow::default()
    };
    m.store().create_end_user(&row).await?;
    m.keys.invalidate_end_user(&id);
    let row = m.store().end_user(&id).await?.unwrap_or(row);
    Ok(Json(end_user_json(&m, &row).await?))
}

fn no_such(id: &str, param: &str) -> ApiError {
    ApiError(
        LlmError::new(
            ErrorKind::NotFound,
            format!("End User Id={id} does not exist in db"),
        )
        .with_param(param)
        .with_code("404"),
    )
}

#[derive(Debug, Deserialize)]
struct InfoQuery {
    end_user_id: Option<String>,
}

async fn info(State(m): State<Arc<Mgmt>>, Q(q): Q<InfoQuery>) -> ApiResult {
    let Some(id) = q.end_user_id.filter(|s| !s.is_empty()) else {
        return Err(bad("end_user_id", "missing field `end_user_id`"));
    };
    let row = m
        .store()
        .end_user(&id)
        .await?
        .ok_or_else(|| no_such(&id, "end_user_id"))?;
    Ok(Json(end_user_json(&m, &row).await?))
}

/// `POST /customer/update`: the fields sent; budget fields change its budget row (made when it
/// has none), as LiteLLM does.
async fn update(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<Body>) -> ApiResult {
    let id = b.check()?;
    let mut row = m
        .store()
        .end_user(&id)
        .await?
        .ok_or_else(|| no_such(&id, "user_id"))?;
    if let Some(v) = &b.alias {
        row.alias = Some(v.clone());
    }
    if let Some(v) = &b.allowed_model_region {
        row.allowed_model_region = Some(v.clone());
    }
    if let Some(v) = &b.default_model {
        row.default_model = Some(v.clone());
    }
    if let Some(v) = b.blocked {
        row.blocked = v;
    }
    if let Some(named) = b.named_budget(&m).await? {
        row.budget_id = Some(named);
    }
    if b.sets_budget() {
        let existing = match &row.budget_id {
            Some(id) => m.store().budget(id).await?,
            None => None,
        };
        match existing {
            Some(budget) => {
                super::budgets::save_budget_fields(
                    &m,
                    budget,
                    &b.limits(),
                    b.soft_budget,
                    PROXY_ADMIN_NAME,
                )
                .await?;
            }
            None => row.budget_id = Some(b.new_budget(&m).await?),
        }
    }
    m.store().update_end_user(&row).await?;
    m.keys.invalidate_end_user(&id);
    let row = m.store().end_user(&id).await?.unwrap_or(row);
    Ok(Json(end_user_json(&m, &row).await?))
}

#[derive(Debug, Deserialize)]
struct Ids {
    user_ids: Vec<String>,
}

impl Ids {
    fn check(&self) -> Result<(), ApiError> {
        if self.user_ids.is_empty() || self.user_ids.iter().any(String::is_empty) {
            return Err(bad(
                "user_ids",
                "user_ids must list at least one end user id",
            ));
        }
        Ok(())
    }
}

/// `POST /customer/delete`: every id must exist (else 404 naming the missing ones), as LiteLLM.
async fn delete(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<Ids>) -> ApiResult {
    b.check()?;
    let mut missing = Vec::new();
    for id in &b.user_ids {
        if m.store().end_user(id).await?.is_none() {
            missing.push(id.as_str());
        }
    }
    if !missing.is_empty() {
        return Err(ApiError(
            LlmError::new(
                ErrorKind::NotFound,
                format!("End User Id(s)={} do not exist in db", missing.join(", ")),
            )
            .with_param("user_ids")
            .with_code("404"),
        ));
    }
    let n = m.store().delete_end_users(&b.user_ids).await?;
    for id in &b.user_ids {
        m.keys.invalidate_end_user(id);
    }
    Ok(Json(json!({
        "deleted_customers": n,
        "message": format!("Successfully deleted customers with ids: {:?}", b.user_ids),
    })))
}

async fn list(State(m): State<Arc<Mgmt>>) -> ApiResult {
    let mut out = Vec::new();
    for e in m.store().list_end_users().await? {
        out.push(end_user_json(&m, &e).await?);
    }
    Ok(Json(Value::Array(out)))
}

/// `POST /customer/block`: each end user is blocked, created (blocked) when it has no row, as
/// LiteLLM's upsert.
async fn block(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<Ids>) -> ApiResult {
    b.check()?;
    let mut out = Vec::new();
    for id in &b.user_ids {
        let row = match m.store().end_user(id).await? {
            Some(mut e) => {
                e.blocked = true;
                m.store().update_end_user(&e).await?;
                e
            }
            None => {
                let e = EndUserRow {
                    user_id: id.clone(),
                    blocked: true,
                    ..EndUserRow::default()
                };
                m.store().create_end_user(&e).await?;
                e
            }
        };
        m.keys.invalidate_end_user(id);
        out.push(end_user_json(&m, &row).await?);
    }
    Ok(Json(json!({ "blocked_users": out })))
}

/// `POST /customer/unblock`: the end users that exist are unblocked; the answer lists the end
/// users still blocked (LiteLLM answers its remaining block list).
async fn unblock(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<Ids>) -> ApiResult {
    b.check()?;
    for id in &b.user_ids {
        if let Some(mut e) = m.store().end_user(id).await? {
            e.blocked = false;
            m.store().update_end_user(&e).await?;
        }
        m.keys.invalidate_end_user(id);
    }
    let still: Vec<String> = m
        .store()
        .list_end_users()
        .await?
        .into_iter()
        .filter(|e| e.blocked)
        .map(|e| e.user_id)
        .collect();
    Ok(Json(json!({ "blocked_users": still })))
}
