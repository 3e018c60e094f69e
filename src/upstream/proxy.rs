//! [`ProxySettings`]: HTTP proxies for upstream connections, as curl reads them from the
//! environment, and the connector that tunnels through them.
//!
//! - `https://` upstreams go through an HTTP `CONNECT` tunnel to the proxy (hyper-util's
//!   [`Tunnel`]); TLS runs end to end inside it, so the proxy sees only the host name.
//! - plain `http://` upstreams are sent to the proxy in absolute form
//!   (`POST http://host/v1/chat/completions`), as curl does (see `h1_pool`).
//!
//! The proxy URL's userinfo (`http://user:pass@proxy:3128`) becomes a `Proxy-Authorization:
//! Basic` header marked sensitive; it is never logged or printed (`Debug` shows host and port).
//! `NO_PROXY` follows hyper-util's [`Matcher`]: comma-separated domains (a domain matches its
//! subdomains), IP addresses and CIDR ranges, or `*`.

use std::{fmt, future::Future, pin::Pin, sync::Arc, task::Poll};

use http::Uri;
use hyper_util::{
    client::{
        legacy::connect::{proxy::Tunnel, HttpConnector},
        proxy::matcher::{Intercept, Matcher},
    },
    rt::TokioIo,
};
use tokio::net::TcpStream;
use tower_service::Service;

use crate::error::BoxError;

/// Which upstreams go through which HTTP proxy. Default: none.
#[derive(Clone, Default)]
pub struct ProxySettings {
    inner: Option<Arc<Proxies>>,
}

struct Proxies {
    matcher: Matcher,
    /// For `Debug` and errors: each proxy's scheme, host and port, without credentials.
    shown: String,
}

/// A proxy setting that cannot be used (not a URL, or a scheme llmgate cannot speak). The
/// message names the variable and never holds its credentials.
#[derive(Debug)]
pub struct ProxyError(pub(crate) String);

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProxyError {}

impl fmt::Debug for ProxySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("ProxySettings(none)"),
            Some(p) => write!(f, "ProxySettings({})", p.shown),
        }
    }
}

impl ProxySettings {
    /// No proxy: every upstream is reached directly.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (upper case first, then
    /// lower case, as curl does), once, now. An empty variable is unset.
    pub fn from_env() -> Result<Self, ProxyError> {
        let var = |names: [&'static str; 2]| {
            names.into_iter().find_map(|name| {
                std::env::var(name)
                    .ok()
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (name, v))
            })
        };
        Self::with(
            var(["HTTP_PROXY", "http_proxy"]),
            var(["HTTPS_PROXY", "https_proxy"]),
            var(["ALL_PROXY", "all_proxy"]),
            var(["NO_PROXY", "no_proxy"]).map(|(_, v)| v),
        )
    }

    /// Explicit proxies: `http` for plain-HTTP upstreams, `https` for TLS upstreams, `all` for
    /// either when its own is not given; `no_proxy` as `NO_PROXY`.
    pub fn new(
        http: Option<&str>,
        https: Option<&str>,
        all: Option<&str>,
        no_proxy: Option<&str>,
    ) -> Result<Self, ProxyError> {
        let named = |name: &'static str, v: Option<&str>| v.map(|v| (name, v.to_owned()));
        Self::with(
            named("http proxy", http),
            named("https proxy", https),
            named("all proxy", all),
            no_proxy.map(str::to_owned),
        )
    }

    fn with(
        http: Option<(&'static str, String)>,
        https: Option<(&'static str, String)>,
        all: Option<(&'static str, String)>,
        no_proxy: Option<String>,
    ) -> Result<Self, ProxyError> {
        let mut shown = Vec::new();
        let mut builder = Matcher::builder();
        for (which, value) in [&http, &https, &all].into_iter().flatten() {
            let uri = check_proxy_url(which, value)?;
            shown.push(format!("{which}={uri}"));
        }
        if shown.is_empty() {
            return Ok(Self::none());
        }
        if let Some((_, v)) = http {
            builder = builder.http(v);
        }
        if let Some((_, v)) = https {
            builder = builder.https(v);
        }
        if let Some((_, v)) = all {
            builder = builder.all(v);
        }
        if let Some(no) = no_proxy {
            shown.push(format!("no_proxy={no}"));
            builder = builder.no(no);
        }
        Ok(Self {
            inner: Some(Arc::new(Proxies {
                matcher: builder.build(),
                shown: shown.join(", "),
            })),
        })
    }

    /// Whether any proxy is set.
    #[must_use]
    pub fn is_some(&self) -> bool {
        self.inner.is_some()
    }

    /// The proxy for `dst`, unless `NO_PROXY` exempts it or none is set.
    pub(crate) fn intercept(&self, dst: &Uri) -> Option<Intercept> {
        self.inner.as_ref()?.matcher.intercept(dst)
    }
}

/// Checks that `value` is an `http://` proxy URL (scheme optional, as curl allows) and returns it
/// without userinfo, for display.
fn check_proxy_url(which: &str, value: &str) -> Result<String, ProxyError> {
    let uri: Uri = value.trim().parse().map_err(|_| {
        ProxyError(format!(
            "{which}: not a proxy URL (expected http://[user:password@]host:port)"
        ))
    })?;
    let authority = uri.authority().ok_or_else(|| {
        ProxyError(format!(
            "{which}: the proxy URL has no host (expected http://[user:password@]host:port)"
        ))
    })?;
    let host_port = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, hp)| hp);
    match uri.scheme_str() {
        None | Some("http") => Ok(format!("http://{host_port}")),
        Some(other) => Err(ProxyError(format!(
            "{which}: proxy scheme `{other}` is not supported (llmgate speaks to HTTP proxies: http://host:port)"
        ))),
    }
}

