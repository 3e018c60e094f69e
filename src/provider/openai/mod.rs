//! `openai/`: the OpenAI API, and any OpenAI-compatible server through `api_base`.
//!
//! OpenAI is the native format: the request body is forwarded as the client sent it, with `model`
//! rewritten to the deployment's model and gateway controls (LiteLLM's `metadata`, `mock_response`,
//! `fallbacks`, …) removed; responses, chunks and error objects are relayed unchanged.
//!
//! When the deployment sets no `api_base` / `api_key`, `OPENAI_BASE_URL` (or `OPENAI_API_BASE`) and
//! `OPENAI_API_KEY` apply, read when the deployment is built (see
//! [`compat::OPENAI`](super::compat::OPENAI)).
//!
//! The functions here are reused by every OpenAI-shaped family (Azure, the OpenAI-compatible hosts).

pub mod completions;
mod encode;
mod error;
pub mod media;
pub(crate) mod moderations;
pub(crate) mod passthrough;
mod responses;
mod stream;

use bytes::Bytes;
use http::StatusCode;

pub use self::{
    encode::{
        chat_body, completions_body, embeddings_body, join_url, json_request, moderations_body,
        responses_body,
    },
    error::{classify_openai_error, error_from_object, parse_error_object},
    responses::{decode_response, responses_events},
    stream::OpenAiStreamMapper,
};
pub(crate) use self::{
    encode::{resolved_head, splice_model},
    responses::{
        decode_object, decode_relayed, object_request, relayed_events, sibling_endpoint, Remember,
    },
};
use super::{sse::SseStream, ByteStream, Deployment, Provider};
use crate::{
    error::{ErrorKind, LlmError},
    types::{embeddings::EmbeddingsResponse, ChatStream, LlmRequest, LlmResponse, Operation},
};

/// The `decode`, `decode_stream` and `classify` of a provider whose answers are OpenAI's wire format
/// (OpenAI, Azure, the OpenAI-compatible hosts): bodies, SSE chunks and error objects relayed as
/// sent. Used inside an `impl Provider` block.
macro_rules! openai_shaped_responses {
    () => {
        fn decode(
            &self,
            req: &$crate::types::LlmRequest,
            resp: ::http::Response<::bytes::Bytes>,
            _dep: &$crate::provider::Deployment,
        ) -> Result<$crate::types::LlmResponse, $crate::error::LlmError> {
            // A transcription is relayed with its status and content type (text, srt, vtt, …).
            match req.kind() {
                $crate::types::OperationKind::AudioTranscriptions
                | $crate::types::OperationKind::AudioTranslations => {
                    $crate::provider::openai::media::decode_transcription(req, resp)
                }
                // A relayed Responses answer: its id recorded for the caller.
                $crate::types::OperationKind::Responses => {
                    $crate::provider::openai::decode_relayed(
                        resp.body(),
                        $crate::provider::openai::Remember::of(req, _dep),
                    )
                }
                $crate::types::OperationKind::ResponseObject => {
                    Ok($crate::provider::openai::decode_object(resp.body()))
                }
                _ => $crate::provider::openai::decode_openai(req, resp.body()),
            }
        }

        fn decode_stream(
            &self,
            req: &$crate::types::LlmRequest,
            _parts: ::http::response::Parts,
            body: $crate::provider::ByteStream,
            _dep: &$crate::provider::Deployment,
        ) -> Result<$crate::types::ChatStream, $crate::error::LlmError> {
            Ok($crate::provider::openai::openai_stream(
                self.name(),
                req,
                body,
            ))
        }

        fn classify(
            &self,
            status: ::http::StatusCode,
            headers: &::http::HeaderMap,
            body: &[u8],
            _dep: &$crate::provider::Deployment,
        ) -> $crate::error::LlmError {
            $crate::provider::openai::classify_openai_error(self.name(), status, headers, body)
        }

        fn decode_events(
            &self,
            req: &$crate::types::LlmRequest,
            parts: ::http::response::Parts,
            body: $crate::provider::ByteStream,
            _dep: &$crate::provider::Deployment,
        ) -> Result<$crate::types::EventStream, $crate::error::LlmError> {
            // Legacy text completions stream OpenAI's `data:` chunks; the Responses API its
            // named events.
            match req.kind() {
                $crate::types::OperationKind::Completions => {
                    $crate::provider::openai::completions::events(self.name(), req, body)
                }
                // Audio bytes, relayed as they come.
                $crate::types::OperationKind::AudioSpeech => Ok(
                    $crate::provider::openai::media::speech_events(req, &parts, body),
                ),
                _ => Ok($crate::provider::openai::relayed_events(
                    self.name(),
                    body,
                    $crate::provider::openai::Remember::of(req, _dep),
                )),
            }
        }
    };
}

