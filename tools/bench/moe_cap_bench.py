#!/usr/bin/env python3
"""A mixture-of-experts model under a memory cap: airllm.c against llama.cpp.

    moe_cap_bench.py make DIR     write DIR/model.gguf: a random Qwen3-MoE-shaped model
                                  at Q4_0 (default: hidden 2048, 24 layers, 32/4 heads of
                                  128, 64 experts of width 768, top-8, vocabulary 32000:
                                  7.8 B parameters, 4.4 GB), then split it into airllm.c's
                                  4bit layer store under DIR/cache (outside any cap)
    moe_cap_bench.py run DIR      measure both engines, each in a fresh cgroup v1 memory
                                  cgroup capped at a quarter of the GGUF's size, with the
                                  model's pages dropped from the page cache first (cold)
    moe_cap_bench.py clean DIR    delete DIR

The weights are written straight as Q4_0 blocks (random 4-bit codes, one fp16
scale per block of 32), so both engines read the same weights: llama.cpp maps
the GGUF (mmap, no repacking into other buffer types), airllm.c reads the
4bit (NF4, also 4.5 bits per weight) store split from it. Router weights and
norms are F32, the embedding F16.

airllm.c runs `airllm bench` (decode tokens one by one, bytes read per token
next to the active bytes, the disk's read bandwidth) twice: fully streamed
(--ram 0: a cold expert cache for every token) and with its default RAM
budget (what fits under the cap: pinned dense parts plus the expert cache).
llama.cpp (llama-cpp-python, 2 threads, mmap) evaluates the same prompt
length and decodes tokens one by one; its s/token is the mean over the
decoded tokens.

The cgroup is /sys/fs/cgroup/memory/airllm_moe_bench_<pid>: a writable cgroup
v1 memory controller is needed (root). Page cache counts against the cap, so
llama.cpp's mapped weights compete for the same quarter of the model.

Results go to stdout as a markdown table and to DIR/results.json.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
AIRLLM = os.path.join(REPO, "build", "airllm")
CG_ROOT = "/sys/fs/cgroup/memory"

# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------

def make(args):
    import gguf
    sys.path.insert(0, HERE)
    from compare_llamacpp import add_id_vocab
    from make_bench_model import random_q4_0
    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(args.dir, "model.gguf")
    h, L, E, ff, V = args.hidden, args.layers, args.experts, args.ff, args.vocab
    nh, nkv, hd = args.heads, args.kv_heads, args.head_dim
    rng = np.random.default_rng(args.seed)
    Q4 = gguf.GGMLQuantizationType.Q4_0
    w = gguf.GGUFWriter(path, "qwen3moe")
    w.add_name("random-qwen3moe-bench")
    w.add_context_length(4096)
    w.add_embedding_length(h)
    w.add_block_count(L)
    w.add_feed_forward_length(ff)
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1000000.0)
    w.add_expert_count(E)
    w.add_expert_used_count(args.top_k)
    w.add_expert_feed_forward_length(ff)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    add_id_vocab(w, V)

    # (name, numpy shape in weights, kind): kind q4 (Q4_0 matrix), f32, f16, ones
    plan = [("token_embd.weight", (V, h), "f16")]
    for l in range(L):
        b = f"blk.{l}."
        plan += [(b + "attn_norm.weight", (h,), "ones"),
                 (b + "attn_q.weight", (nh * hd, h), "q4"),
                 (b + "attn_k.weight", (nkv * hd, h), "q4"),
                 (b + "attn_v.weight", (nkv * hd, h), "q4"),
                 (b + "attn_output.weight", (h, nh * hd), "q4"),
                 (b + "attn_q_norm.weight", (hd,), "ones"),
                 (b + "attn_k_norm.weight", (hd,), "ones"),
                 (b + "ffn_norm.weight", (h,), "ones"),
                 (b + "ffn_gate_inp.weight", (E, h), "f32"),
                 (b + "ffn_gate_exps.weight", (E, ff, h), "q4"),
                 (b + "ffn_up_exps.weight", (E, ff, h), "q4"),
                 (b + "ffn_down_exps.weight", (E, h, ff), "q4")]
    plan += [("output_norm.weight", (h,), "ones"), ("output.weight", (V, h), "q4")]

    for name, shape, kind in plan:
        n = int(np.prod(shape))
        if kind == "q4":
            w.add_tensor_info(name, shape, np.dtype(np.float32), n // 32 * 18, raw_dtype=Q4)
        elif kind == "f16":
            w.add_tensor_info(name, shape, np.dtype(np.float16), n * 2)
        else:
            w.add_tensor_info(name, shape, np.dtype(np.float32), n * 4)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    t0 = time.time()
    for name, shape, kind in plan:
        if kind == "q4":
            rows = int(np.prod(shape[:-1]))
            a = random_q4_0(rng, rows, shape[-1], args.std).reshape(*shape[:-1], -1)
        elif kind == "f16":
            a = (args.std_embed * rng.standard_normal(shape, dtype=np.float32)).astype(np.float16)
        elif kind == "f32":
            a = (args.std_router * rng.standard_normal(shape, dtype=np.float32))
        else:
            a = np.ones(shape, np.float32)
        w.write_tensor_data(a)
    w.close()
    size = os.path.getsize(path)
    print(f"wrote {path}: {size / 1e9:.2f} GB in {time.time() - t0:.0f} s", flush=True)
    # split into the 4bit layer store, outside any cap
    t0 = time.time()
    run([AIRLLM, "bench", path, "--compression", "4bit", "--cache-dir", cache_dir(args.dir),
         "-p", "1", "-g", "1", "--no-speculation"], check=True)
    print(f"split into {cache_dir(args.dir)} in {time.time() - t0:.0f} s", flush=True)


def cache_dir(d):
    return os.path.join(d, "cache")


def run(cmd, check=False, **kw):
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=check, **kw)


# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------

def model_files(d):
    out = []
    for root, _, files in os.walk(d):
        out += [os.path.join(root, f) for f in files]
    return out


def drop_cache(d):
    """Evicts the model's pages from the page cache (only these files)."""
    for p in model_files(d):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class Cgroup:
    """A fresh cgroup v1 memory cgroup with a hard limit (memory + page cache)."""

    def __init__(self, limit):
        self.path = os.path.join(CG_ROOT, f"airllm_moe_bench_{os.getpid()}_{time.time_ns()}")
        os.mkdir(self.path)
        self.write("memory.limit_in_bytes", str(limit))

    def write(self, f, v):
        with open(os.path.join(self.path, f), "w") as fh:
            fh.write(v)

    def read(self, f):
        with open(os.path.join(self.path, f)) as fh:
            return fh.read().strip()

    def run(self, cmd, **kw):
        """Runs cmd inside the cgroup (the child joins it before exec)."""
        procs = os.path.join(self.path, "cgroup.procs")

        def join():
            with open(procs, "w") as fh:
                fh.write(str(os.getpid()))
        shown = ["<llama.cpp script>" if "\n" in c else c for c in cmd]
        print("+ [cgroup " + self.read("memory.limit_in_bytes") + " B] " + " ".join(shown), flush=True)
        return subprocess.run(cmd, preexec_fn=join, capture_output=True, text=True, **kw)

    def close(self):
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.1)


