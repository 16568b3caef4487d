/*
 * test_spec.c - speculative decoding is exact.
 *
 * On the reference models (tests/fixtures/models, written by transformers):
 *   - tree rows attend to their chain only: a tree pass gives the logits of
 *     the same tokens evaluated one path at a time, bit for bit
 *   - the KV cache keeps the accepted path and rolls back the rest: decoding
 *     after it equals decoding the path plainly
 *   - greedy output with a draft of other weights (qwen2 for llama), with a
 *     4bit copy as the draft, with lookup, with both; chains (a few rows)
 *     and trees (wide budgets); fixed and automatic budgets: identical to
 *     plain decoding
 *   - sampled output (temperature > 0, same seed): identical to plain
 *     sampling (every emitted token is drawn from the target's distribution
 *     with the same random draw)
 *   - EOS and a stop from the token callback inside an accepted run end the
 *     output where plain decoding ends it
 *   - a chi-square test of the sampled distribution on a 4-token-vocabulary
 *     model, with a draft that disagrees often
 */
#include <math.h>

#include "kernels/ops.h"
#include "model/forward.h"
#include "runtime/generate.h"
#include "runtime/spec.h"
#include "runtime/spec_share.h"
#include "runtime/sweep.h"
#include "source/source.h"
#include "store/store.h"
#include "test.h"
#include "test_tiny_llama.h"
#include "util/strbuf.h"

static const char *split(const char *model, const char *comp) {
    static char dir[8][1024];
    static int k;
    char *d = dir[k++ & 7];
    char name[128], rel[256];
    snprintf(name, sizeof name, "spec-%s-%s", model, comp);
    snprintf(d, 1024, "%s", test_tmp(name));
    snprintf(rel, sizeof rel, "models/%s", model);
    air_source *src = NULL;
    if (air_source_open_hfdir(test_data(rel), 0, &src)) {
        fprintf(stderr, "open %s: %s\n", model, air_last_error());
        return NULL;
    }
    air_split_options so = {0};
    air_compression_parse(comp, &so.compression);
    air_status st = air_store_split(src, d, &so);
    air_source_close(src);
    if (st) {
        fprintf(stderr, "split %s: %s\n", model, air_last_error());
        return NULL;
    }
    return d;
}

static int g_threads = 2;

static air_engine *open_store(const char *store, uint64_t budget) {
    air_engine_options o;
    air_engine_default_options(&o);
    o.n_threads = g_threads;
    o.stream.ram_budget = budget;
    air_engine *e = NULL;
    if (!store || air_engine_open(store, &o, &e)) {
        fprintf(stderr, "engine: %s\n", air_last_error());
        return NULL;
    }
    return e;
}

static air_engine *g_llama, *g_qwen2, *g_llama4;
static const int32_t k_prompt[] = {1, 17, 42, 99, 5, 17, 42, 7, 300, 12};
#define N_PROMPT ((int)(sizeof k_prompt / sizeof k_prompt[0]))

typedef struct {
    int stop_after; /* on_token stops after this many tokens (0: never) */
    int seen;
} stopper;

static int stop_cb(void *user, int32_t id) {
    (void)id;
    stopper *s = user;
    return s->stop_after && ++s->seen >= s->stop_after;
}

/* Generates n tokens after prompt; spec NULL = plain. */
static int gen_after(air_engine *e, const int32_t *prompt, int n_prompt,
                     const air_spec_options *spec, float temp, uint64_t seed, int n,
                     const int32_t *eos, int n_eos, int stop_after, int32_t *out,
                     air_gen_stats *gs) {
    air_kv kv;
    if (air_kv_init(&kv, air_engine_hparams(e), 256))
        return -1;
    air_gen_options go = {0};
    go.max_tokens = n;
    air_sampler_default_params(&go.sampler);
    go.sampler.temperature = temp;
    go.sampler.seed = seed;
    go.eos_ids = eos;
    go.n_eos = n_eos;
    stopper st = {stop_after, 0};
    go.on_token = stop_cb;
    go.user = &st;
    go.spec = spec;
    int32_t *ids = NULL;
    int n_out = -1;
    air_status s = air_generate(e, &kv, prompt, n_prompt, &go, &ids, &n_out, gs);
    air_kv_free(&kv);
    if (s) {
        fprintf(stderr, "generate: %s\n", air_last_error());
        free(ids);
        return -1;
    }
    memcpy(out, ids, sizeof(int32_t) * (size_t)n_out);
    free(ids);
    return n_out;
}

static int gen(air_engine *e, const air_spec_options *spec, float temp, uint64_t seed, int n,
               const int32_t *eos, int n_eos, int stop_after, int32_t *out, air_gen_stats *gs) {
    return gen_after(e, k_prompt, N_PROMPT, spec, temp, seed, n, eos, n_eos, stop_after, out, gs);
}

static air_spec_options spec_opts(air_engine *draft, int lookup, int max_nodes) {
    air_spec_options o = {0};
    o.draft = draft;
    o.lookup = lookup;
    o.max_nodes = max_nodes;
    o.n_vocab = 512;
    o.streamed = 1;
    return o;
}

