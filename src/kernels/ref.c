/*
 * ref.c - plain-C reference of every kernel, the dtype helpers and the
 * fp16 / bf16 conversions.
 *
 * The reference matmul dequantizes each weight row in pieces of 256 elements
 * into fp32 and accumulates sequentially in fp32; it is the yardstick the
 * SIMD kernels are tested against and the fallback on CPUs without them.
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"

/* ------------------------------------------------------------------------- */
/* dtype helpers                                                             */
/* ------------------------------------------------------------------------- */

const char *air_dtype_name(air_dtype t) {
    switch (t) {
    case AIR_DT_F32:
        return "f32";
    case AIR_DT_F16:
        return "f16";
    case AIR_DT_BF16:
        return "bf16";
    case AIR_DT_Q8:
        return "8bit";
    case AIR_DT_NF4:
        return "4bit";
    default:
        return "unknown";
    }
}

int air_dtype_block(air_dtype t) {
    switch (t) {
    case AIR_DT_Q8:
        return AIR_Q8_BLOCK;
    case AIR_DT_NF4:
        return AIR_NF4_BLOCK;
    default:
        return 1;
    }
}

size_t air_dtype_row_bytes(air_dtype t, int64_t n) {
    switch (t) {
    case AIR_DT_F32:
        return (size_t)n * 4;
    case AIR_DT_F16:
    case AIR_DT_BF16:
        return (size_t)n * 2;
    case AIR_DT_Q8:
        return (size_t)(n / AIR_Q8_BLOCK) * sizeof(air_block_q8);
    case AIR_DT_NF4:
        return (size_t)(n / AIR_NF4_BLOCK) * sizeof(air_block_nf4);
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------------- */
/* fp16 / bf16                                                               */
/* ------------------------------------------------------------------------- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float air_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0x1f)
        return bits_f32(sign | 0x7f800000 | (m << 13)); /* inf / nan */
    if (e == 0) {
        if (m == 0)
            return bits_f32(sign);
        /* subnormal: m * 2^-24, exact in fp32 */
        float v = (float)m * 0x1p-24f;
        return bits_f32(sign | f32_bits(v));
    }
    return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t air_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax >= 0x7f800000) /* inf / nan (quiet) */
        return (uint16_t)(sign | (ax > 0x7f800000 ? 0x7e00 | ((ax >> 13) & 0x3ff) : 0x7c00));
    if (ax >= 0x477ff000)
        return (uint16_t)(sign | 0x7c00); /* >= 65520 rounds to inf */
    if (ax < 0x38800000) {                /* below 2^-14: subnormal */
        if (ax < 0x33000000)
            return sign; /* <= 2^-25 rounds to 0 */
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* value / 2^-24 = m >> shift */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1)))
            r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = (ax >> 13) - (112u << 10), rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1)))
        r++;
    return (uint16_t)(sign | r);
}

float air_bf16_to_f32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

uint16_t air_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ------------------------------------------------------------------------- */
/* Row conversion                                                            */
/* ------------------------------------------------------------------------- */

void air_ref_f16_to_f32(const uint16_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = air_f16_to_f32(x[i]);
}

/* The high half of each float: a loop the compiler vectorizes. */
void air_ref_bf16_to_f32(const uint16_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t b = (uint32_t)x[i] << 16;
        memcpy(&y[i], &b, sizeof b);
    }
}

void air_row_to_f32(air_dtype t, const void *src, float *dst, int64_t n) {
    switch (t) {
    case AIR_DT_F32:
        memcpy(dst, src, (size_t)n * 4);
        break;
    case AIR_DT_F16: /* the CPU's fastest version: the reference's bits */
        air_kernels_table()->f16_to_f32(src, dst, n);
        break;
    case AIR_DT_BF16:
        air_kernels_table()->bf16_to_f32(src, dst, n);
        break;
    case AIR_DT_Q8:
        air_q8_dequantize_row(src, dst, n);
        break;
    case AIR_DT_NF4:
        air_nf4_dequantize_row(src, dst, n);
        break;
    default:
        break;
    }
}

