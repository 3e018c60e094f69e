//! `/login`, `/v2/login` and `/logout` (LiteLLM's UI sign-in, `proxy/auth/login_utils.py`).

use std::{sync::Arc, time::Duration};

use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq as _;

use super::Ui;
use crate::management::password::{verify_password, PASSWORD_HASH_KEY};
use crate::{
    error::{ErrorKind, LlmError},
    management::ApiError,
    server::presented_key,
    store::{hash_key, NewKey, Schema, Store, UserRow},
};

/// The user a master-key sign-in acts as (LiteLLM's `LITELLM_PROXY_ADMIN_NAME`).
pub(super) const PROXY_ADMIN_ID: &str = "default_user_id";
/// The key metadata entry that marks a key minted by a sign-in (the UI hides these keys, and
/// `/logout` deletes only these).
pub(super) const SESSION_MARK: &str = "llmgate_ui_session";
/// How long a sign-in's key is valid (LiteLLM: `24hr`).
const SESSION: Duration = Duration::from_secs(24 * 3600);
/// Longest user name or password read, in bytes (a longer one is refused before any hashing).
const MAX_CREDENTIAL_BYTES: usize = 1024;

#[derive(Debug, Default, Deserialize)]
pub(super) struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// Who signed in.
struct SignedIn {
    user_id: String,
    user_role: String,
    user_email: Option<String>,
    key: String,
    expires: Option<i64>,
}

fn auth_error(param: &str, status: ErrorKind, msg: impl Into<String>) -> ApiError {
    let code = match status {
        ErrorKind::InternalServer => "500",
        _ => "401",
    };
    ApiError(
        LlmError::new(status, msg)
            .with_type("auth_error")
            .with_param(param)
            .with_code(code),
    )
}

fn invalid(msg: impl Into<String>) -> ApiError {
    auth_error("invalid_credentials", ErrorKind::Authentication, msg)
}

/// Equal in constant time (for equal lengths).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn authenticate(ui: &Ui, c: Credentials) -> Result<SignedIn, ApiError> {
    let Some(master) = &ui.master else {
        return Err(auth_error(
            "master_key",
            ErrorKind::InternalServer,
            "Master Key not set for Proxy. Please set Master Key to use Admin UI. Set general_settings:master_key in config.yaml.",
        ));
    };
    let Some(store) = ui
        .keys
        .as_ref()
        .and_then(|k| k.store_as::<Store>())
        .cloned()
    else {
        return Err(auth_error(
            "DATABASE_URL",
            ErrorKind::InternalServer,
            "No Database connected. Set database_url (or DATABASE_URL) to use the Admin UI.",
        ));
    };
    if c.username.len() > MAX_CREDENTIAL_BYTES || c.password.len() > MAX_CREDENTIAL_BYTES {
        return Err(invalid("Invalid credentials used to access UI."));
    }
    let ui_username = env("UI_USERNAME").unwrap_or_else(|| "admin".to_owned());
    let ui_password = env("UI_PASSWORD").unwrap_or_else(|| master.expose().to_owned());
    // LiteLLM's `UI_USERNAME`/`UI_PASSWORD` (default: `admin` and the master key); `admin` with
    // the master key always works (the UI's "master key" sign-in).
    let admin = (same(&c.username, &ui_username) && same(&c.password, &ui_password))
        || (c.username == "admin" && master.matches(&c.password));
    let (user, role) = if admin {
        // The proxy admin: its user row is made (or set) `proxy_admin`, as LiteLLM does.
        let now = store.clock().unix_ms();
        match store.user(PROXY_ADMIN_ID).await? {
            Some(mut u) => {
                if u.user_role.as_deref() != Some("proxy_admin") {
                    u.user_role = Some("proxy_admin".to_owned());
                    u.updated_at = now;
                    store.update_user(&u).await?;
                }
                (u, "proxy_admin".to_owned())
            }
            None => {
                let u = UserRow {
                    user_id: PROXY_ADMIN_ID.to_owned(),
                    user_role: Some("proxy_admin".to_owned()),
                    created_at: now,
                    updated_at: now,
                    ..UserRow::default()
                };
                store.create_user(&u).await?;
                (u, "proxy_admin".to_owned())
            }
        }
    } else {
        let found = find_user(&store, &c.username).await?;
        let phc = match &found {
            Some(u) => stored_password(&store, u).await?,
            None => None,
        };
        if phc.is_none() {
            // As long as a real check: the answer's timing does not tell which users exist.
            if store.schema() == Schema::LiteLlm {
                check_password(c.password.clone(), Stored::LiteLlm(String::new())).await;
            } else {
                verify_password(c.password.clone(), dummy_hash().await).await;
            }
        }
        let user = found.ok_or_else(|| {
            invalid("Invalid credentials used to access UI.\nCheck 'UI_USERNAME', 'UI_PASSWORD' in .env file")
        })?;
        let Some(phc) = phc else {
            return Err(auth_error(
                "password",
                ErrorKind::Authentication,
                "User has no password set. Please set a password for the user via `/user/update`.",
            ));
        };
        if !check_password(c.password, phc).await {
            return Err(invalid(format!(
                "Invalid credentials used to access UI.\nNot valid credentials for {}",
                c.username
            )));
        }
        // LiteLLM: a user without a role is a viewer.
        let role = user
            .user_role
            .clone()
            .unwrap_or_else(|| "internal_user_viewer".to_owned());
        (user, role)
    };
    let mut metadata = Map::new();
    metadata.insert(SESSION_MARK.to_owned(), Value::Bool(true));
    let (secret, row) = store
        .create_key(NewKey {
            user_id: Some(user.user_id.clone()),
            duration: Some(SESSION),
            metadata,
            ..NewKey::default()
        })
        .await?;
    Ok(SignedIn {
        user_id: user.user_id,
        user_role: role,
        user_email: user.user_email,
        key: secret.expose().to_owned(),
        expires: row.expires,
    })
}

