//! Runs every conformance case whose provider llmgate implements, through the real gateway stack
//! (`OpenAiServer` → router → provider translation) over an in-memory HTTP client that records the
//! upstream request and replays the case's upstream response (streams split at arbitrary byte
//! boundaries). No network. Reports every failing case by id.
//!
//! The corpus directory is `LLMGATE_CONFORMANCE_DIR` when set, else `tests/conformance`.
//!
//! A case with `"client_dialect": "anthropic_messages"` (`tests/conformance/ingress_messages/`)
//! has an Anthropic Messages client: its request goes to `client_request.path` (`/v1/messages`),
//! its expected answer is Anthropic's (`chunks` are the events' data, and each event's `event:`
//! name must be its data's `type`).

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    convert::Infallible,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use base64::Engine as _;
use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt as _, Full, StreamBody};
use llmgate::{config::Config, gateway::Gateway};
use serde_json::Value;
use tower::ServiceExt as _;

type ReplayBody =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    url: String,
    headers: http::HeaderMap,
    body: Bytes,
}

/// An HTTP client double: records each request, answers with the canned response cut into pieces.
#[derive(Clone)]
struct ReplayClient {
    recorded: Arc<Mutex<Vec<Recorded>>>,
    status: u16,
    headers: Vec<(String, String)>,
    pieces: Vec<Bytes>,
}

impl tower::Service<http::Request<Full<Bytes>>> for ReplayClient {
    type Response = http::Response<ReplayBody>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Full<Bytes>>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            this.recorded.lock().unwrap().push(Recorded {
                method: parts.method.to_string(),
                url: parts.uri.to_string(),
                headers: parts.headers,
                body,
            });
            let frames: Vec<Result<Frame<Bytes>, Infallible>> = this
                .pieces
                .iter()
                .cloned()
                .map(|b| Ok(Frame::data(b)))
                .collect();
            let mut resp = http::Response::new(StreamBody::new(futures_util::stream::iter(frames)));
            *resp.status_mut() = http::StatusCode::from_u16(this.status).unwrap();
            for (k, v) in &this.headers {
                resp.headers_mut().append(
                    http::HeaderName::try_from(k.as_str()).unwrap(),
                    http::HeaderValue::try_from(v.as_str()).unwrap(),
                );
            }
            Ok(resp)
        })
    }
}

fn corpus_dir() -> PathBuf {
    std::env::var_os("LLMGATE_CONFORMANCE_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance"),
        PathBuf::from,
    )
}

fn case_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot read {}: {e}", d.display()))
        {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Cuts `body` into pieces at deterministic pseudo-random offsets (`seed` 0: whole).
fn cut(body: &[u8], seed: u64) -> Vec<Bytes> {
    if seed == 0 || body.len() < 2 {
        return vec![Bytes::copy_from_slice(body)];
    }
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut cuts: Vec<usize> = (0..(body.len() / 7).clamp(1, 64))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            1 + (state as usize) % (body.len() - 1)
        })
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = Vec::new();
    let mut start = 0;
    for c in cuts {
        pieces.push(Bytes::copy_from_slice(&body[start..c]));
        start = c;
    }
    pieces.push(Bytes::copy_from_slice(&body[start..]));
    pieces
}

fn upstream_body(case: &Value) -> Option<Vec<u8>> {
    let up = case.get("upstream_response")?;
    if let Some(s) = up.get("sse").and_then(Value::as_str) {
        return Some(s.as_bytes().to_vec());
    }
    if let Some(b64) = up.get("eventstream_base64").and_then(Value::as_str) {
        return Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("valid base64"),
        );
    }
    match up.get("body") {
        Some(Value::String(s)) => Some(s.as_bytes().to_vec()),
        Some(v) => Some(serde_json::to_vec(v).unwrap()),
        None => Some(Vec::new()),
    }
}

/// Removes a dotted path with `[i]` indexes from a JSON value.
fn remove_path(v: &mut Value, path: &str) {
    let mut segs: Vec<Seg> = Vec::new();
    for part in path.split('.') {
        let (name, rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            segs.push(Seg::Key(name.to_owned()));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            segs.push(Seg::Index(
                idx.trim_end_matches(']').parse().unwrap_or(usize::MAX),
            ));
        }
    }
    fn walk(v: &mut Value, segs: &[Seg]) {
        match segs {
            [] => {}
            [last] => match (v, last) {
                (Value::Object(m), Seg::Key(k)) => {
                    m.remove(k);
                }
                (Value::Array(a), Seg::Index(i)) if *i < a.len() => {
                    a[*i] = Value::Null;
                }
                _ => {}
            },
            [first, rest @ ..] => match (v, first) {
                (Value::Object(m), Seg::Key(k)) => {
                    if let Some(child) = m.get_mut(k) {
                        walk(child, rest);
                    }
                }
                (Value::Array(a), Seg::Index(i)) => {
                    if let Some(child) = a.get_mut(*i) {
                        walk(child, rest);
                    }
                }
                _ => {}
            },
        }
    }
    walk(v, &segs);
}

