/*
 * test_kernels.c - every kernel x ISA x weight format x shape against a
 * double-precision reference, in the manner of a backend-ops test.
 *
 * The reference for a matmul is W dequantized to fp32 (air_row_to_f32) times
 * the fp32 activations, accumulated in double. Each result is judged by its
 * normalized error ||y - y_ref|| / ||y_ref|| against a threshold per format
 * and path: fp32-accumulating paths must agree to rounding; the int8 paths of
 * the quantized formats (activations quantized per 32 elements, NF4 code
 * values as int8) to a looser bound. ISAs the CPU lacks are skipped and said so.
 */
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "kernels/ops.h"
#include "kernels/pool.h"
#include "quant/quant.h"
#include "test.h"

/* ------------------------------------------------------------------------- */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------- */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static float frand(void) { /* uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / 4503599627370496.0 - 1.0);
}

static float grand(void) { /* roughly normal, unit variance */
    return (frand() + frand() + frand()) * 1.0f;
}

static double nerr(const float *y, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)y[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static const air_isa k_isas[] = {AIR_ISA_REF, AIR_ISA_AVX2, AIR_ISA_AVX512, AIR_ISA_NEON};
#define N_ISAS (int)(sizeof k_isas / sizeof k_isas[0])

/* 1 if (isa, t) runs the int8 path: activations quantized per 32 elements
 * (and NF4 code values as int8). */
static int int8_path(air_isa isa, air_dtype t) {
    return isa != AIR_ISA_REF && (t == AIR_DT_Q8 || t == AIR_DT_NF4);
}

/* Threshold on the normalized error of a matmul vs the fp32 reference: per
 * case, and over all cases of one (isa, format) together. A single case of an
 * int8 path may have a few outputs that nearly cancel, hence the looser
 * per-case bound; such a path is also checked tightly against an exact
 * emulation of its integer arithmetic (mm_int8_emulated). */
static double mm_threshold(air_isa isa, air_dtype t, int aggregate) {
    if (!int8_path(isa, t))
        return 2e-6;
    if (!aggregate)
        return 0.1;
    return t == AIR_DT_Q8 ? 1e-2 : 1.5e-2;
}

/* What the int8 kernels compute, in double: the same int8 activations and
 * weight codes, exact integer dots, then the block scales. */
static void mm_int8_emulated(air_dtype t, const void *W, int n_out, int n_in, const float *x,
                             int rows, double *y) {
    int nxb = n_in / AIR_XQ_BLOCK;
    air_block_xq *xq = malloc(sizeof *xq * (size_t)nxb);
    for (int r = 0; r < rows; r++) {
        air_xq_quantize_row(x + (size_t)r * n_in, xq, n_in);
        for (int o = 0; o < n_out; o++) {
            double acc = 0;
            for (int b = 0; b < nxb; b++) {
                long isum = 0;
                double dw;
                if (t == AIR_DT_Q8) {
                    const air_block_q8 *wb = (const air_block_q8 *)W + (size_t)o * nxb + b;
                    for (int i = 0; i < 32; i++)
                        isum += wb->qs[i] * xq[b].q[i];
                    dw = air_f16_to_f32(wb->d);
                } else {
                    const air_block_nf4 *wb =
                        (const air_block_nf4 *)W + (size_t)o * (nxb / 2) + b / 2;
                    for (int i = 0; i < 32; i++)
                        isum += air_nf4_values_i8[air_nf4_get(wb, (b & 1) * 32 + i)] * xq[b].q[i];
                    dw = wb->absmax / 127.0;
                }
                acc += dw * xq[b].d * (double)isum;
            }
            y[(size_t)r * n_out + o] = acc;
        }
    }
    free(xq);
}

/* ------------------------------------------------------------------------- */
/* Conversions and dtype helpers                                             */
/* ------------------------------------------------------------------------- */

TEST(f16_round_trip_all) {
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t hh = (uint16_t)h;
        if ((hh & 0x7c00) == 0x7c00 && (hh & 0x3ff))
            continue; /* nan */
        float f = air_f16_to_f32(hh);
        if (air_f32_to_f16(f) != hh)
            T_FAIL("f16 0x%04x -> %g -> 0x%04x", h, f, air_f32_to_f16(f));
    }
}

