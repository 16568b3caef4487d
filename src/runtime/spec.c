/*
 * spec.c - candidate trees (n-gram lookup, resident draft) and the automatic
 * budget of candidate rows per pass.
 *
 * Lookup: for n-gram lengths 3, 2, 1, the most recent earlier occurrences of
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
 *         depth of the walk (successes over trials along accepted paths).
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

struct air_spec {
    air_spec_options o;
    air_spec_tree tree;
    /* draft */
    air_kv dkv;
    int32_t *dhist; /* tokens in the draft's cache */
    int n_dhist, dvocab;
    float *dlogits; /* (AIR_SPEC_MAX_NODES, dvocab) */
    /* automatic budget */
    int cur;              /* level of the next pass */
    int asked;            /* the budget of the last proposal */
    air_pass_costs costs; /* target passes */
    double draft_pass_s;                              /* one draft pass */
    int draft_passes;                                 /* in the last proposal */
    double lvl_depth[N_LEVELS], lvl_passes[N_LEVELS]; /* measured tree depth, draft passes */
    int lvl_n[N_LEVELS];
    double propose_s;         /* the last proposal's time */
    double trials, successes; /* agreement along the walks */
    int plain_run;            /* passes in a row at budget 0 */
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
    if (o->draft) {
        const air_hparams *hp = air_engine_hparams(o->draft);
        s->dvocab = hp->n_vocab;
        air_status st = air_kv_init(&s->dkv, hp, max_seq + AIR_SPEC_MAX_NODES + 1);
        if (st) {
            free(s);
            return st;
        }
        s->dhist = malloc(sizeof(int32_t) * (size_t)(max_seq + 1));
        s->dlogits = malloc(sizeof(float) * (size_t)AIR_SPEC_MAX_NODES * (size_t)s->dvocab);
        if (!s->dhist || !s->dlogits) {
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
    free(s->dlogits);
    free(s);
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

static void lookup(air_spec *s, const int32_t *h, int n, int budget) {
    air_spec_tree *t = &s->tree;
    int matches = 0;
    for (int g = 3; g >= 1 && t->n < budget && matches < LOOKUP_MAX_MATCHES; g--) {
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

typedef struct {
    double prob;
    int from; /* parent tree node (-1: the pending token) */
    int32_t id;
} cand;

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

/* Evaluates the tokens of h the draft has not seen; its logits for the last
 * one land in dlogits row 0. */
static air_status draft_sync(air_spec *s, const int32_t *h, int n) {
    int common = 0;
    while (common < s->n_dhist && common < n && s->dhist[common] == h[common])
        common++;
    if (common == n)
        common = n - 1;
    if (common > s->dkv.max_seq - 1 - AIR_SPEC_MAX_NODES)
        return air_err(AIR_ERR_LIMIT, "the draft's cache is full (%d positions)", s->dkv.max_seq);
    air_kv_rollback(&s->dkv, common); /* n_past always equals n_dhist */
    air_status st = air_engine_eval(s->o.draft, &s->dkv, h + common, n - common, 0, s->dlogits);
    if (st) {
        s->n_dhist = s->dkv.n_past = 0;
        return st;
    }
    memcpy(s->dhist + common, h + common, sizeof(int32_t) * (size_t)(n - common));
    s->n_dhist = n;
    return AIR_OK;
}

/* Adds the `MAX_WIDTH` most probable children of a draft-evaluated node
 * (its logits in dlogits row `row`) to the candidate pool. */
static int pool_add(const air_spec *s, cand *pool, int np, int node, double prob, int row,
                    int vocab) {
    int32_t ids[MAX_WIDTH];
    double p[MAX_WIDTH];
    int k = top_ids(s->dlogits + (size_t)row * s->dvocab, vocab, MAX_WIDTH, ids, p);
    for (int j = 0; j < k; j++)
        pool[np++] = (cand){prob * p[j], node, ids[j]};
    return np;
}

/* Best-first over path probability, a batch per draft pass: the pool holds
 * the children of every evaluated node; each step takes the pool's best and
 * those within BRANCH_RATIO of it, evaluates them together and pools their
 * children. Budget left when growth stops goes to the pool's best leaves,
 * which need no draft pass. */
#define BRANCH_RATIO 0.25
static air_status draft_tree(air_spec *s, const int32_t *h, int n, int budget) {
    air_status st = draft_sync(s, h, n);
    if (st)
        return st;
    s->draft_passes++;
    air_spec_tree *t = &s->tree;
    int vocab = s->o.n_vocab < s->dvocab ? s->o.n_vocab : s->dvocab;
    cand pool[AIR_SPEC_MAX_NODES * MAX_WIDTH + MAX_WIDTH];
    double node_prob[AIR_SPEC_MAX_NODES];
    int32_t node_slot[AIR_SPEC_MAX_NODES];
    for (int i = 0; i < AIR_SPEC_MAX_NODES; i++)
        node_slot[i] = -2; /* not in the draft's cache */
    int np = pool_add(s, pool, 0, -1, 1.0, 0, vocab);
    int next_slot = n;
    int32_t tok[MAX_WIDTH], pos[MAX_WIDTH], slot[MAX_WIDTH], par[MAX_WIDTH], nodes[MAX_WIDTH];
    air_kv *kvs[MAX_WIDTH];
    uint8_t want[MAX_WIDTH];
    while (t->n < budget && np > 0) {
        qsort(pool, (size_t)np, sizeof *pool, by_prob_desc);
        if (pool[0].prob < MIN_PATH_PROB)
            break;
        int nn = 0, c = 0;
        double floor = pool[0].prob * BRANCH_RATIO;
        for (; c < np && nn < MAX_WIDTH && t->n < budget; c++) {
            if (c > 0 && (pool[c].prob < floor || pool[c].prob < BRANCH_PROB))
                break;
            int parent = pool[c].from;
            if ((parent >= 0 && t->depth[parent] >= MAX_DEPTH) || next_slot >= s->dkv.max_seq)
                continue;
            int node = add_child(t, parent, pool[c].id, budget);
            if (node < 0)
                break;
            node_prob[node] = pool[c].prob;
            node_slot[node] = next_slot;
            nodes[nn] = node;
            tok[nn] = pool[c].id;
            pos[nn] = n + t->depth[node] - 1;
            slot[nn] = next_slot++;
            par[nn] = parent < 0 ? -1 : node_slot[parent];
            kvs[nn] = &s->dkv;
            want[nn] = 1;
            nn++;
        }
        memmove(pool, pool + c, sizeof *pool * (size_t)(np - c));
        np -= c;
        if (nn == 0)
            break;
        if (t->n >= budget)
            break;
        air_batch b = {nn, tok, pos, kvs, want, s->dlogits, slot, par};
        if ((st = air_engine_forward(s->o.draft, &b)))
            return st;
        s->draft_passes++;
        for (int i = 0; i < nn; i++)
            np = pool_add(s, pool, np, nodes[i], node_prob[nodes[i]], i, vocab);
    }
    /* leaves from the pool: no draft pass needed */
    qsort(pool, (size_t)np, sizeof *pool, by_prob_desc);
    for (int c = 0; c < np && t->n < budget && pool[c].prob >= BRANCH_PROB; c++)
        if (pool[c].from < 0 || t->depth[pool[c].from] < MAX_DEPTH)
            add_child(t, pool[c].from, pool[c].id, budget);
    return AIR_OK;
}

air_status air_spec_propose(air_spec *s, const int32_t *hist, int n, int max_nodes,
                            const air_spec_tree **out) {
    double t0 = now_s();
    s->tree.n = 0;
    *out = &s->tree;
    if (max_nodes > AIR_SPEC_MAX_NODES)
        max_nodes = AIR_SPEC_MAX_NODES;
    s->asked = max_nodes;
    if (max_nodes <= 0 || n <= 0)
        return AIR_OK;
    air_status st = AIR_OK;
    s->draft_passes = 0;
    if (s->o.lookup)
        lookup(s, hist, n, max_nodes);
    double t1 = now_s();
    if (s->o.draft && s->tree.n < max_nodes)
        st = draft_tree(s, hist, n, max_nodes);
    double t2 = now_s();
    if (s->draft_passes > 0) {
        double d = (t2 - t1) / s->draft_passes;
        s->draft_pass_s = s->draft_pass_s > 0 ? (1 - EMA) * s->draft_pass_s + EMA * d : d;
    }
    s->propose_s = t2 - t0;
    s->st.draft_seconds += t2 - t0;
    return st;
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
    double a = (s->successes + 1.4) / (s->trials + 2.0); /* prior 0.7 */
    int n = k_levels[l];
    double depth = s->lvl_n[l] ? s->lvl_depth[l] : tree_depth(n);
    double passes = s->lvl_n[l] ? s->lvl_passes[l] : depth;
    double e = 0, p = 1;
    for (int d = 0; d <= (int)(depth + 0.5); d++, p *= a)
        e += p;
    *draft_seconds = s->o.draft && n > 0 ? passes * s->draft_pass_s : 0;
    return e;
}

double air_spec_expect(const air_spec *s, int nodes, double *draft_seconds) {
    return expect_level(s, level_of(nodes), draft_seconds);
}

void air_spec_record(air_spec *s, int rows, int accepted) {
    s->st.sweeps++;
    s->st.drafted += rows - 1;
    s->st.accepted += accepted;
    if (rows <= 1)
        return;
    int depth = 0;
    for (int i = 0; i < s->tree.n; i++)
        if (s->tree.depth[i] > depth)
            depth = s->tree.depth[i];
    s->successes += accepted;
    s->trials += accepted + 1 < depth ? accepted + 1 : depth;
    int l = level_of(s->asked);
    double w = s->lvl_n[l] ? EMA : 1.0;
    s->lvl_depth[l] = (1 - w) * s->lvl_depth[l] + w * depth;
    s->lvl_passes[l] = (1 - w) * s->lvl_passes[l] + w * s->draft_passes;
    s->lvl_n[l]++;
}

void air_spec_observe(air_spec *s, int rows, int accepted, int tokens, double seconds) {
    (void)tokens;
    air_spec_record(s, rows, accepted);
    if (s->o.max_nodes > 0)
        return;
    /* the target's share of the pass */
    air_pass_costs_add(&s->costs, rows, seconds - (rows > 1 ? s->propose_s : 0));
    /* plain decoding is the yardstick: measure it once before comparing */
    if (!air_pass_costs_known(&s->costs, 1)) {
        s->cur = 0;
        return;
    }
    /* the budget with the best predicted rate */
    double c1 = air_pass_costs_get(&s->costs, 1);
    if (c1 <= 0)
        return;
    int best = 0;
    double best_rate = 1.0 / c1;
    for (int l = 1; l < N_LEVELS; l++) {
        double d, e = expect_level(s, l, &d);
        double cost = air_pass_costs_get(&s->costs, k_levels[l] + 1) + d;
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
    }
    s->cur = best;
}

void air_spec_get_stats(const air_spec *s, air_spec_stats *st) {
    *st = s->st;
}
