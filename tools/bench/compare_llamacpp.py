#!/usr/bin/env python3
"""airllm.c next to llama.cpp on the same weights, resident in RAM.

Takes a Hugging Face Llama folder (e.g. one written by make_bench_model.py),
writes the same weights as GGUF files in Q8_0 and Q4_0 (with the gguf package,
Q/K rows permuted as llama.cpp's converter does), then measures with the same
thread count:

  - llama.cpp (llama-cpp-python, weights loaded into RAM, no mmap): decode
    tokens/s, prefill tokens/s for each prompt length;
  - airllm.c (`airllm bench`, the whole store resident): the same, for 8bit
    (next to Q8_0) and 4bit (next to Q4_0, also 4.5 bits per weight).

and prints one markdown table with the ratio airllm.c / llama.cpp per row.

    python3 tools/bench/make_bench_model.py /tmp/bench-model
    python3 tools/bench/compare_llamacpp.py /tmp/bench-model --threads 2

The engines take turns, one repetition each, and the best repetition of each
is kept, so a change in the machine's load reaches both.

Needs numpy, gguf and llama-cpp-python built for this CPU's SIMD
(CMAKE_ARGS="-DGGML_NATIVE=ON" pip install llama-cpp-python; on a virtual
machine that reports AMX but cannot run its tile instructions, llama.cpp dies
with SIGILL in tileloadd: build it with the x86 features named instead, e.g.
-DGGML_NATIVE=OFF -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=ON
-DGGML_AVX512_BF16=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF), and build/airllm.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


# ---------------------------------------------------------------------------
# HF folder -> GGUF
# ---------------------------------------------------------------------------

def read_safetensors(folder):
    """name -> float32 array, for every tensor of the folder's shards."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    for fn in files:
        with open(os.path.join(folder, fn), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            base = 8 + n
            for name, t in header.items():
                if name == "__metadata__":
                    continue
                b, e = t["data_offsets"]
                f.seek(base + b)
                raw = f.read(e - b)
                if t["dtype"] == "BF16":
                    a = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
                elif t["dtype"] == "F16":
                    a = np.frombuffer(raw, np.float16).astype(np.float32)
                elif t["dtype"] == "F32":
                    a = np.frombuffer(raw, np.float32)
                else:
                    sys.exit(f"{fn}: {name}: dtype {t['dtype']} is not handled")
                yield name, a.reshape(t["shape"])


def permute_rows(w, n_head):
    """HF's rotate-half Q/K rows to llama.cpp's interleaved order."""
    rows = w.shape[0]
    return (w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:])
             .swapaxes(1, 2).reshape(w.shape))


