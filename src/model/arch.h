/*
 * arch.h - model hyper-parameters, shared by every model source (HF folder,
 * GGUF) and by the layer store and the forward pass.
 *
 * A source fills an air_hparams; the store writes it into its manifest; the
 * runtime reads it back. Tensor names inside the layer store are the
 * architecture-neutral names below (AIR_T_*), whatever the source called them.
 */
#ifndef AIR_MODEL_ARCH_H
#define AIR_MODEL_ARCH_H

#include <stdint.h>

#include "airllm.h"

typedef enum {
    AIR_ARCH_LLAMA = 0, /* LlamaForCausalLM (also Mistral: same layer) */
    AIR_ARCH_MISTRAL = 1,
    AIR_ARCH_QWEN2 = 2, /* q/k/v biases */
    AIR_ARCH_QWEN3 = 3, /* per-head q/k RMSNorm, explicit head_dim */
    AIR_ARCH_GEMMA2 = 4, /* Gemma 2: gemma.c, soft-capped attention and logits */
    AIR_ARCH_GEMMA3 = 5, /* Gemma 3 (text): gemma.c, q/k norms, local/global RoPE */
    /* mixture-of-experts layers (moe.c); numbered apart from the dense ones */
    AIR_ARCH_QWEN2_MOE = 16, /* qwen2 attention, experts + sigmoid-gated shared expert */
    AIR_ARCH_QWEN3_MOE = 17, /* qwen3 attention, experts */
    AIR_ARCH_MIXTRAL = 18,   /* mistral attention, experts (renormalized top-k) */
    AIR_ARCH_DEEPSEEK_V3 = 19, /* MLA attention (mla.c), sigmoid group-limited routing,
                                  shared experts, dense first layers (also Kimi-K2) */
    AIR_ARCH_GPT_OSS = 20, /* attention sinks and biases, alternating sliding window,
                              biased router, clamped SwiGLU experts with biases */
    AIR_ARCH_COUNT
} air_arch;

typedef enum {
    AIR_ROPE_SCALING_NONE = 0,
    AIR_ROPE_SCALING_LLAMA3 = 1, /* Llama 3.1 frequency scaling */
    AIR_ROPE_SCALING_LINEAR = 2, /* every frequency divided by rope_factor */
    AIR_ROPE_SCALING_YARN = 3,   /* YaRN: ramped interpolation, cos/sin scaled */
} air_rope_scaling;

#define AIR_MAX_EOS 8
#define AIR_MAX_MLP_ONLY 16
#define AIR_MAX_EXPERT_USED 64 /* num_experts_per_tok */

typedef enum {
    AIR_ACT_SILU = 0,      /* silu(gate) * up */
    AIR_ACT_GELU_TANH = 1, /* gelu(gate), tanh approximation, * up (gemma) */
} air_activation;

