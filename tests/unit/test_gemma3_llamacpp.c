/*
 * test_gemma3_llamacpp.c - airllm.c against llama.cpp on real Gemma 3 weights:
 * gemma-3-270m (the base model), Q4_K_M GGUF (scripts/fetch-gemma3.sh puts it
 * in models/, or AIRLLM_MODELS_DIR). Prints a SKIP line and passes when the
 * file is absent, and under AddressSanitizer (too slow there).
 *
 * The model is opened through the public API with compression "none" (the
 * Q4_K / Q5_0 / Q6_K / Q8_0 blocks dequantized exactly to f32 in the layer
 * store) and compared with tests/fixtures/gguf/llamacpp/gemma3_270m_q4_k_m.*
 * (tests/gen/gen_gemma3_llamacpp_goldens.py):
 *   - the token ids (BOS added, as the file's tokenizer says) of three raw
 *     prompts and of a ~700-token prose text;
 *   - every tensor's dequantization, bit for bit the gguf package's;
 *   - against llama.cpp running an F32 copy of the dequantized weights (the
 *     same math as ours, but for llama.cpp's fp16 GELU table): 32 greedy
 *     tokens of each prompt identical, last-prompt logits rel. error <= 1e-3,
 *     perplexity within 0.1%;
 *   - against llama.cpp running the file as it is (int8-rounded activations,
 *     f16 KV cache): greedy paths identical at least as far as llama.cpp's
 *     own two runs agree, perplexity within 2% (its two runs: 1.24%);
 *   - raw completion through the public API (air_complete) continues the
 *     first prompt with llama.cpp's greedy text.
 * The prose passes the 512-position sliding window of the local layers. The
 * measured numbers are in docs/gguf.md.
 */
#include <xxhash.h>

#include "llamacpp_golden.h"
#include "runtime/generate.h"
#include "source/gguf.h"
#include "util/error.h"

#define MODEL_FILE "gemma-3-270m-q4_k_m.gguf"
#define GOLDEN "gguf/llamacpp/gemma3_270m_q4_k_m.json"

static char g_model[4096];
static air_model *g_m;
static cJSON *g_gold;

/* An integer array of the golden as int32; *n its length. Caller frees. */
static int32_t *ids_of(const cJSON *a, int *n) {
    const cJSON *e;
    *n = cJSON_GetArraySize(a);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(*n > 0 ? *n : 1));
    int k = 0;
    cJSON_ArrayForEach(e, a) ids[k++] = (int32_t)e->valueint;
    return ids;
}

static const cJSON *prompt_at(int k) {
    return cJSON_GetArrayItem(cJSON_GetObjectItem(g_gold, "prompts"), k);
}

static int n_prompts(void) { return cJSON_GetArraySize(cJSON_GetObjectItem(g_gold, "prompts")); }

/* Our ids for `text` (BOS as the tokenizer says) equal llama.cpp's `ref`. */
static int ids_agree(const char *what, const char *text, const cJSON *ref_arr) {
    int n_ref;
    int32_t *ref = ids_of(ref_arr, &n_ref);
    int32_t *ids = NULL;
    size_t n = 0;
    int ok = 0;
    if (air_tokenizer_encode(g_m->tok, text, strlen(text), 1, &ids, &n) == AIR_OK) {
        ok = (int)n == n_ref;
        for (int i = 0; ok && i < n_ref; i++)
            if (ids[i] != ref[i]) {
                fprintf(stderr, "  %s: id %d is %d, llama.cpp %d\n", what, i, ids[i], ref[i]);
                ok = 0;
            }
        fprintf(stderr, "  %s: %zu ids, llama.cpp %d%s\n", what, n, n_ref,
                ok ? ", identical" : "");
    }
    free(ids);
    free(ref);
    return ok;
}

TEST(tokenizer) {
    for (int k = 0; k < n_prompts(); k++) {
        const cJSON *p = prompt_at(k);
        char what[32];
        snprintf(what, sizeof what, "prompt %d", k);
        ASSERT_TRUE(ids_agree(what, cJSON_GetObjectItem(p, "text")->valuestring,
                              cJSON_GetObjectItem(p, "prompt_ids")));
    }
    ASSERT_TRUE(ids_agree("prose", cJSON_GetObjectItem(g_gold, "ppl_text")->valuestring,
                          cJSON_GetObjectItem(g_gold, "ppl_ids")));
}

/* Every tensor of the file dequantized by gguf_dequant.c, bit for bit what
 * the gguf package's gguf.quants.dequantize gives (XXH3-64 of the F32 bytes;
 * this is a little-endian machine, as the generator's). */
