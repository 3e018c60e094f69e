//! Moderations (`POST /v1/moderations`) on OpenAI-format hosts: the client's body relayed to
//! `{api_base}/moderations` with `model` set to the deployment's model and the gateway controls
//! removed, and the answer relayed byte for byte (no token usage: the price map prices
//! OpenAI's moderation models at 0).

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;

use super::{invalid_upstream_json, join_url, moderations_body, resolved_head};
use crate::{
    error::{ErrorKind, LlmError},
    provider::{compat::HostSpec, resolve::Endpoint, Deployment},
    types::{moderations::ModerationsRequest, JsonBody, LlmRequest, LlmResponse},
};

/// The upstream request of a moderation to `{api_base}/moderations` of the host `spec`.
pub(crate) fn encode(
    spec: &HostSpec,
    family: &str,
    req: &LlmRequest,
    m: &ModerationsRequest,
    dep: &Deployment,
) -> Result<http::Request<Bytes>, LlmError> {
    let r = dep.resolved(family);
    let base = spec.api_base(dep).ok_or_else(|| {
        LlmError::bad_request(format!(
            "the {family} provider needs an api_base (set it in litellm_params)"
        ))
    })?;
    let endpoint = Endpoint::parse(&join_url(base, "moderations"))?;
    let model = spec.upstream_model(&dep.model);
    let body = moderations_body(m, req.raw_body().map(|b| &b[..]), &model)?;
    let mut head = resolved_head(&endpoint, &r)?;
    r.add_credential(head.headers_mut())?;
    Ok(head.map(|()| body))
}

#[derive(Deserialize)]
struct Facts {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    results: Option<Vec<serde::de::IgnoredAny>>,
}

/// A moderation answer, relayed as its bytes with the model it names.
pub(crate) fn decode(body: &Bytes) -> Result<LlmResponse, LlmError> {
    let facts: Facts =
        serde_json::from_slice(body).map_err(|e| invalid_upstream_json("moderation", &e))?;
    if facts.results.is_none() {
        return Err(LlmError::new(
            ErrorKind::InternalServer,
            "the provider returned an invalid moderation: no results",
        )
        .with_status(http::StatusCode::BAD_GATEWAY));
    }
    Ok(LlmResponse::json(
        JsonBody::new(body.clone()).with_model(facts.model.map(Arc::from)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_a_moderation_and_refuses_what_is_not_one() {
        let body = Bytes::from_static(
            br#"{"id":"modr-1","model":"omni-moderation-latest","results":[{"flagged":false}]}"#,
        );
        let r = decode(&body).unwrap();
        match r.body {
            crate::types::ResponseBody::Json(j) => {
                assert_eq!(j.bytes, body);
                assert_eq!(j.model.as_deref(), Some("omni-moderation-latest"));
            }
            other => panic!("{other:?}"),
        }
        assert!(decode(&Bytes::from_static(b"{}")).is_err());
        assert!(decode(&Bytes::from_static(b"nope")).is_err());
    }
}
