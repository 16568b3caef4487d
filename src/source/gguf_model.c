/*
 * gguf_model.c - what GGUF files of the llama, qwen2 and qwen3 architectures
 * mean for the runtime: hyper-parameters, tensor names, Q/K row order.
 *
 * air_gguf_hparams() reads general.architecture and the "{arch}.*" keys
 * (llama.cpp's naming), and looks at which tensors exist to decide tied
 * embeddings (no output.weight), q/k/v biases (blk.0.attn_q.bias) and
 * per-head q/k norms (blk.0.attn_q_norm.weight). Llama 3.1-style RoPE
 * scaling is not stored as keys: the converter writes the per-frequency
 * factors as the tensor rope_freqs.weight, from which the scaling
 * parameters are recovered here.
 *
 * Only the accessors of gguf.h are used, so this file never touches bytes
 * of the file directly.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source/gguf.h"
#include "util/error.h"

/* ------------------------------------------------------------------------- */
/* Hyper-parameters                                                          */
/* ------------------------------------------------------------------------- */
typedef struct {
    const air_gguf *g;
    const char *arch;
    char key[256];
} hp_ctx;

static const char *akey(hp_ctx *c, const char *suffix) {
    snprintf(c->key, sizeof c->key, "%s.%s", c->arch, suffix);
    return c->key;
}

/* Reads a positive integer "{arch}.suffix" stored as a scalar or as a
 * per-layer array whose entries are all equal. Returns 1 if found, 0 if
 * absent, -1 on a bad value (with the status in *st). */
static int get_count(hp_ctx *c, const char *suffix, int32_t *v, air_status *st) {
    const char *key = akey(c, suffix);
    const air_gguf_value *x = air_gguf_get(c->g, key);
    if (!x)
        return 0;
    int32_t val;
    if (x->type == AIR_GGUF_ARRAY) {
        /* per-layer values: accept only uniform ones */
        int t = x->arr_type;
        if (x->arr_n == 0 || (t != AIR_GGUF_UINT32 && t != AIR_GGUF_INT32)) {
            *st = air_err(AIR_ERR_FORMAT, "%s: %s must be a positive integer", air_gguf_path(c->g),
                          key);
            return -1;
        }
        const int32_t *a = x->arr;
        for (uint64_t i = 1; i < x->arr_n; i++)
            if (a[i] != a[0]) {
                *st = air_err(AIR_ERR_UNSUPPORTED,
                              "%s: %s differs between layers (%d in layer 0, %d in layer %llu); "
                              "per-layer shapes are not supported",
                              air_gguf_path(c->g), key, a[0], a[i], (unsigned long long)i);
                return -1;
            }
        val = a[0];
    } else if (!air_gguf_get_i32(c->g, key, &val)) {
        *st = air_err(AIR_ERR_FORMAT, "%s: %s must be an integer", air_gguf_path(c->g), key);
        return -1;
    }
    if (val <= 0) {
        *st = air_err(AIR_ERR_FORMAT, "%s: %s is %d; it must be positive", air_gguf_path(c->g), key,
                      val);
        return -1;
    }
    *v = val;
    return 1;
}

static air_status require_count(hp_ctx *c, const char *suffix, int32_t *v) {
    air_status st = AIR_OK;
    int r = get_count(c, suffix, v, &st);
    if (r < 0)
        return st;
    if (r == 0)
        return air_err(AIR_ERR_FORMAT, "%s: required key %s.%s is missing", air_gguf_path(c->g),
                       c->arch, suffix);
    return AIR_OK;
}

static air_status optional_count(hp_ctx *c, const char *suffix, int32_t *v) {
    air_status st = AIR_OK;
    return get_count(c, suffix, v, &st) < 0 ? st : AIR_OK;
}

static air_status get_float(hp_ctx *c, const char *suffix, float *v) {
    const char *key = akey(c, suffix);
    if (!air_gguf_get(c->g, key))
        return AIR_OK;
    float f;
    if (!air_gguf_get_f32(c->g, key, &f) || !isfinite(f) || f <= 0)
        return air_err(AIR_ERR_FORMAT, "%s: %s must be a positive number", air_gguf_path(c->g),
                       key);
    *v = f;
    return AIR_OK;
}

/* Recovers Llama 3.1 RoPE scaling from rope_freqs.weight: entry i is the
 * factor that divides frequency theta^(-2i/head_dim): 1 for short
 * wavelengths, `factor` for long ones, and 1 / ((1 - s) / factor + s) in
 * between, with s = (orig_ctx / wavelen - low) / (high - low). Two
 * in-between entries give low and high exactly (up to fp32 rounding). */
