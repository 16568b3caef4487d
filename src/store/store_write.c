/*
 * store_write.c - split a model source into the layer store.
 *
 * For each unit (embeddings, layer 0..n-1, head): ask the source for each
 * tensor, check its shape against the hyper-parameters, convert it to the
 * storage format (1-D tensors to fp32; matrices kept as they are for
 * compression "none", quantized to 8bit/4bit otherwise), and write the unit
 * file atomically. A split.json marker records what is being built so that an
 * interrupted split resumes with the files already complete; manifest.json is
 * written last and marks the store complete.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "util/error.h"
#include "util/fileio.h"

const char *air_compression_name(air_compression c) {
    switch (c) {
    case AIR_COMP_8BIT: return "8bit";
    case AIR_COMP_4BIT: return "4bit";
    default: return "none";
    }
}

int air_compression_parse(const char *s, air_compression *c) {
    if (!s || !*s || strcmp(s, "none") == 0 || strcmp(s, "None") == 0)
        *c = AIR_COMP_NONE;
    else if (strcmp(s, "8bit") == 0)
        *c = AIR_COMP_8BIT;
    else if (strcmp(s, "4bit") == 0)
        *c = AIR_COMP_4BIT;
    else
        return 0;
    return 1;
}

/* ---------------------------------------------------------------------------
 * what goes in each unit
 * ------------------------------------------------------------------------- */

typedef struct {
    char name[AIR_LF_NAME];
    int n_dims;
    int64_t shape[2];
} want;

/* Most tensors a layer can have. */
static int layer_wants_max(const air_hparams *hp) { return 24 + 6 * hp->n_expert; }

/* The tensors of layer l, in file order: for an MoE layer the dense part
 * first, then each expert's tensors together (docs/layer-store.md). */
static int layer_wants(const air_hparams *hp, int l, want *w) {
    int64_t d = hp->n_embd, q = (int64_t)hp->n_head * hp->head_dim,
            kv = (int64_t)hp->n_head_kv * hp->head_dim, ff = hp->n_ff;
    int n = 0;
    w[n++] = (want){AIR_T_ATTN_NORM, 1, {d, 1}};
    if (hp->kv_lora_rank > 0) { /* multi-head latent attention */
        int64_t qh = (int64_t)hp->n_head * (hp->qk_nope_dim + hp->head_dim), qa = hp->q_lora_rank,
                kva = hp->kv_lora_rank;
        if (qa > 0) {
            w[n++] = (want){AIR_T_WQ_A, 2, {qa, d}};
            w[n++] = (want){AIR_T_Q_A_NORM, 1, {qa, 1}};
            w[n++] = (want){AIR_T_WQ_B, 2, {qh, qa}};
        } else {
            w[n++] = (want){AIR_T_WQ, 2, {qh, d}};
        }
        w[n++] = (want){AIR_T_WKV_A, 2, {kva + hp->head_dim, d}};
        w[n++] = (want){AIR_T_KV_A_NORM, 1, {kva, 1}};
        w[n++] = (want){AIR_T_WKV_B, 2, {(int64_t)hp->n_head * (hp->qk_nope_dim + hp->v_head_dim), kva}};
        w[n++] = (want){AIR_T_WO, 2, {d, (int64_t)hp->n_head * hp->v_head_dim}};
    } else {
        w[n++] = (want){AIR_T_WQ, 2, {q, d}};
        w[n++] = (want){AIR_T_WK, 2, {kv, d}};
        w[n++] = (want){AIR_T_WV, 2, {kv, d}};
        w[n++] = (want){AIR_T_WO, 2, {d, q}};
    }
    if (hp->attn_bias) {
        w[n++] = (want){AIR_T_BQ, 1, {q, 1}};
        w[n++] = (want){AIR_T_BK, 1, {kv, 1}};
        w[n++] = (want){AIR_T_BV, 1, {kv, 1}};
    }
    if (hp->attn_out_bias)
        w[n++] = (want){AIR_T_BO, 1, {d, 1}};
    if (hp->attn_sinks)
        w[n++] = (want){AIR_T_SINKS, 1, {hp->n_head, 1}};
    if (hp->qk_norm) {
        w[n++] = (want){AIR_T_Q_NORM, 1, {hp->head_dim, 1}};
        w[n++] = (want){AIR_T_K_NORM, 1, {hp->head_dim, 1}};
    }
    w[n++] = (want){AIR_T_FFN_NORM, 1, {d, 1}};
    if (!air_hp_layer_is_moe(hp, l)) {
        w[n++] = (want){AIR_T_W_GATE, 2, {ff, d}};
        w[n++] = (want){AIR_T_W_UP, 2, {ff, d}};
        w[n++] = (want){AIR_T_W_DOWN, 2, {d, ff}};
        return n;
    }
    int64_t fe = hp->n_ff_exp, fs = hp->n_ff_shexp;
    w[n++] = (want){AIR_T_ROUTER, 2, {hp->n_expert, d}};
    if (hp->router_sigmoid || hp->router_bias_topk_softmax)
        w[n++] = (want){AIR_T_ROUTER_BIAS, 1, {hp->n_expert, 1}};
    if (fs > 0) {
        w[n++] = (want){AIR_T_SHEXP_GATE, 2, {fs, d}};
        w[n++] = (want){AIR_T_SHEXP_UP, 2, {fs, d}};
        w[n++] = (want){AIR_T_SHEXP_DOWN, 2, {d, fs}};
        if (hp->shexp_gate)
            w[n++] = (want){AIR_T_SHEXP_INP, 2, {1, d}};
    }
    static const char *parts[6] = {AIR_T_W_GATE, AIR_T_W_UP, AIR_T_W_DOWN, "b_gate", "b_up", "b_down"};
    for (int e = 0; e < hp->n_expert; e++)
        for (int p = 0; p < (hp->expert_bias ? 6 : 3); p++) {
            if (p < 3)
                w[n] = (want){"", 2, {p == 2 ? d : fe, p == 2 ? fe : d}};
            else
                w[n] = (want){"", 1, {p == 5 ? d : fe, 1}};
            snprintf(w[n].name, sizeof w[n].name, AIR_T_EXP_PREFIX "%d.%s", e, parts[p]);
            n++;
        }
    return n;
}

