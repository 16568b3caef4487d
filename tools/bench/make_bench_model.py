#!/usr/bin/env python3
"""Write a random-weight Llama-architecture model for benchmarks (or, with
--experts, a Qwen3-MoE-shaped mixture of experts).

The output folder is a Hugging Face model directory: config.json,
generation_config.json, BF16 weights in sharded safetensors files and
model.safetensors.index.json. There is no tokenizer: benchmarks feed token ids.

Only numpy and the `safetensors` package (for the final check) are needed.
numpy has no bfloat16 type, so the safetensors files are written by hand:

    u64 little-endian N | N bytes of JSON header | raw tensor bytes
    header: {"<name>": {"dtype": "BF16", "shape": [...],
                        "data_offsets": [begin, end]}, ...,
             "__metadata__": {"format": "pt"}}

Offsets are relative to the start of the data section. Weights are uniform
random values (linear: mean 0, std --std; norms: mean 1, std 0.1), generated
and written 4M values at a time, so memory stays at a few tens of MB
whatever the model size.

Usage:
    make_bench_model.py OUT_DIR                    # ~1.5 GB (decimal) model
    make_bench_model.py OUT_DIR --size 3G          # layers chosen to reach ~3 GB
    make_bench_model.py OUT_DIR --hidden 1024 --layers 8 --ff 2816 --vocab 32000
    make_bench_model.py OUT_DIR --experts 64 --top-k 8 --ff 768 --hidden 1024 --layers 12
        # Qwen3MoeForCausalLM: every layer 64 experts of width --ff, top-8,
        # per-head q/k norms; the router's weights have std 0.1
    make_bench_model.py OUT_DIR --gguf-q4-0 --hidden 8192 --ff 28672 --heads 64 \
        --kv-heads 8 --vocab 128256 --layers 26
        # a 70B-shaped model with 26 layers as one GGUF file, OUT_DIR/model-Q4_0.gguf
        # (13.8 GB): random Q4_0 blocks written directly, so no BF16 source of
        # 45 GB is needed; needs the `gguf` package

Sizes (--size) count BF16 bytes; a Q4_0 GGUF is 0.28 of that.
"""

import argparse
import json
import os
import struct
import sys
import time

import numpy as np

CHUNK_ELEMS = 1 << 22  # 4M values (16 MB of float32) per generated chunk


# ---------------------------------------------------------------------------
# float32 -> bfloat16
# ---------------------------------------------------------------------------


def f32_to_bf16_bits(x, inplace=False):
    """float32 array -> uint16 bfloat16 bit patterns, round to nearest even.

    NaNs stay NaN (quiet bit set), infinities and signed zeros are kept.
    With inplace=True the input array is used as scratch (and destroyed).
    """
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    if not inplace:
        x = x.copy()
    nan = np.isnan(x)
    has_nan = bool(nan.any())
    if has_nan:
        nan_bits = ((x[nan].view(np.uint32) >> 16) | 0x0040).astype(np.uint16)
    u = x.view(np.uint32)
    # Add 0x7FFF plus the lowest kept bit: a tie goes to the even neighbour.
    lsb = (u >> 16) & np.uint32(1)
    u += np.uint32(0x7FFF)
    u += lsb
    # The high half of each word is the result.
    hi = u.view(np.uint16)[1::2] if sys.byteorder == "little" else u.view(np.uint16)[0::2]
    if has_nan:
        hi = hi.copy()
        hi[nan] = nan_bits
    return hi


def random_f32(rng, n, center, std):
    """n float32 values, uniform with the given mean and standard deviation.

    Uniform rather than normal because it is several times faster to make: random
    mantissa bits under a fixed exponent give a float in [1, 2).
    """
    u = rng.integers(0, 1 << 32, size=n, dtype=np.uint32)
    u >>= np.uint32(9)
    u |= np.uint32(0x3F800000)
    x = u.view(np.float32)
    x -= np.float32(1.5)  # uniform [-0.5, 0.5): std 1/sqrt(12)
    x *= np.float32(std * 12 ** 0.5)
    if center:
        x += np.float32(center)
    return x


