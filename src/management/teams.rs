//! `/team/*`: new, update, info, delete, list, member_add.

use std::sync::Arc;

use axum::{
    extract::State,
    middleware::from_fn_with_state,
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{
    error::{bad, not_found, ApiError, ApiResult},
    extract::{require_admin, ApiJson, Q},
    limits::LimitFields,
    views::{key_json, team_json},
    Mgmt,
};
use crate::store::{next_reset, now_ms, Limits, TeamRow};

/// This resource's routes: the admin-only ones behind [`require_admin`].
pub(super) fn routes(state: &Arc<Mgmt>) -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/team/new", post(team_new))
        .route("/team/update", post(team_update))
        .route("/team/info", get(team_info))
        .route("/team/delete", post(team_delete))
        .route("/team/list", get(team_list))
        .route("/team/member_add", post(team_member_add))
        .route_layer(from_fn_with_state(state.clone(), require_admin))
}

#[derive(Debug, Default, Deserialize)]
struct TeamBody {
    team_id: Option<String>,
    team_alias: Option<String>,
    models: Option<Vec<String>>,
    max_budget: Option<f64>,
    budget_duration: Option<String>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
    max_parallel_requests: Option<i64>,
    metadata: Option<Map<String, Value>>,
    members_with_roles: Option<Vec<Value>>,
    blocked: Option<bool>,
}

impl TeamBody {
    fn limits(&self) -> LimitFields {
        LimitFields {
            max_budget: self.max_budget,
            budget_duration: self.budget_duration.clone(),
            tpm_limit: self.tpm_limit,
            rpm_limit: self.rpm_limit,
            max_parallel_requests: self.max_parallel_requests,
        }
    }
}

async fn team_new(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<TeamBody>) -> ApiResult {
    b.limits().validate()?;
    let team_id = b.team_id.clone().unwrap_or_else(crate::server::new_call_id);
    if m.store().team(&team_id).await?.is_some() {
        return Err(bad(
            "team_id",
            format!("Team id = {team_id} already exists. Please use a different team id."),
        ));
    }
    let now = now_ms();
    let mut limits = Limits::default();
    b.limits().apply(&mut limits);
    let t = TeamRow {
        team_id,
        team_alias: b.team_alias.clone(),
        models: b.models.clone().unwrap_or_default(),
        spend: 0.0,
        budget_reset_at: next_reset(limits.budget_duration.as_deref(), now),
        limits,
        metadata: b.metadata.clone().unwrap_or_default(),
        members_with_roles: b.members_with_roles.clone().unwrap_or_default(),
        blocked: b.blocked.unwrap_or(false),
        created_at: now,
        updated_at: now,
    };
    m.store().create_team(&t).await?;
    Ok(Json(team_json(&t)))
}

async fn load_team(m: &Mgmt, team_id: Option<&str>) -> Result<TeamRow, ApiError> {
    let Some(id) = team_id.filter(|t| !t.is_empty()) else {
        return Err(bad("team_id", "missing field `team_id`"));
    };
    m.store()
        .team(id)
        .await?
        .ok_or_else(|| not_found(format!("Team not found, passed team_id={id}")))
}

async fn team_update(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<TeamBody>) -> ApiResult {
    b.limits().validate()?;
    let mut t = load_team(&m, b.team_id.as_deref()).await?;
    if b.limits().apply(&mut t.limits) {
        t.budget_reset_at = next_reset(t.limits.budget_duration.as_deref(), now_ms());
    }
    if let Some(v) = &b.team_alias {
        t.team_alias = Some(v.clone());
    }
    if let Some(v) = &b.models {
        t.models.clone_from(v);
    }
    if let Some(v) = &b.metadata {
        t.metadata.clone_from(v);
    }
    if let Some(v) = &b.members_with_roles {
        t.members_with_roles.clone_from(v);
    }
    if let Some(v) = b.blocked {
        t.blocked = v;
    }
    m.store().update_team(&t).await?;
    m.forget_team(&t.team_id);
    Ok(Json(json!({"team_id": t.team_id, "data": team_json(&t)})))
}

#[derive(Debug, Deserialize)]
struct TeamQuery {
    team_id: Option<String>,
}

async fn team_info(State(m): State<Arc<Mgmt>>, Q(q): Q<TeamQuery>) -> ApiResult {
    let t = load_team(&m, q.team_id.as_deref()).await?;
    let (keys, _) = m.store().list_keys(Some(&t.team_id), None, 1, 1000).await?;
    Ok(Json(json!({
        "team_id": t.team_id,
        "team_info": team_json(&t),
        "keys": keys.iter().map(key_json).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
struct TeamDelete {
    team_ids: Vec<String>,
}

async fn team_delete(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<TeamDelete>) -> ApiResult {
    if b.team_ids.is_empty() {
        return Err(bad("team_ids", "team_ids must list at least one team"));
    }
    let deleted = m.store().delete_teams(&b.team_ids).await?;
    for t in &deleted {
        m.forget_team(t);
    }
    if deleted.is_empty() {
        return Err(not_found("None of the teams exist"));
    }
    Ok(Json(json!({"deleted_teams": deleted})))
}

async fn team_list(State(m): State<Arc<Mgmt>>) -> ApiResult {
    let teams = m.store().list_teams().await?;
    Ok(Json(Value::Array(teams.iter().map(team_json).collect())))
}

#[derive(Debug, Deserialize)]
struct Member {
    user_id: Option<String>,
    user_email: Option<String>,
    role: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Members {
    One(Member),
    Many(Vec<Member>),
}

#[derive(Debug, Deserialize)]
struct MemberAdd {
    team_id: String,
    member: Members,
}

async fn team_member_add(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<MemberAdd>) -> ApiResult {
    let mut t = load_team(&m, Some(&b.team_id)).await?;
    let members = match b.member {
        Members::One(x) => vec![x],
        Members::Many(v) => v,
    };
    let mut updated = Vec::new();
    for mem in members {
        let Some(uid) = mem.user_id.clone().or_else(|| mem.user_email.clone()) else {
            return Err(bad(
                "member.user_id",
                "each member needs a user_id or user_email",
            ));
        };
        let role = mem.role.unwrap_or_else(|| "user".to_owned());
        if !matches!(role.as_str(), "admin" | "user") {
            return Err(bad("member.role", "role must be `admin` or `user`"));
        }
        t.members_with_roles
            .retain(|v| v.get("user_id").and_then(Value::as_str) != Some(uid.as_str()));
        t.members_with_roles
            .push(json!({"user_id": uid, "user_email": mem.user_email, "role": role}));
        m.store().add_user_team(&uid, &t.team_id).await?;
        updated.push(uid);
    }
    m.store().update_team(&t).await?;
    m.forget_team(&t.team_id);
    let mut v = team_json(&t);
    v["updated_users"] = json!(updated);
    Ok(Json(v))
}
