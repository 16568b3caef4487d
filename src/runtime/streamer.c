/*
 * streamer.c - pinned units, two streaming buffers and the reader thread.
 *
 * The two buffers ("buckets") are as large as the largest streamed unit.
 * The reader packs the next units of the cycle into them one after the
 * other, as many as fit: with small units it reads many ahead (while the
 * head computes, or a draft model proposes between two passes, the first
 * layers of the next pass come in), with one large unit per bucket it is
 * the classic double buffer. A bucket is refilled from its start once
 * every unit in it is released; the reader moves to the other bucket when
 * the next unit does not fit.
 *
 * Entry states: LOADING (reader) -> READY -> INUSE (compute) -> free.
 * acquire(u) takes the entry holding u; if none holds or will hold u (the
 * caller left the cycle, e.g. after an error), it discards what was read
 * ahead and restarts the cycle at u.
 */
#include "runtime/streamer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/error.h"
#include "util/memlimit.h"

enum { FREE, LOADING, READY, INUSE };

/* units read ahead at most (entries of both buckets together) */
#define MAX_ENTRIES 64

typedef struct {
    int unit;
    int state;
    int bucket;
    air_status status;
    char err[512];
    void *buf;
    air_layer layer;
    int unchecked; /* a whole file loaded with its data checksum left to the consumer */
    double read_s; /* the time its read took */
} entry;

