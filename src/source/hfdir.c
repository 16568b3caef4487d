/*
 * hfdir.c - a Hugging Face model folder as an air_source.
 *
 * config.json            -> air_hparams (architecture, sizes, RoPE, EOS ids)
 * generation_config.json -> EOS / BOS ids (they win over config.json)
 * model.safetensors.index.json + shards, or a single model.safetensors
 *                        -> tensors, looked up by their HF names, which
 *                           hf_name() derives from the neutral names.
 */
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant/fp8.h"
#include "quant/mxfp4.h"
#include "source/safetensors.h"
#include "source/source.h"
#include "text/chat_files.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strbuf.h"

typedef struct {
    char *dir;
    int n_files;
    air_st_file **files;
    int *remaining; /* per file: tensors not yet read (delete_original) */
    uint8_t **read_flags;
    int delete_original;
    air_arch arch;
    /* every tensor by name, sorted, for lookups in O(log n): an MoE model
     * has tens of thousands of tensors */
    struct hf_ref *by_name;
    int n_by_name;
    int fp8_bm, fp8_bn; /* FP8 weights: block of one scale (weight_block_size) */
} hf_impl;

typedef struct hf_ref {
    const char *name;
    int f, t;
} hf_ref;

static int ref_cmp(const void *a, const void *b) {
    return strcmp(((const hf_ref *)a)->name, ((const hf_ref *)b)->name);
}

/* ---------------------------------------------------------------------------
 * config.json
 * ------------------------------------------------------------------------- */

static air_status load_json(const char *path, cJSON **out) {
    char *text;
    size_t len;
    air_status st = air_read_file(path, &text, &len);
    if (st)
        return st;
    const char *endp = NULL;
    *out = cJSON_ParseWithLengthOpts(text, len, &endp, 0);
    if (!*out) {
        size_t off = endp ? (size_t)(endp - text) : 0;
        int line = 1;
        for (size_t i = 0; i < off && i < len; i++)
            line += text[i] == '\n';
        free(text);
        return air_err(AIR_ERR_FORMAT, "%s: malformed JSON near line %d (byte %zu)", path, line,
                       off);
    }
    free(text);
    if (!cJSON_IsObject(*out)) {
        const char *what = cJSON_IsArray(*out) ? "an array" : "not an object";
        cJSON_Delete(*out);
        *out = NULL;
        return air_err(AIR_ERR_FORMAT, "%s must hold a JSON object ({\"key\": value, ...}), "
                       "but its top level is %s", path, what);
    }
    return AIR_OK;
}

/* Reads an integer field; missing -> def; wrong type -> error. */
static air_status get_int(const cJSON *cfg, const char *path, const char *key, int64_t def,
                          int required, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return air_err(AIR_ERR_FORMAT, "%s: required field \"%s\" is missing", path, key);
        *out = def;
        return AIR_OK;
    }
    if (!cJSON_IsNumber(v))
        return air_err(AIR_ERR_FORMAT, "%s: \"%s\" must be an integer, not %s", path, key,
                       cJSON_IsString(v) ? "a string" : "a JSON array, object or boolean");
    if (!(v->valuedouble >= 0 && v->valuedouble <= 2e9) || v->valuedouble != floor(v->valuedouble))
        return air_err(AIR_ERR_FORMAT, "%s: \"%s\" is %.15g; it must be an integer from 0 to "
                       "2000000000", path, key, v->valuedouble);
    *out = (int64_t)v->valuedouble;
    return AIR_OK;
}

static air_status get_float(const cJSON *cfg, const char *path, const char *key, double def,
                            double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return AIR_OK;
    }
    if (!cJSON_IsNumber(v))
        return air_err(AIR_ERR_FORMAT, "%s: \"%s\" must be a number", path, key);
    if (!(fabs(v->valuedouble) <= FLT_MAX)) /* beyond a float: converting would be undefined */
        return air_err(AIR_ERR_FORMAT, "%s: \"%s\" is %g; it must be a finite number", path,
                       key, v->valuedouble);
    *out = v->valuedouble;
    return AIR_OK;
}

/* A token id: an integer >= 0 (air_hparams_check compares it with the
 * vocabulary). */
static air_status get_id(const cJSON *v, const char *path, const char *key, int32_t *out) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= INT32_MAX) ||
        v->valuedouble != floor(v->valuedouble)) {
        char shown[64];
        if (cJSON_IsNumber(v))
            snprintf(shown, sizeof shown, "%.15g", v->valuedouble);
        else
            snprintf(shown, sizeof shown, "not a number");
        return air_err(AIR_ERR_FORMAT, "%s: \"%s\" is %s; it must be a token id (an integer "
                       "from 0 to vocab_size - 1)", path, key, shown);
    }
    *out = (int32_t)v->valuedouble;
    return AIR_OK;
}

/* eos_token_id may be a token id or a list of them. */
static air_status get_eos(const cJSON *cfg, const char *path, air_hparams *hp) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "eos_token_id");
    if (!v || cJSON_IsNull(v))
        return AIR_OK;
    hp->n_eos = 0;
    if (cJSON_IsNumber(v))
        return get_id(v, path, "eos_token_id", &hp->eos_ids[hp->n_eos++]);
    if (!cJSON_IsArray(v))
        return air_err(AIR_ERR_FORMAT, "%s: \"eos_token_id\" must be a token id or a list of them",
                       path);
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        int32_t id = 0;
        air_status st = get_id(e, path, "eos_token_id", &id);
        if (st)
            return st;
        if (hp->n_eos < AIR_MAX_EOS)
            hp->eos_ids[hp->n_eos++] = id;
    }
    return AIR_OK;
}

/* bos_token_id: a token id, or null / absent for none. */
static air_status get_bos(const cJSON *cfg, const char *path, air_hparams *hp) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "bos_token_id");
    if (!v || cJSON_IsNull(v))
        return AIR_OK;
    return get_id(v, path, "bos_token_id", &hp->bos_id);
}

/* The config.json keys of the air_hparams fields, for air_hparams_check. */
static const char *const g_hf_keys[AIR_HP_COUNT] = {
    [AIR_HP_VOCAB] = "vocab_size",
    [AIR_HP_EMBD] = "hidden_size",
    [AIR_HP_LAYER] = "num_hidden_layers",
    [AIR_HP_HEAD] = "num_attention_heads",
    [AIR_HP_HEAD_KV] = "num_key_value_heads",
    [AIR_HP_HEAD_DIM] = "head_dim",
    [AIR_HP_FF] = "intermediate_size",
    [AIR_HP_CTX] = "max_position_embeddings",
    [AIR_HP_RMS_EPS] = "rms_norm_eps",
    [AIR_HP_ROPE_THETA] = "rope_theta",
    [AIR_HP_ROPE_FACTOR] = "rope_scaling.factor",
    [AIR_HP_ROPE_LOW] = "rope_scaling.low_freq_factor",
    [AIR_HP_ROPE_HIGH] = "rope_scaling.high_freq_factor",
    [AIR_HP_ROPE_ORIG_CTX] = "rope_scaling.original_max_position_embeddings",
    [AIR_HP_SLIDING_WINDOW] = "sliding_window",
    [AIR_HP_BOS] = "bos_token_id",
    [AIR_HP_EOS] = "eos_token_id",
};

/* rope_type "linear": every frequency divided by "factor". */
static air_status linear_rope(const cJSON *rs, const char *path, air_hparams *hp) {
    double f = 0;
    air_status st = get_float(rs, path, "factor", 1.0, &f);
    if (st)
        return st;
    if (!(f > 0))
        return air_err(AIR_ERR_FORMAT, "%s: linear rope scaling needs a positive \"factor\"", path);
    hp->rope_scaling = AIR_ROPE_SCALING_LINEAR;
    hp->rope_factor = (float)f;
    return AIR_OK;
}

/* ---------------------------------------------------------------------------
 * Gemma 2 / Gemma 3: what their config.json adds to the Llama fields
 * ------------------------------------------------------------------------- */

/* Global RoPE of a Gemma 3 config in the transformers 5 layout:
 * rope_parameters {"full_attention": {...}, "sliding_attention": {...}}. */
