/*
 * experts.c - the expert index, the expert cache and the reader threads.
 *
 * Slots hold one expert each. Slots [0, n_cache) are the cache: an expert
 * read into one stays there (state READY, `where` maps it) until a more used
 * expert replaces it. The other slots are transient read buffers. States:
 *
 *   FREE -> LOADING (queued / a reader reads it) -> READY -> INUSE (compute)
 *   INUSE -> READY (cache slot) or FREE (transient) at air_experts_done
 *
 * One layer's request is active at a time (the forward pass is sequential
 * over layers); `req` lists its experts. Misses that find no slot wait in
 * request order until air_experts_done frees one; since compute takes the
 * experts in request order too, the oldest waiting read always gets the
 * next freed slot and the layer cannot stall.
 */
#include "runtime/experts.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/error.h"

#define N_READERS 4   /* reads in flight */
#define N_TRANSIENT 8 /* transient buffers when the cache cannot hold every expert */

enum { S_FREE, S_LOADING, S_READY, S_INUSE };
enum { R_WAITING, R_SLOT, R_TAKEN, R_DONE };

typedef struct {
    uint64_t off, len;   /* range in the file (aligned) */
    air_lf_entry ent[6]; /* w_gate, w_up, w_down, then b_gate, b_up, b_down (expert_bias) */
} exp_range;

typedef struct {
    char *path;
    int fd;
    air_lf_header h;
    exp_range *ex; /* n_expert ranges; NULL for a dense layer */
} layer_ix;

typedef struct {
    void *buf;
    int key; /* l * n_expert + e, -1 when empty */
    int state;
    int requested; /* part of the current request: not evictable */
    air_status st;
    char err[400];
    air_tensor t[6];
} xslot;

typedef struct {
    int key;
    int state;
} xreq;