struct air_streamer {
    air_store *store;
    air_streamer_options opt;
    int n_units;
    /* bytes read per unit: the whole file, or for a mixture-of-experts layer
     * its dense prefix (experts are read by runtime/experts.c) */
    uint64_t *unit_bytes;
    /* pinned units */
    uint8_t *pinned;
    uint8_t *skip; /* units kept elsewhere: never read */
    void **pin_buf;
    air_layer *pin_layer;
    /* streaming */
    uint64_t slot_cap;     /* bytes of each bucket */
    void *bucket[2];
    uint64_t fill[2];      /* bytes placed in each bucket */
    int live[2];           /* entries in each bucket not yet released */
    int cur;               /* the bucket the reader fills */
    entry ent[MAX_ENTRIES];
    int next_unit; /* next unit the reader will load */
    int idle;      /* the reader waits: nothing to read, or no room */
    int stop;
    int has_thread;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t idle_cv; /* the reader went idle (air_streamer_wait_idle) */
    air_streamer_stats stats;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int next_streamed(const air_streamer *s, int u) {
    for (int i = 0; i < s->n_units; i++) {
        u = (u + 1) % s->n_units;
        if (!s->pinned[u] && !s->skip[u])
            return u;
    }
    return -1;
}

static uint64_t space_of(uint64_t bytes) {
    return (bytes + AIR_LF_ALIGN - 1) / AIR_LF_ALIGN * AIR_LF_ALIGN;
}

/* Loads unit u into entry en (no lock held). */
static void load_entry(air_streamer *s, entry *en, int u) {
    double t0 = now_s();
    /* the data checksum of a whole file is left to the consumer (acquire), so
     * this thread goes on to the next read at once */
    air_status st = air_store_load_unit(s->store, u, en->buf, space_of(s->unit_bytes[u]),
                                        s->unit_bytes[u],
                                        (s->opt.direct_io ? AIR_LF_DIRECT : 0) | AIR_LF_DEFER_DATA,
                                        &en->layer);
    en->unchecked = !st && s->unit_bytes[u] == air_store_unit_bytes(s->store, u);
    double dt = now_s() - t0;
    pthread_mutex_lock(&s->mu);
    en->status = st;
    en->read_s = dt;
    if (st)
        snprintf(en->err, sizeof en->err, "%s", air_last_error());
    else {
        s->stats.bytes_read += s->unit_bytes[u];
        s->stats.read_seconds += dt;
    }
    pthread_mutex_unlock(&s->mu);
}

/* Frees an entry (lock held); a bucket with no live entry left starts over. */
static void drop_entry(air_streamer *s, entry *en) {
    en->state = FREE;
    en->unit = -1;
    if (--s->live[en->bucket] == 0)
        s->fill[en->bucket] = 0;
}

/* Room for unit u (lock held): an entry placed in a bucket, or NULL when the
 * reader must wait. It does not read a unit twice ahead: u must not be
 * waiting in an entry already (one in use may be read again: a cycle of a
 * single streamed unit). */
static entry *place(air_streamer *s, int u) {
    entry *en = NULL;
    for (int i = 0; i < MAX_ENTRIES; i++) {
        if (s->ent[i].state == FREE && !en)
            en = &s->ent[i];
        if (s->ent[i].unit == u && (s->ent[i].state == READY || s->ent[i].state == LOADING))
            return NULL;
    }
    if (!en)
        return NULL;
    uint64_t need = space_of(s->unit_bytes[u]);
    int b = s->cur;
    if (s->fill[b] + need > s->slot_cap) {
        b = 1 - b;
        if (s->live[b] > 0)
            return NULL;
    }
    s->cur = b;
    en->unit = u;
    en->bucket = b;
    en->buf = (char *)s->bucket[b] + s->fill[b];
    en->status = AIR_OK;
    s->fill[b] += need;
    s->live[b]++;
    return en;
}

static void *reader_main(void *arg) {
    air_streamer *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        entry *en = NULL;
        while (!s->stop && !(s->next_unit >= 0 && (en = place(s, s->next_unit)))) {
            if (!s->idle) {
                s->idle = 1;
                pthread_cond_broadcast(&s->idle_cv);
            }
            pthread_cond_wait(&s->cv, &s->mu);
        }
        s->idle = 0;
        if (s->stop)
            break;
        int u = s->next_unit;
        s->next_unit = next_streamed(s, u);
        en->state = LOADING;
        pthread_mutex_unlock(&s->mu);
        load_entry(s, en, u);
        pthread_mutex_lock(&s->mu);
        en->state = READY;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

void air_streamer_free(air_streamer *s) {
    if (!s)
        return;
    if (s->has_thread) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    for (int i = 0; i < 2; i++)
        free(s->bucket[i]);
    for (int u = 0; u < s->n_units; u++)
        if (s->pin_buf)
            free(s->pin_buf[u]);
    free(s->pin_buf);
    free(s->pin_layer);
    free(s->pinned);
    free(s->skip);
    free(s->unit_bytes);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->idle_cv);
    free(s);
}

/* AIR_RAM_AUTO: 3/4 of the memory this process can still take (the rest is
 * headroom for the allocator, the page cache and other processes), less two
 * streaming buffers of the largest streamed unit (for a mixture-of-experts
 * layer its dense part: experts have their own buffers) and the caller's
 * reserve. */
static uint64_t auto_budget(const air_streamer *s) {
    air_memlimit ml;
    air_memlimit_read(&ml);
    if (ml.available == UINT64_MAX)
        return 0; /* unknown: stream everything */
    uint64_t largest = 0;
    for (int u = 0; u < s->n_units; u++)
        if (s->unit_bytes[u] > largest)
            largest = s->unit_bytes[u];
    uint64_t usable = ml.available / 4 * 3, need = 2 * largest + s->opt.reserve_bytes;
    return usable > need ? usable - need : 0;
}

air_status air_streamer_create(air_store *store, const air_streamer_options *opt,
                               air_streamer **out) {
    *out = NULL;
    air_streamer *s = calloc(1, sizeof *s);
    if (!s)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    s->store = store;
    s->opt = *opt;
    s->n_units = air_store_n_units(store);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->idle_cv, NULL);
    s->pinned = calloc((size_t)s->n_units, 1);
    s->pin_buf = calloc((size_t)s->n_units, sizeof(void *));
    s->pin_layer = calloc((size_t)s->n_units, sizeof(air_layer));
    s->unit_bytes = calloc((size_t)s->n_units, sizeof(uint64_t));
    s->skip = calloc((size_t)s->n_units, 1);
    air_status st = AIR_OK;
    if (!s->pinned || !s->pin_buf || !s->pin_layer || !s->unit_bytes || !s->skip) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (opt->skip)
        memcpy(s->skip, opt->skip, (size_t)s->n_units);
    for (int u = 0; u < s->n_units; u++) {
        s->unit_bytes[u] = air_store_unit_bytes(store, u);
        if (!air_store_has_unit(store, u)) {
            s->skip[u] = 1; /* another pipeline rank's unit */
            continue;
        }
        if (u < air_store_hparams(store)->n_layer &&
            air_hp_layer_is_moe(air_store_hparams(store), u)) {
            air_lf_table t;
            if ((st = air_lf_read_table(air_store_unit_path(store, u), &t)))
                goto fail;
            s->unit_bytes[u] = t.dense_bytes;
            air_lf_table_free(&t);
        }
    }

