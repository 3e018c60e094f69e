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
//! `cache_read_input_token_cost`, `output_cost_per_reasoning_token` in `litellm_params` or
//! `model_info`) override both.
//!
//! Lookup for a deployment `provider/model`: `model_info.base_model`, then `provider/model`, then
//! `model`, then `model` without a Bedrock region prefix (`us.`, `eu.`, `apac.`, `global.`).
//! A deployment with no input or output price costs 0 and is listed by [`Pricing::unpriced`]. A
//! wildcard deployment (`openai/*`) is priced per call by the model it called
//! ([`Pricing::cost_of`], from [`ResponseMeta::deployment`](crate::types::ResponseMeta::deployment)).
//!
//! Cost = uncached input × input price + cached input × cached price + (output − reasoning) ×
//! output price + reasoning × reasoning price (output price when not set).
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
//! Extensions read: [`KeyInfo`] (as `Arc<KeyInfo>`),
//! [`CallId`], [`UsageReport`] (filled with the call's total tokens),
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

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
    fmt,
    future::Future,
    io::Read as _,
    pin::Pin,
    sync::{atomic::Ordering, Arc, OnceLock},
    task::{ready, Context, Poll},
    time::Instant,
};

use futures_core::Stream;
use pin_project_lite::pin_project;
use serde::{Deserialize, Serialize};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    auth::KeyInfo,
    error::LlmError,
    provider::Deployment,
    server::CallId,
    spend::SpendLog,
    store::{now_ms, SpendRow},
    types::{
        chat::{StreamOptions, Usage},
        ChatStream, ChunkBody, LlmRequest, LlmResponse, ResponseBody,
    },
};

/// The built-in price table: LiteLLM's `model_prices_and_context_window` map reduced to the
/// fields of [`ModelPrice`], gzipped (`scripts/update-model-prices.py` writes it).
pub const BUILTIN_PRICES_GZ: &[u8] = include_bytes!("model_prices.json.gz");

/// Where [`BUILTIN_PRICES_GZ`] comes from (JSON): the `litellm` package version, the sha256 of
/// its wheel and of the map, and entry counts.
pub const BUILTIN_PRICES_SOURCE: &str = include_str!("model_prices.source.json");

/// The spend-log `status` of a call the client abandoned before it finished (a stream the client
/// stopped reading, a call whose connection closed). LiteLLM writes only `success` and
/// `failure`; its proxy answers a client that disconnected with 499 "Client disconnected the
/// request", hence the name (nginx's 499 is "client closed request").
pub const STATUS_CLIENT_CLOSED: &str = "client_closed";

/// The spend-log `status` of a call still running when the server's shutdown grace period ended.
pub const STATUS_CUT_AT_SHUTDOWN: &str = "cut_at_shutdown";

/// Tokens estimated from `bytes` of text: `ceil(bytes / 4)`. See the [module docs](self).
#[must_use]
pub fn estimate_tokens(bytes: usize) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX).div_ceil(4)
}

pub use crate::types::chat::estimate_prompt_tokens;

/// The status of a call dropped before it finished: cut at shutdown once the grace period is
/// over, else abandoned by its client.
fn cut_status() -> &'static str {
    if crate::server::grace_over() {
        STATUS_CUT_AT_SHUTDOWN
    } else {
        STATUS_CLIENT_CLOSED
    }
}

/// One model's prices and limits: an entry of LiteLLM's `model_prices_and_context_window.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelPrice {
    /// USD per input token.
    #[serde(default)]
    pub input_cost_per_token: Option<f64>,
    /// USD per output token.
    #[serde(default)]
    pub output_cost_per_token: Option<f64>,
    /// USD per input token read from the provider's prompt cache.
    #[serde(default)]
    pub cache_read_input_token_cost: Option<f64>,
    /// USD per input token written to the provider's prompt cache.
    #[serde(default)]
    pub cache_creation_input_token_cost: Option<f64>,
    /// USD per reasoning token (output price when not set).
    #[serde(default)]
    pub output_cost_per_reasoning_token: Option<f64>,
    /// Context window.
    #[serde(default)]
    pub max_input_tokens: Option<u64>,
    /// Output limit.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// Provider name in LiteLLM's table.
    #[serde(default)]
    pub litellm_provider: Option<String>,
    /// `chat`, `embedding`, …
    #[serde(default)]
    pub mode: Option<String>,
}

impl ModelPrice {
    /// Free: input and output at 0.
    #[must_use]
    pub fn free() -> Self {
        Self {
            input_cost_per_token: Some(0.0),
            output_cost_per_token: Some(0.0),
            ..Self::default()
        }
    }

    /// Whether an input or output price per token is set (0 counts: a free model is priced).
    #[must_use]
    pub fn has_token_price(&self) -> bool {
        self.input_cost_per_token.is_some() || self.output_cost_per_token.is_some()
    }

