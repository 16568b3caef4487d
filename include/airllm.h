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
    int max_seq_len;         /* context length, 0 to AIR_MAX_SEQ_LEN; 0 = min(model's, 4096) */
    int prefetching;         /* read layer i+1 while layer i computes (default 1) */
    uint64_t ram_budget;     /* bytes of layers kept resident; 0 = stream every layer;
                                AIR_RAM_AUTO (the default) = 3/4 of the memory this
                                process can take at open time (MemAvailable, or the
                                room under its memory cgroup's limit if tighter), less
                                two streaming buffers and the KV cache of max_seq_len */
    int n_threads;           /* >= 0; 0 = one per CPU this process may run on (its
                                affinity mask); larger counts are capped to that, since
                                more compute threads than CPUs only slow down */
    air_progress_cb progress; /* download/split progress; NULL = silent */
    void *progress_user;
    /* One-line messages while opening (a download retried, with the reason and
     * where it resumes); NULL = silent. Receives progress_user. */
    void (*notice)(void *user, const char *message);
    /* Polled while the layer store is built (between tensors); non-zero stops
     * the split with AIR_ERR_ABORTED. Unit files already complete are kept and
     * the next open resumes from them; no partial file is left. May be NULL. */
    int (*should_abort)(void *user);
    void *abort_user;
    /* Where the forward pass runs: "auto" (NULL, the default): the GPU when
     * the CUDA plugin (libairllm_cuda.so), an NVIDIA driver and a GPU are
     * there and the model's architecture runs on it, else the CPU; "cpu";
     * "cuda": the GPU, or AIR_ERR_UNSUPPORTED saying what is missing. See
     * docs/cuda.md. */
    const char *device;
    /* Bytes of GPU memory to use: the layers that fit stay on the GPU, the
     * others stream through two buffers; 0 = what is free, less 1/16. */
    uint64_t vram_budget;
} air_model_params;

/* The largest max_seq_len accepted. */
#define AIR_MAX_SEQ_LEN (1 << 24)

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
    const char *arch;        /* "llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3",
                                "qwen2_moe", "qwen3_moe", "mixtral", "deepseek_v3", "gpt_oss" */
    const char *compression; /* "none", "8bit", "4bit" */
    const char *store_dir;   /* the layer store folder */
    int n_layer, n_embd, n_vocab, max_seq_len;
    uint64_t store_bytes; /* bytes streamed per forward pass when nothing is pinned */
    int has_chat_template;
    double split_seconds; /* time this open spent building the layer store; 0 if reused */
    const char *device;   /* "cpu" or "cuda": where the forward pass runs */
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

/* Values outside the ranges below make air_chat/air_generate_text return
 * AIR_ERR_INVALID_ARG naming the field. */
typedef struct {
    int max_tokens;          /* >= 0, default 256; >= 2 with json (the shortest object,
                                "{}", takes two tokens) */
    float temperature;       /* finite, >= 0; default 0.7; 0 = greedy */
    float top_p;             /* 0 to 1, default 0.95 (1 = off, 0 = the most likely token) */
    int top_k;               /* >= 0, default 40 (0 = off) */
    float min_p;             /* 0 to 1, default 0.05 (0 = off) */
    float repeat_penalty;    /* finite, > 0; default 1 (off) */
    uint64_t seed;           /* default 0: a fixed seed (same output each run) */
    const char *const *stop; /* n_stop stop strings (not included in the text); may be
                                NULL when n_stop is 0 */
    int n_stop;              /* >= 0 */
    int json;                /* format="json": instruction + constrained decoding */
    int raw;                 /* raw completion: air_generate_text() sends the prompt as it is
                                (air_complete()); default 0 */
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
    /* Speculative decoding: candidate tokens verified in one pass over the
     * layers, so a streamed pass yields several tokens. The output is the
     * same as without (greedy: identical; sampled: the same distribution). */
    const char *draft_model;       /* a small model with the same vocabulary, kept resident
                                      (HF id, folder or .gguf); NULL = none (default) */
    const char *draft_compression; /* the draft's compression; NULL = "4bit" */
    int lookup;      /* n-gram lookup over prompt + output: 1 on, 0 off, -1 (default) on
                        when the model is not fully resident */
    int speculative; /* 0 turns all speculation off; 1 (default) allows it */
    int draft_max;   /* candidate tokens per pass, at most 64; 0 (default) = automatic,
                        from the measured cost of passes (off where it does not pay) */
    /* With tools: called once for each complete tool call, as soon as it is
     * parsed (its index in the response, id, name, arguments as JSON text),
     * while on_text gets only the content around calls; return non-zero to
     * stop. May be NULL. Receives `user`. */
    int (*on_tool_call)(void *user, int index, const char *id, const char *name,
                        const char *arguments);
    /* air_sched_submit only: this request's context in tokens (prompt and
     * output), >= 0; 0 (default) = the scheduler's max_seq_len, and a larger
     * value is capped at it. A smaller context holds a smaller KV cache, so
     * more requests fit the scheduler's kv_budget. */
    int max_seq_len;
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
    int sweeps;              /* decode passes over the layers (after the prefill) */
    double tokens_per_sweep; /* tokens those passes produced, per pass (1 without speculation) */
    int drafted, accepted;   /* candidate tokens verified, and those that became output */
    double acceptance_rate;  /* accepted / drafted (0 when nothing was drafted) */
    /* With tools: the calls parsed from the response, a JSON array of OpenAI
     * tool calls [{"id", "type": "function", "function": {"name",
     * "arguments" (a JSON string)}}], or NULL when there are none.
     * raw_text: the whole generated text, calls included. Both freed by
     * air_result_free(). */
    char *tool_calls;
    char *raw_text;
} air_result;

