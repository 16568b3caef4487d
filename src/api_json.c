/*
 * api_json.c - get_llm_response as JSON in, JSON out: the seed's parameters
 * and return dictionary, for the Python binding and other front ends.
 *
 * A request names a model and its open options (taken from the process
 * cache, keyed "model:compression"), generation options, and either a
 * conversation ("messages" and/or "prompt") or a prompt already tokenized
 * ("prompt_ids"). air_model_acquire_json opens a model from the same keys.
 */
#include <cjson/cJSON.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
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

/* A float field: any finite number a float holds; the library checks its range. */
static air_status opt_float(const cJSON *o, const char *k, float *dst) {
    double d;
    int present;
    air_status st = opt_num(o, k, &d, &present);
    if (st || !present)
        return st;
    if (!(fabs(d) <= FLT_MAX))
        return air_err(AIR_ERR_INVALID_ARG, "get_llm_response: \"%s\" is %g; it must be a finite "
                       "number", k, d);
    *dst = (float)d;
    return AIR_OK;
}

#define JSON_MAX_EXACT 9007199254740992.0 /* 2^53: larger integers are not exact in JSON */

/* An integer field into an int / uint64_t, absent leaves it alone. */
static air_status opt_i32(const cJSON *o, const char *k, double lo, double hi, int *dst) {
    double d;
    int present;
    air_status st = opt_int(o, k, lo, hi, &d, &present);
    if (!st && present)
        *dst = (int)d;
    return st;
}

static air_status opt_u64(const cJSON *o, const char *k, double hi, uint64_t *dst) {
    double d;
    int present;
    air_status st = opt_int(o, k, 0, hi, &d, &present);
    if (!st && present)
        *dst = (uint64_t)d;
    return st;
}

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


static cJSON *parse_request(const char *json, const char *what) {
    cJSON *req = cJSON_Parse(json ? json : "");
    if (!cJSON_IsObject(req)) {
        cJSON_Delete(req);
        air_err(AIR_ERR_INVALID_ARG, "%s: the request is not a JSON object", what);
        return NULL;
    }
    return req;
}

/* The model and its open options; strings borrowed from req. on_text, when
 * given, is polled while a split runs (split_poll). */
static air_status acquire(const cJSON *req, const char *what, split_poll *sp, air_model **m) {
    const char *model = jstr(req, "model");
    if (!model)
        return air_err(AIR_ERR_INVALID_ARG, "%s: \"model\" is required", what);
    air_model_params mp = air_model_default_params();
    air_status st;
    if (cJSON_GetObjectItemCaseSensitive(req, "compression")) {
        const char *c;
        if ((st = opt_str(req, "compression", &c)))
            return st;
        mp.compression = c ? c : "none"; /* null -> no compression */
    }
    if ((st = opt_str(req, "hf_token", &mp.hf_token)) ||
        (st = opt_str(req, "cache_dir", &mp.cache_dir)) ||
        (st = opt_str(req, "revision", &mp.revision)) ||
        (st = opt_str(req, "device", &mp.device)))
        return st;
    mp.delete_original = jbool(req, "delete_original", 0);
    mp.prefetching = jbool(req, "prefetching", 1);
    if ((st = opt_i32(req, "max_seq_len", 0, AIR_MAX_SEQ_LEN, &mp.max_seq_len)) ||
        (st = opt_u64(req, "ram_budget", JSON_MAX_EXACT, &mp.ram_budget)) ||
        (st = opt_u64(req, "vram_budget", JSON_MAX_EXACT, &mp.vram_budget)) ||
        (st = opt_i32(req, "n_threads", 0, INT_MAX, &mp.n_threads)))
        return st;
    if (sp && sp->on_text) {
        mp.should_abort = split_should_abort;
        mp.abort_user = sp;
    }
    return air_model_acquire(model, &mp, m);
}

air_status air_model_acquire_json(const char *request_json, air_model **out) {
    if (out)
        *out = NULL;
    if (!out)
        return air_err(AIR_ERR_INVALID_ARG, "air_model_acquire_json: no output");
    cJSON *req = parse_request(request_json, "air_model_acquire_json");
    if (!req)
        return AIR_ERR_INVALID_ARG;
    air_status st = acquire(req, "air_model_acquire_json", NULL, out);
    cJSON_Delete(req);
    return st;
}

/* Generation options; *stops (caller frees) holds the stop strings, borrowed
 * from req. */
/* Generation options; *stops (caller frees) holds the stop strings, borrowed
 * from req; owned[0..2] (caller frees) the schema, tools and tool_choice texts. */
