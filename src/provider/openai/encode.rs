//! OpenAI request encoding: the body as sent, `model` rewritten, gateway controls removed.

use bytes::{BufMut, Bytes, BytesMut};
use serde::ser::{SerializeMap, Serializer as _};

use crate::{
    error::LlmError,
    provider::{
        resolve::{reached, Endpoint, ExtraHeaders, Resolved},
        Deployment,
    },
    types::{
        chat::{is_upstream_param, ChatRequest},
        completions::CompletionsRequest,
        embeddings::EmbeddingsRequest,
        moderations::ModerationsRequest,
        responses::ResponsesRequest,
        scan,
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

/// A JSON POST head for `url` with the deployment's `extra_headers`; the caller adds its
/// credentials with `headers_mut().append(..)` and the body with `map`.
///
/// Parses `url` and the `extra_headers` on every call: for a provider of your own. The built-in
/// providers use the endpoints and header values their deployment resolved when it was built
/// (see [`provider::resolve`](crate::provider::resolve)), with the same result.
pub fn json_request(url: &str, dep: &Deployment) -> Result<http::Request<()>, LlmError> {
    let extra = ExtraHeaders::of(dep)?;
    Ok(json_head(&Endpoint::parse(url)?, &extra))
}

/// A JSON POST head for `endpoint` with `extra` headers.
///
/// For a plain `http://` URL the request also carries the endpoint's `Host` header (made when the
/// deployment was resolved), unless `extra_headers` sets one.
///
/// A request rather than an [`http::request::Builder`]: the builder carries a
/// `Result<Parts, Error>` that every `.header(..)` moves, about 500 instructions of `memcpy` per
/// upstream request on the hot path. Headers appended here keep the builder's semantics
/// (`append`, so an `extra_headers` entry never replaces one the provider adds).
pub(crate) fn json_head(endpoint: &Endpoint, extra: &ExtraHeaders) -> http::Request<()> {
    const JSON: http::HeaderValue = http::HeaderValue::from_static("application/json");
    let mut req = http::Request::new(());
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = endpoint.uri().clone();
    let headers = req.headers_mut();
    headers.append(http::header::CONTENT_TYPE, JSON);
    headers.append(http::header::ACCEPT, JSON);
    for (name, value) in &*extra.list {
        headers.append(name.clone(), value.clone());
    }
    if !extra.sets_host {
        if let Some(host) = endpoint.host() {
            headers.append(http::header::HOST, host.clone());
        }
    }
    req
}

/// [`json_head`] for a resolved deployment.
pub(crate) fn resolved_head(
    endpoint: &Endpoint,
    resolved: &Resolved,
) -> Result<http::Request<()>, LlmError> {
    Ok(json_head(endpoint, reached(&resolved.extra_headers)?))
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
///
/// `raw` is the JSON `chat` was parsed from, when the body is still exactly that parse
/// ([`LlmRequest::raw_body`](crate::LlmRequest::raw_body)): the body is then those bytes with the
/// top-level `model` value replaced and the gateway keys cut out, everything else (unknown fields,
/// key order, spacing, number spelling) as the client sent it. Without `raw`, or when the bytes are
/// not as expected, `chat` is serialized.
pub fn chat_body(chat: &ChatRequest, raw: Option<&[u8]>, model: &str) -> Result<Bytes, LlmError> {
    relayed_body(chat, raw, model, 512 + chat.messages.len() * 128)
}

/// The client's bytes `raw` with `model` spliced in and the gateway keys cut out; `req`
/// serialized (with `model`, about `size_hint` bytes) without them or when they are not as
/// expected. Every OpenAI-format body below is this.
pub(crate) fn relayed_body<T: WireObject>(
    req: &T,
    raw: Option<&[u8]>,
    model: &str,
    size_hint: usize,
) -> Result<Bytes, LlmError> {
    if let Some(body) = raw.and_then(|raw| splice_model(raw, model, &is_upstream_key)) {
        return Ok(body);
    }
    body_with_model(req, model, size_hint, &is_upstream_param)
}

/// The upstream embeddings body (`raw` as for [`chat_body`]).
pub fn embeddings_body(
    req: &EmbeddingsRequest,
    raw: Option<&[u8]>,
    model: &str,
) -> Result<Bytes, LlmError> {
    relayed_body(req, raw, model, 256)
}

/// The upstream text-completion body (`raw` as for [`chat_body`]).
pub fn completions_body(
    req: &CompletionsRequest,
    raw: Option<&[u8]>,
    model: &str,
) -> Result<Bytes, LlmError> {
    relayed_body(req, raw, model, 256)
}

/// The upstream moderation body (`raw` as for [`chat_body`]; a body that named no model is
/// written with `model`).
pub fn moderations_body(
    req: &ModerationsRequest,
    raw: Option<&[u8]>,
    model: &str,
) -> Result<Bytes, LlmError> {
    relayed_body(req, raw, model, 256)
}

/// The upstream Responses body (`raw` as for [`chat_body`]): the client's bytes with `model`
/// replaced and gateway controls removed.
pub fn responses_body(
    req: &ResponsesRequest,
    raw: Option<&[u8]>,
    model: &str,
) -> Result<Bytes, LlmError> {
    relayed_body(req, raw, model, 1024)
}

/// `raw` (a JSON object) with the top-level `model` member's value replaced by `model`, in place,
/// and the top-level members whose key fails `keep` removed; every other byte is copied as it came.
///
/// `None` when the bytes are not as expected: not an object, no `model` key, a top-level key written
/// with a backslash escape (its text is not its name), anything malformed. Total on any input:
/// every index is checked and every loop advances.
pub(crate) fn splice_model(raw: &[u8], model: &str, keep: &dyn Fn(&[u8]) -> bool) -> Option<Bytes> {
    let mut out = BytesMut::with_capacity(raw.len() + model.len() + 8);
    out.put_u8(b'{');
    let mut written = false;
    let mut models = 0_u32;
    let mut escaped = false;
    let end = scan::for_each_member(raw, 0, |m| {
        escaped |= m.escaped;
        let is_model = m.key == b"model";
        if !is_model && !keep(m.key) {
            return;
        }
        if written {
            out.put_u8(b',');
        }
        written = true;
        if is_model {
            models += 1;
            out.put_slice(&raw[m.start..m.value.start]);
            // Writing a string into memory cannot fail.
            let _ = serde_json::to_writer((&mut out).writer(), model);
            out.put_slice(&raw[m.value.end..m.sep]);
        } else {
            out.put_slice(&raw[m.start..m.sep]);
        }
    })?;
    // One `model`, no escaped key (its text is not its name), only whitespace after the object.
    if models != 1 || escaped || !scan::only_ws_after(raw, end) {
        return None;
    }
    out.put_u8(b'}');
    Some(out.freeze())
}

/// [`is_upstream_param`] for a key's bytes.
fn is_upstream_key(key: &[u8]) -> bool {
    // Every gateway key is ASCII, so a key that is not UTF-8 is not one.
    std::str::from_utf8(key).map_or(true, is_upstream_param)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_keys_are_cut_and_every_other_key_is_kept() {
        use crate::types::chat::GATEWAY_PARAMS;
        for k in GATEWAY_PARAMS {
            assert!(!is_upstream_key(k.as_bytes()), "{k}");
            assert!(!is_upstream_param(k), "{k}");
        }
        for k in [
            "model",
            "messages",
            "max_tokens",
            "metadata_",
            "Metadata",
            "tag",
            "",
            "cach",
        ] {
            assert!(is_upstream_key(k.as_bytes()), "{k}");
        }
        assert!(is_upstream_key(b"\xffmetadata"));
    }

    #[test]
    fn parses_urls_and_refuses_bad_ones() {
        let a = Endpoint::parse("http://h:1/v1/chat/completions").unwrap();
        let b = Endpoint::parse("http://h:1/v1/chat/completions").unwrap();
        assert_eq!(a, b);
        assert_eq!(b.uri().path(), "/v1/chat/completions");
        assert_eq!(b.host().unwrap(), "h:1");
        assert!(Endpoint::parse("http://h:1/v1/x y").is_err());
        for i in 0..67 {
            let u = format!("http://h{i}/p");
            let e = Endpoint::parse(&u).unwrap();
            assert_eq!(e.uri().host(), Some(&*format!("h{i}")));
            assert_eq!(e.host().unwrap(), &*format!("h{i}"));
        }
    }

    #[test]
    fn sets_host_for_plain_http_only_and_lets_extra_headers_override_it() {
        let e = Endpoint::parse("http://user:pw@h.example:8080/v1").unwrap();
        assert_eq!(e.host().unwrap(), "h.example:8080");
        assert!(Endpoint::parse("https://h.example/v1")
            .unwrap()
            .host()
            .is_none());

        let dep = |extra: serde_json::Value| {
            let mut d = Deployment::new("g", "openai/m");
            d.params.insert("extra_headers".into(), extra);
            d
        };
        let req =
            json_request("http://h:9/v1/chat", &dep(serde_json::json!({"x-a": "1"}))).unwrap();
        assert_eq!(req.headers().get_all(http::header::HOST).iter().count(), 1);
        assert_eq!(req.headers()[http::header::HOST], "h:9");
        let req = json_request(
            "http://h:9/v1/chat",
            &dep(serde_json::json!({"Host": "other"})),
        )
        .unwrap();
        let hosts: Vec<_> = req.headers().get_all(http::header::HOST).iter().collect();
        assert_eq!(hosts, ["other"]);
        // A header name or value no upstream could receive is the caller's error, not a panic.
        for bad in [
            serde_json::json!({"bad name": "1"}),
            serde_json::json!({"x-a": "a\nb"}),
        ] {
            let err = json_request("http://h:9/v1/chat", &dep(bad)).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
            assert!(err.to_string().contains("extra_headers"), "{err}");
        }
    }

    /// The resolved path (what the providers use) builds the same head as `json_request`, and
    /// reports a bad `extra_headers` on every call.
    #[test]
    fn resolved_heads_match_json_request() {
        let openai = crate::provider::lookup("openai").unwrap();
        let req = crate::LlmRequest::chat(
            serde_json::from_str(r#"{"model":"g","messages":[]}"#).unwrap(),
        );
        let mut d = Deployment::new("g", "openai/m").with_api_base("http://h:9/v1");
        d.params.insert(
            "extra_headers".into(),
            serde_json::json!({"x-a": "1", "Host": "other"}),
        );
        let out = openai.encode(&req, &d).unwrap();
        let want = json_request("http://h:9/v1/chat/completions", &d).unwrap();
        assert_eq!(out.uri(), want.uri());
        for name in ["x-a", "host", "content-type", "accept"] {
            let got: Vec<_> = out.headers().get_all(name).iter().collect();
            let exp: Vec<_> = want.headers().get_all(name).iter().collect();
            assert_eq!(got, exp, "{name}");
        }
        let mut bad = Deployment::new("g", "openai/m").with_api_base("http://h:9/v1");
        bad.params
            .insert("extra_headers".into(), serde_json::json!({"bad name": "1"}));
        for _ in 0..2 {
            let err = openai.encode(&req, &bad).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
            assert!(err.to_string().contains("extra_headers"), "{err}");
        }
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
        for bytes in [None, Some(&raw[..])] {
            let body = chat_body(&req, bytes, "gpt-4o").unwrap();
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

    /// The spliced body, checked to be valid JSON.
    fn splice(raw: &str, model: &str) -> String {
        let out = splice_model(raw.as_bytes(), model, &is_upstream_key)
            .unwrap_or_else(|| panic!("no splice for {raw}"));
        let s = String::from_utf8(out.to_vec()).unwrap();
        serde_json::from_str::<serde_json::Value>(&s).unwrap_or_else(|e| panic!("{e}: {s}"));
        s
    }

    #[test]
    fn splice_replaces_model_in_place_at_any_position() {
        let cases = [
            (
                r#"{"model":"g","messages":[],"n":1}"#,
                r#"{"model":"gpt-4o","messages":[],"n":1}"#,
            ),
            (
                r#"{"messages":[],"model":"g","n":1}"#,
                r#"{"messages":[],"model":"gpt-4o","n":1}"#,
            ),
            (
                r#"{"messages":[],"n":1,"model":"g"}"#,
                r#"{"messages":[],"n":1,"model":"gpt-4o"}"#,
            ),
            (r#"{"model":"g"}"#, r#"{"model":"gpt-4o"}"#),
        ];
        for (raw, want) in cases {
            assert_eq!(splice(raw, "gpt-4o"), want);
        }
        // The new value is a JSON string whatever it holds.
        assert_eq!(
            splice(r#"{"model":"g"}"#, "a\"b\\c/é\n"),
            r#"{"model":"a\"b\\c/é\n"}"#
        );
    }

    #[test]
    fn splice_removes_gateway_keys_at_any_position() {
        let cases = [
            (
                r#"{"metadata":{"a":[1,{"b":"}"}]},"model":"g","messages":[]}"#,
                r#"{"model":"m","messages":[]}"#,
            ),
            (
                r#"{"model":"g","mock_response":"x,}","messages":[]}"#,
                r#"{"model":"m","messages":[]}"#,
            ),
            (
                r#"{"model":"g","messages":[],"num_retries":3}"#,
                r#"{"model":"m","messages":[]}"#,
            ),
            (
                r#"{"fallbacks":["a"],"metadata":null,"model":"g","x":1,"max_fallbacks":2,"messages":[],"litellm_metadata":{}}"#,
                r#"{"model":"m","x":1,"messages":[]}"#,
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(splice(raw, "m"), want, "{raw}");
        }
    }

    #[test]
    fn splice_leaves_nested_values_and_strings_alone() {
        let raw = r#"{"messages":[{"role":"user","content":"} \" \\\" , \"model\":\"x\" { ]","model":"inner","metadata":1}],"model":"g","x_extra":{"model":"nested","metadata":"kept"},"stop":["\\","\"}"],"x_n":[1.50,-0.0,1e3,true,false,null]}"#;
        let want = r#"{"messages":[{"role":"user","content":"} \" \\\" , \"model\":\"x\" { ]","model":"inner","metadata":1}],"model":"up","x_extra":{"model":"nested","metadata":"kept"},"stop":["\\","\"}"],"x_n":[1.50,-0.0,1e3,true,false,null]}"#;
        assert_eq!(splice(raw, "up"), want);
    }

    #[test]
    fn splice_keeps_unicode_and_escapes_in_values() {
        let raw = r#"{"model":"g","messages":[{"role":"user","content":"wörld 🎉 \u00e9\ud83c\udf89 \n\t"}],"x_ключ":"значение"}"#;
        let want = r#"{"model":"m","messages":[{"role":"user","content":"wörld 🎉 \u00e9\ud83c\udf89 \n\t"}],"x_ключ":"значение"}"#;
        assert_eq!(splice(raw, "m"), want);
    }

    #[test]
    fn splice_copies_whitespace_of_pretty_printed_bodies() {
        let raw = "\n {\n  \"metadata\" : {\"a\": 1},\n  \"model\" :\t\"g\" ,\n  \"messages\": [ ],\r\n  \"mock_response\": \"x\"\n}\n ";
        let want = "{\n  \"model\" :\t\"m\" ,\n  \"messages\": [ ]}";
        assert_eq!(splice(raw, "m"), want);
    }

    #[test]
    fn splice_gives_up_on_escaped_top_level_keys_and_odd_input() {
        for raw in [
            r#"{"mod\u0065l":"g","messages":[]}"#,
            r#"{"model":"g","meta\u0064ata":{},"messages":[]}"#,
            r#"{"messages":[]}"#,
            "{}",
            "[]",
            "",
            r#"{"model":"g","model":"h"}"#,
            r#"{"model":"g"} x"#,
            r#"{"model":"g","#,
            r#"{"model" "g"}"#,
        ] {
            assert!(
                splice_model(raw.as_bytes(), "m", &is_upstream_key).is_none(),
                "{raw}"
            );
        }
        // The escaped key goes through the serializer, which reads it for what it is.
        let raw = br#"{"model":"g","messages":[],"meta\u0064ata":{"a":1},"x\u0079":2}"#;
        let req: ChatRequest = serde_json::from_slice(raw).unwrap();
        let body = chat_body(&req, Some(raw), "m").unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"model":"m","messages":[],"xy":2})
        );
    }

    /// Request bodies both paths must agree on.
    const BODIES: &[&str] = &[
        r#"{"model":"g","messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"a \"q\""},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],"temperature":0.2,"model":"g","metadata":{"tags":["a"]},"stream":true,"stream_options":{"include_usage":true}}"#,
        r#"{"model":"g","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]},{"role":"tool","tool_call_id":"c1","content":"{}"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"model":{"type":"string"}}}}}],"tool_choice":"auto","max_tokens":null,"mock_response":"x","x_vendor":{"deep":[[[]]]}}"#,
        "{ \"model\" : \"g\" ,\n\"messages\" : [ {\"role\":\"user\",\"content\":\"x\"} ] , \"seed\" : 7 , \"logit_bias\" : {\"50256\": -100} , \"num_retries\" : 2 }",
        r#"{"model":"g","messages":[],"response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"type":"object"},"strict":true}},"user":"u-é","n":2,"stop":"}","fallbacks":["x"]}"#,
    ];

    #[test]
    fn splice_and_serializer_agree() {
        for raw in BODIES {
            let req: ChatRequest = serde_json::from_str(raw).unwrap();
            assert!(splice_model(raw.as_bytes(), "up-model", &is_upstream_key).is_some());
            let spliced = chat_body(&req, Some(raw.as_bytes()), "up-model").unwrap();
            let serialized = chat_body(&req, None, "up-model").unwrap();
            let a: serde_json::Value = serde_json::from_slice(&spliced).unwrap();
            let b: serde_json::Value = serde_json::from_slice(&serialized).unwrap();
            assert_eq!(a, b, "{raw}");
            assert_eq!(a["model"], "up-model");
        }
        let raw =
            br#"{"input":["a","b"],"metadata":{"k":1},"model":"g","dimensions":8,"x_e":1.50}"#;
        let req: EmbeddingsRequest = serde_json::from_slice(raw).unwrap();
        let spliced = embeddings_body(&req, Some(raw), "emb").unwrap();
        assert_eq!(
            &spliced[..],
            br#"{"input":["a","b"],"model":"emb","dimensions":8,"x_e":1.50}"#
        );
        let serialized = embeddings_body(&req, None, "emb").unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&spliced).unwrap(),
            serde_json::from_slice::<serde_json::Value>(&serialized).unwrap()
        );
    }

    #[test]
    fn splice_is_total_on_cut_and_damaged_bodies() {
        for raw in BODIES {
            let raw = raw.as_bytes();
            for end in 0..raw.len() {
                // A cut body is never spliced (the object does not close)...
                assert!(splice_model(&raw[..end], "m", &is_upstream_key).is_none());
            }
            // ...and a damaged one never panics or loops, whatever it returns.
            for at in 0..raw.len() {
                for b in [b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b' ', b'x'] {
                    let mut bad = raw.to_vec();
                    bad[at] = b;
                    let _ = splice_model(&bad, "m", &is_upstream_key);
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn splice_never_panics(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = splice_model(&raw, "m", &is_upstream_key);
        }
    }

    /// The identity rule end to end: bytes are spliced only while the body is their parse.
    #[test]
    #[allow(clippy::redundant_clone)] // clones sharing the body are what is tested
    fn a_changed_body_is_serialized_not_spliced() {
        let openai = crate::provider::lookup("openai").unwrap();
        let dep = Deployment::new("g", "openai/up").with_api_base("http://h/v1");
        let raw = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}] , \"model\":\"g\",\"temperature\":1.50}";
        let sent = |req: &crate::LlmRequest| {
            let out = openai.encode(req, &dep).unwrap();
            String::from_utf8(out.body().to_vec()).unwrap()
        };
        let req = crate::LlmRequest::chat_from_bytes(
            serde_json::from_str(raw).unwrap(),
            Bytes::from_static(raw.as_bytes()),
        );
        assert_eq!(
            sent(&req),
            "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}] , \"model\":\"up\",\"temperature\":1.50}"
        );
        // A clone shares the body and the bytes.
        assert_eq!(sent(&req.clone()), sent(&req));

        let mut changed = req.clone();
        changed.chat_mut().unwrap().temperature = Some(0.5);
        let v: serde_json::Value = serde_json::from_str(&sent(&changed)).unwrap();
        assert_eq!(v["temperature"], 0.5);
        assert_eq!(v["model"], "up");
        assert!(changed.raw_body().is_none());
        // The original is untouched and still spliced.
        assert!(sent(&req).contains("1.50"));

        // Changing the body behind the request's back (not through `chat_mut`) copies it too.
        let mut direct = req.clone();
        if let crate::types::Operation::Chat(c) = &mut direct.op {
            std::sync::Arc::make_mut(c).temperature = Some(0.25);
        }
        assert!(direct.raw_body().is_none());
        let v: serde_json::Value = serde_json::from_str(&sent(&direct)).unwrap();
        assert_eq!(v["temperature"], 0.25);

        // A body put in place of the parsed one.
        let mut replaced = req.clone();
        replaced.op = crate::types::Operation::Chat(std::sync::Arc::new(
            serde_json::from_str(r#"{"model":"g","messages":[],"seed":3}"#).unwrap(),
        ));
        assert!(replaced.raw_body().is_none());
        let v: serde_json::Value = serde_json::from_str(&sent(&replaced)).unwrap();
        assert_eq!(v, serde_json::json!({"model":"up","messages":[],"seed":3}));
    }
}
