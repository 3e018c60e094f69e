//! A call is paid for what it used (issue 18, item 2), over real sockets against a fake upstream:
//! a stream the client drops near its end, streams cut when the real binary's shutdown grace
//! period ends, and calls that are not streams cut the same way each leave a spend row with the
//! usage they had (status, tokens, cost), and budgets and tpm limits count it.
//!
//! The figures, with the prices of [`PRICED`] (1e-3 per input, 2e-3 per output token):
//! - the prompt `[{"role": "user", "content": "hi"}]` is estimated at ceil(2 / 4) + 3 = 4 tokens;
//! - a cut stream delivered the ten 4-byte pieces of [`PIECES`] (40 bytes: 10 tokens) and no
//!   usage chunk, so it is charged 4 + 10 = 14 tokens, 4 × 0.001 + 10 × 0.002 = 0.024;
//! - a non-stream call cut before its answer is charged its prompt: 4 tokens, 0.004.
//!
//! Before this item every such stream was logged as `success` with 0 tokens and 0 cost, and a
//! cut non-stream call left no row at all.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::suboptimal_flops)]

mod governance_common;
mod support;

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use governance_common::{free_port, fresh_pg, get, new_key, Gov, TempDir, BIN, MASTER};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use llmgate::{
    governance::BuildOptions,
    store::{SpendFilter, SpendRow, Store},
};
use serde_json::{json, Value};
use support::{chat_completion, chat_sse, FakeUpstream, Reply};

/// 1e-3 per input and 2e-3 per output token.
const PRICED: &str = "      input_cost_per_token: 0.001\n      output_cost_per_token: 0.002\n";

/// The stream's content pieces: 10 × 4 bytes.
const PIECES: [&str; 10] = [
    "w00 ", "w01 ", "w02 ", "w03 ", "w04 ", "w05 ", "w06 ", "w07 ", "w08 ", "w09 ",
];

/// What a cut stream is charged: 4 prompt + 10 completion tokens.
const STREAM_PROMPT: i64 = 4;
const STREAM_COMPLETION: i64 = 10;
const STREAM_COST: f64 = 4.0 * 0.001 + 10.0 * 0.002;

fn config(upstream: &str, extra: &str) -> String {
    format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\n{PRICED}general_settings:\n  master_key: {MASTER}\n{extra}"
    )
}

/// The upstream's stream: the role chunk and every content piece, then nothing (no finish
/// chunk, no usage chunk, no `[DONE]`) until the gateway goes away.
fn stream_then_hang() -> Reply {
    let sse = chat_sse(&PIECES);
    let events: Vec<&str> = sse.split("\n\n").take(1 + PIECES.len()).collect();
    Reply::sse_then_hang(events.join("\n\n") + "\n\n")
}

fn stream_body() -> Value {
    json!({"model": "g", "stream": true, "messages": [{"role": "user", "content": "hi"}]})
}

/// Opens a streamed chat with `key` on its own connection.
async fn open(base: &str, key: &str) -> http::Response<Incoming> {
    open_with(base, key, &stream_body()).await
}

