/*
 * gguf_source.c - a GGUF file as an air_source, so the layer store writer
 * can split a GGUF model exactly like a Hugging Face folder.
 *
 * The writer asks for (layer, neutral name); this file finds the GGUF tensor
 * (air_gguf_tensor_name), and hands it out as
 *   F32 / F16 / BF16 tensors: the bytes as stored;
 *   quantized tensors (Q4_0 ... Q6_K): dequantized to F32 (the store then
 *     re-quantizes to its own format).
 * Shapes are returned in the arch.h order (n_out, n_in), i.e. GGUF's ne
 * reversed. For the llama architecture the Q/K projections (and their
 * biases) are un-permuted on the way out, so every consumer sees the
 * Hugging Face row order that rotate-half RoPE expects.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels/pool.h"
#include "source/gguf.h"
#include "source/source.h"
#include "util/error.h"

typedef struct {
    air_gguf *g;
    int permuted; /* llama: Q/K rows in the converter's interleaved order */
} gg_impl;

static air_status find(air_source *s, int layer, const char *neutral, const air_gguf_tensor **out) {
    gg_impl *h = s->impl;
    char name[128];
    if (!air_gguf_arch_tensor_name(s->hp.arch, layer, neutral, name, sizeof name))
        return air_err(AIR_ERR_NOT_FOUND, "%s: no GGUF tensor name for '%s' (layer %d)",
                       air_gguf_path(h->g), neutral, layer);
    *out = air_gguf_find_tensor(h->g, name);
    if (!*out)
        return air_err(AIR_ERR_NOT_FOUND, "%s: tensor '%s' is missing from the GGUF file",
                       air_gguf_path(h->g), name);
    return AIR_OK;
}

/* Heads of a Q/K tensor that needs its rows reordered, else 0. */
static int permute_heads(air_source *s, const char *neutral) {
    gg_impl *h = s->impl;
    if (!h->permuted)
        return 0;
    if (!strcmp(neutral, AIR_T_WQ) || !strcmp(neutral, AIR_T_BQ))
        return s->hp.n_head;
    if (!strcmp(neutral, AIR_T_WK) || !strcmp(neutral, AIR_T_BK))
        return s->hp.n_head_kv;
    return 0;
}

/* Stacked expert biases are [n_out, n_expert], the weights [n_in, n_out, n_expert]. */
static int expert_bias(const air_gguf_tensor *t) {
    size_t n = strlen(t->name);
    return n > 5 && strcmp(t->name + n - 5, ".bias") == 0;
}

/* An expert of a stacked GGUF tensor [n_in, n_out, n_expert]: the tensor and
 * expert; 0 if neutral is not an expert tensor. */
static air_status find_expert(air_source *s, int layer, const char *neutral, int *applies,
                              const air_gguf_tensor **t, int *e) {
    gg_impl *h = s->impl;
    char name[128];
    *applies = air_gguf_expert_tensor(layer, neutral, e, name, sizeof name);
    if (!*applies)
        return AIR_OK;
    *t = air_gguf_find_tensor(h->g, name);
    if (!*t)
        return air_err(AIR_ERR_NOT_FOUND, "%s: tensor '%s' is missing from the GGUF file",
                       air_gguf_path(h->g), name);
    int bias = expert_bias(*t);
    if ((bias ? (*t)->ne[1] : (*t)->ne[2]) != s->hp.n_expert || (*t)->n_dims != 3 - bias ||
        *e >= s->hp.n_expert)
        return air_err(AIR_ERR_FORMAT,
                       "%s: '%s' has %d dimensions [%lld, %lld, %lld], expected "
                       "[%s%d experts]",
                       air_gguf_path(h->g), name, (*t)->n_dims, (long long)(*t)->ne[0],
                       (long long)(*t)->ne[1], (long long)(*t)->ne[2],
                       bias ? "n_out, " : "n_in, n_out, ", s->hp.n_expert);
    return AIR_OK;
}

/* ------------------------------------------------------------------------- */
/* Latent attention with kv_b split                                          */
/* ------------------------------------------------------------------------- */
/* Current converters store DeepSeek's kv_b_proj (n_head * (nope + v),
 * kv_lora) as two per-head tensors: attn_k_b [nope, kv_lora, n_head] (each
 * head's nope rows transposed) and attn_v_b [kv_lora, v, n_head]. Finds
 * them when layer has no attn_kv_b; *applies is 0 otherwise. */
