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

/* One decode pass: the pending token `id` at position base, then the
 * candidates of tree t as tree rows under it. Logits of every row. */
static air_status verify(air_engine *e, air_kv *kv, int32_t id, const air_spec_tree *t,
                         float *logits) {
    int n = 1 + t->n;
    int32_t tok[1 + AIR_SPEC_MAX_NODES], pos[1 + AIR_SPEC_MAX_NODES], slot[1 + AIR_SPEC_MAX_NODES],
        par[1 + AIR_SPEC_MAX_NODES];
    air_kv *kvs[1 + AIR_SPEC_MAX_NODES];
    uint8_t want[1 + AIR_SPEC_MAX_NODES];
    air_spec_rows(t, id, kv, tok, pos, slot, par, kvs);
    memset(want, 1, (size_t)n);
    air_batch b = {n, tok, pos, kvs, want, logits, slot, par};
    return air_engine_forward(e, &b);
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
    int rows_max = opt->spec ? 1 + AIR_SPEC_MAX_NODES : 1;
    /* the sequence so far (prompt, generated) for lookup */
    int32_t *hist = malloc(sizeof(int32_t) * (size_t)(n_prompt + cap + 1));
    int32_t *gen = malloc(sizeof(int32_t) * (size_t)(cap + 1));
    float *logits = malloc(sizeof(float) * (size_t)hp->n_vocab * (size_t)rows_max);
    uint8_t *allowed = opt->constrain ? malloc((size_t)hp->n_vocab) : NULL;
    air_sampler *smp = air_sampler_new(&opt->sampler, hp->n_vocab);
    air_spec *spec = NULL;
    air_status st = AIR_OK;
    if (!hist || !gen || !logits || !smp || (opt->constrain && !allowed)) {
        st = air_err(AIR_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (opt->spec && (st = air_spec_new(opt->spec, kv->max_seq, &spec)))
        goto out;
    if (spec)
        air_spec_start(spec, n_prompt);
    memcpy(hist, prompt, sizeof(int32_t) * (size_t)n_prompt);
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
    int n = 0, done = 0, base = kv->n_past;
    static const air_spec_tree no_tree = {0};
    const air_spec_tree *tree = &no_tree;
    int32_t path[1 + AIR_SPEC_MAX_NODES];
    double t_pass = now_s();
    while (n < cap && !done) {
        /* walk the rows of the last pass: sample at a row, go on into the
         * child carrying the sampled token */
        int node = -1, n_path = 0, emitted = 0;
        for (;;) {
            float *lg = logits + (size_t)(node + 1) * hp->n_vocab;
            if (allowed && opt->constrain(opt->user, gen, n, allowed)) {
                stt.stopped_by_constraint = 1;
                done = 1;
                break;
            }
            int32_t id = air_sampler_sample(smp, lg, gen, n, allowed);
            int is_eos = 0;
            for (int i = 0; i < opt->n_eos; i++)
                is_eos |= id == opt->eos_ids[i];
            if (is_eos) {
                stt.stopped_by_eos = 1;
                stt.eos_id = id;
                done = 1;
                break;
            }
            gen[n++] = id;
            hist[n_prompt + n - 1] = id;
            emitted++;
            if ((opt->on_token && opt->on_token(opt->user, id)) || n == cap) {
                done = 1;
                break;
            }
            int c = air_spec_child(tree, node, id);
            if (c < 0)
                break;
            node = c;
            path[n_path++] = air_spec_slot(base, c);
        }
        if (spec && stt.sweeps > 0) {
            double t = now_s();
            air_spec_observe(spec, 1 + tree->n, n_path, gen + n - emitted, emitted, t - t_pass);
            t_pass = t;
        }
        stt.accepted += n_path;
        /* keep the pending token's entry and the accepted candidates' */
        if (stt.sweeps > 0) {
            int32_t slots[1 + AIR_SPEC_MAX_NODES];
            slots[0] = base;
            memcpy(slots + 1, path, sizeof(int32_t) * (size_t)n_path);
            air_kv_keep_path(kv, base, slots, 1 + n_path);
        }
        if (done)
            break;
        if (kv->n_past >= kv->max_seq)
            break; /* context full: stop cleanly */
        if (opt->should_abort && opt->should_abort(opt->user)) {
            st = air_err(AIR_ERR_ABORTED, "generation aborted after %d tokens", n);
            break;
        }
        int32_t id = gen[n - 1];
        base = kv->n_past;
        tree = &no_tree;
        int room = kv->max_seq - base - 1;
        if (spec) {
            int budget = air_spec_budget(spec);
            if (budget > room)
                budget = room;
            if (budget > cap - n)
                budget = cap - n; /* no use verifying past max_tokens */
            if (budget > 0 && (st = air_spec_propose(spec, hist, n_prompt + n, budget, &tree)))
                break;
        }
        st = verify(e, kv, id, tree, logits);
        stt.sweeps++;
        stt.drafted += tree->n;
        if (st)
            break;
    }
    stt.decode_seconds = now_s() - t0;
    stt.n_generated = n;
    *out = gen;
    *n_out = n;
    gen = NULL;
out:
    air_engine_set_abort(e, NULL, NULL);
    air_spec_free(spec);
    free(hist);
    free(gen);
    free(logits);
    free(allowed);
    air_sampler_free(smp);
    if (stats)
        *stats = stt;
    return st;
}
