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
 *
 * The work is a pipeline: while unit k is written to disk (a writer thread,
 * O_DIRECT, and a second thread for each file's fsync and rename), unit k+1
 * is read and converted on all the pool's threads, each reading its own rows
 * of the source file when the source can say where a tensor lies, the next
 * tensor's bytes already being read ahead by the kernel; its checksums are
 * made by one thread while the next tensor converts. At most two unit
 * buffers exist, and both only within half of the memory available (cgroup
 * limits included); see docs/layer-store.md.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "store/store.h"
#include "text/chat_files.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/memlimit.h"
#include "util/xxh3.h"

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

/* Rows [0, rows) of n elements from the source (sdt) to dst (ddt), handed
 * out to the pool's threads in chunks of at most about 1 MiB of source (at
 * least 4 chunks per thread when the tensor has the rows); a copy when
 * the dtypes are equal. The source rows are in memory (src), or in a file
 * (fd, from byte off): then each thread reads its chunks itself, into a
 * buffer that stays in its cache (or, for a copy, straight into dst). */
typedef struct {
    const char *src;
    int fd;
    uint64_t off;
    air_dtype sdt, ddt;
    char *dst;
    int64_t rows, n, chunk;
    size_t sb, db;
    atomic_llong next, done;
    atomic_int nomem, read_errno; /* read_errno: -1 for an unexpected end of file */
    atomic_ullong bad_at;
    air_lf_builder *sum; /* if not NULL: the thread with ith 0 first makes the
                            checksums of the entries before sum_upto */
    uint32_t sum_upto;
} conv_job;

/* n bytes of fd at `at` into dst; 0, errno, or -1 at the end of the file. */
static int read_range(int fd, char *dst, size_t n, uint64_t at, uint64_t *where) {
    while (n > 0) {
        ssize_t r = pread(fd, dst, n, (off_t)at);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            *where = at;
            return r < 0 ? errno : -1;
        }
        dst += r;
        at += (uint64_t)r;
        n -= (size_t)r;
    }
    return 0;
}

static void conv_rows(void *ctx, int ith, int nth) {
    conv_job *j = ctx;
    (void)nth;
    if (ith == 0 && j->sum)
        while (air_lf_builder_sum_next(j->sum, j->sum_upto))
            ;
    int same = j->sdt == j->ddt;
    float *tmp = same ? NULL : malloc(sizeof(float) * (size_t)j->n);
    char *buf = same || j->src ? NULL : malloc((size_t)j->chunk * j->sb);
    if ((!same && !tmp) || (!same && !j->src && !buf)) {
        atomic_store(&j->nomem, 1);
        free(tmp);
        return; /* the other threads take the rows */
    }
    for (;;) {
        int64_t r0 = atomic_fetch_add(&j->next, 1) * j->chunk;
        if (r0 >= j->rows)
            break;
        int64_t r1 = r0 + j->chunk < j->rows ? r0 + j->chunk : j->rows;
        const char *from = j->src ? j->src + r0 * j->sb : NULL;
        if (!from) {
            char *to = same ? j->dst + r0 * j->db : buf;
            uint64_t where = 0;
            int e = read_range(j->fd, to, (size_t)(r1 - r0) * j->sb, j->off + (uint64_t)r0 * j->sb,
                               &where);
            if (e) {
                atomic_store(&j->read_errno, e);
                atomic_store(&j->bad_at, where);
                break;
            }
            from = to;
        }
        if (same && j->src)
            memcpy(j->dst + r0 * j->db, from, (size_t)(r1 - r0) * j->sb);
        for (int64_t r = r0; !same && r < r1; r++) {
            air_row_to_f32(j->sdt, from + (r - r0) * j->sb, tmp, j->n);
            air_row_from_f32(j->ddt, tmp, j->dst + r * j->db, j->n);
        }
        atomic_fetch_add(&j->done, r1 - r0);
    }
    free(tmp);
    free(buf);
}

/* Converts the tensor just added to b (from memory, or from fd at off when
 * src is NULL), and meanwhile, on one thread, makes the checksums of the
 * tensors before it (still in cache). */
