/*
 * gguf_dequant.c - GGML tensor types: block sizes, and dequantization to fp32.
 *
 * A quantized GGML tensor is a sequence of fixed-size blocks; each block
 * holds `block_size` consecutive elements of a row (32 for the legacy
 * Q4_0..Q8_0 types, 256 for the K-quants) as small integers plus one or more
 * fp16 scales. Every routine here turns whole blocks into fp32 values, in
 * the order of the elements in the row.
 *
 * fp16 / bf16 scalars go through the kernels' exact conversions (ops.h).
 * The results are bit-exact with the dequantizers of the gguf Python package
 * (tests/gen/gen_gguf_goldens.py checks it): every product and sum is
 * rounded to fp32 in the same order as there, e.g. for Q4_K
 * y = (d * sc) * q - (dmin * m), never fused into an FMA.
 */
#include <math.h>
#include <string.h>

#include "kernels/ops.h"
#include "source/gguf.h"
#include "util/error.h"

/* Keep a * b + c as two roundings: the references never fuse. GCC does not
 * contract in ISO C mode (-std=c11, as this project builds). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define QK 32    /* elements per block, legacy types */
#define QK_K 256 /* elements per block, K-quants */

/* ------------------------------------------------------------------------- */
/* Block layouts (as stored in the file)                                     */
/* ------------------------------------------------------------------------- */
typedef struct {
    uint16_t d;         /* fp16 scale */
    uint8_t qs[QK / 2]; /* element j in the low nibble of qs[j], j + 16 in the high */
} blk_q4_0;
_Static_assert(sizeof(blk_q4_0) == 18, "Q4_0 block size");

typedef struct {
    uint8_t e;      /* E8M0 exponent: scale 2^(e - 127) */
    uint8_t qs[16]; /* e2m1 codes: low nibbles elements 0..15, high nibbles 16..31 */
} blk_mxfp4;
_Static_assert(sizeof(blk_mxfp4) == 17, "MXFP4 block size");

typedef struct {
    uint16_t d, m; /* fp16 scale and minimum */
    uint8_t qs[QK / 2];
} blk_q4_1;
_Static_assert(sizeof(blk_q4_1) == 20, "Q4_1 block size");

typedef struct {
    uint16_t d;
    uint8_t qh[4]; /* bit j: fifth bit of element j */
    uint8_t qs[QK / 2];
} blk_q5_0;
_Static_assert(sizeof(blk_q5_0) == 22, "Q5_0 block size");

typedef struct {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[QK / 2];
} blk_q5_1;
_Static_assert(sizeof(blk_q5_1) == 24, "Q5_1 block size");

typedef struct {
    uint16_t d;
    int8_t qs[QK];
} blk_q8_0;
_Static_assert(sizeof(blk_q8_0) == 34, "Q8_0 block size");

typedef struct {
    uint8_t scales[QK_K / 16]; /* low nibble: scale, high nibble: min, per 16 elements */
    uint8_t qs[QK_K / 4];      /* 2-bit values */
    uint16_t d, dmin;
} blk_q2_k;
_Static_assert(sizeof(blk_q2_k) == 84, "Q2_K block size");

typedef struct {
    uint8_t hmask[QK_K / 8]; /* third bit (inverted sign of -4) */
    uint8_t qs[QK_K / 4];    /* low 2 bits */
    uint8_t scales[12];      /* 16 six-bit scales */
    uint16_t d;
} blk_q3_k;
_Static_assert(sizeof(blk_q3_k) == 110, "Q3_K block size");

typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12]; /* 8 six-bit scales and 8 six-bit mins */
    uint8_t qs[QK_K / 2];
} blk_q4_k;
_Static_assert(sizeof(blk_q4_k) == 144, "Q4_K block size");

typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} blk_q5_k;
_Static_assert(sizeof(blk_q5_k) == 176, "Q5_K block size");

typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
} blk_q6_k;
_Static_assert(sizeof(blk_q6_k) == 210, "Q6_K block size");

/* ------------------------------------------------------------------------- */
/* Type table                                                                */
/* ------------------------------------------------------------------------- */
typedef struct {
    const char *name;
    int block;
    int size;
} type_info;

