/*
 * generate.h - the token loop: prefill the prompt in one batched pass, then
 * decode one token per pass until max_tokens, an EOS id, the callback's stop
 * or the abort callback.
 */
#ifndef AIR_RUNTIME_GENERATE_H
#define AIR_RUNTIME_GENERATE_H

#include <stdint.h>

#include "model/forward.h"
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
} air_gen_options;

typedef struct {
    int n_prompt, n_generated;
    double prefill_seconds, decode_seconds;
    int stopped_by_eos;
    int stopped_by_constraint; /* the constraint ended generation */
} air_gen_stats;

/* Generates after `prompt` in sequence kv (which must be empty or hold a
 * prefix the prompt continues: prompt tokens are appended). *out receives the
 * generated ids (caller frees), EOS excluded. */
air_status air_generate(air_engine *e, air_kv *kv, const int32_t *prompt, int n_prompt,
                        const air_gen_options *opt, int32_t **out, int *n_out, air_gen_stats *stats);

#endif
