/*
 * manifest.c - air_hparams to and from the JSON of the store manifest.
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "store/store.h"
#include "util/error.h"

#define HP_INT_FIELDS(X)                                                                           \
    X(n_vocab) X(n_embd) X(n_layer) X(n_head) X(n_head_kv) X(head_dim) X(n_ff) X(n_ctx_train)      \
    X(rope_orig_ctx) X(tie_embeddings) X(attn_bias) X(qk_norm) X(sliding_window) X(bos_id)
/* Mixture-of-experts fields: written only for MoE models, 0 when absent. */
#define HP_MOE_INT_FIELDS(X)                                                                       \
    X(n_expert) X(n_expert_used) X(n_ff_exp) X(n_ff_shexp) X(shexp_gate) X(expert_norm_topk)       \
    X(moe_step) X(moe_first_dense) X(router_sigmoid) X(n_group) X(topk_group) X(q_lora_rank)   \
    X(kv_lora_rank) X(qk_nope_dim) X(v_head_dim) X(rope_interleave) X(attn_sinks) X(attn_out_bias)  \
    X(router_bias_topk_softmax) X(expert_bias)
#define HP_OPT_FLOAT_FIELDS(X)                                                                     \
    X(routed_scale) X(rope_beta_fast) X(rope_beta_slow) X(rope_attn_factor) X(mla_scale_mult)   \
    X(swiglu_limit) X(swiglu_alpha)
#define HP_FLOAT_FIELDS(X)                                                                         \
    X(rms_eps) X(rope_theta) X(rope_factor) X(rope_low_freq_factor) X(rope_high_freq_factor)

cJSON *air_hparams_to_json(const air_hparams *hp) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "arch", air_arch_name(hp->arch));
#define ADD_INT(f) cJSON_AddNumberToObject(j, #f, hp->f);
#define ADD_FLOAT(f) cJSON_AddNumberToObject(j, #f, (double)hp->f);
    HP_INT_FIELDS(ADD_INT)
    HP_FLOAT_FIELDS(ADD_FLOAT)
    cJSON_AddStringToObject(j, "rope_scaling",
                            hp->rope_scaling == AIR_ROPE_SCALING_LLAMA3 ? "llama3"
                            : hp->rope_scaling == AIR_ROPE_SCALING_YARN ? "yarn"
                                                                        : "none");
    cJSON *eos = cJSON_AddArrayToObject(j, "eos_ids");
    for (int i = 0; i < hp->n_eos; i++)
        cJSON_AddItemToArray(eos, cJSON_CreateNumber(hp->eos_ids[i]));
    if (hp->rope_scaling == AIR_ROPE_SCALING_YARN || hp->n_expert > 0 || hp->kv_lora_rank > 0) {
        HP_OPT_FLOAT_FIELDS(ADD_FLOAT)
        ADD_INT(rope_truncate)
    }
    if (hp->n_expert > 0 || hp->kv_lora_rank > 0) {
        HP_MOE_INT_FIELDS(ADD_INT)
        cJSON *mo = cJSON_AddArrayToObject(j, "mlp_only");
        for (int i = 0; i < hp->n_mlp_only; i++)
            cJSON_AddItemToArray(mo, cJSON_CreateNumber(hp->mlp_only[i]));
        cJSON *sw = cJSON_AddArrayToObject(j, "swa_mask");
        for (int i = 0; i < 4; i++)
            cJSON_AddItemToArray(sw, cJSON_CreateNumber((double)(uint32_t)hp->swa_mask[i]));
    }
    return j;
}

air_status air_hparams_from_json(const cJSON *j, const char *path, air_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "arch");
    int found = 0;
    for (int a = 0; a < AIR_ARCH_COUNT && cJSON_IsString(v); a++)
        if (strcmp(v->valuestring, air_arch_name((air_arch)a)) == 0) {
            hp->arch = (air_arch)a;
            found = 1;
        }
    if (!found)
        return air_err(AIR_ERR_FORMAT, "%s: hparams.arch missing or unknown", path);
