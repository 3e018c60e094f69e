//! Secrets never reach clients or logs (issue 17 items 9 and 10), with the real binary:
//!
//! * an `api_base` with credentials (`http://user:pass@host/v1`) is redacted in the
//!   `x-litellm-model-api-base` header (for an ordinary virtual key too), in error messages, in
//!   the log, and in management and health answers; a config error naming such a URL is redacted
//!   too; a database URL with a password (in user info and query) shows only redacted;
//! * a Redis password holding `@`, `:` and `/` reaches Redis intact from `router_settings` for all
//!   three users (rate-limit counters, shared routing state, the response cache), and never shows
//!   in the log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use governance_common::{
    call_with, free_port, fresh_pg, get, new_key, post, Proc, TempDir, BIN, MASTER,
};
use serde_json::json;
use support::{chat_completion, FakeUpstream, Reply};

const PASSWORD: &str = "hunter2-api-base-pass";

fn chat_body(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_api_base_reach_no_client_and_no_log() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let port = up.addr().port();
    let dead = free_port();
    let dir = TempDir::new();
    let path = dir.0.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "model_list:\n\
             \x20 - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: http://user:{PASSWORD}@127.0.0.1:{port}/v1\n      api_key: sk-upstream-key-0123\n\
             \x20 - model_name: down\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: http://user:{PASSWORD}@127.0.0.1:{dead}/v1\n      api_key: sk-upstream-key-0123\n      max_retries: 0\n\
             general_settings:\n  master_key: {MASTER}\n"
        ),
    )
    .unwrap();
    let proc = Proc::start(&path, &[("RUST_LOG", "info")]);
    let base = proc.base();
    let (key, _) = new_key(&base, json!({"models": ["g", "down"]})).await;

    // The header, for an ordinary virtual key and for the master key: host, port and path only.
    for caller in [key.as_str(), MASTER] {
        let a = post(
            &format!("{base}/v1/chat/completions"),
            Some(caller),
            &chat_body("g"),
        )
        .await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(
            a.header("x-litellm-model-api-base"),
            Some(format!("http://127.0.0.1:{port}/v1").as_str())
        );
        for (name, value) in &a.headers {
            let v = String::from_utf8_lossy(value.as_bytes());
            assert!(!v.contains(PASSWORD) && !v.contains("user:"), "{name}: {v}");
        }
        assert!(!String::from_utf8_lossy(&a.body).contains(PASSWORD));
    }
    // The request did reach the upstream (the credentials are not lost on the way there).
    assert_eq!(up.hits(), 2);

    // An error about the unreachable deployment: the OpenAI error JSON, without the credentials.
    let a = call_with(
        "POST",
        &format!("{base}/v1/chat/completions"),
        Some(&key),
        Some(&chat_body("down")),
        &[],
    )
    .await;
    assert!(
        a.status >= 500,
        "{} {}",
        a.status,
        String::from_utf8_lossy(&a.body)
    );
    let e = a.error();
    assert!(!e.to_string().contains(PASSWORD), "{e}");
    for (name, value) in &a.headers {
        assert!(
            !String::from_utf8_lossy(value.as_bytes()).contains(PASSWORD),
            "{name}"
        );
    }

    // Management and health answers.
    for (path, caller) in [
        ("/key/info", Some(key.as_str())),
        ("/key/list", Some(MASTER)),
        ("/v1/models", Some(MASTER)),
        ("/health/readiness", None),
    ] {
        let a = get(&format!("{base}{path}"), caller).await;
        assert_eq!(
            a.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert!(
            !String::from_utf8_lossy(&a.body).contains(PASSWORD),
            "{path}"
        );
    }

    // Nothing in the log: start-up, access lines, warnings about the dead deployment.
    let log = proc.stop();
    assert!(log.contains("request"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");

    // A config error naming such a URL (`--check`) shows it redacted.
    std::fs::write(
        &path,
        format!(
            "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/x\n      api_base: ftp://user:{PASSWORD}@h/v1?key=query-secret-0123\n"
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("api_base") && err.contains("ftp://h/v1?key=*****"),
        "{err}"
    );
    assert!(
        !err.contains(PASSWORD) && !err.contains("query-secret"),
        "{err}"
    );
}

/// A throw-away `redis-server` with a password, killed on drop.
struct PasswordRedis {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl PasswordRedis {
    async fn start(password: &str) -> Self {
        let port = free_port();
        let dir = TempDir::new();
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir.0)
            .args(["--requirepass", password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (Debian: apt-get install redis-server)");
        let me = Self { child, port, dir };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        me
    }

    /// A connection authenticated with the password set directly (not through a URL).
    async fn connection(&self, password: &str) -> redis::aio::MultiplexedConnection {
        use redis::IntoConnectionInfo as _;
        let info = redis::ConnectionAddr::Tcp("127.0.0.1".into(), self.port)
            .into_connection_info()
            .unwrap();
        let settings = info.redis_settings().clone().set_password(password);
        let client = redis::Client::open(info.set_redis_settings(settings)).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }
}

impl Drop for PasswordRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_password_with_at_colon_and_slash_serves_all_three_users() {
    let password = "p@ss:w/rd";
    let redis = PasswordRedis::start(password).await;
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let dir = TempDir::new();
    let path = dir.0.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {}/v1\n      api_key: sk-upstream-key-0123\n\
             general_settings:\n  master_key: {MASTER}\n\
             router_settings:\n  redis_host: 127.0.0.1\n  redis_port: {}\n  redis_password: '{password}'\n\
             litellm_settings:\n  cache: true\n",
            up.url(),
            redis.port
        ),
    )
    .unwrap();
    // Start-up connects the rate-limit counters (a failure stops the binary before it listens).
    let proc = Proc::start(&path, &[("RUST_LOG", "info")]);
    let base = proc.base();
    let (key, _) = new_key(&base, json!({"rpm_limit": 100})).await;
    for _ in 0..2 {
        let a = post(
            &format!("{base}/v1/chat/completions"),
            Some(&key),
            &chat_body("g"),
        )
        .await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    }
    // The cache: the second identical request was served from Redis.
    assert_eq!(up.hits(), 1);

    // Each user wrote its keys (the router's are written in the background).
    let mut conn = redis.connection(password).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let keys = loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut conn)
            .await
            .unwrap();
        let has = |p: &dyn Fn(&String) -> bool| keys.iter().any(p);
        if has(&|k| k.starts_with("llmgate:router:"))
            && has(&|k| k.starts_with("llmgate:rl:"))
            && has(&|k| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            break keys;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "keys so far: {keys:?}\n{}",
            proc.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!keys.is_empty());

    let log = proc.stop();
    for warning in [
        "NOT shared",
        "caching is off",
        "cannot reach Redis",
        "WRONGPASS",
        "NOAUTH",
    ] {
        assert!(!log.contains(warning), "{warning}:\n{log}");
    }
    assert!(!log.contains(password) && !log.contains("ss:w"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_password_stays_out_of_the_log_and_readiness() {
    // The test server trusts every password, so one in the URL is accepted and must never show.
    let url = fresh_pg().await;
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, host_and_db) = rest.split_once('@').unwrap();
    let secret = "db-pass-0123456789";
    let with_password =
        format!("{scheme}://{user}:{secret}@{host_and_db}?sslmode=disable&password={secret}");
    let dir = TempDir::new();
    let path = dir.0.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: http://127.0.0.1:9/v1\n\
             general_settings:\n  master_key: {MASTER}\n"
        ),
    )
    .unwrap();
    let proc = Proc::start(
        &path,
        &[("RUST_LOG", "info"), ("DATABASE_URL", &with_password)],
    );
    let a = get(&format!("{}/health/readiness", proc.base()), None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["db"], "connected");
    assert!(!String::from_utf8_lossy(&a.body).contains(secret));
    let log = proc.stop();
    // The start-up line names the database, redacted.
    let shown = format!("database=\"{scheme}://{host_and_db}?sslmode=disable&password=*****\"");
    assert!(log.contains(&shown), "{shown} not in:\n{log}");
    assert!(!log.contains(secret), "{log}");
}
