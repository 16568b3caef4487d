/*
 * store.c - open a complete layer store: verify the manifest, know every
 * unit file, its size and identity, verify the copied tokenizer files, read
 * embedding rows on demand (each verified against its row checksum).
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "store/store.h"
#include "text/chat_files.h"
#include "util/error.h"
#include "util/fileio.h"

struct air_store {
    char *dir;
    air_hparams hp;
    air_compression comp;
    uint64_t model_id;
    int n_units;
    char **unit_path;
    uint64_t *unit_bytes;
    uint64_t *unit_header_xxh3;
    /* embeddings */
    int embed_fd;
    air_dtype embed_dtype;
    uint64_t embed_data_off; /* absolute offset of row 0 */
    size_t embed_row_bytes;
    uint64_t *embed_row_xxh3; /* n_vocab */
};

int air_store_exists(const char *dir) {
    char *m = air_path_join(dir, "manifest.json");
    int ok = air_path_exists(m);
    free(m);
    return ok;
}

uint64_t air_store_disk_bytes(const char *dir) {
    uint64_t t = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *p = air_path_join(dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode))
            t += (uint64_t)sb.st_size;
        free(p);
    }
    if (d)
        closedir(d);
    return t;
}

static air_status read_manifest_named(const char *dir, const char *name, cJSON **out,
                                      int *old_version) {
    char *mpath = air_path_join(dir, name);
    char *text = NULL;
    size_t len;
    air_status st = air_read_file(mpath, &text, &len);
    if (st)
        st = strcmp(name, "manifest.json") == 0
                 ? air_err(AIR_ERR_NOT_FOUND, "%s holds no complete layer store (no "
                           "manifest.json); split the model first", dir)
                 : air_err(AIR_ERR_NOT_FOUND, "%s holds no complete part of a layer store for "
                           "these units (no %s); split that part first", dir, name);
    else
        st = air_manifest_parse(text, len, mpath, out, old_version);
    free(text);
    free(mpath);
    return st;
}

/* Whether the manifest `name` in dir is of the current format and of this
 * source content. */
static air_status check_named(const char *dir, const char *name, const char *fingerprint,
                              int *current) {
    *current = 0;
    char *p = air_path_join(dir, name);
    int exists = air_path_exists(p);
    free(p);
    if (!exists)
        return AIR_OK;
    cJSON *m = NULL;
    int old = 0;
    air_status st = read_manifest_named(dir, name, &m, &old);
    if (st)
        return old ? (air_err_clear(), AIR_OK) : st;
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(m, "source_fingerprint");
    *current = cJSON_IsString(fp) && fingerprint && strcmp(fp->valuestring, fingerprint) == 0;
    cJSON_Delete(m);
    return AIR_OK;
}

air_status air_store_check_part(const char *dir, const char *fingerprint, int first, int last,
                                int n_layer, int *current) {
    air_status st = check_named(dir, "manifest.json", fingerprint, current);
    if (st || *current || (first <= -1 && last >= n_layer))
        return st;
    char name[80];
    air_store_manifest_name(first, last, n_layer, name, sizeof name);
    return check_named(dir, name, fingerprint, current);
}

air_status air_store_check(const char *dir, const char *fingerprint, int *current) {
    return check_named(dir, "manifest.json", fingerprint, current);
}

void air_store_close(air_store *s) {
    if (!s)
        return;
    for (int i = 0; i < s->n_units; i++)
        free(s->unit_path[i]);
    free(s->unit_path);
    free(s->unit_bytes);
    free(s->unit_header_xxh3);
    free(s->embed_row_xxh3);
    if (s->embed_fd >= 0)
        close(s->embed_fd);
    free(s->dir);
    free(s);
}

static int parse_hex64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsString(v) || strlen(v->valuestring) != 16)
        return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v->valuestring, &end, 16);
    if (errno || *end)
        return 0;
    *out = x;
    return 1;
}

/* Reads exactly n bytes at off. */
static int pread_all(int fd, void *buf, size_t n, uint64_t off) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return 0;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 1;
}

/* The embeddings: header checked like any unit; the row checksum table read
 * and verified; the zero padding of the data section checked. The rows
 * themselves are verified one by one as they are read. */
