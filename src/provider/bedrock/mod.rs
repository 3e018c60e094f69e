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
//!   else the environment's `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`
//!   (read when the deployment is built, like every variable named here): the request is signed
//!   with SigV4 ([`sign`]) at the current time;
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

pub mod embed;
pub mod encode;
pub mod error;
pub mod image;
pub(crate) mod messages;
pub(crate) mod passthrough;
pub mod rerank;
pub mod stream;

mod decode;
mod sign;

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use self::sign::region_in;
pub use self::{
    decode::{decode_converse, finish_reason},
    encode::{converse_body, SUPPORTED_PARAMS},
    error::classify_bedrock_error,
    sign::{region, sign, AwsCredentials, DEFAULT_REGION, SIGNING_NAME},
    stream::{ConverseStreamMapper, EventMapper, EventStreamDecoder},
};
use super::{
    params::Endpoint,
    resolve::{self, reached, BedrockAuth, BedrockState, DeploymentEnv, Refusal, Resolved},
    ByteStream, Deployment, Provider,
};
use crate::{
    error::{ErrorKind, LlmError},
    types::{ChatStream, EventStream, LlmRequest, LlmResponse, Operation, OperationKind},
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

/// The InvokeModel URL for `dep` (embeddings).
pub fn invoke_url(dep: &Deployment, region: &str) -> Result<String, LlmError> {
    let id = utf8_percent_encode(model_id(dep)?, SEGMENT);
    Ok(format!("{}/model/{id}/invoke", endpoint(dep, region)))
}

/// The environment variables Bedrock deployments fall back on.
pub(crate) const ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION_NAME",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_BEARER_TOKEN_BEDROCK",
];

/// The embeddings body family of the deployment's model, or a 400 naming the models that embed.
fn embed_family(dep: &Deployment) -> Result<embed::EmbedFamily, LlmError> {
    let id = model_id(dep)?;
    embed::family(id).ok_or_else(|| {
        LlmError::bad_request(format!(
            "bedrock embeddings support amazon.titan-embed-text-* and cohere.embed-* models, not {id}"
        ))
    })
}

/// The image body family of the deployment's model, or a 400 naming the models that draw.
fn image_family(dep: &Deployment) -> Result<image::ImageFamily, LlmError> {
    let id = model_id(dep)?;
    image::family(id).ok_or_else(|| {
        LlmError::bad_request(format!(
            "bedrock image generation supports amazon.titan-image-generator-*, \
             amazon.nova-canvas-*, stability.sd3-* and stability.stable-image-* models, not {id}"
        ))
    })
}

/// How a request is authenticated.
#[derive(Debug)]
enum Auth {
    SigV4(AwsCredentials),
    Bearer(String),
}

#[cfg(test)]
fn auth(dep: &Deployment) -> Result<Auth, LlmError> {
    auth_in(dep, dep.env())
}

fn auth_in(dep: &Deployment, env: Option<&DeploymentEnv>) -> Result<Auth, LlmError> {
    if let Some(creds) = AwsCredentials::from_deployment_in(dep, env) {
        return Ok(Auth::SigV4(creds));
    }
    if let Some(key) = dep.api_key.as_ref().filter(|k| !k.is_empty()) {
        return Ok(Auth::Bearer(key.expose().to_owned()));
    }
    if let Some(key) = env.and_then(|e| e.var("AWS_BEARER_TOKEN_BEDROCK")) {
        return Ok(Auth::Bearer(key.to_owned()));
    }
    Err(LlmError::new(
        ErrorKind::Authentication,
        "no AWS credentials for this Bedrock deployment: set aws_access_key_id and \
         aws_secret_access_key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), or a Bedrock api_key",
    )
    .with_provider("bedrock"))
}

