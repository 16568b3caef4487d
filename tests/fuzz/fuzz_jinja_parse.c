/*
 * fuzz_jinja_parse.c - fuzz entry point for the Jinja lexer and parser:
 * any bytes must give a template or a clean AIR_ERR_FORMAT, never a crash.
 */
#include <stddef.h>
#include <stdint.h>

#include "text/jinja/jinja.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    air_jinja_template *t = NULL;
    if (air_jinja_parse((const char *)data, size, &t) == AIR_OK)
        air_jinja_free(t);
    return 0;
}
