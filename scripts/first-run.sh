#!/usr/bin/env bash
# Time from a fresh clone to the first answer of the README's first command.
# Usage: scripts/first-run.sh [cargo-args...]   (default: run --release)
# Clones this repository into a temporary directory, builds into an empty target directory
# (dependencies already downloaded in ~/.cargo count as a warm registry, not a warm build),
# starts the gateway on its embedded default and polls the chat route until it answers.
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ARGS=("$@"); [ ${#ARGS[@]} -eq 0 ] && ARGS=(run --release)
WORK="$(mktemp -d)"; PORT="${PORT:-18999}"
git clone -q "$ROOT" "$WORK/src"
cd "$WORK/src"
start=$(date +%s.%N)
CARGO_TARGET_DIR="$WORK/target" cargo "${ARGS[@]}" -- --port "$PORT" > "$WORK/run.log" 2>&1 &
pid=$!
until curl -fs -X POST "http://127.0.0.1:$PORT/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model":"mock","messages":[{"role":"user","content":"hi"}]}' > "$WORK/answer.json" 2>/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null; then echo "the gateway exited; see $WORK/run.log"; exit 1; fi
  sleep 0.5
done
end=$(date +%s.%N)
printf 'cargo %s: first answer after %.0f s\n' "${ARGS[*]}" "$(echo "$end - $start" | bc)"
pkill -P "$pid" 2>/dev/null; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
rm -rf "$WORK"
