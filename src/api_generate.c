/*
 * api_generate.c - text generation through the public API.
 *
 * messages -> chat template -> tokenizer -> air_generate() -> streaming
 * detokenizer -> stop-string filter -> on_text callback and the result text.
 * The stop-string filter holds back the tail of the text that could still
 * become a stop string, so a stop string is never streamed.
 * air_generate_ids enters the same path after the tokenizer, with the
 * caller's ids.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"
#include "runtime/generate.h"
#include "util/error.h"
#include "util/strbuf.h"

#define JSON_INSTRUCTION                                                                           \
    "You must respond with a single valid JSON object and nothing else: no prose, no code fences."
#define SCHEMA_INSTRUCTION                                                                         \
    "You must respond with a single valid JSON object that follows this JSON schema, and nothing " \
    "else (no prose, no code fences):\n"


static int tc_on_content(void *user, const char *piece) {
    air_response *c = user;
    if (c->p.on_text && !c->cb_stopped && c->p.on_text(c->p.user, piece))
        c->cb_stopped = 1;
    return 0;
}

static int tc_on_call(void *user, int index, const char *id, const char *name, const char *args) {
    air_response *c = user;
    if (c->p.on_tool_call && !c->cb_stopped &&
        c->p.on_tool_call(c->p.user, index, id, name, args))
        c->cb_stopped = 1;
    return 0;
}

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
static void emit(air_response *c, size_t upto) {
    if (upto <= c->emitted)
        return;
    if (c->tc) {
        if (air_tc_push(c->tc, c->text.data + c->emitted, upto - c->emitted))
            c->err = AIR_ERR_NOMEM;
    } else if (c->p.on_text && !c->cb_stopped && !c->quiet) {
        char save = c->text.data[upto];
        c->text.data[upto] = 0;
        if (c->p.on_text(c->p.user, c->text.data + c->emitted))
            c->cb_stopped = 1;
        c->text.data[upto] = save;
    }
    c->emitted = upto;
}

/* After new text arrived: cut at a stop string, emit what is safe. */
static void filter(air_response *c, int final) {
    if (c->text.len == 0)
        return;
    for (int i = 0; i < c->p.n_stop; i++) {
        const char *s = c->p.stop[i];
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
    air_response *c = user;
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
    air_response *c = user;
    int gv = air_json_grammar_n_vocab(c->grammar);
    int done = air_json_grammar_constrain(c->grammar, gen, n, c->gmask);
    int k = gv < c->n_vocab ? gv : c->n_vocab;
    memcpy(allowed, c->gmask, (size_t)k);
    memset(allowed + k, 0, (size_t)(c->n_vocab - k));
    return done;
}

static int should_abort(void *user) {
    air_response *c = user;
    return c->p.should_abort ? c->p.should_abort(c->p.user) : 0;
}

/* The draft must speak the model's vocabulary: the same tokens under the
 * same ids (the embedding tables may be padded differently). */
static air_status same_vocab(const air_model *m, const air_model *d) {
    if (m->tok && d->tok) {
        int32_t n = air_tokenizer_vocab_size(m->tok), nd = air_tokenizer_vocab_size(d->tok);
        if (n != nd)
            return air_err(AIR_ERR_INVALID_ARG, "draft model %s has a vocabulary of %d tokens, "
                           "%s has %d: a draft must use the model's tokenizer (e.g. a smaller "
                           "model of the same family)", d->name, nd, m->name, n);
        for (int32_t i = 0; i < n; i++) {
            const char *a = air_tokenizer_id_to_token(m->tok, i),
                       *b = air_tokenizer_id_to_token(d->tok, i);
            if ((a || b) && (!a || !b || strcmp(a, b) != 0))
                return air_err(AIR_ERR_INVALID_ARG, "draft model %s has a different vocabulary "
                               "from %s: token %d is '%s' there and '%s' here; a draft must use "
                               "the model's tokenizer", d->name, m->name, (int)i, b ? b : "",
                               a ? a : "");
        }
        return AIR_OK;
    }
    int n = air_engine_hparams(m->engine)->n_vocab, nd = air_engine_hparams(d->engine)->n_vocab;
    if (n != nd)
        return air_err(AIR_ERR_INVALID_ARG, "draft model %s has %d vocabulary rows, %s has %d: "
                       "a draft must use the model's vocabulary", d->name, nd, m->name, n);
    return AIR_OK;
}

air_status air_spec_setup(air_model *m, const air_gen_params *p, air_model **draft,
                          air_spec_options *so, int *use) {
    *draft = NULL;
    *use = 0;
    memset(so, 0, sizeof *so);
    if (p->draft_max < 0 || p->draft_max > AIR_SPEC_MAX_NODES)
        return air_err(AIR_ERR_INVALID_ARG, "draft_max %d: candidate tokens per pass go from 1 "
                       "to %d (0 = automatic)", p->draft_max, AIR_SPEC_MAX_NODES);
    if (!p->speculative)
        return AIR_OK;
    air_engine *e = m->engine;
    air_engine_gpu_stats gs;
    air_engine_gpu_get_stats(e, &gs);
    if (gs.on_gpu) { /* no tree rows on the GPU yet */
        if ((p->draft_model && *p->draft_model) || p->lookup > 0)
            return air_err(AIR_ERR_UNSUPPORTED, "speculative decoding does not run on the GPU "
                           "yet; decode without a draft or lookup, or on the CPU (device cpu)");
        return AIR_OK;
    }
    if (air_engine_hparams(e)->kv_lora_rank > 0) { /* no tree rows in mla.c yet */
        if ((p->draft_model && *p->draft_model) || p->lookup > 0)
            return air_err(AIR_ERR_UNSUPPORTED, "speculative decoding is not supported with "
                           "latent attention (%s) yet; decode without a draft or lookup",
                           air_arch_name(air_engine_hparams(e)->arch));
        return AIR_OK;
    }
    air_streamer_stats ss;
    air_streamer_get_stats(air_engine_streamer(e), &ss);
    so->streamed = ss.n_pinned < air_store_n_units(air_engine_store(e));
    so->lookup = p->lookup < 0 ? so->streamed : p->lookup != 0;
    so->max_nodes = p->draft_max;
    so->n_vocab = air_engine_hparams(e)->n_vocab;
    if (p->draft_model && *p->draft_model) {
        air_model_params mp = air_model_default_params();
        mp.compression = p->draft_compression ? p->draft_compression : "4bit";
        mp.cache_dir = m->cache_dir;
        mp.ram_budget = UINT64_MAX - 1; /* every unit resident */
        mp.max_seq_len = m->max_seq;
        air_status st = air_model_acquire(p->draft_model, &mp, draft);
        if (st)
            return air_err_context(st, "draft model %s", p->draft_model);
        if ((st = same_vocab(m, *draft))) {
            air_model_release(*draft);
            *draft = NULL;
            return st;
        }
        if (air_engine_hparams((*draft)->engine)->kv_lora_rank > 0) {
            air_model_release(*draft);
            *draft = NULL;
            return air_err(AIR_ERR_UNSUPPORTED, "draft model %s uses latent attention, which "
                           "speculative decoding does not support yet", p->draft_model);
        }
        so->draft = (*draft)->engine;
        uint64_t tb = air_store_total_bytes(air_engine_store(e));
        so->draft_ratio = tb ? (double)air_store_total_bytes(air_engine_store(so->draft)) / tb : 0;
        int nd = air_engine_hparams(so->draft)->n_vocab;
        if (nd < so->n_vocab)
            so->n_vocab = nd;
    }
    *use = so->lookup || so->draft;
    return AIR_OK;
}

/* Adds text to the system message (one is inserted first if there is none). */
static void add_to_system(cJSON *arr, const char *text) {
    cJSON *first = cJSON_GetArrayItem(arr, 0);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(first, "role");
    cJSON *content = cJSON_GetObjectItemCaseSensitive(first, "content");
    if (cJSON_IsString(role) && strcmp(role->valuestring, "system") == 0 &&
        cJSON_IsString(content)) {
        air_strbuf sb = {0};
        air_sb_puts(&sb, content->valuestring);
        air_sb_puts(&sb, "\n\n");
        air_sb_puts(&sb, text);
        if (sb.data)
            cJSON_SetValuestring(content, sb.data);
        air_sb_free(&sb);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "role", "system");
    cJSON_AddStringToObject(o, "content", text);
    cJSON_InsertItemInArray(arr, 0, o);
}

/* Renders the conversation (plus the JSON instruction, and the tools when
 * the template does not show them itself) into a prompt; a forced call's
 * opener goes after it. */
static air_status render(air_model *m, const air_message *msgs, int n, const air_gen_params *p,
                         const air_tool_req *tr, const cJSON *vars, char **out) {
    cJSON *arr = NULL;
    air_status st = air_messages_json(msgs, n, &arr);
    if (st)
        return st;
    int use_tools = tr->tools && tr->choice != AIR_CHOICE_NONE;
    if (use_tools && !tr->template_tools) {
        char *tp = air_tc_tools_prompt(tr->tools);
        if (tp)
            add_to_system(arr, tp);
        free(tp);
    }
    if (p->json_schema) {
        cJSON *sj = cJSON_Parse(p->json_schema);
        char *compact = sj ? cJSON_PrintUnformatted(sj) : NULL;
        air_strbuf sb = {0};
        air_sb_puts(&sb, SCHEMA_INSTRUCTION);
        air_sb_puts(&sb, compact ? compact : p->json_schema);
        if (sb.data)
            add_to_system(arr, sb.data);
        air_sb_free(&sb);
        free(compact);
        cJSON_Delete(sj);
    } else if (p->json) {
        add_to_system(arr, JSON_INSTRUCTION);
    }
    st = air_render_template(m, arr, use_tools && tr->template_tools ? tr->tools : NULL, 1, vars,
                             out);
    cJSON_Delete(arr);
    if (!st && tr->forced_schema) {
        air_strbuf sb = {0};
        air_sb_puts(&sb, *out);
        air_sb_puts(&sb, air_tc_call_opener(tr->fmt));
        free(*out);
        *out = air_sb_take(&sb);
        if (!*out)
            st = air_err(AIR_ERR_NOMEM, "out of memory");
    }
    return st;
}


/* A forced call's text (one JSON object) as the result's tool call. */
static air_status forced_result(air_response *c, const air_tool_req *tr, uint64_t seed,
                                air_result *out) {
    cJSON *obj = cJSON_Parse(out->text);
    char id[10];
    air_tc_call_id(seed, 0, id);
    cJSON *call = obj ? air_tc_make_call(obj, air_tc_args_key(tr->fmt), id) : NULL;
    cJSON_Delete(obj);
    if (!call) /* cut short (max_tokens below the call's length): the text stays content */
        return AIR_OK;
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
    tc_on_call(c, 0, id, cJSON_GetObjectItemCaseSensitive(fn, "name")->valuestring,
               cJSON_GetObjectItemCaseSensitive(fn, "arguments")->valuestring);
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, call);
    out->tool_calls = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    air_strbuf raw = {0};
    air_sb_puts(&raw, air_tc_call_opener(tr->fmt));
    air_sb_puts(&raw, out->text);
    if (tr->fmt == AIR_TC_HERMES)
        air_sb_puts(&raw, "\n</tool_call>");
    else if (tr->fmt == AIR_TC_MISTRAL)
        air_sb_puts(&raw, "]");
    out->raw_text = air_sb_take(&raw);
    out->text[0] = 0;
    out->finish_reason = "tool_calls";
    return out->tool_calls && out->raw_text ? AIR_OK : air_err(AIR_ERR_NOMEM, "out of memory");
}

