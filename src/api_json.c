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
    char **texts = NULL; /* the messages' tool_calls as text */
    char *schema_text = NULL, *tools_text = NULL, *choice_text = NULL;
    int nm = 0;
    air_result r = {0};

    const char *model = jstr(req, "model");
    if (!model) {
        st = air_err(AIR_ERR_INVALID_ARG, "get_llm_response: \"model\" is required");
        goto out;
    }
    /* messages, then the prompt as a last user turn (the seed's behaviour) */
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(req, "messages");
    const char *prompt = jstr(req, "prompt");
    nm = cJSON_IsArray(jm) ? cJSON_GetArraySize(jm) : 0;
    msgs = calloc((size_t)nm + 1, sizeof *msgs);
    texts = calloc((size_t)nm + 1, sizeof *texts);
    const cJSON *e;
    cJSON_ArrayForEach(e, jm) {
        const char *role = jstr(e, "role"), *content = jstr(e, "content");
        if (!role) {
            st = air_err(AIR_ERR_INVALID_ARG, "get_llm_response: message %d has no \"role\"", n);
            goto out;
        }
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
    /* format: "json" or a schema; OpenAI's response_format also works */
    const cJSON *jf = cJSON_GetObjectItemCaseSensitive(req, "format");
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(req, "response_format");
    if (!jf && cJSON_IsObject(rf)) {
        const char *rt = jstr(rf, "type");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
        if (rt && strcmp(rt, "json_object") == 0)
            gp.json = 1;
        else if (rt && strcmp(rt, "json_schema") == 0 && cJSON_IsObject(js))
            jf = cJSON_GetObjectItemCaseSensitive(js, "schema");
    }
    if (cJSON_IsString(jf)) {
        if (strcmp(jf->valuestring, "json") != 0) {
            st = air_err(AIR_ERR_INVALID_ARG,
                         "get_llm_response: format must be \"json\" or a JSON schema object, got "
                         "\"%s\"",
                         jf->valuestring);
            goto out_release;
        }
        gp.json = 1;
    } else if (cJSON_IsObject(jf) || cJSON_IsBool(jf)) {
        schema_text = cJSON_PrintUnformatted(jf);
        gp.json_schema = schema_text;
    }
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(req, "tools");
    if (cJSON_IsArray(jt) && cJSON_GetArraySize(jt) > 0)
        gp.tools = tools_text = cJSON_PrintUnformatted(jt);
    const cJSON *jc = cJSON_GetObjectItemCaseSensitive(req, "tool_choice");
    if (cJSON_IsString(jc))
        gp.tool_choice = jc->valuestring;
    else if (cJSON_IsObject(jc))
        gp.tool_choice = choice_text = cJSON_PrintUnformatted(jc);
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
out_release:
    air_model_release(m);
    if (st)
        goto out;
    cJSON *calls = r.tool_calls ? cJSON_Parse(r.tool_calls) : cJSON_CreateArray();

    resp = cJSON_CreateObject();
    cJSON_AddStringToObject(resp, "response", r.text);
    cJSON *out_msgs = cJSON_AddArrayToObject(resp, "messages");
    int i = 0;
    cJSON_ArrayForEach(e, jm) { /* the caller's messages, as given */
        if (i++ < n)
            cJSON_AddItemToArray(out_msgs, cJSON_Duplicate(e, 1));
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
    cJSON_AddStringToObject(resp, "raw_response", r.raw_text ? r.raw_text : r.text);
    cJSON_AddItemToObject(resp, "tool_calls", calls);
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
    for (int k = 0; texts && k < nm; k++)
        free(texts[k]);
    free(texts);
    free(msgs);
    free(stops);
    free(schema_text);
    free(tools_text);
    free(choice_text);
    return st;
}
