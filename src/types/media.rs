//! Images and audio: `POST /v1/images/generations` and `/v1/audio/speech` (JSON bodies), and
//! `POST /v1/images/edits`, `/v1/audio/transcriptions`, `/v1/audio/translations` (multipart
//! uploads).
//!
//! A JSON body is typed where a layer or a translation reads a field (the model, the prompt or
//! text for the input estimate, `n` and `size` for the price per image) and relayed byte for byte
//! to an OpenAI-format upstream with `model` replaced. A multipart upload is parsed once at the
//! edge with `multer`: its parts are kept as slices of one buffer (the file is in memory once),
//! the small text fields the gateway reads (`model`, `response_format`, `prompt`) are read from
//! them, and each upstream attempt writes the parts again with `model` replaced.

use std::fmt;

use bytes::{BufMut as _, Bytes, BytesMut};
use futures_util::FutureExt as _;

use super::{request::OperationKind, wire::wire_object};
use crate::error::LlmError;

wire_object! {
    /// The body of `POST /v1/images/generations`.
    pub struct ImagesRequest {
        req /// The model group.
        model: String = "model",
        req /// What to draw.
        prompt: String = "prompt",
        opt /// Number of images (OpenAI's default: 1).
        n: u32 = "n",
        opt /// `1024x1024`, `1792x1024`, …, or `auto`.
        size: String = "size",
        opt /// `standard`, `hd`, `low`, `medium`, `high`, `auto`.
        quality: String = "quality",
        opt /// `url` or `b64_json`.
        response_format: String = "response_format",
        opt /// End-user id.
        user: String = "user",
        opt /// LiteLLM request metadata; never sent upstream.
        metadata: serde_json::Value = "metadata",
    }
}

impl ImagesRequest {
    /// Images asked for (at least 1).
    #[must_use]
    pub fn count(&self) -> u64 {
        u64::from(self.n.unwrap_or(1).max(1))
    }

    /// The prompt's tokens, estimated from its bytes.
    #[must_use]
    pub fn estimate_tokens(&self) -> u64 {
        super::usage::estimate_tokens(self.prompt.len())
    }
}

wire_object! {
    /// The body of `POST /v1/audio/speech`.
    pub struct SpeechRequest {
        req /// The model group.
        model: String = "model",
        req /// The text to speak.
        input: String = "input",
        opt /// The voice.
        voice: serde_json::Value = "voice",
        opt /// `mp3`, `opus`, `aac`, `flac`, `wav`, `pcm`.
        response_format: String = "response_format",
        opt /// End-user id (not OpenAI's; LiteLLM reads it).
        user: String = "user",
        opt /// LiteLLM request metadata; never sent upstream.
        metadata: serde_json::Value = "metadata",
    }
}

impl SpeechRequest {
    /// Characters of the text to speak (what a price per character counts).
    #[must_use]
    pub fn characters(&self) -> u64 {
        u64::try_from(self.input.chars().count()).unwrap_or(u64::MAX)
    }

    /// The text's tokens, estimated from its bytes.
    #[must_use]
    pub fn estimate_tokens(&self) -> u64 {
        super::usage::estimate_tokens(self.input.len())
    }
}

/// `WxH` (`1024x1024`, or LiteLLM's `1024-x-1024`) as its width and height.
#[must_use]
pub fn parse_size(size: &str) -> Option<(u64, u64)> {
    let (w, h) = size.split_once("-x-").or_else(|| size.split_once('x'))?;
    let (w, h) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    (w > 0 && h > 0).then_some((w, h))
}

/// The quality an image was asked for, as the price map keys it (`hd/1024-x-1792/dall-e-3`,
/// `low/1024-x-1024/gpt-image-1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageQuality {
    /// DALL·E's default.
    Standard,
    /// DALL·E 3's high quality.
    Hd,
    /// gpt-image's low quality.
    Low,
    /// gpt-image's medium quality.
    Medium,
    /// gpt-image's high quality.
    High,
}

