/*
 * x86_avx2.c - AVX2 + FMA + F16C kernels.
 *
 * Matmul tiles: MR weight rows x NR activation rows, one 8-lane fp32
 * accumulator per output, so a weight vector loaded (and decoded) once serves
 * NR activation rows, and an activation vector serves MR weight rows. Every
 * output is summed in the same order whatever tile computes it, so results do
 * not depend on how rows are split over threads. Decode (rows = 1) uses 4x1
 * tiles; prefill 2x4 tiles over L2-sized groups of weight rows.
 *
 * Q8 and NF4 use int8 dot products on activations quantized per 32 elements
 * (air_block_xq): |w| (vpsignb) times sign-adjusted x (vpmaddubsw), pairs
 * summed to int32 (vpmaddwd), converted and scaled by d_w * d_x. NF4 codes are
 * turned into int8 code values (round(127 * NF4[c])) by vpshufb.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels/kernels.h"

#define AI static inline __attribute__((always_inline))
/* Full unrolling of the tile loops keeps the accumulators in registers. */
#define UNROLL _Pragma("GCC unroll 8")
/* Decode streams weight rows from RAM: prefetch this far ahead of each row
 * (far enough to cover memory latency with several rows in flight). */
#ifndef PF_BYTES
#define PF_BYTES 16384
#endif

AI float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AI float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* e^x, max relative error ~2 ulp; 0 below -87.3, inf above 88.7. */
AI __m256 exp8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3f);
    __m256 tiny = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    __m256 huge = _mm256_cmp_ps(x, _mm256_set1_ps(88.72283935546875f), _CMP_GT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), huge);
    return _mm256_andnot_ps(tiny, y);
}

/* ------------------------------------------------------------------------- */
/* f32 / f16 / bf16 weights                                                  */
/* ------------------------------------------------------------------------- */

AI __m256 load8(int t, const void *p, int i) {
    if (t == AIR_DT_F32)
        return _mm256_loadu_ps((const float *)p + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
    if (t == AIR_DT_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

AI float load1(int t, const void *p, int i) {
    if (t == AIR_DT_F32)
        return ((const float *)p)[i];
    if (t == AIR_DT_F16)
        return air_f16_to_f32(((const uint16_t *)p)[i]);
    return air_bf16_to_f32(((const uint16_t *)p)[i]);
}

AI void tile_float(int t, int MR, int NR, const uint8_t *W, size_t rb, int n_in, const float *x,
                   float *y, int n_out, int o, int r) {
    __m256 acc[4][4];
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++) acc[m][n] =
        _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n_in; i += 8) {
        __m256 xv[4];
        UNROLL for (int n = 0; n < NR; n++) xv[n] = _mm256_loadu_ps(x + (size_t)(r + n) * n_in + i);
        UNROLL for (int m = 0; m < MR; m++) {
            __m256 w = load8(t, W + (size_t)(o + m) * rb, i);
            UNROLL for (int n = 0; n < NR; n++) acc[m][n] = _mm256_fmadd_ps(w, xv[n], acc[m][n]);
        }
    }
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++) {
        float s = hsum8(acc[m][n]);
        for (int j = i; j < n_in; j++)
            s += load1(t, W + (size_t)(o + m) * rb, j) * x[(size_t)(r + n) * n_in + j];
        y[(size_t)(r + n) * n_out + o + m] = s;
    }
}

