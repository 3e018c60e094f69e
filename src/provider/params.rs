//! OpenAI parameters a provider cannot take, `drop_params` and `additional_drop_params`.
//!
//! Every provider family declares the OpenAI parameters it maps
//! ([`Provider::supported_params`], LiteLLM's
//! `get_supported_openai_params`); `None` means the family forwards the OpenAI body as it is (OpenAI,
//! Azure, the OpenAI-compatible hosts), so every parameter is supported.
//!
//! Before a request is encoded, [`prepare`]:
//!
//! 0. adds the deployment's default request parameters: OpenAI parameters set in its
//!    `litellm_params` (`temperature`, `max_tokens`, …) that the request does not send (the
//!    request's own value, an explicit `null` too, wins), as LiteLLM does. A deployment without
//!    any costs nothing; one with defaults re-serializes the body;
//! 1. removes the keys named by `additional_drop_params` (the deployment's `litellm_params` list and
//!    the request body's list, as in LiteLLM), for every provider. A name is a top-level key
//!    (`logit_bias`) or a path into the body (`tools[*].input_examples`, `response_format.strict`;
//!    the body then goes through a `serde_json::Value` round trip);
//! 2. finds the OpenAI parameters ([`OPENAI_CHAT_PARAMS`], [`OPENAI_EMBEDDINGS_PARAMS`]) present in the
//!    request that the provider does not support. A parameter sent as `null`, `n: 1` and
//!    `encoding_format: "float"` (the defaults) are not "present", as LiteLLM ignores `None`;
//! 3. refuses them with a 400 `invalid_request_error` naming them and the provider, unless
//!    `drop_params` is true: the request body's `drop_params`, else the deployment's (which
//!    `litellm_settings.drop_params` fills in when the deployment does not say). With `drop_params`
//!    they are removed, and a debug log line names them.
//!
//! Neither `drop_params` nor `additional_drop_params` is ever sent upstream (both are gateway
//! controls, see [`GATEWAY_PARAMS`](crate::types::chat::GATEWAY_PARAMS)). Keys that are not OpenAI
//! parameters keep each family's own pass-through behaviour.

use std::borrow::Cow;

use serde_json::{value::RawValue, Value};

use super::{Deployment, Provider};
use crate::{
    error::LlmError,
    types::{chat::ChatRequest, embeddings::EmbeddingsRequest, wire::Extra, LlmRequest, Operation},
};

/// The optional parameters of OpenAI's `POST /v1/chat/completions` (`model` and `messages` aside).
pub const OPENAI_CHAT_PARAMS: &[&str] = &[
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "modalities",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
];

/// The chat parameters every translating family maps; [`Provider::supported_params`] lists what a
/// family maps beyond them.
pub const CORE_PARAMS: &[&str] = &[
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
];

/// The optional parameters of OpenAI's `POST /v1/embeddings` (`model` and `input` aside).
pub const OPENAI_EMBEDDINGS_PARAMS: &[&str] = &["dimensions", "encoding_format", "user"];

/// The OpenAI endpoint a supported-parameter list is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/embeddings`.
    Embeddings,
}

/// Whether `key` is an OpenAI chat-completions parameter (a key a translating family never
/// forwards as a provider-specific field).
#[must_use]
pub fn is_openai_chat_param(key: &str) -> bool {
    OPENAI_CHAT_PARAMS.contains(&key)
}

/// The request body key holding the per-request list.
const ADDITIONAL_DROP_PARAMS: &str = "additional_drop_params";
/// The request body / deployment key for dropping unsupported parameters.
const DROP_PARAMS: &str = "drop_params";

