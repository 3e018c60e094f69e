//! `/user/*`: new, info (self-service).

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
    error::{bad, forbidden, not_found, ApiError, ApiResult},
    extract::{require_admin, ApiJson, Caller, Q},
    limits::LimitFields,
    views::{key_json, opt_iso, team_json, user_json},
    Mgmt,
};
use crate::store::{next_reset, parse_duration, Limits, NewKey, UserRow};

/// This resource's routes: the admin-only ones behind [`require_admin`], then the self-service reads, which check their caller themselves.
pub(super) fn routes(state: &Arc<Mgmt>) -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/user/new", post(user_new))
        .route("/user/update", post(user_update))
        .route("/user/delete", post(user_delete))
        .route("/user/list", get(user_list))
        .route_layer(from_fn_with_state(state.clone(), require_admin))
        .route("/user/info", get(user_info))
}

#[derive(Debug, Default, Deserialize)]
struct UserBody {
    user_id: Option<String>,
    user_email: Option<String>,
    user_role: Option<String>,
    models: Option<Vec<String>>,
    max_budget: Option<f64>,
    budget_duration: Option<String>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
    max_parallel_requests: Option<i64>,
    metadata: Option<Map<String, Value>>,
    teams: Option<Vec<String>>,
    auto_create_key: Option<bool>,
    key_alias: Option<String>,
    duration: Option<String>,
    /// The UI sign-in password, never shown: on llmgate's tables an Argon2id hash in `metadata`;
    /// on LiteLLM's, LiteLLM's own form in `LiteLLM_UserTable.password` (see [`Password`]).
    password: Option<String>,
}

/// Where a user's new password goes.
enum Password {
    /// llmgate's tables: the Argon2id PHC string, in `metadata`.
    Metadata(String),
    /// LiteLLM's tables: the Argon2id PHC string in LiteLLM's `password` column. Not LiteLLM's
    /// own form (the unsalted SHA-256 of `hash_token`, a fast hash that a leaked database gives
    /// up to a guessing run): docs/ui.md says why and what it costs.
    Column(String),
}

impl Password {
    /// Writes a LiteLLM-column password (after the user row exists).
    async fn store_column(&self, m: &Mgmt, user_id: &str) -> Result<(), ApiError> {
        if let Self::Column(h) = self {
            m.store().set_user_password(user_id, h).await?;
        }
        Ok(())
    }

    /// Puts an Argon2id hash into the user's `metadata`.
    fn into_metadata(self, u: &mut UserRow) {
        if let Self::Metadata(h) = self {
            u.metadata.insert(
                super::password::PASSWORD_HASH_KEY.to_owned(),
                Value::String(h),
            );
        }
    }
}

