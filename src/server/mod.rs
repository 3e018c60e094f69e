//! The HTTP edge: [`OpenAiServer`] and [`serve`] with graceful shutdown.
//!
//! `OpenAiServer` is a plain `tower::Service<http::Request<B>>`: serve it with [`serve`], mount it in
//! hyper-util yourself, or nest it in an axum `Router` beside your own routes:
//!
//! ```no_run
//! use axum::Router;
//! use llmgate::server::OpenAiServer;
//! # fn model_stack() -> llmgate::router::Router { llmgate::router::Router::builder().build() }
//! let api = OpenAiServer::new(model_stack());
//! let app: Router = Router::new()
//!     .route("/hello", axum::routing::get(|| async { "hi" }))
//!     .route_service("/v1/chat/completions", api.clone())
//!     .route_service("/v1/models", api);
//! ```

mod access;
mod body;
mod call_id;
mod dialect;
mod handle;
pub mod headers;
mod json;
mod parse_errors;
mod readiness;
mod serve;
mod service;
mod surface;

#[cfg(feature = "gateway")]
pub(crate) use self::serve::timeout_setting;
pub use self::{
    body::{encode_chunk, encode_error, ServerBody},
    call_id::new_call_id,
    handle::{LargeBodyHooks, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_MAX_BODY_BYTES},
    headers::presented_key,
    json::{error_response, iso, parse_json},
    parse_errors::JsonParseErrors,
    readiness::Readiness,
    serve::{bind_listeners, grace_over, serve, serve_per_thread, shutdown_signal, ServeConfig},
    service::{
        CacheControlHeader, CallId, NotFound, OnRefusal, OpenAiServer, ReceivedAt, RequestTimeout,
        ServerFuture,
    },
    surface::EdgeSettings,
};
