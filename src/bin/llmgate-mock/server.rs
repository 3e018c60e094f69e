//! The mock's accept loop, request handling and streaming body.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{net::TcpListener, time::Sleep};

use super::{
    options::MockOptions,
    responses::{anthropic_error, openai_error, Prepared},
};

/// Largest request body the mock reads.
const MAX_REQUEST_BYTES: usize = 64 << 20;

struct Shared {
    options: MockOptions,
    prepared: Prepared,
    chat_tail: Bytes,
    chat_tail_usage: Bytes,
    anthropic_head: Bytes,
}

/// Serves the mock on `listener` until `shutdown` resolves. See the [crate docs](crate).
///
/// Connections are HTTP/1.1 (keep-alive) or cleartext HTTP/2, with `TCP_NODELAY`; with `tls`,
/// TLS with HTTP/2 or HTTP/1.1 by ALPN. Run it on a multi-threaded runtime so that it is never
/// the bottleneck.
pub(crate) async fn serve(
    listener: TcpListener,
    options: MockOptions,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let prepared = Prepared::new(options.embedding_dims);
    let shared = Arc::new(Shared {
        options,
        chat_tail: concat(&[&prepared.chat_finish, &prepared.done]),
        chat_tail_usage: concat(&[&prepared.chat_finish, &prepared.chat_usage, &prepared.done]),
        anthropic_head: concat(&[&prepared.anthropic_start, &prepared.anthropic_delta]),
        prepared,
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "mock: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let conn = ConnHandle::new(&stream);
        let shared = shared.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req| handle(req, shared.clone(), conn.clone()));
            // Errors here are resets we asked for, or clients going away.
            match tls {
                None => {
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                }
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return; // a failed handshake: nothing to answer
                    };
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                }
            }
        });
    }
}

fn concat(parts: &[&Bytes]) -> Bytes {
    let mut v = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        v.extend_from_slice(p);
    }
    Bytes::from(v)
}

/// A second handle on a connection's socket, so that a request can make its close a reset.
#[derive(Clone)]
struct ConnHandle {
    #[cfg(unix)]
    fd: Option<Arc<std::os::fd::OwnedFd>>,
}

impl ConnHandle {
    fn new(stream: &tokio::net::TcpStream) -> Self {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd as _;
            Self {
                fd: stream.as_fd().try_clone_to_owned().ok().map(Arc::new),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = stream;
            Self {}
        }
    }

    /// Sets `SO_LINGER` 0, so that closing the connection sends `RST`.
    fn arm_reset(&self) {
        #[cfg(unix)]
        if let Some(fd) = &self.fd {
            if let Ok(dup) = fd.try_clone() {
                let std_stream = std::net::TcpStream::from(dup);
                if let Ok(s) = tokio::net::TcpStream::from_std(std_stream) {
                    let _ = s.set_zero_linger();
                }
            }
        }
    }
}

/// The error that makes hyper drop a connection the mock was told to reset.
#[derive(Debug)]
struct Reset;

impl fmt::Display for Reset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection reset by the mock (reset_rate)")
    }
}

impl std::error::Error for Reset {}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Chat,
    Messages,
    /// `POST /v1/responses` (OpenAI's Responses API).
    Responses,
    Embeddings,
    Models,
    Health,
    Unknown,
}