    /// The cost of `usage` at these prices, in USD.
    #[must_use]
    pub fn cost(&self, usage: &Usage) -> f64 {
        let input = self.input_cost_per_token.unwrap_or(0.0);
        let output = self.output_cost_per_token.unwrap_or(0.0);
        let prompt = usage.prompt_tokens.unwrap_or(0);
        let completion = usage.completion_tokens.unwrap_or(0);
        let cached = usage
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(prompt);
        let reasoning = usage
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0)
            .min(completion);
        let cached_price = self.cache_read_input_token_cost.unwrap_or(input);
        let reasoning_price = self.output_cost_per_reasoning_token.unwrap_or(output);
        let parts = [
            ((prompt - cached) as f64, input),
            (cached as f64, cached_price),
            ((completion - reasoning) as f64, output),
            (reasoning as f64, reasoning_price),
        ];
        parts.iter().fold(0.0, |acc, (n, p)| n.mul_add(*p, acc))
    }

    /// Overrides from a deployment's `litellm_params`/`model_info` keys.
    fn overridden(mut self, params: &serde_json::Map<String, serde_json::Value>) -> Self {
        let f = |k: &str| params.get(k).and_then(serde_json::Value::as_f64);
        if let Some(v) = f("input_cost_per_token") {
            self.input_cost_per_token = Some(v);
        }
        if let Some(v) = f("output_cost_per_token") {
            self.output_cost_per_token = Some(v);
        }
        if let Some(v) = f("cache_read_input_token_cost") {
            self.cache_read_input_token_cost = Some(v);
        }
        if let Some(v) = f("cache_creation_input_token_cost") {
            self.cache_creation_input_token_cost = Some(v);
        }
        if let Some(v) = f("output_cost_per_reasoning_token") {
            self.output_cost_per_reasoning_token = Some(v);
        }
        self
    }
}

/// Prices by model name, in LiteLLM's format. See the [module docs](self).
///
/// Cheap to clone: the built-in entries are shared (`Arc`); only entries merged over them are
/// owned.
#[derive(Clone, Debug, Default)]
pub struct PriceTable {
    /// The built-in entries (empty for a table made with [`PriceTable::from_json`]).
    base: Arc<HashMap<String, ModelPrice>>,
    /// Entries added over `base`.
    extra: HashMap<String, ModelPrice>,
}

/// The built-in table, inflated and parsed once, on first use.
static BUILTIN: OnceLock<Arc<HashMap<String, ModelPrice>>> = OnceLock::new();

fn load_builtin() -> Arc<HashMap<String, ModelPrice>> {
    let mut text = String::with_capacity(BUILTIN_PRICES_GZ.len() * 16);
    if let Err(e) = flate2::read::GzDecoder::new(BUILTIN_PRICES_GZ).read_to_string(&mut text) {
        // Checked by a unit test; an unreadable table would leave every model unpriced.
        tracing::error!("the built-in price table does not inflate: {e}");
        return Arc::default();
    }
    // The generator writes only the fields of `ModelPrice`, with their types: one pass, no
    // intermediate values. Anything else falls back to the lenient entry-by-entry parse.
    let models = serde_json::from_str::<HashMap<String, ModelPrice>>(&text)
        .or_else(|_| PriceTable::from_json(&text).map(|t| t.extra))
        .unwrap_or_else(|e| {
            tracing::error!("the built-in price table does not parse: {e}");
            HashMap::new()
        });
    Arc::new(models)
}

/// Bedrock cross-region inference prefixes, tried off when a model is not found as named.
const REGION_PREFIXES: [&str; 6] = ["us.", "eu.", "apac.", "global.", "jp.", "au."];

/// The per-token price keys a deployment may override.
const PRICE_KEYS: [&str; 5] = [
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_reasoning_token",
];

impl PriceTable {
    /// The built-in table: LiteLLM's published map (see [`BUILTIN_PRICES_SOURCE`]). Inflated and
    /// parsed on the first call (a few milliseconds); later calls share it.
    #[must_use]
    pub fn builtin() -> Self {
        Self {
            base: BUILTIN.get_or_init(load_builtin).clone(),
            extra: HashMap::new(),
        }
    }

