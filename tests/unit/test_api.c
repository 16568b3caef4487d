/*
 * test_api.c - the public API end to end on tests/fixtures/models/tiny_chat
 * (a random-weight Qwen2 with a real BPE tokenizer and a ChatML template;
 * goldens from transformers, see tests/gen/gen_tiny_chat.py): chat template,
 * tokenizer, engine, detokenizer, streaming, stop strings, JSON mode, the
 * model cache, get_llm_response, and errors; then the steps of a chat turn one
 * by one (air_apply_chat_template, air_tokenize, air_generate_ids,
 * air_detokenize) against the same goldens, and get_llm_response's handling
 * of a prompt given with messages, of chat_template_kwargs and of prompt_ids.
 */
#include <cjson/cJSON.h>
#include <math.h>

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

/* air_complete on the chat template's own rendering: the same ids (this
 * tokenizer adds no BOS) and transformers' greedy text; raw refuses a system
 * prompt and air_chat */
TEST(raw_completion_of_the_rendered_prompt) {
    air_model_params mp = params();
    air_model *m;
    ASSERT_OK(air_model_open(test_data("models/tiny_chat"), &mp, &m));
    const cJSON *conv;
    cJSON_ArrayForEach(conv, cJSON_GetObjectItem(g_golden, "conversations")) {
        air_gen_params gp = air_gen_default_params();
        gp.temperature = 0;
        gp.max_tokens = 24;
        air_result r;
        ASSERT_OK(air_complete(m, cJSON_GetObjectItem(conv, "prompt_text")->valuestring, &gp, &r));
        ASSERT_EQ_INT(r.prompt_tokens, cJSON_GetArraySize(cJSON_GetObjectItem(conv, "prompt_ids")));
        ASSERT_EQ_STR(r.text, cJSON_GetObjectItem(conv, "greedy_text")->valuestring);
        air_result_free(&r);
    }
    air_gen_params gp = air_gen_default_params();
    gp.raw = 1;
    gp.max_tokens = 2;
    air_result r;
    ASSERT_ERR(air_generate_text(m, "be brief", "Hi", &gp, &r), AIR_ERR_INVALID_ARG,
               "no system prompt");
    air_message msg = {.role = "user", .content = "Hi"};
    ASSERT_ERR(air_chat(m, &msg, 1, &gp, &r), AIR_ERR_INVALID_ARG, "air_complete");
    /* gp.raw routes air_generate_text to air_complete: the same prompt tokens */
    const char *text = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(g_golden,
                                           "conversations"), 0), "prompt_text")->valuestring;
    ASSERT_OK(air_generate_text(m, NULL, text, &gp, &r));
    ASSERT_EQ_INT(r.prompt_tokens, cJSON_GetArraySize(cJSON_GetObjectItem(
                                       cJSON_GetArrayItem(cJSON_GetObjectItem(g_golden,
                                       "conversations"), 0), "prompt_ids")));
    air_result_free(&r);
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

/* ------------------------------------------------------------------------- */
/* The steps of a chat turn one by one, on one open tiny_chat (g_m)            */
/* ------------------------------------------------------------------------- */
static air_model *g_m;

static const cJSON *conversation(int i) {
    return cJSON_GetArrayItem(cJSON_GetObjectItem(g_golden, "conversations"), i);
}

/* ids[n] equal to the JSON array want, first difference reported */
static int same_ids(const int32_t *ids, size_t n, const cJSON *want) {
    size_t k = (size_t)cJSON_GetArraySize(want);
    for (size_t i = 0; i < n && i < k; i++)
        if (ids[i] != cJSON_GetArrayItem(want, (int)i)->valueint) {
            fprintf(stderr, "  id %zu: got %d, expected %d\n", i, ids[i],
                    cJSON_GetArrayItem(want, (int)i)->valueint);
            return 0;
        }
    if (n != k)
        fprintf(stderr, "  %zu ids, expected %zu\n", n, k);
    return n == k;
}

