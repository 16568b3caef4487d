/*
 * quant_avx2.c - the Q8 and NF4 weight quantizers with AVX2: the same codes,
 * scales and absmax as the scalar reference (q8.c, nf4.c), bit for bit. The
 * method is that of quant_avx512.c (NaN-skipping absmax, per-block scalars
 * for several blocks at once, binary search over the NF4 midpoints,
 * round-half-even Q8 codes); here the search tables have
 * 8 entries (vpermps on 8 lanes), indexed by half the partial code:
 * h = c / 2, so the steps compare with m[2h + 3], m[2h + 1], m[2h].
 */
#include <immintrin.h>
#include <stdalign.h>

#include "kernels/kernels.h"
#include "quant/quant.h"

#define AI static inline __attribute__((always_inline))

AI float hmax8(__m256 m) {
    __m128 q = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    q = _mm_max_ps(q, _mm_movehl_ps(q, q));
    q = _mm_max_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* max(|x|, m), NaN in x skipped (maxps returns its second operand then). */
AI __m256 absmax_step(__m256 x, __m256 m) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    return _mm256_max_ps(_mm256_and_ps(x, abs_mask), m);
}

/* The 32 int32 lanes of 4 vectors to 32 bytes in element order: int8
 * (lanes in [-128, 127]) or, when is_unsigned, uint8 (lanes in [0, 255]). */
AI __m256i pack_bytes(__m256i a, __m256i b, __m256i c, __m256i d, int is_unsigned) {
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    __m256i abcd = is_unsigned ? _mm256_packus_epi16(ab, cd) : _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Clamped to +-127 first (NaN kept: minps and maxps return their second
 * operand for NaN), which commutes with rounding and keeps infinite products
 * (1 / absmax overflows for a subnormal absmax) in range; NaN then gives 0. */
AI __m256i q8_codes(__m256 x, __m256 vid) {
    __m256 p = _mm256_mul_ps(x, vid);
    p = _mm256_max_ps(_mm256_set1_ps(-127.0f), _mm256_min_ps(_mm256_set1_ps(127.0f), p));
    __m256i q =
        _mm256_cvtps_epi32(_mm256_round_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return _mm256_and_si256(q, _mm256_castps_si256(_mm256_cmp_ps(p, p, _CMP_ORD_Q)));
}

/* The absmax of each of cnt (<= 8) blocks of bs elements: lanes past cnt are 0. */
static __m256 block_absmax(const float *x, int bs, int cnt) {
    float am[8] = {0};
    for (int j = 0; j < cnt; j++) {
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < bs; i += 8)
            m = absmax_step(_mm256_loadu_ps(x + j * bs + i), m);
        am[j] = hmax8(m);
    }
    return _mm256_loadu_ps(am);
}

void air_q8_quantize_row_avx2(const float *x, air_block_q8 *dst, int64_t n) {
    /* the per-block scalars of 8 blocks at a time, each lane exactly as the
     * reference (see quant_avx512.c) */
    for (int64_t b0 = 0; b0 < n / AIR_Q8_BLOCK; b0 += 8) {
        int cnt = n / AIR_Q8_BLOCK - b0 < 8 ? (int)(n / AIR_Q8_BLOCK - b0) : 8;
        const float *xb = x + b0 * AIR_Q8_BLOCK;
        __m256 a = block_absmax(xb, AIR_Q8_BLOCK, cnt);
        __m256 d =
            _mm256_min_ps(_mm256_div_ps(a, _mm256_set1_ps(127.0f)), _mm256_set1_ps(65504.0f));
        __m256 id = _mm256_and_ps(
            _mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_NEQ_OQ),
            _mm256_mul_ps(_mm256_div_ps(_mm256_set1_ps(1.0f), a), _mm256_set1_ps(127.0f)));
        alignas(32) float ids[8];
        alignas(16) uint16_t d16[8];
        _mm256_store_ps(ids, id);
        _mm_store_si128((__m128i *)d16,
                        _mm256_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        for (int j = 0; j < cnt; j++) {
            const float *xj = xb + j * AIR_Q8_BLOCK;
            __m256 vid = _mm256_set1_ps(ids[j]);
            dst[b0 + j].d = d16[j];
            __m256i q = pack_bytes(q8_codes(_mm256_loadu_ps(xj), vid),
                                   q8_codes(_mm256_loadu_ps(xj + 8), vid),
                                   q8_codes(_mm256_loadu_ps(xj + 16), vid),
                                   q8_codes(_mm256_loadu_ps(xj + 24), vid), 0);
            _mm256_storeu_si256((__m256i *)dst[b0 + j].qs, q);
        }
    }
}

typedef struct {
    __m256 m7, t4, t2, t1;
} nf4_search;

static nf4_search nf4_tables(void) {
    float mid[15];
    air_nf4_midpoints(mid);
    float t4[8], t2[8], t1[8];
    for (int h = 0; h < 8; h++) {
        t4[h] = mid[2 * h + 3 < 15 ? 2 * h + 3 : 14];
        t2[h] = mid[2 * h + 1 < 15 ? 2 * h + 1 : 14];
        t1[h] = mid[2 * h];
    }
    nf4_search s = {_mm256_set1_ps(mid[7]), _mm256_loadu_ps(t4), _mm256_loadu_ps(t2),
                    _mm256_loadu_ps(t1)};
    return s;
}

/* The code (0..15) of each lane of v. */
AI __m256i nf4_codes(const nf4_search *s, __m256 v) {
    __m256i h = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(v, s->m7, _CMP_GT_OQ)),
                                 _mm256_set1_epi32(4));
    __m256 gt = _mm256_cmp_ps(v, _mm256_permutevar8x32_ps(s->t4, h), _CMP_GT_OQ);
    h = _mm256_add_epi32(h, _mm256_and_si256(_mm256_castps_si256(gt), _mm256_set1_epi32(2)));
    gt = _mm256_cmp_ps(v, _mm256_permutevar8x32_ps(s->t2, h), _CMP_GT_OQ);
    h = _mm256_sub_epi32(h, _mm256_castps_si256(gt)); /* true is -1 */
    gt = _mm256_cmp_ps(v, _mm256_permutevar8x32_ps(s->t1, h), _CMP_GT_OQ);
    return _mm256_sub_epi32(_mm256_add_epi32(h, h), _mm256_castps_si256(gt));
}

