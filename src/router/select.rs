//! The pick: model name, cooldown, context window, tags, usage, order, concurrency, strategy.

use std::{sync::Arc, time::Duration};

use super::{
    strategy,
    table::{Entry, EntryService, Inner},
    DeploymentService, RouteLog, Strategy,
};
use crate::{
    error::{ErrorKind, LlmError},
    provider::{split_provider, Deployment},
    types::{models::ModelList, LlmRequest, LlmResponse, ResponseBody},
};

/// A rough prompt token count (enough to keep a request off a deployment whose window it clearly
/// exceeds): the operation's own estimate ([`Operation::estimate_input_tokens`]), the one the
/// cost layer and the rate limiter use for calls cut short.
///
/// [`Operation::estimate_input_tokens`]: crate::types::Operation::estimate_input_tokens
#[must_use]
pub fn estimate_prompt_tokens(req: &LlmRequest) -> u64 {
    req.op.estimate_input_tokens()
}

/// The request's tags: body `tags`, else `metadata.tags`.
fn request_tags(req: &LlmRequest) -> Vec<String> {
    let Some(chat) = req.as_chat() else {
        return Vec::new();
    };
    chat.extra
        .get_as::<Vec<String>>("tags")
        .or_else(|| {
            chat.metadata
                .as_ref()
                .and_then(|m| m.get("tags"))
                .and_then(|t| serde_json::from_value(t.clone()).ok())
        })
        .unwrap_or_default()
}

/// The picked deployment and its stack.
pub(super) struct Selection {
    pub(super) entry: Arc<Entry>,
    pub(super) deployment: Arc<Deployment>,
}

impl Selection {
    pub(super) fn service(&self) -> DeploymentService {
        match &self.entry.service {
            EntryService::Fixed(s) => s.clone(),
            EntryService::Pattern(make) => make(self.deployment.clone()),
        }
    }
}

