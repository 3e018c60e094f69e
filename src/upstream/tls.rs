//! [`TlsSettings`]: which servers the upstream client trusts, and which certificate it presents.
//!
//! Default: the webpki roots (Mozilla's list, compiled in), full verification, no client
//! certificate. A CA bundle replaces the roots, as OpenSSL, curl, Python's `requests` and httpx
//! do with `SSL_CERT_FILE` / a `verify=<path>`: a corporate bundle usually holds the public roots
//! too. Every file is read when the settings are made; a missing, unreadable or empty file is an
//! error naming the file, never a silent fallback to the defaults.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider},
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// TLS settings of the upstream client: trusted roots, verification, client certificate.
///
/// ```
/// use llmgate::upstream::{HttpClient, TlsSettings};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // The webpki roots; `TlsSettings::from_env()` reads SSL_CERT_FILE / SSL_CERT_DIR.
/// let tls = TlsSettings::new();
/// let client = HttpClient::builder().tls(&tls)?.build();
/// # drop(client);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TlsSettings {
    roots: Roots,
    verify: bool,
    client_auth: Option<ClientAuth>,
}

#[derive(Clone)]
enum Roots {
    Webpki,
    Custom {
        certs: Vec<CertificateDer<'static>>,
        from: String,
    },
}

struct ClientAuth {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    from: String,
}

impl Clone for ClientAuth {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            from: self.from.clone(),
        }
    }
}

impl fmt::Debug for TlsSettings {
    /// Says where the roots and the client certificate come from; never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roots = match &self.roots {
            Roots::Webpki => "webpki roots".to_owned(),
            Roots::Custom { certs, from } => format!("{} certificates from {from}", certs.len()),
        };
        f.debug_struct("TlsSettings")
            .field("roots", &roots)
            .field("verify", &self.verify)
            .field(
                "client_certificate",
                &self.client_auth.as_ref().map(|a| a.from.as_str()),
            )
            .finish()
    }
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self::new()
    }
}

/// A TLS setting that cannot be used: a file that is missing, unreadable or holds no usable
/// certificate or key. The message names the file.
#[derive(Debug)]
pub struct TlsError(pub(crate) String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

impl TlsSettings {
    /// The webpki roots, full verification, no client certificate.
    #[must_use]
    pub fn new() -> Self {
        Self {
            roots: Roots::Webpki,
            verify: true,
            client_auth: None,
        }
    }

    /// The defaults, with the roots replaced by `SSL_CERT_FILE` and/or `SSL_CERT_DIR` when set
    /// (both together when both are set, as OpenSSL does). Read once, now.
    pub fn from_env() -> Result<Self, TlsError> {
        let file = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty());
        let dir = std::env::var_os("SSL_CERT_DIR").filter(|v| !v.is_empty());
        let mut certs = Vec::new();
        let mut from = Vec::new();
        if let Some(file) = file {
            let path = PathBuf::from(file);
            certs.extend(read_certs(&path, "SSL_CERT_FILE")?);
            from.push(format!("SSL_CERT_FILE={}", path.display()));
        }
        if let Some(dir) = dir {
            // `SSL_CERT_DIR` may list several directories, like `PATH`.
            for d in std::env::split_paths(&dir) {
                certs.extend(read_cert_dir(&d)?);
                from.push(format!("SSL_CERT_DIR={}", d.display()));
            }
        }
        // A hashed directory links each certificate under several names; the bundle often holds
        // the same certificates too.
        certs.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        certs.dedup_by(|a, b| a.as_ref() == b.as_ref());
        let mut settings = Self::new();
        if !from.is_empty() {
            if certs.is_empty() {
                return Err(TlsError(format!(
                    "{}: no certificate found",
                    from.join(", ")
                )));
            }
            settings.roots = Roots::Custom {
                certs,
                from: from.join(", "),
            };
        }
        Ok(settings)
    }

    /// Trusts the certificates of the PEM bundle at `path` instead of the current roots
    /// (LiteLLM's `ssl_verify: <path>`). `key` names the setting in errors.
    pub fn ca_file(mut self, path: impl AsRef<Path>, key: &str) -> Result<Self, TlsError> {
        let path = path.as_ref();
        let certs = read_certs(path, key)?;
        self.roots = Roots::Custom {
            certs,
            from: format!("{key}={}", path.display()),
        };
        Ok(self)
    }

    /// Accepts any server certificate (LiteLLM's `ssl_verify: false`). Unsafe: anyone on the path
    /// can read and change the traffic, API keys included. Signatures of the handshake are still
    /// checked, so the connection is at least encrypted to whoever answered.
    #[must_use]
    pub fn danger_accept_invalid_certs(mut self) -> Self {
        self.verify = false;
        self
    }

    /// Verifies server certificates again (a deployment's `ssl_verify: true` over a global
    /// `false`).
    #[cfg_attr(not(feature = "gateway"), allow(dead_code))]
    pub(crate) fn verifying(mut self) -> Self {
        self.verify = true;
        self
    }

    /// Whether server certificates are verified.
    #[must_use]
    pub fn is_verifying(&self) -> bool {
        self.verify
    }

    /// Presents the client certificate in the PEM file at `cert` (its chain, leaf first), with
    /// the private key from `key_file` or, without one, from the same file (LiteLLM's
    /// `ssl_certificate`, which httpx reads as one PEM holding both). `key` names the setting in
    /// errors.
    pub fn client_certificate(
        mut self,
        cert: impl AsRef<Path>,
        key_file: Option<&Path>,
        key: &str,
    ) -> Result<Self, TlsError> {
        let cert = cert.as_ref();
        let chain = read_certs(cert, key)?;
        let key_path = key_file.unwrap_or(cert);
        let pem = read(key_path, key)?;
        let private = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
            TlsError(format!(
                "{key}: no usable private key in {} ({e})",
                key_path.display()
            ))
        })?;
        // The key must match a type rustls can sign with; checked now, not at the first call.
        let provider = provider();
        provider
            .key_provider
            .load_private_key(private.clone_key())
            .map_err(|e| {
                TlsError(format!(
                    "{key}: the private key in {} cannot be used: {e}",
                    key_path.display()
                ))
            })?;
        self.client_auth = Some(ClientAuth {
            chain,
            key: private,
            from: format!("{key}={}", cert.display()),
        });
        Ok(self)
    }

    /// The rustls configuration (without ALPN; the connector sets it).
    pub(crate) fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let provider = Arc::new(provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS: {e}")))?;
        let builder = if self.verify {
            let mut store = RootCertStore::empty();
            match &self.roots {
                Roots::Webpki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                Roots::Custom { certs, from } => {
                    let (added, _ignored) = store.add_parsable_certificates(certs.iter().cloned());
                    if added == 0 {
                        return Err(TlsError(format!("{from}: no usable CA certificate")));
                    }
                }
            }
            builder.with_root_certificates(store)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        };
        match &self.client_auth {
            None => Ok(builder.with_no_client_auth()),
            Some(auth) => builder
                .with_client_auth_cert(auth.chain.clone(), auth.key.clone_key())
                .map_err(|e| TlsError(format!("{}: {e}", auth.from))),
        }
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("{key}: cannot read {}: {e}", path.display())))
}

