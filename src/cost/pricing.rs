//! Prices: [`ModelPrice`], the [`PriceTable`] (built-in, LiteLLM price files) and [`Pricing`]
//! (each deployment's price, resolved once). See the [module docs](super) for the lookup order.

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
    io::Read as _,
    sync::{Arc, OnceLock},
};

use serde::{Deserialize, Serialize};

#[allow(unused_imports)] // named in the docs
use crate::types::chat::Usage;
use crate::types::{deployment::Deployment, TokenUsage};

/// The built-in price table: LiteLLM's `model_prices_and_context_window` map reduced to the
/// fields of [`ModelPrice`], gzipped (`scripts/update-model-prices.py` writes it).
pub const BUILTIN_PRICES_GZ: &[u8] = include_bytes!("model_prices.json.gz");

/// Where [`BUILTIN_PRICES_GZ`] comes from (JSON): the `litellm` package version, the sha256 of
/// its wheel and of the map, and entry counts.
pub const BUILTIN_PRICES_SOURCE: &str = include_str!("model_prices.source.json");

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
    /// USD per query (search unit) of a rerank model (Cohere's rerank).
    #[serde(default)]
    pub input_cost_per_query: Option<f64>,
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
    /// USD per image made (image generation and edits; LiteLLM's first choice for images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cost_per_image: Option<f64>,
    /// USD per image made, where the map states the output's price (Imagen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_cost_per_image: Option<f64>,
    /// USD per pixel of each image made (DALL·E; LiteLLM's second choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cost_per_pixel: Option<f64>,
    /// USD per second of audio taken in (transcription, translation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cost_per_second: Option<f64>,
    /// USD per character of text spoken (speech).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cost_per_character: Option<f64>,
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

    /// Whether an input or output price per token (or a price per rerank query) is set (0
    /// counts: a free model is priced).
    #[must_use]
    pub fn has_token_price(&self) -> bool {
        self.input_cost_per_token.is_some()
            || self.output_cost_per_token.is_some()
            || self.input_cost_per_query.is_some()
    }

    /// Whether a price per image, pixel, second or character is set.
    #[must_use]
    pub fn has_media_price(&self) -> bool {
        [
            self.input_cost_per_image,
            self.output_cost_per_image,
            self.input_cost_per_pixel,
            self.input_cost_per_second,
            self.input_cost_per_character,
        ]
        .iter()
        .any(Option::is_some)
    }

    /// The cost of what `usage` counts besides tokens: images (per image, else per pixel, as
    /// LiteLLM's `default_image_cost_calculator`), seconds of audio and characters spoken.
    fn media_cost(&self, usage: &TokenUsage) -> f64 {
        let mut cost = 0.0;
        if usage.images > 0 {
            let images = usage.images as f64;
            if let Some(p) = self.input_cost_per_image.or(self.output_cost_per_image) {
                cost += images * p;
            } else if let Some(p) = self.input_cost_per_pixel {
                cost += images * usage.image_pixels as f64 * p;
            }
        }
        if let Some(p) = self.input_cost_per_second {
            cost += usage.audio_ms as f64 / 1000.0 * p;
        }
        if let Some(p) = self.input_cost_per_character {
            cost += usage.characters as f64 * p;
        }
        cost
    }

    /// The cost of `usage` at these prices, in USD: input tokens read from or written to the
    /// provider's prompt cache at their own prices (the input price when not set), reasoning
    /// tokens at theirs (the output price when not set). `usage` is a [`TokenUsage`] or anything
    /// that converts to one (a chat [`Usage`]).
    #[must_use]
    pub fn cost(&self, usage: impl Into<TokenUsage>) -> f64 {
        let usage = usage.into();
        let input = self.input_cost_per_token.unwrap_or(0.0);
        let output = self.output_cost_per_token.unwrap_or(0.0);
        let prompt = usage.input;
        let completion = usage.output;
        let cached = usage.cache_read.min(prompt);
        let written = usage.cache_write.min(prompt - cached);
        let reasoning = usage.reasoning.min(completion);
        let cached_price = self.cache_read_input_token_cost.unwrap_or(input);
        let written_price = self.cache_creation_input_token_cost.unwrap_or(input);
        let reasoning_price = self.output_cost_per_reasoning_token.unwrap_or(output);
        let parts = [
            ((prompt - cached - written) as f64, input),
            (cached as f64, cached_price),
            (written as f64, written_price),
            ((completion - reasoning) as f64, output),
            (reasoning as f64, reasoning_price),
            (
                usage.search_units as f64,
                self.input_cost_per_query.unwrap_or(0.0),
            ),
        ];
        parts.iter().fold(0.0, |acc, (n, p)| n.mul_add(*p, acc)) + self.media_cost(&usage)
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
        if let Some(v) = f("input_cost_per_image") {
            self.input_cost_per_image = Some(v);
        }
        if let Some(v) = f("output_cost_per_image") {
            self.output_cost_per_image = Some(v);
        }
        if let Some(v) = f("input_cost_per_pixel") {
            self.input_cost_per_pixel = Some(v);
        }
        if let Some(v) = f("input_cost_per_second") {
            self.input_cost_per_second = Some(v);
        }
        if let Some(v) = f("input_cost_per_character") {
            self.input_cost_per_character = Some(v);
        }
        if let Some(v) = f("input_cost_per_query") {
            self.input_cost_per_query = Some(v);
        }
        self
    }
}

