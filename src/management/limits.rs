//! The limits fields keys, teams and users share: checked, then applied over stored limits.

use super::error::{bad, ApiError};
use crate::store::{parse_duration, Limits};

/// Limits fields shared by keys, teams and users.
#[derive(Debug, Default)]
pub(super) struct LimitFields {
    pub(super) max_budget: Option<f64>,
    pub(super) budget_duration: Option<String>,
    pub(super) tpm_limit: Option<i64>,
    pub(super) rpm_limit: Option<i64>,
    pub(super) max_parallel_requests: Option<i64>,
}

impl LimitFields {
    pub(super) fn validate(&self) -> Result<(), ApiError> {
        if let Some(b) = self.max_budget {
            if !b.is_finite() || b < 0.0 {
                return Err(bad("max_budget", "max_budget must be a number ≥ 0"));
            }
        }
        if let Some(d) = &self.budget_duration {
            match parse_duration(d) {
                None => return Err(bad(
                    "budget_duration",
                    format!("budget_duration `{d}` is not a duration; use e.g. 30s, 5m, 1h, 1d, 1w, 1mo"),
                )),
                // A period of no time would reset the budget on every request: no budget at all.
                Some(p) if p.is_zero() => return Err(bad(
                    "budget_duration",
                    format!("budget_duration `{d}` is no time: the budget would reset on every request; use e.g. 30d"),
                )),
                Some(_) => {}
            }
        }
        for (name, v) in [
            ("tpm_limit", self.tpm_limit),
            ("rpm_limit", self.rpm_limit),
            ("max_parallel_requests", self.max_parallel_requests),
        ] {
            if v.is_some_and(|n| n < 0) {
                return Err(bad(name, format!("{name} must be ≥ 0")));
            }
        }
        Ok(())
    }

    /// Applies the fields that were sent over `l`; returns whether the budget period changed.
    pub(super) fn apply(&self, l: &mut Limits) -> bool {
        let mut period_changed = false;
        if self.max_budget.is_some() {
            l.max_budget = self.max_budget;
        }
        if self.budget_duration.is_some() {
            period_changed = l.budget_duration != self.budget_duration;
            l.budget_duration.clone_from(&self.budget_duration);
        }
        if self.tpm_limit.is_some() {
            l.tpm_limit = self.tpm_limit;
        }
        if self.rpm_limit.is_some() {
            l.rpm_limit = self.rpm_limit;
        }
        if self.max_parallel_requests.is_some() {
            l.max_parallel_requests = self.max_parallel_requests;
        }
        period_changed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_period_of_no_time_is_refused() {
        for d in ["0s", "0d", "0mo", " 0h "] {
            let l = LimitFields {
                budget_duration: Some(d.to_owned()),
                ..LimitFields::default()
            };
            let e = l.validate().unwrap_err().0;
            assert_eq!(e.param(), Some("budget_duration"), "{d}");
            assert!(e.message().contains("no time"), "{d}");
        }
        let l = LimitFields {
            budget_duration: Some("1s".to_owned()),
            ..LimitFields::default()
        };
        assert!(l.validate().is_ok());
    }
}