TEST(f16_rounding) {
    ASSERT_EQ_INT(air_f32_to_f16(1.0f), 0x3c00);
    ASSERT_EQ_INT(air_f32_to_f16(-2.0f), 0xc000);
    ASSERT_EQ_INT(air_f32_to_f16(65504.0f), 0x7bff);
    ASSERT_EQ_INT(air_f32_to_f16(65519.0f), 0x7bff);
    ASSERT_EQ_INT(air_f32_to_f16(65520.0f), 0x7c00);
    ASSERT_EQ_INT(air_f32_to_f16(0x1p-24f), 0x0001);
    ASSERT_EQ_INT(air_f32_to_f16(0x1p-25f), 0x0000);     /* tie to even (0) */
    ASSERT_EQ_INT(air_f32_to_f16(0x1.8p-24f), 0x0002);   /* 1.5 ulp: tie to even (2) */
    ASSERT_EQ_INT(air_f32_to_f16(0x1.002p0f), 0x3c00);   /* 1 + 2^-11: tie to even */
    ASSERT_EQ_INT(air_f32_to_f16(0x1.006p0f), 0x3c02);   /* 1 + 3*2^-11: tie up */
    ASSERT_EQ_INT(air_f32_to_f16(0x1.0021p0f), 0x3c01);  /* just above the tie */
    ASSERT_EQ_INT(air_f32_to_f16(0x1.ff8p-15f), 0x03ff); /* largest subnormal */
    ASSERT_EQ_INT(air_f32_to_f16(0x1.ffcp-15f), 0x0400); /* tie: up to the normal */
    ASSERT_EQ_INT(air_f32_to_f16(0x1.ff4p-15f), 0x03fe); /* tie: down to even */
    ASSERT_EQ_INT(air_f32_to_f16(INFINITY), 0x7c00);
    ASSERT_TRUE((air_f32_to_f16(NAN) & 0x7fff) > 0x7c00);
    ASSERT_NEAR(air_f16_to_f32(0x3555), 0.333251953125, 0);
}

TEST(bf16_rounding) {
    ASSERT_EQ_INT(air_f32_to_bf16(1.0f), 0x3f80);
    ASSERT_EQ_INT(air_f32_to_bf16(0x1.01p0f), 0x3f80);   /* tie to even */
    ASSERT_EQ_INT(air_f32_to_bf16(0x1.03p0f), 0x3f82);   /* tie up to even */
    ASSERT_EQ_INT(air_f32_to_bf16(0x1.0102p0f), 0x3f81); /* above the tie */
    ASSERT_EQ_INT(air_f32_to_bf16(-3.0f), 0xc040);
    ASSERT_EQ_INT(air_f32_to_bf16(INFINITY), 0x7f80);
    ASSERT_TRUE((air_f32_to_bf16(NAN) & 0x7fff) > 0x7f80);
    ASSERT_NEAR(air_bf16_to_f32(0x3f81), 0x1.02p0, 0);
}

TEST(dtype_helpers) {
    ASSERT_EQ_STR(air_dtype_name(AIR_DT_Q8), "8bit");
    ASSERT_EQ_STR(air_dtype_name(AIR_DT_NF4), "4bit");
    ASSERT_EQ_STR(air_dtype_name(AIR_DT_BF16), "bf16");
    ASSERT_EQ_INT(air_dtype_block(AIR_DT_F32), 1);
    ASSERT_EQ_INT(air_dtype_block(AIR_DT_Q8), 32);
    ASSERT_EQ_INT(air_dtype_block(AIR_DT_NF4), 64);
    ASSERT_EQ_INT(air_dtype_row_bytes(AIR_DT_F32, 128), 512);
    ASSERT_EQ_INT(air_dtype_row_bytes(AIR_DT_F16, 128), 256);
    ASSERT_EQ_INT(air_dtype_row_bytes(AIR_DT_Q8, 128), 4 * 34);
    ASSERT_EQ_INT(air_dtype_row_bytes(AIR_DT_NF4, 128), 2 * 36);
}