struct air_experts {
    int n_layer, n_expert, direct;
    int n_parts; /* tensors per expert: 3, or 6 with biases */
    layer_ix *li;
    uint64_t slot_bytes;
    int n_slots, n_cache;
    xslot *slots;
    int *where;     /* key -> slot, -1 */
    uint32_t *uses; /* key -> passes that routed to it */
    xreq *req;
    int n_req;
    int *queue; /* slots to read, FIFO */
    int q_head, q_tail, q_cap;
    int stop;
    pthread_t threads[N_READERS];
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    air_experts_stats stats;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------------------
 * the index
 * ------------------------------------------------------------------------- */

static const char *const part_names[6] = {AIR_T_W_GATE, AIR_T_W_UP, AIR_T_W_DOWN,
                                          "b_gate",     "b_up",     "b_down"};

static air_status index_layer(air_experts *x, const air_hparams *hp, const char *path,
                              layer_ix *li) {
    air_lf_table t;
    air_status st = air_lf_read_table(path, &t);
    if (st)
        return st;
    li->h = t.h;
    li->ex = calloc((size_t)x->n_expert, sizeof *li->ex);
    int np = x->n_parts;
    uint8_t *seen = calloc((size_t)x->n_expert * (size_t)np, 1);
    if (!li->ex || !seen) {
        free(seen);
        air_lf_table_free(&t);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < t.h.n_tensors && !st; i++) {
        const air_lf_entry *en = &t.e[i];
        int e = air_lf_expert_of(en->name);
        if (e < 0)
            continue;
        const char *part = strchr(en->name + strlen(AIR_T_EXP_PREFIX), '.') + 1;
        int p = -1;
        for (int k = 0; k < np; k++)
            if (strcmp(part, part_names[k]) == 0)
                p = k;
        int vec = p >= 3; /* biases: (n, 1) f32 */
        int64_t rows = p % 3 == 2 ? hp->n_embd : hp->n_ff_exp, cols = vec      ? 1
                                                                      : p == 2 ? hp->n_ff_exp
                                                                               : hp->n_embd;
        if (e >= x->n_expert || p < 0 || seen[e * np + p] || (int)en->n_dims != (vec ? 1 : 2) ||
            en->shape[0] != rows || en->shape[1] != cols || en->dtype >= AIR_DT_COUNT ||
            (vec && en->dtype != AIR_DT_F32) ||
            en->nbytes != (uint64_t)rows * air_dtype_row_bytes((air_dtype)en->dtype, cols))
            st = air_err(AIR_ERR_FORMAT,
                         "%s: expert tensor '%s' (entry %u) does not fit the "
                         "model (%d experts of width %d); delete the store folder to rebuild it",
                         path, en->name, i, x->n_expert, hp->n_ff_exp);
        else {
            seen[e * np + p] = 1;
            li->ex[e].ent[p] = *en;
        }
    }
    for (int e = 0; e < x->n_expert && !st; e++) {
        exp_range *r = &li->ex[e];
        int all = 1;
        for (int p = 0; p < np; p++)
            all &= seen[e * np + p];
        if (!all) {
            st = air_err(AIR_ERR_FORMAT,
                         "%s: expert %d is missing a tensor; delete the store "
                         "folder to rebuild it",
                         path, e);
            break;
        }
        uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
        for (int p = 0; p < np; p++) {
            sum += r->ent[p].nbytes;
            if (r->ent[p].offset < lo)
                lo = r->ent[p].offset;
            if (r->ent[p].offset + r->ent[p].nbytes > hi)
                hi = r->ent[p].offset + r->ent[p].nbytes;
        }
        hi = (hi + AIR_LF_ALIGN - 1) / AIR_LF_ALIGN * AIR_LF_ALIGN;
        r->off = t.h.header_bytes + lo;
        r->len = hi - lo;
        if (r->len > sum + (uint64_t)np * AIR_LF_ALIGN)
            st = air_err(AIR_ERR_FORMAT,
                         "%s: the tensors of expert %d are not stored together; "
                         "delete the store folder to rebuild it",
                         path, e);
        if (r->len > x->slot_bytes)
            x->slot_bytes = r->len;
    }
    free(seen);
    air_lf_table_free(&t);
    return st;
}

/* ---------------------------------------------------------------------------
 * reading one expert
 * ------------------------------------------------------------------------- */

static air_status pread_all(int fd, void *buf, uint64_t n, uint64_t at) {
    char *p = buf;
    uint64_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, p + done, n - done, (off_t)(at + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return air_err(AIR_ERR_IO, "read error at byte %llu: %s",
                           (unsigned long long)(at + done), strerror(errno));
        if (r == 0)
            return air_err(AIR_ERR_FORMAT, "unexpected end of file at byte %llu",
                           (unsigned long long)(at + done));
        done += (uint64_t)r;
    }
    return AIR_OK;
}

/* Reads slot sl's expert (no lock held). */
static air_status read_expert(air_experts *x, xslot *sl, int key) {
    int l = key / x->n_expert, e = key % x->n_expert;
    layer_ix *li = &x->li[l];
    const exp_range *r = &li->ex[e];
    air_status st = pread_all(li->fd, sl->buf, r->len, r->off);
    if (st == AIR_ERR_IO && x->direct) {
        /* a file system that accepted O_DIRECT at open but not the read */
        int fd = open(li->path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            st = pread_all(fd, sl->buf, r->len, r->off);
            close(fd);
        }
    }
    if (st)
        return air_err_context(st, "%s: reading expert %d (bytes %llu..%llu)", li->path, e,
                               (unsigned long long)r->off, (unsigned long long)(r->off + r->len));
    for (int p = 0; p < x->n_parts; p++) {
        const air_lf_entry *en = &r->ent[p];
        const char *data = (const char *)sl->buf + (li->h.header_bytes + en->offset - r->off);
        if ((st = air_lf_verify_entry(li->path, &li->h, en, data)))
            return st;
        air_tensor *t = &sl->t[p];
        t->name = part_names[p];
        t->dtype = (air_dtype)en->dtype;
        t->n_dims = (int)en->n_dims;
        t->shape[0] = en->shape[0];
        t->shape[1] = en->shape[1];
        t->data = data;
        t->nbytes = en->nbytes;
    }
    return AIR_OK;
}

static void *reader_main(void *arg) {
    air_experts *x = arg;
    pthread_mutex_lock(&x->mu);
    for (;;) {
        while (!x->stop && x->q_head == x->q_tail)
            pthread_cond_wait(&x->cv, &x->mu);
        if (x->stop)
            break;
        int si = x->queue[x->q_head++ % x->q_cap];
        xslot *sl = &x->slots[si];
        int key = sl->key;
        pthread_mutex_unlock(&x->mu);
        double t0 = now_s();
        air_status st = read_expert(x, sl, key);
        double dt = now_s() - t0;
        pthread_mutex_lock(&x->mu);
        sl->st = st;
        if (st)
            snprintf(sl->err, sizeof sl->err, "%s", air_last_error());
        else {
            x->stats.n_read++;
            x->stats.bytes_read += x->li[key / x->n_expert].ex[key % x->n_expert].len;
            x->stats.read_seconds += dt;
        }
        sl->state = S_READY;
        pthread_cond_broadcast(&x->cv);
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

/* ---------------------------------------------------------------------------
 * open / free
 * ------------------------------------------------------------------------- */

void air_experts_free(air_experts *x) {
    if (!x)
        return;
    pthread_mutex_lock(&x->mu);
    x->stop = 1;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    for (int i = 0; i < x->n_threads; i++)
        pthread_join(x->threads[i], NULL);
    for (int l = 0; l < x->n_layer && x->li; l++) {
        if (x->li[l].fd >= 0)
            close(x->li[l].fd);
        free(x->li[l].path);
        free(x->li[l].ex);
    }
    for (int i = 0; i < x->n_slots && x->slots; i++)
        free(x->slots[i].buf);
    free(x->li);
    free(x->slots);
    free(x->where);
    free(x->uses);
    free(x->req);
    free(x->queue);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
    free(x);
}

air_status air_experts_open(air_store *store, uint64_t cache_budget, int direct_io,
                            air_experts **out) {
    *out = NULL;
    const air_hparams *hp = air_store_hparams(store);
    air_experts *x = calloc(1, sizeof *x);
    if (!x)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    x->n_layer = hp->n_layer;
    x->n_expert = hp->n_expert;
    x->n_parts = hp->expert_bias ? 6 : 3;
    x->direct = direct_io;
    size_t nkeys = (size_t)hp->n_layer * (size_t)hp->n_expert;
    x->li = calloc((size_t)hp->n_layer, sizeof *x->li);
    x->where = malloc(sizeof(int) * (nkeys ? nkeys : 1));
    x->uses = calloc(nkeys ? nkeys : 1, sizeof(uint32_t));
    x->req = malloc(sizeof(xreq) * (size_t)(hp->n_expert > 0 ? hp->n_expert : 1));
    air_status st = AIR_OK;
    if (!x->li || !x->where || !x->uses || !x->req) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t k = 0; k < nkeys; k++)
        x->where[k] = -1;
    int n_moe = 0;
    for (int l = 0; l < hp->n_layer; l++) {
        x->li[l].fd = -1;
        if (!air_hp_layer_is_moe(hp, l))
            continue;
        n_moe++;
        x->li[l].path = strdup(air_store_unit_path(store, l));
        if (!x->li[l].path) {
            st = air_err(AIR_ERR_NOMEM, "out of memory");
            goto fail;
        }
        if ((st = index_layer(x, hp, x->li[l].path, &x->li[l])))
            goto fail;
        if (direct_io)
            x->li[l].fd = open(x->li[l].path, O_RDONLY | O_CLOEXEC | O_DIRECT);
        if (x->li[l].fd < 0)
            x->li[l].fd = open(x->li[l].path, O_RDONLY | O_CLOEXEC);
        if (x->li[l].fd < 0) {
            st = air_err(AIR_ERR_IO, "cannot open %s: %s", x->li[l].path, strerror(errno));
            goto fail;
        }
    }
    uint64_t total = (uint64_t)n_moe * (uint64_t)hp->n_expert;
    uint64_t fit = x->slot_bytes ? cache_budget / x->slot_bytes : 0;
    x->n_cache = (int)(fit < total ? fit : total);
    x->n_slots = x->n_cache + ((uint64_t)x->n_cache < total ? N_TRANSIENT : 0);
    x->slots = calloc((size_t)(x->n_slots ? x->n_slots : 1), sizeof *x->slots);
    x->q_cap = x->n_slots + 1;
    x->queue = malloc(sizeof(int) * (size_t)x->q_cap);
    if (!x->slots || !x->queue) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < x->n_slots; i++) {
        x->slots[i].key = -1;
        x->slots[i].buf = air_lf_alloc(x->slot_bytes);
        if (!x->slots[i].buf) {
            st = air_err(AIR_ERR_NOMEM,
                         "out of memory for %d expert buffers of %llu bytes; lower "
                         "the RAM budget",
                         x->n_slots, (unsigned long long)x->slot_bytes);
            goto fail;
        }
    }
    x->stats.cache_slots = x->n_cache;
    x->stats.cache_bytes = (uint64_t)x->n_cache * x->slot_bytes;
    x->stats.buffer_bytes = (uint64_t)(x->n_slots - x->n_cache) * x->slot_bytes;
    x->stats.expert_bytes = x->slot_bytes;
    for (int i = 0; i < N_READERS && n_moe > 0; i++) {
        if (pthread_create(&x->threads[i], NULL, reader_main, x) != 0) {
            st = air_err(AIR_ERR_INTERNAL, "cannot start an expert reader thread");
            goto fail;
        }
        x->n_threads++;
    }
    *out = x;
    return AIR_OK;
fail:
    air_experts_free(x);
    return st;
}

uint64_t air_experts_range_bytes(const air_experts *x, int l, int e) {
    if (l < 0 || l >= x->n_layer || !x->li[l].ex || e < 0 || e >= x->n_expert)
        return 0;
    return x->li[l].ex[e].len;
}

void air_experts_get_stats(const air_experts *x, air_experts_stats *st) {
    pthread_mutex_lock((pthread_mutex_t *)&x->mu);
    *st = x->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&x->mu);
}

