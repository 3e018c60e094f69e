//! Every answer of the mock, serialized once.

use bytes::Bytes;

/// The model name the mock reports.
const MODEL: &str = "llmgate-mock-1";

/// Prepared bodies and SSE frames.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) chat: Bytes,
    pub(crate) chat_first: Bytes,
    pub(crate) chat_content: Bytes,
    pub(crate) chat_finish: Bytes,
    pub(crate) chat_usage: Bytes,
    pub(crate) done: Bytes,
    pub(crate) anthropic: Bytes,
    pub(crate) anthropic_start: Bytes,
    pub(crate) anthropic_delta: Bytes,
    pub(crate) anthropic_end: Bytes,
    /// OpenAI's Responses API: the `response` object, and a stream's events before, of and
    /// after its one text delta.
    pub(crate) responses: Bytes,
    pub(crate) responses_start: Bytes,
    pub(crate) responses_delta: Bytes,
    pub(crate) responses_end: Bytes,
    pub(crate) embeddings: Bytes,
    pub(crate) models: Bytes,
    pub(crate) health: Bytes,
}

fn sse(value: &serde_json::Value) -> String {
    format!("data: {value}\n\n")
}

fn event(name: &str, value: &serde_json::Value) -> String {
    format!("event: {name}\ndata: {value}\n\n")
}

