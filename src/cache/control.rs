//! Per-request cache controls: the body's `cache` object (LiteLLM's form) and the `Cache-Control`
//! header.

use std::time::Duration;

use serde_json::Value;

use crate::{
    server::CacheControlHeader,
    types::{wire::Extra, LlmRequest, Operation},
};

/// What one request asks of the cache.
///
/// Read from the body's `cache` object (`{"no-cache": true, "no-store": true, "ttl": 60,
/// "s-maxage": 30, "namespace": "x"}`), LiteLLM's `caching: false` switch, and the request's
/// `Cache-Control` header (`no-cache`, `no-store`, `max-age=N` / `s-maxage=N`, and the
/// extension directives `ttl=N` and `namespace=x`). A body value wins over the header's.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct CacheControl {
    /// Do not read the cache (the answer is still stored unless `no_store`).
    pub no_cache: bool,
    /// Do not store the answer.
    pub no_store: bool,
    /// Store with this time to live instead of the default.
    pub ttl: Option<Duration>,
    /// Accept a cached answer only if it is at most this old.
    pub max_age: Option<Duration>,
    /// Key namespace for this request (instead of the configured one).
    pub namespace: Option<String>,
}

impl CacheControl {
    /// The controls of `req`: its header first, then its body (which wins).
    #[must_use]
    pub fn from_request(req: &LlmRequest) -> Self {
        let mut c = Self::default();
        if let Some(CacheControlHeader(v)) = req.extensions.get::<CacheControlHeader>() {
            if let Ok(s) = v.to_str() {
                c.apply_header(s);
            }
        }
        let extra = match &req.op {
            Operation::Chat(b) => Some(&b.extra),
            Operation::Embeddings(b) => Some(&b.extra),
            _ => None,
        };
        if let Some(extra) = extra {
            c.apply_body(extra);
        }
        c
    }

    /// Applies a `Cache-Control` header value.
    pub fn apply_header(&mut self, value: &str) {
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            match (name.to_ascii_lowercase().as_str(), arg) {
                ("no-cache", _) => self.no_cache = true,
                ("no-store", _) => self.no_store = true,
                ("max-age" | "s-maxage", Some(a)) => {
                    if let Some(d) = a.parse::<f64>().ok().and_then(secs) {
                        self.max_age = Some(d);
                    }
                }
                ("ttl", Some(a)) => self.set_ttl(a.parse::<f64>().ok()),
                ("namespace", Some(a)) if !a.is_empty() => self.namespace = Some(a.to_owned()),
                _ => {}
            }
        }
    }

    /// Applies the body's `cache` object and `caching` switch.
    pub fn apply_body(&mut self, extra: &Extra) {
        if extra.get_as::<bool>("caching") == Some(false) {
            self.no_cache = true;
            self.no_store = true;
        }
        let Some(Value::Object(map)) = extra.get_as::<Value>("cache") else {
            return;
        };
        for (k, v) in &map {
            match k.as_str() {
                "no-cache" | "no_cache" => {
                    if let Some(b) = v.as_bool() {
                        self.no_cache = b;
                    }
                }
                "no-store" | "no_store" => {
                    if let Some(b) = v.as_bool() {
                        self.no_store = b;
                    }
                }
                "ttl" => self.set_ttl(number(v)),
                "s-maxage" | "s_maxage" | "max-age" => {
                    if let Some(d) = number(v).and_then(secs) {
                        self.max_age = Some(d);
                    }
                }
                "namespace" => {
                    if let Some(ns) = v.as_str().filter(|s| !s.is_empty()) {
                        self.namespace = Some(ns.to_owned());
                    }
                }
                _ => {}
            }
        }
    }

    fn set_ttl(&mut self, n: Option<f64>) {
        match n {
            // A ttl of zero (or less) means: do not keep it at all.
            Some(n) if n.is_finite() && n <= 0.0 => self.no_store = true,
            Some(n) => {
                if let Some(d) = secs(n) {
                    self.ttl = Some(d);
                }
            }
            None => {}
        }
    }
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn secs(n: f64) -> Option<Duration> {
    // Up to ten years; anything else is ignored rather than overflowing.
    (0.0..3.2e8)
        .contains(&n)
        .then(|| Duration::from_secs_f64(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str, header: Option<&str>) -> LlmRequest {
        let mut r = LlmRequest::chat(serde_json::from_str(body).unwrap());
        if let Some(h) = header {
            r.extensions
                .insert(CacheControlHeader(http::HeaderValue::from_str(h).unwrap()));
        }
        r
    }

    #[test]
    fn body_controls() {
        let c = CacheControl::from_request(&req(
            r#"{"model":"m","messages":[],"cache":{"no-cache":true,"no-store":true,"ttl":60,"s-maxage":"30","namespace":"ns"}}"#,
            None,
        ));
        assert!(c.no_cache && c.no_store);
        assert_eq!(c.ttl, Some(Duration::from_secs(60)));
        assert_eq!(c.max_age, Some(Duration::from_secs(30)));
        assert_eq!(c.namespace.as_deref(), Some("ns"));
    }

    #[test]
    fn header_controls_and_body_wins() {
        let c = CacheControl::from_request(&req(
            r#"{"model":"m","messages":[]}"#,
            Some("no-cache, max-age=5, ttl=9, namespace=\"h\""),
        ));
        assert!(c.no_cache && !c.no_store);
        assert_eq!(c.max_age, Some(Duration::from_secs(5)));
        assert_eq!(c.ttl, Some(Duration::from_secs(9)));
        assert_eq!(c.namespace.as_deref(), Some("h"));
        let c = CacheControl::from_request(&req(
            r#"{"model":"m","messages":[],"cache":{"no-cache":false,"namespace":"b"}}"#,
            Some("no-cache, no-store"),
        ));
        assert!(!c.no_cache && c.no_store);
        assert_eq!(c.namespace.as_deref(), Some("b"));
    }

    #[test]
    fn odd_values_are_ignored_and_zero_ttl_means_no_store() {
        let c = CacheControl::from_request(&req(
            r#"{"model":"m","messages":[],"cache":{"ttl":0,"s-maxage":-1,"namespace":5,"no-cache":"yes"}}"#,
            Some("max-age=abc, ttl=1e400"),
        ));
        assert!(c.no_store && !c.no_cache);
        assert_eq!(c.max_age, None);
        assert_eq!(c.namespace, None);
        let c = CacheControl::from_request(&req(
            r#"{"model":"m","messages":[],"caching":false,"cache":[1]}"#,
            None,
        ));
        assert!(c.no_cache && c.no_store);
    }
}
