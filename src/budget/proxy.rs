//! The proxy-wide budget: `litellm_settings.max_budget` with `budget_duration`.
//!
//! As in LiteLLM, the budget and the spend counted against it live in a user row,
//! [`PROXY_BUDGET_ID`] (`litellm-proxy-budget`): every spend batch adds its cost to that row in the
//! same transaction as the key, team and user totals, and its period rolls over as a user's does.
//! This gateway keeps the row's spend and period end in two atomics: the spend writer updates
//! them after each batch it commits ([`ProxyBudget::observe`]), and [`spawn_refresh`] reads the
//! row every few seconds to see other instances' spend. A call reads the atomics and the spend
//! ledger's pending total: no lock, no await.

use std::{
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
    time::Duration,
};

use crate::{
    clock::Clock,
    error::{ErrorKind, LlmError},
    store::{BudgetState, SpendSink},
};

/// `reset_at` before the first [`ProxyBudget::observe`]: any state is newer.
const UNKNOWN: i64 = i64::MIN;
/// `reset_at` of a budget that never resets.
const NEVER: i64 = i64::MAX;

/// The proxy-wide budget and its spend in the current period: how it is kept is described in
/// the [budget module docs](crate::budget).
#[derive(Debug)]
pub struct ProxyBudget {
    max_budget: f64,
    budget_duration: Option<String>,
    /// Stored spend of the current period, as `f64` bits.
    spend: AtomicU64,
    /// End of the current period (Unix ms), [`NEVER`] or [`UNKNOWN`].
    reset_at: AtomicI64,
    /// Serializes [`ProxyBudget::observe`] (the spend writer and the refresh task); never taken
    /// by a call.
    observing: Mutex<()>,
    /// Judges the period's end.
    clock: Clock,
}

impl ProxyBudget {
    /// A budget of `max_budget` USD per `budget_duration` (`30s`, `1h`, `1d`, `1mo`, …; `None`:
    /// never resets). Its spend is unknown (0) until [`ProxyBudget::observe`].
    #[must_use]
    pub fn new(max_budget: f64, budget_duration: Option<&str>) -> Self {
        Self {
            max_budget,
            budget_duration: budget_duration.map(str::to_owned),
            spend: AtomicU64::new(0.0_f64.to_bits()),
            reset_at: AtomicI64::new(UNKNOWN),
            observing: Mutex::new(()),
            clock: Clock::system(),
        }
    }

    /// Judges the period's end on `clock` (default: [`Clock::system`]).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The budget, USD.
    #[must_use]
    pub fn max_budget(&self) -> f64 {
        self.max_budget
    }

    /// The budget period, as configured.
    #[must_use]
    pub fn budget_duration(&self) -> Option<&str> {
        self.budget_duration.as_deref()
    }

    /// Stored spend of the current period (0 once the period has ended, before the store rolls
    /// it over).
    #[must_use]
    pub fn spend(&self) -> f64 {
        let reset_at = self.reset_at.load(Ordering::Acquire);
        if reset_at != UNKNOWN && reset_at != NEVER && reset_at <= self.clock.unix_ms() {
            return 0.0;
        }
        f64::from_bits(self.spend.load(Ordering::Acquire))
    }

    /// End of the current period (Unix ms), if the budget resets and its state is known.
    #[must_use]
    pub fn reset_at(&self) -> Option<i64> {
        let r = self.reset_at.load(Ordering::Acquire);
        (r != UNKNOWN && r != NEVER).then_some(r)
    }

    /// Takes the stored row's state. A later period replaces the one held; within the same
    /// period spend only grows, so the larger figure wins (a refresh that read the row just
    /// before a commit does not undo it); an older period is ignored.
    pub fn observe(&self, state: BudgetState) {
        let _guard = self
            .observing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let new_reset = state.reset_at.unwrap_or(NEVER);
        let held = self.reset_at.load(Ordering::Acquire);
        let spend = if new_reset == held {
            f64::from_bits(self.spend.load(Ordering::Acquire)).max(state.spend)
        } else if held == UNKNOWN || new_reset > held || held == NEVER {
            state.spend
        } else {
            return;
        };
        self.spend.store(spend.to_bits(), Ordering::Release);
        self.reset_at.store(new_reset, Ordering::Release);
    }

