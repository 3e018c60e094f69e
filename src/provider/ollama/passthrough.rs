//! The `/ollama/{path}` pass-through: the path under the deployment's base (else
//! `OLLAMA_API_BASE`, else `http://localhost:11434`), with its key as `Authorization: Bearer` when
//! it has one.

use bytes::Bytes;

use super::DEFAULT_API_BASE;
use crate::{
    error::LlmError,
    provider::{passthrough::with_credentials, Deployment},
    types::passthrough::PassThroughRequest,
};

/// The upstream request of an `/ollama/{path}` call; `family` is the deployment's provider
/// (`ollama` or `ollama_chat`).
pub(crate) fn encode(
    req: &PassThroughRequest,
    dep: &Deployment,
    family: &str,
) -> Result<http::Request<Bytes>, LlmError> {
    let base = dep
        .api_base
        .as_deref()
        .or_else(|| dep.env().and_then(|e| e.first(&["OLLAMA_API_BASE"])))
        .unwrap_or(DEFAULT_API_BASE);
    let mut up = req.to_upstream(base, req.query.as_deref())?;
    with_credentials(&mut up, dep, family)?;
    Ok(up)
}
