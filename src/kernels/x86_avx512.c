/*
 * x86_avx512.c - AVX-512 (F, BW, VL, DQ) + VNNI kernels.
 *
 * Same tiles and summation order per output as x86_avx2.c (see AIR_MM_DRIVE).
 * Float formats run 16-lane FMAs. Q8 and NF4 run VNNI vpdpbusd (u8 x s8 -> s32)
 * on 32-element blocks: the weight codes are made unsigned by adding 128
 * (Q8: flip the sign bit; NF4: a lookup table of 128 + round(127 * NF4[c])),
 * and the extra 128 * sum(q_x) is removed with the per-block sum the
 * activation quantizer stores (air_block_xq.s = d_x * sum(q_x)):
 *     sum_i w_i x_i = d_w * (d_x * dpbusd(w + 128, q_x) - 128 * s).
 */
#include <immintrin.h>
#include <math.h>

#include "kernels/kernels.h"

#define AI static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")
/* Decode streams weight rows from RAM: prefetch this far ahead of each row
 * (far enough to cover memory latency with several rows in flight), into L2
 * (measured with tools/bench/bench_kernels: at least as fast as into L1,
 * which ties up the core's line fill buffers). */
#ifndef PF_BYTES
#define PF_BYTES 16384
#endif
#ifndef PF_HINT
#define PF_HINT _MM_HINT_T1
#endif

AI float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AI float hsum16(__m512 v) {
    return hsum8(_mm256_add_ps(_mm512_castps512_ps256(v),
                               _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}

/* e^x, max relative error ~2 ulp; 0 below -87.3, inf above 88.7. */
AI __m512 exp16(__m512 x) {
    const __m512 hi = _mm512_set1_ps(88.3762626647949f), lo = _mm512_set1_ps(-87.3f);
    __mmask16 tiny = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    __mmask16 huge = _mm512_cmp_ps_mask(x, _mm512_set1_ps(88.72283935546875f), _CMP_GT_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
    __m512 y = _mm512_set1_ps(1.9875691500E-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507E-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073E-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894E-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459E-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201E-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(fx), _mm512_set1_epi32(127)), 23);
    y = _mm512_mul_ps(y, _mm512_castsi512_ps(e));
    y = _mm512_mask_blend_ps(huge, y, _mm512_set1_ps(INFINITY));
    return _mm512_maskz_mov_ps((__mmask16)~tiny, y);
}

/* ------------------------------------------------------------------------- */
/* f32 / f16 / bf16 weights                                                  */
/* ------------------------------------------------------------------------- */

AI __m512 load16(int t, const void *p, int i) {
    if (t == AIR_DT_F32)
        return _mm512_loadu_ps((const float *)p + i);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i));
    if (t == AIR_DT_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
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
    __m512 acc[4][4];
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++) acc[m][n] =
        _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n_in; i += 16) {
        __m512 xv[4];
        UNROLL for (int n = 0; n < NR; n++) xv[n] = _mm512_loadu_ps(x + (size_t)(r + n) * n_in + i);
        UNROLL for (int m = 0; m < MR; m++) {
            __m512 w = load16(t, W + (size_t)(o + m) * rb, i);
            UNROLL for (int n = 0; n < NR; n++) acc[m][n] = _mm512_fmadd_ps(w, xv[n], acc[m][n]);
        }
    }
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++) {
        float s = hsum16(acc[m][n]);
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

/* The activation layout of the int8 kernels here: blocks 2p and 2p + 1 of a
 * row side by side, with what vpdpbusd must start from so that the unsigned
 * weight offset cancels exactly, and the two scales spread over the lanes
 * of their block. A row is ceil(n_in / 64) pairs; an odd last block leaves
 * the upper half zero. Prepared once per matmul, so the tiles load each
 * operand straight from memory. */
typedef struct {
    int8_t q[64];    /* q_x of block 2p (bytes 0-31), 2p + 1 (32-63) */
    int32_t neg[16]; /* per int32 lane of vpdpbusd: -128 * (sum of its 4 q_x) */
    float d[16];     /* d_x of block 2p in lanes 0-7, of block 2p + 1 in 8-15 */
} xpair;
_Static_assert(sizeof(xpair) == 192, "xpair is three cache lines");

static size_t xq_row_bytes(int n_in) {
    return (size_t)(n_in + 63) / 64 * sizeof(xpair);
}

/* acc += (exact int dot of w and x per lane, 4 products each) * dw * d_x.
 * uw holds w + 128 as unsigned bytes; starting vpdpbusd from x.neg removes
 * the 128 * sum(q_x) the offset adds, so each lane is exact in int32
 * (|lane| <= 4 * 127 * 127) and converts to fp32 exactly. */
AI __m512 fma_pair(__m512 acc, __m512i uw, __m512 dw, const xpair *x) {
    __m512i dot = _mm512_dpbusd_epi32(_mm512_load_si512(x->neg), uw, _mm512_load_si512(x->q));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, _mm512_load_ps(x->d)), acc);
}