    /// Why a call may not start: the stored spend plus `pending` (this process's unwritten
    /// spend) is over the budget. LiteLLM's error: `BudgetExceededError` with its default
    /// message, refused once spend is *over* the budget.
    #[must_use]
    pub fn check(&self, pending: f64) -> Option<LlmError> {
        let current = self.spend() + pending;
        (self.max_budget.is_finite() && current > self.max_budget).then(|| {
            LlmError::new(
                ErrorKind::BudgetExceeded,
                format!(
                    "Budget has been exceeded! Current cost: {}, Max budget: {}",
                    super::py_float(current),
                    super::py_float(self.max_budget)
                ),
            )
        })
    }
}

/// Reads the proxy budget row every `every` and [observes](ProxyBudget::observe) it, so spend
/// written by other gateway instances counts here too (and a period the store rolled over is
/// taken). Stops once `budget` is dropped; read errors are logged and retried at the next tick.
pub fn spawn_refresh(
    store: impl SpendSink,
    budget: &Arc<ProxyBudget>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let weak: Weak<ProxyBudget> = Arc::downgrade(budget);
    let every = every.max(Duration::from_millis(100));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if weak.strong_count() == 0 {
                return;
            }
            match store.proxy_budget_state().await {
                Ok(Some(state)) => match weak.upgrade() {
                    Some(b) => b.observe(state),
                    None => return,
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "proxy budget: cannot read its spend"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_once_spend_passes_the_budget() {
        let clock = Clock::manual();
        let b = ProxyBudget::new(1.0, Some("1d")).with_clock(clock.clone());
        let later = clock.unix_ms() + 60_000;
        b.observe(BudgetState {
            spend: 0.6,
            reset_at: Some(later),
        });
        assert!(b.check(0.0).is_none());
        // Pending spend counts; at the budget is not over it.
        assert!(b.check(0.4).is_none());
        let e = b.check(0.5).unwrap();
        assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
        assert_eq!(e.status(), 422);
        assert_eq!(
            e.message(),
            "Budget has been exceeded! Current cost: 1.1, Max budget: 1.0"
        );
    }

    #[test]
    fn observe_keeps_the_larger_spend_of_a_period_and_takes_a_new_period() {
        let clock = Clock::manual();
        let b = ProxyBudget::new(1.0, Some("1d")).with_clock(clock.clone());
        let p1 = clock.unix_ms() + 60_000;
        b.observe(BudgetState {
            spend: 2.0,
            reset_at: Some(p1),
        });
        // A stale read of the same period does not undo a commit.
        b.observe(BudgetState {
            spend: 1.5,
            reset_at: Some(p1),
        });
        assert!((b.spend() - 2.0).abs() < 1e-12);
        // An older period is ignored.
        b.observe(BudgetState {
            spend: 9.0,
            reset_at: Some(p1 - 1),
        });
        assert!((b.spend() - 2.0).abs() < 1e-12);
        // The next period starts from its own spend.
        b.observe(BudgetState {
            spend: 0.25,
            reset_at: Some(p1 + 86_400_000),
        });
        assert!((b.spend() - 0.25).abs() < 1e-12);
        assert!(b.check(0.0).is_none());
    }

    #[test]
    fn an_ended_period_counts_as_zero() {
        let clock = Clock::manual();
        let b = ProxyBudget::new(1.0, Some("1s")).with_clock(clock.clone());
        b.observe(BudgetState {
            spend: 5.0,
            reset_at: Some(clock.unix_ms() + 1000),
        });
        assert!((b.spend() - 5.0).abs() < f64::EPSILON);
        assert!(b.check(0.0).is_some());
        // The budget's clock reaches the period's end: nothing spent in the new one.
        clock.advance(std::time::Duration::from_millis(1000));
        assert!(b.spend().abs() < f64::EPSILON);
        assert!(b.check(0.0).is_none());
        // Without a duration the budget never resets.
        let b = ProxyBudget::new(1.0, None);
        b.observe(BudgetState {
            spend: 5.0,
            reset_at: None,
        });
        assert!(b.check(0.0).is_some());
        assert_eq!(b.reset_at(), None);
    }
}