/* Storage format of a tensor. Embeddings stay in the source format (only a
 * few rows are read per token); see docs/layer-store.md. */
static air_dtype target_dtype(air_compression c, const char *name, int n_dims, int64_t n_in,
                              air_dtype src) {
    if (n_dims == 1)
        return AIR_DT_F32;
    /* the router decides which experts run: it keeps full precision */
    if (strcmp(name, AIR_T_TOK_EMBD) == 0 || strcmp(name, AIR_T_ROUTER) == 0 ||
        strcmp(name, AIR_T_SHEXP_INP) == 0 || c == AIR_COMP_NONE)
        return src;
    air_dtype q = c == AIR_COMP_8BIT ? AIR_DT_Q8 : AIR_DT_NF4;
    if (n_in % air_dtype_block(q) != 0)
        return AIR_DT_BF16 == src || AIR_DT_F16 == src ? src : AIR_DT_BF16;
    return q;
}

/* ---------------------------------------------------------------------------
 * conversion (parallel over rows)
 * ------------------------------------------------------------------------- */

typedef struct {
    const void *src;
    air_dtype sdt, ddt;
    void *dst;
    int64_t rows, n;
} conv_job;

static void conv_rows(void *ctx, int ith, int nth) {
    conv_job *j = ctx;
    int64_t per = (j->rows + nth - 1) / nth, r0 = per * ith, r1 = r0 + per;
    if (r1 > j->rows)
        r1 = j->rows;
    if (r0 >= r1)
        return;
    float *tmp = malloc(sizeof(float) * (size_t)j->n);
    if (!tmp)
        return; /* caller checks the sentinel below */
    size_t sb = air_dtype_row_bytes(j->sdt, j->n), db = air_dtype_row_bytes(j->ddt, j->n);
    for (int64_t r = r0; r < r1; r++) {
        air_row_to_f32(j->sdt, (const char *)j->src + r * sb, tmp, j->n);
        air_row_from_f32(j->ddt, tmp, (char *)j->dst + r * db, j->n);
    }
    free(tmp);
}

/* ---------------------------------------------------------------------------
 * one unit
 * ------------------------------------------------------------------------- */

