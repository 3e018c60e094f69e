//! `cohere/`: Cohere's API. Rerank (`POST /v1/rerank` on the gateway) goes to Cohere's v2 rerank
//! (`{api_base}/v2/rerank`, `https://api.cohere.com` by default) with `Authorization: Bearer`
//! (the deployment's `api_key`, else `COHERE_API_KEY` / `CO_API_KEY`); the answer is relayed as
//! Cohere sent it, and priced by its search units. See [`rerank`](super::rerank).

use bytes::Bytes;

use super::{
    rerank::{self, Family, COHERE},
    Deployment, Provider,
};
use crate::{
    error::LlmError,
    types::{LlmRequest, OperationKind},
};

/// The `cohere/` provider. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Cohere;

impl Provider for Cohere {
    fn name(&self) -> &'static str {
        COHERE.prefix
    }

    fn supports(&self, op: OperationKind) -> bool {
        op == OperationKind::Rerank
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        rerank::encode(Family::Cohere, &COHERE, req, dep)
    }

    rerank::rerank_only_responses!(Family::Cohere);
}
