/*
 * api_internal.h - the fields of an opened model, shared by the API files.
 */
#ifndef AIR_API_INTERNAL_H
#define AIR_API_INTERNAL_H

#include <pthread.h>

#include "airllm.h"
#include "model/forward.h"
#include "store/store.h"
#include "sample/grammar.h"
#include "text/chat.h"
#include "text/tool_calls.h"
#include "text/tokenizer.h"

struct air_model {
    char *name;
    char *store_dir;
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

#endif