static air_status gen_params(const cJSON *req, air_gen_params *gp, const char ***stops,
                             char *owned[3]) {
    *gp = air_gen_default_params();
    *stops = NULL;
    air_status st;
    if ((st = opt_i32(req, "max_tokens", 0, INT_MAX, &gp->max_tokens)) ||
        (st = opt_float(req, "temperature", &gp->temperature)) ||
        (st = opt_float(req, "top_p", &gp->top_p)) ||
        (st = opt_i32(req, "top_k", 0, INT_MAX, &gp->top_k)) ||
        (st = opt_float(req, "min_p", &gp->min_p)) ||
        (st = opt_float(req, "repeat_penalty", &gp->repeat_penalty)) ||
        (st = opt_u64(req, "seed", JSON_MAX_EXACT, &gp->seed)))
        return st;
    /* format: "json" or a JSON schema; OpenAI's response_format also works */
    const cJSON *jf = cJSON_GetObjectItemCaseSensitive(req, "format");
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(req, "response_format");
    if ((!jf || cJSON_IsNull(jf)) && cJSON_IsObject(rf)) {
        const char *rt = jstr(rf, "type");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
        if (rt && strcmp(rt, "json_object") == 0)
            gp->json = 1;
        else if (rt && strcmp(rt, "json_schema") == 0 && cJSON_IsObject(js))
            jf = cJSON_GetObjectItemCaseSensitive(js, "schema");
    }
    if (cJSON_IsString(jf)) {
        if (strcmp(jf->valuestring, "json") != 0)
            return air_err(AIR_ERR_INVALID_ARG, "get_llm_response: \"format\" is \"%s\"; it must "
                           "be \"json\", a JSON schema object or null", jf->valuestring);
        gp->json = 1;
    } else if (cJSON_IsObject(jf) || cJSON_IsBool(jf)) {
        gp->json_schema = owned[0] = cJSON_PrintUnformatted(jf);
    } else if (jf && !cJSON_IsNull(jf)) {
        return air_err(AIR_ERR_INVALID_ARG, "get_llm_response: \"format\" must be \"json\", a JSON "
                       "schema object or null, not %s", type_name(jf));
    }
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(req, "tools");
    if (cJSON_IsArray(jt) && cJSON_GetArraySize(jt) > 0)
        gp->tools = owned[1] = cJSON_PrintUnformatted(jt);
    const cJSON *jc = cJSON_GetObjectItemCaseSensitive(req, "tool_choice");
    if (cJSON_IsString(jc))
        gp->tool_choice = jc->valuestring;
    else if (cJSON_IsObject(jc))
        gp->tool_choice = owned[2] = cJSON_PrintUnformatted(jc);
    /* speculative decoding */
    if ((st = opt_str(req, "draft_model", &gp->draft_model)) ||
        (st = opt_str(req, "draft_compression", &gp->draft_compression)) ||
        (st = opt_i32(req, "draft_max", 0, 64, &gp->draft_max)))
        return st;
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(req, "speculative");
    if (sp && !cJSON_IsNull(sp)) {
        if (!cJSON_IsBool(sp))
            return air_err(AIR_ERR_INVALID_ARG, "get_llm_response: \"speculative\" must be true, "
                           "false or null, not %s", type_name(sp));
        gp->speculative = cJSON_IsTrue(sp);
        gp->lookup = cJSON_IsTrue(sp) ? 1 : 0;
    }
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(req, "stop"), *e;
    if (!cJSON_IsString(js) && !cJSON_IsArray(js))
        return AIR_OK;
    *stops = calloc(cJSON_IsArray(js) ? (size_t)cJSON_GetArraySize(js) + 1 : 1, sizeof **stops);
    if (!*stops)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    if (cJSON_IsString(js))
        (*stops)[gp->n_stop++] = js->valuestring;
    else
        cJSON_ArrayForEach(e, js) if (cJSON_IsString(e)) (*stops)[gp->n_stop++] = e->valuestring;
    gp->stop = *stops;
    return AIR_OK;
}

/* "prompt_ids": an array of integers; *ids is malloc'd. */
static air_status prompt_ids(const cJSON *jids, int32_t **ids, size_t *n) {
    size_t k = (size_t)cJSON_GetArraySize(jids);
    *n = 0;
    *ids = malloc(sizeof **ids * (k ? k : 1));
    if (!*ids)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, jids) {
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!(v >= 0 && v <= INT32_MAX) || v != (double)(int32_t)v)
            return air_err(AIR_ERR_INVALID_ARG, "get_llm_response: \"prompt_ids\"[%zu] is not a "
                           "token id (an integer)", *n);
        (*ids)[(*n)++] = (int32_t)e->valuedouble;
    }
    return AIR_OK;
}

