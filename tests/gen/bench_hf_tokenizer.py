#!/usr/bin/env python3
"""HF `tokenizers` single-threaded baseline for tools/bench/bench_tokenizer.c.

  RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false \
      python3 tests/gen/bench_hf_tokenizer.py [--reps N] [--json] [name ...]

Same corpus (tests/fixtures/tokenizers/corpus.json.gz, invalid UTF-8 cases
decoded with errors="replace"), same protocol: best load time of
Tokenizer.from_str on the tokenizer.json text, and best encode time of all
cases one by one (Tokenizer.encode, add_special_tokens=False) after a warm-up
pass, over N passes. Prints a markdown table (or JSON) like the C benchmark.
"""
import argparse
import gzip
import json
import os
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tokenizers import Tokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "tokenizers")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("names", nargs="*",
                    default=["qwen3", "llama3_1", "llama2", "deepseek_v3", "gemma3"])
    a = ap.parse_args()
    cases = json.loads(gzip.open(os.path.join(FIX, "corpus.json.gz")).read())
    texts = [c["text"] if "text" in c else bytes.fromhex(c["hex"]).decode("utf-8", "replace")
             for c in cases]
    nbytes = sum(len(c["text"].encode("utf-8")) if "text" in c else len(c["hex"]) // 2
                 for c in cases)
    rows = []
    if not a.json:
        print(f"corpus: {len(texts)} cases, {nbytes / 1e6:.2f} MB; best of {a.reps} passes, "
              f"HF tokenizers single thread\n")
        print("| tokenizer | load ms | encode MB/s | tokens/s | tokens |")
        print("| --- | ---: | ---: | ---: | ---: |")
    for name in a.names:
        js = gzip.open(os.path.join(FIX, name, "tokenizer.json.gz")).read().decode("utf-8")
        lt = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            tok = Tokenizer.from_str(js)
            lt.append(time.perf_counter() - t0)
        et = []
        ntok = 0
        for r in range(a.reps + 1):
            t0 = time.perf_counter()
            ntok = sum(len(tok.encode(t, add_special_tokens=False).ids) for t in texts)
            if r:
                et.append(time.perf_counter() - t0)
        l, e = min(lt), min(et)
        row = {"tokenizer": name, "load_ms": l * 1e3, "encode_mb_s": nbytes / e / 1e6,
               "tokens_s": ntok / e, "tokens": ntok}
        rows.append(row)
        if not a.json:
            print(f"| {name} | {l * 1e3:.1f} | {nbytes / e / 1e6:.2f} | {ntok / e:.0f} | {ntok} |",
                  flush=True)
    if a.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
