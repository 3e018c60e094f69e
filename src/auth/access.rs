//! Model access: which model groups a caller may reach, checked on every path a request can take.
//!
//! A key's, team's or user's `models` list allows a model when it is empty, holds
//! `all-proxy-models` or `*`, names the model, holds a wildcard pattern matching it (`openai/*`,
//! `gpt-4*`: `*` matches any run of characters), or names an access group (`model_info.access_groups`
//! of the model's deployments). A `model_group_alias` is allowed when the alias or the group it
//! names is allowed (LiteLLM's `_can_object_call_model`). A comma-separated model (`"a,b"`) is
//! allowed only when every name in it is.
//!
//! The gateway knows the aliases and access groups from the config; [`ModelCatalog`] holds them,
//! built once. A check reads the caller's lists and the catalog: no allocation, no lock.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use super::{KeyInfo, ALL_PROXY_MODELS, ALL_TEAM_MODELS};
use crate::{
    error::{ErrorKind, LlmError},
    fallback::GroupAccess,
    types::LlmRequest,
};

/// What model access needs to know about the gateway's model groups: the groups (so a name routes
/// where the router routes it), `model_group_alias` targets and each group's access groups
/// (`model_info.access_groups` of its deployments).
#[derive(Clone, Debug, Default)]
pub struct ModelCatalog {
    /// Groups without `*`.
    groups: HashSet<String>,
    /// Wildcard groups (`openai/*`) as the router matches them: prefix, suffix, name; most
    /// literal characters first, then in the order added.
    patterns: Vec<(String, String, String)>,
    aliases: HashMap<String, String>,
    /// Model group → its access groups.
    access: HashMap<String, Vec<String>>,
}

impl ModelCatalog {
    /// A catalog without groups, aliases or access groups.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds model group `group` (a wildcard group such as `openai/*` too). Groups must be added
    /// for access groups to resolve as the router routes: a name served by a group of its own
    /// never takes a wildcard group's access groups.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        let group = group.into();
        match group.split_once('*') {
            Some((prefix, suffix)) => {
                if !self.patterns.iter().any(|p| p.2 == group) {
                    self.patterns
                        .push((prefix.to_owned(), suffix.replace('*', ""), group.clone()));
                    self.patterns
                        .sort_by_key(|p| std::cmp::Reverse(p.0.len() + p.1.len()));
                }
            }
            None => {
                self.groups.insert(group);
            }
        }
        self
    }

    /// `alias` names model group `group` (`model_group_alias`).
    #[must_use]
    pub fn alias(mut self, alias: impl Into<String>, group: impl Into<String>) -> Self {
        self.aliases.insert(alias.into(), group.into());
        self
    }

    /// Model group `group` belongs to `access_group` (adds the group too).
    #[must_use]
    pub fn access_group(
        mut self,
        group: impl Into<String>,
        access_group: impl Into<String>,
    ) -> Self {
        let group = group.into();
        let access_group = access_group.into();
        self = self.group(group.clone());
        let list = self.access.entry(group).or_default();
        if !list.contains(&access_group) {
            list.push(access_group);
        }
        self
    }

    /// Whether the catalog has neither aliases nor access groups.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.aliases.is_empty() && self.access.is_empty()
    }

    /// The access groups of the group `model` routes to, as the router resolves it: the group of
    /// that name; none for an alias (its target is checked on its own); else the first wildcard
    /// group whose pattern matches.
    fn access_groups_of(&self, model: &str) -> &[String] {
        if let Some(v) = self.access.get(model) {
            return v;
        }
        if self.groups.contains(model) || self.aliases.contains_key(model) {
            return &[];
        }
        self.patterns
            .iter()
            .find(|(prefix, suffix, _)| {
                model
                    .strip_prefix(prefix.as_str())
                    .and_then(|rest| rest.strip_suffix(suffix.as_str()))
                    .is_some_and(|mid| !mid.is_empty())
            })
            .and_then(|(_, _, name)| self.access.get(name))
            .map_or(&[], Vec::as_slice)
    }

    /// Whether `list` (a key's, team's or user's `models`) allows `model`.
    #[must_use]
    pub fn list_allows(&self, list: &[String], model: &str) -> bool {
        if list.is_empty() {
            return true;
        }
        if model.contains(',') {
            return model
                .split(',')
                .all(|part| self.one_allowed(list, part.trim()));
        }
        self.one_allowed(list, model)
    }

    fn one_allowed(&self, list: &[String], model: &str) -> bool {
        if model.is_empty() {
            return false;
        }
        self.name_allowed(list, model)
            || self
                .aliases
                .get(model)
                .is_some_and(|target| self.name_allowed(list, target))
    }

    fn name_allowed(&self, list: &[String], model: &str) -> bool {
        if list.iter().any(|m| {
            m == model
                || m == ALL_PROXY_MODELS
                || m == ALL_TEAM_MODELS
                || m == "*"
                || (m.contains('*') && glob(m, model))
        }) {
            return true;
        }
        if self.access.is_empty() {
            return false;
        }
        let groups = self.access_groups_of(model);
        !groups.is_empty() && list.iter().any(|m| groups.contains(m))
    }

    /// Why the caller may not use `model` (LiteLLM's 401, naming the scope whose list refuses
    /// it: key, then team, then user), or `Ok` when it may.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Authentication`] (401), type `key_model_access_denied`,
    /// `team_model_access_denied` or `user_model_access_denied`, param `model`.
    pub fn check(&self, info: &KeyInfo, model: &str) -> Result<(), LlmError> {
        match self.first_denied(info, model) {
            Some((whose, list)) => Err(denied(whose, list, model)),
            None => Ok(()),
        }
    }

    /// Whether the caller may use `model`.
    #[must_use]
    pub fn allows(&self, info: &KeyInfo, model: &str) -> bool {
        self.first_denied(info, model).is_none()
    }

    /// The first scope (`key`, `team`, `user`) whose `models` list does not allow `model`, with
    /// that list; `None` when every scope allows it (or the caller is the master key).
    fn first_denied<'a>(
        &self,
        info: &'a KeyInfo,
        model: &str,
    ) -> Option<(&'static str, &'a [String])> {
        if info.is_master {
            return None;
        }
        [
            ("key", &info.models),
            ("team", &info.team_models),
            ("user", &info.user_models),
        ]
        .into_iter()
        .find(|(_, list)| !self.list_allows(list, model))
        .map(|(whose, list)| (whose, list.as_slice()))
    }
}

