//! llmgate: one OpenAI-format API for every LLM provider, as a stack of `tower` layers.
#![doc = include_str!("../README.md")]

pub mod error;
pub mod types;

pub use self::{
    error::{BoxError, ErrorKind, LlmError},
    types::{LlmRequest, LlmResponse},
};
pub mod alloc;
pub mod auth;
pub mod budget;
pub mod cache;
pub mod cli;
pub mod client;
pub mod config;
pub mod cost;
pub mod gateway;
pub mod governance;
pub mod management;
pub mod provider;
pub mod rate_limit;
pub mod router;
// Routing and reliability (issue 5).
pub mod fallback;
pub mod health;
pub mod redis_guard;
pub mod redis_url;
pub mod retry;
pub mod secret;
pub mod server;
pub mod spend;
pub mod store;
pub mod timeout;
mod timer;
pub mod upstream;
