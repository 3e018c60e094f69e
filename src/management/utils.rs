//! `/utils/token_counter`: a prompt's token count, for any valid key.
//!
//! llmgate runs no tokenizer: the count is the estimate it charges calls cut short with
//! (`ceil(bytes / 4)` of the text plus 3 per message; see `docs/governance.md`, "Calls cut
//! short"), and `tokenizer_type` says so (`llmgate_estimate`).

use std::sync::Arc;

use axum::{routing::post, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{
    error::{bad, ApiResult},
    extract::{ApiJson, Caller},
    Mgmt,
};
use crate::types::{
    chat::{estimate_prompt_tokens, Message},
    usage::estimate_tokens,
};

pub(super) fn routes() -> Router<Arc<Mgmt>> {
    Router::new().route("/utils/token_counter", post(token_counter))
}

#[derive(Debug, Deserialize)]
struct CountBody {
    model: Option<String>,
    prompt: Option<String>,
    messages: Option<Vec<Message>>,
}

async fn token_counter(_caller: Caller, ApiJson(b): ApiJson<CountBody>) -> ApiResult {
    let Some(model) = b.model.filter(|m| !m.is_empty()) else {
        return Err(bad("model", "missing field `model`"));
    };
    let total = match (&b.messages, &b.prompt) {
        (Some(messages), _) => estimate_prompt_tokens(messages),
        (None, Some(prompt)) => estimate_tokens(prompt.len()),
        (None, None) => return Err(bad("messages", "pass `messages` or `prompt` to count")),
    };
    Ok(Json(json!({
        "total_tokens": total,
        "request_model": model,
        "model_used": model,
        "tokenizer_type": "llmgate_estimate",
    })))
}
