//! Governance across processes and failures: limits shared by two `llmgate` processes through Redis
//! (`LLMGATE_TEST_REDIS_URL`) and PostgreSQL (`LLMGATE_TEST_DATABASE_URL`); a PostgreSQL outage in
//! the middle of a load (on a PostgreSQL this test starts and stops itself); keys never in the log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use governance_common::{
    chat, free_port, fresh_pg, get, new_key, post, redis_url, Gov, Proc, TempDir, MASTER,
};
use llmgate::governance::BuildOptions;
use serde_json::json;
use support::{chat_completion, FakeUpstream, Reply};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_shared_by_two_gateway_processes() {
    let db = fresh_pg().await;
    let redis = redis_url();
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let dir = TempDir::new();
    let cfg = write(
        &dir.0,
        "config.yaml",
        &format!(
            "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {}/v1\n      api_key: sk-upstream-key\nrouter_settings:\n  redis_url: {redis}\ngeneral_settings:\n  master_key: {MASTER}\n  database_url: {db}\n",
            up.url()
        ),
    );
    // One after the other: the first runs the migrations.
    let a = Proc::start(&cfg, &[]);
    let b = Proc::start(&cfg, &[]);
    let (key, _) = new_key(&a.base(), json!({"rpm_limit": 10})).await;
    // The key made through A is known to B (same PostgreSQL).
    let mut set = tokio::task::JoinSet::new();
    for i in 0..30 {
        let base = if i % 2 == 0 { a.base() } else { b.base() };
        let k = key.clone();
        set.spawn(async move { chat(&base, &k, "g").await.status });
    }
    let mut ok = 0;
    let mut limited = 0;
    while let Some(s) = set.join_next().await {
        match s.unwrap() {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    // 10 in total across both processes, not 10 each.
    assert_eq!((ok, limited), (10, 20));
    assert_eq!(up.hits(), 10);
    drop((a, b));
}

/// A PostgreSQL of this test's own on a free port (initdb/pg_ctl, as the `postgres` user when
/// running as root), stopped and removed on drop.
struct OwnPg {
    dir: TempDir,
    port: u16,
}

fn as_pg_user(cmd: &str, args: &[&str]) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", cmd]).args(args);
        c
    } else {
        let mut c = Command::new(cmd);
        c.args(args);
        c
    }
}

impl OwnPg {
    fn start() -> Self {
        let dir = TempDir::new();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false);
        if root {
            let _ = Command::new("useradd")
                .args(["--system", "--no-create-home", "postgres"])
                .status();
            assert!(Command::new("chown")
                .arg("postgres")
                .arg(&dir.0)
                .status()
                .unwrap()
                .success());
        }
        let data = dir.0.join("data");
        let out = as_pg_user(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "llmgate",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )
        .output()
        .expect("initdb on PATH (see .ci/test)");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = Self {
            dir,
            port: free_port(),
        };
        pg.up();
        let out = as_pg_user(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "llmgate",
                "llmgate",
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg
    }

    fn url(&self) -> String {
        format!("postgres://llmgate@127.0.0.1:{}/llmgate", self.port)
    }

