/*
 * arm_neon.c - AArch64 Advanced SIMD (NEON) kernels, baseline ARMv8-A.
 *
 * Same tiles and summation order per output as the x86 kernels (see
 * AIR_MM_DRIVE), on 4-lane vectors. Q8 and NF4 use exact int8 products
 * (smull / smull2 into int16, pairwise-accumulated into int32 with sadalp) on
 * activations quantized per 32 elements; NF4 codes become int8 code values
 * with one table lookup (tbl) each.
 */
#include <arm_neon.h>
#include <math.h>

#include "kernels/kernels.h"

#define AI static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")
/* Decode streams weight rows from RAM: prefetch this far ahead of each row
 * (far enough to cover memory latency with several rows in flight). */
#ifndef PF_BYTES
#define PF_BYTES 16384
#endif

/* e^x, max relative error ~2 ulp; 0 below -87.3, inf above 88.7. */
AI float32x4_t exp4(float32x4_t x) {
    const float32x4_t lo = vdupq_n_f32(-87.3f);
    uint32x4_t tiny = vcltq_f32(x, lo), huge = vcgtq_f32(x, vdupq_n_f32(88.72283935546875f));
    x = vminq_f32(vmaxq_f32(x, lo), vdupq_n_f32(88.3762626647949f));
    float32x4_t fx = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
    x = vfmsq_f32(x, fx, vdupq_n_f32(0.693359375f));
    x = vfmsq_f32(x, fx, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t y = vdupq_n_f32(1.9875691500E-4f);
    y = vfmaq_f32(vdupq_n_f32(1.3981999507E-3f), y, x);
    y = vfmaq_f32(vdupq_n_f32(8.3334519073E-3f), y, x);
    y = vfmaq_f32(vdupq_n_f32(4.1665795894E-2f), y, x);
    y = vfmaq_f32(vdupq_n_f32(1.6666665459E-1f), y, x);
    y = vfmaq_f32(vdupq_n_f32(5.0000001201E-1f), y, x);
    y = vfmaq_f32(vaddq_f32(x, vdupq_n_f32(1.0f)), y, vmulq_f32(x, x));
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(fx), vdupq_n_s32(127)), 23);
    y = vmulq_f32(y, vreinterpretq_f32_s32(e));
    y = vbslq_f32(huge, vdupq_n_f32(INFINITY), y);
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), tiny));
}

/* ------------------------------------------------------------------------- */
/* f32 / f16 / bf16 weights                                                  */
/* ------------------------------------------------------------------------- */

AI float32x4_t load4(int t, const void *p, int i) {
    if (t == AIR_DT_F32)
        return vld1q_f32((const float *)p + i);
    uint16x4_t h = vld1_u16((const uint16_t *)p + i);
    if (t == AIR_DT_F16)
        return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
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
    float32x4_t acc[4][4];
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++) acc[m][n] =
        vdupq_n_f32(0.0f);
    int i = 0;
    for (; i + 4 <= n_in; i += 4) {
        float32x4_t xv[4];
        UNROLL for (int n = 0; n < NR; n++) xv[n] = vld1q_f32(x + (size_t)(r + n) * n_in + i);
        UNROLL for (int m = 0; m < MR; m++) {
            float32x4_t w = load4(t, W + (size_t)(o + m) * rb, i);
            UNROLL for (int n = 0; n < NR; n++) acc[m][n] = vfmaq_f32(acc[m][n], w, xv[n]);
        }
    }
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++) {
        float s = vaddvq_f32(acc[m][n]);
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

/* sum over 32 lanes of w * x (w = w0:w1, x = x0:x1), 4 int32 partial sums as fp32 */
AI float32x4_t dot32(int8x16_t w0, int8x16_t w1, int8x16_t x0, int8x16_t x1) {
    int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(w0), vget_low_s8(x0)));
    s = vpadalq_s16(s, vmull_high_s8(w0, x0));
    s = vpadalq_s16(s, vmull_s8(vget_low_s8(w1), vget_low_s8(x1)));
    s = vpadalq_s16(s, vmull_high_s8(w1, x1));
    return vcvtq_f32_s32(s);
}

