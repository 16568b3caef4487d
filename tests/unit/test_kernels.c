/*
 * test_kernels.c - every kernel x ISA x weight format x shape against a
 * double-precision reference, in the manner of a backend-ops test.
 *
 * Every check compares each output element with a bound that holds by
 * construction: the rounding error fp32 arithmetic can make on that element,
 * scaled by the magnitudes of the terms it sums (not by the size of the
 * result, which can cancel). Sums use the probabilistic bound of Higham and
 * Mary (SIAM J. Sci. Comput. 41(5), 2019): a float sum of n terms is off by
 * at most lambda * sqrt(n) * u * sum|terms| except with probability below
 * 2n * exp(-lambda^2 / 2); with lambda = 8 that is under 1e-10 here. (The
 * worst-case n * u * sum|terms| is so loose at n = 4099 that it would hide
 * a dropped term.) The int8 paths of the quantized formats are checked
 * against an exact emulation of their integer arithmetic, and against the
 * fp32 reference with the quantization error of the activations added to
 * the bound.
 *
 * Inputs come from a generator seeded per case, so every ISA sees the same
 * inputs whichever ISAs ran before it. ISAs the CPU lacks are skipped and
 * said so; AIR_ISA=<isa> makes the library start on one (see dispatch).
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

static uint64_t g_rng;

/* Restarts the generator for one case: the same inputs for every ISA. */
static void seed_case(uint64_t id) {
    g_rng = 0x9e3779b97f4a7c15ull ^ (id * 0xbf58476d1ce4e5b9ull);
    if (!g_rng)
        g_rng = 1;
}

static float frand(void) { /* uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / 4503599627370496.0 - 1.0);
}

static float grand(void) { /* roughly normal, unit variance */
    return (frand() + frand() + frand()) * 1.0f;
}

#define U 0x1p-24        /* unit roundoff of fp32 */
#define TINY 1e-30       /* absolute floor: flushed denormals, exp underflow */
#define LAMBDA 8.0       /* see the top of the file */
#define EXP_ULPS 4.0     /* the SIMD exp is within ~2 ulp, libm's expf within 1 */

/* Rounding error of a float sum of n terms of magnitudes summing to abs_sum. */
static double sum_err(double n, double abs_sum) {
    return (LAMBDA * sqrt(n) + 2.0) * U * abs_sum;
}

/* First i with |y[i] - ref[i]| > bound[i] (or not a number), or -1. */
static long first_over(const float *y, const double *ref, const double *bound, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)y[i] - ref[i]) <= bound[i] + TINY))
            return (long)i;
    return -1;
}

#define CHECK_ELEMS(y, ref, bound, n, ...)                                                   \
    do {                                                                                   \
        long _i = first_over(y, ref, bound, n);                                            \
        if (_i >= 0) {                                                                     \
            fprintf(stderr, "element %ld: %.9g vs %.9g, error %.3g > bound %.3g: ", _i,     \
                    (double)(y)[_i], (ref)[_i], fabs((double)(y)[_i] - (ref)[_i]),          \
                    (bound)[_i]);                                                          \
            T_FAIL(__VA_ARGS__);                                                           \
        }                                                                                  \
    } while (0)

static const air_isa k_isas[] = {AIR_ISA_REF, AIR_ISA_AVX2, AIR_ISA_AVX512, AIR_ISA_NEON};
#define N_ISAS (int)(sizeof k_isas / sizeof k_isas[0])

/* 1 if (isa, t) runs the int8 path: activations quantized per 32 elements
 * (and NF4 code values as int8). */
static int int8_path(air_isa isa, air_dtype t) {
    return isa != AIR_ISA_REF && (t == AIR_DT_Q8 || t == AIR_DT_NF4);
}

/* What the int8 kernels compute, in double: the same int8 activations and
 * weight codes, exact integer dots, then the block scales (y). Also the
 * bounds of a kernel's fp32 arithmetic on that (em_bound) and of the
 * emulation against the fp32 reference (q_bound).
 *
 * em_bound: the kernels sum, per block, products of the scales with integer
 * dots of offset codes (w + 128) and a correction 128 * d_x * sum(q_x), in
 * 8 lanes plus the correction: about 9 terms per block, whose magnitudes are
 * bounded by |d_w d_x| (sum |(w + 128) q_x| + 128 |sum q_x|).
 * q_bound: y_em - y_ref = sum (w' - w) x + sum w' (x' - x), where w' are the
 * weights the kernels use (NF4 codes rounded to int8 / 127), x' = d_x q_x
 * the quantized activations, |x' - x| <= d_x / 2 plus the rounding of the
 * quantizer's own arithmetic (4u |x|). */
