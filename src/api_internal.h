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
#include "text/chat.h"
#include "text/tokenizer.h"

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
 * and its tokenizer's bos/eos tokens; vars: extra template variables or NULL.
 * *out: caller frees. */
air_status air_render_template(const air_model *m, const cJSON *messages, int add_generation_prompt,
                               const cJSON *vars, char **out);

/* air_chat with extra template variables (a cJSON object or NULL, borrowed),
 * e.g. {"enable_thinking": false}; *gen_ids (NULL to skip) as
 * air_generate_ids gives them. */
air_status air_chat_vars(air_model *m, const air_message *messages, int n_messages,
                         const cJSON *vars, const air_gen_params *params, air_result *out,
                         int32_t **gen_ids, size_t *n_gen);

#endif
