//! [`LlmError`] and [`ErrorKind`]: the one error type of the model level, rendered in one place as the
//! OpenAI error JSON `{"error":{"message","type","param","code"}}` with the right status.
//!
//! Retry, fallback and cooldown decide on [`ErrorKind`], never on message text.

use std::{error::Error as StdError, fmt, time::Duration};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::ser::SerializeMap;

use crate::wire::Extra;

/// A boxed error, used only at generic tower seams.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The class of an error: what clients, retries, fallbacks and cooldowns branch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed or names something invalid (400).
    BadRequest,
    /// Missing or wrong credentials (401).
    Authentication,
    /// Credentials valid but not allowed (403).
    PermissionDenied,
    /// Unknown model, deployment or route (404).
    NotFound,
    /// Too many requests or tokens (429).
    RateLimit,
    /// The prompt does not fit the model's context window (400, `context_length_exceeded`).
    ContextWindowExceeded,
    /// The provider refused the content (400, `content_policy_violation`).
    ContentPolicyViolation,
    /// The call took too long (408).
    Timeout,
    /// The provider could not be reached (502).
    ApiConnection,
    /// The provider is overloaded or down (503).
    ServiceUnavailable,
    /// The provider or the gateway failed (500).
    InternalServer,
    /// The key, team, user or the proxy spent its budget (422, type `budget_exceeded`, code
    /// `"422"`: LiteLLM's `budget_exceeded_status_code` since 1.110).
    BudgetExceeded,
}

impl ErrorKind {
    /// Every kind, for tables and tests.
    pub const ALL: [Self; 12] = [
        Self::BadRequest,
        Self::Authentication,
        Self::PermissionDenied,
        Self::NotFound,
        Self::RateLimit,
        Self::ContextWindowExceeded,
        Self::ContentPolicyViolation,
        Self::Timeout,
        Self::ApiConnection,
        Self::ServiceUnavailable,
        Self::InternalServer,
        Self::BudgetExceeded,
    ];

    /// A stable snake_case label for logs and metrics.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Authentication => "authentication",
            Self::PermissionDenied => "permission_denied",
            Self::NotFound => "not_found",
            Self::RateLimit => "rate_limit",
            Self::ContextWindowExceeded => "context_window_exceeded",
            Self::ContentPolicyViolation => "content_policy_violation",
            Self::Timeout => "timeout",
            Self::ApiConnection => "api_connection",
            Self::ServiceUnavailable => "service_unavailable",
            Self::InternalServer => "internal_server",
            Self::BudgetExceeded => "budget_exceeded",
        }
    }

    /// The HTTP status a client receives for this kind.
    #[must_use]
    pub const fn status(self) -> StatusCode {
        match self {
            Self::BadRequest | Self::ContextWindowExceeded | Self::ContentPolicyViolation => {
                StatusCode::BAD_REQUEST
            }
            Self::BudgetExceeded => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Authentication => StatusCode::UNAUTHORIZED,
            Self::PermissionDenied => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::RateLimit => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::ApiConnection => StatusCode::BAD_GATEWAY,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::InternalServer => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OpenAI error `type`.
    #[must_use]
    pub const fn error_type(self) -> &'static str {
        match self {
            Self::BadRequest | Self::ContextWindowExceeded | Self::ContentPolicyViolation => {
                "invalid_request_error"
            }
            Self::Authentication => "authentication_error",
            Self::PermissionDenied => "permission_error",
            Self::NotFound => "not_found_error",
            Self::RateLimit => "rate_limit_error",
            Self::Timeout => "timeout_error",
            Self::ApiConnection => "api_connection_error",
            Self::ServiceUnavailable => "service_unavailable_error",
            Self::InternalServer => "internal_server_error",
            Self::BudgetExceeded => "budget_exceeded",
        }
    }

    /// The OpenAI error `code` when the kind has a specific one.
    #[must_use]
    pub const fn code(self) -> Option<&'static str> {
        match self {
            Self::ContextWindowExceeded => Some("context_length_exceeded"),
            Self::ContentPolicyViolation => Some("content_policy_violation"),
            _ => None,
        }
    }

    /// The kind a provider's HTTP status means when nothing more specific is known.
    #[must_use]
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 | 405 | 409 | 413 | 415 | 422 => Self::BadRequest,
            401 => Self::Authentication,
            403 => Self::PermissionDenied,
            404 => Self::NotFound,
            408 => Self::Timeout,
            429 => Self::RateLimit,
            503 | 529 => Self::ServiceUnavailable,
            s if s >= 500 => Self::InternalServer,
            _ => Self::BadRequest,
        }
    }

    /// Whether a retry (on this deployment or another) could succeed.
    #[must_use]
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimit
                | Self::Timeout
                | Self::ApiConnection
                | Self::ServiceUnavailable
                | Self::InternalServer
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The model level's error: a kind, the OpenAI error object a client receives, and what retries need
/// (`retry_after`, forwarded provider headers).
pub struct LlmError {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    status: Option<StatusCode>,
    error_type: Option<String>,
    param: Option<String>,
    code: Option<String>,
    extra: Extra,
    provider: Option<String>,
    retry_after: Option<Duration>,
    headers: HeaderMap,
    meta: ErrorMeta,
    source: Option<BoxError>,
}

