//! Cache keys: a SHA-256 digest over the model group, the scope and every request field that
//! changes the answer, written in a canonical form (object keys sorted, values tagged with their
//! type and length), so the same request with its keys in another order gets the same key.

use std::{fmt::Write as _, sync::Arc};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    auth::PresentedKey,
    types::{
        chat::ChatRequest,
        embeddings::{EmbeddingInput, EmbeddingsRequest},
        LlmRequest,
    },
};

/// Request keys that never change the answer, so they are left out of the key: the streaming
/// switches (a streamed and a whole answer share one entry), the end-user id, metadata, and the
/// gateway's own controls (cache, retries, timeouts, fallbacks, tags, call ids).
pub const NOT_HASHED: &[&str] = &[
    "stream",
    "stream_options",
    "user",
    "metadata",
    "litellm_metadata",
    "cache",
    "caching",
    "tags",
    "litellm_call_id",
    "litellm_logging_obj",
    "num_retries",
    "max_retries",
    "timeout",
    "request_timeout",
    "stream_timeout",
    "fallbacks",
    "context_window_fallbacks",
    "content_policy_fallbacks",
    "disable_fallbacks",
    "max_fallbacks",
];

pub use crate::types::extensions::CacheScope;

/// The scope of `req`: its [`CacheScope`] extension, else a digest of the presented key, else the
/// anonymous tenant. Written into `hasher` as a tagged string.
pub(crate) fn hash_scope(hasher: &mut Sha256, req: &LlmRequest) {
    if let Some(scope) = req.extensions.get::<CacheScope>() {
        put_str(hasher, b'S', scope.as_str());
    } else if let Some(PresentedKey(key)) = req.extensions.get::<PresentedKey>() {
        // The key only enters the digest; it is never stored or shown.
        put_str(hasher, b'K', key.expose());
    } else {
        put_str(hasher, b'A', "");
    }
}

/// A finished key: the digest, with the namespace in front when there is one
/// (`namespace:hex`), as LiteLLM writes its Redis keys.
pub(crate) fn finish(hasher: Sha256, namespace: Option<&str>) -> Arc<str> {
    let digest = hasher.finalize();
    let mut out = String::with_capacity(namespace.map_or(0, |n| n.len() + 1) + 64);
    if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
        out.push_str(ns);
        out.push(':');
    }
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out.into()
}

/// The hasher for a chat request, before the scope: the operation, the model group and the body
/// without [`NOT_HASHED`] keys.
pub(crate) fn chat_hasher(body: &ChatRequest) -> Sha256 {
    let mut h = Sha256::new();
    put_str(&mut h, b'O', "chat");
    put_str(&mut h, b'M', &body.model);
    match serde_json::to_value(body) {
        Ok(Value::Object(map)) => {
            put_object_filtered(&mut h, &map, |k| k != "model" && !NOT_HASHED.contains(&k))
        }
        // A wire object always serializes to an object; hash whatever came out otherwise.
        Ok(other) => put_value(&mut h, &other),
        Err(_) => put_str(&mut h, b'E', ""),
    }
    h
}

/// The hasher shared by every item of an embeddings batch (everything but `input`), before the
/// scope. Clone it and add one item with [`hash_embedding_item`].
pub(crate) fn embeddings_hasher(body: &EmbeddingsRequest) -> Sha256 {
    let mut h = Sha256::new();
    put_str(&mut h, b'O', "embeddings");
    put_str(&mut h, b'M', &body.model);
    match serde_json::to_value(body) {
        Ok(Value::Object(map)) => put_object_filtered(&mut h, &map, |k| {
            k != "model" && k != "input" && !NOT_HASHED.contains(&k)
        }),
        Ok(other) => put_value(&mut h, &other),
        Err(_) => put_str(&mut h, b'E', ""),
    }
    h
}

/// One input of an embeddings batch, as its own request would have it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum EmbeddingItem<'a> {
    Text(&'a str),
    Tokens(&'a [u32]),
}

impl EmbeddingItem<'_> {
    /// A weight for sharing the batch's token count among items.
    pub(crate) fn weight(self) -> u64 {
        match self {
            Self::Text(s) => s.len().max(1) as u64,
            Self::Tokens(t) => t.len().max(1) as u64,
        }
    }
}

/// The items of an embeddings input, in order.
pub(crate) fn embedding_items(input: &EmbeddingInput) -> Vec<EmbeddingItem<'_>> {
    match input {
        EmbeddingInput::One(s) => vec![EmbeddingItem::Text(s)],
        EmbeddingInput::Many(v) => v.iter().map(|s| EmbeddingItem::Text(s)).collect(),
        EmbeddingInput::Tokens(t) => vec![EmbeddingItem::Tokens(t)],
        EmbeddingInput::TokenBatches(v) => v.iter().map(|t| EmbeddingItem::Tokens(t)).collect(),
    }
}

