//! Vertex AI service-account credentials end to end: a real hyper server on loopback plays both
//! Google's OAuth token endpoint and the Vertex `generateContent` endpoint. The token endpoint
//! verifies the RS256 JWT bearer assertion it receives (signature, issuer, audience, scope, times)
//! and answers with an access token and its `expires_in`; the tests assert that the token is cached
//! (one token request for several calls), refreshed once it is about to expire, and sent as
//! `Authorization: Bearer`.

// Test helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use llmgate::{
    provider::{lookup, Deployment, HttpClient, ProviderService},
    types::{chat::ChatRequest, ResponseBody},
    ErrorKind, LlmError, LlmRequest, LlmResponse,
};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// A 2048-bit RSA key made for this test only (PKCS#8), standing in for a service account key.
const TEST_PRIVATE_KEY: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCxRaLsjL7QljSy\n\
wJjvoisYxK9vQRqu0nm9iHiE602UShEyWW6V+ihiukYmba1jXxq0RkgRGdiywSUC\n\
WkqkRs8IhtjI9YQowplctxi/eND9NjwnzhFTntstasSncAgNIDE/pc8LP18NVFvF\n\
dO9HbSPEzqHat2gkhjhrS6fsyMmpFJ8VolA/3EPJgWpDx4fHgNxPa4SQFqjo/uw/\n\
I6acnzb2wYiPDN7Vwo0NOS3lbeDL0iW111ckomxgd3mPrwb6MwuIM3JUPZS6BFmn\n\
W76tXTFChD98jJotujf1Il8gPn+s/pDfh599aCFq3Q8A+Jg2SJGPqP0kDF7WtYjb\n\
Powx9mZvAgMBAAECggEAAwJIadUgMDz0cl3V9ygyAhJWzRUg+sKPCP3QnzTylOCb\n\
2nLfYScW59dtA4Gig/M5lN4X25ysMqltYY3lyXDRIZOH7MqhJ1wuq3CXf3HVJWR1\n\
/tHbUm6kkBNJXHNPvsjYYLV3Ys5unVEjodql+xVUjAoFnIBFOokI6R8YWKO2SBzH\n\
gzJY1fGrs9NFpO0pLIqS8xAkqXfHN3+xgrJwx6huC4K39JzYMZD/xoARw7YBTJE5\n\
ptn38t7rT9y54aOUGgDW8d4GJ6v3rGJ2GiBLNiWAVcFv3xAFv6E0AaGzlu+TbV52\n\
kM+oHSNx4n26rpEXGHC5LorMemb2bvssMAiA31QCQQKBgQDoI6H1kgP7/B01Zvy/\n\
8207XW7bJPnnBQ0awXAMoJeo+0/faQMx78HLW8iLJGs5ezr6F0czg5uRv0EptgXi\n\
fcx3j5S7zu84siGrmFBOF3EGQwuhDkM8V9nvLv28RXy+tzExrIB2cyCJeYt0fmsk\n\
CPT8PjPhQeMkVl3zRHI8enqoQQKBgQDDfkNKYzcwvRIK2v7ycknuEq7mpa7Jclrp\n\
TADrZDG2UhsjPGGhtMyT70ei5Ny65eRA8L6sKWzWsOdbl7XpKz2JT89hqHNEl041\n\
E7JqLmBnQoTC4byXvk+muFNUCjdVUhYO/DRfpGSV0n4lZHhVYg5wFxjYdWxGKWP1\n\
w4qAapTirwKBgQCXsNkfiCe0XJ2VjNOydtY1Cavr5bCrRoC2sBqRFcukr3wVCCD/\n\
W6VuRm64hbbPW/hA/j8XqXNZ/PkO0ZPs2blnk1pkkyd9C+G2qJQpQ2Ym6l7KAnDr\n\
GJkfk7xYb6vBUCIETK2xOS/UxajcGdPXO0cjIV5zXsOXthw0X9CqNnq6QQKBgGDl\n\
4KyqaNy7monO6rd5drOOhyrDzNME35LrnTkPvKRGJjVc5HemihB5deSD0/S/pleZ\n\
/KiRD+WKYeLAW+ZrDGFXMc+SEzBYXudoD/MZcac9DVkbUsNUDV7x1ju9pJehzFU5\n\
JSyS61hnsScPmaWYqNdeW25PJY/RTD6w4aGtMob5AoGAWU9vjJarCjOnr9OGAH61\n\
I4M2FrCC1V6FlSpWFl+zDiJ4LuXkgRt3ykok6zUoJfwYe602pqM4RtIJQ5c3ASTW\n\
QVtKQPYbsrG8pgLOHrqwrk8M+VcYxQB8ECu4WkI5UE9UYSGMl0Flf6fEulNnPdHX\n\
bpcGmV2QeWvHb1JPQ5DmIj8=\n\
-----END PRIVATE KEY-----\n";

