#!/usr/bin/env python3
"""Load benchmark driver: runs every scenario against every target, interleaved, and reports.

Started by run.sh, which builds and starts the processes and passes their ports and pids in the
environment (see run.sh). Load comes from oha (L1, L2, L3, G1, R1, C1, T1) and from the stream_client example
(S1: oha cannot time individual SSE events). CPU time is read from /proc/<pid>/stat (utime + stime
of the target's process tree), peak RSS from VmHWM (reset before each run through clear_refs).
"""

import datetime
import json
import os
import statistics
import subprocess
import sys
import time

ENV = os.environ
OHA = ENV["OHA"]
STREAM_CLIENT = ENV["STREAM_CLIENT"]
DURATION = float(ENV.get("DURATION", "5"))
ROUNDS = int(ENV.get("ROUNDS", "1"))
# S1 at concurrency 1 runs 4 streams a second (50 chunks 5 ms apart): a DURATION-long run would
# give its TTFT p99 from about 20 streams, i.e. their maximum. Longer, so the p99 means something.
S1_C1_DURATION = float(ENV.get("S1_C1_DURATION", "30"))
OUT_DIR = ENV["OUT_DIR"]
SCENARIOS = ENV.get("SCENARIOS", "L1,L2,L3,S1,G1,R1,C1,T1,M1,P1").split(",")
L3_RATES = [int(r) for r in ENV.get("L3_RATES", "250,500,1000,2000,4000,6000,8000,12000,16000").split(",")]
CLK = os.sysconf("SC_CLK_TCK")
BODY = '{"model":"%s","messages":[{"role":"user","content":"Say hello."}],"max_tokens":32}'
PREFIX = {"instant": "", "slow": "/mock/latency_ms=20", "stream": "/mock/chunks=50,chunk_delay_ms=5,stamp=1",
          "messages": ""}
MODEL = {"instant": "bench", "slow": "bench-slow", "stream": "bench-stream", "messages": "bench-anthropic",
         "responses": "bench"}
# M1: Anthropic's Messages API, relayed to an `anthropic/` deployment (the same-protocol relay of
# issue 20), beside the chat relay of L2 in the same run.
MESSAGES_BODY = '{"model":"%s","max_tokens":32,"messages":[{"role":"user","content":"Say hello."}]}'
MESSAGES_HEADERS = [("anthropic-version", "2023-06-01")]
# P1: OpenAI's Responses API, relayed to an `openai/` deployment (the mock answers
# `/v1/responses`), beside the chat relay of L2 and the Messages relay of M1.
RESPONSES_BODY = '{"model":"%s","input":"Say hello.","max_output_tokens":32}'


def target(name, port, pid, kind, headers=()):
    return {"name": name, "port": int(port), "pid": int(pid) if pid else None, "kind": kind,
            "headers": list(headers)}


TARGETS = [target("direct", ENV["MOCK_PORT"], None, "raw")]
if ENV.get("PT_PORT"):
    TARGETS.append(target("passthrough", ENV["PT_PORT"], ENV["PT_PID"], "raw"))
if ENV.get("GW_PORT"):
    TARGETS.append(target("llmgate", ENV["GW_PORT"], ENV["GW_PID"], "gateway"))
if ENV.get("LITELLM_PORT"):
    TARGETS.append(target("litellm", ENV["LITELLM_PORT"], ENV["LITELLM_PID"], "gateway"))
FULL = None
if ENV.get("GWFULL_PORT"):
    FULL = target("llmgate-full", ENV["GWFULL_PORT"], ENV["GWFULL_PID"], "gateway",
                  [("authorization", "Bearer " + ENV.get("GWFULL_KEY", "sk-bench-master"))])

# Scenarios that run one more llmgate configuration against the baselines, as L1/L2 do:
# id -> (target, names of the baseline targets run beside it).
EXTRA = {}
if FULL:
    EXTRA["G1"] = (FULL, ("direct", "passthrough"))
if ENV.get("GWREL_PORT"):
    EXTRA["R1"] = (target("llmgate-reliable", ENV["GWREL_PORT"], ENV["GWREL_PID"], "gateway"),
                   ("direct", "passthrough", "llmgate"))
