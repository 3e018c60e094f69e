//! Rerank (`POST /v1/rerank`, Cohere's format) on the hosts that have it: Cohere's v2 API
//! (`cohere/`), Jina AI (`jina_ai/`), Voyage AI (`voyage/`) and vLLM (`hosted_vllm/`), each
//! answered in Cohere's shape ([`RerankAnswer`]), as LiteLLM's rerank transformations do.
//!
//! | family | URL | request | answer |
//! | --- | --- | --- | --- |
//! | `cohere` | `{base}/v2/rerank` (`https://api.cohere.com`) | `query`, `documents`, `top_n`, `rank_fields`, `return_documents`, `max_tokens_per_doc` | relayed as sent (`meta.billed_units.search_units`) |
//! | `jina_ai` | `{base}/v1/rerank` (`https://api.jina.ai`) | `query`, `documents`, `top_n`, `return_documents` | `results`, `usage.total_tokens` → `meta` |
//! | `voyage` | `{base}/v1/rerank` (`https://api.voyageai.com`) | `top_n` → `top_k`; `query`, `documents`, `return_documents` | `data` → `results`, `usage.total_tokens` → `meta` |
//! | `hosted_vllm` | `{base}/rerank` (`api_base` required) | `query`, `documents`, `top_n`, `rank_fields`, `return_documents`; `max_chunks_per_doc` refused | `results`, `usage.total_tokens` → `meta` |
//! | `infinity` | `{base}/rerank` (`api_base` required) | `query`, `documents`, `top_n`, `return_documents` | as vLLM (`usage.prompt_tokens` when no total) |
//! | `together_ai` | `{base}/rerank` (`https://api.together.xyz/v1`) | `query`, `documents`, `top_n`, `rank_fields`, `return_documents` | as vLLM |
//! | `azure_ai` | `{base}/v1/rerank` (`api_base` required) | Cohere v1: `query`, `documents`, `top_n`, `rank_fields`, `return_documents`, `max_chunks_per_doc` | relayed as sent, as Cohere's |
//!
//! Bedrock's rerank (`bedrock/`, the `bedrock-agent-runtime` `Rerank` API) is in
//! [`bedrock::rerank`](super::bedrock::rerank).
//!
//! A base URL that already ends with the path is used as it is. Every family authenticates with
//! `Authorization: Bearer` (the deployment's `api_key`, else the family's key variable); all but
//! vLLM and Infinity refuse to call without a key. Keys the family does not take (and the gateway's own
//! controls) are not sent. Cohere prices by search unit (`input_cost_per_query`), the others by
//! token (`input_cost_per_token`): the answer states both as usage ([`RerankAnswer::token_usage`]).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::{
    compat::HostSpec,
    openai::{bearer, classify_openai_error, invalid_upstream_json, resolved_head},
    resolve::Endpoint,
    Deployment, Provider,
};
use crate::{
    error::{ErrorKind, LlmError},
    types::{
        rerank::{
            BilledUnits, RerankAnswer, RerankDocument, RerankMeta, RerankRequest, RerankResult,
            RerankTokens,
        },
        JsonBody, LlmRequest, LlmResponse, Operation,
    },
};

/// The `cohere/` host: Cohere's API, `COHERE_API_KEY` / `CO_API_KEY`.
pub static COHERE: HostSpec = HostSpec {
    prefix: "cohere",
    default_api_base: Some("https://api.cohere.com"),
    base_env: &["COHERE_API_BASE"],
    key_env: &["COHERE_API_KEY", "CO_API_KEY"],
    model_prefix: None,
    adjust: None,
};

/// The `jina_ai/` host: Jina AI's API, `JINA_AI_API_KEY` / `JINA_API_KEY`.
pub static JINA_AI: HostSpec = HostSpec {
    prefix: "jina_ai",
    default_api_base: Some("https://api.jina.ai"),
    base_env: &["JINA_AI_API_BASE"],
    key_env: &["JINA_AI_API_KEY", "JINA_API_KEY"],
    model_prefix: None,
    adjust: None,
};

/// The `voyage/` host: Voyage AI's API, `VOYAGE_API_KEY` / `VOYAGE_AI_API_KEY`.
pub static VOYAGE: HostSpec = HostSpec {
    prefix: "voyage",
    default_api_base: Some("https://api.voyageai.com"),
    base_env: &["VOYAGE_API_BASE"],
    key_env: &["VOYAGE_API_KEY", "VOYAGE_AI_API_KEY"],
    model_prefix: None,
    adjust: None,
};

