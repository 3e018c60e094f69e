//! The fallback counters, `litellm_deployment_successful_fallbacks` and
//! `litellm_deployment_failed_fallbacks`: one event per fallback model group tried, as LiteLLM's
//! `log_success_fallback_event` / `log_failure_fallback_event`, labelled with the group the client
//! asked for, the fallback group, the caller, and the status and class of the error that made the
//! first group fail.
//!
//! A [`FallbackTrail`] travels in the request's extensions (the
//! [`CallRecordLayer`](crate::callbacks::CallRecordLayer) puts it there when metrics are on;
//! retried and fallback clones of the request share it). The per-deployment layer tells it each
//! attempt's group and outcome; the record layer tells it how the call ended. A fallback group
//! succeeded when one of its attempts answered; it failed when the next group was tried after it,
//! or when the call ended in an error while it was the group being tried.

use std::sync::{atomic::Ordering, Arc, Mutex, PoisonError};

use super::registry::{KeyLabels, Metrics};

/// One series of the fallback counters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct FallbackKey {
    pub(super) requested: Arc<str>,
    pub(super) fallback: Arc<str>,
    pub(super) key: Option<Arc<KeyLabels>>,
    /// The status and class of the error of the first group (`None`: not known).
    pub(super) original: Option<(u16, &'static str)>,
    pub(super) success: bool,
}

#[derive(Debug, Default)]
struct Trail {
    /// The first group tried (the one the client asked for, after aliases).
    first: Option<Arc<str>>,
    /// The group being tried now.
    current: Option<Arc<str>>,
    /// Whether the current group already answered (then no failure is counted for it).
    answered: bool,
    /// The last error of the first group.
    original: Option<(u16, &'static str)>,
    key: Option<Arc<KeyLabels>>,
}

/// One request's model groups as its attempts go (see the module docs). Uncontended:
/// a request's attempts run one after another; the lock is held for a few comparisons.
#[derive(Clone, Debug, Default)]
pub struct FallbackTrail(Arc<Mutex<Trail>>);

impl FallbackTrail {
    fn lock(&self) -> std::sync::MutexGuard<'_, Trail> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An attempt on a deployment of `group` starts.
    pub(super) fn attempt(
        &self,
        metrics: &Metrics,
        group: &Arc<str>,
        key: Option<&Arc<KeyLabels>>,
    ) {
        let mut t = self.lock();
        if t.first.is_none() {
            t.first = Some(group.clone());
            t.current = Some(group.clone());
            t.key = key.cloned();
            return;
        }
        if t.current.as_deref() != Some(&**group) {
            let previous = t.current.replace(group.clone());
            let answered = std::mem::replace(&mut t.answered, false);
            if let Some(previous) = previous {
                if !answered && t.first.as_deref() != Some(&*previous) {
                    metrics.fallback_event(&t, previous, false);
                }
            }
        }
    }

    /// The attempt on `group` ended: `failure` is its error's status and class.
    pub(super) fn attempt_ended(
        &self,
        metrics: &Metrics,
        group: &Arc<str>,
        failure: Option<(u16, &'static str)>,
    ) {
        let mut t = self.lock();
        let first = t.first.as_deref() == Some(&**group);
        match failure {
            Some(f) if first => t.original = Some(f),
            Some(_) => {}
            None if first => t.answered = true,
            None => {
                if !t.answered {
                    t.answered = true;
                    metrics.fallback_event(&t, group.clone(), true);
                }
            }
        }
    }

    /// The call ended (`success`: the client got an answer).
    pub(crate) fn call_ended(&self, metrics: &Metrics, success: bool) {
        let mut t = self.lock();
        if success || t.answered {
            return;
        }
        if let Some(current) = t.current.clone() {
            if t.first.as_deref() != Some(&*current) {
                t.answered = true;
                metrics.fallback_event(&t, current, false);
            }
        }
    }
}

impl Metrics {
    fn fallback_event(&self, t: &Trail, fallback: Arc<str>, success: bool) {
        let Some(requested) = t.first.clone() else {
            return;
        };
        let k = FallbackKey {
            requested,
            fallback,
            key: t.key.clone(),
            original: t.original,
            success,
        };
        match self.inner.fallbacks.get(&k) {
            Some(c) => {
                c.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.inner
                    .fallbacks
                    .entry(k)
                    .or_default()
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(m: &Metrics, fallback: &str, success: bool) -> u64 {
        m.inner
            .fallbacks
            .iter()
            .filter(|e| &*e.key().fallback == fallback && e.key().success == success)
            .map(|e| e.value().load(Ordering::Relaxed))
            .sum()
    }

    #[test]
    fn one_event_per_fallback_group_with_the_first_groups_error() {
        let m = Metrics::new();
        let t = FallbackTrail::default();
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        // `a` fails twice (a retry), `b` fails twice, `c` answers.
        for (g, ok) in [
            (&a, false),
            (&a, false),
            (&b, false),
            (&b, false),
            (&c, true),
        ] {
            t.attempt(&m, g, None);
            t.attempt_ended(&m, g, (!ok).then_some((429, "rate_limit")));
        }
        t.call_ended(&m, true);
        assert_eq!(count(&m, "b", false), 1);
        assert_eq!(count(&m, "c", true), 1);
        assert_eq!(count(&m, "a", false) + count(&m, "a", true), 0);
        let e = m.inner.fallbacks.iter().next().map(|e| e.key().clone());
        let e = e.expect("an event");
        assert_eq!(&*e.requested, "a");
        assert_eq!(e.original, Some((429, "rate_limit")));
    }

    #[test]
    fn a_call_failing_in_its_last_fallback_counts_that_group_failed() {
        let m = Metrics::new();
        let t = FallbackTrail::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        t.attempt(&m, &a, None);
        t.attempt_ended(&m, &a, Some((500, "internal_server")));
        t.attempt(&m, &b, None);
        t.attempt_ended(&m, &b, Some((500, "internal_server")));
        t.call_ended(&m, false);
        t.call_ended(&m, false); // counted once
        assert_eq!(count(&m, "b", false), 1);
        assert_eq!(count(&m, "b", true), 0);
    }

    #[test]
    fn fallback_counters_render_with_litellms_labels() {
        let m = Metrics::new();
        let t = FallbackTrail::default();
        let (a, b): (Arc<str>, Arc<str>) = ("gpt".into(), "claude".into());
        t.attempt(&m, &a, None);
        t.attempt_ended(&m, &a, Some((429, "rate_limit")));
        t.attempt(&m, &b, None);
        t.attempt_ended(&m, &b, None);
        t.call_ended(&m, true);
        let text = m.render();
        assert!(text.contains("# TYPE litellm_deployment_successful_fallbacks counter"));
        assert!(text.contains("# TYPE litellm_deployment_failed_fallbacks counter"));
        assert!(text.contains("litellm_deployment_successful_fallbacks_total{requested_model=\"gpt\",fallback_model=\"claude\",hashed_api_key=\"\",api_key_alias=\"\",team=\"\",team_alias=\"\",exception_status=\"429\",exception_class=\"rate_limit\"} 1.0"), "{text}");
        assert!(!text.contains("litellm_deployment_failed_fallbacks_total{"));
    }

    #[test]
    fn no_fallback_no_event() {
        let m = Metrics::new();
        let t = FallbackTrail::default();
        let a: Arc<str> = "a".into();
        t.attempt(&m, &a, None);
        t.attempt_ended(&m, &a, Some((500, "internal_server")));
        t.call_ended(&m, false);
        assert!(m.inner.fallbacks.is_empty());
    }
}
