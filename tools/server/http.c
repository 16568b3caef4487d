/*
 * http.c - the HTTP glue of `airllm serve` (libmicrohttpd, one thread per
 * connection): body collection under a size limit, the API key, routing to
 * the protocol files, and jobs.
 *
 * A job's text arrives from the scheduler thread through job_on_text into
 * job->queue (a memory append under the job's mutex; never a socket). The
 * connection thread waits on the job's condition variable with a timeout,
 * formats what arrived and writes it; between waits it looks at the socket,
 * and a client that closed it gets its request cancelled, so the scheduler
 * drops the sequence at its next sweep.
 */
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "server.h"

#define WAIT_SLICE_MS 100

double srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------------------
 * small parsing helpers shared by both protocols
 * ------------------------------------------------------------------------- */

int srv_num(const cJSON *o, const char *k, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v))
        return -1;
    *out = v->valuedouble;
    return 1;
}

const char *srv_parse_messages(const cJSON *arr, air_message **out, int *n, cJSON **keep) {
    *out = NULL;
    *n = 0;
    *keep = NULL;
    if (!cJSON_IsArray(arr))
        return "\"messages\" must be an array";
    int cnt = cJSON_GetArraySize(arr);
    if (cnt == 0)
        return "\"messages\" is empty";
    air_message *m = calloc((size_t)cnt, sizeof *m);
    cJSON *joined = cJSON_CreateArray();
    const cJSON *e;
    int k = 0;
    const char *err = NULL;
    cJSON_ArrayForEach(e, arr) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsString(role)) {
            err = "every message needs a \"role\" string";
            break;
        }
        const char *r = role->valuestring;
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") &&
            strcmp(r, "tool") && strcmp(r, "developer")) {
            err = "a message role must be system, developer, user, assistant or tool";
            break;
        }
        if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(e, "images")) > 0) {
            err = "images are not supported: the models served are text-only";
            break;
        }
        m[k].role = strcmp(r, "developer") == 0 ? "system" : r;
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(e, "tool_calls");
        const cJSON *call_id = cJSON_GetObjectItemCaseSensitive(e, "tool_call_id");
        const cJSON *fname = cJSON_GetObjectItemCaseSensitive(e, "name");
        if (!cJSON_IsString(fname)) /* Ollama's name of the function a tool message answers */
            fname = cJSON_GetObjectItemCaseSensitive(e, "tool_name");
        if (calls && !cJSON_IsNull(calls)) {
            if (!cJSON_IsArray(calls)) {
                err = "a message's \"tool_calls\" must be an array";
                break;
            }
            if (cJSON_GetArraySize(calls) > 0)
                m[k].tool_calls = srv_keep_print(joined, calls);
        }
        if (cJSON_IsString(call_id))
            m[k].tool_call_id = call_id->valuestring;
        if (cJSON_IsString(fname))
            m[k].name = fname->valuestring;
        if ((!content || cJSON_IsNull(content)) && m[k].tool_calls) {
            m[k].content = NULL; /* the template sees null next to the calls */
        } else if (!content || cJSON_IsNull(content)) {
            m[k].content = "";
        } else if (cJSON_IsString(content)) {
            m[k].content = content->valuestring;
        } else if (cJSON_IsArray(content)) {
            air_strbuf sb = {0};
            const cJSON *part;
            cJSON_ArrayForEach(part, content) {
                const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
                const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") ||
                    !cJSON_IsString(text)) {
                    err = "only text content parts ({\"type\": \"text\", \"text\": ...}) are "
                          "supported: the models served are text-only";
                    break;
                }
                air_sb_puts(&sb, text->valuestring);
            }
            cJSON *s = cJSON_CreateString(sb.data ? sb.data : "");
            air_sb_free(&sb);
            cJSON_AddItemToArray(joined, s);
            m[k].content = s->valuestring;
            if (err)
                break;
        } else {
            err = "a message \"content\" must be a string, null or a list of text parts";
            break;
        }
        k++;
    }
    if (err) {
        free(m);
        cJSON_Delete(joined);
        return err;
    }
    *out = m;
    *n = k;
    *keep = joined;
    return NULL;
}

