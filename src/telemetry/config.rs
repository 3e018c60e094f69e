//! Where traces go: LiteLLM's `OTEL_*` variables and the standard `OTEL_EXPORTER_OTLP_*` ones.

use std::fmt;

/// How spans leave the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exporter {
    /// OTLP over HTTP with protobuf bodies (`otlp_http`, `http/protobuf`; `http/json` is sent
    /// as protobuf too, with a warning).
    OtlpHttp,
    /// OTLP over gRPC (`otlp_grpc`, `grpc`).
    OtlpGrpc,
    /// One JSON line per span on standard output (`console`, LiteLLM's default).
    Console,
}

impl Exporter {
    /// The exporter an `OTEL_EXPORTER` / `OTEL_EXPORTER_OTLP_PROTOCOL` value names.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "otlp_http" | "http/protobuf" | "http/json" | "http" => Some(Self::OtlpHttp),
            "otlp_grpc" | "grpc" => Some(Self::OtlpGrpc),
            "console" => Some(Self::Console),
            _ => None,
        }
    }

    /// The name as the docs spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OtlpHttp => "otlp_http",
            Self::OtlpGrpc => "otlp_grpc",
            Self::Console => "console",
        }
    }
}

/// What [`Otel::start`](super::Otel::start) needs: the exporter, its endpoint and headers, and
/// the service's name.
#[derive(Clone, PartialEq, Eq)]
pub struct OtelConfig {
    /// How spans leave the process.
    pub exporter: Exporter,
    /// The collector: for HTTP the full traces URL (`…/v1/traces`), for gRPC the base URL.
    pub endpoint: String,
    /// Headers sent with every export (credentials of a hosted collector).
    pub headers: Vec<(String, String)>,
    /// `service.name` of the resource (`OTEL_SERVICE_NAME`, default `llmgate`).
    pub service_name: String,
    /// `deployment.environment` of the resource (`OTEL_ENVIRONMENT_NAME`, default
    /// `production`, as LiteLLM).
    pub environment: String,
    /// Findings worth a start-up warning (`http/json` sent as protobuf).
    pub warnings: Vec<String>,
}

impl fmt::Debug for OtelConfig {
    /// Header values are credentials: only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelConfig")
            .field("exporter", &self.exporter)
            .field("endpoint", &crate::secret::redact_url(&self.endpoint))
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("service_name", &self.service_name)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

/// The default OTLP/HTTP traces endpoint (the OpenTelemetry SDKs' default).
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318/v1/traces";
/// The default OTLP/gRPC endpoint.
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";

/// A configuration variable that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtelConfigError {
    /// The variable.
    pub variable: &'static str,
    /// Why.
    pub reason: String,
}

impl fmt::Display for OtelConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.reason)
    }
}

impl std::error::Error for OtelConfigError {}

impl OtelConfig {
    /// OTLP over HTTP/protobuf to `endpoint` (the full traces URL), no headers.
    #[must_use]
    pub fn otlp_http(endpoint: impl Into<String>) -> Self {
        Self::new(Exporter::OtlpHttp, endpoint.into())
    }

    /// OTLP over gRPC to `endpoint` (`http://host:4317`), no headers.
    #[must_use]
    pub fn otlp_grpc(endpoint: impl Into<String>) -> Self {
        Self::new(Exporter::OtlpGrpc, endpoint.into())
    }

    fn new(exporter: Exporter, endpoint: String) -> Self {
        Self {
            exporter,
            endpoint,
            headers: Vec::new(),
            service_name: "llmgate".to_owned(),
            environment: "production".to_owned(),
            warnings: Vec::new(),
        }
    }

