//! The bridge of legacy text completions (`POST /v1/completions`) to the chat model, as LiteLLM's
//! `text_completion` serves a chat-only provider.
//!
//! The request: a text prompt becomes one `user` message; a batch of texts one `user` message per
//! text, in order (LiteLLM's mapping, one conversation, not a batch); `max_tokens`,
//! `temperature`, `top_p`, `n`, `stop`, `seed`, the penalties, `user`, `metadata`,
//! `mock_response` and every key kept raw (`logit_bias`, the gateway controls) carry over. A
//! token prompt, and the completion-only `echo: true`, `suffix`, `logprobs` and `best_of` above
//! 1, which the chat model cannot honour, are a 400 naming the key (never silently dropped). A
//! stream always asks the chat provider for its usage chunk, so the counting layers get the
//! usage; the client gets it only with `stream_options.include_usage`.
//!
//! The answer: `object: "text_completion"`, one choice per chat choice (`text` the message's text,
//! `index`, `logprobs: null`, `finish_reason`), the chat `id`, `created`, `model` and `usage`
//! (as LiteLLM's `convert_chat_to_text_completion`). A stream: one `data:` event per chat chunk
//! with choices (each choice's `text` its delta's content), the usage event when asked for, then
//! `data: [DONE]`; chunk by chunk, never collected.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_core::Stream;
use serde::Serialize;

use super::Bridge;
use crate::{
    error::LlmError,
    provider::openai::completions::{data_frame, DONE},
    types::{
        chat::{ChatChunk, ChatRequest, ChatResponse, Message, Usage},
        completions::CompletionsRequest,
        ChatStream, JsonBody, LlmRequest, LlmResponse, ResponseBody, StreamEvent, TokenUsage,
    },
};

/// The text-completion bridge. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct CompletionsBridge;

/// Keys of a text completion that the chat model has no counterpart for.
const COMPLETION_ONLY: [&str; 4] = ["echo", "suffix", "logprobs", "best_of"];

/// Whether `key`'s value asks for something the chat model cannot do (`echo: false`, `best_of:
/// 1`, a `null` are harmless).
fn asks_for_more(key: &str, value: &serde_json::value::RawValue) -> bool {
    !matches!(
        (key, value.get()),
        (_, "null") | ("echo", "false") | ("best_of", "1") | ("suffix", "\"\"")
    )
}

impl Bridge for CompletionsBridge {
    fn chat_request(&self, req: &LlmRequest) -> Result<LlmRequest, LlmError> {
        let c = req.as_completions().ok_or_else(|| {
            LlmError::internal("the completions bridge was given another operation")
        })?;
        let texts = c.prompt.texts().ok_or_else(|| {
            LlmError::bad_request(
                "a token prompt cannot be served through the chat model: send the prompt as text",
            )
            .with_param("prompt")
        })?;
        let mut extra = c.extra.clone();
        for key in COMPLETION_ONLY {
            if let Some(value) = extra.remove(key) {
                if asks_for_more(key, &value) {
                    return Err(LlmError::bad_request(format!(
                        "{key} is not supported for a text completion served through the chat model"
                    ))
                    .with_param(key));
                }
            }
        }
        let stream_options = c.stream.unwrap_or(false).then(|| {
            let mut o = c.stream_options.clone().unwrap_or_default();
            o.include_usage = Some(true);
            o
        });
        let chat = ChatRequest {
            model: c.model.clone(),
            messages: texts
                .iter()
                .map(|t| Message::new("user", t.as_str()))
                .collect(),
            stream: c.stream,
            stream_options,
            temperature: c.temperature,
            top_p: c.top_p,
            max_tokens: c.max_tokens,
            n: c.n,
            stop: c.stop.clone(),
            seed: c.seed,
            presence_penalty: c.presence_penalty,
            frequency_penalty: c.frequency_penalty,
            user: c.user.clone(),
            metadata: c.metadata.clone(),
            mock_response: c.mock_response.clone(),
            extra,
            ..ChatRequest::default()
        };
        let mut out = LlmRequest::chat(chat);
        out.extensions = req.extensions.clone();
        out.set_controls(Some(req.controls().into_owned()));
        Ok(out)
    }

