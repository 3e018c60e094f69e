"""Builds the Anthropic-Messages-ingress conformance cases from the chat cases of this corpus.

Each case keeps a chat case's provider exchange (deployment, upstream request, upstream
response: what the provider's own reference pins) and puts an Anthropic Messages client in front
of it: the client request is the chat request said in Anthropic's Messages format (per
https://docs.anthropic.com/en/api/messages), and the expected client answer is the case's
expected chat answer said as Anthropic says it (content blocks, stop_reason, usage with
input_tokens net of the cache; for a stream, Anthropic's event sequence per
https://docs.anthropic.com/en/docs/build-with-claude/streaming). The anthropic/ cases are the
same-protocol relay: the upstream request is the client's body with only `model` replaced, the
client answer is the upstream answer as it came.

Run from the repository root: python3 tests/conformance/ingress_messages/generate.py
"""

import json
import os

ROOT = os.path.join(os.path.dirname(__file__), "..")
OUT = os.path.dirname(__file__)


def load(case_id):
    with open(os.path.join(ROOT, case_id + ".json")) as f:
        return json.load(f)


def messages_request(chat):
    """The chat request `chat` in Anthropic's Messages format."""
    out = {"model": chat["model"]}
    system = [m["content"] for m in chat["messages"] if m["role"] in ("system", "developer")]
    if system:
        out["system"] = "\n".join(system)
    out["messages"] = [
        {"role": m["role"], "content": m["content"]}
        for m in chat["messages"]
        if m["role"] in ("user", "assistant")
    ]
    if "max_tokens" in chat:
        out["max_tokens"] = chat["max_tokens"]
    for k in ("temperature", "top_p", "stream"):
        if k in chat:
            out[k] = chat[k]
    if "stop" in chat:
        out["stop_sequences"] = chat["stop"] if isinstance(chat["stop"], list) else [chat["stop"]]
    if "tools" in chat:
        out["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description", ""),
                "input_schema": t["function"]["parameters"],
            }
            for t in chat["tools"]
        ]
    tc = chat.get("tool_choice")
    if tc == "auto":
        out["tool_choice"] = {"type": "auto"}
    elif tc == "required":
        out["tool_choice"] = {"type": "any"}
    elif isinstance(tc, dict):
        out["tool_choice"] = {"type": "tool", "name": tc["function"]["name"]}
    return out


STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def usage(u):
    if u is None:
        # The provider stated none: zeros (the gateway estimates for its own counting).
        return {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0}
    cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    written = u.get("cache_creation_input_tokens") or 0
    return {
        "input_tokens": u["prompt_tokens"] - cached - written,
        "output_tokens": u["completion_tokens"],
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }


def messages_answer(chat):
    """A chat completion as a Messages answer."""
    choice = chat["choices"][0]
    msg = choice["message"]
    content = []
    if msg.get("reasoning_content"):
        content.append({"type": "thinking", "thinking": msg["reasoning_content"], "signature": ""})
    if msg.get("content"):
        content.append({"type": "text", "text": msg["content"]})
    for call in msg.get("tool_calls") or []:
        content.append({
            "type": "tool_use",
            "id": call["id"],
            "name": call["function"]["name"],
            "input": json.loads(call["function"]["arguments"] or "{}"),
        })
    return {
        "id": "msg_" + chat["id"],
        "type": "message",
        "role": "assistant",
        "model": chat["model"],
        "content": content,
        "stop_reason": STOP.get(choice["finish_reason"], "end_turn"),
        "stop_sequence": None,
        "usage": usage(chat["usage"]),
    }