static air_status write_unit(air_source *src, const air_split_options *opt, int unit,
                             const want *w, int nw, const int *src_layer, const char **src_name,
                             const char *path, uint64_t *bytes_out) {
    air_lf_builder b;
    air_lf_builder_init(&b, unit);
    air_status st = AIR_OK;
    void *raw = NULL;
    for (int i = 0; i < nw && !st; i++) {
        air_src_tensor info;
        int layer = src_layer ? src_layer[i] : unit;
        const char *sname = src_name ? src_name[i] : w[i].name;
        if ((st = src->info(src, layer, sname, &info)))
            break;
        int ok = info.n_dims == w[i].n_dims && info.shape[0] == w[i].shape[0] &&
                 (w[i].n_dims == 1 || info.shape[1] == w[i].shape[1]);
        if (!ok) {
            st = air_err(AIR_ERR_FORMAT,
                         "tensor %s has shape [%lld, %lld], expected [%lld, %lld] from the "
                         "model's hyper-parameters (config.json)",
                         info.src_name, (long long)info.shape[0],
                         (long long)(info.n_dims == 2 ? info.shape[1] : 0),
                         (long long)w[i].shape[0],
                         (long long)(w[i].n_dims == 2 ? w[i].shape[1] : 0));
            break;
        }
        int64_t rows = w[i].n_dims == 2 ? w[i].shape[0] : 1;
        int64_t n = w[i].n_dims == 2 ? w[i].shape[1] : w[i].shape[0];
        air_dtype ddt = target_dtype(opt->compression, w[i].name, w[i].n_dims, n, info.dtype);
        uint64_t dbytes = (uint64_t)rows * air_dtype_row_bytes(ddt, n);
        void *dst;
        if ((st = air_lf_builder_add(&b, w[i].name, ddt, w[i].n_dims, w[i].shape, dbytes, &dst)))
            break;
        if (ddt == info.dtype) {
            st = src->read(src, layer, sname, dst);
            continue;
        }
        raw = malloc(info.nbytes ? info.nbytes : 1);
        if (!raw) {
            st = air_err(AIR_ERR_NOMEM, "out of memory reading %s", info.src_name);
            break;
        }
        if ((st = src->read(src, layer, sname, raw)))
            break;
        conv_job j = {raw, info.dtype, ddt, dst, rows, n};
        air_pool_run(opt->pool, conv_rows, &j);
        free(raw);
        raw = NULL;
    }
    free(raw);
    if (!st)
        st = air_lf_builder_write(&b, path, bytes_out, NULL);
    air_lf_builder_free(&b);
    return st;
}

/* ---------------------------------------------------------------------------
 * the whole store
 * ------------------------------------------------------------------------- */

static char *unit_file(const char *dir, int unit, int n_layer) {
    char name[64];
    if (unit < 0)
        snprintf(name, sizeof name, "embed.bin");
    else if (unit == n_layer)
        snprintf(name, sizeof name, "head.bin");
    else
        snprintf(name, sizeof name, "layer_%05d.bin", unit);
    return air_path_join(dir, name);
}

static air_status copy_file(const char *from, const char *dir, const char *name) {
    char *data;
    size_t len;
    air_status st = air_read_file(from, &data, &len);
    if (st)
        return st;
    char *to = air_path_join(dir, name);
    st = air_write_file_atomic(to, data, len);
    free(to);
    free(data);
    return st;
}

static char *marker_text(const air_source *src, air_compression c) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "version", AIR_STORE_VERSION);
    cJSON_AddStringToObject(j, "compression", air_compression_name(c));
    cJSON_AddStringToObject(j, "source_fingerprint", src->fingerprint ? src->fingerprint : "");
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

