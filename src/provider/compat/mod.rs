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
//! variables are read once (the first call that needs them) and its default base URL applies. The
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

use std::{borrow::Cow, fmt, sync::OnceLock};

use bytes::Bytes;

use super::{
    openai::{bearer, chat_body, embeddings_body, join_url, json_request, openai_shaped_responses},
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
    env: OnceLock<HostEnv>,
}

/// What the environment says about a host, read once.
#[derive(Default)]
struct HostEnv {
    api_base: Option<String>,
    api_key: Option<Secret>,
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
            env: OnceLock::new(),
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

    fn env(&self) -> &HostEnv {
        self.env.get_or_init(|| {
            let first = |names: &[&str]| {
                names
                    .iter()
                    .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
            };
            HostEnv {
                api_base: first(self.base_env),
                api_key: first(self.key_env).map(Secret::new),
            }
        })
    }

    /// The base URL: the deployment's, else the environment's, else the host default.
    #[must_use]
    pub fn api_base<'a>(&'a self, dep: &'a Deployment) -> Option<&'a str> {
        dep.api_base
            .as_deref()
            .or_else(|| self.env().api_base.as_deref())
            .or(self.default_api_base)
    }

    /// The key: the deployment's, else the environment's.
    #[must_use]
    pub fn api_key<'a>(&'a self, dep: &'a Deployment) -> Option<&'a Secret> {
        dep.api_key.as_ref().or(self.env().api_key.as_ref())
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
        let base = self.api_base(dep).ok_or_else(|| {
            LlmError::bad_request(format!(
                "the {} provider needs an api_base (set it in litellm_params{})",
                self.prefix,
                self.base_env
                    .first()
                    .map(|n| format!(" or {n}"))
                    .unwrap_or_default()
            ))
        })?;
        let model = self.upstream_model(&dep.model);
        let (path, body) = match &req.op {
            Operation::Chat(chat) => {
                // A host rename changed the body: the client's bytes no longer describe it.
                let body = match self.adjust.and_then(|f| f(chat)) {
                    Some(adjusted) => chat_body(&adjusted, None, &model)?,
                    None => chat_body(chat, req.raw_body().map(|b| &b[..]), &model)?,
                };
                ("chat/completions", body)
            }
            Operation::Embeddings(emb) => (
                "embeddings",
                embeddings_body(emb, req.raw_body().map(|b| &b[..]), &model)?,
            ),
            Operation::ListModels => return Err(super::unsupported(provider, req)),
        };
        let mut head = json_request(&join_url(base, path), dep)?;
        if let Some(key) = self.api_key(dep) {
            if !key.is_empty() {
                head.headers_mut()
                    .append(http::header::AUTHORIZATION, bearer(key.expose())?);
            }
        }
        Ok(head.map(|()| body))
    }
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
        )
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
        let dep = Deployment::new("m", "hosted_vllm/qwen");
        if std::env::var_os("HOSTED_VLLM_API_BASE").is_none() {
            let err = host("hosted_vllm").encode(&req, &dep).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::BadRequest);
        }
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
            if h.spec
                .base_env
                .iter()
                .any(|n| std::env::var_os(n).is_some())
            {
                continue;
            }
            let dep = Deployment::new("m", &format!("{prefix}/x"));
            assert_eq!(h.encode(&req, &dep).unwrap().uri().to_string(), url);
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
