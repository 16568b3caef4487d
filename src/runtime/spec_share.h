/*
 * spec_share.h - one candidate budget for a pass that carries several
 * sequences (a scheduler's sweep): how many candidate rows each sequence
 * gets, chosen from the measured time of the whole pass by row count and
 * each sequence's own agreement and draft cost (spec.h).
 *
 * The pass of R rows costs c(R) (measured, air_pass_costs); sequence i at a
 * budget of n_i nodes is expected to emit e_i(n_i) tokens and to spend
 * d_i(n_i) seconds in its draft (air_spec_expect). The plan maximizes
 *
 *     (T0 + sum_i (e_i(n_i) - 1)) / (c(R0 + sum_i n_i) + sum_i d_i(n_i))
 *
 * tokens per second, T0 the tokens the pass yields without candidates and
 * R0 its rows, by raising one sequence's budget at a time to the level that
 * improves the rate most, until none does. A streamed pass barely grows
 * with rows, so every sequence gets candidates; a resident one grows with
 * rows, so with many sequences in the pass speculation mostly switches off.
 * A plain pass of the same size is measured before candidates are compared
 * with it; after 32 plain passes in a row, one pass gives each sequence a
 * single candidate to measure again.
 */
#ifndef AIR_RUNTIME_SPEC_SHARE_H
#define AIR_RUNTIME_SPEC_SHARE_H

#include "runtime/spec.h"

typedef struct {
    air_pass_costs costs; /* the passes' times (costs.grow: a resident model) */
    int max_total;        /* candidate rows per pass over all sequences */
    int plain_run;        /* plain passes in a row */
} air_spec_share;

/* Budgets for the next pass. spec[i] NULL: sequence i gets none;
 * room[i]: the most it may get (context, max_tokens); a sequence whose
 * options fix max_nodes gets that (within room) whatever the costs.
 * base_rows, base_tokens: the pass's rows and tokens without candidates. */
void air_spec_share_plan(air_spec_share *sh, air_spec *const *spec, const int *room, int n,
                         int base_rows, int base_tokens, int *budget);

/* A pass of `rows` rows took `seconds` (the target's forward pass alone). */
void air_spec_share_observe(air_spec_share *sh, int rows, double seconds);

#endif