static air_status convert(air_pool *pool, const void *src, int fd, uint64_t off, air_dtype sdt,
                          void *dst, air_dtype ddt, int64_t rows, int64_t n, const char *name,
                          air_lf_builder *b) {
    conv_job j = {.src = src, .fd = fd, .off = off, .sdt = sdt, .ddt = ddt, .dst = dst,
                  .rows = rows, .n = n, .sum = b, .sum_upto = b->h.n_tensors - 1};
    j.sb = air_dtype_row_bytes(sdt, n);
    j.db = air_dtype_row_bytes(ddt, n);
    /* about 1 MiB of source, fewer rows when that would leave threads idle */
    int64_t balance = rows / (4 * (int64_t)air_pool_size(pool));
    j.chunk = j.sb ? (int64_t)((1u << 20) / j.sb) : rows;
    if (j.chunk > balance)
        j.chunk = balance;
    if (j.chunk < 1)
        j.chunk = 1;
    atomic_init(&j.next, 0);
    atomic_init(&j.done, 0);
    atomic_init(&j.nomem, 0);
    atomic_init(&j.read_errno, 0);
    atomic_init(&j.bad_at, 0);
    /* A tensor to convert is read through a mapping of its file: the threads
     * convert straight from the page cache, without copying it first (the
     * copy cost as much CPU time as the quantization). The file's size is
     * checked first; a copy, or a file that cannot be mapped, is read. */
    void *map = NULL;
    size_t map_len = 0;
    uint64_t need = off + (uint64_t)rows * j.sb;
    struct stat fs;
    if (!src && fd >= 0 && sdt != ddt && fstat(fd, &fs) == 0) {
        if ((uint64_t)fs.st_size < need)
            return air_err(AIR_ERR_FORMAT, "reading %s: unexpected end of file (truncated?) at "
                           "byte %llu of the file", name, (unsigned long long)fs.st_size);
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), base = off / page * page;
        map_len = (size_t)(need - base);
        map = map_len ? mmap(NULL, map_len, PROT_READ, MAP_SHARED, fd, (off_t)base) : MAP_FAILED;
        if (map == MAP_FAILED)
            map = NULL;
        else {
            (void)madvise(map, map_len, MADV_SEQUENTIAL);
            j.src = (const char *)map + (off - base);
        }
    }
    air_pool_run(pool, conv_rows, &j);
    if (map)
        munmap(map, map_len);
    int e = atomic_load(&j.read_errno);
    if (e)
        return air_err(e > 0 ? AIR_ERR_IO : AIR_ERR_FORMAT, "reading %s: %s at byte %llu of the "
                       "file", name, e > 0 ? strerror(e) : "unexpected end of file (truncated?)",
                       (unsigned long long)atomic_load(&j.bad_at));
    if (atomic_load(&j.done) < rows)
        return air_err(AIR_ERR_NOMEM, "out of memory converting %s", name);
    return AIR_OK;
}

/* The embeddings get a second entry: the XXH3-64 of each row, so that a row
 * read alone is verified alone. */
typedef struct {
    const char *data;
    size_t rb;
    uint64_t *sums;
    int64_t rows;
} rowsum_job;

static void rowsum_rows(void *ctx, int ith, int nth) {
    rowsum_job *j = ctx;
    for (int64_t r = j->rows * ith / nth; r < j->rows * (ith + 1) / nth; r++)
        j->sums[r] = air_xxh3(j->data + (size_t)r * j->rb, j->rb);
}

/* ---------------------------------------------------------------------------
 * one unit: planned, filled (reading and converting), then written
 * ------------------------------------------------------------------------- */

typedef struct {
    air_src_tensor info;
    int layer;
    const char *sname;
    air_dtype ddt;
    int64_t rows, n;
    uint64_t dbytes;
} planned;

/* What a unit is made of. */
typedef struct {
    air_lf_ident id;
    const want *w;
    int nw;
    const int *src_layer;
    const char **src_name;
    planned *p; /* nw entries */
    uint64_t data_bytes; /* of the unit file's data section */
} unit_plan;

