//! [`serve`]: accept loop over hyper-util (HTTP/1.1 and h2c), TCP_NODELAY, graceful shutdown;
//! [`serve_per_thread`]: the same on one single-threaded runtime per listener (the binary's mode).

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
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
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tower_service::Service;

use crate::{
    error::BoxError,
    timer::{self, ServeTimer},
};

/// Set once a server's shutdown grace period has run out (see [`grace_over`]).
static GRACE_OVER: AtomicBool = AtomicBool::new(false);

/// Whether a shutdown grace period of [`serve`] in this process has run out: the requests still
/// in flight are then being cut by the server, not abandoned by their clients. The cost layer
/// reads it when a call is dropped before its end, to mark its spend row
/// ([`STATUS_CUT_AT_SHUTDOWN`](crate::cost::STATUS_CUT_AT_SHUTDOWN)). Process-wide and never
/// reset: it is meant for a process that is exiting.
#[must_use]
pub fn grace_over() -> bool {
    GRACE_OVER.load(Ordering::Relaxed)
}

/// How [`serve`] runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeConfig {
    /// How long in-flight requests (streams included) may run after shutdown starts. Default 30 s.
    pub grace_period: Duration,
    /// Time allowed for a client to send request headers. Default 30 s.
    pub header_read_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(30),
        }
    }
}

impl ServeConfig {
    /// Sets the grace period.
    #[must_use]
    pub fn grace_period(mut self, d: Duration) -> Self {
        self.grace_period = d;
        self
    }
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
        .timer(ServeTimer)
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(ServeTimer);
    let graceful = GracefulShutdown::new();
    // Keep the timer wheel's next wake-up near. Every request arms far deadlines (the header read
    // timeout, the provider timeout) and cancels them when it ends; arming one in an empty wheel
    // unparks the runtime's sleeping worker (an eventfd write and a futex wake per request,
    // measured with strace at concurrency 1). A tick every 500 ms costs two wake-ups a second.
    // Not on `serve_per_thread`'s threads: their deadlines are on the shared timer thread
    // (`crate::timer`), and an empty wheel lets them park without a timeout.
    let ticker = (!timer::is_shared()).then(|| {
        tokio::spawn(async {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
            }
        })
    });
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and similar: log, back off briefly, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let conn = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(service.clone()),
        );
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
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
            GRACE_OVER.store(true, Ordering::Relaxed);
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
/// writer, Redis and database connections) stays on the caller's runtime. The per-request
/// deadlines (the header read timeout, the [timeout layer](crate::timeout)'s limits) go to one
/// shared timer thread, so a serving thread with nothing else due parks without a kernel timer
/// (see `docs/architecture.md`). When `shutdown` resolves every thread stops accepting and
/// drains as [`serve`] does; this returns when all have finished.
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
                // Per-request deadlines go to the shared timer thread (see `crate::timer`).
                timer::share_on_this_thread();
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
