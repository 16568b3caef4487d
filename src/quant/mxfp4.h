/*
 * mxfp4.h - MXFP4 weights (OCP microscaling FP4), as gpt-oss ships its
 * experts: per row, groups of 32 values stored as 16 bytes of FP4 e2m1 codes
 * (low nibble: the even element, high nibble: the odd one) and one E8M0 scale
 * byte s per group: value = e2m1[code] * 2^(s - 127).
 *
 * Every such value is exactly representable in bf16 (at most two mantissa
 * bits), so dequantizing to bf16 loses nothing; it equals transformers'
 * convert_moe_packed_tensors bit for bit.
 */
#ifndef AIR_QUANT_MXFP4_H
#define AIR_QUANT_MXFP4_H

#include <stdint.h>

/* out (rows, 32 * groups) bf16 from blocks (rows, groups, 16) and scales
 * (rows, groups). */
void air_mxfp4_dequant_bf16(const uint8_t *blocks, const uint8_t *scales, int64_t rows,
                            int64_t groups, uint16_t *out);

#endif
