/*
 * layerfile.c - build, write, read and verify one layer-store file.
 */
#include "store/layerfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "model/arch.h"
#include "util/error.h"
#include "util/xxh3.h"

/* A layer file that cannot be opened (errno set): a missing one is a store
 * that lost a file. */
static air_status open_error(const char *path) {
    if (errno == ENOENT)
        return air_err(AIR_ERR_NOT_FOUND, "cannot open %s: %s (the store is missing this file); "
                       AIR_STORE_FIX, path, strerror(errno));
    return air_err(AIR_ERR_IO, "cannot open %s: %s", path, strerror(errno));
}

static uint64_t align_up(uint64_t v) { return (v + AIR_LF_ALIGN - 1) / AIR_LF_ALIGN * AIR_LF_ALIGN; }

void *air_lf_alloc(uint64_t bytes) {
    void *p = NULL;
    /* a large buffer (a unit, a streaming slot) on 2 MiB boundaries and, where
     * the kernel allows, in huge pages: a 512th of the page faults when it is
     * first filled, and of the TLB misses when it is read */
    const uint64_t huge = 2u << 20;
    int big = bytes >= 4 * huge;
    if (posix_memalign(&p, big ? huge : AIR_LF_ALIGN, bytes ? align_up(bytes) : AIR_LF_ALIGN) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (big)
        (void)madvise(p, align_up(bytes) / huge * huge, MADV_HUGEPAGE);
#endif
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

void air_lf_builder_init(air_lf_builder *b, const air_lf_ident *id) {
    memset(b, 0, sizeof *b);
    memcpy(b->h.magic, AIR_LF_MAGIC, 8);
    b->h.version = AIR_LF_VERSION;
    b->h.unit = id->unit;
    b->h.n_layer = id->n_layer;
    b->h.model_id = id->model_id;
}

void air_lf_builder_reset(air_lf_builder *b, const air_lf_ident *id) {
    air_lf_builder keep = *b;
    air_lf_builder_init(b, id);
    b->e = keep.e;
    b->e_cap = keep.e_cap;
    b->data = keep.data;
    b->cap = keep.cap;
}

uint64_t air_lf_data_bytes(uint64_t nbytes) { return align_up(nbytes); }

/* Grows the data buffer to at least need bytes, keeping what it holds. */
static air_status grow_data(air_lf_builder *b, uint64_t need) {
    if (need <= b->cap)
        return AIR_OK;
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
    return AIR_OK;
}

air_status air_lf_builder_reserve(air_lf_builder *b, uint64_t data_bytes) {
    if (data_bytes <= b->cap)
        return AIR_OK;
    if (b->h.data_bytes == 0) { /* nothing to keep: exactly this much, no copy */
        void *nd = air_lf_alloc(data_bytes);
        if (!nd)
            return air_err(AIR_ERR_NOMEM, "out of memory building a layer file (%llu bytes)",
                           (unsigned long long)data_bytes);
        free(b->data);
        b->data = nd;
        b->cap = align_up(data_bytes);
        return AIR_OK;
    }
    return grow_data(b, data_bytes);
}

air_status air_lf_builder_add(air_lf_builder *b, const char *name, air_dtype dt, int n_dims,
                              const int64_t shape[2], uint64_t nbytes, void **dst) {
    if (b->h.n_tensors >= AIR_LF_MAX_ENTRIES || strlen(name) >= AIR_LF_NAME)
        return air_err(AIR_ERR_INTERNAL, "layer file: too many tensors or name too long (%s)", name);
    if (b->h.n_tensors >= b->e_cap) {
        uint32_t cap = b->e_cap ? b->e_cap * 2 : 32;
        air_lf_entry *ne = realloc(b->e, sizeof *ne * cap);
        if (!ne)
            return air_err(AIR_ERR_NOMEM, "out of memory building a layer file");
        b->e = ne;
        b->e_cap = cap;
    }
    uint64_t off = b->h.data_bytes;
    uint64_t need = align_up(off + nbytes);
    air_status st = grow_data(b, need);
    if (st)
        return st;
    memset((char *)b->data + off + nbytes, 0, need - off - nbytes); /* the padding */
    air_lf_entry *e = &b->e[b->h.n_tensors++];
    memset(e, 0, sizeof *e);
    b->summed = 0;
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

static uint64_t header_bytes_for(uint32_t n_tensors) {
    return align_up(sizeof(air_lf_header) + n_tensors * sizeof(air_lf_entry));
}

/* XXH3 of a header region with its header_xxh3 field read as 0. */
static uint64_t header_sum(const void *region, uint64_t n) {
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    const char *p = region;
    size_t at = offsetof(air_lf_header, header_xxh3);
    uint64_t zero = 0;
    XXH3_64bits_update(&st, p, at);
    XXH3_64bits_update(&st, &zero, sizeof zero);
    XXH3_64bits_update(&st, p + at + sizeof zero, n - at - sizeof zero);
    return XXH3_64bits_digest(&st);
}

int air_lf_builder_sum_next(air_lf_builder *b, uint32_t upto) {
    if (b->n_summed >= b->h.n_tensors || b->n_summed >= upto)
        return 0;
    if (b->n_summed == 0 && b->summed_to == 0)
        air_xxh3_reset(&b->data_sum);
    air_lf_entry *e = &b->e[b->n_summed++];
    const char *data = b->data;
    if (e->offset > b->summed_to) /* the padding before it */
        air_xxh3_update(&b->data_sum, data + b->summed_to, e->offset - b->summed_to);
    air_xxh3_state one;
    air_xxh3_reset(&one);
    const size_t piece = 256 * 1024; /* stays in L2 for the second hash */
    for (uint64_t k = 0; k < e->nbytes; k += piece) {
        size_t len = e->nbytes - k < piece ? (size_t)(e->nbytes - k) : piece;
        air_xxh3_update(&one, data + e->offset + k, len);
        air_xxh3_update(&b->data_sum, data + e->offset + k, len);
    }
    e->xxh3 = air_xxh3_digest(&one);
    b->summed_to = e->offset + e->nbytes;
    return 1;
}

void air_lf_builder_sums(air_lf_builder *b) {
    while (air_lf_builder_sum_next(b, b->h.n_tensors))
        ;
    if (b->h.n_tensors == 0)
        air_xxh3_reset(&b->data_sum);
    if (b->h.data_bytes > b->summed_to)
        air_xxh3_update(&b->data_sum, (const char *)b->data + b->summed_to,
                        b->h.data_bytes - b->summed_to);
    b->summed_to = b->h.data_bytes;
    b->h.data_xxh3 = air_xxh3_digest(&b->data_sum);
    b->summed = 1;
}

/* Writes the n parts one after the other from offset 0, in one system call
 * when it takes them all (with O_DIRECT, the header and the data reach the
 * disk in one round trip); with O_DIRECT refused (EINVAL: a file system
 * without it), goes on buffered. */
static air_status write_parts(int fd, struct iovec *iov, int n, const char *tmp) {
    off_t at = 0;
    while (n > 0) {
        ssize_t w = pwritev(fd, iov, n, at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EINVAL && (fcntl(fd, F_GETFL) & O_DIRECT) &&
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT) == 0)
            continue;
        if (w <= 0)
            return air_err(AIR_ERR_IO, "writing %s: %s%s", tmp,
                           w < 0 ? strerror(errno) : "no progress",
                           w < 0 && errno == ENOSPC ? " (the disk is full: free space or choose "
                                                      "another cache folder)" : "");
        at += w;
        for (; n > 0 && (size_t)w >= iov[0].iov_len; iov++, n--)
            w -= (ssize_t)iov[0].iov_len;
        if (n > 0) {
            iov[0].iov_base = (char *)iov[0].iov_base + w;
            iov[0].iov_len -= (size_t)w;
        }
    }
    return AIR_OK;
}

air_status air_lf_builder_write_start(air_lf_builder *b, const char *path, air_lf_pending *pw) {
    memset(pw, 0, sizeof *pw);
    pw->fd = -1;
    uint32_t n = b->h.n_tensors;
    if (!b->summed)
        air_lf_builder_sums(b);
    b->h.header_bytes = header_bytes_for(n);
    uint8_t *head = air_lf_alloc(b->h.header_bytes); /* aligned for O_DIRECT */
    if (!head)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    memset(head, 0, b->h.header_bytes);
    b->h.header_xxh3 = 0;
    memcpy(head, &b->h, sizeof b->h);
    memcpy(head + sizeof b->h, b->e, n * sizeof(air_lf_entry));
    b->h.header_xxh3 = header_sum(head, b->h.header_bytes);
    memcpy(head, &b->h, sizeof b->h);

    /* the temp name is unique to this process: two writers never share one */
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 32);
    if (!tmp) {
        free(head);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    snprintf(tmp, pl + 32, "%s.tmp.%ld", path, (long)getpid());
    air_status st = AIR_OK;
    /* O_DIRECT: the data goes from this buffer to the disk, without a copy
     * into the page cache (every part is 4096-aligned, in address and size) */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0644);
    if (fd < 0 && errno == EINVAL)
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = air_err(AIR_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        free(head);
        return st;
    }
    struct iovec iov[2] = {{head, b->h.header_bytes}, {b->data, b->h.data_bytes}};
    st = write_parts(fd, iov, b->h.data_bytes ? 2 : 1, tmp);
    free(head);
    if (st) {
        close(fd);
        unlink(tmp);
        free(tmp);
        return st;
    }
    pw->fd = fd;
    pw->tmp = tmp;
    pw->path = path;
    pw->info.file_bytes = b->h.header_bytes + b->h.data_bytes;
    pw->info.header_bytes = b->h.header_bytes;
    pw->info.header_xxh3 = b->h.header_xxh3;
    pw->info.n_tensors = n;
    return AIR_OK;
}

air_status air_lf_write_finish(air_lf_pending *pw, air_lf_info *info) {
    air_status st = AIR_OK;
    if (fsync(pw->fd) != 0)
        st = air_err(AIR_ERR_IO, "flushing %s: %s", pw->tmp, strerror(errno));
    if (close(pw->fd) != 0 && !st)
        st = air_err(AIR_ERR_IO, "closing %s: %s", pw->tmp, strerror(errno));
    if (!st && rename(pw->tmp, pw->path) != 0)
        st = air_err(AIR_ERR_IO, "renaming %s: %s", pw->tmp, strerror(errno));
    if (st)
        unlink(pw->tmp);
    else if (info)
        *info = pw->info;
    free(pw->tmp);
    pw->tmp = NULL;
    pw->fd = -1;
    return st;
}

air_status air_lf_builder_write(air_lf_builder *b, const char *path, air_lf_info *info) {
    air_lf_pending pw;
    air_status st = air_lf_builder_write_start(b, path, &pw);
    return st ? st : air_lf_write_finish(&pw, info);
}

void air_lf_builder_free(air_lf_builder *b) {
    free(b->data);
    b->data = NULL;
    b->cap = 0;
    free(b->e);
    b->e = NULL;
    b->e_cap = 0;
}

/* ---------------------------------------------------------------------------
 * reading
 * ------------------------------------------------------------------------- */

static const char *unit_name(int32_t unit, uint32_t n_layer, char *buf, size_t size) {
    if (unit == -1)
        snprintf(buf, size, "the embeddings");
    else if (unit >= 0 && (uint32_t)unit == n_layer)
        snprintf(buf, size, "the output head");
    else
        snprintf(buf, size, "layer %d", unit);
    return buf;
}

/* The fixed fields of the first 64 bytes, before the header checksum can be
 * computed (it needs header_bytes). */
static air_status check_fixed(const char *path, const air_lf_header *h, uint64_t size) {
    if (memcmp(h->magic, AIR_LF_MAGIC, 8) != 0)
        return air_err(AIR_ERR_FORMAT, "%s: not a layer-store file (bad magic at byte 0); "
                       AIR_STORE_FIX, path);
    if (h->version != AIR_LF_VERSION)
        return air_err(AIR_ERR_FORMAT, "%s: layer file version %u, this build reads version %d; "
                       AIR_STORE_FIX, path, h->version, AIR_LF_VERSION);
    if (h->n_tensors > AIR_LF_MAX_ENTRIES || h->header_bytes != header_bytes_for(h->n_tensors) ||
        h->data_bytes % AIR_LF_ALIGN)
        return air_err(AIR_ERR_FORMAT, "%s: corrupt layer file header (bytes 12..32); "
                       AIR_STORE_FIX, path);
    if (size < h->header_bytes || size - h->header_bytes != h->data_bytes)
        return air_err(AIR_ERR_FORMAT, "%s: file is %llu bytes, its header says %llu: truncated or "
                       "corrupt; " AIR_STORE_FIX, path, (unsigned long long)size,
                       (unsigned long long)(h->header_bytes + h->data_bytes));
    return AIR_OK;
}

/* The header region: checksum, identity, entries. */
static air_status check_region(const char *path, const uint8_t *region, const air_lf_ident *want) {
    const air_lf_header *h = (const air_lf_header *)region;
    if (header_sum(region, h->header_bytes) != h->header_xxh3)
        return air_err(AIR_ERR_FORMAT, "%s: header checksum mismatch (bytes 0..%llu): the file is "
                       "corrupt; " AIR_STORE_FIX, path, (unsigned long long)h->header_bytes);
    if (want && (h->unit != want->unit || h->n_layer != want->n_layer ||
                 h->model_id != want->model_id ||
                 (want->header_xxh3 && h->header_xxh3 != want->header_xxh3))) {
        char is[32], should[32];
        return air_err(AIR_ERR_FORMAT, "%s holds %s of a %u-layer model (model id %016llx), the "
                       "manifest expects %s of a %u-layer model (model id %016llx) with header "
                       "checksum %016llx here: files were moved, swapped or mixed from another "
                       "store; " AIR_STORE_FIX, path,
                       unit_name(h->unit, h->n_layer, is, sizeof is), h->n_layer,
                       (unsigned long long)h->model_id,
                       unit_name(want->unit, want->n_layer, should, sizeof should), want->n_layer,
                       (unsigned long long)want->model_id, (unsigned long long)want->header_xxh3);
    }
    const air_lf_entry *e = (const air_lf_entry *)(region + sizeof *h);
    for (uint32_t i = 0; i < h->n_tensors; i++)
        if (e[i].offset % AIR_LF_ALIGN || e[i].offset > h->data_bytes ||
            e[i].nbytes > h->data_bytes - e[i].offset ||
            (e[i].dtype >= AIR_DT_COUNT && e[i].dtype != AIR_LF_DT_ROWSUM) || e[i].n_dims < 1 ||
            e[i].n_dims > 2 || e[i].name[AIR_LF_NAME - 1] != 0)
            return air_err(AIR_ERR_FORMAT, "%s: tensor entry %u is corrupt; " AIR_STORE_FIX, path, i);
    return AIR_OK;
}

air_status air_lf_probe(const char *path, const air_lf_ident *want, air_lf_info *info,
                        air_lf_entry *entries) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return open_error(path);
    air_lf_header h;
    struct stat sb;
    uint8_t *region = NULL;
    air_status st = AIR_OK;
    if (fstat(fd, &sb) != 0 || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
        st = air_err(AIR_ERR_FORMAT, "%s: cannot read the layer file header; " AIR_STORE_FIX, path);
    else
        st = check_fixed(path, &h, (uint64_t)sb.st_size);
    if (!st) {
        region = malloc(h.header_bytes);
        if (!region)
            st = air_err(AIR_ERR_NOMEM, "out of memory");
        else if (pread(fd, region, h.header_bytes, 0) != (ssize_t)h.header_bytes)
            st = air_err(AIR_ERR_IO, "%s: cannot read the layer file header: %s", path,
                         strerror(errno));
        else
            st = check_region(path, region, want);
    }
    close(fd);
    if (!st) {
        if (info) {
            info->file_bytes = h.header_bytes + h.data_bytes;
            info->header_bytes = h.header_bytes;
            info->header_xxh3 = h.header_xxh3;
            info->n_tensors = h.n_tensors;
        }
        if (entries) /* the first AIR_LF_MAX_TENSORS: a MoE layer's table is longer */
            memcpy(entries, region + sizeof h,
                   (h.n_tensors < AIR_LF_MAX_TENSORS ? h.n_tensors : AIR_LF_MAX_TENSORS) *
                       sizeof(air_lf_entry));
    }
    free(region);
    return st;
}

/* Binds the dense tensors of a checked header region (experts are read on
 * demand, by range: runtime/experts.c); data: the data section, of which
 * data_avail bytes are present; verify_each: check each bound tensor's own
 * checksum (a prefix load, where the whole-data checksum cannot be made). */
static air_status bind_entries(const char *path, const air_lf_header *h, const air_lf_entry *e,
                               const char *data, uint64_t data_avail, int verify_each,
                               air_layer *out) {
    out->unit = h->unit;
    out->n = 0;
    for (uint32_t i = 0; i < h->n_tensors; i++) {
        if (air_lf_expert_of(e[i].name) >= 0)
            continue;
        if (out->n >= AIR_LF_MAX_TENSORS)
            return air_err(AIR_ERR_FORMAT, "%s: more than %d dense tensors; " AIR_STORE_FIX, path,
                           AIR_LF_MAX_TENSORS);
        if (e[i].offset + e[i].nbytes > data_avail)
            return air_err(AIR_ERR_FORMAT, "%s: dense tensor '%s' lies past the dense part of the "
                           "file (corrupt table); " AIR_STORE_FIX, path, e[i].name);
        if (verify_each) {
            air_status st = air_lf_verify_entry(path, h, &e[i], data + e[i].offset);
            if (st)
                return st;
        }
        air_tensor *t = &out->t[out->n++];
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

air_status air_lf_check_data(const char *path, const void *buf) {
    const air_lf_header *h = buf;
    const char *data = (const char *)buf + h->header_bytes;
    if (air_xxh3(data, h->data_bytes) != h->data_xxh3)
        return air_err(AIR_ERR_FORMAT, "%s: data checksum mismatch (bytes %llu..%llu): the file "
                       "is corrupt (disk error or an interrupted write); " AIR_STORE_FIX, path,
                       (unsigned long long)h->header_bytes,
                       (unsigned long long)(h->header_bytes + h->data_bytes));
    return AIR_OK;
}

/* air_lf_bind, the data checksum left to the caller when check_data is 0. */
static air_status bind_whole(const char *path, const void *buf, uint64_t size,
                             const air_lf_ident *want, int check_data, air_layer *out) {
    const air_lf_header *h = buf;
    if (size < sizeof *h)
        return air_err(AIR_ERR_FORMAT, "%s: too short for a layer file; " AIR_STORE_FIX, path);
    air_status st = check_fixed(path, h, size);
    if (!st)
        st = check_region(path, buf, want);
    if (st)
        return st;
    const air_lf_entry *e = (const air_lf_entry *)((const char *)buf + sizeof *h);
    if (check_data && (st = air_lf_check_data(path, buf)))
        return st;
    return bind_entries(path, h, e, (const char *)buf + h->header_bytes, h->data_bytes, 0, out);
}

air_status air_lf_bind(const char *path, const void *buf, uint64_t size, const air_lf_ident *want,
                       air_layer *out) {
    return bind_whole(path, buf, size, want, 1, out);
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

static air_status read_all_at(int fd, void *buf, uint64_t n, uint64_t at, const char *path) {
    char *p = buf;
    uint64_t off = 0;
    while (off < n) {
        ssize_t r = pread(fd, p + off, n - off, (off_t)(at + off));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return air_err(AIR_ERR_FORMAT, "%s: cannot read bytes %llu..%llu", path,
                           (unsigned long long)(at + off), (unsigned long long)(at + n));
        off += (uint64_t)r;
    }
    return AIR_OK;
}

air_status air_lf_load(const char *path, void *buf, uint64_t cap, int direct,
                       const air_lf_ident *want, air_layer *out) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return open_error(path);
    if ((uint64_t)sb.st_size > cap)
        return air_err(AIR_ERR_FORMAT, "%s: file is %llu bytes, larger than the manifest says "
                       "(%llu); " AIR_STORE_FIX, path, (unsigned long long)sb.st_size,
                       (unsigned long long)cap);
    return air_lf_load_prefix(path, buf, cap, (uint64_t)sb.st_size, direct, want, out);
}

/* ---------------------------------------------------------------------------
 * mixture-of-experts layers: the dense prefix and expert ranges
 * ------------------------------------------------------------------------- */

int air_lf_expert_of(const char *name) {
    size_t pl = strlen(AIR_T_EXP_PREFIX);
    if (strncmp(name, AIR_T_EXP_PREFIX, pl) != 0)
        return -1;
    int v = 0, digits = 0;
    for (name += pl; *name >= '0' && *name <= '9' && digits < 6; name++, digits++)
        v = v * 10 + (*name - '0');
    return digits > 0 && *name == '.' ? v : -1;
}

air_status air_lf_verify_entry(const char *path, const air_lf_header *h, const air_lf_entry *e,
                               const void *bytes) {
    if (air_xxh3(bytes, e->nbytes) != e->xxh3)
        return air_err(AIR_ERR_FORMAT, "%s: tensor '%s' checksum mismatch (bytes %llu..%llu): the "
                       "file is corrupt (disk error or an interrupted write); " AIR_STORE_FIX, path,
                       e->name,
                       (unsigned long long)(h->header_bytes + e->offset),
                       (unsigned long long)(h->header_bytes + e->offset + e->nbytes));
    return AIR_OK;
}

void air_lf_table_free(air_lf_table *t) {
    free(t->e);
    t->e = NULL;
}

air_status air_lf_read_table(const char *path, air_lf_table *out) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return open_error(path);
    struct stat sb;
    uint8_t *region = NULL;
    air_status st = AIR_OK;
    if (fstat(fd, &sb) != 0 || pread(fd, &out->h, sizeof out->h, 0) != (ssize_t)sizeof out->h)
        st = air_err(AIR_ERR_FORMAT, "%s: cannot read the layer file header; " AIR_STORE_FIX, path);
    else
        st = check_fixed(path, &out->h, (uint64_t)sb.st_size);
    if (!st && !(region = malloc(out->h.header_bytes)))
        st = air_err(AIR_ERR_NOMEM, "out of memory");
    if (!st && (st = read_all_at(fd, region, out->h.header_bytes, 0, path)) == AIR_OK)
        st = check_region(path, region, NULL);
    size_t tb = (size_t)out->h.n_tensors * sizeof(air_lf_entry);
    if (!st && !(out->e = malloc(tb ? tb : 1)))
        st = air_err(AIR_ERR_NOMEM, "out of memory");
    if (!st)
        memcpy(out->e, region + sizeof out->h, tb);
    free(region);
    close(fd);
    if (st) {
        air_lf_table_free(out);
        return st;
    }
    out->file_bytes = out->h.header_bytes + out->h.data_bytes;
    /* the dense prefix: up to the end of the last dense tensor, aligned */
    uint64_t end = 0;
    for (uint32_t i = 0; i < out->h.n_tensors; i++) {
        const air_lf_entry *e = &out->e[i];
        if (e->offset + e->nbytes > out->h.data_bytes || e->offset + e->nbytes < e->offset) {
            air_lf_table_free(out);
            return air_err(AIR_ERR_FORMAT, "%s: tensor entry %u is corrupt", path, i);
        }
        if (air_lf_expert_of(e->name) < 0 && e->offset + e->nbytes > end)
            end = e->offset + e->nbytes;
    }
    out->dense_bytes = out->h.header_bytes + align_up(end);
    return AIR_OK;
}

air_status air_lf_load_prefix(const char *path, void *buf, uint64_t cap, uint64_t prefix,
                              int flags, const air_lf_ident *want, air_layer *out) {
    int direct = flags & AIR_LF_DIRECT;
    int fd = -1;
    if (direct)
        fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd < 0)
        fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return open_error(path);
    struct stat sb;
    air_status st = AIR_OK;
    if (fstat(fd, &sb) != 0)
        st = air_err(AIR_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    else if (prefix > cap || prefix > (uint64_t)sb.st_size || prefix < sizeof(air_lf_header))
        st = air_err(AIR_ERR_FORMAT, "%s: file is %llu bytes, the store expects a dense part of "
                     "%llu; " AIR_STORE_FIX, path, (unsigned long long)sb.st_size,
                     (unsigned long long)prefix);
    uint64_t size = (uint64_t)sb.st_size;
    if (!st) {
        st = read_all(fd, buf, prefix, path);
        if (st == AIR_ERR_IO && direct) {
            close(fd);
            fd = open(path, O_RDONLY | O_CLOEXEC);
            st = fd < 0 ? air_err(AIR_ERR_IO, "cannot open %s", path)
                        : read_all(fd, buf, prefix, path);
        }
    }
    if (fd >= 0)
        close(fd);
    if (st)
        return st;
    if (prefix == size)
        return bind_whole(path, buf, size, want, !(flags & AIR_LF_DEFER_DATA), out);
    const air_lf_header *h = buf;
    if ((st = check_fixed(path, h, size)))
        return st;
    if (h->header_bytes > prefix)
        return air_err(AIR_ERR_FORMAT, "%s: header larger than the dense part; " AIR_STORE_FIX,
                       path);
    if ((st = check_region(path, buf, want)))
        return st;
    const air_lf_entry *e = (const air_lf_entry *)((const char *)buf + sizeof *h);
    return bind_entries(path, h, e, (const char *)buf + h->header_bytes,
                        prefix - h->header_bytes, 1, out);
}
