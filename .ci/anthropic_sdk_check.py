"""Drives llmgate's Anthropic Messages routes with the official `anthropic` Python SDK.

Called by tests/anthropic_sdk.rs, which starts the gateway and its fake upstreams. Reads a JSON
list of calls (`--calls`): each `{"label", "model", "kind", "tool"}` where kind is `create`
(a non-streamed call with a tool), `stream` (the SDK's `messages.stream` helper with a tool),
`thinking` (a non-streamed call with extended thinking), `count` (`messages.count_tokens`), or
an expected error class name (`RateLimitError`, `NotFoundError`, `BadRequestError`,
`AuthenticationError`: the call must raise exactly that SDK exception). Prints one JSON object:
label -> what the SDK parsed (or `{"error": ...}` when a call did something else).
"""

import argparse
import json
import sys

import anthropic


def blocks(message):
    out = []
    for b in message.content:
        d = {"type": b.type}
        if b.type == "text":
            d["text"] = b.text
        elif b.type == "tool_use":
            d.update(id=b.id, name=b.name, input=b.input)
        elif b.type == "thinking":
            d.update(thinking=b.thinking, signature=b.signature)
        out.append(d)
    return out


def summary(message):
    u = message.usage
    return {
        "id": message.id,
        "model": message.model,
        "stop_reason": message.stop_reason,
        "content": blocks(message),
        "usage": {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_input_tokens": getattr(u, "cache_read_input_tokens", None),
            "cache_creation_input_tokens": getattr(u, "cache_creation_input_tokens", None),
        },
    }


def tool(name):
    return {
        "name": name,
        "description": "Look something up",
        "input_schema": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    }


MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]


def call(client, c):
    kind = c["kind"]
    if kind == "create":
        m = client.messages.create(
            model=c["model"],
            max_tokens=256,
            messages=MESSAGES,
            tools=[tool(c["tool"])],
            tool_choice={"type": "auto", "disable_parallel_tool_use": False},
            metadata={"user_id": "user-1"},
        )
        return summary(m)
    if kind == "stream":
        types = []
        with client.messages.stream(
            model=c["model"],
            max_tokens=256,
            messages=MESSAGES,
            tools=[tool(c["tool"])],
            metadata={"user_id": "user-1"},
            extra_headers={"anthropic-beta": "fine-grained-tool-streaming-2025-05-14"},
        ) as s:
            for event in s:
                types.append(event.type)
            final = s.get_final_message()
        out = summary(final)
        out["events"] = types
        return out
    if kind == "thinking":
        m = client.messages.create(
            model=c["model"],
            max_tokens=4096,
            messages=MESSAGES,
            thinking={"type": "enabled", "budget_tokens": 2048},
        )
        return summary(m)
    if kind == "count":
        r = client.messages.with_raw_response.count_tokens(
            model=c["model"], messages=MESSAGES, tools=[tool("lookup")]
        )
        return {
            "input_tokens": r.parse().input_tokens,
            "source": r.headers.get("x-llmgate-token-count"),
        }
    # An expected error: the SDK must raise exactly this class.
    expected = getattr(anthropic, kind)
    try:
        client.messages.create(model=c["model"], max_tokens=16, messages=MESSAGES)
    except expected as e:
        return {"raised": type(e).__name__, "status": e.status_code, "body": e.body}
    except anthropic.APIStatusError as e:
        return {"error": f"raised {type(e).__name__} ({e.status_code}), not {kind}: {e}"}
    return {"error": f"no {kind} was raised"}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--calls", required=True)
    a = p.parse_args()
    with open(a.calls) as f:
        calls = json.load(f)
    good = anthropic.Anthropic(base_url=a.base_url, api_key=a.api_key, max_retries=0)
    bad = anthropic.Anthropic(base_url=a.base_url, api_key="sk-not-a-key", max_retries=0)
    results = {}
    for c in calls:
        client = bad if c.get("bad_key") else good
        try:
            results[c["label"]] = call(client, c)
        except Exception as e:  # noqa: BLE001 - the test reports what went wrong
            results[c["label"]] = {"error": f"{type(e).__name__}: {e}"}
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
