/*
 * forward.h - the engine: a layer store, its streamer, a thread pool and the
 * batched forward pass.
 *
 * One forward pass runs a batch of rows (tokens) through every unit of the
 * store in order; each streamed unit is read once per pass whatever the
 * number of rows: all prompt tokens in prefill, every active sequence in
 * decode.
 */
#ifndef AIR_MODEL_FORWARD_H
#define AIR_MODEL_FORWARD_H

#include <stdint.h>

#include "kernels/pool.h"
#include "model/kvcache.h"
#include "runtime/streamer.h"
#include "store/store.h"

/* Where the forward pass runs. */
typedef enum {
    AIR_DEVICE_AUTO = 0, /* the GPU when the CUDA plugin, a driver and a GPU are there and the
                            model's architecture runs on it; else the CPU */
    AIR_DEVICE_CPU = 1,
    AIR_DEVICE_CUDA = 2, /* the GPU, or an error saying why not */
} air_device;

/* Parses "auto" (or NULL / ""), "cpu", "cuda"; returns 0 on anything else. */
int air_device_parse(const char *s, air_device *out);

typedef struct {
    int n_threads; /* <= 0: one per core */
    /* positions of one sequence's context; <= 0: the model's training
     * context, at most 4096. An automatic RAM budget reserves its KV cache. */
    int max_seq;
    air_streamer_options stream;
    air_device device;
    uint64_t vram_budget; /* bytes of GPU memory to use; 0: what is free, less 1/16 headroom */
    /* part = 1: only the units first_unit..last_unit of the store (-1 the
     * embeddings, n_layer the head): one rank of a pipeline (dist/). */
    int part, first_unit, last_unit;
} air_engine_options;

void air_engine_default_options(air_engine_options *o);

typedef struct air_engine air_engine;

air_status air_engine_open(const char *store_dir, const air_engine_options *opt, air_engine **out);
void air_engine_close(air_engine *e);

const air_hparams *air_engine_hparams(const air_engine *e);
int air_engine_max_seq(const air_engine *e); /* the context length in force */
air_store *air_engine_store(air_engine *e);
air_streamer *air_engine_streamer(air_engine *e);
air_pool *air_engine_pool(air_engine *e);
/* The expert reader of a mixture-of-experts model (runtime/experts.h); NULL
 * for a dense model. */
struct air_experts *air_engine_experts(air_engine *e);

/* The GPU side of an engine (model/forward_cuda.c). */
typedef struct {
    int on_gpu;             /* 0: the engine runs on the CPU */
    char device[256];       /* GPU name, compute capability, memory */
    char cpu_reason[512];   /* device auto on the CPU: why not the GPU */
    uint64_t vram_budget;   /* the budget in force */
    uint64_t vram_planned;  /* the plan's peak: resident + 2 slots + KV + activations */
    int n_units, n_resident;
    uint64_t resident_bytes;
    uint64_t streamed_bytes; /* copied to the GPU per pass */
    uint64_t slot_bytes;
    int host_registered;     /* the streamer's buffers are page-locked */
    uint64_t bytes_uploaded; /* since the engine opened (resident units included) */
    double upload_wait_s;    /* host time waiting for copies to the GPU */
} air_engine_gpu_stats;
void air_engine_gpu_get_stats(const air_engine *e, air_engine_gpu_stats *st);

/* The copy floor of the engine's GPU: page-locked host -> device GB/s and
 * device memory GB/s (read + write), measured now. AIR_ERR_UNSUPPORTED on
 * the CPU. */
air_status air_engine_gpu_bandwidth(air_engine *e, double *h2d_gbs, double *mem_gbs);

/* A batch of rows. Rows of one sequence come in increasing positions; each
 * row's key/value go into kv[r] at pos[r], and the row attends to positions
 * [0, pos[r]] of its own sequence.
 *
 * Token trees (speculative candidates): with `parent` set, row r's key/value
 * go into KV slot slot[r] (its RoPE position stays pos[r]) and the row
 * attends to the chain it belongs to: parent[r] = -1 makes it a root that
 * follows the committed prefix [0, pos[r]); parent[r] = s >= 0 makes it the
 * child of the entry in slot s (written earlier in this batch or by an
 * earlier pass), so it attends to that entry's chain, then to itself.
 * pos[r] must be the parent's position + 1. Both NULL: plain causal rows. */
