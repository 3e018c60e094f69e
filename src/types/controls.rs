//! [`GatewayControls`]: the typed parse of a request's gateway controls ([`GATEWAY_PARAMS`]), done
//! once at the edge.
//!
//! A control of the wrong type (`"num_retries": "x"`, `"timeout": -1`, `"fallbacks": 3`) is a 400
//! whose `param` names it, never silently ignored. `null` is the same as absent. Controls this
//! gateway does not act on (`guardrails`, `api_base`, …) have their JSON shape checked too. The
//! test-only params (`mock_testing_*`, `mock_timeout`, `mock_delay`) are left to the fallback
//! layer, which refuses them unless the operator allows them. The values the layers read are kept
//! typed on the request ([`LlmRequest::controls`](super::LlmRequest::controls); only when the
//! request sent any control, so a plain request allocates nothing here).
//!
//! [`GATEWAY_PARAMS`]: super::chat::GATEWAY_PARAMS

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde_json::{value::RawValue, Value};

use super::{chat::is_gateway_param, wire::Extra};
use crate::error::LlmError;

/// A fallback list a request brought in its body: plain names (for the requested group) or
/// LiteLLM's `[{"group": [...]}]` form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FallbackList {
    /// `["b", "c"]`: fallbacks of the requested group.
    Plain(Vec<String>),
    /// `[{"a": ["b"]}, {"*": ["c"]}]`: fallbacks per group (`*`: any group).
    Map(HashMap<String, Vec<String>>),
}

impl FallbackList {
    /// The list in `v`, if it has one of the two shapes.
    #[must_use]
    pub fn from_value(v: &Value) -> Option<Self> {
        let items = v.as_array()?;
        if items.iter().all(Value::is_string) {
            return Some(Self::Plain(
                items
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect(),
            ));
        }
        let mut map = HashMap::new();
        for item in items {
            for (k, v) in item.as_object()? {
                let to = v
                    .as_array()?
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect();
                map.insert(k.clone(), to);
            }
        }
        Some(Self::Map(map))
    }

    /// The fallbacks this list gives `group` (a request for `original`).
    #[must_use]
    pub fn for_group(&self, group: &str, original: &str) -> Option<Vec<String>> {
        match self {
            Self::Plain(v) => (group == original).then(|| v.clone()),
            Self::Map(m) => m.get(group).or_else(|| m.get("*")).cloned(),
        }
    }

    /// Every group the list names.
    pub fn groups(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            Self::Plain(v) => Box::new(v.iter().map(String::as_str)),
            Self::Map(m) => Box::new(m.values().flatten().map(String::as_str)),
        }
    }
}

/// The fallback lists a request brought (`fallbacks`, `context_window_fallbacks`,
/// `content_policy_fallbacks`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestFallbacks {
    /// `fallbacks`.
    pub general: Option<FallbackList>,
    /// `context_window_fallbacks`.
    pub context_window: Option<FallbackList>,
    /// `content_policy_fallbacks`.
    pub content_policy: Option<FallbackList>,
}

impl RequestFallbacks {
    /// Every group the lists name: what the caller asks to reach beyond its model.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        [&self.general, &self.context_window, &self.content_policy]
            .into_iter()
            .flatten()
            .flat_map(FallbackList::groups)
    }
}

/// LiteLLM's test-only request params, in LiteLLM's order of precedence.
pub const MOCK_TESTING_PARAMS: [&str; 6] = [
    "mock_testing_fallbacks",
    "mock_testing_context_fallbacks",
    "mock_testing_content_policy_fallbacks",
    "mock_testing_rate_limit_error",
    "mock_timeout",
    "mock_delay",
];

/// Longest `mock_delay` honoured.
pub const MAX_MOCK_DELAY: Duration = Duration::from_secs(600);

