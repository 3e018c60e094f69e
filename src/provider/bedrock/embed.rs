//! Embeddings on Bedrock: `POST {endpoint}/model/{modelId}/invoke` with each vendor's body,
//! answered in OpenAI's embeddings shape.
//!
//! - **Amazon Titan text** (`amazon.titan-embed-text-v2:0`, `amazon.titan-embed-text-v1`): one
//!   input per call, `{"inputText": …}` (v2 also `dimensions`); the answer's `embedding` (or
//!   `embeddingsByType.float`) and `inputTextTokenCount`. A list is sent as one call per input
//!   ([`Provider::embedding_inputs_per_call`](super::super::Provider::embedding_inputs_per_call)),
//!   concurrently, and the answers joined in order, as LiteLLM's `_single_func_embeddings` does.
//! - **Cohere on Bedrock** (`cohere.embed-*`): `{"texts": [...], "input_type": …}` (the request's
//!   `input_type`, else the deployment's, else `search_document`, Cohere's default in LiteLLM;
//!   `truncate` passed when given), at most 96 texts a call (Cohere's limit); the answer's
//!   `embeddings` (a list of vectors, or `{"float": [...]}` by type). Cohere's Bedrock answer has
//!   no token count in its body: the usage is Bedrock's `X-Amzn-Bedrock-Input-Token-Count`
//!   response header, else the gateway's estimate of the input.
//!
//! References: <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html>,
//! <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed.html>,
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html>.
//!
//! `encoding_format: base64` is answered as OpenAI answers it (the little-endian f32 bytes of each
//! vector, base64), from the floats the model returned.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, value::RawValue, Map, Value};

use crate::{
    error::{ErrorKind, LlmError},
    types::embeddings::{
        Embedding, EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage,
    },
};

/// The OpenAI embeddings parameters Bedrock's embedding models map.
pub const EMBEDDINGS_PARAMS: &[&str] = &["dimensions", "encoding_format"];

/// Cohere's most texts in one embed call.
pub const COHERE_MAX_TEXTS: usize = 96;

/// Which body a Bedrock embedding model takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedFamily {
    /// `amazon.titan-embed-text-v2:*`.
    TitanV2,
    /// `amazon.titan-embed-text-v1`.
    TitanV1,
    /// `cohere.embed-*`.
    Cohere,
}

/// The family of a Bedrock model id (a region prefix such as `us.` is allowed).
#[must_use]
pub fn family(model_id: &str) -> Option<EmbedFamily> {
    let id = model_id.rsplit('/').next().unwrap_or(model_id);
    let vendor_at = |vendor: &str| {
        id.strip_prefix(vendor).or_else(|| {
            id.split_once('.')
                .and_then(|(_, rest)| rest.strip_prefix(vendor))
        })
    };
    if let Some(rest) = vendor_at("amazon.titan-embed-text-") {
        return Some(if rest.starts_with("v1") {
            EmbedFamily::TitanV1
        } else {
            EmbedFamily::TitanV2
        });
    }
    vendor_at("cohere.embed-").map(|_| EmbedFamily::Cohere)
}

/// How many inputs one call may carry for `family`.
#[must_use]
pub const fn inputs_per_call(family: EmbedFamily) -> usize {
    match family {
        EmbedFamily::TitanV1 | EmbedFamily::TitanV2 => 1,
        EmbedFamily::Cohere => COHERE_MAX_TEXTS,
    }
}

/// The texts of an embeddings input; token arrays are refused (these models take text).
pub fn texts<'a>(input: &'a EmbeddingInput, provider: &str) -> Result<Vec<&'a str>, LlmError> {
    let texts: Vec<&str> = match input {
        EmbeddingInput::One(s) => vec![s.as_str()],
        EmbeddingInput::Many(v) => v.iter().map(String::as_str).collect(),
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => {
            return Err(LlmError::bad_request(format!(
                "{provider} embeddings take text: token arrays in `input` are not supported"
            ))
            .with_param("input"))
        }
    };
    if texts.is_empty() {
        return Err(LlmError::bad_request("`input` is an empty list").with_param("input"));
    }
    Ok(texts)
}

