//! Shared scenarios of the cache tests: a gateway with the cache on, served on loopback over the
//! fake upstream, and checks that run against every backend (memory and Redis).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use llmgate::{
    cache::CacheHandle,
    config::Config,
    gateway::Gateway,
    provider::HttpClient,
    server::{serve, ServeConfig},
};
use serde_json::{json, Value};

use crate::support::{chat_completion, chat_sse, gw, FakeUpstream, Reply};

/// A gateway with the response cache on, on 127.0.0.1:PORT until dropped.
pub struct CacheGateway {
    pub addr: SocketAddr,
    pub cache: CacheHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for CacheGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A unique namespace, so tests sharing one Redis never see each other's entries.
pub fn unique_ns(test: &str) -> String {
    format!("llmgate-test-{test}-{:016x}", fastrand::u64(..))
}

impl CacheGateway {
    /// Serves model groups `g` (chat) and `e` (embeddings) at `upstream`, with
    /// `litellm_settings.cache: true` and `cache_params` given as a YAML flow mapping.
    pub async fn start(upstream: &str, cache_params: &str) -> Self {
        let yaml = format!(
            "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/upstream-model\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\n  - model_name: e\n    litellm_params:\n      model: openai/text-embedding-3-small\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\nlitellm_settings:\n  cache: true\n  cache_params: {cache_params}\n"
        );
        let loaded = Config::from_yaml_str(&yaml, "test").unwrap_or_else(|e| panic!("config: {e}"));
        let gateway = Gateway::from_config(&loaded.config, &HttpClient::new());
        // Test models have no price: that warning is expected; any other is a config problem.
        let unexpected: Vec<_> = gateway
            .warnings()
            .iter()
            .filter(|w| !w.starts_with("no price known"))
            .collect();
        assert!(unexpected.is_empty(), "{unexpected:?}");
        let cache = gateway.cache().cloned().expect("cache is on");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(
            listener,
            gateway.server(),
            ServeConfig::default().grace_period(Duration::from_secs(5)),
            async {
                let _ = rx.await;
            },
        ));
        Self {
            addr,
            cache,
            stop: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs `body` to `path` with extra headers.
    pub async fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> gw::Answer {
        let mut req =
            http::Request::post(self.url(path)).header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        gw::send(
            req.body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
                .unwrap(),
        )
        .await
    }

    pub async fn chat(&self, body: &Value) -> gw::Answer {
        self.post("/v1/chat/completions", body, &[]).await
    }
}

pub fn header<'a>(a: &'a gw::Answer, name: &str) -> Option<&'a str> {
    a.headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn status(a: &gw::Answer) -> &str {
    header(a, "x-llmgate-cache").unwrap_or("<none>")
}

pub fn content(a: &gw::Answer) -> String {
    a.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content: {}", String::from_utf8_lossy(&a.body)))
        .to_owned()
}

/// The text of an SSE answer: every content delta joined.
pub fn streamed_content(a: &gw::Answer) -> String {
    let mut out = String::new();
    for d in a.sse_data() {
        if d == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(&d).unwrap_or_else(|e| panic!("{e}: {d}"));
        for c in v["choices"].as_array().into_iter().flatten() {
            if let Some(t) = c["delta"]["content"].as_str() {
                out.push_str(t);
            }
        }
    }
    out
}

fn ask(text: &str) -> Value {
    json!({"model": "g", "messages": [{"role": "user", "content": text}], "temperature": 0.2})
}

// ---------------------------------------------------------------------------------------------
// Scenarios, run against each backend
// ---------------------------------------------------------------------------------------------

/// Miss, then hit for the same request written differently; other requests miss.
pub async fn hit_and_miss(params: &str) {
    let up = FakeUpstream::start().await;
    up.enqueue(Reply::json(200, chat_completion("first answer")));
    let gw = CacheGateway::start(&up.url(), params).await;

    let a = gw.chat(&ask("hi")).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(status(&a), "miss");
    let key = header(&a, "x-litellm-cache-key")
        .expect("key header")
        .to_owned();
    assert_eq!(content(&a), "first answer");
    gw.cache.flushed().await;

    // Same request: keys in another order, plus fields that do not change the answer.
    let b = gw
        .chat(
            &json!({"temperature": 0.2, "user": "someone", "metadata": {"run": 2},
                      "messages": [{"content": "hi", "role": "user"}], "model": "g"}),
        )
        .await;
    assert_eq!(b.status, 200);
    assert_eq!(status(&b), "hit");
    assert_eq!(header(&b, "x-litellm-cache-key"), Some(key.as_str()));
    assert_eq!(header(&b, "x-litellm-response-cost"), Some("0"));
    assert_eq!(content(&b), "first answer");
    assert_ne!(b.json()["id"], a.json()["id"], "a hit gets a fresh id");
    assert_eq!(b.json()["usage"]["total_tokens"], 12);
    assert_eq!(up.hits(), 1, "the hit never reached the provider");

    // A field that changes the answer misses.
    let c = gw
        .chat(&json!({"model": "g", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.9}))
        .await;
    assert_eq!(status(&c), "miss");
    assert_ne!(header(&c, "x-litellm-cache-key"), Some(key.as_str()));
    assert_eq!(up.hits(), 2);

    let s = gw.cache.stats();
    assert_eq!((s.hits, s.misses, s.errors), (1, 2, 0), "{s:?}");
}

/// An entry stored with `ttl: 1` is gone after a second.
pub async fn ttl_expiry(params: &str) {
    let up = FakeUpstream::start().await;
    let gw = CacheGateway::start(&up.url(), params).await;
    let mut body = ask("short-lived");
    body["cache"] = json!({"ttl": 1});
    assert_eq!(status(&gw.chat(&body).await), "miss");
    gw.cache.flushed().await;
    assert_eq!(status(&gw.chat(&ask("short-lived")).await), "hit");
    // The entry's time to live is the behaviour under test: let it pass.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(status(&gw.chat(&ask("short-lived")).await), "miss");
    assert_eq!(up.hits(), 2);
}

/// `no-cache` skips the read but stores; `no-store` reads but never stores; as body or header.
pub async fn no_cache_and_no_store(params: &str) {
    let up = FakeUpstream::start().await;
    let gw = CacheGateway::start(&up.url(), params).await;

    let mut no_store = ask("q1");
    no_store["cache"] = json!({"no-store": true});
    assert_eq!(status(&gw.chat(&no_store).await), "miss");
    gw.cache.flushed().await;
    assert_eq!(
        status(&gw.chat(&ask("q1")).await),
        "miss",
        "no-store kept nothing"
    );
    gw.cache.flushed().await;
    assert_eq!(up.hits(), 2);
    assert_eq!(status(&gw.chat(&ask("q1")).await), "hit");

    let mut no_cache = ask("q1");
    no_cache["cache"] = json!({"no-cache": true});
    assert_eq!(status(&gw.chat(&no_cache).await), "bypass");
    assert_eq!(up.hits(), 3);
    let h = gw
        .post(
            "/v1/chat/completions",
            &ask("q1"),
            &[("cache-control", "no-cache")],
        )
        .await;
    assert_eq!(status(&h), "bypass");
    assert_eq!(up.hits(), 4);

    // Header no-store on a new question: answered, not kept.
    let h = gw
        .post(
            "/v1/chat/completions",
            &ask("q2"),
            &[("cache-control", "no-store")],
        )
        .await;
    assert_eq!((h.status, status(&h)), (200, "miss"));
    gw.cache.flushed().await;
    assert_eq!(status(&gw.chat(&ask("q2")).await), "miss");

    // s-maxage: an entry older than allowed is not used.
    gw.cache.flushed().await;
    let mut fresh_only = ask("q2");
    fresh_only["cache"] = json!({"s-maxage": 0});
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(status(&gw.chat(&fresh_only).await), "miss");
}

/// Namespaces separate entries and prefix the key.
pub async fn namespaces(params: &str) {
    let up = FakeUpstream::start().await;
    let gw = CacheGateway::start(&up.url(), params).await;
    // Unique per run: entries of earlier runs may still live in a shared Redis.
    let (alpha, beta) = (unique_ns("alpha"), unique_ns("beta"));
    let mut a = ask("ns");
    a["cache"] = json!({"namespace": alpha});
    let first = gw.chat(&a).await;
    assert_eq!(status(&first), "miss");
    assert!(header(&first, "x-litellm-cache-key")
        .unwrap()
        .starts_with(&format!("{alpha}:")));
    gw.cache.flushed().await;
    let mut b = ask("ns");
    b["cache"] = json!({"namespace": beta});
    let other = gw.chat(&b).await;
    assert_eq!(status(&other), "miss");
    assert!(header(&other, "x-litellm-cache-key")
        .unwrap()
        .starts_with(&format!("{beta}:")));
    assert_eq!(status(&gw.chat(&a).await), "hit");
    // The header form of the same namespace reads the same entry.
    let h = gw
        .post(
            "/v1/chat/completions",
            &ask("ns"),
            &[("cache-control", &format!("namespace={alpha}"))],
        )
        .await;
    assert_eq!(status(&h), "hit");
    assert_eq!(up.hits(), 2);
}

/// One key's entries are invisible to another key; shared mode shares them.
pub async fn tenant_isolation(params: &str, shared_params: &str) {
    let up = FakeUpstream::start().await;
    up.enqueue(Reply::json(200, chat_completion("for alice")));
    let gw = CacheGateway::start(&up.url(), params).await;
    let alice = [("authorization", "Bearer sk-alice")];
    let bob = [("authorization", "Bearer sk-bob")];
    let q = ask("secret plans");
    let a = gw.post("/v1/chat/completions", &q, &alice).await;
    assert_eq!((status(&a), content(&a).as_str()), ("miss", "for alice"));
    gw.cache.flushed().await;
    let b = gw.post("/v1/chat/completions", &q, &bob).await;
    assert_eq!(status(&b), "miss", "bob never gets alice's answer");
    assert_ne!(content(&b), "for alice");
    assert_eq!(
        status(&gw.post("/v1/chat/completions", &q, &alice).await),
        "hit"
    );
    assert_eq!(up.hits(), 2);

    let up = FakeUpstream::start().await;
    let gw = CacheGateway::start(&up.url(), shared_params).await;
    assert_eq!(
        status(&gw.post("/v1/chat/completions", &q, &alice).await),
        "miss"
    );
    gw.cache.flushed().await;
    assert_eq!(
        status(&gw.post("/v1/chat/completions", &q, &bob).await),
        "hit"
    );
    assert_eq!(up.hits(), 1);
}

/// A streamed answer is stored once complete and replayed as a stream (same text, fresh id) and
/// as a whole response; a whole answer is replayed to a streaming client.
pub async fn stream_replay(params: &str) {
    let up = FakeUpstream::start().await;
    let pieces = ["The ", "quick ", "brown ", "fox."];
    up.enqueue(Reply::sse(chat_sse(&pieces)));
    let gw = CacheGateway::start(&up.url(), params).await;
    let mut s = ask("tell a story");
    s["stream"] = json!(true);
    let first = gw.chat(&s).await;
    assert_eq!(first.status, 200);
    assert_eq!(status(&first), "miss");
    let original = streamed_content(&first);
    assert_eq!(original, pieces.concat());
    gw.cache.flushed().await;

    let again = gw.chat(&s).await;
    assert_eq!(status(&again), "hit");
    assert_eq!(
        header(&again, "content-type"),
        Some("text/event-stream"),
        "a streaming client gets a stream"
    );
    assert_eq!(streamed_content(&again), original);
    assert_eq!(again.sse_data().last().map(String::as_str), Some("[DONE]"));
    let first_id: Value = serde_json::from_str(&first.sse_data()[0]).unwrap();
    let again_id: Value = serde_json::from_str(&again.sse_data()[0]).unwrap();
    assert_ne!(first_id["id"], again_id["id"]);

    let whole = gw.chat(&ask("tell a story")).await;
    assert_eq!(status(&whole), "hit");
    assert_eq!(content(&whole), original);
    assert_eq!(whole.json()["choices"][0]["finish_reason"], "stop");
    assert_eq!(up.hits(), 1);

    // The reverse: a whole answer replayed to a streaming client, with usage when asked.
    up.enqueue(Reply::json(200, chat_completion("whole first")));
    assert_eq!(status(&gw.chat(&ask("other")).await), "miss");
    gw.cache.flushed().await;
    let mut s2 = ask("other");
    s2["stream"] = json!(true);
    s2["stream_options"] = json!({"include_usage": true});
    let replay = gw.chat(&s2).await;
    assert_eq!(status(&replay), "hit");
    assert_eq!(streamed_content(&replay), "whole first");
    let data = replay.sse_data();
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 12);
    assert_eq!(up.hits(), 2);
}

