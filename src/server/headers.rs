//! Every header name the gateway answers with or reads beyond the standard ones: the
//! `x-litellm-*` family (LiteLLM's names, so its clients keep working), spelled here only, and
//! how their values are written.

use std::{sync::Arc, time::Duration};

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::call_id::write_uuid;
use crate::{secret::Secret, types::ResponseMeta};

/// `x-litellm-call-id`: the request's call id (the client's, or a new UUID v7).
pub const X_LITELLM_CALL_ID: HeaderName = HeaderName::from_static("x-litellm-call-id");
/// `x-litellm-model-id`: the id of the deployment that answered.
pub const X_LITELLM_MODEL_ID: HeaderName = HeaderName::from_static("x-litellm-model-id");
/// `x-litellm-model-group`: the model group that answered.
pub const X_LITELLM_MODEL_GROUP: HeaderName = HeaderName::from_static("x-litellm-model-group");
/// `x-litellm-model-api-base`: the public api base of the deployment that answered.
pub const X_LITELLM_MODEL_API_BASE: HeaderName =
    HeaderName::from_static("x-litellm-model-api-base");
/// `x-litellm-response-cost`: the cost of the call in USD.
pub const X_LITELLM_RESPONSE_COST: HeaderName = HeaderName::from_static("x-litellm-response-cost");
/// `x-litellm-attempted-retries`: retries the retry layer spent.
pub const X_LITELLM_ATTEMPTED_RETRIES: HeaderName =
    HeaderName::from_static("x-litellm-attempted-retries");
/// `x-litellm-attempted-fallbacks`: fallbacks the fallback layer tried.
pub const X_LITELLM_ATTEMPTED_FALLBACKS: HeaderName =
    HeaderName::from_static("x-litellm-attempted-fallbacks");
/// `x-litellm-overhead-duration-ms`: the gateway's own time (total minus the provider's time to
/// first byte), in milliseconds.
pub const X_LITELLM_OVERHEAD_DURATION_MS: HeaderName =
    HeaderName::from_static("x-litellm-overhead-duration-ms");
/// `x-litellm-max-retries`: the retries the call was allowed (the request's `num_retries`, capped
/// by the configured number; written by the retry layer).
pub const X_LITELLM_MAX_RETRIES: HeaderName = HeaderName::from_static("x-litellm-max-retries");
/// `x-litellm-api-key`: a key the caller presents (read).
pub const X_LITELLM_API_KEY: HeaderName = HeaderName::from_static("x-litellm-api-key");
/// `x-litellm-timeout`: a per-request timeout in seconds (read).
pub const X_LITELLM_TIMEOUT: HeaderName = HeaderName::from_static("x-litellm-timeout");
/// `x-accel-buffering: no` on streams, so nginx does not buffer them.
pub(super) const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// Writes the gateway's response headers from the response's meta: deployment, model group, api
/// base, cost, overhead and the reliability layers' counts.
pub(super) fn insert_meta(h: &mut HeaderMap, meta: &ResponseMeta, overhead: Duration) {
    let dep = meta.deployment.as_deref();
    for (name, text) in [
        (X_LITELLM_MODEL_ID, &meta.deployment_id),
        (X_LITELLM_MODEL_GROUP, &meta.model_group),
        (X_LITELLM_MODEL_API_BASE, &meta.api_base),
    ] {
        if let Some(v) = text.as_ref().and_then(|t| deployment_header(t, dep)) {
            h.insert(name, v);
        }
    }
    if let Some(v) = meta.cost.and_then(cost_header) {
        h.insert(X_LITELLM_RESPONSE_COST, v);
    }
    h.insert(X_LITELLM_OVERHEAD_DURATION_MS, millis_header(overhead));
    h.insert(
        X_LITELLM_ATTEMPTED_RETRIES,
        count_header(meta.attempted_retries),
    );
    h.insert(
        X_LITELLM_ATTEMPTED_FALLBACKS,
        count_header(meta.attempted_fallbacks),
    );
    // The retry layer's number; 0 for an answer that came from no upstream call through it (a
    // cache hit, the model listing), so every answer carries the header.
    let max = meta
        .headers
        .get(X_LITELLM_MAX_RETRIES)
        .cloned()
        .unwrap_or_else(|| count_header(0));
    h.insert(X_LITELLM_MAX_RETRIES, max);
}

/// What the policy layers recorded on an error: `x-litellm-attempted-retries`,
/// `x-litellm-attempted-fallbacks` and `x-litellm-max-retries`, on every error: an error raised
/// above the retry layer (a key, limit, budget or parse refusal) spent no retry and was allowed
/// none, so it says 0.
pub(super) fn insert_error_meta(h: &mut HeaderMap, meta: &crate::error::ErrorMeta) {
    for (name, n) in [
        (X_LITELLM_ATTEMPTED_RETRIES, meta.attempted_retries),
        (X_LITELLM_ATTEMPTED_FALLBACKS, meta.attempted_fallbacks),
        (X_LITELLM_MAX_RETRIES, meta.max_retries),
    ] {
        h.insert(name, count_header(n.unwrap_or(0)));
    }
}

