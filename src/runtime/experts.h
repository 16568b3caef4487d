/*
 * experts.h - reads the experts of mixture-of-experts layers on demand, with
 * an expert cache in RAM.
 *
 * The streamer brings in the dense part of an MoE layer (attention, norms,
 * router, shared expert). Once the router has picked the experts of the
 * batch (the union over its rows), the layer asks for exactly those:
 *
 *   air_experts_begin(x, l, ids, n)   hits come from the cache; each miss is
 *                                     queued for the reader threads, several
 *                                     reads in flight
 *   for each id in ids, in order:
 *         air_experts_get(x, id, &w)    waits until expert id is in RAM, while
 *         ... compute expert id ...     the reads of the next ones go on
 *         air_experts_done(x, id)
 *   air_experts_end(x)
 *
 * Computing in a fixed order (ascending ids) keeps the sum over experts in
 * the order transformers uses, whatever order the reads complete in.
 *
 * Each expert is one aligned range of its layer file (docs/layer-store.md),
 * verified by its tensors' checksums after the read.
 *
 * The cache holds as many experts as its budget allows (the RAM budget left
 * after the streamer's pinned units). It keeps the most used ones: every
 * expert has a use count (how many passes routed to it); a read expert takes
 * a free cache slot, or replaces the least used cached expert if that one is
 * used less, else it goes through a transient buffer and is dropped after
 * use. Least-recently-used would be wrong here for the same reason as for
 * layers: passes visit layers in a cycle.
 */
#ifndef AIR_RUNTIME_EXPERTS_H
#define AIR_RUNTIME_EXPERTS_H

#include <stdint.h>

#include "store/store.h"

typedef struct {
    const air_tensor *w_gate;                 /* (n_ff_exp, n_embd) */
    const air_tensor *w_up;                   /* (n_ff_exp, n_embd) */
    const air_tensor *w_down;                 /* (n_embd, n_ff_exp) */
    const air_tensor *b_gate, *b_up, *b_down; /* f32 biases (gpt-oss), else NULL */
} air_expert_w;

typedef struct {
    uint64_t n_routed;     /* experts asked for (per layer and pass: the union over rows) */
    uint64_t n_hits;       /* of those, found in the cache */
    uint64_t n_read;       /* expert ranges read from disk */
    uint64_t bytes_read;   /* bytes of those reads */
    double read_seconds;   /* summed over the reader threads */
    double wait_seconds;   /* time compute waited for an expert */
    int cache_slots;       /* experts the cache can hold */
    uint64_t cache_bytes;  /* RAM of the cache */
    uint64_t buffer_bytes; /* transient read buffers (outside the budget) */
    uint64_t expert_bytes; /* one expert's range (the largest) */
} air_experts_stats;

typedef struct air_experts air_experts;

/* Indexes the experts of every MoE layer of the store (reads each layer's
 * tensor table) and starts the reader threads. cache_budget: bytes of RAM
 * for cached experts (0: none). direct_io: O_DIRECT where possible. */
air_status air_experts_open(air_store *store, uint64_t cache_budget, int direct_io,
                            air_experts **out);
void air_experts_free(air_experts *x);

/* Starts layer l's experts ids[0..n) (distinct, in [0, n_expert)). */
air_status air_experts_begin(air_experts *x, int l, const int *ids, int n);
/* Waits until started expert id is in RAM and returns its weights, valid
 * until air_experts_done(x, id). */
air_status air_experts_get(air_experts *x, int id, air_expert_w *w);
void air_experts_done(air_experts *x, int id);
/* Ends the layer (also after an error): waits for reads in flight. */
void air_experts_end(air_experts *x);

/* Bytes of expert e of layer l in its file (0 for a dense layer). */
uint64_t air_experts_range_bytes(const air_experts *x, int l, int e);
void air_experts_get_stats(const air_experts *x, air_experts_stats *st);

#endif
