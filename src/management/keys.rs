//! `/key/*`: generate, update, info (self-service), delete, list, block, unblock, regenerate.

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
    extract::{require_admin, ApiJson, Caller, KeyPath, Q},
    limits::LimitFields,
    views::key_json,
    Mgmt,
};
use crate::{
    auth::KeyInfo,
    secret::Secret,
    store::{hash_key, next_reset, parse_duration, KeyRow, Limits, NewKey},
};

/// This resource's routes: the admin-only ones behind [`require_admin`], then the self-service reads, which check their caller themselves.
pub(super) fn routes(state: &Arc<Mgmt>) -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/key/block", post(key_block))
        .route("/key/unblock", post(key_unblock))
        .route_layer(from_fn_with_state(state.clone(), require_admin))
        .route("/key/info", get(key_info))
        // Admins; an internal user on its own keys, a team's admin on its team's keys (for
        // deletion), as LiteLLM: these check their caller.
        .route("/key/update", post(key_update))
        .route("/key/delete", post(key_delete))
        .route("/key/regenerate", post(key_regenerate))
        .route("/key/{key}/regenerate", post(key_regenerate_path))
        // Admins, and a team's admins for that team (LiteLLM's rule): checks its caller.
        .route("/key/generate", post(key_generate))
        // Admins list every key; an internal user its own.
        .route("/key/list", get(key_list))
        // Any valid key.
        .route("/key/health", get(key_health).post(key_health))
}

#[derive(Debug, Default, Deserialize)]
struct KeyBody {
    key: Option<String>,
    key_alias: Option<String>,
    models: Option<Vec<String>>,
    max_budget: Option<f64>,
    budget_duration: Option<String>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
    max_parallel_requests: Option<i64>,
    duration: Option<String>,
    metadata: Option<Map<String, Value>>,
    team_id: Option<String>,
    user_id: Option<String>,
    blocked: Option<bool>,
    spend: Option<f64>,
    /// LiteLLM keeps a key's tags in `metadata.tags`.
    tags: Option<Vec<String>>,
    /// Model-specific budgets and limits (LiteLLM's shape, see [`crate::budget::model`]).
    model_max_budget: Option<Value>,
    /// LiteLLM's per-model limits, kept in `metadata.model_rpm_limit` / `model_tpm_limit`.
    model_rpm_limit: Option<Map<String, Value>>,
    /// See `model_rpm_limit`.
    model_tpm_limit: Option<Map<String, Value>>,
    /// Not supported yet: refused rather than ignored.
    budget_id: Option<String>,
    /// LiteLLM key fields that restrict or change what a key does and that llmgate does not
    /// enforce yet: a value other than "nothing" (`null`, empty, `false`, `"default"`) is
    /// refused, never silently dropped.
    allowed_routes: Option<Value>,
    /// See `allowed_routes`.
    allowed_passthrough_routes: Option<Value>,
    /// See `allowed_routes`.
    permissions: Option<Value>,
    /// See `allowed_routes`.
    enforced_params: Option<Value>,
    /// See `allowed_routes`.
    allowed_cache_controls: Option<Value>,
    /// See `allowed_routes`.
    guardrails: Option<Value>,
    /// See `allowed_routes`.
    prompts: Option<Value>,
    /// See `allowed_routes`.
    object_permission: Option<Value>,
    /// See `allowed_routes`.
    allowed_vector_store_indexes: Option<Value>,
    /// See `allowed_routes`.
    aliases: Option<Value>,
    /// See `allowed_routes`.
    config: Option<Value>,
    /// See `allowed_routes`.
    key_type: Option<Value>,
    /// See `allowed_routes`.
    rpm_limit_type: Option<Value>,
    /// See `allowed_routes`.
    tpm_limit_type: Option<Value>,
    /// See `allowed_routes`.
    organization_id: Option<Value>,
    /// See `allowed_routes`.
    soft_budget: Option<Value>,
}

/// Whether a JSON value says "nothing": `null`, `{}`, `[]`, `""`, `false`, or LiteLLM's
/// `"default"` key type.
fn is_nothing(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty() || s == "default",
        _ => false,
    }
}

