#!/usr/bin/env python3
"""Generate the mixture-of-experts reference models and their golden outputs.

For each supported MoE architecture this writes a tiny random-weight model
that transformers itself builds and saves (config -> from_config ->
save_pretrained, BF16 weights, per-expert tensors as save_pretrained writes
them) under tests/fixtures/models/<name>, and a golden.json in the format of
gen_models.py (logits of every prompt position, 32 greedy tokens, cached-decode
step logits), computed in float32 on the CPU with eager attention.

  qwen3_moe   Qwen3MoeForCausalLM: 16 experts, top-8, norm_topk_prob, layer 0
              dense (mlp_only_layers), classic hub config layout ("num_experts")
  qwen2_moe   Qwen2MoeForCausalLM: 8 experts, top-2, sigmoid-gated shared
              expert, q/k/v biases
  mixtral     MixtralForCausalLM: 8 experts, top-2
  deepseek_v3 DeepseekV3ForCausalLM: multi-head latent attention (q_lora_rank,
              kv_lora_rank, interleaved RoPE), 16 experts in 4 groups, top-2
              within the 2 best groups, sigmoid scores with a random
              e_score_correction_bias, routed_scaling_factor 2.5, a shared
              expert, layer 0 dense (first_k_dense_replace), YaRN RoPE scaling

  gpt_oss     GptOssForCausalLM: attention sinks, q/k/v/o biases, sliding window
              (4) on alternate layers, YaRN without truncation, 16 experts
              top-4 with router and expert biases, clamped SwiGLU (limit 0.3
              so that the clamps act), experts stacked in 3-D tensors as
              transformers saves them
  deepseek_v3_fp8  the deepseek_v3 model with every projection stored as FP8
              e4m3 with 128x128 block scales (`weight_scale_inv`) and a
              quantization_config, as DeepSeek-V3 and Kimi-K2 ship; the golden
              comes from transformers loading that checkpoint (it dequantizes
              to bf16 on a CPU), computed in float32

  qwen3_moe_fused  the qwen3_moe weights under transformers 5's in-memory
              names: experts fused into mlp.experts.gate_up_proj / down_proj
  gpt_oss_mxfp4  the gpt_oss model with its experts as MXFP4 blocks and E8M0
              scales, the published gpt-oss format; golden from transformers
              loading it (dequantized to bf16 on a CPU)

A seed is accepted when the greedy path is unambiguous (top-2 logit gap, as in
gen_models.py) and every routing decision on it is too: at every layer and
position the k-th and (k+1)-th router probabilities differ by at least
ROUTE_GAP, so a last-bit difference cannot flip an expert.

Usage:
    python3 tests/gen/gen_moe_models.py           # (re)generate
    python3 tests/gen/gen_moe_models.py --check   # reload and compare
"""

import argparse
import json
import os
import shutil
import sys

import torch
import transformers
from transformers import (AutoModelForCausalLM, DeepseekV3Config, DeepseekV3ForCausalLM, GenerationConfig, GptOssConfig,
                          GptOssForCausalLM,
                          MixtralConfig, MixtralForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM,
                          Qwen3MoeConfig, Qwen3MoeForCausalLM)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_models as gm  # noqa: E402

OUT = gm.OUT
ROUTE_GAP = 2e-4

COMMON = dict(
    hidden_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=256,
    max_position_embeddings=256,
    hidden_act="silu",
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
)

