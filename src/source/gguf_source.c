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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    if (!air_gguf_tensor_name(layer, neutral, name, sizeof name))
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

static air_status gg_info(air_source *s, int layer, const char *neutral, air_src_tensor *out) {
    gg_impl *h = s->impl;
    const air_gguf_tensor *t;
    air_status st = find(s, layer, neutral, &t);
    if (st)
        return st;
    if (t->ne[2] != 1 || t->ne[3] != 1)
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
            return air_err(AIR_ERR_UNSUPPORTED,
                           "%s: tensor '%s' is of GGML type %s, which cannot be converted yet; "
                           "use a file quantized with Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, "
                           "F16, BF16 or F32",
                           air_gguf_path(h->g), t->name, air_ggml_type_name(t->ggml_type));
        out->dtype = AIR_DT_F32;
    }
    out->n_dims = t->n_dims == 1 ? 1 : 2;
    if (out->n_dims == 1) {
        out->shape[0] = t->ne[0];
        out->shape[1] = 1;
    } else {
        out->shape[0] = t->ne[1];
        out->shape[1] = t->ne[0];
    }
    uint64_t esz = out->dtype == AIR_DT_F32 ? 4 : 2;
    out->nbytes = (uint64_t)air_gguf_tensor_nelements(t) * esz;
    snprintf(out->src_name, sizeof out->src_name, "%s (%s %s)", t->name,
             air_ggml_type_name(t->ggml_type), air_gguf_path(h->g));
    return AIR_OK;
}

static air_status gg_read(air_source *s, int layer, const char *neutral, void *dst) {
    gg_impl *h = s->impl;
    const air_gguf_tensor *t;
    air_src_tensor info;
    air_status st = gg_info(s, layer, neutral, &info);
    if (st || (st = find(s, layer, neutral, &t)))
        return st;
    if (t->ggml_type == AIR_GGML_F32 || t->ggml_type == AIR_GGML_F16 ||
        t->ggml_type == AIR_GGML_BF16)
        memcpy(dst, air_gguf_tensor_data(h->g, t), (size_t)t->size);
    else if ((st = air_gguf_dequantize(h->g, t, dst)))
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
