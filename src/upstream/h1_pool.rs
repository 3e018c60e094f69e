//! Keep-alive HTTP/1.1 connections to plain `http://` upstreams, one pool per thread.
//!
//! Local model servers (vLLM, Ollama, TGI, LM Studio, llama.cpp) and in-cluster gateways are
//! reached over plain HTTP, where the protocol is always HTTP/1.1 and no TLS or ALPN is involved.
//! For them [`HttpClient`](super::HttpClient) keeps its own pool on hyper's connection API
//! instead of hyper-util's general one, because per request that one:
//!
//! - hashes `(scheme, authority)` with SipHash, byte by byte, on checkout and again on return;
//! - takes its pool mutex twice;
//! - spawns a task per response to wait for the connection to become idle again.
//!
//! Here a thread's pool is a short list of hosts (compared by authority text, usually one or two
//! entries) each with a stack of idle senders; a connection goes back to the stack when its
//! response body ends, from the body itself, so no task is spawned. The most recently used
//! connection is reused first, which lets the others age out.
//!
//! What it keeps from hyper-util's behaviour: connections idle longer than the idle timeout are
//! not reused, at most `max_idle_per_host` idle connections are kept per host, a request that a
//! reused connection could not take (closed in the meantime, never written) is sent again on
//! another connection, and a response body dropped before its end closes its connection (HTTP/1.1
//! cannot abandon a response and reuse the connection).

use std::{
    cell::RefCell,
    collections::VecDeque,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::future::Either;
use http::{
    header::{HOST, PROXY_AUTHORIZATION},
    uri::Authority,
    HeaderValue, Request, Response, Uri,
};
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::{legacy::connect::HttpConnector, proxy::matcher::Intercept};
use tower_service::Service;

use super::{
    body::{RequestBody, UpstreamBody},
    proxy::ProxySettings,
};
use crate::error::BoxError;

/// How many times a request is offered to another connection when a pooled one could not take
/// it (each offer consumes one stale idle connection; the last is a fresh connection).
const MAX_REOFFERS: usize = 4;

/// How many of the most recently returned connections checkout looks at for one that is ready.
const READY_SCAN: usize = 8;

/// One thread's idle connections, by host.
#[derive(Debug, Default)]
pub(crate) struct ThreadPool {
    hosts: RefCell<Vec<HostIdle>>,
}

#[derive(Debug)]
struct HostIdle {
    authority: Authority,
    /// Oldest first; checkout takes from the back.
    idle: VecDeque<Idle>,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<RequestBody>,
    since: Instant,
}

impl Idle {
    /// Open, and idle no longer than `idle_timeout` at `now`.
    fn live(&self, now: Instant, idle_timeout: Duration) -> bool {
        !self.sender.is_closed() && now.duration_since(self.since) <= idle_timeout
    }
}

/// What every thread's pool shares: limits and the connector.
#[derive(Clone, Debug)]
pub(crate) struct PoolConfig {
    pub(crate) idle_timeout: Duration,
    pub(crate) max_idle_per_host: usize,
    pub(crate) connector: HttpConnector,
    /// The HTTP proxy for plain-HTTP upstreams, if any: requests go to it in absolute form.
    pub(crate) proxy: ProxySettings,
}

/// Where a finished response's connection goes back to: the pool of the thread that finishes it.
pub(crate) trait PoolSource: Send + Sync + 'static {
    /// This thread's pool.
    fn thread_pool(&self) -> &ThreadPool;
    /// The shared settings.
    fn config(&self) -> &PoolConfig;
}

impl ThreadPool {
    /// The most recently returned live connection to `authority`, if any.
    fn checkout(&self, authority: &Authority, idle_timeout: Duration) -> Option<Idle> {
        let now = Instant::now();
        let mut hosts = self.hosts.borrow_mut();
        let host = hosts.iter_mut().find(|h| h.authority == *authority)?;
        // A connection that can take a request now, among the most recent few: one that came back
        // when its body was dropped may still be reading the body's end on its own task, and
        // waiting for that task costs a turn of this thread's queue.
        let recent = host.idle.len().saturating_sub(READY_SCAN);
        if let Some(i) = (recent..host.idle.len())
            .rev()
            .find(|&i| host.idle[i].sender.is_ready())
        {
            if let Some(idle) = host.idle.remove(i) {
                if idle.live(now, idle_timeout) {
                    return Some(idle);
                }
            }
        }
        while let Some(idle) = host.idle.pop_back() {
            if idle.live(now, idle_timeout) {
                return Some(idle);
            }
        }
        None
    }