    /// A table from LiteLLM's `model_prices_and_context_window.json` format. Entries that are not
    /// objects (LiteLLM's `sample_spec` is one) or do not parse are skipped.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let raw: HashMap<String, serde_json::Value> = serde_json::from_str(json)?;
        let extra = raw
            .into_iter()
            .filter(|(k, _)| k != "sample_spec")
            .filter_map(|(k, v)| serde_json::from_value::<ModelPrice>(v).ok().map(|p| (k, p)))
            .collect();
        Ok(Self {
            base: Arc::default(),
            extra,
        })
    }

    /// Adds (or replaces) the entries of `other`.
    pub fn merge(&mut self, other: Self) {
        self.extra
            .extend(other.base.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.extra.extend(other.extra);
    }

    /// The entry for a model name.
    #[must_use]
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        self.extra.get(model).or_else(|| self.base.get(model))
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.base.len()
            + self
                .extra
                .keys()
                .filter(|k| !self.base.contains_key(*k))
                .count()
    }

    /// Whether the table is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.base.is_empty() && self.extra.is_empty()
    }

    /// The table entry of a deployment (see the [module docs](self) for the lookup order),
    /// without its overrides.
    #[must_use]
    pub fn entry(&self, dep: &Deployment) -> Option<&ModelPrice> {
        let base_model = dep
            .model_info
            .get("base_model")
            .and_then(serde_json::Value::as_str);
        let provider = &*dep.provider;
        let model = &*dep.model;
        let stripped = REGION_PREFIXES.iter().find_map(|p| model.strip_prefix(p));
        base_model
            .and_then(|b| self.get(b).or_else(|| self.get(&format!("{provider}/{b}"))))
            .or_else(|| self.get(&format!("{provider}/{model}")))
            .or_else(|| self.get(model))
            .or_else(|| stripped.and_then(|m| self.get(m)))
    }

    /// A deployment's context window: `model_info.max_input_tokens` when set, else its table
    /// entry's `max_input_tokens`.
    #[must_use]
    pub fn context_window(&self, dep: &Deployment) -> Option<u64> {
        dep.model_info
            .get("max_input_tokens")
            .and_then(serde_json::Value::as_u64)
            .or_else(|| self.entry(dep).and_then(|p| p.max_input_tokens))
    }

    /// The price of a deployment (see the [module docs](self) for the lookup order), with its
    /// overrides applied; `None` when it has no per-token price: neither its table entry (if
    /// any) nor its own settings give an input or output price. Deployments of the built-in
    /// `mock` provider cost 0.
    #[must_use]
    pub fn for_deployment(&self, dep: &Deployment) -> Option<ModelPrice> {
        let found = self.entry(dep).cloned();
        let has_override = has_price_override(dep);
        if found.is_none() && !has_override {
            return (&*dep.provider == "mock").then(ModelPrice::free);
        }
        let mut price = found
            .unwrap_or_default()
            .overridden(&dep.model_info)
            .overridden(&dep.params);
        if let Some(v) = dep.input_cost_per_token {
            price.input_cost_per_token = Some(v);
        }
        if let Some(v) = dep.output_cost_per_token {
            price.output_cost_per_token = Some(v);
        }
        if price.has_token_price() {
            Some(price)
        } else {
            (&*dep.provider == "mock").then(ModelPrice::free)
        }
    }
}

/// A price's input plus output price per token, to rank deployments by dearness.
fn unit_price(p: &ModelPrice) -> f64 {
    p.input_cost_per_token.unwrap_or(0.0) + p.output_cost_per_token.unwrap_or(0.0)
}

/// Whether a deployment sets a price of its own (in `litellm_params` or `model_info`).
fn has_price_override(dep: &Deployment) -> bool {
    dep.input_cost_per_token.is_some()
        || dep.output_cost_per_token.is_some()
        || [&dep.params, &dep.model_info]
            .iter()
            .any(|m| PRICE_KEYS.iter().any(|k| m.contains_key(*k)))
}

/// Whether a deployment is a wildcard (`model_name: openai/*`): it calls the model each request
/// names, so its price is known per call.
fn is_wildcard(dep: &Deployment) -> bool {
    dep.model_group.contains('*') || dep.model.contains('*') || dep.provider.contains('*')
}

/// Prices resolved per deployment id, once, when the gateway is built; a wildcard deployment's
/// calls are priced by the upstream model each one called.
#[derive(Clone, Debug, Default)]
pub struct Pricing {
    by_deployment: HashMap<Arc<str>, ModelPrice>,
    /// Per model group, the price of its dearest priced deployment: what a call cut before a
    /// deployment answered is charged at (see [`Pricing::cost_of_group`]).
    by_group: HashMap<String, ModelPrice>,
    /// Ids of wildcard deployments, priced per call from `table`.
    wildcards: HashSet<Arc<str>>,
    table: PriceTable,
    unpriced: Vec<String>,
}