if ENV.get("GWCACHE_PORT"):
    EXTRA["C1"] = (target("llmgate-cache", ENV["GWCACHE_PORT"], ENV["GWCACHE_PID"], "gateway"),
                   ("direct", "passthrough", "llmgate"))

# T1: the same pass-through and llmgate with a TLS + HTTP/2 upstream (the TLS mock), run beside
# their plain-HTTP selves; the report gives llmgate / pass-through for both.
TLS = []
if ENV.get("PTTLS_PORT"):
    TLS.append(target("passthrough-tls", ENV["PTTLS_PORT"], ENV.get("PTTLS_PID"), "raw"))
if ENV.get("GWTLS_PORT"):
    TLS.append(target("llmgate-tls", ENV["GWTLS_PORT"], ENV.get("GWTLS_PID"), "gateway"))


def url_and_model(t, variant):
    if variant == "messages":
        model = "bench" if t["kind"] == "raw" else MODEL[variant]
        return f"http://127.0.0.1:{t['port']}/v1/messages", model
    if variant == "responses":
        return f"http://127.0.0.1:{t['port']}/v1/responses", MODEL[variant]
    if t["kind"] == "raw":
        return f"http://127.0.0.1:{t['port']}{PREFIX[variant]}/v1/chat/completions", "bench"
    return f"http://127.0.0.1:{t['port']}/v1/chat/completions", MODEL[variant]


# ---------------------------------------------------------------- /proc accounting

def proc_tree(pid):
    """pid and every descendant."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, i = [pid], 0
    while i < len(out):
        out += children.get(out[i], [])
        i += 1
    return out


def cpu_seconds(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK


def hwm_mb(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def reset_hwm(pids):
    for p in pids:
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


class Meter:
    """CPU seconds and peak RSS of a target's process tree over one run."""

    def __init__(self, t):
        self.pids = proc_tree(t["pid"]) if t["pid"] else []
        reset_hwm(self.pids)
        self.cpu0 = cpu_seconds(self.pids)

    def done(self, requests):
        if not self.pids:
            return {"cpu_us_per_req": None, "peak_rss_mb": None}
        cpu = cpu_seconds(self.pids) - self.cpu0
        return {"cpu_us_per_req": round(cpu * 1e6 / requests, 1) if requests else None,
                "cpu_s": round(cpu, 3), "peak_rss_mb": round(hwm_mb(self.pids), 1)}


# ---------------------------------------------------------------- load generators

def oha(t, variant, conc, duration, rate=None):
    url, model = url_and_model(t, variant)
    body = {"messages": MESSAGES_BODY, "responses": RESPONSES_BODY}.get(variant, BODY) % model
    cmd = [OHA, "-c", str(conc), "-z", f"{duration}s", "--no-tui", "--output-format", "json",
           "-m", "POST", "-H", "content-type: application/json", "-d", body]
    headers = list(t["headers"]) + (MESSAGES_HEADERS if variant == "messages" else [])
    for k, v in headers:
        cmd += ["-H", f"{k}: {v}"]
    if rate:
        cmd += ["-q", str(rate), "--latency-correction"]
    cmd.append(url)
    meter = Meter(t)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        d = json.loads(out.stdout)
    except json.JSONDecodeError:
        print(f"  oha failed for {t['name']}: {out.stderr[-500:]}", file=sys.stderr)
        return {"rps": 0, "errors": -1, "requests": 0}
    codes = d.get("statusCodeDistribution") or {}
    ok = sum(n for c, n in codes.items() if c.startswith("2"))
    errs = sum(n for c, n in codes.items() if not c.startswith("2"))
    errs += sum(n for e, n in (d.get("errorDistribution") or {}).items()
                if "deadline" not in e)
    lat = d.get("latencyPercentiles") or {}
    us = lambda k: round((lat.get(k) or 0) * 1e6, 1)
    secs = d["summary"]["total"] or duration
    res = {"requests": ok + errs, "ok": ok, "errors": errs,
           "error_rate": round(errs / max(ok + errs, 1), 5),
           "rps": round(ok / secs, 1),
           "p50_us": us("p50"), "p99_us": us("p99"), "p999_us": us("p99.9")}
    res.update(meter.done(ok + errs))
    return res


