//! [`HttpClient`]: pooled keep-alive connections; over TLS hyper-util's client with rustls (HTTP/1.1
//! and HTTP/2 by ALPN), over plain HTTP a lighter pool of HTTP/1.1 connections ([`super::h1_pool`]).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioTimer},
};
use thread_local::ThreadLocal;

use super::h1_pool::{self, PoolConfig, PoolSource, ThreadPool, UpstreamBody};
use crate::error::BoxError;

/// The default upstream HTTP client: pooled keep-alive connections, TCP_NODELAY, rustls (no
/// OpenSSL) with the webpki roots, HTTP/2 when the server offers it by ALPN, HTTP/1.1 otherwise.
///
/// A `tower::Service<http::Request<Full<Bytes>>>` answering `http::Response<`[`UpstreamBody`]`>`;
/// cloning shares the pools.
///
/// `https://` URLs go through hyper-util's client. Plain `http://` URLs (local model servers,
/// in-cluster upstreams) always speak HTTP/1.1 and go through a lighter pool built on hyper's
/// connection API: no hashing, locking or task spawn per request (see `h1_pool`).
///
/// One connection pool per thread that calls it: a connection's I/O is driven by the runtime of
/// the thread that opened it, so a request served on one thread never waits on a connection
/// driven by another (the binary serves with one single-threaded runtime per core; see
/// [`serve_per_thread`](crate::server::serve_per_thread)).
#[derive(Clone, Debug)]
pub struct HttpClient {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    builder: HttpClientBuilder,
    per_thread: ThreadLocal<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>,
    plain: ThreadLocal<ThreadPool>,
    plain_config: PoolConfig,
}

impl PoolSource for Shared {
    fn thread_pool(&self) -> &ThreadPool {
        self.plain.get_or_default()
    }

    fn config(&self) -> &PoolConfig {
        &self.plain_config
    }
}

/// Builds an [`HttpClient`]. Defaults: connect timeout 5 s, idle pooled connections kept 90 s, at
/// most 256 idle connections per host.
#[derive(Clone, Debug)]
#[must_use]
pub struct HttpClientBuilder {
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
}

impl Default for HttpClientBuilder {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
        }
    }
}

impl HttpClientBuilder {
    /// Time allowed to open a TCP connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an idle pooled connection is kept.
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// Idle connections kept per host.
    pub fn pool_max_idle_per_host(mut self, n: usize) -> Self {
        self.pool_max_idle_per_host = n;
        self
    }

    /// Builds the client.
    pub fn build(self) -> HttpClient {
        let mut connector = self.connector();
        connector.enforce_http(true);
        let plain_config = PoolConfig {
            idle_timeout: self.pool_idle_timeout,
            max_idle_per_host: self.pool_max_idle_per_host,
            connector,
        };
        HttpClient {
            shared: Arc::new(Shared {
                builder: self,
                per_thread: ThreadLocal::new(),
                plain: ThreadLocal::new(),
                plain_config,
            }),
        }
    }

    fn connector(&self) -> HttpConnector {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        http
    }

    fn client(&self) -> Client<HttpsConnector<HttpConnector>, Full<Bytes>> {
        let mut http = self.connector();
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .build(https)
    }
}

impl HttpClient {
    /// A client with the defaults of [`HttpClientBuilder`].
    #[must_use]
    pub fn new() -> Self {
        HttpClientBuilder::default().build()
    }

    /// A builder.
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder::default()
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl tower_service::Service<http::Request<Full<Bytes>>> for HttpClient {
    type Response = http::Response<UpstreamBody>;
    type Error = BoxError;
    type Future = HttpFuture;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Full<Bytes>>) -> Self::Future {
        if req.uri().scheme() == Some(&http::uri::Scheme::HTTP) {
            return HttpFuture {
                inner: Inner::Plain {
                    fut: Box::pin(h1_pool::send(self.shared.clone(), req)),
                },
            };
        }
        let shared = &*self.shared;
        let client = shared.per_thread.get_or(|| shared.builder.client());
        HttpFuture {
            inner: Inner::Tls {
                fut: client.request(req),
            },
        }
    }
}

type PlainFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<UpstreamBody>, BoxError>> + Send>>;

pin_project_lite::pin_project! {
    /// Response future of [`HttpClient`].
    #[must_use = "futures do nothing unless polled"]
    pub struct HttpFuture {
        #[pin]
        inner: Inner,
    }
}

pin_project_lite::pin_project! {
    #[project = InnerProj]
    enum Inner {
        Tls { #[pin] fut: hyper_util::client::legacy::ResponseFuture },
        Plain { fut: PlainFuture },
    }
}

impl std::fmt::Debug for HttpFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFuture").finish_non_exhaustive()
    }
}

impl Future for HttpFuture {
    type Output = Result<http::Response<UpstreamBody>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            InnerProj::Tls { fut } => fut.poll(cx).map(|r| {
                r.map(|resp| resp.map(UpstreamBody::plain))
                    .map_err(Into::into)
            }),
            InnerProj::Plain { fut } => fut.as_mut().poll(cx),
        }
    }
}
