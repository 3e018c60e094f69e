//! Loading: YAML → JSON values, `include:`, `os.environ/` resolution, each section and
//! `model_list` entry deserialized on its own so that every problem is reported at once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::keys::{self, KeySpec, Support};
use super::{Checked, Config, ConfigError, ConfigErrors, Loaded, ModelEntry, ENV_PREFIX};
use crate::secret::Secret;

impl Config {
    /// Reads and loads the config at `path`, resolving `os.environ/NAME` from the config's
    /// `environment_variables` and then the process environment. Errors name `path` as the file.
    pub fn from_path(path: &Path) -> Result<Loaded, ConfigErrors> {
        Self::from_path_with_env(path, &process_env)
    }

    /// [`Config::from_path`] with an injected environment lookup instead of the process
    /// environment.
    pub fn from_path_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Loaded, ConfigErrors> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::load_with(&text, &file, base_dir_of(path), env),
            Err(e) => Err(ConfigErrors(vec![ConfigError::new(
                file,
                "",
                format!("cannot read the config file: {e}"),
            )
            .with_source(e)])),
        }
    }

    /// Loads a config from YAML text; `origin` names the source in errors. `os.environ/NAME`
    /// resolves from the config's `environment_variables`, then the process environment.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Loaded, ConfigErrors> {
        Self::from_yaml_str_with_env(text, origin, &process_env)
    }

    /// Loads a config from YAML text with an injected environment lookup: `os.environ/NAME`
    /// resolves from the config's `environment_variables`, then `env(NAME)`.
    pub fn from_yaml_str_with_env(
        text: &str,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Loaded, ConfigErrors> {
        Self::load_with(text, origin, PathBuf::from("."), env)
    }

    /// Loads `path` (or, with `None`, `default` named `origin`) and returns every problem found,
    /// errors and warnings together, with what could be read: for `llmgate --check`.
    #[must_use]
    pub fn check(path: Option<&Path>, default: &str, origin: &str) -> Checked {
        let (text, file, base_dir) = match path {
            Some(path) => {
                let file = path.display().to_string();
                match std::fs::read_to_string(path) {
                    Ok(text) => (text, file, base_dir_of(path)),
                    Err(e) => {
                        return Checked {
                            config: Self::default(),
                            errors: vec![ConfigError::new(
                                file,
                                "",
                                format!("cannot read the config file: {e}"),
                            )
                            .with_source(e)],
                            warnings: Vec::new(),
                        }
                    }
                }
            }
            None => (default.to_owned(), origin.to_owned(), PathBuf::from(".")),
        };
        Self::run_loader(&text, &file, base_dir, &process_env)
    }

    /// Loads YAML text whose `include:` paths are relative to `base_dir`.
    pub(super) fn load_with(
        text: &str,
        origin: &str,
        base_dir: PathBuf,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Loaded, ConfigErrors> {
        let checked = Self::run_loader(text, origin, base_dir, env);
        if checked.errors.is_empty() {
            Ok(Loaded {
                config: checked.config,
                warnings: checked.warnings,
            })
        } else {
            Err(ConfigErrors(checked.errors))
        }
    }

    pub(super) fn run_loader(
        text: &str,
        origin: &str,
        base_dir: PathBuf,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Checked {
        let mut loader = Loader {
            file: origin,
            base_dir,
            errors: Vec::new(),
            warnings: Vec::new(),
            resolved: Vec::new(),
            unset: Vec::new(),
            allow_unsupported: false,
        };
        let config = loader.load(text, env);
        loader.redact_errors();
        tracing::debug!(
            origin,
            models = config.model_list.len(),
            warnings = loader.warnings.len(),
            errors = loader.errors.len(),
            "parsed LiteLLM config"
        );
        Checked {
            config,
            errors: loader.errors,
            warnings: loader.warnings,
        }
    }

    /// The entries of model group `name`, in config order.
    pub fn deployments<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ModelEntry> + 'a {
        self.model_list.iter().filter(move |m| m.model_name == name)
    }
}

/// The directory of a config file (`include:` paths are relative to it).
pub(super) fn base_dir_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

pub(super) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub(super) struct Loader<'a> {
    pub(super) file: &'a str,
    /// The directory `include:` paths are relative to (the config file's).
    pub(super) base_dir: PathBuf,
    pub(super) errors: Vec<ConfigError>,
    pub(super) warnings: Vec<String>,
    /// (key path, value) of every resolved `os.environ/` reference, to mask them in errors.
    pub(super) resolved: Vec<(String, String)>,
    /// (key path, variable) of every `os.environ/` reference whose variable is unset.
    pub(super) unset: Vec<(String, String)>,
    /// `general_settings.allow_unsupported_config`: refused keys become warnings.
    pub(super) allow_unsupported: bool,
}

