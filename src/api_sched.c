/*
 * api_sched.c - the scheduler of the public API: requests from any thread,
 * one background thread that runs the sweeps (runtime/sweep.h).
 *
 *   submit (caller's thread): template + tokenize, JSON grammar, queue
 *   loop (scheduler thread):  admit queued requests while the batch and the
 *                             KV budget allow -> one air_sweep_step over all
 *                             active ones (under the model's lock, so air_chat
 *                             on the same model waits between sweeps) ->
 *                             on_done for those that finished
 *
 * Speculation: the scheduler holds the draft model (air_sched_params) for
 * its lifetime; each request gets its own speculation options (the
 * scheduler's, narrowed by its air_gen_params) and so its own state (a
 * draft cache as long as its KV cache, counted in its KV bytes); the sweeps
 * share one candidate budget (runtime/spec_share.h). The draft's engine is
 * used in a sweep only when its model's lock is free (taken without
 * waiting, as air_chat does).
 *
 * Callbacks run on the scheduler thread with the request's own mutex held;
 * air_request_free takes that mutex too, so once it returns no callback of
 * the request runs again. Lock order: scheduler, then request.
 * A request is shared by its caller and the scheduler (refs); the last of
 * the two to let go frees it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "runtime/sweep.h"
#include "util/error.h"

/* Candidate rows of one sweep over all requests: with max_batch requests
 * at the deepest trees a sweep's logits alone would take hundreds of MiB. */
#define SWEEP_MAX_CANDIDATES 128

struct air_request {
    air_sched *s;
    pthread_mutex_t mu; /* held while callbacks run */
    atomic_int refs;    /* the caller's and the scheduler's */
    atomic_int cancelled;
    int released;          /* the caller let go: no more callbacks (under mu) */
    air_gen_params user_p; /* the caller's on_text / user */
    air_done_cb on_done;
    char **stops;
    int32_t *ids;
    size_t n_ids;
    air_json_grammar *grammar; /* this request's own (json, a schema, a forced call) */
    air_chat_extras cx;        /* tools and schema (chat requests) */
    int chat;                  /* cx is in use */
    air_response resp;
    air_gen_options go;
    air_spec_options so; /* go.spec points here when the request speculates */
    air_seq seq;
    size_t kv_bytes;
    int max_seq;       /* this request's context: min(its max_seq_len, the scheduler's) */
    air_request *next; /* in the queue */
};

struct air_sched {
    air_model *m;
    air_sched_params p;
    int max_seq;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    air_request **active;
    int n_active;
    air_request *q_head, *q_tail;
    int n_queued;
    air_sched_stats stats;
    /* speculation */
    air_model *draft;    /* held until stop; NULL: none */
    char *draft_ref;     /* its name as given (air_sched_params.draft_model) */
    air_spec_options so; /* every request's starting point */
    int spec;            /* speculation is on (lookup or a draft) */
    air_sweep_spec sw;
};

air_sched_params air_sched_default_params(void) {
    air_sched_params p;
    memset(&p, 0, sizeof p);
    p.max_batch = 16;
    p.max_queue = 64;
    p.prefill_chunk = 256;
    p.lookup = -1;
    p.speculative = 1;
    return p;
}

/* ---------------------------------------------------------------------------
 * requests
 * ------------------------------------------------------------------------- */

