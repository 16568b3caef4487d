/*
 * kvcache.c - allocation of a sequence's key/value cache.
 */
#include "model/kvcache.h"

#include <stdlib.h>

#include "util/error.h"

size_t air_kv_bytes(const air_hparams *hp, int max_seq) {
    return 2 * (size_t)hp->n_layer * (size_t)max_seq * (size_t)hp->n_head_kv * hp->head_dim *
           sizeof(float);
}

air_status air_kv_init(air_kv *kv, const air_hparams *hp, int max_seq) {
    kv->n_layer = hp->n_layer;
    kv->max_seq = max_seq;
    kv->kv_dim = hp->n_head_kv * hp->head_dim;
    kv->n_past = 0;
    size_t n = (size_t)hp->n_layer * (size_t)max_seq * (size_t)kv->kv_dim;
    kv->k = malloc(n * sizeof(float));
    kv->v = malloc(n * sizeof(float));
    if (!kv->k || !kv->v) {
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
