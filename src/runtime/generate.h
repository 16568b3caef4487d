/*
 * generate.h - the token loop: prefill the prompt in one batched pass, then
 * decode until max_tokens, an EOS id, the callback's stop or the abort
 * callback: one token per pass, or with speculation a tree of candidates per
 * pass of which the longest path the target agrees with is kept.
 */
#ifndef AIR_RUNTIME_GENERATE_H
#define AIR_RUNTIME_GENERATE_H

#include <stdint.h>

#include "model/forward.h"
#include "runtime/spec.h"
#include "sample/sampler.h"

typedef struct {
    int max_tokens;
    air_sampler_params sampler;
    const int32_t *eos_ids; /* stop on any of these (not emitted to the callback) */
    int n_eos;
    /* Called for each generated token; return non-zero to stop. May be NULL. */
    int (*on_token)(void *user, int32_t id);
    /* Polled before each pass; non-zero aborts with AIR_ERR_ABORTED. May be NULL. */
    int (*should_abort)(void *user);
    /* Optional constraint: fills allowed[n_vocab] for the next token given the
     * tokens generated so far; returns non-zero when generation must end. */
    int (*constrain)(void *user, const int32_t *generated, int n, uint8_t *allowed);
    void *user;
    /* Speculation (spec.h): candidate rows verified in each pass; the output
     * is the same as without. NULL: one token per pass. */
    const air_spec_options *spec;
} air_gen_options;

typedef struct {
    int n_prompt, n_generated;
    double prefill_seconds, decode_seconds;
    int stopped_by_eos;
    int32_t eos_id; /* the EOS id sampled last, when stopped_by_eos (not in the output) */
    int sweeps;   /* decode passes (after the prefill) */
    int drafted;  /* candidate rows sent to those passes */
    int accepted; /* candidates that became output */
    int stopped_by_constraint; /* the constraint ended generation */
} air_gen_stats;

/* Generates after `prompt` in sequence kv (which must be empty or hold a
 * prefix the prompt continues: prompt tokens are appended). *out receives the
 * generated ids (caller frees), EOS excluded. */
air_status air_generate(air_engine *e, air_kv *kv, const int32_t *prompt, int n_prompt,
                        const air_gen_options *opt, int32_t **out, int *n_out, air_gen_stats *stats);

#endif
