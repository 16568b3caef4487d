/*
 * test_compression.c - end-to-end accuracy of the 8bit and 4bit layer
 * stores on the reference models: logits against the unquantized
 * transformers reference, and greedy agreement. 8bit must keep the greedy
 * tokens; 4bit is reported and bounded loosely (random-weight models are a
 * hard case for 4-bit: no outliers to protect, flat distributions).
 */
#include <cjson/cJSON.h>

#include "model/forward.h"
#include "runtime/generate.h"
#include "source/source.h"
#include "store/store.h"
#include "test.h"
#include "util/fileio.h"

static cJSON *golden(const char *model) {
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s/golden.json", model);
    char *text;
    size_t len;
    if (air_read_file(test_data(rel), &text, &len))
        return NULL;
    cJSON *g = cJSON_Parse(text);
    free(text);
    return g;
}

static void check(const char *model, air_compression comp, double max_rel, int min_greedy) {
    cJSON *g = golden(model);
    ASSERT_TRUE(g != NULL);
    char name[128], rel[128];
    snprintf(name, sizeof name, "comp-%s-%s", model, air_compression_name(comp));
    snprintf(rel, sizeof rel, "models/%s", model);
    char store[1024];
    snprintf(store, sizeof store, "%s", test_tmp(name));
    air_source *src;
    ASSERT_OK(air_source_open_hfdir(test_data(rel), 0, &src));
    air_split_options so = {0};
    so.compression = comp;
    ASSERT_OK(air_store_split(src, store, &so));
    air_source_close(src);
    air_engine_options o;
    air_engine_default_options(&o);
    air_engine *e;
    ASSERT_OK(air_engine_open(store, &o, &e));
    air_hparams hp = *air_engine_hparams(e);
    int32_t prompt[64], greedy[64];
    int np = 0, ng = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(g, "prompt_ids")) prompt[np++] = it->valueint;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(g, "greedy_ids")) greedy[ng++] = it->valueint;
    air_kv kv;
    ASSERT_OK(air_kv_init(&kv, &hp, 128));
    float *lg = malloc(sizeof(float) * hp.n_vocab);
    ASSERT_OK(air_engine_eval(e, &kv, prompt, np, 0, lg));
    const cJSON *ref = cJSON_GetObjectItem(g, "logits_last");
    double num = 0, den = 0;
    for (int i = 0; i < hp.n_vocab; i++) {
        double r = cJSON_GetArrayItem(ref, i)->valuedouble;
        num += (lg[i] - r) * (lg[i] - r);
        den += r * r;
    }
    double err = sqrt(num / den);
    air_kv_free(&kv);
    ASSERT_OK(air_kv_init(&kv, &hp, 128));
    air_gen_options go = {0};
    go.max_tokens = ng;
    go.sampler.temperature = 0;
    int32_t *out;
    int n_out;
    ASSERT_OK(air_generate(e, &kv, prompt, np, &go, &out, &n_out, NULL));
    int same = 0;
    while (same < n_out && out[same] == greedy[same])
        same++;
    fprintf(stderr, "  %-8s %-5s logits rel. error %.4f, greedy identical for %d/%d tokens\n",
            model, air_compression_name(comp), err, same, ng);
    if (err > max_rel)
        T_FAIL("%s %s: logits rel. error %.4f > %.4f", model, air_compression_name(comp), err,
               max_rel);
    if (same < min_greedy)
        T_FAIL("%s %s: greedy identical for only %d tokens (need %d)", model,
               air_compression_name(comp), same, min_greedy);
    free(out);
    free(lg);
    air_kv_free(&kv);
    air_engine_close(e);
    cJSON_Delete(g);
}

static const char *models[] = {"llama", "mistral", "qwen2", "qwen3"};

/* 8bit: blockwise int8 weights (and int8 activations in the SIMD kernels).
 * The greedy bound for qwen3 is 0 on purpose: its random weights leave top-2
 * margins of 1.4% of the largest logit, and even weight-only int8 computed by
 * torch (block 32, absmax) diverges from the fp32 reference at token 28 on it
 * (see docs/quant-formats.md); the logits bound still holds it. */
TEST(eight_bit_keeps_greedy_tokens) {
    int min_greedy[4] = {32, 32, 32, 0};
    for (int i = 0; i < 4; i++)
        check(models[i], AIR_COMP_8BIT, 0.03, min_greedy[i]);
}

/* 4bit (NF4): reported; random gaussian weights are NF4's design point, but
 * four bits per weight through every layer leave ~25% logit error on models
 * this small. */
TEST(four_bit_stays_close) {
    for (int i = 0; i < 4; i++)
        check(models[i], AIR_COMP_4BIT, 0.35, 0);
}

/* Mixture-of-experts models: the router stays unquantized; a quantized
 * expert can still move a near-tie in routing, so only logits are bounded.
 * DeepSeek-V3's latent attention passes every key and value through two
 * quantized low-rank projections (wkv_a, wkv_b): measured 0.035 (8bit) and
 * 0.41 (4bit), bounded at 0.05 and 0.5. */
TEST(moe_compressed) {
    static const char *moe[] = {"qwen3_moe", "qwen2_moe", "mixtral", "deepseek_v3", "gpt_oss"};
    static const double b8[] = {0.03, 0.03, 0.03, 0.05, 0.03}, b4[] = {0.35, 0.35, 0.35, 0.5, 0.35};
    for (int i = 0; i < 5; i++) {
        check(moe[i], AIR_COMP_8BIT, b8[i], 0);
        check(moe[i], AIR_COMP_4BIT, b4[i], 0);
    }
}

int main(void) {
    RUN(eight_bit_keeps_greedy_tokens);
    RUN(four_bit_stays_close);
    RUN(moe_compressed);
    return test_summary();
}
