/*
 * api_json.c - get_llm_response as JSON in, JSON out: the seed's parameters
 * and return dictionary, for the Python binding and other front ends.
 */
#include <cjson/cJSON.h>
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
    const char *prompt = jstr(req, "prompt");
    int nm = cJSON_IsArray(jm) ? cJSON_GetArraySize(jm) : 0;
    msgs = calloc((size_t)nm + 1, sizeof *msgs);
    const cJSON *e;
    cJSON_ArrayForEach(e, jm) {
        const char *role = jstr(e, "role"), *content = jstr(e, "content");
        if (!role) {
            st = air_err(AIR_ERR_INVALID_ARG, "get_llm_response: message %d has no \"role\"", n);
            goto out;
        }
        msgs[n++] = (air_message){.role = role, .content = content ? content : ""};
    }
    if (prompt && (n == 0 || strcmp(msgs[n - 1].role, "user") != 0 ||
                   strcmp(msgs[n - 1].content, prompt) != 0))
        msgs[n++] = (air_message){.role = "user", .content = prompt};
    if (n == 0) {
        st = air_err(AIR_ERR_INVALID_ARG, "get_llm_response: give a \"prompt\" or \"messages\"");
        goto out;
    }

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
    if ((st = air_model_acquire(model, &mp, &m)))
        goto out;

    air_gen_params gp = air_gen_default_params();
    if (jnum(req, "max_tokens", &d))
        gp.max_tokens = (int)d;
    if (jnum(req, "temperature", &d))
        gp.temperature = (float)d;
    if (jnum(req, "top_p", &d))
        gp.top_p = (float)d;
    if (jnum(req, "top_k", &d))
        gp.top_k = (int)d;
    if (jnum(req, "min_p", &d))
        gp.min_p = (float)d;
    if (jnum(req, "repeat_penalty", &d))
        gp.repeat_penalty = (float)d;
    if (jnum(req, "seed", &d))
        gp.seed = (uint64_t)d;
    const char *fmt = jstr(req, "format");
    gp.json = fmt && strcmp(fmt, "json") == 0;
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
