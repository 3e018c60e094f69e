//! Embeddings on Google AI Studio (`gemini/`) and Vertex AI (`vertex_ai/`), answered in OpenAI's
//! embeddings shape.
//!
//! - **`gemini/`**: `POST {api_base}/models/{model}:batchEmbedContents` with one request per input
//!   (`{"model": "models/{model}", "content": {"parts": [{"text": …}]}}`, plus
//!   `outputDimensionality` from `dimensions` and `taskType` from the request's or deployment's
//!   `task_type`), at most 100 inputs a call. The answer (`{"embeddings": [{"values": [...]}]}`)
//!   carries no token count: the usage is the gateway's estimate of the input (four bytes a
//!   token), as LiteLLM counts it locally.
//!   Reference: <https://ai.google.dev/api/embeddings#method:-models.batchembedcontents>.
//! - **`vertex_ai/`**: `POST …/publishers/google/models/{model}:predict` with
//!   `{"instances": [{"content": …, "task_type"?}], "parameters"?: {"outputDimensionality"}}`, at
//!   most 250 inputs a call (`gemini-embedding-*`: one, as Vertex documents). The usage is the sum
//!   of each prediction's `embeddings.statistics.token_count`.
//!   Reference: <https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api>.
//!
//! `encoding_format: base64` is answered as OpenAI answers it, from the returned floats.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, value::RawValue, Map, Value};

use crate::{
    error::{ErrorKind, LlmError},
    provider::{
        bedrock::embed::{embedding_list, extra, is_base64, texts},
        Deployment,
    },
    types::embeddings::{EmbeddingsRequest, EmbeddingsResponse},
};

/// The OpenAI embeddings parameters mapped for Gemini and Vertex AI.
pub const EMBEDDINGS_PARAMS: &[&str] = &["dimensions", "encoding_format"];

/// Inputs in one `batchEmbedContents` call (Google AI Studio's limit).
pub const GEMINI_MAX_INPUTS: usize = 100;
/// Instances in one Vertex AI `:predict` call for the text-embedding models.
pub const VERTEX_MAX_INSTANCES: usize = 250;

/// Inputs one Vertex AI call may carry for `model`.
#[must_use]
pub fn vertex_inputs_per_call(model: &str) -> usize {
    if model.contains("gemini-embedding") {
        1
    } else {
        VERTEX_MAX_INSTANCES
    }
}

fn task_type(emb: &EmbeddingsRequest, dep: &Deployment) -> Option<Value> {
    extra(emb, "task_type")
        .filter(Value::is_string)
        .or_else(|| dep.param_str("task_type").map(|t| json!(t)))
}

fn to_bytes(body: &Value) -> Result<Bytes, LlmError> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|e| LlmError::internal(e.to_string()))
}

/// The `batchEmbedContents` body for `model` (the deployment's model id).
pub fn batch_embed_body(
    emb: &EmbeddingsRequest,
    model: &str,
    dep: &Deployment,
) -> Result<Bytes, LlmError> {
    let task = task_type(emb, dep);
    let name = format!("models/{model}");
    let requests: Vec<Value> = texts(&emb.input, "gemini")?
        .into_iter()
        .map(|text| {
            let mut one = Map::new();
            one.insert("model".into(), json!(name));
            one.insert("content".into(), json!({"parts": [{"text": text}]}));
            if let Some(d) = emb.dimensions {
                one.insert("outputDimensionality".into(), json!(d));
            }
            if let Some(t) = &task {
                one.insert("taskType".into(), t.clone());
            }
            Value::Object(one)
        })
        .collect();
    to_bytes(&json!({ "requests": requests }))
}

/// The Vertex AI `:predict` body.
pub fn predict_body(emb: &EmbeddingsRequest, dep: &Deployment) -> Result<Bytes, LlmError> {
    let task = task_type(emb, dep);
    let instances: Vec<Value> = texts(&emb.input, "vertex_ai")?
        .into_iter()
        .map(|text| {
            let mut one = Map::new();
            one.insert("content".into(), json!(text));
            if let Some(t) = &task {
                one.insert("task_type".into(), t.clone());
            }
            Value::Object(one)
        })
        .collect();
    let mut body = Map::new();
    body.insert("instances".into(), Value::Array(instances));
    if let Some(d) = emb.dimensions {
        body.insert("parameters".into(), json!({"outputDimensionality": d}));
    }
    to_bytes(&Value::Object(body))
}

#[derive(Deserialize)]
struct Values {
    values: Box<RawValue>,
}

#[derive(Deserialize)]
struct Statistics {
    #[serde(default)]
    token_count: Option<f64>,
}

#[derive(Deserialize)]
struct PredictionEmbeddings {
    values: Box<RawValue>,
    #[serde(default)]
    statistics: Option<Statistics>,
}