def streams(t, conc, duration):
    url, model = url_and_model(t, "stream")
    cmd = [STREAM_CLIENT, "--url", url, "--model", model, "--concurrency", str(conc),
           "--duration", str(duration), "--threads", "1"]
    for k, v in t["headers"]:
        cmd += ["--header", f"{k}: {v}"]
    meter = Meter(t)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        d = json.loads(out.stdout)
    except json.JSONDecodeError:
        print(f"  stream_client failed for {t['name']}: {out.stderr[-500:]}", file=sys.stderr)
        return {"streams_ok": 0, "streams_failed": -1}
    res = {"streams_ok": d["streams_ok"], "streams_failed": d["streams_failed"],
           "stalls": d["stalls"], "rps": round(d["streams_per_s"], 1),
           "ttft_p50_us": d["ttft_us"]["p50"], "ttft_p99_us": d["ttft_us"]["p99"],
           "ttft_p999_us": d["ttft_us"]["p999"], "gap_p50_us": d["gap_us"]["p50"],
           "gap_p99_us": d["gap_us"]["p99"], "gap_p999_us": d["gap_us"]["p999"]}
    # Per-chunk trip from the mock's send stamp, and its change between consecutive chunks;
    # absent when the target drops the stamp field from the chunks.
    for key in ("delay", "jitter"):
        q = d.get(f"{key}_us") or {}
        if q.get("n"):
            res.update({f"{key}_p50_us": q["p50"], f"{key}_p99_us": q["p99"],
                        f"{key}_p999_us": q["p999"]})
    res.update(meter.done(d["streams_ok"] + d["streams_failed"]))
    return res


# ---------------------------------------------------------------- scenarios

RUNS = []  # every measurement: {round, scenario, target, ...}


def record(rnd, scenario, t, res, **extra):
    row = {"round": rnd, "scenario": scenario, "target": t["name"], **extra, **res}
    RUNS.append(row)
    show = {k: row[k] for k in row if k in ("rps", "p50_us", "p99_us", "errors", "cpu_us_per_req",
                                             "peak_rss_mb", "ttft_p99_us", "gap_p99_us",
                                             "delay_p99_us", "jitter_p99_us", "stalls")}
    print(f"  [{scenario}] {t['name']:<13} {json.dumps(show)}", flush=True)


def order(rnd, ts):
    k = rnd % len(ts)
    return ts[k:] + ts[:k]


def run_round(rnd):
    ts = order(rnd, TARGETS)
    if "L1" in SCENARIOS:
        for t in ts:
            record(rnd, "L1", t, oha(t, "instant", 1, DURATION))
    if "L2" in SCENARIOS:
        for conc in (64, 256):
            for t in ts:
                record(rnd, f"L2 c{conc}", t, oha(t, "instant", conc, DURATION))
    if "L3" in SCENARIOS:
        alive = list(ts)
        for rate in L3_RATES:
            for t in list(alive):
                res = oha(t, "slow", 1000, DURATION, rate=rate)
                held = (res.get("p99_us", 1e9) < 1e6 and res.get("error_rate", 1) < 0.001
                        and res.get("rps", 0) >= 0.95 * rate)
                record(rnd, "L3", t, res, rate=rate, held=held)
                if not held:
                    alive.remove(t)
            if not alive:
                break
    if "S1" in SCENARIOS:
        for conc in (1, 128, 256):
            for t in ts:
                secs = S1_C1_DURATION if conc == 1 else DURATION
                record(rnd, f"S1 c{conc}", t, streams(t, conc, secs))
    if "T1" in SCENARIOS and TLS:
        g = [t for t in ts if t["name"] in ("direct", "passthrough", "llmgate")] + TLS
        for conc in (64, 1):
            for t in order(rnd, g):
                record(rnd, f"T1 c{conc}", t, oha(t, "instant", conc, DURATION))
    if "M1" in SCENARIOS:
        g = [t for t in ts if t["name"] in ("direct", "passthrough", "llmgate")]
        for conc in (64, 1):
            for t in order(rnd, g):
                record(rnd, f"M1 c{conc}", t, oha(t, "messages", conc, DURATION))
    if "P1" in SCENARIOS:
        g = [t for t in ts if t["name"] in ("direct", "passthrough", "llmgate")]
        for conc in (64, 1):
            for t in order(rnd, g):
                record(rnd, f"P1 c{conc}", t, oha(t, "responses", conc, DURATION))
    for sid, (extra, baselines) in EXTRA.items():
        if sid not in SCENARIOS:
            continue
        g = [t for t in ts if t["name"] in baselines] + [extra]
        for t in order(rnd, g):
            record(rnd, f"{sid} c64", t, oha(t, "instant", 64, DURATION))
        for t in order(rnd, g):
            record(rnd, f"{sid} c1", t, oha(t, "instant", 1, DURATION))


