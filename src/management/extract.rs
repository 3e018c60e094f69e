//! Extractors and the admin guard: who calls ([`Caller`]), the admin-only routes' middleware, a
//! JSON body ([`ApiJson`]) and a query string ([`Q`]) checked and typed, each rejection the OpenAI
//! error JSON naming the field, and the input limits checked before any database sees a value.

use std::sync::Arc;

use axum::{
    extract::{FromRequest, FromRequestParts, Path, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{
    error::{bad, forbidden, ApiError},
    Mgmt, MAX_JSON_FIELD_BYTES, MAX_LIST_ITEMS, MAX_TEXT_BYTES,
};
use crate::{auth::KeyInfo, error::LlmError, server::parse_json};

/// Who calls the management API.
pub(super) enum Caller {
    /// The master key, or the key of a `proxy_admin` user.
    Admin,
    /// The key of a `proxy_admin_viewer` user: LiteLLM's read-only admin, every `GET` route.
    Viewer,
    /// Any other valid virtual key: it may read its own `/key/info` and its user's `/user/info`,
    /// and, as a team's admin (`members_with_roles` role `admin`), read the team and manage its
    /// members.
    Key(Arc<KeyInfo>),
}

impl FromRequestParts<Arc<Mgmt>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        m: &Arc<Mgmt>,
    ) -> Result<Self, Self::Rejection> {
        m.caller(&parts.headers).await
    }
}

/// The guard of every admin-only route (`route_layer`): the master key or a `proxy_admin`'s key
/// passes; no key or an invalid one is a 401, any other valid key a 403. It runs before the
/// route's extractors, so a caller without the right key never has its body or query read.
pub(super) async fn require_admin(
    State(m): State<Arc<Mgmt>>,
    req: Request,
    next: Next,
) -> Response {
    let read = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    match m.caller(req.headers()).await {
        Ok(Caller::Admin) => next.run(req).await,
        Ok(Caller::Viewer) if read => next.run(req).await,
        Ok(Caller::Viewer) => forbidden(
            "proxy_admin_viewer may only read: this route changes data and needs a proxy_admin",
        )
        .into_response(),
        Ok(Caller::Key(_)) => {
            forbidden("Only the master key or a proxy_admin may call the management API")
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// A management JSON body, typed: an empty body reads as `{}`; text with a NUL, over
/// [`MAX_TEXT_BYTES`](super::MAX_TEXT_BYTES) and the other input limits, or JSON that does not
/// parse, is a 400 naming the field. A body axum refuses to read (over its 2 MB limit) is its own
/// rejection, which the router's error mapping turns into the error JSON.
pub(super) struct ApiJson<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let raw = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        body(&raw).map(ApiJson).map_err(IntoResponse::into_response)
    }
}

/// The `{key}` segment of `/key/{key}/regenerate`, checked as a text field named `key`.
pub(super) struct KeyPath(pub(super) String);

impl<S: Send + Sync> FromRequestParts<S> for KeyPath {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let Path(key) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        check_text("key", &key, Some(MAX_TEXT_BYTES)).map_err(IntoResponse::into_response)?;
        Ok(Self(key))
    }
}

pub(super) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
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

/// Free-form JSON fields: stored as sent, limited in total size rather than per string.
const JSON_FIELDS: &[&str] = &["metadata", "members_with_roles"];

/// Refuses, naming the field, what no database should be sent: a NUL character (in a value or an
/// object key), text longer than [`MAX_TEXT_BYTES`], a list longer than [`MAX_LIST_ITEMS`], a
/// free-form field larger than [`MAX_JSON_FIELD_BYTES`].
pub(super) fn check_input(body: &Value) -> Result<(), ApiError> {
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
pub(super) fn check_text(param: &str, s: &str, max: Option<usize>) -> Result<(), ApiError> {
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
pub(super) struct Q<T>(pub(super) T);

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::management::{MAX_JSON_FIELD_BYTES, MAX_LIST_ITEMS, MAX_TEXT_BYTES};

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
}