impl ImageQuality {
    /// The quality named `s` (`auto` and unknown names are `None`).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "standard" => Self::Standard,
            "hd" => Self::Hd,
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            _ => return None,
        })
    }

    /// The name the price map uses.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Hd => "hd",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// The size and quality of the images a call made: what size- and quality-specific prices are
/// looked up by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageTier {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The quality asked for, when one the price map knows.
    pub quality: Option<ImageQuality>,
}

impl ImageTier {
    /// The tier of `size` (`1024x1792`; none or `auto`: OpenAI's default 1024×1024) and
    /// `quality`; `None` for a size that is not `WxH`.
    #[must_use]
    pub fn new(size: Option<&str>, quality: Option<&str>) -> Option<Self> {
        let (width, height) = match size.map(str::trim) {
            None | Some("auto" | "") => (1024, 1024),
            Some(s) => parse_size(s)?,
        };
        Some(Self {
            width: u32::try_from(width).ok()?,
            height: u32::try_from(height).ok()?,
            quality: quality.and_then(ImageQuality::parse),
        })
    }

    /// The size as the price map writes it: `1024-x-1792`.
    #[must_use]
    pub fn size_key(&self) -> String {
        format!("{}-x-{}", self.width, self.height)
    }
}

/// One part of a multipart upload.
#[derive(Clone)]
pub struct Part {
    /// The form field's name (`file`, `image`, `image[]`, `model`, …).
    pub name: String,
    /// The file name, for a file part.
    pub file_name: Option<String>,
    /// The part's content type, when it states one.
    pub content_type: Option<String>,
    /// The part's bytes (a slice of the one buffer the upload was parsed into).
    pub data: Bytes,
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Part")
            .field("name", &self.name)
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("len", &self.data.len())
            .finish()
    }
}

/// A multipart upload: `POST /v1/images/edits`, `/v1/audio/transcriptions` or
/// `/v1/audio/translations`.
#[derive(Clone, Debug)]
pub struct UploadRequest {
    /// Which of the three operations it is.
    pub kind: OperationKind,
    /// The model group (the `model` field).
    pub model: String,
    /// Every part but `model`, in the order sent.
    pub parts: Vec<Part>,
}

/// The parts each upload must have besides `model`: the file(s) it is about.
fn required_file(kind: OperationKind) -> &'static [&'static str] {
    match kind {
        OperationKind::ImageEdits => &["image", "image[]"],
        _ => &["file"],
    }
}

/// Text fields larger than this are not read as text (a file sent under a text field's name).
const MAX_TEXT_FIELD: usize = 64 << 10;

impl UploadRequest {
    /// Parses `body`, a `multipart/form-data` body whose `Content-Type` is `content_type`. A
    /// missing `model` or file part, a body that is not multipart, or a malformed one is a 400.
    pub fn parse(kind: OperationKind, content_type: &str, body: Bytes) -> Result<Self, LlmError> {
        let boundary = multer::parse_boundary(content_type).map_err(|_| {
            LlmError::bad_request(format!(
                "the body must be multipart/form-data with a boundary (got Content-Type `{}`)",
                content_type.chars().take(100).collect::<String>()
            ))
        })?;
        let stream = futures_util::stream::once(std::future::ready(Ok::<_, std::io::Error>(body)));
        let mut form = multer::Multipart::new(stream, boundary);
        let malformed = |e: &dyn fmt::Display| {
            LlmError::bad_request(format!("the multipart body is malformed: {e}"))
        };
        // The whole body is in memory: every future is ready at once.
        let pending = || LlmError::internal("the multipart body was not read at once");
        let mut model = None;
        let mut parts = Vec::new();
        loop {
            let next = form.next_field().now_or_never().ok_or_else(pending)?;
            let Some(field) = next.map_err(|e| malformed(&e))? else {
                break;
            };
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(ToString::to_string);
            let data = field
                .bytes()
                .now_or_never()
                .ok_or_else(pending)?
                .map_err(|e| malformed(&e))?;
            if name == "model" && file_name.is_none() {
                let text = std::str::from_utf8(&data)
                    .map_err(|_| LlmError::bad_request("model: not UTF-8").with_param("model"))?;
                model = Some(text.trim().to_owned());
                continue;
            }
            parts.push(Part {
                name,
                file_name,
                content_type,
                data,
            });
        }
        let model = model
            .filter(|m| !m.is_empty())
            .ok_or_else(|| LlmError::bad_request("model: Field required").with_param("model"))?;
        let wanted = required_file(kind);
        if !parts.iter().any(|p| wanted.contains(&p.name.as_str())) {
            return Err(
                LlmError::bad_request(format!("{}: Field required", wanted[0]))
                    .with_param(wanted[0]),
            );
        }
        Ok(Self { kind, model, parts })
    }

