//! Budgets: refuse a call that would start over `max_budget` on its key, team or user.
//!
//! A scope's spend is what the store holds for the current budget period (loaded with the key, see
//! [`KeyInfo`]) plus what this gateway has spent since and not yet written (the spend
//! [`Ledger`]). When it is at or over `max_budget`, the call is refused with
//! [`ErrorKind::BudgetExceeded`] (400, type and code `budget_exceeded`) before anything is spent.
//! With `budget_duration` (`30s`, `5m`, `1h`, `1d`, `1w`, `1mo`), spend resets to 0 when the period
//! ends; a passed period counts as 0 here even before the store has rolled it over.
//!
//! **Overshoot.** The check happens when a call starts and its cost is known only when it ends, so
//! calls already in flight when the budget is reached still finish: spend can pass `max_budget` by
//! at most the cost of the calls in flight at that moment (per gateway instance; other instances'
//! spend is seen once written, within the key cache ttl).
//!
//! Place in the default order: after rate limits, before cost.
//!
//! Extensions read: `Arc<KeyInfo>`. Errors: `BudgetExceeded`.
//!
//! ```
//! use std::sync::Arc;
//! use llmgate::budget::BudgetLayer;
//! use llmgate::spend::Ledger;
//! # use llmgate::{LlmRequest, LlmResponse, LlmError};
//! # let inner = tower::service_fn(|_r: LlmRequest| async { Err::<LlmResponse, _>(LlmError::internal("x")) });
//! // Stored spend only (no spend writer in this process):
//! let svc = tower::ServiceBuilder::new().layer(BudgetLayer::new(None)).service(inner.clone());
//! // With the ledger of a spend writer, so this process's unwritten spend counts too:
//! let svc = tower::ServiceBuilder::new().layer(BudgetLayer::new(Some(Arc::new(Ledger::default())))).service(inner);
//! # let _ = svc;
//! ```

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::future::{self, Either, Ready};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    auth::{KeyInfo, Scope},
    error::{ErrorKind, LlmError},
    spend::Ledger,
    store::now_ms,
    types::{LlmRequest, LlmResponse, Operation},
};

/// Applies [`Budget`]. See the [module docs](self) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct BudgetLayer {
    ledger: Option<Arc<Ledger>>,
}

impl BudgetLayer {
    /// Budgets over stored spend plus `ledger` (this process's unwritten spend).
    pub fn new(ledger: Option<Arc<Ledger>>) -> Self {
        Self { ledger }
    }
}

impl<S> Layer<S> for BudgetLayer {
    type Service = Budget<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Budget {
            inner,
            ledger: self.ledger.clone(),
        }
    }
}

/// Refuses calls over budget. See the [module docs](self) for an example.
#[derive(Clone, Debug)]
pub struct Budget<S> {
    inner: S,
    ledger: Option<Arc<Ledger>>,
}

impl<S> Budget<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes this, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

fn over(scope: &Scope, pending: f64, what: &str, now: i64) -> Option<LlmError> {
    let max = scope.limits.max_budget?;
    let stored = if scope.budget_reset_at.is_some_and(|r| r <= now) {
        0.0
    } else {
        scope.spend
    };
    let current = stored + pending;
    (current >= max).then(|| {
        LlmError::new(
            ErrorKind::BudgetExceeded,
            format!("Budget has been exceeded! {what} Current cost: {current}, Max budget: {max}"),
        )
    })
}

/// Why `info` may not start a call, if its key, team or user is over budget.
#[must_use]
pub fn check(info: &KeyInfo, ledger: Option<&Ledger>) -> Option<LlmError> {
    let now = now_ms();
    let pending = |f: &dyn Fn(&Ledger) -> f64| ledger.map_or(0.0, f);
    over(&info.key, pending(&|l| l.key(&info.token)), "Key", now)
        .or_else(|| {
            info.team.as_ref().and_then(|t| {
                over(
                    t,
                    pending(&|l| l.team(&t.id)),
                    &format!("Team={}", t.id),
                    now,
                )
            })
        })
        .or_else(|| {
            info.user.as_ref().and_then(|u| {
                over(
                    u,
                    pending(&|l| l.user(&u.id)),
                    &format!("User={}", u.id),
                    now,
                )
            })
        })
}

impl<S> Service<LlmRequest> for Budget<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = Either<Ready<Result<LlmResponse, LlmError>>, S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        if !matches!(req.op, Operation::ListModels) {
            if let Some(info) = req.extensions.get::<Arc<KeyInfo>>() {
                if let Some(e) = check(info, self.ledger.as_deref()) {
                    return Either::Left(future::ready(Err(e)));
                }
            }
        }
        Either::Right(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Limits;

    #[test]
    fn refuses_at_budget_and_resets_after_period() {
        let mut info = KeyInfo::default();
        info.key.limits = Limits {
            max_budget: Some(1.0),
            ..Limits::default()
        };
        info.key.spend = 0.5;
        assert!(check(&info, None).is_none());
        info.key.spend = 1.0;
        let e = check(&info, None).unwrap();
        assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
        assert_eq!(e.status(), 400);
        info.key.budget_reset_at = Some(now_ms() - 1);
        assert!(check(&info, None).is_none());
    }
}
