/*
 * forward.c - the engine and the forward pass over all units.
 *
 *   x = embed(tokens)                      (rows, n_embd), read row by row
 *   for each layer l: x = layer_l(x)        streamed unit l (llama.c)
 *   logits = output(rmsnorm(x))             streamed head unit, wanted rows
 *
 * RoPE angles for the batch's positions are computed once per pass and shared
 * by all layers (HF convention: inv_freq[i] = theta^(-2i/d), with the llama3
 * rescaling of low frequencies when configured).
 */
#include "model/forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/pipeline.h"
#include "model/engine_internal.h"
#include "runtime/experts.h"
#include "util/error.h"

void air_engine_default_options(air_engine_options *o) {
    memset(o, 0, sizeof *o);
    o->n_threads = 0;
    o->stream.prefetch = 1;
    o->stream.direct_io = 1;
    o->stream.ram_budget = 0;
    o->device = AIR_DEVICE_CPU;
}

int air_device_parse(const char *s, air_device *out) {
    if (!s || !*s || !strcmp(s, "auto"))
        *out = AIR_DEVICE_AUTO;
    else if (!strcmp(s, "cpu"))
        *out = AIR_DEVICE_CPU;
    else if (!strcmp(s, "cuda"))
        *out = AIR_DEVICE_CUDA;
    else
        return 0;
    return 1;
}

/* YaRN's correction dimension for a number of rotations (in double, as HF). */
static double yarn_dim(double rot, int dim, double base, int orig) {
    return (dim * log(orig / (rot * 2 * M_PI))) / (2 * log(base));
}

/* inv_freq as HF computes it, in fp32, with llama3 or YaRN scaling. */
static void rope_init(air_engine *e) {
    const air_hparams *hp = &e->hp;
    int half = hp->head_dim / 2;
    e->inv_freq = malloc(sizeof(float) * (size_t)half);
    if (hp->rope_scaling == AIR_ROPE_SCALING_YARN) {
        /* ramp between extrapolated (plain) and interpolated (1/factor)
         * frequencies over the correction range [low, high] */
        int dim = hp->head_dim;
        double low = yarn_dim(hp->rope_beta_fast, dim, hp->rope_theta, hp->rope_orig_ctx);
        double high = yarn_dim(hp->rope_beta_slow, dim, hp->rope_theta, hp->rope_orig_ctx);
        if (hp->rope_truncate) {
            low = floor(low);
            high = ceil(high);
        }
        low = low > 0 ? low : 0;
        high = high < dim - 1 ? high : dim - 1;
        float lo = (float)low, hi = (float)high;
        if (lo == hi)
            hi += 0.001f;
        for (int i = 0; i < half; i++) {
            float pos_freq = powf(hp->rope_theta, (float)(2 * i) / (float)dim);
            float extra = 1.0f / pos_freq, inter = 1.0f / (hp->rope_factor * pos_freq);
            float ramp = ((float)i - lo) / (hi - lo);
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            float ef = 1.0f - ramp;
            e->inv_freq[i] = inter * (1.0f - ef) + extra * ef;
        }
        return;
    }
    for (int i = 0; i < half; i++) {
        float expo = (float)(2 * i) / (float)hp->head_dim;
        float f = 1.0f / powf(hp->rope_theta, expo);
        if (hp->rope_scaling == AIR_ROPE_SCALING_LLAMA3) {
            float old = (float)hp->rope_orig_ctx;
            float low_wl = old / hp->rope_low_freq_factor;
            float high_wl = old / hp->rope_high_freq_factor;
            float wl = 2.0f * (float)M_PI / f;
            if (wl > low_wl) {
                f = f / hp->rope_factor;
            } else if (wl >= high_wl) {
                float smooth = (old / wl - hp->rope_low_freq_factor) /
                               (hp->rope_high_freq_factor - hp->rope_low_freq_factor);
                f = (1.0f - smooth) * f / hp->rope_factor + smooth * f;
            }
        }
        if (hp->rope_scaling == AIR_ROPE_SCALING_LINEAR)
            f = f / hp->rope_factor;
        e->inv_freq[i] = f;
    }
}

