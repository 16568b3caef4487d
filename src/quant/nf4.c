/*
 * nf4.c - NF4 ("4bit"): bitsandbytes' 4-bit NormalFloat format.
 *
 * Quantize: per block of 64 elements, absmax = max |x| (fp32, stored as is);
 * v = clamp(x * (1 / max(absmax, 1e-38)), -1, 1) in fp32; the code is the
 * number of midpoints between adjacent code values that are < v (so a value
 * exactly on a midpoint takes the lower code). This is the decision bitsandbytes
 * makes on the CPU (bucketize over fp32 midpoints).
 * Dequantize: x = NF4[code] * absmax, one fp32 multiply, bit-exact with
 * bitsandbytes' dequantize_4bit.
 */
#include <math.h>

#include "quant/quant.h"

const float air_nf4_values[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

/* round(127 * NF4[i]) */
const int8_t air_nf4_values_i8[16] = {-127, -88, -67, -50, -36, -23, -12, 0,
                                      10,   20,  31,  43,  56,  71,  92,  127};

static float midpoint(int i) {
    float s = air_nf4_values[i] + air_nf4_values[i + 1]; /* fp32 sum, then halve: as torch */
    return s * 0.5f;
}

void air_nf4_midpoints(float mid[15]) {
    for (int m = 0; m < 15; m++)
        mid[m] = midpoint(m);
}

int air_nf4_code(float v) {
    /* Binary search over the 15 midpoints: code = #{ m : m < v }. */
    int lo = 0, hi = 15; /* answer in [lo, hi] */
    while (lo < hi) {
        int mid = (lo + hi) / 2; /* midpoint between code mid and mid + 1 */
        if (v > midpoint(mid))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The code of each value as a count of the midpoints below it, for a whole
 * block at once: the same comparisons as air_nf4_code (so the same codes,
 * NaN included), without its branches, in loops the compiler vectorizes. */
void air_nf4_quantize_row(const float *x, air_block_nf4 *dst, int64_t n) {
    float mid[15];
    air_nf4_midpoints(mid);
    for (int64_t b = 0; b < n / AIR_NF4_BLOCK; b++) {
        const float *xb = x + b * AIR_NF4_BLOCK;
        float amax = 0.0f;
        for (int i = 0; i < AIR_NF4_BLOCK; i++) {
            float a = fabsf(xb[i]);
            amax = a > amax ? a : amax;
        }
        float inv = 1.0f / (amax < 1e-38f ? 1e-38f : amax);
        float v[AIR_NF4_BLOCK];
        uint8_t codes[AIR_NF4_BLOCK];
        for (int i = 0; i < AIR_NF4_BLOCK; i++) {
            float t = xb[i] * inv;
            t = t < -1.0f ? -1.0f : t;
            v[i] = t > 1.0f ? 1.0f : t;
            codes[i] = 0;
        }
        for (int m = 0; m < 15; m++)
            for (int i = 0; i < AIR_NF4_BLOCK; i++)
                codes[i] = (uint8_t)(codes[i] + (v[i] > mid[m]));
        dst[b].absmax = amax;
        for (int j = 0; j < AIR_NF4_BLOCK / 2; j++)
            dst[b].qs[j] = (uint8_t)(codes[j] | (codes[j + 32] << 4));
    }
}

void air_nf4_dequantize_row(const air_block_nf4 *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / AIR_NF4_BLOCK; b++) {
        float a = src[b].absmax;
        float *yb = y + b * AIR_NF4_BLOCK;
        for (int j = 0; j < AIR_NF4_BLOCK / 2; j++) {
            yb[j] = air_nf4_values[src[b].qs[j] & 15] * a;
            yb[j + 32] = air_nf4_values[src[b].qs[j] >> 4] * a;
        }
    }
}
