//! The provider pass-through operation: `/{family}/{path}` forwarded to a provider's own API
//! ([`PassThroughRequest`]), and the slot its upstream's status and headers come back in
//! ([`RelayHead`]).
//!
//! A pass-through request is not read by any layer beyond the operation-neutral facts (its
//! model group, an estimate of its input tokens, whether it looks like a stream): the provider
//! level builds the upstream request from the client's method, path, query, headers and bytes, and
//! relays the answer as it comes (see `provider::passthrough`).

use std::{
    fmt,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, OnceLock,
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt as _};

use crate::{error::BoxError, upstream::RequestBody};

/// A provider family reachable through a pass-through route, by its path prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// `/anthropic/{path}`: Anthropic's API.
    Anthropic,
    /// `/openai/{path}`: OpenAI's API.
    OpenAi,
    /// `/gemini/{path}`: Google AI Studio.
    Gemini,
    /// `/vertex_ai/{path}`: Vertex AI.
    VertexAi,
    /// `/bedrock/{path}`: the Bedrock runtime.
    Bedrock,
    /// `/azure/{path}`: Azure OpenAI.
    Azure,
    /// `/ollama/{path}`: Ollama.
    Ollama,
}

impl Family {
    /// Every family.
    pub const ALL: [Self; 7] = [
        Self::Anthropic,
        Self::OpenAi,
        Self::Gemini,
        Self::VertexAi,
        Self::Bedrock,
        Self::Azure,
        Self::Ollama,
    ];

    /// The route prefix and provider name (`anthropic`, `openai`, `gemini`, `vertex_ai`,
    /// `bedrock`, `azure`, `ollama`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Anthropic => "anthropic",
            Self::OpenAi => "openai",
            Self::Gemini => "gemini",
            Self::VertexAi => "vertex_ai",
            Self::Bedrock => "bedrock",
            Self::Azure => "azure",
            Self::Ollama => "ollama",
        }
    }

    /// The route as the access log names it.
    #[must_use]
    pub const fn route(self) -> &'static str {
        match self {
            Self::Anthropic => "/anthropic/{path}",
            Self::OpenAi => "/openai/{path}",
            Self::Gemini => "/gemini/{path}",
            Self::VertexAi => "/vertex_ai/{path}",
            Self::Bedrock => "/bedrock/{path}",
            Self::Azure => "/azure/{path}",
            Self::Ollama => "/ollama/{path}",
        }
    }

    /// The family whose route prefix `name` is.
    #[must_use]
    pub fn from_prefix(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Whether a deployment of the provider `provider` (its model prefix) can serve this family's
    /// route: the same provider (`ollama_chat` counts as `ollama`).
    #[must_use]
    pub fn serves(self, provider: &str) -> bool {
        provider == self.as_str() || (self == Self::Ollama && provider == "ollama_chat")
    }

    /// Splits a request path into the family and the rest (`/anthropic/v1/messages` →
    /// (`Anthropic`, `v1/messages`)); `None` for any other path, or a bare prefix.
    #[must_use]
    pub fn split_path(path: &str) -> Option<(Self, &str)> {
        let rest = path.strip_prefix('/')?;
        let (prefix, tail) = rest.split_once('/')?;
        let family = Self::from_prefix(prefix)?;
        (!tail.is_empty()).then_some((family, tail))
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pass-through request: what the client sent to `/{family}/{path}`, minus what the gateway
/// consumes (its own key, hop-by-hop headers).
#[derive(Clone)]
#[non_exhaustive]
pub struct PassThroughRequest {
    /// The provider family of the route.
    pub family: Family,
    /// The model group whose deployment's credentials the call uses (see
    /// `passthrough::PassThroughRoutes`).
    pub group: String,
    /// The client's method.
    pub method: Method,
    /// The path after the family prefix, without its leading `/` (`v1/messages`), as sent.
    pub path: String,
    /// The query string as sent, without the gateway's own `key` parameter; `None` when empty.
    pub query: Option<String>,
    /// The client's headers to send on (see [`forwarded_headers`]).
    pub headers: HeaderMap,
    /// The client's body, as sent; for a body too large to buffer ([`Self::upload`] is set),
    /// the part read before the call was made.
    pub body: Bytes,
    /// The rest of a body too large to buffer, streamed to the provider as the client sends it
    /// (`None`: [`Self::body`] is the whole body).
    pub upload: Option<Upload>,
}

impl fmt::Debug for PassThroughRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassThroughRequest")
            .field("family", &self.family)
            .field("group", &self.group)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("len", &self.body.len())
            .field("streamed", &self.upload.is_some())
            .finish_non_exhaustive()
    }
}

