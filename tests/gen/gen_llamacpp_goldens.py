#!/usr/bin/env python3
"""Reference outputs of llama.cpp on the project's default model, for
tests/unit/test_llamacpp_agreement.c (and the numbers in docs/gguf.md).

Runs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-default-model.sh)
with llama-cpp-python, twice:

  - the file as it is: llama.cpp's CPU backend multiplies the Q4_1/Q8_0
    weights with int8-quantized activations and keeps an f16 KV cache;
  - a temporary copy with every tensor dequantized to F32 and an f32 KV
    cache: plain f32 math on exactly the weights a compression "none" layer
    store holds, so the only differences left are summation order.

and writes, under tests/fixtures/gguf/llamacpp/:

  smollm2_q4_1.json                   prompts, token ids, greedy paths,
                                      perplexities (the F32 run under "f32")
  smollm2_q4_1_logits_last.f32        logits at the last prompt position,
  smollm2_q4_1_f32_logits_last.f32    n_vocab little-endian float32 each

1. Chat: the message below rendered with the chat template stored in the file
   (tokenizer.chat_template, read with the gguf package, rendered with
   transformers' Jinja environment) and add_generation_prompt; tokenized by
   llama.cpp (special tokens parsed, no BOS added); 40 greedy tokens from an
   explicit eval/argmax loop (no sampler, no repeat penalty, EOS not a stop);
   the gap between the two best logits at each step.
2. Perplexity: the fixed prose PPL_TEXT, tokenized by llama.cpp without BOS,
   evaluated in one pass with every position's logits; NLL of tokens 1..n-1.

    python3 -m pip install llama-cpp-python gguf transformers numpy
    python3 tests/gen/gen_llamacpp_goldens.py [--model PATH]

Takes a few minutes on 2 cores and about 600 MB of temporary disk.
"""
import argparse
import json
import math
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "gguf", "llamacpp")
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

MESSAGES = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
N_GREEDY = 40

PPL_TEXT = (
    "The old lighthouse stood at the edge of the harbor for more than a century. "
    "Every evening the keeper climbed the narrow stairs, trimmed the wick and "
    "polished the great lens until it shone. Ships that passed in the night saw "
    "the steady beam and knew that the rocks were close, and that the town was "
    "waiting for them on the other side of the bay.\n\n"
    "In the spring, farmers from the valley brought their goods to the market "
    "square. There were baskets of eggs, wheels of cheese, bundles of herbs and "
    "sacks of flour. Children ran between the stalls while their parents argued "
    "about prices, and the baker sold warm bread to anyone who arrived early "
    "enough to find it. By noon most of the tables were empty, and the square "
    "grew quiet again.\n\n"
    "Learning a new language takes patience. At first the words sound strange "
    "and the grammar seems to follow no rule at all. After a few weeks, however, "
    "simple sentences begin to make sense, and a short conversation with a "
    "neighbor becomes possible. The most useful habit is to practice a little "
    "every day, to read books that are slightly too hard, and to accept that "
    "mistakes are part of the process.\n\n"
    "Scientists measure the temperature of the ocean at many depths. The surface "
    "water warms quickly in summer, but the deep water changes very slowly, over "
    "decades rather than months. These measurements help us understand how heat "
    "moves around the planet, how storms form, and why some coasts have mild "
    "winters while others, at the same latitude, are covered in ice."
)


def read_gguf_strings(path):
    """tokenizer.chat_template and the token strings of the bos/eos ids."""
    import gguf

    r = gguf.GGUFReader(path)

    def field(name):
        f = r.fields.get(name)
        if f is None:
            return None
        return f.parts[f.data[0]]

    tmpl = bytes(field("tokenizer.chat_template")).decode("utf-8")
    tok_field = r.fields["tokenizer.ggml.tokens"]

    def token(i):
        return bytes(tok_field.parts[tok_field.data[i]]).decode("utf-8")

    bos = int(field("tokenizer.ggml.bos_token_id")[0])
    eos = int(field("tokenizer.ggml.eos_token_id")[0])
    return tmpl, token(bos), token(eos)


def render_chat(tmpl, bos_token, eos_token):
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        conversations=[MESSAGES],
        chat_template=tmpl,
        add_generation_prompt=True,
        bos_token=bos_token,
        eos_token=eos_token,
    )
    return rendered[0]


def logits_at(llm, i):
    return np.array(llm.scores[i], dtype=np.float32)


def top2_gap(v):
    order = np.argsort(v.astype(np.float64))[::-1]
    return int(order[0]), float(v[order[0]] - v[order[1]])


def perplexity(llm, ids):
    """One pass over ids with every position's logits: the NLL of tokens
    1..n-1 (rounded to 1e-6) and the perplexity."""
    llm.reset()
    llm.eval(ids)
    nll = []
    for i in range(1, len(ids)):
        z = logits_at(llm, i - 1).astype(np.float64)
        m = z.max()
        lse = m + math.log(np.exp(z - m).sum())
        nll.append(lse - z[ids[i]])
    return [round(x, 6) for x in nll], math.exp(sum(nll) / len(nll))


def write_goldens(json_name, gold, q_logits, f_logits):
    """gold as JSON, and the last-prompt logits of both runs as raw float32."""
    with open(os.path.join(OUT_DIR, json_name), "w", encoding="utf-8") as fp:
        json.dump(gold, fp, ensure_ascii=False, indent=1)
        fp.write("\n")
    q_logits.astype("<f4").tofile(os.path.join(OUT_DIR, gold["logits_last_file"]))
    f_logits.astype("<f4").tofile(os.path.join(OUT_DIR, gold["f32"]["logits_last_file"]))


