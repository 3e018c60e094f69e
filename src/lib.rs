//! llmgate: one OpenAI-format API for every LLM provider, as a stack of `tower` layers.
#![doc = include_str!("../docs/crate.md")]

pub mod error;
pub mod types;

pub use self::{
    error::{BoxError, ErrorKind, LlmError},
    types::{LlmRequest, LlmResponse},
};
pub mod provider;
pub mod secret;
pub mod auth;
pub mod router;
pub mod server;
pub mod config;
pub mod gateway;
pub mod cli;
