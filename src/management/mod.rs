//! The management API: keys, teams, users and spend, with LiteLLM's paths, field names and status
//! codes, as an axum `Router` mounted with [`OpenAiServer::with_fallback`](crate::server::OpenAiServer::with_fallback).
//!
//! Every route needs the master key or the key of a `proxy_admin` user (401 without a valid key,
//! 403 for any other key), except two self-service reads, as in LiteLLM: any valid virtual key may
//! read its own `/key/info` (no `key` parameter: the calling key) and the other keys of its user,
//! and its user's `/user/info` (no `user_id`: the key's user); another key or user is a 403.
//! Malformed input is a 400 OpenAI error JSON whose `param` names the field, checked before the
//! database sees it so SQLite and PostgreSQL answer alike: a NUL character anywhere, text over
//! [`MAX_TEXT_BYTES`], a list over [`MAX_LIST_ITEMS`], `metadata` over [`MAX_JSON_FIELD_BYTES`], a
//! query parameter that does not parse, a `budget_duration` of no time. axum's own rejections (a
//! wrong method, a body over its 2 MB limit) are the error JSON too.
//! Unknown keys, teams or users are 404. See `docs/governance.md` for each route's fields.
//!
//! | route | does |
//! | --- | --- |
//! | `POST /key/generate` | new key (`key` in the answer is shown only here) |
//! | `POST /key/update` | change a key's fields |
//! | `GET /key/info?key=` | one key (a key may read itself) |
//! | `POST /key/delete` | `{"keys": [...]}` or `{"key_aliases": [...]}` |
//! | `GET /key/list` | `page`, `size`, `team_id`, `user_id`, `return_full_object` |
//! | `POST /key/block`, `/key/unblock` | `{"key": ...}` |
//! | `POST /key/regenerate`, `/key/{key}/regenerate` | new secret, same settings |
//! | `POST /team/new`, `/team/update`, `/team/delete`, `/team/member_add` | teams |
//! | `GET /team/info?team_id=`, `/team/list` | teams |
//! | `POST /user/new`, `GET /user/info?user_id=` | users (a key may read its user) |
//! | `GET /spend/logs`, `/global/spend` | spend |
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use llmgate::{auth::KeyCache, management, secret::Secret, store::Store};
//! let store = Store::connect("sqlite::memory:").await.unwrap();
//! let keys = KeyCache::new(store, Duration::from_secs(10));
//! let routes: axum::Router = management::router(Some(Secret::new("sk-master")), keys, None);
//! # let _ = routes;
//! # });
//! ```

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use bytes::Bytes;
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::{json, Map, Value};

use crate::{
    auth::{KeyCache, KeyInfo},
    error::{ErrorKind, LlmError},
    secret::Secret,
    server::{parse_json, presented_key},
    store::{
        hash_key, next_reset, now_ms, parse_duration, KeyRow, Limits, NewKey, SpendFilter,
        SpendRow, Store, StoreError, TeamRow, UserRow,
    },
};

/// An error answer: the OpenAI error JSON with its status.
#[derive(Debug)]
pub struct ApiError(pub LlmError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, headers, body) = self.0.to_http_parts();
        (status, headers, body).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "management API: store error");
        Self(
            LlmError::new(
                ErrorKind::ServiceUnavailable,
                "the database is unavailable; try again",
            )
            .with_code("503"),
        )
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn bad(param: &str, msg: impl Into<String>) -> ApiError {
    ApiError(
        LlmError::bad_request(msg)
            .with_param(param)
            .with_code("400"),
    )
}

fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(LlmError::new(ErrorKind::NotFound, msg).with_code("404"))
}

/// Who calls the management API.
enum Caller {
    /// The master key, or the key of a `proxy_admin` user.
    Admin,
    /// Any other valid virtual key: it may read its own `/key/info` and its user's `/user/info`.
    Key(Arc<KeyInfo>),
}

fn forbidden(msg: impl Into<String>) -> ApiError {
    ApiError(
        LlmError::new(ErrorKind::PermissionDenied, msg)
            .with_type("auth_error")
            .with_code("403"),
    )
}

struct Mgmt {
    master: Option<Secret>,
    keys: KeyCache,
    store: Store,
    max_budget: Option<f64>,
}

