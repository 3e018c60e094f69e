#!/usr/bin/env bash
# Usage: scripts/ab-g1.sh (after `bash benches/load/run.sh` built the binaries); set BASE and HEAD_BIN.
# A/B of the G1 (full stack) scenario: two llmgate binaries, alternating, same mock.
set -u
cd "$(dirname "$0")/.."
OHA=target/tools/bin/oha
MP=18655
target/dist/llmgate-mock --port $MP --threads 2 > /tmp/abmock.log 2>&1 & MPID=$!
sleep 0.5
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
run_one() { # bin label conc
  local bin=$1 label=$2 c=$3 port=18656; local dir=/tmp/ab_$label
  rm -rf $dir; mkdir -p $dir
  sed "s/MOCK_PORT/$MP/g" benches/load/${AB_CONFIG:-llmgate-full}.yaml > $dir/full.yaml
  RUST_LOG=warn $bin --config $dir/full.yaml --host 127.0.0.1 --port $port --num_workers 2 > $dir/gw.log 2>&1 & local G=$!
  for i in $(seq 50); do curl -fs http://127.0.0.1:$port/health/liveliness >/dev/null && break; sleep 0.1; done
  local KEY=$(curl -fsS -X POST "http://127.0.0.1:$port/key/generate" -H 'authorization: Bearer sk-bench-master' -H 'content-type: application/json' -d '{"key_alias":"bench","models":["bench"],"rpm_limit":100000000,"tpm_limit":100000000000,"max_budget":1000000}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  $OHA -z 1s -c $c --no-tui -m POST -H "authorization: Bearer $KEY" -H 'content-type: application/json' -d '{"model":"bench","messages":[{"role":"user","content":"hi"}]}' http://127.0.0.1:$port/v1/chat/completions >/dev/null
  local c0=$(cpu $G)
  local out=$($OHA -z 5s -c $c --no-tui --output-format json -m POST -H "authorization: Bearer $KEY" -H 'content-type: application/json' -d '{"model":"bench","messages":[{"role":"user","content":"hi"}]}' http://127.0.0.1:$port/v1/chat/completions)
  local c1=$(cpu $G)
  kill $G; wait $G 2>/dev/null
  echo "$out" | python3 -c "
import json,sys
d=json.load(sys.stdin); s=d['summary']; n=s['requestsPerSec']*5
print('$label c$c rps=%.0f cpu_us=%.1f p99_us=%.0f' % (s['requestsPerSec'], ($c1-$c0)*10000/max(n,1), d['latencyPercentiles']['p99']*1e6))"
}
for r in 1 2 3; do
  for c in ${AB_CONC:-64 1}; do
    if [ $((r % 2)) = 1 ]; then run_one ${BASE:-/tmp/llmgate-base} base $c; run_one ${HEAD_BIN:-target/dist/llmgate} head $c
    else run_one ${HEAD_BIN:-target/dist/llmgate} head $c; run_one ${BASE:-/tmp/llmgate-base} base $c; fi
  done
done
kill $MPID
