//! The provider side of [`Deployment`]: its environment fallbacks and what its provider resolves
//! once (see [`resolve`](super::resolve)). The type itself is part of the shared vocabulary
//! (`types/deployment.rs`).

use std::{borrow::Cow, sync::Arc};

use super::resolve::{self, process_var, DeploymentEnv, Resolved};
pub use crate::types::deployment::{split_provider, stable_id, Deployment};

impl Deployment {
    /// A deployment of `model` (`provider/upstream-model`) serving `model_group`.
    ///
    /// The provider's environment fallbacks (`OPENAI_API_KEY`, `AZURE_API_BASE`, …) are read from
    /// the process environment now; [`with_env`](Self::with_env) reads them from elsewhere.
    #[must_use]
    pub fn new(model_group: &str, model: &str) -> Self {
        let (provider, upstream) = split_provider(model);
        Self {
            id: stable_id(model_group, model, "").into(),
            model_group: model_group.into(),
            provider: provider.into(),
            model: upstream.into(),
            env: Some(Arc::new(DeploymentEnv::read(provider, &process_var))),
            ..Self::default()
        }
    }

    /// Reads the provider's environment fallbacks through `lookup` instead of the process
    /// environment (tests, or a secret store), and forgets what was resolved.
    ///
    /// ```
    /// use llmgate::provider::Deployment;
    ///
    /// let dep = Deployment::new("gpt", "azure/my-gpt").with_env(|name| match name {
    ///     "AZURE_API_BASE" => Some("https://res.openai.azure.com".to_owned()),
    ///     "AZURE_API_KEY" => Some("key".to_owned()),
    ///     _ => None,
    /// });
    /// assert_eq!(dep.env_var("AZURE_API_KEY"), Some("key"));
    /// ```
    #[must_use]
    pub fn with_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        self.env = Some(Arc::new(DeploymentEnv::read(&self.provider, &lookup)));
        self.unresolve();
        self
    }

    /// An environment variable the provider falls back on, as read when the deployment was built
    /// (`None` when unset, empty, or not one its provider reads).
    #[must_use]
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env()?.var(name)
    }

    /// The environment read for this deployment.
    pub(crate) fn env(&self) -> Option<&DeploymentEnv> {
        self.env.as_deref()?.downcast_ref::<DeploymentEnv>()
    }

    /// What the calls of provider family `family` need, resolved once (see the
    /// [`resolve`](super::resolve) module).
    #[inline]
    pub(crate) fn resolved(&self, family: &str) -> Cow<'_, Resolved> {
        resolve::resolved_for(self, &self.resolved, self.env(), family)
    }

    /// Resolves everything for `family` and the response header values now: for a step that
    /// builds a stack, so that no call pays for it.
    pub(crate) fn prepare(&self, family: &str) {
        let _ = self.resolved(family);
        self.prepare_headers();
    }
}