/// Resolves a Bedrock deployment: its region, both Converse endpoints and its credentials.
pub(crate) fn resolve(dep: &Deployment, env: &DeploymentEnv, r: &mut Resolved) {
    let region = region_in(dep, Some(env));
    let at = |stream: bool| -> Result<String, LlmError> {
        let url = converse_url(dep, &region, stream)?;
        url.parse::<http::Uri>().map_err(|e| {
            LlmError::bad_request(format!(
                "the deployment's Bedrock endpoint is not a valid URL: {e}"
            ))
        })?;
        Ok(url)
    };
    let target = |stream: bool| {
        at(stream)
            .map_err(Refusal::from)
            .and_then(|url: String| resolve::endpoint(&url))
    };
    r.chat = target(false);
    r.chat_stream = target(true);
    r.embeddings = invoke_url(dep, &region)
        .map_err(Refusal::from)
        .and_then(|url| resolve::endpoint(&url));
    let auth = auth_in(dep, Some(env)).and_then(|a| match a {
        Auth::SigV4(creds) => Ok(BedrockAuth::SigV4(creds)),
        Auth::Bearer(key) => super::openai::bearer(&key).map(BedrockAuth::Bearer),
    });
    r.bedrock = Some(BedrockState {
        region: region.into(),
        auth: auth.map_err(Refusal::from),
    });
}

