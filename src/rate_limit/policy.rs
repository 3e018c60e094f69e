//! Which buckets a call is counted in: the [`RateLimitPolicy`] trait and its stock policies.
//!
//! A bucket is a name and a [`Quota`] (requests per minute, tokens per minute, calls in flight).
//! A call is admitted only when every bucket its policy yields has room, and it is counted in
//! all of them (Helicone's rate-limit extractor, `ai-gateway/src/middleware/rate_limit/extractor.rs`,
//! is the model).
//!
//! - [`KeyInfoLimits`]: the gateway's policy. The virtual key's, its team's, its user's and its
//!   team's organization's `rpm_limit` / `tpm_limit` / `max_parallel_requests`
//!   (`store::Limits`), from the `Arc<KeyInfo>` auth puts into the extensions, and the end
//!   user's (its budget row's, from the `Arc<EndUserInfo>` auth puts there when the store has a
//!   row for the request's `user`), as LiteLLM's rate limiter counts them (scopes `key`, `team`,
//!   `user`, `organization`, `end_user`); and the key's limits on the requested model
//!   (`model_per_key`: its `model_max_budget` entry's `rpm_limit` / `tpm_limit`, or its
//!   metadata's `model_rpm_limit` / `model_tpm_limit`). A call without either is not limited.
//! - [`PerKey`]: one [`Quota`] for each caller key ([`KeyInfo::token`], else a SHA-256 of the
//!   [`PresentedKey`]); calls that present no key share one `anonymous` bucket (fail closed).
//! - [`PerEndUser`]: one [`Quota`] for each end user the body names (OpenAI's `user`, LiteLLM's
//!   `litellm_metadata.user`, Anthropic's `metadata.user_id`).
//! - [`Global`]: one [`Quota`] for every call through the layer.
//! - Any `Fn(&LlmRequest) -> Vec<Bucket>`: by a tenant extension of your own, a header copied
//!   into the extensions, the model, …

use std::{fmt, sync::Arc};

use sha2::{Digest as _, Sha256};

use crate::{
    auth::{EndUserInfo, KeyInfo, PresentedKey},
    types::LlmRequest,
};

/// Limits of one bucket. `None` is no limit.
///
/// ```
/// use llmgate::rate_limit::Quota;
/// let q = Quota::rpm(60).tpm(100_000).max_parallel(4);
/// assert_eq!((q.rpm, q.tpm, q.max_parallel), (Some(60), Some(100_000), Some(4)));
/// assert!(Quota::default().is_unlimited());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens per minute (the calls' total tokens).
    pub tpm: Option<u64>,
    /// Calls in flight at once (a stream counts until it ends or is dropped).
    pub max_parallel: Option<u64>,
}

impl Quota {
    /// `requests` per minute, nothing else.
    #[must_use]
    pub const fn rpm(requests: u64) -> Self {
        Self {
            rpm: Some(requests),
            tpm: None,
            max_parallel: None,
        }
    }

    /// The same, with at most `tokens` per minute too.
    #[must_use]
    pub const fn tpm(mut self, tokens: u64) -> Self {
        self.tpm = Some(tokens);
        self
    }

    /// The same, with at most `calls` in flight too.
    #[must_use]
    pub const fn max_parallel(mut self, calls: u64) -> Self {
        self.max_parallel = Some(calls);
        self
    }

    /// Whether no limit is set (such a bucket is ignored).
    #[must_use]
    pub const fn is_unlimited(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.max_parallel.is_none()
    }

    /// From the store's signed limits (negative values are no limit).
    #[must_use]
    pub fn from_limits(l: &crate::store::Limits) -> Self {
        Self {
            rpm: pos(l.rpm_limit),
            tpm: pos(l.tpm_limit),
            max_parallel: pos(l.max_parallel_requests),
        }
    }
}

fn pos(v: Option<i64>) -> Option<u64> {
    v.and_then(|n| u64::try_from(n).ok())
}

/// One bucket a call is counted in: a kind (`key`, `team`, `user`, `global`, or your own), an id
/// and a [`Quota`]. Its counters are named `kind:id` (in Redis: `{prefix}:rl:kind:id…`).
///
/// The kind appears in the 429 message (`Rate limit exceeded for key: …`); the id does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub(super) kind: &'static str,
    /// `kind:id`, the counter name.
    pub(super) name: String,
    pub(super) rpm: Option<u64>,
    pub(super) tpm: Option<u64>,
    pub(super) parallel: Option<u64>,
}

