#!/usr/bin/env python3
"""Aggregate decode throughput of `airllm serve` with N concurrent greedy
requests: the sweep-sharing benchmark.

Starts the server on a free loopback port, then for each concurrency N sends
N greedy /v1/completions requests at once (distinct raw prompts, the same
max_tokens) and measures

    aggregate tok/s = completion tokens of all N / wall time of the round

plus, from GET /metrics, the forward passes (sweeps) the round took and the
tokens per sweep. Prints a markdown table with the speed-up over N = 1.

The bench model of make_bench_model.py has no tokenizer; the server needs
one, so the Llama-2 tokenizer of tests/fixtures/tokenizers/llama2 (32000
ids, the bench model's vocabulary) is copied next to it when it is missing.

With --speculation "ARGS" two servers run side by side, one with
--no-speculation and one with ARGS (e.g. "--lookup", or "--draft MODEL"),
and the rounds interleave over both, so their ratio is measured under the
same load; the table adds tokens per request-sweep (tokens/step: 1 without
speculation) and the acceptance rate from /metrics. --chat TEXT sends that
user message to /v1/chat/completions instead of distinct raw prompts.

Usage:
    tools/bench/make_bench_model.py /tmp/bench-model
    tools/bench/bench_server.py /tmp/bench-model --ram 0       # every layer streamed
    tools/bench/bench_server.py /tmp/bench-model --ram 64G     # every layer resident
Options: --compression C (default 4bit), --tokens N (per request, default
16), --concurrency 1,4,8,16, --rounds R (the median of R rounds, run
interleaved over the concurrencies; default 3), --binary
PATH (default build/airllm), --cache-dir DIR, --speculation "ARGS",
--chat TEXT.

    tools/bench/bench_server.py models/SmolLM2-135M-Instruct.Q4_1.gguf -c none --ram 0 \
        --concurrency 1,4 --tokens 64 --speculation=--lookup --chat "Rewrite ..."
"""

import argparse
import gzip
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORDS = ("river mountain copper violet engine harbor lantern meadow orbit canyon falcon "
         "glacier marble nectar pepper quartz saddle timber velvet walnut").split()


def ensure_tokenizer(model_dir):
    if not os.path.isdir(model_dir) or os.path.isfile(os.path.join(model_dir, "tokenizer.json")):
        return
    src = os.path.join(REPO, "tests", "fixtures", "tokenizers", "llama2")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        with gzip.open(os.path.join(src, name + ".gz"), "rb") as f, \
                open(os.path.join(model_dir, name), "wb") as g:
            shutil.copyfileobj(f, g)
    print(f"copied the llama2 tokenizer into {model_dir}", file=sys.stderr)


def start_server(args, extra=()):
    cmd = [args.binary, "serve", args.model, "-c", args.compression, "--ram", args.ram,
           "--port", "0", "--max-batch", "16", "--ctx", str(args.ctx), "-q", *extra]
    if args.cache_dir:
        cmd += ["--cache-dir", args.cache_dir]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    err = b""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1800:
        if p.poll() is not None:
            break
        r, _, _ = select.select([p.stderr], [], [], 0.5)
        if r:
            err += os.read(p.stderr.fileno(), 65536)
            m = re.search(rb"listening on (http://\S+)", err)
            if m:
                return p, m.group(1).decode()
    p.kill()
    sys.exit("the server did not start:\n" + err.decode(errors="replace"))


def post(url, body, timeout=3600):
    req = urllib.request.Request(url, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def metrics(base):
    with urllib.request.urlopen(base + "/metrics", timeout=60) as r:
        return json.loads(r.read())["models"][0]


def one_round(base, n, tokens, chat=None):
    out = [None] * n
    go = threading.Barrier(n + 1)

    def client(i):
        prompt = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(8))
        go.wait()
        if chat:
            out[i] = post(base + "/v1/chat/completions",
                          {"messages": [{"role": "user", "content": chat}],
                           "max_tokens": tokens, "temperature": 0})
        else:
            out[i] = post(base + "/v1/completions", {"prompt": prompt, "max_tokens": tokens,
                                                     "temperature": 0})
    ts = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    m0 = metrics(base)
    go.wait()
    t0 = time.monotonic()
    for t in ts:
        t.join()
    wall = time.monotonic() - t0
    m1 = metrics(base)
    toks = sum(r["usage"]["completion_tokens"] for r in out)
    d = {k: m1.get(k, 0) - m0.get(k, 0) for k in
         ("sweeps", "rows", "decode_steps", "decode_tokens", "drafted", "accepted")}
    text = [(r["choices"][0].get("message") or {}).get("content", r["choices"][0].get("text"))
            for r in out]
    return {"n": n, "tokens": toks, "wall": wall, "tps": toks / wall, "text": text, **d}


