/*
 * test_cuda_gpu_ops.c - every op of the CUDA plugin against the CPU
 * reference, across shapes and weight formats (as test_kernels does for the
 * ISAs): matmul for f32, f16, bf16, 8bit and 4bit in its three paths (GEMV
 * for rows <= 8, tiled GEMM above, the any-shape kernel for n_in % 8 != 0),
 * RMSNorm (with and without a row map), RoPE, SiLU-mul, add, bias, KV
 * stores and split-K attention (GQA, windows, extra slots, several splits).
 *
 * Errors are normalized: a matmul output may differ from the reference only
 * by the rounding of its fp32 sums in another order, bounded by
 * n_in * 2^-23 * sum |w x|; an indexing or dequantization mistake is off by
 * O(sum |w x|). Needs a GPU: exits 77 (skipped) with the reason without one.
 */
#include <unistd.h>

#include "cuda/cuda_load.h"
#include "kernels/kernels.h"
#include "model/forward.h"
#include "test.h"
#include "test_cuda.h"

static const air_cuda_api *A;
static air_cu_ctx *C;
static uint64_t rng = 12345;

static float frand(void) { /* uniform in [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xffffff) / (float)0x800000 - 1.0f;
}

static void *dev_copy(const void *h, size_t bytes) {
    void *d = NULL;
    if (A->alloc(C, bytes, &d) || A->h2d(C, AIR_CU_COMPUTE, d, h, bytes) ||
        A->sync(C, AIR_CU_COMPUTE)) {
        fprintf(stderr, "device copy: %s\n", A->ctx_error(C));
        exit(1);
    }
    return d;
}

static void *dev_zero(size_t bytes) {
    void *h = calloc(1, bytes), *d = dev_copy(h, bytes);
    free(h);
    return d;
}

static void host_copy(void *h, const void *d, size_t bytes) {
    if (A->d2h(C, AIR_CU_COMPUTE, h, d, bytes) || A->sync(C, AIR_CU_COMPUTE)) {
        fprintf(stderr, "download: %s\n", A->ctx_error(C));
        exit(1);
    }
}

#define CU_OK(call)                                                                                \
    do {                                                                                           \
        if (call)                                                                                  \
            T_FAIL("%s: %s", #call, A->ctx_error(C));                                              \
    } while (0)

/* ------------------------------------------------------------------------- */

static void check_matmul(air_dtype dt, int n_out, int n_in, int rows) {
    size_t rb = air_dtype_row_bytes(dt, n_in);
    uint8_t *W = malloc(rb * (size_t)n_out);
    float *wrow = malloc(sizeof(float) * (size_t)n_in);
    float *wf = malloc(sizeof(float) * (size_t)n_in * n_out); /* dequantized */
    for (int o = 0; o < n_out; o++) {
        for (int k = 0; k < n_in; k++)
            wrow[k] = frand() * (1.0f + (o % 5)); /* rows of different scales */
        air_row_from_f32(dt, wrow, W + (size_t)o * rb, n_in);
        air_row_to_f32(dt, W + (size_t)o * rb, wf + (size_t)o * n_in, n_in);
    }
    float *x = malloc(sizeof(float) * (size_t)rows * n_in);
    for (size_t i = 0; i < (size_t)rows * n_in; i++)
        x[i] = frand();
    float *ref = malloc(sizeof(float) * (size_t)rows * n_out);
    float *got = malloc(sizeof(float) * (size_t)rows * n_out);
    air_kernels_force_isa(AIR_ISA_REF);
    air_matmul(NULL, dt, W, n_out, n_in, x, rows, ref);
    void *dW = dev_copy(W, rb * (size_t)n_out);
    float *dx = dev_copy(x, sizeof(float) * (size_t)rows * n_in);
    float *dy = dev_zero(sizeof(float) * (size_t)rows * n_out);
    int bad = A->matmul(C, (int)dt, dW, n_out, n_in, dx, rows, dy) || A->sync(C, AIR_CU_COMPUTE);
    if (!bad)
        host_copy(got, dy, sizeof(float) * (size_t)rows * n_out);
    A->free(C, dW);
    A->free(C, dx);
    A->free(C, dy);
    double worst = 0;
    int wr = -1, wo = -1;
    for (int r = 0; r < rows && !bad; r++)
        for (int o = 0; o < n_out; o++) {
            double mag = 0;
            for (int k = 0; k < n_in; k++)
                mag += fabs((double)wf[(size_t)o * n_in + k] * x[(size_t)r * n_in + k]);
            double e = fabs((double)got[(size_t)r * n_out + o] - ref[(size_t)r * n_out + o]) /
                       (mag * n_in * 0x1p-23 + 1e-30);
            if (e > worst)
                worst = e, wr = r, wo = o;
        }
    free(W);
    free(wrow);
    free(wf);
    free(x);
    if (bad) {
        free(ref);
        free(got);
        T_FAIL("matmul %s %dx%d rows %d: %s", air_dtype_name(dt), n_out, n_in, rows,
               A->ctx_error(C));
    }
    if (worst > 1.0) {
        float g = got[(size_t)wr * n_out + wo], f = ref[(size_t)wr * n_out + wo];
        free(ref);
        free(got);
        T_FAIL("matmul %s %dx%d rows %d: row %d output %d: %.9g vs reference %.9g (%.2f x the "
               "reordering bound)",
               air_dtype_name(dt), n_out, n_in, rows, wr, wo, g, f, worst);
    }
    free(ref);
    free(got);
}

TEST(matmul_all_formats_and_shapes) {
    /* n_out, n_in, rows: GEMV (rows <= 8, 1/2/4/8-row variants), GEMM (> 8,
     * partial tiles on both sides), chunk-boundary sizes */
    static const int shapes[][3] = {
        {1, 64, 1},    {7, 64, 2},     {64, 256, 1},   {333, 320, 3},    {130, 512, 8},
        {65, 256, 9},  {200, 128, 64}, {64, 4096, 5},  {131, 1024, 130}, {4, 2048, 4},
        {513, 192, 1}, {100, 128, 7},  {70, 384, 200},
    };
    for (int dt = 0; dt < AIR_DT_COUNT; dt++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            int blk = air_dtype_block((air_dtype)dt);
            if (shapes[i][1] % blk)
                continue;
            check_matmul((air_dtype)dt, shapes[i][0], shapes[i][1], shapes[i][2]);
            if (t_cur_failed)
                return;
        }
}

TEST(matmul_odd_widths) {
    /* n_in % 8 != 0: the any-shape kernel; % 8 == 0 but not % 32 for floats */
    static const int shapes[][3] = {{5, 36, 3}, {9, 36, 20}, {3, 40, 1}, {17, 200, 12}, {2, 1, 1}};
    for (int dt = AIR_DT_F32; dt <= AIR_DT_BF16; dt++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            check_matmul((air_dtype)dt, shapes[i][0], shapes[i][1], shapes[i][2]);
            if (t_cur_failed)
                return;
        }
}

TEST(matmul_rejects_bad_shapes) {
    float *d = dev_zero(4096);
    ASSERT_TRUE(A->matmul(C, AIR_CU_Q8, d, 1, 48, d, 1, d) != 0); /* 48 % 32 */
    ASSERT_TRUE(strstr(A->ctx_error(C), "8bit") != NULL);
    ASSERT_TRUE(A->matmul(C, AIR_CU_NF4, d, 1, 96, d, 1, d) != 0);
    ASSERT_TRUE(A->matmul(C, AIR_CU_F32, d, 1, 8, d, 0, d) != 0);
    A->free(C, d);
}

/* ------------------------------------------------------------------------- */

static double max_rel(const float *a, const float *b, size_t n) {
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fabs(b[i]) > scale ? fabs(b[i]) : scale;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (scale + 1e-30);
        worst = e > worst ? e : worst;
    }
    return worst;
}

