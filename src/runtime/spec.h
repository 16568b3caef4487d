/*
 * spec.h - speculation for one sequence: candidate token trees from a resident
 * draft model and from n-gram lookup over the sequence's own tokens (prompt +
 * output so far), verified by the target in one pass, and the number of
 * candidate rows per pass chosen from the measured cost of passes.
 *
 * Per pass, for a sequence whose last token (the "pending" token) is not yet
 * in the target's KV cache:
 *
 *     n = air_spec_budget(s)                       0: a plain one-row pass
 *     air_spec_propose(s, hist, n_hist, n, &tree)  hist ends with the pending token
 *     rows: the pending token at slot base (a tree root), node i at slot
 *           base + 1 + i, attending to its parent's chain (air_batch.parent)
 *     walk: sample from the pending row's logits; while the token is a child
 *           (air_spec_child), take that child's row and sample again
 *     air_kv_keep_path(kv, base, slots of the rows walked, count)
 *     air_spec_observe(s, rows, accepted, tokens emitted, seconds)
 *
 * Sampling from the target at every node of the walk and following a child
 * only when it carries the sampled token is the rejection rule for
 * deterministic candidates (a draft that puts all its mass on the child):
 * each emitted token is a draw from exactly the distribution plain decoding
 * would use, so greedy output is identical and sampled output has the same
 * distribution (with the same seed, the same tokens).
 *
 * Nothing here is shared between sequences: a server keeps one air_spec per
 * sequence (the draft engine itself may be shared when passes are serialized).
 */
#ifndef AIR_RUNTIME_SPEC_H
#define AIR_RUNTIME_SPEC_H

#include <stdint.h>

#include "model/forward.h"

#define AIR_SPEC_MAX_NODES 64

typedef struct {
    air_engine *draft; /* resident draft with the target's vocabulary, or NULL */
    int lookup;        /* n-gram lookup over the sequence's tokens */
    int max_nodes;     /* candidate rows per pass; 0 = automatic (from measured costs) */
    int n_vocab;       /* ids a candidate may carry (both vocabularies' common range) */
    int streamed;      /* the target streams some of its layers: start the automatic
                          budget high (a pass costs about the same with more rows);
                          otherwise a pass is taken to grow with its rows */
    double draft_ratio; /* the draft's weights over the target's, in bytes: until a
                           draft pass is measured, it is taken to cost 1.5 x this
                           fraction of a plain target pass (0: unknown, as much as one) */
} air_spec_options;

/* A candidate tree: node i carries tokens[i] and hangs under node parent[i]
 * (-1: under the pending token). Parents come before their children. */
typedef struct {
    int n;
    int32_t tokens[AIR_SPEC_MAX_NODES];
    int32_t parent[AIR_SPEC_MAX_NODES];
    int32_t depth[AIR_SPEC_MAX_NODES]; /* 1 for children of the pending token */
} air_spec_tree;

typedef struct {
    int sweeps;           /* target passes observed */
    int drafted;          /* candidate nodes sent to the target */
    int accepted;         /* candidate nodes the walk followed */
    double draft_seconds; /* time spent proposing */
    int draft_passes;     /* passes of the draft model */
} air_spec_stats;

typedef struct air_spec air_spec;

/* max_seq: the sequence's context length (the draft's cache gets as many
 * positions plus room for its candidates). */
air_status air_spec_new(const air_spec_options *o, int max_seq, air_spec **out);
void air_spec_free(air_spec *s);

/* The sequence starts with n_prompt tokens (what the draft's cache will
 * have to catch up with the first time it is used). */
void air_spec_start(air_spec *s, int n_prompt);

/* The time of a plain target pass for this sequence, for the draft's cost
 * guessed before it is measured (air_spec_expect; air_spec_observe sets it
 * from its own measurements). */
void air_spec_hint(air_spec *s, double plain_pass_s);

/* The next proposal only measures the cost of a candidate row: its one
 * candidate comes from lookup or repeats the pending token, and the draft
 * is not run (and its cache not caught up) for it. */
void air_spec_probe(air_spec *s);

/* Candidate nodes for the next pass (0: make it a plain pass). */
int air_spec_budget(const air_spec *s);
/* The fixed budget of the options (max_nodes), 0 when automatic. */
int air_spec_fixed(const air_spec *s);

