//! The access log: one `info` event per request, target `llmgate::access`, emitted when the
//! answer is complete (for a stream: when it ends, fails, or the client goes away).
//!
//! Fields: `method`, `route`, `model_group`, `deployment`, `status`, `latency_ms`,
//! `prompt_tokens`, `completion_tokens`, `total_tokens`, `cost`, `cache_hit` (answers of the model stack), `stream` (for
//! streams: `complete`, `error` or `client_closed`) and `call_id`; a field without a value is left
//! out. Never a key: the route of a management path with a key in it is logged as its template
//! (`/key/{key}/regenerate`), and query strings are never logged.
//!
//! Nothing is captured for the log unless the event is enabled (`RUST_LOG` lets `info` through
//! for `llmgate::access`), so turning it off (`RUST_LOG=info,llmgate::access=off`) costs a
//! request one callsite check.

use std::{borrow::Cow, sync::Arc, time::Instant};

use http::Method;

use crate::{cost::StreamTally, types::TokenUsage};

/// Whether access-log events are wanted right now.
#[inline]
pub(crate) fn enabled() -> bool {
    tracing::enabled!(target: "llmgate::access", tracing::Level::INFO)
}

/// What the edge knows about a request when it arrives.
#[derive(Debug)]
pub(crate) struct AccessLog {
    method: Method,
    route: Cow<'static, str>,
    call_id: Arc<str>,
    received: Instant,
    /// The model the body asked for (the model group when no deployment answered).
    model: Option<Box<str>>,
    /// A stream's usage and cost, from the cost layer.
    tally: Option<StreamTally>,
}

/// How a request ended.
#[derive(Debug, Default)]
pub(crate) struct Outcome<'a> {
    pub status: u16,
    pub model_group: Option<&'a str>,
    pub deployment: Option<&'a str>,
    pub usage: Option<TokenUsage>,
    pub cost: Option<f64>,
    pub cache_hit: Option<bool>,
    pub stream: Option<&'static str>,
}

impl AccessLog {
    /// The log of a request to `route`, received at `received`.
    pub(crate) fn new(
        method: Method,
        route: Cow<'static, str>,
        call_id: Arc<str>,
        received: Instant,
    ) -> Self {
        Self {
            method,
            route,
            call_id,
            received,
            model: None,
            tally: None,
        }
    }

    /// A request to a path the edge does not serve (management routes, unknown paths).
    pub(crate) fn for_path(method: Method, path: &str, call_id: Arc<str>) -> Self {
        Self::new(method, loggable_path(path), call_id, Instant::now())
    }

    /// Remembers the model the body asked for.
    pub(crate) fn set_model(&mut self, model: &str) {
        if !model.is_empty() {
            self.model = Some(model.into());
        }
    }

    /// The tally the cost layer fills for a streamed request (put it in the request's extensions).
    pub(crate) fn tally(&mut self) -> StreamTally {
        self.tally.get_or_insert_with(StreamTally::default).clone()
    }

    /// A stream's usage and cost, when the cost layer reported them.
    pub(crate) fn stream_totals(&self) -> Option<(Option<TokenUsage>, f64)> {
        self.tally.as_ref().and_then(StreamTally::get)
    }

    /// Emits the event.
    pub(crate) fn emit(&self, o: &Outcome<'_>) {
        // Whole microseconds, so the number prints short (`0.68619`, not `0.6861900000000001`).
        let latency_ms = self.received.elapsed().as_micros() as f64 / 1000.0;
        let model_group = o.model_group.or(self.model.as_deref());
        let usage = o.usage;
        tracing::info!(
            target: "llmgate::access",
            method = self.method.as_str(),
            route = &*self.route,
            model_group,
            deployment = o.deployment,
            status = o.status,
            latency_ms,
            prompt_tokens = usage.map(|u| u.input),
            completion_tokens = usage.map(|u| u.output),
            total_tokens = usage.map(|u| u.total()),
            cost = o.cost,
            cache_hit = o.cache_hit,
            stream = o.stream,
            call_id = &*self.call_id,
            "request"
        );
    }
}

/// `path` for the log: management paths that carry a key (`/key/{key}/regenerate`) as their
/// template, any other segment that looks like a key (`sk-…`, or longer than 64 characters)
/// masked.
fn loggable_path(path: &str) -> Cow<'static, str> {
    let segments: Vec<&str> = path.split('/').collect();
    if let ["", "key", _, "regenerate"] = segments.as_slice() {
        return Cow::Borrowed("/key/{key}/regenerate");
    }
    let looks_secret =
        |s: &str| s.len() > 64 || s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("sk-"));
    if !segments.iter().any(|s| looks_secret(s)) {
        return Cow::Owned(path.to_owned());
    }
    Cow::Owned(
        segments
            .iter()
            .map(|s| if looks_secret(s) { "*****" } else { s })
            .collect::<Vec<_>>()
            .join("/"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_keys_are_not_logged() {
        assert_eq!(
            loggable_path("/key/sk-abcdef0123456789/regenerate"),
            "/key/{key}/regenerate"
        );
        assert_eq!(loggable_path("/key/info"), "/key/info");
        assert_eq!(loggable_path("/oops/sk-secret-1234/x"), "/oops/*****/x");
        assert_eq!(loggable_path("/SK-SECRET"), "/*****");
        let long = format!("/a/{}", "x".repeat(65));
        assert_eq!(loggable_path(&long), "/a/*****");
        assert_eq!(loggable_path("/"), "/");
        assert_eq!(loggable_path(""), "");
    }
}