/// Adds one embeddings item to a clone of the batch hasher.
pub(crate) fn hash_embedding_item(h: &mut Sha256, item: EmbeddingItem<'_>) {
    match item {
        EmbeddingItem::Text(s) => put_str(h, b'I', s),
        EmbeddingItem::Tokens(t) => {
            h.update([b'T']);
            h.update((t.len() as u64).to_le_bytes());
            for tok in t {
                h.update(tok.to_le_bytes());
            }
        }
    }
}

fn put_str(h: &mut Sha256, tag: u8, s: &str) {
    h.update([tag]);
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

fn put_object_filtered(
    h: &mut Sha256,
    map: &serde_json::Map<String, Value>,
    keep: impl Fn(&str) -> bool,
) {
    let mut keys: Vec<&String> = map.keys().filter(|k| keep(k)).collect();
    keys.sort_unstable();
    h.update([b'{']);
    h.update((keys.len() as u64).to_le_bytes());
    for k in keys {
        put_str(h, b'k', k);
        if let Some(v) = map.get(k) {
            put_value(h, v);
        }
    }
}

fn put_value(h: &mut Sha256, v: &Value) {
    match v {
        Value::Null => h.update([b'n']),
        Value::Bool(b) => h.update([if *b { b't' } else { b'f' }]),
        Value::Number(n) => put_str(h, b'#', &n.to_string()),
        Value::String(s) => put_str(h, b's', s),
        Value::Array(a) => {
            h.update([b'[']);
            h.update((a.len() as u64).to_le_bytes());
            for item in a {
                put_value(h, item);
            }
        }
        Value::Object(m) => put_object_filtered(h, m, |_| true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn chat(json: &str) -> LlmRequest {
        LlmRequest::chat(serde_json::from_str(json).unwrap())
    }

    fn key(req: &LlmRequest) -> Arc<str> {
        let mut h = chat_hasher(req.as_chat().unwrap());
        hash_scope(&mut h, req);
        finish(h, None)
    }

    #[test]
    fn key_order_and_ignored_fields_do_not_matter() {
        let a = chat(
            r#"{"model":"m","temperature":0.5,"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"a":1,"b":2}}}}"#,
        );
        let b = chat(
            r#"{"response_format":{"json_schema":{"schema":{"b":2,"a":1},"name":"x"},"type":"json_schema"},"messages":[{"content":"hi","role":"user"}],"model":"m","temperature":0.5,"user":"u1","metadata":{"x":1},"stream":true,"stream_options":{"include_usage":true},"cache":{"ttl":5}}"#,
        );
        assert_eq!(key(&a), key(&b));
        assert_eq!(key(&a).len(), 64);
    }

    #[test]
    fn fields_that_change_the_answer_change_the_key() {
        let base = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]"#;
        let k0 = key(&chat(&format!("{base}}}")));
        for extra in [
            r#","temperature":0.1"#,
            r#","max_tokens":5"#,
            r#","seed":1"#,
            r#","tools":[{"type":"function","function":{"name":"f"}}]"#,
            r#","response_format":{"type":"json_object"}"#,
            r#","logit_bias":{"1":2}"#,
        ] {
            assert_ne!(k0, key(&chat(&format!("{base}{extra}}}"))), "{extra}");
        }
        let other_model = chat(r#"{"model":"n","messages":[{"role":"user","content":"hi"}]}"#);
        assert_ne!(k0, key(&other_model));
        let other_text = chat(r#"{"model":"m","messages":[{"role":"user","content":"ho"}]}"#);
        assert_ne!(k0, key(&other_text));
    }

    #[test]
    fn scope_separates_tenants() {
        let json = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let anon = chat(json);
        let mut k1 = chat(json);
        k1.extensions.insert(PresentedKey(Secret::new("sk-one")));
        let mut k2 = chat(json);
        k2.extensions.insert(PresentedKey(Secret::new("sk-two")));
        let mut t1 = chat(json);
        t1.extensions.insert(PresentedKey(Secret::new("sk-one")));
        t1.extensions.insert(CacheScope::team("t"));
        let mut t2 = chat(json);
        t2.extensions.insert(PresentedKey(Secret::new("sk-two")));
        t2.extensions.insert(CacheScope::team("t"));
        let keys = [key(&anon), key(&k1), key(&k2), key(&t1)];
        for i in 0..keys.len() {
            for j in i + 1..keys.len() {
                assert_ne!(keys[i], keys[j]);
            }
        }
        assert_eq!(key(&t1), key(&t2), "one team shares entries");
        assert!(!key(&k1).contains("sk-one"));
    }

    #[test]
    fn namespace_prefixes_the_key() {
        let h = chat_hasher(&ChatRequest::default());
        assert!(finish(h, Some("ns")).starts_with("ns:"));
    }
}
