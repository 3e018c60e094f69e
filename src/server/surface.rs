//! LiteLLM's answers at the edge that are about the request surface rather than a call: the
//! invalid-model error every model route gives for a model the gateway does not serve (or none),
//! and `GET /v1/models/{model_id}` (OpenAI's `models.retrieve`) answered from the caller's model
//! list.
//!
//! The router reports an unknown model as [`ErrorKind::NotFound`] (code `model_not_found`), and
//! the layers keep deciding on that kind (a fallback group may serve it); only what the client
//! sees is LiteLLM's: status 400 and `{route}: Invalid model name passed in model={model}. Call
//! `/v1/models` to view available models for your key.` (`ProxyModelNotFoundError` in LiteLLM's
//! `proxy/route_llm_request.py`), with the call id, as every answer has.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;

use super::service::Route;
use crate::{
    error::{ErrorKind, LlmError},
    types::{extensions::RequestTimeout, JsonBody, LlmRequest, LlmResponse, ResponseBody},
};

/// Settings of the edge read from LiteLLM's `general_settings`
/// ([`OpenAiServer::edge_settings`](super::OpenAiServer::edge_settings)).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct EdgeSettings {
    /// `general_settings.moderation_model`: the model group every `POST /v1/moderations` goes
    /// to, as LiteLLM's proxy sets it (it wins over the body's `model`; a body without one is
    /// served by it).
    pub moderation_model: Option<Arc<str>>,
    /// `general_settings.litellm_exception_prefix` (llmgate's own): write LiteLLM's
    /// `litellm.<Class>: ` prefix into the `message` of the errors LiteLLM raises as its
    /// exception classes (those the model call raised: see
    /// [`ErrorMeta::raised_by_call`](crate::error::ErrorMeta::raised_by_call)).
    pub litellm_exception_prefix: bool,
}

impl EdgeSettings {
    /// Settings with the default moderation model `model` (`None`: none).
    #[must_use]
    pub fn moderation_model(mut self, model: Option<&str>) -> Self {
        self.moderation_model = model.filter(|m| !m.is_empty()).map(Arc::from);
        self
    }

    /// Settings that write LiteLLM's exception-class prefix (default: off).
    #[must_use]
    pub fn litellm_exception_prefix(mut self, on: bool) -> Self {
        self.litellm_exception_prefix = on;
        self
    }
}

/// `err` with LiteLLM's `litellm.<Class>: ` prefix in its message when the model call raised
/// it (LiteLLM's exception classes set `message = "litellm.<Class>: …"` and its proxy writes
/// that `message`); a refusal of the gateway itself keeps its message, as LiteLLM's
/// `HTTPException`s do.
pub(super) fn litellm_prefix(err: &mut LlmError) {
    if !err.meta().raised_by_call || err.message().starts_with("litellm.") {
        return;
    }
    let message = format!("litellm.{}: {}", err.litellm_class(), err.message());
    err.set_message(message);
}

/// The route as LiteLLM names it in its invalid-model error (`ROUTE_ENDPOINT_MAPPING`).
pub(super) fn litellm_route(route: Route) -> &'static str {
    match route {
        Route::Chat => "/chat/completions",
        Route::Completions => "/completions",
        Route::Embeddings => "/embeddings",
        Route::Moderations => "/moderations",
        Route::ImageGenerations => "/images/generations",
        Route::ImageEdits => "/images/edits",
        Route::AudioTranscriptions => "/audio/transcriptions",
        Route::AudioTranslations => "/audio/translations",
        Route::AudioSpeech => "/audio/speech",
        Route::Rerank => "/rerank",
        other => other.as_str(),
    }
}

/// LiteLLM's invalid-model error for `model` on `route`.
fn invalid_model(route: Route, model: &str) -> LlmError {
    LlmError::new(
        ErrorKind::BadRequest,
        format!(
            "{}: Invalid model name passed in model={model}. Call `/v1/models` to view available models for your key.",
            litellm_route(route)
        ),
    )
    .with_param("model")
    .with_code("model_not_found")
}

