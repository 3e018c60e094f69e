//! Rerank on Bedrock: Cohere's rerank request as the `bedrock-agent-runtime` `Rerank` API
//! (`POST {agent endpoint}/rerank`, SigV4 with the `bedrock` signing name, as LiteLLM signs it),
//! answered in Cohere's shape.
//!
//! - The endpoint is the deployment's runtime endpoint with `bedrock-runtime` replaced by
//!   `bedrock-agent-runtime` (`https://bedrock-agent-runtime.{region}.amazonaws.com`), as
//!   LiteLLM's handler builds it; an `api_base` without that name is used as it is.
//! - The body: `queries: [{"type": "TEXT", "textQuery": {"text": query}}]`, each document an
//!   `INLINE` source (a text as `textDocument`, an object as `jsonDocument`), and
//!   `rerankingConfiguration.bedrockRerankingConfiguration` with `numberOfResults` (`top_n`, else
//!   every document) and the model's ARN. A bare model id (`amazon.rerank-v1:0`,
//!   `cohere.rerank-v3-5:0`) becomes `arn:aws:bedrock:{region}::foundation-model/{id}` (the API
//!   takes only ARNs; LiteLLM sends the id as written); an ARN is sent as it is.
//! - The answer `{"results": [{"index", "relevanceScore", "document"?}]}` becomes Cohere's
//!   `results` (`relevance_score`; with `return_documents`, the request's document at that index),
//!   and `meta.billed_units.search_units`: one search unit per 100 documents (AWS bills a query
//!   of up to 100 document chunks as one; LiteLLM counts 1 per call), priced at the price map's
//!   `input_cost_per_query` (`amazon.rerank-v1:0`: $0.001).
//!
//! `rank_fields`, `max_chunks_per_doc` and `max_tokens_per_doc` have no Bedrock counterpart and
//! are a 400 naming the key.
//!
//! Reference: <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_agent-runtime_Rerank.html>;
//! LiteLLM's `llms/bedrock/rerank/`.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    error::{ErrorKind, LlmError},
    provider::openai::invalid_upstream_json,
    types::{
        rerank::{
            BilledUnits, RerankAnswer, RerankDocument, RerankMeta, RerankRequest, RerankResult,
        },
        JsonBody, LlmResponse,
    },
};

/// Documents one search unit covers.
const DOCS_PER_SEARCH_UNIT: u64 = 100;

/// The agent-runtime endpoint's `Rerank` URL from the runtime endpoint.
#[must_use]
pub fn url(runtime_endpoint: &str) -> String {
    format!(
        "{}/rerank",
        runtime_endpoint.replacen("bedrock-runtime", "bedrock-agent-runtime", 1)
    )
}

/// The model ARN: `model_id` when it is one, else its foundation-model ARN in `region`.
#[must_use]
pub fn model_arn(model_id: &str, region: &str) -> String {
    if model_id.starts_with("arn:") {
        model_id.to_owned()
    } else {
        format!("arn:aws:bedrock:{region}::foundation-model/{model_id}")
    }
}

/// The `Rerank` body of `r` for the model `arn`.
pub fn body(r: &RerankRequest, arn: &str) -> Result<Bytes, LlmError> {
    for (key, set) in [
        ("rank_fields", r.rank_fields.is_some()),
        ("max_chunks_per_doc", r.max_chunks_per_doc.is_some()),
        ("max_tokens_per_doc", r.max_tokens_per_doc.is_some()),
    ] {
        if set {
            return Err(LlmError::bad_request(format!(
                "the bedrock provider does not support {key} on rerank"
            ))
            .with_param(key));
        }
    }
    let sources: Vec<Value> = r
        .documents
        .iter()
        .map(|d| match d {
            RerankDocument::Text(text) => json!({"type": "INLINE", "inlineDocumentSource":
                {"type": "TEXT", "textDocument": {"text": text}}}),
            RerankDocument::Object(o) => json!({"type": "INLINE", "inlineDocumentSource":
                {"type": "JSON", "jsonDocument": o}}),
        })
        .collect();
    let all = u64::try_from(r.documents.len()).unwrap_or(u64::MAX);
    let body = json!({
        "queries": [{"type": "TEXT", "textQuery": {"text": r.query}}],
        "sources": sources,
        "rerankingConfiguration": {
            "type": "BEDROCK_RERANKING_MODEL",
            "bedrockRerankingConfiguration": {
                "numberOfResults": r.top_n.unwrap_or(all).min(all),
                "modelConfiguration": {"modelArn": arn},
            },
        },
    });
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .map_err(|e| LlmError::internal(format!("cannot encode the upstream request: {e}")))
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    results: Option<Vec<AnswerResult>>,
}

#[derive(Deserialize)]
struct AnswerResult {
    index: u64,
    #[serde(rename = "relevanceScore")]
    relevance_score: f64,
}