#[derive(serde::Deserialize, Default)]
struct Flags {
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(serde::Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

async fn handle(
    req: http::Request<Incoming>,
    shared: Arc<Shared>,
    conn: ConnHandle,
) -> Result<Response<MockBody>, Reset> {
    let (opts, path) = shared.options.for_request(req.headers(), req.uri().path());
    let path = path.strip_prefix("/v1").unwrap_or(path);
    let route = match (req.method(), path.trim_end_matches('/')) {
        (&Method::POST, "/chat/completions") => Route::Chat,
        (&Method::POST, "/messages") => Route::Messages,
        (&Method::POST, "/responses") => Route::Responses,
        (&Method::POST, "/embeddings") => Route::Embeddings,
        (&Method::GET, "/models") => Route::Models,
        (&Method::GET, "/health" | "") => Route::Health,
        _ => Route::Unknown,
    };
    let flags = if req.method() == Method::POST {
        let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => return Err(Reset),
        };
        match serde_json::from_slice::<Flags>(&body) {
            Ok(f) => f,
            Err(e) => {
                return Ok(json(
                    StatusCode::BAD_REQUEST,
                    Bytes::from(
                        serde_json::json!({"error": {"message": format!("invalid JSON: {e}"),
                            "type": "invalid_request_error", "param": null, "code": null}})
                        .to_string(),
                    ),
                ))
            }
        }
    } else {
        Flags::default()
    };

    if opts.reset_rate > 0.0 && fastrand::f64() < opts.reset_rate {
        conn.arm_reset();
        return Err(Reset);
    }
    if !opts.latency.is_zero() {
        tokio::time::sleep(opts.latency).await;
    }
    if let Some(status) = opts.error_status {
        if opts.error_rate >= 1.0 || fastrand::f64() < opts.error_rate {
            let body = if route == Route::Messages {
                anthropic_error(status)
            } else {
                openai_error(status)
            };
            let mut resp = json(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body,
            );
            if let Some(secs) = opts.retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return Ok(resp);
        }
    }

    let p = &shared.prepared;
    let stream = flags.stream.unwrap_or(false);
    let usage = flags
        .stream_options
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    Ok(match route {
        Route::Chat if stream => {
            let (head, tail) = if opts.chunks == 0 {
                (
                    None,
                    if usage {
                        &shared.chat_tail_usage
                    } else {
                        &shared.chat_tail
                    },
                )
            } else {
                (
                    Some(p.chat_first.clone()),
                    if usage {
                        &shared.chat_tail_usage
                    } else {
                        &shared.chat_tail
                    },
                )
            };
            sse(StreamBody::new(
                head,
                p.chat_content.clone(),
                opts.chunks.saturating_sub(1),
                tail.clone(),
                opts.chunk_delay,
            )
            .stamped(opts.stamp))
        }
        Route::Messages if stream => {
            let head = if opts.chunks == 0 {
                p.anthropic_start.clone()
            } else {
                shared.anthropic_head.clone()
            };
            sse(StreamBody::new(
                Some(head),
                p.anthropic_delta.clone(),
                opts.chunks.saturating_sub(1),
                p.anthropic_end.clone(),
                opts.chunk_delay,
            )
            .stamped(opts.stamp))
        }
        // One text delta: `chunks` and `chunk_delay_ms` shape the chat and Messages streams only.
        Route::Responses if stream => sse(StreamBody::new(
            Some(p.responses_start.clone()),
            p.responses_delta.clone(),
            1,
            p.responses_end.clone(),
            opts.chunk_delay,
        )),
        Route::Responses => json(StatusCode::OK, p.responses.clone()),
        Route::Chat => json(StatusCode::OK, p.chat.clone()),
        Route::Messages => json(StatusCode::OK, p.anthropic.clone()),
        Route::Embeddings => json(StatusCode::OK, p.embeddings.clone()),
        Route::Models => json(StatusCode::OK, p.models.clone()),
        Route::Health => json(StatusCode::OK, p.health.clone()),
        Route::Unknown => json(StatusCode::NOT_FOUND, openai_error(404)),
    })
}

fn json(status: StatusCode, body: Bytes) -> Response<MockBody> {
    let mut r = Response::new(MockBody::Full(Some(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("x-request-id", HeaderValue::from_static("req_llmgate_mock"));
    r
}

fn sse(body: StreamBody) -> Response<MockBody> {
    let mut r = Response::new(MockBody::Stream(Box::new(body)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-request-id", HeaderValue::from_static("req_llmgate_mock"));
    r
}

/// The mock's response body: prepared bytes, or SSE frames paced by a timer.
enum MockBody {
    Full(Option<Bytes>),
    Stream(Box<StreamBody>),
}

/// `head` at once, then `middle` `remaining` times with `delay` before each, then `tail`.
struct StreamBody {
    head: Option<Bytes>,
    middle: Bytes,
    remaining: usize,
    tail: Option<Bytes>,
    delay: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// Insert `"mock_sent_ns"` into each middle frame as it is sent.
    stamp: bool,
}

impl StreamBody {
    fn new(
        head: Option<Bytes>,
        middle: Bytes,
        remaining: usize,
        tail: Bytes,
        delay: Duration,
    ) -> Self {
        Self {
            head,
            middle,
            remaining,
            tail: Some(tail),
            delay,
            timer: None,
            stamp: false,
        }
    }

    fn stamped(mut self, stamp: bool) -> Self {
        self.stamp = stamp;
        self
    }

    /// Starts the wait before the next middle frame.
    fn arm(&mut self) {
        if self.remaining == 0 || self.delay.is_zero() {
            return;
        }
        let at = tokio::time::Instant::now() + self.delay;
        match &mut self.timer {
            Some(t) => t.as_mut().reset(at),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(head) = self.head.take() {
            self.arm();
            return Poll::Ready(Some(head));
        }
        if self.remaining > 0 {
            if let Some(t) = &mut self.timer {
                if t.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            self.remaining -= 1;
            self.arm();
            return Poll::Ready(Some(if self.stamp {
                stamp(&self.middle, SystemTime::now())
            } else {
                self.middle.clone()
            }));
        }
        Poll::Ready(self.tail.take())
    }
}

/// `frame` (one SSE event) with `"mock_sent_ns":<now>,` inserted as the first member of its
/// `data:` object; a frame without one is returned as it is.
fn stamp(frame: &Bytes, now: SystemTime) -> Bytes {
    const DATA: &[u8] = b"data: {";
    let Some(at) = frame
        .windows(DATA.len())
        .position(|w| w == DATA)
        .map(|i| i + DATA.len())
    else {
        return frame.clone();
    };
    let ns = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut digits = itoa::Buffer::new();
    let ns = digits.format(ns);
    let mut out = Vec::with_capacity(frame.len() + ns.len() + 16);
    out.extend_from_slice(&frame[..at]);
    out.extend_from_slice(b"\"mock_sent_ns\":");
    out.extend_from_slice(ns.as_bytes());
    out.push(b',');
    out.extend_from_slice(&frame[at..]);
    Bytes::from(out)
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Self::Stream(s) => s.poll_frame(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(b) => b.is_none(),
            Self::Stream(s) => s.head.is_none() && s.remaining == 0 && s.tail.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Stream(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn stamp_inserts_the_send_time_as_the_first_member() {
        let frame = Bytes::from_static(b"data: {\"id\":\"c\",\"choices\":[]}\n\n");
        let at = UNIX_EPOCH + Duration::from_nanos(1_764_000_000_123_456_789);
        let out = stamp(&frame, at);
        assert_eq!(
            &out[..],
            b"data: {\"mock_sent_ns\":1764000000123456789,\"id\":\"c\",\"choices\":[]}\n\n"
        );
        let json: serde_json::Value = serde_json::from_slice(&out[6..]).unwrap();
        assert_eq!(json["mock_sent_ns"], 1_764_000_000_123_456_789_u64);

        let anthropic = Bytes::from_static(b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
        assert!(stamp(&anthropic, at).starts_with(b"event: ping\ndata: {\"mock_sent_ns\":"));
        let no_object = Bytes::from_static(b"data: [DONE]\n\n");
        assert_eq!(stamp(&no_object, at), no_object);
    }
}
