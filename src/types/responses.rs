//! OpenAI Responses API wire types (`POST /v1/responses`).
//!
//! Typed only where a layer or a translation reads a field: the model, `stream`, the fields the
//! chat bridge maps (`input`, `instructions`, `tools`, …, kept as the client's raw JSON and parsed
//! only by the bridge), and `previous_response_id` / `store`. Every other key is kept in `extra`.
//! A request to an OpenAI or Azure deployment is relayed as the client's bytes with only `model`
//! replaced (see [`LlmRequest::raw_body`](crate::LlmRequest::raw_body)).

use serde_json::value::RawValue;

use super::{usage::TokenUsage, wire::wire_object};

wire_object! {
    /// The body of `POST /v1/responses`.
    pub struct ResponsesRequest {
        req /// The model group (or model) the client asked for.
        model: String = "model",
        opt /// A string (one user message) or a list of input items, kept as sent.
        input: Box<RawValue> = "input",
        opt /// A system (developer) message put before the input.
        instructions: String = "instructions",
        opt /// Stream the answer as Responses server-sent events.
        stream: bool = "stream",
        opt /// Tools the model may call, kept as sent.
        tools: Box<RawValue> = "tools",
        opt /// `"none" | "auto" | "required"` or `{"type":"function","name":..}`, kept as sent.
        tool_choice: Box<RawValue> = "tool_choice",
        opt /// Allow several tool calls in one turn.
        parallel_tool_calls: bool = "parallel_tool_calls",
        opt /// Output token limit, reasoning included.
        max_output_tokens: u64 = "max_output_tokens",
        opt /// Sampling temperature.
        temperature: f64 = "temperature",
        opt /// Nucleus sampling.
        top_p: f64 = "top_p",
        opt /// `{"effort": .., "summary": ..}`, kept as sent.
        reasoning: Box<RawValue> = "reasoning",
        opt /// `{"format": {"type": "text" | "json_object" | "json_schema", ..}}`, kept as sent.
        text: Box<RawValue> = "text",
        opt /// The response this one continues.
        previous_response_id: String = "previous_response_id",
        opt /// Whether the response is stored for `previous_response_id` and retrieval (OpenAI's
        /// default: `true`).
        store: bool = "store",
        opt /// End-user id.
        user: String = "user",
        opt /// LiteLLM request metadata (tags, trace ids); never sent upstream.
        metadata: serde_json::Value = "metadata",
    }
}

impl ResponsesRequest {
    /// A cheap estimate of the input tokens: the raw input's and instructions' bytes.
    #[must_use]
    pub fn estimate_input_tokens(&self) -> u64 {
        let input = self.input.as_ref().map_or(0, |r| r.get().len());
        let instructions = self.instructions.as_ref().map_or(0, String::len);
        super::usage::estimate_tokens(input + instructions)
    }

    /// Whether the client asked for the response to be stored (OpenAI's default: yes).
    #[must_use]
    pub fn wants_store(&self) -> bool {
        self.store.unwrap_or(true)
    }
}

/// The usage object of a Responses answer: `input_tokens` (cached ones included,
/// `input_tokens_details.cached_tokens` their part), `output_tokens` (reasoning included,
/// `output_tokens_details.reasoning_tokens` its part), `total_tokens`.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
#[non_exhaustive]
pub struct ResponsesUsage {
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Sum, as the provider counted it.
    #[serde(default)]
    pub total_tokens: Option<u64>,
    /// `{"cached_tokens": n}`.
    #[serde(default)]
    pub input_tokens_details: Option<InputDetails>,
    /// `{"reasoning_tokens": n}`.
    #[serde(default)]
    pub output_tokens_details: Option<OutputDetails>,
}

/// `usage.input_tokens_details`.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
#[non_exhaustive]
pub struct InputDetails {
    /// Tokens read from the provider's prompt cache.
    #[serde(default)]
    pub cached_tokens: u64,
}

/// `usage.output_tokens_details`.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
#[non_exhaustive]
pub struct OutputDetails {
    /// Reasoning tokens.
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl From<&ResponsesUsage> for TokenUsage {
    fn from(u: &ResponsesUsage) -> Self {
        let mut t = Self::new(u.input_tokens, u.output_tokens);
        t.cache_read = u.input_tokens_details.map_or(0, |d| d.cached_tokens);
        t.reasoning = u.output_tokens_details.map_or(0, |d| d.reasoning_tokens);
        if let Some(total) = u.total_tokens {
            t.total = total;
        }
        t
    }
}

/// What the layers read from a Responses `response` object: its model and usage (every other
/// member is skipped without being kept).
#[derive(Debug, Default, serde::Deserialize)]
#[non_exhaustive]
pub struct ResponseFacts {
    /// The response id.
    #[serde(default)]
    pub id: Option<String>,
    /// The model that answered.
    #[serde(default)]
    pub model: Option<String>,
    /// Its usage (on a finished response).
    #[serde(default)]
    pub usage: Option<ResponsesUsage>,
}

/// A request extension holding the router to one deployment (by its id): the call on a
/// response goes to the deployment that made it, never to another of the group (another
/// account would not know the id). The router answers 404 when the group has no such
/// deployment any more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedDeployment(pub std::sync::Arc<str>);

/// What a call on a stored response does (`/v1/responses/{id}…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseAction {
    /// `GET /v1/responses/{id}`.
    Retrieve,
    /// `DELETE /v1/responses/{id}`.
    Delete,
    /// `GET /v1/responses/{id}/input_items`.
    InputItems,
    /// `POST /v1/responses/{id}/cancel`.
    Cancel,
}