static air_status gemma_rope_by_layer_type(const cJSON *rp, const char *path, air_hparams *hp) {
    const cJSON *full = cJSON_GetObjectItemCaseSensitive(rp, "full_attention");
    const cJSON *swa = cJSON_GetObjectItemCaseSensitive(rp, "sliding_attention");
    double d = 0;
    air_status st;
    hp->rope_scaling = AIR_ROPE_SCALING_NONE;
    for (int i = 0; i < 2; i++) {
        const cJSON *o = i == 0 ? full : swa;
        if (!o)
            continue;
        if (!cJSON_IsObject(o))
            return air_err(AIR_ERR_FORMAT, "%s: rope_parameters.%s must be an object", path,
                           i == 0 ? "full_attention" : "sliding_attention");
        if ((st = get_float(o, path, "rope_theta", i == 0 ? 1e6 : 1e4, &d)))
            return st;
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "rope_type");
        const char *t = cJSON_IsString(ty) ? ty->valuestring : "default";
        if (i == 0) {
            hp->rope_theta = (float)d;
            if (strcmp(t, "linear") == 0 && (st = linear_rope(o, path, hp)))
                return st;
        } else {
            hp->rope_theta_swa = (float)d;
        }
        if (strcmp(t, "default") != 0 && (i == 1 || strcmp(t, "linear") != 0))
            return air_err(AIR_ERR_UNSUPPORTED,
                           "%s: rope_parameters.%s.rope_type \"%s\" is not supported (supported: "
                           "default%s)", path, i == 0 ? "full_attention" : "sliding_attention", t,
                           i == 0 ? ", linear" : "");
    }
    return AIR_OK;
}

/* layer_types ["sliding_attention" | "full_attention", ...] as a period:
 * the full layers must be exactly those with (l + 1) % period == 0. */
static air_status gemma_layer_types(const cJSON *lt, const char *path, air_hparams *hp) {
    if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != hp->n_layer)
        return air_err(AIR_ERR_FORMAT, "%s: \"layer_types\" must list one type per layer (%d)",
                       path, hp->n_layer);
    int first_full = -1, l = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, lt) {
        const char *t = cJSON_IsString(e) ? e->valuestring : "";
        if (strcmp(t, "full_attention") != 0 && strcmp(t, "sliding_attention") != 0)
            return air_err(AIR_ERR_UNSUPPORTED, "%s: layer_types[%d] is \"%s\" (supported: "
                           "full_attention, sliding_attention)", path, l, t);
        if (first_full < 0 && t[0] == 'f')
            first_full = l;
        l++;
    }
    int period = first_full < 0 ? hp->n_layer + 1 : first_full + 1;
    l = 0;
    cJSON_ArrayForEach(e, lt) {
        int full = e->valuestring[0] == 'f';
        if (full != ((l + 1) % period == 0))
            return air_err(AIR_ERR_UNSUPPORTED,
                           "%s: layer_types: layer %d is %s, which breaks the pattern of one "
                           "global layer every %d; only periodic patterns are supported",
                           path, l, e->valuestring, period);
        l++;
    }
    hp->swa_period = period;
    return AIR_OK;
}

static air_status gemma_config(const cJSON *cfg, const char *path, air_hparams *hp) {
    air_status st;
    double d = 0;
    int64_t v = 0;
    int g3 = hp->arch == AIR_ARCH_GEMMA3;
    hp->norm_add_one = 1;
    hp->post_norms = 1;
    hp->qk_norm = g3;
    hp->act = AIR_ACT_GELU_TANH;
    hp->embd_scale = (float)sqrt((double)hp->n_embd);
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    hp->tie_embeddings = !tie || cJSON_IsNull(tie) || cJSON_IsTrue(tie);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "hidden_activation");
    if (!cJSON_IsString(act))
        act = cJSON_GetObjectItemCaseSensitive(cfg, "hidden_act");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "gelu_pytorch_tanh") != 0 &&
        strcmp(act->valuestring, "gelu") != 0)
        return air_err(AIR_ERR_UNSUPPORTED, "%s: hidden_activation \"%s\" is not supported "
                       "(supported: gelu_pytorch_tanh)", path, act->valuestring);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "use_bidirectional_attention")))
        return air_err(AIR_ERR_UNSUPPORTED, "%s: \"use_bidirectional_attention\": true (an "
                       "embedding model) is not supported", path);
    if ((st = get_float(cfg, path, "query_pre_attn_scalar", 256.0, &d)))
        return st;
    if (!(d > 0))
        return air_err(AIR_ERR_FORMAT, "%s: \"query_pre_attn_scalar\" must be positive", path);
    hp->attn_scale = (float)pow(d, -0.5);
    if ((st = get_float(cfg, path, "attn_logit_softcapping", 0.0, &d)))
        return st;
    hp->attn_softcap = d > 0 ? (float)d : 0.0f;
    if ((st = get_float(cfg, path, "final_logit_softcapping", 0.0, &d)))
        return st;
    hp->final_softcap = d > 0 ? (float)d : 0.0f;
    if ((st = get_int(cfg, path, "sliding_window", 0, 0, &v)))
        return st;
    hp->sliding_window = (int32_t)v;

    /* which layers are local */
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(cfg, "layer_types");
    if (lt && !cJSON_IsNull(lt)) {
        if ((st = gemma_layer_types(lt, path, hp)))
            return st;
    } else {
        if ((st = get_int(cfg, path, "sliding_window_pattern", g3 ? 6 : 2, 0, &v)))
            return st;
        if (!cJSON_GetObjectItemCaseSensitive(cfg, "sliding_window_pattern") &&
            (st = get_int(cfg, path, "_sliding_window_pattern", g3 ? 6 : 2, 0, &v)))
            return st;
        hp->swa_period = (int32_t)v;
    }

    /* RoPE of the local layers: Gemma 3 has its own base; Gemma 2 shares it */
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(cfg, "rope_parameters");
    if (cJSON_IsObject(rp) && (cJSON_GetObjectItemCaseSensitive(rp, "full_attention") ||
                               cJSON_GetObjectItemCaseSensitive(rp, "sliding_attention")))
        return gemma_rope_by_layer_type(rp, path, hp);
    if (g3) {
        if ((st = get_float(cfg, path, "rope_local_base_freq", 10000.0, &d)))
            return st;
        hp->rope_theta_swa = (float)d;
    }
    return AIR_OK;
}

/* YaRN's mscale: 0.1 * m * ln(factor) + 1 (1 for factor <= 1). */
static double yarn_mscale(double factor, double m) {
    return factor <= 1 ? 1.0 : 0.1 * m * log(factor) + 1.0;
}

/* rope_scaling / rope_parameters of type "yarn". */
static air_status parse_yarn(const cJSON *rs, const char *path, air_hparams *hp) {
    double f = 0, bf = 0, bs = 0, ms = 0, msa = 0, af = 0;
    int64_t orig = 0;
    air_status st;
    if ((st = get_float(rs, path, "factor", 0, &f)) ||
        (st = get_int(rs, path, "original_max_position_embeddings", 0, 1, &orig)) ||
        (st = get_float(rs, path, "beta_fast", 32, &bf)) ||
        (st = get_float(rs, path, "beta_slow", 1, &bs)) ||
        (st = get_float(rs, path, "mscale", 0, &ms)) ||
        (st = get_float(rs, path, "mscale_all_dim", 0, &msa)) ||
        (st = get_float(rs, path, "attention_factor", 0, &af)))
        return st;
    if (f <= 0 && orig > 0)
        f = (double)hp->n_ctx_train / (double)orig;
    if (f <= 0 || orig <= 0)
        return air_err(AIR_ERR_FORMAT, "%s: yarn rope_scaling needs a positive factor and "
                       "original_max_position_embeddings", path);
    if (bf == 0)
        bf = 32; /* transformers treats 0 / null as the default */
    if (bs == 0)
        bs = 1;
    if (af <= 0)
        af = ms != 0 && msa != 0 ? yarn_mscale(f, ms) / yarn_mscale(f, msa) : yarn_mscale(f, 1);
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(rs, "truncate");
    hp->rope_scaling = AIR_ROPE_SCALING_YARN;
    hp->rope_factor = (float)f;
    hp->rope_orig_ctx = (int32_t)orig;
    hp->rope_beta_fast = (float)bf;
    hp->rope_beta_slow = (float)bs;
    hp->rope_truncate = !tr || cJSON_IsNull(tr) || cJSON_IsTrue(tr);
    hp->rope_attn_factor = (float)af;
    if (msa != 0) {
        double m = yarn_mscale(f, msa);
        hp->mla_scale_mult = (float)(m * m);
    }
    return AIR_OK;
}