/* The ranges documented on air_gen_params. */
static air_status check_params(const air_gen_params *p) {
    if (p->max_tokens < 0)
        return air_err(AIR_ERR_INVALID_ARG, "max_tokens is %d; it must be 0 or more",
                       p->max_tokens);
    if (p->json && p->max_tokens < 2)
        return air_err(AIR_ERR_INVALID_ARG, "max_tokens is %d with format json; it must be 2 or "
                       "more (the shortest JSON object, {}, takes two tokens)", p->max_tokens);
    if (!isfinite(p->temperature) || p->temperature < 0)
        return air_err(AIR_ERR_INVALID_ARG, "temperature is %g; it must be a finite number >= 0 "
                       "(0 = greedy)", (double)p->temperature);
    if (!(p->top_p >= 0 && p->top_p <= 1))
        return air_err(AIR_ERR_INVALID_ARG, "top_p is %g; it must be from 0 to 1 (1 = off)",
                       (double)p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return air_err(AIR_ERR_INVALID_ARG, "min_p is %g; it must be from 0 to 1 (0 = off)",
                       (double)p->min_p);
    if (p->top_k < 0)
        return air_err(AIR_ERR_INVALID_ARG, "top_k is %d; it must be 0 or more (0 = off)",
                       p->top_k);
    if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0)
        return air_err(AIR_ERR_INVALID_ARG, "repeat_penalty is %g; it must be a finite number "
                       "> 0 (1 = off)", (double)p->repeat_penalty);
    if (p->n_stop < 0 || (p->n_stop > 0 && !p->stop))
        return air_err(AIR_ERR_INVALID_ARG, "n_stop is %d with stop %s; give n_stop >= 0 stop "
                       "strings", p->n_stop, p->stop ? "set" : "NULL");
    for (int i = 0; i < p->n_stop; i++)
        if (!p->stop[i])
            return air_err(AIR_ERR_INVALID_ARG, "stop string %d is NULL", i);
    return AIR_OK;
}