static air_status find_kv_split(air_source *s, int layer, const char *neutral, int *applies,
                                const air_gguf_tensor **kb, const air_gguf_tensor **vb) {
    gg_impl *h = s->impl;
    const air_hparams *hp = &s->hp;
    char name[128];
    *applies = 0;
    if (strcmp(neutral, AIR_T_WKV_B) != 0 || layer < 0)
        return AIR_OK;
    snprintf(name, sizeof name, "blk.%d.attn_kv_b.weight", layer);
    if (air_gguf_find_tensor(h->g, name))
        return AIR_OK;
    snprintf(name, sizeof name, "blk.%d.attn_k_b.weight", layer);
    *kb = air_gguf_find_tensor(h->g, name);
    snprintf(name, sizeof name, "blk.%d.attn_v_b.weight", layer);
    *vb = air_gguf_find_tensor(h->g, name);
    if (!*kb || !*vb)
        return air_err(AIR_ERR_NOT_FOUND,
                       "%s: layer %d has neither attn_kv_b.weight nor attn_k_b.weight and "
                       "attn_v_b.weight",
                       air_gguf_path(h->g), layer);
    const air_gguf_tensor *k = *kb, *v = *vb;
    if (k->n_dims != 3 || k->ne[0] != hp->qk_nope_dim || k->ne[1] != hp->kv_lora_rank ||
        k->ne[2] != hp->n_head || v->n_dims != 3 || v->ne[0] != hp->kv_lora_rank ||
        v->ne[1] != hp->v_head_dim || v->ne[2] != hp->n_head)
        return air_err(AIR_ERR_FORMAT,
                       "%s: layer %d: attn_k_b [%lld, %lld, %lld] / attn_v_b [%lld, %lld, %lld] "
                       "do not match [%d, %d, %d] / [%d, %d, %d] (nope, kv_lora_rank, heads / "
                       "kv_lora_rank, value size, heads)",
                       air_gguf_path(h->g), layer, (long long)k->ne[0], (long long)k->ne[1],
                       (long long)k->ne[2], (long long)v->ne[0], (long long)v->ne[1],
                       (long long)v->ne[2], hp->qk_nope_dim, hp->kv_lora_rank, hp->n_head,
                       hp->kv_lora_rank, hp->v_head_dim, hp->n_head);
    *applies = 1;
    return AIR_OK;
}

/* kv_b rebuilt in F32: per head, the nope rows (k_b transposed back), then
 * the value rows. */
static air_status read_kv_split(air_source *s, const air_gguf_tensor *kb, const air_gguf_tensor *vb,
                                float *dst) {
    gg_impl *h = s->impl;
    const int nh = s->hp.n_head, nope = s->hp.qk_nope_dim, vd = s->hp.v_head_dim,
              r = s->hp.kv_lora_rank;
    size_t nk = (size_t)nh * nope * r, nv = (size_t)nh * vd * r;
    float *k = malloc(nk * sizeof *k), *v = malloc(nv * sizeof *v);
    air_status st = !k || !v ? air_err(AIR_ERR_NOMEM, "%s: out of memory rebuilding %s",
                                       air_gguf_path(h->g), kb->name)
                             : AIR_OK;
    if (!st && !(st = air_gguf_dequantize(h->g, kb, k)) && !(st = air_gguf_dequantize(h->g, vb, v)))
        for (int hd = 0; hd < nh; hd++) {
            float *o = dst + (size_t)hd * (nope + vd) * r;
            const float *kh = k + (size_t)hd * r * nope; /* (kv_lora, nope) */
            for (int i = 0; i < nope; i++)
                for (int c = 0; c < r; c++)
                    o[(size_t)i * r + c] = kh[(size_t)c * nope + i];
            memcpy(o + (size_t)nope * r, v + (size_t)hd * vd * r, (size_t)vd * r * sizeof *o);
        }
    free(k);
    free(v);
    return st;
}

