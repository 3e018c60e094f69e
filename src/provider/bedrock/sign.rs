//! AWS credentials, region and SigV4 signing for Bedrock, with the `aws-sigv4` crate.

use std::{fmt, time::SystemTime};

use bytes::Bytes;

use crate::{
    error::{ErrorKind, LlmError},
    provider::{
        resolve::{process_var, DeploymentEnv},
        Deployment,
    },
    secret::Secret,
};

/// The SigV4 signing name of the Bedrock runtime API (the host says `bedrock-runtime`, the
/// credential scope says `bedrock`).
pub const SIGNING_NAME: &str = "bedrock";

/// The region when neither the deployment nor the environment names one (LiteLLM's default).
pub const DEFAULT_REGION: &str = "us-west-2";

/// Long-term or temporary AWS credentials.
#[derive(Clone)]
pub struct AwsCredentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
}

impl AwsCredentials {
    /// Credentials from an access key pair, with the session token of temporary credentials.
    #[must_use]
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key),
            session_token: session_token.filter(|t| !t.is_empty()).map(Secret::new),
        }
    }

    /// The access key id (not secret; it appears in the `Authorization` header).
    #[must_use]
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Whether these are temporary credentials (a session token is sent and signed).
    #[must_use]
    pub fn has_session_token(&self) -> bool {
        self.session_token.is_some()
    }

    /// Credentials from the deployment's `aws_access_key_id` / `aws_secret_access_key` /
    /// `aws_session_token`, else from the environment as read when the deployment was built
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`). The two sources are
    /// never mixed: a session token from the environment is not paired with keys from the
    /// deployment.
    #[must_use]
    pub fn from_deployment(dep: &Deployment) -> Option<Self> {
        Self::from_deployment_in(dep, dep.env())
    }

    /// [`from_deployment`](Self::from_deployment) with the environment `env`.
    pub(crate) fn from_deployment_in(
        dep: &Deployment,
        env: Option<&DeploymentEnv>,
    ) -> Option<Self> {
        let param = |k: &str| dep.param_str(k).filter(|s| !s.is_empty());
        if let (Some(id), Some(secret)) =
            (param("aws_access_key_id"), param("aws_secret_access_key"))
        {
            return Some(Self::new(
                id,
                secret,
                param("aws_session_token").map(str::to_owned),
            ));
        }
        let env = env?;
        let id = env.var("AWS_ACCESS_KEY_ID")?;
        let secret = env.var("AWS_SECRET_ACCESS_KEY")?;
        Some(Self::new(
            id,
            secret,
            env.var("AWS_SESSION_TOKEN").map(str::to_owned),
        ))
    }

    /// Credentials from the standard AWS environment variables of the process, read now.
    #[must_use]
    pub fn from_env() -> Option<Self> {
        let var = |k: &str| process_var(k).filter(|s| !s.is_empty());
        let id = var("AWS_ACCESS_KEY_ID")?;
        let secret = var("AWS_SECRET_ACCESS_KEY")?;
        Some(Self::new(id, secret, var("AWS_SESSION_TOKEN")))
    }
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

/// The deployment's region: `aws_region_name`, else `AWS_REGION_NAME`, `AWS_REGION`,
/// `AWS_DEFAULT_REGION` (as read when the deployment was built), else [`DEFAULT_REGION`] (the
/// order LiteLLM follows).
#[must_use]
pub fn region(dep: &Deployment) -> String {
    region_in(dep, dep.env())
}

/// [`region`] with the environment `env`.
pub(crate) fn region_in(dep: &Deployment, env: Option<&DeploymentEnv>) -> String {
    if let Some(r) = dep.param_str("aws_region_name").filter(|s| !s.is_empty()) {
        return r.to_owned();
    }
    ["AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|k| env?.var(k))
        .map_or_else(|| DEFAULT_REGION.to_owned(), str::to_owned)
}

/// Signs `req` with SigV4 for the Bedrock runtime (`bedrock` in the credential scope) at `time`:
/// adds `x-amz-date`, `authorization` and, for temporary credentials, `x-amz-security-token`.
///
/// Every header already on the request is signed, plus `host` taken from the URI. The canonical
/// URI is the request path percent-encoded once more (the rule for every service but S3), so a
/// model id sent as `…v1%3A0` is signed as `…v1%253A0`. No `x-amz-content-sha256` header is added;
/// the payload hash still enters the canonical request.
///
/// [`encode`](crate::provider::Provider::encode) signs with the current time; tests pass a fixed one.
pub fn sign(
    req: &mut http::Request<Bytes>,
    creds: &AwsCredentials,
    region: &str,
    time: SystemTime,
) -> Result<(), LlmError> {
    use aws_sigv4::{
        http_request::{SignableBody, SignableRequest, SigningSettings},
        sign::v4,
    };

    let identity = aws_credential_types::Credentials::new(
        creds.access_key_id.as_str(),
        creds.secret_access_key.expose(),
        creds.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "llmgate",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| signing_error(&e))?
        .into();
    let uri = req.uri().to_string();
    let mut headers = Vec::with_capacity(req.headers().len());
    for (name, value) in req.headers() {
        let value = value.to_str().map_err(|_| {
            LlmError::bad_request(format!(
                "the upstream header {name} is not visible ASCII and cannot be signed"
            ))
        })?;
        headers.push((name.as_str(), value));
    }
    let signable = SignableRequest::new(
        req.method().as_str(),
        uri.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(req.body()),
    )
    .map_err(|e| signing_error(&e))?;
    let (instructions, _signature) = aws_sigv4::http_request::sign(signable, &params)
        .map_err(|e| signing_error(&e))?
        .into_parts();
    let (signed_headers, _query) = instructions.into_parts();
    for header in signed_headers {
        let mut value = http::HeaderValue::try_from(header.value())
            .map_err(|_| signing_error(&"a signing header is not a valid header value"))?;
        let name = http::HeaderName::from_static(header.name());
        value.set_sensitive(
            header.sensitive()
                || name == http::header::AUTHORIZATION
                || name.as_str() == "x-amz-security-token",
        );
        req.headers_mut().insert(name, value);
    }
    Ok(())
}

fn signing_error(e: &dyn fmt::Display) -> LlmError {
    LlmError::new(
        ErrorKind::Authentication,
        format!("cannot sign the Bedrock request: {e}"),
    )
    .with_provider("bedrock")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// 2015-08-30T12:36:00Z, the AWS SigV4 test suite's time.
    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn request(path: &str) -> http::Request<Bytes> {
        http::Request::post(format!("https://bedrock-runtime.us-east-1.amazonaws.com{path}"))
            .header("content-type", "application/json")
            .body(Bytes::from_static(
                br#"{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":200}}"#,
            ))
            .unwrap()
    }

    #[test]
    fn signs_like_botocore() {
        let mut req = request("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
        let creds = AwsCredentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
        );
        sign(&mut req, &creds, "us-east-1", suite_time()).unwrap();
        assert_eq!(req.headers()["x-amz-date"], "20150830T123600Z");
        assert_eq!(
            req.headers()["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=a9382ef86df645362752a5f623ed5d1fb0ab30028fcac4a730e1cf5f2db857c8"
        );
        assert!(req.headers()["authorization"].is_sensitive());
        assert!(!req.headers().contains_key("x-amz-content-sha256"));
        assert!(!req.headers().contains_key("x-amz-security-token"));
    }

    #[test]
    fn debug_hides_secrets() {
        let creds = AwsCredentials::new("AKID", "very-secret-key", Some("tok-secret".into()));
        let s = format!("{creds:?}");
        assert!(s.contains("AKID") && !s.contains("very-secret") && !s.contains("tok-secret"));
    }
}