    /// With `service.name` = `name`.
    #[must_use]
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    /// With one more export header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The configuration the process environment gives (see [`OtelConfig::from_lookup`]).
    ///
    /// # Errors
    /// As [`OtelConfig::from_lookup`].
    pub fn from_env() -> Result<Self, OtelConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// The configuration `var` gives, read as LiteLLM reads it, the standard variable first:
    ///
    /// - exporter: `OTEL_EXPORTER_OTLP_PROTOCOL`, else `OTEL_EXPORTER`; with neither, OTLP/HTTP
    ///   when an endpoint is set, else `console` (LiteLLM's default);
    /// - endpoint: `OTEL_EXPORTER_OTLP_ENDPOINT`, else `OTEL_ENDPOINT`. For HTTP it is made a
    ///   traces URL as LiteLLM does (`http://c:4318` → `http://c:4318/v1/traces`); default
    ///   `http://localhost:4318/v1/traces`, or `http://localhost:4317` for gRPC;
    /// - headers: `OTEL_EXPORTER_OTLP_HEADERS`, else `OTEL_HEADERS` (`k=v,k2=v2`);
    /// - `OTEL_SERVICE_NAME` (default `llmgate`), `OTEL_ENVIRONMENT_NAME` (default
    ///   `production`).
    ///
    /// # Errors
    /// An unknown exporter name, a malformed header list or an endpoint that is not an
    /// `http(s)://` URL: start-up fails rather than run without the traces the config asks for.
    pub fn from_lookup(var: &dyn Fn(&str) -> Option<String>) -> Result<Self, OtelConfigError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|e| ("OTEL_EXPORTER_OTLP_ENDPOINT", e))
            .or_else(|| get("OTEL_ENDPOINT").map(|e| ("OTEL_ENDPOINT", e)));
        let named = get("OTEL_EXPORTER_OTLP_PROTOCOL")
            .map(|e| ("OTEL_EXPORTER_OTLP_PROTOCOL", e))
            .or_else(|| get("OTEL_EXPORTER").map(|e| ("OTEL_EXPORTER", e)));
        let mut warnings = Vec::new();
        let exporter = match &named {
            Some((variable, name)) => {
                let exporter = Exporter::from_name(name).ok_or_else(|| OtelConfigError {
                    variable,
                    reason: format!(
                        "unknown exporter `{name}` (use otlp_http, http/protobuf, otlp_grpc, grpc or console)"
                    ),
                })?;
                if name.trim().eq_ignore_ascii_case("http/json") {
                    warnings.push(format!(
                        "{variable}=http/json: llmgate sends OTLP/HTTP as protobuf"
                    ));
                }
                exporter
            }
            None if endpoint.is_some() => Exporter::OtlpHttp,
            None => Exporter::Console,
        };
        let endpoint = match (exporter, endpoint) {
            (Exporter::Console, _) => String::new(),
            (_, Some((variable, url))) => {
                let url = url.trim();
                if !(url.starts_with("http://") || url.starts_with("https://"))
                    || url.parse::<http::Uri>().is_err()
                {
                    return Err(OtelConfigError {
                        variable,
                        reason: "not an http:// or https:// URL".to_owned(),
                    });
                }
                if exporter == Exporter::OtlpHttp {
                    traces_url(url)
                } else {
                    url.trim_end_matches('/').to_owned()
                }
            }
            (Exporter::OtlpHttp, None) => DEFAULT_HTTP_ENDPOINT.to_owned(),
            (Exporter::OtlpGrpc, None) => DEFAULT_GRPC_ENDPOINT.to_owned(),
        };
        let headers = match get("OTEL_EXPORTER_OTLP_HEADERS")
            .map(|h| ("OTEL_EXPORTER_OTLP_HEADERS", h))
            .or_else(|| get("OTEL_HEADERS").map(|h| ("OTEL_HEADERS", h)))
        {
            Some((variable, list)) => {
                parse_headers(&list).map_err(|reason| OtelConfigError { variable, reason })?
            }
            None => Vec::new(),
        };
        let mut config = Self::new(exporter, endpoint);
        config.headers = headers;
        if let Some(name) = get("OTEL_SERVICE_NAME") {
            config.service_name = name;
        }
        if let Some(env) = get("OTEL_ENVIRONMENT_NAME") {
            config.environment = env;
        }
        config.warnings = warnings;
        Ok(config)
    }
}

/// `url` as an OTLP/HTTP traces URL, as LiteLLM normalizes it: kept when it ends in
/// `/v1/traces`, another signal's path replaced, else `/v1/traces` (or `/traces` after `/v1`)
/// appended.
fn traces_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.ends_with("/v1/traces") {
        return url.to_owned();
    }
    for other in ["/v1/logs", "/v1/metrics"] {
        if let Some(base) = url.strip_suffix(other) {
            return format!("{base}/v1/traces");
        }
    }
    if url.ends_with("/v1") {
        format!("{url}/traces")
    } else {
        format!("{url}/v1/traces")
    }
}

