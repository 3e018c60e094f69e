//! A running llmgate gateway on a loopback port, and a small HTTP client for tests.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use llmgate::{
    clock::Clock,
    config::Config,
    gateway::Gateway,
    governance::BuildOptions,
    provider::{HttpClient, Providers},
    server::{serve, ServeConfig},
};

/// A gateway served on 127.0.0.1:PORT until dropped.
pub struct TestGateway {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestGateway {
    /// Serves `yaml` (a LiteLLM config), with an optional request body limit.
    pub async fn start(yaml: &str) -> Self {
        Self::start_with(yaml, None).await
    }

    pub async fn start_with(yaml: &str, max_body: Option<usize>) -> Self {
        Self::start_full(yaml, max_body, Clock::system()).await
    }

    /// Serves `yaml` on `clock` (a [`Clock::manual`] the test steps).
    pub async fn start_on(yaml: &str, clock: &Clock) -> Self {
        Self::start_full(yaml, None, clock.clone()).await
    }

    async fn start_full(yaml: &str, max_body: Option<usize>, clock: Clock) -> Self {
        let loaded = Config::from_yaml_str(yaml, "test").unwrap_or_else(|e| panic!("config: {e}"));
        let gateway = Gateway::from_config_opts(
            &loaded.config,
            &HttpClient::new(),
            &BuildOptions::default().clock(clock),
            Providers::builtin(),
        );
        let mut server = gateway.server();
        if let Some(limit) = max_body {
            server = server.max_body_bytes(limit);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            server,
            ServeConfig::default().grace_period(Duration::from_secs(5)),
            async {
                let _ = rx.await;
            },
        ));
        Self {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Starts graceful shutdown; returns the serve task to await.
    pub fn shutdown(&mut self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("shutdown once")
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A config with one OpenAI deployment pointing at `upstream` (a fake provider's base URL).
pub fn openai_config(group: &str, upstream: &str) -> String {
    format!(
        "model_list:\n  - model_name: {group}\n    litellm_params:\n      model: openai/upstream-model\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\n"
    )
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `data:` payloads of an SSE body.
    pub fn sse_data(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.body)
            .split("\n\n")
            .filter_map(|ev| ev.strip_prefix("data: ").map(str::to_owned))
            .collect()
    }

    /// Asserts the body is the OpenAI error JSON with all four fields; returns the error object.
    pub fn error(&self) -> serde_json::Value {
        let v = self.json();
        let e = v
            .get("error")
            .unwrap_or_else(|| panic!("no error object: {v}"))
            .clone();
        for field in ["message", "type", "param", "code"] {
            assert!(e.get(field).is_some(), "error.{field} missing in {v}");
        }
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "empty message: {v}"
        );
        e
    }
}

impl Answer {
    /// Asserts the body is the error JSON of `dialect` (`"openai"`, `"anthropic"`, `"google"`,
    /// `"bedrock"`, `"ollama"`: the error shape of the provider a pass-through route names), with
    /// a message; returns `{"message", "type"}`: the type as that dialect names it (Anthropic's
    /// `error.type`, Google's `error.status`, Bedrock's `x-amzn-errortype`, OpenAI's `type`).
    pub fn error_in(&self, dialect: &str) -> serde_json::Value {
        let v = self.json();
        let (message, kind) = match dialect {
            "openai" => {
                let e = self.error();
                (e["message"].clone(), e["type"].clone())
            }
            "anthropic" => {
                assert_eq!(v["type"], "error", "{v}");
                (v["error"]["message"].clone(), v["error"]["type"].clone())
            }
            "google" => {
                assert_eq!(v["error"]["code"], self.status, "{v}");
                (v["error"]["message"].clone(), v["error"]["status"].clone())
            }
            "bedrock" => {
                let t = self
                    .headers
                    .get("x-amzn-errortype")
                    .map(|t| t.to_str().unwrap().to_owned());
                (
                    v["message"].clone(),
                    serde_json::json!(t.expect("x-amzn-errortype")),
                )
            }
            "ollama" => (v["error"].clone(), serde_json::Value::Null),
            other => panic!("unknown dialect {other}"),
        };
        assert!(
            message.as_str().is_some_and(|m| !m.is_empty()),
            "no message in the {dialect} error: {v}"
        );
        if dialect != "ollama" {
            assert!(kind.as_str().is_some_and(|k| !k.is_empty()), "no type: {v}");
        }
        serde_json::json!({"message": message, "type": kind})
    }
}

pub async fn send(req: http::Request<Full<Bytes>>) -> Answer {
    let resp = client().request(req).await.expect("gateway reachable");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

pub async fn post(url: &str, body: impl Into<Bytes>) -> Answer {
    send(
        http::Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(body.into()))
            .unwrap(),
    )
    .await
}

pub async fn post_json(url: &str, body: &serde_json::Value) -> Answer {
    post(url, serde_json::to_vec(body).unwrap()).await
}

/// Opens a streaming request and returns the response with its body unread.
pub async fn open_stream(url: &str, body: &serde_json::Value) -> http::Response<Incoming> {
    client()
        .request(
            http::Request::post(url)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
                .unwrap(),
        )
        .await
        .expect("gateway reachable")
}