/// A user's stored password.
enum Stored {
    /// An Argon2id PHC string (llmgate's `metadata` entry).
    Phc(String),
    /// LiteLLM's `password` column: the SHA-256 hex of the password (LiteLLM's `hash_token`,
    /// written by its invitation sign-up and by llmgate), or the password itself (as LiteLLM's
    /// `/user/update` stores it). LiteLLM's sign-in accepts both; so does llmgate's.
    LiteLlm(String),
}

/// The user's password as stored: on LiteLLM's tables its `password` column (an Argon2id string
/// there is read as one), else llmgate's `metadata` entry.
async fn stored_password(store: &Store, u: &UserRow) -> Result<Option<Stored>, ApiError> {
    if let Some(p) = store.user_password(&u.user_id).await? {
        return Ok(Some(if p.starts_with("$argon2") {
            Stored::Phc(p)
        } else {
            Stored::LiteLlm(p)
        }));
    }
    Ok(u.metadata
        .get(PASSWORD_HASH_KEY)
        .and_then(Value::as_str)
        .map(|h| Stored::Phc(h.to_owned())))
}

/// Whether `password` is the stored one (LiteLLM's forms compared in constant time, both of
/// them always).
async fn check_password(password: String, stored: Stored) -> bool {
    match stored {
        Stored::Phc(h) => verify_password(password, h).await,
        Stored::LiteLlm(s) => {
            let hashed = hash_key(&password);
            // A stored SHA-256 is compared with the password's hash only: presenting the hash
            // itself (read from the database) does not sign in, as LiteLLM's plain comparison
            // would let it.
            let is_sha = s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
            same(&hashed, &s) | (!is_sha & same(&password, &s))
        }
    }
}

/// A hash to check a password against when there is no user (or no password): made once.
async fn dummy_hash() -> String {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_init(|| async {
            crate::management::password::hash_password("llmgate-no-such-user".to_owned())
                .await
                .unwrap_or_default()
        })
        .await
        .clone()
}

/// The user whose e-mail (LiteLLM's sign-in name) or else id is `name`.
async fn find_user(store: &Store, name: &str) -> Result<Option<UserRow>, ApiError> {
    if name.is_empty() {
        return Ok(None);
    }
    let mut page = 1;
    loop {
        let (users, total) = store.list_users(None, page, 500).await?;
        if let Some(u) = users.iter().find(|u| u.user_email.as_deref() == Some(name)) {
            return Ok(Some(u.clone()));
        }
        if users.is_empty() || page * 500 >= total {
            break;
        }
        page += 1;
    }
    Ok(store.user(name).await?)
}

/// The cookie that hands a form sign-in's key to the UI page (which moves it into
/// `sessionStorage` and clears it at once): LiteLLM's `token` cookie, limited to `/ui`, one
/// minute, same-site only.
fn handoff_cookie(key: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "token={key}; Path=/ui; Max-Age=60; SameSite=Strict"
    ))
    .ok()
}

