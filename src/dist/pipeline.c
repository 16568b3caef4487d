/*
 * pipeline.c - pipeline parallelism over MPI (see pipeline.h for the picture).
 *
 * One message per micro-batch and hop, rank r -> r + 1 (tag TAG_PASS):
 *
 *   msg_hdr | n x msg_row | events (int32 words) | pad to 64 | x (n, n_embd) fp32
 *
 * Each worker runs its layers on x in place and sends the same buffer on. The
 * last rank answers rank 0 (tag TAG_LOGITS) with msg_hdr | logits (wanted
 * rows, n_vocab). A rank that fails a micro-batch sets the header's status
 * and message; later ranks pass it along without computing, so rank 0 always
 * gets one answer per micro-batch it sent, and reports the first rank's
 * error.
 *
 * Every wait polls MPI_Test / MPI_Iprobe against a deadline; MPI_COMM_WORLD
 * and the pipeline's communicator return errors instead of aborting. The MPI
 * state is process-wide by nature (one MPI job per process): it lives in the
 * one static `g` below.
 */
#include "dist/pipeline.h"

#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "airllm.h"
#include "model/engine_internal.h"
#include "store/store.h"
#include "util/error.h"
#include "util/memlimit.h"

enum { TAG_PASS = 17, TAG_LOGITS = 18 };
enum { OP_PASS = 1, OP_STOP = 2 };
enum { EV_FREE = 1, EV_KEEP_PATH = 2 };

typedef struct {
    int32_t op, n, mb, tree;
    int32_t n_ev;   /* int32 words of events */
    int32_t status; /* AIR_OK, or the error of the first rank that failed */
    int32_t n_want, rank_failed;
    uint64_t pass;
    double busy_s; /* the workers' compute time for this micro-batch so far */
    char err[384];
} msg_hdr;

typedef struct {
    uint64_t kv_id;
    int32_t max_seq, pos, slot, parent, token, want;
} msg_row;

static struct {
    int inited; /* MPI_Init was called here */
    int rank, size;
    MPI_Comm comm;
    int bound;  /* an engine is attached */
    int driver; /* rank 0 with an attached engine: queue KV events */
    int shared_host; /* two or more ranks run on one host */
    double timeout;
    pthread_mutex_t mu; /* the event queue (kvcache.c may be called from any thread) */
    int32_t *ev;
    size_t n_ev, cap_ev;
} g = {0, 0, 1, 0, 0, 0, 0, 300.0, PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};

typedef struct {
    uint64_t id;
    air_kv kv;
} worker_kv;

typedef struct {
    MPI_Request req;
    void *buf;
    double deadline;
    int peer;
} pending_send;

typedef struct air_pipe air_pipe;
struct air_pipe {
    air_engine *e;
    int all_resident; /* every rank keeps its layers resident: micro-batches pay */
    /* micro-batches per pass at most: the ranks when each has a host of its
     * own, 1 when ranks share one (their thread pools would compete for the
     * same cores), or AIRLLM_PIPELINE_MICROBATCHES */
    int max_mb;
    int broken;
    char broken_msg[512];
    uint64_t pass;
    worker_kv *kvs; /* workers: the caches of rank 0's sequences */
    int n_kvs, cap_kvs;
    pending_send *sends;
    int n_sends, cap_sends;
    air_pipe_stats stats;
};

/* ---------------------------------------------------------------------------
 * the MPI job
 * ------------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A short sleep between polls: spins first, then 20 us sleeps for about a
 * tenth of a second, then 200 us ones, so an idle rank costs little CPU and
 * a busy one little latency. */
static void backoff(int *spins) {
    if (++*spins < 64)
        return;
    struct timespec ts = {0, *spins < 2048 ? 20000 : 200000};
    nanosleep(&ts, NULL);
}

static air_status mpi_err(int rc, const char *what, int peer) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "MPI error %d", rc);
    return air_err(AIR_ERR_IO,
                   "pipeline rank %d: %s with rank %d failed: %s; the MPI job is "
                   "broken: restart it",
                   g.rank, what, peer, msg);
}

