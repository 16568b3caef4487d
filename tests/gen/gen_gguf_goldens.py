#!/usr/bin/env python3
"""Golden files for the GGUF reader (src/source/gguf*.c).

The reference is the PyPI package `gguf` (llama.cpp's own Python reader and
writer) with numpy. Regenerate with:

    python3 -m pip install gguf numpy
    scripts/fetch-default-model.sh        # optional: for the SmolLM2 golden
    python3 tests/gen/gen_gguf_goldens.py

Writes, all small (GGUF files written by gguf.GGUFWriter):

  tests/fixtures/gguf/dequant.gguf       per GGML type T: tensor "T.raw" (random
                                         blocks with sane fp16 scales) and
                                         "T.expected" = gguf.quants.dequantize
  tests/fixtures/gguf/permute.gguf       Q/K matrices before ("caseN.orig") and
                                         after ("caseN.permuted") the llama
                                         converter's row permutation
  tests/fixtures/gguf/tiny_llama.gguf    minimal models with the metadata and
  tests/fixtures/gguf/tiny_qwen2.gguf    tensor names of each architecture
  tests/fixtures/gguf/tiny_qwen3.gguf
  tests/fixtures/gguf/smollm2_q4_1_golden.gguf
                                         a few dequantized rows of the default
                                         model (only if models/ holds it)
  tests/fuzz/corpus/fuzz_gguf/*          seed inputs for the fuzzer

The random generator is seeded: the output is the same on every run.
"""
import math
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures", "gguf")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus", "fuzz_gguf")
MODEL = os.path.join(os.environ.get("AIRLLM_MODELS_DIR", os.path.join(ROOT, "models")),
                     "SmolLM2-135M-Instruct.Q4_1.gguf")

rng = np.random.default_rng(20240611)


def write(path, build):
    """Creates a GGUFWriter for `path`, lets build() fill it, writes it."""
    w = build()
    w.write_header_to_file(path=path)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


# ---------------------------------------------------------------------------
# Dequantization goldens
# ---------------------------------------------------------------------------
def sane_f16(n, signed=True):
    """n fp16 scales: mostly normal values of magnitude 2^-14..2^0, with a few
    zeros and subnormals to exercise the fp16 conversion."""
    mag = np.exp2(rng.uniform(-14, 0, n)).astype(np.float16)
    if signed:
        mag = np.where(rng.random(n) < 0.5, -mag, mag)
    bits = mag.view(np.uint16).copy()
    special = rng.random(n)
    bits[special < 0.03] = 0  # zero
    sub = (special >= 0.03) & (special < 0.08)
    bits[sub] = rng.integers(1, 0x400, sub.sum(), dtype=np.uint16)  # subnormal
    return bits.view(np.uint8).reshape(n, 2)


# Byte offsets of the fp16 scale fields inside one block of each type.
SCALES = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def random_blocks(qtype, n_blocks):
    bs, ts = gguf.GGML_QUANT_SIZES[qtype]
    if qtype == T.F32:
        return rng.standard_normal(n_blocks).astype(np.float32).view(np.uint8)
    if qtype in (T.F16, T.BF16):
        bits = rng.integers(0, 1 << 16, n_blocks, dtype=np.uint32).astype(np.uint16)
        if qtype == T.F16:
            bits = np.where((bits & 0x7C00) == 0x7C00, bits & 0xBFFF, bits)  # no inf/nan
        else:
            bits = np.where((bits & 0x7F80) == 0x7F80, bits & 0xBFFF, bits)
        return bits.astype(np.uint16).view(np.uint8)
    if qtype == T.MXFP4:
        # its own generator, so the blocks of the other types (and the later
        # fixtures) stay what they were before MXFP4 was added
        r = np.random.default_rng(39)
        raw = r.integers(0, 256, (n_blocks, ts), dtype=np.uint8)
        raw[:, 0] = r.integers(0, 200, n_blocks)  # E8M0 exponents, including subnormal scales
        return raw.reshape(-1)
    raw = rng.integers(0, 256, (n_blocks, ts), dtype=np.uint8)
    for off in SCALES[qtype]:
        raw[:, off:off + 2] = sane_f16(n_blocks)
    return raw.reshape(-1)


