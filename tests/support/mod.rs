//! Test support: [`FakeUpstream`], a fake upstream LLM provider that is a real hyper
//! server on loopback.
//!
//! Every integration test file pulls this in with `mod support;`. Not every file uses every
//! item, hence the `allow`s below (`unreachable_pub`: the items are `pub` for readability but
//! live in a private module of each test crate).
//!
//! ```ignore
//! let up = support::FakeUpstream::start().await;
//! up.enqueue(support::Reply::json(429, serde_json::json!({"error": {"message": "slow down"}})));
//! // ... point the gateway at up.url() and send a request through it ...
//! assert!(up.wait_for_hits(1, Duration::from_secs(5)).await);
//! assert_eq!(up.requests()[0].json()["model"], "gpt-4o-mini");
//! ```
//!
//! Design notes:
//! * The server speaks HTTP/1.1 and cleartext HTTP/2 (prior knowledge, "h2c") on the same port
//!   via `hyper_util::server::conn::auto`, with `TCP_NODELAY` so separately written body pieces
//!   leave as separate TCP segments.
//! * Request bodies are read completely before a request is recorded and counted as a hit.
//! * Streaming replies are a [`StreamBody`] fed by a producer task through a tokio mpsc channel.
//!   The body is wrapped in a guard that counts a *disconnect* when hyper drops it before it
//!   reached its end (hyper drops the response body when the client closes the connection, or
//!   resets the HTTP/2 stream). The producer task watches the channel and stops as soon as the
//!   body is gone, so [`Reply::sse_then_hang`] never leaks a task past the client's disconnect.
//! * When the last [`FakeUpstream`] handle is dropped the accept loop and all open connections
//!   are shut down.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

// ---------------------------------------------------------------------------------------------
// Recorded requests
// ---------------------------------------------------------------------------------------------

/// One request as the fake upstream received it (body read to the end).
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Request method.
    pub method: Method,
    /// Request target. Over HTTP/1.1 this is usually origin-form (`/v1/chat/completions`);
    /// over HTTP/2 it is absolute (`http://127.0.0.1:PORT/v1/...`). Use [`Recorded::path`].
    pub uri: Uri,
    /// HTTP version the request arrived with (`HTTP_11` or `HTTP_2`).
    pub version: Version,
    /// Request headers as received (over HTTP/2 there is no `host`; see `uri` authority).
    pub headers: HeaderMap,
    /// The complete request body.
    pub body: Bytes,
    /// `body` decoded as UTF-8 (lossily, only if it is not valid UTF-8).
    text: String,
}

impl Recorded {
    /// The body parsed as JSON. Panics with the body text if it is not valid JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "fake upstream: request body of {} {} is not valid JSON ({e}); body was: {:?}",
                self.method,
                self.uri,
                self.body_str()
            )
        })
    }

    /// The body as text: exact for UTF-8 bodies; invalid sequences (if any) show as U+FFFD.
    pub fn body_str(&self) -> &str {
        &self.text
    }

    /// The request path (`/v1/chat/completions`), whatever the URI form.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// A header's value as text; `None` if absent or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum ReplyBody {
    /// Whole body in one frame, with `content-length`.
    Full(Bytes),
    /// Streamed body: each piece is its own frame, with `gap` between pieces. When `hang` is
    /// set the body never ends after the last piece (until the client goes away).
    Pieces {
        pieces: Vec<Bytes>,
        gap: Duration,
        hang: bool,
    },
}

/// What the fake upstream answers to one request. Built with the constructors below and
/// adjusted with the `#[must_use]` builder methods ([`Reply::header`], [`Reply::delay`],
/// [`Reply::gap`]).
#[derive(Clone, Debug)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: ReplyBody,
    delay: Duration,
}

/// Default gap between pieces for [`Reply::split_at`]: long enough that each piece leaves in
/// its own TCP segment (so the client really sees the cut), short enough for many cuts.
pub const SPLIT_GAP: Duration = Duration::from_millis(2);

impl Reply {
    fn new(status: u16, content_type: &str, body: ReplyBody) -> Self {
        let status = StatusCode::from_u16(status)
            .unwrap_or_else(|e| panic!("fake upstream: bad status {status}: {e}"));
        Self {
            status,
            headers: Vec::new(),
            body,
            delay: Duration::ZERO,
        }
        .header("content-type", content_type)
    }

