#!/usr/bin/env python3
"""Reference outputs of llama.cpp on Gemma 3 270M (the base model, Q4_K_M
GGUF; scripts/fetch-gemma3.sh), for tests/unit/test_gemma3_llamacpp.c (and
the numbers in docs/gguf.md).

Runs models/gemma-3-270m-q4_k_m.gguf with llama-cpp-python, twice:

  - the file as it is: llama.cpp's CPU backend multiplies the Q4_K / Q5_0 /
    Q6_K / Q8_0 weights with int8-quantized activations and keeps an f16 KV
    cache;
  - a temporary copy with every tensor dequantized to F32 (gguf.quants) and
    an f32 KV cache: plain f32 math on exactly the weights a compression
    "none" layer store holds, so the only differences left are summation
    order.

and writes, under tests/fixtures/gguf/llamacpp/:

  gemma3_270m_q4_k_m.json                prompts, token ids, greedy paths,
                                         perplexities (the F32 run under "f32"),
                                         and the XXH3-64 of every tensor of the
                                         file dequantized by gguf.quants (F32
                                         little-endian bytes), for a bit-exact
                                         check of the C dequantizers
  gemma3_270m_q4_k_m_logits_last.f32     logits at the last position of
  gemma3_270m_q4_k_m_f32_logits_last.f32 prompt 0, n_vocab little-endian
                                         float32 each

1. Raw completion (a base model continues text; there is no chat template in
   the file): three prompts, tokenized by llama.cpp with BOS added (the
   file's tokenizer.ggml.add_bos_token) and no special-token parsing; 32
   greedy tokens each from an explicit eval/argmax loop (no sampler, no
   repeat penalty, EOS not a stop); the gap between the two best logits at
   each step.
2. Perplexity: PPL_TEXT (the SmolLM2 text plus more paragraphs, over 512
   tokens so that the 512-position sliding window of the local layers is
   exercised: 574 tokens), tokenized with BOS, evaluated in one pass with every
   position's logits; NLL of tokens 1..n-1.

    python3 -m pip install llama-cpp-python gguf numpy xxhash
    python3 tests/gen/gen_gemma3_llamacpp_goldens.py [--model PATH]

Takes a few minutes on 2 cores and about 1.2 GB of temporary disk.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_llamacpp_goldens import PPL_TEXT as SMOLLM2_PPL_TEXT  # noqa: E402
from gen_llamacpp_goldens import (logits_at, perplexity, rel_l2, top2_gap,  # noqa: E402
                                  write_f32_copy, write_goldens)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "gguf", "llamacpp")
DEFAULT_MODEL = os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf")
BASE = "gemma3_270m_q4_k_m"

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n",
    "Once upon a time, in a small village by the sea,",
]
N_GREEDY = 32
N_CTX = 1024

PPL_TEXT = SMOLLM2_PPL_TEXT + (
    "\n\n"
    "The river that runs through the city was once full of boats. Merchants "
    "carried wool, salt and timber down to the coast, and came back with spices, "
    "glass and news from distant ports. When the railway arrived, the boats "
    "became fewer every year, and the old warehouses along the water were turned "
    "into workshops, schools and, later, apartments with large windows.\n\n"
    "A good recipe for bread needs only four things: flour, water, salt and "
    "yeast. The dough is mixed, left to rest, folded a few times and shaped into "
    "a loaf. Baking it in a very hot oven gives a dark crust and a soft inside. "
    "Many bakers say that time matters more than any ingredient, because a slow "
    "rise lets the flavor develop.\n\n"
    "In the mountains the weather can change in minutes. A clear morning may "
    "turn into a storm by the afternoon, with wind, hail and sudden cold. "
    "Experienced walkers start early, carry warm clothes and water, and turn "
    "back when the clouds gather, even if the summit looks close. The mountain "
    "will still be there next week.\n\n"
    "The library opened its doors at nine every morning. Students came to study "
    "for their exams, retired teachers read the newspapers, and small children "
    "listened to stories in a corner full of cushions. The librarian knew almost "
    "everyone by name and could find any book in the building without looking "
    "at the catalog."
)


def plain_cpu_buffers():
    """Makes llama-cpp-python load models without llama.cpp's extra CPU buffer
    types (weights repacked for AMX tiles or interleaved SIMD layouts): on a
    CPU whose cpuid reports AMX that the system does not let it use, the AMX
    matmul dies with SIGILL. The plain CPU kernels compute the same products
    in another order."""
    from llama_cpp import llama_cpp as lib

    if getattr(lib.llama_model_default_params, "_plain", False):
        return
    orig = lib.llama_model_default_params

    def params():
        p = orig()
        p.use_extra_bufts = False
        return p

    params._plain = True
    lib.llama_model_default_params = params


def run_llama(model_path, **extra):
    """Greedy paths after the prompts and the perplexity of PPL_TEXT."""
    plain_cpu_buffers()
    from llama_cpp import Llama

    llm = Llama(model_path=model_path, n_ctx=N_CTX, logits_all=True, n_threads=2,
                verbose=False, seed=0, **extra)
    res = {"n_vocab": llm.n_vocab(), "prompts": []}
    logits_last = None
    for k, text in enumerate(PROMPTS):
        ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        llm.reset()
        llm.eval(ids)
        v = logits_at(llm, llm.n_tokens - 1)
        if k == 0:
            logits_last = v
        greedy, gaps = [], []
        for _ in range(N_GREEDY):
            tok, gap = top2_gap(v)
            greedy.append(tok)
            gaps.append(gap)
            llm.eval([tok])
            v = logits_at(llm, llm.n_tokens - 1)
        res["prompts"].append({
            "text": text,
            "prompt_ids": ids,
            "greedy_ids": greedy,
            "greedy_text": llm.detokenize(greedy, special=True).decode("utf-8", "replace"),
            "greedy_top2_gap": [round(g, 5) for g in gaps],
        })

    ppl_ids = llm.tokenize(PPL_TEXT.encode("utf-8"), add_bos=True, special=False)
    if len(ppl_ids) > N_CTX:
        sys.exit("PPL_TEXT too long for n_ctx")
    if len(ppl_ids) <= 512 + 32:
        sys.exit("PPL_TEXT must pass the 512-position sliding window")
    if llm.detokenize(ppl_ids[1:]).decode("utf-8") != PPL_TEXT:
        sys.exit("llama.cpp does not round-trip PPL_TEXT")
    res["ppl_ids"] = ppl_ids
    res["ppl_nll"], res["ppl"] = perplexity(llm, ppl_ids)
    del llm
    return res, logits_last


def dequant_hashes(path):
    """{tensor: [GGML type name, elements, XXH3-64 hex of the F32 values]}"""
    import gguf
    import xxhash

    out = {}
    for t in gguf.GGUFReader(path).tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype("<f4")
        out[t.name] = [t.tensor_type.name, int(a.size), xxhash.xxh3_64_hexdigest(a.tobytes())]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args()
    if not os.path.exists(args.model):
        sys.exit(f"{args.model} not found: run scripts/fetch-gemma3.sh")

    import llama_cpp

    q, q_logits = run_llama(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        f32_path = os.path.join(tmp, "model-f32.gguf")
        write_f32_copy(args.model, f32_path)
        f, f_logits = run_llama(f32_path, type_k=0, type_v=0)
    for a, b in zip(q["prompts"], f["prompts"]):
        if a["prompt_ids"] != b["prompt_ids"]:
            sys.exit("the F32 copy tokenizes differently")
    if q["ppl_ids"] != f["ppl_ids"]:
        sys.exit("the F32 copy tokenizes PPL_TEXT differently")

    os.makedirs(OUT_DIR, exist_ok=True)
    gold = {
        "model": os.path.basename(args.model),
        "reference": f"llama-cpp-python {llama_cpp.__version__}",
        "llama_cpp_version": llama_cpp.__version__,
        "settings": {"n_ctx": N_CTX, "n_threads": 2, "logits_all": True, "seed": 0,
                     "add_bos": True, "use_extra_bufts": False},
        "n_vocab": q["n_vocab"],
        "dequant_xxh3": dequant_hashes(args.model),
        "prompts": q["prompts"],
        "logits_last_file": f"{BASE}_logits_last.f32",
        "ppl_text": PPL_TEXT,
        "ppl_ids": q["ppl_ids"],
        "ppl_nll": q["ppl_nll"],
        "ppl": q["ppl"],
        "f32": {
            "about": "llama.cpp on a copy of the model with every tensor dequantized to F32, "
                     "f32 KV cache (type_k = type_v = F32): the math of a compression \"none\" store",
            "greedy_ids": [p["greedy_ids"] for p in f["prompts"]],
            "greedy_top2_gap": [p["greedy_top2_gap"] for p in f["prompts"]],
            "logits_last_file": f"{BASE}_f32_logits_last.f32",
            "ppl_nll": f["ppl_nll"],
            "ppl": f["ppl"],
        },
    }
    write_goldens(f"{BASE}.json", gold, q_logits, f_logits)

    print(f"llama-cpp-python {llama_cpp.__version__}")
    for k, (a, b) in enumerate(zip(q["prompts"], f["prompts"])):
        same = 0
        while same < N_GREEDY and a["greedy_ids"][same] == b["greedy_ids"][same]:
            same += 1
        print(f"prompt {k}: {len(a['prompt_ids'])} tokens; as shipped: {a['greedy_text']!r}")
        print(f"  F32 copy: {b['greedy_text']!r}")
        print(f"  {same} of {N_GREEDY} greedy tokens identical; smallest top-2 gap "
              f"{min(a['greedy_top2_gap']):.4f} (shipped), {min(b['greedy_top2_gap']):.4f} (F32)")
    print(f"perplexity over {len(q['ppl_ids'])} tokens: as shipped {q['ppl']:.4f}, "
          f"F32 copy {f['ppl']:.4f}")
    print(f"last-prompt logits rel. difference shipped vs F32 copy {rel_l2(q_logits, f_logits):.3g}")


if __name__ == "__main__":
    main()
