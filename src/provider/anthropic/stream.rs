//! Anthropic SSE stream decoding: each Messages API event → at most one OpenAI chunk.
//!
//! - `message_start`: remembers the id and the input usage; no chunk.
//! - `content_block_start`: a `tool_use` block opens a tool call (`index`, `id`, `type`, `name`,
//!   empty `arguments`); a `redacted_thinking` block is passed on in `thinking_blocks`; others give
//!   no chunk unless they start with text.
//! - `content_block_delta`: `text_delta` → `content`, `input_json_delta` → an `arguments` fragment,
//!   `thinking_delta` → `reasoning_content` (and `thinking_blocks`), `signature_delta` → the block's
//!   signature in `thinking_blocks`.
//! - `message_delta`: the finish chunk (empty delta, mapped `finish_reason`).
//! - `message_stop`: the usage chunk (`choices: []`) when `stream_options.include_usage` is set; ends
//!   the stream.
//! - `ping`, `content_block_stop`: nothing. `error`: the stream fails with the classified error.
//!
//! The role rides on the first chunk. In JSON mode (`response_format`) the `json_tool_call` tool's
//! input is streamed as `content`.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::Value;

use super::{
    decode::{finish_reason, AnthropicUsage},
    encode::is_json_mode,
    error::error_from_anthropic,
    JSON_TOOL_NAME,
};
use crate::{
    error::{ErrorKind, LlmError},
    provider::{
        chunk::{include_usage, ChunkHead},
        sse::{SseEvent, SseMapper},
    },
    types::{
        chat::{ChatRequest, Delta, FunctionCall, ToolCall},
        ChunkBody,
    },
};

