//! [`CallbackSettings`]: which consumers `litellm_settings` turns on, read as LiteLLM reads them.

use std::path::PathBuf;

use crate::secret::Secret;

/// The callback names llmgate implements. Any other name in `callbacks`, `success_callback` or
/// `failure_callback` is refused at start-up (a warning with
/// `general_settings.allow_unsupported_config: true`): running without a callback the config
/// asks for would silently drop metrics or an audit trail.
pub const KNOWN_CALLBACKS: &[&str] = &["prometheus", "langfuse", "generic_api", "jsonl"];

/// The Langfuse sink's settings (`LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY`, `LANGFUSE_HOST`).
#[derive(Clone, Debug)]
pub struct LangfuseSettings {
    /// Base URL (`LANGFUSE_HOST`, default `https://cloud.langfuse.com`).
    pub host: String,
    /// `LANGFUSE_PUBLIC_KEY` (the basic-auth user).
    pub public_key: Secret,
    /// `LANGFUSE_SECRET_KEY` (the basic-auth password).
    pub secret_key: Secret,
}

/// The generic HTTP webhook's settings (`GENERIC_LOGGER_ENDPOINT`, `GENERIC_LOGGER_HEADERS`).
#[derive(Clone, Debug)]
pub struct GenericApiSettings {
    /// Where batches are POSTed.
    pub endpoint: String,
    /// Extra headers (`GENERIC_LOGGER_HEADERS`: `name=value,name2=value2`).
    pub headers: Vec<(String, Secret)>,
}

/// Which sinks get successes and failures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Events {
    /// Successful calls.
    pub success: bool,
    /// Failed (and cut) calls.
    pub failure: bool,
}

/// What `litellm_settings` turns on: Prometheus, the logging sinks, message logging.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CallbackSettings {
    /// `prometheus` in `callbacks` or `success_callback`.
    pub prometheus: bool,
    /// `litellm_settings.require_auth_for_metrics_endpoint`.
    pub require_auth_for_metrics: bool,
    /// `langfuse`, with its events.
    pub langfuse: Option<(LangfuseSettings, Events)>,
    /// `generic_api`, with its events.
    pub generic_api: Option<(GenericApiSettings, Events)>,
    /// `jsonl` (llmgate's own: `LLMGATE_CALLBACK_LOG_FILE`), with its events.
    pub jsonl: Option<(PathBuf, Events)>,
    /// Message content is logged (`turn_off_message_logging` not true).
    pub message_logging: bool,
    /// Names refused under `allow_unsupported_config` (warnings).
    pub warnings: Vec<String>,
}

/// One problem with the callback settings: the key and why.
pub type SettingError = (String, String);