impl Provider for Bedrock {
    fn name(&self) -> &'static str {
        "bedrock"
    }

    fn supports(&self, op: OperationKind) -> bool {
        matches!(
            op,
            OperationKind::Chat
                | OperationKind::Embeddings
                | OperationKind::ImageGenerations
                | OperationKind::Rerank
        )
    }

    fn supported_params(&self, endpoint: Endpoint) -> Option<&'static [&'static str]> {
        Some(match endpoint {
            Endpoint::Chat => SUPPORTED_PARAMS,
            Endpoint::Embeddings => embed::EMBEDDINGS_PARAMS,
        })
    }

    fn embedding_inputs_per_call(&self, dep: &Deployment) -> Option<usize> {
        model_id(dep)
            .ok()
            .and_then(embed::family)
            .map(embed::inputs_per_call)
    }

    /// Chat, and Anthropic's Messages relayed to a Claude model (InvokeModel: see `messages`).
    fn supports_for(&self, op: OperationKind, dep: &Deployment) -> bool {
        self.supports(op)
            || (op == OperationKind::Messages && messages::claude_model_id(dep).is_some())
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        if let Operation::Messages(_) = &req.op {
            let id = messages::claude_model_id(dep).ok_or_else(|| super::unsupported(self, req))?;
            let raw = req
                .raw_body()
                .ok_or_else(|| LlmError::internal("a Messages request without its body"))?;
            return messages::encode(req, raw, id, dep);
        }
        let r = dep.resolved(self.name());
        let Some(state) = r.bedrock.as_ref() else {
            return Err(LlmError::internal(
                "the Bedrock deployment was not resolved",
            ));
        };
        let rerank_endpoint;
        let (endpoint, body) = match &req.op {
            Operation::Rerank(rr) => {
                // Rerank is rare: its agent-runtime URL is worked out per call.
                let url = rerank::url(&endpoint(dep, &state.region));
                rerank_endpoint = super::resolve::Endpoint::parse(&url)?;
                let arn = rerank::model_arn(model_id(dep)?, &state.region);
                (&rerank_endpoint, rerank::body(rr, &arn)?)
            }
            Operation::Chat(chat) => (r.chat_endpoint(req.is_stream())?, converse_body(chat, dep)?),
            Operation::Embeddings(emb) => {
                let family = embed_family(dep)?;
                let input_type = dep.param_str("input_type");
                (
                    reached(&r.embeddings)?,
                    embed::invoke_body(emb, family, input_type)?,
                )
            }
            Operation::ImageGenerations(img) => (
                // InvokeModel: the same URL as the embedding models'.
                reached(&r.embeddings)?,
                image::invoke_body(img, image_family(dep)?)?,
            ),
            _ => return Err(super::unsupported(self, req)),
        };
        let extra = reached(&r.extra_headers)?;
        let mut http_req = http::Request::new(body);
        *http_req.method_mut() = http::Method::POST;
        *http_req.uri_mut() = endpoint.uri().clone();
        let headers = http_req.headers_mut();
        headers.append(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        for (name, value) in &*extra.list {
            headers.append(name.clone(), value.clone());
        }
        match reached(&state.auth)? {
            BedrockAuth::SigV4(creds) => {
                sign(&mut http_req, creds, &state.region, SystemTime::now())?
            }
            BedrockAuth::Bearer(value) => {
                http_req
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, value.clone());
            }
        }
        Ok(http_req)
    }

    fn decode(
        &self,
        req: &LlmRequest,
        resp: http::Response<Bytes>,
        dep: &Deployment,
    ) -> Result<LlmResponse, LlmError> {
        match &req.op {
            Operation::Chat(chat) => {
                decode_converse(resp.body(), &chat.model).map(LlmResponse::chat)
            }
            Operation::Embeddings(emb) => {
                let tokens = resp
                    .headers()
                    .get("x-amzn-bedrock-input-token-count")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok());
                embed::invoke_answer(emb, embed_family(dep)?, resp.body(), tokens)
                    .map(LlmResponse::embeddings)
            }
            Operation::Messages(_) => super::anthropic::messages::decode_relay(resp.body(), false),
            Operation::ImageGenerations(img) => image::invoke_answer(img, resp.body()),
            Operation::Rerank(rr) => rerank::decode(rr, resp.body(), &dep.model),
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

    fn decode_events(
        &self,
        req: &LlmRequest,
        _parts: http::response::Parts,
        body: ByteStream,
        _dep: &Deployment,
    ) -> Result<EventStream, LlmError> {
        match &req.op {
            Operation::Messages(_) => Ok(messages::events(body)),
            _ => Err(super::unsupported(self, req)),
        }
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

    /// Region, keys and the bearer token as read when the deployment was built, each losing to
    /// the deployment's own parameters.
    #[test]
    fn environment_fallbacks_are_resolved_with_the_deployment() {
        let env = |n: &str| {
            Some(
                match n {
                    "AWS_REGION" => "eu-central-1",
                    "AWS_ACCESS_KEY_ID" => "AKIDENV",
                    "AWS_SECRET_ACCESS_KEY" => "SECRETENV",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let d = dep("bedrock/m").with_env(env);
        assert_eq!(region(&d), "eu-central-1");
        let r = d.resolved("bedrock");
        assert_eq!(
            r.chat_endpoint(false).unwrap().uri().to_string(),
            "https://bedrock-runtime.eu-central-1.amazonaws.com/model/m/converse"
        );
        let state = r.bedrock.as_ref().unwrap();
        assert!(
            matches!(reached(&state.auth).unwrap(), BedrockAuth::SigV4(c) if c.access_key_id() == "AKIDENV")
        );
        let mut own = dep("bedrock/m").with_env(env);
        own.params
            .insert("aws_region_name".into(), "us-east-1".into());
        own.params
            .insert("aws_access_key_id".into(), "AKIDOWN".into());
        own.params
            .insert("aws_secret_access_key".into(), "SECRETOWN".into());
        let r = own.resolved("bedrock");
        assert_eq!(&*r.bedrock.as_ref().unwrap().region, "us-east-1");
        assert!(
            matches!(reached(&r.bedrock.as_ref().unwrap().auth).unwrap(), BedrockAuth::SigV4(c) if c.access_key_id() == "AKIDOWN")
        );
        // Only a bearer token in the environment.
        let bearer_only = dep("bedrock/m")
            .with_env(|n| (n == "AWS_BEARER_TOKEN_BEDROCK").then(|| "br-env".to_owned()));
        let req = LlmRequest::chat(
            serde_json::from_str(r#"{"model":"g","messages":[{"role":"user","content":"hi"}]}"#)
                .unwrap(),
        );
        let out = Bedrock.encode(&req, &bearer_only).unwrap();
        assert_eq!(out.headers()[http::header::AUTHORIZATION], "Bearer br-env");
        assert_eq!(
            out.uri().to_string(),
            "https://bedrock-runtime.us-west-2.amazonaws.com/model/m/converse"
        );
        // Nothing at all: an authentication error on every call.
        let none = dep("bedrock/m").with_env(|_| None);
        for _ in 0..2 {
            let err = Bedrock.encode(&req, &none).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Authentication);
        }
    }
}
