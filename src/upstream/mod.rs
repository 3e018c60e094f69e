//! The upstream HTTP client: how the gateway reaches providers over the network.
//!
//! [`HttpClient`] is a `tower::Service<http::Request<Full<Bytes>>>` answering
//! `http::Response<`[`UpstreamBody`]`>`; the provider translations
//! ([`crate::provider`]) sit on top of it and never see a socket. This level owns everything
//! about connections:
//!
//! - pooling: hyper-util's client for `https://` (HTTP/1.1 and HTTP/2 by ALPN), a lighter
//!   per-thread HTTP/1.1 pool for plain `http://` (`h1_pool`);
//! - TLS: the root certificates (webpki roots by default; a CA bundle from `SSL_CERT_FILE` /
//!   `SSL_CERT_DIR` or LiteLLM's `ssl_verify: <path>`), verification switched off by
//!   `ssl_verify: false`, and client certificates (`ssl_certificate`), see [`TlsSettings`];
//! - proxies: `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY`, see [`ProxySettings`];
//! - request bodies: [`RequestBody`], complete bytes (every call the gateway encodes) or a stream
//!   of frames (a pass-through upload, sent on as it arrives, with backpressure). A stream rides
//!   on the `http::Request<Full<Bytes>>` every client service takes as a [`StreamedBody`]
//!   request extension, so providers and test doubles keep their one signature.
//!
//! [`HttpClient::new`] reads no environment (webpki roots, no proxy); the gateway binary builds
//! its client with [`HttpClient::from_config`], which reads the environment once and the
//! config's TLS keys.

mod body;
mod error;
mod h1_pool;
mod http_client;
mod proxy;
mod tls;

#[cfg(feature = "gateway")]
pub(crate) use self::http_client::HostPort;
pub use self::{
    body::{RequestBody, StreamedBody, UpstreamBody},
    error::UpstreamConfigError,
    http_client::{HttpClient, HttpClientBuilder, HttpFuture},
    proxy::{ProxyError, ProxySettings},
    tls::{TlsError, TlsSettings},
};

use bytes::Bytes;
use http_body_util::Full;

use crate::error::BoxError;

/// Bounds of an HTTP client service the gateway (and its health probes) can call providers
/// through: [`HttpClient`], or any test double.
pub trait UpstreamClient<B>:
    tower_service::Service<
        http::Request<Full<Bytes>>,
        Response = http::Response<B>,
        Error: Into<BoxError>,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<C, B> UpstreamClient<B> for C where
    C: tower_service::Service<
            http::Request<Full<Bytes>>,
            Response = http::Response<B>,
            Error: Into<BoxError>,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}