/// What the policy layers record on an error on its way out, as typed fields: the edge renders them
/// (`x-litellm-attempted-retries`, `x-litellm-attempted-fallbacks`), so no layer spells a header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorMeta {
    /// Retries spent before this error ([retry](crate::retry) layer).
    pub attempted_retries: Option<u32>,
    /// Fallbacks spent before this error ([fallback](crate::fallback) layer).
    pub attempted_fallbacks: Option<u32>,
    /// The retries the call was allowed ([retry](crate::retry) layer): `x-litellm-max-retries`.
    pub max_retries: Option<u32>,
    /// Raised by the model call (a provider's error, a call's timeout or connection failure, a
    /// `mock_testing_*` failure), as opposed to a refusal of the gateway itself (key, limit,
    /// budget, parse, unknown model, no deployment available). LiteLLM raises the former as its
    /// exception classes, whose message carries the `litellm.<Class>: ` prefix
    /// ([`LlmError::litellm_class`]).
    pub raised_by_call: bool,
}

impl LlmError {
    /// An error of `kind` with a client-facing message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                status: None,
                error_type: None,
                param: None,
                code: None,
                extra: Extra::new(),
                provider: None,
                retry_after: None,
                headers: HeaderMap::new(),
                meta: ErrorMeta::default(),
                source: None,
            }),
        }
    }

    /// `BadRequest` with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// `InternalServer` with a message.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InternalServer, message)
    }

    /// Overrides the HTTP status (for relaying a provider's exact status).
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.inner.status = Some(status);
        self
    }

    /// Overrides the OpenAI error `type`.
    #[must_use]
    pub fn with_type(mut self, error_type: impl Into<String>) -> Self {
        self.inner.error_type = Some(error_type.into());
        self
    }

    /// Sets `param`: the request field at fault.
    #[must_use]
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.inner.param = Some(param.into());
        self
    }

    /// Sets `code`.
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.inner.code = Some(code.into());
        self
    }

    /// Keeps further keys of a provider's error object (`innererror`, …) to relay them.
    #[must_use]
    pub fn with_extra(mut self, extra: Extra) -> Self {
        self.inner.extra = extra;
        self
    }

    /// Names the provider that produced the error.
    #[must_use]
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.inner.provider = Some(provider.into());
        self
    }

    /// How long the caller should wait before retrying.
    #[must_use]
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.inner.retry_after = Some(wait);
        self
    }

    /// Provider headers to forward to the client (`retry-after`, `x-ratelimit-*`).
    #[must_use]
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.inner.headers = headers;
        self
    }

    /// The underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// What the policy layers recorded on this error (retries and fallbacks spent).
    #[must_use]
    pub fn meta(&self) -> &ErrorMeta {
        &self.inner.meta
    }

    /// [`LlmError::meta`], for a layer to record what it spent.
    pub fn meta_mut(&mut self) -> &mut ErrorMeta {
        &mut self.inner.meta
    }

    /// The error class.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The HTTP status a client receives. An override that is not an error status (a provider
    /// that answered a redirect or an informational status, relayed by a classifier) is a
    /// `502 Bad Gateway`: an error is never answered with a success or redirect status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self.inner.status {
            Some(s) if s.is_client_error() || s.is_server_error() => s,
            Some(_) => StatusCode::BAD_GATEWAY,
            None => self.inner.kind.status(),
        }
    }

    /// The client-facing message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Replaces the client-facing message.
    pub fn set_message(&mut self, message: impl Into<String>) {
        self.inner.message = message.into();
    }

    /// The LiteLLM exception class this error is raised as (`litellm/exceptions.py`), by its
    /// kind and status, as LiteLLM's `exception_type` maps a provider's error: `BadRequestError`
    /// (400 and other 4xx), `UnprocessableEntityError` (422), `AuthenticationError`,
    /// `PermissionDeniedError`, `NotFoundError`, `Timeout`, `RateLimitError`,
    /// `ContextWindowExceededError`, `ContentPolicyViolationError`, `APIConnectionError`,
    /// `BadGatewayError` (502), `ServiceUnavailableError`, `InternalServerError` (500) and
    /// `APIError` (any other 5xx). A budget refusal is the proxy's own `BudgetExceededError`.
    #[must_use]
    pub fn litellm_class(&self) -> &'static str {
        match self.inner.kind {
            ErrorKind::ContextWindowExceeded => "ContextWindowExceededError",
            ErrorKind::ContentPolicyViolation => "ContentPolicyViolationError",
            ErrorKind::Authentication => "AuthenticationError",
            ErrorKind::PermissionDenied => "PermissionDeniedError",
            ErrorKind::NotFound => "NotFoundError",
            ErrorKind::RateLimit => "RateLimitError",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::ApiConnection => "APIConnectionError",
            ErrorKind::ServiceUnavailable => "ServiceUnavailableError",
            ErrorKind::BudgetExceeded => "BudgetExceededError",
            ErrorKind::BadRequest | ErrorKind::InternalServer => match self.status().as_u16() {
                422 => "UnprocessableEntityError",
                400..=499 => "BadRequestError",
                500 => "InternalServerError",
                502 => "BadGatewayError",
                503 => "ServiceUnavailableError",
                _ => "APIError",
            },
        }
    }

    /// The OpenAI error `type`.
    #[must_use]
    pub fn error_type(&self) -> &str {
        self.inner
            .error_type
            .as_deref()
            .unwrap_or_else(|| self.inner.kind.error_type())
    }

    /// The request field at fault.
    #[must_use]
    pub fn param(&self) -> Option<&str> {
        self.inner.param.as_deref()
    }

    /// The OpenAI error `code` (the kind's own code, else the status as a string, as LiteLLM does).
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        self.inner
            .code
            .as_deref()
            .or_else(|| self.inner.kind.code())
    }

    /// The provider that produced the error, if any.
    #[must_use]
    pub fn provider(&self) -> Option<&str> {
        self.inner.provider.as_deref()
    }

    /// How long to wait before retrying, when the provider said.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// Provider headers forwarded to the client.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.inner.headers
    }

    /// Mutable access to the forwarded headers.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.inner.headers
    }

    /// The OpenAI error JSON body `{"error":{..}}`.
    #[must_use]
    pub fn to_json(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(128 + self.inner.message.len()).writer();
        // Serializing plain strings into memory cannot fail.
        let _ = serde_json::to_writer(&mut buf, &Envelope(self));
        buf.into_inner().freeze()
    }

    /// The error object alone (`{"message","type","param","code"}`), for stream error events.
    #[must_use]
    pub fn to_json_object(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(128 + self.inner.message.len()).writer();
        let _ = serde_json::to_writer(&mut buf, &Object(self));
        buf.into_inner().freeze()
    }

    /// Status, headers and body of the error response.
    #[must_use]
    pub fn to_http_parts(&self) -> (StatusCode, HeaderMap, Bytes) {
        let mut headers = self.inner.headers.clone();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(wait) = self.inner.retry_after {
            if !headers.contains_key(http::header::RETRY_AFTER) {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
            }
        }
        (self.status(), headers, self.to_json())
    }
}

