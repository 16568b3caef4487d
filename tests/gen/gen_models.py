#!/usr/bin/env python3
"""Generate the reference test models and their golden outputs.

For each supported architecture (llama, mistral, qwen2, qwen3, gemma2,
gemma3 (text)) this writes a
tiny random-weight model in the Hugging Face directory format (config.json,
generation_config.json, BF16 weights as 2-3 safetensors shards plus
model.safetensors.index.json) and a golden.json computed with transformers:
the weights are loaded back as float32 (BF16 values upcast exactly) and the
forward pass runs in float32 on the CPU with the eager attention code.

It also writes tests/fixtures/models/llama_single (the llama model as one
unsharded model.safetensors) and tests/fixtures/models/broken/<case>, tiny
models that each carry exactly one defect, for the loader's error tests.

Usage:
    python3 tests/gen/gen_models.py            # (re)generate everything
    python3 tests/gen/gen_models.py --check    # re-verify the fixtures on disk
    python3 tests/gen/gen_models.py --measure  # fp32-vs-fp64 and bug-size table
    python3 tests/gen/gen_models.py --only gemma2 gemma3   # just these models

Everything is deterministic: fixed seeds, fixed prompts. The format of every
file written here is described in tests/gen/README.md; the C tests rely on it.
"""

import argparse
import json
import math
import os
import shutil
import struct
import sys
import tempfile

import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "models")

N_PROMPT = 12
N_GEN = 32
STEP_LOGITS_AT = (0, 15, 31)
# A greedy step is accepted when top1 - top2 >= GAP_REL * max|logit| at that
# step: 5x the 1e-3 that would do, to leave room for the C side's different
# summation order (fp32 vs fp64 differences are ~1e-6, see docs/test-models.md).
GAP_REL = 5e-3
# A random model easily falls into repeating one token; ask for a varied
# greedy path so that KV-cache positions are exercised with changing inputs.
MIN_DISTINCT = 6
MAX_SEED_TRIES = 60
SHARD_SIZE = "600KB"  # ~1.3 MB of BF16 weights -> 3 shards

# ---------------------------------------------------------------------------
# Model specifications
# ---------------------------------------------------------------------------
#
# "layout" says how config.json is written:
#   classic : rope_theta / rope_scaling at top level, "torch_dtype" - the form
#             found in checkpoints on the hub (written by transformers 4.x).
#   v5      : "rope_parameters" {rope_theta, rope_type, ...}, "dtype" - the
#             form transformers >= 5 writes. Kept for one model (mistral) so
#             the C config parser is tested on both.

COMMON = dict(
    hidden_size=128,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=352,
    vocab_size=512,
    max_position_embeddings=256,
    hidden_act="silu",
)

SPECS = {
    "llama": dict(
        cls_config=LlamaConfig,
        cls_model=LlamaForCausalLM,
        seed=1000,
        layout="classic",
        config=dict(
            COMMON,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
            tie_word_embeddings=False,
            bos_token_id=1,
            eos_token_id=[2, 3],
        ),
        gen_eos=[2, 4, 5],
    ),
    "mistral": dict(
        cls_config=MistralConfig,
        cls_model=MistralForCausalLM,
        seed=2000,
        layout="v5",
        config=dict(
            COMMON,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            sliding_window=None,
            tie_word_embeddings=False,
            bos_token_id=1,
            eos_token_id=2,
        ),
        gen_eos=2,
    ),
    "qwen2": dict(
        cls_config=Qwen2Config,
        cls_model=Qwen2ForCausalLM,
        seed=3000,
        layout="classic",
        config=dict(
            COMMON,
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
            tie_word_embeddings=True,
            use_sliding_window=False,
            sliding_window=None,
            bos_token_id=1,
            eos_token_id=2,
        ),
        gen_eos=[2, 3],
        # Tied embeddings make a random model repeat its input token forever.
        # A small embedding and a large final norm (as in real tied models)
        # give a varied greedy path with logits of the same size.
        init=dict(embed_std=0.05, final_norm_scale=4.0),
    ),
    "qwen3": dict(
        cls_config=Qwen3Config,
        cls_model=Qwen3ForCausalLM,
        seed=4000,
        layout="classic",
        config=dict(
            COMMON,
            head_dim=48,
            intermediate_size=320,  # keeps the folder ~1.5 MB with the wider attention
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
            attention_bias=False,
            tie_word_embeddings=False,
            use_sliding_window=False,
            sliding_window=None,
            bos_token_id=1,
            eos_token_id=2,
        ),
        gen_eos=[2, 3],
    ),
}

