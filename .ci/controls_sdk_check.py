#!/usr/bin/env python3
"""Checks LiteLLM's error classes and the `/openai/v1` base with the official `openai` SDK.

Run by tests/surface_sdk.rs as:

    $LLMGATE_PYTHON .ci/controls_sdk_check.py --root http://127.0.0.1:PORT --api-key KEY \
        --model MODEL --embedding-model MODEL2 --limited-model MODEL3 --refusing-model MODEL4

The gateway runs with `general_settings.litellm_exception_prefix: true` and
`dangerously_allow_mock_testing_request_params: true`. Checks (one "ok: <name>" line each):
  upstream_429     chat on LIMITED-MODEL (its upstream answers 429) raises RateLimitError whose
                   message starts with "litellm.RateLimitError: "
  upstream_400     chat on REFUSING-MODEL (its upstream answers 400) raises BadRequestError whose
                   message starts with "litellm.BadRequestError: "
  mock_rate_limit  mock_testing_rate_limit_error raises RateLimitError, "litellm.RateLimitError: "
  mock_timeout     mock_timeout raises an APIStatusError with status 408, "litellm.Timeout: "
  invalid_model    an unknown model raises BadRequestError whose message is LiteLLM's proxy
                   error, without a class prefix ("/chat/completions: Invalid model name ...")
  v1_chat          OpenAI(base_url=ROOT/openai/v1) chat.completions.create answers
  v1_stream        the same, streamed: >= 1 content chunk
  v1_embeddings    OpenAI(base_url=ROOT/openai/v1) embeddings.create on EMBEDDING-MODEL answers
  v1_api_key       the same chat with the key in Azure's `api-key` header (no Authorization)

All checks run; exits 1 with a "FAIL: <name>: <reason>" line per failed check,
2 if `openai` is not installed.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Callable

try:
    import httpx
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


def raises(call: Callable[[], object], cls: type, status: int, prefix: str) -> None:
    try:
        call()
    except cls as e:  # type: ignore[misc]
        expect(e.status_code == status, f"status {e.status_code}, want {status}")
        # The error object's `message` (`e.message` is "Error code: N - <body>").
        body = e.body if isinstance(e.body, dict) else {}
        message = body.get("message")
        expect(
            isinstance(message, str) and message.startswith(prefix),
            f"error.message {message!r} does not start with {prefix!r} ({e.message!r})",
        )
        print(f"  {type(e).__name__} {e.status_code}: {message}")
        return
    raise CheckFailed(f"no {cls.__name__} raised")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="http://host:port, no path")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--embedding-model", required=True)
    parser.add_argument("--limited-model", required=True)
    parser.add_argument("--refusing-model", required=True)
    args = parser.parse_args(argv)

    print(f"openai {openai.__version__}, root {args.root}")
    plain = openai.OpenAI(
        base_url=f"{args.root}/v1", api_key=args.api_key, max_retries=0, timeout=30
    )
    # What Azure OpenAI's v1 API documentation shows: the OpenAI client with base_url .../openai/v1/.
    v1 = openai.OpenAI(
        base_url=f"{args.root}/openai/v1/", api_key=args.api_key, max_retries=0, timeout=30
    )
    # Azure's `api-key` header instead of a bearer token.
    v1_api_key = openai.OpenAI(
        base_url=f"{args.root}/openai/v1/",
        api_key="unused",
        max_retries=0,
        timeout=30,
        http_client=httpx.Client(
            event_hooks={
                "request": [
                    lambda r: (
                        r.headers.pop("authorization", None),
                        r.headers.__setitem__("api-key", args.api_key),
                    )
                ]
            }
        ),
    )

    def v1_chat() -> None:
        r = v1.chat.completions.create(model=args.model, messages=MESSAGES)
        expect(bool(r.choices[0].message.content), f"empty answer: {r!r}")
        print(f"  content: {r.choices[0].message.content!r}")

    def v1_stream() -> None:
        pieces = []
        for chunk in v1.chat.completions.create(model=args.model, messages=MESSAGES, stream=True):
            for c in chunk.choices:
                if c.delta.content:
                    pieces.append(c.delta.content)
        expect(len(pieces) >= 1, f"no content chunks: {pieces!r}")
        print(f"  streamed {len(pieces)} chunks")

    def v1_embeddings() -> None:
        r = v1.embeddings.create(model=args.embedding_model, input=["a", "b"])
        expect(len(r.data) == 2 and len(r.data[0].embedding) > 0, f"{r!r}")

    def v1_key_header() -> None:
        r = v1_api_key.chat.completions.create(model=args.model, messages=MESSAGES)
        expect(bool(r.choices[0].message.content), f"empty answer: {r!r}")

    checks: list[tuple[str, Callable[[], None]]] = [
        (
            "upstream_429",
            lambda: raises(
                lambda: plain.chat.completions.create(model=args.limited_model, messages=MESSAGES),
                openai.RateLimitError,
                429,
                "litellm.RateLimitError: ",
            ),
        ),
        (
            "upstream_400",
            lambda: raises(
                lambda: plain.chat.completions.create(model=args.refusing_model, messages=MESSAGES),
                openai.BadRequestError,
                400,
                "litellm.BadRequestError: ",
            ),
        ),
        (
            "mock_rate_limit",
            lambda: raises(
                lambda: plain.chat.completions.create(
                    model=args.model,
                    messages=MESSAGES,
                    extra_body={"mock_testing_rate_limit_error": True},
                ),
                openai.RateLimitError,
                429,
                "litellm.RateLimitError: This is a mock exception",
            ),
        ),
        (
            "mock_timeout",
            lambda: raises(
                lambda: plain.chat.completions.create(
                    model=args.model, messages=MESSAGES, extra_body={"mock_timeout": True}
                ),
                openai.APIStatusError,
                408,
                "litellm.Timeout: ",
            ),
        ),
        (
            "invalid_model",
            lambda: raises(
                lambda: plain.chat.completions.create(model="no-such-model", messages=MESSAGES),
                openai.BadRequestError,
                400,
                "/chat/completions: Invalid model name passed in model=no-such-model",
            ),
        ),
        ("v1_chat", v1_chat),
        ("v1_stream", v1_stream),
        ("v1_embeddings", v1_embeddings),
        ("v1_api_key", v1_key_header),
    ]
    failed = 0
    for name, check in checks:
        try:
            check()
            print(f"ok: {name}")
        except CheckFailed as e:
            failed += 1
            print(f"FAIL: {name}: {e}")
        except Exception as e:  # noqa: BLE001 - report any SDK error as a failed check
            failed += 1
            print(f"FAIL: {name}: {type(e).__name__}: {e}")
            traceback.print_exc()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