TEST(row_round_trip) {
    enum { N = 256 };
    float x[N], y[N];
    unsigned char buf[N * 4];
    for (int i = 0; i < N; i++)
        x[i] = grand() * 0.05f;
    /* f32 is exact; bf16 and f16 within their precision; Q8 / NF4 within a step */
    const double tol[AIR_DT_COUNT] = {0, 1e-3, 8e-3, 1.5e-2, 0.2};
    for (int t = 0; t < AIR_DT_COUNT; t++) {
        air_row_from_f32((air_dtype)t, x, buf, N);
        air_row_to_f32((air_dtype)t, buf, y, N);
        double ref[N];
        for (int i = 0; i < N; i++)
            ref[i] = x[i];
        double e = nerr(y, ref, N);
        if (e > tol[t])
            T_FAIL("%s: round-trip error %g > %g", air_dtype_name((air_dtype)t), e, tol[t]);
    }
}

/* ------------------------------------------------------------------------- */
/* Matmul                                                                    */
/* ------------------------------------------------------------------------- */

typedef struct {
    air_dtype t;
    int n_out, n_in, rows;
    void *W;      /* in format t */
    float *Wf;    /* dequantized */
    float *x;     /* (rows, n_in) */
    double *yref; /* (rows, n_out) */
} mm_case;

static void case_init(mm_case *c, air_dtype t, int n_out, int n_in, int rows) {
    c->t = t;
    c->n_out = n_out;
    c->n_in = n_in;
    c->rows = rows;
    size_t rb = air_dtype_row_bytes(t, n_in);
    c->W = malloc(rb * (size_t)n_out);
    c->Wf = malloc(sizeof(float) * (size_t)n_out * n_in);
    c->x = malloc(sizeof(float) * (size_t)rows * n_in);
    c->yref = malloc(sizeof(double) * (size_t)rows * n_out);
    float *tmp = malloc(sizeof(float) * (size_t)n_in);
    for (int o = 0; o < n_out; o++) {
        float s = 0.02f * (1.0f + (float)(o % 5)); /* rows of different scales */
        for (int i = 0; i < n_in; i++)
            tmp[i] = grand() * s;
        air_row_from_f32(t, tmp, (char *)c->W + rb * o, n_in);
        air_row_to_f32(t, (char *)c->W + rb * o, c->Wf + (size_t)o * n_in, n_in);
    }
    free(tmp);
    for (size_t i = 0; i < (size_t)rows * n_in; i++)
        c->x[i] = grand();
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < n_out; o++) {
            double acc = 0;
            for (int i = 0; i < n_in; i++)
                acc += (double)c->Wf[(size_t)o * n_in + i] * c->x[(size_t)r * n_in + i];
            c->yref[(size_t)r * n_out + o] = acc;
        }
}

static void case_free(mm_case *c) {
    free(c->W);
    free(c->Wf);
    free(c->x);
    free(c->yref);
}

