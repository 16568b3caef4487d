/*
 * test_engine.c - the forward pass against Hugging Face transformers.
 *
 * For each reference model (tests/fixtures/models/<arch>, made by
 * tests/gen/gen_models.py): split to a layer store, then
 *   - logits of every prompt position vs golden logits_all (rel. error <= 1e-3)
 *   - 32 greedy tokens identical to transformers' generate()
 *   - decode with the KV cache = full recompute (golden greedy_step_logits)
 *   - identical results with prefetch on/off and any RAM budget
 */
#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/forward.h"
#include "runtime/generate.h"
#include "source/source.h"
#include "store/store.h"
#include "test.h"
#include "test_golden.h"
#include "util/fileio.h"

/* tol: the largest relative logit error accepted (prefill and decode) */
static void check_model_tol(const char *model, double tol) {
    golden g;
    ASSERT_TRUE(load_golden(model, &g));
    const char *store = split_model(model, "none");
    ASSERT_TRUE(store != NULL);
    air_engine *e = open_engine(store, 1, 0);
    ASSERT_TRUE(e != NULL);
    air_hparams hpc = *air_engine_hparams(e);
    const air_hparams *hp = &hpc;
    int nv = hp->n_vocab;
    air_kv kv;
    ASSERT_OK(air_kv_init(&kv, hp, 128));

    /* prefill: every position */
    float *all = malloc(sizeof(float) * (size_t)nv * g.n_prompt);
    ASSERT_OK(air_engine_eval(e, &kv, g.prompt, g.n_prompt, 1, all));
    const cJSON *la = cJSON_GetObjectItem(g.root, "logits_all");
    double worst = 0;
    for (int p = 0; p < g.n_prompt; p++) {
        double r = rel_err(all + (size_t)p * nv, cJSON_GetArrayItem(la, p), nv);
        if (r > worst)
            worst = r;
        if (r > tol)
            T_FAIL("%s: position %d logits rel. error %.3g > %g", model, p, r, tol);
    }
    fprintf(stderr, "  %s: prefill logits max rel. error %.3g\n", model, worst);
    ASSERT_TRUE(rel_err(all + (size_t)(g.n_prompt - 1) * nv, cJSON_GetObjectItem(g.root, "logits_last"), nv) <= tol);

    /* greedy 32 tokens, with the KV cache */
    air_kv_free(&kv);
    ASSERT_OK(air_kv_init(&kv, hp, 128));
    air_gen_options go = {0};
    go.max_tokens = g.n_greedy;
    air_sampler_default_params(&go.sampler);
    go.sampler.temperature = 0;
    int32_t *out;
    int n_out;
    ASSERT_OK(air_generate(e, &kv, g.prompt, g.n_prompt, &go, &out, &n_out, NULL));
    ASSERT_EQ_INT(n_out, g.n_greedy);
    for (int i = 0; i < n_out; i++)
        if (out[i] != g.greedy[i])
            T_FAIL("%s: greedy token %d is %d, transformers gave %d", model, i, out[i], g.greedy[i]);

    /* cached decode logits == full recompute (golden, from transformers) */
    const cJSON *steps = cJSON_GetObjectItem(g.root, "greedy_step_logits");
    int step_idx[3] = {0, 15, 31};
    for (int s = 0; s < 3; s++) {
        int k = step_idx[s];
        /* replay: prompt + first k generated tokens, cached decode one by one */
        air_kv kv2;
        ASSERT_OK(air_kv_init(&kv2, hp, 128));
        float *lg = malloc(sizeof(float) * nv);
        ASSERT_OK(air_engine_eval(e, &kv2, g.prompt, g.n_prompt, 0, lg));
        for (int i = 0; i < k; i++)
            ASSERT_OK(air_engine_eval(e, &kv2, &g.greedy[i], 1, 0, lg));
        double r = rel_err(lg, cJSON_GetArrayItem(steps, s), nv);
        if (r > tol)
            T_FAIL("%s: cached decode step %d rel. error %.3g", model, k, r);
        if (s == 2)
            fprintf(stderr, "  %s: decode step %d logits rel. error %.3g\n", model, k, r);
        /* and our own full recompute */
        air_kv kv3;
        ASSERT_OK(air_kv_init(&kv3, hp, 128));
        int32_t seq[128];
        memcpy(seq, g.prompt, sizeof(int32_t) * g.n_prompt);
        memcpy(seq + g.n_prompt, g.greedy, sizeof(int32_t) * k);
        float *lf = malloc(sizeof(float) * nv);
        ASSERT_OK(air_engine_eval(e, &kv3, seq, g.n_prompt + k, 0, lf));
        double md = 0;
        for (int i = 0; i < nv; i++)
            md = fmax(md, fabs(lf[i] - lg[i]));
        if (md > 1e-4)
            T_FAIL("%s: cached vs recomputed logits differ by %.3g at step %d", model, md, k);
        air_kv_free(&kv2);
        air_kv_free(&kv3);
        free(lg);
        free(lf);
    }
    air_engine_close(e);

    /* prefetch off and RAM budgets give identical logits */
    uint64_t budgets[3] = {0, 1, UINT64_MAX};
    for (int pf = 0; pf < 2; pf++)
        for (int bi = 0; bi < 3; bi++) {
            air_store *st;
            ASSERT_OK(air_store_open(store, &st));
            uint64_t budget = budgets[bi] == 1 ? air_store_unit_bytes(st, 0) * 2 + air_store_unit_bytes(st, hp->n_layer) : budgets[bi];
            air_store_close(st);
            air_engine *e2 = open_engine(store, pf, budget);
            ASSERT_TRUE(e2 != NULL);
            air_kv kv4;
            ASSERT_OK(air_kv_init(&kv4, hp, 128));
            float *l2 = malloc(sizeof(float) * (size_t)nv * g.n_prompt);
            ASSERT_OK(air_engine_eval(e2, &kv4, g.prompt, g.n_prompt, 1, l2));
            /* two more passes to run through the cycle repeatedly */
            float *l3 = malloc(sizeof(float) * nv);
            ASSERT_OK(air_engine_eval(e2, &kv4, &g.greedy[0], 1, 0, l3));
            ASSERT_OK(air_engine_eval(e2, &kv4, &g.greedy[1], 1, 0, l3));
            if (memcmp(l2, all, sizeof(float) * (size_t)nv * g.n_prompt) != 0)
                T_FAIL("%s: logits differ with prefetch=%d budget=%llu", model, pf,
                       (unsigned long long)budget);
            air_streamer_stats ss;
            air_streamer_get_stats(air_engine_streamer(e2), &ss);
            if (bi == 2 && ss.bytes_read != 0)
                T_FAIL("%s: everything pinned but %llu bytes streamed", model,
                       (unsigned long long)ss.bytes_read);
            free(l2);
            free(l3);
            air_kv_free(&kv4);
            air_engine_close(e2);
        }
    free(out);
    free(all);
    air_kv_free(&kv);
    cJSON_Delete(g.root);
}

