/*
 * test_llamacpp_agreement.c - airllm.c against llama.cpp on the project's
 * default model, SmolLM2-135M-Instruct Q4_1 (scripts/fetch-default-model.sh
 * puts it in models/, or AIRLLM_MODELS_DIR). Prints a SKIP line and passes
 * when the file is absent, and under AddressSanitizer (too slow there).
 *
 * The model is opened through the public API with compression "none" (the
 * Q4_1/Q8_0 blocks dequantized exactly to f32 in the layer store) and
 * compared with tests/fixtures/gguf/llamacpp/ (tests/gen/gen_llamacpp_goldens.py):
 *   - the token ids of the chat prompt and of a ~300-token prose text, the
 *     chat template's rendering, the decoded text of llama.cpp's tokens;
 *   - against llama.cpp running the file as it is (int8-quantized
 *     activations, f16 KV cache): at least 32 of 40 greedy tokens identical,
 *     last-prompt logits and perplexity within the size of that rounding;
 *   - against llama.cpp running an F32 copy of the dequantized weights (the
 *     same math as ours): all 40 greedy tokens, logits rel. error <= 1e-4,
 *     perplexity within 0.1%.
 * The measured numbers are in docs/gguf.md.
 */
#include <time.h>

#include "llamacpp_golden.h"
#include "runtime/generate.h"
#include "util/error.h"

static char g_model[4096];
static air_model *g_m;
static cJSON *g_gold;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The golden's integer array `key`; *n its length. Caller frees. */
static int32_t *gold_ids(const char *key, int *n) {
    const cJSON *a = cJSON_GetObjectItem(g_gold, key), *e;
    *n = cJSON_GetArraySize(a);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(*n > 0 ? *n : 1));
    int k = 0;
    cJSON_ArrayForEach(e, a) ids[k++] = (int32_t)e->valueint;
    return ids;
}

