//! Shared helpers of the governance tests: databases, an in-process governed gateway, HTTP calls
//! with keys, and the `llmgate` binary as a child process.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use llmgate::{
    config::Config,
    gateway::Gateway,
    governance::BuildOptions,
    provider::HttpClient,
    server::{serve, ServeConfig},
};
use serde_json::{json, Value};
use sqlx::Connection as _;

pub const MASTER: &str = "sk-master-0123456789abcdef";

/// `LLMGATE_TEST_DATABASE_URL`, or a failure telling how to get it.
pub fn pg_url() -> String {
    std::env::var("LLMGATE_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("LLMGATE_TEST_DATABASE_URL is not set: run the tests with `bash .ci/test`, which starts PostgreSQL")
    })
}

/// `LLMGATE_TEST_REDIS_URL`, or a failure telling how to get it.
pub fn redis_url() -> String {
    std::env::var("LLMGATE_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("LLMGATE_TEST_REDIS_URL is not set: run the tests with `bash .ci/test`, which starts Redis")
    })
}

/// A fresh PostgreSQL database on the test server, for one test.
pub async fn fresh_pg() -> String {
    let base = pg_url();
    let name = format!("llmgate_t_{:016x}", fastrand::u64(..));
    let mut conn = sqlx::postgres::PgConnection::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

/// A governed gateway served on loopback until dropped.
pub struct Gov {
    pub addr: SocketAddr,
    pub gateway: Option<Gateway>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Gov {
    pub async fn start(yaml: &str, opts: BuildOptions) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_test_writer()
            .try_init();
        let loaded = Config::from_yaml_str(yaml, "test").unwrap_or_else(|e| panic!("config: {e}"));
        let gateway = Gateway::build(&loaded.config, &HttpClient::new(), opts)
            .await
            .unwrap_or_else(|e| panic!("build: {e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            gateway.app(),
            ServeConfig::default().grace_period(Duration::from_secs(5)),
            async {
                let _ = rx.await;
            },
        ));
        Self {
            addr,
            gateway: Some(gateway),
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Waits until every spend row recorded so far is in the database.
    pub async fn flush(&self) {
        self.gateway
            .as_ref()
            .unwrap()
            .governance()
            .unwrap()
            .spend
            .flush()
            .await;
    }

    /// Stops serving, then the spend writer; returns its counters.
    pub async fn shutdown(mut self) -> llmgate::spend::SpendStats {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
        self.gateway
            .take()
            .unwrap()
            .shutdown(Duration::from_secs(30))
            .await
            .unwrap()
    }
}

impl Drop for Gov {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A config with one OpenAI-shaped deployment at `upstream` and a master key.
pub fn config(group: &str, upstream: &str, extra: &str) -> String {
    format!(
        "model_list:\n  - model_name: {group}\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\n  - model_name: other\n    litellm_params:\n      model: openai/gpt-4o\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\ngeneral_settings:\n  master_key: {MASTER}\n{extra}"
    )
}

pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The OpenAI error object, checked to have all four fields.
    pub fn error(&self) -> Value {
        let v = self.json();
        let e = v
            .get("error")
            .unwrap_or_else(|| panic!("no error: {v}"))
            .clone();
        for f in ["message", "type", "param", "code"] {
            assert!(e.get(f).is_some(), "error.{f} missing: {v}");
        }
        e
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn call(method: &str, url: &str, key: Option<&str>, body: Option<&Value>) -> Answer {
    call_with(method, url, key, body, &[]).await
}

/// [`call`] with extra request headers.
pub async fn call_with(
    method: &str,
    url: &str,
    key: Option<&str>,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut b = http::Request::builder().method(method).uri(url);
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    for (name, value) in headers {
        b = b.header(*name, *value);
    }
    let req = b
        .header("content-type", "application/json")
        .body(Full::new(body.map_or_else(Bytes::new, |v| {
            Bytes::from(serde_json::to_vec(v).unwrap())
        })))
        .unwrap();
    let resp = client.request(req).await.expect("gateway reachable");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

pub async fn post(url: &str, key: Option<&str>, body: &Value) -> Answer {
    call("POST", url, key, Some(body)).await
}

pub async fn get(url: &str, key: Option<&str>) -> Answer {
    call("GET", url, key, None).await
}

pub async fn chat(base: &str, key: &str, model: &str) -> Answer {
    post(
        &format!("{base}/v1/chat/completions"),
        Some(key),
        &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
}

/// Generates a key with the master key; returns `(key, token)`.
pub async fn new_key(base: &str, body: Value) -> (String, String) {
    let a = post(&format!("{base}/key/generate"), Some(MASTER), &body).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    (
        v["key"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

// ------------------------------------------------------------------------------------ binary

pub const BIN: &str = env!("CARGO_BIN_EXE_llmgate");

/// A temp directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let p = std::env::temp_dir().join(format!(
            "llmgate-gov-{}-{:x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary serving `config_path` on a free port; its stderr is collected.
pub struct Proc {
    pub child: Child,
    pub port: u16,
    pub stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Proc {
    /// Starts the binary and waits (reading its log, no sleeping) until it listens.
    pub fn start(config_path: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(config_path)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("NO_COLOR", "1")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<bool>();
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            let mut told = false;
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let listening = line.contains("llmgate listening");
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
                if listening && !told {
                    told = true;
                    let _ = tx.send(true);
                }
            }
            if !told {
                let _ = tx.send(false);
            }
        });
        let ok = rx.recv_timeout(Duration::from_secs(60)).unwrap_or(false);
        assert!(ok, "llmgate did not start:\n{}", stderr.lock().unwrap());
        Self {
            child,
            port,
            stderr,
            reader: Some(reader),
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGTERM, wait for exit, return the whole stderr.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
