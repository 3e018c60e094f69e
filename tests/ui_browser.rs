//! The admin UI end to end in real headless Chromium (Debian's `chromium` and `chromium-driver`),
//! driven through chromedriver by tests/ui_browser.py (Selenium's WebDriver client, in the CI
//! venv): sign in with the master key, create a team and a key in it (the secret shown once),
//! make a chat call with the key over HTTP to a fake upstream, see its spend on the keys page and
//! the call on the logs page, the charts, models with health, a phone-width viewport, sign out.
//!
//! Needs `LLMGATE_PYTHON` (a Python with `selenium`; `bash .ci/test` makes it) and Chromium with
//! chromedriver (`LLMGATE_CHROMIUM` / `LLMGATE_CHROMEDRIVER`, else `chromium` and `chromedriver`
//! on PATH; `bash .ci/test` installs them). Without them the test fails, saying so: it never
//! skips. Screenshots go to `LLMGATE_UI_SHOTS` (default `target/ui-shots`; `docs/ui` for the docs).
//! Also over sockets: the UI's headers (types, cache, CSP) and `/login`, `/user/new` passwords.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use std::{path::PathBuf, time::Duration};

use governance_common::{get, post, Gov, MASTER};
use llmgate::governance::BuildOptions;
use serde_json::{json, Value};
use support::{chat_completion, FakeUpstream, Reply};

/// Model group `g` at 1e-3 per input and 2e-3 per output token (the fake's 5 + 7 tokens: 0.019).
fn config(upstream: &str) -> String {
    format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\n      input_cost_per_token: 0.001\n      output_cost_per_token: 0.002\ngeneral_settings:\n  master_key: {MASTER}\n"
    )
}

/// A program from `var`, else the first of `names` on PATH; a failure saying how to get it.
fn program(var: &str, names: &[&str]) -> String {
    if let Ok(p) = std::env::var(var) {
        assert!(
            std::path::Path::new(&p).exists(),
            "{var}={p} does not exist"
        );
        return p;
    }
    for n in names {
        if let Some(dir) = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .find(|d| d.join(n).is_file())
        {
            return dir.join(n).to_string_lossy().into_owned();
        }
    }
    panic!(
        "the browser test needs {names:?} (Debian: apt-get install chromium chromium-driver; `bash .ci/test` installs them) or {var}"
    )
}