TEST(tree_rows_equal_paths) {
    air_engine *e = g_llama;
    ASSERT_TRUE(e != NULL);
    const air_hparams *hp = air_engine_hparams(e);
    int nv = hp->n_vocab;
    /* tree under pending token 33 at position P:
     *   node0 = 7 (child of pending), node1 = 8 (child of pending),
     *   node2 = 9 (child of node0), node3 = 10 (child of node2), node4 = 11 (child of node1) */
    int32_t tok[6] = {33, 7, 8, 9, 10, 11};
    int32_t parent_node[6] = {-2, -1, -1, 0, 2, 1}; /* -2: the pending row */
    int32_t depth[6] = {0, 1, 1, 2, 3, 2};
    air_kv kv;
    ASSERT_OK(air_kv_init(&kv, hp, 64));
    float *lg = malloc(sizeof(float) * (size_t)nv * 6);
    ASSERT_OK(air_engine_eval(e, &kv, k_prompt, N_PROMPT, 0, lg));
    int base = kv.n_past;
    int32_t pos[6], slot[6], par[6];
    air_kv *kvs[6];
    uint8_t want[6];
    for (int r = 0; r < 6; r++) {
        pos[r] = base + depth[r];
        slot[r] = base + r;
        par[r] = r == 0 ? -1 : base + 1 + parent_node[r];
        kvs[r] = &kv;
        want[r] = 1;
    }
    air_batch b = {6, tok, pos, kvs, want, lg, slot, par};
    ASSERT_OK(air_engine_forward(e, &b));
    /* each row against its path evaluated plainly after the prompt */
    for (int r = 0; r < 6; r++) {
        int32_t path[4];
        int n = 0;
        for (int x = r; x >= 0; x = x == 0 ? -1 : 1 + parent_node[x])
            path[n++] = tok[x];
        int32_t fwd[4];
        for (int i = 0; i < n; i++)
            fwd[i] = path[n - 1 - i];
        air_kv kv2;
        ASSERT_OK(air_kv_init(&kv2, hp, 64));
        float *ref = malloc(sizeof(float) * (size_t)nv);
        ASSERT_OK(air_engine_eval(e, &kv2, k_prompt, N_PROMPT, 0, ref));
        ASSERT_OK(air_engine_eval(e, &kv2, fwd, n, 0, ref));
        int same = memcmp(ref, lg + (size_t)r * nv, sizeof(float) * (size_t)nv) == 0;
        free(ref);
        air_kv_free(&kv2);
        if (!same)
            T_FAIL("tree row %d differs from its path evaluated plainly", r);
    }
    /* keep the path pending -> node1 -> node4, roll back the rest; then the
     * next token's logits equal the plain sequence's */
    int32_t keep[3] = {base, base + 2, base + 5};
    air_kv_keep_path(&kv, base, keep, 3);
    ASSERT_EQ_INT(kv.n_past, base + 3);
    int32_t next = 77;
    float *a = malloc(sizeof(float) * (size_t)nv), *c = malloc(sizeof(float) * (size_t)nv);
    ASSERT_OK(air_engine_eval(e, &kv, &next, 1, 0, a));
    air_kv kv3;
    ASSERT_OK(air_kv_init(&kv3, hp, 64));
    int32_t seq[N_PROMPT + 4];
    memcpy(seq, k_prompt, sizeof k_prompt);
    seq[N_PROMPT] = 33;
    seq[N_PROMPT + 1] = 8;
    seq[N_PROMPT + 2] = 11;
    seq[N_PROMPT + 3] = 77;
    ASSERT_OK(air_engine_eval(e, &kv3, seq, N_PROMPT + 4, 0, c));
    double num = 0, den = 0;
    for (int i = 0; i < nv; i++) {
        num += (a[i] - c[i]) * (double)(a[i] - c[i]);
        den += c[i] * (double)c[i];
    }
    /* prefill in one batch vs step by step: same values up to rounding */
    ASSERT_TRUE(sqrt(num / den) < 1e-5);
    free(a);
    free(c);
    air_kv_free(&kv3);
    air_kv_free(&kv);
    free(lg);
}

TEST(tree_rejects_bad_parents) {
    air_engine *e = g_llama;
    air_kv kv;
    ASSERT_OK(air_kv_init(&kv, air_engine_hparams(e), 16));
    float *lg = malloc(sizeof(float) * 512 * 2);
    int32_t tok[2] = {5, 6}, pos[2] = {0, 1}, slot[2] = {0, 1}, par[2] = {1, 0};
    air_kv *kvs[2] = {&kv, &kv};
    uint8_t want[2] = {1, 1};
    air_batch b = {2, tok, pos, kvs, want, lg, slot, par};
    ASSERT_TRUE(air_engine_forward(e, &b) == AIR_ERR_INVALID_ARG); /* a cycle */
    par[0] = -1;
    slot[1] = 99;
    ASSERT_TRUE(air_engine_forward(e, &b) == AIR_ERR_INVALID_ARG); /* outside the cache */
    free(lg);
    air_kv_free(&kv);
}

static void expect_same(const char *what, air_engine *draft, int lookup, int max_nodes, float temp,
                        uint64_t seed) {
    int32_t plain[64], sp[64];
    air_gen_stats g0, g1;
    int n0 = gen(g_llama, NULL, temp, seed, 48, NULL, 0, 0, plain, &g0);
    air_spec_options so = spec_opts(draft, lookup, max_nodes);
    int n1 = gen(g_llama, &so, temp, seed, 48, NULL, 0, 0, sp, &g1);
    fprintf(stderr,
            "  %-34s %d tokens in %d passes (%.2f tokens/pass), %d/%d candidates accepted\n", what,
            n1, g1.sweeps, g1.sweeps ? (double)(n1 - 1) / g1.sweeps : 0, g1.accepted, g1.drafted);
    if (n0 != n1 || n0 <= 0 || memcmp(plain, sp, sizeof(int32_t) * (size_t)n0) != 0)
        T_FAIL("%s: output differs from plain decoding (%d vs %d tokens)", what, n1, n0);
    if (max_nodes > 0 && g1.drafted == 0)
        T_FAIL("%s: no candidates were proposed", what);
}

