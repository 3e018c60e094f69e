"""Derives the Responses-in conformance cases (client dialect `openai_responses`) of this folder.

Translated cases (anthropic, gemini, bedrock) are made from the chat corpus' cases of the same
exchange: the chat client request rewritten as the Responses request that means the same (system
message -> `instructions`, messages -> input items, `max_tokens` -> `max_output_tokens`, function
tools in Responses' flat shape; `stop` has no Responses counterpart and is dropped, with the
provider's stop sequences removed from the expected upstream body), the chat case's upstream
request and answer kept, and the client answer written from the chat case's expected answer by
the Responses API reference (https://platform.openai.com/docs/api-reference/responses/object,
https://platform.openai.com/docs/api-reference/responses-streaming): one output item per reasoning
text, message text and tool call; the stream as `response.created`, `response.in_progress`, per
item `output_item.added`, `content_part.added`, deltas, `.done` events, `output_item.done`, then
`response.completed` with the usage; every event with its `sequence_number`.

This script is independent of the gateway's code: it is the second implementation the
conformance test compares the gateway against. Run it from this folder: `python3 derive.py`.
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.dirname(HERE)

STOP_KEYS = {
    "anthropic": [("stop_sequences",)],
    "gemini": [("generationConfig", "stopSequences")],
    "bedrock": [("inferenceConfig", "stopSequences")],
}

IDS = ["id", "created_at", "response.id", "response.created_at", "item_id", "item.id"] + [
    f"{p}output[{i}].id" for p in ("", "response.") for i in range(4)
]


def load(name):
    with open(os.path.join(CORPUS, name + ".json")) as f:
        return json.load(f)


def responses_request(chat):
    body = {"model": chat["model"]}
    items = []
    for m in chat["messages"]:
        if m["role"] == "system":
            body["instructions"] = m["content"]
        else:
            items.append({"role": m["role"], "content": m["content"]})
    body["input"] = items[0]["content"] if len(items) == 1 and isinstance(items[0]["content"], str) and items[0]["role"] == "user" else items
    for k, v in chat.items():
        if k in ("model", "messages", "stop", "stream_options"):
            continue
        if k == "max_tokens":
            body["max_output_tokens"] = v
        elif k in ("temperature", "top_p", "user", "stream"):
            body[k] = v
        elif k == "tools":
            body["tools"] = [dict(type="function", **t["function"]) for t in v]
        elif k == "tool_choice":
            body["tool_choice"] = v if isinstance(v, str) else {"type": "function", "name": v["function"]["name"]}
        else:
            raise SystemExit(f"no Responses counterpart for `{k}`")
    return body


def usage(u):
    if not u:
        return None
    return {
        "input_tokens": u.get("prompt_tokens", 0),
        "input_tokens_details": {"cached_tokens": (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0)},
        "output_tokens": u.get("completion_tokens", 0),
        "output_tokens_details": {"reasoning_tokens": (u.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)},
        "total_tokens": u.get("total_tokens", 0),
    }


def status(finish):
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def response(req, model, st, output, u, incomplete):
    return {
        "id": "resp_x", "object": "response", "created_at": 0, "status": st, "error": None,
        "incomplete_details": incomplete, "model": model, "output": output,
        "instructions": req.get("instructions"), "max_output_tokens": req.get("max_output_tokens"),
        "parallel_tool_calls": True, "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None}, "store": True,
        "temperature": req.get("temperature", 1.0), "text": {"format": {"type": "text"}},
        "tool_choice": req.get("tool_choice", "auto"), "tools": req.get("tools", []),
        "top_p": req.get("top_p", 1.0), "truncation": "disabled", "user": req.get("user"),
        "metadata": {}, "usage": u,
    }


def message(text, st="completed"):
    return {"type": "message", "id": "msg_x", "status": st, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def complete(req, chat_resp):
    c = chat_resp["choices"][0]
    m = c["message"]
    out = []
    if m.get("reasoning_content"):
        out.append({"type": "reasoning", "id": "rs_x", "summary": [{"type": "summary_text", "text": m["reasoning_content"]}]})
    if m.get("content"):
        out.append(message(m["content"]))
    for t in m.get("tool_calls") or []:
        out.append({"type": "function_call", "id": "fc_x", "call_id": t["id"], "name": t["function"]["name"],
                    "arguments": t["function"]["arguments"], "status": "completed"})
    st, inc = status(c.get("finish_reason"))
    return response(req, chat_resp.get("model", req["model"]), st, out, usage(chat_resp.get("usage")), inc)


def stream(req, chunks):
    ev = []

    def emit(kind, **f):
        f["type"] = kind
        f["sequence_number"] = len(ev)
        ev.append(f)

    model = next((c["model"] for c in chunks if c.get("model")), req["model"])
    emit("response.created", response=response(req, model, "in_progress", [], None, None))
    emit("response.in_progress", response=response(req, model, "in_progress", [], None, None))
    out, opened, calls, u, finish = [], None, [], None, None

    def close_open():
        nonlocal opened
        if opened is None:
            return
        kind, idx, text = opened
        if kind == "reasoning":
            part = {"type": "summary_text", "text": text}
            emit("response.reasoning_summary_text.done", item_id="rs_x", output_index=idx, summary_index=0, text=text)
            emit("response.reasoning_summary_part.done", item_id="rs_x", output_index=idx, summary_index=0, part=part)
            item = {"type": "reasoning", "id": "rs_x", "summary": [part]}
        else:
            emit("response.output_text.done", item_id="msg_x", output_index=idx, content_index=0, text=text)
            emit("response.content_part.done", item_id="msg_x", output_index=idx, content_index=0,
                 part={"type": "output_text", "text": text, "annotations": []})
            item = message(text)
        emit("response.output_item.done", output_index=idx, item=item)
        out.append(item)
        opened = None

    def close_calls():
        for c in calls:
            emit("response.function_call_arguments.done", item_id="fc_x", output_index=c["idx"], arguments=c["args"])
            item = {"type": "function_call", "id": "fc_x", "call_id": c["call_id"], "name": c["name"],
                    "arguments": c["args"], "status": "completed"}
            emit("response.output_item.done", output_index=c["idx"], item=item)
            out.append(item)
        calls.clear()

    def next_index():
        return len(out) + (1 if opened else 0) + len(calls)

    for ch in chunks:
        if ch.get("usage"):
            u = ch["usage"]
        if ch.get("model"):
            model = ch["model"]
        if not ch.get("choices"):
            continue
        c = ch["choices"][0]
        if c.get("finish_reason"):
            finish = c["finish_reason"]
        d = c.get("delta") or {}
        for kind, key in (("reasoning", "reasoning_content"), ("message", "content")):
            text = d.get(key)
            if not text:
                continue
            if opened is None or opened[0] != kind:
                close_open()
                close_calls()
                idx = next_index()
                if kind == "reasoning":
                    emit("response.output_item.added", output_index=idx, item={"type": "reasoning", "id": "rs_x", "summary": []})
                    emit("response.reasoning_summary_part.added", item_id="rs_x", output_index=idx, summary_index=0,
                         part={"type": "summary_text", "text": ""})
                else:
                    emit("response.output_item.added", output_index=idx,
                         item={"type": "message", "id": "msg_x", "status": "in_progress", "role": "assistant", "content": []})
                    emit("response.content_part.added", item_id="msg_x", output_index=idx, content_index=0,
                         part={"type": "output_text", "text": "", "annotations": []})
                opened = (kind, idx, "")
            opened = (kind, opened[1], opened[2] + text)
            if kind == "reasoning":
                emit("response.reasoning_summary_text.delta", item_id="rs_x", output_index=opened[1], summary_index=0, delta=text)
            else:
                emit("response.output_text.delta", item_id="msg_x", output_index=opened[1], content_index=0, delta=text)
        for t in d.get("tool_calls") or []:
            close_open()
            f = t.get("function") or {}
            found = [c for c in calls if c["chat_index"] == t.get("index", 0)]
            if not found:
                c = {"chat_index": t.get("index", 0), "idx": next_index(), "call_id": t.get("id"), "name": f.get("name", ""), "args": ""}
                emit("response.output_item.added", output_index=c["idx"],
                     item={"type": "function_call", "id": "fc_x", "call_id": c["call_id"], "name": c["name"], "arguments": "", "status": "in_progress"})
                calls.append(c)
            else:
                c = found[0]
            if f.get("arguments"):
                c["args"] += f["arguments"]
                emit("response.function_call_arguments.delta", item_id="fc_x", output_index=c["idx"], delta=f["arguments"])
    close_open()
    close_calls()
    st, inc = status(finish)
    emit("response.completed" if st == "completed" else "response.incomplete",
         response=response(req, model, st, out, usage(u), inc))
    return ev


def translated(source, name, ignore_call_ids=False):
    chat = load(source)
    provider = chat["provider"]
    req = responses_request(chat["client_request"]["body"])
    up_req = json.loads(json.dumps(chat["upstream_request"]))
    if "stop" in chat["client_request"]["body"]:
        for path in STOP_KEYS[provider]:
            obj = up_req["body"]
            for k in path[:-1]:
                obj = obj[k]
            obj.pop(path[-1], None)
    cr = chat["client_response"]
    client = {"status": cr.get("status", 200)}
    if "chunks" in cr:
        client["chunks"] = stream(req, cr["chunks"])
        client["done"] = False
    else:
        client["body"] = complete(req, cr["body"])
    ignore = list(IDS)
    if ignore_call_ids:
        ignore += ["item.call_id"] + [f"{p}output[{i}].call_id" for p in ("", "response.") for i in range(4)]
    ignore += [i for i in chat["compare"].get("ignore", []) if i.startswith("upstream_request.")]
    case = {
        "id": f"ingress_responses/{name}",
        "provider": provider,
        "client_dialect": "openai_responses",
        "description": f"Responses API in, translated through the chat model to {provider} (derived from {source}): "
        + chat["description"],
        "sources": [
            "https://platform.openai.com/docs/api-reference/responses/create",
            "https://platform.openai.com/docs/api-reference/responses/object",
            "https://platform.openai.com/docs/api-reference/responses-streaming",
        ] + chat["sources"],
        "deployment": chat["deployment"],
        "client_request": {"method": "POST", "path": "/v1/responses",
                           "headers": {"authorization": "Bearer sk-client", "content-type": "application/json"},
                           "body": req},
        "upstream_request": up_req,
        "upstream_response": chat["upstream_response"],
        "client_response": client,
        "compare": {"ignore": ignore,
                    "notes": "Response and item ids and created_at are the gateway's own. "
                    + ("Tool call ids are generated where the provider gives none. " if ignore_call_ids else "")
                    + "The upstream side is the chat case's: " + chat["compare"].get("notes", "")},
    }
    if "signing" in chat:
        case["signing"] = chat["signing"]
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")


def relayed():
    answer = {"id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b", "object": "response", "created_at": 1741476542,
              "status": "completed", "error": None, "incomplete_details": None, "instructions": None,
              "max_output_tokens": None, "model": "gpt-4.1-2025-04-14",
              "output": [{"type": "message", "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b", "status": "completed",
                          "role": "assistant", "content": [{"type": "output_text", "text": "In a peaceful grove beneath a silver moon, a unicorn named Lumina discovered a hidden pool that reflected the stars.", "annotations": []}]}],
              "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
              "store": True, "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
              "top_p": 1.0, "truncation": "disabled",
              "usage": {"input_tokens": 36, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 87,
                        "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 123},
              "user": None, "metadata": {}}
    src = ["https://platform.openai.com/docs/api-reference/responses/create",
           "https://platform.openai.com/docs/api-reference/responses-streaming"]
    dep = {"model": "openai/gpt-4.1", "api_base": "https://api.openai.com/v1", "api_key": "test-key"}
    body = {"model": "gpt-4.1", "input": "Tell me a three sentence bedtime story about a unicorn.",
            "store": False, "include": ["reasoning.encrypted_content"], "reasoning": {"effort": "low", "summary": "auto"}}
    up_body = dict(body)
    case = {"id": "ingress_responses/openai_relay_text", "provider": "openai", "client_dialect": "openai_responses",
            "description": "Responses API in, relayed to OpenAI: the client's body (unknown keys, `include`, `store: false` included) with only `model` replaced, the answer as sent.",
            "sources": src, "deployment": dep,
            "client_request": {"method": "POST", "path": "/v1/responses",
                               "headers": {"authorization": "Bearer sk-client", "content-type": "application/json"}, "body": body},
            "upstream_request": {"method": "POST", "url": "https://api.openai.com/v1/responses",
                                 "headers": {"authorization": "Bearer test-key", "content-type": "application/json"}, "body": up_body},
            "upstream_response": {"status": 200, "headers": {"content-type": "application/json"}, "body": answer},
            "client_response": {"status": 200, "body": answer},
            "compare": {"ignore": [], "notes": "A relay: nothing may differ."}}
    with open(os.path.join(HERE, "openai_relay_text.json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")
    r = {"id": "resp_1", "object": "response", "created_at": 1741290958, "status": "in_progress", "model": "gpt-4.1-2025-04-14", "output": [], "usage": None}
    done = dict(r, status="completed", output=[{"id": "msg_1", "type": "message", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": "Hi there!", "annotations": []}]}],
                usage={"input_tokens": 37, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 11, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 48})
    events = [
        {"type": "response.created", "response": r},
        {"type": "response.in_progress", "response": r},
        {"type": "response.output_item.added", "output_index": 0, "item": {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}},
        {"type": "response.content_part.added", "item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}},
        {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Hi"},
        {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": " there!"},
        {"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0, "content_index": 0, "text": "Hi there!"},
        {"type": "response.content_part.done", "item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "Hi there!", "annotations": []}},
        {"type": "response.output_item.done", "output_index": 0, "item": done["output"][0]},
        {"type": "response.completed", "response": done},
    ]
    for i, e in enumerate(events):
        e["sequence_number"] = i
    sse = "".join(f"event: {e['type']}\ndata: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events)
    body = {"model": "gpt-4.1", "input": [{"role": "user", "content": "Say hi."}], "stream": True}
    case = {"id": "ingress_responses/openai_relay_stream", "provider": "openai", "client_dialect": "openai_responses",
            "description": "Responses API in, streamed from OpenAI: every event relayed as sent, in order.",
            "sources": src, "deployment": dep,
            "client_request": {"method": "POST", "path": "/v1/responses",
                               "headers": {"authorization": "Bearer sk-client", "content-type": "application/json"}, "body": body},
            "upstream_request": {"method": "POST", "url": "https://api.openai.com/v1/responses",
                                 "headers": {"authorization": "Bearer test-key"}, "body": dict(body)},
            "upstream_response": {"status": 200, "headers": {"content-type": "text/event-stream"}, "sse": sse},
            "client_response": {"status": 200, "chunks": events, "done": False},
            "compare": {"ignore": [], "notes": "A relay: nothing may differ."}}
    with open(os.path.join(HERE, "openai_relay_stream.json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")


relayed()
translated("anthropic/text_basic", "anthropic_text")
translated("anthropic/tools_auto", "anthropic_tools")
translated("anthropic/stream_text", "anthropic_stream_text")
translated("gemini/text_basic", "gemini_text")
translated("gemini/stream_function_call", "gemini_stream_function_call", ignore_call_ids=True)
translated("bedrock/converse_tools", "bedrock_tools")
translated("bedrock/stream_text_tool_use", "bedrock_stream_tool_use")
