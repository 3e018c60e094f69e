//! Budgets: refuse a call that would start over `max_budget` on its key, team or user, or over
//! the proxy-wide budget (`litellm_settings.max_budget`, [`ProxyBudget`]).
//!
//! A scope's spend is what the store holds for the current budget period (loaded with the key, see
//! [`KeyInfo`]) plus what this gateway has spent since and not yet written (the spend
//! [`Ledger`]). As in LiteLLM, a key or user at or over its `max_budget`, and a team or the proxy
//! over it, is refused with [`ErrorKind::BudgetExceeded`] (422, type `budget_exceeded`, code
//! `"422"`) before anything is spent, with LiteLLM's messages:
//!
//! | scope | message |
//! | --- | --- |
//! | key | `Budget has been exceeded! Key=<key_alias, else "key"> Current cost: <spend>, Max budget: <max>` |
//! | team | `Budget has been exceeded! Team=<team_id> Current cost: <spend>, Max budget: <max>` |
//! | organization (of the key's team) | `Budget has been exceeded! Organization=<organization_id> Current cost: <spend>, Max budget: <max>` |
//! | team member (the key's user in the key's team, `max_budget_in_team`) | `Budget has been exceeded! Current cost: <spend>, Max budget: <max>` |
//! | user | `ExceededBudget: User=<user_id> over budget. Spend=<spend>, Budget=<max>` |
//! | end user (the body's `user`, [`EndUserInfo`]) | `ExceededBudget: End User=<user> over budget. Spend=<spend>, Budget=<max>` |
//! | proxy | `Budget has been exceeded! Current cost: <spend>, Max budget: <max>` |
//! | the key on one model ([`check_model`], [`model`]) | `LiteLLM Virtual Key: <token>, key_alias: <alias, else None>, exceeded budget for model=<model>` |
//!
//! Numbers are written as Python writes floats (`0.5`, `1.0`, `1e-05`).
//! With `budget_duration` (`30s`, `5m`, `1h`, `1d`, `1w`, `1mo`), spend resets to 0 when the period
//! ends; a passed period counts as 0 here even before the store has rolled it over.
//!
//! **The proxy-wide budget** ([`ProxyBudget`]). As in LiteLLM, the budget and the spend counted
//! against it live in a user row, [`PROXY_BUDGET_ID`](crate::store::PROXY_BUDGET_ID)
//! (`litellm-proxy-budget`): every spend batch adds its cost to that row in the same transaction as
//! the key, team and user totals, and its period rolls over as a user's does. The gateway keeps the
//! row's spend and period end in two atomics, updated after each batch it commits
//! ([`ProxyBudget::observe`]) and re-read every few seconds ([`spawn_refresh`]) for other instances'
//! spend; a call reads them and the ledger's pending total: no lock, no await.
//!
//! **Models without a price.** [`UnpricedGuardLayer`] goes in front of a deployment without a
//! price (or a model a wildcard deployment calls that has none) when
//! `general_settings.block_unpriced_models_for_budgeted_keys` is on, and refuses (400, naming the
//! model) callers whose key, team or user has a `max_budget`, or every caller when the proxy-wide
//! budget is set.
//!
//! **Overshoot.** The check happens when a call starts and its cost is known only when it ends, so
//! calls already in flight when the budget is reached still finish: spend can pass `max_budget` by
//! at most the cost of the calls in flight at that moment (per gateway instance; other instances'
//! spend is seen once written, within the key cache ttl).
//!
//! Place in the default order: after rate limits, before cost.
//!
//! Extensions read: `Arc<KeyInfo>`. Errors: `BudgetExceeded`.
//! The proxy-wide budget applies to every call but `GET /v1/models`, with or without a key.
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
use http::StatusCode;
use tower_layer::Layer;
use tower_service::Service;

pub use crate::store::model_budget as model;
mod proxy;
mod unpriced;

pub use self::{
    model::ModelBudget,
    proxy::{spawn_refresh, ProxyBudget},
    unpriced::{UnpricedGuard, UnpricedGuardLayer},
};

