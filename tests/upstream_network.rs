//! The upstream client in real networks, end to end through the `llmgate` binary (run as a child
//! process with its own environment): TLS upstreams signed by a private CA (trusted through
//! `SSL_CERT_FILE` or `ssl_verify: <path>`, refused without it), `ssl_verify: false`, client
//! certificates (mTLS), an HTTP proxy (`CONNECT` for TLS upstreams, absolute form for plain
//! ones) and `NO_PROXY`.
//!
//! Every server is real: a TLS front (tokio-rustls) that splices to a [`FakeUpstream`], and a
//! small proxy that counts what it is asked and splices bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::json;
use support::{
    gw,
    process::{Binary, TempFile},
    FakeUpstream,
};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{
    rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
        server::WebPkiClientVerifier,
        RootCertStore,
    },
    TlsAcceptor,
};

/// A test CA, generated per test, and what it signed.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate, PEM, in a file (the bundle the gateway is told to trust).
    ca_file: TempFile,
}

impl Pki {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "llmgate test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_file = TempFile::new("llmgate-test-ca", "pem", &ca.pem());
        Self { ca, ca_file }
    }

    /// A certificate for `names` signed by the CA, and its key.
    fn leaf(&self, names: &[&str]) -> (CertificateDer<'static>, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.der().clone(), key)
    }

    /// A client certificate and its key in one PEM file (LiteLLM's `ssl_certificate`).
    fn client_file(&self) -> TempFile {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["llmgate-client".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        TempFile::new(
            "llmgate-test-client",
            "pem",
            &format!("{}{}", cert.pem(), key.serialize_pem()),
        )
    }

    fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        roots
    }
}

/// A TLS front on loopback for `localhost` (certificate signed by `pki`), offering h2 and
/// http/1.1 by ALPN, that splices each connection to `up` (which speaks both). With
/// `require_client_cert`, the handshake fails for clients without a certificate from `pki`.
async fn tls_front(pki: &Pki, up: SocketAddr, require_client_cert: bool) -> SocketAddr {
    let (cert, key) = pki.leaf(&["localhost", "127.0.0.1"]);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_cert {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(pki.root_store()), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(vec![cert], key).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return; // handshake refused (no or bad client certificate, unknown CA)
                };
                let Ok(mut plain) = TcpStream::connect(up).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

/// What the test proxy saw.
#[derive(Debug, Default)]
struct ProxyLog {
    /// `CONNECT host:port` targets.
    connects: Vec<String>,
    /// Request targets of absolute-form requests (`http://host:port/path`).
    absolute: Vec<String>,
    /// `Proxy-Authorization` values.
    auth: Vec<String>,
}

/// An HTTP proxy on loopback: `CONNECT` opens a tunnel (answers 200 and splices), any other
/// request in absolute form is forwarded, head and all, to its host (one request per
/// connection is enough for these tests: the bytes are spliced both ways).
async fn proxy() -> (SocketAddr, Arc<Mutex<ProxyLog>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(ProxyLog::default()));
    let seen = log.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut client = BufReader::new(tcp);
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if client.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let end = line == "\r\n";
                    head.push(line);
                    if end {
                        break;
                    }
                }
                let mut words = head[0].split_whitespace();
                let method = words.next().unwrap_or("").to_owned();
                let target = words.next().unwrap_or("").to_owned();
                for h in &head[1..] {
                    if let Some((name, value)) = h.split_once(':') {
                        if name.eq_ignore_ascii_case("proxy-authorization") {
                            seen.lock().unwrap().auth.push(value.trim().to_owned());
                        }
                    }
                }
                if method == "CONNECT" {
                    seen.lock().unwrap().connects.push(target.clone());
                    let Ok(mut upstream) = TcpStream::connect(&target).await else {
                        let _ = client
                            .get_mut()
                            .write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                            .await;
                        return;
                    };
                    client
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                        .await
                        .unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                } else {
                    seen.lock().unwrap().absolute.push(target.clone());
                    let uri: http::Uri = target.parse().unwrap();
                    let host = uri.authority().unwrap().as_str().to_owned();
                    let mut upstream = TcpStream::connect(host).await.unwrap();
                    upstream.write_all(head.concat().as_bytes()).await.unwrap();
                    let buffered = client.buffer().to_vec();
                    upstream.write_all(&buffered).await.unwrap();
                    let mut client = client.into_inner();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (addr, log)
}