/// The management routes over `keys` (and its store), guarded by `master`. `max_budget` is the
/// proxy-wide budget `/global/spend` reports (`litellm_settings.max_budget`).
/// The routes need the SQL [`Store`]: over another [`KeyStore`](crate::store::KeyStore) every
/// route answers 503.
pub fn router(master: Option<Secret>, keys: KeyCache, max_budget: Option<f64>) -> Router {
    let Some(store) = keys.store_as::<Store>().cloned() else {
        return Router::new().fallback(|| async {
            ApiError::from(StoreError::msg("the management API needs the SQL store"))
        });
    };
    let state = Arc::new(Mgmt {
        master: master.filter(|m| !m.is_empty()),
        keys,
        store,
        max_budget,
    });
    Router::new()
        .route("/key/generate", post(key_generate))
        .route("/key/update", post(key_update))
        .route("/key/info", get(key_info))
        .route("/key/delete", post(key_delete))
        .route("/key/list", get(key_list))
        .route("/key/block", post(key_block))
        .route("/key/unblock", post(key_unblock))
        .route("/key/regenerate", post(key_regenerate))
        .route("/key/{key}/regenerate", post(key_regenerate_path))
        .route("/team/new", post(team_new))
        .route("/team/update", post(team_update))
        .route("/team/info", get(team_info))
        .route("/team/delete", post(team_delete))
        .route("/team/list", get(team_list))
        .route("/team/member_add", post(team_member_add))
        .route("/user/new", post(user_new))
        .route("/user/info", get(user_info))
        .route("/spend/logs", get(spend_logs))
        .route("/global/spend", get(global_spend))
        .fallback(unknown_route)
        .with_state(state)
        .layer(axum::middleware::map_response(json_errors))
}

/// A router that answers every path with the OpenAI 404 error JSON (no management API).
pub fn not_found_router() -> Router {
    Router::new()
        .fallback(unknown_route)
        .layer(axum::middleware::map_response(json_errors))
}

/// Turns an error response axum wrote itself (a wrong method: an empty 405; a body over axum's
/// limit: a plain-text 413; an undecodable path segment: a plain-text 400) into the OpenAI error
/// JSON with the same status. The handlers' own errors are JSON already and pass untouched.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // axum's rejections are one short line; anything longer is cut.
    let text = axum::body::to_bytes(body, 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let text = text.trim();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("Request refused")
            .to_owned()
    } else {
        text.to_owned()
    };
    let err = LlmError::new(ErrorKind::from_status(status), message)
        .with_status(status)
        .with_code(status.as_str());
    let mut out = ApiError(err).into_response();
    if let Some(allow) = parts.headers.get(axum::http::header::ALLOW) {
        out.headers_mut()
            .insert(axum::http::header::ALLOW, allow.clone());
    }
    out
}

async fn unknown_route(uri: axum::http::Uri) -> ApiError {
    ApiError(
        LlmError::new(ErrorKind::NotFound, format!("Unknown path: {}", uri.path()))
            .with_code("unknown_url"),
    )
}

impl Mgmt {
    fn store(&self) -> &Store {
        &self.store
    }

    /// Who calls: the master key or a `proxy_admin`'s key, or another valid virtual key. No key,
    /// or a key that is unknown, blocked or expired, is a 401; no master key configured, a 403.
    async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let Some(master) = &self.master else {
            return Err(forbidden(
                "The management API needs general_settings.master_key to be set",
            ));
        };
        let Some(presented) = presented_key(headers) else {
            return Err(ApiError(
                LlmError::new(
                    ErrorKind::Authentication,
                    "Authentication Error, no API key passed in. Pass it as `Authorization: Bearer <key>`",
                )
                .with_type("auth_error")
                .with_code("401"),
            ));
        };
        if master.matches(presented.expose()) {
            return Ok(Caller::Admin);
        }
        match self.keys.get(&hash_key(presented.expose())).await? {
            Some(i) if i.refusal().is_none() && i.is_admin => Ok(Caller::Admin),
            Some(i) if i.refusal().is_none() => Ok(Caller::Key(i)),
            _ => Err(ApiError(
                LlmError::new(
                    ErrorKind::Authentication,
                    "Authentication Error, invalid API key",
                )
                .with_type("auth_error")
                .with_code("401"),
            )),
        }
    }

    /// The master key or a `proxy_admin`'s key; any other valid key is a 403.
    async fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self.caller(headers).await? {
            Caller::Admin => Ok(()),
            Caller::Key(_) => Err(forbidden(
                "Only the master key or a proxy_admin may call the management API",
            )),
        }
    }

    fn forget_team(&self, team_id: &str) {
        self.keys
            .invalidate_where(|k| k.team_id.as_deref() == Some(team_id));
    }
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return parse_json::<T>(b"{}").map_err(ApiError);
    }
    // Checked before the typed parse, so a NUL byte or an over-long value is a 400 naming its
    // field on every database (PostgreSQL refuses NUL in text and large index entries; SQLite
    // stores them), never a store error.
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        check_input(&v)?;
    }
    parse_json(bytes).map_err(ApiError)
}