def messages_events(chunks):
    """A chat chunk stream as Anthropic's events (the `data` of each, in order)."""
    out = []
    open_block = None
    index = -1
    finish = None
    use = None
    for ch in chunks:
        if not out:
            out.append({"type": "message_start", "message": {
                "id": "msg_" + ch["id"], "type": "message", "role": "assistant", "model": ch["model"],
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0}}})
            out.append({"type": "ping"})
        if ch.get("usage"):
            use = ch["usage"]
        if not ch["choices"]:
            continue
        choice = ch["choices"][0]
        delta = choice.get("delta") or {}

        def start(kind, block):
            nonlocal open_block, index
            if open_block == kind:
                return
            if open_block is not None:
                out.append({"type": "content_block_stop", "index": index})
            index += 1
            open_block = kind
            out.append({"type": "content_block_start", "index": index, "content_block": block})

        if delta.get("reasoning_content"):
            start("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            out.append({"type": "content_block_delta", "index": index,
                        "delta": {"type": "thinking_delta", "thinking": delta["reasoning_content"]}})
        if delta.get("content"):
            start("text", {"type": "text", "text": ""})
            out.append({"type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": delta["content"]}})
        for call in delta.get("tool_calls") or []:
            fn = call.get("function") or {}
            start(("tool", call.get("index", 0)), {"type": "tool_use", "id": call.get("id"),
                                                   "name": fn.get("name"), "input": {}})
            if fn.get("arguments"):
                out.append({"type": "content_block_delta", "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": fn["arguments"]}})
        if choice.get("finish_reason"):
            finish = choice["finish_reason"]
    if open_block is not None:
        out.append({"type": "content_block_stop", "index": index})
    out.append({"type": "message_delta",
                "delta": {"stop_reason": STOP.get(finish, "end_turn"), "stop_sequence": None},
                "usage": usage(use)})
    out.append({"type": "message_stop"})
    return out


def translated(case_id, name, upstream_ignore=(), drop_upstream=(), extra_ignore=(), model=None):
    c = load(case_id)
    if model:
        c["deployment"]["model"] = model
    req = messages_request(c["client_request"]["body"])
    up = json.loads(json.dumps(c["upstream_request"]))
    for k in drop_upstream:
        up["body"].pop(k, None)
    resp = c["client_response"]
    if "chunks" in resp:
        client = {"status": 200, "chunks": messages_events(resp["chunks"]), "done": False}
        ignore = ["message.id", "message.model"]
    else:
        client = {"status": 200, "body": messages_answer(resp["body"])}
        ignore = ["id", "model"]
    chat_ignored_ids = [p for p in c["compare"].get("ignore", []) if "tool_calls" in p and p.endswith(".id")]
    if chat_ignored_ids:
        ignore += [f"content[{i}].id" for i in range(4)] + ["content_block.id"]
    ignore += ["upstream_request.body." + p for p in upstream_ignore] + list(extra_ignore)
    ignore += [p for p in c["compare"].get("ignore", []) if p.startswith("upstream_request.body.")]
    return name, {
        "id": f"ingress_messages/{name}",
        "provider": c["provider"],
        "client_dialect": "anthropic_messages",
        "description": f"Anthropic Messages client -> {c['provider']}: the exchange of {case_id} "
                       "with the client speaking Anthropic's Messages API (generated by generate.py).",
        "sources": ["https://docs.anthropic.com/en/api/messages",
                    "https://docs.anthropic.com/en/docs/build-with-claude/streaming"] + c["sources"],
        "deployment": c["deployment"],
        "client_request": {"method": "POST", "path": "/v1/messages",
                           "headers": {"x-api-key": "sk-client", "anthropic-version": "2023-06-01",
                                       "content-type": "application/json"},
                           "body": req},
        "upstream_request": up,
        "upstream_response": c["upstream_response"],
        "client_response": client,
        "compare": {"ignore": ignore, "notes": (
            "Generated from " + case_id + ". id and model of the answer are the gateway's choice "
            "(msg_ + the chat id; the model the chat answer names). A Messages client cannot ask "
            "for parallel_tool_calls: true (it is the default) nor leave out stream usage, so the "
            "translation adds stream_options (include_usage) and leaves parallel_tool_calls out: "
            "those keys are left out of the upstream comparison. " + c["compare"].get("notes", ""))},
    }