impl Bucket {
    /// The bucket `kind:id` with `quota`.
    #[must_use]
    pub fn new(kind: &'static str, id: &str, quota: Quota) -> Self {
        Self {
            kind,
            name: format!("{kind}:{id}"),
            rpm: quota.rpm,
            tpm: quota.tpm,
            parallel: quota.max_parallel,
        }
    }

    /// Its kind.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Its id.
    #[must_use]
    pub fn id(&self) -> &str {
        self.name.get(self.kind.len() + 1..).unwrap_or_default()
    }

    /// Its limits.
    #[must_use]
    pub fn quota(&self) -> Quota {
        Quota {
            rpm: self.rpm,
            tpm: self.tpm,
            max_parallel: self.parallel,
        }
    }
}

/// Says which buckets a call is counted in. See the [module docs](self).
///
/// Runs in `call` for every request (except model listings, which are never limited): keep it
/// cheap. Buckets without any limit are ignored; no bucket at all lets the call through
/// uncounted.
pub trait RateLimitPolicy: Send + Sync + 'static {
    /// The buckets that apply to `req`.
    fn buckets(&self, req: &LlmRequest) -> Vec<Bucket>;
}

impl<F> RateLimitPolicy for F
where
    F: Fn(&LlmRequest) -> Vec<Bucket> + Send + Sync + 'static,
{
    fn buckets(&self, req: &LlmRequest) -> Vec<Bucket> {
        self(req)
    }
}

/// The gateway's policy: the limits of the caller's virtual key, team and user, from the
/// `Arc<KeyInfo>` extension. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyInfoLimits;

impl RateLimitPolicy for KeyInfoLimits {
    fn buckets(&self, req: &LlmRequest) -> Vec<Bucket> {
        let mut out = match req.extensions.get::<Arc<KeyInfo>>() {
            Some(info) => {
                let mut out = key_info_buckets(info);
                // The key's limits on this model (LiteLLM's `model_per_key`): the
                // `model_max_budget` entry's `rpm_limit` / `tpm_limit`, or the metadata's
                // `model_rpm_limit` / `model_tpm_limit`.
                if let Some(b) = crate::budget::model::find(&info.model_budgets, req.model()) {
                    let q = Quota {
                        rpm: pos(b.rpm_limit),
                        tpm: pos(b.tpm_limit),
                        max_parallel: None,
                    };
                    if !q.is_unlimited() {
                        out.push(Bucket::new(
                            "model_per_key",
                            &format!("{}:{}", info.token, b.model),
                            q,
                        ));
                    }
                }
                out
            }
            None => Vec::new(),
        };
        if let Some(e) = req.extensions.get::<Arc<EndUserInfo>>() {
            let q = Quota::from_limits(&e.scope.limits);
            if !q.is_unlimited() {
                // Hashed, as [`PerEndUser`] counts it: a fixed-length counter name whatever the
                // client sent (the two policies share the counter of one end user).
                out.push(Bucket::new(
                    "end_user",
                    &hex::encode(Sha256::digest(e.scope.id.as_bytes())),
                    q,
                ));
            }
        }
        out
    }
}

fn key_info_buckets(info: &KeyInfo) -> Vec<Bucket> {
    let mut out = Vec::with_capacity(4);
    let mut push = |kind: &'static str, id: &str, l: &crate::store::Limits| {
        let q = Quota::from_limits(l);
        if !q.is_unlimited() {
            out.push(Bucket::new(kind, id, q));
        }
    };
    push("key", &info.token, &info.key.limits);
    if let Some(t) = &info.team {
        push("team", &t.id, &t.limits);
    }
    if let Some(u) = &info.user {
        push("user", &u.id, &u.limits);
    }
    // The organization of the key's team: its budget row's limits (LiteLLM's
    // `organization_rpm_limit` / `organization_tpm_limit`), shared by all its teams' keys.
    if let (Some(o), Some(_)) = (&info.organization, &info.team) {
        push("organization", &o.id, &o.limits);
    }
    out
}

/// One [`Quota`] per caller key. See the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub struct PerKey(pub Quota);

impl RateLimitPolicy for PerKey {
    fn buckets(&self, req: &LlmRequest) -> Vec<Bucket> {
        let id = if let Some(info) = req.extensions.get::<Arc<KeyInfo>>() {
            info.token.to_string()
        } else if let Some(PresentedKey(key)) = req.extensions.get::<PresentedKey>() {
            // Never the key itself: it would sit in counter names (and in Redis).
            hex::encode(Sha256::digest(key.expose().as_bytes()))
        } else {
            "anonymous".to_owned()
        };
        vec![Bucket::new("key", &id, self.0)]
    }
}

