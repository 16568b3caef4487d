/*
 * engine_internal.h - the engine's fields, shared by forward.c and the
 * per-architecture layer code.
 */
#ifndef AIR_MODEL_ENGINE_INTERNAL_H
#define AIR_MODEL_ENGINE_INTERNAL_H

#include <stddef.h>

#include "model/forward.h"

struct air_engine {
    air_hparams hp;
    air_store *store;
    air_streamer *streamer;
    air_pool *pool;
    float *inv_freq;           /* (head_dim / 2) */
    float *rope_cos, *rope_sin; /* (rows, head_dim / 2) for the current batch */
    float *scratch;
    size_t scratch_cap;
    int (*should_abort)(void *user); /* polled between layers; may be NULL */
    void *abort_user;
    struct air_experts *experts; /* mixture-of-experts layers: expert reader + cache */
};

air_status air_engine_scratch(air_engine *e, size_t floats, float **out);

/* The mixture-of-experts MLP of layer l (moe.c): x += moe(ffn_norm(x)). */
air_status air_moe_ffn(air_engine *e, int l, const air_layer *w, const air_batch *b, float *x);

#endif