    /// Keeps `sender` for the next request to `authority` (unless the host has enough idle ones).
    fn put(&self, authority: Authority, sender: SendRequest<RequestBody>, config: &PoolConfig) {
        if sender.is_closed() || config.max_idle_per_host == 0 {
            return;
        }
        let now = Instant::now();
        let mut hosts = self.hosts.borrow_mut();
        let host = match hosts.iter().position(|h| h.authority == authority) {
            Some(i) => &mut hosts[i],
            None => {
                hosts.push(HostIdle {
                    authority,
                    idle: VecDeque::new(),
                });
                let last = hosts.len() - 1;
                &mut hosts[last]
            }
        };
        // The oldest idle connections age out here, so an idle pool does not hold dead senders.
        while host
            .idle
            .front()
            .is_some_and(|i| !i.live(now, config.idle_timeout))
        {
            host.idle.pop_front();
        }
        if host.idle.len() < config.max_idle_per_host {
            host.idle.push_back(Idle { sender, since: now });
        }
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.hosts.borrow().iter().map(|h| h.idle.len()).sum()
    }
}

/// Sends `req` (an absolute `http://` URI) on a pooled or new connection to its host.
///
/// The head is prepared before the future starts; the future holds `req` once (an `async fn`
/// would keep its argument beside the local it moves into, rust-lang/rust#62958).
pub(crate) fn send<P: PoolSource>(
    source: Arc<P>,
    req: Request<RequestBody>,
) -> impl Future<Output = Result<Response<UpstreamBody>, BoxError>> {
    let prepared = match source.config().proxy.intercept(req.uri()) {
        None => origin_form(req).map(|(authority, req)| (authority, None, req)),
        Some(via) => absolute_form(req, &via)
            .map(|(authority, req)| (authority, Some(via.uri().clone()), req)),
    };
    match prepared {
        Ok((authority, dial, req)) => Either::Left(send_to(source, authority, dial, req)),
        Err(e) => Either::Right(std::future::ready(Err(e))),
    }
}

/// `req` as sent to an HTTP proxy: the absolute URL as the request target, the host in `Host`,
/// and the proxy's credentials (from its URL) in `Proxy-Authorization`, marked sensitive; and
/// the authority of the upstream (connections to the proxy are pooled per upstream).
fn absolute_form(
    mut req: Request<RequestBody>,
    via: &Intercept,
) -> Result<(Authority, Request<RequestBody>), BoxError> {
    let authority = req
        .uri()
        .authority()
        .cloned()
        .ok_or("the upstream URL has no host")?;
    if !req.headers().contains_key(HOST) {
        let host = host_header(&authority).ok_or("the upstream host is not a valid Host header")?;
        req.headers_mut().insert(HOST, host);
    }
    if let Some(auth) = via.basic_auth() {
        let mut auth = auth.clone();
        auth.set_sensitive(true);
        req.headers_mut().insert(PROXY_AUTHORIZATION, auth);
    }
    Ok((authority, req))
}

/// `req` in origin form for HTTP/1.1 to an origin server: the path as the request target, the
/// host in `Host`; and the authority it goes to.
fn origin_form(
    mut req: Request<RequestBody>,
) -> Result<(Authority, Request<RequestBody>), BoxError> {
    let authority = req
        .uri()
        .authority()
        .cloned()
        .ok_or("the upstream URL has no host")?;
    let target = req
        .uri()
        .path_and_query()
        .cloned()
        .map_or_else(|| Uri::from_static("/"), Uri::from);
    *req.uri_mut() = target;
    if !req.headers().contains_key(HOST) {
        let host = host_header(&authority).ok_or("the upstream host is not a valid Host header")?;
        req.headers_mut().insert(HOST, host);
    }
    Ok((authority, req))
}

