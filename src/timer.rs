//! Where the per-request deadlines live: on the runtime that creates them, or, on the gateway's
//! serving threads, on one shared timer thread.
//!
//! Every request arms deadlines it almost never reaches: hyper's header read timeout and the
//! [timeout layer](crate::timeout)'s call limit (600 s by default). On a serving thread's own
//! runtime they keep its timer wheel non-empty, so each time the thread parks it passes a finite
//! timeout to `epoll_wait`, and the kernel arms and cancels a high-resolution timer around every
//! park. On this VM that costs 1–2 µs of system time per request at concurrency 1 (an A/B of the
//! pass-through proxy with and without one pending timer: see docs/benchmarks.md).
//!
//! [`serve_per_thread`](crate::server::serve_per_thread) therefore marks its serving threads
//! ([`share_on_this_thread`]), and the deadlines created there go to a timer thread of their own
//! (a single-threaded runtime with only the time driver). A serving thread with nothing else to
//! time parks with no timeout. Arming or cancelling a deadline there takes the timer wheel's lock
//! (uncontended: two serving threads) and never wakes the timer thread, whose wheel ticks every
//! [`TICK`] so that a deadline further away than that is never the next one it must wake for.
//! When a deadline is reached, the timer thread wakes the request's task like any other waker.
//!
//! Anywhere else (a library user's runtime, tests with a paused clock) [`sleep`] and
//! [`sleep_until`] are `tokio::time`'s, on the current runtime.

use std::{
    cell::Cell,
    pin::Pin,
    sync::OnceLock,
    time::{Duration, Instant},
};

use hyper_util::rt::TokioTimer;
use tokio::{runtime::Handle, time::Sleep};

/// How often the timer thread's wheel wakes: arming a deadline sooner than this from now wakes
/// the timer thread (an `eventfd` write); later ones do not.
pub(crate) const TICK: Duration = Duration::from_millis(100);

thread_local! {
    /// Whether this thread's deadlines go to the shared timer thread.
    static SHARED: Cell<bool> = const { Cell::new(false) };
}

/// The timer thread's runtime, started on first use; `None` when it could not be started (the
/// deadlines then stay on the calling runtime).
static TIMER: OnceLock<Option<Handle>> = OnceLock::new();

fn timer_handle() -> Option<&'static Handle> {
    TIMER.get_or_init(start).as_ref()
}

fn start() -> Option<Handle> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("llmgate-timer".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(error = %e, "could not start the timer thread");
                    let _ = tx.send(None);
                    return;
                }
            };
            let _ = tx.send(Some(rt.handle().clone()));
            rt.block_on(async {
                let mut tick = tokio::time::interval(TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                }
            });
        });
    match spawned {
        Ok(_) => rx.recv().ok().flatten(),
        Err(e) => {
            tracing::warn!(error = %e, "could not start the timer thread");
            None
        }
    }
}

/// Sends the deadlines this thread creates from now on to the shared timer thread (starting it
/// if needed). Returns whether it did: `false` when the timer thread could not be started.
pub(crate) fn share_on_this_thread() -> bool {
    let shared = timer_handle().is_some();
    SHARED.set(shared);
    shared
}

/// Whether this thread's deadlines go to the shared timer thread.
pub(crate) fn is_shared() -> bool {
    SHARED.get()
}

/// Runs `f` with the shared timer thread's runtime entered when this thread shares it, so that
/// the `tokio::time` deadlines `f` creates are registered there.
fn on_timer<T>(f: impl FnOnce() -> T) -> T {
    match SHARED.get().then(timer_handle).flatten() {
        Some(handle) => {
            let _entered = handle.enter();
            f()
        }
        None => f(),
    }
}

/// `tokio::time::sleep`, on the shared timer thread when this thread shares it.
pub(crate) fn sleep(duration: Duration) -> Sleep {
    on_timer(|| tokio::time::sleep(duration))
}

/// `tokio::time::sleep_until`, on the shared timer thread when this thread shares it.
pub(crate) fn sleep_until(deadline: tokio::time::Instant) -> Sleep {
    on_timer(|| tokio::time::sleep_until(deadline))
}

/// hyper's timer for the server's header read timeout: tokio's, on the shared timer thread when
/// the serving thread shares it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ServeTimer;

impl hyper::rt::Timer for ServeTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        on_timer(|| TokioTimer::new().sleep(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        on_timer(|| TokioTimer::new().sleep_until(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        // A tokio sleep keeps the driver it was registered with.
        TokioTimer::new().reset(sleep, new_deadline);
    }

    fn now(&self) -> Instant {
        TokioTimer::new().now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_thread_times_on_the_timer_thread() {
        // No runtime on this thread at all: the deadlines still fire, on the timer thread.
        std::thread::spawn(|| {
            assert!(!is_shared());
            assert!(share_on_this_thread());
            assert!(is_shared());
            let started = Instant::now();
            futures_executor_block_on(sleep(Duration::from_millis(30)));
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(30), "{took:?}");
            let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
            futures_executor_block_on(sleep_until(deadline));
            assert!(tokio::time::Instant::now() >= deadline);
        })
        .join()
        .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn other_threads_keep_their_runtimes_clock() {
        // Not shared: the paused clock of this test's runtime drives the sleep.
        let started = tokio::time::Instant::now();
        sleep(Duration::from_secs(3600)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(3600));
    }

    /// Polls `fut` to completion on this thread, parking between polls.
    fn futures_executor_block_on<F: std::future::Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        let thread = std::thread::current();
        let waker = std::task::Waker::from(std::sync::Arc::new(Unparker(thread)));
        let mut cx = std::task::Context::from_waker(&waker);
        loop {
            if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park();
        }
    }

    struct Unparker(std::thread::Thread);

    impl std::task::Wake for Unparker {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
}
