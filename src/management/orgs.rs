//! `/organization/*`: new, update, delete, info, list, member_add, member_update,
//! member_delete (LiteLLM's `LiteLLM_OrganizationTable` and `LiteLLM_OrganizationMembership`).
//!
//! As in LiteLLM, every organization has a budget row (`budget_id`): `/organization/new` makes
//! one from the body's `max_budget`, `budget_duration`, `tpm_limit`, `rpm_limit`,
//! `max_parallel_requests` and `soft_budget` unless it names an existing `budget_id`, and
//! `/organization/update` changes that row. A team joins an organization with `organization_id`
//! on `/team/new` or `/team/update`; its calls then charge the organization's spend, and a call of
//! a team whose organization is at or over its `max_budget` is refused (422,
//! `Budget has been exceeded! Organization=…`).
//!
//! Who may: proxy admins create, update and delete organizations; a proxy admin or an
//! `org_admin` of the organization manages its members; a member reads its organization
//! (`/organization/info`) and `/organization/list` lists a non-admin's own organizations.
//! `proxy_admin_viewer` reads everything.

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
    budgets::budget_json,
    error::{bad, forbidden, not_found, ApiError, ApiResult},
    extract::{require_admin, ApiJson, Caller, Q},
    limits::LimitFields,
    views::{iso, team_json, user_json},
    Mgmt,
};
use crate::store::{next_reset, BudgetRow, Limits, OrgMemberRow, OrgRow, TeamRow, UserRow};

/// Who LiteLLM records as the creator of rows the master key makes (`litellm_proxy_admin_name`).
const PROXY_ADMIN_NAME: &str = "default_user_id";

/// The roles a user may have in an organization (LiteLLM's `ROLES_WITHIN_ORG`).
const ORG_ROLES: &[&str] = &["org_admin", "internal_user", "internal_user_viewer"];

pub(super) fn routes(state: &Arc<Mgmt>) -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/organization/new", post(org_new))
        // LiteLLM's methods are PATCH and DELETE; POST is accepted as well.
        .route("/organization/update", post(org_update).patch(org_update))
        .route("/organization/delete", post(org_delete).delete(org_delete))
        .route_layer(from_fn_with_state(state.clone(), require_admin))
        // These check their caller: members read, org admins manage members.
        .route("/organization/info", get(org_info).post(org_info_many))
        .route("/organization/list", get(org_list))
        .route("/organization/member_add", post(member_add))
        .route(
            "/organization/member_update",
            post(member_update).patch(member_update),
        )
        .route(
            "/organization/member_delete",
            post(member_delete).delete(member_delete),
        )
}

/// A membership as LiteLLM answers it.
fn member_json(m: &OrgMemberRow) -> Value {
    json!({
        "user_id": m.user_id,
        "organization_id": m.organization_id,
        "user_role": m.user_role,
        "spend": m.spend,
        "budget_id": m.budget_id,
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
    })
}

/// An organization as LiteLLM answers it (`LiteLLM_OrganizationTableWithMembers`): its budget
/// row under `litellm_budget_table`, its members and teams.
async fn org_json(m: &Mgmt, o: &OrgRow) -> Result<Value, ApiError> {
    let teams = m.store().list_teams().await?;
    org_json_with(m, o, &teams).await
}

/// [`org_json`] with every team read once (a list of organizations reads them once).
async fn org_json_with(m: &Mgmt, o: &OrgRow, all_teams: &[TeamRow]) -> Result<Value, ApiError> {
    let budget = m.store().budget(&o.budget_id).await?;
    let members = m
        .store()
        .org_members(Some(&o.organization_id), None)
        .await?;
    let teams: Vec<Value> = all_teams
        .iter()
        .filter(|t| t.organization_id.as_deref() == Some(o.organization_id.as_str()))
        .map(team_json)
        .collect();
    Ok(json!({
        "organization_id": o.organization_id,
        "organization_alias": o.organization_alias,
        "budget_id": o.budget_id,
        "metadata": o.metadata,
        "models": o.models,
        "spend": o.spend,
        "model_spend": {},
        "created_at": iso(o.created_at),
        "created_by": o.created_by,
        "updated_at": iso(o.updated_at),
        "updated_by": o.updated_by,
        "litellm_budget_table": budget.as_ref().map(budget_json),
        "members": members.iter().map(member_json).collect::<Vec<_>>(),
        "teams": teams,
    }))
}