# ---------------------------------------------------------------------------
# Model description
# ---------------------------------------------------------------------------


def tensor_list(h):
    """(name, shape, kind) in file order, HF Llama names."""
    hd = h["hidden"] // h["heads"]
    q, kv = h["heads"] * hd, h["kv_heads"] * hd
    t = [("model.embed_tokens.weight", (h["vocab"], h["hidden"]), "embed")]
    for i in range(h["layers"]):
        p = f"model.layers.{i}."
        t += [
            (p + "input_layernorm.weight", (h["hidden"],), "norm"),
            (p + "self_attn.q_proj.weight", (q, h["hidden"]), "linear"),
            (p + "self_attn.k_proj.weight", (kv, h["hidden"]), "linear"),
            (p + "self_attn.v_proj.weight", (kv, h["hidden"]), "linear"),
            (p + "self_attn.o_proj.weight", (h["hidden"], q), "linear"),
            (p + "post_attention_layernorm.weight", (h["hidden"],), "norm"),
        ]
        if h.get("experts"):  # Qwen3-MoE
            t += [(p + "self_attn.q_norm.weight", (hd,), "norm"),
                  (p + "self_attn.k_norm.weight", (hd,), "norm"),
                  (p + "mlp.gate.weight", (h["experts"], h["hidden"]), "router")]
            for e in range(h["experts"]):
                x = f"{p}mlp.experts.{e}."
                t += [(x + "gate_proj.weight", (h["ff"], h["hidden"]), "linear"),
                      (x + "up_proj.weight", (h["ff"], h["hidden"]), "linear"),
                      (x + "down_proj.weight", (h["hidden"], h["ff"]), "linear")]
            continue
        t += [
            (p + "mlp.gate_proj.weight", (h["ff"], h["hidden"]), "linear"),
            (p + "mlp.up_proj.weight", (h["ff"], h["hidden"]), "linear"),
            (p + "mlp.down_proj.weight", (h["hidden"], h["ff"]), "linear"),
        ]
    t += [("model.norm.weight", (h["hidden"],), "norm"),
          ("lm_head.weight", (h["vocab"], h["hidden"]), "linear")]
    return t


def n_params(h):
    return sum(int(np.prod(s)) for _, s, _ in tensor_list(h))


def layer_params(h):
    hd = h["hidden"] // h["heads"]
    q, kv = h["heads"] * hd, h["kv_heads"] * hd
    mlp = 3 * h["ff"] * h["hidden"]
    if h.get("experts"):
        mlp = mlp * h["experts"] + h["experts"] * h["hidden"] + 2 * hd
    return 2 * h["hidden"] + 2 * q * h["hidden"] + 2 * kv * h["hidden"] + mlp


def parse_size(s):
    s = s.strip().upper().rstrip("B")
    mult = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(float(s))


def config_json(h):
    if h.get("experts"):
        return {
            "architectures": ["Qwen3MoeForCausalLM"],
            "model_type": "qwen3_moe",
            "bos_token_id": 1,
            "eos_token_id": 2,
            "head_dim": h["hidden"] // h["heads"],
            "hidden_act": "silu",
            "hidden_size": h["hidden"],
            "intermediate_size": 4 * h["hidden"],
            "moe_intermediate_size": h["ff"],
            "num_experts": h["experts"],
            "num_experts_per_tok": h["top_k"],
            "norm_topk_prob": True,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "max_position_embeddings": h["ctx"],
            "num_attention_heads": h["heads"],
            "num_hidden_layers": h["layers"],
            "num_key_value_heads": h["kv_heads"],
            "rms_norm_eps": 1e-6,
            "rope_scaling": None,
            "rope_theta": 1000000.0,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "vocab_size": h["vocab"],
        }
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": h["hidden"] // h["heads"],
        "hidden_act": "silu",
        "hidden_size": h["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": h["ff"],
        "max_position_embeddings": h["ctx"],
        "mlp_bias": False,
        "num_attention_heads": h["heads"],
        "num_hidden_layers": h["layers"],
        "num_key_value_heads": h["kv_heads"],
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-5,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": h["vocab"],
    }


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def plan_shards(tensors, shard_bytes):
    """Greedy split of the tensor list into shards of at most ~shard_bytes."""
    shards, cur, size = [], [], 0
    for name, shape, kind in tensors:
        nb = int(np.prod(shape)) * 2
        if cur and size + nb > shard_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, shape, kind))
        size += nb
    if cur:
        shards.append(cur)
    return shards