impl Prepared {
    pub(crate) fn new(embedding_dims: usize) -> Self {
        use serde_json::json;
        let created = 1_751_980_800_u64;
        let id = "chatcmpl-llmgatemock0000000000000001";
        let usage = json!({"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32});
        let chat = json!({
            "id": id, "object": "chat.completion", "created": created, "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant",
                "content": "This is the mock upstream answering. It says nothing useful, quickly.",
                "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage, "system_fingerprint": "fp_llmgate_mock"
        });
        let chunk = |delta: serde_json::Value, finish: Option<&str>| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": MODEL,
                "system_fingerprint": "fp_llmgate_mock",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        };
        let usage_chunk = json!({"id": id, "object": "chat.completion.chunk", "created": created,
            "model": MODEL, "system_fingerprint": "fp_llmgate_mock", "choices": [], "usage": usage});

        let msg_id = "msg_llmgatemock000000000001";
        let anthropic = json!({
            "id": msg_id, "type": "message", "role": "assistant", "model": MODEL,
            "content": [{"type": "text", "text": "This is the mock upstream answering."}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 20}
        });
        let start = event(
            "message_start",
            &json!({"type": "message_start", "message": {"id": msg_id, "type": "message",
                "role": "assistant", "model": MODEL, "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        ) + &event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
        );
        let delta = event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "tok "}}),
        );
        let end = event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ) + &event(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn",
                "stop_sequence": null}, "usage": {"output_tokens": 20}}),
        ) + &event("message_stop", &json!({"type": "message_stop"}));

        let resp_id = "resp_llmgatemock0000000000000001";
        let text = "This is the mock upstream answering.";
        let item = |status: &str, text: Option<&str>| {
            json!({"id": "msg_llmgatemock000000000002", "type": "message", "status": status,
                "role": "assistant", "content": text.map_or_else(|| json!([]), |t| json!([
                    {"type": "output_text", "text": t, "annotations": []}]))})
        };
        let response = |status: &str, output: serde_json::Value, usage: serde_json::Value| {
            json!({"id": resp_id, "object": "response", "created_at": created, "status": status,
                "error": null, "incomplete_details": null, "instructions": null,
                "max_output_tokens": null, "model": MODEL, "output": output,
                "parallel_tool_calls": true, "previous_response_id": null,
                "reasoning": {"effort": null, "summary": null}, "store": true,
                "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
                "tools": [], "top_p": 1.0, "truncation": "disabled", "usage": usage,
                "user": null, "metadata": {}})
        };
        let responses_usage = json!({"input_tokens": 12,
            "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 20,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 32});
        let responses = response(
            "completed",
            json!([item("completed", Some(text))]),
            responses_usage,
        );
        let ev = |seq: u64, kind: &str, mut v: serde_json::Value| {
            v["type"] = json!(kind);
            v["sequence_number"] = json!(seq);
            event(kind, &v)
        };
        let pending = response("in_progress", json!([]), serde_json::Value::Null);
        let responses_start = ev(0, "response.created", json!({"response": pending}))
            + &ev(1, "response.in_progress", json!({"response": pending}))
            + &ev(
                2,
                "response.output_item.added",
                json!({"output_index": 0, "item": item("in_progress", None)}),
            )
            + &ev(
                3,
                "response.content_part.added",
                json!({"item_id": "msg_llmgatemock000000000002", "output_index": 0,
                    "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
            );
        let responses_delta = ev(
            4,
            "response.output_text.delta",
            json!({"item_id": "msg_llmgatemock000000000002", "output_index": 0,
                "content_index": 0, "delta": text}),
        );
        let responses_end = ev(
            5,
            "response.output_text.done",
            json!({"item_id": "msg_llmgatemock000000000002", "output_index": 0,
                "content_index": 0, "text": text}),
        ) + &ev(
            6,
            "response.output_item.done",
            json!({"output_index": 0, "item": item("completed", Some(text))}),
        ) + &ev(7, "response.completed", json!({"response": responses}));

        let vector: Vec<f64> = (0..embedding_dims)
            .map(|i| ((i % 7) as f64 - 3.0) / 8.0)
            .collect();
        let embeddings = json!({"object": "list", "model": MODEL,
            "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "usage": {"prompt_tokens": 4, "total_tokens": 4}});
        let models = json!({"object": "list", "data": [
            {"id": MODEL, "object": "model", "created": created, "owned_by": "llmgate"}]});

        Self {
            chat: Bytes::from(chat.to_string()),
            chat_first: Bytes::from(sse(&chunk(
                json!({"role": "assistant", "content": "tok "}),
                None,
            ))),
            chat_content: Bytes::from(sse(&chunk(json!({"content": "tok "}), None))),
            chat_finish: Bytes::from(sse(&chunk(json!({}), Some("stop")))),
            chat_usage: Bytes::from(sse(&usage_chunk)),
            done: Bytes::from_static(b"data: [DONE]\n\n"),
            anthropic: Bytes::from(anthropic.to_string()),
            anthropic_start: Bytes::from(start),
            anthropic_delta: Bytes::from(delta),
            anthropic_end: Bytes::from(end),
            responses: Bytes::from(responses.to_string()),
            responses_start: Bytes::from(responses_start),
            responses_delta: Bytes::from(responses_delta),
            responses_end: Bytes::from(responses_end),
            embeddings: Bytes::from(embeddings.to_string()),
            models: Bytes::from(models.to_string()),
            health: Bytes::from_static(br#"{"status":"ok"}"#),
        }
    }
}

/// An OpenAI-format error body for `status`.
pub(crate) fn openai_error(status: u16) -> Bytes {
    let (kind, code) = match status {
        401 => ("authentication_error", "invalid_api_key"),
        404 => ("invalid_request_error", "model_not_found"),
        429 => ("rate_limit_error", "rate_limit_exceeded"),
        400..=499 => ("invalid_request_error", "mock_error"),
        _ => ("server_error", "mock_error"),
    };
    Bytes::from(
        serde_json::json!({"error": {"message": format!("mock upstream error {status}"),
            "type": kind, "param": null, "code": code}})
        .to_string(),
    )
}

/// An Anthropic-format error body for `status`.
pub(crate) fn anthropic_error(status: u16) -> Bytes {
    let kind = match status {
        401 => "authentication_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    };
    Bytes::from(
        serde_json::json!({"type": "error", "error": {"type": kind,
            "message": format!("mock upstream error {status}")}})
        .to_string(),
    )
}