static void check_model(const char *model) { check_model_tol(model, 1e-3); }

/* The hub's classic Gemma 3 config.json (rope_theta + rope_scaling for the
 * global layers, rope_local_base_freq, sliding_window_pattern, no
 * layer_types) means the same as the transformers 5 form of the fixture. */
TEST(gemma3_classic_config) {
    char *text;
    size_t len;
    ASSERT_OK(air_read_file(test_data("models/gemma3/config.json"), &text, &len));
    cJSON *c = cJSON_Parse(text);
    free(text);
    ASSERT_TRUE(c != NULL);
    cJSON_DeleteItemFromObject(c, "rope_parameters");
    cJSON_DeleteItemFromObject(c, "layer_types");
    cJSON_AddNumberToObject(c, "rope_theta", 10000.0);
    cJSON_AddNumberToObject(c, "rope_local_base_freq", 100.0);
    cJSON_AddNumberToObject(c, "sliding_window_pattern", 3);
    cJSON *rs = cJSON_AddObjectToObject(c, "rope_scaling");
    cJSON_AddStringToObject(rs, "rope_type", "linear");
    cJSON_AddNumberToObject(rs, "factor", 4.0);
    const char *dir = test_tmp("gemma3-classic");
    char path[1200], target[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *out = cJSON_Print(c);
    cJSON_Delete(c);
    FILE *f = fopen(path, "w");
    ASSERT_TRUE(f != NULL);
    fputs(out, f);
    fclose(f);
    free(out);
    static const char *links[] = {"model.safetensors.index.json", "model-00001-of-00003.safetensors",
                                  "model-00002-of-00003.safetensors",
                                  "model-00003-of-00003.safetensors"};
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, links[i]);
        snprintf(target, sizeof target, "%s/models/gemma3/%s", getenv("AIR_TEST_DATA"), links[i]);
        ASSERT_EQ_INT(symlink(target, path), 0);
    }
    air_source *a, *b;
    ASSERT_OK(air_source_open_hfdir(test_data("models/gemma3"), 0, &a));
    ASSERT_OK(air_source_open_hfdir(dir, 0, &b));
    const air_hparams *x = &a->hp, *y = &b->hp;
    fprintf(stderr, "  period %d, window %d, rope %g (x%g) / local %g, attn scale %g\n",
            y->swa_period, y->sliding_window, y->rope_theta, y->rope_factor, y->rope_theta_swa,
            y->attn_scale);
    ASSERT_EQ_INT(y->swa_period, 3);
    ASSERT_EQ_INT(x->swa_period, y->swa_period);
    ASSERT_EQ_INT(x->rope_scaling, AIR_ROPE_SCALING_LINEAR);
    ASSERT_EQ_INT(x->rope_scaling, y->rope_scaling);
    ASSERT_TRUE(x->rope_theta == y->rope_theta && x->rope_factor == y->rope_factor &&
                x->rope_theta_swa == y->rope_theta_swa && x->attn_scale == y->attn_scale &&
                x->embd_scale == y->embd_scale && x->sliding_window == y->sliding_window);
    air_source_close(a);
    air_source_close(b);
}

TEST(llama) { check_model("llama"); }
TEST(mistral) { check_model("mistral"); }
TEST(qwen2) { check_model("qwen2"); }
TEST(qwen3) { check_model("qwen3"); }
/* Gemma: soft-capping, sliding window, local/global RoPE, (1 + w) norms */
TEST(gemma2) { check_model_tol("gemma2", 1e-4); }
TEST(gemma3) { check_model_tol("gemma3", 1e-4); }

int main(void) {
    RUN(llama);
    RUN(mistral);
    RUN(qwen2);
    RUN(qwen3);
    RUN(gemma2);
    RUN(gemma3);
    RUN(gemma3_classic_config);
    return test_summary();
}