/* Each tensor's source, shape and storage format, and the unit's size. */
static air_status plan_unit(air_source *src, const air_split_options *opt, unit_plan *u) {
    u->data_bytes = 0;
    for (int i = 0; i < u->nw; i++) {
        const want *w = &u->w[i];
        planned *p = &u->p[i];
        p->layer = u->src_layer ? u->src_layer[i] : u->id.unit;
        p->sname = u->src_name ? u->src_name[i] : w->name;
        air_status st = src->info(src, p->layer, p->sname, &p->info);
        if (st)
            return st;
        const air_src_tensor *in = &p->info;
        int ok = in->n_dims == w->n_dims && in->shape[0] == w->shape[0] &&
                 (w->n_dims == 1 || in->shape[1] == w->shape[1]);
        if (!ok)
            return air_err(AIR_ERR_FORMAT,
                           "tensor %s has shape [%lld, %lld], expected [%lld, %lld] from the "
                           "model's hyper-parameters (config.json)",
                           in->src_name, (long long)in->shape[0],
                           (long long)(in->n_dims == 2 ? in->shape[1] : 0), (long long)w->shape[0],
                           (long long)(w->n_dims == 2 ? w->shape[1] : 0));
        p->rows = w->n_dims == 2 ? w->shape[0] : 1;
        p->n = w->n_dims == 2 ? w->shape[1] : w->shape[0];
        p->ddt = target_dtype(opt->compression, w->name, w->n_dims, p->n, in->dtype);
        p->dbytes = (uint64_t)p->rows * air_dtype_row_bytes(p->ddt, p->n);
        u->data_bytes += air_lf_data_bytes(p->dbytes);
    }
    if (u->id.unit < 0) /* the row checksums */
        u->data_bytes += air_lf_data_bytes((uint64_t)u->w[0].shape[0] * 8);
    return AIR_OK;
}

/* The checksums of the entries before `upto` (those filled). */
static void sum_filled(air_lf_builder *b, uint32_t upto) {
    while (air_lf_builder_sum_next(b, upto))
        ;
}

/* Where the raw bytes of tensor i lie in a file (fd -1: nowhere, read()
 * it), with the kernel asked to read them ahead. */
static air_status locate(air_source *src, const unit_plan *u, int i, int *fd, uint64_t *off) {
    *fd = -1;
    if (!src->locate || i >= u->nw)
        return AIR_OK;
    air_status st = src->locate(src, u->p[i].layer, u->p[i].sname, fd, off);
    if (!st && *fd >= 0 && u->p[i].info.nbytes)
        (void)posix_fadvise(*fd, (off_t)*off, (off_t)u->p[i].info.nbytes, POSIX_FADV_WILLNEED);
    return st;
}

/* Reads and converts the planned tensors into the builder b. Tensors a
 * source can locate in a file are read by all threads, each its own rows,
 * the next tensor's bytes already being read ahead by the kernel; the
 * others are read into *raw (kept for the next call) and converted from it. */
