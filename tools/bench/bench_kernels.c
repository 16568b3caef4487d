/*
 * bench_kernels.c - kernel throughput against the machine's memory bandwidth.
 *
 * 1. Measures the memory read bandwidth: threads stream through a buffer much
 *    larger than the last-level cache (64 KB chunks, 8 streams in lockstep).
 * 2. Decode: y = W x (rows = 1) over a RAM-resident weight set shaped like two
 *    7B-class transformer layers (per layer 4 x 4096x4096 attention matrices
 *    and 3 x 4096x11008 MLP matrices; 404 M weights, 1.6 GB as fp32), for
 *    every weight format: tokens/s (one token = one pass over the set), GB/s
 *    of weights read, and that as % of the measured bandwidth.
 * 3. Prefill: GFLOP/s of a 4096x4096 matmul at rows = 64 and 128.
 * Prints markdown tables; --quick shrinks the set for a smoke run. Weight
 * values are random codes / scales: speed does not depend on them.
 *
 *     bench_kernels [--threads 1,2] [--reps 5] [--isa ref|avx2|avx512|neon]
 *                   [--clock wall|cpu] [--formats 8bit,4bit] [--quick]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/ops.h"
#include "kernels/pool.h"
#include "quant/quant.h"

/* With --clock cpu, time is the process' CPU time divided by the threads at
 * work: on a machine shared with other jobs it tells what the kernels do per
 * core they actually get (memory stalls count as CPU time; idle spinning of
 * pool threads too, which only makes the figure more conservative). */
static int g_cpu_clock;
static int g_clock_threads = 1;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(g_cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    double t = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
    return g_cpu_clock ? t / g_clock_threads : t;
}

static uint64_t g_rng = 88172645463325252ull;
static uint64_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static void stats(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++)
        q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* ------------------------------------------------------------------------- */
/* Memory bandwidth                                                          */
/* ------------------------------------------------------------------------- */

typedef struct {
    const float *buf;
    size_t n;
    float sink[64];
} bw_job;

/* Each thread sweeps its slice in 64 KB chunks, each read as 8 streams of
 * 8 KB in lockstep: the access pattern of a matvec over consecutive weight
 * rows (one stream per core would measure latency more than bandwidth). 64-bit
 * loads folded with xor keep the loop well below the core's load throughput. */
#define BW_STREAMS 8
#define BW_WORDS 1024 /* 8 KB per stream */
#define BW_CHUNK (BW_STREAMS * BW_WORDS)

static uint64_t bw_sweep_c(const uint64_t *base, size_t per) {
    uint64_t acc[BW_STREAMS] = {0};
    for (size_t c = 0; c < per; c += BW_CHUNK)
        for (size_t i = 0; i < BW_WORDS; i++)
            for (int k = 0; k < BW_STREAMS; k++)
                acc[k] ^= base[c + (size_t)k * BW_WORDS + i];
    uint64_t x = 0;
    for (int k = 0; k < BW_STREAMS; k++)
        x ^= acc[k];
    return x;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* The same sweep with 32-byte loads, where the CPU has AVX2. */
__attribute__((target("avx2"))) static uint64_t bw_sweep_avx2(const uint64_t *base, size_t per) {
    __m256i acc[BW_STREAMS];
    for (int k = 0; k < BW_STREAMS; k++)
        acc[k] = _mm256_setzero_si256();
    for (size_t c = 0; c < per; c += BW_CHUNK)
        for (size_t i = 0; i < BW_WORDS; i += 4)
            for (int k = 0; k < BW_STREAMS; k++)
                acc[k] = _mm256_xor_si256(
                    acc[k],
                    _mm256_loadu_si256((const __m256i *)(base + c + (size_t)k * BW_WORDS + i)));
    __m256i x = acc[0];
    for (int k = 1; k < BW_STREAMS; k++)
        x = _mm256_xor_si256(x, acc[k]);
    return (uint64_t)_mm256_extract_epi64(x, 0);
}
#endif

static void bw_fn(void *p, int ith, int nth) {
    bw_job *j = p;
    size_t per = j->n / 2 / (size_t)nth / BW_CHUNK * BW_CHUNK; /* uint64 words */
    const uint64_t *base = (const uint64_t *)j->buf + per * (size_t)ith;
    uint64_t x;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx2"))
        x = bw_sweep_avx2(base, per);
    else
#endif
        x = bw_sweep_c(base, per);
    j->sink[ith] = (float)(x & 0xffff);
}

static double mem_bandwidth(air_pool *pool, size_t bytes, int reps) {
    size_t n = bytes / 4;
    float *buf = malloc(n * 4);
    if (!buf)
        return 0;
    for (size_t i = 0; i < n; i++)
        buf[i] = (float)(i & 1023) * 1e-3f;
    bw_job j = {.buf = buf, .n = n};
    g_clock_threads = air_pool_size(pool);
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t = now_s();
        air_pool_run(pool, bw_fn, &j);
        t = now_s() - t;
        int nth = air_pool_size(pool);
        size_t per = n / 2 / (size_t)nth / BW_CHUNK * BW_CHUNK;
        double gbs = (double)(per * (size_t)nth * 8) / t / 1e9;
        if (gbs > best)
            best = gbs;
    }
    free(buf);
    return best;
}

