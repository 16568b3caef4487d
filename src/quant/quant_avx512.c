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
 * NF4: the code of v = x * (1 / absmax) is the number of midpoints below v.
 * The midpoints increase strictly, so a 4-step binary search gives that
 * count: c = 8 * (v > m[7]), then c += 4, 2, 1 where v > m[c + 3], m[c + 1],
 * m[c] (one vpermps per step). The reference clamps v to [-1, 1] first; that
 * changes no comparison (every midpoint lies inside (-1, 1), NaN compares
 * false either way), so the clamp is left out here.
 * Q8: q = round-half-even(x * id), clamped to +-127; NaN products give 0,
 * as the reference defines.
 */
#include <immintrin.h>
#include <stdalign.h>

#include "kernels/ops.h"
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
        __m512 d = _mm512_min_ps(_mm512_div_ps(a, _mm512_set1_ps(127.0f)), _mm512_set1_ps(65504.0f));
        __m512 id = _mm512_maskz_mul_ps(_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_NEQ_OQ),
                                        _mm512_div_ps(_mm512_set1_ps(1.0f), a),
                                        _mm512_set1_ps(127.0f));
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
            _mm_storeu_si128((__m128i *)(o->qs + 16), q8_codes(_mm512_loadu_ps(xb + j * 32 + 16), vid));
        }
    }
}

/* Tables of the binary search: t[c] = the midpoint compared at step s for
 * the partial code c (only the entries c can reach are used). */
typedef struct {
    __m512 m7, t4, t2, t1;
} nf4_search;

static nf4_search nf4_tables(void) {
    float mid[16];
    air_nf4_midpoints(mid);
    mid[15] = mid[14]; /* never indexed */
    float t4[16], t2[16], t1[16];
    for (int c = 0; c < 16; c++) {
        t4[c] = mid[c + 3 < 15 ? c + 3 : 14];
        t2[c] = mid[c + 1 < 15 ? c + 1 : 14];
        t1[c] = mid[c];
    }
    nf4_search s = {_mm512_set1_ps(mid[7]), _mm512_loadu_ps(t4), _mm512_loadu_ps(t2),
                    _mm512_loadu_ps(t1)};
    return s;
}

AI __m512i nf4_codes(const nf4_search *s, __m512 v) {
    __m512i c = _mm512_maskz_mov_epi32(_mm512_cmp_ps_mask(v, s->m7, _CMP_GT_OQ),
                                       _mm512_set1_epi32(8));
    __mmask16 k = _mm512_cmp_ps_mask(v, _mm512_permutexvar_ps(c, s->t4), _CMP_GT_OQ);
    c = _mm512_mask_add_epi32(c, k, c, _mm512_set1_epi32(4));
    k = _mm512_cmp_ps_mask(v, _mm512_permutexvar_ps(c, s->t2), _CMP_GT_OQ);
    c = _mm512_mask_add_epi32(c, k, c, _mm512_set1_epi32(2));
    k = _mm512_cmp_ps_mask(v, _mm512_permutexvar_ps(c, s->t1), _CMP_GT_OQ);
    return _mm512_mask_add_epi32(c, k, c, _mm512_set1_epi32(1));
}

void air_nf4_quantize_row_avx512(const float *x, air_block_nf4 *dst, int64_t n) {
    const nf4_search s = nf4_tables();
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
