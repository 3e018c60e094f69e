//! The gateway's upstream client from `config.yaml` and the environment.
//!
//! - Proxies: `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY` ([`ProxySettings::from_env`]).
//! - Trusted roots: the webpki roots, replaced by `SSL_CERT_FILE` / `SSL_CERT_DIR` when set, and
//!   by `litellm_settings.ssl_verify: <path>` (the config wins over the environment).
//! - `litellm_settings.ssl_verify: false`: no certificate verification (a start-up warning).
//! - `litellm_settings.ssl_certificate: <path>`: a client certificate (PEM: chain and key).
//! - `model_list[].litellm_params.ssl_verify` / `ssl_certificate`: the same for one deployment,
//!   applied to its `api_base` host (which it must have), on top of the global settings.
//!
//! Every file is read at start-up; a missing or unusable one stops start-up with an error naming
//! the key and the path.

use serde_json::Value;

use super::Config;
use crate::upstream::{
    HostPort, HttpClient, HttpClientBuilder, ProxySettings, TlsSettings, UpstreamConfigError,
};

impl HttpClient {
    /// The gateway's client: [`HttpClientBuilder::from_config`], built.
    pub fn from_config(config: &Config) -> Result<Self, UpstreamConfigError> {
        Ok(HttpClientBuilder::from_config(config)?.build())
    }
}

impl HttpClientBuilder {
    /// The environment ([`HttpClientBuilder::from_env`]) and the config's TLS keys (see the
    /// module docs), read once, now. `ssl_verify: false` logs a warning.
    pub fn from_config(config: &Config) -> Result<Self, UpstreamConfigError> {
        let proxy = ProxySettings::from_env().map_err(UpstreamConfigError::from_proxy)?;
        let env_tls = TlsSettings::from_env().map_err(UpstreamConfigError::from_tls)?;
        let ls = &config.litellm_settings;
        let global = apply(
            env_tls,
            ls.ssl_verify.as_ref(),
            ls.ssl_certificate
                .as_deref()
                .map(|s| Value::String(s.to_owned()))
                .as_ref(),
            "litellm_settings",
        )?;
        if !global.is_verifying() {
            tracing::warn!(
                "litellm_settings.ssl_verify: false: upstream TLS certificates are NOT verified; anyone on the network path can read and change provider traffic, API keys included"
            );
        }
        let mut builder = Self::default()
            .proxy(proxy)
            .tls(&global)
            .map_err(UpstreamConfigError::from_tls)?;
        let mut seen: Vec<(HostPort, Option<&Value>, Option<&Value>, usize)> = Vec::new();
        for (i, entry) in config.model_list.iter().enumerate() {
            let p = &entry.litellm_params;
            let verify = p.other.get("ssl_verify").filter(|v| !v.is_null());
            let cert = p.other.get("ssl_certificate").filter(|v| !v.is_null());
            if verify.is_none() && cert.is_none() {
                continue;
            }
            let prefix = format!("model_list[{i}].litellm_params");
            let key = if verify.is_some() {
                "ssl_verify"
            } else {
                "ssl_certificate"
            };
            let uri = p
                .api_base
                .as_deref()
                .and_then(|b| b.trim().parse::<http::Uri>().ok())
                .filter(|u| u.host().is_some())
                .ok_or_else(|| {
                    UpstreamConfigError(format!(
                        "{prefix}.{key}: needs an api_base with a host (the TLS settings apply to the deployment's host)"
                    ))
                })?;
            if uri.scheme_str() == Some("http") {
                tracing::warn!(
                    "{prefix}.{key}: api_base is plain http://, so its TLS settings have no effect"
                );
                continue;
            }
            let Some(host) = HostPort::of(&uri) else {
                continue;
            };
            if let Some((_, v, c, j)) = seen.iter().find(|(h, ..)| *h == host) {
                if (*v, *c) == (verify, cert) {
                    continue;
                }
                return Err(UpstreamConfigError(format!(
                    "{prefix}.{key}: {host} is also the host of model_list[{j}] with other ssl_verify / ssl_certificate settings; TLS settings are per host"
                )));
            }
            let tls = apply(global.clone(), verify, cert, &prefix)?;
            if !tls.is_verifying() {
                tracing::warn!(
                    "{prefix}.ssl_verify: false: TLS certificates of {host} are NOT verified; anyone on the network path can read and change this deployment's traffic, its API key included"
                );
            }
            builder = builder
                .tls_for_host(&host.host, host.port, &tls)
                .map_err(UpstreamConfigError::from_tls)?;
            seen.push((host, verify, cert, i));
        }
        Ok(builder)
    }
}