impl ResponseAction {
    /// The HTTP method upstream.
    #[must_use]
    pub fn method(self) -> http::Method {
        match self {
            Self::Retrieve | Self::InputItems => http::Method::GET,
            Self::Delete => http::Method::DELETE,
            Self::Cancel => http::Method::POST,
        }
    }

    /// The path after `/responses/{id}` (`""`, `/input_items`, `/cancel`).
    #[must_use]
    pub const fn suffix(self) -> &'static str {
        match self {
            Self::Retrieve | Self::Delete => "",
            Self::InputItems => "/input_items",
            Self::Cancel => "/cancel",
        }
    }
}

/// A call on a response an OpenAI or Azure deployment made (relayed): sent to that very
/// deployment (the router is held to it by
/// [`PinnedDeployment`]), with its credentials.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ResponseObjectRequest {
    /// The model group the response was made through (its deployment is in it).
    pub model: String,
    /// The provider's response id, as it made it.
    pub id: String,
    /// What to do with it.
    pub action: ResponseAction,
    /// The client's query string (`include[]`, `limit`, `after`, `order`), without the gateway's
    /// own `key`; `None` when empty.
    pub query: Option<String>,
}

impl ResponseObjectRequest {
    /// A call `action` on response `id`, made through the model group `model`.
    #[must_use]
    pub fn new(model: impl Into<String>, id: impl Into<String>, action: ResponseAction) -> Self {
        Self {
            model: model.into(),
            id: id.into(),
            action,
            query: None,
        }
    }

    /// With the client's query string (`None` or empty for none).
    #[must_use]
    pub fn with_query(mut self, query: Option<String>) -> Self {
        self.query = query.filter(|q| !q.is_empty());
        self
    }

    /// The path and query to append to the Responses endpoint's path:
    /// `/{id}{suffix}` (the id percent-encoded where it is not a plain token).
    #[must_use]
    pub fn path_tail(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(self.id.len() + 16);
        out.push('/');
        for b in self.id.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~') {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
        out.push_str(self.action.suffix());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_on_a_response_names_its_method_and_path() {
        let get = ResponseObjectRequest::new("g", "resp_1", ResponseAction::Retrieve)
            .with_query(Some(String::new()));
        assert_eq!(get.path_tail(), "/resp_1");
        assert_eq!(get.query, None);
        assert_eq!(get.action.method(), http::Method::GET);
        let items = ResponseObjectRequest::new("g", "resp_1", ResponseAction::InputItems);
        assert_eq!(items.path_tail(), "/resp_1/input_items");
        let cancel = ResponseObjectRequest::new("g", "resp_1", ResponseAction::Cancel);
        assert_eq!(
            (cancel.path_tail().as_str(), cancel.action.method()),
            ("/resp_1/cancel", http::Method::POST)
        );
        assert_eq!(ResponseAction::Delete.method(), http::Method::DELETE);
        // An id is one path segment, whatever it holds.
        let odd = ResponseObjectRequest::new("g", "a/../b?c", ResponseAction::Delete);
        assert_eq!(odd.path_tail(), "/a%2F..%2Fb%3Fc");
    }

    #[test]
    fn parses_typed_fields_and_keeps_the_rest() {
        let body = r#"{"model":"m","input":[{"role":"user","content":"hi"}],"stream":true,
            "store":false,"include":["reasoning.encrypted_content"],"tools":[]}"#;
        let r: ResponsesRequest = serde_json::from_str(body).unwrap();
        assert_eq!(r.model, "m");
        assert_eq!(r.stream, Some(true));
        assert!(!r.wants_store());
        assert!(r.extra.get("include").is_some());
        assert_eq!(
            r.input.as_ref().map(|i| i.get()),
            Some(r#"[{"role":"user","content":"hi"}]"#)
        );
        assert!(r.estimate_input_tokens() > 0);
    }

    #[test]
    fn usage_counts_cached_and_reasoning_parts() {
        let f: ResponseFacts = serde_json::from_str(
            r#"{"id":"resp_1","object":"response","model":"gpt","output":[{"type":"message"}],
            "usage":{"input_tokens": 100, "input_tokens_details": {"cached_tokens": 40},
            "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 10},
            "total_tokens": 130}}"#,
        )
        .unwrap();
        let u = TokenUsage::from(&f.usage.unwrap());
        assert_eq!(
            (u.input, u.output, u.cache_read, u.reasoning, u.total),
            (100, 30, 40, 10, 130)
        );
        assert_eq!(f.model.as_deref(), Some("gpt"));
        let bare: ResponsesUsage =
            serde_json::from_str(r#"{"input_tokens":3,"output_tokens":4}"#).unwrap();
        assert_eq!(TokenUsage::from(&bare), TokenUsage::new(3, 4));
    }
}