    /// A text field's value (the first part of that name that is no file).
    #[must_use]
    pub fn text(&self, name: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| p.name == name && p.file_name.is_none() && p.data.len() <= MAX_TEXT_FIELD)
            .and_then(|p| std::str::from_utf8(&p.data).ok())
    }

    /// The `response_format` asked for (`json` when none).
    #[must_use]
    pub fn response_format(&self) -> &str {
        self.text("response_format").unwrap_or("json")
    }

    /// Bytes of all file parts.
    #[must_use]
    pub fn file_bytes(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| p.file_name.is_some())
            .map(|p| p.data.len())
            .sum()
    }

    /// Images an edit asks for (`n`, at least 1).
    #[must_use]
    pub fn count(&self) -> u64 {
        self.text("n")
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(1)
            .max(1)
    }

    /// The prompt's tokens (an edit's or a transcription's `prompt`), estimated.
    #[must_use]
    pub fn estimate_tokens(&self) -> u64 {
        super::usage::estimate_tokens(self.text("prompt").map_or(0, str::len))
    }

    /// The body sent upstream: `model` first (as `model`), then every part as it came, under
    /// `boundary`. Its `Content-Type` is [`content_type`].
    #[must_use]
    pub fn encode(&self, model: &str, boundary: &str) -> Bytes {
        let size: usize = self
            .parts
            .iter()
            .map(|p| p.data.len() + p.name.len() + 160)
            .sum();
        let mut out = BytesMut::with_capacity(size + model.len() + 256);
        let head = |out: &mut BytesMut, name: &str, file: Option<&str>, ct: Option<&str>| {
            out.put_slice(b"--");
            out.put_slice(boundary.as_bytes());
            out.put_slice(b"\r\nContent-Disposition: form-data; name=\"");
            put_quoted(out, name);
            out.put_u8(b'"');
            if let Some(file) = file {
                out.put_slice(b"; filename=\"");
                put_quoted(out, file);
                out.put_u8(b'"');
            }
            out.put_slice(b"\r\n");
            if let Some(ct) = ct.filter(|c| !c.contains(['\r', '\n'])) {
                out.put_slice(b"Content-Type: ");
                out.put_slice(ct.as_bytes());
                out.put_slice(b"\r\n");
            }
            out.put_slice(b"\r\n");
        };
        head(&mut out, "model", None, None);
        out.put_slice(model.as_bytes());
        out.put_slice(b"\r\n");
        for p in &self.parts {
            head(
                &mut out,
                &p.name,
                p.file_name.as_deref(),
                p.content_type.as_deref(),
            );
            out.put_slice(&p.data);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"--");
        out.put_slice(boundary.as_bytes());
        out.put_slice(b"--\r\n");
        out.freeze()
    }
}

/// A quoted-string value of a `Content-Disposition` parameter: `"`, CR and LF percent-encoded
/// (what browsers do), so no name can end the header or the quote.
fn put_quoted(out: &mut BytesMut, s: &str) {
    for b in s.bytes() {
        match b {
            b'"' => out.put_slice(b"%22"),
            b'\r' => out.put_slice(b"%0D"),
            b'\n' => out.put_slice(b"%0A"),
            b => out.put_u8(b),
        }
    }
}

/// The `Content-Type` of a body written by [`UploadRequest::encode`] with `boundary`.
#[must_use]
pub fn content_type(boundary: &str) -> String {
    format!("multipart/form-data; boundary={boundary}")
}

