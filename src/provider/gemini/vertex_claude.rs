//! Anthropic's Messages API relayed to Claude on Vertex AI (`vertex_ai/claude-*`), instead of
//! through the chat translation.
//!
//! The model is called at
//! `https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model}:rawPredict`
//! (a stream: `:streamRawPredict`; `aiplatform.googleapis.com` for `global`; an `api_base` that
//! names the model is used as it is), with the deployment's OAuth token, as every Vertex AI call.
//! The body is the client's, as Vertex's Claude takes it: `model` removed (the URL names it), the
//! gateway's controls removed, `anthropic_version: "vertex-2023-10-16"` set; `stream` stays. The
//! client's `anthropic-beta` headers are sent on. The answer is Anthropic's message, and a stream
//! Anthropic's SSE: both relayed as an `anthropic/` deployment's are.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::Deployment;
use crate::{
    error::LlmError,
    types::{chat::is_upstream_param, messages::AnthropicHeaders, LlmRequest},
};

/// The `anthropic_version` Vertex AI's Claude models take.
pub(crate) const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Whether `dep` is a Claude model on Vertex AI.
pub(crate) fn is_claude(dep: &Deployment) -> bool {
    dep.model.starts_with("claude")
}

/// The `rawPredict` / `streamRawPredict` method of a call.
pub(crate) fn method(stream: bool) -> &'static str {
    if stream {
        "streamRawPredict"
    } else {
        "rawPredict"
    }
}

/// The body Vertex AI's Claude takes for a Messages body: see the [module docs](self).
pub(crate) fn body(raw: &[u8]) -> Result<Bytes, LlmError> {
    let mut body: Map<String, Value> = serde_json::from_slice(raw)
        .map_err(|e| LlmError::bad_request(format!("invalid Messages request: {e}")))?;
    body.retain(|k, _| k != "model" && (k == "metadata" || is_upstream_param(k)));
    body.insert(
        "anthropic_version".into(),
        Value::String(VERTEX_ANTHROPIC_VERSION.into()),
    );
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .map_err(|e| LlmError::internal(format!("cannot encode the upstream request: {e}")))
}

/// Adds the client's `anthropic-beta` headers to the upstream request.
pub(crate) fn add_betas(req: &LlmRequest, headers: &mut http::HeaderMap) {
    if let Some(sent) = req.extensions.get::<AnthropicHeaders>() {
        for beta in &sent.beta {
            headers.append(
                http::HeaderName::from_static("anthropic-beta"),
                beta.clone(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_loses_model_and_gains_the_vertex_version() {
        let raw = br#"{"model":"claude","stream":true,"max_tokens":5,"fallbacks":["x"],"metadata":{"user_id":"u"},"messages":[{"role":"user","content":"hi"}]}"#;
        let v: Value = serde_json::from_slice(&body(raw).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"anthropic_version": "vertex-2023-10-16", "stream": true, "max_tokens": 5,
                "metadata": {"user_id": "u"}, "messages": [{"role": "user", "content": "hi"}]})
        );
        assert!(body(b"[1]").is_err());
        assert!(is_claude(&Deployment::new(
            "g",
            "vertex_ai/claude-sonnet-4-5@20250929"
        )));
        assert!(!is_claude(&Deployment::new(
            "g",
            "vertex_ai/gemini-2.5-flash"
        )));
    }
}
