#!/usr/bin/env python3
"""Checks that the official `openai` Python SDK works against a running llmgate.

Run by the Rust SDK-compatibility test as:

    $LLMGATE_PYTHON ci/openai_sdk_check.py --base-url http://127.0.0.1:PORT/v1 \
        --api-key sk-test --model MODEL --rate-limited-model MODEL2

Checks (one "ok: <name>" line each):
  chat            non-streaming chat completion: non-empty text, usage.total_tokens > 0
  stream          streaming with include_usage: >= 2 content chunks, non-empty text,
                  last chunk carries usage
  rate_limit      MODEL2 raises openai.RateLimitError with status_code 429 (no retries)
  models          models.list() contains MODEL

All checks run; exits 1 with a "FAIL: <name>: <reason>" line per failed check,
2 on bad arguments or if `openai` is not installed.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Callable

try:
    import openai
except ImportError:  # pragma: no cover - environment problem, not a gateway problem
    print(
        f"FAIL: the 'openai' package is not installed for {sys.executable} "
        "(run `bash .ci/test`, which creates target/ci-venv)",
        file=sys.stderr,
    )
    sys.exit(2)


class CheckFailed(Exception):
    """A check's expectation did not hold."""


def expect(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


MESSAGES = [{"role": "user", "content": "hi"}]


def check_chat(client: openai.OpenAI, model: str, state: dict) -> None:
    resp = client.chat.completions.create(model=model, messages=MESSAGES)
    expect(len(resp.choices) >= 1, f"no choices in response: {resp!r}")
    content = resp.choices[0].message.content
    expect(
        isinstance(content, str) and content != "",
        f"choices[0].message.content is not a non-empty str: {content!r}",
    )
    expect(resp.usage is not None, f"response has no usage: {resp!r}")
    expect(
        resp.usage.total_tokens > 0,
        f"usage.total_tokens is not > 0: {resp.usage!r}",
    )
    state["chat_text"] = content
    print(f"  non-stream text: {content!r} (usage.total_tokens={resp.usage.total_tokens})")


def check_stream(client: openai.OpenAI, model: str, state: dict) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    chunks = 0
    last = None
    for chunk in stream:
        chunks += 1
        last = chunk
        for choice in chunk.choices:
            if choice.index == 0 and choice.delta is not None and choice.delta.content:
                pieces.append(choice.delta.content)
    text = "".join(pieces)
    print(f"  stream text:     {text!r} ({len(pieces)} content chunks, {chunks} chunks)")
    if "chat_text" in state:
        same = "same as" if text == state["chat_text"] else "differs from"
        print(f"  stream text {same} the non-stream text (informational)")
    expect(len(pieces) >= 2, f"expected >= 2 content chunks, got {len(pieces)}: {pieces!r}")
    expect(text != "", "streamed text is empty")
    expect(last is not None, "stream had no chunks")
    expect(
        last.usage is not None,
        f"last chunk carries no usage (stream_options.include_usage): {last!r}",
    )
    expect(
        last.usage.total_tokens > 0,
        f"last chunk usage.total_tokens is not > 0: {last.usage!r}",
    )


def check_rate_limit(client: openai.OpenAI, model: str, state: dict) -> None:
    try:
        resp = client.with_options(max_retries=0).chat.completions.create(
            model=model, messages=MESSAGES
        )
    except openai.RateLimitError as e:
        expect(e.status_code == 429, f"RateLimitError.status_code is {e.status_code}, not 429")
        print(f"  RateLimitError: {e.message}")
        return
    except openai.APIStatusError as e:
        raise CheckFailed(
            f"expected openai.RateLimitError (429), got {type(e).__name__} "
            f"(status {e.status_code}): {e.message}"
        ) from e
    raise CheckFailed(f"expected openai.RateLimitError (429), but the call succeeded: {resp!r}")


def check_models(client: openai.OpenAI, model: str, state: dict) -> None:
    ids = [m.id for m in client.models.list()]
    expect(model in ids, f"model {model!r} not in models.list(): {ids!r}")
    print(f"  models: {ids!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8080/v1")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", required=True, help="a model that answers normally")
    parser.add_argument(
        "--rate-limited-model", required=True, help="a model for which the gateway returns 429"
    )
    args = parser.parse_args(argv)

    print(f"openai {openai.__version__}, base_url {args.base_url}")
    client = openai.OpenAI(
        base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=30
    )
    state: dict = {}
    checks: list[tuple[str, Callable[[], None]]] = [
        ("chat", lambda: check_chat(client, args.model, state)),
        ("stream", lambda: check_stream(client, args.model, state)),
        ("rate_limit", lambda: check_rate_limit(client, args.rate_limited_model, state)),
        ("models", lambda: check_models(client, args.model, state)),
    ]
    failed: list[str] = []
    for name, run in checks:
        try:
            run()
        except CheckFailed as e:
            failed.append(name)
            print(f"FAIL: {name}: {e}", file=sys.stderr)
        except Exception as e:  # any SDK/connection error is a failure of this check
            failed.append(name)
            print(f"FAIL: {name}: {type(e).__name__}: {e}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
        else:
            print(f"ok: {name}")
        sys.stdout.flush()

    if failed:
        print(
            f"openai SDK check FAILED ({len(failed)}/{len(checks)}): {', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    print(f"openai SDK check passed ({len(checks)} checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
