#!/usr/bin/env python3
"""Measures what hostile clients cost a running llmgate binary (docs/reliability.md, "Hostile
clients"). Loopback only, bounded loops. Usage:

    python3 scripts/hostile-clients.py target/debug/llmgate [fault ...]

Faults: silent, fdlimit, slowbody, unauth, authbodies, retries, timeout, sse. Prints one line per fault.
"""

import http.server
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HITS = {"fail": 0}


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(n) or b"{}")
        model = body.get("model", "")
        if model == "fail":
            HITS["fail"] += 1
            self.reply(500, {"error": {"message": "boom", "type": "server_error"}})
        elif model == "slow":
            time.sleep(12)
            self.reply(200, answer())
        elif model == "huge":
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            mib = b"x" * (1 << 20)
            try:
                self.chunk(b"data: ")
                for _ in range(300):
                    self.chunk(mib)
                self.chunk(b"\n\n")
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
        else:
            self.reply(200, answer())

    def chunk(self, b):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def answer():
    return {
        "id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_gateway(binary, upstream, extra=""):
    models = "".join(
        f"  - model_name: {m}\n    litellm_params:\n      model: openai/{m}\n"
        f"      api_base: {upstream}/v1\n      api_key: sk-up\n{t}"
        for m, t in [("ok", ""), ("fail", ""), ("slow", "      timeout: 3\n"), ("huge", "")]
    )
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    cfg.write(f"model_list:\n{models}router_settings:\n  num_retries: 2\n  allowed_fails: 1000\n{extra}")
    cfg.close()
    port = free_port()
    env = dict(os.environ, RUST_LOG="warn")
    env.pop("LITELLM_MASTER_KEY", None)
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen([binary, "--config", cfg.name, "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, port


def rss_kib(pid, field="VmRSS"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def post(port, body, headers=None, timeout=30):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions",
                                 data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def closed(sock):
    """Whether the server closed `sock` (an answer it sent before closing is read and skipped)."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def silent(binary, up):
    proc, port = start_gateway(binary, up)
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(2000)]
    time.sleep(35)
    n = sum(closed(s) for s in socks)
    print(f"silent: 2000 silent connections, closed by the server after 35 s: {n}; "
          f"RSS {rss_kib(proc.pid) // 1024} MiB")
    [s.close() for s in socks]
    proc.kill()


def fdlimit(binary, up):
    proc, port = start_gateway(binary, up, "general_settings:\n  request_header_timeout: 1\n" if "new" in sys.argv else "")
    subprocess.run(["prlimit", "--pid", str(proc.pid), "--nofile=128:128"], check=True)
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
    t0 = time.time()
    results = []

    def one():
        try:
            results.append(post(port, {"model": "ok", "messages": [{"role": "user", "content": "hi"}]}, timeout=15)[0])
        except Exception as e:  # noqa: BLE001
            results.append(type(e).__name__)
    ts = [threading.Thread(target=one) for _ in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    cpu = sum(int(x) for x in open(f"/proc/{proc.pid}/stat").read().split()[13:15]) / os.sysconf("SC_CLK_TCK")
    print(f"fdlimit: nofile 128, 300 silent connections, 4 normal requests: {results} in {time.time() - t0:.1f} s; "
          f"process CPU {cpu:.2f} s")
    [s.close() for s in socks]
    proc.kill()


def slowbody(binary, up):
    proc, port = start_gateway(binary, up)
    socks = []
    for _ in range(1000):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"content-length: 1000\r\n\r\n{\"model\":")
        socks.append(s)
    time.sleep(65)
    n = sum(closed(s) for s in socks)
    print(f"slowbody: 1000 bodies stalled after 9 of 1000 bytes, closed after 65 s: {n}")
    [s.close() for s in socks]
    proc.kill()


def unauth(binary, up):
    proc, port = start_gateway(binary, up, "general_settings:\n  master_key: sk-master-1234\n")
    base = rss_kib(proc.pid)
    body = b"{\"model\": \"ok\", \"messages\": [{\"role\": \"user\", \"content\": \"" + b"a" * (31 << 20) + b"\"}]}"

    def one():
        try:
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                      b"content-length: %d\r\n\r\n" % len(body))
            s.sendall(body)
            s.recv(4096)
            s.close()
        except OSError:
            pass
    ts = [threading.Thread(target=one) for _ in range(24)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    print(f"unauth: 24 concurrent 31 MiB bodies without a key: RSS {base // 1024} MiB -> peak "
          f"{rss_kib(proc.pid, 'VmHWM') // 1024} MiB, after {rss_kib(proc.pid) // 1024} MiB")
    proc.kill()


def authbodies(binary, up):
    proc, port = start_gateway(binary, up, "general_settings:\n  master_key: sk-master-1234\n")
    base = rss_kib(proc.pid)
    text = "a" * (31 << 20)

    def one():
        try:
            post(port, {"model": "ok", "messages": [{"role": "user", "content": text}]},
                 headers={"authorization": "Bearer sk-master-1234"}, timeout=120)
        except Exception:  # noqa: BLE001
            pass
    ts = [threading.Thread(target=one) for _ in range(16)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    time.sleep(3)
    after3 = rss_kib(proc.pid)
    time.sleep(3)
    print(f"authbodies: 16 concurrent authorised 31 MiB bodies: RSS {base // 1024} MiB -> peak "
          f"{rss_kib(proc.pid, 'VmHWM') // 1024} MiB, 3 s after {after3 // 1024} MiB, "
          f"6 s after {rss_kib(proc.pid) // 1024} MiB")
    proc.kill()


def retries(binary, up):
    proc, port = start_gateway(binary, up)
    HITS["fail"] = 0
    status, _ = post(port, {"model": "fail", "messages": [{"role": "user", "content": "hi"}], "num_retries": 30}, timeout=300)
    print(f"retries: num_retries 30 against a configured 2: {status}, {HITS['fail']} upstream calls")
    proc.kill()


def timeout(binary, up):
    proc, port = start_gateway(binary, up)
    t0 = time.time()
    status, _ = post(port, {"model": "slow", "messages": [{"role": "user", "content": "hi"}]},
                     headers={"x-litellm-timeout": "12"}, timeout=60)
    print(f"timeout: x-litellm-timeout 12 against a configured 3 s: {status} after {time.time() - t0:.1f} s")
    proc.kill()


def sse(binary, up):
    proc, port = start_gateway(binary, up)
    base = rss_kib(proc.pid)
    t0 = time.time()
    status, body = post(port, {"model": "huge", "stream": True, "messages": [{"role": "user", "content": "hi"}]}, timeout=300)
    print(f"sse: one 300 MiB SSE line: {status}, {len(body)} bytes to the client in {time.time() - t0:.1f} s; "
          f"RSS {base // 1024} MiB -> peak {rss_kib(proc.pid, 'VmHWM') // 1024} MiB, after {rss_kib(proc.pid) // 1024} MiB")
    proc.kill()


def main():
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    binary = sys.argv[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    up = f"http://127.0.0.1:{server.server_address[1]}"
    faults = [a for a in sys.argv[2:] if a != "new"] or ["retries", "timeout", "sse", "unauth", "authbodies", "fdlimit", "silent", "slowbody"]
    for f in faults:
        globals()[f](binary, up)
    server.shutdown()


if __name__ == "__main__":
    main()
