/*
 * airllm.h - public API of airllm.c
 *
 * airllm.c runs large language models whose weights do not fit in memory:
 * the model is split once into one file per transformer layer (the "layer
 * store"), and every forward pass streams the layers through memory, reading
 * layer i+1 while layer i computes.
 *
 * Basic usage:
 *
 *     air_model_params mp = air_model_default_params();
 *     air_model *m = NULL;
 *     if (air_model_open("path/to/hf-dir", &mp, &m) != AIR_OK) {
 *         fprintf(stderr, "%s\n", air_last_error());
 *         return 1;
 *     }
 *     ...
 *     air_model_close(m);
 *
 * Thread safety: functions that take an air_model may be called from several
 * threads; generation calls on one model are serialized internally. The last
 * error message is thread-local.
 *
 * Ownership: every pointer returned by the library says in its comment who
 * frees it. Closing or freeing NULL is a no-op. Functions return an air_status
 * (0 = AIR_OK on success).
 */
#ifndef AIRLLM_H
#define AIRLLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------- */
/* Status codes: one table, which also generates air_strerror().            */
/* ------------------------------------------------------------------------- */
#define AIR_STATUS_TABLE(X)                                                    \
    X(AIR_OK, 0, "success")                                                    \
    X(AIR_ERR_INVALID_ARG, 1, "invalid argument")                              \
    X(AIR_ERR_IO, 2, "input/output error")                                     \
    X(AIR_ERR_FORMAT, 3, "malformed or corrupt input")                         \
    X(AIR_ERR_UNSUPPORTED, 4, "unsupported model or feature")                  \
    X(AIR_ERR_NOMEM, 5, "out of memory")                                       \
    X(AIR_ERR_NOT_FOUND, 6, "not found")                                       \
    X(AIR_ERR_NETWORK, 7, "network error")                                     \
    X(AIR_ERR_AUTH, 8, "access denied (authentication required)")              \
    X(AIR_ERR_ABORTED, 9, "aborted by the caller")                             \
    X(AIR_ERR_LIMIT, 10, "limit exceeded")                                     \
    X(AIR_ERR_INTERNAL, 11, "internal error")

typedef enum {
#define AIR_X_ENUM(name, value, text) name = value,
    AIR_STATUS_TABLE(AIR_X_ENUM)
#undef AIR_X_ENUM
} air_status;

/* Static description of a status code. Never NULL. */
const char *air_strerror(air_status status);

/* Detailed message of the last error on this thread (what was wrong, where,
 * what to do). Owned by the library, valid until the next failing call on
 * this thread. Empty string when no error happened. */
const char *air_last_error(void);

/* ------------------------------------------------------------------------- */
/* Models                                                                    */
/* ------------------------------------------------------------------------- */

/* An opened model: its layer store, tokenizer and chat template. Immutable
 * weights; generation calls on one model are serialized. */
typedef struct air_model air_model;

/* Progress of long work (download, split): `label` names the item, done/total
 * in bytes (total 0 when unknown), rate in bytes per second. */
typedef void (*air_progress_cb)(void *user, const char *label, uint64_t done, uint64_t total,
                                double rate_bytes_per_s);

#define AIR_RAM_AUTO UINT64_MAX

typedef struct {
    const char *compression; /* "4bit", "8bit" or "none"; NULL = the platform default
                                ("4bit" on Linux, "none" on macOS), "8bit" for a .gguf
                                file (its weights are already quantized) */
    const char *hf_token;    /* NULL = $HF_TOKEN; never printed or stored */
    const char *revision;    /* hub branch, tag or commit; NULL = "main" */
    const char *cache_dir;   /* layer stores; NULL = $AIRLLM_CACHE, else
                                $XDG_CACHE_HOME/airllm, else ~/.cache/airllm */
    int delete_original;     /* delete each source shard once split */
    int max_seq_len;         /* context length; 0 = min(model's, 4096) */
    int prefetching;         /* read layer i+1 while layer i computes (default 1) */
    uint64_t ram_budget;     /* bytes of layers kept resident; 0 = stream every layer;
                                AIR_RAM_AUTO (the default) = half of the memory available
                                at open time */
    int n_threads;           /* 0 = one per core */
    air_progress_cb progress; /* download/split progress; NULL = silent */
    void *progress_user;
} air_model_params;

