#!/usr/bin/env python3
"""Sends bad input to a running llmgate and tallies the answers (docs/reliability.md, "Bad input").

Usage: bad_input_probe.py BASE_URL MASTER_KEY [MODEL]
  BASE_URL    e.g. http://127.0.0.1:4000 (a gateway with a database and that master key)
  MODEL       a model group the gateway serves (default: mock)

For each kind of fault it prints how many cases got the right answer (the status wanted, an
OpenAI error JSON body, and, for a 400, a `param` naming the field) and what the others got.
Standard library only.
"""

import json
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter

BASE, MASTER = sys.argv[1], sys.argv[2]
MODEL = sys.argv[3] if len(sys.argv) > 3 else "mock"
HOST, PORT = urllib.parse.urlsplit(BASE).hostname, urllib.parse.urlsplit(BASE).port

NUL = "a\u0000b"
LONG = "x" * 1_500_000


def request(method, path, body=None, raw=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("authorization", "Bearer " + MASTER)
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def verdict(status, body, want, param=None):
    try:
        err = json.loads(body)["error"]
        is_json = all(k in err for k in ("message", "type", "param", "code"))
    except Exception:  # not JSON, or not an error object
        err, is_json = None, False
    if status == want and is_json and (param is None or err.get("param") == param):
        return "ok"
    kind = "error JSON" if is_json else ("empty" if not body else "not error JSON")
    return f"{status} {kind}" + (f" param={err.get('param')!r}" if is_json and param else "")


def tally(name, results):
    c = Counter(results)
    ok = c.pop("ok", 0)
    rest = ", ".join(f"{n}x {k}" for k, n in c.most_common())
    print(f"{name}: {ok}/{len(results)} right" + (f"; others: {rest}" if rest else ""))


def main():
    status, body = request("POST", "/team/new", {"team_id": "probe-team"})
    status, body = request("POST", "/key/generate", {})
    key = json.loads(body)["key"]

    fields = [
        ("/key/generate", "key_alias", {}), ("/key/generate", "team_id", {}),
        ("/key/generate", "user_id", {}), ("/key/generate", "budget_duration", {}),
        ("/key/update", "key_alias", {"key": key}), ("/key/block", "key", {}),
        ("/key/regenerate", "key", {}), ("/team/new", "team_alias", {}),
        ("/team/update", "team_alias", {"team_id": "probe-team"}),
        ("/user/new", "user_id", {}), ("/user/new", "user_email", {}),
    ]
    lists = [("/key/generate", "models", {}), ("/key/delete", "keys", {}),
             ("/team/delete", "team_ids", {}), ("/user/new", "teams", {})]
    metas = [("/key/generate", "metadata", {}), ("/team/new", "metadata", {}),
             ("/user/new", "metadata", {})]
    for label, value in (("NUL byte", NUL), ("1.5 MB string", LONG)):
        res = []
        for path, f, base in fields:
            s, b = request("POST", path, {**base, f: value})
            res.append(verdict(s, b, 400, f))
        for path, f, base in lists:
            s, b = request("POST", path, {**base, f: ["ok", value]})
            res.append(verdict(s, b, 400, f))
        for path, f, base in metas:
            s, b = request("POST", path, {**base, f: {"k": value}})
            res.append(verdict(s, b, 400, f))
        tally(f"management body, {label} ({len(res)} fields)", res)

    wrong = [
        ("/key/generate", {"key_alias": 5}, "key_alias"), ("/key/generate", {"models": "g"}, "models"),
        ("/key/generate", {"tpm_limit": "x"}, "tpm_limit"), ("/key/generate", {"metadata": [1]}, "metadata"),
        ("/key/delete", {"keys": "sk-1"}, "keys"), ("/team/new", {"team_alias": []}, "team_alias"),
        ("/user/new", {"teams": "t"}, "teams"),
    ]
    tally("management body, wrong type", [verdict(*request("POST", p, b), 400, f) for p, b, f in wrong])

    res = []
    for path, base in (("/key/generate", {}), ("/key/update", {"key": key}), ("/team/new", {}),
                       ("/user/new", {})):
        s, b = request("POST", path, {**base, "budget_duration": "0s"})
        res.append(verdict(s, b, 400, "budget_duration"))
    tally("management, budget_duration 0s", res)

    queries = [
        ("/key/info?key=sk-a%00b", "key"), ("/team/info?team_id=%00", "team_id"),
        ("/user/info?user_id=u%00", "user_id"), ("/spend/logs?api_key=%00", "api_key"),
        ("/key/list?team_id=%00", "team_id"), ("/key/list?page=x", "page"),
        ("/key/list?size=1.5", "size"), ("/key/list?page=99999999999999999", "page"),
        ("/spend/logs?limit=ten", "limit"), ("/key/info?key=sk-" + "q" * 2000, "key"),
    ]
    tally("management query strings", [verdict(*request("GET", p), 400, f) for p, f in queries])
    tally("management, wrong method / body over limit", [
        verdict(*request("GET", "/key/generate"), 405),
        verdict(*request("POST", "/key/generate", {"metadata": {"k": "z" * (3 << 20)}}), 413),
        verdict(*request("POST", "/key/generate", raw=b'{"key_alias": '), 400),
    ])

    params = [
        ("num_retries", "x"), ("max_retries", -1), ("timeout", "30"), ("request_timeout", 0),
        ("stream_timeout", []), ("fallbacks", "other"), ("max_fallbacks", 1.5),
        ("disable_fallbacks", "true"), ("metadata", "m"), ("tags", "a"), ("mock_response", 42),
        ("caching", "false"), ("cache", "no-cache"), ("drop_params", 1),
    ]
    res = []
    for p, v in params:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], p: v}
        res.append(verdict(*request("POST", "/v1/chat/completions", body), 400, p))
    tally(f"chat, wrongly typed gateway control ({len(params)} params)", res)

    raw = [
        (b"GET /v1/models?q=" + b"a" * 70_000 + b" HTTP/1.1\r\nhost: x\r\n\r\n", 414),
        (b"GET /v1/models HTTP/1.1\r\nhost: x\r\n"
         + b"".join(b"x-h%d: v\r\n" % i for i in range(120)) + b"\r\n", 431),
        (b"GET /v1/models HTTP/1.1\r\nhost: x\r\nx-big: " + b"b" * 500_000 + b"\r\n\r\n", 431),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /v1/models HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n", 400),
    ]
    res = []
    for data, want in raw:
        s = socket.create_connection((HOST, PORT), timeout=10)
        try:
            s.sendall(data)
        except OSError:
            pass
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        s.close()
        head, _, body = out.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
        res.append(verdict(status, body, want))
    tally("HTTP framing errors hyper answers (414, 431, malformed)", res)


main()