typedef struct {
    int n;
    const int32_t *tokens;
    const int32_t *pos;
    air_kv *const *kv;
    const uint8_t *want_logits; /* rows whose logits are wanted; NULL: the last row */
    float *logits;              /* (wanted rows, n_vocab), in row order */
    const int32_t *slot;        /* tree rows: KV slot per row (NULL: slot = pos) */
    const int32_t *parent;      /* tree rows: parent slot or -1 (NULL: causal rows) */
} air_batch;

air_status air_engine_forward(air_engine *e, const air_batch *b);

/* The pieces of a pass, for a pipeline rank that runs part of it
 * (dist/pipeline.c); air_engine_forward is begin, embed, layers, head, end.
 * begin checks the rows and prepares RoPE and tree rows; layers runs the
 * engine's own layer range over x (rows, n_embd); head writes the logits of
 * the wanted rows; end frees what begin made (also after a failure). */
air_status air_engine_pass_begin(air_engine *e, const air_batch *b);
air_status air_engine_pass_embed(air_engine *e, const air_batch *b, float *x);
air_status air_engine_pass_layers(air_engine *e, const air_batch *b, float *x);
air_status air_engine_pass_head(air_engine *e, const air_batch *b, float *x);
void air_engine_pass_end(air_engine *e);
/* The layers this engine runs: [*lo, *hi); whether it has the embeddings and
 * the head. */
void air_engine_layer_range(const air_engine *e, int *lo, int *hi, int *has_embed, int *has_head);
/* The pipeline this engine is a rank of (dist/pipeline.h), or NULL. */
struct air_pipe *air_engine_pipe(const air_engine *e);
void air_engine_set_pipe(air_engine *e, struct air_pipe *p);

/* One sequence: tokens[n] at positions kv->n_past..; advances kv->n_past.
 * logits: n_vocab floats for the last token, or n * n_vocab if all_logits. */
air_status air_engine_eval(air_engine *e, air_kv *kv, const int32_t *tokens, int n, int all_logits,
                           float *logits);

/* A callback polled between layers of every pass (NULL: none); a non-zero
 * answer ends the pass with AIR_ERR_ABORTED. Not thread-safe: set it before
 * a generation starts. */
void air_engine_set_abort(air_engine *e, int (*should_abort)(void *user), void *user);

/* Internal: one decoder layer over the batch (llama.c). */
typedef struct air_fwd_scratch air_fwd_scratch;
air_status air_llama_layer(air_engine *e, int layer, const air_layer *w, const air_batch *b,
                           float *x);
/* Internal: one Gemma 2 / Gemma 3 decoder layer over the batch (gemma.c). */
air_status air_gemma_layer(air_engine *e, int layer, const air_layer *w, const air_batch *b,
                           float *x);

/* Internal, shared by the layer files (llama.c). A layer's tensors by
 * neutral name: *dst = the tensor or NULL; a missing one with need set is
 * AIR_ERR_FORMAT naming the unit file. */
typedef struct {
    const air_tensor **dst;
    const char *name;
    int need;
} air_bind;
air_status air_bind_tensors(const air_engine *e, int layer, const air_layer *w, const air_bind *tab,
                            size_t n);

/* y (rows, n_out) = x (rows, n_in) @ W^T for a stored tensor W (n_out, n_in). */
void air_mm(air_engine *e, const air_tensor *w, const float *x, int rows, float *y);

/* Rotate-half RoPE on n_heads
 * heads of hd values of one row, with that row's cos/sin (hd / 2 each). */
void air_rope_heads(float *v, int n_heads, int hd, const float *cs, const float *sn);

/* How scores are formed: s = q.k * scale, then s = softcap * tanh(s / softcap)
 * when softcap > 0; each row sees the last `window` positions (0: all). */
typedef struct {
    float scale;
    float softcap;
    int window;
    const float *sinks; /* (n_head) sink logits joining each softmax, then dropped; NULL: none */
} air_attn_opts;

/* out (rows, n_head * head_dim) = softmax(scores) V for every row of b over
 * its own sequence's cache of `layer` (causal, grouped-query), q (rows,
 * n_head * head_dim) already rotated; scores: pool size * max_seq floats. */
void air_attention(air_engine *e, const air_batch *b, int layer, const float *q, float *out,
                   float *scores, int max_seq, const air_attn_opts *o);

#endif