// y[r][o] = sum_b d_w[o,b] * d_x[r,b] * sum_i q_w[o,b,i] * q_x[r,b,i]
AI void tile_q8(int MR, int NR, const air_block_q8 *W, int nb, const air_block_xq *x, float *y,
                int n_out, int o, int r) {
    float32x4_t acc[4][4];
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++) acc[m][n] =
        vdupq_n_f32(0.0f);
    for (int b = 0; b < nb; b++) {
        int8x16_t x0[4], x1[4];
        float dx[4];
        UNROLL for (int n = 0; n < NR; n++) {
            const air_block_xq *xb = x + (size_t)(r + n) * nb + b;
            x0[n] = vld1q_s8(xb->q);
            x1[n] = vld1q_s8(xb->q + 16);
            dx[n] = xb->d;
        }
        UNROLL for (int m = 0; m < MR; m++) {
            const air_block_q8 *wb = W + (size_t)(o + m) * nb + b;
            if (NR == 1)
                __builtin_prefetch((const char *)wb + PF_BYTES);
            int8x16_t w0 = vld1q_s8(wb->qs), w1 = vld1q_s8(wb->qs + 16);
            float dw = air_f16_to_f32(wb->d);
            UNROLL for (int n = 0; n < NR; n++) acc[m][n] =
                vfmaq_n_f32(acc[m][n], dot32(w0, w1, x0[n], x1[n]), dw * dx[n]);
        }
    }
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++)
        y[(size_t)(r + n) * n_out + o + m] = vaddvq_f32(acc[m][n]);
}

static void mm_q8(const void *W, int n_in, const void *xv, int rows, float *y, int n_out, int o0,
                  int o1) {
    const air_block_xq *x = xv;
    int nb = n_in / AIR_Q8_BLOCK;
#define TILE_Q8(MR, NR, o, r) tile_q8(MR, NR, W, nb, x, y, n_out, o, r)
    AIR_MM_DRIVE(TILE_Q8, (size_t)nb * sizeof(air_block_q8));
#undef TILE_Q8
}

// y[r][o] = sum_b absmax / 127 * sum_h d_x[r,2b+h] * sum_i nf4_i8[c[o,b,32h+i]] * q_x[...]
AI void tile_nf4(int MR, int NR, const air_block_nf4 *W, int nb, const air_block_xq *x, float *y,
                 int n_out, int o, int r) {
    const int8x16_t table = vld1q_s8(air_nf4_values_i8);
    const uint8x16_t m4 = vdupq_n_u8(15);
    float32x4_t acc[4][4];
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++) acc[m][n] =
        vdupq_n_f32(0.0f);
    for (int b = 0; b < nb; b++) {
        int8x16_t x0[4], x1[4], x2[4], x3[4];
        float dlo[4], dhi[4];
        UNROLL for (int n = 0; n < NR; n++) {
            const air_block_xq *xb = x + (size_t)(r + n) * nb * 2 + 2 * b;
            x0[n] = vld1q_s8(xb[0].q);
            x1[n] = vld1q_s8(xb[0].q + 16);
            x2[n] = vld1q_s8(xb[1].q);
            x3[n] = vld1q_s8(xb[1].q + 16);
            dlo[n] = xb[0].d;
            dhi[n] = xb[1].d;
        }
        UNROLL for (int m = 0; m < MR; m++) {
            const air_block_nf4 *wb = W + (size_t)(o + m) * nb + b;
            if (NR == 1)
                __builtin_prefetch((const char *)wb + PF_BYTES);
            uint8x16_t q0 = vld1q_u8(wb->qs), q1 = vld1q_u8(wb->qs + 16);
            int8x16_t w0 = vqtbl1q_s8(table, vandq_u8(q0, m4));  /* elements 0..15 */
            int8x16_t w1 = vqtbl1q_s8(table, vandq_u8(q1, m4));  /* 16..31 */
            int8x16_t w2 = vqtbl1q_s8(table, vshrq_n_u8(q0, 4)); /* 32..47 */
            int8x16_t w3 = vqtbl1q_s8(table, vshrq_n_u8(q1, 4)); /* 48..63 */
            float a = wb->absmax * (1.0f / 127.0f);
            UNROLL for (int n = 0; n < NR; n++) {
                acc[m][n] = vfmaq_n_f32(acc[m][n], dot32(w0, w1, x0[n], x1[n]), a * dlo[n]);
                acc[m][n] = vfmaq_n_f32(acc[m][n], dot32(w2, w3, x2[n], x3[n]), a * dhi[n]);
            }
        }
    }
    UNROLL for (int m = 0; m < MR; m++) UNROLL for (int n = 0; n < NR; n++)
        y[(size_t)(r + n) * n_out + o + m] = vaddvq_f32(acc[m][n]);
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
    for (int64_t b = 0; b < n / AIR_XQ_BLOCK; b++) {
        const float *xb = x + b * AIR_XQ_BLOCK;
        float32x4_t v[8], mx = vdupq_n_f32(0.0f);
        UNROLL for (int k = 0; k < 8; k++) {
            v[k] = vld1q_f32(xb + 4 * k);
            mx = vmaxq_f32(mx, vabsq_f32(v[k]));
        }
        float amax = vmaxvq_f32(mx);
        float d = amax / 127.0f;
        float id = amax != 0.0f ? (1.0f / amax) * 127.0f : 0.0f;
        int32x4_t s = vdupq_n_s32(0);
        UNROLL for (int k = 0; k < 8; k += 2) {
            int32x4_t q0 = vcvtnq_s32_f32(vmulq_n_f32(v[k], id));
            int32x4_t q1 = vcvtnq_s32_f32(vmulq_n_f32(v[k + 1], id));
            s = vaddq_s32(s, vaddq_s32(q0, q1));
            int16x8_t h = vcombine_s16(vqmovn_s32(q0), vqmovn_s32(q1));
            vst1_s8(dst[b].q + 4 * k, vqmovn_s16(h));
        }
        dst[b].d = d;
        dst[b].s = d * (float)vaddvq_s32(s);
    }
}

