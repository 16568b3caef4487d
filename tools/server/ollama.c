/*
 * ollama.c - the Ollama routes: POST /api/chat, POST /api/generate,
 * GET /api/tags, POST /api/show, GET /api/version.
 *
 * Answers stream by default as NDJSON: one JSON object per line and per
 * piece of text ({"message": {...}} for chat, {"response": "..."} for
 * generate, "done": false), then a final object with "done": true, the
 * done_reason, token counts and durations in nanoseconds.
 */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

/* RFC 3339 time of now, as Ollama writes created_at. */
static void add_created_at(cJSON *o) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char buf[64], out[80];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, sizeof out, "%s.%09ldZ", buf, ts.tv_nsec);
    cJSON_AddStringToObject(o, "created_at", out);
}

static cJSON *record(job *j, const char *text) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", j->model->id);
    add_created_at(o);
    if (j->chat) {
        cJSON *m = cJSON_AddObjectToObject(o, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", text);
    } else {
        cJSON_AddStringToObject(o, "response", text);
    }
    return o;
}

/* Ollama's form of a call: {"function": {"name", "arguments": object}}. */
static cJSON *ollama_call(const char *name, const char *args) {
    cJSON *c = cJSON_CreateObject();
    cJSON *fn = cJSON_AddObjectToObject(c, "function");
    cJSON_AddStringToObject(fn, "name", name);
    cJSON *a = cJSON_Parse(args);
    cJSON_AddItemToObject(fn, "arguments", a ? a : cJSON_CreateObject());
    return c;
}

static void add_final(job *j, cJSON *o) {
    const air_result *r = &j->result;
    cJSON_AddBoolToObject(o, "done", 1);
    cJSON_AddStringToObject(o, "done_reason",
                            strcmp(r->finish_reason, "length") == 0 ? "length" : "stop");
    double total = srv_now() - j->t_start;
    cJSON_AddNumberToObject(o, "total_duration", (double)(int64_t)(total * 1e9));
    cJSON_AddNumberToObject(o, "load_duration", 0);
    cJSON_AddNumberToObject(o, "prompt_eval_count", r->prompt_tokens);
    cJSON_AddNumberToObject(o, "prompt_eval_duration", (double)(int64_t)(r->prefill_seconds * 1e9));
    cJSON_AddNumberToObject(o, "eval_count", r->completion_tokens);
    cJSON_AddNumberToObject(o, "eval_duration", (double)(int64_t)(r->decode_seconds * 1e9));
}

static void line(air_strbuf *wire, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    air_sb_puts(wire, s);
    air_sb_puts(wire, "\n");
    free(s);
    cJSON_Delete(o);
}

static void stream_piece(job *j, const char *text, air_strbuf *wire) {
    cJSON *o = record(j, text);
    cJSON_AddBoolToObject(o, "done", 0);
    line(wire, o);
}

/* A complete tool call: a record whose message carries it. */
static void stream_call(job *j, const cJSON *call, air_strbuf *wire) {
    cJSON *o = record(j, "");
    cJSON *calls = cJSON_AddArrayToObject(cJSON_GetObjectItemCaseSensitive(o, "message"),
                                          "tool_calls");
    cJSON_AddItemToArray(calls,
                         ollama_call(cJSON_GetObjectItemCaseSensitive(call, "name")->valuestring,
                                     cJSON_GetObjectItemCaseSensitive(call, "arguments")
                                         ->valuestring));
    cJSON_AddBoolToObject(o, "done", 0);
    line(wire, o);
}

static void stream_end(job *j, air_strbuf *wire) {
    if (j->status) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", j->error);
        line(wire, o);
        return;
    }
    cJSON *o = record(j, "");
    add_final(j, o);
    line(wire, o);
}

