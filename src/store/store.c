/*
 * store.c - open a complete layer store: read the manifest, know every unit
 * file and its size, read embedding rows on demand.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "util/error.h"
#include "util/fileio.h"

struct air_store {
    char *dir;
    air_hparams hp;
    air_compression comp;
    int n_units;
    char **unit_path;
    uint64_t *unit_bytes;
    /* embeddings */
    int embed_fd;
    air_dtype embed_dtype;
    uint64_t embed_data_off; /* absolute offset of row 0 */
    size_t embed_row_bytes;
};

int air_store_exists(const char *dir) {
    char *m = air_path_join(dir, "manifest.json");
    int ok = air_path_exists(m);
    free(m);
    return ok;
}

void air_store_close(air_store *s) {
    if (!s)
        return;
    for (int i = 0; i < s->n_units; i++)
        free(s->unit_path[i]);
    free(s->unit_path);
    free(s->unit_bytes);
    if (s->embed_fd >= 0)
        close(s->embed_fd);
    free(s->dir);
    free(s);
}

static air_status open_embed(air_store *s) {
    char *path = air_path_join(s->dir, "embed.bin");
    air_status st = AIR_OK;
    s->embed_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->embed_fd < 0) {
        st = air_err(AIR_ERR_FORMAT, "store %s is incomplete: cannot open %s: %s; delete the "
                     "folder to rebuild it", s->dir, path, strerror(errno));
        goto out;
    }
    /* header + first entry are enough to locate rows */
    uint8_t buf[sizeof(air_lf_header) + sizeof(air_lf_entry)];
    uint64_t size;
    if ((st = air_lf_probe(path, &size)))
        goto out;
    if (pread(s->embed_fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf) {
        st = air_err(AIR_ERR_FORMAT, "%s: cannot read the header", path);
        goto out;
    }
    const air_lf_header *h = (const air_lf_header *)buf;
    const air_lf_entry *e = (const air_lf_entry *)(buf + sizeof *h);
    if (h->n_tensors < 1 || strcmp(e->name, AIR_T_TOK_EMBD) != 0 || e->dtype >= AIR_DT_COUNT ||
        e->shape[0] != s->hp.n_vocab || e->shape[1] != s->hp.n_embd) {
        st = air_err(AIR_ERR_FORMAT, "%s: the embedding table does not match the manifest", path);
        goto out;
    }
    s->embed_dtype = (air_dtype)e->dtype;
    s->embed_data_off = h->header_bytes + e->offset;
    s->embed_row_bytes = air_dtype_row_bytes(s->embed_dtype, s->hp.n_embd);
out:
    free(path);
    return st;
}

air_status air_store_open(const char *dir, air_store **out) {
    *out = NULL;
    air_store *s = calloc(1, sizeof *s);
    if (!s)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    s->embed_fd = -1;
    s->dir = strdup(dir);
    char *mpath = air_path_join(dir, "manifest.json");
    char *text = NULL;
    size_t len;
    cJSON *m = NULL;
    air_status st = air_read_file(mpath, &text, &len);
    if (st) {
        st = air_err(AIR_ERR_NOT_FOUND, "%s holds no complete layer store (no manifest.json); "
                     "split the model first", dir);
        goto fail;
    }
    m = cJSON_ParseWithLength(text, len);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(m, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(m, "version");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "airllm-layer-store") != 0) {
        st = air_err(AIR_ERR_FORMAT, "%s: not a layer-store manifest", mpath);
        goto fail;
    }
    if (!cJSON_IsNumber(ver) || ver->valueint != AIR_STORE_VERSION) {
        st = air_err(AIR_ERR_FORMAT, "%s: store version %d, this build reads version %d; delete "
                     "the folder to rebuild it", mpath, cJSON_IsNumber(ver) ? ver->valueint : -1,
                     AIR_STORE_VERSION);
        goto fail;
    }
    if ((st = air_hparams_from_json(cJSON_GetObjectItemCaseSensitive(m, "hparams"), mpath, &s->hp)))
        goto fail;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "compression");
    if (!cJSON_IsString(c) || !air_compression_parse(c->valuestring, &s->comp)) {
        st = air_err(AIR_ERR_FORMAT, "%s: unknown compression", mpath);
        goto fail;
    }
    s->n_units = s->hp.n_layer + 1;
    s->unit_path = calloc((size_t)s->n_units, sizeof(char *));
    s->unit_bytes = calloc((size_t)s->n_units, sizeof(uint64_t));
    for (int u = 0; u < s->n_units; u++) {
        char name[64];
        if (u == s->hp.n_layer)
            snprintf(name, sizeof name, "head.bin");
        else
            snprintf(name, sizeof name, "layer_%05d.bin", u);
        s->unit_path[u] = air_path_join(dir, name);
        if ((st = air_lf_probe(s->unit_path[u], &s->unit_bytes[u]))) {
            air_err_context(st, "store %s is damaged (delete the folder to rebuild it)", dir);
            goto fail;
        }
    }
    if ((st = open_embed(s)))
        goto fail;
    cJSON_Delete(m);
    free(text);
    free(mpath);
    *out = s;
    return AIR_OK;
fail:
    cJSON_Delete(m);
    free(text);
    free(mpath);
    air_store_close(s);
    return st;
}

const air_hparams *air_store_hparams(const air_store *s) { return &s->hp; }
air_compression air_store_compression(const air_store *s) { return s->comp; }
const char *air_store_dir(const air_store *s) { return s->dir; }
int air_store_n_units(const air_store *s) { return s->n_units; }
const char *air_store_unit_path(const air_store *s, int u) { return s->unit_path[u]; }
uint64_t air_store_unit_bytes(const air_store *s, int u) { return s->unit_bytes[u]; }

uint64_t air_store_total_bytes(const air_store *s) {
    uint64_t t = 0;
    for (int u = 0; u < s->n_units; u++)
        t += s->unit_bytes[u];
    return t;
}

air_status air_store_embed_rows(air_store *s, const int32_t *ids, int n, float *out) {
    void *row = malloc(s->embed_row_bytes);
    if (!row)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    air_status st = AIR_OK;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= s->hp.n_vocab) {
            st = air_err(AIR_ERR_INVALID_ARG, "token id %d at position %d is outside the "
                         "vocabulary (0..%d)", ids[i], i, s->hp.n_vocab - 1);
            break;
        }
        off_t off = (off_t)(s->embed_data_off + (uint64_t)ids[i] * s->embed_row_bytes);
        if (pread(s->embed_fd, row, s->embed_row_bytes, off) != (ssize_t)s->embed_row_bytes) {
            st = air_err(AIR_ERR_IO, "%s/embed.bin: cannot read the row of token %d at byte %lld",
                         s->dir, ids[i], (long long)off);
            break;
        }
        air_row_to_f32(s->embed_dtype, row, out + (size_t)i * s->hp.n_embd, s->hp.n_embd);
    }
    free(row);
    return st;
}
