#!/usr/bin/env python3
"""Split benchmark: how fast `airllm pull` writes a layer store, against the
disk's own sequential write bandwidth.

For each compression (none, 8bit, 4bit) it splits MODEL into a fresh store
in a temporary cache folder (deleted afterwards), several times, and prints
the GB/s of store written next to the disk write bandwidth `airllm pull`
measures right after each split (256 MiB with O_DIRECT, fsynced, in the same
folder), and the ratio of the two. The source is read once first so that it
is in the page cache, as it is after a download: the figure is the split's,
not the source disk's read speed.

    python3 tools/bench/bench_split.py MODEL [--airllm build/airllm]
        [--runs 3] [--tmp DIR] [--compressions none,8bit,4bit] [--threads N]

MODEL is a Hugging Face model folder (safetensors) or a .gguf file; it is
only read. The store goes under --tmp (default: a new folder in the system's
temporary folder, on the disk being measured).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

LINE = re.compile(r"split: ([0-9.]+) s, ([0-9.]+) GB/s of store written; "
                  r"disk sequential write ([0-9.]+) GB/s")


def warm(model):
    """Reads the model's files once (page cache)."""
    paths = [model] if os.path.isfile(model) else [
        os.path.join(model, f) for f in sorted(os.listdir(model))]
    for p in paths:
        if os.path.isfile(p):
            with open(p, "rb") as f:
                while f.read(1 << 24):
                    pass


def one_split(args, comp, tmp_root):
    cache = tempfile.mkdtemp(prefix="bench-split-", dir=tmp_root)
    try:
        cmd = [args.airllm, "pull", args.model, "-c", comp, "--cache-dir", cache,
               "--ram", "0", "-q"]
        if args.threads:
            cmd += ["-t", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr}")
        m = LINE.search(out.stdout)
        if not m:
            sys.exit(f"no split figure in the output of {' '.join(cmd)}:\n{out.stdout}")
        return float(m.group(1)), float(m.group(2)), float(m.group(3))
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--airllm", default=os.path.join("build", "airllm"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tmp", default=None, help="folder for the temporary stores")
    ap.add_argument("--compressions", default="none,8bit,4bit")
    ap.add_argument("--threads", type=int, default=0, help="threads (default: all cores)")
    args = ap.parse_args()
    warm(args.model)
    print(f"model {args.model}, {args.runs} runs each; median and best of the runs")
    print(f"{'compression':<12} {'split s':>8} {'GB/s written':>13} {'disk write GB/s':>16} "
          f"{'% of disk':>10} {'best %':>7}")
    for comp in args.compressions.split(","):
        runs = [one_split(args, comp, args.tmp) for _ in range(args.runs)]
        secs = statistics.median(r[0] for r in runs)
        rate = statistics.median(r[1] for r in runs)
        disk = statistics.median(r[2] for r in runs)
        best = max(r[1] / r[2] for r in runs if r[2] > 0)
        print(f"{comp:<12} {secs:>8.2f} {rate:>13.3f} {disk:>16.2f} "
              f"{100 * rate / disk:>9.0f}% {100 * best:>6.0f}%")


if __name__ == "__main__":
    main()