def add_id_vocab(w, vocab):
    """A vocabulary of the model's size for token ids only, no text."""
    w.add_tokenizer_model("llama")
    w.add_token_list([b"<unk>", b"<s>", b"</s>"] + [f"<t{i}>".encode() for i in range(3, vocab)])
    w.add_token_scores([0.0] * vocab)
    w.add_token_types([2, 3, 3] + [1] * (vocab - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)


def write_gguf(folder, path, qtype):
    import gguf

    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    hidden, n_head = cfg["hidden_size"], cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_head)
    vocab = cfg["vocab_size"]
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(min(cfg.get("max_position_embeddings", 4096), 4096))
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(hidden // n_head)
    w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-5)))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if qtype == gguf.GGMLQuantizationType.Q8_0
                    else gguf.LlamaFileType.MOSTLY_Q4_0)
    add_id_vocab(w, vocab)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight":
             "output_norm.weight", "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
                 "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for name, a in read_safetensors(folder):
        m = re.match(r"model\.layers\.(\d+)\.(.+)\.weight$", name)
        if m:
            out = f"blk.{m.group(1)}.{per_layer[m.group(2)]}.weight"
            if m.group(2) == "self_attn.q_proj":
                a = permute_rows(a, n_head)
            elif m.group(2) == "self_attn.k_proj":
                a = permute_rows(a, n_kv)
        else:
            out = names[name]
        a = np.ascontiguousarray(a, dtype=np.float32)
        if a.ndim == 2 and out != "token_embd.weight":
            w.add_tensor(out, gguf.quants.quantize(a, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(out, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------

class LlamaCpp:
    """llama.cpp (llama-cpp-python) with the weights loaded into RAM, no mmap."""

    def __init__(self, path, threads, prompts, n_gen):
        from llama_cpp import Llama

        self.llm = Llama(model_path=path, n_ctx=max(prompts) + n_gen + 8,
                         n_batch=max(prompts), n_ubatch=max(prompts), n_threads=threads,
                         n_threads_batch=threads, use_mmap=False, verbose=False)
        self.prompts, self.n_gen = prompts, n_gen
        self.rng = np.random.default_rng(1)

    def measure(self):
        """{'tg': tokens/s, 'ppN': tokens/s} of one repetition."""
        llm, res = self.llm, {}
        for p in self.prompts:
            ids = [int(x) for x in self.rng.integers(3, llm.n_vocab(), size=p)]
            llm.reset()
            t0 = time.perf_counter()
            llm.eval(ids)
            res[f"pp{p}"] = p / (time.perf_counter() - t0)
        llm.reset()
        llm.eval([1])
        t0 = time.perf_counter()
        for k in range(self.n_gen):
            llm.eval([3 + k])
        res["tg"] = self.n_gen / (time.perf_counter() - t0)
        return res


def ours(cli, folder, comp, threads, prompts, n_gen, cache):
    """The same figures from `airllm bench` (one repetition), the store fully resident."""
    res = {}
    for p in prompts:
        out = subprocess.run([cli, "bench", folder, "-c", comp, "--ram", "1T", "-t",
                              str(threads), "-p", str(p), "-g", str(n_gen), "-q",
                              "--cache-dir", cache],
                             check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            m = re.match(r"\|\s*(pp\d+|tg\d+)\s*\|\s*([\d.]+)", line)
            if m:
                key = "tg" if m.group(1).startswith("tg") else m.group(1)
                res[key] = max(res.get(key, 0.0), float(m.group(2)))
    return res


def best_of(runs):
    out = {}
    for r in runs:
        for k, v in r.items():
            out[k] = max(out.get(k, 0.0), v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="Hugging Face Llama folder (safetensors)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prompts", default="64,512", help="prefill lengths (default 64,512)")
    ap.add_argument("--gen", type=int, default=16, help="decoded tokens per measurement")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (the best is kept)")
    ap.add_argument("--cli", default=os.path.join(REPO, "build", "airllm"))
    ap.add_argument("--work", help="where the GGUF files and layer stores go (default: a "
                    "temporary folder)")
    args = ap.parse_args()
    import gguf

    prompts = [int(x) for x in args.prompts.split(",")]
    work = args.work or tempfile.mkdtemp(prefix="airllm-vs-llamacpp-")
    os.makedirs(work, exist_ok=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    print(f"model {args.model}, {args.threads} threads, {cpu}\n")
    print("| workload | airllm.c | tokens/s | llama.cpp | tokens/s | ratio |")
    print("|---|---|---:|---|---:|---:|")
    for ours_comp, qname, qtype in (("8bit", "Q8_0", gguf.GGMLQuantizationType.Q8_0),
                                    ("4bit", "Q4_0", gguf.GGMLQuantizationType.Q4_0)):
        path = os.path.join(work, f"model-{qname}.gguf")
        if not os.path.exists(path):
            write_gguf(args.model, path + ".tmp", qtype)
            os.replace(path + ".tmp", path)
        # the two engines take turns, one repetition each, so a change in the
        # machine's load between repetitions reaches both; the best of each is kept
        cache = os.path.join(work, "stores")
        ours(args.cli, args.model, ours_comp, args.threads, [8], 1, cache)  # split first
        lc = LlamaCpp(path, args.threads, prompts, args.gen)
        t_runs, m_runs = [], []
        for _ in range(args.reps):
            t_runs.append(lc.measure())
            m_runs.append(ours(args.cli, args.model, ours_comp, args.threads, prompts,
                               args.gen, cache))
        del lc
        theirs, mine = best_of(t_runs), best_of(m_runs)
        for key in ["tg"] + [f"pp{p}" for p in prompts]:
            what = "decode" if key == "tg" else f"prefill of {key[2:]}"
            a, b = mine.get(key, 0.0), theirs.get(key, 0.0)
            print(f"| resident {what} | {ours_comp} | {a:.1f} | {qname} | {b:.1f} | "
                  f"{a / b if b else 0:.2f} |", flush=True)


if __name__ == "__main__":
    main()
