//! `bedrock/`: Amazon Bedrock's Converse and ConverseStream APIs, signed with AWS SigV4.
//!
//! `bedrock/<modelId>` (and `bedrock/converse/<modelId>`) calls
//! `POST {endpoint}/model/{modelId}/converse`, or `/converse-stream` when the client streams. The
//! model id is percent-encoded in the path (`anthropic.claude-3-5-sonnet-20240620-v1:0` →
//! `…-v1%3A0`; an inference-profile ARN's `/` → `%2F`). The endpoint is the deployment's `api_base`,
//! else `aws_bedrock_runtime_endpoint`, else `https://bedrock-runtime.{region}.amazonaws.com`.
//!
//! ```yaml
//! model_list:
//!   - model_name: claude-sonnet
//!     litellm_params:
//!       model: bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0
//!       aws_region_name: us-east-1
//!       aws_access_key_id: os.environ/AWS_ACCESS_KEY_ID
//!       aws_secret_access_key: os.environ/AWS_SECRET_ACCESS_KEY
//!   - model_name: claude-sonnet-vpc            # a private endpoint, credentials from the environment
//!     litellm_params:
//!       model: bedrock/converse/us.anthropic.claude-3-5-sonnet-20240620-v1:0
//!       aws_bedrock_runtime_endpoint: https://vpce-0123.bedrock-runtime.us-east-1.vpce.amazonaws.com
//! ```
//!
//! # Credentials
//!
//! - `aws_access_key_id` / `aws_secret_access_key` / `aws_session_token` from `litellm_params`,
//!   else the environment's `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`:
//!   the request is signed with SigV4 ([`sign`]) at the current time;
//! - else a Bedrock API key as `api_key` (or `AWS_BEARER_TOKEN_BEDROCK`), sent as
//!   `Authorization: Bearer`.
//!
//! The region is `aws_region_name`, else `AWS_REGION_NAME`, `AWS_REGION`, `AWS_DEFAULT_REGION`, else
//! `us-west-2` (see [`region`]). Role assumption, profiles and web identity (`aws_role_name`,
//! `aws_profile_name`, `aws_web_identity_token`) are not supported yet: such a deployment without
//! keys fails with an authentication error rather than calling AWS unsigned.
//!
//! # Translation
//!
//! See [`encode`] for the request, [`decode_converse`] for the answer,
//! [`stream`] for ConverseStream and [`error`] for error kinds.
//! `bedrock/invoke/<modelId>` (InvokeModel with each vendor's own body) is not implemented.

pub mod encode;
pub mod error;
pub mod stream;

mod decode;
mod sign;

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

pub use self::{
    decode::{decode_converse, finish_reason},
    encode::{converse_body, SUPPORTED_PARAMS},
    error::classify_bedrock_error,
    sign::{region, sign, AwsCredentials, DEFAULT_REGION, SIGNING_NAME},
    stream::{ConverseStreamMapper, EventMapper, EventStreamDecoder},
};
use super::{params::Endpoint, ByteStream, Deployment, Provider};
use crate::{
    error::{ErrorKind, LlmError},
    types::{ChatStream, LlmRequest, LlmResponse, Operation},
};

/// The `bedrock/` provider. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bedrock;

/// Characters left as they are in a path segment: RFC 3986 unreserved.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The upstream model id: the deployment's model without a `converse/` route prefix.
fn model_id(dep: &Deployment) -> Result<&str, LlmError> {
    let model = dep.model.as_ref();
    if model.starts_with("invoke/") {
        return Err(LlmError::bad_request(
            "bedrock/invoke/ models (InvokeModel) are not supported; use bedrock/<modelId> or \
             bedrock/converse/<modelId>",
        ));
    }
    Ok(model.strip_prefix("converse/").unwrap_or(model))
}

/// The endpoint: `api_base`, else `aws_bedrock_runtime_endpoint`, else the regional default.
fn endpoint(dep: &Deployment, region: &str) -> String {
    dep.api_base
        .as_deref()
        .or_else(|| dep.param_str("aws_bedrock_runtime_endpoint"))
        .filter(|s| !s.is_empty())
        .map_or_else(
            || format!("https://bedrock-runtime.{region}.amazonaws.com"),
            |s| s.trim_end_matches('/').to_owned(),
        )
}

/// The Converse (or ConverseStream) URL for `dep`.
pub fn converse_url(dep: &Deployment, region: &str, stream: bool) -> Result<String, LlmError> {
    let id = utf8_percent_encode(model_id(dep)?, SEGMENT);
    let op = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    Ok(format!("{}/model/{id}/{op}", endpoint(dep, region)))
}

/// How a request is authenticated.
enum Auth {
    SigV4(AwsCredentials),
    Bearer(String),
}

