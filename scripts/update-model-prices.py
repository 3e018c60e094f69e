#!/usr/bin/env python3
"""Regenerates llmgate's built-in price table from LiteLLM's published price map.

LiteLLM ships `model_prices_and_context_window_backup.json` inside the `litellm` wheel on PyPI.
This script downloads one pinned version of that wheel (`pip download --no-deps`), extracts the
map, keeps only the fields llmgate reads (see `ModelPrice` in src/cost/mod.rs), and writes:

- `src/cost/model_prices.json.gz`: the reduced map, gzip (level 9, no timestamp, so the same
  input always gives the same bytes); the binary embeds it and inflates it once, on first use.
- `src/cost/model_prices.source.json`: where it came from: the LiteLLM version, the wheel's file
  name and sha256, the map's sha256, and entry counts.

Usage:
    scripts/update-model-prices.py            # the pinned version below
    scripts/update-model-prices.py 1.111.0    # another version (then update LITELLM_VERSION)
    scripts/update-model-prices.py --wheel litellm-1.110.2-....whl   # a wheel already downloaded

Only the Python standard library and pip are needed. Run `cargo test --lib cost::` afterwards.
"""

import gzip
import hashlib
import json
import pathlib
import subprocess
import sys
import tempfile
import zipfile

# The LiteLLM release the embedded table comes from.
LITELLM_VERSION = "1.110.2"

# The fields of an entry llmgate reads; everything else (capabilities, per-image prices, ...) is
# dropped to keep the binary small.
FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_reasoning_token",
    "input_cost_per_query",
    "max_input_tokens",
    "max_output_tokens",
    "litellm_provider",
    "mode",
    # Images, audio and speech (issue 21): per image, per pixel, per second, per character.
    "input_cost_per_image",
    "output_cost_per_image",
    "input_cost_per_pixel",
    "input_cost_per_second",
    "input_cost_per_character",
)
NUMERIC = tuple(f for f in FIELDS if f not in ("litellm_provider", "mode"))
MAP_PATH = "litellm/model_prices_and_context_window_backup.json"

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT_TABLE = ROOT / "src" / "cost" / "model_prices.json.gz"
OUT_SOURCE = ROOT / "src" / "cost" / "model_prices.source.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(version: str, into: pathlib.Path) -> pathlib.Path:
    subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
            "--only-binary=:all:", "--dest", str(into), f"litellm=={version}",
        ],
        check=True,
    )
    wheels = sorted(into.glob(f"litellm-{version}-*.whl"))
    if not wheels:
        sys.exit(f"no litellm {version} wheel was downloaded into {into}")
    return wheels[0]


def reduce(raw: dict) -> dict:
    out = {}
    for name, entry in raw.items():
        if name == "sample_spec" or not isinstance(entry, dict):
            continue
        kept = {}
        for field in FIELDS:
            value = entry.get(field)
            if value is None:
                continue
            if field in NUMERIC:
                # A string or bool where a number belongs would make the whole entry unreadable.
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
            elif not isinstance(value, str):
                continue
            kept[field] = value
        out[name] = kept
    return out


def main() -> None:
    args = sys.argv[1:]
    local = None
    if len(args) >= 2 and args[0] == "--wheel":
        local = pathlib.Path(args[1])
        args = args[2:]
    version = args[0] if args else LITELLM_VERSION
    with tempfile.TemporaryDirectory() as tmp:
        wheel = local or download(version, pathlib.Path(tmp))
        if local is not None and f"litellm-{version}-" not in wheel.name:
            sys.exit(f"{wheel.name} is not a litellm {version} wheel")
        wheel_bytes = wheel.read_bytes()
        with zipfile.ZipFile(wheel) as z:
            raw_bytes = z.read(MAP_PATH)
    raw = json.loads(raw_bytes)
    table = reduce(raw)
    text = json.dumps(table, sort_keys=True, separators=(",", ":")).encode()
    packed = gzip.compress(text, compresslevel=9, mtime=0)
    OUT_TABLE.write_bytes(packed)
    priced = sum(
        1 for e in table.values()
        if "input_cost_per_token" in e or "output_cost_per_token" in e
    )
    source = {
        "package": "litellm",
        "version": version,
        "wheel": wheel.name,
        "wheel_sha256": sha256(wheel_bytes),
        "map": MAP_PATH,
        "map_sha256": sha256(raw_bytes),
        "entries": len(table),
        "entries_with_token_prices": priced,
        "fields": list(FIELDS),
        "json_bytes": len(text),
        "gzip_bytes": len(packed),
        "gzip_sha256": sha256(packed),
    }
    OUT_SOURCE.write_text(json.dumps(source, indent=2) + "\n")
    print(
        f"litellm {version}: {len(table)} entries ({priced} with token prices), "
        f"{len(text)} bytes of JSON, {len(packed)} gzipped -> {OUT_TABLE.relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
