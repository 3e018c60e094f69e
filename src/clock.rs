//! Time, in one place: the monotonic and wall clocks every layer reads, and the [`Timer`] that the
//! layers and the server arm their deadlines on.
//!
//! Both clocks follow tokio's clock, so a test on a paused runtime (`#[tokio::test(start_paused =
//! true)]`, `tokio::time::advance`) moves rate-limit windows, budget periods and cooldowns without
//! sleeping on the wall clock. Outside a paused test they are the system's clocks.
//!
//! The [`Timer`] is injected, as hyper injects its `Timer`: a layer or server that arms deadlines
//! takes one (default: tokio's timer on the runtime the deadline is created on). The binary gives
//! every serving thread [`Timer::dedicated`], a shared timer thread, so that a serving thread with
//! nothing else to time parks without a timeout (see docs/architecture.md, "Per-request deadlines
//! on a timer thread"). Nothing in the library starts that thread unless asked.

use std::{
    pin::Pin,
    sync::OnceLock,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::{runtime::Handle, time::Sleep};

/// Now, on tokio's clock (paused in paused tests).
#[must_use]
pub fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// A process-wide monotonic clock in milliseconds since first use, plus one (so that 0 can mean
/// "never"), on tokio's clock: read it once for many comparisons.
#[must_use]
pub fn monotonic_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let now = tokio::time::Instant::now().into_std();
    let base = *BASE.get_or_init(|| now);
    u64::try_from(now.saturating_duration_since(base).as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// The wall clock: the system's, moved by how far tokio's clock is from the system's monotonic
/// clock (zero unless a paused test moved or held it).
#[must_use]
pub fn system_now() -> SystemTime {
    let wall = SystemTime::now();
    let real = Instant::now();
    let tokio_now = tokio::time::Instant::now().into_std();
    if tokio_now >= real {
        wall + (tokio_now - real)
    } else {
        wall - (real - tokio_now)
    }
}

/// Milliseconds since the Unix epoch, on [`system_now`].
#[must_use]
pub fn unix_ms() -> i64 {
    system_now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Seconds since the Unix epoch, on [`system_now`] (OpenAI's `created`).
#[must_use]
pub fn unix_secs() -> u64 {
    system_now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The current minute since the Unix epoch (rate-limit windows), on [`system_now`].
#[must_use]
pub fn unix_minute() -> u64 {
    unix_secs() / 60
}

/// Where deadlines are armed: tokio's timer on the current runtime (the default), or the
/// process's dedicated timer thread.
///
/// `Copy`: a layer or a request carries it for free (no reference count shared between serving
/// threads). Implements [`hyper::rt::Timer`], so the same handle serves hyper's header read
/// timeout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timer {
    dedicated: bool,
}

/// How often the dedicated timer thread's wheel wakes: arming a deadline sooner than this from
/// now wakes the timer thread (an `eventfd` write); later ones do not.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// The dedicated timer thread's runtime, once started.
static TIMER_THREAD: OnceLock<Result<Handle, String>> = OnceLock::new();

impl Timer {
    /// tokio's timer on the runtime each deadline is created on (paused in paused tests).
    #[must_use]
    pub const fn current() -> Self {
        Self { dedicated: false }
    }

    /// The process's dedicated timer thread (started on the first call): a single-threaded
    /// runtime with only the time driver, whose wheel ticks every 100 ms. Arming a deadline takes
    /// that wheel's lock and never wakes the thread unless the deadline is nearer than a tick.
    ///
    /// # Errors
    /// When the thread or its runtime could not be started.
    pub fn dedicated() -> std::io::Result<Self> {
        match TIMER_THREAD.get_or_init(start_timer_thread) {
            Ok(_) => Ok(Self { dedicated: true }),
            Err(e) => Err(std::io::Error::other(e.clone())),
        }
    }

    /// Whether deadlines go to the dedicated timer thread.
    #[must_use]
    pub const fn is_dedicated(&self) -> bool {
        self.dedicated
    }

    fn on<T>(self, f: impl FnOnce() -> T) -> T {
        match TIMER_THREAD
            .get()
            .and_then(|r| r.as_ref().ok())
            .filter(|_| self.dedicated)
        {
            Some(handle) => {
                let _entered = handle.enter();
                f()
            }
            None => f(),
        }
    }

    /// A sleep of `duration` on this timer.
    pub fn sleep(self, duration: Duration) -> Sleep {
        self.on(|| tokio::time::sleep(duration))
    }

    /// A sleep until `deadline` on this timer.
    pub fn sleep_until(self, deadline: tokio::time::Instant) -> Sleep {
        self.on(|| tokio::time::sleep_until(deadline))
    }
}

fn start_timer_thread() -> Result<Handle, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("llmgate-timer".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = tx.send(Ok(rt.handle().clone()));
            rt.block_on(async {
                let mut tick = tokio::time::interval(TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                }
            });
        })
        .map_err(|e| e.to_string())?;
    rx.recv()
        .map_err(|e| e.to_string())
        .and_then(|started| started)
}

impl hyper::rt::Timer for Timer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.on(|| hyper_util::rt::TokioTimer::new().sleep(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.on(|| hyper_util::rt::TokioTimer::new().sleep_until(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        // A tokio sleep keeps the driver it was registered with.
        hyper_util::rt::TokioTimer::new().reset(sleep, new_deadline);
    }

    fn now(&self) -> Instant {
        hyper_util::rt::TokioTimer::new().now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_clocks_follow_a_paused_runtime() {
        let (mono, wall, minute) = (monotonic_ms(), unix_ms(), unix_minute());
        tokio::time::advance(Duration::from_secs(120)).await;
        assert!(monotonic_ms() - mono >= 120_000);
        let moved = unix_ms() - wall;
        assert!((120_000..121_000).contains(&moved), "{moved}");
        assert!(unix_minute() >= minute + 2);
    }

    #[test]
    fn outside_a_runtime_the_wall_clock_is_the_systems() {
        let ours = unix_ms();
        let system = i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(0);
        assert!((ours - system).abs() < 1000, "{ours} vs {system}");
    }

    #[test]
    fn the_dedicated_timer_fires_without_a_runtime_on_this_thread() {
        let timer = Timer::dedicated().unwrap();
        assert!(timer.is_dedicated());
        let started = Instant::now();
        block_on(timer.sleep(Duration::from_millis(30)));
        assert!(started.elapsed() >= Duration::from_millis(30));
        let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
        block_on(timer.sleep_until(deadline));
        assert!(tokio::time::Instant::now() >= deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn the_current_timer_keeps_the_runtimes_paused_clock() {
        let started = tokio::time::Instant::now();
        Timer::current().sleep(Duration::from_secs(3600)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(3600));
    }

    /// Polls `fut` to completion on this thread, parking between polls.
    fn block_on<F: std::future::Future>(fut: F) -> F::Output {
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
