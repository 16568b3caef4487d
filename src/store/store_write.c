/*
 * store_write.c - split a model source into the layer store.
 *
 * For each unit (embeddings, layer 0..n-1, head): ask the source for each
 * tensor, check its shape against the hyper-parameters, convert it to the
 * storage format (1-D tensors to fp32; matrices kept as they are for
 * compression "none", quantized to 8bit/4bit otherwise), and write the unit
 * file atomically. Every unit file carries the store's model id, so an
 * interrupted split resumes with the files of the same content already
 * complete; manifest.json is written last, sealed by its checksum, and marks
 * the store complete. The whole split holds an exclusive lock on the store
 * folder.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "store/store.h"
#include "text/chat_files.h"
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
    if (hp->post_norms) {
        w[n++] = (want){AIR_T_ATTN_POST_NORM, 1, {d, 1}};
        w[n++] = (want){AIR_T_FFN_POST_NORM, 1, {d, 1}};
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

uint64_t air_store_unit_estimate(const air_hparams *hp, air_compression c, int unit) {
    want head[2] = {{AIR_T_OUT_NORM, 1, {hp->n_embd, 1}},
                    {AIR_T_OUTPUT, 2, {hp->n_vocab, hp->n_embd}}};
    want embed = {AIR_T_TOK_EMBD, 2, {hp->n_vocab, hp->n_embd}};
    want *w = unit < 0 || unit >= hp->n_layer ? NULL : malloc(sizeof(want) * (size_t)layer_wants_max(hp));
    const want *t = unit < 0 ? &embed : unit >= hp->n_layer ? head : w;
    int n = unit < 0 ? 1 : unit >= hp->n_layer ? 2 : w ? layer_wants(hp, unit, w) : 0;
    uint64_t bytes = 0;
    for (int i = 0; i < n; i++) {
        int64_t rows = t[i].n_dims == 2 ? t[i].shape[0] : 1;
        int64_t k = t[i].n_dims == 2 ? t[i].shape[1] : t[i].shape[0];
        air_dtype dt = target_dtype(c, t[i].name, t[i].n_dims, k, AIR_DT_BF16);
        bytes += (uint64_t)rows * air_dtype_row_bytes(dt, k) + AIR_LF_ALIGN;
    }
    free(w);
    return bytes;
}

void air_store_manifest_name(int first, int last, int n_layer, char *buf, size_t size) {
    if (first <= -1 && last >= n_layer)
        snprintf(buf, size, "manifest.json");
    else
        snprintf(buf, size, "manifest-units-%d-%d.json", first, last);
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

/* The embeddings get a second entry: the XXH3-64 of each row, so that a row
 * read alone is verified alone. */
static air_status add_row_sums(air_lf_builder *b) {
    const air_lf_entry *t = &b->e[0];
    int64_t rows = t->shape[0];
    int64_t shape[2] = {rows, 1};
    uint64_t *sums;
    air_status st = air_lf_builder_add(b, AIR_T_TOK_EMBD ".rows", (air_dtype)AIR_LF_DT_ROWSUM, 1,
                                       shape, (uint64_t)rows * 8, (void **)&sums);
    if (st)
        return st;
    t = &b->e[0]; /* the data may have moved */
    size_t rb = air_dtype_row_bytes((air_dtype)t->dtype, t->shape[1]);
    const char *data = (const char *)b->data + t->offset;
    for (int64_t r = 0; r < rows; r++)
        sums[r] = XXH3_64bits(data + (size_t)r * rb, rb);
    return AIR_OK;
}

static air_status write_unit(air_source *src, const air_split_options *opt,
                             const air_lf_ident *id, const want *w, int nw, const int *src_layer,
                             const char **src_name, const char *path, air_lf_info *info) {
    int unit = id->unit;
    air_lf_builder b;
    air_lf_builder_init(&b, id);
    air_status st = AIR_OK;
    void *raw = NULL;
    for (int i = 0; i < nw && !st; i++) {
        if (opt->should_abort && opt->should_abort(opt->abort_user)) {
            st = air_err(AIR_ERR_ABORTED, "the split was interrupted; the units already written "
                         "are kept and the next run resumes from them");
            break;
        }
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
    if (!st && unit < 0)
        st = add_row_sums(&b);
    if (!st)
        st = air_lf_builder_write(&b, path, info);
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

/* Copies a source text file into the store and records it in `files`. */
static air_status copy_file(const char *from, const char *dir, const char *name, cJSON *files) {
    char *data;
    size_t len;
    air_status st = air_read_file(from, &data, &len);
    if (st)
        return st;
    char *to = air_path_join(dir, name);
    st = air_write_file_atomic(to, data, len);
    if (!st) {
        char hex[24];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)XXH3_64bits(data, len));
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", name);
        cJSON_AddNumberToObject(f, "bytes", (double)len);
        cJSON_AddStringToObject(f, "xxh3", hex);
        cJSON_AddItemToArray(files, f);
    }
    free(to);
    free(data);
    return st;
}

