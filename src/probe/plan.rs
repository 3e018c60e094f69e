//! What each provider's cheapest probe is: the model-list call where the provider has one (free:
//! no tokens), else one call of the deployment's own stack with `max_tokens: 1`.

use bytes::Bytes;
use http::{HeaderValue, Method};
use http_body_util::Full;

use crate::{
    error::LlmError,
    provider::{
        resolve::{host_header, reached},
        Deployment,
    },
};

/// How a deployment is probed.
#[derive(Debug)]
pub(crate) enum Plan {
    /// A free model-list call (`GET`), with the deployment's credential.
    List {
        /// What the answer names the probe (`GET /v1/models`, …).
        name: &'static str,
        request: Box<http::Request<Full<Bytes>>>,
    },
    /// One call through the deployment's stack: chat with `max_tokens: 1`, or a one-word
    /// embedding for `model_info.mode: embedding`.
    Call,
    /// The deployment cannot be probed (its config is broken): the error says why.
    Broken(LlmError),
}

/// The model-list URL of the chat endpoint `chat` for `family`, when the family has one.
fn list_url(family: &str, chat: &str) -> Option<(&'static str, String)> {
    let (base, query) = match chat.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (chat, None),
    };
    let with_query = |path: String, q: Option<&str>| match q {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path,
    };
    match family {
        "anthropic" => {
            let root = base.strip_suffix("/messages")?;
            Some(("GET /v1/models", with_query(format!("{root}/models"), None)))
        }
        "gemini" => {
            let (root, _) = base.rsplit_once("/models/")?;
            Some((
                "models.list",
                with_query(format!("{root}/models"), Some("pageSize=1")),
            ))
        }
        "ollama" | "ollama_chat" => {
            let root = base
                .strip_suffix("/api/chat")
                .or_else(|| base.strip_suffix("/api/generate"))?;
            Some(("GET /api/tags", format!("{root}/api/tags")))
        }
        "azure" => {
            // `{endpoint}/openai/deployments/{name}/chat/completions?api-version=…` or the v1
            // API's `{endpoint}/openai/v1/chat/completions`.
            let root = match base.split_once("/openai/deployments/") {
                Some((endpoint, _)) => format!("{endpoint}/openai"),
                None => base.strip_suffix("/chat/completions")?.to_owned(),
            };
            let version = query.and_then(|q| {
                q.split('&')
                    .find(|kv| kv.starts_with("api-version="))
                    .map(str::to_owned)
            });
            Some((
                "GET /openai/models",
                with_query(format!("{root}/models"), version.as_deref()),
            ))
        }
        "bedrock" | "vertex_ai" => None,
        _ => {
            // OpenAI and the OpenAI-compatible hosts.
            let root = base.strip_suffix("/chat/completions")?;
            Some((
                "GET /v1/models",
                with_query(format!("{root}/models"), query),
            ))
        }
    }
}

/// The probe of `dep` when the provider `family` is a built-in one (`builtin`).
pub(crate) fn plan(dep: &Deployment, builtin: bool) -> Plan {
    let family = &*dep.provider;
    if !builtin || family == "mock" {
        return Plan::Call;
    }
    let r = dep.resolved(family);
    let chat = match reached(&r.chat) {
        Ok(e) => e.uri().to_string(),
        // Bedrock, Vertex AI and the like resolve what they can only at call time.
        // Cohere, Jina AI, Voyage and Infinity have no chat endpoint resolved ahead (and no free listing).
        Err(_)
            if matches!(
                family,
                "bedrock" | "vertex_ai" | "cohere" | "jina_ai" | "voyage" | "infinity"
            ) =>
        {
            return Plan::Call
        }
        Err(e) => return Plan::Broken(e),
    };
    let Some((name, url)) = list_url(family, &chat) else {
        return Plan::Call;
    };
    let uri: http::Uri = match url.parse() {
        Ok(u) => u,
        Err(_) => return Plan::Call,
    };
    let mut req = http::Request::new(Full::new(Bytes::new()));
    *req.method_mut() = Method::GET;
    let headers = req.headers_mut();
    if let Err(e) = r.add_credential(headers) {
        return Plan::Broken(e);
    }
    if r.credential.is_none() {
        if let Some(Ok((n, v))) = &r.fallback_credential {
            headers.append(n.clone(), v.clone());
        }
    }
    match reached(&r.extra_headers) {
        Ok(extra) => {
            for (n, v) in &*extra.list {
                headers.append(n.clone(), v.clone());
            }
        }
        Err(e) => return Plan::Broken(e),
    }
    if family == "anthropic" && !headers.contains_key("anthropic-version") {
        headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    }
    if uri.scheme() == Some(&http::uri::Scheme::HTTP) && !headers.contains_key(http::header::HOST) {
        if let Some(h) = uri.authority().and_then(host_header) {
            headers.insert(http::header::HOST, h);
        }
    }
    headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    *req.uri_mut() = uri;
    Plan::List {
        name,
        request: Box::new(req),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_lists_its_models() {
        let cases = [
            (
                "openai",
                "https://api.openai.com/v1/chat/completions",
                "https://api.openai.com/v1/models",
            ),
            (
                "groq",
                "https://api.groq.com/openai/v1/chat/completions",
                "https://api.groq.com/openai/v1/models",
            ),
            (
                "anthropic",
                "https://api.anthropic.com/v1/messages",
                "https://api.anthropic.com/v1/models",
            ),
            (
                "gemini",
                "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
                "https://generativelanguage.googleapis.com/v1beta/models?pageSize=1",
            ),
            (
                "ollama",
                "http://localhost:11434/api/generate",
                "http://localhost:11434/api/tags",
            ),
            (
                "ollama_chat",
                "http://localhost:11434/api/chat",
                "http://localhost:11434/api/tags",
            ),
            (
                "azure",
                "https://r.openai.azure.com/openai/deployments/gpt/chat/completions?api-version=2024-10-21",
                "https://r.openai.azure.com/openai/models?api-version=2024-10-21",
            ),
            (
                "azure",
                "https://r.openai.azure.com/openai/v1/chat/completions",
                "https://r.openai.azure.com/openai/v1/models",
            ),
        ];
        for (family, chat, want) in cases {
            assert_eq!(
                list_url(family, chat).map(|(_, u)| u).as_deref(),
                Some(want),
                "{family}"
            );
        }
        assert!(list_url(
            "bedrock",
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/x/converse"
        )
        .is_none());
        assert!(list_url("openai", "https://proxy.example/custom/path").is_none());
    }

    #[test]
    fn a_list_probe_carries_the_credential_and_no_body() {
        let mut dep = Deployment::new("g", "openai/gpt-4o");
        dep.api_base = Some("http://127.0.0.1:9/v1".into());
        dep.api_key = Some(crate::secret::Secret::new("sk-probe-key-123456"));
        match plan(&dep, true) {
            Plan::List { name, request } => {
                assert_eq!(name, "GET /v1/models");
                assert_eq!(request.uri(), "http://127.0.0.1:9/v1/models");
                assert_eq!(request.method(), Method::GET);
                assert_eq!(
                    request.headers()["authorization"],
                    "Bearer sk-probe-key-123456"
                );
                assert_eq!(request.headers()["host"], "127.0.0.1:9");
            }
            other => panic!("{other:?}"),
        }
        let mock = Deployment::new("g", "mock/echo");
        assert!(matches!(plan(&mock, true), Plan::Call));
        let bedrock = Deployment::new("g", "bedrock/anthropic.claude-3-haiku");
        assert!(matches!(plan(&bedrock, true), Plan::Call));
    }
}