TEST(template_tokenize_generate_detokenize_match_transformers) {
    const cJSON *conv;
    cJSON_ArrayForEach(conv, cJSON_GetObjectItem(g_golden, "conversations")) {
        char *msgs = cJSON_PrintUnformatted(cJSON_GetObjectItem(conv, "messages"));
        char *prompt = NULL;
        ASSERT_OK(air_apply_chat_template(g_m, msgs, 1, NULL, &prompt));
        free(msgs);
        ASSERT_EQ_STR(prompt, cJSON_GetObjectItem(conv, "prompt_text")->valuestring);

        int32_t *ids = NULL;
        size_t n = 0;
        ASSERT_OK(air_tokenize(g_m, prompt, strlen(prompt), 0, &ids, &n));
        air_free(prompt);
        ASSERT_TRUE(same_ids(ids, n, cJSON_GetObjectItem(conv, "prompt_ids")));

        air_gen_params gp = air_gen_default_params();
        gp.temperature = 0;
        gp.max_tokens = cJSON_GetObjectItem(g_golden, "max_new_tokens")->valueint;
        air_result r;
        int32_t *gen = NULL;
        size_t n_gen = 0;
        ASSERT_OK(air_generate_ids(g_m, ids, n, &gp, &r, &gen, &n_gen));
        air_free(ids);
        const cJSON *want = cJSON_GetObjectItem(conv, "greedy_ids");
        ASSERT_TRUE(same_ids(gen, n_gen, want));
        const char *text = cJSON_GetObjectItem(conv, "greedy_text")->valuestring;
        ASSERT_EQ_STR(r.text, text);
        int stopped = cJSON_IsTrue(cJSON_GetObjectItem(conv, "stopped_on_eos"));
        ASSERT_EQ_STR(r.finish_reason, stopped ? "stop" : "length");
        /* completion_tokens counts the text's tokens, not the EOS */
        ASSERT_EQ_INT(r.completion_tokens, (int)n_gen - stopped);
        air_result_free(&r);

        char *dec = NULL;
        size_t len = 0;
        ASSERT_OK(air_detokenize(g_m, gen, n_gen, 1, &dec, &len));
        ASSERT_EQ_STR(dec, text);
        ASSERT_EQ_INT(len, strlen(text));
        air_free(dec);
        ASSERT_OK(air_detokenize(g_m, gen, n_gen, 0, &dec, NULL));
        ASSERT_EQ_INT(strstr(dec, "<|im_end|>") != NULL, stopped);
        air_free(dec);
        air_free(gen);
    }
}

TEST(template_variables_reach_the_template) {
    const cJSON *conv = conversation(0);
    char *msgs = cJSON_PrintUnformatted(cJSON_GetObjectItem(conv, "messages"));
    char *with = NULL, *without = NULL;
    ASSERT_OK(air_apply_chat_template(g_m, msgs, 1, NULL, &with));
    /* a variable given overrides the one the library sets */
    ASSERT_OK(
        air_apply_chat_template(g_m, msgs, 1, "{\"add_generation_prompt\": false}", &without));
    const char *gen_prompt = "<|im_start|>assistant\n";
    ASSERT_EQ_INT(strlen(with), strlen(without) + strlen(gen_prompt));
    ASSERT_EQ_STR(with + strlen(without), gen_prompt);
    air_free(with);
    air_free(without);
    free(msgs);
}