TEST(greedy_identity) {
    ASSERT_TRUE(g_qwen2 && g_llama4);
    expect_same("other-weights draft, chain (4)", g_qwen2, 0, 4, 0, 0);
    expect_same("other-weights draft, tree (32)", g_qwen2, 0, 32, 0, 0);
    expect_same("4bit copy draft, chain (4)", g_llama4, 0, 4, 0, 0);
    expect_same("4bit copy draft, chain (8)", g_llama4, 0, 8, 0, 0);
    expect_same("4bit copy draft, tree (64)", g_llama4, 0, 64, 0, 0);
    expect_same("lookup (16)", NULL, 1, 16, 0, 0);
    expect_same("lookup + 4bit draft (32)", g_llama4, 1, 32, 0, 0);
    expect_same("4bit draft, automatic budget", g_llama4, 1, 0, 0, 0);
}

TEST(accepts_runs_of_candidates) {
    /* the 4bit copy agrees with the target most of the time: passes must
     * carry more than one token on average, or speculation does nothing */
    int32_t out[64];
    air_gen_stats gs;
    air_spec_options so = spec_opts(g_llama4, 0, 8);
    int n = gen(g_llama, &so, 0, 0, 48, NULL, 0, 0, out, &gs);
    ASSERT_TRUE(n == 48);
    ASSERT_TRUE(gs.accepted > 0);
    ASSERT_TRUE(gs.sweeps < n - 1);
}

TEST(sampled_identity) {
    expect_same("sampled, 4bit draft tree (32)", g_llama4, 0, 32, 0.8f, 7);
    expect_same("sampled, other-weights draft (8)", g_qwen2, 1, 8, 1.0f, 11);
    expect_same("sampled, lookup (16)", NULL, 1, 16, 0.7f, 3);
}

TEST(eos_and_stop_inside_accepted_run) {
    int32_t plain[64], sp[64];
    air_gen_stats g0, g1;
    int n0 = gen(g_llama, NULL, 0, 0, 48, NULL, 0, 0, plain, &g0);
    ASSERT_TRUE(n0 == 48);
    air_spec_options so = spec_opts(g_llama4, 1, 16);
    /* a token plain decoding emits at index k, declared EOS: output ends before it */
    for (int k = 5; k < 40; k += 7) {
        int32_t eos = plain[k];
        int first = 0;
        while (plain[first] != eos)
            first++;
        int a = gen(g_llama, NULL, 0, 0, 48, &eos, 1, 0, plain, &g0);
        int b = gen(g_llama, &so, 0, 0, 48, &eos, 1, 0, sp, &g1);
        ASSERT_EQ_INT(a, first);
        ASSERT_EQ_INT(b, first);
        ASSERT_TRUE(g1.stopped_by_eos);
        ASSERT_TRUE(memcmp(plain, sp, sizeof(int32_t) * (size_t)a) == 0);
        n0 = gen(g_llama, NULL, 0, 0, 48, NULL, 0, 0, plain, &g0);
    }
    /* the token callback stops after k tokens */
    for (int k = 3; k < 30; k += 5) {
        int a = gen(g_llama, NULL, 0, 0, 48, NULL, 0, k, plain, &g0);
        int b = gen(g_llama, &so, 0, 0, 48, NULL, 0, k, sp, &g1);
        ASSERT_EQ_INT(a, k);
        ASSERT_EQ_INT(b, k);
        ASSERT_TRUE(memcmp(plain, sp, sizeof(int32_t) * (size_t)k) == 0);
    }
}

/* The automatic budget follows measured costs (synthetic times fed to
 * air_spec_observe; lookup on a periodic history proposes long chains). */
static int budget_after(double (*pass_seconds)(int rows), int agree, int passes) {
    air_spec_options o = {0};
    o.lookup = 1;
    o.n_vocab = 512;
    o.streamed = 1;
    air_spec *s;
    if (air_spec_new(&o, 1024, &s))
        return -1;
    int32_t hist[600];
    for (int i = 0; i < 600; i++)
        hist[i] = 10 + i % 7;
    for (int k = 0; k < passes; k++) {
        const air_spec_tree *t;
        int n = 60 + k;
        if (air_spec_propose(s, hist, n, air_spec_budget(s), &t))
            return -1;
        int depth = 0;
        for (int i = 0; i < t->n; i++)
            depth = t->depth[i] > depth ? t->depth[i] : depth;
        int acc = agree ? depth : 0;
        air_spec_observe(s, 1 + t->n, acc, NULL, acc + 1, pass_seconds(1 + t->n));
    }
    int b = air_spec_budget(s);
    air_spec_free(s);
    return b;
}

static double flat_cost(int rows) {
    (void)rows;
    return 1.0;
}
static double linear_cost(int rows) {
    return 0.01 * rows;
}
static double resident_cost(int rows) {
    return 0.01 + 0.001 * rows;
}

