//! One OpenAI-format API for every LLM provider, as a stack of `tower` layers.
//!
//! llmgate is a toolbox of model-level [`tower`] services: each takes an [`LlmRequest`] (a chat,
//! embeddings or model-list call, parsed once) and answers an [`LlmResponse`] (a complete answer
//! or a stream of chunks) or an [`LlmError`] (a kind, a status and the OpenAI error JSON). Two
//! bridges touch HTTP: [`server::OpenAiServer`] on top (the OpenAI API over any model-level
//! service, mountable in hyper-util or axum) and [`provider::ProviderService`] at the bottom (one
//! translation per provider family over an [`provider::HttpClient`]). Everything in between is a
//! layer you may use, leave out or replace. The `llmgate` binary (see the README) assembles all of
//! them from LiteLLM's `config.yaml`.
//!
//! # The layers, in stack order
//!
//! | layer | module | does |
//! | --- | --- | --- |
//! | [`AuthLayer`](auth::AuthLayer), [`MasterKeyLayer`](auth::MasterKeyLayer) | [`auth`] | checks the caller's key and model access |
//! | [`RateLimitLayer`](rate_limit::RateLimitLayer) | [`rate_limit`] | rpm / tpm / parallel limits per key, team, user |
//! | [`BudgetLayer`](budget::BudgetLayer) | [`budget`] | refuses callers over their budget |
//! | [`CostLayer`](cost::CostLayer) | [`cost`] | prices each answer (`x-litellm-response-cost`) |
//! | [`CacheLayer`](cache::CacheLayer) | [`cache`] | response cache, in memory or Redis |
//! | [`FallbackLayer`](fallback::FallbackLayer) | [`fallback`] | another model group when one fails |
//! | [`RetryLayer`](retry::RetryLayer) | [`retry`] | retries, on another deployment when there is one |
//! | [`Router`](router::Router) | [`router`] | picks a deployment of the model group |
//! | per deployment: [`HealthLayer`](health::HealthLayer) | [`health`] | cooldowns after failures |
//! | [`TimeoutLayer`](timeout::TimeoutLayer) | [`timeout`] | the call's deadline |
//! | [`ProviderLayer`](provider::ProviderLayer) over [`HttpClient`](provider::HttpClient) | [`provider`] | the provider's wire format over HTTP/1.1 or HTTP/2 |
//!
//! [`ServiceBuilderExt`] gives tower's `ServiceBuilder` one method per layer (`.auth(..)`,
//! `.cache(..)`, `.fallback(..)`, `.retries(..)`, ...). [`server`] is the HTTP edge above the
//! stack, [`client::Client`] typed calls into it without a server. [`types`] holds the requests, responses and OpenAI wire types; [`error`] the one error
//! type every layer returns.
//!
//! # A client stack
//!
//! A deployment's stack (health, timeout, provider) under a router with retries, called through
//! [`client::Client`], with no gateway server and no config file:
//!
//! ```no_run
//! use std::{sync::Arc, time::Duration};
//!
//! use llmgate::{
//!     client::Client,
//!     health::CooldownPolicy,
//!     provider::{self, Deployment, HttpClient},
//!     router::Router,
//!     types::chat::{ChatRequest, Message},
//!     ServiceBuilderExt as _,
//! };
//! use tower::ServiceBuilder;
//!
//! # async fn run() -> Result<(), llmgate::LlmError> {
//! let http = HttpClient::new();
//! let mut router = Router::builder();
//! for model in ["openai/gpt-4o-mini", "openai/gpt-4.1-mini"] {
//!     let dep = Arc::new(Deployment::new("gpt", model).with_api_key("sk-..."));
//!     let openai = provider::lookup("openai").expect("a built-in provider");
//!     // The deployment's stack, around the health cell the router's cooldown filter reads.
//!     router = router.deployment_with(dep.clone(), |health| {
//!         ServiceBuilder::new()
//!             .health(health, CooldownPolicy::default())
//!             .call_timeout(Duration::from_secs(60))
//!             .provider(openai, dep)
//!             .service(http.clone())
//!     });
//! }
//! let stack = ServiceBuilder::new().retries(2).service(router.build());
//! let client = Client::new(stack);
//! let answer = client
//!     .chat(ChatRequest {
//!         model: "gpt".into(),
//!         messages: vec![Message::new("user", "Say hi")],
//!         ..ChatRequest::default()
//!     })
//!     .await?;
//! # let _ = answer;
//! # Ok(()) }
//! ```
//!
//! # Mounted in axum
//!
//! [`server::OpenAiServer`] is a plain `tower::Service<http::Request<B>>` that never fails, so it
//! mounts beside an application's own routes:
//!
//! ```no_run
//! use axum::routing::get;
//! use llmgate::{server::OpenAiServer, types::chat::ChatResponse, LlmError, LlmRequest, LlmResponse};
//!
//! # async fn run() -> std::io::Result<()> {
//! // Any model-level service: here one that always answers.
//! let model_stack = tower::service_fn(|_req: LlmRequest| async {
//!     Ok::<_, LlmError>(LlmResponse::chat(ChatResponse::default()))
//! });
//! let api = OpenAiServer::new(model_stack);
//! let app = axum::Router::new()
//!     .route("/hello", get(|| async { "the app's own route" }))
//!     .route_service("/v1/chat/completions", api.clone())
//!     .route_service("/v1/models", api);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | adds |
//! | --- | --- | --- |
//! | `gateway` | on | the application: `config` (LiteLLM's `config.yaml`), `gateway` (the stack assembled from it), `governance` (keys, budgets, spend over the SQL store), `management` (the key / team / user API, axum), the SQL store (`store::sql`, sqlx), and the `llmgate` and `llmgate-mock` binaries |
//! | `redis` | on | the Redis backend of the response cache |
//!
//! With `default-features = false` the crate is the toolbox alone: [`types`], [`error`], the
//! layers, [`provider`], [`server`] and [`client`], without axum, clap, YAML or the binaries'
//! allocator and log set-up, and without sqlx: the governance layers ([`auth`], [`budget`],
//! [`spend`]) work over [`store::KeyStore`] / [`store::SpendSink`], with [`store::InMemoryStore`]
//! as the stock store of a client stack.

pub mod classify;
pub mod clock;
pub mod error;
pub mod types;
pub mod wire;

pub use self::{
    builder::ServiceBuilderExt,
    error::{BoxError, ErrorKind, ErrorMeta, LlmError},
    types::{LlmRequest, LlmResponse},
};
pub mod admission;
pub mod auth;
pub mod budget;
pub mod builder;
pub mod cache;
pub mod callbacks;
pub mod client;
#[cfg(feature = "gateway")]
pub mod config;
pub mod cost;
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "gateway")]
pub mod governance;
#[cfg(feature = "gateway")]
pub mod management;
pub use self::callbacks::metrics;
pub mod observe;
pub mod passthrough;
#[cfg(feature = "gateway")]
pub mod probe;
pub mod provider;
pub mod rate_limit;
pub mod router;
// Routing and reliability (issue 5).
pub mod fallback;
pub mod fanout;
pub mod first_chunk;
pub mod health;
pub mod redis_guard;
pub mod redis_url;
pub mod retry;
pub mod secret;
pub mod server;
pub use self::callbacks::sinks;
pub mod spend;
pub mod store;
#[cfg(feature = "otel")]
pub mod telemetry;
pub mod timeout;
#[cfg(feature = "gateway")]
pub mod ui;
pub mod upstream;

/// The README's Rust examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
