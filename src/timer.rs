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
    cell::RefCell,
    pin::Pin,
    time::{Duration, Instant},
};

use tokio::time::Sleep;

use crate::clock::Timer;

thread_local! {
    /// The timer this thread's deadlines go to, when it shares the dedicated timer thread.
    static SHARED: RefCell<Option<Timer>> = const { RefCell::new(None) };
}

/// Sends the deadlines this thread creates from now on to the dedicated timer thread (starting it
/// if needed). Returns whether it did: `false` when the timer thread could not be started.
pub(crate) fn share_on_this_thread() -> bool {
    match Timer::dedicated() {
        Ok(t) => {
            SHARED.set(Some(t));
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not start the timer thread");
            false
        }
    }
}

/// Whether this thread's deadlines go to the shared timer thread.
pub(crate) fn is_shared() -> bool {
    SHARED.with_borrow(Option::is_some)
}

/// This thread's timer.
fn timer() -> Timer {
    SHARED.with_borrow(|t| t.clone().unwrap_or_default())
}

/// `tokio::time::sleep`, on the shared timer thread when this thread shares it.
pub(crate) fn sleep(duration: Duration) -> Sleep {
    timer().sleep(duration)
}

/// hyper's timer for the server's header read timeout: tokio's, on the shared timer thread when
/// the serving thread shares it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ServeTimer;

impl hyper::rt::Timer for ServeTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        hyper::rt::Timer::sleep(&timer(), duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        hyper::rt::Timer::sleep_until(&timer(), deadline)
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        hyper::rt::Timer::reset(&timer(), sleep, new_deadline);
    }

    fn now(&self) -> Instant {
        hyper::rt::Timer::now(&timer())
    }
}
