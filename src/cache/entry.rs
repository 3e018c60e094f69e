//! What is stored under a key, and how a stored answer becomes a response again.
//!
//! An entry is a small JSON document: `{"v":1,"t":<stored, unix ms>,"e":<expires, unix ms>,
//! "chat":{…}}` for a chat answer (a streamed answer is assembled into the same complete form),
//! or `{…,"emb":[…],"tok":N,"model":"…"}` for one embedding. Anything else under a key is corrupt.

use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::types::{
    chat::{
        ChatChunk, ChatResponse, Choice, ChunkChoice, Content, Delta, FunctionCall, Message,
        ToolCall, Usage,
    },
    ChatStream, ChunkBody,
};

const VERSION: u32 = 1;

/// Milliseconds since the Unix epoch on `clock` (the cache layer's).
pub(crate) fn now_ms(clock: &crate::clock::Clock) -> u64 {
    u64::try_from(clock.unix_ms()).unwrap_or(0)
}

#[derive(Serialize)]
struct EntryOut<'a> {
    v: u32,
    t: u64,
    e: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    chat: Option<&'a ChatResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    emb: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tok: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
}

#[derive(Deserialize)]
struct EntryIn {
    v: u32,
    t: u64,
    e: u64,
    chat: Option<ChatResponse>,
    emb: Option<Box<RawValue>>,
    tok: Option<u64>,
    model: Option<String>,
}

/// A decoded entry.
#[derive(Debug)]
pub(crate) struct Entry {
    /// When it was stored (unix ms).
    pub(crate) stored_ms: u64,
    /// When it expires (unix ms).
    pub(crate) expires_ms: u64,
    pub(crate) body: EntryBody,
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // short-lived, moved once
pub(crate) enum EntryBody {
    Chat(ChatResponse),
    Embedding {
        vector: Box<RawValue>,
        tokens: u64,
        model: Option<String>,
    },
}

impl Entry {
    /// Whether the entry is past its time to live at `now`, or older than `max_age`.
    pub(crate) fn is_stale(&self, now: u64, max_age: Option<Duration>) -> bool {
        if now >= self.expires_ms {
            return true;
        }
        max_age.is_some_and(|max| {
            let max = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
            now.saturating_sub(self.stored_ms) > max
        })
    }
}

fn to_bytes<T: Serialize>(value: &T) -> Option<Bytes> {
    let mut w = BytesMut::with_capacity(512).writer();
    serde_json::to_writer(&mut w, value).ok()?;
    Some(w.into_inner().freeze())
}

/// Encodes a chat answer stored at `t` (Unix ms) for `ttl`.
pub(crate) fn encode_chat(resp: &ChatResponse, ttl: Duration, t: u64) -> Option<Bytes> {
    to_bytes(&EntryOut {
        v: VERSION,
        t,
        e: t.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
        chat: Some(resp),
        emb: None,
        tok: None,
        model: None,
    })
}

/// Encodes one embedding stored at `t` (Unix ms) for `ttl`.
pub(crate) fn encode_embedding(
    vector: &RawValue,
    tokens: u64,
    model: Option<&str>,
    ttl: Duration,
    t: u64,
) -> Option<Bytes> {
    to_bytes(&EntryOut {
        v: VERSION,
        t,
        e: t.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
        chat: None,
        emb: Some(vector),
        tok: Some(tokens),
        model,
    })
}

/// Decodes an entry; `None` when the bytes are not an entry this version wrote (corrupt).
pub(crate) fn decode(bytes: &[u8]) -> Option<Entry> {
    let e: EntryIn = serde_json::from_slice(bytes).ok()?;
    if e.v != VERSION {
        return None;
    }
    let body = match (e.chat, e.emb) {
        (Some(chat), None) => EntryBody::Chat(chat),
        (None, Some(vector)) => EntryBody::Embedding {
            vector,
            tokens: e.tok.unwrap_or(0),
            model: e.model,
        },
        _ => return None,
    };
    Some(Entry {
        stored_ms: e.t,
        expires_ms: e.e,
        body,
    })
}

/// A fresh completion id, as OpenAI writes them.
pub(crate) fn fresh_id() -> String {
    format!("chatcmpl-{:032x}", fastrand::u128(..))
}

/// A stored chat answer as a whole response, with a fresh id and timestamp.
pub(crate) fn replay_whole(mut resp: ChatResponse, now_ms: u64) -> ChatResponse {
    resp.id = Some(fresh_id());
    resp.created = Some(now_ms / 1000);
    resp.object = Some("chat.completion".to_owned());
    resp
}

/// A stored chat answer as a stream: per choice one chunk with the role, text, reasoning and tool
/// calls, then one with the finish reason; then a usage chunk when `include_usage`. Every chunk
/// carries the same fresh id and timestamp.
pub(crate) fn replay_stream(resp: ChatResponse, include_usage: bool, now_ms: u64) -> ChatStream {
    let ChatResponse {
        choices,
        model,
        system_fingerprint,
        usage,
        ..
    } = resp;
    let id = fresh_id();
    let created = now_ms / 1000;
    let chunk = |choices: Vec<ChunkChoice>, usage: Option<Usage>| ChatChunk {
        choices,
        id: Some(id.clone()),
        object: Some("chat.completion.chunk".to_owned()),
        created: Some(created),
        model: model.clone(),
        system_fingerprint: system_fingerprint.clone(),
        usage,
        ..ChatChunk::default()
    };
    let mut chunks = Vec::with_capacity(choices.len() * 2 + 1);
    for (i, choice) in choices.into_iter().enumerate() {
        let index = choice.index.unwrap_or(u32::try_from(i).unwrap_or(u32::MAX));
        let msg = choice.message.unwrap_or_default();
        let tool_calls = msg.tool_calls.map(|calls| {
            calls
                .into_iter()
                .enumerate()
                .map(|(n, mut c)| {
                    c.index = Some(u32::try_from(n).unwrap_or(u32::MAX));
                    c
                })
                .collect()
        });
        let delta = Delta {
            role: Some(if msg.role.is_empty() {
                "assistant".to_owned()
            } else {
                msg.role
            }),
            content: msg.content.map(|c| c.text()),
            reasoning_content: msg.reasoning_content,
            tool_calls,
            ..Delta::default()
        };
        let mut first = ChunkChoice {
            index: Some(index),
            delta: Some(delta),
            ..ChunkChoice::default()
        };
        // As OpenAI writes it: `"finish_reason": null` until the choice's last chunk.
        first.set_explicit_null("finish_reason", true);
        chunks.push(chunk(vec![first], None));
        chunks.push(chunk(
            vec![ChunkChoice {
                index: Some(index),
                delta: Some(Delta::default()),
                finish_reason: Some(choice.finish_reason.unwrap_or_else(|| "stop".to_owned())),
                ..ChunkChoice::default()
            }],
            None,
        ));
    }
    if include_usage {
        if let Some(usage) = usage {
            chunks.push(chunk(Vec::new(), Some(usage)));
        }
    }
    Box::pin(futures_util::stream::iter(
        chunks.into_iter().map(|c| Ok(ChunkBody::from(c))),
    ))
}

/// Builds the complete answer from a stream's chunks, one chunk at a time.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    id: Option<String>,
    created: Option<u64>,
    model: Option<String>,
    system_fingerprint: Option<String>,
    usage: Option<Usage>,
    choices: Vec<ChoiceAcc>,
    /// Bytes of text gathered so far (to give up on huge answers).
    size: usize,
}

