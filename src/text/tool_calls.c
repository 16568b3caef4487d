/*
 * tool_calls.c - tool calls in generated text (see tool_calls.h).
 *
 * Data flow: pushed text -> pending buffer -> scan for the family's marker
 * (<tool_call>, <|python_tag|>, [TOOL_CALLS]); text before it is content
 * (minus a tail that could be the start of a marker, held back); a Hermes
 * call ends at </tool_call>; Llama and Mistral calls run to the end of the
 * text, as does a Llama response that begins with '{'. Each call body is
 * parsed with cJSON into an OpenAI call; a body that does not parse goes
 * back into the content as written.
 */
#include "text/tool_calls.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/strbuf.h"

#define HERMES_OPEN "<tool_call>"
#define HERMES_CLOSE "</tool_call>"
#define LLAMA_TAG "<|python_tag|>"
#define MISTRAL_TAG "[TOOL_CALLS]"
#define MISTRAL_ARGS "[ARGS]"

enum { M_SCAN, M_IN_CALL, M_TAIL, M_HOLD_ALL };

struct air_tc_parser {
    air_tc_format fmt;
    uint64_t seed;
    air_tc_sink sink;
    air_strbuf buf;     /* pending text */
    air_strbuf content; /* content emitted so far */
    cJSON *calls;
    int mode;
    int started; /* LLAMA3: a non-space byte was seen */
    int stopped;
    air_status err;
};

/* ------------------------------------------------------------------------- */
/* Formats                                                                    */
/* ------------------------------------------------------------------------- */

int air_tc_template_has_tools(const char *tmpl) {
    return tmpl && strstr(tmpl, "tools") != NULL;
}

air_tc_format air_tc_format_from_template(const char *tmpl) {
    if (!tmpl || !air_tc_template_has_tools(tmpl))
        return AIR_TC_HERMES;
    if (strstr(tmpl, MISTRAL_TAG))
        return AIR_TC_MISTRAL;
    if (strstr(tmpl, "<tool_call>"))
        return AIR_TC_HERMES;
    if (strstr(tmpl, LLAMA_TAG) || (strstr(tmpl, "<|start_header_id|>") && strstr(tmpl, "parameters")))
        return AIR_TC_LLAMA3;
    return AIR_TC_HERMES;
}

static const char *const NAMES[] = {"none", "hermes", "llama3", "mistral"};

const char *air_tc_format_name(air_tc_format f) {
    return (unsigned)f < 4 ? NAMES[f] : "none";
}

air_tc_format air_tc_format_parse(const char *name) {
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, NAMES[i]) == 0)
            return (air_tc_format)i;
    return AIR_TC_NONE;
}

const char *air_tc_call_opener(air_tc_format f) {
    return f == AIR_TC_HERMES ? HERMES_OPEN "\n" : f == AIR_TC_MISTRAL ? MISTRAL_TAG "[" : "";
}

const char *air_tc_args_key(air_tc_format f) {
    return f == AIR_TC_LLAMA3 ? "parameters" : "arguments";
}

char *air_tc_tools_prompt(const cJSON *tools) {
    air_strbuf sb = {0};
    air_sb_puts(&sb, "You may call functions to answer. The functions you can call, one JSON "
                     "object each:\n<tools>\n");
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        char *s = cJSON_PrintUnformatted(t);
        if (s) {
            air_sb_puts(&sb, s);
            air_sb_putc(&sb, '\n');
        }
        free(s);
    }
    air_sb_puts(&sb, "</tools>\nTo call a function, write its name and its arguments as one JSON "
                     "object between <tool_call> and </tool_call>:\n<tool_call>\n{\"name\": "
                     "\"function name\", \"arguments\": {\"argument\": \"value\"}}\n</tool_call>");
    return air_sb_take(&sb);
}