static air_status rope_from_freqs(hp_ctx *c, const air_gguf_tensor *t, air_hparams *hp) {
    const char *path = air_gguf_path(c->g);
    int n = hp->head_dim / 2;
    if (t->ggml_type != AIR_GGML_F32 || air_gguf_tensor_nelements(t) != n)
        return air_err(AIR_ERR_FORMAT,
                       "%s: rope_freqs.weight must hold %d F32 values (head_dim / 2), found %lld "
                       "of type %s",
                       path, n, (long long)air_gguf_tensor_nelements(t),
                       air_ggml_type_name(t->ggml_type));
    float *f = malloc((size_t)n * sizeof *f);
    if (!f)
        return air_err(AIR_ERR_NOMEM, "%s: out of memory", path);
    air_status st = air_gguf_dequantize(c->g, t, f);
    if (st) {
        free(f);
        return st;
    }
    float factor = 1.0f;
    for (int i = 0; i < n; i++) {
        if (!isfinite(f[i]) || f[i] < 1.0f) {
            double bad = f[i];
            free(f);
            return air_err(AIR_ERR_UNSUPPORTED,
                           "%s: rope_freqs.weight[%d] = %g: only Llama 3-style factors (>= 1) are "
                           "supported",
                           path, i, bad);
        }
        if (f[i] > factor)
            factor = f[i];
    }
    int32_t orig = 8192; /* the converter's default original context */
    uint32_t u;
    if (air_gguf_get_u32(c->g, akey(c, "rope.scaling.original_context_length"), &u) && u > 0 &&
        u <= INT32_MAX)
        orig = (int32_t)u;
    /* x = orig / wavelen for the in-between entries, s from the factor */
    double xs[2], ss[2];
    int k = 0;
    for (int i = 0; i < n && k < 2; i++) {
        double r = f[i];
        if (r <= 1.0 + 1e-6 || r >= factor * (1.0 - 1e-6))
            continue;
        double freq = pow((double)hp->rope_theta, -2.0 * i / hp->head_dim);
        xs[k] = orig / (2.0 * M_PI / freq);
        ss[k] = (1.0 / r - 1.0 / factor) / (1.0 - 1.0 / factor);
        k++;
    }
    free(f);
    hp->rope_scaling = AIR_ROPE_SCALING_LLAMA3;
    hp->rope_factor = factor;
    hp->rope_orig_ctx = orig;
    hp->rope_low_freq_factor = 1.0f; /* Llama 3.1 values when they cannot be recovered */
    hp->rope_high_freq_factor = 4.0f;
    if (k == 2 && fabs(ss[0] - ss[1]) > 1e-9) {
        double span = (xs[0] - xs[1]) / (ss[0] - ss[1]); /* high - low */
        double low = xs[0] - ss[0] * span;
        if (span > 0 && low > 0) {
            /* the configs use round numbers: snap tiny rounding noise */
            double lr = round(low * 1000) / 1000, hr = round((low + span) * 1000) / 1000;
            hp->rope_low_freq_factor = (float)(fabs(lr - low) < 1e-3 ? lr : low);
            hp->rope_high_freq_factor = (float)(fabs(hr - low - span) < 1e-3 ? hr : low + span);
        }
    }
    return AIR_OK;
}

/* The shared range and consistency checks, with the GGUF keys in the errors. */
static air_status check_hparams(hp_ctx *c, const air_hparams *hp) {
    static const char *const suffix[AIR_HP_COUNT] = {
        [AIR_HP_VOCAB] = "vocab_size",
        [AIR_HP_EMBD] = "embedding_length",
        [AIR_HP_LAYER] = "block_count",
        [AIR_HP_HEAD] = "attention.head_count",
        [AIR_HP_HEAD_KV] = "attention.head_count_kv",
        [AIR_HP_HEAD_DIM] = "attention.key_length",
        [AIR_HP_FF] = "feed_forward_length",
        [AIR_HP_CTX] = "context_length",
        [AIR_HP_RMS_EPS] = "attention.layer_norm_rms_epsilon",
        [AIR_HP_ROPE_THETA] = "rope.freq_base",
        [AIR_HP_ROPE_ORIG_CTX] = "rope.scaling.original_context_length",
        [AIR_HP_SLIDING_WINDOW] = "attention.sliding_window",
    };
    char names[AIR_HP_COUNT][128];
    const char *keys[AIR_HP_COUNT];
    for (int f = 0; f < AIR_HP_COUNT; f++) {
        if (suffix[f])
            snprintf(names[f], sizeof names[f], "%s.%s", c->arch, suffix[f]);
        keys[f] = names[f];
    }
    /* recovered from the rope_freqs.weight tensor, or the tokenizer keys */
    snprintf(names[AIR_HP_ROPE_FACTOR], sizeof names[0], "rope_freqs.weight (scaling factor)");
    snprintf(names[AIR_HP_ROPE_LOW], sizeof names[0], "rope_freqs.weight (low_freq_factor)");
    snprintf(names[AIR_HP_ROPE_HIGH], sizeof names[0], "rope_freqs.weight (high_freq_factor)");
    snprintf(names[AIR_HP_BOS], sizeof names[0], "tokenizer.ggml.bos_token_id");
    snprintf(names[AIR_HP_EOS], sizeof names[0], "tokenizer.ggml.eos_token_id");
    return air_hparams_check(hp, air_gguf_path(c->g), keys);
}