static int launched_by_mpi(void) {
    const char *v[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (getenv(v[i]))
            return 1;
    return 0;
}

air_status air_dist_init(int *argc, char ***argv) {
    if (g.inited || !launched_by_mpi())
        return AIR_OK;
    int provided = 0;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS)
        return air_err(AIR_ERR_IO, "MPI_Init_thread failed (error %d): is this mpirun's job?", rc);
    g.inited = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (provided < MPI_THREAD_SERIALIZED)
        return air_err(AIR_ERR_UNSUPPORTED,
                       "the MPI library gives thread level %d; the pipeline "
                       "needs MPI_THREAD_SERIALIZED",
                       provided);
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &g.comm)) != MPI_SUCCESS)
        return mpi_err(rc, "MPI_Comm_dup", 0);
    MPI_Comm_set_errhandler(g.comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(g.comm, &g.rank);
    MPI_Comm_size(g.comm, &g.size);
    const char *t = getenv("AIRLLM_PIPELINE_TIMEOUT");
    if (t && atof(t) > 0)
        g.timeout = atof(t);
    return AIR_OK;
}

int air_dist_rank(void) {
    return g.rank;
}
int air_dist_size(void) {
    return g.size;
}

void air_dist_finalize(void) {
    if (!g.inited)
        return;
    MPI_Comm_free(&g.comm);
    MPI_Finalize();
    g.inited = 0;
    g.size = 1;
    g.rank = 0;
    pthread_mutex_lock(&g.mu);
    free(g.ev);
    g.ev = NULL;
    g.n_ev = g.cap_ev = 0;
    pthread_mutex_unlock(&g.mu);
}

int air_pipe_available(void) {
    return g.inited && g.size > 1 && !g.bound;
}

int air_pipe_get_stats(const air_engine *e, air_pipe_stats *st) {
    const air_pipe *p = air_engine_pipe(e);
    if (!p)
        return 0;
    *st = p->stats;
    return 1;
}

/* ---------------------------------------------------------------------------
 * waits with a deadline
 * ------------------------------------------------------------------------- */

static air_status wait_req(MPI_Request *req, double deadline, const char *what, int peer) {
    int spins = 0;
    for (;;) {
        int flag = 0;
        int rc = MPI_Test(req, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return mpi_err(rc, what, peer);
        if (flag)
            return AIR_OK;
        if (deadline > 0 && now_s() > deadline)
            return air_err(AIR_ERR_IO,
                           "pipeline rank %d: %s with rank %d did not complete within "
                           "%.0f s: that rank died or stalls, or the network does; the pipeline "
                           "is broken: restart the job (AIRLLM_PIPELINE_TIMEOUT sets the limit)",
                           g.rank, what, peer, g.timeout);
        backoff(&spins);
    }
}

/* Receives the next message from peer with this tag into a new buffer;
 * deadline <= 0 waits for ever (an idle worker), polling `idle` meanwhile. */
static air_status recv_msg(int peer, int tag, double deadline, air_status (*idle)(air_pipe *),
                           air_pipe *p, void **out, int *len) {
    *out = NULL;
    int spins = 0;
    MPI_Status stt;
    for (;;) {
        int flag = 0;
        int rc = MPI_Iprobe(peer, tag, g.comm, &flag, &stt);
        if (rc != MPI_SUCCESS)
            return mpi_err(rc, "waiting for a message", peer);
        if (flag)
            break;
        if (deadline > 0 && now_s() > deadline)
            return air_err(AIR_ERR_IO,
                           "pipeline rank %d: no message from rank %d within %.0f s: "
                           "a rank of the pipeline (that one or one before it) died or stalls, "
                           "or the network does; the pipeline is broken: restart the job "
                           "(AIRLLM_PIPELINE_TIMEOUT sets the limit)",
                           g.rank, peer, g.timeout);
        air_status st = idle ? idle(p) : AIR_OK;
        if (st)
            return st;
        backoff(&spins);
    }
    int n = 0;
    MPI_Get_count(&stt, MPI_BYTE, &n);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf)
        return air_err(AIR_ERR_NOMEM, "out of memory for a pipeline message of %d bytes", n);
    MPI_Request req;
    int rc = MPI_Irecv(buf, n, MPI_BYTE, peer, tag, g.comm, &req);
    air_status st = rc != MPI_SUCCESS ? mpi_err(rc, "MPI_Irecv", peer)
                                      : wait_req(&req, now_s() + g.timeout, "a receive", peer);
    if (st) {
        free(buf);
        return st;
    }
    *out = buf;
    *len = n;
    return AIR_OK;
}