TEST(dequant_bit_exact) {
    air_gguf *g;
    ASSERT_OK(air_gguf_open(g_model, &g));
    const cJSON *want = cJSON_GetObjectItem(g_gold, "dequant_xxh3");
    int64_t n = air_gguf_n_tensors(g);
    ASSERT_EQ_INT(n, cJSON_GetArraySize(want));
    int checked = 0, bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const air_gguf_tensor *t = air_gguf_tensor_at(g, i);
        const cJSON *w = cJSON_GetObjectItem(want, t->name);
        int64_t ne = air_gguf_tensor_nelements(t);
        float *f = malloc(sizeof(float) * (size_t)ne);
        if (!w || !f || air_gguf_dequantize(g, t, f) != AIR_OK) {
            fprintf(stderr, "  %s: no golden or cannot dequantize: %s\n", t->name,
                    air_last_error());
            bad++;
            free(f);
            continue;
        }
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx",
                 (unsigned long long)XXH3_64bits(f, sizeof(float) * (size_t)ne));
        free(f);
        const char *ty = cJSON_GetArrayItem(w, 0)->valuestring;
        if (strcmp(hex, cJSON_GetArrayItem(w, 2)->valuestring) != 0 ||
            ne != (int64_t)cJSON_GetArrayItem(w, 1)->valuedouble ||
            strcmp(ty, air_ggml_type_name(t->ggml_type)) != 0) {
            fprintf(stderr, "  %s (%s): XXH3 %s, gguf.quants %s\n", t->name, ty, hex,
                    cJSON_GetArrayItem(w, 2)->valuestring);
            bad++;
        }
        checked++;
    }
    air_gguf_close(g);
    fprintf(stderr, "  %d tensors dequantized, %d differ from gguf.quants\n", checked, bad);
    ASSERT_EQ_INT(bad, 0);
}

/* ---------------------------------------------------------------------------
 * our outputs, computed once and compared with both llama.cpp runs
 * ------------------------------------------------------------------------- */

#define MAX_PROMPTS 8
static int32_t *g_greedy[MAX_PROMPTS];
static int g_n_greedy[MAX_PROMPTS];
static int g_have_greedy;
static float *g_logits; /* logits at the last position of prompt 0 */
static double *g_nll;   /* NLL of prose tokens 1..n-1 */
static int g_n_nll = -1;

static air_status our_greedy(void) {
    if (g_have_greedy)
        return AIR_OK;
    air_status st = AIR_OK;
    for (int k = 0; k < n_prompts() && k < MAX_PROMPTS && !st; k++) {
        int n_prompt, n_ref;
        int32_t *prompt = ids_of(cJSON_GetObjectItem(prompt_at(k), "prompt_ids"), &n_prompt);
        free(ids_of(cJSON_GetObjectItem(prompt_at(k), "greedy_ids"), &n_ref));
        air_kv kv;
        st = air_kv_init(&kv, air_engine_hparams(g_m->engine), n_prompt + n_ref + 8);
        air_gen_options go = {0};
        go.max_tokens = n_ref;
        air_sampler_default_params(&go.sampler);
        go.sampler.temperature = 0; /* argmax; no EOS ids: never stops early */
        if (!st) {
            st = air_generate(g_m->engine, &kv, prompt, n_prompt, &go, &g_greedy[k],
                              &g_n_greedy[k], NULL);
            air_kv_free(&kv);
        }
        free(prompt);
    }
    g_have_greedy = !st;
    return st;
}

static air_status our_logits_last(void) {
    if (g_logits)
        return AIR_OK;
    int n_prompt;
    int32_t *prompt = ids_of(cJSON_GetObjectItem(prompt_at(0), "prompt_ids"), &n_prompt);
    air_status st = lcpp_last_logits(g_m, prompt, n_prompt, &g_logits);
    free(prompt);
    return st;
}

/* NLL of every prose token after the first; evaluated in chunks of rows so
 * that the logits of a 262144-token vocabulary stay small. */
static air_status our_nll(void) {
    if (g_n_nll >= 0)
        return AIR_OK;
    int n;
    int32_t *ids = ids_of(cJSON_GetObjectItem(g_gold, "ppl_ids"), &n);
    const air_hparams *hp = air_engine_hparams(g_m->engine);
    int nv = hp->n_vocab, chunk = 64;
    float *lg = malloc(sizeof(float) * (size_t)nv * chunk);
    g_nll = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    air_kv kv;
    air_status st = n > 1 ? air_kv_init(&kv, hp, n) : air_err(AIR_ERR_FORMAT, "no prose ids");
    if (st) {
        free(lg);
        free(ids);
        return st;
    }
    for (int at = 0; at < n - 1 && !st; at += chunk) {
        int m = n - 1 - at < chunk ? n - 1 - at : chunk; /* rows at..at+m-1 predict at+1.. */
        if ((st = air_engine_eval(g_m->engine, &kv, ids + at, m, 1, lg)))
            break;
        for (int r = 0; r < m; r++)
            g_nll[at + r] = lcpp_nll(lg + (size_t)r * nv, nv, ids[at + r + 1]);
    }
    air_kv_free(&kv);
    if (!st)
        g_n_nll = n - 1;
    free(lg);
    free(ids);
    return st;
}

