//! OpenAI request encoding: the body as sent, `model` rewritten, gateway controls removed.

use bytes::{BufMut, Bytes, BytesMut};
use serde::ser::{SerializeMap, Serializer as _};

use crate::{
    error::LlmError,
    provider::Deployment,
    types::{
        chat::{is_upstream_param, ChatRequest},
        embeddings::EmbeddingsRequest,
        wire::WireObject,
    },
};

/// `base` + `/` + `path`, with exactly one slash between them.
#[must_use]
pub fn join_url(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    let path = path.trim_start_matches('/');
    let mut url = String::with_capacity(base.len() + path.len() + 1);
    url.push_str(base);
    url.push('/');
    url.push_str(path);
    url
}

/// A JSON POST builder for `url` with the deployment's `extra_headers`.
pub fn json_request(url: &str, dep: &Deployment) -> Result<http::request::Builder, LlmError> {
    let uri = parse_uri(url)?;
    const JSON: http::HeaderValue = http::HeaderValue::from_static("application/json");
    let mut builder = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, JSON)
        .header(http::header::ACCEPT, JSON);
    if let Some(serde_json::Value::Object(extra)) = dep.param("extra_headers") {
        for (name, value) in extra {
            if let Some(v) = value.as_str() {
                builder = builder.header(name.as_str(), v);
            }
        }
    }
    Ok(builder)
}

/// How many parsed upstream URLs each thread remembers.
const URI_MEMO: usize = 64;

thread_local! {
    /// Upstream URLs parsed on this thread: a deployment calls the same few URLs on every request,
    /// and parsing one costs more than the rest of the request head. Per thread, so no lock.
    static URIS: std::cell::RefCell<Vec<(Box<str>, http::Uri)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `url` parsed, from this thread's memo when it was parsed before.
fn parse_uri(url: &str) -> Result<http::Uri, LlmError> {
    let hit = URIS.with_borrow(|memo| {
        memo.iter()
            .find(|(u, _)| u.len() == url.len() && &**u == url)
            .map(|(_, uri)| uri.clone())
    });
    if let Some(uri) = hit {
        return Ok(uri);
    }
    let uri: http::Uri = url.parse().map_err(|e| {
        LlmError::bad_request(format!("the deployment's api_base is not a valid URL: {e}"))
    })?;
    URIS.with_borrow_mut(|memo| {
        if memo.len() >= URI_MEMO {
            memo.clear();
        }
        memo.push((url.into(), uri.clone()));
    });
    Ok(uri)
}

/// Serializes `obj` with `model` set to `model` and keys failing `keep` left out.
fn body_with_model<T: WireObject>(
    obj: &T,
    model: &str,
    size_hint: usize,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Bytes, LlmError> {
    let mut w = BytesMut::with_capacity(size_hint).writer();
    let mut ser = serde_json::Serializer::new(&mut w);
    let res = (|| {
        let mut map = ser.serialize_map(None)?;
        map.serialize_entry("model", model)?;
        obj.serialize_fields(&mut map, &|k| k != "model" && keep(k))?;
        map.end()
    })();
    res.map_err(|e| LlmError::internal(format!("cannot encode the upstream request: {e}")))?;
    Ok(w.into_inner().freeze())
}

/// The upstream chat body: the client's body with `model` rewritten and gateway controls removed.
pub fn chat_body(chat: &ChatRequest, model: &str) -> Result<Bytes, LlmError> {
    body_with_model(
        chat,
        model,
        512 + chat.messages.len() * 128,
        &is_upstream_param,
    )
}

/// The upstream embeddings body.
pub fn embeddings_body(req: &EmbeddingsRequest, model: &str) -> Result<Bytes, LlmError> {
    body_with_model(req, model, 256, &is_upstream_param)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_once_per_thread_and_refuses_bad_ones() {
        let a = parse_uri("http://h:1/v1/chat/completions").unwrap();
        let b = parse_uri("http://h:1/v1/chat/completions").unwrap();
        assert_eq!(a, b);
        assert_eq!(b.path(), "/v1/chat/completions");
        assert!(parse_uri("http://h:1/v1/x y").is_err());
        for i in 0..(URI_MEMO + 3) {
            let u = format!("http://h{i}/p");
            assert_eq!(parse_uri(&u).unwrap().host(), Some(&*format!("h{i}")));
        }
        assert!(URIS.with_borrow(Vec::len) <= URI_MEMO);
    }

    #[test]
    fn joins_urls() {
        assert_eq!(
            join_url("http://h/v1/", "/chat/completions"),
            "http://h/v1/chat/completions"
        );
        assert_eq!(join_url("http://h", "embeddings"), "http://h/embeddings");
    }

    #[test]
    fn rewrites_model_and_strips_gateway_fields() {
        let raw = br#"{"model":"grp","messages":[{"role":"user","content":"hi","x_m":{"k":1.50}}],"metadata":{"tags":["a"]},"mock_response":"x","x_top":[1,2.50]}"#;
        let req: ChatRequest = serde_json::from_slice(raw).unwrap();
        let body = chat_body(&req, "gpt-4o").unwrap();
        let s = std::str::from_utf8(&body).unwrap();
        assert!(s.starts_with(r#"{"model":"gpt-4o","#), "{s}");
        assert!(s.contains(r#""x_m":{"k":1.50}"#), "{s}");
        assert!(s.contains(r#""x_top":[1,2.50]"#), "{s}");
        assert!(
            !s.contains("metadata") && !s.contains("mock_response"),
            "{s}"
        );
    }
}
