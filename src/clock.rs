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

//! Time, in one place: the [`Clock`] every layer reads (monotonic and wall), and the [`Timer`]
//! that the layers and the server arm their deadlines on.
//!
//! The [`Clock`] is injected, not ambient: the gateway's builder takes one
//! ([`GatewayBuilder::clock`](crate::gateway::GatewayBuilder::clock),
//! [`BuildOptions::clock`](crate::governance::BuildOptions::clock)) and hands the same handle to
//! every layer, store and router that reads time; a layer built on its own defaults to
//! [`Clock::system`]. [`Clock::system`] follows tokio's clock, so a unit test on a paused runtime
//! (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`) moves rate-limit windows, budget
//! periods and cooldowns; outside a paused test it is the system's clock. [`Clock::manual`] is for
//! tests over real sockets (where tokio's paused clock cannot be used: it jumps ahead whenever the
//! runtime idles on I/O): it starts at the real time and moves only when the test calls
//! [`Clock::advance`].
//!
//! The [`Timer`] is injected, as hyper injects its `Timer`: a layer or server that arms deadlines
//! takes one (default: tokio's timer on the runtime the deadline is created on). The binary gives
//! every serving thread [`Timer::dedicated`], a shared timer thread, so that a serving thread with
//! nothing else to time parks without a timeout (see docs/architecture.md, "Per-request deadlines
//! on a timer thread"). Nothing in the library starts that thread unless asked. Deadlines are real
//! time over real sockets: the [`Timer`] does not follow a manual [`Clock`].

use std::{
    fmt,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::{runtime::Handle, time::Sleep};

/// The clock the gateway reads: monotonic time (cooldowns, cache ages) and wall time (rate-limit
/// windows, budget periods, spend timestamps, `created`).
///
/// Cheap to clone (an `Option<Arc>`); reading it takes no lock: the system clock reads what it
/// always read, a manual clock adds one atomic load.
///
/// ```
/// use std::time::Duration;
/// use llmgate::clock::Clock;
///
/// let clock = Clock::manual();
/// let (wall, mono) = (clock.unix_ms(), clock.monotonic_ms());
/// clock.advance(Duration::from_secs(9));
/// assert_eq!(clock.unix_ms() - wall, 9_000);
/// assert_eq!(clock.monotonic_ms() - mono, 9_000);
/// ```
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

/// A manual clock's state: where it started, and how far the test has moved it.
struct Manual {
    /// tokio's clock when the manual clock was made.
    start: tokio::time::Instant,
    /// The system's monotonic reading ([`Clock::system`]) then.
    start_mono_ms: u64,
    /// The wall clock then.
    start_wall: SystemTime,
    /// Nanoseconds moved since (by [`Clock::advance`]).
    moved_ns: AtomicU64,
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::system"),
            Some(m) => write!(f, "Clock::manual(+{:?})", m.moved()),
        }
    }
}

impl Manual {
    fn moved(&self) -> Duration {
        Duration::from_nanos(self.moved_ns.load(Ordering::Acquire))
    }
}