static air_status open_embed(air_store *s, const air_lf_ident *want, uint64_t bytes) {
    char *path = air_path_join(s->dir, "embed.bin");
    air_status st = AIR_OK;
    air_lf_entry e[AIR_LF_MAX_TENSORS];
    air_lf_info info;
    uint8_t *pad = NULL;
    if ((st = air_lf_probe(path, want, &info, e)))
        goto out;
    s->embed_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->embed_fd < 0) {
        st = air_err(AIR_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    const air_lf_entry *t = &e[0], *r = &e[1];
    if (info.n_tensors != 2 || info.file_bytes != bytes || strcmp(t->name, AIR_T_TOK_EMBD) != 0 ||
        t->dtype >= AIR_DT_COUNT || t->n_dims != 2 || t->shape[0] != s->hp.n_vocab ||
        t->shape[1] != s->hp.n_embd || t->offset != 0 ||
        t->nbytes != (uint64_t)s->hp.n_vocab *
                         air_dtype_row_bytes((air_dtype)t->dtype, s->hp.n_embd) ||
        strcmp(r->name, AIR_T_TOK_EMBD ".rows") != 0 || r->dtype != AIR_LF_DT_ROWSUM ||
        r->shape[0] != s->hp.n_vocab || r->nbytes != (uint64_t)s->hp.n_vocab * 8 ||
        r->offset < t->nbytes) {
        st = air_err(AIR_ERR_FORMAT, "%s: the embedding table does not match the manifest; "
                     AIR_STORE_FIX, path);
        goto out;
    }
    s->embed_dtype = (air_dtype)t->dtype;
    s->embed_data_off = info.header_bytes;
    s->embed_row_bytes = air_dtype_row_bytes(s->embed_dtype, s->hp.n_embd);
    s->embed_row_xxh3 = malloc(r->nbytes);
    if (!s->embed_row_xxh3) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (!pread_all(s->embed_fd, s->embed_row_xxh3, r->nbytes, info.header_bytes + r->offset) ||
        XXH3_64bits(s->embed_row_xxh3, r->nbytes) != r->xxh3) {
        st = air_err(AIR_ERR_FORMAT, "%s: row checksum table mismatch (bytes %llu..%llu): the file "
                     "is corrupt; " AIR_STORE_FIX, path,
                     (unsigned long long)(info.header_bytes + r->offset),
                     (unsigned long long)(info.header_bytes + r->offset + r->nbytes));
        goto out;
    }
    /* the padding after each of the two tensors: zero, under 4096 bytes each */
    const uint64_t gap[2][2] = {{t->nbytes, r->offset},
                                {r->offset + r->nbytes, info.file_bytes - info.header_bytes}};
    pad = malloc(2 * AIR_LF_ALIGN);
    for (int g = 0; g < 2 && !st; g++) {
        uint64_t n = gap[g][1] - gap[g][0];
        int zero = pad && n < 2 * AIR_LF_ALIGN &&
                   pread_all(s->embed_fd, pad, (size_t)n, info.header_bytes + gap[g][0]);
        for (uint64_t i = 0; zero && i < n; i++)
            zero = pad[i] == 0;
        if (!zero)
            st = air_err(AIR_ERR_FORMAT, "%s: padding at bytes %llu..%llu is not zero: the file is "
                         "corrupt; " AIR_STORE_FIX, path,
                         (unsigned long long)(info.header_bytes + gap[g][0]),
                         (unsigned long long)(info.header_bytes + gap[g][1]));
    }
out:
    free(pad);
    free(path);
    return st;
}

/* A copied file's name: a plain name, or one inside the named chat templates'
 * folder; nothing that could leave the store folder. */
static int copy_name_ok(const char *name) {
    const char *slash = strchr(name, '/');
    size_t nd = strlen(AIR_CHAT_NAMED_DIR);
    if (slash && ((size_t)(slash - name) != nd || strncmp(name, AIR_CHAT_NAMED_DIR, nd) != 0))
        return 0;
    const char *base = slash ? slash + 1 : name;
    return *base && base[0] != '.' && !strchr(base, '/');
}

/* A copied text file (tokenizer.json ...): present, of the recorded size and
 * checksum. */
static air_status check_copy(const char *dir, const char *name, const cJSON *f) {
    uint64_t want;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(f, "bytes");
    if (!parse_hex64(cJSON_GetObjectItemCaseSensitive(f, "xxh3"), &want) || !cJSON_IsNumber(b) ||
        !copy_name_ok(name))
        return air_err(AIR_ERR_FORMAT, "%s/manifest.json: entry of %s is malformed; "
                       AIR_STORE_FIX, dir, name);
    char *p = air_path_join(dir, name);
    char *data = NULL;
    size_t len = 0;
    air_status st = air_read_file(p, &data, &len);
    if (st)
        st = air_err(AIR_ERR_FORMAT, "store %s is incomplete: cannot read %s; " AIR_STORE_FIX, dir,
                     p);
    else if ((double)len != b->valuedouble || XXH3_64bits(data, len) != want)
        st = air_err(AIR_ERR_FORMAT, "%s: checksum mismatch (the copy of the source's file was "
                     "edited or is corrupt); " AIR_STORE_FIX, p);
    free(data);
    free(p);
    return st;
}

static char *unit_file_name(int unit, int n_layer, char *buf, size_t size) {
    if (unit < 0)
        snprintf(buf, size, "embed.bin");
    else if (unit == n_layer)
        snprintf(buf, size, "head.bin");
    else
        snprintf(buf, size, "layer_%05d.bin", unit);
    return buf;
}

/* n_layer of a store folder that holds only parts: from the hparams of the
 * first part manifest found (0 when there is none). */
static int part_n_layer(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && !n && (e = readdir(d))) {
        if (strncmp(e->d_name, "manifest-units-", 15) != 0)
            continue;
        cJSON *m = NULL;
        int old = 0;
        if (read_manifest_named(dir, e->d_name, &m, &old) == AIR_OK) {
            const cJSON *h = cJSON_GetObjectItemCaseSensitive(m, "hparams");
            const cJSON *nl = cJSON_GetObjectItemCaseSensitive(h, "n_layer");
            n = cJSON_IsNumber(nl) ? nl->valueint : 0;
        }
        air_err_clear();
        cJSON_Delete(m);
    }
    if (d)
        closedir(d);
    return n;
}