static air_status fill_unit(air_source *src, const air_split_options *opt, const unit_plan *u,
                            air_lf_builder *b, void **raw, uint64_t *raw_cap) {
    air_lf_builder_reset(b, &u->id);
    air_status st = air_lf_builder_reserve(b, u->data_bytes);
    int fd = -1, next_fd = -1;
    uint64_t off = 0, next_off = 0;
    if (!st)
        st = locate(src, u, 0, &next_fd, &next_off);
    for (int i = 0; i < u->nw && !st; i++) {
        const planned *p = &u->p[i];
        if (opt->should_abort && opt->should_abort(opt->abort_user))
            return air_err(AIR_ERR_ABORTED, "the split was interrupted; the units already written "
                           "are kept and the next run resumes from them");
        fd = next_fd;
        off = next_off;
        if ((st = locate(src, u, i + 1, &next_fd, &next_off)))
            break;
        void *dst;
        if ((st = air_lf_builder_add(b, u->w[i].name, p->ddt, u->w[i].n_dims, u->w[i].shape,
                                     p->dbytes, &dst)))
            break;
        const void *from = NULL;
        if (fd < 0 && p->ddt == p->info.dtype) {
            sum_filled(b, b->h.n_tensors - 1);
            st = src->read(src, p->layer, p->sname, dst);
            continue;
        }
        if (fd < 0) {
            if (p->info.nbytes > *raw_cap) {
                free(*raw);
                *raw_cap = 0;
                if (!(*raw = malloc(p->info.nbytes)))
                    return air_err(AIR_ERR_NOMEM, "out of memory reading %s", p->info.src_name);
                *raw_cap = p->info.nbytes;
            }
            if ((st = src->read(src, p->layer, p->sname, *raw)))
                break;
            from = *raw;
        }
        st = convert(opt->pool, from, fd, off, p->info.dtype, dst, p->ddt, p->rows, p->n,
                     p->info.src_name, b);
    }
    if (!st && u->id.unit < 0) {
        sum_filled(b, b->h.n_tensors);
        const air_lf_entry *t = &b->e[0];
        int64_t shape[2] = {t->shape[0], 1};
        uint64_t *sums;
        st = air_lf_builder_add(b, AIR_T_TOK_EMBD ".rows", (air_dtype)AIR_LF_DT_ROWSUM, 1, shape,
                                (uint64_t)t->shape[0] * 8, (void **)&sums);
        if (!st) {
            t = &b->e[0];
            rowsum_job j = {(const char *)b->data + t->offset,
                            air_dtype_row_bytes((air_dtype)t->dtype, t->shape[1]), sums,
                            t->shape[0]};
            air_pool_run(opt->pool, rowsum_rows, &j);
        }
    }
    if (!st) /* the last tensor's, the data's: the writer thread only writes */
        air_lf_builder_sums(b);
    return st;
}

/* ---------------------------------------------------------------------------
 * the writer: filled (and checksummed) units are written by one thread, in
 * the order they are handed over, while the next unit is read and
 * converted; a second thread fsyncs and renames each written file while
 * the next one is written. The disk is kept busy.
 * ------------------------------------------------------------------------- */

/* Unit buffers: one filling, the others being written or fsynced (each
 * stays with the writer until its file is renamed), so that reading and
 * converting rarely waits for the disk. */
#define UNIT_SLOTS 4

typedef struct {
    air_lf_builder b;
    char *path;
    int unit;
    int busy;    /* handed to the writer and not yet taken back */
    int written; /* the writer is done with it: st, msg, info */
    uint64_t seq;
    air_status st;
    char msg[1024];
    air_lf_info info;
    air_lf_pending pw;
} unit_slot;

typedef struct {
    pthread_t thread, syncer;
    int running, sync_running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unit_slot slot[UNIT_SLOTS];
    int queue[UNIT_SLOTS], q_len;   /* to write */
    int squeue[UNIT_SLOTS], sq_len; /* written, to fsync and rename */
    int stop;
    uint64_t seq;
} unit_writer;

static void slot_result(unit_slot *s, air_status st) {
    s->st = st;
    if (st)
        snprintf(s->msg, sizeof s->msg, "%s", air_last_error());
}

static void pop(int *q, int *len) {
    memmove(q, q + 1, sizeof(int) * (size_t)(*len - 1));
    (*len)--;
}

