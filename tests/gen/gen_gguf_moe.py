#!/usr/bin/env python3
"""Tiny mixture-of-experts models in GGUF (llama.cpp's naming) and llama.cpp's outputs.

Builds a random Qwen3MoeForCausalLM with transformers (every layer MoE, as
llama.cpp's qwen3moe expects; 8 experts, top-2, norm_topk_prob), converts it
to GGUF the way llama.cpp's converter lays it out -- general.architecture
"qwen3moe", {arch}.expert_count / expert_used_count /
expert_feed_forward_length, blk.N.ffn_gate_inp.weight (the router) and the
stacked experts blk.N.ffn_{gate,up,down}_exps.weight (GGUF shape [n_in,
n_out, n_expert]) -- with F32 tensors holding the BF16 values exactly, then
runs it with llama-cpp-python (f32 KV cache) and writes
tests/fixtures/models/gguf_qwen3moe/:

  model.gguf    the model (about 0.9 MB)
  golden.json   prompt_ids, logits_all (every prompt position), greedy_ids
                (32 greedy tokens from an eval/argmax loop), min_top2_gap, and
                transformers' logits on the same weights as a cross-check

    python3 -m pip install llama-cpp-python gguf transformers torch numpy
It also writes tests/fixtures/models/gguf_qwen2moe/ (qwen2moe: q/k/v biases,
a shared expert ffn_*_shexp with its sigmoid gate ffn_gate_inp_shexp, top-k
not renormalized) and tests/fixtures/models/gguf_mixtral/ the same way: a random
MixtralForCausalLM as llama.cpp stores Mixtral -- general.architecture
"llama" with llama.expert_count / expert_used_count, the router and the
stacked experts, and Q/K rows permuted as llama.cpp's converter does for
every "llama" file.

    python3 tests/gen/gen_gguf_moe.py [qwen3moe|mixtral ...]
"""

import json
import os
import sys
import tempfile

import gguf
import numpy as np
import torch
import transformers
from transformers import (MixtralConfig, MixtralForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM,
                          Qwen3MoeConfig, Qwen3MoeForCausalLM)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_gguf_goldens as gg  # noqa: E402
import gen_models as gm  # noqa: E402
import gen_moe_models as mm  # noqa: E402

BASE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            head_dim=16, vocab_size=256, max_position_embeddings=256, hidden_act="silu",
            rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
            rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"})
MODELS = {
    "qwen3moe": dict(cls_config=Qwen3MoeConfig, cls_model=Qwen3MoeForCausalLM, seed=18000,
                     config=dict(BASE, intermediate_size=96, moe_intermediate_size=32,
                                 num_experts=8, num_experts_per_tok=2, norm_topk_prob=True,
                                 decoder_sparse_step=1, mlp_only_layers=[])),
    "qwen2moe": dict(cls_config=Qwen2MoeConfig, cls_model=Qwen2MoeForCausalLM, seed=20000,
                     config=dict(BASE, intermediate_size=96, moe_intermediate_size=32,
                                 shared_expert_intermediate_size=48, num_experts=8,
                                 num_experts_per_tok=2, norm_topk_prob=False, qkv_bias=True,
                                 decoder_sparse_step=1, mlp_only_layers=[],
                                 use_sliding_window=False, sliding_window=None)),
    "mixtral": dict(cls_config=MixtralConfig, cls_model=MixtralForCausalLM, seed=19000,
                    config=dict(BASE, intermediate_size=32, num_local_experts=8,
                                num_experts_per_tok=2)),
}


