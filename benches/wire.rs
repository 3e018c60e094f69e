//! Criterion micro-benchmarks of the hot path: request parse, response serialize, SSE chunk encode
//! (gateway → client) and decode (provider → gateway), and a whole in-process round trip through
//! `OpenAiServer` and the router to the mock provider.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use llmgate::{
    config::Config,
    gateway::{Gateway, DEFAULT_CONFIG},
    provider::{
        openai::{chat_body, OpenAiStreamMapper},
        sse::SseStream,
        ByteStream, HttpClient,
    },
    server::encode_chunk,
    types::{
        chat::{ChatChunk, ChatRequest, ChatResponse},
        ChunkBody,
    },
};
use tower::ServiceExt as _;

fn small_request() -> String {
    r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about Rust and tower layers."}],"temperature":0.7,"max_tokens":256,"stream":false,"user":"u-123","metadata":{"tags":["bench"]}}"#.to_owned()
}

fn large_request() -> String {
    let mut msgs = Vec::new();
    for i in 0..40 {
        msgs.push(format!(
            r#"{{"role":"{}","content":"{} {}"}}"#,
            if i % 2 == 0 { "user" } else { "assistant" },
            "lorem ipsum dolor sit amet ".repeat(20),
            i
        ));
    }
    format!(
        r#"{{"model":"gpt-4o","messages":[{}],"tools":[{{"type":"function","function":{{"name":"get_weather","description":"Weather","parameters":{{"type":"object","properties":{{"city":{{"type":"string"}}}},"required":["city"]}}}}}}],"tool_choice":"auto","x_unknown":{{"a":[1,2,3]}}}}"#,
        msgs.join(",")
    )
}

const RESPONSE: &str = r#"{"id":"chatcmpl-BqZ1k4tBzGJ0nM8c2xQ7vR5pL3sW9","object":"chat.completion","created":1751980800,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Rust compiles slow / tower layers stack up so neat / bytes stream through the night","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":28,"completion_tokens":19,"total_tokens":47,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_34a54ae93c"}"#;

const CHUNK: &str = r#"{"id":"chatcmpl-BqZ3aB5cD7eF9gH1iJ3kL5mN7oP9q","object":"chat.completion.chunk","created":1751980920,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_34a54ae93c","choices":[{"index":0,"delta":{"content":" there"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"p9K3xT"}"#;

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_parse");
    for (name, body) in [
        ("small", small_request()),
        ("large_40_msgs", large_request()),
    ] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    serde_json::from_slice::<ChatRequest>(black_box(body.as_bytes())).unwrap(),
                )
            });
        });
    }
    g.finish();
    let req: ChatRequest = serde_json::from_str(&small_request()).unwrap();
    c.bench_function("request_encode_openai_upstream", |b| {
        b.iter(|| black_box(chat_body(black_box(&req), None, "gpt-4o-mini").unwrap()));
    });
    // The serializer against the splice into the client's bytes (what a request built at the edge
    // gets), small and large.
    let mut g = c.benchmark_group("request_encode_openai_upstream_by_path");
    for (name, body) in [
        ("small", small_request()),
        ("large_40_msgs", large_request()),
    ] {
        let req: ChatRequest = serde_json::from_str(&body).unwrap();
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("{name}/serialized"), |b| {
            b.iter(|| black_box(chat_body(black_box(&req), None, "gpt-4o-mini").unwrap()));
        });
        g.bench_function(format!("{name}/spliced"), |b| {
            b.iter(|| {
                black_box(chat_body(black_box(&req), Some(body.as_bytes()), "gpt-4o-mini").unwrap())
            });
        });
    }
    g.finish();
}

fn serialize(c: &mut Criterion) {
    let resp: ChatResponse = serde_json::from_str(RESPONSE).unwrap();
    c.bench_function("response_parse", |b| {
        b.iter(|| black_box(serde_json::from_str::<ChatResponse>(black_box(RESPONSE)).unwrap()));
    });
    c.bench_function("response_serialize", |b| {
        b.iter(|| black_box(serde_json::to_vec(black_box(&resp)).unwrap()));
    });
}

fn sse(c: &mut Criterion) {
    // A chunk built by a translation (serialized) and one relayed from an OpenAI-format provider.
    let chunk: ChunkBody = serde_json::from_str::<ChatChunk>(CHUNK).unwrap().into();
    let mut buf = BytesMut::with_capacity(4096);
    c.bench_function("sse_chunk_encode", |b| {
        b.iter(|| black_box(encode_chunk(&mut buf, black_box(&chunk))));
    });
    let wire = ChunkBody::from_wire(Bytes::from_static(CHUNK.as_bytes())).unwrap();
    c.bench_function("sse_chunk_encode_wire", |b| {
        b.iter(|| black_box(encode_chunk(&mut buf, black_box(&wire))));
    });

    // Decode: 100 events, delivered in 1 KiB pieces, through the SSE parser and the OpenAI mapper.
    let mut stream_text = String::new();
    for _ in 0..100 {
        stream_text.push_str("data: ");
        stream_text.push_str(CHUNK);
        stream_text.push_str("\n\n");
    }
    stream_text.push_str("data: [DONE]\n\n");
    let pieces: Vec<Bytes> = stream_text
        .as_bytes()
        .chunks(1024)
        .map(Bytes::copy_from_slice)
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("sse_decode");
    g.throughput(Throughput::Elements(100));
    g.bench_function("openai_100_chunks", |b| {
        b.iter_batched(
            || {
                let s: ByteStream = Box::pin(futures_util::stream::iter(
                    pieces.clone().into_iter().map(Ok::<_, llmgate::LlmError>),
                ));
                s
            },
            |body| {
                rt.block_on(async {
                    let mut s = SseStream::new(body, OpenAiStreamMapper::new("openai"));
                    let mut n = 0;
                    while let Some(c) = s.next().await {
                        black_box(c.unwrap());
                        n += 1;
                    }
                    assert_eq!(n, 100);
                })
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = Config::from_yaml_str(DEFAULT_CONFIG, "default")
        .unwrap()
        .config;
    let server = rt.block_on(async { Gateway::from_config(&config, &HttpClient::new()).server() });
    let body = Bytes::from(r#"{"model":"mock","messages":[{"role":"user","content":"hi"}]}"#);
    c.bench_function("server_mock_round_trip", |b| {
        b.iter(|| {
            rt.block_on(async {
                let req = http::Request::post("/v1/chat/completions")
                    .body(Full::new(body.clone()))
                    .unwrap();
                let resp = server.clone().oneshot(req).await.unwrap();
                black_box(resp.into_body().collect().await.unwrap().to_bytes());
            })
        });
    });
}

criterion_group!(benches, parse, serialize, sse, round_trip);
criterion_main!(benches);