#[derive(Debug, Default, Deserialize)]
struct OrgBody {
    organization_id: Option<String>,
    organization_alias: Option<String>,
    models: Option<Vec<String>>,
    budget_id: Option<String>,
    metadata: Option<Map<String, Value>>,
    max_budget: Option<f64>,
    soft_budget: Option<f64>,
    budget_duration: Option<String>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
    max_parallel_requests: Option<i64>,
}

impl OrgBody {
    fn limits(&self) -> LimitFields {
        LimitFields {
            max_budget: self.max_budget,
            budget_duration: self.budget_duration.clone(),
            tpm_limit: self.tpm_limit,
            rpm_limit: self.rpm_limit,
            max_parallel_requests: self.max_parallel_requests,
        }
    }

    fn check(&self) -> Result<(), ApiError> {
        self.limits().validate()?;
        if self.soft_budget.is_some_and(|s| !s.is_finite() || s < 0.0) {
            return Err(bad("soft_budget", "soft_budget must be a number ≥ 0"));
        }
        if self
            .models
            .as_ref()
            .is_some_and(|v| v.iter().any(String::is_empty))
        {
            return Err(bad("models", "a model name may not be empty"));
        }
        Ok(())
    }

    fn sets_budget(&self) -> bool {
        self.max_budget.is_some()
            || self.soft_budget.is_some()
            || self.budget_duration.is_some()
            || self.tpm_limit.is_some()
            || self.rpm_limit.is_some()
            || self.max_parallel_requests.is_some()
    }
}

async fn org_new(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<OrgBody>) -> ApiResult {
    b.check()?;
    let Some(alias) = b.organization_alias.clone() else {
        return Err(bad(
            "organization_alias",
            "missing field `organization_alias`",
        ));
    };
    let id = b
        .organization_id
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(crate::server::new_call_id);
    if m.store().organization(&id).await?.is_some() {
        return Err(bad(
            "organization_id",
            format!(
                "Organization id = {id} already exists. Please use a different organization id."
            ),
        ));
    }
    let now = m.keys.clock().unix_ms();
    let budget_id = match b.budget_id.as_deref().filter(|s| !s.is_empty()) {
        Some(bid) => {
            if m.store().budget(bid).await?.is_none() {
                return Err(bad(
                    "budget_id",
                    format!("Budget not found, passed budget_id={bid}"),
                ));
            }
            bid.to_owned()
        }
        None => {
            let mut limits = Limits::default();
            b.limits().apply(&mut limits);
            let row = BudgetRow {
                budget_id: crate::server::new_call_id(),
                budget_reset_at: next_reset(limits.budget_duration.as_deref(), now),
                limits,
                soft_budget: b.soft_budget,
                created_by: PROXY_ADMIN_NAME.into(),
                updated_by: PROXY_ADMIN_NAME.into(),
                created_at: now,
                updated_at: now,
            };
            m.store().create_budget(&row).await?;
            row.budget_id
        }
    };
    let o = OrgRow {
        organization_id: id.clone(),
        organization_alias: alias,
        budget_id,
        models: b.models.clone().unwrap_or_default(),
        metadata: b.metadata.clone().unwrap_or_default(),
        created_by: PROXY_ADMIN_NAME.into(),
        updated_by: PROXY_ADMIN_NAME.into(),
        created_at: now,
        updated_at: now,
        ..OrgRow::default()
    };
    m.store().create_org(&o).await?;
    let o = m.store().organization(&id).await?.unwrap_or(o);
    Ok(Json(org_json(&m, &o).await?))
}

async fn load_org(m: &Mgmt, id: Option<&str>) -> Result<OrgRow, ApiError> {
    let Some(id) = id.filter(|s| !s.is_empty()) else {
        return Err(bad("organization_id", "missing field `organization_id`"));
    };
    m.store()
        .organization(id)
        .await?
        .ok_or_else(|| not_found(format!("Organization not found for organization_id={id}")))
}

/// Drops the cached keys of an organization's teams after the organization changed.
fn forget_org(m: &Mgmt, org: &str) {
    m.keys
        .invalidate_where(|k| k.organization_id.as_deref() == Some(org));
}

