/*
 * llamacpp_golden.h - what the tests against llama.cpp on a real GGUF model
 * share (test_llamacpp_agreement.c: SmolLM2, test_gemma3_llamacpp.c: Gemma 3):
 * finding the model file, reading the golden JSON, opening the model with
 * compression "none", and comparing logits and perplexities with those
 * llama-cpp-python wrote (tests/gen/gen_*llamacpp_goldens.py).
 */
#ifndef AIR_TEST_LLAMACPP_GOLDEN_H
#define AIR_TEST_LLAMACPP_GOLDEN_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "api_internal.h"
#include "test.h"
#include "util/fileio.h"

/* GCC defines __SANITIZE_ADDRESS__, clang answers __has_feature */
#if defined(__SANITIZE_ADDRESS__)
#define LCPP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LCPP_ASAN 1
#endif
#endif

/* Path of models/<file> (or $AIRLLM_MODELS_DIR/<file>) into out; 1 if it
 * exists. */
static int lcpp_find_model(const char *file, char *out, size_t cap) {
    const char *dir = getenv("AIRLLM_MODELS_DIR");
    const char *root = getenv("AIR_SOURCE_DIR");
    if (dir)
        snprintf(out, cap, "%s/%s", dir, file);
    else
        snprintf(out, cap, "%s/models/%s", root ? root : ".", file);
    FILE *f = fopen(out, "rb");
    if (!f)
        return 0;
    fclose(f);
    return 1;
}

/* The golden JSON under tests/fixtures (NULL, with a message, on failure). */
static cJSON *lcpp_load_golden(const char *rel) {
    char *text = NULL;
    size_t len = 0;
    if (air_read_file(test_data(rel), &text, &len)) {
        fprintf(stderr, "golden: %s\n", air_last_error());
        return NULL;
    }
    cJSON *g = cJSON_Parse(text);
    free(text);
    if (!g)
        fprintf(stderr, "golden %s: malformed JSON\n", rel);
    else
        fprintf(stderr, "  llama.cpp reference: %s\n",
                cJSON_GetStringValue(cJSON_GetObjectItem(g, "reference")));
    return g;
}

/* Opens `path` through the public API, compression "none" (the GGUF blocks
 * dequantized exactly to f32), 2 threads, stores under the test tmp folder
 * `cache`; NULL with a message on failure or when there is no tokenizer. */
static air_model *lcpp_open(const char *path, const char *cache, int max_seq_len) {
    air_model_params mp = air_model_default_params();
    mp.compression = "none";
    mp.cache_dir = test_tmp(cache);
    mp.n_threads = 2;
    mp.max_seq_len = max_seq_len;
    air_model *m = NULL;
    if (air_model_open(path, &mp, &m)) {
        fprintf(stderr, "open %s: %s\n", path, air_last_error());
        return NULL;
    }
    if (!m->tok) {
        fprintf(stderr, "the model has no tokenizer\n");
        air_model_close(m);
        return NULL;
    }
    return m;
}

/* *out (n_vocab floats, caller frees) = logits after ids[0..n) from a fresh
 * KV cache; *out stays NULL on failure. */
static air_status lcpp_last_logits(air_model *m, const int32_t *ids, int n, float **out) {
    const air_hparams *hp = air_engine_hparams(m->engine);
    float *lg = malloc(sizeof(float) * hp->n_vocab);
    air_kv kv;
    air_status st = lg ? air_kv_init(&kv, hp, n) : AIR_ERR_NOMEM;
    if (!st) {
        st = air_engine_eval(m->engine, &kv, ids, n, 0, lg);
        air_kv_free(&kv);
    }
    if (st)
        free(lg);
    *out = st ? NULL : lg;
    return st;
}

/* -log softmax(z)[target] over nv logits, in double. */
static double lcpp_nll(const float *z, int nv, int target) {
    double mx = z[0], sum = 0;
    for (int j = 1; j < nv; j++)
        if (z[j] > mx)
            mx = z[j];
    for (int j = 0; j < nv; j++)
        sum += exp(z[j] - mx);
    return mx + log(sum) - z[target];
}

/* ||ours - llama.cpp|| / ||llama.cpp|| for the nv little-endian float32 of
 * tests/fixtures/gguf/llamacpp/<file>; -1 if unreadable, 1e9 if the argmax
 * differs. Prints both and the largest difference. */
static double lcpp_logits_rel_err(const float *ours, int nv, const char *file, const char *which) {
    char rel[256];
    snprintf(rel, sizeof rel, "gguf/llamacpp/%s", file);
    char *raw = NULL;
    size_t len = 0;
    if (air_read_file(test_data(rel), &raw, &len) || len != (size_t)nv * 4) {
        fprintf(stderr, "  %s: missing or not %d float32\n", rel, nv);
        free(raw);
        return -1;
    }
    double num = 0, den = 0, maxabs = 0;
    int am = 0, bm = 0;
    float bmax = -INFINITY;
    for (int i = 0; i < nv; i++) {
        const unsigned char *p = (const unsigned char *)raw + 4 * (size_t)i;
        uint32_t u = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        float r;
        memcpy(&r, &u, 4);
        double d = (double)ours[i] - r;
        num += d * d;
        den += (double)r * r;
        if (fabs(d) > maxabs)
            maxabs = fabs(d);
        if (ours[i] > ours[am])
            am = i;
        if (r > bmax) {
            bmax = r;
            bm = i;
        }
    }
    free(raw);
    double e = sqrt(num / (den > 0 ? den : 1));
    fprintf(stderr,
            "  last prompt position vs llama.cpp (%s): logits rel. error %.3g, max abs. "
            "difference %.3g, argmax ours %d llama.cpp %d\n",
            which, e, maxabs, am, bm);
    return am == bm ? e : 1e9;
}

/* ours / llama.cpp's perplexity minus 1, from our n NLLs and the run's
 * "ppl_nll" and "ppl"; 1e9 if the golden does not fit. */
static double lcpp_ppl_rel_diff(const double *nll, int n, const cJSON *run, const char *which) {
    const cJSON *ref_nll = cJSON_GetObjectItem(run, "ppl_nll");
    const cJSON *ref_ppl = cJSON_GetObjectItem(run, "ppl");
    if (!cJSON_IsNumber(ref_ppl) || cJSON_GetArraySize(ref_nll) != n || n <= 0) {
        fprintf(stderr, "  golden (%s): no \"ppl\" or not %d NLLs\n", which, n);
        return 1e9;
    }
    double sum = 0, worst = 0;
    int worst_at = 0;
    for (int i = 0; i < n; i++) {
        sum += nll[i];
        double d = fabs(nll[i] - cJSON_GetArrayItem(ref_nll, i)->valuedouble);
        if (d > worst) {
            worst = d;
            worst_at = i + 1;
        }
    }
    double ppl = exp(sum / n), ref = ref_ppl->valuedouble;
    fprintf(stderr,
            "  perplexity over %d tokens: ours %.4f, llama.cpp (%s) %.4f (%+.3f%%); "
            "largest per-token NLL difference %.3g (token %d)\n",
            n + 1, ppl, which, ref, 100 * (ppl - ref) / ref, worst, worst_at);
    return ppl / ref - 1;
}

#endif
