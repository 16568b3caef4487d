/*
 * sweep.c - one forward pass for many sequences (see sweep.h).
 *
 * Rows are laid out sequence by sequence: a decoding sequence contributes
 * its last sampled token at position kv->n_past; a sequence in prefill
 * contributes the next chunk of its prompt. Logits are wanted for every
 * decode row and for the last prompt row of a sequence whose prompt is then
 * complete; they come back packed in row order, so the k-th wanted row's
 * logits belong to the k-th sequence that samples.
 *
 * With candidates in the pass, every row is a tree row (air_batch.slot and
 * parent): a decoding sequence's pending token is a root at slot n_past and
 * its candidates hang under it (air_spec_rows); a prompt chunk is a chain
 * (each row the child of the one before, the first a root), which attends
 * to exactly the keys of causal rows. All rows of a decoding sequence want
 * logits: the walk may need any of them.
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
    /* prompt and output in one array: the history lookup and the draft read */
    s->prompt = malloc(sizeof(int32_t) * ((size_t)n_prompt + (size_t)cap + 1));
    s->smp = air_sampler_new(&opt->sampler, hp->n_vocab);
    s->allowed = opt->constrain ? malloc((size_t)hp->n_vocab) : NULL;
    if (!s->prompt || !s->smp || (opt->constrain && !s->allowed))
        return air_err(AIR_ERR_NOMEM, "out of memory");
    memcpy(s->prompt, prompt, sizeof(int32_t) * (size_t)n_prompt);
    s->gen = s->prompt + n_prompt;
    s->n_prompt = n_prompt;
    air_status st = AIR_OK;
    if (kv)
        s->kv = kv;
    else if (!(st = air_kv_init(&s->own_kv, hp, air_seq_kv_positions(n_prompt, cap, max_seq))))
        s->kv = &s->own_kv;
    if (!st && opt->spec && !(st = air_spec_new(opt->spec, s->kv->max_seq, &s->spec)))
        air_spec_start(s->spec, n_prompt);
    return st;
}

