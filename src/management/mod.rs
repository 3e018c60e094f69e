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
//! | `GET /key/list` | `page`, `size`, `team_id`, `user_id`, `return_full_object` (an internal user: its own keys) |
//! | `POST /key/block`, `/key/unblock` | `{"key": ...}` |
//! | `POST /key/regenerate`, `/key/{key}/regenerate` | new secret, same settings |
//! | `POST /team/new`, `/team/update`, `/team/delete`, `/team/block`, `/team/unblock` | teams |
//! | `POST /team/member_add`, `/team/member_update`, `/team/member_delete` | members (also by the team's admins) |
//! | `POST /team/model/add`, `/team/model/delete` | a team's models |
//! | `GET /team/info?team_id=` (also by the team's members), `/team/list` | teams |
//! | `POST /user/new`, `/user/update`, `/user/delete`, `GET /user/list` | users |
//! | `GET /user/info?user_id=` | a user (a key may read its user) |
//! | `POST /budget/new`, `/budget/update`, `/budget/info`, `/budget/delete`, `GET /budget/list` | budgets |
//! | `POST /organization/new`, `PATCH /organization/update`, `DELETE /organization/delete` | organizations (admins) |
//! | `GET /organization/info` (also by members), `/organization/list` (a user's own) | organizations |
//! | `POST /customer/new`, `/customer/update`, `/customer/delete`, `/customer/block`, `/customer/unblock`, `GET /customer/info?end_user_id=`, `/customer/list` (and `/end_user/*`) | end users |
//! | `POST /organization/member_add`, `PATCH /organization/member_update`, `DELETE /organization/member_delete` | members (also by the organization's `org_admin`s) |
//! | `GET /spend/logs`, `/global/spend` | spend |
//! | `GET /user/daily/activity`, `/team/daily/activity` | spend per day (LiteLLM's shape) |
//! | `/key/health`, `POST /utils/token_counter` | any valid key |
//!
//! A `proxy_admin_viewer`'s key may call every `GET` route and no other admin route; a team's
//! admin may `/key/generate` for that team (itself or another member) and delete or regenerate
//! its keys; an `internal_user` may `/key/generate`, `/key/list`, `/key/update`, `/key/delete`
//! and `/key/regenerate` its own keys (another user's or a team's key is a 403).
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

mod budgets;
mod customers;
mod error;
mod extract;
mod keys;
mod limits;
mod orgs;
pub(crate) mod password;
mod spend;
mod teams;
mod users;
mod utils;
mod views;

use std::sync::Arc;

use axum::{http::HeaderMap, Router};

pub(crate) use self::error::{bad, forbidden, json_errors, not_found};
use self::{error::unknown_route, extract::Caller};
pub use self::{error::ApiError, views::iso};
use crate::{
    auth::KeyCache,
    error::{ErrorKind, LlmError},
    secret::Secret,
    server::presented_key,
    store::{hash_key, Store, StoreError},
};

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
        .merge(keys::routes(&state))
        .merge(teams::routes(&state))
        .merge(users::routes(&state))
        .merge(spend::routes(&state))
        .merge(budgets::routes(&state))
        .merge(orgs::routes(&state))
        .merge(customers::routes(&state))
        .merge(utils::routes())
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
        let now = self.keys.clock().unix_ms();
        match self.keys.get(&hash_key(presented.expose())).await? {
            Some(i) if i.refusal(now).is_none() && i.is_admin => Ok(Caller::Admin),
            Some(i)
                if i.refusal(now).is_none()
                    && i.user_role.as_deref() == Some("proxy_admin_viewer") =>
            {
                Ok(Caller::Viewer)
            }
            Some(i) if i.refusal(now).is_none() => Ok(Caller::Key(i)),
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

    /// Drops the cached keys of a team after the team changed.
    fn forget_team(&self, team_id: &str) {
        self.keys
            .invalidate_where(|k| k.team_id.as_deref() == Some(team_id));
    }
}

/// The longest identifier, alias, model name, e-mail or duration a management field may hold, in
/// bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// The largest free-form JSON field (`metadata`, `members_with_roles`), serialized, in bytes.
pub const MAX_JSON_FIELD_BYTES: usize = 64 << 10;
/// The most items a list field (`models`, `keys`, `team_ids`, ...) may hold.
pub const MAX_LIST_ITEMS: usize = 1000;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

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

    /// The admin guard runs before the route's extractors: a caller without a key gets the 401
    /// even when its query or body is malformed, and neither is read.
    #[tokio::test]
    async fn the_admin_check_comes_before_the_input() {
        use tower::ServiceExt as _;

        let store = Store::connect("sqlite::memory:")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let keys = KeyCache::new(store, std::time::Duration::from_secs(10));
        let api = router(Some(Secret::new("sk-master")), keys, None);
        for (method, uri, body) in [
            ("GET", "/key/list?page=", ""),
            ("POST", "/key/generate", "{not json"),
            ("POST", "/key/%00/regenerate", ""),
        ] {
            let req = axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .body(axum::body::Body::from(body))
                .unwrap_or_else(|e| panic!("{e}"));
            let resp = api
                .clone()
                .oneshot(req)
                .await
                .unwrap_or_else(|e| match e {});
            assert_eq!(resp.status().as_u16(), 401, "{method} {uri}");
        }
    }
}
