//! Images and audio on OpenAI-format hosts (OpenAI, Azure, any OpenAI-compatible server behind
//! `api_base`): `images/generations`, `images/edits`, `audio/transcriptions`,
//! `audio/translations` and `audio/speech`.
//!
//! - A JSON body (generations, speech) is the client's bytes with `model` replaced and the
//!   gateway controls removed.
//! - A multipart upload (edits, transcriptions, translations) is written again from its parts
//!   with `model` replaced ([`media::UploadRequest::encode`]), under a fresh boundary.
//! - An image answer is relayed byte for byte, with the images it holds (and gpt-image's token
//!   usage) stated for the price per image.
//! - A transcription or translation answer is relayed as the provider sent it (`json`,
//!   `verbose_json`, `text`, `srt`, `vtt`), with its status and content type; the seconds of
//!   audio are read from the answer (`duration`, `usage.seconds`, or the last cue's end of an
//!   `srt`/`vtt` answer) for the price per second.
//! - A speech answer (audio bytes) is streamed back chunk by chunk as it arrives, with the
//!   provider's content type; never read whole.

use bytes::Bytes;
use http::{header::CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

use super::{encode::relayed_body, invalid_upstream_json, resolved_head};
use crate::{
    error::{ErrorKind, LlmError},
    provider::{resolve::Endpoint, ByteStream, Deployment},
    types::{
        media,
        passthrough::{relayed_headers, RelayHead, RelayedHead},
        EventStream, JsonBody, LlmRequest, LlmResponse, Operation, OperationKind, StreamEvent,
        TokenUsage,
    },
};

/// The path of an operation under an OpenAI-format base URL (`None`: not a media operation).
#[must_use]
pub fn path(kind: OperationKind) -> Option<&'static str> {
    Some(match kind {
        OperationKind::ImageGenerations => "images/generations",
        OperationKind::ImageEdits => "images/edits",
        OperationKind::AudioTranscriptions => "audio/transcriptions",
        OperationKind::AudioTranslations => "audio/translations",
        OperationKind::AudioSpeech => "audio/speech",
        _ => return None,
    })
}

/// Whether `kind` is one of the media operations.
#[must_use]
pub fn is_media(kind: OperationKind) -> bool {
    path(kind).is_some()
}

/// The upstream body of a media request with `model` as the model, and its content type when it
/// is not JSON (a multipart upload).
pub fn body(req: &LlmRequest, model: &str) -> Result<(Bytes, Option<HeaderValue>), LlmError> {
    let raw = req.raw_body().map(|b| &b[..]);
    match &req.op {
        Operation::ImageGenerations(i) => Ok((relayed_body(&**i, raw, model, 256)?, None)),
        Operation::AudioSpeech(s) => Ok((relayed_body(&**s, raw, model, 256)?, None)),
        Operation::Upload(u) => {
            let boundary = media::new_boundary();
            let ct = HeaderValue::from_str(&media::content_type(&boundary))
                .map_err(|_| LlmError::internal("a multipart boundary that is no header value"))?;
            Ok((u.encode(model, &boundary), Some(ct)))
        }
        _ => Err(LlmError::internal("not a media request")),
    }
}

/// The endpoint of a media operation beside a deployment's chat endpoint: `…/chat/completions`
/// becomes `…/images/generations` (the query, such as Azure's `api-version`, kept).
pub fn sibling(chat: &Endpoint, kind: OperationKind) -> Result<Endpoint, LlmError> {
    let tail = path(kind).ok_or_else(|| LlmError::internal("not a media request"))?;
    let uri = chat.uri();
    let p = uri.path();
    let base = p.strip_suffix("chat/completions").unwrap_or(p);
    let mut url = String::with_capacity(base.len() + 64);
    if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
        url.push_str(scheme);
        url.push_str("://");
        url.push_str(authority.as_str());
    }
    url.push_str(base);
    if !url.ends_with('/') {
        url.push('/');
    }
    url.push_str(tail);
    if let Some(q) = uri.query() {
        url.push('?');
        url.push_str(q);
    }
    Endpoint::parse(&url)
}