TEST(step_errors_are_clear) {
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    ASSERT_ERR(air_apply_chat_template(g_m, "{\"role\": \"user\"}", 1, NULL, &text),
               AIR_ERR_INVALID_ARG, "JSON array");
    ASSERT_ERR(air_apply_chat_template(g_m, "[{\"content\": \"hi\"}]", 1, NULL, &text),
               AIR_ERR_INVALID_ARG, "message 0");
    ASSERT_ERR(air_apply_chat_template(g_m, "[]", 1, "[1]", &text), AIR_ERR_INVALID_ARG,
               "JSON object");
    ASSERT_TRUE(text == NULL);
    int32_t bad[] = {1, 2, 1 << 20};
    air_gen_params gp = air_gen_default_params();
    air_result r;
    ASSERT_ERR(air_generate_ids(g_m, bad, 3, &gp, &r, NULL, NULL), AIR_ERR_INVALID_ARG,
               "position 2");
    ASSERT_ERR(air_generate_ids(g_m, bad, 0, &gp, &r, NULL, NULL), AIR_ERR_INVALID_ARG, "empty");
    ASSERT_TRUE(r.text == NULL);
    /* a model without a tokenizer */
    air_model_params mp = params();
    air_model *m = NULL;
    ASSERT_OK(air_model_open(test_data("models/llama"), &mp, &m));
    ASSERT_ERR(air_tokenize(m, "hi", 2, 1, &ids, &n), AIR_ERR_UNSUPPORTED, "tokenizer");
    ASSERT_TRUE(ids == NULL);
    ASSERT_ERR(air_detokenize(m, bad, 2, 1, &text, NULL), AIR_ERR_UNSUPPORTED, "tokenizer");
    air_model_close(m);
}

/* air_get_llm_response on tiny_chat (uncompressed, the test cache) with the
 * request's other fields; the status, and *out the parsed response. */
static air_status llm(const char *fields, cJSON **out) {
    char req[8192];
    snprintf(req, sizeof req,
             "{\"model\": \"%s\", \"compression\": null, \"cache_dir\": \"%s\", %s}",
             test_data("models/tiny_chat"), g_cache, fields);
    char *resp = NULL;
    *out = NULL;
    air_status st = air_get_llm_response(req, NULL, NULL, &resp);
    if (!st)
        *out = cJSON_Parse(resp);
    air_free(resp);
    return st;
}

static int usage(const cJSON *j, const char *key) {
    return cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), key)->valueint;
}

/* get_llm_response with a prompt and messages ending in a user turn: the
 * prompt replaces that turn's content (npcpy's providers do so). */
TEST(prompt_replaces_a_last_user_turn) {
    cJSON *j;
    ASSERT_OK(llm("\"prompt\": \"Hello, who are you?\", \"messages\": [{\"role\": \"user\", "
                  "\"content\": \"an earlier text\"}], \"temperature\": 0, \"max_tokens\": 24",
                  &j));
    const cJSON *conv = conversation(0);
    ASSERT_EQ_STR(cJSON_GetObjectItem(j, "response")->valuestring,
                  cJSON_GetObjectItem(conv, "greedy_text")->valuestring);
    const cJSON *msgs = cJSON_GetObjectItem(j, "messages");
    ASSERT_EQ_INT(cJSON_GetArraySize(msgs), 2);
    const cJSON *first = cJSON_GetArrayItem(msgs, 0);
    ASSERT_EQ_STR(cJSON_GetObjectItem(first, "role")->valuestring, "user");
    ASSERT_EQ_STR(cJSON_GetObjectItem(first, "content")->valuestring, "Hello, who are you?");
    ASSERT_EQ_INT(usage(j, "prompt_tokens"),
                  cJSON_GetArraySize(cJSON_GetObjectItem(conv, "prompt_ids")));
    ASSERT_EQ_INT(usage(j, "input_tokens"), usage(j, "prompt_tokens"));
    ASSERT_EQ_INT(usage(j, "output_tokens"), usage(j, "completion_tokens"));
    ASSERT_TRUE(cJSON_Compare(cJSON_GetObjectItem(j, "completion_ids"),
                              cJSON_GetObjectItem(conv, "greedy_ids"), 1));
    cJSON_Delete(j);

    /* after an assistant turn the prompt is a new user turn */
    ASSERT_OK(llm("\"prompt\": \"And you?\", \"messages\": [{\"role\": \"user\", \"content\": "
                  "\"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello\"}], \"max_tokens\": 2",
                  &j));
    msgs = cJSON_GetObjectItem(j, "messages");
    ASSERT_EQ_INT(cJSON_GetArraySize(msgs), 4);
    ASSERT_EQ_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 2), "content")->valuestring,
                  "And you?");
    cJSON_Delete(j);

    /* an empty prompt adds nothing */
    ASSERT_OK(llm("\"prompt\": \"\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], "
                  "\"max_tokens\": 1", &j));
    msgs = cJSON_GetObjectItem(j, "messages");
    ASSERT_EQ_INT(cJSON_GetArraySize(msgs), 2);
    ASSERT_EQ_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "content")->valuestring, "Hi");
    cJSON_Delete(j);
    ASSERT_ERR(llm("\"prompt\": \"\"", &j), AIR_ERR_INVALID_ARG, "give a");
}