/* One user prompt (with an optional system prompt; may be NULL), through the
 * model's chat template; with params->raw, air_complete(prompt) instead (a
 * system prompt is then an error). */
air_status air_generate_text(air_model *m, const char *system, const char *prompt,
                             const air_gen_params *params, air_result *out);

/* A conversation through the model's chat template (or the fallback
 * "role: content" lines when the model has none). */
air_status air_chat(air_model *m, const air_message *messages, int n_messages,
                    const air_gen_params *params, air_result *out);

/* Raw completion: continues `text` as it is, with no chat template (for base
 * models, and the /v1/completions and Ollama "raw" requests of a server). The
 * tokenizer adds BOS (and any other special token) as its settings say;
 * special tokens written in the text are recognized. With params->json the
 * output is still constrained to JSON, but no instruction is added. */
air_status air_complete(air_model *m, const char *text, const air_gen_params *params,
                        air_result *out);

/* Frees out->text; NULL is a no-op. */
void air_result_free(air_result *r);

/* ------------------------------------------------------------------------- */
/* The steps of air_chat, one by one                                         */
/* ------------------------------------------------------------------------- */
/* For front ends that template, tokenize and decode themselves (the Python
 * `airllm` compatibility package): chat template -> air_tokenize ->
 * air_generate_ids -> air_detokenize. air_chat is these steps in one call.
 * AIR_ERR_UNSUPPORTED when the model has no tokenizer. */

/* Renders a conversation with the model's chat template, as transformers'
 * apply_chat_template(messages, tokenize=False, add_generation_prompt=...):
 * messages_json is a JSON array of {"role", "content", ...} objects (every key
 * reaches the template); vars_json is NULL or a JSON object of extra template
 * variables (e.g. {"enable_thinking": false}). A model without a template
 * gets the fallback "role: content" lines. *text: caller frees with air_free. */
air_status air_apply_chat_template(const air_model *m, const char *messages_json,
                                   int add_generation_prompt, const char *vars_json, char **text);

/* Encodes `len` bytes of UTF-8 text with the model's tokenizer. add_special:
 * apply its post-processor (BOS etc.) like transformers' add_special_tokens=True.
 * *ids: caller frees with air_free (non-NULL even when *n_ids is 0). */
air_status air_tokenize(const air_model *m, const char *text, size_t len, int add_special,
                        int32_t **ids, size_t *n_ids);

/* Decodes ids to text like transformers' decode (ids outside the vocabulary are
 * skipped); skip_special drops special tokens. *text: NUL-terminated, caller
 * frees with air_free; *len (may be NULL): its length in bytes (the text may
 * hold NUL bytes). */
air_status air_detokenize(const air_model *m, const int32_t *ids, size_t n_ids, int skip_special,
                          char **text, size_t *len);

/* Generates after a prompt given as token ids (already templated and
 * tokenized; no JSON instruction is added, params->json only constrains
 * decoding). *out as air_chat gives it (the text, cut before a stop string;
 * free with air_result_free). *gen_ids (NULL to skip): every generated id,
 * ending with the EOS id when generation stopped at one (as transformers'
 * generate returns them); caller frees with air_free. */
air_status air_generate_ids(air_model *m, const int32_t *ids, size_t n_ids,
                            const air_gen_params *params, air_result *out, int32_t **gen_ids,
                            size_t *n_gen);