async fn org_update(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<OrgBody>) -> ApiResult {
    b.check()?;
    let mut o = load_org(&m, b.organization_id.as_deref()).await?;
    if let Some(v) = &b.organization_alias {
        o.organization_alias.clone_from(v);
    }
    if let Some(v) = &b.models {
        o.models.clone_from(v);
    }
    if let Some(v) = &b.metadata {
        // LiteLLM merges the metadata sent into the stored one.
        for (k, val) in v {
            o.metadata.insert(k.clone(), val.clone());
        }
    }
    o.updated_by = PROXY_ADMIN_NAME.into();
    if b.sets_budget() {
        if let Some(budget) = m.store().budget(&o.budget_id).await? {
            super::budgets::save_budget_fields(
                &m,
                budget,
                &b.limits(),
                b.soft_budget,
                PROXY_ADMIN_NAME,
            )
            .await?;
        }
    }
    m.store().update_org(&o).await?;
    forget_org(&m, &o.organization_id);
    let o = load_org(&m, Some(&o.organization_id)).await?;
    Ok(Json(org_json(&m, &o).await?))
}

#[derive(Debug, Deserialize)]
struct OrgDelete {
    organization_ids: Vec<String>,
}

/// `DELETE /organization/delete`: as LiteLLM, the organizations' teams and memberships go too.
async fn org_delete(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<OrgDelete>) -> ApiResult {
    if b.organization_ids.is_empty() {
        return Err(bad(
            "organization_ids",
            "organization_ids must list at least one organization",
        ));
    }
    let mut out = Vec::new();
    for id in &b.organization_ids {
        let o = m
            .store()
            .organization(id)
            .await?
            .ok_or_else(|| not_found(format!("Organization={id} not found")))?;
        let v = org_json(&m, &o).await?;
        m.store().delete_org(id).await?;
        forget_org(&m, id);
        out.push(v);
    }
    Ok(Json(Value::Array(out)))
}

/// The caller's role in the organization, when its user is a member.
async fn role_in(m: &Mgmt, caller: &Caller, org: &str) -> Result<Option<String>, ApiError> {
    let Caller::Key(me) = caller else {
        return Ok(None);
    };
    let Some(user) = me.user_id.as_deref() else {
        return Ok(None);
    };
    Ok(m.store()
        .org_member(org, user)
        .await?
        .map(|r| r.user_role.unwrap_or_default()))
}

#[derive(Debug, Deserialize)]
struct OrgQuery {
    organization_id: Option<String>,
}

/// `GET /organization/info?organization_id=`: admins and viewers; a member reads its own.
async fn org_info(caller: Caller, State(m): State<Arc<Mgmt>>, Q(q): Q<OrgQuery>) -> ApiResult {
    let Some(id) = q.organization_id.as_deref().filter(|s| !s.is_empty()) else {
        return Err(bad("organization_id", "missing field `organization_id`"));
    };
    if matches!(caller, Caller::Key(_)) && role_in(&m, &caller, id).await?.is_none() {
        return Err(forbidden(
            "key not allowed to access this organization's info: a key may read only the organizations its user is a member of",
        ));
    }
    let o = m
        .store()
        .organization(id)
        .await?
        .ok_or_else(|| not_found("Organization not found"))?;
    Ok(Json(org_json(&m, &o).await?))
}

#[derive(Debug, Deserialize)]
struct OrgIds {
    organizations: Vec<String>,
}

/// `POST /organization/info` (LiteLLM's deprecated form): `{"organizations": [ids]}`; admins.
async fn org_info_many(
    caller: Caller,
    State(m): State<Arc<Mgmt>>,
    ApiJson(b): ApiJson<OrgIds>,
) -> ApiResult {
    if !matches!(caller, Caller::Admin | Caller::Viewer) {
        return Err(forbidden(
            "Only the master key or a proxy_admin may call the management API",
        ));
    }
    if b.organizations.is_empty() {
        return Err(bad(
            "organizations",
            "Specify list of organization id's to query. Passed in=[]",
        ));
    }
    let mut out = Vec::new();
    for id in &b.organizations {
        if let Some(o) = m.store().organization(id).await? {
            out.push(org_json(&m, &o).await?);
        }
    }
    Ok(Json(Value::Array(out)))
}

/// `GET /organization/list`: every organization for admins and viewers; a user's own otherwise.
async fn org_list(caller: Caller, State(m): State<Arc<Mgmt>>) -> ApiResult {
    let orgs = m.store().list_orgs().await?;
    let mine: Option<Vec<String>> = match &caller {
        Caller::Admin | Caller::Viewer => None,
        Caller::Key(me) => Some(match me.user_id.as_deref() {
            Some(u) => m
                .store()
                .org_members(None, Some(u))
                .await?
                .into_iter()
                .map(|r| r.organization_id)
                .collect(),
            None => Vec::new(),
        }),
    };
    let teams = m.store().list_teams().await?;
    let mut out = Vec::new();
    for o in orgs.iter().filter(|o| {
        mine.as_ref()
            .is_none_or(|ids| ids.contains(&o.organization_id))
    }) {
        out.push(org_json_with(&m, o, &teams).await?);
    }
    Ok(Json(Value::Array(out)))
}

