/*
 * forward_cuda.c - the forward pass on a GPU through the CUDA plugin
 * (cuda/cuda_abi.h), for the dense Llama family (llama, mistral, qwen2,
 * qwen3): the same layer as llama.c, op for op, on device buffers.
 *
 * Weights. A residency plan (cuda/vram_plan.h) keeps the head and the first
 * layers in GPU memory for the life of the engine, uploaded once at start.
 * The streamer never reads those units; the others it reads as on the CPU
 * (from RAM-pinned buffers or disk, one unit ahead), and each pass copies
 * them into two device buffers ("slots") on the copy stream:
 *
 *   copy stream:    wait done[s]  upload unit -> slot s  record up[s]
 *   compute stream: wait up[s]    layer on slot s        record done[s]
 *
 * The copy of the next streamed unit is issued as soon as the compute of
 * the unit before it is queued, so the copy of layer l+1 runs while layer l
 * computes and the disk read of l+2 (the streamer's thread) runs meanwhile.
 * The host waits for each copy before it hands the host buffer back to the
 * streamer. The streamer's buffers are page-locked (cudaHostRegister) so the
 * copies are DMA at full PCIe speed.
 *
 * Activations. x (rows, n_embd) stays on the GPU for the whole pass; each
 * layer runs over chunks of at most CHUNK rows (in order, so every row's
 * earlier keys are in the cache before its attention). The KV cache of each
 * sequence (air_kv) has a device twin, found by the air_kv's address and
 * allocated on first use. Embeddings are looked up on the CPU and uploaded;
 * logits come back to the CPU, where sampling runs.
 *
 * Not on the GPU (device auto uses the CPU for them, device cuda says so):
 * Gemma, mixture-of-experts, latent attention, attention sinks, and
 * speculative candidates (tree rows other than roots at their own position).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda/cuda_load.h"
#include "cuda/vram_plan.h"
#include "model/engine_internal.h"
#include "util/error.h"
#include "util/progress.h"

#define CHUNK 128 /* rows per step of a layer */
#define MAX_KV 64 /* device KV caches kept (sequences) */

enum { EV_UP0 = 0, EV_UP1 = 1, EV_DONE0 = 2, EV_DONE1 = 3 };

typedef struct {
    void *d_base;   /* device copy of the unit's tensor data */
    air_layer view; /* tensors pointing into d_base */
    char names[AIR_LF_MAX_TENSORS][AIR_LF_NAME];
} dev_unit;

typedef struct {
    const air_kv *kv; /* identity only */
    float *d_k, *d_v; /* (n_layer, max_seq, kv_dim) */
    int max_seq, kv_dim;
    uint64_t pass; /* last pass that used it */
} dev_kv;