impl PassThroughRequest {
    /// A request of `family` to `path` (after the prefix) with `query`, for the model group
    /// `group`.
    #[must_use]
    pub fn new(family: Family, group: impl Into<String>, method: Method, path: &str) -> Self {
        Self {
            family,
            group: group.into(),
            method,
            path: path.trim_start_matches('/').to_owned(),
            query: None,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            upload: None,
        }
    }

    /// The body's length: the bytes held, or the length the client declared for a streamed one
    /// (the bytes held when it declared none).
    #[must_use]
    pub fn body_len(&self) -> u64 {
        match &self.upload {
            None => self.body.len() as u64,
            Some(u) => u.declared_len().unwrap_or(self.body.len() as u64),
        }
    }

    /// Whether the answer is likely a stream: the body asks for one (`"stream": true`), or the
    /// path names a streaming method (Gemini's `streamGenerateContent`, Bedrock's
    /// `converse-stream` / `invoke-with-response-stream`, a query `alt=sse`). Only the timeout
    /// layer reads it (a stream's limits); the answer is relayed as it comes either way.
    #[must_use]
    pub fn looks_streamed(&self) -> bool {
        let path = self.path.to_ascii_lowercase();
        if path.contains("stream") || self.query.as_deref().is_some_and(|q| q.contains("alt=sse")) {
            return true;
        }
        if self.upload.is_some() {
            // Only the body's start is held: a textual look, since it does not parse.
            return mentions_stream_true(&self.body);
        }
        body_asks_stream(&self.body)
    }

    /// An estimate of the input tokens: a JSON body's bytes / 4; nothing for any other body (a
    /// file upload is not a prompt).
    #[must_use]
    pub fn estimate_input_tokens(&self) -> u64 {
        let json = self
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("json"));
        if json {
            super::usage::estimate_tokens(usize::try_from(self.body_len()).unwrap_or(usize::MAX))
        } else {
            0
        }
    }

    /// The upstream request: `method {base}/{path}?{query}` with the client's forwarded headers
    /// and body. The family's encoder then adds its credentials.
    ///
    /// # Errors
    ///
    /// 400 when the URL made is not a valid URI.
    pub fn to_upstream(
        &self,
        base: &str,
        query: Option<&str>,
    ) -> Result<http::Request<Bytes>, crate::error::LlmError> {
        let mut base = base.trim_end_matches('/');
        // A base that ends with the path's first segment (`…/v1` and `v1/models`) is not doubled.
        let first = self.path.split('/').next().unwrap_or_default();
        if !first.is_empty() {
            if let Some(stripped) = base.strip_suffix(first) {
                if stripped.ends_with('/') && !stripped.ends_with("//") {
                    base = stripped.trim_end_matches('/');
                }
            }
        }
        let mut url = String::with_capacity(base.len() + self.path.len() + 2);
        url.push_str(base);
        url.push('/');
        url.push_str(&self.path);
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(q);
        }
        let uri: http::Uri = url.parse().map_err(|e| {
            crate::error::LlmError::bad_request(format!("the pass-through URL is not valid: {e}"))
        })?;
        let mut req = http::Request::new(self.body.clone());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = self.headers.clone();
        Ok(req)
    }
}

