//! [`UpstreamConfigError`]: an upstream setting (proxy, TLS) that cannot be used.

use std::fmt;

use super::{proxy::ProxyError, tls::TlsError};

/// An upstream setting of the config or the environment that cannot be used. The message starts
/// with the key or variable and names the file; it never holds credentials.
#[derive(Debug)]
pub struct UpstreamConfigError(pub(crate) String);

impl UpstreamConfigError {
    pub(crate) fn from_tls(e: TlsError) -> Self {
        Self(e.0)
    }

    pub(crate) fn from_proxy(e: ProxyError) -> Self {
        Self(e.0)
    }
}

impl fmt::Display for UpstreamConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UpstreamConfigError {}