void air_tc_call_id(uint64_t seed, int index, char out[10]) {
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (uint64_t)(index + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    for (int i = 0; i < 9; i++) {
        out[i] = al[z % 62];
        z /= 62;
        if (i == 4) /* 62^9 > 2^53: mix again halfway */
            z = (z + seed) * 0x94d049bb133111ebull ^ (z >> 29);
    }
    out[9] = 0;
}

cJSON *air_tc_make_call(const cJSON *obj, const char *args_key, const char *id) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(obj, "name");
    if (!cJSON_IsObject(obj) || !cJSON_IsString(name) || !name->valuestring[0])
        return NULL;
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(obj, args_key);
    if (!args) /* the other usual key */
        args = cJSON_GetObjectItemCaseSensitive(obj, strcmp(args_key, "arguments") ? "arguments"
                                                                                   : "parameters");
    char *a = NULL;
    if (!args || cJSON_IsNull(args))
        a = strdup("{}");
    else if (cJSON_IsString(args)) { /* already JSON text: it must hold an object */
        cJSON *inner = cJSON_Parse(args->valuestring);
        int obj_ok = cJSON_IsObject(inner);
        cJSON_Delete(inner);
        if (!obj_ok)
            return NULL;
        a = strdup(args->valuestring);
    }
    else if (cJSON_IsObject(args))
        a = cJSON_PrintUnformatted(args);
    else
        return NULL; /* arguments must be an object */
    cJSON *call = cJSON_CreateObject();
    cJSON *fn = cJSON_CreateObject();
    if (!a || !call || !fn) {
        free(a);
        cJSON_Delete(call);
        cJSON_Delete(fn);
        return NULL;
    }
    cJSON_AddStringToObject(call, "id", id);
    cJSON_AddStringToObject(call, "type", "function");
    cJSON_AddStringToObject(fn, "name", name->valuestring);
    cJSON_AddStringToObject(fn, "arguments", a);
    cJSON_AddItemToObject(call, "function", fn);
    free(a);
    return call;
}

/* ------------------------------------------------------------------------- */
/* Parsing call bodies                                                        */
/* ------------------------------------------------------------------------- */

static const char *skip_ws(const char *s, const char *end) {
    while (s < end && isspace((unsigned char)*s))
        s++;
    return s;
}

/* Adds the call to `out` (an array) with the next id. 0 if obj is not a call. */
static int add_call(air_tc_parser *p, cJSON *out, const cJSON *obj, const char *args_key) {
    char id[10];
    const cJSON *given = cJSON_GetObjectItemCaseSensitive(obj, "id");
    air_tc_call_id(p->seed, cJSON_GetArraySize(p->calls) + cJSON_GetArraySize(out), id);
    cJSON *call = air_tc_make_call(obj, args_key,
                                   cJSON_IsString(given) && given->valuestring[0] ? given->valuestring
                                                                                  : id);
    if (!call)
        return 0;
    cJSON_AddItemToArray(out, call);
    return 1;
}

/* JSON call objects, separated by ';' ',' or spaces; or one array of them.
 * Adds them to `out`; 0 (and nothing added that counts) if any part is not
 * a call. */
static int json_calls(air_tc_parser *p, const char *s, const char *end, const char *args_key,
                      cJSON *out) {
    s = skip_ws(s, end);
    if (s == end)
        return 0;
    while (s < end) {
        const char *stop = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(s, (size_t)(end - s), &stop, 0);
        if (!v)
            return 0;
        int ok = 1;
        if (cJSON_IsArray(v)) {
            const cJSON *e;
            ok = cJSON_GetArraySize(v) > 0;
            cJSON_ArrayForEach(e, v) ok = ok && add_call(p, out, e, args_key);
        } else {
            ok = add_call(p, out, v, args_key);
        }
        cJSON_Delete(v);
        if (!ok)
            return 0;
        s = skip_ws(stop, end);
        while (s < end && (*s == ';' || *s == ','))
            s = skip_ws(s + 1, end);
    }
    return 1;
}

