#!/usr/bin/env python3
"""The MPI pipeline on localhost (docs/mpi.md), run by CTest as mpi_pipeline.

1. identity: tests/mpi/mpi_check.c alone, then under `mpirun -np 2` and
   `-np 3` (each rank splitting only its own layer range into a fresh cache):
   prefill logits, 32 greedy decode steps and 5 concurrent sequences in
   shared sweeps must be byte-identical to the single process's, and the
   greedy ids those of transformers (the fixture's golden.json).
2. the command line: `airllm run` under `mpirun -np 2` prints the same greedy
   answer as alone (tiny_chat: tokenizer and chat template on rank 0).
3. failures: a rank killed with SIGKILL, and a rank stopped with SIGSTOP
   (a stall; AIRLLM_PIPELINE_TIMEOUT=4), each end the job with a non-zero
   status and a clear message on stderr within a bounded time.

Exits 77 (skipped) when the build has no MPI.
"""
import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--check", required=True)
ap.add_argument("--cli", required=True)
ap.add_argument("--mpirun", default="")
ap.add_argument("--models", required=True)
ap.add_argument("--tmp", required=True)
a = ap.parse_args()

if not a.mpirun:
    print("SKIP: this build has no MPI (install openmpi-bin libopenmpi-dev and reconfigure "
          "with -DAIR_MPI=ON)")
    sys.exit(77)

env = dict(os.environ)
# root in containers and CI; two or three ranks on a machine with fewer cores
env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
MPIRUN = [a.mpirun, "--oversubscribe"]
# under ASan: the slow unwinder, so that Open MPI's never-freed allocations
# (in components it unloads at exit) are traced to its libraries, which
# tests/mpi/lsan.supp names (CTest sets LSAN_OPTIONS)
env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":fast_unwind_on_malloc=0").lstrip(":")

shutil.rmtree(a.tmp, ignore_errors=True)
os.makedirs(a.tmp)
llama = os.path.join(a.models, "llama")
tiny = os.path.join(a.models, "tiny_chat")
failures = []


def run(cmd, timeout=120, **kw):
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=kw.pop("env", env), capture_output=True, text=True,
                       timeout=timeout, **kw)
    return p, time.monotonic() - t0


def expect(cond, what, p=None):
    if cond:
        print("ok:", what)
    else:
        failures.append(what)
        print("FAIL:", what)
        if p is not None:
            print("  stdout:", p.stdout[-2000:])
            print("  stderr:", p.stderr[-4000:])


# 1. identity
outs = {}
for n in (1, 2, 3):
    out = os.path.join(a.tmp, f"check{n}.bin")
    cache = os.path.join(a.tmp, f"cache{n}")
    cmd = [a.check, "check", llama, cache, out]
    # ranks on one host get one batch per pass unless micro-batches are asked for
    p, dt = run(cmd if n == 1 else MPIRUN + ["-np", str(n)] + cmd,
                env=dict(env, AIRLLM_PIPELINE_MICROBATCHES=str(n)))
    expect(p.returncode == 0, f"mpi_check with {n} rank(s) ({dt:.1f} s)", p)
    if p.returncode == 0 and n > 1:
        mb = re.search(r"pipeline: (\d+) passes, (\d+) micro-batches", p.stderr)
        expect(mb and int(mb.group(2)) > int(mb.group(1)),
               f"-np {n}: the concurrent sequences went through in micro-batches "
               f"({mb.group(0) if mb else p.stderr[-300:]})")
    if p.returncode == 0:
        outs[n] = open(out, "rb").read()
        if n > 1:
            parts = sorted(f for f in os.listdir(os.path.join(cache, os.listdir(cache)[0], "none"))
                           if f.startswith("manifest"))
            expect(len(parts) == n and "manifest.json" not in parts,
                   f"{n} ranks each split only their own range: {parts}")
# every rank streaming its layers from disk (--ram 0): no micro-batches, the
# reader thread cycles through this rank's units only
out = os.path.join(a.tmp, "check3s.bin")
p, dt = run(MPIRUN + ["-np", "3", a.check, "check", llama, os.path.join(a.tmp, "cache3"), out],
            env=dict(env, MPI_CHECK_RAM="0"))
mb = re.search(r"pipeline: (\d+) passes, (\d+) micro-batches", p.stderr)
expect(p.returncode == 0 and mb and mb.group(1) == mb.group(2) and 1 in outs and
       open(out, "rb").read() == outs[1],
       f"-np 3, every rank streaming: byte-identical to one process, one micro-batch per pass "
       f"({dt:.1f} s)", p)
for n in (2, 3):
    if 1 in outs and n in outs:
        expect(outs[n] == outs[1], f"-np {n}: logits and ids byte-identical to one process "
               f"({len(outs[1])} bytes)")

# 2. the command line, unchanged under mpirun
prompt = "Hello there, how are you"
args = ["run", tiny, prompt, "--temperature", "0", "-n", "20", "-c", "none", "-t", "1"]
p1, _ = run([a.cli] + args + ["--cache-dir", os.path.join(a.tmp, "cli1")])
p2, dt = run(MPIRUN + ["-np", "2", a.cli] + args + ["--cache-dir", os.path.join(a.tmp, "cli2")])
expect(p1.returncode == 0 and p2.returncode == 0 and p1.stdout == p2.stdout and p1.stdout,
       f"airllm run under mpirun -np 2 prints the single process's answer ({dt:.1f} s)", p2)
