#!/usr/bin/env python3
"""The MPI pipeline against one process, on one machine, under memory caps
(docs/benchmarks.md, "Pipeline over MPI"). Needs root and a writable cgroup v1
memory controller (/sys/fs/cgroup/memory).

    tools/bench/bench_mpi.py MODEL [--compression 8bit] [--slack-mib 64]

1. Splits MODEL once (airllm pull) and sums its streamed units (layers and
   head): the store S.
2. Runs `airllm bench` in these set-ups, each process in its own memory
   cgroup (memory.limit_in_bytes):
     pipeline   mpirun -np 2, each rank capped at its layers + slack (the
                split nearest to S/2 each, AIRLLM_PIPELINE_LAYERS)
     sum        one process capped at the sum of the ranks' caps
     store      one process capped at S (half-store caps summed, no slack)
     one host   one process capped at one rank's cap
   (--ram: the cap less the slack, and less two streaming buffers where the
   layers do not all fit)
3. Serves N concurrent requests (`airllm serve`, greedy, --tokens each):
   the pipeline with micro-batches (AIRLLM_PIPELINE_MICROBATCHES=2), without
   (the default for ranks that share a host),
   and one process capped at the sum; aggregate generated tokens/s.
4. Reports decode tokens/s (rank 0's table) and bytes read from disk per
   decoded token: /proc/PID/io read_bytes of every process, sampled until it
   exits, from two runs of different lengths (-g G1 and -g G2), divided by
   G2 - G1, so the loading of pinned layers cancels out.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--compression", default="8bit")
ap.add_argument("--slack-mib", type=int, default=64,
                help="memory per process beyond its layers (code, KV cache, activations)")
ap.add_argument("--g1", type=int, default=4)
ap.add_argument("--g2", type=int, default=16)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--reps", type=int, default=2)
ap.add_argument("--concurrent", type=int, default=4,
                help="requests at once in the server part (0: skip it)")
ap.add_argument("--tokens", type=int, default=24, help="tokens per request in the server part")
ap.add_argument("--serve-only", action="store_true", help="only the server part")
ap.add_argument("--out", default="/tmp/airllm-mpi-bench")
ap.add_argument("--airllm", default=os.path.join(REPO, "build", "airllm"))
ap.add_argument("--mpirun", default=shutil.which("mpirun") or "mpirun")
a = ap.parse_args()

MIB = 1 << 20
cache = os.path.join(a.out, "cache")
os.makedirs(cache, exist_ok=True)
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
subprocess.run([a.airllm, "pull", a.model, "-c", a.compression, "--cache-dir", cache],
               check=True, env=env, stdout=subprocess.DEVNULL)
store = glob.glob(os.path.join(cache, "*", a.compression))[0]
layers = [os.path.getsize(f) for f in sorted(glob.glob(os.path.join(store, "layer_*.bin")))]
head = os.path.getsize(os.path.join(store, "head.bin"))
S = sum(layers) + head
# the two ranks' layers: the split nearest to half the store each (rank 1
# also holds the head), given to the pipeline with AIRLLM_PIPELINE_LAYERS
k = min(range(1, len(layers)), key=lambda k: max(sum(layers[:k]), sum(layers[k:]) + head))
part = [sum(layers[:k]), sum(layers[k:]) + head]
env["AIRLLM_PIPELINE_LAYERS"] = f"{k},{len(layers) - k}"
slack = a.slack_mib * MIB
print(f"store {store}: streamed units {S / MIB:.0f} MiB; rank 0 layers 0..{k - 1} "
      f"({part[0] / MIB:.0f} MiB), rank 1 layers {k}..{len(layers) - 1} and the head "
      f"({part[1] / MIB:.0f} MiB); slack {a.slack_mib} MiB per process")

CG = "/sys/fs/cgroup/memory"
wrapper = os.path.join(a.out, "in_cgroup.sh")
with open(wrapper, "w") as f:
    f.write("""#!/bin/sh
# in_cgroup.sh CGROUP_PREFIX IO_PREFIX CMD...: joins CGROUP_PREFIX<rank>, runs
# CMD and keeps its last /proc/PID/io read_bytes in IO_PREFIX<rank>
r=${OMPI_COMM_WORLD_RANK:-0}
cg=$1$r; io=$2$r; shift 2
echo $$ > "$cg/cgroup.procs"
"$@" & pid=$!
trap 'kill -TERM $pid' INT TERM  # (a background job ignores SIGINT)
while kill -0 $pid 2>/dev/null; do
  sed -n 's/^read_bytes: //p' /proc/$pid/io > "$io.t" 2>/dev/null && mv "$io.t" "$io"
  sleep 0.05
