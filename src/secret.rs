//! [`Secret`]: a string that never prints.

use std::fmt;

use subtle::ConstantTimeEq;

/// A credential (API key, master key, token). `Debug`, `Display` and `Serialize` print `*****`;
/// comparison is constant-time.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself, for sending it where it belongs.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the credential is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison with a presented credential.
    #[must_use]
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }

    /// A masked form for logs and output: the first 3 and last 2 characters at most (`sk-…34`).
    #[must_use]
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// Masks a credential for output: keeps a short prefix and suffix only when the key is long enough
/// that they reveal nothing useful.
#[must_use]
pub fn mask(key: &str) -> String {
    let n = key.chars().count();
    if n < 12 {
        return "*****".to_owned();
    }
    let head: String = key.chars().take(3).collect();
    let tail: String = key.chars().skip(n - 2).collect();
    format!("{head}…{tail}")
}

/// A URL fit for headers, error messages, logs and management responses: user info
/// (`user:password@`) removed, the value of every secret-looking query parameter replaced by
/// `*****`, the fragment dropped. The one function every such place uses.
///
/// A query parameter looks secret when its name (case-insensitive) contains `key`, `token`,
/// `secret`, `password`, `passwd`, `pwd`, `sig`, `auth` or `credential` (`key`, `api_key`,
/// `api-key`, `access_token`, `sig`, `X-Amz-Signature`, `password`, …); other parameters
/// (`api-version`, `mode`, `sslmode`) stay.
///
/// The authority ends at the first `/`, `?` or `#` (RFC 3986), and user info at its last `@`.
/// A password holding a raw `/` and `@` makes that ambiguous: when the authority has user info
/// and the path holds an `@` too, everything up to the last `@` before the query is removed,
/// so the password never shows (a path with `@` then shows from that `@` on only).
///
/// ```
/// use llmgate::secret::redact_url;
/// assert_eq!(redact_url("https://user:pass@host/v1?api-version=1&key=k"),
///            "https://host/v1?api-version=1&key=*****");
/// ```
#[must_use]
pub fn redact_url(url: &str) -> String {
    let (before_fragment, _) = url.split_once('#').unwrap_or((url, ""));
    let (base, query) = match before_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_fragment, None),
    };
    let (scheme, rest) = match base.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, base),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    // `user:pa` before a raw `/` in the password: a "port" that is not a number.
    let broken_port = !authority.ends_with(']')
        && authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.bytes().any(|b| !b.is_ascii_digit()));
    let rest = match authority.rfind('@') {
        // User info, and another `@` in the path: a raw `/` in the password, perhaps.
        Some(_) if path.contains('@') => rest.rsplit_once('@').map_or(rest, |(_, after)| after),
        Some(at) => &rest[at + 1..],
        None if broken_port && path.contains('@') => {
            rest.rsplit_once('@').map_or(rest, |(_, after)| after)
        }
        None => rest,
    };
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    out.push_str(rest);
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, _)) if is_secret_param(name) => {
                    out.push_str(name);
                    out.push_str("=*****");
                }
                _ => out.push_str(pair),
            }
        }
    }
    out
}

/// Whether a query parameter's name looks like it carries a credential.
fn is_secret_param(name: &str) -> bool {
    const SECRET: [&str; 9] = [
        "key",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "sig",
        "auth",
        "credential",
    ];
    let name = name.to_ascii_lowercase();
    SECRET.iter().any(|s| name.contains(s))
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(*****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("*****")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints() {
        let s = Secret::new("sk-verysecretvalue1234");
        assert_eq!(format!("{s:?}"), "Secret(*****)");
        assert_eq!(s.to_string(), "*****");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"*****\"");
        assert_eq!(s.masked(), "sk-…34");
        assert_eq!(mask("short"), "*****");
    }

    #[test]
    fn compares() {
        let s = Secret::new("sk-1234");
        assert!(s.matches("sk-1234"));
        assert!(!s.matches("sk-1235"));
        assert!(!s.matches("sk-12345"));
    }

    #[test]
    fn urls_lose_user_info_and_query_secrets() {
        for (url, want) in [
            ("https://user:pass@host/v1", "https://host/v1"),
            ("https://user:pass@host:8443", "https://host:8443"),
            ("https://pass@host/v1/", "https://host/v1/"),
            ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
            (
                "https://u:p@host/v1?key=x&api-version=2024-06-01#frag",
                "https://host/v1?key=*****&api-version=2024-06-01",
            ),
            (
                "https://h/v1?api_key=a&access_token=b&sig=c&X-Amz-Signature=d&password=e&token=f&mode=rwc",
                "https://h/v1?api_key=*****&access_token=*****&sig=*****&X-Amz-Signature=*****&password=*****&token=*****&mode=rwc",
            ),
            ("redis://:p%40ss%3Aw%2Frd@host:6379/0", "redis://host:6379/0"),
            // A raw password with `@`, `:` and `/`: nothing of it shows.
            ("redis://:p@ss:w/rd@host:6379", "redis://host:6379"),
            ("postgres://app:hunter2@db/llm?sslmode=require", "postgres://db/llm?sslmode=require"),
            ("sqlite::memory:", "sqlite::memory:"),
            ("sqlite:///tmp/x.db?mode=rwc", "sqlite:///tmp/x.db?mode=rwc"),
            // An `@` in the path without user info stays.
            ("https://h/models/claude@20240620", "https://h/models/claude@20240620"),
            ("user:pw@host:1", "host:1"),
            ("", ""),
            ("?", "?"),
            ("https://h/?flag", "https://h/?flag"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
        for url in [
            "https://user:hunter2@host/v1?key=hunter2",
            "https://hunter2@h?x=1&Api-Key=hunter2",
            "redis://default:hun/ter2@host",
            "https://a:hunter2@b:hunter2@host/v1",
        ] {
            assert!(
                !redact_url(url).contains("hunter2"),
                "{url}: {}",
                redact_url(url)
            );
            assert!(
                !redact_url(url).contains("ter2"),
                "{url}: {}",
                redact_url(url)
            );
        }
    }
}