impl CallbackSettings {
    /// Reads `config`'s callbacks; environment variables from `lookup` (the config's
    /// `environment_variables`, then the process environment).
    ///
    /// # Errors
    /// Every problem: an unknown callback name (unless `allow_unsupported_config`), a sink
    /// without its required variables.
    pub fn from_config(
        config: &crate::config::Config,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Vec<SettingError>> {
        let ls = &config.litellm_settings;
        let allow = config.general_settings.allow_unsupported_config == Some(true);
        let mut out = Self {
            require_auth_for_metrics: ls.require_auth_for_metrics_endpoint == Some(true),
            message_logging: ls.turn_off_message_logging != Some(true),
            ..Self::default()
        };
        let mut errors = Vec::new();
        // Per name: its events, and the first key that named it (for messages).
        let mut events = std::collections::BTreeMap::<String, (Events, &'static str)>::new();
        for (key, list, ev) in [
            (
                "callbacks",
                &ls.callbacks,
                Events {
                    success: true,
                    failure: true,
                },
            ),
            (
                "success_callback",
                &ls.success_callback,
                Events {
                    success: true,
                    failure: false,
                },
            ),
            (
                "failure_callback",
                &ls.failure_callback,
                Events {
                    success: false,
                    failure: true,
                },
            ),
        ] {
            for name in list.iter().flatten() {
                let name = name.trim();
                // `callbacks: ["otel"]` starts traces (`telemetry`), not a record consumer.
                if cfg!(feature = "otel") && key == "callbacks" && name.eq_ignore_ascii_case("otel")
                {
                    continue;
                }
                if !KNOWN_CALLBACKS.contains(&name) {
                    errors.push((
                        format!("litellm_settings.{key}"),
                        format!(
                            "not supported by llmgate yet: the `{name}` callback (llmgate has {}); running without it would silently drop the metrics or audit trail the config asks for; remove it, or set general_settings.allow_unsupported_config: true to run without it",
                            crate::config::keys::IMPLEMENTED_CALLBACKS.join(", ")
                        ),
                    ));
                    continue;
                }
                let e = events
                    .entry(name.to_owned())
                    .or_insert((Events::default(), key));
                e.0.success |= ev.success;
                e.0.failure |= ev.failure;
            }
        }
        let env = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        for (name, (ev, key)) in events {
            let key = format!("litellm_settings.{key}");
            match name.as_str() {
                // LiteLLM's Prometheus callback counts successes and failures whichever list
                // names it.
                "prometheus" => out.prometheus = true,
                "langfuse" => match (env("LANGFUSE_PUBLIC_KEY"), env("LANGFUSE_SECRET_KEY")) {
                    (Some(public), Some(secret)) => {
                        let host = env("LANGFUSE_HOST")
                            .unwrap_or_else(|| "https://cloud.langfuse.com".to_owned());
                        if !(host.starts_with("http://") || host.starts_with("https://")) {
                            errors.push((
                                key,
                                "`langfuse`: LANGFUSE_HOST must be an http:// or https:// URL"
                                    .to_owned(),
                            ));
                            continue;
                        }
                        out.langfuse = Some((
                            LangfuseSettings {
                                host,
                                public_key: Secret::new(public),
                                secret_key: Secret::new(secret),
                            },
                            ev,
                        ));
                    }
                    _ => errors.push((
                        key,
                        "`langfuse` needs LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY".to_owned(),
                    )),
                },
                "generic_api" => match env("GENERIC_LOGGER_ENDPOINT") {
                    Some(endpoint)
                        if endpoint.starts_with("http://") || endpoint.starts_with("https://") =>
                    {
                        let headers = env("GENERIC_LOGGER_HEADERS")
                            .map(|h| parse_headers(&h))
                            .unwrap_or_default();
                        out.generic_api = Some((GenericApiSettings { endpoint, headers }, ev));
                    }
                    _ => errors.push((
                        key,
                        "`generic_api` needs GENERIC_LOGGER_ENDPOINT (an http:// or https:// URL)"
                            .to_owned(),
                    )),
                },
                "jsonl" => match env("LLMGATE_CALLBACK_LOG_FILE") {
                    Some(path) => out.jsonl = Some((PathBuf::from(path), ev)),
                    None => errors.push((
                        key,
                        "`jsonl` needs LLMGATE_CALLBACK_LOG_FILE (the file to append to)"
                            .to_owned(),
                    )),
                },
                _ => {}
            }
        }
        // The operator may accept running without them: each becomes a warning.
        if allow {
            out.warnings.extend(errors.drain(..).map(|(k, e)| {
                format!("{k}: {e}; running without it because general_settings.allow_unsupported_config is true")
            }));
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// Whether any consumer is on.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.prometheus
            && self.langfuse.is_none()
            && self.generic_api.is_none()
            && self.jsonl.is_none()
    }
}

impl CallbackSettings {
    /// Starts what the settings turn on: the Prometheus registry and each sink's queue and task
    /// (on the current Tokio runtime).
    ///
    /// # Errors
    /// A sink is configured but there is no Tokio runtime to run it on.
    pub fn start(&self) -> Result<crate::callbacks::Callbacks, String> {
        use crate::sinks::{
            GenericApiWriter, JsonlWriter, LangfuseWriter, QueueOptions, QueuedSink,
        };
        let mut cb = crate::callbacks::Callbacks::new();
        if self.prometheus {
            cb = cb.metrics(
                crate::metrics::Metrics::new().require_auth(self.require_auth_for_metrics),
            );
        }
        let sinks = self.langfuse.is_some() || self.generic_api.is_some() || self.jsonl.is_some();
        if sinks && tokio::runtime::Handle::try_current().is_err() {
            return Err("logging sinks need a Tokio runtime to run on".to_owned());
        }
        let content = self.message_logging;
        let opts = QueueOptions::default();
        if let Some((s, ev)) = &self.langfuse {
            let w = LangfuseWriter::new(&s.host, &s.public_key, &s.secret_key);
            cb = cb.sink(std::sync::Arc::new(
                QueuedSink::start("langfuse", w, opts)
                    .with_content(content)
                    .events(ev.success, ev.failure),
            ));
        }
        if let Some((s, ev)) = &self.generic_api {
            let w = GenericApiWriter::new(s.endpoint.clone(), s.headers.clone());
            cb = cb.sink(std::sync::Arc::new(
                QueuedSink::start("generic_api", w, opts)
                    .with_content(content)
                    .events(ev.success, ev.failure),
            ));
        }
        if let Some((path, ev)) = &self.jsonl {
            cb = cb.sink(std::sync::Arc::new(
                QueuedSink::start("jsonl", JsonlWriter::new(path.clone()), opts)
                    .with_content(content)
                    .events(ev.success, ev.failure),
            ));
        }
        Ok(cb)
    }
}

/// `GENERIC_LOGGER_HEADERS`: `name=value,name2=value2`; malformed items are skipped.
fn parse_headers(s: &str) -> Vec<(String, Secret)> {
    s.split(',')
        .filter_map(|item| {
            let (k, v) = item.split_once('=')?;
            let k = k.trim();
            (!k.is_empty() && http::HeaderName::from_bytes(k.as_bytes()).is_ok())
                .then(|| (k.to_owned(), Secret::new(v.trim())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `litellm_settings` from `yaml` (deserialized directly: the loader would already refuse
    /// what these tests check).
    fn load(
        yaml: &str,
        allow_unsupported: bool,
        vars: &[(&str, &str)],
    ) -> Result<CallbackSettings, Vec<SettingError>> {
        let mut cfg = crate::config::Config {
            litellm_settings: serde_yaml_ng::from_str(yaml).expect("yaml"),
            ..Default::default()
        };
        cfg.general_settings.allow_unsupported_config = Some(allow_unsupported);
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        CallbackSettings::from_config(&cfg, &move |n: &str| {
            vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn prometheus_and_sinks_are_read_as_litellm_names_them() {
        let s = load(
            "callbacks: [prometheus]\nsuccess_callback: [langfuse, generic_api]\nfailure_callback: [langfuse]\nturn_off_message_logging: true\nrequire_auth_for_metrics_endpoint: true\n",
            false,
            &[
                ("LANGFUSE_PUBLIC_KEY", "pk"),
                ("LANGFUSE_SECRET_KEY", "sk"),
                ("LANGFUSE_HOST", "http://127.0.0.1:1"),
                ("GENERIC_LOGGER_ENDPOINT", "http://127.0.0.1:2/log"),
                ("GENERIC_LOGGER_HEADERS", "x-a=1, bad header=2,x-b=three"),
            ],
        )
        .expect("valid");
        assert!(s.prometheus && s.require_auth_for_metrics && !s.message_logging);
        let (lf, ev) = s.langfuse.expect("langfuse");
        assert_eq!(lf.host, "http://127.0.0.1:1");
        assert_eq!(
            ev,
            Events {
                success: true,
                failure: true
            }
        );
        let (g, ev) = s.generic_api.expect("generic");
        assert_eq!(
            g.headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.expose()))
                .collect::<Vec<_>>(),
            [("x-a", "1"), ("x-b", "three")]
        );
        assert!(ev.success && !ev.failure);
    }

    #[test]
    fn unknown_callbacks_and_missing_variables_are_refused() {
        let errs = load(
            "callbacks: [prometheus, datadog]\nsuccess_callback: [langfuse]\n",
            false,
            &[],
        )
        .expect_err("refused");
        assert!(
            errs.iter().any(|(_, m)| m.contains("`datadog`")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|(_, m)| m.contains("LANGFUSE_PUBLIC_KEY")),
            "{errs:?}"
        );
        let ok = load("callbacks: [datadog]\n", true, &[]).expect("allowed");
        assert!(ok.is_empty());
        assert_eq!(ok.warnings.len(), 1);
    }
}