static const type_info g_types[AIR_GGML_TYPE_MAX] = {
    [0] = {"F32", 1, 4},         [1] = {"F16", 1, 2},         [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},      [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},      [9] = {"Q8_1", 32, 40},      [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},   [12] = {"Q4_K", 256, 144},   [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},   [15] = {"Q8_K", 256, 292},   [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74},  [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},   [21] = {"IQ3_S", 256, 110},  [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},         [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},        [27] = {"I64", 1, 8},        [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},   [30] = {"BF16", 1, 2},       [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},   [39] = {"MXFP4", 32, 17},
    [40] = {"NVFP4", 64, 36},    [41] = {"Q1_0", 128, 18},
};

const char *air_ggml_type_name(int type) {
    if (type < 0 || type >= AIR_GGML_TYPE_MAX || !g_types[type].name)
        return "?";
    return g_types[type].name;
}

int air_ggml_block_size(int type) {
    if (type < 0 || type >= AIR_GGML_TYPE_MAX)
        return 0;
    return g_types[type].block;
}

int air_ggml_type_size(int type) {
    if (type < 0 || type >= AIR_GGML_TYPE_MAX)
        return 0;
    return g_types[type].size;
}

/* ------------------------------------------------------------------------- */
/* Per-type block loops. src may be unaligned: blocks are copied out first.  */
/* ------------------------------------------------------------------------- */
static void deq_q4_0(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(blk_q4_0), y += QK) {
        blk_q4_0 k;
        memcpy(&k, src, sizeof k);
        const float d = air_f16_to_f32(k.d);
        for (int j = 0; j < QK / 2; j++) {
            y[j] = d * (float)((k.qs[j] & 0x0F) - 8);
            y[j + QK / 2] = d * (float)((k.qs[j] >> 4) - 8);
        }
    }
}

/* MXFP4: e2m1 value (sign, 2 exponent bits, 1 mantissa bit: 0, 0.5, 1,
 * 1.5, 2, 3, 4, 6) times 2^(e - 127); every product is exact in fp32
 * (ggml holds the codes doubled and halves the scale: the same numbers). */
static void deq_mxfp4(const uint8_t *src, float *y, int64_t nb) {
    static const float e2m1[16] = {0.0f, 0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                   0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
    for (int64_t b = 0; b < nb; b++, src += sizeof(blk_mxfp4), y += QK) {
        blk_mxfp4 k;
        memcpy(&k, src, sizeof k);
        const float d = ldexpf(1.0f, (int)k.e - 127);
        for (int j = 0; j < QK / 2; j++) {
            y[j] = e2m1[k.qs[j] & 0x0F] * d;
            y[j + QK / 2] = e2m1[k.qs[j] >> 4] * d;
        }
    }
}

static void deq_q4_1(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(blk_q4_1), y += QK) {
        blk_q4_1 k;
        memcpy(&k, src, sizeof k);
        const float d = air_f16_to_f32(k.d), m = air_f16_to_f32(k.m);
        for (int j = 0; j < QK / 2; j++) {
            float lo = d * (float)(k.qs[j] & 0x0F);
            float hi = d * (float)(k.qs[j] >> 4);
            y[j] = lo + m;
            y[j + QK / 2] = hi + m;
        }
    }
}

static void deq_q5_0(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(blk_q5_0), y += QK) {
        blk_q5_0 k;
        memcpy(&k, src, sizeof k);
        const float d = air_f16_to_f32(k.d);
        uint32_t qh = (uint32_t)k.qh[0] | (uint32_t)k.qh[1] << 8 | (uint32_t)k.qh[2] << 16 |
                      (uint32_t)k.qh[3] << 24;
        for (int j = 0; j < QK / 2; j++) {
            int lo = (k.qs[j] & 0x0F) | (int)((qh >> j) & 1) << 4;
            int hi = (k.qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = d * (float)(lo - 16);
            y[j + QK / 2] = d * (float)(hi - 16);
        }
    }
}

static void deq_q5_1(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(blk_q5_1), y += QK) {
        blk_q5_1 k;
        memcpy(&k, src, sizeof k);
        const float d = air_f16_to_f32(k.d), m = air_f16_to_f32(k.m);
        uint32_t qh = (uint32_t)k.qh[0] | (uint32_t)k.qh[1] << 8 | (uint32_t)k.qh[2] << 16 |
                      (uint32_t)k.qh[3] << 24;
        for (int j = 0; j < QK / 2; j++) {
            int lo = (k.qs[j] & 0x0F) | (int)((qh >> j) & 1) << 4;
            int hi = (k.qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            float a = d * (float)lo, c = d * (float)hi;
            y[j] = a + m;
            y[j + QK / 2] = c + m;
        }
    }
}