#define MM_FLOAT(name, T)                                                                          \
    static void name(const void *W, int n_in, const void *xv, int rows, float *y, int n_out,       \
                     int o0, int o1) {                                                             \
        const float *x = xv;                                                                       \
        size_t rb = air_dtype_row_bytes(T, n_in);                                                  \
        AIR_MM_DRIVE(TILE_FLOAT_##T, rb);                                                          \
    }
#define TILE_FLOAT(T, MR, NR, o, r)                                                                \
    tile_float(T, MR, NR, (const uint8_t *)W, rb, n_in, x, y, n_out, o, r)
#define TILE_FLOAT_AIR_DT_F32(MR, NR, o, r) TILE_FLOAT(AIR_DT_F32, MR, NR, o, r)
#define TILE_FLOAT_AIR_DT_F16(MR, NR, o, r) TILE_FLOAT(AIR_DT_F16, MR, NR, o, r)
#define TILE_FLOAT_AIR_DT_BF16(MR, NR, o, r) TILE_FLOAT(AIR_DT_BF16, MR, NR, o, r)
MM_FLOAT(mm_f32, AIR_DT_F32)
MM_FLOAT(mm_f16, AIR_DT_F16)
MM_FLOAT(mm_bf16, AIR_DT_BF16)

/* ------------------------------------------------------------------------- */
/* Q8 and NF4 weights, int8 activations                                      */
/* ------------------------------------------------------------------------- */

/* sum over 32 lanes of w * x as 8 int32 partial sums (|w| <= 127, |x| <= 127) */
AI __m256 dot32(__m256i aw, __m256i w, __m256i x) {
    __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

// y[r][o] = sum_b d_w[o,b] * d_x[r,b] * sum_i q_w[o,b,i] * q_x[r,b,i]
AI void tile_q8(int MR, int NR, const air_block_q8 *W, int nb, const air_block_xq *x, float *y,
                int n_out, int o, int r) {
    __m256 acc[4][4];
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++) acc[m][n] =
        _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256i xv[4];
        float dx[4];
        UNROLL for (int n = 0; n < NR; n++) {
            const air_block_xq *xb = x + (size_t)(r + n) * nb + b;
            xv[n] = _mm256_loadu_si256((const __m256i *)xb->q);
            dx[n] = xb->d;
        }
        UNROLL for (int m = 0; m < MR; m++) {
            const air_block_q8 *wb = W + (size_t)(o + m) * nb + b;
            if (NR == 1)
                _mm_prefetch((const char *)wb + PF_BYTES, _MM_HINT_T0);
            __m256i w = _mm256_loadu_si256((const __m256i *)wb->qs);
            __m256i aw = _mm256_sign_epi8(w, w);
            float dw = _cvtsh_ss(wb->d);
            UNROLL for (int n = 0; n < NR; n++) acc[m][n] =
                _mm256_fmadd_ps(dot32(aw, w, xv[n]), _mm256_set1_ps(dw * dx[n]), acc[m][n]);
        }
    }
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++)
        y[(size_t)(r + n) * n_out + o + m] = hsum8(acc[m][n]);
}

static void mm_q8(const void *W, int n_in, const void *xv, int rows, float *y, int n_out, int o0,
                  int o1) {
    const air_block_xq *x = xv;
    int nb = n_in / AIR_Q8_BLOCK;
#define TILE_Q8(MR, NR, o, r) tile_q8(MR, NR, W, nb, x, y, n_out, o, r)
    AIR_MM_DRIVE(TILE_Q8, (size_t)nb * sizeof(air_block_q8));
#undef TILE_Q8
}

// y[r][o] = sum_b absmax[o,b] / 127 * sum_h d_x[r,2b+h] * sum_i nf4_i8[c[o,b,32h+i]] * q_x[...]
AI void tile_nf4(int MR, int NR, const air_block_nf4 *W, int nb, const air_block_xq *x, float *y,
                 int n_out, int o, int r) {
    const __m256i table =
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)air_nf4_values_i8));
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256 acc[4][4];
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++) acc[m][n] =
        _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256i xlo[4], xhi[4];
        float dlo[4], dhi[4];
        UNROLL for (int n = 0; n < NR; n++) {
            const air_block_xq *xb = x + (size_t)(r + n) * nb * 2 + 2 * b;
            xlo[n] = _mm256_loadu_si256((const __m256i *)xb[0].q);
            xhi[n] = _mm256_loadu_si256((const __m256i *)xb[1].q);
            dlo[n] = xb[0].d;
            dhi[n] = xb[1].d;
        }
        UNROLL for (int m = 0; m < MR; m++) {
            const air_block_nf4 *wb = W + (size_t)(o + m) * nb + b;
            if (NR == 1)
                _mm_prefetch((const char *)wb + PF_BYTES, _MM_HINT_T0);
            __m256i q = _mm256_loadu_si256((const __m256i *)wb->qs);
            __m256i wlo = _mm256_shuffle_epi8(table, _mm256_and_si256(q, m4));
            __m256i whi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
            __m256i alo = _mm256_sign_epi8(wlo, wlo), ahi = _mm256_sign_epi8(whi, whi);
            float a = wb->absmax * (1.0f / 127.0f);
            UNROLL for (int n = 0; n < NR; n++) {
                acc[m][n] =
                    _mm256_fmadd_ps(dot32(alo, wlo, xlo[n]), _mm256_set1_ps(a * dlo[n]), acc[m][n]);
                acc[m][n] =
                    _mm256_fmadd_ps(dot32(ahi, whi, xhi[n]), _mm256_set1_ps(a * dhi[n]), acc[m][n]);
            }
        }
    }
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++)
        y[(size_t)(r + n) * n_out + o + m] = hsum8(acc[m][n]);
}

