/*
 * q8.c - Q8 ("8bit"): blocks of 32 int8 codes with one fp16 scale, and the
 * int8 quantizer of activations used by the integer dot-product kernels.
 *
 * Quantize (weights and activations alike): absmax over the block,
 * q = rint(x * ((1 / absmax) * 127)) in fp32 with each operation rounded,
 * round half to even (0 for an all-zero block): the codes of bitsandbytes'
 * int8 absmax quantization (torch evaluates 127 / t as t.reciprocal() * 127)
 * applied to each block of 32. The weight scale is stored as d = fp16(absmax / 127) (clamped to
 * the fp16 range); its rounding (<= 2^-11 relative) is far below one int8 step.
 * A NaN product (a NaN weight, or any weight of a block with an infinity,
 * whose 1 / absmax is 0) gets code 0.
 * Dequantize: x = fp32(d) * q.
 */
#include <math.h>

#include "kernels/ops.h"
#include "quant/quant.h"

static int8_t clamp127(float v) {
    float r = nearbyintf(v); /* round half to even, as the SIMD cvtps */
    if (r != r)
        return 0; /* NaN (a NaN weight, or an infinity times 0): code 0 */
    if (r > 127.0f)
        r = 127.0f;
    if (r < -127.0f)
        r = -127.0f;
    return (int8_t)r;
}

void air_q8_quantize_row(const float *x, air_block_q8 *dst, int64_t n) {
    for (int64_t b = 0; b < n / AIR_Q8_BLOCK; b++) {
        const float *xb = x + b * AIR_Q8_BLOCK;
        float amax = 0.0f;
        for (int i = 0; i < AIR_Q8_BLOCK; i++) {
            float a = fabsf(xb[i]);
            amax = a > amax ? a : amax;
        }
        float d = amax / 127.0f;
        float id = amax != 0.0f ? (1.0f / amax) * 127.0f : 0.0f;
        dst[b].d = air_f32_to_f16(d > 65504.0f ? 65504.0f : d);
        for (int i = 0; i < AIR_Q8_BLOCK; i++)
            dst[b].qs[i] = clamp127(xb[i] * id);
    }
}

void air_q8_dequantize_row(const air_block_q8 *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / AIR_Q8_BLOCK; b++) {
        float d = air_f16_to_f32(src[b].d);
        for (int i = 0; i < AIR_Q8_BLOCK; i++)
            y[b * AIR_Q8_BLOCK + i] = d * (float)src[b].qs[i];
    }
}

void air_xq_quantize_row(const float *x, air_block_xq *dst, int64_t n) {
    for (int64_t b = 0; b < n / AIR_XQ_BLOCK; b++) {
        const float *xb = x + b * AIR_XQ_BLOCK;
        float amax = 0.0f;
        for (int i = 0; i < AIR_XQ_BLOCK; i++) {
            float a = fabsf(xb[i]);
            if (a > amax)
                amax = a;
        }
        float d = amax / 127.0f;
        float id = amax != 0.0f ? (1.0f / amax) * 127.0f : 0.0f;
        int sum = 0;
        for (int i = 0; i < AIR_XQ_BLOCK; i++) {
            dst[b].q[i] = clamp127(xb[i] * id);
            sum += dst[b].q[i];
        }
        dst[b].d = d;
        dst[b].s = d * (float)sum;
    }
}