/// `base` with `ssl_verify` and `ssl_certificate` of the section `prefix` applied.
fn apply(
    base: TlsSettings,
    verify: Option<&Value>,
    cert: Option<&Value>,
    prefix: &str,
) -> Result<TlsSettings, UpstreamConfigError> {
    let mut tls = base;
    match verify {
        None | Some(Value::Null) => {}
        Some(v) => match verify_value(v) {
            Some(Verify::On) => tls = tls.verifying(),
            Some(Verify::Off) => tls = tls.danger_accept_invalid_certs(),
            Some(Verify::Bundle(path)) => {
                tls = tls
                    .ca_file(path, &format!("{prefix}.ssl_verify"))
                    .map_err(UpstreamConfigError::from_tls)?;
            }
            None => {
                return Err(UpstreamConfigError(format!(
                    "{prefix}.ssl_verify: expected true, false or the path of a CA bundle"
                )))
            }
        },
    }
    match cert {
        None | Some(Value::Null) => {}
        Some(Value::String(path)) if !path.trim().is_empty() => {
            tls = tls
                .client_certificate(path.trim(), None, &format!("{prefix}.ssl_certificate"))
                .map_err(UpstreamConfigError::from_tls)?;
        }
        Some(_) => {
            return Err(UpstreamConfigError(format!(
                "{prefix}.ssl_certificate: expected the path of a PEM file holding the client certificate and its key"
            )))
        }
    }
    Ok(tls)
}

enum Verify<'a> {
    On,
    Off,
    Bundle(&'a str),
}

/// `ssl_verify` as LiteLLM reads it: a boolean (also as the strings `true`/`false`, which
/// `os.environ/` substitution yields) or a CA bundle path.
fn verify_value(v: &Value) -> Option<Verify<'_>> {
    match v {
        Value::Bool(true) => Some(Verify::On),
        Value::Bool(false) => Some(Verify::Off),
        Value::String(s) => {
            let s = s.trim();
            if s.eq_ignore_ascii_case("true") {
                Some(Verify::On)
            } else if s.eq_ignore_ascii_case("false") {
                Some(Verify::Off)
            } else if s.is_empty() {
                None
            } else {
                Some(Verify::Bundle(s))
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(yaml: &str) -> Config {
        match Config::from_yaml_str(yaml, "test") {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("{e}"),
        }
    }

    fn err(yaml: &str) -> String {
        HttpClientBuilder::from_config(&config(yaml))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_missing_ca_bundle_is_a_start_up_error_naming_key_and_path() {
        let e = err("litellm_settings:\n  ssl_verify: /nonexistent/corp-ca.pem\n");
        assert!(
            e.starts_with("litellm_settings.ssl_verify: cannot read /nonexistent/corp-ca.pem"),
            "{e}"
        );
        let e = err("model_list:\n- model_name: m\n  litellm_params:\n    model: openai/gpt-4o\n    api_base: https://llm.corp:8443/v1\n    ssl_certificate: /nonexistent/client.pem\n");
        assert!(
            e.starts_with(
                "model_list[0].litellm_params.ssl_certificate: cannot read /nonexistent/client.pem"
            ),
            "{e}"
        );
    }

    #[test]
    fn deployment_tls_needs_an_api_base_and_one_setting_per_host() {
        let e = err("model_list:\n- model_name: m\n  litellm_params:\n    model: openai/gpt-4o\n    ssl_verify: false\n");
        assert!(e.contains("needs an api_base"), "{e}");
        let e = err("model_list:\n- model_name: m\n  litellm_params:\n    model: openai/gpt-4o\n    api_base: https://h/v1\n    ssl_verify: false\n- model_name: n\n  litellm_params:\n    model: openai/gpt-4o\n    api_base: https://H:443/v2\n    ssl_verify: true\n");
        assert!(e.contains("h:443 is also the host of model_list[0]"), "{e}");
        let e = err("litellm_settings:\n  ssl_verify: 3\n");
        assert!(e.contains("expected true, false or the path"), "{e}");
        // The same settings twice for one host are fine; so is false, and the string "False".
        let ok = "model_list:\n- model_name: m\n  litellm_params:\n    model: openai/gpt-4o\n    api_base: https://h/v1\n    ssl_verify: 'False'\n- model_name: n\n  litellm_params:\n    model: openai/gpt-4o\n    api_base: https://h/v2\n    ssl_verify: 'False'\n";
        assert!(HttpClientBuilder::from_config(&config(ok)).is_ok());
    }
}
