/*
 * quant.h - the block formats of the quantized weight types and their
 * reference quantizers / dequantizers.
 *
 * A quantized row of n elements is n / block consecutive blocks (see
 * docs/quant-formats.md for the byte diagrams):
 *
 *   AIR_DT_Q8  ("8bit"): 32 int8 codes + one fp16 scale, 34 bytes per block.
 *                        x ~= d * q, d = absmax / 127.
 *   AIR_DT_NF4 ("4bit"): bitsandbytes NF4: 64 elements, one fp32 absmax and
 *                        32 bytes of 4-bit codes, 36 bytes per block.
 *                        x ~= absmax * NF4[code].
 *
 * NF4 nibble order is chosen for SIMD, not bitsandbytes' order: byte j holds
 * element j in its low nibble and element j + 32 in its high nibble, so one
 * 32-byte load, a mask and a shift give the codes of elements 0..31 and 32..63
 * in order. The codes themselves equal bitsandbytes' codes.
 *
 * Activations consumed by the int8 dot-product kernels are quantized per 32
 * elements into air_block_xq.
 */
#ifndef AIR_QUANT_QUANT_H
#define AIR_QUANT_QUANT_H

#include <assert.h>
#include <stdint.h>

#define AIR_Q8_BLOCK 32
#define AIR_NF4_BLOCK 64
#define AIR_XQ_BLOCK 32

typedef struct {
    uint16_t d;              /* fp16 scale: x ~= d * qs[i] */
    int8_t qs[AIR_Q8_BLOCK]; /* codes in [-127, 127] */
} air_block_q8;
static_assert(sizeof(air_block_q8) == 34, "air_block_q8 must be 34 bytes");

typedef struct {
    float absmax;                  /* fp32 absmax of the 64 elements */
    uint8_t qs[AIR_NF4_BLOCK / 2]; /* byte j: element j (low nibble), j + 32 (high) */
} air_block_nf4;
static_assert(sizeof(air_block_nf4) == 36, "air_block_nf4 must be 36 bytes");

/* An activation block for the int8 kernels: x ~= d * q[i]. */
typedef struct {
    float d; /* scale, absmax / 127 */
    float s; /* d * sum(q): offset correction for unsigned-weight dots */
    int8_t q[AIR_XQ_BLOCK];
} air_block_xq;
static_assert(sizeof(air_block_xq) == 40, "air_block_xq must be 40 bytes");

/* The 16 NF4 code values (bitsandbytes' table, fp32). */
extern const float air_nf4_values[16];
/* The NF4 code values times 127, rounded: the int8 table the SIMD kernels
 * look up (their int8 path is an approximation of the fp32 values). */
extern const int8_t air_nf4_values_i8[16];

/* Code of a normalized value v = x / absmax in [-1, 1]: the nearest code
 * value, ties to the lower code (bitsandbytes' decision tree). */
int air_nf4_code(float v);

/* The 15 midpoints between adjacent NF4 code values, in fp32 as the
 * quantizer compares with them (strictly increasing). */
void air_nf4_midpoints(float mid[15]);

/* Rows: n must be a multiple of the block size. The quantizers here are the
 * scalar reference; air_row_from_f32 (kernels/ops.h) runs the fastest
 * version the CPU has, which gives the same bytes (quant_avx2.c,
 * quant_avx512.c; tests/unit/test_quant.c checks every version). */
void air_q8_quantize_row(const float *x, air_block_q8 *dst, int64_t n);
void air_q8_dequantize_row(const air_block_q8 *src, float *y, int64_t n);
void air_nf4_quantize_row(const float *x, air_block_nf4 *dst, int64_t n);
void air_nf4_dequantize_row(const air_block_nf4 *src, float *y, int64_t n);
#if defined(__x86_64__) || defined(_M_X64)
void air_q8_quantize_row_avx2(const float *x, air_block_q8 *dst, int64_t n);
void air_nf4_quantize_row_avx2(const float *x, air_block_nf4 *dst, int64_t n);
void air_q8_quantize_row_avx512(const float *x, air_block_q8 *dst, int64_t n);
void air_nf4_quantize_row_avx512(const float *x, air_block_nf4 *dst, int64_t n);
/* 16-bit float rows to fp32, the bits of air_bf16_to_f32 / air_f16_to_f32. */
void air_bf16_to_f32_row_avx2(const uint16_t *x, float *y, int64_t n);
void air_f16_to_f32_row_avx2(const uint16_t *x, float *y, int64_t n);
void air_bf16_to_f32_row_avx512(const uint16_t *x, float *y, int64_t n);
void air_f16_to_f32_row_avx512(const uint16_t *x, float *y, int64_t n);
#endif
/* Reference activation quantizer (n multiple of 32). */
void air_xq_quantize_row(const float *x, air_block_xq *dst, int64_t n);

/* Code of element i (0..63) of an NF4 block. */
static inline int air_nf4_get(const air_block_nf4 *b, int i) {
    return i < 32 ? (b->qs[i] & 15) : (b->qs[i - 32] >> 4);
}

#endif
