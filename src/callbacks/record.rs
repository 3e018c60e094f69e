//! [`CallRecord`]: what is known about one call once it ended.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use crate::{
    auth::KeyInfo, provider::Deployment, rate_limit::ScopeLimits, types::usage::TokenUsage,
};

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallStatus {
    /// The client got a complete answer (a stream that reached its end).
    Success,
    /// The call failed: an error answer, or a stream that failed midway.
    Failure,
    /// The client went away (or the server cut the call at shutdown) before the end.
    Cut,
}

impl CallStatus {
    /// `success`, `failure` or `cut` (LiteLLM's `status` field has the first two).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Cut => "cut",
        }
    }
}

/// One call, built once when it ends (a stream's when the stream ends, fails or is dropped), and
/// handed to every consumer ([`Callbacks`](super::Callbacks)): Prometheus, the logging sinks.
///
/// Every field comes from the operation-neutral facts of the stack: the request (model group,
/// end user, operation), `Arc<KeyInfo>` from auth, [`ResponseMeta`](crate::types::ResponseMeta)
/// (deployment, provider, api base, cache hit, retries, fallbacks, time to the provider's first
/// byte), the response's token usage (a stream's from the cost layer's
/// [`StreamTally`](crate::cost::StreamTally)) and the cost layer's cost.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CallRecord {
    /// The call id (`x-litellm-call-id`), else a new one.
    pub call_id: Arc<str>,
    /// The operation (`chat`, `embeddings`).
    pub operation: &'static str,
    /// The route LiteLLM would label the call with (`/chat/completions`, `/embeddings`).
    pub route: &'static str,
    /// The model group the client asked for.
    pub model_group: Arc<str>,
    /// The deployment that answered, when one did.
    pub deployment: Option<Arc<Deployment>>,
    /// The provider (`openai`, `anthropic`, …), when known.
    pub provider: Option<Arc<str>>,
    /// The upstream base URL (without credentials), when known.
    pub api_base: Option<Arc<str>>,
    /// The caller (after auth): key hash, alias, team, user, budgets.
    pub key: Option<Arc<KeyInfo>>,
    /// The request's `user` field (LiteLLM's end user).
    pub end_user: Option<Arc<str>>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// How the call ended.
    pub status: CallStatus,
    /// The HTTP status the client got (200 for a success; the error's status otherwise; 499
    /// for a call the client abandoned).
    pub http_status: u16,
    /// The error class ([`ErrorKind::as_str`](crate::ErrorKind::as_str)) of a failed call.
    pub error_class: Option<&'static str>,
    /// The error message of a failed call (client-facing; never carries keys).
    pub error_message: Option<Arc<str>>,
    /// Tokens (zero when unknown).
    pub usage: TokenUsage,
    /// Cost in USD (0 for a cache hit or a failure).
    pub cost: f64,
    /// From the edge receiving the request (else this layer seeing it) to the call's end.
    pub total_latency: Duration,
    /// The upstream's share of [`total_latency`](Self::total_latency): total minus overhead.
    pub upstream_latency: Option<Duration>,
    /// A stream's first chunk, from the request's arrival.
    pub time_to_first_token: Option<Duration>,
    /// Time spent in the gateway before the upstream answered: until the first chunk (or the
    /// complete answer) minus the provider's time to first byte.
    pub overhead: Option<Duration>,
    /// Served from the response cache.
    pub cache_hit: bool,
    /// Retries spent.
    pub retries: u32,
    /// Fallbacks spent.
    pub fallbacks: u32,
    /// The caller's key's rate limits and what was left of them after this call, from the
    /// rate-limit layer's [`LimitReport`](crate::rate_limit::LimitReport) (metrics on, and the
    /// key has an rpm or tpm limit). The provider's `x-ratelimit-*` headers are not here: the
    /// per-deployment metrics read them from each attempt's answer.
    pub key_limits: Option<ScopeLimits>,
    /// The same for the caller's team.
    pub team_limits: Option<ScopeLimits>,
    /// Wall-clock start.
    pub start_time: SystemTime,
    /// Wall-clock end.
    pub end_time: SystemTime,
    /// The request's messages (or embeddings input) as JSON, only when message logging is on
    /// and a sink wants it.
    pub messages: Option<serde_json::Value>,
    /// The answer's text (a complete chat's first choice, or a stream's deltas), only when
    /// message logging is on and a sink wants it.
    pub response_text: Option<String>,
}

impl CallRecord {
    /// The upstream model of the deployment that answered (`gpt-4o-mini`), LiteLLM's `model`
    /// label.
    #[must_use]
    pub fn model(&self) -> Option<&str> {
        self.deployment.as_deref().map(|d| &*d.model)
    }

    /// The id of the deployment that answered.
    #[must_use]
    pub fn deployment_id(&self) -> Option<&str> {
        self.deployment.as_deref().map(|d| &*d.id)
    }

    /// The caller's key hash (never the key).
    #[must_use]
    pub fn key_hash(&self) -> Option<&str> {
        self.key.as_deref().map(|k| &*k.token)
    }

    /// The caller's key alias.
    #[must_use]
    pub fn key_alias(&self) -> Option<&str> {
        self.key.as_deref().and_then(|k| k.key_alias.as_deref())
    }

    /// The caller's team.
    #[must_use]
    pub fn team(&self) -> Option<&str> {
        self.key.as_deref().and_then(|k| k.team_id.as_deref())
    }

    /// The caller's user.
    #[must_use]
    pub fn user(&self) -> Option<&str> {
        self.key.as_deref().and_then(|k| k.user_id.as_deref())
    }
}