/* ---------------------------------------------------------------------------
 * a layer's request (mutex held in the helpers)
 * ------------------------------------------------------------------------- */

/* A slot for a read of `key`: a free cache slot, else the least used cached
 * expert if it is used less than `key`, else a free transient slot; -1 if
 * none is free now. */
static int pick_slot(air_experts *x, int key) {
    int victim = -1;
    for (int i = 0; i < x->n_cache; i++) {
        xslot *sl = &x->slots[i];
        if (sl->state == S_FREE)
            return i;
        if (sl->state == S_READY && !sl->requested &&
            (victim < 0 || x->uses[sl->key] < x->uses[x->slots[victim].key]))
            victim = i;
    }
    if (victim >= 0 && x->uses[x->slots[victim].key] < x->uses[key]) {
        x->where[x->slots[victim].key] = -1;
        x->slots[victim].key = -1;
        x->slots[victim].state = S_FREE;
        return victim;
    }
    for (int i = x->n_cache; i < x->n_slots; i++)
        if (x->slots[i].state == S_FREE)
            return i;
    return -1;
}

/* Queues reads for waiting requests, in request order, while slots are free. */
static void schedule(air_experts *x) {
    for (int r = 0; r < x->n_req; r++) {
        if (x->req[r].state != R_WAITING)
            continue;
        int si = pick_slot(x, x->req[r].key);
        if (si < 0)
            return;
        xslot *sl = &x->slots[si];
        sl->key = x->req[r].key;
        sl->state = S_LOADING;
        sl->requested = 1;
        sl->st = AIR_OK;
        x->where[sl->key] = si;
        x->req[r].state = R_SLOT;
        x->queue[x->q_tail++ % x->q_cap] = si;
        pthread_cond_broadcast(&x->cv);
    }
}