TEST(rmsnorm_rows_and_map) {
    static const int shapes[][2] = {{1, 128}, {3, 4096}, {7, 32}, {2, 100}, {64, 48}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int rows = shapes[s][0], n = shapes[s][1];
        size_t sz = (size_t)rows * n;
        float *x = malloc(sizeof(float) * sz), *w = malloc(sizeof(float) * n);
        float *ref = malloc(sizeof(float) * sz), *got = malloc(sizeof(float) * sz);
        for (size_t i = 0; i < sz; i++)
            x[i] = frand() * 3;
        for (int i = 0; i < n; i++)
            w[i] = frand();
        for (int r = 0; r < rows; r++)
            air_ref_rmsnorm(ref + (size_t)r * n, x + (size_t)r * n, w, n, 1e-6f);
        float *dx = dev_copy(x, sizeof(float) * sz), *dw = dev_copy(w, sizeof(float) * n);
        float *dy = dev_zero(sizeof(float) * sz);
        CU_OK(A->rmsnorm(C, dy, dx, dw, n, rows, 1e-6f, NULL));
        host_copy(got, dy, sizeof(float) * sz);
        double e1 = max_rel(got, ref, sz);
        /* in place */
        CU_OK(A->rmsnorm(C, dx, dx, dw, n, rows, 1e-6f, NULL));
        host_copy(got, dx, sizeof(float) * sz);
        double e2 = max_rel(got, ref, sz);
        /* map: output row i is input row rows-1-i */
        int32_t *map = malloc(sizeof(int32_t) * rows);
        for (int i = 0; i < rows; i++)
            map[i] = rows - 1 - i;
        float *dx2 = dev_copy(x, sizeof(float) * sz);
        int32_t *dm = dev_copy(map, sizeof(int32_t) * rows);
        CU_OK(A->rmsnorm(C, dy, dx2, dw, n, rows, 1e-6f, dm));
        host_copy(got, dy, sizeof(float) * sz);
        double e3 = 0;
        for (int i = 0; i < rows; i++) {
            double e = max_rel(got + (size_t)i * n, ref + (size_t)map[i] * n, n);
            e3 = e > e3 ? e : e3;
        }
        A->free(C, dx);
        A->free(C, dx2);
        A->free(C, dw);
        A->free(C, dy);
        A->free(C, dm);
        free(x);
        free(w);
        free(ref);
        free(got);
        free(map);
        if (e1 > 1e-5 || e2 > 1e-5 || e3 > 1e-5)
            T_FAIL("rmsnorm %dx%d: rel. errors %.3g %.3g %.3g", rows, n, e1, e2, e3);
    }
}