/* name.call(k="v", n=1) -> {"name": name, "arguments": {"k": "v", "n": 1}} */
static int builtin_call(air_tc_parser *p, const char *s, const char *end, cJSON *out) {
    const char *dot = NULL;
    const char *q = s;
    while (q < end && (isalnum((unsigned char)*q) || *q == '_'))
        q++;
    if (q == s || end - q < 6 || memcmp(q, ".call(", 6) != 0)
        return 0;
    dot = q;
    q += 6;
    cJSON *obj = cJSON_CreateObject();
    cJSON *args = cJSON_CreateObject();
    char *name = strndup(s, (size_t)(dot - s));
    int ok = obj && args && name;
    while (ok) {
        q = skip_ws(q, end);
        if (q < end && *q == ')')
            break;
        const char *k0 = q;
        while (q < end && (isalnum((unsigned char)*q) || *q == '_'))
            q++;
        char *key = strndup(k0, (size_t)(q - k0));
        q = skip_ws(q, end);
        if (!key || q == k0 || q >= end || *q != '=') {
            free(key);
            ok = 0;
            break;
        }
        q = skip_ws(q + 1, end);
        const char *stop = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(q, (size_t)(end - q), &stop, 0);
        if (!v) {
            free(key);
            ok = 0;
            break;
        }
        cJSON_AddItemToObject(args, key, v);
        free(key);
        q = skip_ws(stop, end);
        if (q < end && *q == ',')
            q++;
        else if (q >= end || *q != ')')
            ok = 0;
    }
    ok = ok && q < end && *q == ')' && skip_ws(q + 1, end) == end;
    if (ok) {
        cJSON_AddStringToObject(obj, "name", name);
        cJSON_AddItemToObject(obj, "arguments", args);
        args = NULL;
        ok = add_call(p, out, obj, "arguments");
    }
    cJSON_Delete(obj);
    cJSON_Delete(args);
    free(name);
    return ok;
}

/* After <|python_tag|>: JSON calls, a built-in call, or code. */
static int llama_tail(air_tc_parser *p, const char *s, const char *end, cJSON *out) {
    s = skip_ws(s, end);
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    if (s == end)
        return 0;
    if (*s == '{')
        return json_calls(p, s, end, "parameters", out);
    if (builtin_call(p, s, end, out))
        return 1;
    cJSON *obj = cJSON_CreateObject();
    cJSON *args = cJSON_AddObjectToObject(obj, "arguments");
    char *code = strndup(s, (size_t)(end - s));
    int ok = obj && args && code;
    if (ok) {
        cJSON_AddStringToObject(obj, "name", "python");
        cJSON_AddStringToObject(args, "code", code);
        ok = add_call(p, out, obj, "arguments");
    }
    free(code);
    cJSON_Delete(obj);
    return ok;
}

/* After [TOOL_CALLS]: a JSON array of calls, or name[ARGS]{...} repeated
 * (each after its own [TOOL_CALLS]). */