/// The InvokeModel body of an embeddings request for a model of `family`.
pub fn invoke_body(
    emb: &EmbeddingsRequest,
    family: EmbedFamily,
    dep_input_type: Option<&str>,
) -> Result<Bytes, LlmError> {
    let texts = texts(&emb.input, "bedrock")?;
    let body = match family {
        EmbedFamily::TitanV1 | EmbedFamily::TitanV2 => {
            let [text] = texts.as_slice() else {
                return Err(LlmError::internal(
                    "a Titan embeddings call carries one input",
                ));
            };
            let mut body = Map::new();
            body.insert("inputText".into(), json!(text));
            if let Some(d) = emb.dimensions {
                if family == EmbedFamily::TitanV1 {
                    return Err(LlmError::bad_request(
                        "amazon.titan-embed-text-v1 has a fixed size: `dimensions` is not supported",
                    )
                    .with_param("dimensions"));
                }
                body.insert("dimensions".into(), json!(d));
            }
            if let Some(normalize) = extra(emb, "normalize").filter(Value::is_boolean) {
                body.insert("normalize".into(), normalize);
            }
            Value::Object(body)
        }
        EmbedFamily::Cohere => {
            let asked = extra(emb, "input_type");
            let input_type = asked
                .as_ref()
                .and_then(Value::as_str)
                .or(dep_input_type)
                .unwrap_or("search_document");
            let mut body = Map::new();
            body.insert("texts".into(), json!(texts));
            body.insert("input_type".into(), json!(input_type));
            if let Some(truncate) = extra(emb, "truncate").filter(Value::is_string) {
                body.insert("truncate".into(), truncate);
            }
            if let Some(d) = emb.dimensions {
                // Embed v4's name for it; v3 models answer a 400 of their own.
                body.insert("output_dimension".into(), json!(d));
            }
            Value::Object(body)
        }
    };
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .map_err(|e| LlmError::internal(e.to_string()))
}

/// A key of the request beyond OpenAI's (`input_type`, `truncate`, `normalize`), parsed.
pub(crate) fn extra(emb: &EmbeddingsRequest, key: &str) -> Option<Value> {
    emb.extra
        .get(key)
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
}