fn config(api_base: &str, extra_params: &str, settings: &str) -> TempFile {
    TempFile::new(
        "llmgate-upstream-net",
        "yaml",
        &format!(
            "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {api_base}\n      api_key: sk-test\n{extra_params}litellm_settings:\n  num_retries: 0\n{settings}"
        ),
    )
}

async fn chat(bin: &Binary) -> gw::Answer {
    gw::post_json(
        &bin.url("/v1/chat/completions"),
        &json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
}

/// The environment of a gateway that trusts only `ca` (none: the webpki roots) and uses no
/// proxy unless told.
fn env<'a>(ca: Option<&'a str>, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("SSL_CERT_FILE", ca.unwrap_or("")),
        ("SSL_CERT_DIR", ""),
        ("HTTPS_PROXY", ""),
        ("https_proxy", ""),
        ("HTTP_PROXY", ""),
        ("http_proxy", ""),
        ("ALL_PROXY", ""),
        ("all_proxy", ""),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
    ];
    for (k, v) in more {
        env.retain(|(name, _)| name != k);
        env.push((k, v));
    }
    env
}

#[tokio::test]
async fn a_private_ca_from_ssl_cert_file_is_trusted_and_without_it_the_call_is_a_502_naming_tls() {
    let up = FakeUpstream::start().await;
    let pki = Pki::new();
    let front = tls_front(&pki, up.addr(), false).await;
    let cfg = config(&format!("https://localhost:{}/v1", front.port()), "", "");
    let ca = pki.ca_file.0.to_str().unwrap();

    let bin = Binary::spawn_env(&cfg.0, &env(Some(ca), &[]), &[]);
    let ok = chat(&bin).await;
    assert_eq!(
        ok.status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&ok.body),
        bin.log()
    );
    assert_eq!(up.hits(), 1);
    assert_eq!(up.last_request().unwrap().path(), "/v1/chat/completions");
    drop(bin);

    // The webpki roots do not know the test CA: refused, a 502 that says why.
    let bin = Binary::spawn_env(&cfg.0, &env(None, &[]), &[]);
    let refused = chat(&bin).await;
    assert_eq!(
        refused.status,
        502,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    let e = refused.error();
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("could not reach the provider") && message.contains("certificate"),
        "{message}"
    );
    assert_eq!(up.hits(), 1, "nothing reached the upstream");
}

#[tokio::test]
async fn ssl_verify_takes_a_bundle_path_or_false_globally_or_per_deployment() {
    let up = FakeUpstream::start().await;
    let pki = Pki::new();
    let front = tls_front(&pki, up.addr(), false).await;
    let base = format!("https://localhost:{}/v1", front.port());
    let ca = pki.ca_file.0.display().to_string();

    let cfg = config(&base, "", &format!("  ssl_verify: {ca}\n"));
    let bin = Binary::spawn_env(&cfg.0, &env(None, &[]), &[]);
    let ok = chat(&bin).await;
    assert_eq!(
        ok.status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&ok.body),
        bin.log()
    );
    drop(bin);

    // Per deployment: `ssl_verify: false` accepts the unknown CA, and says so at start-up.
    let cfg = config(&base, "      ssl_verify: false\n", "");
    let bin = Binary::spawn_env(&cfg.0, &env(None, &[]), &[]);
    let ok = chat(&bin).await;
    assert_eq!(
        ok.status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&ok.body),
        bin.log()
    );
    assert!(
        bin.log().contains("NOT verified"),
        "a warning at start-up: {}",
        bin.log()
    );
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn a_missing_ca_bundle_stops_start_up_naming_the_key_and_path() {
    let cfg = config(
        "https://localhost:1/v1",
        "",
        "  ssl_verify: /nonexistent/corp-ca.pem\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_llmgate"))
        .arg("--config")
        .arg(&cfg.0)
        .args(["--port", "0"])
        .env("SSL_CERT_FILE", "")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("litellm_settings.ssl_verify: cannot read /nonexistent/corp-ca.pem"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_llmgate"))
        .arg("--config")
        .arg(&cfg.0)
        .arg("--check")
        .env("SSL_CERT_FILE", "")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("error: litellm_settings.ssl_verify"),
        "{text}"
    );

    // SSL_CERT_FILE naming a missing file is as fatal.
    let cfg = config("https://localhost:1/v1", "", "");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_llmgate"))
        .arg("--config")
        .arg(&cfg.0)
        .args(["--port", "0"])
        .env("SSL_CERT_FILE", "/nonexistent/bundle.pem")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SSL_CERT_FILE: cannot read /nonexistent/bundle.pem"),
        "{err}"
    );
}

