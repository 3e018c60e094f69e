#!/usr/bin/env python3
"""Checks images and audio with the official `openai` Python SDK.

Run by tests/surface_images.rs and tests/surface_audio.rs as:

    $LLMGATE_PYTHON .ci/media_sdk_check.py --base-url http://127.0.0.1:PORT/v1 \
        --api-key sk-test --only images|audio [--image-model M] [--azure-image-model M] \
        [--audio-model M] [--speech-model M] [--speech-bytes N] [--upload-bytes N]

Checks (one "ok: <name>" line each):
  images.generate        images.generate(n=2) on IMAGE-MODEL: two images with URLs
  images.edit            images.edit with a PNG upload on IMAGE-MODEL: an image
  azure.images.generate  the AzureOpenAI client's images.generate on AZURE-IMAGE-MODEL
  transcriptions         audio.transcriptions.create with an UPLOAD-BYTES file: the text
  translations           audio.translations.create: the text
  speech                 audio.speech.with_streaming_response.create: SPEECH-BYTES of audio/mpeg,
                         read in several chunks as they arrive

All checks of the group run; exits 1 with a "FAIL: <name>: <reason>" line per failed check,
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


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64


def check_generate(client: openai.OpenAI, model: str) -> None:
    resp = client.images.generate(model=model, prompt="a cat", n=2, size="1024x1024")
    expect(len(resp.data) == 2, f"data: {resp!r}")
    expect(all(d.url for d in resp.data), f"urls: {resp!r}")
    print(f"  images: {[d.url for d in resp.data]}")


def check_edit(client: openai.OpenAI, model: str) -> None:
    resp = client.images.edit(
        model=model, image=("cat.png", PNG, "image/png"), prompt="add a hat"
    )
    expect(len(resp.data) >= 1 and resp.data[0].url, f"data: {resp!r}")


def check_azure_generate(base_url: str, api_key: str, model: str) -> None:
    endpoint = base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url
    azure = openai.AzureOpenAI(
        azure_endpoint=endpoint, api_key=api_key, api_version="2024-10-21", max_retries=0, timeout=30
    )
    resp = azure.images.generate(model=model, prompt="a dog")
    expect(len(resp.data) >= 1 and resp.data[0].url, f"data: {resp!r}")


def audio_file(n: int) -> bytes:
    return (b"ID3" + bytes(range(251)) * (n // 251 + 1))[:n]


def check_transcriptions(client: openai.OpenAI, model: str, size: int) -> None:
    resp = client.audio.transcriptions.create(
        model=model, file=("speech.mp3", audio_file(size), "audio/mpeg"), language="en"
    )
    expect(resp.text == "Hello world", f"text: {resp!r}")


def check_translations(client: openai.OpenAI, model: str, size: int) -> None:
    resp = client.audio.translations.create(
        model=model, file=("speech.mp3", audio_file(size), "audio/mpeg")
    )
    expect(resp.text == "Hello world", f"text: {resp!r}")


def check_speech(client: openai.OpenAI, model: str, size: int) -> None:
    with client.audio.speech.with_streaming_response.create(
        model=model, voice="alloy", input="Hello world"
    ) as resp:
        ctype = resp.headers.get("content-type")
        expect(ctype == "audio/mpeg", f"content-type {ctype!r}")
        chunks = [c for c in resp.iter_bytes(chunk_size=65536)]
    total = sum(len(c) for c in chunks)
    expect(total == size, f"{total} bytes, wanted {size}")
    expect(len(chunks) > 1, f"{len(chunks)} chunks")
    print(f"  speech: {total} bytes in {len(chunks)} chunks")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--only", required=True, choices=["images", "audio"])
    parser.add_argument("--image-model")
    parser.add_argument("--azure-image-model")
    parser.add_argument("--audio-model")
    parser.add_argument("--speech-model")
    parser.add_argument("--speech-bytes", type=int, default=0)
    parser.add_argument("--upload-bytes", type=int, default=3 << 20)
    args = parser.parse_args(argv)

    print(f"openai {openai.__version__}, base_url {args.base_url}")
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=60)
    checks: list[tuple[str, Callable[[], None]]]
    if args.only == "images":
        checks = [
            ("images.generate", lambda: check_generate(client, args.image_model)),
            ("images.edit", lambda: check_edit(client, args.image_model)),
            (
                "azure.images.generate",
                lambda: check_azure_generate(args.base_url, args.api_key, args.azure_image_model),
            ),
        ]
    else:
        checks = [
            ("transcriptions", lambda: check_transcriptions(client, args.audio_model, args.upload_bytes)),
            ("translations", lambda: check_translations(client, args.audio_model, args.upload_bytes)),
            ("speech", lambda: check_speech(client, args.speech_model, args.speech_bytes)),
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
        print(f"media SDK check FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"media SDK check passed ({len(checks)} checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