/// The TCP connector of the TLS client: direct, or through a `CONNECT` tunnel when a proxy
/// intercepts the destination. Per connection, not per request.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    pub(crate) http: HttpConnector,
    pub(crate) proxy: ProxySettings,
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, BoxError>> + Send>>;

impl Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        // HttpConnector and Tunnel are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self.proxy.intercept(&dst) {
            None => {
                let mut http = self.http.clone();
                Box::pin(async move { http.call(dst).await.map_err(Into::into) })
            }
            Some(via) => {
                let proxy = via.uri().clone();
                let mut tunnel = Tunnel::new(proxy.clone(), self.http.clone());
                if let Some(auth) = via.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move {
                    tunnel.call(dst).await.map_err(|e| {
                        format!(
                            "proxy {}: CONNECT tunnel failed: {e}",
                            proxy.authority().map_or("", |a| a.as_str())
                        )
                        .into()
                    })
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn proxies_are_chosen_by_scheme_and_no_proxy_exempts() {
        let p = ProxySettings::new(
            Some("http://plain:3128"),
            Some("http://user:secret@tls:3128"),
            None,
            Some("internal.example, 10.0.0.0/8"),
        )
        .unwrap();
        let https = p
            .intercept(&Uri::from_static("https://api.openai.com/v1"))
            .unwrap();
        assert_eq!(https.uri().authority().unwrap().as_str(), "tls:3128");
        assert_eq!(https.basic_auth().unwrap(), "Basic dXNlcjpzZWNyZXQ=");
        let plain = p
            .intercept(&Uri::from_static("http://vllm:8000/v1"))
            .unwrap();
        assert_eq!(plain.uri().authority().unwrap().as_str(), "plain:3128");
        assert!(p
            .intercept(&Uri::from_static("https://llm.internal.example/v1"))
            .is_none());
        assert!(p
            .intercept(&Uri::from_static("http://10.1.2.3:8000/"))
            .is_none());
        // Credentials never show.
        let debug = format!("{p:?}");
        assert!(
            !debug.contains("secret") && !debug.contains("user"),
            "{debug}"
        );
        assert!(debug.contains("http://tls:3128"), "{debug}");
    }

    #[test]
    fn all_proxy_covers_both_schemes_and_bad_urls_are_refused() {
        let p = ProxySettings::new(None, None, Some("proxy:8080"), None).unwrap();
        assert!(p
            .intercept(&Uri::from_static("https://a.example/"))
            .is_some());
        assert!(p
            .intercept(&Uri::from_static("http://a.example/"))
            .is_some());
        assert!(!ProxySettings::new(None, None, None, Some("*"))
            .unwrap()
            .is_some());
        let err = ProxySettings::new(None, Some("socks5://user:pw@p:1080"), None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("socks5") && !err.contains("pw"), "{err}");
        let err = ProxySettings::new(Some("http://"), None, None, None)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("http proxy: "), "{err}");
    }
}