static air_status gg_info(air_source *s, int layer, const char *neutral, air_src_tensor *out) {
    gg_impl *h = s->impl;
    const air_gguf_tensor *t, *kb, *vb;
    int expert, applies;
    air_status kst = find_kv_split(s, layer, neutral, &applies, &kb, &vb);
    if (kst || applies) {
        out->dtype = AIR_DT_F32;
        out->n_dims = 2;
        out->shape[0] = (int64_t)s->hp.n_head * (s->hp.qk_nope_dim + s->hp.v_head_dim);
        out->shape[1] = s->hp.kv_lora_rank;
        out->nbytes = (uint64_t)(out->shape[0] * out->shape[1]) * 4;
        snprintf(out->src_name, sizeof out->src_name,
                 "blk.%d.attn_k_b.weight + attn_v_b.weight "
                 "(%s)",
                 layer, air_gguf_path(h->g));
        return kst;
    }
    air_status st = find_expert(s, layer, neutral, &applies, &t, &expert);
    if (!st && !applies)
        st = find(s, layer, neutral, &t);
    if (st)
        return st;
    if (!applies && (t->ne[2] != 1 || t->ne[3] != 1))
        return air_err(AIR_ERR_FORMAT, "%s: tensor '%s' has %d dimensions, expected 1 or 2",
                       air_gguf_path(h->g), t->name, t->n_dims);
    switch (t->ggml_type) {
    case AIR_GGML_F32:
        out->dtype = AIR_DT_F32;
        break;
    case AIR_GGML_F16:
        out->dtype = AIR_DT_F16;
        break;
    case AIR_GGML_BF16:
        out->dtype = AIR_DT_BF16;
        break;
    default:
        if (!air_ggml_can_dequantize(t->ggml_type))
            return air_err(
                AIR_ERR_UNSUPPORTED,
                "%s: tensor '%s' is of GGML type %s, which cannot be converted yet; "
                "use a file quantized with Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, MXFP4, "
                "F16, BF16 or F32",
                air_gguf_path(h->g), t->name, air_ggml_type_name(t->ggml_type));
        out->dtype = AIR_DT_F32;
    }
    out->n_dims = t->n_dims == 1 ? 1 : 2;
    if (applies && expert_bias(t))
        out->n_dims = 1;
    if (out->n_dims == 1 && strcmp(neutral, AIR_T_SHEXP_INP) == 0) {
        out->n_dims = 2; /* the shared expert's gate vector is a (1, n_embd) matrix */
        out->shape[0] = 1;
        out->shape[1] = t->ne[0];
    } else if (out->n_dims == 1) {
        out->shape[0] = t->ne[0];
        out->shape[1] = 1;
    } else {
        out->shape[0] = t->ne[1];
        out->shape[1] = t->ne[0];
    }
    uint64_t esz = out->dtype == AIR_DT_F32 ? 4 : 2;
    out->nbytes = (uint64_t)(applies ? t->ne[0] * (expert_bias(t) ? 1 : t->ne[1])
                                     : air_gguf_tensor_nelements(t)) *
                  esz;
    snprintf(out->src_name, sizeof out->src_name, "%s (%s %s)", t->name,
             air_ggml_type_name(t->ggml_type), air_gguf_path(h->g));
    return AIR_OK;
}

/* Rows [row0, row0 + rows) of a quantized tensor to fp32, split over the
 * pool's threads (the file is mapped: each thread reads its own rows). An
 * error is made again on the calling thread, for its message. */
typedef struct {
    const air_gguf *g;
    const air_gguf_tensor *t;
    float *dst;
    int64_t row0, rows;
    atomic_int bad;
} dequant_job;

static void dequant_part(void *ctx, int ith, int nth) {
    dequant_job *j = ctx;
    int64_t a = j->rows * ith / nth, b = j->rows * (ith + 1) / nth;
    if (b > a && air_gguf_dequantize_rows(j->g, j->t, j->row0 + a, b - a, j->dst + a * j->t->ne[0]))
        atomic_store(&j->bad, 1);
}