/// Applies `additional_drop_params` and the provider's supported-parameter list to `req` (see the
/// [module docs](self)). Returns the request unchanged (borrowed) when nothing is removed.
pub fn prepare<'a>(
    provider: &dyn Provider,
    req: &'a LlmRequest,
    dep: &Deployment,
) -> Result<Cow<'a, LlmRequest>, LlmError> {
    let op = match &req.op {
        Operation::Chat(chat) => prepare_body(provider, &**chat, dep)?.map(Operation::Chat),
        Operation::Embeddings(emb) => {
            prepare_body(provider, &**emb, dep)?.map(Operation::Embeddings)
        }
        // A Responses body is relayed as sent, or rebuilt by its bridge as a chat request.
        Operation::ListModels | Operation::Responses(_) => None,
    };
    Ok(match op {
        // A new body without the client's bytes: what is sent upstream is serialized from it.
        Some(op) => {
            let mut out = LlmRequest::new(op);
            out.extensions = req.extensions.clone();
            Cow::Owned(out)
        }
        None => Cow::Borrowed(req),
    })
}

/// A request body whose OpenAI parameters can be checked and removed.
trait Body: Clone + serde::Serialize + serde::de::DeserializeOwned {
    /// Which supported-parameter list applies.
    const ENDPOINT: Endpoint;
    /// The endpoint's OpenAI parameters.
    const PARAMS: &'static [&'static str];
    /// Keys that are not typed fields.
    fn extra(&self) -> &Extra;
    /// Whether `key` is present with a value other than `null`.
    fn has(&self, key: &str) -> bool;
    /// Whether `key` holds the value every provider answers with anyway (`n: 1`,
    /// `encoding_format: "float"`): not a parameter to refuse.
    fn is_default(&self, key: &str) -> bool;
    /// Whether the typed field `key` was an explicit `null`.
    fn explicit_null(&self, key: &str) -> bool;
    /// Whether `key` would be written at all (a value or an explicit `null`).
    fn sends(&self, key: &str) -> bool {
        self.has(key) || self.explicit_null(key) || self.extra().get(key).is_some()
    }
    /// Removes a top-level key, typed or not (required keys stay).
    fn remove(&mut self, key: &str);
}

/// The body with keys removed, or `None` when nothing is to be removed.
fn prepare_body<B: Body>(
    provider: &dyn Provider,
    body: &B,
    dep: &Deployment,
) -> Result<Option<std::sync::Arc<B>>, LlmError> {
    // The deployment's default request parameters (OpenAI parameters in its `litellm_params`)
    // that the request does not set: the request's own value wins, as in LiteLLM.
    let defaults: Vec<(&str, &Value)> = dep
        .params
        .iter()
        .filter(|(k, _)| {
            B::PARAMS.contains(&k.as_str())
                && !matches!(k.as_str(), "stream" | "stream_options")
                && !body.sends(k)
        })
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let with_defaults = if defaults.is_empty() {
        None
    } else {
        Some(apply_defaults(body, &defaults)?)
    };
    let body = with_defaults.as_ref().unwrap_or(body);
    // Only what the body holds: a configured list costs nothing (no copy) when its keys are absent.
    let additional: Vec<String> =
        additional_drop_params(dep, body.extra().get(ADDITIONAL_DROP_PARAMS))
            .into_iter()
            .filter(|a| body.sends(top_key(a)))
            .collect();
    let unsupported: Vec<&'static str> = match provider.supported_params(B::ENDPOINT) {
        Some(supported) => B::PARAMS
            .iter()
            .copied()
            .filter(|k| !CORE_PARAMS.contains(k) && !supported.contains(k))
            .filter(|k| !additional.iter().any(|a| a == k))
            .filter(|k| body.has(k) && !body.is_default(k))
            .collect(),
        None => Vec::new(),
    };
    if additional.is_empty() && unsupported.is_empty() {
        return Ok(with_defaults.map(std::sync::Arc::new));
    }
    check(provider, dep, &unsupported, body.extra())?;
    let mut out = body.clone();
    let (paths, keys): (Vec<&str>, Vec<&str>) = additional
        .iter()
        .map(String::as_str)
        .partition(|k| is_path(k));
    for key in unsupported.iter().copied().chain(keys) {
        out.remove(key);
    }
    if !paths.is_empty() {
        out = remove_paths(&out, &paths)?;
    }
    Ok(Some(std::sync::Arc::new(out)))
}