impl KeyBody {
    /// Fields LiteLLM accepts that llmgate does not enforce yet: a 400 naming the field, so a
    /// limit is never silently dropped.
    fn refuse_unsupported(&self) -> Result<(), ApiError> {
        if let Some(v) = self.model_max_budget.as_ref().filter(|v| !v.is_null()) {
            crate::budget::model::validate(v).map_err(|e| {
                bad(
                    "model_max_budget",
                    format!("Invalid model_max_budget: {e}. Example of valid model_max_budget: {{\"gpt-4o\": {{\"max_budget\": 10.0, \"budget_duration\": \"1d\", \"tpm_limit\": 100000, \"rpm_limit\": 100}}}}"),
                )
            })?;
        }
        for (name, v) in [
            ("model_rpm_limit", &self.model_rpm_limit),
            ("model_tpm_limit", &self.model_tpm_limit),
        ] {
            let bad_entry = v
                .iter()
                .flatten()
                .find(|(_, n)| !n.is_null() && n.as_i64().is_none_or(|n| n < 0));
            if let Some((model, _)) = bad_entry {
                return Err(bad(
                    name,
                    format!("{name}: the limit of `{model}` must be an integer ≥ 0"),
                ));
            }
        }
        for (name, v) in [
            ("allowed_routes", &self.allowed_routes),
            (
                "allowed_passthrough_routes",
                &self.allowed_passthrough_routes,
            ),
            ("permissions", &self.permissions),
            ("enforced_params", &self.enforced_params),
            ("allowed_cache_controls", &self.allowed_cache_controls),
            ("guardrails", &self.guardrails),
            ("prompts", &self.prompts),
            ("object_permission", &self.object_permission),
            (
                "allowed_vector_store_indexes",
                &self.allowed_vector_store_indexes,
            ),
            ("aliases", &self.aliases),
            ("config", &self.config),
            ("key_type", &self.key_type),
            ("rpm_limit_type", &self.rpm_limit_type),
            ("tpm_limit_type", &self.tpm_limit_type),
            ("organization_id", &self.organization_id),
            ("soft_budget", &self.soft_budget),
        ] {
            if v.as_ref().is_some_and(|v| !is_nothing(v)) {
                return Err(bad(
                    name,
                    format!("`{name}` on a key is not supported by llmgate yet (refused rather than ignored)"),
                ));
            }
        }
        if self.budget_id.is_some() {
            return Err(bad(
                "budget_id",
                "`budget_id`: linking a key to a budget is not supported by llmgate's API yet",
            ));
        }
        Ok(())
    }

    /// `metadata` with `tags` merged in as `metadata.tags` (LiteLLM's place for them).
    fn metadata_with_tags(&self, base: Option<&Map<String, Value>>) -> Option<Map<String, Value>> {
        let mut md = self.metadata.clone().or_else(|| base.cloned());
        if let Some(tags) = &self.tags {
            md.get_or_insert_with(Map::new)
                .insert("tags".into(), json!(tags));
        }
        // LiteLLM keeps a key's per-model limits in its metadata.
        for (name, v) in [
            ("model_rpm_limit", &self.model_rpm_limit),
            ("model_tpm_limit", &self.model_tpm_limit),
        ] {
            if let Some(v) = v {
                md.get_or_insert_with(Map::new)
                    .insert(name.into(), Value::Object(v.clone()));
            }
        }
        md
    }
}

