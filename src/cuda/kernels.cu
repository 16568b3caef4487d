/*
 * kernels.cu - the CUDA ops of the forward pass, with the semantics of the
 * CPU kernels (kernels/ops.h, model/llama.c):
 *
 *   matmul     y (rows, n_out) = x (rows, n_in) @ W^T for W in f32, f16,
 *              bf16, Q8 ("8bit") or NF4 ("4bit"), dequantized on the fly to
 *              exactly the fp32 values of air_row_to_f32, fp32 accumulation.
 *              Decode (rows <= 8): one warp per output row (GEMV). Prefill:
 *              64 x 64 tiles, W dequantized into shared memory (GEMM).
 *   rmsnorm    rows of n, one block per row
 *   rope       rotate-half on every head of every row
 *   silu_mul, add, add_bias, kv_store   elementwise
 *   attention  split-K: each block scores up to ATT_CHUNK keys of one
 *              (row, head), keeps its max, sum and weighted values; a
 *              second kernel merges the splits (log-sum-exp).
 *
 * Weights are read 8 consecutive elements ("a chunk") at a time; this needs
 * n_in % 8 == 0 (always true for Q8 and NF4, whose blocks are 32 and 64);
 * other f32/f16/bf16 shapes take a plain one-thread-per-output kernel.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#include "cu_internal.cuh"
#include "quant/nf4_values.h"

/* bitsandbytes' NF4 code values (quant/nf4.c) */
__constant__ float c_nf4[16] = AIR_NF4_VALUES;

#define Q8_BYTES 34  /* fp16 scale + 32 int8 codes */
#define NF4_BYTES 36 /* fp32 absmax + 32 bytes of nibbles */

static size_t row_bytes(int wt, int n_in) {
    switch (wt) {
    case AIR_CU_F32:
        return (size_t)n_in * 4;
    case AIR_CU_F16:
    case AIR_CU_BF16:
        return (size_t)n_in * 2;
    case AIR_CU_Q8:
        return (size_t)(n_in / 32) * Q8_BYTES;
    case AIR_CU_NF4:
        return (size_t)(n_in / 64) * NF4_BYTES;
    }
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Weight decoding                                                           */
/* ------------------------------------------------------------------------- */

__device__ __forceinline__ float bf16_lo(uint32_t u) {
    return __uint_as_float(u << 16);
}
__device__ __forceinline__ float bf16_hi(uint32_t u) {
    return __uint_as_float(u & 0xffff0000u);
}

/* Elements 8c .. 8c+7 of a weight row (n_in % 8 == 0) as fp32. lut: the NF4
 * values in shared memory. Alignment: rows start at multiples of 16 bytes
 * for f16/bf16 and 32 for f32 (n_in % 8 == 0 and 256-byte aligned tensors),
 * Q8 blocks at even offsets, NF4 blocks at multiples of 4. */
template <int DT>
__device__ __forceinline__ void load8(const uint8_t *row, int c, float w[8], const float *lut) {
    if (DT == AIR_CU_F32) {
        const float4 *p = reinterpret_cast<const float4 *>(row) + 2 * c;
        float4 a = p[0], b = p[1];
        w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w;
        w[4] = b.x, w[5] = b.y, w[6] = b.z, w[7] = b.w;
    } else if (DT == AIR_CU_F16) {
        uint4 u = reinterpret_cast<const uint4 *>(row)[c];
        uint32_t v[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; i++) { /* element 2i in the low half */
            w[2 * i] = __half2float(__ushort_as_half((unsigned short)(v[i] & 0xffffu)));
            w[2 * i + 1] = __half2float(__ushort_as_half((unsigned short)(v[i] >> 16)));
        }
    } else if (DT == AIR_CU_BF16) {
        uint4 u = reinterpret_cast<const uint4 *>(row)[c];
        w[0] = bf16_lo(u.x), w[1] = bf16_hi(u.x), w[2] = bf16_lo(u.y), w[3] = bf16_hi(u.y);
        w[4] = bf16_lo(u.z), w[5] = bf16_hi(u.z), w[6] = bf16_lo(u.w), w[7] = bf16_hi(u.w);
    } else if (DT == AIR_CU_Q8) {
        const uint8_t *b = row + (size_t)(c >> 2) * Q8_BYTES;
        float d = __half2float(__ushort_as_half(*reinterpret_cast<const unsigned short *>(b)));
        const uint16_t *q = reinterpret_cast<const uint16_t *>(b + 2 + 8 * (c & 3));
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint16_t v = q[i];
            w[2 * i] = d * (float)(int8_t)(v & 0xff);
            w[2 * i + 1] = d * (float)(int8_t)(v >> 8);
        }
    } else { /* NF4: byte j holds element j (low nibble) and j + 32 (high) */
        int part = c & 7;
        const uint8_t *b = row + (size_t)(c >> 3) * NF4_BYTES;
        float amax = *reinterpret_cast<const float *>(b);
        const uint32_t *q = reinterpret_cast<const uint32_t *>(b + 4 + 8 * (part & 3));
        uint32_t q0 = q[0], q1 = q[1];
        int sh = part >= 4 ? 4 : 0;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            w[i] = lut[(q0 >> (8 * i + sh)) & 15] * amax;
            w[4 + i] = lut[(q1 >> (8 * i + sh)) & 15] * amax;
        }
    }
}

