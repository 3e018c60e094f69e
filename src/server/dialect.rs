//! [`Dialect`]: the wire dialect a route speaks, which decides how its errors are written.
//!
//! Every error a route answers is written in its dialect, with the error's status: the OpenAI
//! error JSON on the OpenAI routes. A route that speaks another dialect (Anthropic's Messages,
//! say) adds a variant here with its error response and its stream's error frame, and names it
//! in [`Route::dialect`](super::service::Route::dialect); the request's way through the edge is
//! the same for every dialect.
//!
//! Anthropic's Messages routes answer `{"type":"error","error":{"type","message"}}`, the error
//! `type` from the status as Anthropic names it (`invalid_request_error` 400,
//! `authentication_error` 401, `permission_error` 403, `not_found_error` 404, `request_too_large`
//! 413, `rate_limit_error` 429, `api_error` 500, `overloaded_error` 503/529, `timeout_error`
//! 408/504), and end a failed stream with `event: error` carrying the same object.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::{
    body::{encode_error, ErrorFrame, ServerBody},
    json::error_response,
};
use crate::error::LlmError;

/// The wire dialect of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// OpenAI's API: `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
    /// Anthropic's Messages API: `{"type": "error", "error": {"type", "message"}}`.
    Anthropic,
    /// OpenAI's Responses API: errors as [`Dialect::OpenAi`]; a stream that fails ends with
    /// Responses' `error` event (`{"type":"error","code","message","param"}`).
    Responses,
    /// Google's APIs (the `/gemini/` and `/vertex_ai/` pass-through routes):
    /// `{"error": {"code", "message", "status"}}`, `status` the canonical code's name.
    Google,
    /// AWS's REST-JSON APIs (the `/bedrock/` pass-through route): `{"message"}` with the
    /// exception's name in `x-amzn-ErrorType`, as the AWS SDKs read it.
    Bedrock,
    /// Ollama's API (the `/ollama/` pass-through route): `{"error": "<message>"}`.
    Ollama,
}

impl Dialect {
    /// The error response in this dialect, with the error's status and headers.
    pub(crate) fn error_response(
        self,
        err: &LlmError,
        call_id: &Arc<str>,
    ) -> http::Response<ServerBody> {
        match self {
            Self::OpenAi => error_response(err, call_id),
            Self::Anthropic => anthropic_error_response(err, call_id),
            Self::Responses => error_response(err, call_id),
            Self::Google => shaped_error_response(err, call_id, google_error_json(err), None),
            Self::Bedrock => shaped_error_response(
                err,
                call_id,
                serde_json::json!({"message": err.message()})
                    .to_string()
                    .into_bytes(),
                Some(bedrock_error_type(err)),
            ),
            Self::Ollama => shaped_error_response(
                err,
                call_id,
                serde_json::json!({"error": err.message()})
                    .to_string()
                    .into_bytes(),
                None,
            ),
        }
    }

    /// How an error that ends a stream is written in this dialect.
    pub(crate) fn error_frame(self) -> ErrorFrame {
        match self {
            Self::OpenAi => openai_error_frame,
            Self::Anthropic => anthropic_error_frame,
            Self::Responses => responses_error_frame,
            // The pass-through routes relay the provider's own stream and write nothing into
            // it; should an error end one, it is the dialect's error JSON as an SSE `data:`.
            Self::Google => google_error_frame,
            Self::Bedrock | Self::Ollama => ollama_error_frame,
        }
    }
}