impl KeyBody {
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

pub(super) fn token_of(key: &str) -> String {
    if key.starts_with("sk-") {
        hash_key(key)
    } else {
        key.to_owned()
    }
}

async fn check_team(m: &Mgmt, team_id: Option<&str>) -> Result<(), ApiError> {
    if let Some(t) = team_id {
        if m.store().team(t).await?.is_none() {
            return Err(bad(
                "team_id",
                format!("team_id={t} does not exist; create it with /team/new"),
            ));
        }
    }
    Ok(())
}

async fn key_generate(
    caller: Caller,
    State(m): State<Arc<Mgmt>>,
    ApiJson(b): ApiJson<KeyBody>,
) -> ApiResult {
    match &caller {
        Caller::Admin => {}
        Caller::Viewer => {
            return Err(forbidden(
                "proxy_admin_viewer may only read: /key/generate needs a proxy_admin",
            ))
        }
        // An internal user makes keys for itself (LiteLLM's `internal_user` key routes).
        Caller::Key(me)
            if b.team_id.is_none() && me.user_role.as_deref() == Some("internal_user") =>
        {
            let mine = me.user_id.as_deref().unwrap_or_default();
            if mine.is_empty() || b.user_id.as_deref().is_some_and(|u| u != mine) {
                return Err(forbidden(format!(
                    "User can only create keys for themselves. Got user_id={}, Your ID={}",
                    b.user_id.as_deref().unwrap_or("None"),
                    me.user_id.as_deref().unwrap_or("None"),
                )));
            }
        }
        // A team's admin makes keys for its team (for itself or another member of it).
        Caller::Key(me) => {
            let team = match b.team_id.as_deref() {
                Some(t) => m.store().team(t).await?,
                None => None,
            };
            let role_of = |t: &crate::store::TeamRow, user: &str| {
                t.members_with_roles
                    .iter()
                    .find(|v| v.get("user_id").and_then(Value::as_str) == Some(user))
                    .map(|v| {
                        v.get("role")
                            .and_then(Value::as_str)
                            .unwrap_or("user")
                            .to_owned()
                    })
            };
            let allowed = team.as_ref().is_some_and(|t| {
                me.user_id
                    .as_deref()
                    .is_some_and(|u| role_of(t, u).as_deref() == Some("admin"))
                    && b.user_id.as_deref().is_none_or(|u| role_of(t, u).is_some())
            });
            if !allowed {
                return Err(forbidden(
                    "Only proxy admins, or a team's admins for a member of that team, may generate keys",
                ));
            }
        }
    }
    b.refuse_unsupported()?;
    b.limits().validate()?;
    let duration = match &b.duration {
        Some(d) => Some(parse_duration(d).ok_or_else(|| {
            bad(
                "duration",
                format!("duration `{d}` is not a duration; use e.g. 30s, 5m, 1h, 1d, 1w, 1mo"),
            )
        })?),
        None => None,
    };
    if let Some(k) = &b.key {
        if !k.starts_with("sk-") || k.len() < 8 {
            return Err(bad(
                "key",
                "a custom key must start with `sk-` and be at least 8 characters",
            ));
        }
    }
    check_team(&m, b.team_id.as_deref()).await?;
    let mut limits = Limits::default();
    b.limits().apply(&mut limits);
    let (secret, mut row) = m
        .store()
        .create_key(NewKey {
            key: b.key.clone().map(Secret::new),
            key_alias: b.key_alias.clone(),
            models: b.models.clone().unwrap_or_default(),
            limits,
            metadata: b.metadata_with_tags(None).unwrap_or_default(),
            team_id: b.team_id.clone(),
            // An internal user's own key is its user's.
            user_id: match &caller {
                Caller::Key(me) if b.team_id.is_none() => me.user_id.clone(),
                _ => b.user_id.clone(),
            },
            duration,
            blocked: b.blocked.unwrap_or(false),
        })
        .await
        .map_err(|e| {
            if e.to_string().contains("UNIQUE") || e.to_string().contains("duplicate") {
                bad("key", "this key already exists")
            } else {
                ApiError::from(e)
            }
        })?;
    if let Some(mmb) = b.model_max_budget.as_ref().filter(|v| !v.is_null()) {
        row.model_max_budget =
            crate::budget::model::normalize(mmb, &Map::new(), m.keys.clock().unix_ms());
        m.store()
            .set_key_model_budgets(&row.token, &row.model_max_budget)
            .await?;
    }
    m.keys.invalidate(&row.token);
    let mut v = key_json(&row);
    v["key"] = Value::String(secret.expose().to_owned());
    Ok(Json(v))
}

/// The caller's role allows changing its own keys (LiteLLM's `internal_user`; an
/// `internal_user_viewer` changes nothing).
fn is_internal_user(me: &KeyInfo) -> bool {
    me.user_role.as_deref() == Some("internal_user")
}

/// Whether `row` is the caller's own key: one of its user's keys that belongs to no team (a
/// team's keys are the team's admins').
fn own_personal_key(me: &KeyInfo, row: &KeyRow) -> bool {
    me.user_id.is_some() && row.user_id == me.user_id && row.team_id.is_none()
}

/// Whether the caller is an admin (`members_with_roles` role `admin`) of `team_id`.
async fn is_team_admin(m: &Mgmt, me: &KeyInfo, team_id: &str) -> Result<bool, ApiError> {
    let Some(user) = me.user_id.as_deref() else {
        return Ok(false);
    };
    let Some(team) = m.store().team(team_id).await? else {
        return Ok(false);
    };
    Ok(team.members_with_roles.iter().any(|v| {
        v.get("user_id").and_then(Value::as_str) == Some(user)
            && v.get("role").and_then(Value::as_str) == Some("admin")
    }))
}

/// Whether a non-admin caller may change (update, delete, regenerate) `row`: a team's key by
/// the team's admin, a personal key by its user when that user is an `internal_user` (LiteLLM's
/// `can_delete_verification_token` and its team-member permission checks).
async fn may_change(m: &Mgmt, me: &KeyInfo, row: &KeyRow) -> Result<bool, ApiError> {
    match row.team_id.as_deref() {
        Some(team) => is_team_admin(m, me, team).await,
        None => Ok(is_internal_user(me) && own_personal_key(me, row)),
    }
}

/// A viewer changes nothing (LiteLLM's read-only admin).
fn viewer_refused(route: &str) -> ApiError {
    forbidden(format!(
        "proxy_admin_viewer may only read: {route} needs a proxy_admin"
    ))
}

async fn load_key(m: &Mgmt, key: Option<&str>) -> Result<KeyRow, ApiError> {
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return Err(bad("key", "missing field `key`"));
    };
    m.store()
        .key_fresh(&token_of(key))
        .await?
        .ok_or_else(|| not_found("Key not found"))
}