fn python_with_selenium() -> String {
    let py = std::env::var("LLMGATE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let ok = std::process::Command::new(&py)
        .args(["-c", "import selenium"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the browser test needs Python with `selenium` ({py}): run `bash .ci/test` (it makes the venv), or pip install selenium and set LLMGATE_PYTHON"
    );
    py
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_ui_in_headless_chromium() {
    let chromium = program("LLMGATE_CHROMIUM", &["chromium", "chromium-browser"]);
    let driver = program("LLMGATE_CHROMEDRIVER", &["chromedriver"]);
    let python = python_with_selenium();
    let shots: PathBuf = std::env::var_os("LLMGATE_UI_SHOTS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-shots"),
        PathBuf::from,
    );

    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello from upstream")));
    let gw = Gov::start(
        &config(&up.url()),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ui_browser.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .args([&base, MASTER])
        .arg(&shots)
        .args([&chromium, &driver])
        .env("SE_AVOID_STATS", "true")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser run ends within 4 minutes")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser scenario failed:\n{stdout}\n{stderr}"
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no summary line ({e}):\n{stdout}\n{stderr}"));

    // What the browser did is in the database: the key it created, in its team, with the call's
    // spend; the upstream saw the call; the session key was deleted at sign-out.
    let key = summary["key"].as_str().unwrap();
    let info = get(&gw.url("/key/info"), Some(key)).await;
    assert_eq!(info.status, 200, "{}", String::from_utf8_lossy(&info.body));
    let info = info.json();
    let info = &info["info"];
    assert_eq!(info["team_id"], "team-search", "{info}");
    assert_eq!(info["key_alias"], "search-svc");
    assert_eq!(info["max_budget"], 10.0);
    assert_eq!(info["rpm_limit"], 77);
    assert!(
        (info["spend"].as_f64().unwrap() - 0.019).abs() < 1e-9,
        "{info}"
    );
    assert_eq!(
        up.hits(),
        2,
        "the chat call and the health probe reached the upstream"
    );
    let session = summary["session_key"].as_str().unwrap();
    let gone = get(&gw.url("/key/info"), Some(session)).await;
    assert_eq!(gone.status, 401, "the signed-out session key is refused");
    for page in [
        "signin",
        "keys",
        "teams",
        "users",
        "organizations",
        "customers",
        "models",
        "spend",
        "logs",
        "keys-phone",
    ] {
        assert!(
            shots.join(format!("{page}.png")).is_file(),
            "no screenshot of {page}"
        );
    }
}

/// The UI's files over a socket: types, cache validators, the CSP; `/ui` and `/ui/` serve the
/// page; an unknown file is the 404 error JSON.
#[tokio::test]
async fn the_ui_is_served_with_types_cache_and_csp() {
    let up = FakeUpstream::start().await;
    let gw = Gov::start(
        &config(&up.url()),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    for (path, ctype) in [
        ("/ui", "text/html; charset=utf-8"),
        ("/ui/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/style.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ] {
        let a = get(&gw.url(path), None).await;
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.headers["content-type"], ctype, "{path}");
        assert_eq!(a.headers["cache-control"], "no-cache", "{path}");
        let csp = a.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert_eq!(a.headers["x-content-type-options"], "nosniff");
        assert!(a.headers.contains_key("etag"), "{path}");
    }
    let a = post(&gw.url("/ui/app.js"), None, &json!({})).await;
    assert_eq!(a.status, 405);
    assert!(a.error()["message"].is_string());
    let a = get(&gw.url("/v2/login"), None).await;
    assert_eq!(a.status, 405);
    assert!(a.error()["message"].is_string());
    let a = get(&gw.url("/ui/nope.js"), None).await;
    assert_eq!(a.status, 404);
    assert!(a.error()["message"].as_str().unwrap().contains("nope.js"));
    assert_eq!(up.hits(), 0);
}

/// `/user/new` and `/user/update` take a `password` (kept as an Argon2id hash, never shown); the
/// user signs in at `/v2/login` with their role, and the key it gets works for their own reads.
#[tokio::test]
async fn users_sign_in_with_passwords_set_through_the_api() {
    let up = FakeUpstream::start().await;
    let gw = Gov::start(
        &config(&up.url()),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let a = post(
        &gw.url("/user/new"),
        Some(MASTER),
        &json!({"user_id": "ann", "user_email": "ann@example.com", "user_role": "internal_user", "password": "s3cret-pw"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let shown = String::from_utf8_lossy(&a.body).into_owned();
    assert!(
        !shown.contains("s3cret-pw") && !shown.contains("argon2"),
        "{shown}"
    );

    let login = |u: &'static str, p: &'static str| {
        let url = gw.url("/v2/login");
        async move { post(&url, None, &json!({"username": u, "password": p})).await }
    };
    let a = login("ann@example.com", "s3cret-pw").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["user_role"], "internal_user");
    let key = a.json()["key"].as_str().unwrap().to_owned();
    let me = get(&gw.url("/user/info"), Some(&key)).await;
    assert_eq!(me.status, 200);
    let me = me.json();
    assert_eq!(me["user_id"], "ann");
    assert!(
        me["user_info"]["metadata"]
            .get("llmgate_password_hash")
            .is_none(),
        "{me}"
    );
    // An internal user's session is not an admin.
    assert_eq!(get(&gw.url("/user/list"), Some(&key)).await.status, 403);

    // A new password replaces the old; a metadata update keeps it.
    let a = post(
        &gw.url("/user/update"),
        Some(MASTER),
        &json!({"user_id": "ann", "password": "n3w-pw"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = post(
        &gw.url("/user/update"),
        Some(MASTER),
        &json!({"user_id": "ann", "metadata": {"team": "x"}}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(login("ann@example.com", "s3cret-pw").await.status, 401);
    assert_eq!(login("ann", "n3w-pw").await.status, 200);

    // The hash cannot be set or read through `metadata`; an empty password is refused.
    for body in [
        json!({"user_id": "ann", "metadata": {"llmgate_password_hash": "$argon2id$x"}}),
        json!({"user_id": "ann", "password": ""}),
    ] {
        let a = post(&gw.url("/user/update"), Some(MASTER), &body).await;
        assert_eq!(a.status, 400, "{body}");
    }

    // LiteLLM's form post: a 303 to the UI with the one-minute hand-off cookie.
    let form = llmgate_form(&gw.url("/login"), "username=admin&password=").await;
    assert_eq!(form.0, 401);
    let form = llmgate_form(
        &gw.url("/login"),
        &format!("username=admin&password={MASTER}"),
    )
    .await;
    assert_eq!(form.0, 303);
    assert_eq!(form.1["location"], "/ui/?login=success");
    let cookie = form.1["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("token=sk-") && cookie.contains("Max-Age=60"),
        "{cookie}"
    );
}

/// POSTs a URL-encoded form; (status, headers).
async fn llmgate_form(url: &str, body: &str) -> (u16, http::HeaderMap) {
    use http_body_util::Full;
    let req = http::Request::post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(bytes::Bytes::from(body.to_owned())))
        .unwrap();
    let resp = support::gw::client().request(req).await.unwrap();
    (resp.status().as_u16(), resp.headers().clone())
}
