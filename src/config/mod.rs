//! LiteLLM proxy `config.yaml` loading.
//!
//! [`Config::from_path`] (or [`Config::from_yaml_str`]) parses a LiteLLM proxy config into typed
//! structs. Loading never stops at the first problem: every top-level section and every
//! `model_list` entry is deserialized on its own, so all problems are reported together as
//! [`ConfigErrors`], each naming the file and the exact key path (`model_list[3].litellm_params.timeout`).
//! Things that are not errors (unknown keys, unset environment variables) are returned as
//! warnings in [`Loaded::warnings`]; the loader does not log them itself.
//!
//! `os.environ/NAME` string values are resolved at load time, first from the config's own
//! `environment_variables` section, then from the process environment (which is never modified).
//! Resolved values are never logged, and are masked in error messages.

//!
//! Layout: `model.rs` (the typed sections), `lenient.rs` (field deserializers as lenient as
//! LiteLLM's Python), `redact.rs` (`Debug` without secrets), `load.rs` (the loader),
//! `validate.rs` (semantic checks, [`check_params`]), `error.rs` (what a load returns) and
//! `keys.rs` (every key llmgate knows, and how it supports it).

use std::collections::BTreeMap;

mod callbacks;
mod error;
pub mod keys;
mod lenient;
mod load;
mod model;
mod redact;
mod runtime;
mod upstream;
mod validate;

pub use self::callbacks::{
    CallbackSettings, Events as CallbackEvents, GenericApiSettings, LangfuseSettings, SettingError,
    KNOWN_CALLBACKS,
};
pub use self::{
    error::{Checked, ConfigError, ConfigErrors, Loaded},
    model::{
        CacheParams, Config, GeneralSettings, LitellmParams, LitellmSettings, ModelEntry,
        RouterSettings,
    },
    runtime::{body_read_timeout, redis_router_url},
    validate::check_params,
};

/// The routing strategies LiteLLM's router accepts in `router_settings.routing_strategy`.
pub const ROUTING_STRATEGIES: &[&str] = &[
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
    "cost-based-routing",
];

/// The prefix of a string value that refers to an environment variable.
pub const ENV_PREFIX: &str = "os.environ/";

/// A fallback list: each element maps a model group to the groups to try instead, in order.
pub type Fallbacks = Vec<BTreeMap<String, Vec<String>>>;

#[cfg(test)]
mod tests;
