//! One error classification for every policy: whether an error is worth a retry, whether it counts
//! toward a deployment's cooldown, whether it may fall back, and which of LiteLLM's policy classes
//! (`retry_policy`, `allowed_fails_policy`) it belongs to.
//!
//! Modelled on `tower-http`'s `classify` module: the [retry](crate::retry),
//! [health](crate::health) and [fallback](crate::fallback) layers each take a [`Classify`] (by
//! default [`LiteLlmClassifier`], LiteLLM's table) instead of keeping a predicate of their own, so
//! the rules live in one table and a user who wants other rules replaces them in one place:
//!
//! ```
//! use std::sync::Arc;
//! use llmgate::{classify::{Classification, Classify, LiteLlmClassifier}, ErrorKind, LlmError};
//!
//! /// Like LiteLLM's table, but a 404 neither retries nor cools a deployment down.
//! #[derive(Debug)]
//! struct MissingIsFinal;
//!
//! impl Classify for MissingIsFinal {
//!     fn classify(&self, err: &LlmError) -> Classification {
//!         let mut class = LiteLlmClassifier.classify(err);
//!         if err.kind() == ErrorKind::NotFound {
//!             class.counts_as_failure = false;
//!         }
//!         class
//!     }
//! }
//!
//! let classifier: Arc<dyn Classify> = Arc::new(MissingIsFinal);
//! let class = classifier.classify(&LlmError::new(ErrorKind::NotFound, "no such model"));
//! assert!(!class.counts_as_failure);
//! ```
//!
//! Classification runs only on the error path (one virtual call per failed attempt), so the layers
//! hold it as an `Arc<dyn Classify>` rather than a type parameter.

use std::{fmt, sync::Arc};

use crate::error::{ErrorKind, LlmError};

/// The error classes of LiteLLM's `allowed_fails_policy` / `retry_policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyClass {
    /// `BadRequestError…`
    BadRequest,
    /// `AuthenticationError…`
    Authentication,
    /// `TimeoutError…`
    Timeout,
    /// `RateLimitError…`
    RateLimit,
    /// `ContentPolicyViolationError…`
    ContentPolicyViolation,
    /// `InternalServerError…` (also connection errors and 503).
    InternalServer,
}

impl PolicyClass {
    /// Every class.
    pub const ALL: [Self; 6] = [
        Self::BadRequest,
        Self::Authentication,
        Self::Timeout,
        Self::RateLimit,
        Self::ContentPolicyViolation,
        Self::InternalServer,
    ];

    /// The class of an error kind, if it has one.
    #[must_use]
    pub const fn of(kind: ErrorKind) -> Option<Self> {
        Some(match kind {
            ErrorKind::BadRequest | ErrorKind::ContextWindowExceeded => Self::BadRequest,
            ErrorKind::Authentication | ErrorKind::PermissionDenied => Self::Authentication,
            ErrorKind::Timeout => Self::Timeout,
            ErrorKind::RateLimit => Self::RateLimit,
            ErrorKind::ContentPolicyViolation => Self::ContentPolicyViolation,
            ErrorKind::InternalServer
            | ErrorKind::ServiceUnavailable
            | ErrorKind::ApiConnection => Self::InternalServer,
            _ => return None,
        })
    }

    /// The class named by a policy key prefix (`RateLimitErrorRetries` → `RateLimit`).
    #[must_use]
    pub fn from_key(key: &str, suffix: &str) -> Option<Self> {
        let name = key.strip_suffix(suffix)?;
        Some(match name {
            "BadRequestError" => Self::BadRequest,
            "AuthenticationError" => Self::Authentication,
            "TimeoutError" => Self::Timeout,
            "RateLimitError" => Self::RateLimit,
            "ContentPolicyViolationError" => Self::ContentPolicyViolation,
            "InternalServerError" => Self::InternalServer,
            _ => return None,
        })
    }

    /// The class's position in [`PolicyClass::ALL`], for per-class tables.
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Whether another attempt may succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retry {
    /// Worth another attempt, on this deployment or another (429, timeouts, 5xx, connection).
    Yes,
    /// Only on another deployment of the group (401, 403: this deployment's credential is bad).
    Elsewhere,
    /// Never: the request itself is at fault.
    No,
}

/// What an error means to the policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Classification {
    /// Whether a retry could succeed.
    pub retry: Retry,
    /// Whether the error says something about the deployment, and so counts toward its cooldown.
    pub counts_as_failure: bool,
    /// Whether the request may go on to a fallback model group.
    pub falls_back: bool,
    /// LiteLLM's policy class (per-class retries and allowed fails), if the error has one.
    pub policy: Option<PolicyClass>,
}