const char *srv_parse_sampling(const cJSON *o, air_gen_params *gp) {
    static const struct {
        const char *key;
        double lo, hi;
        int lo_open;
        const char *err;
    } k_fields[] = {
        {"temperature", 0, 2, 0, "\"temperature\" must be a number from 0 to 2"},
        {"top_p", 0, 1, 1, "\"top_p\" must be a number in (0, 1]"},
        {"top_k", 0, 1e9, 0, "\"top_k\" must be a non-negative integer"},
        {"min_p", 0, 1, 0, "\"min_p\" must be a number from 0 to 1"},
        {"repeat_penalty", 0, 1e9, 1, "\"repeat_penalty\" must be a positive number"},
        {"seed", -1e300, 1e300, 0, "\"seed\" must be an integer"},
    };
    for (size_t i = 0; i < sizeof k_fields / sizeof k_fields[0]; i++) {
        double d;
        int k = srv_num(o, k_fields[i].key, &d);
        if (!k)
            continue;
        if (k < 0 || d < k_fields[i].lo || d > k_fields[i].hi ||
            (k_fields[i].lo_open && d == k_fields[i].lo))
            return k_fields[i].err;
        switch (i) {
        case 0:
            gp->temperature = (float)d;
            break;
        case 1:
            gp->top_p = (float)d;
            break;
        case 2:
            gp->top_k = (int)d;
            break;
        case 3:
            gp->min_p = (float)d;
            break;
        case 4:
            gp->repeat_penalty = (float)d;
            break;
        default:
            gp->seed = (uint64_t)(int64_t)d;
            break;
        }
    }
    return NULL;
}

const char *srv_keep_print(cJSON *keep, const cJSON *v) {
    char *txt = cJSON_PrintUnformatted(v);
    cJSON *str = txt ? cJSON_CreateString(txt) : NULL;
    free(txt);
    if (!str)
        return NULL;
    cJSON_AddItemToArray(keep, str);
    return str->valuestring;
}

const char *srv_parse_tools(const cJSON *req, air_gen_params *gp, cJSON **keep) {
    if (!*keep)
        *keep = cJSON_CreateArray();
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(req, "tools");
    if (tools && !cJSON_IsNull(tools)) {
        if (!cJSON_IsArray(tools))
            return "\"tools\" must be an array of {\"type\": \"function\", \"function\": "
                   "{...}}";
        if (cJSON_GetArraySize(tools) > 0)
            gp->tools = srv_keep_print(*keep, tools);
    }
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(req, "tool_choice");
    if (cJSON_IsString(tc))
        gp->tool_choice = tc->valuestring;
    else if (cJSON_IsObject(tc))
        gp->tool_choice = srv_keep_print(*keep, tc);
    else if (tc && !cJSON_IsNull(tc))
        return "\"tool_choice\" must be \"auto\", \"none\", \"required\" or "
               "{\"type\": \"function\", \"function\": {\"name\": ...}}";
    return NULL;
}

void srv_parsed_free(srv_parsed *p) {
    free(p->msgs);
    free(p->stops);
    cJSON_Delete(p->keep);
    cJSON_Delete(p->body);
    memset(p, 0, sizeof *p);
}

cJSON *srv_parse_body(const srv_req *r, int *ret) {
    cJSON *req = cJSON_ParseWithLength(r->body, r->body_len);
    if (cJSON_IsObject(req))
        return req;
    cJSON_Delete(req);
    *ret = srv_send_error(r, MHD_HTTP_BAD_REQUEST, "invalid_request_error",
                          "the body is not a JSON object");
    return NULL;
}

int srv_parse_request(const srv_req *r, srv_parsed *p, int *ret) {
    memset(p, 0, sizeof *p);
    if (!(p->body = srv_parse_body(r, ret)))
        return -1;
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(p->body, "model");
    p->model_name = cJSON_IsString(jm) ? jm->valuestring : NULL;
    p->model = srv_find_model(r->srv, p->model_name);
    return 0;
}

const char *srv_parse_stop(const cJSON *v, const char ***out, int *n) {
    *out = NULL;
    *n = 0;
    if (!v || cJSON_IsNull(v))
        return NULL;
    if (cJSON_IsString(v)) {
        *out = calloc(1, sizeof **out);
        (*out)[(*n)++] = v->valuestring;
        return NULL;
    }
    if (!cJSON_IsArray(v))
        return "\"stop\" must be a string or a list of strings";
    int cnt = cJSON_GetArraySize(v);
    if (cnt > 16)
        return "at most 16 stop strings";
    *out = calloc((size_t)cnt + 1, sizeof **out);
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e)) {
            free(*out);
            *out = NULL;
            *n = 0;
            return "\"stop\" must be a string or a list of strings";
        }
        (*out)[(*n)++] = e->valuestring;
    }
    return NULL;
}

