//! [`serve`]: accept loop over hyper-util (HTTP/1.1 and h2c), TCP_NODELAY, graceful shutdown;
//! [`serve_per_thread`]: the same on one single-threaded runtime per listener (the binary's mode).

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{ready, Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use pin_project_lite::pin_project;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::{net::TcpListener, sync::Notify};
use tower_service::Service;

use super::JsonParseErrors;
use crate::{clock::Timer, error::BoxError};

pub use crate::types::extensions::grace_over;

/// How [`serve`] runs. The defaults are those of a well-run reverse proxy: a client that sends
/// nothing, sends its headers or its body too slowly, or keeps an HTTP/2 connection without
/// answering pings is disconnected, so it holds no socket, task or buffer for long.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeConfig {
    /// How long in-flight requests (streams included) may run after shutdown starts. Default 30 s.
    pub grace_period: Duration,
    /// Time allowed for a new connection's first bytes (enough to tell HTTP/1.1 from HTTP/2),
    /// then, once more, for an HTTP/1.1 request's headers (hyper's header read timeout, which on
    /// a kept-alive connection also runs from the end of the previous answer: an idle connection
    /// is closed after it). Default 30 s.
    pub header_read_timeout: Duration,
    /// How often an HTTP/2 connection is pinged (`None`: never). Default 20 s.
    pub http2_keep_alive_interval: Option<Duration>,
    /// How long an HTTP/2 ping may go unanswered before the connection is closed. Default 20 s.
    pub http2_keep_alive_timeout: Duration,
    /// Concurrent streams allowed on one HTTP/2 connection. Default 128 (nginx's).
    pub http2_max_concurrent_streams: u32,
    /// How long a connection may stay open with no request in flight (HTTP/2 above all: an
    /// idle HTTP/1.1 connection is closed by the header read timeout first). Default 180 s
    /// (nginx's former `http2_idle_timeout`).
    pub idle_timeout: Duration,
    /// Where the server's deadlines (header read, idle, accept back-off) are armed. Default: the
    /// serving runtime's timer. The binary gives [`Timer::dedicated`] to its per-thread servers.
    pub timer: Timer,
    /// Keeps the runtime's timer wheel ticking every 500 ms while serving. On tokio's
    /// work-stealing runtime with tokio's own timer, arming a far deadline in an empty wheel
    /// unparks a sleeping worker (an eventfd write and a futex wake per request); the tick keeps
    /// the wheel's next wake-up near at the price of two wake-ups a second. Default off: no
    /// background task unless asked.
    pub keep_timer_warm: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(30),
            http2_keep_alive_interval: Some(Duration::from_secs(20)),
            http2_keep_alive_timeout: Duration::from_secs(20),
            http2_max_concurrent_streams: 128,
            idle_timeout: Duration::from_secs(180),
            timer: Timer::current(),
            keep_timer_warm: false,
        }
    }
}

/// `seconds` as a duration, when it is a usable timeout (positive, finite, under 10⁹ s).
#[cfg_attr(not(feature = "gateway"), allow(dead_code))]
pub(crate) fn timeout_setting(seconds: Option<f64>) -> Option<Duration> {
    seconds
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
}

impl ServeConfig {
    /// Sets the timer (see [`ServeConfig::timer`]).
    #[must_use]
    pub fn timer(mut self, timer: Timer) -> Self {
        self.timer = timer;
        self
    }

    /// Keeps the timer wheel warm (see [`ServeConfig::keep_timer_warm`]).
    #[must_use]
    pub fn keep_timer_warm(mut self, on: bool) -> Self {
        self.keep_timer_warm = on;
        self
    }

    /// Sets the grace period.
    #[must_use]
    pub fn grace_period(mut self, d: Duration) -> Self {
        self.grace_period = d;
        self
    }

    /// Sets the header read timeout (see [`ServeConfig::header_read_timeout`]).
    #[must_use]
    pub fn header_read_timeout(mut self, d: Duration) -> Self {
        self.header_read_timeout = d;
        self
    }

    /// Sets the idle connection timeout (see [`ServeConfig::idle_timeout`]).
    #[must_use]
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Sets the HTTP/2 keep-alive ping interval and how long a ping may go unanswered.
    #[must_use]
    pub fn http2_keep_alive(mut self, interval: Option<Duration>, timeout: Duration) -> Self {
        self.http2_keep_alive_interval = interval;
        self.http2_keep_alive_timeout = timeout;
        self
    }
}