static void add_eos(air_hparams *hp, int32_t id) {
    for (int i = 0; i < hp->n_eos; i++)
        if (hp->eos_ids[i] == id)
            return;
    if (hp->n_eos < AIR_MAX_EOS)
        hp->eos_ids[hp->n_eos++] = id;
}

/* Gemma 2 / Gemma 3 as llama.cpp reads them. The converter stores the norm
 * weights as 1 + w (so norm_add_one stays 0) and no key for what llama.cpp
 * fixes per architecture unless a key says otherwise: one global layer in 2
 * (gemma2) or 6 (gemma3; attention.sliding_window_pattern: a period or one
 * bool per layer),
 * local RoPE base 10000 (gemma3), attention scale 1/sqrt(head_dim) except
 * for the 27B models (n_embd / n_head: their query_pre_attn_scalar). */
static air_status gemma_hparams(hp_ctx *c, air_hparams *hp) {
    int g3 = hp->arch == AIR_ARCH_GEMMA3;
    air_status st;
    hp->post_norms = 1;
    hp->act = AIR_ACT_GELU_TANH;
    hp->embd_scale = sqrtf((float)hp->n_embd);
    hp->swa_period = g3 ? 6 : 2;
    /* the pattern: a period, or one bool per layer (true: sliding) */
    const air_gguf_value *pat = air_gguf_get(c->g, akey(c, "attention.sliding_window_pattern"));
    if (pat && pat->type == AIR_GGUF_ARRAY) {
        if (pat->arr_type != AIR_GGUF_BOOL || pat->arr_n != (uint64_t)hp->n_layer)
            return air_err(AIR_ERR_FORMAT, "%s: %s must hold one bool per layer (%d)",
                           air_gguf_path(c->g), c->key, hp->n_layer);
        const uint8_t *swa = pat->arr;
        int first_full = 0;
        while (first_full < hp->n_layer && swa[first_full])
            first_full++;
        hp->swa_period = first_full + 1;
        for (int l = 0; l < hp->n_layer; l++)
            if (!swa[l] != ((l + 1) % hp->swa_period == 0))
                return air_err(AIR_ERR_UNSUPPORTED,
                               "%s: %s: layer %d breaks the pattern of one global layer every "
                               "%d; only periodic patterns are supported",
                               air_gguf_path(c->g), c->key, l, hp->swa_period);
    } else if (pat && (st = optional_count(c, "attention.sliding_window_pattern", &hp->swa_period))) {
        return st;
    }
    hp->rope_theta_swa = g3 ? 10000.0f : 0.0f;
    if (g3 && (st = get_float(c, "rope.freq_base_swa", &hp->rope_theta_swa)))
        return st;
    int is_27b = hp->n_layer == (g3 ? 62 : 46);
    hp->attn_scale = 1.0f / sqrtf(is_27b ? (float)(hp->n_embd / hp->n_head) : (float)hp->head_dim);
    if ((st = get_float(c, "attn_logit_softcapping", &hp->attn_softcap)) ||
        (st = get_float(c, "final_logit_softcapping", &hp->final_softcap)))
        return st;
    if (g3) /* llama.cpp's gemma3 graph soft-caps the logits only */
        hp->attn_softcap = 0.0f;
    return AIR_OK;
}