/// `err` as the client sees it: the router's unknown-model error (no provider named it) becomes
/// LiteLLM's 400 for the model asked for, keeping the error's headers; any other error is
/// unchanged (a provider's own 404 for a model it lacks stays the provider's answer).
pub(super) fn litellm_model_error(route: Route, model: &str, err: LlmError) -> LlmError {
    let unknown = err.kind() == ErrorKind::NotFound
        && err.code() == Some("model_not_found")
        && err.provider().is_none();
    if !unknown {
        return err;
    }
    let mut out = invalid_model(route, model);
    *out.headers_mut() = err.headers().clone();
    *out.meta_mut() = *err.meta();
    // LiteLLM's proxy raises it itself (an `HTTPException`): no exception-class prefix.
    out.meta_mut().raised_by_call = false;
    out
}

/// The members of a body the invalid-model check reads.
#[derive(Deserialize)]
struct ModelProbe {
    /// `None`: absent; `Some(Value::Null)`: `null` (a plain `Option` would read both as `None`).
    #[serde(default, deserialize_with = "present")]
    model: Option<serde_json::Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// How LiteLLM's invalid-model message names the model of a body that names none, when `err`
/// (the body's parse error) comes from that: `""` for an absent `model` (also a multipart
/// upload without one), `"None"` for `null`. `None` when the body names a model or `err` is about
/// something else. Read only on this error path.
pub(super) fn missing_model(route: Route, body: &Bytes, err: &LlmError) -> Option<&'static str> {
    if err.kind() != ErrorKind::BadRequest {
        return None;
    }
    if route.upload_kind().is_some() {
        return (err.param() == Some("model") && err.message() == "model: Field required")
            .then_some("");
    }
    match serde_json::from_slice::<ModelProbe>(body) {
        Ok(ModelProbe { model: None }) => Some(""),
        Ok(ModelProbe {
            model: Some(serde_json::Value::Null),
        }) => Some("None"),
        _ => None,
    }
}

/// How LiteLLM's invalid-model message names the model of a body that parsed with an empty one:
/// `"None"` when the body sent `null`, else `""`. Read only on that path.
pub(super) fn shown_missing(body: &Bytes) -> &'static str {
    match serde_json::from_slice::<ModelProbe>(body) {
        Ok(ModelProbe {
            model: Some(serde_json::Value::Null),
        }) => "None",
        _ => "",
    }
}

/// LiteLLM's invalid-model error for a body that names no model (`shown` as
/// [`missing_model`] gives it): what the edge answers when it cannot build the request to send
/// through the stack.
pub(super) fn model_missing_error(route: Route, shown: &str) -> LlmError {
    invalid_model(route, shown)
}

/// `body` (a JSON object) with `"model": ""`: the request a body naming no model makes, to go
/// through the stack and be refused there. `None` when it is not an object.
pub(super) fn with_empty_model(body: &Bytes) -> Option<Bytes> {
    let mut map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    map.insert("model".to_owned(), serde_json::Value::String(String::new()));
    serde_json::to_vec(&map).ok().map(Bytes::from)
}

/// The least body of a JSON route with `"model": ""`, for a body that names no model and lacks
/// more (LiteLLM checks the model first, so its answer is the invalid-model error all the same).
pub(super) fn placeholder_body(route: Route) -> &'static [u8] {
    match route {
        Route::Chat => br#"{"model":"","messages":[]}"#,
        Route::Completions => br#"{"model":"","prompt":""}"#,
        Route::Embeddings => br#"{"model":"","input":""}"#,
        Route::Moderations => br#"{"model":"","input":""}"#,
        Route::ImageGenerations => br#"{"model":"","prompt":""}"#,
        Route::AudioSpeech => br#"{"model":"","input":"","voice":""}"#,
        Route::Rerank => br#"{"model":"","query":"","documents":[]}"#,
        Route::Messages | Route::CountTokens => br#"{"model":"","messages":[],"max_tokens":1}"#,
        _ => br#"{"model":""}"#,
    }
}

/// The answer of `GET /v1/models/{id}` made from the caller's model list `resp` (already
/// filtered by its access): the model object, or OpenAI's 404 for a model that is not in it.
pub(super) fn retrieve_model(resp: LlmResponse, id: &str) -> Result<LlmResponse, LlmError> {
    let LlmResponse { body, meta } = resp;
    let ResponseBody::Models(list) = body else {
        return Err(LlmError::internal(
            "the model listing answered something else",
        ));
    };
    let Some(model) = list.data.iter().find(|m| m.id == id) else {
        return Err(LlmError::new(
            ErrorKind::NotFound,
            format!("The model `{id}` does not exist or is not accessible"),
        )
        .with_status(StatusCode::NOT_FOUND)
        .with_code("model_not_found"));
    };
    let bytes = serde_json::to_vec(model)
        .map_err(|e| LlmError::internal(format!("cannot write the model: {e}")))?;
    let mut out = LlmResponse::json(JsonBody::new(Bytes::from(bytes)));
    out.meta = meta;
    Ok(out)
}