TEST(rope_matches_cpu) {
    static const int shapes[][3] = {{1, 4, 32}, {5, 8, 64}, {3, 2, 128}, {130, 3, 48}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int rows = shapes[s][0], nh = shapes[s][1], hd = shapes[s][2], half = hd / 2;
        size_t sz = (size_t)rows * nh * hd, tz = (size_t)rows * half;
        float *v = malloc(sizeof(float) * sz), *ref = malloc(sizeof(float) * sz);
        float *got = malloc(sizeof(float) * sz);
        float *cs = malloc(sizeof(float) * tz), *sn = malloc(sizeof(float) * tz);
        for (size_t i = 0; i < sz; i++)
            v[i] = ref[i] = frand();
        for (size_t i = 0; i < tz; i++) {
            float a = frand() * 10;
            cs[i] = cosf(a);
            sn[i] = sinf(a);
        }
        for (int r = 0; r < rows; r++)
            air_rope_heads(ref + (size_t)r * nh * hd, nh, hd, cs + (size_t)r * half,
                           sn + (size_t)r * half);
        float *dv = dev_copy(v, sizeof(float) * sz), *dc = dev_copy(cs, sizeof(float) * tz);
        float *ds = dev_copy(sn, sizeof(float) * tz);
        CU_OK(A->rope(C, dv, rows, nh, hd, dc, ds));
        host_copy(got, dv, sizeof(float) * sz);
        A->free(C, dv);
        A->free(C, dc);
        A->free(C, ds);
        int same = memcmp(got, ref, sizeof(float) * sz) == 0;
        double e = max_rel(got, ref, sz);
        free(v);
        free(ref);
        free(got);
        free(cs);
        free(sn);
        /* the same IEEE operations in the same order: bit-identical */
        if (!same)
            T_FAIL("rope %d rows x %d heads x %d: not identical (max rel. error %.3g)", rows, nh,
                   hd, e);
    }
}