/* The defaults: the seed's (compression per platform, prefetching on). */
air_model_params air_model_default_params(void);

/* "4bit" on Linux, "none" on macOS. */
const char *air_default_compression(void);

/* Opens a model: a Hugging Face id ("org/name", downloaded into the
 * huggingface_hub cache), a local HF folder, or a .gguf file. Builds the layer
 * store on first use (slow, with progress), reuses it afterwards.
 * On success *out is closed with air_model_close(). */
air_status air_model_open(const char *model, const air_model_params *params, air_model **out);

/* NULL is a no-op. */
void air_model_close(air_model *m);

/* Process-level cache keyed "model:compression" (thread-safe), as the seed's
 * module-level cache: the first acquire opens the model, later ones return
 * the same air_model. Models stay open for the life of the process (or until
 * air_model_cache_clear()); air_model_release() marks the caller done. */
air_status air_model_acquire(const char *model, const air_model_params *params, air_model **out);
void air_model_release(air_model *m);
/* Closes every cached model that no caller holds. */
void air_model_cache_clear(void);

/* Facts about an opened model; strings owned by the model. */
typedef struct {
    const char *name;        /* as given to air_model_open */
    const char *arch;        /* "llama", "mistral", "qwen2", "qwen3" */
    const char *compression; /* "none", "8bit", "4bit" */
    const char *store_dir;   /* the layer store folder */
    int n_layer, n_embd, n_vocab, max_seq_len;
    uint64_t store_bytes; /* bytes streamed per forward pass when nothing is pinned */
    int has_chat_template;
    double split_seconds; /* time this open spent building the layer store; 0 if reused */
} air_model_info;
void air_model_get_info(const air_model *m, air_model_info *info);

/* ------------------------------------------------------------------------- */
/* Generation                                                                */
/* ------------------------------------------------------------------------- */

typedef struct {
    const char *role;    /* "system", "user", "assistant", "tool" */
    const char *content;
} air_message;

typedef struct {
    int max_tokens;          /* default 256 */
    float temperature;       /* default 0.7; 0 = greedy */
    float top_p;             /* default 0.95 (1 = off) */
    int top_k;               /* default 40 (0 = off) */
    float min_p;             /* default 0.05 (0 = off) */
    float repeat_penalty;    /* default 1 (off) */
    uint64_t seed;           /* default 0: a fixed seed (same output each run) */
    const char *const *stop; /* stop strings (not included in the text), may be NULL */
    int n_stop;
    int json;                /* format="json": instruction + constrained decoding */
    /* Streaming: called with each new piece of text (UTF-8, never a split
     * character); return non-zero to stop. May be NULL. */
    int (*on_text)(void *user, const char *piece);
    /* Polled between tokens; non-zero aborts (AIR_ERR_ABORTED). May be NULL. */
    int (*should_abort)(void *user);
    void *user;
} air_gen_params;

air_gen_params air_gen_default_params(void);

typedef struct {
    char *text;                /* the response; freed by air_result_free() */
    const char *finish_reason; /* "stop" (EOS or stop string), "length", "callback" (static) */
    int prompt_tokens, completion_tokens;
    double prefill_seconds, decode_seconds;
    double prefill_tokens_per_s, decode_tokens_per_s;
} air_result;

/* One user prompt (with an optional system prompt; may be NULL), through the
 * model's chat template. */
air_status air_generate_text(air_model *m, const char *system, const char *prompt,
                             const air_gen_params *params, air_result *out);

/* A conversation through the model's chat template (or the fallback
 * "role: content" lines when the model has none). */
air_status air_chat(air_model *m, const air_message *messages, int n_messages,
                    const air_gen_params *params, air_result *out);

/* Frees out->text; NULL is a no-op. */
void air_result_free(air_result *r);

/* The seed's get_llm_response as JSON in, JSON out, for bindings.
 * request: {"prompt"?, "messages"?, "model", "max_tokens"?, "temperature"?,
 * "top_p"?, "top_k"?, "seed"?, "stop"?, "format"?, "compression"?,
 * "hf_token"?, "delete_original"?, "max_seq_len"?, "prefetching"?,
 * "cache_dir"?, "ram_budget"?} (see docs/c-api.md).
 * *response (caller frees with air_free): {"response", "messages",
 * "raw_response", "tool_calls": [], "tool_results": [], "usage": {...}}.
 * Models are taken from the process-level cache. on_text may be NULL. */
