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
    air_tc_parser *tc; /* tools with tool_choice auto: splits calls from content */
    int quiet;         /* a forced call: nothing is streamed as text */
} run_ctx;

static int tc_on_content(void *user, const char *piece) {
    run_ctx *c = user;
    if (c->p->on_text && !c->cb_stopped && c->p->on_text(c->p->user, piece))
        c->cb_stopped = 1;
    return 0;
}

static int tc_on_call(void *user, int index, const char *id, const char *name, const char *args) {
    run_ctx *c = user;
    if (c->p->on_tool_call && !c->cb_stopped &&
        c->p->on_tool_call(c->p->user, index, id, name, args))
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
static void emit(run_ctx *c, size_t upto) {
    if (upto <= c->emitted)
        return;
    if (c->tc) {
        if (air_tc_push(c->tc, c->text.data + c->emitted, upto - c->emitted))
            c->err = AIR_ERR_NOMEM;
    } else if (c->p->on_text && !c->cb_stopped && !c->quiet) {
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
                         const air_tool_req *tr, char **out) {
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
    const char *bos = m->tok ? air_tokenizer_bos_token(m->tok) : NULL;
    const char *eos = m->tok ? air_tokenizer_eos_token(m->tok) : NULL;
    st = air_chat_template_render(m->tmpl, arr, use_tools && tr->template_tools ? tr->tools : NULL,
                                  1, bos ? bos : "", eos ? eos : "", NULL, out);
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
static air_status forced_result(run_ctx *c, const air_tool_req *tr, uint64_t seed,
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
    air_tool_req tr;
    air_schema *schema = NULL;
    air_status st = air_tool_req_init(m, &p, &tr);
    if (!st && p.json_schema)
        st = air_schema_compile_text(p.json_schema, &schema);
    else if (!st && tr.forced_schema)
        st = air_schema_compile(tr.forced_schema, &schema);
    int use_tools = tr.tools && tr.choice != AIR_CHOICE_NONE;
    c.quiet = tr.forced_schema != NULL;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t id_seed = (uint64_t)now.tv_sec * 1000000007ull ^ (uint64_t)now.tv_nsec ^
                       (uint64_t)(uintptr_t)&c ^ p.seed;
    if (!st && use_tools && !tr.forced_schema && !p.json && !p.json_schema) {
        air_tc_sink sink = {tc_on_content, tc_on_call, &c};
        st = air_tc_parser_new(tr.fmt, id_seed, &sink, &c.tc);
    }
    if (!st)
        st = render(m, msgs, n, &p, &tr, &prompt);
    if (schema)
        p.json = 1; /* constrained decoding (the instruction was the schema's, or none for a
                       forced call, which follows the call opener) */
    /* a template writes its own BOS; the fallback lets the tokenizer add it */
    if (!st)
        st = air_tokenizer_encode(m->tok, prompt, strlen(prompt), m->template_src == NULL, &ids,
                                  &n_ids);
    free(prompt);
    if (st) {
        air_tc_parser_free(c.tc);
        air_schema_free(schema);
        air_tool_req_free(&tr);
        return st;
    }
    /* Llama's <|python_tag|> and Mistral's [TOOL_CALLS] are special tokens
     * the parser must see */
    c.detok = air_detok_new(m->tok, !(c.tc && (tr.fmt == AIR_TC_LLAMA3 || tr.fmt == AIR_TC_MISTRAL)));
    if (!c.detok) {
        free(ids);
        air_tc_parser_free(c.tc);
        air_schema_free(schema);
        air_tool_req_free(&tr);
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
            air_json_grammar_set_schema(m->grammar, schema);
            /* the tokens left: max_tokens, or fewer when the context fills up
             * first (generation stops once max_seq positions are used) */
            int room = m->max_seq - (int)n_ids + 1;
            air_json_grammar_set_budget(m->grammar, room < p.max_tokens ? room : p.max_tokens);
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
    if (p.json && m->grammar)
        air_json_grammar_set_schema(m->grammar, NULL); /* the schema is freed below */
    pthread_mutex_unlock(&m->mu);
    if (!st && c.err)
        st = c.err;
    if (!st) {
        const char *tail = NULL;
        if (!c.stopped && air_detok_flush(c.detok, &tail) == AIR_OK && tail && *tail)
            air_sb_puts(&c.text, tail);
        filter(&c, 1);
        out->finish_reason = c.stopped || gs.stopped_by_eos ? "stop"
                             : c.cb_stopped                 ? "callback"
                                                            : "length";
        if (c.tc) {
            st = air_tc_finish(c.tc);
            const cJSON *calls = air_tc_calls(c.tc);
            out->raw_text = air_sb_take(&c.text);
            out->text = strdup(air_tc_content(c.tc));
            if (cJSON_GetArraySize(calls) > 0) {
                out->tool_calls = cJSON_PrintUnformatted(calls);
                if (strcmp(out->finish_reason, "callback") != 0)
                    out->finish_reason = "tool_calls";
            }
            if (!st && (!out->raw_text || !out->text))
                st = air_err(AIR_ERR_NOMEM, "out of memory");
        } else {
            out->text = air_sb_take(&c.text);
            if (!out->text)
                out->text = strdup("");
            if (tr.forced_schema && out->text)
                st = forced_result(&c, &tr, id_seed, out);
        }
        out->prompt_tokens = gs.n_prompt;
        out->completion_tokens = gs.n_generated;
        out->prefill_seconds = gs.prefill_seconds;
        out->decode_seconds = gs.decode_seconds;
        out->prefill_tokens_per_s = gs.prefill_seconds > 0 ? gs.n_prompt / gs.prefill_seconds : 0;
        out->decode_tokens_per_s =
            gs.decode_seconds > 0 && gs.n_generated > 1 ? (gs.n_generated - 1) / gs.decode_seconds : 0;
        if (st)
            air_result_free(out);
    }
    air_sb_free(&c.text);
    free(c.gmask);
    air_detok_free(c.detok);
    air_tc_parser_free(c.tc);
    air_schema_free(schema);
    air_tool_req_free(&tr);
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
    free(r->tool_calls);
    free(r->raw_text);
    r->text = NULL;
    r->tool_calls = NULL;
    r->raw_text = NULL;
}
