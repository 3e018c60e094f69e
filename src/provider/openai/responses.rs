//! OpenAI's Responses API, natively (OpenAI and Azure): the client's body relayed with only
//! `model` replaced, the answer and its events relayed as the provider sent them, each stating
//! its facts (model, usage from `response.completed`, text bytes of the deltas).

use std::{
    collections::VecDeque,
    future::Future as _,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{BufMut as _, Bytes, BytesMut};
use eventsource_stream2::EventStream as SseEvents;
use futures_core::Stream;
use pin_project_lite::pin_project;

use super::error::error_from_object;
use crate::{
    error::{ErrorKind, LlmError},
    provider::{bridge::responses::ResponsesContext, Deployment},
    provider::{
        resolve::Endpoint,
        sse::{bounded_events, Bounded, MAX_EVENT_BYTES},
        ByteStream,
    },
    store::responses::{RelayedResponse, SharedResponseStore},
    types::{
        responses::{ResponseFacts, ResponseObjectRequest},
        EventStream, JsonBody, LlmRequest, LlmResponse, Operation, StreamEvent, TokenUsage,
    },
};

/// The Responses endpoint beside a deployment's chat endpoint: `…/chat/completions` becomes
/// `…/responses` (the query, such as Azure's `api-version`, kept).
pub(crate) fn sibling_endpoint(chat: &Endpoint) -> Result<Endpoint, LlmError> {
    let uri = chat.uri();
    let path = uri.path();
    let base = path.strip_suffix("chat/completions").unwrap_or(path);
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
    url.push_str("responses");
    if let Some(q) = uri.query() {
        url.push('?');
        url.push_str(q);
    }
    Endpoint::parse(&url)
}

/// A complete Responses answer: the provider's bytes, with its model and usage read.
pub fn decode_response(body: &Bytes) -> Result<LlmResponse, LlmError> {
    decode_relayed(body, None)
}

/// [`decode_response`], recording the response's id for its owner when `remember` says so.
pub(crate) fn decode_relayed(
    body: &Bytes,
    remember: Option<Remember>,
) -> Result<LlmResponse, LlmError> {
    let facts: ResponseFacts = serde_json::from_slice(body)
        .map_err(|e| super::invalid_upstream_json("Responses API answer", &e))?;
    if let (Some(r), Some(id)) = (remember, facts.id.as_deref()) {
        r.record(id);
    }
    Ok(LlmResponse::json(
        JsonBody::new(body.clone())
            .with_usage(facts.usage.as_ref().map(TokenUsage::from))
            .with_model(facts.model.map(Arc::from)),
    ))
}

/// A Responses event stream relayed event by event (see the module docs).
pub fn responses_events(provider: &'static str, body: ByteStream) -> EventStream {
    relayed_events(provider, body, None)
}

/// [`responses_events`], recording the response's id (from the first event that carries the
/// `response`) for its owner when `remember` says so.
pub(crate) fn relayed_events(
    provider: &'static str,
    body: ByteStream,
    remember: Option<Remember>,
) -> EventStream {
    Box::pin(RelayedEvents {
        events: bounded_events(body, MAX_EVENT_BYTES),
        provider,
        pending: VecDeque::new(),
        finished: false,
        ended: false,
        remember,
    })
}

/// What recording a relayed response needs: the store and owner of the call
/// ([`ResponsesContext`]), the deployment that answered and the group asked for. Made only for a
/// Responses call that asked to be stored (`store`, default `true`): OpenAI keeps no other.
#[derive(Debug)]
pub(crate) struct Remember {
    store: SharedResponseStore,
    owner: Arc<str>,
    deployment: Arc<str>,
    group: Arc<str>,
}

impl Remember {
    /// For `req` (a Responses call) answered by `dep`; `None` when nothing is to be recorded.
    pub(crate) fn of(req: &LlmRequest, dep: &Deployment) -> Option<Self> {
        let Operation::Responses(body) = &req.op else {
            return None;
        };
        let ctx = req.extensions.get::<ResponsesContext>()?;
        body.wants_store().then(|| Self {
            store: ctx.store.clone(),
            owner: ctx.owner.clone(),
            deployment: dep.id.clone(),
            group: Arc::from(req.model()),
        })
    }

    /// Records response `id` (bookkeeping: an in-memory store has it before this returns, a
    /// database writes off the request path).
    fn record(self, id: &str) {
        let record = RelayedResponse::new(Arc::from(id), self.owner, self.deployment, self.group);
        let store = self.store;
        let mut put = Box::pin(async move {
            if let Err(e) = store.put_relayed(record).await {
                tracing::warn!(error = %e, "could not record a relayed Responses answer");
            }
        });
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if put.as_mut().poll(&mut cx).is_pending() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(put);
            }
        }
    }
}