enum Seg {
    Key(String),
    Index(usize),
}

/// How much the actual side may add to the expected one.
#[derive(Clone, Copy)]
enum Extras<'a> {
    /// OpenAI-format upstreams relay what they got: nothing may be added.
    None,
    /// Translated providers: `null` values, and keys the case's `compare.notes` names as allowed.
    NullOrNamedIn(&'a str),
}

impl Extras<'_> {
    fn allows(self, key: &str, value: &Value) -> bool {
        match self {
            Self::None => false,
            Self::NullOrNamedIn(notes) => value.is_null() || mentions(notes, key),
        }
    }
}

/// Whether `notes` names `key` as a word (not as part of a longer identifier).
fn mentions(notes: &str, key: &str) -> bool {
    notes.match_indices(key).any(|(i, _)| {
        let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let before = notes[..i].chars().next_back().is_none_or(|c| !ident(c));
        let after = notes[i + key.len()..]
            .chars()
            .next()
            .is_none_or(|c| !ident(c));
        before && after
    })
}

/// Structural comparison.
fn diff(expected: &Value, actual: &Value, path: &str, strict: Extras<'_>, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = format!("{path}.{k}");
                match a.get(k) {
                    Some(av) => diff(ev, av, &p, strict, out),
                    None => out.push(format!("{p}: missing (expected {ev})")),
                }
            }
            for (k, av) in a {
                if !e.contains_key(k) && !strict.allows(k, av) {
                    out.push(format!("{path}.{k}: unexpected key (value {av})"));
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!(
                    "{path}: array length {} != expected {}",
                    a.len(),
                    e.len()
                ));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                diff(ev, av, &format!("{path}[{i}]"), strict, out);
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            let same = match (e.as_i64(), a.as_i64(), e.as_u64(), a.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => {
                    (e.as_f64().unwrap_or(f64::NAN) - a.as_f64().unwrap_or(f64::NAN)).abs() <= 1e-9
                }
            };
            if !same {
                out.push(format!("{path}: {a} != expected {e}"));
            }
        }
        (Value::String(e), Value::String(a)) if e != a => {
            match (
                serde_json::from_str::<Value>(e),
                serde_json::from_str::<Value>(a),
            ) {
                (Ok(ej @ (Value::Object(_) | Value::Array(_))), Ok(aj)) => {
                    diff(&ej, &aj, path, strict, out)
                }
                _ => out.push(format!("{path}: {a:?} != expected {e:?}")),
            }
        }
        (e, a) if e != a => out.push(format!("{path}: {a} != expected {e}")),
        _ => {}
    }
}

fn headers_contain(
    expected: Option<&Value>,
    actual: &http::HeaderMap,
    what: &str,
    out: &mut Vec<String>,
) {
    if let Some(Value::Object(h)) = expected {
        for (k, v) in h {
            let want = v.as_str().unwrap_or_default();
            match actual.get(k.as_str()).and_then(|x| x.to_str().ok()) {
                Some(got) if got == want => {}
                Some(got) => out.push(format!("{what} header {k}: {got:?} != expected {want:?}")),
                None => out.push(format!("{what} header {k}: missing (expected {want:?})")),
            }
        }
    }
}

