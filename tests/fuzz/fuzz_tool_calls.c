/*
 * fuzz_tool_calls.c - fuzz entry point for the tool-call parser.
 *
 * The first input byte picks the format (low 2 bits) and the size of the
 * pieces the rest is pushed in (high bits; 0 = all at once). Never crashes;
 * every call has a non-empty name, a 9-character id and arguments that
 * parse as a JSON object; what was streamed as content equals the final
 * content (or is only spaces when that was dropped next to calls).
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/tool_calls.h"
#include "util/strbuf.h"

static int on_content(void *u, const char *piece) {
    air_sb_puts(u, piece);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    air_tc_format f = (air_tc_format)(data[0] & 3);
    size_t step = data[0] >> 2;
    air_strbuf streamed = {0};
    air_tc_sink sink = {on_content, NULL, &streamed};
    air_tc_parser *p = NULL;
    if (air_tc_parser_new(f, 7, &sink, &p) != AIR_OK)
        return 0;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    for (size_t i = 0; i < n;) {
        size_t k = step && step < n - i ? step : n - i;
        air_tc_push(p, text + i, k);
        i += k;
    }
    air_tc_finish(p);
    const cJSON *c;
    cJSON_ArrayForEach(c, air_tc_calls(p)) {
        const cJSON *fn = cJSON_GetObjectItem(c, "function");
        const char *name = cJSON_GetObjectItem(fn, "name")->valuestring;
        cJSON *args = cJSON_Parse(cJSON_GetObjectItem(fn, "arguments")->valuestring);
        if (!name[0] || !cJSON_IsObject(args) || !cJSON_GetObjectItem(c, "id")->valuestring[0])
            abort();
        cJSON_Delete(args);
    }
    const char *content = air_tc_content(p);
    const char *st = streamed.data ? streamed.data : "";
    /* content is what the text held outside calls, up to its first NUL */
    if (strcmp(st, content) != 0) {
        int spaces = content[0] == 0;
        for (const char *q = st; spaces && *q; q++)
            spaces = isspace((unsigned char)*q);
        if (!spaces)
            abort();
    }
    air_sb_free(&streamed);
    air_tc_parser_free(p);
    return 0;
}