/// The plain route path of `/openai/v1/{route}` (an OpenAI client with `base_url` `…/openai/v1`,
/// as Azure's v1 API is called): `/v1/{route}` when it names one of the gateway's model routes.
/// The Responses routes always (LiteLLM serves `/openai/v1/responses…` itself); chat,
/// completions, embeddings, moderations and models only when the OpenAI pass-through is not
/// served (`pass_through_served`), since LiteLLM relays those to OpenAI through it. Anything else
/// under `/openai/` is left to the pass-through routes.
pub(super) fn openai_v1_route(path: &str, pass_through_served: bool) -> Option<&str> {
    let rest = path.strip_prefix("/openai")?;
    if !rest.starts_with("/v1/") {
        return None;
    }
    match Route::from_path(rest)? {
        Route::Responses
        | Route::ResponseById
        | Route::ResponseInputItems
        | Route::ResponseCancel => Some(rest),
        Route::PassThrough(_) | Route::Liveliness | Route::Readiness => None,
        _ => (!pass_through_served).then_some(rest),
    }
}

/// `uri` with its path replaced by `path` (its query kept); `None` if that is not a URI.
pub(super) fn with_path(uri: &http::Uri, path: &str) -> Option<http::Uri> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    pq.parse().ok()
}

/// The timeout the request set, in seconds: the `x-litellm-timeout` header, else the body's
/// `stream_timeout` (a stream), `timeout` or `request_timeout`.
pub(super) fn requested_timeout(req: &LlmRequest) -> Option<f64> {
    if let Some(t) = req.extensions.get::<RequestTimeout>() {
        return Some(t.0.as_secs_f64());
    }
    let c = req.controls();
    req.is_stream()
        .then_some(c.stream_timeout)
        .flatten()
        .or(c.timeout)
        .or(c.request_timeout)
}

/// On a timeout error, LiteLLM's `x-litellm-timeout` header: the timeout the request set (its
/// proxy echoes the timeout the call ran under). Nothing for other errors, or when the request
/// set none (the deployment's or the default timeout applied).
pub(super) fn echo_timeout(err: &mut LlmError, timeout: Option<f64>) {
    let Some(secs) = timeout.filter(|_| err.kind() == ErrorKind::Timeout) else {
        return;
    };
    if let Ok(v) = http::HeaderValue::from_str(&secs.to_string()) {
        err.headers_mut()
            .insert(super::headers::X_LITELLM_TIMEOUT, v);
    }
}

