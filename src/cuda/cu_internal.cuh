/*
 * cu_internal.cuh - the plugin's context and its error reporting, shared by
 * plugin.cu (memory, streams, events) and kernels.cu (the ops).
 *
 * Every CUDA runtime call goes through CU_TRY, which records the call, the
 * file and line and CUDA's message in the context and makes the function
 * return 1. Kernel launches are checked with cudaGetLastError() at once
 * (bad launch configurations); errors inside a kernel surface at the next
 * synchronizing call, which is checked the same way.
 */
#ifndef AIR_CUDA_CU_INTERNAL_CUH
#define AIR_CUDA_CU_INTERNAL_CUH

#include <cuda_runtime.h>
#include <stdio.h>

#include "cuda_abi.h"

struct air_cu_ctx {
    int device;
    cudaStream_t stream[2];
    cudaEvent_t event[AIR_CU_EVENTS];
    char err[512];
    /* attention's split-K partials, grown on demand */
    float *d_att_part;
    size_t att_part_floats;
};

int air_cu_fail(air_cu_ctx *ctx, const char *what, cudaError_t e, const char *file, int line);

#define CU_TRY(ctx, call)                                                                          \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return air_cu_fail((ctx), #call, e_, __FILE__, __LINE__);                              \
    } while (0)

/* After a kernel launch. */
#define CU_LAUNCHED(ctx, name) CU_TRY(ctx, cudaGetLastError())

/* The ops (kernels.cu). */
int air_cu_matmul(air_cu_ctx *ctx, int wt, const void *d_w, int n_out, int n_in, const float *d_x,
                  int rows, float *d_y);
int air_cu_rmsnorm(air_cu_ctx *ctx, float *d_y, const float *d_x, const float *d_w, int n, int rows,
                   float eps, const int32_t *d_map);
int air_cu_rope(air_cu_ctx *ctx, float *d_v, int rows, int n_heads, int head_dim,
                const float *d_cos, const float *d_sin);
int air_cu_silu_mul(air_cu_ctx *ctx, float *d_out, const float *d_gate, const float *d_up,
                    int64_t n);
int air_cu_add(air_cu_ctx *ctx, float *d_y, const float *d_x, int64_t n);
int air_cu_add_bias(air_cu_ctx *ctx, float *d_y, const float *d_b, int rows, int n);
int air_cu_kv_store(air_cu_ctx *ctx, float *const *d_kp, float *const *d_vp, const int32_t *d_slot,
                    const float *d_k, const float *d_v, int rows, int kv_dim);
int air_cu_attention(air_cu_ctx *ctx, const air_cu_attn *a);

#endif
