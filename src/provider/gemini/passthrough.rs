//! The `/gemini/{path}` and `/vertex_ai/{path}` pass-throughs.
//!
//! Gemini: the path under the deployment's base (default
//! `https://generativelanguage.googleapis.com`; a client path starting with `v1beta/` is not
//! doubled), its key as `x-goog-api-key` (never in the URL). Vertex AI: the path under the
//! deployment's `api_base`, else `https://{vertex_location}-aiplatform.googleapis.com`
//! (`aiplatform.googleapis.com` for `global`), with the OAuth token of its service account (or its
//! `api_key`) as `Authorization: Bearer`.

use bytes::Bytes;
use http::{header::AUTHORIZATION, HeaderValue};

use super::{DEFAULT_API_BASE, DEFAULT_VERTEX_LOCATION};
use crate::{
    error::{ErrorKind, LlmError},
    provider::{passthrough::with_credentials, Deployment},
    secret::Secret,
    types::passthrough::PassThroughRequest,
};

/// The upstream request of a `/gemini/{path}` call.
pub(crate) fn encode_gemini(
    req: &PassThroughRequest,
    dep: &Deployment,
) -> Result<http::Request<Bytes>, LlmError> {
    let base = dep.api_base.as_deref().unwrap_or(DEFAULT_API_BASE);
    let mut up = req.to_upstream(base, req.query.as_deref())?;
    with_credentials(&mut up, dep, "gemini")?;
    Ok(up)
}

/// The upstream request of a `/vertex_ai/{path}` call; `token` is the OAuth access token fetched
/// for the deployment, if it has service-account credentials.
pub(crate) fn encode_vertex(
    req: &PassThroughRequest,
    dep: &Deployment,
    token: Option<&Secret>,
) -> Result<http::Request<Bytes>, LlmError> {
    let location = dep
        .param_str("vertex_location")
        .or_else(|| dep.param_str("vertex_region"))
        .filter(|l| !l.is_empty())
        .unwrap_or(DEFAULT_VERTEX_LOCATION);
    let base = match dep.api_base.as_deref() {
        // A chat `api_base` that names a model is not the API's root: use its origin.
        Some(b) if b.contains("/projects/") => b
            .split("/v1")
            .next()
            .unwrap_or(b)
            .trim_end_matches('/')
            .to_owned(),
        Some(b) => b.trim_end_matches('/').to_owned(),
        None if location == "global" => "https://aiplatform.googleapis.com".to_owned(),
        None => format!("https://{location}-aiplatform.googleapis.com"),
    };
    let mut up = req.to_upstream(&base, req.query.as_deref())?;
    match token {
        Some(t) => {
            let mut v = HeaderValue::try_from(format!("Bearer {}", t.expose())).map_err(|_| {
                LlmError::new(
                    ErrorKind::Authentication,
                    "the Vertex AI access token is not a valid header value",
                )
            })?;
            v.set_sensitive(true);
            with_credentials(&mut up, dep, "vertex_ai")?;
            up.headers_mut().insert(AUTHORIZATION, v);
        }
        None => with_credentials(&mut up, dep, "vertex_ai")?,
    }
    if !up.headers().contains_key(AUTHORIZATION) {
        return Err(LlmError::new(
            ErrorKind::Authentication,
            "the vertex_ai deployment has no credentials for the pass-through (vertex_credentials, GOOGLE_APPLICATION_CREDENTIALS or api_key)",
        )
        .with_provider("vertex_ai"));
    }
    Ok(up)
}