def warm_up():
    tls = TLS if "T1" in SCENARIOS else []
    for t in TARGETS + [extra for extra, _ in EXTRA.values()] + tls:
        oha(t, "instant", 16, 1)
        if "S1" in SCENARIOS:
            streams(t, 4, 1)


# ---------------------------------------------------------------- report

def median_rows():
    """One row per (scenario, target[, rate]): the median of each number over the rounds."""
    groups = {}
    for r in RUNS:
        groups.setdefault((r["scenario"], r["target"], r.get("rate")), []).append(r)
    rows = []
    for (scenario, tgt, rate), rs in groups.items():
        row = {"scenario": scenario, "target": tgt, "rounds": len(rs)}
        if rate is not None:
            row["rate"] = rate
            row["held"] = all(r.get("held") for r in rs)
        for k in rs[0]:
            vals = [r[k] for r in rs if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)]
            if k not in ("round", "rate") and vals:
                row[k] = round(statistics.median(vals), 1)
        rows.append(row)
    return rows


def add_overhead(rows):
    by = {(r["scenario"], r["target"], r.get("rate")): r for r in rows}
    for r in rows:
        d = by.get((r["scenario"], "direct", r.get("rate")))
        if not d or r["target"] == "direct":
            continue
        for k in ("p50_us", "p99_us", "p999_us", "ttft_p50_us", "ttft_p99_us", "gap_p99_us",
                  "delay_p50_us", "delay_p99_us", "jitter_p99_us"):
            if k in r and k in d:
                r["added_" + k] = round(r[k] - d[k], 1)


def fmt(v, unit=""):
    if v is None:
        return "–"
    if isinstance(v, float) and v >= 100:
        v = round(v)
    return f"{v}{unit}"


