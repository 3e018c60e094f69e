//! `llmgate-mock`: a mock OpenAI / Anthropic upstream for load benchmarks and manual testing.
//!
//! Prints `listening on http://ADDR` (or `https://ADDR` with `--tls-cert`) on stdout once it
//! accepts connections (use `--port 0` for a free port), then serves until SIGINT / SIGTERM.
//!
//! With `--tls-cert` and `--tls-key` (PEM files) it serves TLS and offers HTTP/2 and HTTP/1.1 by
//! ALPN: the load benchmark's TLS + HTTP/2 upstream (`benches/load/run.sh` makes a throw-away CA
//! with openssl and hands its certificate to the gateway through `SSL_CERT_FILE`).
//!
//! Not part of the library: it lives in this binary only (see docs/architecture.md, "The upstream
//! client level"); tests run the binary.
//!
//! The mock: a real HTTP server that answers like OpenAI and Anthropic, fast enough never
//! to be the bottleneck of a load benchmark.
//!
//! The load harness (`benches/load/`) calls it directly, through llmgate, through a bare
//! pass-through proxy and through LiteLLM's proxy. Every answer is serialized once at start-up; a request costs one small JSON scan (for `stream` and
//! `stream_options.include_usage`) and a reference-counted copy of the prepared bytes.
//!
//! Endpoints (with or without `/v1`):
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /v1/chat/completions` | a `chat.completion`; with `"stream": true`, SSE with `chunks` content chunks `chunk_delay` apart, a finish chunk, a usage chunk when `stream_options.include_usage` is set, and `data: [DONE]` |
//! | `POST /v1/messages` | an Anthropic `message`; with `"stream": true`, Anthropic SSE events (`message_start` … `message_stop`) with `chunks` text deltas |
//! | `POST /v1/embeddings` | one embedding of `embedding_dims` floats |
//! | `GET /v1/models` | a model list |
//! | `GET /health` | `{"status":"ok"}` |
//!
//! Behaviour is set by `MockOptions` (the flags below) and can be changed per request, either
//! by headers or by a path prefix. The prefix form lets a gateway's `api_base` carry the settings,
//! since gateways do not forward their clients' headers:
//!
//! | option | header | path key |
//! | --- | --- | --- |
//! | latency before the first byte | `x-mock-latency-ms` | `latency_ms` |
//! | content chunks per stream | `x-mock-chunks` | `chunks` |
//! | delay between chunks | `x-mock-chunk-delay-ms` | `chunk_delay_ms` |
//! | error status | `x-mock-status` | `status` |
//! | share of requests failing with it (default 1) | `x-mock-error-rate` | `error_rate` |
//! | `retry-after` seconds on errors | `x-mock-retry-after` | `retry_after` |
//! | share of requests whose connection is reset | `x-mock-reset-rate` | `reset_rate` |
//! | stamp streamed chunks with their send time (`1`/`0`) | `x-mock-stamp` | `stamp` |
//!
//! ```text
//! POST /mock/latency_ms=20,chunks=50,chunk_delay_ms=5/v1/chat/completions
//! ```
//!
//! With `stamp`, every streamed content chunk after the first carries one more top-level field,
//! `"mock_sent_ns"`: the wall-clock time in nanoseconds since the Unix epoch at which the mock
//! handed the chunk to its connection. A client on the same machine subtracts it from its own
//! clock at arrival to time each chunk's trip, free of the mock timer's jitter (the load
//! benchmark's per-chunk delay and jitter).
//!
//! A reset closes the TCP connection with `RST` (`SO_LINGER` 0) without answering. Errors are the
//! provider's error JSON (`{"error":{...}}` for OpenAI routes, `{"type":"error",...}` for
//! Anthropic) with the status asked for.

use std::{process::ExitCode, time::Duration};

use clap::Parser;

// The same allocator and log set-up as the llmgate binary (its own modules, shared by path), so
// that the comparison is like for like.
#[allow(dead_code)]
#[path = "../llmgate/alloc.rs"]
mod alloc;
#[allow(dead_code)]
#[path = "../llmgate/log.rs"]
mod log;

#[global_allocator]
static GLOBAL: alloc::MiMalloc = alloc::MiMalloc;

mod options;
mod responses;
mod server;

use options::MockOptions;

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
    /// Serve TLS with this certificate chain (PEM), offering HTTP/2 and HTTP/1.1 by ALPN.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

/// The TLS acceptor for `--tls-cert` / `--tls-key`: h2 and http/1.1 by ALPN.
fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("--tls-cert: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
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
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match tls_acceptor(cert, key) {
            Ok(acceptor) => Some(acceptor),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
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
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("listening on {scheme}://{addr}");
        server::serve(listener, options, tls, llmgate::server::shutdown_signal())
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