air_status air_engine_open(const char *store_dir, const air_engine_options *opt, air_engine **out) {
    *out = NULL;
    air_engine *e = calloc(1, sizeof *e);
    if (!e)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    air_status st = opt->part ? air_store_open_part(store_dir, opt->first_unit, opt->last_unit,
                                                    &e->store)
                              : air_store_open(store_dir, &e->store);
    if (st)
        goto fail;
    e->hp = *air_store_hparams(e->store);
    e->lo = opt->part ? (opt->first_unit > 0 ? opt->first_unit : 0) : 0;
    e->hi = opt->part ? (opt->last_unit < e->hp.n_layer ? opt->last_unit + 1 : e->hp.n_layer)
                      : e->hp.n_layer;
    e->has_embed = air_store_has_unit(e->store, -1);
    e->has_head = air_store_has_unit(e->store, e->hp.n_layer);
    if (opt->part && e->hp.n_expert > 0) {
        st = air_err(AIR_ERR_UNSUPPORTED, "a pipeline over several ranks does not run "
                     "mixture-of-experts models yet; run %s in one process", store_dir);
        goto fail;
    }
    e->max_seq = opt->max_seq > 0 ? opt->max_seq
                 : e->hp.n_ctx_train > 0 && e->hp.n_ctx_train < 4096 ? e->hp.n_ctx_train
                                                                     : 4096;
    air_streamer_options so = opt->stream;
    so.reserve_bytes += air_kv_bytes(&e->hp, e->max_seq);
    uint8_t *skip = NULL; /* units the GPU keeps */
    if (opt->part && opt->device == AIR_DEVICE_CUDA) {
        st = air_err(AIR_ERR_UNSUPPORTED, "a pipeline rank runs its layers on the CPU; "
                     "leave --device at auto or cpu under mpirun");
        goto fail;
    }
    /* device auto in a pipeline rank: the CPU (the GPU backend runs whole models) */
    if (opt->device != AIR_DEVICE_CPU && !opt->part &&
        (st = air_cuda_engine_open(e, opt, &skip)))
        goto fail;
    so.skip = skip;
    st = air_streamer_create(e->store, &so, &e->streamer);
    free(skip);
    if (st)
        goto fail;
    if (e->cuda && (st = air_cuda_engine_start(e))) {
        if (opt->device == AIR_DEVICE_CUDA)
            goto fail;
        /* device auto: the CPU after all, with a streamer that reads every unit */
        snprintf(e->cpu_reason, sizeof e->cpu_reason, "%s", air_last_error());
        air_err_clear();
        air_cuda_engine_close(e);
        air_streamer_free(e->streamer);
        e->streamer = NULL;
        so.skip = NULL;
        if ((st = air_streamer_create(e->store, &so, &e->streamer)))
            goto fail;
    }
    if (e->hp.n_expert > 0) {
        /* the expert cache gets the RAM budget the pinned units leave (the
         * budget in force: AIR_RAM_AUTO resolved against the memory limits) */
        air_streamer_stats ss;
        air_streamer_get_stats(e->streamer, &ss);
        uint64_t left = ss.ram_budget > ss.pinned_bytes ? ss.ram_budget - ss.pinned_bytes : 0;
        if ((st = air_experts_open(e->store, left, opt->stream.direct_io, &e->experts)))
            goto fail;
    }
    e->pool = air_pool_create(opt->n_threads);
    if (!e->pool) {
        st = air_err(AIR_ERR_NOMEM, "cannot create the thread pool");
        goto fail;
    }
    rope_init(e);
    *out = e;
    return AIR_OK;
fail:
    air_engine_close(e);
    return st;
}

void air_engine_close(air_engine *e) {
    if (!e)
        return;
    air_pipe_detach(e);
    air_cuda_engine_close(e); /* before the streamer: it page-locked its buffers */
    air_experts_free(e->experts);
    air_streamer_free(e->streamer);
    air_store_close(e->store);
    air_pool_free(e->pool);
    free(e->inv_freq);
    free(e->scratch);
    free(e->tree_slots);
    free(e);
}