/* Mixture-of-experts fields of config.json (Qwen2-MoE, Qwen3-MoE, Mixtral). */
static air_status parse_moe(const cJSON *cfg, const char *path, air_hparams *hp) {
    int64_t v = 0;
    air_status st;
    const char *nkey = cJSON_GetObjectItemCaseSensitive(cfg, "num_local_experts")
                           ? "num_local_experts"
                           : "num_experts";
    if ((st = get_int(cfg, path, nkey, 0, 1, &v)))
        return st;
    hp->n_expert = (int32_t)v;
    if ((st = get_int(cfg, path, "num_experts_per_tok", 0, 1, &v)))
        return st;
    hp->n_expert_used = (int32_t)v;
    if (hp->arch == AIR_ARCH_MIXTRAL) {
        hp->n_ff_exp = hp->n_ff;
        hp->expert_norm_topk = 1;
        hp->moe_step = 1;
    } else {
        if ((st = get_int(cfg, path, "moe_intermediate_size", 0, 1, &v)))
            return st;
        hp->n_ff_exp = (int32_t)v;
        hp->expert_norm_topk = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "norm_topk_prob"));
        if ((st = get_int(cfg, path, "decoder_sparse_step", 1, 0, &v)))
            return st;
        hp->moe_step = (int32_t)v;
        const cJSON *mo = cJSON_GetObjectItemCaseSensitive(cfg, "mlp_only_layers"), *e;
        if (mo && !cJSON_IsNull(mo) && !cJSON_IsArray(mo))
            return air_err(AIR_ERR_FORMAT, "%s: \"mlp_only_layers\" must be a list", path);
        cJSON_ArrayForEach(e, mo) {
            if (!cJSON_IsNumber(e) || hp->n_mlp_only >= AIR_MAX_MLP_ONLY)
                return air_err(AIR_ERR_UNSUPPORTED, "%s: \"mlp_only_layers\" must hold at most %d "
                               "layer numbers", path, AIR_MAX_MLP_ONLY);
            hp->mlp_only[hp->n_mlp_only++] = e->valueint;
        }
    }
    if (hp->arch == AIR_ARCH_QWEN2_MOE) {
        if ((st = get_int(cfg, path, "shared_expert_intermediate_size", 0, 0, &v)))
            return st;
        hp->n_ff_shexp = (int32_t)v;
        hp->shexp_gate = hp->n_ff_shexp > 0;
    }
    if (hp->n_expert <= 0 || hp->n_expert > 4096 || hp->n_expert_used <= 0 ||
        hp->n_expert_used > hp->n_expert || hp->n_expert_used > AIR_MAX_EXPERT_USED || hp->n_ff_exp <= 0 || hp->moe_step <= 0)
        return air_err(AIR_ERR_FORMAT, "%s: expert counts out of range (%s %d, "
                       "num_experts_per_tok %d, expert width %d, decoder_sparse_step %d)", path,
                       nkey, hp->n_expert, hp->n_expert_used, hp->n_ff_exp, hp->moe_step);
    return AIR_OK;
}

/* DeepSeek-V3 (and Kimi-K2): latent attention, sigmoid group-limited routing,
 * shared experts, dense first layers. */
static air_status parse_deepseek(const cJSON *cfg, const char *path, air_hparams *hp) {
    int64_t v = 0;
    double d = 0;
    air_status st;
    const char *nkey = cJSON_GetObjectItemCaseSensitive(cfg, "n_routed_experts")
                           ? "n_routed_experts"
                           : "num_local_experts";
    struct {
        const char *key;
        int64_t def;
        int required;
        int32_t *dst;
    } ints[] = {
        {nkey, 0, 1, &hp->n_expert},
        {"num_experts_per_tok", 0, 1, &hp->n_expert_used},
        {"moe_intermediate_size", 0, 1, &hp->n_ff_exp},
        {"first_k_dense_replace", 0, 0, &hp->moe_first_dense},
        {"n_group", 1, 0, &hp->n_group},
        {"topk_group", 1, 0, &hp->topk_group},
        {"q_lora_rank", 0, 0, &hp->q_lora_rank},
        {"kv_lora_rank", 0, 1, &hp->kv_lora_rank},
        {"qk_rope_head_dim", 0, 1, &hp->head_dim},
        {"qk_nope_head_dim", 0, 1, &hp->qk_nope_dim},
        {"v_head_dim", 0, 1, &hp->v_head_dim},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if ((st = get_int(cfg, path, ints[i].key, ints[i].def, ints[i].required, &v)))
            return st;
        *ints[i].dst = (int32_t)v;
    }
    if ((st = get_int(cfg, path, "n_shared_experts", 0, 0, &v)))
        return st;
    hp->n_ff_shexp = (int32_t)(v * hp->n_ff_exp);
    if ((st = get_int(cfg, path, "moe_layer_freq", 1, 0, &v)))
        return st;
    if (v != 1)
        return air_err(AIR_ERR_UNSUPPORTED, "%s: \"moe_layer_freq\" %lld is not supported (only 1)",
                       path, (long long)v);
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(cfg, "scoring_func");
    if (cJSON_IsString(sf) && strcmp(sf->valuestring, "sigmoid") != 0)
        return air_err(AIR_ERR_UNSUPPORTED, "%s: \"scoring_func\" \"%s\" is not supported (only "
                       "sigmoid)", path, sf->valuestring);
    if ((st = get_float(cfg, path, "routed_scaling_factor", 1.0, &d)))
        return st;
    hp->routed_scale = (float)d;
    hp->router_sigmoid = 1;
    hp->moe_step = 1;
    hp->expert_norm_topk = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "norm_topk_prob"));
    const cJSON *ri = cJSON_GetObjectItemCaseSensitive(cfg, "rope_interleave");
    hp->rope_interleave = !ri || cJSON_IsNull(ri) || cJSON_IsTrue(ri);
    hp->n_head_kv = hp->n_head;
    if (hp->n_expert <= 0 || hp->n_expert > 4096 || hp->n_expert_used <= 0 ||
        hp->n_expert_used > hp->n_expert || hp->n_expert_used > AIR_MAX_EXPERT_USED ||
        hp->n_group <= 0 || hp->n_expert % hp->n_group || hp->topk_group <= 0 ||
        hp->topk_group > hp->n_group || hp->kv_lora_rank <= 0 || hp->head_dim <= 0 ||
        hp->head_dim % 2 || hp->qk_nope_dim <= 0 || hp->v_head_dim <= 0 ||
        hp->n_expert_used > hp->topk_group * (hp->n_expert / hp->n_group))
        return air_err(AIR_ERR_FORMAT, "%s: DeepSeek expert or latent-attention sizes out of "
                       "range (%s %d, num_experts_per_tok %d, n_group %d, topk_group %d, "
                       "kv_lora_rank %d, qk_rope_head_dim %d)", path, nkey, hp->n_expert,
                       hp->n_expert_used, hp->n_group, hp->topk_group, hp->kv_lora_rank,
                       hp->head_dim);
    return AIR_OK;
}

/* gpt-oss: attention sinks and biases, sliding window on the layers that
 * layer_types marks "sliding_attention", biased router, clamped SwiGLU. */
