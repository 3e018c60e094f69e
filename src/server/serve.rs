//! [`serve`]: accept loop over hyper-util (HTTP/1.1 and h2c), TCP_NODELAY, graceful shutdown.

use std::{convert::Infallible, future::Future, io, time::Duration};

use bytes::Bytes;
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower_service::Service;

use crate::error::BoxError;

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
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    // Keep the timer wheel's next wake-up near. Every request arms far deadlines (the header read
    // timeout, the provider timeout) and cancels them when it ends; arming one in an empty wheel
    // unparks the runtime's sleeping worker (an eventfd write and a futex wake per request,
    // measured with strace at concurrency 1). A tick every 500 ms costs two wake-ups a second.
    let ticker = tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
        }
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
    ticker.abort();
    tracing::info!(
        grace_s = config.grace_period.as_secs_f64(),
        "shutting down: draining connections"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(config.grace_period) => tracing::warn!("grace period over; closing remaining connections"),
    }
    Ok(())
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