/// Whether a JSON body says `"stream": true` at its top level (a cheap look, no full parse for a
/// body that does not mention it).
fn body_asks_stream(body: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"stream\"";
    if !body.windows(NEEDLE.len()).any(|w| w == NEEDLE) {
        return false;
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        stream: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Probe>(body)
        .ok()
        .and_then(|p| p.stream)
        .is_some_and(|s| s == serde_json::Value::Bool(true))
}

/// Whether `"stream"`, blanks, `:`, blanks and `true` appear in `body` (the start of a JSON body
/// too large to parse here).
fn mentions_stream_true(body: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"stream\"";
    let mut from = 0;
    while let Some(at) = body[from..].windows(NEEDLE.len()).position(|w| w == NEEDLE) {
        let rest = &body[from + at + NEEDLE.len()..];
        let rest = rest.trim_ascii_start();
        if let Some(rest) = rest.strip_prefix(b":") {
            if rest.trim_ascii_start().starts_with(b"true") {
                return true;
            }
        }
        from += at + NEEDLE.len();
    }
    false
}

/// The rest of a pass-through body too large for the edge to buffer: the client's body after the
/// bytes already read ([`PassThroughRequest::body`]), sent on to the provider as it arrives, never
/// held whole. Cheap to clone; the stream itself is taken once ([`Upload::take_body`]), so a
/// pass-through, which is never retried, sends it exactly once.
///
/// The client's frames are counted as they pass: beyond the limit the stream fails (the upstream
/// request is cut) and [`Upload::exceeded`] says why, for a 413.
#[derive(Clone)]
pub struct Upload(Arc<UploadShared>);

struct UploadShared {
    rest: Mutex<Option<UnsyncBoxBody<Bytes, BoxError>>>,
    declared: Option<u64>,
    limit: u64,
    exceeded: Arc<AtomicBool>,
}

impl Upload {
    /// The rest of a body, `rest`, of which `declared` bytes in all were announced (its
    /// `Content-Length`), that may not exceed `limit` bytes in all.
    pub fn new<B>(rest: B, declared: Option<u64>, limit: u64) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self(Arc::new(UploadShared {
            rest: Mutex::new(Some(rest.map_err(Into::into).boxed_unsync())),
            declared,
            limit,
            exceeded: Arc::new(AtomicBool::new(false)),
        }))
    }

    /// The whole body's length, when the client declared it.
    #[must_use]
    pub fn declared_len(&self) -> Option<u64> {
        self.0.declared
    }

    /// Whether the client sent more than the limit (the stream was cut there).
    #[must_use]
    pub fn exceeded(&self) -> bool {
        self.0.exceeded.load(Ordering::Relaxed)
    }

    /// The whole body, `head` (the bytes read before the call) then the rest as it arrives; `None`
    /// once taken.
    #[must_use]
    pub fn take_body(&self, head: Bytes) -> Option<RequestBody> {
        let rest = match self.0.rest.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }?;
        let seen = head.len() as u64;
        let body = UploadBody {
            head: (!head.is_empty()).then_some(head),
            rest,
            seen,
            limit: self.0.limit,
            exceeded: self.0.exceeded.clone(),
        };
        Some(RequestBody::streamed(body, self.0.declared))
    }
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upload")
            .field("declared", &self.0.declared)
            .field("limit", &self.0.limit)
            .finish_non_exhaustive()
    }
}

/// The body an [`Upload`] is sent as: the bytes read first, then the client's frames, counted.
struct UploadBody {
    head: Option<Bytes>,
    rest: UnsyncBoxBody<Bytes, BoxError>,
    seen: u64,
    limit: u64,
    exceeded: Arc<AtomicBool>,
}

impl Body for UploadBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(head) = this.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        let frame = std::task::ready!(Pin::new(&mut this.rest).poll_frame(cx));
        if let Some(Ok(f)) = &frame {
            if let Some(data) = f.data_ref() {
                this.seen += data.len() as u64;
                if this.seen > this.limit {
                    this.exceeded.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(format!(
                        "the request body is larger than the limit of {} bytes",
                        this.limit
                    )
                    .into())));
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.rest.size_hint();
        let head = self.head.as_ref().map_or(0, |h| h.len() as u64);
        hint.set_lower(hint.lower() + head);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + head);
        }
        hint
    }
}

