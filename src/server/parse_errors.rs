//! [`JsonParseErrors`]: the connection wrapper that gives hyper's own error answers the OpenAI
//! error JSON.
//!
//! When hyper cannot parse an HTTP/1 request head (a malformed request line or header, a URI over
//! its 64 KiB limit, a head over its buffer or header-count limit) it answers by itself, before any
//! service runs: `400`, `414` or `431` with `content-length: 0` and no body. No hyper setting turns
//! that into a body, so this wrapper, between hyper and the socket, recognises that exact answer
//! (a bare head with one of those statuses and `content-length: 0`, which no response of the
//! gateway's own ever is: every error the gateway writes has a JSON body) and writes the same
//! status with the OpenAI error JSON instead, then lets hyper close the connection as it meant to.
//! Everything else passes through untouched: the check reads the first bytes of a write, and the
//! wrapper adds nothing else to the connection.

use std::{
    io,
    pin::Pin,
    task::{ready, Context, Poll},
};

use bytes::{Buf, Bytes, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{ErrorKind, LlmError};

/// An IO (a `TcpStream`) whose hyper-made `400`/`414`/`431` answers carry the OpenAI error JSON.
#[derive(Debug)]
pub struct JsonParseErrors<I> {
    inner: I,
    /// The replacement answer not yet written.
    pending: Bytes,
}

impl<I> JsonParseErrors<I> {
    /// Wraps `inner`.
    pub fn new(inner: I) -> Self {
        Self {
            inner,
            pending: Bytes::new(),
        }
    }
}

/// The status of a bodiless head hyper wrote for a request it could not parse, if `buf` is one.
fn parse_error_status(buf: &[u8]) -> Option<StatusCode> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let status = match rest.get(..4)? {
        b"400 " => StatusCode::BAD_REQUEST,
        b"414 " => StatusCode::URI_TOO_LONG,
        b"431 " => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    // The whole write is the head: it ends the head, and contains no other blank line.
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    if end + 4 != buf.len() {
        return None;
    }
    // `content-length: 0` exactly (not `05`); `head` keeps the last header line's CRLF.
    let head = &buf[..end + 2];
    head.windows(21)
        .any(|w| w.eq_ignore_ascii_case(b"\r\ncontent-length: 0\r\n"))
        .then_some(status)
}

/// The answer written instead: the same status, the OpenAI error JSON, and `connection: close`
/// (hyper closes the connection after a parse error).
fn json_answer(status: StatusCode) -> Bytes {
    let message = match status {
        StatusCode::URI_TOO_LONG => "Request URI is too long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            "Request headers are too large (too many, or too long)"
        }
        _ => "Malformed HTTP request: the request line or a header could not be parsed",
    };
    let body = LlmError::new(ErrorKind::BadRequest, message)
        .with_status(status)
        .with_code(status.as_str())
        .to_json();
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    let mut out = BytesMut::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&body);
    out.freeze()
}

impl<I: AsyncWrite + Unpin> JsonParseErrors<I> {
    /// Writes what is pending; `Ready(Ok)` once nothing is.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.advance(n);
        }
        Poll::Ready(Ok(()))
    }

    /// Replaces a parse-error head: takes all of `len` bytes, writes the JSON answer instead
    /// (as much of it as the socket takes now, the rest on the next write, flush or shutdown).
    fn replace(
        &mut self,
        cx: &mut Context<'_>,
        status: StatusCode,
        len: usize,
    ) -> io::Result<usize> {
        self.pending = json_answer(status);
        match self.poll_pending(cx) {
            Poll::Ready(Err(e)) => Err(e),
            Poll::Ready(Ok(())) | Poll::Pending => Ok(len),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for JsonParseErrors<I> {
    #[inline]
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(status) = parse_error_status(buf) {
            return Poll::Ready(self.replace(cx, status, buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        // hyper writes a parse-error head alone; a head with a body after it is the gateway's.
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(first), None) = (nonempty.next(), nonempty.next()) {
            if let Some(status) = parse_error_status(first) {
                return Poll::Ready(self.replace(cx, status, first.len()));
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bodiless_parse_error_heads_are_recognised() {
        let date = "date: Mon, 07 Dec 2026 13:00:00 GMT\r\n";
        for (head, want) in [
            (
                format!("HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n{date}\r\n"),
                Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
            ),
            (
                format!("HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n{date}\r\n"),
                Some(StatusCode::URI_TOO_LONG),
            ),
            (
                format!("HTTP/1.1 400 Bad Request\r\n{date}content-length: 0\r\n\r\n"),
                Some(StatusCode::BAD_REQUEST),
            ),
            // The gateway's own answers: a body, or a length that is not 0.
            (
                format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 05\r\n{date}\r\n"),
                None,
            ),
            (
                format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n{date}\r\n{{}}"),
                None,
            ),
            (
                format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n{date}\r\nX"),
                None,
            ),
            (
                format!("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n{date}\r\n"),
                None,
            ),
            (
                format!("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n{date}\r\n"),
                None,
            ),
            (String::from("HTTP/1.1 43"), None),
            (String::new(), None),
        ] {
            assert_eq!(parse_error_status(head.as_bytes()), want, "{head:?}");
        }
    }

    #[test]
    fn the_replacement_is_the_openai_error_json() {
        let out = json_answer(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let text = std::str::from_utf8(&out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "431");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("headers"));
        assert!(v["error"].get("param").is_some());
    }
}