/* The chat template files (chat_files.h) of the source folder, copied with
 * their checksums; those of an earlier split that the source no longer has
 * are removed first, so the runtime never finds a stale template. */
static air_status copy_chat_templates(const char *from_dir, const char *dir, cJSON *files) {
    air_status st = AIR_OK;
    char **old = air_chat_template_files(dir, &st);
    for (int i = 0; old && old[i]; i++) {
        char *p = air_path_join(dir, old[i]);
        unlink(p);
        free(p);
    }
    air_chat_template_files_free(old);
    char **rel = st || !from_dir ? NULL : air_chat_template_files(from_dir, &st);
    for (int i = 0; !st && rel && rel[i]; i++) {
        char *from = air_path_join(from_dir, rel[i]);
        if (strchr(rel[i], '/')) {
            char *sub = air_path_join(dir, AIR_CHAT_NAMED_DIR);
            st = sub ? air_mkdirs(sub) : air_err(AIR_ERR_NOMEM, "out of memory");
            free(sub);
        }
        if (!st)
            st = from ? copy_file(from, dir, rel[i], files) : air_err(AIR_ERR_NOMEM, "out of memory");
        free(from);
    }
    air_chat_template_files_free(rel);
    return st;
}

/* Takes the store's build lock (an flock on the folder), waiting for another
 * process that holds it; says so through the progress callback. Returns the
 * descriptor to close when done. */
static air_status lock_store(const char *dir, const air_split_options *opt, int *fd_out) {
    *fd_out = -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return air_err(AIR_ERR_IO, "cannot open the store folder %s: %s", dir, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) {
            air_status st = air_err(AIR_ERR_IO, "cannot lock the store folder %s: %s", dir,
                                    strerror(errno));
            close(fd);
            return st;
        }
        if (opt->progress) {
            char msg[1200];
            snprintf(msg, sizeof msg, "waiting for another process splitting into %s", dir);
            opt->progress(opt->progress_user, msg, 0, 0, -1.0);
        }
        int r;
        while ((r = flock(fd, LOCK_EX)) != 0 && errno == EINTR)
            ;
        if (r != 0) {
            air_status st = air_err(AIR_ERR_IO, "cannot lock the store folder %s: %s", dir,
                                    strerror(errno));
            close(fd);
            return st;
        }
    }
    *fd_out = fd;
    return AIR_OK;
}

/* With the lock held: temp files of splits that were killed, and the marker
 * of the previous format version, are litter. */
static void remove_litter(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        int tmp = strstr(e->d_name, ".tmp.") != NULL || (n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0);
        if (tmp || strcmp(e->d_name, "split.json") == 0) {
            char *p = air_path_join(dir, e->d_name);
            unlink(p);
            free(p);
        }
    }
    if (d)
        closedir(d);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void add_unit_entry(cJSON *files, const char *path, const air_lf_info *info) {
    char hex[24];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)info->header_xxh3);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "name", strrchr(path, '/') + 1);
    cJSON_AddNumberToObject(f, "bytes", (double)info->file_bytes);
    cJSON_AddStringToObject(f, "header_xxh3", hex);
    cJSON_AddItemToArray(files, f);
}

