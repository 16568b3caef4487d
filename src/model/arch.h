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
    AIR_ARCH_COUNT
} air_arch;

typedef enum {
    AIR_ROPE_SCALING_NONE = 0,
    AIR_ROPE_SCALING_LLAMA3 = 1, /* Llama 3.1 frequency scaling */
} air_rope_scaling;

#define AIR_MAX_EOS 8

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
    int32_t rope_orig_ctx;       /* llama3: original_max_position_embeddings */
    int32_t tie_embeddings;      /* lm_head shares the embedding matrix */
    int32_t attn_bias;           /* q/k/v projections have biases (qwen2) */
    int32_t qk_norm;             /* per-head RMSNorm on q and k (qwen3) */
    int32_t sliding_window;      /* attend to at most this many positions; 0 = all */
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

/* Architecture-neutral tensor names used in the layer store. Per layer: */
#define AIR_T_ATTN_NORM "attn_norm"  /* (n_embd) */
#define AIR_T_WQ "wq"                /* (n_head * head_dim, n_embd) */
#define AIR_T_WK "wk"                /* (n_head_kv * head_dim, n_embd) */
#define AIR_T_WV "wv"                /* (n_head_kv * head_dim, n_embd) */
#define AIR_T_WO "wo"                /* (n_embd, n_head * head_dim) */
#define AIR_T_BQ "bq"                /* (n_head * head_dim), qwen2 */
#define AIR_T_BK "bk"                /* (n_head_kv * head_dim), qwen2 */
#define AIR_T_BV "bv"                /* (n_head_kv * head_dim), qwen2 */
#define AIR_T_Q_NORM "q_norm"        /* (head_dim), qwen3 */
#define AIR_T_K_NORM "k_norm"        /* (head_dim), qwen3 */
#define AIR_T_FFN_NORM "ffn_norm"    /* (n_embd) */
#define AIR_T_W_GATE "w_gate"        /* (n_ff, n_embd) */
#define AIR_T_W_UP "w_up"            /* (n_ff, n_embd) */
#define AIR_T_W_DOWN "w_down"        /* (n_embd, n_ff) */
/* Whole-model tensors: */
#define AIR_T_TOK_EMBD "tok_embd"    /* (n_vocab, n_embd) */
#define AIR_T_OUT_NORM "out_norm"    /* (n_embd) */
#define AIR_T_OUTPUT "output"        /* (n_vocab, n_embd), absent when tied */

#endif
