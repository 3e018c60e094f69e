//! Cost: usage × price → the call's cost in USD, the `x-litellm-response-cost` header and one
//! spend-log row per call.
//!
//! # Pricing
//!
//! [`PriceTable::builtin`] is LiteLLM's published `model_prices_and_context_window` map (from the
//! `litellm` wheel on PyPI, version in [`BUILTIN_PRICES_SOURCE`]) reduced to the fields of
//! [`ModelPrice`]: per-token input, output, cached-input and reasoning prices and context limits.
//! It is built into the binary gzipped ([`BUILTIN_PRICES_GZ`], written by
//! `scripts/update-model-prices.py`) and inflated once, on first use (3–4 ms in a release build),
//! then shared. A file in the same format ([`PriceTable::from_json`]) can be merged over it at
//! start; a deployment's own prices (`input_cost_per_token`, `output_cost_per_token`,
//! `cache_read_input_token_cost`, `output_cost_per_reasoning_token`, `input_cost_per_query` in `litellm_params` or
//! `model_info`) override both.
//!
//! Lookup for a deployment `provider/model`: `model_info.base_model`, then `provider/model`, then
//! `model`, then `model` without a Bedrock region prefix (`us.`, `eu.`, `apac.`, `global.`).
//! A deployment with no input or output price costs 0 and is listed by [`Pricing::unpriced`]. A
//! wildcard deployment (`openai/*`) is priced per call by the model it called
//! ([`Pricing::cost_of`], from [`ResponseMeta::deployment`](crate::types::ResponseMeta::deployment)).
//!
//! Cost = uncached input × input price + cached input × cached price + (output − reasoning) ×
//! output price + reasoning × reasoning price (output price when not set) + rerank search units
//! × `input_cost_per_query` (Cohere's rerank, as LiteLLM prices it).
//!
//! # Streams
//!
//! For a streamed chat, the layer asks the provider for usage (`stream_options.include_usage`) and
//! wraps the stream once: the usage chunk is read, and removed when the client did not ask for it.
//! The cost and the spend row are written when the stream ends, or when it is dropped (a client that
//! disconnects). The `x-litellm-response-cost` header needs the cost before the body, so it is only
//! on complete responses; a stream's cost is in its spend-log row.
//!
//! # Calls cut short
//!
//! A call is paid for what it used even when it does not finish. A stream that is dropped before
//! its end (the client went away, or the server's shutdown grace period ran out), or that ends
//! with an upstream error, is charged the usage the upstream reported if its usage chunk had
//! already passed, else an estimate: the prompt (estimated when the call starts) and the text
//! the stream delivered (its deltas' bytes, counted as chunks pass). A call that is not a stream
//! and whose response future is dropped (the same causes) is charged its estimated prompt. The
//! estimate is `ceil(bytes / 4)` tokens for text (OpenAI's rule of thumb for English; for
//! scripts of 2–4 UTF-8 bytes a character it stays close to their tokenizers' counts too) plus
//! 3 tokens per prompt message (OpenAI's per-message framing); see [`estimate_tokens`] and
//! [`estimate_prompt_tokens`]. A cut call whose deployment is not known yet is priced at the
//! dearest deployment of its model group.
//!
//! The spend row says why: [`STATUS_CLIENT_CLOSED`] when the client went away,
//! [`STATUS_CUT_AT_SHUTDOWN`] when the server cut it after its grace period
//! ([`grace_over`](crate::server::grace_over)), `failure` when the upstream failed mid-stream.
//! The same usage reaches the rate limiter's tpm ([`UsageReport`]), the budget ledger (through
//! the spend log) and the access log ([`StreamTally`]).
//!
//! Place in the default order: after budget (a refused call costs nothing), before the cache (a hit
//! is logged at zero cost).
//!
//! Extensions read: [`KeyInfo`](crate::auth::KeyInfo) (as `Arc<KeyInfo>`),
//! [`CallId`](crate::server::CallId), [`UsageReport`] (filled with the call's total tokens),
//! [`StreamTally`] (a stream's usage and cost, for the access log).
//! Errors: none of its own.
//!
//! ```
//! use std::sync::Arc;
//! use llmgate::cost::{CostLayer, Pricing, PriceTable};
//! use llmgate::provider::Deployment;
//!
//! // Default: the built-in table, no spend log.
//! let dep = Deployment::new("gpt", "openai/gpt-4o-mini");
//! let pricing = Pricing::new(&PriceTable::builtin(), [&dep]);
//! let layer = CostLayer::new(Arc::new(pricing));
//! # let _ = layer;
//!
//! // Customised: a LiteLLM-format file merged over the built-in table.
//! let mut table = PriceTable::builtin();
//! table.merge(PriceTable::from_json(r#"{"my-model": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}"#).unwrap());
//! assert!(table.get("my-model").is_some());
//! ```