/// Proxy admins, and the organization's `org_admin`s, manage its members (LiteLLM's rule).
async fn may_manage(m: &Mgmt, caller: &Caller, org: &str) -> Result<(), ApiError> {
    if matches!(caller, Caller::Admin)
        || role_in(m, caller, org).await?.as_deref() == Some("org_admin")
    {
        return Ok(());
    }
    Err(forbidden(format!(
        "Only proxy admins or org_admins of organization={org} may manage its members"
    )))
}

#[derive(Debug, Deserialize)]
struct OrgMember {
    user_id: Option<String>,
    user_email: Option<String>,
    role: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OrgMembers {
    One(OrgMember),
    Many(Vec<OrgMember>),
}

#[derive(Debug, Deserialize)]
struct MemberAdd {
    organization_id: String,
    member: OrgMembers,
    max_budget_in_organization: Option<f64>,
}

fn check_role(role: &str) -> Result<(), ApiError> {
    if ORG_ROLES.contains(&role) {
        Ok(())
    } else {
        Err(bad(
            "role",
            format!("Invalid role. Must be one of: {ORG_ROLES:?}"),
        ))
    }
}

/// The user a member reference names: by `user_id`, else the one user with `user_email`.
async fn resolve_user(
    m: &Mgmt,
    user_id: Option<&str>,
    user_email: Option<&str>,
) -> Result<Option<String>, ApiError> {
    if let Some(id) = user_id.filter(|s| !s.is_empty()) {
        return Ok(Some(id.to_owned()));
    }
    let Some(email) = user_email.filter(|s| !s.is_empty()) else {
        return Err(bad("user_id", "user_id or user_email is required"));
    };
    let ids = m.store().user_ids_by_email(email).await?;
    match ids.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        _ => Err(bad(
            "user_email",
            "Multiple users with this email found in db. Please use 'user_id' instead.",
        )),
    }
}

/// A member's own budget row (`max_budget_in_organization`): created, or its `max_budget` set.
async fn member_budget(
    m: &Mgmt,
    existing: Option<&str>,
    max_budget: f64,
) -> Result<String, ApiError> {
    if !max_budget.is_finite() || max_budget < 0.0 {
        return Err(bad(
            "max_budget_in_organization",
            "max_budget_in_organization must be a number ≥ 0",
        ));
    }
    if let Some(id) = existing {
        if let Some(mut b) = m.store().budget(id).await? {
            b.limits.max_budget = Some(max_budget);
            b.updated_by = PROXY_ADMIN_NAME.into();
            m.store().update_budget(&b).await?;
            return Ok(id.to_owned());
        }
    }
    let now = m.keys.clock().unix_ms();
    let row = BudgetRow {
        budget_id: crate::server::new_call_id(),
        limits: Limits {
            max_budget: Some(max_budget),
            ..Limits::default()
        },
        created_by: PROXY_ADMIN_NAME.into(),
        updated_by: PROXY_ADMIN_NAME.into(),
        created_at: now,
        updated_at: now,
        ..BudgetRow::default()
    };
    m.store().create_budget(&row).await?;
    Ok(row.budget_id)
}