TEST(budget_from_measured_costs) {
    /* streamed: a pass costs the same with more rows, candidates are right */
    int b = budget_after(flat_cost, 1, 12);
    fprintf(stderr, "  flat pass cost, candidates right: budget %d\n", b);
    ASSERT_TRUE(b >= 8);
    /* resident: every row costs, candidates are wrong: plain decoding */
    b = budget_after(linear_cost, 0, 12);
    fprintf(stderr, "  pass cost grows with rows, candidates wrong: budget %d\n", b);
    ASSERT_EQ_INT(b, 0);
    /* every row costs as much as a pass: even right candidates only break even */
    b = budget_after(linear_cost, 1, 12);
    fprintf(stderr, "  pass cost proportional to rows, candidates right: budget %d\n", b);
    ASSERT_EQ_INT(b, 0);
    /* a resident pass whose rows are cheap next to its weights: right candidates pay */
    b = budget_after(resident_cost, 1, 12);
    fprintf(stderr, "  rows cheap next to the pass, candidates right: budget %d\n", b);
    ASSERT_TRUE(b >= 8);
}

/* A resident target and a draft never run yet: the draft's cost is guessed
 * from its size before it is paid (a probe only measures a candidate row,
 * with the pending token repeated, without the draft). Synthetic pass times:
 * c1 a plain pass, c2 a pass of two or more rows. Returns the draft passes
 * made over `passes` passes (-1 on error). */
static int draft_passes_after(double c1, double c2, double ratio, int passes) {
    air_spec_options o = spec_opts(g_llama4, 0, 0);
    o.streamed = 0;
    o.draft_ratio = ratio;
    air_spec *s;
    if (air_spec_new(&o, 1024, &s))
        return -1;
    air_spec_start(s, N_PROMPT);
    int32_t hist[256];
    for (int i = 0; i < 256; i++)
        hist[i] = i < N_PROMPT ? k_prompt[i] : 20 + (i * 37) % 400;
    int n = N_PROMPT, probes = 0;
    for (int k = 0; k < passes && n < 200; k++) {
        const air_spec_tree *t = NULL;
        int budget = air_spec_budget(s), rows = 1;
        air_spec_stats a, b;
        air_spec_get_stats(s, &a);
        if (budget > 0) {
            if (air_spec_propose(s, hist, n, budget, &t))
                return -1;
            rows = 1 + t->n;
        }
        air_spec_get_stats(s, &b);
        if (t && b.draft_passes == a.draft_passes) { /* a probe: the pending token again */
            if (t->n != 1 || t->tokens[0] != hist[n - 1]) {
                fprintf(stderr, "  a probe proposed %d nodes\n", t->n);
                return -1;
            }
            probes++;
        }
        air_spec_observe(s, rows, 0, NULL, 1,
                         (rows > 1 ? c2 : c1) + b.draft_seconds - a.draft_seconds);
        n++;
    }
    air_spec_stats st;
    air_spec_get_stats(s, &st);
    air_spec_free(s);
    fprintf(stderr, "  c2/c1 %.2f, draft %.3f of the target: %d probes, %d draft passes\n",
            c2 / c1, ratio, probes, st.draft_passes);
    return probes >= 1 ? st.draft_passes : -1;
}

TEST(resident_draft_priced_before_use) {
    /* a small model: two rows cost 1.25 passes, the draft 0.15 of the bytes:
     * speculation cannot pay, the draft never runs */
    ASSERT_EQ_INT(draft_passes_after(0.010, 0.0125, 0.15, 100), 0);
    /* a memory-bound model: two rows cost what one does, the draft is 1/70
     * of it: after the probe, the draft runs */
    ASSERT_TRUE(draft_passes_after(0.010, 0.010, 1.0 / 70, 100) > 0);
}

/* ---- a 4-token-vocabulary llama, written as an HF folder ---------------- */

#define TV_VOCAB 4
#define TV_D 32
#define TV_FF 64
#define TV_LAYERS 2

static const char *write_tiny_vocab(const char *name, uint64_t seed) {
    return write_tiny_llama(name, seed, TV_VOCAB, TV_D, TV_FF, TV_LAYERS);
}

static air_engine *open_tiny_vocab(const char *name, uint64_t seed) {
    const char *dir = write_tiny_vocab(name, seed);
    if (!dir) {
        fprintf(stderr, "cannot write %s\n", name);
        return NULL;
    }
    char store[1100];
    snprintf(store, sizeof store, "%s-store", dir);
    air_source *src = NULL;
    if (air_source_open_hfdir(dir, 0, &src)) {
        fprintf(stderr, "open %s: %s\n", dir, air_last_error());
        return NULL;
    }
    air_split_options so = {0};
    so.compression = AIR_COMP_NONE;
    air_status st = air_store_split(src, store, &so);
    air_source_close(src);
    if (st)
        fprintf(stderr, "split %s: %s\n", dir, air_last_error());
    g_threads = 1; /* passes of a few microseconds: no thread hand-offs */
    air_engine *e = st ? NULL : open_store(store, UINT64_MAX);
    g_threads = 2;
    return e;
}

/* Exact probability of every 3-token continuation of prompt {0, 1, 2}
 * (softmax of the target's logits at temperature 1), by enumeration. */
