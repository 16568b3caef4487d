#!/usr/bin/env python3
"""Tiny DeepSeek-V3 and gpt-oss models in GGUF (llama.cpp's `deepseek2` and
`gpt-oss` layouts) and llama.cpp's outputs on them.

Each model is a random transformers model (DeepseekV3ForCausalLM,
GptOssForCausalLM) saved as BF16 and converted to GGUF the way llama.cpp's
converter lays these architectures out, with F32 tensors holding the BF16
values exactly; llama-cpp-python (f32 KV cache) then gives the reference
logits and 32 greedy tokens, cross-checked against transformers on the same
weights (relative error < 1e-4, the same tokens).

  gguf_deepseek2/      multi-head latent attention as current converters write it:
                       attn_q_a / attn_q_a_norm / attn_q_b, attn_kv_a_mqa, attn_kv_a_norm,
                       kv_b split per head into attn_k_b [nope, kv_lora, n_head] (transposed)
                       and attn_v_b [kv_lora, v_dim, n_head], key_length_mla /
                       value_length_mla; sigmoid routing with exp_probs_b.bias,
                       group-limited top-k, expert_weights_scale, a shared expert,
                       a dense first layer, YaRN (yarn_log_multiplier)
  gguf_deepseek2_kvb/  the same weights in the older layout: one attn_kv_b, key_length
                       = nope + rope, value_length = v_dim (llama.cpp's non-MLA path)
  gguf_gpt_oss/        q/k/v/o biases, attn_sinks, post_attention_norm as the MLP norm,
                       router bias, experts with biases (gate and up de-interleaved),
                       sliding window on even layers, YaRN
  gguf_gpt_oss_mxfp4/  the same with the experts rounded to MXFP4 and stored as GGUF MXFP4
                       blocks (llama.cpp rounds activations to 8 bits and is then a few
                       percent from transformers; golden.json gives its bound, and the
                       greedy tokens are transformers')

Each folder holds model.gguf and golden.json (prompt_ids, logits_all,
greedy_ids, min_top2_gap, transformers' logits as a cross-check).

    python3 -m pip install llama-cpp-python gguf transformers torch numpy
It also writes two small files of the same layouts as fuzzer seeds,
tests/fuzz/corpus/fuzz_gguf/tiny_{deepseek2,gpt_oss}.gguf.

    python3 tests/gen/gen_gguf_moe_mla.py [deepseek2 gpt_oss fuzz]
"""

import json
import os
import sys
import tempfile

import gguf
import numpy as np
import torch
import transformers
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM, GptOssConfig, GptOssForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_gemma3_llamacpp_goldens as g3  # noqa: E402
import gen_gguf_moe as gmoe  # noqa: E402
import gen_models as gm  # noqa: E402
import gen_moe_models as mm  # noqa: E402

BASE = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, vocab_size=256,
            max_position_embeddings=256, hidden_act="silu", rms_norm_eps=1e-6,
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
MODELS = {
    "deepseek2": dict(
        cls_config=DeepseekV3Config, cls_model=DeepseekV3ForCausalLM, seed=21000,
        config=dict(BASE, num_key_value_heads=4, intermediate_size=96, moe_intermediate_size=32,
                    n_routed_experts=16, num_experts_per_tok=2, n_group=4, topk_group=2,
                    n_shared_experts=1, routed_scaling_factor=2.5, norm_topk_prob=True,
                    first_k_dense_replace=1, q_lora_rank=48, kv_lora_rank=32,
                    qk_rope_head_dim=16, qk_nope_head_dim=16, v_head_dim=24,
                    rope_interleave=True, attention_bias=False,
                    # YaRN as DeepSeek-V3 ships it (mscale == mscale_all_dim, the only
                    # case the GGUF keys can express)
                    rope_parameters={"rope_theta": 10000.0, "rope_type": "yarn", "factor": 40.0,
                                     "original_max_position_embeddings": 4096,
                                     "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0,
                                     "mscale_all_dim": 1.0})),
    "gpt_oss": dict(
        cls_config=GptOssConfig, cls_model=GptOssForCausalLM, seed=22000,
        # llama.cpp fixes the SwiGLU clamp at 7 and alpha at 1.702 (the released
        # models' values); the expert weights below are large enough to reach it
        config=dict(BASE, num_key_value_heads=2, head_dim=16, intermediate_size=32,
                    num_local_experts=16, num_experts_per_tok=4, sliding_window=4,
                    attention_bias=True, swiglu_limit=7.0,
                    layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                    rope_parameters={"rope_theta": 150000.0, "rope_type": "yarn", "factor": 32.0,
                                     "original_max_position_embeddings": 4096,
                                     "beta_fast": 32.0, "beta_slow": 1.0, "truncate": True})),
}
MXFP4 = gguf.GGMLQuantizationType.MXFP4
STD_GATE_UP_OSS = 1.5   # gate / up pre-activations of several units: some pass the clamp
STD_DOWN_OSS = 0.01