/// The `infinity/` host: an Infinity server (`api_base` required), `INFINITY_API_KEY` optional.
pub static INFINITY: HostSpec = HostSpec {
    prefix: "infinity",
    default_api_base: None,
    base_env: &["INFINITY_API_BASE"],
    key_env: &["INFINITY_API_KEY"],
    model_prefix: None,
    adjust: None,
};

/// The `azure_ai/` host: a Cohere rerank model deployed on Azure AI Foundry (`api_base`
/// required, `AZURE_AI_API_BASE`), `AZURE_AI_API_KEY`.
pub static AZURE_AI: HostSpec = HostSpec {
    prefix: "azure_ai",
    default_api_base: None,
    base_env: &["AZURE_AI_API_BASE"],
    key_env: &["AZURE_AI_API_KEY"],
    model_prefix: None,
    adjust: None,
};

/// The host spec of a rerank-only family's prefix (for the environment a deployment reads).
pub(crate) fn spec(prefix: &str) -> Option<&'static HostSpec> {
    [&COHERE, &JINA_AI, &VOYAGE, &INFINITY, &AZURE_AI]
        .into_iter()
        .find(|s| s.prefix == prefix)
}

/// A rerank host's wire family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    /// Cohere's v2 rerank.
    Cohere,
    /// Jina AI's rerank.
    Jina,
    /// Voyage AI's rerank (`top_k`, `data`).
    Voyage,
    /// vLLM's rerank (Jina's and Cohere's shape).
    Vllm,
    /// Infinity's rerank (vLLM's, without `rank_fields`).
    Infinity,
    /// Together AI's rerank (`{base}/rerank` under its `/v1` base; Jina's shape with
    /// `rank_fields`).
    Together,
    /// Cohere's v1 rerank on Azure AI (`{base}/v1/rerank`), answered in Cohere's shape.
    AzureAi,
}

impl Family {
    /// The URL of the rerank endpoint under `base`.
    fn url(self, base: &str) -> String {
        let base = base.trim_end_matches('/');
        match self {
            Self::Cohere if base.ends_with("/v2/rerank") || base.ends_with("/v1/rerank") => {
                base.to_owned()
            }
            Self::Cohere if base.ends_with("/v2") => format!("{base}/rerank"),
            Self::Cohere => format!("{base}/v2/rerank"),
            Self::Jina | Self::Voyage | Self::Together | Self::AzureAi
                if base.ends_with("/rerank") =>
            {
                base.to_owned()
            }
            Self::Jina | Self::Voyage | Self::Together | Self::AzureAi if base.ends_with("/v1") => {
                format!("{base}/rerank")
            }
            Self::Jina | Self::Voyage | Self::Together | Self::AzureAi => {
                format!("{base}/v1/rerank")
            }
            Self::Vllm | Self::Infinity if base.ends_with("/rerank") => base.to_owned(),
            Self::Vllm | Self::Infinity => format!("{base}/rerank"),
        }
    }

    /// Whether a call needs a key.
    const fn needs_key(self) -> bool {
        !matches!(self, Self::Vllm | Self::Infinity)
    }
}

/// The body sent upstream: the fields the family takes.
#[derive(Serialize)]
struct UpstreamBody<'a> {
    model: &'a str,
    query: &'a str,
    documents: &'a [RerankDocument],
    #[serde(skip_serializing_if = "Option::is_none")]
    top_n: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rank_fields: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    return_documents: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens_per_doc: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_chunks_per_doc: Option<u64>,
}

/// The upstream body of `r` for `family`, with `model` as the model.
fn body(family: Family, r: &RerankRequest, model: &str) -> Result<Bytes, LlmError> {
    let mut out = UpstreamBody {
        model,
        query: &r.query,
        documents: &r.documents,
        top_n: r.top_n,
        top_k: None,
        rank_fields: r.rank_fields.as_deref(),
        return_documents: r.return_documents,
        max_tokens_per_doc: None,
        max_chunks_per_doc: None,
    };
    match family {
        Family::Cohere => out.max_tokens_per_doc = r.max_tokens_per_doc,
        // Cohere's v1 API (LiteLLM's `AzureAIRerankConfig` is its Cohere v1 config).
        Family::AzureAi => out.max_chunks_per_doc = r.max_chunks_per_doc,
        Family::Together => {}
        Family::Jina | Family::Infinity => out.rank_fields = None,
        Family::Voyage => {
            out.top_k = out.top_n.take();
            out.rank_fields = None;
        }
        Family::Vllm => {
            if r.max_chunks_per_doc.is_some() {
                return Err(LlmError::bad_request(
                    "the hosted_vllm provider does not support max_chunks_per_doc",
                )
                .with_param("max_chunks_per_doc"));
            }
        }
    }
    serde_json::to_vec(&out)
        .map(Bytes::from)
        .map_err(|e| LlmError::internal(format!("cannot encode the upstream request: {e}")))
}