const air_hparams *air_engine_hparams(const air_engine *e) { return &e->hp; }
int air_engine_max_seq(const air_engine *e) { return e->max_seq; }
air_store *air_engine_store(air_engine *e) { return e->store; }

void air_engine_set_abort(air_engine *e, int (*should_abort)(void *user), void *user) {
    e->should_abort = should_abort;
    e->abort_user = user;
}
air_streamer *air_engine_streamer(air_engine *e) { return e->streamer; }
air_pool *air_engine_pool(air_engine *e) { return e->pool; }
struct air_experts *air_engine_experts(air_engine *e) { return e->experts; }

/* Scratch for n rows, grown on demand; carved into the buffers of llama.c. */
air_status air_engine_scratch(air_engine *e, size_t floats, float **out) {
    if (floats > e->scratch_cap) {
        free(e->scratch);
        e->scratch = malloc(floats * sizeof(float));
        if (!e->scratch) {
            e->scratch_cap = 0;
            return air_err(AIR_ERR_NOMEM, "out of memory for activations (%zu MiB)",
                           floats * sizeof(float) >> 20);
        }
        e->scratch_cap = floats;
    }
    *out = e->scratch;
    return AIR_OK;
}

/* Tree rows: records each row's parent in its KV, then walks every row's
 * chain up to its root. */
static air_status tree_init(air_engine *e, const air_batch *b) {
    int n = b->n;
    for (int r = 0; r < n && e->hp.kv_lora_rank > 0; r++)
        if (b->parent[r] >= 0)
            return air_err(AIR_ERR_UNSUPPORTED, "tree rows (speculative candidates) are not "
                           "supported with latent attention (%s); decode without speculation",
                           air_arch_name(e->hp.arch));
    for (int r = 0; r < n; r++) {
        int s = b->slot ? b->slot[r] : b->pos[r], p = b->parent[r];
        if (s < 0 || s >= b->kv[r]->max_seq || p < -1 || p >= b->kv[r]->max_seq || p == s)
            return air_err(AIR_ERR_INVALID_ARG, "tree row %d: slot %d / parent %d outside the "
                           "KV cache (%d positions)", r, s, p, b->kv[r]->max_seq);
    }
    for (int r = 0; r < n; r++)
        b->kv[r]->up[air_batch_slot(b, r)] = b->parent[r];
    size_t cap = 0;
    e->tree_prefix = malloc(sizeof(int32_t) * (size_t)n);
    e->tree_off = malloc(sizeof(int32_t) * (size_t)(n + 1));
    if (!e->tree_prefix || !e->tree_off)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    e->tree_off[0] = 0;
    for (int r = 0; r < n; r++) {
        const air_kv *kv = b->kv[r];
        int depth = 0;
        for (int s = air_batch_slot(b, r); s >= 0; s = kv->up[s])
            if (++depth > kv->max_seq)
                return air_err(AIR_ERR_INVALID_ARG, "tree row %d: its parents form a cycle", r);
        if (depth > b->pos[r] + 1)
            return air_err(AIR_ERR_INVALID_ARG, "tree row %d: %d ancestors at position %d",
                           r, depth - 1, b->pos[r]);
        size_t need = (size_t)e->tree_off[r] + (size_t)depth;
        if (need > cap) {
            cap = need * 2 + 16;
            int32_t *t = realloc(e->tree_slots, sizeof(int32_t) * cap);
            if (!t)
                return air_err(AIR_ERR_NOMEM, "out of memory");
            e->tree_slots = t;
        }
        int k = depth;
        for (int s = air_batch_slot(b, r); s >= 0; s = kv->up[s])
            e->tree_slots[e->tree_off[r] + --k] = s;
        e->tree_prefix[r] = b->pos[r] + 1 - depth;
        e->tree_off[r + 1] = (int32_t)need;
    }
    return AIR_OK;
}