SPECS = {
    "qwen3_moe": dict(
        cls_config=Qwen3MoeConfig, cls_model=Qwen3MoeForCausalLM, seed=13000, layout="classic",
        config=dict(COMMON, head_dim=32, intermediate_size=96, moe_intermediate_size=32,
                    num_experts=16, num_experts_per_tok=8, norm_topk_prob=True,
                    decoder_sparse_step=1, mlp_only_layers=[0], attention_bias=False,
                    use_sliding_window=False, sliding_window=None,
                    rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"}),
        gen_eos=[2, 3]),
    "qwen2_moe": dict(
        cls_config=Qwen2MoeConfig, cls_model=Qwen2MoeForCausalLM, seed=14000, layout="v5",
        config=dict(COMMON, intermediate_size=96, moe_intermediate_size=32,
                    shared_expert_intermediate_size=48, num_experts=8, num_experts_per_tok=2,
                    norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[],
                    qkv_bias=True, use_sliding_window=False, sliding_window=None,
                    rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"}),
        gen_eos=2),
    "mixtral": dict(
        cls_config=MixtralConfig, cls_model=MixtralForCausalLM, seed=15000, layout="v5",
        config=dict(COMMON, intermediate_size=48, num_local_experts=8, num_experts_per_tok=2,
                    sliding_window=None,
                    rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"}),
        gen_eos=2),
    "deepseek_v3": dict(
        cls_config=DeepseekV3Config, cls_model=DeepseekV3ForCausalLM, seed=16000, layout="v5",
        config=dict(COMMON, num_key_value_heads=4, intermediate_size=96, moe_intermediate_size=32,
                    n_routed_experts=16, num_experts_per_tok=2, n_group=4, topk_group=2,
                    n_shared_experts=1, routed_scaling_factor=2.5, norm_topk_prob=True,
                    first_k_dense_replace=1, q_lora_rank=48, kv_lora_rank=32,
                    qk_rope_head_dim=16, qk_nope_head_dim=16, v_head_dim=24,
                    rope_interleave=True, attention_bias=False,
                    # YaRN as DeepSeek-V3 ships it (factor 40 over 4096 positions), with
                    # mscale != mscale_all_dim so both the cos/sin factor and the
                    # softmax scale differ from 1
                    rope_parameters={"rope_theta": 10000.0, "rope_type": "yarn", "factor": 40.0,
                                     "original_max_position_embeddings": 4096,
                                     "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 0.9,
                                     "mscale_all_dim": 1.0}),
        gen_eos=2),
    "gpt_oss": dict(
        cls_config=GptOssConfig, cls_model=GptOssForCausalLM, seed=17000, layout="v5",
        config=dict(COMMON, head_dim=16, intermediate_size=32, num_local_experts=16,
                    num_experts_per_tok=4, sliding_window=4, attention_bias=True,
                    # a low limit so that the clamps of the SwiGLU act on random weights
                    swiglu_limit=0.3,
                    layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                    rope_parameters={"rope_theta": 150000.0, "rope_type": "yarn", "factor": 32.0,
                                     "original_max_position_embeddings": 4096,
                                     "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False}),
        gen_eos=2),
}

STD_ROUTER = 0.15  # router logits of order 1: a clear but not one-hot choice
STD_EXPERT = 0.08
STD_BIAS_ROUTE = 0.05  # e_score_correction_bias: moves choices, not weights


def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            shape = p.shape
            if name.endswith("norm.weight"):
                v = 1.0 + gm.STD_NORM * torch.randn(shape, generator=g)
            elif name.endswith(".bias") or name.endswith("_bias"):
                v = gm.STD_BIAS * torch.randn(shape, generator=g)
            elif name.endswith(".sinks"):
                v = torch.randn(shape, generator=g)  # of the order of the attention logits
            elif "embed_tokens" in name:
                v = gm.STD_EMBED * torch.randn(shape, generator=g)
            elif name.startswith("lm_head"):
                v = gm.STD_LM_HEAD * torch.randn(shape, generator=g)
            elif ".self_attn." in name:
                v = gm.STD_ATTN * torch.randn(shape, generator=g)
            elif (name.endswith("gate.weight") and "shared_expert" not in name) or \
                    name.endswith("router.weight"):
                v = STD_ROUTER * torch.randn(shape, generator=g)
            elif name.endswith("shared_expert_gate.weight"):
                v = STD_ROUTER * torch.randn(shape, generator=g)
            elif ".mlp." in name or ".block_sparse_moe." in name:
                v = STD_EXPERT * torch.randn(shape, generator=g)
            else:
                raise RuntimeError(f"no init rule for {name}")
            p.copy_(v)
        for name, buf in sorted(model.named_buffers()):
            if name.endswith("e_score_correction_bias"):
                buf.copy_(STD_BIAS_ROUTE * torch.randn(buf.shape, generator=g))


def routers(model):
    """The router modules, one per MoE layer."""
    out = []
    for layer in model.model.layers:
        blk = getattr(layer, "mlp", None) or getattr(layer, "block_sparse_moe", None)
        gate = getattr(blk, "gate", None) or getattr(blk, "router", None)
        if gate is not None and hasattr(gate, "top_k"):
            out.append(gate)
    return out


def kth_gap(x, k):
    """Per row: x's k-th largest minus its (k+1)-th largest."""
    s = torch.sort(x, dim=-1, descending=True).values
    return s[:, k - 1] - s[:, k]


@torch.no_grad()
def min_route_gap(model, ids, k):
    """Smallest margin of any routing decision: the k-th vs (k+1)-th router
    probability; for grouped sigmoid routing (DeepSeek-V3) also the kept vs
    dropped group score, with choices made on sigmoid + bias."""
    gaps = []

    def hook(mod, inp, out):
        logits = (out[0] if isinstance(out, tuple) else out).float()
        if getattr(mod, "bias", None) is not None and not hasattr(mod, "num_group"):
            gaps.append(float(kth_gap(logits, k).min()))  # gpt-oss: top-k of biased logits
            return
        if not hasattr(mod, "num_group"):
            gaps.append(float(kth_gap(torch.softmax(logits, dim=-1), k).min()))
            return
        c = logits.sigmoid() + mod.e_score_correction_bias.float()
        g = c.view(c.shape[0], mod.num_group, -1)
        gs = g.topk(2, dim=-1).values.sum(-1)
        if mod.topk_group < mod.num_group:
            gaps.append(float(kth_gap(gs, mod.topk_group).min()))
        keep = torch.zeros_like(gs).scatter_(1, gs.topk(mod.topk_group, dim=-1).indices, 1)
        masked = g.masked_fill(keep.unsqueeze(-1) == 0, float("-inf")).view(c.shape[0], -1)
        gaps.append(float(kth_gap(masked, k).min()))

    hs = [r.register_forward_hook(hook) for r in routers(model)]
    try:
        gm.full_logits(model, ids)
    finally:
        for h in hs:
            h.remove()
    assert gaps, "no router ran"
    return min(gaps)


def rewrite_classic(path, name):
    gm.rewrite_config_classic(path)
    if name == "qwen3_moe":  # hub checkpoints name the expert count "num_experts"
        with open(path) as f:
            cfg = json.load(f)
        cfg["num_experts"] = cfg.pop("num_local_experts")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")


def save(model, spec, name, d):
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    model.to(torch.bfloat16).save_pretrained(d, max_shard_size="400KB")
    GenerationConfig(bos_token_id=1, eos_token_id=spec["gen_eos"]).save_pretrained(d)
    if spec["layout"] == "classic":
        rewrite_classic(os.path.join(d, "config.json"), name)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)


def config_summary(name, cfg, spec):
    c = {k: v for k, v in sorted(cfg.to_dict().items())
         if isinstance(v, (int, float, str, bool, list, type(None))) and not k.startswith("_")}
    c["architecture"] = spec["cls_model"].__name__
    c["config_layout"] = spec["layout"]
    c["generation_eos_token_id"] = spec["gen_eos"]
    c["weights_dtype"] = "BF16"
    c["compute_dtype"] = "float32"
    return c


def make(name, spec):
    d = os.path.join(OUT, name)
    cfg = spec["cls_config"](**spec["config"])
    k = cfg.num_experts_per_tok
    prompt = gm.prompt_for(name, cfg.vocab_size, cfg.bos_token_id)
    for attempt in range(gm.MAX_SEED_TRIES):
        seed = spec["seed"] + attempt
        torch.manual_seed(seed)
        model = spec["cls_model"](cfg)
        init_weights(model, seed)
        save(model, spec, name, d)
        ref = gm.load(d)
        ids, steps, gaps, rel = gm.greedy_manual(ref, prompt)
        rgap = min_route_gap(ref, prompt + ids, k)
        if min(rel) >= gm.GAP_REL and len(set(ids)) >= gm.MIN_DISTINCT and rgap >= ROUTE_GAP:
            break
        print(f"  seed {seed}: logit gap {min(rel):.2e}, {len(set(ids))} distinct, "
              f"route gap {rgap:.2e}: re-seeding")
    else:
        raise RuntimeError(f"{name}: no seed with a clear greedy path and routing")
    gen_ids = gm.greedy_generate(ref, prompt)
    assert gen_ids == ids, f"{name}: generate() {gen_ids} != manual loop {ids}"
    la = gm.full_logits(ref, prompt)
    assert torch.equal(la[-1], steps[0])
    golden = {
        "prompt_ids": prompt,
        "logits_last": gm.f32_list(la[-1]),
        "logits_all": [gm.f32_list(row) for row in la],
        "greedy_ids": ids,
        "greedy_step_logits": [gm.f32_list(steps[s]) for s in gm.STEP_LOGITS_AT],
        "min_top2_gap": gm.f32(min(gaps)),
        "config": config_summary(name, ref.config, spec),
        "reference": {"transformers": transformers.__version__, "torch": torch.__version__,
                      "min_route_gap": gm.f32(rgap)},
    }
    gm.write_golden(os.path.join(d, "golden.json"), golden)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"  {name}: seed {seed}, min top-2 gap {min(gaps):.4f}, route gap {rgap:.2e}, "
          f"{len(set(ids))} distinct greedy tokens, {size / 1e3:.0f} kB")


FP8_BLOCK = 128


def fp8_quantize(w):
    """DeepSeek-style block FP8: scale = amax(block) / 448 per 128x128 block."""
    w = w.float()
    r, c = w.shape
    sr, sc = -(-r // FP8_BLOCK), -(-c // FP8_BLOCK)
    pad = torch.zeros(sr * FP8_BLOCK, sc * FP8_BLOCK)
    pad[:r, :c] = w
    scale = pad.view(sr, FP8_BLOCK, sc, FP8_BLOCK).abs().amax(dim=(1, 3)).clamp(min=1e-12) / 448
    full = scale.repeat_interleave(FP8_BLOCK, 0).repeat_interleave(FP8_BLOCK, 1)[:r, :c]
    return (w / full).to(torch.float8_e4m3fn), scale


def make_fp8(base="deepseek_v3", name="deepseek_v3_fp8"):
    from safetensors.torch import load_file, save_file
    src, d = os.path.join(OUT, base), os.path.join(OUT, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    sd = {}
    for f in sorted(os.listdir(src)):
        if f.endswith(".safetensors"):
            sd.update(load_file(os.path.join(src, f)))
    # A dimension above one block that is not a multiple of it (kv_b_proj: 160
    # rows) stays BF16: transformers then derives the block from the scale grid
    # (160 / 2 = 80 rows) where DeepSeek's rule, which airllm follows, keeps
    # 128 (tested on its own in test_lowbit). Real checkpoints have whole blocks.
    def whole(n):
        return n <= FP8_BLOCK or n % FP8_BLOCK == 0

    out = {}
    for k, v in sd.items():
        if (v.ndim == 2 and (k.endswith("_proj.weight") or k.endswith("kv_a_proj_with_mqa.weight"))
                and whole(v.shape[0]) and whole(v.shape[1])):
            out[k], out[k[: -len("weight")] + "weight_scale_inv"] = fp8_quantize(v)
        else:
            out[k] = v
    save_file(out, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    cfg["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                  "weight_block_size": [FP8_BLOCK, FP8_BLOCK]}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    shutil.copyfile(os.path.join(src, "generation_config.json"), os.path.join(d, "generation_config.json"))
    # transformers dequantizes FP8 to bf16 on a CPU; compute in float32 from there
    ref = DeepseekV3ForCausalLM.from_pretrained(d, dtype=torch.bfloat16, attn_implementation="eager")
    assert ref.model.layers[1].self_attn.q_a_proj.weight.dtype == torch.bfloat16
    quantized_golden(ref, base, name, "FP8 e4m3, 128x128 block scales")


def quantized_golden(ref, base, name, note):
    """Golden of a quantized checkpoint that transformers loaded (dequantized
    to bf16), computed in float32; the prompt is the first with a clear path."""
    d = os.path.join(OUT, name)
    ref = ref.float().eval()
    k = ref.config.num_experts_per_tok
    for attempt in range(gm.MAX_SEED_TRIES):
        prompt = gm.prompt_for(f"{name}{attempt}", ref.config.vocab_size, ref.config.bos_token_id)
        ids, steps, gaps, rel = gm.greedy_manual(ref, prompt)
        rgap = min_route_gap(ref, prompt + ids, k)
        if min(rel) >= gm.GAP_REL and rgap >= ROUTE_GAP and len(set(ids)) >= gm.MIN_DISTINCT:
            break
    else:
        raise RuntimeError(f"{name}: no prompt with a clear greedy path and routing")
    assert gm.greedy_generate(ref, prompt) == ids
    la = gm.full_logits(ref, prompt)
    golden = {
        "prompt_ids": prompt,
        "logits_last": gm.f32_list(la[-1]),
        "logits_all": [gm.f32_list(row) for row in la],
        "greedy_ids": ids,
        "greedy_step_logits": [gm.f32_list(steps[s]) for s in gm.STEP_LOGITS_AT],
        "min_top2_gap": gm.f32(min(gaps)),
        "config": config_summary(name, ref.config, SPECS[base]),
        "reference": {"transformers": transformers.__version__, "torch": torch.__version__,
                      "min_route_gap": gm.f32(rgap), "weights": note},
    }
    gm.write_golden(os.path.join(d, "golden.json"), golden)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    print(f"  {name}: min top-2 gap {min(gaps):.4f}, route gap {rgap:.2e}")


FP4_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def mxfp4_quantize(w):
    """A stacked x @ W expert tensor (E, in, out) to MXFP4 blocks (E, out, in/32,
    16) and E8M0 scales (E, out, in/32): per group of 32 inputs the power of
    two that brings the largest magnitude within 6, then the nearest e2m1 code
    (low nibble: even element)."""
    w = w.float().transpose(1, 2).contiguous()
    e, o, i = w.shape
    g = w.view(e, o, i // 32, 32)
    ex = torch.ceil(torch.log2(g.abs().amax(-1).clamp(min=1e-30) / 6.0)).clamp(-127, 127)
    v = g / torch.exp2(ex)[..., None]
    idx = (v[..., None] - torch.tensor(FP4_VALUES)).abs().argmin(-1)
    return (idx[..., 0::2] | (idx[..., 1::2] << 4)).to(torch.uint8), (ex + 127).to(torch.uint8)


def make_mxfp4(base="gpt_oss", name="gpt_oss_mxfp4"):
    from safetensors.torch import load_file, save_file
    src, d = os.path.join(OUT, base), os.path.join(OUT, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    sd = {}
    for f in sorted(os.listdir(src)):
        if f.endswith(".safetensors"):
            sd.update(load_file(os.path.join(src, f)))
    out = {}
    for k, v in sd.items():
        if k.endswith("experts.gate_up_proj") or k.endswith("experts.down_proj"):
            out[k + "_blocks"], out[k + "_scales"] = mxfp4_quantize(v)
        else:
            out[k] = v
    save_file(out, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    cfg["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    shutil.copyfile(os.path.join(src, "generation_config.json"), os.path.join(d, "generation_config.json"))
    # transformers dequantizes MXFP4 to bf16 on a CPU
    ref = GptOssForCausalLM.from_pretrained(d, dtype=torch.bfloat16, attn_implementation="eager")
    assert ref.model.layers[0].mlp.experts.gate_up_proj.dtype == torch.bfloat16
    quantized_golden(ref, base, name, "MXFP4 experts (blocks + E8M0 scales)")


def make_fused(base="qwen3_moe", name="qwen3_moe_fused"):
    """The base model's weights saved under the names transformers 5 uses in
    memory (experts fused: mlp.experts.gate_up_proj (E, 2 ff, d), down_proj
    (E, d, ff)), one safetensors file; same outputs, so the same golden."""
    from safetensors.torch import save_file
    src, d = os.path.join(OUT, base), os.path.join(OUT, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    assert any(k.endswith("mlp.experts.gate_up_proj") for k in sd), "no fused experts in memory"
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    for f in ("config.json", "generation_config.json", "golden.json"):
        shutil.copyfile(os.path.join(src, f), os.path.join(d, f))
    # transformers reads the fused file back to the same outputs
    ref = gm.load(d)
    with open(os.path.join(d, "golden.json")) as f:
        g = json.load(f)
    la = gm.full_logits(ref, g["prompt_ids"])
    assert gm.rel_err(la, torch.tensor(g["logits_all"])) < 1e-6
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    print(f"  {name}: {len(sd)} tensors, experts fused")


def check(name):
    d = os.path.join(OUT, name)
    with open(os.path.join(d, "golden.json")) as f:
        g = json.load(f)
    ref = gm.load(d)
    la = gm.full_logits(ref, g["prompt_ids"])
    err = gm.rel_err(la, torch.tensor(g["logits_all"]))
    ids, _, _, _ = gm.greedy_manual(ref, g["prompt_ids"])
    ok = err < 1e-6 and ids == g["greedy_ids"]
    print(f"  {name}: logits rel. error {err:.2e}, greedy {'same' if ids == g['greedy_ids'] else 'DIFFERENT'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("names", nargs="*", default=list(SPECS) + ["deepseek_v3_fp8", "gpt_oss_mxfp4", "qwen3_moe_fused"])
    a = ap.parse_args()
    torch.set_num_threads(1)
    ok = True
    for name in a.names:
        if a.check:
            ok &= check(name)
        elif name == "deepseek_v3_fp8":
            make_fp8()
        elif name == "gpt_oss_mxfp4":
            make_mxfp4()
        elif name == "qwen3_moe_fused":
            make_fused()
        else:
            make(name, SPECS[name])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