def yarn_keys(w, rp):
    w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    w.add_rope_scaling_factor(rp["factor"])
    w.add_rope_scaling_orig_ctx_len(rp["original_max_position_embeddings"])


def write_deepseek2(model, path, split_kvb):
    cfg = model.config
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    w = gguf.GGUFWriter(path, "deepseek2")
    w.add_name("tiny-deepseek2")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    nope, rope, vd, kvl = cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim, cfg.kv_lora_rank
    if split_kvb:  # latent attention as multi-query attention over the latent
        w.add_head_count_kv(1)
        w.add_key_length(kvl + rope)
        w.add_value_length(kvl)
        w.add_key_length_mla(nope + rope)
        w.add_value_length_mla(vd)
    else:
        w.add_head_count_kv(cfg.num_attention_heads)
        w.add_key_length(nope + rope)
        w.add_value_length(vd)
    w.add_rope_dimension_count(rope)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rp = cfg.rope_parameters
    w.add_rope_freq_base(rp["rope_theta"])
    yarn_keys(w, rp)
    w.add_rope_scaling_yarn_log_mul(0.1 * rp["mscale_all_dim"])
    w.add_q_lora_rank(cfg.q_lora_rank)
    w.add_kv_lora_rank(kvl)
    w.add_leading_dense_block_count(cfg.first_k_dense_replace)
    w.add_expert_count(cfg.n_routed_experts)
    w.add_expert_used_count(cfg.num_experts_per_tok)
    w.add_expert_feed_forward_length(cfg.moe_intermediate_size)
    w.add_expert_shared_count(cfg.n_shared_experts)
    w.add_expert_weights_scale(cfg.routed_scaling_factor)
    w.add_expert_weights_norm(cfg.norm_topk_prob)
    w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
    w.add_expert_group_count(cfg.n_group)
    w.add_expert_group_used_count(cfg.topk_group)
    gmoe.add_tiny_vocab(w, cfg.vocab_size)
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    names = {"input_layernorm.weight": "attn_norm.weight",
             "self_attn.q_a_proj.weight": "attn_q_a.weight",
             "self_attn.q_a_layernorm.weight": "attn_q_a_norm.weight",
             "self_attn.q_b_proj.weight": "attn_q_b.weight",
             "self_attn.kv_a_proj_with_mqa.weight": "attn_kv_a_mqa.weight",
             "self_attn.kv_a_layernorm.weight": "attn_kv_a_norm.weight",
             "self_attn.o_proj.weight": "attn_output.weight",
             "post_attention_layernorm.weight": "ffn_norm.weight",
             "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
             "mlp.down_proj.weight": "ffn_down.weight",
             "mlp.gate.weight": "ffn_gate_inp.weight",
             "mlp.gate.e_score_correction_bias": "exp_probs_b.bias",
             "mlp.shared_experts.gate_proj.weight": "ffn_gate_shexp.weight",
             "mlp.shared_experts.up_proj.weight": "ffn_up_shexp.weight",
             "mlp.shared_experts.down_proj.weight": "ffn_down_shexp.weight"}
    nh = cfg.num_attention_heads
    for l in range(cfg.num_hidden_layers):
        p = f"model.layers.{l}."
        for hf, gn in names.items():
            if p + hf in sd:
                w.add_tensor(f"blk.{l}.{gn}", np.ascontiguousarray(sd[p + hf]))
        kvb = sd[p + "self_attn.kv_b_proj.weight"]  # (n_head * (nope + v), kv_lora)
        if split_kvb:
            h = kvb.reshape(nh, nope + vd, kvl)
            # k_b transposed per head: numpy (n_head, kv_lora, nope) = GGUF [nope, kv_lora, n_head]
            w.add_tensor(f"blk.{l}.attn_k_b.weight",
                         np.ascontiguousarray(h[:, :nope, :].transpose(0, 2, 1)))
            w.add_tensor(f"blk.{l}.attn_v_b.weight", np.ascontiguousarray(h[:, nope:, :]))
        else:
            w.add_tensor(f"blk.{l}.attn_kv_b.weight", kvb)
        ex = p + "mlp.experts."
        if ex + "gate_up_proj" in sd:  # stacked in memory: (E, 2 ff, d), gate rows first
            ff = cfg.moe_intermediate_size
            gu = sd[ex + "gate_up_proj"]
            w.add_tensor(f"blk.{l}.ffn_gate_exps.weight", np.ascontiguousarray(gu[:, :ff, :]))
            w.add_tensor(f"blk.{l}.ffn_up_exps.weight", np.ascontiguousarray(gu[:, ff:, :]))
            w.add_tensor(f"blk.{l}.ffn_down_exps.weight", sd[ex + "down_proj"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    finish(w)


def mxfp4_round(w):
    """w (..., n_in) rounded to MXFP4 along n_in (blocks of 32), and its blocks."""
    q = gguf.quants.quantize(np.ascontiguousarray(w, dtype=np.float32), MXFP4)
    r = gguf.quants.dequantize(q, MXFP4).reshape(w.shape).astype(np.float32)
    return r, q


@torch.no_grad()
def round_experts_mxfp4(model):
    """Rounds every expert matrix of a gpt-oss model to MXFP4 values, in the
    GGUF layout's blocks (32 consecutive inputs of one output row)."""
    for layer in model.model.layers:
        ex = layer.mlp.experts
        gu = ex.gate_up_proj.detach().float().numpy()  # (E, d, 2 ff)
        for par in (0, 1):  # gate (even columns), up (odd)
            r, _ = mxfp4_round(gu[:, :, par::2].transpose(0, 2, 1))
            gu[:, :, par::2] = r.transpose(0, 2, 1)
        ex.gate_up_proj.copy_(torch.from_numpy(gu))
        r, _ = mxfp4_round(ex.down_proj.detach().float().numpy().transpose(0, 2, 1))
        ex.down_proj.copy_(torch.from_numpy(np.ascontiguousarray(r.transpose(0, 2, 1))))


def write_gpt_oss(model, path, mxfp4=False):
    cfg = model.config
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    w = gguf.GGUFWriter(path, "gpt-oss")
    w.add_name("tiny-gpt-oss")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rp = cfg.rope_parameters
    w.add_rope_freq_base(rp["rope_theta"])
    yarn_keys(w, rp)
    w.add_sliding_window(cfg.sliding_window)
    w.add_expert_count(cfg.num_local_experts)
    w.add_expert_used_count(cfg.num_experts_per_tok)
    w.add_expert_feed_forward_length(cfg.intermediate_size)
    gmoe.add_tiny_vocab(w, cfg.vocab_size)
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    names = {"input_layernorm.weight": "attn_norm.weight",
             "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
             "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
             "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
             "self_attn.o_proj.weight": "attn_output.weight",
             "self_attn.o_proj.bias": "attn_output.bias",
             "self_attn.sinks": "attn_sinks.weight",
             "post_attention_layernorm.weight": "post_attention_norm.weight",
             "mlp.router.weight": "ffn_gate_inp.weight", "mlp.router.bias": "ffn_gate_inp.bias"}
    for l in range(cfg.num_hidden_layers):
        p = f"model.layers.{l}."
        for hf, gn in names.items():
            w.add_tensor(f"blk.{l}.{gn}", np.ascontiguousarray(sd[p + hf]))
        ex = p + "mlp.experts."
        gu = sd[ex + "gate_up_proj"]  # (E, d, 2 ff), x @ W, gate and up in alternate columns
        gub = sd[ex + "gate_up_proj_bias"]  # (E, 2 ff)
        mats = {"gate": gu[:, :, 0::2].transpose(0, 2, 1), "up": gu[:, :, 1::2].transpose(0, 2, 1),
                "down": sd[ex + "down_proj"].transpose(0, 2, 1)}
        for part, m in mats.items():
            m = np.ascontiguousarray(m)
            if mxfp4:  # the values are MXFP4 already: the blocks hold them exactly
                r, q = mxfp4_round(m)
                assert np.array_equal(r, m), "expert weights are not MXFP4 values"
                w.add_tensor(f"blk.{l}.ffn_{part}_exps.weight", q, raw_dtype=MXFP4)
            else:
                w.add_tensor(f"blk.{l}.ffn_{part}_exps.weight", m)
        w.add_tensor(f"blk.{l}.ffn_gate_exps.bias", np.ascontiguousarray(gub[:, 0::2]))
        w.add_tensor(f"blk.{l}.ffn_up_exps.bias", np.ascontiguousarray(gub[:, 1::2]))
        w.add_tensor(f"blk.{l}.ffn_down_exps.bias", sd[ex + "down_proj_bias"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    finish(w)


def finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_outputs(path, prompt):
    g3.plain_cpu_buffers()  # no AMX repacking: it dies with SIGILL on some machines
    return gmoe.llama_outputs(path, prompt)


def init(model, name, seed):
    mm.init_weights(model, seed)
    if name != "gpt_oss":
        return
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("experts.gate_up_proj"):
                p.copy_(STD_GATE_UP_OSS * torch.randn(p.shape, generator=g))
            elif n.endswith("experts.down_proj"):
                p.copy_(STD_DOWN_OSS * torch.randn(p.shape, generator=g))


def golden(prompt, la, ids, gaps, hf, seed, err, rgap):
    return {
        "prompt_ids": prompt,
        "logits_all": [gm.f32_list(torch.from_numpy(x)) for x in la],
        "greedy_ids": ids,
        "min_top2_gap": gm.f32(min(gaps)),
        "transformers_logits_all": [gm.f32_list(torch.from_numpy(x)) for x in hf],
        "reference": {"llama_cpp_python": __import__("llama_cpp").__version__,
                      "transformers": transformers.__version__, "torch": torch.__version__,
                      "seed": seed, "llama_cpp_vs_transformers_rel_err": err,
                      "min_route_gap": gm.f32(rgap)},
    }


def write_golden(d, g):
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(g, f, separators=(",", ":"))
        f.write("\n")
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)


def make(name):
    spec = MODELS[name]
    cfg = spec["cls_config"](**spec["config"])
    d = os.path.join(gm.OUT, f"gguf_{name}")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.gguf")
    prompt = gm.prompt_for(f"gguf_{name}", cfg.vocab_size, cfg.bos_token_id)
    write = (lambda m, p: write_deepseek2(m, p, True)) if name == "deepseek2" else write_gpt_oss
    for attempt in range(gm.MAX_SEED_TRIES):
        seed = spec["seed"] + attempt
        torch.manual_seed(seed)
        model = spec["cls_model"](cfg)
        init(model, name, seed)
        with tempfile.TemporaryDirectory() as tmp:
            model.to(torch.bfloat16).save_pretrained(tmp)
            model = gm.load(tmp)
        write(model, path)
        la, ids, gaps = llama_outputs(path, prompt)
        rgap = mm.min_route_gap(model, prompt + ids, cfg.num_experts_per_tok)
        if min(gaps) >= gm.GAP_REL and rgap >= mm.ROUTE_GAP and len(set(ids)) >= gm.MIN_DISTINCT:
            break
        print(f"  seed {seed}: gap {min(gaps):.2e}, route gap {rgap:.2e}, {len(set(ids))} distinct")
    else:
        raise RuntimeError("no seed with a clear greedy path")
    hf = gm.full_logits(model, prompt).numpy()
    err = float(np.abs(hf - np.stack(la)).max() / np.abs(hf).max())
    hf_ids, _, _, _ = gm.greedy_manual(model, prompt)
    print(f"  gguf_{name}: seed {seed}, llama.cpp vs transformers {err:.2e}, "
          f"same tokens {hf_ids == ids}, {os.path.getsize(path) / 1e3:.0f} kB")
    assert err < 1e-4 and hf_ids == ids, (err, hf_ids, ids)
    if name == "gpt_oss":
        clamp_fraction(model, prompt)
    write_golden(d, golden(prompt, la, ids, gaps, hf, seed, err, rgap))
    if name == "gpt_oss":
        make_gpt_oss_mxfp4(model, prompt, seed)
    if name == "deepseek2":  # the same weights in the older single-kv_b layout
        d2 = os.path.join(gm.OUT, "gguf_deepseek2_kvb")
        os.makedirs(d2, exist_ok=True)
        p2 = os.path.join(d2, "model.gguf")
        write_deepseek2(model, p2, False)
        la2, ids2, gaps2 = llama_outputs(p2, prompt)
        err2 = float(np.abs(hf - np.stack(la2)).max() / np.abs(hf).max())
        print(f"  gguf_deepseek2_kvb: llama.cpp vs transformers {err2:.2e}, same tokens "
              f"{ids2 == ids}")
        assert err2 < 1e-4 and ids2 == ids, (err2, ids2, ids)
        write_golden(d2, golden(prompt, la2, ids2, gaps2, hf, seed, err2, rgap))


def make_gpt_oss_mxfp4(model, prompt, seed):
    """The gpt_oss model with its experts rounded to MXFP4 and stored as GGUF
    MXFP4 blocks, as the released gpt-oss GGUF files hold them. llama.cpp
    multiplies MXFP4 blocks by activations rounded to 8 bits, so its logits
    differ from transformers' (exact on these values) by a few percent here
    (large gate weights that reach the SwiGLU clamp amplify it) and its greedy
    path leaves transformers' after some tokens; the golden keeps
    transformers' greedy tokens and the bound llama.cpp's logits met."""
    round_experts_mxfp4(model)
    d = os.path.join(gm.OUT, "gguf_gpt_oss_mxfp4")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.gguf")
    write_gpt_oss(model, path, mxfp4=True)
    la, ids, gaps = llama_outputs(path, prompt)
    hf = gm.full_logits(model, prompt).numpy()
    err = float(np.abs(hf - np.stack(la)).max() / np.abs(hf).max())
    hf_ids, _, _, hf_gaps = gm.greedy_manual(model, prompt)  # relative top-2 gaps
    print(f"  gguf_gpt_oss_mxfp4: llama.cpp vs transformers {err:.2e}, same tokens "
          f"{hf_ids == ids}, {os.path.getsize(path) / 1e3:.0f} kB")
    n_same = next((i for i, (a, b) in enumerate(zip(hf_ids, ids)) if a != b), len(ids))
    print(f"    greedy tokens equal for the first {n_same} of {len(ids)}; transformers' "
          f"smallest top-2 gap {min(hf_gaps):.2e}")
    assert err < 5e-2 and n_same >= 16 and min(hf_gaps) > 1e-3, (err, hf_ids, ids)
    rgap = mm.min_route_gap(model, prompt + hf_ids, model.config.num_experts_per_tok)
    # the greedy reference is transformers' (exact on MXFP4 values); llama.cpp's
    # logits are checked within the bound it met
    g = golden(prompt, la, hf_ids, hf_gaps, hf, seed, err, rgap)
    g["greedy_reference"] = "transformers"
    g["llama_cpp_rel_bound"] = float(f"{1.5 * err:.1e}")
    write_golden(d, g)


@torch.no_grad()
def clamp_fraction(model, prompt):
    """Share of layer 0's expert gate pre-activations (on the normed
    embeddings of the prompt) above the clamp: the test would mean nothing
    for the clamp if none were."""
    layer = model.model.layers[0]
    x = layer.input_layernorm(model.model.embed_tokens(torch.tensor([prompt])))
    gate = torch.einsum("bsd,edf->bsef", x.float(), layer.mlp.experts.gate_up_proj[:, :, 0::2].float())
    frac = float((gate > model.config.swiglu_limit).float().mean())
    print(f"  gpt_oss: layer 0 gate pre-activations above the clamp: {100 * frac:.1f}%")
    assert frac > 0.01, "the SwiGLU clamp never acts"


def fuzz_seeds():
    """Small deepseek2 (split kv_b) and gpt-oss files as seed inputs of the
    GGUF fuzzer (tests/fuzz/corpus/fuzz_gguf/)."""
    d = os.path.join(gm.ROOT, "tests", "fuzz", "corpus", "fuzz_gguf")
    small = dict(hidden_size=32, num_hidden_layers=2, vocab_size=32, max_position_embeddings=64)
    for name, sizes in (("deepseek2", dict(intermediate_size=32, moe_intermediate_size=16,
                                           n_routed_experts=4, num_experts_per_tok=2, n_group=2,
                                           topk_group=1, q_lora_rank=16, kv_lora_rank=16,
                                           qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8)),
                        ("gpt_oss", dict(intermediate_size=16, num_local_experts=4,
                                         num_experts_per_tok=2, head_dim=8,
                                         layer_types=["sliding_attention", "full_attention"]))):
        spec = MODELS[name]
        torch.manual_seed(0)
        model = spec["cls_model"](spec["cls_config"](**dict(spec["config"], **small, **sizes)))
        path = os.path.join(d, f"tiny_{name}.gguf")
        (write_gpt_oss if name == "gpt_oss" else lambda m, p: write_deepseek2(m, p, True))(model, path)
        os.chmod(path, 0o644)
        print(f"  {path}: {os.path.getsize(path)} bytes")


def main():
    torch.set_num_threads(1)
    for name in sys.argv[1:] or list(MODELS) + ["fuzz"]:
        if name == "fuzz":
            fuzz_seeds()
        else:
            make(name)


if __name__ == "__main__":
    main()
