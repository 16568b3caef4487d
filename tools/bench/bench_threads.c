/*
 * bench_threads.c - the engine's speed against its thread count, without the
 * cap the public API puts on n_threads: shows what the thread pool does when
 * it has more threads than CPUs, or when other processes keep the CPUs busy.
 *
 * Opens a layer store with every unit pinned, evaluates one token to load the
 * units, then times a prefill of 8 tokens and 8 single-token decode steps for
 * each thread count. Prints a markdown table of wall seconds (best and mean of
 * --reps runs) and the machine's load average at the start.
 *
 *     bench_threads STORE_DIR [--threads 1,2,16,64] [--reps 3]
 *
 * STORE_DIR is a layer store folder (<cache>/<model-key>/<compression>, as
 * `airllm list` shows).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/pool.h"
#include "model/forward.h"
#include "model/kvcache.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One timed pass: 8 prompt tokens, then 8 decode steps. Returns seconds, or
 * a negative value on error (message on stderr). */
static double run_once(air_engine *e) {
    const air_hparams *hp = air_engine_hparams(e);
    air_kv kv;
    if (air_kv_init(&kv, hp, 32)) {
        fprintf(stderr, "bench_threads: %s\n", air_last_error());
        return -1;
    }
    float *logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
    int32_t ids[8];
    for (int i = 0; i < 8; i++)
        ids[i] = (int32_t)((i * 7919 + 17) % hp->n_vocab);
    double t0 = now_s();
    air_status st = air_engine_eval(e, &kv, ids, 8, 0, logits);
    for (int i = 0; i < 8 && !st; i++)
        st = air_engine_eval(e, &kv, &ids[i], 1, 0, logits);
    double dt = now_s() - t0;
    free(logits);
    air_kv_free(&kv);
    if (st) {
        fprintf(stderr, "bench_threads: %s\n", air_last_error());
        return -1;
    }
    return dt;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bench_threads STORE_DIR [--threads 1,2,16,64] [--reps 3]\n");
        return 2;
    }
    int threads[16] = {1, 2, 16, 64}, n_threads = 4, reps = 3;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            n_threads = 0;
            for (char *s = strtok(argv[++i], ","); s && n_threads < 16; s = strtok(NULL, ",")) {
                int n = atoi(s);
                threads[n_threads++] = n > 0 ? n : 1;
            }
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
            if (reps < 1)
                reps = 1;
        } else {
            fprintf(stderr, "bench_threads: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    double load = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1)
            load = 0;
        fclose(f);
    }
    printf("store: %s; CPUs this process may run on: %d; load average: %.2f\n\n", argv[1],
           air_cpu_count(), load);
    printf("| threads | best s | mean s |\n|---:|---:|---:|\n");
    for (int t = 0; t < n_threads; t++) {
        air_engine_options eo;
        air_engine_default_options(&eo);
        eo.n_threads = threads[t];
        eo.stream.ram_budget = UINT64_MAX; /* every unit pinned: no disk in the figure */
        air_engine *e = NULL;
        if (air_engine_open(argv[1], &eo, &e)) {
            fprintf(stderr, "bench_threads: %s\n", air_last_error());
            return 1;
        }
        if (run_once(e) < 0) /* loads the units */
            return 1;
        double best = 1e30, sum = 0;
        for (int r = 0; r < reps; r++) {
            double dt = run_once(e);
            if (dt < 0)
                return 1;
            best = dt < best ? dt : best;
            sum += dt;
        }
        printf("| %d | %.3f | %.3f |\n", threads[t], best, sum / reps);
        fflush(stdout);
        air_engine_close(e);
    }
    return 0;
}
