//! OpenAI error classification: the error object is relayed as sent; the kind comes from the status
//! and the error code.

use http::{HeaderMap, StatusCode};

use crate::{
    error::{ErrorKind, LlmError},
    types::wire::Extra,
};

/// Parses `{"error": {...}}` (or a bare error object) into its fields.
#[must_use]
pub fn parse_error_object(body: &[u8]) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    match v {
        serde_json::Value::Object(mut m) => match m.remove("error") {
            Some(e @ serde_json::Value::Object(_)) => Some(e),
            Some(serde_json::Value::String(s)) => Some(serde_json::json!({ "message": s })),
            _ if m.contains_key("message") => Some(serde_json::Value::Object(m)),
            _ => None,
        },
        _ => None,
    }
}

/// The kind an OpenAI-format error means.
fn kind_of(status: StatusCode, code: Option<&str>, message: &str) -> ErrorKind {
    match code {
        Some("context_length_exceeded" | "string_above_max_length") => {
            return ErrorKind::ContextWindowExceeded
        }
        Some("content_filter" | "content_policy_violation" | "invalid_prompt") => {
            return ErrorKind::ContentPolicyViolation
        }
        _ => {}
    }
    if status == StatusCode::BAD_REQUEST {
        let m = message.to_ascii_lowercase();
        if m.contains("maximum context length") || m.contains("context_length_exceeded") {
            return ErrorKind::ContextWindowExceeded;
        }
        if m.contains("content management policy") || m.contains("content_policy") {
            return ErrorKind::ContentPolicyViolation;
        }
    }
    ErrorKind::from_status(status)
}

/// An [`LlmError`] relaying an OpenAI-format error object with its status.
#[must_use]
pub fn error_from_object(provider: &str, status: StatusCode, obj: &serde_json::Value) -> LlmError {
    let message = obj
        .get("message")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("the provider returned an error")
        .to_owned();
    let code = match obj.get("code") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let mut err = LlmError::new(kind_of(status, code.as_deref(), &message), message)
        .with_status(status)
        .with_provider(provider)
        .with_type(
            obj.get("type")
                .and_then(serde_json::Value::as_str)
                .map_or_else(
                    || ErrorKind::from_status(status).error_type().to_owned(),
                    str::to_owned,
                ),
        );
    if let Some(code) = code {
        err = err.with_code(code);
    }
    if let Some(param) = obj.get("param").and_then(serde_json::Value::as_str) {
        err = err.with_param(param);
    }
    if let serde_json::Value::Object(m) = obj {
        let mut extra = Extra::new();
        for (k, v) in m {
            let keep = match k.as_str() {
                "message" | "param" | "code" => false,
                // A non-string `type` (Azure's `null`) is relayed as sent.
                "type" => !v.is_string(),
                _ => true,
            };
            if keep {
                // Values from a parsed object always serialize.
                let _ = extra.insert(k, v);
            }
        }
        if !extra.is_empty() {
            err = err.with_extra(extra);
        }
    }
    err
}

/// Classifies an OpenAI-format error response: same status, same error object.
#[must_use]
pub fn classify_openai_error(
    provider: &str,
    status: StatusCode,
    _headers: &HeaderMap,
    body: &[u8],
) -> LlmError {
    match parse_error_object(body) {
        Some(obj) => error_from_object(provider, status, &obj),
        None => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                format!("the provider answered {status} with an empty body")
            } else {
                text.chars().take(2000).collect()
            };
            LlmError::new(kind_of(status, None, &message), message)
                .with_status(status)
                .with_provider(provider)
        }
    }
}
