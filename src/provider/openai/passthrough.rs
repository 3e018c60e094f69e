//! The `/openai/{path}` pass-through: the path under the deployment's base (default
//! `https://api.openai.com/v1`; a client path that starts with `v1/` is not doubled) with its key
//! as `Authorization: Bearer`.

use bytes::Bytes;

use super::DEFAULT_API_BASE;
use crate::{
    error::LlmError,
    provider::{passthrough::with_credentials, Deployment},
    types::passthrough::PassThroughRequest,
};

/// The upstream request of an `/openai/{path}` call.
pub(crate) fn encode(
    req: &PassThroughRequest,
    dep: &Deployment,
) -> Result<http::Request<Bytes>, LlmError> {
    let base = dep
        .api_base
        .as_deref()
        .or_else(|| {
            dep.env()
                .and_then(|e| e.first(&["OPENAI_API_BASE", "OPENAI_BASE_URL"]))
        })
        .unwrap_or(DEFAULT_API_BASE);
    let mut up = req.to_upstream(base, req.query.as_deref())?;
    with_credentials(&mut up, dep, "openai")?;
    Ok(up)
}