void air_nf4_quantize_row_avx2(const float *x, air_block_nf4 *dst, int64_t n) {
    const nf4_search s = nf4_tables();
    for (int64_t b0 = 0; b0 < n / AIR_NF4_BLOCK; b0 += 8) {
        int cnt = n / AIR_NF4_BLOCK - b0 < 8 ? (int)(n / AIR_NF4_BLOCK - b0) : 8;
        const float *xb = x + b0 * AIR_NF4_BLOCK;
        __m256 a = block_absmax(xb, AIR_NF4_BLOCK, cnt);
        __m256 inv = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_max_ps(a, _mm256_set1_ps(1e-38f)));
        alignas(32) float am[8], invs[8];
        _mm256_store_ps(am, a);
        _mm256_store_ps(invs, inv);
        for (int j = 0; j < cnt; j++) {
            const float *xj = xb + j * AIR_NF4_BLOCK;
            __m256 vi = _mm256_set1_ps(invs[j]);
            __m256i c[8];
            for (int k = 0; k < 8; k++)
                c[k] = nf4_codes(&s, _mm256_mul_ps(_mm256_loadu_ps(xj + 8 * k), vi));
            /* byte j: element j (low nibble), element j + 32 (high nibble) */
            __m256i q = pack_bytes(_mm256_or_si256(c[0], _mm256_slli_epi32(c[4], 4)),
                                   _mm256_or_si256(c[1], _mm256_slli_epi32(c[5], 4)),
                                   _mm256_or_si256(c[2], _mm256_slli_epi32(c[6], 4)),
                                   _mm256_or_si256(c[3], _mm256_slli_epi32(c[7], 4)), 1);
            dst[b0 + j].absmax = am[j];
            _mm256_storeu_si256((__m256i *)dst[b0 + j].qs, q);
        }
    }
}

void air_bf16_to_f32_row_avx2(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_si256((__m256i *)(y + i), _mm256_slli_epi32(h, 16));
    }
    air_ref_bf16_to_f32(x + i, y + i, n - i); /* the tail */
}

/* As air_f16_to_f32_row_avx512: NaN lanes keep the reference's bits. */
void air_f16_to_f32_row_avx2(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(x + i));
        __m256 f = _mm256_cvtph_ps(h);
        __m256i w = _mm256_cvtepu16_epi32(h);
        __m256i mag = _mm256_and_si256(w, _mm256_set1_epi32(0x7fff));
        __m256i nan = _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7c00));
        __m256i bits = _mm256_or_si256(
            _mm256_or_si256(_mm256_slli_epi32(_mm256_and_si256(w, _mm256_set1_epi32(0x8000)), 16),
                            _mm256_set1_epi32(0x7f800000)),
            _mm256_slli_epi32(_mm256_and_si256(w, _mm256_set1_epi32(0x3ff)), 13));
        f = _mm256_blendv_ps(f, _mm256_castsi256_ps(bits), _mm256_castsi256_ps(nan));
        _mm256_storeu_ps(y + i, f);
    }
    air_ref_f16_to_f32(x + i, y + i, n - i); /* the tail */
}
