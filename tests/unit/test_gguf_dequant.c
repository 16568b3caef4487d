/*
 * test_gguf_dequant.c - GGML dequantization against the gguf Python
 * package's reference dequantizers, bit for bit.
 *
 * tests/fixtures/gguf/dequant.gguf (tests/gen/gen_gguf_goldens.py) holds, for
 * each type T, random blocks "T.raw" (4 rows of 512 elements) and the
 * reference result "T.expected" (F32).
 */
#include <stdint.h>

#include "source/gguf.h"
#include "test.h"

static const char *const g_types[] = {"F32",  "F16",  "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                                      "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "MXFP4"};

/* Compares n floats bit for bit; reports the first mismatch. */
static int same_bits(const float *got, const float *exp, int64_t n, const char *what) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t a, b;
        memcpy(&a, &got[i], 4);
        memcpy(&b, &exp[i], 4);
        if (a != b) {
            fprintf(stderr, "%s: element %lld: got %.9g (0x%08x), expected %.9g (0x%08x)\n", what,
                    (long long)i, (double)got[i], a, (double)exp[i], b);
            return 0;
        }
    }
    return 1;
}

TEST(every_type_bit_exact) {
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open(test_data("gguf/dequant.gguf"), &g));
    for (size_t k = 0; k < sizeof g_types / sizeof *g_types; k++) {
        char name[64];
        snprintf(name, sizeof name, "%s.raw", g_types[k]);
        const air_gguf_tensor *raw = air_gguf_find_tensor(g, name);
        snprintf(name, sizeof name, "%s.expected", g_types[k]);
        const air_gguf_tensor *exp = air_gguf_find_tensor(g, name);
        if (!raw || !exp)
            T_FAIL("%s: golden tensors missing", g_types[k]);
        ASSERT_EQ_STR(air_ggml_type_name(raw->ggml_type), g_types[k]);
        int64_t n = air_gguf_tensor_nelements(raw);
        ASSERT_EQ_INT(n, air_gguf_tensor_nelements(exp));
        ASSERT_EQ_INT(raw->ne[0], 512);
        float *got = malloc((size_t)n * sizeof *got), *want = malloc((size_t)n * sizeof *want);
        ASSERT_OK(air_gguf_dequantize(g, exp, want));
        ASSERT_OK(air_gguf_dequantize(g, raw, got));
        int ok = same_bits(got, want, n, g_types[k]);
        /* a row range gives the same values */
        memset(got, 0, (size_t)n * sizeof *got);
        ASSERT_OK(air_gguf_dequantize_rows(g, raw, 2, 2, got));
        ok = ok && same_bits(got, want + 2 * 512, 2 * 512, g_types[k]);
        free(got);
        free(want);
        if (!ok)
            T_FAIL("%s does not match the reference", g_types[k]);
    }
    air_gguf_close(g);
}

TEST(type_table) {
    ASSERT_EQ_INT(air_ggml_block_size(AIR_GGML_Q4_K), 256);
    ASSERT_EQ_INT(air_ggml_type_size(AIR_GGML_Q4_K), 144);
    ASSERT_EQ_INT(air_ggml_type_size(AIR_GGML_Q6_K), 210);
    ASSERT_EQ_INT(air_ggml_type_size(AIR_GGML_Q4_1), 20);
    ASSERT_EQ_INT(air_ggml_block_size(AIR_GGML_BF16), 1);
    ASSERT_EQ_INT(air_ggml_block_size(5), 0); /* removed Q4_2 */
    ASSERT_EQ_INT(air_ggml_block_size(-1), 0);
    ASSERT_EQ_INT(air_ggml_block_size(1000), 0);
    ASSERT_EQ_STR(air_ggml_type_name(1000), "?");
    ASSERT_TRUE(air_ggml_can_dequantize(AIR_GGML_Q5_K));
    ASSERT_TRUE(!air_ggml_can_dequantize(AIR_GGML_Q8_K));
}

/* Every type the gguf package knows has the same name and sizes here. */
TEST(type_table_matches_reference) {
    air_gguf *g = NULL;
    ASSERT_OK(air_gguf_open(test_data("gguf/dequant.gguf"), &g));
    int t1, t2, t3, t4;
    uint64_t n1, n2, n3, n4;
    const void *ids, *names, *bs, *ts;
    ASSERT_TRUE(air_gguf_get_arr(g, "golden.type_ids", &t1, &n1, &ids));
    ASSERT_TRUE(air_gguf_get_arr(g, "golden.type_names", &t2, &n2, &names));
    ASSERT_TRUE(air_gguf_get_arr(g, "golden.block_sizes", &t3, &n3, &bs));
    ASSERT_TRUE(air_gguf_get_arr(g, "golden.type_sizes", &t4, &n4, &ts));
    ASSERT_TRUE(t1 == AIR_GGUF_INT32 && t2 == AIR_GGUF_STRING && t3 == AIR_GGUF_INT32 &&
                t4 == AIR_GGUF_INT32);
    ASSERT_TRUE(n1 >= 30 && n1 == n2 && n1 == n3 && n1 == n4);
    for (uint64_t i = 0; i < n1; i++) {
        int id = ((const int32_t *)ids)[i];
        const char *name = ((const char *const *)names)[i];
        ASSERT_EQ_STR(air_ggml_type_name(id), name);
        ASSERT_EQ_INT(air_ggml_block_size(id), ((const int32_t *)bs)[i]);
        ASSERT_EQ_INT(air_ggml_type_size(id), ((const int32_t *)ts)[i]);
    }
    air_gguf_close(g);
}

TEST(unsupported_and_partial) {
    uint8_t blk[292] = {0};
    float out[256];
    ASSERT_ERR(air_ggml_dequantize(AIR_GGML_Q8_K, blk, out, 256), AIR_ERR_UNSUPPORTED,
               "GGML type Q8_K");
    ASSERT_ERR(air_ggml_dequantize(AIR_GGML_Q4_0, blk, out, 31), AIR_ERR_INVALID_ARG,
               "31 elements of GGML type Q4_0");
}

int main(void) {
    RUN(every_type_bit_exact);
    RUN(type_table);
    RUN(type_table_matches_reference);
    RUN(unsupported_and_partial);
    return test_summary();
}