    /* Residency plan: head first (read every pass, the largest unit), then
     * layers from 0, while the budget holds. */
    uint64_t budget = opt->ram_budget == AIR_RAM_AUTO ? auto_budget(s) : opt->ram_budget;
    s->stats.ram_budget = budget;
    uint64_t used = 0;
    int head = s->n_units - 1;
    for (int k = 0; k < s->n_units; k++) {
        int u = k == 0 ? head : k - 1;
        uint64_t b = s->unit_bytes[u];
        if (s->skip[u] || used + b > budget)
            continue;
        s->pin_buf[u] = air_lf_alloc(b);
        if (!s->pin_buf[u]) {
            st = air_err(AIR_ERR_NOMEM, "out of memory pinning unit %d (%llu bytes); lower the "
                         "RAM budget", u, (unsigned long long)b);
            goto fail;
        }
        if ((st = air_store_load_unit(store, u, s->pin_buf[u], b, b, opt->direct_io,
                                      &s->pin_layer[u])))
            goto fail;
        s->pinned[u] = 1;
        used += b;
        s->stats.n_pinned++;
    }
    s->stats.pinned_bytes = used;

    for (int u = 0; u < s->n_units; u++)
        if (!s->pinned[u] && !s->skip[u] && s->unit_bytes[u] > s->slot_cap)
            s->slot_cap = s->unit_bytes[u];
    s->slot_cap = space_of(s->slot_cap);
    for (int i = 0; i < MAX_ENTRIES; i++)
        s->ent[i].unit = -1;
    if (s->slot_cap && next_streamed(s, s->n_units - 1) >= 0) {
        for (int i = 0; i < 2; i++)
            if (!(s->bucket[i] = air_lf_alloc(s->slot_cap))) {
                st = air_err(AIR_ERR_NOMEM, "out of memory for two streaming buffers of %llu bytes",
                             (unsigned long long)s->slot_cap);
                goto fail;
            }
        s->stats.buffer_bytes = 2 * s->slot_cap;
        s->next_unit = next_streamed(s, s->n_units - 1);
        if (opt->prefetch) {
            if (pthread_create(&s->thread, NULL, reader_main, s) != 0) {
                st = air_err(AIR_ERR_INTERNAL, "cannot start the reader thread");
                goto fail;
            }
            s->has_thread = 1;
        }
    }
    *out = s;
    return AIR_OK;
fail:
    air_streamer_free(s);
    return st;
}

int air_streamer_is_pinned(const air_streamer *s, int u) { return s->pinned[u]; }

int air_streamer_host_buffers(const air_streamer *s, void **ptr, uint64_t *bytes, int cap) {
    int n = 0;
    for (int u = 0; u < s->n_units; u++)
        if (s->pinned[u]) {
            if (n < cap) {
                ptr[n] = s->pin_buf[u];
                bytes[n] = s->unit_bytes[u];
            }
            n++;
        }
    for (int i = 0; i < 2; i++)
        if (s->bucket[i]) {
            if (n < cap) {
                ptr[n] = s->bucket[i];
                bytes[n] = s->slot_cap;
            }
            n++;
        }
    return n;
}
uint64_t air_streamer_unit_read_bytes(const air_streamer *s, int u) { return s->unit_bytes[u]; }