/// The longest identifier, alias, model name, e-mail or duration a management field may hold, in
/// bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// The largest free-form JSON field (`metadata`, `members_with_roles`), serialized, in bytes.
pub const MAX_JSON_FIELD_BYTES: usize = 64 << 10;
/// The most items a list field (`models`, `keys`, `team_ids`, ...) may hold.
pub const MAX_LIST_ITEMS: usize = 1000;

/// Free-form JSON fields: stored as sent, limited in total size rather than per string.
const JSON_FIELDS: &[&str] = &["metadata", "members_with_roles"];

/// Refuses, naming the field, what no database should be sent: a NUL character (in a value or an
/// object key), text longer than [`MAX_TEXT_BYTES`], a list longer than [`MAX_LIST_ITEMS`], a
/// free-form field larger than [`MAX_JSON_FIELD_BYTES`].
fn check_input(body: &Value) -> Result<(), ApiError> {
    let Some(map) = body.as_object() else {
        // Not an object: the typed parse says so.
        return Ok(());
    };
    for (field, v) in map {
        if JSON_FIELDS.contains(&field.as_str()) {
            let size = v.to_string().len();
            if size > MAX_JSON_FIELD_BYTES {
                return Err(bad(
                    field,
                    format!(
                        "`{field}` is {size} bytes of JSON; the limit is {MAX_JSON_FIELD_BYTES}"
                    ),
                ));
            }
            check_value(field, v, None)?;
        } else {
            check_value(field, v, Some(MAX_TEXT_BYTES))?;
        }
    }
    Ok(())
}

/// One text value of field `param`: no NUL, at most `max` bytes.
fn check_text(param: &str, s: &str, max: Option<usize>) -> Result<(), ApiError> {
    if s.contains('\0') {
        return Err(bad(
            param,
            format!("`{param}` contains a NUL character (\\u0000), which cannot be stored"),
        ));
    }
    if let Some(max) = max.filter(|m| s.len() > *m) {
        return Err(bad(
            param,
            format!("`{param}` is {} bytes long; the limit is {max}", s.len()),
        ));
    }
    Ok(())
}

fn check_value(param: &str, v: &Value, max: Option<usize>) -> Result<(), ApiError> {
    match v {
        Value::String(s) => check_text(param, s, max),
        Value::Array(items) => {
            if max.is_some() && items.len() > MAX_LIST_ITEMS {
                return Err(bad(
                    param,
                    format!(
                        "`{param}` has {} items; the limit is {MAX_LIST_ITEMS}",
                        items.len()
                    ),
                ));
            }
            items.iter().try_for_each(|x| check_value(param, x, max))
        }
        Value::Object(o) => o.iter().try_for_each(|(k, x)| {
            check_text(param, k, max)?;
            check_value(param, x, max)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// The query string of a management `GET`, typed: a value that does not parse, holds a NUL or is
/// longer than [`MAX_TEXT_BYTES`] is a 400 OpenAI error JSON naming the parameter (axum's own
/// `Query` answers in plain text).
struct Q<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| bad("query", format!("Invalid query string: {e}")))?;
        for (k, v) in &pairs {
            check_text(k, k, Some(MAX_TEXT_BYTES))?;
            check_text(k, v, Some(MAX_TEXT_BYTES))?;
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Q).map_err(|e| {
            let param = e.path().to_string();
            if param == "." {
                // An error about the whole query (`duplicate field `page``): name the field
                // the message names, if any.
                let inner = e.inner().to_string();
                let named = inner.split('`').nth(1).filter(|f| {
                    !f.is_empty() && f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                });
                let msg = format!("Invalid query string: {inner}");
                return match named {
                    Some(f) => bad(f, msg),
                    None => ApiError(LlmError::bad_request(msg).with_code("400")),
                };
            }
            let msg = format!("Invalid query parameter `{param}`: {}", e.inner());
            bad(&param, msg)
        })
    }
}

/// Unix ms → RFC 3339 (UTC).
#[must_use]
pub fn iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// `YYYY-MM-DD` (or a full RFC 3339 date-time, of which the date is used) → Unix ms at 00:00 UTC.
fn parse_date(s: &str) -> Option<i64> {
    let date = s.get(..10)?;
    let mut it = date.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400_000)
}