def gen_dequant():
    types = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
             T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.MXFP4]

    def build():
        w = gguf.GGUFWriter(None, "golden")
        w.add_string("golden.kind", "dequant")
        # the whole type table, to check block and byte sizes of every type
        known = sorted(gguf.GGML_QUANT_SIZES)
        w.add_array("golden.type_ids", [int(t) for t in known])
        w.add_array("golden.type_names", [t.name for t in known])
        w.add_array("golden.block_sizes", [gguf.GGML_QUANT_SIZES[t][0] for t in known])
        w.add_array("golden.type_sizes", [gguf.GGML_QUANT_SIZES[t][1] for t in known])
        for qt in types:
            bs, ts = gguf.GGML_QUANT_SIZES[qt]
            rows, cols = 4, 512  # 4 rows of 512 elements
            n_blocks = rows * cols // bs
            raw = random_blocks(qt, n_blocks).reshape(rows, cols // bs * ts)
            exp = gguf.quants.dequantize(raw, qt).astype(np.float32).reshape(rows, cols)
            assert np.isfinite(exp).all(), qt.name
            w.add_tensor(f"{qt.name}.raw", raw, raw_dtype=qt)
            w.add_tensor(f"{qt.name}.expected", exp)
        return w

    write(os.path.join(FIX, "dequant.gguf"), build)


# ---------------------------------------------------------------------------
# Q/K permutation
# ---------------------------------------------------------------------------
def llama_permute(w, n_head):
    """The converter's permutation, written from its documented behaviour:
    each head's rows are viewed as (2, hd/2) and transposed to (hd/2, 2)."""
    rows = w.shape[0]
    hd = rows // n_head
    rest = w.shape[1:]
    return w.reshape(n_head, 2, hd // 2, *rest).swapaxes(1, 2).reshape(w.shape)


def gen_permute():
    cases = [  # (n_out, n_in, n_head): Q of 4 heads, K of 2 kv heads, a bias
        (32, 12, 4), (16, 12, 2), (48, 1, 3), (8, 5, 1)]

    def build():
        w = gguf.GGUFWriter(None, "golden")
        w.add_uint32("golden.n_cases", len(cases))
        for i, (n_out, n_in, n_head) in enumerate(cases):
            orig = rng.standard_normal((n_out, n_in)).astype(np.float32)
            w.add_uint32(f"case{i}.n_head", n_head)
            w.add_tensor(f"case{i}.orig", orig)
            w.add_tensor(f"case{i}.permuted", np.ascontiguousarray(llama_permute(orig, n_head)))
        return w

    write(os.path.join(FIX, "permute.gguf"), build)


# ---------------------------------------------------------------------------
# Tiny models
# ---------------------------------------------------------------------------
def llama3_rope_factors(theta, head_dim, factor, low, high, orig):
    """Per-frequency factors as the llama converter writes rope_freqs.weight."""
    out = []
    for i in range(0, head_dim, 2):
        freq = 1.0 / (theta ** (i / head_dim))
        wavelen = 2 * math.pi / freq
        if wavelen < orig / high:
            out.append(1.0)
        elif wavelen > orig / low:
            out.append(factor)
        else:
            s = (orig / wavelen - low) / (high - low)
            out.append(1 / ((1 - s) / factor + s))
    return np.array(out, dtype=np.float32)


def tiny_model(arch, *, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab,
               bias=False, qk_norm=False, tied=True, rope_freqs=None, extra=None):
    def build():
        w = gguf.GGUFWriter(None, arch)
        w.add_name(f"tiny-{arch}")
        w.add_context_length(256)
        w.add_embedding_length(n_embd)
        w.add_block_count(n_layer)
        w.add_feed_forward_length(n_ff)
        w.add_head_count(n_head)
        w.add_head_count_kv(n_head_kv)
        if head_dim != n_embd // n_head:
            w.add_key_length(head_dim)
            w.add_value_length(head_dim)
        w.add_layer_norm_rms_eps(1e-6)
        w.add_rope_freq_base(1000000.0 if arch != "llama" else 500000.0)
        if extra:
            extra(w)
        toks = ["<unk>", "<s>", "</s>", "<|eot|>"] + [f"t{i}" for i in range(n_vocab - 4)]
        w.add_tokenizer_model("gpt2" if arch != "llama" else "llama")
        w.add_tokenizer_pre("qwen2" if arch != "llama" else "default")
        w.add_token_list(toks)
        w.add_token_types([3, 3, 3, 3] + [1] * (n_vocab - 4))
        if arch == "llama":
            w.add_token_scores([float(-i) for i in range(n_vocab)])
        else:
            w.add_token_merges(["t 1", "t 2", "t1 0"])
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_eot_token_id(3)
        w.add_add_bos_token(arch == "llama")
        w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")

        def t(name, *shape, dtype=np.float16):
            w.add_tensor(name, (rng.standard_normal(shape) * 0.1).astype(dtype))

        t("token_embd.weight", n_vocab, n_embd)
        for l in range(n_layer):
            p = f"blk.{l}."
            t(p + "attn_norm.weight", n_embd, dtype=np.float32)
            if arch == "llama":
                # the converter stores Q/K permuted; keep the HF order of
                # layer 0 next to it so the un-permuting source can be checked
                q = (rng.standard_normal((n_head * head_dim, n_embd)) * 0.1).astype(np.float16)
                k = (rng.standard_normal((n_head_kv * head_dim, n_embd)) * 0.1).astype(np.float16)
                w.add_tensor(p + "attn_q.weight", np.ascontiguousarray(llama_permute(q, n_head)))
                w.add_tensor(p + "attn_k.weight", np.ascontiguousarray(llama_permute(k, n_head_kv)))
                if l == 0:
                    w.add_tensor("test.attn_q_hf.0", q)
                    w.add_tensor("test.attn_k_hf.0", k)
            else:
                t(p + "attn_q.weight", n_head * head_dim, n_embd)
                t(p + "attn_k.weight", n_head_kv * head_dim, n_embd)
            t(p + "attn_v.weight", n_head_kv * head_dim, n_embd)
            t(p + "attn_output.weight", n_embd, n_head * head_dim)
            if bias:
                t(p + "attn_q.bias", n_head * head_dim, dtype=np.float32)
                t(p + "attn_k.bias", n_head_kv * head_dim, dtype=np.float32)
                t(p + "attn_v.bias", n_head_kv * head_dim, dtype=np.float32)
            if qk_norm:
                t(p + "attn_q_norm.weight", head_dim, dtype=np.float32)
                t(p + "attn_k_norm.weight", head_dim, dtype=np.float32)
            t(p + "ffn_norm.weight", n_embd, dtype=np.float32)
            t(p + "ffn_gate.weight", n_ff, n_embd)
            t(p + "ffn_up.weight", n_ff, n_embd)
            t(p + "ffn_down.weight", n_embd, n_ff)
        t("output_norm.weight", n_embd, dtype=np.float32)
        if not tied:
            t("output.weight", n_vocab, n_embd)
        if rope_freqs is not None:
            w.add_tensor("rope_freqs.weight", rope_freqs)
        return w
    return build


def gen_models():
    # llama: GQA, untied head, Llama 3.1 RoPE scaling via rope_freqs.weight
    freqs = llama3_rope_factors(500000.0, 64, 8.0, 1.0, 4.0, 8192)
    assert ((freqs > 1) & (freqs < 8)).sum() >= 2
    write(os.path.join(FIX, "tiny_llama.gguf"),
          tiny_model("llama", n_embd=128, n_head=2, n_head_kv=1, head_dim=64, n_layer=2,
                     n_ff=64, n_vocab=40, tied=False, rope_freqs=freqs,
                     extra=lambda w: (w.add_vocab_size(40), w.add_rope_dimension_count(64))))
    # qwen2: q/k/v biases, tied embeddings
    write(os.path.join(FIX, "tiny_qwen2.gguf"),
          tiny_model("qwen2", n_embd=32, n_head=4, n_head_kv=2, head_dim=8, n_layer=2,
                     n_ff=48, n_vocab=36, bias=True))
    # qwen3: per-head q/k norms, head_dim != n_embd / n_head
    write(os.path.join(FIX, "tiny_qwen3.gguf"),
          tiny_model("qwen3", n_embd=32, n_head=4, n_head_kv=2, head_dim=16, n_layer=1,
                     n_ff=48, n_vocab=36, qk_norm=True, tied=False))


# ---------------------------------------------------------------------------
# Fuzz seeds
# ---------------------------------------------------------------------------
def gen_corpus():
    os.makedirs(CORPUS, exist_ok=True)

    def all_types():
        w = gguf.GGUFWriter(None, "seed")
        w.add_uint8("a.u8", 200)
        w.add_int8("a.i8", -5)
        w.add_uint16("a.u16", 60000)
        w.add_int16("a.i16", -300)
        w.add_uint32("a.u32", 4000000000)
        w.add_int32("a.i32", -7)
        w.add_float32("a.f32", 0.5)
        w.add_bool("a.bool", True)
        w.add_string("a.str", "hello")
        w.add_uint64("a.u64", 1 << 40)
        w.add_int64("a.i64", -(1 << 40))
        w.add_float64("a.f64", 2.25)
        w.add_array("a.arr_i32", [1, 2, 3])
        w.add_array("a.arr_str", ["x", "yz"])
        w.add_key_value("a.nested", [[1, 2], [3]], V.ARRAY)
        w.add_tensor("t.q8", rng.integers(0, 256, (1, 34), dtype=np.uint8), raw_dtype=T.Q8_0)
        w.add_tensor("t.f32", np.arange(3, dtype=np.float32))
        return w

    def header_only():
        return gguf.GGUFWriter(None, "seed")

    def one_k_tensor():
        w = gguf.GGUFWriter(None, "seed")
        w.add_custom_alignment(64)
        raw = random_blocks(T.Q4_K, 1).reshape(1, -1)
        w.add_tensor("t.q4k", raw, raw_dtype=T.Q4_K)
        return w

    write(os.path.join(CORPUS, "all_value_types.gguf"), all_types)
    write(os.path.join(CORPUS, "header_only.gguf"), header_only)
    write(os.path.join(CORPUS, "q4_k_align64.gguf"), one_k_tensor)
    write(os.path.join(CORPUS, "tiny_qwen2.gguf"),
          tiny_model("qwen2", n_embd=32, n_head=4, n_head_kv=2, head_dim=8, n_layer=1,
                     n_ff=32, n_vocab=8, bias=True))


# ---------------------------------------------------------------------------
# The default model
# ---------------------------------------------------------------------------
def gen_smollm2():
    if not os.path.exists(MODEL):
        print(f"skipping the SmolLM2 golden: {MODEL} not found "
              "(run scripts/fetch-default-model.sh)")
        return
    r = gguf.GGUFReader(MODEL)
    picks = [("blk.0.attn_q.weight", [0, 1, 100, 575]),
             ("blk.29.ffn_down.weight", [0, 287, 575]),
             ("token_embd.weight", [0, 1, 49151])]

    def build():
        w = gguf.GGUFWriter(None, "golden")
        w.add_uint64("golden.file_size", os.path.getsize(MODEL))
        w.add_uint32("golden.n_tensors", len(r.tensors))
        for name, rows in picks:
            t = next(t for t in r.tensors if t.name == name)
            full = gguf.quants.dequantize(t.data, t.tensor_type).reshape(-1, int(t.shape[0]))
            w.add_string(f"{name}.type", t.tensor_type.name)
            w.add_array(f"{name}.rows", rows)
            w.add_tensor(f"{name}.expected", np.ascontiguousarray(full[rows]).astype(np.float32))
        return w

    write(os.path.join(FIX, "smollm2_q4_1_golden.gguf"), build)


def main():
    os.makedirs(FIX, exist_ok=True)
    gen_dequant()
    gen_permute()
    gen_models()
    gen_corpus()
    gen_smollm2()


if __name__ == "__main__":
    sys.exit(main())