static void deq_q8_0(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(blk_q8_0), y += QK) {
        blk_q8_0 k;
        memcpy(&k, src, sizeof k);
        const float d = air_f16_to_f32(k.d);
        for (int j = 0; j < QK; j++)
            y[j] = (float)k.qs[j] * d;
    }
}

/* Element e of a Q2_K block: 2 bits of qs[(e / 128) * 32 + e % 32] at shift
 * 2 * ((e / 32) % 4); scale and min of sub-block e / 16. */
static void deq_q2_k(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(blk_q2_k), y += QK_K) {
        blk_q2_k k;
        memcpy(&k, src, sizeof k);
        const float d = air_f16_to_f32(k.d), dmin = air_f16_to_f32(k.dmin);
        for (int sb = 0; sb < QK_K / 16; sb++) {
            const float dl = d * (float)(k.scales[sb] & 0x0F);
            const float ml = dmin * (float)(k.scales[sb] >> 4);
            for (int i = 0; i < 16; i++) {
                int e = sb * 16 + i;
                int q = (k.qs[(e / 128) * 32 + e % 32] >> (2 * ((e / 32) % 4))) & 3;
                float p = dl * (float)q;
                y[e] = p - ml;
            }
        }
    }
}

/* Q3_K: 16 six-bit signed scales (low 4 bits in scales[0..7] nibbles, high
 * 2 bits in scales[8..11]), 2 low bits as in Q2_K, and a third bit in hmask
 * that, when clear, subtracts 4. */
static void deq_q3_k(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(blk_q3_k), y += QK_K) {
        blk_q3_k k;
        memcpy(&k, src, sizeof k);
        const float d = air_f16_to_f32(k.d);
        for (int sb = 0; sb < 16; sb++) {
            int lo = (k.scales[sb % 8] >> (4 * (sb / 8))) & 0x0F;
            int hi = (k.scales[8 + sb % 4] >> (2 * (sb / 4))) & 0x03;
            int sc = (int)(int8_t)(uint8_t)(lo | hi << 4) - 32;
            const float dl = d * (float)sc;
            for (int i = 0; i < 16; i++) {
                int e = sb * 16 + i;
                int ql = (k.qs[(e / 128) * 32 + e % 32] >> (2 * ((e / 32) % 4))) & 3;
                int h = (k.hmask[e % 32] >> (e / 32)) & 1;
                y[e] = dl * (float)(ql - ((h ^ 1) << 2));
            }
        }
    }
}

/* The 12-byte scale field of Q4_K / Q5_K: 8 six-bit scales and 8 six-bit
 * mins. Sub-blocks 0..3 use the low 6 bits of bytes 0..3 (scales) and 4..7
 * (mins); sub-blocks 4..7 take their low 4 bits from the nibbles of bytes
 * 8..11 and their high 2 bits from the top bits of bytes 0..7. */
static void k_scale_min(const uint8_t s[12], int sb, int *sc, int *m) {
    if (sb < 4) {
        *sc = s[sb] & 63;
        *m = s[sb + 4] & 63;
    } else {
        *sc = (s[sb + 4] & 0x0F) | ((s[sb - 4] >> 2) & 0x30);
        *m = (s[sb + 4] >> 4) | ((s[sb] >> 2) & 0x30);
    }
}

static void deq_q4_k(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(blk_q4_k), y += QK_K) {
        blk_q4_k k;
        memcpy(&k, src, sizeof k);
        const float d = air_f16_to_f32(k.d), dmin = air_f16_to_f32(k.dmin);
        for (int sb = 0; sb < 8; sb++) {
            int sc, m;
            k_scale_min(k.scales, sb, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            const uint8_t *q = k.qs + (sb / 2) * 32;
            const int shift = 4 * (sb % 2);
            for (int l = 0; l < 32; l++) {
                float p = d1 * (float)((q[l] >> shift) & 0x0F);
                y[sb * 32 + l] = p - m1;
            }
        }
    }
}