/* Element k of a weight row (any n_in: the fallback path). */
template <int DT>
__device__ __forceinline__ float load1(const uint8_t *row, int k, const float *lut) {
    if (DT == AIR_CU_F32)
        return reinterpret_cast<const float *>(row)[k];
    if (DT == AIR_CU_F16)
        return __half2float(__ushort_as_half(reinterpret_cast<const unsigned short *>(row)[k]));
    if (DT == AIR_CU_BF16)
        return __uint_as_float((uint32_t) reinterpret_cast<const uint16_t *>(row)[k] << 16);
    if (DT == AIR_CU_Q8) {
        const uint8_t *b = row + (size_t)(k / 32) * Q8_BYTES;
        return __half2float(__ushort_as_half(*reinterpret_cast<const unsigned short *>(b))) *
               (float)(int8_t)b[2 + k % 32];
    }
    const uint8_t *b = row + (size_t)(k / 64) * NF4_BYTES;
    int j = k % 64;
    int code = j < 32 ? (b[4 + j] & 15) : (b[4 + j - 32] >> 4);
    return lut[code] * *reinterpret_cast<const float *>(b);
}

/* Elements 8c .. 8c+7 of activation row r of x (rows of n_in floats,
 * n_in % 8 == 0), or zeros when !ok. */
__device__ __forceinline__ void load_x8(const float *x, int n_in, int r, int c, bool ok,
                                        float xv[8]) {
    if (ok) {
        const float4 *xp = reinterpret_cast<const float4 *>(x + (size_t)r * n_in) + 2 * c;
        float4 a = xp[0], b = xp[1];
        xv[0] = a.x, xv[1] = a.y, xv[2] = a.z, xv[3] = a.w;
        xv[4] = b.x, xv[5] = b.y, xv[6] = b.z, xv[7] = b.w;
    } else {
#pragma unroll
        for (int i = 0; i < 8; i++)
            xv[i] = 0.0f;
    }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum (or max) over the block, returned to every thread. red: 32 floats of
 * shared memory. blockDim.x must be a multiple of 32. */
template <bool MAX> __device__ float block_reduce(float v, float *red) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = MAX ? warp_max(v) : warp_sum(v);
    __syncthreads(); /* red may still be read by a previous reduction */
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : (MAX ? -INFINITY : 0.0f);
    if (warp == 0) {
        v = MAX ? warp_max(v) : warp_sum(v);
        if (lane == 0)
            red[0] = v;
    }
    __syncthreads();
    return red[0];
}

/* ------------------------------------------------------------------------- */
/* Matmul                                                                    */
/* ------------------------------------------------------------------------- */

#define GEMV_WARPS 4

/* Decode: rows <= R activation rows. Warp w of block b computes the OPW
 * outputs from o0 = (b * GEMV_WARPS + w) * OPW for every row; lanes take
 * chunks lane, lane + 32, ... so a warp reads 32 consecutive chunks of each
 * weight row at once, and each chunk of x, once in registers, serves OPW
 * weight rows (x is read from cache R * n_in * 4 bytes per OPW rows). */