air_status air_experts_begin(air_experts *x, int l, const int *ids, int n) {
    if (l < 0 || l >= x->n_layer || !x->li[l].ex || n > x->n_expert)
        return air_err(AIR_ERR_INTERNAL, "layer %d has no experts to read", l);
    pthread_mutex_lock(&x->mu);
    x->n_req = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= x->n_expert) {
            pthread_mutex_unlock(&x->mu);
            return air_err(AIR_ERR_INTERNAL, "expert id %d out of range", ids[i]);
        }
        int key = l * x->n_expert + ids[i];
        x->uses[key]++;
        x->stats.n_routed++;
        xreq *r = &x->req[x->n_req++];
        r->key = key;
        r->state = R_WAITING;
        int si = x->where[key];
        if (si >= 0) {
            x->stats.n_hits++;
            x->slots[si].requested = 1;
            r->state = R_SLOT;
        }
    }
    schedule(x);
    pthread_mutex_unlock(&x->mu);
    return AIR_OK;
}

air_status air_experts_get(air_experts *x, int id, air_expert_w *w) {
    double t0 = now_s();
    pthread_mutex_lock(&x->mu);
    air_status st = AIR_OK;
    xreq *r = NULL;
    for (int i = 0; i < x->n_req && !r; i++)
        if (x->req[i].key % x->n_expert == id && x->req[i].state != R_DONE)
            r = &x->req[i];
    if (!r || r->state == R_TAKEN)
        st = air_err(AIR_ERR_INTERNAL, "expert %d was not started or is already in use", id);
    while (!st && (r->state != R_SLOT || x->slots[x->where[r->key]].state != S_READY))
        pthread_cond_wait(&x->cv, &x->mu);
    if (!st) {
        xslot *sl = &x->slots[x->where[r->key]];
        r->state = R_TAKEN;
        sl->state = S_INUSE;
        if (sl->st)
            st = air_err(sl->st, "%s", sl->err);
        else {
            w->w_gate = &sl->t[0];
            w->w_up = &sl->t[1];
            w->w_down = &sl->t[2];
            w->b_gate = x->n_parts == 6 ? &sl->t[3] : NULL;
            w->b_up = x->n_parts == 6 ? &sl->t[4] : NULL;
            w->b_down = x->n_parts == 6 ? &sl->t[5] : NULL;
        }
    }
    x->stats.wait_seconds += now_s() - t0;
    pthread_mutex_unlock(&x->mu);
    return st;
}