/// `POST /organization/member_add`: each member (by `user_id` or `user_email`; a user that does
/// not exist is created as an `internal_user`, as LiteLLM does) joins with its `role`.
async fn member_add(
    caller: Caller,
    State(m): State<Arc<Mgmt>>,
    ApiJson(b): ApiJson<MemberAdd>,
) -> ApiResult {
    let o = load_org(&m, Some(&b.organization_id)).await?;
    may_manage(&m, &caller, &o.organization_id).await?;
    let members = match b.member {
        OrgMembers::One(x) => vec![x],
        OrgMembers::Many(v) => v,
    };
    if members.is_empty() {
        return Err(bad("member", "member must name at least one user"));
    }
    for mem in &members {
        check_role(mem.role.as_deref().unwrap_or("internal_user"))?;
        if mem.user_id.is_none() && mem.user_email.is_none() {
            return Err(bad(
                "member.user_id",
                "each member needs a user_id or user_email",
            ));
        }
    }
    let mut users = Vec::new();
    let mut memberships = Vec::new();
    for mem in members {
        let user_id =
            match resolve_user(&m, mem.user_id.as_deref(), mem.user_email.as_deref()).await? {
                Some(id) => id,
                None => crate::server::new_call_id(),
            };
        let user = match m.store().user(&user_id).await? {
            Some(u) => u,
            None => {
                let now = m.keys.clock().unix_ms();
                let u = UserRow {
                    user_id: user_id.clone(),
                    user_email: mem.user_email.clone(),
                    user_role: Some("internal_user".into()),
                    created_at: now,
                    updated_at: now,
                    ..UserRow::default()
                };
                m.store().create_user(&u).await?;
                u
            }
        };
        let existing = m.store().org_member(&o.organization_id, &user_id).await?;
        let budget_id = match b.max_budget_in_organization {
            Some(v) => Some(
                member_budget(
                    &m,
                    existing.as_ref().and_then(|e| e.budget_id.as_deref()),
                    v,
                )
                .await?,
            ),
            None => existing.as_ref().and_then(|e| e.budget_id.clone()),
        };
        m.store()
            .put_org_member(&OrgMemberRow {
                user_id: user_id.clone(),
                organization_id: o.organization_id.clone(),
                user_role: Some(mem.role.unwrap_or_else(|| "internal_user".into())),
                budget_id,
                ..OrgMemberRow::default()
            })
            .await?;
        if let Some(row) = m.store().org_member(&o.organization_id, &user_id).await? {
            memberships.push(member_json(&row));
        }
        users.push(user_json(&user));
    }
    Ok(Json(json!({
        "organization_id": o.organization_id,
        "updated_users": users,
        "updated_organization_memberships": memberships,
    })))
}

#[derive(Debug, Deserialize)]
struct MemberRef {
    organization_id: String,
    user_id: Option<String>,
    user_email: Option<String>,
    role: Option<String>,
    max_budget_in_organization: Option<f64>,
}

impl MemberRef {
    async fn membership(&self, m: &Mgmt) -> Result<OrgMemberRow, ApiError> {
        let user = resolve_user(m, self.user_id.as_deref(), self.user_email.as_deref())
            .await?
            .ok_or_else(|| {
                bad(
                    "user_email",
                    format!(
                        "Unique user not found for user_email={}. Potential duplicate OR non-existent user_email in LiteLLM_UserTable. Use 'user_id' instead.",
                        self.user_email.as_deref().unwrap_or_default()
                    ),
                )
            })?;
        m.store()
            .org_member(&self.organization_id, &user)
            .await?
            .ok_or_else(|| {
                not_found(format!(
                    "Member not found in organization for user_id={user}"
                ))
            })
    }
}

/// `PATCH /organization/member_update`: a member's `role` and `max_budget_in_organization`.
async fn member_update(
    caller: Caller,
    State(m): State<Arc<Mgmt>>,
    ApiJson(b): ApiJson<MemberRef>,
) -> ApiResult {
    let o = load_org(&m, Some(&b.organization_id)).await?;
    may_manage(&m, &caller, &o.organization_id).await?;
    if let Some(r) = &b.role {
        check_role(r)?;
    }
    let mut row = b.membership(&m).await?;
    if let Some(r) = &b.role {
        row.user_role = Some(r.clone());
    }
    if let Some(v) = b.max_budget_in_organization {
        row.budget_id = Some(member_budget(&m, row.budget_id.as_deref(), v).await?);
    }
    m.store().put_org_member(&row).await?;
    let row = b.membership(&m).await?;
    let budget = match &row.budget_id {
        Some(id) => m.store().budget(id).await?,
        None => None,
    };
    let mut v = member_json(&row);
    v["litellm_budget_table"] = budget.as_ref().map_or(Value::Null, budget_json);
    Ok(Json(v))
}

/// `DELETE /organization/member_delete`: the membership goes; the user stays.
async fn member_delete(
    caller: Caller,
    State(m): State<Arc<Mgmt>>,
    ApiJson(b): ApiJson<MemberRef>,
) -> ApiResult {
    let o = load_org(&m, Some(&b.organization_id)).await?;
    may_manage(&m, &caller, &o.organization_id).await?;
    let row = b.membership(&m).await?;
    m.store()
        .delete_org_member(&o.organization_id, &row.user_id)
        .await?;
    Ok(Json(member_json(&row)))
}