/// Classifies errors for the retry, health and fallback layers.
pub trait Classify: fmt::Debug + Send + Sync + 'static {
    /// What `err` means to the policies.
    fn classify(&self, err: &LlmError) -> Classification;
}

/// A classifier shared by the layers of a stack.
pub type SharedClassifier = Arc<dyn Classify>;

/// LiteLLM's rules, the default of every layer.
///
/// - retry: 408, 409, 429, 5xx, timeouts and connection errors (also a provider's `BadRequest` with
///   one of those statuses); 401 and 403 only on another deployment;
/// - cooldown: 429, 401, 403, 404, 408, timeouts, 5xx and connection errors (other 4xx are the
///   request's fault);
/// - fallback: everything but a bad request and a spent budget.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiteLlmClassifier;

impl Classify for LiteLlmClassifier {
    fn classify(&self, err: &LlmError) -> Classification {
        let status = err.status().as_u16();
        let kind = err.kind();
        let retry = match kind {
            ErrorKind::RateLimit
            | ErrorKind::Timeout
            | ErrorKind::ApiConnection
            | ErrorKind::ServiceUnavailable
            | ErrorKind::InternalServer => Retry::Yes,
            ErrorKind::BadRequest if matches!(status, 408 | 409 | 429) || status >= 500 => {
                Retry::Yes
            }
            ErrorKind::Authentication | ErrorKind::PermissionDenied => Retry::Elsewhere,
            _ => Retry::No,
        };
        let counts_as_failure = match kind {
            ErrorKind::RateLimit
            | ErrorKind::Authentication
            | ErrorKind::PermissionDenied
            | ErrorKind::NotFound
            | ErrorKind::Timeout
            | ErrorKind::ApiConnection
            | ErrorKind::ServiceUnavailable
            | ErrorKind::InternalServer => true,
            ErrorKind::BadRequest => matches!(status, 408 | 409) || status >= 500,
            _ => false,
        };
        let falls_back = !matches!(kind, ErrorKind::BadRequest | ErrorKind::BudgetExceeded);
        Classification {
            retry,
            counts_as_failure,
            falls_back,
            policy: PolicyClass::of(kind),
        }
    }
}

/// The default classifier, shared.
#[must_use]
pub fn default_classifier() -> SharedClassifier {
    Arc::new(LiteLlmClassifier)
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    fn class(kind: ErrorKind) -> Classification {
        LiteLlmClassifier.classify(&LlmError::new(kind, "x"))
    }

    #[test]
    fn the_table() {
        use ErrorKind as K;
        let rows = [
            // kind, retry, counts, falls back
            (K::RateLimit, Retry::Yes, true, true),
            (K::Timeout, Retry::Yes, true, true),
            (K::ApiConnection, Retry::Yes, true, true),
            (K::ServiceUnavailable, Retry::Yes, true, true),
            (K::InternalServer, Retry::Yes, true, true),
            (K::Authentication, Retry::Elsewhere, true, true),
            (K::PermissionDenied, Retry::Elsewhere, true, true),
            (K::NotFound, Retry::No, true, true),
            (K::BadRequest, Retry::No, false, false),
            (K::ContextWindowExceeded, Retry::No, false, true),
            (K::ContentPolicyViolation, Retry::No, false, true),
            (K::BudgetExceeded, Retry::No, false, false),
        ];
        assert_eq!(rows.len(), ErrorKind::ALL.len());
        for (kind, retry, counts, falls) in rows {
            let c = class(kind);
            assert_eq!(c.retry, retry, "{kind}");
            assert_eq!(c.counts_as_failure, counts, "{kind}");
            assert_eq!(c.falls_back, falls, "{kind}");
            assert_eq!(c.policy, PolicyClass::of(kind), "{kind}");
        }
    }

    #[test]
    fn a_bad_request_with_a_server_status_is_retried_and_counted() {
        for status in [408, 409, 500, 529] {
            let err = LlmError::bad_request("x")
                .with_status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST));
            let c = LiteLlmClassifier.classify(&err);
            assert_eq!(c.retry, Retry::Yes, "{status}");
            assert!(c.counts_as_failure, "{status}");
            assert!(!c.falls_back, "{status}");
        }
        let err = LlmError::bad_request("x").with_status(StatusCode::TOO_MANY_REQUESTS);
        let c = LiteLlmClassifier.classify(&err);
        assert_eq!(c.retry, Retry::Yes);
        assert!(!c.counts_as_failure);
    }

    #[test]
    fn policy_keys() {
        assert_eq!(
            PolicyClass::from_key("RateLimitErrorRetries", "Retries"),
            Some(PolicyClass::RateLimit)
        );
        assert_eq!(PolicyClass::from_key("NopeRetries", "Retries"), None);
        for (i, c) in PolicyClass::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}