static air_status parse_gptoss(const cJSON *cfg, const char *path, air_hparams *hp) {
    int64_t v = 0;
    double d = 0;
    air_status st;
    /* the published configs also spell these num_experts / experts_per_token */
    const char *ne = cJSON_GetObjectItemCaseSensitive(cfg, "num_local_experts") ? "num_local_experts"
                                                                               : "num_experts";
    const char *nu = cJSON_GetObjectItemCaseSensitive(cfg, "num_experts_per_tok")
                         ? "num_experts_per_tok"
                         : "experts_per_token";
    if ((st = get_int(cfg, path, ne, 0, 1, &v)))
        return st;
    hp->n_expert = (int32_t)v;
    if ((st = get_int(cfg, path, nu, 0, 1, &v)))
        return st;
    hp->n_expert_used = (int32_t)v;
    hp->n_ff_exp = hp->n_ff;
    hp->moe_step = 1;
    hp->router_bias_topk_softmax = 1;
    hp->expert_bias = 1;
    hp->attn_sinks = 1;
    hp->attn_bias = hp->attn_out_bias =
        !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cfg, "attention_bias"));
    if ((st = get_float(cfg, path, "swiglu_limit", 7.0, &d)))
        return st;
    hp->swiglu_limit = (float)d;
    if ((st = get_float(cfg, path, "swiglu_alpha", 1.702, &d)))
        return st;
    hp->swiglu_alpha = (float)d;
    if ((st = get_int(cfg, path, "sliding_window", 0, 0, &v)))
        return st;
    hp->sliding_window = (int32_t)v;
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(cfg, "layer_types"), *e;
    int l = 0;
    cJSON_ArrayForEach(e, lt) {
        if (!cJSON_IsString(e))
            return air_err(AIR_ERR_FORMAT, "%s: \"layer_types\" must be a list of names", path);
        if (strcmp(e->valuestring, "sliding_attention") == 0) {
            if (l >= 128)
                return air_err(AIR_ERR_UNSUPPORTED, "%s: sliding-window layers beyond layer 127",
                               path);
            hp->swa_mask[l / 32] = (int32_t)((uint32_t)hp->swa_mask[l / 32] | 1u << (l % 32));
        }
        l++;
    }
    if (hp->n_expert <= 0 || hp->n_expert > 4096 || hp->n_expert_used <= 0 ||
        hp->n_expert_used > hp->n_expert || hp->n_expert_used > AIR_MAX_EXPERT_USED)
        return air_err(AIR_ERR_FORMAT, "%s: expert counts out of range (num_local_experts %d, "
                       "num_experts_per_tok %d)", path, hp->n_expert, hp->n_expert_used);
    return AIR_OK;
}

static air_status parse_config(const char *dir, air_hparams *hp) {
    char *path = air_path_join(dir, "config.json");
    cJSON *cfg = NULL;
    air_status st = load_json(path, &cfg);
    if (st == AIR_ERR_NOT_FOUND)
        st = air_err(AIR_ERR_NOT_FOUND,
                     "%s has no config.json: not a Hugging Face model folder", dir);
    if (st)
        goto out;
    memset(hp, 0, sizeof *hp);
    hp->bos_id = -1;

    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    const char *arch = cJSON_IsString(a0) ? a0->valuestring : NULL;
    static const struct {
        const char *name;
        air_arch arch;
    } archtab[] = {{"LlamaForCausalLM", AIR_ARCH_LLAMA},
                   {"MistralForCausalLM", AIR_ARCH_MISTRAL},
                   {"Qwen2ForCausalLM", AIR_ARCH_QWEN2},
                   {"Qwen3ForCausalLM", AIR_ARCH_QWEN3},
                   {"Gemma2ForCausalLM", AIR_ARCH_GEMMA2},
                   {"Gemma3ForCausalLM", AIR_ARCH_GEMMA3},
                   {"Qwen2MoeForCausalLM", AIR_ARCH_QWEN2_MOE},
                   {"Qwen3MoeForCausalLM", AIR_ARCH_QWEN3_MOE},
                   {"MixtralForCausalLM", AIR_ARCH_MIXTRAL},
                   {"DeepseekV3ForCausalLM", AIR_ARCH_DEEPSEEK_V3},
                   {"GptOssForCausalLM", AIR_ARCH_GPT_OSS}};
    int found = 0;
    for (size_t i = 0; arch && i < sizeof archtab / sizeof archtab[0]; i++)
        if (strcmp(arch, archtab[i].name) == 0) {
            hp->arch = archtab[i].arch;
            found = 1;
        }
    if (!found) {
        st = air_err(AIR_ERR_UNSUPPORTED,
                     "%s: architecture \"%s\" is not supported (supported: LlamaForCausalLM, "
                     "MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma2ForCausalLM, "
                     "Gemma3ForCausalLM, Qwen2MoeForCausalLM, Qwen3MoeForCausalLM, "
                     "MixtralForCausalLM, DeepseekV3ForCausalLM, GptOssForCausalLM)",
                     path, arch ? arch : "(missing \"architectures\")");
        goto out;
    }

    int64_t v;
    double d;
#define INT_FIELD(key, def, req, dst)                                                              \
    do {                                                                                           \
        if ((st = get_int(cfg, path, key, def, req, &v)))                                          \
            goto out;                                                                              \
        dst = (int32_t)v;                                                                          \
    } while (0)
    INT_FIELD("vocab_size", 0, 1, hp->n_vocab);
    INT_FIELD("hidden_size", 0, 1, hp->n_embd);
    INT_FIELD("num_hidden_layers", 0, 1, hp->n_layer);
    INT_FIELD("num_attention_heads", 0, 1, hp->n_head);
    INT_FIELD("num_key_value_heads", hp->n_head, 0, hp->n_head_kv);
    INT_FIELD("intermediate_size", 0, 1, hp->n_ff);
    INT_FIELD("max_position_embeddings", 2048, 0, hp->n_ctx_train);
    INT_FIELD("head_dim", -1, 0, hp->head_dim); /* -1: absent */
    if ((st = get_bos(cfg, path, hp)))
        goto out;
    if (hp->head_dim == -1 && hp->n_head > 0) {
        if (hp->n_embd % hp->n_head) {
            st = air_err(AIR_ERR_FORMAT, "%s: hidden_size %d is not a multiple of "
                         "num_attention_heads %d and no head_dim is given", path, hp->n_embd,
                         hp->n_head);
            goto out;
        }
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    if (hp->arch == AIR_ARCH_DEEPSEEK_V3 && (st = parse_deepseek(cfg, path, hp)))
        goto out;
    if ((st = get_float(cfg, path, "rms_norm_eps", 1e-6, &d)))
        goto out;
    hp->rms_eps = (float)d;
    /* RoPE: classic layout (rope_theta + rope_scaling) or the newer
     * rope_parameters object that holds both. */
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(cfg, "rope_parameters");
    if (rp && !cJSON_IsObject(rp) && !cJSON_IsNull(rp)) {
        st = air_err(AIR_ERR_FORMAT, "%s: \"rope_parameters\" must be an object", path);
        goto out;
    }
    if ((st = get_float(cJSON_IsObject(rp) && cJSON_GetObjectItemCaseSensitive(rp, "rope_theta")
                            ? rp
                            : cfg,
                        path, "rope_theta", 10000.0, &d)))
        goto out;
    hp->rope_theta = (float)d;

    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    hp->tie_embeddings = cJSON_IsTrue(tie);
    hp->attn_bias = hp->arch == AIR_ARCH_QWEN2;
    hp->qk_norm = hp->arch == AIR_ARCH_QWEN3 || hp->arch == AIR_ARCH_QWEN3_MOE;
    if (hp->arch == AIR_ARCH_QWEN2_MOE) {
        const cJSON *qb = cJSON_GetObjectItemCaseSensitive(cfg, "qkv_bias");
        hp->attn_bias = !qb || cJSON_IsNull(qb) || cJSON_IsTrue(qb);
    }
    if (hp->arch == AIR_ARCH_GPT_OSS && (st = parse_gptoss(cfg, path, hp)))
        goto out;
    if (hp->n_expert == 0 && (hp->arch == AIR_ARCH_QWEN2_MOE || hp->arch == AIR_ARCH_QWEN3_MOE ||
                              hp->arch == AIR_ARCH_MIXTRAL) &&
        (st = parse_moe(cfg, path, hp)))
        goto out;
    if (hp->arch != AIR_ARCH_QWEN2 && hp->arch != AIR_ARCH_QWEN2_MOE &&
        hp->arch != AIR_ARCH_GPT_OSS && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "attention_bias"))) {
        st = air_err(AIR_ERR_UNSUPPORTED, "%s: \"attention_bias\": true is not supported for %s",
                     path, arch);
        goto out;
    }
    const cJSON *use_sw = cJSON_GetObjectItemCaseSensitive(cfg, "use_sliding_window");
    int64_t sw;
    if ((st = get_int(cfg, path, "sliding_window", 0, 0, &sw)))
        goto out;
    if (hp->arch == AIR_ARCH_MISTRAL || hp->arch == AIR_ARCH_MIXTRAL || cJSON_IsTrue(use_sw))
        hp->sliding_window = (int32_t)sw;

    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if ((!rs || cJSON_IsNull(rs)) && cJSON_IsObject(rp))
        rs = rp;
    if (rs && !cJSON_IsNull(rs)) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
        if (!cJSON_IsString(ty))
            ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
        const char *t = cJSON_IsString(ty) ? ty->valuestring : rs == rp ? "default" : "(missing)";
        if (strcmp(t, "llama3") == 0) {
            hp->rope_scaling = AIR_ROPE_SCALING_LLAMA3;
            double f, lo, hi;
            int64_t orig;
            if ((st = get_float(rs, path, "factor", 8.0, &f)) ||
                (st = get_float(rs, path, "low_freq_factor", 1.0, &lo)) ||
                (st = get_float(rs, path, "high_freq_factor", 4.0, &hi)) ||
                (st = get_int(rs, path, "original_max_position_embeddings", 8192, 0, &orig)))
                goto out;
            hp->rope_factor = (float)f;
            hp->rope_low_freq_factor = (float)lo;
            hp->rope_high_freq_factor = (float)hi;
            hp->rope_orig_ctx = (int32_t)orig;
        } else if (strcmp(t, "linear") == 0) {
            if ((st = linear_rope(rs, path, hp)))
                goto out;
        } else if (strcmp(t, "yarn") == 0) {
            if ((st = parse_yarn(rs, path, hp)))
                goto out;
        } else if (strcmp(t, "default") != 0) {
            st = air_err(AIR_ERR_UNSUPPORTED,
                         "%s: rope_scaling type \"%s\" is not supported yet (supported: llama3, "
                         "linear, yarn, default)", path, t);
            goto out;
        }
    }
    if ((st = get_eos(cfg, path, hp)))
        goto out;
    if ((hp->arch == AIR_ARCH_GEMMA2 || hp->arch == AIR_ARCH_GEMMA3) &&
        (st = gemma_config(cfg, path, hp)))
        goto out;
    if ((st = air_hparams_check(hp, path, g_hf_keys)))
        goto out;
    cJSON_Delete(cfg);
    cfg = NULL;

    /* generation_config.json wins where it speaks */
    free(path);
    path = air_path_join(dir, "generation_config.json");
    if (air_path_exists(path)) {
        if ((st = load_json(path, &cfg)))
            goto out;
        if ((st = get_eos(cfg, path, hp)) || (st = get_bos(cfg, path, hp)) ||
            (st = air_hparams_check(hp, path, g_hf_keys)))
            goto out;
    }