# speculative candidate rows (token trees; KV compaction on the workers):
# n-gram lookup, and a draft model that rank 0 runs by itself
for name, extra in (("lookup", ["--lookup"]),
                    ("a draft model", ["--draft", tiny, "--draft-compression", "none"])):
    a1 = args[:6] + ["40"] + args[7:] + extra + ["--stats"]
    p1, _ = run([a.cli] + a1 + ["--cache-dir", os.path.join(a.tmp, "cli1")])
    p3, dt = run(MPIRUN + ["-np", "2", a.cli] + a1 + ["--cache-dir", os.path.join(a.tmp, "cli2")])
    expect(p1.returncode == 0 and p3.returncode == 0 and p1.stdout == p3.stdout and
           "candidates" in p3.stderr,
           f"speculation with {name} under mpirun -np 2: the single process's answer "
           f"({dt:.1f} s)", p3)


# 2b. `airllm serve` under mpirun: concurrent requests (the scheduler's
# sequences, micro-batches through the pipeline) answer as a single process
def serve_answers(ranks):
    import json
    import socket
    import threading
    import urllib.request
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cmd = [a.cli, "serve", tiny, "--port", str(port), "-c", "none", "-t", "1",
           "--cache-dir", os.path.join(a.tmp, f"serve{ranks}")]
    if ranks > 1:
        cmd = MPIRUN + ["-np", str(ranks)] + cmd
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    base = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    up = False
    while time.monotonic() - t0 < 60 and proc.poll() is None and not up:
        try:
            urllib.request.urlopen(base + "/v1/models", timeout=1).read()
            up = True
        except OSError:
            time.sleep(0.1)
    golden = json.load(open(os.path.join(tiny, "golden.json")))
    convs = golden["conversations"]
    answers = [None] * (2 * len(convs))

    def ask(i):
        c = convs[i % len(convs)]
        body = json.dumps({"model": "tiny_chat", "messages": c["messages"], "temperature": 0,
                           "max_tokens": 24 - 6 * (i // len(convs))}).encode()
        rq = urllib.request.Request(base + "/v1/chat/completions", data=body,
                                    headers={"Content-Type": "application/json"})
        try:
            r = json.loads(urllib.request.urlopen(rq, timeout=60).read())
            answers[i] = r["choices"][0]["message"]["content"]
        except Exception as ex:  # recorded as a wrong answer
            answers[i] = f"error: {ex}"
    if up:
        th = [threading.Thread(target=ask, args=(i,)) for i in range(len(answers))]
        for t in th:
            t.start()
        for t in th:
            t.join()
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += "\n(did not stop within 30 s of SIGINT)"
    return up, answers, err


up1, ans1, _ = serve_answers(1)
up2, ans2, err2 = serve_answers(2)
expect(up1 and up2 and ans1 == ans2 and all(x and not x.startswith("error") for x in ans1),
       f"airllm serve under mpirun -np 2: {len(ans2)} concurrent requests answer as one process",
       subprocess.CompletedProcess([], 0, str(ans2), err2))

# 2c. a rank whose layer fails mid-pass sends the error on: rank 0's pass
# fails with that rank's message (a streamed unit whose data checksum fails)
bad = os.path.join(a.tmp, "cache_bad")
shutil.copytree(os.path.join(a.tmp, "cache3"), bad)
lf = glob.glob(os.path.join(bad, "*", "none", "layer_00002.bin"))[0]
with open(lf, "r+b") as f:
    f.seek(os.path.getsize(lf) - 5000)
    c = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([c[0] ^ 0x40]))
p, dt = run(MPIRUN + ["-np", "3", a.check, "check", llama, bad, os.path.join(a.tmp, "bad.bin")],
            env=dict(env, MPI_CHECK_RAM="0"))
expect(p.returncode != 0 and re.search(r"pipeline rank 2: .*layer_00002\.bin", p.stderr),
       f"a corrupt layer on rank 2: rank 0's pass fails with rank 2's error ({dt:.1f} s)", p)

# 3. failures: bounded, with a message
def broken_rank(sig, extra_env, want):
    d = os.path.join(a.tmp, f"hold-{sig}")
    os.makedirs(d)
    e = dict(env, **extra_env)
    t0 = time.monotonic()
    proc = subprocess.Popen(MPIRUN + ["-np", "3", a.check, "hold", llama,
                                      os.path.join(a.tmp, "cache3"), d],
                            env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = os.path.join(d, "ready")
    while not os.path.exists(ready) and time.monotonic() - t0 < 60 and proc.poll() is None:
        time.sleep(0.05)
    victim = None
    if os.path.exists(ready):
        victim = int(open(os.path.join(d, "rank1")).read())
        os.kill(victim, sig)
    t1 = time.monotonic()
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        expect(False, f"signal {sig}: the job did not end within 30 s (a hang)")
        return
    if victim:  # a stopped rank the launcher did not end
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    dt = time.monotonic() - t1
    res = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    expect(victim is not None and proc.returncode != 0 and want in err,
           f"signal {sig} to rank 1: the job ends in {dt:.1f} s, status {proc.returncode}, "
           f"stderr says \"{want}\"", res)


broken_rank(signal.SIGKILL, {}, "exited on signal 9")
broken_rank(signal.SIGSTOP, {"AIRLLM_PIPELINE_TIMEOUT": "4"}, "within 4 s: ")

if failures:
    print(f"{len(failures)} failed:", *failures, sep="\n  ")
    sys.exit(1)
print("all passed")
