//! Regions: an end user's `allowed_model_region` (LiteLLM's `LiteLLM_EndUserTable` column, read by
//! [auth](crate::auth) into [`EndUserInfo`]) keeps its calls on the deployments whose
//! `litellm_params.region_name` is that region, as LiteLLM's router does (`is_region_allowed`).
//! No deployment of the group in the region: the call is refused (400), never sent elsewhere.
//! The answer carries `x-litellm-model-region: <region>`, as LiteLLM sends it for such callers.
//!
//! A call without a region costs one extension lookup (`None`): nothing else runs.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use crate::{auth::EndUserInfo, error::LlmError, provider::Deployment, types::LlmRequest};

/// `x-litellm-model-region`: the region the call was kept in.
pub const X_LITELLM_MODEL_REGION: HeaderName = HeaderName::from_static("x-litellm-model-region");

/// The region the request's end user must be served in, if any.
pub(super) fn allowed_region(req: &LlmRequest) -> Option<&str> {
    req.extensions
        .get::<Arc<EndUserInfo>>()
        .and_then(|e| e.allowed_model_region.as_deref())
        .filter(|r| !r.is_empty())
}

/// Whether a deployment serves in `region` (its `litellm_params.region_name`, compared exactly as
/// LiteLLM compares it).
pub(super) fn in_region(dep: &Deployment, region: &str) -> bool {
    dep.params
        .get("region_name")
        .and_then(serde_json::Value::as_str)
        == Some(region)
}

/// The refusal when no deployment of `group` is in `region`.
pub(super) fn none_in_region(group: &str, region: &str) -> LlmError {
    LlmError::bad_request(format!(
        "No deployment of model group `{group}` is in region `{region}` (the end user's allowed_model_region): the call is not sent outside it. Deployments name their region in litellm_params.region_name."
    ))
    .with_param("model")
    .with_code("no_deployment_in_region")
}

/// The `x-litellm-model-region` value for a request kept in a region.
pub(super) fn header(req: &LlmRequest) -> Option<HeaderValue> {
    allowed_region(req).and_then(|r| HeaderValue::from_str(r).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_is_in_the_region_its_params_name() {
        let mut d = Deployment::new("g", "openai/gpt-4o");
        assert!(!in_region(&d, "eu"));
        d.params
            .insert("region_name".into(), serde_json::Value::from("eu"));
        assert!(in_region(&d, "eu"));
        assert!(!in_region(&d, "us"));
        assert!(!in_region(&d, "EU"), "compared exactly, as LiteLLM");
        let e = none_in_region("g", "eu");
        assert_eq!(e.status(), 400);
        assert!(e.message().contains("region `eu`"), "{}", e.message());
    }
}
