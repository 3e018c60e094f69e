//! Rerank wire types (`POST /v1/rerank`, `/v2/rerank`, `/rerank`), in Cohere's format, as LiteLLM
//! takes and answers them.
//!
//! The request: `model`, `query`, `documents` (texts, or objects whose fields `rank_fields`
//! names), `top_n`, `return_documents`, `rank_fields`, `max_chunks_per_doc`,
//! `max_tokens_per_doc`. The answer, whichever provider served it:
//! `{id, results: [{index, relevance_score, document?}], meta: {billed_units: {…}, tokens: {…}}}`
//! ([`RerankAnswer`]).

use serde::{Deserialize, Serialize};

use super::{usage::TokenUsage, wire::wire_object};

wire_object! {
    /// The body of `POST /v1/rerank` (Cohere's rerank request).
    pub struct RerankRequest {
        req /// The model group.
        model: String = "model",
        req /// The search query.
        query: String = "query",
        req /// The documents to rank: texts or objects.
        documents: Vec<RerankDocument> = "documents",
        opt /// How many results to return (all when absent).
        top_n: u64 = "top_n",
        opt /// Return each ranked document with its score.
        return_documents: bool = "return_documents",
        opt /// For object documents: the fields ranked on.
        rank_fields: Vec<String> = "rank_fields",
        opt /// Cohere v1: the chunks a long document is split into at most.
        max_chunks_per_doc: u64 = "max_chunks_per_doc",
        opt /// Cohere v2: the tokens a long document is cut to.
        max_tokens_per_doc: u64 = "max_tokens_per_doc",
        opt /// LiteLLM request metadata; never sent upstream.
        metadata: serde_json::Value = "metadata",
    }
}

/// One document to rank: a text, or an object (ranked on its `rank_fields`, or its `text`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RerankDocument {
    /// A text.
    Text(String),
    /// An object (Cohere's structured document).
    Object(serde_json::Map<String, serde_json::Value>),
}

impl RerankDocument {
    /// The document's text: the text itself, or an object's `text` member (else its JSON).
    #[must_use]
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Self::Text(t) => std::borrow::Cow::Borrowed(t),
            Self::Object(o) => match o.get("text") {
                Some(serde_json::Value::String(t)) => std::borrow::Cow::Borrowed(t),
                _ => std::borrow::Cow::Owned(serde_json::Value::Object(o.clone()).to_string()),
            },
        }
    }

    /// The document's size in bytes, for the input estimate.
    fn len_estimate(&self) -> usize {
        match self {
            Self::Text(t) => t.len(),
            Self::Object(o) => o
                .values()
                .map(|v| v.as_str().map_or_else(|| v.to_string().len(), str::len))
                .sum(),
        }
    }
}

impl RerankRequest {
    /// The query's and the documents' tokens, estimated from their bytes.
    #[must_use]
    pub fn estimate_tokens(&self) -> u64 {
        let bytes = self.query.len()
            + self
                .documents
                .iter()
                .map(RerankDocument::len_estimate)
                .sum::<usize>();
        super::usage::estimate_tokens(bytes)
    }
}

/// One ranked document of a [`RerankAnswer`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RerankResult {
    /// The document's position in the request.
    pub index: u64,
    /// Its relevance to the query.
    pub relevance_score: f64,
    /// The document, when asked for (`return_documents`): `{"text": …}` or the object sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<serde_json::Value>,
}

/// A count Cohere types as a number (`2` or `2.0`): rounded up, `None` when negative or not
/// finite.
fn count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let n = Option::<f64>::deserialize(d)?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked: finite, >= 0
    Ok(n.filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| n.ceil() as u64))
}

/// What a rerank was billed: Cohere's search units, or the tokens of the per-token hosts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BilledUnits {
    /// Cohere's search units (one query over up to 100 documents).
    #[serde(
        default,
        deserialize_with = "count",
        skip_serializing_if = "Option::is_none"
    )]
    pub search_units: Option<u64>,
    /// The tokens a per-token host (Jina AI, Voyage, vLLM) counted.
    #[serde(
        default,
        deserialize_with = "count",
        skip_serializing_if = "Option::is_none"
    )]
    pub total_tokens: Option<u64>,
}