#define GET_NUM(f)                                                                                 \
    v = cJSON_GetObjectItemCaseSensitive(j, #f);                                                   \
    if (!cJSON_IsNumber(v))                                                                        \
        return air_err(AIR_ERR_FORMAT, "%s: hparams.%s missing", path, #f);
#define GET_INT(f)                                                                                 \
    GET_NUM(f)                                                                                     \
    hp->f = (int32_t)v->valuedouble;
#define GET_FLOAT(f)                                                                               \
    GET_NUM(f)                                                                                     \
    hp->f = (float)v->valuedouble;
    HP_INT_FIELDS(GET_INT)
    HP_FLOAT_FIELDS(GET_FLOAT)
    v = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    hp->rope_scaling = !cJSON_IsString(v)                      ? AIR_ROPE_SCALING_NONE
                       : strcmp(v->valuestring, "llama3") == 0 ? AIR_ROPE_SCALING_LLAMA3
                       : strcmp(v->valuestring, "yarn") == 0   ? AIR_ROPE_SCALING_YARN
                                                               : AIR_ROPE_SCALING_NONE;
    v = cJSON_GetObjectItemCaseSensitive(j, "eos_ids");
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (hp->n_eos < AIR_MAX_EOS && cJSON_IsNumber(e))
            hp->eos_ids[hp->n_eos++] = e->valueint;
    }
#define GET_OPT_INT(f)                                                                             \
    v = cJSON_GetObjectItemCaseSensitive(j, #f);                                                   \
    hp->f = cJSON_IsNumber(v) ? (int32_t)v->valuedouble : 0;
    HP_MOE_INT_FIELDS(GET_OPT_INT)
#define GET_OPT_FLOAT(f)                                                                           \
    v = cJSON_GetObjectItemCaseSensitive(j, #f);                                                   \
    hp->f = cJSON_IsNumber(v) ? (float)v->valuedouble : 0;
    HP_OPT_FLOAT_FIELDS(GET_OPT_FLOAT)
    GET_OPT_INT(rope_truncate)
    if (hp->n_group < 0 || hp->topk_group < 0 || hp->kv_lora_rank < 0 || hp->q_lora_rank < 0 ||
        (hp->n_group > 0 && (hp->n_expert % hp->n_group || hp->topk_group > hp->n_group)) ||
        (hp->kv_lora_rank > 0 && (hp->qk_nope_dim <= 0 || hp->v_head_dim <= 0)))
        return air_err(AIR_ERR_FORMAT, "%s: hparams hold invalid routing or latent sizes", path);
    v = cJSON_GetObjectItemCaseSensitive(j, "swa_mask");
    for (int i = 0; i < 4 && cJSON_IsArray(v); i++) {
        const cJSON *m = cJSON_GetArrayItem(v, i);
        hp->swa_mask[i] = cJSON_IsNumber(m) ? (int32_t)(uint32_t)m->valuedouble : 0;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "mlp_only");
    cJSON_ArrayForEach(e, v) {
        if (hp->n_mlp_only < AIR_MAX_MLP_ONLY && cJSON_IsNumber(e))
            hp->mlp_only[hp->n_mlp_only++] = e->valueint;
    }
    if (hp->n_expert < 0 || hp->n_expert > 4096 || (hp->n_expert > 0 &&
        (hp->n_expert_used <= 0 || hp->n_expert_used > hp->n_expert ||
         hp->n_expert_used > AIR_MAX_EXPERT_USED || hp->n_ff_exp <= 0)))
        return air_err(AIR_ERR_FORMAT, "%s: hparams hold invalid expert counts", path);
    if (hp->n_layer <= 0 || hp->n_embd <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 ||
        hp->head_dim <= 0 || hp->n_vocab <= 0 || hp->n_ff <= 0 || hp->n_head % hp->n_head_kv)
        return air_err(AIR_ERR_FORMAT, "%s: hparams hold invalid sizes", path);
    return AIR_OK;
}
