//! Bedrock error classification. Errors are JSON `{"message": …}` with the error name in the
//! `x-amzn-ErrorType` header (`ThrottlingException:http://internal.amazon.com/…`) or in a `__type`
//! field; stream exceptions carry it in the `:exception-type` header, in lowerCamelCase.
//!
//! | error | kind |
//! | --- | --- |
//! | `ValidationException` saying the input is too long | `ContextWindowExceeded` |
//! | `ValidationException` | `BadRequest` |
//! | `ThrottlingException`, `ServiceQuotaExceededException` | `RateLimit` |
//! | `AccessDeniedException` | `PermissionDenied` |
//! | `UnrecognizedClientException`, `InvalidSignatureException`, `ExpiredTokenException`, … | `Authentication` |
//! | `ResourceNotFoundException` | `NotFound` |
//! | `ModelTimeoutException` | `Timeout` |
//! | `ModelNotReadyException`, `ServiceUnavailableException` | `ServiceUnavailable` |
//! | `InternalServerException`, `ModelErrorException`, `ModelStreamErrorException` | `InternalServer` |
//! | anything else | by HTTP status |

use http::{HeaderMap, StatusCode};

use crate::error::{ErrorKind, LlmError};

/// Phrases of a `ValidationException` that mean the prompt does not fit the context window.
const CONTEXT_PHRASES: &[&str] = &[
    "input is too long",
    "too many input tokens",
    "prompt is too long",
    "maximum context length",
    "context window",
    "exceeds the maximum number of tokens",
    "input length",
];

/// The kind a Bedrock error name (any case, without the `:…` suffix) means, if it is known.
#[must_use]
pub fn kind_of(error_type: &str, message: &str) -> Option<ErrorKind> {
    let t = error_type.to_ascii_lowercase();
    Some(match t.as_str() {
        "validationexception" => {
            let m = message.to_ascii_lowercase();
            if CONTEXT_PHRASES.iter().any(|p| m.contains(p)) {
                ErrorKind::ContextWindowExceeded
            } else {
                ErrorKind::BadRequest
            }
        }
        "throttlingexception" | "servicequotaexceededexception" | "toomanyrequestsexception" => {
            ErrorKind::RateLimit
        }
        "accessdeniedexception" => ErrorKind::PermissionDenied,
        "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "incompletesignatureexception"
        | "expiredtokenexception"
        | "invalidclienttokenid"
        | "missingauthenticationtokenexception" => ErrorKind::Authentication,
        "resourcenotfoundexception" => ErrorKind::NotFound,
        "modeltimeoutexception" => ErrorKind::Timeout,
        "modelnotreadyexception" | "serviceunavailableexception" => ErrorKind::ServiceUnavailable,
        "internalserverexception" | "modelerrorexception" | "modelstreamerrorexception" => {
            ErrorKind::InternalServer
        }
        _ => return None,
    })
}

/// An error named `error_type` with `message`; the kind from the name, else from `status`.
#[must_use]
pub fn bedrock_error(
    error_type: Option<&str>,
    message: &str,
    status: Option<StatusCode>,
) -> LlmError {
    let kind = error_type
        .and_then(|t| kind_of(t, message))
        .or_else(|| status.map(ErrorKind::from_status))
        .unwrap_or(ErrorKind::InternalServer);
    let text = match error_type {
        Some(t) => format!("BedrockException - {t}: {message}"),
        None => format!("BedrockException - {message}"),
    };
    LlmError::new(kind, text).with_provider("bedrock")
}

/// Classifies an HTTP error response from the Bedrock runtime.
#[must_use]
pub fn classify_bedrock_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> LlmError {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let from_body = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(serde_json::Value::as_str)
    };
    let error_type = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .or_else(|| from_body("__type"))
        .map(|t| {
            // `Name:http://…` in the header, `namespace#Name` in `__type`.
            let t = t.split(':').next().unwrap_or(t);
            t.rsplit('#').next().unwrap_or(t)
        })
        .filter(|t| !t.is_empty());
    let message = from_body("message")
        .or_else(|| from_body("Message"))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                format!("the provider answered {status} with an empty body")
            } else {
                text.chars().take(2000).collect()
            }
        });
    bedrock_error(error_type, &message, Some(status))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn classify(status: u16, error_type: &str, message: &str) -> LlmError {
        let mut h = HeaderMap::new();
        h.insert(
            "x-amzn-errortype",
            HeaderValue::from_str(error_type).unwrap(),
        );
        let body = serde_json::json!({ "message": message }).to_string();
        classify_bedrock_error(StatusCode::from_u16(status).unwrap(), &h, body.as_bytes())
    }

    #[test]
    fn classifies_by_error_type() {
        let e = classify(
            400,
            "ValidationException:http://internal.amazon.com/coral/x/",
            "Input is too long for requested model.",
        );
        assert_eq!(e.kind(), ErrorKind::ContextWindowExceeded);
        assert_eq!(e.code(), Some("context_length_exceeded"));
        assert_eq!(
            classify(400, "ValidationException", "bad").kind(),
            ErrorKind::BadRequest
        );
        assert_eq!(
            classify(429, "ThrottlingException", "slow").kind(),
            ErrorKind::RateLimit
        );
        assert_eq!(
            classify(403, "AccessDeniedException", "no").kind(),
            ErrorKind::PermissionDenied
        );
        assert_eq!(
            classify(403, "UnrecognizedClientException", "who").kind(),
            ErrorKind::Authentication
        );
        assert_eq!(
            classify(404, "ResourceNotFoundException", "?").kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            classify(500, "Unknown", "?").kind(),
            ErrorKind::InternalServer
        );
    }

    #[test]
    fn reads_type_from_body_when_header_missing() {
        let body = br#"{"__type":"com.amazon.coral.service#ThrottlingException","Message":"slow"}"#;
        let e = classify_bedrock_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), body);
        assert_eq!(e.kind(), ErrorKind::RateLimit);
        assert!(e.message().contains("slow"));
    }

    #[test]
    fn stream_exception_names_are_camel_case() {
        assert_eq!(
            kind_of("throttlingException", ""),
            Some(ErrorKind::RateLimit)
        );
        assert_eq!(
            kind_of("validationException", "Input is too long"),
            Some(ErrorKind::ContextWindowExceeded)
        );
    }
}