/* Starts sending buf (taken: freed once sent) to peer. */
static air_status send_msg(air_pipe *p, void *buf, size_t len, int peer, int tag) {
    if (p->n_sends == p->cap_sends) {
        int cap = p->cap_sends ? 2 * p->cap_sends : 8;
        pending_send *s = realloc(p->sends, sizeof *s * (size_t)cap);
        if (!s) {
            free(buf);
            return air_err(AIR_ERR_NOMEM, "out of memory");
        }
        p->sends = s;
        p->cap_sends = cap;
    }
    pending_send *s = &p->sends[p->n_sends];
    int rc = MPI_Isend(buf, (int)len, MPI_BYTE, peer, tag, g.comm, &s->req);
    if (rc != MPI_SUCCESS) {
        free(buf);
        return mpi_err(rc, "MPI_Isend", peer);
    }
    s->buf = buf;
    s->deadline = now_s() + g.timeout;
    s->peer = peer;
    p->n_sends++;
    return AIR_OK;
}

/* Frees the sends that completed; with `all`, waits for every one. An
 * overdue send is an error. */
static air_status reap_sends(air_pipe *p, int all) {
    air_status st = AIR_OK;
    int k = 0;
    for (int i = 0; i < p->n_sends; i++) {
        pending_send *s = &p->sends[i];
        int flag = 0;
        if (!st && all)
            st = wait_req(&s->req, s->deadline, "a send", s->peer), flag = !st;
        else if (!st) {
            int rc = MPI_Test(&s->req, &flag, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS)
                st = mpi_err(rc, "a send", s->peer);
            else if (!flag && now_s() > s->deadline)
                st = wait_req(&s->req, s->deadline, "a send", s->peer);
        }
        if (flag)
            free(s->buf);
        else
            p->sends[k++] = *s; /* still in flight (or the pipeline broke) */
    }
    p->n_sends = k;
    return st;
}

static air_status reap_idle(air_pipe *p) {
    return reap_sends(p, 0);
}

/* ---------------------------------------------------------------------------
 * the plan: layer ranges by RAM budget
 * ------------------------------------------------------------------------- */

/* Rank 0: splits n_layer layers (and the head, on the last rank) into
 * contiguous ranges in proportion to the budgets. ranges[2r], ranges[2r+1]:
 * rank r's layers [lo, hi). */
static air_status plan_ranges(const air_hparams *hp, int comp, const uint64_t *budget, int n,
                              int *ranges) {
    const char *env = getenv("AIRLLM_PIPELINE_LAYERS");
    if (env && *env) {
        int lo = 0;
        const char *q = env;
        for (int r = 0; r < n; r++) {
            char *end;
            long k = strtol(q, &end, 10);
            if (end == q || k < 1 || (r < n - 1 ? *end != ',' : *end != 0))
                return air_err(AIR_ERR_INVALID_ARG,
                               "AIRLLM_PIPELINE_LAYERS=\"%s\": give %d "
                               "layer counts (>= 1), comma-separated, one per rank",
                               env, n);
            ranges[2 * r] = lo;
            ranges[2 * r + 1] = lo += (int)k;
            q = end + 1;
        }
        if (lo != hp->n_layer)
            return air_err(AIR_ERR_INVALID_ARG,
                           "AIRLLM_PIPELINE_LAYERS=\"%s\" counts %d layers; "
                           "the model has %d",
                           env, lo, hp->n_layer);
        return AIR_OK;
    }
    if (hp->n_layer < n)
        return air_err(AIR_ERR_INVALID_ARG,
                       "%d pipeline ranks but the model has only %d layers; "
                       "start at most %d ranks",
                       n, hp->n_layer, hp->n_layer);
    double total = 0, sum_b = 0;
    double *w = malloc(sizeof(double) * (size_t)(hp->n_layer + 1));
    if (!w)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    for (int u = 0; u <= hp->n_layer; u++)
        total += w[u] = (double)air_store_unit_estimate(hp, (air_compression)comp, u);
    int any = 0;
    for (int r = 0; r < n; r++)
        any |= budget[r] > 0;
    for (int r = 0; r < n; r++)
        sum_b += any ? (double)budget[r] : 1.0;
    double cum = 0, share = 0;
    int l = 0;
    for (int r = 0; r < n - 1; r++) {
        share += any ? (double)budget[r] : 1.0;
        double target = total * share / sum_b;
        int start = l;
        while (l < hp->n_layer - (n - 1 - r) && (l == start || cum + w[l] / 2 <= target))
            cum += w[l++];
        ranges[2 * r] = start;
        ranges[2 * r + 1] = l;
    }
    ranges[2 * (n - 1)] = l;
    ranges[2 * (n - 1) + 1] = hp->n_layer;
    free(w);
    return AIR_OK;
}