/// Opens a chat with `key` and `body` on its own connection.
async fn open_with(base: &str, key: &str, body: &Value) -> http::Response<Incoming> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let req = http::Request::post(format!("{base}/v1/chat/completions"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
        .unwrap();
    client.request(req).await.expect("gateway reachable")
}

/// Reads the stream until every piece has arrived; returns the response, still open.
async fn read_all_pieces(resp: http::Response<Incoming>) -> http::Response<Incoming> {
    read_until(resp, |text| {
        PIECES.iter().all(|p| text.contains(p.trim_end()))
    })
    .await
}

/// Reads the stream until `done` holds for the text so far; returns the response, still open.
async fn read_until(
    resp: http::Response<Incoming>,
    done: impl Fn(&str) -> bool,
) -> http::Response<Incoming> {
    let (parts, mut body) = resp.into_parts();
    let mut text = String::new();
    let read = async {
        while !done(&text) {
            let frame = body.frame().await.expect("stream open").unwrap();
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the awaited text within 10 s");
    http::Response::from_parts(parts, body)
}

fn assert_cut_stream_row(r: &Value, status: &str) {
    assert_eq!(r["status"], status, "{r}");
    assert_eq!(r["prompt_tokens"], STREAM_PROMPT, "{r}");
    assert_eq!(r["completion_tokens"], STREAM_COMPLETION, "{r}");
    assert_eq!(r["total_tokens"], STREAM_PROMPT + STREAM_COMPLETION, "{r}");
    let spend = r["spend"].as_f64().unwrap();
    assert!((spend - STREAM_COST).abs() < 1e-12, "{r}");
}

/// Ten streams on one key, each read to its last piece and then dropped by the client; returns
/// how many were admitted (200) and the statuses of the others.
async fn ten_dropped_streams(gw: &Gov, up: &FakeUpstream, key: &str) -> (usize, Vec<u16>) {
    let base = gw.url("");
    let mut admitted = 0;
    let mut refused = Vec::new();
    for _ in 0..10 {
        let resp = open(&base, key).await;
        if resp.status() != 200 {
            refused.push(resp.status().as_u16());
            continue;
        }
        admitted += 1;
        let resp = read_all_pieces(resp).await;
        drop(resp);
        // The gateway noticed (it closed its upstream stream): the row is recorded by then.
        assert!(
            up.wait_for_disconnects(admitted, Duration::from_secs(10))
                .await
        );
    }
    (admitted, refused)
}

fn minute() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
}

/// A key with `max_budget` 0.045: each dropped stream costs 0.024, so the first two start (at
/// 0 and 0.024 spent) and every later one finds 0.048 >= 0.045 spent and is refused (422). Before
/// this item the streams cost 0 and all ten started.
async fn budget_counts_streams_the_client_drops(opts: BuildOptions) {
    let up = FakeUpstream::start().await;
    up.set_default(stream_then_hang());
    let gw = Gov::start(&config(&up.url(), ""), opts).await;
    let base = gw.url("");
    let (key, _) = new_key(&base, json!({"max_budget": 0.045})).await;

    let (admitted, refused) = ten_dropped_streams(&gw, &up, &key).await;
    eprintln!("budget 0.045: admitted {admitted} of 10 dropped streams");
    assert_eq!(admitted, 2, "refused: {refused:?}");
    assert!(refused.iter().all(|s| *s == 422), "{refused:?}");

    gw.flush().await;
    let rows = get(&gw.url(&format!("/spend/logs?api_key={key}")), Some(MASTER))
        .await
        .json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in rows {
        assert_cut_stream_row(r, "client_closed");
    }
    // The key's total holds them too.
    let info = get(&gw.url(&format!("/key/info?key={key}")), Some(MASTER))
        .await
        .json();
    let spent = info["info"]["spend"].as_f64().unwrap();
    assert!((spent - 2.0 * STREAM_COST).abs() < 1e-9, "{info}");
}

#[tokio::test]
async fn budget_counts_streams_the_client_drops_sqlite() {
    budget_counts_streams_the_client_drops(BuildOptions::default().database_url("sqlite::memory:"))
        .await;
}

/// The same on PostgreSQL (`LLMGATE_TEST_DATABASE_URL`): the new statuses are plain `status`
/// text in both schemas.
#[tokio::test]
async fn budget_counts_streams_the_client_drops_postgres() {
    let url = fresh_pg().await;
    budget_counts_streams_the_client_drops(BuildOptions::default().database_url(url)).await;
}

/// A key with `tpm_limit` 50: each dropped stream counts 14 tokens, so streams start at 0, 14,
/// 28 and 42 tokens used and the fifth finds 56 >= 50 (429): 4 of 10. Before this item the
/// streams counted 0 tokens and all ten started. A run that crosses a minute boundary (the tpm
/// window) is run again.
#[tokio::test]
async fn tpm_counts_streams_the_client_drops() {
    let up = FakeUpstream::start().await;
    up.set_default(stream_then_hang());
    let gw = Gov::start(
        &config(&up.url(), ""),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    for attempt in 0..3 {
        up.reset();
        up.set_default(stream_then_hang());
        let (key, _) = new_key(&base, json!({"tpm_limit": 50})).await;
        let start = minute();
        let (admitted, refused) = ten_dropped_streams(&gw, &up, &key).await;
        if minute() != start && attempt < 2 {
            continue;
        }
        eprintln!("tpm 50: admitted {admitted} of 10 dropped streams");
        assert_eq!(admitted, 4, "refused: {refused:?}");
        assert!(refused.iter().all(|s| *s == 429), "{refused:?}");
        gw.flush().await;
        let rows = get(&gw.url(&format!("/spend/logs?api_key={key}")), Some(MASTER))
            .await
            .json();
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 4, "{rows:?}");
        for r in rows {
            assert_cut_stream_row(r, "client_closed");
        }
        return;
    }
}

/// A stream dropped after the upstream's usage chunk is charged the usage the upstream reported
/// (5 + 7 tokens in `chat_sse`), not the estimate.
#[tokio::test]
async fn a_stream_dropped_after_its_usage_is_charged_the_reported_usage() {
    let up = FakeUpstream::start().await;
    // Everything but `[DONE]`, then nothing.
    let sse = chat_sse(&PIECES);
    let body = sse.trim_end().trim_end_matches("data: [DONE]").to_owned();
    up.set_default(Reply::sse_then_hang(body));
    let gw = Gov::start(
        &config(&up.url(), ""),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    let (key, _) = new_key(&base, json!({})).await;
    // The client asks for usage, so it sees when the usage chunk has passed the gateway.
    let body = json!({"model": "g", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]});
    let resp = open_with(&base, &key, &body).await;
    assert_eq!(resp.status(), 200);
    let resp = read_until(resp, |t| t.contains("\"prompt_tokens\":5")).await;
    drop(resp);
    assert!(up.wait_for_disconnect(Duration::from_secs(10)).await);
    gw.flush().await;
    let rows = get(&gw.url(&format!("/spend/logs?api_key={key}")), Some(MASTER))
        .await
        .json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["status"], "client_closed", "{r}");
    assert_eq!(r["prompt_tokens"], 5, "{r}");
    assert_eq!(r["completion_tokens"], 7, "{r}");
    let spend = r["spend"].as_f64().unwrap();
    assert!((spend - (5.0 * 0.001 + 7.0 * 0.002)).abs() < 1e-12, "{r}");
}

// ------------------------------------------------------------------------ the real binary

/// `llmgate --config <file> --graceful_timeout <grace>` on a free port; stderr collected.
struct Bin {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Bin {
    fn start(config: &Path, grace: &str) -> Self {
        let port = free_port();
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--graceful_timeout", grace])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL")
            .env_remove("LITELLM_MASTER_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let listening = line.contains("llmgate listening");
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
                drop(l);
                if listening {
                    let _ = tx.send(());
                }
            }
        });
        let ok = rx.recv_timeout(Duration::from_secs(60)).is_ok();
        assert!(ok, "llmgate did not start:\n{}", log.lock().unwrap());
        Self { child, port, log }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGTERM, then waits for the exit (at most 60 s); returns the log.
    async fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        let exit = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::task::spawn_blocking(move || child.wait()),
        )
        .await
        .expect("exits within 60 s")
        .unwrap()
        .unwrap();
        let log = self.log.lock().unwrap().clone();
        assert!(exit.success(), "exit {exit:?}:\n{log}");
        log
    }
}

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn rows_in(db_url: &str) -> Vec<SpendRow> {
    let store = Store::connect(db_url).await.unwrap();
    store
        .spend_logs(&SpendFilter {
            limit: 1000,
            ..SpendFilter::default()
        })
        .await
        .unwrap()
}