air_status air_get_llm_response(const char *request_json, int (*on_text)(void *, const char *),
                                void *user, char **response) {
    *response = NULL;
    cJSON *req = parse_request(request_json, "get_llm_response");
    if (!req)
        return AIR_ERR_INVALID_ARG;
    air_status st = AIR_OK;
    air_message *msgs = NULL;
    int n = 0;
    int32_t *ids = NULL, *gen = NULL;
    size_t n_ids = 0, n_gen = 0;
    air_model *m = NULL;
    cJSON *resp = NULL;
    const char **stops = NULL;
    char **texts = NULL; /* the messages' tool_calls as text */
    char *schema_text = NULL, *tools_text = NULL, *choice_text = NULL;
    int nm = 0;
    air_result r = {0};

    if (!jstr(req, "model")) {
        st = air_err(AIR_ERR_INVALID_ARG, "get_llm_response: \"model\" is required");
        goto out;
    }
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(req, "messages");
    const cJSON *jids = cJSON_GetObjectItemCaseSensitive(req, "prompt_ids");
    const char *prompt;
    if ((st = opt_str(req, "prompt", &prompt)))
        goto out;
    if (jm && !cJSON_IsNull(jm) && !cJSON_IsArray(jm)) {
        st = air_err(AIR_ERR_INVALID_ARG, "get_llm_response: \"messages\" must be an array, not %s",
                     type_name(jm));
        goto out;
    }
    if (cJSON_IsNull(jm))
        jm = NULL;
    if (jids) {
        /* a prompt already templated and tokenized */
        if (!cJSON_IsArray(jids) || prompt || jm) {
            st = air_err(AIR_ERR_INVALID_ARG, "get_llm_response: \"prompt_ids\" is an array of "
                         "token ids, given instead of \"prompt\" and \"messages\"");
            goto out;
        }
        if ((st = prompt_ids(jids, &ids, &n_ids)))
            goto out;
    } else {
        /* messages, then the prompt: it replaces the content of a last user
         * turn, or becomes a new user turn (as npcpy's providers do; an empty
         * prompt adds nothing) */
        if (prompt && !*prompt)
            prompt = NULL;
        nm = cJSON_IsArray(jm) ? cJSON_GetArraySize(jm) : 0;
        msgs = calloc((size_t)nm + 1, sizeof *msgs);
        texts = calloc((size_t)nm + 1, sizeof *texts);
        if (!msgs || !texts) {
            st = air_err(AIR_ERR_NOMEM, "out of memory");
            goto out;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, jm) {
            const char *role = jstr(e, "role"), *content = jstr(e, "content");
            if (!role) {
                st = air_err(AIR_ERR_INVALID_ARG, "get_llm_response: message %d has no \"role\"", n);
                goto out;
            }
            /* an assistant turn's tool_calls (OpenAI's shape), a tool turn's
             * tool_call_id and name */
            const cJSON *tc = cJSON_GetObjectItemCaseSensitive(e, "tool_calls");
            msgs[n] = (air_message){.role = role, .content = content ? content : ""};
            if (cJSON_IsArray(tc) && cJSON_GetArraySize(tc) > 0) {
                texts[n] = cJSON_PrintUnformatted(tc);
                msgs[n].tool_calls = texts[n];
                if (!content)
                    msgs[n].content = NULL;
            }
            msgs[n].tool_call_id = jstr(e, "tool_call_id");
            msgs[n].name = jstr(e, "name");
            n++;
        }
        if (prompt && n > 0 && strcmp(msgs[n - 1].role, "user") == 0)
            msgs[n - 1].content = prompt;
        else if (prompt)
            msgs[n++] = (air_message){.role = "user", .content = prompt};
        if (n == 0) {
            st = air_err(AIR_ERR_INVALID_ARG, "get_llm_response: give a \"prompt\" or \"messages\"");
            goto out;
        }
    }
    /* extra chat template variables, e.g. {"enable_thinking": false} */
    const cJSON *vars = cJSON_GetObjectItemCaseSensitive(req, "chat_template_kwargs");
    if (vars && !cJSON_IsObject(vars) && !cJSON_IsNull(vars)) {
        st = air_err(AIR_ERR_INVALID_ARG, "get_llm_response: \"chat_template_kwargs\" must be a "
                     "JSON object of template variables");
        goto out;
    }
    air_gen_params gp;
    char *owned[3] = {NULL, NULL, NULL};
    st = gen_params(req, &gp, &stops, owned);
    schema_text = owned[0];
    tools_text = owned[1];
    choice_text = owned[2];
    if (st)
        goto out;
    gp.on_text = on_text;
    gp.user = user;
    gp.raw = jbool(req, "raw", 0);
    if (gp.raw && (jids || jm || !prompt)) {
        st = air_err(AIR_ERR_INVALID_ARG, "get_llm_response: \"raw\": true continues one "
                     "\"prompt\" as it is; it takes no \"messages\"");
        goto out;
    }
    split_poll sp = {on_text, user};
    if ((st = acquire(req, "get_llm_response", &sp, &m)))
        goto out;
    if (ids)
        st = air_generate_ids(m, ids, n_ids, &gp, &r, &gen, &n_gen);
    else if (gp.raw)
        st = air_complete(m, prompt, &gp, &r);
    else
        st = air_chat_vars(m, msgs, n, cJSON_IsObject(vars) ? vars : NULL, &gp, &r, &gen, &n_gen);
    air_model_release(m);
    if (st)
        goto out;
    cJSON *calls = r.tool_calls ? cJSON_Parse(r.tool_calls) : cJSON_CreateArray();

    resp = cJSON_CreateObject();
    cJSON_AddStringToObject(resp, "response", r.text);
    if (!ids) {
        cJSON *out_msgs = cJSON_AddArrayToObject(resp, "messages");
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, jm) { /* the caller's messages, as given (a prompt may have
                                       replaced the last one's content) */
            if (i >= n)
                break;
            cJSON *d = cJSON_Duplicate(e, 1);
            if (msgs[i].content && msgs[i].content != jstr(e, "content"))
                cJSON_ReplaceItemInObject(d, "content", cJSON_CreateString(msgs[i].content));
            cJSON_AddItemToArray(out_msgs, d);
            i++;
        }
        for (; i < n; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "role", msgs[i].role);
            cJSON_AddStringToObject(o, "content", msgs[i].content ? msgs[i].content : "");
            cJSON_AddItemToArray(out_msgs, o);
        }
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "role", "assistant");
        cJSON_AddStringToObject(a, "content", r.text);
        if (cJSON_GetArraySize(calls) > 0)
            cJSON_AddItemToObject(a, "tool_calls", cJSON_Duplicate(calls, 1));
        cJSON_AddItemToArray(out_msgs, a);
    }
    cJSON_AddStringToObject(resp, "raw_response", r.raw_text ? r.raw_text : r.text);
    cJSON_AddItemToObject(resp, "tool_calls", calls);
    cJSON_AddArrayToObject(resp, "tool_results");
    cJSON *cids = cJSON_AddArrayToObject(resp, "completion_ids");
    for (size_t i = 0; i < n_gen; i++)
        cJSON_AddItemToArray(cids, cJSON_CreateNumber(gen[i]));
    cJSON *u = cJSON_AddObjectToObject(resp, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", r.prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", r.completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", r.prompt_tokens + r.completion_tokens);
    /* npcpy's names for the same counts */
    cJSON_AddNumberToObject(u, "input_tokens", r.prompt_tokens);
    cJSON_AddNumberToObject(u, "output_tokens", r.completion_tokens);
    cJSON_AddNumberToObject(u, "prefill_seconds", r.prefill_seconds);
    cJSON_AddNumberToObject(u, "decode_seconds", r.decode_seconds);
    cJSON_AddNumberToObject(u, "prefill_tokens_per_s", r.prefill_tokens_per_s);
    cJSON_AddNumberToObject(u, "decode_tokens_per_s", r.decode_tokens_per_s);
    cJSON_AddNumberToObject(u, "sweeps", r.sweeps);
    cJSON_AddNumberToObject(u, "tokens_per_sweep", r.tokens_per_sweep);
    cJSON_AddNumberToObject(u, "drafted", r.drafted);
    cJSON_AddNumberToObject(u, "accepted", r.accepted);
    cJSON_AddNumberToObject(u, "acceptance_rate", r.acceptance_rate);
    cJSON_AddStringToObject(resp, "finish_reason", r.finish_reason ? r.finish_reason : "stop");
    *response = cJSON_PrintUnformatted(resp);
    if (!*response)
        st = air_err(AIR_ERR_NOMEM, "out of memory");
out:
    air_result_free(&r);
    cJSON_Delete(resp);
    cJSON_Delete(req);
    for (int k = 0; texts && k < nm; k++)
        free(texts[k]);
    free(texts);
    free(msgs);
    free(ids);
    air_free(gen);
    free(stops);
    free(schema_text);
    free(tools_text);
    free(choice_text);
    return st;
}