template <int DT, int R, int OPW>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    gemv_kernel(const uint8_t *__restrict__ W, size_t rb, int n_in, const float *__restrict__ x,
                int rows, float *__restrict__ y, int n_out) {
    __shared__ float lut[16];
    if (threadIdx.x < 16)
        lut[threadIdx.x] = c_nf4[threadIdx.x];
    __syncthreads();
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int o0 = (blockIdx.x * GEMV_WARPS + warp) * OPW;
    if (o0 >= n_out) /* the same for the whole warp */
        return;
    float acc[OPW][R];
#pragma unroll
    for (int j = 0; j < OPW; j++)
#pragma unroll
        for (int r = 0; r < R; r++)
            acc[j][r] = 0.0f;
    int nc = n_in >> 3;
    for (int c = lane; c < nc; c += 32) {
        float xv[R][8];
#pragma unroll
        for (int r = 0; r < R; r++)
            load_x8(x, n_in, r, c, r < rows, xv[r]);
#pragma unroll
        for (int j = 0; j < OPW; j++) {
            if (o0 + j < n_out) {
                float w[8];
                load8<DT>(W + (size_t)(o0 + j) * rb, c, w, lut);
#pragma unroll
                for (int r = 0; r < R; r++) {
                    float s = w[0] * xv[r][0] + w[1] * xv[r][1] + w[2] * xv[r][2] + w[3] * xv[r][3];
                    s += w[4] * xv[r][4] + w[5] * xv[r][5] + w[6] * xv[r][6] + w[7] * xv[r][7];
                    acc[j][r] += s;
                }
            }
        }
    }
#pragma unroll
    for (int j = 0; j < OPW; j++)
#pragma unroll
        for (int r = 0; r < R; r++) {
            float s = warp_sum(acc[j][r]); /* every lane takes part */
            if (lane == 0 && r < rows && o0 + j < n_out)
                y[(size_t)r * n_out + o0 + j] = s;
        }
}

/* Launches gemv_kernel<DT, R, OPW> over n_out outputs. */
template <int DT, int R, int OPW>
static void gemv_launch(cudaStream_t s, const uint8_t *W, size_t rb, int n_in, const float *x,
                        int rows, float *y, int n_out) {
    int per_block = GEMV_WARPS * OPW;
    unsigned blocks = (unsigned)((n_out + per_block - 1) / per_block);
    gemv_kernel<DT, R, OPW><<<blocks, GEMV_WARPS * 32, 0, s>>>(W, rb, n_in, x, rows, y, n_out);
}

#define GM_BM 64 /* activation rows per block */
#define GM_BN 64 /* outputs per block */
#define GM_BK 32 /* elements of n_in per step */

/* Prefill: block (bx, by) computes outputs bx*64 .. +63 of rows by*64 .. +63.
 * 256 threads; thread (tx, ty) = (tid % 16, tid / 16) owns rows ty + 16 i and
 * outputs tx + 16 j (i, j < 4). Each step stages a 64 x 32 tile of W
 * (dequantized) and of x in shared memory, k-major. */
template <int DT>
__global__ void __launch_bounds__(256)
    gemm_kernel(const uint8_t *__restrict__ W, size_t rb, int n_in, const float *__restrict__ x,
                int rows, float *__restrict__ y, int n_out) {
    __shared__ float Ws[GM_BK][GM_BN + 4];
    __shared__ float Xs[GM_BK][GM_BM + 4];
    __shared__ float lut[16];
    int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    int o0 = blockIdx.x * GM_BN, r0 = blockIdx.y * GM_BM;
    if (tid < 16)
        lut[tid] = c_nf4[tid];
    __syncthreads();
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
            acc[i][j] = 0.0f;
    int ll = tid >> 2, cc = tid & 3; /* the tile row and chunk this thread stages */
    for (int k0 = 0; k0 < n_in; k0 += GM_BK) {
        int c = (k0 >> 3) + cc; /* chunk of 8 elements */
        bool kin = c * 8 < n_in;
        float w[8];
        int o = o0 + ll;
        if (o < n_out && kin) {
            load8<DT>(W + (size_t)o * rb, c, w, lut);
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++)
                w[i] = 0.0f;
        }
#pragma unroll
        for (int i = 0; i < 8; i++)
            Ws[cc * 8 + i][ll] = w[i];
        int r = r0 + ll;
        float xv[8];
        load_x8(x, n_in, r, c, r < rows && kin, xv);
#pragma unroll
        for (int i = 0; i < 8; i++)
            Xs[cc * 8 + i][ll] = xv[i];
        __syncthreads();
#pragma unroll 8
        for (int kk = 0; kk < GM_BK; kk++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                a[i] = Xs[kk][ty + 16 * i];
                b[i] = Ws[kk][tx + 16 * i];
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++)
                    acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int r = r0 + ty + 16 * i;
        if (r >= rows)
            continue;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int o = o0 + tx + 16 * j;
            if (o < n_out)
                y[(size_t)r * n_out + o] = acc[i][j];
        }
    }
}