static void exact_joint(air_engine *e, double *p) {
    static const int32_t prompt[3] = {0, 1, 2};
    float lg[TV_VOCAB];
    double p1[TV_VOCAB];
    for (int a = 0; a < TV_VOCAB; a++)
        for (int b = 0; b < TV_VOCAB; b++) {
            air_kv kv;
            air_kv_init(&kv, air_engine_hparams(e), 16);
            air_engine_eval(e, &kv, prompt, 3, 0, lg);
            double pa[TV_VOCAB], pb[TV_VOCAB], pc[TV_VOCAB];
            air_softmax(lg, TV_VOCAB);
            for (int i = 0; i < TV_VOCAB; i++)
                pa[i] = lg[i];
            int32_t x = a;
            air_engine_eval(e, &kv, &x, 1, 0, lg);
            air_softmax(lg, TV_VOCAB);
            for (int i = 0; i < TV_VOCAB; i++)
                pb[i] = lg[i];
            x = b;
            air_engine_eval(e, &kv, &x, 1, 0, lg);
            air_softmax(lg, TV_VOCAB);
            for (int i = 0; i < TV_VOCAB; i++)
                pc[i] = lg[i];
            for (int c = 0; c < TV_VOCAB; c++)
                p[(a * TV_VOCAB + b) * TV_VOCAB + c] = pa[a] * pb[b] * pc[c];
            p1[a] = pa[a];
            air_kv_free(&kv);
        }
    (void)p1;
}

/* Pearson chi-square of counts against probabilities (cells with an
 * expectation below 5 pooled), and its degrees of freedom. */
static double chi_square(const int *count, const double *p, int cells, int n, int *dof) {
    double chi = 0, pool_e = 0, pool_o = 0;
    int k = 0;
    for (int i = 0; i < cells; i++) {
        double e = p[i] * n;
        if (e < 5) {
            pool_e += e;
            pool_o += count[i];
            continue;
        }
        chi += (count[i] - e) * (count[i] - e) / e;
        k++;
    }
    if (pool_e > 0) {
        chi += (pool_o - pool_e) * (pool_o - pool_e) / pool_e;
        k++;
    }
    *dof = k - 1;
    return chi;
}

TEST(chi_square_sampling) {
    air_engine *t = open_tiny_vocab("tinyvocab-target", 11),
               *d = open_tiny_vocab("tinyvocab-draft", 29);
    ASSERT_TRUE(t && d);
    enum { CELLS = TV_VOCAB * TV_VOCAB * TV_VOCAB, RUNS = 4000 };
    double p[CELLS];
    exact_joint(t, p);
    double sum = 0;
    for (int i = 0; i < CELLS; i++)
        sum += p[i];
    ASSERT_TRUE(fabs(sum - 1.0) < 1e-4);
    for (int mode = 0; mode < 3; mode++) {
        air_spec_options so = {0};
        so.draft = mode ? d : NULL;
        so.lookup = mode == 2;
        so.max_nodes = mode == 2 ? 32 : 2; /* a tree of width 3, a chain */
        so.n_vocab = TV_VOCAB;
        int count[CELLS] = {0}, drafted = 0, accepted = 0;
        for (int run = 0; run < RUNS; run++) {
            air_kv kv;
            ASSERT_OK(air_kv_init(&kv, air_engine_hparams(t), 16));
            air_gen_options go = {0};
            go.max_tokens = 3;
            go.sampler.temperature = 1.0f;
            go.sampler.top_p = 1.0f;
            go.sampler.repeat_penalty = 1.0f;
            go.sampler.seed =
                1000 + 100000 * (uint64_t)mode + (uint64_t)run; /* independent samples */
            go.spec = mode ? &so : NULL;
            static const int32_t prompt[3] = {0, 1, 2};
            int32_t *out = NULL;
            int n = 0;
            air_gen_stats gs;
            ASSERT_OK(air_generate(t, &kv, prompt, 3, &go, &out, &n, &gs));
            air_kv_free(&kv);
            ASSERT_EQ_INT(n, 3);
            count[(out[0] * TV_VOCAB + out[1]) * TV_VOCAB + out[2]]++;
            drafted += gs.drafted;
            accepted += gs.accepted;
            free(out);
        }
        int dof;
        double chi = chi_square(count, p, CELLS, RUNS, &dof);

        fprintf(stderr,
                "  %-22s chi-square %.1f with %d degrees of freedom (%d/%d candidates "
                "accepted)\n",
                mode == 0   ? "plain sampling"
                : mode == 1 ? "draft chain (2)"
                            : "draft + lookup tree",
                chi, dof, accepted, drafted);
        /* dof + 4.5 sqrt(dof) + 10 lies above the 0.1% critical value of chi-square for
         * these degrees of freedom (56.9 for 28); the seeds are fixed, so the outcome is too */
        if (chi > dof + 4.5 * sqrt((double)dof) + 10)
            T_FAIL("mode %d: the sampled distribution differs from the model's (chi-square %.1f, "
                   "%d degrees of freedom)",
                   mode, chi, dof);
        if (mode && accepted == 0)
            T_FAIL("mode %d: no candidate was ever accepted: the test exercises nothing", mode);
    }
    air_engine_close(t);
    air_engine_close(d);
}

/* ---- through the public API on tiny_chat (tokenizer, template, stops, JSON) -- */

static int api_collect(void *user, const char *piece) {
    air_sb_puts(user, piece);
    return 0;
}

/* Text, streamed text and finish reason of one generation. */
static int api_run(air_model *m, air_gen_params gp, const char *prompt, char **text,
                   char **streamed, const char **finish) {
    air_strbuf sb = {0};
    gp.on_text = api_collect;
    gp.user = &sb;
    air_result r;
    if (air_generate_text(m, NULL, prompt, &gp, &r)) {
        fprintf(stderr, "generate: %s\n", air_last_error());
        air_sb_free(&sb);
        return 0;
    }
    *text = r.text;
    *streamed = air_sb_take(&sb);
    if (!*streamed)
        *streamed = strdup("");
    *finish = r.finish_reason;
    return 1;
}