    fn up(&self) {
        let data = self.dir.0.join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.0.display()
        );
        let log = self.dir.0.join("pg.log");
        let out = as_pg_user(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "-o",
                &opts,
                "start",
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn down(&self) {
        let data = self.dir.0.join("data");
        let out = as_pg_user(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnPg {
    fn drop(&mut self) {
        let data = self.dir.0.join("data");
        let _ = as_pg_user(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        )
        .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_mid_load_loses_no_request_and_no_spend_row() {
    let pg = tokio::task::spawn_blocking(OwnPg::start).await.unwrap();
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let yaml = governance_common::config("g", &up.url(), "");
    // A short key ttl: lookups go stale during the outage and must be served from the cache.
    let opts = BuildOptions::default()
        .database_url(pg.url())
        .key_cache_ttl(Duration::from_millis(200));
    let gw = Gov::start(&yaml, opts).await;
    let base = gw.url("");
    let (key, token) = new_key(&base, json!({"max_budget": 100.0})).await;

    let mut ok = 0usize;
    let mut rounds = 0usize;
    let stats = |gw: &Gov| {
        gw.gateway
            .as_ref()
            .unwrap()
            .governance()
            .unwrap()
            .spend
            .stats()
    };
    // Before, during and after the outage: three calls at a time, each round fast.
    let mut round = |phase: &'static str| {
        rounds += 1;
        let calls: Vec<_> = (0..3).map(|_| chat(&base, &key, "g")).collect();
        async move {
            let started = std::time::Instant::now();
            let mut n = 0;
            for a in futures_util::future::join_all(calls).await {
                assert_eq!(
                    a.status,
                    200,
                    "{phase}: {}",
                    String::from_utf8_lossy(&a.body)
                );
                n += 1;
            }
            // A down database does not slow requests down.
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{phase}: took {:?}",
                started.elapsed()
            );
            n
        }
    };
    for _ in 0..20 {
        ok += round("before").await;
    }
    let pg_ref = &pg;
    tokio::task::block_in_place(|| pg_ref.down());
    // Keep the load on until the spend writer has failed a few writes (the pool's own connect
    // retries bridge short outages), at most 60 s.
    let outage = std::time::Instant::now();
    while stats(&gw).failed_writes < 3 {
        assert!(
            outage.elapsed() < Duration::from_secs(60),
            "no failed write noticed"
        );
        ok += round("during").await;
    }
    let during_failures = stats(&gw).failed_writes;
    tokio::task::block_in_place(|| pg_ref.up());
    for _ in 0..20 {
        ok += round("after").await;
    }
    assert_eq!(ok, rounds * 3);
    let total = ok;
    // Every row reaches the database once it is back.
    gw.flush().await;
    // Counted in the database itself (the outage phase can log more rows than one
    // `/spend/logs` page holds).
    let store = gw
        .gateway
        .as_ref()
        .unwrap()
        .governance()
        .unwrap()
        .store
        .as_ref()
        .unwrap();
    let rows = store
        .spend_logs(&llmgate::store::SpendFilter {
            api_key: Some(token.clone()),
            limit: i64::MAX,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), total);
    assert!(rows
        .iter()
        .all(|r| r.status == "success" && r.total_tokens == 12));
    // The API agrees on a page of them.
    let page = get(
        &gw.url(&format!("/spend/logs?api_key={token}&limit=50")),
        Some(MASTER),
    )
    .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.json().as_array().unwrap().len(), 50.min(total));
    let stats = gw.shutdown().await;
    assert_eq!(stats.dropped, 0);
    assert!(stats.failed_writes >= during_failures, "{stats:?}");
    drop(up);
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_never_appears_in_logs() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let dir = TempDir::new();
    let cfg = write(
        &dir.0,
        "config.yaml",
        &format!(
            "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {}/v1\n      api_key: sk-upstream-secret-4242\ngeneral_settings:\n  master_key: {MASTER}\n",
            up.url()
        ),
    );
    let p = Proc::start(&cfg, &[("RUST_LOG", "trace")]);
    let base = p.base();
    let (key, _) = new_key(&base, json!({"models": ["g"]})).await;
    assert_eq!(chat(&base, &key, "g").await.status, 200);
    assert_eq!(chat(&base, &key, "nope").await.status, 401);
    assert_eq!(chat(&base, "sk-wrong-key-123456789", "g").await.status, 401);
    assert_eq!(
        post(&format!("{base}/key/generate"), Some(&key), &json!({}))
            .await
            .status,
        403
    );
    assert_eq!(
        post(
            &format!("{base}/key/block"),
            Some(MASTER),
            &json!({"key": key})
        )
        .await
        .status,
        200
    );
    assert_eq!(chat(&base, &key, "g").await.status, 401);
    let log = p.stop();
    assert!(log.contains("llmgate listening"), "{log}");
    assert!(
        log.lines().count() > 5,
        "too little logged to prove anything:\n{log}"
    );
    for secret in [
        key.as_str(),
        MASTER,
        "sk-wrong-key-123456789",
        "sk-upstream-secret-4242",
    ] {
        assert!(!log.contains(secret), "a key appears in the log:\n{log}");
    }
    assert!(dir.0.join("llmgate.db").exists());
}