void air_row_from_f32(air_dtype t, const float *src, void *dst, int64_t n) {
    switch (t) {
    case AIR_DT_F32:
        memcpy(dst, src, (size_t)n * 4);
        break;
    case AIR_DT_F16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)dst)[i] = air_f32_to_f16(src[i]);
        break;
    case AIR_DT_BF16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)dst)[i] = air_f32_to_bf16(src[i]);
        break;
    case AIR_DT_Q8: /* the CPU's fastest version: the reference's bytes */
        air_kernels_table()->quantize_q8(src, dst, n);
        break;
    case AIR_DT_NF4:
        air_kernels_table()->quantize_nf4(src, dst, n);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------------- */
/* Matmul                                                                    */
/* ------------------------------------------------------------------------- */

#define PIECE 256

/* y (rows, n_out)[:, o0:o1] = x (rows, n_in) @ W^T, W of type t. Every
 * piece of a weight row is converted to fp32 once and serves all rows. */
static void mm_ref(air_dtype t, const void *W, int n_in, const float *x, int rows, float *y,
                   int n_out, int o0, int o1) {
    size_t row_bytes = air_dtype_row_bytes(t, n_in);
    float wf[PIECE];
    for (int o = o0; o < o1; o++) {
        const uint8_t *wrow = (const uint8_t *)W + (size_t)o * row_bytes;
        for (int r = 0; r < rows; r++)
            y[(size_t)r * n_out + o] = 0.0f;
        for (int p = 0; p < n_in; p += PIECE) {
            int len = n_in - p < PIECE ? n_in - p : PIECE;
            /* pieces start on block boundaries: PIECE is a multiple of 64 */
            const uint8_t *src = wrow + air_dtype_row_bytes(t, p);
            air_row_to_f32(t, src, wf, len);
            for (int r = 0; r < rows; r++) {
                const float *xr = x + (size_t)r * n_in + p;
                float acc = 0.0f;
                for (int i = 0; i < len; i++)
                    acc += wf[i] * xr[i];
                y[(size_t)r * n_out + o] += acc;
            }
        }
    }
}

#define MM_REF(name, T)                                                                            \
    void name(const void *W, int n_in, const void *x, int rows, float *y, int n_out, int o0,       \
              int o1) {                                                                            \
        mm_ref(T, W, n_in, (const float *)x, rows, y, n_out, o0, o1);                              \
    }
MM_REF(air_ref_mm_f32, AIR_DT_F32)
MM_REF(air_ref_mm_f16, AIR_DT_F16)
MM_REF(air_ref_mm_bf16, AIR_DT_BF16)
MM_REF(air_ref_mm_q8, AIR_DT_Q8)
MM_REF(air_ref_mm_nf4, AIR_DT_NF4)

/* ------------------------------------------------------------------------- */
/* Small ops                                                                 */
/* ------------------------------------------------------------------------- */

// y (n) = x (n) / sqrt(mean(x^2) + eps) * w (n)
void air_ref_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    float ss = 0.0f;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++)
        y[i] = x[i] * scale * w[i];
}

// out (n) = gate / (1 + exp(-gate)) * up
void air_ref_silu_mul(float *out, const float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

// x (n) = exp(x - max) / sum(exp(x - max))
void air_ref_softmax(float *x, int n) {
    if (n <= 0)
        return;
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

// sum_i a[i] * b[i]
float air_ref_dot(const float *a, const float *b, int n) {
    float acc = 0.0f;
    for (int i = 0; i < n; i++)
        acc += a[i] * b[i];
    return acc;
}

// y (n) += alpha * x (n)
void air_ref_axpy(float *y, float alpha, const float *x, int n) {
    for (int i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

const air_kernel_table air_ktab_ref = {
    .isa = AIR_ISA_REF,
    .mm = {air_ref_mm_f32, air_ref_mm_f16, air_ref_mm_bf16, air_ref_mm_q8, air_ref_mm_nf4},
    .mm_xq = {0, 0, 0, 0, 0},
    .quantize_x = air_xq_quantize_row,
    .quantize_q8 = air_q8_quantize_row,
    .quantize_nf4 = air_nf4_quantize_row,
    .bf16_to_f32 = air_ref_bf16_to_f32,
    .f16_to_f32 = air_ref_f16_to_f32,
    .rmsnorm = air_ref_rmsnorm,
    .silu_mul = air_ref_silu_mul,
    .softmax = air_ref_softmax,
    .dot = air_ref_dot,
    .axpy = air_ref_axpy,
};