air_status air_pipe_plan(const air_hparams *hp, int compression, uint64_t ram_budget,
                         int *first_unit, int *last_unit) {
    if (!air_pipe_available())
        return air_err(AIR_ERR_INVALID_ARG, "no MPI pipeline to plan");
    uint64_t mine = ram_budget;
    if (mine == AIR_RAM_AUTO) {
        air_memlimit ml;
        air_memlimit_read(&ml);
        mine = ml.available == UINT64_MAX ? 0 : ml.available / 4 * 3;
    }
    uint64_t *all = malloc(sizeof(uint64_t) * (size_t)g.size);
    int *ranges = malloc(sizeof(int) * (size_t)(2 * g.size + 1));
    air_status st = AIR_OK;
    if (!all || !ranges) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto out;
    }
    int rc = MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, g.comm);
    if (rc != MPI_SUCCESS) {
        st = mpi_err(rc, "exchanging the RAM budgets", -1);
        goto out;
    }
    char err[512] = "";
    if (g.rank == 0) {
        air_status pst = plan_ranges(hp, compression, all, g.size, ranges);
        ranges[2 * g.size] = pst;
        if (pst)
            snprintf(err, sizeof err, "%s", air_last_error());
    }
    if ((rc = MPI_Bcast(ranges, 2 * g.size + 1, MPI_INT, 0, g.comm)) != MPI_SUCCESS ||
        (rc = MPI_Bcast(err, sizeof err, MPI_CHAR, 0, g.comm)) != MPI_SUCCESS) {
        st = mpi_err(rc, "sharing the layer ranges", 0);
        goto out;
    }
    if (ranges[2 * g.size]) {
        st = air_err((air_status)ranges[2 * g.size], "%s", err);
        goto out;
    }
    int lo = ranges[2 * g.rank], hi = ranges[2 * g.rank + 1];
    *first_unit = g.rank == 0 ? -1 : lo;
    *last_unit = g.rank == g.size - 1 ? hp->n_layer : hi - 1;
out:
    free(all);
    free(ranges);
    return st;
}

/* ---------------------------------------------------------------------------
 * attach / detach
 * ------------------------------------------------------------------------- */

