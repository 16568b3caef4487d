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

#endif
