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
//! 2. **Region**: a request whose end user has an `allowed_model_region` keeps only the
//!    deployments whose `litellm_params.region_name` is that region; none left is a 400 (the call
//!    is never sent outside the region), and the answer carries `x-litellm-model-region`.
//!    Requests without a region skip this step.
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
mod live;
mod region;
mod select;
mod service;
mod shared;
mod state;
mod strategy;
mod table;
mod track;

use std::sync::Arc;

use tower::util::BoxCloneSyncService;

pub(crate) use self::table::Entry;
pub use self::{
    builder::RouterBuilder,
    future::ResponseFuture,
    live::{LiveRouter, LiveService},
    region::X_LITELLM_MODEL_REGION,
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

pub use crate::types::extensions::{
    AttemptLog, AttemptLog as RouteLog, LastAttempt, SelectedDeployment,
};