def rel_l2(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def write_f32_copy(src, dst):
    """The model with every tensor dequantized to F32 (metadata copied), so
    that llama.cpp computes plain f32 matrix products on exactly the weights
    the layer store holds with compression "none"."""
    import gguf

    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst, arch)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if name == "general.file_type":
            w.add_key_value(name, int(gguf.LlamaFileType.ALL_F32), f.types[0])
            continue
        sub = f.types[1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(name, f.contents(), f.types[0], sub)
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, np.ascontiguousarray(a))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def run_llama(model_path, prompt_text, **extra):
    """Greedy path after the chat prompt and the perplexity of PPL_TEXT."""
    from llama_cpp import Llama

    llm = Llama(model_path=model_path, n_ctx=1024, logits_all=True, n_threads=2,
                verbose=False, seed=0, **extra)
    res = {"n_vocab": llm.n_vocab()}

    # 1. chat prompt, greedy
    prompt_ids = llm.tokenize(prompt_text.encode("utf-8"), add_bos=False, special=True)
    llm.reset()
    llm.eval(prompt_ids)
    logits_last = logits_at(llm, llm.n_tokens - 1)
    greedy_ids, gaps = [], []
    v = logits_last
    for _ in range(N_GREEDY):
        tok, gap = top2_gap(v)
        greedy_ids.append(tok)
        gaps.append(gap)
        llm.eval([tok])
        v = logits_at(llm, llm.n_tokens - 1)
    res["prompt_ids"] = prompt_ids
    res["greedy_ids"] = greedy_ids
    res["greedy_text"] = llm.detokenize(greedy_ids, special=True).decode("utf-8", "replace")
    res["greedy_top2_gap"] = [round(g, 5) for g in gaps]

    # 2. perplexity, one pass over every position
    ppl_ids = llm.tokenize(PPL_TEXT.encode("utf-8"), add_bos=False, special=False)
    if len(ppl_ids) + 1 > 1024:
        sys.exit("PPL_TEXT too long for n_ctx")
    if llm.detokenize(ppl_ids).decode("utf-8") != PPL_TEXT:
        sys.exit("llama.cpp does not round-trip PPL_TEXT")
    res["ppl_ids"] = ppl_ids
    res["ppl_nll"], res["ppl"] = perplexity(llm, ppl_ids)
    del llm
    return res, logits_last


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args()
    if not os.path.exists(args.model):
        sys.exit(f"{args.model} not found: run scripts/fetch-default-model.sh")

    import llama_cpp

    tmpl, bos_token, eos_token = read_gguf_strings(args.model)
    prompt_text = render_chat(tmpl, bos_token, eos_token)

    # llama.cpp as shipped: Q4_1 x int8 activations, f16 KV cache
    q, q_logits = run_llama(args.model, prompt_text)
    # llama.cpp on the dequantized weights: f32 products, f32 KV cache
    with tempfile.TemporaryDirectory() as tmp:
        f32_path = os.path.join(tmp, "model-f32.gguf")
        write_f32_copy(args.model, f32_path)
        f, f_logits = run_llama(f32_path, prompt_text, type_k=0, type_v=0)
    for k in ("prompt_ids", "ppl_ids"):
        if f[k] != q[k]:
            sys.exit(f"{k}: the F32 copy tokenizes differently")

    os.makedirs(OUT_DIR, exist_ok=True)
    gold = {
        "model": os.path.basename(args.model),
        "reference": f"llama-cpp-python {llama_cpp.__version__}",
        "llama_cpp_version": llama_cpp.__version__,
        "settings": {"n_ctx": 1024, "n_threads": 2, "logits_all": True, "seed": 0},
        "n_vocab": q["n_vocab"],
        "messages": MESSAGES,
        "prompt_text": prompt_text,
        "prompt_ids": q["prompt_ids"],
        "greedy_ids": q["greedy_ids"],
        "greedy_text": q["greedy_text"],
        "greedy_top2_gap": q["greedy_top2_gap"],
        "logits_last_file": "smollm2_q4_1_logits_last.f32",
        "ppl_text": PPL_TEXT,
        "ppl_ids": q["ppl_ids"],
        "ppl_nll": q["ppl_nll"],
        "ppl": q["ppl"],
        "f32": {
            "about": "llama.cpp on a copy of the model with every tensor dequantized to F32, "
                     "f32 KV cache (type_k = type_v = F32): the math of a compression \"none\" store",
            "greedy_ids": f["greedy_ids"],
            "greedy_top2_gap": f["greedy_top2_gap"],
            "logits_last_file": "smollm2_q4_1_f32_logits_last.f32",
            "ppl_nll": f["ppl_nll"],
            "ppl": f["ppl"],
        },
    }
    write_goldens("smollm2_q4_1.json", gold, q_logits, f_logits)

    same = 0
    while same < N_GREEDY and q["greedy_ids"][same] == f["greedy_ids"][same]:
        same += 1
    print(f"llama-cpp-python {llama_cpp.__version__}")
    print(f"prompt: {len(q['prompt_ids'])} tokens; greedy: {q['greedy_text']!r}")
    for name, r in (("Q4_1", q), ("F32 copy", f)):
        gaps = r["greedy_top2_gap"]
        print(f"{name}: smallest top-2 gap on the greedy path {min(gaps):.4f} "
              f"(step {int(np.argmin(gaps))}); perplexity over {len(r['ppl_ids'])} tokens "
              f"{r['ppl']:.4f}")
    print(f"Q4_1 vs F32 copy: {same} of {N_GREEDY} greedy tokens identical, last-prompt "
          f"logits rel. difference {rel_l2(q_logits, f_logits):.3g}")


if __name__ == "__main__":
    main()