TEST(matmul_all_isas_formats_shapes) {
    static const int n_outs[] = {1, 7, 16, 33, 67};
    static const int n_ins[] = {64, 192, 576};
    static const int rowss[] = {1, 2, 7, 33};
    /* aggregate error per (isa, format): sum of squared errors and of squared refs */
    double agg_num[N_ISAS][AIR_DT_COUNT] = {{0}}, agg_den[N_ISAS][AIR_DT_COUNT] = {{0}};
    int ran = 0;
    for (int t = 0; t < AIR_DT_COUNT; t++)
        for (size_t a = 0; a < sizeof n_outs / sizeof *n_outs; a++)
            for (size_t b = 0; b < sizeof n_ins / sizeof *n_ins; b++)
                for (size_t r = 0; r < sizeof rowss / sizeof *rowss; r++) {
                    mm_case c;
                    case_init(&c, (air_dtype)t, n_outs[a], n_ins[b], rowss[r]);
                    size_t n = (size_t)c.rows * c.n_out;
                    float *y = malloc(sizeof(float) * n);
                    double *yem = NULL;
                    for (int k = 0; k < N_ISAS; k++) {
                        if (!air_kernels_force_isa(k_isas[k]))
                            continue;
                        air_matmul(NULL, c.t, c.W, c.n_out, c.n_in, c.x, c.rows, y);
                        double e = nerr(y, c.yref, n), e_em = 0;
                        for (size_t i = 0; i < n; i++) {
                            agg_num[k][t] += (y[i] - c.yref[i]) * (y[i] - c.yref[i]);
                            agg_den[k][t] += c.yref[i] * c.yref[i];
                        }
                        if (int8_path(k_isas[k], c.t)) {
                            if (!yem) {
                                yem = malloc(sizeof(double) * n);
                                mm_int8_emulated(c.t, c.W, c.n_out, c.n_in, c.x, c.rows, yem);
                            }
                            e_em = nerr(y, yem, n);
                        }
                        double thr = mm_threshold(k_isas[k], c.t, 0);
                        ran++;
                        if (!(e <= thr) || !(e_em <= 1e-5)) {
                            size_t worst = 0;
                            for (size_t i = 0; i < n; i++)
                                if (fabs(y[i] - c.yref[i]) > fabs(y[worst] - c.yref[worst]))
                                    worst = i;
                            float yw = y[worst];
                            double rw = c.yref[worst];
                            free(y);
                            free(yem);
                            case_free(&c);
                            T_FAIL("%s %s n_out=%d n_in=%d rows=%d: error %.3g (bound %.3g), vs "
                                   "int8 emulation %.3g (bound 1e-5); worst at %zu: %g vs %g",
                                   air_isa_name(k_isas[k]), air_dtype_name((air_dtype)t), n_outs[a],
                                   n_ins[b], rowss[r], e, thr, e_em, worst, yw, rw);
                        }
                    }
                    free(y);
                    free(yem);
                    case_free(&c);
                }
    ASSERT_TRUE(ran > 0);
    for (int k = 0; k < N_ISAS; k++)
        for (int t = 0; t < AIR_DT_COUNT; t++) {
            if (agg_den[k][t] == 0)
                continue;
            double e = sqrt(agg_num[k][t] / agg_den[k][t]);
            double thr = mm_threshold(k_isas[k], (air_dtype)t, 1);
            fprintf(stderr, "  %-6s %-4s normalized error %.3g (bound %.3g)\n",
                    air_isa_name(k_isas[k]), air_dtype_name((air_dtype)t), e, thr);
            if (!(e <= thr))
                T_FAIL("%s %s: normalized error over all shapes %.3g > %.3g",
                       air_isa_name(k_isas[k]), air_dtype_name((air_dtype)t), e, thr);
        }
    air_kernels_force_isa(AIR_ISA_REF);
}

TEST(matmul_threads_identical) {
    air_pool *pools[3] = {air_pool_create(1), air_pool_create(2), air_pool_create(3)};
    for (int p = 0; p < 3; p++)
        ASSERT_TRUE(pools[p] != NULL);
    for (int k = 0; k < N_ISAS; k++) {
        if (!air_kernels_force_isa(k_isas[k]))
            continue;
        for (int t = 0; t < AIR_DT_COUNT; t++) {
            static const int rowss[] = {1, 5};
            for (int r = 0; r < 2; r++) {
                mm_case c;
                case_init(&c, (air_dtype)t, 203, 128, rowss[r]);
                size_t n = (size_t)c.rows * c.n_out;
                float *y[3];
                for (int p = 0; p < 3; p++) {
                    y[p] = malloc(sizeof(float) * n);
                    air_matmul(pools[p], c.t, c.W, c.n_out, c.n_in, c.x, c.rows, y[p]);
                }
                int same = memcmp(y[0], y[1], n * 4) == 0 && memcmp(y[0], y[2], n * 4) == 0;
                double e = nerr(y[2], c.yref, n);
                for (int p = 0; p < 3; p++)
                    free(y[p]);
                case_free(&c);
                if (!same)
                    T_FAIL("%s %s rows=%d: results differ between 1, 2, 3 threads",
                           air_isa_name(k_isas[k]), air_dtype_name((air_dtype)t), rowss[r]);
                if (!(e <= mm_threshold(k_isas[k], (air_dtype)t, 0)))
                    T_FAIL("%s %s threaded: error %g", air_isa_name(k_isas[k]),
                           air_dtype_name((air_dtype)t), e);
            }
        }
    }
    for (int p = 0; p < 3; p++)
        air_pool_free(pools[p]);
    air_kernels_force_isa(AIR_ISA_REF);
}

