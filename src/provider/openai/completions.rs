//! Legacy text completions (`POST /v1/completions`) on OpenAI-format hosts, natively.
//!
//! The request body is the client's, relayed with `model` rewritten and gateway controls removed
//! (a stream that did not ask for `stream_options.include_usage` is sent with it, so that the
//! counting layers learn the usage; the usage-only chunk the client did not ask for is then left
//! out of what it receives). The answer is relayed byte for byte: a complete answer as a
//! [`JsonBody`], a stream as its `data:` events, each stating its facts (usage, text delivered,
//! model), ending with `data: [DONE]`.
//!
//! Which deployments answer natively, as LiteLLM decides it (`text_completion` in its `main.py`):
//! `text-completion-openai/` always ([`TextCompletionOpenAi`]); `openai/` when the model is not one
//! of OpenAI's chat models in the price map (an instruct model, or any model of an
//! OpenAI-compatible server behind `api_base`), see [`is_openai_chat_model`]. Every other
//! deployment of a chat provider is served through the chat model
//! ([`bridge::completions`](crate::provider::bridge::completions)).

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{BufMut as _, Bytes, BytesMut};
use eventsource_stream2::Eventsource as _;
use futures_core::Stream;
use serde::Deserialize;

use super::{
    classify_openai_error, completions_body, error_from_object, invalid_upstream_json, join_url,
    resolved_head,
};
use crate::{
    cost::PriceTable,
    error::{ErrorKind, LlmError},
    provider::{
        compat::HostSpec,
        resolve::Endpoint,
        sse::{bounded, MAX_EVENT_BYTES},
        ByteStream, Deployment, Provider,
    },
    types::{
        chat::Usage, completions::CompletionsRequest, ChatStream, EventStream, JsonBody,
        LlmRequest, LlmResponse, OperationKind, StreamEvent, TokenUsage,
    },
};

/// The prefix of OpenAI's text-completion provider, as LiteLLM names it.
pub const TEXT_COMPLETION_OPENAI: &str = "text-completion-openai";

/// `text-completion-openai/`: OpenAI's (or an OpenAI-compatible server's) `/completions`
/// endpoint. Credentials and base URL as for `openai/` (the deployment's, else `OPENAI_API_KEY`,
/// `OPENAI_BASE_URL` / `OPENAI_API_BASE`, else OpenAI). Only text completions: a chat request
/// for such a deployment is a 400 naming the provider.
#[derive(Clone, Copy, Debug, Default)]
pub struct TextCompletionOpenAi;

impl Provider for TextCompletionOpenAi {
    fn name(&self) -> &'static str {
        TEXT_COMPLETION_OPENAI
    }

    fn supports(&self, op: OperationKind) -> bool {
        op == OperationKind::Completions
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        match req.as_completions() {
            Some(c) => encode(&crate::provider::compat::OPENAI, self.name(), req, c, dep),
            None => Err(crate::provider::unsupported(self, req)),
        }
    }

    fn decode(
        &self,
        req: &LlmRequest,
        resp: http::Response<Bytes>,
        _dep: &Deployment,
    ) -> Result<LlmResponse, LlmError> {
        match req.as_completions() {
            Some(_) => decode(resp.body()),
            None => Err(crate::provider::unsupported(self, req)),
        }
    }

    fn decode_stream(
        &self,
        req: &LlmRequest,
        _parts: http::response::Parts,
        _body: ByteStream,
        _dep: &Deployment,
    ) -> Result<ChatStream, LlmError> {
        Err(crate::provider::unsupported(self, req))
    }

    fn decode_events(
        &self,
        req: &LlmRequest,
        _parts: http::response::Parts,
        body: ByteStream,
        _dep: &Deployment,
    ) -> Result<EventStream, LlmError> {
        events(self.name(), req, body)
    }

    fn classify(
        &self,
        status: http::StatusCode,
        headers: &http::HeaderMap,
        body: &[u8],
        _dep: &Deployment,
    ) -> LlmError {
        classify_openai_error(self.name(), status, headers, body)
    }

    fn respond_locally(
        &self,
        req: &LlmRequest,
        dep: &Deployment,
    ) -> Option<Result<LlmResponse, LlmError>> {
        mock_locally(req, dep)
    }
}

