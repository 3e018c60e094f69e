//! Core types: the OpenAI wire types and the model-level request and response.
//!
//! Wire types are typed where a layer or a translation reads a field; every other key is kept and
//! sent on unchanged (see [`wire::Extra`]).

pub mod chat;
pub mod completions;
pub mod controls;
pub mod deployment;
pub mod embeddings;
pub mod events;
pub mod extensions;
pub mod media;
pub mod messages;
pub mod models;
pub mod moderations;
pub mod observe;
pub mod passthrough;
pub mod relay;
mod request;
pub mod rerank;
mod response;
pub mod responses;
pub(crate) mod scan;
pub mod usage;
/// The wire-object machinery (at the crate's floor, below [`crate::error`]), here too.
pub use crate::wire;

pub use self::{
    events::{EventStream, JsonBody, StreamEvent},
    relay::{ChatBody, ChunkBody},
    request::{LlmRequest, Operation, OperationKind},
    response::{ChatStream, LlmResponse, ResponseBody, ResponseMeta},
    usage::TokenUsage,
};