def parse_airllm(text):
    """Figures of `airllm bench` output: decode tok/s, disk GB/s, and the
    expert table's bytes read / active bytes per token, floor and hit rate."""
    r = {}
    m = re.search(r"disk sequential read[^:]*: ([0-9.]+) GB/s", text)
    if m:
        r["disk_gbps"] = float(m.group(1))
    rows = re.findall(r"^\| tg\d+ \|(.*)\|$", text, re.M)
    if rows:
        c = [x.strip() for x in rows[0].split("|")]
        r["tok_s"], r["io_hidden"] = float(c[0]), c[4]
    if len(rows) > 1:
        c = [x.strip() for x in rows[1].split("|")]
        r.update(read_per_token=c[0], active_per_token=c[1], read_over_active=float(c[2]),
                 floor_tok_s=float(c[3]), hit_rate=c[4])
    m = re.search(r"RAM budget ([0-9.]+ [KMG]?i?B)", text)
    if m:
        r["ram_budget"] = m.group(1)
    m = re.search(r"cache (\d+) experts", text)
    if m:
        r["cached_experts"] = int(m.group(1))
    return r


LLAMA_CHILD = r"""
import json, sys, time
import numpy as np
from llama_cpp import llama_cpp as lib
orig = lib.llama_model_default_params
def params():
    p = orig()
    p.use_extra_bufts = False  # weights stay in the mapping (no repacked copies)
    return p
lib.llama_model_default_params = params
from llama_cpp import Llama
path, n_prompt, n_gen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = time.time()
llm = Llama(model_path=path, n_ctx=256, n_batch=64, n_threads=2, use_mmap=True,
            use_mlock=False, verbose=False, seed=0)
t_load = time.time() - t0
rng = np.random.default_rng(1)
ids = [int(x) for x in rng.integers(3, llm.n_vocab(), n_prompt)]
t0 = time.time()
llm.eval(ids)
t_prompt = time.time() - t0
steps = []
for i in range(n_gen):
    tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    t0 = time.time()
    llm.eval([tok])
    steps.append(time.time() - t0)
print(json.dumps({"load_s": t_load, "prompt_s": t_prompt, "step_s": steps}))
"""


def rss_peak(cg):
    try:
        return int(cg.read("memory.max_usage_in_bytes"))
    except OSError:
        return 0