/// One [`Quota`] per end user: the user the body names ([`LlmRequest::end_user`]: OpenAI's
/// `user`, LiteLLM's `litellm_metadata.user`, Anthropic's `metadata.user_id`), counted under a
/// SHA-256 of the id (a fixed-length name, whatever the client sent). A call that names no end
/// user is not counted here; stack it with a [`PerKey`] or [`Global`] policy (a closure yielding
/// both) to bound those too. See the [module docs](self).
///
/// ```
/// use llmgate::rate_limit::{PerEndUser, Quota, RateLimitPolicy};
/// use llmgate::LlmRequest;
/// let chat = serde_json::from_str(r#"{"model":"m","messages":[],"user":"customer-42"}"#).unwrap();
/// let buckets = PerEndUser(Quota::rpm(10)).buckets(&LlmRequest::chat(chat));
/// assert_eq!((buckets.len(), buckets[0].kind()), (1, "end_user"));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct PerEndUser(pub Quota);

impl RateLimitPolicy for PerEndUser {
    fn buckets(&self, req: &LlmRequest) -> Vec<Bucket> {
        match req.end_user() {
            Some(user) => vec![Bucket::new(
                "end_user",
                &hex::encode(Sha256::digest(user.as_bytes())),
                self.0,
            )],
            None => Vec::new(),
        }
    }
}

/// One [`Quota`] shared by every call. See the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub struct Global(pub Quota);

impl RateLimitPolicy for Global {
    fn buckets(&self, _req: &LlmRequest) -> Vec<Bucket> {
        vec![Bucket::new("global", "all", self.0)]
    }
}

/// Prints a policy's type (closures have no `Debug`).
pub(super) struct PolicyName<P>(pub(super) std::marker::PhantomData<fn() -> P>);

