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
 * in bytes (total 0 when unknown), rate in bytes per second. A negative rate
 * marks a status message in `label` (for example that the split waits for
 * another process building the same store). */
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
                                AIR_RAM_AUTO (the default) = 3/4 of the memory this
                                process can take at open time (MemAvailable, or the
                                room under its memory cgroup's limit if tighter), less
                                two streaming buffers and the KV cache of max_seq_len */
    int n_threads;           /* 0 = one per core */
    air_progress_cb progress; /* download/split progress; NULL = silent */
    void *progress_user;
    /* One-line messages while opening (a download retried, with the reason and
     * where it resumes); NULL = silent. Receives progress_user. */
    void (*notice)(void *user, const char *message);
} air_model_params;

/* The defaults: the seed's (compression per platform, prefetching on). */
air_model_params air_model_default_params(void);

/* "4bit" on Linux, "none" on macOS. */
const char *air_default_compression(void);

/* Opens a model: a Hugging Face id ("org/name", downloaded into the
 * huggingface_hub cache), a local HF folder, or a .gguf file. Builds the layer
 * store on first use (slow, with progress), reuses it afterwards while the
 * source's files are unchanged (it is rebuilt when they change).
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
    const char *content; /* NULL: no content (the template sees none) */
    /* assistant: the calls it made, a JSON array of OpenAI tool calls
     * ([{"id", "type": "function", "function": {"name", "arguments"}}]),
     * given to the template as parsed JSON, exactly as written; NULL: none */
    const char *tool_calls;
    const char *tool_call_id; /* tool: the id of the call this answers; NULL: none */
    const char *name;         /* tool: the function's name; NULL: none */
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
    /* format=<schema>: JSON text of a JSON Schema (the subset in
     * docs/json-mode.md); the response is one object valid against it.
     * Implies json. A keyword outside the subset fails with
     * AIR_ERR_UNSUPPORTED naming it. NULL: none. */
    const char *json_schema;
    /* Tool calling (docs/tools.md). tools: JSON array of OpenAI tools
     * ([{"type": "function", "function": {"name", "description",
     * "parameters"}}]), given to the chat template as `tools`; NULL: none.
     * tool_choice: "auto" (NULL means auto), "none" (the template gets no
     * tools and no calls are parsed), "required" (the response is one call
     * of one of the tools, its arguments valid against the tool's
     * parameters), or a function's name, or OpenAI's JSON form
     * {"type":"function","function":{"name":...}} (a call of that tool). */
    const char *tools;
    const char *tool_choice;
    /* Streaming: called with each new piece of text (UTF-8, never a split
     * character); return non-zero to stop. May be NULL. */
    int (*on_text)(void *user, const char *piece);
    /* Polled between tokens; non-zero aborts (AIR_ERR_ABORTED). May be NULL. */
    int (*should_abort)(void *user);
    void *user;
    /* With tools: called once for each complete tool call, as soon as it is
     * parsed (its index in the response, id, name, arguments as JSON text),
     * while on_text gets only the content around calls; return non-zero to
     * stop. May be NULL. Receives `user`. */
    int (*on_tool_call)(void *user, int index, const char *id, const char *name,
                        const char *arguments);
} air_gen_params;

air_gen_params air_gen_default_params(void);

typedef struct {
    char *text;                /* the response (without its tool calls when some were
                                  parsed); freed by air_result_free() */
    const char *finish_reason; /* "stop" (EOS or stop string), "length", "callback",
                                  "tool_calls" (calls were parsed) (static) */
    int prompt_tokens, completion_tokens;
    double prefill_seconds, decode_seconds;
    double prefill_tokens_per_s, decode_tokens_per_s;
    /* With tools: the calls parsed from the response, a JSON array of OpenAI
     * tool calls [{"id", "type": "function", "function": {"name",
     * "arguments" (a JSON string)}}], or NULL when there are none.
     * raw_text: the whole generated text, calls included. Both freed by
     * air_result_free(). */
    char *tool_calls;
    char *raw_text;
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

/* Frees memory returned by the library (strings). */
void air_free(void *p);

/* Library version, "MAJOR.MINOR.PATCH". */
const char *air_version(void);

/* One line on the compute kernels: the instruction set in use and those this
 * CPU supports, e.g. "kernels: avx512; supported: ref avx2 avx512; not
 * supported: neon". The environment variable AIR_ISA (ref, avx2, avx512,
 * neon), read at first use, picks a supported one instead of the best.
 * Static storage; not thread-safe against a concurrent first use. */
const char *air_system_info(void);

#ifdef __cplusplus
}
#endif
#endif /* AIRLLM_H */