async fn key_update(
    caller: Caller,
    State(m): State<Arc<Mgmt>>,
    ApiJson(b): ApiJson<KeyBody>,
) -> ApiResult {
    b.refuse_unsupported()?;
    b.limits().validate()?;
    let mut row = match &caller {
        Caller::Admin => load_key(&m, b.key.as_deref()).await?,
        Caller::Viewer => return Err(viewer_refused("/key/update")),
        // An internal user updates its own keys (LiteLLM: `internal_user` may call the key
        // routes, for its own user); another user's key, existing or not, is a 403.
        Caller::Key(me) => {
            let row = match b.key.as_deref().filter(|k| !k.is_empty()) {
                Some(k) => m.store().key_fresh(&token_of(k)).await?,
                None => return Err(bad("key", "missing field `key`")),
            };
            let allowed = match &row {
                None => false,
                Some(r) => may_change(&m, me, r).await?,
            };
            let Some(row) = row.filter(|_| allowed) else {
                return Err(forbidden(
                    "You are not allowed to update this key: an internal user updates only its own keys, a team's admin its team's",
                ));
            };
            // LiteLLM's check: a non-admin never hands a key to another user.
            if let Some(u) = b
                .user_id
                .as_deref()
                .filter(|u| Some(*u) != row.user_id.as_deref())
            {
                return Err(forbidden(format!(
                    "User={u} is not allowed to update key={} to belong to user={}",
                    row.token,
                    row.user_id.as_deref().unwrap_or("None")
                )));
            }
            // Moving a key into a team, or rewriting what it has spent, is the admins'.
            if b.team_id.is_some() && b.team_id != row.team_id {
                return Err(forbidden(
                    "Only a proxy admin may move a key into another team",
                ));
            }
            if b.spend.is_some() {
                return Err(forbidden(
                    "An internal user may not change its key's spend; ask a proxy admin",
                ));
            }
            row
        }
    };
    check_team(&m, b.team_id.as_deref()).await?;
    if b.limits().apply(&mut row.limits) {
        row.budget_reset_at = next_reset(
            row.limits.budget_duration.as_deref(),
            m.keys.clock().unix_ms(),
        );
    }
    if let Some(a) = &b.key_alias {
        row.key_alias = Some(a.clone());
    }
    if let Some(v) = &b.models {
        row.models.clone_from(v);
    }
    if let Some(v) = b.metadata_with_tags(Some(&row.metadata)) {
        row.metadata = v;
    }
    if let Some(v) = &b.team_id {
        row.team_id = Some(v.clone());
    }
    if let Some(v) = &b.user_id {
        row.user_id = Some(v.clone());
    }
    if let Some(v) = b.blocked {
        row.blocked = v;
    }
    if let Some(v) = b.spend {
        row.spend = v;
    }
    if let Some(d) = &b.duration {
        let dur = parse_duration(d)
            .ok_or_else(|| bad("duration", format!("duration `{d}` is not a duration")))?;
        row.expires = Some(
            m.keys
                .clock()
                .unix_ms()
                .saturating_add(i64::try_from(dur.as_millis()).unwrap_or(i64::MAX)),
        );
    }
    m.store().update_key(&row).await?;
    if let Some(mmb) = &b.model_max_budget {
        // `null` or `{}` removes every model budget.
        row.model_max_budget =
            crate::budget::model::normalize(mmb, &row.model_max_budget, m.keys.clock().unix_ms());
        row.model_spend
            .retain(|model, _| row.model_max_budget.contains_key(model));
        m.store()
            .set_key_model_budgets(&row.token, &row.model_max_budget)
            .await?;
    }
    m.keys.invalidate(&row.token);
    Ok(Json(key_json(&row)))
}

