#!/usr/bin/env bash
# Usage: scripts/ab-otel.sh (after `cargo build --profile dist --bin llmgate --bin llmgate-mock
# --example otlp_sink`). The G1 scenario (benches/load/llmgate-full.yaml: virtual key, limits,
# budget, spend log, three deployments) with OpenTelemetry traces off and on, alternating, the
# same binary over the same mock; "on" exports every span over OTLP/HTTP to examples/otlp_sink,
# which counts what it received. Prints req/s, the gateway's CPU µs per request (the export
# thread included) and p99 per run, and the spans received against the requests sent.
set -u
cd "$(dirname "$0")/.."
OHA=${OHA:-target/tools/bin/oha}
BIN=${BIN:-target/dist/llmgate}
MP=18755 SINK=18757 PORT=18756
target/dist/llmgate-mock --port $MP --threads 2 > /tmp/abotel-mock.log 2>&1 & MPID=$!
target/dist/examples/otlp_sink $SINK > /tmp/abotel-sink.log 2>&1 & SPID=$!
sleep 0.5
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
BODY='{"model":"bench","messages":[{"role":"user","content":"hi"}]}'
run_one() { # label conc
  local label=$1 c=$2 dir=/tmp/abotel_$1
  rm -rf $dir; mkdir -p $dir
  sed "s/MOCK_PORT/$MP/g" benches/load/llmgate-full.yaml > $dir/full.yaml
  local env=()
  if [ "$label" = on ]; then
    printf 'litellm_settings:\n  callbacks: ["otel"]\n' >> $dir/full.yaml
    env=(OTEL_EXPORTER=otlp_http OTEL_ENDPOINT=http://127.0.0.1:$SINK OTEL_SERVICE_NAME=bench)
  fi
  env RUST_LOG=warn "${env[@]}" $BIN --config $dir/full.yaml --host 127.0.0.1 --port $PORT --num_workers 2 > $dir/gw.log 2>&1 & local G=$!
  for i in $(seq 50); do curl -fs http://127.0.0.1:$PORT/health/liveliness >/dev/null && break; sleep 0.1; done
  local KEY=$(curl -fsS -X POST "http://127.0.0.1:$PORT/key/generate" -H 'authorization: Bearer sk-bench-master' -H 'content-type: application/json' -d '{"key_alias":"bench","models":["bench"],"rpm_limit":100000000,"tpm_limit":100000000000,"max_budget":1000000}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  local s0=$(curl -fs http://127.0.0.1:$SINK/count)
  local warm=$($OHA -z 1s -c $c --no-tui --output-format json -m POST -H "authorization: Bearer $KEY" -H 'content-type: application/json' -d "$BODY" http://127.0.0.1:$PORT/v1/chat/completions | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(d["statusCodeDistribution"].values()))')
  local c0=$(cpu $G)
  local out=$($OHA -z 5s -c $c --no-tui --output-format json -m POST -H "authorization: Bearer $KEY" -H 'content-type: application/json' -d "$BODY" http://127.0.0.1:$PORT/v1/chat/completions)
  local c1=$(cpu $G)
  # SIGTERM: the last spans are flushed before the gateway exits.
  kill $G; wait $G 2>/dev/null
  local s1=$(curl -fs http://127.0.0.1:$SINK/count)
  echo "$out" | python3 -c "
import json,sys
d=json.load(sys.stdin); s=d['summary']; n=s['requestsPerSec']*5
sent=sum(d['statusCodeDistribution'].values())+$warm
spans=$s1-$s0
extra=(' spans=%d for %d requests (%.3f per request)' % (spans, sent, spans/max(sent,1))) if '$label'=='on' else ''
print('$label c$c rps=%.0f cpu_us=%.1f p99_us=%.0f%s' % (s['requestsPerSec'], ($c1-$c0)*10000/max(n,1), d['latencyPercentiles']['p99']*1e6, extra))"
  if grep -qi "drop" $dir/gw.log; then echo "  $label: $(grep -i drop $dir/gw.log | head -2)"; fi
}
for r in ${AB_ROUNDS:-1 2 3}; do
  for c in ${AB_CONC:-64 1}; do
    if [ $((r % 2)) = 1 ]; then run_one off $c; run_one on $c
    else run_one on $c; run_one off $c; fi
  done
done
kill $MPID $SPID