fn send_to<P: PoolSource>(
    source: Arc<P>,
    authority: Authority,
    dial: Option<Uri>,
    req: Request<RequestBody>,
) -> impl Future<Output = Result<Response<UpstreamBody>, BoxError>> {
    // Not an `async fn` (see `send`); the rebinding keeps clippy's `manual_async_fn` from
    // asking for one.
    let mut req = req;
    async move {
        let config = source.config();
        let mut offers = 0;
        loop {
            let pooled = if offers < MAX_REOFFERS {
                source
                    .thread_pool()
                    .checkout(&authority, config.idle_timeout)
            } else {
                None
            };
            let reused = pooled.is_some();
            let mut sender = match pooled {
                Some(idle) => idle.sender,
                None => connect(config, &authority, dial.as_ref()).await?,
            };
            if reused && sender.ready().await.is_err() {
                offers += 1;
                continue; // closed while idle
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let back = Some(Return {
                        source: source.clone(),
                        authority,
                        sender: Some(sender),
                    });
                    return Ok(resp.map(|inner| UpstreamBody::pooled(inner, back)));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: another connection may take it.
                    Some(again) if reused => {
                        req = again;
                        offers += 1;
                    }
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }
}

/// The `Host` header HTTP/1.1 sends for `authority`: host and port as given, without userinfo.
pub(crate) fn host_header(authority: &Authority) -> Option<HeaderValue> {
    let text = authority.as_str();
    let host_port = text.rsplit_once('@').map_or(text, |(_, hp)| hp);
    HeaderValue::from_str(host_port).ok()
}

/// Opens a connection to `authority`, or to the proxy `dial` when there is one, and starts
/// driving it on this runtime.
async fn connect(
    config: &PoolConfig,
    authority: &Authority,
    dial: Option<&Uri>,
) -> Result<SendRequest<RequestBody>, BoxError> {
    let io = match dial {
        None => {
            let uri = Uri::builder()
                .scheme("http")
                .authority(authority.clone())
                .path_and_query("/")
                .build()?;
            config.connector.clone().call(uri).await?
        }
        Some(proxy) => config
            .connector
            .clone()
            .call(proxy.clone())
            .await
            .map_err(|e| {
                format!(
                    "proxy {}: {e}",
                    proxy.authority().map_or("", |a| a.as_str())
                )
            })?,
    };
    let (sender, conn) = hyper::client::conn::http1::handshake::<_, RequestBody>(io).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// The way back to the pool for a response's connection: dropping it puts the connection back.
///
/// It is dropped when the body ends, and also when a body is dropped before its end (a stream the
/// provider said was complete, `data: [DONE]`, whose last bytes the reader never asked for):
/// hyper then reads on to the end if the rest is already buffered, keeping the connection, or
/// closes it; a closed one fails `ready()` at checkout and is passed over. Only a body that
/// failed does not go back.
pub(crate) struct Return {
    source: Arc<dyn PoolSource>,
    authority: Authority,
    sender: Option<SendRequest<RequestBody>>,
}

impl Return {
    /// Drops the connection instead of pooling it.
    pub(crate) fn discard(mut self) {
        self.sender = None;
    }
}

impl Drop for Return {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            let config = self.source.config();
            self.source
                .thread_pool()
                .put(self.authority.clone(), sender, config);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::{
        convert::Infallible,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use bytes::Bytes;
    use futures_util::StreamExt as _;
    use http_body::Frame;
    use http_body_util::{BodyExt as _, Full, StreamBody};
    use hyper::{body::Incoming, service::service_fn};
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::*;

    type FrameStream = std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>,
    >;

    struct Source {
        pools: thread_local::ThreadLocal<ThreadPool>,
        config: PoolConfig,
    }

    impl PoolSource for Source {
        fn thread_pool(&self) -> &ThreadPool {
            self.pools.get_or_default()
        }
        fn config(&self) -> &PoolConfig {
            &self.config
        }
    }

    fn source(idle_timeout: Duration, max_idle: usize) -> Arc<Source> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Arc::new(Source {
            pools: thread_local::ThreadLocal::new(),
            config: PoolConfig {
                idle_timeout,
                max_idle_per_host: max_idle,
                connector,
                proxy: ProxySettings::none(),
            },
        })
    }

    /// A real HTTP/1.1 server on a loopback port that counts the connections it accepts. `/close`
    /// answers with `connection: close`; `/stream` answers in three chunks.
    async fn server() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = service_fn(|req: Request<Incoming>| async move {
                        let host = req.headers()[HOST].to_str().unwrap().to_owned();
                        let path = req.uri().to_string();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let text = format!("{path} {host} {}", String::from_utf8_lossy(&body));
                        let resp = match path.as_str() {
                            "/close" => Response::builder()
                                .header("connection", "close")
                                .body(http_body_util::Either::Left(Full::new(Bytes::from(text)))),
                            "/slow" | "/stream" => {
                                let frame = |s: &'static str| {
                                    Ok::<_, Infallible>(Frame::data(Bytes::from_static(
                                        s.as_bytes(),
                                    )))
                                };
                                let frames: FrameStream = if path == "/slow" {
                                    // One frame, then nothing: the body never ends.
                                    Box::pin(
                                        futures_util::stream::iter([frame("a")])
                                            .chain(futures_util::stream::pending()),
                                    )
                                } else {
                                    Box::pin(futures_util::stream::iter(["a", "b", "c"].map(frame)))
                                };
                                Response::builder()
                                    .body(http_body_util::Either::Right(StreamBody::new(frames)))
                            }
                            _ => Response::builder()
                                .body(http_body_util::Either::Left(Full::new(Bytes::from(text)))),
                        };
                        Ok::<_, Infallible>(resp.unwrap())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (format!("http://{addr}"), accepted)
    }

    fn post(base: &str, path: &str, body: &'static str) -> Request<RequestBody> {
        Request::post(format!("{base}{path}"))
            .body(RequestBody::full(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    async fn text(resp: Response<UpstreamBody>) -> String {
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn reuses_one_connection_for_sequential_requests_in_origin_form_with_host() {
        let (base, accepted) = server().await;
        let src = source(Duration::from_secs(90), 8);
        for i in 0..5 {
            let resp = send(src.clone(), post(&base, "/v1/chat?x=1", "hi"))
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let host = base.trim_start_matches("http://");
            assert_eq!(
                text(resp).await,
                format!("/v1/chat?x=1 {host} hi"),
                "request {i}"
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(src.thread_pool().idle_count(), 1);
    }

    #[tokio::test]
    async fn a_streamed_body_returns_its_connection_at_its_end_or_when_dropped() {
        let (base, accepted) = server().await;
        let src = source(Duration::from_secs(90), 8);
        let resp = send(src.clone(), post(&base, "/stream", "")).await.unwrap();
        assert_eq!(text(resp).await, "abc");
        assert_eq!(src.thread_pool().idle_count(), 1);
        // Every data frame read, the body dropped before its end was asked for (an SSE reader
        // stopping at `data: [DONE]`): the connection goes back, hyper reads the buffered end of
        // the chunked body, and the next request reuses it.
        let resp = send(src.clone(), post(&base, "/stream", "")).await.unwrap();
        let mut body = resp.into_body();
        for want in ["a", "b", "c"] {
            let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
            assert_eq!(data, want);
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // the end arrives
        drop(body);
        assert_eq!(src.thread_pool().idle_count(), 1);
        let resp = send(src.clone(), post(&base, "/x", "y")).await.unwrap();
        assert!(text(resp).await.starts_with("/x "));
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        // Dropped while the server is still sending: hyper closes that connection, checkout
        // passes over it and opens another.
        let resp = send(src.clone(), post(&base, "/slow", "")).await.unwrap();
        let mut body = resp.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "a");
        drop(body);
        let resp = send(src.clone(), post(&base, "/x", "y")).await.unwrap();
        assert!(text(resp).await.starts_with("/x "));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_closed_or_expired_connection_is_replaced_and_limits_hold() {
        let (base, accepted) = server().await;
        let src = source(Duration::from_secs(90), 8);
        // The server closes after answering: the next request needs a new connection.
        let resp = send(src.clone(), post(&base, "/close", "")).await.unwrap();
        assert!(text(resp).await.starts_with("/close "));
        let resp = send(src.clone(), post(&base, "/a", "")).await.unwrap();
        assert!(text(resp).await.starts_with("/a "));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);

        // Idle timeout zero: nothing is reused.
        let (base, accepted) = server().await;
        let src = source(Duration::ZERO, 8);
        for _ in 0..3 {
            let resp = send(src.clone(), post(&base, "/a", "")).await.unwrap();
            text(resp).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);

        // Concurrent requests open a connection each; only max_idle_per_host stay.
        let (base, accepted) = server().await;
        let src = source(Duration::from_secs(90), 2);
        let calls = (0..4).map(|_| send(src.clone(), post(&base, "/a", "")));
        let resps = futures_util::future::join_all(calls).await;
        for r in resps {
            text(r.unwrap()).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
        assert_eq!(src.thread_pool().idle_count(), 2);
    }

    #[tokio::test]
    async fn an_unreachable_host_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let src = source(Duration::from_secs(90), 8);
        let err = send(src, post(&base, "/a", "")).await.unwrap_err();
        assert!(err.to_string().contains("connect"), "{err}");
    }
}
