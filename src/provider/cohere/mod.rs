//! `cohere/`: Cohere's v2 API, with `Authorization: Bearer` (the deployment's `api_key`, else
//! `COHERE_API_KEY` / `CO_API_KEY`) at `https://api.cohere.com` (else `api_base`,
//! `COHERE_API_BASE`).
//!
//! - Chat → `POST {api_base}/v2/chat` (streams: Cohere's SSE events), see `chat`.
//! - Embeddings → `POST {api_base}/v2/embed`, see `chat`.
//! - Rerank → `POST {api_base}/v2/rerank`, relayed as Cohere answers it and priced by search
//!   unit, see `provider::rerank`.

mod chat;

use bytes::Bytes;

use super::{
    openai::{bearer, resolved_head},
    rerank::{self, Family, COHERE},
    resolve::Endpoint,
    sse::SseStream,
    ByteStream, Deployment, Provider,
};
use crate::{
    error::{ErrorKind, LlmError},
    types::{
        embeddings::EmbeddingsResponse, ChatStream, LlmRequest, LlmResponse, Operation,
        OperationKind,
    },
};

/// The `cohere/` provider. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Cohere;

/// `{base}/v2/{what}`, whether `base` ends with `/v2` or not.
fn url(base: &str, what: &str) -> String {
    let base = base.trim_end_matches('/');
    let base = base.strip_suffix("/v2").unwrap_or(base);
    let base = base.strip_suffix("/v1").unwrap_or(base);
    format!("{base}/v2/{what}")
}

/// The upstream request of `body` to `{api_base}/v2/{what}`.
fn request(
    dep: &Deployment,
    what: &str,
    body: &serde_json::Value,
) -> Result<http::Request<Bytes>, LlmError> {
    let base = COHERE
        .api_base(dep)
        .ok_or_else(|| LlmError::bad_request("the cohere provider needs an api_base"))?;
    let endpoint = Endpoint::parse(&url(base, what))?;
    let key = COHERE
        .api_key(dep)
        .filter(|k| !k.expose().is_empty())
        .ok_or_else(|| {
            LlmError::new(
                ErrorKind::Authentication,
                "the cohere provider needs an api_key (set it in litellm_params or COHERE_API_KEY / CO_API_KEY)",
            )
            .with_provider("cohere")
        })?;
    let body = serde_json::to_vec(body)
        .map_err(|e| LlmError::internal(format!("cannot encode the upstream request: {e}")))?;
    let mut head = resolved_head(&endpoint, &dep.resolved(COHERE.prefix))?;
    head.headers_mut()
        .insert(http::header::AUTHORIZATION, bearer(key.expose())?);
    Ok(head.map(|()| Bytes::from(body)))
}

impl Provider for Cohere {
    fn name(&self) -> &'static str {
        COHERE.prefix
    }

    fn supports(&self, op: OperationKind) -> bool {
        matches!(
            op,
            OperationKind::Chat | OperationKind::Embeddings | OperationKind::Rerank
        )
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        match &req.op {
            Operation::Chat(c) => request(dep, "chat", &chat::chat_body(c, &dep.model)?),
            Operation::Embeddings(e) => request(dep, "embed", &chat::embed_body(e, &dep.model)?),
            Operation::Rerank(_) => rerank::encode(Family::Cohere, &COHERE, req, dep),
            _ => Err(super::unsupported(self, req)),
        }
    }

    fn decode(
        &self,
        req: &LlmRequest,
        resp: http::Response<Bytes>,
        dep: &Deployment,
    ) -> Result<LlmResponse, LlmError> {
        match &req.op {
            Operation::Chat(_) => chat::decode_chat(resp.body(), &dep.model).map(LlmResponse::chat),
            Operation::Embeddings(_) => {
                let v = chat::decode_embed(resp.body(), &dep.model)?;
                serde_json::from_value::<EmbeddingsResponse>(v)
                    .map(LlmResponse::embeddings)
                    .map_err(|e| LlmError::internal(format!("cannot build the embeddings: {e}")))
            }
            Operation::Rerank(_) => rerank::decode(Family::Cohere, resp.body(), &dep.model),
            _ => Err(super::unsupported(self, req)),
        }
    }

    fn decode_stream(
        &self,
        req: &LlmRequest,
        _parts: http::response::Parts,
        body: ByteStream,
        dep: &Deployment,
    ) -> Result<ChatStream, LlmError> {
        let Some(c) = req.as_chat() else {
            return Err(super::unsupported(self, req));
        };
        Ok(Box::pin(SseStream::new(
            body,
            chat::CohereStreamMapper::new(c, &dep.model),
        )))
    }

    fn classify(
        &self,
        status: http::StatusCode,
        headers: &http::HeaderMap,
        body: &[u8],
        _dep: &Deployment,
    ) -> LlmError {
        rerank::classify(self.name(), status, headers, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_auth() {
        assert_eq!(
            url("https://api.cohere.com", "chat"),
            "https://api.cohere.com/v2/chat"
        );
        assert_eq!(url("http://h/v2/", "embed"), "http://h/v2/embed");
        assert_eq!(url("http://h/v1", "chat"), "http://h/v2/chat");
        let req = LlmRequest::chat(
            serde_json::from_str(r#"{"model":"g","messages":[{"role":"user","content":"hi"}]}"#)
                .unwrap(),
        );
        let dep = Deployment::new("g", "cohere/command-r").with_api_key("ck");
        let out = Cohere.encode(&req, &dep).unwrap();
        assert_eq!(out.uri().to_string(), "https://api.cohere.com/v2/chat");
        assert_eq!(out.headers()[http::header::AUTHORIZATION], "Bearer ck");
        let v: serde_json::Value = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(v["model"], "command-r");
        let bare = Deployment::new("g", "cohere/command-r").with_env(|_| None);
        assert_eq!(
            Cohere.encode(&req, &bare).unwrap_err().kind(),
            ErrorKind::Authentication
        );
    }
}
