//! The admin web UI at `/ui`, and the sign-in routes it uses: `POST /login` (LiteLLM's form post),
//! `POST /v2/login` (the same as JSON), `POST`/`GET /logout`.
//!
//! The UI is hand-written HTML, CSS and JavaScript (ES modules, no framework), embedded in the
//! binary with `include_str!` and served as static bytes by this router, which sits beside the
//! management API outside the model stack: the request path does not see it. Every answer carries
//! a strict Content-Security-Policy (no inline script or style, nothing from another origin), and
//! the assets an `ETag` with `Cache-Control: no-cache` (a revalidation is a 304).
//!
//! Signing in (as LiteLLM): user name `admin` (or `UI_USERNAME`) with the master key (or
//! `UI_PASSWORD`) signs in as proxy admin; a user's e-mail (or id) with the password set through
//! `/user/new` or `/user/update` (`password`, kept as an Argon2id hash) signs in with the user's
//! role. A sign-in mints a virtual key of that user valid for 24 hours (metadata
//! `llmgate_ui_session: true`); the UI keeps it in `sessionStorage` and sends it as a bearer key
//! to the management API. `/logout` deletes it. See `docs/ui.md`.

mod login;

use std::sync::{Arc, OnceLock};

use axum::{
    extract::Path,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};

use crate::{auth::KeyCache, secret::Secret};

/// The policy every UI answer carries: scripts, styles, images and API calls from this origin
/// only; no inline script or style, no plug-ins, no framing, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// One embedded file: its name under `/ui/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("assets/index.html"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/style.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/api.js"),
    },
    Asset {
        name: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/dom.js"),
    },
    Asset {
        name: "chart.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/chart.js"),
    },
    Asset {
        name: "pages.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/pages.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("assets/favicon.svg"),
    },
];

/// The ETag of every asset: a hash of all of them (they change together, with the binary).
fn etag() -> &'static HeaderValue {
    static TAG: OnceLock<HeaderValue> = OnceLock::new();
    TAG.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for a in ASSETS {
            h.update(a.name.as_bytes());
            h.update(a.body.as_bytes());
        }
        let hex = hex::encode(h.finalize());
        let tag = format!("\"{}\"", hex.get(..20).unwrap_or(&hex));
        HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"ui\""))
    })
}

/// The headers every UI answer carries.
fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn serve_asset(name: &str, req: &HeaderMap) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        return crate::management::not_found(format!("no UI file `{name}`")).into_response();
    };
    let tag = etag();
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == tag.as_bytes());
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        a.body.into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::ETAG, tag.clone());
    security_headers(h);
    resp
}

async fn index(req: HeaderMap) -> Response {
    serve_asset("index.html", &req)
}

async fn asset(Path(name): Path<String>, req: HeaderMap) -> Response {
    serve_asset(&name, &req)
}

/// The UI's shared state: the master key and the key store sessions are minted in.
#[derive(Debug)]
struct Ui {
    master: Option<Secret>,
    keys: Option<KeyCache>,
}

/// The UI and sign-in routes. `keys` is the governance key cache (`None`: no database, so
/// sign-in answers LiteLLM's "No Database connected" error; the pages are still served).
pub fn router(master: Option<Secret>, keys: Option<KeyCache>) -> Router {
    let state = Arc::new(Ui {
        master: master.filter(|m| !m.is_empty()),
        keys,
    });
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/{name}", get(asset))
        .route("/login", post(login::form_login))
        .route("/v2/login", post(login::json_login))
        .route("/logout", get(login::logout).post(login::logout))
        .with_state(state)
        // A wrong method or an oversized body is the error JSON too.
        .layer(axum::middleware::map_response(
            crate::management::json_errors,
        ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every embedded module is served, and no page pulls a script or style from elsewhere or
    /// inline (the CSP would block it and the page would not work).
    #[test]
    fn assets_are_self_contained() {
        let html = ASSETS.iter().find(|a| a.name == "index.html").unwrap().body;
        assert!(!html.contains("<script>"), "inline script");
        assert!(!html.contains("style="), "inline style");
        assert!(!html.contains("http://") && !html.contains("https://"));
        for a in ASSETS {
            if a.name.ends_with(".js") {
                for line in a.body.lines() {
                    let l = line.trim_start();
                    if let Some(rest) = l.strip_prefix("import ") {
                        let from = rest.split("from").nth(1).unwrap_or(rest);
                        let file = from
                            .trim()
                            .trim_matches(|c| c == '\'' || c == '"' || c == ';')
                            .trim_start_matches("./");
                        assert!(
                            ASSETS.iter().any(|b| b.name == file),
                            "{} imports {file}, which is not embedded",
                            a.name
                        );
                    }
                }
                assert!(!a.body.contains("innerHTML"), "{} writes innerHTML", a.name);
                assert!(!a.body.contains("eval("), "{} calls eval", a.name);
            }
        }
    }

    #[tokio::test]
    async fn assets_carry_type_cache_and_csp_and_revalidate() {
        let h = HeaderMap::new();
        let r = serve_asset("app.js", &h);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(
            r.headers()[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        let tag = r.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, tag);
        assert_eq!(
            serve_asset("style.css", &h).status(),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(
            serve_asset("../Cargo.toml", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }
}
