/*
 * openai.c - the OpenAI routes: POST /v1/chat/completions, POST
 * /v1/completions, GET /v1/models (and /v1/models/ID).
 *
 * Streamed answers are server-sent events: one "data: {chunk}\n\n" per
 * piece of text, a last chunk with finish_reason, a usage chunk when
 * stream_options.include_usage is set, then "data: [DONE]\n\n".
 */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

static const char *finish_of(const air_result *r) {
    return strcmp(r->finish_reason, "length") == 0       ? "length"
           : strcmp(r->finish_reason, "tool_calls") == 0 ? "tool_calls"
                                                         : "stop";
}

static void add_usage(cJSON *o, const air_result *r) {
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", r->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", r->completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", r->prompt_tokens + r->completion_tokens);
}

/* The fields every OpenAI answer starts with. */
static cJSON *head(job *j, const char *object) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", j->model->id);
    cJSON_AddStringToObject(o, "system_fingerprint", "airllm");
    return o;
}

static cJSON *chunk_head(job *j) {
    return head(j, j->chat ? "chat.completion.chunk" : "text_completion");
}

/* One choice of a chunk: delta (chat) or text (completion). */
static void add_choice(job *j, cJSON *o, const char *role, const char *text, const char *finish) {
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    if (j->chat) {
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        if (role)
            cJSON_AddStringToObject(d, "role", role);
        if (text)
            cJSON_AddStringToObject(d, "content", text);
    } else {
        cJSON_AddStringToObject(ch, "text", text ? text : "");
    }
    cJSON_AddNullToObject(ch, "logprobs");
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
}

static void sse(air_strbuf *wire, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    air_sb_puts(wire, "data: ");
    air_sb_puts(wire, s);
    air_sb_puts(wire, "\n\n");
    free(s);
    cJSON_Delete(o);
}

static void first_chunk(job *j, air_strbuf *wire) {
    if (j->started)
        return;
    j->started = 1;
    if (!j->chat)
        return;
    cJSON *o = chunk_head(j);
    add_choice(j, o, "assistant", "", NULL);
    sse(wire, o);
}

static void stream_piece(job *j, const char *text, air_strbuf *wire) {
    first_chunk(j, wire);
    cJSON *o = chunk_head(j);
    add_choice(j, o, NULL, text, NULL);
    sse(wire, o);
}

/* A complete tool call as OpenAI streams one: a delta with the call's index,
 * id, type and function name and arguments (here all in one chunk). */
static void stream_call(job *j, const cJSON *call, air_strbuf *wire) {
    first_chunk(j, wire);
    cJSON *o = chunk_head(j);
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON *d = cJSON_AddObjectToObject(ch, "delta");
    cJSON *tc = cJSON_CreateObject();
    cJSON_AddNumberToObject(tc, "index",
                            cJSON_GetObjectItemCaseSensitive(call, "index")->valuedouble);
    cJSON_AddStringToObject(tc, "id",
                            cJSON_GetObjectItemCaseSensitive(call, "id")->valuestring);
    cJSON_AddStringToObject(tc, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(tc, "function");
    cJSON_AddStringToObject(fn, "name",
                            cJSON_GetObjectItemCaseSensitive(call, "name")->valuestring);
    cJSON_AddStringToObject(fn, "arguments",
                            cJSON_GetObjectItemCaseSensitive(call, "arguments")->valuestring);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(d, "tool_calls"), tc);
    cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
    sse(wire, o);
}

static void stream_end(job *j, air_strbuf *wire) {
    first_chunk(j, wire);
    if (j->status) {
        cJSON *o = cJSON_CreateObject();
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(e, "message", j->error);
        cJSON_AddStringToObject(e, "type", "server_error");
        sse(wire, o);
    } else {
        cJSON *o = chunk_head(j);
        add_choice(j, o, NULL, j->chat ? NULL : "", finish_of(&j->result));
        sse(wire, o);
        if (j->include_usage) {
            o = chunk_head(j);
            cJSON_AddArrayToObject(o, "choices");
            add_usage(o, &j->result);
            sse(wire, o);
        }
    }
    air_sb_puts(wire, "data: [DONE]\n\n");
}