static const char *gold_str(const char *key) {
    const cJSON *s = cJSON_GetObjectItem(g_gold, key);
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

/* Compares our ids for the golden's text `text_key` with llama.cpp's `ids_key`;
 * prints where they first differ (with the tokens' strings). */
static int ids_agree(const char *text_key, const char *ids_key) {
    const char *text = gold_str(text_key);
    if (!text)
        return 0;
    int n_ref;
    int32_t *ref = gold_ids(ids_key, &n_ref);
    int32_t *ids = NULL;
    size_t n = 0;
    if (air_tokenizer_encode(g_m->tok, text, strlen(text), 0, &ids, &n)) {
        fprintf(stderr, "  encode %s: %s\n", text_key, air_last_error());
        free(ref);
        return 0;
    }
    int ok = (int)n == n_ref;
    int first = -1;
    for (int i = 0; i < n_ref && i < (int)n; i++)
        if (ids[i] != ref[i]) {
            first = i;
            ok = 0;
            break;
        }
    if (!ok) {
        if (first < 0)
            first = (int)n < n_ref ? (int)n : n_ref;
        fprintf(stderr, "  %s: %zu ids, llama.cpp %d; first difference at index %d:\n", text_key, n,
                n_ref, first);
        for (int i = first > 2 ? first - 2 : 0; i < first + 4; i++) {
            const char *a = i < (int)n ? air_tokenizer_id_to_token(g_m->tok, ids[i]) : NULL;
            const char *b = i < n_ref ? air_tokenizer_id_to_token(g_m->tok, ref[i]) : NULL;
            fprintf(stderr, "    [%d] ours %d \"%s\"  llama.cpp %d \"%s\"\n", i,
                    i < (int)n ? ids[i] : -1, a ? a : "", i < n_ref ? ref[i] : -1, b ? b : "");
        }
    } else {
        fprintf(stderr, "  %s: %d ids, identical to llama.cpp\n", text_key, n_ref);
    }
    free(ids);
    free(ref);
    return ok;
}

TEST(tokenizer_prompt) {
    ASSERT_TRUE(ids_agree("prompt_text", "prompt_ids"));
}

TEST(tokenizer_prose) {
    ASSERT_TRUE(ids_agree("ppl_text", "ppl_ids"));
}

TEST(chat_template) {
    cJSON *msgs = cJSON_Duplicate(cJSON_GetObjectItem(g_gold, "messages"), 1);
    ASSERT_TRUE(msgs != NULL);
    /* as api_generate.c renders a conversation */
    const char *bos = air_tokenizer_bos_token(g_m->tok);
    const char *eos = air_tokenizer_eos_token(g_m->tok);
    char *out = NULL;
    air_status st = air_chat_template_render(g_m->tmpl, msgs, NULL, 1, bos ? bos : "",
                                             eos ? eos : "", NULL, &out);
    cJSON_Delete(msgs);
    ASSERT_OK(st);
    ASSERT_TRUE(g_m->template_src != NULL); /* the model's own template, not the fallback */
    ASSERT_EQ_STR(out, gold_str("prompt_text"));
    free(out);
}

/* ---------------------------------------------------------------------------
 * our outputs, computed once and compared with both llama.cpp runs
 * ------------------------------------------------------------------------- */

static int32_t *g_greedy; /* 40 greedy ids after the chat prompt */
static int g_n_greedy = -1;
static float *g_logits; /* logits at the last prompt position */
static double *g_nll;   /* NLL of prose tokens 1..n-1 */
static int g_n_nll = -1;

static air_status our_greedy(void) {
    if (g_n_greedy >= 0)
        return AIR_OK;
    int n_prompt, n_ref;
    int32_t *prompt = gold_ids("prompt_ids", &n_prompt);
    free(gold_ids("greedy_ids", &n_ref));
    air_kv kv;
    air_status st = air_kv_init(&kv, air_engine_hparams(g_m->engine), n_prompt + n_ref + 8);
    air_gen_options go = {0};
    go.max_tokens = n_ref;
    air_sampler_default_params(&go.sampler);
    go.sampler.temperature = 0; /* argmax; no EOS ids: never stops early */
    go.sampler.top_k = 0;
    go.sampler.top_p = 1;
    go.sampler.min_p = 0;
    go.sampler.repeat_penalty = 1;
    double t0 = now_s();
    if (!st)
        st = air_generate(g_m->engine, &kv, prompt, n_prompt, &go, &g_greedy, &g_n_greedy, NULL);
    air_kv_free(&kv);
    free(prompt);
    if (st)
        return st;
    char *text = NULL;
    if (!air_tokenizer_decode(g_m->tok, g_greedy, (size_t)g_n_greedy, 0, &text))
        fprintf(stderr, "  ours (%d prompt + %d tokens in %.2f s): \"%s\"\n", n_prompt, g_n_greedy,
                now_s() - t0, text);
    free(text);
    return AIR_OK;
}

static air_status our_logits_last(void) {
    if (g_logits)
        return AIR_OK;
    int n_prompt;
    int32_t *prompt = gold_ids("prompt_ids", &n_prompt);
    air_status st = lcpp_last_logits(g_m, prompt, n_prompt, &g_logits);
    free(prompt);
    return st;
}

static air_status our_nll(void) {
    if (g_n_nll >= 0)
        return AIR_OK;
    int n;
    int32_t *ids = gold_ids("ppl_ids", &n);
    const air_hparams *hp = air_engine_hparams(g_m->engine);
    int nv = hp->n_vocab;
    float *lg = malloc(sizeof(float) * (size_t)nv * n);
    air_kv kv;
    double t0 = now_s();
    air_status st = n > 1 ? air_kv_init(&kv, hp, n) : air_err(AIR_ERR_FORMAT, "no prose ids");
    if (!st) {
        st = air_engine_eval(g_m->engine, &kv, ids, n, 1, lg);
        air_kv_free(&kv);
    }
    if (!st) {
        fprintf(stderr, "  ours: %d prose tokens, all logits, in %.2f s\n", n, now_s() - t0);
        g_nll = malloc(sizeof(double) * (size_t)n);
        for (int i = 1; i < n; i++)
            g_nll[i - 1] = lcpp_nll(lg + (size_t)(i - 1) * nv, nv, ids[i]);
        g_n_nll = n - 1;
    }
    free(lg);
    free(ids);
    return st;
}

/* The golden object of a llama.cpp run: "q4_1" = the file as it is (the
 * root), "f32" = the dequantized copy. */
static const cJSON *run_of(const char *which) {
    return strcmp(which, "f32") == 0 ? cJSON_GetObjectItem(g_gold, "f32") : g_gold;
}

/* Number of leading greedy tokens identical to the llama.cpp run's. */
static int greedy_agreement(const char *which, int *n_ref) {
    const cJSON *run = run_of(which), *e;
    const cJSON *ref = cJSON_GetObjectItem(run, "greedy_ids");
    *n_ref = cJSON_GetArraySize(ref);
    int same = 0;
    cJSON_ArrayForEach(e, ref) {
        if (same >= g_n_greedy || g_greedy[same] != e->valueint)
            break;
        same++;
    }
    fprintf(stderr, "  greedy: %d of %d tokens identical to llama.cpp (%s)\n", same, *n_ref, which);
    if (same < *n_ref) {
        const cJSON *gap = cJSON_GetArrayItem(cJSON_GetObjectItem(run, "greedy_top2_gap"), same);
        fprintf(stderr,
                "  first difference at step %d: ours %d, llama.cpp %d (llama.cpp's top-2 "
                "logit gap there %.4f)\n",
                same, same < g_n_greedy ? g_greedy[same] : -1,
                cJSON_GetArrayItem(ref, same)->valueint, gap ? gap->valuedouble : -1.0);
    }
    return same;
}

/* ||ours - llama.cpp|| / ||llama.cpp|| of the last-prompt logits; -1 on error. */
static double logits_rel_err(const char *which) {
    const cJSON *f = cJSON_GetObjectItem(run_of(which), "logits_last_file");
    if (!cJSON_IsString(f))
        return -1;
    return lcpp_logits_rel_err(g_logits, air_engine_hparams(g_m->engine)->n_vocab,
                               f->valuestring, which);
}

/* ours / llama.cpp's perplexity of the prose, minus 1. */
static double ppl_rel_diff(const char *which) {
    return lcpp_ppl_rel_diff(g_nll, g_n_nll, run_of(which), which);
}

/* against llama.cpp as it runs the file: int8 activations, f16 KV cache */
TEST(greedy_vs_q4_1) {
    ASSERT_OK(our_greedy());
    int n_ref, same = greedy_agreement("q4_1", &n_ref);
    ASSERT_EQ_INT(g_n_greedy, n_ref);
    ASSERT_TRUE(same >= 32);
}

/* llama.cpp's own Q4_1 run is 2.0e-2 (rel.) from its F32 run: the bound is
 * the size of its activation rounding, not of ours */
TEST(logits_last_vs_q4_1) {
    ASSERT_OK(our_logits_last());
    double e = logits_rel_err("q4_1");
    ASSERT_TRUE(e >= 0 && e <= 3e-2);
}

/* llama.cpp's Q4_1 and F32 runs differ by 1.2% on this text */
TEST(perplexity_vs_q4_1) {
    ASSERT_OK(our_nll());
    ASSERT_TRUE(fabs(ppl_rel_diff("q4_1")) <= 0.02);
}

/* against llama.cpp on the dequantized weights in f32: the same math */
TEST(greedy_vs_f32) {
    ASSERT_OK(our_greedy());
    int n_ref, same = greedy_agreement("f32", &n_ref);
    ASSERT_EQ_INT(same, n_ref);
}

TEST(logits_last_vs_f32) {
    ASSERT_OK(our_logits_last());
    double e = logits_rel_err("f32");
    ASSERT_TRUE(e >= 0 && e <= 1e-4);
}

TEST(perplexity_vs_f32) {
    ASSERT_OK(our_nll());
    ASSERT_TRUE(fabs(ppl_rel_diff("f32")) <= 0.001);
}

/* llama.cpp's detokenization (special tokens shown) of its greedy ids */
TEST(detokenize) {
    int n;
    int32_t *ids = gold_ids("greedy_ids", &n);
    char *text = NULL;
    air_status st = air_tokenizer_decode(g_m->tok, ids, (size_t)n, 0, &text);
    free(ids);
    ASSERT_OK(st);
    ASSERT_EQ_STR(text, gold_str("greedy_text"));
    free(text);
}

int main(void) {
    if (!lcpp_find_model("SmolLM2-135M-Instruct.Q4_1.gguf", g_model, sizeof g_model)) {
        printf("SKIP: %s not found; run scripts/fetch-default-model.sh to compare with llama.cpp "
               "on the default model\n",
               g_model);
        return test_summary();
    }
#ifdef LCPP_ASAN
    /* the f32 store of 135M parameters takes over 10 minutes under
     * AddressSanitizer (about 15 s of CPU in the normal build) */
    printf("SKIP: the llama.cpp agreement test is too slow under AddressSanitizer; it runs in "
           "the normal build\n");
    return test_summary();
#endif
    if (!(g_gold = lcpp_load_golden("gguf/llamacpp/smollm2_q4_1.json")))
        return 1;
    double t0 = now_s();
    if (!(g_m = lcpp_open(g_model, "llamacpp-stores", 0))) {
        cJSON_Delete(g_gold);
        return 1;
    }
    fprintf(stderr, "  split to f32 and opened in %.2f s\n", now_s() - t0);

    RUN(tokenizer_prompt);
    RUN(tokenizer_prose);
    RUN(chat_template);
    RUN(detokenize);
    RUN(greedy_vs_q4_1);
    RUN(logits_last_vs_q4_1);
    RUN(perplexity_vs_q4_1);
    RUN(greedy_vs_f32);
    RUN(logits_last_vs_f32);
    RUN(perplexity_vs_f32);

    free(g_greedy);
    free(g_logits);
    free(g_nll);

    air_model_close(g_m);
    cJSON_Delete(g_gold);
    return test_summary();
}