static void mm_int8_emulated(air_dtype t, const void *W, const float *Wf, int n_out, int n_in,
                             const float *x, int rows, double *y, double *em_bound,
                             double *q_bound) {
    int nxb = n_in / AIR_XQ_BLOCK;
    air_block_xq *xq = malloc(sizeof *xq * (size_t)nxb);
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n_in;
        air_xq_quantize_row(xr, xq, n_in);
        for (int o = 0; o < n_out; o++) {
            double acc = 0, mag = 0, qb = 0;
            for (int b = 0; b < nxb; b++) {
                long isum = 0, xsum = 0, usum = 0;
                double dw;
                int wq[32];
                if (t == AIR_DT_Q8) {
                    const air_block_q8 *wb = (const air_block_q8 *)W + (size_t)o * nxb + b;
                    for (int i = 0; i < 32; i++)
                        wq[i] = wb->qs[i];
                    dw = air_f16_to_f32(wb->d);
                } else {
                    const air_block_nf4 *wb =
                        (const air_block_nf4 *)W + (size_t)o * (nxb / 2) + b / 2;
                    for (int i = 0; i < 32; i++)
                        wq[i] = air_nf4_values_i8[air_nf4_get(wb, (b & 1) * 32 + i)];
                    dw = wb->absmax / 127.0;
                }
                for (int i = 0; i < 32; i++) {
                    int k = b * 32 + i;
                    double wk = dw * wq[i], xk = xr[k];
                    isum += wq[i] * xq[b].q[i];
                    xsum += xq[b].q[i];
                    usum += labs((long)(wq[i] + 128) * xq[b].q[i]);
                    qb += fabs(wk - Wf[(size_t)o * n_in + k]) * fabs(xk) +
                          fabs(wk) * (0.5 * xq[b].d + 4 * U * fabs(xk));
                }
                acc += dw * xq[b].d * (double)isum;
                mag += fabs(dw * xq[b].d) * (double)(usum + 128 * labs(xsum));
            }
            size_t idx = (size_t)r * n_out + o;
            y[idx] = acc;
            em_bound[idx] = (LAMBDA * sqrt(9.0 * nxb) + 4.0) * U * mag;
            q_bound[idx] = qb;
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

/* Round trip through every storage format: each element within half a step
 * of the format (for Q8 the step of the fp16-rounded block scale, for NF4
 * half the widest gap between NF4 code values, times the block's absmax). */
TEST(row_round_trip) {
    enum { N = 256 };
    float x[N], y[N];
    double ref[N], bound[N];
    unsigned char buf[N * 4];
    double nf4_gap = 0;
    for (int c = 0; c < 15; c++)
        nf4_gap = fmax(nf4_gap, (double)air_nf4_values[c + 1] - air_nf4_values[c]);
    seed_case(1);
    for (int i = 0; i < N; i++)
        ref[i] = x[i] = grand() * 0.05f;
    for (int t = 0; t < AIR_DT_COUNT; t++) {
        air_row_from_f32((air_dtype)t, x, buf, N);
        air_row_to_f32((air_dtype)t, buf, y, N);
        for (int i = 0; i < N; i++) {
            double ax = fabs((double)x[i]);
            switch ((air_dtype)t) {
            case AIR_DT_F32:
                bound[i] = 0;
                break;
            case AIR_DT_F16: /* half an ulp of 10 mantissa bits; subnormals below 2^-14 */
                bound[i] = 0x1p-11 * ax + 0x1p-25;
                break;
            case AIR_DT_BF16: /* half an ulp of 7 mantissa bits */
                bound[i] = 0x1p-8 * ax;
                break;
            case AIR_DT_Q8: {
                double d = air_f16_to_f32(((const air_block_q8 *)buf)[i / 32].d);
                bound[i] = 0.5 * d + (0x1p-11 + 8 * U) * ax;
                break;
            }
            default: { /* NF4 */
                double amax = ((const air_block_nf4 *)buf)[i / 64].absmax;
                bound[i] = amax * (0.5 * nf4_gap + 4 * U);
                break;
            }
            }
        }
        CHECK_ELEMS(y, ref, bound, N, "%s round trip", air_dtype_name((air_dtype)t));
    }
}

/* ------------------------------------------------------------------------- */
/* Matmul                                                                    */
/* ------------------------------------------------------------------------- */

typedef struct {
    air_dtype t;
    int n_out, n_in, rows;
    void *W;        /* in format t */
    float *Wf;      /* dequantized */
    float *x;       /* (rows, n_in) */
    double *yref;   /* (rows, n_out) */
    double *fp_bnd; /* (rows, n_out): rounding of an fp32-accumulating kernel */
    double *yem, *em_bnd, *q_bnd; /* int8 emulation and its bounds, made on demand */
} mm_case;

static void case_init(mm_case *c, air_dtype t, int n_out, int n_in, int rows) {
    memset(c, 0, sizeof *c);
    c->t = t;
    c->n_out = n_out;
    c->n_in = n_in;
    c->rows = rows;
    seed_case(((((uint64_t)t * 1000 + (uint64_t)n_out) * 10000 + (uint64_t)n_in) * 100) +
              (uint64_t)rows);
    size_t rb = air_dtype_row_bytes(t, n_in), n = (size_t)rows * n_out;
    c->W = malloc(rb * (size_t)n_out);
    c->Wf = malloc(sizeof(float) * (size_t)n_out * n_in);
    c->x = malloc(sizeof(float) * (size_t)rows * n_in);
    c->yref = malloc(sizeof(double) * n);
    c->fp_bnd = malloc(sizeof(double) * n);
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
            double acc = 0, mag = 0;
            for (int i = 0; i < n_in; i++) {
                double p = (double)c->Wf[(size_t)o * n_in + i] * c->x[(size_t)r * n_in + i];
                acc += p;
                mag += fabs(p);
            }
            c->yref[(size_t)r * n_out + o] = acc;
            c->fp_bnd[(size_t)r * n_out + o] = sum_err(n_in, mag);
        }
}

static void case_free(mm_case *c) {
    free(c->W);
    free(c->Wf);
    free(c->x);
    free(c->yref);
    free(c->fp_bnd);
    free(c->yem);
    free(c->em_bnd);
    free(c->q_bnd);
}

/* Checks y, the result of `isa` on case c, element by element; prints the
 * first element out of bounds and returns 1 if there is one. */
static int mm_check(air_isa isa, mm_case *c, const float *y) {
    size_t n = (size_t)c->rows * c->n_out;
    const char *what = "fp32 reference";
    const double *ref = c->yref, *bnd = c->fp_bnd;
    double *tot = NULL;
    long bad = -1;
    if (int8_path(isa, c->t)) {
        if (!c->yem) {
            c->yem = malloc(sizeof(double) * n);
            c->em_bnd = malloc(sizeof(double) * n);
            c->q_bnd = malloc(sizeof(double) * n);
            mm_int8_emulated(c->t, c->W, c->Wf, c->n_out, c->n_in, c->x, c->rows, c->yem,
                             c->em_bnd, c->q_bnd);
        }
        bad = first_over(y, c->yem, c->em_bnd, n);
        if (bad >= 0) {
            what = "exact int8 emulation";
            ref = c->yem;
            bnd = c->em_bnd;
        } else { /* against fp32: the kernel's rounding plus the quantization */
            tot = malloc(sizeof(double) * n);
            for (size_t i = 0; i < n; i++)
                tot[i] = c->em_bnd[i] + c->q_bnd[i] + 1e-9 * c->fp_bnd[i];
            bnd = tot;
            bad = first_over(y, ref, bnd, n);
        }
    } else {
        bad = first_over(y, ref, bnd, n);
    }
    if (bad >= 0)
        fprintf(stderr, "%s %s n_out=%d n_in=%d rows=%d: element %ld (row %ld, out %ld): %.9g vs "
                "%s %.9g, error %.3g > bound %.3g\n",
                air_isa_name(isa), air_dtype_name(c->t), c->n_out, c->n_in, c->rows, bad,
                bad / c->n_out, bad % c->n_out, y[bad], what, ref[bad], fabs(y[bad] - ref[bad]),
                bnd[bad]);
    free(tot);
    return bad >= 0;
}

TEST(matmul_all_isas_formats_shapes) {
    static const int n_outs[] = {1, 7, 16, 33, 67};
    static const int n_ins[] = {64, 192, 576};
    static const int rowss[] = {1, 2, 7, 13, 33};
    /* normalized error per (isa, format) over all shapes: printed for information */
    double agg_num[N_ISAS][AIR_DT_COUNT] = {{0}}, agg_den[N_ISAS][AIR_DT_COUNT] = {{0}};
    int ran = 0, failed = 0;
    for (int t = 0; t < AIR_DT_COUNT; t++)
        for (size_t a = 0; a < sizeof n_outs / sizeof *n_outs; a++)
            for (size_t b = 0; b < sizeof n_ins / sizeof *n_ins; b++)
                for (size_t r = 0; r < sizeof rowss / sizeof *rowss; r++) {
                    mm_case c;
                    case_init(&c, (air_dtype)t, n_outs[a], n_ins[b], rowss[r]);
                    size_t n = (size_t)c.rows * c.n_out;
                    float *y = malloc(sizeof(float) * n);
                    for (int k = 0; k < N_ISAS; k++) {
                        if (!air_kernels_force_isa(k_isas[k]))
                            continue;
                        air_matmul(NULL, c.t, c.W, c.n_out, c.n_in, c.x, c.rows, y);
                        for (size_t i = 0; i < n; i++) {
                            agg_num[k][t] += (y[i] - c.yref[i]) * (y[i] - c.yref[i]);
                            agg_den[k][t] += c.yref[i] * c.yref[i];
                        }
                        ran++;
                        failed += mm_check(k_isas[k], &c, y);
                    }
                    free(y);
                    case_free(&c);
                }
    air_kernels_force_isa(AIR_ISA_REF);
    ASSERT_TRUE(ran > 0);
    for (int k = 0; k < N_ISAS; k++)
        for (int t = 0; t < AIR_DT_COUNT; t++)
            if (agg_den[k][t] > 0)
                fprintf(stderr, "  %-6s %-4s normalized error over all shapes %.3g\n",
                        air_isa_name(k_isas[k]), air_dtype_name((air_dtype)t),
                        sqrt(agg_num[k][t] / agg_den[k][t]));
    ASSERT_EQ_INT(failed, 0);
}

/* Q8 rows of an odd number of blocks (n_in = 32 * odd): kernels that work
 * on pairs of blocks must handle the lone last one. */
TEST(matmul_q8_odd_block_counts) {
    static const int n_ins[] = {32, 96, 160};
    static const int rowss[] = {1, 5};
    int ran = 0, failed = 0;
    for (size_t b = 0; b < sizeof n_ins / sizeof *n_ins; b++)
        for (size_t r = 0; r < sizeof rowss / sizeof *rowss; r++) {
            mm_case c;
            case_init(&c, AIR_DT_Q8, 9, n_ins[b], rowss[r]);
            float *y = malloc(sizeof(float) * (size_t)c.rows * c.n_out);
            for (int k = 0; k < N_ISAS; k++) {
                if (!air_kernels_force_isa(k_isas[k]))
                    continue;
                air_matmul(NULL, c.t, c.W, c.n_out, c.n_in, c.x, c.rows, y);
                ran++;
                failed += mm_check(k_isas[k], &c, y);
            }
            free(y);
            case_free(&c);
        }
    air_kernels_force_isa(AIR_ISA_REF);
    ASSERT_TRUE(ran > 0);
    ASSERT_EQ_INT(failed, 0);
}

TEST(matmul_threads_identical) {
    air_pool *pools[3] = {air_pool_create(1), air_pool_create(2), air_pool_create(3)};
    for (int p = 0; p < 3; p++)
        ASSERT_TRUE(pools[p] != NULL);
    int failed = 0;
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
                if (!same)
                    fprintf(stderr, "%s %s rows=%d: results differ between 1, 2, 3 threads\n",
                            air_isa_name(k_isas[k]), air_dtype_name((air_dtype)t), rowss[r]);
                failed += !same + mm_check(k_isas[k], &c, y[2]);
                for (int p = 0; p < 3; p++)
                    free(y[p]);
                case_free(&c);
            }
        }
    }
    for (int p = 0; p < 3; p++)
        air_pool_free(pools[p]);
    air_kernels_force_isa(AIR_ISA_REF);
    ASSERT_EQ_INT(failed, 0);
}

