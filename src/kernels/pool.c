/*
 * pool.c - the thread pool behind air_pool_run().
 *
 * A run publishes (fn, ctx) and bumps a generation counter; workers that are
 * spinning see the new generation at once, sleeping ones are woken through a
 * condition variable. The caller runs ith = 0 itself, then waits for the
 * pending count to reach zero, spinning briefly before it sleeps too.
 * Back-to-back runs (one per matmul of a layer) thus cost well under a
 * microsecond while the workers are still spinning.
 *
 * No wake-up can be lost: a sleeper re-checks its condition under the mutex,
 * and whoever changes that condition (the caller bumping the generation, the
 * last worker bringing pending to zero) takes the same mutex before it
 * signals. Both signals are unconditional (uncontended lock + signal with no
 * waiter costs tens of nanoseconds), so correctness does not rest on
 * store-load ordering between separate atomics.
 */
#include <pthread.h>
#include <stdatomic.h>
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

/* Spin iterations before sleeping (a pause is ~10-140 cycles: tens of us). */
#define SPIN_ITERS (1 << 14)

struct air_pool {
    int n; /* threads including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers wait here for a new generation */
    pthread_cond_t done; /* the caller waits here for pending == 0 */
    atomic_uint gen;
    atomic_int pending;
    atomic_int stop;
    air_pool_fn fn;
    void *ctx;
};

typedef struct {
    air_pool *pool;
    int ith;
} worker_arg;

static void *worker_main(void *p) {
    worker_arg *wa = p;
    air_pool *pool = wa->pool;
    int ith = wa->ith;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load(&pool->gen)) == seen && spins < SPIN_ITERS) {
            CPU_RELAX();
            spins++;
        }
        if (g == seen) {
            pthread_mutex_lock(&pool->mu);
            while ((g = atomic_load(&pool->gen)) == seen)
                pthread_cond_wait(&pool->wake, &pool->mu);
            pthread_mutex_unlock(&pool->mu);
        }
        seen = g;
        if (atomic_load(&pool->stop))
            return NULL;
        pool->fn(pool->ctx, ith, pool->n);
        if (atomic_fetch_sub(&pool->pending, 1) == 1) {
            pthread_mutex_lock(&pool->mu);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mu);
        }
    }
}

static void wake_workers(air_pool *pool) {
    pthread_mutex_lock(&pool->mu);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);
}

air_pool *air_pool_create(int n_threads) {
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    air_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->n = n_threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    if (n_threads > 1) {
        pool->threads = calloc((size_t)n_threads - 1, sizeof *pool->threads);
        if (!pool->threads)
            goto fail;
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (wa) {
                wa->pool = pool;
                wa->ith = i;
            }
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
        atomic_fetch_add(&pool->gen, 1);
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mu);
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
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store(&pool->pending, pool->n - 1);
    atomic_fetch_add(&pool->gen, 1);
    wake_workers(pool);

    fn(ctx, 0, pool->n);

    for (int spins = 0; atomic_load(&pool->pending) > 0 && spins < SPIN_ITERS; spins++)
        CPU_RELAX();
    if (atomic_load(&pool->pending) > 0) {
        pthread_mutex_lock(&pool->mu);
        while (atomic_load(&pool->pending) > 0)
            pthread_cond_wait(&pool->done, &pool->mu);
        pthread_mutex_unlock(&pool->mu);
    }
}
