/*
 * server.h - `airllm serve`: an HTTP front over the public API (airllm.h)
 * speaking the OpenAI and the Ollama protocols.
 *
 *   http.c    libmicrohttpd glue: limits, auth, routing, jobs and their
 *             output queues, streamed responses
 *   openai.c  /v1/chat/completions, /v1/completions, /v1/models
 *   ollama.c  /api/chat, /api/generate, /api/tags, /api/show, /api/version
 *   serve.c   the command: options, models, schedulers, signals
 *
 * A request becomes a job: the protocol file parses the body into messages
 * and air_gen_params and submits them to the model's scheduler. The
 * scheduler's thread only appends text to the job's queue under its mutex
 * (it never touches a socket); the connection's own thread (one per
 * connection) formats and sends it, so a slow client never stalls a sweep.
 */
#ifndef AIR_SERVER_H
#define AIR_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "airllm.h"
#include "util/strbuf.h"

typedef struct {
    char *id; /* the name clients use in "model" */
    air_model *m;
    air_sched *sched;
    air_model_info info;
} srv_model;

typedef struct {
    srv_model *models;
    int n_models;
    const char *api_key; /* NULL: no key needed */
    size_t max_body;     /* bytes */
    atomic_int ready;    /* models loaded */
    atomic_int stopping; /* shutting down */
    atomic_long next_id;
    int ctx; /* context per request */
} server;

typedef struct job job;

/* How a protocol writes a job's output. */
typedef struct {
    /* streamed: the bytes for a new piece of text */
    void (*piece)(job *j, const char *text, air_strbuf *wire);
    /* streamed: the bytes for a complete tool call, an object {"index",
     * "id", "name", "arguments" (JSON text)} */
    void (*call)(job *j, const cJSON *call, air_strbuf *wire);
    /* streamed: the closing bytes (also for an error after the start) */
    void (*end)(job *j, air_strbuf *wire);
    /* not streamed: the whole JSON body of a successful job */
    char *(*body)(job *j);
    const char *content_type; /* of the streamed response */
} job_format;

/* One generation request. Shared by the connection and the scheduler
 * callbacks (refs); the text queue is the only thing the scheduler writes. */
struct job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int refs;
    server *srv;
    srv_model *model;
    air_request *req;
    const job_format *fmt;
    int stream;
    int fd; /* the client's socket, watched for a close */
    /* written by the scheduler thread, under mu */
    air_strbuf queue; /* text not yet sent */
    cJSON *calls;     /* tool calls not yet sent (NULL or an array) */
    int done;
    air_status status;
    char *error;
    air_result result; /* text and tool_calls owned by the job */
    /* the connection thread's */
    air_strbuf wire;
    size_t wire_off;
    int wire_end;
    int started; /* streamed: the first record was written */
    /* protocol data */
    char id[48];
    long created;
    double t_start; /* monotonic seconds at arrival */
    int chat;       /* chat (messages) or completion (prompt) */
    int include_usage;
};

/* ---- http.c, for the protocol files ---- */
struct MHD_Connection;
typedef struct {
    struct MHD_Connection *conn;
    server *srv;
    const char *method, *url;
    const char *body;
    size_t body_len;
} srv_req;

/* Sends a JSON body (takes ownership of body). Returns the MHD result. */
int srv_send_json(const srv_req *r, unsigned status, char *body);
/* Sends an error in the route's protocol shape (OpenAI or Ollama). */
int srv_send_error(const srv_req *r, unsigned status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The model named `name` (NULL or "" = the first), or NULL. */
srv_model *srv_find_model(server *s, const char *name);
/* The HTTP status of a library error at submit. */
unsigned srv_status_of(air_status st);
/* A new job for the connection; submits messages/raw prompt with gp (its
 * on_text and user are set here) and runs it to the end: streamed through
 * fmt, or answered with fmt->body. Errors at submit are answered in the
 * route's error shape. Owns nothing of the caller's arguments. */
int srv_run_job(const srv_req *r, srv_model *m, const air_message *msgs, int n, const char *raw,
                air_gen_params *gp, int stream, const job_format *fmt, job *proto);
/* Monotonic seconds. */
double srv_now(void);
/* Messages from a JSON array of {role, content} (content a string, null, or
 * OpenAI's list of {"type":"text","text"} parts), with an assistant's
 * "tool_calls" and a tool message's "tool_call_id" and "name". *out (caller frees) borrows
 * strings from arr, or from *keep (caller frees with cJSON_Delete) for
 * joined parts. Returns NULL, or an error message (static). */
const char *srv_parse_messages(const cJSON *arr, air_message **out, int *n, cJSON **keep);
/* v printed as JSON text, kept alive as a string item of the array keep.
 * NULL when out of memory. */
const char *srv_keep_print(cJSON *keep, const cJSON *v);
/* "tools" (an array) and "tool_choice" (a string or an object) of req into
 * gp, their text kept in *keep (an array, created when NULL). Returns NULL
 * or an error message (static). */
const char *srv_parse_tools(const cJSON *req, air_gen_params *gp, cJSON **keep);
/* Stop strings from a string or an array of strings (borrowed from v).
 * Returns NULL or an error message (static). */
const char *srv_parse_stop(const cJSON *v, const char ***out, int *n);
/* temperature, top_p, top_k, min_p, repeat_penalty, seed of o into gp.
 * Returns NULL or an error message (static). */
const char *srv_parse_sampling(const cJSON *o, air_gen_params *gp);
/* The request body as a JSON object, or NULL after answering 400 (*ret is
 * then the MHD result). Caller frees with cJSON_Delete. */
cJSON *srv_parse_body(const srv_req *r, int *ret);
/* What a generation route parsed: the body and the arrays that borrow
 * from it. */
typedef struct {
    cJSON *body;
    const char *model_name; /* "model" of the body, NULL when absent */
    srv_model *model;       /* the model it names, NULL when unknown */
    air_message *msgs;      /* srv_parse_messages */
    int n;
    cJSON *keep;
    const char **stops; /* srv_parse_stop */
} srv_parsed;
void srv_parsed_free(srv_parsed *p);
/* Parses the body (a JSON object) and looks up its model. Returns 0, or -1
 * after answering 400 (*ret is then the MHD result). */
int srv_parse_request(const srv_req *r, srv_parsed *p, int *ret);
/* Number member k of o into *out; 0 when absent, -1 when not a number. */
int srv_num(const cJSON *o, const char *k, double *out);

/* ---- the routes ---- */
int openai_route(const srv_req *r, int *handled);
int ollama_route(const srv_req *r, int *handled);

/* ---- serve.c ---- */
/* Starts listening; timeout_s: idle seconds before a connection is closed. */
int srv_start(server *s, const char *host, int port, int max_conn, int timeout_s, int *bound_port);
void srv_stop(void);

#endif
