/*
 * quant_avx512.c - the Q8 and NF4 weight quantizers with AVX-512 (F, BW):
 * the same codes, scales and absmax as the scalar reference (q8.c, nf4.c),
 * bit for bit, for every input (NaN, infinities and subnormals included).
 *
 * Per block the absmax is a lane-wise maximum that skips NaN as the
 * reference's `a > amax ? a : amax` does (the running maximum is maxps's
 * second operand), then a horizontal maximum (of NaN-free lanes, so in any
 * order). The per-block scalars (1 / absmax, the fp16 scale) are computed
 * for 16 blocks at once, each lane with the reference's IEEE operations.
 *
 * NF4: the code of v = x * (1 / absmax) is the number of midpoints below v,
 * found with one table lookup by bucket and one comparison (nf4_codes). The
 * reference clamps v to [-1, 1] first; that changes no comparison (every
 * midpoint lies inside (-1, 1), NaN compares false either way), so the
 * clamp is left out here.
 * Q8: q = round-half-even(x * id), clamped to +-127; NaN products give 0,
 * as the reference defines.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdalign.h>

#include "kernels/kernels.h"
#include "quant/quant.h"

#define AI static inline __attribute__((always_inline))

/* Horizontal maximum of lanes that hold no NaN. */
AI float hmax16(__m512 m) {
    __m256 h = _mm256_max_ps(_mm512_castps512_ps256(m),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(m), 1)));
    __m128 q = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_max_ps(q, _mm_movehl_ps(q, q));
    q = _mm_max_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* max(|x|, m), NaN in x skipped. */
AI __m512 absmax_step(__m512 x, __m512 m) {
    return _mm512_max_ps(_mm512_abs_ps(x), m);
}

/* Clamped to +-127 first (NaN kept: minps and maxps return their second
 * operand for NaN), which commutes with rounding and keeps infinite products
 * (1 / absmax overflows for a subnormal absmax) in range; NaN then gives 0. */
AI __m128i q8_codes(__m512 x, __m512 vid) {
    __m512 p = _mm512_mul_ps(x, vid);
    p = _mm512_max_ps(_mm512_set1_ps(-127.0f), _mm512_min_ps(_mm512_set1_ps(127.0f), p));
    __m512i q = _mm512_maskz_cvt_roundps_epi32(_mm512_cmp_ps_mask(p, p, _CMP_ORD_Q), p,
                                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_cvtepi32_epi8(q);
}

/* The absmax of each of cnt (<= 16) blocks of bs elements: lanes past cnt are 0. */
static __m512 block_absmax(const float *x, int bs, int cnt) {
    float am[16] = {0};
    for (int j = 0; j < cnt; j++) {
        __m512 m = _mm512_setzero_ps();
        for (int i = 0; i < bs; i += 16)
            m = absmax_step(_mm512_loadu_ps(x + j * bs + i), m);
        am[j] = hmax16(m);
    }
    return _mm512_loadu_ps(am);
}

void air_q8_quantize_row_avx512(const float *x, air_block_q8 *dst, int64_t n) {
    /* the per-block scalars of 16 blocks at a time, each lane exactly as the
     * reference: d = absmax / 127 (at most 65504) to fp16 (RNE, as
     * air_f32_to_f16), id = (1 / absmax) * 127, or 0 for an absmax of 0 */
    for (int64_t b0 = 0; b0 < n / AIR_Q8_BLOCK; b0 += 16) {
        int cnt = n / AIR_Q8_BLOCK - b0 < 16 ? (int)(n / AIR_Q8_BLOCK - b0) : 16;
        const float *xb = x + b0 * AIR_Q8_BLOCK;
        __m512 a = block_absmax(xb, AIR_Q8_BLOCK, cnt);
        __m512 d =
            _mm512_min_ps(_mm512_div_ps(a, _mm512_set1_ps(127.0f)), _mm512_set1_ps(65504.0f));
        __m512 id =
            _mm512_maskz_mul_ps(_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_NEQ_OQ),
                                _mm512_div_ps(_mm512_set1_ps(1.0f), a), _mm512_set1_ps(127.0f));
        alignas(64) float ids[16];
        alignas(32) uint16_t d16[16];
        _mm512_store_ps(ids, id);
        _mm256_store_si256((__m256i *)d16,
                           _mm512_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        for (int j = 0; j < cnt; j++) {
            air_block_q8 *o = &dst[b0 + j];
            __m512 vid = _mm512_set1_ps(ids[j]);
            o->d = d16[j];
            _mm_storeu_si128((__m128i *)o->qs, q8_codes(_mm512_loadu_ps(xb + j * 32), vid));
            _mm_storeu_si128((__m128i *)(o->qs + 16),
                             q8_codes(_mm512_loadu_ps(xb + j * 32 + 16), vid));
        }
    }
}

/* NF4 codes by buckets: [-1, 1] cut into 32 buckets of 1/16, none holding
 * more than one midpoint (adjacent midpoints are at least 0.08 apart). For a
 * value v in bucket k, the count of midpoints below v is base[k] (those
 * below the bucket) plus v > mid[k] (the bucket's midpoint, +inf if none).
 * k = trunc(16 v + 16) (one rounding, FMA), at most 31; off by one only
 * within about 2^-23 of a bucket edge, and no midpoint lies that close to
 * one (checked when the tables are made), so the count is the same there
 * too. NaN converts to 0x80000000: bucket 0, base 0, and NaN > mid is
 * false: code 0, as the reference. |v| <= 1 + 2^-23 (never infinite: an
 * infinite x makes 1 / absmax 0 and v NaN). */
typedef struct {
    __m512 mid_lo, mid_hi;
    __m512i base_lo, base_hi;
    int ok; /* the edge condition holds (else: the reference) */
} nf4_buckets;

static nf4_buckets make_tables(void) {
    float mid[15], bm[32];
    int base[32];
    air_nf4_midpoints(mid);
    nf4_buckets t = {.ok = 1};
    for (int k = 0; k < 32; k++) {
        float lo = -1.0f + (float)k / 16, hi = -1.0f + (float)(k + 1) / 16;
        base[k] = 0;
        bm[k] = __builtin_inff();
        for (int m = 0; m < 15; m++) {
            if (mid[m] < lo)
                base[k]++;
            else if (mid[m] < hi) {
                if (bm[k] != __builtin_inff())
                    t.ok = 0; /* two in one bucket */
                bm[k] = mid[m];
            }
            if (__builtin_fabsf(mid[m] - lo) < 1e-5f)
                t.ok = 0; /* too close to an edge */
        }
    }
    t.mid_lo = _mm512_loadu_ps(bm);
    t.mid_hi = _mm512_loadu_ps(bm + 16);
    t.base_lo = _mm512_loadu_si512(base);
    t.base_hi = _mm512_loadu_si512(base + 16);
    return t;
}

static nf4_buckets g_tables;
static pthread_once_t g_tables_once = PTHREAD_ONCE_INIT;
static void init_tables(void) {
    g_tables = make_tables();
}

static const nf4_buckets *nf4_tables(void) {
    pthread_once(&g_tables_once, init_tables);
    return &g_tables;
}

AI __m512i nf4_codes(const nf4_buckets *t, __m512 v) {
    __m512i k =
        _mm512_cvttps_epi32(_mm512_fmadd_ps(v, _mm512_set1_ps(16.0f), _mm512_set1_ps(16.0f)));
    k = _mm512_min_epi32(k, _mm512_set1_epi32(31));
    __m512 m = _mm512_permutex2var_ps(t->mid_lo, k, t->mid_hi);
    __m512i c = _mm512_permutex2var_epi32(t->base_lo, k, t->base_hi);
    return _mm512_mask_add_epi32(c, _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ), c, _mm512_set1_epi32(1));
}