    /// `status` with a JSON body (`content-type: application/json`).
    // By value so callers can pass `json!(...)` directly.
    #[allow(clippy::needless_pass_by_value)]
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        let bytes = Bytes::from(body.to_string());
        Self::new(status, "application/json", ReplyBody::Full(bytes))
    }

    /// `status` with an arbitrary body and content type, sent in one piece with
    /// `content-length`.
    pub fn raw(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        Self::new(status, content_type, ReplyBody::Full(body.into()))
    }

    /// 200 `text/event-stream` whose whole `text` is written at once (no `content-length`,
    /// i.e. chunked over HTTP/1.1, like a real SSE response).
    pub fn sse(text: impl Into<String>) -> Self {
        Self::new(
            200,
            "text/event-stream",
            ReplyBody::Pieces {
                pieces: vec![Bytes::from(text.into())],
                gap: Duration::ZERO,
                hang: false,
            },
        )
    }

    /// Streamed body: each chunk is written (and flushed) separately, with `gap` between
    /// consecutive chunks (no wait before the first one).
    pub fn chunked(status: u16, content_type: &str, chunks: Vec<Bytes>, gap: Duration) -> Self {
        Self::new(
            status,
            content_type,
            ReplyBody::Pieces {
                pieces: chunks,
                gap,
                hang: false,
            },
        )
    }

    /// Streamed body sent in pieces cut at the byte offsets `cuts` (any boundary: mid-line,
    /// mid-UTF-8 sequence, ...). Cuts are sorted and de-duplicated; offsets `0` and `>= len`
    /// are ignored, so no piece is empty. Pieces are [`SPLIT_GAP`] apart (change with
    /// [`Reply::gap`]). See [`random_cuts`].
    pub fn split_at(
        status: u16,
        content_type: &str,
        body: impl Into<Bytes>,
        cuts: &[usize],
    ) -> Self {
        let body: Bytes = body.into();
        let cuts: BTreeSet<usize> = cuts
            .iter()
            .copied()
            .filter(|&c| c > 0 && c < body.len())
            .collect();
        let mut pieces = Vec::with_capacity(cuts.len() + 1);
        let mut start = 0;
        for cut in cuts {
            pieces.push(body.slice(start..cut));
            start = cut;
        }
        if start < body.len() {
            pieces.push(body.slice(start..));
        }
        Self::new(
            status,
            content_type,
            ReplyBody::Pieces {
                pieces,
                gap: SPLIT_GAP,
                hang: false,
            },
        )
    }

    /// 200 `text/event-stream` that sends `first` and then never ends the body. The stream
    /// only stops when the client goes away, which is recorded as a disconnect (see
    /// [`FakeUpstream::wait_for_disconnect`]).
    pub fn sse_then_hang(first: impl Into<Bytes>) -> Self {
        Self::new(
            200,
            "text/event-stream",
            ReplyBody::Pieces {
                pieces: vec![first.into()],
                gap: Duration::ZERO,
                hang: true,
            },
        )
    }

    /// The default reply: 200 with [`chat_completion`]`("Hello from the fake upstream.")`.
    pub fn default_chat() -> Self {
        Self::json(200, chat_completion("Hello from the fake upstream."))
    }

    /// Adds a response header (replaces `content-type` if `name` is `content-type`).
    /// Panics on an invalid name or value.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|e| panic!("fake upstream: bad header name {name:?}: {e}"));
        let value = HeaderValue::from_str(value)
            .unwrap_or_else(|e| panic!("fake upstream: bad header value {value:?}: {e}"));
        if name == http::header::CONTENT_TYPE {
            self.headers.retain(|(n, _)| n != name);
        }
        self.headers.push((name, value));
        self
    }

    /// Waits `d` after the request was received before sending the response headers.
    #[must_use]
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    /// Sets the gap between pieces of a streamed reply (no effect on `json`/`raw`).
    #[must_use]
    pub fn gap(mut self, d: Duration) -> Self {
        if let ReplyBody::Pieces { gap, .. } = &mut self.body {
            *gap = d;
        }
        self
    }
}

/// A minimal, valid OpenAI `chat.completion` object answering `content`
/// (model `fake-model`, usage 5 + 7 = 12 tokens).
pub fn chat_completion(content: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "fake-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    })
}