/* Head sizes of the plain attention architectures. */
static air_status head_hparams(hp_ctx *c, air_hparams *hp) {
    const char *path = air_gguf_path(c->g);
    air_status st;
    hp->n_head_kv = hp->n_head;
    if ((st = optional_count(c, "attention.head_count_kv", &hp->n_head_kv)))
        return st;
    hp->head_dim = 0;
    if ((st = optional_count(c, "attention.key_length", &hp->head_dim)))
        return st;
    if (!hp->head_dim) {
        if (hp->n_embd % hp->n_head)
            return air_err(AIR_ERR_FORMAT,
                           "%s: embedding_length %d is not a multiple of head_count %d and "
                           "%s.attention.key_length is missing",
                           path, hp->n_embd, hp->n_head, c->arch);
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    int32_t vlen = hp->head_dim, rdim = hp->head_dim;
    if ((st = optional_count(c, "attention.value_length", &vlen)) ||
        (st = optional_count(c, "rope.dimension_count", &rdim)))
        return st;
    if (vlen != hp->head_dim)
        return air_err(AIR_ERR_UNSUPPORTED,
                       "%s: value head size %d differs from key head size %d; not supported", path,
                       vlen, hp->head_dim);
    if (rdim != hp->head_dim)
        return air_err(AIR_ERR_UNSUPPORTED,
                       "%s: RoPE over %d of %d head dimensions (partial rotary) is not supported",
                       path, rdim, hp->head_dim);
    return AIR_OK;
}

/* DeepSeek-V2/V3 latent attention ("deepseek2"). Current converters store
 * it as multi-query attention over the latent (head_count_kv 1, key_length
 * kv_lora_rank + rope, value_length kv_lora_rank) with the per-head sizes
 * in key_length_mla / value_length_mla; older files have the per-head sizes
 * in key_length / value_length. rope.dimension_count is qk_rope_head_dim. */
static air_status mla_hparams(hp_ctx *c, air_hparams *hp) {
    const char *path = air_gguf_path(c->g);
    air_status st;
    int32_t klen = 0, vlen = 0, kmla = 0, vmla = 0;
    if ((st = require_count(c, "rope.dimension_count", &hp->head_dim)) ||
        (st = require_count(c, "attention.kv_lora_rank", &hp->kv_lora_rank)) ||
        (st = optional_count(c, "attention.q_lora_rank", &hp->q_lora_rank)) ||
        (st = optional_count(c, "attention.key_length_mla", &kmla)) ||
        (st = optional_count(c, "attention.value_length_mla", &vmla)))
        return st;
    if (kmla && vmla) {
        klen = kmla;
        vlen = vmla;
    } else if ((st = require_count(c, "attention.key_length", &klen)) ||
               (st = require_count(c, "attention.value_length", &vlen)))
        return st;
    if (klen <= hp->head_dim || hp->head_dim % 2)
        return air_err(AIR_ERR_FORMAT,
                       "%s: per-head key size %d must exceed the even RoPE size %d "
                       "(%s.attention.key_length%s, rope.dimension_count)",
                       path, klen, hp->head_dim, c->arch, kmla ? "_mla" : "");
    hp->qk_nope_dim = klen - hp->head_dim;
    hp->v_head_dim = vlen;
    hp->n_head_kv = hp->n_head; /* the latent serves every head */
    hp->rope_interleave = 1;    /* llama.cpp rotates (even, odd) pairs here */
    return AIR_OK;
}

/* YaRN as llama.cpp reads it: rope.scaling.{factor, original_context_length,
 * yarn_beta_fast, yarn_beta_slow, yarn_log_multiplier}; the correction range
 * is rounded outward. cos/sin are scaled by mscale(factor, 1); with latent
 * attention the converter keeps 0.1 * mscale_all_dim as the log multiplier
 * m, the softmax scale gains (1 + m ln factor)^2 and cos/sin are divided by
 * the same 1 + m ln factor (DeepSeek's mscale / mscale_all_dim). */
static air_status yarn_hparams(hp_ctx *c, float factor, air_hparams *hp) {
    const char *path = air_gguf_path(c->g);
    air_status st;
    int32_t orig = 0;
    float bf = 32.0f, bs = 1.0f, logm = 0.0f;
    if ((st = require_count(c, "rope.scaling.original_context_length", &orig)) ||
        (st = get_float(c, "rope.scaling.yarn_beta_fast", &bf)) ||
        (st = get_float(c, "rope.scaling.yarn_beta_slow", &bs)) ||
        (st = get_float(c, "rope.scaling.yarn_log_multiplier", &logm)))
        return st;
    if (!(factor > 1.0f))
        return air_err(AIR_ERR_FORMAT, "%s: yarn RoPE scaling needs %s.rope.scaling.factor > 1",
                       path, c->arch);
    double lf = log((double)factor), ms = 0.1 * lf + 1.0;
    hp->rope_scaling = AIR_ROPE_SCALING_YARN;
    hp->rope_factor = factor;
    hp->rope_orig_ctx = orig;
    hp->rope_beta_fast = bf;
    hp->rope_beta_slow = bs;
    hp->rope_truncate = 1;
    hp->rope_attn_factor = (float)ms;
    if (hp->kv_lora_rank > 0 && logm > 0) {
        double m = 1.0 + logm * lf;
        hp->rope_attn_factor = (float)(ms / m);
        hp->mla_scale_mult = (float)(m * m);
    }
    return AIR_OK;
}

/* The routing of deepseek2 files: sigmoid scores with exp_probs_b (V3);
 * llama.cpp's softmax routing of DeepSeek-V2 is not implemented here. */
static air_status deepseek_moe_hparams(hp_ctx *c, air_hparams *hp) {
    const char *path = air_gguf_path(c->g);
    air_status st;
    int32_t shared = 0;
    uint32_t gating = 0;
    int norm = 0;
    hp->n_group = hp->topk_group = 1;
    hp->routed_scale = 1.0f;
    if ((st = optional_count(c, "leading_dense_block_count", &hp->moe_first_dense)) ||
        (st = optional_count(c, "expert_shared_count", &shared)) ||
        (st = optional_count(c, "expert_group_count", &hp->n_group)) ||
        (st = optional_count(c, "expert_group_used_count", &hp->topk_group)) ||
        (st = get_float(c, "expert_weights_scale", &hp->routed_scale)))
        return st;
    if (hp->n_expert % hp->n_group || hp->topk_group > hp->n_group ||
        hp->n_expert_used > hp->topk_group * (hp->n_expert / hp->n_group) ||
        hp->moe_first_dense >= hp->n_layer)
        return air_err(AIR_ERR_FORMAT,
                       "%s: expert groups out of range (%d experts, %d used, %d groups, %d used "
                       "groups, %d leading dense layers of %d)",
                       path, hp->n_expert, hp->n_expert_used, hp->n_group, hp->topk_group,
                       hp->moe_first_dense, hp->n_layer);
    air_gguf_get_u32(c->g, akey(c, "expert_gating_func"), &gating);
    char probs[64];
    snprintf(probs, sizeof probs, "blk.%d.exp_probs_b.bias", hp->moe_first_dense);
    if (gating != 2 || !air_gguf_find_tensor(c->g, probs))
        return air_err(AIR_ERR_UNSUPPORTED,
                       "%s: only sigmoid expert routing with a score correction bias "
                       "(DeepSeek-V3, Kimi-K2: %s.expert_gating_func 2 and %s) is supported",
                       path, c->arch, probs);
    if (air_gguf_get_bool(c->g, akey(c, "expert_weights_norm"), &norm))
        hp->expert_norm_topk = norm != 0;
    hp->n_ff_shexp = shared * hp->n_ff_exp;
    hp->router_sigmoid = 1;
    return AIR_OK;
}

/* gpt-oss as llama.cpp runs it: sliding window on the even layers, the
 * released models' SwiGLU clamp (7) and alpha (1.702), which the file does
 * not store. */
static void gptoss_hparams(hp_ctx *c, air_hparams *hp) {
    hp->attn_out_bias = air_gguf_find_tensor(c->g, "blk.0.attn_output.bias") != NULL;
    hp->router_bias_topk_softmax = 1;
    hp->expert_bias = 1;
    hp->attn_sinks = 1;
    hp->swiglu_limit = 7.0f;
    hp->swiglu_alpha = 1.702f;
    for (int l = 0; l < hp->n_layer && l < 128; l += 2)
        hp->swa_mask[l / 32] = (int32_t)((uint32_t)hp->swa_mask[l / 32] | 1u << (l % 32));
}

air_status air_gguf_hparams(const air_gguf *g, air_hparams *hp) {
    const char *path = air_gguf_path(g);
    memset(hp, 0, sizeof *hp);
    hp->bos_id = -1;
    hp_ctx ctx = {g, NULL, {0}}, *c = &ctx;
    c->arch = air_gguf_get_str(g, "general.architecture");
    if (!c->arch)
        return air_err(AIR_ERR_FORMAT, "%s: general.architecture is missing or not a string", path);
    if (strcmp(c->arch, "llama") == 0)
        hp->arch = AIR_ARCH_LLAMA;
    else if (strcmp(c->arch, "qwen2") == 0)
        hp->arch = AIR_ARCH_QWEN2;
    else if (strcmp(c->arch, "qwen3") == 0)
        hp->arch = AIR_ARCH_QWEN3;
    else if (strcmp(c->arch, "gemma2") == 0)
        hp->arch = AIR_ARCH_GEMMA2;
    else if (strcmp(c->arch, "gemma3") == 0)
        hp->arch = AIR_ARCH_GEMMA3;
    else if (strcmp(c->arch, "qwen3moe") == 0)
        hp->arch = AIR_ARCH_QWEN3_MOE;
    else if (strcmp(c->arch, "qwen2moe") == 0)
        hp->arch = AIR_ARCH_QWEN2_MOE;
    else if (strcmp(c->arch, "deepseek2") == 0)
        hp->arch = AIR_ARCH_DEEPSEEK_V3;
    else if (strcmp(c->arch, "gpt-oss") == 0)
        hp->arch = AIR_ARCH_GPT_OSS;
    else
        return air_err(AIR_ERR_UNSUPPORTED,
                       "%s: architecture '%s' is not supported (supported: llama, qwen2, qwen3, "
                       "gemma2, gemma3, qwen2moe, qwen3moe, deepseek2, gpt-oss)",
                       path, c->arch);

    air_status st;
    if ((st = require_count(c, "embedding_length", &hp->n_embd)) ||
        (st = require_count(c, "block_count", &hp->n_layer)) ||
        (st = require_count(c, "feed_forward_length", &hp->n_ff)) ||
        (st = require_count(c, "attention.head_count", &hp->n_head)) ||
        (st = require_count(c, "context_length", &hp->n_ctx_train)))
        return st;
    if (hp->arch == AIR_ARCH_DEEPSEEK_V3) {
        if ((st = mla_hparams(c, hp)))
            return st;
    } else if ((st = head_hparams(c, hp)))
        return st;
    hp->rms_eps = hp->arch == AIR_ARCH_LLAMA ? 1e-5f : 1e-6f;
    hp->rope_theta = 10000.0f;
    if ((st = get_float(c, "attention.layer_norm_rms_epsilon", &hp->rms_eps)) ||
        (st = get_float(c, "rope.freq_base", &hp->rope_theta)))
        return st;

    /* RoPE scaling */
    const char *stype = air_gguf_get_str(g, akey(c, "rope.scaling.type"));
    float sfactor = 1.0f;
    if ((st = get_float(c, "rope.scaling.factor", &sfactor)))
        return st;
    if (stype && strcmp(stype, "linear") == 0 && sfactor != 1.0f) {
        hp->rope_scaling = AIR_ROPE_SCALING_LINEAR;
        hp->rope_factor = sfactor;
    } else if (stype && strcmp(stype, "yarn") == 0) {
        if ((st = yarn_hparams(c, sfactor, hp)))
            return st;
    } else if (stype && strcmp(stype, "none") != 0 && sfactor != 1.0f)
        return air_err(AIR_ERR_UNSUPPORTED,
                       "%s: RoPE scaling '%s' (factor %g) is not supported (supported: none, "
                       "linear, llama3, yarn)",
                       path, stype, (double)sfactor);
    const air_gguf_tensor *rf = air_gguf_find_tensor(g, "rope_freqs.weight");
    if (rf && (st = rope_from_freqs(c, rf, hp)))
        return st;

    int32_t sw = 0;
    if ((st = optional_count(c, "attention.sliding_window", &sw)))
        return st;
    hp->sliding_window = sw;

    /* vocabulary: explicit key, else the token list, else the embedding */
    const air_gguf_tensor *emb = air_gguf_find_tensor(g, "token_embd.weight");
    uint64_t ntok = 0;
    int ttype;
    hp->n_vocab = 0;
    if ((st = optional_count(c, "vocab_size", &hp->n_vocab)))
        return st;
    if (!hp->n_vocab && air_gguf_get_arr(g, "tokenizer.ggml.tokens", &ttype, &ntok, NULL) &&
        ntok > 0 && ntok <= INT32_MAX)
        hp->n_vocab = (int32_t)ntok;
    if (!hp->n_vocab && emb && emb->n_dims == 2 && emb->ne[1] <= INT32_MAX)
        hp->n_vocab = (int32_t)emb->ne[1];
    if (hp->n_vocab <= 0)
        return air_err(AIR_ERR_FORMAT,
                       "%s: cannot tell the vocabulary size (no %s.vocab_size, "
                       "tokenizer.ggml.tokens or token_embd.weight)",
                       path, c->arch);
    if (!emb)
        return air_err(AIR_ERR_FORMAT, "%s: tensor token_embd.weight is missing", path);
    if (emb->n_dims != 2 || emb->ne[0] != hp->n_embd || emb->ne[1] != hp->n_vocab)
        return air_err(AIR_ERR_FORMAT,
                       "%s: token_embd.weight has shape [%lld, %lld] (GGUF order), expected "
                       "[%d, %d] (embedding_length, vocabulary)",
                       path, (long long)emb->ne[0], (long long)emb->ne[1], hp->n_embd, hp->n_vocab);

    if ((hp->arch == AIR_ARCH_GEMMA2 || hp->arch == AIR_ARCH_GEMMA3) &&
        (st = gemma_hparams(c, hp)))
        return st;

    /* llama.cpp stores Mixtral as "llama" with a router and stacked experts */
    if (hp->arch == AIR_ARCH_LLAMA && air_gguf_find_tensor(g, "blk.0.ffn_gate_inp.weight"))
        hp->arch = AIR_ARCH_MIXTRAL;
    int ds = hp->arch == AIR_ARCH_DEEPSEEK_V3, oss = hp->arch == AIR_ARCH_GPT_OSS;
    if (hp->arch == AIR_ARCH_QWEN3_MOE || hp->arch == AIR_ARCH_QWEN2_MOE ||
        hp->arch == AIR_ARCH_MIXTRAL || ds || oss) {
        /* llama.cpp's MoE keys; qwen3moe and Mixtral renormalize the top-k
         * weights, qwen2moe does not and has a sigmoid-gated shared expert */
        hp->n_ff_exp = hp->arch == AIR_ARCH_MIXTRAL ? hp->n_ff : 0;
        if ((st = require_count(c, "expert_count", &hp->n_expert)) ||
            (st = require_count(c, "expert_used_count", &hp->n_expert_used)) ||
            (st = (hp->arch == AIR_ARCH_MIXTRAL ? optional_count : require_count)(
                 c, "expert_feed_forward_length", &hp->n_ff_exp)) ||
            (st = optional_count(c, "expert_shared_feed_forward_length", &hp->n_ff_shexp)))
            return st;
        if (hp->n_expert > 4096 || hp->n_expert_used > hp->n_expert ||
            hp->n_expert_used > AIR_MAX_EXPERT_USED)
            return air_err(AIR_ERR_FORMAT, "%s: %s.expert_used_count %d / expert_count %d out of "
                           "range", path, c->arch, hp->n_expert_used, hp->n_expert);
        hp->expert_norm_topk = hp->arch != AIR_ARCH_QWEN2_MOE && !ds && !oss;
        hp->moe_step = 1;
        hp->shexp_gate = air_gguf_find_tensor(g, "blk.0.ffn_gate_inp_shexp.weight") != NULL;
        if (ds && (st = deepseek_moe_hparams(c, hp)))
            return st;
        if (oss)
            gptoss_hparams(c, hp);
    }
    hp->tie_embeddings = air_gguf_find_tensor(g, "output.weight") == NULL;
    hp->attn_bias = air_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    hp->qk_norm = air_gguf_find_tensor(g, "blk.0.attn_q_norm.weight") != NULL;

    /* special tokens */
    static const char *const eos_keys[] = {"tokenizer.ggml.eos_token_id",
                                           "tokenizer.ggml.eot_token_id",
                                           "tokenizer.ggml.eom_token_id"};
    int32_t id;
    if (air_gguf_get_i32(g, "tokenizer.ggml.bos_token_id", &id) && id >= 0) {
        if (id >= hp->n_vocab)
            return air_err(AIR_ERR_FORMAT,
                           "%s: tokenizer.ggml.bos_token_id %d is outside the vocabulary (%d)",
                           path, id, hp->n_vocab);
        hp->bos_id = id;
    }
    for (size_t i = 0; i < sizeof eos_keys / sizeof *eos_keys; i++) {
        if (!air_gguf_get_i32(g, eos_keys[i], &id) || id < 0)
            continue;
        if (id >= hp->n_vocab)
            return air_err(AIR_ERR_FORMAT, "%s: %s %d is outside the vocabulary (%d)", path,
                           eos_keys[i], id, hp->n_vocab);
        add_eos(hp, id);
    }
    return check_hparams(c, hp);
}

/* ------------------------------------------------------------------------- */
/* Tensor names                                                              */
/* ------------------------------------------------------------------------- */
static const char *const g_layer_names[][2] = {
    {"attn_norm.weight", AIR_T_ATTN_NORM},
    {"attn_q.weight", AIR_T_WQ},
    {"attn_k.weight", AIR_T_WK},
    {"attn_v.weight", AIR_T_WV},
    {"attn_output.weight", AIR_T_WO},
    {"attn_q.bias", AIR_T_BQ},
    {"attn_k.bias", AIR_T_BK},
    {"attn_v.bias", AIR_T_BV},
    {"attn_q_norm.weight", AIR_T_Q_NORM},
    {"attn_k_norm.weight", AIR_T_K_NORM},
    {"ffn_norm.weight", AIR_T_FFN_NORM},
    {"post_attention_norm.weight", AIR_T_ATTN_POST_NORM}, /* gemma */
    {"post_ffw_norm.weight", AIR_T_FFN_POST_NORM},        /* gemma */
    {"ffn_gate.weight", AIR_T_W_GATE},
    {"ffn_up.weight", AIR_T_W_UP},
    {"ffn_down.weight", AIR_T_W_DOWN},
    {"ffn_gate_inp.weight", AIR_T_ROUTER},
    {"ffn_gate_shexp.weight", AIR_T_SHEXP_GATE},
    {"ffn_up_shexp.weight", AIR_T_SHEXP_UP},
    {"ffn_down_shexp.weight", AIR_T_SHEXP_DOWN},
    {"ffn_gate_inp_shexp.weight", AIR_T_SHEXP_INP},
    {"attn_q_a.weight", AIR_T_WQ_A}, /* deepseek2 */
    {"attn_q_a_norm.weight", AIR_T_Q_A_NORM},
    {"attn_q_b.weight", AIR_T_WQ_B},
    {"attn_kv_a_mqa.weight", AIR_T_WKV_A},
    {"attn_kv_a_norm.weight", AIR_T_KV_A_NORM},
    {"attn_kv_b.weight", AIR_T_WKV_B},
    {"exp_probs_b.bias", AIR_T_ROUTER_BIAS},
    {"attn_output.bias", AIR_T_BO}, /* gpt-oss */
    {"attn_sinks.weight", AIR_T_SINKS},
};

/* Names that depend on the architecture: gpt-oss's MLP norm and router bias. */
static const struct {
    air_arch arch;
    const char *gguf, *neutral;
} g_arch_names[] = {
    {AIR_ARCH_GPT_OSS, "post_attention_norm.weight", AIR_T_FFN_NORM},
    {AIR_ARCH_GPT_OSS, "ffn_gate_inp.bias", AIR_T_ROUTER_BIAS},
};

/* Experts are stacked, one tensor per kind for all experts of a layer (GGUF
 * shape [n_in, n_out, n_expert]): neutral "exp.<e>.<part>" -> its name. */
static const char *const g_expert_names[][2] = {
    {"ffn_gate_exps.weight", AIR_T_W_GATE},
    {"ffn_up_exps.weight", AIR_T_W_UP},
    {"ffn_down_exps.weight", AIR_T_W_DOWN},
    {"ffn_gate_exps.bias", "b_gate"}, /* gpt-oss: [n_out, n_expert] */
    {"ffn_up_exps.bias", "b_up"},
    {"ffn_down_exps.bias", "b_down"},
};

int air_gguf_expert_tensor(int layer, const char *neutral, int *expert, char *buf, size_t cap) {
    int e;
    char part[16];
    if (layer < 0 || !neutral || sscanf(neutral, AIR_T_EXP_PREFIX "%d.%15s", &e, part) != 2 || e < 0)
        return 0;
    for (size_t i = 0; i < sizeof g_expert_names / sizeof *g_expert_names; i++)
        if (strcmp(part, g_expert_names[i][1]) == 0) {
            int n = snprintf(buf, cap, "blk.%d.%s", layer, g_expert_names[i][0]);
            *expert = e;
            return n > 0 && (size_t)n < cap;
        }
    return 0;
}

static const char *const g_model_names[][2] = {
    {"token_embd.weight", AIR_T_TOK_EMBD},
    {"output_norm.weight", AIR_T_OUT_NORM},
    {"output.weight", AIR_T_OUTPUT},
};

int air_gguf_map_name(const char *name, int *layer, const char **neutral) {
    if (!name)
        return 0;
    if (strncmp(name, "blk.", 4) == 0) {
        const char *p = name + 4;
        long n = 0;
        if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
            return 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            n = n * 10 + (*p - '0');
            if (n > 1000000)
                return 0;
        }
        if (*p != '.')
            return 0;
        p++;
        for (size_t i = 0; i < sizeof g_layer_names / sizeof *g_layer_names; i++)
            if (strcmp(p, g_layer_names[i][0]) == 0) {
                *layer = (int)n;
                *neutral = g_layer_names[i][1];
                return 1;
            }
        return 0;
    }
    for (size_t i = 0; i < sizeof g_model_names / sizeof *g_model_names; i++)
        if (strcmp(name, g_model_names[i][0]) == 0) {
            *layer = -1;
            *neutral = g_model_names[i][1];
            return 1;
        }
    return 0;
}

