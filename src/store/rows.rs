//! The rows the store keeps: keys, teams, users, spend-log rows, and what a spend write returns.
//! Plain data, shared by every [`KeyStore`](super::KeyStore) / [`SpendSink`](super::SpendSink)
//! implementation and the management API.

use std::{collections::HashMap, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::secret::Secret;

/// Limits shared by keys, teams and users.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Spend cap in USD.
    pub max_budget: Option<f64>,
    /// Budget period (`30d`, `1h`, …); spend resets when it ends.
    pub budget_duration: Option<String>,
    /// Tokens per minute.
    pub tpm_limit: Option<i64>,
    /// Requests per minute.
    pub rpm_limit: Option<i64>,
    /// Concurrent requests.
    pub max_parallel_requests: Option<i64>,
}

/// A virtual key as stored (never the key itself).
#[derive(Clone, Debug, Default, Serialize)]
pub struct KeyRow {
    /// SHA-256 of the key (hex).
    pub token: String,
    /// The masked key (`sk-…Ab`).
    pub key_name: Option<String>,
    /// A human name.
    pub key_alias: Option<String>,
    /// Model groups the key may call (empty: all the team allows).
    pub models: Vec<String>,
    /// Spend so far in this budget period, USD.
    pub spend: f64,
    /// Limits and budget.
    #[serde(flatten)]
    pub limits: Limits,
    /// When the budget period ends (Unix ms).
    pub budget_reset_at: Option<i64>,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// Owning team.
    pub team_id: Option<String>,
    /// Owning user.
    pub user_id: Option<String>,
    /// Expiry (Unix ms).
    pub expires: Option<i64>,
    /// Refused while set.
    pub blocked: bool,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
    /// Model-specific budgets and limits (LiteLLM's `model_max_budget`: model →
    /// `{max_budget, budget_duration, tpm_limit, rpm_limit}`, plus each model's period end,
    /// `budget_reset_at`); see [`crate::store::model_budget`].
    pub model_max_budget: Map<String, Value>,
    /// Spend per model with a budget in its current period (LiteLLM's `model_spend`).
    pub model_spend: Map<String, Value>,
}

/// A team.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TeamRow {
    /// Id.
    pub team_id: String,
    /// Human name.
    pub team_alias: Option<String>,
    /// Model groups members' keys may call (empty: all).
    pub models: Vec<String>,
    /// Spend this period.
    pub spend: f64,
    /// Limits and budget.
    #[serde(flatten)]
    pub limits: Limits,
    /// When the budget period ends (Unix ms).
    pub budget_reset_at: Option<i64>,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// `[{"user_id","role"}]`.
    pub members_with_roles: Vec<Value>,
    /// Refused while set.
    pub blocked: bool,
    /// The organization the team belongs to (`/organization/*`): its calls charge the
    /// organization's budget too.
    pub organization_id: Option<String>,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

/// An organization (LiteLLM's `LiteLLM_OrganizationTable`): owns teams; its limits are those of
/// its `budget_id`'s budget row, as in LiteLLM.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OrgRow {
    /// Id.
    pub organization_id: String,
    /// Human name.
    pub organization_alias: String,
    /// The budget row holding its limits (every organization has one, as in LiteLLM).
    pub budget_id: String,
    /// Model groups its teams may call (empty: all).
    pub models: Vec<String>,
    /// Spend this period (every call of its teams).
    pub spend: f64,
    /// Limits and budget, from the budget row (read-only here: change them on the budget).
    #[serde(flatten)]
    pub limits: Limits,
    /// When the budget period ends (Unix ms; the budget row's `budget_reset_at`).
    pub budget_reset_at: Option<i64>,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// Who created it.
    pub created_by: String,
    /// Who changed it last.
    pub updated_by: String,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

/// An end user, a customer of the caller (LiteLLM's `LiteLLM_EndUserTable`, `/customer/*`): the
/// `user` a request names. Its limits are its budget row's (`budget_id`), as in LiteLLM.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EndUserRow {
    /// Id (the request's `user`).
    pub user_id: String,
    /// Admin-facing name.
    pub alias: Option<String>,
    /// Spend this period.
    pub spend: f64,
    /// The region its calls must be served in (`eu`, `us`, ...; deployments' `region_name`).
    pub allowed_model_region: Option<String>,
    /// The model to use when none in the region fits.
    pub default_model: Option<String>,
    /// The budget row holding its limits.
    pub budget_id: Option<String>,
    /// Limits and budget, from the budget row.
    #[serde(flatten)]
    pub limits: Limits,
    /// When the budget period ends (Unix ms; the budget row's).
    pub budget_reset_at: Option<i64>,
    /// Its calls are refused while set.
    pub blocked: bool,
}

