/*
 * arch.c - architecture names.
 */
#include "model/arch.h"

const char *air_arch_name(air_arch a) {
    switch (a) {
    case AIR_ARCH_LLAMA: return "llama";
    case AIR_ARCH_MISTRAL: return "mistral";
    case AIR_ARCH_QWEN2: return "qwen2";
    case AIR_ARCH_QWEN3: return "qwen3";
    case AIR_ARCH_GEMMA2: return "gemma2";
    case AIR_ARCH_GEMMA3: return "gemma3";
    case AIR_ARCH_QWEN2_MOE: return "qwen2_moe";
    case AIR_ARCH_QWEN3_MOE: return "qwen3_moe";
    case AIR_ARCH_MIXTRAL: return "mixtral";
    case AIR_ARCH_DEEPSEEK_V3: return "deepseek_v3";
    case AIR_ARCH_GPT_OSS: return "gpt_oss";
    default: return "unknown";
    }
}

int air_hp_layer_is_moe(const air_hparams *hp, int l) {
    if (hp->n_expert <= 0 || l < hp->moe_first_dense)
        return 0;
    for (int i = 0; i < hp->n_mlp_only; i++)
        if (hp->mlp_only[i] == l)
            return 0;
    int step = hp->moe_step > 0 ? hp->moe_step : 1;
    return (l + 1) % step == 0;
}

int air_hp_layer_window(const air_hparams *hp, int l) {
    if (hp->sliding_window <= 0)
        return 0;
    if (hp->swa_period > 0) /* Gemma: every swa_period-th layer is global */
        return (l + 1) % hp->swa_period == 0 ? 0 : hp->sliding_window;
    int any = hp->swa_mask[0] | hp->swa_mask[1] | hp->swa_mask[2] | hp->swa_mask[3];
    if (!any)
        return hp->sliding_window;
    return l < 128 && ((uint32_t)hp->swa_mask[l / 32] >> (l % 32) & 1) ? hp->sliding_window : 0;
}
