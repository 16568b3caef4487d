/*
 * test_quant.c - the NF4 and Q8 formats against bitsandbytes goldens
 * (tests/fixtures/quant/goldens.bin, written by tests/gen/gen_quant_goldens.py):
 * NF4 codes and absmax equal and dequantized values bit-exact; Q8 codes and
 * fp16 scales equal and dequantized values bit-exact. Reads the fixture with
 * stdio only, so it also runs in the static NEON build under qemu.
 */
#include <stdint.h>

#include "kernels/ops.h"
#include "quant/quant.h"
#include "test.h"

typedef struct {
    uint32_t rows, n;
    float *x, *nf4_absmax, *nf4_deq, *q8_deq;
    uint8_t *nf4_code;
    uint16_t *q8_scale;
    int8_t *q8_code;
} goldens;

static int read_exact(FILE *f, void *dst, size_t bytes) {
    return fread(dst, 1, bytes, f) == bytes;
}

static int load_goldens(goldens *g) {
    FILE *f = fopen(test_data("quant/goldens.bin"), "rb");
    if (!f)
        return 0;
    char magic[8];
    int ok = read_exact(f, magic, 8) && memcmp(magic, "AIRQGLD1", 8) == 0 &&
             read_exact(f, &g->rows, 4) && read_exact(f, &g->n, 4);
    size_t e = ok ? (size_t)g->rows * g->n : 0;
    if (ok) {
        g->x = malloc(e * 4);
        g->nf4_absmax = malloc(e / 64 * 4);
        g->nf4_code = malloc(e);
        g->nf4_deq = malloc(e * 4);
        g->q8_scale = malloc(e / 32 * 2);
        g->q8_code = malloc(e);
        g->q8_deq = malloc(e * 4);
        ok = read_exact(f, g->x, e * 4) && read_exact(f, g->nf4_absmax, e / 64 * 4) &&
             read_exact(f, g->nf4_code, e) && read_exact(f, g->nf4_deq, e * 4) &&
             read_exact(f, g->q8_scale, e / 32 * 2) && read_exact(f, g->q8_code, e) &&
             read_exact(f, g->q8_deq, e * 4);
    }
    fclose(f);
    return ok;
}

static void free_goldens(goldens *g) {
    free(g->x);
    free(g->nf4_absmax);
    free(g->nf4_code);
    free(g->nf4_deq);
    free(g->q8_scale);
    free(g->q8_code);
    free(g->q8_deq);
}

static int same_bits(float a, float b) {
    return memcmp(&a, &b, 4) == 0;
}

TEST(block_layout) {
    ASSERT_EQ_INT(sizeof(air_block_q8), 34);
    ASSERT_EQ_INT(sizeof(air_block_nf4), 36);
    ASSERT_EQ_INT(air_dtype_row_bytes(AIR_DT_NF4, 64), sizeof(air_block_nf4));
    /* byte j holds element j (low nibble) and j + 32 (high nibble) */
    float x[64] = {0};
    x[0] = -1.0f;                /* code 0 */
    x[1] = 1.0f;                 /* code 15 */
    x[32] = 0.5626170039176941f; /* code 13 */
    air_block_nf4 b;
    air_row_from_f32(AIR_DT_NF4, x, &b, 64);
    ASSERT_TRUE(same_bits(b.absmax, 1.0f));
    ASSERT_EQ_INT(b.qs[0], (13 << 4) | 0); /* elements 0 and 32 */
    ASSERT_EQ_INT(b.qs[1], (7 << 4) | 15); /* elements 1 and 33 (0.0 -> code 7) */
    ASSERT_EQ_INT(air_nf4_get(&b, 32), 13);
}

TEST(nf4_code_ties_go_low) {
    for (int i = 0; i < 15; i++) {
        float mid = (air_nf4_values[i] + air_nf4_values[i + 1]) * 0.5f;
        ASSERT_EQ_INT(air_nf4_code(mid), i);
        ASSERT_EQ_INT(air_nf4_code(nextafterf(mid, 2.0f)), i + 1);
        ASSERT_EQ_INT(air_nf4_code(air_nf4_values[i]), i);
    }
    ASSERT_EQ_INT(air_nf4_code(1.0f), 15);
    ASSERT_EQ_INT(air_nf4_code(0.0f), 7);
}