/* Releases slot si of key after use (or a failed read). */
static void release(air_experts *x, int si) {
    xslot *sl = &x->slots[si];
    sl->requested = 0;
    if (si < x->n_cache && sl->st == AIR_OK) {
        sl->state = S_READY;
        return;
    }
    x->where[sl->key] = -1;
    sl->key = -1;
    sl->state = S_FREE;
}

void air_experts_done(air_experts *x, int id) {
    pthread_mutex_lock(&x->mu);
    for (int r = 0; r < x->n_req; r++) {
        xreq *q = &x->req[r];
        if (q->state == R_TAKEN && q->key % x->n_expert == id) {
            release(x, x->where[q->key]);
            q->state = R_DONE;
        }
    }
    schedule(x);
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

void air_experts_end(air_experts *x) {
    pthread_mutex_lock(&x->mu);
    for (;;) {
        int loading = 0;
        for (int r = 0; r < x->n_req; r++) {
            xreq *q = &x->req[r];
            if (q->state == R_SLOT && x->slots[x->where[q->key]].state == S_LOADING)
                loading = 1;
        }
        if (!loading)
            break;
        pthread_cond_wait(&x->cv, &x->mu);
    }
    for (int r = 0; r < x->n_req; r++) {
        xreq *q = &x->req[r];
        if (q->state == R_SLOT || q->state == R_TAKEN)
            release(x, x->where[q->key]);
        q->state = R_DONE;
    }
    x->n_req = 0;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}
