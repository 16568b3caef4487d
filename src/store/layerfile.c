/*
 * layerfile.c - build, write, read and verify one layer-store file.
 */
#include "store/layerfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "util/error.h"

static uint64_t align_up(uint64_t v) { return (v + AIR_LF_ALIGN - 1) / AIR_LF_ALIGN * AIR_LF_ALIGN; }

void *air_lf_alloc(uint64_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, AIR_LF_ALIGN, bytes ? align_up(bytes) : AIR_LF_ALIGN) != 0)
        return NULL;
    return p;
}

const air_tensor *air_layer_get(const air_layer *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->t[i].name, name) == 0)
            return &l->t[i];
    return NULL;
}

/* ---------------------------------------------------------------------------
 * writing
 * ------------------------------------------------------------------------- */

void air_lf_builder_init(air_lf_builder *b, int unit) {
    memset(b, 0, sizeof *b);
    memcpy(b->h.magic, AIR_LF_MAGIC, 8);
    b->h.version = AIR_LF_VERSION;
    b->h.unit = unit;
}

air_status air_lf_builder_add(air_lf_builder *b, const char *name, air_dtype dt, int n_dims,
                              const int64_t shape[2], uint64_t nbytes, void **dst) {
    if (b->h.n_tensors >= AIR_LF_MAX_TENSORS || strlen(name) >= AIR_LF_NAME)
        return air_err(AIR_ERR_INTERNAL, "layer file: too many tensors or name too long (%s)", name);
    uint64_t off = b->h.data_bytes;
    uint64_t need = align_up(off + nbytes);
    if (need > b->cap) {
        uint64_t cap = b->cap ? b->cap : (1u << 20);
        while (cap < need)
            cap *= 2;
        void *nd = air_lf_alloc(cap);
        if (!nd)
            return air_err(AIR_ERR_NOMEM, "out of memory building a layer file (%llu bytes)",
                           (unsigned long long)cap);
        if (b->data)
            memcpy(nd, b->data, b->h.data_bytes);
        free(b->data);
        b->data = nd;
        b->cap = cap;
    }
    memset((char *)b->data + off, 0, need - off);
    air_lf_entry *e = &b->e[b->h.n_tensors++];
    memset(e, 0, sizeof *e);
    strncpy(e->name, name, AIR_LF_NAME - 1);
    e->dtype = (uint32_t)dt;
    e->n_dims = (uint32_t)n_dims;
    e->shape[0] = shape[0];
    e->shape[1] = n_dims == 2 ? shape[1] : 1;
    e->offset = off;
    e->nbytes = nbytes;
    b->h.data_bytes = need;
    *dst = (char *)b->data + off;
    return AIR_OK;
}

