/*
 * kvcache.c - allocation of a sequence's key/value cache, and keeping the
 * accepted path of a speculative tree (rollback of the rejected entries).
 */
#include "model/kvcache.h"

#include <stdlib.h>
#include <string.h>

#include "dist/pipeline.h"
#include "util/error.h"

static _Atomic uint64_t g_next_kv_id = 1;

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
    kv->id = g_next_kv_id++;
    size_t n = (size_t)hp->n_layer * (size_t)max_seq * (size_t)kv->kv_dim;
    kv->k = malloc(n * sizeof(float));
    kv->v = hp->kv_lora_rank > 0 ? NULL : malloc(n * sizeof(float));
    kv->up = malloc(sizeof(int32_t) * (size_t)(max_seq > 0 ? max_seq : 1));
    if (!kv->k || (!kv->v && hp->kv_lora_rank == 0) || !kv->up) {
        air_kv_free(kv);
        return air_err(AIR_ERR_NOMEM, "out of memory for the KV cache (%zu MiB for %d positions); "
                       "lower max_seq_len", air_kv_bytes(hp, max_seq) >> 20, max_seq);
    }
    for (int i = 0; i < max_seq; i++)
        kv->up[i] = -1;
    return AIR_OK;
}

void air_kv_free(air_kv *kv) {
    if (kv->k)
        air_pipe_note_kv_free(kv->id);
    free(kv->k);
    free(kv->v);
    free(kv->up);
    kv->k = kv->v = NULL;
    kv->up = NULL;
}

void air_kv_keep_path(air_kv *kv, int base, const int32_t *slots, int n) {
    air_pipe_note_keep_path(kv->id, base, slots, n);
    size_t row = sizeof(float) * (size_t)kv->kv_dim;
    for (int i = 0; i < n; i++) {
        int to = base + i, from = slots[i];
        kv->up[to] = -1;
        if (from == to)
            continue;
        /* from > to, and later path slots are greater still: no overlap */
        for (int l = 0; l < kv->n_layer; l++) {
            memcpy(air_kv_k(kv, l, to), air_kv_k(kv, l, from), row);
            if (kv->v) /* latent attention keeps no separate values */
                memcpy(air_kv_v(kv, l, to), air_kv_v(kv, l, from), row);
        }
    }
    kv->n_past = base + n;
}

void air_kv_rollback(air_kv *kv, int n_past) {
    if (n_past >= 0 && n_past < kv->n_past)
        kv->n_past = n_past;
}