impl Pricing {
    /// Resolves each deployment's price from `table`.
    pub fn new<'a>(
        table: &PriceTable,
        deployments: impl IntoIterator<Item = &'a Deployment>,
    ) -> Self {
        let mut by_deployment = HashMap::new();
        let mut by_group: HashMap<String, ModelPrice> = HashMap::new();
        let mut wildcards = HashSet::new();
        let mut unpriced = Vec::new();
        for dep in deployments {
            if is_wildcard(dep) {
                wildcards.insert(dep.id.clone());
                continue;
            }
            match table.for_deployment(dep) {
                Some(p) => {
                    let dearer = by_group
                        .get(&*dep.model_group)
                        .is_none_or(|q| unit_price(&p) > unit_price(q));
                    if dearer {
                        by_group.insert(dep.model_group.to_string(), p.clone());
                    }
                    by_deployment.insert(dep.id.clone(), p);
                }
                None => {
                    let name = format!("{}/{}", dep.provider, dep.model);
                    if !unpriced.contains(&name) {
                        unpriced.push(name);
                    }
                }
            }
        }
        Self {
            by_deployment,
            by_group,
            wildcards,
            table: table.clone(),
            unpriced,
        }
    }

    /// The price of a deployment (not of a wildcard one: see [`Pricing::price_of`]).
    #[must_use]
    pub fn get(&self, deployment_id: &str) -> Option<&ModelPrice> {
        self.by_deployment.get(deployment_id)
    }

    /// The price of the deployment that answered: its resolved price, or, for a wildcard
    /// deployment, the price of the upstream model it called (`answered` is the concrete
    /// deployment, [`ResponseMeta::deployment`](crate::types::ResponseMeta::deployment)).
    #[must_use]
    pub fn price_of(
        &self,
        deployment_id: Option<&str>,
        answered: Option<&Deployment>,
    ) -> Option<Cow<'_, ModelPrice>> {
        let id = deployment_id.or_else(|| answered.map(|d| &*d.id))?;
        if let Some(p) = self.by_deployment.get(id) {
            return Some(Cow::Borrowed(p));
        }
        if !self.wildcards.contains(id) {
            return None;
        }
        let d = answered?;
        // Per call: borrow the table entry when the deployment has no prices of its own.
        if !has_price_override(d) {
            if let Some(p) = self.table.entry(d).filter(|p| p.has_token_price()) {
                return Some(Cow::Borrowed(p));
            }
        }
        self.table.for_deployment(d).map(Cow::Owned)
    }

    /// Deployments without a price (`provider/model`, each once; wildcard deployments are priced
    /// per call and not listed), for a start-up warning and `--check`.
    #[must_use]
    pub fn unpriced(&self) -> &[String] {
        &self.unpriced
    }

    /// The cost of `usage` at the price of `model_group`'s dearest deployment (0 when none of
    /// its deployments has a price): for a call cut before a deployment answered.
    #[must_use]
    pub fn cost_of_group(&self, model_group: &str, usage: &Usage) -> f64 {
        self.by_group
            .get(model_group)
            .map_or(0.0, |p| p.cost(usage))
    }

    /// The cost of `usage` on a deployment (0 without a price).
    #[must_use]
    pub fn cost(&self, deployment_id: Option<&str>, usage: &Usage) -> f64 {
        self.cost_of(deployment_id, None, usage)
    }

    /// The cost of `usage` on the deployment that answered (0 without a price); see
    /// [`Pricing::price_of`].
    #[must_use]
    pub fn cost_of(
        &self,
        deployment_id: Option<&str>,
        answered: Option<&Deployment>,
        usage: &Usage,
    ) -> f64 {
        self.price_of(deployment_id, answered)
            .map_or(0.0, |p| p.cost(usage))
    }
}

/// A streamed call's usage and cost, set once by the cost layer when the stream ends (or is
/// dropped). The edge puts it in the request extensions of a streamed request when it writes the
/// access log, and reads it when the stream is over.
#[derive(Clone, Debug, Default)]
pub struct StreamTally(Arc<std::sync::OnceLock<(Option<Usage>, f64)>>);

impl StreamTally {
    /// The usage and cost (USD), once the stream is over.
    #[must_use]
    pub fn get(&self) -> Option<(Option<&Usage>, f64)> {
        self.0.get().map(|(u, c)| (u.as_ref(), *c))
    }
}

pub use crate::types::extensions::UsageReport;

/// Applies [`Cost`]. See the [module docs](self) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct CostLayer {
    pricing: Arc<Pricing>,
    spend: Option<SpendLog>,
    stream_usage: bool,
}

impl CostLayer {
    /// Prices calls with `pricing`; writes no spend log.
    pub fn new(pricing: Arc<Pricing>) -> Self {
        Self {
            pricing,
            spend: None,
            stream_usage: true,
        }
    }

    /// Whether to ask providers for usage on streams (`stream_options.include_usage`, default
    /// on). Off, a stream is priced only when the client asked for usage itself.
    pub fn stream_usage(mut self, on: bool) -> Self {
        self.stream_usage = on;
        self
    }

    /// Writes one spend-log row per call to `spend`.
    pub fn spend_log(mut self, spend: SpendLog) -> Self {
        self.spend = Some(spend);
        self
    }
}

