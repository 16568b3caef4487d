/*
 * pool.c - the thread pool behind air_pool_run().
 *
 * A run publishes (fn, ctx) and a new generation in `claim`, a 64-bit word
 * holding (generation << 32 | next slice). Every thread of the pool, the
 * caller included, claims slices with a compare-and-swap on that word and
 * runs fn(ctx, slice, n) for each, until none is left; the caller then waits
 * for the pending count to reach zero. Because slices are claimed rather than
 * assigned, a worker that the kernel has not scheduled yet (other processes
 * busy on the cores, or more threads than CPUs) never holds a run up: the
 * threads that are running take its slices, and it finds none left when it
 * wakes. A claim only succeeds while its generation is current, so a late
 * worker never runs a slice of a finished run.
 *
 * Workers spin briefly for the next generation, then sleep on a condition
 * variable; back-to-back runs (one per matmul of a layer) thus cost well
 * under a microsecond while they still spin. A pool with more threads than
 * the CPUs this process may use does not spin at all: a spinning thread
 * would take the CPU from one with work to do.
 *
 * No wake-up can be lost: a sleeper re-checks its condition under the mutex,
 * and whoever changes that condition (the caller publishing a generation, the
 * last slice bringing pending to zero) takes the same mutex before it
 * signals. Both signals are unconditional (uncontended lock + signal with no
 * waiter costs tens of nanoseconds), so correctness does not rest on
 * store-load ordering between separate atomics.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "kernels/pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

/* Spin iterations before sleeping (a pause is ~10-140 cycles: tens of us);
 * -DAIR_POOL_SPIN_ITERS=N overrides it for experiments (tools/bench/bench_threads). */
#ifndef AIR_POOL_SPIN_ITERS
#define AIR_POOL_SPIN_ITERS (1 << 14)
#endif
#define SPIN_ITERS AIR_POOL_SPIN_ITERS

struct air_pool {
    int n;    /* threads including the caller = slices per run */
    int spin; /* spin iterations before sleeping; 0 when n exceeds the CPUs */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;    /* workers wait here for a new generation */
    pthread_cond_t done;    /* the caller waits here for pending == 0 */
    _Atomic uint64_t claim; /* generation << 32 | next unclaimed slice */
    atomic_int pending;     /* slices of the current run not finished */
    atomic_int stop;
    _Atomic(air_pool_fn) fn;
    _Atomic(void *) ctx;
};

typedef struct {
    air_pool *pool;
} worker_arg;

static uint32_t gen_of(uint64_t claim) {
    return (uint32_t)(claim >> 32);
}

int air_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int air_pool_threads(int requested) {
    int cpus = air_cpu_count();
    return requested <= 0 || requested > cpus ? cpus : requested;
}

/* Claims and runs slices of generation `gen` until none is left or a newer
 * run has started. fn and ctx are read before the claim: if the claim
 * succeeds, the run they belong to cannot have ended (this slice was still
 * unclaimed), so they are the current ones. */
static void run_slices(air_pool *pool, uint32_t gen) {
    uint64_t c = atomic_load(&pool->claim);
    for (;;) {
        if (gen_of(c) != gen || (uint32_t)c >= (uint32_t)pool->n)
            return;
        air_pool_fn fn = atomic_load(&pool->fn);
        void *ctx = atomic_load(&pool->ctx);
        if (!atomic_compare_exchange_weak(&pool->claim, &c, c + 1))
            continue; /* c now holds the current word */
        fn(ctx, (int)(uint32_t)c, pool->n);
        if (atomic_fetch_sub(&pool->pending, 1) == 1) {
            pthread_mutex_lock(&pool->mu);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mu);
        }
        c = atomic_load(&pool->claim);
    }
}

static void *worker_main(void *p) {
    worker_arg *wa = p;
    air_pool *pool = wa->pool;
    free(wa);
    uint32_t seen = 0;
    for (;;) {
        uint32_t g;
        int spins = 0;
        while ((g = gen_of(atomic_load(&pool->claim))) == seen && spins < pool->spin) {
            CPU_RELAX();
            spins++;
        }
        if (g == seen) {
            pthread_mutex_lock(&pool->mu);
            while ((g = gen_of(atomic_load(&pool->claim))) == seen)
                pthread_cond_wait(&pool->wake, &pool->mu);
            pthread_mutex_unlock(&pool->mu);
        }
        seen = g;
        if (atomic_load(&pool->stop))
            return NULL;
        run_slices(pool, g);
    }
}

static void wake_workers(air_pool *pool) {
    pthread_mutex_lock(&pool->mu);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);
}

air_pool *air_pool_create(int n_threads) {
    if (n_threads <= 0)
        n_threads = air_cpu_count();
    air_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->n = n_threads;
    pool->spin = n_threads <= air_cpu_count() ? SPIN_ITERS : 0;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    if (n_threads > 1) {
        pool->threads = calloc((size_t)n_threads - 1, sizeof *pool->threads);
        if (!pool->threads)
            goto fail;
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (wa)
                wa->pool = pool;
            if (!wa || pthread_create(&pool->threads[i - 1], NULL, worker_main, wa) != 0) {
                free(wa);
                pool->n = i; /* the workers started so far are joined by free */
                goto fail;
            }
        }
    }
    return pool;
fail:
    air_pool_free(pool);
    return NULL;
}

void air_pool_free(air_pool *pool) {
    if (!pool)
        return;
    if (pool->threads) {
        atomic_store(&pool->stop, 1);
        atomic_fetch_add(&pool->claim, (uint64_t)1 << 32);
        wake_workers(pool);
        for (int i = 1; i < pool->n; i++)
            pthread_join(pool->threads[i - 1], NULL);
        free(pool->threads);
    }
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    free(pool);
}

int air_pool_size(const air_pool *pool) {
    return pool ? pool->n : 1;
}

void air_pool_run(air_pool *pool, air_pool_fn fn, void *ctx) {
    if (!pool || pool->n <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    atomic_store(&pool->fn, fn);
    atomic_store(&pool->ctx, ctx);
    atomic_store(&pool->pending, pool->n);
    uint32_t gen = gen_of(atomic_load(&pool->claim)) + 1;
    atomic_store(&pool->claim, (uint64_t)gen << 32); /* publishes the run */
    wake_workers(pool);

    run_slices(pool, gen);

    for (int spins = 0; atomic_load(&pool->pending) > 0 && spins < pool->spin; spins++)
        CPU_RELAX();
    if (atomic_load(&pool->pending) > 0) {
        pthread_mutex_lock(&pool->mu);
        while (atomic_load(&pool->pending) > 0)
            pthread_cond_wait(&pool->done, &pool->mu);
        pthread_mutex_unlock(&pool->mu);
    }
}
