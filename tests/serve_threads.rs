//! `serve_per_thread`: one single-threaded runtime per listening socket, connections spread by
//! the kernel (`SO_REUSEPORT`), graceful stop of every thread.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeSet, convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use llmgate::server::{bind_listeners, serve_per_thread, ServeConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Answers with the name of the thread that ran the request.
fn thread_name_service() -> impl tower::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<Full<Bytes>>,
    Error = Infallible,
    Future = std::future::Ready<Result<http::Response<Full<Bytes>>, Infallible>>,
> + Clone {
    tower::service_fn(|_req: http::Request<hyper::body::Incoming>| {
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        std::future::ready(Ok(http::Response::new(Full::new(Bytes::from(name)))))
    })
}

/// One request on a fresh connection; returns the body.
async fn ask(addr: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.rsplit("\r\n\r\n").next().unwrap().to_owned()
}

#[tokio::test]
async fn connections_spread_over_threads_and_all_stop() {
    let listeners = bind_listeners("127.0.0.1:0".parse().unwrap(), 2).unwrap();
    let addr = listeners[0].local_addr().unwrap();
    assert_eq!(listeners[1].local_addr().unwrap(), addr, "same port");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_per_thread(
        listeners,
        thread_name_service(),
        ServeConfig::default().grace_period(Duration::from_secs(5)),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let mut seen = BTreeSet::new();
    for _ in 0..64 {
        seen.insert(ask(addr).await);
    }
    assert!(
        seen.iter().all(|n| n.starts_with("llmgate-worker-")),
        "{seen:?}"
    );
    // 64 connections hashed over two sockets all landing on one: probability 2^-63.
    assert_eq!(seen.len(), 2, "{seen:?}");

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("every thread stopped")
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_request_in_flight_finishes_after_the_stop() {
    let listeners = bind_listeners("127.0.0.1:0".parse().unwrap(), 2).unwrap();
    let addr = listeners[0].local_addr().unwrap();
    let slow = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"done"))))
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_per_thread(
        listeners,
        slow,
        ServeConfig::default().grace_period(Duration::from_secs(5)),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let pending = tokio::spawn(async move {
        let resp = client
            .get(format!("http://{addr}/").parse().unwrap())
            .await
            .unwrap();
        resp.into_body().collect().await.unwrap().to_bytes()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop_tx.send(()).unwrap();
    assert_eq!(pending.await.unwrap(), Bytes::from_static(b"done"));
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