/// A fresh boundary: random, so no file plausibly contains it.
#[must_use]
pub fn new_boundary() -> String {
    format!(
        "llmgate-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Bytes) {
        let mut body = Vec::new();
        for (name, file, data) in parts {
            body.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"");
            body.extend_from_slice(name.as_bytes());
            body.push(b'"');
            if let Some(f) = file {
                body.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
            }
            body.extend_from_slice(b"\r\n");
            if file.is_some() {
                body.extend_from_slice(b"Content-Type: audio/wav\r\n");
            }
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        (
            "multipart/form-data; boundary=XyZ".to_owned(),
            Bytes::from(body),
        )
    }

    #[test]
    fn parses_an_upload_and_writes_it_again_with_the_model_replaced() {
        let (ct, body) = form(&[
            ("file", Some("a b.wav"), b"RIFF\x00\x01binary\r\n--X"),
            ("model", None, b"whisper"),
            ("response_format", None, b"srt"),
        ]);
        let u = UploadRequest::parse(OperationKind::AudioTranscriptions, &ct, body).unwrap();
        assert_eq!(u.model, "whisper");
        assert_eq!(u.response_format(), "srt");
        assert_eq!(u.file_bytes(), 17);
        assert_eq!(u.parts.len(), 2);
        let out = u.encode("whisper-1", "BND");
        let again = UploadRequest::parse(
            OperationKind::AudioTranscriptions,
            &content_type("BND"),
            out,
        )
        .unwrap();
        assert_eq!(again.model, "whisper-1");
        assert_eq!(again.parts[0].data, &b"RIFF\x00\x01binary\r\n--X"[..]);
        assert_eq!(again.parts[0].file_name.as_deref(), Some("a b.wav"));
        let mut q = BytesMut::new();
        put_quoted(&mut q, "a\"b\r\nc");
        assert_eq!(&q[..], b"a%22b%0D%0Ac");
        assert_eq!(again.parts[0].content_type.as_deref(), Some("audio/wav"));
        assert_eq!(again.response_format(), "srt");
    }

    #[test]
    fn refuses_an_upload_without_model_or_file_or_boundary() {
        let (ct, body) = form(&[("file", Some("a.wav"), b"x")]);
        let e = UploadRequest::parse(OperationKind::AudioTranscriptions, &ct, body).unwrap_err();
        assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("model"), "{e}");
        let (ct, body) = form(&[("model", None, b"m"), ("prompt", None, b"p")]);
        let e = UploadRequest::parse(OperationKind::ImageEdits, &ct, body.clone()).unwrap_err();
        assert!(e.to_string().contains("image"), "{e}");
        let e = UploadRequest::parse(OperationKind::AudioTranslations, &ct, body).unwrap_err();
        assert!(e.to_string().contains("file"), "{e}");
        let e = UploadRequest::parse(
            OperationKind::ImageEdits,
            "application/json",
            Bytes::from_static(b"{}"),
        )
        .unwrap_err();
        assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
        // Truncated: no closing boundary.
        let e = UploadRequest::parse(
            OperationKind::ImageEdits,
            "multipart/form-data; boundary=XyZ",
            Bytes::from_static(b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm"),
        )
        .unwrap_err();
        assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
        let (ct, body) = form(&[("model", None, b"m"), ("image[]", Some("i.png"), b"png")]);
        let u = UploadRequest::parse(OperationKind::ImageEdits, &ct, body).unwrap();
        assert_eq!(u.count(), 1);
    }

    #[test]
    fn reads_sizes_and_counts() {
        assert_eq!(parse_size("1024x1792"), Some((1024, 1792)));
        assert_eq!(parse_size("512-x-512"), Some((512, 512)));
        assert_eq!(parse_size("auto"), None);
        assert_eq!(parse_size("0x5"), None);
        let r: ImagesRequest = serde_json::from_str(r#"{"model":"m","prompt":"p","n":3}"#).unwrap();
        assert_eq!(r.count(), 3);
        let s: SpeechRequest =
            serde_json::from_str(r#"{"model":"m","input":"héllo","voice":"alloy"}"#).unwrap();
        assert_eq!(s.characters(), 5);
    }
}