/* ------------------------------------------------------------------------- */
/* Small ops                                                                 */
/* ------------------------------------------------------------------------- */

TEST(small_ops_all_isas) {
    static const int sizes[] = {1, 3, 8, 17, 64, 100, 4099};
    enum { MAXN = 4099 };
    static float x[MAXN], w[MAXN], g[MAXN], y[MAXN], u[MAXN];
    static double ref[MAXN];
    for (int k = 0; k < N_ISAS; k++) {
        if (!air_kernels_force_isa(k_isas[k]))
            continue;
        const char *isa = air_isa_name(k_isas[k]);
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            int n = sizes[s];
            for (int i = 0; i < n; i++) {
                x[i] = grand();
                w[i] = 1.0f + 0.1f * frand();
                g[i] = 6.0f * frand();
                u[i] = grand();
            }
            /* rmsnorm */
            double ss = 0;
            for (int i = 0; i < n; i++)
                ss += (double)x[i] * x[i];
            double sc = 1.0 / sqrt(ss / n + 1e-5);
            for (int i = 0; i < n; i++)
                ref[i] = x[i] * sc * w[i];
            air_rmsnorm(y, x, w, n, 1e-5f);
            if (nerr(y, ref, n) > 1e-6)
                T_FAIL("%s rmsnorm n=%d: %g", isa, n, nerr(y, ref, n));
            /* silu_mul */
            for (int i = 0; i < n; i++)
                ref[i] = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
            air_silu_mul(y, g, u, n);
            if (nerr(y, ref, n) > 1e-6)
                T_FAIL("%s silu_mul n=%d: %g", isa, n, nerr(y, ref, n));
            /* softmax (scores with a wide range) */
            double mx = -1e30, sum = 0;
            for (int i = 0; i < n; i++) {
                y[i] = 8.0f * grand();
                if (y[i] > mx)
                    mx = y[i];
            }
            for (int i = 0; i < n; i++)
                sum += (ref[i] = exp(y[i] - mx));
            for (int i = 0; i < n; i++)
                ref[i] /= sum;
            air_softmax(y, n);
            if (nerr(y, ref, n) > 1e-5)
                T_FAIL("%s softmax n=%d: %g", isa, n, nerr(y, ref, n));
            /* dot */
            double d = 0, da = 0;
            for (int i = 0; i < n; i++) {
                d += (double)x[i] * u[i];
                da += fabs((double)x[i] * u[i]);
            }
            float df = air_dot_f32(x, u, n);
            if (fabs(df - d) > 1e-6 * da + 1e-30)
                T_FAIL("%s dot n=%d: %g vs %g", isa, n, df, d);
            /* axpy */
            for (int i = 0; i < n; i++) {
                y[i] = u[i];
                ref[i] = u[i] + 0.37 * (double)x[i];
            }
            air_axpy_f32(y, 0.37f, x, n);
            if (nerr(y, ref, n) > 3e-7)
                T_FAIL("%s axpy n=%d: %g", isa, n, nerr(y, ref, n));
        }
    }
    air_kernels_force_isa(AIR_ISA_REF);
}

TEST(softmax_extremes) {
    for (int k = 0; k < N_ISAS; k++) {
        if (!air_kernels_force_isa(k_isas[k]))
            continue;
        float x[11] = {-1e30f, 0, 1000, 1000, -INFINITY, 3, -3, 80, -80, 999, 0};
        air_softmax(x, 11);
        double s = 0;
        for (int i = 0; i < 11; i++) {
            ASSERT_TRUE(x[i] >= 0 && x[i] <= 1);
            s += x[i];
        }
        ASSERT_NEAR(s, 1.0, 1e-5);
        ASSERT_NEAR(x[2], x[3], 0);
        ASSERT_TRUE(x[4] == 0.0f);
        /* silu at the extremes stays finite */
        float g[4] = {-100, 100, -1e30f, 0}, u[4] = {1, 1, 1, 1}, o[4];
        air_silu_mul(o, g, u, 4);
        ASSERT_NEAR(o[0], 0, 1e-30);
        ASSERT_NEAR(o[1], 100, 1e-4);
        ASSERT_NEAR(o[2], 0, 1e-30);
        ASSERT_NEAR(o[3], 0, 0);
    }
    air_kernels_force_isa(AIR_ISA_REF);
}