//!
//! # Files
//!
//! - `pricing.rs`: [`ModelPrice`], [`PriceTable`] (the built-in table and LiteLLM price files)
//!   and [`Pricing`] (prices resolved per deployment);
//! - `service.rs`: [`CostLayer`] and [`Cost`], the per-call context and the response future;
//! - `stream.rs`: the stream observer that reads usage and logs a stream's cost at its end;
//! - here: the token estimates for calls cut short, and the extensions the layer fills
//!   ([`UsageReport`], [`StreamTally`]).

use std::sync::Arc;

use crate::types::TokenUsage;

mod pricing;
mod service;
mod stream;

pub use self::{
    pricing::{ModelPrice, PriceTable, Pricing, BUILTIN_PRICES_GZ, BUILTIN_PRICES_SOURCE},
    service::{Cost, CostLayer, ResponseFuture},
};

/// The spend-log `status` of a call the client abandoned before it finished (a stream the client
/// stopped reading, a call whose connection closed). LiteLLM writes only `success` and
/// `failure`; its proxy answers a client that disconnected with 499 "Client disconnected the
/// request", hence the name (nginx's 499 is "client closed request").
pub const STATUS_CLIENT_CLOSED: &str = "client_closed";

/// The spend-log `status` of a call still running when the server's shutdown grace period ended.
pub const STATUS_CUT_AT_SHUTDOWN: &str = "cut_at_shutdown";

pub use crate::types::{chat::estimate_prompt_tokens, usage::estimate_tokens};

/// The status of a call dropped before it finished: cut at shutdown once the grace period is
/// over, else abandoned by its client.
fn cut_status() -> &'static str {
    if crate::types::extensions::grace_over() {
        STATUS_CUT_AT_SHUTDOWN
    } else {
        STATUS_CLIENT_CLOSED
    }
}

/// A streamed call's usage and cost, set once by the cost layer when the stream ends (or is
/// dropped). The edge puts it in the request extensions of a streamed request when it writes the
/// access log, and reads it when the stream is over.
#[derive(Clone, Debug, Default)]
pub struct StreamTally(Arc<std::sync::OnceLock<(Option<TokenUsage>, f64)>>);

impl StreamTally {
    /// The usage and cost (USD), once the stream is over.
    #[must_use]
    pub fn get(&self) -> Option<(Option<TokenUsage>, f64)> {
        self.0.get().map(|(u, c)| (*u, *c))
    }
}

pub use crate::types::extensions::UsageReport;

#[cfg(test)]
mod tests {
    use std::{future::Future, pin::Pin, task::Context};

    use tower_layer::Layer;
    use tower_service::Service;

    use super::*;
    use crate::{
        error::LlmError,
        provider::Deployment,
        types::{ChunkBody, LlmRequest, LlmResponse, ResponseBody},
    };

