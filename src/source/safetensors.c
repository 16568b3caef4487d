/*
 * safetensors.c - open a safetensors file: parse and validate the header,
 * keep a tensor table, read tensor bytes with pread.
 */
#include "source/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"

#define MAX_HEADER (100u << 20) /* the format's own limit is 100 MB */

static air_status read_at(int fd, void *dst, uint64_t n, uint64_t off, const char *path) {
    uint8_t *p = dst;
    while (n > 0) {
        ssize_t r = pread(fd, p, n > (1u << 30) ? (1u << 30) : n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return air_err(AIR_ERR_IO, "%s: read error at byte %llu: %s", path,
                           (unsigned long long)off, strerror(errno));
        if (r == 0)
            return air_err(AIR_ERR_FORMAT, "%s: unexpected end of file at byte %llu (truncated?)",
                           path, (unsigned long long)off);
        p += r;
        off += (uint64_t)r;
        n -= (uint64_t)r;
    }
    return AIR_OK;
}

static int parse_dtype(const char *s, air_dtype *dt, int *size) {
    static const struct {
        const char *name;
        int dt, size;
    } tab[] = {{"F32", AIR_DT_F32, 4},  {"F16", AIR_DT_F16, 2},     {"BF16", AIR_DT_BF16, 2},
               {"F64", AIR_DT_COUNT, 8}, {"I64", AIR_DT_COUNT, 8},  {"I32", AIR_DT_COUNT, 4},
               {"I16", AIR_DT_COUNT, 2}, {"I8", AIR_DT_COUNT, 1},   {"U8", AIR_DT_COUNT, 1},
               {"BOOL", AIR_DT_COUNT, 1}, {"F8_E4M3", AIR_DT_COUNT, 1}, {"F8_E5M2", AIR_DT_COUNT, 1},
               {"U16", AIR_DT_COUNT, 2}, {"U32", AIR_DT_COUNT, 4},  {"U64", AIR_DT_COUNT, 8}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(s, tab[i].name) == 0) {
            *dt = (air_dtype)tab[i].dt;
            *size = tab[i].size;
            return 1;
        }
    return 0;
}

void air_st_close(air_st_file *f) {
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    for (int i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    free(f);
}

static air_status parse_entry(air_st_file *f, const cJSON *e, air_st_tensor *t) {
    const char *path = f->path;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
        cJSON_GetArraySize(offs) != 2)
        return air_err(AIR_ERR_FORMAT,
                       "%s: header entry for tensor '%s' must have \"dtype\", \"shape\" and "
                       "\"data_offsets\": [begin, end]",
                       path, t->name);
    int esize;
    if (!parse_dtype(dt->valuestring, &t->dtype, &esize))
        return air_err(AIR_ERR_FORMAT, "%s: tensor '%s' has unknown dtype \"%s\"", path, t->name,
                       dt->valuestring);
    snprintf(t->dtype_str, sizeof t->dtype_str, "%s", dt->valuestring);
    t->n_dims = cJSON_GetArraySize(shape);
    if (t->n_dims > AIR_ST_MAX_DIMS)
        return air_err(AIR_ERR_FORMAT, "%s: tensor '%s' has %d dimensions (at most %d supported)",
                       path, t->name, t->n_dims, AIR_ST_MAX_DIMS);
    t->numel = 1;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) {
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 1e12 ||
            d->valuedouble != (double)(int64_t)d->valuedouble)
            return air_err(AIR_ERR_FORMAT, "%s: tensor '%s' has an invalid shape entry", path,
                           t->name);
        t->shape[i++] = (int64_t)d->valuedouble;
        if (t->shape[i - 1] != 0 && t->numel > INT64_MAX / 8 / t->shape[i - 1])
            return air_err(AIR_ERR_FORMAT, "%s: tensor '%s' shape overflows", path, t->name);
        t->numel *= t->shape[i - 1];
    }
    double b = cJSON_GetArrayItem(offs, 0)->valuedouble, en = cJSON_GetArrayItem(offs, 1)->valuedouble;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(offs, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(offs, 1)) ||
        b < 0 || en < b || en > 1.8e19)
        return air_err(AIR_ERR_FORMAT, "%s: tensor '%s' has invalid data_offsets", path, t->name);
    uint64_t begin = (uint64_t)b, end = (uint64_t)en;
    uint64_t data_len = f->file_size - f->data_start;
    if (end > data_len)
        return air_err(AIR_ERR_FORMAT,
                       "%s: tensor '%s' ends at byte %llu but the file is %llu bytes: the file "
                       "is truncated or corrupt; download it again",
                       path, t->name, (unsigned long long)(f->data_start + end),
                       (unsigned long long)f->file_size);
    if (end - begin != (uint64_t)t->numel * (uint64_t)esize)
        return air_err(AIR_ERR_FORMAT,
                       "%s: tensor '%s' holds %llu bytes but its shape and dtype %s need %llu",
                       path, t->name, (unsigned long long)(end - begin), t->dtype_str,
                       (unsigned long long)t->numel * (unsigned long long)esize);
    t->offset = f->data_start + begin;
    t->nbytes = end - begin;
    return AIR_OK;
}