impl<S> Layer<S> for CostLayer {
    type Service = Cost<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cost {
            inner,
            pricing: self.pricing.clone(),
            spend: self.spend.clone(),
            stream_usage: self.stream_usage,
        }
    }
}

/// Prices each call and logs its spend. See the [module docs](self) for an example.
#[derive(Clone, Debug)]
pub struct Cost<S> {
    inner: S,
    pricing: Arc<Pricing>,
    spend: Option<SpendLog>,
    stream_usage: bool,
}

impl<S> Cost<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes this, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// What the cost layer remembers about a call until it ends.
struct CallCtx {
    pricing: Arc<Pricing>,
    spend: Option<SpendLog>,
    key: Option<Arc<KeyInfo>>,
    call_id: Option<Arc<str>>,
    model_group: String,
    tags: Vec<String>,
    started: Instant,
    started_ms: i64,
    report: Option<UsageReport>,
    tally: Option<StreamTally>,
    /// The prompt's tokens, estimated ([`estimate_prompt_tokens`]), for a call cut short.
    prompt_estimate: u64,
}

impl CallCtx {
    /// The usage of a call cut short: what the upstream reported, else the estimated prompt and
    /// `delivered` bytes of text estimated as tokens (see the [module docs](self)).
    fn cut_usage(&self, reported: Option<&Usage>, delivered: usize) -> Usage {
        reported.cloned().unwrap_or_else(|| {
            let completion = estimate_tokens(delivered);
            Usage::new(self.prompt_estimate, completion)
        })
    }

    /// Logs the call; returns its cost.
    fn finish(&self, usage: Option<&Usage>, meta: &MetaSnapshot, status: &str) -> f64 {
        let cost = if meta.cache_hit {
            0.0
        } else {
            usage.map_or(0.0, |u| {
                let cut = status == STATUS_CLIENT_CLOSED || status == STATUS_CUT_AT_SHUTDOWN;
                if cut && meta.deployment_id.is_none() && meta.deployment.is_none() {
                    // Cut before a deployment answered: the group's dearest price.
                    self.pricing.cost_of_group(&self.model_group, u)
                } else {
                    self.pricing.cost_of(
                        meta.deployment_id.as_deref(),
                        meta.deployment.as_deref(),
                        u,
                    )
                }
            })
        };
        let total = usage.map_or(0, |u| {
            u.total_tokens
                .unwrap_or(u.prompt_tokens.unwrap_or(0) + u.completion_tokens.unwrap_or(0))
        });
        if let Some(r) = &self.report {
            r.0.fetch_add(total, Ordering::AcqRel);
        }
        if let Some(t) = &self.tally {
            let _ = t.0.set((usage.cloned(), cost));
        }
        if let Some(spend) = &self.spend {
            let to_i64 = |v: Option<u64>| v.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
            let row = SpendRow {
                request_id: self
                    .call_id
                    .as_deref()
                    .map_or_else(crate::server::new_call_id, str::to_owned),
                api_key: self
                    .key
                    .as_ref()
                    .map(|k| k.token.to_string())
                    .unwrap_or_default(),
                key_alias: self.key.as_ref().and_then(|k| k.key_alias.clone()),
                team_id: self.key.as_ref().and_then(|k| k.team_id.clone()),
                user_id: self.key.as_ref().and_then(|k| k.user_id.clone()),
                model_group: self.model_group.clone(),
                model: meta.model.clone(),
                model_id: meta.deployment_id.as_deref().map(str::to_owned),
                custom_llm_provider: meta.provider.clone(),
                prompt_tokens: to_i64(usage.and_then(|u| u.prompt_tokens)),
                completion_tokens: to_i64(usage.and_then(|u| u.completion_tokens)),
                total_tokens: i64::try_from(total).unwrap_or(i64::MAX),
                spend: cost,
                start_time: self.started_ms,
                end_time: now_ms(),
                latency_ms: i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX),
                cache_hit: meta.cache_hit,
                status: status.to_owned(),
                request_tags: self.tags.clone(),
            };
            spend.record(row);
        }
        cost
    }
}

/// The parts of `ResponseMeta` a spend row needs.
#[derive(Clone, Default)]
struct MetaSnapshot {
    deployment_id: Option<Arc<str>>,
    /// The deployment that answered (concrete for a wildcard one).
    deployment: Option<Arc<Deployment>>,
    provider: Option<String>,
    model: Option<String>,
    cache_hit: bool,
}

