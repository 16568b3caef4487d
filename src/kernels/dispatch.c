/*
 * dispatch.c - picks the kernel table from cpuid once, and drives the
 * threaded matmul: activations are quantized once per call (for kernels that
 * want int8 activations), then output rows are handed out in chunks to the
 * pool's threads through an atomic counter.
 *
 * Each output element is computed by the same code whatever thread runs it,
 * and chunk boundaries are multiples of the kernels' row tile, so results do
 * not depend on the number of threads.
 */
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airllm.h"
#include "kernels/kernels.h"

#ifdef AIR_HAVE_X86
#include <cpuid.h>
#endif

static const air_kernel_table *g_table; /* set once: first use or a forced ISA */

static const air_kernel_table *table_for(air_isa isa) {
    switch (isa) {
    case AIR_ISA_REF:
        return &air_ktab_ref;
#ifdef AIR_HAVE_X86
    case AIR_ISA_AVX2:
        return &air_ktab_avx2;
    case AIR_ISA_AVX512:
        return &air_ktab_avx512;
#endif
#ifdef AIR_HAVE_NEON
    case AIR_ISA_NEON:
        return &air_ktab_neon;
#endif
    default:
        return NULL;
    }
}

#ifdef AIR_HAVE_X86
/* CPU features from cpuid and what the OS saves (xgetbv), read directly:
 * the same code for every compiler. */
typedef struct {
    int avx2, fma, f16c, avx512; /* avx512: F, BW, VL, DQ and VNNI */
} x86_features;

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static x86_features x86_detect(void) {
    x86_features f = {0};
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return f;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    f.fma = (c >> 12) & 1;
    f.f16c = (c >> 29) & 1;
    if (!osxsave || !avx)
        return (x86_features){0};
    uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) /* XMM and YMM state */
        return (x86_features){0};
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return f;
    f.avx2 = (b >> 5) & 1;
    int zmm = (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM state */
    f.avx512 = zmm && ((b >> 16) & 1) /* F */ && ((b >> 17) & 1) /* DQ */ &&
               ((b >> 30) & 1) /* BW */ && ((b >> 31) & 1) /* VL */ && ((c >> 11) & 1) /* VNNI */;
    return f;
}
#endif

int air_kernels_isa_supported(air_isa isa) {
    switch (isa) {
    case AIR_ISA_REF:
        return 1;
#ifdef AIR_HAVE_X86
    case AIR_ISA_AVX2: {
        x86_features f = x86_detect();
        return f.avx2 && f.fma && f.f16c;
    }
    case AIR_ISA_AVX512: {
        x86_features f = x86_detect();
        return f.avx512 && f.fma && f.f16c;
    }
#endif
#ifdef AIR_HAVE_NEON
    case AIR_ISA_NEON:
        return 1;
#endif
    default:
        return 0;
    }
}

static air_isa best_isa(void) {
    static const air_isa order[] = {AIR_ISA_AVX512, AIR_ISA_AVX2, AIR_ISA_NEON};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (air_kernels_isa_supported(order[i]))
            return order[i];
    return AIR_ISA_REF;
}

/* The ISA named by the environment variable AIR_ISA ("ref", "avx2", "avx512",
 * "neon") when this CPU supports it, else the best one: lets a whole program
 * (a test suite, a benchmark) run on one ISA. air_system_info() says which. */
static air_isa start_isa(void) {
    const char *env = getenv("AIR_ISA");
    if (env && *env) {
        static const air_isa all[] = {AIR_ISA_REF, AIR_ISA_AVX2, AIR_ISA_AVX512, AIR_ISA_NEON};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (!strcmp(env, air_isa_name(all[i])) && air_kernels_isa_supported(all[i]))
                return all[i];
    }
    return best_isa();
}

const air_kernel_table *air_kernels_table(void) {
    const air_kernel_table *t = __atomic_load_n(&g_table, __ATOMIC_ACQUIRE);
    if (!t) {
        t = table_for(start_isa());
        __atomic_store_n(&g_table, t, __ATOMIC_RELEASE);
    }
    return t;
}

air_isa air_kernels_isa(void) {
    return air_kernels_table()->isa;
}