/* ------------------------------------------------------------------------- */
/* Pool and dispatch                                                         */
/* ------------------------------------------------------------------------- */

typedef struct {
    int hits[8];
    int nth_seen[8];
} pool_ctx;

static void pool_fn(void *p, int ith, int nth) {
    pool_ctx *c = p;
    c->hits[ith]++;
    c->nth_seen[ith] = nth;
}

TEST(pool_runs_every_index) {
    for (int n = 1; n <= 4; n++) {
        air_pool *pool = air_pool_create(n);
        ASSERT_TRUE(pool != NULL);
        ASSERT_EQ_INT(air_pool_size(pool), n);
        pool_ctx c = {{0}, {0}};
        for (int it = 0; it < 2000; it++)
            air_pool_run(pool, pool_fn, &c); /* back-to-back */
        for (int i = 0; i < n; i++)
            ASSERT_EQ_INT(c.hits[i], 2000);
        ASSERT_EQ_INT(c.hits[n], 0);
        for (int i = 0; i < n; i++)
            ASSERT_EQ_INT(c.nth_seen[i], n);
        air_pool_free(pool);
    }
    pool_ctx c = {{0}, {0}};
    air_pool_run(NULL, pool_fn, &c);
    ASSERT_EQ_INT(c.hits[0], 1);
    ASSERT_EQ_INT(air_pool_size(NULL), 1);
    air_pool_free(NULL);
}

static void sleepy_fn(void *p, int ith, int nth) {
    pool_ctx *c = p;
    struct timespec ts = {0, 2000000}; /* 2 ms: long enough for the others to sleep */
    if (ith == nth - 1)
        nanosleep(&ts, NULL);
    __atomic_fetch_add(&c->hits[0], 1, __ATOMIC_RELAXED);
}

TEST(pool_wakes_sleepers) {
    air_pool *pool = air_pool_create(3);
    ASSERT_TRUE(pool != NULL);
    pool_ctx c = {{0}, {0}};
    for (int it = 0; it < 5; it++) {
        air_pool_run(pool, sleepy_fn, &c);
        struct timespec ts = {0, 30000000}; /* 30 ms idle: workers go to sleep */
        nanosleep(&ts, NULL);
    }
    ASSERT_EQ_INT(c.hits[0], 15);
    air_pool_free(pool);
}

static void jitter_fn(void *p, int ith, int nth) {
    pool_ctx *c = p;
    unsigned h = (unsigned)(c->hits[7] * 2654435761u) ^ (unsigned)ith * 40503u;
    if ((h >> 7) % 3 == 0) { /* some threads are late, by up to ~0.3 ms */
        struct timespec ts = {0, (long)((h >> 11) % 300) * 1000};
        nanosleep(&ts, NULL);
    }
    __atomic_fetch_add(&c->hits[ith], 1, __ATOMIC_RELAXED);
}

/* Runs with random late threads and idle gaps (workers fall asleep between
 * some runs, not others): every run must complete, nothing may be lost. */
TEST(pool_stress) {
    air_pool *pool = air_pool_create(4);
    ASSERT_TRUE(pool != NULL);
    pool_ctx c = {{0}, {0}};
    for (int it = 0; it < 300; it++) {
        c.hits[7] = it;
        air_pool_run(pool, jitter_fn, &c);
        if (it % 37 == 0) {
            struct timespec ts = {0, 3000000}; /* 3 ms idle */
            nanosleep(&ts, NULL);
        }
    }
    for (int i = 0; i < 4; i++)
        ASSERT_EQ_INT(c.hits[i], 300);
    air_pool_free(pool);
}

