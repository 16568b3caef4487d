/*
 * kernels.h - internal: the per-ISA function table behind ops.h.
 *
 * air_matmul() (dispatch.c) splits the output rows of W into chunks, hands
 * them to the pool's threads, and each chunk calls the table's mm[wt] kernel
 * on the range [o0, o1). Kernels with mm_xq[wt] set consume activations
 * already quantized to int8 blocks, which air_matmul prepares once per call:
 * rows of n_in / 32 air_block_xq (quantize_x), or, for a table that sets
 * xq_row_bytes, rows of its own layout of the same int8 values
 * (quantize_row), xq_row_bytes(n_in) bytes each, 64-byte aligned.
 */
#ifndef AIR_KERNELS_KERNELS_H
#define AIR_KERNELS_KERNELS_H

#include "kernels/ops.h"
#include "quant/quant.h"

/* y (rows, n_out)[:, o0:o1] = x (rows, n_in) @ W[o0:o1]^T. x is fp32 rows or,
 * for mm_xq kernels, air_block_xq rows. */
typedef void (*air_mm_fn)(const void *W, int n_in, const void *x, int rows, float *y, int n_out,
                          int o0, int o1);

typedef struct {
    air_isa isa;
    air_mm_fn mm[AIR_DT_COUNT];
    unsigned char mm_xq[AIR_DT_COUNT];
    void (*quantize_x)(const float *x, air_block_xq *dst, int64_t n);
    size_t (*xq_row_bytes)(int n_in); /* NULL: rows of air_block_xq */
    void (*quantize_row)(const float *x, void *dst, int n_in);
    /* the weight quantizers of air_row_from_f32: the same bytes as the
     * reference air_q8_quantize_row / air_nf4_quantize_row */
    void (*quantize_q8)(const float *x, air_block_q8 *dst, int64_t n);
    void (*quantize_nf4)(const float *x, air_block_nf4 *dst, int64_t n);
    /* the 16-bit float rows of air_row_to_f32 (exact: the reference's bits,
     * NaN payloads included) */
    void (*bf16_to_f32)(const uint16_t *x, float *y, int64_t n);
    void (*f16_to_f32)(const uint16_t *x, float *y, int64_t n);
    void (*rmsnorm)(float *y, const float *x, const float *w, int n, float eps);
    void (*silu_mul)(float *out, const float *gate, const float *up, int n);
    void (*softmax)(float *x, int n);
    float (*dot)(const float *a, const float *b, int n);
    void (*axpy)(float *y, float alpha, const float *x, int n);
} air_kernel_table;

extern const air_kernel_table air_ktab_ref;

/* The reference kernels, for SIMD tables to fall back on. */
void air_ref_mm_f32(const void *W, int n_in, const void *x, int rows, float *y, int n_out, int o0,
                    int o1);
void air_ref_mm_f16(const void *W, int n_in, const void *x, int rows, float *y, int n_out, int o0,
                    int o1);
void air_ref_mm_bf16(const void *W, int n_in, const void *x, int rows, float *y, int n_out, int o0,
                     int o1);
void air_ref_mm_q8(const void *W, int n_in, const void *x, int rows, float *y, int n_out, int o0,
                   int o1);
void air_ref_mm_nf4(const void *W, int n_in, const void *x, int rows, float *y, int n_out, int o0,
                    int o1);
void air_ref_rmsnorm(float *y, const float *x, const float *w, int n, float eps);
void air_ref_silu_mul(float *out, const float *gate, const float *up, int n);
void air_ref_softmax(float *x, int n);
float air_ref_dot(const float *a, const float *b, int n);
void air_ref_axpy(float *y, float alpha, const float *x, int n);
void air_ref_bf16_to_f32(const uint16_t *x, float *y, int64_t n);
void air_ref_f16_to_f32(const uint16_t *x, float *y, int64_t n);
#if defined(__x86_64__) || defined(_M_X64)
#define AIR_HAVE_X86 1
extern const air_kernel_table air_ktab_avx2;
extern const air_kernel_table air_ktab_avx512;
#endif
#if defined(__aarch64__)
#define AIR_HAVE_NEON 1
extern const air_kernel_table air_ktab_neon;
#endif

/* The table in use. */
const air_kernel_table *air_kernels_table(void);

/* Bytes of weight rows a prefill kernel keeps hot while it sweeps the
 * activation rows (about half of a typical L2). */
#define AIR_MM_L2_BYTES (256 * 1024)

/* The loop nest shared by the SIMD matmuls, inside a kernel with parameters
 * (W, n_in, x, rows, y, n_out, o0, o1). TILE(MR, NR, o, r) computes outputs
 * (r .. r+NR-1, o .. o+MR-1), each with the same summation order whatever the
 * tile shape. Decode (rows = 1) takes 4x1 tiles; prefill takes 2x4 tiles over
 * groups of weight rows small enough to stay in L2 while all activation rows
 * sweep them. */
/* TILE over weight rows [oo, oe) in pairs (an odd one last), for the NR
 * activation rows from r. */
#define AIR_MM_PAIRS(TILE, NR, oo, oe, r)                                                          \
    do {                                                                                           \
        int o_ = (oo);                                                                             \
        for (; o_ + 2 <= (oe); o_ += 2)                                                            \
            TILE(2, NR, o_, r);                                                                    \
        if (o_ < (oe))                                                                             \
            TILE(1, NR, o_, r);                                                                    \
    } while (0)

/* No tiles wider than 4 activation rows (the hook of AIR_MM_DRIVE_WIDE). */
#define AIR_MM_NO_WIDE(TILE, oo, oe, r)

/* AIR_MM_DRIVE with a hook WIDE(TILE, oo, oe, r) that may first take wider
 * row tiles (advancing r), e.g. 8 activation rows per weight pair. */
#define AIR_MM_DRIVE_WIDE(TILE, row_bytes, WIDE)                                                   \
    do {                                                                                           \
        if (rows == 1) {                                                                           \
            int o = o0;                                                                            \
            for (; o + 4 <= o1; o += 4)                                                            \
                TILE(4, 1, o, 0);                                                                  \
            for (; o < o1; o++)                                                                    \
                TILE(1, 1, o, 0);                                                                  \
            break;                                                                                 \
        }                                                                                          \
        int ob = (int)(AIR_MM_L2_BYTES / (row_bytes)) & ~1;                                        \
        if (ob < 2)                                                                                \
            ob = 2;                                                                                \
        for (int oo = o0; oo < o1; oo += ob) {                                                     \
            int oe = oo + ob < o1 ? oo + ob : o1, r = 0;                                           \
            WIDE(TILE, oo, oe, r);                                                                 \
            for (; r + 4 <= rows; r += 4)                                                          \
                AIR_MM_PAIRS(TILE, 4, oo, oe, r);                                                  \
            for (; r < rows; r++)                                                                  \
                AIR_MM_PAIRS(TILE, 1, oo, oe, r);                                                  \
        }                                                                                          \
    } while (0)

#define AIR_MM_DRIVE(TILE, row_bytes) AIR_MM_DRIVE_WIDE(TILE, row_bytes, AIR_MM_NO_WIDE)

#endif
