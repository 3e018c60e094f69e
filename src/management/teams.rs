//! `/team/*`: new, update, info, delete, list, block, members (with per-member budgets,
//! `max_budget_in_team`), models and model aliases (`model_aliases`).

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::State,
    middleware::from_fn_with_state,
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{
    error::{bad, forbidden, not_found, ApiError, ApiResult},
    extract::{require_admin, ApiJson, Caller, Q},
    limits::LimitFields,
    views::{key_json, team_json},
    Mgmt, MAX_LIST_ITEMS, MAX_TEXT_BYTES,
};
use crate::{
    auth::KeyInfo,
    store::{next_reset, Limits, TeamMemberRow, TeamRow},
};

/// Who LiteLLM records as the creator of rows the master key makes (`litellm_proxy_admin_name`).
const PROXY_ADMIN_NAME: &str = "default_user_id";

/// Who makes a change, as LiteLLM records it on the rows it creates (`created_by`).
fn actor(caller: &Caller) -> String {
    match caller {
        Caller::Key(k) => k.user_id.clone().unwrap_or_else(|| PROXY_ADMIN_NAME.into()),
        Caller::Admin | Caller::Viewer => PROXY_ADMIN_NAME.into(),
    }
}

/// `model_aliases`: an object of non-empty strings (alias -> model group), within the management
/// API's size limits.
fn aliases_of(v: Option<&Map<String, Value>>) -> Result<Option<HashMap<String, String>>, ApiError> {
    let Some(m) = v else { return Ok(None) };
    if m.len() > MAX_LIST_ITEMS {
        return Err(bad(
            "model_aliases",
            format!("model_aliases holds at most {MAX_LIST_ITEMS} aliases"),
        ));
    }
    let mut out = HashMap::with_capacity(m.len());
    for (alias, group) in m {
        let Some(group) = group.as_str() else {
            return Err(bad(
                "model_aliases",
                format!("model_aliases.{alias} must be a model group name (a string)"),
            ));
        };
        if alias.is_empty()
            || group.is_empty()
            || alias.len() > MAX_TEXT_BYTES
            || group.len() > MAX_TEXT_BYTES
        {
            return Err(bad(
                "model_aliases",
                format!(
                    "model_aliases: an alias and its model group are 1 to {MAX_TEXT_BYTES} bytes"
                ),
            ));
        }
        out.insert(alias.clone(), group.to_owned());
    }
    Ok(Some(out))
}

/// A team's JSON with its model aliases as LiteLLM shows them (`litellm_model_table`).
fn team_with_aliases(t: &TeamRow, aliases: &HashMap<String, String>) -> Value {
    let mut v = team_json(t);
    v["litellm_model_table"] = if aliases.is_empty() {
        Value::Null
    } else {
        json!({"model_aliases": aliases})
    };
    v
}

/// A membership as LiteLLM's `/team/info` lists it (`team_memberships`), with its budget row.
fn membership_json(m: &TeamMemberRow) -> Value {
    json!({
        "user_id": m.user_id,
        "team_id": m.team_id,
        "spend": m.spend,
        "budget_id": m.budget_id,
        "litellm_budget_table": m.budget_id.as_ref().map(|id| json!({
            "budget_id": id,
            "max_budget": m.limits.max_budget,
            "tpm_limit": m.limits.tpm_limit,
            "rpm_limit": m.limits.rpm_limit,
        })),
    })
}

/// `max_budget_in_team`: a number ≥ 0.
fn member_budget(v: Option<f64>) -> Result<Option<f64>, ApiError> {
    match v {
        Some(b) if !b.is_finite() || b < 0.0 => Err(bad(
            "max_budget_in_team",
            "max_budget_in_team must be a number ≥ 0",
        )),
        v => Ok(v),
    }
}

