#!/usr/bin/env bash
# Instructions per request, counted by callgrind: a figure that does not move with the load of a
# shared machine (the same binary, config and requests give the same count, give or take 0.1 %),
# so two commits or two configs can be compared where req/s and CPU time are too noisy.
#
#   bash benches/load/instructions.sh CONFIG [N]     (CONFIG: a benches/load/*.yaml, without .yaml)
#
# Environment: BIN (default target/dist: the directory holding llmgate and llmgate-mock; build
# them first, e.g. `cargo build --profile dist --bin llmgate --bin llmgate-mock`), KIND (chat |
# messages; default chat), DROP_SPEND_INDEXES=1 (drops the spend log's migration-3 indexes in the
# SQLite database before measuring, to price them). Needs valgrind.
#
# The gateway runs one worker under `valgrind --tool=callgrind --instr-atstart=no`; 200 warm-up
# requests go over one keep-alive connection, then counting is switched on, N requests (default
# 1000) are sent, the spend writer is given 3 s to flush, and the counts are dumped. The figure is
# the whole process's instructions (serving, upstream client, spend writer) divided by N.
# Counts under valgrind are not the native binary's: CPUID hides SHA-NI from valgrind's guest, so
# SHA-256 (virtual-key hashing) takes the software path and is overstated.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CFG="${1:?usage: instructions.sh CONFIG [N]}"; N="${2:-1000}"
KIND="${KIND:-chat}"; BIN="${BIN:-target/dist}"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install -y valgrind)" >&2; exit 1; }
D="$(mktemp -d "${TMPDIR:-/tmp}/llmgate-instr.XXXXXX")"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
MP="$(free_port)"; GP="$(free_port)"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
"$BIN/llmgate-mock" --port "$MP" --threads 1 >"$D/mock.log" 2>&1 & PIDS+=($!)
sed -e "s/MOCK_PORT/$MP/g" "benches/load/$CFG.yaml" >"$D/$CFG.yaml"
RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$D/cg.out" \
  "$BIN/llmgate" --config "$D/$CFG.yaml" --host 127.0.0.1 --port "$GP" --num_workers 1 \
  >"$D/gateway.log" 2>&1 & GPID=$!; PIDS+=($GPID)
for _ in $(seq 1 240); do
  curl -fsS "http://127.0.0.1:$GP/health/liveliness" >/dev/null 2>&1 && break; sleep 0.5
done
KEY=""
if grep -q '^  master_key:' "$D/$CFG.yaml"; then
  MASTER="$(sed -n 's/^  master_key: *//p' "$D/$CFG.yaml")"
  KEY="$(curl -fsS -X POST "http://127.0.0.1:$GP/key/generate" -H "authorization: Bearer $MASTER" \
    -H 'content-type: application/json' \
    -d '{"key_alias":"bench","rpm_limit":100000000,"tpm_limit":100000000000,"max_budget":1000000}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
fi
if [ "${DROP_SPEND_INDEXES:-0}" = 1 ]; then
  python3 - "$D/llmgate.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for i in ("user", "team", "key"):
    c.execute(f"DROP INDEX IF EXISTS llmgate_spend_logs_{i}_start")
c.commit()
PY
fi
cat >"$D/drive.py" <<'PY'
import http.client, sys
port, n, key, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", port)
h = {"content-type": "application/json"}
if key:
    h["authorization"] = "Bearer " + key
if kind == "messages":
    path = "/v1/messages"
    h["anthropic-version"] = "2023-06-01"
    body = '{"model":"bench-anthropic","max_tokens":32,"messages":[{"role":"user","content":"Say hello."}]}'
else:
    path = "/v1/chat/completions"
    body = '{"model":"bench","messages":[{"role":"user","content":"Say hello."}],"max_tokens":32}'
for _ in range(n):
    c.request("POST", path, body, h)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"status {r.status}")
PY
python3 "$D/drive.py" "$GP" 200 "$KEY" "$KIND"
sleep 2
callgrind_control -i on "$GPID" >/dev/null
python3 "$D/drive.py" "$GP" "$N" "$KEY" "$KIND"
sleep 3
callgrind_control -d "$GPID" >/dev/null
TOTAL="$(sed -n 's/^totals: //p' "$D/cg.out.1")"
echo "$CFG kind=$KIND bin=$BIN drop_spend_indexes=${DROP_SPEND_INDEXES:-0} requests=$N instructions=$TOTAL per_request=$((TOTAL / N)) profile=$D/cg.out.1"