void air_nf4_quantize_row_avx512(const float *x, air_block_nf4 *dst, int64_t n) {
    const nf4_buckets s = *nf4_tables();
    if (!s.ok) {
        air_nf4_quantize_row(x, dst, n);
        return;
    }
    for (int64_t b0 = 0; b0 < n / AIR_NF4_BLOCK; b0 += 16) {
        int cnt = n / AIR_NF4_BLOCK - b0 < 16 ? (int)(n / AIR_NF4_BLOCK - b0) : 16;
        const float *xb = x + b0 * AIR_NF4_BLOCK;
        __m512 a = block_absmax(xb, AIR_NF4_BLOCK, cnt);
        /* 1 / max(absmax, 1e-38) for 16 blocks, as the reference per block */
        __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_max_ps(a, _mm512_set1_ps(1e-38f)));
        alignas(64) float am[16], invs[16];
        _mm512_store_ps(am, a);
        _mm512_store_ps(invs, inv);
        for (int j = 0; j < cnt; j++) {
            const float *xj = xb + j * AIR_NF4_BLOCK;
            __m512 vi = _mm512_set1_ps(invs[j]);
            __m512i c0 = nf4_codes(&s, _mm512_mul_ps(_mm512_loadu_ps(xj), vi));
            __m512i c1 = nf4_codes(&s, _mm512_mul_ps(_mm512_loadu_ps(xj + 16), vi));
            __m512i c2 = nf4_codes(&s, _mm512_mul_ps(_mm512_loadu_ps(xj + 32), vi));
            __m512i c3 = nf4_codes(&s, _mm512_mul_ps(_mm512_loadu_ps(xj + 48), vi));
            /* byte j: element j (low nibble), element j + 32 (high nibble) */
            __m512i lo = _mm512_or_si512(c0, _mm512_slli_epi32(c2, 4));
            __m512i hi = _mm512_or_si512(c1, _mm512_slli_epi32(c3, 4));
            air_block_nf4 *o = &dst[b0 + j];
            o->absmax = am[j];
            _mm_storeu_si128((__m128i *)o->qs, _mm512_cvtepi32_epi8(lo));
            _mm_storeu_si128((__m128i *)(o->qs + 16), _mm512_cvtepi32_epi8(hi));
        }
    }
}

void air_bf16_to_f32_row_avx512(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(x + i)));
        _mm512_storeu_si512(y + i, _mm512_slli_epi32(h, 16));
    }
    air_ref_bf16_to_f32(x + i, y + i, n - i); /* the tail */
}

/* vcvtph2ps is exact, but quiets a signaling NaN; the reference keeps a
 * NaN's bits (sign | 0x7f800000 | mantissa << 13): NaN lanes take those. */
void air_f16_to_f32_row_avx512(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(x + i));
        __m512 f = _mm512_cvtph_ps(h);
        __m512i w = _mm512_cvtepu16_epi32(h);
        __m512i mag = _mm512_and_si512(w, _mm512_set1_epi32(0x7fff));
        __mmask16 nan = _mm512_cmpgt_epi32_mask(mag, _mm512_set1_epi32(0x7c00));
        __m512i bits = _mm512_or_si512(
            _mm512_or_si512(_mm512_slli_epi32(_mm512_and_si512(w, _mm512_set1_epi32(0x8000)), 16),
                            _mm512_set1_epi32(0x7f800000)),
            _mm512_slli_epi32(_mm512_and_si512(w, _mm512_set1_epi32(0x3ff)), 13));
        f = _mm512_mask_mov_ps(f, nan, _mm512_castsi512_ps(bits));
        _mm512_storeu_ps(y + i, f);
    }
    air_ref_f16_to_f32(x + i, y + i, n - i); /* the tail */
}