typedef struct {
    const char *name, *draft, *draft_comp;
    int lookup, draft_max;
} api_spec;

static void api_expect_same(air_model *m, air_gen_params gp, const char *prompt, const char *what) {
    static const api_spec cfg[] = {
        {"lookup", NULL, NULL, 1, 8},
        {"8bit draft, chain", "models/tiny_chat", "8bit", 0, 4},
        {"4bit draft + lookup, tree", "models/tiny_chat", "4bit", 1, 32},
        {"8bit draft, automatic", "models/tiny_chat", "8bit", -1, 0},
    };
    char *t0, *s0, *t1, *s1;
    const char *f0, *f1;
    gp.speculative = 0;
    if (!api_run(m, gp, prompt, &t0, &s0, &f0))
        T_FAIL("%s: plain generation failed", what);
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        air_gen_params g = gp;
        g.speculative = 1;
        g.draft_model = cfg[i].draft ? test_data(cfg[i].draft) : NULL;
        g.draft_compression = cfg[i].draft_comp;
        g.lookup = cfg[i].lookup;
        g.draft_max = cfg[i].draft_max;
        if (!api_run(m, g, prompt, &t1, &s1, &f1))
            T_FAIL("%s, %s: generation failed", what, cfg[i].name);
        int same = strcmp(t0, t1) == 0 && strcmp(s0, s1) == 0 && strcmp(f0, f1) == 0;
        if (!same)
            fprintf(stderr, "  plain: [%s] %s\n  %s: [%s] %s\n", f0, t0, cfg[i].name, f1, t1);
        free(t1);
        free(s1);
        if (!same)
            T_FAIL("%s, %s: the text differs from plain decoding", what, cfg[i].name);
    }
    fprintf(stderr, "  %s: same text, stream and finish (%s) in every configuration\n", what, f0);
    free(t0);
    free(s0);
}

TEST(api_same_text_stops_json) {
    air_model_params mp = air_model_default_params();
    mp.compression = "none";
    mp.cache_dir = test_tmp("spec-api-cache");
    air_model *m;
    ASSERT_OK(air_model_open(test_data("models/tiny_chat"), &mp, &m));
    air_gen_params gp = air_gen_default_params();
    gp.temperature = 0;
    gp.max_tokens = 40;
    api_expect_same(m, gp, "Hello, who are you?", "greedy");
    /* stop strings: cut at a piece of the greedy text */
    char *full, *st;
    const char *fin;
    gp.speculative = 0;
    ASSERT_TRUE(api_run(m, gp, "Hello, who are you?", &full, &st, &fin));
    size_t len = strlen(full);
    ASSERT_TRUE(len > 12);
    char stop[8];
    memcpy(stop, full + len / 2, 3);
    stop[3] = 0;
    free(full);
    free(st);
    const char *stops[] = {stop};
    gp.stop = stops;
    gp.n_stop = 1;
    api_expect_same(m, gp, "Hello, who are you?", "stop string");
    gp.stop = NULL;
    gp.n_stop = 0;
    /* JSON mode, sampled: the grammar sees the same tokens */
    gp.json = 1;
    gp.temperature = 1.0f;
    gp.top_k = 0;
    gp.top_p = 1.0f;
    gp.min_p = 0;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        gp.seed = seed;
        api_expect_same(m, gp, "Give me a JSON object.", "JSON mode, sampled");
    }
    air_model_close(m);
}

TEST(api_refuses_other_vocabulary) {
    air_model_params mp = air_model_default_params();
    mp.compression = "none";
    mp.cache_dir = test_tmp("spec-api-cache");
    air_model *m;
    ASSERT_OK(air_model_open(test_data("models/tiny_chat"), &mp, &m));
    air_gen_params gp = air_gen_default_params();
    gp.max_tokens = 4;
    gp.draft_model = test_data("gguf/tiny_llama.gguf");
    gp.draft_compression = "8bit";
    air_result r;
    ASSERT_TRUE(air_generate_text(m, NULL, "hi", &gp, &r) == AIR_ERR_INVALID_ARG);
    ASSERT_TRUE(strstr(air_last_error(), "vocabulary") != NULL);
    ASSERT_TRUE(strstr(air_last_error(), "tiny_llama.gguf") != NULL);
    gp.draft_model = NULL;
    gp.draft_max = 65;
    ASSERT_TRUE(air_generate_text(m, NULL, "hi", &gp, &r) == AIR_ERR_INVALID_ARG);
    air_model_close(m);
    air_model_cache_clear();
}

/* ---- several sequences in one pass (runtime/sweep.h) --------------------- */

#define SW_SEQS 4

/* Sequence i's prompt: the test prompt rotated, so the sequences differ. */
static void sw_prompt(int i, int32_t *p) {
    for (int j = 0; j < N_PROMPT; j++)
        p[j] = k_prompt[(j + 3 * i) % N_PROMPT] + (j == 0 ? i : 0);
}

static int sw_max_tokens(int i) {
    return 44 - 7 * i;
}

/* Runs SW_SEQS sequences together (sequence i joins at step 2 i, prompts in
 * chunks of 4 rows next to the others' decode and candidate rows), with
 * speculation so (NULL: none); out[i] gets each output. */