/// The first bytes of an HTTP/2 connection (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits until the connection's first bytes tell HTTP/1.1 from HTTP/2 (what hyper-util's
/// automatic builder reads, with no deadline of its own): one byte that cannot start the HTTP/2
/// preface, or the whole preface. `Err` when the peer closes first.
async fn first_bytes(stream: &tokio::net::TcpStream, timer: Timer) -> io::Result<()> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if n == buf.len() || buf[..n] != H2_PREFACE[..n] {
            return Ok(());
        }
        // Part of the preface: `peek` answers at once while those bytes wait, so pause briefly.
        timer.sleep(Duration::from_millis(5)).await;
    }
}

/// What one connection is doing: requests in flight, and when the last one ended.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds from `opened` to the end of the last request.
    idle_since_ms: AtomicU64,
    opened: std::time::Instant,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            opened: std::time::Instant::now(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// How long the connection has had no request in flight (`None`: one is in flight).
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.idle_since_ms.load(Ordering::Relaxed);
        Some(Duration::from_millis(
            self.elapsed_ms().saturating_sub(since),
        ))
    }
}

/// One request in flight on a connection, until its answer's body is dropped.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .idle_since_ms
            .store(self.0.elapsed_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The service of one connection: counts its requests in flight for the idle timeout.
#[derive(Clone, Debug)]
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, B> Service<http::Request<Incoming>> for Tracked<S>
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>,
{
    type Response = http::Response<TrackedBody<B>>;
    type Error = Infallible;
    type Future = TrackedFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Incoming>) -> Self::Future {
        TrackedFuture {
            in_flight: Some(InFlight::new(&self.activity)),
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The response future of [`Tracked`].
    struct TrackedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

impl<F, B> Future for TrackedFuture<F>
where
    F: Future<Output = Result<http::Response<B>, Infallible>>,
{
    type Output = Result<http::Response<TrackedBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = ready!(this.inner.poll(cx))?;
        let in_flight = this.in_flight.take();
        Poll::Ready(Ok(resp.map(|inner| TrackedBody { inner, in_flight })))
    }
}

pin_project! {
    /// An answer's body, holding its request's [`InFlight`] until it is dropped.
    struct TrackedBody<B> {
        #[pin]
        inner: B,
        in_flight: Option<InFlight>,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Woken when an `accept` anywhere in the process fails (out of file descriptors, most likely):
/// connections still waiting for their first byte, and keep-alive connections with no request in
/// flight, close at once, so the descriptors go to clients that send requests. A client that
/// opens connections and sends nothing would otherwise hold the table until the header timeout,
/// and every normal request behind it would wait as long.
fn shed() -> &'static Notify {
    static SHED: std::sync::OnceLock<Notify> = std::sync::OnceLock::new();
    SHED.get_or_init(Notify::new)
}

/// The wait after a failed `accept` (out of file descriptors, say): 5 ms, doubling to 1 s while
/// it keeps failing, as Go's `net/http` server does, so a full fd table is not spun on.
fn accept_backoff(previous: Option<Duration>) -> Duration {
    previous.map_or(Duration::from_millis(5), |d| {
        (d * 2).min(Duration::from_secs(1))
    })
}

/// Serves `service` on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight connections finish within the grace period.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()>
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(config.timer)
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(config.timer)
        .keep_alive_interval(config.http2_keep_alive_interval)
        .keep_alive_timeout(config.http2_keep_alive_timeout)
        .max_concurrent_streams(config.http2_max_concurrent_streams);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    // Keep the timer wheel's next wake-up near, when asked (see `ServeConfig::keep_timer_warm`).
    let timer = config.timer;
    let ticker = config.keep_timer_warm.then(|| {
        tokio::spawn(async {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
            }
        })
    });
    tokio::pin!(shutdown);
    let mut backoff = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => {
                    backoff = None;
                    conn
                }
                Err(e) => {
                    // Out of file descriptors and similar: free what silent and idle
                    // connections hold, log, back off, keep serving.
                    shed().notify_waiters();
                    let wait = accept_backoff(backoff);
                    backoff = Some(wait);
                    tracing::warn!(error = %e, backoff_ms = wait.as_millis() as u64, "accept failed");
                    tokio::select! {
                        () = timer.sleep(wait) => {}
                        () = &mut shutdown => break,
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let builder = Arc::clone(&builder);
        let service = service.clone();
        let watcher = graceful.watcher();
        let header_read_timeout = config.header_read_timeout;
        let idle_timeout = config.idle_timeout;
        tokio::spawn(async move {
            // A connection that never sends a byte is closed once the header read timeout is
            // over; hyper's own deadline only starts once the protocol is known.
            let started = tokio::select! {
                first = first_bytes(&stream, timer) => first,
                () = timer.sleep(header_read_timeout) => Err(io::ErrorKind::TimedOut.into()),
                () = shed().notified() => Err(io::Error::other("shed: out of file descriptors")),
            };
            if let Err(e) = started {
                tracing::debug!(%peer, error = %e, "connection closed before its first request");
                return;
            }
            let activity = Arc::new(Activity::new());
            let service = Tracked {
                inner: service,
                activity: Arc::clone(&activity),
            };
            // hyper's own answers to requests it cannot parse get the OpenAI error JSON.
            let conn = builder.serve_connection(
                TokioIo::new(JsonParseErrors::new(stream)),
                TowerToHyperService::new(service),
            );
            let conn = watcher.watch(conn.into_owned());
            tokio::pin!(conn);
            let mut wait = idle_timeout;
            loop {
                tokio::select! {
                    ended = &mut conn => {
                        if let Err(e) = ended {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = shed().notified() => if activity.idle_for().is_some() {
                        tracing::debug!(%peer, "idle connection closed: out of file descriptors");
                        break;
                    },
                    () = timer.sleep(wait) => match activity.idle_for() {
                        Some(idle) if idle >= idle_timeout => {
                            tracing::debug!(%peer, "idle connection closed");
                            break;
                        }
                        Some(idle) => wait = idle_timeout - idle,
                        None => wait = idle_timeout,
                    },
                }
            }
        });
    }
    drop(listener);
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    tracing::info!(
        grace_s = config.grace_period.as_secs_f64(),
        "shutting down: draining connections"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(config.grace_period) => {
            // Before the connections are dropped (by the caller's runtime): their calls are cut.
            crate::types::extensions::set_grace_over();
            tracing::warn!("grace period over; closing remaining connections");
        }
    }
    Ok(())
}

/// Opens `n` listening sockets on `addr` (at least one). On Unix each has `SO_REUSEPORT`, so the
/// kernel spreads new connections across them; elsewhere they share one socket. With port 0, all
/// get the port the first one was given.
pub fn bind_listeners(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let open = |addr: SocketAddr| -> io::Result<std::net::TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        Ok(socket.into())
    };
    let first = open(addr)?;
    let bound = first.local_addr()?;
    let mut out = Vec::with_capacity(n.max(1));
    out.push(first);
    for _ in 1..n.max(1) {
        #[cfg(unix)]
        out.push(open(bound)?);
        #[cfg(not(unix))]
        out.push(out[0].try_clone()?);
    }
    Ok(out)
}

/// Serves `service` with one thread per listener, each running its own single-threaded tokio
/// runtime: a connection, the tasks of its requests and the upstream connections they open (see
/// [`HttpClient`](crate::provider::HttpClient)'s per-thread pools) stay on one thread, so no
/// request waits for a wake-up from another core. Background work started before (the spend
/// writer, Redis and database connections) stays on the caller's runtime. The server's deadlines
/// are armed on `config.timer`: give it [`Timer::dedicated`] (and the stack's timeout layer the
/// same) so that a serving thread with nothing else due parks without a kernel timer (see
/// `docs/architecture.md`), as the binary does. When `shutdown` resolves every thread stops
/// accepting and drains as [`serve`] does; this returns when all have finished.
pub async fn serve_per_thread<S, B>(
    listeners: Vec<std::net::TcpListener>,
    service: S,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()>
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut threads = Vec::with_capacity(listeners.len());
    for (i, listener) in listeners.into_iter().enumerate() {
        let service = service.clone();
        let config = config.clone();
        let mut stop = stop_rx.clone();
        let done = done_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("llmgate-worker-{i}"))
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|rt| {
                        rt.block_on(async move {
                            let listener = TcpListener::from_std(listener)?;
                            let stopped = async move {
                                let _ = stop.wait_for(|s| *s).await;
                            };
                            serve(listener, service, config, stopped).await
                        })
                    });
                let _ = done.send(result);
            })?;
        threads.push(thread);
    }
    drop(done_tx);
    tokio::pin!(shutdown);
    let mut result = Ok(());
    let mut running = threads.len();
    let mut stopping = false;
    while running > 0 {
        tokio::select! {
            () = &mut shutdown, if !stopping => {
                stopping = true;
                let _ = stop_tx.send(true);
            }
            finished = done_rx.recv() => match finished {
                Some(r) => {
                    running -= 1;
                    if let Err(e) = r {
                        // One worker failing stops them all: a half-served port is worse.
                        tracing::error!(error = %e, "a server thread failed");
                        let _ = stop_tx.send(true);
                        stopping = true;
                        result = Err(e);
                    }
                }
                None => break,
            },
        }
    }
    for t in threads {
        let _ = t.join();
    }
    result
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