/// Its public half (PKCS#1 `RSAPublicKey`), with which the fake token endpoint checks assertions.
const TEST_PUBLIC_KEY: &str = "\
-----BEGIN RSA PUBLIC KEY-----\n\
MIIBCgKCAQEAsUWi7Iy+0JY0ssCY76IrGMSvb0EartJ5vYh4hOtNlEoRMllulfoo\n\
YrpGJm2tY18atEZIERnYssElAlpKpEbPCIbYyPWEKMKZXLcYv3jQ/TY8J84RU57b\n\
LWrEp3AIDSAxP6XPCz9fDVRbxXTvR20jxM6h2rdoJIY4a0un7MjJqRSfFaJQP9xD\n\
yYFqQ8eHx4DcT2uEkBao6P7sPyOmnJ829sGIjwze1cKNDTkt5W3gy9IltddXJKJs\n\
YHd5j68G+jMLiDNyVD2UugRZp1u+rV0xQoQ/fIyaLbo39SJfID5/rP6Q34effWgh\n\
at0PAPiYNkiRj6j9JAxe1rWI2z6MMfZmbwIDAQAB\n\
-----END RSA PUBLIC KEY-----\n";

const CLIENT_EMAIL: &str = "llmgate-test@sa-project.iam.gserviceaccount.com";

/// What the fake Google server saw.
#[derive(Debug, Default)]
struct Seen {
    /// Claims of every accepted assertion.
    token_requests: Vec<Value>,
    /// Assertions refused, with why.
    rejected: Vec<String>,
    /// `(path, authorization)` of every generateContent call.
    calls: Vec<(String, String)>,
}

/// The fake server's behaviour and record.
#[derive(Debug)]
struct Google {
    addr: SocketAddr,
    seen: Mutex<Seen>,
    /// `expires_in` of the tokens it issues.
    expires_in: u64,
    /// Answer token requests with 400 invalid_grant.
    refuse: bool,
    /// Delay token answers (to let concurrent callers pile up).
    token_delay: Duration,
}

impl Google {
    fn token_uri(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn credentials(&self) -> Value {
        json!({
            "type": "service_account",
            "project_id": "sa-project",
            "private_key_id": "test-key-1",
            "private_key": TEST_PRIVATE_KEY,
            "client_email": CLIENT_EMAIL,
            "client_id": "1234567890",
            "token_uri": self.token_uri(),
        })
    }

    fn token_requests(&self) -> usize {
        self.seen.lock().unwrap().token_requests.len()
    }

    fn authorizations(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .calls
            .iter()
            .map(|(_, a)| a.clone())
            .collect()
    }
}

async fn start(expires_in: u64, refuse: bool, token_delay: Duration) -> Arc<Google> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let google = Arc::new(Google {
        addr: listener.local_addr().unwrap(),
        seen: Mutex::default(),
        expires_in,
        refuse,
        token_delay,
    });
    let g = google.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let g = g.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(g.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    google
}

async fn handle(
    g: Arc<Google>,
    req: http::Request<Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let reply = |status: u16, v: Value| {
        Ok(http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(v.to_string())))
            .unwrap())
    };
    if path == "/token" {
        tokio::time::sleep(g.token_delay).await;
        let form = String::from_utf8_lossy(&body).into_owned();
        let checked = if content_type == "application/x-www-form-urlencoded" {
            check_assertion(&form, &g.token_uri())
        } else {
            Err(format!("content-type {content_type}"))
        };
        let mut seen = g.seen.lock().unwrap();
        return match checked {
            Ok(claims) if !g.refuse => {
                seen.token_requests.push(claims);
                let n = seen.token_requests.len();
                reply(
                    200,
                    json!({"access_token": format!("ya29.token-{n}"), "expires_in": g.expires_in, "token_type": "Bearer"}),
                )
            }
            Ok(_) => reply(
                400,
                json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
            ),
            Err(why) => {
                seen.rejected.push(why.clone());
                reply(
                    400,
                    json!({"error": "invalid_grant", "error_description": why}),
                )
            }
        };
    }
    g.seen.lock().unwrap().calls.push((path, auth));
    reply(
        200,
        json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Bonjour"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4}
        }),
    )
}