const CLEAR_COOKIE: &str = "token=; Path=/ui; Max-Age=0; SameSite=Strict";

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// `POST /login`: LiteLLM's form (`username`, `password`, URL-encoded); a 303 to
/// `/ui/?login=success` with the `token` cookie, or the error JSON (401; 500 without a master key
/// or database).
pub(super) async fn form_login(State(ui): State<Arc<Ui>>, body: Bytes) -> Response {
    let c: Credentials = match serde_urlencoded::from_bytes(&body) {
        Ok(c) => c,
        Err(e) => {
            return crate::management::bad("username", format!("the form does not parse: {e}"))
                .into_response()
        }
    };
    match authenticate(&ui, c).await {
        Ok(s) => {
            let resp = (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, "/ui/?login=success")],
            )
                .into_response();
            signed_in(resp, &s.key)
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /v2/login`: `{"username", "password"}`; LiteLLM's `{"redirect_url"}` plus the session's
/// `key`, `user_id`, `user_role`, `user_email` and `expires` (the UI reads the key from here).
pub(super) async fn json_login(State(ui): State<Arc<Ui>>, body: Bytes) -> Response {
    let c: Credentials = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return crate::management::bad("username", format!("the body is not JSON: {e}"))
                .into_response()
        }
    };
    match authenticate(&ui, c).await {
        Ok(s) => {
            let resp = Json(json!({
                "redirect_url": "/ui/?login=success",
                "key": s.key,
                "user_id": s.user_id,
                "user_role": s.user_role,
                "user_email": s.user_email,
                "expires": s.expires.map(crate::management::iso),
            }))
            .into_response();
            signed_in(resp, &s.key)
        }
        Err(e) => e.into_response(),
    }
}

/// A sign-in's answer (either form): the session key's hand-off cookie, never stored by caches.
fn signed_in(mut resp: Response, key: &str) -> Response {
    if let Some(c) = handoff_cookie(key) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    no_store(resp.headers_mut());
    resp
}

/// `GET`/`POST /logout`: deletes the presented key when a sign-in minted it (any other key is
/// left alone), clears the cookie; `{"message": ...}`.
pub(super) async fn logout(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    let mut revoked = false;
    if let (Some(presented), Some(keys)) = (presented_key(&headers), ui.keys.as_ref()) {
        if let Some(store) = keys.store_as::<Store>() {
            let token = hash_key(presented.expose());
            match store.key(&token).await {
                Ok(Some(k))
                    if k.metadata.get(SESSION_MARK).and_then(Value::as_bool) == Some(true) =>
                {
                    match store.delete_keys(std::slice::from_ref(&token)).await {
                        Ok(_) => {
                            keys.invalidate(&token);
                            revoked = true;
                        }
                        Err(e) => return ApiError::from(e).into_response(),
                    }
                }
                Ok(_) => {}
                Err(e) => return ApiError::from(e).into_response(),
            }
        }
    }
    let mut resp = Json(json!({
        "message": if revoked { "logged out; the session key is deleted" } else { "logged out" },
    }))
    .into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_static(CLEAR_COOKIE));
    no_store(resp.headers_mut());
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;
    use crate::{auth::KeyCache, secret::Secret};

    async fn app() -> (axum::Router, Store) {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let keys = KeyCache::new(store.clone(), Duration::from_secs(10));
        (
            super::super::router(Some(Secret::new("sk-master")), Some(keys)),
            store,
        )
    }

    async fn call(
        app: &axum::Router,
        req: axum::http::Request<axum::body::Body>,
    ) -> (u16, HeaderMap, Value) {
        let resp = app
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|e| match e {});
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            headers,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    fn post(uri: &str, ctype: &str, body: &str) -> axum::http::Request<axum::body::Body> {
        axum::http::Request::post(uri)
            .header("content-type", ctype)
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap()
    }

    #[tokio::test]
    async fn the_master_key_signs_in_as_proxy_admin_and_logout_deletes_the_session() {
        let (app, store) = app().await;
        let (s, h, _) = call(
            &app,
            post(
                "/login",
                "application/x-www-form-urlencoded",
                "username=admin&password=sk-master",
            ),
        )
        .await;
        assert_eq!(s, 303);
        assert_eq!(h[header::LOCATION], "/ui/?login=success");
        let cookie = h[header::SET_COOKIE].to_str().unwrap().to_owned();
        assert!(
            cookie.starts_with("token=sk-") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );

        let (s, _, v) = call(
            &app,
            post(
                "/v2/login",
                "application/json",
                r#"{"username":"admin","password":"sk-master"}"#,
            ),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["user_role"], "proxy_admin");
        assert_eq!(v["user_id"], PROXY_ADMIN_ID);
        let key = v["key"].as_str().unwrap().to_owned();
        let row = store.key(&hash_key(&key)).await.unwrap().unwrap();
        assert_eq!(row.metadata[SESSION_MARK], true);
        assert!(row.expires.is_some());
        let admin = store.user(PROXY_ADMIN_ID).await.unwrap().unwrap();
        assert_eq!(admin.user_role.as_deref(), Some("proxy_admin"));

        let req = axum::http::Request::post("/logout")
            .header("authorization", format!("Bearer {key}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let (s, h, _) = call(&app, req).await;
        assert_eq!(s, 200);
        assert!(h[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"));
        assert!(store.key(&hash_key(&key)).await.unwrap().is_none());
    }

    /// LiteLLM's `password` column holds the SHA-256 hex of the password (its `hash_token`) or
    /// the password itself; both verify, the stored hash presented as a password does not, and
    /// an Argon2id string still works.
    #[tokio::test]
    async fn litellms_stored_password_forms_verify() {
        let sha = hash_key("pw-litellm");
        assert!(check_password("pw-litellm".into(), Stored::LiteLlm(sha.clone())).await);
        assert!(!check_password("pw-other".into(), Stored::LiteLlm(sha.clone())).await);
        // The stored hash itself is not a password (no pass-the-hash).
        assert!(!check_password(sha.clone(), Stored::LiteLlm(sha.clone())).await);
        assert!(check_password("plain".into(), Stored::LiteLlm("plain".into())).await);
        assert!(!check_password("plain ".into(), Stored::LiteLlm("plain".into())).await);
        let phc = crate::management::password::hash_password("pw".into())
            .await
            .unwrap();
        assert!(check_password("pw".into(), Stored::Phc(phc.clone())).await);
        assert!(!check_password("px".into(), Stored::Phc(phc)).await);
    }

    #[tokio::test]
    async fn wrong_credentials_are_401_error_json() {
        let (app, _) = app().await;
        for body in [
            r#"{"username":"admin","password":"sk-wrong"}"#,
            r#"{"username":"nobody@example.com","password":"x"}"#,
            r#"{}"#,
        ] {
            let (s, _, v) = call(&app, post("/v2/login", "application/json", body)).await;
            assert_eq!(s, 401, "{body}: {v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("Invalid credentials"),
                "{v}"
            );
        }
        let (s, _, v) = call(&app, post("/v2/login", "application/json", "{not json")).await;
        assert_eq!(s, 400, "{v}");
        let long = format!(
            r#"{{"username":"admin","password":"{}"}}"#,
            "x".repeat(5000)
        );
        let (s, _, _) = call(&app, post("/v2/login", "application/json", &long)).await;
        assert_eq!(s, 401);
    }

    #[tokio::test]
    async fn a_user_signs_in_with_their_password_and_role() {
        let (app, store) = app().await;
        let mut metadata = Map::new();
        metadata.insert(
            PASSWORD_HASH_KEY.to_owned(),
            Value::String(
                crate::management::password::hash_password("pw-1".into())
                    .await
                    .unwrap(),
            ),
        );
        store
            .create_user(&UserRow {
                user_id: "u1".into(),
                user_email: Some("u1@example.com".into()),
                user_role: Some("internal_user".into()),
                metadata,
                ..UserRow::default()
            })
            .await
            .unwrap();
        store
            .create_user(&UserRow {
                user_id: "u2".into(),
                user_email: Some("u2@example.com".into()),
                ..UserRow::default()
            })
            .await
            .unwrap();
        let (s, _, v) = call(
            &app,
            post(
                "/v2/login",
                "application/json",
                r#"{"username":"u1@example.com","password":"pw-1"}"#,
            ),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["user_role"], "internal_user");
        assert_eq!(v["user_id"], "u1");
        let (s, _, v) = call(
            &app,
            post(
                "/v2/login",
                "application/json",
                r#"{"username":"u1@example.com","password":"pw-2"}"#,
            ),
        )
        .await;
        assert_eq!(s, 401, "{v}");
        let (s, _, v) = call(
            &app,
            post(
                "/v2/login",
                "application/json",
                r#"{"username":"u2@example.com","password":"pw-1"}"#,
            ),
        )
        .await;
        assert_eq!(s, 401, "{v}");
        assert_eq!(v["error"]["param"], "password", "{v}");
    }

    #[tokio::test]
    async fn without_a_master_key_or_database_sign_in_is_a_500() {
        let app = super::super::router(None, None);
        let (s, _, v) = call(
            &app,
            post(
                "/v2/login",
                "application/json",
                r#"{"username":"admin","password":""}"#,
            ),
        )
        .await;
        assert_eq!(s, 500, "{v}");
        let app = super::super::router(Some(Secret::new("sk-m")), None);
        let (s, _, v) = call(
            &app,
            post(
                "/v2/login",
                "application/json",
                r#"{"username":"admin","password":"sk-m"}"#,
            ),
        )
        .await;
        assert_eq!(s, 500, "{v}");
        assert_eq!(v["error"]["param"], "DATABASE_URL");
    }
}