/// Restarts the binary on the same database; a call with `key` (budget 0.2) must be refused now
/// that the cut calls' spend is stored.
async fn budget_refuses_after_restart(cfg: &Path, key: &str, up: &FakeUpstream) {
    up.set_default(Reply::json(200, chat_completion("hello")));
    let bin = Bin::start(cfg, "5");
    let a = governance_common::chat(&bin.base(), key, "g").await;
    eprintln!("after restart: key with max_budget 0.2 gets {}", a.status);
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    bin.stop().await;
}

/// Ten streams that delivered every piece are in flight when the binary gets SIGTERM; its grace
/// period (1 s) ends before the upstream finishes, so the server cuts them. Each leaves a row
/// with status `cut_at_shutdown`, 14 tokens and 0.024 (0.24 in all), written before the process
/// exits; a key with `max_budget` 0.2 is refused after a restart. Before: ten rows `success`,
/// 0 tokens, 0 cost, and the key was admitted.
#[tokio::test]
async fn streams_cut_at_shutdown_of_the_binary_are_paid_for() {
    let up = FakeUpstream::start().await;
    up.set_default(stream_then_hang());
    let dir = TempDir::new();
    let db = format!("sqlite://{}?mode=rwc", dir.0.join("spend.db").display());
    let cfg = dir.0.join("config.yaml");
    std::fs::write(
        &cfg,
        config(&up.url(), &format!("  database_url: \"{db}\"\n")),
    )
    .unwrap();
    let bin = Bin::start(&cfg, "1");
    let base = bin.base();
    let (key, _) = new_key(&base, json!({"max_budget": 0.2})).await;

    let mut open_streams = Vec::new();
    for _ in 0..10 {
        let resp = open(&base, &key).await;
        assert_eq!(resp.status(), 200);
        open_streams.push(read_all_pieces(resp).await);
    }
    let log = bin.stop().await;
    assert!(log.contains("grace period over"), "{log}");
    drop(open_streams);

    let rows = rows_in(&db).await;
    let summary: Vec<(String, i64, f64)> = rows
        .iter()
        .map(|r| (r.status.clone(), r.total_tokens, r.spend))
        .collect();
    eprintln!("streams cut at shutdown: {} rows {summary:?}", rows.len());
    assert_eq!(rows.len(), 10, "{rows:?}");
    for r in &rows {
        assert_cut_stream_row(&serde_json::to_value(r).unwrap(), "cut_at_shutdown");
    }
    budget_refuses_after_restart(&cfg, &key, &up).await;
}

