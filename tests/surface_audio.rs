//! `POST /v1/audio/transcriptions`, `/v1/audio/translations` and `/v1/audio/speech` (issue 21,
//! items 1 and 4) over real sockets: a 5 MB upload reaches the provider intact with the
//! deployment's model, the answer comes back in the format and content type the provider sent
//! (`srt`, `text`, `json`), speech audio is streamed back as it arrives (its first bytes reach
//! the client while the provider is still sending), errors are OpenAI's shape, and the calls are
//! priced per second of audio and per character spoken in the spend log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde_json::json;
use support::{
    gw::{post_json, send, TestGateway},
    FakeUpstream, Reply,
};

fn config(upstream: &str) -> String {
    format!(
        "model_list:
  - model_name: whisper
    litellm_params:
      model: openai/whisper-1
      api_base: {upstream}/v1
      api_key: sk-up
  - model_name: whisper-az
    litellm_params:
      model: azure/my-whisper
      api_base: {upstream}
      api_key: az-key
      api_version: 2024-06-01
  - model_name: tts
    litellm_params:
      model: openai/tts-1
      api_base: {upstream}/v1
      api_key: sk-up
"
    )
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Bytes) {
    let boundary = "audio-boundary-x1";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if let Some(f) = file {
            body.extend_from_slice(
                format!("; filename=\"{f}\"\r\nContent-Type: audio/mpeg").as_bytes(),
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

async fn post_multipart(url: &str, content_type: &str, body: Bytes) -> support::gw::Answer {
    send(
        http::Request::post(url)
            .header("content-type", content_type)
            .body(Full::new(body))
            .unwrap(),
    )
    .await
}

/// 5 MB of "audio" no byte pattern of the form can be found in by accident.
fn audio(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

const SRT: &str =
    "1\n00:00:00,000 --> 00:00:02,500\nHello\n\n2\n00:00:02,500 --> 00:00:12,000\nworld\n";

#[tokio::test]
async fn a_5_mb_transcription_reaches_the_provider_and_its_srt_comes_back_as_sent() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::raw(200, "text/plain; charset=utf-8", SRT));
    let gw = TestGateway::start(&config(&up.url())).await;
    let file = audio(5 << 20);
    let (ct, body) = multipart(&[
        ("file", Some("speech.mp3"), &file),
        ("model", None, b"whisper"),
        ("response_format", None, b"srt"),
        ("language", None, b"en"),
    ]);
    for path in ["/v1/audio/transcriptions", "/audio/transcriptions"] {
        let r = post_multipart(&gw.url(path), &ct, body.clone()).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(&r.body[..], SRT.as_bytes());
        assert_eq!(
            r.headers.get("content-type").unwrap(),
            "text/plain; charset=utf-8"
        );
        assert!(r.headers.contains_key("x-litellm-call-id"));
        let got = up.last_request().unwrap();
        assert_eq!(got.path(), "/v1/audio/transcriptions");
        assert_eq!(got.header("authorization"), Some("Bearer sk-up"));
        let sent_ct = got.header("content-type").unwrap();
        let boundary = sent_ct
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        let text = &got.body;
        // The file, byte for byte, under its part head; `model` replaced; the other fields kept.
        let file_head =
            b"name=\"file\"; filename=\"speech.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\n";
        let at = find(text, file_head).expect("the file part") + file_head.len();
        assert_eq!(&text[at..at + file.len()], &file[..]);
        assert_eq!(
            &text[at + file.len()..at + file.len() + boundary.len() + 4],
            format!("\r\n--{boundary}").as_bytes()
        );
        assert!(find(text, b"name=\"model\"\r\n\r\nwhisper-1\r\n").is_some());
        assert!(find(text, b"name=\"response_format\"\r\n\r\nsrt\r\n").is_some());
        assert!(find(text, b"name=\"language\"\r\n\r\nen\r\n").is_some());
        assert!(text.ends_with(format!("--{boundary}--\r\n").as_bytes()));
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn translations_on_azure_and_upload_errors() {
    let up = FakeUpstream::start().await;
    let answer = br#"{"text":"Hello world","duration":3.5}"#;
    up.set_default(Reply::raw(200, "application/json", &answer[..]));
    let gw = TestGateway::start(&config(&up.url())).await;
    let (ct, body) = multipart(&[("file", Some("a.mp3"), b"ID3 audio"), ("model", None, b"x")]);
    let r = post_multipart(
        &gw.url("/openai/deployments/whisper-az/audio/translations?api-version=2024-06-01"),
        &ct,
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], &answer[..]);
    assert_eq!(r.headers.get("content-type").unwrap(), "application/json");
    let got = up.last_request().unwrap();
    assert_eq!(
        got.uri.path_and_query().unwrap().as_str(),
        "/openai/deployments/my-whisper/audio/translations?api-version=2024-06-01"
    );
    assert_eq!(got.header("api-key"), Some("az-key"));
    assert!(find(&got.body, b"name=\"model\"\r\n\r\nmy-whisper\r\n").is_some());

    let hits = up.hits();
    let url = gw.url("/v1/audio/transcriptions");
    let (ct, body) = multipart(&[("model", None, b"whisper")]);
    let r = post_multipart(&url, &ct, body).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error()["param"], "file");
    let (ct, body) = multipart(&[("file", Some("a.mp3"), b"x")]);
    let r = post_multipart(&url, &ct, body).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error()["param"], "model");
    let (ct, body) = multipart(&[("file", Some("a.mp3"), b"x"), ("model", None, b"nope")]);
    let r = post_multipart(&url, &ct, body).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error()["code"], "model_not_found");
    assert_eq!(up.hits(), hits);
    // The provider's error: its status, OpenAI's shape.
    up.set_default(Reply::json(
        401,
        json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                         "param": null, "code": "invalid_api_key"}}),
    ));
    let (ct, body) = multipart(&[("file", Some("a.mp3"), b"x"), ("model", None, b"whisper")]);
    let r = post_multipart(&url, &ct, body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error()["code"], "invalid_api_key");
}