fn auth(dep: &Deployment) -> Result<Auth, LlmError> {
    if let Some(creds) = AwsCredentials::from_deployment(dep) {
        return Ok(Auth::SigV4(creds));
    }
    if let Some(key) = dep.api_key.as_ref().filter(|k| !k.is_empty()) {
        return Ok(Auth::Bearer(key.expose().to_owned()));
    }
    if let Some(key) = std::env::var("AWS_BEARER_TOKEN_BEDROCK")
        .ok()
        .filter(|k| !k.is_empty())
    {
        return Ok(Auth::Bearer(key));
    }
    Err(LlmError::new(
        ErrorKind::Authentication,
        "no AWS credentials for this Bedrock deployment: set aws_access_key_id and \
         aws_secret_access_key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), or a Bedrock api_key",
    )
    .with_provider("bedrock"))
}

impl Provider for Bedrock {
    fn name(&self) -> &'static str {
        "bedrock"
    }

    fn supported_params(&self, endpoint: Endpoint) -> Option<&'static [&'static str]> {
        // No embeddings here: `encode` refuses them before any parameter matters.
        (endpoint == Endpoint::Chat).then_some(SUPPORTED_PARAMS)
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        let Operation::Chat(chat) = &req.op else {
            return Err(super::unsupported(self, req));
        };
        let region = region(dep);
        let url = converse_url(dep, &region, req.is_stream())?;
        let body = converse_body(chat, dep)?;
        let uri: http::Uri = url.parse().map_err(|e| {
            LlmError::bad_request(format!(
                "the deployment's Bedrock endpoint is not a valid URL: {e}"
            ))
        })?;
        let mut builder =
            http::Request::post(uri).header(http::header::CONTENT_TYPE, "application/json");
        if let Some(serde_json::Value::Object(extra)) = dep.param("extra_headers") {
            for (name, value) in extra {
                if let Some(v) = value.as_str() {
                    builder = builder.header(name.as_str(), v);
                }
            }
        }
        let mut http_req = builder
            .body(body)
            .map_err(|e| LlmError::bad_request(format!("cannot build upstream request: {e}")))?;
        match auth(dep)? {
            Auth::SigV4(creds) => sign(&mut http_req, &creds, &region, SystemTime::now())?,
            Auth::Bearer(key) => {
                let value = super::openai::bearer(&key)?;
                http_req
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, value);
            }
        }
        Ok(http_req)
    }

    fn decode(
        &self,
        req: &LlmRequest,
        resp: http::Response<Bytes>,
        _dep: &Deployment,
    ) -> Result<LlmResponse, LlmError> {
        match &req.op {
            Operation::Chat(chat) => {
                decode_converse(resp.body(), &chat.model).map(LlmResponse::chat)
            }
            _ => Err(super::unsupported(self, req)),
        }
    }

    fn decode_stream(
        &self,
        req: &LlmRequest,
        _parts: http::response::Parts,
        body: ByteStream,
        _dep: &Deployment,
    ) -> Result<ChatStream, LlmError> {
        let Operation::Chat(chat) = &req.op else {
            return Err(super::unsupported(self, req));
        };
        let include_usage = chat
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        Ok(Box::pin(EventStreamDecoder::new(
            body,
            ConverseStreamMapper::new(chat.model.clone(), include_usage),
        )))
    }

    fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        _dep: &Deployment,
    ) -> LlmError {
        classify_bedrock_error(status, headers, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(model: &str) -> Deployment {
        Deployment::new("g", model)
    }

    #[test]
    fn builds_urls() {
        let d = dep("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0");
        assert_eq!(
            converse_url(&d, "us-east-1", false).unwrap(),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
        );
        let d = dep("bedrock/converse/arn:aws:bedrock:us-east-1:123:inference-profile/us.x-v1:0")
            .with_api_base("http://127.0.0.1:9/");
        assert_eq!(
            converse_url(&d, "us-east-1", true).unwrap(),
            "http://127.0.0.1:9/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.x-v1%3A0/converse-stream"
        );
        assert!(converse_url(&dep("bedrock/invoke/x"), "r", false).is_err());
    }

    #[test]
    fn runtime_endpoint_param_overrides_region() {
        let mut d = dep("bedrock/m");
        d.params.insert(
            "aws_bedrock_runtime_endpoint".into(),
            "https://vpce.example.com".into(),
        );
        assert_eq!(
            converse_url(&d, "eu-west-1", false).unwrap(),
            "https://vpce.example.com/model/m/converse"
        );
    }

    #[test]
    fn deployment_keys_win_over_api_key() {
        let mut d = dep("bedrock/m").with_api_key("bedrock-api-key");
        d.params
            .insert("aws_region_name".into(), "us-east-1".into());
        // Keys in the deployment win over the api_key.
        d.params.insert("aws_access_key_id".into(), "AKID".into());
        d.params
            .insert("aws_secret_access_key".into(), "SECRET".into());
        assert!(matches!(auth(&d).unwrap(), Auth::SigV4(_)));
    }
}