/// The upstream request of a rerank on `spec`'s host.
pub(crate) fn encode(
    family: Family,
    spec: &HostSpec,
    req: &LlmRequest,
    dep: &Deployment,
) -> Result<http::Request<Bytes>, LlmError> {
    let Operation::Rerank(r) = &req.op else {
        return Err(LlmError::bad_request(format!(
            "the {} provider does not support {} requests",
            spec.prefix,
            req.operation_name()
        )));
    };
    let base = spec.api_base(dep).ok_or_else(|| {
        LlmError::bad_request(format!(
            "the {} provider needs an api_base (set it in litellm_params{})",
            spec.prefix,
            spec.base_env
                .first()
                .map(|n| format!(" or {n}"))
                .unwrap_or_default()
        ))
    })?;
    let endpoint = Endpoint::parse(&family.url(base))?;
    let key = spec.api_key(dep).filter(|k| !k.expose().is_empty());
    if key.is_none() && family.needs_key() {
        return Err(LlmError::new(
            ErrorKind::Authentication,
            format!(
                "the {} provider needs an api_key (set it in litellm_params or {})",
                spec.prefix,
                spec.key_env.join(" / ")
            ),
        )
        .with_provider(spec.prefix));
    }
    let model = spec.upstream_model(&dep.model);
    let body = body(family, r, &model)?;
    let resolved = dep.resolved(spec.prefix);
    let mut head = resolved_head(&endpoint, &resolved)?;
    if let Some(key) = key {
        head.headers_mut()
            .insert(http::header::AUTHORIZATION, bearer(key.expose())?);
    }
    head.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(head.map(|()| body))
}

