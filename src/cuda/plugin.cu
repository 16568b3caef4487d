/*
 * plugin.cu - the CUDA plugin's entry point: device probing, the context
 * (a compute stream, a copy stream, events), memory, copies and the
 * copy-floor measurement. The ops are in kernels.cu.
 */
#include <stdlib.h>
#include <string.h>

#include "cu_internal.cuh"

int air_cu_fail(air_cu_ctx *ctx, const char *what, cudaError_t e, const char *file, int line) {
    if (ctx)
        snprintf(ctx->err, sizeof ctx->err, "CUDA error %d (%s: %s) in %s at %s:%d", (int)e,
                 cudaGetErrorName(e), cudaGetErrorString(e), what, file, line);
    return 1;
}

/* A probe or create failure, into the caller's buffer. */
static int say(char *msg, size_t cap, int code, const char *fmt, cudaError_t e) {
    if (msg && cap)
        snprintf(msg, cap, fmt, cudaGetErrorName(e), cudaGetErrorString(e));
    return code;
}

static int probe(air_cu_info *info, char *msg, size_t cap) {
    memset(info, 0, sizeof *info);
    if (msg && cap)
        msg[0] = 0;
    cudaRuntimeGetVersion(&info->runtime_version);
    cudaError_t e = cudaDriverGetVersion(&info->driver_version);
    if (e != cudaSuccess || info->driver_version == 0) {
        if (msg && cap)
            snprintf(msg, cap, "no NVIDIA driver found (libcuda.so could not be loaded)");
        return AIR_CU_NO_DRIVER;
    }
    if (info->driver_version < info->runtime_version) {
        if (msg && cap)
            snprintf(msg, cap,
                     "the NVIDIA driver supports CUDA %d.%d, older than the CUDA %d.%d "
                     "this plugin was built with",
                     info->driver_version / 1000, info->driver_version % 1000 / 10,
                     info->runtime_version / 1000, info->runtime_version % 1000 / 10);
        return AIR_CU_OLD_DRIVER;
    }
    int n = 0;
    e = cudaGetDeviceCount(&n);
    if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0))
        return say(msg, cap, AIR_CU_NO_DEVICE, "the NVIDIA driver reports no GPU (%s: %s)",
                   e == cudaSuccess ? cudaErrorNoDevice : e);
    if (e == cudaErrorInsufficientDriver)
        return say(msg, cap, AIR_CU_OLD_DRIVER, "the NVIDIA driver is too old (%s: %s)", e);
    if (e != cudaSuccess)
        return say(msg, cap, AIR_CU_FAILED, "cudaGetDeviceCount failed (%s: %s)", e);
    info->n_devices = n;
    cudaDeviceProp p;
    if ((e = cudaGetDeviceProperties(&p, 0)) != cudaSuccess)
        return say(msg, cap, AIR_CU_FAILED, "cudaGetDeviceProperties failed (%s: %s)", e);
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->major = p.major;
    info->minor = p.minor;
    info->n_sm = p.multiProcessorCount;
    info->total_mem = p.totalGlobalMem;
    size_t fr = 0, tot = 0;
    if ((e = cudaSetDevice(0)) != cudaSuccess || (e = cudaMemGetInfo(&fr, &tot)) != cudaSuccess)
        return say(msg, cap, AIR_CU_FAILED, "cannot use GPU 0 (%s: %s)", e);
    info->free_mem = fr;
    return AIR_CU_OK;
}

static void ctx_free(air_cu_ctx *ctx) {
    if (!ctx)
        return;
    cudaSetDevice(ctx->device);
    for (int i = 0; i < 2; i++)
        if (ctx->stream[i]) {
            cudaStreamSynchronize(ctx->stream[i]);
            cudaStreamDestroy(ctx->stream[i]);
        }
    for (int i = 0; i < AIR_CU_EVENTS; i++)
        if (ctx->event[i])
            cudaEventDestroy(ctx->event[i]);
    cudaFree(ctx->d_att_part);
    free(ctx);
}

static int ctx_create(int device, air_cu_ctx **out, char *msg, size_t cap) {
    *out = NULL;
    air_cu_ctx *ctx = (air_cu_ctx *)calloc(1, sizeof *ctx);
    if (!ctx) {
        snprintf(msg, cap, "out of host memory");
        return 1;
    }
    ctx->device = device;
    cudaError_t e = cudaSetDevice(device);
    for (int i = 0; i < 2 && e == cudaSuccess; i++)
        e = cudaStreamCreateWithFlags(&ctx->stream[i], cudaStreamNonBlocking);
    for (int i = 0; i < AIR_CU_EVENTS && e == cudaSuccess; i++)
        e = cudaEventCreateWithFlags(&ctx->event[i], cudaEventDisableTiming);
    if (e != cudaSuccess) {
        say(msg, cap, 1, "cannot create CUDA streams and events (%s: %s)", e);
        ctx_free(ctx);
        return 1;
    }
    *out = ctx;
    return 0;
}

static const char *ctx_error(const air_cu_ctx *ctx) {
    return ctx->err;
}

static int mem_info(air_cu_ctx *ctx, uint64_t *fr, uint64_t *tot) {
    size_t f = 0, t = 0;
    CU_TRY(ctx, cudaMemGetInfo(&f, &t));
    *fr = f;
    *tot = t;
    return 0;
}

