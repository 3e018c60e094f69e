#!/usr/bin/env bash
# Load benchmark: the mock upstream called directly, through a bare pass-through proxy, through
# llmgate and through LiteLLM's proxy, with the same scenarios interleaved in one run.
# See benches/load/README.md. Usage:
#
#   bash benches/load/run.sh [--quick] [--no-litellm] [--update-docs]
#
# Environment: DURATION (seconds per run, default 5), S1_C1_DURATION (default 30), ROUNDS
# (default 1), SCENARIOS (default L1,L2,L3,S1,G1,R1,C1,T1,M1,P1), L3_RATES, LITELLM_VERSION, OUT_DIR
# (default target/bench). Needs openssl for T1's throw-away CA.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
HERE=benches/load
COMMAND="bash benches/load/run.sh $*"

WITH_LITELLM=1
UPDATE_DOCS=0
for a in "$@"; do
  case "$a" in
    --quick) export DURATION="${DURATION:-2}" S1_C1_DURATION="${S1_C1_DURATION:-2}" \
      L3_RATES="${L3_RATES:-500,2000,8000}" ;;
    --no-litellm) WITH_LITELLM=0 ;;
    --update-docs) UPDATE_DOCS=1 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done

LITELLM_VERSION="${LITELLM_VERSION:-1.100.5}"
OHA_VERSION="${OHA_VERSION:-1.16.0}"
export OUT_DIR="${OUT_DIR:-$ROOT/target/bench}"
LOGS="$OUT_DIR/logs"
mkdir -p "$LOGS"
CORES="$(nproc)"

echo "==== build (dist: fat LTO, one codegen unit) ===="
# Without OUT_DIR: build scripts (ring's) read that variable, and a different value from a plain
# `cargo build` rebuilds everything that depends on them.
env -u OUT_DIR cargo build --profile dist --bin llmgate --bin llmgate-mock \
  --example passthrough_proxy --example stream_client

echo "==== load generator: oha ===="
if command -v oha >/dev/null 2>&1; then
  OHA="$(command -v oha)"
else
  OHA="$ROOT/target/tools/bin/oha"
  if [ ! -x "$OHA" ]; then
    cargo install oha --locked --version "$OHA_VERSION" --root "$ROOT/target/tools"
  fi
fi
export OHA
export STREAM_CLIENT="$ROOT/target/dist/examples/stream_client"

if [ "$WITH_LITELLM" = 1 ]; then
  echo "==== LiteLLM proxy $LITELLM_VERSION (throw-away venv) ===="
  VENV="$ROOT/target/bench/litellm-$LITELLM_VERSION"
  if [ ! -x "$VENV/bin/litellm" ]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION"
  fi
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