/* Proposes at most max_nodes candidates following hist[0..n) (the whole
 * sequence, its last token the pending one). *out is owned by s, valid until
 * the next call; it may be empty. */
air_status air_spec_propose(air_spec *s, const int32_t *hist, int n, int max_nodes,
                            const air_spec_tree **out);

/* air_spec_propose for count sequences at once (their trees: each one's
 * air_spec_propose *out, i.e. the tree it owns): the draft's passes carry
 * the rows of all of them, one pass to bring their draft caches up to date
 * and one per tree level, so k sequences cost about what one does. Every
 * sequence with a draft must use the same draft engine. */
air_status air_spec_propose_many(air_spec *const *s, const int32_t *const *hist, const int *n,
                                 const int *max_nodes, int count);
/* The tree the last proposal built for s. */
const air_spec_tree *air_spec_tree_of(const air_spec *s);

/* The rows of one sequence's pass, 1 + t->n of them (a scheduler may put
 * several sequences' rows into one batch): the pending token at position and
 * slot kv->n_past as a tree root, then node i at slot kv->n_past + 1 + i. */
void air_spec_rows(const air_spec_tree *t, int32_t pending, air_kv *kv, int32_t *tokens,
                   int32_t *pos, int32_t *slot, int32_t *parent, air_kv **kvs);

/* The KV slot of node i's row (-1: the pending token's) for a pass built by
 * air_spec_rows at base = kv->n_past: what air_kv_keep_path takes. */
static inline int32_t air_spec_slot(int base, int node) {
    return base + 1 + node;
}

/* The child of `node` (-1: the pending token) that carries id, or -1. */
int air_spec_child(const air_spec_tree *t, int node, int32_t id);

/* After a pass of `rows` rows (1 + candidates) whose walk followed
 * `accepted` candidates and emitted emitted[0..n_emitted) (emitted[0] at the
 * pending token's row, then one per accepted candidate; EOS excluded) in
 * `seconds` (proposing included): updates the measured rates and the budget
 * of the next passes, and the counts. The emitted tokens are also checked
 * against the draft's children along the walked path: the counts that
 * calibrate the draft's probabilities (how often a child the draft gives
 * probability p is the target's token, by bins of p), by which the next
 * trees grow. emitted may be NULL: no calibration. */
void air_spec_observe(air_spec *s, int rows, int accepted, const int32_t *emitted,
                      int n_emitted, double seconds);

/* After a pass whose time a scheduler measures itself (several sequences
 * share it): air_spec_observe without the time (counts, agreement,
 * calibration). */
void air_spec_record(air_spec *s, int rows, int accepted, const int32_t *emitted,
                     int n_emitted);

/* What a pass giving this sequence `nodes` candidates is expected to yield:
 * the tokens it emits (1 + the expected accepted candidates, from the
 * measured agreement and tree depth), and in *draft_seconds the time the
 * draft spends proposing them (0 for lookup alone): its passes (guessed
 * from draft_ratio until measured) plus a share of catching its cache up
 * with the tokens it has not seen (spread over 32 passes). */
double air_spec_expect(const air_spec *s, int nodes, double *draft_seconds);

/* The budget levels tried by the automatic budget: 0, 1, 2, 4, ..., 64. */
#define AIR_SPEC_LEVELS 8
int air_spec_level_nodes(int level);

/* Measured pass times by row count: a moving average per power of two of
 * rows (1, 2, 3-4, ..., 257-512 and more). A row count not measured yet
 * borrows the nearest measured one's time; with `grow` set (a resident
 * model, whose passes grow with rows) a count above every measured one
 * scales the largest measured time by the ratio of rows instead. */
#define AIR_PASS_BUCKETS 10
typedef struct {
    double s[AIR_PASS_BUCKETS];
    int n[AIR_PASS_BUCKETS];
    int grow;
} air_pass_costs;

void air_pass_costs_add(air_pass_costs *c, int rows, double seconds);
/* Seconds of a pass of `rows` rows (0: nothing measured yet). */
double air_pass_costs_get(const air_pass_costs *c, int rows);
/* 1 when a pass of about `rows` rows (the same power of two) was measured. */
int air_pass_costs_known(const air_pass_costs *c, int rows);

void air_spec_get_stats(const air_spec *s, air_spec_stats *st);

#endif