static void *writer_main(void *arg) {
    unit_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->q_len && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->q_len)
            break;
        unit_slot *s = &w->slot[w->queue[0]];
        pthread_mutex_unlock(&w->mu);
        air_status st = air_lf_builder_write_start(&s->b, s->path, &s->pw);
        if (!st && !w->sync_running) /* no fsync thread: here */
            st = air_lf_write_finish(&s->pw, &s->info);
        slot_result(s, st);
        pthread_mutex_lock(&w->mu);
        if (!st && w->sync_running)
            w->squeue[w->sq_len++] = w->queue[0];
        else
            s->written = 1;
        pop(w->queue, &w->q_len);
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void *syncer_main(void *arg) {
    unit_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->sq_len && !(w->stop && !w->q_len))
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->sq_len)
            break;
        unit_slot *s = &w->slot[w->squeue[0]];
        pthread_mutex_unlock(&w->mu);
        slot_result(s, air_lf_write_finish(&s->pw, &s->info));
        pthread_mutex_lock(&w->mu);
        s->written = 1;
        pop(w->squeue, &w->sq_len);
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void writer_start(unit_writer *w) {
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->sync_running = pthread_create(&w->syncer, NULL, syncer_main, w) == 0;
    w->running = pthread_create(&w->thread, NULL, writer_main, w) == 0;
}