/// The test-only params a request sent (LiteLLM's `mock_testing_*`, `mock_timeout`,
/// `mock_delay`). Whether they are allowed is the [fallback](crate::fallback) layer's decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MockTesting {
    /// The params present, in [`MOCK_TESTING_PARAMS`] order of first appearance in the body.
    pub present: Vec<&'static str>,
    /// For each of the first five [`MOCK_TESTING_PARAMS`]: whether it is on (`true`, or LiteLLM's
    /// string `"true"`).
    pub on: [bool; 5],
    /// `mock_delay`, capped at [`MAX_MOCK_DELAY`].
    pub delay: Option<Duration>,
}

/// Put on a request whose body names no model (`model` absent, `null` or `""`) by the edge, which
/// still sends it through the stack so that the layers above the router record the failed call
/// (its spend-log row, as LiteLLM writes one). The [retry](crate::retry) layer refuses such a
/// request before the router with the router's unknown-model error, so no group (a `*` wildcard
/// included) serves it, and the edge answers LiteLLM's invalid-model 400. The text is how
/// LiteLLM's message names the missing model: `""` for an absent or empty one, `"None"` for `null`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelMissing(pub &'static str);

/// A param that is `true` (or LiteLLM's string forms of it).
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The gateway controls a request sent, typed: parsed once by the edge
/// ([`LlmRequest::set_controls`](super::LlmRequest::set_controls)) and read by the layers through
/// [`LlmRequest::controls`](super::LlmRequest::controls).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct GatewayControls {
    /// `num_retries` (else LiteLLM's alias `max_retries`): retries the client asks for.
    pub num_retries: Option<u32>,
    /// `timeout`, seconds (> 0).
    pub timeout: Option<f64>,
    /// `request_timeout`, seconds (> 0).
    pub request_timeout: Option<f64>,
    /// `stream_timeout`, seconds (> 0).
    pub stream_timeout: Option<f64>,
    /// `max_fallbacks`.
    pub max_fallbacks: Option<u32>,
    /// `disable_fallbacks`.
    pub disable_fallbacks: Option<bool>,
    /// `caching`.
    pub caching: Option<bool>,
    /// The fallback lists the request brought (`None`: none).
    pub fallbacks: Option<Arc<RequestFallbacks>>,
    /// The test-only params the request sent (`None`: none).
    pub mock_testing: Option<Arc<MockTesting>>,
}

/// No controls: what a request that sent none reads.
pub(crate) static NO_CONTROLS: GatewayControls = GatewayControls {
    num_retries: None,
    timeout: None,
    request_timeout: None,
    stream_timeout: None,
    max_fallbacks: None,
    disable_fallbacks: None,
    caching: None,
    fallbacks: None,
    mock_testing: None,
};

/// The JSON type of a value, for error messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong(param: &str, want: &str, got: &Value) -> LlmError {
    LlmError::bad_request(format!(
        "Invalid value for `{param}`: expected {want}, got {}",
        kind(got)
    ))
    .with_param(param)
}

fn count(param: &str, v: &Value) -> Result<u32, LlmError> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| wrong(param, "a non-negative integer", v))
}

fn seconds(param: &str, v: &Value) -> Result<f64, LlmError> {
    v.as_f64()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
        .ok_or_else(|| wrong(param, "a positive number of seconds", v))
}

fn non_negative_seconds(param: &str, v: &Value) -> Result<(), LlmError> {
    shaped(
        param,
        v,
        v.as_f64().is_some_and(|s| s.is_finite() && s >= 0.0),
        "a non-negative number of seconds",
    )
}

/// `Ok` when `ok`, else the error saying `param` should be `want`.
fn shaped(param: &str, v: &Value, ok: bool, want: &str) -> Result<(), LlmError> {
    if ok {
        Ok(())
    } else {
        Err(wrong(param, want, v))
    }
}

fn boolean(param: &str, v: &Value) -> Result<bool, LlmError> {
    v.as_bool().ok_or_else(|| wrong(param, "true or false", v))
}

fn string(param: &str, v: &Value) -> Result<(), LlmError> {
    if v.is_string() {
        Ok(())
    } else {
        Err(wrong(param, "a string", v))
    }
}