/* Any n_in: one thread per (row, output). */
template <int DT>
__global__ void mm_any_kernel(const uint8_t *__restrict__ W, size_t rb, int n_in,
                              const float *__restrict__ x, int rows, float *__restrict__ y,
                              int n_out) {
    __shared__ float lut[16];
    if (threadIdx.x < 16)
        lut[threadIdx.x] = c_nf4[threadIdx.x];
    __syncthreads();
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)rows * n_out)
        return;
    int r = (int)(i / n_out), o = (int)(i % n_out);
    const uint8_t *row = W + (size_t)o * rb;
    const float *xr = x + (size_t)r * n_in;
    float acc = 0.0f;
    for (int k = 0; k < n_in; k++)
        acc += load1<DT>(row, k, lut) * xr[k];
    y[i] = acc;
}

template <int DT>
static int matmul_t(air_cu_ctx *ctx, const uint8_t *W, int n_out, int n_in, const float *x,
                    int rows, float *y) {
    cudaStream_t s = ctx->stream[0];
    size_t rb = row_bytes(DT, n_in);
    if (n_in % 8) {
        int64_t total = (int64_t)rows * n_out;
        unsigned blocks = (unsigned)((total + 255) / 256);
        mm_any_kernel<DT><<<blocks, 256, 0, s>>>(W, rb, n_in, x, rows, y, n_out);
        CU_LAUNCHED(ctx, "mm_any_kernel");
        return 0;
    }
    if (rows <= 8) { /* outputs per warp: fewer as rows take registers */
        if (rows == 1)
            gemv_launch<DT, 1, 4>(s, W, rb, n_in, x, rows, y, n_out);
        else if (rows == 2)
            gemv_launch<DT, 2, 4>(s, W, rb, n_in, x, rows, y, n_out);
        else if (rows <= 4)
            gemv_launch<DT, 4, 2>(s, W, rb, n_in, x, rows, y, n_out);
        else
            gemv_launch<DT, 8, 1>(s, W, rb, n_in, x, rows, y, n_out);
        CU_LAUNCHED(ctx, "gemv_kernel");
        return 0;
    }
    dim3 grid((unsigned)((n_out + GM_BN - 1) / GM_BN), (unsigned)((rows + GM_BM - 1) / GM_BM));
    if (grid.y > 65535) {
        snprintf(ctx->err, sizeof ctx->err, "matmul: %d rows exceed the grid limit", rows);
        return 1;
    }
    gemm_kernel<DT><<<grid, 256, 0, s>>>(W, rb, n_in, x, rows, y, n_out);
    CU_LAUNCHED(ctx, "gemm_kernel");
    return 0;
}

int air_cu_matmul(air_cu_ctx *ctx, int wt, const void *d_w, int n_out, int n_in, const float *d_x,
                  int rows, float *d_y) {
    if (rows <= 0 || n_out <= 0 || n_in <= 0) {
        snprintf(ctx->err, sizeof ctx->err, "matmul: bad shape (%d rows, %d x %d)", rows, n_out,
                 n_in);
        return 1;
    }
    if ((wt == AIR_CU_Q8 && n_in % 32) || (wt == AIR_CU_NF4 && n_in % 64)) {
        snprintf(ctx->err, sizeof ctx->err, "matmul: n_in %d is not a multiple of the %s block",
                 n_in, wt == AIR_CU_Q8 ? "8bit (32)" : "4bit (64)");
        return 1;
    }
    const uint8_t *W = (const uint8_t *)d_w;
    switch (wt) {
    case AIR_CU_F32:
        return matmul_t<AIR_CU_F32>(ctx, W, n_out, n_in, d_x, rows, d_y);
    case AIR_CU_F16:
        return matmul_t<AIR_CU_F16>(ctx, W, n_out, n_in, d_x, rows, d_y);
    case AIR_CU_BF16:
        return matmul_t<AIR_CU_BF16>(ctx, W, n_out, n_in, d_x, rows, d_y);
    case AIR_CU_Q8:
        return matmul_t<AIR_CU_Q8>(ctx, W, n_out, n_in, d_x, rows, d_y);
    case AIR_CU_NF4:
        return matmul_t<AIR_CU_NF4>(ctx, W, n_out, n_in, d_x, rows, d_y);
    }
    snprintf(ctx->err, sizeof ctx->err, "matmul: unknown weight type %d", wt);
    return 1;
}