/// A user's membership of an organization (LiteLLM's `LiteLLM_OrganizationMembership`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct OrgMemberRow {
    /// The user.
    pub user_id: String,
    /// The organization.
    pub organization_id: String,
    /// `org_admin`, `internal_user`, `internal_user_viewer`.
    pub user_role: Option<String>,
    /// Spend of the user in the organization.
    pub spend: f64,
    /// The member's own budget row (`max_budget_in_organization`), if any.
    pub budget_id: Option<String>,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

/// A user's place in a team (LiteLLM's `LiteLLM_TeamMembership`): its spend in the team and its
/// own budget row (`max_budget_in_team`), whose limits are read with it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TeamMemberRow {
    /// The user.
    pub user_id: String,
    /// The team.
    pub team_id: String,
    /// Spend of the user's calls through the team.
    pub spend: f64,
    /// The member's budget row, if any.
    pub budget_id: Option<String>,
    /// Limits from the budget row (`max_budget` is `max_budget_in_team`).
    #[serde(flatten)]
    pub limits: Limits,
}

/// A user.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UserRow {
    /// Id.
    pub user_id: String,
    /// Email.
    pub user_email: Option<String>,
    /// `proxy_admin`, `internal_user`, …; `proxy_admin` may use the management API.
    pub user_role: Option<String>,
    /// Model groups (empty: all).
    pub models: Vec<String>,
    /// Spend this period.
    pub spend: f64,
    /// Limits and budget.
    #[serde(flatten)]
    pub limits: Limits,
    /// When the budget period ends (Unix ms).
    pub budget_reset_at: Option<i64>,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// Teams the user belongs to.
    pub teams: Vec<String>,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

/// A reusable budget (LiteLLM's `LiteLLM_BudgetTable`, `/budget/*`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct BudgetRow {
    /// Id.
    pub budget_id: String,
    /// Limits and budget.
    #[serde(flatten)]
    pub limits: Limits,
    /// Spend at which to warn (not enforced).
    pub soft_budget: Option<f64>,
    /// When the budget period ends (Unix ms).
    pub budget_reset_at: Option<i64>,
    /// Who created it (`user_id`, or `litellm_proxy_admin_name` for the master key).
    pub created_by: String,
    /// Who changed it last.
    pub updated_by: String,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

/// Fields of a key to create ([`Store::create_key`](super::Store::create_key)).
#[derive(Clone, Debug, Default)]
pub struct NewKey {
    /// A caller-chosen key (LiteLLM's `key`); generated when `None`.
    pub key: Option<Secret>,
    /// Alias.
    pub key_alias: Option<String>,
    /// Allowed models.
    pub models: Vec<String>,
    /// Limits.
    pub limits: Limits,
    /// Metadata.
    pub metadata: Map<String, Value>,
    /// Team.
    pub team_id: Option<String>,
    /// User.
    pub user_id: Option<String>,
    /// Validity (`duration`).
    pub duration: Option<Duration>,
    /// Start blocked.
    pub blocked: bool,
}

impl NewKey {
    /// The key (its given value, else a new random one) and the row every store stores for it:
    /// hashed token, masked name, the budget period's first reset, expiry from `duration`.
    ///
    /// `now` (Unix ms, on the store's clock) starts the budget period.
    ///
    /// # Errors
    /// No random key can be made (no system randomness).
    pub fn into_row(self, now: i64) -> Result<(Secret, KeyRow), super::StoreError> {
        let secret = self.key.clone().unwrap_or_else(super::generate_key);
        if secret.is_empty() {
            return Err(super::StoreError::msg(
                "cannot generate a key: no system randomness",
            ));
        }
        let row = KeyRow {
            token: super::hash_key(secret.expose()),
            key_name: Some(secret.masked()),
            key_alias: self.key_alias,
            models: self.models,
            spend: 0.0,
            budget_reset_at: super::next_reset(self.limits.budget_duration.as_deref(), now),
            limits: self.limits,
            metadata: self.metadata,
            team_id: self.team_id,
            user_id: self.user_id,
            expires: self
                .duration
                .map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
            blocked: self.blocked,
            created_at: now,
            updated_at: now,
            model_max_budget: Map::new(),
            model_spend: Map::new(),
        };
        Ok((secret, row))
    }
}

/// One spend-log row: one per call.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SpendRow {
    /// The call id (`x-litellm-call-id`).
    pub request_id: String,
    /// SHA-256 of the caller's key (empty when the gateway is open).
    pub api_key: String,
    /// Key alias.
    pub key_alias: Option<String>,
    /// Team.
    pub team_id: Option<String>,
    /// User.
    pub user_id: Option<String>,
    /// The model group the client asked for.
    pub model_group: String,
    /// The upstream model of the deployment that answered.
    pub model: Option<String>,
    /// The deployment id.
    pub model_id: Option<String>,
    /// Provider prefix.
    pub custom_llm_provider: Option<String>,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// Sum.
    pub total_tokens: i64,
    /// Cost in USD.
    pub spend: f64,
    /// Start (Unix ms).
    pub start_time: i64,
    /// End (Unix ms).
    pub end_time: i64,
    /// Latency in ms.
    pub latency_ms: i64,
    /// Served from the cache.
    pub cache_hit: bool,
    /// `success` or `failure`.
    pub status: String,
    /// Request tags.
    pub request_tags: Vec<String>,
    /// The end user the call was made for (the body's `user`; LiteLLM's `end_user`).
    #[serde(default)]
    pub end_user: Option<String>,
}