def relay(case_id, name):
    c = load(case_id)
    # The request the chat case sends Anthropic is itself a Messages request: the client sends it
    # (naming its model group), with a key no translation knows.
    body = dict(c["upstream_request"]["body"])
    body["model"] = c["client_request"]["body"]["model"]
    body["future_field"] = {"kept": [1, 2.5, "as sent"]}
    up_body = dict(body)
    up_body["model"] = c["upstream_request"]["body"]["model"]
    u = c["upstream_response"]
    if "sse" in u:
        client = {"status": 200, "chunks": [json.loads(line[6:]) for line in u["sse"].split("\n")
                                            if line.startswith("data: ")], "done": False}
    else:
        client = {"status": 200, "body": u["body"]}
    return name, {
        "id": f"ingress_messages/{name}",
        "provider": "anthropic",
        "client_dialect": "anthropic_messages",
        "description": f"Anthropic Messages client -> anthropic: same-protocol relay of {case_id}'s "
                       "answer; the body is the client's with only `model` replaced (unknown keys kept), "
                       "the answer and every event as the provider sent them.",
        "sources": ["https://docs.anthropic.com/en/api/messages"] + c["sources"],
        "deployment": c["deployment"],
        "client_request": {"method": "POST", "path": "/v1/messages",
                           "headers": {"x-api-key": "sk-client", "anthropic-version": "2023-06-01",
                                       "anthropic-beta": "interleaved-thinking-2025-05-14",
                                       "content-type": "application/json"},
                           "body": body},
        "upstream_request": {"method": "POST", "url": c["upstream_request"]["url"],
                             "headers": {"x-api-key": c["deployment"]["api_key"],
                                         "anthropic-version": "2023-06-01",
                                         "anthropic-beta": "interleaved-thinking-2025-05-14"},
                             "body": up_body},
        "upstream_response": u,
        "client_response": client,
        "compare": {"ignore": [], "notes": "Relay: nothing is added, removed or changed but `model` in the request."},
    }


ANTHROPIC_ERROR_TYPE = {400: "invalid_request_error", 401: "authentication_error",
                        403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                        429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def error(case_id, name, relayed):
    """A provider error answered in Anthropic's error shape, with the chat case's status."""
    c = load(case_id)
    if relayed:
        body = dict(c["upstream_request"]["body"])
        body["model"] = c["client_request"]["body"]["model"]
    else:
        body = messages_request(c["client_request"]["body"])
    status = c["client_response"]["status"]
    client = {"status": status,
              "body": {"type": "error", "error": {"type": ANTHROPIC_ERROR_TYPE.get(status, "api_error"),
                                                   "message": "(any)"}}}
    if c["client_response"].get("headers"):
        client["headers"] = c["client_response"]["headers"]
    return name, {
        "id": f"ingress_messages/{name}",
        "provider": c["provider"],
        "client_dialect": "anthropic_messages",
        "description": f"Anthropic Messages client, provider error of {case_id}: the error in "
                       "Anthropic's shape ({\"type\":\"error\",\"error\":{type,message}}) with the status "
                       "the chat route gives it.",
        "sources": ["https://docs.anthropic.com/en/api/errors"] + c["sources"],
        "deployment": c["deployment"],
        "client_request": {"method": "POST", "path": "/v1/messages",
                           "headers": {"x-api-key": "sk-client", "content-type": "application/json"},
                           "body": body},
        "upstream_response": c["upstream_response"],
        "client_response": client,
        "compare": {"ignore": ["error.message"],
                    "notes": "The message is the gateway's (it names the provider's); type and status are pinned."},
    }


CASES = [
    error("anthropic/error_rate_limit", "anthropic_relay_error_rate_limit", True),
    error("anthropic/error_authentication", "anthropic_relay_error_authentication", True),
    error("openai/error_rate_limit", "openai_error_rate_limit", False),
    relay("anthropic/text_basic", "anthropic_relay_text"),
    relay("anthropic/stream_tool_use", "anthropic_relay_stream_tools"),
    relay("anthropic/usage_prompt_caching", "anthropic_relay_prompt_caching"),
    translated("openai/tools_nonstream", "openai_tools"),
    translated("openai/tools_stream", "openai_stream_tools", upstream_ignore=["stream_options"],
               drop_upstream=["parallel_tool_calls"]),
    translated("gemini/tools_auto_function_call", "gemini_tools"),
    # `bedrock/converse/…`: Converse asked for by name (a plain `bedrock/anthropic.claude-*`
    # deployment relays Messages natively through InvokeModel: bedrock_claude_invoke*.json).
    translated("bedrock/converse_tools", "bedrock_tools",
               model="bedrock/converse/anthropic.claude-3-5-sonnet-20240620-v1:0"),
    translated("ollama/chat_tools", "ollama_tools"),
]

for name, case in CASES:
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(case, f, indent=2, ensure_ascii=False)
        f.write("\n")
print(f"wrote {len(CASES)} cases")
