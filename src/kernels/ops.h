/*
 * ops.h - the kernel interface: every numeric operation of the forward pass.
 *
 * Weights are matrices W (n_out, n_in) stored row-major in one of the
 * air_dtype formats: each output row is n_in elements (for quantized formats,
 * n_in / block_size consecutive blocks). Activations are fp32, row-major,
 * `rows` rows (tokens) at a time. All accumulation is fp32.
 *
 * Every op has a plain-C reference (ref.c); SIMD versions (x86_avx2.c,
 * x86_avx512.c, arm_neon.c) have the same semantics and are chosen once at
 * start-up from cpuid (dispatch.c). air_kernels_force_isa() lets tests compare
 * each ISA against the reference.
 */
#ifndef AIR_KERNELS_OPS_H
#define AIR_KERNELS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/pool.h"

/* Storage formats. The numeric values are written into the layer store:
 * never renumber. */
typedef enum {
    AIR_DT_F32 = 0,
    AIR_DT_F16 = 1,
    AIR_DT_BF16 = 2,
    AIR_DT_Q8 = 3,  /* blockwise int8, per-block scale ("8bit") */
    AIR_DT_NF4 = 4, /* bitsandbytes NF4, blocks of 64, absmax per block ("4bit") */
    AIR_DT_COUNT
} air_dtype;

const char *air_dtype_name(air_dtype t);
/* Elements per block (1 for f32/f16/bf16). */
int air_dtype_block(air_dtype t);
/* Bytes of one row of n elements; n must be a multiple of the block size. */
size_t air_dtype_row_bytes(air_dtype t, int64_t n);

/* fp16 / bf16 scalar conversions (bf16 -> f32 is exact; f32 -> bf16 rounds
 * to nearest even, as torch does). */
float air_f16_to_f32(uint16_t h);
uint16_t air_f32_to_f16(float f);
float air_bf16_to_f32(uint16_t h);
uint16_t air_f32_to_bf16(float f);

/* Converts one row of n elements of `t` to fp32. */
void air_row_to_f32(air_dtype t, const void *src, float *dst, int64_t n);
/* Quantizes / converts one fp32 row of n elements into `t` (the store writer
 * uses it; for NF4 the result equals bitsandbytes' quantize_4bit). */
void air_row_from_f32(air_dtype t, const float *src, void *dst, int64_t n);

/* y (rows, n_out) = x (rows, n_in) @ W^T, W (n_out, n_in) of type wt.
 * Work is split over the pool's threads by output rows. pool may be NULL
 * (single-threaded). */
void air_matmul(air_pool *pool, air_dtype wt, const void *W, int n_out, int n_in, const float *x,
                int rows, float *y);

/* One output of air_matmul_n: y (rows, n_out) = x @ W^T, W of type wt. */
typedef struct {
    air_dtype wt;
    const void *W;
    int n_out;
    float *y;
} air_mm_out;
#define AIR_MM_MAX_OUTS 4

/* Several matmuls of the same x (rows, n_in), such as Q, K and V: x is
 * prepared (quantized) once and the output rows of all of them are shared
 * out in one pool run. Each y is exactly what air_matmul would give.
 * n_outs <= AIR_MM_MAX_OUTS. */
void air_matmul_n(air_pool *pool, const air_mm_out *outs, int n_outs, int n_in, const float *x,
                  int rows);

/* y (n) = x (n) / rms(x) * w (n): rms = sqrt(mean(x^2) + eps), all fp32. */
void air_rmsnorm(float *y, const float *x, const float *w, int n, float eps);

/* out (n) = silu(gate (n)) * up (n), silu(v) = v / (1 + exp(-v)). */
void air_silu_mul(float *out, const float *gate, const float *up, int n);

/* x (n) = softmax(x (n)), in place, max-subtracted. */
void air_softmax(float *x, int n);

/* Returns sum_i a[i] * b[i]. */
float air_dot_f32(const float *a, const float *b, int n);

/* y (n) += alpha * x (n). */
void air_axpy_f32(float *y, float alpha, const float *x, int n);

/* Instruction sets. */
typedef enum { AIR_ISA_REF = 0, AIR_ISA_AVX2 = 1, AIR_ISA_AVX512 = 2, AIR_ISA_NEON = 3 } air_isa;
/* The ISA in use (best one the CPU supports unless forced). */
air_isa air_kernels_isa(void);
const char *air_isa_name(air_isa isa);
/* 1 if this CPU and build support `isa`. */
int air_kernels_isa_supported(air_isa isa);
/* Forces an ISA (tests, benchmarks). Returns 0 if unsupported. Not
 * thread-safe: call before work starts. */
int air_kernels_force_isa(air_isa isa);

#endif