/* AIR_MM_DRIVE with prefill tiles of 2 weight rows x 8 activation rows: a
 * weight pair, decoded once, serves 8 rows. Each output keeps one
 * accumulator and one summation order whatever the tile, as there. */
#define WIDE8(TILE, oo, oe, r)                                                                     \
    for (; r + 8 <= rows; r += 8)                                                                  \
    AIR_MM_PAIRS(TILE, 8, oo, oe, r)
#define DRIVE_INT8(TILE, row_bytes) AIR_MM_DRIVE_WIDE(TILE, row_bytes, WIDE8)

/* Q8 blocks b and b + 1 of one weight row: codes + 128, and fp16 scales over
 * 8 lanes each. */
AI void load_q8_pair(const air_block_q8 *wb, int two, __m512i *uw, __m512 *dw) {
    __m256i lo = _mm256_loadu_si256((const __m256i *)wb[0].qs);
    __m128i hlo = _mm_set1_epi16((short)wb[0].d);
    __m512i q;
    __m256i h;
    if (two) {
        q = _mm512_inserti64x4(_mm512_castsi256_si512(lo),
                               _mm256_loadu_si256((const __m256i *)wb[1].qs), 1);
        h = _mm256_inserti128_si256(_mm256_castsi128_si256(hlo), _mm_set1_epi16((short)wb[1].d),
                                    1);
    } else {
        q = _mm512_zextsi256_si512(lo);
        h = _mm256_zextsi128_si256(hlo);
    }
    *uw = _mm512_xor_si512(q, _mm512_set1_epi8((char)0x80));
    *dw = _mm512_cvtph_ps(h);
}

// y[r][o] = sum over block pairs of 16 lanes: d_w d_x * (exact int dot of 4 products)
AI void tile_q8(int MR, int NR, const air_block_q8 *W, int nb, const xpair *x, float *y,
                int n_out, int o, int r) {
    __m512 acc[4][8];
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++) acc[m][n] =
        _mm512_setzero_ps();
    int np = (nb + 1) / 2;
    for (int b = 0; b < nb; b += 2) {
        int two = b + 1 < nb;
        const xpair *xv = x + (size_t)r * np + b / 2;
        UNROLL for (int m = 0; m < MR; m++) {
            const air_block_q8 *wb = W + (size_t)(o + m) * nb + b;
            if (NR == 1) {
                _mm_prefetch((const char *)wb + PF_BYTES, PF_HINT);
                _mm_prefetch((const char *)wb + PF_BYTES + 64, PF_HINT);
            }
            __m512i uw;
            __m512 dw;
            load_q8_pair(wb, two, &uw, &dw);
            UNROLL for (int n = 0; n < NR; n++) acc[m][n] =
                fma_pair(acc[m][n], uw, dw, xv + (size_t)n * np);
        }
    }
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++)
        y[(size_t)(r + n) * n_out + o + m] = _mm512_reduce_add_ps(acc[m][n]);
}

