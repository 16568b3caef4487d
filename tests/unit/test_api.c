/*
 * test_api.c - the public API end to end on tests/fixtures/models/tiny_chat
 * (a random-weight Qwen2 with a real BPE tokenizer and a ChatML template;
 * goldens from transformers, see tests/gen/gen_tiny_chat.py): chat template,
 * tokenizer, engine, detokenizer, streaming, stop strings, JSON mode, the
 * model cache, get_llm_response, and errors.
 */
#include <cjson/cJSON.h>

#include "airllm.h"
#include "test.h"
#include "util/fileio.h"
#include "util/strbuf.h"

static char g_cache[1024];
static cJSON *g_golden;

static air_model_params params(void) {
    air_model_params p = air_model_default_params();
    p.compression = "none";
    p.cache_dir = g_cache;
    return p;
}

static int collect(void *user, const char *piece) {
    air_sb_puts(user, piece);
    return 0;
}

static air_status chat_json(air_model *m, const cJSON *jmsgs, const air_gen_params *gp,
                            air_result *r) {
    air_message msgs[8];
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, jmsgs) msgs[n++] = (air_message){
        .role = cJSON_GetObjectItem(e, "role")->valuestring,
        .content = cJSON_GetObjectItem(e, "content")->valuestring};
    return air_chat(m, msgs, n, gp, r);
}

TEST(greedy_text_matches_transformers) {
    air_model_params mp = params();
    air_model *m;
    ASSERT_OK(air_model_open(test_data("models/tiny_chat"), &mp, &m));
    air_model_info info;
    air_model_get_info(m, &info);
    ASSERT_EQ_STR(info.arch, "qwen2");
    ASSERT_TRUE(info.has_chat_template);
    const cJSON *conv;
    cJSON_ArrayForEach(conv, cJSON_GetObjectItem(g_golden, "conversations")) {
        air_gen_params gp = air_gen_default_params();
        gp.temperature = 0;
        gp.max_tokens = 24;
        air_strbuf streamed = {0};
        gp.on_text = collect;
        gp.user = &streamed;
        air_result r;
        ASSERT_OK(chat_json(m, cJSON_GetObjectItem(conv, "messages"), &gp, &r));
        const char *name = cJSON_GetObjectItem(conv, "name")->valuestring;
        const char *want = cJSON_GetObjectItem(conv, "greedy_text")->valuestring;
        fprintf(stderr, "  %s: %d prompt tokens, %d generated, %s\n", name, r.prompt_tokens,
                r.completion_tokens, r.finish_reason);
        ASSERT_EQ_INT(r.prompt_tokens, cJSON_GetArraySize(cJSON_GetObjectItem(conv, "prompt_ids")));
        ASSERT_EQ_STR(r.text, want);
        ASSERT_EQ_STR(streamed.data ? streamed.data : "", want);
        int stopped = cJSON_IsTrue(cJSON_GetObjectItem(conv, "stopped_on_eos"));
        ASSERT_EQ_STR(r.finish_reason, stopped ? "stop" : "length");
        air_result_free(&r);
        air_sb_free(&streamed);
    }
    air_model_close(m);
}

TEST(stop_strings_cut_and_are_never_streamed) {
    air_model_params mp = params();
    air_model *m;
    ASSERT_OK(air_model_open(test_data("models/tiny_chat"), &mp, &m));
    const cJSON *conv = cJSON_GetArrayItem(cJSON_GetObjectItem(g_golden, "conversations"), 1);
    const char *full = cJSON_GetObjectItem(conv, "greedy_text")->valuestring;
    /* stop at a piece in the middle of the greedy text */
    size_t len = strlen(full);
    ASSERT_TRUE(len > 12);
    char stop[8];
    memcpy(stop, full + len / 2, 4);
    stop[4] = 0;
    const char *first = strstr(full, stop);
    const char *stops[] = {"never-appears", stop};
    air_gen_params gp = air_gen_default_params();
    gp.temperature = 0;
    gp.max_tokens = 24;
    gp.stop = stops;
    gp.n_stop = 2;
    air_strbuf streamed = {0};
    gp.on_text = collect;
    gp.user = &streamed;
    air_result r;
    ASSERT_OK(chat_json(m, cJSON_GetObjectItem(conv, "messages"), &gp, &r));
    ASSERT_EQ_INT(strlen(r.text), (size_t)(first - full));
    ASSERT_TRUE(strncmp(r.text, full, strlen(r.text)) == 0);
    ASSERT_EQ_STR(streamed.data ? streamed.data : "", r.text);
    ASSERT_EQ_STR(r.finish_reason, "stop");
    air_result_free(&r);
    air_sb_free(&streamed);
    air_model_close(m);
}

