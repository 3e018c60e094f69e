//! The `/azure/{path}` pass-through: the path under the deployment's `api_base` (else
//! `AZURE_API_BASE`) with its credential (`api-key`, or an Entra ID bearer token); the client's
//! query (`api-version`) is sent as it came, and the deployment's `api_version` is added when the
//! client sent none.

use bytes::Bytes;

use crate::{
    error::LlmError,
    provider::{passthrough::with_credentials, Deployment},
    types::passthrough::PassThroughRequest,
};

/// The upstream request of an `/azure/{path}` call.
pub(crate) fn encode(
    req: &PassThroughRequest,
    dep: &Deployment,
) -> Result<http::Request<Bytes>, LlmError> {
    let env = dep.env();
    let base = dep
        .api_base
        .as_deref()
        .or_else(|| env.and_then(|e| e.first(&["AZURE_API_BASE"])))
        .ok_or_else(|| {
            LlmError::bad_request(
                "the azure pass-through needs the deployment's api_base (or AZURE_API_BASE)",
            )
        })?;
    let version = dep
        .api_version
        .as_deref()
        .or_else(|| env.and_then(|e| e.first(&["AZURE_API_VERSION"])))
        .filter(|v| !v.contains(['&', '#', ' ']));
    let has_version = req
        .query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("api-version=")));
    let query = match (version, has_version) {
        (Some(v), false) => Some(match req.query.as_deref() {
            Some(q) => format!("{q}&api-version={v}"),
            None => format!("api-version={v}"),
        }),
        _ => req.query.clone(),
    };
    let mut up = req.to_upstream(base, query.as_deref())?;
    with_credentials(&mut up, dep, "azure")?;
    Ok(up)
}
