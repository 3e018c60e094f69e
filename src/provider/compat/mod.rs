//! OpenAI-compatible hosts (`deepseek/`, `groq/`, `mistral/`, `openrouter/`, `together_ai/`,
//! `dashscope/`, `hosted_vllm/`, `xai/`, `fireworks_ai/`, `perplexity/`): the OpenAI wire format at
//! another address, with a few per-host quirks.
//!
//! Every host is one row of [`HOSTS`]: its prefix, default `api_base`, the environment variables
//! LiteLLM reads for its base URL and key, and its quirks (parameter renames, a model-id prefix). One
//! provider type, [`OpenAiCompatible`], serves every row; the body, responses, stream chunks and
//! error objects are those of the [`openai`](super::openai) module, relayed as sent.
//!
//! A deployment's own `api_base` / `api_key` always win. When it sets none, the host's environment
//! variables (read when the deployment was built: [`Deployment::new`], [`Deployment::with_env`])
//! and then its default base URL apply. The
//! plain `openai/` provider uses the same fallback through [`OPENAI`] (`OPENAI_API_KEY`,
//! `OPENAI_BASE_URL` / `OPENAI_API_BASE`).
//!
//! | prefix | default `api_base` | key env | quirks |
//! | --- | --- | --- | --- |
//! | `deepseek` | `https://api.deepseek.com` | `DEEPSEEK_API_KEY` | `reasoning_content` relayed |
//! | `groq` | `https://api.groq.com/openai/v1` | `GROQ_API_KEY` | |
//! | `mistral` | `https://api.mistral.ai/v1` | `MISTRAL_API_KEY` | `seed` → `random_seed`, `max_completion_tokens` → `max_tokens` |
//! | `openrouter` | `https://openrouter.ai/api/v1` | `OPENROUTER_API_KEY` | `vendor/model` kept |
//! | `together_ai` | `https://api.together.xyz/v1` | `TOGETHERAI_API_KEY`, `TOGETHER_API_KEY` | |
//! | `dashscope` | `https://dashscope-intl.aliyuncs.com/compatible-mode/v1` | `DASHSCOPE_API_KEY` | |
//! | `hosted_vllm` | none (`api_base` required) | `HOSTED_VLLM_API_KEY` | no key required |
//! | `xai` | `https://api.x.ai/v1` | `XAI_API_KEY` | |
//! | `fireworks_ai` | `https://api.fireworks.ai/inference/v1` | `FIREWORKS_API_KEY`, `FIREWORKS_AI_API_KEY` | model id prefixed with `accounts/fireworks/models/` when it has no `accounts/` |
//! | `perplexity` | `https://api.perplexity.ai` | `PERPLEXITYAI_API_KEY`, `PERPLEXITY_API_KEY` | |

use std::{borrow::Cow, fmt};

use bytes::Bytes;

use super::{
    openai::{chat_body, embeddings_body, join_url, openai_shaped_responses, resolved_head},
    resolve::{bearer_header, endpoint, reached, DeploymentEnv, Refusal, Resolved},
    Deployment, Provider,
};
use crate::{
    error::LlmError,
    secret::Secret,
    types::{chat::ChatRequest, LlmRequest, Operation},
};

/// One OpenAI-compatible host: where it lives, where its credentials come from, and its quirks.
pub struct HostSpec {
    /// The model prefix (`deepseek`, `groq`, …).
    pub prefix: &'static str,
    /// The base URL when neither the deployment nor the environment sets one.
    pub default_api_base: Option<&'static str>,
    /// Environment variables holding a base URL, first set wins.
    pub base_env: &'static [&'static str],
    /// Environment variables holding the key, first set wins.
    pub key_env: &'static [&'static str],
    /// Prefix added to the upstream model id when it does not start with `accounts/` (Fireworks).
    pub model_prefix: Option<&'static str>,
    /// Rewrites the request for the host, returning `None` when nothing changes.
    pub adjust: Option<fn(&ChatRequest) -> Option<ChatRequest>>,
}

impl fmt::Debug for HostSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostSpec")
            .field("prefix", &self.prefix)
            .field("default_api_base", &self.default_api_base)
            .field("base_env", &self.base_env)
            .field("key_env", &self.key_env)
            .finish_non_exhaustive()
    }
}

