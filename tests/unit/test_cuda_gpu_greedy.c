/*
 * test_cuda_gpu_greedy.c - the forward pass on the GPU against the CPU and
 * against transformers, on the reference models (tests/fixtures/models:
 * llama, mistral, qwen2 with biases and tied embeddings, qwen3 with q/k
 * norms):
 *   - compression none: 32 greedy tokens identical to the CPU's and to
 *     transformers' generate(); every prompt position's logits within 1e-4
 *     of the CPU's
 *   - 8bit and 4bit: logits within the bounds the CPU is held to
 *     (test_compression: 0.03 and 0.35 of transformers' fp32 logits), and
 *     8bit greedy tokens as long as the CPU keeps them
 *   - streamed through two device buffers (a small --vram: only the head
 *     resident, then nothing) = resident, bit for bit, twice over
 *   - a 600-token prompt (5 chunks of rows, 3 splits of keys) and a batch of
 *     rows from two sequences at different positions, against the CPU
 * Needs a GPU: exits 77 (skipped) with the reason without one.
 */
#include "cuda/cuda_load.h"
#include "runtime/generate.h"
#include "test.h"
#include "test_cuda.h"
#pragma GCC diagnostic ignored "-Wunused-function" /* test_golden.h helpers */
#include "test_golden.h"

static air_engine *open_dev(const char *store, air_device dev, uint64_t vram) {
    air_engine_options o;
    air_engine_default_options(&o);
    o.n_threads = 2;
    o.device = dev;
    o.vram_budget = vram;
    o.max_seq = 1024;
    air_engine *e = NULL;
    if (air_engine_open(store, &o, &e)) {
        fprintf(stderr, "engine (%s): %s\n", dev == AIR_DEVICE_CUDA ? "cuda" : "cpu",
                air_last_error());
        return NULL;
    }
    return e;
}

/* ||a - b|| / ||b|| */
static double rel(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

/* All prompt logits and 32 greedy tokens of one engine. */
static air_status run(air_engine *e, const golden *g, float *all, int32_t **out, int *n_out) {
    const air_hparams *hp = air_engine_hparams(e);
    air_kv kv;
    air_status st = air_kv_init(&kv, hp, 128);
    if (st)
        return st;
    if (!(st = air_engine_eval(e, &kv, g->prompt, g->n_prompt, 1, all))) {
        air_kv_free(&kv);
        if ((st = air_kv_init(&kv, hp, 128)))
            return st;
        air_gen_options go = {0};
        go.max_tokens = g->n_greedy;
        air_sampler_default_params(&go.sampler);
        go.sampler.temperature = 0;
        st = air_generate(e, &kv, g->prompt, g->n_prompt, &go, out, n_out, NULL);
    }
    air_kv_free(&kv);
    return st;
}

static int same_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    int k = 0;
    while (k < na && k < nb && a[k] == b[k])
        k++;
    return k;
}

/* comp: "none", "8bit", "4bit"; bound: largest rel. error of the last
 * prompt position against transformers; min_greedy: tokens that must equal
 * transformers' (none: all, and all equal to the CPU's). */
static void check(const char *model, const char *comp, double bound, int min_greedy) {
    golden g;
    ASSERT_TRUE(load_golden(model, &g));
    const char *store = split_model(model, comp);
    ASSERT_TRUE(store != NULL);
    air_engine *ec = open_dev(store, AIR_DEVICE_CPU, 0), *eg = open_dev(store, AIR_DEVICE_CUDA, 0);
    ASSERT_TRUE(ec && eg);
    air_engine_gpu_stats gs;
    air_engine_gpu_get_stats(eg, &gs);
    ASSERT_EQ_INT(gs.on_gpu, 1);
    ASSERT_EQ_INT(gs.n_resident, gs.n_units); /* a tiny model: all resident */
    int nv = air_engine_hparams(ec)->n_vocab;
    size_t nall = (size_t)nv * g.n_prompt;
    float *lc = malloc(sizeof(float) * nall), *lg = malloc(sizeof(float) * nall);
    int32_t *oc = NULL, *og = NULL;
    int nc = 0, ng = 0;
    ASSERT_OK(run(ec, &g, lc, &oc, &nc));
    ASSERT_OK(run(eg, &g, lg, &og, &ng));
    double worst = 0;
    for (int p = 0; p < g.n_prompt; p++) {
        double r = rel(lg + (size_t)p * nv, lc + (size_t)p * nv, nv);
        worst = r > worst ? r : worst;
    }
    double vs_ref =
        rel_err(lg + (size_t)(g.n_prompt - 1) * nv, cJSON_GetObjectItem(g.root, "logits_last"), nv);
    double cpu_ref =
        rel_err(lc + (size_t)(g.n_prompt - 1) * nv, cJSON_GetObjectItem(g.root, "logits_last"), nv);
    int gpu_golden = same_prefix(og, ng, g.greedy, g.n_greedy);
    int gpu_cpu = same_prefix(og, ng, oc, nc);
    fprintf(stderr,
            "  %-8s %-5s GPU vs CPU logits %.2g; vs transformers GPU %.4f CPU %.4f; "
            "greedy: GPU = transformers for %d/%d, GPU = CPU for %d\n",
            model, comp, worst, vs_ref, cpu_ref, gpu_golden, g.n_greedy, gpu_cpu);
    if (!strcmp(comp, "none")) {
        if (worst > 1e-4)
            T_FAIL("%s none: GPU logits differ from the CPU's by %.3g", model, worst);
        if (gpu_cpu != nc || ng != nc)
            T_FAIL("%s none: GPU greedy tokens leave the CPU's at token %d", model, gpu_cpu);
    }
    if (vs_ref > bound)
        T_FAIL("%s %s: GPU logits rel. error %.4f > %.4f", model, comp, vs_ref, bound);
    if (gpu_golden < min_greedy)
        T_FAIL("%s %s: GPU greedy equal to transformers for %d tokens, need %d", model, comp,
               gpu_golden, min_greedy);
    free(lc);
    free(lg);
    free(oc);
    free(og);
    air_engine_close(ec);
    air_engine_close(eg);
    cJSON_Delete(g.root);
}

