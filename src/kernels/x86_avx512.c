/*
 * x86_avx512.c - AVX512 kernels (placeholder: the reference kernels until the
 * SIMD versions land).
 */
#include "kernels/kernels.h"

const air_kernel_table air_ktab_avx512 = {
    .isa = AIR_ISA_AVX512,
    .mm = {air_ref_mm_f32, air_ref_mm_f16, air_ref_mm_bf16, air_ref_mm_q8, air_ref_mm_nf4},
    .mm_xq = {0, 0, 0, 0, 0},
    .quantize_x = air_xq_quantize_row,
    .rmsnorm = air_ref_rmsnorm,
    .silu_mul = air_ref_silu_mul,
    .softmax = air_ref_softmax,
    .dot = air_ref_dot,
    .axpy = air_ref_axpy,
};
