/*
 * sweep.c - one forward pass for many sequences (see sweep.h).
 *
 * Rows are laid out sequence by sequence: a decoding sequence contributes
 * its last sampled token at position kv->n_past; a sequence in prefill
 * contributes the next chunk of its prompt. Logits are wanted for every
 * decode row and for the last prompt row of a sequence whose prompt is then
 * complete; they come back packed in row order, so the k-th wanted row's
 * logits belong to the k-th sequence that samples.
 */
#include "runtime/sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/error.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int air_seq_kv_positions(int n_prompt, int max_tokens, int max_seq) {
    long need = (long)n_prompt + (max_tokens > 0 ? max_tokens : 1);
    return need < max_seq ? (int)need : max_seq;
}

size_t air_seq_kv_bytes(const air_hparams *hp, int n_prompt, int max_tokens, int max_seq) {
    return air_kv_bytes(hp, air_seq_kv_positions(n_prompt, max_tokens, max_seq));
}

air_status air_seq_init(air_seq *s, const air_hparams *hp, const int32_t *prompt, int n_prompt,
                        const air_gen_options *opt, air_kv *kv, int max_seq) {
    memset(s, 0, sizeof *s);
    s->opt = *opt;
    s->t_start = now_s();
    if (n_prompt <= 0)
        return air_err(AIR_ERR_INVALID_ARG, "the prompt is empty (no tokens)");
    int n_past = kv ? kv->n_past : 0, ctx = kv ? kv->max_seq : max_seq;
    if (n_past + n_prompt + (opt->max_tokens > 0 ? 1 : 0) > ctx)
        return air_err(AIR_ERR_LIMIT,
                       "the prompt has %d tokens, more than the context length "
                       "%d (max_seq_len) allows; shorten it or raise max_seq_len",
                       n_past + n_prompt, ctx);
    int cap = opt->max_tokens > 0 ? opt->max_tokens : 0;
    if (cap > ctx - n_past - n_prompt + 1)
        cap = ctx - n_past - n_prompt + 1; /* what the context can hold */
    s->opt.max_tokens = cap;
    s->prompt = malloc(sizeof(int32_t) * (size_t)n_prompt);
    s->gen = malloc(sizeof(int32_t) * (size_t)(cap + 1));
    s->smp = air_sampler_new(&opt->sampler, hp->n_vocab);
    s->allowed = opt->constrain ? malloc((size_t)hp->n_vocab) : NULL;
    if (!s->prompt || !s->gen || !s->smp || (opt->constrain && !s->allowed))
        return air_err(AIR_ERR_NOMEM, "out of memory");
    memcpy(s->prompt, prompt, sizeof(int32_t) * (size_t)n_prompt);
    s->n_prompt = n_prompt;
    if (kv) {
        s->kv = kv;
        return AIR_OK;
    }
    air_status st = air_kv_init(&s->own_kv, hp, air_seq_kv_positions(n_prompt, cap, max_seq));
    if (!st)
        s->kv = &s->own_kv;
    return st;
}

void air_seq_free(air_seq *s) {
    if (!s)
        return;
    if (s->kv == &s->own_kv)
        air_kv_free(&s->own_kv);
    free(s->prompt);
    free(s->gen);
    free(s->allowed);
    air_sampler_free(s->smp);
    memset(s, 0, sizeof *s);
}

static void finish(air_seq *s, air_status err) {
    s->done = 1;
    s->err = err;
    if (err)
        snprintf(s->errmsg, sizeof s->errmsg, "%s", air_last_error());
    s->t_end = now_s();
}

/* After the pass: the sequence's next token from its logits (air_generate's
 * loop body). */