TEST(nf4_matches_bitsandbytes) {
    goldens g;
    memset(&g, 0, sizeof g);
    if (!load_goldens(&g)) {
        free_goldens(&g);
        T_FAIL("cannot read %s (regenerate with tests/gen/gen_quant_goldens.py)",
               test_data("quant/goldens.bin"));
    }
    int n = (int)g.n, nb = n / 64;
    air_block_nf4 *blk = malloc(air_dtype_row_bytes(AIR_DT_NF4, n));
    float *deq = malloc(sizeof(float) * n);
    int bad = 0;
    for (uint32_t r = 0; r < g.rows && !bad; r++) {
        const float *x = g.x + (size_t)r * n;
        air_row_from_f32(AIR_DT_NF4, x, blk, n);
        air_row_to_f32(AIR_DT_NF4, blk, deq, n);
        for (int b = 0; b < nb && !bad; b++)
            if (!same_bits(blk[b].absmax, g.nf4_absmax[r * nb + b])) {
                fprintf(stderr, "row %u block %d: absmax %.9g, bitsandbytes %.9g\n", r, b,
                        blk[b].absmax, g.nf4_absmax[r * nb + b]);
                bad = 1;
            }
        for (int i = 0; i < n && !bad; i++) {
            int code = air_nf4_get(&blk[i / 64], i % 64);
            int want = g.nf4_code[(size_t)r * n + i];
            float wd = g.nf4_deq[(size_t)r * n + i];
            if (code != want || !same_bits(deq[i], wd)) {
                fprintf(stderr,
                        "row %u element %d (x = %.9g): code %d, bitsandbytes %d; "
                        "dequantized %.9g, bitsandbytes %.9g\n",
                        r, i, x[i], code, want, deq[i], wd);
                bad = 1;
            }
        }
    }
    free(blk);
    free(deq);
    free_goldens(&g);
    ASSERT_TRUE(!bad);
}

TEST(q8_matches_bitsandbytes) {
    goldens g;
    memset(&g, 0, sizeof g);
    if (!load_goldens(&g)) {
        free_goldens(&g);
        T_FAIL("cannot read %s", test_data("quant/goldens.bin"));
    }
    int n = (int)g.n, nb = n / 32;
    air_block_q8 *blk = malloc(air_dtype_row_bytes(AIR_DT_Q8, n));
    float *deq = malloc(sizeof(float) * n);
    int bad = 0;
    for (uint32_t r = 0; r < g.rows && !bad; r++) {
        const float *x = g.x + (size_t)r * n;
        air_row_from_f32(AIR_DT_Q8, x, blk, n);
        air_row_to_f32(AIR_DT_Q8, blk, deq, n);
        for (int b = 0; b < nb && !bad; b++)
            if (blk[b].d != g.q8_scale[r * nb + b]) {
                fprintf(stderr, "row %u block %d: scale 0x%04x, expected 0x%04x\n", r, b, blk[b].d,
                        g.q8_scale[r * nb + b]);
                bad = 1;
            }
        for (int i = 0; i < n && !bad; i++) {
            int code = blk[i / 32].qs[i % 32], want = g.q8_code[(size_t)r * n + i];
            float wd = g.q8_deq[(size_t)r * n + i];
            if (code != want || !same_bits(deq[i], wd)) {
                fprintf(stderr,
                        "row %u element %d (x = %.9g): code %d, bitsandbytes %d; "
                        "dequantized %.9g, expected %.9g\n",
                        r, i, x[i], code, want, deq[i], wd);
                bad = 1;
            }
        }
    }
    free(blk);
    free(deq);
    free_goldens(&g);
    ASSERT_TRUE(!bad);
}

/* The block quantizer gives every value the code of the scalar search
 * air_nf4_code (the one the bitsandbytes goldens pin down), on values that
 * hit the midpoints exactly, NaN, infinities, zeros and subnormals. */
