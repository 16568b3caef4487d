/*
 * fuzz_jinja_render.c - fuzz entry point for rendering: the input is a
 * template, rendered with a fixed chat (system/user/assistant turns, a tool,
 * a tool call and a tool response) under tight limits, so runaway templates
 * end with AIR_ERR_LIMIT instead of eating the machine.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "text/jinja/jinja.h"

static const char *VARS =
    "{\"messages\": ["
    "{\"role\": \"system\", \"content\": \"You are helpful.\"},"
    "{\"role\": \"user\", \"content\": \"Weather in Paris? \\u00e9\\u4e2d\"},"
    "{\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"type\": \"function\","
    " \"function\": {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}}]},"
    "{\"role\": \"tool\", \"content\": \"22 C\"},"
    "{\"role\": \"assistant\", \"content\": \"<think>\\nok\\n</think>\\n\\nIt is 22 C.\","
    " \"reasoning_content\": \"r\"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": "
    "\"string\"}}}}}],"
    " \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\","
    " \"n\": 3, \"x\": 1.5, \"flag\": false, \"none\": null}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static cJSON *vars;
    if (!vars)
        vars = cJSON_Parse(VARS);
    air_jinja_template *t = NULL;
    if (air_jinja_parse((const char *)data, size, &t) != AIR_OK)
        return 0;
    air_jinja_limits lim = {0};
    lim.max_output = 1 << 20;
    lim.max_memory = 64 << 20;
    lim.max_depth = 32;
    lim.max_steps = 200000;
    char *out = NULL;
    if (air_jinja_render(t, vars, &lim, &out) == AIR_OK)
        free(out);
    air_jinja_free(t);
    return 0;
}
