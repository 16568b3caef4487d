/*
 * cuda_abi.h - the interface between libairllm and its CUDA plugin
 * (libairllm_cuda.so), a plain C function table.
 *
 * All CUDA code lives in the plugin, built by nvcc when AIR_CUDA is on;
 * libairllm and the airllm command never link the CUDA libraries. At
 * `--device cuda|auto` the library dlopens the plugin (cuda_load.c), looks up
 * AIR_CUDA_PLUGIN_SYMBOL and checks the table's abi field. The plugin links
 * the CUDA runtime statically, so the only library it needs at run time is
 * the driver's libcuda.so.
 *
 * Pointers named d_* are device memory; h_* are host memory. Every function
 * returns 0 on success; on failure it returns non-zero and ctx_error(ctx)
 * says which CUDA call failed, where, and CUDA's own message. Ops run in
 * order on the context's compute stream (stream AIR_CU_COMPUTE); uploads
 * may run on the copy stream (AIR_CU_COPY) and are ordered against compute
 * with events.
 */
#ifndef AIR_CUDA_CUDA_ABI_H
#define AIR_CUDA_CUDA_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AIR_CUDA_ABI_VERSION 1
#define AIR_CUDA_PLUGIN_SYMBOL "air_cuda_plugin_v1"

/* Weight formats: the values of air_dtype (kernels/ops.h). */
enum { AIR_CU_F32 = 0, AIR_CU_F16 = 1, AIR_CU_BF16 = 2, AIR_CU_Q8 = 3, AIR_CU_NF4 = 4 };

/* Streams of a context. */
enum { AIR_CU_COMPUTE = 0, AIR_CU_COPY = 1 };
/* Events of a context, numbered 0 .. AIR_CU_EVENTS - 1. */
#define AIR_CU_EVENTS 8

/* What probe() found. */
enum {
    AIR_CU_OK = 0,
    AIR_CU_NO_DRIVER = 1,  /* libcuda.so missing or unusable */
    AIR_CU_OLD_DRIVER = 2, /* the driver is older than the plugin's CUDA runtime */
    AIR_CU_NO_DEVICE = 3,  /* a driver but no GPU */
    AIR_CU_FAILED = 4      /* any other CUDA error */
};

typedef struct {
    char name[256];
    int major, minor; /* compute capability */
    int n_sm;
    uint64_t total_mem, free_mem;
    int driver_version, runtime_version; /* 1000 * major + 10 * minor */
    int n_devices;
} air_cu_info;

/* Attention of `rows` query rows over their sequences' caches, one layer:
 *   out (rows, n_head * head_dim) = softmax(q k^T * scale) v, grouped-query.
 * Row r reads keys and values at k[r] + s * n_head_kv * head_dim (a device
 * array of per-row plane pointers), for the slots s given by keys[r] =
 * {lo, hi, n_extra, off}: the slots lo .. hi-1, then extra[off .. off +
 * n_extra). max_keys: the largest (hi - lo + n_extra) of any row (it sets
 * how many splits of the keys run in parallel). */
typedef struct {
    int rows, n_head, n_head_kv, head_dim, max_keys;
    float scale;
    const float *d_q;
    float *d_out;
    const float *const *d_k;
    const float *const *d_v;
    const int32_t *d_keys;  /* (rows, 4) */
    const int32_t *d_extra; /* may be NULL when no row has extra slots */
} air_cu_attn;

typedef struct air_cu_ctx air_cu_ctx;