/// Prices by model name, in LiteLLM's format. See the [module docs](super).
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
const PRICE_KEYS: [&str; 11] = [
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_reasoning_token",
    "input_cost_per_image",
    "output_cost_per_image",
    "input_cost_per_pixel",
    "input_cost_per_second",
    "input_cost_per_character",
    "input_cost_per_query",
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

    /// The table entry of a deployment (see the [module docs](super) for the lookup order),
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

    /// The price of a deployment (see the [module docs](super) for the lookup order), with its
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
        if price.has_token_price() || price.has_media_price() {
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

/// Whether a deployment sets a price per image or pixel of its own (which wins over the price
/// map's size- and quality-specific entries).
fn has_image_price_override(dep: &Deployment) -> bool {
    [&dep.params, &dep.model_info].iter().any(|m| {
        [
            "input_cost_per_image",
            "output_cost_per_image",
            "input_cost_per_pixel",
        ]
        .iter()
        .any(|k| m.contains_key(*k))
    })
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
    /// Per deployment without an image price of its own: its provider and model, for the
    /// price map's size- and quality-specific image entries (see [`Pricing::image_cost`]).
    image_names: HashMap<Arc<str>, (Arc<str>, Arc<str>)>,
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
        let mut image_names = HashMap::new();
        for dep in deployments {
            if !is_wildcard(dep) && !has_image_price_override(dep) {
                image_names.insert(dep.id.clone(), (dep.provider.clone(), dep.model.clone()));
            }
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
            image_names,
            table: table.clone(),
            unpriced,
        }
    }

    /// The cost of the images `usage` counts at the price map's size- and quality-specific
    /// entry for the model, as LiteLLM's `default_image_cost_calculator` looks it up; `None`
    /// when no such entry prices them (then the deployment's own price applies).
    ///
    /// Keys tried, for provider `p`, model `m`, size `s` (`1024-x-1792`) and quality `q` (the
    /// one asked for, else `standard`, LiteLLM's default): `p/q/s/m` (Azure's entries; LiteLLM
    /// misses them), `q/s/m`, `p/s/m`, `s/m`, then `p/high/s/m` and `high/s/m` (LiteLLM's
    /// fallback for gpt-image, whose qualities are low, medium and high). The entry's
    /// `input_cost_per_image` (else `output_cost_per_image`) × images, else its
    /// `input_cost_per_pixel` × width × height × images. As in LiteLLM, such a price replaces
    /// the token prices of the call (gpt-image's usage tokens are not added).
    #[must_use]
    pub fn image_cost(&self, provider: &str, model: &str, usage: &TokenUsage) -> Option<f64> {
        let tier = usage.image_tier?;
        if usage.images == 0 {
            return None;
        }
        let size = tier.size_key();
        let q = tier
            .quality
            .map_or("standard", crate::types::media::ImageQuality::as_str);
        let keys = [
            format!("{provider}/{q}/{size}/{model}"),
            format!("{q}/{size}/{model}"),
            format!("{provider}/{size}/{model}"),
            format!("{size}/{model}"),
            format!("{provider}/high/{size}/{model}"),
            format!("high/{size}/{model}"),
        ];
        let entry = keys.iter().find_map(|k| {
            self.table.get(k).filter(|p| {
                p.input_cost_per_image.is_some()
                    || p.output_cost_per_image.is_some()
                    || p.input_cost_per_pixel.is_some()
            })
        })?;
        let images = usage.images as f64;
        if let Some(p) = entry.input_cost_per_image.or(entry.output_cost_per_image) {
            return Some(images * p);
        }
        let pixels = f64::from(tier.width) * f64::from(tier.height);
        entry.input_cost_per_pixel.map(|p| images * pixels * p)
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
            if let Some(p) = self
                .table
                .entry(d)
                .filter(|p| p.has_token_price() || p.has_media_price())
            {
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
    pub fn cost_of_group(&self, model_group: &str, usage: impl Into<TokenUsage>) -> f64 {
        self.by_group
            .get(model_group)
            .map_or(0.0, |p| p.cost(usage))
    }

    /// The cost of `usage` on a deployment (0 without a price).
    #[must_use]
    pub fn cost(&self, deployment_id: Option<&str>, usage: impl Into<TokenUsage>) -> f64 {
        self.cost_of(deployment_id, None, usage)
    }

    /// The cost of `usage` on the deployment that answered (0 without a price); see
    /// [`Pricing::price_of`].
    #[must_use]
    pub fn cost_of(
        &self,
        deployment_id: Option<&str>,
        answered: Option<&Deployment>,
        usage: impl Into<TokenUsage>,
    ) -> f64 {
        let usage = usage.into();
        if usage.images > 0 {
            let names = deployment_id
                .and_then(|id| self.image_names.get(id))
                .map(|(p, m)| (&**p, &**m))
                .or_else(|| {
                    answered
                        .filter(|d| !has_image_price_override(d))
                        .map(|d| (&*d.provider, &*d.model))
                });
            if let Some(cost) = names.and_then(|(p, m)| self.image_cost(p, m, &usage)) {
                return cost;
            }
        }
        self.price_of(deployment_id, answered)
            .map_or(0.0, |p| p.cost(usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::chat::{CompletionTokensDetails, PromptTokensDetails};

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

    /// Images per image (else per pixel), audio per second, speech per character: from the
    /// built-in map (whisper-1, tts-1) and from a deployment's own settings.
    #[test]
    fn media_is_priced_per_image_second_and_character() {
        let t = PriceTable::builtin();
        let whisper = t
            .for_deployment(&Deployment::new("w", "openai/whisper-1"))
            .unwrap();
        let u = TokenUsage {
            audio_ms: 12_500,
            ..TokenUsage::default()
        };
        assert!((whisper.cost(u) - 0.00125).abs() < 1e-12);
        let tts = t
            .for_deployment(&Deployment::new("s", "openai/tts-1"))
            .unwrap();
        let u = TokenUsage {
            characters: 1000,
            ..TokenUsage::default()
        };
        assert!((tts.cost(u) - 0.015).abs() < 1e-12);
        let mut dep = Deployment::new("d", "openai/my-image-model");
        dep.params
            .insert("input_cost_per_pixel".into(), serde_json::json!(1e-8));
        let p = t.for_deployment(&dep).expect("priced by its own setting");
        let u = TokenUsage {
            images: 2,
            image_pixels: 1024 * 1024,
            ..TokenUsage::default()
        };
        assert!((p.cost(u) - 0.020_971_52).abs() < 1e-12);
        dep.params
            .insert("input_cost_per_image".into(), serde_json::json!(0.04));
        let p = t.for_deployment(&dep).unwrap();
        assert!(
            (p.cost(u) - 0.08).abs() < 1e-12,
            "per image wins over per pixel"
        );
        // Tokens and images add up (gpt-image's usage).
        let u = TokenUsage {
            images: 1,
            ..TokenUsage::new(1_000_000, 0)
        };
        let mut p = p;
        p.input_cost_per_token = Some(1e-6);
        assert!((p.cost(u) - 1.04).abs() < 1e-9);
    }

    /// Size- and quality-specific image entries of the real price map, looked up as LiteLLM's
    /// `default_image_cost_calculator` does (plus the provider's own quality entries).
    #[test]
    fn images_are_priced_by_size_and_quality_from_the_builtin_map() {
        use crate::types::media::ImageTier;
        let table = PriceTable::builtin();
        let gpt = Deployment::new("g", "openai/gpt-image-1");
        let az = Deployment::new("a", "azure/dall-e-3");
        let mine = {
            let mut d = Deployment::new("m", "openai/gpt-image-1");
            d.params
                .insert("input_cost_per_image".into(), serde_json::json!(0.5));
            d
        };
        let pricing = Pricing::new(&table, [&gpt, &az, &mine]);
        let usage = |n: u64, size: &str, q: Option<&str>| TokenUsage {
            images: n,
            image_tier: ImageTier::new(Some(size), q),
            ..TokenUsage::new(50, 4160)
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        // low/1024-x-1536/gpt-image-1: $0.016 an image; its usage tokens are not added.
        let c = pricing.cost(Some(&gpt.id), usage(2, "1024x1536", Some("low")));
        assert!(close(c, 0.032), "{c}");
        // medium/1024-x-1024/gpt-image-1: $0.042.
        let c = pricing.cost(Some(&gpt.id), usage(1, "1024x1024", Some("medium")));
        assert!(close(c, 0.042), "{c}");
        // No quality: LiteLLM's `standard`, absent for gpt-image-1, then `high/…`: $0.167.
        let c = pricing.cost(Some(&gpt.id), usage(1, "auto", None));
        assert!(close(c, 0.167), "{c}");
        // Azure's own entry, per pixel: azure/hd/1024-x-1792/dall-e-3.
        let c = pricing.cost(Some(&az.id), usage(1, "1024x1792", Some("hd")));
        assert!(close(c, 1024.0 * 1792.0 * 7.19343e-08), "{c}");
        let c = pricing.cost(Some(&az.id), usage(2, "1024x1024", None));
        assert!(close(c, 2.0 * 1024.0 * 1024.0 * 4.19617e-08), "{c}");
        // A deployment's own price per image wins (with the call's tokens at the token prices,
        // as for any image call priced at the deployment's entry).
        let c = pricing.cost(Some(&mine.id), usage(2, "1024x1024", Some("low")));
        assert!(close(c, 50.0_f64.mul_add(5e-6, 1.0)), "{c}");
        // A size the map has no entry for: the deployment's entry, by its tokens.
        let c = pricing.cost(Some(&gpt.id), usage(1, "256x256", Some("low")));
        let tokens = table
            .get("gpt-image-1")
            .unwrap()
            .cost(TokenUsage::new(50, 4160));
        assert!(close(c, tokens), "{c} {tokens}");
        // No tier stated (an answer without images): unchanged.
        let c = pricing.cost(Some(&gpt.id), TokenUsage::new(50, 0));
        assert!(close(c, 50.0 * 5e-6), "{c}");
        // Nova Canvas on Bedrock: per image from its base entry (no size entry for 1280x720).
        let canvas = Deployment::new("c", "bedrock/amazon.nova-canvas-v1:0");
        let pricing = Pricing::new(&table, [&canvas]);
        let c = pricing.cost(Some(&canvas.id), usage(3, "1280x720", None));
        assert!(close(c, 0.18), "{c}");
        assert!(ImageTier::new(Some("big"), None).is_none());
    }

    /// A cost layer over an upstream that streams `chunks` (`"ERR"`: an error) and then never
    /// ends, or (with `chunks` `None`) never answers.
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
    fn prompt_cache_writes_are_priced_apart_from_plain_input() {
        let p = ModelPrice {
            input_cost_per_token: Some(1.0),
            output_cost_per_token: Some(10.0),
            cache_read_input_token_cost: Some(0.1),
            cache_creation_input_token_cost: Some(1.25),
            ..ModelPrice::default()
        };
        // 100 input tokens: 40 read from the cache, 20 written to it, 40 plain.
        let u = TokenUsage {
            cache_read: 40,
            cache_write: 20,
            ..TokenUsage::new(100, 5)
        };
        let c = p.cost(u);
        assert!((c - (40.0 + 4.0 + 25.0 + 50.0)).abs() < 1e-9, "{c}");
        // Without a write price, writes cost the input price.
        let plain = ModelPrice {
            cache_creation_input_token_cost: None,
            ..p.clone()
        };
        let c = plain.cost(u);
        assert!((c - (40.0 + 4.0 + 20.0 + 50.0)).abs() < 1e-9, "{c}");
        // Anthropic's decoded chat usage states its cache writes the same way.
        let chat = crate::provider::anthropic::usage_from(40, 5, 20, 40, 0);
        assert_eq!(TokenUsage::from(&chat).cache_write, 20);
        assert!((p.cost(&chat) - (40.0 + 4.0 + 25.0 + 50.0)).abs() < 1e-9);
    }

    #[test]
    fn rerank_search_units_are_priced_per_query() {
        let p = ModelPrice {
            input_cost_per_token: Some(0.0),
            input_cost_per_query: Some(0.002),
            ..ModelPrice::default()
        };
        let u = TokenUsage {
            search_units: 3,
            ..TokenUsage::new(0, 0)
        };
        assert!((p.cost(u) - 0.006).abs() < 1e-12);
        // Per-token rerank hosts (Jina AI, Voyage): their tokens at the input price.
        let t = PriceTable::builtin();
        let v = t
            .for_deployment(&Deployment::new("r", "voyage/rerank-2"))
            .unwrap();
        assert!((v.cost(TokenUsage::new(1000, 0)) - 5e-5).abs() < 1e-12);
        // The built-in table keeps LiteLLM's per-query prices.
        let c = t
            .for_deployment(&Deployment::new("r", "cohere/rerank-v3.5"))
            .unwrap();
        assert_eq!(c.input_cost_per_query, Some(0.002));
        // A deployment's own per-query price overrides the table and prices an unknown model.
        let mut dep = Deployment::new("r", "cohere/my-reranker");
        assert!(t.for_deployment(&dep).is_none());
        dep.params
            .insert("input_cost_per_query".into(), serde_json::json!(0.01));
        let own = t.for_deployment(&dep).unwrap();
        assert!((own.cost(u) - 0.03).abs() < 1e-12);
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