/// The system's monotonic clock on tokio's clock, in milliseconds since first use, plus one.
fn system_monotonic_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let now = tokio::time::Instant::now().into_std();
    let base = *BASE.get_or_init(|| now);
    u64::try_from(now.saturating_duration_since(base).as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// The system's wall clock, moved by how far tokio's clock is from the system's monotonic clock
/// (zero unless a paused test moved or held it).
fn system_wall() -> SystemTime {
    let wall = SystemTime::now();
    let real = Instant::now();
    let tokio_now = tokio::time::Instant::now().into_std();
    if tokio_now >= real {
        wall + (tokio_now - real)
    } else {
        wall - (real - tokio_now)
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Clock {
    /// The system's clocks, following tokio's clock (paused in paused tests): the default.
    #[must_use]
    pub const fn system() -> Self {
        Self { manual: None }
    }

    /// A clock for tests: starts at the real time (monotonic and wall) and then stands still,
    /// moving only by [`Clock::advance`] (or [`Clock::advance_to`]). Clones share it: advancing
    /// one advances every layer given a clone. Never used by the `llmgate` binary.
    #[must_use]
    pub fn manual() -> Self {
        Self {
            manual: Some(Arc::new(Manual {
                start: tokio::time::Instant::now(),
                start_mono_ms: system_monotonic_ms(),
                start_wall: system_wall(),
                moved_ns: AtomicU64::new(0),
            })),
        }
    }

    /// Whether this is a manual clock.
    #[must_use]
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Moves a manual clock forward by `by` (both readings together). The system clock cannot be
    /// moved: there it does nothing (a paused tokio runtime moves it with
    /// `tokio::time::advance`).
    pub fn advance(&self, by: Duration) {
        if let Some(m) = &self.manual {
            let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
            let _ = m
                .moved_ns
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                    Some(v.saturating_add(ns))
                });
        }
    }

    /// Moves a manual clock forward until its wall reading is `wall`; a clock already there or
    /// past it does not move (time never goes back). Returns how far it moved.
    pub fn advance_to(&self, wall: SystemTime) -> Duration {
        let by = wall
            .duration_since(self.system_now())
            .unwrap_or(Duration::ZERO);
        if self.manual.is_none() {
            return Duration::ZERO;
        }
        self.advance(by);
        by
    }

    /// Now, on this clock, as a tokio instant.
    #[must_use]
    pub fn now(&self) -> tokio::time::Instant {
        match &self.manual {
            None => tokio::time::Instant::now(),
            Some(m) => m.start + m.moved(),
        }
    }

    /// A monotonic reading in milliseconds, never 0 (so that 0 can mean "never"): read it once
    /// for many comparisons. Only differences between readings of one clock mean anything.
    #[must_use]
    pub fn monotonic_ms(&self) -> u64 {
        match &self.manual {
            None => system_monotonic_ms(),
            Some(m) => m.start_mono_ms.saturating_add(duration_ms(m.moved())),
        }
    }

    /// The wall clock.
    #[must_use]
    pub fn system_now(&self) -> SystemTime {
        match &self.manual {
            None => system_wall(),
            Some(m) => m.start_wall + m.moved(),
        }
    }

    /// Milliseconds since the Unix epoch, on [`Clock::system_now`].
    #[must_use]
    pub fn unix_ms(&self) -> i64 {
        self.system_now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    /// Seconds since the Unix epoch, on [`Clock::system_now`] (OpenAI's `created`).
    #[must_use]
    pub fn unix_secs(&self) -> u64 {
        self.system_now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// The current minute since the Unix epoch (rate-limit windows), on [`Clock::system_now`].
    #[must_use]
    pub fn unix_minute(&self) -> u64 {
        self.unix_secs() / 60
    }

    /// How long until the next wall-clock minute starts (a rate-limit window's `retry-after`).
    #[must_use]
    pub fn to_next_minute(&self) -> Duration {
        Duration::from_secs(60 - self.unix_secs() % 60)
    }
}

/// `governor`'s rate limiters read the same clock (an rpm limiter built with
/// `RateLimiter::direct_with_clock`).
impl governor::clock::Clock for Clock {
    type Instant = Instant;

    fn now(&self) -> Instant {
        Self::now(self).into_std()
    }
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

/// Lets `d` of real time pass on a test thread that runs no runtime (to show that a manual clock
/// does not follow it).
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn let_real_time_pass(d: Duration) {
    std::thread::sleep(d);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_system_clock_follows_a_paused_runtime() {
        let c = Clock::system();
        let (mono, wall, minute) = (c.monotonic_ms(), c.unix_ms(), c.unix_minute());
        tokio::time::advance(Duration::from_secs(120)).await;
        assert!(c.monotonic_ms() - mono >= 120_000);
        let moved = c.unix_ms() - wall;
        assert!((120_000..121_000).contains(&moved), "{moved}");
        assert!(c.unix_minute() >= minute + 2);
    }

    fn real_unix_ms() -> i64 {
        i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(0)
    }

    #[test]
    fn outside_a_runtime_the_wall_clock_is_the_systems() {
        let ours = Clock::system().unix_ms();
        let system = real_unix_ms();
        assert!((ours - system).abs() < 1000, "{ours} vs {system}");
        assert!(!Clock::default().is_manual());
    }

    #[test]
    fn a_manual_clock_starts_at_the_real_time_and_stands_still() {
        let c = Clock::manual();
        assert!(c.is_manual());
        assert!((c.unix_ms() - real_unix_ms()).abs() < 1000);
        let (mono, wall, now) = (c.monotonic_ms(), c.unix_ms(), c.now());
        let_real_time_pass(Duration::from_millis(20));
        assert_eq!(c.monotonic_ms(), mono);
        assert_eq!(c.unix_ms(), wall);
        assert_eq!(c.now(), now);
        assert!(mono > 0, "0 means never");
    }

    #[test]
    fn advancing_moves_every_reading_and_every_clone_together() {
        let c = Clock::manual();
        let other = c.clone();
        let (mono, wall, now, secs) = (c.monotonic_ms(), c.unix_ms(), c.now(), c.unix_secs());
        other.advance(Duration::from_millis(9_500));
        assert_eq!(c.monotonic_ms() - mono, 9_500);
        assert_eq!(c.unix_ms() - wall, 9_500);
        assert_eq!(c.now() - now, Duration::from_millis(9_500));
        assert!((9..=10).contains(&(c.unix_secs() - secs)));
        let g = governor::clock::Clock::now(&c);
        c.advance(Duration::from_secs(1));
        assert_eq!(governor::clock::Clock::now(&c) - g, Duration::from_secs(1));
    }

    #[test]
    fn advance_to_goes_forward_only() {
        let c = Clock::manual();
        let start = c.system_now();
        let minute_later = start + Duration::from_secs(60);
        assert_eq!(c.advance_to(minute_later), Duration::from_secs(60));
        assert_eq!(c.system_now(), minute_later);
        assert_eq!(c.advance_to(start), Duration::ZERO);
        assert_eq!(c.system_now(), minute_later);
        // The next minute starts at a minute boundary.
        let next = c.to_next_minute();
        c.advance(next);
        assert_eq!(c.unix_secs() % 60, 0);
        assert_eq!(c.to_next_minute(), Duration::from_secs(60));
    }

    #[test]
    fn the_system_clock_cannot_be_moved() {
        let c = Clock::system();
        c.advance(Duration::from_secs(3600));
        assert_eq!(
            c.advance_to(SystemTime::now() + Duration::from_secs(60)),
            Duration::ZERO
        );
        assert!((c.unix_ms() - real_unix_ms()).abs() < 1000);
        assert_eq!(format!("{c:?}"), "Clock::system");
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