const char *air_isa_name(air_isa isa) {
    switch (isa) {
    case AIR_ISA_REF:
        return "ref";
    case AIR_ISA_AVX2:
        return "avx2";
    case AIR_ISA_AVX512:
        return "avx512";
    case AIR_ISA_NEON:
        return "neon";
    default:
        return "unknown";
    }
}

const char *air_system_info(void) {
    static char buf[160];
    static const air_isa all[] = {AIR_ISA_REF, AIR_ISA_AVX2, AIR_ISA_AVX512, AIR_ISA_NEON};
    size_t len = (size_t)snprintf(buf, sizeof buf, "kernels: %s; supported:",
                                  air_isa_name(air_kernels_isa()));
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && len < sizeof buf)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "; not supported:");
        for (size_t i = 0; i < sizeof all / sizeof all[0] && len < sizeof buf; i++)
            if (air_kernels_isa_supported(all[i]) == !pass)
                len += (size_t)snprintf(buf + len, sizeof buf - len, " %s", air_isa_name(all[i]));
    }
    return buf;
}

int air_kernels_force_isa(air_isa isa) {
    if (!air_kernels_isa_supported(isa))
        return 0;
    const air_kernel_table *t = table_for(isa);
    if (!t)
        return 0;
    __atomic_store_n(&g_table, t, __ATOMIC_RELEASE);
    return 1;
}

/* ------------------------------------------------------------------------- */
/* Threaded matmul                                                           */
/* ------------------------------------------------------------------------- */

#define ROW_TILE 8 /* chunk boundaries are multiples of this */

/* One output of a run: chunks [c0, c0 + n_chunks) of the run's counter. */
typedef struct {
    air_mm_fn fn;
    const void *W, *x;
    int n_out;
    float *y;
    int chunk, c0, n_chunks;
} mm_part;

typedef struct {
    mm_part part[AIR_MM_MAX_OUTS];
    int n_parts, n_in, rows, n_chunks;
    atomic_int next;
} mm_job;

static void run_chunk(const mm_job *j, int c) {
    int p = 0;
    while (c >= j->part[p].c0 + j->part[p].n_chunks)
        p++;
    const mm_part *pt = &j->part[p];
    int o0 = (c - pt->c0) * pt->chunk;
    int o1 = o0 + pt->chunk < pt->n_out ? o0 + pt->chunk : pt->n_out;
    pt->fn(pt->W, j->n_in, pt->x, j->rows, pt->y, pt->n_out, o0, o1);
}

static void mm_worker(void *p, int ith, int nth) {
    mm_job *j = p;
    (void)ith;
    (void)nth;
    for (;;) {
        int c = atomic_fetch_add(&j->next, 1);
        if (c >= j->n_chunks)
            break;
        run_chunk(j, c);
    }
}

/* Output rows per chunk: about 4 chunks per thread for balance, at least one
 * tile, and a bounded size in bytes of weights: for prefill, about
 * AIR_MM_L2_BYTES, so a chunk's weights stay in L2 while the activation rows
 * sweep them; for decode, 4 times that, which bounds the time one thread may
 * still be busy after the other ran out of chunks (a 128k-row vocabulary head
 * in 8 chunks could leave one thread idle for milliseconds per token). */
static int chunk_rows(air_dtype wt, int n_out, int n_in, int rows, int nth) {
    int c = (n_out + nth * 4 - 1) / (nth * 4);
    size_t rb = air_dtype_row_bytes(wt, n_in);
    size_t max_bytes = rows > 1 ? AIR_MM_L2_BYTES : 4 * (size_t)AIR_MM_L2_BYTES;
    int cap = rb ? (int)(max_bytes / rb) : c;
    if (c > cap)
        c = cap;
    c = (c + ROW_TILE - 1) / ROW_TILE * ROW_TILE;
    return c < ROW_TILE ? ROW_TILE : c;
}

typedef struct {
    const air_kernel_table *k;
    const float *x;
    void *xq;
    int n_in, rows;
    size_t row_bytes;
} xq_job;

static void quantize_rows(const xq_job *j, int r0, int r1) {
    for (int r = r0; r < r1; r++) {
        const float *xr = j->x + (size_t)r * j->n_in;
        void *dst = (char *)j->xq + (size_t)r * j->row_bytes;
        if (j->k->quantize_row)
            j->k->quantize_row(xr, dst, j->n_in);
        else
            j->k->quantize_x(xr, dst, j->n_in);
    }
}