TEST(elementwise) {
    int n = 10007, rows = 3, m = 333;
    float *g = malloc(sizeof(float) * n), *u = malloc(sizeof(float) * n);
    float *ref = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++)
        g[i] = frand() * 12, u[i] = frand();
    air_ref_silu_mul(ref, g, u, n);
    float *dg = dev_copy(g, sizeof(float) * n), *du = dev_copy(u, sizeof(float) * n);
    CU_OK(A->silu_mul(C, dg, dg, du, n)); /* in place, as the layer does */
    host_copy(got, dg, sizeof(float) * n);
    double e = max_rel(got, ref, n);
    if (e > 1e-6)
        T_FAIL("silu_mul: rel. error %.3g", e);
    /* add: y += x, exact */
    float *dy = dev_copy(u, sizeof(float) * n);
    float *dx = dev_copy(g, sizeof(float) * n);
    CU_OK(A->add(C, dy, dx, n));
    host_copy(got, dy, sizeof(float) * n);
    for (int i = 0; i < n; i++)
        if (got[i] != u[i] + g[i])
            T_FAIL("add: element %d: %g vs %g", i, got[i], u[i] + g[i]);
    /* bias on every row */
    float *db = dev_copy(g, sizeof(float) * m);
    float *dr = dev_copy(u, sizeof(float) * rows * m);
    CU_OK(A->add_bias(C, dr, db, rows, m));
    host_copy(got, dr, sizeof(float) * rows * m);
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < m; i++)
            if (got[r * m + i] != u[r * m + i] + g[i])
                T_FAIL("add_bias: row %d element %d", r, i);
    A->free(C, dg);
    A->free(C, du);
    A->free(C, dy);
    A->free(C, dx);
    A->free(C, db);
    A->free(C, dr);
    free(g);
    free(u);
    free(ref);
    free(got);
}

/* ------------------------------------------------------------------------- */
/* KV stores and attention                                                   */
/* ------------------------------------------------------------------------- */

typedef struct {
    int max_seq;
    float *k, *v;   /* host planes (max_seq, kvd) */
    float *dk, *dv; /* device planes */
} plane;

TEST(kv_store_to_planes) {
    int kvd = 96, rows = 5;
    plane p[2] = {{40, 0, 0, 0, 0}, {17, 0, 0, 0, 0}};
    for (int i = 0; i < 2; i++) {
        p[i].dk = dev_zero(sizeof(float) * p[i].max_seq * kvd);
        p[i].dv = dev_zero(sizeof(float) * p[i].max_seq * kvd);
    }
    int which[5] = {0, 1, 0, 1, 0};
    int32_t slot[5] = {0, 16, 39, 3, 7};
    float *kp[5], *vp[5];
    float *k = malloc(sizeof(float) * rows * kvd), *v = malloc(sizeof(float) * rows * kvd);
    for (int i = 0; i < rows * kvd; i++)
        k[i] = frand(), v[i] = frand();
    for (int r = 0; r < rows; r++)
        kp[r] = p[which[r]].dk, vp[r] = p[which[r]].dv;
    float **dkp = dev_copy(kp, sizeof kp), **dvp = dev_copy(vp, sizeof vp);
    int32_t *ds = dev_copy(slot, sizeof slot);
    float *dk = dev_copy(k, sizeof(float) * rows * kvd),
          *dv = dev_copy(v, sizeof(float) * rows * kvd);
    CU_OK(A->kv_store(C, dkp, dvp, ds, dk, dv, rows, kvd));
    for (int r = 0; r < rows; r++) {
        float got[96];
        host_copy(got, p[which[r]].dk + (size_t)slot[r] * kvd, sizeof got);
        ASSERT_TRUE(memcmp(got, k + r * kvd, sizeof got) == 0);
        host_copy(got, p[which[r]].dv + (size_t)slot[r] * kvd, sizeof got);
        ASSERT_TRUE(memcmp(got, v + r * kvd, sizeof got) == 0);
    }
    for (int i = 0; i < 2; i++) {
        A->free(C, p[i].dk);
        A->free(C, p[i].dv);
    }
    A->free(C, dkp);
    A->free(C, dvp);
    A->free(C, ds);
    A->free(C, dk);
    A->free(C, dv);
    free(k);
    free(v);
}