use crate::{
    auth::{EndUserInfo, KeyInfo, Scope},
    clock::Clock,
    error::{ErrorKind, LlmError},
    spend::Ledger,
    types::{LlmRequest, LlmResponse},
};

/// Applies [`Budget`]. See the [module docs](self) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct BudgetLayer {
    ledger: Option<Arc<Ledger>>,
    proxy: Option<Arc<ProxyBudget>>,
    status: Option<StatusCode>,
    clock: Clock,
}

impl BudgetLayer {
    /// Budgets over stored spend plus `ledger` (this process's unwritten spend).
    pub fn new(ledger: Option<Arc<Ledger>>) -> Self {
        Self {
            ledger,
            proxy: None,
            status: None,
            clock: Clock::system(),
        }
    }

    /// Judges budget periods on `clock` (default: [`Clock::system`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The status of budget errors instead of 422 (LiteLLM's
    /// `litellm_settings.budget_exceeded_status_code`; the `code` follows it).
    pub fn status(mut self, status: Option<StatusCode>) -> Self {
        self.status = status;
        self
    }

    /// Also enforces the proxy-wide budget `proxy` (over its stored spend plus the ledger's
    /// total).
    pub fn proxy_budget(mut self, proxy: Option<Arc<ProxyBudget>>) -> Self {
        self.proxy = proxy;
        self
    }
}

impl<S> Layer<S> for BudgetLayer {
    type Service = Budget<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Budget {
            inner,
            ledger: self.ledger.clone(),
            proxy: self.proxy.clone(),
            status: self.status,
            clock: self.clock.clone(),
        }
    }
}

/// Refuses calls over budget. See the [module docs](self) for an example.
#[derive(Clone, Debug)]
pub struct Budget<S> {
    inner: S,
    ledger: Option<Arc<Ledger>>,
    proxy: Option<Arc<ProxyBudget>>,
    status: Option<StatusCode>,
    clock: Clock,
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

/// A float as Python's `str()` writes it (LiteLLM's messages are f-strings): the shortest
/// round-trip digits, `.0` on whole numbers, exponent form below 1e-4 and from 1e16.
pub(crate) fn py_float(v: f64) -> String {
    if v.is_nan() {
        return "nan".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if v != 0.0 && !(-4..16).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.unsigned_abs());
    }
    let plain = format!("{v}");
    if plain.contains('.') {
        plain
    } else {
        format!("{plain}.0")
    }
}

/// Whether a scope's budget has run out: at or over it (`inclusive`, keys and users) or over it
/// (teams, the proxy), as LiteLLM compares. A budget that is not a finite number is no limit.
fn spent(current: f64, max: f64, inclusive: bool) -> bool {
    max.is_finite()
        && if inclusive {
            current >= max
        } else {
            current > max
        }
}

fn over(scope: &Scope, pending: f64, now: i64) -> Option<(f64, f64)> {
    let max = scope.limits.max_budget?;
    let stored = if scope.budget_reset_at.is_some_and(|r| r <= now) {
        0.0
    } else {
        scope.spend
    };
    Some((stored + pending, max))
}

fn exceeded(message: String) -> LlmError {
    LlmError::new(ErrorKind::BudgetExceeded, message)
}

