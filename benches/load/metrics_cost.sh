#!/usr/bin/env bash
# The cost of Prometheus metrics on the full stack (scenario G1, docs/benchmarks.md): two llmgate
# processes on benches/load/llmgate-full.yaml, one of them with `callbacks: ["prometheus"]`
# added, called with a virtual key each, interleaved in the same run (ROUNDS rounds of
# c64 and c1, DURATION seconds each), against the same mock upstream. Reports req/s and CPU per
# request of each and the ratio metrics/plain. /metrics is scraped once a second during the
# metrics runs, as a Prometheus server would.
#
#   bash benches/load/metrics_cost.sh            # PROFILE=dist (default) or release
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PROFILE="${PROFILE:-dist}"
DURATION="${DURATION:-5}"
ROUNDS="${ROUNDS:-3}"
OUT="${OUT_DIR:-$ROOT/target/bench}/metrics-cost"
mkdir -p "$OUT"
CORES="$(nproc)"
env -u OUT_DIR cargo build --profile "$PROFILE" --bin llmgate --bin llmgate-mock
BIN="target/$PROFILE"
OHA="${OHA:-$(command -v oha || echo "$ROOT/target/tools/bin/oha")}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
wait_ready() { for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "not ready: $1" >&2; exit 1; }

MOCK_PORT="$(free_port)"
"$BIN/llmgate-mock" --port "$MOCK_PORT" --threads "$CORES" >"$OUT/mock.log" 2>&1 & PIDS+=($!)
wait_ready "http://127.0.0.1:$MOCK_PORT/health"

start() { # name extra-yaml -> sets PORT_<name> PID_<name> KEY_<name>
  local name="$1" port
  sed -e "s/MOCK_PORT/$MOCK_PORT/g" benches/load/llmgate-full.yaml > "$OUT/$name.yaml"
  printf '%s' "$2" >> "$OUT/$name.yaml"
  rm -f "$OUT/$name.db"*
  port="$(free_port)"
  (cd "$OUT" && RUST_LOG=warn exec "$ROOT/$BIN/llmgate" --config "$OUT/$name.yaml" --host 127.0.0.1 \
    --port "$port" --num_workers "$CORES") >"$OUT/$name.log" 2>&1 & PIDS+=($!)
  printf -v "PID_$name" '%s' "$!"
  wait_ready "http://127.0.0.1:$port/health/liveliness"
  printf -v "PORT_$name" '%s' "$port"
  printf -v "KEY_$name" '%s' "$(curl -fsS -X POST "http://127.0.0.1:$port/key/generate" \
    -H 'authorization: Bearer sk-bench-master' -H 'content-type: application/json' \
    -d '{"key_alias":"bench","models":["bench"],"rpm_limit":100000000,"tpm_limit":100000000000,"max_budget":1000000}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
}
start plain ""
start metrics $'litellm_settings:\n  callbacks: ["prometheus"]\n'

export OHA DURATION ROUNDS OUT PORT_plain PID_plain KEY_plain PORT_metrics PID_metrics KEY_metrics
python3 - <<'PY'
import json, os, subprocess, statistics, threading, time, urllib.request
E = os.environ
CLK = os.sysconf("SC_CLK_TCK")
BODY = '{"model":"bench","messages":[{"role":"user","content":"Say hello."}],"max_tokens":32}'

def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    x = s[s.rindex(")") + 2:].split()
    return (int(x[11]) + int(x[12])) / CLK

def scrape(port, stop):
    while not stop.is_set():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
        except Exception:
            pass
        stop.wait(1.0)

def run(name, conc):
    port, pid, key = E["PORT_" + name], int(E["PID_" + name]), E["KEY_" + name]
    stop = threading.Event()
    th = threading.Thread(target=scrape, args=(port, stop), daemon=True)
    if name == "metrics":
        th.start()
    c0 = cpu(pid)
    out = subprocess.run([E["OHA"], "-c", str(conc), "-z", f"{E['DURATION']}s", "--no-tui",
                          "--output-format", "json", "-m", "POST", "-H", "content-type: application/json",
                          "-H", f"authorization: Bearer {key}", "-d", BODY,
                          f"http://127.0.0.1:{port}/v1/chat/completions"], capture_output=True, text=True)
    c1 = cpu(pid)
    stop.set()
    d = json.loads(out.stdout)
    codes = d.get("statusCodeDistribution") or {}
    ok = sum(n for c, n in codes.items() if c.startswith("2"))
    bad = sum(n for c, n in codes.items() if not c.startswith("2"))
    return {"rps": ok / d["summary"]["total"], "cpu_us": (c1 - c0) / max(ok + bad, 1) * 1e6, "errors": bad}

res = {}
for r in range(int(E["ROUNDS"])):
    for conc in (64, 1):
        for name in (("plain", "metrics") if r % 2 == 0 else ("metrics", "plain")):
            x = run(name, conc)
            res.setdefault((name, conc), []).append(x)
            print(f"round {r+1} c{conc} {name}: {x['rps']:.0f} req/s, {x['cpu_us']:.1f} µs CPU/req, {x['errors']} errors", flush=True)
lines = ["| G1 | without metrics | with metrics | ratio |", "| --- | --- | --- | --- |"]
for conc in (64, 1):
    p = statistics.median(x["rps"] for x in res[("plain", conc)])
    m = statistics.median(x["rps"] for x in res[("metrics", conc)])
    pc = statistics.median(x["cpu_us"] for x in res[("plain", conc)])
    mc = statistics.median(x["cpu_us"] for x in res[("metrics", conc)])
    lines.append(f"| c{conc} req/s (median of {E['ROUNDS']}) | {p:,.0f} | {m:,.0f} | {m/p:.3f} × |")
    lines.append(f"| c{conc} CPU µs/req | {pc:.1f} | {mc:.1f} | {mc-pc:+.1f} µs |")
table = "\n".join(lines)
print(table)
open(os.path.join(E["OUT"], "latest.md"), "w").write(table + "\n")
PY
echo "series in the metrics gateway: $(curl -fsS "http://127.0.0.1:$PORT_metrics/metrics" | grep -c '^litellm_proxy_total_requests_metric_total')"