air_status air_store_split(air_source *src, const char *dir, const air_split_options *opt) {
    const air_hparams *hp = &src->hp;
    air_status st = air_mkdirs(dir);
    if (st)
        return st;
    int lock_fd;
    if ((st = lock_store(dir, opt, &lock_fd)))
        return st;
    const int first = opt->part ? opt->first_unit : -1, last = opt->part ? opt->last_unit : hp->n_layer;
    if (first < -1 || last > hp->n_layer || first > last) {
        close(lock_fd);
        return air_err(AIR_ERR_INVALID_ARG, "units %d..%d are not a range of a store of %d layers",
                       first, last, hp->n_layer);
    }
    char mname[80];
    air_store_manifest_name(first, last, hp->n_layer, mname, sizeof mname);
    char *manifest = air_path_join(dir, mname);
    cJSON *files = NULL;
    want *w = NULL;

    /* A complete store for this content (perhaps just finished by the
     * process we waited for): nothing to do. A store of other content, of an
     * older format or with a corrupt manifest is rebuilt. */
    int current = 0;
    if (opt->built)
        *opt->built = 0;
    if (air_store_check_part(dir, src->fingerprint, first, last, hp->n_layer, &current) != AIR_OK)
        air_err_clear();
    if (current)
        goto out;
    unlink(manifest);
    remove_litter(dir);

    files = cJSON_CreateArray();
    const uint64_t model_id = air_store_model_id(src->fingerprint, opt->compression, hp);
    w = malloc(sizeof(want) * (size_t)layer_wants_max(hp));
    if (!w) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto out;
    }
    uint64_t total = 0, done = 0;
    /* rough total for progress: two bytes per parameter */
    total = (uint64_t)hp->n_vocab * hp->n_embd * 2 * (hp->tie_embeddings ? 2 : 2);
    for (int l = first > 0 ? first : 0; l < hp->n_layer && l <= last; l++) {
        int nw = layer_wants(hp, l, w);
        for (int i = 0; i < nw; i++)
            total += (uint64_t)w[i].shape[0] * (w[i].n_dims == 2 ? (uint64_t)w[i].shape[1] : 1) * 2;
    }
    double t0 = now_s();
    for (int unit = first; unit <= last; unit++) {
        char *path = unit_file(dir, unit, hp->n_layer);
        air_lf_ident id = {unit, (uint32_t)hp->n_layer, model_id, 0};
        air_lf_info info = {0};
        /* a unit file of this very content, completely written, is kept */
        int have = air_lf_probe(path, &id, &info, NULL) == AIR_OK;
        if (!have) {
            air_err_clear();
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
            st = write_unit(src, opt, &id, w, nw, unit < 0 || unit == hp->n_layer ? src_layer : NULL,
                            unit < 0 || unit == hp->n_layer ? src_name : NULL, path, &info);
            if (st) {
                air_err_context(st, "splitting %s into %s",
                                unit < 0 ? "the embeddings"
                                         : unit == hp->n_layer ? "the output head" : "a layer",
                                path);
                free(path);
                goto out;
            }
            /* a part leaves the source whole: the other ranks' layers may share its shards */
            if (unit >= 0 && unit < hp->n_layer && src->done_with_layer && !opt->part)
                src->done_with_layer(src, unit);
        }
        add_unit_entry(files, path, &info);
        done += info.file_bytes;
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
    if (src->done_with_layer && !opt->part)
        src->done_with_layer(src, hp->n_layer);
    /* the source's text files: copied when it has them, never left stale */
    const struct {
        const char *name, *from;
    } copies[] = {{"tokenizer.json", src->tokenizer_json},
                  {"tokenizer_config.json", src->tokenizer_config}};
    for (size_t i = 0; i < sizeof copies / sizeof copies[0]; i++) {
        if (copies[i].from) {
            if ((st = copy_file(copies[i].from, dir, copies[i].name, files)))
                goto out;
        } else {
            char *p = air_path_join(dir, copies[i].name);
            unlink(p);
            free(p);
        }
    }
    if ((st = copy_chat_templates(src->chat_template_dir, dir, files)))
        goto out;

    char hex[24];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)model_id);
    cJSON *m = air_manifest_new();
    cJSON_AddStringToObject(m, "format", "airllm-layer-store");
    cJSON_AddNumberToObject(m, "version", AIR_STORE_VERSION);
    cJSON_AddStringToObject(m, "compression", air_compression_name(opt->compression));
    cJSON_AddStringToObject(m, "model", src->name ? src->name : "");
    cJSON_AddStringToObject(m, "model_id", hex);
    cJSON_AddStringToObject(m, "source_fingerprint", src->fingerprint ? src->fingerprint : "");
    cJSON_AddItemToObject(m, "hparams", air_hparams_to_json(hp));
    if (opt->part) {
        cJSON_AddNumberToObject(m, "first_unit", first);
        cJSON_AddNumberToObject(m, "last_unit", last);
    }
    cJSON_AddItemToObject(m, "files", files);
    files = NULL;
    char *text = air_manifest_print(m);
    cJSON_Delete(m);
    st = text ? air_write_file_atomic(manifest, text, strlen(text))
              : air_err(AIR_ERR_NOMEM, "out of memory");
    free(text);
    if (!st && opt->built)
        *opt->built = 1;
out:
    free(w);
    cJSON_Delete(files);
    free(manifest);
    close(lock_fd); /* releases the lock */
    return st;
}