fn object(param: &str, v: &Value) -> Result<(), LlmError> {
    if v.is_object() {
        Ok(())
    } else {
        Err(wrong(param, "an object", v))
    }
}

fn strings(param: &str, v: &Value) -> Result<(), LlmError> {
    match v.as_array() {
        Some(a) if a.iter().all(Value::is_string) => Ok(()),
        _ => Err(wrong(param, "an array of strings", v)),
    }
}

/// LiteLLM's fallback lists: `["b", "c"]` or `[{"a": ["b"]}, ...]`.
fn fallback_list(param: &str, v: &Value) -> Result<(), LlmError> {
    let want = "an array of model names, or of {\"model\": [fallbacks]} objects";
    let Some(items) = v.as_array() else {
        return Err(wrong(param, want, v));
    };
    if items.iter().all(Value::is_string) {
        return Ok(());
    }
    for item in items {
        let Some(obj) = item.as_object() else {
            return Err(wrong(param, want, item));
        };
        for to in obj.values() {
            strings(param, to)?;
        }
    }
    Ok(())
}

/// The request's `cache` object: `no-cache`/`no-store` booleans, `ttl`/`s-maxage` seconds,
/// `namespace` a string.
fn cache_object(v: &Value) -> Result<(), LlmError> {
    let Some(map) = v.as_object() else {
        return Err(wrong("cache", "an object", v));
    };
    for (k, v) in map {
        let param = |k: &str| format!("cache.{k}");
        match k.as_str() {
            "no-cache" | "no_cache" | "no-store" | "no_store" => {
                boolean(&param(k), v)?;
            }
            "ttl" | "s-maxage" | "s_maxage" | "max-age" => non_negative_seconds(&param(k), v)?,
            "namespace" => string(&param(k), v)?,
            _ => {}
        }
    }
    Ok(())
}

/// The longest `model` a request may name, in bytes.
pub const MAX_MODEL_BYTES: usize = 1024;

/// Checks a request's `model`: no NUL or other control character, at most [`MAX_MODEL_BYTES`]. The
/// name reaches the spend log (a wildcard group serves any name under its prefix), and PostgreSQL
/// refuses a NUL in text: one such row would fail the batch it is written with.
pub fn check_model(model: &str) -> Result<(), LlmError> {
    if model.chars().any(char::is_control) {
        return Err(
            LlmError::bad_request("Invalid `model`: it contains a control character")
                .with_param("model"),
        );
    }
    if model.len() > MAX_MODEL_BYTES {
        return Err(LlmError::bad_request(format!(
            "Invalid `model`: {} bytes long; the limit is {MAX_MODEL_BYTES}",
            model.len()
        ))
        .with_param("model"));
    }
    Ok(())
}

impl GatewayControls {
    /// Checks and types the gateway controls among `extra` (a chat or embeddings body's unknown
    /// keys) and the typed `metadata` and `mock_response` fields. `Ok(None)`: the request sent no
    /// control. An error is a 400 whose `param` names the control.
    pub fn parse(
        extra: &Extra,
        metadata: Option<&Value>,
        mock_response: Option<&Value>,
    ) -> Result<Option<Self>, LlmError> {
        if let Some(m) = metadata.filter(|m| !m.is_null()) {
            object("metadata", m)?;
        }
        if let Some(m) = mock_response.filter(|m| !m.is_null()) {
            if !(m.is_string() || m.is_object()) {
                return Err(wrong(
                    "mock_response",
                    "a string or a chat completion object",
                    m,
                ));
            }
        }
        let mut out = Self::default();
        let mut any = false;
        for (key, raw) in extra.iter() {
            if !is_gateway_param(key) {
                continue;
            }
            any = true;
            out.read(key, raw)?;
        }
        Ok(any.then_some(out))
    }

