/*
 * generate.c - prefill + decode loop of one sequence: the sweep of sweep.h
 * with a single sequence (the whole prompt in one pass, then one token per
 * pass).
 */
#include "runtime/generate.h"

#include <stdlib.h>

#include "runtime/sweep.h"
#include "util/error.h"

air_status air_generate(air_engine *e, air_kv *kv, const int32_t *prompt, int n_prompt,
                        const air_gen_options *opt, int32_t **out, int *n_out,
                        air_gen_stats *stats) {
    *out = NULL;
    *n_out = 0;
    air_gen_stats stt = {0};
    stt.n_prompt = n_prompt;
    air_seq s;
    air_seq *one = &s;
    air_status st = air_seq_init(&s, air_engine_hparams(e), prompt, n_prompt, opt, kv, 0);
    if (!st && opt->should_abort && opt->should_abort(opt->user))
        st = air_err(AIR_ERR_ABORTED, "generation aborted");
    if (st) {
        air_seq_free(&s);
        if (stats)
            *stats = stt;
        return st;
    }
    air_engine_set_abort(e, opt->should_abort, opt->user);
    while (!s.done)
        air_sweep_step(e, &one, 1, 0, NULL);
    air_engine_set_abort(e, NULL, NULL);
    st = s.err;
    if (s.t_prefilled > 0) {
        stt.prefill_seconds = s.t_prefilled - s.t_start;
        stt.decode_seconds = s.t_end - s.t_prefilled;
    }
    stt.n_generated = s.n_gen;
    stt.stopped_by_eos = s.stopped_by_eos;
    stt.stopped_by_constraint = s.stopped_by_constraint;
    *out = s.gen; /* the tokens so far, also after an error */
    *n_out = s.n_gen;
    s.gen = NULL;
    air_seq_free(&s);
    if (stats)
        *stats = stt;
    return st;
}
