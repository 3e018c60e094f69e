//! The spend log: one row per call, written in batches off the request path.
//!
//! [`SpendLog::record`] never waits: it adds the row's cost to the in-process [`Ledger`] (so budgets
//! see it at once) and puts the row into a bounded channel. A background task ([`SpendWriter`])
//! takes rows in batches and writes each batch in one transaction, which also adds the batch's
//! cost to the key, team and user totals ([`SpendSink::write_spend`]). When the database is slow or
//! down the task retries the batch with backoff; rows wait in the channel meanwhile, and only rows
//! that arrive when the channel is full are dropped: counted ([`SpendStats::dropped`]) and logged.
//! A retried batch is never counted twice: the retry counts only the rows it stores
//! ([`SpendSink::rewrite_spend`]; rows are keyed by call id). A first attempt counts every row, also
//! one whose call id is already stored: a client may reuse `x-litellm-call-id`, and every call is
//! paid for.
//!
//! [`SpendWriter::shutdown`] drains the channel and writes what is left (retrying until its
//! deadline), so nothing in flight is lost on a graceful shutdown; the binary calls it after
//! `serve` returns.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use llmgate::spend::{SpendConfig, SpendWriter};
//! use llmgate::store::{SpendRow, Store};
//! let store = Store::connect("sqlite::memory:").await.unwrap();
//! let writer = SpendWriter::spawn(store.clone(), SpendConfig::default());
//! writer.log().record(SpendRow { request_id: "call-1".into(), status: "success".into(), ..Default::default() });
//! writer.flush().await;
//! assert_eq!(store.spend_log_count().await.unwrap(), 1);
//! let stats = writer.shutdown(std::time::Duration::from_secs(5)).await;
//! assert_eq!(stats.dropped, 0);
//! # });
//! ```

mod ledger;

pub use self::ledger::Ledger;

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot, Notify};
use tracing::Instrument as _;

use crate::store::{SpendRow, SpendSink, SpendTotals};

/// Counters of the spend writer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpendStats {
    /// Rows written.
    pub written: u64,
    /// Rows dropped because the channel was full (or left unwritten at shutdown).
    pub dropped: u64,
    /// Failed batch writes (each retried).
    pub failed_writes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    failed_writes: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> SpendStats {
        SpendStats {
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed_writes: self.failed_writes.load(Ordering::Relaxed),
        }
    }
}

/// How the spend writer batches.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SpendConfig {
    /// Rows that may wait for the database (default 100 000). Past it, rows are dropped.
    pub capacity: usize,
    /// Rows per transaction (default 500).
    pub batch_size: usize,
    /// How long the writer gathers rows after the first one before it writes them (default
    /// 500 ms; LiteLLM's `general_settings.proxy_batch_write_at`). One transaction per interval
    /// instead of one per request keeps the database's cost off the per-request budget; budgets
    /// don't wait for it (the ledger counts a row the moment it is recorded). A batch that fills
    /// up, a flush and shutdown write at once.
    pub linger: Duration,
    /// First retry delay after a failed write (default 100 ms, doubling to `max_backoff`).
    pub backoff: Duration,
    /// Longest retry delay (default 5 s).
    pub max_backoff: Duration,
    /// Whether each call's row is stored (default true). Off (LiteLLM's
    /// `general_settings.disable_spend_logs`), only the key, team and user totals are updated.
    pub logs: bool,
}

impl Default for SpendConfig {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            batch_size: 500,
            linger: Duration::from_millis(500),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            logs: true,
        }
    }
}

impl SpendConfig {
    /// Sets the channel bound.
    #[must_use]
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n.max(1);
        self
    }

    /// Sets the batch size.
    #[must_use]
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Sets how long rows gather before a write (zero: write as soon as rows arrive).
    #[must_use]
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sets whether each call's row is stored (`false`: totals only).
    #[must_use]
    pub fn logs(mut self, on: bool) -> Self {
        self.logs = on;
        self
    }
}

enum Msg {
    Row(Box<SpendRow>),
    Flush(oneshot::Sender<()>),
}