/// This resource's routes: the admin-only ones behind [`require_admin`].
pub(super) fn routes(state: &Arc<Mgmt>) -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/team/new", post(team_new))
        .route("/team/update", post(team_update))
        .route("/team/delete", post(team_delete))
        .route("/team/list", get(team_list))
        .route("/team/block", post(team_block))
        .route("/team/unblock", post(team_unblock))
        .route("/team/model/add", post(team_model_add))
        .route("/team/model/delete", post(team_model_delete))
        .route_layer(from_fn_with_state(state.clone(), require_admin))
        // A team's own admins may read it and manage its members; these check their caller.
        .route("/team/info", get(team_info))
        .route("/team/member_add", post(team_member_add))
        .route("/team/member_update", post(team_member_update))
        .route("/team/member_delete", post(team_member_delete))
}

/// Whether `who` is in the team with role `admin` (by user id).
fn is_team_admin(t: &TeamRow, who: &KeyInfo) -> bool {
    member_role(t, who).as_deref() == Some("admin")
}

/// `who`'s role in the team (`admin`, `user`), when its user is a member.
fn member_role(t: &TeamRow, who: &KeyInfo) -> Option<String> {
    let me = who.user_id.as_deref()?;
    t.members_with_roles
        .iter()
        .find(|v| v.get("user_id").and_then(Value::as_str) == Some(me))
        .map(|v| {
            v.get("role")
                .and_then(Value::as_str)
                .unwrap_or("user")
                .to_owned()
        })
}

/// Admins, and the team's own admins, may manage its members (LiteLLM's rule).
fn may_manage_members(caller: &Caller, t: &TeamRow) -> Result<(), ApiError> {
    match caller {
        Caller::Admin => Ok(()),
        Caller::Key(me) if is_team_admin(t, me) => Ok(()),
        _ => Err(forbidden(format!(
            "Only proxy admins or admins of team={} may manage its members",
            t.team_id
        ))),
    }
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
    organization_id: Option<String>,
    model_aliases: Option<Map<String, Value>>,
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

async fn team_new(
    caller: Caller,
    State(m): State<Arc<Mgmt>>,
    ApiJson(b): ApiJson<TeamBody>,
) -> ApiResult {
    b.limits().validate()?;
    let aliases = aliases_of(b.model_aliases.as_ref())?;
    let team_id = b.team_id.clone().unwrap_or_else(crate::server::new_call_id);
    if m.store().team(&team_id).await?.is_some() {
        return Err(bad(
            "team_id",
            format!("Team id = {team_id} already exists. Please use a different team id."),
        ));
    }
    let now = m.keys.clock().unix_ms();
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
        organization_id: org_of(&m, b.organization_id.as_deref()).await?,
        created_at: now,
        updated_at: now,
    };
    m.store().create_team(&t).await?;
    let aliases = aliases.unwrap_or_default();
    if !aliases.is_empty() {
        m.store()
            .set_team_model_aliases(&t.team_id, &aliases, &actor(&caller))
            .await?;
    }
    Ok(Json(team_with_aliases(&t, &aliases)))
}

