//! The JSON views of keys, teams, users and spend rows, with LiteLLM's field names, and dates.

use serde_json::{json, Value};

pub use crate::server::iso;
use crate::store::{KeyRow, SpendRow, TeamRow, UserRow};

/// `YYYY-MM-DD` (or a full RFC 3339 date-time, of which the date is used) → Unix ms at 00:00 UTC.
pub(super) fn parse_date(s: &str) -> Option<i64> {
    let date = s.get(..10)?;
    let mut it = date.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400_000)
}

pub(super) fn opt_iso(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |m| Value::String(iso(m)))
}

pub(super) fn key_json(k: &KeyRow) -> Value {
    json!({
        "token": k.token,
        "key_name": k.key_name,
        "key_alias": k.key_alias,
        "models": k.models,
        "spend": k.spend,
        "max_budget": k.limits.max_budget,
        "budget_duration": k.limits.budget_duration,
        "budget_reset_at": opt_iso(k.budget_reset_at),
        "tpm_limit": k.limits.tpm_limit,
        "rpm_limit": k.limits.rpm_limit,
        "max_parallel_requests": k.limits.max_parallel_requests,
        "metadata": k.metadata,
        "team_id": k.team_id,
        "user_id": k.user_id,
        "expires": opt_iso(k.expires),
        "blocked": k.blocked,
        "created_at": iso(k.created_at),
        "updated_at": iso(k.updated_at),
        "model_max_budget": k.model_max_budget,
        "model_spend": k.model_spend,
    })
}

pub(super) fn team_json(t: &TeamRow) -> Value {
    json!({
        "team_id": t.team_id,
        "team_alias": t.team_alias,
        "models": t.models,
        "spend": t.spend,
        "max_budget": t.limits.max_budget,
        "budget_duration": t.limits.budget_duration,
        "budget_reset_at": opt_iso(t.budget_reset_at),
        "tpm_limit": t.limits.tpm_limit,
        "rpm_limit": t.limits.rpm_limit,
        "max_parallel_requests": t.limits.max_parallel_requests,
        "metadata": t.metadata,
        "members_with_roles": t.members_with_roles,
        "blocked": t.blocked,
        "organization_id": t.organization_id,
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
    })
}

pub(super) fn user_json(u: &UserRow) -> Value {
    json!({
        "user_id": u.user_id,
        "user_email": u.user_email,
        "user_role": u.user_role,
        "models": u.models,
        "spend": u.spend,
        "max_budget": u.limits.max_budget,
        "budget_duration": u.limits.budget_duration,
        "budget_reset_at": opt_iso(u.budget_reset_at),
        "tpm_limit": u.limits.tpm_limit,
        "rpm_limit": u.limits.rpm_limit,
        "max_parallel_requests": u.limits.max_parallel_requests,
        "metadata": u.metadata.iter().filter(|(k, _)| *k != super::password::PASSWORD_HASH_KEY).map(|(k, v)| (k.clone(), v.clone())).collect::<serde_json::Map<_, _>>(),
        "teams": u.teams,
        "created_at": iso(u.created_at),
        "updated_at": iso(u.updated_at),
    })
}

pub(super) fn spend_json(r: &SpendRow) -> Value {
    json!({
        "request_id": r.request_id,
        "call_type": "acompletion",
        "api_key": r.api_key,
        "key_alias": r.key_alias,
        "spend": r.spend,
        "total_tokens": r.total_tokens,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "startTime": iso(r.start_time),
        "endTime": iso(r.end_time),
        "request_duration_ms": r.latency_ms,
        "model": r.model,
        "model_group": r.model_group,
        "model_id": r.model_id,
        "custom_llm_provider": r.custom_llm_provider,
        "user": r.user_id,
        "team_id": r.team_id,
        "cache_hit": if r.cache_hit { "True" } else { "False" },
        "status": r.status,
        "request_tags": r.request_tags,
        "end_user": r.end_user.as_deref().unwrap_or_default(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn iso_and_dates_round_trip() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_date("2023-11-14"), Some(1_699_920_000_000));
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2023-13-01"), None);
        assert_eq!(parse_date("x"), None);
    }
}