/// Called after each committed batch with the totals it added (the key cache adds them to its
/// entries), before the ledger lets go of them.
pub type OnCommit = Arc<dyn Fn(&SpendTotals) + Send + Sync>;

/// The sending side: cheap to clone, never waits. See the [module docs](self).
#[derive(Clone)]
pub struct SpendLog {
    tx: mpsc::Sender<Msg>,
    ledger: Arc<Ledger>,
    counters: Arc<Counters>,
    /// Wakes a lingering writer when a batch is full or a flush is asked (see `gather`).
    wake: Arc<Notify>,
    /// Queued rows that make a full batch with the one the writer already holds.
    wake_at: usize,
}

impl fmt::Debug for SpendLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpendLog")
            .field("stats", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

impl SpendLog {
    /// Queues a row; its cost counts against budgets at once.
    pub fn record(&self, row: SpendRow) {
        self.ledger.add_row(&row);
        let sent = self.tx.try_send(Msg::Row(Box::new(row)));
        if sent.is_ok() && self.tx.max_capacity() - self.tx.capacity() >= self.wake_at {
            self.wake.notify_one();
        }
        if let Err(e) = sent {
            let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Log the first drop and then every 1000th, so a long outage cannot flood the log.
            if n == 1 || n.is_multiple_of(1000) {
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "the spend-log queue is full",
                    mpsc::error::TrySendError::Closed(_) => "the spend writer has stopped",
                };
                tracing::error!(dropped_total = n, "spend-log row dropped: {why}");
            }
        }
    }

    /// Spend not yet written to the database.
    #[must_use]
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> SpendStats {
        self.counters.snapshot()
    }
}

/// The background writer's handle: flush, stats, shutdown. See the [module docs](self).
#[must_use]
pub struct SpendWriter {
    log: SpendLog,
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
    deadline: Arc<parking_deadline::Deadline>,
}

impl fmt::Debug for SpendWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpendWriter")
            .field("stats", &self.log.stats())
            .finish_non_exhaustive()
    }
}

mod parking_deadline {
    use std::sync::Mutex;

    /// The shutdown deadline, set once by `shutdown` and read by the writer task (never held
    /// across an await).
    #[derive(Debug, Default)]
    pub(super) struct Deadline(Mutex<Option<tokio::time::Instant>>);

    impl Deadline {
        pub(super) fn set(&self, at: tokio::time::Instant) {
            if let Ok(mut g) = self.0.lock() {
                *g = Some(at);
            }
        }

        pub(super) fn get(&self) -> Option<tokio::time::Instant> {
            self.0.lock().ok().and_then(|g| *g)
        }
    }
}

impl SpendWriter {
    /// Starts the writer task on the current runtime, writing into `store` (the SQL
    /// [`Store`](crate::store::Store), an [`InMemoryStore`](crate::store::InMemoryStore) or any
    /// [`SpendSink`]).
    pub fn spawn(store: impl SpendSink, config: SpendConfig) -> Self {
        Self::spawn_with(store, config, None)
    }

    /// [`SpendWriter::spawn`] with a hook run after each committed batch.
    pub fn spawn_with(
        store: impl SpendSink,
        config: SpendConfig,
        on_commit: Option<OnCommit>,
    ) -> Self {
        let store: Arc<dyn SpendSink> = Arc::new(store);
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let log = SpendLog {
            tx,
            ledger: Arc::default(),
            counters: Arc::default(),
            wake: Arc::default(),
            wake_at: config.batch_size.saturating_sub(1).max(1),
        };
        let stop = Arc::new(Notify::new());
        let deadline = Arc::new(parking_deadline::Deadline::default());
        let task = tokio::spawn(
            run(
                store,
                config,
                rx,
                log.wake.clone(),
                log.ledger.clone(),
                log.counters.clone(),
                stop.clone(),
                deadline.clone(),
                on_commit,
            )
            .instrument(tracing::info_span!("spend_writer")),
        );
        Self {
            log,
            stop,
            task,
            deadline,
        }
    }