air_status air_st_open(const char *path, air_st_file **out) {
    *out = NULL;
    air_st_file *f = calloc(1, sizeof *f);
    if (!f)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    f->fd = -1;
    f->path = strdup(path);
    air_status st = AIR_OK;
    char *hdr = NULL;
    cJSON *root = NULL;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        st = air_err(errno == ENOENT ? AIR_ERR_NOT_FOUND : AIR_ERR_IO, "cannot open %s: %s", path,
                     strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(f->fd, &sb) != 0) {
        st = air_err(AIR_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
        goto fail;
    }
    f->file_size = (uint64_t)sb.st_size;
    uint8_t lenb[8];
    if (f->file_size < 8) {
        st = air_err(AIR_ERR_FORMAT, "%s: file is %llu bytes, too short for a safetensors header",
                     path, (unsigned long long)f->file_size);
        goto fail;
    }
    if ((st = read_at(f->fd, lenb, 8, 0, path)))
        goto fail;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | lenb[i];
    if (hlen > MAX_HEADER || hlen > f->file_size - 8) {
        st = air_err(AIR_ERR_FORMAT,
                     "%s: header length %llu (byte 0) exceeds the file size %llu or the 100 MB "
                     "limit: not a safetensors file, or truncated",
                     path, (unsigned long long)hlen, (unsigned long long)f->file_size);
        goto fail;
    }
    f->data_start = 8 + hlen;
    hdr = malloc(hlen + 1);
    if (!hdr) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = read_at(f->fd, hdr, hlen, 8, path)))
        goto fail;
    hdr[hlen] = 0;
    const char *endp = NULL;
    root = cJSON_ParseWithLengthOpts(hdr, hlen, &endp, 0);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = endp ? (size_t)(endp - hdr) : 0;
        st = air_err(AIR_ERR_FORMAT, "%s: the JSON header is malformed near byte %zu", path,
                     (size_t)(8 + at));
        goto fail;
    }
    int n = cJSON_GetArraySize(root);
    f->tensors = calloc(n > 0 ? (size_t)n : 1, sizeof *f->tensors);
    if (!f->tensors) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0)
            continue;
        air_st_tensor *t = &f->tensors[f->n_tensors++];
        t->name = strdup(e->string);
        if ((st = parse_entry(f, e, t)))
            goto fail;
    }
    cJSON_Delete(root);
    free(hdr);
    *out = f;
    return AIR_OK;
fail:
    cJSON_Delete(root);
    free(hdr);
    air_st_close(f);
    return st;
}

const air_st_tensor *air_st_find(const air_st_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

air_status air_st_read(const air_st_file *f, const air_st_tensor *t, void *dst) {
    return read_at(f->fd, dst, t->nbytes, t->offset, f->path);
}
