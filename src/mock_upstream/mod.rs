//! A mock LLM provider: a real HTTP server that answers like OpenAI and Anthropic, fast enough never
//! to be the bottleneck of a load benchmark.
//!
//! It is what the `llmgate-mock` binary serves and what the load harness (`benches/load/`) calls
//! directly, through llmgate, through a bare pass-through proxy and through LiteLLM's proxy. Every
//! answer is serialized once at start-up; a request costs one small JSON scan (for `stream` and
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
//! Behaviour is set by [`MockOptions`] (the binary's flags) and can be changed per request, either
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
//!
//! # Example
//!
//! ```no_run
//! use llmgate::mock_upstream::{self, MockOptions};
//! use std::time::Duration;
//!
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("http://{}/v1", listener.local_addr()?);
//! let options = MockOptions {
//!     chunks: 50,
//!     chunk_delay: Duration::from_millis(5),
//!     ..MockOptions::default()
//! };
//! tokio::spawn(mock_upstream::serve(listener, options, std::future::pending()));
//! // point an `openai/` deployment's api_base at `url`
//! # Ok(()) }
//! ```

mod options;
mod responses;
mod server;

pub use self::{options::MockOptions, server::serve};
