#!/usr/bin/env python3
"""Decode speed of llama.cpp on the same weight shapes as tools/bench/bench_kernels.c,
for the comparison in docs/kernels.md.

Writes a random-weight llama GGUF of two 7B-shaped layers (dim 4096, ffn 11008,
32 heads, a 259-token byte vocabulary so the head is negligible) with the
layer matrices in Q8_0 or Q4_0, loads it with llama-cpp-python and times
one-token evaluations: tokens/s of a decode step over the same 14 matrices
(404 M weights) that bench_kernels' decode table sweeps per token.

    CMAKE_ARGS="-DGGML_NATIVE=ON" pip install llama-cpp-python gguf numpy
    python3 tests/gen/bench_llamacpp.py --threads 1,2 [--bench build/bench_kernels]

With --bench, also runs our benchmark and prints the ratio ours / llama.cpp
for Q8 vs Q8_0 and NF4 vs Q4_0 (both 4.5 bits per weight).
"""
import argparse
import os
import re
import subprocess
import tempfile
import time

import numpy as np
import gguf

DIM, FFN, LAYERS, HEADS, VOCAB = 4096, 11008, 2, 32, 259


def write_gguf(path, qtype, rng):
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(512)
    w.add_embedding_length(DIM)
    w.add_feed_forward_length(FFN)
    w.add_block_count(LAYERS)
    w.add_head_count(HEADS)
    w.add_head_count_kv(HEADS)
    w.add_rope_dimension_count(DIM // HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if qtype == gguf.GGMLQuantizationType.Q8_0
                    else gguf.LlamaFileType.MOSTLY_Q4_0)
    tokens = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{i:02X}>".encode() for i in range(256)]
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * VOCAB)
    w.add_token_types([2, 3, 3] + [6] * 256)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def mat(name, n_out, n_in, q=True):
        a = (rng.standard_normal((n_out, n_in), dtype=np.float32) * 0.02).astype(np.float32)
        if q:
            w.add_tensor(name, gguf.quants.quantize(a, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, a)

    mat("token_embd.weight", VOCAB, DIM, q=False)
    for i in range(LAYERS):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(DIM, dtype=np.float32))
        w.add_tensor(p + "ffn_norm.weight", np.ones(DIM, dtype=np.float32))
        for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
            mat(p + t + ".weight", DIM, DIM)
        mat(p + "ffn_gate.weight", FFN, DIM)
        mat(p + "ffn_up.weight", FFN, DIM)
        mat(p + "ffn_down.weight", DIM, FFN)
    w.add_tensor("output_norm.weight", np.ones(DIM, dtype=np.float32))
    mat("output.weight", VOCAB, DIM, q=False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def decode_tps(path, threads, n_tok, reps):
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=512, n_batch=32, n_threads=threads,
                n_threads_batch=threads, verbose=False, use_mmap=False)
    rates = []
    for _ in range(reps):
        llm.reset()
        llm.eval([1])  # warm-up token
        t0 = time.perf_counter()
        for k in range(n_tok):
            llm.eval([3 + (k % 256)])
        rates.append(n_tok / (time.perf_counter() - t0))
    del llm
    return float(np.mean(rates)), float(np.std(rates))


def ours(bench, threads):
    out = subprocess.run([bench, "--threads", ",".join(map(str, threads)), "--reps", "5"],
                         check=True, capture_output=True, text=True).stdout
    print(out, flush=True)
    res = {}
    for line in out.splitlines():
        m = re.match(r"\|\s*(8bit|4bit)\s*\|\s*[\d.]+\s*\|\s*(\d+)\s*\|\s*([\d.]+)", line)
        if m:
            res[(m.group(1), int(m.group(2)))] = float(m.group(3))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--bench", help="path of bench_kernels, to print ours / llama.cpp")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    rng = np.random.default_rng(0)
    mine = ours(args.bench, threads) if args.bench else {}
    print("| llama.cpp format | ours | threads | llama.cpp tokens/s | ours tokens/s | ours / llama.cpp |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for qname, qtype, our in (("Q8_0", gguf.GGMLQuantizationType.Q8_0, "8bit"),
                                  ("Q4_0", gguf.GGMLQuantizationType.Q4_0, "4bit")):
            path = os.path.join(d, f"bench-{qname}.gguf")
            write_gguf(path, qtype, rng)
            for t in threads:
                mean, sd = decode_tps(path, t, args.tokens, args.reps)
                o = mine.get((our, t))
                ratio = f"{o / mean:.2f}" if o else "-"
                print(f"| {qname} | {our} | {t} | {mean:.2f} ± {sd:.2f} | "
                      f"{o if o else '-'} | {ratio} |", flush=True)
            os.remove(path)


if __name__ == "__main__":
    main()