out:
    cJSON_Delete(cfg);
    free(path);
    return st;
}

/* ---------------------------------------------------------------------------
 * tensors
 * ------------------------------------------------------------------------- */

/* HF names of the mixture-of-experts and latent-attention tensors; 0 if
 * `neutral` is not one. */
static int hf_layer_extra_name(air_arch arch, int layer, const char *neutral, char *buf, size_t n) {
    int mix = arch == AIR_ARCH_MIXTRAL, ds = arch == AIR_ARCH_DEEPSEEK_V3;
    const char *blk = mix ? "block_sparse_moe" : "mlp";
    int ex;
    char part[16];
    if (sscanf(neutral, AIR_T_EXP_PREFIX "%d.%15s", &ex, part) == 2) {
        const char *p = strcmp(part, "w_gate") == 0 ? (mix ? "w1" : "gate_proj")
                        : strcmp(part, "w_up") == 0 ? (mix ? "w3" : "up_proj")
                        : strcmp(part, "w_down") == 0 ? (mix ? "w2" : "down_proj")
                                                      : "?";
        snprintf(buf, n, "model.layers.%d.%s.experts.%d.%s.weight", layer, blk, ex, p);
        return 1;
    }
    static const struct {
        const char *neutral, *hf;
    } tab[] = {
        {AIR_T_ROUTER, "mlp.gate.weight"},
        {AIR_T_ROUTER_BIAS, "mlp.gate.e_score_correction_bias"},
        {AIR_T_SHEXP_INP, "mlp.shared_expert_gate.weight"},
        {AIR_T_WQ_A, "self_attn.q_a_proj.weight"},
        {AIR_T_Q_A_NORM, "self_attn.q_a_layernorm.weight"},
        {AIR_T_WQ_B, "self_attn.q_b_proj.weight"},
        {AIR_T_WKV_A, "self_attn.kv_a_proj_with_mqa.weight"},
        {AIR_T_KV_A_NORM, "self_attn.kv_a_layernorm.weight"},
        {AIR_T_WKV_B, "self_attn.kv_b_proj.weight"},
        {AIR_T_BO, "self_attn.o_proj.bias"},
        {AIR_T_SINKS, "self_attn.sinks"},
    };
    if (arch == AIR_ARCH_GPT_OSS && (strcmp(neutral, AIR_T_ROUTER) == 0 ||
                                     strcmp(neutral, AIR_T_ROUTER_BIAS) == 0)) {
        snprintf(buf, n, "model.layers.%d.mlp.router.%s", layer,
                 strcmp(neutral, AIR_T_ROUTER) == 0 ? "weight" : "bias");
        return 1;
    }
    if (mix && strcmp(neutral, AIR_T_ROUTER) == 0) {
        snprintf(buf, n, "model.layers.%d.block_sparse_moe.gate.weight", layer);
        return 1;
    }
    static const char *const sh[3][2] = {{AIR_T_SHEXP_GATE, "gate_proj"},
                                         {AIR_T_SHEXP_UP, "up_proj"},
                                         {AIR_T_SHEXP_DOWN, "down_proj"}};
    for (int i = 0; i < 3; i++)
        if (strcmp(sh[i][0], neutral) == 0) {
            snprintf(buf, n, "model.layers.%d.mlp.%s.%s.weight", layer,
                     ds ? "shared_experts" : "shared_expert", sh[i][1]);
            return 1;
        }
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(tab[i].neutral, neutral) == 0) {
            snprintf(buf, n, "model.layers.%d.%s", layer, tab[i].hf);
            return 1;
        }
    return 0;
}

static void hf_name(air_arch arch, int layer, const char *neutral, char *buf, size_t n) {
    /* Gemma names its four norms after their place around each block */
    static const struct {
        const char *neutral, *hf;
    } gemma_tab[] = {
        {"attn_post_norm", "post_attention_layernorm.weight"},
        {"ffn_norm", "pre_feedforward_layernorm.weight"},
        {"ffn_post_norm", "post_feedforward_layernorm.weight"},
    };
    int gemma = arch == AIR_ARCH_GEMMA2 || arch == AIR_ARCH_GEMMA3;
    for (size_t i = 0; gemma && layer >= 0 && i < sizeof gemma_tab / sizeof gemma_tab[0]; i++)
        if (strcmp(gemma_tab[i].neutral, neutral) == 0) {
            snprintf(buf, n, "model.layers.%d.%s", layer, gemma_tab[i].hf);
            return;
        }
    if (layer >= 0 && hf_layer_extra_name(arch, layer, neutral, buf, n))
        return;
    static const struct {
        const char *neutral, *hf;
    } tab[] = {
        {"attn_norm", "input_layernorm.weight"},  {"wq", "self_attn.q_proj.weight"},
        {"wk", "self_attn.k_proj.weight"},        {"wv", "self_attn.v_proj.weight"},
        {"wo", "self_attn.o_proj.weight"},        {"bq", "self_attn.q_proj.bias"},
        {"bk", "self_attn.k_proj.bias"},          {"bv", "self_attn.v_proj.bias"},
        {"q_norm", "self_attn.q_norm.weight"},    {"k_norm", "self_attn.k_norm.weight"},
        {"ffn_norm", "post_attention_layernorm.weight"}, {"w_gate", "mlp.gate_proj.weight"},
        {"w_up", "mlp.up_proj.weight"},           {"w_down", "mlp.down_proj.weight"},
        {"tok_embd", "model.embed_tokens.weight"}, {"out_norm", "model.norm.weight"},
        {"output", "lm_head.weight"},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(tab[i].neutral, neutral) == 0) {
            if (layer >= 0)
                snprintf(buf, n, "model.layers.%d.%s", layer, tab[i].hf);
            else
                snprintf(buf, n, "%s", tab[i].hf);
            return;
        }
    snprintf(buf, n, "(unknown tensor %s)", neutral);
}

