/*
 * fuzz_schema.c - fuzz entry point for JSON Schema constrained decoding.
 *
 * The input is a schema (JSON text up to the first NUL byte) and a text (the
 * bytes after it). The schema is compiled (an error is fine; a crash is
 * not); when it compiles, the text goes byte by byte through the schema
 * automaton, the shortest completion is computed at every prefix (it must
 * stay in range), and when the automaton says "complete" the text must parse
 * with cJSON as one JSON object (a differential check).
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sample/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t slen = nul ? (size_t)(nul - data) : size;
    char *stext = malloc(slen + 1);
    if (!stext)
        return 0;
    memcpy(stext, data, slen);
    stext[slen] = 0;
    air_schema *S = NULL;
    if (air_schema_compile_text(stext, &S) != AIR_OK) {
        free(stext);
        return 0;
    }
    free(stext);
    const uint8_t *text = nul ? nul + 1 : data + size;
    size_t n = nul ? size - slen - 1 : 0;
    air_sc_state s;
    air_sc_init(&s, S);
    int m = air_sc_min_close(S, &s);
    if (m < 1 || m > 65535)
        abort();
    size_t i = 0;
    for (; i < n; i++) {
        if (!air_sc_step(S, &s, text[i]))
            break;
        m = air_sc_min_close(S, &s);
        if (m < 0 || m > 65535 || (m == 0) != (s.f.mode == AIR_JF_DONE))
            abort();
    }
    if (i == n && s.f.mode == AIR_JF_DONE) {
        cJSON *j = cJSON_ParseWithLength((const char *)text, n);
        if (!cJSON_IsObject(j))
            abort();
        cJSON_Delete(j);
    }
    air_schema_free(S);
    return 0;
}