#[tokio::test]
async fn a_client_certificate_is_presented_to_an_upstream_that_requires_mtls() {
    let up = FakeUpstream::start().await;
    let pki = Pki::new();
    let front = tls_front(&pki, up.addr(), true).await;
    let base = format!("https://localhost:{}/v1", front.port());
    let ca = pki.ca_file.0.display().to_string();
    let client = pki.client_file();

    let cfg = config(
        &base,
        &format!(
            "      ssl_verify: {ca}\n      ssl_certificate: {}\n",
            client.0.display()
        ),
        "",
    );
    let bin = Binary::spawn_env(&cfg.0, &env(None, &[]), &[]);
    let ok = chat(&bin).await;
    assert_eq!(
        ok.status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&ok.body),
        bin.log()
    );
    assert_eq!(up.hits(), 1);
    drop(bin);

    // Without the certificate the upstream refuses the handshake.
    let cfg = config(&base, &format!("      ssl_verify: {ca}\n"), "");
    let bin = Binary::spawn_env(&cfg.0, &env(None, &[]), &[]);
    let refused = chat(&bin).await;
    assert_eq!(
        refused.status,
        502,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn https_proxy_tunnels_with_connect_and_basic_auth_and_no_proxy_bypasses_it() {
    let up = FakeUpstream::start().await;
    let pki = Pki::new();
    let front = tls_front(&pki, up.addr(), false).await;
    let (proxy, seen) = proxy().await;
    let cfg = config(&format!("https://localhost:{}/v1", front.port()), "", "");
    let ca = pki.ca_file.0.to_str().unwrap();
    let proxy_url = format!("http://proxyuser:proxy-secret@{proxy}");

    let bin = Binary::spawn_env(&cfg.0, &env(Some(ca), &[("HTTPS_PROXY", &proxy_url)]), &[]);
    for _ in 0..2 {
        let ok = chat(&bin).await;
        assert_eq!(
            ok.status,
            200,
            "{}\n{}",
            String::from_utf8_lossy(&ok.body),
            bin.log()
        );
    }
    {
        let seen = seen.lock().unwrap();
        // A tunnel per connection (at most one per serving thread here), each to the upstream's
        // host and port, each with the proxy's credentials.
        let target = format!("localhost:{}", front.port());
        assert!(
            (1..=2).contains(&seen.connects.len()) && seen.connects.iter().all(|c| *c == target),
            "{seen:?}"
        );
        assert_eq!(seen.auth.len(), seen.connects.len(), "{seen:?}");
        assert!(
            seen.auth
                .iter()
                .all(|a| a == "Basic cHJveHl1c2VyOnByb3h5LXNlY3JldA=="),
            "{seen:?}"
        );
    }
    assert!(!bin.log().contains("proxy-secret"), "{}", bin.log());
    drop(bin);

    // NO_PROXY names the host: straight to it.
    let tunnels = seen.lock().unwrap().connects.len();
    let bin = Binary::spawn_env(
        &cfg.0,
        &env(
            Some(ca),
            &[
                ("HTTPS_PROXY", &proxy_url),
                ("NO_PROXY", "example.com,localhost"),
            ],
        ),
        &[],
    );
    let ok = chat(&bin).await;
    assert_eq!(
        ok.status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&ok.body),
        bin.log()
    );
    assert_eq!(seen.lock().unwrap().connects.len(), tunnels, "not proxied");
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn http_proxy_gets_plain_http_requests_in_absolute_form() {
    let up = FakeUpstream::start().await;
    let (proxy, seen) = proxy().await;
    let base = format!("{}/v1", up.url());
    let cfg = config(&base, "", "");
    let proxy_url = format!("http://u:p@{proxy}");

    let bin = Binary::spawn_env(&cfg.0, &env(None, &[("http_proxy", &proxy_url)]), &[]);
    let ok = chat(&bin).await;
    assert_eq!(
        ok.status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&ok.body),
        bin.log()
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.absolute, vec![format!("{base}/chat/completions")]);
    assert_eq!(seen.auth, vec!["Basic dTpw".to_owned()]);
    assert!(seen.connects.is_empty());
    let req = up.last_request().unwrap();
    assert_eq!(req.header("host"), Some(up.addr().to_string().as_str()));
    assert_eq!(req.json()["model"], "gpt-4o-mini");
}