impl HostSpec {
    const fn new(
        prefix: &'static str,
        default_api_base: Option<&'static str>,
        base_env: &'static [&'static str],
        key_env: &'static [&'static str],
    ) -> Self {
        Self {
            prefix,
            default_api_base,
            base_env,
            key_env,
            model_prefix: None,
            adjust: None,
        }
    }

    const fn model_prefix(mut self, prefix: &'static str) -> Self {
        self.model_prefix = Some(prefix);
        self
    }

    const fn adjust(mut self, f: fn(&ChatRequest) -> Option<ChatRequest>) -> Self {
        self.adjust = Some(f);
        self
    }

    /// The base URL: the deployment's, else the environment's (as read when the deployment was
    /// built), else the host default.
    #[must_use]
    pub fn api_base<'a>(&'a self, dep: &'a Deployment) -> Option<&'a str> {
        dep.api_base
            .as_deref()
            .or_else(|| dep.env().and_then(|e| e.first(self.base_env)))
            .or(self.default_api_base)
    }

    /// The key: the deployment's, else the environment's (as read when the deployment was built).
    #[must_use]
    pub fn api_key<'a>(&'a self, dep: &'a Deployment) -> Option<&'a Secret> {
        dep.api_key
            .as_ref()
            .or_else(|| dep.env().and_then(|e| e.first_secret(self.key_env)))
    }

    /// Resolves a deployment of this host: its endpoints and its `Authorization` value.
    pub(crate) fn resolve(&self, dep: &Deployment, env: &DeploymentEnv, r: &mut Resolved) {
        let base = dep
            .api_base
            .as_deref()
            .or_else(|| env.first(self.base_env))
            .or(self.default_api_base);
        match base {
            Some(base) => {
                r.chat = endpoint(&join_url(base, "chat/completions"));
                r.chat_stream = r.chat.clone();
                r.embeddings = endpoint(&join_url(base, "embeddings"));
            }
            None => {
                let refusal = Refusal::from(LlmError::bad_request(format!(
                    "the {} provider needs an api_base (set it in litellm_params{})",
                    self.prefix,
                    self.base_env
                        .first()
                        .map(|n| format!(" or {n}"))
                        .unwrap_or_default()
                )));
                r.chat = Err(refusal.clone());
                r.chat_stream = Err(refusal.clone());
                r.embeddings = Err(refusal);
            }
        }
        let key = match &dep.api_key {
            Some(key) => Some(key.expose()),
            None => env.first(self.key_env),
        };
        r.credential = key.filter(|k| !k.is_empty()).map(bearer_header);
    }

    /// The model id sent upstream.
    #[must_use]
    pub fn upstream_model<'a>(&self, model: &'a str) -> Cow<'a, str> {
        match self.model_prefix {
            Some(p) if !model.starts_with("accounts/") => Cow::Owned(format!("{p}{model}")),
            _ => Cow::Borrowed(model),
        }
    }

    /// Builds the upstream request: `{api_base}/chat/completions` (or `/embeddings`), the body with
    /// `model` rewritten and the host's renames, `Authorization: Bearer` when a key is known.
    pub fn encode(
        &self,
        provider: &dyn Provider,
        req: &LlmRequest,
        dep: &Deployment,
    ) -> Result<http::Request<Bytes>, LlmError> {
        let r = dep.resolved(self.prefix);
        let model = self.upstream_model(&dep.model);
        let (endpoint, body) = match &req.op {
            Operation::Chat(chat) => {
                let endpoint = r.chat_endpoint(req.is_stream())?;
                // A host rename changed the body: the client's bytes no longer describe it.
                let body = match self.adjust.and_then(|f| f(chat)) {
                    Some(adjusted) => chat_body(&adjusted, None, &model)?,
                    None => chat_body(chat, req.raw_body().map(|b| &b[..]), &model)?,
                };
                (endpoint, body)
            }
            Operation::Embeddings(emb) => (
                reached(&r.embeddings)?,
                embeddings_body(emb, req.raw_body().map(|b| &b[..]), &model)?,
            ),
            Operation::Completions(c) => {
                return super::openai::completions::encode(self, &r.family, req, c, dep)
            }
            Operation::Moderations(m) => {
                return super::openai::moderations::encode(self, &r.family, req, m, dep)
            }
            Operation::ImageGenerations(_) | Operation::Upload(_) | Operation::AudioSpeech(_) => {
                return super::openai::media::encode(&r.family, req, dep, &model)
            }
            Operation::Rerank(_) if self.prefix == "hosted_vllm" => {
                return super::rerank::encode(super::rerank::Family::Vllm, self, req, dep)
            }
            Operation::Rerank(_) if self.prefix == "together_ai" => {
                return super::rerank::encode(super::rerank::Family::Together, self, req, dep)
            }
            _ => return Err(super::unsupported(provider, req)),
        };
        let mut head = resolved_head(endpoint, &r)?;
        r.add_credential(head.headers_mut())?;
        Ok(head.map(|()| body))
    }
}