def markdown(rows, meta):
    lines = [f"Run of {meta['date']} on {meta['machine']}; {meta['versions']}.", "",
             f"Command: `{meta['command']}` (duration {DURATION:g} s per run, S1 c1 "
             f"{S1_C1_DURATION:g} s, {ROUNDS} round(s), medians over rounds; latencies in µs).", ""]
    scen = []
    for r in rows:
        if r["scenario"] not in scen:
            scen.append(r["scenario"])
    for s in scen:
        rs = [r for r in rows if r["scenario"] == s]
        lines.append(f"### {s}")
        lines.append("")
        if s.startswith("S1"):
            lines.append("| target | streams/s | TTFT p50 | TTFT p99 | added TTFT p99 | gap p99 | "
                         "added gap p99 | chunk delay p99 | added delay p99 | jitter p99 | "
                         "added jitter p99 | stalls | failed | CPU µs/stream | peak RSS MB |")
            lines.append("|---|" + "---:|" * 14)
            for r in rs:
                lines.append("| " + " | ".join([r["target"], fmt(r.get("rps")), fmt(r.get("ttft_p50_us")),
                             fmt(r.get("ttft_p99_us")), fmt(r.get("added_ttft_p99_us")),
                             fmt(r.get("gap_p99_us")), fmt(r.get("added_gap_p99_us")),
                             fmt(r.get("delay_p99_us")), fmt(r.get("added_delay_p99_us")),
                             fmt(r.get("jitter_p99_us")), fmt(r.get("added_jitter_p99_us")),
                             fmt(r.get("stalls")),
                             fmt(r.get("streams_failed")), fmt(r.get("cpu_us_per_req")),
                             fmt(r.get("peak_rss_mb"))]) + " |")
        elif s == "L3":
            lines.append("| target | highest rate held (req/s) | p50 | p99 | p99.9 | errors | CPU µs/req | "
                         "peak RSS MB | first rate not held |")
            lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            for tgt in [t["name"] for t in TARGETS]:
                mine = sorted([r for r in rs if r["target"] == tgt], key=lambda r: r["rate"])
                held = [r for r in mine if r.get("held")]
                best = held[-1] if held else None
                failed = next((r for r in mine if not r.get("held")), None)
                fail_txt = (f"{failed['rate']} (got {fmt(failed.get('rps'))}/s, p99 "
                            f"{fmt(failed.get('p99_us'))})") if failed else "–"
                if best:
                    lines.append("| " + " | ".join([tgt, str(best["rate"]), fmt(best.get("p50_us")),
                                 fmt(best.get("p99_us")), fmt(best.get("p999_us")), fmt(best.get("errors")),
                                 fmt(best.get("cpu_us_per_req")), fmt(best.get("peak_rss_mb")),
                                 fail_txt]) + " |")
                else:
                    lines.append(f"| {tgt} | none | – | – | – | – | – | – | {fail_txt} |")
        else:
            lines.append("| target | req/s | p50 | p99 | p99.9 | added p50 | added p99 | errors | "
                         "CPU µs/req | peak RSS MB |")
            lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for r in rs:
                lines.append("| " + " | ".join([r["target"], fmt(r.get("rps")), fmt(r.get("p50_us")),
                             fmt(r.get("p99_us")), fmt(r.get("p999_us")), fmt(r.get("added_p50_us")),
                             fmt(r.get("added_p99_us")), fmt(r.get("errors")),
                             fmt(r.get("cpu_us_per_req")), fmt(r.get("peak_rss_mb"))]) + " |")
        if s.startswith("T1"):
            lines.append("")
            lines.append(tls_ratio(rs))
        lines.append("")
    return "\n".join(lines)


def tls_ratio(rs):
    """T1's summary line: llmgate against the pass-through, over plain HTTP and over TLS + h2."""
    by = {r["target"]: r for r in rs}

    def ratio(gw, pt, key):
        a, b = by.get(gw, {}).get(key), by.get(pt, {}).get(key)
        return f"{a / b:.2f}" if a and b else "–"

    return ("llmgate / pass-through: req/s " + ratio("llmgate", "passthrough", "rps")
            + " plain HTTP, " + ratio("llmgate-tls", "passthrough-tls", "rps")
            + " TLS + HTTP/2; CPU µs/req " + ratio("llmgate", "passthrough", "cpu_us_per_req")
            + " plain HTTP, " + ratio("llmgate-tls", "passthrough-tls", "cpu_us_per_req")
            + " TLS + HTTP/2.")


def main():
    meta = json.loads(ENV.get("BENCH_META", "{}"))
    meta["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"targets: {', '.join(t['name'] for t in TARGETS)}"
          + "".join(f", {extra['name']} ({sid})" for sid, (extra, _) in EXTRA.items())
          + "".join(f", {t['name']} (T1)" for t in TLS))
    warm_up()
    for rnd in range(ROUNDS):
        print(f"round {rnd + 1}/{ROUNDS}", flush=True)
        run_round(rnd)
    rows = median_rows()
    add_overhead(rows)
    md = markdown(rows, meta)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(OUT_DIR, exist_ok=True)
    doc = {"meta": meta, "duration_s": DURATION, "rounds": ROUNDS, "summary": rows, "runs": RUNS}
    for name in (f"results-{stamp}.json", "latest.json"):
        with open(os.path.join(OUT_DIR, name), "w") as f:
            json.dump(doc, f, indent=1)
    for name in (f"results-{stamp}.md", "latest.md"):
        with open(os.path.join(OUT_DIR, name), "w") as f:
            f.write(md + "\n")
    print()
    print(md)
    for line in md.splitlines():
        if line.startswith("llmgate / pass-through"):
            print(line)
    print(f"\nwrote {OUT_DIR}/latest.json and {OUT_DIR}/latest.md")


if __name__ == "__main__":
    main()
