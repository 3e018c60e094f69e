//! Field deserializers that accept what LiteLLM (Python) accepts: `True`/`False` strings as
//! booleans, numeric strings as numbers, scalars as strings, and `null` as absent. Error messages
//! never contain the offending string (it may come from an environment variable).
//!
//! Also the hand-written visitors of [`LitellmParams`] and [`CacheParams`] (typed keys read
//! leniently, every other key kept in `other`).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Unexpected, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::model::{CacheParams, LitellmParams};
use crate::secret::Secret;

pub(super) fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Unexpected::Unsigned(u)
            } else if let Some(i) = n.as_i64() {
                Unexpected::Signed(i)
            } else {
                Unexpected::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(_) => Unexpected::Other("a string"),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

pub(super) fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        Value::String(s) => {
            let s = s.trim();
            if s.eq_ignore_ascii_case("true") {
                Ok(Some(true))
            } else if s.eq_ignore_ascii_case("false") {
                Ok(Some(false))
            } else {
                Err(de::Error::custom(
                    "expected a boolean (true/false), found another string",
                ))
            }
        }
        other => Err(de::Error::invalid_type(unexpected(&other), &"a boolean")),
    }
}

pub(super) fn opt_num<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + DeserializeOwned,
{
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => s.trim().parse::<T>().map(Some).map_err(|_| {
            de::Error::custom(format!(
                "expected {}, found a string that is not one",
                std::any::type_name::<T>()
            ))
        }),
        other => T::deserialize(other).map(Some).map_err(de::Error::custom),
    }
}

pub(super) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(de::Error::invalid_type(unexpected(&other), &"a string")),
    }
}

pub(super) fn req_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    opt_string(d)?.ok_or_else(|| de::Error::invalid_type(Unexpected::Unit, &"a string"))
}

pub(super) fn opt_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    opt_string(d).map(|s| s.map(Secret::new))
}

pub(super) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// Newtype wrappers for hand-written visitors (`map.next_value::<Num<f64>>()`).
pub(super) struct Num<T>(pub(super) Option<T>);
impl<'de, T: FromStr + DeserializeOwned> Deserialize<'de> for Num<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        opt_num(d).map(Self)
    }
}

pub(super) struct Str(pub(super) Option<String>);
impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        opt_string(d).map(Self)
    }
}

pub(super) struct Sec(pub(super) Option<Secret>);
impl<'de> Deserialize<'de> for Sec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        opt_secret(d).map(Self)
    }
}

impl<'de> Deserialize<'de> for LitellmParams {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LitellmParams;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of litellm_params")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LitellmParams, A::Error> {
                let mut p = LitellmParams::default();
                let mut model = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "model" => model = map.next_value::<Str>()?.0,
                        "api_base" => p.api_base = map.next_value::<Str>()?.0,
                        "api_key" => p.api_key = map.next_value::<Sec>()?.0,
                        "api_version" => p.api_version = map.next_value::<Str>()?.0,
                        "timeout" => p.timeout = map.next_value::<Num<_>>()?.0,
                        "stream_timeout" => p.stream_timeout = map.next_value::<Num<_>>()?.0,
                        "max_retries" => p.max_retries = map.next_value::<Num<_>>()?.0,
                        "rpm" => p.rpm = map.next_value::<Num<_>>()?.0,
                        "tpm" => p.tpm = map.next_value::<Num<_>>()?.0,
                        "weight" => p.weight = map.next_value::<Num<_>>()?.0,
                        "order" => p.order = map.next_value::<Num<_>>()?.0,
                        "input_cost_per_token" => {
                            p.input_cost_per_token = map.next_value::<Num<_>>()?.0;
                        }
                        "output_cost_per_token" => {
                            p.output_cost_per_token = map.next_value::<Num<_>>()?.0;
                        }
                        "tags" => {
                            p.tags = map.next_value::<Option<Vec<String>>>()?.unwrap_or_default();
                        }
                        "max_parallel_requests" => {
                            p.max_parallel_requests = map.next_value::<Num<_>>()?.0;
                        }
                        _ => {
                            let v: Value = map.next_value()?;
                            p.other.insert(key, v);
                        }
                    }
                }
                p.model = model.ok_or_else(|| de::Error::missing_field("model"))?;
                Ok(p)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for CacheParams {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CacheParams;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of cache_params")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CacheParams, A::Error> {
                let mut p = CacheParams::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "type" => p.type_ = map.next_value::<Str>()?.0,
                        "host" => p.host = map.next_value::<Str>()?.0,
                        "port" => p.port = map.next_value::<Num<_>>()?.0,
                        "password" => p.password = map.next_value::<Sec>()?.0,
                        "url" => p.url = map.next_value::<Sec>()?.0,
                        "ttl" => p.ttl = map.next_value::<Num<_>>()?.0,
                        "namespace" => p.namespace = map.next_value::<Str>()?.0,
                        "supported_call_types" => p.supported_call_types = map.next_value()?,
                        _ => {
                            let v: Value = map.next_value()?;
                            p.other.insert(key, v);
                        }
                    }
                }
                Ok(p)
            }
        }
        d.deserialize_map(V)
    }
}