/// The upstream request of a media operation on an OpenAI-format host (`family`'s resolved
/// endpoints and credential; `model` as sent upstream).
pub(crate) fn encode(
    family: &str,
    req: &LlmRequest,
    dep: &Deployment,
    model: &str,
) -> Result<http::Request<Bytes>, LlmError> {
    let r = dep.resolved(family);
    let endpoint = sibling(crate::provider::resolve::reached(&r.chat)?, req.kind())?;
    let (body, content_type) = body(req, model)?;
    let mut head = resolved_head(&endpoint, &r)?;
    if let Some(ct) = content_type {
        head.headers_mut().insert(CONTENT_TYPE, ct);
    }
    r.add_credential(head.headers_mut())?;
    Ok(head.map(|()| body))
}

#[derive(Deserialize)]
struct ImageFacts {
    #[serde(default)]
    data: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    usage: Option<ImageUsage>,
    #[serde(default)]
    size: Option<String>,
    /// gpt-image's answer states the quality it drew at.
    #[serde(default)]
    quality: Option<String>,
}

/// gpt-image's usage: tokens in and out.
#[derive(Deserialize)]
struct ImageUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
}

/// An image answer (generation or edit), relayed as its bytes with the images it holds (and the
/// pixels of each, from the answer's or the request's `size`) and its token usage stated.
pub fn decode_images(req: &LlmRequest, body: &Bytes) -> Result<LlmResponse, LlmError> {
    let facts: ImageFacts =
        serde_json::from_slice(body).map_err(|e| invalid_upstream_json("image answer", &e))?;
    let Some(data) = facts.data else {
        return Err(LlmError::new(
            ErrorKind::InternalServer,
            "the provider returned an invalid image answer: no data",
        )
        .with_status(http::StatusCode::BAD_GATEWAY));
    };
    let (asked_size, asked_quality) = match &req.op {
        Operation::ImageGenerations(i) => (i.size.clone(), i.quality.clone()),
        Operation::Upload(u) => (
            u.text("size").map(str::to_owned),
            u.text("quality").map(str::to_owned),
        ),
        _ => (None, None),
    };
    let pixels = facts
        .size
        .as_deref()
        .or(asked_size.as_deref())
        .and_then(media::parse_size)
        // OpenAI's default size.
        .map_or(1024 * 1024, |(w, h)| w.saturating_mul(h));
    let mut usage = facts.usage.map_or_else(TokenUsage::default, |u| {
        let (i, o) = (u.input_tokens.unwrap_or(0), u.output_tokens.unwrap_or(0));
        TokenUsage {
            total: u.total_tokens.unwrap_or(i.saturating_add(o)),
            ..TokenUsage::new(i, o)
        }
    });
    usage.images = u64::try_from(data.len()).unwrap_or(u64::MAX);
    usage.image_pixels = pixels;
    usage.image_tier = media::ImageTier::new(
        facts.size.as_deref().or(asked_size.as_deref()),
        facts.quality.as_deref().or(asked_quality.as_deref()),
    );
    Ok(LlmResponse::json(
        JsonBody::new(body.clone()).with_usage(Some(usage)),
    ))
}

#[derive(Deserialize)]
struct TranscriptionFacts {
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    usage: Option<TranscriptionUsage>,
}