/// One result as a per-token host states it.
#[derive(Deserialize)]
struct HostResult {
    index: u64,
    relevance_score: f64,
    #[serde(default)]
    document: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct HostUsage {
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens: Option<u64>,
}

/// A per-token host's answer (Jina AI, Voyage, vLLM).
#[derive(Deserialize)]
struct HostAnswer {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    results: Option<Vec<HostResult>>,
    /// Voyage's name for the results.
    #[serde(default)]
    data: Option<Vec<HostResult>>,
    #[serde(default)]
    usage: Option<HostUsage>,
}

fn no_results() -> LlmError {
    LlmError::new(
        ErrorKind::InternalServer,
        "the provider returned an invalid rerank: no results",
    )
    .with_status(StatusCode::BAD_GATEWAY)
}

/// A document as Cohere states it: a text becomes `{"text": …}`.
fn document(d: serde_json::Value) -> Option<serde_json::Value> {
    match d {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => Some(serde_json::json!({ "text": text })),
        other => Some(other),
    }
}

/// A rerank answer of `family`, in Cohere's shape, with its usage and the model it names (else
/// `model`).
pub(crate) fn decode(family: Family, body: &Bytes, model: &str) -> Result<LlmResponse, LlmError> {
    if matches!(family, Family::Cohere | Family::AzureAi) {
        let model = Some(Arc::from(model));
        // Cohere's own shape: validated, its usage read, relayed byte for byte.
        let answer: RerankAnswer =
            serde_json::from_slice(body).map_err(|e| invalid_upstream_json("rerank", &e))?;
        return Ok(LlmResponse::json(
            JsonBody::new(body.clone())
                .with_usage(answer.token_usage())
                .with_model(model),
        ));
    }
    let host: HostAnswer =
        serde_json::from_slice(body).map_err(|e| invalid_upstream_json("rerank", &e))?;
    let model = Some(Arc::from(host.model.as_deref().unwrap_or(model)));
    let results = match family {
        Family::Voyage => host.data.or(host.results),
        _ => host.results,
    }
    .ok_or_else(no_results)?;
    let tokens = host
        .usage
        .and_then(|u| u.total_tokens.or(u.prompt_tokens))
        .unwrap_or(0);
    let answer = RerankAnswer {
        id: Some(
            host.id
                .filter(|i| !i.is_empty())
                .unwrap_or_else(crate::types::extensions::new_call_id),
        ),
        results: results
            .into_iter()
            .map(|r| RerankResult {
                index: r.index,
                relevance_score: r.relevance_score,
                document: r.document.and_then(document),
            })
            .collect(),
        meta: Some(RerankMeta {
            api_version: None,
            billed_units: Some(BilledUnits {
                search_units: None,
                total_tokens: Some(tokens),
            }),
            tokens: Some(RerankTokens {
                input_tokens: Some(tokens),
                output_tokens: Some(0),
            }),
        }),
    };
    let bytes = serde_json::to_vec(&answer)
        .map_err(|e| LlmError::internal(format!("cannot encode the rerank answer: {e}")))?;
    Ok(LlmResponse::json(
        JsonBody::new(Bytes::from(bytes))
            .with_usage(answer.token_usage())
            .with_model(model),
    ))
}

/// A rerank host's error: OpenAI's error object when it sends one, else Cohere's `message` or
/// Jina's / Voyage's `detail`, with the kind its status says.
pub(crate) fn classify(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> LlmError {
    #[derive(Deserialize)]
    struct Plain {
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    }
    let plain = serde_json::from_slice::<Plain>(body).ok().and_then(|p| {
        p.message.or_else(|| {
            p.detail.map(|d| match d {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
        })
    });
    match plain {
        Some(message) if !message.is_empty() => {
            let message: String = message.chars().take(2000).collect();
            LlmError::new(ErrorKind::from_status(status), message)
                .with_status(status)
                .with_provider(provider)
        }
        _ => classify_openai_error(provider, status, headers, body),
    }
}

/// `decode`, `decode_stream` and `classify` of a rerank-only provider of `family`.
macro_rules! rerank_only_responses {
    ($family:expr) => {
        fn decode(
            &self,
            req: &$crate::types::LlmRequest,
            resp: ::http::Response<::bytes::Bytes>,
            dep: &$crate::provider::Deployment,
        ) -> Result<$crate::types::LlmResponse, $crate::error::LlmError> {
            match req.kind() {
                $crate::types::OperationKind::Rerank => {
                    $crate::provider::rerank::decode($family, resp.body(), &dep.model)
                }
                _ => Err($crate::provider::unsupported(self, req)),
            }
        }

        fn decode_stream(
            &self,
            req: &$crate::types::LlmRequest,
            _parts: ::http::response::Parts,
            _body: $crate::provider::ByteStream,
            _dep: &$crate::provider::Deployment,
        ) -> Result<$crate::types::ChatStream, $crate::error::LlmError> {
            Err($crate::provider::unsupported(self, req))
        }

        fn classify(
            &self,
            status: ::http::StatusCode,
            headers: &::http::HeaderMap,
            body: &[u8],
            _dep: &$crate::provider::Deployment,
        ) -> $crate::error::LlmError {
            $crate::provider::rerank::classify(self.name(), status, headers, body)
        }
    };
}

/// `jina_ai/`: Jina AI's rerank. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct JinaAi;

impl Provider for JinaAi {
    fn name(&self) -> &'static str {
        JINA_AI.prefix
    }

    fn supports(&self, op: crate::types::OperationKind) -> bool {
        op == crate::types::OperationKind::Rerank
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        encode(Family::Jina, &JINA_AI, req, dep)
    }

    rerank_only_responses!(Family::Jina);
}

/// `infinity/`: an Infinity server's rerank. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Infinity;

impl Provider for Infinity {
    fn name(&self) -> &'static str {
        INFINITY.prefix
    }

    fn supports(&self, op: crate::types::OperationKind) -> bool {
        op == crate::types::OperationKind::Rerank
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        encode(Family::Infinity, &INFINITY, req, dep)
    }

    rerank_only_responses!(Family::Infinity);
}

/// `azure_ai/`: Cohere's rerank models on Azure AI (rerank only). See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct AzureAi;

impl Provider for AzureAi {
    fn name(&self) -> &'static str {
        AZURE_AI.prefix
    }

    fn supports(&self, op: crate::types::OperationKind) -> bool {
        op == crate::types::OperationKind::Rerank
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        encode(Family::AzureAi, &AZURE_AI, req, dep)
    }

    rerank_only_responses!(Family::AzureAi);
}

/// `voyage/`: Voyage AI's rerank. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Voyage;

impl Provider for Voyage {
    fn name(&self) -> &'static str {
        VOYAGE.prefix
    }

