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

typedef struct {
    int n_calls;
    char name[64];
    char args[512];
    char id[16];
    int texts;
} call_log;

static int log_call(void *u, int index, const char *id, const char *name, const char *args) {
    call_log *l = u;
    if (index == l->n_calls++) {
        snprintf(l->name, sizeof l->name, "%s", name);
        snprintf(l->args, sizeof l->args, "%s", args);
        snprintf(l->id, sizeof l->id, "%s", id);
    }
    return 0;
}

static int count_text(void *u, const char *piece) {
    ((call_log *)u)->texts += piece[0] != 0;
    return 0;
}

/* A forced call through air_chat on the random-weight tiny_chat model: one
 * call, reported once through on_tool_call with the result's id, name and
 * arguments; nothing streamed as text; arguments hold the required key. */
TEST(forced_call_streams_one_call) {
    const char *tmp = test_tmp("api_tools");
    air_model_params mp = air_model_default_params();
    mp.compression = "none";
    mp.cache_dir = tmp;
    mp.max_seq_len = 2048;
    air_model *m = NULL;
    ASSERT_TRUE(air_model_open(test_data("models/tiny_chat"), &mp, &m) == AIR_OK);
    air_gen_params gp = air_gen_default_params();
    gp.temperature = 1.0f;
    gp.max_tokens = 64;
    gp.tools = "[{\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"parameters\":"
               "{\"type\":\"object\",\"properties\":{\"tz\":{\"enum\":[\"UTC\",\"CET\"]}},"
               "\"required\":[\"tz\"]}}},{\"type\":\"function\",\"function\":{\"name\":\"ping\"}}]";
    call_log log = {0};
    gp.on_tool_call = log_call;
    gp.on_text = count_text;
    gp.user = &log;
    air_message msg = {.role = "user", .content = "Time?"};
    for (int k = 0; k < 2; k++) {
        memset(&log, 0, sizeof log);
        gp.tool_choice = k == 0 ? "get_time" : "required";
        gp.seed = (uint64_t)k;
        air_result r;
        ASSERT_TRUE(air_chat(m, &msg, 1, &gp, &r) == AIR_OK);
        ASSERT_EQ_STR(r.finish_reason, "tool_calls");
        ASSERT_EQ_STR(r.text, "");
        ASSERT_EQ_INT(log.n_calls, 1);
        ASSERT_EQ_INT(log.texts, 0);
        cJSON *calls = cJSON_Parse(r.tool_calls);
        const cJSON *c0 = cJSON_GetArrayItem(calls, 0);
        const cJSON *fn = cJSON_GetObjectItem(c0, "function");
        ASSERT_EQ_INT(cJSON_GetArraySize(calls), 1);
        ASSERT_EQ_STR(cJSON_GetObjectItem(c0, "id")->valuestring, log.id);
        ASSERT_EQ_STR(cJSON_GetObjectItem(fn, "name")->valuestring, log.name);
        ASSERT_EQ_STR(cJSON_GetObjectItem(fn, "arguments")->valuestring, log.args);
        cJSON *args = cJSON_Parse(log.args);
        ASSERT_TRUE(cJSON_IsObject(args));
        if (strcmp(log.name, "get_time") == 0)
            ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItem(args, "tz")));
        else
            ASSERT_EQ_STR(log.name, "ping");
        if (k == 0)
            ASSERT_EQ_STR(log.name, "get_time");
        ASSERT_TRUE(strncmp(r.raw_text, "<tool_call>\n{", 13) == 0); /* no tools in the template */
        cJSON_Delete(args);
        cJSON_Delete(calls);
        air_result_free(&r);
    }
    /* a tool the list does not have, and a forced call with format=json */
    gp.tool_choice = "nope";
    air_result r;
    ASSERT_EQ_INT(air_chat(m, &msg, 1, &gp, &r), AIR_ERR_INVALID_ARG);
    ASSERT_TRUE(strstr(air_last_error(), "nope") != NULL);
    gp.tool_choice = "required";
    gp.json = 1;
    ASSERT_EQ_INT(air_chat(m, &msg, 1, &gp, &r), AIR_ERR_INVALID_ARG);
    air_model_close(m);
}

int main(void) {
    RUN(renders_match_transformers);
    RUN(bad_messages);
    RUN(forced_call_streams_one_call);
    return test_summary();
}
