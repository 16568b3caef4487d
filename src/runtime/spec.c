/*
 * spec.c - candidate trees (n-gram lookup, resident draft) and the automatic
 * budget of candidate rows per pass.
 *
 * Lookup: for n-gram lengths 3, 2, 1 (3, 2 with a draft), the most recent earlier occurrences of
 * the sequence's last n tokens propose what followed them (at most a few
 * matches, merged into one trie).
 *
 * Draft tree, level by level (best-first over cumulative draft probability,
 * as SpecExec builds its trees): the draft's cache is brought up to the
 * sequence (only the tokens it has not seen are evaluated); from the pending
 * token's distribution the most probable tokens become the first level; each
 * level is evaluated in one draft pass (tree rows over the draft's own cache)
 * and the most probable continuations of the whole level form the next one,
 * until the budget of nodes is spent or the path probability is negligible.
 *
 * Budget (automatic): the candidate count is one of 0, 1, 2, 4, ..., 64 and
 * is chosen before every pass from measured costs:
 *   c(r)  the time of a target pass with r rows (moving average per power of
 *         two; a streamed pass barely grows with rows, a resident one does),
 *   d     the time of one draft pass (0 for lookup alone),
 *   a     the rate at which the target agrees with a candidate at the next
 *         depth of the walk (successes over trials along accepted paths), per
 *         budget level: the best measured at a level up to it (expect_level).
 * A budget of n nodes reaches depth D(n) and costs D(n) draft passes, so its
 * rate is (1 + a + ... + a^D) / (c(n + 1) + D d) tokens per second; the best
 * budget wins, and 0 (plain decoding, 1 / c(1)) wins where speculation does
 * not pay. Row counts not measured yet borrow the nearest measured cost, so a
 * larger budget is tried once and then judged on its own time (a plain pass
 * is measured first, whatever the starting budget); after 32 plain
 * passes in a row, one pass at budget 1 refreshes the measurements.
 */
#include "runtime/spec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/error.h"

#define N_LEVELS AIR_SPEC_LEVELS
static const int k_levels[N_LEVELS] = {0, 1, 2, 4, 8, 16, 32, 64};
#define EMA 0.3
#define REPROBE_AFTER 32
#define MAX_DEPTH 24
#define MIN_PATH_PROB 1e-3 /* the best path stops below this draft probability */
#define BRANCH_PROB 0.02   /* other paths are kept down to this draft probability */
#define MAX_WIDTH 8        /* nodes per level */
#define LOOKUP_MAX_MATCHES 4

typedef struct {
    double prob;
    int from; /* parent tree node (-1: the pending token) */
    int32_t id;
} cand;

/* The draft's part of a tree in the making. */
typedef struct {
    cand pool[AIR_SPEC_MAX_NODES * MAX_WIDTH + MAX_WIDTH]; /* children not in the tree yet */
    int np, budget, vocab, n_hist, next_slot;
    int stopped; /* growth ended: no more draft passes */
    double node_prob[AIR_SPEC_MAX_NODES];
    int32_t node_slot[AIR_SPEC_MAX_NODES]; /* in the draft's cache */
    int nodes[MAX_WIDTH], nn;              /* the nodes of the current pass */
    /* the draft's most probable children of each node it evaluated (index
     * node + 1: 0 is the pending token), for the calibration */
    int n_kid[AIR_SPEC_MAX_NODES + 1];
    int32_t kid_id[AIR_SPEC_MAX_NODES + 1][MAX_WIDTH];
    float kid_p[AIR_SPEC_MAX_NODES + 1][MAX_WIDTH];
} grow_state;

/* Calibration of the draft's probabilities: how often the target's token is
 * a child the draft gives probability p, by bins of p, apart for the draft's
 * most probable child (a greedy target takes it whenever both agree on the
 * best token, whatever p) and the others. */
#define CAL_BINS 9
static const double k_cal_edge[CAL_BINS] = {0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.01};
#define CAL_PRIOR 4.0 /* pseudo-observations at the draft's own probability */

