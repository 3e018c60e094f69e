//! Model groups and their deployments: picks the deployment that serves a request.
//!
//! A [`Router`] holds the deployment table (the sanctioned box: each deployment is a
//! `BoxCloneSyncService` stack of its own, usually [`health`](crate::health) →
//! [`timeout`](crate::timeout) → provider). It answers `GET /v1/models` with the groups it serves and
//! turns an unknown model into [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) naming the model and the models available.
//!
//! # Picking a deployment
//!
//! Filters run in LiteLLM's order, each on what the previous one left:
//!
//! 1. **Model name**: the group named `model`; else a `model_group_alias`; else the first wildcard
//!    group whose pattern matches (`openai/*`, `claude-*`, `*`; more literal characters first).
//!    A wildcard deployment calls the upstream model the request named: `model_name: openai/*` with
//!    `model: openai/*` serves `openai/gpt-4o` as `gpt-4o` on OpenAI.
//! 2. **Cooldown**: deployments cooling down ([`HealthCell`](crate::health::HealthCell)) are skipped. When all are, the
//!    client gets 429 with `retry-after` (the shortest remaining cooldown) and a message naming the
//!    group. Deployments that already failed this request (see [`RouteLog`]) are skipped while
//!    others remain.
//! 3. **Context window** (`enable_pre_call_checks`): deployments whose `model_info.max_input_tokens`
//!    is below the request's estimated prompt tokens (characters / 4) are skipped; when none is left
//!    the error is [`ErrorKind::ContextWindowExceeded`](crate::ErrorKind::ContextWindowExceeded), so `context_window_fallbacks` apply.
//!    The gateway fills `max_input_tokens` in from the price table when the config does not set
//!    it (see [`PriceTable::context_window`](crate::cost::PriceTable::context_window)).
//! 4. **Tags** (`enable_tag_filtering`): a request's `tags` (or `metadata.tags`) keep the
//!    deployments having all of them (any of them with `tag_filtering_match_any`); without a match,
//!    or without request tags, deployments tagged `default` serve; else 400.
//! 5. **Usage** (`usage-based-routing-v2`, or any strategy with pre-call checks): deployments at
//!    their `rpm` / `tpm` for the current minute are skipped; when none is left the client gets 429.
//! 6. **Order**: only the lowest `order` tier is used while any of it is healthy.
//! 7. **Concurrency**: deployments with a free `max_parallel_requests` permit are preferred; when
//!    none has one, the request waits for the picked deployment's permit (as LiteLLM's semaphore).
//! 8. **Strategy** ([`Strategy`]).
//!
//! The pick reads atomics only: no lock, no await. With Redis configured
//! ([`RouterBuilder::redis`]), one pipelined Redis read refreshes the group's cooldowns, in-flight
//! and usage counts before the pick, and an `rpm` reservation is an atomic `INCR`.
//!
//! A test request ([`is_test_request`](crate::health::is_test_request): it carries
//! `mock_response`) is routed like any other, but reserves no `rpm` and records neither tokens
//! nor latency: it says nothing about the deployment.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use llmgate::{provider::Deployment, router::Router, LlmRequest, LlmResponse, LlmError};
//! use llmgate::types::chat::{ChatRequest, ChatResponse, Message};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let answer = |_req: LlmRequest| async { Ok::<_, LlmError>(LlmResponse::chat(ChatResponse::default())) };
//! let router = Router::builder()
//!     .deployment(Arc::new(Deployment::new("gpt", "openai/gpt-4o")), tower::service_fn(answer))
//!     .deployment(Arc::new(Deployment::new("gpt", "azure/gpt-4o")), tower::service_fn(answer))
//!     .build();
//! let req = LlmRequest::chat(ChatRequest {
//!     model: "gpt".into(),
//!     messages: vec![Message::new("user", "hi")],
//!     ..ChatRequest::default()
//! });
//! let resp = router.oneshot(req).await.unwrap();
//! # let _ = resp;
//! # }
//! ```
//!
//! Customised: least-busy routing with pre-call checks and an alias.
//!
//! ```
//! use llmgate::router::{Router, Strategy};
//! let builder = Router::builder()
//!     .strategy(Strategy::LeastBusy)
//!     .pre_call_checks(true)
//!     .alias("gpt-4", "gpt-4o", false);
//! # let _ = builder.build();
//! ```
//!
//! Extensions read: [`RouteLog`] (written by the [retry layer](crate::retry)). Extensions written:
//! [`SelectedDeployment`]. Errors produced: [`ErrorKind::NotFound`](crate::ErrorKind::NotFound), [`ErrorKind::RateLimit`](crate::ErrorKind::RateLimit) (all
//! cooling / at their limits), [`ErrorKind::ContextWindowExceeded`](crate::ErrorKind::ContextWindowExceeded), [`ErrorKind::BadRequest`](crate::ErrorKind::BadRequest)
//! (no deployment for the tags).

