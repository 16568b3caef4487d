/*
 * api_json.c - get_llm_response as JSON in, JSON out: the seed's parameters
 * and return dictionary, for the Python binding and other front ends.
 */
#include <cjson/cJSON.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "util/error.h"

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *o, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    if (cJSON_IsNumber(v))
        return v->valuedouble != 0;
    return def;
}

/* The request's fields are checked before use: a field of the wrong type, a
 * fraction where an integer is needed, or a number the C type cannot hold is
 * an error naming the field (a double converted to an int or float out of
 * range is undefined behaviour). The library checks the ranges of the
 * floats (air_gen_params). */

static const char *type_name(const cJSON *v) {
    return cJSON_IsString(v)   ? "a string"
           : cJSON_IsBool(v)   ? "a boolean"
           : cJSON_IsArray(v)  ? "an array"
           : cJSON_IsObject(v) ? "an object"
                               : "a number";
}

/* A string field: absent or null gives NULL. */
static air_status opt_str(const cJSON *o, const char *k, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return AIR_OK;
    if (!cJSON_IsString(v))
        return air_err(AIR_ERR_INVALID_ARG, "get_llm_response: \"%s\" must be a string, not %s", k,
                       type_name(v));
    *out = v->valuestring;
    return AIR_OK;
}

/* A number field; absent or null leaves *out alone. */
static air_status opt_num(const cJSON *o, const char *k, double *out, int *present) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    *present = 0;
    if (!v || cJSON_IsNull(v))
        return AIR_OK;
    if (!cJSON_IsNumber(v))
        return air_err(AIR_ERR_INVALID_ARG, "get_llm_response: \"%s\" must be a number, not %s", k,
                       type_name(v));
    *out = v->valuedouble;
    *present = 1;
    return AIR_OK;
}

static air_status opt_int(const cJSON *o, const char *k, double lo, double hi, double *out,
                          int *present) {
    air_status st = opt_num(o, k, out, present);
    if (st || !*present)
        return st;
    if (!(*out >= lo && *out <= hi) || *out != floor(*out))
        return air_err(AIR_ERR_INVALID_ARG,
                       "get_llm_response: \"%s\" is %.15g; it must be an "
                       "integer from %.0f to %.0f",
                       k, *out, lo, hi);
    return AIR_OK;
}

#define JSON_INT_FIELD(key, lo, hi, dst, type)                                                     \
    do {                                                                                           \
        double d_;                                                                                 \
        int p_;                                                                                    \
        if ((st = opt_int(req, key, lo, hi, &d_, &p_)))                                            \
            goto out;                                                                              \
        if (p_)                                                                                    \
            dst = (type)d_;                                                                        \
    } while (0)

/* A float field: any finite number a float holds; the library checks its range. */
#define JSON_FLOAT_FIELD(key, dst)                                                                 \
    do {                                                                                           \
        double d_;                                                                                 \
        int p_;                                                                                    \
        if ((st = opt_num(req, key, &d_, &p_)))                                                    \
            goto out;                                                                              \
        if (p_ && !(fabs(d_) <= FLT_MAX)) {                                                        \
            st = air_err(AIR_ERR_INVALID_ARG,                                                      \
                         "get_llm_response: \"%s\" is %g; it must be a "                           \
                         "finite number",                                                          \
                         key, d_);                                                                 \
            goto out;                                                                              \
        }                                                                                          \
        if (p_)                                                                                    \
            dst = (float)d_;                                                                       \
    } while (0)

#define JSON_MAX_EXACT 9007199254740992.0 /* 2^53: larger integers are not exact in JSON */

/* While a model is split on first use, on_text is polled with an empty piece:
 * non-zero stops the split (a binding stops a call the same way whatever it
 * is doing). */
typedef struct {
    int (*on_text)(void *, const char *);
    void *user;
} split_poll;

static int split_should_abort(void *user) {
    const split_poll *sp = user;
    return sp->on_text && sp->on_text(sp->user, "") != 0;
}