fn opt_iso(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |m| Value::String(iso(m)))
}

fn key_json(k: &KeyRow) -> Value {
    json!({
        "token": k.token,
        "key_name": k.key_name,
        "key_alias": k.key_alias,
        "models": k.models,
        "spend": k.spend,
        "max_budget": k.limits.max_budget,
        "budget_duration": k.limits.budget_duration,
        "budget_reset_at": opt_iso(k.budget_reset_at),
        "tpm_limit": k.limits.tpm_limit,
        "rpm_limit": k.limits.rpm_limit,
        "max_parallel_requests": k.limits.max_parallel_requests,
        "metadata": k.metadata,
        "team_id": k.team_id,
        "user_id": k.user_id,
        "expires": opt_iso(k.expires),
        "blocked": k.blocked,
        "created_at": iso(k.created_at),
        "updated_at": iso(k.updated_at),
    })
}

fn team_json(t: &TeamRow) -> Value {
    json!({
        "team_id": t.team_id,
        "team_alias": t.team_alias,
        "models": t.models,
        "spend": t.spend,
        "max_budget": t.limits.max_budget,
        "budget_duration": t.limits.budget_duration,
        "budget_reset_at": opt_iso(t.budget_reset_at),
        "tpm_limit": t.limits.tpm_limit,
        "rpm_limit": t.limits.rpm_limit,
        "max_parallel_requests": t.limits.max_parallel_requests,
        "metadata": t.metadata,
        "members_with_roles": t.members_with_roles,
        "blocked": t.blocked,
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
    })
}

fn user_json(u: &UserRow) -> Value {
    json!({
        "user_id": u.user_id,
        "user_email": u.user_email,
        "user_role": u.user_role,
        "models": u.models,
        "spend": u.spend,
        "max_budget": u.limits.max_budget,
        "budget_duration": u.limits.budget_duration,
        "budget_reset_at": opt_iso(u.budget_reset_at),
        "tpm_limit": u.limits.tpm_limit,
        "rpm_limit": u.limits.rpm_limit,
        "max_parallel_requests": u.limits.max_parallel_requests,
        "metadata": u.metadata,
        "teams": u.teams,
        "created_at": iso(u.created_at),
        "updated_at": iso(u.updated_at),
    })
}

fn spend_json(r: &SpendRow) -> Value {
    json!({
        "request_id": r.request_id,
        "call_type": "acompletion",
        "api_key": r.api_key,
        "key_alias": r.key_alias,
        "spend": r.spend,
        "total_tokens": r.total_tokens,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "startTime": iso(r.start_time),
        "endTime": iso(r.end_time),
        "request_duration_ms": r.latency_ms,
        "model": r.model,
        "model_group": r.model_group,
        "model_id": r.model_id,
        "custom_llm_provider": r.custom_llm_provider,
        "user": r.user_id,
        "team_id": r.team_id,
        "cache_hit": if r.cache_hit { "True" } else { "False" },
        "status": r.status,
        "request_tags": r.request_tags,
    })
}

/// Limits fields shared by keys, teams and users.
#[derive(Debug, Default)]
struct LimitFields {
    max_budget: Option<f64>,
    budget_duration: Option<String>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
    max_parallel_requests: Option<i64>,
}

impl LimitFields {
    fn validate(&self) -> Result<(), ApiError> {
        if let Some(b) = self.max_budget {
            if !b.is_finite() || b < 0.0 {
                return Err(bad("max_budget", "max_budget must be a number ≥ 0"));
            }
        }
        if let Some(d) = &self.budget_duration {
            match parse_duration(d) {
                None => return Err(bad(
                    "budget_duration",
                    format!("budget_duration `{d}` is not a duration; use e.g. 30s, 5m, 1h, 1d, 1w, 1mo"),
                )),
                // A period of no time would reset the budget on every request: no budget at all.
                Some(p) if p.is_zero() => return Err(bad(
                    "budget_duration",
                    format!("budget_duration `{d}` is no time: the budget would reset on every request; use e.g. 30d"),
                )),
                Some(_) => {}
            }
        }
        for (name, v) in [
            ("tpm_limit", self.tpm_limit),
            ("rpm_limit", self.rpm_limit),
            ("max_parallel_requests", self.max_parallel_requests),
        ] {
            if v.is_some_and(|n| n < 0) {
                return Err(bad(name, format!("{name} must be ≥ 0")));
            }
        }
        Ok(())
    }