static void mm_nf4(const void *W, int n_in, const void *xv, int rows, float *y, int n_out, int o0,
                   int o1) {
    const air_block_xq *x = xv;
    int nb = n_in / AIR_NF4_BLOCK;
#define TILE_NF4(MR, NR, o, r) tile_nf4(MR, NR, W, nb, x, y, n_out, o, r)
    AIR_MM_DRIVE(TILE_NF4, (size_t)nb * sizeof(air_block_nf4));
#undef TILE_NF4
}

/* x (n) -> int8 blocks of 32: d = absmax / 127, q = rint(x * 127 / absmax) */
static void quantize_x(const float *x, air_block_xq *dst, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / AIR_XQ_BLOCK; b++) {
        const float *xb = x + b * AIR_XQ_BLOCK;
        __m256 v[4], mx = _mm256_setzero_ps();
        UNROLL for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[k]));
        }
        float amax = hmax8(mx);
        float d = amax / 127.0f;
        __m256 id = _mm256_set1_ps(amax != 0.0f ? (1.0f / amax) * 127.0f : 0.0f);
        __m256i q[4];
        UNROLL for (int k = 0; k < 4; k++) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], id));
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_hadd_epi32(s4, s4);
        s4 = _mm_hadd_epi32(s4, s4);
        /* pack 4 x 8 int32 -> 32 int8 in element order */
        __m256i p01 = _mm256_packs_epi32(q[0], q[1]), p23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)dst[b].q, p);
        dst[b].d = d;
        dst[b].s = d * (float)_mm_cvtsi128_si32(s4);
    }
}

/* ------------------------------------------------------------------------- */
/* Small ops                                                                 */
/* ------------------------------------------------------------------------- */

// y (n) = x (n) / sqrt(mean(x^2) + eps) * w (n)
static void rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    float ss = hsum8(acc);
    for (; i < n; i++)
        ss += x[i] * x[i];
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    __m256 sc = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sc),
                                              _mm256_loadu_ps(w + i)));
    for (; i < n; i++)
        y[i] = x[i] * scale * w[i];
}

// out (n) = gate / (1 + exp(-gate)) * up
static void silu_mul(float *out, const float *gate, const float *up, int n) {
    const __m256 one = _mm256_set1_ps(1.0f), neg = _mm256_set1_ps(-0.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = exp8(_mm256_xor_ps(g, neg));
        __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++)
        out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

// x (n) = exp(x - max) / sum(exp(x - max))
static void softmax(float *x, int n) {
    if (n <= 0)
        return;
    float mx = x[0];
    int i = 0;
    if (n >= 8) {
        __m256 m = _mm256_loadu_ps(x);
        for (i = 8; i + 8 <= n; i += 8)
            m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
        mx = hmax8(m);
    }
    for (; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    __m256 vm = _mm256_set1_ps(mx), acc = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = hsum8(acc);
    for (; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    __m256 vi = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vi));
    for (; i < n; i++)
        x[i] *= inv;
}

// sum_i a[i] * b[i]
static float dot(const float *a, const float *b, int n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    float s = hsum8(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

// y (n) += alpha * x (n)
static void axpy(float *y, float alpha, const float *x, int n) {
    __m256 va = _mm256_set1_ps(alpha);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += alpha * x[i];
}

const air_kernel_table air_ktab_avx2 = {
    .isa = AIR_ISA_AVX2,
    .mm = {mm_f32, mm_f16, mm_bf16, mm_q8, mm_nf4},
    .mm_xq = {0, 0, 0, 1, 1},
    .quantize_x = quantize_x,
    .quantize_q8 = air_q8_quantize_row_avx2,
    .quantize_nf4 = air_nf4_quantize_row_avx2,
    .bf16_to_f32 = air_bf16_to_f32_row_avx2,
    .f16_to_f32 = air_f16_to_f32_row_avx2,
    .rmsnorm = rmsnorm,
    .silu_mul = silu_mul,
    .softmax = softmax,
    .dot = dot,
    .axpy = axpy,
};