/* ------------------------------------------------------------------------- */
/* Weights                                                                   */
/* ------------------------------------------------------------------------- */

typedef struct {
    int n_out, n_in;
    void *W;
} mat;

static void fill(air_dtype t, void *W, int n_out, int n_in) {
    size_t n = (size_t)n_out * n_in;
    switch (t) {
    case AIR_DT_F32:
        for (size_t i = 0; i < n; i++)
            ((float *)W)[i] = (float)((int)(rnd() & 255) - 128) * 1e-4f;
        break;
    case AIR_DT_F16:
    case AIR_DT_BF16: {
        uint16_t base = t == AIR_DT_F16 ? air_f32_to_f16(0.01f) : air_f32_to_bf16(0.01f);
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)W)[i] = (uint16_t)((base ^ (rnd() & 0x807f)));
        break;
    }
    case AIR_DT_Q8: {
        air_block_q8 *b = W;
        for (size_t i = 0; i < n / AIR_Q8_BLOCK; i++) {
            b[i].d = air_f32_to_f16(1e-4f);
            for (int k = 0; k < AIR_Q8_BLOCK; k++)
                b[i].qs[k] = (int8_t)((rnd() % 255) - 127);
        }
        break;
    }
    case AIR_DT_NF4: {
        air_block_nf4 *b = W;
        for (size_t i = 0; i < n / AIR_NF4_BLOCK; i++) {
            b[i].absmax = 0.05f;
            for (int k = 0; k < AIR_NF4_BLOCK / 2; k++)
                b[i].qs[k] = (uint8_t)rnd();
        }
        break;
    }
    default:
        break;
    }
}

/* ------------------------------------------------------------------------- */

static int parse_threads(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        out[n++] = atoi(s);
        while (*s && *s != ',')
            s++;
        if (*s == ',')
            s++;
    }
    return n;
}

/* 1 if `t` is in the comma-separated list (NULL: every format). */
static int format_wanted(const char *list, air_dtype t) {
    if (!list)
        return 1;
    const char *name = air_dtype_name(t);
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n))
            return 1;
        p += len + (e != NULL);
    }
    return 0;
}

