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
}
