//! What the config sets for the edge and the server (timeouts) and for Redis: read here, so that
//! the toolbox's `server` and `redis_url` know nothing of the config.

use std::time::Duration;

use super::Config;
use crate::server::{timeout_setting, ServeConfig, DEFAULT_BODY_READ_TIMEOUT};

impl ServeConfig {
    /// The defaults, with `general_settings.request_header_timeout` (seconds) when set.
    #[must_use]
    pub fn from_config(config: &Config) -> Self {
        let mut out = Self::default();
        if let Some(d) = timeout_setting(config.general_settings.request_header_timeout) {
            out.header_read_timeout = d;
        }
        out
    }
}

/// The body read timeout a config asks for (`general_settings.request_body_timeout`, seconds),
/// else [`DEFAULT_BODY_READ_TIMEOUT`].
#[must_use]
pub fn body_read_timeout(config: &Config) -> Duration {
    timeout_setting(config.general_settings.request_body_timeout)
        .unwrap_or(DEFAULT_BODY_READ_TIMEOUT)
}

/// The Redis URL of `router_settings`: `redis_url`, else `redis_host` with `redis_port`
/// (default 6379) and `redis_password`. Empty values count as unset. Used for the router's
/// shared state and the rate-limit counters.
#[must_use]
pub fn redis_router_url(config: &Config) -> Option<String> {
    let rs = &config.router_settings;
    if let Some(u) = rs.redis_url.as_ref().filter(|u| !u.is_empty()) {
        return Some(u.expose().to_owned());
    }
    let host = rs.redis_host.as_deref().filter(|h| !h.trim().is_empty())?;
    Some(crate::redis_url::from_parts(
        host,
        rs.redis_port.unwrap_or(crate::redis_url::DEFAULT_PORT),
        rs.redis_password
            .as_ref()
            .map(crate::secret::Secret::expose),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        Config::from_yaml_str(yaml, "test").unwrap().config
    }

    #[test]
    fn router_settings_pick_url_then_host() {
        assert_eq!(redis_router_url(&config("model_list: []\n")), None);
        let c = config(
            "router_settings:\n  redis_host: r.local\n  redis_port: 6390\n  redis_password: 'a@b:c/d'\n",
        );
        assert_eq!(
            redis_router_url(&c).as_deref(),
            Some("redis://:a%40b%3Ac%2Fd@r.local:6390")
        );
        let c = config("router_settings:\n  redis_host: r.local\n");
        assert_eq!(
            redis_router_url(&c).as_deref(),
            Some("redis://r.local:6379")
        );
        let c =
            config("router_settings:\n  redis_url: 'redis://u:p@x:1/2'\n  redis_host: ignored\n");
        assert_eq!(redis_router_url(&c).as_deref(), Some("redis://u:p@x:1/2"));
        let c = config("router_settings:\n  redis_url: ''\n  redis_host: ''\n");
        assert_eq!(redis_router_url(&c), None);
    }
}