/// The organization a team body names: it must exist (an empty id is none).
async fn org_of(m: &Mgmt, org: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(id) = org.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if m.store().organization(id).await?.is_none() {
        return Err(bad(
            "organization_id",
            format!("Organization not found for organization_id={id}"),
        ));
    }
    Ok(Some(id.to_owned()))
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

async fn team_update(
    caller: Caller,
    State(m): State<Arc<Mgmt>>,
    ApiJson(b): ApiJson<TeamBody>,
) -> ApiResult {
    b.limits().validate()?;
    let new_aliases = aliases_of(b.model_aliases.as_ref())?;
    let mut t = load_team(&m, b.team_id.as_deref()).await?;
    if b.limits().apply(&mut t.limits) {
        t.budget_reset_at = next_reset(
            t.limits.budget_duration.as_deref(),
            m.keys.clock().unix_ms(),
        );
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
    if b.organization_id.is_some() {
        t.organization_id = org_of(&m, b.organization_id.as_deref()).await?;
    }
    m.store().update_team(&t).await?;
    let aliases = match new_aliases {
        Some(a) => {
            m.store()
                .set_team_model_aliases(&t.team_id, &a, &actor(&caller))
                .await?;
            a
        }
        None => m.store().team_model_aliases(&t.team_id).await?,
    };
    m.forget_team(&t.team_id);
    Ok(Json(
        json!({"team_id": t.team_id, "data": team_with_aliases(&t, &aliases)}),
    ))
}

#[derive(Debug, Deserialize)]
struct TeamQuery {
    team_id: Option<String>,
}

async fn team_info(caller: Caller, State(m): State<Arc<Mgmt>>, Q(q): Q<TeamQuery>) -> ApiResult {
    if let Caller::Key(me) = &caller {
        // A member reads its own team; whether another team exists is not told.
        let t = match q.team_id.as_deref().filter(|t| !t.is_empty()) {
            Some(id) => m.store().team(id).await?,
            None => None,
        };
        if t.as_ref().is_none_or(|t| member_role(t, me).is_none()) {
            return Err(forbidden(
                "key not allowed to access this team's info: a key may read only the teams its user is a member of",
            ));
        }
    }
    let t = load_team(&m, q.team_id.as_deref()).await?;
    let (keys, _) = m.store().list_keys(Some(&t.team_id), None, 1, 1000).await?;
    let aliases = m.store().team_model_aliases(&t.team_id).await?;
    let members = m.store().team_members(&t.team_id, None).await?;
    Ok(Json(json!({
        "team_id": t.team_id,
        "team_info": team_with_aliases(&t, &aliases),
        "keys": keys.iter().map(key_json).collect::<Vec<_>>(),
        "team_memberships": members.iter().map(membership_json).collect::<Vec<_>>(),
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
    /// Each added member's budget in the team (LiteLLM's `max_budget_in_team`).
    max_budget_in_team: Option<f64>,
}

async fn team_member_add(
    caller: Caller,
    State(m): State<Arc<Mgmt>>,
    ApiJson(b): ApiJson<MemberAdd>,
) -> ApiResult {
    let budget = member_budget(b.max_budget_in_team)?;
    let mut t = load_team(&m, Some(&b.team_id)).await?;
    may_manage_members(&caller, &t)?;
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
    let mut memberships = Vec::new();
    if let Some(max) = budget {
        for uid in &updated {
            if let Some(ms) = m
                .store()
                .set_team_member_budget(&t.team_id, uid, max, &actor(&caller))
                .await?
            {
                memberships.push(membership_json(&ms));
            }
        }
    }
    m.forget_team(&t.team_id);
    let mut v = team_json(&t);
    v["updated_users"] = json!(updated);
    v["updated_team_memberships"] = json!(memberships);
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
struct TeamId {
    team_id: Option<String>,
}

async fn set_team_blocked(m: &Mgmt, team_id: Option<&str>, blocked: bool) -> ApiResult {
    let mut t = load_team(m, team_id).await?;
    t.blocked = blocked;
    m.store().update_team(&t).await?;
    m.forget_team(&t.team_id);
    Ok(Json(team_json(&t)))
}

/// `POST /team/block`: every key of the team is refused (401) until `/team/unblock`.
async fn team_block(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<TeamId>) -> ApiResult {
    set_team_blocked(&m, b.team_id.as_deref(), true).await
}

async fn team_unblock(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<TeamId>) -> ApiResult {
    set_team_blocked(&m, b.team_id.as_deref(), false).await
}

#[derive(Debug, Deserialize)]
struct TeamModels {
    team_id: Option<String>,
    models: Vec<String>,
}

/// `POST /team/model/add`: the models join the team's list (kept once each).
async fn team_model_add(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<TeamModels>) -> ApiResult {
    if b.models.iter().any(String::is_empty) {
        return Err(bad("models", "a model name may not be empty"));
    }
    let mut t = load_team(&m, b.team_id.as_deref()).await?;
    for model in b.models {
        if !t.models.contains(&model) {
            t.models.push(model);
        }
    }
    m.store().update_team(&t).await?;
    m.forget_team(&t.team_id);
    Ok(Json(team_json(&t)))
}

/// `POST /team/model/delete`: the models leave the team's list. (An empty list allows every
/// model, as LiteLLM's: removing the last one opens the team to all models.)
async fn team_model_delete(
    State(m): State<Arc<Mgmt>>,
    ApiJson(b): ApiJson<TeamModels>,
) -> ApiResult {
    let mut t = load_team(&m, b.team_id.as_deref()).await?;
    t.models.retain(|x| !b.models.contains(x));
    m.store().update_team(&t).await?;
    m.forget_team(&t.team_id);
    Ok(Json(team_json(&t)))
}

#[derive(Debug, Deserialize)]
struct MemberRef {
    team_id: String,
    user_id: Option<String>,
    user_email: Option<String>,
    role: Option<String>,
    max_budget_in_team: Option<f64>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
}

impl MemberRef {
    /// The index of the member in the team's list, by `user_id` or `user_email`.
    fn find(&self, t: &TeamRow) -> Result<usize, ApiError> {
        if self.user_id.is_none() && self.user_email.is_none() {
            return Err(bad("user_id", "user_id or user_email is required"));
        }
        let field = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
        t.members_with_roles
            .iter()
            .position(|v| {
                (self.user_id.is_some() && field(v, "user_id") == self.user_id)
                    || (self.user_email.is_some() && field(v, "user_email") == self.user_email)
            })
            .ok_or_else(|| {
                bad(
                    "user_id",
                    format!(
                        "User={} is not a member of team={}",
                        self.user_id
                            .as_deref()
                            .or(self.user_email.as_deref())
                            .unwrap_or_default(),
                        t.team_id
                    ),
                )
            })
    }
}

/// `POST /team/member_update`: a member's `role` and its budget in the team
/// (`max_budget_in_team`). Per-member `tpm_limit` and `rpm_limit` are not enforced yet: refused
/// with 400.
async fn team_member_update(
    caller: Caller,
    State(m): State<Arc<Mgmt>>,
    ApiJson(b): ApiJson<MemberRef>,
) -> ApiResult {
    for (name, set) in [
        ("tpm_limit", b.tpm_limit.is_some()),
        ("rpm_limit", b.rpm_limit.is_some()),
    ] {
        if set {
            return Err(bad(
                name,
                format!("`{name}`: per-member rate limits are not supported by llmgate yet"),
            ));
        }
    }
    let budget = member_budget(b.max_budget_in_team)?;
    let mut t = load_team(&m, Some(&b.team_id)).await?;
    may_manage_members(&caller, &t)?;
    let i = b.find(&t)?;
    if let Some(role) = &b.role {
        if !matches!(role.as_str(), "admin" | "user") {
            return Err(bad("role", "role must be `admin` or `user`"));
        }
        if let Some(Value::Object(o)) = t.members_with_roles.get_mut(i) {
            o.insert("role".into(), Value::String(role.clone()));
        }
    }
    let member = t.members_with_roles.get(i).cloned().unwrap_or_default();
    m.store().update_team(&t).await?;
    let uid = member
        .get("user_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let ms = match budget {
        Some(max) if !uid.is_empty() => {
            m.store()
                .set_team_member_budget(&t.team_id, &uid, max, &actor(&caller))
                .await?
        }
        _ => m.store().team_member(&t.team_id, &uid).await?,
    };
    m.forget_team(&t.team_id);
    Ok(Json(json!({
        "team_id": t.team_id,
        "user_id": member.get("user_id"),
        "user_email": member.get("user_email"),
        "role": member.get("role"),
        "max_budget_in_team": ms.as_ref().and_then(|x| x.limits.max_budget),
        "tpm_limit": null,
        "rpm_limit": null,
    })))
}

/// `POST /team/member_delete`: the member leaves the team (and the team leaves its user's
/// `teams`); its keys stay, as in LiteLLM.
async fn team_member_delete(
    caller: Caller,
    State(m): State<Arc<Mgmt>>,
    ApiJson(b): ApiJson<MemberRef>,
) -> ApiResult {
    let mut t = load_team(&m, Some(&b.team_id)).await?;
    may_manage_members(&caller, &t)?;
    let i = b.find(&t)?;
    let gone = t.members_with_roles.remove(i);
    m.store().update_team(&t).await?;
    if let Some(uid) = gone.get("user_id").and_then(Value::as_str) {
        m.store().remove_user_team(uid, &t.team_id).await?;
    }
    m.forget_team(&t.team_id);
    Ok(Json(team_json(&t)))
}