static void xq_worker(void *p, int ith, int nth) {
    const xq_job *j = p;
    quantize_rows(j, (int)((int64_t)j->rows * ith / nth), (int)((int64_t)j->rows * (ith + 1) / nth));
}

void air_matmul_n(air_pool *pool, const air_mm_out *outs, int n_outs, int n_in, const float *x,
                  int rows) {
    if (rows <= 0 || n_outs <= 0 || n_outs > AIR_MM_MAX_OUTS)
        return;
    const air_kernel_table *k = air_kernels_table();
    int nth = air_pool_size(pool), want_xq = 0;
    for (int i = 0; i < n_outs; i++)
        if ((unsigned)outs[i].wt < AIR_DT_COUNT && k->mm_xq[outs[i].wt])
            want_xq = 1;
    alignas(64) unsigned char stack_xq[32768]; /* one decode row up to n_in = 8192 */
    void *heap_xq = NULL;
    const void *xq = NULL;
    if (want_xq) {
        size_t row_bytes = k->xq_row_bytes ? k->xq_row_bytes(n_in)
                                           : (size_t)n_in / AIR_XQ_BLOCK * sizeof(air_block_xq);
        size_t need = row_bytes * (size_t)rows;
        void *buf = stack_xq;
        if (need > sizeof stack_xq)
            buf = heap_xq = aligned_alloc(64, (need + 63) / 64 * 64);
        if (buf) {
            xq_job qj = {k, x, buf, n_in, rows, row_bytes};
            /* prefill: every thread quantizes a share of the rows */
            if (nth > 1 && rows >= 2 * nth)
                air_pool_run(pool, xq_worker, &qj);
            else
                quantize_rows(&qj, 0, rows);
            xq = buf;
        } else {
            k = &air_ktab_ref; /* out of memory: the fp32 path needs no scratch */
        }
    }
    mm_job job = {.n_in = n_in, .rows = rows};
    for (int i = 0; i < n_outs; i++) {
        const air_mm_out *o = &outs[i];
        if (o->n_out <= 0 || (unsigned)o->wt >= AIR_DT_COUNT)
            continue;
        mm_part *pt = &job.part[job.n_parts++];
        pt->fn = k->mm[o->wt];
        pt->W = o->W;
        pt->x = k->mm_xq[o->wt] ? xq : (const void *)x;
        pt->n_out = o->n_out;
        pt->y = o->y;
        pt->chunk = chunk_rows(o->wt, o->n_out, n_in, rows, nth);
        pt->c0 = job.n_chunks;
        pt->n_chunks = (o->n_out + pt->chunk - 1) / pt->chunk;
        job.n_chunks += pt->n_chunks;
    }
    atomic_init(&job.next, 0);
    if (nth <= 1 || job.n_chunks == 1)
        for (int c = 0; c < job.n_chunks; c++)
            run_chunk(&job, c);
    else if (job.n_chunks > 0)
        air_pool_run(pool, mm_worker, &job);
    free(heap_xq);
}

// y (rows, n_out) = x (rows, n_in) @ W (n_out, n_in)^T
void air_matmul(air_pool *pool, air_dtype wt, const void *W, int n_out, int n_in, const float *x,
                int rows, float *y) {
    air_mm_out o = {wt, W, n_out, y};
    air_matmul_n(pool, &o, 1, n_in, x, rows);
}

/* ------------------------------------------------------------------------- */
/* Small ops: straight to the table                                          */
/* ------------------------------------------------------------------------- */

void air_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    air_kernels_table()->rmsnorm(y, x, w, n, eps);
}

void air_silu_mul(float *out, const float *gate, const float *up, int n) {
    air_kernels_table()->silu_mul(out, gate, up, n);
}

void air_softmax(float *x, int n) {
    air_kernels_table()->softmax(x, n);
}

float air_dot_f32(const float *a, const float *b, int n) {
    return air_kernels_table()->dot(a, b, n);
}

void air_axpy_f32(float *y, float alpha, const float *x, int n) {
    air_kernels_table()->axpy(y, alpha, x, n);
}