typedef struct {
    int abi; /* AIR_CUDA_ABI_VERSION */
    /* The CUDA runtime version the plugin was built with (1000 * major + 10 * minor). */
    int built_runtime;
    /* Looks for a driver and GPUs: AIR_CU_OK with *info for device 0, or
     * another AIR_CU_* code with a message in msg. */
    int (*probe)(air_cu_info *info, char *msg, size_t cap);
    /* A context on `device`: two streams, events, and the kernel tables. */
    int (*ctx_create)(int device, air_cu_ctx **out, char *msg, size_t cap);
    void (*ctx_free)(air_cu_ctx *ctx); /* NULL: no-op; waits for pending work */
    const char *(*ctx_error)(const air_cu_ctx *ctx);
    int (*mem_info)(air_cu_ctx *ctx, uint64_t *free_bytes, uint64_t *total_bytes);

    int (*alloc)(air_cu_ctx *ctx, size_t bytes, void **d_out);
    void (*free)(air_cu_ctx *ctx, void *d_p); /* NULL: no-op */
    /* Page-locks host memory so copies from it are DMA'd asynchronously. */
    int (*host_register)(air_cu_ctx *ctx, void *h_p, size_t bytes);
    void (*host_unregister)(air_cu_ctx *ctx, void *h_p);
    int (*h2d)(air_cu_ctx *ctx, int stream, void *d_dst, const void *h_src, size_t bytes);
    int (*d2h)(air_cu_ctx *ctx, int stream, void *h_dst, const void *d_src, size_t bytes);
    int (*record)(air_cu_ctx *ctx, int stream, int event);
    int (*wait)(air_cu_ctx *ctx, int stream, int event); /* stream waits for event */
    int (*event_sync)(air_cu_ctx *ctx, int event);       /* host waits for event */
    int (*sync)(air_cu_ctx *ctx, int stream);            /* host waits for stream */

    /* Ops on the compute stream (semantics of kernels/ops.h and model/): */
    /* d_y (rows, n_out) = d_x (rows, n_in) @ W^T, W (n_out, n_in) of type wt. */
    int (*matmul)(air_cu_ctx *ctx, int wt, const void *d_w, int n_out, int n_in, const float *d_x,
                  int rows, float *d_y);
    /* Row i of d_y (rows, n) = rmsnorm(row map[i] of d_x) * d_w; d_map NULL:
     * row i. d_y may equal d_x. */
    int (*rmsnorm)(air_cu_ctx *ctx, float *d_y, const float *d_x, const float *d_w, int n, int rows,
                   float eps, const int32_t *d_map);
    /* Rotate-half RoPE on rows of n_heads heads of head_dim values, with each
     * row's cos / sin (rows, head_dim / 2). */
    int (*rope)(air_cu_ctx *ctx, float *d_v, int rows, int n_heads, int head_dim,
                const float *d_cos, const float *d_sin);
    /* d_out (n) = silu(d_gate) * d_up; d_out may equal d_gate. */
    int (*silu_mul)(air_cu_ctx *ctx, float *d_out, const float *d_gate, const float *d_up,
                    int64_t n);
    int (*add)(air_cu_ctx *ctx, float *d_y, const float *d_x, int64_t n); /* y += x */
    /* d_y (rows, n) += d_b (n) on every row. */
    int (*add_bias)(air_cu_ctx *ctx, float *d_y, const float *d_b, int rows, int n);
    /* Row r of d_k / d_v (rows, kv_dim) into plane d_kp[r] / d_vp[r] at slot d_slot[r]. */
    int (*kv_store)(air_cu_ctx *ctx, float *const *d_kp, float *const *d_vp, const int32_t *d_slot,
                    const float *d_k, const float *d_v, int rows, int kv_dim);
    int (*attention)(air_cu_ctx *ctx, const air_cu_attn *a);

    /* The copy floor: pinned host -> device bandwidth (GB/s, best of reps
     * copies of `bytes`) and device memory bandwidth (bytes read + written
     * by a device-to-device copy, GB/s). */
    int (*bandwidth)(air_cu_ctx *ctx, size_t bytes, int reps, double *h2d_gbs, double *d2d_gbs);
} air_cuda_api;

/* The one symbol the plugin exports. */
typedef const air_cuda_api *(*air_cuda_plugin_fn)(void);

#ifdef __cplusplus
}
#endif

#endif