#[derive(Debug, Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

async fn key_info(State(m): State<Arc<Mgmt>>, Q(q): Q<KeyQuery>, caller: Caller) -> ApiResult {
    let asked = q.key.as_deref().filter(|k| !k.is_empty());
    let row = match caller {
        Caller::Admin | Caller::Viewer => load_key(&m, asked).await?,
        // A key reads itself (no `key` parameter: the key that calls), or another key of its
        // user, as LiteLLM allows; any other key, existing or not, is a 403 (nothing tells
        // whether it exists).
        Caller::Key(me) => {
            let token = asked.map_or_else(|| me.token.to_string(), token_of);
            let row = m.store().key_fresh(&token).await?;
            match row {
                Some(row)
                    if row.token.as_str() == &*me.token
                        || (me.user_id.is_some() && row.user_id == me.user_id) =>
                {
                    row
                }
                _ => {
                    return Err(forbidden(
                        "You are not allowed to access this key's info: a key may read only itself and the keys of its user",
                    ))
                }
            }
        }
    };
    Ok(Json(json!({"key": row.token, "info": key_json(&row)})))
}

#[derive(Debug, Default, Deserialize)]
struct DeleteBody {
    keys: Option<Vec<String>>,
    key_aliases: Option<Vec<String>>,
}

async fn key_delete(
    caller: Caller,
    State(m): State<Arc<Mgmt>>,
    ApiJson(b): ApiJson<DeleteBody>,
) -> ApiResult {
    if matches!(caller, Caller::Viewer) {
        return Err(viewer_refused("/key/delete"));
    }
    let mut tokens: Vec<String> = b
        .keys
        .unwrap_or_default()
        .iter()
        .map(|k| token_of(k))
        .collect();
    for alias in b.key_aliases.unwrap_or_default() {
        tokens.extend(m.store().tokens_by_alias(&alias).await?);
    }
    if tokens.is_empty() {
        return Err(bad("keys", "send `keys` (a list of keys) or `key_aliases`"));
    }
    if let Caller::Key(me) = &caller {
        // LiteLLM's `can_delete_verification_token`: a team's key by the team's admin, a
        // personal key by its user (an internal user). Every key is checked before any is
        // deleted: one refused key deletes none.
        for t in &tokens {
            let allowed = match m.store().key(t).await? {
                // An unknown key is left to the 404 (when none of the keys exist).
                None => true,
                Some(row) => may_change(&m, me, &row).await?,
            };
            if !allowed {
                return Err(forbidden("You are not authorized to delete this key"));
            }
        }
    }
    let deleted = m.store().delete_keys(&tokens).await?;
    for t in &deleted {
        m.keys.invalidate(t);
    }
    if deleted.is_empty() {
        return Err(not_found("None of the keys exist"));
    }
    Ok(Json(json!({"deleted_keys": deleted})))
}

/// The last page `/key/list` serves (the row offset stays far from overflowing).
const MAX_PAGE: i64 = 1_000_000_000;

#[derive(Debug, Deserialize)]
struct ListQuery {
    page: Option<i64>,
    size: Option<i64>,
    team_id: Option<String>,
    user_id: Option<String>,
    return_full_object: Option<bool>,
}