impl Inner {
    pub(super) fn resolve<'a>(
        &'a self,
        model: &'a str,
    ) -> Option<(&'a [Arc<Entry>], Option<&'a str>, &'a str)> {
        if let Some(v) = self.groups.get(model) {
            return Some((v, None, model));
        }
        let target = self.aliases.get(model).map_or(model, String::as_str);
        if let Some(v) = self.groups.get(target) {
            return Some((v, None, target));
        }
        self.patterns
            .iter()
            .find_map(|p| p.capture(target).map(|c| (&p.entries[..], Some(c), target)))
    }

    pub(super) fn unknown_model(&self, model: &str) -> LlmError {
        let mut available = self.listed.join(", ");
        if available.is_empty() {
            available.push_str("none");
        }
        LlmError::new(
            ErrorKind::NotFound,
            format!(
                "The model `{model}` does not exist or you do not have access to it. Models available: {available}"
            ),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    pub(super) fn usage_checks(&self) -> bool {
        self.options.pre_call_checks || self.options.strategy == Strategy::UsageBased
    }

    /// Runs the filters and the strategy (no await, no lock).
    pub(super) fn select(
        &self,
        req: &LlmRequest,
        log: Option<&RouteLog>,
    ) -> Result<Selection, LlmError> {
        let model = req.model();
        let Some((entries, capture, group)) = self.resolve(model) else {
            return Err(self.unknown_model(model));
        };
        // While Redis is marked down, usage and rpm limits are this instance's own.
        let shared = self.shared.as_ref().is_some_and(|s| !s.breaker().is_open());
        // A test request (`mock_response`) is not counted toward the deployment's usage.
        let test = crate::health::is_test_request(req);
        let mut cands: Vec<&Entry> = entries.iter().map(AsRef::as_ref).collect();
        // Held to one deployment (a call on a response it made).
        if let Some(pin) = req
            .extensions
            .get::<crate::types::responses::PinnedDeployment>()
        {
            cands.retain(|e| *e.deployment.id == *pin.0);
            if cands.is_empty() {
                return Err(LlmError::new(
                    ErrorKind::NotFound,
                    format!("The deployment of model group `{group}` that made this response is no longer configured."),
                ));
            }
        }

        // Region (an end user's `allowed_model_region`): only deployments in it.
        if let Some(region) = super::region::allowed_region(req) {
            cands.retain(|e| super::region::in_region(&e.deployment, region));
            if cands.is_empty() {
                return Err(super::region::none_in_region(group, region));
            }
        }

        // Cooldown.
        let now = self.clock.monotonic_ms();
        cands.retain(|e| !e.state.health.is_cooling_at(now));
        if cands.is_empty() {
            let wait = entries
                .iter()
                .filter_map(|e| e.state.health.cooling_for())
                .min()
                .unwrap_or(Duration::from_secs(1));
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(LlmError::new(
                ErrorKind::RateLimit,
                format!(
                    "No deployments available for selected model, Try again in {secs} seconds. Passed model={group}. All {} deployments of model group `{group}` are cooling down after failures.",
                    entries.len()
                ),
            )
            .with_code("no_deployments_available")
            .with_retry_after(wait));
        }
        // Deployments that already failed this request, while others remain.
        if let Some(log) = log {
            if cands.iter().any(|e| !log.has_failed(&e.deployment.id)) {
                cands.retain(|e| !log.has_failed(&e.deployment.id));
            }
        }

        // Context window.
        let prompt_tokens = if self.options.pre_call_checks || self.usage_checks() {
            estimate_prompt_tokens(req)
        } else {
            0
        };
        if self.options.pre_call_checks {
            let before = cands.len();
            cands.retain(|e| e.max_input_tokens().is_none_or(|max| prompt_tokens <= max));
            if cands.is_empty() && before > 0 {
                return Err(LlmError::new(
                    ErrorKind::ContextWindowExceeded,
                    format!(
                        "The request needs about {prompt_tokens} input tokens, more than any deployment of model group `{group}` accepts (model_info.max_input_tokens)"
                    ),
                )
                .with_param("messages"));
            }
        }

        // Tags.
        if self.options.tag_filtering {
            let tags = request_tags(req);
            let has = |e: &&Entry, t: &str| e.deployment.tags.iter().any(|d| d == t);
            let matching: Vec<&Entry> = if tags.is_empty() {
                Vec::new()
            } else if self.options.tag_match_any {
                cands
                    .iter()
                    .copied()
                    .filter(|e| tags.iter().any(|t| has(e, t)))
                    .collect()
            } else {
                cands
                    .iter()
                    .copied()
                    .filter(|e| tags.iter().all(|t| has(e, t)))
                    .collect()
            };
            if !matching.is_empty() {
                cands = matching;
            } else {
                let defaults: Vec<&Entry> = cands
                    .iter()
                    .copied()
                    .filter(|e| has(e, "default"))
                    .collect();
                if !defaults.is_empty() {
                    cands = defaults;
                } else if !tags.is_empty() {
                    return Err(LlmError::bad_request(format!(
                        "No deployment of model group `{group}` has the tags {tags:?}, and none is tagged `default`"
                    ))
                    .with_param("tags"));
                }
            }
        }

        // Usage limits this minute.
        if self.usage_checks() {
            let minute = self.clock.unix_minute();
            cands.retain(|e| {
                let (rpm, tpm) = e.state.usage(shared, minute);
                e.deployment.rpm.is_none_or(|l| rpm < l)
                    && e.deployment.tpm.is_none_or(|l| tpm + prompt_tokens <= l)
            });
            if cands.is_empty() {
                let wait = self.clock.to_next_minute();
                return Err(LlmError::new(
                    ErrorKind::RateLimit,
                    format!(
                        "No deployments available for selected model, Try again in {} seconds. Passed model={group}. Every deployment of model group `{group}` is at its rpm / tpm limit for this minute.",
                        wait.as_secs()
                    ),
                )
                .with_code("no_deployments_available")
                .with_retry_after(wait));
            }
        }

        // Order tiers.
        if let Some(min) = cands.iter().filter_map(|e| e.deployment.order).min() {
            cands.retain(|e| e.deployment.order == Some(min));
        }

        // Free concurrency first.
        if cands.iter().any(|e| e.state.has_capacity()) {
            cands.retain(|e| e.state.has_capacity());
        }

        loop {
            let i = strategy::pick(self.options.strategy, &cands, shared);
            let entry = cands[i];
            let limit = (self.usage_checks() && !shared)
                .then_some(entry.deployment.rpm)
                .flatten();
            if !test && !entry.state.reserve_request(limit) {
                // Another request took the last slot since the filter ran.
                cands.swap_remove(i);
                if cands.is_empty() {
                    let wait = self.clock.to_next_minute();
                    return Err(LlmError::new(
                        ErrorKind::RateLimit,
                        format!("No deployments available for selected model, Try again in {} seconds. Passed model={group}. Every deployment of model group `{group}` is at its rpm limit for this minute.", wait.as_secs()),
                    )
                    .with_code("no_deployments_available")
                    .with_retry_after(wait));
                }
                continue;
            }
            let Some(entry) = entries.iter().find(|e| std::ptr::eq(e.as_ref(), entry)) else {
                return Err(LlmError::internal("router lost its pick"));
            };
            let deployment = match capture {
                Some(c) => concrete(&entry.deployment, model, c),
                None => entry.deployment.clone(),
            };
            return Ok(Selection {
                entry: entry.clone(),
                deployment,
            });
        }
    }

    /// Whether the group of `failed` has another deployment that is neither cooling nor failed.
    pub(super) fn others_available(&self, model: &str, log: &RouteLog, failed: &str) -> bool {
        self.resolve(model).is_some_and(|(entries, _, _)| {
            entries.iter().any(|e| {
                *e.deployment.id != *failed
                    && !e.state.health.is_cooling()
                    && !log.has_failed(&e.deployment.id)
            })
        })
    }

    /// `None` when a deployment of the group is not cooling; else the soonest end of a cooldown.
    pub(super) fn available_in(&self, model: &str) -> Option<Duration> {
        let (entries, _, _) = self.resolve(model)?;
        let mut soonest: Option<Duration> = None;
        for e in entries {
            match e.state.health.cooling_for() {
                None => return None,
                Some(d) => soonest = Some(soonest.map_or(d, |s| s.min(d))),
            }
        }
        soonest
    }

    pub(super) fn list(&self) -> LlmResponse {
        LlmResponse {
            body: ResponseBody::Models(Box::new(ModelList::new(
                self.listed.iter().cloned(),
                self.created,
            ))),
            meta: Box::default(),
        }
    }
}

/// A wildcard deployment made concrete for `requested`, `capture` being what the `*` matched.
fn concrete(dep: &Deployment, requested: &str, capture: &str) -> Arc<Deployment> {
    let full = format!("{}/{}", dep.provider, dep.model);
    let model = if full.contains('*') {
        full.replacen('*', capture, 1)
    } else {
        full
    };
    let (provider, upstream) = split_provider(&model);
    let mut d = dep.clone();
    d.provider = provider.into();
    d.model = upstream.into();
    d.model_group = requested.into();
    Arc::new(d)
}

#[cfg(test)]
mod tests {
    use tower::util::BoxCloneSyncService;
    use tower_service::Service;

    use super::*;
    use crate::router::{MakeDeploymentService, Router};
    use crate::types::chat::{ChatRequest, ChatResponse, Message};

    fn ok_svc() -> impl Service<
        LlmRequest,
        Response = LlmResponse,
        Error = LlmError,
        Future = std::future::Ready<Result<LlmResponse, LlmError>>,
    > + Clone
           + Send
           + Sync
           + 'static {
        tower::service_fn(|_r: LlmRequest| {
            std::future::ready(Ok(LlmResponse::chat(ChatResponse::default())))
        })
    }

    fn chat(model: &str) -> LlmRequest {
        LlmRequest::chat(ChatRequest {
            model: model.into(),
            messages: vec![Message::new("user", "hello there")],
            ..ChatRequest::default()
        })
    }

    fn dep(group: &str, model: &str, f: impl FnOnce(&mut Deployment)) -> Arc<Deployment> {
        let mut d = Deployment::new(group, model);
        f(&mut d);
        Arc::new(d)
    }

    #[test]
    fn alias_and_wildcard_resolve() {
        let make: MakeDeploymentService = Arc::new(|_d| BoxCloneSyncService::new(ok_svc()));
        let r = Router::builder()
            .deployment(dep("gpt-4o", "openai/gpt-4o", |_| {}), ok_svc())
            .wildcard(dep("openai/*", "openai/*", |_| {}), make.clone())
            .wildcard(dep("*", "anthropic/*", |_| {}), make)
            .alias("gpt-4", "gpt-4o", false)
            .alias("secret", "gpt-4o", true)
            .build();
        assert_eq!(&*r.select(&chat("gpt-4")).unwrap().model, "gpt-4o");
        let d = r.select(&chat("openai/o3-mini")).unwrap();
        assert_eq!((&*d.provider, &*d.model), ("openai", "o3-mini"));
        assert_eq!(&*d.model_group, "openai/o3-mini");
        let d = r.select(&chat("claude-x")).unwrap();
        assert_eq!((&*d.provider, &*d.model), ("anthropic", "claude-x"));
        assert_eq!(r.inner.listed, ["gpt-4o", "openai/*", "*", "gpt-4"]);
    }

    #[test]
    fn order_tiers_and_tags() {
        let r = Router::builder()
            .deployment(dep("g", "openai/a", |d| d.order = Some(2)), ok_svc())
            .deployment(dep("g", "openai/b", |d| d.order = Some(1)), ok_svc())
            .build();
        for _ in 0..20 {
            assert_eq!(&*r.select(&chat("g")).unwrap().model, "b");
        }
        let r = Router::builder()
            .tag_filtering(true, false)
            .deployment(
                dep("g", "openai/free", |d| d.tags = vec!["free".into()]),
                ok_svc(),
            )
            .deployment(
                dep("g", "openai/paid", |d| {
                    d.tags = vec!["paid".into(), "default".into()]
                }),
                ok_svc(),
            )
            .build();
        let mut tagged = chat("g");
        tagged
            .chat_mut()
            .unwrap()
            .extra
            .insert("tags", &["free"])
            .unwrap();
        for _ in 0..20 {
            assert_eq!(&*r.select(&tagged).unwrap().model, "free");
            assert_eq!(&*r.select(&chat("g")).unwrap().model, "paid");
        }
    }

    #[test]
    fn context_window_check() {
        let r = Router::builder()
            .pre_call_checks(true)
            .deployment(
                dep("g", "openai/small", |d| {
                    d.model_info.insert("max_input_tokens".into(), 5.into());
                }),
                ok_svc(),
            )
            .build();
        let mut big = chat("g");
        big.chat_mut().unwrap().messages = vec![Message::new("user", "x".repeat(400))];
        assert_eq!(
            r.select(&big).unwrap_err().kind(),
            ErrorKind::ContextWindowExceeded
        );
    }

    #[test]
    fn usage_based_respects_rpm_and_picks_least_used() {
        let r = Router::builder()
            .strategy(Strategy::UsageBased)
            .deployment(dep("g", "openai/a", |d| d.rpm = Some(2)), ok_svc())
            .deployment(dep("g", "openai/b", |d| d.rpm = Some(1)), ok_svc())
            .build();
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(r.select(&chat("g")).unwrap().model.to_string());
        }
        seen.sort();
        assert_eq!(seen, ["a", "a", "b"]);
        let e = r.select(&chat("g")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimit);
        assert!(e.message().contains("Passed model=g"));
    }

    /// A `mock_response` request is routed and answered, but counts toward neither the
    /// deployment's rpm nor its tokens nor its latency.
    #[tokio::test]
    async fn test_requests_leave_usage_and_latency_alone() {
        use tower::ServiceExt as _;
        let answer = tower::service_fn(|_r: LlmRequest| {
            let mut resp = LlmResponse::chat(ChatResponse::default());
            resp.meta.usage = Some(crate::types::chat::Usage {
                prompt_tokens: Some(5),
                completion_tokens: Some(5),
                total_tokens: Some(10),
                ..Default::default()
            });
            std::future::ready(Ok::<_, LlmError>(resp))
        });
        let r = Router::builder()
            .strategy(Strategy::UsageBased)
            .deployment(dep("g", "openai/a", |d| d.rpm = Some(1)), answer)
            .build();
        let state = &r.inner.groups["g"][0].state;
        for _ in 0..3 {
            let mut mocked = chat("g");
            mocked.chat_mut().unwrap().mock_response = Some(serde_json::json!("hi"));
            r.clone().oneshot(mocked).await.unwrap();
        }
        assert_eq!(state.usage(false, r.inner.clock.unix_minute()), (0, 0));
        assert!(state.latency().is_none());
        // The one real request this minute is counted.
        r.clone().oneshot(chat("g")).await.unwrap();
        assert_eq!(state.usage(false, r.inner.clock.unix_minute()), (1, 10));
        assert!(state.latency().is_some());
        assert_eq!(
            r.oneshot(chat("g")).await.unwrap_err().kind(),
            ErrorKind::RateLimit
        );
    }

    #[test]
    fn cost_based_picks_cheapest() {
        let r = Router::builder()
            .strategy(Strategy::CostBased)
            .deployment(
                dep("g", "openai/dear", |d| d.input_cost_per_token = Some(1e-5)),
                ok_svc(),
            )
            .deployment(
                dep("g", "openai/cheap", |d| d.input_cost_per_token = Some(1e-7)),
                ok_svc(),
            )
            .deployment(dep("g", "openai/unknown", |_| {}), ok_svc())
            .build();
        for _ in 0..20 {
            assert_eq!(&*r.select(&chat("g")).unwrap().model, "cheap");
        }
    }

    #[test]
    fn cooling_everywhere_is_429_naming_group() {
        let r = Router::builder()
            .deployment(dep("grp", "openai/a", |_| {}), ok_svc())
            .build();
        r.health(&r.deployments("grp").next().unwrap().id)
            .unwrap()
            .cool_down(Duration::from_secs(3));
        let e = r.select(&chat("grp")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimit);
        assert!(e.message().contains("model=grp"), "{}", e.message());
        assert!(e.retry_after().unwrap() <= Duration::from_secs(3));
    }

    #[test]
    fn deployment_with_hands_the_stack_the_routers_health_cell() {
        let d = dep("g", "openai/a", |_| {});
        let mut seen = None;
        let r = Router::builder()
            .deployment_with(d.clone(), |cell| {
                seen = Some(cell);
                ok_svc()
            })
            .build();
        let cell = seen.unwrap();
        assert!(Arc::ptr_eq(&cell, r.health(&d.id).unwrap()));
    }
}