/* Both threads finish what they were handed, then end. */
static void writer_stop(unit_writer *w) {
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->running)
        pthread_join(w->thread, NULL);
    if (w->sync_running)
        pthread_join(w->syncer, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

static void writer_submit(unit_writer *w, int i) {
    unit_slot *s = &w->slot[i];
    s->busy = 1;
    s->written = 0;
    s->seq = w->seq++;
    if (!w->running) { /* no thread: write now */
        slot_result(s, air_lf_builder_write(&s->b, s->path, &s->info));
        s->written = 1;
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->queue[w->q_len++] = i;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void writer_wait(unit_writer *w, int i) {
    if (!w->running)
        return;
    pthread_mutex_lock(&w->mu);
    while (!w->slot[i].written)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
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

/* The split's state across units: the writer's two slots, the source
 * bytes read for conversion, progress, the unit files' entries. */
typedef struct {
    air_source *src;
    const air_split_options *opt;
    const char *dir;
    unit_writer w;
    void *raw;
    uint64_t raw_cap;
    uint64_t budget; /* bytes of unit buffers the split may hold */
    uint64_t total, done;
    double t0;
    air_lf_info *infos; /* per unit (index unit + 1) */
    char **paths;
} split_state;

static const char *unit_label(int unit, int n_layer) {
    return unit < 0 ? "the embeddings" : unit == n_layer ? "the output head" : "a layer";
}

static void report(split_state *S, uint64_t bytes) {
    S->done += bytes;
    if (S->opt->progress) {
        double dt = now_s() - S->t0;
        S->opt->progress(S->opt->progress_user, "split", S->done,
                         S->total > S->done ? S->total : S->done,
                         dt > 0 ? (double)S->done / dt : 0);
    }
}

/* Takes back a slot the writer is done with: its result, progress, and the
 * source's clean-up of the layer. */
static air_status reap(split_state *S, int i) {
    unit_slot *s = &S->w.slot[i];
    writer_wait(&S->w, i);
    s->busy = 0;
    int n_layer = S->src->hp.n_layer;
    if (s->st) {
        air_err(s->st, "%s", s->msg);
        return air_err_context(s->st, "splitting %s into %s", unit_label(s->unit, n_layer),
                               s->path);
    }
    S->infos[s->unit + 1] = s->info;
    report(S, s->info.file_bytes);
    /* a part leaves the source whole: the other ranks' layers may share its shards */
    if (s->unit >= 0 && s->unit < n_layer && S->src->done_with_layer && !S->opt->part)
        S->src->done_with_layer(S->src, s->unit);
    return AIR_OK;
}

/* Takes back every slot still with the writer, oldest first; the first
 * error is returned (units written after it are complete files all the same). */
static air_status reap_all(split_state *S) {
    air_status first = AIR_OK;
    char msg[1024] = "";
    for (;;) {
        int i = -1;
        for (int k = 0; k < UNIT_SLOTS; k++)
            if (S->w.slot[k].busy && (i < 0 || S->w.slot[k].seq < S->w.slot[i].seq))
                i = k;
        if (i < 0)
            break;
        air_status st = reap(S, i);
        if (st && !first) {
            first = st;
            snprintf(msg, sizeof msg, "%s", air_last_error());
        }
    }
    if (first)
        air_err(first, "%s", msg);
    return first;
}

/* The tensors of a unit: the embeddings, a layer or the head. */
static int unit_wants(const air_hparams *hp, int unit, want *w, const char **src_name) {
    int nw = 0;
    if (unit == -1) {
        w[nw] = (want){AIR_T_TOK_EMBD, 2, {hp->n_vocab, hp->n_embd}};
        src_name[nw++] = AIR_T_TOK_EMBD;
    } else if (unit == hp->n_layer) {
        w[nw] = (want){AIR_T_OUT_NORM, 1, {hp->n_embd, 1}};
        src_name[nw++] = AIR_T_OUT_NORM;
        w[nw] = (want){AIR_T_OUTPUT, 2, {hp->n_vocab, hp->n_embd}};
        src_name[nw++] = hp->tie_embeddings ? AIR_T_TOK_EMBD : AIR_T_OUTPUT;
    } else {
        nw = layer_wants(hp, unit, w);
    }
    return nw;
}

/* The oldest slot other than i still with the writer; -1 if none. */
static int oldest_busy(const split_state *S, int i) {
    int o = -1;
    for (int k = 0; k < UNIT_SLOTS; k++)
        if (k != i && S->w.slot[k].busy && (o < 0 || S->w.slot[k].seq < S->w.slot[o].seq))
            o = k;
    return o;
}

/* Bytes of the unit buffers other than slot i's. */
static uint64_t others_cap(const split_state *S, int i) {
    uint64_t c = 0;
    for (int k = 0; k < UNIT_SLOTS; k++)
        if (k != i)
            c += S->w.slot[k].b.cap;
    return c;
}

/* One unit into the next slot (taken back from the writer first), handed
 * to the writer. The slots' buffers together stay within the budget. */
static air_status split_unit(split_state *S, unit_plan *u, int *next_slot) {
    int i = *next_slot;
    unit_slot *s = &S->w.slot[i];
    air_status st;
    if (s->busy && (st = reap(S, i)))
        return st;
    if ((st = plan_unit(S->src, S->opt, u)))
        return air_err_context(st, "splitting %s into %s",
                               unit_label(u->id.unit, S->src->hp.n_layer),
                               S->paths[u->id.unit + 1]);
    /* the buffers together stay within the budget: idle buffers are given
     * back first, then the oldest units waited for (and their buffers given
     * back) */
    while (others_cap(S, i) + u->data_bytes > S->budget) {
        int idle = -1;
        for (int k = 0; k < UNIT_SLOTS && idle < 0; k++)
            if (k != i && !S->w.slot[k].busy && S->w.slot[k].b.cap)
                idle = k;
        if (idle >= 0) {
            air_lf_builder_free(&S->w.slot[idle].b);
            continue;
        }
        int o = oldest_busy(S, i);
        if (o < 0)
            break;
        if ((st = reap(S, o)))
            return st;
    }
    if (s->b.cap > u->data_bytes * 2) /* much larger than needed now (the embeddings'): */
        air_lf_builder_free(&s->b);  /* give it back */
    s->unit = u->id.unit;
    s->path = S->paths[u->id.unit + 1];
    if ((st = fill_unit(S->src, S->opt, u, &s->b, &S->raw, &S->raw_cap)))
        return st == AIR_ERR_ABORTED
                   ? st
                   : air_err_context(st, "splitting %s into %s",
                                     unit_label(s->unit, S->src->hp.n_layer), s->path);
    writer_submit(&S->w, i);
    /* a source that deletes what was read: store this unit before the next read */
    if (S->src->deletes_consumed && (st = reap(S, i)))
        return st;
    *next_slot = (i + 1) % UNIT_SLOTS;
    return AIR_OK;
}

/* Units first..last (-1 the embeddings, n_layer the head) of the store. */
static air_status split_units(air_source *src, const char *dir, const air_split_options *opt,
                              int first, int last, uint64_t model_id, uint64_t total,
                              cJSON *files) {
    const air_hparams *hp = &src->hp;
    int n_units = hp->n_layer + 2;
    split_state S = {.src = src, .opt = opt, .dir = dir, .total = total, .t0 = now_s()};
    /* unit buffers: at most half of the memory this process may still take */
    air_memlimit ml;
    air_memlimit_read(&ml);
    S.budget = ml.available == UINT64_MAX ? UINT64_MAX : ml.available / 2;
    if (opt->buffer_budget)
        S.budget = opt->buffer_budget;
    S.infos = calloc((size_t)n_units, sizeof *S.infos);
    S.paths = calloc((size_t)n_units, sizeof *S.paths);
    int nw_max = layer_wants_max(hp) > 2 ? layer_wants_max(hp) : 2;
    want *w = malloc(sizeof(want) * (size_t)nw_max);
    planned *p = malloc(sizeof(planned) * (size_t)nw_max);
    air_status st = AIR_OK;
    if (!S.infos || !S.paths || !w || !p) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto out;
    }
    writer_start(&S.w);
    src->pool = opt->pool; /* the source may use the threads while it reads */
    const uint64_t mid = model_id;
    int next_slot = 0;
    for (int unit = first; unit <= last && !st; unit++) {
        char *path = S.paths[unit + 1] = unit_file(dir, unit, hp->n_layer);
        if (!path) {
            st = air_err(AIR_ERR_NOMEM, "out of memory");
            break;
        }
        air_lf_ident id = {unit, (uint32_t)hp->n_layer, mid, 0};
        /* a unit file of this very content, completely written, is kept */
        if (air_lf_probe(path, &id, &S.infos[unit + 1], NULL) == AIR_OK) {
            report(&S, S.infos[unit + 1].file_bytes);
            if (unit >= 0 && unit < hp->n_layer && src->done_with_layer && !opt->part &&
                (st = reap_all(&S)) == AIR_OK) /* after the units before it */
                src->done_with_layer(src, unit);
            continue;
        }
        air_err_clear();
        const char *src_name[2] = {NULL, NULL};
        int edge = unit < 0 || unit == hp->n_layer;
        static const int no_layer[2] = {-1, -1};
        unit_plan u = {id, w, unit_wants(hp, unit, w, src_name), edge ? no_layer : NULL,
                       edge ? src_name : NULL, p, 0};
        st = split_unit(&S, &u, &next_slot);
    }
    {
        char keep[1024] = "";
        if (st)
            snprintf(keep, sizeof keep, "%s", air_last_error());
        air_status wst = reap_all(&S);
        if (st)
            air_err(st, "%s", keep);
        else
            st = wst;
    }
    writer_stop(&S.w);
    src->pool = NULL;
    if (!st) {
        for (int k = first + 1; k <= last + 1; k++)
            add_unit_entry(files, S.paths[k], &S.infos[k]);
        if (opt->progress) { /* the estimate is rough: end the bar at what was written */
            double dt = now_s() - S.t0;
            opt->progress(opt->progress_user, "split", S.done, S.done,
                          dt > 0 ? (double)S.done / dt : 0);
        }
    }
out:
    for (int k = 0; k < UNIT_SLOTS; k++)
        air_lf_builder_free(&S.w.slot[k].b);
    for (int k = 0; S.paths && k < n_units; k++)
        free(S.paths[k]);
    free(S.paths);
    free(S.infos);
    free(S.raw);
    free(w);
    free(p);
    return st;
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
    uint64_t total = 0;
    /* rough total for progress: two bytes per parameter */
    total = (uint64_t)hp->n_vocab * hp->n_embd * 2 * (hp->tie_embeddings ? 2 : 2);
    for (int l = first > 0 ? first : 0; l < hp->n_layer && l <= last; l++) {
        int nw = layer_wants(hp, l, w);
        for (int i = 0; i < nw; i++)
            total += (uint64_t)w[i].shape[0] * (w[i].n_dims == 2 ? (uint64_t)w[i].shape[1] : 1) * 2;
    }
    st = split_units(src, dir, opt, first, last, model_id, total, files);
    if (st)
        goto out;
    if (src->done_with_layer && !opt->part) /* a part leaves the source whole */
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
