//! The `/bedrock/{path}` pass-through: the path under the deployment's base (default
//! `https://bedrock-runtime.{region}.amazonaws.com`), signed with SigV4 (the deployment's AWS
//! credentials, for its region) or with its Bedrock API key as `Authorization: Bearer`.

use std::time::SystemTime;

use bytes::Bytes;

use super::sign::{region_in, sign};
use crate::{
    error::LlmError,
    provider::{
        passthrough::with_credentials,
        resolve::{reached, BedrockAuth},
        Deployment,
    },
    types::passthrough::PassThroughRequest,
};

/// The upstream request of a `/bedrock/{path}` call, signed.
pub(crate) fn encode(
    req: &PassThroughRequest,
    dep: &Deployment,
) -> Result<http::Request<Bytes>, LlmError> {
    let region = region_in(dep, dep.env());
    let base = match dep.api_base.as_deref() {
        Some(b) => b.trim_end_matches('/').to_owned(),
        None => format!("https://bedrock-runtime.{region}.amazonaws.com"),
    };
    let mut up = req.to_upstream(&base, req.query.as_deref())?;
    with_credentials(&mut up, dep, "bedrock")?;
    let r = dep.resolved("bedrock");
    let state = r
        .bedrock
        .as_ref()
        .ok_or_else(|| LlmError::internal("the Bedrock deployment was not resolved"))?;
    match reached(&state.auth)? {
        BedrockAuth::SigV4(creds) => sign(&mut up, creds, &state.region, SystemTime::now())?,
        BedrockAuth::Bearer(value) => {
            up.headers_mut()
                .insert(http::header::AUTHORIZATION, value.clone());
        }
    }
    Ok(up)
}