/// An OpenAI chat-completions SSE stream (as text) that streams `pieces` as content deltas,
/// then a `finish_reason: "stop"` chunk, a usage chunk (`choices: []`, 5 + 7 = 12 tokens) and
/// `data: [DONE]`. Feed it to [`Reply::sse`] or [`Reply::split_at`].
pub fn chat_sse(pieces: &[&str]) -> String {
    fn chunk(choices: &serde_json::Value, usage: &serde_json::Value) -> String {
        let v = serde_json::json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "fake-model",
            "choices": choices,
            "usage": usage,
        });
        format!("data: {v}\n\n")
    }
    let mut out = chunk(
        &serde_json::json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        &serde_json::Value::Null,
    );
    for p in pieces {
        out.push_str(&chunk(
            &serde_json::json!([{"index": 0, "delta": {"content": p}, "finish_reason": null}]),
            &serde_json::Value::Null,
        ));
    }
    out.push_str(&chunk(
        &serde_json::json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        &serde_json::Value::Null,
    ));
    out.push_str(&chunk(
        &serde_json::json!([]),
        &serde_json::json!({"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}),
    ));
    out.push_str("data: [DONE]\n\n");
    out
}

/// Deterministic cut points for [`Reply::split_at`]: up to `n` sorted, unique offsets in
/// `1..len` (fewer only if `len - 1 < n`), from an xorshift64* generator seeded with `seed`.
pub fn random_cuts(len: usize, seed: u64, n: usize) -> Vec<usize> {
    if len < 2 {
        return Vec::new();
    }
    let want = n.min(len - 1);
    // splitmix64 the seed so nearby seeds differ and seed 0 is fine (xorshift state must be != 0).
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let mut state = (z ^ (z >> 31)) | 1;
    let mut cuts = BTreeSet::new();
    while cuts.len() < want {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // `len - 1` fits in u64 on every supported target.
        cuts.insert(1 + (r % (len as u64 - 1)) as usize);
    }
    cuts.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// A fake upstream LLM provider: a real HTTP/1.1 + h2c server on `127.0.0.1:<random port>`.
/// Cheap to clone (all clones share one server); the server stops when the last clone drops.
#[derive(Clone)]
pub struct FakeUpstream {
    shared: Arc<Shared>,
    _guard: Arc<ShutdownGuard>,
}

struct Shared {
    addr: SocketAddr,
    state: Mutex<State>,
    hits: watch::Sender<usize>,
    disconnects: watch::Sender<usize>,
    connections: watch::Sender<usize>,
    shutdown: watch::Receiver<bool>,
}

struct State {
    queue: VecDeque<Reply>,
    default: Reply,
    requests: Vec<Recorded>,
}

/// Stops the server when the last [`FakeUpstream`] handle is dropped.
struct ShutdownGuard(watch::Sender<bool>);

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl fmt::Debug for FakeUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeUpstream")
            .field("addr", &self.shared.addr)
            .field("hits", &self.hits())
            .field("disconnects", &self.disconnects())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the real failure behind a poison error.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FakeUpstream {
    /// Binds `127.0.0.1:0` and starts serving (HTTP/1.1 and h2c, `TCP_NODELAY`).
    /// Must be called inside a tokio runtime; the server runs on spawned tasks.
    pub async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("fake upstream: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake upstream: local_addr");
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            addr,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                default: Reply::default_chat(),
                requests: Vec::new(),
            }),
            hits: watch::Sender::new(0),
            disconnects: watch::Sender::new(0),
            connections: watch::Sender::new(0),
            shutdown: shutdown_rx,
        });
        tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Self {
            shared,
            _guard: Arc::new(ShutdownGuard(shutdown_tx)),
        }
    }

    /// The bound address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Queues `reply` for a future request. Requests take queued replies first-in first-out;
    /// once the queue is empty they get the default reply.
    pub fn enqueue(&self, reply: Reply) {
        self.shared.state().queue.push_back(reply);
    }

    /// Replaces the default reply (initially [`Reply::default_chat`]).
    pub fn set_default(&self, reply: Reply) {
        self.shared.state().default = reply;
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.state().requests.clone()
    }

    /// The last request received, if any.
    pub fn last_request(&self) -> Option<Recorded> {
        self.shared.state().requests.last().cloned()
    }

    /// Number of requests received (each counted once its body was fully read).
    pub fn hits(&self) -> usize {
        *self.shared.hits.borrow()
    }

    /// Waits until at least `n` requests were received; `false` if `timeout` passed first.
    pub async fn wait_for_hits(&self, n: usize, timeout: Duration) -> bool {
        wait_at_least(&self.shared.hits, n, timeout).await
    }

    /// Number of streamed reply bodies dropped before they finished (client went away).
    pub fn disconnects(&self) -> usize {
        *self.shared.disconnects.borrow()
    }

    /// Waits until at least one streamed reply body was dropped before it finished (also
    /// `true` at once if that already happened); `false` if `timeout` passed first.
    pub async fn wait_for_disconnect(&self, timeout: Duration) -> bool {
        self.wait_for_disconnects(1, timeout).await
    }

    /// Like [`FakeUpstream::wait_for_disconnect`], for at least `n` disconnects.
    pub async fn wait_for_disconnects(&self, n: usize, timeout: Duration) -> bool {
        wait_at_least(&self.shared.disconnects, n, timeout).await
    }

    /// Number of TCP connections accepted so far (to check connection reuse / h2 multiplexing).
    pub fn connections(&self) -> usize {
        *self.shared.connections.borrow()
    }

    /// Forgets recorded requests and queued replies and zeroes the counters
    /// (the default reply stays).
    pub fn reset(&self) {
        {
            let mut st = self.shared.state();
            st.queue.clear();
            st.requests.clear();
        }
        self.shared.hits.send_replace(0);
        self.shared.disconnects.send_replace(0);
        self.shared.connections.send_replace(0);
    }
}