static void request_unref(air_request *r) {
    if (atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    air_seq_free(&r->seq);
    air_response_free(&r->resp);
    air_json_grammar_free(r->grammar);
    air_chat_extras_free(&r->cx);
    for (int i = 0; r->stops && i < r->user_p.n_stop; i++)
        free(r->stops[i]);
    free(r->stops);
    free(r->ids);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* The response's on_text: the caller's, unless the request was let go. */
static int request_on_text(void *user, const char *piece) {
    air_request *r = user;
    int stop = 1;
    pthread_mutex_lock(&r->mu);
    if (!r->released && !atomic_load(&r->cancelled))
        stop = r->user_p.on_text ? r->user_p.on_text(r->user_p.user, piece) : 0;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

/* The response's on_tool_call: the caller's, unless the request was let go. */
static int request_on_tool_call(void *user, int index, const char *id, const char *name,
                                const char *args) {
    air_request *r = user;
    int stop = 1;
    pthread_mutex_lock(&r->mu);
    if (!r->released && !atomic_load(&r->cancelled))
        stop = r->user_p.on_tool_call
                   ? r->user_p.on_tool_call(r->user_p.user, index, id, name, args)
                   : 0;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

static int request_should_abort(void *user) {
    air_request *r = user;
    return atomic_load(&r->cancelled);
}

void air_request_cancel(air_request *r) {
    if (r)
        atomic_store(&r->cancelled, 1);
}

void air_request_free(air_request *r) {
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->released = 1;
    atomic_store(&r->cancelled, 1);
    pthread_mutex_unlock(&r->mu);
    request_unref(r);
}

/* Ends a request: its on_done (unless let go), then the scheduler's ref.
 * Called with s->mu held; the request is in no list any more. */
static void request_done(air_sched *s, air_request *r, air_status st, const char *msg) {
    air_result res;
    memset(&res, 0, sizeof res);
    if (!st) {
        /* the text's tail and the calls go out through on_text and on_tool_call
         * (which take r->mu themselves) */
        st = air_response_end(&r->resp, r->seq.stopped_by_eos || r->seq.stopped_by_constraint,
                              r->chat ? &r->cx : NULL, &res);
        if (st)
            msg = air_last_error();
        double pre = r->seq.t_prefilled > 0 ? r->seq.t_prefilled - r->seq.t_start : 0;
        double dec = r->seq.t_prefilled > 0 ? r->seq.t_end - r->seq.t_prefilled : 0;
        air_result_stats(&res, r->seq.n_prompt, r->seq.n_gen, pre, dec);
        res.sweeps = r->seq.sweeps;
        /* the first token comes from the prefill; an EOS ends a pass's tokens */
        res.tokens_per_sweep = r->seq.sweeps > 0 ? (double)(r->seq.n_gen - 1 +
                                                            r->seq.stopped_by_eos) /
                                                       r->seq.sweeps
                                                 : 0;
        res.drafted = r->seq.drafted;
        res.accepted = r->seq.accepted;
        res.acceptance_rate = r->seq.drafted > 0 ? (double)r->seq.accepted / r->seq.drafted : 0;
    }
    pthread_mutex_lock(&r->mu);
    if (!r->released && r->on_done)
        r->on_done(r->user_p.user, st, st ? (msg ? msg : air_strerror(st)) : NULL,
                   st ? NULL : &res);
    pthread_mutex_unlock(&r->mu);
    air_result_free(&res);
    if (r->kv_bytes && r->seq.kv) {
        s->stats.kv_bytes -= r->kv_bytes;
        air_seq_free(&r->seq); /* the cache goes back now, not when the caller frees */
    }
    request_unref(r);
}

/* ---------------------------------------------------------------------------
 * the loop
 * ------------------------------------------------------------------------- */

/* Moves queued requests into the batch while there is room. s->mu held. */
static void admit(air_sched *s) {
    const air_hparams *hp = air_engine_hparams(s->m->engine);
    while (s->q_head && s->n_active < s->p.max_batch) {
        air_request *r = s->q_head;
        int dropped = atomic_load(&r->cancelled);
        if (!dropped && s->n_active > 0 && s->stats.kv_bytes + r->kv_bytes > s->p.kv_budget)
            break; /* waits for caches to be freed */
        s->q_head = r->next;
        if (!s->q_head)
            s->q_tail = NULL;
        s->n_queued--;
        if (dropped) {
            request_done(s, r, AIR_ERR_ABORTED, "the request was cancelled");
            continue;
        }
        air_status st = air_seq_init(&r->seq, hp, r->ids, (int)r->n_ids, &r->go, NULL, r->max_seq);
        if (st) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s", air_last_error());
            air_seq_free(&r->seq);
            request_done(s, r, st, msg);
            continue;
        }
        s->stats.kv_bytes += r->kv_bytes;
        if (s->stats.kv_bytes > s->stats.kv_bytes_peak)
            s->stats.kv_bytes_peak = s->stats.kv_bytes;
        s->active[s->n_active++] = r;
    }
}

static void *sched_loop(void *arg) {
    air_sched *s = arg;
    air_seq **seqs = calloc((size_t)s->p.max_batch, sizeof *seqs);
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        admit(s);
        if (s->n_active == 0) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        int n = s->n_active;
        for (int i = 0; i < n; i++)
            seqs[i] = &s->active[i]->seq;
        pthread_mutex_unlock(&s->mu);

        air_sweep_info info;
        pthread_mutex_lock(&s->m->mu);
        /* the draft's lock without waiting: a busy draft sits this sweep out */
        int draft_locked = s->draft && s->draft != s->m && pthread_mutex_trylock(&s->draft->mu) == 0;
        s->sw.draft_ok = s->draft && (s->draft == s->m || draft_locked);
        air_sweep_step(s->m->engine, seqs, n, s->p.prefill_chunk, s->spec ? &s->sw : NULL, &info);
        if (draft_locked)
            pthread_mutex_unlock(&s->draft->mu);
        pthread_mutex_unlock(&s->m->mu);

        pthread_mutex_lock(&s->mu);
        s->stats.sweeps++;
        s->stats.rows += (uint64_t)info.rows;
        s->stats.decode_steps += (uint64_t)info.decoded;
        s->stats.decode_tokens += (uint64_t)info.tokens;
        s->stats.drafted += (uint64_t)info.drafted;
        s->stats.accepted += (uint64_t)info.accepted;
        int k = 0;
        for (int i = 0; i < s->n_active; i++) {
            air_request *r = s->active[i];
            if (!r->seq.done) {
                s->active[k++] = r;
                continue;
            }
            s->stats.tokens += (uint64_t)r->seq.n_gen;
            air_status st = r->seq.err ? r->seq.err : r->resp.err;
            request_done(s, r, st, r->seq.err ? r->seq.errmsg : air_strerror(st));
        }
        s->n_active = k;
    }
    /* stopping: every request still here ends as aborted */
    for (int i = 0; i < s->n_active; i++)
        request_done(s, s->active[i], AIR_ERR_ABORTED, "the scheduler was stopped");
    s->n_active = 0;
    while (s->q_head) {
        air_request *r = s->q_head;
        s->q_head = r->next;
        request_done(s, r, AIR_ERR_ABORTED, "the scheduler was stopped");
    }
    s->q_tail = NULL;
    s->n_queued = 0;
    pthread_mutex_unlock(&s->mu);
    free(seqs);
    return NULL;
}

air_status air_sched_start(air_model *m, const air_sched_params *params, air_sched **out) {
    *out = NULL;
    if (!m)
        return air_err(AIR_ERR_INVALID_ARG, "air_sched_start: no model");
    if (!m->tok)
        return air_err(AIR_ERR_UNSUPPORTED,
                       "model %s has no tokenizer (tokenizer.json): text "
                       "generation needs one",
                       m->name);
    air_sched *s = calloc(1, sizeof *s);
    if (!s)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    s->m = m;
    s->p = params ? *params : air_sched_default_params();
    if (s->p.max_batch <= 0)
        s->p.max_batch = 16;
    if (s->p.max_queue < 0)
        s->p.max_queue = 0;
    s->max_seq = s->p.max_seq_len > 0 ? s->p.max_seq_len : m->max_seq;
    if (s->p.kv_budget == 0)
        s->p.kv_budget =
            (uint64_t)s->p.max_batch * air_kv_bytes(air_engine_hparams(m->engine), s->max_seq);
    air_gen_params gp = air_gen_default_params();
    gp.draft_model = s->p.draft_model;
    gp.draft_compression = s->p.draft_compression;
    gp.lookup = s->p.lookup;
    gp.speculative = s->p.speculative;
    gp.draft_max = s->p.draft_max;
    air_status st = air_spec_setup(m, &gp, &s->draft, &s->so, &s->spec);
    if (st) {
        free(s);
        return st;
    }
    /* per request: on when the request asks, even where the default is off */
    s->spec = s->p.speculative && s->so.n_vocab > 0;
    s->draft_ref = s->draft ? strdup(s->p.draft_model) : NULL;
    s->p.draft_model = s->p.draft_compression = NULL; /* the caller's strings */
    s->sw.share.costs.grow = !s->so.streamed;
    s->sw.share.max_total = SWEEP_MAX_CANDIDATES;
    s->active = calloc((size_t)s->p.max_batch, sizeof *s->active);
    if (!s->active || (s->draft && !s->draft_ref)) {
        air_model_release(s->draft);
        free(s->draft_ref);
        free(s->active);
        free(s);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, sched_loop, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        air_model_release(s->draft);
        free(s->draft_ref);
        free(s->active);
        free(s);
        return air_err(AIR_ERR_INTERNAL, "cannot start the scheduler thread");
    }
    *out = s;
    return AIR_OK;
}

void air_sched_stop(air_sched *s) {
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    air_model_release(s->draft);
    free(s->draft_ref);
    free(s->active);
    free(s);
}

void air_sched_get_stats(air_sched *s, air_sched_stats *out) {
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    out->active = s->n_active;
    out->queued = s->n_queued;
    pthread_mutex_unlock(&s->mu);
}

/* The request's speculation: the scheduler's, narrowed by its params. */
static air_status request_spec(air_sched *s, air_request *r, const air_gen_params *p) {
    memset(&r->so, 0, sizeof r->so);
    if (p->draft_max < 0 || p->draft_max > AIR_SPEC_MAX_NODES)
        return air_err(AIR_ERR_INVALID_ARG, "draft_max %d: candidate tokens per pass go from 1 "
                       "to %d (0 = automatic)", p->draft_max, AIR_SPEC_MAX_NODES);
    if (p->draft_model && *p->draft_model) {
        if (!s->draft_ref || strcmp(p->draft_model, s->draft_ref) != 0)
            return air_err(AIR_ERR_UNSUPPORTED, "draft model %s: the requests of a scheduler "
                           "use its own draft (air_sched_params.draft_model, airllm serve "
                           "--draft); leave draft_model NULL", p->draft_model);
    }
    if (!s->spec || !p->speculative)
        return AIR_OK;
    /* lookup on by request where the scheduler's default is off */
    r->so = s->so;
    if (p->lookup >= 0)
        r->so.lookup = p->lookup != 0;
    if (p->draft_max > 0)
        r->so.max_nodes = p->draft_max;
    return AIR_OK;
}

air_status air_sched_submit(air_sched *s, const air_message *messages, int n,
                            const char *raw_prompt, const air_gen_params *params,
                            air_done_cb on_done, air_request **out) {
    *out = NULL;
    if (!s || (!raw_prompt && (n < 0 || (n > 0 && !messages))))
        return air_err(AIR_ERR_INVALID_ARG, "air_sched_submit: no scheduler or messages");
    air_request *r = calloc(1, sizeof *r);
    if (!r)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&r->mu, NULL);
    atomic_init(&r->refs, 1);
    atomic_init(&r->cancelled, 0);
    r->s = s;
    r->on_done = on_done;
    air_gen_params p = params ? *params : air_gen_default_params();
    r->user_p = p;
    air_status st = AIR_OK;
    if (p.max_seq_len < 0)
        st = air_err(AIR_ERR_INVALID_ARG, "max_seq_len must be >= 0, got %d", p.max_seq_len);
    r->max_seq = p.max_seq_len > 0 && p.max_seq_len < s->max_seq ? p.max_seq_len : s->max_seq;
    /* own copies of the stop strings */
    r->user_p.n_stop = 0;
    if (p.n_stop > 0) {
        r->stops = calloc((size_t)p.n_stop, sizeof *r->stops);
        if (!r->stops)
            st = air_err(AIR_ERR_NOMEM, "out of memory");
        for (int i = 0; !st && i < p.n_stop; i++) {
            r->stops[i] = strdup(p.stop[i] ? p.stop[i] : "");
            r->user_p.n_stop++;
            if (!r->stops[i])
                st = air_err(AIR_ERR_NOMEM, "out of memory");
        }
    }
    p.stop = (const char *const *)r->stops;
    p.on_text = request_on_text;
    p.on_tool_call = request_on_tool_call;
    p.should_abort = request_should_abort;
    p.user = r;
    if (!st && raw_prompt) {
        st = air_tokenizer_encode(s->m->tok, raw_prompt, strlen(raw_prompt), 1, &r->ids,
                                  &r->n_ids);
    } else if (!st) {
        st = air_chat_prepare(s->m, messages, n, NULL, &p, &r->cx, &r->ids, &r->n_ids);
        r->chat = !st;
    }
    if (!st && r->n_ids + (p.max_tokens > 0 ? 1 : 0) > (size_t)r->max_seq)
        st = air_err(AIR_ERR_LIMIT,
                     "the prompt has %zu tokens, more than the context of a "
                     "request (%d tokens) allows; shorten it or raise the context length",
                     r->n_ids, r->max_seq);
    if (!st && p.json)
        st = air_json_grammar_new(s->m->tok, s->m->eos, s->m->n_eos, &r->grammar);
    if (!st)
        st = air_response_init(&r->resp, s->m, &p, r->grammar);
    if (!st)
        st = air_response_chat(&r->resp, r->chat ? &r->cx : NULL,
                               r->max_seq - (int)r->n_ids + 1);
    if (!st)
        st = request_spec(s, r, &p);
    if (!st) {
        air_response_options(&r->resp, &r->go);
        if (r->so.lookup || r->so.draft)
            r->go.spec = &r->so;
        r->kv_bytes = air_seq_kv_bytes(air_engine_hparams(s->m->engine), (int)r->n_ids,
                                       p.max_tokens, r->max_seq);
        if (r->so.draft) /* its draft's cache: as many positions, plus the candidates' */
            r->kv_bytes += air_kv_bytes(air_engine_hparams(r->so.draft),
                                        air_seq_kv_positions((int)r->n_ids, p.max_tokens,
                                                             r->max_seq) +
                                            AIR_SPEC_MAX_NODES + 1);
        if (r->kv_bytes > s->p.kv_budget)
            st = air_err(AIR_ERR_LIMIT,
                         "the request needs %zu MiB of KV cache, more than the "
                         "budget of %llu MiB; ask for fewer tokens",
                         r->kv_bytes >> 20, (unsigned long long)(s->p.kv_budget >> 20));
    }
    if (st) {
        request_unref(r);
        return st;
    }
    pthread_mutex_lock(&s->mu);
    if (s->stopping || s->n_active + s->n_queued >= s->p.max_batch + s->p.max_queue) {
        int busy = !s->stopping;
        int na = s->n_active, nq = s->n_queued;
        pthread_mutex_unlock(&s->mu);
        request_unref(r);
        return busy ? air_err(AIR_ERR_LIMIT,
                              "busy: %d requests running and %d waiting (the "
                              "most the queue takes); retry later",
                              na, nq)
                    : air_err(AIR_ERR_ABORTED, "the scheduler is stopping");
    }
    atomic_store(&r->refs, 2);
    if (s->q_tail)
        s->q_tail->next = r;
    else
        s->q_head = r;
    s->q_tail = r;
    s->n_queued++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    *out = r;
    return AIR_OK;
}
