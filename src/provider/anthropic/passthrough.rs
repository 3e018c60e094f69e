//! The `/anthropic/{path}` pass-through: the path under the deployment's base (default
//! `https://api.anthropic.com`), its key as `x-api-key`, and `anthropic-version` when the
//! client sent none.

use bytes::Bytes;
use http::HeaderValue;

use super::{ANTHROPIC_VERSION, DEFAULT_API_BASE};
use crate::{
    error::LlmError,
    provider::{passthrough::with_credentials, Deployment},
    types::passthrough::PassThroughRequest,
};

/// The upstream request of an `/anthropic/{path}` call.
pub(crate) fn encode(
    req: &PassThroughRequest,
    dep: &Deployment,
) -> Result<http::Request<Bytes>, LlmError> {
    let base = dep.api_base.as_deref().unwrap_or(DEFAULT_API_BASE);
    // A base written for chat (`…/v1/messages`) is the API's root here.
    let base = base.trim_end_matches('/');
    let base = base.strip_suffix("/v1/messages").unwrap_or(base);
    let mut up = req.to_upstream(base, req.query.as_deref())?;
    with_credentials(&mut up, dep, "anthropic")?;
    up.headers_mut()
        .entry("anthropic-version")
        .or_insert(HeaderValue::from_static(ANTHROPIC_VERSION));
    Ok(up)
}