async fn wait_at_least(counter: &watch::Sender<usize>, n: usize, timeout: Duration) -> bool {
    let mut rx = counter.subscribe();
    // `wait_for` checks the current value first, so an already-reached count returns at once.
    // It only errors if the sender is gone, which cannot happen while `counter` is borrowed.
    let reached = tokio::time::timeout(timeout, rx.wait_for(|&v| v >= n))
        .await
        .is_ok_and(|r| r.is_ok());
    reached
}

fn bump(counter: &watch::Sender<usize>) {
    counter.send_modify(|v| *v += 1);
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|&stop| stop) => return,
        };
        let Ok((stream, _peer)) = accepted else {
            // e.g. EMFILE: back off briefly instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // Best effort; a failure here only changes segment timing.
        let _ = stream.set_nodelay(true);
        bump(&shared.connections);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut shutdown = shared.shutdown.clone();
            let svc_shared = Arc::clone(&shared);
            let service = hyper::service::service_fn(move |req| {
                let shared = Arc::clone(&svc_shared);
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                // Errors (client reset, EOF mid-response, ...) are expected in these tests.
                _ = conn => {}
                // Dropping the connection drops any in-flight bodies (counted as disconnects).
                _ = shutdown.wait_for(|&stop| stop) => {}
            }
        });
    }
}

async fn handle(shared: Arc<Shared>, req: http::Request<Incoming>) -> Response<FakeBody> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let msg = format!("fake upstream: failed to read request body: {e}");
            return Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .body(FakeBody::full(Bytes::from(msg)))
                .expect("static response parts are valid");
        }
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    let reply = {
        let mut st = shared.state();
        st.requests.push(Recorded {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
            body,
            text,
        });
        st.queue.pop_front().unwrap_or_else(|| st.default.clone())
    };
    bump(&shared.hits);

    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }

    let body = match reply.body {
        ReplyBody::Full(bytes) => FakeBody::full(bytes),
        ReplyBody::Pieces { pieces, gap, hang } => FakeBody::streamed(&shared, pieces, gap, hang),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = reply.status;
    for (name, value) in reply.headers {
        resp.headers_mut().append(name, value);
    }
    resp
}

// ---------------------------------------------------------------------------------------------
// Response body with disconnect detection
// ---------------------------------------------------------------------------------------------

/// Response body: a full body, or a [`StreamBody`] over an mpsc channel fed by a producer
/// task. A streamed body dropped before its end counts as a disconnect.
struct FakeBody {
    inner: UnsyncBoxBody<Bytes, Infallible>,
    /// `Some` for streamed bodies: where to count a disconnect.
    tracker: Option<Arc<Shared>>,
    finished: bool,
}

impl FakeBody {
    fn full(bytes: Bytes) -> Self {
        Self {
            inner: Full::new(bytes).boxed_unsync(),
            tracker: None,
            finished: false,
        }
    }

    fn streamed(shared: &Arc<Shared>, pieces: Vec<Bytes>, gap: Duration, hang: bool) -> Self {
        // Capacity 1: the producer runs at most one piece ahead of what hyper has taken.
        let (tx, mut rx) = mpsc::channel::<Bytes>(1);
        tokio::spawn(async move {
            for (i, piece) in pieces.into_iter().enumerate() {
                if i > 0 && !gap.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(gap) => {}
                        _ = tx.closed() => return, // body dropped: client is gone
                    }
                }
                if tx.send(piece).await.is_err() {
                    return;
                }
            }
            if hang {
                // Keep the body open until hyper drops it (client disconnect or shutdown).
                tx.closed().await;
            }
            // Dropping `tx` ends the body normally.
        });
        let stream = futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
                .map(|piece| piece.map(|b| Ok::<_, Infallible>(Frame::data(b))))
        });
        Self {
            inner: StreamBody::new(stream).boxed_unsync(),
            tracker: Some(Arc::clone(shared)),
            finished: false,
        }
    }
}

impl Body for FakeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for FakeBody {
    fn drop(&mut self) {
        if let Some(shared) = &self.tracker {
            if !self.finished {
                bump(&shared.disconnects);
            }
        }
    }
}

pub mod aws;
pub mod gw;
pub mod process;
