//! [`HttpClient`]: pooled keep-alive connections; over TLS hyper-util's client with rustls (HTTP/1.1
//! and HTTP/2 by ALPN), over plain HTTP a lighter pool of HTTP/1.1 connections (`super::h1_pool`).

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
use rustls::ClientConfig;
use thread_local::ThreadLocal;

use super::{
    body::{request_body, RequestBody, UpstreamBody},
    error::UpstreamConfigError,
    h1_pool::{self, PoolConfig, PoolSource, ThreadPool},
    proxy::{Connector, ProxySettings},
    tls::{TlsError, TlsSettings},
};
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
///
/// TLS settings ([`TlsSettings`]: CA bundle, no verification, client certificate), per-host TLS
/// settings and HTTP proxies ([`ProxySettings`]) are set on the [`HttpClientBuilder`];
/// [`HttpClient::new`] uses none and reads no environment, [`HttpClient::from_config`] (the
/// binary's) reads the environment and the config once.
#[derive(Clone, Debug)]
pub struct HttpClient {
    shared: Arc<Shared>,
}

type TlsClient = Client<HttpsConnector<Connector>, RequestBody>;

#[derive(Debug)]
struct Shared {
    builder: HttpClientBuilder,
    per_thread: ThreadLocal<TlsClient>,
    /// Upstreams with their own TLS settings (a deployment's `ssl_verify` / `ssl_certificate`),
    /// each with its own pools; usually empty, so the common path does not look.
    hosts: Vec<HostClient>,
    plain: ThreadLocal<ThreadPool>,
    plain_config: PoolConfig,
}

#[derive(Debug)]
struct HostClient {
    host: HostPort,
    tls: Arc<ClientConfig>,
    per_thread: ThreadLocal<TlsClient>,
}

/// A host (lower case) and port, as an `https://` URL names it (443 when it names none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HostPort {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl HostPort {
    /// The host and port of `uri`; `None` without a host.
    #[cfg_attr(not(feature = "gateway"), allow(dead_code))]
    pub(crate) fn of(uri: &http::Uri) -> Option<Self> {
        let host = uri.host()?.to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("http") {
                80
            } else {
                443
            });
        Some(Self { host, port })
    }

    fn matches(&self, uri: &http::Uri) -> bool {
        uri.host()
            .is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && uri.port_u16().unwrap_or(443) == self.port
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
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
/// most 256 idle connections per host, the webpki roots, no proxy, nothing read from the
/// environment (see [`HttpClientBuilder::from_env`]).
#[derive(Clone, Debug)]
#[must_use]
pub struct HttpClientBuilder {
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    /// `None`: the webpki roots through hyper-rustls's own configuration.
    tls: Option<Arc<ClientConfig>>,
    host_tls: Vec<(HostPort, Arc<ClientConfig>)>,
    proxy: ProxySettings,
}

impl Default for HttpClientBuilder {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
            tls: None,
            host_tls: Vec::new(),
            proxy: ProxySettings::none(),
        }
    }
}

impl HttpClientBuilder {
    /// The defaults, with the proxies (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`) and
    /// the CA bundle (`SSL_CERT_FILE`, `SSL_CERT_DIR`) read from the environment, once, now.
    pub fn from_env() -> Result<Self, UpstreamConfigError> {
        let proxy = ProxySettings::from_env().map_err(UpstreamConfigError::from_proxy)?;
        let tls = TlsSettings::from_env().map_err(UpstreamConfigError::from_tls)?;
        Self::default()
            .proxy(proxy)
            .tls(&tls)
            .map_err(UpstreamConfigError::from_tls)
    }

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

    /// The TLS settings of every `https://` upstream without its own ([`Self::tls_for_host`]).
    pub fn tls(mut self, tls: &TlsSettings) -> Result<Self, TlsError> {
        self.tls = Some(Arc::new(tls.client_config()?));
        Ok(self)
    }

    /// The TLS settings of the `https://` upstream at `host` and `port` (a deployment's own
    /// `ssl_verify` / `ssl_certificate`). Replaces earlier settings for the same host and port.
    pub fn tls_for_host(
        mut self,
        host: &str,
        port: u16,
        tls: &TlsSettings,
    ) -> Result<Self, TlsError> {
        let config = Arc::new(tls.client_config()?);
        let key = HostPort {
            host: host.to_ascii_lowercase(),
            port,
        };
        self.host_tls.retain(|(h, _)| *h != key);
        self.host_tls.push((key, config));
        Ok(self)
    }

    /// The HTTP proxies ([`ProxySettings`]); default none.
    pub fn proxy(mut self, proxy: ProxySettings) -> Self {
        self.proxy = proxy;
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
            proxy: self.proxy.clone(),
        };
        let hosts = self
            .host_tls
            .iter()
            .map(|(host, tls)| HostClient {
                host: host.clone(),
                tls: tls.clone(),
                per_thread: ThreadLocal::new(),
            })
            .collect();
        HttpClient {
            shared: Arc::new(Shared {
                builder: self,
                per_thread: ThreadLocal::new(),
                hosts,
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

    fn client(&self, tls: Option<&Arc<ClientConfig>>) -> TlsClient {
        let mut http = self.connector();
        http.enforce_http(false);
        let connector = Connector {
            http,
            proxy: self.proxy.clone(),
        };
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match tls.or(self.tls.as_ref()) {
            Some(config) => builder.with_tls_config((**config).clone()),
            None => builder.with_webpki_roots(),
        };
        let https = builder
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(connector);
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
        // Its bytes, or the stream a pass-through upload left in its extensions.
        let req = match request_body(req) {
            Ok(req) => req,
            Err(e) => {
                return HttpFuture {
                    inner: Inner::Plain {
                        fut: Box::pin(std::future::ready(Err(e))),
                    },
                }
            }
        };
        if req.uri().scheme() == Some(&http::uri::Scheme::HTTP) {
            return HttpFuture {
                inner: Inner::Plain {
                    fut: Box::pin(h1_pool::send(self.shared.clone(), req)),
                },
            };
        }
        let shared = &*self.shared;
        let own = if shared.hosts.is_empty() {
            None
        } else {
            shared.hosts.iter().find(|h| h.host.matches(req.uri()))
        };
        let client = match own {
            None => shared.per_thread.get_or(|| shared.builder.client(None)),
            Some(h) => h.per_thread.get_or(|| shared.builder.client(Some(&h.tls))),
        };
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