TEST(chat_template_kwargs_reach_the_template) {
    /* a variable given overrides the library's: without the generation
     * prompt, the prompt is shorter by its tokens (usage shows it) */
    cJSON *with, *without;
    ASSERT_OK(llm("\"prompt\": \"Hello, who are you?\", \"max_tokens\": 1", &with));
    ASSERT_OK(llm("\"prompt\": \"Hello, who are you?\", \"max_tokens\": 1, "
                  "\"chat_template_kwargs\": {\"add_generation_prompt\": false}",
                  &without));
    int32_t *ids = NULL;
    size_t n = 0;
    ASSERT_OK(air_tokenize(g_m, "<|im_start|>assistant\n", 22, 0, &ids, &n));
    air_free(ids);
    ASSERT_TRUE(n > 0);
    ASSERT_EQ_INT(usage(with, "prompt_tokens") - usage(without, "prompt_tokens"), n);
    cJSON_Delete(with);
    cJSON_Delete(without);
    ASSERT_ERR(llm("\"prompt\": \"x\", \"chat_template_kwargs\": [1]", &with), AIR_ERR_INVALID_ARG,
               "chat_template_kwargs");
}

/* prompt_ids: generation from ids through the JSON entry point, and the
 * model from air_model_acquire_json is the cached one. */
TEST(prompt_ids_and_acquire_json) {
    const cJSON *conv = conversation(2);
    char *ids = cJSON_PrintUnformatted(cJSON_GetObjectItem(conv, "prompt_ids"));
    char fields[8192];
    snprintf(fields, sizeof fields, "\"prompt_ids\": %s, \"temperature\": 0, \"max_tokens\": 24",
             ids);
    free(ids);
    cJSON *j;
    ASSERT_OK(llm(fields, &j));
    ASSERT_EQ_STR(cJSON_GetObjectItem(j, "response")->valuestring,
                  cJSON_GetObjectItem(conv, "greedy_text")->valuestring);
    ASSERT_TRUE(cJSON_GetObjectItem(j, "messages") == NULL);
    ASSERT_TRUE(cJSON_Compare(cJSON_GetObjectItem(j, "completion_ids"),
                              cJSON_GetObjectItem(conv, "greedy_ids"), 1));
    ASSERT_EQ_STR(cJSON_GetObjectItem(j, "finish_reason")->valuestring, "stop");
    cJSON_Delete(j);

    char req[4096];
    snprintf(req, sizeof req, "{\"model\": \"%s\", \"compression\": null, \"cache_dir\": \"%s\"}",
             test_data("models/tiny_chat"), g_cache);
    air_model *a = NULL, *b = NULL;
    ASSERT_OK(air_model_acquire_json(req, &a));
    air_model_params mp = params();
    ASSERT_OK(air_model_acquire(test_data("models/tiny_chat"), &mp, &b));
    ASSERT_TRUE(a == b);
    air_model_release(a);
    air_model_release(b);

    ASSERT_ERR(air_model_acquire_json("{\"compression\": null}", &a), AIR_ERR_INVALID_ARG,
               "\"model\" is required");
    ASSERT_TRUE(a == NULL);
    ASSERT_ERR(air_model_acquire_json("[", &a), AIR_ERR_INVALID_ARG, "not a JSON object");
    const char *bad[] = {"[1, 2.5]", "[-1]", "[1e12]", "[\"a\"]", "7"};
    for (int i = 0; i < 5; i++) {
        snprintf(fields, sizeof fields, "\"prompt_ids\": %s", bad[i]);
        ASSERT_ERR(llm(fields, &j), AIR_ERR_INVALID_ARG, "prompt_ids");
    }
    ASSERT_ERR(llm("\"prompt_ids\": [1], \"prompt\": \"x\"", &j), AIR_ERR_INVALID_ARG,
               "instead of");
}