impl UserBody {
    /// The Argon2id hash of `password` (checked: 1 to [`MAX_TEXT_BYTES`](super::MAX_TEXT_BYTES)
    /// bytes), and a 400 for a `metadata` that tries to set the hash itself.
    async fn password_hash(&self, m: &Mgmt) -> Result<Option<Password>, ApiError> {
        if self
            .metadata
            .as_ref()
            .is_some_and(|m| m.contains_key(super::password::PASSWORD_HASH_KEY))
        {
            return Err(bad(
                "metadata",
                format!(
                    "metadata.{} is reserved; set `password`",
                    super::password::PASSWORD_HASH_KEY
                ),
            ));
        }
        let Some(p) = &self.password else {
            return Ok(None);
        };
        if p.is_empty() || p.len() > super::MAX_TEXT_BYTES {
            return Err(bad("password", "password must be 1 to 1024 bytes"));
        }
        let h = super::password::hash_password(p.clone())
            .await
            .ok_or_else(|| {
                ApiError::from(crate::store::StoreError::msg("cannot hash the password"))
            })?;
        Ok(Some(
            if m.store().schema() == crate::store::Schema::LiteLlm {
                Password::Column(h)
            } else {
                Password::Metadata(h)
            },
        ))
    }

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

const USER_ROLES: &[&str] = &[
    "proxy_admin",
    "proxy_admin_viewer",
    "internal_user",
    "internal_user_viewer",
    "team",
    "customer",
];

async fn user_new(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<UserBody>) -> ApiResult {
    b.limits().validate()?;
    let password_hash = b.password_hash(&m).await?;
    if let Some(r) = &b.user_role {
        if !USER_ROLES.contains(&r.as_str()) {
            return Err(bad(
                "user_role",
                format!("user_role must be one of {USER_ROLES:?}"),
            ));
        }
    }
    let duration = match &b.duration {
        Some(d) => Some(
            parse_duration(d)
                .ok_or_else(|| bad("duration", format!("duration `{d}` is not a duration")))?,
        ),
        None => None,
    };
    let user_id = b.user_id.clone().unwrap_or_else(crate::server::new_call_id);
    if m.store().user(&user_id).await?.is_some() {
        return Err(bad(
            "user_id",
            format!("User id = {user_id} already exists"),
        ));
    }
    let now = m.keys.clock().unix_ms();
    let mut limits = Limits::default();
    b.limits().apply(&mut limits);
    let mut u = UserRow {
        user_id: user_id.clone(),
        user_email: b.user_email.clone(),
        user_role: Some(
            b.user_role
                .clone()
                .unwrap_or_else(|| "internal_user".to_owned()),
        ),
        models: b.models.clone().unwrap_or_default(),
        spend: 0.0,
        budget_reset_at: next_reset(limits.budget_duration.as_deref(), now),
        limits,
        metadata: b.metadata.clone().unwrap_or_default(),
        teams: b.teams.clone().unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    let column = match password_hash {
        Some(p @ Password::Column(_)) => Some(p),
        Some(p) => {
            p.into_metadata(&mut u);
            None
        }
        None => None,
    };
    m.store().create_user(&u).await?;
    if let Some(p) = column {
        p.store_column(&m, &u.user_id).await?;
    }
    let mut v = user_json(&u);
    if b.auto_create_key.unwrap_or(true) {
        let (secret, row) = m
            .store()
            .create_key(NewKey {
                key_alias: b.key_alias.clone(),
                models: u.models.clone(),
                user_id: Some(user_id),
                duration,
                ..NewKey::default()
            })
            .await?;
        v["key"] = Value::String(secret.expose().to_owned());
        v["token"] = Value::String(row.token);
        v["expires"] = opt_iso(row.expires);
    }
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
struct UserQuery {
    user_id: Option<String>,
}

async fn user_info(State(m): State<Arc<Mgmt>>, Q(q): Q<UserQuery>, caller: Caller) -> ApiResult {
    let asked = q.user_id.filter(|u| !u.is_empty());
    let id = match caller {
        Caller::Admin | Caller::Viewer => {
            asked.ok_or_else(|| bad("user_id", "missing field `user_id`"))?
        }
        // A key reads its own user (no `user_id`: the key's user), as LiteLLM allows.
        Caller::Key(me) => match (asked, &me.user_id) {
            (None, Some(mine)) => mine.clone(),
            (Some(asked), Some(mine)) if asked == *mine => asked,
            (asked, mine) => {
                return Err(forbidden(format!(
                    "key not allowed to access this user's info. user_id={}, key's user_id={}",
                    asked.as_deref().unwrap_or("None"),
                    mine.as_deref().unwrap_or("None")
                )))
            }
        },
    };
    let u = m
        .store()
        .user(&id)
        .await?
        .ok_or_else(|| not_found(format!("User not found, passed user_id={id}")))?;
    let (keys, _) = m.store().list_keys(None, Some(&id), 1, 1000).await?;
    let mut teams = Vec::new();
    for t in &u.teams {
        if let Some(t) = m.store().team(t).await? {
            teams.push(team_json(&t));
        }
    }
    Ok(Json(json!({
        "user_id": u.user_id,
        "user_info": user_json(&u),
        "keys": keys.iter().map(key_json).collect::<Vec<_>>(),
        "teams": teams,
    })))
}

/// `POST /user/update`: the user (by `user_id`, else `user_email`) with the fields given changed.
async fn user_update(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<UserBody>) -> ApiResult {
    b.limits().validate()?;
    let password_hash = b.password_hash(&m).await?;
    if let Some(r) = &b.user_role {
        if !USER_ROLES.contains(&r.as_str()) {
            return Err(bad(
                "user_role",
                format!("user_role must be one of {USER_ROLES:?}"),
            ));
        }
    }
    let mut u = match (&b.user_id, &b.user_email) {
        (Some(id), _) => m.store().user(id).await?,
        (None, Some(email)) => {
            let (all, _) = m.store().list_users(None, 1, i64::MAX).await?;
            all.into_iter()
                .find(|u| u.user_email.as_deref() == Some(email.as_str()))
        }
        (None, None) => {
            return Err(bad(
                "user_id",
                "Either user_id or user_email must be provided",
            ))
        }
    }
    .ok_or_else(|| {
        not_found(format!(
            "User not found, passed user_id={}",
            b.user_id
                .as_deref()
                .or(b.user_email.as_deref())
                .unwrap_or_default()
        ))
    })?;
    if b.limits().apply(&mut u.limits) {
        u.budget_reset_at = next_reset(
            u.limits.budget_duration.as_deref(),
            m.keys.clock().unix_ms(),
        );
    }
    if b.user_id.is_some() {
        if let Some(v) = &b.user_email {
            u.user_email = Some(v.clone());
        }
    }
    if let Some(v) = &b.user_role {
        u.user_role = Some(v.clone());
    }
    if let Some(v) = &b.models {
        u.models.clone_from(v);
    }
    if let Some(v) = &b.metadata {
        // A new `metadata` keeps the password.
        let kept = u.metadata.remove(super::password::PASSWORD_HASH_KEY);
        u.metadata.clone_from(v);
        if let Some(h) = kept {
            u.metadata
                .insert(super::password::PASSWORD_HASH_KEY.to_owned(), h);
        }
    }
    let column = match password_hash {
        Some(p @ Password::Column(_)) => Some(p),
        Some(p) => {
            p.into_metadata(&mut u);
            None
        }
        None => None,
    };
    m.store().update_user(&u).await?;
    if let Some(p) = column {
        p.store_column(&m, &u.user_id).await?;
    }
    // Cached keys of this user carry its role, models and limits.
    let id = u.user_id.clone();
    m.keys
        .invalidate_where(move |k| k.user_id.as_deref() == Some(id.as_str()));
    Ok(Json(json!({"user_id": u.user_id, "data": user_json(&u)})))
}

#[derive(Debug, Deserialize)]
struct UserDelete {
    user_ids: Vec<String>,
}

/// `POST /user/delete`: the users, their keys, and their places in teams' `members_with_roles`
/// go (as in LiteLLM). Answers `{"deleted_users": [...]}`; 404 when none existed.
async fn user_delete(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<UserDelete>) -> ApiResult {
    if b.user_ids.is_empty() {
        return Err(bad("user_ids", "No user id passed in"));
    }
    for id in &b.user_ids {
        let Some(u) = m.store().user(id).await? else {
            continue;
        };
        // Their keys.
        let (keys, _) = m.store().list_keys(None, Some(id), 1, i64::MAX).await?;
        let tokens: Vec<String> = keys.into_iter().map(|k| k.token).collect();
        m.store().delete_keys(&tokens).await?;
        for t in &tokens {
            m.keys.invalidate(t);
        }
        // Their team memberships.
        for team_id in &u.teams {
            if let Some(mut t) = m.store().team(team_id).await? {
                let before = t.members_with_roles.len();
                t.members_with_roles
                    .retain(|v| v.get("user_id").and_then(Value::as_str) != Some(id.as_str()));
                if t.members_with_roles.len() != before {
                    m.store().update_team(&t).await?;
                }
            }
        }
    }
    let deleted = m.store().delete_users(&b.user_ids).await?;
    if deleted.is_empty() {
        return Err(not_found("None of the users exist"));
    }
    Ok(Json(json!({"deleted_users": deleted})))
}

#[derive(Debug, Deserialize)]
struct UserListQuery {
    role: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

/// `GET /user/list`: `{"users", "total", "page", "page_size", "total_pages"}`, LiteLLM's shape;
/// `role` filters, `page_size` is 1–100 (default 25).
async fn user_list(State(m): State<Arc<Mgmt>>, Q(q): Q<UserListQuery>) -> ApiResult {
    let page = q.page.unwrap_or(1);
    if !(1..=1_000_000_000).contains(&page) {
        return Err(bad("page", "page must be between 1 and 10^9"));
    }
    let size = q.page_size.unwrap_or(25);
    if !(1..=100).contains(&size) {
        return Err(bad("page_size", "page_size must be between 1 and 100"));
    }
    if let Some(r) = &q.role {
        if !USER_ROLES.contains(&r.as_str()) {
            return Err(bad("role", format!("role must be one of {USER_ROLES:?}")));
        }
    }
    let (users, total) = m.store().list_users(q.role.as_deref(), page, size).await?;
    Ok(Json(json!({
        "users": users.iter().map(user_json).collect::<Vec<_>>(),
        "total": total,
        "page": page,
        "page_size": size,
        "total_pages": (total + size - 1) / size,
    })))
}