/// Bedrock's `Rerank` answer in Cohere's shape, named `model`.
pub fn decode(r: &RerankRequest, body: &[u8], model: &str) -> Result<LlmResponse, LlmError> {
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| invalid_upstream_json("Bedrock rerank", &e))?;
    let results = answer.results.ok_or_else(|| {
        LlmError::new(
            ErrorKind::InternalServer,
            "the provider returned an invalid rerank: no results",
        )
        .with_status(http::StatusCode::BAD_GATEWAY)
    })?;
    let with_docs = r.return_documents == Some(true);
    let docs = u64::try_from(r.documents.len()).unwrap_or(u64::MAX);
    let answer = RerankAnswer {
        id: Some(crate::types::extensions::new_call_id()),
        results: results
            .into_iter()
            .map(|x| RerankResult {
                document: with_docs
                    .then(|| usize::try_from(x.index).ok())
                    .flatten()
                    .and_then(|i| r.documents.get(i))
                    .map(|d| match d {
                        RerankDocument::Text(t) => json!({ "text": t }),
                        RerankDocument::Object(o) => Value::Object(o.clone()),
                    }),
                index: x.index,
                relevance_score: x.relevance_score,
            })
            .collect(),
        meta: Some(RerankMeta {
            api_version: None,
            billed_units: Some(BilledUnits {
                search_units: Some(docs.div_ceil(DOCS_PER_SEARCH_UNIT).max(1)),
                total_tokens: None,
            }),
            tokens: None,
        }),
    };
    let bytes = serde_json::to_vec(&answer)
        .map_err(|e| LlmError::internal(format!("cannot encode the rerank answer: {e}")))?;
    Ok(LlmResponse::json(
        JsonBody::new(Bytes::from(bytes))
            .with_usage(answer.token_usage())
            .with_model(Some(Arc::from(model))),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> RerankRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn urls_and_arns() {
        assert_eq!(
            url("https://bedrock-runtime.us-west-2.amazonaws.com"),
            "https://bedrock-agent-runtime.us-west-2.amazonaws.com/rerank"
        );
        assert_eq!(url("http://127.0.0.1:9"), "http://127.0.0.1:9/rerank");
        assert_eq!(
            model_arn("amazon.rerank-v1:0", "us-west-2"),
            "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0"
        );
        let arn = "arn:aws:bedrock:eu-central-1::foundation-model/cohere.rerank-v3-5:0";
        assert_eq!(model_arn(arn, "us-west-2"), arn);
    }

    #[test]
    fn writes_the_rerank_body() {
        let r = req(
            r#"{"model":"m","query":"capital of France?","documents":["Paris is","Berlin is",{"title":"x","text":"Rome"}],"top_n":2,"metadata":{"a":1}}"#,
        );
        let v: Value = serde_json::from_slice(&body(&r, "arn:x").unwrap()).unwrap();
        assert_eq!(
            v,
            json!({
                "queries": [{"type": "TEXT", "textQuery": {"text": "capital of France?"}}],
                "sources": [
                    {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": "Paris is"}}},
                    {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": "Berlin is"}}},
                    {"type": "INLINE", "inlineDocumentSource": {"type": "JSON", "jsonDocument": {"title": "x", "text": "Rome"}}}
                ],
                "rerankingConfiguration": {"type": "BEDROCK_RERANKING_MODEL",
                    "bedrockRerankingConfiguration": {"numberOfResults": 2,
                        "modelConfiguration": {"modelArn": "arn:x"}}}
            })
        );
        let all = req(r#"{"model":"m","query":"q","documents":["a","b","c"]}"#);
        let v: Value = serde_json::from_slice(&body(&all, "arn:x").unwrap()).unwrap();
        assert_eq!(
            v["rerankingConfiguration"]["bedrockRerankingConfiguration"]["numberOfResults"],
            3
        );
        let bad = req(r#"{"model":"m","query":"q","documents":["a"],"rank_fields":["t"]}"#);
        let e = body(&bad, "arn:x").unwrap_err();
        assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("rank_fields"), "{e}");
    }

    #[test]
    fn reads_the_answer_as_cohere_and_bills_search_units() {
        let r = req(r#"{"model":"m","query":"q","documents":["a","b"],"return_documents":true}"#);
        let out = decode(
            &r,
            br#"{"results":[{"index":1,"relevanceScore":0.9},{"index":0,"relevanceScore":0.1}]}"#,
            "amazon.rerank-v1:0",
        )
        .unwrap();
        assert_eq!(out.token_usage().unwrap().search_units, 1);
        let crate::types::ResponseBody::Json(j) = out.body else {
            panic!("json")
        };
        let v: Value = serde_json::from_slice(&j.bytes).unwrap();
        assert_eq!(
            v["results"],
            json!([{"index": 1, "relevance_score": 0.9, "document": {"text": "b"}},
                   {"index": 0, "relevance_score": 0.1, "document": {"text": "a"}}])
        );
        assert_eq!(v["meta"]["billed_units"]["search_units"], 1);
        let docs: Vec<String> = (0..250).map(|i| format!("d{i}")).collect();
        let many: RerankRequest =
            serde_json::from_value(json!({"model": "m", "query": "q", "documents": docs})).unwrap();
        let out = decode(&many, br#"{"results":[]}"#, "m").unwrap();
        assert_eq!(out.token_usage().unwrap().search_units, 3);
        assert!(decode(&r, b"{}", "m")
            .unwrap_err()
            .status()
            .is_server_error());
        assert!(decode(&r, b"[", "m").is_err());
    }
}