/// A stream that was cut is never stored.
pub async fn cut_stream_not_stored(params: &str) {
    let up = FakeUpstream::start().await;
    // Two content chunks, then the body ends: no finish reason, no [DONE].
    let full = chat_sse(&["half ", "an answer"]);
    let cut: String = full.split("\n\n").take(3).collect::<Vec<_>>().join("\n\n") + "\n\n";
    up.enqueue(Reply::raw(200, "text/event-stream", cut));
    up.enqueue(Reply::sse(full.clone()));
    let gw = CacheGateway::start(&up.url(), params).await;
    let mut s = ask("cut");
    s["stream"] = json!(true);
    let first = gw.chat(&s).await;
    assert_eq!(first.status, 200);
    gw.cache.flushed().await;
    let second = gw.chat(&s).await;
    assert_eq!(second.status, 200);
    assert_eq!(status(&second), "miss", "a cut stream was not stored");
    assert_eq!(streamed_content(&second), "half an answer");
    assert_eq!(up.hits(), 2);
}

fn emb_reply(vectors: &[f64]) -> Reply {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": [v, -v]}))
        .collect();
    let n = vectors.len() as u64;
    Reply::json(
        200,
        json!({"object": "list", "data": data, "model": "text-embedding-3-small",
               "usage": {"prompt_tokens": 2 * n, "total_tokens": 2 * n}}),
    )
}