#[derive(Deserialize)]
struct TitanAnswer {
    #[serde(default)]
    embedding: Option<Box<RawValue>>,
    #[serde(rename = "embeddingsByType", default)]
    by_type: Option<ByType>,
    #[serde(rename = "inputTextTokenCount", default)]
    tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ByType {
    #[serde(default)]
    float: Option<Box<RawValue>>,
}

/// Cohere's `embeddings`: a list of vectors, or by type (`{"float": [...]}`).
#[derive(Deserialize)]
struct CohereAnswer {
    embeddings: Box<RawValue>,
}

#[derive(Deserialize)]
struct CohereByType {
    float: Vec<Box<RawValue>>,
}

fn invalid(what: &str, e: &serde_json::Error) -> LlmError {
    super::super::openai::invalid_upstream_json(what, e)
}

/// An InvokeModel answer as an OpenAI embeddings list. `header_tokens` is Bedrock's
/// `X-Amzn-Bedrock-Input-Token-Count`.
pub fn invoke_answer(
    emb: &EmbeddingsRequest,
    family: EmbedFamily,
    body: &[u8],
    header_tokens: Option<u64>,
) -> Result<EmbeddingsResponse, LlmError> {
    let (vectors, tokens) = match family {
        EmbedFamily::TitanV1 | EmbedFamily::TitanV2 => {
            let answer: TitanAnswer = serde_json::from_slice(body)
                .map_err(|e| invalid("Titan embeddings response", &e))?;
            let vector = answer
                .embedding
                .or_else(|| answer.by_type.and_then(|b| b.float))
                .ok_or_else(|| {
                    LlmError::new(
                        ErrorKind::InternalServer,
                        "the provider returned a Titan embeddings response without an embedding",
                    )
                })?;
            (vec![vector], answer.tokens.or(header_tokens))
        }
        EmbedFamily::Cohere => {
            let answer: CohereAnswer = serde_json::from_slice(body)
                .map_err(|e| invalid("Cohere embeddings response", &e))?;
            let raw = answer.embeddings.get();
            let vectors = if raw.trim_start().starts_with('{') {
                serde_json::from_str::<CohereByType>(raw)
                    .map_err(|e| invalid("Cohere embeddings response", &e))?
                    .float
            } else {
                serde_json::from_str::<Vec<Box<RawValue>>>(raw)
                    .map_err(|e| invalid("Cohere embeddings response", &e))?
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
            (vectors, header_tokens)
        }
    };
    let tokens = tokens.unwrap_or_else(|| emb.input.estimate_tokens());
    embedding_list(vectors, &emb.model, is_base64(emb), tokens)
}

/// Whether the client asked for base64 vectors.
#[must_use]
pub fn is_base64(emb: &EmbeddingsRequest) -> bool {
    emb.encoding_format.as_deref() == Some("base64")
}

/// Float vectors as OpenAI's embeddings list for `model` (base64 vectors when `base64`), with
/// `tokens` as the usage. Shared by the Bedrock, Gemini and Vertex AI embeddings.
pub(crate) fn embedding_list(
    vectors: Vec<Box<RawValue>>,
    model: &str,
    base64: bool,
    tokens: u64,
) -> Result<EmbeddingsResponse, LlmError> {
    let data = vectors
        .into_iter()
        .zip(0..)
        .map(|(vector, index)| {
            let embedding = if base64 {
                base64_vector(&vector)?
            } else {
                vector
            };
            Ok(Embedding {
                object: Some("embedding".to_owned()),
                index: Some(index),
                embedding: Some(embedding),
                ..Embedding::default()
            })
        })
        .collect::<Result<Vec<_>, LlmError>>()?;
    Ok(EmbeddingsResponse {
        data,
        object: Some("list".to_owned()),
        model: Some(model.to_owned()),
        usage: Some(EmbeddingsUsage {
            prompt_tokens: Some(tokens),
            total_tokens: Some(tokens),
            ..EmbeddingsUsage::default()
        }),
        ..EmbeddingsResponse::default()
    })
}

/// A float vector as OpenAI's `encoding_format: base64`: the little-endian f32 bytes, base64.
fn base64_vector(raw: &RawValue) -> Result<Box<RawValue>, LlmError> {
    use base64::{engine::general_purpose::STANDARD, Engine as _};
    let floats: Vec<f32> =
        serde_json::from_str(raw.get()).map_err(|e| invalid("embedding vector", &e))?;
    let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
    serde_json::value::to_raw_value(&STANDARD.encode(bytes))
        .map_err(|e| LlmError::internal(e.to_string()))
}

/// Joins the answers of one request's calls (each for a consecutive slice of its inputs, in
/// order): the vectors renumbered, the usage summed.
pub(crate) fn join(parts: Vec<EmbeddingsResponse>) -> EmbeddingsResponse {
    let mut out = EmbeddingsResponse::default();
    let (mut prompt, mut total) = (0u64, 0u64);
    let mut index = 0u32;
    for part in parts {
        if out.model.is_none() {
            out.model = part.model;
            out.object = part.object;
        }
        if let Some(u) = part.usage {
            prompt = prompt.saturating_add(u.prompt_tokens.unwrap_or(0));
            total = total.saturating_add(u.total_tokens.unwrap_or(0));
        }
        for mut e in part.data {
            e.index = Some(index);
            index = index.saturating_add(1);
            out.data.push(e);
        }
    }
    out.usage = Some(EmbeddingsUsage {
        prompt_tokens: Some(prompt),
        total_tokens: Some(total),
        ..EmbeddingsUsage::default()
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> EmbeddingsRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn families_by_model_id() {
        assert_eq!(
            family("amazon.titan-embed-text-v2:0"),
            Some(EmbedFamily::TitanV2)
        );
        assert_eq!(
            family("amazon.titan-embed-text-v1"),
            Some(EmbedFamily::TitanV1)
        );
        assert_eq!(family("cohere.embed-english-v3"), Some(EmbedFamily::Cohere));
        assert_eq!(family("us.cohere.embed-v4:0"), Some(EmbedFamily::Cohere));
        assert_eq!(family("anthropic.claude-3-haiku"), None);
        assert_eq!(inputs_per_call(EmbedFamily::TitanV2), 1);
    }

    #[test]
    fn titan_and_cohere_bodies() {
        let r = req(json!({"model": "m", "input": "hi", "dimensions": 256}));
        let body: Value =
            serde_json::from_slice(&invoke_body(&r, EmbedFamily::TitanV2, None).unwrap()).unwrap();
        assert_eq!(body, json!({"inputText": "hi", "dimensions": 256}));
        assert!(invoke_body(&r, EmbedFamily::TitanV1, None).is_err());
        let r = req(json!({"model": "m", "input": ["a", "b"], "input_type": "search_query"}));
        let body: Value =
            serde_json::from_slice(&invoke_body(&r, EmbedFamily::Cohere, None).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"texts": ["a", "b"], "input_type": "search_query"})
        );
        let r = req(json!({"model": "m", "input": ["a"]}));
        let body: Value = serde_json::from_slice(
            &invoke_body(&r, EmbedFamily::Cohere, Some("classification")).unwrap(),
        )
        .unwrap();
        assert_eq!(body["input_type"], "classification");
        let tokens = req(json!({"model": "m", "input": [1, 2, 3]}));
        assert_eq!(
            invoke_body(&tokens, EmbedFamily::Cohere, None)
                .unwrap_err()
                .kind(),
            ErrorKind::BadRequest
        );
        let empty = req(json!({"model": "m", "input": []}));
        assert!(invoke_body(&empty, EmbedFamily::Cohere, None).is_err());
    }

    #[test]
    fn answers_become_openai_lists() {
        let r = req(json!({"model": "g", "input": "hi"}));
        let out = invoke_answer(
            &r,
            EmbedFamily::TitanV2,
            br#"{"embedding":[0.5,-1.0],"inputTextTokenCount":3,"embeddingsByType":{"float":[0.5,-1.0]}}"#,
            None,
        )
        .unwrap();
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["data"][0]["embedding"], json!([0.5, -1.0]));
        assert_eq!(v["usage"]["prompt_tokens"], 3);
        let two = req(json!({"model": "g", "input": ["a", "b"]}));
        let out = invoke_answer(
            &two,
            EmbedFamily::Cohere,
            br#"{"embeddings":{"float":[[1.0],[2.0]]},"id":"x","response_type":"embeddings_by_type"}"#,
            Some(7),
        )
        .unwrap();
        assert_eq!(out.data.len(), 2);
        assert_eq!(out.usage.unwrap().prompt_tokens, Some(7));
        // A vector short: an error, not a short answer.
        assert!(invoke_answer(
            &two,
            EmbedFamily::Cohere,
            br#"{"embeddings":[[1.0]]}"#,
            None
        )
        .is_err());
        assert!(invoke_answer(&r, EmbedFamily::TitanV2, b"{}", None).is_err());
        assert!(invoke_answer(&r, EmbedFamily::Cohere, b"not json", None).is_err());
        let b64 = req(json!({"model": "g", "input": "hi", "encoding_format": "base64"}));
        let out =
            invoke_answer(&b64, EmbedFamily::TitanV2, br#"{"embedding":[1.0]}"#, None).unwrap();
        assert_eq!(
            out.data[0].embedding.as_ref().unwrap().get(),
            "\"AACAPw==\""
        );
    }

    #[test]
    fn join_renumbers_and_sums() {
        let part = |n: u64| {
            embedding_list(
                vec![serde_json::value::to_raw_value(&[n as f32]).unwrap()],
                "g",
                false,
                n,
            )
            .unwrap()
        };
        let out = join(vec![part(1), part(2), part(3)]);
        let idx: Vec<_> = out.data.iter().map(|e| e.index).collect();
        assert_eq!(idx, vec![Some(0), Some(1), Some(2)]);
        assert_eq!(out.usage.unwrap().total_tokens, Some(6));
    }
}
