//! A bare pass-through HTTP proxy: the floor of the load benchmark (`benches/load/`).
//!
//! It forwards every request to `--upstream` and streams the answer back, bytes as they come,
//! without parsing a body: the least any HTTP proxy built on hyper can do on this machine.
//!
//! ```sh
//! cargo run --release --example passthrough_proxy -- --listen 127.0.0.1:4100 --upstream http://127.0.0.1:8000
//! ```
//!
//! With an `https://` upstream it speaks TLS to it (rustls, HTTP/2 or HTTP/1.1 by ALPN, the roots
//! from `SSL_CERT_FILE`, else the webpki roots): the floor of the benchmark's TLS scenario (T1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;

// The same allocator as the llmgate binary (its own module, shared by path), so that the
// comparison is like for like.
#[allow(dead_code)]
#[path = "../src/bin/llmgate/alloc.rs"]
mod alloc;

#[global_allocator]
static GLOBAL: alloc::MiMalloc = alloc::MiMalloc;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{
        connect::{Connect, HttpConnector},
        Client,
    },
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:4100".into());
    let upstream = arg("--upstream").unwrap_or_else(|| "http://127.0.0.1:8000".into());
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = arg("--threads").and_then(|n| n.parse().ok()) {
        rt.worker_threads(n);
    }
    rt.enable_all()
        .build()
        .expect("runtime")
        .block_on(async move {
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            let upstream: &'static str = Box::leak(upstream.trim_end_matches('/').into());
            if upstream.starts_with("https://") {
                connector.enforce_http(false);
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls_config())
                    .https_only()
                    .enable_http1()
                    .enable_http2()
                    .wrap_connector(connector);
                serve(client(https), upstream, &listen).await;
            } else {
                serve(client(connector), upstream, &listen).await;
            }
        });
}

fn client<C: Connect + Clone>(connector: C) -> Client<C, Incoming> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(connector)
}

/// rustls with the roots of `SSL_CERT_FILE` when set, else the webpki roots.
fn tls_config() -> rustls::ClientConfig {
    use rustls::pki_types::{pem::PemObject as _, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match std::env::var("SSL_CERT_FILE")
        .ok()
        .filter(|f| !f.is_empty())
    {
        Some(file) => {
            for cert in CertificateDer::pem_file_iter(&file).expect("SSL_CERT_FILE") {
                roots
                    .add(cert.expect("SSL_CERT_FILE"))
                    .expect("a CA certificate");
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

async fn serve<C>(client: Client<C, Incoming>, upstream: &'static str, listen: &str)
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
    println!(
        "listening on http://{}",
        listener.local_addr().expect("addr")
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let client = client.clone();
                async move {
                    let (mut parts, body) = req.into_parts();
                    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                    parts.uri = format!("{upstream}{pq}").parse().expect("valid upstream");
                    parts.headers.remove(http::header::HOST);
                    let resp = match client.request(http::Request::from_parts(parts, body)).await {
                        Ok(resp) => resp.map(Either::Left),
                        Err(e) => {
                            let mut r = http::Response::new(Either::Right(Full::new(Bytes::from(
                                format!("upstream error: {e}"),
                            ))));
                            *r.status_mut() = http::StatusCode::BAD_GATEWAY;
                            r
                        }
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