static void sample_next(air_seq *s, float *logits) {
    const air_gen_options *o = &s->opt;
    int cap = o->max_tokens > 0 ? o->max_tokens : 0;
    if (s->n_gen >= cap) {
        finish(s, AIR_OK);
        return;
    }
    if (s->allowed && o->constrain(o->user, s->gen, s->n_gen, s->allowed)) {
        s->stopped_by_constraint = 1;
        finish(s, AIR_OK);
        return;
    }
    int32_t id = air_sampler_sample(s->smp, logits, s->gen, s->n_gen, s->allowed);
    for (int i = 0; i < o->n_eos; i++)
        if (id == o->eos_ids[i]) {
            s->stopped_by_eos = 1;
            finish(s, AIR_OK);
            return;
        }
    s->gen[s->n_gen++] = id;
    if ((o->on_token && o->on_token(o->user, id)) || s->n_gen == cap ||
        s->kv->n_past >= s->kv->max_seq)
        finish(s, AIR_OK); /* the callback's stop, max_tokens, or the context is full */
}

air_status air_sweep_step(air_engine *e, air_seq *const *seqs, int n, int max_prefill,
                          int *n_rows) {
    const air_hparams *hp = air_engine_hparams(e);
    if (n_rows)
        *n_rows = 0;
    int *take = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1)); /* rows each sequence puts in */
    if (!take)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    /* aborts, then the rows of each sequence */
    int rows = 0, wanted = 0, budget = max_prefill > 0 ? max_prefill : 0x7fffffff;
    for (int i = 0; i < n; i++) {
        air_seq *s = seqs[i];
        take[i] = 0;
        if (s->done)
            continue;
        if (s->opt.should_abort && s->opt.should_abort(s->opt.user)) {
            finish(s, air_err(AIR_ERR_ABORTED, "generation aborted after %d tokens", s->n_gen));
            continue;
        }
        int k = 1; /* decode: the last sampled token */
        if (s->n_fed < s->n_prompt) {
            k = s->n_prompt - s->n_fed;
            if (k > budget)
                k = budget;
            budget -= k;
        }
        take[i] = k;
        rows += k;
        wanted += s->n_fed >= s->n_prompt || s->n_fed + k == s->n_prompt;
    }
    if (rows == 0) {
        free(take);
        return AIR_OK;
    }
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)rows);
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)rows);
    air_kv **kvs = malloc(sizeof(air_kv *) * (size_t)rows);
    uint8_t *want = malloc((size_t)rows);
    float *logits = malloc(sizeof(float) * (size_t)(wanted ? wanted : 1) * (size_t)hp->n_vocab);
    air_status st = AIR_OK;
    if (!tok || !pos || !kvs || !want || !logits) {
        st = air_err(AIR_ERR_NOMEM, "out of memory for a pass of %d rows", rows);
        goto out;
    }
    int r = 0;
    for (int i = 0; i < n; i++) {
        air_seq *s = seqs[i];
        int prefill = s->n_fed < s->n_prompt;
        for (int j = 0; j < take[i]; j++, r++) {
            tok[r] = prefill ? s->prompt[s->n_fed + j] : s->gen[s->n_gen - 1];
            pos[r] = s->kv->n_past + j;
            kvs[r] = s->kv;
            want[r] = j == take[i] - 1 && (!prefill || s->n_fed + take[i] == s->n_prompt);
        }
    }
    air_batch b = {rows, tok, pos, kvs, want, logits, NULL, NULL};
    st = air_engine_forward(e, &b);
    int k = 0;
    for (int i = 0; i < n; i++) {
        air_seq *s = seqs[i];
        if (!take[i])
            continue;
        if (st) {
            finish(s, st);
            continue;
        }
        s->kv->n_past += take[i];
        int sampling = 0;
        if (s->n_fed < s->n_prompt) {
            s->n_fed += take[i];
            if (s->n_fed == s->n_prompt) {
                s->t_prefilled = now_s();
                sampling = 1;
            }
        } else {
            sampling = 1;
        }
        if (sampling)
            sample_next(s, logits + (size_t)k++ * hp->n_vocab);
    }
    if (n_rows)
        *n_rows = rows;
out:
    free(tok);
    free(pos);
    free(kvs);
    free(want);
    free(take);
    free(logits);
    return st;
}