    /// The sending side, for the cost layer.
    pub fn log(&self) -> SpendLog {
        self.log.clone()
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> SpendStats {
        self.log.stats()
    }

    /// Waits until every row recorded before this call is written (or dropped).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.log.tx.send(Msg::Flush(tx)).await.is_ok() {
            self.log.wake.notify_one();
            let _ = rx.await;
        }
    }

    /// Stops the writer: writes every queued row, retrying failed writes until `timeout` has
    /// passed, then returns the counters (rows still unwritten then count as dropped).
    pub async fn shutdown(self, timeout: Duration) -> SpendStats {
        self.deadline.set(tokio::time::Instant::now() + timeout);
        self.stop.notify_one();
        let _ = self.task.await;
        let stats = self.log.stats();
        tracing::info!(
            written = stats.written,
            dropped = stats.dropped,
            failed_writes = stats.failed_writes,
            "spend writer stopped"
        );
        stats
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    store: Arc<dyn SpendSink>,
    config: SpendConfig,
    mut rx: mpsc::Receiver<Msg>,
    wake: Arc<Notify>,
    ledger: Arc<Ledger>,
    counters: Arc<Counters>,
    stop: Arc<Notify>,
    deadline: Arc<parking_deadline::Deadline>,
    on_commit: Option<OnCommit>,
) {
    let mut msgs = Vec::with_capacity(config.batch_size);
    let mut stopping = false;
    loop {
        if !stopping {
            tokio::select! {
                biased;
                () = stop.notified() => stopping = true,
                n = rx.recv_many(&mut msgs, config.batch_size) => {
                    if n == 0 {
                        stopping = true;
                    }
                }
            }
            if !stopping && !config.linger.is_zero() {
                stopping = gather(&mut rx, &mut msgs, &config, &stop, &wake).await;
            }
        }
        if stopping {
            // Drain what is queued now, then finish.
            while msgs.len() < config.batch_size {
                match rx.try_recv() {
                    Ok(m) => msgs.push(m),
                    Err(_) => break,
                }
            }
        }
        let mut rows = Vec::with_capacity(msgs.len());
        let mut flushes = Vec::new();
        for m in msgs.drain(..) {
            match m {
                Msg::Row(r) => rows.push(*r),
                Msg::Flush(tx) => flushes.push(tx),
            }
        }
        if !rows.is_empty() {
            write_with_retry(
                &*store,
                &config,
                &rows,
                &ledger,
                &counters,
                &deadline,
                on_commit.as_ref(),
            )
            .await;
        }
        for f in flushes {
            let _ = f.send(());
        }
        if stopping && rx.is_empty() {
            return;
        }
    }
}

