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
        }
    }

    /// How an error that ends a stream is written in this dialect.
    pub(crate) fn error_frame(self) -> ErrorFrame {
        match self {
            Self::OpenAi => openai_error_frame,
        }
    }
}

fn openai_error_frame(buf: &mut BytesMut, err: &LlmError) -> Bytes {
    encode_error(buf, err)
}