static void deq_q5_k(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(blk_q5_k), y += QK_K) {
        blk_q5_k k;
        memcpy(&k, src, sizeof k);
        const float d = air_f16_to_f32(k.d), dmin = air_f16_to_f32(k.dmin);
        for (int sb = 0; sb < 8; sb++) {
            int sc, m;
            k_scale_min(k.scales, sb, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            const uint8_t *q = k.qs + (sb / 2) * 32;
            const int shift = 4 * (sb % 2);
            for (int l = 0; l < 32; l++) {
                int v = ((q[l] >> shift) & 0x0F) | ((k.qh[l] >> sb) & 1) << 4;
                float p = d1 * (float)v;
                y[sb * 32 + l] = p - m1;
            }
        }
    }
}

/* Q6_K element e: low 4 bits from ql[(e / 128) * 64 + e % 64] (nibble
 * (e / 64) % 2), high 2 bits from qh[(e / 128) * 32 + e % 32] at shift
 * 2 * ((e / 32) % 4), minus 32; int8 scale of sub-block e / 16. */
static void deq_q6_k(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(blk_q6_k), y += QK_K) {
        blk_q6_k k;
        memcpy(&k, src, sizeof k);
        const float d = air_f16_to_f32(k.d);
        for (int sb = 0; sb < 16; sb++) {
            const float dl = d * (float)k.scales[sb];
            for (int i = 0; i < 16; i++) {
                int e = sb * 16 + i;
                int lo = (k.ql[(e / 128) * 64 + e % 64] >> (4 * ((e / 64) % 2))) & 0x0F;
                int hi = (k.qh[(e / 128) * 32 + e % 32] >> (2 * ((e / 32) % 4))) & 0x03;
                y[e] = dl * (float)((lo | hi << 4) - 32);
            }
        }
    }
}

int air_ggml_can_dequantize(int type) {
    switch (type) {
    case AIR_GGML_F32:
    case AIR_GGML_F16:
    case AIR_GGML_BF16:
    case AIR_GGML_Q4_0:
    case AIR_GGML_Q4_1:
    case AIR_GGML_Q5_0:
    case AIR_GGML_Q5_1:
    case AIR_GGML_Q8_0:
    case AIR_GGML_Q2_K:
    case AIR_GGML_Q3_K:
    case AIR_GGML_Q4_K:
    case AIR_GGML_Q5_K:
    case AIR_GGML_Q6_K:
    case AIR_GGML_MXFP4:
        return 1;
    default:
        return 0;
    }
}

air_status air_ggml_dequantize(int type, const void *src, float *dst, int64_t n) {
    if (!air_ggml_can_dequantize(type))
        return air_err(AIR_ERR_UNSUPPORTED,
                       "cannot convert GGML type %s (%d) to fp32; supported: F32, F16, BF16, "
                       "Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, MXFP4",
                       air_ggml_type_name(type), type);
    const int bs = g_types[type].block;
    if (n < 0 || n % bs != 0)
        return air_err(AIR_ERR_INVALID_ARG,
                       "%lld elements of GGML type %s are not a whole number of %d-element blocks",
                       (long long)n, g_types[type].name, bs);
    const uint8_t *s = src;
    const int64_t nb = n / bs;
    switch (type) {
    case AIR_GGML_F32:
        memcpy(dst, s, (size_t)n * 4);
        break;
    case AIR_GGML_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = air_f16_to_f32(h);
        }
        break;
    case AIR_GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = air_bf16_to_f32(h);
        }
        break;
    case AIR_GGML_Q4_0:
        deq_q4_0(s, dst, nb);
        break;
    case AIR_GGML_Q4_1:
        deq_q4_1(s, dst, nb);
        break;
    case AIR_GGML_Q5_0:
        deq_q5_0(s, dst, nb);
        break;
    case AIR_GGML_Q5_1:
        deq_q5_1(s, dst, nb);
        break;
    case AIR_GGML_Q8_0:
        deq_q8_0(s, dst, nb);
        break;
    case AIR_GGML_Q2_K:
        deq_q2_k(s, dst, nb);
        break;
    case AIR_GGML_Q3_K:
        deq_q3_k(s, dst, nb);
        break;
    case AIR_GGML_Q4_K:
        deq_q4_k(s, dst, nb);
        break;
    case AIR_GGML_Q5_K:
        deq_q5_k(s, dst, nb);
        break;
    case AIR_GGML_Q6_K:
        deq_q6_k(s, dst, nb);
        break;
    case AIR_GGML_MXFP4:
        deq_mxfp4(s, dst, nb);
        break;
    }
    return AIR_OK;
}