/* The unit a unit file name stands for: -1 embed.bin, n_layer head.bin,
 * l layer_<l>.bin; -2 for any other file (a copied text file). */
static int unit_of_name(const char *name, int n_layer) {
    if (strcmp(name, "embed.bin") == 0)
        return -1;
    if (strcmp(name, "head.bin") == 0)
        return n_layer;
    char buf[64];
    int l;
    if (sscanf(name, "layer_%d.bin", &l) == 1 && l >= 0 && l < n_layer &&
        strcmp(name, unit_file_name(l, n_layer, buf, sizeof buf)) == 0)
        return l;
    return -2;
}

air_status air_store_open(const char *dir, air_store **out) {
    return air_store_open_part(dir, -1, INT32_MAX, out);
}

air_status air_store_open_part(const char *dir, int first, int last, air_store **out) {
    *out = NULL;
    air_store *s = calloc(1, sizeof *s);
    if (!s)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    s->embed_fd = -1;
    s->dir = strdup(dir);
    /* the whole store's manifest, else the part's (it names first..last,
     * which needs n_layer: read from the whole manifest's or any part's
     * hparams, so the part is found by the range the caller gives) */
    char mname[80] = "manifest.json";
    int whole = air_store_exists(dir);
    if (!whole && (first > -1 || last < INT32_MAX)) {
        int n_layer = part_n_layer(dir);
        if (n_layer > 0)
            air_store_manifest_name(first, last < n_layer ? last : n_layer, n_layer, mname,
                                    sizeof mname);
    }
    char *mpath = air_path_join(dir, mname);
    cJSON *m = NULL;
    int old;
    air_status st = read_manifest_named(dir, mname, &m, &old);
    if (st)
        goto fail;
    if ((st = air_hparams_from_json(cJSON_GetObjectItemCaseSensitive(m, "hparams"), mpath, &s->hp)))
        goto fail;
    if (last > s->hp.n_layer)
        last = s->hp.n_layer;
    if (first < -1)
        first = -1;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "compression");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files");
    if (!cJSON_IsString(c) || !air_compression_parse(c->valuestring, &s->comp) ||
        !parse_hex64(cJSON_GetObjectItemCaseSensitive(m, "model_id"), &s->model_id) ||
        !cJSON_IsArray(files) || cJSON_GetArraySize(files) < (whole ? s->hp.n_layer + 2 : last - first + 1)) {
        st = air_err(AIR_ERR_FORMAT, "%s: compression, model_id or files missing or malformed; "
                     AIR_STORE_FIX, mpath);
        goto fail;
    }
    s->n_units = s->hp.n_layer + 1;
    s->unit_path = calloc((size_t)s->n_units, sizeof(char *));
    s->unit_bytes = calloc((size_t)s->n_units, sizeof(uint64_t));
    s->unit_header_xxh3 = calloc((size_t)s->n_units, sizeof(uint64_t));
    if (!s->unit_path || !s->unit_bytes || !s->unit_header_xxh3) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* the unit files (embed.bin, layer_*.bin, head.bin: in unit order in a
     * whole store's manifest), then the copied text files; units outside
     * first..last are not opened */
    int k = 0, prev = -2;
    const cJSON *f;
    cJSON_ArrayForEach(f, files) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *by = cJSON_GetObjectItemCaseSensitive(f, "bytes");
        if (!cJSON_IsString(nm) || !cJSON_IsNumber(by)) {
            st = air_err(AIR_ERR_FORMAT, "%s: files[%d] is malformed; " AIR_STORE_FIX, mpath, k);
            goto fail;
        }
        int unit = unit_of_name(nm->valuestring, s->hp.n_layer);
        k++;
        if (unit == -2 && prev >= first && (prev >= last || prev == s->hp.n_layer)) {
            if ((st = check_copy(dir, nm->valuestring, f)))
                goto fail;
            continue;
        }
        char name[64];
        air_lf_ident want = {unit, (uint32_t)s->hp.n_layer, s->model_id, 0};
        if (unit != (prev == -2 ? (whole ? -1 : first) : prev + 1) ||
            strcmp(nm->valuestring, unit_file_name(unit, s->hp.n_layer, name, sizeof name)) != 0 ||
            !parse_hex64(cJSON_GetObjectItemCaseSensitive(f, "header_xxh3"), &want.header_xxh3)) {
            unit_file_name(prev == -2 ? (whole ? -1 : first) : prev + 1, s->hp.n_layer, name,
                           sizeof name);
            st = air_err(AIR_ERR_FORMAT, "%s: files[%d] should be %s with its header checksum; "
                         AIR_STORE_FIX, mpath, k - 1, name);
            goto fail;
        }
        prev = unit;
        if (unit < first || unit > last)
            continue;
        if (unit < 0) {
            if ((st = open_embed(s, &want, (uint64_t)by->valuedouble)))
                goto fail;
            continue;
        }
        s->unit_path[unit] = air_path_join(dir, name);
        s->unit_header_xxh3[unit] = want.header_xxh3;
        air_lf_info info;
        if ((st = air_lf_probe(s->unit_path[unit], &want, &info, NULL)))
            goto fail;
        if (info.file_bytes != (uint64_t)by->valuedouble) {
            st = air_err(AIR_ERR_FORMAT, "%s: %llu bytes, the manifest says %.0f; " AIR_STORE_FIX,
                         s->unit_path[unit], (unsigned long long)info.file_bytes, by->valuedouble);
            goto fail;
        }
        s->unit_bytes[unit] = info.file_bytes;
    }
    if (prev < last) {
        char name[64];
        st = air_err(AIR_ERR_FORMAT, "%s lists no %s; " AIR_STORE_FIX, mpath,
                     unit_file_name(prev + 1, s->hp.n_layer, name, sizeof name));
        goto fail;
    }
    cJSON_Delete(m);
    free(mpath);
    *out = s;
    return AIR_OK;
