/*
 * sweep.h - many sequences, one forward pass per step.
 *
 * A sequence is a prompt, its own KV cache, its own sampler and its
 * generation options (air_gen_options: sampling parameters, EOS ids, token
 * callback, optional constraint). One call of air_sweep_step() runs a single
 * forward pass whose rows are the pending token of every decoding sequence
 * plus chunks of the prompts of sequences still in prefill, so each layer is
 * read once for all of them. After the pass every sequence that got logits
 * samples its next token (through its constraint and callback), exactly as
 * air_generate does for one sequence alone.
 *
 *   prefill:  prompt[n_fed .. n_fed+chunk) -> rows; logits for the last row
 *             once the whole prompt is in
 *   decode:   last sampled token -> one row -> logits -> sample -> callback
 *
 * Speculation (opt.spec, spec.h): a decoding sequence may add candidate
 * rows (n-gram lookup over its prompt and output, a resident draft's tree)
 * under its pending token, verified in the same pass over its own KV cache
 * with the tree mask; the walk samples at the pending row and follows the
 * child that carries the sampled token, emitting every token through the
 * same sampler, constraint and callback as plain decoding (so the output is
 * the same), and the cache keeps the walked path only. How many candidates
 * each sequence gets is planned for the whole pass (spec_share.h).
 *
 * Not thread-safe: one thread steps a set of sequences; the engine must not
 * be used by anyone else during a step.
 */
#ifndef AIR_RUNTIME_SWEEP_H
#define AIR_RUNTIME_SWEEP_H

#include <stdint.h>

#include "runtime/generate.h"
#include "runtime/spec_share.h"

typedef struct {
    /* set by air_seq_init, read-only afterwards */
    air_gen_options opt;
    int32_t *prompt; /* copy, followed by the generated ids (gen) */
    int n_prompt;
    air_kv *kv; /* the sequence's cache: own_kv, or one lent by the caller */
    air_kv own_kv;
    /* state */
    int n_fed;    /* prompt tokens already in the KV cache */
    int32_t *gen; /* generated ids (EOS excluded), capacity max_tokens + 1 */
    int n_gen;
    air_sampler *smp;
    air_spec *spec;            /* speculation state (opt.spec), or NULL */
    int sweeps;                /* decode passes it took part in */
    int drafted, accepted;     /* its candidate rows, those the walk followed */
    uint8_t *allowed;          /* constraint mask (n_vocab), NULL without a constraint */
    int done;                  /* finished: by EOS, max_tokens, the callback, the constraint,
                                  the context end or an error */
    int stopped_by_eos;        /* an EOS id ended it */
    int stopped_by_constraint; /* the constraint ended it (e.g. the JSON object is complete) */
    air_status err;            /* AIR_OK unless the sequence failed */
    char errmsg[256];          /* air_last_error() when it failed */
    double t_start, t_prefilled, t_end; /* monotonic seconds */
} air_seq;

/* Prepares a sequence: copies the prompt and the options, allocates the
 * sampler, the mask and the speculation state (opt->spec: a draft's cache as
 * long as the sequence's), and either borrows `kv` (which must be empty or hold
 * a prefix the prompt continues; it must outlive the sequence) or, when kv is
 * NULL, allocates a cache of what prompt + max_tokens need, at most max_seq
 * positions. AIR_ERR_LIMIT when the prompt does not fit the context. Free
 * with air_seq_free (also after a failure). */
air_status air_seq_init(air_seq *s, const air_hparams *hp, const int32_t *prompt, int n_prompt,
                        const air_gen_options *opt, air_kv *kv, int max_seq);
void air_seq_free(air_seq *s);

/* Positions (and bytes) of the cache air_seq_init allocates for these sizes. */
int air_seq_kv_positions(int n_prompt, int max_tokens, int max_seq);
size_t air_seq_kv_bytes(const air_hparams *hp, int n_prompt, int max_tokens, int max_seq);

/* Speculation shared by the sequences of a set of passes. */
typedef struct {
    air_spec_share share;
    int draft_ok; /* the draft engine may be used in this step (its owner lets
                     it): set before each step; 0: sequences with a draft do
                     not speculate in it */
} air_sweep_spec;

/* What a step did. */
typedef struct {
    int rows;         /* rows of the pass */
    int decoded;      /* sequences that decoded in it */
    int tokens;       /* tokens those emitted (an EOS that ended one counts) */
    int drafted;      /* candidate rows */
    int accepted;     /* candidates the walks followed */
    double seconds;   /* the forward pass alone */
} air_sweep_info;

/* One forward pass over the sequences that are not done: one decode row
 * each (plus candidate rows with speculation: sw not NULL and the
 * sequence's opt.spec set), plus at most max_prefill prompt rows (<= 0: no
 * limit) shared by those in prefill, in order. Sequences that finish get
 * done = 1 (and err when they failed). A failing forward pass marks every
 * sequence in it failed and is returned. *info (may be NULL) receives what
 * the step did. */
air_status air_sweep_step(air_engine *e, air_seq *const *seqs, int n, int max_prefill,
                          air_sweep_spec *sw, air_sweep_info *info);

#endif
