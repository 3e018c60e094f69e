//! The deployment table: entries, wildcard groups and the routing options.

use std::{collections::HashMap, sync::Arc};

use super::{
    shared::Shared, state::DeploymentState, DeploymentService, MakeDeploymentService, Strategy,
};
use crate::provider::Deployment;

pub(super) enum EntryService {
    Fixed(DeploymentService),
    Pattern(MakeDeploymentService),
}

/// One deployment in the table.
pub(crate) struct Entry {
    pub(crate) deployment: Arc<Deployment>,
    pub(crate) state: DeploymentState,
    pub(super) service: EntryService,
}

fn info_f64(dep: &Deployment, key: &str) -> Option<f64> {
    dep.model_info.get(key).and_then(serde_json::Value::as_f64)
}

impl Entry {
    /// Price per input + output token; unknown prices sort last.
    pub(crate) fn price(&self) -> f64 {
        let d = &self.deployment;
        let input = d
            .input_cost_per_token
            .or_else(|| info_f64(d, "input_cost_per_token"));
        let output = d
            .output_cost_per_token
            .or_else(|| info_f64(d, "output_cost_per_token"));
        match (input, output) {
            (None, None) => f64::INFINITY,
            (i, o) => i.unwrap_or(0.0) + o.unwrap_or(0.0),
        }
    }

    pub(super) fn max_input_tokens(&self) -> Option<u64> {
        let d = &self.deployment;
        d.model_info
            .get("max_input_tokens")
            .or_else(|| d.model_info.get("max_tokens"))
            .and_then(serde_json::Value::as_u64)
    }
}

pub(super) struct PatternGroup {
    pub(super) name: String,
    pub(super) prefix: String,
    pub(super) suffix: String,
    pub(super) entries: Vec<Arc<Entry>>,
}

impl PatternGroup {
    pub(super) fn capture<'a>(&self, model: &'a str) -> Option<&'a str> {
        let rest = model.strip_prefix(self.prefix.as_str())?;
        let mid = rest.strip_suffix(self.suffix.as_str())?;
        (!mid.is_empty()).then_some(mid)
    }
}

/// Routing options (from `router_settings`).
#[derive(Clone, Debug, Default)]
pub(super) struct Options {
    pub(super) strategy: Strategy,
    pub(super) pre_call_checks: bool,
    pub(super) tag_filtering: bool,
    pub(super) tag_match_any: bool,
}

pub(super) struct Inner {
    pub(super) groups: HashMap<String, Vec<Arc<Entry>>>,
    pub(super) patterns: Vec<PatternGroup>,
    pub(super) aliases: HashMap<String, String>,
    pub(super) names: Arc<[String]>,
    pub(super) listed: Vec<String>,
    pub(super) options: Options,
    pub(super) shared: Option<Shared>,
    pub(super) created: u64,
    pub(super) clock: crate::clock::Clock,
}
