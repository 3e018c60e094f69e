//! [`KeyInfo`]: the caller's identity, loaded from a [`KeyStore`], and why a key may not be used.

use std::sync::Arc;

use super::access::ModelCatalog;
use crate::{
    error::{ErrorKind, LlmError},
    secret::Secret,
    store::{hash_key, KeyStore, Limits, StoreError},
};

/// The model name that, in a key's or team's `models`, allows every model the gateway serves.
pub const ALL_PROXY_MODELS: &str = "all-proxy-models";

/// LiteLLM's "every model the key's team may use": in a key's list it allows what the team's
/// list allows (the team's list is checked as well, so it adds no access of its own).
pub const ALL_TEAM_MODELS: &str = "all-team-models";

/// Limits and spend of one scope (the key, its team or its user) as loaded from the store.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// The key hash, team id or user id.
    pub id: String,
    /// Limits and budget.
    pub limits: Limits,
    /// Spend stored for the current budget period (pending spend is in the spend ledger).
    pub spend: f64,
    /// When the budget period ends (Unix ms).
    pub budget_reset_at: Option<i64>,
}

/// The end user a request is made for (its `user`), as stored (`LiteLLM_EndUserTable`), put
/// into the request extensions as `Arc<EndUserInfo>` by [`Auth`](super::Auth) when the store has
/// a row for it: the [budget](crate::budget) layer refuses it over its budget.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct EndUserInfo {
    /// Its calls are refused (400) while set.
    pub blocked: bool,
    /// The region its calls must be served in (`allowed_model_region`).
    pub allowed_model_region: Option<String>,
    /// Its limits (its budget row's) and spend; `id` is the end user's id.
    pub scope: Scope,
}

impl EndUserInfo {
    /// Why this end user may not make a call now, if it may not: LiteLLM's answer for a
    /// blocked end user (400).
    #[must_use]
    pub fn refusal(&self) -> Option<LlmError> {
        self.blocked.then(|| {
            LlmError::bad_request(format!(
                "User blocked from making LLM API Calls. User={}",
                self.scope.id
            ))
            .with_code("400")
        })
    }
}

/// The caller's identity, put into the request extensions as `Arc<KeyInfo>` by [`Auth`](super::Auth).
///
/// Layers after auth read it: rate limits and budgets (per key, team and user), cost (the spend row's
/// key hash, team and user), and the cache (tenant scoping by `team_id` or `token`). A master-key
/// caller gets a `KeyInfo` too, with [`KeyInfo::is_master`] set and no limits.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct KeyInfo {
    /// SHA-256 of the key, hex: LiteLLM's `token`, the key's id everywhere after auth.
    pub token: Arc<str>,
    /// The key's alias.
    pub key_alias: Option<String>,
    /// The key's team.
    pub team_id: Option<String>,
    /// The key's user.
    pub user_id: Option<String>,
    /// Models the key may call (empty: whatever its team allows).
    pub models: Vec<String>,
    /// Models its team allows (empty: all).
    pub team_models: Vec<String>,
    /// Models its user allows (empty: all).
    pub user_models: Vec<String>,
    /// The master key.
    pub is_master: bool,
    /// May use the management API (master key, or a `proxy_admin` user's key).
    pub is_admin: bool,
    /// The key's user's `user_role` (`proxy_admin_viewer`, `internal_user`, …): what the
    /// management API lets it do.
    pub user_role: Option<String>,
    /// Expiry (Unix ms).
    pub expires: Option<i64>,
    /// Refused while set (the key's or its team's `blocked`).
    pub blocked: bool,
    /// The key's limits and spend.
    pub key: Scope,
    /// The team's limits and spend.
    pub team: Option<Scope>,
    /// The user's limits and spend.
    pub user: Option<Scope>,
    /// The organization of the key's team (`LiteLLM_TeamTable.organization_id`).
    pub organization_id: Option<String>,
    /// The organization's limits (its budget row's) and spend.
    pub organization: Option<Scope>,
    /// The key's model-specific budgets and limits (LiteLLM's `model_max_budget`, the
    /// metadata's `model_rpm_limit` / `model_tpm_limit`) with each model's stored spend.
    pub model_budgets: Vec<crate::store::model_budget::ModelBudget>,
    /// The key's user's place in the key's team (`LiteLLM_TeamMembership`): its budget row's
    /// limits (`max_budget_in_team`) and its spend in the team.
    pub team_member: Option<Scope>,
    /// The team's model aliases (`model_aliases`: alias -> model group); `None` without any.
    pub team_model_aliases: Option<Arc<std::collections::HashMap<String, String>>>,
}