/// Embeddings are cached per input: only new inputs go upstream; order, indices and usage hold.
pub async fn embeddings_per_item(params: &str) {
    let up = FakeUpstream::start().await;
    up.enqueue(emb_reply(&[1.0, 2.0]));
    up.enqueue(emb_reply(&[3.0]));
    let gw = CacheGateway::start(&up.url(), params).await;
    let first = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "e", "input": ["aa", "bb"]}),
            &[],
        )
        .await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(status(&first), "miss");
    gw.cache.flushed().await;

    let mixed = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "e", "input": ["bb", "cc", "aa"]}),
            &[],
        )
        .await;
    assert_eq!(
        mixed.status,
        200,
        "{}",
        String::from_utf8_lossy(&mixed.body)
    );
    assert_eq!(status(&mixed), "partial");
    assert_eq!(up.hits(), 2);
    assert_eq!(up.last_request().unwrap().json()["input"], json!(["cc"]));
    let v = mixed.json();
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (i, (d, want)) in data.iter().zip([2.0, 3.0, 1.0]).enumerate() {
        assert_eq!(d["index"], i);
        assert_eq!(d["embedding"], json!([want, -want]));
    }
    assert_eq!(v["usage"]["prompt_tokens"], 6);
    gw.cache.flushed().await;

    let all = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "e", "input": ["cc", "aa"]}),
            &[],
        )
        .await;
    assert_eq!(status(&all), "hit");
    assert_eq!(header(&all, "x-litellm-response-cost"), Some("0"));
    assert_eq!(all.json()["data"][0]["embedding"], json!([3.0, -3.0]));
    assert_eq!(all.json()["data"][1]["index"], 1);
    assert_eq!(up.hits(), 2);

    // no-cache: everything goes upstream (the `cache` control never does), and is stored.
    up.enqueue(emb_reply(&[4.0]));
    let bypass = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "e", "input": ["dd"], "cache": {"no-cache": true}}),
            &[],
        )
        .await;
    assert_eq!((bypass.status, status(&bypass)), (200, "bypass"));
    let sent = up.last_request().unwrap().json();
    assert_eq!(sent["input"], json!(["dd"]));
    assert!(sent.get("cache").is_none(), "{sent}");
    gw.cache.flushed().await;
    let dd = gw
        .post("/v1/embeddings", &json!({"model": "e", "input": "dd"}), &[])
        .await;
    assert_eq!(
        status(&dd),
        "hit",
        "a single input shares the batch item's entry"
    );
    assert_eq!(dd.json()["data"][0]["embedding"], json!([4.0, -4.0]));
    assert_eq!(up.hits(), 3);
}