static const char *models[] = {"llama", "mistral", "qwen2", "qwen3"};

TEST(none_identical_greedy) {
    for (int i = 0; i < 4; i++)
        check(models[i], "none", 1e-3, 32);
}

TEST(eight_bit_within_cpu_bounds) {
    int min_greedy[4] = {32, 32, 32, 0}; /* as test_compression holds the CPU */
    for (int i = 0; i < 4; i++)
        check(models[i], "8bit", 0.03, min_greedy[i]);
}

TEST(four_bit_within_cpu_bounds) {
    for (int i = 0; i < 4; i++)
        check(models[i], "4bit", 0.35, 0);
}

/* Logits of a prompt on one engine. */
static air_status prompt_logits(air_engine *e, const int32_t *ids, int n, float *all) {
    air_kv kv;
    air_status st = air_kv_init(&kv, air_engine_hparams(e), 1024);
    if (!st)
        st = air_engine_eval(e, &kv, ids, n, 1, all);
    air_kv_free(&kv);
    return st;
}

TEST(streamed_equals_resident) {
    static const char *comps[] = {"none", "4bit"};
    for (int c = 0; c < 2; c++) {
        const char *store = split_model("qwen2", comps[c]);
        ASSERT_TRUE(store != NULL);
        air_engine *er = open_dev(store, AIR_DEVICE_CUDA, 0);
        ASSERT_TRUE(er != NULL);
        air_engine_gpu_stats gs;
        air_engine_gpu_get_stats(er, &gs);
        air_store *s = air_engine_store(er);
        int nu = air_store_n_units(s);
        uint64_t sum = 0, max_layer = 0, head = air_store_unit_bytes(s, nu - 1);
        for (int u = 0; u < nu; u++) {
            sum += air_store_unit_bytes(s, u);
            if (u < nu - 1 && air_store_unit_bytes(s, u) > max_layer)
                max_layer = air_store_unit_bytes(s, u);
        }
        uint64_t fixed = gs.vram_planned - sum;
        /* head resident, every layer streamed; then (when the head is not
         * larger than a layer) nothing resident */
        uint64_t big = head > max_layer ? head : max_layer;
        uint64_t budgets[2] = {fixed + head + 2 * max_layer, fixed + 2 * big};
        int want_resident[2] = {1, head > max_layer ? 1 : 0};
        int32_t ids[40];
        for (int i = 0; i < 40; i++)
            ids[i] = (i * 37 + 11) % air_engine_hparams(er)->n_vocab;
        int nv = air_engine_hparams(er)->n_vocab;
        float *a = malloc(sizeof(float) * nv * 40), *b = malloc(sizeof(float) * nv * 40);
        ASSERT_OK(prompt_logits(er, ids, 40, a));
        for (int k = 0; k < 2; k++) {
            air_engine *es = open_dev(store, AIR_DEVICE_CUDA, budgets[k]);
            ASSERT_TRUE(es != NULL);
            air_engine_gpu_get_stats(es, &gs);
            fprintf(stderr,
                    "  %s budget %llu: %d of %d units resident, %llu bytes streamed per "
                    "pass\n",
                    comps[c], (unsigned long long)budgets[k], gs.n_resident, gs.n_units,
                    (unsigned long long)gs.streamed_bytes);
            ASSERT_EQ_INT(gs.n_resident, want_resident[k]);
            /* twice: the second pass reuses the slots after the first */
            for (int rep = 0; rep < 2; rep++) {
                ASSERT_OK(prompt_logits(es, ids, 40, b));
                if (memcmp(a, b, sizeof(float) * nv * 40))
                    T_FAIL("%s: streamed logits (%d resident) differ from resident ones, "
                           "pass %d",
                           comps[c], gs.n_resident, rep);
            }
            air_engine_close(es);
        }
        free(a);
        free(b);
        air_engine_close(er);
    }
}