struct Envelope<'a>(&'a LlmError);
struct Object<'a>(&'a LlmError);

impl serde::Serialize for Envelope<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("error", &Object(self.0))?;
        map.end()
    }
}

impl serde::Serialize for Object<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("message", e.message())?;
        // A relayed provider object whose `type` is not a string (Azure sends `null`) keeps it.
        match e.inner.extra.get("type") {
            Some(raw) => map.serialize_entry("type", raw)?,
            None => map.serialize_entry("type", e.error_type())?,
        }
        map.serialize_entry("param", &e.param())?;
        let status_code;
        let code = match e.code() {
            Some(c) => Some(c),
            None if e.inner.error_type.is_none() => {
                status_code = e.status().as_u16().to_string();
                Some(status_code.as_str())
            }
            None => None,
        };
        map.serialize_entry("code", &code)?;
        e.inner.extra.serialize_into(&mut map, &|k| {
            !matches!(k, "message" | "type" | "param" | "code")
        })?;
        map.end()
    }
}

impl fmt::Debug for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmError")
            .field("kind", &self.inner.kind)
            .field("status", &self.status())
            .field("message", &self.inner.message)
            .field("provider", &self.inner.provider)
            .field("retry_after", &self.inner.retry_after)
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.inner.kind.as_str().replace('_', " "),
            self.inner.message
        )
    }
}

