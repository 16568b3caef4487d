/*
 * generate.c - prefill + decode loop over the engine.
 */
#include "runtime/generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/error.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

air_status air_generate(air_engine *e, air_kv *kv, const int32_t *prompt, int n_prompt,
                        const air_gen_options *opt, int32_t **out, int *n_out, air_gen_stats *stats) {
    const air_hparams *hp = air_engine_hparams(e);
    *out = NULL;
    *n_out = 0;
    air_gen_stats stt = {0};
    stt.n_prompt = n_prompt;
    if (n_prompt <= 0)
        return air_err(AIR_ERR_INVALID_ARG, "the prompt is empty (no tokens)");
    if (kv->n_past + n_prompt + (opt->max_tokens > 0 ? 1 : 0) > kv->max_seq)
        return air_err(AIR_ERR_LIMIT, "the prompt has %d tokens, more than the context length "
                       "%d (max_seq_len) allows; shorten it or raise max_seq_len",
                       kv->n_past + n_prompt, kv->max_seq);
    int cap = opt->max_tokens > 0 ? opt->max_tokens : 0;
    if (cap > kv->max_seq) /* the context ends generation before that */
        cap = kv->max_seq;
    int32_t *gen = malloc(sizeof(int32_t) * (size_t)(cap + 1));
    float *logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
    uint8_t *allowed = opt->constrain ? malloc((size_t)hp->n_vocab) : NULL;
    air_sampler *smp = air_sampler_new(&opt->sampler, hp->n_vocab);
    air_status st = AIR_OK;
    if (!gen || !logits || !smp || (opt->constrain && !allowed)) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (opt->should_abort && opt->should_abort(opt->user)) {
        st = air_err(AIR_ERR_ABORTED, "generation aborted");
        goto out;
    }
    air_engine_set_abort(e, opt->should_abort, opt->user);
    double t0 = now_s();
    if ((st = air_engine_eval(e, kv, prompt, n_prompt, 0, logits)))
        goto out;
    stt.prefill_seconds = now_s() - t0;
    t0 = now_s();
    int n = 0;
    while (n < cap) {
        if (allowed && opt->constrain(opt->user, gen, n, allowed))
            break;
        int32_t id = air_sampler_sample(smp, logits, gen, n, allowed);
        int is_eos = 0;
        for (int i = 0; i < opt->n_eos; i++)
            is_eos |= id == opt->eos_ids[i];
        if (is_eos) {
            stt.stopped_by_eos = 1;
            stt.eos_id = id;
            break;
        }
        gen[n++] = id;
        if (opt->on_token && opt->on_token(opt->user, id))
            break;
        if (n == cap)
            break;
        if (kv->n_past >= kv->max_seq)
            break; /* context full: stop cleanly */
        if (opt->should_abort && opt->should_abort(opt->user)) {
            st = air_err(AIR_ERR_ABORTED, "generation aborted after %d tokens", n);
            break;
        }
        if ((st = air_engine_eval(e, kv, &id, 1, 0, logits)))
            break;
    }
    stt.decode_seconds = now_s() - t0;
    stt.n_generated = n;
    *out = gen;
    *n_out = n;
    gen = NULL;
out:
    air_engine_set_abort(e, NULL, NULL);
    free(gen);
    free(logits);
    free(allowed);
    air_sampler_free(smp);
    if (stats)
        *stats = stt;
    return st;
}
