#!/usr/bin/env python3
"""Checks the rest of the OpenAI request surface with the official `openai` Python SDK.

Run by tests/surface_sdk.rs as:

    $LLMGATE_PYTHON .ci/surface_sdk_check.py --base-url http://127.0.0.1:PORT/v1 \
        --api-key sk-test --model MODEL --native-model MODEL2 --moderation-model MODEL3

Checks (one "ok: <name>" line each):
  completions         completions.create on MODEL (served through the chat model): text_completion
                      object, non-empty text, usage.total_tokens > 0
  completions_stream  completions.create(stream=True, include_usage): >= 2 text chunks, the
                      last chunk carries usage
  completions_native  completions.create on MODEL2 (relayed natively): the upstream's text
  models_retrieve     models.retrieve(MODEL) returns it; an unknown id raises NotFoundError (404)
  moderations         moderations.create on MODERATION-MODEL: results[0].flagged is True
  azure               the AzureOpenAI client (api-key header, /openai/deployments/MODEL/...):
                      chat.completions.create and completions.create answer
  invalid_model       completions.create on an unknown model raises BadRequestError (400) whose
                      message is LiteLLM's "Invalid model name passed in model=..."

All checks run; exits 1 with a "FAIL: <name>: <reason>" line per failed check,
2 if `openai` is not installed.
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


def check_completions(client: openai.OpenAI, model: str) -> None:
    resp = client.completions.create(model=model, prompt="Say hi", max_tokens=16)
    expect(resp.object == "text_completion", f"object is {resp.object!r}")
    expect(len(resp.choices) >= 1, f"no choices: {resp!r}")
    text = resp.choices[0].text
    expect(isinstance(text, str) and text != "", f"choices[0].text is empty: {resp!r}")
    expect(resp.usage is not None and resp.usage.total_tokens > 0, f"no usage: {resp!r}")
    print(f"  text: {text!r}")


def check_completions_stream(client: openai.OpenAI, model: str) -> None:
    stream = client.completions.create(
        model=model,
        prompt="Say hi",
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    last = None
    for chunk in stream:
        last = chunk
        expect(chunk.object == "text_completion", f"chunk object is {chunk.object!r}")
        for choice in chunk.choices:
            if choice.text:
                pieces.append(choice.text)
    expect(len(pieces) >= 2, f"expected >= 2 text chunks, got {pieces!r}")
    expect(last is not None and last.usage is not None, f"last chunk has no usage: {last!r}")
    expect(last.usage.total_tokens > 0, f"usage.total_tokens is not > 0: {last.usage!r}")
    print(f"  streamed: {''.join(pieces)!r} in {len(pieces)} chunks")


def check_completions_native(client: openai.OpenAI, model: str) -> None:
    resp = client.completions.create(model=model, prompt="Say hi", echo=False, suffix="!")
    expect(resp.choices[0].text == " native text", f"unexpected text: {resp!r}")
    expect(resp.usage is not None and resp.usage.total_tokens == 6, f"usage: {resp.usage!r}")


def check_models_retrieve(client: openai.OpenAI, model: str) -> None:
    m = client.models.retrieve(model)
    expect(m.id == model and m.object == "model", f"unexpected model: {m!r}")
    try:
        client.models.retrieve("no-such-model")
    except openai.NotFoundError as e:
        expect(e.status_code == 404, f"status {e.status_code}")
        print(f"  NotFoundError: {e.message}")
        return
    raise CheckFailed("models.retrieve('no-such-model') did not raise NotFoundError")


def check_moderations(client: openai.OpenAI, model: str) -> None:
    resp = client.moderations.create(model=model, input="I will hurt you")
    expect(len(resp.results) == 1, f"results: {resp!r}")
    expect(resp.results[0].flagged is True, f"not flagged: {resp!r}")
    expect(resp.model == "omni-moderation-latest", f"model: {resp.model!r}")


def check_azure(base_url: str, api_key: str, model: str) -> None:
    endpoint = base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url
    azure = openai.AzureOpenAI(
        azure_endpoint=endpoint, api_key=api_key, api_version="2024-10-21", max_retries=0, timeout=30
    )
    chat = azure.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )
    expect(bool(chat.choices[0].message.content), f"empty chat answer: {chat!r}")
    text = azure.completions.create(model=model, prompt="hi")
    expect(text.object == "text_completion" and bool(text.choices[0].text), f"{text!r}")
    print(f"  azure chat: {chat.choices[0].message.content!r}, completion: {text.choices[0].text!r}")


def check_invalid_model(client: openai.OpenAI) -> None:
    try:
        client.completions.create(model="no-such-model", prompt="x")
    except openai.BadRequestError as e:
        expect(e.status_code == 400, f"status {e.status_code}")
        expect(
            "Invalid model name passed in model=no-such-model" in e.message,
            f"message: {e.message!r}",
        )
        print(f"  BadRequestError: {e.message}")
        return
    raise CheckFailed("an unknown model did not raise BadRequestError")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", required=True, help="a model served through the chat model")
    parser.add_argument("--native-model", required=True, help="a text-completion model")
    parser.add_argument("--moderation-model", required=True, help="a moderation model")
    args = parser.parse_args(argv)

    print(f"openai {openai.__version__}, base_url {args.base_url}")
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=30)
    checks: list[tuple[str, Callable[[], None]]] = [
        ("completions", lambda: check_completions(client, args.model)),
        ("completions_stream", lambda: check_completions_stream(client, args.model)),
        ("completions_native", lambda: check_completions_native(client, args.native_model)),
        ("models_retrieve", lambda: check_models_retrieve(client, args.model)),
        ("moderations", lambda: check_moderations(client, args.moderation_model)),
        ("azure", lambda: check_azure(args.base_url, args.api_key, args.model)),
        ("invalid_model", lambda: check_invalid_model(client)),
    ]
    failed: list[str] = []
    for name, run in checks:
        try:
            run()
        except CheckFailed as e:
            failed.append(name)
            print(f"FAIL: {name}: {e}", file=sys.stderr)
        except Exception as e:  # any SDK or connection error fails this check
            failed.append(name)
            print(f"FAIL: {name}: {type(e).__name__}: {e}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
        else:
            print(f"ok: {name}")
        sys.stdout.flush()
    if failed:
        print(f"surface SDK check FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"surface SDK check passed ({len(checks)} checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