/* The golden object of a llama.cpp run: "quant" = the file as it is,
 * "f32" = the dequantized copy. */
static int is_f32(const char *which) { return strcmp(which, "f32") == 0; }

static const cJSON *greedy_ref(const char *which, int k) {
    if (is_f32(which))
        return cJSON_GetArrayItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(g_gold, "f32"), "greedy_ids"), k);
    return cJSON_GetObjectItem(prompt_at(k), "greedy_ids");
}

static const cJSON *gaps_ref(const char *which, int k) {
    if (is_f32(which))
        return cJSON_GetArrayItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(g_gold, "f32"), "greedy_top2_gap"), k);
    return cJSON_GetObjectItem(prompt_at(k), "greedy_top2_gap");
}

/* Leading greedy tokens of prompt k identical to llama.cpp's; *gap: llama.cpp's
 * top-2 logit gap at the first difference (0 if none). */
static int greedy_agreement(const char *which, int k, int *n_ref, double *gap) {
    const cJSON *ref = greedy_ref(which, k), *e;
    *n_ref = cJSON_GetArraySize(ref);
    *gap = 0;
    int same = 0;
    cJSON_ArrayForEach(e, ref) {
        if (same >= g_n_greedy[k] || g_greedy[k][same] != e->valueint)
            break;
        same++;
    }
    fprintf(stderr, "  prompt %d: %d of %d greedy tokens identical to llama.cpp (%s)\n", k, same,
            *n_ref, which);
    if (same < *n_ref) {
        const cJSON *g = cJSON_GetArrayItem(gaps_ref(which, k), same);
        *gap = g ? g->valuedouble : -1;
        fprintf(stderr, "  first difference at step %d: ours %d, llama.cpp %d (llama.cpp's top-2 "
                "logit gap there %.4f)\n", same, g_greedy[k][same],
                cJSON_GetArrayItem(ref, same)->valueint, *gap);
    }
    return same;
}

static const cJSON *run_of(const char *which) {
    return is_f32(which) ? cJSON_GetObjectItem(g_gold, "f32") : g_gold;
}

/* ||ours - llama.cpp|| / ||llama.cpp|| of the last-prompt logits of prompt 0;
 * -1 on error, 1e9 if the argmax differs. */
static double logits_rel_err(const char *which) {
    const cJSON *f = cJSON_GetObjectItem(run_of(which), "logits_last_file");
    if (!cJSON_IsString(f))
        return -1;
    return lcpp_logits_rel_err(g_logits, air_engine_hparams(g_m->engine)->n_vocab,
                               f->valuestring, which);
}

static double ppl_rel_diff(const char *which) {
    return lcpp_ppl_rel_diff(g_nll, g_n_nll, run_of(which), which);
}

/* against llama.cpp on the dequantized weights in f32: the same math */
TEST(greedy_vs_f32) {
    ASSERT_OK(our_greedy());
    for (int k = 0; k < n_prompts(); k++) {
        int n_ref;
        double gap;
        int same = greedy_agreement("f32", k, &n_ref, &gap);
        ASSERT_EQ_INT(g_n_greedy[k], n_ref);
        ASSERT_EQ_INT(same, n_ref);
    }
}

/* 3.6e-4 measured. llama.cpp's F32 run is not all f32: its GELU reads a
 * table of fp16 values at the fp16-rounded input (GGML_GELU_FP16); doing the
 * same here brings the error to 2.1e-4. Our own kernels (AVX-512 vs plain C)
 * agree to 1e-6 on this model. */
TEST(logits_last_vs_f32) {
    ASSERT_OK(our_logits_last());
    double e = logits_rel_err("f32");
    ASSERT_TRUE(e >= 0 && e <= 1e-3);
}

TEST(perplexity_vs_f32) {
    ASSERT_OK(our_nll());
    ASSERT_TRUE(fabs(ppl_rel_diff("f32")) <= 0.001);
}