/* Reference: softmax(q . k * scale) v over a row's slots, in double. */
static void attn_ref(const float *q, const plane *pl, const int32_t *d, const int32_t *extra,
                     int nh, int nkv, int hd, float scale, float *out) {
    int kvd = nkv * hd, np = d[1] - d[0], n = np + d[2];
    double *s = malloc(sizeof(double) * (size_t)n);
    for (int h = 0; h < nh; h++) {
        int kvh = h / (nh / nkv);
        double m = -1e300, sum = 0;
        for (int t = 0; t < n; t++) {
            int slot = t < np ? d[0] + t : extra[d[3] + t - np];
            const float *kr = pl->k + (size_t)slot * kvd + (size_t)kvh * hd;
            double acc = 0;
            for (int i = 0; i < hd; i++)
                acc += (double)q[h * hd + i] * kr[i];
            s[t] = acc * scale;
            m = s[t] > m ? s[t] : m;
        }
        for (int t = 0; t < n; t++)
            sum += s[t] = exp(s[t] - m);
        for (int i = 0; i < hd; i++) {
            double o = 0;
            for (int t = 0; t < n; t++) {
                int slot = t < np ? d[0] + t : extra[d[3] + t - np];
                o += s[t] / sum * pl->v[(size_t)slot * kvd + (size_t)kvh * hd + i];
            }
            out[h * hd + i] = (float)o;
        }
    }
    free(s);
}

