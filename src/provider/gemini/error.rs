//! Google API errors (`{"error": {"code", "message", "status", "details"}}`) → [`LlmError`].

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use crate::error::{ErrorKind, LlmError};

/// Classifies a Google API error response.
///
/// - `API key not valid` / reason `API_KEY_INVALID` / `UNAUTHENTICATED` → `Authentication` (401),
///   although Google answers a bad key with 400;
/// - `The input token count (…) exceeds the maximum number of tokens allowed` →
///   `ContextWindowExceeded` (400, `context_length_exceeded`);
/// - `RESOURCE_EXHAUSTED` → `RateLimit` (429), with `RetryInfo.retryDelay` as the retry-after;
/// - `PERMISSION_DENIED` → `PermissionDenied` (403), `NOT_FOUND` → `NotFound`,
///   `INVALID_ARGUMENT` / `FAILED_PRECONDITION` → `BadRequest`, `UNAVAILABLE` →
///   `ServiceUnavailable`, `DEADLINE_EXCEEDED` → `Timeout`; otherwise by HTTP status.
#[must_use]
pub fn classify_google_error(provider: &str, status: StatusCode, body: &[u8]) -> LlmError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    // `streamGenerateContent` without `alt=sse` wraps the error in an array.
    let obj = match parsed {
        Some(Value::Array(mut a)) if !a.is_empty() => a.swap_remove(0).get("error").cloned(),
        Some(Value::Object(mut m)) => m.remove("error"),
        _ => None,
    };
    match obj {
        Some(obj @ Value::Object(_)) => error_from_status_object(provider, Some(status), &obj),
        Some(Value::String(s)) => simple(provider, status, s),
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                format!("the provider answered {status} with an empty body")
            } else {
                text.chars().take(2000).collect()
            };
            simple(provider, status, message)
        }
    }
}

fn simple(provider: &str, status: StatusCode, message: String) -> LlmError {
    LlmError::new(kind_of(Some(status), None, &message, false), message).with_provider(provider)
}

/// An [`LlmError`] from a Google `Status` object (`code`, `message`, `status`, `details`).
#[must_use]
pub fn error_from_status_object(
    provider: &str,
    status: Option<StatusCode>,
    obj: &Value,
) -> LlmError {
    let message = obj
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the provider returned an error")
        .to_owned();
    let status = status.or_else(|| {
        obj.get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
    });
    let details = obj.get("details").and_then(Value::as_array);
    let key_invalid = details.is_some_and(|d| {
        d.iter()
            .any(|x| x.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"))
    });
    let kind = kind_of(
        status,
        obj.get("status").and_then(Value::as_str),
        &message,
        key_invalid,
    );
    let mut err = LlmError::new(kind, message).with_provider(provider);
    if let Some(wait) = details.and_then(|d| {
        d.iter()
            .filter_map(|x| x.get("retryDelay").and_then(Value::as_str))
            .find_map(parse_duration)
    }) {
        err = err.with_retry_after(wait);
    }
    err
}

fn kind_of(
    status: Option<StatusCode>,
    grpc_status: Option<&str>,
    message: &str,
    key_invalid: bool,
) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    if key_invalid || lower.contains("api key not valid") || lower.contains("api key expired") {
        return ErrorKind::Authentication;
    }
    if lower.contains("exceeds the maximum number of tokens")
        || (lower.contains("input token count") && lower.contains("exceeds"))
        || lower.contains("context window")
    {
        return ErrorKind::ContextWindowExceeded;
    }
    match grpc_status {
        Some("UNAUTHENTICATED") => return ErrorKind::Authentication,
        Some("PERMISSION_DENIED") => return ErrorKind::PermissionDenied,
        Some("RESOURCE_EXHAUSTED") => return ErrorKind::RateLimit,
        Some("NOT_FOUND") => return ErrorKind::NotFound,
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => {
            return ErrorKind::BadRequest
        }
        Some("UNAVAILABLE") => return ErrorKind::ServiceUnavailable,
        Some("DEADLINE_EXCEEDED") => return ErrorKind::Timeout,
        Some("INTERNAL") => return ErrorKind::InternalServer,
        _ => {}
    }
    status.map_or(ErrorKind::InternalServer, ErrorKind::from_status)
}

/// A protobuf JSON duration (`"37s"`, `"1.5s"`), at most a day.
fn parse_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && (0.0..=86_400.0).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_google_errors() {
        let e = classify_google_error(
            "gemini",
            StatusCode::BAD_REQUEST,
            br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#,
        );
        assert_eq!(e.kind(), ErrorKind::Authentication);
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);

        let e = classify_google_error(
            "gemini",
            StatusCode::TOO_MANY_REQUESTS,
            br#"[{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}]"#,
        );
        assert_eq!(e.kind(), ErrorKind::RateLimit);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(37)));

        let e = classify_google_error("gemini", StatusCode::SERVICE_UNAVAILABLE, b"overloaded");
        assert_eq!(e.kind(), ErrorKind::ServiceUnavailable);
        assert_eq!(e.message(), "overloaded");
    }
}
