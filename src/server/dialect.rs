//! [`Dialect`]: the wire dialect a route speaks, which decides how its errors are written.
//!
//! Every error a route answers is written in its dialect, with the error's status: the OpenAI
//! error JSON on the OpenAI routes. A route that speaks another dialect (Anthropic's Messages,
//! say) adds a variant here with its error response and its stream's error frame, and names it
//! in [`Route::dialect`](super::service::Route::dialect); the request's way through the edge is
//! the same for every dialect.

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
    /// OpenAI's Responses API: errors as [`Dialect::OpenAi`]; a stream that fails ends with
    /// Responses' `error` event (`{"type":"error","code","message","param"}`).
    Responses,
}

impl Dialect {
    /// The error response in this dialect, with the error's status and headers.
    pub(crate) fn error_response(
        self,
        err: &LlmError,
        call_id: &Arc<str>,
    ) -> http::Response<ServerBody> {
        match self {
            Self::OpenAi | Self::Responses => error_response(err, call_id),
        }
    }

    /// How an error that ends a stream is written in this dialect.
    pub(crate) fn error_frame(self) -> ErrorFrame {
        match self {
            Self::OpenAi => openai_error_frame,
            Self::Responses => responses_error_frame,
        }
    }
}

fn openai_error_frame(buf: &mut BytesMut, err: &LlmError) -> Bytes {
    encode_error(buf, err)
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
    use super::*;

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