static int alloc(air_cu_ctx *ctx, size_t bytes, void **out) {
    *out = NULL;
    cudaError_t e = cudaMalloc(out, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        *out = NULL;
        cudaGetLastError(); /* clear the sticky-free out-of-memory error */
        snprintf(ctx->err, sizeof ctx->err, "cudaMalloc of %zu bytes failed (%s: %s)", bytes,
                 cudaGetErrorName(e), cudaGetErrorString(e));
        return 1;
    }
    return 0;
}

static void dfree(air_cu_ctx *ctx, void *p) {
    if (p)
        cudaFree(p);
}

static int host_register(air_cu_ctx *ctx, void *p, size_t bytes) {
    CU_TRY(ctx, cudaHostRegister(p, bytes, cudaHostRegisterDefault));
    return 0;
}

static void host_unregister(air_cu_ctx *ctx, void *p) {
    cudaHostUnregister(p);
}

static cudaStream_t stream_of(air_cu_ctx *ctx, int s) {
    return ctx->stream[s == AIR_CU_COPY ? 1 : 0];
}

static int h2d(air_cu_ctx *ctx, int s, void *dst, const void *src, size_t bytes) {
    CU_TRY(ctx, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_of(ctx, s)));
    return 0;
}

static int d2h(air_cu_ctx *ctx, int s, void *dst, const void *src, size_t bytes) {
    CU_TRY(ctx, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_of(ctx, s)));
    return 0;
}

static int bad_event(air_cu_ctx *ctx, int ev) {
    snprintf(ctx->err, sizeof ctx->err, "event %d outside 0..%d", ev, AIR_CU_EVENTS - 1);
    return 1;
}

static int record(air_cu_ctx *ctx, int s, int ev) {
    if (ev < 0 || ev >= AIR_CU_EVENTS)
        return bad_event(ctx, ev);
    CU_TRY(ctx, cudaEventRecord(ctx->event[ev], stream_of(ctx, s)));
    return 0;
}

static int wait(air_cu_ctx *ctx, int s, int ev) {
    if (ev < 0 || ev >= AIR_CU_EVENTS)
        return bad_event(ctx, ev);
    CU_TRY(ctx, cudaStreamWaitEvent(stream_of(ctx, s), ctx->event[ev], 0));
    return 0;
}

static int event_sync(air_cu_ctx *ctx, int ev) {
    if (ev < 0 || ev >= AIR_CU_EVENTS)
        return bad_event(ctx, ev);
    CU_TRY(ctx, cudaEventSynchronize(ctx->event[ev]));
    return 0;
}

static int sync(air_cu_ctx *ctx, int s) {
    CU_TRY(ctx, cudaStreamSynchronize(stream_of(ctx, s)));
    return 0;
}

/* Host -> device from page-locked memory and device -> device, timed with
 * events on the compute stream; the best of `reps` copies. */
static int bandwidth(air_cu_ctx *ctx, size_t bytes, int reps, double *h2d_gbs, double *d2d_gbs) {
    *h2d_gbs = *d2d_gbs = 0;
    void *h = NULL, *a = NULL, *b = NULL;
    cudaEvent_t t0 = NULL, t1 = NULL;
    int rc = 1;
    cudaStream_t s = ctx->stream[0];
    cudaError_t e;
#define BW_TRY(call)                                                                               \
    if ((e = (call)) != cudaSuccess) {                                                             \
        air_cu_fail(ctx, #call, e, __FILE__, __LINE__);                                            \
        goto out;                                                                                  \
    }
    BW_TRY(cudaMallocHost(&h, bytes));
    BW_TRY(cudaMalloc(&a, bytes));
    BW_TRY(cudaMalloc(&b, bytes));
    BW_TRY(cudaEventCreate(&t0));
    BW_TRY(cudaEventCreate(&t1));
    memset(h, 1, bytes);
    for (int pass = 0; pass < 2; pass++) {
        float best = 0;
        for (int i = 0; i < reps + 1; i++) { /* the first copy warms up */
            BW_TRY(cudaEventRecord(t0, s));
            if (pass == 0) {
                BW_TRY(cudaMemcpyAsync(a, h, bytes, cudaMemcpyHostToDevice, s));
            } else {
                BW_TRY(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s));
            }
            BW_TRY(cudaEventRecord(t1, s));
            BW_TRY(cudaEventSynchronize(t1));
            float ms = 0;
            BW_TRY(cudaEventElapsedTime(&ms, t0, t1));
            if (i > 0 && (best == 0 || ms < best))
                best = ms;
        }
        double gbs = best > 0 ? (double)bytes / (best * 1e-3) / 1e9 : 0;
        if (pass == 0)
            *h2d_gbs = gbs;
        else
            *d2d_gbs = 2 * gbs; /* read and written */
    }
    rc = 0;
out:
#undef BW_TRY
    if (t0)
        cudaEventDestroy(t0);
    if (t1)
        cudaEventDestroy(t1);
    cudaFree(a);
    cudaFree(b);
    cudaFreeHost(h);
    return rc;
}

static const air_cuda_api api = {
    AIR_CUDA_ABI_VERSION,
    CUDART_VERSION,
    probe,
    ctx_create,
    ctx_free,
    ctx_error,
    mem_info,
    alloc,
    dfree,
    host_register,
    host_unregister,
    h2d,
    d2h,
    record,
    wait,
    event_sync,
    sync,
    air_cu_matmul,
    air_cu_rmsnorm,
    air_cu_rope,
    air_cu_silu_mul,
    air_cu_add,
    air_cu_add_bias,
    air_cu_kv_store,
    air_cu_attention,
    bandwidth,
};

extern "C" __attribute__((visibility("default"))) const air_cuda_api *air_cuda_plugin_v1(void) {
    return &api;
}