# Gemma: the settings that differ from Llama are all switched on, with values
# chosen so that getting one of them wrong moves the logits well past the
# tolerance: soft-caps near the size of the scores and logits (real models
# use 50 / 30, which random logits never reach), query_pre_attn_scalar !=
# head_dim, a sliding window shorter than prompt + generation, distinct
# local and global RoPE bases (and linear scaling on the global layers, as
# Gemma 3 4B and larger have). Norm weights are offsets (the layer multiplies
# by 1 + w).
GEMMA_COMMON = dict(
    hidden_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    intermediate_size=352,
    vocab_size=512,
    max_position_embeddings=256,
    hidden_activation="gelu_pytorch_tanh",
    rms_norm_eps=1e-6,
    query_pre_attn_scalar=64,
    sliding_window=8,
    tie_word_embeddings=True,
    bos_token_id=2,
    eos_token_id=1,
    pad_token_id=0,
)

SPECS.update({
    "gemma2": dict(
        cls_config=Gemma2Config,
        cls_model=Gemma2ForCausalLM,
        seed=5000,
        # the hub's Gemma 2 configs: no layer_types (one global layer in 2)
        layout="classic",
        drop_keys=["layer_types"],
        config=dict(
            GEMMA_COMMON,
            num_hidden_layers=4,
            rope_theta=10000.0,
            attn_logit_softcapping=2.0,
            final_logit_softcapping=10.0,
            # untied here (the lm_head path); gemma3 is tied, like the real models
            tie_word_embeddings=False,
        ),
        gen_eos=[1, 7],
        init=dict(norm_offset=True),
    ),
    "gemma3": dict(
        cls_config=Gemma3TextConfig,
        cls_model=Gemma3ForCausalLM,
        seed=6000,
        layout="v5",
        config=dict(
            GEMMA_COMMON,
            num_hidden_layers=4,
            layer_types=["sliding_attention", "sliding_attention", "full_attention",
                         "sliding_attention"],
            rope_parameters={
                "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
            },
            attn_logit_softcapping=None,
            final_logit_softcapping=None,
        ),
        gen_eos=[1, 7],
        init=dict(norm_offset=True, embed_std=0.05, final_norm_scale=4.0),
    ),
})

# Weight scales (standard deviations). Norm weights are 1 + 0.1*randn.
STD_EMBED = 0.25    # also the tied lm_head of qwen2
STD_LM_HEAD = 0.25  # logits ~ 0.25*sqrt(128) ~ 3 std: not flat
STD_ATTN = 0.08     # q/k/v/o: attention scores of order 1, not uniform
STD_MLP = 0.06
STD_BIAS = 0.1
STD_NORM = 0.1


def build_config(spec):
    kw = dict(spec["config"])
    if "rope_parameters" in kw:  # already in the transformers 5 form
        return spec["cls_config"](**kw)
    # transformers >= 5 takes the rope settings as one dict.
    rp = {"rope_theta": kw.pop("rope_theta")}
    scaling = kw.pop("rope_scaling", None)
    if scaling:
        rp.update(scaling)
    else:
        rp["rope_type"] = "default"
    kw["rope_parameters"] = rp
    return spec["cls_config"](**kw)