TEST(nf4_block_quantizer_matches_code_search) {
    enum { N = 64 * 64 };
    static float x[N];
    uint64_t r = 0x243f6a8885a308d3ull;
    for (int i = 0; i < N; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        float u = (float)((double)(r >> 11) / 9007199254740992.0 * 2 - 1);
        int kind = (int)(r % 11);
        if (kind == 0) { /* exactly on a midpoint once scaled by a block absmax of 1 */
            int m = (int)((r >> 8) % 15);
            x[i] = (air_nf4_values[m] + air_nf4_values[m + 1]) * 0.5f;
        } else if (kind == 1) {
            static const float special[] = {0.0f, -0.0f, 1e-40f, -1e-40f, 1.0f, -1.0f};
            x[i] = special[(r >> 8) % 6];
        } else {
            x[i] = u;
        }
    }
    for (int b = 0; b < N / 64; b++) /* most blocks have absmax exactly 1 */
        if (b % 4 != 3)
            x[b * 64 + 7] = 1.0f;
    x[64 * 5 + 3] = NAN;
    x[64 * 6 + 9] = INFINITY;
    x[64 * 7 + 1] = -INFINITY;
    static air_block_nf4 q[N / 64];
    air_nf4_quantize_row(x, q, N);
    for (int b = 0; b < N / 64; b++) {
        float amax = 0.0f;
        for (int i = 0; i < 64; i++)
            if (fabsf(x[b * 64 + i]) > amax)
                amax = fabsf(x[b * 64 + i]);
        float inv = 1.0f / (amax < 1e-38f ? 1e-38f : amax);
        for (int i = 0; i < 64; i++) {
            float v = x[b * 64 + i] * inv;
            v = v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);
            if (air_nf4_get(&q[b], i) != air_nf4_code(v))
                T_FAIL("block %d element %d (%.9g): code %d, the search gives %d", b, i,
                       x[b * 64 + i], air_nf4_get(&q[b], i), air_nf4_code(v));
        }
    }
}

/* Every ISA's weight quantizers (air_row_from_f32 on a forced kernel table)
 * write exactly the bytes of the scalar reference: random values at scales
 * from subnormal to 1e30, values on the NF4 midpoints, values whose Q8
 * product lies on or next to a rounding tie, zeros of both signs, all-zero
 * blocks, NaN and infinities. */
