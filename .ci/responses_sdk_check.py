"""The official OpenAI Python SDK's `responses` API against llmgate (tests/responses_sdk.rs).

Creates a response with a function tool, streams one (`client.responses.stream`, the SDK's
accumulating helper, and `create(stream=True)`), sends the tool's output back, and, where the
gateway keeps the responses (`--stored`), retrieves one, lists its input items and deletes it;
where the provider keeps them (`--relayed`), also cancels one and checks another key cannot reach it. A
request the gateway refuses raises the SDK's `BadRequestError`. Prints one `ok: <check>` line per
check; any failure raises (non-zero exit).
"""

import argparse
import json

import openai
from openai import OpenAI

p = argparse.ArgumentParser()
p.add_argument("--base-url", required=True)
p.add_argument("--api-key", required=True)
p.add_argument("--model", required=True)
p.add_argument("--tool", required=True)
p.add_argument("--stored", action="store_true")
p.add_argument("--relayed", action="store_true")
args = p.parse_args()

client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0)
tools = [
    {
        "type": "function",
        "name": args.tool,
        "description": "A tool the model may call.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    }
]


def the_call(response):
    calls = [o for o in response.output if o.type == "function_call"]
    assert calls, f"no function_call in {response}"
    call = calls[0]
    assert call.name == args.tool, call
    json.loads(call.arguments)
    assert call.call_id, call
    return call


# create, with a function call in the answer
r = client.responses.create(model=args.model, input="What's the weather like in Paris?", tools=tools)
assert r.object == "response" and r.id, r
call = the_call(r)
assert r.usage is None or r.usage.total_tokens >= 0
print("ok: create")

# stream, through the SDK's accumulating helper
with client.responses.stream(model=args.model, input="And in Rome?", tools=tools) as stream:
    kinds = [event.type for event in stream]
    final = stream.get_final_response()
assert kinds[0] == "response.created", kinds
assert "response.function_call_arguments.delta" in kinds, kinds
assert kinds[-1] == "response.completed", kinds
the_call(final)
print("ok: stream")

# stream=True, event by event
seen = [event.type for event in client.responses.create(model=args.model, input="Madrid?", tools=tools, stream=True)]
assert seen[0] == "response.created" and seen[-1] == "response.completed", seen
print("ok: create_stream")

# the tool's output back (the conversation sent whole: no server-side state needed)
follow = client.responses.create(
    model=args.model,
    input=[
        {"role": "user", "content": "What's the weather like in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature": 18}'},
    ],
    tools=tools,
)
assert follow.object == "response", follow
print("ok: function_call_output")

if args.relayed:
    # A response the provider keeps: the gateway sends each call to the deployment that made it.
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.output[0].type == r.output[0].type, got
    items = client.responses.input_items.list(r.id, limit=5)
    assert items.data, items
    cancelled = client.responses.cancel(r.id)
    assert cancelled.id == r.id and cancelled.status == "cancelled", cancelled
    other = OpenAI(base_url=args.base_url, api_key=args.api_key + "-other", max_retries=0)
    try:
        other.responses.retrieve(r.id)
        raise AssertionError("another key reached the response")
    except openai.NotFoundError:
        pass
    client.responses.delete(r.id)
    try:
        client.responses.retrieve(r.id)
        raise AssertionError("a deleted response was found")
    except openai.NotFoundError:
        pass
    print("ok: relayed_retrieve_cancel_delete")
if args.stored:
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.output[0].type == r.output[0].type, got
    items = client.responses.input_items.list(r.id)
    assert items.data, items
    client.responses.delete(r.id)
    try:
        client.responses.retrieve(r.id)
        raise AssertionError("a deleted response was found")
    except openai.NotFoundError:
        pass
    print("ok: retrieve_delete")

    # previous_response_id continues a kept conversation
    nxt = client.responses.create(model=args.model, input="Thanks!", previous_response_id=follow.id)
    assert nxt.previous_response_id == follow.id, nxt
    print("ok: previous_response_id")

try:
    client.responses.create(model=args.model, input="x", previous_response_id="resp_unknown")
    if args.stored:
        raise AssertionError("an unknown previous_response_id was accepted")
except (openai.NotFoundError, openai.BadRequestError):
    pass
print("ok: errors")