air_status air_get_llm_response(const char *request_json, int (*on_text)(void *, const char *),
                                void *user, char **response);

/* ------------------------------------------------------------------------- */
/* Scheduler: concurrent requests sharing each sweep of the layers           */
/* ------------------------------------------------------------------------- */

/* A scheduler owns one model's sweeps on a background thread. Every sweep is
 * one forward pass whose rows are the next token of every active request plus
 * prompt chunks of newly admitted ones, so one read of each layer serves all
 * of them. Each request has its own KV cache, sampler, stop strings and JSON
 * constraint. A request joins at the next sweep; a cancelled one leaves at
 * the next sweep.
 *
 *     air_sched *s = NULL;
 *     air_sched_params sp = air_sched_default_params();
 *     air_sched_start(m, &sp, &s);
 *     air_request *r = NULL;
 *     air_sched_submit(s, msgs, n, NULL, &gp, on_done, user, &r);
 *     ... gp.on_text and on_done run on the scheduler's thread ...
 *     air_request_free(r);   // after on_done, or to cancel
 *     air_sched_stop(s);
 *
 * Thread safety: submit, cancel and free may be called from any thread. */
typedef struct air_sched air_sched;
typedef struct air_request air_request;

typedef struct {
    int max_batch;      /* requests in one sweep (default 16) */
    int max_queue;      /* requests waiting for a place (default 64); beyond: AIR_ERR_LIMIT */
    int max_seq_len;    /* context per request; 0 = the model's */
    int prefill_chunk;  /* prompt tokens per sweep over all new requests (default 256) */
    uint64_t kv_budget; /* bytes all KV caches may hold together; a request waits until its
                           cache fits. 0 = max_batch caches of max_seq_len positions */
} air_sched_params;

air_sched_params air_sched_default_params(void);

/* Starts the scheduler's thread for model m (which must stay open until
 * air_sched_stop returns). On success *out is stopped with air_sched_stop. */
air_status air_sched_start(air_model *m, const air_sched_params *params, air_sched **out);

/* Cancels every request still running (their on_done gets AIR_ERR_ABORTED),
 * joins the thread, frees the scheduler. Requests must still be freed with
 * air_request_free. NULL is a no-op. */
void air_sched_stop(air_sched *s);

/* Called once per request on the scheduler's thread when it ends: status
 * AIR_OK with the result (text and counts; valid during the call only), or
 * an error with its message. Must return quickly and must not block. */
typedef void (*air_done_cb)(void *user, air_status status, const char *error,
                            const air_result *result);

/* Submits a request: the conversation messages[n] through the chat template,
 * or, when raw_prompt is not NULL, that text as it is. params->on_text (called
 * on the scheduler's thread; must not block; non-zero stops the request) and
 * params->user are the request's; should_abort is ignored (use
 * air_request_cancel). The prompt is tokenized here, so a prompt too long for
 * the context fails here with AIR_ERR_LIMIT; a full queue fails with
 * AIR_ERR_LIMIT too. On success *out is freed with air_request_free. */
air_status air_sched_submit(air_sched *s, const air_message *messages, int n,
                            const char *raw_prompt, const air_gen_params *params,
                            air_done_cb on_done, air_request **out);

/* Asks the request to stop at the next sweep; on_done follows with
 * finish_reason "callback" (or AIR_ERR_ABORTED before its first sweep). */
void air_request_cancel(air_request *r);

/* Cancels the request if it still runs and releases it: once this returns,
 * none of its callbacks runs again. NULL is a no-op. */
void air_request_free(air_request *r);

/* Counters of a scheduler, for monitoring and benchmarks. */
typedef struct {
    int active, queued;       /* requests in the sweep, waiting */
    uint64_t sweeps, rows;    /* forward passes run, rows they carried */
    uint64_t tokens;          /* tokens generated */
    uint64_t kv_bytes;        /* KV cache bytes held now */
} air_sched_stats;
void air_sched_get_stats(air_sched *s, air_sched_stats *out);

/* Frees memory returned by the library (strings). */
void air_free(void *p);

/* Library version, "MAJOR.MINOR.PATCH". */
const char *air_version(void);

#ifdef __cplusplus
}
#endif
#endif /* AIRLLM_H */