/* ------------------------------------------------------------------------- */
/* Small ops                                                                 */
/* ------------------------------------------------------------------------- */

// y (n) = x (n) / sqrt(mean(x^2) + eps) * w (n)
static void rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = vld1q_f32(x + i);
        acc = vfmaq_f32(acc, v, v);
    }
    float ss = vaddvq_f32(acc);
    for (; i < n; i++)
        ss += x[i] * x[i];
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (i = 0; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vmulq_f32(vmulq_n_f32(vld1q_f32(x + i), scale), vld1q_f32(w + i)));
    for (; i < n; i++)
        y[i] = x[i] * scale * w[i];
}

// out (n) = gate / (1 + exp(-gate)) * up
static void silu_mul(float *out, const float *gate, const float *up, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t g = vld1q_f32(gate + i);
        float32x4_t s = vdivq_f32(g, vaddq_f32(vdupq_n_f32(1.0f), exp4(vnegq_f32(g))));
        vst1q_f32(out + i, vmulq_f32(s, vld1q_f32(up + i)));
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
    if (n >= 4) {
        float32x4_t m = vld1q_f32(x);
        for (i = 4; i + 4 <= n; i += 4)
            m = vmaxq_f32(m, vld1q_f32(x + i));
        mx = vmaxvq_f32(m);
    }
    for (; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    float32x4_t vm = vdupq_n_f32(mx), acc = vdupq_n_f32(0.0f);
    for (i = 0; i + 4 <= n; i += 4) {
        float32x4_t e = exp4(vsubq_f32(vld1q_f32(x + i), vm));
        vst1q_f32(x + i, e);
        acc = vaddq_f32(acc, e);
    }
    float sum = vaddvq_f32(acc);
    for (; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (i = 0; i + 4 <= n; i += 4)
        vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), inv));
    for (; i < n; i++)
        x[i] *= inv;
}

// sum_i a[i] * b[i]
static float dot(const float *a, const float *b, int n) {
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), vld1q_f32(b + i));
        acc1 = vfmaq_f32(acc1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    }
    for (; i + 4 <= n; i += 4)
        acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), vld1q_f32(b + i));
    float s = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

// y (n) += alpha * x (n)
static void axpy(float *y, float alpha, const float *x, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), alpha));
    for (; i < n; i++)
        y[i] += alpha * x[i];
}

const air_kernel_table air_ktab_neon = {
    .isa = AIR_ISA_NEON,
    .mm = {mm_f32, mm_f16, mm_bf16, mm_q8, mm_nf4},
    .mm_xq = {0, 0, 0, 1, 1},
    .quantize_x = quantize_x,
    .quantize_q8 = air_q8_quantize_row,
    .quantize_nf4 = air_nf4_quantize_row,
    .bf16_to_f32 = air_ref_bf16_to_f32,
    .f16_to_f32 = air_ref_f16_to_f32,
    .rmsnorm = rmsnorm,
    .silu_mul = silu_mul,
    .softmax = softmax,
    .dot = dot,
    .axpy = axpy,
};