int main(int argc, char **argv) {
    int threads[8] = {1, 2}, n_threads = 2, reps = 5, quick = 0;
    const char *formats = NULL; /* comma-separated format names; NULL: all */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            n_threads = parse_threads(argv[++i], threads, 8);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--formats") && i + 1 < argc)
            formats = argv[++i];
        else if (!strcmp(argv[i], "--clock") && i + 1 < argc)
            g_cpu_clock = !strcmp(argv[++i], "cpu");
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            const char *name = argv[++i];
            int found = 0;
            for (int k = AIR_ISA_REF; k <= AIR_ISA_NEON; k++)
                if (!strcmp(name, air_isa_name((air_isa)k))) {
                    found = 1;
                    if (!air_kernels_force_isa((air_isa)k)) {
                        fprintf(stderr, "ISA %s is not supported by this CPU or build\n", name);
                        return 1;
                    }
                }
            if (!found) {
                fprintf(stderr, "unknown ISA '%s' (ref, avx2, avx512, neon)\n", name);
                return 2;
            }
        } else {
            fprintf(
                stderr,
                "usage: %s [--threads 1,2] [--reps 5] [--isa NAME] [--clock wall|cpu] "
                "[--formats 8bit,4bit] [--quick]\n",
                argv[0]);
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;
    air_pool *pools[8];
    for (int t = 0; t < n_threads; t++) {
        pools[t] = air_pool_create(threads[t]);
        if (!pools[t]) {
            fprintf(stderr, "cannot create a pool of %d threads\n", threads[t]);
            return 1;
        }
    }
    printf("ISA: %s; clock: %s\n\n", air_isa_name(air_kernels_isa()),
           g_cpu_clock ? "CPU time per thread" : "wall");
    fflush(stdout);

    /* 1. bandwidth */
    size_t bw_bytes = quick ? (256u << 20) : (1024u << 20);
    double bw[8];
    printf("| memory read bandwidth (best of %d) | threads | GB/s |\n|---|---|---|\n", reps);
    for (int t = 0; t < n_threads; t++) {
        bw[t] = mem_bandwidth(pools[t], bw_bytes, reps);
        printf("| %zu MB streamed | %d | %.1f |\n", bw_bytes >> 20, threads[t], bw[t]);
        fflush(stdout);
    }
    double bw_max = 0;
    for (int t = 0; t < n_threads; t++)
        if (bw[t] > bw_max)
            bw_max = bw[t];

    /* 2. decode */
    int dim = quick ? 1024 : 4096, ffn = quick ? 2752 : 11008, layers = quick ? 1 : 2;
    int shapes[7][2] = {{dim, dim}, {dim, dim}, {dim, dim}, {dim, dim},
                        {ffn, dim}, {ffn, dim}, {dim, ffn}};
    int nm = 7 * layers;
    mat m[14];
    double elems = 0;
    for (int i = 0; i < nm; i++) {
        m[i].n_out = shapes[i % 7][0];
        m[i].n_in = shapes[i % 7][1];
        elems += (double)m[i].n_out * m[i].n_in;
    }
    float *x = malloc(sizeof(float) * (size_t)ffn * 128);
    float *y = malloc(sizeof(float) * (size_t)ffn * 128);
    for (size_t i = 0; i < (size_t)ffn * 128; i++)
        x[i] = (float)((int)(rnd() & 255) - 128) / 64.0f;
    printf("\nDecode (rows = 1): %d matrices, %.0f M weights (%.2f GB as fp32) per token; "
           "%% of the best measured bandwidth (%.1f GB/s), from the best run\n\n",
           nm, elems / 1e6, elems * 4 / 1e9, bw_max);
    printf("| format | bits/weight | threads | tokens/s (mean ± sd) | best tokens/s | "
           "GB/s of weights (best) | %% of bandwidth |\n|---|---|---|---|---|---|---|\n");
    for (int t = 0; t < AIR_DT_COUNT; t++) {
        if (!format_wanted(formats, (air_dtype)t))
            continue;
        double bytes = 0;
        int ok = 1;
        for (int i = 0; i < nm; i++) {
            size_t sz = air_dtype_row_bytes((air_dtype)t, m[i].n_in) * m[i].n_out;
            m[i].W = malloc(sz);
            if (!m[i].W)
                ok = 0;
            else
                fill((air_dtype)t, m[i].W, m[i].n_out, m[i].n_in);
            bytes += (double)sz;
        }
        if (ok)
            for (int p = 0; p < n_threads; p++) {
                double v[64];
                int rr = reps < 64 ? reps : 64;
                g_clock_threads = threads[p];
                for (int i = 0; i < nm; i++) /* warm-up: page in, pool spinning */
                    air_matmul(pools[p], (air_dtype)t, m[i].W, m[i].n_out, m[i].n_in, x, 1, y);
                for (int r = 0; r < rr; r++) {
                    double t0 = now_s();
                    for (int i = 0; i < nm; i++)
                        air_matmul(pools[p], (air_dtype)t, m[i].W, m[i].n_out, m[i].n_in, x, 1, y);
                    v[r] = 1.0 / (now_s() - t0);
                }
                double mean, sd, best = 0;
                stats(v, rr, &mean, &sd);
                for (int r = 0; r < rr; r++)
                    if (v[r] > best)
                        best = v[r];
                double gbs = bytes * best / 1e9;
                printf("| %s | %.2f | %d | %.2f ± %.2f | %.2f | %.1f | %.0f%% |\n",
                       air_dtype_name((air_dtype)t), bytes * 8 / elems, threads[p], mean, sd, best,
                       gbs, 100 * gbs / bw_max);
                fflush(stdout);
            }
        for (int i = 0; i < nm; i++)
            free(m[i].W);
    }

    /* 3. prefill */
    printf("\nPrefill: %dx%d weights, GFLOP/s (2 * rows * n_out * n_in per call)\n\n", dim, dim);
    printf("| format | threads | rows = 64 | rows = 128 |\n|---|---|---|---|\n");
    for (int t = 0; t < AIR_DT_COUNT; t++) {
        if (!format_wanted(formats, (air_dtype)t))
            continue;
        void *W = malloc(air_dtype_row_bytes((air_dtype)t, dim) * dim);
        if (!W)
            continue;
        fill((air_dtype)t, W, dim, dim);
        for (int p = 0; p < n_threads; p++) {
            printf("| %s | %d |", air_dtype_name((air_dtype)t), threads[p]);
            g_clock_threads = threads[p];
            for (int rows = 64; rows <= 128; rows *= 2) {
                air_matmul(pools[p], (air_dtype)t, W, dim, dim, x, rows, y);
                int rr = reps < 3 ? reps : 3;
                double best = 1e30;
                for (int r = 0; r < rr; r++) {
                    double t0 = now_s();
                    air_matmul(pools[p], (air_dtype)t, W, dim, dim, x, rows, y);
                    double dt = now_s() - t0;
                    if (dt < best)
                        best = dt;
                }
                printf(" %.1f |", 2.0 * rows * dim * dim / best / 1e9);
            }
            printf("\n");
            fflush(stdout);
        }
        free(W);
    }
    free(x);
    free(y);
    for (int t = 0; t < n_threads; t++)
        air_pool_free(pools[t]);
    return 0;
}