/// Appends a map key to a path: `.key`, or `["key"]` when the key would be ambiguous.
/// A mapping key that is not a scalar, as YAML on one line (at most 60 characters): how an
/// error names it (found by tests/fuzz_config.rs: such a key at the top level had no name).
pub(super) fn shown_yaml_key(key: &serde_yaml_ng::Value) -> String {
    let text = serde_yaml_ng::to_string(key).unwrap_or_default();
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None if line.is_empty() => "?".to_owned(),
        None => line,
    }
}

pub(super) fn push_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '*' | ':' | '@'));
    let seg = if plain {
        key.to_owned()
    } else {
        format!("[{}]", Value::String(key.to_owned()))
    };
    if path.is_empty() {
        seg
    } else if plain {
        format!("{path}.{seg}")
    } else {
        format!("{path}{seg}")
    }
}

pub(super) fn push_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

pub(super) fn tracked_path(prefix: &str, path: &serde_path_to_error::Path) -> String {
    let mut out = prefix.to_owned();
    for seg in path {
        out = match seg {
            serde_path_to_error::Segment::Seq { index } => push_index(&out, *index),
            serde_path_to_error::Segment::Map { key } => push_key(&out, key),
            serde_path_to_error::Segment::Enum { variant } => push_key(&out, variant),
            serde_path_to_error::Segment::Unknown => push_key(&out, "?"),
        };
    }
    out
}

pub(super) fn ignored_path(prefix: &str, path: &serde_ignored::Path<'_>) -> String {
    match path {
        serde_ignored::Path::Root => prefix.to_owned(),
        serde_ignored::Path::Seq { parent, index } => {
            push_index(&ignored_path(prefix, parent), *index)
        }
        serde_ignored::Path::Map { parent, key } => push_key(&ignored_path(prefix, parent), key),
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_path(prefix, parent),
    }
}

/// Sort key of an error: sections in the usual file order, `model_list` entries by index.
pub(super) fn error_rank(key: &str) -> (usize, usize) {
    const ORDER: &[&str] = &[
        "",
        "include",
        "environment_variables",
        "model_list",
        "litellm_settings",
        "router_settings",
        "general_settings",
    ];
    let end = key.find(['.', '[']).unwrap_or(key.len());
    let section = &key[..end];
    let rank = ORDER
        .iter()
        .position(|s| *s == section)
        .unwrap_or(ORDER.len());
    let index = key[end..]
        .strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (rank, index)
}

/// The field name of serde's "missing field `x`" message.
pub(super) fn missing_field(reason: &str) -> Option<&str> {
    reason.strip_prefix("missing field `")?.strip_suffix('`')
}

/// Whether a value turns nothing on: null, `false`, an empty string, list or mapping.
/// Whether `value` is a non-empty list of strings, each one of `known` (any case).
fn only_values(value: &Value, known: &[&str]) -> bool {
    match value {
        Value::Array(items) if !items.is_empty() && !known.is_empty() => items.iter().all(|v| {
            v.as_str()
                .is_some_and(|s| known.iter().any(|k| k.eq_ignore_ascii_case(s.trim())))
        }),
        _ => false,
    }
}

pub(super) fn is_inert(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.trim().is_empty() || s.eq_ignore_ascii_case("false"),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(true) | Value::Number(_) => false,
    }
}

pub(super) fn yaml_error_reason(e: &serde_yaml_ng::Error) -> String {
    let msg = e.to_string();
    match e.location() {
        Some(loc) if !msg.contains("line ") => {
            format!(
                "invalid YAML: {msg} at line {} column {}",
                loc.line(),
                loc.column()
            )
        }
        _ => format!("invalid YAML: {msg}"),
    }
}

