//! OpenAI parameters a provider cannot take, `drop_params` and `additional_drop_params`.
//!
//! Every provider family declares the OpenAI parameters it maps
//! ([`Provider::supported_params`](super::Provider::supported_params), LiteLLM's
//! `get_supported_openai_params`); `None` means the family forwards the OpenAI body as it is (OpenAI,
//! Azure, the OpenAI-compatible hosts), so every parameter is supported.
//!
//! Before a request is encoded, [`prepare`]:
//!
//! 1. removes the keys named by `additional_drop_params` (the deployment's `litellm_params` list and
//!    the request body's list, as in LiteLLM), for every provider. A name is a top-level key
//!    (`logit_bias`) or a path into the body (`tools[*].input_examples`, `response_format.strict`);
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

use serde_json::Value;

use super::{Deployment, Provider};
use crate::{
    error::LlmError,
    types::{chat::ChatRequest, embeddings::EmbeddingsRequest, LlmRequest, Operation},
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
    match &req.op {
        Operation::Chat(chat) => {
            let Some(chat) = prepare_chat(provider, chat, dep)? else {
                return Ok(Cow::Borrowed(req));
            };
            Ok(Cow::Owned(LlmRequest {
                op: Operation::Chat(chat.into()),
                extensions: req.extensions.clone(),
            }))
        }
        Operation::Embeddings(emb) => {
            let Some(emb) = prepare_embeddings(provider, emb, dep)? else {
                return Ok(Cow::Borrowed(req));
            };
            Ok(Cow::Owned(LlmRequest {
                op: Operation::Embeddings(emb.into()),
                extensions: req.extensions.clone(),
            }))
        }
        Operation::ListModels => Ok(Cow::Borrowed(req)),
    }
}

/// The chat body with keys removed, or `None` when nothing is to be removed.
fn prepare_chat(
    provider: &dyn Provider,
    chat: &ChatRequest,
    dep: &Deployment,
) -> Result<Option<ChatRequest>, LlmError> {
    let additional = additional_drop_params(dep, chat.extra.get(ADDITIONAL_DROP_PARAMS));
    let unsupported: Vec<&'static str> = match provider.supported_params(Endpoint::Chat) {
        Some(supported) => OPENAI_CHAT_PARAMS
            .iter()
            .copied()
            .filter(|k| !supported.contains(k))
            .filter(|k| !additional.iter().any(|a| a == k))
            .filter(|k| chat_has(chat, k))
            .collect(),
        None => Vec::new(),
    };
    if additional.is_empty() && unsupported.is_empty() {
        return Ok(None);
    }
    let body_drop = chat.extra.get(DROP_PARAMS).and_then(|raw| {
        serde_json::from_str::<Value>(raw.get())
            .ok()
            .and_then(|v| truthy(&v))
    });
    check(provider, dep, &unsupported, body_drop)?;
    let mut out = chat.clone();
    for key in unsupported.iter().copied().chain(
        additional
            .iter()
            .map(String::as_str)
            .filter(|k| !is_path(k)),
    ) {
        remove_chat_key(&mut out, key);
    }
    let paths: Vec<&str> = additional
        .iter()
        .map(String::as_str)
        .filter(|k| is_path(k))
        .collect();
    if !paths.is_empty() {
        out = remove_paths(&out, &paths)?;
    }
    Ok(Some(out))
}

/// The embeddings body with keys removed, or `None` when nothing is to be removed.
fn prepare_embeddings(
    provider: &dyn Provider,
    emb: &EmbeddingsRequest,
    dep: &Deployment,
) -> Result<Option<EmbeddingsRequest>, LlmError> {
    let additional = additional_drop_params(dep, emb.extra.get(ADDITIONAL_DROP_PARAMS));
    let unsupported: Vec<&'static str> = match provider.supported_params(Endpoint::Embeddings) {
        Some(supported) => OPENAI_EMBEDDINGS_PARAMS
            .iter()
            .copied()
            .filter(|k| !supported.contains(k))
            .filter(|k| !additional.iter().any(|a| a == k))
            .filter(|k| embeddings_has(emb, k))
            .collect(),
        None => Vec::new(),
    };
    if additional.is_empty() && unsupported.is_empty() {
        return Ok(None);
    }
    let body_drop = emb.extra.get(DROP_PARAMS).and_then(|raw| {
        serde_json::from_str::<Value>(raw.get())
            .ok()
            .and_then(|v| truthy(&v))
    });
    check(provider, dep, &unsupported, body_drop)?;
    let mut out = emb.clone();
    for key in unsupported
        .iter()
        .copied()
        .chain(additional.iter().map(String::as_str))
    {
        match key {
            "encoding_format" => out.encoding_format = None,
            "dimensions" => out.dimensions = None,
            "user" => out.user = None,
            "metadata" => out.metadata = None,
            _ => {}
        }
        out.set_explicit_null(key, false);
        out.extra.remove(key);
    }
    Ok(Some(out))
}