struct air_spec {
    air_spec_options o;
    air_spec_tree tree;
    /* draft */
    air_kv dkv;
    int32_t *dhist; /* tokens in the draft's cache */
    int n_dhist, dvocab;
    grow_state g;
    /* automatic budget */
    int cur;              /* level of the next pass */
    int asked;            /* the budget of the last proposal */
    air_pass_costs costs; /* target passes */
    double draft_pass_s;                              /* one draft pass */
    int draft_passes;                                 /* in the last proposal */
    double lvl_depth[N_LEVELS], lvl_passes[N_LEVELS]; /* measured tree depth, draft passes */
    double lvl_step[N_LEVELS]; /* a whole step (proposing and pass) at each level */
    int lvl_step_n[N_LEVELS];
    int lvl_n[N_LEVELS];
    double propose_s;         /* the last proposal's time */
    double trials, successes; /* agreement along the walks */
    double lvl_trials[N_LEVELS], lvl_successes[N_LEVELS]; /* the same per budget level */
    int plain_run;            /* passes in a row at budget 0 */
    int probe;                /* the next proposal only measures a candidate row's cost */
    int probed;               /* the last proposal did */
    int seq_len;              /* tokens of the sequence (prompt + emitted) */
    double pass_hint;         /* a plain target pass, for guessing the draft's cost */
    double sync_row_s;        /* one row of catching the draft's cache up */
    double cal_hit[2][CAL_BINS], cal_try[2][CAL_BINS]; /* [0]: the most probable child */
    air_spec_stats st;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int level_of(int nodes) {
    int l = 0;
    while (l + 1 < N_LEVELS && k_levels[l + 1] <= nodes)
        l++;
    return l;
}

air_status air_spec_new(const air_spec_options *o, int max_seq, air_spec **out) {
    *out = NULL;
    air_spec *s = calloc(1, sizeof *s);
    if (!s)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    s->o = *o;
    if (s->o.max_nodes > AIR_SPEC_MAX_NODES)
        s->o.max_nodes = AIR_SPEC_MAX_NODES;
    s->cur = level_of(o->streamed ? 8 : 0); /* resident: plain until the first re-probe */
    s->costs.grow = !o->streamed;
    if (o->draft) {
        const air_hparams *hp = air_engine_hparams(o->draft);
        s->dvocab = hp->n_vocab;
        air_status st = air_kv_init(&s->dkv, hp, max_seq + AIR_SPEC_MAX_NODES + 1);
        if (st) {
            free(s);
            return st;
        }
        s->dhist = malloc(sizeof(int32_t) * (size_t)(max_seq + 1));
        s->g.vocab = o->n_vocab < s->dvocab ? o->n_vocab : s->dvocab;
        if (!s->dhist) {
            air_spec_free(s);
            return air_err(AIR_ERR_NOMEM, "out of memory for the draft's candidates");
        }
    }
    *out = s;
    return AIR_OK;
}

void air_spec_free(air_spec *s) {
    if (!s)
        return;
    if (s->o.draft)
        air_kv_free(&s->dkv);
    free(s->dhist);
    free(s);
}

void air_spec_start(air_spec *s, int n_prompt) {
    s->seq_len = n_prompt;
}

void air_spec_hint(air_spec *s, double plain_pass_s) {
    s->pass_hint = plain_pass_s;
}

void air_spec_probe(air_spec *s) {
    s->probe = 1;
}

int air_spec_level_nodes(int level) {
    return k_levels[level < 0 ? 0 : level >= N_LEVELS ? N_LEVELS - 1 : level];
}

int air_spec_fixed(const air_spec *s) {
    return s->o.max_nodes;
}

int air_spec_budget(const air_spec *s) {
    if (s->o.max_nodes > 0)
        return s->o.max_nodes;
    return k_levels[s->cur];
}

int air_spec_child(const air_spec_tree *t, int node, int32_t id) {
    for (int i = node + 1; i < t->n; i++)
        if (t->parent[i] == node && t->tokens[i] == id)
            return i;
    return -1;
}

void air_spec_rows(const air_spec_tree *t, int32_t pending, air_kv *kv, int32_t *tokens,
                   int32_t *pos, int32_t *slot, int32_t *parent, air_kv **kvs) {
    int base = kv->n_past;
    for (int r = 0; r <= t->n; r++) {
        tokens[r] = r ? t->tokens[r - 1] : pending;
        pos[r] = base + (r ? t->depth[r - 1] : 0);
        slot[r] = r ? air_spec_slot(base, r - 1) : base;
        parent[r] = r ? air_spec_slot(base, t->parent[r - 1]) : -1;
        kvs[r] = kv;
    }
}

/* The child of `node` carrying id, added when missing (-1: no room). */
static int add_child(air_spec_tree *t, int node, int32_t id, int budget) {
    int c = air_spec_child(t, node, id);
    if (c >= 0 || t->n >= budget)
        return c;
    t->tokens[t->n] = id;
    t->parent[t->n] = node;
    t->depth[t->n] = node < 0 ? 1 : t->depth[node] + 1;
    return t->n++;
}

static void lookup(air_spec *s, const int32_t *h, int n, int budget, int min_gram) {
    air_spec_tree *t = &s->tree;
    int matches = 0;
    for (int g = 3; g >= min_gram && t->n < budget && matches < LOOKUP_MAX_MATCHES; g--) {
        if (n < g + 1)
            continue;
        const int32_t *key = h + n - g;
        for (int i = n - g - 1; i >= 0 && t->n < budget && matches < LOOKUP_MAX_MATCHES; i--) {
            if (memcmp(h + i, key, sizeof(int32_t) * (size_t)g) != 0)
                continue;
            int node = -1;
            for (int j = i + g; j < n && node < MAX_DEPTH; j++) {
                int c = add_child(t, node, h[j], budget);
                if (c < 0 || t->depth[c] >= MAX_DEPTH)
                    break;
                node = c;
            }
            matches++;
        }
    }
}

static int by_prob_desc(const void *a, const void *b) {
    double x = ((const cand *)a)->prob, y = ((const cand *)b)->prob;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The `width` most probable ids of a row (softmax at temperature 1) with
 * their probabilities, best first. */
static int top_ids(const float *lg, int n_vocab, int width, int32_t *ids, double *p) {
    float mx = -INFINITY;
    for (int i = 0; i < n_vocab; i++)
        if (lg[i] > mx)
            mx = lg[i];
    double sum = 0;
    int k = 0;
    for (int i = 0; i < n_vocab; i++) {
        sum += exp((double)(lg[i] - mx));
        if (k < width || lg[i] > lg[ids[k - 1]]) {
            int j = k < width ? k++ : k - 1;
            while (j > 0 && lg[ids[j - 1]] < lg[i]) {
                ids[j] = ids[j - 1];
                j--;
            }
            ids[j] = i;
        }
    }
    for (int j = 0; j < k; j++)
        p[j] = exp((double)(lg[ids[j]] - mx)) / sum;
    return k;
}

/* The depth (draft passes) a budget is expected to reach before any is
 * measured: a chain. */
static int tree_depth(int budget) {
    return budget < MAX_DEPTH ? budget : MAX_DEPTH;
}

static int cal_bin(double p) {
    int b = 0;
    while (b + 1 < CAL_BINS && p >= k_cal_edge[b])
        b++;
    return b;
}

/* The chance that the target's token is a child the draft gives
 * probability p: measured per bin, starting from p itself. */
static double calibrated(const air_spec *s, int rank, double p) {
    int b = cal_bin(p), r = rank > 0;
    return (s->cal_hit[r][b] + CAL_PRIOR * p) / (s->cal_try[r][b] + CAL_PRIOR);
}

/* Adds the `MAX_WIDTH` most probable children of a draft-evaluated node
 * (its logits lg) to the candidate pool, each valued by the chance that the
 * target walks to it: its parent's times its own calibrated probability. */
static void pool_add(air_spec *s, int node, double value, const float *lg) {
    grow_state *g = &s->g;
    int32_t ids[MAX_WIDTH];
    double p[MAX_WIDTH];
    int k = top_ids(lg, g->vocab, MAX_WIDTH, ids, p);
    g->n_kid[node + 1] = k;
    for (int j = 0; j < k; j++) {
        g->kid_id[node + 1][j] = ids[j];
        g->kid_p[node + 1][j] = (float)p[j];
        g->pool[g->np++] = (cand){value * calibrated(s, j, p[j]), node, ids[j]};
    }
}

/* The walk's tokens (tokens[0] at the pending token's row, then one per
 * accepted candidate) against the draft's children along the walked path:
 * the counts of the calibration. */
static void calibrate(air_spec *s, const int32_t *tokens, int n) {
    const grow_state *g = &s->g;
    const air_spec_tree *t = &s->tree;
    int node = -1;
    for (int i = 0; i < n; i++) {
        /* the draft's children of this node against the target's token */
        for (int j = 0; j < g->n_kid[node + 1]; j++) {
            int b = cal_bin(g->kid_p[node + 1][j]), r = j > 0;
            s->cal_try[r][b] += 1;
            s->cal_hit[r][b] += g->kid_id[node + 1][j] == tokens[i];
        }
        if ((node = air_spec_child(t, node, tokens[i])) < 0)
            break;
    }
}

/* The tokens of h[0..n) the draft's cache holds (all but the last one at
 * most: its logits are needed). */
static int draft_common(const air_spec *s, const int32_t *h, int n) {
    int common = 0;
    while (common < s->n_dhist && common < n && s->dhist[common] == h[common])
        common++;
    return common == n ? n - 1 : common;
}

/* The rows that bring the draft's cache up to h[0..n) (only the tokens it
 * has not seen; the last one again when it has seen them all), appended at
 * row r of the batch arrays. Returns the rows, or -1 when the cache is full. */
static int sync_rows(air_spec *s, const int32_t *h, int n, int r, int32_t *tok, int32_t *pos,
                     int32_t *slot, int32_t *par, air_kv **kvs, uint8_t *want) {
    int common = draft_common(s, h, n);
    if (common > s->dkv.max_seq - 1 - AIR_SPEC_MAX_NODES)
        return -1;
    air_kv_rollback(&s->dkv, common); /* n_past always equals n_dhist */
    s->n_dhist = common;
    for (int j = common; j < n; j++, r++) {
        tok[r] = h[j];
        pos[r] = slot[r] = j;
        par[r] = j > common ? j - 1 : -1; /* a chain: causal rows */
        kvs[r] = &s->dkv;
        want[r] = j == n - 1;
    }
    return n - common;
}

/* Best-first over path probability, a batch per draft pass: the pool holds
 * the children of every evaluated node; each step takes the pool's best and
 * those within BRANCH_RATIO of it, evaluates them together and pools their
 * children. Budget left when growth stops goes to the pool's best leaves,
 * which need no draft pass. level_rows appends the next pass's rows of one
 * sequence (0: its growth stopped). */
#define BRANCH_RATIO 0.25
static int level_rows(air_spec *s, int r, int32_t *tok, int32_t *pos, int32_t *slot,
                      int32_t *par, air_kv **kvs, uint8_t *want) {
    grow_state *g = &s->g;
    air_spec_tree *t = &s->tree;
    g->nn = 0;
    if (g->stopped || t->n >= g->budget || g->np == 0)
        return 0;
    qsort(g->pool, (size_t)g->np, sizeof *g->pool, by_prob_desc);
    if (g->pool[0].prob < MIN_PATH_PROB)
        return 0;
    int c = 0;
    double floor = g->pool[0].prob * BRANCH_RATIO;
    for (; c < g->np && g->nn < MAX_WIDTH && t->n < g->budget; c++) {
        if (c > 0 && (g->pool[c].prob < floor || g->pool[c].prob < BRANCH_PROB))
            break;
        int parent = g->pool[c].from;
        if ((parent >= 0 && t->depth[parent] >= MAX_DEPTH) || g->next_slot >= s->dkv.max_seq)
            continue;
        int node = add_child(t, parent, g->pool[c].id, g->budget);
        if (node < 0)
            break;
        g->node_prob[node] = g->pool[c].prob;
        g->node_slot[node] = g->next_slot;
        g->nodes[g->nn++] = node;
        tok[r] = g->pool[c].id;
        pos[r] = g->n_hist + t->depth[node] - 1;
        slot[r] = g->next_slot++;
        par[r] = parent < 0 ? -1 : g->node_slot[parent];
        kvs[r] = &s->dkv;
        want[r] = 1;
        r++;
    }
    memmove(g->pool, g->pool + c, sizeof *g->pool * (size_t)(g->np - c));
    g->np -= c;
    if (t->n >= g->budget)
        g->nn = 0; /* the budget is spent: the last nodes stay leaves */
    g->stopped = g->nn == 0;
    return g->nn;
}

/* Leaves from the pool: no draft pass needed. */
static void add_leaves(air_spec *s) {
    grow_state *g = &s->g;
    air_spec_tree *t = &s->tree;
    qsort(g->pool, (size_t)g->np, sizeof *g->pool, by_prob_desc);
    for (int c = 0; c < g->np && t->n < g->budget && g->pool[c].prob >= BRANCH_PROB; c++)
        if (g->pool[c].from < 0 || t->depth[g->pool[c].from] < MAX_DEPTH)
            add_child(t, g->pool[c].from, g->pool[c].id, g->budget);
}

/* One draft pass over the rows of several sequences; each sequence's share
 * of its time goes into its draft pass time. */
static air_status draft_pass(air_spec *const *s, const int *in, int count, const air_batch *b) {
    double t0 = now_s();
    air_status st = air_engine_forward(s[0]->o.draft, b);
    double share = (now_s() - t0) / count;
    for (int i = 0; i < count; i++) {
        air_spec *q = s[in[i]];
        q->draft_passes++;
        q->st.draft_passes++;
        q->draft_pass_s = q->draft_pass_s > 0 ? (1 - EMA) * q->draft_pass_s + EMA * share : share;
        q->propose_s += share;
    }
    return st;
}

air_status air_spec_propose_many(air_spec *const *s, const int32_t *const *hist, const int *n,
                                 const int *max_nodes, int count) {
    air_status st = AIR_OK;
    int *in = malloc(sizeof(int) * (size_t)(count > 0 ? count : 1)); /* drafting sequences */
    int n_in = 0, rows = 0;
    air_engine *draft = NULL;
    for (int i = 0; i < count; i++) {
        air_spec *q = s[i];
        double t0 = now_s();
        q->tree.n = 0;
        q->probed = 0;
        memset(q->g.n_kid, 0, sizeof q->g.n_kid);
        q->draft_passes = 0;
        q->propose_s = 0;
        int budget = max_nodes[i] > AIR_SPEC_MAX_NODES ? AIR_SPEC_MAX_NODES : max_nodes[i];
        q->asked = budget;
        if (budget <= 0 || n[i] <= 0)
            continue;
        if (q->probe) { /* a candidate row's cost only: lookup's, or the pending token again */
            q->probe = 0;
            q->probed = 1;
            if (q->o.lookup)
                lookup(q, hist[i], n[i], 1, 1);
            if (q->tree.n == 0)
                add_child(&q->tree, -1, hist[i][n[i] - 1], 1);
            q->propose_s = now_s() - t0;
            continue;
        }
        /* with a draft, lookup adds only the continuations of matches of 2
         * and 3 tokens (a single token's are rarely right, and would take
         * the draft's room), in half of the budget at most */
        if (q->o.lookup)
            lookup(q, hist[i], n[i], q->o.draft ? budget / 2 : budget, q->o.draft ? 2 : 1);
        q->propose_s = now_s() - t0;
        if (!q->o.draft || q->tree.n >= budget)
            continue;
        if (draft && q->o.draft != draft) {
            free(in);
            return air_err(AIR_ERR_INVALID_ARG, "air_spec_propose_many: sequences with "
                           "different drafts");
        }
        draft = q->o.draft;
        q->g.budget = budget;
        q->g.n_hist = q->g.next_slot = n[i];
        q->g.np = 0;
        q->g.stopped = 0;
        rows += n[i] - draft_common(q, hist[i], n[i]);
        if (in)
            in[n_in++] = i;
    }
    if (!in)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    if (n_in == 0) {
        free(in);
        return AIR_OK;
    }
    int cap = rows > n_in * MAX_WIDTH ? rows : n_in * MAX_WIDTH; /* rows of the largest pass */
    int dvocab = s[in[0]]->dvocab;
    int32_t *tok = malloc(sizeof(int32_t) * 4 * (size_t)cap), *pos = tok + cap,
            *slot = tok + 2 * (size_t)cap, *par = tok + 3 * (size_t)cap;
    air_kv **kvs = malloc(sizeof(air_kv *) * (size_t)cap);
    uint8_t *want = malloc((size_t)cap);
    float *lg = malloc(sizeof(float) * (size_t)n_in * MAX_WIDTH * (size_t)dvocab);
    if (!tok || !kvs || !want || !lg) {
        st = air_err(AIR_ERR_NOMEM, "out of memory for the draft's candidates");
        goto out;
    }
    /* the draft's caches up to each sequence, in one pass */
    int r = 0;
    for (int k = 0; k < n_in; k++) {
        int i = in[k];
        int m = sync_rows(s[i], hist[i], n[i], r, tok, pos, slot, par, kvs, want);
        if (m < 0) {
            st = air_err(AIR_ERR_LIMIT, "the draft's cache is full (%d positions)",
                         s[i]->dkv.max_seq);
            goto out;
        }
        r += m;
    }
    air_batch b = {r, tok, pos, kvs, want, lg, slot, par};
    double t_sync = now_s();
    if ((st = draft_pass(s, in, n_in, &b)))
        goto out;
    double row = (now_s() - t_sync) / r; /* a catch-up of many rows: its time per row */
    for (int k = 0; k < n_in && r >= 8; k++) {
        air_spec *q = s[in[k]];
        q->sync_row_s = q->sync_row_s > 0 ? (1 - EMA) * q->sync_row_s + EMA * row : row;
    }
    for (int k = 0; k < n_in; k++) {
        air_spec *q = s[in[k]];
        memcpy(q->dhist + q->n_dhist, hist[in[k]] + q->n_dhist,
               sizeof(int32_t) * (size_t)(n[in[k]] - q->n_dhist));
        q->n_dhist = q->dkv.n_past = n[in[k]];
        pool_add(q, -1, 1.0, lg + (size_t)k * dvocab);
    }
    /* the trees, a level of every sequence per pass */
    for (;;) {
        r = 0;
        for (int k = 0; k < n_in; k++)
            r += level_rows(s[in[k]], r, tok, pos, slot, par, kvs, want);
        if (r == 0)
            break;
        b.n = r;
        if ((st = draft_pass(s, in, n_in, &b)))
            goto out;
        r = 0;
        for (int k = 0; k < n_in; k++) {
            air_spec *q = s[in[k]];
            for (int j = 0; j < q->g.nn; j++, r++)
                pool_add(q, q->g.nodes[j], q->g.node_prob[q->g.nodes[j]],
                         lg + (size_t)r * dvocab);
        }
    }
    for (int k = 0; k < n_in; k++)
        add_leaves(s[in[k]]);
out:
    if (st) /* the draft's caches are unknown now: start over next time */
        for (int k = 0; k < n_in; k++)
            s[in[k]]->n_dhist = s[in[k]]->dkv.n_past = 0;
    for (int i = 0; i < count; i++)
        s[i]->st.draft_seconds += s[i]->propose_s;
    free(tok);
    free(kvs);
    free(want);
    free(lg);
    free(in);
    return st;
}

const air_spec_tree *air_spec_tree_of(const air_spec *s) {
    return &s->tree;
}

air_status air_spec_propose(air_spec *s, const int32_t *hist, int n, int max_nodes,
                            const air_spec_tree **out) {
    *out = &s->tree;
    return air_spec_propose_many(&s, &hist, &n, &max_nodes, 1);
}

static int bucket_of(int rows) {
    int b = 0;
    while (b + 1 < AIR_PASS_BUCKETS && (1 << b) < rows)
        b++;
    return b;
}

void air_pass_costs_add(air_pass_costs *c, int rows, double seconds) {
    int b = bucket_of(rows);
    if (seconds <= 0)
        return;
    c->s[b] = c->n[b] ? (1 - EMA) * c->s[b] + EMA * seconds : seconds;
    c->n[b]++;
}

int air_pass_costs_known(const air_pass_costs *c, int rows) {
    return c->n[bucket_of(rows)] > 0;
}

double air_pass_costs_get(const air_pass_costs *c, int rows) {
    int b = bucket_of(rows);
    if (c->grow) {
        int top = -1;
        for (int i = 0; i < AIR_PASS_BUCKETS; i++)
            if (c->n[i])
                top = i;
        if (top >= 0 && b > top)
            return c->s[top] * (double)rows / (double)(1 << top);
    }
    for (int d = 0; d < AIR_PASS_BUCKETS; d++) {
        if (b - d >= 0 && c->n[b - d])
            return c->s[b - d];
        if (b + d < AIR_PASS_BUCKETS && c->n[b + d])
            return c->s[b + d];
    }
    return 0;
}

/* Expected tokens of a pass at budget level l (the pending token's and the
 * accepted candidates'), and the draft's time to propose them. */
static double expect_level(const air_spec *s, int l, double *draft_seconds) {
    double a = (s->successes + 1.0) / (s->trials + 2.0); /* prior 0.5 */
    /* A larger tree holds the smaller ones, so it agrees at each depth at
     * least as often: the agreement of level l is the best measured at a
     * level up to l (each shrunk towards the overall rate), never less than
     * the overall rate. Without this, the overall rate, measured mostly on
     * the small trees in use, undervalues the large ones for good. */
    double best = a;
    for (int k = 1; k <= l; k++)
        if (s->lvl_trials[k] > 0) {
            double ak = (s->lvl_successes[k] + 2.0 * a) / (s->lvl_trials[k] + 2.0);
            if (ak > best)
                best = ak;
        }
    a = best;
    int n = k_levels[l];
    double depth = tree_depth(n), passes = depth;
    if (s->lvl_n[l]) {
        depth = s->lvl_depth[l];
        passes = s->lvl_passes[l];
    } else
        /* not tried yet: the nearest smaller level tried, one level deeper
         * (and one draft pass more) per doubling of the nodes */
        for (int k = l - 1; k >= 1; k--)
            if (s->lvl_n[k]) {
                double more = (double)(l - k);
                if (s->lvl_depth[k] + more < depth)
                    depth = s->lvl_depth[k] + more;
                if (s->lvl_passes[k] + more < passes)
                    passes = s->lvl_passes[k] + more;
                break;
            }
    double e = 0, p = 1;
    for (int d = 0; d <= (int)(depth + 0.5); d++, p *= a)
        e += p;
    *draft_seconds = 0;
    if (s->o.draft && n > 0) {
        /* until measured, a draft pass next to a resident target costs 1.5
         * x draft_ratio of a plain pass (a quantized draft does more work
         * per byte than its target: 4bit SmolLM2-135M, 0.15 of the bytes,
         * 0.21 of the time), and a row of catching up a third of a draft
         * pass (measured there: 0.3) */
        double d = s->draft_pass_s > 0 ? s->draft_pass_s
                   : s->o.streamed ? 0 /* next to a streamed pass: try it and see */
                   : (s->o.draft_ratio > 0 ? 1.5 * s->o.draft_ratio : 1.0) * s->pass_hint;
        double row = s->sync_row_s > 0 ? s->sync_row_s : d / 3;
        int unseen = s->seq_len - s->n_dhist;
        *draft_seconds = passes * d + (unseen > 0 ? unseen * row / REPROBE_AFTER : 0);
    }
    return e;
}

double air_spec_expect(const air_spec *s, int nodes, double *draft_seconds) {
    return expect_level(s, level_of(nodes), draft_seconds);
}

void air_spec_record(air_spec *s, int rows, int accepted, const int32_t *emitted,
                     int n_emitted) {
    s->st.sweeps++;
    s->st.drafted += rows - 1;
    s->st.accepted += accepted;
    s->seq_len += n_emitted;
    if (emitted)
        calibrate(s, emitted, n_emitted);
    if (rows <= 1 || s->probed)
        return; /* a probe's candidate says nothing of the agreement */
    int depth = 0;
    for (int i = 0; i < s->tree.n; i++)
        if (s->tree.depth[i] > depth)
            depth = s->tree.depth[i];
    double tried = accepted + 1 < depth ? accepted + 1 : depth;
    s->successes += accepted;
    s->trials += tried;
    int l = level_of(s->asked);
    s->lvl_successes[l] += accepted;
    s->lvl_trials[l] += tried;
    double w = s->lvl_n[l] ? EMA : 1.0;
    s->lvl_depth[l] = (1 - w) * s->lvl_depth[l] + w * depth;
    s->lvl_passes[l] = (1 - w) * s->lvl_passes[l] + w * s->draft_passes;
    s->lvl_n[l]++;
}

void air_spec_observe(air_spec *s, int rows, int accepted, const int32_t *emitted,
                      int n_emitted, double seconds) {
    air_spec_record(s, rows, accepted, emitted, n_emitted);
    if (s->o.max_nodes > 0)
        return;
    /* the target's share of the pass */
    air_pass_costs_add(&s->costs, rows, seconds - (rows > 1 ? s->propose_s : 0));
    /* and the whole step at its level: a streamed target reads ahead while
     * the draft proposes, so the two do not simply add up */
    int lv = level_of(s->asked);
    if (rows > 1 && !s->probed && lv > 0) {
        s->lvl_step[lv] = s->lvl_step_n[lv] ? (1 - EMA) * s->lvl_step[lv] + EMA * seconds : seconds;
        s->lvl_step_n[lv]++;
    }
    /* plain decoding is the yardstick: measure it once before comparing */
    if (!air_pass_costs_known(&s->costs, 1)) {
        s->cur = 0;
        return;
    }
    /* the budget with the best predicted rate */
    double c1 = air_pass_costs_get(&s->costs, 1);
    if (c1 <= 0)
        return;
    s->pass_hint = c1;
    int best = 0;
    double best_rate = 1.0 / c1;
    for (int l = 1; l < N_LEVELS; l++) {
        double d, e = expect_level(s, l, &d);
        double cost = s->lvl_step_n[l] ? s->lvl_step[l]
                                       : air_pass_costs_get(&s->costs, k_levels[l] + 1) + d;
        if (cost > 0 && e / cost > best_rate) {
            best_rate = e / cost;
            best = l;
        }
    }
    /* measurements go stale while nothing is proposed: after a run of plain
     * passes, one pass at the smallest budget measures again */
    s->plain_run = best == 0 ? s->plain_run + 1 : 0;
    if (s->plain_run >= REPROBE_AFTER) {
        s->plain_run = 0;
        best = 1;
        s->probe = 1;
    }
    s->cur = best;
}

void air_spec_get_stats(const air_spec *s, air_spec_stats *st) {
    *st = s->st;
}