int air_gguf_tensor_name(int layer, const char *neutral, char *buf, size_t cap) {
    if (!neutral || !buf || cap == 0)
        return 0;
    if (layer >= 0) {
        for (size_t i = 0; i < sizeof g_layer_names / sizeof *g_layer_names; i++)
            if (strcmp(neutral, g_layer_names[i][1]) == 0) {
                int n = snprintf(buf, cap, "blk.%d.%s", layer, g_layer_names[i][0]);
                return n > 0 && (size_t)n < cap;
            }
        return 0;
    }
    for (size_t i = 0; i < sizeof g_model_names / sizeof *g_model_names; i++)
        if (strcmp(neutral, g_model_names[i][1]) == 0) {
            int n = snprintf(buf, cap, "%s", g_model_names[i][0]);
            return n > 0 && (size_t)n < cap;
        }
    return 0;
}

int air_gguf_arch_tensor_name(int arch, int layer, const char *neutral, char *buf, size_t cap) {
    if (layer >= 0 && neutral)
        for (size_t i = 0; i < sizeof g_arch_names / sizeof *g_arch_names; i++)
            if ((int)g_arch_names[i].arch == arch &&
                strcmp(neutral, g_arch_names[i].neutral) == 0) {
                int n = snprintf(buf, cap, "blk.%d.%s", layer, g_arch_names[i].gguf);
                return n > 0 && (size_t)n < cap;
            }
    return air_gguf_tensor_name(layer, neutral, buf, cap);
}

