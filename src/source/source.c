/*
 * source.c - what every model source shares: allocation, the fields it owns,
 * closing through its own close function.
 */
#include "source/source.h"

#include <stdlib.h>

#include "util/error.h"

air_status air_source_alloc(size_t impl_size, air_source **out) {
    *out = NULL;
    air_source *s = calloc(1, sizeof *s);
    void *impl = calloc(1, impl_size ? impl_size : 1);
    if (!s || !impl) {
        free(s);
        free(impl);
        return air_err(AIR_ERR_NOMEM, "out of memory");
    }
    s->impl = impl;
    *out = s;
    return AIR_OK;
}

void air_source_free_common(air_source *s) {
    free(s->tokenizer_json);
    free(s->tokenizer_config);
    free(s->chat_template_dir);
    free(s->fingerprint);
    free(s->name);
    free(s->impl);
    free(s);
}

void air_source_close(air_source *s) {
    if (s)
        s->close(s);
}
