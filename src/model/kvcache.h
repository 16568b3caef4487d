/*
 * kvcache.h - the key/value cache of one sequence: for every layer and
 * position, the (rotated) keys and the values of all KV heads, fp32.
 *   k, v: (n_layer, max_seq, n_head_kv * head_dim)
 * With multi-head latent attention (kv_lora_rank > 0) only k exists:
 *   k: (n_layer, max_seq, kv_lora_rank + head_dim), the normalized latent and
 *   the rotated shared key of each position (model/mla.c).
 */
#ifndef AIR_MODEL_KVCACHE_H
#define AIR_MODEL_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "airllm.h"
#include "model/arch.h"

typedef struct {
    int n_layer, max_seq, kv_dim;
    int n_past; /* positions filled */
    float *k, *v;
    int32_t *up; /* (max_seq) tree entries: the slot of each entry's parent, -1 for a root */
    uint64_t id; /* unique in the process (air_kv_init): names the cache to pipeline ranks */
} air_kv;

/* Allocates the cache for max_seq positions. Free with air_kv_free(). The
 * memory of layers a pipeline rank does not run is never touched, so it takes
 * address space, not RAM. */
air_status air_kv_init(air_kv *kv, const air_hparams *hp, int max_seq);
void air_kv_free(air_kv *kv);
size_t air_kv_bytes(const air_hparams *hp, int max_seq);

/* Speculation: after a tree pass wrote candidate entries past n_past, keeps
 * the accepted path: the entries in slots[0..n) (in path order, each slot >=
 * base + its index) move to positions base, base+1, ... in every layer, and
 * n_past becomes base + n. Everything past it is discarded (rolled back). */
void air_kv_keep_path(air_kv *kv, int base, const int32_t *slots, int n);

/* Rolls the cache back to its first n_past positions. */
void air_kv_rollback(air_kv *kv, int n_past);

static inline float *air_kv_k(const air_kv *kv, int layer, int pos) {
    return kv->k + ((size_t)layer * kv->max_seq + pos) * kv->kv_dim;
}
static inline float *air_kv_v(const air_kv *kv, int layer, int pos) {
    return kv->v + ((size_t)layer * kv->max_seq + pos) * kv->kv_dim;
}

#endif