/// The host spec of a prefix: [`OPENAI`] or a row of [`HOSTS`].
pub(crate) fn spec(prefix: &str) -> Option<&'static HostSpec> {
    if prefix == OPENAI.prefix || prefix == super::openai::completions::TEXT_COMPLETION_OPENAI {
        return Some(&OPENAI);
    }
    HOSTS.iter().map(|h| &h.spec).find(|s| s.prefix == prefix)
}

/// The plain `openai/` provider's defaults: `OPENAI_API_KEY`, `OPENAI_BASE_URL` /
/// `OPENAI_API_BASE`, else `https://api.openai.com/v1`.
pub static OPENAI: HostSpec = HostSpec::new(
    "openai",
    Some(super::openai::DEFAULT_API_BASE),
    &["OPENAI_BASE_URL", "OPENAI_API_BASE"],
    &["OPENAI_API_KEY"],
);

/// Every OpenAI-compatible host, by prefix. See the [module docs](self).
pub static HOSTS: [OpenAiCompatible; 10] = [
    OpenAiCompatible::new(HostSpec::new(
        "deepseek",
        Some("https://api.deepseek.com"),
        &["DEEPSEEK_API_BASE"],
        &["DEEPSEEK_API_KEY"],
    )),
    OpenAiCompatible::new(HostSpec::new(
        "groq",
        Some("https://api.groq.com/openai/v1"),
        &["GROQ_API_BASE"],
        &["GROQ_API_KEY"],
    )),
    OpenAiCompatible::new(
        HostSpec::new(
            "mistral",
            Some("https://api.mistral.ai/v1"),
            &["MISTRAL_API_BASE"],
            &["MISTRAL_API_KEY"],
        )
        .adjust(mistral_params),
    ),
    OpenAiCompatible::new(HostSpec::new(
        "openrouter",
        Some("https://openrouter.ai/api/v1"),
        &["OPENROUTER_API_BASE"],
        &["OPENROUTER_API_KEY"],
    )),
    OpenAiCompatible::new(HostSpec::new(
        "together_ai",
        Some("https://api.together.xyz/v1"),
        &["TOGETHER_AI_API_BASE"],
        &[
            "TOGETHERAI_API_KEY",
            "TOGETHER_API_KEY",
            "TOGETHER_AI_API_KEY",
        ],
    )),
    OpenAiCompatible::new(HostSpec::new(
        "dashscope",
        Some("https://dashscope-intl.aliyuncs.com/compatible-mode/v1"),
        &["DASHSCOPE_API_BASE"],
        &["DASHSCOPE_API_KEY"],
    )),
    OpenAiCompatible::new(HostSpec::new(
        "hosted_vllm",
        None,
        &["HOSTED_VLLM_API_BASE"],
        &["HOSTED_VLLM_API_KEY"],
    )),
    OpenAiCompatible::new(HostSpec::new(
        "xai",
        Some("https://api.x.ai/v1"),
        &["XAI_API_BASE"],
        &["XAI_API_KEY"],
    )),
    OpenAiCompatible::new(
        HostSpec::new(
            "fireworks_ai",
            Some("https://api.fireworks.ai/inference/v1"),
            &["FIREWORKS_API_BASE", "FIREWORKS_AI_API_BASE"],
            &[
                "FIREWORKS_API_KEY",
                "FIREWORKS_AI_API_KEY",
                "FIREWORKSAI_API_KEY",
            ],
        )
        .model_prefix("accounts/fireworks/models/"),
    ),
    OpenAiCompatible::new(HostSpec::new(
        "perplexity",
        Some("https://api.perplexity.ai"),
        &["PERPLEXITY_API_BASE"],
        &["PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"],
    )),
];