static void check_attention(int nh, int nkv, int hd) {
    /* rows over two sequences: short, window, exactly one split, two splits
     * (257), several splits (700), and tree-style extra slots */
    enum { ROWS = 7 };
    plane pl[2] = {{800, 0, 0, 0, 0}, {300, 0, 0, 0, 0}};
    int kvd = nkv * hd;
    for (int i = 0; i < 2; i++) {
        size_t n = (size_t)pl[i].max_seq * kvd;
        pl[i].k = malloc(sizeof(float) * n);
        pl[i].v = malloc(sizeof(float) * n);
        for (size_t j = 0; j < n; j++)
            pl[i].k[j] = frand(), pl[i].v[j] = frand();
        pl[i].dk = dev_copy(pl[i].k, sizeof(float) * n);
        pl[i].dv = dev_copy(pl[i].v, sizeof(float) * n);
    }
    int which[ROWS] = {0, 0, 1, 0, 1, 0, 1};
    int32_t extra[6] = {290, 295, 299, 700, 750, 799};
    int32_t keys[ROWS][4] = {
        {0, 1, 0, 0},     /* the first position alone */
        {0, 17, 0, 0},    /* short */
        {100, 228, 0, 0}, /* a window: 128 positions from 100 */
        {0, 256, 0, 0},   /* exactly one split */
        {0, 257, 0, 0},   /* two splits, the second of one key */
        {0, 700, 3, 3},   /* several splits, then extra slots */
        {10, 280, 3, 0},  /* two splits with extra slots crossing the boundary */
    };
    int max_keys = 0;
    for (int r = 0; r < ROWS; r++) {
        int n = keys[r][1] - keys[r][0] + keys[r][2];
        max_keys = n > max_keys ? n : max_keys;
    }
    size_t qn = (size_t)ROWS * nh * hd;
    float *q = malloc(sizeof(float) * qn), *ref = malloc(sizeof(float) * qn);
    float *got = malloc(sizeof(float) * qn);
    for (size_t i = 0; i < qn; i++)
        q[i] = frand() * 2;
    float scale = 1.0f / sqrtf((float)hd);
    for (int r = 0; r < ROWS; r++)
        attn_ref(q + (size_t)r * nh * hd, &pl[which[r]], keys[r], extra, nh, nkv, hd, scale,
                 ref + (size_t)r * nh * hd);
    const float *kp[ROWS], *vp[ROWS];
    for (int r = 0; r < ROWS; r++)
        kp[r] = pl[which[r]].dk, vp[r] = pl[which[r]].dv;
    const float **dkp = dev_copy(kp, sizeof kp), **dvp = dev_copy(vp, sizeof vp);
    int32_t *dkeys = dev_copy(keys, sizeof keys), *dextra = dev_copy(extra, sizeof extra);
    float *dq = dev_copy(q, sizeof(float) * qn), *dout = dev_zero(sizeof(float) * qn);
    air_cu_attn a = {ROWS, nh, nkv, hd, max_keys, scale, dq, dout, dkp, dvp, dkeys, dextra};
    int bad = A->attention(C, &a) || A->sync(C, AIR_CU_COMPUTE);
    if (!bad)
        host_copy(got, dout, sizeof(float) * qn);
    /* absolute error against values of magnitude <= 1: fp32 sums of up to
     * 703 terms */
    double worst = 0;
    int wr = 0;
    for (int r = 0; r < ROWS && !bad; r++)
        for (int i = 0; i < nh * hd; i++) {
            double e = fabs((double)got[(size_t)r * nh * hd + i] - ref[(size_t)r * nh * hd + i]);
            if (e > worst)
                worst = e, wr = r;
        }
    for (int i = 0; i < 2; i++) {
        A->free(C, pl[i].dk);
        A->free(C, pl[i].dv);
        free(pl[i].k);
        free(pl[i].v);
    }
    A->free(C, dkp);
    A->free(C, dvp);
    A->free(C, dkeys);
    A->free(C, dextra);
    A->free(C, dq);
    A->free(C, dout);
    free(q);
    free(ref);
    free(got);
    if (bad)
        T_FAIL("attention %d/%d heads, dim %d: %s", nh, nkv, hd, A->ctx_error(C));
    if (worst > 2e-5)
        T_FAIL("attention %d/%d heads, dim %d: row %d abs. error %.3g", nh, nkv, hd, wr, worst);
}

TEST(attention_gqa_windows_splits) {
    check_attention(4, 2, 32);
    check_attention(8, 2, 64);
    check_attention(8, 8, 128);
    check_attention(6, 1, 48);
    check_attention(2, 1, 256);
}

TEST(copy_floor_measures) {
    double h2d = 0, mem = 0;
    CU_OK(A->bandwidth(C, 64u << 20, 3, &h2d, &mem));
    fprintf(stderr, "  host->device %.1f GB/s, device memory %.0f GB/s\n", h2d, mem);
    ASSERT_TRUE(h2d > 0.5 && mem > h2d);
}

int main(void) {
    air_cu_info info;
    A = cuda_test_start(&info, "test the CUDA ops on");
    char msg[512];
    if (A->ctx_create(0, &C, msg, sizeof msg)) {
        fprintf(stderr, "cannot create a CUDA context: %s\n", msg);
        return 1;
    }
    RUN(matmul_all_formats_and_shapes);
    RUN(matmul_odd_widths);
    RUN(matmul_rejects_bad_shapes);
    RUN(rmsnorm_rows_and_map);
    RUN(rope_matches_cpu);
    RUN(elementwise);
    RUN(kv_store_to_planes);
    RUN(attention_gqa_windows_splits);
    RUN(copy_floor_measures);
    A->ctx_free(C);
    return test_summary();
}