static void mm_q8(const void *W, int n_in, const void *xv, int rows, float *y, int n_out, int o0,
                  int o1) {
    const xpair *x = xv;
    int nb = n_in / AIR_Q8_BLOCK;
#define TILE_Q8(MR, NR, o, r) tile_q8(MR, NR, W, nb, x, y, n_out, o, r)
    DRIVE_INT8(TILE_Q8, (size_t)nb * sizeof(air_block_q8));
#undef TILE_Q8
}

/* 128 + round(127 * NF4[c]) in every 16-byte lane: unsigned code values for
 * vpdpbusd, looked up with vpshufb */
AI __m512i nf4_table_u8(void) {
    __m128i t = _mm_loadu_si128((const __m128i *)air_nf4_values_i8);
    return _mm512_broadcast_i32x4(_mm_xor_si128(t, _mm_set1_epi8((char)0x80)));
}

// y[r][o] = sum_b absmax/127 * (16 lanes: d_x * exact int dot of 4 products)[r, 2b, 2b+1]
AI void tile_nf4(int MR, int NR, const air_block_nf4 *W, int nb, const xpair *x, float *y,
                 int n_out, int o, int r) {
    const __m512i table = nf4_table_u8();
    const __m512i m4 = _mm512_set1_epi8(15);
    /* the low nibbles (elements 0-31) to lanes 0-7, the high ones (32-63) to 8-15 */
    const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    const __m512 inv127 = _mm512_set1_ps(1.0f / 127.0f);
    __m512 acc[4][8];
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++) acc[m][n] =
        _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const xpair *xv = x + (size_t)r * nb + b;
        UNROLL for (int m = 0; m < MR; m++) {
            const air_block_nf4 *wb = W + (size_t)(o + m) * nb + b;
            if (NR == 1)
                _mm_prefetch((const char *)wb + PF_BYTES, PF_HINT);
            __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)wb->qs));
            __m512i uw = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srlv_epi16(q, shift), m4));
            __m512 a = _mm512_mul_ps(_mm512_set1_ps(wb->absmax), inv127);
            UNROLL for (int n = 0; n < NR; n++) acc[m][n] =
                fma_pair(acc[m][n], uw, a, xv + (size_t)n * nb);
        }
    }
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++)
        y[(size_t)(r + n) * n_out + o + m] = _mm512_reduce_add_ps(acc[m][n]);
}

static void mm_nf4(const void *W, int n_in, const void *xv, int rows, float *y, int n_out, int o0,
                   int o1) {
    const xpair *x = xv;
    int nb = n_in / AIR_NF4_BLOCK;
#define TILE_NF4(MR, NR, o, r) tile_nf4(MR, NR, W, nb, x, y, n_out, o, r)
    DRIVE_INT8(TILE_NF4, (size_t)nb * sizeof(air_block_nf4));
#undef TILE_NF4
}

/* 32 elements -> int8: d = absmax / 127, q = rint(x * 127 / absmax), as
 * 2 x 16 int32 (|q| <= 127) */
AI float quantize32(const float *xb, __m512i *q0, __m512i *q1) {
    __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    __m512 id = _mm512_set1_ps(amax != 0.0f ? (1.0f / amax) * 127.0f : 0.0f);
    *q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id));
    *q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
    return amax / 127.0f;
}

