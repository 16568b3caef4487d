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
    int max_seq;
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
    /* tree rows of the current batch (air_batch.parent set): per row the end
     * of its committed prefix and its chain of slots, root first */
    int32_t *tree_prefix, *tree_off, *tree_slots;
    struct air_cuda_engine *cuda; /* the GPU backend (forward_cuda.c); NULL: the CPU */
    char cpu_reason[512];         /* device auto fell back to the CPU: why */
    /* the layers run here, [lo, hi), and whether the embeddings and the head
     * are here: all of them unless this is one rank of a pipeline */
    int lo, hi, has_embed, has_head;
    struct air_pipe *pipe; /* NULL: not a pipeline rank */
};

/* The GPU backend (forward_cuda.c). open: before the streamer exists;
 * decides whether and how the model runs on the GPU (AIR_OK with e->cuda
 * NULL when device auto settles on the CPU) and gives the units the GPU
 * keeps (*skip, n_units bytes, caller frees). start: after the streamer
 * exists; page-locks its buffers and uploads the resident units. */
air_status air_cuda_engine_open(air_engine *e, const air_engine_options *o, uint8_t **skip);
air_status air_cuda_engine_start(air_engine *e);
void air_cuda_engine_close(air_engine *e);
/* Layers and head of one pass on the GPU: x (rows, n_embd) holds the
 * embeddings; b->logits receives the wanted rows' logits. */
air_status air_cuda_engine_forward(air_engine *e, const air_batch *b, const float *x);

air_status air_engine_scratch(air_engine *e, size_t floats, float **out);

/* The tensors of a Llama-family layer (llama.c; also the GPU's layer,
 * forward_cuda.c): the optional ones NULL when absent; an error names the
 * unit file when a needed one is missing. */
typedef struct {
    const air_tensor *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *bo, *sinks, *q_norm, *k_norm,
        *ffn_norm, *w_gate, *w_up, *w_down;
} air_llama_w;
air_status air_llama_bind(const air_engine *e, int l, const air_layer *w, air_llama_w *t);

/* The MLP half of layer l (llama.c): x += mlp(ffn_norm(x)), dense or MoE. */
air_status air_layer_ffn(air_engine *e, int l, const air_layer *w, const air_batch *b, float *x);

/* out (rows, n_out of wd) = (silu(h Wg^T) * (h Wu^T)) Wd^T; g, u: (rows, n_out
 * of wg) scratch. out may alias h. */
void air_swiglu(air_engine *e, const air_tensor *wg, const air_tensor *wu, const air_tensor *wd,
                const float *h, int rows, float *g, float *u, float *out);

/* One decoder layer with multi-head latent attention (mla.c). */
air_status air_mla_layer(air_engine *e, int l, const air_layer *w, const air_batch *b, float *x);

/* The mixture-of-experts MLP of layer l (moe.c): x += moe(ffn_norm(x)). */
air_status air_moe_ffn(air_engine *e, int l, const air_layer *w, const air_batch *b, float *x);

/* The keys row r of batch b attends to, in order: the positions [lo, hi) of
 * its sequence, then the slots extra[0..n_extra) (a tree row's chain, the row
 * itself last), within the last `window` positions (0: all; the layer's
 * air_hp_layer_window). Valid during a forward pass. */
typedef struct {
    int lo, hi, n_extra;
    const int32_t *extra;
} air_row_keys;
void air_engine_row_keys(const air_engine *e, const air_batch *b, int r, int window,
                         air_row_keys *k);

/* The KV slot row r writes. */
static inline int air_batch_slot(const air_batch *b, int r) {
    return b->slot ? b->slot[r] : b->pos[r];
}

#endif
