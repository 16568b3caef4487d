/*
 * api_tools.c - the tool-calling side of a chat request: the tools and
 * tool_choice given in air_gen_params, the messages (with their tool calls)
 * as the JSON the chat template receives, and the JSON schema of a forced
 * call (tool_choice "required" or a function's name).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "util/error.h"

void air_tool_req_free(air_tool_req *r) {
    cJSON_Delete(r->tools);
    cJSON_Delete(r->forced_schema);
    free(r->named);
    memset(r, 0, sizeof *r);
}

/* {"type":"object","properties":{"name":{"const":N}, key: params},
 *  "required":["name", key]} for one tool. */
static cJSON *call_schema(const cJSON *fn, const char *args_key) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "object");
    cJSON *props = cJSON_AddObjectToObject(s, "properties");
    cJSON *n = cJSON_AddObjectToObject(props, "name");
    cJSON_AddStringToObject(n, "const", name->valuestring);
    if (params)
        cJSON_AddItemToObject(props, args_key, cJSON_Duplicate(params, 1));
    else
        cJSON_AddItemToObject(props, args_key, cJSON_Parse("{\"type\":\"object\"}"));
    cJSON *req = cJSON_AddArrayToObject(s, "required");
    cJSON_AddItemToArray(req, cJSON_CreateString("name"));
    cJSON_AddItemToArray(req, cJSON_CreateString(args_key));
    cJSON_AddFalseToObject(s, "additionalProperties");
    return s;
}

/* A tool's parameters may use "$defs" or "definitions" with "#/..." refs
 * that point at the tool's own parameters object; the call schema nests
 * them one level down, so those are rewritten to point there. */
static void rebase_refs(cJSON *v, const char *prefix) {
    if (!v)
        return;
    cJSON *ref = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "$ref") : NULL;
    if (cJSON_IsString(ref) && ref->valuestring[0] == '#') {
        size_t n = strlen(prefix) + strlen(ref->valuestring) + 1;
        char *t = malloc(n);
        if (t) {
            snprintf(t, n, "%s%s", prefix, ref->valuestring + 1);
            cJSON_SetValuestring(ref, t);
            free(t);
        }
    }
    cJSON *c;
    cJSON_ArrayForEach(c, v) rebase_refs(c, prefix);
}

