//! Media prices over real sockets (issue 21): a transcription whose answer states no duration
//! (`text`) or only its last cue (`srt`) is charged per second of the uploaded file, read from
//! its headers; gpt-image calls are charged at the price map's size- and quality-specific entry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use bytes::Bytes;
use governance_common::{get, new_key, post as gpost, Gov, MASTER};
use http_body_util::Full;
use llmgate::governance::BuildOptions;
use serde_json::json;
use support::{gw::send, FakeUpstream, Reply};

/// A PCM WAV of `secs` seconds at 8 kHz, 16-bit mono.
fn wav(secs: u32) -> Vec<u8> {
    let data_len = secs * 16_000;
    let mut v = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0".to_vec();
    v.extend_from_slice(&8_000_u32.to_le_bytes());
    v.extend_from_slice(&16_000_u32.to_le_bytes());
    v.extend_from_slice(b"\x02\0\x10\0data");
    v.extend_from_slice(&data_len.to_le_bytes());
    v.resize(v.len() + data_len as usize, 0);
    v
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Bytes) {
    let boundary = "media-prices-boundary";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if let Some(f) = file {
            body.extend_from_slice(
                format!("; filename=\"{f}\"\r\nContent-Type: audio/wav").as_bytes(),
            );
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={boundary}"),
        Bytes::from(body),
    )
}

fn cost(a: &governance_common::Answer) -> f64 {
    a.header("x-litellm-response-cost")
        .unwrap_or_else(|| panic!("no cost header: {}", String::from_utf8_lossy(&a.body)))
        .parse()
        .unwrap()
}

async fn gateway(up: &FakeUpstream) -> (Gov, String) {
    let yaml = format!(
        "model_list:\n  - model_name: whisper\n    litellm_params:\n      model: openai/whisper-1\n      api_base: {0}/v1\n      api_key: sk-up\n  - model_name: img\n    litellm_params:\n      model: openai/gpt-image-1\n      api_base: {0}/v1\n      api_key: sk-up\ngeneral_settings:\n  master_key: {MASTER}\n",
        up.url()
    );
    let gw = Gov::start(
        &yaml,
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let (key, _) = new_key(&gw.url(""), json!({})).await;
    (gw, key)
}

#[tokio::test]
async fn transcriptions_without_a_stated_duration_are_charged_by_the_files_length() {
    let up = FakeUpstream::start().await;
    let (gw, key) = gateway(&up).await;
    let transcribe = |format: &'static str, file: Vec<u8>| {
        let url = gw.url("/v1/audio/transcriptions");
        let key = key.clone();
        async move {
            let (ct, form) = multipart(&[
                ("file", Some("a.wav"), &file),
                ("model", None, b"whisper"),
                ("response_format", None, format.as_bytes()),
            ]);
            let a = send(
                http::Request::post(url)
                    .header("content-type", ct)
                    .header("authorization", format!("Bearer {key}"))
                    .body(Full::new(form))
                    .unwrap(),
            )
            .await;
            governance_common::Answer {
                status: a.status,
                headers: a.headers,
                body: a.body,
            }
        }
    };
    let mut expected = Vec::new();
    // `text`: no duration in the answer; the WAV is 7 s, at whisper-1's $0.0001 a second.
    up.enqueue(Reply::raw(200, "text/plain", "hello there\n"));
    let a = transcribe("text", wav(7)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(&a.body[..], b"hello there\n");
    expected.push((call_id(&a), 0.0007));
    // `srt` whose last cue ends at 2 s of a 7 s file: the file's length.
    up.enqueue(Reply::raw(
        200,
        "text/plain",
        "1\n00:00:00,000 --> 00:00:02,000\nhello\n\n",
    ));
    let a = transcribe("srt", wav(7)).await;
    assert_eq!(a.status, 200);
    expected.push((call_id(&a), 0.0007));
    // A file whose headers say nothing: the cue's end, as before.
    up.enqueue(Reply::raw(
        200,
        "text/plain",
        "1\n00:00:00,000 --> 00:00:02,000\nhello\n\n",
    ));
    let a = transcribe("srt", b"not audio".to_vec()).await;
    assert_eq!(a.status, 200);
    expected.push((call_id(&a), 0.0002));
    // `json` with its own duration: the answer wins.
    up.enqueue(Reply::json(
        200,
        json!({"text": "hi", "usage": {"type": "duration", "seconds": 3}}),
    ));
    let a = transcribe("json", wav(7)).await;
    assert_eq!(a.status, 200);
    expected.push((call_id(&a), 0.0003));
    gw.flush().await;
    let rows = get(&gw.url(&format!("/spend/logs?api_key={key}")), Some(MASTER))
        .await
        .json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), expected.len(), "{rows:?}");
    for (id, spend) in expected {
        let row = rows
            .iter()
            .find(|r| r["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id}: {rows:?}"));
        let got = row["spend"].as_f64().unwrap();
        assert!((got - spend).abs() < 1e-12, "{id}: {got} != {spend}");
    }
}

fn call_id(a: &governance_common::Answer) -> String {
    a.header("x-litellm-call-id").unwrap().to_owned()
}

#[tokio::test]
async fn gpt_image_is_charged_at_its_size_and_quality_entry() {
    let up = FakeUpstream::start().await;
    let (gw, key) = gateway(&up).await;
    up.set_default(Reply::json(
        200,
        json!({"created": 1, "data": [{"b64_json": "AAAA"}, {"b64_json": "BBBB"}],
            "size": "1024x1536", "quality": "low",
            "usage": {"input_tokens": 50, "output_tokens": 544, "total_tokens": 594,
                "input_tokens_details": {"text_tokens": 50, "image_tokens": 0}}}),
    ));
    let a = gpost(
        &gw.url("/v1/images/generations"),
        Some(&key),
        &json!({"model": "img", "prompt": "a cat", "n": 2, "size": "1024x1536", "quality": "low"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    // Two images at low/1024-x-1536/gpt-image-1's $0.016 (LiteLLM 1.110.2's map).
    assert!((cost(&a) - 0.032).abs() < 1e-12, "{}", cost(&a));
}