/// Why `info` may not start a call at `now` (Unix ms, on the gateway's
/// [`Clock`]), if its key, team or user is over budget.
#[must_use]
pub fn check(info: &KeyInfo, ledger: Option<&Ledger>, now: i64) -> Option<LlmError> {
    let pending = |f: &dyn Fn(&Ledger) -> f64| ledger.map_or(0.0, f);
    if let Some((current, max)) = over(&info.key, pending(&|l| l.key(&info.token)), now) {
        if spent(current, max, true) {
            let label = info.key_alias.as_deref().unwrap_or("key");
            return Some(exceeded(format!(
                "Budget has been exceeded! Key={label} Current cost: {}, Max budget: {}",
                py_float(current),
                py_float(max)
            )));
        }
    }
    if let Some(t) = &info.team {
        if let Some((current, max)) = over(t, pending(&|l| l.team(&t.id)), now) {
            if spent(current, max, false) {
                return Some(exceeded(format!(
                    "Budget has been exceeded! Team={} Current cost: {}, Max budget: {}",
                    t.id,
                    py_float(current),
                    py_float(max)
                )));
            }
        }
    }
    if let Some(m) = &info.team_member {
        // The user's budget in the key's team (`max_budget_in_team`), as LiteLLM: over it
        // (spend > max), a budget ≤ 0 being none; its stored spend (written by the spend writer).
        if let Some((current, max)) = over(m, 0.0, now) {
            if max > 0.0 && spent(current, max, false) {
                return Some(exceeded(format!(
                    "Budget has been exceeded! Current cost: {}, Max budget: {}",
                    py_float(current),
                    py_float(max)
                )));
            }
        }
    }
    if let (Some(o), Some(t)) = (&info.organization, &info.team) {
        // Pending: this team's unwritten spend (other teams' is seen once written).
        if let Some((current, max)) = over(o, pending(&|l| l.team(&t.id)), now) {
            // LiteLLM: a budget ≤ 0 is none; spend at the budget is over it.
            if max > 0.0 && spent(current, max, true) {
                return Some(exceeded(format!(
                    "Budget has been exceeded! Organization={} Current cost: {}, Max budget: {}",
                    o.id,
                    py_float(current),
                    py_float(max)
                )));
            }
        }
    }
    if let Some(u) = &info.user {
        if let Some((current, max)) = over(u, pending(&|l| l.user(&u.id)), now) {
            if spent(current, max, true) {
                return Some(exceeded(format!(
                    "ExceededBudget: User={} over budget. Spend={}, Budget={}",
                    u.id,
                    py_float(current),
                    py_float(max)
                )));
            }
        }
    }
    None
}

/// Why `info` may not start a call of `model` at `now`, if the key's budget for that model
/// (LiteLLM's `model_max_budget`, see [`model`]) is spent: its stored spend for the model's
/// current period plus this gateway's unwritten spend on it over a `max_budget` above 0, as
/// LiteLLM compares (spend > budget), with LiteLLM's message.
#[must_use]
pub fn check_model(
    info: &KeyInfo,
    model: &str,
    ledger: Option<&Ledger>,
    now: i64,
) -> Option<LlmError> {
    if info.model_budgets.is_empty() {
        return None;
    }
    let b = model::find(&info.model_budgets, model)?;
    let max = b.max_budget.filter(|m| *m > 0.0)?;
    let stored = if b.budget_reset_at.is_some_and(|r| r <= now) {
        0.0
    } else {
        b.spend
    };
    let pending = ledger.map_or(0.0, |l| {
        let mut p = l.key_model(&info.token, model);
        if b.model != model {
            p += l.key_model(&info.token, &b.model);
        }
        p
    });
    let current = stored + pending;
    spent(current, max, false).then(|| {
        exceeded(format!(
            "LiteLLM Virtual Key: {}, key_alias: {}, exceeded budget for model={model}",
            info.token,
            info.key_alias.as_deref().unwrap_or("None"),
        ))
    })
}