/// The URL of a call on a stored response: `{responses endpoint}/{id}{suffix}`, the endpoint's
/// query (Azure's `api-version`) and the client's query kept.
pub(crate) fn object_endpoint(
    responses: &Endpoint,
    obj: &ResponseObjectRequest,
) -> Result<Endpoint, LlmError> {
    let uri = responses.uri();
    let mut url = String::with_capacity(128);
    if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
        url.push_str(scheme);
        url.push_str("://");
        url.push_str(authority.as_str());
    }
    url.push_str(uri.path().trim_end_matches('/'));
    url.push_str(&obj.path_tail());
    let mut sep = '?';
    for q in [uri.query(), obj.query.as_deref()].into_iter().flatten() {
        if q.contains(['#', ' ']) {
            return Err(LlmError::bad_request("the query string is not valid"));
        }
        url.push(sep);
        url.push_str(q);
        sep = '&';
    }
    Endpoint::parse(&url)
}

/// The upstream request of a call on a stored response, given the deployment's Responses
/// endpoint and resolved head: the action's method, no body.
pub(crate) fn object_request(
    responses: &Endpoint,
    obj: &ResponseObjectRequest,
    resolved: &crate::provider::resolve::Resolved,
) -> Result<http::Request<Bytes>, LlmError> {
    let endpoint = object_endpoint(responses, obj)?;
    let mut head = super::resolved_head(&endpoint, resolved)?;
    *head.method_mut() = obj.action.method();
    head.headers_mut().remove(http::header::CONTENT_TYPE);
    Ok(head.map(|()| Bytes::new()))
}

/// The answer of a call on a stored response: the provider's JSON, relayed as it is (no usage:
/// nothing was generated).
pub(crate) fn decode_object(body: &Bytes) -> LlmResponse {
    LlmResponse::json(JsonBody::new(body.clone()))
}

pin_project! {
    /// The provider's Responses events, each re-framed as it came with its facts stated.
    struct RelayedEvents {
        #[pin]
        events: SseEvents<Bounded>,
        provider: &'static str,
        pending: VecDeque<StreamEvent>,
        // The stream has ended (or failed): nothing more is read.
        finished: bool,
        // The provider said the answer is over (`response.completed` / `.incomplete` / `.failed`,
        // or an `error` event).
        ended: bool,
        // Records the response's id once the first event names it.
        remember: Option<Remember>,
    }
}

/// The members of an event's data the facts need.
#[derive(serde::Deserialize)]
struct EventFacts<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    delta: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    response: Option<ResponseFacts>,
}

/// `event: {name}\ndata: {data}\n\n` (a data of several lines is one `data:` line each).
pub(crate) fn frame(name: &str, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(name.len() + data.len() + 16);
    if !name.is_empty() {
        out.put_slice(b"event: ");
        out.put_slice(name.as_bytes());
        out.put_u8(b'\n');
    }
    for line in data.split('\n') {
        out.put_slice(b"data: ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.freeze()
}

/// The event `name`/`data` with its facts, and whether it ends the answer.
fn relay_event(
    provider: &'static str,
    name: &str,
    data: &str,
    remember: &mut Option<Remember>,
) -> Result<(StreamEvent, bool), LlmError> {
    let mut event = StreamEvent::new(frame(name, data));
    let facts: EventFacts<'_> = serde_json::from_str(data).map_err(|e| {
        LlmError::new(
            ErrorKind::InternalServer,
            format!("malformed Responses event from the provider: {e}"),
        )
        .with_provider(provider)
    })?;
    let kind = facts.kind.as_deref().unwrap_or(name);
    let mut ends = false;
    match kind {
        "response.completed" | "response.incomplete" => {
            ends = true;
            event = event.final_event();
        }
        "response.failed" | "error" => ends = true,
        _ => {}
    }
    if let Some(delta) = &facts.delta {
        if kind.ends_with(".delta") {
            event = event.with_text_bytes(delta.len());
        }
    }
    if let Some(r) = facts.response {
        if let Some(id) = r.id.as_deref() {
            if let Some(rem) = remember.take() {
                rem.record(id);
            }
        }
        event = event
            .with_usage(r.usage.as_ref().map(TokenUsage::from))
            .with_model(r.model.map(Arc::from));
    }
    Ok((event, ends))
}