/* A tensor by its HF name; 0 if absent. */
static int find_name(const hf_impl *h, const char *name, int *fi, int *ti) {
    hf_ref key = {name, 0, 0};
    const hf_ref *r = h->n_by_name ? bsearch(&key, h->by_name, (size_t)h->n_by_name,
                                             sizeof *r, ref_cmp)
                                   : NULL;
    if (!r)
        return 0;
    *fi = r->f;
    *ti = r->t;
    return 1;
}

static air_status find(hf_impl *h, int layer, const char *neutral, int *fi, int *ti) {
    char name[256];
    hf_name(h->arch, layer, neutral, name, sizeof name);
    if (find_name(h, name, fi, ti))
        return AIR_OK;
    return air_err(AIR_ERR_NOT_FOUND, "%s: tensor '%s' is missing from the model's safetensors files",
                   h->dir, name);
}

/* An FP8 weight's block scales `<name>_scale_inv`: 1 and its place if t is
 * F8_E4M3 with a scale tensor; 0 if t is not FP8; an error if the scales are
 * missing or do not fit. */
static air_status fp8_scales(hf_impl *h, const air_st_file *f, const air_st_tensor *t, int *is_fp8,
                             int *sfi, int *sti) {
    *is_fp8 = 0;
    if (t->dtype != AIR_DT_COUNT || strcmp(t->dtype_str, "F8_E4M3") != 0)
        return AIR_OK;
    char name[300];
    snprintf(name, sizeof name, "%s_scale_inv", t->name);
    if (!find_name(h, name, sfi, sti))
        return air_err(AIR_ERR_UNSUPPORTED, "%s: FP8 tensor '%s' has no '%s' block scales (only "
                       "block-scaled FP8 checkpoints are supported)", f->path, t->name, name);
    const air_st_tensor *sc = &h->files[*sfi]->tensors[*sti];
    int64_t want0 = t->n_dims == 2 ? (t->shape[0] + h->fp8_bm - 1) / h->fp8_bm : 0,
            want1 = t->n_dims == 2 ? (t->shape[1] + h->fp8_bn - 1) / h->fp8_bn : 0;
    if (t->n_dims != 2 || sc->dtype != AIR_DT_F32 || sc->n_dims != 2 || sc->shape[0] != want0 ||
        sc->shape[1] != want1)
        return air_err(AIR_ERR_FORMAT, "%s: FP8 tensor '%s' (%lld x %lld) needs F32 scales of "
                       "shape [%lld, %lld] for %dx%d blocks; '%s' does not fit", f->path, t->name,
                       (long long)t->shape[0], (long long)(t->n_dims == 2 ? t->shape[1] : 0),
                       (long long)want0, (long long)want1, h->fp8_bm, h->fp8_bn, name);
    *is_fp8 = 1;
    return AIR_OK;
}

static void mark_read(hf_impl *h, int fi, int ti) {
    if (!h->read_flags[fi][ti]) {
        h->read_flags[fi][ti] = 1;
        h->remaining[fi]--;
    }
}

/* ---------------------------------------------------------------------------
 * experts stacked in 3-D tensors
 *
 * Qwen-MoE, Mixtral, DeepSeek-V3, when a checkpoint holds them fused as
 * transformers 5 keeps them in memory: mlp.experts.gate_up_proj (E, 2 ff,
 * n_embd) with the gate rows first, mlp.experts.down_proj (E, n_embd, ff).
 * gpt-oss:
 *   mlp.experts.gate_up_proj  (E, n_embd, 2 ff)  x @ W; columns alternate gate, up
 *   mlp.experts.down_proj     (E, ff, n_embd)
 *   mlp.experts.gate_up_proj_bias (E, 2 ff), down_proj_bias (E, n_embd)
 * or, as published, MXFP4: <name>_blocks (E, rows, in / 32, 16) and
 * <name>_scales (E, rows, in / 32) with rows = output features (gate and up
 * alternating). Expert e's tensors are cut out, transposed / de-interleaved
 * into the store's (n_out, n_in) layout.
 * ------------------------------------------------------------------------- */

typedef struct {
    int e, part;   /* part: 0 w_gate, 1 w_up, 2 w_down, 3 b_gate, 4 b_up, 5 b_down */
    int fi, ti;    /* the stacked tensor, or the MXFP4 blocks */
    int sfi, sti;  /* MXFP4 scales */
    int mx;
    int fused;     /* (E, out, in) with gate rows then up rows, as transformers 5 keeps
                      the experts of the other MoE models in memory */
    int64_t ff, d; /* expert width, n_embd */
} stacked;

static int is_moe_arch(air_arch a) {
    return a == AIR_ARCH_QWEN2_MOE || a == AIR_ARCH_QWEN3_MOE || a == AIR_ARCH_MIXTRAL ||
           a == AIR_ARCH_DEEPSEEK_V3;
}

static air_status stacked_find(air_source *s, int layer, const char *neutral, int *applies,
                               stacked *r) {
    hf_impl *h = s->impl;
    static const char *const parts[6] = {"w_gate", "w_up", "w_down", "b_gate", "b_up", "b_down"};
    char part[16];
    *applies = 0;
    int gptoss = h->arch == AIR_ARCH_GPT_OSS;
    if ((!gptoss && !is_moe_arch(h->arch)) || layer < 0 ||
        sscanf(neutral, AIR_T_EXP_PREFIX "%d.%15s", &r->e, part) != 2)
        return AIR_OK;
    r->part = -1;
    for (int i = 0; i < (gptoss ? 6 : 3); i++)
        if (strcmp(part, parts[i]) == 0)
            r->part = i;
    if (r->part < 0)
        return AIR_OK;
    char name[200], alt[220];
    int fi, ti;
    if (!gptoss) { /* per-expert tensors when present, else the fused form */
        hf_name(h->arch, layer, neutral, name, sizeof name);
        if (find_name(h, name, &fi, &ti))
            return AIR_OK;
    }
    *applies = 1;
    r->fused = !gptoss;
    r->ff = s->hp.n_ff_exp;
    r->d = s->hp.n_embd;
    int down = r->part % 3 == 2;
    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%s%s", layer,
             down ? "down_proj" : "gate_up_proj", r->part >= 3 ? "_bias" : "");
    r->mx = 0;
    int64_t E = s->hp.n_expert;
    const air_st_tensor *t;
    if (find_name(h, name, &r->fi, &r->ti)) {
        t = &h->files[r->fi]->tensors[r->ti];
        int64_t out = down ? r->d : 2 * r->ff, in = down ? r->ff : r->d;
        int64_t want[3] = {E, r->part >= 3 ? out : r->fused ? out : in, r->fused ? in : out};
        int nd = r->part >= 3 ? 2 : 3;
        int ok = t->dtype != AIR_DT_COUNT && t->n_dims == nd && t->shape[0] == want[0] &&
                 t->shape[1] == want[1] && (nd == 2 || t->shape[2] == want[2]);
        if (!ok)
            return air_err(AIR_ERR_FORMAT, "%s: stacked expert tensor '%s' (dtype %s, %d dims) "
                           "does not fit %lld experts of width %lld over %lld", h->dir, name,
                           t->dtype_str, t->n_dims, (long long)E, (long long)r->ff,
                           (long long)r->d);
        return AIR_OK;
    }
    snprintf(alt, sizeof alt, "%s_blocks", name);
    int64_t rows = down ? r->d : 2 * r->ff, in = down ? r->ff : r->d;
    if (gptoss && r->part < 3 && find_name(h, alt, &r->fi, &r->ti)) {
        snprintf(alt, sizeof alt, "%s_scales", name);
        if (!find_name(h, alt, &r->sfi, &r->sti))
            return air_err(AIR_ERR_FORMAT, "%s: MXFP4 tensor '%s_blocks' has no '%s'", h->dir,
                           name, alt);
        const air_st_tensor *b = &h->files[r->fi]->tensors[r->ti],
                            *sc = &h->files[r->sfi]->tensors[r->sti];
        if (in % 32 || b->n_dims != 4 || b->shape[0] != E || b->shape[1] != rows ||
            b->shape[2] != in / 32 || b->shape[3] != 16 || strcmp(b->dtype_str, "U8") != 0 ||
            sc->n_dims != 3 || sc->shape[0] != E || sc->shape[1] != rows ||
            sc->shape[2] != in / 32 || strcmp(sc->dtype_str, "U8") != 0)
            return air_err(AIR_ERR_FORMAT, "%s: MXFP4 tensors '%s_blocks'/'_scales' do not fit "
                           "%lld experts of %lld x %lld", h->dir, name, (long long)E,
                           (long long)rows, (long long)in);
        r->mx = 1;
        return AIR_OK;
    }
    if (!gptoss) {
        hf_name(h->arch, layer, neutral, alt, sizeof alt);
        return air_err(AIR_ERR_NOT_FOUND, "%s: neither '%s' nor the fused '%s' is in the model's "
                       "safetensors files", h->dir, alt, name);
    }
    return air_err(AIR_ERR_NOT_FOUND, "%s: neither '%s' nor its MXFP4 form '%s_blocks' is in the "
                   "model's safetensors files", h->dir, name, name);
}