def init_weights(model, seed, embed_std=STD_EMBED, final_norm_scale=1.0, norm_offset=False):
    """Overwrite every parameter with seeded random values (in place).
    norm_offset: the model multiplies by (1 + w) (Gemma), so w = multiplier - 1."""
    g = torch.Generator().manual_seed(seed)
    off = 1.0 if norm_offset else 0.0
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            shape = p.shape
            if name == "model.norm.weight":
                v = final_norm_scale * (1.0 + STD_NORM * torch.randn(shape, generator=g)) - off
            elif name.endswith("norm.weight"):
                v = 1.0 + STD_NORM * torch.randn(shape, generator=g) - off
            elif name.endswith(".bias"):
                v = STD_BIAS * torch.randn(shape, generator=g)
            elif "embed_tokens" in name:
                v = embed_std * torch.randn(shape, generator=g)
            elif name.startswith("lm_head"):
                v = STD_LM_HEAD * torch.randn(shape, generator=g)
            elif ".self_attn." in name:
                v = STD_ATTN * torch.randn(shape, generator=g)
            elif ".mlp." in name:
                v = STD_MLP * torch.randn(shape, generator=g)
            else:
                raise RuntimeError(f"no init rule for {name}")
            p.copy_(v)


def prompt_for(name, vocab, bos):
    """12 fixed token ids: BOS then 11 seeded ids in [8, vocab)."""
    g = torch.Generator().manual_seed(77 + sum(ord(c) for c in name))
    rest = torch.randint(8, vocab, (N_PROMPT - 1,), generator=g).tolist()
    return [bos] + rest


# ---------------------------------------------------------------------------
# config.json layout
# ---------------------------------------------------------------------------


def rewrite_config_classic(path, drop_keys=()):
    """Turn a transformers-5 config.json into the classic hub layout."""
    with open(path) as f:
        cfg = json.load(f)
    out = {}
    for k, v in cfg.items():
        if k in drop_keys:
            continue
        if k == "rope_parameters":
            rp = dict(v)
            out["rope_theta"] = rp.pop("rope_theta")
            out["rope_scaling"] = None if rp.get("rope_type", "default") == "default" else rp
        elif k == "dtype":
            out["torch_dtype"] = v
        else:
            out[k] = v
    with open(path, "w") as f:
        json.dump(out, f, indent=2, sort_keys=True)
        f.write("\n")


def write_generation_config(d, spec, cfg):
    gc = GenerationConfig(bos_token_id=cfg.bos_token_id, eos_token_id=spec["gen_eos"])
    gc.save_pretrained(d)


# ---------------------------------------------------------------------------
# Reference computations
# ---------------------------------------------------------------------------


def load(d, dtype=torch.float32):
    m = AutoModelForCausalLM.from_pretrained(d, dtype=dtype, attn_implementation="eager")
    m.eval()
    return m


@torch.no_grad()
def full_logits(model, ids):
    """Logits at every position from one forward without cache: (T, vocab)."""
    x = torch.tensor([ids], dtype=torch.long)
    return model(input_ids=x, use_cache=False).logits[0]


@torch.no_grad()
def greedy_manual(model, prompt):
    """Greedy decoding by full recompute (no cache). Returns ids, step logits, gaps."""
    ids = list(prompt)
    out, steps, gaps, rel = [], {}, [], []
    for step in range(N_GEN):
        logits = full_logits(model, ids)[-1]
        top = torch.topk(logits, 2)
        gaps.append(float(top.values[0] - top.values[1]))
        rel.append(gaps[-1] / float(logits.abs().max()))
        tok = int(top.indices[0])
        if step in STEP_LOGITS_AT:
            steps[step] = logits.clone()
        out.append(tok)
        ids.append(tok)
    return out, steps, gaps, rel


@torch.no_grad()
def greedy_generate(model, prompt):
    x = torch.tensor([prompt], dtype=torch.long)
    # No EOS at all, so exactly N_GEN tokens come out even when the greedy
    # path meets an EOS id (the model's generation_config would stop there).
    model.generation_config.eos_token_id = None
    gc = GenerationConfig(
        do_sample=False,
        max_new_tokens=N_GEN,
        min_new_tokens=0,
        eos_token_id=None,
        pad_token_id=0,
        bos_token_id=None,
        use_cache=True,
    )
    y = model.generate(x, attention_mask=torch.ones_like(x), generation_config=gc)
    out = y[0, len(prompt):].tolist()
    assert len(out) == N_GEN, f"generate() stopped after {len(out)} tokens"
    return out


