/*
 * api_generate.c - text generation through the public API.
 *
 * messages -> chat template -> tokenizer -> air_generate() -> streaming
 * detokenizer -> stop-string filter -> on_text callback and the result text.
 * The stop-string filter holds back the tail of the text that could still
 * become a stop string, so a stop string is never streamed.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "runtime/generate.h"
#include "util/error.h"
#include "util/strbuf.h"

#define JSON_INSTRUCTION                                                                           \
    "You must respond with a single valid JSON object and nothing else: no prose, no code fences."

typedef struct {
    air_model *m;
    const air_gen_params *p;
    air_detok *detok;
    air_strbuf text;  /* everything decoded so far */
    size_t emitted;   /* bytes of text already given to on_text */
    size_t max_stop;  /* longest stop string */
    int stopped;      /* by a stop string */
    int cb_stopped;   /* by the callback */
    air_status err;
    uint8_t *gmask;   /* format="json": the grammar's mask (its vocabulary size) */
    int n_vocab;      /* the model's */
} run_ctx;

/* Length of the prefix of s[0..n) that ends on a UTF-8 character boundary. */
static size_t utf8_safe(const char *s, size_t n) {
    size_t k = n;
    while (k > 0 && ((unsigned char)s[k - 1] & 0xC0) == 0x80)
        k--;
    if (k == 0)
        return n;
    unsigned char lead = (unsigned char)s[k - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return n - (k - 1) >= need ? n : k - 1;
}

/* Gives on_text the text up to `upto`. */
static void emit(run_ctx *c, size_t upto) {
    if (upto <= c->emitted)
        return;
    if (c->p->on_text && !c->cb_stopped) {
        char save = c->text.data[upto];
        c->text.data[upto] = 0;
        if (c->p->on_text(c->p->user, c->text.data + c->emitted))
            c->cb_stopped = 1;
        c->text.data[upto] = save;
    }
    c->emitted = upto;
}

/* After new text arrived: cut at a stop string, emit what is safe. */
static void filter(run_ctx *c, int final) {
    if (c->text.len == 0)
        return;
    for (int i = 0; i < c->p->n_stop; i++) {
        const char *s = c->p->stop[i];
        if (!s || !*s)
            continue;
        size_t from = c->emitted > strlen(s) ? c->emitted - strlen(s) : 0;
        char *hit = strstr(c->text.data + from, s);
        if (hit) {
            size_t at = (size_t)(hit - c->text.data);
            c->text.len = at;
            c->text.data[at] = 0;
            c->stopped = 1;
        }
    }
    size_t safe = c->text.len;
    if (!final && !c->stopped && c->max_stop > 1)
        safe = safe > c->max_stop - 1 ? safe - (c->max_stop - 1) : 0;
    if (safe < c->emitted)
        safe = c->emitted;
    emit(c, final || c->stopped ? c->text.len : c->emitted + utf8_safe(c->text.data + c->emitted, safe - c->emitted));
}

static int on_token(void *user, int32_t id) {
    run_ctx *c = user;
    const char *piece;
    size_t len;
    air_status st = air_detok_push_n(c->detok, id, &piece, &len);
    if (st) {
        c->err = st;
        return 1;
    }
    if (len && air_sb_append(&c->text, piece, len)) {
        c->err = AIR_ERR_NOMEM;
        return 1;
    }
    filter(c, 0);
    return c->stopped || c->cb_stopped;
}

/* The JSON grammar's mask, fitted to the model's vocabulary (ids past the
 * tokenizer's are never allowed). */
static int constrain(void *user, const int32_t *gen, int n, uint8_t *allowed) {
    run_ctx *c = user;
    int gv = air_json_grammar_n_vocab(c->m->grammar);
    int done = air_json_grammar_constrain(c->m->grammar, gen, n, c->gmask);
    int k = gv < c->n_vocab ? gv : c->n_vocab;
    memcpy(allowed, c->gmask, (size_t)k);
    memset(allowed + k, 0, (size_t)(c->n_vocab - k));
    return done;
}

static int should_abort(void *user) {
    run_ctx *c = user;
    return c->p->should_abort ? c->p->should_abort(c->p->user) : 0;
}

/* Renders the conversation (plus the JSON instruction) into a prompt. */
static air_status render(air_model *m, const air_message *msgs, int n, int json, char **out) {
    cJSON *arr = cJSON_CreateArray();
    int has_system = n > 0 && msgs[0].role && strcmp(msgs[0].role, "system") == 0;
    if (json && !has_system) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", "system");
        cJSON_AddStringToObject(o, "content", JSON_INSTRUCTION);
        cJSON_AddItemToArray(arr, o);
    }
    for (int i = 0; i < n; i++) {
        if (!msgs[i].role) {
            cJSON_Delete(arr);
            return air_err(AIR_ERR_INVALID_ARG, "message %d has no role", i);
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", msgs[i].role);
        if (json && i == 0 && has_system) {
            air_strbuf sb = {0};
            air_sb_puts(&sb, msgs[i].content ? msgs[i].content : "");
            air_sb_puts(&sb, "\n\n" JSON_INSTRUCTION);
            cJSON_AddStringToObject(o, "content", sb.data);
            air_sb_free(&sb);
        } else {
            cJSON_AddStringToObject(o, "content", msgs[i].content ? msgs[i].content : "");
        }
        cJSON_AddItemToArray(arr, o);
    }
    const char *bos = m->tok ? air_tokenizer_bos_token(m->tok) : NULL;
    const char *eos = m->tok ? air_tokenizer_eos_token(m->tok) : NULL;
    air_status st = air_chat_template_render(m->tmpl, arr, NULL, 1, bos ? bos : "", eos ? eos : "",
                                             NULL, out);
    cJSON_Delete(arr);
    return st;
}

air_status air_chat(air_model *m, const air_message *msgs, int n, const air_gen_params *params,
                    air_result *out) {
    memset(out, 0, sizeof *out);
    if (!m || (!msgs && n > 0) || n < 0)
        return air_err(AIR_ERR_INVALID_ARG, "air_chat: no model or messages");
    if (!m->tok)
        return air_err(AIR_ERR_UNSUPPORTED, "model %s has no tokenizer (tokenizer.json): text "
                       "generation needs one", m->name);
    air_gen_params p = params ? *params : air_gen_default_params();
    char *prompt = NULL;
    int32_t *ids = NULL, *gen = NULL;
    size_t n_ids = 0;
    int n_gen = 0;
    run_ctx c = {0};
    c.m = m;
    c.p = &p;
    for (int i = 0; i < p.n_stop; i++)
        if (p.stop[i] && strlen(p.stop[i]) > c.max_stop)
            c.max_stop = strlen(p.stop[i]);
    air_status st = render(m, msgs, n, p.json, &prompt);
    if (st)
        return st;
    /* a template writes its own BOS; the fallback lets the tokenizer add it */
    st = air_tokenizer_encode(m->tok, prompt, strlen(prompt), m->template_src == NULL, &ids, &n_ids);
    free(prompt);
    if (st)
        return st;
    c.detok = air_detok_new(m->tok, 1);
    if (!c.detok) {
        free(ids);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    air_gen_options go = {0};
    go.max_tokens = p.max_tokens;
    go.sampler.temperature = p.temperature;
    go.sampler.top_k = p.top_k;
    go.sampler.top_p = p.top_p;
    go.sampler.min_p = p.min_p;
    go.sampler.repeat_penalty = p.repeat_penalty;
    go.sampler.seed = p.seed;
    go.eos_ids = m->eos;
    go.n_eos = m->n_eos;
    go.on_token = on_token;
    go.should_abort = should_abort;
    go.user = &c;
    air_gen_stats gs = {0};
    air_kv kv;
    pthread_mutex_lock(&m->mu);
    c.n_vocab = air_engine_hparams(m->engine)->n_vocab;
    if (p.json) {
        if (!m->grammar)
            st = air_json_grammar_new(m->tok, m->eos, m->n_eos, &m->grammar);
        if (!st) {
            air_json_grammar_reset(m->grammar);
            air_json_grammar_set_budget(m->grammar, p.max_tokens);
            c.gmask = malloc((size_t)air_json_grammar_n_vocab(m->grammar));
            if (!c.gmask)
                st = air_err(AIR_ERR_NOMEM, "out of memory");
            go.constrain = constrain;
        }
    }
    if (!st)
        st = air_kv_init(&kv, air_engine_hparams(m->engine), m->max_seq);
    if (!st) {
        st = air_generate(m->engine, &kv, ids, (int)n_ids, &go, &gen, &n_gen, &gs);
        air_kv_free(&kv);
    }
    pthread_mutex_unlock(&m->mu);
    if (!st && c.err)
        st = c.err;
    if (!st) {
        const char *tail = NULL;
        if (!c.stopped && air_detok_flush(c.detok, &tail) == AIR_OK && tail && *tail)
            air_sb_puts(&c.text, tail);
        filter(&c, 1);
        out->text = air_sb_take(&c.text);
        out->finish_reason = c.stopped || gs.stopped_by_eos ? "stop"
                             : c.cb_stopped                 ? "callback"
                                                            : "length";
        out->prompt_tokens = gs.n_prompt;
        out->completion_tokens = gs.n_generated;
        out->prefill_seconds = gs.prefill_seconds;
        out->decode_seconds = gs.decode_seconds;
        out->prefill_tokens_per_s = gs.prefill_seconds > 0 ? gs.n_prompt / gs.prefill_seconds : 0;
        out->decode_tokens_per_s =
            gs.decode_seconds > 0 && gs.n_generated > 1 ? (gs.n_generated - 1) / gs.decode_seconds : 0;
    }
    air_sb_free(&c.text);
    free(c.gmask);
    air_detok_free(c.detok);
    free(ids);
    free(gen);
    return st;
}

air_status air_generate_text(air_model *m, const char *system, const char *prompt,
                             const air_gen_params *params, air_result *out) {
    air_message msgs[2];
    int n = 0;
    if (system && *system)
        msgs[n++] = (air_message){.role = "system", .content = system};
    msgs[n++] = (air_message){.role = "user", .content = prompt ? prompt : ""};
    return air_chat(m, msgs, n, params, out);
}

void air_result_free(air_result *r) {
    if (!r)
        return;
    free(r->text);
    r->text = NULL;
}