/* ------------------------------------------------------------------------- */
/* Small ops                                                                 */
/* ------------------------------------------------------------------------- */

// y = x / sqrt(mean(x^2) + eps) * w, one block per row
__global__ void rmsnorm_kernel(float *y, const float *x, const float *__restrict__ w, int n,
                               float eps, const int32_t *map) {
    __shared__ float red[32];
    int row = blockIdx.x, src = map ? map[row] : row;
    const float *xr = x + (size_t)src * n;
    float *yr = y + (size_t)row * n;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        ss += xr[i] * xr[i];
    ss = block_reduce<false>(ss, red);
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        yr[i] = __fmul_rn(__fmul_rn(xr[i], scale), w[i]);
}

int air_cu_rmsnorm(air_cu_ctx *ctx, float *d_y, const float *d_x, const float *d_w, int n, int rows,
                   float eps, const int32_t *d_map) {
    if (rows <= 0)
        return 0;
    if (d_map && d_y == d_x) {
        snprintf(ctx->err, sizeof ctx->err, "rmsnorm: a row map needs y apart from x");
        return 1;
    }
    int th = n >= 1024 ? 256 : n >= 256 ? 128 : 32;
    rmsnorm_kernel<<<(unsigned)rows, th, 0, ctx->stream[0]>>>(d_y, d_x, d_w, n, eps, d_map);
    CU_LAUNCHED(ctx, "rmsnorm_kernel");
    return 0;
}

__global__ void rope_kernel(float *v, int rows, int n_heads, int hd, const float *cs,
                            const float *sn) {
    int half = hd / 2;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)rows * n_heads * half)
        return;
    int j = (int)(i % half);
    int64_t rh = i / half; /* row * n_heads + head */
    int r = (int)(rh / n_heads);
    float *p = v + rh * hd;
    float c = cs[(size_t)r * half + j], s = sn[(size_t)r * half + j];
    float a = p[j], b = p[j + half];
    p[j] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    p[j + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
}

int air_cu_rope(air_cu_ctx *ctx, float *d_v, int rows, int n_heads, int hd, const float *d_cos,
                const float *d_sin) {
    int64_t total = (int64_t)rows * n_heads * (hd / 2);
    if (total <= 0)
        return 0;
    rope_kernel<<<(unsigned)((total + 255) / 256), 256, 0, ctx->stream[0]>>>(d_v, rows, n_heads, hd,
                                                                             d_cos, d_sin);
    CU_LAUNCHED(ctx, "rope_kernel");
    return 0;
}

__global__ void silu_mul_kernel(float *out, const float *g, const float *u, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float v = g[i];
        out[i] = __fmul_rn(__fdiv_rn(v, __fadd_rn(1.0f, expf(-v))), u[i]);
    }
}

int air_cu_silu_mul(air_cu_ctx *ctx, float *d_out, const float *d_gate, const float *d_up,
                    int64_t n) {
    if (n <= 0)
        return 0;
    silu_mul_kernel<<<(unsigned)((n + 255) / 256), 256, 0, ctx->stream[0]>>>(d_out, d_gate, d_up,
                                                                             n);
    CU_LAUNCHED(ctx, "silu_mul_kernel");
    return 0;
}

__global__ void add_kernel(float *y, const float *x, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        y[i] += x[i];
}

int air_cu_add(air_cu_ctx *ctx, float *d_y, const float *d_x, int64_t n) {
    if (n <= 0)
        return 0;
    add_kernel<<<(unsigned)((n + 255) / 256), 256, 0, ctx->stream[0]>>>(d_y, d_x, n);
    CU_LAUNCHED(ctx, "add_kernel");
    return 0;
}