/// Gathers rows into `msgs` for up to `config.linger` after the first row, until the batch is
/// full or a flush asks for a write now. Returns true when the writer should stop.
///
/// Rows arriving meanwhile are not received one by one: each receive would wake this task, which
/// runs on another thread than the requests, once per request. The senders wake it only when a
/// batch's worth is queued or a flush is asked; otherwise the queue is drained when the linger
/// ends.
async fn gather(
    rx: &mut mpsc::Receiver<Msg>,
    msgs: &mut Vec<Msg>,
    config: &SpendConfig,
    stop: &Notify,
    wake: &Notify,
) -> bool {
    let until = tokio::time::Instant::now() + config.linger;
    let flush_asked = |m: &[Msg]| m.iter().any(|m| matches!(m, Msg::Flush(_)));
    loop {
        if msgs.len() >= config.batch_size || flush_asked(msgs) {
            return false;
        }
        let lingered = tokio::select! {
            biased;
            () = stop.notified() => return true,
            () = wake.notified() => false,
            () = tokio::time::sleep_until(until) => true,
        };
        // Take what is queued now (a wake-up may be early: a permit left from before).
        while msgs.len() < config.batch_size {
            match rx.try_recv() {
                Ok(m) => msgs.push(m),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return true,
            }
        }
        if lingered {
            return false;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_with_retry(
    store: &dyn SpendSink,
    config: &SpendConfig,
    rows: &[SpendRow],
    ledger: &Ledger,
    counters: &Counters,
    deadline: &parking_deadline::Deadline,
    on_commit: Option<&OnCommit>,
) {
    let mut backoff = config.backoff;
    let mut retry = false;
    loop {
        let written = match (config.logs, retry) {
            (true, false) => store.write_spend(rows).await,
            // The failed attempt may have committed: count only what this one stores.
            (true, true) => store.rewrite_spend(rows).await,
            (false, _) => store.add_spend(rows).await,
        };
        retry = true;
        match written {
            Ok(totals) => {
                counters
                    .written
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
                if let Some(hook) = on_commit {
                    hook(&totals);
                }
                for r in rows {
                    ledger.settle_row(r);
                }
                return;
            }
            Err(e) => {
                counters.failed_writes.fetch_add(1, Ordering::Relaxed);
                let now = tokio::time::Instant::now();
                if deadline.get().is_some_and(|d| now >= d) {
                    counters
                        .dropped
                        .fetch_add(rows.len() as u64, Ordering::Relaxed);
                    tracing::error!(rows = rows.len(), error = %e, "spend rows lost: the database is unavailable and the shutdown deadline passed");
                    return;
                }
                tracing::warn!(rows = rows.len(), retry_in_ms = backoff.as_millis() as u64, error = %e, "spend-log write failed; retrying");
                let wait = deadline
                    .get()
                    .map_or(backoff, |d| backoff.min(d.saturating_duration_since(now)));
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::{SpendRow, Store};

    fn row(id: &str) -> SpendRow {
        SpendRow {
            request_id: id.to_owned(),
            api_key: "hash-of-k".to_owned(),
            model_group: "g".to_owned(),
            spend: 0.5,
            ..SpendRow::default()
        }
    }

    /// Waits up to 10 s for `n` spend-log rows in the store; fails with `why` otherwise.
    async fn wait_for_rows(store: &Store, n: i64, why: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.spend_log_count().await.unwrap() < n {
            assert!(std::time::Instant::now() < deadline, "{why}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn store() -> Store {
        Store::connect("sqlite::memory:").await.unwrap()
    }

    #[tokio::test]
    async fn rows_gather_for_the_linger_and_a_flush_writes_them_at_once() {
        let store = store().await;
        let config = SpendConfig::default().linger(Duration::from_secs(30));
        let writer = SpendWriter::spawn(store.clone(), config);
        for id in ["a", "b", "c"] {
            writer.log().record(row(id));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Gathering: nothing written yet, yet the ledger counts the spend already.
        assert_eq!(store.spend_log_count().await.unwrap(), 0);
        assert!((writer.log().ledger().key("hash-of-k") - 1.5).abs() < 1e-9);
        let started = std::time::Instant::now();
        writer.flush().await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(store.spend_log_count().await.unwrap(), 3);
        assert_eq!(writer.stats().written, 3);
        // Written: the ledger lets go of it.
        assert!(writer.log().ledger().key("hash-of-k").abs() < 1e-9);
    }

    #[tokio::test]
    async fn rows_that_arrive_while_lingering_are_written_when_the_linger_ends() {
        let store = store().await;
        let config = SpendConfig::default().linger(Duration::from_millis(300));
        let writer = SpendWriter::spawn(store.clone(), config);
        writer.log().record(row("a"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The writer holds "a" and lingers; these are queued, not received one by one.
        writer.log().record(row("b"));
        writer.log().record(row("c"));
        assert_eq!(store.spend_log_count().await.unwrap(), 0);
        wait_for_rows(&store, 3, "rows were left queued").await;
        let stats = writer.shutdown(Duration::from_secs(5)).await;
        assert_eq!(stats.written, 3);
    }

    #[tokio::test]
    async fn a_full_batch_is_written_without_waiting_for_the_linger() {
        let store = store().await;
        let config = SpendConfig::default()
            .linger(Duration::from_secs(30))
            .batch_size(2);
        let writer = SpendWriter::spawn(store.clone(), config);
        writer.log().record(row("a"));
        writer.log().record(row("b"));
        wait_for_rows(&store, 2, "the full batch waited").await;
        let stats = writer.shutdown(Duration::from_secs(5)).await;
        assert_eq!(stats.written, 2);
    }

    #[tokio::test]
    async fn shutdown_writes_rows_still_gathering() {
        let store = store().await;
        let config = SpendConfig::default().linger(Duration::from_secs(30));
        let writer = SpendWriter::spawn(store.clone(), config);
        writer.log().record(row("a"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stats = writer.shutdown(Duration::from_secs(5)).await;
        assert_eq!(stats.written, 1);
        assert_eq!(store.spend_log_count().await.unwrap(), 1);
    }

    /// A sink whose first write fails after storing the batch (a commit reported as failed):
    /// records which method each attempt used.
    #[derive(Debug, Default)]
    struct FailsOnce {
        inner: crate::store::InMemoryStore,
        calls: std::sync::Mutex<Vec<&'static str>>,
    }

    impl SpendSink for FailsOnce {
        fn write_spend<'a>(
            &'a self,
            rows: &'a [SpendRow],
        ) -> crate::store::StoreFuture<'a, SpendTotals> {
            self.calls.lock().unwrap().push("write");
            Box::pin(async move {
                let first = self.calls.lock().unwrap().len() == 1;
                let totals = self.inner.write_spend(rows).await?;
                if first {
                    return Err(crate::store::StoreError::msg("commit reported as failed"));
                }
                Ok(totals)
            })
        }
        fn rewrite_spend<'a>(
            &'a self,
            rows: &'a [SpendRow],
        ) -> crate::store::StoreFuture<'a, SpendTotals> {
            self.calls.lock().unwrap().push("rewrite");
            self.inner.rewrite_spend(rows)
        }
        fn add_spend<'a>(
            &'a self,
            rows: &'a [SpendRow],
        ) -> crate::store::StoreFuture<'a, SpendTotals> {
            self.calls.lock().unwrap().push("add");
            self.inner.add_spend(rows)
        }
        fn proxy_budget<'a>(
            &'a self,
            max_budget: f64,
            budget_duration: Option<&'a str>,
        ) -> crate::store::StoreFuture<'a, crate::store::BudgetState> {
            self.inner.proxy_budget(max_budget, budget_duration)
        }
        fn proxy_budget_state(
            &self,
        ) -> crate::store::StoreFuture<'_, Option<crate::store::BudgetState>> {
            self.inner.proxy_budget_state()
        }
    }

    #[tokio::test]
    async fn a_failed_batch_is_retried_once_counted_over_any_sink() {
        let sink = Arc::new(FailsOnce::default());
        let config = SpendConfig::default().linger(Duration::ZERO).batch_size(10);
        let totals = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = totals.clone();
        let on_commit: OnCommit = Arc::new(move |t: &SpendTotals| {
            seen.lock()
                .unwrap()
                .push(t.keys.get("hash-of-k").copied().unwrap_or(0.0));
        });
        let writer = SpendWriter::spawn_with(sink.clone(), config, Some(on_commit));
        writer.log().record(row("a"));
        writer.log().record(row("b"));
        writer.flush().await;
        // The first attempt stored the rows but failed; the retry stores nothing new and adds
        // nothing: the batch is counted once (by the failed attempt, which did commit).
        assert_eq!(*sink.calls.lock().unwrap(), ["write", "rewrite"]);
        assert_eq!(*totals.lock().unwrap(), [0.0]);
        assert_eq!(sink.inner.spend_log_count(), 2);
        // Written: the ledger lets go of it.
        assert!(writer.log().ledger().key("hash-of-k").abs() < 1e-9);
        let stats = writer.shutdown(Duration::from_secs(5)).await;
        assert_eq!(stats.failed_writes, 1);
        assert_eq!(stats.written, 2);
        assert_eq!(stats.dropped, 0);
    }
}
