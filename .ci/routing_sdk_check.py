#!/usr/bin/env python3
"""Checks which error class the official `openai` Python SDK raises when every deployment,
retry and fallback of a model group has failed behind llmgate.

Run by tests/routing_sdk.rs as:

    $LLMGATE_PYTHON .ci/routing_sdk_check.py --base-url http://127.0.0.1:PORT/v1 \
        --api-key sk-test --expect MODEL=ErrorClass[:status] [--expect ...]

For each --expect, a chat completion (SDK retries off) must raise exactly `openai.<ErrorClass>`
(type name equal, not a subclass) with the given HTTP status, if one is given. Prints
"ok: <MODEL>" per passing case; exits 1 with "FAIL: <MODEL>: <reason>" lines otherwise, 2 on
bad arguments or if `openai` is not installed.
"""

from __future__ import annotations

import argparse
import sys

try:
    import openai
except ImportError:  # pragma: no cover - environment problem, not a gateway problem
    print(
        f"FAIL: the 'openai' package is not installed for {sys.executable} "
        "(run `bash .ci/test`, which creates target/ci-venv)",
        file=sys.stderr,
    )
    sys.exit(2)


def check(client: openai.OpenAI, model: str, expected: str) -> str | None:
    name, _, status = expected.partition(":")
    try:
        resp = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
    except openai.APIError as e:
        got = type(e).__name__
        if got != name:
            return f"expected openai.{name}, got openai.{got}: {e}"
        if status and getattr(e, "status_code", None) != int(status):
            return f"expected status {status}, got {getattr(e, 'status_code', None)}"
        print(f"  {model}: openai.{got} (status {getattr(e, 'status_code', None)}): {e.message}")
        return None
    return f"expected openai.{name}, but the call succeeded: {resp!r}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--expect", action="append", default=[], help="MODEL=ErrorClass[:status]")
    args = parser.parse_args()
    if not args.expect:
        parser.error("at least one --expect")
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=60)
    failed = 0
    for item in args.expect:
        model, _, expected = item.partition("=")
        reason = check(client, model, expected)
        if reason is None:
            print(f"ok: {model}")
        else:
            failed += 1
            print(f"FAIL: {model}: {reason}", file=sys.stderr)
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