/* air_matmul_n (one prepared x, one pool run for several weights, formats
 * mixed) gives every output bit for bit what air_matmul gives. */
TEST(matmul_n_equals_separate_matmuls) {
    static const air_dtype ts[] = {AIR_DT_Q8, AIR_DT_NF4, AIR_DT_F16, AIR_DT_Q8};
    static const int n_outs[] = {67, 33, 16, 203};
    air_pool *pool = air_pool_create(2);
    ASSERT_TRUE(pool != NULL);
    int failed = 0;
    for (int k = 0; k < N_ISAS; k++) {
        if (!air_kernels_force_isa(k_isas[k]))
            continue;
        static const int rowss[] = {1, 7};
        for (int r = 0; r < 2; r++) {
            mm_case c[4];
            air_mm_out outs[4];
            float *ys[4];
            for (int i = 0; i < 4; i++) {
                case_init(&c[i], ts[i], n_outs[i], 192, rowss[r]);
                ys[i] = malloc(sizeof(float) * (size_t)rowss[r] * n_outs[i]);
                outs[i] = (air_mm_out){ts[i], c[i].W, n_outs[i], malloc(sizeof(float) *
                                                                        (size_t)rowss[r] * n_outs[i])};
                air_matmul(pool, ts[i], c[i].W, n_outs[i], 192, c[0].x, rowss[r], ys[i]);
            }
            air_matmul_n(pool, outs, 4, 192, c[0].x, rowss[r]);
            for (int i = 0; i < 4; i++) {
                if (memcmp(ys[i], outs[i].y, sizeof(float) * (size_t)rowss[r] * n_outs[i])) {
                    fprintf(stderr, "%s rows=%d output %d (%s): differs from air_matmul\n",
                            air_isa_name(k_isas[k]), rowss[r], i, air_dtype_name(ts[i]));
                    failed++;
                }
                free(ys[i]);
                free(outs[i].y);
                case_free(&c[i]);
            }
        }
    }
    air_pool_free(pool);
    air_kernels_force_isa(AIR_ISA_REF);
    ASSERT_EQ_INT(failed, 0);
}