/// Every certificate of the PEM file at `path`; none is an error.
fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, key)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("{key}: {} is not valid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{key}: no certificate in {}",
            path.display()
        )));
    }
    Ok(certs)
}

/// The certificates of every PEM file in `dir` (OpenSSL's hashed directory holds one per file;
/// files that are not certificates are skipped, as OpenSSL does).
fn read_cert_dir(dir: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| TlsError(format!("SSL_CERT_DIR: cannot read {}: {e}", dir.display())))?;
    let mut certs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        if let Ok(pem) = std::fs::read(&path) {
            certs.extend(CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok));
        }
    }
    Ok(certs)
}

/// `ssl_verify: false`: any certificate is accepted; handshake signatures are still verified.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn temp(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "llmgate-tls-{}-{}-{name}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_missing_or_empty_bundle_is_an_error_naming_the_key_and_path() {
        let err = TlsSettings::new()
            .ca_file("/nonexistent/ca.pem", "litellm_settings.ssl_verify")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("litellm_settings.ssl_verify: cannot read /nonexistent/ca.pem"),
            "{err}"
        );
        let empty = temp("empty.pem", "not a certificate\n");
        let err = TlsSettings::new()
            .ca_file(&empty, "ssl_verify")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no certificate in"), "{err}");
        assert!(err.contains(&empty.display().to_string()), "{err}");
        let _ = std::fs::remove_file(empty);
    }

    #[test]
    fn a_client_certificate_without_a_key_is_an_error() {
        let cert = rcgen::generate_simple_self_signed(vec!["client".to_owned()]).unwrap();
        let only_cert = temp("cert.pem", &cert.cert.pem());
        let err = TlsSettings::new()
            .client_certificate(&only_cert, None, "ssl_certificate")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no usable private key"), "{err}");
        let both = temp(
            "both.pem",
            &format!("{}{}", cert.cert.pem(), cert.signing_key.serialize_pem()),
        );
        let tls = TlsSettings::new()
            .client_certificate(&both, None, "ssl_certificate")
            .unwrap();
        assert!(tls
            .client_config()
            .unwrap()
            .client_auth_cert_resolver
            .has_certs());
        // Debug names the file, never the key.
        let debug = format!("{tls:?}");
        assert!(debug.contains("ssl_certificate="), "{debug}");
        assert!(!debug.contains("PRIVATE"), "{debug}");
        let _ = std::fs::remove_file(only_cert);
        let _ = std::fs::remove_file(both);
    }

    #[test]
    fn defaults_verify_with_the_webpki_roots() {
        let tls = TlsSettings::new();
        assert!(tls.is_verifying());
        assert!(tls.client_config().is_ok());
        assert!(!tls.danger_accept_invalid_certs().is_verifying());
    }
}