static char *full_body(job *j) {
    cJSON *o = head(j, j->chat ? "chat.completion" : "text_completion");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    if (j->chat) {
        cJSON *msg = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON *calls = j->result.tool_calls ? cJSON_Parse(j->result.tool_calls) : NULL;
        if (calls && !*j->result.text)
            cJSON_AddNullToObject(msg, "content"); /* only calls */
        else
            cJSON_AddStringToObject(msg, "content", j->result.text);
        if (calls)
            cJSON_AddItemToObject(msg, "tool_calls", calls);
    } else {
        cJSON_AddStringToObject(ch, "text", j->result.text);
    }
    cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddStringToObject(ch, "finish_reason", finish_of(&j->result));
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
    add_usage(o, &j->result);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static const job_format k_openai = {stream_piece, stream_call, stream_end, full_body,
                                    "text/event-stream"};

/* Sampling options common to both completion routes; NULL or the error. */
static const char *parse_params(const cJSON *req, air_gen_params *gp, int *stream, int *usage,
                                cJSON **keep) {
    double d;
    int k;
    gp->max_tokens = 256;
    if ((k = srv_num(req, "max_completion_tokens", &d)) || (k = srv_num(req, "max_tokens", &d))) {
        if (k < 0 || d < 1 || d > 1e7)
            return "\"max_tokens\" must be a positive integer";
        gp->max_tokens = (int)d;
    }
    const char *err = srv_parse_sampling(req, gp);
    if (err)
        return err;
    if ((k = srv_num(req, "n", &d)) && (k < 0 || d != 1))
        return "only \"n\": 1 is supported";
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(req, "stream");
    if (st && !cJSON_IsNull(st) && !cJSON_IsBool(st))
        return "\"stream\" must be a boolean";
    *stream = cJSON_IsTrue(st);
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
    *usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(req, "response_format");
    if (rf && !cJSON_IsNull(rf)) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(rf, "type");
        if (!cJSON_IsString(t))
            return "\"response_format\" needs a \"type\"";
        if (!strcmp(t->valuestring, "json_object")) {
            gp->json = 1;
        } else if (!strcmp(t->valuestring, "json_schema")) {
            const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
            const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
            if (!cJSON_IsObject(schema))
                return "\"response_format\" json_schema needs \"json_schema\": {\"schema\": "
                       "{...}}";
            if (!*keep)
                *keep = cJSON_CreateArray();
            gp->json = 1;
            gp->json_schema = srv_keep_print(*keep, schema);
        } else if (strcmp(t->valuestring, "text"))
            return "\"response_format\" type must be text, json_object or json_schema";
    }
    return NULL;
}

static int completion(const srv_req *r, int chat) {
    int ret;
    srv_parsed P = {0};
    if (srv_parse_request(r, &P, &ret))
        return ret;
    const cJSON *req = P.body;
    const char *name = P.model_name;
    srv_model *m = P.model;
    const char *raw = NULL;
    cJSON *keep = NULL; /* strings gp borrows */
    if (!m) {
        ret = srv_send_error(r, MHD_HTTP_NOT_FOUND, "invalid_request_error",
                             "the model '%s' does not exist (GET /v1/models lists the models "
                             "served)",
                             name);
        goto out;
    }
    air_gen_params gp = air_gen_default_params();
    int stream = 0, usage = 0;
    const char *err = parse_params(req, &gp, &stream, &usage, &keep);
    if (!err)
        err = srv_parse_stop(cJSON_GetObjectItemCaseSensitive(req, "stop"), &P.stops, &gp.n_stop);
    gp.stop = P.stops;
    if (!err && chat) {
        err = srv_parse_messages(cJSON_GetObjectItemCaseSensitive(req, "messages"), &P.msgs, &P.n,
                                 &P.keep);
        if (!err)
            err = srv_parse_tools(req, &gp, &keep);
    } else if (!err) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "prompt");
        if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1)
            p = cJSON_GetArrayItem(p, 0);
        if (!cJSON_IsString(p))
            err = "\"prompt\" must be a string (or a list of one string)";
        else
            raw = p->valuestring;
    }
    if (err) {
        ret = srv_send_error(r, MHD_HTTP_BAD_REQUEST, "invalid_request_error", "%s", err);
        goto out;
    }
    job proto;
    memset(&proto, 0, sizeof proto);
    snprintf(proto.id, sizeof proto.id, "%s-%ld", chat ? "chatcmpl" : "cmpl",
             atomic_fetch_add(&r->srv->next_id, 1));
    proto.created = (long)time(NULL);
    proto.t_start = srv_now();
    proto.chat = chat;
    proto.include_usage = usage;
    ret = srv_run_job(r, m, P.msgs, P.n, raw, &gp, stream, &k_openai, &proto);
out:
    cJSON_Delete(keep);
    srv_parsed_free(&P);
    return ret;
}

static cJSON *model_obj(const srv_model *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddNumberToObject(o, "created", 0);
    cJSON_AddStringToObject(o, "owned_by", "airllm");
    return o;
}

static int models(const srv_req *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *a = cJSON_AddArrayToObject(o, "data");
    for (int i = 0; i < r->srv->n_models; i++)
        cJSON_AddItemToArray(a, model_obj(&r->srv->models[i]));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return srv_send_json(r, MHD_HTTP_OK, s);
}

int openai_route(const srv_req *r, int *handled) {
    *handled = 1;
    int post = strcmp(r->method, "POST") == 0, get = strcmp(r->method, "GET") == 0;
    if (!strcmp(r->url, "/v1/chat/completions") || !strcmp(r->url, "/chat/completions") ||
        !strcmp(r->url, "/v1/completions") || !strcmp(r->url, "/completions")) {
        if (!post)
            return srv_send_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid_request_error",
                                  "%s takes POST", r->url);
        return completion(r, strstr(r->url, "chat/") != NULL);
    }
    if (!strcmp(r->url, "/v1/models") || !strcmp(r->url, "/models")) {
        if (!get)
            return srv_send_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid_request_error",
                                  "%s takes GET", r->url);
        return models(r);
    }
    if (!strncmp(r->url, "/v1/models/", 11) && get) {
        srv_model *m = srv_find_model(r->srv, r->url + 11);
        if (!m || !r->url[11])
            return srv_send_error(r, MHD_HTTP_NOT_FOUND, "invalid_request_error",
                                  "the model '%s' does not exist", r->url + 11);
        cJSON *o = model_obj(m);
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        return srv_send_json(r, MHD_HTTP_OK, s);
    }
    *handled = 0;
    return MHD_NO;
}