/// Puts the call id into `h` as `x-litellm-call-id`.
pub(super) fn insert_call_id(h: &mut HeaderMap, call_id: &Arc<str>) {
    if let Ok(v) = HeaderValue::from_str(call_id) {
        h.insert(X_LITELLM_CALL_ID, v);
    }
}

/// A count as a header value: a static one for 0–9 (nearly every response: no retry, no
/// fallback), where `HeaderValue::from(u32)` formats into a new allocation.
pub(crate) fn count_header(n: u32) -> HeaderValue {
    static DIGITS: [HeaderValue; 10] = [
        HeaderValue::from_static("0"),
        HeaderValue::from_static("1"),
        HeaderValue::from_static("2"),
        HeaderValue::from_static("3"),
        HeaderValue::from_static("4"),
        HeaderValue::from_static("5"),
        HeaderValue::from_static("6"),
        HeaderValue::from_static("7"),
        HeaderValue::from_static("8"),
        HeaderValue::from_static("9"),
    ];
    usize::try_from(n)
        .ok()
        .and_then(|i| DIGITS.get(i))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from(n))
}

/// The cost in USD as `Display` writes it (`0.000123`), formatted into the header's own buffer
/// instead of a `String` that grows while it is written and is then copied.
fn cost_header(cost: f64) -> Option<HeaderValue> {
    use std::fmt::Write as _;
    let mut out = BytesMut::with_capacity(32);
    write!(out, "{cost}").ok()?;
    HeaderValue::from_maybe_shared(out.freeze()).ok()
}

/// `text` (a deployment's id, model group or public api base) as a header value: the one the
/// deployment made when it was built when `text` is that deployment's own string (as
/// `ProviderService` stamps it), else checked and copied now.
///
/// Checking and copying each string into a new `HeaderValue` cost about 250 instructions per header
/// per response; the deployment's values are made once and cloned (a reference count).
fn deployment_header(
    text: &Arc<str>,
    dep: Option<&crate::provider::Deployment>,
) -> Option<HeaderValue> {
    dep.and_then(|d| d.header_value(text))
        .or_else(|| HeaderValue::from_str(text).ok())
}

/// `d` in milliseconds with three decimals (`0.173`), from integer microseconds: `itoa` and
/// three digits by hand, where `write!` with integer and float formatting cost about 1 k
/// instructions per response.
fn millis_header(d: Duration) -> HeaderValue {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let mut int = itoa::Buffer::new();
    let int = int.format(micros / 1000).as_bytes();
    let frac = micros % 1000;
    let mut out = BytesMut::with_capacity(int.len() + 4);
    out.extend_from_slice(int);
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
    // Digits and a dot are valid header bytes.
    HeaderValue::from_maybe_shared(out.freeze()).unwrap_or(HeaderValue::from_static("0.000"))
}

/// The request headers the edge reads, found in one pass over the request's headers: a
/// `HeaderMap::get` hashes the name and probes the table, and the edge asks for eight names,
/// mostly absent, on every request.
#[derive(Default)]
pub(super) struct EdgeHeaders<'a> {
    pub(super) call_id: Option<&'a HeaderValue>,
    litellm_api_key: Option<&'a HeaderValue>,
    authorization: Option<&'a HeaderValue>,
    api_key: Option<&'a HeaderValue>,
    x_api_key: Option<&'a HeaderValue>,
    pub(super) cache_control: Option<&'a HeaderValue>,
    pub(super) timeout: Option<&'a HeaderValue>,
    pub(super) content_length: Option<&'a HeaderValue>,
    pub(super) traceparent: Option<&'a HeaderValue>,
    pub(super) tracestate: Option<&'a HeaderValue>,
}

impl<'a> EdgeHeaders<'a> {
    /// The first value of each header the edge reads (what `HeaderMap::get` returns).
    pub(super) fn read(headers: &'a HeaderMap) -> Self {
        let mut seen = Self::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "content-length" => &mut seen.content_length,
                "authorization" => &mut seen.authorization,
                "cache-control" => &mut seen.cache_control,
                "x-litellm-call-id" => &mut seen.call_id,
                "x-litellm-api-key" => &mut seen.litellm_api_key,
                "x-litellm-timeout" => &mut seen.timeout,
                "api-key" => &mut seen.api_key,
                "x-api-key" => &mut seen.x_api_key,
                "traceparent" => &mut seen.traceparent,
                "tracestate" => &mut seen.tracestate,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        seen
    }

    /// The client's `x-litellm-call-id` when it is usable, else a new one.
    pub(super) fn call_id(&self) -> Arc<str> {
        match self
            .call_id
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty() && s.len() <= 128)
        {
            Some(id) => id.into(),
            None => {
                let mut buf = [0u8; 36];
                Arc::from(write_uuid(&mut buf))
            }
        }
    }

    /// See [`presented_key`].
    pub(super) fn presented_key(&self) -> Option<Secret> {
        fn text(v: Option<&HeaderValue>) -> Option<&str> {
            v.and_then(|v| v.to_str().ok())
        }
        if let Some(v) = text(self.litellm_api_key).or_else(|| text(self.authorization)) {
            return Some(Secret::new(strip_bearer(v)));
        }
        text(self.api_key)
            .or_else(|| text(self.x_api_key))
            .map(|v| Secret::new(v.trim()))
    }
}

