/*
 * test_fp8.c - FP8 e4m3 block-scaled weights against the reference code
 * (tests/gen/gen_fp8_goldens.py): every e4m3 byte as torch converts it, and
 * whole weights dequantized to bf16 bit for bit as transformers' FP8
 * dequantizer (block-multiple shape) and DeepSeek's rule (partial blocks) do.
 */
#include <stdint.h>

#include "quant/fp8.h"
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

TEST(whole_blocks_as_transformers) { check_weight("a"); }
TEST(partial_blocks_as_deepseek) { check_weight("b"); }

int main(void) {
    RUN(every_e4m3_code);
    RUN(whole_blocks_as_transformers);
    RUN(partial_blocks_as_deepseek);
    return test_summary();
}