async fn run_case(case: &Value, seed: u64) -> Vec<String> {
    let mut problems = Vec::new();
    let provider = case["provider"].as_str().unwrap_or_default();
    let notes = case["compare"]["notes"].as_str().unwrap_or_default();
    let strict = if matches!(provider, "openai" | "azure" | "openai_compatible") {
        Extras::None
    } else {
        Extras::NullOrNamedIn(notes)
    };
    let ignore: Vec<String> = case["compare"]["ignore"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let (upstream_ignore, client_ignore): (Vec<&str>, Vec<&str>) = {
        let mut u = Vec::new();
        let mut c = Vec::new();
        for p in &ignore {
            match p.strip_prefix("upstream_request.body.") {
                Some(rest) => u.push(rest),
                None => c.push(p.as_str()),
            }
        }
        (u, c)
    };

    let client_req = &case["client_request"];
    let model_name = client_req["body"]["model"].as_str().unwrap_or("model");
    // A case whose credential is fetched (Vertex's OAuth token) gives the token to inject in
    // `auth.bearer_token`: it becomes the deployment's `api_key`, which such providers send as is.
    let mut params = case["deployment"].clone();
    if let Some(token) = case["auth"]["bearer_token"].as_str() {
        params["api_key"] = token.into();
    }
    let config_json = serde_json::json!({
        "model_list": [{"model_name": model_name, "litellm_params": params}],
        // The corpus pins one provider exchange: no retries, no fallbacks (its README says so).
        "router_settings": {"num_retries": 0}
    });
    let config = match Config::from_yaml_str(&config_json.to_string(), "case") {
        Ok(l) => l.config,
        Err(e) => return vec![format!("config: {e}")],
    };
    let up = case.get("upstream_response");
    let status = up.and_then(|u| u["status"].as_u64()).unwrap_or(200) as u16;
    let headers: Vec<(String, String)> = up
        .and_then(|u| u["headers"].as_object())
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_else(|| vec![("content-type".into(), "application/json".into())]);
    let body = upstream_body(case).unwrap_or_default();
    let client = ReplayClient {
        recorded: Arc::default(),
        status,
        headers,
        pieces: cut(&body, seed),
    };
    let gateway = Gateway::from_config(&config, &client);
    let server = gateway.server();

    let mut req = http::Request::builder()
        .method(client_req["method"].as_str().unwrap_or("POST"))
        .uri(
            client_req["path"]
                .as_str()
                .unwrap_or("/v1/chat/completions"),
        );
    if let Some(h) = client_req["headers"].as_object() {
        for (k, v) in h {
            req = req.header(k.as_str(), v.as_str().unwrap_or_default());
        }
    }
    let req = req
        .body(Full::new(Bytes::from(
            serde_json::to_vec(&client_req["body"]).unwrap(),
        )))
        .unwrap();
    let resp = server.oneshot(req).await.unwrap();
    let (parts, resp_body) = resp.into_parts();
    let resp_bytes = resp_body.collect().await.unwrap().to_bytes();

    // The upstream request.
    if let Some(expected) = case.get("upstream_request") {
        let recorded = client.recorded.lock().unwrap().clone();
        match recorded.as_slice() {
            [] => problems.push("no upstream request was made".to_owned()),
            [r, ..] => {
                if let Some(m) = expected["method"].as_str() {
                    if m != r.method {
                        problems.push(format!("upstream method {} != expected {m}", r.method));
                    }
                }
                if let Some(u) = expected["url"].as_str() {
                    if u != r.url {
                        problems.push(format!("upstream url {} != expected {u}", r.url));
                    }
                }
                // Signing cases compare their clock-dependent headers in `signing` (end of file).
                let expected_headers = signing::upstream_headers(case, r, &mut problems);
                headers_contain(
                    expected_headers.as_ref(),
                    &r.headers,
                    "upstream",
                    &mut problems,
                );
                if let Some(eb) = expected.get("body") {
                    match serde_json::from_slice::<Value>(&r.body) {
                        Ok(mut ab) => {
                            let mut eb = eb.clone();
                            for p in &upstream_ignore {
                                remove_path(&mut eb, p);
                                remove_path(&mut ab, p);
                            }
                            diff(&eb, &ab, "upstream_request.body", strict, &mut problems);
                        }
                        Err(e) => problems.push(format!("upstream body is not JSON: {e}")),
                    }
                }
            }
        }
    }

    // The client response.
    let Some(expected) = case.get("client_response") else {
        return problems;
    };
    if up.is_none() {
        return problems;
    }
    if let Some(s) = expected["status"].as_u64() {
        if u64::from(parts.status.as_u16()) != s {
            problems.push(format!(
                "client status {} != expected {s} (body: {})",
                parts.status.as_u16(),
                String::from_utf8_lossy(&resp_bytes)
            ));
        }
    }
    headers_contain(
        expected.get("headers"),
        &parts.headers,
        "client",
        &mut problems,
    );
    let strip = |v: &mut Value| {
        for p in &client_ignore {
            remove_path(v, p);
        }
    };
    if let Some(chunks) = expected.get("chunks").and_then(Value::as_array) {
        let text = String::from_utf8_lossy(&resp_bytes);
        let mut got = Vec::new();
        let mut done = false;
        let responses = case["client_dialect"] == "openai_responses";
        for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
            // A Responses event's `event:` name is its data's `type`.
            let name = event.lines().find_map(|l| l.strip_prefix("event: "));
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect::<Vec<_>>()
                .join("\n");
            if data == "[DONE]" {
                done = true;
                continue;
            }
            if done {
                problems.push("data after [DONE]".to_owned());
            }
            // An Anthropic-dialect client reads each event's name: it must be its data's type.
            if case["client_dialect"] == "anthropic_messages" {
                let name = event
                    .lines()
                    .find_map(|l| l.strip_prefix("event:"))
                    .map(str::trim);
                let ty = serde_json::from_str::<Value>(&data)
                    .ok()
                    .and_then(|v| v["type"].as_str().map(str::to_owned));
                if name.is_none() || name != ty.as_deref() {
                    problems.push(format!("event name {name:?} != its data's type {ty:?}"));
                }
            }
            match serde_json::from_str::<Value>(&data) {
                Ok(v) => {
                    if responses && name != v["type"].as_str() {
                        problems.push(format!("event name {name:?} is not its type: {data}"));
                    }
                    got.push(v);
                }
                Err(e) => problems.push(format!("client SSE event is not JSON ({e}): {data:?}")),
            }
        }
        if expected["done"].as_bool().unwrap_or(false) && !done {
            problems.push("stream did not end with data: [DONE]".to_owned());
        }
        if got.len() != chunks.len() {
            problems.push(format!(
                "{} chunks != expected {}: got {}",
                got.len(),
                chunks.len(),
                Value::Array(got.clone())
            ));
        }
        for (i, (e, a)) in chunks.iter().zip(got.iter_mut()).enumerate() {
            let mut e = e.clone();
            strip(&mut e);
            strip(a);
            diff(&e, a, &format!("chunks[{i}]"), strict, &mut problems);
        }
    } else if let Some(eb) = expected.get("body") {
        match serde_json::from_slice::<Value>(&resp_bytes) {
            Ok(mut ab) => {
                let mut eb = eb.clone();
                strip(&mut eb);
                strip(&mut ab);
                diff(&eb, &ab, "client_response.body", strict, &mut problems);
            }
            Err(e) => problems.push(format!(
                "client body is not JSON ({e}): {}",
                String::from_utf8_lossy(&resp_bytes)
            )),
        }
    }
    problems
}

