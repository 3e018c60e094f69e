//! The JSON shapes the sinks write: LiteLLM's `StandardLoggingPayload`, and Langfuse's
//! ingestion events.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::callbacks::{CallRecord, CallStatus};

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn iso(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    crate::server::iso(ms)
}

/// LiteLLM's `StandardLoggingPayload` for one call (the fields llmgate knows; the rest are
/// null or empty). `messages` and `response` only when the record carries them (message
/// logging on).
#[must_use]
pub fn standard_logging_payload(r: &CallRecord) -> Value {
    let completion_start = r
        .time_to_first_token
        .map_or(secs(r.end_time), |t| secs(r.start_time) + t.as_secs_f64());
    let error = (r.status != CallStatus::Success).then(|| {
        json!({
            "error_code": r.http_status.to_string(),
            "error_class": r.error_class.unwrap_or(if r.status == CallStatus::Cut { "client_closed" } else { "" }),
            "error_message": r.error_message.as_deref().unwrap_or(""),
            "llm_provider": r.provider.as_deref(),
        })
    });
    json!({
        "id": &*r.call_id,
        "trace_id": &*r.call_id,
        "call_type": if r.operation == "embeddings" { "aembedding" } else { "acompletion" },
        "stream": r.stream,
        "response_cost": r.cost,
        "status": if r.status == CallStatus::Success { "success" } else { "failure" },
        "custom_llm_provider": r.provider.as_deref(),
        "total_tokens": r.usage.total,
        "prompt_tokens": r.usage.input,
        "completion_tokens": r.usage.output,
        "startTime": secs(r.start_time),
        "endTime": secs(r.end_time),
        "completionStartTime": completion_start,
        "response_time": r.total_latency.as_secs_f64(),
        "model": r.model().unwrap_or(""),
        "model_id": r.deployment_id(),
        "model_group": &*r.model_group,
        "api_base": r.api_base.as_deref().unwrap_or(""),
        "metadata": {
            "user_api_key_hash": r.key_hash(),
            "user_api_key_alias": r.key_alias(),
            "user_api_key_team_id": r.team(),
            "user_api_key_user_id": r.user(),
            "user_api_key_end_user_id": r.end_user.as_deref(),
            "requester_ip_address": null,
        },
        "cache_hit": r.cache_hit,
        "cache_key": null,
        "saved_cache_cost": 0.0,
        "request_tags": [],
        "end_user": r.end_user.as_deref(),
        "messages": r.messages.clone(),
        "response": r.response_text.as_deref(),
        "error_str": r.error_message.as_deref(),
        "error_information": error,
        "model_parameters": {},
        "hidden_params": {
            "litellm_call_id": &*r.call_id,
            "api_base": r.api_base.as_deref(),
            "response_cost": r.cost,
            "litellm_overhead_time_ms": r.overhead.map(|o| o.as_secs_f64() * 1000.0),
        },
        "llmgate": {
            "http_status": r.http_status,
            "retries": r.retries,
            "fallbacks": r.fallbacks,
            "cache_read_tokens": r.usage.cache_read,
            "time_to_first_token": r.time_to_first_token.map(|t| t.as_secs_f64()),
            "upstream_latency": r.upstream_latency.map(|t| t.as_secs_f64()),
        },
    })
}

/// Langfuse's ingestion events for one call: a `trace-create` and a `generation-create` under
/// it (ids derived from the call id, so a retried batch does not duplicate them).
pub fn langfuse_events(r: &CallRecord, out: &mut Vec<Value>) {
    let id = &*r.call_id;
    let start = iso(r.start_time);
    let end = iso(r.end_time);
    let name = if r.operation == "embeddings" {
        "litellm-aembedding"
    } else {
        "litellm-acompletion"
    };
    let failed = r.status != CallStatus::Success;
    let metadata = json!({
        "model_group": &*r.model_group,
        "model_id": r.deployment_id(),
        "api_base": r.api_base.as_deref(),
        "user_api_key_hash": r.key_hash(),
        "user_api_key_alias": r.key_alias(),
        "user_api_key_team_id": r.team(),
        "user_api_key_user_id": r.user(),
        "cache_hit": r.cache_hit,
        "status": r.status.as_str(),
        "http_status": r.http_status,
    });
    out.push(json!({
        "id": format!("{id}-trace"),
        "timestamp": start,
        "type": "trace-create",
        "body": {
            "id": id,
            "timestamp": start,
            "name": name,
            "userId": r.end_user.as_deref().or(r.user()),
            "input": r.messages.clone(),
            "output": r.response_text.as_deref(),
            "metadata": metadata,
            "tags": [],
        },
    }));
    let completion_start = r.time_to_first_token.map(|t| iso(r.start_time + t));
    out.push(json!({
        "id": format!("{id}-generation"),
        "timestamp": start,
        "type": "generation-create",
        "body": {
            "id": format!("{id}-gen"),
            "traceId": id,
            "name": name,
            "startTime": start,
            "endTime": end,
            "completionStartTime": completion_start,
            "model": r.model().unwrap_or(&r.model_group),
            "modelParameters": {},
            "input": r.messages.clone(),
            "output": r.response_text.as_deref(),
            "usage": {
                "input": r.usage.input,
                "output": r.usage.output,
                "total": r.usage.total,
                "unit": "TOKENS",
            },
            "usageDetails": { "input": r.usage.input, "output": r.usage.output, "total": r.usage.total },
            "costDetails": { "total": r.cost },
            "level": if failed { "ERROR" } else { "DEFAULT" },
            "statusMessage": r.error_message.as_deref(),
            "metadata": metadata,
        },
    }));
}
