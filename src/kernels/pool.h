/*
 * pool.h - a fixed thread pool for data-parallel loops.
 *
 * air_pool_run(pool, fn, ctx) calls fn(ctx, ith, nth) once for every ith in
 * [0, nth) with nth = air_pool_size(pool), the calling thread taking ith = 0,
 * and returns when all calls are done. Any thread of the pool may run any
 * ith (the caller included): fn must not assume which thread it runs on.
 * Workers spin briefly then sleep, so back-to-back runs (one per matmul) are
 * cheap. One run at a time per pool.
 */
#ifndef AIR_KERNELS_POOL_H
#define AIR_KERNELS_POOL_H

typedef struct air_pool air_pool;
typedef void (*air_pool_fn)(void *ctx, int ith, int nth);

/* CPUs this process may run on (its affinity mask), at least 1. */
int air_cpu_count(void);
/* The thread count a model uses for a request: requested if it is from 1 to
 * air_cpu_count(), else air_cpu_count() (more compute threads than CPUs
 * only slow down). */
int air_pool_threads(int requested);

/* n_threads <= 0 means one per CPU (air_cpu_count()); more threads than CPUs
 * are created as asked (the workers then sleep instead of spinning). Returns
 * NULL if out of memory. Free with air_pool_free(). */
air_pool *air_pool_create(int n_threads);
void air_pool_free(air_pool *pool);
/* Number of threads including the caller; 1 for a NULL pool. */
int air_pool_size(const air_pool *pool);
/* A NULL pool runs fn(ctx, 0, 1) on the caller. */
void air_pool_run(air_pool *pool, air_pool_fn fn, void *ctx);

#endif
