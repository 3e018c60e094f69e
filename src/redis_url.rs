//! The Redis URL: assembled in one place for the three users of Redis (the
//! [`rate_limit`](crate::rate_limit) counters the gateway's `governance` wires, shared routing
//! state in the [`router`](crate::router), and
//! the response [`cache`](crate::cache)).
//!
//! `redis_url` (or `cache_params.url`) is used as written. Otherwise the URL is
//! `redis://[:<password>@]<host>:<port>` with the password percent-encoded, so a password
//! holding `@`, `:`, `/` or any other reserved character reaches Redis unchanged (the Redis
//! client decodes it). Show these URLs only through [`redact_url`](crate::secret::redact_url).

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

/// The Redis port when none is configured.
pub const DEFAULT_PORT: u16 = 6379;

/// `redis://[:<password>@]<host>:<port>`: the password percent-encoded, an IPv6 host in
/// brackets. An empty password means none.
#[must_use]
pub fn from_parts(host: &str, port: u16, password: Option<&str>) -> String {
    let host = host.trim();
    let auth = password
        .filter(|p| !p.is_empty())
        .map(|p| format!(":{}@", utf8_percent_encode(p, NON_ALPHANUMERIC)))
        .unwrap_or_default();
    if host.contains(':') && !host.starts_with('[') {
        format!("redis://{auth}[{host}]:{port}")
    } else {
        format!("redis://{auth}{host}:{port}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // clippy's allow-unwrap-in-tests sees only a plain `cfg(test)`
mod tests {
    use super::*;

    #[test]
    fn password_with_reserved_characters_round_trips() {
        let url = from_parts("127.0.0.1", 6380, Some("p@ss:w/rd?#%"));
        assert_eq!(url, "redis://:p%40ss%3Aw%2Frd%3F%23%25@127.0.0.1:6380");
        // The Redis client reads back the very password, host and port.
        let info = redis::IntoConnectionInfo::into_connection_info(url.as_str()).unwrap();
        assert_eq!(info.redis_settings().password(), Some("p@ss:w/rd?#%"));
        assert_eq!(
            info.addr().to_string(),
            redis::ConnectionAddr::Tcp("127.0.0.1".into(), 6380).to_string()
        );
        assert_eq!(crate::secret::redact_url(&url), "redis://127.0.0.1:6380");
    }

    #[test]
    fn no_or_empty_password_means_none_and_ipv6_gets_brackets() {
        assert_eq!(from_parts("h", 1, None), "redis://h:1");
        assert_eq!(from_parts("h", 1, Some("")), "redis://h:1");
        assert_eq!(from_parts("::1", 2, None), "redis://[::1]:2");
        assert_eq!(from_parts("[::1]", 2, None), "redis://[::1]:2");
    }
}