#[tokio::test]
async fn conformance_corpus() {
    let dir = corpus_dir();
    let files = case_files(&dir);
    assert!(
        !files.is_empty(),
        "no conformance cases under {}",
        dir.display()
    );
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut skipped: std::collections::BTreeMap<String, usize> = Default::default();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let case: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let id = case["id"].as_str().unwrap_or("?").to_owned();
        let model = case["deployment"]["model"].as_str().unwrap_or_default();
        let prefix = llmgate::provider::split_provider(model).0;
        if llmgate::provider::lookup(prefix).is_none() {
            *skipped.entry(prefix.to_owned()).or_default() += 1;
            continue;
        }
        ran += 1;
        let streams = case["upstream_response"].get("sse").is_some()
            || case["upstream_response"]
                .get("eventstream_base64")
                .is_some();
        let seeds: &[u64] = if streams { &[0, 1, 2, 3] } else { &[0] };
        for &seed in seeds {
            let problems = run_case(&case, seed).await;
            if !problems.is_empty() {
                failures.push(format!(
                    "{id} (split seed {seed}):\n    {}",
                    problems.join("\n    ")
                ));
                break;
            }
        }
    }
    println!(
        "conformance: {ran} cases run, {} passed, {} failed; not yet implemented (skipped by provider prefix): {skipped:?}",
        ran - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} conformance case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every openai/ case must run: the openai provider is implemented.
    assert!(
        ran >= 15,
        "expected at least the 15 openai/ cases to run, ran {ran}"
    );
}

// ------------------------------------------------------------------------------------------------
// SigV4 signing cases (bedrock/sigv4_*): the only place this test knows about request signing.
//
// Why: a gateway must sign with the current time (AWS rejects signatures more than 15 minutes
// off), but these cases pin `authorization` and `x-amz-date` for a fixed time (`signing.amz_date`)
// and fixed body bytes (`signing.body`), which the gateway's own serialisation need not reproduce.
// As the cases' notes suggest, a case with a `signing` section is checked in three parts:
// 1. unit level: `llmgate::provider::bedrock::sign` signs exactly `signing.body` for `signing.url`
//    at `signing.amz_date`, and must yield `signing.expected_headers` (botocore's values);
// 2. end to end: the request the gateway actually sent is re-signed (its URL and body bytes, at its
//    own `x-amz-date`) and must carry that same `authorization`: encode signed what it sent;
// 3. the ordinary header comparison then skips only `authorization` and `x-amz-date`; every other
//    listed header (`x-amz-security-token`, `content-type`) is compared as usual, and the body
//    structurally.
// ------------------------------------------------------------------------------------------------
mod signing {
    use bytes::Bytes;
    use llmgate::provider::bedrock::{sign, AwsCredentials, SIGNING_NAME};
    use serde_json::Value;