    fn supports(&self, op: crate::types::OperationKind) -> bool {
        op == crate::types::OperationKind::Rerank
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        encode(Family::Voyage, &VOYAGE, req, dep)
    }

    rerank_only_responses!(Family::Voyage);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rerank(raw: &str) -> LlmRequest {
        LlmRequest::rerank_from_bytes(
            serde_json::from_str(raw).unwrap(),
            Bytes::copy_from_slice(raw.as_bytes()),
        )
    }

    const REQ: &str = r#"{"model":"g","query":"q","documents":["a",{"text":"b"}],"top_n":2,
        "return_documents":true,"rank_fields":["text"],"max_tokens_per_doc":9,
        "metadata":{"x":1},"num_retries":1}"#;

    fn sent(out: &http::Request<Bytes>) -> serde_json::Value {
        serde_json::from_slice(out.body()).unwrap()
    }

    #[test]
    fn urls_follow_litellm() {
        assert_eq!(
            Family::Cohere.url("https://api.cohere.com"),
            "https://api.cohere.com/v2/rerank"
        );
        assert_eq!(Family::Cohere.url("http://h/v2/"), "http://h/v2/rerank");
        assert_eq!(
            Family::Cohere.url("http://h/v2/rerank"),
            "http://h/v2/rerank"
        );
        assert_eq!(
            Family::Jina.url("https://api.jina.ai"),
            "https://api.jina.ai/v1/rerank"
        );
        assert_eq!(Family::Voyage.url("http://h/v1"), "http://h/v1/rerank");
        assert_eq!(
            Family::Vllm.url("http://h:8000/v1"),
            "http://h:8000/v1/rerank"
        );
        assert_eq!(Family::Vllm.url("http://h/rerank/"), "http://h/rerank");
    }

    #[test]
    fn bodies_per_family() {
        let req = rerank(REQ);
        let dep = Deployment::new("g", "cohere/rerank-v3.5").with_api_key("ck");
        let out = encode(Family::Cohere, &COHERE, &req, &dep).unwrap();
        assert_eq!(out.uri().to_string(), "https://api.cohere.com/v2/rerank");
        assert_eq!(out.headers()[http::header::AUTHORIZATION], "Bearer ck");
        assert_eq!(
            sent(&out),
            serde_json::json!({"model":"rerank-v3.5","query":"q","documents":["a",{"text":"b"}],
                "top_n":2,"rank_fields":["text"],"return_documents":true,"max_tokens_per_doc":9})
        );
        let dep = Deployment::new("g", "voyage/rerank-2").with_api_key("vk");
        let out = encode(Family::Voyage, &VOYAGE, &req, &dep).unwrap();
        assert_eq!(out.uri().to_string(), "https://api.voyageai.com/v1/rerank");
        assert_eq!(
            sent(&out),
            serde_json::json!({"model":"rerank-2","query":"q","documents":["a",{"text":"b"}],
                "top_k":2,"return_documents":true})
        );
        let dep = Deployment::new("g", "jina_ai/jina-reranker-v2").with_api_key("jk");
        let out = encode(Family::Jina, &JINA_AI, &req, &dep).unwrap();
        assert_eq!(
            sent(&out),
            serde_json::json!({"model":"jina-reranker-v2","query":"q",
                "documents":["a",{"text":"b"}],"top_n":2,"return_documents":true})
        );
    }

    #[test]
    fn keys_and_bases_are_required_where_the_host_needs_them() {
        let req = rerank(REQ);
        let dep = Deployment::new("g", "cohere/rerank-v3.5").with_env(|_| None);
        let err = encode(Family::Cohere, &COHERE, &req, &dep).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Authentication);
        assert!(err.message().contains("COHERE_API_KEY"), "{err}");
        let env = |n: &str| (n == "CO_API_KEY").then(|| "env-key".to_owned());
        let dep = Deployment::new("g", "cohere/rerank-v3.5").with_env(env);
        let out = encode(Family::Cohere, &COHERE, &req, &dep).unwrap();
        assert_eq!(out.headers()[http::header::AUTHORIZATION], "Bearer env-key");
        let vllm = super::super::compat::spec("hosted_vllm").unwrap();
        let dep = Deployment::new("g", "hosted_vllm/bge").with_env(|_| None);
        assert_eq!(
            encode(Family::Vllm, vllm, &req, &dep).unwrap_err().kind(),
            ErrorKind::BadRequest
        );
        let dep = dep.with_api_base("http://127.0.0.1:9/v1");
        let out = encode(Family::Vllm, vllm, &req, &dep).unwrap();
        assert_eq!(out.uri().to_string(), "http://127.0.0.1:9/v1/rerank");
        assert!(!out.headers().contains_key(http::header::AUTHORIZATION));
        let dep = Deployment::new("g", "infinity/bge").with_env(|_| None);
        assert_eq!(
            encode(Family::Infinity, &INFINITY, &req, &dep)
                .unwrap_err()
                .kind(),
            ErrorKind::BadRequest
        );
        let dep = dep.with_api_base("http://127.0.0.1:7997");
        let out = encode(Family::Infinity, &INFINITY, &req, &dep).unwrap();
        assert_eq!(out.uri().to_string(), "http://127.0.0.1:7997/rerank");
        assert!(sent(&out).get("rank_fields").is_none());
        let dep = Deployment::new("g", "hosted_vllm/bge")
            .with_env(|_| None)
            .with_api_base("http://127.0.0.1:9/v1");
        let chunks = rerank(r#"{"model":"g","query":"q","documents":[],"max_chunks_per_doc":2}"#);
        let err = encode(Family::Vllm, vllm, &chunks, &dep).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest);
    }

    fn answer(resp: LlmResponse) -> (serde_json::Value, crate::types::TokenUsage) {
        let usage = resp.token_usage().unwrap();
        match resp.body {
            crate::types::ResponseBody::Json(j) => {
                (serde_json::from_slice(&j.bytes).unwrap(), usage)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn answers_in_cohere_shape() {
        let cohere = Bytes::from_static(
            br#"{"id":"c1","results":[{"index":1,"relevance_score":0.9}],
                "meta":{"api_version":{"version":"2"},"billed_units":{"search_units":1}}}"#,
        );
        let resp = decode(Family::Cohere, &cohere, "rerank-v3.5").unwrap();
        assert_eq!(resp.body.model(), Some("rerank-v3.5"));
        let (v, u) = answer(resp);
        assert_eq!(v["meta"]["api_version"]["version"], "2");
        assert_eq!((u.search_units, u.input), (1, 0));

        let voyage = Bytes::from_static(
            br#"{"object":"list","data":[{"index":0,"relevance_score":0.5,"document":"a"}],
                "model":"rerank-2","usage":{"total_tokens":12}}"#,
        );
        let (v, u) = answer(decode(Family::Voyage, &voyage, "rerank-2").unwrap());
        assert_eq!(v["results"][0]["document"], serde_json::json!({"text":"a"}));
        assert_eq!(v["meta"]["billed_units"]["total_tokens"], 12);
        assert!(v["id"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!((u.input, u.search_units), (12, 0));

        let jina = Bytes::from_static(
            br#"{"model":"j","usage":{"total_tokens":7},"results":[{"index":2,"relevance_score":0.1,"document":{"text":"c"}}]}"#,
        );
        let (v, u) = answer(decode(Family::Jina, &jina, "j").unwrap());
        assert_eq!(v["results"][0]["index"], 2);
        assert_eq!(v["results"][0]["document"]["text"], "c");
        assert_eq!(u.input, 7);

        for bad in [&b"{}"[..], b"nope", br#"{"results":[{"index":"x"}]}"#] {
            assert!(decode(Family::Jina, &Bytes::copy_from_slice(bad), "j").is_err());
            assert!(decode(Family::Cohere, &Bytes::copy_from_slice(bad), "c").is_err());
        }
    }

    #[test]
    fn errors_carry_the_hosts_message() {
        let e = classify(
            "cohere",
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            br#"{"message":"slow down"}"#,
        );
        assert_eq!(e.kind(), ErrorKind::RateLimit);
        assert_eq!(e.message(), "slow down");
        let e = classify(
            "voyage",
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            br#"{"detail":"bad key"}"#,
        );
        assert_eq!(e.kind(), ErrorKind::Authentication);
        assert_eq!(e.message(), "bad key");
        let e = classify("jina_ai", StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"");
        assert!(e.message().contains("502"), "{e}");
    }
}