done
wait $pid
""")
os.chmod(wrapper, 0o755)


def cgroups(name, caps):
    prefix = os.path.join(CG, f"airllm_bench_{os.getpid()}_{name}_r")
    for r, cap in enumerate(caps):
        d = prefix + str(r)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "memory.limit_in_bytes"), "w") as f:
            f.write(str(cap))
    return prefix


def remove_cgroups(prefix, n):
    for r in range(n):
        for _ in range(50):
            try:
                os.rmdir(prefix + str(r))
                break
            except OSError:
                time.sleep(0.1)


def bench(name, caps, ram, g):
    n = len(caps)
    prefix = cgroups(name, caps)
    iop = os.path.join(a.out, f"io_{name}_{g}_r")
    cmd = [wrapper, prefix, iop, a.airllm, "bench", a.model, "-c", a.compression,
           "--cache-dir", cache, "-p", "16", "-g", str(g), "-t", str(a.threads),
           "--ram", f"{(ram + MIB - 1) // MIB}M"]
    if n > 1:
        cmd = [a.mpirun, "--oversubscribe", "--bind-to", "none", "-np", str(n)] + cmd
    load = open("/proc/loadavg").read().split()[0]
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.monotonic() - t0
    remove_cgroups(prefix, n)
    if p.returncode != 0:
        print(f"{name}: failed ({p.returncode})\n{p.stdout}\n{p.stderr[-3000:]}")
        return None
    m = re.search(r"\| tg%d \| ([0-9.]+) \| ([^|]+) \|" % g, p.stdout)
    reads = sum(int(open(iop + str(r)).read().strip() or 0) for r in range(n))
    pipe = re.search(r"^pipeline: .*$", p.stdout, re.M)
    return {"tok_s": float(m.group(1)), "engine_bytes": m.group(2).strip(), "read": reads,
            "wall": dt, "pipe": pipe.group(0) if pipe else "", "out": p.stdout, "load": load}


half = max(part)
# --ram: what the cap leaves after the slack, and after two streaming buffers
# where not everything fits (the automatic budget would take only 3/4 of it)
setups = [
    ("pipeline", [part[0] + slack, part[1] + slack], half),
    ("sum", [S + 2 * slack], S + slack),
    ("store", [S], S - slack - 2 * max(layers)),
    ("one host", [half + slack], half - 2 * max(layers)),
]
print(f"\n| set-up | cap per process | --ram | decode tok/s (g={a.g2}, {a.reps} runs) | disk bytes "
      f"read / decoded token | engine's bytes read / token (rank 0) | load average |")
print("|---|---|---:|---:|---:|---:|---:|")
rows = []
for name, caps, ram in setups if not a.serve_only else []:
    r1 = bench(name.replace(" ", "_"), caps, ram, a.g1)
    r2s = [bench(name.replace(" ", "_"), caps, ram, a.g2) for _ in range(a.reps)]
    if not r1 or not all(r2s):
        continue
    per_tok = [(r2["read"] - r1["read"]) / (a.g2 - a.g1) for r2 in r2s]
    r2 = r2s[-1]
    print(f"| {name} | {' + '.join(f'{c / MIB:.0f}' for c in caps)} MiB | {ram / MIB:.0f} MiB | "
          f"{' / '.join('%.2f' % r['tok_s'] for r in r2s)} | "
          f"{' / '.join('%.1f' % (b / MIB) for b in per_tok)} MiB | {r2['engine_bytes']} | "
          f"{' / '.join(r['load'] for r in [r1] + r2s)} |", flush=True)
    rows.append((name, r2))
for name, r in rows:
    if r["pipe"]:
        print(f"\n{r['pipe']}")


# ---------------------------------------------------------------------------
# concurrent requests through `airllm serve`
# ---------------------------------------------------------------------------
import json
import socket
import threading
import urllib.request

KV = 64 * MIB  # --kv-ram: 4 requests of a 128-position context


def serve_round(name, caps, ram, extra_env):
    n = len(caps)
    prefix = cgroups(name, [c + KV for c in caps])
    iop = os.path.join(a.out, f"io_serve_{name}_r")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cmd = [wrapper, prefix, iop, a.airllm, "serve", a.model, "-c", a.compression, "--cache-dir",
           cache, "--port", str(port), "-t", str(a.threads), "--ctx", "128",
           "--ram", f"{(ram + KV + MIB - 1) // MIB}M", "--kv-ram", f"{KV // MIB}M"]
    if n > 1:
        cmd = [a.mpirun, "--oversubscribe", "--bind-to", "none", "-np", str(n)] + cmd
    proc = subprocess.Popen(cmd, env=dict(env, **extra_env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    while time.monotonic() - t0 < 300 and proc.poll() is None:
        try:
            if urllib.request.urlopen(base + "/health", timeout=1).status == 200:
                break
        except OSError:
            time.sleep(0.2)
    res = [None] * a.concurrent

    def client(i):
        body = json.dumps({"model": os.path.basename(a.model.rstrip("/")),
                           "prompt": f"Story number {i}: once upon a time",
                           "max_tokens": a.tokens, "temperature": 0}).encode()
        rq = urllib.request.Request(base + "/v1/completions", body,
                                    {"Content-Type": "application/json"})
        res[i] = json.loads(urllib.request.urlopen(rq, timeout=600).read())

    results = []
    for _ in range(a.reps):
        ts = [threading.Thread(target=client, args=(i,)) for i in range(a.concurrent)]
        t1 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wall = time.monotonic() - t1
        toks = sum(r["usage"]["completion_tokens"] for r in res if r)
        results.append(toks / wall)
    proc.send_signal(2)
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    remove_cgroups(prefix, n)
    return results


if a.concurrent > 0:
    print(f"\n{a.concurrent} concurrent requests of {a.tokens} tokens (airllm serve, greedy, "
          f"--ctx 128, --kv-ram {KV // MIB}M added to each cap):\n")
    print("| set-up | aggregate generated tok/s (runs) | load average |")
    print("|---|---:|---:|")
    for name, caps, ram, extra in (
            ("pipeline, micro-batches", [part[0] + slack, part[1] + slack], half,
             {"AIRLLM_PIPELINE_MICROBATCHES": "2"}),
            ("pipeline, one batch per pass (the default: ranks share this host)",
             [part[0] + slack, part[1] + slack], half, {}),
            ("one process, cap = sum", [S + 2 * slack], S + slack, {})):
        load = open("/proc/loadavg").read().split()[0]
        tps = serve_round(name.split(",")[0].replace(" ", "_"), caps, ram, extra)
        print(f"| {name} | {' / '.join('%.2f' % t for t in tps)} | {load} |", flush=True)