impl KeyInfo {
    /// The caller with the master key.
    #[must_use]
    pub fn master(master: &Secret) -> Self {
        let token: Arc<str> = hash_key(master.expose()).into();
        Self {
            key: Scope {
                id: token.to_string(),
                ..Scope::default()
            },
            token,
            key_alias: Some("master_key".to_owned()),
            is_master: true,
            is_admin: true,
            ..Self::default()
        }
    }

    /// Whether the key (and its team and user) may call `model`, by name, wildcard pattern or
    /// `all-proxy-models` (access groups and aliases need the gateway's [`ModelCatalog`]: see
    /// [`ModelCatalog::allows`]).
    #[must_use]
    pub fn allows_model(&self, model: &str) -> bool {
        ModelCatalog::new().allows(self, model)
    }

    /// Loads a key, its team and its user from a [`KeyStore`] (budget periods rolled over).
    pub async fn load(store: &dyn KeyStore, token: &str) -> Result<Option<Self>, StoreError> {
        let Some(k) = store.key_fresh(token).await? else {
            return Ok(None);
        };
        let team = match &k.team_id {
            Some(t) => store.team(t).await?,
            None => None,
        };
        let user = match &k.user_id {
            Some(u) => store.user(u).await?,
            None => None,
        };
        let organization_id = team.as_ref().and_then(|t| t.organization_id.clone());
        let organization = match &organization_id {
            Some(o) => store.organization(o).await?,
            None => None,
        };
        let team_member = match (&team, &k.user_id) {
            (Some(t), Some(u)) => store.team_member(&t.team_id, u).await?,
            _ => None,
        };
        let team_model_aliases = match &team {
            Some(t) => Some(store.team_model_aliases(&t.team_id).await?)
                .filter(|a| !a.is_empty())
                .map(Arc::new),
            None => None,
        };
        let is_admin = user
            .as_ref()
            .and_then(|u| u.user_role.as_deref())
            .is_some_and(|r| r == "proxy_admin");
        Ok(Some(Self {
            token: k.token.clone().into(),
            key_alias: k.key_alias.clone(),
            team_id: k.team_id.clone(),
            user_id: k.user_id.clone(),
            models: k.models.clone(),
            team_models: team.as_ref().map(|t| t.models.clone()).unwrap_or_default(),
            user_models: user.as_ref().map(|u| u.models.clone()).unwrap_or_default(),
            is_master: false,
            is_admin,
            user_role: user.as_ref().and_then(|u| u.user_role.clone()),
            expires: k.expires,
            blocked: k.blocked || team.as_ref().is_some_and(|t| t.blocked),
            key: Scope {
                id: k.token.clone(),
                limits: k.limits.clone(),
                spend: k.spend,
                budget_reset_at: k.budget_reset_at,
            },
            team: team.map(|t| Scope {
                id: t.team_id,
                limits: t.limits,
                spend: t.spend,
                budget_reset_at: t.budget_reset_at,
            }),
            user: user.map(|u| Scope {
                id: u.user_id,
                limits: u.limits,
                spend: u.spend,
                budget_reset_at: u.budget_reset_at,
            }),
            organization_id,
            organization: organization.map(|o| Scope {
                id: o.organization_id,
                limits: o.limits,
                spend: o.spend,
                budget_reset_at: o.budget_reset_at,
            }),
            model_budgets: crate::store::model_budget::from_key(
                &k.model_max_budget,
                &k.model_spend,
                &k.metadata,
            ),
            team_member: team_member.map(|m| Scope {
                id: m.user_id,
                limits: m.limits,
                spend: m.spend,
                budget_reset_at: None,
            }),
            team_model_aliases,
        }))
    }

    /// Why this key may not be used at `now` (Unix ms, on the gateway's
    /// [`Clock`](crate::clock::Clock): [`KeyCache::clock`](crate::auth::KeyCache::clock)), if it
    /// may not.
    #[must_use]
    pub fn refusal(&self, now: i64) -> Option<LlmError> {
        if self.blocked {
            return Some(auth_error(
                "Authentication Error - Key is blocked. Update via `/key/unblock` if you're admin.",
            ));
        }
        if let Some(exp) = self.expires {
            if exp <= now {
                return Some(auth_error(format!(
                    "Authentication Error - Expired Key. Key Expiry time {exp} and current time {now}"
                )));
            }
        }
        None
    }
}

/// A 401 with LiteLLM's `auth_error` type.
pub(super) fn auth_error(msg: impl Into<String>) -> LlmError {
    LlmError::new(ErrorKind::Authentication, msg)
        .with_type("auth_error")
        .with_code("401")
}