/// Mistral names the seed `random_seed` and has no `max_completion_tokens` (LiteLLM's mapping).
fn mistral_params(chat: &ChatRequest) -> Option<ChatRequest> {
    if chat.seed.is_none() && chat.max_completion_tokens.is_none() {
        return None;
    }
    let mut out = chat.clone();
    if let Some(seed) = out.seed.take() {
        // An i64 always serializes.
        let _ = out.extra.insert("random_seed", &seed);
    }
    if let Some(max) = out.max_completion_tokens.take() {
        out.max_tokens.get_or_insert(max);
    }
    Some(out)
}

/// The provider for one row of [`HOSTS`]. See the [module docs](self).
#[derive(Debug)]
pub struct OpenAiCompatible {
    spec: HostSpec,
}

impl OpenAiCompatible {
    const fn new(spec: HostSpec) -> Self {
        Self { spec }
    }

    /// The host this provider calls.
    #[must_use]
    pub fn spec(&self) -> &HostSpec {
        &self.spec
    }
}

impl Provider for OpenAiCompatible {
    fn name(&self) -> &'static str {
        self.spec.prefix
    }

    fn supports(&self, op: crate::types::OperationKind) -> bool {
        matches!(
            op,
            crate::types::OperationKind::Chat | crate::types::OperationKind::Embeddings
        ) || super::openai::media::is_media(op)
            || (op == crate::types::OperationKind::Rerank
                && matches!(self.spec.prefix, "hosted_vllm" | "together_ai"))
    }

    fn encode(&self, req: &LlmRequest, dep: &Deployment) -> Result<http::Request<Bytes>, LlmError> {
        self.spec.encode(self, req, dep)
    }

    openai_shaped_responses!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(prefix: &str) -> &'static OpenAiCompatible {
        HOSTS
            .iter()
            .find(|h| h.name() == prefix)
            .expect("host in table")
    }

    /// A chat request as the edge builds it: parsed, with the client's bytes (a host rename must
    /// still apply: the renamed body is serialized, not spliced).
    fn chat(raw: &str) -> LlmRequest {
        LlmRequest::chat_from_bytes(
            serde_json::from_str(raw).unwrap(),
            Bytes::copy_from_slice(raw.as_bytes()),
        )
    }

    #[test]
    fn prefixes_are_unique() {
        let mut names: Vec<_> = HOSTS.iter().map(|h| h.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), HOSTS.len());
    }

    #[test]
    fn mistral_renames_seed_and_max_completion_tokens() {
        let req = chat(
            r#"{"model":"m","messages":[],"seed":42,"max_completion_tokens":80,"safe_prompt":true}"#,
        );
        let dep = Deployment::new("m", "mistral/mistral-small").with_api_key("k");
        let out = host("mistral").encode(&req, &dep).unwrap();
        assert_eq!(
            out.uri().to_string(),
            "https://api.mistral.ai/v1/chat/completions"
        );
        let v: serde_json::Value = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"model":"mistral-small","messages":[],"max_tokens":80,
                "safe_prompt":true,"random_seed":42})
        );
        assert_eq!(out.headers()[http::header::AUTHORIZATION], "Bearer k");
    }

    #[test]
    fn fireworks_prefixes_bare_model_ids() {
        let spec = host("fireworks_ai").spec();
        assert_eq!(
            spec.upstream_model("llama-v3p1-8b-instruct"),
            "accounts/fireworks/models/llama-v3p1-8b-instruct"
        );
        assert_eq!(
            spec.upstream_model("accounts/me/models/x"),
            "accounts/me/models/x"
        );
        assert_eq!(host("groq").spec().upstream_model("a/b"), "a/b");
    }

    #[test]
    fn hosted_vllm_needs_a_base_and_no_key() {
        let req = chat(r#"{"model":"m","messages":[]}"#);
        // Built without HOSTED_VLLM_API_BASE, whatever the process environment holds.
        let dep = Deployment::new("m", "hosted_vllm/qwen").with_env(|_| None);
        let err = host("hosted_vllm").encode(&req, &dep).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::BadRequest);
        let dep = dep.with_api_base("http://127.0.0.1:8000/v1");
        let out = host("hosted_vllm").encode(&req, &dep).unwrap();
        assert_eq!(
            out.uri().to_string(),
            "http://127.0.0.1:8000/v1/chat/completions"
        );
    }

    #[test]
    fn default_bases_apply() {
        let req = chat(r#"{"model":"m","messages":[]}"#);
        for (prefix, url) in [
            ("deepseek", "https://api.deepseek.com/chat/completions"),
            (
                "dashscope",
                "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions",
            ),
            ("perplexity", "https://api.perplexity.ai/chat/completions"),
        ] {
            let h = host(prefix);
            // Built without the host's *_API_BASE, whatever the process environment holds.
            let dep = Deployment::new("m", &format!("{prefix}/x")).with_env(|_| None);
            assert_eq!(h.encode(&req, &dep).unwrap().uri().to_string(), url);
        }
    }

    /// The environment a deployment was built with is its fallback; its own values win.
    #[test]
    fn env_fallbacks_come_from_the_deployment_and_lose_to_its_own_values() {
        let req = chat(r#"{"model":"m","messages":[]}"#);
        let env = |n: &str| match n {
            "GROQ_API_BASE" => Some("http://127.0.0.1:7/groq".to_owned()),
            "GROQ_API_KEY" => Some("gsk-env".to_owned()),
            _ => None,
        };
        let dep = Deployment::new("m", "groq/llama").with_env(env);
        let out = host("groq").encode(&req, &dep).unwrap();
        assert_eq!(
            out.uri().to_string(),
            "http://127.0.0.1:7/groq/chat/completions"
        );
        assert_eq!(out.headers()[http::header::AUTHORIZATION], "Bearer gsk-env");
        assert_eq!(out.headers()[http::header::HOST], "127.0.0.1:7");
        let own = Deployment::new("m", "groq/llama")
            .with_api_base("https://own.example/v1")
            .with_api_key("own-key")
            .with_env(env);
        let out = host("groq").encode(&req, &own).unwrap();
        assert_eq!(
            out.uri().to_string(),
            "https://own.example/v1/chat/completions"
        );
        assert_eq!(out.headers()[http::header::AUTHORIZATION], "Bearer own-key");
        // No environment: the host default, and no key.
        let bare = Deployment::new("m", "groq/llama").with_env(|_| None);
        let out = host("groq").encode(&req, &bare).unwrap();
        assert_eq!(
            out.uri().to_string(),
            "https://api.groq.com/openai/v1/chat/completions"
        );
        assert!(!out.headers().contains_key(http::header::AUTHORIZATION));
        // hosted_vllm has no default: its missing base is a 400 on every call.
        let vllm = Deployment::new("m", "hosted_vllm/q").with_env(|_| None);
        for _ in 0..2 {
            let err = host("hosted_vllm").encode(&req, &vllm).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::BadRequest);
            assert!(err.message().contains("HOSTED_VLLM_API_BASE"), "{err}");
        }
    }

    /// Without a rename the client's bytes go upstream, `model` replaced in place.
    #[test]
    fn unrenamed_bodies_keep_the_clients_bytes() {
        let raw = r#"{"messages":[] ,"model":"m", "temperature":1.50,"metadata":{"a":1}}"#;
        let dep = Deployment::new("m", "mistral/mistral-small").with_api_key("k");
        let out = host("mistral").encode(&chat(raw), &dep).unwrap();
        assert_eq!(
            &out.body()[..],
            br#"{"messages":[] ,"model":"mistral-small", "temperature":1.50}"#
        );
        let dep = Deployment::new("m", "fireworks_ai/llama").with_api_key("k");
        let out = host("fireworks_ai").encode(&chat(raw), &dep).unwrap();
        assert_eq!(
            &out.body()[..],
            br#"{"messages":[] ,"model":"accounts/fireworks/models/llama", "temperature":1.50}"#
        );
    }
}