/// `s` with its `%XX` escapes decoded (a malformed escape is kept as written; bytes that are not
/// UTF-8 become U+FFFD).
pub(super) fn percent_decode(s: &str) -> Box<str> {
    if !s.contains('%') {
        return s.into();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                // Two hex digits: at most 255.
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::models::ModelList;

    #[test]
    fn openai_v1_paths_name_the_plain_routes() {
        assert_eq!(
            openai_v1_route("/openai/v1/chat/completions", false),
            Some("/v1/chat/completions")
        );
        assert_eq!(openai_v1_route("/openai/v1/chat/completions", true), None);
        assert_eq!(
            openai_v1_route("/openai/v1/embeddings", false),
            Some("/v1/embeddings")
        );
        assert_eq!(
            openai_v1_route("/openai/v1/models/a%2Fb", false),
            Some("/v1/models/a%2Fb")
        );
        assert_eq!(
            openai_v1_route("/openai/v1/responses/r1", true),
            Some("/v1/responses/r1")
        );
        assert_eq!(openai_v1_route("/openai/v1/files", false), None);
        assert_eq!(openai_v1_route("/openai/chat/completions", false), None);
        assert_eq!(openai_v1_route("/v1/chat/completions", false), None);
        let uri: http::Uri = "/openai/v1/chat/completions?api-version=preview"
            .parse()
            .unwrap();
        assert_eq!(
            with_path(&uri, "/v1/chat/completions").unwrap(),
            "/v1/chat/completions?api-version=preview"
        );
    }

    #[test]
    fn decodes_percent_escapes_and_keeps_malformed_ones() {
        assert_eq!(&*percent_decode("openai%2Fgpt-4o"), "openai/gpt-4o");
        assert_eq!(&*percent_decode("a%20b%"), "a b%");
        assert_eq!(&*percent_decode("%zz%4"), "%zz%4");
        assert_eq!(&*percent_decode("plain"), "plain");
        assert_eq!(&*percent_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn only_the_routers_unknown_model_becomes_litellms_400() {
        let router = LlmError::new(ErrorKind::NotFound, "no")
            .with_param("model")
            .with_code("model_not_found");
        let e = litellm_model_error(Route::Chat, "gpt-9", router);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            e.message(),
            "/chat/completions: Invalid model name passed in model=gpt-9. Call `/v1/models` to view available models for your key."
        );
        let upstream = LlmError::new(ErrorKind::NotFound, "no such model")
            .with_code("model_not_found")
            .with_provider("openai");
        let e = litellm_model_error(Route::Chat, "g", upstream);
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_body_without_a_model_is_told_apart() {
        let parse = LlmError::bad_request("missing field `model`");
        let body = Bytes::from_static(b"{\"input\":\"x\"}");
        assert_eq!(missing_model(Route::Embeddings, &body, &parse), Some(""));
        let body = Bytes::from_static(b"{\"model\":null,\"input\":\"x\"}");
        assert_eq!(
            missing_model(Route::Embeddings, &body, &parse),
            Some("None")
        );
        assert!(model_missing_error(Route::Embeddings, "")
            .message()
            .starts_with("/embeddings: Invalid model name passed in model=."));
        let parse = LlmError::bad_request("missing field `messages`");
        let body = Bytes::from_static(b"{\"model\":\"g\"}");
        assert_eq!(missing_model(Route::Chat, &body, &parse), None);
        let parse = LlmError::bad_request("bad");
        assert_eq!(
            missing_model(Route::Chat, &Bytes::from_static(b"[1]"), &parse),
            None
        );
        let upload = LlmError::bad_request("model: Field required").with_param("model");
        assert_eq!(
            missing_model(Route::AudioTranscriptions, &Bytes::new(), &upload),
            Some("")
        );
        let patched = with_empty_model(&Bytes::from_static(b"{\"input\":\"x\"}")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&patched).unwrap();
        assert_eq!(v, serde_json::json!({"input": "x", "model": ""}));
        assert!(with_empty_model(&Bytes::from_static(b"[1]")).is_none());
    }

    #[test]
    fn prefixes_only_errors_the_call_raised() {
        let mut upstream = LlmError::new(ErrorKind::RateLimit, "Rate limit reached");
        upstream.meta_mut().raised_by_call = true;
        litellm_prefix(&mut upstream);
        assert_eq!(
            upstream.message(),
            "litellm.RateLimitError: Rate limit reached"
        );
        // Once only.
        litellm_prefix(&mut upstream);
        assert_eq!(
            upstream.message(),
            "litellm.RateLimitError: Rate limit reached"
        );
        let mut refused = LlmError::new(ErrorKind::RateLimit, "key over its rpm");
        litellm_prefix(&mut refused);
        assert_eq!(refused.message(), "key over its rpm");
        let mut router = LlmError::new(ErrorKind::NotFound, "no").with_code("model_not_found");
        router.meta_mut().raised_by_call = true;
        let mut e = litellm_model_error(Route::Chat, "x", router);
        litellm_prefix(&mut e);
        assert!(e
            .message()
            .starts_with("/chat/completions: Invalid model name"));
    }

    #[test]
    fn retrieves_a_listed_model_or_answers_404() {
        let list = || LlmResponse {
            body: ResponseBody::Models(Box::new(ModelList::new(["a", "openai/b"], 7))),
            meta: Box::default(),
        };
        let got = retrieve_model(list(), "openai/b").unwrap();
        let ResponseBody::Json(j) = got.body else {
            panic!("not JSON")
        };
        let v: serde_json::Value = serde_json::from_slice(&j.bytes).unwrap();
        assert_eq!(v["id"], "openai/b");
        assert_eq!(v["object"], "model");
        let err = retrieve_model(list(), "c").unwrap_err();
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
        assert_eq!(err.code(), Some("model_not_found"));
    }
}