TEST(dispatch) {
    ASSERT_TRUE(air_kernels_isa_supported(AIR_ISA_REF));
    ASSERT_TRUE(air_kernels_force_isa(AIR_ISA_REF));
    ASSERT_EQ_INT(air_kernels_isa(), AIR_ISA_REF);
    for (int k = 0; k < N_ISAS; k++) {
        int sup = air_kernels_isa_supported(k_isas[k]);
        fprintf(stderr, "  isa %-7s %s\n", air_isa_name(k_isas[k]),
                sup ? "supported: tested" : "not supported by this CPU/build: skipped");
        ASSERT_EQ_INT(air_kernels_force_isa(k_isas[k]), sup);
    }
    air_kernels_force_isa(AIR_ISA_REF);
}

/* More threads than CPUs (workers that often are not running): every slice of
 * every run is done exactly once, by whichever thread claims it. */
typedef struct {
    int hits[64];
    pthread_t by[64];
} claim_ctx;

static void claim_fn(void *p, int ith, int nth) {
    claim_ctx *c = p;
    (void)nth;
    __atomic_fetch_add(&c->hits[ith], 1, __ATOMIC_RELAXED);
    c->by[ith] = pthread_self();
}

TEST(pool_oversubscribed) {
    int n = air_cpu_count() * 4 + 1;
    if (n > 64)
        n = 64;
    air_pool *pool = air_pool_create(n);
    ASSERT_TRUE(pool != NULL);
    ASSERT_EQ_INT(air_pool_size(pool), n);
    claim_ctx c;
    memset(&c, 0, sizeof c);
    for (int it = 0; it < 500; it++)
        air_pool_run(pool, claim_fn, &c);
    for (int i = 0; i < n; i++)
        ASSERT_EQ_INT(c.hits[i], 500);
    air_pool_free(pool);
}

/* Slices are claimed, not assigned: right after the workers fell asleep, the
 * caller takes slices other than 0 itself instead of waiting for the workers
 * to wake up (a worker that is slow to be scheduled never holds a run up). */
TEST(pool_caller_takes_unclaimed_slices) {
    air_pool *pool = air_pool_create(4);
    ASSERT_TRUE(pool != NULL);
    int caller_took_other = 0;
    for (int it = 0; it < 10 && !caller_took_other; it++) {
        struct timespec ts = {0, 30000000}; /* 30 ms idle: workers go to sleep */
        nanosleep(&ts, NULL);
        claim_ctx c;
        memset(&c, 0, sizeof c);
        air_pool_run(pool, claim_fn, &c);
        for (int i = 0; i < 4; i++) {
            ASSERT_EQ_INT(c.hits[i], 1);
            if (i > 0 && pthread_equal(c.by[i], pthread_self()))
                caller_took_other = 1;
        }
    }
    ASSERT_TRUE(caller_took_other);
    air_pool_free(pool);
}

TEST(pool_thread_counts) {
    int cpus = air_cpu_count();
    ASSERT_TRUE(cpus >= 1);
    ASSERT_EQ_INT(air_pool_threads(0), cpus);
    ASSERT_EQ_INT(air_pool_threads(-1), cpus);
    ASSERT_EQ_INT(air_pool_threads(1), 1);
    ASSERT_EQ_INT(air_pool_threads(cpus), cpus);
    ASSERT_EQ_INT(air_pool_threads(cpus + 5), cpus);
    ASSERT_EQ_INT(air_pool_threads(1000000), cpus);
}

int main(void) {
    RUN(f16_round_trip_all);
    RUN(f16_rounding);
    RUN(bf16_rounding);
    RUN(dtype_helpers);
    RUN(row_round_trip);
    RUN(dispatch);
    RUN(matmul_all_isas_formats_shapes);
    RUN(matmul_threads_identical);
    RUN(small_ops_all_isas);
    RUN(softmax_extremes);
    RUN(pool_runs_every_index);
    RUN(pool_wakes_sleepers);
    RUN(pool_stress);
    RUN(pool_oversubscribed);
    RUN(pool_caller_takes_unclaimed_slices);
    RUN(pool_thread_counts);
    return test_summary();
}