impl Stream for RelayedEvents {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(e) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(e)));
            }
            if *this.finished {
                return Poll::Ready(None);
            }
            match this.events.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(ev))) => {
                    let data = ev.data.trim();
                    if data.is_empty() || data == "[DONE]" {
                        continue;
                    }
                    // An OpenAI-style error object in place of an event: the provider failed.
                    // The parser names an event without `event:` "message".
                    let name = if ev.event == "message" {
                        ""
                    } else {
                        ev.event.as_str()
                    };
                    if name.is_empty() && data.starts_with("{\"error\"") {
                        if let Ok(serde_json::Value::Object(mut o)) = serde_json::from_str(data) {
                            if let Some(err) = o.remove("error") {
                                *this.finished = true;
                                return Poll::Ready(Some(Err(error_from_object(
                                    this.provider,
                                    http::StatusCode::INTERNAL_SERVER_ERROR,
                                    &err,
                                ))));
                            }
                        }
                    }
                    match relay_event(this.provider, name, data, this.remember) {
                        Ok((event, ends)) => {
                            *this.ended |= ends;
                            this.pending.push_back(event);
                        }
                        Err(e) => {
                            *this.finished = true;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    *this.finished = true;
                    let err = e.into_transport().unwrap_or_else(|| {
                        LlmError::new(
                            ErrorKind::InternalServer,
                            "malformed event stream from provider: not UTF-8",
                        )
                    });
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(None) => {
                    *this.finished = true;
                    if !*this.ended {
                        return Poll::Ready(Some(Err(LlmError::new(
                            ErrorKind::ApiConnection,
                            "the provider's Responses stream ended before the response finished",
                        )
                        .with_provider(*this.provider))));
                    }
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
        store::responses::{MemoryResponseStore, ResponseStore as _},
        types::responses::ResponseAction,
    };

    #[test]
    fn a_call_on_a_response_goes_beside_the_responses_endpoint() {
        let ep = Endpoint::parse(
            "https://r.openai.azure.com/openai/responses?api-version=2025-04-01-preview",
        )
        .unwrap();
        let obj = ResponseObjectRequest::new("g", "resp_9", ResponseAction::InputItems)
            .with_query(Some("limit=2".into()));
        let url = object_endpoint(&ep, &obj).unwrap();
        assert_eq!(
            url.uri().to_string(),
            "https://r.openai.azure.com/openai/responses/resp_9/input_items?api-version=2025-04-01-preview&limit=2"
        );
        let ep = Endpoint::parse("http://h:9/v1/responses").unwrap();
        let obj = ResponseObjectRequest::new("g", "resp_9", ResponseAction::Retrieve)
            .with_query(Some("a b".into()));
        assert_eq!(
            object_endpoint(&ep, &obj).unwrap_err().status(),
            http::StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn a_relayed_answer_and_stream_record_their_id_for_the_caller() {
        let store = Arc::new(MemoryResponseStore::default());
        let dep = Deployment::new("g", "openai/gpt-4.1");
        let mk = |body: &str| {
            let mut req = LlmRequest::responses_from_bytes(
                serde_json::from_str(body).unwrap(),
                Bytes::from(body.to_owned()),
            );
            req.extensions.insert(ResponsesContext {
                store: store.clone(),
                owner: "alice".into(),
                previous: None,
            });
            req
        };
        let answer = Bytes::from_static(br#"{"id":"resp_j","model":"m","usage":null}"#);
        decode_relayed(&answer, Remember::of(&mk(r#"{"model":"g"}"#), &dep)).unwrap();
        let got = store.get_relayed("resp_j", "alice").await.unwrap().unwrap();
        assert_eq!((&*got.deployment, &*got.group), (&*dep.id, "g"));
        // `store: false`: nothing recorded.
        assert!(Remember::of(&mk(r#"{"model":"g","store":false}"#), &dep).is_none());
        let mut events = relayed_events(
            "openai",
            body(&[STREAM]),
            Remember::of(&mk(r#"{"model":"g"}"#), &dep),
        );
        while events.next().await.is_some() {}
        assert!(store
            .get_relayed("resp_1", "alice")
            .await
            .unwrap()
            .is_some());
        assert!(store.get_relayed("resp_1", "bob").await.unwrap().is_none());
    }

    fn body(parts: &[&'static str]) -> ByteStream {
        let items: Vec<Result<Bytes, LlmError>> = parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p.as_bytes())))
            .collect();
        Box::pin(futures_util::stream::iter(items))
    }

    const STREAM: &str = concat!(
        "event: response.created\n",
        "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"model\":\"gpt-4.1\",\"output\":[],\"usage\":null}}\n\n",
        "event: response.output_text.delta\n",
        "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hello\"}\n\n",
        "event: response.completed\n",
        "data: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"model\":\"gpt-4.1\",\"usage\":{\"input_tokens\":12,\"input_tokens_details\":{\"cached_tokens\":2},\"output_tokens\":5,\"output_tokens_details\":{\"reasoning_tokens\":1},\"total_tokens\":17}}}\n\n",
    );

    /// Every split of the stream relays the same frames, byte for byte, with the facts.
    #[tokio::test]
    async fn relays_frames_as_sent_with_their_facts_at_any_split() {
        for cut in [1, 7, 50, 120, STREAM.len() - 1] {
            let (a, b) = STREAM.split_at(cut);
            let a: &'static str = Box::leak(a.to_owned().into_boxed_str());
            let b: &'static str = Box::leak(b.to_owned().into_boxed_str());
            let events: Vec<_> = responses_events("openai", body(&[a, b])).collect().await;
            let events: Vec<StreamEvent> = events.into_iter().map(Result::unwrap).collect();
            assert_eq!(events.len(), 3, "cut at {cut}");
            let joined: Vec<u8> = events.iter().flat_map(|e| e.frame.to_vec()).collect();
            assert_eq!(String::from_utf8(joined).unwrap(), STREAM, "cut at {cut}");
            assert_eq!(events[0].model.as_deref(), Some("gpt-4.1"));
            assert_eq!(events[1].text_bytes, 5);
            let u = events[2].usage.unwrap();
            assert_eq!(
                (u.input, u.output, u.cache_read, u.reasoning, u.total),
                (12, 5, 2, 1, 17)
            );
            assert!(events[2].is_final && !events[1].is_final);
        }
    }

    #[tokio::test]
    async fn a_stream_cut_before_the_response_finished_is_an_error() {
        let cut = &STREAM[..STREAM.find("event: response.completed").unwrap()];
        let cut: &'static str = Box::leak(cut.to_owned().into_boxed_str());
        let items: Vec<_> = responses_events("openai", body(&[cut])).collect().await;
        assert_eq!(items.len(), 3);
        let err = items.into_iter().last().unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ApiConnection);
    }

    #[tokio::test]
    async fn an_error_object_and_malformed_data_are_errors() {
        let items: Vec<_> = responses_events(
            "openai",
            body(&["data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n"]),
        )
        .collect()
        .await;
        assert_eq!(items.len(), 1, "{items:?}");
        assert!(items[0]
            .as_ref()
            .unwrap_err()
            .message()
            .contains("overloaded"));
        let items: Vec<_> = responses_events("openai", body(&["event: x\ndata: {nope\n\n"]))
            .collect()
            .await;
        assert!(items[0].is_err());
    }

    #[test]
    fn the_responses_endpoint_sits_beside_the_chat_endpoint() {
        let e = Endpoint::parse("https://api.openai.com/v1/chat/completions").unwrap();
        assert_eq!(
            sibling_endpoint(&e).unwrap().uri().to_string(),
            "https://api.openai.com/v1/responses"
        );
        let e = Endpoint::parse("http://127.0.0.1:9/x/chat/completions?api-version=v").unwrap();
        assert_eq!(
            sibling_endpoint(&e).unwrap().uri().to_string(),
            "http://127.0.0.1:9/x/responses?api-version=v"
        );
    }

    #[test]
    fn a_complete_answer_states_model_and_usage() {
        let body = Bytes::from_static(
            br#"{"id":"resp_1","object":"response","model":"gpt-4.1","output":[],"usage":{"input_tokens":3,"output_tokens":4,"total_tokens":7}}"#,
        );
        let r = decode_response(&body).unwrap();
        assert_eq!(r.token_usage(), Some(TokenUsage::new(3, 4)));
        assert!(decode_response(&Bytes::from_static(b"[1]")).is_err());
    }
}
