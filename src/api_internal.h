/*
 * api_internal.h - the fields of an opened model, shared by the API files.
 */
#ifndef AIR_API_INTERNAL_H
#define AIR_API_INTERNAL_H

#include <cjson/cJSON.h>
#include <pthread.h>

#include "airllm.h"
#include "model/forward.h"
#include "store/store.h"
#include "sample/grammar.h"
#include "sample/schema.h"
#include "text/chat.h"
#include "runtime/generate.h"
#include "text/tool_calls.h"
#include "text/tokenizer.h"
#include "util/strbuf.h"

struct air_model {
    char *name;
    char *store_dir;
    char *cache_dir; /* as given at open (NULL: the default); a draft model goes there too */
    air_compression comp;
    air_engine *engine;
    air_tokenizer *tok;          /* NULL when the model has no tokenizer */
    air_chat_template *tmpl;     /* the model's template or the fallback */
    char *template_src;          /* NULL when the fallback is used */
    int32_t eos[AIR_MAX_EOS + 2]; /* config + generation_config + tokenizer EOS ids */
    int n_eos;
    int max_seq;
    double split_seconds; /* 0 when the store was reused */
    air_json_grammar *grammar; /* format="json", built on first use */
    pthread_mutex_t mu;        /* one generation at a time */
};

char *air_default_cache_dir(void);

/* Renders messages (a cJSON array, borrowed) with the model's chat template
 * and its tokenizer's bos/eos tokens; tools: the `tools` the template receives or NULL; vars: extra template variables or NULL.
 * *out: caller frees. */
air_status air_render_template(const air_model *m, const cJSON *messages, const cJSON *tools,
                               int add_generation_prompt, const cJSON *vars, char **out);

/* air_chat with extra template variables (a cJSON object or NULL, borrowed),
 * e.g. {"enable_thinking": false}; *gen_ids (NULL to skip) as
 * air_generate_ids gives them. */
air_status air_chat_vars(air_model *m, const air_message *messages, int n_messages,
                         const cJSON *vars, const air_gen_params *params, air_result *out,
                         int32_t **gen_ids, size_t *n_gen);
/* ---- one response in the making (api_generate.c), shared by air_chat and
 * the scheduler (api_sched.c): streaming detokenizer -> stop-string filter
 * -> on_text, and the JSON constraint. */
typedef struct {
    air_model *m;
    air_gen_params p; /* a copy; the stop strings are borrowed */
    air_detok *detok;
    air_strbuf text;  /* everything decoded so far */
    size_t emitted;   /* bytes of text already given to on_text */
    size_t max_stop;  /* longest stop string */
    int stopped;      /* by a stop string */
    int cb_stopped;   /* by the callback */
    air_status err;
    air_json_grammar *grammar; /* format="json" (borrowed; one per concurrent response) */
    uint8_t *gmask;            /* the grammar's mask (its vocabulary size) */
    int n_vocab;               /* the model's */
    air_tc_parser *tc;         /* tools with tool_choice auto: splits calls from content */
    int quiet;                 /* a forced call: nothing is streamed as text */
} air_response;

/* grammar: NULL, or the JSON grammar this response alone uses. Free with
 * air_response_free, also after a failure. */
air_status air_response_init(air_response *r, air_model *m, const air_gen_params *p,
                             air_json_grammar *grammar);
/* Speculation for a generation with params p (draft_model, draft_compression,
 * lookup, speculative, draft_max): the options, and the draft model (from
 * the process cache, every unit resident; *draft is released by the caller
 * with air_model_release). *use stays 0 when nothing is on. */
air_status air_spec_setup(air_model *m, const air_gen_params *p, air_model **draft,
                          air_spec_options *so, int *use);
/* Generation options whose callbacks feed this response. */
void air_response_options(air_response *r, air_gen_options *go);
/* Flushes the text into out->text (caller frees) and sets finish_reason:
 * "stop" after a stop string or a natural end (EOS, or the JSON object
 * complete), "callback", else "length". */
void air_response_finish(air_response *r, int natural_end, air_result *out);
void air_response_free(air_response *r);
/* Token counts, times and rates of a result. */
void air_result_stats(air_result *out, int n_prompt, int n_gen, double prefill_s, double decode_s);
/* tool_choice */
enum { AIR_CHOICE_AUTO, AIR_CHOICE_NONE, AIR_CHOICE_REQUIRED, AIR_CHOICE_NAMED };

/* The tool side of a request (api_tools.c). */
typedef struct {
    cJSON *tools;          /* the tools (NULL: none, or an empty list) */
    int choice;            /* AIR_CHOICE_* */
    char *named;           /* AIR_CHOICE_NAMED: the function */
    int template_tools;    /* the model's template renders `tools` */
    air_tc_format fmt;     /* how the model writes calls (tools in use only) */
    cJSON *forced_schema;  /* required/named: the schema of the call object */
} air_tool_req;

/* Reads params->tools and tool_choice for model m. */
air_status air_tool_req_init(const air_model *m, const air_gen_params *params, air_tool_req *r);
void air_tool_req_free(air_tool_req *r);

/* The messages as the chat template receives them (tool_calls parsed,
 * tool_call_id and name when given; a NULL content is null next to
 * tool_calls, else ""). */
air_status air_messages_json(const air_message *msgs, int n, cJSON **out);

/* What a chat turn adds to generating from ids: the tool request, the
 * schema that constrains the JSON, whether tool calls are parsed out of the
 * text, the seed of the call ids. */
typedef struct {
    air_tool_req tr;
    air_schema *schema;
    int parse_calls;
    uint64_t id_seed;
} air_chat_extras;

/* A chat request made ready to generate: tools and tool_choice read, the
 * schema compiled (json_schema, or a forced call's), the conversation
 * rendered (tools, the JSON instruction, a forced call's opener) and
 * tokenized into *ids (caller frees). p->json is set when a schema
 * constrains the output. Free cx with air_chat_extras_free (also done on
 * failure). */
air_status air_chat_prepare(air_model *m, const air_message *msgs, int n, const cJSON *vars,
                            air_gen_params *p, air_chat_extras *cx, int32_t **ids,
                            size_t *n_ids);
void air_chat_extras_free(air_chat_extras *cx);
/* Fits a response to a chat request (cx NULL: plain generation): the schema
 * on its grammar with a budget of min(max_tokens, room) tokens, forced calls
 * kept quiet, the tool-call parser (with special tokens kept for the formats
 * that need them). cx must outlive the response. */
air_status air_response_chat(air_response *r, const air_chat_extras *cx, int room);
/* air_response_finish for a chat request: content, tool_calls and raw_text
 * from the parser or from a forced call, finish_reason "tool_calls" when
 * there are calls. */
air_status air_response_end(air_response *r, int natural_end, const air_chat_extras *cx,
                            air_result *out);

#endif