async fn key_list(caller: Caller, State(m): State<Arc<Mgmt>>, Q(q): Q<ListQuery>) -> ApiResult {
    // An internal user lists its own keys (LiteLLM: `user_id` becomes the caller's).
    let own = match &caller {
        Caller::Admin | Caller::Viewer => None,
        Caller::Key(me) if me.user_role.as_deref() == Some("internal_user") => {
            let Some(mine) = me.user_id.clone() else {
                return Err(forbidden("a key without a user lists no keys"));
            };
            if q.user_id.as_deref().is_some_and(|u| u != mine) {
                return Err(forbidden(format!(
                    "User can only list their own keys. Got user_id={}, Your ID={mine}",
                    q.user_id.as_deref().unwrap_or_default()
                )));
            }
            Some(mine)
        }
        Caller::Key(_) => {
            return Err(forbidden(
                "Only the master key or a proxy_admin may call the management API",
            ))
        }
    };
    let user_id = own.as_deref().or(q.user_id.as_deref());
    let page = q.page.unwrap_or(1);
    let size = q.size.unwrap_or(10);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(bad(
            "page",
            format!("page must be between 1 and {MAX_PAGE}"),
        ));
    }
    if !(1..=100).contains(&size) {
        return Err(bad("size", "size must be between 1 and 100"));
    }
    let (rows, total) = m
        .store()
        .list_keys(q.team_id.as_deref(), user_id, page, size)
        .await?;
    let keys: Vec<Value> = if q.return_full_object.unwrap_or(false) {
        rows.iter().map(key_json).collect()
    } else {
        rows.iter()
            .map(|r| Value::String(r.token.clone()))
            .collect()
    };
    Ok(Json(json!({
        "keys": keys,
        "total_count": total,
        "current_page": page,
        "total_pages": (total + size - 1) / size,
    })))
}

#[derive(Debug, Deserialize)]
struct OneKey {
    key: String,
}

async fn set_blocked(m: &Mgmt, b: OneKey, blocked: bool) -> ApiResult {
    let mut row = load_key(m, Some(&b.key)).await?;
    row.blocked = blocked;
    m.store().update_key(&row).await?;
    m.keys.invalidate(&row.token);
    Ok(Json(key_json(&row)))
}

async fn key_block(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<OneKey>) -> ApiResult {
    set_blocked(&m, b, true).await
}

async fn key_unblock(State(m): State<Arc<Mgmt>>, ApiJson(b): ApiJson<OneKey>) -> ApiResult {
    set_blocked(&m, b, false).await
}

#[derive(Debug, Default, Deserialize)]
struct RegenerateBody {
    key: Option<String>,
    new_key: Option<String>,
}

async fn regenerate(
    caller: &Caller,
    m: &Mgmt,
    key: Option<&str>,
    new_key: Option<String>,
) -> ApiResult {
    let row = match caller {
        Caller::Admin => load_key(m, key).await?,
        Caller::Viewer => return Err(viewer_refused("/key/regenerate")),
        // An internal user regenerates its own keys (LiteLLM lets `internal_user` call it);
        // a team's key, the team's admin. Any other key is a 403, existing or not.
        Caller::Key(me) => {
            let row = match key.filter(|k| !k.is_empty()) {
                Some(k) => m.store().key_fresh(&token_of(k)).await?,
                None => return Err(bad("key", "missing field `key`")),
            };
            let allowed = match &row {
                None => false,
                Some(r) => may_change(m, me, r).await?,
            };
            match row {
                Some(r) if allowed => r,
                _ => {
                    return Err(forbidden(
                        "You are not allowed to regenerate this key: an internal user regenerates only its own keys",
                    ))
                }
            }
        }
    };
    if let Some(k) = &new_key {
        if !k.starts_with("sk-") || k.len() < 8 {
            return Err(bad(
                "new_key",
                "new_key must start with `sk-` and be at least 8 characters",
            ));
        }
    }
    let (secret, new_row) = m
        .store()
        .regenerate_key(&row.token, new_key.map(Secret::new))
        .await?
        .ok_or_else(|| not_found("Key not found"))?;
    m.keys.invalidate(&row.token);
    m.keys.invalidate(&new_row.token);
    let mut v = key_json(&new_row);
    v["key"] = Value::String(secret.expose().to_owned());
    Ok(Json(v))
}

async fn key_regenerate(
    caller: Caller,
    State(m): State<Arc<Mgmt>>,
    ApiJson(b): ApiJson<RegenerateBody>,
) -> ApiResult {
    regenerate(&caller, &m, b.key.as_deref(), b.new_key).await
}

async fn key_regenerate_path(
    caller: Caller,
    State(m): State<Arc<Mgmt>>,
    KeyPath(key): KeyPath,
    ApiJson(b): ApiJson<RegenerateBody>,
) -> ApiResult {
    regenerate(&caller, &m, Some(&key), b.new_key).await
}

/// `/key/health`: the calling key is valid (any valid key; LiteLLM's answer for a key without
/// logging callbacks, which llmgate does not have per key).
async fn key_health(caller: Caller) -> ApiResult {
    let _ = caller;
    Ok(Json(json!({"key": "healthy", "logging_details": null})))
}