def header_bytes(shard):
    header, off = {}, 0
    for name, shape, _ in shard:
        nb = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + nb]}
        off += nb
    header["__metadata__"] = {"format": "pt"}
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)  # data section 8-byte aligned
    return hj, off


def write_tensor(f, rng, shape, kind, std):
    n = int(np.prod(shape))
    done = 0
    while done < n:
        m = min(CHUNK_ELEMS, n - done)
        if kind == "norm":
            x = random_f32(rng, m, 1.0, 0.1)
        elif kind == "router":  # logits of order 1: a clear, varied choice of experts
            x = random_f32(rng, m, 0.0, 0.1)
        else:
            x = random_f32(rng, m, 0.0, std)
        f.write(f32_to_bf16_bits(x, inplace=True).tobytes())
        done += m


def write_model(out, h, shard_bytes, seed, std):
    os.makedirs(out, exist_ok=True)
    tensors = tensor_list(h)
    shards = plan_shards(tensors, shard_bytes)
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    rng = np.random.default_rng(seed)
    weight_map, total = {}, 0
    for fname, shard in zip(names, shards):
        hj, data_len = header_bytes(shard)
        path = os.path.join(out, fname)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(hj)))
            f.write(hj)
            for name, shape, kind in shard:
                write_tensor(f, rng, shape, kind, std)
                weight_map[name] = fname
            assert f.tell() == 8 + len(hj) + data_len
        os.replace(tmp, path)
        total += data_len
        print(f"  {fname}: {len(shard)} tensors, {data_len / 1e6:.1f} MB", flush=True)
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config_json(h), f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2}, f, indent=2)
        f.write("\n")
    return names, total


# ---------------------------------------------------------------------------
# GGUF Q4_0 (llama.cpp's names), written tensor by tensor
# ---------------------------------------------------------------------------