static air_status dequantize_rows(air_pool *pool, const air_gguf *g, const air_gguf_tensor *t,
                                  int64_t row0, int64_t rows, float *dst) {
    if (pool && air_pool_size(pool) > 1 && rows >= 64) {
        dequant_job j = {g, t, dst, row0, rows, 0};
        atomic_init(&j.bad, 0);
        air_pool_run(pool, dequant_part, &j);
        if (!atomic_load(&j.bad))
            return AIR_OK;
    }
    return air_gguf_dequantize_rows(g, t, row0, rows, dst);
}

static air_status gg_read(air_source *s, int layer, const char *neutral, void *dst) {
    gg_impl *h = s->impl;
    const air_gguf_tensor *t, *kb, *vb;
    air_src_tensor info;
    int expert, applies;
    air_status st = find_kv_split(s, layer, neutral, &applies, &kb, &vb);
    if (st || applies)
        return st ? st : read_kv_split(s, kb, vb, dst);
    st = gg_info(s, layer, neutral, &info);
    if (st || (st = find_expert(s, layer, neutral, &applies, &t, &expert)))
        return st;
    if (applies) { /* rows [e * n_out, (e + 1) * n_out) of the stack; row e of biases */
        int64_t rows = expert_bias(t) ? 1 : t->ne[1];
        if (t->ggml_type == AIR_GGML_F32 || t->ggml_type == AIR_GGML_F16 ||
            t->ggml_type == AIR_GGML_BF16)
            memcpy(dst, (const char *)air_gguf_tensor_data(h->g, t) + (size_t)expert * info.nbytes,
                   (size_t)info.nbytes);
        else if ((st = dequantize_rows(s->pool, h->g, t, (int64_t)expert * rows, rows, dst)))
            return st;
        return AIR_OK;
    }
    if ((st = find(s, layer, neutral, &t)))
        return st;
    if (t->ggml_type == AIR_GGML_F32 || t->ggml_type == AIR_GGML_F16 ||
        t->ggml_type == AIR_GGML_BF16)
        memcpy(dst, air_gguf_tensor_data(h->g, t), (size_t)t->size);
    else if ((st = dequantize_rows(s->pool, h->g, t, 0,
                                   t->ne[0] ? air_gguf_tensor_nelements(t) / t->ne[0] : 0, dst)))
        return st;
    int heads = permute_heads(s, neutral);
    if (heads) {
        /* rows of a matrix, or single elements of a bias */
        int64_t rows = info.shape[0];
        size_t row_bytes = (size_t)(info.nbytes / (uint64_t)rows);
        if (rows > INT32_MAX || (st = air_gguf_unpermute_rows(dst, (int)rows, row_bytes, heads)))
            return air_err_context(st ? st : AIR_ERR_FORMAT, "%s: tensor '%s'", air_gguf_path(h->g),
                                   t->name);
    }
    return AIR_OK;
}

static void gg_done_with_layer(air_source *s, int layer) {}

static void gg_close(air_source *s) {
    gg_impl *h = s->impl;
    if (h)
        air_gguf_close(h->g);
    air_source_free_common(s);
}

const air_gguf *air_source_gguf(const air_source *s) {
    if (!s || s->close != gg_close)
        return NULL;
    return ((const gg_impl *)s->impl)->g;
}

air_status air_source_open_gguf(const char *path, air_source **out) {
    *out = NULL;
    air_source *s;
    air_status ast = air_source_alloc(sizeof(gg_impl), &s);
    if (ast)
        return ast;
    gg_impl *h = s->impl;
    s->info = gg_info;
    s->read = gg_read;
    s->done_with_layer = gg_done_with_layer;
    s->close = gg_close;
    air_status st = air_gguf_open(path, &h->g);
    if (!st)
        st = air_gguf_hparams(h->g, &s->hp);
    if (st) {
        gg_close(s);
        return st;
    }
    h->permuted = air_gguf_qk_permuted(h->g);

    const char *base = strrchr(path, '/');
    base = base && base[1] ? base + 1 : path;
    s->fingerprint = air_source_fingerprint(path, 1, 1);
    s->name = strdup(base);
    if (!s->fingerprint || !s->name) {
        gg_close(s);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    size_t nl = strlen(s->name);
    if (nl > 5 && strcmp(s->name + nl - 5, ".gguf") == 0)
        s->name[nl - 5] = 0;
    *out = s;
    return AIR_OK;
}