/* ------------------------------------------------------------------------- */
/* Small ops                                                                 */
/* ------------------------------------------------------------------------- */

TEST(small_ops_all_isas) {
    static const int sizes[] = {1, 3, 8, 17, 64, 100, 4099};
    enum { MAXN = 4099 };
    static float x[MAXN], w[MAXN], g[MAXN], u[MAXN], sx[MAXN], y[MAXN];
    static double r_rms[MAXN], b_rms[MAXN], r_silu[MAXN], b_silu[MAXN], r_sm[MAXN], b_sm[MAXN],
        r_axpy[MAXN], b_axpy[MAXN];
    const float alpha = 0.37f, eps = 1e-5f;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int n = sizes[s];
        seed_case(100 + (uint64_t)n);
        for (int i = 0; i < n; i++) {
            x[i] = grand();
            w[i] = 1.0f + 0.1f * frand();
            g[i] = 6.0f * frand();
            u[i] = grand();
            sx[i] = 8.0f * grand(); /* softmax scores with a wide range */
        }
        /* rmsnorm: the sum of squares (n positive terms), then per element
         * the scale's few roundings, then two products */
        double ss = 0;
        for (int i = 0; i < n; i++)
            ss += (double)x[i] * x[i];
        double sc = 1.0 / sqrt(ss / n + (double)eps);
        double rel_ss = sum_err(n, ss) / ss + U;
        for (int i = 0; i < n; i++) {
            r_rms[i] = x[i] * sc * w[i];
            b_rms[i] = (0.5 * rel_ss + 6 * U) * fabs(r_rms[i]);
        }
        /* silu_mul: exp's error, then an add, a divide and a product */
        for (int i = 0; i < n; i++) {
            r_silu[i] = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
            b_silu[i] = (EXP_ULPS + 4) * U * fabs(r_silu[i]);
        }
        /* softmax: x - max rounds by u |x - max| before exp; the sum of
         * positive terms carries their weighted errors plus its own */
        double mx = -1e30, sum = 0, werr = 0;
        for (int i = 0; i < n; i++)
            mx = fmax(mx, sx[i]);
        for (int i = 0; i < n; i++)
            sum += (r_sm[i] = exp(sx[i] - mx));
        for (int i = 0; i < n; i++) {
            r_sm[i] /= sum;
            werr += r_sm[i] * (EXP_ULPS + fabs(sx[i] - mx)) * U;
        }
        for (int i = 0; i < n; i++)
            b_sm[i] = ((EXP_ULPS + fabs(sx[i] - mx)) * U + werr + sum_err(n, 1.0) + 3 * U) *
                      r_sm[i];
        /* dot: one sum */
        double d = 0, da = 0;
        for (int i = 0; i < n; i++) {
            d += (double)x[i] * u[i];
            da += fabs((double)x[i] * u[i]);
        }
        /* axpy: a product and an add (or one fused multiply-add) per element */
        for (int i = 0; i < n; i++) {
            r_axpy[i] = u[i] + (double)alpha * x[i];
            b_axpy[i] = 2 * U * (fabs(u[i]) + fabs((double)alpha * x[i]));
        }
        for (int k = 0; k < N_ISAS; k++) {
            if (!air_kernels_force_isa(k_isas[k]))
                continue;
            const char *isa = air_isa_name(k_isas[k]);
            air_rmsnorm(y, x, w, n, eps);
            CHECK_ELEMS(y, r_rms, b_rms, n, "%s rmsnorm n=%d", isa, n);
            air_silu_mul(y, g, u, n);
            CHECK_ELEMS(y, r_silu, b_silu, n, "%s silu_mul n=%d", isa, n);
            memcpy(y, sx, sizeof(float) * n);
            air_softmax(y, n);
            CHECK_ELEMS(y, r_sm, b_sm, n, "%s softmax n=%d", isa, n);
            float df = air_dot_f32(x, u, n);
            if (!(fabs(df - d) <= sum_err(n, da) + TINY))
                T_FAIL("%s dot n=%d: %.9g vs %.9g, error %.3g > bound %.3g", isa, n, df, d,
                       fabs(df - d), sum_err(n, da));
            memcpy(y, u, sizeof(float) * n);
            air_axpy_f32(y, alpha, x, n);
            CHECK_ELEMS(y, r_axpy, b_axpy, n, "%s axpy n=%d", isa, n);
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

/* AIR_ISA=<isa> (when this CPU supports it) is the ISA the library starts
 * on: scripts/test.sh runs the whole suite once per supported ISA this way. */
TEST(isa_from_environment) {
    const char *env = getenv("AIR_ISA");
    fprintf(stderr, "  %s (AIR_ISA=%s)\n", air_system_info(), env ? env : "");
    if (!env || !*env)
        return;
    for (int k = 0; k < N_ISAS; k++)
        if (!strcmp(env, air_isa_name(k_isas[k])) && air_kernels_isa_supported(k_isas[k]))
            ASSERT_EQ_STR(air_isa_name(air_kernels_isa()), env);
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
    /* Under user-mode emulation (scripts/test-neon.sh sets AIR_TEST_EMULATED)
     * the emulated caller is slower than a futex wake-up, so the workers claim
     * every slice first; the property is checked on native runs. */
    if (getenv("AIR_TEST_EMULATED")) {
        fprintf(stderr, "  skipped under emulation (timing of wake-ups)\n");
        return;
    }
    air_pool *pool = air_pool_create(4);
    ASSERT_TRUE(pool != NULL);
    int caller_took_other = 0;
    /* the caller can be preempted right after publishing a run (a loaded
     * machine): try up to 100 runs, each after the workers fell asleep */
    for (int it = 0; it < 100 && !caller_took_other; it++) {
        struct timespec ts = {0, 20000000}; /* 20 ms idle: workers go to sleep */
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
    RUN(isa_from_environment); /* first: before any test forces an ISA */
    RUN(f16_round_trip_all);
    RUN(f16_rounding);
    RUN(bf16_rounding);
    RUN(dtype_helpers);
    RUN(row_round_trip);
    RUN(dispatch);
    RUN(matmul_all_isas_formats_shapes);
    RUN(matmul_q8_odd_block_counts);
    RUN(matmul_threads_identical);
    RUN(matmul_n_equals_separate_matmuls);
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