__global__ void add_bias_kernel(float *y, const float *b, int rows, int n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (int64_t)rows * n)
        y[i] += b[i % n];
}

int air_cu_add_bias(air_cu_ctx *ctx, float *d_y, const float *d_b, int rows, int n) {
    int64_t total = (int64_t)rows * n;
    if (total <= 0)
        return 0;
    add_bias_kernel<<<(unsigned)((total + 255) / 256), 256, 0, ctx->stream[0]>>>(d_y, d_b, rows, n);
    CU_LAUNCHED(ctx, "add_bias_kernel");
    return 0;
}

__global__ void kv_store_kernel(float *const *kp, float *const *vp, const int32_t *slot,
                                const float *k, const float *v, int rows, int kvd) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)rows * kvd)
        return;
    int r = (int)(i / kvd), j = (int)(i % kvd);
    size_t at = (size_t)slot[r] * kvd + j;
    kp[r][at] = k[i];
    vp[r][at] = v[i];
}

int air_cu_kv_store(air_cu_ctx *ctx, float *const *d_kp, float *const *d_vp, const int32_t *d_slot,
                    const float *d_k, const float *d_v, int rows, int kv_dim) {
    int64_t total = (int64_t)rows * kv_dim;
    if (total <= 0)
        return 0;
    kv_store_kernel<<<(unsigned)((total + 255) / 256), 256, 0, ctx->stream[0]>>>(
        d_kp, d_vp, d_slot, d_k, d_v, rows, kv_dim);
    CU_LAUNCHED(ctx, "kv_store_kernel");
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Attention                                                                 */
/* ------------------------------------------------------------------------- */

#define ATT_CHUNK 256 /* keys per split */
#define ATT_THREADS 128

/* The slot of key t of a row: lo + t within [lo, hi), then the extra slots. */
__device__ __forceinline__ int key_slot(int4 d, const int32_t *extra, int t) {
    int np = d.y - d.x;
    return t < np ? d.x + t : extra[d.w + t - np];
}

/* Block (split, head, row): keys [split * ATT_CHUNK, +ATT_CHUNK) of that
 * row's list. Writes to part[(row, head, split)]: hd weighted-value sums,
 * then the max score m and the sum l of exp(score - m). */
__global__ void __launch_bounds__(ATT_THREADS)
    attn_split_kernel(air_cu_attn a, float *part, int n_split) {
    extern __shared__ float sm[];
    __shared__ float red[32];
    int split = blockIdx.x, h = blockIdx.y, r = blockIdx.z;
    int hd = a.head_dim, tid = threadIdx.x;
    int4 d = reinterpret_cast<const int4 *>(a.d_keys)[r];
    int n = d.y - d.x + d.z;
    int t0 = split * ATT_CHUNK, t1 = min(n, t0 + ATT_CHUNK), nt = t1 - t0;
    float *pp = part + (((size_t)r * a.n_head + h) * n_split + split) * (hd + 2);
    if (nt <= 0) { /* the whole block agrees: nothing to do for this split */
        for (int i = tid; i < hd; i += blockDim.x)
            pp[i] = 0.0f;
        if (tid == 0) {
            pp[hd] = -INFINITY;
            pp[hd + 1] = 0.0f;
        }
        return;
    }
    float *qs = sm, *sc = sm + hd;
    const float *q = a.d_q + ((size_t)r * a.n_head + h) * hd;
    for (int i = tid; i < hd; i += blockDim.x)
        qs[i] = q[i];
    __syncthreads();
    int kvd = a.n_head_kv * hd, kvh = h / (a.n_head / a.n_head_kv);
    const float *K = a.d_k[r] + (size_t)kvh * hd, *V = a.d_v[r] + (size_t)kvh * hd;
    int warp = tid >> 5, lane = tid & 31, nw = blockDim.x >> 5;
    for (int t = warp; t < nt; t += nw) {
        const float *kr = K + (size_t)key_slot(d, a.d_extra, t0 + t) * kvd;
        float acc = 0.0f;
        for (int i = lane; i < hd; i += 32)
            acc += qs[i] * kr[i];
        acc = warp_sum(acc);
        if (lane == 0)
            sc[t] = acc * a.scale;
    }
    __syncthreads();
    float m = -INFINITY;
    for (int t = tid; t < nt; t += blockDim.x)
        m = fmaxf(m, sc[t]);
    m = block_reduce<true>(m, red);
    float l = 0.0f;
    for (int t = tid; t < nt; t += blockDim.x) {
        float e = expf(sc[t] - m);
        sc[t] = e;
        l += e;
    }
    l = block_reduce<false>(l, red); /* its barriers also publish sc */
    for (int i = tid; i < hd; i += blockDim.x) {
        float o = 0.0f;
        for (int t = 0; t < nt; t++)
            o += sc[t] * V[(size_t)key_slot(d, a.d_extra, t0 + t) * kvd + i];
        pp[i] = o;
    }
    if (tid == 0) {
        pp[hd] = m;
        pp[hd + 1] = l;
    }
}

/* Block (head, row): merges the splits: out = sum_s e^(m_s - M) o_s /
 * sum_s e^(m_s - M) l_s. */
__global__ void attn_merge_kernel(air_cu_attn a, const float *part, int n_split) {
    int h = blockIdx.x, r = blockIdx.y, hd = a.head_dim;
    const float *pp = part + ((size_t)r * a.n_head + h) * n_split * (hd + 2);
    float M = -INFINITY;
    for (int s = 0; s < n_split; s++)
        M = fmaxf(M, pp[(size_t)s * (hd + 2) + hd]);
    float L = 0.0f;
    for (int s = 0; s < n_split; s++) {
        const float *p = pp + (size_t)s * (hd + 2);
        if (p[hd + 1] > 0.0f)
            L += expf(p[hd] - M) * p[hd + 1];
    }
    float *out = a.d_out + ((size_t)r * a.n_head + h) * hd;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float o = 0.0f;
        for (int s = 0; s < n_split; s++) {
            const float *p = pp + (size_t)s * (hd + 2);
            if (p[hd + 1] > 0.0f)
                o += expf(p[hd] - M) * p[i];
        }
        out[i] = o / L;
    }
}