/* The seed's get_llm_response as JSON in, JSON out, for bindings.
 * request: {"prompt"?, "messages"?, "model", "max_tokens"?, "temperature"?,
 * "top_p"?, "top_k"?, "seed"?, "stop"?, "format"?, "raw"?, "compression"?,
 * "hf_token"?, "delete_original"?, "max_seq_len"?, "prefetching"?,
 * "cache_dir"?, "ram_budget"?, "chat_template_kwargs"?} (see docs/c-api.md).
 * A "prompt" given with messages that end in a user turn replaces that
 * turn's content; otherwise it is appended as a user turn (an empty one is
 * ignored). "prompt_ids" (token
 * ids) replaces both, for a prompt already templated and tokenized.
 * *response (caller frees with air_free): {"response", "messages",
 * "raw_response", "tool_calls": [], "tool_results": [], "completion_ids",
 * "usage": {...}, "finish_reason"}.
 * Models are taken from the process-level cache. on_text may be NULL; while a
 * model is split on first use it is called with an empty piece between
 * tensors, and non-zero stops the split (AIR_ERR_ABORTED, resumable). */
air_status air_get_llm_response(const char *request_json, int (*on_text)(void *, const char *),
                                void *user, char **response);

/* air_model_acquire with the model and open options given as in
 * air_get_llm_response's request ("model", "compression", "hf_token",
 * "cache_dir", ...; other keys are ignored): the same cached model, for
 * bindings that call the functions taking an air_model. Release with
 * air_model_release(). */
air_status air_model_acquire_json(const char *request_json, air_model **out);
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
    /* Speculative decoding per request (docs/speculative.md), as in
     * air_gen_params: each decoding request may add candidate rows to a
     * sweep; the candidates of all requests share a budget chosen from the
     * measured cost of sweeps. A request's own air_gen_params can turn it
     * off (speculative = 0), set lookup (0 or 1) and fix draft_max; its
     * draft_model must be NULL or this one. */
    const char *draft_model;       /* resident draft for every request; NULL: none */
    const char *draft_compression; /* NULL = "4bit" */
    int lookup;      /* 1 on, 0 off, -1 (default) on when the model is not fully resident */
    int speculative; /* 0 turns speculation off; 1 (default) allows it */
    int draft_max;   /* candidates per request per sweep, 1..64; 0 (default) automatic */
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
 * AIR_OK with the result (text, tool_calls, raw_text and counts; valid
 * during the call only), or
 * an error with its message. Must return quickly and must not block. */
typedef void (*air_done_cb)(void *user, air_status status, const char *error,
                            const air_result *result);

/* Submits a request: the conversation messages[n] through the chat template,
 * or, when raw_prompt is not NULL, that text as it is. A conversation takes
 * tools, tool_choice, json and json_schema as air_chat does (each request
 * has its own JSON grammar). params->on_text and params->on_tool_call (called
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
    uint64_t kv_bytes_peak;   /* the most held at once since start */
    /* decoding: request-sweeps (one request decoding in one sweep), the
     * tokens they produced (an EOS that ended a request counts), and the
     * candidates verified and accepted with speculation */
    uint64_t decode_steps, decode_tokens;
    uint64_t drafted, accepted;
} air_sched_stats;
void air_sched_get_stats(air_sched *s, air_sched_stats *out);

/* ------------------------------------------------------------------------- */
/* Several processes: pipeline parallelism over MPI (docs/mpi.md)            */
/* ------------------------------------------------------------------------- */

/* Joins the MPI job when the process was started by mpirun (Open MPI, or a
 * PMI launcher) and does nothing otherwise; call it first, from the main
 * thread, before any other call. In a job of N > 1 ranks, the first model
 * each rank opens is split across them: every rank owns a contiguous range
 * of its layers, sized by its own ram_budget, and splits only that range
 * into its layer store. Rank 0 then uses the model as usual (generate, chat,
 * the scheduler); every other rank calls air_pipeline_worker. Returns
 * AIR_ERR_UNSUPPORTED under mpirun when the library was built without MPI. */
air_status air_dist_init(int *argc, char ***argv);
/* This process's rank (0 without MPI) and the number of ranks (1). */
int air_dist_rank(void);
int air_dist_size(void);
/* Leaves the MPI job after a clean end (every rank calls it); a no-op
 * without MPI. After a failure do not call it: end the process with a
 * non-zero status and the launcher ends the other ranks. */
void air_dist_finalize(void);
/* Ranks > 0: runs this rank's layers of m for rank 0's passes until rank 0
 * closes its model (AIR_OK) or a rank fails or stalls (an error naming it).
 * AIR_ERR_INVALID_ARG on rank 0 or for a model that is not pipelined. */
air_status air_pipeline_worker(air_model *m);

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
