/*
 * kvcache.c - allocation of a sequence's key/value cache.
 */
#include "model/kvcache.h"

#include <stdlib.h>

#include "util/error.h"

/* Floats per position and layer of k (and of v; latent attention has no v). */
static size_t kv_row(const air_hparams *hp) {
    return hp->kv_lora_rank > 0 ? (size_t)hp->kv_lora_rank + (size_t)hp->head_dim
                                : (size_t)hp->n_head_kv * (size_t)hp->head_dim;
}

size_t air_kv_bytes(const air_hparams *hp, int max_seq) {
    return (hp->kv_lora_rank > 0 ? 1 : 2) * (size_t)hp->n_layer * (size_t)max_seq * kv_row(hp) *
           sizeof(float);
}

air_status air_kv_init(air_kv *kv, const air_hparams *hp, int max_seq) {
    kv->n_layer = hp->n_layer;
    kv->max_seq = max_seq;
    kv->kv_dim = (int)kv_row(hp);
    kv->n_past = 0;
    size_t n = (size_t)hp->n_layer * (size_t)max_seq * (size_t)kv->kv_dim;
    kv->k = malloc(n * sizeof(float));
    kv->v = hp->kv_lora_rank > 0 ? NULL : malloc(n * sizeof(float));
    if (!kv->k || (!kv->v && hp->kv_lora_rank == 0)) {
        air_kv_free(kv);
        return air_err(AIR_ERR_NOMEM, "out of memory for the KV cache (%zu MiB for %d positions); "
                       "lower max_seq_len", air_kv_bytes(hp, max_seq) >> 20, max_seq);
    }
    return AIR_OK;
}

void air_kv_free(air_kv *kv) {
    free(kv->k);
    free(kv->v);
    kv->k = kv->v = NULL;
}
