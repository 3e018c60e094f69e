//! [`MockOptions`] and their per-request overrides (headers, path prefix).

use std::time::Duration;

use http::HeaderMap;

/// How the mock answers. See the [module docs](super) for the per-request overrides.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct MockOptions {
    /// Wait before the response headers (the first byte). Default 0.
    pub(crate) latency: Duration,
    /// Content chunks per streamed answer. Default 10.
    pub(crate) chunks: usize,
    /// Delay between two content chunks. Default 0.
    pub(crate) chunk_delay: Duration,
    /// Answer with this status (and the provider's error JSON) instead of a success. Default none.
    pub(crate) error_status: Option<u16>,
    /// Share of requests, 0 to 1, that get `error_status`. Default 1.
    pub(crate) error_rate: f64,
    /// `retry-after` seconds sent with errors. Default none.
    pub(crate) retry_after: Option<u64>,
    /// Share of requests, 0 to 1, whose connection is reset without an answer. Default 0.
    pub(crate) reset_rate: f64,
    /// Floats per embedding. Default 16.
    pub(crate) embedding_dims: usize,
    /// Stamp each streamed content chunk after the first with `"mock_sent_ns"`, the wall-clock
    /// time (nanoseconds since the Unix epoch) at which the mock handed it to the connection, so a
    /// client on the same machine can time each chunk's trip. Default off.
    pub(crate) stamp: bool,
}

impl Default for MockOptions {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            chunks: 10,
            chunk_delay: Duration::ZERO,
            error_status: None,
            error_rate: 1.0,
            retry_after: None,
            reset_rate: 0.0,
            embedding_dims: 16,
            stamp: false,
        }
    }
}

/// Longest latency or chunk delay a request may ask for (a typo must not hang a benchmark).
const MAX_DELAY_MS: u64 = 600_000;
/// Most chunks a request may ask for.
const MAX_CHUNKS: usize = 1_000_000;

impl MockOptions {
    /// Applies one `key=value` override; unknown keys and unparsable values are ignored.
    fn set(&mut self, key: &str, value: &str) {
        let value = value.trim();
        let ms = || {
            value
                .parse::<u64>()
                .ok()
                .map(|v| Duration::from_millis(v.min(MAX_DELAY_MS)))
        };
        let rate = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite())
                .map(|r| r.clamp(0.0, 1.0))
        };
        match key {
            "latency_ms" => self.latency = ms().unwrap_or(self.latency),
            "chunks" => {
                if let Ok(n) = value.parse::<usize>() {
                    self.chunks = n.min(MAX_CHUNKS);
                }
            }
            "chunk_delay_ms" => self.chunk_delay = ms().unwrap_or(self.chunk_delay),
            "status" => {
                self.error_status = value
                    .parse::<u16>()
                    .ok()
                    .filter(|s| (100..1000).contains(s));
            }
            "error_rate" => self.error_rate = rate().unwrap_or(self.error_rate),
            "retry_after" => self.retry_after = value.parse().ok(),
            "reset_rate" => self.reset_rate = rate().unwrap_or(self.reset_rate),
            "stamp" => {
                if let Some(on) = match value {
                    "1" | "true" => Some(true),
                    "0" | "false" => Some(false),
                    _ => None,
                } {
                    self.stamp = on;
                }
            }
            _ => {}
        }
    }

    /// These options with the request's overrides applied, and the path with any `/mock/…/`
    /// prefix removed.
    pub(crate) fn for_request<'p>(&self, headers: &HeaderMap, path: &'p str) -> (Self, &'p str) {
        let mut opts = *self;
        let mut path = path;
        if let Some(rest) = path.strip_prefix("/mock/") {
            let settings = rest.split('/').next().unwrap_or(rest);
            for pair in settings.split(',') {
                if let Some((k, v)) = pair.split_once('=') {
                    opts.set(k, v);
                }
            }
            // The remaining path keeps its leading slash.
            path = match &rest[settings.len()..] {
                "" => "/",
                tail => tail,
            };
        }
        for (name, value) in headers {
            if let Some(key) = name.as_str().strip_prefix("x-mock-") {
                if let Ok(v) = value.to_str() {
                    let key = match key {
                        "latency-ms" => "latency_ms",
                        "chunk-delay-ms" => "chunk_delay_ms",
                        "error-rate" => "error_rate",
                        "retry-after" => "retry_after",
                        "reset-rate" => "reset_rate",
                        other => other,
                    };
                    opts.set(key, v);
                }
            }
        }
        (opts, path)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn path_prefix_and_headers_override() {
        let base = MockOptions::default();
        let mut h = HeaderMap::new();
        h.insert("x-mock-status", HeaderValue::from_static("429"));
        h.insert("x-mock-retry-after", HeaderValue::from_static("7"));
        let (o, path) = base.for_request(
            &h,
            "/mock/latency_ms=20,chunks=50,chunk_delay_ms=5,stamp=1/v1/chat/completions",
        );
        assert_eq!(path, "/v1/chat/completions");
        assert!(o.stamp);
        assert_eq!(o.latency, Duration::from_millis(20));
        assert_eq!(o.chunks, 50);
        assert_eq!(o.chunk_delay, Duration::from_millis(5));
        assert_eq!(o.error_status, Some(429));
        assert_eq!(o.retry_after, Some(7));
    }

    #[test]
    fn bad_values_are_ignored_and_clamped() {
        let base = MockOptions::default();
        let (o, path) = base.for_request(
            &HeaderMap::new(),
            "/mock/latency_ms=abc,reset_rate=7,status=42,nope/models",
        );
        assert_eq!(path, "/models");
        assert_eq!(o.latency, Duration::ZERO);
        assert!((o.reset_rate - 1.0).abs() < f64::EPSILON);
        assert_eq!(o.error_status, None);
        let (_, path) = base.for_request(&HeaderMap::new(), "/mock/chunks=3");
        assert_eq!(path, "/");
    }
}