fn request_tags(req: &LlmRequest) -> Vec<String> {
    let Some(chat) = req.as_chat() else {
        return Vec::new();
    };
    let from = |v: Option<&serde_json::Value>| -> Vec<String> {
        v.and_then(serde_json::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut tags = from(chat.metadata.as_ref().and_then(|m| m.get("tags")));
    tags.extend(from(
        chat.extra.get_as::<serde_json::Value>("tags").as_ref(),
    ));
    tags
}

impl<S> Service<LlmRequest> for Cost<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = LlmError>,
{
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: LlmRequest) -> Self::Future {
        if matches!(req.op, crate::types::Operation::ListModels) {
            return ResponseFuture {
                inner: self.inner.call(req),
                ctx: None,
                strip_usage: false,
            };
        }
        // Strip the usage chunk only when this layer asked for it on the client's behalf.
        let mut strip_usage = false;
        let is_stream = req.is_stream();
        if is_stream {
            if let Some(chat) = req.chat_mut() {
                let client_asked = chat
                    .stream_options
                    .as_ref()
                    .and_then(|o| o.include_usage)
                    .unwrap_or(false);
                if !client_asked && self.stream_usage {
                    strip_usage = true;
                    let mut opts = chat
                        .stream_options
                        .clone()
                        .unwrap_or_else(StreamOptions::default);
                    opts.include_usage = Some(true);
                    chat.stream_options = Some(opts);
                }
            }
        }
        let ctx = CallCtx {
            pricing: self.pricing.clone(),
            spend: self.spend.clone(),
            key: req.extensions.get::<Arc<KeyInfo>>().cloned(),
            call_id: req.extensions.get::<CallId>().map(|c| c.0.clone()),
            model_group: req.model().to_owned(),
            tags: request_tags(&req),
            started: Instant::now(),
            started_ms: now_ms(),
            report: req.extensions.get::<UsageReport>().cloned(),
            tally: if is_stream {
                req.extensions.get::<StreamTally>().cloned()
            } else {
                None
            },
            prompt_estimate: req
                .as_chat()
                .map_or(0, |c| estimate_prompt_tokens(&c.messages)),
        };
        ResponseFuture {
            inner: self.inner.call(req),
            ctx: Some(ctx),
            strip_usage,
        }
    }
}

pin_project! {
    /// The response future of [`Cost`]. Dropped before its response (the client went away, or
    /// the shutdown grace period ended), it logs the call with its estimated prompt.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        ctx: Option<CallCtx>,
        strip_usage: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(ctx) = this.ctx.take() {
                let usage = ctx.cut_usage(None, 0);
                ctx.finish(Some(&usage), &MetaSnapshot::default(), cut_status());
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("cost::ResponseFuture")
            .finish_non_exhaustive()
    }
}

fn snapshot(meta: &crate::types::ResponseMeta, pricing_model: Option<String>) -> MetaSnapshot {
    MetaSnapshot {
        deployment_id: meta.deployment_id.clone(),
        deployment: meta.deployment.clone(),
        provider: meta.provider.as_deref().map(str::to_owned),
        model: pricing_model,
        cache_hit: meta.cache_hit,
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<LlmResponse, LlmError>>,
{
    type Output = Result<LlmResponse, LlmError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let Some(ctx) = this.ctx.take() else {
            return Poll::Ready(result);
        };
        match result {
            Err(e) => {
                ctx.finish(None, &MetaSnapshot::default(), "failure");
                Poll::Ready(Err(e))
            }
            Ok(mut resp) => {
                let body_model = match &resp.body {
                    ResponseBody::Chat(c) => c.model().map(str::to_owned),
                    ResponseBody::Embeddings(e) => e.model.clone(),
                    _ => None,
                };
                let snap = snapshot(&resp.meta, body_model);
                match resp.body {
                    ResponseBody::Stream(stream) => {
                        resp.body = ResponseBody::Stream(Box::pin(CostStream {
                            inner: stream,
                            ctx: Some(ctx),
                            meta: snap,
                            usage: None,
                            delivered: 0,
                            strip_usage: *this.strip_usage,
                        }));
                    }
                    _ => {
                        let usage = resp.meta.usage.clone().or_else(|| match &resp.body {
                            ResponseBody::Chat(c) => c.usage().cloned(),
                            _ => None,
                        });
                        let cost = ctx.finish(usage.as_ref(), &snap, "success");
                        resp.meta.cost = Some(cost);
                    }
                }
                Poll::Ready(Ok(resp))
            }
        }
    }
}

pin_project! {
    /// A chat stream that reads the usage chunk, strips it for clients that did not ask for it, and
    /// logs the call's cost once when the stream ends or is dropped.
    struct CostStream {
        inner: ChatStream,
        ctx: Option<CallCtx>,
        meta: MetaSnapshot,
        usage: Option<Usage>,
        // Bytes of generated text passed on so far (`Relayed::delta_text_bytes`).
        delivered: usize,
        strip_usage: bool,
    }

    impl PinnedDrop for CostStream {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(ctx) = this.ctx.take() {
                // Dropped before its end: paid for what it delivered.
                let usage = ctx.cut_usage(this.usage.as_ref(), *this.delivered);
                ctx.finish(Some(&usage), this.meta, cut_status());
            }
        }
    }
}

impl Stream for CostStream {
    type Item = Result<ChunkBody, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        loop {
            match ready!(this.inner.as_mut().poll_next(cx)) {
                Some(Ok(mut chunk)) => {
                    if this.meta.model.is_none() {
                        this.meta.model = chunk.model().map(str::to_owned);
                    }
                    if let Some(u) = chunk.usage() {
                        *this.usage = Some(u.clone());
                        if *this.strip_usage {
                            if !chunk.has_choices() {
                                continue;
                            }
                            // Usage on a chunk that also carries choices: remove just the usage.
                            match chunk.typed_mut() {
                                Ok(c) => c.usage = None,
                                Err(e) => return Poll::Ready(Some(Err(e))),
                            }
                        }
                    }
                    *this.delivered = this.delivered.saturating_add(chunk.delta_text_bytes());
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Some(Err(e)) => {
                    if let Some(ctx) = this.ctx.take() {
                        // Failed mid-stream: paid for what it delivered, as a cut stream is.
                        let usage = ctx.cut_usage(this.usage.as_ref(), *this.delivered);
                        ctx.finish(Some(&usage), this.meta, "failure");
                    }
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    if let Some(ctx) = this.ctx.take() {
                        ctx.finish(this.usage.as_ref(), this.meta, "success");
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::chat::{CompletionTokensDetails, PromptTokensDetails};

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

    #[test]
    fn a_group_is_priced_at_its_dearest_deployment() {
        let t = PriceTable::builtin();
        let cheap = Deployment::new("g", "openai/gpt-4o-mini");
        let dear = Deployment::new("g", "openai/gpt-4o");
        let pricing = Pricing::new(&t, [&cheap, &dear]);
        let usage = Usage::new(1_000_000, 0);
        let c = pricing.cost_of_group("g", &usage);
        assert!((c - 2.5).abs() < 1e-9, "{c}");
        assert!(pricing.cost_of_group("nope", &usage).abs() < f64::EPSILON);
    }

    /// A cost layer over an upstream that streams `chunks` (`"ERR"`: an error) and then never
    /// ends, or (with `chunks` `None`) never answers.
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
        assert_eq!(usage.prompt_tokens, Some(4));
        assert_eq!(usage.completion_tokens, Some(4));
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
        assert_eq!(tally.get().unwrap().0.unwrap().completion_tokens, Some(50));
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
        assert_eq!(tally.get().unwrap().0.unwrap().completion_tokens, Some(2));
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

    #[test]
    fn builtin_table_is_litellms_map_and_covers_providers() {
        let t = PriceTable::builtin();
        let source: serde_json::Value = serde_json::from_str(BUILTIN_PRICES_SOURCE).unwrap();
        // Every entry of the generated map parsed (none dropped by a type mismatch).
        assert_eq!(
            t.len() as u64,
            source["entries"].as_u64().unwrap(),
            "{source}"
        );
        assert!(t.len() > 3000, "{}", t.len());
        assert_eq!(source["package"], "litellm");
        assert!(source["version"].as_str().is_some_and(|v| !v.is_empty()));
        for m in [
            "gpt-4o-mini",
            "gpt-5",
            "azure/gpt-4o",
            "claude-sonnet-4-5",
            "gemini/gemini-2.5-flash",
            "gemini-2.5-pro",
            "anthropic.claude-3-5-haiku-20241022-v1:0",
            "amazon.nova-pro-v1:0",
            "deepseek/deepseek-chat",
            "mistral/mistral-large-latest",
            "ollama/llama3.1",
            "text-embedding-3-small",
        ] {
            let p = t.get(m).unwrap_or_else(|| panic!("{m} missing"));
            assert!(p.has_token_price(), "{m}");
            assert!(p.max_input_tokens.is_some(), "{m}");
        }
        // Shared, not parsed again.
        let again = PriceTable::builtin();
        assert!(Arc::ptr_eq(&t.base, &again.base));
    }

    #[test]
    fn merged_entries_override_builtin_ones() {
        let mut t = PriceTable::builtin();
        let n = t.len();
        t.merge(
            PriceTable::from_json(
                r#"{"gpt-4o-mini": {"input_cost_per_token": 1.0}, "house/new": {"output_cost_per_token": 2.0}, "sample_spec": {"input_cost_per_token": "x"}}"#,
            )
            .unwrap(),
        );
        assert_eq!(
            t.get("gpt-4o-mini").unwrap().input_cost_per_token,
            Some(1.0)
        );
        assert_eq!(t.get("house/new").unwrap().output_cost_per_token, Some(2.0));
        assert_eq!(t.len(), n + 1);
        // The shared built-in entries are untouched.
        assert_eq!(
            PriceTable::builtin()
                .get("gpt-4o-mini")
                .unwrap()
                .input_cost_per_token,
            Some(1.5e-7)
        );
    }

    #[test]
    fn context_window_from_model_info_else_table() {
        let t = PriceTable::builtin();
        let mut d = Deployment::new("g", "openai/gpt-4o-mini");
        assert_eq!(t.context_window(&d), Some(128_000));
        d.model_info.insert("max_input_tokens".into(), 10.into());
        assert_eq!(t.context_window(&d), Some(10));
        assert_eq!(
            t.context_window(&Deployment::new("g", "openai/no-such-model")),
            None
        );
    }

    #[test]
    fn wildcard_deployments_are_priced_by_the_model_called() {
        let t = PriceTable::builtin();
        let wild = Deployment::new("openai/*", "openai/*");
        let fixed = Deployment::new("g", "openai/gpt-4o-mini");
        let unknown = Deployment::new("u", "openai/house-model");
        let pricing = Pricing::new(&t, [&wild, &fixed, &unknown]);
        // The wildcard is not "unpriced": its price is known per call.
        assert_eq!(pricing.unpriced(), ["openai/house-model"]);
        let usage = Usage::new(1_000_000, 0);
        let mut called = wild.clone();
        called.model = "gpt-4o".into();
        let cost = pricing.cost_of(Some(&wild.id), Some(&called), &usage);
        assert!((cost - 2.5).abs() < 1e-9, "{cost}");
        // Without the concrete deployment there is nothing to price it by.
        assert!(pricing.cost_of(Some(&wild.id), None, &usage).abs() < f64::EPSILON);
        // A fixed deployment keeps its resolved price.
        let cost = pricing.cost_of(Some(&fixed.id), Some(&fixed), &usage);
        assert!((cost - 0.15).abs() < 1e-9, "{cost}");
        // A wildcard's own price settings apply to every model it calls.
        let mut wild = Deployment::new("openai/*", "openai/*");
        wild.input_cost_per_token = Some(1e-6);
        let pricing = Pricing::new(&t, [&wild]);
        // As the router makes it concrete: the wildcard deployment with the model called.
        let mut called = wild.clone();
        called.model = "gpt-4o".into();
        let cost = pricing.cost_of(Some(&wild.id), Some(&called), &usage);
        assert!((cost - 1.0).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn entries_without_token_prices_and_mock_deployments() {
        let t = PriceTable::from_json(
            r#"{"img": {"max_input_tokens": 5, "mode": "image_generation"}}"#,
        )
        .unwrap();
        assert!(t
            .for_deployment(&Deployment::new("g", "openai/img"))
            .is_none());
        assert_eq!(
            t.for_deployment(&Deployment::new("m", "mock/anything")),
            Some(ModelPrice::free())
        );
    }

    #[test]
    fn cost_counts_cached_and_reasoning_tokens() {
        let p = ModelPrice {
            input_cost_per_token: Some(1.0),
            output_cost_per_token: Some(10.0),
            cache_read_input_token_cost: Some(0.1),
            output_cost_per_reasoning_token: Some(20.0),
            ..ModelPrice::default()
        };
        let mut u = Usage::new(100, 50);
        u.prompt_tokens_details = Some(PromptTokensDetails {
            cached_tokens: Some(40),
            ..Default::default()
        });
        u.completion_tokens_details = Some(CompletionTokensDetails {
            reasoning_tokens: Some(10),
            ..Default::default()
        });
        let c = p.cost(&u);
        assert!((c - (60.0 + 4.0 + 400.0 + 200.0)).abs() < 1e-9, "{c}");
    }

    #[test]
    fn deployment_lookup_and_overrides() {
        let t = PriceTable::builtin();
        let d = Deployment::new("g", "openai/gpt-4o-mini");
        let p = t.for_deployment(&d).unwrap();
        assert_eq!(p.input_cost_per_token, Some(1.5e-7));
        let mut d = Deployment::new("g", "bedrock/us.amazon.nova-pro-v1:0");
        assert_eq!(
            t.for_deployment(&d).unwrap().input_cost_per_token,
            Some(8e-7)
        );
        d.input_cost_per_token = Some(1.0);
        assert_eq!(
            t.for_deployment(&d).unwrap().input_cost_per_token,
            Some(1.0)
        );
        let mut d = Deployment::new("g", "azure/my-deployment");
        assert!(t.for_deployment(&d).is_none());
        d.model_info
            .insert("base_model".into(), "azure/gpt-4o".into());
        assert_eq!(
            t.for_deployment(&d).unwrap().output_cost_per_token,
            Some(1e-5)
        );
    }
}