/// The tokens a rerank used, as Cohere states them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RerankTokens {
    /// Input tokens.
    #[serde(
        default,
        deserialize_with = "count",
        skip_serializing_if = "Option::is_none"
    )]
    pub input_tokens: Option<u64>,
    /// Output tokens.
    #[serde(
        default,
        deserialize_with = "count",
        skip_serializing_if = "Option::is_none"
    )]
    pub output_tokens: Option<u64>,
}

/// `meta` of a rerank answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RerankMeta {
    /// Cohere's `api_version`, relayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<serde_json::Value>,
    /// What the call was billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_units: Option<BilledUnits>,
    /// The tokens the call used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<RerankTokens>,
}

/// A rerank answer in Cohere's shape: what `/v1/rerank` answers for every provider.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RerankAnswer {
    /// The answer's id.
    #[serde(default)]
    pub id: Option<String>,
    /// The ranked documents, most relevant first.
    pub results: Vec<RerankResult>,
    /// Billing and usage.
    #[serde(default)]
    pub meta: Option<RerankMeta>,
}

impl RerankAnswer {
    /// The usage the answer states: its input tokens (`meta.tokens.input_tokens`, else
    /// `meta.billed_units.total_tokens`) and its search units; `None` when it states neither.
    #[must_use]
    pub fn token_usage(&self) -> Option<TokenUsage> {
        let meta = self.meta.as_ref()?;
        let billed = meta.billed_units.unwrap_or_default();
        let tokens = meta.tokens.unwrap_or_default();
        let input = tokens.input_tokens.or(billed.total_tokens);
        if input.is_none() && billed.search_units.is_none() && tokens.output_tokens.is_none() {
            return None;
        }
        let mut usage = TokenUsage::new(input.unwrap_or(0), tokens.output_tokens.unwrap_or(0));
        usage.search_units = billed.search_units.unwrap_or(0);
        Some(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_object_documents_and_keeps_unknown_keys() {
        let r: RerankRequest = serde_json::from_str(
            r#"{"model":"m","query":"q","documents":["ab",{"text":"cd","title":"t"}],
                "top_n":1,"rank_fields":["text"],"return_documents":true,"custom":1}"#,
        )
        .unwrap();
        assert_eq!(r.documents.len(), 2);
        assert_eq!(r.documents[0].text(), "ab");
        assert_eq!(r.documents[1].text(), "cd");
        assert_eq!(r.top_n, Some(1));
        assert_eq!(r.rank_fields.as_deref(), Some(&["text".to_owned()][..]));
        assert!(r.extra.get_as::<u32>("custom").is_some());
        // 1 (query) + 2 + 2 + 1 ("t") bytes.
        assert_eq!(r.estimate_tokens(), 2);
        for bad in [
            r#"{"model":"m","documents":[]}"#,
            r#"{"model":"m","query":"q"}"#,
            r#"{"query":"q","documents":[]}"#,
            r#"{"model":"m","query":"q","documents":[1]}"#,
        ] {
            assert!(serde_json::from_str::<RerankRequest>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn usage_from_search_units_or_tokens() {
        let a: RerankAnswer = serde_json::from_str(
            r#"{"id":"x","results":[],"meta":{"billed_units":{"search_units":2}}}"#,
        )
        .unwrap();
        let u = a.token_usage().unwrap();
        assert_eq!((u.input, u.search_units), (0, 2));
        let a: RerankAnswer =
            serde_json::from_str(r#"{"results":[],"meta":{"billed_units":{"total_tokens":30}}}"#)
                .unwrap();
        assert_eq!(a.token_usage().unwrap().input, 30);
        let a: RerankAnswer = serde_json::from_str(r#"{"results":[]}"#).unwrap();
        assert!(a.token_usage().is_none());
        // Cohere types its counts as doubles.
        let a: RerankAnswer = serde_json::from_str(
            r#"{"results":[],"meta":{"billed_units":{"search_units":1.0},"tokens":{"input_tokens":12.0,"output_tokens":-1}}}"#,
        )
        .unwrap();
        let u = a.token_usage().unwrap();
        assert_eq!((u.search_units, u.input, u.output), (1, 12, 0));
    }
}