/* ------------------------------------------------------------------------- */
/* Q/K row order                                                             */
/* ------------------------------------------------------------------------- */
int air_gguf_qk_permuted(const air_gguf *g) {
    const char *arch = air_gguf_get_str(g, "general.architecture");
    return arch && strcmp(arch, "llama") == 0;
}

/* The converter viewed each head's hd rows as (2, hd/2) -- the two halves
 * that rotate-half RoPE pairs up -- and transposed them to (hd/2, 2), so
 * that pair members became adjacent rows. The inverse reads file row
 * 2 * i + s back into row s * hd/2 + i. Rows are opaque bytes here, so any
 * row-major format whose rows are whole blocks can be reordered. */
air_status air_gguf_unpermute_rows(void *w, int n_out, size_t row_bytes, int n_head) {
    if (!w || n_out <= 0 || row_bytes == 0 || n_head <= 0 || n_out % (2 * n_head))
        return air_err(AIR_ERR_INVALID_ARG,
                       "unpermute_qk: %d rows cannot be split into %d heads of an even size", n_out,
                       n_head);
    const int hd = n_out / n_head, half = hd / 2;
    unsigned char *tmp = malloc((size_t)hd * row_bytes);
    if (!tmp)
        return air_err(AIR_ERR_NOMEM, "unpermute_qk: out of memory for %d rows of %zu bytes", hd,
                       row_bytes);
    for (int h = 0; h < n_head; h++) {
        unsigned char *head = (unsigned char *)w + (size_t)h * hd * row_bytes;
        memcpy(tmp, head, (size_t)hd * row_bytes);
        for (int i = 0; i < half; i++)
            for (int s = 0; s < 2; s++)
                memcpy(head + (size_t)(s * half + i) * row_bytes,
                       tmp + (size_t)(2 * i + s) * row_bytes, row_bytes);
    }
    free(tmp);
    return AIR_OK;
}

air_status air_gguf_unpermute_qk(float *w, int n_out, int n_in, int n_head) {
    if (n_in <= 0)
        return air_err(AIR_ERR_INVALID_ARG, "unpermute_qk: %d columns", n_in);
    return air_gguf_unpermute_rows(w, n_out, (size_t)n_in * sizeof(float), n_head);
}