    fn chat_answer(&self, req: &LlmRequest, resp: LlmResponse) -> Result<LlmResponse, LlmError> {
        let client_usage = req
            .as_completions()
            .is_some_and(CompletionsRequest::include_usage);
        let LlmResponse { body, meta } = resp;
        let mut out = match body {
            ResponseBody::Chat(c) => text_completion(&c.into_typed()?)?,
            ResponseBody::Stream(chunks) => LlmResponse::events(Box::pin(TextChunks {
                chunks,
                client_usage,
                usage: None,
                done: false,
            })),
            other => {
                return Err(LlmError::internal(format!(
                    "the chat provider answered a text completion with {other:?}"
                )))
            }
        };
        out.meta = meta;
        Ok(out)
    }
}

/// One choice of a text completion, or of one of its chunks.
#[derive(Serialize)]
struct TextChoice<'a> {
    text: &'a str,
    index: u32,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

/// A text completion, or one of its chunks.
#[derive(Serialize)]
struct TextCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<TextChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_fingerprint: Option<&'a str>,
}

fn to_bytes(value: &TextCompletion<'_>) -> Result<Bytes, LlmError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| LlmError::internal(format!("cannot write the text completion: {e}")))
}

/// The text completion made from a complete chat answer.
fn text_completion(chat: &ChatResponse) -> Result<LlmResponse, LlmError> {
    let texts: Vec<String> = chat
        .choices
        .iter()
        .map(|c| c.message.as_ref().map(Message::text).unwrap_or_default())
        .collect();
    let choices = chat
        .choices
        .iter()
        .zip(&texts)
        .enumerate()
        .map(|(i, (c, text))| TextChoice {
            text,
            index: c.index.unwrap_or(u32::try_from(i).unwrap_or(u32::MAX)),
            logprobs: None,
            finish_reason: c.finish_reason.as_deref(),
        })
        .collect();
    let model = chat.model.as_deref().unwrap_or_default();
    let bytes = to_bytes(&TextCompletion {
        id: chat.id.as_deref().unwrap_or_default(),
        object: "text_completion",
        created: chat.created.unwrap_or_default(),
        model,
        choices,
        usage: chat.usage.as_ref(),
        system_fingerprint: chat.system_fingerprint.as_deref(),
    })?;
    Ok(LlmResponse::json(
        JsonBody::new(bytes)
            .with_usage(chat.usage.as_ref().map(TokenUsage::from))
            .with_model((!model.is_empty()).then(|| Arc::from(model))),
    ))
}

/// A chat chunk stream as a text-completion event stream. See the [module docs](self).
struct TextChunks {
    chunks: ChatStream,
    /// Whether the client asked for the usage event.
    client_usage: bool,
    /// The usage the chat stream reported so far.
    usage: Option<TokenUsage>,
    done: bool,
}

impl TextChunks {
    /// The event of one chat chunk; `None` for a usage chunk the client did not ask for.
    fn event(
        &mut self,
        chunk: &ChatChunk,
        text_bytes: usize,
    ) -> Result<Option<StreamEvent>, LlmError> {
        let usage = chunk.usage.as_ref().map(TokenUsage::from);
        if usage.is_some() {
            self.usage = usage;
        }
        if chunk.choices.is_empty() && !self.client_usage {
            return Ok(None);
        }
        let choices = chunk
            .choices
            .iter()
            .enumerate()
            .map(|(i, c)| TextChoice {
                text: c
                    .delta
                    .as_ref()
                    .and_then(|d| d.content.as_deref())
                    .unwrap_or_default(),
                index: c.index.unwrap_or(u32::try_from(i).unwrap_or(u32::MAX)),
                logprobs: None,
                finish_reason: c.finish_reason.as_deref(),
            })
            .collect();
        let model = chunk.model.as_deref().unwrap_or_default();
        let data = to_bytes(&TextCompletion {
            id: chunk.id.as_deref().unwrap_or_default(),
            object: "text_completion",
            created: chunk.created.unwrap_or_default(),
            model,
            choices,
            usage: chunk.usage.as_ref().filter(|_| self.client_usage),
            system_fingerprint: None,
        })?;
        Ok(Some(
            StreamEvent::new(data_frame(&data))
                .with_usage(usage)
                .with_text_bytes(text_bytes)
                .with_model((!model.is_empty()).then(|| Arc::from(model))),
        ))
    }
}