air_status air_get_llm_response(const char *request_json, int (*on_text)(void *, const char *),
                                void *user, char **response) {
    *response = NULL;
    cJSON *req = cJSON_Parse(request_json ? request_json : "");
    if (!cJSON_IsObject(req)) {
        cJSON_Delete(req);
        return air_err(AIR_ERR_INVALID_ARG, "get_llm_response: the request is not a JSON object");
    }
    air_status st = AIR_OK;
    air_message *msgs = NULL;
    int n = 0;
    air_model *m = NULL;
    cJSON *resp = NULL;
    const char **stops = NULL;
    air_result r = {0};

    const char *model = jstr(req, "model");
    if (!model) {
        st = air_err(AIR_ERR_INVALID_ARG, "get_llm_response: \"model\" is required");
        goto out;
    }
    /* messages, then the prompt as a last user turn (the seed's behaviour) */
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(req, "messages");
    const char *prompt;
    if ((st = opt_str(req, "prompt", &prompt)))
        goto out;
    if (jm && !cJSON_IsNull(jm) && !cJSON_IsArray(jm)) {
        st = air_err(AIR_ERR_INVALID_ARG,
                     "get_llm_response: \"messages\" must be an array, not "
                     "%s",
                     type_name(jm));
        goto out;
    }
    int nm = cJSON_IsArray(jm) ? cJSON_GetArraySize(jm) : 0;
    msgs = calloc((size_t)nm + 1, sizeof *msgs);
    const cJSON *e;
    cJSON_ArrayForEach(e, jm) {
        const char *role = jstr(e, "role"), *content = jstr(e, "content");
        if (!role) {
            st = air_err(AIR_ERR_INVALID_ARG, "get_llm_response: message %d has no \"role\"", n);
            goto out;
        }
        msgs[n++] = (air_message){role, content ? content : ""};
    }
    if (prompt && (n == 0 || strcmp(msgs[n - 1].role, "user") != 0 ||
                   strcmp(msgs[n - 1].content, prompt) != 0))
        msgs[n++] = (air_message){"user", prompt};
    if (n == 0) {
        st = air_err(AIR_ERR_INVALID_ARG, "get_llm_response: give a \"prompt\" or \"messages\"");
        goto out;
    }

    air_model_params mp = air_model_default_params();
    if (cJSON_GetObjectItemCaseSensitive(req, "compression")) {
        const char *c;
        if ((st = opt_str(req, "compression", &c)))
            goto out;
        mp.compression = c ? c : "none"; /* null -> no compression */
    }
    if ((st = opt_str(req, "hf_token", &mp.hf_token)) ||
        (st = opt_str(req, "cache_dir", &mp.cache_dir)) ||
        (st = opt_str(req, "revision", &mp.revision)))
        goto out;
    mp.delete_original = jbool(req, "delete_original", 0);
    mp.prefetching = jbool(req, "prefetching", 1);
    JSON_INT_FIELD("max_seq_len", 0, AIR_MAX_SEQ_LEN, mp.max_seq_len, int);
    JSON_INT_FIELD("ram_budget", 0, JSON_MAX_EXACT, mp.ram_budget, uint64_t);
    JSON_INT_FIELD("n_threads", 0, INT_MAX, mp.n_threads, int);

    air_gen_params gp = air_gen_default_params();
    JSON_INT_FIELD("max_tokens", 0, INT_MAX, gp.max_tokens, int);
    JSON_FLOAT_FIELD("temperature", gp.temperature);
    JSON_FLOAT_FIELD("top_p", gp.top_p);
    JSON_INT_FIELD("top_k", 0, INT_MAX, gp.top_k, int);
    JSON_FLOAT_FIELD("min_p", gp.min_p);
    JSON_FLOAT_FIELD("repeat_penalty", gp.repeat_penalty);
    JSON_INT_FIELD("seed", 0, JSON_MAX_EXACT, gp.seed, uint64_t);
    const char *fmt;
    if ((st = opt_str(req, "format", &fmt)))
        goto out;
    if (fmt && strcmp(fmt, "json") != 0) {
        st = air_err(AIR_ERR_INVALID_ARG,
                     "get_llm_response: \"format\" is \"%s\"; it must be "
                     "\"json\" or null",
                     fmt);
        goto out;
    }
    gp.json = fmt != NULL;
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(req, "stop");
    if (cJSON_IsString(js)) {
        stops = calloc(1, sizeof *stops);
        stops[gp.n_stop++] = js->valuestring;
    } else if (cJSON_IsArray(js)) {
        stops = calloc((size_t)cJSON_GetArraySize(js) + 1, sizeof *stops);
        cJSON_ArrayForEach(e, js) if (cJSON_IsString(e)) stops[gp.n_stop++] = e->valuestring;
    }
    gp.stop = stops;
    gp.on_text = on_text;
    gp.user = user;
    split_poll sp = {on_text, user};
    mp.should_abort = split_should_abort;
    mp.abort_user = &sp;
    if ((st = air_model_acquire(model, &mp, &m)))
        goto out;
    st = air_chat(m, msgs, n, &gp, &r);
    air_model_release(m);
    if (st)
        goto out;

    resp = cJSON_CreateObject();
    cJSON_AddStringToObject(resp, "response", r.text);
    cJSON *out_msgs = cJSON_AddArrayToObject(resp, "messages");
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", msgs[i].role);
        cJSON_AddStringToObject(o, "content", msgs[i].content);
        cJSON_AddItemToArray(out_msgs, o);
    }
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "role", "assistant");
    cJSON_AddStringToObject(a, "content", r.text);
    cJSON_AddItemToArray(out_msgs, a);
    cJSON_AddStringToObject(resp, "raw_response", r.text);
    cJSON_AddArrayToObject(resp, "tool_calls");
    cJSON_AddArrayToObject(resp, "tool_results");
    cJSON *u = cJSON_AddObjectToObject(resp, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", r.prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", r.completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", r.prompt_tokens + r.completion_tokens);
    cJSON_AddNumberToObject(u, "prefill_seconds", r.prefill_seconds);
    cJSON_AddNumberToObject(u, "decode_seconds", r.decode_seconds);
    cJSON_AddNumberToObject(u, "prefill_tokens_per_s", r.prefill_tokens_per_s);
    cJSON_AddNumberToObject(u, "decode_tokens_per_s", r.decode_tokens_per_s);
    cJSON_AddStringToObject(resp, "finish_reason", r.finish_reason ? r.finish_reason : "stop");
    *response = cJSON_PrintUnformatted(resp);
out:
    air_result_free(&r);
    cJSON_Delete(resp);
    cJSON_Delete(req);
    free(msgs);
    free(stops);
    return st;
}