/// Whether `drop_params` is on for a request: the body's `drop_params` (its `extra`), else the
/// deployment's (which `litellm_settings.drop_params` fills in).
#[must_use]
pub fn drop_params(extra: &Extra, dep: &Deployment) -> bool {
    extra
        .get(DROP_PARAMS)
        .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
        .and_then(|v| truthy(&v))
        .or_else(|| dep.param(DROP_PARAMS).and_then(truthy))
        .unwrap_or(false)
}

/// Refuses `unsupported` parameters unless [`drop_params`] is on.
fn check(
    provider: &dyn Provider,
    dep: &Deployment,
    unsupported: &[&str],
    extra: &Extra,
) -> Result<(), LlmError> {
    let Some(first) = unsupported.first() else {
        return Ok(());
    };
    if drop_params(extra, dep) {
        tracing::debug!(
            provider = provider.name(),
            deployment = %dep.id,
            dropped = ?unsupported,
            "drop_params: dropped OpenAI parameters the provider does not support"
        );
        return Ok(());
    }
    let list = unsupported
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(LlmError::bad_request(format!(
        "{} does not support parameters: [{list}], for model={}. To drop these, set `drop_params: true` in litellm_settings or the deployment's litellm_params",
        provider.name(),
        dep.model
    ))
    .with_param(*first)
    .with_provider(provider.name()))
}

/// A `drop_params` value: a bool, or a string `true` / `false` (as config and form values come).
fn truthy(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// The deployment's `additional_drop_params` followed by the request's (strings only).
fn additional_drop_params(
    dep: &Deployment,
    body: Option<&serde_json::value::RawValue>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |v: &Value| {
        if let Value::Array(items) = v {
            out.extend(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
        }
    };
    if let Some(v) = dep.param(ADDITIONAL_DROP_PARAMS) {
        add(v);
    }
    if let Some(raw) = body {
        if let Ok(v) = serde_json::from_str::<Value>(raw.get()) {
            add(&v);
        }
    }
    out
}

/// Whether a raw value is present (not `null`).
fn not_null(raw: Option<&RawValue>) -> bool {
    raw.is_some_and(|v| v.get().trim() != "null")
}

impl Body for ChatRequest {
    const ENDPOINT: Endpoint = Endpoint::Chat;
    const PARAMS: &'static [&'static str] = OPENAI_CHAT_PARAMS;

    fn extra(&self) -> &Extra {
        &self.extra
    }

    fn has(&self, key: &str) -> bool {
        match key {
            "stream" => self.stream.is_some(),
            "stream_options" => self.stream_options.is_some(),
            "temperature" => self.temperature.is_some(),
            "top_p" => self.top_p.is_some(),
            "max_tokens" => self.max_tokens.is_some(),
            "max_completion_tokens" => self.max_completion_tokens.is_some(),
            "n" => self.n.is_some(),
            "stop" => self.stop.is_some(),
            "seed" => self.seed.is_some(),
            "presence_penalty" => self.presence_penalty.is_some(),
            "frequency_penalty" => self.frequency_penalty.is_some(),
            "user" => self.user.is_some(),
            "tools" => self.tools.is_some(),
            "tool_choice" => self.tool_choice.as_ref().is_some_and(|v| !v.is_null()),
            "parallel_tool_calls" => self.parallel_tool_calls.is_some(),
            "response_format" => not_null(self.response_format.as_deref()),
            "reasoning_effort" => self.reasoning_effort.is_some(),
            _ => not_null(self.extra.get(key)),
        }
    }

    fn is_default(&self, key: &str) -> bool {
        // One choice is what every provider answers.
        key == "n" && self.n == Some(1)
    }

    fn explicit_null(&self, key: &str) -> bool {
        self.is_explicit_null(key)
    }

    fn remove(&mut self, key: &str) {
        match key {
            "stream" => self.stream = None,
            "stream_options" => self.stream_options = None,
            "temperature" => self.temperature = None,
            "top_p" => self.top_p = None,
            "max_tokens" => self.max_tokens = None,
            "max_completion_tokens" => self.max_completion_tokens = None,
            "n" => self.n = None,
            "stop" => self.stop = None,
            "seed" => self.seed = None,
            "presence_penalty" => self.presence_penalty = None,
            "frequency_penalty" => self.frequency_penalty = None,
            "user" => self.user = None,
            "tools" => self.tools = None,
            "tool_choice" => self.tool_choice = None,
            "parallel_tool_calls" => self.parallel_tool_calls = None,
            "response_format" => self.response_format = None,
            "reasoning_effort" => self.reasoning_effort = None,
            "metadata" => self.metadata = None,
            "mock_response" => self.mock_response = None,
            _ => {}
        }
        self.set_explicit_null(key, false);
        self.extra.remove(key);
    }
}

impl Body for EmbeddingsRequest {
    const ENDPOINT: Endpoint = Endpoint::Embeddings;
    const PARAMS: &'static [&'static str] = OPENAI_EMBEDDINGS_PARAMS;

    fn extra(&self) -> &Extra {
        &self.extra
    }

    fn has(&self, key: &str) -> bool {
        match key {
            "encoding_format" => self.encoding_format.is_some(),
            "dimensions" => self.dimensions.is_some(),
            "user" => self.user.is_some(),
            _ => not_null(self.extra.get(key)),
        }
    }

    fn is_default(&self, key: &str) -> bool {
        // Floats are what every provider answers.
        key == "encoding_format" && self.encoding_format.as_deref() == Some("float")
    }

    fn explicit_null(&self, key: &str) -> bool {
        self.is_explicit_null(key)
    }

    fn remove(&mut self, key: &str) {
        match key {
            "encoding_format" => self.encoding_format = None,
            "dimensions" => self.dimensions = None,
            "user" => self.user = None,
            "metadata" => self.metadata = None,
            _ => {}
        }
        self.set_explicit_null(key, false);
        self.extra.remove(key);
    }
}