/// `k=v,k2=v2` (the OTLP header list; values may contain `=`; percent-encoding is decoded as the
/// OpenTelemetry spec says).
fn parse_headers(list: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('=') else {
            // The entry may hold a credential: never echoed.
            return Err("an entry is not name=value".to_owned());
        };
        let name = name.trim();
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("`{name}` is not a header name"));
        }
        let value = percent_encoding::percent_decode_str(value.trim())
            .decode_utf8_lossy()
            .into_owned();
        if http::HeaderValue::from_str(&value).is_err() {
            // The value is a credential: never echoed.
            return Err(format!("the value of `{name}` is not a header value"));
        }
        out.push((name.to_owned(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> Result<OtelConfig, OtelConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OtelConfig::from_lookup(&move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn litellm_variables() {
        let c = cfg(&[
            ("OTEL_EXPORTER", "otlp_http"),
            ("OTEL_ENDPOINT", "https://api.honeycomb.io"),
            ("OTEL_HEADERS", "x-honeycomb-team=abc=def"),
            ("OTEL_SERVICE_NAME", "gw"),
        ])
        .unwrap();
        assert_eq!(c.exporter, Exporter::OtlpHttp);
        assert_eq!(c.endpoint, "https://api.honeycomb.io/v1/traces");
        assert_eq!(c.headers, [("x-honeycomb-team".into(), "abc=def".into())]);
        assert_eq!(c.service_name, "gw");
        assert_eq!(c.environment, "production");
        // Header values never show in Debug.
        assert!(!format!("{c:?}").contains("abc"));
    }

    #[test]
    fn standard_variables_win() {
        let c = cfg(&[
            ("OTEL_EXPORTER", "otlp_http"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://b:4317/"),
            ("OTEL_HEADERS", "a=1"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "b=2, c=%20x"),
        ])
        .unwrap();
        assert_eq!(c.exporter, Exporter::OtlpGrpc);
        assert_eq!(c.endpoint, "http://b:4317");
        assert_eq!(
            c.headers,
            [("b".into(), "2".into()), ("c".into(), " x".into())]
        );
    }

    #[test]
    fn defaults() {
        assert_eq!(cfg(&[]).unwrap().exporter, Exporter::Console);
        let c = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]).unwrap();
        assert_eq!(
            (c.exporter, c.endpoint.as_str()),
            (Exporter::OtlpHttp, "http://c:4318/v1/traces")
        );
        let c = cfg(&[("OTEL_EXPORTER", "grpc")]).unwrap();
        assert_eq!(c.endpoint, DEFAULT_GRPC_ENDPOINT);
        let c = cfg(&[("OTEL_EXPORTER", "http/json")]).unwrap();
        assert_eq!(c.endpoint, DEFAULT_HTTP_ENDPOINT);
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn traces_url_as_litellm() {
        for (given, want) in [
            ("http://c:4318", "http://c:4318/v1/traces"),
            ("http://c:4318/", "http://c:4318/v1/traces"),
            ("http://c:4318/v1", "http://c:4318/v1/traces"),
            ("http://c:4318/v1/traces", "http://c:4318/v1/traces"),
            ("http://c:4318/v1/logs", "http://c:4318/v1/traces"),
            ("http://c/otlp", "http://c/otlp/v1/traces"),
        ] {
            assert_eq!(traces_url(given), want, "{given}");
        }
    }

    #[test]
    fn bad_values_fail() {
        let e = cfg(&[("OTEL_EXPORTER", "zipkin")]).unwrap_err();
        assert_eq!(e.variable, "OTEL_EXPORTER");
        let e = cfg(&[("OTEL_ENDPOINT", "collector:4318")]).unwrap_err();
        assert_eq!(e.variable, "OTEL_ENDPOINT");
        let e = cfg(&[("OTEL_HEADERS", "novalue")]).unwrap_err();
        assert_eq!(e.variable, "OTEL_HEADERS");
        let e = cfg(&[("OTEL_HEADERS", "k=bad\u{7f}secret")]).unwrap_err();
        assert!(!e.reason.contains("secret"));
    }
}