#[derive(Debug, Default)]
struct ChoiceAcc {
    index: u32,
    role: Option<String>,
    content: Option<String>,
    reasoning: Option<String>,
    tool_calls: Vec<ToolCall>,
    finish_reason: Option<String>,
}

impl Assembler {
    /// Adds one chunk.
    pub(crate) fn push(&mut self, chunk: &ChatChunk) {
        if self.id.is_none() {
            self.id.clone_from(&chunk.id);
        }
        if self.created.is_none() {
            self.created = chunk.created;
        }
        if self.model.is_none() {
            self.model.clone_from(&chunk.model);
        }
        if self.system_fingerprint.is_none() {
            self.system_fingerprint
                .clone_from(&chunk.system_fingerprint);
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        for c in &chunk.choices {
            let index = c.index.unwrap_or(0);
            let pos = if let Some(p) = self.choices.iter().position(|a| a.index == index) {
                p
            } else {
                self.choices.push(ChoiceAcc {
                    index,
                    ..ChoiceAcc::default()
                });
                self.choices.len() - 1
            };
            let acc = &mut self.choices[pos];
            if let Some(f) = &c.finish_reason {
                acc.finish_reason = Some(f.clone());
            }
            let Some(d) = &c.delta else { continue };
            if let Some(r) = &d.role {
                acc.role = Some(r.clone());
            }
            if let Some(t) = &d.content {
                self.size += t.len();
                acc.content.get_or_insert_with(String::new).push_str(t);
            }
            if let Some(t) = &d.reasoning_content {
                self.size += t.len();
                acc.reasoning.get_or_insert_with(String::new).push_str(t);
            }
            for tc in d.tool_calls.iter().flatten() {
                let n = tc.index.unwrap_or(0);
                let slot = if let Some(s) = acc
                    .tool_calls
                    .iter_mut()
                    .find(|s| s.index.unwrap_or(0) == n)
                {
                    s
                } else {
                    acc.tool_calls.push(ToolCall {
                        index: Some(n),
                        ..ToolCall::default()
                    });
                    let last = acc.tool_calls.len() - 1;
                    &mut acc.tool_calls[last]
                };
                if tc.id.is_some() {
                    slot.id.clone_from(&tc.id);
                }
                if tc.kind_name.is_some() {
                    slot.kind_name.clone_from(&tc.kind_name);
                }
                if let Some(f) = &tc.function {
                    let sf = slot.function.get_or_insert_with(FunctionCall::default);
                    if f.name.is_some() {
                        sf.name.clone_from(&f.name);
                    }
                    if let Some(a) = &f.arguments {
                        self.size += a.len();
                        sf.arguments.get_or_insert_with(String::new).push_str(a);
                    }
                }
            }
        }
    }

    /// Bytes of text gathered so far.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The complete answer.
    pub(crate) fn finish(self) -> ChatResponse {
        let mut choices: Vec<Choice> = self
            .choices
            .into_iter()
            .map(|a| {
                let tool_calls = (!a.tool_calls.is_empty()).then(|| {
                    a.tool_calls
                        .into_iter()
                        .map(|mut c| {
                            c.index = None;
                            if c.kind_name.is_none() {
                                c.kind_name = Some("function".to_owned());
                            }
                            c
                        })
                        .collect()
                });
                let mut message = Message {
                    role: a.role.unwrap_or_else(|| "assistant".to_owned()),
                    content: a.content.map(Content::Text),
                    tool_calls,
                    reasoning_content: a.reasoning,
                    ..Message::default()
                };
                if message.content.is_none() {
                    message.set_explicit_null("content", true);
                }
                Choice {
                    index: Some(a.index),
                    message: Some(message),
                    finish_reason: a.finish_reason,
                    ..Choice::default()
                }
            })
            .collect();
        choices.sort_by_key(|c| c.index);
        ChatResponse {
            choices,
            id: self.id,
            object: Some("chat.completion".to_owned()),
            created: self.created,
            model: self.model,
            usage: self.usage,
            system_fingerprint: self.system_fingerprint,
            ..ChatResponse::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;

    fn chunk(json: &str) -> ChatChunk {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn entries_round_trip_and_junk_is_corrupt() {
        let resp: ChatResponse = serde_json::from_str(
            r#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        )
        .unwrap();
        let bytes = encode_chat(&resp, Duration::from_secs(10), 1_800_000_000_000).unwrap();
        let e = decode(&bytes).unwrap();
        assert_eq!(e.stored_ms, 1_800_000_000_000);
        assert!(!e.is_stale(e.stored_ms, None));
        assert!(!e.is_stale(e.stored_ms + 9_999, None));
        assert!(e.is_stale(e.stored_ms + 10_000, None));
        assert!(e.is_stale(e.stored_ms + 2_000, Some(Duration::from_secs(1))));
        let EntryBody::Chat(back) = e.body else {
            panic!("chat entry")
        };
        assert_eq!(back.choices[0].message.as_ref().unwrap().text(), "hi");
        for junk in [
            &b"garbage"[..],
            b"{}",
            br#"{"v":2,"t":0,"e":0,"chat":{"choices":[]}}"#,
        ] {
            assert!(decode(junk).is_none());
        }
        let raw = RawValue::from_string("[0.5,1.0]".into()).unwrap();
        let bytes = encode_embedding(&raw, 3, Some("m"), Duration::from_secs(1), 0).unwrap();
        let EntryBody::Embedding { vector, tokens, .. } = decode(&bytes).unwrap().body else {
            panic!("embedding entry")
        };
        assert_eq!((vector.get(), tokens), ("[0.5,1.0]", 3));
    }

    #[tokio::test]
    async fn assembled_stream_replays_to_the_same_content() {
        let mut a = Assembler::default();
        for c in [
            r#"{"id":"c1","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        ] {
            a.push(&chunk(c));
        }
        let whole = a.finish();
        let msg = whole.choices[0].message.as_ref().unwrap();
        assert_eq!(msg.text(), "Hello");
        let call = &msg.tool_calls.as_ref().unwrap()[0];
        assert_eq!(
            call.function.as_ref().unwrap().arguments.as_deref(),
            Some("{\"a\":1}")
        );
        assert_eq!(
            whole.choices[0].finish_reason.as_deref(),
            Some("tool_calls")
        );

        let chunks: Vec<_> = replay_stream(whole.clone(), true, 1_800_000_000_000)
            .collect()
            .await;
        let mut again = Assembler::default();
        let mut ids = std::collections::HashSet::new();
        for c in &chunks {
            let c = c.as_ref().unwrap().clone().into_typed().unwrap();
            ids.insert(c.id.clone().unwrap());
            again.push(&c);
        }
        assert_eq!(ids.len(), 1);
        assert!(!ids.contains("c1"), "fresh id");
        let again = again.finish();
        assert_eq!(again.choices[0].message.as_ref().unwrap().text(), "Hello");
        assert_eq!(again.usage.unwrap().total_tokens, Some(3));
        let whole2 = replay_whole(whole, 1_800_000_000_000);
        assert_ne!(whole2.id.as_deref(), Some("c1"));
    }
}