def median(runs):
    return sorted(runs, key=lambda r: r["tps"])[(len(runs) - 1) // 2]


def compare(args, ns):
    """Plain and speculative servers side by side, rounds interleaved."""
    extra = args.speculation.split()
    servers = [start_server(args, ["--no-speculation"]), start_server(args, extra)]
    try:
        for _, base in servers:
            one_round(base, 1, 2, args.chat)  # warm-up
        runs = {(s, n): [] for s in range(2) for n in ns}
        same = True
        for k in range(args.rounds):
            for n in ns:
                got = []
                for s, (_, base) in enumerate(servers):
                    r = one_round(base, n, args.tokens, args.chat)
                    runs[(s, n)].append(r)
                    got.append(r["text"])
                    print(f"round {k + 1} {'spec' if s else 'plain'} N={n}: {r['tokens']} tokens "
                          f"in {r['wall']:.2f} s = {r['tps']:.2f} tok/s, {r['sweeps']} sweeps",
                          file=sys.stderr)
                same &= got[0] == got[1]
        print(f"\n`--ram {args.ram}`, {args.compression}, speculation `{args.speculation}`, "
              f"{args.tokens} tokens per request, median of {args.rounds} interleaved rounds; "
              f"answers {'identical' if same else 'DIFFERENT'} with and without:\n")
        print("| concurrent | plain tok/s | spec tok/s | speed-up | plain tokens/sweep | "
              "spec tokens/sweep | spec tokens/step | accepted |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in ns:
            p, q = median(runs[(0, n)]), median(runs[(1, n)])
            acc = q["accepted"] / q["drafted"] if q["drafted"] else 0
            print(f"| {n} | {p['tps']:.2f} | {q['tps']:.2f} | **{q['tps'] / p['tps']:.2f}×** | "
                  f"{p['tokens'] / max(p['sweeps'], 1):.2f} | "
                  f"{q['tokens'] / max(q['sweeps'], 1):.2f} | "
                  f"{q['decode_tokens'] / max(q['decode_steps'], 1):.2f} | {100 * acc:.0f}% |")
    finally:
        for proc, _ in servers:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--ram", default="0")
    ap.add_argument("--compression", default="4bit")
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--concurrency", default="1,4,8,16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--binary", default=os.path.join(REPO, "build", "airllm"))
    ap.add_argument("--cache-dir")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--speculation")
    ap.add_argument("--chat")
    args = ap.parse_args()
    ensure_tokenizer(args.model)
    if args.speculation:
        compare(args, [int(x) for x in args.concurrency.split(",")])
        return
    proc, base = start_server(args)
    try:
        one_round(base, 1, 2)  # warm-up: first reads, allocations
        ns = [int(x) for x in args.concurrency.split(",")]
        runs = {n: [] for n in ns}
        for k in range(args.rounds):  # interleaved, so load changes hit every N alike
            for n in ns:
                r = one_round(base, n, args.tokens)
                runs[n].append(r)
                print(f"round {k + 1} N={n}: {r['tokens']} tokens in {r['wall']:.2f} s = "
                      f"{r['tps']:.2f} tok/s, {r['sweeps']} sweeps", file=sys.stderr)
        rows = [median(runs[n]) for n in ns]
        base_tps = rows[0]["tps"]
        print(f"\n`--ram {args.ram}`, {args.compression}, {args.tokens} tokens per request, "
              f"median of {args.rounds} interleaved rounds:\n")
        print("| concurrent | tokens | wall s | aggregate tok/s | × one | sweeps | tokens/sweep |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['n']} | {r['tokens']} | {r['wall']:.2f} | {r['tps']:.2f} | "
                  f"{r['tps'] / base_tps:.2f} | {r['sweeps']} | "
                  f"{r['tokens'] / max(r['sweeps'], 1):.2f} |")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)


if __name__ == "__main__":
    main()