mod builder;
mod future;
mod select;
mod service;
mod shared;
mod state;
mod strategy;
mod table;
mod track;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tower::util::BoxCloneSyncService;

pub(crate) use self::table::Entry;
pub use self::{
    builder::RouterBuilder,
    future::ResponseFuture,
    select::estimate_prompt_tokens,
    service::Router,
    shared::SharedStateError,
    strategy::{Strategy, UnknownStrategy},
};
use crate::{
    provider::Deployment,
    types::{LlmRequest, LlmResponse},
    LlmError,
};

/// A deployment's model-level stack, boxed once.
pub type DeploymentService = BoxCloneSyncService<LlmRequest, LlmResponse, LlmError>;

/// Builds the stack of a wildcard deployment for the concrete model a request names.
pub type MakeDeploymentService = Arc<dyn Fn(Arc<Deployment>) -> DeploymentService + Send + Sync>;

/// The deployment the router chose, put into the request's extensions.
#[derive(Clone, Debug)]
pub struct SelectedDeployment(pub Arc<Deployment>);

/// What the router learned about one request's attempts, shared between the clones of a request
/// (the [retry layer](crate::retry) puts one into the extensions and reads it to decide how to
/// retry). Uncontended: one per request.
#[derive(Clone, Debug, Default)]
pub struct RouteLog(Arc<Mutex<RouteLogInner>>);

#[derive(Debug, Default)]
struct RouteLogInner {
    failed: Vec<Arc<str>>,
    others_available: bool,
    refused: bool,
    max_retries: Option<u32>,
    available_in: Option<Duration>,
}

/// A snapshot of a [`RouteLog`] after an attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastAttempt {
    /// Another healthy deployment of the group is left to try at once.
    pub others_available: bool,
    /// The router refused the attempt itself (all cooling, at limits): there was nothing to call.
    pub refused: bool,
    /// The failing deployment's `max_retries`, if it sets one.
    pub max_retries: Option<u32>,
    /// Deployments that failed this request so far.
    pub failures: usize,
    /// When every deployment of the group was cooling after the failure: how soon the first one
    /// is back (`None`: one is available now).
    pub available_in: Option<Duration>,
}

impl RouteLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, RouteLogInner> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the last attempt left behind.
    #[must_use]
    pub fn last_attempt(&self) -> LastAttempt {
        let g = self.lock();
        LastAttempt {
            others_available: g.others_available,
            refused: g.refused,
            max_retries: g.max_retries,
            failures: g.failed.len(),
            available_in: g.available_in,
        }
    }

    fn begin(&self) {
        self.lock().refused = false;
    }

    fn refused(&self) {
        let mut g = self.lock();
        g.refused = true;
        g.others_available = false;
    }

    fn failed(
        &self,
        id: Arc<str>,
        max_retries: Option<u32>,
        others: bool,
        available_in: Option<Duration>,
    ) {
        let mut g = self.lock();
        if !g.failed.contains(&id) {
            g.failed.push(id);
        }
        g.max_retries = max_retries;
        g.others_available = others;
        g.available_in = available_in;
    }

    fn has_failed(&self, id: &str) -> bool {
        self.lock().failed.iter().any(|f| &**f == id)
    }
}