GGUF_NAMES = {"model.embed_tokens.weight": "token_embd.weight",
              "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
GGUF_LAYER = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
              "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
              "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
              "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def gguf_name(name):
    if name in GGUF_NAMES:
        return GGUF_NAMES[name]
    _, _, i, rest = name.split(".", 3)
    return f"blk.{i}.{GGUF_LAYER[rest[:-len('.weight')]]}.weight"


def random_q4_0(rng, rows, cols, std):
    """rows x cols of random Q4_0 blocks (32 values in 18 bytes: an f16 scale d
    then 16 bytes of 4-bit q, value (q - 8) * d): uniform q gives values of
    std ~4.6 d, so d = std / 4.6."""
    nb = cols // 32
    b = np.frombuffer(rng.bytes(rows * nb * 18), dtype=np.uint8).reshape(rows, nb, 18).copy()
    b[:, :, 0:2] = np.frombuffer(np.float16(std / 4.6).tobytes(), dtype=np.uint8)
    return b.reshape(rows, nb * 18)


def write_gguf_q4_0(out, h, seed, std):
    """One GGUF file, llama architecture, every matrix Q4_0 and the norms F32,
    with a placeholder vocabulary of the model's size (ids only, no text)."""
    import gguf

    if h.get("experts"):
        raise SystemExit("--gguf-q4-0 writes dense Llama models only")
    if h["hidden"] % 32 or h["ff"] % 32:
        raise SystemExit("--gguf-q4-0 needs --hidden and --ff multiples of 32")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "model-Q4_0.gguf")
    tmp = path + ".tmp"
    w = gguf.GGUFWriter(tmp, "llama")
    hd = h["hidden"] // h["heads"]
    w.add_context_length(h["ctx"])
    w.add_embedding_length(h["hidden"])
    w.add_feed_forward_length(h["ff"])
    w.add_block_count(h["layers"])
    w.add_head_count(h["heads"])
    w.add_head_count_kv(h["kv_heads"])
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    v = h["vocab"]
    w.add_tokenizer_model("llama")
    w.add_token_list([b"<unk>", b"<s>", b"</s>"] + [f"<t{i}>".encode() for i in range(3, v)])
    w.add_token_scores([0.0] * v)
    w.add_token_types([2, 3, 3] + [1] * (v - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    q4 = gguf.GGMLQuantizationType.Q4_0
    tensors = tensor_list(h)
    for name, shape, kind in tensors:
        if kind == "norm":
            w.add_tensor_info(gguf_name(name), shape, np.dtype(np.float32), 4 * shape[0])
        else:
            byte_shape = (shape[0], shape[1] // 32 * 18)
            w.add_tensor_info(gguf_name(name), byte_shape, np.dtype(np.uint8),
                              byte_shape[0] * byte_shape[1], raw_dtype=q4)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    for name, shape, kind in tensors:
        if kind == "norm":
            w.write_tensor_data(random_f32(rng, shape[0], 1.0, 0.1))
        else:
            w.write_tensor_data(random_q4_0(rng, shape[0], shape[1], std))
    w.close()
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------


def verify(out, h, names):
    """Read config + the first and last shard back with safetensors and check shapes."""
    from safetensors import safe_open

    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(out, "model.safetensors.index.json")) as f:
        index = json.load(f)
    want = {name: list(shape) for name, shape, _ in tensor_list(h)}
    assert set(index["weight_map"]) == set(want), "index does not list exactly the model tensors"
    assert cfg["hidden_size"] == h["hidden"] and cfg["num_hidden_layers"] == h["layers"]
    try:
        import torch  # noqa: F401
        framework = "pt"
    except ImportError:
        framework = None
    for fname in sorted({names[0], names[-1]}):
        path = os.path.join(out, fname)
        if framework:
            with safe_open(path, framework="pt") as f:
                for k in f.keys():
                    t = f.get_slice(k)
                    assert list(t.get_shape()) == want[k], (k, t.get_shape(), want[k])
                    assert t.get_dtype() == "BF16", (k, t.get_dtype())
                k = sorted(f.keys())[0]
                v = f.get_slice(k)[0:2].float()  # a few rows, not the whole tensor
                assert bool(v.isfinite().all()) and float(v.abs().max()) > 0, k
        else:  # shapes from the header only
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
            for k, v in header.items():
                if k != "__metadata__":
                    assert v["shape"] == want[k] and v["dtype"] == "BF16", k
        print(f"  verified {fname}" + ("" if framework else " (header only: no torch)"))


def self_test_bf16(with_torch):
    """Rounding check against known values (and torch's conversion, if asked and installed)."""
    x = np.array([1.0, -2.5, 0.0, -0.0, np.inf, -np.inf, 1.00390625, 1.01171875,
                  3.4e38, 1e-40, np.nan], dtype=np.float32)
    b = f32_to_bf16_bits(x)
    # 1.00390625 = 1 + 2^-8 is a tie between 1.0 and 1.0078125: rounds to even 1.0.
    # 1.01171875 = 1 + 3*2^-8 is a tie: rounds to even 1.015625 (0x3F82).
    expect = [0x3F80, 0xC020, 0x0000, 0x8000, 0x7F80, 0xFF80, 0x3F80, 0x3F82]
    assert b[:8].tolist() == expect, [hex(v) for v in b[:8]]
    assert (b[10] & 0x7F80) == 0x7F80 and (b[10] & 0x7F) != 0  # still NaN
    x = random_f32(np.random.default_rng(2), 1 << 16, 1.0, 0.1)
    assert abs(float(x.mean()) - 1.0) < 0.01 and abs(float(x.std()) - 0.1) < 0.01
    if not with_torch:
        return
    try:
        import torch
    except ImportError:
        return
    r = np.random.default_rng(1).standard_normal(1 << 16, dtype=np.float32)
    r[::7] *= np.float32(1e-30)
    ref = torch.from_numpy(r).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(f32_to_bf16_bits(r), ref), "bf16 rounding differs from torch"


def main():
    ap = argparse.ArgumentParser(description="Write a random-weight Llama model (HF format, BF16).")
    ap.add_argument("out", help="output folder")
    ap.add_argument("--size", default="1.5G",
                    help="target weight size in bytes, decimal units (1.5G = 1.5e9); "
                         "picks the layer count when --layers is not given (default 1.5G)")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--ff", type=int, default=5632, help="intermediate_size")
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--ctx", type=int, default=4096, help="max_position_embeddings")
    ap.add_argument("--shard-size", default="500M", help="max bytes per shard (default 500M)")
    ap.add_argument("--std", type=float, default=0.02, help="std of the linear weights")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--experts", type=int, default=0,
                    help="a Qwen3-MoE model with this many experts per layer (width --ff)")
    ap.add_argument("--top-k", type=int, default=8, help="experts per token (with --experts)")
    ap.add_argument("--gguf-q4-0", action="store_true",
                    help="write one GGUF file of random Q4_0 weights (llama.cpp's names) "
                         "instead of BF16 safetensors")
    a = ap.parse_args()

    if a.hidden % a.heads or a.heads % a.kv_heads:
        ap.error("hidden must be divisible by heads, and heads by kv-heads")
    h = dict(hidden=a.hidden, heads=a.heads, kv_heads=a.kv_heads, ff=a.ff, vocab=a.vocab,
             ctx=a.ctx, layers=a.layers or 1, experts=a.experts, top_k=a.top_k)
    if a.layers is None:
        target = parse_size(a.size) // 2
        fixed = n_params(dict(h, layers=0))
        h["layers"] = max(1, round((target - fixed) / layer_params(h)))
    self_test_bf16(with_torch=False)  # numpy only: keeps the writing process small

    n = n_params(h)
    print(f"{'qwen3_moe' if a.experts else 'llama'}: hidden {h['hidden']}, layers {h['layers']}, "
          f"heads {h['heads']}/{h['kv_heads']}, ff {h['ff']}, vocab {h['vocab']}"
          + (f", {a.experts} experts, top-{a.top_k}" if a.experts else ""))
    print(f"  {n / 1e6:.1f} M parameters, {2 * n / 1e9:.3f} GB ({2 * n / 2**30:.3f} GiB) in BF16, "
          f"{2 * layer_params(h) / 1e6:.1f} MB per layer")
    t0 = time.time()
    if a.gguf_q4_0:
        path = write_gguf_q4_0(a.out, h, a.seed, a.std)
        size = os.path.getsize(path)
        dt = time.time() - t0
        print(f"  wrote {path}: {size / 1e9:.3f} GB in {dt:.1f} s "
              f"({size / 1e6 / max(dt, 1e-9):.0f} MB/s)")
        if not a.no_verify:
            import gguf
            r = gguf.GGUFReader(path)
            want = {gguf_name(n): s for n, s, _ in tensor_list(h)}
            got = {t.name: tuple(int(x) for x in reversed(t.shape)) for t in r.tensors}
            assert got == {k: tuple(v) for k, v in want.items()}, "tensor shapes differ"
            print(f"  verified {len(got)} tensors")
        return 0
    names, total = write_model(a.out, h, parse_size(a.shard_size), a.seed, a.std)
    dt = time.time() - t0
    assert total == 2 * n
    print(f"  wrote {len(names)} shards, {total / 1e9:.3f} GB in {dt:.1f} s "
          f"({total / 1e6 / max(dt, 1e-9):.0f} MB/s) to {a.out}")
    if not a.no_verify:
        self_test_bf16(with_torch=True)
        verify(a.out, h, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