/// Refuses `unsupported` parameters unless `drop_params` (body first, then deployment) is true.
fn check(
    provider: &dyn Provider,
    dep: &Deployment,
    unsupported: &[&str],
    body_drop: Option<bool>,
) -> Result<(), LlmError> {
    let Some(first) = unsupported.first() else {
        return Ok(());
    };
    let drop = body_drop
        .or_else(|| dep.param(DROP_PARAMS).and_then(truthy))
        .unwrap_or(false);
    if drop {
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

/// Whether a parameter is present with a value other than `null` (or its no-op default).
fn chat_has(chat: &ChatRequest, key: &str) -> bool {
    match key {
        "stream" => chat.stream.is_some(),
        "stream_options" => chat.stream_options.is_some(),
        "temperature" => chat.temperature.is_some(),
        "top_p" => chat.top_p.is_some(),
        "max_tokens" => chat.max_tokens.is_some(),
        "max_completion_tokens" => chat.max_completion_tokens.is_some(),
        // One choice is what every provider answers.
        "n" => chat.n.is_some_and(|n| n != 1),
        "stop" => chat.stop.is_some(),
        "seed" => chat.seed.is_some(),
        "presence_penalty" => chat.presence_penalty.is_some(),
        "frequency_penalty" => chat.frequency_penalty.is_some(),
        "user" => chat.user.is_some(),
        "tools" => chat.tools.is_some(),
        "tool_choice" => chat.tool_choice.as_ref().is_some_and(|v| !v.is_null()),
        "parallel_tool_calls" => chat.parallel_tool_calls.is_some(),
        "response_format" => chat
            .response_format
            .as_ref()
            .is_some_and(|v| v.get().trim() != "null"),
        "reasoning_effort" => chat.reasoning_effort.is_some(),
        _ => chat
            .extra
            .get(key)
            .is_some_and(|v| v.get().trim() != "null"),
    }
}

fn embeddings_has(emb: &EmbeddingsRequest, key: &str) -> bool {
    match key {
        // Floats are what every provider answers.
        "encoding_format" => emb.encoding_format.as_deref().is_some_and(|f| f != "float"),
        "dimensions" => emb.dimensions.is_some(),
        "user" => emb.user.is_some(),
        _ => emb
            .extra
            .get(key)
            .is_some_and(|v| v.get().trim() != "null"),
    }
}

/// Removes a top-level key (typed or not); `model` and `messages` cannot be removed.
fn remove_chat_key(chat: &mut ChatRequest, key: &str) {
    match key {
        "stream" => chat.stream = None,
        "stream_options" => chat.stream_options = None,
        "temperature" => chat.temperature = None,
        "top_p" => chat.top_p = None,
        "max_tokens" => chat.max_tokens = None,
        "max_completion_tokens" => chat.max_completion_tokens = None,
        "n" => chat.n = None,
        "stop" => chat.stop = None,
        "seed" => chat.seed = None,
        "presence_penalty" => chat.presence_penalty = None,
        "frequency_penalty" => chat.frequency_penalty = None,
        "user" => chat.user = None,
        "tools" => chat.tools = None,
        "tool_choice" => chat.tool_choice = None,
        "parallel_tool_calls" => chat.parallel_tool_calls = None,
        "response_format" => chat.response_format = None,
        "reasoning_effort" => chat.reasoning_effort = None,
        "metadata" => chat.metadata = None,
        "mock_response" => chat.mock_response = None,
        _ => {}
    }
    chat.set_explicit_null(key, false);
    chat.extra.remove(key);
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

/// Removes nested paths through a JSON round trip (only when a path is configured).
fn remove_paths(chat: &ChatRequest, paths: &[&str]) -> Result<ChatRequest, LlmError> {
    let mut v = serde_json::to_value(chat)
        .map_err(|e| LlmError::internal(format!("cannot apply additional_drop_params: {e}")))?;
    for path in paths {
        match parse_path(path) {
            // The body's own top-level keys only: `model` and `messages` stay.
            Some(segs)
                if !matches!(segs.as_slice(), [Seg::Key("model" | "messages")]) =>
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