def add_tiny_vocab(w, n_vocab):
    """A small but consistent BPE vocabulary: the one merge uses and makes
    tokens of the list (the tests feed token ids)."""
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(["<unk>", "<s>", "</s>", "<|eot|>", "t", "0", "t0"] +
                     [f"x{i}" for i in range(n_vocab - 7)])
    w.add_token_types([3, 3, 3, 3] + [1] * (n_vocab - 4))
    w.add_token_merges(["t 0"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)


def write_gguf(model, path, arch):
    cfg = model.config
    sd = {k: v.detach().to(torch.bfloat16).float().numpy() for k, v in model.state_dict().items()}
    mix = arch == "mixtral"
    w = gguf.GGUFWriter(path, "llama" if mix else arch)
    w.add_name(f"tiny-{arch}")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    ff = cfg.intermediate_size if mix else cfg.moe_intermediate_size
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_expert_count(cfg.num_local_experts if mix else cfg.num_experts)
    w.add_expert_used_count(cfg.num_experts_per_tok)
    if not mix:
        w.add_expert_feed_forward_length(ff)
    if arch == "qwen2moe":
        w.add_expert_shared_feed_forward_length(cfg.shared_expert_intermediate_size)
    add_tiny_vocab(w, cfg.vocab_size)
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    names = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
             "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
             "self_attn.o_proj.weight": "attn_output.weight",
             "self_attn.q_norm.weight": "attn_q_norm.weight",
             "self_attn.k_norm.weight": "attn_k_norm.weight",
             "post_attention_layernorm.weight": "ffn_norm.weight",
             "mlp.gate.weight": "ffn_gate_inp.weight",
             "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
             "self_attn.v_proj.bias": "attn_v.bias",
             "mlp.shared_expert.gate_proj.weight": "ffn_gate_shexp.weight",
             "mlp.shared_expert.up_proj.weight": "ffn_up_shexp.weight",
             "mlp.shared_expert.down_proj.weight": "ffn_down_shexp.weight"}
    for l in range(cfg.num_hidden_layers):
        p = f"model.layers.{l}."
        for hf, gn in names.items():
            if p + hf not in sd:
                continue  # Mixtral: no q/k norms
            v = sd[p + hf]
            if mix and gn in ("attn_q.weight", "attn_k.weight"):  # the converter's order
                v = np.ascontiguousarray(gg.llama_permute(
                    v, cfg.num_attention_heads if gn == "attn_q.weight" else cfg.num_key_value_heads))
            w.add_tensor(f"blk.{l}.{gn}", v)
        if p + "mlp.shared_expert_gate.weight" in sd:  # llama.cpp keeps it as a vector
            w.add_tensor(f"blk.{l}.ffn_gate_inp_shexp.weight",
                         np.ascontiguousarray(sd[p + "mlp.shared_expert_gate.weight"].reshape(-1)))
        # stacked experts: numpy (E, n_out, n_in) = GGUF [n_in, n_out, E]
        gu = sd[p + "mlp.experts.gate_up_proj"]  # (E, 2 ff, d): gate rows, then up rows
        w.add_tensor(f"blk.{l}.ffn_gate_exps.weight", np.ascontiguousarray(gu[:, :ff, :]))
        w.add_tensor(f"blk.{l}.ffn_up_exps.weight", np.ascontiguousarray(gu[:, ff:, :]))
        w.add_tensor(f"blk.{l}.ffn_down_exps.weight", sd[p + "mlp.experts.down_proj"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_outputs(path, prompt):
    from llama_cpp import Llama
    llm = Llama(model_path=path, n_ctx=256, logits_all=True, n_threads=2, verbose=False, seed=0,
                type_k=0, type_v=0)
    llm.reset()
    llm.eval(prompt)
    nv = llm.n_vocab()
    la = [np.array(llm.scores[i][:nv], dtype=np.float32) for i in range(len(prompt))]
    ids, gaps, v = [], [], la[-1]
    for _ in range(gm.N_GEN):
        top = np.argsort(-v)[:2]
        gaps.append(float(v[top[0]] - v[top[1]]) / float(np.abs(v).max()))
        ids.append(int(top[0]))
        llm.eval([ids[-1]])
        v = np.array(llm.scores[llm.n_tokens - 1][:nv], dtype=np.float32)
    del llm
    return la, ids, gaps


def make(arch):
    spec = MODELS[arch]
    d = os.path.join(gm.OUT, f"gguf_{arch}")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.gguf")
    cfg = spec["cls_config"](**spec["config"])
    prompt = gm.prompt_for(f"gguf_{arch}", cfg.vocab_size, cfg.bos_token_id)
    for attempt in range(gm.MAX_SEED_TRIES):
        seed = spec["seed"] + attempt
        torch.manual_seed(seed)
        model = spec["cls_model"](cfg)
        mm.init_weights(model, seed)
        # through a BF16 checkpoint, as the other reference models: the weights
        # become BF16 values while the RoPE frequencies are recomputed in fp32
        with tempfile.TemporaryDirectory() as tmp:
            model.to(torch.bfloat16).save_pretrained(tmp)
            model = gm.load(tmp)
        write_gguf(model, path, arch)
        la, ids, gaps = llama_outputs(path, prompt)
        rgap = mm.min_route_gap(model, prompt + ids, cfg.num_experts_per_tok)
        if min(gaps) >= gm.GAP_REL and rgap >= mm.ROUTE_GAP and len(set(ids)) >= gm.MIN_DISTINCT:
            break
        print(f"  seed {seed}: gap {min(gaps):.2e}, route gap {rgap:.2e}, {len(set(ids))} distinct")
    else:
        raise RuntimeError("no seed with a clear greedy path")
    # cross-check: transformers on the same weights
    hf = gm.full_logits(model, prompt).numpy()
    err = float(np.abs(hf - np.stack(la)).max() / np.abs(hf).max())
    hf_ids, _, _, _ = gm.greedy_manual(model, prompt)
    assert err < 1e-4 and hf_ids == ids, (err, hf_ids, ids)
    golden = {
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
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    print(f"  gguf_{arch}: seed {seed}, llama.cpp vs transformers {err:.2e}, "
          f"{os.path.getsize(path) / 1e3:.0f} kB")


def main():
    torch.set_num_threads(1)
    for arch in sys.argv[1:] or list(MODELS):
        make(arch)


if __name__ == "__main__":
    main()
