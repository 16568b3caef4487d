/*
 * mxfp4.c - MXFP4 to bf16 (see mxfp4.h).
 */
#include "quant/mxfp4.h"

#include <math.h>

#include "kernels/ops.h"

static const float e2m1[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                               -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

void air_mxfp4_dequant_bf16(const uint8_t *blocks, const uint8_t *scales, int64_t rows,
                            int64_t groups, uint16_t *out) {
    for (int64_t g = 0; g < rows * groups; g++) {
        /* value * 2^(s - 127) as a product with the fp32 power of two, as
         * torch.ldexp computes it (so 2^128 is inf, and 0 * inf NaN, alike) */
        float p2 = ldexpf(1.0f, (int)scales[g] - 127);
        const uint8_t *b = blocks + g * 16;
        uint16_t *o = out + g * 32;
        for (int i = 0; i < 16; i++) {
            o[2 * i] = air_f32_to_bf16(e2m1[b[i] & 15] * p2);
            o[2 * i + 1] = air_f32_to_bf16(e2m1[b[i] >> 4] * p2);
        }
    }
}