#[tokio::test]
async fn speech_is_streamed_back_as_the_provider_sends_it() {
    let up = FakeUpstream::start().await;
    // Five chunks of 1 MiB, 400 ms apart: the provider takes 1.6 s to send them all.
    let chunks: Vec<Bytes> = (0..5u8).map(|i| Bytes::from(vec![i; 1 << 20])).collect();
    let gap = Duration::from_millis(400);
    up.set_default(Reply::chunked(200, "audio/mpeg", chunks.clone(), gap));
    let gw = TestGateway::start(&config(&up.url())).await;
    let body =
        json!({"model": "tts", "input": "Hello world", "voice": "alloy", "metadata": {"a": 1}});
    let started = Instant::now();
    let resp = support::gw::client()
        .request(
            http::Request::post(gw.url("/v1/audio/speech"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("content-type").unwrap(), "audio/mpeg");
    assert!(resp.headers().contains_key("x-litellm-call-id"));
    let mut body_in = resp.into_body();
    let mut got = Vec::new();
    let mut first_at = None;
    while let Some(frame) = body_in.frame().await {
        let frame = frame.unwrap();
        if let Ok(data) = frame.into_data() {
            if first_at.is_none() && !data.is_empty() {
                first_at = Some(started.elapsed());
            }
            got.extend_from_slice(&data);
        }
    }
    let total = started.elapsed();
    let first = first_at.unwrap();
    eprintln!(
        "speech: first bytes after {first:?}, all {} bytes after {total:?}",
        got.len()
    );
    // The first bytes arrive before the provider has sent its second chunk: nothing waited for
    // the whole answer.
    assert!(first < gap, "first bytes after {first:?}");
    assert!(total >= gap * 4, "all after {total:?}");
    assert_eq!(got.len(), 5 << 20);
    assert_eq!(got, chunks.concat());
    let sent = up.last_request().unwrap();
    assert_eq!(sent.path(), "/v1/audio/speech");
    assert_eq!(
        sent.json(),
        json!({"model": "tts-1", "input": "Hello world", "voice": "alloy"})
    );
    // A provider error before any audio: its status in OpenAI's shape.
    up.set_default(Reply::json(
        429,
        json!({"error": {"message": "Rate limit reached", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
    ));
    let r = post_json(&gw.url("/v1/audio/speech"), &body).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.error()["code"], "rate_limit_exceeded");
}

/// A transcription is priced per second of audio (the provider's `duration`, or the last cue of
/// an `srt` answer), speech per character, in the key's spend log.
#[tokio::test]
async fn audio_is_priced_per_second_and_per_character() {
    use governance_common::{get, new_key, post as gpost, Gov, MASTER};
    use llmgate::governance::BuildOptions;
    let up = FakeUpstream::start().await;
    let yaml = format!(
        "model_list:
  - model_name: whisper
    litellm_params:
      model: openai/whisper-1
      api_base: {0}/v1
      api_key: sk-up
    model_info:
      input_cost_per_second: 0.0001
  - model_name: tts
    litellm_params:
      model: openai/tts-1
      api_base: {0}/v1
      api_key: sk-up
      input_cost_per_character: 0.000015
general_settings:
  master_key: {MASTER}
",
        up.url()
    );
    let gw = Gov::start(
        &yaml,
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    let (key, _) = new_key(&base, json!({})).await;
    up.enqueue(Reply::raw(200, "text/plain", SRT));
    let (ct, form) = multipart(&[
        ("file", Some("a.mp3"), b"ID3"),
        ("model", None, b"whisper"),
        ("response_format", None, b"srt"),
    ]);
    let a = send(
        http::Request::post(gw.url("/v1/audio/transcriptions"))
            .header("content-type", ct)
            .header("authorization", format!("Bearer {key}"))
            .body(Full::new(form))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    up.enqueue(Reply::chunked(
        200,
        "audio/mpeg",
        vec![Bytes::from_static(b"ID3"), Bytes::from_static(b"frames")],
        Duration::from_millis(10),
    ));
    let a = gpost(
        &gw.url("/v1/audio/speech"),
        Some(&key),
        &json!({"model": "tts", "input": "Hello world", "voice": "alloy"}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(&a.body[..], b"ID3frames");
    gw.flush().await;
    let rows = get(&gw.url(&format!("/spend/logs?api_key={key}")), Some(MASTER))
        .await
        .json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let spend_of = |group: &str| {
        rows.iter()
            .find(|r| r["model_group"] == group)
            .unwrap_or_else(|| panic!("{group}: {rows:?}"))["spend"]
            .as_f64()
            .unwrap()
    };
    // 12 s of audio at 0.0001 a second; 11 characters at 0.000015.
    assert!((spend_of("whisper") - 0.0012).abs() < 1e-12, "{rows:?}");
    assert!((spend_of("tts") - 0.000_165).abs() < 1e-12, "{rows:?}");
}

/// The official OpenAI Python SDK: `audio.transcriptions.create` and
/// `audio.translations.create` with a 3 MB upload, and `audio.speech` read as a stream.
#[tokio::test]
async fn official_openai_python_sdk_audio() {
    use support::process::{python, run_sdk_script};
    let python = python();
    let stt = FakeUpstream::start().await;
    stt.set_default(Reply::json(200, json!({"text": "Hello world"})));
    let tts = FakeUpstream::start().await;
    let chunks: Vec<Bytes> = (0..4u8).map(|i| Bytes::from(vec![i; 512 << 10])).collect();
    tts.set_default(Reply::chunked(
        200,
        "audio/mpeg",
        chunks,
        Duration::from_millis(50),
    ));
    let yaml = format!(
        "model_list:\n  - model_name: whisper\n    litellm_params:\n      model: openai/whisper-1\n      api_base: {}/v1\n      api_key: sk-up\n  - model_name: tts\n    litellm_params:\n      model: openai/tts-1\n      api_base: {}/v1\n      api_key: sk-up\n",
        stt.url(),
        tts.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let base = gw.url("/v1");
    let upload = (3 << 20).to_string();
    let speech = (2 << 20).to_string();
    let (stdout, stderr) = run_sdk_script(
        &python,
        "media_sdk_check.py",
        [
            "--base-url",
            &base,
            "--api-key",
            "sk-test",
            "--only",
            "audio",
            "--audio-model",
            "whisper",
            "--speech-model",
            "tts",
            "--speech-bytes",
            &speech,
            "--upload-bytes",
            &upload,
        ],
        String::new,
    )
    .await;
    for check in ["ok: transcriptions", "ok: translations", "ok: speech"] {
        assert!(
            stdout.contains(check),
            "missing `{check}`:\n{stdout}\n{stderr}"
        );
    }
    let sent = stt.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].path(), "/v1/audio/transcriptions");
    assert_eq!(sent[1].path(), "/v1/audio/translations");
    for s in &sent {
        assert!(s.body.len() > 3 << 20, "{}", s.body.len());
        assert!(find(&s.body, b"name=\"model\"\r\n\r\nwhisper-1\r\n").is_some());
    }
    assert_eq!(tts.last_request().unwrap().json()["model"], "tts-1");
}