static int sweep_run(const air_spec_options *so, float temp, const int32_t *eos, int n_eos,
                     int stop_after, int32_t out[][64], int *n_out, air_sweep_info *tot) {
    air_seq seqs[SW_SEQS];
    stopper stop[SW_SEQS];
    air_seq *act[SW_SEQS];
    air_sweep_spec sw;
    memset(&sw, 0, sizeof sw);
    sw.share.max_total = 128;
    sw.draft_ok = 1;
    memset(tot, 0, sizeof *tot);
    int ok = 1, n_act = 0;
    for (int i = 0; i < SW_SEQS; i++) {
        int32_t p[N_PROMPT];
        sw_prompt(i, p);
        air_gen_options go = {0};
        go.max_tokens = sw_max_tokens(i);
        air_sampler_default_params(&go.sampler);
        go.sampler.temperature = temp;
        go.sampler.seed = 7 + (uint64_t)i;
        go.eos_ids = eos;
        go.n_eos = n_eos;
        stop[i] = (stopper){stop_after, 0};
        go.on_token = stop_cb;
        go.user = &stop[i];
        go.spec = so;
        if (air_seq_init(&seqs[i], air_engine_hparams(g_llama), p, N_PROMPT, &go, NULL, 256)) {
            fprintf(stderr, "seq: %s\n", air_last_error());
            ok = 0;
        }
    }
    for (int step = 0; ok && step < 400; step++) {
        n_act = 0;
        int live = 0;
        for (int i = 0; i < SW_SEQS; i++)
            if (step >= 2 * i) {
                act[n_act++] = &seqs[i];
                live += !seqs[i].done;
            }
        if (!live && n_act == SW_SEQS)
            break;
        air_sweep_info inf;
        if (air_sweep_step(g_llama, act, n_act, 4, so ? &sw : NULL, &inf)) {
            fprintf(stderr, "sweep: %s\n", air_last_error());
            ok = 0;
        }
        tot->rows += inf.rows;
        tot->decoded += inf.decoded;
        tot->tokens += inf.tokens;
        tot->drafted += inf.drafted;
        tot->accepted += inf.accepted;
    }
    for (int i = 0; i < SW_SEQS; i++) {
        if (seqs[i].err || !seqs[i].done) {
            fprintf(stderr, "seq %d: %s\n", i, seqs[i].err ? seqs[i].errmsg : "not done");
            ok = 0;
        }
        n_out[i] = seqs[i].n_gen;
        memcpy(out[i], seqs[i].gen, sizeof(int32_t) * (size_t)seqs[i].n_gen);
        air_seq_free(&seqs[i]);
    }
    return ok;
}

/* Every sequence of a speculative sweep run equals the sequence decoded
 * plainly alone (air_generate). Returns the run's totals. */
static void sweep_expect_same(const char *what, const air_spec_options *so, float temp,
                              int eos_k, int stop_after, air_sweep_info *tot) {
    int32_t out[SW_SEQS][64], alone[64], eos = -1;
    int n_out[SW_SEQS];
    air_gen_stats gs;
    if (eos_k >= 0) { /* a token sequence q emits plainly from index eos_k on becomes EOS */
        int32_t p[N_PROMPT];
        int q = eos_k % SW_SEQS;
        sw_prompt(q, p);
        int n = gen_after(g_llama, p, N_PROMPT, NULL, temp, 7 + (uint64_t)q, sw_max_tokens(q),
                          NULL, 0, 0, alone, &gs);
        /* the first token from index eos_k on that sequence q has not emitted before */
        int k = eos_k, seen = 1;
        for (; k < n && seen; k += seen) {
            seen = 0;
            for (int j = 0; j < k; j++)
                seen |= alone[j] == alone[k];
        }
        if (seen || k >= n)
            T_FAIL("%s: no new token from index %d of sequence %d's plain output (%d tokens)",
                   what, eos_k, q, n);
        eos = alone[k];
    }
    if (!sweep_run(so, temp, eos_k >= 0 ? &eos : NULL, eos_k >= 0, stop_after, out, n_out, tot))
        T_FAIL("%s: the sweep run failed", what);
    int ended_by_eos = 0;
    for (int i = 0; i < SW_SEQS; i++) {
        int32_t p[N_PROMPT];
        sw_prompt(i, p);
        int n = gen_after(g_llama, p, N_PROMPT, NULL, temp, 7 + (uint64_t)i, sw_max_tokens(i),
                          eos_k >= 0 ? &eos : NULL, eos_k >= 0, stop_after, alone, &gs);
        if (n < 0 || n != n_out[i] || memcmp(alone, out[i], sizeof(int32_t) * (size_t)n) != 0)
            T_FAIL("%s: sequence %d differs from plain decoding alone (%d vs %d tokens)", what, i,
                   n_out[i], n);
        ended_by_eos += gs.stopped_by_eos;
    }
    if (eos_k >= 0 && !ended_by_eos)
        T_FAIL("%s: no sequence met the EOS id", what);
    fprintf(stderr, "  %-40s %d decode steps, %d tokens (%.2f per step), %d/%d accepted\n", what,
            tot->decoded, tot->tokens, tot->decoded ? (double)tot->tokens / tot->decoded : 0,
            tot->accepted, tot->drafted);
}