/* Every numeric parameter out of its range is AIR_ERR_INVALID_ARG naming it,
 * through the C structs and through the JSON request (where a number the C
 * type cannot hold used to be converted anyway: undefined behaviour). */
TEST(parameters_are_validated) {
    air_model_params mp = params();
    air_model *m = NULL;
    mp.max_seq_len = -1;
    ASSERT_ERR(air_model_open(test_data("models/tiny_chat"), &mp, &m), AIR_ERR_INVALID_ARG,
               "max_seq_len is -1");
    /* the cached open checks them too, opened before or not */
    ASSERT_ERR(air_model_acquire(test_data("models/tiny_chat"), &mp, &m), AIR_ERR_INVALID_ARG,
               "max_seq_len is -1");
    mp = params();
    mp.max_seq_len = AIR_MAX_SEQ_LEN + 1;
    ASSERT_ERR(air_model_open(test_data("models/tiny_chat"), &mp, &m), AIR_ERR_INVALID_ARG,
               "max_seq_len");
    mp = params();
    mp.n_threads = -3;
    ASSERT_ERR(air_model_open(test_data("models/tiny_chat"), &mp, &m), AIR_ERR_INVALID_ARG,
               "n_threads is -3");
    mp = params();
    mp.n_threads = 100000; /* capped to the CPUs, not an error */
    ASSERT_OK(air_model_open(test_data("models/tiny_chat"), &mp, &m));

    static const struct {
        const char *field;
        int i;
        float f;
        const char *needle;
    } bad[] = {
        {"max_tokens", -1, 0, "max_tokens is -1"},
        {"temperature", 0, -1.0f, "temperature is -1"},
        {"temperature", 0, NAN, "temperature is nan"},
        {"temperature", 0, INFINITY, "temperature is inf"},
        {"top_p", 0, 2.0f, "top_p is 2"},
        {"top_p", 0, -0.5f, "top_p is -0.5"},
        {"top_p", 0, NAN, "top_p is nan"},
        {"min_p", 0, 2.0f, "min_p is 2"},
        {"top_k", -5, 0, "top_k is -5"},
        {"repeat_penalty", 0, 0.0f, "repeat_penalty is 0"},
        {"json", 1, 0, "format json"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        air_gen_params gp = air_gen_default_params();
        gp.max_tokens = 4;
        if (!strcmp(bad[k].field, "max_tokens"))
            gp.max_tokens = bad[k].i;
        else if (!strcmp(bad[k].field, "temperature"))
            gp.temperature = bad[k].f;
        else if (!strcmp(bad[k].field, "top_p"))
            gp.top_p = bad[k].f;
        else if (!strcmp(bad[k].field, "min_p"))
            gp.min_p = bad[k].f;
        else if (!strcmp(bad[k].field, "top_k"))
            gp.top_k = bad[k].i;
        else if (!strcmp(bad[k].field, "repeat_penalty"))
            gp.repeat_penalty = bad[k].f;
        else {
            gp.json = 1;
            gp.max_tokens = 1;
        }
        air_result r;
        ASSERT_ERR(air_generate_text(m, NULL, "hi", &gp, &r), AIR_ERR_INVALID_ARG, bad[k].needle);
    }
    /* edges that are accepted: greedy, top_p 0 (the most likely token), min_p 1 */
    air_gen_params gp = air_gen_default_params();
    gp.max_tokens = 0;
    air_result r;
    ASSERT_OK(air_generate_text(m, NULL, "hi", &gp, &r));
    ASSERT_EQ_STR(r.text, "");
    air_result_free(&r);
    gp.max_tokens = 3;
    gp.top_p = 0;
    gp.min_p = 1;
    gp.top_k = 0;
    gp.seed = UINT64_MAX;
    ASSERT_OK(air_generate_text(m, NULL, "hi", &gp, &r));
    air_result_free(&r);
    const char *stops[1] = {NULL};
    gp.stop = stops;
    gp.n_stop = 1;
    ASSERT_ERR(air_generate_text(m, NULL, "hi", &gp, &r), AIR_ERR_INVALID_ARG, "stop string 0");
    air_model_close(m);

    /* the JSON request */
    static const struct {
        const char *fields, *needle;
    } jbad[] = {
        {"\"max_tokens\": 1e20", "\"max_tokens\" is 1e+20"},
        {"\"max_tokens\": 2147483648", "\"max_tokens\" is 2147483648"},
        {"\"max_tokens\": -1", "\"max_tokens\" is -1"},
        {"\"max_tokens\": 2.5", "\"max_tokens\" is 2.5"},
        {"\"max_tokens\": \"10\"", "\"max_tokens\" must be a number, not a string"},
        {"\"top_k\": -5", "\"top_k\" is -5"},
        {"\"seed\": -1", "\"seed\" is -1"},
        {"\"seed\": 1e300", "\"seed\" is 1e+300"},
        {"\"n_threads\": 1e10", "\"n_threads\" is 10000000000"},
        {"\"max_seq_len\": -2", "\"max_seq_len\" is -2"},
        {"\"ram_budget\": 1e30", "\"ram_budget\" is 1e+30"},
        {"\"temperature\": 1e300", "\"temperature\" is 1e+300"},
        {"\"temperature\": -1", "temperature is -1"},
        {"\"top_p\": 2", "top_p is 2"},
        {"\"min_p\": 2", "min_p is 2"},
        {"\"format\": \"yaml\"", "\"format\" is \"yaml\""},
        {"\"format\": \"json\", \"max_tokens\": 0", "format json"},
        {"\"compression\": 4", "\"compression\" must be a string, not a number"},
        {"\"prompt\": 5", "\"prompt\" must be a string"},
    };
    for (size_t k = 0; k < sizeof jbad / sizeof *jbad; k++) {
        char req[1024];
        /* the field under test comes first: with duplicate keys the first counts */
        snprintf(req, sizeof req,
                 "{%s, \"model\": \"%s\", \"prompt\": \"hi\", \"compression\": null, "
                 "\"cache_dir\": \"%s\"}",
                 jbad[k].fields, test_data("models/tiny_chat"), g_cache);
        char *resp = NULL;
        ASSERT_ERR(air_get_llm_response(req, NULL, NULL, &resp), AIR_ERR_INVALID_ARG,
                   jbad[k].needle);
        ASSERT_TRUE(resp == NULL);
    }
    air_model_cache_clear();
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
    air_model_params mp = params();
    if (air_model_open(test_data("models/tiny_chat"), &mp, &g_m) != AIR_OK) {
        fprintf(stderr, "cannot open tiny_chat: %s\n", air_last_error());
        return 1;
    }
    RUN(greedy_text_matches_transformers);
    RUN(raw_completion_of_the_rendered_prompt);
    RUN(stop_strings_cut_and_are_never_streamed);
    RUN(json_mode_always_parses);
    RUN(get_llm_response_and_cache);
    RUN(errors_are_clear);
    RUN(template_tokenize_generate_detokenize_match_transformers);
    RUN(template_variables_reach_the_template);
    RUN(step_errors_are_clear);
    RUN(prompt_replaces_a_last_user_turn);
    RUN(chat_template_kwargs_reach_the_template);
    RUN(prompt_ids_and_acquire_json);
    RUN(parameters_are_validated);
    air_model_close(g_m);
    air_model_cache_clear();
    cJSON_Delete(g_golden);
    return test_summary();
}
