//! llmgate: one OpenAI-format API for every LLM provider, as a stack of `tower` layers.
#![doc = include_str!("../README.md")]

pub mod error;
pub mod types;

pub use self::{
    error::{BoxError, ErrorKind, LlmError},
    types::{LlmRequest, LlmResponse},
};
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod gateway;
pub mod mock_upstream;
pub mod provider;
pub mod router;
pub mod secret;
pub mod server;