/// LiteLLM's model-access refusal.
fn denied(whose: &str, list: &[String], model: &str) -> LlmError {
    LlmError::new(
        ErrorKind::Authentication,
        format!(
            "{whose} not allowed to access model. This {whose} can only access models={list:?}. Tried to access {model}"
        ),
    )
    .with_type(format!("{whose}_model_access_denied"))
    .with_param("model")
    .with_code("401")
}

/// `pattern` (with `*` matching any run of characters, the empty one included) matches all of
/// `name`. No allocation; backtracks only to the last `*`.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The fallback layer's question "may this caller use group G", answered from the caller's
/// `Arc<KeyInfo>` (put into the extensions by [`Auth`](super::Auth)) and the [`ModelCatalog`].
/// A request without one (an open gateway, or a stack without virtual keys) may use every group.
#[derive(Clone, Debug)]
pub struct ModelAccess {
    catalog: Arc<ModelCatalog>,
}

impl ModelAccess {
    /// Checks against `catalog`.
    #[must_use]
    pub fn new(catalog: Arc<ModelCatalog>) -> Self {
        Self { catalog }
    }
}

impl GroupAccess for ModelAccess {
    fn allows(&self, req: &LlmRequest, group: &str) -> bool {
        req.extensions
            .get::<Arc<KeyInfo>>()
            .is_none_or(|info| self.catalog.allows(info, group))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn glob_matches_whole_names() {
        assert!(glob("openai/*", "openai/gpt-4o"));
        assert!(glob("*", "anything"));
        assert!(glob("gpt-*-mini", "gpt-4o-mini"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(glob("openai/*", "openai/"));
        assert!(!glob("openai/*", "azure/openai/gpt"));
        assert!(!glob("gpt-*-mini", "gpt-4o"));
        assert!(!glob("a*b", "ab-c"));
        assert!(!glob("abc", "abcd"));
    }

    #[test]
    fn lists_allow_names_patterns_groups_and_aliases() {
        let cat = ModelCatalog::new()
            .alias("smart", "gpt-4o")
            .access_group("gpt-4o", "beta")
            .access_group("anthropic/*", "claude-users");
        // Empty and all-models lists.
        assert!(cat.list_allows(&[], "x"));
        assert!(cat.list_allows(&list(&[ALL_PROXY_MODELS]), "x"));
        assert!(cat.list_allows(&list(&["*"]), "x"));
        // Names and patterns.
        assert!(cat.list_allows(&list(&["a"]), "a"));
        assert!(!cat.list_allows(&list(&["a"]), "b"));
        assert!(cat.list_allows(&list(&["openai/*"]), "openai/gpt-4o"));
        assert!(!cat.list_allows(&list(&["openai/*"]), "anthropic/claude"));
        // Access groups, of a group and of a wildcard group.
        assert!(cat.list_allows(&list(&["beta"]), "gpt-4o"));
        assert!(!cat.list_allows(&list(&["beta"]), "other"));
        assert!(cat.list_allows(&list(&["claude-users"]), "anthropic/claude-3"));
        assert!(!cat.list_allows(&list(&["claude-users"]), "openai/gpt-4o"));
        // Aliases: the alias or its target.
        assert!(cat.list_allows(&list(&["gpt-4o"]), "smart"));
        assert!(cat.list_allows(&list(&["beta"]), "smart"));
        assert!(cat.list_allows(&list(&["smart"]), "smart"));
        assert!(!cat.list_allows(&list(&["smart"]), "gpt-4o"));
        // Comma lists: every name.
        assert!(cat.list_allows(&list(&["a", "b"]), "a, b"));
        assert!(!cat.list_allows(&list(&["a"]), "a,b"));
        assert!(!cat.list_allows(&list(&["gpt-*"]), "gpt-4,claude"));
        assert!(!cat.list_allows(&list(&["a"]), "a,"));
    }

    /// Access groups follow routing: a name served by its own group, an alias, or a more
    /// specific wildcard group never takes a catch-all wildcard group's access groups.
    #[test]
    fn access_groups_resolve_as_the_router_routes() {
        let cat = ModelCatalog::new()
            .group("gpt-4o")
            .group("openai/*")
            .access_group("*", "anything")
            .alias("smart", "gpt-4o");
        let any = list(&["anything"]);
        assert!(cat.list_allows(&any, "some-model"));
        assert!(!cat.list_allows(&any, "gpt-4o"));
        assert!(!cat.list_allows(&any, "openai/gpt-4o"));
        assert!(!cat.list_allows(&any, "smart"));
    }

    #[test]
    fn check_names_the_refusing_scope() {
        let cat = ModelCatalog::new();
        let info = KeyInfo {
            models: list(&["a", "b"]),
            team_models: list(&["a"]),
            user_models: list(&["c"]),
            ..KeyInfo::default()
        };
        let e = cat.check(&info, "z").unwrap_err();
        assert_eq!(e.status(), 401);
        assert_eq!(
            e.message(),
            "key not allowed to access model. This key can only access models=[\"a\", \"b\"]. Tried to access z"
        );
        assert_eq!(e.error_type(), "key_model_access_denied");
        let e = cat.check(&info, "b").unwrap_err();
        assert_eq!(e.error_type(), "team_model_access_denied");
        let e = cat.check(&info, "a").unwrap_err();
        assert_eq!(e.error_type(), "user_model_access_denied");
        assert!(!cat.allows(&info, "a"));
        let master = KeyInfo {
            is_master: true,
            ..info
        };
        assert!(cat.check(&master, "z").is_ok());
    }

    /// LiteLLM's `all-team-models` in a key's list: the team's list decides.
    #[test]
    fn all_team_models_defers_to_the_team() {
        let cat = ModelCatalog::new();
        let info = KeyInfo {
            models: list(&[ALL_TEAM_MODELS]),
            team_models: list(&["a"]),
            ..KeyInfo::default()
        };
        assert!(cat.check(&info, "a").is_ok());
        let e = cat.check(&info, "b").unwrap_err();
        assert_eq!(e.error_type(), "team_model_access_denied");
    }
}