wait_ready() { # url, seconds, name
  local deadline=$((SECONDS + $2))
  until curl -fsS ${CURL_CA:+--cacert "$CURL_CA"} -o /dev/null "$1" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "$3 did not become ready at $1; log: $LOGS/$3.log" >&2
      tail -20 "$LOGS/$3.log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}

render() { # template -> file with MOCK_PORT filled in
  sed -e "s/MOCKTLS_PORT/$MOCKTLS_PORT/g" -e "s/MOCK_PORT/$MOCK_PORT/g" "$HERE/$1" > "$OUT_DIR/$1"
}

echo "==== start targets ===="
export MOCK_PORT PT_PORT GW_PORT GWFULL_PORT
MOCK_PORT="$(free_port)"
target/dist/llmgate-mock --port "$MOCK_PORT" --threads "$CORES" >"$LOGS/mock.log" 2>&1 &
PIDS+=($!)
wait_ready "http://127.0.0.1:$MOCK_PORT/health" 10 mock

# T1: the same mock over TLS, HTTP/2 by ALPN, with a certificate from a throw-away CA (openssl).
TLS_DIR="$OUT_DIR/tls"
mkdir -p "$TLS_DIR"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=llmgate bench CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$TLS_DIR/mock.key" -out "$TLS_DIR/mock.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
  > "$TLS_DIR/mock.ext"
openssl x509 -req -in "$TLS_DIR/mock.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
  -CAcreateserial -days 2 -extfile "$TLS_DIR/mock.ext" -out "$TLS_DIR/mock.pem" 2>/dev/null
export MOCKTLS_PORT PTTLS_PORT GWTLS_PORT
MOCKTLS_PORT="$(free_port)"
target/dist/llmgate-mock --port "$MOCKTLS_PORT" --threads "$CORES" \
  --tls-cert "$TLS_DIR/mock.pem" --tls-key "$TLS_DIR/mock.key" >"$LOGS/mock-tls.log" 2>&1 &
PIDS+=($!)
CURL_CA="$TLS_DIR/ca.pem" wait_ready "https://localhost:$MOCKTLS_PORT/health" 10 mock-tls

PT_PORT="$(free_port)"
target/dist/examples/passthrough_proxy --listen "127.0.0.1:$PT_PORT" \
  --upstream "http://127.0.0.1:$MOCK_PORT" --threads "$CORES" >"$LOGS/passthrough.log" 2>&1 &
PT_PID=$!; PIDS+=($PT_PID)
wait_ready "http://127.0.0.1:$PT_PORT/health" 10 passthrough
# T1's floor: the same pass-through, TLS + HTTP/2 to the TLS mock.
PTTLS_PORT="$(free_port)"
SSL_CERT_FILE="$TLS_DIR/ca.pem" target/dist/examples/passthrough_proxy \
  --listen "127.0.0.1:$PTTLS_PORT" --upstream "https://localhost:$MOCKTLS_PORT" \
  --threads "$CORES" >"$LOGS/passthrough-tls.log" 2>&1 &
PTTLS_PID=$!; PIDS+=($PTTLS_PID)
wait_ready "http://127.0.0.1:$PTTLS_PORT/health" 10 passthrough-tls

# start_gateway NAME VAR [NAME=VALUE]: starts llmgate on benches/load/NAME.yaml (rendered), on a
# free port, with one more environment variable if given; sets VAR_PORT and VAR_PID.
start_gateway() {
  local name="$1" var="$2" port pid
  render "$name.yaml"
  port="$(free_port)"
  env RUST_LOG=warn ${3:+"$3"} target/dist/llmgate --config "$OUT_DIR/$name.yaml" --host 127.0.0.1 \
    --port "$port" --num_workers "$CORES" >"$LOGS/$name.log" 2>&1 &
  pid=$!; PIDS+=($pid)
  wait_ready "http://127.0.0.1:$port/health/liveliness" 10 "$name"
  printf -v "${var}_PORT" '%s' "$port"
  printf -v "${var}_PID" '%s' "$pid"
  export "${var}_PORT" "${var}_PID"
}

start_gateway llmgate GW
rm -f "$OUT_DIR"/llmgate.db "$OUT_DIR"/llmgate.db-*   # a fresh spend log per run
start_gateway llmgate-full GWFULL
# G1 calls with a virtual key (rpm / tpm limits and a budget, so every check runs), made with
# the master key through the management API.
GWFULL_KEY="$(curl -fsS -X POST "http://127.0.0.1:$GWFULL_PORT/key/generate" \
  -H 'authorization: Bearer sk-bench-master' -H 'content-type: application/json' \
  -d '{"key_alias":"bench","models":["bench"],"rpm_limit":100000000,"tpm_limit":100000000000,"max_budget":1000000}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
export PT_PID GWFULL_KEY
# R1 (reliability settings on) and C1 (cache hits): one more gateway each.
start_gateway llmgate-reliable GWREL
start_gateway llmgate-cache GWCACHE
# T1: llmgate over TLS + HTTP/2, trusting the throw-away CA through SSL_CERT_FILE.
start_gateway llmgate-tls GWTLS "SSL_CERT_FILE=$TLS_DIR/ca.pem"
export PTTLS_PID

LITELLM_V="not run"
if [ "$WITH_LITELLM" = 1 ]; then
  render litellm.yaml
  export LITELLM_PORT LITELLM_PID
  LITELLM_PORT="$(free_port)"
  LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
    "$VENV/bin/litellm" --config "$OUT_DIR/litellm.yaml" --host 127.0.0.1 \
    --port "$LITELLM_PORT" --num_workers "$CORES" >"$LOGS/litellm.log" 2>&1 &
  LITELLM_PID=$!; PIDS+=($LITELLM_PID)
  wait_ready "http://127.0.0.1:$LITELLM_PORT/health/liveliness" 180 litellm
  LITELLM_V="LiteLLM $LITELLM_VERSION ($CORES workers)"
fi

CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//' || echo unknown)"
BENCH_META="$(python3 -c 'import json,sys; print(json.dumps(dict(zip(["machine","versions","command"], sys.argv[1:]))))' \
  "$CORES cores ($CPU_MODEL), Linux $(uname -r)" \
  "llmgate $(git describe --always --dirty 2>/dev/null || echo unknown), $(rustc -V | cut -d' ' -f1-2), $("$OHA" --version), $LITELLM_V" \
  "$COMMAND")"
export BENCH_META

echo "==== run ===="
python3 "$HERE/driver.py"

if [ "$UPDATE_DOCS" = 1 ]; then
  python3 - "$OUT_DIR/latest.md" docs/benchmarks.md <<'EOF'
import sys
table = open(sys.argv[1]).read().strip()
doc = open(sys.argv[2]).read()
start, end = "<!-- load:start -->", "<!-- load:end -->"
head, rest = doc.split(start, 1)
_, tail = rest.split(end, 1)
open(sys.argv[2], "w").write(head + start + "\n" + table + "\n" + end + tail)
print(f"updated {sys.argv[2]}")
EOF
fi