TEST(simd_quantizers_equal_the_reference) {
    enum { N = 64 * 1024 };
    static float x[N];
    uint64_t r = 0x9e3779b97f4a7c15ull;
    static const float scales[] = {1e-40f, 1e-30f, 1e-3f, 0.02f, 1.0f, 3.0f, 1e4f, 1e30f};
    for (int b = 0; b < N / 64; b++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        int kind = (int)(r % 8);
        float scale = scales[(r >> 8) % 8];
        for (int i = 0; i < 64; i++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            float u = (float)((double)(r >> 11) / 9007199254740992.0 * 2 - 1);
            float v = u * scale;
            if (kind == 1) { /* NF4 midpoints with absmax 1 */
                int m = (int)((r >> 5) % 15);
                v = i == 0 ? 1.0f : (air_nf4_values[m] + air_nf4_values[m + 1]) * 0.5f;
            } else if (kind == 2) { /* Q8 ties: x * 127 near k + 1/2, absmax 1 */
                int k = (int)((r >> 5) % 127);
                v = (float)((2 * k + 1) / 254.0);
                for (int s = (int)((r >> 12) % 5); s > 0; s--)
                    v = nextafterf(v, (r >> 20) & 1 ? 2.0f : -2.0f);
                if ((r >> 21) & 1)
                    v = -v;
                if (i == 0)
                    v = 1.0f;
            } else if (kind == 3) {
                static const float special[] = {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-38f, -3e38f};
                v = special[(r >> 5) % 6];
            } else if (kind == 4) {
                v = 0.0f;
            }
            x[b * 64 + i] = v;
        }
    }
    x[64 * 9 + 5] = NAN;
    x[64 * 10 + 2] = INFINITY;
    x[64 * 11 + 40] = -INFINITY;
    x[64 * 12 + 1] = NAN;
    x[64 * 12 + 2] = -NAN;
    static air_block_q8 q8_ref[N / 32], q8[N / 32];
    static air_block_nf4 nf4_ref[N / 64], nf4[N / 64];
    air_q8_quantize_row(x, q8_ref, N);
    air_nf4_quantize_row(x, nf4_ref, N);
    static const air_isa isas[] = {AIR_ISA_REF, AIR_ISA_AVX2, AIR_ISA_AVX512, AIR_ISA_NEON};
    int ran = 0;
    for (size_t k = 0; k < sizeof isas / sizeof isas[0]; k++) {
        if (!air_kernels_force_isa(isas[k]))
            continue;
        ran++;
        memset(q8, 0xa5, sizeof q8);
        memset(nf4, 0xa5, sizeof nf4);
        air_row_from_f32(AIR_DT_Q8, x, q8, N);
        air_row_from_f32(AIR_DT_NF4, x, nf4, N);
        for (int b = 0; b < N / 32; b++)
            if (memcmp(&q8[b], &q8_ref[b], sizeof q8[b]) != 0)
                T_FAIL("%s: Q8 block %d (x[0] = %.9g) differs from the reference",
                       air_isa_name(isas[k]), b, x[b * 32]);
        for (int b = 0; b < N / 64; b++)
            if (memcmp(&nf4[b], &nf4_ref[b], sizeof nf4[b]) != 0)
                T_FAIL("%s: NF4 block %d (x[0] = %.9g) differs from the reference",
                       air_isa_name(isas[k]), b, x[b * 64]);
    }
    air_kernels_force_isa(AIR_ISA_REF);
    ASSERT_TRUE(ran >= 1);
    /* NaN and the weights of a block with an infinity get code 0 */
    ASSERT_EQ_INT(q8_ref[9 * 2].qs[5], 0);
    ASSERT_EQ_INT(q8_ref[10 * 2].qs[0], 0);
}

/* Every ISA's 16-bit float rows (air_row_to_f32) give the reference's bits
 * for all 65536 values of f16 and of bf16 (NaN payloads, signaling ones
 * included), at every offset of a row's tail. */
TEST(half_rows_equal_the_reference_on_every_value) {
    enum { N = 65536 + 13 };
    static uint16_t h[N];
    static float ref[N], got[N];
    for (int i = 0; i < N; i++)
        h[i] = (uint16_t)(i * 40503u); /* every value, in a scrambled order */
    static const air_isa isas[] = {AIR_ISA_REF, AIR_ISA_AVX2, AIR_ISA_AVX512, AIR_ISA_NEON};
    for (int t = 0; t < 2; t++) {
        air_dtype dt = t ? AIR_DT_BF16 : AIR_DT_F16;
        for (int i = 0; i < N; i++)
            ref[i] = t ? air_bf16_to_f32(h[i]) : air_f16_to_f32(h[i]);
        for (size_t k = 0; k < sizeof isas / sizeof isas[0]; k++) {
            if (!air_kernels_force_isa(isas[k]))
                continue;
            for (int start = 0; start < 3; start++) {
                memset(got, 0, sizeof got);
                air_row_to_f32(dt, h + start, got + start, N - start);
                if (memcmp(got + start, ref + start, sizeof(float) * (N - start)) != 0)
                    T_FAIL("%s: %s row from %d differs from the reference", air_isa_name(isas[k]),
                           t ? "bf16" : "f16", start);
            }
        }
    }
    air_kernels_force_isa(AIR_ISA_REF);
}

int main(void) {
    RUN(block_layout);
    RUN(nf4_code_ties_go_low);
    RUN(nf4_matches_bitsandbytes);
    RUN(q8_matches_bitsandbytes);
    RUN(nf4_block_quantizer_matches_code_search);
    RUN(simd_quantizers_equal_the_reference);
    RUN(half_rows_equal_the_reference_on_every_value);
    return test_summary();
}