typedef struct {
    air_arch arch;
    int32_t n_vocab;
    int32_t n_embd;      /* hidden_size */
    int32_t n_layer;     /* num_hidden_layers */
    int32_t n_head;      /* num_attention_heads */
    int32_t n_head_kv;   /* num_key_value_heads (GQA) */
    int32_t head_dim;    /* head_dim, default n_embd / n_head */
    int32_t n_ff;        /* intermediate_size */
    int32_t n_ctx_train; /* max_position_embeddings */
    float rms_eps;       /* rms_norm_eps */
    float rope_theta;    /* rope_theta */
    air_rope_scaling rope_scaling;
    float rope_factor;           /* llama3: factor */
    float rope_low_freq_factor;  /* llama3: low_freq_factor */
    float rope_high_freq_factor; /* llama3: high_freq_factor */
    int32_t rope_orig_ctx;       /* llama3, yarn: original_max_position_embeddings */
    float rope_beta_fast, rope_beta_slow; /* yarn: correction range, in rotations */
    int32_t rope_truncate;       /* yarn: round the correction range outward */
    float rope_attn_factor;      /* yarn: cos and sin are multiplied by it */
    float mla_scale_mult;        /* yarn + latent attention: softmax scale multiplier
                                    (mscale(factor, mscale_all_dim)^2); 0 means 1 */
    int32_t tie_embeddings;      /* lm_head shares the embedding matrix */
    int32_t attn_bias;           /* q/k/v projections have biases (qwen2) */
    int32_t qk_norm;             /* per-head RMSNorm on q and k (qwen3) */
    int32_t sliding_window;      /* attend to at most this many positions; 0 = all */
    /* Gemma (0 for the Llama family, so older manifests read unchanged): */
    int32_t swa_period;          /* sliding_window applies to every layer l except those with
                                    (l + 1) % swa_period == 0 (global layers); 0 = to all */
    float rope_theta_swa;        /* RoPE base of the sliding-window layers (no scaling there);
                                    0 = rope_theta */
    float embd_scale;            /* embeddings are multiplied by this (sqrt(n_embd)); 0 = 1 */
    int32_t norm_add_one;        /* RMSNorm weights are offsets: multiply by (1 + w) */
    int32_t post_norms;          /* RMSNorm on the outputs of attention and MLP too */
    air_activation act;          /* gated MLP activation */
    float attn_scale;            /* attention score scale; 0 = 1/sqrt(head_dim) */
    float attn_softcap;          /* scores = c * tanh(scores / c); 0 = none */
    float final_softcap;         /* logits = c * tanh(logits / c); 0 = none */
    /* Mixture of experts (n_expert == 0: a dense model). A layer l is an MoE
     * layer when air_hp_layer_is_moe() says so; its MLP is the router, the
     * n_expert_used experts it picks per row (each of width n_ff_exp) and an
     * optional shared expert of width n_ff_shexp. */
    int32_t n_expert;         /* num_experts / num_local_experts */
    int32_t n_expert_used;    /* num_experts_per_tok */
    int32_t n_ff_exp;         /* moe_intermediate_size (Mixtral: intermediate_size) */
    int32_t n_ff_shexp;       /* shared expert width; 0: none */
    int32_t shexp_gate;       /* shared expert scaled by sigmoid(x . w) (qwen2_moe) */
    int32_t expert_norm_topk; /* renormalize the top-k probabilities to sum to 1 */
    int32_t moe_step;         /* decoder_sparse_step: MoE when (l + 1) % step == 0 */
    int32_t n_mlp_only;       /* mlp_only_layers: dense MLP layers */
    int32_t mlp_only[AIR_MAX_MLP_ONLY];
    int32_t moe_first_dense;  /* first_k_dense_replace: layers below are dense */
    /* DeepSeek-V3 routing: p = sigmoid(logits); experts chosen by p + bias
     * within the topk_group best of n_group groups; weights p (normalized
     * when expert_norm_topk) times routed_scale */
    int32_t router_sigmoid;
    int32_t n_group, topk_group;
    float routed_scale; /* routed_scaling_factor; 0 means 1 */
    /* Multi-head latent attention (DeepSeek-V3), used when kv_lora_rank > 0:
     * head_dim is qk_rope_head_dim, the KV cache holds per position the
     * normalized latent (kv_lora_rank) and the rotated shared key (head_dim). */
    int32_t q_lora_rank;      /* 0: a plain q projection */
    int32_t kv_lora_rank;
    int32_t qk_nope_dim;      /* qk_nope_head_dim */
    int32_t v_head_dim;
    int32_t rope_interleave;  /* RoPE on (even, odd) pairs instead of halves */
    /* gpt-oss */
    int32_t attn_sinks;       /* per-head sink logit joins each softmax (then dropped) */
    int32_t attn_out_bias;    /* o_proj has a bias */
    int32_t swa_mask[4];      /* bit l: layer l uses sliding_window (layer_types); all
                                 zero: sliding_window applies to every layer */
    int32_t router_bias_topk_softmax; /* logits + bias, top-k, softmax over the k */
    int32_t expert_bias;      /* experts have biases (b_gate, b_up, b_down) */
    float swiglu_limit;       /* > 0: clamped SwiGLU: gate <= limit, |up| <= limit,
                                 out = (up + 1) * gate * sigmoid(alpha * gate) */
    float swiglu_alpha;
    int32_t bos_id;              /* -1 if none */
    int32_t n_eos;
    int32_t eos_ids[AIR_MAX_EOS];
} air_hparams;

/* The fields air_hparams_check() names in its errors. */
typedef enum {
    AIR_HP_VOCAB, AIR_HP_EMBD, AIR_HP_LAYER, AIR_HP_HEAD, AIR_HP_HEAD_KV, AIR_HP_HEAD_DIM,
    AIR_HP_FF, AIR_HP_CTX, AIR_HP_RMS_EPS, AIR_HP_ROPE_THETA, AIR_HP_ROPE_FACTOR, AIR_HP_ROPE_LOW,
    AIR_HP_ROPE_HIGH, AIR_HP_ROPE_ORIG_CTX, AIR_HP_SLIDING_WINDOW, AIR_HP_BOS, AIR_HP_EOS,
    AIR_HP_COUNT
} air_hp_field;

/* Checks that every hyper-parameter is within its range (sizes positive and
 * bounded, rms_eps in (0, 1), rope_theta > 0, llama3 factor >= 1 ...) and that
 * they agree (KV heads divide the heads, head_dim even, BOS/EOS ids inside the
 * vocabulary). keys[f] is the name of field f in the source `path`
 * (config.json keys, GGUF keys): the error names the file, the key and the
 * value. Returns AIR_OK or AIR_ERR_FORMAT (hparams_check.c). */