def f32(x):
    """A float32 value as a short decimal that reads back to the same float32."""
    return float(f"{float(x):.9g}")


def f32_list(t):
    return [f32(v) for v in t.tolist()]


def llama3_changes_frequencies(cfg):
    """Check that llama3 rope scaling actually moves some frequencies, in all regimes."""
    rp = cfg.rope_parameters
    hd = cfg.head_dim
    inv = [rp["rope_theta"] ** (-(2 * i) / hd) for i in range(hd // 2)]
    lo_wl = rp["original_max_position_embeddings"] / rp["low_freq_factor"]
    hi_wl = rp["original_max_position_embeddings"] / rp["high_freq_factor"]
    kept = scaled = smoothed = 0
    for f in inv:
        wl = 2 * math.pi / f
        if wl < hi_wl:
            kept += 1
        elif wl > lo_wl:
            scaled += 1
        else:
            smoothed += 1
    return kept, smoothed, scaled


def check_loaded_rope(model, cfg):
    """The model read back from disk must use the rope settings we meant."""
    if "full_attention" in cfg.rope_parameters:  # gemma3: one RoPE per layer type
        assert model.config.rope_parameters == cfg.rope_parameters, model.config.rope_parameters
        rot = model.model.rotary_emb
        hd = rot.full_attention_inv_freq.numel() * 2
        for kind, rp in cfg.rope_parameters.items():
            want = 1.0 / rp["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
            if rp["rope_type"] == "linear":
                want = want / rp["factor"]
            got = getattr(rot, f"{kind}_inv_freq").float()
            assert torch.allclose(got, want, rtol=1e-6, atol=0), f"{kind} rope not as configured"
        assert model.config.layer_types == cfg.layer_types
        return
    want = cfg.rope_parameters
    got = model.config.rope_parameters
    assert got["rope_theta"] == want["rope_theta"], (got, want)
    assert got.get("rope_type", "default") == want.get("rope_type", "default"), (got, want)
    hd = model.model.rotary_emb.inv_freq.numel() * 2
    plain = 1.0 / want["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    same = torch.allclose(model.model.rotary_emb.inv_freq.float(), plain, rtol=1e-6, atol=0)
    assert same == (want.get("rope_type", "default") == "default"), "rope scaling not applied"


# ---------------------------------------------------------------------------
# Reference models
# ---------------------------------------------------------------------------


def save_model(model, cfg, spec, d, shard):
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    m = model.to(torch.bfloat16)
    if shard:
        m.save_pretrained(d, max_shard_size=SHARD_SIZE, safe_serialization=True)
    else:
        m.save_pretrained(d, max_shard_size="1GB", safe_serialization=True)
    write_generation_config(d, spec, cfg)
    if spec["layout"] == "classic":
        rewrite_config_classic(os.path.join(d, "config.json"), spec.get("drop_keys", ()))
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)


def important_config(name, cfg, spec):
    rp = cfg.rope_parameters
    hd = cfg.head_dim if getattr(cfg, "head_dim", None) else cfg.hidden_size // cfg.num_attention_heads
    if "full_attention" in rp:  # gemma3: summarized by the global layers' RoPE
        rp = rp["full_attention"]
    c = {
        "architecture": spec["cls_model"].__name__,
        "config_layout": spec["layout"],
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": hd,
        "intermediate_size": cfg.intermediate_size,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": rp["rope_theta"],
        "rope_scaling": None if rp.get("rope_type", "default") == "default" else
        {k: v for k, v in rp.items() if k != "rope_theta"},
        "tie_word_embeddings": bool(cfg.tie_word_embeddings),
        "attention_bias": name == "qwen2",
        "qk_norm": name == "qwen3",
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "generation_eos_token_id": spec["gen_eos"],
        "weights_dtype": "BF16",
        "compute_dtype": "float32",
    }
    if name.startswith("gemma"):
        c["qk_norm"] = name == "gemma3"
        c["rope_parameters"] = cfg.rope_parameters
        c["layer_types"] = cfg.layer_types
        for k in ("sliding_window", "query_pre_attn_scalar", "attn_logit_softcapping",
                  "final_logit_softcapping", "hidden_activation"):
            c[k] = getattr(cfg, k)
    return c


def write_golden(path, golden):
    """One top-level key per line; values compact. Still plain JSON."""
    keys = ["prompt_ids", "logits_last", "logits_all", "greedy_ids", "greedy_step_logits",
            "min_top2_gap", "config", "reference"]
    assert set(golden) == set(keys)
    with open(path, "w") as f:
        f.write("{\n")
        for i, k in enumerate(keys):
            sep = "," if i + 1 < len(keys) else ""
            f.write(f"{json.dumps(k)}: {json.dumps(golden[k], separators=(',', ':'))}{sep}\n")
        f.write("}\n")


def make_reference(name, spec):
    d = os.path.join(OUT, name)
    cfg = build_config(spec)
    prompt = prompt_for(name, cfg.vocab_size, cfg.bos_token_id)
    assert len(prompt) == N_PROMPT and all(0 <= t < cfg.vocab_size for t in prompt)

    if cfg.rope_parameters.get("rope_type") == "llama3":
        kept, smoothed, scaled = llama3_changes_frequencies(cfg)
        print(f"  llama3 rope: {kept} freqs kept, {smoothed} smoothed, {scaled} scaled by 1/factor")
        assert kept and smoothed and scaled, "llama3 scaling must exercise all three regimes"

    for attempt in range(MAX_SEED_TRIES):
        seed = spec["seed"] + attempt
        torch.manual_seed(seed)
        model = spec["cls_model"](cfg)
        init_weights(model, seed, **spec.get("init", {}))
        save_model(model, cfg, spec, d, shard=True)
        ref = load(d)
        check_loaded_rope(ref, cfg)
        ids, steps, gaps, rel = greedy_manual(ref, prompt)
        if min(rel) >= GAP_REL and len(set(ids)) >= MIN_DISTINCT:
            break
        print(f"  seed {seed}: min relative top-2 gap {min(rel):.2e} (need {GAP_REL:g}), "
              f"{len(set(ids))} distinct tokens (need {MIN_DISTINCT}), re-seeding")
    else:
        raise RuntimeError(f"{name}: no seed with a clear greedy path")

    gen_ids = greedy_generate(ref, prompt)
    assert gen_ids == ids, f"{name}: generate() with cache {gen_ids} != manual loop {ids}"
    la = full_logits(ref, prompt)
    assert torch.equal(la[-1], steps[0]), "step-0 logits must equal the last prompt logits"

    golden = {
        "prompt_ids": prompt,
        "logits_last": f32_list(la[-1]),
        "logits_all": [f32_list(row) for row in la],
        "greedy_ids": ids,
        "greedy_step_logits": [f32_list(steps[s]) for s in STEP_LOGITS_AT],
        "min_top2_gap": f32(min(gaps)),
        "config": important_config(name, cfg, spec),
        "reference": {"transformers": transformers.__version__, "torch": torch.__version__},
    }
    write_golden(os.path.join(d, "golden.json"), golden)
    print(f"  {name}: seed {seed}, min top-2 gap {min(gaps):.4f} "
          f"(relative {min(rel):.2e}), logit max |x| {float(la.abs().max()):.2f}, "
          f"{len(set(ids))} distinct greedy tokens")
    return model, cfg, spec


def make_single(name, spec):
    """llama_single: the llama reference saved as one model.safetensors."""
    src = os.path.join(OUT, name)
    d = os.path.join(OUT, name + "_single")
    model = load(src, dtype=torch.bfloat16)  # the exact BF16 weights
    cfg = model.config
    save_model(model, cfg, spec, d, shard=False)
    shutil.copyfile(os.path.join(src, "golden.json"), os.path.join(d, "golden.json"))
    assert not os.path.exists(os.path.join(d, "model.safetensors.index.json"))
    # Same tensors, same bytes.
    a, b = load(src, torch.bfloat16).state_dict(), load(d, torch.bfloat16).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------
# Raw safetensors reading/writing (for the broken cases)
# ---------------------------------------------------------------------------


def st_read(path):
    """Return (header dict, data bytes) of a safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    return header, blob[8 + n:]


def st_tensors(path):
    header, data = st_read(path)
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = (v["dtype"], v["shape"], data[b:e])
    return out


def st_write(path, tensors, metadata=None):
    """tensors: {name: (dtype string, shape, raw bytes)}, written in name order."""
    header, offset, parts = {}, 0, []
    for k in sorted(tensors):
        dtype, shape, raw = tensors[k]
        header[k] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        parts.append(raw)
        offset += len(raw)
    header["__metadata__"] = metadata or {"format": "pt"}
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for p in parts:
            f.write(p)


def bf16_bytes(t):
    return t.to(torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes()


# ---------------------------------------------------------------------------
# Broken models
# ---------------------------------------------------------------------------

BROKEN_SHARDS = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]


def broken_base():
    cfg = LlamaConfig(
        hidden_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, vocab_size=64, max_position_embeddings=256, rms_norm_eps=1e-5,
        rope_parameters={"rope_theta": 10000.0, "rope_type": "llama3", "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64},
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=[2, 3])
    torch.manual_seed(9000)
    model = LlamaForCausalLM(cfg)
    init_weights(model, 9000)
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    # Shard 1: embeddings + attention, shard 2: the rest. Fixed split so the
    # README can say which file carries which tensor.
    shards = [{}, {}]
    for k, v in sd.items():
        i = 0 if ("embed_tokens" in k or ".self_attn." in k) else 1
        shards[i][k] = ["BF16", list(v.shape), bf16_bytes(v)]
    return cfg, shards


def write_broken(case, cfg, shards, config_edit=None):
    d = os.path.join(OUT, "broken", case)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    cfg.save_pretrained(d)
    rewrite_config_classic(os.path.join(d, "config.json"))
    GenerationConfig(bos_token_id=1, eos_token_id=[2, 3]).save_pretrained(d)
    p = os.path.join(d, "config.json")
    with open(p) as f:
        c = json.load(f)
    c["torch_dtype"] = "bfloat16"
    c["architectures"] = ["LlamaForCausalLM"]  # a bare config does not record it
    if config_edit:
        config_edit(c)
    if True:
        with open(p, "w") as f:
            json.dump(c, f, indent=2, sort_keys=True)
            f.write("\n")
    weight_map, total = {}, 0
    for fname, tensors in zip(BROKEN_SHARDS, shards):
        st_write(os.path.join(d, fname), {k: tuple(v) for k, v in tensors.items()})
        for k, v in tensors.items():
            weight_map[k] = fname
            total += len(v[2])
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    return d


def patch_file(path, fn):
    with open(path, "rb") as f:
        blob = bytearray(f.read())
    blob = fn(blob)
    with open(path, "wb") as f:
        f.write(blob)


def make_broken():
    root = os.path.join(OUT, "broken")
    for entry in os.listdir(root) if os.path.isdir(root) else []:
        if os.path.isdir(os.path.join(root, entry)):
            shutil.rmtree(os.path.join(root, entry))

    def fresh():
        return broken_base()

    # control: valid, must load.
    cfg, sh = fresh()
    d = write_broken("control", cfg, sh)
    m = load(d)
    assert m.config.num_hidden_layers == 1

    # unknown_arch
    cfg, sh = fresh()

    def foo(c):
        c["architectures"] = ["FooForCausalLM"]
        c["model_type"] = "foo"
    write_broken("unknown_arch", cfg, sh, foo)

    # missing_tensor: removed from the shard and the index.
    cfg, sh = fresh()
    del sh[1]["model.layers.0.mlp.down_proj.weight"]
    write_broken("missing_tensor", cfg, sh)

    # wrong_shape: q_proj stored as [48, 64] instead of [64, 64].
    cfg, sh = fresh()
    k = "model.layers.0.self_attn.q_proj.weight"
    dtype, shape, raw = sh[0][k]
    sh[0][k] = [dtype, [48, 64], raw[: 48 * 64 * 2]]
    write_broken("wrong_shape", cfg, sh)

    # truncated_shard: shard 2 cut in the middle of its data section.
    cfg, sh = fresh()
    d = write_broken("truncated_shard", cfg, sh)
    p = os.path.join(d, BROKEN_SHARDS[1])
    header, data = st_read(p)
    hlen = os.path.getsize(p) - len(data)
    patch_file(p, lambda b: b[: hlen + len(data) // 2])

    # bad_header: shard 1's header JSON has a ':' replaced by ' ' (same length).
    cfg, sh = fresh()
    d = write_broken("bad_header", cfg, sh)
    p = os.path.join(d, BROKEN_SHARDS[0])

    def corrupt(b):
        i = b.index(b'"dtype":')
        b[i + 7] = ord(" ")
        return b
    patch_file(p, corrupt)
    (n,) = struct.unpack("<Q", open(p, "rb").read(8))
    try:
        json.loads(open(p, "rb").read()[8:8 + n])
        raise AssertionError("bad_header is still valid JSON")
    except json.JSONDecodeError:
        pass

    # header_overflow: shard 1's header length = file size (8 + n > size).
    cfg, sh = fresh()
    d = write_broken("header_overflow", cfg, sh)
    p = os.path.join(d, BROKEN_SHARDS[0])
    size = os.path.getsize(p)
    patch_file(p, lambda b: bytearray(struct.pack("<Q", size)) + b[8:])

    # header_len_wrap: header length 2^64 - 8, so 8 + n wraps to 0 in uint64.
    cfg, sh = fresh()
    d = write_broken("header_len_wrap", cfg, sh)
    p = os.path.join(d, BROKEN_SHARDS[0])
    patch_file(p, lambda b: bytearray(struct.pack("<Q", 2**64 - 8)) + b[8:])

    # bad_rope: rope_scaling of type "dynamic" (dynamic NTK; not implemented).
    cfg, sh = fresh()

    def dynamic(c):
        c["rope_scaling"] = {"rope_type": "dynamic", "type": "dynamic", "factor": 4.0}
    write_broken("bad_rope", cfg, sh, dynamic)

    # f64_dtype: layer 0's input_layernorm.weight stored as F64.
    cfg, sh = fresh()
    k = "model.layers.0.input_layernorm.weight"
    dtype, shape, raw = sh[1][k]
    v = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16).to(torch.float64)
    sh[1][k] = ["F64", shape, v.numpy().tobytes()]
    write_broken("f64_dtype", cfg, sh)

    print("  broken cases:", ", ".join(sorted(os.listdir(root))))


# ---------------------------------------------------------------------------
# Checks and measurements
# ---------------------------------------------------------------------------


def rel_err(a, b):
    """max |a - b| / max |b| (the metric the C tests use)."""
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def check(name):
    d = os.path.join(OUT, name)
    with open(os.path.join(d, "golden.json")) as f:
        g = json.load(f)
    files = sorted(os.listdir(d))
    shards = [f for f in files if f.endswith(".safetensors")]
    if name.endswith("_single"):
        assert shards == ["model.safetensors"] and "model.safetensors.index.json" not in files
    else:
        assert len(shards) >= 2 and "model.safetensors.index.json" in files, name
    m = load(d)
    prompt = g["prompt_ids"]
    la = full_logits(m, prompt)
    e_last = rel_err(torch.tensor(g["logits_last"]), la[-1])
    e_all = max(rel_err(torch.tensor(r), la[i]) for i, r in enumerate(g["logits_all"]))
    ids, steps, gaps, _ = greedy_manual(m, prompt)
    assert ids == g["greedy_ids"], f"{name}: greedy ids differ"
    assert greedy_generate(m, prompt) == ids, f"{name}: generate() differs"
    e_steps = max(rel_err(torch.tensor(g["greedy_step_logits"][j]), steps[s])
                  for j, s in enumerate(STEP_LOGITS_AT))
    assert max(e_last, e_all, e_steps) < 1e-6, f"{name}: golden drifted"
    size = sum(os.path.getsize(os.path.join(d, f)) for f in files)
    print(f"  {name}: {len(shards)} shard(s), {size / 1e6:.2f} MB, golden rel err "
          f"last {e_last:.1e} all {e_all:.1e} steps {e_steps:.1e}, "
          f"min gap {min(gaps):.4f} (golden {g['min_top2_gap']})")


@torch.no_grad()
def measure(name):
    """fp32 vs fp64 reference, and the size of some typical implementation bugs."""
    d = os.path.join(OUT, name)
    with open(os.path.join(d, "golden.json")) as f:
        g = json.load(f)
    prompt, x = g["prompt_ids"], torch.tensor([g["prompt_ids"]])
    full = prompt + g["greedy_ids"]
    m32, m64 = load(d), load(d, torch.float64)
    l32, l64 = full_logits(m32, full), full_logits(m64, full)
    row = {
        "fp32 vs fp64, last prompt pos": rel_err(l32[N_PROMPT - 1], l64[N_PROMPT - 1]),
        "fp32 vs fp64, all 44 pos (max)": max(rel_err(l32[i], l64[i]) for i in range(len(full))),
    }
    ids64, _, _, _ = greedy_manual(m64, prompt)
    row["fp64 greedy == fp32 greedy"] = ids64 == g["greedy_ids"]
    mbf = load(d, torch.bfloat16)
    row["bf16 compute vs fp64, last"] = rel_err(full_logits(mbf, prompt)[-1].float(), l64[N_PROMPT - 1])

    # Bugs: each one perturbs the fp32 model and reports the error it causes.
    def bugged(edit):
        mm = load(d)
        edit(mm)
        return rel_err(full_logits(mm, prompt)[-1], l64[N_PROMPT - 1])

    def no_rope_scaling(mm):
        rot = mm.model.rotary_emb
        hd = rot.inv_freq.numel() * 2
        theta = mm.config.rope_parameters["rope_theta"]
        rot.inv_freq = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)

    def eps_off(mm):
        for mod in mm.modules():
            if hasattr(mod, "variance_epsilon"):
                mod.variance_epsilon *= 10

    def bf16_round_hidden(mm):
        for lyr in mm.model.layers:
            lyr.register_forward_hook(lambda mod, i, o: o.to(torch.bfloat16).float()
                                      if torch.is_tensor(o) else
                                      (o[0].to(torch.bfloat16).float(),) + tuple(o[1:]))

    if m32.config.rope_parameters.get("rope_type") == "llama3":
        row["bug: llama3 scaling ignored"] = bugged(no_rope_scaling)
    row["bug: rms eps x10"] = bugged(eps_off)
    row["bf16-rounded residual stream"] = bugged(bf16_round_hidden)
    if name == "qwen2":
        row["bug: q/k/v biases dropped"] = bugged(lambda mm: [
            p.zero_() for n_, p in mm.named_parameters() if n_.endswith(".bias")])
    if name == "qwen3":
        row["bug: q/k norm weights = 1"] = bugged(lambda mm: [
            p.fill_(1.0) for n_, p in mm.named_parameters() if "q_norm" in n_ or "k_norm" in n_])
    print(f"  {name}:")
    for k, v in row.items():
        print(f"    {k:34s} {v if isinstance(v, bool) else f'{v:.2e}'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="re-verify the fixtures on disk")
    ap.add_argument("--measure", action="store_true", help="print fp32/fp64 and bug-size table")
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=list(SPECS),
                    help="generate (or --check / --measure) only these reference models")
    args = ap.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    try:
        from transformers.utils import logging as tlog
        tlog.disable_progress_bar()
    except Exception:
        pass
    names = args.only or list(SPECS)
    if args.check or args.measure:
        for name in names:
            (measure if args.measure else check)(name)
        if args.check and not args.only:
            check("llama_single")
        return
    os.makedirs(OUT, exist_ok=True)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    for name in names:
        print(f"{name}:")
        make_reference(name, SPECS[name])
    if args.only:
        return
    make_single("llama", SPECS["llama"])
    make_broken()


if __name__ == "__main__":
    sys.exit(main())