/// The key a caller presented: `Authorization: Bearer`, `api-key`, `x-api-key` or
/// `x-litellm-api-key`.
#[must_use]
pub fn presented_key(headers: &HeaderMap) -> Option<Secret> {
    EdgeHeaders::read(headers).presented_key()
}

fn strip_bearer(v: &str) -> &str {
    let v = v.trim();
    match v.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => v[7..].trim(),
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use http::header;

    use super::*;
    use crate::server::RequestTimeout;

    #[test]
    fn overhead_is_milliseconds_with_three_decimals() {
        for (micros, text) in [
            (0, "0.000"),
            (7, "0.007"),
            (173, "0.173"),
            (1_050, "1.050"),
            (12_345_678, "12345.678"),
        ] {
            assert_eq!(millis_header(Duration::from_micros(micros)), text);
        }
        assert_eq!(
            millis_header(Duration::MAX),
            format!("{}.{:03}", u64::MAX / 1000, u64::MAX % 1000).as_str()
        );
    }

    #[test]
    fn counts_and_costs_read_as_before() {
        for n in [0, 1, 9, 10, 42, u32::MAX] {
            assert_eq!(count_header(n), HeaderValue::from(n), "{n}");
        }
        for c in [0.0, 0.000_123, 1.5, 12_345.678_9, 1e-12, 3e21] {
            assert_eq!(cost_header(c).unwrap(), c.to_string().as_str(), "{c}");
        }
        // NaN and infinities are ASCII too; the header says what the cost layer computed.
        assert_eq!(cost_header(f64::NAN).unwrap(), "NaN");
    }

    #[test]
    fn deployment_headers_come_from_the_deployment_by_arc_not_by_text() {
        let a: Arc<str> = "http://h:1/v1".into();
        let b: Arc<str> = "http://h:2/v1".into();
        assert_eq!(deployment_header(&a, None).unwrap(), "http://h:1/v1");
        assert_eq!(deployment_header(&b, None).unwrap(), "http://h:2/v1");
        assert_eq!(deployment_header(&a, None).unwrap(), "http://h:1/v1");
        // Same text, another `Arc`: same value.
        let a2: Arc<str> = "http://h:1/v1".into();
        assert_eq!(deployment_header(&a2, None).unwrap(), "http://h:1/v1");
        // Not a valid header value: none.
        let bad: Arc<str> = "line\nbreak".into();
        assert!(deployment_header(&bad, None).is_none());
        for i in 0..67 {
            let s: Arc<str> = format!("d{i}").into();
            assert_eq!(deployment_header(&s, None).unwrap(), s.as_ref());
        }
        // The deployment's own strings: its values, made once (the same bytes each time).
        let dep =
            crate::provider::Deployment::new("grp", "openai/m").with_api_base("http://h:3/v1");
        let base = dep.public_api_base().unwrap();
        let v1 = deployment_header(&dep.model_group, Some(&dep)).unwrap();
        let v2 = deployment_header(&dep.model_group, Some(&dep)).unwrap();
        assert_eq!(v1, "grp");
        assert_eq!(v1.as_bytes().as_ptr(), v2.as_bytes().as_ptr());
        assert_eq!(
            deployment_header(&base, Some(&dep)).unwrap(),
            "http://h:3/v1"
        );
        assert_eq!(deployment_header(&dep.id, Some(&dep)).unwrap(), &*dep.id);
        // A string a layer put in place of the deployment's is answered as it is.
        let other: Arc<str> = "other-group".into();
        assert_eq!(
            deployment_header(&other, Some(&dep)).unwrap(),
            "other-group"
        );
    }

    #[test]
    fn edge_headers_keep_the_first_value_and_the_key_order() {
        let mut h = HeaderMap::new();
        h.append("x-api-key", HeaderValue::from_static("sk-x"));
        assert_eq!(presented_key(&h).unwrap().expose(), "sk-x");
        h.append("api-key", HeaderValue::from_static("sk-a"));
        assert_eq!(presented_key(&h).unwrap().expose(), "sk-a");
        h.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-1"),
        );
        h.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-2"),
        );
        assert_eq!(presented_key(&h).unwrap().expose(), "sk-1");
        h.append("x-litellm-api-key", HeaderValue::from_static(" sk-l "));
        assert_eq!(presented_key(&h).unwrap().expose(), "sk-l");
        h.append("x-litellm-timeout", HeaderValue::from_static("2.5"));
        h.append(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        let seen = EdgeHeaders::read(&h);
        assert_eq!(
            seen.timeout.and_then(RequestTimeout::from_header_value),
            Some(RequestTimeout(Duration::from_millis(2500)))
        );
        assert_eq!(seen.cache_control.unwrap(), "no-cache");
        assert_eq!(seen.content_length.unwrap(), "12");
        assert!(seen.call_id.is_none());
        assert!(presented_key(&HeaderMap::new()).is_none());
    }
}