air_status air_tool_req_init(const air_model *m, const air_gen_params *p, air_tool_req *r) {
    memset(r, 0, sizeof *r);
    r->choice = AIR_CHOICE_AUTO;
    if (p->tools) {
        r->tools = cJSON_Parse(p->tools);
        if (!cJSON_IsArray(r->tools))
            return air_err(AIR_ERR_INVALID_ARG, "tools: not a JSON array of OpenAI tools");
        int i = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, r->tools) {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
            if (!cJSON_IsString(name) || !name->valuestring[0])
                return air_err(AIR_ERR_INVALID_ARG,
                               "tools[%d]: expected {\"type\": \"function\", \"function\": "
                               "{\"name\": ..., \"parameters\": {...}}}",
                               i);
            i++;
        }
        if (i == 0) { /* an empty list is no tools */
            cJSON_Delete(r->tools);
            r->tools = NULL;
        }
    }
    const char *c = p->tool_choice;
    cJSON *cj = NULL;
    if (c && c[0] == '{') { /* {"type":"function","function":{"name":...}} */
        cj = cJSON_Parse(c);
        const cJSON *name =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cj, "function"), "name");
        if (!cJSON_IsString(name)) {
            cJSON_Delete(cj);
            return air_err(AIR_ERR_INVALID_ARG,
                           "tool_choice: expected \"auto\", \"none\", \"required\", a function "
                           "name or {\"type\": \"function\", \"function\": {\"name\": ...}}");
        }
        c = name->valuestring;
        r->choice = AIR_CHOICE_NAMED;
    } else if (!c || strcmp(c, "auto") == 0) {
        r->choice = AIR_CHOICE_AUTO;
    } else if (strcmp(c, "none") == 0) {
        r->choice = AIR_CHOICE_NONE;
    } else if (strcmp(c, "required") == 0) {
        r->choice = AIR_CHOICE_REQUIRED;
    } else {
        r->choice = AIR_CHOICE_NAMED;
    }
    if (r->choice == AIR_CHOICE_NAMED && !(r->named = strdup(c))) {
        cJSON_Delete(cj);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    cJSON_Delete(cj);
    if ((r->choice == AIR_CHOICE_REQUIRED || r->choice == AIR_CHOICE_NAMED) && !r->tools)
        return air_err(AIR_ERR_INVALID_ARG, "tool_choice \"%s\" needs tools",
                       r->named ? r->named : "required");
    if (r->choice == AIR_CHOICE_NONE || !r->tools)
        return AIR_OK;
    if ((r->choice == AIR_CHOICE_REQUIRED || r->choice == AIR_CHOICE_NAMED) &&
        (p->json || p->json_schema))
        return air_err(AIR_ERR_INVALID_ARG,
                       "a forced tool call (tool_choice \"%s\") and format=json/schema cannot be "
                       "combined: the call itself is the JSON",
                       r->named ? r->named : "required");
    r->template_tools = air_tc_template_has_tools(m->template_src);
    r->fmt = air_tc_format_from_template(r->template_tools ? m->template_src : NULL);
    if (r->choice == AIR_CHOICE_AUTO)
        return AIR_OK;

    /* forced: a schema for the call object */
    const char *key = air_tc_args_key(r->fmt);
    cJSON *alts = cJSON_CreateArray();
    const cJSON *t;
    int i = 0;
    cJSON_ArrayForEach(t, r->tools) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        const char *name = cJSON_GetObjectItemCaseSensitive(fn, "name")->valuestring;
        if (r->named && strcmp(name, r->named) != 0) {
            i++;
            continue;
        }
        cJSON *s = call_schema(fn, key);
        char prefix[96];
        snprintf(prefix, sizeof prefix, "#/anyOf/%d/properties/%s", cJSON_GetArraySize(alts), key);
        rebase_refs(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "properties"),
                                                     key),
                    prefix);
        cJSON_AddItemToArray(alts, s);
        i++;
    }
    if (cJSON_GetArraySize(alts) == 0) {
        cJSON_Delete(alts);
        return air_err(AIR_ERR_INVALID_ARG, "tool_choice names \"%s\", which is not in tools",
                       r->named);
    }
    r->forced_schema = cJSON_CreateObject();
    cJSON_AddItemToObject(r->forced_schema, "anyOf", alts);
    return AIR_OK;
}

air_status air_messages_json(const air_message *msgs, int n, cJSON **out) {
    *out = NULL;
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return air_err(AIR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        const air_message *mg = &msgs[i];
        if (!mg->role) {
            cJSON_Delete(arr);
            return air_err(AIR_ERR_INVALID_ARG, "message %d has no role", i);
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "role", mg->role);
        if (mg->content)
            cJSON_AddStringToObject(o, "content", mg->content);
        else if (mg->tool_calls)
            cJSON_AddNullToObject(o, "content");
        else
            cJSON_AddStringToObject(o, "content", "");
        if (mg->tool_calls) {
            cJSON *tc = cJSON_Parse(mg->tool_calls);
            if (!cJSON_IsArray(tc)) {
                cJSON_Delete(tc);
                cJSON_Delete(arr);
                return air_err(AIR_ERR_INVALID_ARG,
                               "message %d: tool_calls is not a JSON array of tool calls", i);
            }
            cJSON_AddItemToObject(o, "tool_calls", tc);
        }
        if (mg->tool_call_id)
            cJSON_AddStringToObject(o, "tool_call_id", mg->tool_call_id);
        if (mg->name)
            cJSON_AddStringToObject(o, "name", mg->name);
    }
    *out = arr;
    return AIR_OK;
}
