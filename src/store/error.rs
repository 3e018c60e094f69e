//! [`StoreError`]: a store failure with its context and, when another error caused it, that
//! error as its [`source`](std::error::Error::source).

use std::{borrow::Cow, error::Error as StdError, fmt};

use crate::error::BoxError;

/// A store failure (connection, query, migration, …): what the store was doing, and the error
/// that made it fail when there is one ([`source`](StdError::source)). The backend's own error
/// type (`sqlx::Error` for [`Store`](super::Store)) stays behind the source: no signature names it.
#[derive(Debug)]
pub struct StoreError {
    context: Cow<'static, str>,
    source: Option<BoxError>,
}

impl StoreError {
    /// A failure while doing `context`, caused by `source`.
    pub fn new(context: impl Into<Cow<'static, str>>, source: impl Into<BoxError>) -> Self {
        Self {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// A failure with no underlying error (a refused input, no randomness, …).
    pub fn msg(context: impl Into<Cow<'static, str>>) -> Self {
        Self {
            context: context.into(),
            source: None,
        }
    }

    /// What the store was doing.
    #[must_use]
    pub fn context(&self) -> &str {
        &self.context
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.context),
            None => f.write_str(&self.context),
        }
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_its_source_and_reads_as_before() {
        let io = std::io::Error::other("connection refused");
        let e = StoreError::new("cannot connect to the database", io);
        assert_eq!(
            e.to_string(),
            "cannot connect to the database: connection refused"
        );
        let source = e.source().expect("the cause is kept");
        assert_eq!(source.to_string(), "connection refused");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        let plain = StoreError::msg("no randomness");
        assert_eq!(plain.to_string(), "no randomness");
        assert!(plain.source().is_none());
        assert_eq!(plain.context(), "no randomness");
    }
}
