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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "util/error.h"

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jnum(const cJSON *o, const char *k, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v))
        return 0;
    *out = v->valuedouble;
    return 1;
}

static int jbool(const cJSON *o, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    if (cJSON_IsNumber(v))
        return v->valueint != 0;
    return def;
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

/* The model and its open options; strings borrowed from req. */
static air_status acquire(const cJSON *req, const char *what, air_model **m) {
    const char *model = jstr(req, "model");
    if (!model)
        return air_err(AIR_ERR_INVALID_ARG, "%s: \"model\" is required", what);
    air_model_params mp = air_model_default_params();
    double d;
    if (cJSON_GetObjectItemCaseSensitive(req, "compression")) {
        const char *c = jstr(req, "compression");
        mp.compression = c ? c : "none"; /* null -> no compression */
    }
    mp.hf_token = jstr(req, "hf_token");
    mp.cache_dir = jstr(req, "cache_dir");
    mp.revision = jstr(req, "revision");
    mp.delete_original = jbool(req, "delete_original", 0);
    mp.prefetching = jbool(req, "prefetching", 1);
    if (jnum(req, "max_seq_len", &d))
        mp.max_seq_len = (int)d;
    if (jnum(req, "ram_budget", &d))
        mp.ram_budget = (uint64_t)d;
    if (jnum(req, "n_threads", &d))
        mp.n_threads = (int)d;
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
    air_status st = acquire(req, "air_model_acquire_json", out);
    cJSON_Delete(req);
    return st;
}

/* Generation options; *stops (caller frees) holds the stop strings, borrowed
 * from req. */
static air_status gen_params(const cJSON *req, air_gen_params *gp, const char ***stops) {
    double d;
    *gp = air_gen_default_params();
    *stops = NULL;
    if (jnum(req, "max_tokens", &d))
        gp->max_tokens = (int)d;
    if (jnum(req, "temperature", &d))
        gp->temperature = (float)d;
    if (jnum(req, "top_p", &d))
        gp->top_p = (float)d;
    if (jnum(req, "top_k", &d))
        gp->top_k = (int)d;
    if (jnum(req, "min_p", &d))
        gp->min_p = (float)d;
    if (jnum(req, "repeat_penalty", &d))
        gp->repeat_penalty = (float)d;
    if (jnum(req, "seed", &d))
        gp->seed = (uint64_t)d;
    const char *fmt = jstr(req, "format");
    gp->json = fmt && strcmp(fmt, "json") == 0;
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
    air_result r = {0};

    if (!jstr(req, "model")) {
        st = air_err(AIR_ERR_INVALID_ARG, "get_llm_response: \"model\" is required");
        goto out;
    }
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(req, "messages");
    const cJSON *jids = cJSON_GetObjectItemCaseSensitive(req, "prompt_ids");
    const char *prompt = jstr(req, "prompt");
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
        int nm = cJSON_IsArray(jm) ? cJSON_GetArraySize(jm) : 0;
        msgs = calloc((size_t)nm + 1, sizeof *msgs);
        if (!msgs) {
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
            msgs[n++] = (air_message){role, content ? content : ""};
        }
        if (prompt && n > 0 && strcmp(msgs[n - 1].role, "user") == 0)
            msgs[n - 1].content = prompt;
        else if (prompt)
            msgs[n++] = (air_message){"user", prompt};
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
    if ((st = gen_params(req, &gp, &stops)))
        goto out;
    gp.on_text = on_text;
    gp.user = user;
    if ((st = acquire(req, "get_llm_response", &m)))
        goto out;
    if (ids)
        st = air_generate_ids(m, ids, n_ids, &gp, &r, &gen, &n_gen);
    else
        st = air_chat_vars(m, msgs, n, cJSON_IsObject(vars) ? vars : NULL, &gp, &r, &gen, &n_gen);
    air_model_release(m);
    if (st)
        goto out;

    resp = cJSON_CreateObject();
    cJSON_AddStringToObject(resp, "response", r.text);
    if (!ids) {
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
    }
    cJSON_AddStringToObject(resp, "raw_response", r.text);
    cJSON_AddArrayToObject(resp, "tool_calls");
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
    cJSON_AddStringToObject(resp, "finish_reason", r.finish_reason ? r.finish_reason : "stop");
    *response = cJSON_PrintUnformatted(resp);
    if (!*response)
        st = air_err(AIR_ERR_NOMEM, "out of memory");
out:
    air_result_free(&r);
    cJSON_Delete(resp);
    cJSON_Delete(req);
    free(msgs);
    free(ids);
    air_free(gen);
    free(stops);
    return st;
}
