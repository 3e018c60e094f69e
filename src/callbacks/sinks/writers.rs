//! The three destinations: Langfuse's ingestion API, a generic HTTP webhook, a JSON-lines file.

use std::{path::PathBuf, sync::Arc, time::Duration};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use tower::ServiceExt as _;

use super::{
    payload::{langfuse_events, standard_logging_payload},
    queue::BatchWriter,
};
use crate::{callbacks::CallRecord, secret::Secret, upstream::HttpClient};

/// Time allowed for one batch's HTTP request (connect, send, answer).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

async fn post(
    client: &HttpClient,
    url: &str,
    headers: &[(String, Secret)],
    body: Vec<u8>,
) -> Result<(), String> {
    let mut req = http::Request::post(url).header(http::header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.expose());
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("bad request: {e}"))?;
    let call = async {
        let resp = client
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = resp.status();
        // Read the answer so that the connection can be reused.
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    };
    match tokio::time::timeout(HTTP_TIMEOUT, call).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {}s", HTTP_TIMEOUT.as_secs())),
    }
}

/// LiteLLM's `generic_api`: each batch is one POST of a JSON array of `StandardLoggingPayload`s.
#[derive(Debug)]
pub struct GenericApiWriter {
    client: HttpClient,
    endpoint: String,
    headers: Vec<(String, Secret)>,
}

impl GenericApiWriter {
    /// Posts to `endpoint` with `headers`.
    #[must_use]
    pub fn new(endpoint: String, headers: Vec<(String, Secret)>) -> Self {
        Self {
            client: HttpClient::new(),
            endpoint,
            headers,
        }
    }
}

impl BatchWriter for GenericApiWriter {
    async fn write(&mut self, batch: &[Arc<CallRecord>]) -> Result<(), String> {
        let items: Vec<_> = batch.iter().map(|r| standard_logging_payload(r)).collect();
        let body = serde_json::to_vec(&items).map_err(|e| e.to_string())?;
        post(&self.client, &self.endpoint, &self.headers, body).await
    }
}

/// Langfuse's public ingestion API: `POST {host}/api/public/ingestion` with basic auth
/// (public key, secret key) and `{"batch": [...]}` of trace and generation events.
#[derive(Debug)]
pub struct LangfuseWriter {
    client: HttpClient,
    url: String,
    headers: Vec<(String, Secret)>,
}

impl LangfuseWriter {
    /// Writes to the Langfuse at `host`.
    #[must_use]
    pub fn new(host: &str, public_key: &Secret, secret_key: &Secret) -> Self {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            public_key.expose(),
            secret_key.expose()
        ));
        Self {
            client: HttpClient::new(),
            url: format!("{}/api/public/ingestion", host.trim_end_matches('/')),
            headers: vec![(
                "authorization".to_owned(),
                Secret::new(format!("Basic {auth}")),
            )],
        }
    }
}

impl BatchWriter for LangfuseWriter {
    async fn write(&mut self, batch: &[Arc<CallRecord>]) -> Result<(), String> {
        let mut events = Vec::with_capacity(batch.len() * 2);
        for r in batch {
            langfuse_events(r, &mut events);
        }
        let body = serde_json::to_vec(&serde_json::json!({ "batch": events }))
            .map_err(|e| e.to_string())?;
        post(&self.client, &self.url, &self.headers, body).await
    }
}

/// A JSON-lines file: one `StandardLoggingPayload` per line, appended.
#[derive(Debug)]
pub struct JsonlWriter {
    path: PathBuf,
    file: Option<tokio::fs::File>,
}

impl JsonlWriter {
    /// Appends to `path` (created when missing).
    #[must_use]
    pub fn new(path: PathBuf) -> Self {
        Self { path, file: None }
    }
}

impl BatchWriter for JsonlWriter {
    async fn write(&mut self, batch: &[Arc<CallRecord>]) -> Result<(), String> {
        use tokio::io::AsyncWriteExt as _;
        let mut buf = Vec::with_capacity(batch.len() * 1024);
        for r in batch {
            serde_json::to_writer(&mut buf, &standard_logging_payload(r))
                .map_err(|e| e.to_string())?;
            buf.push(b'\n');
        }
        if self.file.is_none() {
            let f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
            self.file = Some(f);
        }
        let Some(f) = self.file.as_mut() else {
            return Err("file not open".to_owned());
        };
        let r = async {
            f.write_all(&buf).await?;
            f.flush().await
        }
        .await;
        if let Err(e) = r {
            // Reopen next time (the file may have been rotated away).
            self.file = None;
            return Err(format!("{}: {e}", self.path.display()));
        }
        Ok(())
    }
}
