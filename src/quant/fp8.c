/*
 * fp8.c - FP8 e4m3 values and block-scaled FP8 weights (see fp8.h).
 */
#include "quant/fp8.h"

#include <math.h>

#include "kernels/ops.h"

float air_fp8_e4m3_to_f32(uint8_t v) {
    int sign = v >> 7, exp = (v >> 3) & 0xf, man = v & 7;
    float f;
    if (exp == 0xf && man == 7)
        f = NAN;
    else if (exp == 0)
        f = ldexpf((float)man, -9); /* subnormal: man / 8 * 2^-6 */
    else
        f = ldexpf((float)(8 + man), exp - 10); /* (1 + man / 8) * 2^(exp - 7) */
    return sign ? -f : f;
}

void air_fp8_block_dequant_bf16(const uint8_t *w, int64_t rows, int64_t cols, const float *scale,
                                int bm, int bn, uint16_t *out) {
    float lut[256];
    for (int i = 0; i < 256; i++)
        lut[i] = air_fp8_e4m3_to_f32((uint8_t)i);
    int64_t scols = (cols + bn - 1) / bn;
    for (int64_t r = 0; r < rows; r++) {
        const float *srow = scale + (r / bm) * scols;
        for (int64_t c = 0; c < cols; c++)
            out[r * cols + c] = air_f32_to_bf16(lut[w[r * cols + c]] * srow[c / bn]);
    }
}