/// Request headers never sent upstream: the gateway's own key and call headers, the client's
/// credentials (the deployment's are sent instead), hop-by-hop headers, and those the HTTP client
/// sets itself.
const DROPPED_REQUEST_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-litellm-api-key",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "expect",
    "accept-encoding",
];

/// The client's headers a pass-through sends on: all but its credentials (`Authorization`,
/// `x-api-key`, `api-key`, `x-goog-api-key`, `Cookie`, …), hop-by-hop headers, `Host`,
/// `Content-Length`, `Accept-Encoding`, the gateway's own `x-litellm-*` headers, and AWS signing
/// headers (the gateway signs anew).
#[must_use]
pub fn forwarded_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        if DROPPED_REQUEST_HEADERS.contains(&n)
            || n.starts_with("x-litellm-")
            || n.starts_with("x-amz-")
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Response headers not relayed to the client: hop-by-hop headers and those the edge's HTTP
/// server sets for the body it writes.
const DROPPED_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// The upstream's response headers a pass-through relays: all but hop-by-hop ones and
/// `Content-Length` (the edge's HTTP server frames the body it writes).
#[must_use]
pub fn relayed_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !DROPPED_RESPONSE_HEADERS.contains(&name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The client's query without the `key` parameter (Gemini clients send the gateway's key there);
/// the `key` value, when there was one.
#[must_use]
pub fn split_query_key(query: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return (None, None);
    };
    let mut key = None;
    let mut kept = String::with_capacity(query.len());
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("key=") {
            if key.is_none() {
                key = Some(percent_decode(v));
            }
            continue;
        }
        if pair.is_empty() {
            continue;
        }
        if !kept.is_empty() {
            kept.push('&');
        }
        kept.push_str(pair);
    }
    ((!kept.is_empty()).then_some(kept), key)
}

/// Decodes `%XX` escapes and `+` (a query value); invalid escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The upstream's status and headers, as a pass-through relays them.
#[derive(Clone, Debug)]
pub struct RelayedHead {
    /// The upstream's status.
    pub status: StatusCode,
    /// The upstream's headers, hop-by-hop ones left out ([`relayed_headers`]).
    pub headers: HeaderMap,
}

/// Where the provider level leaves a pass-through's upstream status and headers for the edge: a
/// request extension the edge puts in and reads after the call (set once, by the one call a
/// pass-through makes; it is never retried).
#[derive(Clone, Debug, Default)]
pub struct RelayHead(pub Arc<OnceLock<RelayedHead>>);

impl RelayHead {
    /// An empty slot.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves the upstream's head; a second call is ignored.
    pub fn set(&self, head: RelayedHead) {
        let _ = self.0.set(head);
    }

    /// The upstream's head, once set.
    #[must_use]
    pub fn get(&self) -> Option<&RelayedHead> {
        self.0.get()
    }
}