    /// [`GatewayControls::parse`] for a request no edge checked (built in code): a control of the
    /// wrong type counts as absent rather than failing the request.
    #[must_use]
    pub fn parse_lenient(extra: &Extra) -> Option<Self> {
        let mut out = Self::default();
        let mut any = false;
        for (key, raw) in extra.iter() {
            if !is_gateway_param(key) {
                continue;
            }
            let mut next = out.clone();
            if next.read(key, raw).is_ok() {
                out = next;
                any = true;
            }
        }
        any.then_some(out)
    }

    fn read(&mut self, key: &str, raw: &RawValue) -> Result<(), LlmError> {
        // Only controls are parsed into a tree, and only when sent.
        let v: Value = serde_json::from_str(raw.get())
            .map_err(|e| LlmError::bad_request(format!("Invalid `{key}`: {e}")).with_param(key))?;
        if v.is_null() {
            if let Some(i) = MOCK_TESTING_PARAMS.iter().position(|p| *p == key) {
                // Present, though off: still a test-only param the operator must allow.
                let m = Arc::make_mut(self.mock_testing.get_or_insert_with(Default::default));
                m.present.push(MOCK_TESTING_PARAMS[i]);
            }
            return Ok(());
        }
        match key {
            "num_retries" => self.num_retries = Some(count(key, &v)?),
            "max_retries" => {
                let n = count(key, &v)?;
                self.num_retries.get_or_insert(n);
            }
            "max_fallbacks" => self.max_fallbacks = Some(count(key, &v)?),
            "timeout" => self.timeout = Some(seconds(key, &v)?),
            "request_timeout" => self.request_timeout = Some(seconds(key, &v)?),
            "stream_timeout" => self.stream_timeout = Some(seconds(key, &v)?),
            "disable_fallbacks" => self.disable_fallbacks = Some(boolean(key, &v)?),
            "caching" => self.caching = Some(boolean(key, &v)?),
            "cache" => cache_object(&v)?,
            "drop_params" => {
                boolean(key, &v)?;
            }
            "fallbacks" | "context_window_fallbacks" | "content_policy_fallbacks" => {
                fallback_list(key, &v)?;
                let list = FallbackList::from_value(&v);
                let lists = Arc::make_mut(self.fallbacks.get_or_insert_with(Default::default));
                match key {
                    "fallbacks" => lists.general = list,
                    "context_window_fallbacks" => lists.context_window = list,
                    _ => lists.content_policy = list,
                }
            }
            "tags" | "additional_drop_params" => strings(key, &v)?,
            "guardrails" => shaped(
                key,
                &v,
                v.is_array() || v.is_object(),
                "an array or an object",
            )?,
            "mock_tool_calls" => shaped(key, &v, v.is_array(), "an array of tool calls")?,
            "metadata" | "litellm_metadata" | "extra_headers" => object(key, &v)?,
            "litellm_call_id" | "api_key" | "api_base" | "base_url" | "api_version" => {
                string(key, &v)?;
            }
            k if k.starts_with("mock_") => {
                if let Some(i) = MOCK_TESTING_PARAMS.iter().position(|p| *p == k) {
                    let m = Arc::make_mut(self.mock_testing.get_or_insert_with(Default::default));
                    m.present.push(MOCK_TESTING_PARAMS[i]);
                    if i < m.on.len() {
                        m.on[i] = truthy(&v);
                    } else {
                        m.delay = v
                            .as_f64()
                            .filter(|s| s.is_finite() && *s > 0.0)
                            .map(|s| Duration::from_secs_f64(s.min(MAX_MOCK_DELAY.as_secs_f64())));
                    }
                }
            }
            // `mock_response` is a typed field of the chat body. Anything else is internal to
            // LiteLLM and accepted as sent.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::types::chat::{ChatRequest, GATEWAY_PARAMS};

    fn parse(body: &str) -> Result<Option<GatewayControls>, LlmError> {
        let chat: ChatRequest = serde_json::from_str(body).unwrap();
        GatewayControls::parse(
            &chat.extra,
            chat.metadata.as_ref(),
            chat.mock_response.as_ref(),
        )
    }

    fn with(key: &str, value: &str) -> Result<Option<GatewayControls>, LlmError> {
        parse(&format!(r#"{{"model":"m","messages":[],"{key}":{value}}}"#))
    }

    #[test]
    fn a_plain_request_has_no_controls() {
        assert_eq!(
            parse(r#"{"model":"m","messages":[],"temperature":1,"x":"y"}"#).unwrap(),
            None
        );
    }

    #[test]
    fn well_typed_controls_are_read() {
        let c = parse(
            r#"{"model":"m","messages":[],"num_retries":3,"timeout":2.5,"stream_timeout":1,
            "max_fallbacks":2,"disable_fallbacks":true,"caching":false,"fallbacks":["a"],
            "context_window_fallbacks":[{"m":["b"]}],"tags":["t"],"cache":{"no-cache":true,"ttl":60},
            "metadata":{"k":1},"mock_response":"hi","litellm_metadata":null}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.num_retries, Some(3));
        assert_eq!(c.timeout, Some(2.5));
        assert_eq!(c.stream_timeout, Some(1.0));
        assert_eq!(c.max_fallbacks, Some(2));
        assert_eq!(c.disable_fallbacks, Some(true));
        assert_eq!(c.caching, Some(false));
        // `num_retries` wins over its alias, whichever comes first.
        let c = parse(r#"{"model":"m","messages":[],"max_retries":1,"num_retries":4}"#)
            .unwrap()
            .unwrap();
        assert_eq!(c.num_retries, Some(4));
        let c = with("max_retries", "2").unwrap().unwrap();
        assert_eq!(c.num_retries, Some(2));
    }

    #[test]
    fn fallback_lists_and_test_params_are_typed() {
        let c = parse(
            r#"{"model":"m","messages":[],"fallbacks":["a","b"],
            "context_window_fallbacks":[{"m":["c"]},{"*":["d"]}],
            "mock_testing_rate_limit_error":"TRUE","mock_delay":0.5,"mock_timeout":null}"#,
        )
        .unwrap()
        .unwrap();
        let f = c.fallbacks.as_deref().unwrap();
        assert_eq!(
            f.general,
            Some(FallbackList::Plain(vec!["a".into(), "b".into()]))
        );
        let cw = f.context_window.as_ref().unwrap();
        assert_eq!(cw.for_group("m", "m"), Some(vec!["c".into()]));
        assert_eq!(cw.for_group("x", "m"), Some(vec!["d".into()]));
        assert_eq!(f.content_policy, None);
        let mut groups: Vec<_> = f.groups().collect();
        groups.sort_unstable();
        assert_eq!(groups, ["a", "b", "c", "d"]);
        let m = c.mock_testing.as_deref().unwrap();
        assert_eq!(
            m.present,
            [
                "mock_testing_rate_limit_error",
                "mock_delay",
                "mock_timeout"
            ]
        );
        assert_eq!(m.on, [false, false, false, true, false]);
        assert_eq!(m.delay, Some(std::time::Duration::from_millis(500)));
    }

    #[test]
    fn lenient_parsing_skips_only_the_wrongly_typed_control() {
        let chat: ChatRequest = serde_json::from_str(
            r#"{"model":"m","messages":[],"num_retries":"x","fallbacks":["a"]}"#,
        )
        .unwrap();
        let c = GatewayControls::parse_lenient(&chat.extra).unwrap();
        assert_eq!(c.num_retries, None);
        assert_eq!(c.fallbacks.unwrap().groups().collect::<Vec<_>>(), ["a"]);
        let plain: ChatRequest = serde_json::from_str(r#"{"model":"m","messages":[]}"#).unwrap();
        assert_eq!(GatewayControls::parse_lenient(&plain.extra), None);
    }

    #[test]
    fn a_wrongly_typed_control_is_a_400_naming_it() {
        for (key, value) in [
            ("num_retries", r#""x""#),
            ("num_retries", "-1"),
            ("num_retries", "1.5"),
            ("max_retries", "true"),
            ("timeout", r#""30""#),
            ("timeout", "0"),
            ("timeout", "-2"),
            ("request_timeout", "[]"),
            ("stream_timeout", "{}"),
            ("max_fallbacks", r#""2""#),
            ("disable_fallbacks", r#""yes""#),
            ("fallbacks", "3"),
            ("fallbacks", r#""gpt-4""#),
            ("fallbacks", "[1]"),
            ("content_policy_fallbacks", r#"[{"a":"b"}]"#),
            ("context_window_fallbacks", "{}"),
            ("tags", r#""a""#),
            ("tags", "[1]"),
            ("metadata", r#""m""#),
            ("metadata", "[1]"),
            ("litellm_metadata", "1"),
            ("mock_response", "42"),
            ("mock_response", "[]"),
            ("mock_tool_calls", r#""x""#),
            ("caching", "1"),
            ("cache", r#""no-cache""#),
            ("drop_params", r#""x""#),
            ("additional_drop_params", r#""x""#),
            ("guardrails", "1"),
            ("litellm_call_id", "1"),
            ("api_base", "{}"),
            ("extra_headers", "[]"),
        ] {
            let e = with(key, value).expect_err(key);
            assert_eq!(e.status().as_u16(), 400, "{key}: {value}");
            assert_eq!(e.param(), Some(key), "{key}: {value}");
            assert!(e.message().contains(key), "{key}: {}", e.message());
        }
        for (value, param) in [
            (r#"{"no-cache":"yes"}"#, "cache.no-cache"),
            (r#"{"ttl":"x"}"#, "cache.ttl"),
            (r#"{"s-maxage":-1}"#, "cache.s-maxage"),
            (r#"{"namespace":5}"#, "cache.namespace"),
        ] {
            let e = with("cache", value).expect_err(value);
            assert_eq!(e.param(), Some(param), "{value}");
        }
    }

    #[test]
    fn a_model_name_with_a_control_character_or_too_long_is_refused() {
        assert!(check_model("gpt-4o").is_ok());
        assert!(check_model("bedrock/arn:aws:bedrock:us-east-1:1:model/x").is_ok());
        assert!(check_model(&"m".repeat(MAX_MODEL_BYTES)).is_ok());
        for bad in ["a\u{0}b", "a\nb", &"m".repeat(MAX_MODEL_BYTES + 1)] {
            let e = check_model(bad).unwrap_err();
            assert_eq!(e.param(), Some("model"));
            assert_eq!(e.status().as_u16(), 400);
        }
    }

    #[test]
    fn null_is_absent() {
        for key in GATEWAY_PARAMS {
            assert!(with(key, "null").is_ok(), "{key}");
        }
    }

    #[test]
    fn every_control_accepts_its_litellm_shape() {
        // One well-typed value per control: none is refused by mistake.
        for key in GATEWAY_PARAMS {
            let value = match *key {
                "num_retries" | "max_retries" | "max_fallbacks" => "2",
                "timeout" | "request_timeout" | "stream_timeout" | "mock_delay" => "1.5",
                "disable_fallbacks"
                | "caching"
                | "drop_params"
                | "mock_timeout"
                | "mock_testing_fallbacks"
                | "mock_testing_rate_limit_error"
                | "mock_testing_context_fallbacks"
                | "mock_testing_content_policy_fallbacks" => "true",
                "fallbacks" | "context_window_fallbacks" | "content_policy_fallbacks" => r#"["b"]"#,
                "tags" | "additional_drop_params" | "guardrails" => r#"["x"]"#,
                "mock_tool_calls" => "[]",
                "metadata"
                | "litellm_metadata"
                | "extra_headers"
                | "cache"
                | "litellm_logging_obj" => "{}",
                _ => r#""text""#,
            };
            assert!(with(key, value).is_ok(), "{key}: {value}");
        }
    }
}