pub(crate) use openai_shaped_responses;

/// OpenAI's default base URL.
pub const DEFAULT_API_BASE: &str = "https://api.openai.com/v1";

/// The `openai/` provider. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenAi;

impl Provider for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn supports(&self, op: crate::types::OperationKind) -> bool {
        matches!(
            op,
            crate::types::OperationKind::Chat
                | crate::types::OperationKind::Embeddings
                | crate::types::OperationKind::Completions
                | crate::types::OperationKind::Moderations
                | crate::types::OperationKind::Responses
                | crate::types::OperationKind::ResponseObject
        ) || media::is_media(op)
    }

    fn supports_for(&self, op: crate::types::OperationKind, dep: &Deployment) -> bool {
        // Text completions: natively unless the model is one of OpenAI's chat models (LiteLLM).
        self.supports(op)
            && (op != crate::types::OperationKind::Completions
                || !completions::is_openai_chat_model(&dep.model))
    }

    fn respond_locally(
        &self,
        req: &LlmRequest,
        dep: &Deployment,
    ) -> Option<Result<LlmResponse, LlmError>> {
        // A native text completion's `mock_response` (chat's is answered before the provider).
        completions::mock_locally(req, dep)
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        if let Operation::ResponseObject(obj) = &req.op {
            // A call on a response this deployment made: beside its `/responses`.
            let r = dep.resolved(self.name());
            let endpoint = sibling_endpoint(super::resolve::reached(&r.chat)?)?;
            let mut up = object_request(&endpoint, obj, &r)?;
            r.add_credential(up.headers_mut())?;
            return Ok(up);
        }
        if let Operation::Responses(body) = &req.op {
            // `/responses` beside the chat endpoint; the client's bytes with `model` replaced.
            let r = dep.resolved(self.name());
            let endpoint = sibling_endpoint(super::resolve::reached(&r.chat)?)?;
            let body = responses_body(body, req.raw_body().map(|b| &b[..]), &dep.model)?;
            let mut head = resolved_head(&endpoint, &r)?;
            r.add_credential(head.headers_mut())?;
            return Ok(head.map(|()| body));
        }
        // The deployment's api_base / api_key, else OPENAI_BASE_URL / OPENAI_API_KEY, else OpenAI.
        super::compat::OPENAI.encode(self, req, dep)
    }

    openai_shaped_responses!();
}

/// An `Authorization: Bearer` header value, marked sensitive so it never prints.
pub fn bearer(key: &str) -> Result<http::HeaderValue, LlmError> {
    let mut value = Vec::with_capacity(7 + key.len());
    value.extend_from_slice(b"Bearer ");
    value.extend_from_slice(key.as_bytes());
    let mut v = http::HeaderValue::from_maybe_shared(Bytes::from(value)).map_err(|_| {
        LlmError::new(
            ErrorKind::Authentication,
            "the deployment's api_key contains characters not allowed in a header",
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// An OpenAI-format SSE stream of `provider`, decoded chunk by chunk (every request alike).
pub fn openai_stream(provider: &'static str, _req: &LlmRequest, body: ByteStream) -> ChatStream {
    Box::pin(SseStream::new(body, OpenAiStreamMapper::new(provider)))
}

/// Decodes an OpenAI-format complete body (chat or embeddings, by the request's operation).
pub fn decode_openai(req: &LlmRequest, body: &Bytes) -> Result<LlmResponse, LlmError> {
    match &req.op {
        // Already OpenAI's format: kept as bytes, `model` and `usage` read, the rest on demand.
        Operation::Chat(_) => LlmResponse::chat_wire(body.clone()),
        Operation::Embeddings(_) => serde_json::from_slice::<EmbeddingsResponse>(body)
            .map(LlmResponse::embeddings)
            .map_err(|e| invalid_upstream_json("embeddings response", &e)),
        Operation::Responses(_) => decode_response(body),
        Operation::Completions(_) => completions::decode(body),
        Operation::Moderations(_) => moderations::decode(body),
        Operation::ImageGenerations(_) => media::decode_images(req, body),
        Operation::Upload(u) if u.kind == crate::types::OperationKind::ImageEdits => {
            media::decode_images(req, body)
        }
        // vLLM's rerank (the one OpenAI-format host that has it).
        Operation::Rerank(_) => {
            super::rerank::decode(super::rerank::Family::Vllm, body, req.model())
        }
        _ => Err(LlmError::bad_request(
            "a model listing has no provider body",
        )),
    }
}

/// The error for a provider body that is not the JSON expected.
pub fn invalid_upstream_json(what: &str, e: &serde_json::Error) -> LlmError {
    LlmError::new(
        ErrorKind::InternalServer,
        format!("the provider returned an invalid {what}: {e}"),
    )
    .with_status(StatusCode::BAD_GATEWAY)
}
