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
    const char *name;
    int n_dims;
    int64_t shape[2];
} want;

static int layer_wants(const air_hparams *hp, want *w) {
    int64_t d = hp->n_embd, q = (int64_t)hp->n_head * hp->head_dim,
            kv = (int64_t)hp->n_head_kv * hp->head_dim, ff = hp->n_ff;
    int n = 0;
    w[n++] = (want){AIR_T_ATTN_NORM, 1, {d, 1}};
    w[n++] = (want){AIR_T_WQ, 2, {q, d}};
    w[n++] = (want){AIR_T_WK, 2, {kv, d}};
    w[n++] = (want){AIR_T_WV, 2, {kv, d}};
    w[n++] = (want){AIR_T_WO, 2, {d, q}};
    if (hp->attn_bias) {
        w[n++] = (want){AIR_T_BQ, 1, {q, 1}};
        w[n++] = (want){AIR_T_BK, 1, {kv, 1}};
        w[n++] = (want){AIR_T_BV, 1, {kv, 1}};
    }
    if (hp->qk_norm) {
        w[n++] = (want){AIR_T_Q_NORM, 1, {hp->head_dim, 1}};
        w[n++] = (want){AIR_T_K_NORM, 1, {hp->head_dim, 1}};
    }
    w[n++] = (want){AIR_T_FFN_NORM, 1, {d, 1}};
    w[n++] = (want){AIR_T_W_GATE, 2, {ff, d}};
    w[n++] = (want){AIR_T_W_UP, 2, {ff, d}};
    w[n++] = (want){AIR_T_W_DOWN, 2, {d, ff}};
    return n;
}

/* Storage format of a tensor. Embeddings stay in the source format (only a
 * few rows are read per token); see docs/layer-store.md. */
static air_dtype target_dtype(air_compression c, const char *name, int n_dims, int64_t n_in,
                              air_dtype src) {
    if (n_dims == 1)
        return AIR_DT_F32;
    if (strcmp(name, AIR_T_TOK_EMBD) == 0 || c == AIR_COMP_NONE)
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
    char *manifest = air_path_join(dir, "manifest.json");
    cJSON *files = NULL;

    /* A complete store for this content (perhaps just finished by the
     * process we waited for): nothing to do. A store of other content, of an
     * older format or with a corrupt manifest is rebuilt. */
    int current = 0;
    if (opt->built)
        *opt->built = 0;
    if (air_store_check(dir, src->fingerprint, &current) != AIR_OK)
        air_err_clear();
    if (current)
        goto out;
    unlink(manifest);
    remove_litter(dir);

    files = cJSON_CreateArray();
    const uint64_t model_id = air_store_model_id(src->fingerprint, opt->compression, hp);
    want w[AIR_LF_MAX_TENSORS];
    uint64_t total = 0, done = 0;
    /* rough total for progress: two bytes per parameter */
    total = (uint64_t)hp->n_vocab * hp->n_embd * 2 * (hp->tie_embeddings ? 2 : 2);
    {
        int nw = layer_wants(hp, w);
        uint64_t per = 0;
        for (int i = 0; i < nw; i++)
            per += (uint64_t)w[i].shape[0] * (w[i].n_dims == 2 ? (uint64_t)w[i].shape[1] : 1) * 2;
        total += per * (uint64_t)hp->n_layer;
    }
    double t0 = now_s();
    for (int unit = -1; unit <= hp->n_layer; unit++) {
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
                nw = layer_wants(hp, w);
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
            if (unit >= 0 && unit < hp->n_layer && src->done_with_layer)
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
    if (src->done_with_layer)
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
    cJSON_Delete(files);
    free(manifest);
    close(lock_fd); /* releases the lock */
    return st;
}