/// Google's canonical status name for an error's HTTP status.
fn google_status(err: &LlmError) -> &'static str {
    match err.status().as_u16() {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        402 | 403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        400..=499 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

/// `{"error":{"code","message","status"}}`.
fn google_error_json(err: &LlmError) -> Vec<u8> {
    serde_json::json!({"error": {
        "code": err.status().as_u16(),
        "message": err.message(),
        "status": google_status(err),
    }})
    .to_string()
    .into_bytes()
}

fn google_error_frame(buf: &mut BytesMut, err: &LlmError) -> Bytes {
    buf.extend_from_slice(b"data: ");
    buf.extend_from_slice(&google_error_json(err));
    buf.extend_from_slice(b"\n\n");
    buf.split().freeze()
}

fn ollama_error_frame(buf: &mut BytesMut, err: &LlmError) -> Bytes {
    buf.extend_from_slice(
        &serde_json::json!({"error": err.message()})
            .to_string()
            .into_bytes(),
    );
    buf.extend_from_slice(b"\n");
    buf.split().freeze()
}

/// The Bedrock runtime's exception name for an error's HTTP status.
fn bedrock_error_type(err: &LlmError) -> &'static str {
    match err.status().as_u16() {
        401 => "UnrecognizedClientException",
        402 | 403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 | 504 => "ModelTimeoutException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        400..=499 => "ValidationException",
        _ => "InternalServerException",
    }
}

/// An error response with `body`, the error's status and headers (and `x-amzn-ErrorType`).
fn shaped_error_response(
    err: &LlmError,
    call_id: &Arc<str>,
    body: Vec<u8>,
    amzn_type: Option<&'static str>,
) -> http::Response<ServerBody> {
    let (status, headers, _) = err.to_http_parts();
    let mut r = http::Response::new(ServerBody::full(Bytes::from(body)));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Some(t) = amzn_type {
        r.headers_mut()
            .insert("x-amzn-errortype", http::HeaderValue::from_static(t));
    }
    super::headers::insert_error_meta(r.headers_mut(), err.meta());
    super::headers::insert_call_id(r.headers_mut(), call_id);
    r.extensions_mut().insert(err.kind());
    r
}

fn openai_error_frame(buf: &mut BytesMut, err: &LlmError) -> Bytes {
    encode_error(buf, err)
}

/// Anthropic's error `type` for an error: by its status, as Anthropic's API answers them.
fn anthropic_error_type(err: &LlmError) -> &'static str {
    match err.status().as_u16() {
        400 | 409 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 | 403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        408 | 504 => "timeout_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// `{"type":"error","error":{"type","message"}}`.
fn anthropic_error_json(err: &LlmError) -> Vec<u8> {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": anthropic_error_type(err), "message": err.message()},
    });
    body.to_string().into_bytes()
}

/// The error response in Anthropic's shape, with the error's status and forwarded headers.
fn anthropic_error_response(err: &LlmError, call_id: &Arc<str>) -> http::Response<ServerBody> {
    let (status, headers, _) = err.to_http_parts();
    let mut r = http::Response::new(ServerBody::full(Bytes::from(anthropic_error_json(err))));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    super::headers::insert_error_meta(r.headers_mut(), err.meta());
    super::headers::insert_call_id(r.headers_mut(), call_id);
    r.extensions_mut().insert(err.kind());
    r
}

/// `event: error` with Anthropic's error object, ending a failed stream.
fn anthropic_error_frame(buf: &mut BytesMut, err: &LlmError) -> Bytes {
    buf.extend_from_slice(b"event: error\ndata: ");
    buf.extend_from_slice(&anthropic_error_json(err));
    buf.extend_from_slice(b"\n\n");
    buf.split().freeze()
}