/// The top-level key an `additional_drop_params` entry starts with.
fn top_key(entry: &str) -> &str {
    entry.split(['.', '[']).next().unwrap_or(entry)
}

/// Whether an `additional_drop_params` entry is a path (`a.b`, `a[*].b`, `a[0]`) rather than a key.
fn is_path(key: &str) -> bool {
    key.contains(['.', '['])
}

/// One step of a path.
enum Seg<'a> {
    Key(&'a str),
    Every,
    Index(usize),
}

/// Parses `tools[*].input_examples` into steps; `None` when malformed.
fn parse_path(path: &str) -> Option<Vec<Seg<'_>>> {
    let mut segs = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.contains(']') {
            return None;
        }
        if !name.is_empty() {
            segs.push(Seg::Key(name));
        } else if rest.is_empty() {
            return None;
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']')?;
            let idx = &inner[..end];
            segs.push(if idx == "*" {
                Seg::Every
            } else {
                Seg::Index(idx.parse().ok()?)
            });
            rest = &inner[end + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    (!segs.is_empty()).then_some(segs)
}

/// Removes what `segs` points at in `v` (nothing when the path does not exist).
fn remove_at(v: &mut Value, segs: &[Seg<'_>]) {
    let Some((first, rest)) = segs.split_first() else {
        return;
    };
    match (first, v) {
        (Seg::Key(k), Value::Object(m)) => {
            if rest.is_empty() {
                m.remove(*k);
            } else if let Some(child) = m.get_mut(*k) {
                remove_at(child, rest);
            }
        }
        (Seg::Every, Value::Array(items)) => {
            if rest.is_empty() {
                items.clear();
            } else {
                for item in items {
                    remove_at(item, rest);
                }
            }
        }
        (Seg::Index(i), Value::Array(items)) => {
            if rest.is_empty() {
                if *i < items.len() {
                    items.remove(*i);
                }
            } else if let Some(item) = items.get_mut(*i) {
                remove_at(item, rest);
            }
        }
        _ => {}
    }
}

/// Adds the deployment's default request parameters through a JSON round trip (only for a
/// deployment that has defaults the request does not set).
fn apply_defaults<B: Body>(body: &B, defaults: &[(&str, &Value)]) -> Result<B, LlmError> {
    let mut v = serde_json::to_value(body)
        .map_err(|e| LlmError::internal(format!("cannot apply default parameters: {e}")))?;
    if let Value::Object(map) = &mut v {
        for (key, value) in defaults {
            map.insert((*key).to_owned(), (*value).clone());
        }
    }
    let bytes = serde_json::to_vec(&v)
        .map_err(|e| LlmError::internal(format!("cannot apply default parameters: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        // A config value of the wrong type (`temperature: hot`): the deployment's fault.
        LlmError::bad_request(format!(
            "the deployment's default request parameters in litellm_params are invalid: {e}"
        ))
    })
}

/// Removes nested paths through a JSON round trip (only when a path is configured).
fn remove_paths<B: Body>(body: &B, paths: &[&str]) -> Result<B, LlmError> {
    let mut v = serde_json::to_value(body)
        .map_err(|e| LlmError::internal(format!("cannot apply additional_drop_params: {e}")))?;
    for path in paths {
        match parse_path(path) {
            // The body's own top-level keys only: `model` and `messages` stay.
            Some(segs)
                if !matches!(segs.as_slice(), [Seg::Key("model" | "messages" | "input")]) =>
            {
                remove_at(&mut v, &segs);
            }
            _ => tracing::debug!(path, "additional_drop_params: path ignored"),
        }
    }
    let bytes = serde_json::to_vec(&v)
        .map_err(|e| LlmError::internal(format!("cannot apply additional_drop_params: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        LlmError::bad_request(format!(
            "additional_drop_params left an invalid request: {e}"
        ))
        .with_param(ADDITIONAL_DROP_PARAMS)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        error::ErrorKind,
        provider::{
            anthropic::Anthropic, bedrock::Bedrock, gemini::Gemini, ollama::OllamaChat,
            openai::OpenAi,
        },
    };

    /// A chat request as the edge builds it: parsed, with the client's bytes.
    fn chat(extra: &str) -> LlmRequest {
        let raw =
            format!(r#"{{"model":"g","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#);
        LlmRequest::chat_from_bytes(serde_json::from_str(&raw).unwrap(), raw.into())
    }

    fn dep(model: &str) -> Deployment {
        Deployment::new("g", model)
    }

    /// The body `provider` would send for `req`, after `prepare`.
    fn sent(provider: &dyn Provider, req: &LlmRequest, dep: &Deployment) -> Value {
        let req = prepare(provider, req, dep).unwrap();
        let out = provider.encode(&req, dep).unwrap();
        serde_json::from_slice(out.body()).unwrap()
    }

    #[test]
    fn litellm_params_are_default_request_parameters() {
        let mut d = dep("openai/gpt-4o");
        d.params.insert("temperature".into(), json!(0.2));
        d.params.insert("max_tokens".into(), json!(64));
        d.params.insert("vertex_project".into(), json!("p"));
        // Absent from the request: the deployment's values are sent.
        let body = sent(&OpenAi, &chat(""), &d);
        assert_eq!(body["temperature"], json!(0.2));
        assert_eq!(body["max_tokens"], json!(64));
        assert!(body.get("vertex_project").is_none(), "{body}");
        // The request's own value wins, an explicit null too.
        let body = sent(&OpenAi, &chat(r#","temperature":1,"max_tokens":null"#), &d);
        assert_eq!(body["temperature"].as_f64(), Some(1.0));
        assert_eq!(body["max_tokens"], Value::Null);
        // A translating provider gets them too (Anthropic's max_tokens).
        let mut d = dep("anthropic/claude-sonnet-4-5");
        d.params.insert("top_p".into(), json!(0.5));
        let body = sent(&Anthropic, &chat(""), &d);
        assert_eq!(body["top_p"], json!(0.5));
        // A deployment without defaults leaves the client's bytes untouched.
        let req = chat(r#","temperature":1"#);
        assert!(matches!(
            prepare(&OpenAi, &req, &dep("openai/x")),
            Ok(Cow::Borrowed(_))
        ));
        // A default of the wrong type is a clear 400, not a panic.
        let mut d = dep("openai/gpt-4o");
        d.params.insert("temperature".into(), json!("hot"));
        let err = prepare(&OpenAi, &chat(""), &d).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        assert!(err.to_string().contains("litellm_params"), "{err}");
    }

    #[test]
    fn unsupported_params_are_refused_naming_param_and_provider() {
        let cases: [(&dyn Provider, &str, &str, &str); 4] = [
            (
                &Anthropic,
                "anthropic/claude-x",
                r#","logit_bias":{"1":2}"#,
                "logit_bias",
            ),
            (&Bedrock, "bedrock/anthropic.claude", r#","seed":7"#, "seed"),
            (
                &OllamaChat,
                "ollama_chat/llama3.1",
                r#","user":"u1""#,
                "user",
            ),
            (
                &Gemini,
                "gemini/gemini-2.5-flash",
                r#","logprobs":true"#,
                "logprobs",
            ),
        ];
        for (provider, model, extra, param) in cases {
            let err = prepare(provider, &chat(extra), &dep(model)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadRequest, "{model}");
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
            assert_eq!(err.param(), Some(param), "{model}");
            let m = err.message();
            assert!(
                m.starts_with(&format!(
                    "{} does not support parameters: ['{param}'], for model=",
                    provider.name()
                )),
                "{m}"
            );
            assert!(m.contains("drop_params: true"), "{m}");
            let v: Value = serde_json::from_slice(&err.to_json()).unwrap();
            assert_eq!(v["error"]["type"], "invalid_request_error");
            assert_eq!(v["error"]["param"], param);
        }
    }

    #[test]
    fn every_unsupported_param_is_listed_first_one_is_param() {
        let err = prepare(
            &Bedrock,
            &chat(r#","seed":1,"presence_penalty":0.5,"logprobs":true"#),
            &dep("bedrock/m"),
        )
        .unwrap_err();
        assert!(
            err.message()
                .contains("['logprobs', 'presence_penalty', 'seed']"),
            "{}",
            err.message()
        );
        assert_eq!(err.param(), Some("logprobs"));
    }

    #[test]
    fn nulls_and_defaults_are_not_present() {
        let req = chat(r#","seed":null,"logprobs":null,"n":1,"user":null"#);
        assert!(matches!(
            prepare(&Bedrock, &req, &dep("bedrock/m")).unwrap(),
            Cow::Borrowed(_)
        ));
        let err = prepare(&Bedrock, &chat(r#","n":2"#), &dep("bedrock/m")).unwrap_err();
        assert_eq!(err.param(), Some("n"));
    }

    #[test]
    fn supported_and_unknown_params_pass() {
        let req = chat(
            r#","temperature":0.2,"top_p":0.9,"max_tokens":9,"stop":["x"],"stream":false,"tools":[],"top_k":3"#,
        );
        for (provider, model) in [
            (&Anthropic as &dyn Provider, "anthropic/c"),
            (&Bedrock, "bedrock/m"),
            (&OllamaChat, "ollama_chat/m"),
            (&Gemini, "gemini/m"),
            (&OpenAi, "openai/m"),
        ] {
            assert!(
                matches!(
                    prepare(provider, &req, &dep(model)).unwrap(),
                    Cow::Borrowed(_)
                ),
                "{model}"
            );
        }
    }

    #[test]
    fn dropped_with_drop_params_from_the_body() {
        let req = chat(r#","seed":7,"logit_bias":{"1":2},"drop_params":true"#);
        let b = sent(&Anthropic, &req, &dep("anthropic/claude-x"));
        assert!(
            b.get("seed").is_none() && b.get("logit_bias").is_none(),
            "{b}"
        );
        assert!(b.get("drop_params").is_none(), "{b}");
    }

    #[test]
    fn dropped_with_drop_params_from_the_deployment() {
        // Also how `litellm_settings.drop_params` arrives: the gateway puts it into every
        // deployment's params that does not set its own.
        let mut d = dep("ollama_chat/llama3.1");
        d.params.insert("drop_params".into(), json!(true));
        let b = sent(
            &OllamaChat,
            &chat(r#","user":"u1","n":3,"temperature":0.5"#),
            &d,
        );
        assert!(
            b.get("user").is_none() && b["options"].get("user").is_none(),
            "{b}"
        );
        assert!(b["options"].get("n").is_none(), "{b}");
        assert_eq!(b["options"]["temperature"], json!(0.5));
        let mut d = dep("gemini/gemini-2.5-flash");
        d.params.insert("drop_params".into(), json!("True"));
        let original = chat(r#","logprobs":true,"top_logprobs":2"#);
        let req = prepare(&Gemini, &original, &d).unwrap();
        let c = req.as_chat().unwrap();
        assert!(c.extra.get("logprobs").is_none() && c.extra.get("top_logprobs").is_none());
    }

    #[test]
    fn the_body_overrides_the_deployment() {
        let mut d = dep("bedrock/m");
        d.params.insert("drop_params".into(), json!(true));
        let err = prepare(&Bedrock, &chat(r#","seed":1,"drop_params":false"#), &d).unwrap_err();
        assert_eq!(err.param(), Some("seed"));
        let mut d = dep("bedrock/m");
        d.params.insert("drop_params".into(), json!(false));
        assert!(prepare(&Bedrock, &chat(r#","seed":1,"drop_params":true"#), &d).is_ok());
    }

    #[test]
    fn additional_drop_params_for_openai_from_deployment_and_body() {
        let mut d = dep("openai/gpt-4o").with_api_base("http://h/v1");
        d.params.insert(
            "additional_drop_params".into(),
            json!(["logit_bias", "temperature"]),
        );
        let req = chat(
            r#","temperature":0.1,"logit_bias":{"1":2},"seed":3,"x_keep":1,"x_gone":2,"additional_drop_params":["x_gone"],"drop_params":true"#,
        );
        let b = sent(&OpenAi, &req, &d);
        for gone in [
            "temperature",
            "logit_bias",
            "x_gone",
            "additional_drop_params",
            "drop_params",
        ] {
            assert!(b.get(gone).is_none(), "{gone}: {b}");
        }
        assert_eq!(b["seed"], json!(3));
        assert_eq!(b["x_keep"], json!(1));
        assert_eq!(b["model"], json!("gpt-4o"));
    }

    /// The client's bytes go upstream only while nothing was removed: a prepared body is new.
    #[test]
    fn a_body_with_dropped_params_is_not_spliced() {
        let mut d = dep("openai/gpt-4o").with_api_base("http://h/v1");
        d.params
            .insert("additional_drop_params".into(), json!(["logit_bias"]));
        let spaced = |extra: &str| {
            let raw = format!(r#"{{"messages":[] , "model":"g"{extra} , "x":1.50}}"#);
            LlmRequest::chat_from_bytes(serde_json::from_str(&raw).unwrap(), raw.into())
        };
        let kept = spaced(r#","seed":3"#);
        let prepared = prepare(&OpenAi, &kept, &d).unwrap();
        assert!(matches!(prepared, Cow::Borrowed(_)));
        let out = OpenAi.encode(&prepared, &d).unwrap();
        assert_eq!(
            &out.body()[..],
            br#"{"messages":[] , "model":"gpt-4o","seed":3 , "x":1.50}"#
        );

        let dropped = spaced(r#","logit_bias":{"1":2}"#);
        let prepared = prepare(&OpenAi, &dropped, &d).unwrap();
        assert!(matches!(prepared, Cow::Owned(_)));
        assert!(prepared.raw_body().is_none());
        let out = OpenAi.encode(&prepared, &d).unwrap();
        let b: Value = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(b, json!({"model":"gpt-4o","messages":[],"x":1.50}));
    }

    #[test]
    fn additional_drop_params_for_a_translated_provider() {
        let mut d = dep("anthropic/claude-x");
        d.params
            .insert("additional_drop_params".into(), json!(["top_k", "seed"]));
        // `seed` is unsupported but named: removed, no 400, no drop_params needed.
        let b = sent(
            &Anthropic,
            &chat(r#","top_k":5,"seed":1,"temperature":0.3"#),
            &d,
        );
        assert!(b.get("top_k").is_none() && b.get("seed").is_none(), "{b}");
        assert_eq!(b["temperature"], json!(0.3));
    }

    #[test]
    fn additional_drop_params_copies_only_when_a_named_key_is_there() {
        let mut d = dep("openai/gpt-4o").with_api_base("http://h/v1");
        d.params.insert(
            "additional_drop_params".into(),
            json!(["logit_bias", "tools[*].input_examples"]),
        );
        let plain = chat(r#","temperature":0.1"#);
        assert!(matches!(
            prepare(&OpenAi, &plain, &d).unwrap(),
            Cow::Borrowed(_)
        ));
        // An explicit null is sent by a pass-through family, so it is removed too.
        let nulls = chat(r#","logit_bias":null,"n":1"#);
        let b = sent(&OpenAi, &nulls, &d);
        assert!(b.get("logit_bias").is_none(), "{b}");
        assert_eq!(b["n"], json!(1));
    }

    #[test]
    fn additional_drop_params_nested_paths() {
        let mut d = dep("openai/gpt-4o").with_api_base("http://h/v1");
        d.params.insert(
            "additional_drop_params".into(),
            json!([
                "tools[*].input_examples",
                "response_format.json_schema.strict",
                "bad[",
                "model"
            ]),
        );
        let req = chat(
            r#","tools":[{"type":"function","function":{"name":"f"},"input_examples":[1]},{"type":"function","function":{"name":"g"}}],"response_format":{"type":"json_schema","json_schema":{"name":"n","strict":true,"schema":{}}}"#,
        );
        let b = sent(&OpenAi, &req, &d);
        assert!(b["tools"][0].get("input_examples").is_none(), "{b}");
        assert_eq!(b["tools"][1]["function"]["name"], json!("g"));
        assert!(
            b["response_format"]["json_schema"].get("strict").is_none(),
            "{b}"
        );
        assert_eq!(b["response_format"]["json_schema"]["name"], json!("n"));
        assert_eq!(b["model"], json!("gpt-4o"));
    }

    #[test]
    fn parses_paths() {
        assert!(parse_path("a[*].b").is_some());
        assert!(parse_path("a[0][1].c").is_some());
        for bad in ["", "a[", "a[x]", "a]b", "a..b"] {
            assert!(parse_path(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn embeddings_params_for_ollama() {
        let emb = |extra: &str| {
            let raw = format!(r#"{{"model":"g","input":"hi"{extra}}}"#);
            LlmRequest::embeddings(serde_json::from_str(&raw).unwrap())
        };
        let d = dep("ollama/nomic-embed-text");
        let ok = emb(r#","dimensions":8,"encoding_format":"base64""#);
        assert!(matches!(
            prepare(&OllamaChat, &ok, &d).unwrap(),
            Cow::Borrowed(_)
        ));
        let err = prepare(&OllamaChat, &emb(r#","user":"u""#), &d).unwrap_err();
        assert_eq!(err.param(), Some("user"));
        let mut d = d;
        d.params
            .insert("additional_drop_params".into(), json!(["dimensions"]));
        let original = emb(r#","dimensions":8"#);
        let req = prepare(&OllamaChat, &original, &d).unwrap();
        let Operation::Embeddings(e) = &req.op else {
            unreachable!("an embeddings request stays one")
        };
        assert!(e.dimensions.is_none());
    }
}