/* x (n) -> air_block_xq (the layout of the AVX2 and reference paths) */
static void quantize_x(const float *x, air_block_xq *dst, int64_t n) {
    for (int64_t b = 0; b < n / AIR_XQ_BLOCK; b++) {
        __m512i q0, q1;
        float d = quantize32(x + b * AIR_XQ_BLOCK, &q0, &q1);
        /* |q| <= 127: the truncating narrow is exact */
        _mm_storeu_si128((__m128i *)dst[b].q, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(dst[b].q + 16), _mm512_cvtepi32_epi8(q1));
        dst[b].d = d;
        dst[b].s = d * (float)_mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
}

/* x (n_in) -> xpair row: the same int8 values and scales as quantize_x */
static void quantize_row(const float *x, void *dst, int n_in) {
    xpair *p = dst;
    int nb = n_in / AIR_XQ_BLOCK;
    for (int b = 0; b < nb; b += 2, p++) {
        __m512i q0, q1, q2 = _mm512_setzero_si512(), q3 = _mm512_setzero_si512();
        float d0 = quantize32(x + (size_t)b * AIR_XQ_BLOCK, &q0, &q1), d1 = 0.0f;
        if (b + 1 < nb)
            d1 = quantize32(x + (size_t)(b + 1) * AIR_XQ_BLOCK, &q2, &q3);
        __m512i q = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_set_m128i(_mm512_cvtepi32_epi8(q1),
                                                    _mm512_cvtepi32_epi8(q0))),
            _mm256_set_m128i(_mm512_cvtepi32_epi8(q3), _mm512_cvtepi32_epi8(q2)), 1);
        _mm512_store_si512(p->q, q);
        _mm512_store_si512(p->neg, _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                                       _mm512_set1_epi8((char)0x80),
                                                       _mm512_sub_epi8(_mm512_setzero_si512(), q)));
        _mm512_store_ps(p->d, _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(d0)),
                                                 _mm256_set1_ps(d1), 1));
    }
}

/* ------------------------------------------------------------------------- */
/* Small ops                                                                 */
/* ------------------------------------------------------------------------- */

// y (n) = x (n) / sqrt(mean(x^2) + eps) * w (n)
static void rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        acc = _mm512_fmadd_ps(v, v, acc);
    }
    float ss = hsum16(acc);
    for (; i < n; i++)
        ss += x[i] * x[i];
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    __m512 sc = _mm512_set1_ps(scale);
    for (i = 0; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), sc),
                                              _mm512_loadu_ps(w + i)));
    for (; i < n; i++)
        y[i] = x[i] * scale * w[i];
}

// out (n) = gate / (1 + exp(-gate)) * up
static void silu_mul(float *out, const float *gate, const float *up, int n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(gate + i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(s, _mm512_loadu_ps(up + i)));
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
    if (n >= 16) {
        __m512 m = _mm512_loadu_ps(x);
        for (i = 16; i + 16 <= n; i += 16)
            m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
        mx = _mm512_reduce_max_ps(m);
    }
    for (; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    __m512 vm = _mm512_set1_ps(mx), acc = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
        _mm512_storeu_ps(x + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    float sum = hsum16(acc);
    for (; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    __m512 vi = _mm512_set1_ps(inv);
    for (i = 0; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), vi));
    for (; i < n; i++)
        x[i] *= inv;
}

// sum_i a[i] * b[i]
static float dot(const float *a, const float *b, int n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    }
    for (; i + 16 <= n; i += 16)
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    float s = hsum16(_mm512_add_ps(acc0, acc1));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

// y (n) += alpha * x (n)
static void axpy(float *y, float alpha, const float *x, int n) {
    __m512 va = _mm512_set1_ps(alpha);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i,
                         _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += alpha * x[i];
}

const air_kernel_table air_ktab_avx512 = {
    .isa = AIR_ISA_AVX512,
    .mm = {mm_f32, mm_f16, mm_bf16, mm_q8, mm_nf4},
    .mm_xq = {0, 0, 0, 1, 1},
    .quantize_x = quantize_x,
    .quantize_q8 = air_q8_quantize_row_avx512,
    .quantize_nf4 = air_nf4_quantize_row_avx512,
    .bf16_to_f32 = air_bf16_to_f32_row_avx512,
    .f16_to_f32 = air_f16_to_f32_row_avx512,
    .xq_row_bytes = xq_row_bytes,
    .quantize_row = quantize_row,
    .rmsnorm = rmsnorm,
    .silu_mul = silu_mul,
    .softmax = softmax,
    .dot = dot,
    .axpy = axpy,
};