TEST(sweep_greedy_identity) {
    air_sweep_info tot;
    air_spec_options so = spec_opts(NULL, 1, 8);
    sweep_expect_same("sweep, lookup (8)", &so, 0, -1, 0, &tot);
    ASSERT_TRUE(tot.drafted > 0);
    so = spec_opts(g_llama4, 0, 8);
    sweep_expect_same("sweep, 4bit copy draft, chain (8)", &so, 0, -1, 0, &tot);
    /* the copy agrees most of the time: steps carry several tokens */
    ASSERT_TRUE(tot.accepted > 0);
    ASSERT_TRUE(tot.tokens > tot.decoded + tot.decoded / 2);
    so = spec_opts(g_qwen2, 0, 32);
    sweep_expect_same("sweep, other-weights draft, tree (32)", &so, 0, -1, 0, &tot);
    ASSERT_TRUE(tot.drafted > 0);
    so = spec_opts(g_llama4, 1, 0);
    sweep_expect_same("sweep, lookup + 4bit draft, automatic", &so, 0, -1, 0, &tot);
    ASSERT_TRUE(tot.drafted > 0);
}

TEST(sweep_sampled_identity) {
    air_sweep_info tot;
    air_spec_options so = spec_opts(g_llama4, 0, 16);
    sweep_expect_same("sweep, sampled, 4bit draft (16)", &so, 0.8f, -1, 0, &tot);
    ASSERT_TRUE(tot.accepted > 0);
    so = spec_opts(g_qwen2, 1, 8);
    sweep_expect_same("sweep, sampled, other-weights + lookup (8)", &so, 1.0f, -1, 0, &tot);
}

TEST(sweep_eos_and_stop_inside_accepted_run) {
    air_sweep_info tot;
    air_spec_options so = spec_opts(g_llama4, 1, 16);
    static const int k_eos[] = {4, 9, 6, 7, 2, 21}; /* index k of sequence k % 4 */
    for (int i = 0; i < 6; i++)
        sweep_expect_same("sweep, EOS inside a run", &so, 0, k_eos[i], 0, &tot);
    for (int k = 3; k < 25; k += 7)
        sweep_expect_same("sweep, callback stop inside a run", &so, 0, -1, k, &tot);
}

/* The shared budget follows measured sweep costs (synthetic times). */
static void share_plan_after(double (*pass_seconds)(int rows), int agree, int n, int *budget) {
    air_spec_options o = {0};
    o.lookup = 1;
    o.n_vocab = 512;
    o.streamed = 1;
    air_spec *s[8] = {0};
    int room[8];
    for (int i = 0; i < n; i++) {
        air_spec_new(&o, 1024, &s[i]);
        room[i] = 64;
    }
    air_spec_share sh;
    memset(&sh, 0, sizeof sh);
    sh.max_total = 128;
    int32_t hist[600];
    for (int i = 0; i < 600; i++)
        hist[i] = 10 + i % 7;
    for (int k = 0; k < 16; k++) {
        air_spec_share_plan(&sh, s, room, n, n, n, budget);
        int rows = n;
        for (int i = 0; i < n; i++) {
            const air_spec_tree *t;
            air_spec_propose(s[i], hist, 60 + k, budget[i], &t);
            int depth = 0;
            for (int j = 0; j < t->n; j++)
                depth = t->depth[j] > depth ? t->depth[j] : depth;
            air_spec_record(s[i], 1 + t->n, agree ? depth : 0, NULL, 1 + (agree ? depth : 0));
            rows += t->n;
        }
        air_spec_share_observe(&sh, rows, pass_seconds(rows));
    }
    air_spec_share_plan(&sh, s, room, n, n, n, budget);
    for (int i = 0; i < n; i++)
        air_spec_free(s[i]);
}

TEST(sweep_budget_from_measured_costs) {
    int b[8];
    /* streamed: a sweep costs the same with more rows: every sequence speculates */
    share_plan_after(flat_cost, 1, 4, b);
    fprintf(stderr, "  flat sweep cost, 4 sequences: budgets %d %d %d %d\n", b[0], b[1], b[2], b[3]);
    for (int i = 0; i < 4; i++)
        ASSERT_TRUE(b[i] >= 8);
    /* the candidates of all sequences together stay within the cap */
    ASSERT_TRUE(b[0] + b[1] + b[2] + b[3] <= 128);
    /* resident: every row costs as much as a sequence's pass: off */
    share_plan_after(linear_cost, 1, 4, b);
    fprintf(stderr, "  sweep cost proportional to rows: budgets %d %d %d %d\n", b[0], b[1], b[2],
            b[3]);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ_INT(b[i], 0);
    /* wrong candidates never pay */
    share_plan_after(resident_cost, 0, 4, b);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ_INT(b[i], 0);
}

int main(void) {
    const char *llama = split("llama", "none"), *qwen2 = split("qwen2", "none"),
               *llama4 = split("llama", "4bit");
    g_llama = open_store(llama, 0);          /* the target streams */
    g_qwen2 = open_store(qwen2, UINT64_MAX); /* drafts stay resident */
    g_llama4 = open_store(llama4, UINT64_MAX);
    if (!g_llama)
        return 1;
    RUN(tree_rows_equal_paths);
    RUN(tree_rejects_bad_parents);
    RUN(greedy_identity);
    RUN(accepts_runs_of_candidates);
    RUN(sampled_identity);
    RUN(eos_and_stop_inside_accepted_run);
    RUN(budget_from_measured_costs);
    RUN(resident_draft_priced_before_use);
    RUN(chi_square_sampling);
    RUN(api_same_text_stops_json);
    RUN(api_refuses_other_vocabulary);
    RUN(sweep_greedy_identity);
    RUN(sweep_sampled_identity);
    RUN(sweep_eos_and_stop_inside_accepted_run);
    RUN(sweep_budget_from_measured_costs);
    air_engine_close(g_llama);
    air_engine_close(g_qwen2);
    air_engine_close(g_llama4);
    return test_summary();
}