/// Checks a JWT bearer grant as Google's token endpoint does; returns the assertion's claims.
fn check_assertion(form: &str, token_uri: &str) -> Result<Value, String> {
    let mut grant = None;
    let mut assertion = None;
    for pair in form.split('&') {
        match pair.split_once('=') {
            Some(("grant_type", v)) => grant = Some(v),
            Some(("assertion", v)) => assertion = Some(v),
            _ => {}
        }
    }
    if grant != Some("urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer") {
        return Err(format!("grant_type {grant:?}"));
    }
    let assertion = assertion.ok_or("no assertion")?;
    let mut pieces = assertion.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (pieces.next(), pieces.next(), pieces.next(), pieces.next())
    else {
        return Err("not a three-part JWT".into());
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: Value = serde_json::from_slice(&b64.decode(h).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let claims: Value = serde_json::from_slice(&b64.decode(c).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let signature = b64.decode(s).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" || header["typ"] != "JWT" || header["kid"] != "test-key-1" {
        return Err(format!("header {header}"));
    }
    let public = public_key_der();
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public)
        .verify(format!("{h}.{c}").as_bytes(), &signature)
        .map_err(|_| "bad signature".to_owned())?;
    if claims["iss"] != CLIENT_EMAIL
        || claims["aud"] != token_uri
        || claims["scope"] != "https://www.googleapis.com/auth/cloud-platform"
    {
        return Err(format!("claims {claims}"));
    }
    let (iat, exp) = (
        claims["iat"].as_u64().ok_or("no iat")?,
        claims["exp"].as_u64().ok_or("no exp")?,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if exp != iat + 3600 || iat > now + 60 || iat + 300 < now {
        return Err(format!("times iat {iat} exp {exp} now {now}"));
    }
    Ok(claims)
}

fn public_key_der() -> Vec<u8> {
    let b64: String = TEST_PUBLIC_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

fn deployment(g: &Google, credentials: Value) -> Arc<Deployment> {
    let mut dep =
        Deployment::new("vertex-flash", "vertex_ai/gemini-2.5-flash").with_api_base(g.base());
    dep.params.insert("vertex_credentials".into(), credentials);
    dep.params
        .insert("vertex_location".into(), "europe-west4".into());
    Arc::new(dep)
}

fn service(dep: Arc<Deployment>) -> ProviderService<HttpClient> {
    ProviderService::new(
        HttpClient::new(),
        lookup("vertex_ai").expect("vertex_ai is built in"),
        dep,
    )
}

async fn chat(svc: &ProviderService<HttpClient>) -> Result<LlmResponse, LlmError> {
    let body: ChatRequest = serde_json::from_value(json!({
        "model": "vertex-flash",
        "messages": [{"role": "user", "content": "Say hi in French."}]
    }))
    .unwrap();
    svc.clone().oneshot(LlmRequest::chat(body)).await
}

fn text(resp: LlmResponse) -> String {
    match resp.body {
        ResponseBody::Chat(c) => c.into_typed().unwrap().choices[0]
            .message
            .as_ref()
            .unwrap()
            .text(),
        other => panic!("expected a complete chat, got {other:?}"),
    }
}

#[tokio::test]
async fn service_account_token_is_fetched_cached_and_refreshed() {
    let g = start(3600, false, Duration::ZERO).await;
    let svc = service(deployment(&g, g.credentials()));

    assert_eq!(text(chat(&svc).await.unwrap()), "Bonjour");
    assert_eq!(text(chat(&svc).await.unwrap()), "Bonjour");
    assert_eq!(
        g.token_requests(),
        1,
        "the second call reuses the cached token"
    );
    assert_eq!(
        g.authorizations(),
        vec!["Bearer ya29.token-1", "Bearer ya29.token-1"]
    );
    {
        let seen = g.seen.lock().unwrap();
        assert!(seen.rejected.is_empty(), "{:?}", seen.rejected);
        // No vertex_project: the project comes from the credentials.
        assert_eq!(
            seen.calls[0].0,
            "/v1/projects/sa-project/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
        );
    }

    // Shortly before the hour is up the token counts as expired and is fetched again.
    tokio::time::pause();
    tokio::time::advance(
        Duration::from_secs(3600) - llmgate::provider::gemini::REFRESH_MARGIN
            + Duration::from_secs(1),
    )
    .await;
    tokio::time::resume();
    assert_eq!(text(chat(&svc).await.unwrap()), "Bonjour");
    assert_eq!(g.token_requests(), 2, "an expiring token is refreshed");
    assert_eq!(chat(&svc).await.map(text).unwrap(), "Bonjour");
    assert_eq!(g.token_requests(), 2);
    assert_eq!(
        g.authorizations()[2..],
        ["Bearer ya29.token-2", "Bearer ya29.token-2"]
    );
}

#[tokio::test]
async fn short_lived_token_is_kept_for_half_its_life() {
    let g = start(120, false, Duration::ZERO).await;
    let svc = service(deployment(&g, g.credentials()));
    chat(&svc).await.unwrap();
    chat(&svc).await.unwrap();
    assert_eq!(g.token_requests(), 1);
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(61)).await;
    tokio::time::resume();
    chat(&svc).await.unwrap();
    assert_eq!(g.token_requests(), 2);
}

#[tokio::test]
async fn concurrent_calls_share_one_token_request() {
    let g = start(3600, false, Duration::from_millis(100)).await;
    let svc = service(deployment(&g, g.credentials()));
    let (a, b, c) = tokio::join!(chat(&svc), chat(&svc), chat(&svc));
    a.unwrap();
    b.unwrap();
    c.unwrap();
    assert_eq!(g.token_requests(), 1);
}

#[tokio::test]
async fn credentials_as_json_string_and_file_path() {
    let g = start(3600, false, Duration::ZERO).await;
    let svc = service(deployment(&g, Value::String(g.credentials().to_string())));
    chat(&svc).await.unwrap();
    assert_eq!(g.token_requests(), 1);

    let path = std::env::temp_dir().join(format!(
        "llmgate-vertex-test-{}-{}.json",
        std::process::id(),
        g.addr.port()
    ));
    std::fs::write(&path, g.credentials().to_string()).unwrap();
    let svc = service(deployment(&g, Value::String(path.display().to_string())));
    let result = chat(&svc).await;
    let _ = std::fs::remove_file(&path);
    result.unwrap();
    // Another credential source is another cache entry.
    assert_eq!(g.token_requests(), 2);
    assert!(g.seen.lock().unwrap().rejected.is_empty());
}

#[tokio::test]
async fn refused_credentials_are_an_authentication_error() {
    let g = start(3600, true, Duration::ZERO).await;
    let svc = service(deployment(&g, g.credentials()));
    let err = chat(&svc).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert_eq!(err.status(), http::StatusCode::UNAUTHORIZED);
    assert!(err.message().contains("invalid_grant"), "{}", err.message());
    assert!(!err.message().contains("PRIVATE KEY"));
    assert!(
        g.authorizations().is_empty(),
        "no model call without a token"
    );
}

#[tokio::test]
async fn a_ready_access_token_skips_the_exchange() {
    let g = start(3600, false, Duration::ZERO).await;
    let mut dep = (*deployment(&g, g.credentials()))
        .clone()
        .with_api_key("ya29.static");
    dep.params
        .insert("vertex_project".into(), "explicit-project".into());
    let svc = service(Arc::new(dep));
    chat(&svc).await.unwrap();
    assert_eq!(g.token_requests(), 0);
    assert_eq!(g.authorizations(), vec!["Bearer ya29.static"]);
    assert!(g.seen.lock().unwrap().calls[0]
        .0
        .starts_with("/v1/projects/explicit-project/locations/europe-west4/"));
}

/// The `/vertex_ai/{path}` pass-through signs with the same service-account token: fetched once,
/// sent as `Authorization: Bearer`, the path and body sent as the client wrote them, the answer
/// relayed with the usage it states.
#[tokio::test]
async fn pass_through_calls_carry_the_service_account_token() {
    use futures_util::StreamExt as _;
    use llmgate::types::{
        passthrough::{Family, PassThroughRequest},
        Operation,
    };

    let g = start(3600, false, Duration::ZERO).await;
    let svc = service(deployment(&g, g.credentials()));
    let path = "v1/projects/p/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent";
    for _ in 0..2 {
        let mut pt =
            PassThroughRequest::new(Family::VertexAi, "vertex-flash", http::Method::POST, path);
        pt.body = Bytes::from_static(br#"{"contents":[]}"#);
        let req = LlmRequest::new(Operation::PassThrough(Arc::new(pt)));
        let resp = svc.clone().oneshot(req).await.unwrap();
        let ResponseBody::Events(mut events) = resp.body else {
            panic!("a pass-through answers with its body as events");
        };
        let (mut bytes, mut usage) = (Vec::new(), None);
        while let Some(e) = events.next().await {
            let e = e.unwrap();
            bytes.extend_from_slice(&e.frame);
            usage = e.usage.or(usage);
        }
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(answer["usageMetadata"]["totalTokenCount"], 4);
        assert_eq!(usage.map(|u| (u.input, u.output)), Some((3, 1)));
    }
    assert_eq!(g.token_requests(), 1, "one token for both calls");
    assert_eq!(
        g.authorizations(),
        vec!["Bearer ya29.token-1", "Bearer ya29.token-1"]
    );
    assert_eq!(g.seen.lock().unwrap().calls[0].0, format!("/{path}"));
}