/// Filters of [`Store::spend_logs`](super::Store::spend_logs) (`/spend/logs`).
#[derive(Clone, Debug, Default)]
pub struct SpendFilter {
    /// By key hash.
    pub api_key: Option<String>,
    /// By user.
    pub user_id: Option<String>,
    /// By team.
    pub team_id: Option<String>,
    /// By call id.
    pub request_id: Option<String>,
    /// From (Unix ms, inclusive).
    pub start_ms: Option<i64>,
    /// To (Unix ms, exclusive).
    pub end_ms: Option<i64>,
    /// At most this many rows (newest first).
    pub limit: i64,
    /// Rows to skip first (paging: `(page - 1) * page_size`).
    pub offset: i64,
    /// By end user (the request's `user`).
    pub end_user: Option<String>,
    /// By model group (what the client asked for).
    pub model: Option<String>,
    /// `success`, or `failure` (every other status), as LiteLLM's `status_filter`.
    pub status: Option<String>,
}

/// One group of `/global/spend/report`: a day's spend of one team, end user, key and model.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReportRow {
    /// The UTC day, as days since 1970-01-01.
    pub day: i64,
    /// Team.
    pub team_id: Option<String>,
    /// The team's alias.
    pub team_alias: Option<String>,
    /// End user.
    pub end_user: Option<String>,
    /// Key hash.
    pub api_key: String,
    /// Model (as the upstream named it; empty when unknown).
    pub model: String,
    /// USD.
    pub spend: f64,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// Tokens.
    pub total_tokens: i64,
}

/// Whose daily spend ([`Store::daily_spend`](super::Store::daily_spend)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DailyBy {
    /// Per user (`/user/daily/activity`).
    User,
    /// Per team (`/team/daily/activity`).
    Team,
}

/// One day's spend of one user or team through one key, model and provider: LiteLLM's
/// `LiteLLM_DailyUserSpend` / `LiteLLM_DailyTeamSpend` row.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DailySpend {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// The user or team.
    pub entity: String,
    /// Key hash.
    pub api_key: String,
    /// Model (as the upstream named it; empty when unknown).
    pub model: String,
    /// Provider (empty when unknown).
    pub custom_llm_provider: String,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// USD.
    pub spend: f64,
    /// Calls.
    pub api_requests: i64,
    /// Calls that succeeded.
    pub successful_requests: i64,
    /// Calls that did not.
    pub failed_requests: i64,
}

/// Spend to add, per key, team and user, from rows that were inserted.
#[derive(Clone, Debug, Default)]
pub struct SpendTotals {
    /// Per key hash.
    pub keys: HashMap<String, f64>,
    /// Per team.
    pub teams: HashMap<String, f64>,
    /// Per user.
    pub users: HashMap<String, f64>,
    /// Per end user (LiteLLM's `LiteLLM_EndUserTable.spend`; an end user without a row is not
    /// charged).
    pub end_users: HashMap<String, f64>,
    /// Per organization (the teams' spend, charged to the organization each team belongs to;
    /// filled by the store, which knows the teams' organizations).
    pub orgs: HashMap<String, f64>,
    /// Per (team, user): a user's spend through a team (its membership row).
    pub team_members: HashMap<(String, String), f64>,
    /// Added to the proxy-wide budget row ([`PROXY_BUDGET_ID`]): every counted row's cost.
    pub proxy: f64,
    /// The proxy-wide budget row after this batch, when it exists.
    pub proxy_budget: Option<BudgetState>,
    /// Per key hash and model-budget entry: the spend added to the key's `model_spend` (keys
    /// with a `model_max_budget` entry for the model only; filled by the store).
    pub key_models: HashMap<String, HashMap<String, f64>>,
}

/// The user id of the row that holds the proxy-wide budget (`litellm_settings.max_budget`) and
/// the spend counted against it: LiteLLM's `litellm_proxy_budget_name`.
pub const PROXY_BUDGET_ID: &str = "litellm-proxy-budget";

/// A budget row's spend in its current period and when that period ends.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BudgetState {
    /// Spend this period, USD.
    pub spend: f64,
    /// End of the period (Unix ms); `None`: the budget never resets.
    pub reset_at: Option<i64>,
}
