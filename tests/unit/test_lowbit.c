/*
 * test_lowbit.c - the low-precision checkpoint formats of mixture-of-experts
 * models against the reference code, bit for bit:
 *   - FP8 e4m3 with block scales (tests/gen/gen_fp8_goldens.py): every e4m3
 *     byte as torch converts it, whole weights as transformers' FP8
 *     dequantizer (block-multiple shape) and DeepSeek's rule (partial blocks)
 *   - MXFP4 (tests/gen/gen_mxfp4_goldens.py) as transformers'
 *     convert_moe_packed_tensors
 */
#include <stdint.h>

#include "quant/fp8.h"
#include "quant/mxfp4.h"
#include "source/safetensors.h"
#include "test.h"

static void *read_tensor(air_st_file *f, const char *name, const air_st_tensor **t) {
    *t = air_st_find(f, name);
    if (!*t)
        return NULL;
    void *p = malloc((*t)->nbytes);
    if (p && air_st_read(f, *t, p) != AIR_OK) {
        free(p);
        return NULL;
    }
    return p;
}

TEST(every_e4m3_code) {
    air_st_file *f;
    ASSERT_OK(air_st_open(test_data("quant/fp8_block.safetensors"), &f));
    const air_st_tensor *tc, *tf;
    uint8_t *codes = read_tensor(f, "codes", &tc);
    float *ref = read_tensor(f, "codes_f32", &tf);
    ASSERT_TRUE(codes && ref && tc->numel == 256);
    for (int i = 0; i < 256; i++) {
        float v = air_fp8_e4m3_to_f32(codes[i]);
        if (isnan(ref[i]) ? !isnan(v) : memcmp(&v, &ref[i], 4) != 0)
            T_FAIL("e4m3 byte 0x%02x: %.9g, torch gives %.9g", codes[i], v, ref[i]);
    }
    free(codes);
    free(ref);
    air_st_close(f);
}

static void check_weight(const char *name) {
    air_st_file *f;
    ASSERT_OK(air_st_open(test_data("quant/fp8_block.safetensors"), &f));
    char sn[64], rn[64];
    snprintf(sn, sizeof sn, "%s_scale_inv", name);
    snprintf(rn, sizeof rn, "%s_ref", name);
    const air_st_tensor *tw, *ts, *tr;
    uint8_t *w = read_tensor(f, name, &tw);
    float *s = read_tensor(f, sn, &ts);
    uint16_t *ref = read_tensor(f, rn, &tr);
    ASSERT_TRUE(w && s && ref);
    ASSERT_EQ_STR(tw->dtype_str, "F8_E4M3");
    int64_t rows = tw->shape[0], cols = tw->shape[1];
    uint16_t *out = malloc(sizeof(uint16_t) * (size_t)(rows * cols));
    air_fp8_block_dequant_bf16(w, rows, cols, s, 128, 128, out);
    for (int64_t i = 0; i < rows * cols; i++)
        if (out[i] != ref[i])
            T_FAIL("%s: element (%lld, %lld) is bf16 0x%04x, the reference 0x%04x", name,
                   (long long)(i / cols), (long long)(i % cols), out[i], ref[i]);
    free(out);
    free(w);
    free(s);
    free(ref);
    air_st_close(f);
}

TEST(whole_blocks_as_transformers) {
    check_weight("a");
}
TEST(partial_blocks_as_deepseek) {
    check_weight("b");
}

/* ref is (experts, inputs, outputs); the dequantizer gives (outputs, inputs) */
TEST(mxfp4_as_transformers) {
    air_st_file *f;
    ASSERT_OK(air_st_open(test_data("quant/mxfp4.safetensors"), &f));
    const air_st_tensor *tb, *ts, *tr;
    uint8_t *blocks = read_tensor(f, "blocks", &tb), *scales = read_tensor(f, "scales", &ts);
    uint16_t *ref = read_tensor(f, "ref", &tr);
    ASSERT_TRUE(blocks && scales && ref);
    int64_t E = tb->shape[0], rows = tb->shape[1], groups = tb->shape[2], in = groups * 32;
    uint16_t *out = malloc(sizeof(uint16_t) * (size_t)(rows * in));
    for (int64_t e = 0; e < E; e++) {
        air_mxfp4_dequant_bf16(blocks + e * rows * groups * 16, scales + e * rows * groups, rows,
                               groups, out);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t i = 0; i < in; i++) {
                uint16_t want = ref[(e * in + i) * rows + r];
                if (out[r * in + i] != want)
                    T_FAIL("expert %lld row %lld input %lld: bf16 0x%04x, transformers 0x%04x",
                           (long long)e, (long long)r, (long long)i, out[r * in + i], want);
            }
    }
    free(out);
    free(blocks);
    free(scales);
    free(ref);
    air_st_close(f);
}

int main(void) {
    RUN(every_e4m3_code);
    RUN(whole_blocks_as_transformers);
    RUN(partial_blocks_as_deepseek);
    RUN(mxfp4_as_transformers);
    return test_summary();
}