#[derive(Deserialize)]
struct Prediction {
    embeddings: PredictionEmbeddings,
}

/// Either answer: `batchEmbedContents`' (`embeddings`) or `:predict`'s (`predictions`).
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    embeddings: Option<Vec<Values>>,
    #[serde(default)]
    predictions: Option<Vec<Prediction>>,
}

/// A `batchEmbedContents` or `:predict` answer as an OpenAI embeddings list.
pub fn embeddings_answer(
    emb: &EmbeddingsRequest,
    body: &[u8],
) -> Result<EmbeddingsResponse, LlmError> {
    let answer: Answer = serde_json::from_slice(body).map_err(|e| {
        LlmError::new(
            ErrorKind::InternalServer,
            format!("the provider returned an invalid embeddings response: {e}"),
        )
    })?;
    let (vectors, tokens) =
        match answer {
            Answer {
                embeddings: Some(embeddings),
                ..
            } => (
                embeddings.into_iter().map(|v| v.values).collect::<Vec<_>>(),
                emb.input.estimate_tokens(),
            ),
            Answer {
                predictions: Some(predictions),
                ..
            } => {
                let mut tokens = 0u64;
                let mut counted = false;
                let vectors = predictions
                    .into_iter()
                    .map(|p| {
                        if let Some(n) = p.embeddings.statistics.and_then(|s| s.token_count) {
                            counted = true;
                            // A count is a small non-negative number; anything else counts 0.
                            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                            let n = if n.is_finite() && n > 0.0 {
                                n as u64
                            } else {
                                0
                            };
                            tokens = tokens.saturating_add(n);
                        }
                        p.embeddings.values
                    })
                    .collect::<Vec<_>>();
                let tokens = if counted {
                    tokens
                } else {
                    emb.input.estimate_tokens()
                };
                (vectors, tokens)
            }
            _ => return Err(LlmError::new(
                ErrorKind::InternalServer,
                "the provider returned an embeddings response without embeddings or predictions",
            )),
        };
    if vectors.len() != emb.input.len() {
        return Err(LlmError::new(
            ErrorKind::InternalServer,
            format!(
                "the provider returned {} embeddings for {} inputs",
                vectors.len(),
                emb.input.len()
            ),
        ));
    }
    embedding_list(vectors, &emb.model, is_base64(emb), tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> EmbeddingsRequest {
        serde_json::from_value(v).unwrap()
    }

    fn parse(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn gemini_batch_body() {
        let dep = Deployment::new("g", "gemini/text-embedding-004");
        let r = req(
            json!({"model": "g", "input": ["a", "b"], "dimensions": 8, "task_type": "RETRIEVAL_QUERY"}),
        );
        assert_eq!(
            parse(&batch_embed_body(&r, "text-embedding-004", &dep).unwrap()),
            json!({"requests": [
                {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 8, "taskType": "RETRIEVAL_QUERY"},
                {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 8, "taskType": "RETRIEVAL_QUERY"}
            ]})
        );
    }

    #[test]
    fn vertex_predict_body() {
        let mut dep = Deployment::new("g", "vertex_ai/text-embedding-005");
        dep.params.insert("task_type".into(), "CLUSTERING".into());
        let r = req(json!({"model": "g", "input": "hello"}));
        assert_eq!(
            parse(&predict_body(&r, &dep).unwrap()),
            json!({"instances": [{"content": "hello", "task_type": "CLUSTERING"}]})
        );
        assert_eq!(vertex_inputs_per_call("gemini-embedding-001"), 1);
        assert_eq!(vertex_inputs_per_call("text-embedding-005"), 250);
    }

    #[test]
    fn answers() {
        let r = req(json!({"model": "g", "input": ["a", "b"]}));
        let out = embeddings_answer(&r, br#"{"embeddings":[{"values":[1.0]},{"values":[2.0]}]}"#)
            .unwrap();
        assert_eq!(out.data.len(), 2);
        assert_eq!(out.usage.unwrap().prompt_tokens, Some(2));
        let out = embeddings_answer(
            &r,
            br#"{"predictions":[{"embeddings":{"values":[1.0],"statistics":{"token_count":3,"truncated":false}}},{"embeddings":{"values":[2.0],"statistics":{"token_count":4.0,"truncated":false}}}]}"#,
        )
        .unwrap();
        assert_eq!(out.usage.unwrap().total_tokens, Some(7));
        // Fewer vectors than inputs, or a wrong shape: an error, not a short answer.
        assert!(embeddings_answer(&r, br#"{"embeddings":[{"values":[1.0]}]}"#).is_err());
        assert!(embeddings_answer(&r, br#"{"predictions":7}"#).is_err());
    }
}