static void stacked_info(const air_st_tensor *t, const stacked *r, air_src_tensor *out) {
    int down = r->part % 3 == 2;
    out->dtype = r->mx ? AIR_DT_BF16 : t->dtype;
    out->n_dims = r->part >= 3 ? 1 : 2;
    out->shape[0] = down ? r->d : r->ff;
    out->shape[1] = r->part >= 3 ? 1 : down ? r->ff : r->d;
    out->nbytes = (uint64_t)(out->shape[0] * out->shape[1]) * (r->mx ? 2 : air_dtype_row_bytes(t->dtype, 1));
}

/* Reads bytes [off, off + n) of tensor t. */
static air_status read_part(const air_st_file *f, const air_st_tensor *t, uint64_t off, uint64_t n,
                            void *dst) {
    air_st_tensor part = *t;
    part.offset += off;
    part.nbytes = n;
    return air_st_read(f, &part, dst);
}

static air_status stacked_read(hf_impl *h, const stacked *r, void *dst) {
    const air_st_file *f = h->files[r->fi];
    const air_st_tensor *t = &f->tensors[r->ti];
    int down = r->part % 3 == 2, e = r->e;
    int64_t rows = down ? r->d : 2 * r->ff, in = down ? r->ff : r->d; /* (out, in) of the stack */
    size_t es = r->mx ? 2 : air_dtype_row_bytes(t->dtype, 1);
    uint64_t n = r->part >= 3 ? (uint64_t)rows * es : (uint64_t)(rows * in) * es;
    char *tmp = malloc(n ? n : 1);
    uint8_t *sc = NULL;
    air_status st = AIR_OK;
    if (!tmp)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    if (r->mx) {
        uint64_t g = (uint64_t)(rows * (in / 32));
        uint8_t *blk = malloc(g * 16);
        sc = malloc(g);
        if (!blk || !sc)
            st = air_err(AIR_ERR_NOMEM, "out of memory");
        if (!st && !(st = read_part(f, t, (uint64_t)e * g * 16, g * 16, blk)) &&
            !(st = read_part(h->files[r->sfi], &h->files[r->sfi]->tensors[r->sti], (uint64_t)e * g,
                             g, sc)))
            air_mxfp4_dequant_bf16(blk, sc, rows, in / 32, (uint16_t *)tmp); /* (rows, in) */
        free(blk);
        if (!st)
            mark_read(h, r->sfi, r->sti);
    } else {
        st = read_part(f, t, (uint64_t)e * n, n, tmp);
    }
    if (!st) {
        char *o = dst;
        if (r->part >= 3) { /* biases: de-interleave gate/up or copy */
            int64_t cnt = down ? r->d : r->ff;
            for (int64_t j = 0; j < cnt; j++)
                memcpy(o + j * es, tmp + (size_t)(down ? j : 2 * j + (r->part == 4)) * es, es);
        } else if (r->mx || r->fused) { /* (rows = out, in): pick gate/up rows */
            int64_t cnt = down ? r->d : r->ff;
            for (int64_t j = 0; j < cnt; j++) {
                int64_t src = down ? j : r->fused ? j + (r->part == 1) * r->ff : 2 * j + (r->part == 1);
                memcpy(o + (size_t)(j * in) * es, tmp + (size_t)(src * in) * es, (size_t)in * es);
            }
        } else { /* (in, rows = out) as x @ W: transpose, picking gate/up columns */
            int64_t cnt = down ? r->d : r->ff;
            for (int64_t j = 0; j < cnt; j++) {
                int64_t c = down ? j : 2 * j + (r->part == 1);
                for (int64_t i = 0; i < in; i++)
                    memcpy(o + (size_t)(j * in + i) * es, tmp + (size_t)(i * rows + c) * es, es);
            }
        }
        mark_read(h, r->fi, r->ti);
    }
    free(sc);
    free(tmp);
    return st;
}

static air_status hf_info(air_source *s, int layer, const char *neutral, air_src_tensor *out) {
    hf_impl *h = s->impl;
    int fi = 0, ti = 0, applies;
    stacked sk;
    air_status st = stacked_find(s, layer, neutral, &applies, &sk);
    if (st || applies) {
        if (!st) {
            stacked_info(&h->files[sk.fi]->tensors[sk.ti], &sk, out);
            snprintf(out->src_name, sizeof out->src_name, "expert %d of %s (%s)", sk.e,
                     h->files[sk.fi]->tensors[sk.ti].name, h->files[sk.fi]->path);
        }
        return st;
    }
    st = find(h, layer, neutral, &fi, &ti);
    if (st)
        return st;
    const air_st_tensor *t = &h->files[fi]->tensors[ti];
    int fp8, sfi, sti;
    if ((st = fp8_scales(h, h->files[fi], t, &fp8, &sfi, &sti)))
        return st;
    if (fp8) { /* dequantized to bf16 by hf_read */
        out->dtype = AIR_DT_BF16;
        out->n_dims = 2;
        out->shape[0] = t->shape[0];
        out->shape[1] = t->shape[1];
        out->nbytes = (uint64_t)t->numel * 2;
        snprintf(out->src_name, sizeof out->src_name, "%s (%s, FP8)", t->name, h->files[fi]->path);
        return AIR_OK;
    }
    if (t->dtype == AIR_DT_COUNT)
        return air_err(AIR_ERR_UNSUPPORTED,
                       "%s: tensor '%s' has dtype %s; supported are BF16, F16, F32 and "
                       "block-scaled F8_E4M3 (convert the model, e.g. save it again with "
                       "torch_dtype=bfloat16)",
                       h->files[fi]->path, t->name, t->dtype_str);
    if (t->n_dims < 1 || t->n_dims > 2)
        return air_err(AIR_ERR_FORMAT, "%s: tensor '%s' has %d dimensions, expected 1 or 2",
                       h->files[fi]->path, t->name, t->n_dims);
    out->dtype = t->dtype;
    out->n_dims = t->n_dims;
    out->shape[0] = t->shape[0];
    out->shape[1] = t->n_dims == 2 ? t->shape[1] : 1;
    out->nbytes = t->nbytes;
    snprintf(out->src_name, sizeof out->src_name, "%s (%s)", t->name, h->files[fi]->path);
    return AIR_OK;
}

static air_status hf_read(air_source *s, int layer, const char *neutral, void *dst) {
    hf_impl *h = s->impl;
    int fi = 0, ti = 0, applies;
    stacked sk;
    air_status st = stacked_find(s, layer, neutral, &applies, &sk);
    if (st || applies)
        return st ? st : stacked_read(h, &sk, dst);
    st = find(h, layer, neutral, &fi, &ti);
    if (st)
        return st;
    const air_st_tensor *t = &h->files[fi]->tensors[ti];
    int fp8, sfi, sti;
    if ((st = fp8_scales(h, h->files[fi], t, &fp8, &sfi, &sti)))
        return st;
    if (fp8) {
        const air_st_tensor *sc = &h->files[sfi]->tensors[sti];
        uint8_t *raw = malloc(t->nbytes ? t->nbytes : 1);
        float *scale = malloc(sc->nbytes ? sc->nbytes : 1);
        if (!raw || !scale)
            st = air_err(AIR_ERR_NOMEM, "out of memory reading %s", t->name);
        if (!st && !(st = air_st_read(h->files[fi], t, raw)) &&
            !(st = air_st_read(h->files[sfi], sc, scale))) {
            air_fp8_block_dequant_bf16(raw, t->shape[0], t->shape[1], scale, h->fp8_bm, h->fp8_bn,
                                       dst);
            mark_read(h, sfi, sti);
        }
        free(raw);
        free(scale);
    } else {
        st = air_st_read(h->files[fi], t, dst);
    }
    if (st)
        return st;
    mark_read(h, fi, ti);
    return AIR_OK;
}