def measure(args):
    gguf_path = os.path.join(args.dir, "model.gguf")
    size = os.path.getsize(gguf_path)
    cap = -1 if args.no_cap else args.cap_bytes or size // 4  # -1: no limit (a reference run)
    res = {"gguf_bytes": size, "cap_bytes": cap, "runs": []}
    print(f"model {size / 1e9:.2f} GB, cap {cap / 2**20:.0f} MiB" if cap > 0 else
          f"model {size / 1e9:.2f} GB, no cap", flush=True)
    for rep in range(args.reps):
        for ram in args.ram:
            drop_cache(args.dir)
            cg = Cgroup(cap)
            try:
                t0 = time.time()
                p = cg.run([AIRLLM, "bench", gguf_path, "--compression", "4bit", "--cache-dir",
                            cache_dir(args.dir), "-p", str(args.prompt), "-g", str(args.gen),
                            "--no-speculation", "-t", "2"] + (["--ram", ram] if ram else []))
                wall = time.time() - t0
                out = p.stdout + p.stderr
                print(out, flush=True)
                res["runs"].append({"engine": "airllm.c", "ram": ram or "default", "rep": rep,
                                    "rc": p.returncode, "wall_s": wall, "output": out,
                                    "cgroup_max_usage": rss_peak(cg),
                                    "failcnt": int(cg.read("memory.failcnt"))})
            finally:
                cg.close()
        drop_cache(args.dir)
        cg = Cgroup(cap)
        try:
            t0 = time.time()
            p = cg.run([sys.executable, "-c", LLAMA_CHILD, gguf_path, str(args.prompt),
                        str(args.llama_gen)], timeout=args.llama_timeout)
            wall = time.time() - t0
            print(p.stdout[-2000:], p.stderr[-2000:], flush=True)
            r = {"engine": "llama.cpp", "rep": rep, "rc": p.returncode, "wall_s": wall,
                 "cgroup_max_usage": rss_peak(cg), "failcnt": int(cg.read("memory.failcnt"))}
            if p.returncode == 0:
                r.update(json.loads(p.stdout.strip().splitlines()[-1]))
            else:
                r["stderr"] = p.stderr[-4000:]
            res["runs"].append(r)
        finally:
            cg.close()
    with open(os.path.join(args.dir, args.out), "w") as f:
        json.dump(res, f, indent=1)
    summarize(res)


def summarize(res):
    cap = res["cap_bytes"]
    print(f"\nmodel {res['gguf_bytes'] / 1e9:.2f} GB, " +
          (f"cap {cap / 2**20:.0f} MiB" if cap > 0 else "no cap"))
    print("\n| engine | RAM budget | decode s/token | floor s/token | bytes read/token | active "
          "bytes/token | read / active | expert cache hit rate | cgroup peak |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in res["runs"]:
        peak = f"{r['cgroup_max_usage'] / 2**20:.0f} MiB"
        if r["engine"] == "llama.cpp":
            st = r.get("step_s")
            s = f"{np.mean(st):.2f}" if st else f"failed (rc {r['rc']})"
            where = "page cache under the cap" if cap > 0 else "page cache, no cap"
            print(f"| llama.cpp (mmap) | {where} | {s} | | | | | | {peak} |")
            continue
        a = parse_airllm(r["output"])
        if "tok_s" not in a:
            print(f"| airllm.c | {r['ram']} | failed (rc {r['rc']}) | | | | | | {peak} |")
            continue
        print(f"| airllm.c | {a.get('ram_budget', r['ram'])} | {1 / a['tok_s']:.2f} | "
              f"{1 / a['floor_tok_s']:.2f} | {a['read_per_token']} | {a['active_per_token']} | "
              f"{a['read_over_active']:.2f} | {a['hit_rate']} | {peak} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("dir")
    mk.add_argument("--hidden", type=int, default=2048)
    mk.add_argument("--layers", type=int, default=24)
    mk.add_argument("--heads", type=int, default=32)
    mk.add_argument("--kv-heads", type=int, default=4)
    mk.add_argument("--head-dim", type=int, default=128)
    mk.add_argument("--experts", type=int, default=64)
    mk.add_argument("--top-k", type=int, default=8)
    mk.add_argument("--ff", type=int, default=768)
    mk.add_argument("--vocab", type=int, default=32000)
    mk.add_argument("--std", type=float, default=0.02)
    mk.add_argument("--std-embed", type=float, default=0.5)
    mk.add_argument("--std-router", type=float, default=0.1)
    mk.add_argument("--seed", type=int, default=0)
    rn = sub.add_parser("run")
    rn.add_argument("dir")
    rn.add_argument("--prompt", type=int, default=16)
    rn.add_argument("--gen", type=int, default=16)
    rn.add_argument("--llama-gen", type=int, default=8)
    rn.add_argument("--llama-timeout", type=int, default=1800)
    rn.add_argument("--reps", type=int, default=1)
    rn.add_argument("--cap-bytes", type=int, default=0, help="default: a quarter of the GGUF")
    rn.add_argument("--no-cap", action="store_true", help="a reference run without a limit")
    rn.add_argument("--out", default="results.json", help="file in DIR for the results")
    rn.add_argument("--ram", nargs="*", default=["0", "", "768M"],
                    help="airllm.c RAM budgets ('' = its default under the cap)")
    sm = sub.add_parser("summary", help="the table again from DIR/results.json")
    sm.add_argument("dir")
    sm.add_argument("--out", default="results.json")
    cl = sub.add_parser("clean")
    cl.add_argument("dir")
    args = ap.parse_args()
    if args.cmd == "make":
        make(args)
    elif args.cmd == "run":
        measure(args)
    elif args.cmd == "summary":
        with open(os.path.join(args.dir, args.out)) as f:
            summarize(json.load(f))
    else:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