air_status air_pipe_attach(air_engine *e) {
    if (!air_pipe_available())
        return air_err(AIR_ERR_INVALID_ARG, "no MPI pipeline to attach to");
    air_streamer_stats ss;
    air_streamer_get_stats(air_engine_streamer(e), &ss);
    int mine[5] = {e->lo, e->hi, e->has_embed, e->has_head, ss.buffer_bytes == 0};
    int *all = malloc(sizeof(int) * 5 * (size_t)g.size);
    air_pipe *p = calloc(1, sizeof *p);
    if (!all || !p) {
        free(all);
        free(p);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    int rc = MPI_Allgather(mine, 5, MPI_INT, all, 5, MPI_INT, g.comm);
    air_status st = rc != MPI_SUCCESS ? mpi_err(rc, "joining the pipeline", -1) : AIR_OK;
    /* do ranks share a host? (the most ranks on one host, over all hosts) */
    MPI_Comm node;
    int on_node = 1, most = 1;
    if (!st && (rc = MPI_Comm_split_type(g.comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL,
                                         &node)) == MPI_SUCCESS) {
        MPI_Comm_size(node, &on_node);
        MPI_Comm_free(&node);
        if ((rc = MPI_Allreduce(&on_node, &most, 1, MPI_INT, MPI_MAX, g.comm)) != MPI_SUCCESS)
            st = mpi_err(rc, "joining the pipeline", -1);
    } else if (!st) {
        st = mpi_err(rc, "MPI_Comm_split_type", -1);
    }
    g.shared_host = most > 1;
    p->all_resident = 1;
    for (int r = 0; r < g.size && !st; r++) {
        const int *a = all + 5 * r;
        int want_lo = r == 0 ? 0 : all[5 * (r - 1) + 1];
        if (a[0] != want_lo || a[1] <= a[0] || a[2] != (r == 0) || a[3] != (r == g.size - 1) ||
            (r == g.size - 1 && a[1] != e->hp.n_layer))
            st = air_err(AIR_ERR_INVALID_ARG,
                         "pipeline rank %d holds layers %d..%d%s%s, which "
                         "does not join the other ranks' ranges (every rank must open the same "
                         "model with the same compression)",
                         r, a[0], a[1] - 1, a[2] ? " and the embeddings" : "",
                         a[3] ? " and the head" : "");
        p->all_resident &= a[4];
    }
    free(all);
    if (st) {
        free(p);
        return st;
    }
    p->e = e;
    p->stats.ranks = g.size;
    const char *mb = getenv("AIRLLM_PIPELINE_MICROBATCHES");
    p->max_mb = mb && atoi(mb) > 0 ? atoi(mb) : g.shared_host ? 1 : g.size;
    if (p->max_mb > g.size)
        p->max_mb = g.size;
    p->stats.lo = e->lo;
    p->stats.hi = e->hi;
    air_engine_set_pipe(e, p);
    g.bound = 1;
    g.driver = g.rank == 0;
    return AIR_OK;
}

static void free_worker_kv(air_pipe *p) {
    for (int i = 0; i < p->n_kvs; i++)
        air_kv_free(&p->kvs[i].kv);
    free(p->kvs);
    p->kvs = NULL;
    p->n_kvs = p->cap_kvs = 0;
}

void air_pipe_detach(air_engine *e) {
    air_pipe *p = air_engine_pipe(e);
    if (!p)
        return;
    if (g.rank == 0 && !p->broken) {
        msg_hdr *h = calloc(1, sizeof *h);
        if (h) {
            h->op = OP_STOP;
            if (send_msg(p, h, sizeof *h, 1, TAG_PASS) == AIR_OK)
                reap_sends(p, 1);
            air_err_clear();
        }
    }
    /* what could not be sent is left to MPI (the job is ending) */
    for (int i = 0; i < p->n_sends; i++)
        p->sends[i].buf = NULL;
    free(p->sends);
    free_worker_kv(p);
    free(p);
    air_engine_set_pipe(e, NULL);
    g.bound = 0;
    g.driver = 0;
    pthread_mutex_lock(&g.mu);
    g.n_ev = 0;
    pthread_mutex_unlock(&g.mu);
}

/* ---------------------------------------------------------------------------
 * KV events (rank 0 -> workers)
 * ------------------------------------------------------------------------- */

static void push_ev(const int32_t *w, size_t n, const int32_t *more, size_t n_more) {
    pthread_mutex_lock(&g.mu);
    if (g.driver) {
        size_t need = g.n_ev + n + n_more;
        if (need > g.cap_ev) {
            size_t cap = need * 2 + 64;
            int32_t *t = realloc(g.ev, sizeof(int32_t) * cap);
            if (t) {
                g.ev = t;
                g.cap_ev = cap;
            }
        }
        if (need <= g.cap_ev) {
            memcpy(g.ev + g.n_ev, w, sizeof(int32_t) * n);
            if (n_more)
                memcpy(g.ev + g.n_ev + n, more, sizeof(int32_t) * n_more);
            g.n_ev = need;
        }
    }
    pthread_mutex_unlock(&g.mu);
}

void air_pipe_note_kv_free(uint64_t id) {
    int32_t w[3] = {EV_FREE, (int32_t)(uint32_t)id, (int32_t)(uint32_t)(id >> 32)};
    push_ev(w, 3, NULL, 0);
}

void air_pipe_note_keep_path(uint64_t id, int base, const int32_t *slots, int n) {
    int32_t w[5] = {EV_KEEP_PATH, (int32_t)(uint32_t)id, (int32_t)(uint32_t)(id >> 32), base, n};
    push_ev(w, 5, slots, (size_t)n);
}

static worker_kv *find_kv(air_pipe *p, uint64_t id) {
    for (int i = 0; i < p->n_kvs; i++)
        if (p->kvs[i].id == id)
            return &p->kvs[i];
    return NULL;
}

/* Applies rank 0's events; ids this rank never saw are skipped. */
static void apply_events(air_pipe *p, const int32_t *w, int n) {
    for (int i = 0; i + 3 <= n;) {
        uint64_t id = (uint64_t)(uint32_t)w[i + 1] | (uint64_t)(uint32_t)w[i + 2] << 32;
        worker_kv *k = find_kv(p, id);
        if (w[i] == EV_FREE) {
            if (k) {
                air_kv_free(&k->kv);
                *k = p->kvs[--p->n_kvs];
            }
            i += 3;
        } else if (w[i] == EV_KEEP_PATH && i + 5 <= n && i + 5 + w[i + 4] <= n) {
            if (k)
                air_kv_keep_path(&k->kv, w[i + 3], w + i + 5, w[i + 4]);
            i += 5 + w[i + 4];
        } else {
            break;
        }
    }
}

static air_status get_kv(air_pipe *p, uint64_t id, int max_seq, air_kv **out) {
    worker_kv *k = find_kv(p, id);
    if (k && k->kv.max_seq != max_seq) { /* cannot happen for one id; be safe */
        air_kv_free(&k->kv);
        *k = p->kvs[--p->n_kvs];
        k = NULL;
    }
    if (!k) {
        if (p->n_kvs == p->cap_kvs) {
            int cap = p->cap_kvs ? 2 * p->cap_kvs : 8;
            worker_kv *t = realloc(p->kvs, sizeof *t * (size_t)cap);
            if (!t)
                return air_err(AIR_ERR_NOMEM, "out of memory");
            p->kvs = t;
            p->cap_kvs = cap;
        }
        k = &p->kvs[p->n_kvs];
        air_status st = air_kv_init(&k->kv, &p->e->hp, max_seq);
        if (st)
            return st;
        k->id = id;
        p->n_kvs++;
    }
    *out = &k->kv;
    return AIR_OK;
}

/* ---------------------------------------------------------------------------
 * messages
 * ------------------------------------------------------------------------- */

static size_t x_offset(int n, int n_ev) {
    size_t off = sizeof(msg_hdr) + sizeof(msg_row) * (size_t)n + sizeof(int32_t) * (size_t)n_ev;
    return (off + 63) & ~(size_t)63;
}

static void set_failed(msg_hdr *h, air_status st) {
    h->status = st;
    h->rank_failed = g.rank;
    snprintf(h->err, sizeof h->err, "%s", air_last_error());
}

/* The rows of a message as a batch over this rank's caches. */
typedef struct {
    int32_t *tokens, *pos, *slot, *parent;
    air_kv **kv;
    uint8_t *want;
} batch_arrays;

static void batch_arrays_free(batch_arrays *a) {
    free(a->tokens);
    free(a->pos);
    free(a->slot);
    free(a->parent);
    free(a->kv);
    free(a->want);
}

static air_status batch_from_rows(air_pipe *p, const msg_hdr *h, const msg_row *rows,
                                  batch_arrays *a, air_batch *b) {
    size_t n = (size_t)h->n;
    memset(a, 0, sizeof *a);
    a->tokens = malloc(sizeof(int32_t) * n);
    a->pos = malloc(sizeof(int32_t) * n);
    a->slot = malloc(sizeof(int32_t) * n);
    a->parent = malloc(sizeof(int32_t) * n);
    a->kv = malloc(sizeof(air_kv *) * n);
    a->want = malloc(n);
    if (!a->tokens || !a->pos || !a->slot || !a->parent || !a->kv || !a->want)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    for (size_t r = 0; r < n; r++) {
        air_status st = get_kv(p, rows[r].kv_id, rows[r].max_seq, &a->kv[r]);
        if (st)
            return st;
        a->tokens[r] = rows[r].token;
        a->pos[r] = rows[r].pos;
        a->slot[r] = rows[r].slot;
        a->parent[r] = rows[r].parent;
        a->want[r] = (uint8_t)rows[r].want;
    }
    *b = (air_batch){h->n,
                     a->tokens,
                     a->pos,
                     a->kv,
                     a->want,
                     NULL,
                     h->tree ? a->slot : NULL,
                     h->tree ? a->parent : NULL};
    return AIR_OK;
}

/* ---------------------------------------------------------------------------
 * workers
 * ------------------------------------------------------------------------- */

/* One micro-batch on a worker: its layers on x in place, then on to the next
 * rank, or the head and the logits back to rank 0. */
static air_status worker_pass(air_pipe *p, void *buf, int len) {
    air_engine *e = p->e;
    msg_hdr *h = buf;
    const int last = g.rank == g.size - 1;
    size_t xo = x_offset(h->n, h->n_ev);
    if (len < (int)sizeof *h || h->n < 0 || h->n_ev < 0 || (size_t)len < xo ||
        (h->status == AIR_OK && (size_t)len < xo + sizeof(float) * (size_t)h->n * e->hp.n_embd)) {
        free(buf);
        return air_err(AIR_ERR_INTERNAL,
                       "pipeline rank %d: a malformed message from rank %d "
                       "(%d bytes)",
                       g.rank, g.rank - 1, len);
    }
    msg_row *rows = (msg_row *)(h + 1);
    apply_events(p, (const int32_t *)(rows + h->n), h->n_ev);
    float *x = (float *)((char *)buf + xo);
    float *logits = NULL;
    size_t out_len = len;
    if (h->status == AIR_OK) {
        batch_arrays a;
        air_batch b;
        air_status st = batch_from_rows(p, h, rows, &a, &b);
        if (!st && last) {
            logits = malloc(sizeof(msg_hdr) + sizeof(float) * (size_t)h->n_want * e->hp.n_vocab);
            if (!logits)
                st = air_err(AIR_ERR_NOMEM, "out of memory for the logits");
            b.logits = logits ? (float *)((char *)logits + sizeof(msg_hdr)) : NULL;
        }
        double t0 = now_s();
        if (!st)
            st = air_engine_pass_begin(e, &b);
        if (!st)
            st = air_engine_pass_layers(e, &b, x);
        if (!st && last)
            st = air_engine_pass_head(e, &b, x);
        air_engine_pass_end(e);
        h->busy_s += now_s() - t0;
        batch_arrays_free(&a);
        if (st)
            set_failed(h, st);
    }
    if (!last) {
        if (h->status != AIR_OK)
            out_len = xo; /* the error travels on with the rows and events, without x */
        return send_msg(p, buf, out_len, g.rank + 1, TAG_PASS);
    }
    if (h->status != AIR_OK) {
        free(logits);
        logits = NULL;
        out_len = sizeof *h;
    } else {
        out_len = sizeof(msg_hdr) + sizeof(float) * (size_t)h->n_want * e->hp.n_vocab;
    }
    void *reply = logits ? (void *)logits : malloc(sizeof *h);
    if (!reply) {
        free(buf);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    memcpy(reply, h, sizeof *h);
    free(buf);
    return send_msg(p, reply, out_len, 0, TAG_LOGITS);
}

air_status air_pipe_worker(air_engine *e) {
    air_pipe *p = air_engine_pipe(e);
    if (!p || g.rank == 0)
        return air_err(AIR_ERR_INVALID_ARG, "air_pipeline_worker: this process is not a pipeline "
                                            "rank above 0 with a pipelined model");
    for (;;) {
        void *buf;
        int len = 0;
        air_status st = recv_msg(g.rank - 1, TAG_PASS, 0, reap_idle, p, &buf, &len);
        if (st)
            return st;
        msg_hdr *h = buf;
        if (len >= (int)sizeof *h && h->op == OP_STOP) {
            if (g.rank < g.size - 1)
                st = send_msg(p, buf, sizeof *h, g.rank + 1, TAG_PASS);
            else
                free(buf);
            air_status st2 = reap_sends(p, 1);
            return st ? st : st2;
        }
        if ((st = worker_pass(p, buf, len)))
            return st;
    }
}

/* ---------------------------------------------------------------------------
 * rank 0
 * ------------------------------------------------------------------------- */

/* Micro-batches: the rows cut at sequence boundaries into at most `most`
 * parts of similar size. A sequence whose rows are not contiguous keeps the
 * batch whole. Returns the count; cut[k] .. cut[k+1] are part k's rows. */
static int micro_batches(const air_batch *b, int most, int *cut) {
    int n_seq = 1;
    for (int r = 1; r < b->n; r++)
        if (b->kv[r] != b->kv[r - 1]) {
            for (int q = 0; q < r - 1; q++)
                if (b->kv[q] == b->kv[r]) {
                    most = 1;
                    break;
                }
            n_seq++;
        }
    int parts = n_seq < most ? n_seq : most;
    cut[0] = 0;
    int k = 1;
    for (int r = 1; r < b->n && k < parts; r++)
        if (b->kv[r] != b->kv[r - 1] && r >= (long)b->n * k / parts)
            cut[k++] = r;
    cut[k] = b->n;
    return k;
}

air_status air_pipe_forward(air_engine *e, const air_batch *b) {
    air_pipe *p = air_engine_pipe(e);
    if (g.rank != 0)
        return air_err(AIR_ERR_INVALID_ARG,
                       "pipeline rank %d runs passes for rank 0 only "
                       "(air_pipeline_worker)",
                       g.rank);
    if (p->broken)
        return air_err(AIR_ERR_IO, "%s", p->broken_msg);
    if (b->n <= 0)
        return air_err(AIR_ERR_INVALID_ARG, "empty batch");
    const int n_embd = e->hp.n_embd, n_vocab = e->hp.n_vocab;
    int *cut = malloc(sizeof(int) * (size_t)(g.size + 1));
    int *want_off = malloc(sizeof(int) * (size_t)(g.size + 1));
    uint8_t *want = malloc((size_t)b->n);
    if (!cut || !want_off || !want) {
        free(cut);
        free(want_off);
        free(want);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    for (int r = 0; r < b->n; r++)
        want[r] = b->want_logits ? b->want_logits[r] != 0 : r == b->n - 1;
    int n_mb = micro_batches(b, p->all_resident ? p->max_mb : 1, cut);
    pthread_mutex_lock(&g.mu);
    int32_t *ev = g.ev;
    int n_ev = (int)g.n_ev;
    g.ev = NULL;
    g.n_ev = g.cap_ev = 0;
    pthread_mutex_unlock(&g.mu);
    p->pass++;
    const double t_pass = now_s();

    air_status st = AIR_OK;
    int sent = 0;
    want_off[0] = 0;
    for (int k = 0; k < n_mb && !st; k++) {
        int r0 = cut[k], n = cut[k + 1] - r0, ne = k == 0 ? n_ev : 0;
        size_t xo = x_offset(n, ne), len = xo + sizeof(float) * (size_t)n * n_embd;
        char *buf = malloc(len);
        if (!buf) {
            st = air_err(AIR_ERR_NOMEM, "out of memory for activations of %d rows", n);
            break;
        }
        msg_hdr *h = (msg_hdr *)buf;
        memset(h, 0, sizeof *h);
        h->op = OP_PASS;
        h->n = n;
        h->mb = k;
        h->tree = b->parent != NULL;
        h->n_ev = ne;
        h->pass = p->pass;
        msg_row *rows = (msg_row *)(h + 1);
        for (int r = 0; r < n; r++) {
            int i = r0 + r;
            rows[r] = (msg_row){b->kv[i]->id,
                                b->kv[i]->max_seq,
                                b->pos[i],
                                b->slot ? b->slot[i] : b->pos[i],
                                b->parent ? b->parent[i] : -1,
                                b->tokens[i],
                                want[i]};
            h->n_want += want[i];
        }
        want_off[k + 1] = want_off[k] + h->n_want;
        if (ne)
            memcpy(rows + n, ev, sizeof(int32_t) * (size_t)ne);
        air_batch sb = {n,
                        b->tokens + r0,
                        b->pos + r0,
                        b->kv + r0,
                        want + r0,
                        NULL,
                        b->slot ? b->slot + r0 : NULL,
                        b->parent ? b->parent + r0 : NULL};
        float *x = (float *)(buf + xo);
        double t0 = now_s();
        air_status ls = air_engine_pass_begin(e, &sb);
        if (!ls)
            ls = air_engine_pass_embed(e, &sb, x);
        if (!ls)
            ls = air_engine_pass_layers(e, &sb, x);
        air_engine_pass_end(e);
        p->stats.local_s += now_s() - t0;
        p->stats.bytes_sent += len;
        if (ls) {
            /* the others still get this micro-batch, as an error, so every
             * rank stays in step; no further ones are made */
            set_failed(h, ls);
            len = xo;
            n_mb = k + 1;
        }
        if ((st = send_msg(p, buf, len, 1, TAG_PASS)))
            break;
        sent++;
        reap_sends(p, 0);
    }
    free(ev);
    /* one answer per micro-batch sent */
    char first_err[512] = "";
    air_status fst = AIR_OK;
    for (int i = 0; i < sent && !st; i++) {
        void *buf;
        int len = 0;
        if ((st = recv_msg(g.size - 1, TAG_LOGITS, now_s() + g.timeout, reap_idle, p, &buf, &len)))
            break;
        const msg_hdr *h = buf;
        if (len < (int)sizeof *h || h->mb < 0 || h->mb >= n_mb) {
            st = air_err(AIR_ERR_INTERNAL, "pipeline: a malformed answer from rank %d", g.size - 1);
        } else if (h->status != AIR_OK) {
            if (!fst) {
                fst = (air_status)h->status;
                snprintf(first_err, sizeof first_err, "pipeline rank %d: %s", h->rank_failed,
                         h->err);
            }
        } else if ((size_t)len != sizeof *h + sizeof(float) * (size_t)h->n_want * n_vocab ||
                   h->n_want != want_off[h->mb + 1] - want_off[h->mb]) {
            st = air_err(AIR_ERR_INTERNAL,
                         "pipeline: an answer of %d bytes from rank %d does not "
                         "match micro-batch %d",
                         len, g.size - 1, h->mb);
        } else {
            p->stats.remote_s += h->busy_s;
            if (b->logits)
                memcpy(b->logits + (size_t)want_off[h->mb] * n_vocab, h + 1,
                       sizeof(float) * (size_t)h->n_want * n_vocab);
        }
        free(buf);
    }
    if (!st)
        st = reap_sends(p, 1);
    p->stats.passes++;
    p->stats.micro_batches += sent;
    p->stats.pass_s += now_s() - t_pass;
    if (st && st != AIR_ERR_NOMEM) { /* out of step with the others: no further pass */
        p->broken = 1;
        snprintf(p->broken_msg, sizeof p->broken_msg, "%s", air_last_error());
    }
    free(cut);
    free(want_off);
    free(want);
    if (!st && fst)
        st = air_err(fst, "%s", first_err);
    return st;
}