static air_status hf_locate(air_source *s, int layer, const char *neutral, int *fd,
                            uint64_t *offset) {
    hf_impl *h = s->impl;
    *fd = -1;
    int fi = 0, ti = 0, applies;
    stacked sk;
    air_status st = stacked_find(s, layer, neutral, &applies, &sk);
    if (st || applies)
        return st; /* cut out of a stacked tensor: read() */
    if ((st = find(h, layer, neutral, &fi, &ti)))
        return st;
    const air_st_tensor *t = &h->files[fi]->tensors[ti];
    int fp8, sfi, sti;
    if ((st = fp8_scales(h, h->files[fi], t, &fp8, &sfi, &sti)) || fp8)
        return st; /* dequantized on reading: read() */
    *fd = h->files[fi]->fd;
    *offset = t->offset;
    mark_read(h, fi, ti);
    return AIR_OK;
}

static void hf_done_with_layer(air_source *s, int layer) {
    hf_impl *h = s->impl;
    if (!h->delete_original)
        return;
    for (int f = 0; f < h->n_files; f++)
        if (h->remaining[f] == 0 && h->files[f]->fd >= 0) {
            unlink(h->files[f]->path);
            h->remaining[f] = -1;
        }
}

static void hf_close(air_source *s) {
    hf_impl *h = s->impl;
    if (h) {
        for (int f = 0; f < h->n_files; f++) {
            air_st_close(h->files[f]);
            if (h->read_flags)
                free(h->read_flags[f]);
        }
        free(h->files);
        free(h->by_name);
        free(h->read_flags);
        free(h->remaining);
        free(h->dir);
    }
    air_source_free_common(s);
}

/* Shard file names: from the index when present, else model.safetensors. */
static air_status list_shards(const char *dir, char ***names, int *n) {
    *names = NULL;
    *n = 0;
    char *ipath = air_path_join(dir, "model.safetensors.index.json");
    air_status st = AIR_OK;
    if (!air_path_exists(ipath)) {
        free(ipath);
        char *single = air_path_join(dir, "model.safetensors");
        int ok = air_path_exists(single);
        free(single);
        if (!ok)
            return air_err(AIR_ERR_NOT_FOUND,
                           "%s has neither model.safetensors.index.json nor model.safetensors "
                           "(only safetensors weights are supported)", dir);
        *names = malloc(sizeof(char *));
        (*names)[0] = strdup("model.safetensors");
        *n = 1;
        return AIR_OK;
    }
    cJSON *idx = NULL;
    if ((st = load_json(ipath, &idx)))
        goto out;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    if (!cJSON_IsObject(wm)) {
        st = air_err(AIR_ERR_FORMAT, "%s: missing \"weight_map\" object", ipath);
        goto out;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || strstr(e->valuestring, "..")) {
            st = air_err(AIR_ERR_FORMAT, "%s: weight_map entry for '%s' is not a file name", ipath,
                         e->string);
            goto out;
        }
        int seen = 0;
        for (int i = 0; i < *n; i++)
            seen |= strcmp((*names)[i], e->valuestring) == 0;
        if (!seen) {
            *names = realloc(*names, sizeof(char *) * (size_t)(*n + 1));
            (*names)[(*n)++] = strdup(e->valuestring);
        }
    }
out:
    cJSON_Delete(idx);
    free(ipath);
    return st;
}

/* quantization_config of an FP8 checkpoint: the scale block (default 128x128). */
static air_status parse_fp8_block(const char *dir, int *bm, int *bn) {
    *bm = *bn = 128;
    char *path = air_path_join(dir, "config.json");
    cJSON *cfg = NULL;
    air_status st = load_json(path, &cfg);
    const cJSON *q = st ? NULL : cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(q, "weight_block_size");
    if (!st && bs && !cJSON_IsNull(bs)) {
        const cJSON *a = cJSON_GetArrayItem(bs, 0), *b = cJSON_GetArrayItem(bs, 1);
        if (!cJSON_IsArray(bs) || cJSON_GetArraySize(bs) != 2 || !cJSON_IsNumber(a) ||
            !cJSON_IsNumber(b) || a->valueint <= 0 || b->valueint <= 0)
            st = air_err(AIR_ERR_FORMAT, "%s: quantization_config.weight_block_size must be two "
                         "positive integers", path);
        else {
            *bm = a->valueint;
            *bn = b->valueint;
        }
    }
    cJSON_Delete(cfg);
    free(path);
    return st;
}

air_status air_source_open_hfdir(const char *dir, int delete_original, air_source **out) {
    *out = NULL;
    air_source *s;
    air_status ast = air_source_alloc(sizeof(hf_impl), &s);
    if (ast)
        return ast;
    hf_impl *h = s->impl;
    s->info = hf_info;
    s->read = hf_read;
    s->locate = hf_locate;
    s->done_with_layer = hf_done_with_layer;
    s->close = hf_close;
    h->dir = strdup(dir);
    h->delete_original = delete_original;
    s->deletes_consumed = delete_original;
    char **names = NULL;
    int n = 0;
    air_status st = parse_config(dir, &s->hp);
    if (st)
        goto fail;
    h->arch = s->hp.arch;
    if ((st = parse_fp8_block(dir, &h->fp8_bm, &h->fp8_bn)))
        goto fail;
    if ((st = list_shards(dir, &names, &n)))
        goto fail;
    h->files = calloc((size_t)n, sizeof *h->files);
    h->remaining = calloc((size_t)n, sizeof *h->remaining);
    h->read_flags = calloc((size_t)n, sizeof *h->read_flags);
    h->n_files = n;
    for (int i = 0; i < n; i++) {
        char *p = air_path_join(dir, names[i]);
        st = air_st_open(p, &h->files[i]);
        free(p);
        if (st)
            goto fail;
        int nt = h->files[i]->n_tensors;
        h->read_flags[i] = calloc((size_t)nt + 1, 1);
        /* tensors we never read (e.g. rotary caches) count as consumed */
        for (int t = 0; t < nt; t++) {
            const char *nm = h->files[i]->tensors[t].name;
            int used = strncmp(nm, "model.", 6) == 0 || strcmp(nm, "lm_head.weight") == 0;
            if (strstr(nm, "rotary_emb"))
                used = 0;
            /* layers past num_hidden_layers (DeepSeek-V3's multi-token
             * prediction layer) are never read */
            int lnum;
            if (sscanf(nm, "model.layers.%d.", &lnum) == 1 && lnum >= s->hp.n_layer)
                used = 0;
            h->read_flags[i][t] = !used;
            h->remaining[i] += used;
        }
    }
    /* after delete_original the weights are gone: a store made that way
     * depends on the rest only */
    s->fingerprint = air_source_fingerprint(dir, 0, !delete_original);
    {
        int total = 0;
        for (int i = 0; i < n; i++)
            total += h->files[i]->n_tensors;
        h->by_name = malloc(sizeof(hf_ref) * (size_t)(total > 0 ? total : 1));
        if (!h->by_name) {
            st = air_err(AIR_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int i = 0; i < n; i++)
            for (int t = 0; t < h->files[i]->n_tensors; t++)
                h->by_name[h->n_by_name++] = (hf_ref){h->files[i]->tensors[t].name, i, t};
        qsort(h->by_name, (size_t)h->n_by_name, sizeof(hf_ref), ref_cmp);
    }
    char *tj = air_path_join(dir, "tokenizer.json");
    char *tc = air_path_join(dir, "tokenizer_config.json");
    if (air_path_exists(tj))
        s->tokenizer_json = tj;
    else
        free(tj);
    if (air_path_exists(tc))
        s->tokenizer_config = tc;
    else
        free(tc);
    if (air_chat_template_files_exist(dir))
        s->chat_template_dir = strdup(dir);
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    s->name = strdup(base);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    *out = s;
    return AIR_OK;
fail:
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    hf_close(s);
    return st;
}