impl<P> fmt::Debug for PolicyName<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::any::type_name::<P>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{secret::Secret, store::Limits};

    fn keyed(info: KeyInfo) -> LlmRequest {
        let mut req = LlmRequest::list_models();
        req.extensions.insert(Arc::new(info));
        req
    }

    fn chat(body: &str) -> LlmRequest {
        LlmRequest::chat(serde_json::from_str(body).unwrap())
    }

    #[test]
    fn end_users_are_read_as_litellm_reads_them_and_counted_apart() {
        let q = Quota::rpm(1);
        let id = |body: &str| {
            let b = PerEndUser(q).buckets(&chat(body));
            b.first().map(|b| b.id().to_owned())
        };
        let user = id(r#"{"model":"m","messages":[],"user":"alice"}"#).unwrap();
        // `litellm_metadata.user`, then `metadata.user_id` (Anthropic's), name the same end user.
        assert_eq!(
            id(r#"{"model":"m","messages":[],"litellm_metadata":{"user":"alice"}}"#).as_ref(),
            Some(&user)
        );
        assert_eq!(
            id(r#"{"model":"m","messages":[],"metadata":{"user_id":"alice"}}"#).as_ref(),
            Some(&user)
        );
        // `user` wins over metadata; other users get other buckets; the id is hashed.
        assert_eq!(
            id(r#"{"model":"m","messages":[],"user":"alice","metadata":{"user_id":"bob"}}"#)
                .as_ref(),
            Some(&user)
        );
        let bob = id(r#"{"model":"m","messages":[],"user":"bob"}"#).unwrap();
        assert_ne!(bob, user);
        assert_eq!(user.len(), 64);
        assert!(!user.contains("alice"));
        // No end user (or an empty one): no bucket.
        assert_eq!(id(r#"{"model":"m","messages":[]}"#), None);
        assert_eq!(id(r#"{"model":"m","messages":[],"user":""}"#), None);
    }

    #[test]
    fn key_info_limits_yield_key_team_and_user_buckets_with_limits_only() {
        let mut info = KeyInfo {
            token: "tok".into(),
            ..KeyInfo::default()
        };
        info.key.limits = Limits {
            rpm_limit: Some(5),
            tpm_limit: Some(-1),
            ..Limits::default()
        };
        let mut team = crate::auth::Scope {
            id: "t1".into(),
            ..Default::default()
        };
        team.limits.max_parallel_requests = Some(2);
        info.team = Some(team);
        info.user = Some(crate::auth::Scope {
            id: "u1".into(),
            ..Default::default()
        });
        let b = KeyInfoLimits.buckets(&keyed(info));
        assert_eq!(
            b,
            vec![
                Bucket::new("key", "tok", Quota::rpm(5)),
                Bucket::new(
                    "team",
                    "t1",
                    Quota {
                        max_parallel: Some(2),
                        ..Quota::default()
                    }
                ),
            ]
        );
        assert_eq!(b[1].kind(), "team");
        assert_eq!(b[1].id(), "t1");
        assert!(KeyInfoLimits.buckets(&LlmRequest::list_models()).is_empty());
    }

    #[test]
    fn organization_and_end_user_limits_are_buckets_of_their_own() {
        let limited = |rpm: i64, tpm: i64| Limits {
            rpm_limit: Some(rpm),
            tpm_limit: Some(tpm),
            ..Limits::default()
        };
        let scope = |id: &str, l: Limits| crate::auth::Scope {
            id: id.into(),
            limits: l,
            ..Default::default()
        };
        let mut info = KeyInfo {
            token: "tok".into(),
            team: Some(scope("t1", Limits::default())),
            organization: Some(scope("o1", limited(3, 100))),
            ..KeyInfo::default()
        };
        let mut req = keyed(info.clone());
        req.extensions.insert(Arc::new(EndUserInfo {
            scope: scope("cust-1", limited(2, 50)),
            ..EndUserInfo::default()
        }));
        let b = KeyInfoLimits.buckets(&req);
        assert_eq!(b.len(), 2, "{b:?}");
        assert_eq!(
            b[0],
            Bucket::new("organization", "o1", Quota::rpm(3).tpm(100))
        );
        assert_eq!(b[1].kind(), "end_user");
        assert_eq!(b[1].quota(), Quota::rpm(2).tpm(50));
        // The end user's id is hashed, as `PerEndUser` counts it: both share one counter.
        let chat = chat(r#"{"model":"m","messages":[],"user":"cust-1"}"#);
        assert_eq!(b[1].id(), PerEndUser(Quota::rpm(1)).buckets(&chat)[0].id());
        assert!(!b[1].id().contains("cust-1"));
        // An organization counts only through the key's team (it is the team's); an end user
        // without limits is no bucket.
        info.team = None;
        let mut req = keyed(info);
        req.extensions.insert(Arc::new(EndUserInfo {
            scope: scope("cust-2", Limits::default()),
            ..EndUserInfo::default()
        }));
        assert!(KeyInfoLimits.buckets(&req).is_empty());
        // An end user alone (no key: an open gateway) is still counted.
        let mut req = LlmRequest::list_models();
        req.extensions.insert(Arc::new(EndUserInfo {
            scope: scope("cust-3", limited(1, 1)),
            ..EndUserInfo::default()
        }));
        assert_eq!(KeyInfoLimits.buckets(&req).len(), 1);
    }

    #[test]
    fn per_key_uses_the_key_hash_never_the_key_and_shares_one_bucket_without_a_key() {
        let q = Quota::rpm(1);
        let mut req = LlmRequest::list_models();
        req.extensions
            .insert(PresentedKey(Secret::new("sk-secret-1")));
        let a = PerKey(q).buckets(&req);
        assert_eq!(a.len(), 1);
        assert!(!a[0].id().contains("sk-secret"), "{}", a[0].id());
        assert_eq!(a[0].id().len(), 64);
        let mut other = LlmRequest::list_models();
        other
            .extensions
            .insert(PresentedKey(Secret::new("sk-secret-2")));
        assert_ne!(PerKey(q).buckets(&other), a);
        // A virtual key's info wins over the presented key.
        let info = KeyInfo {
            token: "tok".into(),
            ..KeyInfo::default()
        };
        req.extensions.insert(Arc::new(info));
        assert_eq!(PerKey(q).buckets(&req)[0].id(), "tok");
        let none = PerKey(q).buckets(&LlmRequest::list_models());
        assert_eq!(none, vec![Bucket::new("key", "anonymous", q)]);
    }

    #[test]
    fn global_is_one_bucket_and_a_closure_is_a_policy() {
        assert_eq!(
            Global(Quota::rpm(3)).buckets(&LlmRequest::list_models()),
            vec![Bucket::new("global", "all", Quota::rpm(3))]
        );
        #[derive(Clone)]
        struct Tenant(&'static str);
        let by_tenant = |req: &LlmRequest| match req.extensions.get::<Tenant>() {
            Some(t) => vec![Bucket::new("tenant", t.0, Quota::rpm(2))],
            None => Vec::new(),
        };
        let mut req = LlmRequest::list_models();
        assert!(by_tenant.buckets(&req).is_empty());
        req.extensions.insert(Tenant("acme"));
        let b = by_tenant.buckets(&req);
        assert_eq!((b[0].kind(), b[0].id()), ("tenant", "acme"));
        assert_eq!(b[0].quota(), Quota::rpm(2));
    }
}