void air_engine_row_keys(const air_engine *e, const air_batch *b, int r, int window,
                         air_row_keys *k) {
    int pos = b->pos[r], lo = 0;
    if (window > 0 && pos - window + 1 > 0)
        lo = pos - window + 1;
    if (!b->parent) {
        *k = (air_row_keys){lo, pos + 1, 0, NULL};
        return;
    }
    int pre = e->tree_prefix[r], skip = lo > pre ? lo - pre : 0;
    k->lo = lo < pre ? lo : pre;
    k->hi = pre;
    k->extra = e->tree_slots + e->tree_off[r] + skip;
    k->n_extra = e->tree_off[r + 1] - e->tree_off[r] - skip;
}

static air_status run_head(air_engine *e, const air_batch *b, float *x) {
    const air_hparams *hp = &e->hp;
    int u = hp->n_layer;
    const air_layer *w;
    air_status st = air_streamer_acquire(e->streamer, u, &w);
    if (st)
        return st;
    const air_tensor *norm = air_layer_get(w, AIR_T_OUT_NORM), *out = air_layer_get(w, AIR_T_OUTPUT);
    if (!norm || !out) {
        air_streamer_release(e->streamer, u);
        return air_err(AIR_ERR_FORMAT, "%s: head unit lacks out_norm/output",
                       air_store_unit_path(e->store, u));
    }
    const float *nw = norm->data;
    float *plus1 = NULL;
    if (hp->norm_add_one) { /* gemma: weights hold w, the norm multiplies by 1 + w */
        if (!(plus1 = malloc(sizeof(float) * (size_t)hp->n_embd))) {
            air_streamer_release(e->streamer, u);
            return air_err(AIR_ERR_NOMEM, "out of memory");
        }
        for (int i = 0; i < hp->n_embd; i++)
            plus1[i] = 1.0f + nw[i];
        nw = plus1;
    }
    int k = 0;
    for (int r = 0; r < b->n; r++) {
        int want = b->want_logits ? b->want_logits[r] : r == b->n - 1;
        if (!want)
            continue;
        /* pack wanted rows together, normalized, in place at row k */
        air_rmsnorm(x + (size_t)k * hp->n_embd, x + (size_t)r * hp->n_embd, nw, hp->n_embd,
                    hp->rms_eps);
        k++;
    }
    free(plus1);
    air_matmul(e->pool, out->dtype, out->data, hp->n_vocab, hp->n_embd, x, k, b->logits);
    if (hp->final_softcap > 0) /* gemma 2 */
        for (size_t i = 0; i < (size_t)k * hp->n_vocab; i++)
            b->logits[i] = tanhf(b->logits[i] / hp->final_softcap) * hp->final_softcap;
    air_streamer_release(e->streamer, u);
    return AIR_OK;
}

void air_engine_layer_range(const air_engine *e, int *lo, int *hi, int *has_embed, int *has_head) {
    *lo = e->lo;
    *hi = e->hi;
    *has_embed = e->has_embed;
    *has_head = e->has_head;
}
struct air_pipe *air_engine_pipe(const air_engine *e) { return e->pipe; }
void air_engine_set_pipe(air_engine *e, struct air_pipe *p) { e->pipe = p; }

air_status air_engine_pass_begin(air_engine *e, const air_batch *b) {
    const air_hparams *hp = &e->hp;
    if (b->n <= 0)
        return air_err(AIR_ERR_INVALID_ARG, "empty batch");
    for (int r = 0; r < b->n; r++)
        if (b->pos[r] < 0 || b->pos[r] >= b->kv[r]->max_seq)
            return air_err(AIR_ERR_LIMIT, "position %d is past the context length %d "
                           "(max_seq_len); start a new conversation or raise max_seq_len",
                           b->pos[r], b->kv[r]->max_seq);
    int half = hp->head_dim / 2;
    e->rope_cos = malloc(sizeof(float) * (size_t)b->n * half);
    e->rope_sin = malloc(sizeof(float) * (size_t)b->n * half);
    if (!e->rope_cos || !e->rope_sin)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    air_status st;
    if (b->parent && (st = tree_init(e, b)))
        return st;
    if (!b->parent)
        for (int r = 0; r < b->n; r++)
            b->kv[r]->up[b->pos[r]] = -1;
    for (int r = 0; r < b->n; r++)
        for (int i = 0; i < half; i++) {
            float a = (float)b->pos[r] * e->inv_freq[i];
            e->rope_cos[(size_t)r * half + i] = cosf(a);
            e->rope_sin[(size_t)r * half + i] = sinf(a);
            if (hp->rope_scaling == AIR_ROPE_SCALING_YARN) {
                e->rope_cos[(size_t)r * half + i] *= hp->rope_attn_factor;
                e->rope_sin[(size_t)r * half + i] *= hp->rope_attn_factor;
            }
        }
    return AIR_OK;
}

