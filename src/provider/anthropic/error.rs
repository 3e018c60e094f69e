//! Anthropic error classification: `{"type":"error","error":{"type","message"}}` → [`LlmError`].

use http::{HeaderMap, HeaderName, StatusCode};

use crate::{
    error::{ErrorKind, LlmError},
    provider::forwardable_headers,
};

const PROVIDER: &str = "anthropic";

/// The kind an Anthropic error means, from its `type` (preferred) or the HTTP status.
fn kind_of(error_type: Option<&str>, status: Option<StatusCode>, message: &str) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    if lower.contains("prompt is too long")
        || lower.contains("exceed context limit")
        || lower.contains("context window")
    {
        return ErrorKind::ContextWindowExceeded;
    }
    match error_type {
        Some("invalid_request_error" | "request_too_large") => ErrorKind::BadRequest,
        Some("authentication_error") => ErrorKind::Authentication,
        Some("permission_error") => ErrorKind::PermissionDenied,
        Some("not_found_error") => ErrorKind::NotFound,
        Some("rate_limit_error") => ErrorKind::RateLimit,
        Some("timeout_error") => ErrorKind::Timeout,
        // LiteLLM raises InternalServerError (500) for overloaded_error / 529 and for api_error.
        Some("overloaded_error" | "api_error") => ErrorKind::InternalServer,
        _ => match status {
            Some(s) if s.as_u16() == 529 => ErrorKind::InternalServer,
            Some(s) => ErrorKind::from_status(s),
            None => ErrorKind::InternalServer,
        },
    }
}

/// The LiteLLM exception class name for a kind, used as the message prefix clients grep for.
fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest => "BadRequestError",
        ErrorKind::Authentication => "AuthenticationError",
        ErrorKind::PermissionDenied => "PermissionDeniedError",
        ErrorKind::NotFound => "NotFoundError",
        ErrorKind::RateLimit => "RateLimitError",
        ErrorKind::ContextWindowExceeded => "ContextWindowExceededError",
        ErrorKind::ContentPolicyViolation => "ContentPolicyViolationError",
        ErrorKind::Timeout => "Timeout",
        ErrorKind::ApiConnection => "APIConnectionError",
        ErrorKind::ServiceUnavailable => "ServiceUnavailableError",
        ErrorKind::BudgetExceeded => "BudgetExceededError",
        _ => "InternalServerError",
    }
}

/// An [`LlmError`] from an Anthropic error object's `type` and `message` (also used for `error`
/// events inside a stream, where `status` is `None`).
#[must_use]
pub fn error_from_anthropic(
    error_type: Option<&str>,
    message: &str,
    status: Option<StatusCode>,
) -> LlmError {
    let kind = kind_of(error_type, status, message);
    LlmError::new(
        kind,
        format!(
            "litellm.{}: AnthropicException - {message}",
            class_name(kind)
        ),
    )
    .with_provider(PROVIDER)
}

/// Classifies an Anthropic error response. The client status is the kind's (so 529 overloaded
/// becomes 500, as in LiteLLM); `retry-after`, `x-ratelimit-*` and the request id are forwarded,
/// and `anthropic-ratelimit-*` headers are also given their OpenAI names.
#[must_use]
pub fn classify_anthropic_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> LlmError {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let obj = parsed.as_ref().and_then(|v| v.get("error"));
    let error_type = obj
        .and_then(|e| e.get("type"))
        .and_then(serde_json::Value::as_str);
    let message = match obj.and_then(|e| e.get("message")) {
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                format!("the provider answered {status} with an empty body")
            } else {
                text.chars().take(2000).collect()
            }
        }
    };
    let mut err = error_from_anthropic(error_type, &message, Some(status));
    let mut forwarded = forwardable_headers(headers);
    for (name, value) in headers {
        if let Some(openai) = openai_ratelimit_name(name.as_str()) {
            if let Ok(n) = HeaderName::try_from(openai) {
                forwarded.insert(n, value.clone());
            }
        }
    }
    *err.headers_mut() = forwarded;
    err
}

/// `anthropic-ratelimit-requests-remaining` → `x-ratelimit-remaining-requests`, and so on.
fn openai_ratelimit_name(name: &str) -> Option<String> {
    let rest = name.strip_prefix("anthropic-ratelimit-")?;
    let (what, field) = rest.rsplit_once('-')?;
    matches!(field, "limit" | "remaining" | "reset").then(|| format!("x-ratelimit-{field}-{what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> LlmError {
        classify_anthropic_error(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn kinds_by_type() {
        let e = classify(
            400,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 2 tokens > 1 maximum"}}"#,
        );
        assert_eq!(e.kind(), ErrorKind::ContextWindowExceeded);
        assert_eq!(e.code(), Some("context_length_exceeded"));
        assert!(e
            .message()
            .starts_with("litellm.ContextWindowExceededError"));
        let e = classify(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(e.kind(), ErrorKind::InternalServer);
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(classify(403, "").kind(), ErrorKind::PermissionDenied);
        assert_eq!(classify(404, "not json").kind(), ErrorKind::NotFound);
        assert_eq!(classify(529, "").kind(), ErrorKind::InternalServer);
    }

    #[test]
    fn ratelimit_headers_get_openai_names() {
        let mut h = HeaderMap::new();
        h.insert(
            "anthropic-ratelimit-tokens-remaining",
            http::HeaderValue::from_static("0"),
        );
        h.insert("retry-after", http::HeaderValue::from_static("30"));
        let e = classify_anthropic_error(StatusCode::TOO_MANY_REQUESTS, &h, b"{}");
        assert_eq!(e.headers()["x-ratelimit-remaining-tokens"], "0");
        assert_eq!(e.headers()["retry-after"], "30");
        assert_eq!(e.kind(), ErrorKind::RateLimit);
    }
}