static int mistral_tail(air_tc_parser *p, const char *s, const char *end, cJSON *out) {
    s = skip_ws(s, end);
    if (s < end && (*s == '[' || *s == '{'))
        return json_calls(p, s, end, "arguments", out);
    while (s < end) {
        const char *a = strstr(s, MISTRAL_ARGS);
        if (!a || a >= end || a == s)
            return 0;
        const char *stop = NULL;
        const char *j = a + strlen(MISTRAL_ARGS);
        cJSON *args = cJSON_ParseWithLengthOpts(j, (size_t)(end - j), &stop, 0);
        if (!args)
            return 0;
        cJSON *obj = cJSON_CreateObject();
        char *name = strndup(s, (size_t)(a - s));
        int ok = obj && name;
        if (ok) {
            cJSON_AddStringToObject(obj, "name", name);
            cJSON_AddItemToObject(obj, "arguments", args);
            args = NULL;
            ok = add_call(p, out, obj, "arguments");
        }
        free(name);
        cJSON_Delete(args);
        cJSON_Delete(obj);
        if (!ok)
            return 0;
        s = skip_ws(stop, end);
        if ((size_t)(end - s) >= strlen(MISTRAL_TAG) && memcmp(s, MISTRAL_TAG, strlen(MISTRAL_TAG)) == 0)
            s += strlen(MISTRAL_TAG);
        else if (s != end)
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------- */
/* The parser                                                                 */
/* ------------------------------------------------------------------------- */

air_status air_tc_parser_new(air_tc_format f, uint64_t id_seed, const air_tc_sink *sink,
                             air_tc_parser **out) {
    *out = NULL;
    air_tc_parser *p = calloc(1, sizeof *p);
    if (!p || !(p->calls = cJSON_CreateArray())) {
        free(p);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    p->fmt = f;
    p->seed = id_seed;
    if (sink)
        p->sink = *sink;
    *out = p;
    return AIR_OK;
}

static void emit_content(air_tc_parser *p, const char *s, size_t n) {
    if (!n)
        return;
    size_t at = p->content.len;
    if (air_sb_append(&p->content, s, n)) {
        p->err = AIR_ERR_NOMEM;
        return;
    }
    if (p->sink.on_content && p->sink.on_content(p->sink.user, p->content.data + at))
        p->stopped = 1;
}

/* Moves the calls found into p->calls and tells the sink. */
static void commit_calls(air_tc_parser *p, cJSON *found) {
    cJSON *c;
    while ((c = cJSON_DetachItemFromArray(found, 0)) != NULL) {
        int index = cJSON_GetArraySize(p->calls);
        cJSON_AddItemToArray(p->calls, c);
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
        if (p->sink.on_call &&
            p->sink.on_call(p->sink.user, index, cJSON_GetObjectItemCaseSensitive(c, "id")->valuestring,
                            cJSON_GetObjectItemCaseSensitive(fn, "name")->valuestring,
                            cJSON_GetObjectItemCaseSensitive(fn, "arguments")->valuestring))
            p->stopped = 1;
    }
}

/* Drops the first n pending bytes. */
static void consume(air_tc_parser *p, size_t n) {
    memmove(p->buf.data, p->buf.data + n, p->buf.len - n + 1);
    p->buf.len -= n;
}

static const char *marker(air_tc_format f) {
    return f == AIR_TC_HERMES ? HERMES_OPEN : f == AIR_TC_LLAMA3 ? LLAMA_TAG : MISTRAL_TAG;
}

/* Length of the longest suffix of s[0..n) that is a proper prefix of m. */
static size_t partial_suffix(const char *s, size_t n, const char *m) {
    size_t ml = strlen(m);
    for (size_t k = ml - 1; k > 0; k--)
        if (k <= n && memcmp(s + n - k, m, k) == 0)
            return k;
    return 0;
}

/* A Hermes call body; a body that is not a call is content as written. */
static void hermes_body(air_tc_parser *p, const char *body, size_t n, int closed) {
    cJSON *found = cJSON_CreateArray();
    const char *end = body + n;
    const char *s = skip_ws(body, end);
    const char *stop = NULL;
    cJSON *v = s < end ? cJSON_ParseWithLengthOpts(s, (size_t)(end - s), &stop, 0) : NULL;
    int ok = v && skip_ws(stop, end) == end && add_call(p, found, v, "arguments");
    cJSON_Delete(v);
    if (ok) {
        commit_calls(p, found);
    } else {
        emit_content(p, HERMES_OPEN, strlen(HERMES_OPEN));
        emit_content(p, body, n);
        if (closed)
            emit_content(p, HERMES_CLOSE, strlen(HERMES_CLOSE));
    }
    cJSON_Delete(found);
}

static void process(air_tc_parser *p) {
    for (;;) {
        if (p->mode == M_SCAN) {
            if (p->fmt == AIR_TC_NONE) {
                emit_content(p, p->buf.data, p->buf.len);
                consume(p, p->buf.len);
                return;
            }
            if (p->fmt == AIR_TC_LLAMA3 && !p->started) {
                const char *s = skip_ws(p->buf.data, p->buf.data + p->buf.len);
                if (s == p->buf.data + p->buf.len)
                    return; /* only spaces so far */
                p->started = 1;
                if (*s == '{') {
                    p->mode = M_HOLD_ALL;
                    return;
                }
            }
            const char *m = marker(p->fmt);
            char *hit = p->buf.len ? strstr(p->buf.data, m) : NULL;
            if (hit) {
                size_t at = (size_t)(hit - p->buf.data);
                emit_content(p, p->buf.data, at);
                consume(p, at + strlen(m));
                p->mode = p->fmt == AIR_TC_HERMES ? M_IN_CALL : M_TAIL;
                continue;
            }
            size_t keep = partial_suffix(p->buf.data, p->buf.len, m);
            emit_content(p, p->buf.data, p->buf.len - keep);
            consume(p, p->buf.len - keep);
            return;
        }
        if (p->mode == M_IN_CALL) {
            char *end = p->buf.len ? strstr(p->buf.data, HERMES_CLOSE) : NULL;
            if (!end)
                return;
            size_t n = (size_t)(end - p->buf.data);
            hermes_body(p, p->buf.data, n, 1);
            consume(p, n + strlen(HERMES_CLOSE));
            p->mode = M_SCAN;
            continue;
        }
        return; /* M_TAIL, M_HOLD_ALL: everything waits for the end */
    }
}

air_status air_tc_push(air_tc_parser *p, const char *text, size_t n) {
    if (air_sb_append(&p->buf, text, n))
        return air_err(AIR_ERR_NOMEM, "out of memory");
    if (!p->buf.data) /* nothing pushed yet and n == 0 */
        return AIR_OK;
    process(p);
    return p->err ? air_err(p->err, "out of memory parsing tool calls") : AIR_OK;
}

static int all_space(const char *s) {
    for (; s && *s; s++)
        if (!isspace((unsigned char)*s))
            return 0;
    return 1;
}

air_status air_tc_finish(air_tc_parser *p) {
    const char *s = p->buf.data ? p->buf.data : "";
    const char *end = s + p->buf.len;
    cJSON *found = cJSON_CreateArray();
    switch (p->mode) {
    case M_IN_CALL:
        hermes_body(p, s, p->buf.len, 0);
        break;
    case M_TAIL: {
        int ok = p->fmt == AIR_TC_LLAMA3 ? llama_tail(p, s, end, found)
                                         : mistral_tail(p, s, end, found);
        if (ok) {
            commit_calls(p, found);
        } else {
            const char *m = marker(p->fmt);
            emit_content(p, m, strlen(m));
            emit_content(p, s, p->buf.len);
        }
        break;
    }
    case M_HOLD_ALL:
        if (json_calls(p, s, end, "parameters", found))
            commit_calls(p, found);
        else
            emit_content(p, s, p->buf.len);
        break;
    default:
        emit_content(p, s, p->buf.len);
        break;
    }
    cJSON_Delete(found);
    if (p->buf.data)
        consume(p, p->buf.len);
    p->mode = M_SCAN;
    if (cJSON_GetArraySize(p->calls) > 0 && all_space(p->content.data)) {
        p->content.len = 0;
        if (p->content.data)
            p->content.data[0] = 0;
    }
    return p->err ? air_err(p->err, "out of memory parsing tool calls") : AIR_OK;
}

const char *air_tc_content(const air_tc_parser *p) {
    return p->content.data ? p->content.data : "";
}

const cJSON *air_tc_calls(const air_tc_parser *p) {
    return p->calls;
}

int air_tc_stopped(const air_tc_parser *p) {
    return p->stopped;
}

void air_tc_parser_free(air_tc_parser *p) {
    if (!p)
        return;
    air_sb_free(&p->buf);
    air_sb_free(&p->content);
    cJSON_Delete(p->calls);
    free(p);
}
