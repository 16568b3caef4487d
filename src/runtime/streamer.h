/*
 * streamer.h - brings layer-store units into memory for the forward pass.
 *
 * Units are used in a fixed cycle (layer 0 .. n_layer-1, head, layer 0, ...).
 * A residency plan pins a fixed set of units in RAM (as many as the budget
 * holds: the head first, then layers from 0 — any fixed set saves the same
 * I/O on a cyclic scan, where LRU would evict exactly what comes next). The
 * other units stream through two buffers, each as large as the largest
 * streamed unit: with prefetching, a reader thread fills them with the next
 * units of the cycle, as many as fit (many small units, or one large one
 * while the other buffer's computes).
 *
 * Peak memory of a fully streamed model: 2 x the largest unit.
 */
#ifndef AIR_RUNTIME_STREAMER_H
#define AIR_RUNTIME_STREAMER_H

#include <stdint.h>

#include "store/store.h"

typedef struct {
    int prefetch;        /* 1: a reader thread reads ahead (default) */
    int direct_io;       /* 1: O_DIRECT reads where the file system allows */
    /* bytes of units to keep resident (0: stream all). AIR_RAM_AUTO: from the
     * memory this process can still take (MemAvailable, or the room under its
     * memory cgroup if tighter): 3/4 of it, less two streaming buffers and
     * reserve_bytes */
    uint64_t ram_budget;
    uint64_t reserve_bytes; /* memory needed besides units (KV cache, activations) */
    /* (n_units) units the caller keeps elsewhere (in GPU memory): never read,
     * pinned or given a buffer; NULL: none. Copied. */
    const uint8_t *skip;
} air_streamer_options;

typedef struct {
    /* streamed bytes since creation, and the time their reads took; a unit
     * read ahead counts once compute takes it (or it is dropped) */
    uint64_t bytes_read;
    double read_seconds;
    double wait_seconds;  /* time compute waited for a unit */
    int read_ahead;       /* units read (or being read) and not yet taken */
    int n_pinned;
    uint64_t pinned_bytes;
    uint64_t buffer_bytes; /* streaming buffers */
    uint64_t ram_budget;   /* the budget in force (AIR_RAM_AUTO resolved) */
} air_streamer_stats;

typedef struct air_streamer air_streamer;

air_status air_streamer_create(air_store *store, const air_streamer_options *opt,
                               air_streamer **out);
void air_streamer_free(air_streamer *s);

/* Returns unit u, loaded and verified; blocks until it is. The layer stays
 * valid until air_streamer_release(s, u). At most one unit is held at a time
 * by the caller. */
air_status air_streamer_acquire(air_streamer *s, int u, const air_layer **out);
void air_streamer_release(air_streamer *s, int u);

/* Returns once the reader thread has nothing more to read ahead (its
 * buffers are full), e.g. before measuring the disk without it. */
void air_streamer_wait_idle(air_streamer *s);

void air_streamer_get_stats(const air_streamer *s, air_streamer_stats *st);
int air_streamer_is_pinned(const air_streamer *s, int u);
/* The streamer's host buffers (pinned units and the two streaming buffers),
 * e.g. for a GPU to page-lock them: up to cap of them into ptr[] / bytes[];
 * returns how many there are. */
int air_streamer_host_buffers(const air_streamer *s, void **ptr, uint64_t *bytes, int cap);
/* Bytes one read of unit u brings in: the whole file, or the dense part of a
 * mixture-of-experts layer (its experts are read by runtime/experts.c). */
uint64_t air_streamer_unit_read_bytes(const air_streamer *s, int u);

#endif
