//! What loading a config returns: [`ConfigError`]s, or the [`Loaded`] config with its warnings;
//! [`Checked`] holds both for `llmgate --check`.

use std::fmt;

use super::Config;

/// One problem in a config file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConfigError {
    /// The file (or other origin) the config came from.
    pub file: String,
    /// The key path of the problem, e.g. `model_list[3].litellm_params.timeout`; empty when the
    /// problem concerns the whole file (unreadable file, invalid YAML).
    pub key: String,
    /// What is wrong.
    pub reason: String,
    /// The error underneath (the file could not be read, the YAML does not parse), kept for
    /// [`std::error::Error::source`]; `reason` already says it.
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

/// Equal when file, key and reason are (the source is what the reason already says).
impl PartialEq for ConfigError {
    fn eq(&self, other: &Self) -> bool {
        self.file == other.file && self.key == other.key && self.reason == other.reason
    }
}

impl Eq for ConfigError {}

impl ConfigError {
    /// A problem at `key` in `file`.
    #[must_use]
    pub fn new(file: impl Into<String>, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            key: key.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// The same problem, with the error underneath as its [`source`](std::error::Error::source).
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(std::sync::Arc::new(source));
        self
    }
}

impl fmt::Display for ConfigError {
    /// `{file}: {key}: {reason}`, or `{file}: {reason}` when the key is empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Every problem found while loading a config (never empty when returned by the loader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A successfully loaded config and the warnings found while loading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// Non-fatal problems (unknown keys, unset environment variables), each starting with the key
    /// path. They never contain secret values.
    pub warnings: Vec<String>,
}

/// Everything a load found, errors included: what `llmgate --check` reports in one run. The
/// config holds what could be read (a section or entry with an error is left out or default).
#[derive(Debug, Clone)]
pub struct Checked {
    /// What could be read.
    pub config: Config,
    /// Problems that stop start-up.
    pub errors: Vec<ConfigError>,
    /// Problems that do not (each starting with the key path; never a secret value).
    pub warnings: Vec<String>,
}
