//! Error answers: the OpenAI error JSON with its status, for the handlers' own errors and for the
//! responses axum writes itself.

use axum::{
    response::{IntoResponse, Response},
    Json,
};
use serde_json::Value;

use crate::{
    error::{ErrorKind, LlmError},
    store::StoreError,
};

/// An error answer: the OpenAI error JSON with its status.
#[derive(Debug)]
pub struct ApiError(pub LlmError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, headers, body) = self.0.to_http_parts();
        (status, headers, body).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "management API: store error");
        Self(
            LlmError::new(
                ErrorKind::ServiceUnavailable,
                "the database is unavailable; try again",
            )
            .with_code("503"),
        )
    }
}

pub(super) type ApiResult = Result<Json<Value>, ApiError>;

pub(crate) fn bad(param: &str, msg: impl Into<String>) -> ApiError {
    ApiError(
        LlmError::bad_request(msg)
            .with_param(param)
            .with_code("400"),
    )
}

pub(crate) fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(LlmError::new(ErrorKind::NotFound, msg).with_code("404"))
}

pub(crate) fn forbidden(msg: impl Into<String>) -> ApiError {
    ApiError(
        LlmError::new(ErrorKind::PermissionDenied, msg)
            .with_type("auth_error")
            .with_code("403"),
    )
}

/// Turns an error response axum wrote itself (a wrong method: an empty 405; a body over axum's
/// limit: a plain-text 413; an undecodable path segment: a plain-text 400) into the OpenAI error
/// JSON with the same status. The handlers' own errors are JSON already and pass untouched.
pub(crate) async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // axum's rejections are one short line; anything longer is cut.
    let text = axum::body::to_bytes(body, 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let text = text.trim();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("Request refused")
            .to_owned()
    } else {
        text.to_owned()
    };
    let err = LlmError::new(ErrorKind::from_status(status), message)
        .with_status(status)
        .with_code(status.as_str());
    let mut out = ApiError(err).into_response();
    if let Some(allow) = parts.headers.get(axum::http::header::ALLOW) {
        out.headers_mut()
            .insert(axum::http::header::ALLOW, allow.clone());
    }
    out
}

pub(super) async fn unknown_route(uri: axum::http::Uri) -> ApiError {
    ApiError(
        LlmError::new(ErrorKind::NotFound, format!("Unknown path: {}", uri.path()))
            .with_code("unknown_url"),
    )
}