/// Why the end user `e` may not start a call, if it is over its budget (LiteLLM: spend over the
/// budget row's `max_budget`; its stored spend, as written by the spend writer).
#[must_use]
pub fn check_end_user(e: &EndUserInfo, now: i64) -> Option<LlmError> {
    let (current, max) = over(&e.scope, 0.0, now)?;
    spent(current, max, false).then(|| {
        exceeded(format!(
            "ExceededBudget: End User={} over budget. Spend={}, Budget={}",
            e.scope.id,
            py_float(current),
            py_float(max)
        ))
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
        if req.kind().calls_a_model() {
            let refused = req
                .extensions
                .get::<Arc<KeyInfo>>()
                .and_then(|info| {
                    let now = self.clock.unix_ms();
                    check(info, self.ledger.as_deref(), now)
                        .or_else(|| check_model(info, req.model(), self.ledger.as_deref(), now))
                })
                .or_else(|| {
                    req.extensions
                        .get::<Arc<EndUserInfo>>()
                        .and_then(|e| check_end_user(e, self.clock.unix_ms()))
                })
                .or_else(|| {
                    let pending = self.ledger.as_deref().map_or(0.0, Ledger::total);
                    self.proxy.as_ref().and_then(|p| p.check(pending))
                });
            if let Some(e) = refused {
                let e = match self.status {
                    Some(s) => e.with_status(s),
                    None => e,
                };
                return Either::Left(future::ready(Err(e)));
            }
        }
        Either::Right(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Limits;

    /// A fixed instant (Unix ms): `check` reads no clock of its own.
    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn refuses_at_budget_and_resets_after_period() {
        let mut info = KeyInfo::default();
        info.key.limits = Limits {
            max_budget: Some(1.0),
            ..Limits::default()
        };
        info.key.spend = 0.5;
        assert!(check(&info, None, NOW).is_none());
        info.key.spend = 1.0;
        let e = check(&info, None, NOW).unwrap();
        assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
        assert_eq!(e.status(), 422);
        assert_eq!(
            e.code(),
            None,
            "rendered as the status, \"422\", as LiteLLM"
        );
        assert_eq!(
            e.message(),
            "Budget has been exceeded! Key=key Current cost: 1.0, Max budget: 1.0"
        );
        info.key_alias = Some("app-1".into());
        assert!(check(&info, None, NOW)
            .unwrap()
            .message()
            .starts_with("Budget has been exceeded! Key=app-1 Current cost"));
        info.key.budget_reset_at = Some(NOW + 1);
        assert!(
            check(&info, None, NOW).is_some(),
            "the period has not ended"
        );
        assert!(
            check(&info, None, NOW + 1).is_none(),
            "the period has ended"
        );
        info.key.budget_reset_at = Some(NOW - 1);
        assert!(check(&info, None, NOW).is_none());
    }

    #[test]
    fn team_and_user_messages_and_comparisons_follow_litellm() {
        let scope = |id: &str, spend: f64, max: f64| Scope {
            id: id.into(),
            spend,
            limits: Limits {
                max_budget: Some(max),
                ..Limits::default()
            },
            ..Scope::default()
        };
        // A team at its budget may still call (LiteLLM: spend > max); over it, not.
        let mut info = KeyInfo {
            team: Some(scope("t1", 2.0, 2.0)),
            ..KeyInfo::default()
        };
        assert!(check(&info, None, NOW).is_none());
        info.team = Some(scope("t1", 2.5, 2.0));
        assert_eq!(
            check(&info, None, NOW).unwrap().message(),
            "Budget has been exceeded! Team=t1 Current cost: 2.5, Max budget: 2.0"
        );
        info.team = None;
        // A user at its budget may not (spend >= max).
        info.user = Some(scope("u1", 3.0, 3.0));
        assert_eq!(
            check(&info, None, NOW).unwrap().message(),
            "ExceededBudget: User=u1 over budget. Spend=3.0, Budget=3.0"
        );
        // A budget that is not a number is no limit.
        info.user = Some(scope("u1", 3.0, f64::NAN));
        assert!(check(&info, None, NOW).is_none());
    }

    #[test]
    fn organization_and_end_user_budgets_follow_litellm() {
        let scope = |id: &str, spend: f64, max: f64| Scope {
            id: id.into(),
            spend,
            limits: Limits {
                max_budget: Some(max),
                ..Limits::default()
            },
            ..Scope::default()
        };
        // An organization at its budget is refused (spend >= max); a budget of 0 is none; the
        // organization counts only through a team.
        let mut info = KeyInfo {
            team: Some(Scope {
                id: "t".into(),
                ..Scope::default()
            }),
            organization: Some(scope("o1", 2.0, 2.0)),
            ..KeyInfo::default()
        };
        assert_eq!(
            check(&info, None, NOW).unwrap().message(),
            "Budget has been exceeded! Organization=o1 Current cost: 2.0, Max budget: 2.0"
        );
        info.organization = Some(scope("o1", 2.0, 0.0));
        assert!(check(&info, None, NOW).is_none());
        info.organization = Some(scope("o1", 1.0, 2.0));
        assert!(check(&info, None, NOW).is_none());
        // An end user at its budget may still call; over it, not.
        let mut e = EndUserInfo {
            scope: scope("cust", 1.0, 1.0),
            ..EndUserInfo::default()
        };
        assert!(check_end_user(&e, NOW).is_none());
        e.scope = scope("cust", 1.5, 1.0);
        let err = check_end_user(&e, NOW).unwrap();
        assert_eq!(err.status(), 422);
        assert_eq!(
            err.message(),
            "ExceededBudget: End User=cust over budget. Spend=1.5, Budget=1.0"
        );
        // A passed period counts as 0.
        e.scope.budget_reset_at = Some(NOW - 1);
        assert!(check_end_user(&e, NOW).is_none());
    }

    #[test]
    fn model_budgets_follow_litellm() {
        let mut info = KeyInfo {
            token: "tok".into(),
            key_alias: Some("k".into()),
            model_budgets: vec![ModelBudget {
                model: "gpt-4o".into(),
                max_budget: Some(1.0),
                spend: 1.0,
                budget_reset_at: Some(NOW + 10),
                ..ModelBudget::default()
            }],
            ..KeyInfo::default()
        };
        // At the budget: still allowed (LiteLLM: spend > budget); other models are free.
        assert!(check_model(&info, "gpt-4o", None, NOW).is_none());
        info.model_budgets[0].spend = 1.5;
        let e = check_model(&info, "gpt-4o", None, NOW).unwrap();
        assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
        assert_eq!(
            e.message(),
            "LiteLLM Virtual Key: tok, key_alias: k, exceeded budget for model=gpt-4o"
        );
        // Named with a provider prefix, the entry of the bare name applies.
        assert!(check_model(&info, "openai/gpt-4o", None, NOW)
            .unwrap()
            .message()
            .ends_with("model=openai/gpt-4o"));
        assert!(check_model(&info, "gpt-4o-mini", None, NOW).is_none());
        // A passed period counts as 0; a budget of 0 is none (LiteLLM: `max_budget > 0`).
        assert!(check_model(&info, "gpt-4o", None, NOW + 10).is_none());
        info.model_budgets[0].max_budget = Some(0.0);
        assert!(check_model(&info, "gpt-4o", None, NOW).is_none());
        // This gateway's unwritten spend on the model counts.
        info.model_budgets[0].max_budget = Some(2.0);
        let ledger = Ledger::default();
        assert!(check_model(&info, "gpt-4o", Some(&ledger), NOW).is_none());
        ledger.add_row(&crate::store::SpendRow {
            api_key: "tok".into(),
            model_group: "gpt-4o".into(),
            spend: 0.75,
            ..crate::store::SpendRow::default()
        });
        assert!(check_model(&info, "gpt-4o", Some(&ledger), NOW).is_some());
    }

    #[test]
    fn a_team_member_budget_follows_litellm() {
        let member = |spend: f64, max: f64| Scope {
            id: "u".into(),
            spend,
            limits: Limits {
                max_budget: Some(max),
                ..Limits::default()
            },
            ..Scope::default()
        };
        // At the budget: still allowed (LiteLLM: spend > max); over it: LiteLLM's text.
        let mut info = KeyInfo {
            team_member: Some(member(1.0, 1.0)),
            ..KeyInfo::default()
        };
        assert!(check(&info, None, NOW).is_none());
        info.team_member = Some(member(1.5, 1.0));
        let e = check(&info, None, NOW).unwrap();
        assert_eq!(e.status(), 422);
        assert_eq!(
            e.message(),
            "Budget has been exceeded! Current cost: 1.5, Max budget: 1.0"
        );
        // A budget of 0 is none.
        info.team_member = Some(member(1.5, 0.0));
        assert!(check(&info, None, NOW).is_none());
    }

    #[test]
    fn floats_are_written_as_python_writes_them() {
        for (v, s) in [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (0.038, "0.038"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123_456_789.0, "123456789.0"),
            (0.0, "0.0"),
            (-2.0, "-2.0"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(py_float(v), s, "{v}");
        }
    }
}