    /// Applies the fields that were sent over `l`; returns whether the budget period changed.
    fn apply(&self, l: &mut Limits) -> bool {
        let mut period_changed = false;
        if self.max_budget.is_some() {
            l.max_budget = self.max_budget;
        }
        if self.budget_duration.is_some() {
            period_changed = l.budget_duration != self.budget_duration;
            l.budget_duration.clone_from(&self.budget_duration);
        }
        if self.tpm_limit.is_some() {
            l.tpm_limit = self.tpm_limit;
        }
        if self.rpm_limit.is_some() {
            l.rpm_limit = self.rpm_limit;
        }
        if self.max_parallel_requests.is_some() {
            l.max_parallel_requests = self.max_parallel_requests;
        }
        period_changed
    }
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

fn token_of(key: &str) -> String {
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

async fn key_generate(State(m): State<Arc<Mgmt>>, headers: HeaderMap, raw: Bytes) -> ApiResult {
    m.admin(&headers).await?;
    let b: KeyBody = body(&raw)?;
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
    let (secret, row) = m
        .store()
        .create_key(NewKey {
            key: b.key.clone().map(Secret::new),
            key_alias: b.key_alias.clone(),
            models: b.models.clone().unwrap_or_default(),
            limits,
            metadata: b.metadata.clone().unwrap_or_default(),
            team_id: b.team_id.clone(),
            user_id: b.user_id.clone(),
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
    m.keys.invalidate(&row.token);
    let mut v = key_json(&row);
    v["key"] = Value::String(secret.expose().to_owned());
    Ok(Json(v))
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

async fn key_update(State(m): State<Arc<Mgmt>>, headers: HeaderMap, raw: Bytes) -> ApiResult {
    m.admin(&headers).await?;
    let b: KeyBody = body(&raw)?;
    b.limits().validate()?;
    let mut row = load_key(&m, b.key.as_deref()).await?;
    check_team(&m, b.team_id.as_deref()).await?;
    if b.limits().apply(&mut row.limits) {
        row.budget_reset_at = next_reset(row.limits.budget_duration.as_deref(), now_ms());
    }
    if let Some(a) = &b.key_alias {
        row.key_alias = Some(a.clone());
    }
    if let Some(v) = &b.models {
        row.models.clone_from(v);
    }
    if let Some(v) = &b.metadata {
        row.metadata.clone_from(v);
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
        row.expires =
            Some(now_ms().saturating_add(i64::try_from(dur.as_millis()).unwrap_or(i64::MAX)));
    }
    m.store().update_key(&row).await?;
    m.keys.invalidate(&row.token);
    Ok(Json(key_json(&row)))
}

#[derive(Debug, Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

async fn key_info(State(m): State<Arc<Mgmt>>, headers: HeaderMap, Q(q): Q<KeyQuery>) -> ApiResult {
    let asked = q.key.as_deref().filter(|k| !k.is_empty());
    let row = match m.caller(&headers).await? {
        Caller::Admin => load_key(&m, asked).await?,
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

async fn key_delete(State(m): State<Arc<Mgmt>>, headers: HeaderMap, raw: Bytes) -> ApiResult {
    m.admin(&headers).await?;
    let b: DeleteBody = body(&raw)?;
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

async fn key_list(State(m): State<Arc<Mgmt>>, headers: HeaderMap, Q(q): Q<ListQuery>) -> ApiResult {
    m.admin(&headers).await?;
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
        .list_keys(q.team_id.as_deref(), q.user_id.as_deref(), page, size)
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

async fn set_blocked(m: &Mgmt, raw: &Bytes, blocked: bool) -> ApiResult {
    let b: OneKey = body(raw)?;
    let mut row = load_key(m, Some(&b.key)).await?;
    row.blocked = blocked;
    m.store().update_key(&row).await?;
    m.keys.invalidate(&row.token);
    Ok(Json(key_json(&row)))
}

async fn key_block(State(m): State<Arc<Mgmt>>, headers: HeaderMap, raw: Bytes) -> ApiResult {
    m.admin(&headers).await?;
    set_blocked(&m, &raw, true).await
}

async fn key_unblock(State(m): State<Arc<Mgmt>>, headers: HeaderMap, raw: Bytes) -> ApiResult {
    m.admin(&headers).await?;
    set_blocked(&m, &raw, false).await
}

#[derive(Debug, Default, Deserialize)]
struct RegenerateBody {
    key: Option<String>,
    new_key: Option<String>,
}

async fn regenerate(m: &Mgmt, key: Option<&str>, new_key: Option<String>) -> ApiResult {
    let row = load_key(m, key).await?;
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

async fn key_regenerate(State(m): State<Arc<Mgmt>>, headers: HeaderMap, raw: Bytes) -> ApiResult {
    m.admin(&headers).await?;
    let b: RegenerateBody = body(&raw)?;
    regenerate(&m, b.key.as_deref(), b.new_key).await
}

async fn key_regenerate_path(
    State(m): State<Arc<Mgmt>>,
    headers: HeaderMap,
    Path(key): Path<String>,
    raw: Bytes,
) -> ApiResult {
    m.admin(&headers).await?;
    check_text("key", &key, Some(MAX_TEXT_BYTES))?;
    let b: RegenerateBody = body(&raw)?;
    regenerate(&m, Some(&key), b.new_key).await
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

async fn team_new(State(m): State<Arc<Mgmt>>, headers: HeaderMap, raw: Bytes) -> ApiResult {
    m.admin(&headers).await?;
    let b: TeamBody = body(&raw)?;
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

async fn team_update(State(m): State<Arc<Mgmt>>, headers: HeaderMap, raw: Bytes) -> ApiResult {
    m.admin(&headers).await?;
    let b: TeamBody = body(&raw)?;
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

async fn team_info(
    State(m): State<Arc<Mgmt>>,
    headers: HeaderMap,
    Q(q): Q<TeamQuery>,
) -> ApiResult {
    m.admin(&headers).await?;
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

async fn team_delete(State(m): State<Arc<Mgmt>>, headers: HeaderMap, raw: Bytes) -> ApiResult {
    m.admin(&headers).await?;
    let b: TeamDelete = body(&raw)?;
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

async fn team_list(State(m): State<Arc<Mgmt>>, headers: HeaderMap) -> ApiResult {
    m.admin(&headers).await?;
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

async fn team_member_add(State(m): State<Arc<Mgmt>>, headers: HeaderMap, raw: Bytes) -> ApiResult {
    m.admin(&headers).await?;
    let b: MemberAdd = body(&raw)?;
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
}

impl UserBody {
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

async fn user_new(State(m): State<Arc<Mgmt>>, headers: HeaderMap, raw: Bytes) -> ApiResult {
    m.admin(&headers).await?;
    let b: UserBody = body(&raw)?;
    b.limits().validate()?;
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
    let now = now_ms();
    let mut limits = Limits::default();
    b.limits().apply(&mut limits);
    let u = UserRow {
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
    m.store().create_user(&u).await?;
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

async fn user_info(
    State(m): State<Arc<Mgmt>>,
    headers: HeaderMap,
    Q(q): Q<UserQuery>,
) -> ApiResult {
    let asked = q.user_id.filter(|u| !u.is_empty());
    let id = match m.caller(&headers).await? {
        Caller::Admin => asked.ok_or_else(|| bad("user_id", "missing field `user_id`"))?,
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

async fn spend_logs(
    State(m): State<Arc<Mgmt>>,
    headers: HeaderMap,
    Q(q): Q<SpendQuery>,
) -> ApiResult {
    m.admin(&headers).await?;
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

async fn global_spend(State(m): State<Arc<Mgmt>>, headers: HeaderMap) -> ApiResult {
    m.admin(&headers).await?;
    let spend = m.store().global_spend().await?;
    Ok(Json(
        json!({"spend": spend, "max_budget": m.max_budget.unwrap_or(0.0)}),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn iso_and_dates_round_trip() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_date("2023-11-14"), Some(1_699_920_000_000));
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2023-13-01"), None);
        assert_eq!(parse_date("x"), None);
    }

    fn refused(body: &Value) -> Option<String> {
        check_input(body)
            .err()
            .map(|e| e.0.param().unwrap_or_default().to_owned())
    }

    #[test]
    fn input_is_checked_before_the_database() {
        let long = "x".repeat(MAX_TEXT_BYTES + 1);
        let fits = "x".repeat(MAX_TEXT_BYTES);
        assert_eq!(
            refused(&json!({"key_alias": "a\u{0}b"})).as_deref(),
            Some("key_alias")
        );
        assert_eq!(
            refused(&json!({"key_alias": long})).as_deref(),
            Some("key_alias")
        );
        assert_eq!(refused(&json!({"key_alias": fits})), None);
        assert_eq!(
            refused(&json!({"models": ["ok", "\u{0}"]})).as_deref(),
            Some("models")
        );
        let many: Vec<u32> = (0..=u32::try_from(MAX_LIST_ITEMS).unwrap()).collect();
        assert_eq!(refused(&json!({"keys": many})).as_deref(), Some("keys"));
        // Object keys too, at any depth.
        assert_eq!(
            refused(&json!({"member": {"a\u{0}": 1}})).as_deref(),
            Some("member")
        );
        assert_eq!(
            refused(&json!({"metadata": {"k": {"\u{0}": 1}}})).as_deref(),
            Some("metadata")
        );
        // Free-form JSON: long strings are fine, the whole is capped.
        assert_eq!(refused(&json!({"metadata": {"k": long}})), None);
        let big = "z".repeat(MAX_JSON_FIELD_BYTES);
        assert_eq!(
            refused(&json!({"metadata": {"k": big}})).as_deref(),
            Some("metadata")
        );
        assert_eq!(
            refused(&json!({"members_with_roles": [{"user_id": big}]})).as_deref(),
            Some("members_with_roles")
        );
        // Numbers, booleans and a body that is not an object pass (the typed parse answers).
        assert_eq!(
            refused(&json!({"tpm_limit": 5, "blocked": true, "spend": null})),
            None
        );
        assert_eq!(refused(&json!(["x"])), None);
    }

    #[test]
    fn a_budget_period_of_no_time_is_refused() {
        for d in ["0s", "0d", "0mo", " 0h "] {
            let l = LimitFields {
                budget_duration: Some(d.to_owned()),
                ..LimitFields::default()
            };
            let e = l.validate().unwrap_err().0;
            assert_eq!(e.param(), Some("budget_duration"), "{d}");
            assert!(e.message().contains("no time"), "{d}");
        }
        let l = LimitFields {
            budget_duration: Some("1s".to_owned()),
            ..LimitFields::default()
        };
        assert!(l.validate().is_ok());
    }

    /// Found by tests/fuzz_management.rs: a malformed query string was answered in plain text,
    /// and a page far past the end overflowed the store's offset.
    #[tokio::test]
    async fn malformed_queries_are_openai_errors_naming_the_field() {
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;

        let store = Store::connect("sqlite::memory:")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let keys = KeyCache::new(store, std::time::Duration::from_secs(10));
        let api = router(Some(Secret::new("sk-master")), keys, None);
        for (uri, status, param) in [
            ("/key/list?page=", 400, Some("page")),
            ("/key/list?size=x", 400, Some("size")),
            (
                "/key/list?return_full_object=maybe",
                400,
                Some("return_full_object"),
            ),
            ("/key/list?page=1&page=2", 400, Some("page")),
            // Capped at 10^9 here (the store saturates as well).
            ("/key/list?page=9223372036854775807", 400, Some("page")),
            ("/key/list?page=999999999", 200, None),
        ] {
            let req = axum::http::Request::builder()
                .uri(uri)
                .header("authorization", "Bearer sk-master")
                .body(axum::body::Body::empty())
                .unwrap_or_else(|e| panic!("{e}"));
            let resp = api
                .clone()
                .oneshot(req)
                .await
                .unwrap_or_else(|e| match e {});
            assert_eq!(resp.status().as_u16(), status, "{uri}");
            let bytes = resp.into_body().collect().await.map(|c| c.to_bytes());
            let body: Value = bytes
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            if status == 400 {
                assert!(body["error"]["message"].is_string(), "{uri}: {body}");
                assert_eq!(body["error"]["param"].as_str(), param, "{uri}: {body}");
            } else {
                assert_eq!(body["keys"], json!([]), "{uri}: {body}");
            }
        }
    }
}