TEST(long_prompt_and_mixed_batch) {
    const char *store = split_model("llama", "none");
    ASSERT_TRUE(store != NULL);
    air_engine *ec = open_dev(store, AIR_DEVICE_CPU, 0), *eg = open_dev(store, AIR_DEVICE_CUDA, 0);
    ASSERT_TRUE(ec && eg);
    const air_hparams *hp = air_engine_hparams(ec);
    int nv = hp->n_vocab, n = 600;
    int32_t *ids = malloc(sizeof(int32_t) * n);
    for (int i = 0; i < n; i++)
        ids[i] = (i * 7919 + 13) % nv;
    float *a = malloc(sizeof(float) * nv * n), *b = malloc(sizeof(float) * nv * n);
    ASSERT_OK(prompt_logits(ec, ids, n, a));
    ASSERT_OK(prompt_logits(eg, ids, n, b));
    double worst = 0;
    int wp = 0;
    for (int p = 0; p < n; p++) {
        double r = rel(b + (size_t)p * nv, a + (size_t)p * nv, nv);
        if (r > worst)
            worst = r, wp = p;
    }
    fprintf(stderr, "  600-token prompt: GPU vs CPU logits max rel. error %.3g (position %d)\n",
            worst, wp);
    if (worst > 1e-4)
        T_FAIL("600-token prompt: position %d rel. error %.3g", wp, worst);
    /* two sequences: A holds 30 positions, B 5; one batch of A's next 2 rows
     * and B's next 1 row (as the server's scheduler sends them) */
    air_engine *es[2] = {ec, eg};
    float out[2][3 * 512];
    for (int k = 0; k < 2; k++) {
        air_kv ka, kb;
        ASSERT_OK(air_kv_init(&ka, hp, 64));
        ASSERT_OK(air_kv_init(&kb, hp, 64));
        float *tmp = malloc(sizeof(float) * nv);
        ASSERT_OK(air_engine_eval(es[k], &ka, ids, 30, 0, tmp));
        ASSERT_OK(air_engine_eval(es[k], &kb, ids + 100, 5, 0, tmp));
        int32_t tok[3] = {ids[30], ids[31], ids[105]}, pos[3] = {30, 31, 5};
        air_kv *kvs[3] = {&ka, &ka, &kb};
        uint8_t want[3] = {1, 1, 1};
        air_batch bt = {3, tok, pos, kvs, want, out[k], NULL, NULL};
        ASSERT_OK(air_engine_forward(es[k], &bt));
        free(tmp);
        air_kv_free(&ka);
        air_kv_free(&kb);
    }
    ASSERT_TRUE(nv <= 512);
    for (int r = 0; r < 3; r++) {
        double e = rel(out[1] + r * nv, out[0] + r * nv, nv);
        if (e > 1e-4)
            T_FAIL("mixed batch row %d: GPU vs CPU rel. error %.3g", r, e);
    }
    free(ids);
    free(a);
    free(b);
    air_engine_close(ec);
    air_engine_close(eg);
}

TEST(tree_rows_are_refused) {
    const char *store = split_model("llama", "none");
    ASSERT_TRUE(store != NULL);
    air_engine *eg = open_dev(store, AIR_DEVICE_CUDA, 0);
    ASSERT_TRUE(eg != NULL);
    air_kv kv;
    ASSERT_OK(air_kv_init(&kv, air_engine_hparams(eg), 64));
    int32_t tok[2] = {1, 2}, pos[2] = {0, 1}, slot[2] = {0, 1}, par[2] = {-1, 0};
    air_kv *kvs[2] = {&kv, &kv};
    float *lg = malloc(sizeof(float) * 2 * air_engine_hparams(eg)->n_vocab);
    air_batch b = {2, tok, pos, kvs, NULL, lg, slot, par};
    ASSERT_ERR(air_engine_forward(eg, &b), AIR_ERR_UNSUPPORTED, "speculative");
    free(lg);
    air_kv_free(&kv);
    air_engine_close(eg);
}

int main(void) {
    air_cu_info info;
    cuda_test_start(&info, "run the forward pass on");
    RUN(none_identical_greedy);
    RUN(eight_bit_within_cpu_bounds);
    RUN(four_bit_within_cpu_bounds);
    RUN(streamed_equals_resident);
    RUN(long_prompt_and_mixed_batch);
    RUN(tree_rows_are_refused);
    return test_summary();
}