/// `name: value` when both are valid, for tests and encoders.
#[must_use]
pub fn header_pair(name: &'static str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_static(name),
        HeaderValue::from_str(value).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths_by_family() {
        assert_eq!(
            Family::split_path("/anthropic/v1/messages"),
            Some((Family::Anthropic, "v1/messages"))
        );
        assert_eq!(
            Family::split_path("/vertex_ai/v1/projects/p"),
            Some((Family::VertexAi, "v1/projects/p"))
        );
        assert_eq!(Family::split_path("/anthropic/"), None);
        assert_eq!(Family::split_path("/anthropic"), None);
        assert_eq!(Family::split_path("/v1/messages"), None);
        assert_eq!(Family::split_path("/cohere/v1/chat"), None);
        assert!(Family::Ollama.serves("ollama_chat"));
        assert!(!Family::OpenAi.serves("azure"));
    }

    #[test]
    fn query_key_is_taken_out_and_decoded() {
        assert_eq!(
            split_query_key(Some("alt=sse&key=sk%2Dx+1")),
            (Some("alt=sse".to_owned()), Some("sk-x 1".to_owned()))
        );
        assert_eq!(split_query_key(Some("key=a")), (None, Some("a".to_owned())));
        assert_eq!(
            split_query_key(Some("a=1&b=2")),
            (Some("a=1&b=2".to_owned()), None)
        );
        assert_eq!(split_query_key(None), (None, None));
        // A broken escape is kept, never a panic.
        assert_eq!(split_query_key(Some("key=%")).1.as_deref(), Some("%"));
        assert_eq!(split_query_key(Some("key=%4")).1.as_deref(), Some("%4"));
    }

    #[test]
    fn client_credentials_and_hop_headers_are_not_forwarded() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("authorization", "Bearer sk-gw"),
            ("x-api-key", "sk-gw"),
            ("x-goog-api-key", "sk-gw"),
            ("x-litellm-timeout", "3"),
            ("connection", "keep-alive"),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "x"),
            ("content-type", "application/json"),
            ("x-amz-date", "1"),
        ] {
            h.append(n, HeaderValue::from_static(v));
        }
        let f = forwarded_headers(&h);
        let names: Vec<_> = f.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            ["anthropic-version", "anthropic-beta", "content-type"]
        );
    }

    #[test]
    fn stream_is_guessed_from_body_and_path() {
        let mut r = PassThroughRequest::new(Family::Anthropic, "g", Method::POST, "/v1/messages");
        assert!(!r.looks_streamed());
        r.body = Bytes::from_static(br#"{"model":"m","stream":true}"#);
        assert!(r.looks_streamed());
        r.body = Bytes::from_static(br#"{"model":"m","stream":false}"#);
        assert!(!r.looks_streamed());
        r.body = Bytes::from_static(b"not json \"stream\"");
        assert!(!r.looks_streamed());
        let g = PassThroughRequest::new(
            Family::Gemini,
            "g",
            Method::POST,
            "v1beta/models/x:streamGenerateContent",
        );
        assert!(g.looks_streamed());
    }

    #[test]
    fn upstream_url_joins_base_path_and_query() {
        let mut r = PassThroughRequest::new(Family::OpenAi, "g", Method::GET, "v1/models");
        r.headers
            .insert("accept", HeaderValue::from_static("application/json"));
        let up = r.to_upstream("http://h:1/", Some("limit=2")).unwrap();
        assert_eq!(up.uri(), "http://h:1/v1/models?limit=2");
        assert_eq!(up.method(), Method::GET);
        assert_eq!(up.headers()["accept"], "application/json");
        assert_eq!(
            r.to_upstream("https://api.openai.com/v1", None)
                .unwrap()
                .uri(),
            "https://api.openai.com/v1/models"
        );
        let r2 = PassThroughRequest::new(Family::OpenAi, "g", Method::GET, "models");
        assert_eq!(
            r2.to_upstream("https://api.openai.com/v1", None)
                .unwrap()
                .uri(),
            "https://api.openai.com/v1/models"
        );
        // A host named like the segment is not cut.
        let r3 = PassThroughRequest::new(Family::Ollama, "g", Method::GET, "v1/x");
        assert_eq!(
            r3.to_upstream("http://v1", None).unwrap().uri(),
            "http://v1/v1/x"
        );
        r.path = "v1/x y".to_owned();
        assert!(r.to_upstream("http://h:1", None).is_err());
    }

    /// Whatever the client's path, the request goes to the base's host: a path cannot name
    /// another authority.
    #[test]
    fn hostile_paths_stay_on_the_base_host() {
        for tail in [
            "//evil.example/x",
            "@evil.example/x",
            "../../x",
            "%2F%2Fevil.example",
            "x/..%2f..%2fy",
            "http://evil.example/",
            ":80@evil.example/",
            "\\evil.example\\x",
        ] {
            let r = PassThroughRequest::new(Family::Anthropic, "g", Method::GET, tail);
            if let Ok(up) = r.to_upstream("https://api.anthropic.com", Some("a=@evil.example")) {
                assert_eq!(up.uri().host(), Some("api.anthropic.com"), "{tail}");
                assert_eq!(up.uri().scheme_str(), Some("https"), "{tail}");
            }
        }
    }
}