air_status air_store_split(air_source *src, const char *dir, const air_split_options *opt) {
    const air_hparams *hp = &src->hp;
    air_status st = air_mkdirs(dir);
    if (st)
        return st;
    char *manifest = air_path_join(dir, "manifest.json");
    char *marker = air_path_join(dir, "split.json");
    char *want_marker = marker_text(src, opt->compression);
    cJSON *files = NULL;
    want *w = NULL;

    /* A complete store for this content: nothing to do. */
    if (air_path_exists(manifest)) {
        char *m;
        size_t ml;
        if (air_read_file(manifest, &m, &ml) == AIR_OK) {
            cJSON *j = cJSON_Parse(m);
            const cJSON *fp = cJSON_GetObjectItemCaseSensitive(j, "source_fingerprint");
            int same = cJSON_IsString(fp) && src->fingerprint &&
                       strcmp(fp->valuestring, src->fingerprint) == 0;
            cJSON_Delete(j);
            free(m);
            if (same)
                goto out;
        }
        unlink(manifest); /* stale: the source changed */
    }

    /* Resume only what was being built for the same content. */
    int resume = 0;
    if (air_path_exists(marker)) {
        char *m;
        size_t ml;
        if (air_read_file(marker, &m, &ml) == AIR_OK) {
            resume = strcmp(m, want_marker) == 0;
            free(m);
        }
    }
    if ((st = air_write_file_atomic(marker, want_marker, strlen(want_marker))))
        goto out;

    files = cJSON_CreateArray();
    w = malloc(sizeof(want) * (size_t)layer_wants_max(hp));
    if (!w) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto out;
    }
    uint64_t total = 0, done = 0;
    /* rough total for progress: two bytes per parameter */
    total = (uint64_t)hp->n_vocab * hp->n_embd * 2 * (hp->tie_embeddings ? 2 : 2);
    for (int l = 0; l < hp->n_layer; l++) {
        int nw = layer_wants(hp, l, w);
        for (int i = 0; i < nw; i++)
            total += (uint64_t)w[i].shape[0] * (w[i].n_dims == 2 ? (uint64_t)w[i].shape[1] : 1) * 2;
    }
    double t0 = now_s();
    for (int unit = -1; unit <= hp->n_layer; unit++) {
        char *path = unit_file(dir, unit, hp->n_layer);
        uint64_t bytes = 0;
        int have = resume && air_lf_probe(path, &bytes) == AIR_OK;
        if (!have) {
            int nw = 0;
            int src_layer[3] = {-1, -1, -1};
            const char *src_name[3] = {NULL, NULL, NULL};
            if (unit == -1) {
                w[nw++] = (want){AIR_T_TOK_EMBD, 2, {hp->n_vocab, hp->n_embd}};
                src_name[0] = AIR_T_TOK_EMBD;
            } else if (unit == hp->n_layer) {
                w[nw] = (want){AIR_T_OUT_NORM, 1, {hp->n_embd, 1}};
                src_name[nw++] = AIR_T_OUT_NORM;
                w[nw] = (want){AIR_T_OUTPUT, 2, {hp->n_vocab, hp->n_embd}};
                src_name[nw++] = hp->tie_embeddings ? AIR_T_TOK_EMBD : AIR_T_OUTPUT;
            } else {
                nw = layer_wants(hp, unit, w);
            }
            st = write_unit(src, opt, unit, w, nw, unit < 0 || unit == hp->n_layer ? src_layer : NULL,
                            unit < 0 || unit == hp->n_layer ? src_name : NULL, path, &bytes);
            if (st) {
                air_err_context(st, "splitting %s into %s",
                                unit < 0 ? "the embeddings"
                                         : unit == hp->n_layer ? "the output head" : "a layer",
                                path);
                free(path);
                goto out;
            }
            if (unit >= 0 && unit < hp->n_layer && src->done_with_layer)
                src->done_with_layer(src, unit);
        }
        cJSON *f = cJSON_CreateObject();
        const char *base = strrchr(path, '/') + 1;
        cJSON_AddStringToObject(f, "name", base);
        cJSON_AddNumberToObject(f, "bytes", (double)bytes);
        cJSON_AddItemToArray(files, f);
        done += bytes;
        if (opt->progress) {
            double dt = now_s() - t0;
            opt->progress(opt->progress_user, "split", done, total > done ? total : done,
                          dt > 0 ? (double)done / dt : 0);
        }
        free(path);
    }
    if (opt->progress) { /* the estimate is rough: end the bar at what was written */
        double dt = now_s() - t0;
        opt->progress(opt->progress_user, "split", done, done, dt > 0 ? (double)done / dt : 0);
    }
    if (src->done_with_layer)
        src->done_with_layer(src, hp->n_layer);
    if (src->tokenizer_json && (st = copy_file(src->tokenizer_json, dir, "tokenizer.json")))
        goto out;
    if (src->tokenizer_config &&
        (st = copy_file(src->tokenizer_config, dir, "tokenizer_config.json")))
        goto out;

    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "format", "airllm-layer-store");
    cJSON_AddNumberToObject(m, "version", AIR_STORE_VERSION);
    cJSON_AddStringToObject(m, "compression", air_compression_name(opt->compression));
    cJSON_AddStringToObject(m, "model", src->name ? src->name : "");
    cJSON_AddStringToObject(m, "source_fingerprint", src->fingerprint ? src->fingerprint : "");
    cJSON_AddItemToObject(m, "hparams", air_hparams_to_json(hp));
    cJSON_AddItemToObject(m, "files", files);
    files = NULL;
    char *text = cJSON_Print(m);
    cJSON_Delete(m);
    st = air_write_file_atomic(manifest, text, strlen(text));
    free(text);
    if (!st)
        unlink(marker);
out:
    free(w);
    cJSON_Delete(files);
    free(want_marker);
    free(manifest);
    free(marker);
    return st;
}