#[derive(Deserialize)]
struct TranscriptionUsage {
    #[serde(default)]
    seconds: Option<f64>,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

/// The end of the last cue of an `srt` or `vtt` answer (`00:01:02,500 --> 00:01:05,250`), in
/// milliseconds.
fn last_cue_end_ms(text: &str) -> Option<u64> {
    let line = text.lines().rev().find(|l| l.contains("-->"))?;
    let end = line.split("-->").nth(1)?.split_whitespace().next()?;
    let mut parts = end.rsplitn(2, [',', '.']);
    let ms: u64 = parts.next()?.parse().ok()?;
    let hms = parts.next()?;
    let mut secs = 0_u64;
    for f in hms.split(':') {
        secs = secs.checked_mul(60)?.checked_add(f.parse().ok()?)?;
    }
    secs.checked_mul(1000)?.checked_add(ms)
}

/// The usage a transcription or translation answer states: the seconds of audio (LiteLLM's
/// `duration` of `verbose_json`, `usage.seconds` of `json`, or the last cue's end of `srt` and
/// `vtt`), and tokens when the model counts them (`gpt-4o-transcribe`).
fn transcription_usage(body: &[u8]) -> TokenUsage {
    let to_ms = |s: f64| {
        if s.is_finite() && s > 0.0 {
            // Seconds of audio: far below u64's range.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let ms = (s * 1000.0).round() as u64;
            ms
        } else {
            0
        }
    };
    if let Ok(f) = serde_json::from_slice::<TranscriptionFacts>(body) {
        let u = f.usage.as_ref();
        let mut usage = TokenUsage::new(
            u.and_then(|u| u.input_tokens).unwrap_or(0),
            u.and_then(|u| u.output_tokens).unwrap_or(0),
        );
        usage.audio_ms = f
            .duration
            .or_else(|| u.and_then(|u| u.seconds))
            .map_or(0, to_ms);
        return usage;
    }
    let mut usage = TokenUsage::default();
    if let Ok(text) = std::str::from_utf8(body) {
        usage.audio_ms = last_cue_end_ms(text).unwrap_or(0);
    }
    usage
}

/// A transcription or translation answer: relayed as sent (its status and content type through
/// the request's [`RelayHead`]), as one event stating the seconds of audio.
pub fn decode_transcription(
    req: &LlmRequest,
    resp: http::Response<Bytes>,
) -> Result<LlmResponse, LlmError> {
    let (parts, body) = resp.into_parts();
    set_relay_head(req, &parts);
    let mut usage = transcription_usage(&body);
    // No duration stated (`text`), or only the last cue's end (`srt`, `vtt`): the uploaded
    // file's own length, read from its headers, when they say.
    if usage.audio_ms == 0 || !body.starts_with(b"{") {
        let file = match &req.op {
            Operation::Upload(u) => u.parts.iter().find(|p| p.name == "file"),
            _ => None,
        };
        if let Some(ms) = file.and_then(|f| crate::provider::audio::duration_ms(&f.data)) {
            usage.audio_ms = ms;
        }
    }
    let event = StreamEvent::new(body).with_usage(Some(usage)).final_event();
    let events: EventStream = Box::pin(futures_util::stream::iter([Ok(event)]));
    Ok(LlmResponse::events(events))
}

/// Leaves the upstream's status and headers where the edge relays them from.
fn set_relay_head(req: &LlmRequest, parts: &http::response::Parts) {
    if let Some(slot) = req.extensions.get::<RelayHead>() {
        slot.set(RelayedHead {
            status: parts.status,
            headers: relayed_headers(&parts.headers),
        });
    }
}

/// A speech answer: the audio bytes as they arrive, each chunk one event (the first states the
/// characters spoken, what a price per character counts), with the provider's status and content
/// type relayed.
pub fn speech_events(
    req: &LlmRequest,
    parts: &http::response::Parts,
    body: ByteStream,
) -> EventStream {
    use futures_util::StreamExt as _;
    set_relay_head(req, parts);
    let mut usage = TokenUsage::new(req.op.estimate_input_tokens(), 0);
    if let Operation::AudioSpeech(s) = &req.op {
        usage.characters = s.characters();
    }
    let mut first = Some(usage);
    Box::pin(
        body.map(move |chunk| chunk.map(|bytes| StreamEvent::new(bytes).with_usage(first.take()))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_seconds_of_audio_from_every_answer_format() {
        assert_eq!(
            transcription_usage(br#"{"text":"hi","duration":3.52}"#).audio_ms,
            3520
        );
        let u = transcription_usage(br#"{"text":"hi","usage":{"type":"duration","seconds":7}}"#);
        assert_eq!(u.audio_ms, 7000);
        let u = transcription_usage(
            br#"{"text":"hi","usage":{"type":"tokens","input_tokens":20,"output_tokens":5}}"#,
        );
        assert_eq!((u.input, u.output, u.audio_ms), (20, 5, 0));
        let srt =
            b"1\n00:00:00,000 --> 00:00:02,000\nHello\n\n2\n00:00:02,000 --> 00:01:03,250\nworld\n";
        assert_eq!(transcription_usage(srt).audio_ms, 63_250);
        let vtt = b"WEBVTT\n\n00:00:00.000 --> 00:00:04.500\nHello\n";
        assert_eq!(transcription_usage(vtt).audio_ms, 4500);
        assert_eq!(transcription_usage(b"just text").audio_ms, 0);
        assert_eq!(transcription_usage(b"--> 99:99:x").audio_ms, 0);
        assert_eq!(transcription_usage(&[0xff, 0xfe]).audio_ms, 0);
    }

    #[test]
    fn counts_images_and_refuses_what_is_not_an_image_answer() {
        let req = LlmRequest::image_generations_from_bytes(
            serde_json::from_str(r#"{"model":"m","prompt":"p","size":"1792x1024"}"#).unwrap(),
            Bytes::new(),
        );
        let body = Bytes::from_static(br#"{"created":1,"data":[{"url":"u"},{"url":"v"}]}"#);
        let r = decode_images(&req, &body).unwrap();
        let u = r.token_usage().unwrap();
        assert_eq!((u.images, u.image_pixels), (2, 1792 * 1024));
        let body = Bytes::from_static(
            br#"{"data":[{"b64_json":"x"}],"usage":{"input_tokens":10,"output_tokens":4160}}"#,
        );
        let u = decode_images(&req, &body).unwrap().token_usage().unwrap();
        assert_eq!((u.input, u.output, u.images), (10, 4160, 1));
        assert!(decode_images(&req, &Bytes::from_static(b"{}")).is_err());
        assert!(decode_images(&req, &Bytes::from_static(b"<html>")).is_err());
    }

    /// An OpenAI-compatible host (`groq/`) gets a transcription at its own base URL, as a
    /// multipart body with its model, and its key as a bearer token.
    #[test]
    fn compatible_hosts_take_uploads_at_their_base_url() {
        let groq = crate::provider::lookup("groq").unwrap();
        let dep = Deployment::new("w", "groq/whisper-large-v3").with_api_key("gk");
        let body = Bytes::from_static(
            b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nw\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\r\nID3\r\n--b--\r\n",
        );
        let upload = media::UploadRequest::parse(
            OperationKind::AudioTranscriptions,
            "multipart/form-data; boundary=b",
            body,
        )
        .unwrap();
        let req = LlmRequest::upload(upload);
        let out = groq.encode(&req, &dep).unwrap();
        assert_eq!(
            out.uri().to_string(),
            "https://api.groq.com/openai/v1/audio/transcriptions"
        );
        assert_eq!(out.headers()["authorization"], "Bearer gk");
        let ct = out.headers()["content-type"].to_str().unwrap();
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        let again =
            media::UploadRequest::parse(OperationKind::AudioTranscriptions, ct, out.body().clone())
                .unwrap();
        assert_eq!(again.model, "whisper-large-v3");
        assert!(boundary.starts_with("llmgate-"));
        // A family without the operation refuses it before anything is sent.
        let anthropic = crate::provider::lookup("anthropic").unwrap();
        assert!(!anthropic.supports(OperationKind::AudioTranscriptions));
    }

    #[test]
    fn media_endpoints_sit_beside_the_chat_endpoint() {
        let chat = Endpoint::parse(
            "https://r.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21",
        )
        .unwrap();
        let e = sibling(&chat, OperationKind::ImageGenerations).unwrap();
        assert_eq!(
            e.uri().to_string(),
            "https://r.openai.azure.com/openai/deployments/d/images/generations?api-version=2024-10-21"
        );
        let chat = Endpoint::parse("http://h:1/v1/chat/completions").unwrap();
        let e = sibling(&chat, OperationKind::AudioSpeech).unwrap();
        assert_eq!(e.uri().to_string(), "http://h:1/v1/audio/speech");
        assert!(sibling(&chat, OperationKind::Chat).is_err());
    }
}