air_status air_response_init(air_response *c, air_model *m, const air_gen_params *p,
                             air_json_grammar *grammar) {
    memset(c, 0, sizeof *c);
    c->m = m;
    c->p = *p;
    for (int i = 0; i < p->n_stop; i++)
        if (p->stop[i] && strlen(p->stop[i]) > c->max_stop)
            c->max_stop = strlen(p->stop[i]);
    c->n_vocab = air_engine_hparams(m->engine)->n_vocab;
    c->detok = air_detok_new(m->tok, 1);
    if (!c->detok)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    if (grammar) {
        c->grammar = grammar;
        air_json_grammar_reset(grammar);
        air_json_grammar_set_budget(grammar, p->max_tokens);
        c->gmask = malloc((size_t)air_json_grammar_n_vocab(grammar));
        if (!c->gmask)
            return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    return AIR_OK;
}

void air_response_options(air_response *c, air_gen_options *go) {
    const air_gen_params *p = &c->p;
    memset(go, 0, sizeof *go);
    go->max_tokens = p->max_tokens;
    go->sampler.temperature = p->temperature;
    go->sampler.top_k = p->top_k;
    go->sampler.top_p = p->top_p;
    go->sampler.min_p = p->min_p;
    go->sampler.repeat_penalty = p->repeat_penalty;
    go->sampler.seed = p->seed;
    go->eos_ids = c->m->eos;
    go->n_eos = c->m->n_eos;
    go->on_token = on_token;
    go->should_abort = should_abort;
    go->constrain = c->grammar ? constrain : NULL;
    go->user = c;
}

void air_response_finish(air_response *c, int natural_end, air_result *out) {
    const char *tail = NULL;
    if (!c->stopped && air_detok_flush(c->detok, &tail) == AIR_OK && tail && *tail)
        air_sb_puts(&c->text, tail);
    filter(c, 1);
    out->text = air_sb_take(&c->text);
    if (!out->text)
        out->text = strdup("");
    out->finish_reason = c->stopped || natural_end ? "stop"
                         : c->cb_stopped              ? "callback"
                                                      : "length";
}

void air_response_free(air_response *c) {
    air_tc_parser_free(c->tc);
    air_sb_free(&c->text);
    free(c->gmask);
    air_detok_free(c->detok);
    memset(c, 0, sizeof *c);
}

void air_result_stats(air_result *out, int n_prompt, int n_gen, double prefill_s, double decode_s) {
    out->prompt_tokens = n_prompt;
    out->completion_tokens = n_gen;
    out->prefill_seconds = prefill_s;
    out->decode_seconds = decode_s;
    out->prefill_tokens_per_s = prefill_s > 0 ? n_prompt / prefill_s : 0;
    out->decode_tokens_per_s = decode_s > 0 && n_gen > 1 ? (n_gen - 1) / decode_s : 0;
}

air_status air_response_chat(air_response *c, const air_chat_extras *cx, int room) {
    if (c->grammar) {
        /* a schema narrows the JSON; the tokens left: max_tokens, or fewer when
         * the context fills up first (generation stops once max_seq is used) */
        air_json_grammar_set_schema(c->grammar, cx ? cx->schema : NULL);
        air_json_grammar_reset(c->grammar);
        air_json_grammar_set_budget(c->grammar, room < c->p.max_tokens ? room : c->p.max_tokens);
    }
    if (!cx)
        return AIR_OK;
    const air_tool_req *tr = &cx->tr;
    c->quiet = tr->forced_schema != NULL;
    if (!cx->parse_calls)
        return AIR_OK;
    /* Llama's <|python_tag|> and Mistral's [TOOL_CALLS] are special tokens
     * the parser must see */
    if (tr->fmt == AIR_TC_LLAMA3 || tr->fmt == AIR_TC_MISTRAL) {
        air_detok_free(c->detok);
        c->detok = air_detok_new(c->m->tok, 0);
        if (!c->detok)
            return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    air_tc_sink sink = {tc_on_content, tc_on_call, c};
    return air_tc_parser_new(tr->fmt, cx->id_seed, &sink, &c->tc);
}

air_status air_response_end(air_response *c, int natural_end, const air_chat_extras *cx,
                            air_result *out) {
    if (!c->tc) {
        air_response_finish(c, natural_end, out);
        if (cx && cx->tr.forced_schema && out->text)
            return forced_result(c, &cx->tr, cx->id_seed, out);
        return out->text ? AIR_OK : air_err(AIR_ERR_NOMEM, "out of memory");
    }
    const char *tail = NULL;
    if (!c->stopped && air_detok_flush(c->detok, &tail) == AIR_OK && tail && *tail)
        air_sb_puts(&c->text, tail);
    filter(c, 1);
    out->finish_reason = c->stopped || natural_end ? "stop"
                         : c->cb_stopped           ? "callback"
                                                   : "length";
    air_status st = air_tc_finish(c->tc);
    const cJSON *calls = air_tc_calls(c->tc);
    out->raw_text = air_sb_take(&c->text);
    out->text = strdup(air_tc_content(c->tc));
    if (cJSON_GetArraySize(calls) > 0) {
        out->tool_calls = cJSON_PrintUnformatted(calls);
        if (strcmp(out->finish_reason, "callback") != 0)
            out->finish_reason = "tool_calls";
    }
    if (!st && (!out->raw_text || !out->text))
        st = air_err(AIR_ERR_NOMEM, "out of memory");
    return st;
}

/* Generates after the prompt ids: the token loop with streaming, stop strings
 * and the JSON grammar. *gen_ids (NULL to skip) gets the generated ids, with
 * the EOS id that ended generation. */
static air_status run_ids(air_model *m, const int32_t *ids, size_t n_ids, const air_gen_params *params,
                          const air_chat_extras *cx, air_result *out, int32_t **gen_ids, size_t *n_gen) {
    air_gen_params p = params ? *params : air_gen_default_params();
    air_status cst = check_params(&p);
    if (cst)
        return cst;
    int32_t *gen = NULL;
    int n_out = 0;
    air_response c;
    memset(&c, 0, sizeof c);
    air_gen_options go;
    air_gen_stats gs = {0};
    air_kv kv;
    air_model *draft = NULL;
    air_spec_options so;
    int use_spec = 0;
    air_status st = air_spec_setup(m, &p, &draft, &so, &use_spec);
    if (st)
        return st;
    pthread_mutex_lock(&m->mu);
    /* the draft's engine is used from this thread only while its model is
     * not generating elsewhere; when it is busy, this call runs without it */
    int draft_locked = draft && draft != m && pthread_mutex_trylock(&draft->mu) == 0;
    if (draft && draft != m && !draft_locked)
        so.draft = NULL;
    if (p.json && !m->grammar)
        st = air_json_grammar_new(m->tok, m->eos, m->n_eos, &m->grammar);
    if (!st)
        st = air_response_init(&c, m, &p, p.json ? m->grammar : NULL);
    if (!st)
        st = air_response_chat(&c, cx, m->max_seq - (int)n_ids + 1);
    air_response_options(&c, &go);
    if (use_spec && (so.draft || so.lookup))
        go.spec = &so;
    if (!st)
        st = air_kv_init(&kv, air_engine_hparams(m->engine), m->max_seq);
    if (!st) {
        st = air_generate(m->engine, &kv, ids, (int)n_ids, &go, &gen, &n_out, &gs);
        air_kv_free(&kv);
    }
    if (c.grammar)
        air_json_grammar_set_schema(c.grammar, NULL); /* the caller frees the schema */
    if (draft_locked)
        pthread_mutex_unlock(&draft->mu);
    pthread_mutex_unlock(&m->mu);
    air_model_release(draft);
    if (!st && c.err)
        st = c.err;
    if (!st) {
        st = air_response_end(&c, gs.stopped_by_eos || gs.stopped_by_constraint, cx, out);
        air_result_stats(out, gs.n_prompt, gs.n_generated, gs.prefill_seconds, gs.decode_seconds);
        out->sweeps = gs.sweeps;
        /* the first token comes from the prefill; an EOS ends a pass's tokens */
        out->tokens_per_sweep =
            gs.sweeps > 0 ? (double)(gs.n_generated - 1 + gs.stopped_by_eos) / gs.sweeps : 0;
        out->drafted = gs.drafted;
        out->accepted = gs.accepted;
        out->acceptance_rate = gs.drafted > 0 ? (double)gs.accepted / gs.drafted : 0;
    }
    if (!st && gen_ids) {
        /* gen has room for max_tokens + 1 ids, and an EOS ends it before max_tokens */
        if (gs.stopped_by_eos)
            gen[n_out++] = gs.eos_id;
        *gen_ids = gen;
        *n_gen = (size_t)n_out;
        gen = NULL;
    }
    if (st)
        air_result_free(out);
    air_response_free(&c);
    free(gen);
    return st;
}

air_status air_chat_vars(air_model *m, const air_message *msgs, int n, const cJSON *vars,
                         const air_gen_params *params, air_result *out, int32_t **gen_ids,
                         size_t *n_gen) {
    memset(out, 0, sizeof *out);
    if (!m || (!msgs && n > 0) || n < 0)
        return air_err(AIR_ERR_INVALID_ARG, "air_chat: no model or messages");
    if (params && params->raw)
        return air_err(AIR_ERR_INVALID_ARG, "air_chat: raw completion takes one text, not a "
                       "conversation; use air_complete()");
    if (!m->tok)
        return air_err(AIR_ERR_UNSUPPORTED, "model %s has no tokenizer (tokenizer.json): text "
                       "generation needs one", m->name);
    air_gen_params p = params ? *params : air_gen_default_params();
    int32_t *ids = NULL;
    size_t n_ids = 0;
    air_chat_extras cx;
    air_status st = air_chat_prepare(m, msgs, n, vars, &p, &cx, &ids, &n_ids);
    if (!st)
        st = run_ids(m, ids, n_ids, &p, &cx, out, gen_ids, n_gen);
    free(ids);
    air_chat_extras_free(&cx);
    return st;
}

air_status air_chat_prepare(air_model *m, const air_message *msgs, int n, const cJSON *vars,
                            air_gen_params *p, air_chat_extras *cx, int32_t **ids,
                            size_t *n_ids) {
    memset(cx, 0, sizeof *cx);
    *ids = NULL;
    *n_ids = 0;
    if (!m->tok)
        return air_err(AIR_ERR_UNSUPPORTED, "model %s has no tokenizer (tokenizer.json): text "
                       "generation needs one", m->name);
    char *prompt = NULL;
    air_tool_req *tr = &cx->tr;
    air_status st = air_tool_req_init(m, p, tr);
    if (!st && p->json_schema)
        st = air_schema_compile_text(p->json_schema, &cx->schema);
    else if (!st && tr->forced_schema)
        st = air_schema_compile(tr->forced_schema, &cx->schema);
    int use_tools = tr->tools && tr->choice != AIR_CHOICE_NONE;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    cx->parse_calls = use_tools && !tr->forced_schema && !p->json && !p->json_schema;
    cx->id_seed = (uint64_t)now.tv_sec * 1000000007ull ^ (uint64_t)now.tv_nsec ^
                  (uint64_t)(uintptr_t)cx ^ p->seed;
    if (!st)
        st = render(m, msgs, n, p, tr, vars, &prompt);
    if (cx->schema)
        p->json = 1; /* constrained decoding (the instruction was the schema's, or none for a
                        forced call, which follows the call opener) */
    /* a template writes its own BOS; the fallback lets the tokenizer add it */
    if (!st)
        st = air_tokenizer_encode(m->tok, prompt, strlen(prompt), m->template_src == NULL, ids,
                                  n_ids);
    free(prompt);
    if (st)
        air_chat_extras_free(cx);
    return st;
}

void air_chat_extras_free(air_chat_extras *cx) {
    air_schema_free(cx->schema);
    air_tool_req_free(&cx->tr);
    memset(cx, 0, sizeof *cx);
}

air_status air_chat(air_model *m, const air_message *msgs, int n, const air_gen_params *params,
                    air_result *out) {
    return air_chat_vars(m, msgs, n, NULL, params, out, NULL, NULL);
}

air_status air_generate_ids(air_model *m, const int32_t *ids, size_t n_ids,
                            const air_gen_params *params, air_result *out, int32_t **gen_ids,
                            size_t *n_gen) {
    if (out)
        memset(out, 0, sizeof *out);
    if (gen_ids)
        *gen_ids = NULL;
    if (n_gen)
        *n_gen = 0;
    if (!m || !out || (!ids && n_ids > 0) || (gen_ids && !n_gen))
        return air_err(AIR_ERR_INVALID_ARG, "air_generate_ids: no model, ids or output");
    if (!m->tok)
        return air_err(AIR_ERR_UNSUPPORTED, "model %s has no tokenizer (tokenizer.json): text "
                       "generation needs one", m->name);
    if (n_ids == 0)
        return air_err(AIR_ERR_INVALID_ARG, "air_generate_ids: the prompt is empty (no token ids)");
    if (n_ids > (size_t)m->max_seq)
        return air_err(AIR_ERR_LIMIT, "air_generate_ids: the prompt has %zu tokens, more than the "
                       "context length %d (max_seq_len) allows", n_ids, m->max_seq);
    int32_t n_vocab = air_engine_hparams(m->engine)->n_vocab;
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab)
            return air_err(AIR_ERR_INVALID_ARG, "air_generate_ids: id %d at position %zu is outside "
                           "the model's vocabulary (0..%d)", ids[i], i, n_vocab - 1);
    return run_ids(m, ids, n_ids, params, NULL, out, gen_ids, n_gen);
}

air_status air_complete(air_model *m, const char *text, const air_gen_params *params,
                        air_result *out) {
    memset(out, 0, sizeof *out);
    if (!m || !text)
        return air_err(AIR_ERR_INVALID_ARG, "air_complete: no model or text");
    if (!m->tok)
        return air_err(AIR_ERR_UNSUPPORTED, "model %s has no tokenizer (tokenizer.json): text "
                       "generation needs one", m->name);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    /* no template: special tokens (BOS) as the tokenizer's settings say */
    air_status st = air_tokenizer_encode(m->tok, text, strlen(text), 1, &ids, &n_ids);
    if (!st && n_ids == 0)
        st = air_err(AIR_ERR_INVALID_ARG, "air_complete: the text encodes to no tokens (an "
                     "empty text, and the tokenizer adds no BOS)");
    if (!st)
        st = run_ids(m, ids, n_ids, params, NULL, out, NULL, NULL);
    free(ids);
    return st;
}

air_status air_generate_text(air_model *m, const char *system, const char *prompt,
                             const air_gen_params *params, air_result *out) {
    if (params && params->raw) {
        memset(out, 0, sizeof *out);
        if (system && *system)
            return air_err(AIR_ERR_INVALID_ARG, "raw completion has no system prompt (there is "
                           "no chat template to put it in); put it in the text");
        return air_complete(m, prompt ? prompt : "", params, out);
    }
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
    free(r->tool_calls);
    free(r->raw_text);
    r->text = NULL;
    r->tool_calls = NULL;
    r->raw_text = NULL;
}