static char *full_body(job *j) {
    cJSON *o = record(j, j->result.text);
    cJSON *calls = j->result.tool_calls ? cJSON_Parse(j->result.tool_calls) : NULL;
    if (j->chat && cJSON_GetArraySize(calls) > 0) {
        cJSON *arr = cJSON_AddArrayToObject(cJSON_GetObjectItemCaseSensitive(o, "message"),
                                            "tool_calls");
        const cJSON *c;
        cJSON_ArrayForEach(c, calls) {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
            cJSON_AddItemToArray(arr, ollama_call(
                cJSON_GetObjectItemCaseSensitive(fn, "name")->valuestring,
                cJSON_GetObjectItemCaseSensitive(fn, "arguments")->valuestring));
        }
    }
    cJSON_Delete(calls);
    add_final(j, o);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static const job_format k_ollama = {stream_piece, stream_call, stream_end, full_body,
                                    "application/x-ndjson"};

static const char *parse_options(const cJSON *opt, air_gen_params *gp, const char ***stops) {
    if (!opt || cJSON_IsNull(opt))
        return NULL;
    if (!cJSON_IsObject(opt))
        return "\"options\" must be an object";
    const char *err = srv_parse_sampling(opt, gp);
    if (err)
        return err;
    double d;
    int k;
    if ((k = srv_num(opt, "num_predict", &d))) {
        if (k < 0 || d == 0 || d < -2 || d > 1e7)
            return "options.num_predict must be a positive integer, -1 or -2";
        /* -1 (no limit) and -2 (fill the context): until the context is full */
        gp->max_tokens = d < 0 ? 0x7fffffff : (int)d;
    }
    if ((k = srv_num(opt, "num_ctx", &d))) {
        if (k < 0 || d < 1 || d > 1e9)
            return "options.num_ctx must be a positive integer";
        gp->max_seq_len = (int)d; /* the scheduler caps it at --ctx */
    }
    return srv_parse_stop(cJSON_GetObjectItemCaseSensitive(opt, "stop"), stops, &gp->n_stop);
}

static int generate(const srv_req *r, int chat) {
    int ret;
    srv_parsed P = {0};
    if (srv_parse_request(r, &P, &ret))
        return ret;
    const cJSON *req = P.body;
    const char *name = P.model_name;
    srv_model *m = P.model;
    air_message two[2];
    int n = 0;
    const char *raw = NULL;
    cJSON *keep = NULL;
    if (!m) {
        ret = srv_send_error(r, MHD_HTTP_NOT_FOUND, "not_found",
                             "model '%s' not found (GET /api/tags lists the models served)",
                             name ? name : "");
        goto out;
    }
    air_gen_params gp = air_gen_default_params();
    keep = cJSON_CreateArray(); /* strings gp borrows */
    const char *err =
        parse_options(cJSON_GetObjectItemCaseSensitive(req, "options"), &gp, &P.stops);
    gp.stop = P.stops;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(req, "stream");
    if (!err && st && !cJSON_IsNull(st) && !cJSON_IsBool(st))
        err = "\"stream\" must be a boolean";
    int stream = !cJSON_IsFalse(st);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(req, "format");
    if (!err && fmt && !cJSON_IsNull(fmt)) {
        if (cJSON_IsObject(fmt)) {
            gp.json = 1; /* constrained by the schema */
            gp.json_schema = srv_keep_print(keep, fmt);
        } else if (cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "json")) {
            gp.json = 1;
        } else if (!cJSON_IsString(fmt) || *fmt->valuestring)
            err = "\"format\" must be \"json\" or a JSON schema object";
    }
    if (!err && chat) {
        err = srv_parse_messages(cJSON_GetObjectItemCaseSensitive(req, "messages"), &P.msgs, &P.n,
                                 &P.keep);
        /* an Ollama message's content is a string, "" when absent (also next
         * to tool calls) */
        for (int i = 0; !err && i < P.n; i++)
            if (!P.msgs[i].content)
                P.msgs[i].content = "";
        if (!err)
            err = srv_parse_tools(req, &gp, &keep);
    } else if (!err) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "prompt");
        const cJSON *sys = cJSON_GetObjectItemCaseSensitive(req, "system");
        if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(req, "images")) > 0)
            err = "images are not supported: the models served are text-only";
        else if (!cJSON_IsString(p))
            err = "\"prompt\" must be a string";
        else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "raw")))
            raw = p->valuestring;
        else {
            if (cJSON_IsString(sys) && *sys->valuestring)
                two[n++] = (air_message){.role = "system", .content = sys->valuestring};
            two[n++] = (air_message){.role = "user", .content = p->valuestring};
        }
    }
    if (err) {
        ret = srv_send_error(r, MHD_HTTP_BAD_REQUEST, "invalid_request_error", "%s", err);
        goto out;
    }
    job proto;
    memset(&proto, 0, sizeof proto);
    proto.t_start = srv_now();
    proto.chat = chat;
    ret =
        srv_run_job(r, m, chat ? P.msgs : two, chat ? P.n : n, raw, &gp, stream, &k_ollama, &proto);