int air_cu_attention(air_cu_ctx *ctx, const air_cu_attn *a) {
    if (a->rows <= 0)
        return 0;
    if (a->head_dim <= 0 || a->n_head_kv <= 0 || a->n_head % a->n_head_kv || a->max_keys <= 0) {
        snprintf(ctx->err, sizeof ctx->err,
                 "attention: bad shape (%d heads, %d KV heads, head "
                 "dim %d, %d keys)",
                 a->n_head, a->n_head_kv, a->head_dim, a->max_keys);
        return 1;
    }
    int n_split = (a->max_keys + ATT_CHUNK - 1) / ATT_CHUNK;
    size_t need = (size_t)a->rows * a->n_head * n_split * (a->head_dim + 2);
    if (need > ctx->att_part_floats) {
        /* earlier launches on the stream may still read the old buffer */
        CU_TRY(ctx, cudaStreamSynchronize(ctx->stream[0]));
        cudaFree(ctx->d_att_part);
        ctx->d_att_part = NULL;
        ctx->att_part_floats = 0;
        CU_TRY(ctx, cudaMalloc(&ctx->d_att_part, need * sizeof(float)));
        ctx->att_part_floats = need;
    }
    size_t smem = sizeof(float) * ((size_t)a->head_dim + ATT_CHUNK);
    if (smem > 48 * 1024) {
        snprintf(ctx->err, sizeof ctx->err, "attention: head dim %d is too large", a->head_dim);
        return 1;
    }
    if (a->rows > 65535 || a->n_head > 65535) {
        snprintf(ctx->err, sizeof ctx->err, "attention: %d rows x %d heads exceed the grid",
                 a->rows, a->n_head);
        return 1;
    }
    dim3 g1((unsigned)n_split, (unsigned)a->n_head, (unsigned)a->rows);
    attn_split_kernel<<<g1, ATT_THREADS, smem, ctx->stream[0]>>>(*a, ctx->d_att_part, n_split);
    CU_LAUNCHED(ctx, "attn_split_kernel");
    dim3 g2((unsigned)a->n_head, (unsigned)a->rows);
    int th = a->head_dim >= 128 ? 128 : 64;
    attn_merge_kernel<<<g2, th, 0, ctx->stream[0]>>>(*a, ctx->d_att_part, n_split);
    CU_LAUNCHED(ctx, "attn_merge_kernel");
    return 0;
}