impl Loader<'_> {
    pub(super) fn error(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(ConfigError::new(self.file, key, reason));
    }

    pub(super) fn load(&mut self, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Config {
        let mut config = Config::default();
        let mut yaml: serde_yaml_ng::Value = match serde_yaml_ng::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let reason = yaml_error_reason(&e);
                self.errors
                    .push(ConfigError::new(self.file, "", reason).with_source(e));
                return config;
            }
        };
        if let Err(e) = yaml.apply_merge() {
            self.error("", format!("invalid YAML merge key (<<): {e}"));
            return config;
        }
        let mut root = match self.yaml_to_json(yaml, "") {
            Value::Null => return config,
            Value::Object(map) => map,
            _ => {
                self.error(
                    "",
                    "the top level must be a mapping of sections (model_list, ...)",
                );
                return config;
            }
        };

        if let Some(v) = root.remove("include") {
            let mut seen = Vec::new();
            self.include(&mut root, v, "include", &mut seen);
        }
        if let Some(v) = root.remove("environment_variables") {
            config.environment_variables = self.environment_variables(v, env);
        }
        let section_env = config.environment_variables.clone();
        let lookup = |name: &str| section_env.get(name).cloned().or_else(|| env(name));
        for (key, value) in &mut root {
            self.resolve(value, key, &lookup);
        }

        // Every key either acts, is ignored on purpose, or is refused (see `keys`).
        self.allow_unsupported = root
            .get("general_settings")
            .and_then(|g| g.get("allow_unsupported_config"))
            .is_some_and(|v| {
                matches!(v, Value::Bool(true))
                    || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
            });
        for (name, value) in &root {
            self.check_key("", name, value, keys::TOP_LEVEL, &[]);
        }
        for (section, table) in [
            ("litellm_settings", keys::LITELLM_SETTINGS),
            ("router_settings", keys::ROUTER_SETTINGS),
            ("general_settings", keys::GENERAL_SETTINGS),
        ] {
            if let Some(Value::Object(map)) = root.get(section) {
                for (name, value) in map {
                    self.check_key(section, name, value, table, &[]);
                }
            }
        }
        let master_present = root
            .get("general_settings")
            .and_then(Value::as_object)
            .is_some_and(|g| g.contains_key("master_key"));

        if let Some(v) = root.remove("model_list") {
            config.model_list = self.model_list(&v);
        }
        if let Some(v) = root.remove("litellm_settings") {
            config.litellm_settings = self.section(&v, "litellm_settings").unwrap_or_default();
        }
        if let Some(v) = root.remove("router_settings") {
            config.router_settings = self.section(&v, "router_settings").unwrap_or_default();
        }
        if let Some(v) = root.remove("general_settings") {
            config.general_settings = self.section(&v, "general_settings").unwrap_or_default();
        }
        for (key, value) in root {
            match key.as_str() {
                "finetune_settings" => config.finetune_settings = Some(value),
                "files_settings" => config.files_settings = Some(value),
                "guardrails" => config.guardrails = Some(value),
                "credential_list" => config.credential_list = Some(value),
                "mcp_servers" => config.mcp_servers = Some(value),
                "callback_settings" => config.callback_settings = Some(value),
                "assistant_settings" => config.assistant_settings = Some(value),
                // Checked above: refused, pending or unknown (each with its message).
                _ => {}
            }
        }
        self.master_key(&mut config, master_present, &lookup);
        self.validate(&config);
        // Report in file-section order (model entries by index); discovery order otherwise.
        self.errors.sort_by_key(|e| error_rank(&e.key));
        config
    }

    /// YAML → JSON: non-string keys are stringified, tags dropped, non-finite floats become the
    /// strings `NaN`/`inf`/`-inf` (rejected later where a number is expected).
    pub(super) fn yaml_to_json(&mut self, v: serde_yaml_ng::Value, path: &str) -> Value {
        use serde_yaml_ng::Value as Y;
        match v {
            Y::Null => Value::Null,
            Y::Bool(b) => Value::Bool(b),
            Y::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Value::from(u)
                } else if let Some(i) = n.as_i64() {
                    Value::from(i)
                } else {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    match serde_json::Number::from_f64(f) {
                        Some(num) => Value::Number(num),
                        None if f.is_nan() => Value::String("NaN".to_owned()),
                        None if f > 0.0 => Value::String("inf".to_owned()),
                        None => Value::String("-inf".to_owned()),
                    }
                }
            }
            Y::String(s) => Value::String(s),
            Y::Sequence(seq) => Value::Array(
                seq.into_iter()
                    .enumerate()
                    .map(|(i, item)| self.yaml_to_json(item, &push_index(path, i)))
                    .collect(),
            ),
            Y::Mapping(mapping) => {
                let mut out = Map::new();
                for (k, item) in mapping {
                    let key = match k {
                        Y::String(s) => s,
                        Y::Bool(b) => b.to_string(),
                        Y::Number(n) => n.to_string(),
                        Y::Null => "null".to_owned(),
                        _ => {
                            // Named as written, so that even a top-level one has a key.
                            self.error(
                                push_key(path, &shown_yaml_key(&k)),
                                "a mapping key must be a string, number, boolean or null, not a list, a mapping or a tagged value",
                            );
                            continue;
                        }
                    };
                    let child = push_key(path, &key);
                    let value = self.yaml_to_json(item, &child);
                    out.insert(key, value);
                }
                Value::Object(out)
            }
            Y::Tagged(tagged) => self.yaml_to_json(tagged.value, path),
        }
    }

    pub(super) fn environment_variables(
        &mut self,
        value: Value,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let map = match value {
            Value::Null => return out,
            Value::Object(map) => map,
            _ => {
                self.error("environment_variables", "must be a mapping of NAME: value");
                return out;
            }
        };
        for (name, v) in map {
            let path = push_key("environment_variables", &name);
            let s = match v {
                Value::String(s) => match s.strip_prefix(ENV_PREFIX) {
                    Some(var) => match self.lookup(var, &path, env) {
                        Some(resolved) => resolved,
                        None => continue,
                    },
                    None => s,
                },
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                Value::Null => {
                    self.warnings.push(format!("{path}: no value; ignored"));
                    continue;
                }
                Value::Array(_) | Value::Object(_) => {
                    self.error(path, "must be a string, number or boolean");
                    continue;
                }
            };
            out.insert(name, s);
        }
        out
    }

    /// Looks up `var`, recording the resolution (for masking) or a warning when unset.
    pub(super) fn lookup(
        &mut self,
        var: &str,
        path: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<String> {
        let found = if var.is_empty() { None } else { env(var) };
        match found {
            Some(value) => {
                self.resolved.push((path.to_owned(), value.clone()));
                Some(value)
            }
            None => {
                self.unset.push((path.to_owned(), var.to_owned()));
                self.warnings.push(format!(
                    "{path}: environment variable {var:?} (from {ENV_PREFIX}{var}) is not set; the key is treated as absent"
                ));
                None
            }
        }
    }

    /// Replaces every `os.environ/NAME` string in `value` (at `path`) by the variable's value,
    /// or null when it is unset.
    pub(super) fn resolve(
        &mut self,
        value: &mut Value,
        path: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) {
        match value {
            Value::String(s) => {
                if let Some(var) = s.strip_prefix(ENV_PREFIX) {
                    let var = var.trim().to_owned();
                    *value = self
                        .lookup(&var, path, env)
                        .map_or(Value::Null, Value::String);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.resolve(item, &push_index(path, i), env);
                }
            }
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    self.resolve(item, &push_key(path, k), env);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// Deserializes `value` as `T`, recording the first type error (with its exact key path) and
    /// every unknown key (as a warning). `prefix` is the key path of `value`.
    pub(super) fn typed<T: DeserializeOwned>(&mut self, value: &Value, prefix: &str) -> Option<T> {
        let mut track = serde_path_to_error::Track::new();
        let mut unknown = Vec::new();
        let result: Result<T, serde_json::Error> = {
            let de = serde_path_to_error::Deserializer::new(value, &mut track);
            serde_ignored::deserialize(de, |p| unknown.push(ignored_path(prefix, &p)))
        };
        let inventoried = matches!(
            prefix,
            "litellm_settings" | "router_settings" | "general_settings"
        );
        for key in unknown {
            // Keys directly in an inventoried section were checked against `keys` already.
            let direct = key
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|rest| !rest.contains(['.', '[']));
            if inventoried && direct {
                continue;
            }
            self.warnings.push(format!("{key}: unknown key; ignored"));
        }
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                let key = tracked_path(prefix, &track.path());
                let reason = e.to_string();
                match missing_field(&reason) {
                    Some(field) => self.error(push_key(&key, field), "required key is missing"),
                    None => self.error(key, reason),
                }
                None
            }
        }
    }

    /// Deserializes a mapping section (or model entry); null is the default, anything but a
    /// mapping is an error (serde would otherwise accept a list as a positional struct).
    pub(super) fn section<T: DeserializeOwned + Default>(
        &mut self,
        value: &Value,
        name: &str,
    ) -> Option<T> {
        match value {
            Value::Null => Some(T::default()),
            Value::Object(_) => self.typed(value, name),
            _ => {
                self.error(name, "must be a mapping");
                None
            }
        }
    }

    pub(super) fn model_list(&mut self, value: &Value) -> Vec<ModelEntry> {
        match value {
            Value::Null => Vec::new(),
            Value::Array(items) => {
                // id → index of the first entry using it
                let mut ids: HashMap<String, usize> = HashMap::new();
                let mut entries = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let at = push_index("model_list", i);
                    if item.is_null() {
                        self.error(at, "empty model entry");
                        continue;
                    }
                    if let Some(Value::Object(params)) = item.get("litellm_params") {
                        let params_at = push_key(&at, "litellm_params");
                        for (name, value) in params {
                            self.check_key(
                                &params_at,
                                name,
                                value,
                                keys::LITELLM_PARAMS,
                                crate::provider::params::OPENAI_CHAT_PARAMS,
                            );
                        }
                    }
                    if let Some(entry) = self.section::<ModelEntry>(item, &at) {
                        self.validate_entry(&entry, &at, i, &mut ids);
                        entries.push(entry);
                    }
                }
                entries
            }
            _ => {
                self.error("model_list", "must be a list of model entries");
                Vec::new()
            }
        }
    }

    /// Merges the files named by `include` (a list of paths relative to the config file) into
    /// `root`, as LiteLLM does: a list extends the list already there, any other value replaces
    /// it. Included files may include others; a file included twice is an error.
    pub(super) fn include(
        &mut self,
        root: &mut Map<String, Value>,
        list: Value,
        at: &str,
        seen: &mut Vec<PathBuf>,
    ) {
        let items = match list {
            Value::Null => return,
            Value::Array(items) => items,
            _ => {
                self.error(at, "must be a list of file paths");
                return;
            }
        };
        for (i, item) in items.into_iter().enumerate() {
            let key = push_index(at, i);
            let Value::String(name) = item else {
                self.error(key, "must be a file path");
                continue;
            };
            let path = self.base_dir.join(&name);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    let reason = format!("cannot read included file {}: {e}", path.display());
                    self.errors
                        .push(ConfigError::new(self.file, key, reason).with_source(e));
                    continue;
                }
            };
            let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if seen.contains(&canonical) || seen.len() >= 16 {
                self.error(
                    key,
                    format!(
                        "{} is included more than once (an include cycle?)",
                        path.display()
                    ),
                );
                continue;
            }
            seen.push(canonical);
            let yaml = match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) {
                Ok(mut v) => match v.apply_merge() {
                    Ok(()) => v,
                    Err(e) => {
                        self.error(
                            key,
                            format!("{}: invalid YAML merge key (<<): {e}", path.display()),
                        );
                        continue;
                    }
                },
                Err(e) => {
                    self.error(
                        key,
                        format!("{}: {}", path.display(), yaml_error_reason(&e)),
                    );
                    continue;
                }
            };
            let map = match self.yaml_to_json(yaml, &key) {
                Value::Null => continue,
                Value::Object(map) => map,
                _ => {
                    self.error(
                        key,
                        format!("{} must hold a mapping of sections", path.display()),
                    );
                    continue;
                }
            };
            for (name, value) in map {
                if name == "include" {
                    self.include(root, value, &push_key(&key, "include"), seen);
                    continue;
                }
                match (root.get_mut(&name), value) {
                    (Some(Value::Array(mine)), Value::Array(more)) => mine.extend(more),
                    (_, value) => {
                        root.insert(name, value);
                    }
                }
            }
        }
    }

    /// Checks one key of a section against the inventory: a refused key is an error (a warning
    /// with `allow_unsupported_config`), a pending one a warning, an unknown one a warning naming
    /// the nearest known key. `extra` are further known names (OpenAI request parameters).
    pub(super) fn check_key(
        &mut self,
        section: &str,
        name: &str,
        value: &Value,
        table: &[KeySpec],
        extra: &[&str],
    ) {
        let path = push_key(section, name);
        match keys::find(table, name) {
            Some(Support::Implemented | Support::Ignored(_)) => {}
            // A value that turns nothing on (`false`, `[]`, `{}`, null) asks for nothing.
            Some(Support::Refused(_) | Support::Pending) if is_inert(value) => {}
            // A list of values llmgate implements (`callbacks: [otel]`).
            Some(Support::Refused(_))
                if only_values(value, keys::implemented_values(section, name)) => {}
            Some(Support::Refused(what)) => {
                if self.allow_unsupported {
                    self.warnings.push(format!(
                        "{path}: not supported by llmgate yet ({what}); running without it because general_settings.allow_unsupported_config is true"
                    ));
                } else {
                    self.error(
                        path,
                        format!(
                            "not supported by llmgate yet: {what}. llmgate refuses to run without what this key asks for; remove the key, or set general_settings.allow_unsupported_config: true to run without it"
                        ),
                    );
                }
            }
            Some(Support::Pending) => self
                .warnings
                .push(format!("{path}: not supported by llmgate yet; ignored")),
            None if extra.contains(&name) => {}
            None => {
                let what = if section.is_empty() {
                    "unknown top-level section"
                } else {
                    "unknown key"
                };
                let hint = keys::nearest(name, table, extra)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                self.warnings.push(format!("{path}: {what}; ignored{hint}"));
            }
        }
    }

    /// `general_settings.master_key`, failing closed: a key that is present but resolves to
    /// nothing stops start-up; without one, `LITELLM_MASTER_KEY` is the master key (as in
    /// LiteLLM, the config wins when both are set).
    pub(super) fn master_key(
        &mut self,
        config: &mut Config,
        present: bool,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) {
        const KEY: &str = "general_settings.master_key";
        const ENV: &str = "LITELLM_MASTER_KEY";
        if present {
            if let Some((_, var)) = self.unset.iter().find(|(p, _)| p == KEY) {
                let var = var.clone();
                let own = format!("{KEY}:");
                self.warnings.retain(|w| !w.starts_with(&own));
                self.error(
                    KEY,
                    format!(
                        "refers to the environment variable {var:?} ({ENV_PREFIX}{var}), which is not set; llmgate does not start without the authentication the config asks for"
                    ),
                );
                return;
            }
            match &config.general_settings.master_key {
                None => self.error(
                    KEY,
                    "has no value; set a key (sk-...), or remove master_key to run without authentication",
                ),
                Some(k) if k.expose().trim().is_empty() => self.error(
                    KEY,
                    "is empty; set a key (sk-...), or remove master_key to run without authentication",
                ),
                Some(_) => {}
            }
        } else if let Some(v) = lookup(ENV) {
            if v.trim().is_empty() {
                self.error(
                    KEY,
                    format!("{ENV} is set but empty; set a key (sk-...) or unset {ENV} to run without authentication"),
                );
            } else {
                config.general_settings.master_key = Some(Secret::new(v));
                config.general_settings.master_key_from_env = true;
            }
        }
        if let Some(k) = &config.general_settings.master_key {
            if !k.expose().trim().is_empty() && !k.expose().starts_with("sk-") {
                let source = if config.general_settings.master_key_from_env {
                    ENV
                } else {
                    KEY
                };
                self.warnings.push(format!(
                    "{KEY}: weak master key: the key from {source} does not start with `sk-` (LiteLLM's keys do; key scanners and clients recognise them by it)"
                ));
            }
        }
    }

    /// Masks resolved environment values in error reasons: always at the key the value was
    /// resolved for (and below it), anywhere for values long enough not to be ambiguous.
    pub(super) fn redact_errors(&mut self) {
        if self.resolved.is_empty() {
            return;
        }
        for e in &mut self.errors {
            for (path, value) in &self.resolved {
                if value.is_empty() {
                    continue;
                }
                let here = e.key == *path
                    || e.key.starts_with(&format!("{path}."))
                    || e.key.starts_with(&format!("{path}["));
                if (here || value.len() >= 4) && e.reason.contains(value.as_str()) {
                    e.reason = e.reason.replace(value.as_str(), "*****");
                }
            }
        }
    }
}