/// What an open content block is, by Anthropic block index.
#[derive(Clone, Copy, Debug)]
enum Block {
    Text,
    Thinking,
    /// A tool call, with its OpenAI `tool_calls` index.
    Tool(u32),
    /// The JSON-mode tool: its input is the answer text.
    JsonAnswer,
    Other,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    message: Option<StartMessage>,
    #[serde(default)]
    content_block: Option<Value>,
    #[serde(default)]
    delta: Option<Value>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct StartMessage {
    id: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// Maps Anthropic Messages SSE events to OpenAI chunks. See the [`anthropic`](super) module docs.
#[derive(Debug)]
pub struct AnthropicStreamMapper {
    head: ChunkHead,
    json_mode: bool,
    finished: bool,
    usage: AnthropicUsage,
    reasoning_chars: usize,
    blocks: Vec<(u32, Block)>,
    tool_calls: u32,
}

impl AnthropicStreamMapper {
    /// A mapper for the stream answering `chat`.
    #[must_use]
    pub fn new(chat: &ChatRequest) -> Self {
        Self {
            head: ChunkHead::new(None, chat.model.clone(), include_usage(chat)),
            json_mode: is_json_mode(chat),
            finished: false,
            usage: AnthropicUsage::default(),
            reasoning_chars: 0,
            blocks: Vec::new(),
            tool_calls: 0,
        }
    }

    fn block(&self, index: Option<u32>) -> Block {
        index
            .and_then(|i| self.blocks.iter().rev().find(|(b, _)| *b == i))
            .map_or(Block::Other, |(_, k)| *k)
    }

    fn text(text: &str) -> Delta {
        Delta {
            content: Some(text.to_owned()),
            ..Delta::default()
        }
    }

    fn tool_delta(index: u32, call: ToolCall) -> Delta {
        Delta {
            tool_calls: Some(vec![ToolCall {
                index: Some(index),
                ..call
            }]),
            ..Delta::default()
        }
    }

    fn thinking_delta(reasoning: Option<String>, block: Value) -> Delta {
        let mut d = Delta {
            reasoning_content: reasoning,
            ..Delta::default()
        };
        // Parsed JSON values always serialize.
        let _ = d.extra.insert("thinking_blocks", &[block]);
        d
    }

    fn on_block_start(&mut self, index: u32, block: &Value) -> Option<Delta> {
        let str_of = |k: &str| block.get(k).and_then(Value::as_str).unwrap_or("");
        let (kind, delta) = match str_of("type") {
            "text" => {
                let text = str_of("text");
                (Block::Text, (!text.is_empty()).then(|| Self::text(text)))
            }
            "thinking" => (Block::Thinking, None),
            "redacted_thinking" => (
                Block::Other,
                Some(Self::thinking_delta(None, block.clone())),
            ),
            "tool_use" if self.json_mode && str_of("name") == JSON_TOOL_NAME => {
                (Block::JsonAnswer, None)
            }
            "tool_use" => {
                let i = self.tool_calls;
                self.tool_calls += 1;
                let call = ToolCall {
                    id: Some(str_of("id").to_owned()),
                    kind_name: Some("function".into()),
                    function: Some(FunctionCall {
                        name: Some(str_of("name").to_owned()),
                        arguments: Some(String::new()),
                        ..FunctionCall::default()
                    }),
                    ..ToolCall::default()
                };
                (Block::Tool(i), Some(Self::tool_delta(i, call)))
            }
            _ => (Block::Other, None),
        };
        self.blocks.push((index, kind));
        delta
    }

    fn on_block_delta(&mut self, kind: Block, delta: &Value) -> Option<Delta> {
        let str_of = |k: &str| delta.get(k).and_then(Value::as_str);
        match (str_of("type")?, kind) {
            ("text_delta", _) => Some(Self::text(str_of("text").unwrap_or(""))),
            ("input_json_delta", Block::Tool(i)) => Some(Self::tool_delta(
                i,
                ToolCall {
                    function: Some(FunctionCall {
                        arguments: Some(str_of("partial_json").unwrap_or("").to_owned()),
                        ..FunctionCall::default()
                    }),
                    ..ToolCall::default()
                },
            )),
            ("input_json_delta", Block::JsonAnswer) => {
                let part = str_of("partial_json").unwrap_or("");
                (!part.is_empty()).then(|| Self::text(part))
            }
            ("thinking_delta", _) => {
                let text = str_of("thinking").unwrap_or("");
                self.reasoning_chars += text.len();
                Some(Self::thinking_delta(
                    Some(text.to_owned()),
                    serde_json::json!({"type": "thinking", "thinking": text}),
                ))
            }
            ("signature_delta", _) => Some(Self::thinking_delta(
                None,
                serde_json::json!({
                    "type": "thinking",
                    "thinking": "",
                    "signature": str_of("signature").unwrap_or(""),
                }),
            )),
            _ => None,
        }
    }

    fn json_answered(&self) -> bool {
        self.blocks
            .iter()
            .any(|(_, k)| matches!(k, Block::JsonAnswer))
            && self.tool_calls == 0
    }
}

impl SseMapper for AnthropicStreamMapper {
    fn on_event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChunkBody>,
    ) -> Result<bool, LlmError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(false);
        }
        let ev: Event = serde_json::from_str(data).map_err(|e| {
            LlmError::new(
                ErrorKind::InternalServer,
                format!("the provider sent an invalid stream event: {e}"),
            )
            .with_provider("anthropic")
        })?;
        match ev.kind.as_str() {
            "message_start" => {
                if let Some(m) = ev.message {
                    self.head.set_id(m.id);
                    self.usage.update(&m.usage);
                }
            }
            "content_block_start" => {
                let block = ev.content_block.unwrap_or(Value::Null);
                if let Some(d) = self.on_block_start(ev.index.unwrap_or(0), &block) {
                    let c = self.head.delta(d, None);
                    out.push_back(c.into());
                }
            }
            "content_block_delta" => {
                let kind = self.block(ev.index);
                let delta = ev.delta.unwrap_or(Value::Null);
                if let Some(d) = self.on_block_delta(kind, &delta) {
                    let c = self.head.delta(d, None);
                    out.push_back(c.into());
                }
            }
            "message_delta" => {
                if let Some(u) = &ev.usage {
                    self.usage.update(u);
                }
                let stop = ev
                    .delta
                    .as_ref()
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                if let Some(stop) = stop {
                    let reason = if self.json_answered() {
                        "stop"
                    } else {
                        finish_reason(stop)
                    };
                    let c = self.head.delta(Delta::default(), Some(reason));
                    out.push_back(c.into());
                    self.finished = true;
                }
            }
            "message_stop" => {
                if !self.finished {
                    let c = self.head.delta(Delta::default(), Some("stop"));
                    out.push_back(c.into());
                    self.finished = true;
                }
                if self.head.include_usage() {
                    let mut c = self.head.chunk(Vec::new());
                    c.usage = Some(self.usage.to_openai(self.reasoning_chars));
                    out.push_back(c.into());
                }
                return Ok(true);
            }
            "error" => {
                let obj = ev.error.unwrap_or(Value::Null);
                let str_of = |k: &str| obj.get(k).and_then(Value::as_str);
                return Err(error_from_anthropic(
                    str_of("type"),
                    str_of("message").unwrap_or("the provider reported an error mid-stream"),
                    None,
                ));
            }
            // ping, content_block_stop, and event types added later.
            _ => {}
        }
        Ok(false)
    }

    fn on_end(&mut self, _out: &mut VecDeque<ChunkBody>) -> Result<(), LlmError> {
        Err(LlmError::new(
            ErrorKind::ApiConnection,
            "the provider's stream ended before message_stop",
        )
        .with_provider("anthropic"))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;
    use proptest::prelude::*;

    use super::*;
    use crate::provider::{sse::SseStream, ByteStream};

    const SSE: &str = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":2,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hm\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        ": keep-alive\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"h\u{e9}llo \u{1f600}\"}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    fn mapper() -> AnthropicStreamMapper {
        let chat: ChatRequest = serde_json::from_str(
            r#"{"model":"grp","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        AnthropicStreamMapper::new(&chat)
    }

    fn run(pieces: Vec<Vec<u8>>) -> Vec<String> {
        let body: ByteStream = Box::pin(futures_util::stream::iter(
            pieces.into_iter().map(|p| Ok(bytes::Bytes::from(p))),
        ));
        let stream = SseStream::new(body, mapper());
        futures_executor_block_on(stream.collect::<Vec<_>>())
            .into_iter()
            .map(|r| {
                let mut v = serde_json::to_value(r.unwrap()).unwrap();
                v.as_object_mut().unwrap().remove("created");
                v.to_string()
            })
            .collect()
    }

    fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn translates_a_full_stream() {
        let chunks = run(vec![SSE.as_bytes().to_vec()]);
        let v: Vec<Value> = chunks
            .iter()
            .map(|c| serde_json::from_str(c).unwrap())
            .collect();
        assert_eq!(v.len(), 8, "{chunks:#?}");
        assert_eq!(v[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(v[0]["choices"][0]["delta"]["reasoning_content"], "hm");
        assert_eq!(
            v[1]["choices"][0]["delta"]["thinking_blocks"][0]["signature"],
            "sig"
        );
        assert_eq!(
            v[2]["choices"][0]["delta"]["content"],
            "h\u{e9}llo \u{1f600}"
        );
        assert_eq!(v[3]["choices"][0]["delta"]["tool_calls"][0]["id"], "t1");
        assert_eq!(
            v[5]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "1}"
        );
        assert_eq!(v[6]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v[7]["usage"]["prompt_tokens"], 7);
        assert_eq!(v[7]["usage"]["completion_tokens"], 9);
        assert_eq!(v[7]["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
        assert!(v.iter().all(|c| c["id"] == "msg_1"));
    }

    #[test]
    fn a_cut_stream_is_an_error() {
        let cut = SSE.find("event: message_stop").unwrap();
        let body: ByteStream = Box::pin(futures_util::stream::iter([Ok(
            bytes::Bytes::copy_from_slice(&SSE.as_bytes()[..cut]),
        )]));
        let items = futures_executor_block_on(SseStream::new(body, mapper()).collect::<Vec<_>>());
        assert!(matches!(items.last(), Some(Err(e)) if e.kind() == ErrorKind::ApiConnection));
    }

    proptest! {
        #[test]
        fn any_byte_split_gives_the_same_chunks(cuts in proptest::collection::vec(0..SSE.len(), 0..12)) {
            let whole = run(vec![SSE.as_bytes().to_vec()]);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let bytes = SSE.as_bytes();
            let mut pieces = Vec::new();
            let mut at = 0;
            for c in cuts {
                pieces.push(bytes[at..c].to_vec());
                at = c;
            }
            pieces.push(bytes[at..].to_vec());
            prop_assert_eq!(run(pieces), whole);
        }
    }
}