fail:
    cJSON_Delete(m);
    free(mpath);
    air_store_close(s);
    return st;
}

const air_hparams *air_store_hparams(const air_store *s) { return &s->hp; }
air_compression air_store_compression(const air_store *s) { return s->comp; }
const char *air_store_dir(const air_store *s) { return s->dir; }
int air_store_n_units(const air_store *s) { return s->n_units; }
const char *air_store_unit_path(const air_store *s, int u) {
    return s->unit_path[u] ? s->unit_path[u] : "(a unit another pipeline rank holds)";
}
int air_store_has_unit(const air_store *s, int u) {
    return u < 0 ? s->embed_fd >= 0 : u < s->n_units && s->unit_path[u] != NULL;
}
uint64_t air_store_unit_bytes(const air_store *s, int u) { return s->unit_bytes[u]; }

uint64_t air_store_total_bytes(const air_store *s) {
    uint64_t t = 0;
    for (int u = 0; u < s->n_units; u++)
        t += s->unit_bytes[u];
    return t;
}

air_status air_store_load_unit(const air_store *s, int u, void *buf, uint64_t cap, uint64_t bytes,
                               int flags, air_layer *out) {
    air_lf_ident want = {u, (uint32_t)s->hp.n_layer, s->model_id, s->unit_header_xxh3[u]};
    return air_lf_load_prefix(s->unit_path[u], buf, cap, bytes, flags, &want, out);
}

air_status air_store_embed_rows(air_store *s, const int32_t *ids, int n, float *out) {
    if (s->embed_fd < 0)
        return air_err(AIR_ERR_INTERNAL, "%s: this part of the store holds no embeddings (another "
                       "pipeline rank reads them)", s->dir);
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
        uint64_t off = s->embed_data_off + (uint64_t)ids[i] * s->embed_row_bytes;
        if (!pread_all(s->embed_fd, row, s->embed_row_bytes, off)) {
            st = air_err(AIR_ERR_IO, "%s/embed.bin: cannot read the row of token %d at byte %llu",
                         s->dir, ids[i], (unsigned long long)off);
            break;
        }
        if (XXH3_64bits(row, s->embed_row_bytes) != s->embed_row_xxh3[ids[i]]) {
            st = air_err(AIR_ERR_FORMAT, "%s/embed.bin: checksum mismatch in the row of token %d "
                         "(bytes %llu..%llu): the file is corrupt; " AIR_STORE_FIX, s->dir,
                         ids[i], (unsigned long long)off,
                         (unsigned long long)(off + s->embed_row_bytes));
            break;
        }
        air_row_to_f32(s->embed_dtype, row, out + (size_t)i * s->hp.n_embd, s->hp.n_embd);
    }
    free(row);
    return st;
}
