/*
 * fp8.h - FP8 (e4m3) weights with block scales, as DeepSeek-V3 and Kimi-K2
 * ship them: a weight W (rows, cols) of F8_E4M3 values and a companion
 * `<name>_scale_inv` (ceil(rows / bm), ceil(cols / bn)) of F32 scales, one per
 * bm x bn block (128 x 128 in practice). The real weight is
 *
 *   W[r][c] = f32(fp8[r][c]) * scale_inv[r / bm][c / bn]     (fp32 product)
 *
 * which the split rounds once to bf16, as transformers does when it loads the
 * checkpoint into a bf16 model (and DeepSeek's own bf16 conversion).
 */
#ifndef AIR_QUANT_FP8_H
#define AIR_QUANT_FP8_H

#include <stdint.h>

/* e4m3 ("fn": no infinities; 0x7f / 0xff are NaN) to f32, exact. */
float air_fp8_e4m3_to_f32(uint8_t v);

/* out (rows, cols) bf16 = w (rows, cols) e4m3 * scale (ceil(rows/bm),
 * ceil(cols/bn)) f32, each product rounded to nearest even. */
void air_fp8_block_dequant_bf16(const uint8_t *w, int64_t rows, int64_t cols, const float *scale,
                                int bm, int bn, uint16_t *out);

#endif
