//! `llmgate-mock`: a mock OpenAI / Anthropic upstream for load benchmarks and manual testing.
//!
//! Prints `listening on http://ADDR` on stdout once it accepts connections (use `--port 0` for a
//! free port), then serves until SIGINT / SIGTERM. See `llmgate::mock_upstream` for the routes and
//! the per-request overrides.

use std::{process::ExitCode, time::Duration};

use clap::Parser;

// The same allocator and log set-up as the llmgate binary (its own modules, shared by path), so
// that the comparison is like for like.
#[allow(dead_code)]
#[path = "llmgate/alloc.rs"]
mod alloc;
#[allow(dead_code)]
#[path = "llmgate/log.rs"]
mod log;

#[global_allocator]
static GLOBAL: alloc::MiMalloc = alloc::MiMalloc;
use llmgate::mock_upstream::{self, MockOptions};

/// A mock LLM provider (OpenAI chat and embeddings, Anthropic messages) with latency, streaming
/// pace and error injection.
#[derive(Debug, Parser)]
#[command(name = "llmgate-mock", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, short = 'p', default_value_t = 8000)]
    port: u16,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Milliseconds before the first byte of every answer.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Content chunks per streamed answer.
    #[arg(long, default_value_t = 10)]
    chunks: usize,
    /// Milliseconds between two streamed chunks.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Answer with this HTTP status and the provider's error JSON.
    #[arg(long)]
    error_status: Option<u16>,
    /// Share of requests (0 to 1) that get --error-status.
    #[arg(long, default_value_t = 1.0)]
    error_rate: f64,
    /// `retry-after` seconds sent with errors.
    #[arg(long)]
    retry_after: Option<u64>,
    /// Share of requests (0 to 1) whose connection is reset without an answer.
    #[arg(long, default_value_t = 0.0)]
    reset_rate: f64,
    /// Floats per embedding.
    #[arg(long, default_value_t = 16)]
    embedding_dims: usize,
    /// Stamp streamed content chunks with `"mock_sent_ns"` (wall-clock send time).
    #[arg(long)]
    stamp: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let _log = log::init_tracing();
    let options = MockOptions {
        latency: Duration::from_millis(args.latency_ms),
        chunks: args.chunks,
        chunk_delay: Duration::from_millis(args.chunk_delay_ms),
        error_status: args.error_status,
        error_rate: args.error_rate.clamp(0.0, 1.0),
        retry_after: args.retry_after,
        reset_rate: args.reset_rate.clamp(0.0, 1.0),
        embedding_dims: args.embedding_dims.min(1 << 16),
        stamp: args.stamp,
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.threads.filter(|n| *n > 0) {
        rt.worker_threads(n);
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("no local address: {e}"))?;
        println!("listening on http://{addr}");
        mock_upstream::serve(listener, options, llmgate::server::shutdown_signal())
            .await
            .map_err(|e| format!("mock server error: {e}"))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