air_status air_streamer_acquire(air_streamer *s, int u, const air_layer **out) {
    if (u < 0 || u >= s->n_units || s->skip[u])
        return air_err(AIR_ERR_INTERNAL, "unit %d out of range or kept elsewhere", u);
    if (s->pinned[u]) {
        *out = &s->pin_layer[u];
        return AIR_OK;
    }
    double t0 = now_s();
    air_status st = AIR_OK;
    if (!s->has_thread) {
        /* synchronous: one unit at a time at the start of bucket 0 */
        entry *en = &s->ent[0];
        en->unit = u;
        en->bucket = 0;
        en->buf = s->bucket[0];
        s->live[0] = 1;
        load_entry(s, en, u);
        en->state = INUSE;
        st = en->status;
        if (!st && en->unchecked) {
            st = air_lf_check_data(air_store_unit_path(s->store, u), en->buf);
            en->unchecked = 0;
        }
        if (st) {
            if (en->status)
                air_err(st, "%s", en->err);
            drop_entry(s, en);
        }
        *out = &en->layer;
        s->stats.wait_seconds += now_s() - t0;
        return st;
    }
    pthread_mutex_lock(&s->mu);
    entry *got = NULL;
    for (;;) {
        entry *hit = NULL;
        int coming = 0;
        for (int i = 0; i < MAX_ENTRIES; i++) {
            if (s->ent[i].unit == u && s->ent[i].state == READY && !hit)
                hit = &s->ent[i];
            if (s->ent[i].unit == u && s->ent[i].state == LOADING)
                coming = 1;
        }
        if (hit) {
            hit->state = INUSE;
            st = hit->status;
            if (st) {
                /* the caller gets no layer: free the entry now */
                air_err(st, "%s", hit->err);
                drop_entry(s, hit);
                pthread_cond_broadcast(&s->cv);
            }
            *out = &hit->layer;
            got = st ? NULL : hit;
            break;
        }
        if (!coming) {
            /* out of cycle: drop what was read ahead and restart at u */
            for (int i = 0; i < MAX_ENTRIES; i++)
                if (s->ent[i].state == READY)
                    drop_entry(s, &s->ent[i]);
            s->next_unit = u;
            pthread_cond_broadcast(&s->cv);
        }
        pthread_cond_wait(&s->cv, &s->mu);
    }
    s->stats.wait_seconds += now_s() - t0;
    pthread_mutex_unlock(&s->mu);
    if (got && got->unchecked) { /* the entry is ours while INUSE */
        got->unchecked = 0;
        if ((st = air_lf_check_data(air_store_unit_path(s->store, u), got->buf)))
            air_streamer_release(s, u);
    }
    return st;
}

void air_streamer_release(air_streamer *s, int u) {
    if (s->pinned[u])
        return;
    if (!s->has_thread) {
        if (s->ent[0].state == INUSE && s->ent[0].unit == u)
            drop_entry(s, &s->ent[0]);
        return;
    }
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < MAX_ENTRIES; i++)
        if (s->ent[i].unit == u && s->ent[i].state == INUSE)
            drop_entry(s, &s->ent[i]);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void air_streamer_wait_idle(air_streamer *s) {
    if (!s->has_thread)
        return;
    pthread_mutex_lock(&s->mu);
    while (!s->idle)
        pthread_cond_wait(&s->idle_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

void air_streamer_get_stats(const air_streamer *s, air_streamer_stats *st) {
    pthread_mutex_lock((pthread_mutex_t *)&s->mu);
    *st = s->stats;
    /* a unit read ahead counts once compute takes it (or drops it), so that
     * the counts taken between two passes do not depend on how far the
     * reader got */
    if (s->has_thread)
        for (int i = 0; i < MAX_ENTRIES; i++) {
            st->read_ahead += s->ent[i].state == READY || s->ent[i].state == LOADING;
            if (s->ent[i].state == READY && !s->ent[i].status) {
                st->bytes_read -= s->unit_bytes[s->ent[i].unit];
                st->read_seconds -= s->ent[i].read_s;
            }
        }
    pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
}