/// Responses' `error` event.
fn responses_error_frame(buf: &mut BytesMut, err: &LlmError) -> Bytes {
    use bytes::BufMut as _;
    let event = serde_json::json!({
        "type": "error",
        "code": err.code().unwrap_or_else(|| err.error_type()),
        "message": err.message(),
        "param": err.param(),
    });
    buf.put_slice(b"event: error\ndata: ");
    // Writing a JSON value into memory cannot fail.
    let _ = serde_json::to_writer((&mut *buf).writer(), &event);
    buf.put_slice(b"\n\n");
    buf.split().freeze()
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn anthropic_errors_have_anthropics_shape_and_type_per_status() {
        let call: Arc<str> = "c".into();
        for (err, status, kind) in [
            (LlmError::bad_request("x"), 400, "invalid_request_error"),
            (
                LlmError::new(ErrorKind::Authentication, "k"),
                401,
                "authentication_error",
            ),
            (
                LlmError::new(ErrorKind::PermissionDenied, "k"),
                403,
                "permission_error",
            ),
            (
                LlmError::new(ErrorKind::NotFound, "k"),
                404,
                "not_found_error",
            ),
            (
                LlmError::bad_request("big").with_status(StatusCode::PAYLOAD_TOO_LARGE),
                413,
                "request_too_large",
            ),
            (
                LlmError::new(ErrorKind::RateLimit, "k"),
                429,
                "rate_limit_error",
            ),
            (LlmError::internal("k"), 500, "api_error"),
            (
                LlmError::internal("k").with_status(StatusCode::from_u16(529).unwrap()),
                529,
                "overloaded_error",
            ),
            (
                LlmError::new(ErrorKind::BudgetExceeded, "k"),
                422,
                "invalid_request_error",
            ),
        ] {
            let r = Dialect::Anthropic.error_response(&err, &call);
            assert_eq!(r.status().as_u16(), status);
            let v: serde_json::Value = serde_json::from_slice(&anthropic_error_json(&err)).unwrap();
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], kind, "{status}");
            assert_eq!(v["error"]["message"], err.message());
        }
        let mut buf = BytesMut::new();
        let frame = (Dialect::Anthropic.error_frame())(&mut buf, &LlmError::internal("boom"));
        assert!(frame.starts_with(b"event: error\ndata: {"));
        assert!(frame.ends_with(b"}\n\n"));
    }

    #[test]
    fn pass_through_dialects_write_their_providers_error_shapes() {
        let call: Arc<str> = "c".into();
        let body = |r: http::Response<ServerBody>| {
            let (parts, body) = r.into_parts();
            let bytes = futures_executor_block(body);
            (
                parts,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            )
        };
        for (err, status, google, aws) in [
            (
                LlmError::new(ErrorKind::Authentication, "no key"),
                401,
                "UNAUTHENTICATED",
                "UnrecognizedClientException",
            ),
            (
                LlmError::new(ErrorKind::NotFound, "none"),
                404,
                "NOT_FOUND",
                "ResourceNotFoundException",
            ),
            (
                LlmError::new(ErrorKind::RateLimit, "slow down"),
                429,
                "RESOURCE_EXHAUSTED",
                "ThrottlingException",
            ),
            (
                LlmError::new(ErrorKind::BudgetExceeded, "over"),
                422,
                "INVALID_ARGUMENT",
                "ValidationException",
            ),
            (
                LlmError::internal("boom"),
                500,
                "INTERNAL",
                "InternalServerException",
            ),
        ] {
            let (p, v) = body(Dialect::Google.error_response(&err, &call));
            assert_eq!(p.status.as_u16(), status);
            assert_eq!(v["error"]["code"], status);
            assert_eq!(v["error"]["status"], google);
            assert_eq!(v["error"]["message"], err.message());
            let (p, v) = body(Dialect::Bedrock.error_response(&err, &call));
            assert_eq!(p.status.as_u16(), status);
            assert_eq!(p.headers["x-amzn-errortype"], aws);
            assert_eq!(v, serde_json::json!({"message": err.message()}));
            let (p, v) = body(Dialect::Ollama.error_response(&err, &call));
            assert_eq!(p.status.as_u16(), status);
            assert_eq!(v, serde_json::json!({"error": err.message()}));
            assert_eq!(p.headers["x-litellm-call-id"], "c");
        }
    }

    fn futures_executor_block(body: ServerBody) -> Bytes {
        use http_body_util::BodyExt as _;
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(body.collect())
            .unwrap()
            .to_bytes()
    }

    #[test]
    fn a_failed_responses_stream_ends_with_an_error_event() {
        let err = LlmError::new(crate::error::ErrorKind::Timeout, "too slow");
        let frame = Dialect::Responses.error_frame()(&mut BytesMut::new(), &err);
        let text = std::str::from_utf8(&frame).unwrap();
        assert!(text.starts_with("event: error\ndata: {"), "{text}");
        assert!(text.ends_with("}\n\n"), "{text}");
        let data: serde_json::Value =
            serde_json::from_str(text["event: error\ndata: ".len()..].trim()).unwrap();
        assert_eq!(data["type"], "error");
        assert_eq!(data["message"], "too slow");
    }
}