/// A text completion that asks for LiteLLM's `mock_response`, answered without calling the
/// provider (as on chat): the canned chat answer of [`mock::respond_chat`] through the
/// completions bridge. `None` for any other request.
///
/// [`mock::respond_chat`]: crate::provider::mock::respond_chat
pub(crate) fn mock_locally(
    req: &LlmRequest,
    dep: &Deployment,
) -> Option<Result<LlmResponse, LlmError>> {
    use crate::provider::bridge::{completions::CompletionsBridge, Bridge as _};
    let directive = req.as_completions()?.mock_response.as_ref()?;
    Some((|| {
        let chat_req = CompletionsBridge.chat_request(req)?;
        let chat = chat_req
            .as_chat()
            .ok_or_else(|| LlmError::internal("the completions bridge made no chat request"))?;
        let answer = crate::provider::mock::respond_chat(chat, dep, Some(directive))?;
        CompletionsBridge.chat_answer(req, answer)
    })())
}

/// Whether `model` is one of OpenAI's chat models (the price map says `mode: chat` for
/// `litellm_provider: openai`): LiteLLM's `open_ai_chat_completion_models`, which it serves
/// through chat; any other `openai/` model gets the native `/completions` endpoint.
#[must_use]
pub fn is_openai_chat_model(model: &str) -> bool {
    PriceTable::builtin().get(model).is_some_and(|p| {
        p.mode.as_deref() == Some("chat") && p.litellm_provider.as_deref() == Some("openai")
    })
}

/// The upstream request of a text completion to `{api_base}/completions` of the host `spec`,
/// for a deployment resolved as `family`.
pub(crate) fn encode(
    spec: &HostSpec,
    family: &str,
    req: &LlmRequest,
    c: &CompletionsRequest,
    dep: &Deployment,
) -> Result<http::Request<Bytes>, LlmError> {
    let r = dep.resolved(family);
    let base = spec.api_base(dep).ok_or_else(|| {
        LlmError::bad_request(format!(
            "the {family} provider needs an api_base (set it in litellm_params)"
        ))
    })?;
    let endpoint = Endpoint::parse(&join_url(base, "completions"))?;
    let model = spec.upstream_model(&dep.model);
    let body = if req.is_stream() && !c.include_usage() {
        // Ask for the usage chunk (the layers count it; the client does not get it).
        let mut asked = c.clone();
        let mut opts = asked.stream_options.take().unwrap_or_default();
        opts.include_usage = Some(true);
        asked.stream_options = Some(opts);
        completions_body(&asked, None, &model)?
    } else {
        completions_body(c, req.raw_body().map(|b| &b[..]), &model)?
    };
    let mut head = resolved_head(&endpoint, &r)?;
    r.add_credential(head.headers_mut())?;
    Ok(head.map(|()| body))
}

