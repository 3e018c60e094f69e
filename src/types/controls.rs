//! [`GatewayControls`]: the typed parse of a request's gateway controls ([`GATEWAY_PARAMS`]), done
//! once at the edge.
//!
//! A control of the wrong type (`"num_retries": "x"`, `"timeout": -1`, `"fallbacks": 3`) is a 400
//! whose `param` names it, never silently ignored. `null` is the same as absent. Controls this
//! gateway does not act on (`guardrails`, `api_base`, …) have their JSON shape checked too. The
//! test-only params (`mock_testing_*`, `mock_timeout`, `mock_delay`) are left to the fallback
//! layer, which refuses them unless the operator allows them. The values the layers read are kept
//! typed in the request's extensions (only when the request sent any control, so a plain request
//! allocates nothing here).
//!
//! [`GATEWAY_PARAMS`]: super::chat::GATEWAY_PARAMS

use serde_json::{value::RawValue, Value};

use super::{chat::is_gateway_param, wire::Extra};
use crate::error::LlmError;

/// The gateway controls a request sent, typed. Inserted into
/// [`LlmRequest::extensions`](super::LlmRequest) by the edge when the request sent at least one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
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
}

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

    fn read(&mut self, key: &str, raw: &RawValue) -> Result<(), LlmError> {
        // Only controls are parsed into a tree, and only when sent.
        let v: Value = serde_json::from_str(raw.get())
            .map_err(|e| LlmError::bad_request(format!("Invalid `{key}`: {e}")).with_param(key))?;
        if v.is_null() {
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
            // The test-only params (`mock_testing_*`, `mock_timeout`, `mock_delay`) belong to the
            // fallback layer, which refuses them unless the operator allows them and then reads
            // them as LiteLLM does (`"true"` included). `mock_response` is a typed field of the
            // chat body. Anything else is internal to LiteLLM and accepted as sent.
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