/* Leading tokens on which llama.cpp's two runs of prompt k agree. */
static int lcpp_runs_agree(int k) {
    const cJSON *a = greedy_ref("quant", k), *b = greedy_ref("f32", k);
    int n = 0;
    while (n < cJSON_GetArraySize(a) &&
           cJSON_GetArrayItem(a, n)->valueint == cJSON_GetArrayItem(b, n)->valueint)
        n++;
    return n;
}

/* Against llama.cpp as it runs the file: int8-rounded activations, f16 KV
 * cache. Its greedy paths part from those of its own F32 run where the two
 * best logits are closer than that rounding moves them (it moves single
 * logits by up to 0.9 here); ours must follow the shipped run at least as far
 * as llama.cpp's F32 run does. */
TEST(greedy_vs_quant) {
    ASSERT_OK(our_greedy());
    for (int k = 0; k < n_prompts(); k++) {
        int n_ref;
        double gap;
        int same = greedy_agreement("quant", k, &n_ref, &gap), own = lcpp_runs_agree(k);
        fprintf(stderr, "  prompt %d: llama.cpp's shipped and F32 runs agree on %d tokens\n", k,
                own);
        ASSERT_TRUE(same >= own);
    }
}

/* llama.cpp's shipped run is 2.4e-2 (rel.) from its F32 run */
TEST(logits_last_vs_quant) {
    ASSERT_OK(our_logits_last());
    double e = logits_rel_err("quant");
    ASSERT_TRUE(e >= 0 && e <= 5e-2);
}

/* llama.cpp's shipped and F32 runs differ by 1.24% on this text */
TEST(perplexity_vs_quant) {
    ASSERT_OK(our_nll());
    ASSERT_TRUE(fabs(ppl_rel_diff("quant")) <= 0.02);
}

/* the public raw completion: BOS + the text, no template, greedy */
TEST(raw_completion) {
    const cJSON *p = prompt_at(0);
    int n_prompt, n_ref;
    free(ids_of(cJSON_GetObjectItem(p, "prompt_ids"), &n_prompt));
    int32_t *ref = ids_of(greedy_ref("f32", 0), &n_ref);
    /* llama.cpp's greedy ids up to the first EOS, where generation stops */
    int n_text = 0;
    while (n_text < n_ref && ref[n_text] != g_m->eos[0])
        n_text++;
    char *want = NULL;
    ASSERT_OK(air_tokenizer_decode(g_m->tok, ref, (size_t)n_text, 0, &want));
    free(ref);
    air_gen_params gp = air_gen_default_params();
    gp.temperature = 0;
    gp.max_tokens = n_text;
    gp.raw = 1;
    air_result r;
    ASSERT_OK(air_generate_text(g_m, NULL, cJSON_GetObjectItem(p, "text")->valuestring, &gp, &r));
    fprintf(stderr, "  raw: \"%s\" + \"%s\"\n", cJSON_GetObjectItem(p, "text")->valuestring,
            r.text);
    ASSERT_EQ_INT(r.prompt_tokens, n_prompt);
    ASSERT_EQ_STR(r.text, want);
    air_result_free(&r);
    free(want);
    /* and with a system prompt, which raw completion has no place for */
    ASSERT_TRUE(air_generate_text(g_m, "be brief", "Hi", &gp, &r) == AIR_ERR_INVALID_ARG);
}

int main(void) {
    if (!lcpp_find_model(MODEL_FILE, g_model, sizeof g_model)) {
        printf("SKIP: %s not found; run scripts/fetch-gemma3.sh to compare with llama.cpp on "
               "Gemma 3 270M\n", g_model);
        return test_summary();
    }
#ifdef LCPP_ASAN
    printf("SKIP: the Gemma 3 llama.cpp agreement test is too slow under AddressSanitizer; it "
           "runs in the normal build\n");
    return test_summary();
#endif
    if (!(g_gold = lcpp_load_golden(GOLDEN)))
        return 1;
    if (!(g_m = lcpp_open(g_model, "gemma3-stores", 1024))) {
        cJSON_Delete(g_gold);
        return 1;
    }
    RUN(dequant_bit_exact);
    RUN(tokenizer);
    RUN(greedy_vs_f32);
    RUN(logits_last_vs_f32);
    RUN(perplexity_vs_f32);
    RUN(greedy_vs_quant);
    RUN(logits_last_vs_quant);
    RUN(perplexity_vs_quant);
    RUN(raw_completion);

    for (int k = 0; k < MAX_PROMPTS; k++)
        free(g_greedy[k]);
    free(g_logits);
    free(g_nll);
    air_model_close(g_m);
    cJSON_Delete(g_gold);
    return test_summary();
}
