#!/usr/bin/env python3
"""Drives llmgate with the official `openai` Python SDK: chat completions with tools, non-streamed
and streamed, one model group per provider family. Prints what the SDK parsed, as JSON.

Run by tests/providers_sdk.rs as:

    $LLMGATE_PYTHON .ci/providers_sdk_check.py --base-url http://127.0.0.1:PORT/v1 \
        --api-key sk-test --calls calls.json

`calls.json` is a list of {"label", "model", "stream", "body"}: `body` is an OpenAI chat request
body without `model` / `stream` (the keys `create()` knows are passed as arguments, any other key
through `extra_body`). Calls run in order, one at a time (SDK retries off).

Prints one JSON object on stdout, by label:
- non-stream: {"class": the SDK's class of each tool call, "message": ..., "finish_reason": ...,
  "usage": ...}, from the parsed `ChatCompletion` (`model_dump(exclude_unset=True)`: fields the
  gateway sent, explicit nulls included);
- stream: {"chunks": [every parsed `ChatCompletionChunk`, dumped the same way],
  "final": the `ChatCompletion` the SDK's own stream accumulator (`ChatCompletionStreamState`)
  builds from those chunks};
- {"error": "<exception class>: <message>"} when the call raised.

Exits 0 when every call returned (the Rust test judges the results), 2 on bad arguments or if
`openai` is not installed.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys

try:
    import openai
    from openai.lib.streaming.chat import ChatCompletionStreamState
except ImportError as e:  # pragma: no cover - environment problem, not a gateway problem
    print(
        f"FAIL: the 'openai' package is not installed for {sys.executable} ({e}); "
        "run `bash .ci/test`, which creates target/ci-venv",
        file=sys.stderr,
    )
    sys.exit(2)

KNOWN = set(inspect.signature(openai.resources.chat.completions.Completions.create).parameters) - {
    "self",
    "extra_body",
    "extra_headers",
    "extra_query",
    "timeout",
}


def split_kwargs(body: dict) -> dict:
    kwargs = {k: v for k, v in body.items() if k in KNOWN and k not in ("model", "stream")}
    extra = {k: v for k, v in body.items() if k not in KNOWN}
    if extra:
        kwargs["extra_body"] = extra
    return kwargs


def non_stream(client: openai.OpenAI, call: dict) -> dict:
    resp = client.chat.completions.create(model=call["model"], **split_kwargs(call["body"]))
    choice = resp.choices[0]
    return {
        "class": [type(tc).__name__ for tc in (choice.message.tool_calls or [])],
        "message": choice.message.model_dump(exclude_unset=True),
        "finish_reason": choice.finish_reason,
        "usage": resp.usage.model_dump(exclude_unset=True) if resp.usage is not None else None,
    }


def stream(client: openai.OpenAI, call: dict) -> dict:
    state = ChatCompletionStreamState()
    chunks = []
    with client.chat.completions.create(
        model=call["model"], stream=True, **split_kwargs(call["body"])
    ) as events:
        for chunk in events:
            chunks.append(chunk.model_dump(exclude_unset=True))
            state.handle_chunk(chunk)
    final = state.get_final_completion()
    return {"chunks": chunks, "final": final.model_dump(exclude_unset=True, mode="json")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--calls", required=True, help="JSON file: a list of calls")
    args = parser.parse_args()
    with open(args.calls, encoding="utf-8") as f:
        calls = json.load(f)
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=60)
    out = {}
    for call in calls:
        try:
            out[call["label"]] = stream(client, call) if call["stream"] else non_stream(client, call)
        except Exception as e:  # noqa: BLE001 - every failure is reported to the Rust test
            out[call["label"]] = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
