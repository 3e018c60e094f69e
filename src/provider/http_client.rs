//! [`HttpClient`]: hyper-util's pooled client over rustls, HTTP/1.1 and HTTP/2 by ALPN.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioTimer},
};
use thread_local::ThreadLocal;

use crate::error::BoxError;

/// The default upstream HTTP client: pooled keep-alive connections, TCP_NODELAY, rustls (no
/// OpenSSL) with the webpki roots, HTTP/2 when the server offers it by ALPN, HTTP/1.1 otherwise.
///
/// A `tower::Service<http::Request<Full<Bytes>>>`; cloning shares the pools.
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
        HttpClient {
            shared: Arc::new(Shared {
                builder: self,
                per_thread: ThreadLocal::new(),
            }),
        }
    }

    fn client(&self) -> Client<HttpsConnector<HttpConnector>, Full<Bytes>> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
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
    type Response = http::Response<Incoming>;
    type Error = BoxError;
    type Future = HttpFuture;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Full<Bytes>>) -> Self::Future {
        let shared = &*self.shared;
        let client = shared.per_thread.get_or(|| shared.builder.client());
        HttpFuture {
            inner: client.request(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`HttpClient`].
    #[must_use = "futures do nothing unless polled"]
    pub struct HttpFuture {
        #[pin]
        inner: hyper_util::client::legacy::ResponseFuture,
    }
}

impl std::fmt::Debug for HttpFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFuture").finish_non_exhaustive()
    }
}

impl Future for HttpFuture {
    type Output = Result<http::Response<Incoming>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map_err(Into::into)
    }
}