/// Ten calls that are not streams wait for a slow upstream (30 s) when the binary gets SIGTERM;
/// the grace period (1 s) ends first. Each leaves a row with status `cut_at_shutdown`, its
/// estimated prompt (4 tokens) and 0.004 (0.04 in all). Before: no row at all.
#[tokio::test]
async fn calls_cut_by_the_grace_period_get_their_rows() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("late")).delay(Duration::from_secs(30)));
    let dir = TempDir::new();
    let db = format!("sqlite://{}?mode=rwc", dir.0.join("spend.db").display());
    let cfg = dir.0.join("config.yaml");
    std::fs::write(
        &cfg,
        config(&up.url(), &format!("  database_url: \"{db}\"\n")),
    )
    .unwrap();
    let bin = Bin::start(&cfg, "1");
    let base = bin.base();
    let (key, _) = new_key(&base, json!({})).await;

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let req = http::Request::post(format!("{base}/v1/chat/completions"))
                .header("authorization", format!("Bearer {key}"))
                .body(Full::new(Bytes::from(
                    serde_json::to_vec(
                        &json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]}),
                    )
                    .unwrap(),
                )))
                .unwrap();
            tokio::spawn(client.request(req))
        })
        .collect();
    // All ten reached the upstream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while up.hits() < 10 {
        assert!(tokio::time::Instant::now() < deadline, "hits {}", up.hits());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = bin.stop().await;
    assert!(log.contains("grace period over"), "{log}");
    for c in calls {
        // The connection was closed without an answer.
        let answered = c.await.unwrap();
        assert!(answered.is_err(), "{answered:?}");
    }

    let rows = rows_in(&db).await;
    let summary: Vec<(String, i64, f64)> = rows
        .iter()
        .map(|r| (r.status.clone(), r.total_tokens, r.spend))
        .collect();
    eprintln!("calls cut at shutdown: {} rows {summary:?}", rows.len());
    assert_eq!(rows.len(), 10, "{rows:?}");
    for r in &rows {
        assert_eq!(r.status, "cut_at_shutdown", "{r:?}");
        assert_eq!(r.prompt_tokens, 4, "{r:?}");
        assert_eq!(r.completion_tokens, 0, "{r:?}");
        assert!((r.spend - 0.004).abs() < 1e-12, "{r:?}");
        assert_eq!(r.model_group, "g");
    }
}