srv_model *srv_find_model(server *s, const char *name) {
    if (!name || !*name)
        return s->n_models ? &s->models[0] : NULL;
    size_t len = strlen(name);
    if (len > 7 && strcmp(name + len - 7, ":latest") == 0)
        len -= 7; /* Ollama's default tag */
    for (int i = 0; i < s->n_models; i++) {
        const char *id = s->models[i].id;
        if ((strlen(id) == len && strncmp(id, name, len) == 0) ||
            strcmp(s->models[i].info.name, name) == 0)
            return &s->models[i];
    }
    return NULL;
}

unsigned srv_status_of(air_status st) {
    switch (st) {
    case AIR_ERR_INVALID_ARG:
    case AIR_ERR_FORMAT:
        return MHD_HTTP_BAD_REQUEST;
    case AIR_ERR_LIMIT:
        /* a full queue is the server's state; a long prompt is the request's */
        return strstr(air_last_error(), "busy") ? MHD_HTTP_SERVICE_UNAVAILABLE
                                                : MHD_HTTP_BAD_REQUEST;
    case AIR_ERR_ABORTED:
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    case AIR_ERR_UNSUPPORTED:
        return MHD_HTTP_BAD_REQUEST;
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

/* ---------------------------------------------------------------------------
 * responses
 * ------------------------------------------------------------------------- */

static int is_ollama(const char *url) {
    return strncmp(url, "/api/", 5) == 0;
}

int srv_send_json(const srv_req *r, unsigned status, char *body) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    int ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

int srv_send_error(const srv_req *r, unsigned status, const char *type, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    if (is_ollama(r->url)) {
        cJSON_AddStringToObject(o, "error", msg);
    } else {
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(e, "message", msg);
        cJSON_AddStringToObject(e, "type", type);
        cJSON_AddNullToObject(e, "param");
        cJSON_AddNullToObject(e, "code");
    }
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return srv_send_json(r, status, body);
}

/* ---------------------------------------------------------------------------
 * jobs
 * ------------------------------------------------------------------------- */

static void job_unref(job *j) {
    if (atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    air_request_free(j->req);
    air_sb_free(&j->queue);
    air_sb_free(&j->wire);
    free(j->error);
    free(j->result.text);
    free(j->result.tool_calls);
    cJSON_Delete(j->calls);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* Scheduler thread: a new piece of text. */
static int job_on_text(void *user, const char *piece) {
    job *j = user;
    pthread_mutex_lock(&j->mu);
    air_sb_puts(&j->queue, piece);
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return 0;
}

/* Scheduler thread: a complete tool call. */
static int job_on_tool_call(void *user, int index, const char *id, const char *name,
                            const char *args) {
    job *j = user;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", index);
    cJSON_AddStringToObject(c, "id", id);
    cJSON_AddStringToObject(c, "name", name);
    cJSON_AddStringToObject(c, "arguments", args);
    pthread_mutex_lock(&j->mu);
    if (!j->calls)
        j->calls = cJSON_CreateArray();
    cJSON_AddItemToArray(j->calls, c);
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return 0;
}

/* Scheduler thread: the end. */
static void job_on_done(void *user, air_status st, const char *error, const air_result *res) {
    job *j = user;
    pthread_mutex_lock(&j->mu);
    j->status = st;
    if (st) {
        j->error = strdup(error ? error : air_strerror(st));
    } else {
        j->result = *res;
        j->result.text = strdup(res->text);
        j->result.tool_calls = res->tool_calls ? strdup(res->tool_calls) : NULL;
        j->result.raw_text = NULL;
    }
    j->done = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* 1 when the peer closed its side of the connection. */
static int peer_closed(int fd) {
    if (fd < 0)
        return 0;
    struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0)
        return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
        return 1;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0;
}

/* Waits up to one slice for news; moves queued text to *text and complete
 * tool calls to *calls (NULL or an array; caller frees both).
 * Returns 1 when the job is done, -1 when the client left or the server
 * stops (the request is then cancelled), 0 otherwise. */
static int job_wait(job *j, char **text, cJSON **calls) {
    *text = NULL;
    *calls = NULL;
    pthread_mutex_lock(&j->mu);
    if (!j->done && j->queue.len == 0 && !j->calls) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WAIT_SLICE_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    }
    if (j->queue.len)
        *text = air_sb_take(&j->queue);
    *calls = j->calls;
    j->calls = NULL;
    int done = j->done;
    pthread_mutex_unlock(&j->mu);
    if (!done && (peer_closed(j->fd) || atomic_load(&j->srv->stopping))) {
        air_request_cancel(j->req);
        free(*text);
        *text = NULL;
        cJSON_Delete(*calls);
        *calls = NULL;
        return -1;
    }
    return done;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    job *j = cls;
    for (;;) {
        if (j->wire_off < j->wire.len) {
            size_t n = j->wire.len - j->wire_off;
            if (n > max)
                n = max;
            memcpy(buf, j->wire.data + j->wire_off, n);
            j->wire_off += n;
            return (ssize_t)n;
        }
        j->wire.len = 0;
        j->wire_off = 0;
        if (j->wire_end)
            return MHD_CONTENT_READER_END_OF_STREAM;
        char *text = NULL;
        cJSON *calls = NULL;
        int w = job_wait(j, &text, &calls);
        if (w < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (text && *text)
            j->fmt->piece(j, text, &j->wire);
        free(text);
        const cJSON *c;
        cJSON_ArrayForEach(c, calls)
            j->fmt->call(j, c, &j->wire);
        cJSON_Delete(calls);
        if (w == 1) {
            j->fmt->end(j, &j->wire);
            j->wire_end = 1;
        }
    }
}

static void stream_free(void *cls) {
    job_unref(cls);
}

int srv_run_job(const srv_req *r, srv_model *m, const air_message *msgs, int n, const char *raw,
                air_gen_params *gp, int stream, const job_format *fmt, job *proto) {
    job *j = calloc(1, sizeof *j);
    if (!j)
        return MHD_NO;
    memcpy(j->id, proto->id, sizeof j->id);
    j->created = proto->created;
    j->t_start = proto->t_start;
    j->chat = proto->chat;
    j->include_usage = proto->include_usage;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    atomic_init(&j->refs, 1);
    j->srv = r->srv;
    j->model = m;
    j->fmt = fmt;
    j->stream = stream;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    gp->on_text = job_on_text;
    gp->on_tool_call = job_on_tool_call;
    gp->user = j;
    air_status st = air_sched_submit(m->sched, msgs, n, raw, gp, job_on_done, &j->req);
    if (st) {
        unsigned code = srv_status_of(st);
        job_unref(j);
        return srv_send_error(
            r, code, code == MHD_HTTP_SERVICE_UNAVAILABLE ? "server_busy" : "invalid_request_error",
            "%s", air_last_error());
    }
    if (stream) {
        atomic_fetch_add(&j->refs, 1); /* the response's */
        struct MHD_Response *resp = MHD_create_response_from_callback(
            MHD_SIZE_UNKNOWN, 8192, stream_reader, j, stream_free);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, fmt->content_type);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        int ret = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        job_unref(j);
        return ret;
    }
    int w;
    for (;;) {
        char *text = NULL;
        cJSON *calls = NULL;
        w = job_wait(j, &text, &calls);
        free(text); /* the full text and the calls come with the result */
        cJSON_Delete(calls);
        if (w)
            break;
    }
    int ret;
    if (w < 0) {
        ret = srv_send_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "server_error",
                             "the request was cancelled");
    } else if (j->status) {
        ret = srv_send_error(r,
                             j->status == AIR_ERR_ABORTED ? MHD_HTTP_SERVICE_UNAVAILABLE
                                                          : MHD_HTTP_INTERNAL_SERVER_ERROR,
                             "server_error", "%s", j->error);
    } else {
        ret = srv_send_json(r, MHD_HTTP_OK, fmt->body(j));
    }
    job_unref(j);
    return ret;
}

/* ---------------------------------------------------------------------------
 * the daemon
 * ------------------------------------------------------------------------- */

typedef struct {
    air_strbuf body;
    int too_large;
} conn_ctx;

static struct MHD_Daemon *g_daemon;

static int authorized(server *s, struct MHD_Connection *c) {
    if (!s->api_key)
        return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    /* compare in time independent of where they differ */
    size_t a = strlen(h), b = strlen(s->api_key);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < a && i < b; i++)
        diff |= (unsigned)(h[i] ^ s->api_key[i]);
    return diff == 0;
}

/* GET /metrics: the schedulers' counters. */
static char *metrics(server *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "models");
    for (int i = 0; i < s->n_models; i++) {
        air_sched_stats st;
        air_sched_get_stats(s->models[i].sched, &st);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "model", s->models[i].id);
        cJSON_AddNumberToObject(e, "active", st.active);
        cJSON_AddNumberToObject(e, "queued", st.queued);
        cJSON_AddNumberToObject(e, "sweeps", (double)st.sweeps);
        cJSON_AddNumberToObject(e, "rows", (double)st.rows);
        cJSON_AddNumberToObject(e, "tokens", (double)st.tokens);
        cJSON_AddNumberToObject(e, "kv_bytes", (double)st.kv_bytes);
        cJSON_AddNumberToObject(e, "kv_bytes_peak", (double)st.kv_bytes_peak);
        /* decoding, per sweep and per request-sweep; speculation's candidates */
        cJSON_AddNumberToObject(e, "decode_steps", (double)st.decode_steps);
        cJSON_AddNumberToObject(e, "decode_tokens", (double)st.decode_tokens);
        cJSON_AddNumberToObject(e, "tokens_per_sweep",
                                st.sweeps ? (double)st.tokens / (double)st.sweeps : 0);
        cJSON_AddNumberToObject(e, "tokens_per_step",
                                st.decode_steps
                                    ? (double)st.decode_tokens / (double)st.decode_steps
                                    : 0);
        cJSON_AddNumberToObject(e, "drafted", (double)st.drafted);
        cJSON_AddNumberToObject(e, "accepted", (double)st.accepted);
        cJSON_AddNumberToObject(e, "acceptance_rate",
                                st.drafted ? (double)st.accepted / (double)st.drafted : 0);
        cJSON_AddItemToArray(a, e);
    }
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls) {
    (void)version;
    server *s = cls;
    conn_ctx *cc = *con_cls;
    if (!cc) {
        cc = calloc(1, sizeof *cc);
        if (!cc)
            return MHD_NO;
        *con_cls = cc;
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->max_body) {
            /* answered before the body is read; the connection then closes */
            srv_req r = {c, s, method, url, "", 0};
            return (enum MHD_Result)srv_send_error(
                &r, MHD_HTTP_CONTENT_TOO_LARGE, "invalid_request_error",
                "the request body is larger than %zu bytes", s->max_body);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cc->too_large && cc->body.len + *upload_size > s->max_body)
            cc->too_large = 1;
        if (!cc->too_large)
            air_sb_append(&cc->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    srv_req r = {c, s, method, url, cc->body.data ? cc->body.data : "", cc->body.len};
    if (strcmp(url, "/health") == 0) {
        if (!atomic_load(&s->ready))
            return (enum MHD_Result)srv_send_json(&r, MHD_HTTP_SERVICE_UNAVAILABLE,
                                                  strdup("{\"status\":\"loading model\"}"));
        return (enum MHD_Result)srv_send_json(&r, MHD_HTTP_OK, strdup("{\"status\":\"ok\"}"));
    }
    if (strcmp(url, "/metrics") == 0 && atomic_load(&s->ready))
        return (enum MHD_Result)srv_send_json(&r, MHD_HTTP_OK, metrics(s));
    if (strcmp(url, "/") == 0 && (!strcmp(method, "GET") || !strcmp(method, "HEAD")))
        return (enum MHD_Result)srv_send_json(&r, MHD_HTTP_OK, strdup("\"airllm is running\""));
    if (!authorized(s, c))
        return (enum MHD_Result)srv_send_error(
            &r, MHD_HTTP_UNAUTHORIZED, "invalid_request_error",
            "missing or wrong API key: send the header \"Authorization: Bearer KEY\"");
    if (cc->too_large)
        return (enum MHD_Result)srv_send_error(
            &r, MHD_HTTP_CONTENT_TOO_LARGE, "invalid_request_error",
            "the request body is larger than %zu bytes", s->max_body);
    if (!atomic_load(&s->ready))
        return (enum MHD_Result)srv_send_error(&r, MHD_HTTP_SERVICE_UNAVAILABLE, "server_busy",
                                               "the model is still loading; retry when GET "
                                               "/health answers 200");
    int handled = 0;
    int ret = is_ollama(url) ? ollama_route(&r, &handled) : openai_route(&r, &handled);
    if (handled)
        return (enum MHD_Result)ret;
    return (enum MHD_Result)srv_send_error(&r, MHD_HTTP_NOT_FOUND, "invalid_request_error",
                                           "no route %s %s", method, url);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    conn_ctx *cc = *con_cls;
    if (cc) {
        air_sb_free(&cc->body);
        free(cc);
        *con_cls = NULL;
    }
}

int srv_start(server *s, const char *host, int port, int max_conn, int timeout_s, int *bound_port) {
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host, ps, &hints, &ai) != 0 || !ai) {
        fprintf(stderr, "airllm serve: cannot resolve host '%s'\n", host);
        return -1;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    g_daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR,
                                ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_conn,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)timeout_s,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
                                MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!g_daemon) {
        fprintf(stderr, "airllm serve: cannot listen on %s:%d (%s)\n", host, port,
                errno ? strerror(errno) : "address in use?");
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(g_daemon, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = di ? di->port : port;
    return 0;
}

void srv_stop(void) {
    if (g_daemon)
        MHD_stop_daemon(g_daemon);
    g_daemon = NULL;
}