air_status air_hparams_check(const air_hparams *hp, const char *path,
                             const char *const keys[AIR_HP_COUNT]);

const char *air_arch_name(air_arch a);

/* The attention window of layer l: sliding_window, or 0 (all positions). */
int air_hp_layer_window(const air_hparams *hp, int l);

/* 1 if layer l of the model has a mixture-of-experts MLP. */
int air_hp_layer_is_moe(const air_hparams *hp, int l);

/* Architecture-neutral tensor names used in the layer store. Per layer: */
#define AIR_T_ATTN_NORM "attn_norm"  /* (n_embd) */
#define AIR_T_WQ "wq"                /* (n_head * head_dim, n_embd) */
#define AIR_T_WK "wk"                /* (n_head_kv * head_dim, n_embd) */
#define AIR_T_WV "wv"                /* (n_head_kv * head_dim, n_embd) */
#define AIR_T_WO "wo"                /* (n_embd, n_head * head_dim) */
#define AIR_T_BQ "bq"                /* (n_head * head_dim), qwen2 */
#define AIR_T_BK "bk"                /* (n_head_kv * head_dim), qwen2 */
#define AIR_T_BV "bv"                /* (n_head_kv * head_dim), qwen2 */
#define AIR_T_BO "bo"                /* (n_embd), gpt-oss */
#define AIR_T_SINKS "attn_sinks"     /* (n_head), gpt-oss */
#define AIR_T_Q_NORM "q_norm"        /* (head_dim), qwen3 */
#define AIR_T_K_NORM "k_norm"        /* (head_dim), qwen3 */
#define AIR_T_ATTN_POST_NORM "attn_post_norm" /* (n_embd), post_norms */
#define AIR_T_FFN_NORM "ffn_norm"    /* (n_embd) */
#define AIR_T_FFN_POST_NORM "ffn_post_norm"   /* (n_embd), post_norms */
#define AIR_T_W_GATE "w_gate"        /* (n_ff, n_embd) */
#define AIR_T_W_UP "w_up"            /* (n_ff, n_embd) */
#define AIR_T_W_DOWN "w_down"        /* (n_embd, n_ff) */
/* Mixture-of-experts layers (instead of w_gate/w_up/w_down): */
#define AIR_T_ROUTER "router"        /* (n_expert, n_embd) */
#define AIR_T_SHEXP_GATE "shexp_gate" /* (n_ff_shexp, n_embd) */
#define AIR_T_SHEXP_UP "shexp_up"    /* (n_ff_shexp, n_embd) */
#define AIR_T_SHEXP_DOWN "shexp_down" /* (n_embd, n_ff_shexp) */
#define AIR_T_SHEXP_INP "shexp_inp"  /* (1, n_embd), the shared expert's sigmoid gate */
/* Expert e's tensors are named "exp.<e>.w_gate" (n_ff_exp, n_embd),
 * "exp.<e>.w_up" (n_ff_exp, n_embd) and "exp.<e>.w_down" (n_embd, n_ff_exp),
 * with expert_bias also "exp.<e>.b_gate", "exp.<e>.b_up" (n_ff_exp) and
 * "exp.<e>.b_down" (n_embd). */
#define AIR_T_EXP_PREFIX "exp."
#define AIR_T_ROUTER_BIAS "router_bias" /* (n_expert), e_score_correction_bias */
/* Multi-head latent attention (instead of wq/wk/wv): */
#define AIR_T_WQ_A "wq_a"            /* (q_lora_rank, n_embd) */
#define AIR_T_Q_A_NORM "q_a_norm"    /* (q_lora_rank) */
#define AIR_T_WQ_B "wq_b"            /* (n_head * (qk_nope_dim + head_dim), q_lora_rank) */
#define AIR_T_WKV_A "wkv_a"          /* (kv_lora_rank + head_dim, n_embd) */
#define AIR_T_KV_A_NORM "kv_a_norm"  /* (kv_lora_rank) */
#define AIR_T_WKV_B "wkv_b"          /* (n_head * (qk_nope_dim + v_head_dim), kv_lora_rank) */
/* (wq is (n_head * (qk_nope_dim + head_dim), n_embd) without q_lora_rank;
 *  wo is (n_embd, n_head * v_head_dim)) */
/* Whole-model tensors: */
#define AIR_T_TOK_EMBD "tok_embd"    /* (n_vocab, n_embd) */
#define AIR_T_OUT_NORM "out_norm"    /* (n_embd) */
#define AIR_T_OUTPUT "output"        /* (n_vocab, n_embd), absent when tied */

#endif