impl StdError for LlmError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing the providers' classifiers (tests/fuzz_streams.rs): a provider's `302`
    /// or `100` was relayed as the status of an error answer.
    #[test]
    fn an_error_never_carries_a_status_that_is_not_an_error() {
        for (relayed, want) in [
            (StatusCode::CONTINUE, StatusCode::BAD_GATEWAY),
            (StatusCode::NO_CONTENT, StatusCode::BAD_GATEWAY),
            (StatusCode::FOUND, StatusCode::BAD_GATEWAY),
            (StatusCode::NOT_MODIFIED, StatusCode::BAD_GATEWAY),
            (StatusCode::IM_A_TEAPOT, StatusCode::IM_A_TEAPOT),
            (StatusCode::GATEWAY_TIMEOUT, StatusCode::GATEWAY_TIMEOUT),
        ] {
            let e = LlmError::bad_request("x").with_status(relayed);
            assert_eq!(e.status(), want, "{relayed}");
            assert_eq!(e.to_http_parts().0, want, "{relayed}");
        }
    }

    #[test]
    fn error_is_one_pointer() {
        assert_eq!(
            std::mem::size_of::<LlmError>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn renders_openai_error_json_for_every_kind() {
        for kind in ErrorKind::ALL {
            let err = LlmError::new(kind, "boom");
            let (status, headers, body) = err.to_http_parts();
            assert_eq!(status, kind.status());
            assert_eq!(headers[http::header::CONTENT_TYPE], "application/json");
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let obj = &v["error"];
            assert_eq!(obj["message"], "boom");
            assert_eq!(obj["type"], kind.error_type());
            assert!(obj["param"].is_null());
            let expected_code = kind
                .code()
                .map_or_else(|| kind.status().as_u16().to_string(), str::to_owned);
            assert_eq!(obj["code"], expected_code.as_str());
        }
    }

    #[test]
    fn relayed_error_keeps_provider_fields() {
        let mut extra = Extra::new();
        extra
            .insert(
                "innererror",
                &serde_json::json!({"code": "ResponsibleAIPolicyViolation"}),
            )
            .unwrap();
        let err = LlmError::new(ErrorKind::ContentPolicyViolation, "filtered")
            .with_type("tokens")
            .with_code("content_filter")
            .with_param("prompt")
            .with_extra(extra)
            .with_retry_after(Duration::from_millis(1500));
        let (status, headers, body) = err.to_http_parts();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers[http::header::RETRY_AFTER], "2");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "filtered", "type": "tokens", "param": "prompt",
                "code": "content_filter", "innererror": {"code": "ResponsibleAIPolicyViolation"}}})
        );
    }

    #[test]
    fn names_litellms_exception_class() {
        for (err, class) in [
            (LlmError::bad_request("x"), "BadRequestError"),
            (
                LlmError::bad_request("x").with_status(StatusCode::UNPROCESSABLE_ENTITY),
                "UnprocessableEntityError",
            ),
            (LlmError::new(ErrorKind::RateLimit, "x"), "RateLimitError"),
            (LlmError::new(ErrorKind::Timeout, "x"), "Timeout"),
            (LlmError::internal("x"), "InternalServerError"),
            (
                LlmError::internal("x").with_status(StatusCode::BAD_GATEWAY),
                "BadGatewayError",
            ),
            (
                LlmError::internal("x").with_status(StatusCode::GATEWAY_TIMEOUT),
                "APIError",
            ),
            (
                LlmError::new(ErrorKind::ContextWindowExceeded, "x"),
                "ContextWindowExceededError",
            ),
            (
                LlmError::new(ErrorKind::ApiConnection, "x"),
                "APIConnectionError",
            ),
        ] {
            assert_eq!(err.litellm_class(), class, "{err:?}");
        }
        let mut e = LlmError::bad_request("x");
        e.set_message("y");
        assert_eq!(e.message(), "y");
    }

    #[test]
    fn display_is_lowercase_without_period() {
        let err = LlmError::new(ErrorKind::RateLimit, "slow down");
        assert_eq!(err.to_string(), "rate limit: slow down");
    }
}