void air_seq_free(air_seq *s) {
    if (!s)
        return;
    if (s->kv == &s->own_kv)
        air_kv_free(&s->own_kv);
    air_spec_free(s->spec);
    free(s->prompt);
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

/* After the pass: the walk over a decoding sequence's rows (its pending
 * token's at logits row 0, candidate node i's at row 1 + i): sample, and go
 * on into the child carrying the sampled token; the cache keeps the pending
 * token's entry and the walked candidates'. Returns the candidates followed. */
static int walk(air_seq *s, const air_spec_tree *t, float *logits, int n_vocab) {
    int base = s->kv->n_past, node = -1, n_path = 0;
    int32_t slots[1 + AIR_SPEC_MAX_NODES];
    slots[0] = base;
    for (;;) {
        s->kv->n_past = base + 1 + n_path; /* what the cache holds for this token */
        sample_next(s, logits + (size_t)(node + 1) * n_vocab);
        if (s->done || !t)
            break;
        int c = air_spec_child(t, node, s->gen[s->n_gen - 1]);
        if (c < 0)
            break;
        node = c;
        slots[++n_path] = air_spec_slot(base, c);
    }
    air_kv_keep_path(s->kv, base, slots, 1 + n_path);
    return n_path;
}

/* Candidates of the decoding sequences (trees[i], NULL: none): budgets for
 * the whole pass, then each sequence's proposal. rows, tokens: the pass's
 * without candidates. Returns the candidate rows. */
static int propose(air_seq *const *seqs, int n, const int *take, air_sweep_spec *sw, int rows,
                   const air_spec_tree **trees) {
    air_spec **spec = calloc((size_t)n, sizeof *spec);
    const int32_t **hist = calloc((size_t)n, sizeof *hist);
    int *room = calloc((size_t)n, sizeof *room), *budget = calloc((size_t)n, sizeof *budget);
    int tokens = 0, added = 0;
    if (!spec || !hist || !room || !budget)
        goto out; /* no candidates this time */
    for (int i = 0; i < n; i++) {
        air_seq *s = seqs[i];
        if (!take[i] || s->n_fed < s->n_prompt)
            continue;
        tokens++;
        if (!s->spec || (s->opt.spec->draft && !sw->draft_ok))
            continue;
        spec[i] = s->spec;
        /* candidates past the context or max_tokens would never be emitted */
        int ctx = s->kv->max_seq - s->kv->n_past - 1, left = s->opt.max_tokens - s->n_gen;
        room[i] = ctx < left ? ctx : left;
        if (room[i] > AIR_SPEC_MAX_NODES)
            room[i] = AIR_SPEC_MAX_NODES;
    }
    air_spec_share_plan(&sw->share, spec, room, n, rows, tokens, budget);
    /* the proposals of all, their draft passes batched */
    int m = 0;
    for (int i = 0; i < n; i++)
        if (budget[i] > 0) {
            spec[m] = seqs[i]->spec;
            hist[m] = seqs[i]->prompt;
            room[m] = seqs[i]->n_prompt + seqs[i]->n_gen; /* reused: history lengths */
            budget[m++] = budget[i];
        }
    air_status st = m ? air_spec_propose_many(spec, hist, room, budget, m) : AIR_OK;
    for (int i = 0; i < n; i++) {
        if (!take[i] || seqs[i]->n_fed < seqs[i]->n_prompt || !seqs[i]->spec)
            continue;
        const air_spec_tree *t = air_spec_tree_of(seqs[i]->spec);
        int proposed = 0;
        for (int k = 0; k < m; k++)
            proposed |= spec[k] == seqs[i]->spec;
        if (!proposed)
            continue;
        if (st)
            finish(seqs[i], st);
        else if (t->n > 0) {
            trees[i] = t;
            added += t->n;
        }
    }
out:
    free(spec);
    free(hist);
    free(room);
    free(budget);
    return added;
}

air_status air_sweep_step(air_engine *e, air_seq *const *seqs, int n, int max_prefill,
                          air_sweep_spec *sw, air_sweep_info *info) {
    const air_hparams *hp = air_engine_hparams(e);
    air_sweep_info inf;
    memset(&inf, 0, sizeof inf);
    if (info)
        *info = inf;
    int *take = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1)); /* rows each sequence puts in */
    const air_spec_tree **trees = calloc((size_t)(n > 0 ? n : 1), sizeof *trees);
    if (!take || !trees) {
        free(take);
        free(trees);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    /* aborts, then the rows of each sequence */
    int rows = 0, budget = max_prefill > 0 ? max_prefill : 0x7fffffff;
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
    }
    int cand = sw && rows > 0 ? propose(seqs, n, take, sw, rows, trees) : 0;
    int wanted = 0;
    rows = 0;
    for (int i = 0; i < n; i++) {
        air_seq *s = seqs[i];
        if (take[i] && s->done)
            take[i] = 0; /* its proposal failed */
        if (trees[i])
            take[i] += trees[i]->n;
        rows += take[i];
        if (take[i])
            wanted += s->n_fed < s->n_prompt ? s->n_fed + take[i] == s->n_prompt : take[i];
    }
    if (rows == 0) {
        free(take);
        free(trees);
        return AIR_OK;
    }
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)rows);
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)rows);
    int32_t *slot = cand ? malloc(sizeof(int32_t) * (size_t)rows) : NULL;
    int32_t *parent = cand ? malloc(sizeof(int32_t) * (size_t)rows) : NULL;
    air_kv **kvs = malloc(sizeof(air_kv *) * (size_t)rows);
    uint8_t *want = malloc((size_t)rows);
    float *logits = malloc(sizeof(float) * (size_t)(wanted ? wanted : 1) * (size_t)hp->n_vocab);
    air_status st = AIR_OK;
    if (!tok || !pos || !kvs || !want || !logits || (cand && (!slot || !parent))) {
        st = air_err(AIR_ERR_NOMEM, "out of memory for a pass of %d rows", rows);
        goto out;
    }
    int r = 0;
    for (int i = 0; i < n; i++) {
        air_seq *s = seqs[i];
        if (!take[i])
            continue;
        if (s->n_fed >= s->n_prompt) { /* decode: the pending token, its candidates */
            static const air_spec_tree no_tree = {0};
            int32_t one_slot, one_parent; /* a plain pass has no tree arrays */
            air_spec_rows(trees[i] ? trees[i] : &no_tree, s->gen[s->n_gen - 1], s->kv, tok + r,
                          pos + r, cand ? slot + r : &one_slot, cand ? parent + r : &one_parent,
                          kvs + r);
            memset(want + r, 1, (size_t)take[i]);
            r += take[i];
            continue;
        }
        for (int j = 0; j < take[i]; j++, r++) {
            tok[r] = s->prompt[s->n_fed + j];
            pos[r] = s->kv->n_past + j;
            kvs[r] = s->kv;
            want[r] = j == take[i] - 1 && s->n_fed + take[i] == s->n_prompt;
            if (cand) { /* a chain: the causal rows of a prompt chunk */
                slot[r] = pos[r];
                parent[r] = j ? pos[r] - 1 : -1;
            }
        }
    }
    air_batch b = {rows, tok, pos, kvs, want, logits, slot, parent};
    double t0 = now_s();
    st = air_engine_forward(e, &b);
    inf.seconds = now_s() - t0;
    inf.rows = rows;
    if (sw && !st)
        air_spec_share_observe(&sw->share, rows, inf.seconds);
    int k = 0;
    for (int i = 0; i < n; i++) {
        air_seq *s = seqs[i];
        if (!take[i])
            continue;
        if (st) {
            finish(s, st);
            continue;
        }
        if (s->n_fed < s->n_prompt) {
            s->kv->n_past += take[i];
            s->n_fed += take[i];
            if (s->n_fed == s->n_prompt) {
                s->t_prefilled = now_s();
                sample_next(s, logits + (size_t)k++ * hp->n_vocab);
            }
            continue;
        }
        const air_spec_tree *t = trees[i];
        int n0 = s->n_gen;
        int acc = walk(s, t, logits + (size_t)k * hp->n_vocab, hp->n_vocab);
        k += take[i];
        s->sweeps++;
        s->drafted += t ? t->n : 0;
        s->accepted += acc;
        if (s->spec)
            air_spec_record(s->spec, t ? 1 + t->n : 1, acc, s->gen + n0, s->n_gen - n0);
        inf.decoded++;
        inf.tokens += s->n_gen - n0 + s->stopped_by_eos;
        inf.drafted += t ? t->n : 0;
        inf.accepted += acc;
    }
    if (info)
        *info = inf;
out:
    free(tok);
    free(pos);
    free(slot);
    free(parent);
    free(kvs);
    free(want);
    free(take);
    free(trees);
    free(logits);
    return st;
}