air_status air_lf_builder_write(air_lf_builder *b, const char *path, uint64_t *file_bytes,
                                uint64_t *file_xxh3) {
    uint32_t n = b->h.n_tensors;
    for (uint32_t i = 0; i < n; i++)
        b->e[i].xxh3 = XXH3_64bits((char *)b->data + b->e[i].offset, b->e[i].nbytes);
    b->h.header_bytes = align_up(sizeof(air_lf_header) + n * sizeof(air_lf_entry));
    b->h.table_xxh3 = XXH3_64bits(b->e, n * sizeof(air_lf_entry));
    b->h.data_xxh3 = XXH3_64bits(b->data, b->h.data_bytes);
    uint8_t *head = calloc(1, b->h.header_bytes);
    if (!head)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    memcpy(head, &b->h, sizeof b->h);
    memcpy(head + sizeof b->h, b->e, n * sizeof(air_lf_entry));

    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    snprintf(tmp, pl + 16, "%s.tmp", path);
    air_status st = AIR_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = air_err(AIR_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    const struct {
        const void *p;
        uint64_t n;
    } parts[2] = {{head, b->h.header_bytes}, {b->data, b->h.data_bytes}};
    for (int k = 0; k < 2 && !st; k++) {
        const char *p = parts[k].p;
        uint64_t left = parts[k].n;
        while (left > 0) {
            ssize_t w = write(fd, p, left > (1u << 30) ? (1u << 30) : left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                st = air_err(AIR_ERR_IO, "writing %s: %s%s", tmp, strerror(errno),
                             errno == ENOSPC ? " (the disk is full: free space or choose another "
                                               "cache folder)" : "");
                break;
            }
            p += w;
            left -= (uint64_t)w;
        }
    }
    if (!st && fsync(fd) != 0)
        st = air_err(AIR_ERR_IO, "flushing %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && !st)
        st = air_err(AIR_ERR_IO, "closing %s: %s", tmp, strerror(errno));
    if (!st && rename(tmp, path) != 0)
        st = air_err(AIR_ERR_IO, "renaming %s: %s", tmp, strerror(errno));
    if (st)
        unlink(tmp);
    else {
        if (file_bytes)
            *file_bytes = b->h.header_bytes + b->h.data_bytes;
        if (file_xxh3)
            *file_xxh3 = b->h.data_xxh3;
    }
out:
    free(tmp);
    free(head);
    return st;
}

void air_lf_builder_free(air_lf_builder *b) {
    free(b->data);
    b->data = NULL;
}

/* ---------------------------------------------------------------------------
 * reading
 * ------------------------------------------------------------------------- */

static air_status check_header(const char *path, const air_lf_header *h, uint64_t size) {
    if (memcmp(h->magic, AIR_LF_MAGIC, 8) != 0)
        return air_err(AIR_ERR_FORMAT, "%s: not a layer-store file (bad magic at byte 0); delete "
                       "the store folder to rebuild it", path);
    if (h->version != AIR_LF_VERSION)
        return air_err(AIR_ERR_FORMAT, "%s: layer file version %u, this build reads version %d; "
                       "delete the store folder to rebuild it", path, h->version, AIR_LF_VERSION);
    if (h->n_tensors > AIR_LF_MAX_TENSORS ||
        h->header_bytes < sizeof *h + h->n_tensors * sizeof(air_lf_entry) ||
        h->header_bytes % AIR_LF_ALIGN || h->data_bytes % AIR_LF_ALIGN)
        return air_err(AIR_ERR_FORMAT, "%s: corrupt layer file header (byte 0)", path);
    if (size != h->header_bytes + h->data_bytes)
        return air_err(AIR_ERR_FORMAT, "%s: file is %llu bytes, its header says %llu: truncated or "
                       "corrupt; delete the store folder to rebuild it", path,
                       (unsigned long long)size,
                       (unsigned long long)(h->header_bytes + h->data_bytes));
    return AIR_OK;
}

air_status air_lf_probe(const char *path, uint64_t *file_bytes) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return air_err(errno == ENOENT ? AIR_ERR_NOT_FOUND : AIR_ERR_IO, "cannot open %s: %s",
                       path, strerror(errno));
    air_lf_header h;
    struct stat sb;
    air_status st = AIR_OK;
    if (fstat(fd, &sb) != 0 || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
        st = air_err(AIR_ERR_FORMAT, "%s: cannot read the layer file header", path);
    else
        st = check_header(path, &h, (uint64_t)sb.st_size);
    close(fd);
    if (!st && file_bytes)
        *file_bytes = h.header_bytes + h.data_bytes;
    return st;
}

air_status air_lf_bind(const char *path, const void *buf, uint64_t size, air_layer *out) {
    const air_lf_header *h = buf;
    if (size < sizeof *h)
        return air_err(AIR_ERR_FORMAT, "%s: too short for a layer file", path);
    air_status st = check_header(path, h, size);
    if (st)
        return st;
    const air_lf_entry *e = (const air_lf_entry *)((const char *)buf + sizeof *h);
    if (XXH3_64bits(e, h->n_tensors * sizeof *e) != h->table_xxh3)
        return air_err(AIR_ERR_FORMAT, "%s: tensor table checksum mismatch (bytes 64..%zu): the "
                       "file is corrupt; delete the store folder to rebuild it", path,
                       (size_t)(64 + h->n_tensors * sizeof *e));
    const char *data = (const char *)buf + h->header_bytes;
    if (XXH3_64bits(data, h->data_bytes) != h->data_xxh3)
        return air_err(AIR_ERR_FORMAT, "%s: data checksum mismatch (bytes %llu..%llu): the file "
                       "is corrupt (disk error or an interrupted write); delete the store folder "
                       "to rebuild it", path, (unsigned long long)h->header_bytes,
                       (unsigned long long)size);
    out->unit = h->unit;
    out->n = (int)h->n_tensors;
    for (uint32_t i = 0; i < h->n_tensors; i++) {
        if (e[i].offset + e[i].nbytes > h->data_bytes || e[i].dtype >= AIR_DT_COUNT ||
            e[i].n_dims < 1 || e[i].n_dims > 2 || e[i].name[AIR_LF_NAME - 1] != 0)
            return air_err(AIR_ERR_FORMAT, "%s: tensor entry %u is corrupt", path, i);
        air_tensor *t = &out->t[i];
        t->name = e[i].name;
        t->dtype = (air_dtype)e[i].dtype;
        t->n_dims = (int)e[i].n_dims;
        t->shape[0] = e[i].shape[0];
        t->shape[1] = e[i].shape[1];
        t->data = data + e[i].offset;
        t->nbytes = e[i].nbytes;
    }
    return AIR_OK;
}

static air_status read_all(int fd, void *buf, uint64_t n, const char *path) {
    char *p = buf;
    uint64_t off = 0;
    while (off < n) {
        uint64_t chunk = n - off > (64u << 20) ? (64u << 20) : n - off;
        ssize_t r = pread(fd, p + off, chunk, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return air_err(AIR_ERR_IO, "%s: read error at byte %llu: %s", path,
                           (unsigned long long)off, strerror(errno));
        if (r == 0)
            return air_err(AIR_ERR_FORMAT, "%s: unexpected end of file at byte %llu", path,
                           (unsigned long long)off);
        off += (uint64_t)r;
    }
    return AIR_OK;
}

air_status air_lf_load(const char *path, void *buf, uint64_t cap, int direct, air_layer *out) {
    int fd = -1;
    if (direct)
        fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd < 0)
        fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return air_err(errno == ENOENT ? AIR_ERR_NOT_FOUND : AIR_ERR_IO, "cannot open %s: %s",
                       path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return air_err(AIR_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size > cap) {
        close(fd);
        return air_err(AIR_ERR_FORMAT, "%s: file is %llu bytes, larger than the manifest says "
                       "(%llu); delete the store folder to rebuild it", path,
                       (unsigned long long)size, (unsigned long long)cap);
    }
    air_status st = read_all(fd, buf, size, path);
    if (st == AIR_ERR_IO && direct) {
        /* some file systems accept O_DIRECT at open but not the read */
        close(fd);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        st = fd < 0 ? air_err(AIR_ERR_IO, "cannot open %s", path) : read_all(fd, buf, size, path);
    }
    if (fd >= 0)
        close(fd);
    if (st)
        return st;
    return air_lf_bind(path, buf, size, out);
}