air_status air_engine_pass_embed(air_engine *e, const air_batch *b, float *x) {
    const air_hparams *hp = &e->hp;
    air_status st = air_store_embed_rows(e->store, b->tokens, b->n, x);
    if (st)
        return st;
    if (hp->embd_scale != 0.0f && hp->embd_scale != 1.0f) /* gemma: sqrt(n_embd) */
        for (size_t i = 0; i < (size_t)b->n * hp->n_embd; i++)
            x[i] *= hp->embd_scale;
    return AIR_OK;
}

air_status air_engine_pass_layers(air_engine *e, const air_batch *b, float *x) {
    const air_hparams *hp = &e->hp;
    air_status st = AIR_OK;
    for (int l = e->lo; l < e->hi && !st; l++) {
        if (e->should_abort && e->should_abort(e->abort_user)) {
            st = air_err(AIR_ERR_ABORTED, "aborted at layer %d of the forward pass", l);
            break;
        }
        const air_layer *w;
        if ((st = air_streamer_acquire(e->streamer, l, &w)))
            break;
        if (hp->arch == AIR_ARCH_GEMMA2 || hp->arch == AIR_ARCH_GEMMA3)
            st = air_gemma_layer(e, l, w, b, x);
        else if (hp->kv_lora_rank > 0)
            st = air_mla_layer(e, l, w, b, x);
        else
            st = air_llama_layer(e, l, w, b, x);
        air_streamer_release(e->streamer, l);
    }
    return st;
}

air_status air_engine_pass_head(air_engine *e, const air_batch *b, float *x) {
    return run_head(e, b, x);
}

void air_engine_pass_end(air_engine *e) {
    free(e->rope_cos);
    free(e->rope_sin);
    free(e->tree_prefix);
    free(e->tree_off);
    e->rope_cos = e->rope_sin = NULL;
    e->tree_prefix = e->tree_off = NULL;
}

air_status air_engine_forward(air_engine *e, const air_batch *b) {
    if (e->pipe)
        return air_pipe_forward(e, b);
    if (b->n <= 0)
        return air_err(AIR_ERR_INVALID_ARG, "empty batch");
    float *x = malloc(sizeof(float) * (size_t)b->n * e->hp.n_embd);
    air_status st = x ? air_engine_pass_begin(e, b) : air_err(AIR_ERR_NOMEM, "out of memory");
    if (!st)
        st = air_engine_pass_embed(e, b, x);
    if (!st && e->cuda) /* layers and head on the GPU */
        st = air_cuda_engine_forward(e, b, x);
    else if (!st) {
        st = air_engine_pass_layers(e, b, x);
        if (!st)
            st = air_engine_pass_head(e, b, x);
    }
    air_engine_pass_end(e);
    free(x);
    return st;
}

air_status air_engine_eval(air_engine *e, air_kv *kv, const int32_t *tokens, int n, int all_logits,
                           float *logits) {
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    air_kv **kvs = malloc(sizeof(air_kv *) * (size_t)(n > 0 ? n : 1));
    uint8_t *want = malloc((size_t)(n > 0 ? n : 1));
    if (!pos || !kvs || !want) {
        free(pos);
        free(kvs);
        free(want);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        pos[i] = kv->n_past + i;
        kvs[i] = kv;
        want[i] = all_logits || i == n - 1;
    }
    air_batch b = {n, tokens, pos, kvs, want, logits, NULL, NULL};
    air_status st = air_engine_forward(e, &b);
    if (!st)
        kv->n_past += n;
    free(pos);
    free(kvs);
    free(want);
    return st;
}