TEST(json_mode_always_parses) {
    air_model_params mp = params();
    air_model *m;
    ASSERT_OK(air_model_open(test_data("models/tiny_chat"), &mp, &m));
    int ok = 0, runs = 25;
    for (int s = 0; s < runs; s++) {
        air_gen_params gp = air_gen_default_params();
        gp.temperature = 1.0f;
        gp.top_k = 0;
        gp.top_p = 1.0f;
        gp.min_p = 0;
        gp.seed = (uint64_t)s + 1;
        gp.max_tokens = 48;
        gp.json = 1;
        air_result r;
        ASSERT_OK(air_generate_text(m, NULL, "Give me a JSON object.", &gp, &r));
        cJSON *j = cJSON_Parse(r.text);
        if (cJSON_IsObject(j))
            ok++;
        else
            fprintf(stderr, "  seed %d: not a JSON object: %s\n", s + 1, r.text);
        cJSON_Delete(j);
        air_result_free(&r);
    }
    fprintf(stderr, "  %d/%d JSON responses parsed as objects\n", ok, runs);
    ASSERT_EQ_INT(ok, runs);
    air_model_close(m);
}

TEST(get_llm_response_and_cache) {
    char req[2048];
    snprintf(req, sizeof req,
             "{\"model\": \"%s\", \"prompt\": \"Hello, who are you?\", \"temperature\": 0, "
             "\"max_tokens\": 24, \"compression\": null, \"cache_dir\": \"%s\"}",
             test_data("models/tiny_chat"), g_cache);
    char *resp = NULL;
    ASSERT_OK(air_get_llm_response(req, NULL, NULL, &resp));
    cJSON *j = cJSON_Parse(resp);
    ASSERT_TRUE(cJSON_IsObject(j));
    const cJSON *conv = cJSON_GetArrayItem(cJSON_GetObjectItem(g_golden, "conversations"), 0);
    ASSERT_EQ_STR(cJSON_GetObjectItem(j, "response")->valuestring,
                  cJSON_GetObjectItem(conv, "greedy_text")->valuestring);
    const cJSON *msgs = cJSON_GetObjectItem(j, "messages");
    ASSERT_EQ_INT(cJSON_GetArraySize(msgs), 2);
    ASSERT_EQ_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "role")->valuestring, "assistant");
    ASSERT_TRUE(cJSON_IsArray(cJSON_GetObjectItem(j, "tool_calls")));
    ASSERT_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tool_calls")), 0);
    ASSERT_TRUE(cJSON_IsArray(cJSON_GetObjectItem(j, "tool_results")));
    const cJSON *u = cJSON_GetObjectItem(j, "usage");
    ASSERT_EQ_INT(cJSON_GetObjectItem(u, "prompt_tokens")->valueint, 33);
    cJSON_Delete(j);
    air_free(resp);
    /* the process cache: the same model for the same key */
    air_model_params mp = params();
    air_model *a, *b;
    ASSERT_OK(air_model_acquire(test_data("models/tiny_chat"), &mp, &a));
    ASSERT_OK(air_model_acquire(test_data("models/tiny_chat"), &mp, &b));
    ASSERT_TRUE(a == b);
    air_model_release(a);
    air_model_release(b);
    air_model_cache_clear();
}

TEST(errors_are_clear) {
    air_model_params mp = params();
    air_model *m = NULL;
    ASSERT_ERR(air_model_open("/nonexistent/model", &mp, &m), AIR_ERR_NOT_FOUND, "not found");
    mp.compression = "3bit";
    ASSERT_ERR(air_model_open(test_data("models/tiny_chat"), &mp, &m), AIR_ERR_INVALID_ARG, "3bit");
    char *resp;
    ASSERT_ERR(air_get_llm_response("{\"prompt\": \"x\"}", NULL, NULL, &resp), AIR_ERR_INVALID_ARG,
               "\"model\" is required");
    ASSERT_ERR(air_get_llm_response("not json", NULL, NULL, &resp), AIR_ERR_INVALID_ARG,
               "not a JSON object");
    /* a model without a tokenizer cannot take text */
    mp = params();
    ASSERT_OK(air_model_open(test_data("models/llama"), &mp, &m));
    air_gen_params gp = air_gen_default_params();
    air_result r;
    ASSERT_ERR(air_generate_text(m, NULL, "hi", &gp, &r), AIR_ERR_UNSUPPORTED, "tokenizer");
    air_model_close(m);
}

int main(void) {
    snprintf(g_cache, sizeof g_cache, "%s", test_tmp("api-cache"));
    char *text;
    size_t len;
    if (air_read_file(test_data("models/tiny_chat/golden.json"), &text, &len) != AIR_OK) {
        fprintf(stderr, "missing golden: %s\n", air_last_error());
        return 1;
    }
    g_golden = cJSON_Parse(text);
    free(text);
    RUN(greedy_text_matches_transformers);
    RUN(stop_strings_cut_and_are_never_streamed);
    RUN(json_mode_always_parses);
    RUN(get_llm_response_and_cache);
    RUN(errors_are_clear);
    cJSON_Delete(g_golden);
    return test_summary();
}