out:
    cJSON_Delete(keep);
    srv_parsed_free(&P);
    return ret;
}

static cJSON *details(const srv_model *m) {
    cJSON *d = cJSON_CreateObject();
    size_t len = strlen(m->info.name);
    int gguf = len > 5 && strcmp(m->info.name + len - 5, ".gguf") == 0;
    cJSON_AddStringToObject(d, "parent_model", "");
    cJSON_AddStringToObject(d, "format", gguf ? "gguf" : "safetensors");
    cJSON_AddStringToObject(d, "family", m->info.arch);
    cJSON *f = cJSON_AddArrayToObject(d, "families");
    cJSON_AddItemToArray(f, cJSON_CreateString(m->info.arch));
    cJSON_AddStringToObject(d, "parameter_size", "");
    cJSON_AddStringToObject(d, "quantization_level", m->info.compression);
    return d;
}

static int tags(const srv_req *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "models");
    for (int i = 0; i < r->srv->n_models; i++) {
        const srv_model *m = &r->srv->models[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", m->id);
        cJSON_AddStringToObject(e, "model", m->id);
        cJSON_AddStringToObject(e, "modified_at", "1970-01-01T00:00:00Z");
        cJSON_AddNumberToObject(e, "size", (double)m->info.store_bytes);
        cJSON_AddStringToObject(e, "digest", "");
        cJSON_AddItemToObject(e, "details", details(m));
        cJSON_AddItemToArray(a, e);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return srv_send_json(r, MHD_HTTP_OK, s);
}

static int show(const srv_req *r) {
    int ret;
    cJSON *req = srv_parse_body(r, &ret);
    if (!req)
        return ret;
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(req, "model");
    if (!cJSON_IsString(jm))
        jm = cJSON_GetObjectItemCaseSensitive(req, "name");
    const char *name = cJSON_IsString(jm) ? jm->valuestring : "";
    srv_model *m = *name ? srv_find_model(r->srv, name) : NULL;
    if (!m) {
        ret = srv_send_error(r, MHD_HTTP_NOT_FOUND, "not_found", "model '%s' not found", name);
        cJSON_Delete(req);
        return ret;
    }
    cJSON_Delete(req);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "modelfile", "");
    cJSON_AddStringToObject(o, "parameters", "");
    cJSON_AddStringToObject(o, "template", "");
    cJSON_AddItemToObject(o, "details", details(m));
    cJSON *mi = cJSON_AddObjectToObject(o, "model_info");
    cJSON_AddStringToObject(mi, "general.architecture", m->info.arch);
    char key[96];
    snprintf(key, sizeof key, "%s.context_length", m->info.arch);
    cJSON_AddNumberToObject(mi, key, r->srv->ctx);
    snprintf(key, sizeof key, "%s.block_count", m->info.arch);
    cJSON_AddNumberToObject(mi, key, m->info.n_layer);
    snprintf(key, sizeof key, "%s.embedding_length", m->info.arch);
    cJSON_AddNumberToObject(mi, key, m->info.n_embd);
    cJSON *caps = cJSON_AddArrayToObject(o, "capabilities");
    cJSON_AddItemToArray(caps, cJSON_CreateString("completion"));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return srv_send_json(r, MHD_HTTP_OK, s);
}

int ollama_route(const srv_req *r, int *handled) {
    *handled = 1;
    int post = strcmp(r->method, "POST") == 0, get = strcmp(r->method, "GET") == 0;
    const char *u = r->url;
    int want_post =
        !strcmp(u, "/api/chat") || !strcmp(u, "/api/generate") || !strcmp(u, "/api/show");
    int want_get = !strcmp(u, "/api/tags") || !strcmp(u, "/api/version");
    if ((want_post && !post) || (want_get && !get))
        return srv_send_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid_request_error",
                              "%s takes %s", u, want_post ? "POST" : "GET");
    if (!strcmp(u, "/api/chat"))
        return generate(r, 1);
    if (!strcmp(u, "/api/generate"))
        return generate(r, 0);
    if (!strcmp(u, "/api/show"))
        return show(r);
    if (!strcmp(u, "/api/tags"))
        return tags(r);
    if (!strcmp(u, "/api/version")) {
        char buf[64];
        snprintf(buf, sizeof buf, "{\"version\":\"%s\"}", air_version());
        return srv_send_json(r, MHD_HTTP_OK, strdup(buf));
    }
    *handled = 0;
    return MHD_NO;
}