impl Stream for TextChunks {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let next = match self.chunks.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(n) => n,
            };
            let result = match next {
                Some(Ok(chunk)) => {
                    let text_bytes = chunk.delta_text_bytes();
                    chunk.into_typed().and_then(|c| self.event(&c, text_bytes))
                }
                Some(Err(e)) => Err(e),
                None => {
                    self.done = true;
                    let end = StreamEvent::new(Bytes::from_static(DONE))
                        .with_usage(self.usage)
                        .final_event();
                    return Poll::Ready(Some(Ok(end)));
                }
            };
            match result {
                Ok(Some(event)) => return Poll::Ready(Some(Ok(event))),
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;
    use crate::{
        error::ErrorKind,
        types::{ChunkBody, Operation},
    };

    fn request(body: &str) -> LlmRequest {
        LlmRequest::completions_from_bytes(
            serde_json::from_str(body).unwrap(),
            Bytes::from(body.to_owned()),
        )
    }

    #[test]
    fn a_prompt_becomes_user_messages_and_parameters_carry_over() {
        let req = request(
            r#"{"model":"g","prompt":["a","b"],"max_tokens":7,"temperature":0.5,"stop":"\n",
                "logit_bias":{"1":2},"num_retries":2,"echo":false,"best_of":1,"stream":true}"#,
        );
        let chat = CompletionsBridge.chat_request(&req).unwrap();
        let c = chat.as_chat().unwrap();
        assert_eq!(c.model, "g");
        assert_eq!(c.messages.len(), 2);
        assert_eq!(
            (c.messages[0].role.as_str(), c.messages[1].text()),
            ("user", "b".into())
        );
        assert_eq!(c.max_tokens, Some(7));
        assert_eq!(c.temperature, Some(0.5));
        assert!(c.extra.get("logit_bias").is_some());
        assert!(c.extra.get("echo").is_none() && c.extra.get("best_of").is_none());
        assert_eq!(
            c.stream_options.as_ref().and_then(|o| o.include_usage),
            Some(true)
        );
        assert_eq!(chat.controls().num_retries, Some(2));
    }

    #[test]
    fn what_chat_cannot_do_is_refused_naming_the_key() {
        for (body, param) in [
            (r#"{"model":"g","prompt":[1,2]}"#, "prompt"),
            (r#"{"model":"g","prompt":"x","echo":true}"#, "echo"),
            (r#"{"model":"g","prompt":"x","suffix":"end"}"#, "suffix"),
            (r#"{"model":"g","prompt":"x","logprobs":3}"#, "logprobs"),
            (r#"{"model":"g","prompt":"x","best_of":2}"#, "best_of"),
        ] {
            let err = CompletionsBridge.chat_request(&request(body)).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(err.param(), Some(param), "{body}");
        }
        let chat = LlmRequest::new(Operation::ListModels);
        assert!(CompletionsBridge.chat_request(&chat).is_err());
    }

    #[test]
    fn a_complete_chat_answer_becomes_a_text_completion() {
        let chat: ChatResponse = serde_json::from_str(
            r#"{"id":"x","object":"chat.completion","created":5,"model":"m",
                "choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],
                "usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}"#,
        )
        .unwrap();
        let req = request(r#"{"model":"g","prompt":"hi"}"#);
        let out = CompletionsBridge
            .chat_answer(&req, LlmResponse::chat(chat))
            .unwrap();
        assert_eq!(out.token_usage(), Some(TokenUsage::new(2, 1)));
        let ResponseBody::Json(j) = out.body else {
            panic!("not JSON")
        };
        let v: serde_json::Value = serde_json::from_slice(&j.bytes).unwrap();
        assert_eq!(v["object"], "text_completion");
        assert_eq!(v["choices"][0]["text"], "hello");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["choices"][0]["logprobs"], serde_json::Value::Null);
        assert_eq!(v["usage"]["total_tokens"], 3);
        assert_eq!(
            (v["id"].as_str(), v["created"].as_u64()),
            (Some("x"), Some(5))
        );
    }

    fn chunk(json: &str) -> Result<ChunkBody, LlmError> {
        ChunkBody::from_wire(Bytes::from(json.to_owned()))
    }

    async fn bridged_stream(body: &str) -> Vec<Result<StreamEvent, LlmError>> {
        let chunks: Vec<Result<ChunkBody, LlmError>> = vec![
            chunk(
                r#"{"id":"x","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"He"}}]}"#,
            ),
            chunk(
                r#"{"id":"x","model":"m","choices":[{"index":0,"delta":{"content":"llo"},"finish_reason":"stop"}]}"#,
            ),
            chunk(
                r#"{"id":"x","model":"m","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}"#,
            ),
        ];
        let stream: ChatStream = Box::pin(futures_util::stream::iter(chunks));
        let out = CompletionsBridge
            .chat_answer(&request(body), LlmResponse::stream(stream))
            .unwrap();
        let ResponseBody::Events(events) = out.body else {
            panic!("not events")
        };
        events.collect().await
    }

    #[tokio::test]
    async fn a_chunk_stream_becomes_text_events_ending_with_done() {
        let got = bridged_stream(r#"{"model":"g","prompt":"hi","stream":true}"#).await;
        let got: Vec<StreamEvent> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got.len(), 3, "{got:?}");
        let first: serde_json::Value =
            serde_json::from_slice(got[0].frame.strip_prefix(b"data: ").unwrap()).unwrap();
        assert_eq!(first["object"], "text_completion");
        assert_eq!(first["choices"][0]["text"], "He");
        assert_eq!(got[1].text_bytes, 3);
        assert_eq!(&got[2].frame[..], DONE);
        assert!(got[2].is_final);
        assert_eq!(got[2].usage, Some(TokenUsage::new(4, 2)));

        let asked = bridged_stream(
            r#"{"model":"g","prompt":"hi","stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .await;
        assert_eq!(asked.len(), 4);
        let usage = asked[2].as_ref().unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(usage.frame.strip_prefix(b"data: ").unwrap()).unwrap();
        assert_eq!(v["usage"]["total_tokens"], 6);
        assert_eq!(v["choices"], serde_json::json!([]));
    }

    #[tokio::test]
    async fn an_error_in_the_chat_stream_ends_the_events() {
        let chunks: Vec<Result<ChunkBody, LlmError>> = vec![
            chunk(r#"{"choices":[{"delta":{"content":"a"}}]}"#),
            Err(LlmError::new(ErrorKind::ApiConnection, "cut")),
            chunk(r#"{"choices":[{"delta":{"content":"b"}}]}"#),
        ];
        let stream: ChatStream = Box::pin(futures_util::stream::iter(chunks));
        let out = CompletionsBridge
            .chat_answer(
                &request(r#"{"model":"g","prompt":"x","stream":true}"#),
                LlmResponse::stream(stream),
            )
            .unwrap();
        let ResponseBody::Events(events) = out.body else {
            panic!("not events")
        };
        let got: Vec<_> = events.collect().await;
        assert_eq!(got.len(), 2);
        assert!(got[1].is_err());
    }
}