    use super::{support::aws::parse_amz_date, Recorded};

    const CLOCK_HEADERS: [&str; 2] = ["authorization", "x-amz-date"];

    /// The upstream headers the ordinary comparison checks: as listed, except the clock-dependent
    /// ones of a signing case, which are checked here instead.
    pub(super) fn upstream_headers(
        case: &Value,
        recorded: &Recorded,
        problems: &mut Vec<String>,
    ) -> Option<Value> {
        let listed = case["upstream_request"].get("headers").cloned();
        let Some(signing) = case.get("signing") else {
            return listed;
        };
        check_fixed_inputs(signing, problems);
        check_sent_request(signing, recorded, problems);
        listed.map(|mut h| {
            if let Value::Object(m) = &mut h {
                m.retain(|k, _| !CLOCK_HEADERS.contains(&k.to_ascii_lowercase().as_str()));
            }
            h
        })
    }

    fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
        v[key].as_str().unwrap_or_default()
    }

    fn credentials(signing: &Value) -> AwsCredentials {
        AwsCredentials::new(
            str_of(signing, "access_key_id"),
            str_of(signing, "secret_access_key"),
            signing["session_token"].as_str().map(str::to_owned),
        )
    }

    /// Part 1: botocore's headers for the fixed inputs.
    fn check_fixed_inputs(signing: &Value, problems: &mut Vec<String>) {
        if str_of(signing, "service") != SIGNING_NAME {
            problems.push(format!(
                "signing.service {:?} != the provider's signing name {SIGNING_NAME:?}",
                signing["service"]
            ));
        }
        let Some(time) = parse_amz_date(str_of(signing, "amz_date")) else {
            problems.push("signing.amz_date is not YYYYMMDDTHHMMSSZ".to_owned());
            return;
        };
        let mut req = http::Request::builder()
            .method(str_of(signing, "method"))
            .uri(str_of(signing, "url"));
        if let Some(h) = signing["signed_request_headers"].as_object() {
            for (k, v) in h {
                req = req.header(k.as_str(), v.as_str().unwrap_or_default());
            }
        }
        let mut req = match req.body(Bytes::from(str_of(signing, "body").to_owned())) {
            Ok(r) => r,
            Err(e) => return problems.push(format!("signing.method/url/headers: {e}")),
        };
        let region = str_of(signing, "region");
        if let Err(e) = sign(&mut req, &credentials(signing), region, time) {
            problems.push(format!("signing fixed inputs failed: {e}"));
            return;
        }
        super::headers_contain(
            signing.get("expected_headers"),
            req.headers(),
            "signing (fixed inputs)",
            problems,
        );
    }

    /// Part 2: the request actually sent carries the signature of its own URL and body.
    fn check_sent_request(signing: &Value, recorded: &Recorded, problems: &mut Vec<String>) {
        let header = |name: &str| recorded.headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(sent_auth), Some(sent_date)) = (header("authorization"), header("x-amz-date"))
        else {
            problems.push("upstream request is not signed (authorization / x-amz-date)".to_owned());
            return;
        };
        let Some(time) = parse_amz_date(sent_date) else {
            problems.push(format!(
                "upstream x-amz-date {sent_date:?} is not YYYYMMDDTHHMMSSZ"
            ));
            return;
        };
        let mut req = http::Request::builder()
            .method(recorded.method.as_str())
            .uri(recorded.url.as_str());
        for (k, v) in &recorded.headers {
            let added_by_signing =
                CLOCK_HEADERS.contains(&k.as_str()) || k.as_str() == "x-amz-security-token";
            if !added_by_signing {
                req = req.header(k, v);
            }
        }
        let mut req = match req.body(recorded.body.clone()) {
            Ok(r) => r,
            Err(e) => return problems.push(format!("cannot rebuild the sent request: {e}")),
        };
        let region = str_of(signing, "region");
        if let Err(e) = sign(&mut req, &credentials(signing), region, time) {
            problems.push(format!("re-signing the sent request failed: {e}"));
            return;
        }
        let want = req.headers()["authorization"].to_str().unwrap_or_default();
        if want != sent_auth {
            problems.push(format!(
                "upstream authorization {sent_auth:?} is not the signature of the request sent \
                 ({want:?})"
            ));
        }
    }

    #[test]
    fn parses_amz_dates() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(
            parse_amz_date("20150830T123600Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_440_938_160))
        );
        assert_eq!(parse_amz_date("2015-08-30"), None);
    }
}