    #[test]
    fn estimates_are_a_quarter_of_the_bytes_plus_framing() {
        use crate::types::chat::{Content, ContentPart, Message};
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(1), 1);
        assert_eq!(estimate_tokens(4), 1);
        assert_eq!(estimate_tokens(5), 2);
        // "hi": ceil(2 / 4) + 3.
        assert_eq!(estimate_prompt_tokens(&[Message::new("user", "hi")]), 4);
        // 40 bytes over two messages (one in parts): 10 + 2 × 3.
        let mut parts = Message::new("user", "");
        parts.content = Some(Content::Parts(vec![
            ContentPart::text("a".repeat(12)),
            ContentPart::text("b".repeat(8)),
        ]));
        let msgs = [Message::new("system", "s".repeat(20)), parts];
        assert_eq!(estimate_prompt_tokens(&msgs), 16);
        assert_eq!(estimate_prompt_tokens(&[]), 0);
    }

    fn cut_stack(
        chunks: Option<Vec<&'static str>>,
    ) -> Cost<
        impl Service<
                LlmRequest,
                Response = LlmResponse,
                Error = LlmError,
                Future = Pin<Box<dyn Future<Output = Result<LlmResponse, LlmError>> + Send>>,
            > + Clone,
    > {
        let dep = Deployment::new("g", "openai/gpt-4o-mini");
        let pricing = Arc::new(Pricing::new(&PriceTable::builtin(), [&dep]));
        let dep = Arc::new(dep);
        let inner = tower::service_fn(move |_req: LlmRequest| {
            let chunks = chunks.clone();
            let dep = dep.clone();
            let fut: Pin<Box<dyn Future<Output = Result<LlmResponse, LlmError>> + Send>> =
                Box::pin(async move {
                    let Some(chunks) = chunks else {
                        return std::future::pending().await;
                    };
                    let items: Vec<Result<ChunkBody, LlmError>> = chunks
                        .into_iter()
                        .map(|c| match c {
                            "ERR" => Err(LlmError::internal("upstream failed mid-stream")),
                            c => ChunkBody::from_wire(bytes::Bytes::from_static(c.as_bytes())),
                        })
                        .collect();
                    let stream = futures_util::StreamExt::chain(
                        futures_util::stream::iter(items),
                        futures_util::stream::pending(),
                    );
                    let mut resp = LlmResponse::stream(Box::pin(stream));
                    resp.meta.deployment_id = Some(dep.id.clone());
                    resp.meta.deployment = Some(dep);
                    Ok(resp)
                });
            fut
        });
        CostLayer::new(pricing).layer(inner)
    }

    fn chat_req(stream: bool) -> (LlmRequest, UsageReport, StreamTally) {
        let mut body = crate::types::chat::ChatRequest {
            model: "g".into(),
            messages: vec![crate::types::chat::Message::new("user", "hi")],
            ..Default::default()
        };
        body.stream = Some(stream);
        let mut req = LlmRequest::chat(body);
        let report = UsageReport::default();
        let tally = StreamTally::default();
        req.extensions.insert(report.clone());
        req.extensions.insert(tally.clone());
        (req, report, tally)
    }

    #[tokio::test]
    async fn a_dropped_stream_is_charged_its_prompt_and_delivered_text() {
        use futures_util::StreamExt as _;
        let mut svc = cut_stack(Some(vec![
            r#"{"choices":[{"delta":{"role":"assistant","content":""}}],"model":"gpt-4o-mini"}"#,
            r#"{"choices":[{"delta":{"content":"0123456789"}}]}"#,
            r#"{"choices":[{"delta":{"content":"abcdef"}}]}"#,
        ]));
        let (req, report, tally) = chat_req(true);
        let resp = svc.call(req).await.unwrap();
        let ResponseBody::Stream(mut stream) = resp.body else {
            panic!("not a stream");
        };
        for _ in 0..3 {
            stream.next().await.unwrap().unwrap();
        }
        assert!(tally.get().is_none(), "not over yet");
        drop(stream);
        // 16 bytes delivered: 4 tokens; the prompt "hi": 4.
        assert_eq!(report.total_tokens(), 8);
        let (usage, cost) = tally.get().unwrap();
        let usage = usage.unwrap();
        assert_eq!(usage.input, 4);
        assert_eq!(usage.output, 4);
        let expected = 4.0_f64.mul_add(1.5e-7, 4.0 * 6e-7);
        assert!((cost - expected).abs() < 1e-15, "{cost}");
    }

    #[tokio::test]
    async fn a_stream_dropped_after_its_usage_is_charged_the_reported_usage() {
        use futures_util::StreamExt as _;
        let mut svc = cut_stack(Some(vec![
            r#"{"choices":[{"delta":{"content":"0123456789"}}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":50,"total_tokens":150}}"#,
        ]));
        let (req, report, tally) = chat_req(true);
        let resp = svc.call(req).await.unwrap();
        let ResponseBody::Stream(mut stream) = resp.body else {
            panic!("not a stream");
        };
        // The usage chunk is stripped (the client did not ask): one chunk reaches the client,
        // and the next poll reads the usage and then waits.
        stream.next().await.unwrap().unwrap();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(stream.as_mut().poll_next(&mut cx).is_pending());
        drop(stream);
        assert_eq!(report.total_tokens(), 150);
        assert_eq!(tally.get().unwrap().0.unwrap().output, 50);
    }

    #[tokio::test]
    async fn a_stream_that_fails_midway_is_charged_what_it_delivered() {
        use futures_util::StreamExt as _;
        let mut svc = cut_stack(Some(vec![
            r#"{"choices":[{"delta":{"content":"01234567"}}]}"#,
            "ERR",
        ]));
        let (req, report, tally) = chat_req(true);
        let resp = svc.call(req).await.unwrap();
        let ResponseBody::Stream(mut stream) = resp.body else {
            panic!("not a stream");
        };
        stream.next().await.unwrap().unwrap();
        assert!(stream.next().await.unwrap().is_err());
        // Charged when the error passed, not again when dropped: 4 prompt + 2 delivered.
        assert_eq!(report.total_tokens(), 6);
        drop(stream);
        assert_eq!(report.total_tokens(), 6);
        assert_eq!(tally.get().unwrap().0.unwrap().output, 2);
    }

    #[tokio::test]
    async fn a_call_dropped_before_its_answer_is_charged_its_prompt() {
        let mut svc = cut_stack(None);
        let (req, report, _) = chat_req(false);
        let mut fut = Box::pin(svc.call(req));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(report.total_tokens(), 0);
        drop(fut);
        assert_eq!(report.total_tokens(), 4);
    }
}