/// The members of a text completion (or one of its chunks) the gateway reads.
#[derive(Deserialize)]
struct Facts {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    choices: Option<Vec<ChoiceFacts>>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ChoiceFacts {
    #[serde(default)]
    text: Option<String>,
}

impl Facts {
    fn text_bytes(&self) -> usize {
        self.choices
            .iter()
            .flatten()
            .map(|c| c.text.as_ref().map_or(0, String::len))
            .sum()
    }
}

/// A complete text completion from the provider, relayed as its bytes with its facts.
pub(crate) fn decode(body: &Bytes) -> Result<LlmResponse, LlmError> {
    let facts: Facts =
        serde_json::from_slice(body).map_err(|e| invalid_upstream_json("text completion", &e))?;
    if facts.choices.is_none() {
        return Err(LlmError::new(
            ErrorKind::InternalServer,
            "the provider returned an invalid text completion: no choices",
        )
        .with_status(http::StatusCode::BAD_GATEWAY));
    }
    Ok(LlmResponse::json(
        JsonBody::new(body.clone())
            .with_usage(facts.usage.as_ref().map(TokenUsage::from))
            .with_model(facts.model.map(Arc::from)),
    ))
}

/// A streamed text completion from the provider: each `data:` event relayed as it came, stating
/// its facts; `data: [DONE]` is the final event.
pub(crate) fn events(
    provider: &'static str,
    req: &LlmRequest,
    body: ByteStream,
) -> Result<EventStream, LlmError> {
    let client_usage = req
        .as_completions()
        .ok_or_else(|| LlmError::internal("a text-completion stream for another operation"))?
        .include_usage();
    Ok(Box::pin(TextEvents {
        events: Box::pin(bounded(body, MAX_EVENT_BYTES).eventsource()),
        provider,
        client_usage,
        usage: None,
        done: false,
    }))
}

type RawEvents = Pin<
    Box<
        dyn Stream<
                Item = Result<
                    eventsource_stream2::Event,
                    eventsource_stream2::EventStreamError<LlmError>,
                >,
            > + Send,
    >,
>;

/// The events of a native text-completion stream. See [`events`].
struct TextEvents {
    events: RawEvents,
    provider: &'static str,
    /// Whether the client asked for the usage chunk.
    client_usage: bool,
    /// The usage the stream reported so far.
    usage: Option<TokenUsage>,
    done: bool,
}

/// `data: {data}\n\n`.
pub(crate) fn data_frame(data: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(data.len() + 8);
    frame.put_slice(b"data: ");
    frame.put_slice(data);
    frame.put_slice(b"\n\n");
    frame.freeze()
}

/// The frame that ends a text-completion stream.
pub(crate) const DONE: &[u8] = b"data: [DONE]\n\n";

impl TextEvents {
    /// The event for one upstream `data:` payload; `None` for one the client does not get.
    fn on_data(&mut self, data: &str) -> Result<Option<StreamEvent>, LlmError> {
        let facts: Facts = serde_json::from_str(data).map_err(|e| {
            LlmError::new(
                ErrorKind::InternalServer,
                format!("the provider sent an invalid text-completion chunk: {e}"),
            )
            .with_provider(self.provider)
        })?;
        if let Some(err) = &facts.error {
            return Err(error_from_object(
                self.provider,
                http::StatusCode::INTERNAL_SERVER_ERROR,
                err,
            ));
        }
        if let Some(u) = &facts.usage {
            self.usage = Some(TokenUsage::from(u));
        }
        let usage_only = facts.choices.as_ref().is_none_or(Vec::is_empty);
        if usage_only && !self.client_usage {
            return Ok(None);
        }
        Ok(Some(
            StreamEvent::new(data_frame(data.as_bytes()))
                .with_usage(facts.usage.as_ref().map(TokenUsage::from))
                .with_text_bytes(facts.text_bytes())
                .with_model(facts.model.map(Arc::from)),
        ))
    }
}

impl Stream for TextEvents {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let next = match self.events.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(n) => n,
            };
            match next {
                Some(Ok(ev)) => {
                    let data = ev.data.trim();
                    if data.is_empty() {
                        continue;
                    }
                    if data == "[DONE]" {
                        self.done = true;
                        let end = StreamEvent::new(Bytes::from_static(DONE))
                            .with_usage(self.usage)
                            .final_event();
                        return Poll::Ready(Some(Ok(end)));
                    }
                    match self.on_data(data) {
                        Ok(Some(event)) => return Poll::Ready(Some(Ok(event))),
                        Ok(None) => {}
                        Err(e) => {
                            self.done = true;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    let err = e.into_transport().unwrap_or_else(|| {
                        LlmError::new(
                            ErrorKind::InternalServer,
                            "malformed event stream from provider: not UTF-8",
                        )
                    });
                    return Poll::Ready(Some(Err(err.with_provider(self.provider))));
                }
                None => {
                    self.done = true;
                    return Poll::Ready(Some(Err(LlmError::new(
                        ErrorKind::ApiConnection,
                        "the provider's stream ended before it finished (no [DONE])",
                    )
                    .with_provider(self.provider))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;

    fn request(body: &str) -> LlmRequest {
        LlmRequest::completions_from_bytes(
            serde_json::from_str(body).unwrap(),
            Bytes::from(body.to_owned()),
        )
    }

    fn body_of(parts: &[&'static str]) -> ByteStream {
        let items: Vec<Result<Bytes, LlmError>> = parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p.as_bytes())))
            .collect();
        Box::pin(futures_util::stream::iter(items))
    }

    const STREAM: &str = concat!(
        "data: {\"id\":\"c1\",\"object\":\"text_completion\",\"model\":\"m\",\"choices\":[{\"text\":\"Hel\",\"index\":0,\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"text_completion\",\"model\":\"m\",\"choices\":[{\"text\":\"lo\",\"index\":0,\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"text_completion\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
        "data: [DONE]\n\n",
    );

    /// Split at every byte boundary: the same events, the usage chunk dropped when the client did
    /// not ask for it but its usage stated on `[DONE]`.
    #[tokio::test]
    async fn relays_events_at_any_split_and_states_usage() {
        for cut in 1..STREAM.len() {
            let (a, b) = STREAM.split_at(cut);
            let a: &'static str = Box::leak(a.to_owned().into_boxed_str());
            let b: &'static str = Box::leak(b.to_owned().into_boxed_str());
            let req = request(r#"{"model":"g","prompt":"hi","stream":true}"#);
            let got: Vec<_> = events("openai", &req, body_of(&[a, b]))
                .unwrap()
                .collect()
                .await;
            let got: Vec<StreamEvent> = got.into_iter().map(Result::unwrap).collect();
            assert_eq!(got.len(), 3, "cut {cut}");
            assert!(got[0].frame.starts_with(b"data: {\"id\":\"c1\""));
            assert_eq!(got[0].text_bytes, 3);
            assert_eq!(got[0].model.as_deref(), Some("m"));
            assert_eq!(&got[2].frame[..], DONE);
            assert!(got[2].is_final);
            assert_eq!(got[2].usage, Some(TokenUsage::new(3, 2)));
        }
        let req = request(
            r#"{"model":"g","prompt":"hi","stream":true,"stream_options":{"include_usage":true}}"#,
        );
        let got: Vec<_> = events("openai", &req, body_of(&[STREAM]))
            .unwrap()
            .collect()
            .await;
        assert_eq!(got.len(), 4);
        let usage_event = got[2].as_ref().unwrap();
        assert_eq!(usage_event.usage, Some(TokenUsage::new(3, 2)));
        assert!(usage_event.frame.starts_with(b"data: {"));
    }

    #[tokio::test]
    async fn a_cut_stream_and_an_error_event_end_with_an_error() {
        let req = request(r#"{"model":"g","prompt":"hi","stream":true}"#);
        let cut = "data: {\"choices\":[{\"text\":\"a\"}]}\n\n";
        let got: Vec<_> = events("openai", &req, body_of(&[cut]))
            .unwrap()
            .collect()
            .await;
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1].as_ref().unwrap_err().kind(),
            ErrorKind::ApiConnection
        );
        let error = "data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n";
        let got: Vec<_> = events("openai", &req, body_of(&[error]))
            .unwrap()
            .collect()
            .await;
        assert_eq!(got.len(), 1);
        assert!(got[0].as_ref().unwrap_err().message().contains("boom"));
        let junk: Vec<_> = events("openai", &req, body_of(&["data: {not json\n\n"]))
            .unwrap()
            .collect()
            .await;
        assert!(junk[0].is_err());
    }

    #[test]
    fn decodes_a_complete_answer_with_its_facts() {
        let body = Bytes::from_static(
            br#"{"id":"c","object":"text_completion","model":"m","choices":[{"text":"hi","index":0}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
        );
        let r = decode(&body).unwrap();
        assert_eq!(r.token_usage(), Some(TokenUsage::new(1, 1)));
        match r.body {
            crate::types::ResponseBody::Json(j) => {
                assert_eq!(j.bytes, body);
                assert_eq!(j.model.as_deref(), Some("m"));
            }
            other => panic!("{other:?}"),
        }
        assert!(decode(&Bytes::from_static(b"{}")).is_err());
        assert!(decode(&Bytes::from_static(b"[1]")).is_err());
    }

    #[test]
    fn chat_models_are_told_from_completion_models() {
        assert!(is_openai_chat_model("gpt-4o-mini"));
        assert!(!is_openai_chat_model("gpt-3.5-turbo-instruct"));
        assert!(!is_openai_chat_model("my-vllm-model"));
    }
}
