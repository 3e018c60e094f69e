//! The bounded queue and batching task every sink runs on.

use std::{
    fmt,
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::sync::mpsc;

use crate::callbacks::{CallRecord, Sink};

/// Default queue capacity (records) of a sink.
pub const DEFAULT_QUEUE: usize = 10_000;
/// Default batch size: a batch is written once this many records wait, or at the interval.
pub const DEFAULT_BATCH: usize = 512;
/// Default flush interval.
pub const DEFAULT_FLUSH: Duration = Duration::from_secs(1);

/// A sink's counters: queued, dropped (queue full or closed), written, failed.
#[derive(Debug, Default)]
pub struct SinkStats {
    queued: AtomicU64,
    dropped: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
    batches: AtomicU64,
}

impl SinkStats {
    /// Records accepted into the queue.
    #[must_use]
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Acquire)
    }

    /// Records dropped because the queue was full (the destination is slower than the
    /// traffic) or the writer had stopped.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Acquire)
    }

    /// Records the destination accepted.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Records in batches the destination refused or could not be reached for.
    #[must_use]
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Acquire)
    }

    /// Batches attempted.
    #[must_use]
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Acquire)
    }
}

/// Writes one batch to a destination.
pub trait BatchWriter: Send + 'static {
    /// Writes `batch`; `Err` names why (the whole batch counts as failed).
    fn write(
        &mut self,
        batch: &[Arc<CallRecord>],
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// How a sink queues and batches.
#[derive(Clone, Copy, Debug)]
pub struct QueueOptions {
    /// Queue capacity (records); past it records are dropped and counted.
    pub capacity: usize,
    /// Records per batch.
    pub batch: usize,
    /// Longest wait before a partial batch is written.
    pub flush: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_QUEUE,
            batch: DEFAULT_BATCH,
            flush: DEFAULT_FLUSH,
        }
    }
}

/// A sink: a bounded queue in front of a [`BatchWriter`] running on its own task.
pub struct QueuedSink {
    name: &'static str,
    tx: mpsc::Sender<Arc<CallRecord>>,
    stats: Arc<SinkStats>,
    content: bool,
    success: bool,
    failure: bool,
}

impl fmt::Debug for QueuedSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuedSink")
            .field("name", &self.name)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl QueuedSink {
    /// Starts `writer`'s task on the current Tokio runtime.
    ///
    /// # Panics
    /// Outside a Tokio runtime (as `tokio::spawn`).
    pub fn start<W: BatchWriter>(name: &'static str, writer: W, opts: QueueOptions) -> Self {
        let (tx, rx) = mpsc::channel(opts.capacity.max(1));
        let stats = Arc::new(SinkStats::default());
        tokio::spawn(run(name, writer, rx, stats.clone(), opts));
        Self {
            name,
            tx,
            stats,
            content: false,
            success: true,
            failure: true,
        }
    }

    /// Whether records carry message content for this sink.
    #[must_use]
    pub fn with_content(mut self, on: bool) -> Self {
        self.content = on;
        self
    }

    /// Which calls reach this sink.
    #[must_use]
    pub fn events(mut self, success: bool, failure: bool) -> Self {
        self.success = success;
        self.failure = failure;
        self
    }

    /// The sink's counters.
    #[must_use]
    pub fn counters(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }
}

impl Sink for QueuedSink {
    fn offer(&self, record: &Arc<CallRecord>) {
        match self.tx.try_send(record.clone()) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::AcqRel);
            }
            Err(_) => {
                let n = self.stats.dropped.fetch_add(1, Ordering::AcqRel);
                // Say so, but not once per record.
                if n.is_power_of_two() {
                    tracing::warn!(
                        sink = self.name,
                        dropped = n + 1,
                        "logging sink queue full; records dropped"
                    );
                }
            }
        }
    }

    fn wants_content(&self) -> bool {
        self.content
    }

    fn on_success(&self) -> bool {
        self.success
    }

    fn on_failure(&self) -> bool {
        self.failure
    }

    fn name(&self) -> &str {
        self.name
    }

    fn stats(&self) -> Option<Arc<SinkStats>> {
        Some(self.stats.clone())
    }
}

async fn run<W: BatchWriter>(
    name: &'static str,
    mut writer: W,
    mut rx: mpsc::Receiver<Arc<CallRecord>>,
    stats: Arc<SinkStats>,
    opts: QueueOptions,
) {
    let mut batch = Vec::with_capacity(opts.batch);
    loop {
        // Wait for the first record, then fill the batch until it is full or `flush` passed.
        let Some(first) = rx.recv().await else {
            return;
        };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + opts.flush;
        while batch.len() < opts.batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) => batch.push(r),
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        stats.batches.fetch_add(1, Ordering::AcqRel);
        match writer.write(&batch).await {
            Ok(()) => {
                stats.written.fetch_add(n, Ordering::AcqRel);
            }
            Err(e) => {
                stats.failed.fetch_add(n, Ordering::AcqRel);
                tracing::warn!(sink = name, records = n, error = %e, "logging sink batch failed");
            }
        }
        batch.clear();
    }
}
