//! Provider pass-through routes: `/anthropic/{path}`, `/openai/{path}`, `/gemini/{path}`,
//! `/vertex_ai/{path}`, `/bedrock/{path}`, `/azure/{path}`, `/ollama/{path}` forward any method
//! and path to the provider's own API with a deployment's credentials, and relay the answer
//! (status, headers, body) as it comes.
//!
//! The way through the gateway:
//!
//! - the edge ([`OpenAiServer`](crate::server::OpenAiServer)) matches the route, checks the
//!   caller's key before the body (virtual keys; on `/gemini/…` also Gemini's `?key=` and
//!   `x-goog-api-key`, as LiteLLM accepts them), reads the body under the body limit, and makes an
//!   [`Operation::PassThrough`](crate::types::Operation::PassThrough) whose model is the model
//!   group [`PassThroughRoutes`] names for the family;
//! - every layer applies to it as to chat: model access, rate limits (rpm; tpm with the usage
//!   read from the answer), budgets, cost and spend rows, the router (which picks the group's
//!   deployment), health, timeouts. It is never cached, retried or sent to a fallback (it may
//!   change things upstream);
//! - the provider level (`provider::passthrough`) builds the upstream request from the client's
//!   method, path, query, headers and bytes with the deployment's base URL and credentials
//!   (API keys, Bedrock's SigV4, Vertex AI's OAuth token), and relays the upstream's status,
//!   headers and body; the body streams to the client chunk by chunk, never collected, while a
//!   [`usage::UsageScanner`] reads the usage the answer states.
//!
//! Which deployment's credentials a route uses ([`PassThroughRoutes::from_groups`]): the group
//! of the first deployment of that provider marked `use_in_pass_through: true` (LiteLLM's
//! `litellm_params` key), else of the first deployment of that provider in `model_list`. A
//! family with no deployment has no route (404).

pub mod upload;
pub mod usage;

use std::sync::Arc;

use crate::types::{deployment::Deployment, passthrough::Family};

/// The model group each pass-through family's calls go to. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct PassThroughRoutes {
    groups: Arc<[(Family, Arc<str>)]>,
}

impl PassThroughRoutes {
    /// No pass-through routes (every `/{family}/…` path goes to the fallback service).
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// A route for each family to the given group.
    #[must_use]
    pub fn with(routes: impl IntoIterator<Item = (Family, String)>) -> Self {
        let mut out: Vec<(Family, Arc<str>)> = Vec::new();
        for (family, group) in routes {
            if !out.iter().any(|(f, _)| *f == family) {
                out.push((family, group.into()));
            }
        }
        Self { groups: out.into() }
    }

    /// The routes for a gateway's model groups, in config order (see the
    /// [module docs](self)): per family, the group of the first deployment of that provider marked
    /// `use_in_pass_through: true`, else of the first deployment of that provider. A group whose
    /// every deployment is of the family is preferred to one that mixes providers, since the
    /// router may pick any deployment of the group.
    pub fn from_groups<'a, G, D>(groups: G) -> Self
    where
        G: IntoIterator<Item = (&'a str, D)>,
        D: IntoIterator<Item = &'a Arc<Deployment>>,
    {
        let groups: Vec<(&str, Vec<&Arc<Deployment>>)> = groups
            .into_iter()
            .map(|(g, d)| (g, d.into_iter().collect()))
            .collect();
        let mut routes = Vec::new();
        for family in Family::ALL {
            let mut best: Option<(u8, &str)> = None;
            for (group, deps) in &groups {
                if deps.is_empty() || group.contains('*') {
                    continue;
                }
                let serving: Vec<_> = deps.iter().filter(|d| family.serves(&d.provider)).collect();
                if serving.is_empty() {
                    continue;
                }
                let marked = serving.iter().any(|d| marked_for_pass_through(d));
                let pure = serving.len() == deps.len();
                // Lower is better: marked and pure, marked, pure, any.
                let rank = match (marked, pure) {
                    (true, true) => 0,
                    (true, false) => 1,
                    (false, true) => 2,
                    (false, false) => 3,
                };
                if best.is_none_or(|(r, _)| rank < r) {
                    best = Some((rank, group));
                }
            }
            if let Some((_, group)) = best {
                routes.push((family, group.to_owned()));
            }
        }
        Self::with(routes)
    }

    /// The model group `family`'s calls go to, if the family has a route.
    #[must_use]
    pub fn group(&self, family: Family) -> Option<&Arc<str>> {
        self.groups
            .iter()
            .find(|(f, _)| *f == family)
            .map(|(_, g)| g)
    }

    /// Every route: the family and its group.
    pub fn iter(&self) -> impl Iterator<Item = (Family, &str)> + '_ {
        self.groups.iter().map(|(f, g)| (*f, &**g))
    }
}

/// Whether a deployment says `use_in_pass_through: true` (LiteLLM's flag for the deployment whose
/// credentials pass-through routes use).
#[must_use]
pub fn marked_for_pass_through(dep: &Deployment) -> bool {
    dep.param("use_in_pass_through")
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(group: &str, model: &str) -> Arc<Deployment> {
        Arc::new(Deployment::new(group, model))
    }

    #[test]
    fn the_first_deployment_of_a_provider_unless_one_is_marked() {
        let a1 = dep("claude-a", "anthropic/claude-1");
        let mixed = [
            dep("mixed", "anthropic/claude-x"),
            dep("mixed", "openai/gpt-x"),
        ];
        let o1 = dep("gpt", "openai/gpt-4o");
        let mut marked = Deployment::new("claude-b", "anthropic/claude-2");
        marked
            .params
            .insert("use_in_pass_through".into(), serde_json::Value::Bool(true));
        let marked = Arc::new(marked);
        let ol = dep("local", "ollama_chat/llama3");
        let groups: Vec<(&str, Vec<&Arc<Deployment>>)> = vec![
            ("mixed", mixed.iter().collect()),
            ("claude-a", vec![&a1]),
            ("gpt", vec![&o1]),
            ("claude-b", vec![&marked]),
            ("local", vec![&ol]),
        ];
        let routes = PassThroughRoutes::from_groups(groups.clone());
        assert_eq!(
            routes.group(Family::Anthropic).map(|g| &**g),
            Some("claude-b")
        );
        assert_eq!(routes.group(Family::OpenAi).map(|g| &**g), Some("gpt"));
        assert_eq!(routes.group(Family::Ollama).map(|g| &**g), Some("local"));
        assert!(routes.group(Family::Bedrock).is_none());

        // Without the mark: the first pure group.
        let routes =
            PassThroughRoutes::from_groups(groups.into_iter().filter(|(g, _)| *g != "claude-b"));
        assert_eq!(
            routes.group(Family::Anthropic).map(|g| &**g),
            Some("claude-a")
        );
        // Only a mixed group: it is used.
        let routes = PassThroughRoutes::from_groups([("mixed", mixed.iter())]);
        assert_eq!(routes.group(Family::OpenAi).map(|g| &**g), Some("mixed"));
    }
}