struct air_cuda_engine {
    const air_cuda_api *api;
    air_cu_ctx *ctx;
    air_cu_info info;
    air_vram_plan plan;
    air_device device;
    dev_unit *units; /* (n_units) resident units */
    dev_unit slot[2];
    float *d_x;
    size_t x_bytes;
    float *d_tmp; /* chunk buffers */
    float *d_h, *d_q, *d_k, *d_v, *d_att, *d_g, *d_u, *d_logits;
    void *d_meta;
    size_t meta_bytes;
    uint8_t *h_meta;
    dev_kv kvs[MAX_KV];
    int n_kvs;
    uint64_t pass;
    void *registered[1024];
    int n_registered;
    air_engine_gpu_stats stats;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A failed plugin call: its message, with what the engine was doing. */
static air_status cu_err(struct air_cuda_engine *c, const char *what) {
    return air_err(AIR_ERR_INTERNAL, "GPU: %s: %s", what, c->api->ctx_error(c->ctx));
}

#define CU(c, call, what)                                                                          \
    do {                                                                                           \
        if (call)                                                                                  \
            return cu_err((c), (what));                                                            \
    } while (0)

/* Why a model cannot run on the GPU, or NULL. */
static const char *gpu_unsupported(const air_hparams *hp) {
    switch (hp->arch) {
    case AIR_ARCH_LLAMA:
    case AIR_ARCH_MISTRAL:
    case AIR_ARCH_QWEN2:
    case AIR_ARCH_QWEN3:
        break;
    default:
        return "its architecture runs on the CPU only (the GPU runs llama, mistral, qwen2 and "
               "qwen3)";
    }
    if (hp->n_expert > 0)
        return "mixture-of-experts layers run on the CPU only";
    if (hp->kv_lora_rank > 0)
        return "latent attention runs on the CPU only";
    if (hp->attn_sinks || hp->rope_interleave || hp->act != AIR_ACT_SILU || hp->norm_add_one ||
        hp->post_norms || hp->attn_softcap > 0 || hp->final_softcap > 0 ||
        (hp->embd_scale != 0.0f && hp->embd_scale != 1.0f))
        return "it uses a layer feature the GPU path lacks (sinks, interleaved RoPE, GELU, "
               "offset or post norms, soft-capping or scaled embeddings)";
    if (hp->head_dim > 2048 || hp->head_dim % 2)
        return "its head dimension is not supported on the GPU";
    return NULL;
}

/* Floats of the chunk buffers: h (also the attention and MLP outputs), q,
 * k, v, att, g, u, logits. */
static size_t chunk_floats(const air_hparams *hp) {
    size_t qd = (size_t)hp->n_head * hp->head_dim, kvd = (size_t)hp->n_head_kv * hp->head_dim;
    size_t per_row =
        (size_t)hp->n_embd + 2 * qd + 2 * kvd + 2 * (size_t)hp->n_ff + (size_t)hp->n_vocab;
    return CHUNK * per_row + 8 * 64; /* + alignment of each buffer */
}

/* Device memory besides weights for a pass over max_seq rows of one
 * sequence: KV cache, x, chunk buffers, attention partials and metadata. */
static uint64_t fixed_bytes(const air_hparams *hp, int max_seq) {
    uint64_t kv = air_kv_bytes(hp, max_seq);
    uint64_t x = (uint64_t)max_seq * hp->n_embd * 4;
    uint64_t tmp = chunk_floats(hp) * 4;
    uint64_t splits = (uint64_t)(max_seq + 255) / 256;
    uint64_t att = (uint64_t)CHUNK * hp->n_head * splits * (hp->head_dim + 2) * 4;
    uint64_t meta = (uint64_t)max_seq * (64 + 16 * (uint64_t)hp->n_layer) + 4096;
    return kv + x + tmp + att + meta + (64u << 20); /* + 64 MiB for the runtime's own use */
}

air_status air_cuda_engine_open(air_engine *e, const air_engine_options *o, uint8_t **skip) {
    *skip = NULL;
    const air_hparams *hp = &e->hp;
    int auto_dev = o->device == AIR_DEVICE_AUTO;
    const char *why = gpu_unsupported(hp);
    if (why) {
        if (auto_dev) {
            snprintf(e->cpu_reason, sizeof e->cpu_reason, "%s: %s", air_arch_name(hp->arch), why);
            return AIR_OK;
        }
        return air_err(AIR_ERR_UNSUPPORTED,
                       "device cuda: this model (%s) cannot run on the GPU: "
                       "%s; run it on the CPU (--device cpu)",
                       air_arch_name(hp->arch), why);
    }
    struct air_cuda_engine *c = calloc(1, sizeof *c);
    if (!c)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    c->device = o->device;
    air_status st = air_cuda_probe(&c->api, &c->info);
    char msg[512] = "";
    if (!st && c->api->ctx_create(0, &c->ctx, msg, sizeof msg))
        st = air_err(AIR_ERR_UNSUPPORTED, "device cuda: %s", msg);
    uint64_t fr = 0, tot = 0;
    if (!st && c->api->mem_info(c->ctx, &fr, &tot))
        st = cu_err(c, "cudaMemGetInfo");
    uint64_t *ub = NULL;
    if (!st) {
        uint64_t budget = o->vram_budget ? o->vram_budget : fr - fr / 16;
        if (budget > fr)
            budget = fr; /* what is free now is all there is */
        int nu = air_store_n_units(e->store);
        ub = malloc(sizeof(uint64_t) * (size_t)nu);
        if (!ub)
            st = air_err(AIR_ERR_NOMEM, "out of memory");
        for (int u = 0; !st && u < nu; u++)
            ub[u] = air_store_unit_bytes(e->store, u);
        if (!st && (st = air_vram_plan_make(ub, nu, budget, fixed_bytes(hp, e->max_seq), &c->plan)))
            air_err_context(st, "device cuda (%s, %llu MiB free)", c->info.name,
                            (unsigned long long)(fr >> 20));
        c->stats.vram_budget = budget;
    }
    free(ub);
    if (!st && !(*skip = malloc((size_t)c->plan.n_units)))
        st = air_err(AIR_ERR_NOMEM, "out of memory");
    if (st) {
        e->cuda = c;
        air_cuda_engine_close(e);
        if (!auto_dev)
            return st;
        snprintf(e->cpu_reason, sizeof e->cpu_reason, "%s", air_last_error());
        air_err_clear();
        return AIR_OK;
    }
    memcpy(*skip, c->plan.resident, (size_t)c->plan.n_units);
    e->cuda = c;
    air_engine_gpu_stats *s = &c->stats;
    s->on_gpu = 1;
    snprintf(s->device, sizeof s->device, "%s (compute %d.%d, %llu MiB, driver CUDA %d.%d)",
             c->info.name, c->info.major, c->info.minor,
             (unsigned long long)(c->info.total_mem >> 20), c->info.driver_version / 1000,
             c->info.driver_version % 1000 / 10);
    s->vram_planned = c->plan.total_bytes;
    s->n_units = c->plan.n_units;
    s->n_resident = c->plan.n_resident;
    s->resident_bytes = c->plan.resident_bytes;
    s->streamed_bytes = c->plan.streamed_bytes;
    s->slot_bytes = c->plan.slot_bytes;
    return AIR_OK;
}

/* The device view of a unit loaded on the host: its tensors' data range
 * [*lo, *lo + *len) and views into d_base. */
static air_status bind_unit(dev_unit *du, const air_layer *hl, void *d_base, uint64_t cap,
                            const uint8_t **lo, uint64_t *len) {
    const uint8_t *a = NULL, *z = NULL;
    for (int i = 0; i < hl->n; i++) {
        const uint8_t *p = hl->t[i].data;
        if (!a || p < a)
            a = p;
        if (!z || p + hl->t[i].nbytes > z)
            z = p + hl->t[i].nbytes;
    }
    *lo = a;
    *len = a ? (uint64_t)(z - a) : 0;
    if (*len > cap)
        return air_err(AIR_ERR_INTERNAL, "GPU: unit %d needs %llu bytes, its buffer has %llu",
                       hl->unit, (unsigned long long)*len, (unsigned long long)cap);
    du->view = *hl;
    for (int i = 0; i < hl->n; i++) {
        snprintf(du->names[i], AIR_LF_NAME, "%s", hl->t[i].name);
        du->view.t[i].name = du->names[i];
        du->view.t[i].data = (uint8_t *)d_base + ((const uint8_t *)hl->t[i].data - a);
    }
    return AIR_OK;
}

air_status air_cuda_engine_start(air_engine *e) {
    struct air_cuda_engine *c = e->cuda;
    const air_hparams *hp = &e->hp;
    /* page-lock the streamer's buffers: copies from them are then DMA */
    void *bp[1024];
    uint64_t bn[1024];
    int nb = air_streamer_host_buffers(e->streamer, bp, bn, 1024);
    c->stats.host_registered = nb <= 1024;
    for (int i = 0; i < nb && i < 1024; i++) {
        if (c->api->host_register(c->ctx, bp[i], bn[i])) {
            c->stats.host_registered = 0; /* copies still work, through staging */
            continue;
        }
        c->registered[c->n_registered++] = bp[i];
    }
    /* streaming slots and chunk buffers */
    for (int s = 0; s < 2 && c->plan.slot_bytes; s++)
        CU(c, c->api->alloc(c->ctx, c->plan.slot_bytes, &c->slot[s].d_base),
           "allocating a streaming buffer");
    size_t tf = chunk_floats(hp);
    CU(c, c->api->alloc(c->ctx, tf * sizeof(float), (void **)&c->d_tmp), "allocating activations");
    size_t qd = (size_t)hp->n_head * hp->head_dim, kvd = (size_t)hp->n_head_kv * hp->head_dim;
    float *p = c->d_tmp;
    float **bufs[] = {&c->d_h,   &c->d_q, &c->d_k, &c->d_v,
                      &c->d_att, &c->d_g, &c->d_u, &c->d_logits};
    size_t sizes[] = {(size_t)hp->n_embd, qd, kvd, kvd, qd, (size_t)hp->n_ff, (size_t)hp->n_ff,
                      (size_t)hp->n_vocab};
    for (int i = 0; i < 8; i++) {
        *bufs[i] = p;
        p += (CHUNK * sizes[i] + 63) / 64 * 64; /* 256-byte aligned */
    }
    /* the resident units, once */
    int nu = c->plan.n_units;
    c->units = calloc((size_t)nu, sizeof(dev_unit));
    if (!c->units)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    uint64_t cap = 0;
    for (int u = 0; u < nu; u++)
        if (c->plan.resident[u] && air_store_unit_bytes(e->store, u) > cap)
            cap = air_store_unit_bytes(e->store, u);
    if (!cap)
        return AIR_OK;
    void *buf = air_lf_alloc(cap);
    if (!buf)
        return air_err(AIR_ERR_NOMEM, "out of memory for a %llu-byte unit",
                       (unsigned long long)cap);
    air_status st = AIR_OK;
    for (int u = 0; u < nu && !st; u++) {
        if (!c->plan.resident[u])
            continue;
        uint64_t bytes = air_store_unit_bytes(e->store, u);
        air_layer hl;
        if ((st = air_store_load_unit(e->store, u, buf, cap, bytes, AIR_LF_DIRECT, &hl)))
            break;
        const uint8_t *lo;
        uint64_t len;
        if ((st = bind_unit(&c->units[u], &hl, NULL, bytes, &lo, &len)))
            break;
        void *d = NULL;
        if (c->api->alloc(c->ctx, len, &d)) {
            st = cu_err(c, "allocating a resident unit");
            break;
        }
        c->units[u].d_base = d;
        bind_unit(&c->units[u], &hl, d, bytes, &lo, &len);
        if (c->api->h2d(c->ctx, AIR_CU_COMPUTE, d, lo, len) ||
            c->api->sync(c->ctx, AIR_CU_COMPUTE)) {
            st = cu_err(c, "uploading a resident unit");
            break;
        }
        c->stats.bytes_uploaded += len;
    }
    free(buf);
    return st;
}

void air_cuda_engine_close(air_engine *e) {
    struct air_cuda_engine *c = e->cuda;
    if (!c)
        return;
    if (c->ctx) {
        c->api->sync(c->ctx, AIR_CU_COMPUTE);
        c->api->sync(c->ctx, AIR_CU_COPY);
        for (int i = 0; i < c->n_registered; i++)
            c->api->host_unregister(c->ctx, c->registered[i]);
        if (c->units)
            for (int u = 0; u < c->plan.n_units; u++)
                c->api->free(c->ctx, c->units[u].d_base);
        for (int s = 0; s < 2; s++)
            c->api->free(c->ctx, c->slot[s].d_base);
        for (int i = 0; i < c->n_kvs; i++) {
            c->api->free(c->ctx, c->kvs[i].d_k);
            c->api->free(c->ctx, c->kvs[i].d_v);
        }
        c->api->free(c->ctx, c->d_x);
        c->api->free(c->ctx, c->d_tmp);
        c->api->free(c->ctx, c->d_meta);
        c->api->ctx_free(c->ctx);
    }
    free(c->units);
    free(c->h_meta);
    air_vram_plan_free(&c->plan);
    free(c);
    e->cuda = NULL;
}

void air_engine_gpu_get_stats(const air_engine *e, air_engine_gpu_stats *st) {
    memset(st, 0, sizeof *st);
    if (e->cuda)
        *st = e->cuda->stats;
    snprintf(st->cpu_reason, sizeof st->cpu_reason, "%s", e->cpu_reason);
}

air_status air_engine_gpu_bandwidth(air_engine *e, double *h2d_gbs, double *mem_gbs) {
    struct air_cuda_engine *c = e->cuda;
    *h2d_gbs = *mem_gbs = 0;
    if (!c)
        return air_err(AIR_ERR_UNSUPPORTED, "the model runs on the CPU: no GPU copy floor");
    uint64_t fr = 0, tot = 0;
    CU(c, c->api->mem_info(c->ctx, &fr, &tot), "cudaMemGetInfo");
    size_t bytes = 256u << 20;
    if (bytes > fr / 4)
        bytes = (size_t)(fr / 4) & ~(size_t)4095;
    if (bytes < (1u << 20))
        return air_err(AIR_ERR_NOMEM, "GPU: too little free memory to measure the copy floor");
    CU(c, c->api->bandwidth(c->ctx, bytes, 5, h2d_gbs, mem_gbs), "measuring the copy floor");
    return AIR_OK;
}

/* ------------------------------------------------------------------------- */
/* One pass                                                                  */
/* ------------------------------------------------------------------------- */

/* The device KV cache of kv, allocated on first use. */
static air_status kv_of(struct air_cuda_engine *c, const air_kv *kv, dev_kv **out) {
    dev_kv *hit = NULL;
    for (int i = 0; i < c->n_kvs; i++)
        if (c->kvs[i].kv == kv && c->kvs[i].max_seq == kv->max_seq &&
            c->kvs[i].kv_dim == kv->kv_dim)
            hit = &c->kvs[i];
    if (!hit) {
        /* a new sequence (or an air_kv reused at the same address: its
         * positions are rewritten from 0 before they are read) */
        for (int i = 0; i < c->n_kvs; i++)
            if (c->kvs[i].kv == kv) { /* same address, other shape */
                c->api->free(c->ctx, c->kvs[i].d_k);
                c->api->free(c->ctx, c->kvs[i].d_v);
                c->kvs[i] = c->kvs[--c->n_kvs];
                break;
            }
        size_t bytes = sizeof(float) * (size_t)kv->n_layer * kv->max_seq * kv->kv_dim;
        for (;;) {
            dev_kv d = {kv, NULL, NULL, kv->max_seq, kv->kv_dim, c->pass};
            if (c->n_kvs < MAX_KV && !c->api->alloc(c->ctx, bytes, (void **)&d.d_k)) {
                if (!c->api->alloc(c->ctx, bytes, (void **)&d.d_v)) {
                    c->kvs[c->n_kvs] = d;
                    hit = &c->kvs[c->n_kvs++];
                    break;
                }
                c->api->free(c->ctx, d.d_k);
            }
            /* evict the least recently used cache of an earlier pass */
            int lru = -1;
            for (int i = 0; i < c->n_kvs; i++)
                if (c->kvs[i].pass < c->pass && (lru < 0 || c->kvs[i].pass < c->kvs[lru].pass))
                    lru = i;
            if (lru < 0)
                return air_err(AIR_ERR_NOMEM,
                               "GPU: no memory for the KV cache of another "
                               "sequence (%zu MiB); lower the context (--max-seq-len), the "
                               "number of sequences, or --vram",
                               2 * bytes >> 20);
            c->api->free(c->ctx, c->kvs[lru].d_k);
            c->api->free(c->ctx, c->kvs[lru].d_v);
            c->kvs[lru] = c->kvs[--c->n_kvs];
        }
    }
    hit->pass = c->pass;
    *out = hit;
    return AIR_OK;
}

/* Per-pass metadata, one host buffer uploaded at once. */
typedef struct {
    size_t cos, sin, slot, keys0, keys1, extra0, extra1, map, kp, vp, total;
    int max_keys0, max_keys1, n_want;
} meta_layout;

/* Rows the GPU can run: causal rows, or tree rows that are all roots written
 * at their own position (the decode step of air_generate). Candidates (a
 * parent >= 0, or a slot elsewhere) would need their KV entries moved on the
 * GPU when a path is kept, which it does not do yet. */
static air_status check_rows(const air_batch *b) {
    if (!b->parent)
        return AIR_OK;
    for (int r = 0; r < b->n; r++)
        if (b->parent[r] >= 0 || air_batch_slot(b, r) != b->pos[r])
            return air_err(AIR_ERR_UNSUPPORTED,
                           "token trees (speculative candidates) do not "
                           "run on the GPU yet; decode without speculation, or on the CPU "
                           "(--device cpu)");
    return AIR_OK;
}

static size_t up256(size_t v) {
    return (v + 255) & ~(size_t)255;
}

static air_status grow(struct air_cuda_engine *c, void **d, size_t *cap, size_t need,
                       const char *what) {
    if (need <= *cap)
        return AIR_OK;
    c->api->free(c->ctx, *d);
    *d = NULL;
    *cap = 0;
    CU(c, c->api->alloc(c->ctx, need, d), what);
    *cap = need;
    return AIR_OK;
}

/* Uploads x, RoPE tables, slots, key ranges, the wanted rows and the KV
 * plane pointers of every layer. */
static air_status upload_meta(air_engine *e, const air_batch *b, const float *x, meta_layout *m) {
    struct air_cuda_engine *c = e->cuda;
    const air_hparams *hp = &e->hp;
    int n = b->n, half = hp->head_dim / 2, L = hp->n_layer;
    memset(m, 0, sizeof *m);
    size_t off = 0;
    m->cos = off, off += up256(sizeof(float) * (size_t)n * half);
    m->sin = off, off += up256(sizeof(float) * (size_t)n * half);
    m->slot = off, off += up256(sizeof(int32_t) * (size_t)n);
    m->keys0 = off, off += up256(sizeof(int32_t) * 4 * (size_t)n);
    m->keys1 = off, off += up256(sizeof(int32_t) * 4 * (size_t)n);
    /* extra slots of tree rows (each row's chain, itself last) */
    size_t n_extra = b->parent ? (size_t)e->tree_off[n] : 0;
    m->extra0 = off, off += up256(sizeof(int32_t) * (n_extra + 1));
    m->extra1 = off, off += up256(sizeof(int32_t) * (n_extra + 1));
    m->map = off, off += up256(sizeof(int32_t) * (size_t)n);
    m->kp = off, off += up256(sizeof(float *) * (size_t)n * L);
    m->vp = off, off += up256(sizeof(float *) * (size_t)n * L);
    m->total = off;
    air_status st;
    size_t cap = c->meta_bytes;
    if ((st = grow(c, &c->d_meta, &cap, m->total, "allocating pass metadata")))
        return st;
    if (cap != c->meta_bytes || !c->h_meta) {
        free(c->h_meta);
        if (!(c->h_meta = malloc(cap)))
            return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    c->meta_bytes = cap;
    size_t xb = sizeof(float) * (size_t)n * hp->n_embd;
    if ((st = grow(c, (void **)&c->d_x, &c->x_bytes, xb, "allocating activations")))
        return st;
    uint8_t *h = c->h_meta;
    memcpy(h + m->cos, e->rope_cos, sizeof(float) * (size_t)n * half);
    memcpy(h + m->sin, e->rope_sin, sizeof(float) * (size_t)n * half);
    int32_t *slot = (int32_t *)(h + m->slot), *k0 = (int32_t *)(h + m->keys0),
            *k1 = (int32_t *)(h + m->keys1), *map = (int32_t *)(h + m->map);
    int32_t *x0 = (int32_t *)(h + m->extra0), *x1 = (int32_t *)(h + m->extra1);
    int nx[2] = {0, 0};
    float **kp = (float **)(h + m->kp), **vp = (float **)(h + m->vp);
    int win = hp->sliding_window > 0 ? hp->sliding_window : 0;
    for (int r = 0; r < n; r++) {
        slot[r] = air_batch_slot(b, r);
        for (int set = 0; set < 2; set++) {
            air_row_keys k;
            air_engine_row_keys(e, b, r, set ? win : 0, &k);
            int32_t *d = (set ? k1 : k0) + 4 * r, *xs = set ? x1 : x0;
            d[0] = k.lo, d[1] = k.hi, d[2] = k.n_extra, d[3] = nx[set];
            for (int i = 0; i < k.n_extra; i++)
                xs[nx[set]++] = k.extra[i];
            int nk = k.hi - k.lo + k.n_extra;
            int *mk = set ? &m->max_keys1 : &m->max_keys0;
            if (nk > *mk)
                *mk = nk;
        }
        int want = b->want_logits ? b->want_logits[r] : r == n - 1;
        if (want)
            map[m->n_want++] = r;
        dev_kv *dk = NULL;
        if ((st = kv_of(c, b->kv[r], &dk)))
            return st;
        size_t plane = (size_t)dk->max_seq * dk->kv_dim;
        for (int l = 0; l < L; l++) {
            kp[(size_t)l * n + r] = dk->d_k + (size_t)l * plane;
            vp[(size_t)l * n + r] = dk->d_v + (size_t)l * plane;
        }
    }
    /* pageable sources: each call returns once its bytes are staged */
    CU(c, c->api->h2d(c->ctx, AIR_CU_COMPUTE, c->d_meta, h, m->total), "uploading metadata");
    CU(c, c->api->h2d(c->ctx, AIR_CU_COMPUTE, c->d_x, x, xb), "uploading embeddings");
    return AIR_OK;
}

#define META(c, m, field, T) ((T)((uint8_t *)(c)->d_meta + (m)->field))

/* The layer's tensors (llama.c's binding); norms and biases must be f32. */
static air_status bind(const air_engine *e, int l, const air_layer *w, air_llama_w *t) {
    air_status st = air_llama_bind(e, l, w, t);
    if (st)
        return st;
    /* norms and biases are fp32 in every store; the kernels read them so */
    const air_tensor *f32[] = {t->attn_norm, t->ffn_norm, t->bq,     t->bk,
                               t->bv,        t->bo,       t->q_norm, t->k_norm};
    for (size_t i = 0; i < sizeof f32 / sizeof f32[0]; i++)
        if (f32[i] && f32[i]->dtype != AIR_DT_F32)
            return air_err(
                AIR_ERR_FORMAT, "%s: tensor '%s' is %s, the GPU path needs f32; " AIR_STORE_FIX,
                air_store_unit_path(e->store, l), f32[i]->name, air_dtype_name(f32[i]->dtype));
    return AIR_OK;
}

static int mm(struct air_cuda_engine *c, const air_tensor *w, const float *x, int rows, float *y) {
    return c->api->matmul(c->ctx, (int)w->dtype, w->data, (int)w->shape[0], (int)w->shape[1], x,
                          rows, y);
}

/* Layer l over the batch, chunk by chunk (model/llama.c, op for op). */
static air_status run_layer(air_engine *e, int l, const air_layer *lw, const air_batch *b,
                            const meta_layout *m) {
    struct air_cuda_engine *c = e->cuda;
    const air_cuda_api *A = c->api;
    const air_hparams *hp = &e->hp;
    air_llama_w w;
    air_status st = bind(e, l, lw, &w);
    if (st)
        return st;
    int n = b->n, d = hp->n_embd, hd = hp->head_dim, half = hd / 2, ff = hp->n_ff;
    int qd = hp->n_head * hd, kvd = hp->n_head_kv * hd;
    int win = air_hp_layer_window(hp, l);
    const int32_t *keys =
        win ? META(c, m, keys1, const int32_t *) : META(c, m, keys0, const int32_t *);
    const int32_t *extra =
        win ? META(c, m, extra1, const int32_t *) : META(c, m, extra0, const int32_t *);
    int max_keys = win ? m->max_keys1 : m->max_keys0;
    float **kp = META(c, m, kp, float **) + (size_t)l * n,
          **vp = META(c, m, vp, float **) + (size_t)l * n;
    for (int c0 = 0; c0 < n; c0 += CHUNK) {
        int nc = n - c0 < CHUNK ? n - c0 : CHUNK;
        float *x = c->d_x + (size_t)c0 * d;
        int bad = A->rmsnorm(c->ctx, c->d_h, x, w.attn_norm->data, d, nc, hp->rms_eps, NULL) ||
                  mm(c, w.wq, c->d_h, nc, c->d_q) || mm(c, w.wk, c->d_h, nc, c->d_k) ||
                  mm(c, w.wv, c->d_h, nc, c->d_v);
        if (!bad && hp->attn_bias)
            bad = A->add_bias(c->ctx, c->d_q, w.bq->data, nc, qd) ||
                  A->add_bias(c->ctx, c->d_k, w.bk->data, nc, kvd) ||
                  A->add_bias(c->ctx, c->d_v, w.bv->data, nc, kvd);
        if (!bad && hp->qk_norm)
            bad = A->rmsnorm(c->ctx, c->d_q, c->d_q, w.q_norm->data, hd, nc * hp->n_head,
                             hp->rms_eps, NULL) ||
                  A->rmsnorm(c->ctx, c->d_k, c->d_k, w.k_norm->data, hd, nc * hp->n_head_kv,
                             hp->rms_eps, NULL);
        const float *cs = META(c, m, cos, const float *) + (size_t)c0 * half;
        const float *sn = META(c, m, sin, const float *) + (size_t)c0 * half;
        if (!bad)
            bad = A->rope(c->ctx, c->d_q, nc, hp->n_head, hd, cs, sn) ||
                  A->rope(c->ctx, c->d_k, nc, hp->n_head_kv, hd, cs, sn) ||
                  A->kv_store(c->ctx, kp + c0, vp + c0, META(c, m, slot, const int32_t *) + c0,
                              c->d_k, c->d_v, nc, kvd);
        if (!bad) {
            air_cu_attn a = {nc,
                             hp->n_head,
                             hp->n_head_kv,
                             hd,
                             max_keys,
                             1.0f / sqrtf((float)hd),
                             c->d_q,
                             c->d_att,
                             (const float *const *)(kp + c0),
                             (const float *const *)(vp + c0),
                             keys + 4 * (size_t)c0,
                             extra};
            bad = A->attention(c->ctx, &a) || mm(c, w.wo, c->d_att, nc, c->d_h);
        }
        if (!bad && w.bo)
            bad = A->add_bias(c->ctx, c->d_h, w.bo->data, nc, d);
        if (!bad)
            bad = A->add(c->ctx, x, c->d_h, (int64_t)nc * d) ||
                  A->rmsnorm(c->ctx, c->d_h, x, w.ffn_norm->data, d, nc, hp->rms_eps, NULL) ||
                  mm(c, w.w_gate, c->d_h, nc, c->d_g) || mm(c, w.w_up, c->d_h, nc, c->d_u) ||
                  A->silu_mul(c->ctx, c->d_g, c->d_g, c->d_u, (int64_t)nc * ff) ||
                  mm(c, w.w_down, c->d_g, nc, c->d_h) || A->add(c->ctx, x, c->d_h, (int64_t)nc * d);
        if (bad)
            return cu_err(c, "layer");
    }
    return AIR_OK;
}

/* The head: final norm of the wanted rows and the output matmul, chunk by
 * chunk, each chunk's logits copied back. */
static air_status run_head(air_engine *e, const air_layer *lw, const air_batch *b,
                           const meta_layout *m) {
    struct air_cuda_engine *c = e->cuda;
    const air_hparams *hp = &e->hp;
    const air_tensor *norm = air_layer_get(lw, AIR_T_OUT_NORM),
                     *out = air_layer_get(lw, AIR_T_OUTPUT);
    if (!norm || !out || norm->dtype != AIR_DT_F32)
        return air_err(AIR_ERR_FORMAT, "%s: head unit lacks out_norm/output; " AIR_STORE_FIX,
                       air_store_unit_path(e->store, hp->n_layer));
    const int32_t *map = META(c, m, map, const int32_t *);
    for (int k0 = 0; k0 < m->n_want; k0 += CHUNK) {
        int nk = m->n_want - k0 < CHUNK ? m->n_want - k0 : CHUNK;
        if (c->api->rmsnorm(c->ctx, c->d_h, c->d_x, norm->data, hp->n_embd, nk, hp->rms_eps,
                            map + k0) ||
            mm(c, out, c->d_h, nk, c->d_logits) ||
            c->api->d2h(c->ctx, AIR_CU_COMPUTE, b->logits + (size_t)k0 * hp->n_vocab, c->d_logits,
                        sizeof(float) * (size_t)nk * hp->n_vocab) ||
            c->api->sync(c->ctx, AIR_CU_COMPUTE))
            return cu_err(c, "output head");
    }
    return AIR_OK;
}

/* Copies streamed unit u into slot s on the copy stream, once the compute
 * that last used the slot is done; waits for the copy, then gives the host
 * buffer back to the streamer. */
static air_status upload_unit(air_engine *e, int u, int s) {
    struct air_cuda_engine *c = e->cuda;
    const air_layer *hl;
    air_status st = air_streamer_acquire(e->streamer, u, &hl);
    if (st)
        return st;
    const uint8_t *lo;
    uint64_t len;
    double t0 = now_s();
    if (!(st = bind_unit(&c->slot[s], hl, c->slot[s].d_base, c->plan.slot_bytes, &lo, &len))) {
        if (c->api->wait(c->ctx, AIR_CU_COPY, s ? EV_DONE1 : EV_DONE0) ||
            c->api->h2d(c->ctx, AIR_CU_COPY, c->slot[s].d_base, lo, len) ||
            c->api->record(c->ctx, AIR_CU_COPY, s ? EV_UP1 : EV_UP0) ||
            c->api->event_sync(c->ctx, s ? EV_UP1 : EV_UP0))
            st = cu_err(c, "copying a streamed unit");
    }
    air_streamer_release(e->streamer, u);
    c->stats.bytes_uploaded += st ? 0 : len;
    c->stats.upload_wait_s += now_s() - t0;
    return st;
}

air_status air_cuda_engine_forward(air_engine *e, const air_batch *b, const float *x) {
    struct air_cuda_engine *c = e->cuda;
    const air_hparams *hp = &e->hp;
    air_status st = check_rows(b);
    if (st)
        return st;
    c->pass++;
    meta_layout m;
    if ((st = upload_meta(e, b, x, &m)))
        return st;
    int nu = hp->n_layer + 1;
    /* the streamed units of this pass, in order; the k-th uses slot k % 2 */
    int S[nu], ns = 0, issued = 0, k = 0;
    for (int u = 0; u < nu; u++)
        if (!c->plan.resident[u])
            S[ns++] = u;
    if (ns > 0)
        st = upload_unit(e, S[issued], issued % 2), issued++;
    for (int u = 0; u < nu && !st; u++) {
        if (e->should_abort && e->should_abort(e->abort_user)) {
            st = air_err(AIR_ERR_ABORTED, "aborted at layer %d of the forward pass", u);
            break;
        }
        const air_layer *lw;
        int s = -1;
        if (c->plan.resident[u]) {
            lw = &c->units[u].view;
        } else {
            s = k++ % 2;
            lw = &c->slot[s].view;
            if (c->api->wait(c->ctx, AIR_CU_COMPUTE, s ? EV_UP1 : EV_UP0)) {
                st = cu_err(c, "ordering compute after a copy");
                break;
            }
        }
        st = u < hp->n_layer ? run_layer(e, u, lw, b, &m) : run_head(e, lw, b, &m);
        if (!st && s >= 0 && c->api->record(c->ctx, AIR_CU_COMPUTE, s ? EV_DONE1 : EV_DONE0))
            st = cu_err(c, "recording a compute event");
        /* the next copy goes as soon as the compute of the unit that last
         * used its slot is queued */
        while (!st && issued < ns && (issued < 2 || S[issued - 2] <= u)) {
            st = upload_unit(e, S[issued], issued % 2);
            issued++;
        }
    }
    if (st) { /* leave nothing in flight */
        c->api->sync(c->ctx, AIR_CU_COPY);
        c->api->sync(c->ctx, AIR_CU_COMPUTE);
    }
    return st;
}
